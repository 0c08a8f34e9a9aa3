//! `smsgate send`: queue SMS through the daemon, one `send` request per
//! recipient (or per CSV row with `--batch`), optionally waiting until the
//! network accepted (`sent`) or the phone confirmed (`delivered`) them.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::bus::protocol::MAX_LINE;

use super::client::{
    printable, strip_envelope, Client, ClientError, SocketArg, EXIT_FAILED, EXIT_TIMEOUT,
    EXIT_USAGE,
};

/// Largest text read from stdin or a batch file: far beyond the longest
/// SMS the daemon accepts (10 parts by default), small enough to hold.
const MAX_INPUT: u64 = 16 * 1024 * 1024;

/// Refusal of an empty text without `--allow-empty`.
const EMPTY_TEXT: &str = "error: empty text; give it with --text or on stdin, \
                          or pass --allow-empty to send an empty SMS";

/// Arguments of `smsgate send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// `--socket PATH` (or `SMSGATE_SOCKET`): where the daemon listens.
    #[command(flatten)]
    pub socket: SocketArg,
    /// Recipient in international format (+4930...); repeat for several, one message each.
    #[arg(long, required_unless_present = "batch", conflicts_with = "batch")]
    pub to: Vec<String>,
    /// The message text [default: read from stdin].
    #[arg(long, conflicts_with = "batch")]
    pub text: Option<String>,
    /// Idempotency key: resending with the same key does not send twice
    /// (with several --to, each message gets KEY:NUMBER).
    #[arg(long, conflicts_with = "batch")]
    pub key: Option<String>,
    /// Send through this modem (name, IMEI or ICCID).
    #[arg(long)]
    pub modem: Option<String>,
    /// Ask the network for a delivery report.
    #[arg(long)]
    pub report: bool,
    /// Flash message (class 0): shown at once, not stored by the phone.
    #[arg(long)]
    pub flash: bool,
    /// Give up sending after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub validity: Option<u64>,
    /// Send later: RFC 3339 time or unix seconds.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Wait until every message is sent (accepted by the network) or delivered (implies --report).
    #[arg(long, value_enum, conflicts_with = "batch")]
    pub wait: Option<WaitFor>,
    /// Seconds to wait with --wait (exit 75 when they pass); only with --wait.
    #[arg(long, value_name = "SECS", default_value_t = 120, requires = "wait")]
    pub timeout: u64,
    /// Send an empty text (refused otherwise: an empty `--text ""` or
    /// stdin is almost always a script's mistake).
    #[arg(long)]
    pub allow_empty: bool,
    /// One JSON object per message on stdout instead of the id.
    #[arg(long)]
    pub json: bool,
    /// Send one message per row of a CSV file with a header: to,text[,key].
    #[arg(long, value_name = "FILE.csv")]
    pub batch: Option<PathBuf>,
}

/// What `--wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WaitFor {
    /// The network accepted every part (`+CMGS`).
    Sent,
    /// A status report confirmed every part.
    Delivered,
}

/// Where a message stands for a `--wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Not yet where we wait for it.
    Pending,
    /// Reached the awaited state (or a better one).
    Reached,
    /// Will never reach it (`failed`, `expired`, `cancelled`).
    Failed,
}

impl WaitFor {
    /// Judges a message state (store `MessageState` text) against the wait.
    pub fn judge(self, state: &str) -> Progress {
        match (self, state) {
            (_, "failed" | "expired" | "cancelled") => Progress::Failed,
            (_, "delivered") | (WaitFor::Sent, "sent") => Progress::Reached,
            _ => Progress::Pending,
        }
    }
}

/// Runs `smsgate send`.
pub fn run(args: SendArgs) -> ExitCode {
    if let Some(file) = args.batch.clone() {
        return run_batch(&args, &file);
    }
    let text = match &args.text {
        Some(t) => t.clone(),
        None => match read_stdin() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
    };
    if text.is_empty() && !args.allow_empty {
        eprintln!("{EMPTY_TEXT}");
        return ExitCode::from(EXIT_USAGE);
    }
    match send_all(&args, &text) {
        Ok(code) => ExitCode::from(code),
        Err(e) => e.report(),
    }
}

