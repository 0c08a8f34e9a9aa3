//! A small blocking client of the bus socket (protocol v1, newline-delimited
//! JSON, see `docs/protocol.md`), shared by `send`, `inbox`, `status`,
//! `modems`, `doctor` and `demo`.
//!
//! Blocking on purpose: every client command does one thing at a time, and
//! a plain `UnixStream` with read timeouts keeps every wait bounded without
//! a runtime. Events that arrive while a reply is awaited are kept, in
//! order, for [`Client::next_event`].

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

/// The daemon's socket unless `--socket` or `SMSGATE_SOCKET` say otherwise.
pub const DEFAULT_SOCKET: &str = "/run/smsgate/smsgate.sock";

/// Exit code: the message was rejected or failed, or a check failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad command-line usage (clap uses it too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code (sysexits `EX_UNAVAILABLE`): the daemon is not reachable.
pub const EXIT_UNAVAILABLE: u8 = 69;
/// Exit code (sysexits `EX_TEMPFAIL`): a wait timed out.
pub const EXIT_TIMEOUT: u8 = 75;
/// Exit code (sysexits `EX_NOPERM`): the daemon or the socket refused us.
pub const EXIT_NOT_ALLOWED: u8 = 77;

/// Longest line accepted from the daemon: a `modems` reply of dozens of
/// modems is a few KiB; anything near this limit is not our daemon.
const MAX_LINE: usize = 4 * 1024 * 1024;

/// How long one reply may take unless the caller says otherwise.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why talking to the daemon failed. Each variant maps to one exit code
/// ([`ClientError::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody listens at the socket (no daemon, stale socket, wrong path).
    #[error("cannot reach the daemon at {}: {source} ({hint})", socket.display())]
    Unreachable {
        /// The socket path tried.
        socket: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
        /// The likely cause, for people.
        hint: &'static str,
    },
    /// The socket's permissions, or the daemon's access list, refused us.
    #[error("not allowed to use {}: {detail}", socket.display())]
    NotAllowed {
        /// The socket path.
        socket: PathBuf,
        /// What refused and how to fix it.
        detail: String,
    },
    /// The connection broke or was closed by the daemon.
    #[error("connection to {} lost: {detail}", socket.display())]
    Lost {
        /// The socket path.
        socket: PathBuf,
        /// What happened.
        detail: String,
    },
    /// No answer (or no awaited event) in time.
    #[error("{0}")]
    Timeout(String),
    /// The daemon answered something that is not protocol v1.
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
    /// The daemon refused the request (`"ok":false`).
    #[error("{code}: {message}")]
    Refused {
        /// The stable error code (`invalid_number`, `queue_full`, ...).
        code: String,
        /// The daemon's explanation.
        message: String,
    },
}

impl ClientError {
    /// The process exit code for this error (see `docs/cli.md`).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Unreachable { .. } | ClientError::Lost { .. } => EXIT_UNAVAILABLE,
            ClientError::Protocol(_) => EXIT_UNAVAILABLE,
            ClientError::NotAllowed { .. } => EXIT_NOT_ALLOWED,
            ClientError::Timeout(_) => EXIT_TIMEOUT,
            ClientError::Refused { code, .. } => match code.as_str() {
                "not_allowed" => EXIT_NOT_ALLOWED,
                "unavailable" => EXIT_UNAVAILABLE,
                _ => EXIT_FAILED,
            },
        }
    }

    /// Prints `error: ...` on stderr and returns the matching exit code.
    /// The daemon's message may quote what a client or a modem sent, so
    /// control characters are shown escaped ([`printable`]).
    pub fn report(&self) -> ExitCode {
        eprintln!("error: {}", printable(&self.to_string()));
        ExitCode::from(self.exit_code())
    }
}

