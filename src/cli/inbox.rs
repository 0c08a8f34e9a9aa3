//! `smsgate inbox`: inbound messages from the daemon, the backlog and (with
//! `--follow`) new ones as they come, optionally acknowledging each.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};

use super::client::{printable, Client, ClientError, SocketArg};

/// Without `--follow`, the backlog is over once every unacknowledged
/// message was printed or, failing that (some were acknowledged meanwhile,
/// or the privacy gate had not decided on them yet), once the daemon has
/// been quiet this long: long enough for a busy machine's replay.
const BACKLOG_QUIET: Duration = Duration::from_secs(2);

/// Arguments of `smsgate inbox`.
#[derive(Debug, Args)]
pub struct InboxArgs {
    /// `--socket PATH` (or `SMSGATE_SOCKET`): where the daemon listens.
    #[command(flatten)]
    pub socket: SocketArg,
    /// One JSON object per message (id, from, text, time, modem, parts, partial, ...).
    #[arg(long)]
    pub json: bool,
    /// Keep running and print new messages as they arrive (until Ctrl-C).
    #[arg(long)]
    pub follow: bool,
    /// Acknowledge each message once printed, so it is not delivered again.
    #[arg(long)]
    pub ack: bool,
    /// Start after this event cursor instead of the unacknowledged backlog.
    #[arg(long, value_name = "CURSOR")]
    pub since: Option<u64>,
}

/// Runs `smsgate inbox`.
pub fn run(args: InboxArgs) -> ExitCode {
    match inbox(&args, &mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}

/// One message as a human line: `ID  TIME  FROM  MODEM  TEXT`. A newline
/// shows as `↵` (one message, one line); every other control character
/// in the text or the fields is escaped ([`printable`]): an SMS must not
/// be able to drive the reader's terminal.
pub fn human_line(ev: &Value) -> String {
    let text = printable(
        &ev["text"]
            .as_str()
            .unwrap_or("(no text)")
            .replace('\n', "\u{21b5}"),
    );
    let partial = if ev["partial"] == true {
        " [incomplete]"
    } else {
        ""
    };
    format!(
        "{}  {}  {}  via {}  {text}{partial}",
        printable(&ev["id"].to_string()),
        printable(ev["time"].as_str().unwrap_or("-")),
        printable(ev["from"].as_str().unwrap_or("-")),
        printable(ev["modem"].as_str().unwrap_or("-")),
    )
}

/// Prints inbound events to `out` until the backlog ends (or forever with
/// `--follow`).
pub fn inbox(args: &InboxArgs, out: &mut impl std::io::Write) -> Result<(), ClientError> {
    let mut client = Client::connect(&args.socket.socket)?;
    // How many messages the backlog holds at most: once all were printed
    // there is nothing to wait for.
    let backlog = if args.since.is_none() && !args.follow {
        client
            .request("stats", json!({}))
            .ok()
            .and_then(|r| r["stats"]["inbound_unacked"].as_u64())
    } else {
        None
    };
    if backlog == Some(0) {
        return Ok(());
    }
    let mut printed = std::collections::HashSet::new();
    let mut sub = json!({"events": ["inbound"]});
    if let Some(c) = args.since {
        sub["since"] = c.into();
    }
    let reply = client.request("subscribe", sub)?;
    // The unacknowledged backlog comes with the subscription's own cursor;
    // a larger one is news. After --since, everything is news.
    let head = reply["cursor"].as_u64().filter(|_| args.since.is_none());
    loop {
        let deadline = if args.follow {
            // Wake up now and then only to keep the wait bounded.
            Instant::now() + Duration::from_secs(3600)
        } else {
            Instant::now() + BACKLOG_QUIET
        };
        let Some(mut ev) = client.next_event(deadline)? else {
            if args.follow {
                continue;
            }
            return Ok(());
        };
        if ev["event"] != "inbound" {
            continue;
        }
        let newer = matches!((ev["cursor"].as_u64(), head), (Some(c), Some(h)) if c > h);
        let line = if args.json {
            if let Some(m) = ev.as_object_mut() {
                m.remove("event");
            }
            ev.to_string()
        } else {
            human_line(&ev)
        };
        writeln!(out, "{line}").map_err(|e| ClientError::Lost {
            socket: args.socket.socket.clone(),
            detail: format!("writing to stdout: {e}"),
        })?;
        let _ = out.flush();
        if args.ack {
            if let Some(id) = ev["id"].as_i64() {
                client.request("ack", json!({"message": id}))?;
            }
        }
        if newer && !args.follow {
            // Past the backlog: what came after `subscribe` is for --follow.
            return Ok(());
        }
        if let (Some(n), Some(id)) = (backlog, ev["id"].as_i64()) {
            printed.insert(id);
            if printed.len() as u64 >= n {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::client::tests::{fake_daemon, hello, ok};
    use std::sync::{Arc, Mutex};

    fn inbound(cursor: u64, id: i64) -> Value {
        json!({"event":"inbound","cursor":cursor,"id":id,"from":"+4930","text":"hi\nthere",
               "time":"2026-11-26T10:00:00Z","modem":"m0","parts":1,"partial":false})
    }

    #[test]
    fn backlog_is_printed_and_acked_then_it_exits() {
        let acks = Arc::new(Mutex::new(Vec::new()));
        let log = acks.clone();
        let (_d, path) = fake_daemon(move |req| match req["op"].as_str()? {
            "hello" => Some(vec![hello(req)]),
            "subscribe" => Some(vec![
                ok(req, json!({"cursor": 5})),
                inbound(3, 1),
                json!({"event":"status","cursor":4,"message":9,"state":"sent"}),
                inbound(4, 2),
            ]),
            "stats" => Some(vec![ok(req, json!({"stats": {"inbound_unacked": 2}}))]),
            "ack" => {
                log.lock().unwrap().push(req["message"].clone());
                Some(vec![ok(req, json!({"message": req["message"]}))])
            }
            _ => None,
        });
        let args = InboxArgs {
            socket: SocketArg { socket: path },
            json: true,
            follow: false,
            ack: true,
            since: None,
        };
        let mut out = Vec::new();
        inbox(&args, &mut out).unwrap();
        let lines: Vec<Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        for l in &lines {
            for k in ["id", "from", "text", "time", "modem"] {
                assert!(l.get(k).is_some(), "{k} missing in {l}");
            }
            assert!(l.get("event").is_none());
        }
        assert_eq!(*acks.lock().unwrap(), vec![json!(1), json!(2)]);
    }

    #[test]
    fn human_lines_keep_one_message_per_line() {
        let l = human_line(&inbound(1, 7));
        assert_eq!(l, "7  2026-11-26T10:00:00Z  +4930  via m0  hi\u{21b5}there");
    }

    #[test]
    fn human_lines_cannot_drive_the_terminal() {
        let mut ev = inbound(1, 7);
        ev["text"] = "\u{1b}[31mred\rfake\u{202e}".into();
        ev["from"] = "\u{1b}]0;t\u{7}".into();
        let l = human_line(&ev);
        assert!(!l.chars().any(crate::cli::client::is_unsafe_char), "{l:?}");
        assert!(l.contains("\\x1b[31mred\\rfake\\u{202e}"), "{l}");
        assert!(l.contains("\\x1b]0;t\\x07"), "{l}");
    }
}