/// The message text from stdin, without the final newline `echo` adds.
fn read_stdin() -> Result<String, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("reading the message from stdin; end it with Ctrl-D (or use --text)");
    }
    let mut buf = Vec::new();
    stdin
        .lock()
        .take(MAX_INPUT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("reading the text from stdin: {e}"))?;
    if buf.len() as u64 > MAX_INPUT {
        return Err(format!(
            "the text on stdin is longer than {MAX_INPUT} bytes"
        ));
    }
    let mut text =
        String::from_utf8(buf).map_err(|_| "the text on stdin is not UTF-8".to_string())?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// The `send` request for one message.
fn request(args: &SendArgs, to: &str, text: &str, key: Option<String>) -> Value {
    let mut req = json!({"to": to, "text": text});
    let report = args.report || args.wait == Some(WaitFor::Delivered);
    if let Some(k) = key {
        req["key"] = k.into();
    }
    if let Some(m) = &args.modem {
        req["modem"] = m.clone().into();
    }
    if report {
        req["report"] = true.into();
    }
    if args.flash {
        req["flash"] = true.into();
    }
    if let Some(v) = args.validity {
        req["validity"] = v.into();
    }
    if let Some(at) = &args.at {
        // Unix seconds go as a number, anything else as RFC 3339 text.
        req["send_at"] = match at.parse::<i64>() {
            Ok(n) => n.into(),
            Err(_) => at.clone().into(),
        };
    }
    req
}

/// Refuses, before anything is sent, a request the daemon would answer
/// with `line_too_long` and a closed connection (its request lines are at
/// most [`MAX_LINE`] bytes): as `text_too_long`, like any other text the
/// daemon cannot send, so the other recipients or rows still go out.
fn check_size(req: &Value) -> Result<(), ClientError> {
    // The client adds `"op":"send","id":N,` and the newline.
    const ENVELOPE: usize = 48;
    let len = req.to_string().len() + ENVELOPE;
    if len <= MAX_LINE {
        return Ok(());
    }
    let text = req["text"].as_str().map_or(0, str::len);
    Err(ClientError::Refused {
        code: "text_too_long".into(),
        message: format!(
            "the text is {text} bytes; a request to the daemon is at most {MAX_LINE} bytes \
             (an SMS of 10 parts holds about 1,500 characters): shorten it or split it"
        ),
    })
}

/// What the daemon calls the recipient (E.164 after normalising, or the
/// `sms:` handle for a client that does not see numbers): from the reply
/// (daemons since the `to` field), else from the message's `status`; the
/// typed number only when the daemon does not answer.
fn daemon_to(client: &mut Client, reply: &Value, typed: &str) -> String {
    if let Some(to) = reply["to"].as_str() {
        return to.to_string();
    }
    let Some(id) = reply["message"].as_i64() else {
        return typed.to_string();
    };
    match client.request("status", json!({"message": id})) {
        Ok(status) => status["to"].as_str().unwrap_or(typed).to_string(),
        Err(_) => typed.to_string(),
    }
}

/// One `send` request: refused locally when too long; a daemon that
/// closes the connection after refusing (`line_too_long`, when its limit
/// is lower than ours) is reconnected (and re-subscribed for `--wait`),
/// so the next recipient still gets its message.
fn send_one(client: &mut Client, req: Value, subscribe: bool) -> Result<Value, ClientError> {
    check_size(&req)?;
    match client.request("send", req) {
        Err(ClientError::Refused { code, message }) if code == "line_too_long" => {
            let socket = client.socket().to_path_buf();
            *client = Client::connect(&socket)?;
            if subscribe {
                client.request("subscribe", json!({"events": ["status"]}))?;
            }
            Err(ClientError::Refused {
                code: "text_too_long".into(),
                message: format!("the daemon refused the request as too long ({message})"),
            })
        }
        other => other,
    }
}

