//! `smsgate status [ID]`: one outbound message's state and parts, or the
//! daemon's counters.

use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Value};

use super::client::{cell, printable, strip_envelope, Client, ClientError, SocketArg};

/// Arguments of `smsgate status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// `--socket PATH` (or `SMSGATE_SOCKET`): where the daemon listens.
    #[command(flatten)]
    pub socket: SocketArg,
    /// An outbound message id (as `smsgate send` printed); none: the daemon's counters.
    pub id: Option<i64>,
    /// The daemon's answer as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `smsgate status`.
pub fn run(args: StatusArgs) -> ExitCode {
    match status(&args) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => e.report(),
    }
}

fn status(args: &StatusArgs) -> Result<String, ClientError> {
    let mut client = Client::connect(&args.socket.socket)?;
    let v = match args.id {
        Some(id) => strip_envelope(client.request("status", json!({"message": id}))?),
        None => strip_envelope(client.request("stats", json!({}))?)["stats"].take(),
    };
    Ok(if args.json {
        format!("{v}\n")
    } else if args.id.is_some() {
        human_message(&v)
    } else {
        let mut out = String::new();
        flatten("", &v, &mut out);
        out
    })
}

/// A message's status for people: a headline and one line per part
/// (daemon text with control characters escaped).
pub fn human_message(v: &Value) -> String {
    let mut out = format!(
        "message {} to {}: {}\n",
        v["message"],
        cell(v, "to"),
        cell(v, "state")
    );
    if let Some(k) = v["key"].as_str() {
        out.push_str(&format!("  key: {}\n", printable(k)));
    }
    if let Some(e) = v["error"].as_str() {
        out.push_str(&format!("  error: {}\n", printable(e)));
    }
    for p in v["parts"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  part {}: {} via {} (mr {})",
            cell(p, "seq"),
            cell(p, "state"),
            cell(p, "modem"),
            cell(p, "mr")
        ));
        if let Some(r) = p["reason"].as_str() {
            out.push_str(&format!(": {}", printable(r)));
        }
        out.push('\n');
    }
    out
}

/// `a.b: value` lines for nested counters, sorted by key.
fn flatten(prefix: &str, v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        Value::String(s) => out.push_str(&format!("{}: {}\n", printable(prefix), printable(s))),
        other => out.push_str(&format!("{}: {other}\n", printable(prefix))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_reads_as_lines() {
        let v = json!({"message":7,"key":null,"to":"+4930","state":"sent","error":null,
            "parts":[{"seq":1,"state":"sent","modem":"m0","mr":12,"reason":null},
                     {"seq":2,"state":"queued","modem":null,"mr":null,"reason":"waiting for quota"}]});
        assert_eq!(
            human_message(&v),
            "message 7 to +4930: sent\n  part 1: sent via m0 (mr 12)\n  part 2: queued via - (mr -): waiting for quota\n"
        );
    }

    #[test]
    fn stats_flatten_to_dotted_keys() {
        let mut out = String::new();
        flatten(
            "",
            &json!({"outbound":{"queued":3,"sent":1},"modems":2}),
            &mut out,
        );
        assert_eq!(out, "modems: 2\noutbound.queued: 3\noutbound.sent: 1\n");
    }

    #[test]
    fn daemon_text_is_escaped() {
        let v = json!({"message":7,"to":"+49\u{1b}[2J","state":"failed","error":"+CMS ERROR\r\u{9b}",
            "parts":[{"seq":1,"state":"failed","modem":"m\u{202e}0","mr":null,"reason":"x\u{7}"}]});
        let h = human_message(&v);
        assert!(
            !h.trim_end()
                .contains(|c: char| c != '\n' && crate::cli::client::is_unsafe_char(c)),
            "{h:?}"
        );
        assert!(
            h.contains("+49\\x1b[2J") && h.contains("\\r\\u{9b}") && h.contains("m\\u{202e}0"),
            "{h}"
        );
        let mut out = String::new();
        flatten("", &json!({"operator": "\u{1b}[5m"}), &mut out);
        assert_eq!(out, "operator: \\x1b[5m\n");
    }
}