/// `--socket PATH`, shared by every client command.
#[derive(Debug, Clone, clap::Args)]
pub struct SocketArg {
    /// The daemon's bus socket.
    #[arg(long, env = "SMSGATE_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

/// One connection to the daemon.
pub struct Client {
    socket: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    /// Events read while waiting for a reply, oldest first.
    events: VecDeque<Value>,
    /// Bytes of a line not yet complete when a read timed out.
    partial: Vec<u8>,
    reply_timeout: Duration,
    /// The `hello` reply.
    hello: Value,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("socket", &self.socket)
            .finish()
    }
}

/// Explains a failed `connect`.
fn connect_error(socket: &Path, source: io::Error) -> ClientError {
    use io::ErrorKind::*;
    let hint = match source.kind() {
        PermissionDenied => {
            let detail = format!(
                "{source}; your user needs to be in the socket's group (usually `smsgate`: \
                 `sudo usermod -aG smsgate $USER`, then log in again) or be listed in \
                 [bus] allow_users"
            );
            return ClientError::NotAllowed {
                socket: socket.to_path_buf(),
                detail,
            };
        }
        NotFound => {
            "no socket there: is the daemon running (`systemctl status smsgate` or \
             `smsgate run`)? Use --socket or SMSGATE_SOCKET for another path"
        }
        ConnectionRefused => {
            "the socket exists but nobody listens: the daemon stopped or crashed \
             (`systemctl status smsgate`)"
        }
        _ => "is the daemon running, and is this its socket?",
    };
    ClientError::Unreachable {
        socket: socket.to_path_buf(),
        source,
        hint,
    }
}

impl Client {
    /// Connects and says `hello` (which also tells whether the daemon's
    /// access list lets us in).
    pub fn connect(socket: &Path) -> Result<Client, ClientError> {
        Client::connect_with(socket, DEFAULT_REPLY_TIMEOUT)
    }

    /// [`Client::connect`] with another reply timeout.
    pub fn connect_with(socket: &Path, reply_timeout: Duration) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(socket).map_err(|e| connect_error(socket, e))?;
        let lost = |e: io::Error| ClientError::Lost {
            socket: socket.to_path_buf(),
            detail: e.to_string(),
        };
        let writer = stream.try_clone().map_err(lost)?;
        writer
            .set_write_timeout(Some(reply_timeout.max(Duration::from_millis(1))))
            .map_err(lost)?;
        let mut client = Client {
            socket: socket.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
            events: VecDeque::new(),
            partial: Vec::new(),
            reply_timeout: reply_timeout.max(Duration::from_millis(1)),
            hello: Value::Null,
        };
        let hello = match client.request("hello", json!({"client": "smsgate-cli"})) {
            Ok(h) => h,
            // A refused peer is told `not_allowed` and disconnected; an
            // older daemon may just close the connection.
            Err(ClientError::Lost { socket, detail }) => {
                return Err(ClientError::Lost {
                    socket,
                    detail: format!(
                        "{detail} (the daemon closed the connection at once: is your user \
                         in [bus] allow_users or allow_groups?)"
                    ),
                })
            }
            Err(ClientError::Refused { code, message }) if code == "not_allowed" => {
                return Err(ClientError::NotAllowed {
                    socket: socket.to_path_buf(),
                    detail: message,
                })
            }
            Err(e) => return Err(e),
        };
        client.hello = hello;
        Ok(client)
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's `hello` reply (`version`, `server`, `user`, `see_numbers`).
    pub fn hello(&self) -> &Value {
        &self.hello
    }