/// Sends one message per `--to`; returns the exit code.
fn send_all(args: &SendArgs, text: &str) -> Result<u8, ClientError> {
    let mut client = Client::connect(&args.socket.socket)?;
    if args.wait.is_some() {
        // Subscribe before sending so that no state change can slip by.
        client.request("subscribe", json!({"events": ["status"]}))?;
    }
    let mut code = 0u8;
    let mut accepted: Vec<(String, Value)> = Vec::new();
    for to in &args.to {
        let key = args.key.as_ref().map(|k| {
            if args.to.len() > 1 {
                format!("{k}:{to}")
            } else {
                k.clone()
            }
        });
        match send_one(
            &mut client,
            request(args, to, text, key),
            args.wait.is_some(),
        ) {
            Ok(reply) => {
                let mut reply = strip_envelope(reply);
                if args.json {
                    reply["to"] = daemon_to(&mut client, &reply, to).into();
                }
                // Scripts do `id=$(smsgate send ...)`: without --json,
                // stdout is only the id, also with --wait (the final state
                // goes to stderr); with --json and --wait, one object per
                // message once it is settled.
                if args.wait.is_none() || !args.json {
                    print_accepted(args.json, &reply);
                }
                accepted.push((to.clone(), reply));
            }
            Err(e @ ClientError::Refused { .. }) => {
                eprintln!("error: {}: {}", printable(to), printable(&e.to_string()));
                code = worse(code, e.exit_code());
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(wait) = args.wait {
        let deadline = Instant::now() + Duration::from_secs(args.timeout);
        code = worse(
            code,
            wait_all(&mut client, wait, &accepted, deadline, args.json)?,
        );
    }
    Ok(code)
}

/// The more telling of two exit codes (anything beats 0, and a specific
/// code beats the generic 1).
fn worse(a: u8, b: u8) -> u8 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (EXIT_FAILED, x) | (x, EXIT_FAILED) => x,
        (x, _) => x,
    }
}

/// The id, or with `json` the daemon's reply (its `to` already the
/// daemon's, [`daemon_to`]).
fn print_accepted(json: bool, reply: &Value) {
    if json {
        println!("{reply}");
    } else {
        println!("{}", reply["message"]);
    }
}

/// A spinner on stderr, only for people (stderr a terminal).
fn spinner(text: String) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(text);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Waits until every accepted message reached `wait` or failed; prints
/// `message ID: STATE` to stderr (stdout holds only the ids), or a JSON
/// object per message to stdout with `json`; returns the exit code.
fn wait_all(
    client: &mut Client,
    wait: WaitFor,
    accepted: &[(String, Value)],
    deadline: Instant,
    json: bool,
) -> Result<u8, ClientError> {
    // message id -> (recipient, latest state, latest status object)
    let mut states: BTreeMap<i64, (String, String, Value)> = BTreeMap::new();
    for (to, reply) in accepted {
        if let Some(id) = reply["message"].as_i64() {
            let state = reply["state"].as_str().unwrap_or("queued").to_string();
            let to = reply["to"].as_str().unwrap_or(to).to_string();
            states.insert(id, (to, state, reply.clone()));
        }
    }
    let target = match wait {
        WaitFor::Sent => "sent",
        WaitFor::Delivered => "delivered",
    };
    let bar = spinner(format!(
        "waiting for {} message(s) to be {target}",
        states.len()
    ));
    // The state may have moved between `send` and now: ask once.
    let ids: Vec<i64> = states.keys().copied().collect();
    for id in ids {
        let status = strip_envelope(client.request("status", json!({"message": id}))?);
        update(&mut states, id, status);
    }
    let pending = |s: &BTreeMap<i64, (String, String, Value)>| {
        s.values()
            .filter(|(_, st, _)| wait.judge(st) == Progress::Pending)
            .count()
    };
    while pending(&states) > 0 {
        bar.set_message(format!(
            "waiting for {} message(s) to be {target}",
            pending(&states)
        ));
        let Some(ev) = client.next_event(deadline)? else {
            break;
        };
        if ev["event"] != "status" {
            continue;
        }
        if let Some(id) = ev["message"].as_i64() {
            update(&mut states, id, ev);
        }
    }
    bar.finish_and_clear();
    let mut code = 0u8;
    for (id, (to, state, detail)) in &states {
        if json {
            let mut v = detail.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("event");
                m.remove("cursor");
            }
            v["message"] = (*id).into();
            // The daemon's own `to` (status replies carry it), else ours.
            if !v["to"].is_string() {
                v["to"] = to.clone().into();
            }
            v["state"] = state.clone().into();
            println!("{v}");
        } else {
            eprintln!("message {id}: {}", printable(state));
        }
        match wait.judge(state) {
            Progress::Reached => {}
            Progress::Failed => {
                let why = detail["error"].as_str().unwrap_or("no reason given");
                eprintln!(
                    "error: message {id} to {}: {}: {}",
                    printable(to),
                    printable(state),
                    printable(why)
                );
                code = worse(code, EXIT_FAILED);
            }
            Progress::Pending => {
                eprintln!(
                    "error: message {id} to {} is still {}, not {target}, \
                     after waiting (raise --timeout; it stays queued)",
                    printable(to),
                    printable(state)
                );
                code = worse(code, EXIT_TIMEOUT);
            }
        }
    }
    Ok(code)
}