    /// Sends `{"op": op, "id": n, ...fields}` and returns the reply object
    /// (with `ok`, `op` and `id` still in it). A reply with `"ok": false`
    /// is [`ClientError::Refused`].
    pub fn request(&mut self, op: &str, fields: Value) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut obj = match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        obj.insert("op".into(), op.into());
        obj.insert("id".into(), id.into());
        let mut line = Value::Object(obj).to_string();
        line.push('\n');
        let mut deadline = Instant::now() + self.reply_timeout;
        if let Err(e) = self.writer.write_all(line.as_bytes()) {
            // A daemon that refuses us writes its reason and closes; the
            // reason may still be waiting to be read.
            deadline = Instant::now() + Duration::from_millis(200);
            let lost = self.lost(e);
            match self.read_value(deadline) {
                Ok(Some(v)) if v.get("ok") == Some(&Value::Bool(false)) => {
                    return Err(refusal(&v));
                }
                _ => return Err(lost),
            }
        }
        loop {
            let Some(v) = self.read_value(deadline)? else {
                return Err(ClientError::Timeout(format!(
                    "no answer to `{op}` from {} within {:?}",
                    self.socket.display(),
                    self.reply_timeout
                )));
            };
            if v.get("event").is_some() {
                self.events.push_back(v);
                continue;
            }
            // A reply to an earlier request we gave up on is skipped; an
            // error without id (bad_json, line_too_long) is ours: we have
            // exactly one request outstanding.
            match v.get("id").and_then(Value::as_u64) {
                Some(got) if got != id => continue,
                _ => {}
            }
            return match v.get("ok").and_then(Value::as_bool) {
                Some(true) => Ok(v),
                Some(false) => Err(refusal(&v)),
                None => Err(ClientError::Protocol(truncate(&v.to_string()))),
            };
        }
    }

    /// The next event (an object with an `event` field), waiting until
    /// `deadline`; `Ok(None)` when the deadline passed.
    pub fn next_event(&mut self, deadline: Instant) -> Result<Option<Value>, ClientError> {
        if let Some(v) = self.events.pop_front() {
            return Ok(Some(v));
        }
        loop {
            match self.read_value(deadline)? {
                None => return Ok(None),
                Some(v) if v.get("event").is_some() => return Ok(Some(v)),
                // A stray reply (to a request we timed out on): not an event.
                Some(_) => continue,
            }
        }
    }

    fn lost(&self, e: io::Error) -> ClientError {
        ClientError::Lost {
            socket: self.socket.clone(),
            detail: e.to_string(),
        }
    }

    /// Reads one JSON object, or `None` at the deadline.
    fn read_value(&mut self, deadline: Instant) -> Result<Option<Value>, ClientError> {
        let Some(line) = self.read_line(deadline)? else {
            return Ok(None);
        };
        let v: Value = serde_json::from_slice(&line)
            .map_err(|e| ClientError::Protocol(format!("{e}: {}", lossy(&line))))?;
        if !v.is_object() {
            return Err(ClientError::Protocol(lossy(&line)));
        }
        Ok(Some(v))
    }

    /// Reads one line (without the newline), keeping a partial line across
    /// timeouts so nothing is lost; `None` at the deadline.
    fn read_line(&mut self, deadline: Instant) -> Result<Option<Vec<u8>>, ClientError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some(left))
                .map_err(|e| self.lost(e))?;
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.lost(e)),
            };
            if buf.is_empty() {
                return Err(ClientError::Lost {
                    socket: self.socket.clone(),
                    detail: "the daemon closed the connection".into(),
                });
            }
            let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            self.partial.extend_from_slice(&buf[..take]);
            self.reader.consume(take);
            if self.partial.len() > MAX_LINE {
                return Err(ClientError::Protocol(format!(
                    "a line longer than {MAX_LINE} bytes"
                )));
            }
            if done {
                let mut line = std::mem::take(&mut self.partial);
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(line));
            }
        }
    }
}

/// The error of a `"ok": false` reply.
fn refusal(v: &Value) -> ClientError {
    let err = v.get("error");
    let field = |k: &str| {
        err.and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    ClientError::Refused {
        code: field("code"),
        message: field("message"),
    }
}

fn lossy(b: &[u8]) -> String {
    truncate(&String::from_utf8_lossy(b))
}

/// Cuts long daemon output in error messages.
fn truncate(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// A JSON object without the reply envelope (`ok`, `op`, `id`): what
/// `--json` prints.
pub fn strip_envelope(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.remove("ok");
        m.remove("op");
        m.remove("id");
    }
    v
}

/// A field as text for tables: strings bare (control characters
/// escaped, [`printable`]), null/missing as `-`.
pub fn cell(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) if s.is_empty() => "-".into(),
        Some(Value::String(s)) => printable(s),
        Some(other) => printable(&other.to_string()),
    }
}