fn update(states: &mut BTreeMap<i64, (String, String, Value)>, id: i64, status: Value) {
    if let Some(entry) = states.get_mut(&id) {
        if let Some(s) = status["state"].as_str() {
            entry.1 = s.to_string();
        }
        entry.2 = status;
    }
}

// ------------------------------------------------------------------ batch

/// One CSV record and the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Line number in the file where the record starts.
    pub line: usize,
    /// The fields, unquoted.
    pub fields: Vec<String>,
}

/// Parses CSV as RFC 4180 says: fields separated by commas, optionally in
/// double quotes (which may hold commas, newlines and `""` for a quote).
/// Blank lines are skipped. A quote left open is an error naming its line.
pub fn parse_csv(text: &str) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1usize;
    let mut start = 1usize;
    let mut quoted = false; // inside quotes
    let mut was_quoted = false; // this field had quotes
    let mut chars = text
        .strip_prefix('\u{feff}')
        .unwrap_or(text)
        .chars()
        .peekable();
    let end_record =
        |fields: &mut Vec<String>, field: &mut String, records: &mut Vec<Record>, start| {
            fields.push(std::mem::take(field));
            let f = std::mem::take(fields);
            if !(f.len() == 1 && f[0].trim().is_empty()) {
                records.push(Record {
                    line: start,
                    fields: f,
                });
            }
        };
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                end_record(&mut fields, &mut field, &mut records, start);
                was_quoted = false;
                line += 1;
                start = line;
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(format!("line {start}: a quoted field is never closed"));
    }
    end_record(&mut fields, &mut field, &mut records, start);
    Ok(records)
}

/// A batch row ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRow {
    /// Line number in the file.
    pub line: usize,
    /// Recipient.
    pub to: String,
    /// Text.
    pub text: String,
    /// Idempotency key, when the file has a `key` column.
    pub key: Option<String>,
}