/// Whether `c` would act on a terminal instead of showing: C0 controls,
/// DEL, C1 controls (`U+0080..=U+009F`, `U+009B` is a one-byte CSI) and
/// the bidi embeddings, overrides and isolates (`U+202A..=U+202E`,
/// `U+2066..=U+2069`) that reorder what follows them on the line.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Text from an SMS, a modem or the daemon made safe for a terminal:
/// every character [`is_unsafe_char`] names is shown as an escape (`\n`,
/// `\r`, `\t`, `\x1b`, `\u{202e}`), so an `ESC [31m` or a `\r` in a
/// message cannot recolour, rewrite or reorder the operator's screen.
/// Used for all human output; `--json` is printed as the daemon sent it
/// (JSON escapes C0 itself, and a program reads it, not a terminal).
pub fn printable(s: &str) -> String {
    if !s.chars().any(is_unsafe_char) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && is_unsafe_char(c) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if is_unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Prints rows as a left-aligned table with a header, columns two spaces
/// apart (widths in characters, so `ü` counts once).
pub fn print_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        let mut s = String::new();
        for (i, (c, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(c);
            let pad = w.saturating_sub(c.chars().count());
            s.push_str(&" ".repeat(pad));
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(out, &mut header.iter().copied())?;
    for row in rows {
        line(out, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::thread;

    /// A tiny in-test daemon: answers each request line with `answer`
    /// (`None`: close the connection), for one connection.
    pub(crate) fn fake_daemon(
        answer: impl Fn(&Value) -> Option<Vec<Value>> + Send + 'static,
    ) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus.sock");
        let listener = UnixListener::bind(&path).unwrap();
        thread::spawn(move || {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut w = stream.try_clone().unwrap();
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                let req: Value = serde_json::from_str(&line).unwrap();
                let Some(out) = answer(&req) else { return };
                for v in out {
                    if w.write_all(format!("{v}\n").as_bytes()).is_err() {
                        return;
                    }
                }
            }
        });
        (dir, path)
    }

    /// The reply envelope for `req`.
    pub(crate) fn ok(req: &Value, fields: Value) -> Value {
        let mut m = fields.as_object().cloned().unwrap_or_default();
        m.insert("ok".into(), true.into());
        m.insert("op".into(), req["op"].clone());
        m.insert("id".into(), req["id"].clone());
        Value::Object(m)
    }

    pub(crate) fn hello(req: &Value) -> Value {
        ok(
            req,
            json!({"version":1,"server":"smsgate test","user":"me","see_numbers":true}),
        )
    }

    #[test]
    fn missing_socket_is_unavailable_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.sock");
        let e = Client::connect(&path).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_UNAVAILABLE);
        let text = e.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("daemon running"), "{text}");
    }

    #[test]
    fn stale_socket_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stale.sock");
        drop(UnixListener::bind(&path).unwrap());
        let e = Client::connect(&path).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_UNAVAILABLE);
        assert!(e.to_string().contains("nobody listens"), "{e}");
    }

    #[test]
    fn permission_denied_is_not_allowed() {
        let e = connect_error(
            Path::new("/run/x.sock"),
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert_eq!(e.exit_code(), EXIT_NOT_ALLOWED);
        assert!(e.to_string().contains("smsgate"), "{e}");
    }

    #[test]
    fn refused_peer_is_not_allowed() {
        let (_d, path) = fake_daemon(|req| {
            Some(vec![json!({"id": req["id"], "ok": false, "op": "hello",
                "error": {"code": "not_allowed", "message": "uid 1000 is not allowed"}})])
        });
        let e = Client::connect(&path).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_NOT_ALLOWED);
        assert!(e.to_string().contains("uid 1000"), "{e}");
    }

    #[test]
    fn closed_at_once_is_lost_with_a_hint() {
        let (_d, path) = fake_daemon(|_| None);
        let e = Client::connect(&path).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_UNAVAILABLE);
        assert!(e.to_string().contains("allow_users"), "{e}");
    }

    #[test]
    fn events_before_a_reply_are_kept_in_order() {
        let (_d, path) = fake_daemon(|req| match req["op"].as_str() {
            Some("hello") => Some(vec![hello(req)]),
            Some("stats") => Some(vec![
                json!({"event":"status","cursor":1,"message":1,"state":"sent"}),
                // A late reply to some other request is skipped.
                json!({"id": 999, "ok": true, "op": "status"}),
                json!({"event":"status","cursor":2,"message":1,"state":"delivered"}),
                ok(req, json!({"stats": {"queued": 3}})),
            ]),
            _ => None,
        });
        let mut c = Client::connect(&path).unwrap();
        assert_eq!(c.hello()["version"], 1);
        let r = c.request("stats", json!({})).unwrap();
        assert_eq!(r["stats"]["queued"], 3);
        let far = Instant::now() + Duration::from_secs(5);
        assert_eq!(c.next_event(far).unwrap().unwrap()["cursor"], 1);
        assert_eq!(c.next_event(far).unwrap().unwrap()["cursor"], 2);
        // Nothing more: the deadline ends the wait.
        let soon = Instant::now() + Duration::from_millis(50);
        assert!(c.next_event(soon).unwrap().is_none());
    }

    #[test]
    fn refusals_carry_code_and_message() {
        let (_d, path) = fake_daemon(|req| match req["op"].as_str() {
            Some("hello") => Some(vec![hello(req)]),
            _ => Some(vec![json!({"id": req["id"], "ok": false, "op": "send",
                "error": {"code": "invalid_number", "message": "\"abc\" is not a phone number"}})]),
        });
        let mut c = Client::connect(&path).unwrap();
        let e = c
            .request("send", json!({"to":"abc","text":"x"}))
            .unwrap_err();
        assert_eq!(e.exit_code(), EXIT_FAILED);
        assert_eq!(
            e.to_string(),
            "invalid_number: \"abc\" is not a phone number"
        );
        // The connection is still usable after an error.
        assert!(c.request("send", json!({})).is_err());
    }

    #[test]
    fn garbage_from_the_daemon_is_a_protocol_error() {
        let (_d, path) = fake_daemon(|_| Some(vec![json!("not an object")]));
        let e = Client::connect(&path).unwrap_err();
        assert!(matches!(e, ClientError::Protocol(_)), "{e}");
    }

    #[test]
    fn a_silent_daemon_times_out() {
        let (_d, path) = fake_daemon(|_| Some(vec![]));
        let e = Client::connect_with(&path, Duration::from_millis(100)).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_TIMEOUT);
    }

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(printable("plain ü 😀"), "plain ü 😀");
        assert_eq!(printable("\u{1b}[31mred\rX\n"), "\\x1b[31mred\\rX\\n");
        assert_eq!(printable("a\u{7f}b\u{0}\t"), "a\\x7fb\\x00\\t");
        assert_eq!(printable("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(
            printable("\u{202e}evil\u{2066}x\u{2069}"),
            "\\u{202e}evil\\u{2066}x\\u{2069}"
        );
        // Zero-width joiners and other format characters that do not
        // reorder text are left alone (emoji sequences need them).
        assert_eq!(printable("👩\u{200d}💻"), "👩\u{200d}💻");
        assert_eq!(
            cell(&json!({"t": "\u{1b}]0;x\u{7}"}), "t"),
            "\\x1b]0;x\\x07"
        );
    }

    #[test]
    fn tables_align_on_characters() {
        let mut out = Vec::new();
        print_table(
            &mut out,
            &["NAME", "OP"],
            &[
                vec!["müde".into(), "x".into()],
                vec!["a".into(), "-".into()],
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME  OP\nmüde  x\na     -\n"
        );
    }
}