/// Turns CSV records (the first one the header naming `to`, `text` and
/// optionally `key`) into rows; a bad row is an error with its line
/// number, and the other rows still come through.
pub fn batch_rows(records: &[Record]) -> Result<Vec<Result<BatchRow, String>>, String> {
    let Some((header, rows)) = records.split_first() else {
        return Err("the file is empty (expected a header: to,text[,key])".into());
    };
    let col = |name: &str| {
        header
            .fields
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (Some(to), Some(text)) = (col("to"), col("text")) else {
        return Err(format!(
            "line {}: the header must name the columns to,text[,key] (found {:?})",
            header.line, header.fields
        ));
    };
    let key = col("key");
    let width = header.fields.len();
    Ok(rows
        .iter()
        .map(|r| {
            if r.fields.len() != width {
                return Err(format!(
                    "line {}: {} fields, the header has {width}",
                    r.line,
                    r.fields.len()
                ));
            }
            let get = |i: usize| r.fields.get(i).cloned().unwrap_or_default();
            Ok(BatchRow {
                line: r.line,
                to: get(to).trim().to_string(),
                text: get(text),
                key: key.map(get).filter(|k| !k.is_empty()),
            })
        })
        .collect())
}

fn read_batch(file: &Path) -> Result<Vec<Result<BatchRow, String>>, String> {
    let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut buf = Vec::new();
    f.take(MAX_INPUT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    if buf.len() as u64 > MAX_INPUT {
        return Err(format!("{}: larger than {MAX_INPUT} bytes", file.display()));
    }
    let text =
        String::from_utf8(buf).map_err(|e| format!("{}: not UTF-8 ({e})", file.display()))?;
    let records = parse_csv(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    batch_rows(&records).map_err(|e| format!("{}: {e}", file.display()))
}

fn run_batch(args: &SendArgs, file: &Path) -> ExitCode {
    let rows = match read_batch(file) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let mut client = match Client::connect(&args.socket.socket) {
        Ok(c) => c,
        Err(e) => return e.report(),
    };
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(rows.len() as u64);
        if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let name = file.display().to_string();
    let (mut ok, mut failed) = (0usize, 0usize);
    let stdout = std::io::stdout();
    for row in rows {
        bar.inc(1);
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                bar.suspend(|| eprintln!("error: {name}:{e}"));
                failed += 1;
                continue;
            }
        };
        if row.text.is_empty() && !args.allow_empty {
            failed += 1;
            bar.suspend(|| {
                eprintln!(
                    "error: {name}:line {}: empty text (pass --allow-empty to send it)",
                    row.line
                )
            });
            continue;
        }
        match send_one(
            &mut client,
            request(args, &row.to, &row.text, row.key.clone()),
            false,
        ) {
            Ok(reply) => {
                ok += 1;
                let reply = strip_envelope(reply);
                let out = if args.json {
                    let mut v = reply;
                    v["to"] = daemon_to(&mut client, &v, &row.to).into();
                    v["line"] = row.line.into();
                    v.to_string()
                } else {
                    reply["message"].to_string()
                };
                bar.suspend(|| {
                    let _ = writeln!(stdout.lock(), "{out}");
                });
            }
            Err(e @ ClientError::Refused { .. }) => {
                failed += 1;
                bar.suspend(|| {
                    eprintln!(
                        "error: {name}:line {}: {}: {}",
                        row.line,
                        printable(&row.to),
                        printable(&e.to_string())
                    )
                });
            }
            Err(e) => {
                bar.abandon();
                eprintln!("error: {name}: stopped at line {}: {e}", row.line);
                return ExitCode::from(e.exit_code());
            }
        }
    }
    bar.finish_and_clear();
    eprintln!("{ok} message(s) queued, {failed} failed");
    ExitCode::from(if failed > 0 { EXIT_FAILED } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_commas_and_newlines() {
        let recs = parse_csv(
            "to,text,key\r\n+491,\"hi, \"\"you\"\"\",k1\n\n+492,\"two\nlines\",\n+493,plain,k3",
        )
        .unwrap();
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[1].fields, ["+491", "hi, \"you\"", "k1"]);
        assert_eq!(recs[1].line, 2);
        assert_eq!(recs[2].fields, ["+492", "two\nlines", ""]);
        assert_eq!(recs[2].line, 4);
        assert_eq!(recs[3].line, 6);
    }

    #[test]
    fn csv_open_quote_names_its_line() {
        let e = parse_csv("to,text\n+491,\"never closed\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn batch_rows_report_bad_rows_and_keep_the_rest() {
        let recs = parse_csv("text,to\nhello,+491\nonly-one-field\n,+493\n").unwrap();
        let rows = batch_rows(&recs).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0],
            Ok(BatchRow {
                line: 2,
                to: "+491".into(),
                text: "hello".into(),
                key: None
            })
        );
        assert!(rows[1].as_ref().unwrap_err().starts_with("line 3:"));
        assert_eq!(rows[2].as_ref().unwrap().text, "");
    }

    #[test]
    fn batch_needs_a_header() {
        assert!(batch_rows(&[]).is_err());
        let recs = parse_csv("+491,hello\n").unwrap();
        assert!(batch_rows(&recs).unwrap_err().contains("to,text"));
    }

    #[test]
    fn waits_judge_states() {
        assert_eq!(WaitFor::Sent.judge("queued"), Progress::Pending);
        assert_eq!(WaitFor::Sent.judge("sending"), Progress::Pending);
        assert_eq!(WaitFor::Sent.judge("sent"), Progress::Reached);
        assert_eq!(WaitFor::Sent.judge("delivered"), Progress::Reached);
        assert_eq!(WaitFor::Delivered.judge("sent"), Progress::Pending);
        assert_eq!(WaitFor::Delivered.judge("delivered"), Progress::Reached);
        for s in ["failed", "expired", "cancelled"] {
            assert_eq!(WaitFor::Delivered.judge(s), Progress::Failed);
        }
    }

    fn args(to: &[&str], wait: Option<WaitFor>, socket: &Path) -> SendArgs {
        SendArgs {
            socket: SocketArg {
                socket: socket.to_path_buf(),
            },
            to: to.iter().map(|s| s.to_string()).collect(),
            text: Some("hi".into()),
            key: Some("k".into()),
            modem: None,
            report: false,
            flash: false,
            validity: None,
            at: None,
            wait,
            timeout: 5,
            allow_empty: false,
            json: false,
            batch: None,
        }
    }

    #[test]
    fn wait_follows_status_events_per_message() {
        use crate::cli::client::tests::{fake_daemon, hello, ok};
        use std::sync::{Arc, Mutex};
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let (_d, path) = fake_daemon(move |req| {
            log.lock().unwrap().push(req.clone());
            match req["op"].as_str()? {
                "hello" => Some(vec![hello(req)]),
                "subscribe" => Some(vec![ok(req, json!({"cursor": 10}))]),
                "send" if req["to"] == "bad" => Some(vec![json!({"id": req["id"], "ok": false,
                    "op": "send", "error": {"code": "invalid_number", "message": "bad"}})]),
                "send" => {
                    let id = if req["to"] == "+491" { 1 } else { 2 };
                    Some(vec![ok(
                        req,
                        json!({"message": id, "created": true, "parts": 1, "state": "queued"}),
                    )])
                }
                "status" if req["message"] == 2 => Some(vec![
                    ok(req, json!({"message": 2, "state": "sending"})),
                    json!({"event":"status","cursor":11,"message":2,"state":"sent"}),
                    json!({"event":"status","cursor":12,"message":2,"state":"delivered"}),
                    json!({"event":"status","cursor":13,"message":1,"state":"delivered"}),
                ]),
                "status" => Some(vec![ok(req, json!({"message": 1, "state": "sent"}))]),
                _ => None,
            }
        });
        let a = args(&["+491", "+492", "bad"], Some(WaitFor::Delivered), &path);
        // One rejected recipient: exit 1, the others still delivered.
        assert_eq!(send_all(&a, "hi").unwrap(), EXIT_FAILED);
        let seen = seen.lock().unwrap();
        let sends: Vec<&Value> = seen.iter().filter(|r| r["op"] == "send").collect();
        assert_eq!(sends.len(), 3);
        // --wait delivered asks for a report; keys differ per recipient.
        assert_eq!(sends[0]["report"], true);
        assert_eq!(sends[0]["key"], "k:+491");
        assert_eq!(sends[1]["key"], "k:+492");
        assert_eq!(seen[1]["op"], "subscribe");
    }

    #[test]
    fn wait_times_out_with_75() {
        use crate::cli::client::tests::{fake_daemon, hello, ok};
        let (_d, path) = fake_daemon(move |req| match req["op"].as_str()? {
            "hello" => Some(vec![hello(req)]),
            "subscribe" => Some(vec![ok(req, json!({"cursor": 1}))]),
            "send" => Some(vec![ok(req, json!({"message": 7, "state": "queued"}))]),
            _ => Some(vec![ok(req, json!({"message": 7, "state": "queued"}))]),
        });
        let mut a = args(&["+491"], Some(WaitFor::Sent), &path);
        a.timeout = 0;
        assert_eq!(send_all(&a, "hi").unwrap(), EXIT_TIMEOUT);
    }

    #[test]
    fn exit_codes_keep_the_most_telling() {
        assert_eq!(worse(0, 0), 0);
        assert_eq!(worse(0, EXIT_FAILED), EXIT_FAILED);
        assert_eq!(worse(EXIT_FAILED, EXIT_TIMEOUT), EXIT_TIMEOUT);
        assert_eq!(worse(EXIT_TIMEOUT, EXIT_FAILED), EXIT_TIMEOUT);
    }
}
