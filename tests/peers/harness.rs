//! A small harness for driving outside SMS daemons (gammu-smsd, SMSTools3,
//! Kannel, the gammu CLI) against the real `smsgate sim` binary.
//!
//! Everything lives in one temporary work directory per test: the
//! simulator's links and socket, each peer's adapted configuration, spool
//! directories and logs. Every child runs in its own process group so that
//! daemons that fork (SMSTools3 forks one process per modem) are stopped
//! completely, by process-group id, when the test ends. When a test fails,
//! the work directory is kept and every log in it is printed.
#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// How long any single condition may take before the test fails. Generous:
/// the machine running CI may be slow and shared; the tests never sleep for
/// correctness, they poll until the condition holds.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The sender every inbound message is injected from.
pub const FROM: &str = "+15557654321";

/// The outside number every outbound message is sent to.
pub const TO: &str = "+15551112222";

/// A temporary work directory that is kept, with its logs printed, when the
/// test fails.
pub struct Work {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    what: String,
}

impl Work {
    /// Creates the work directory of peer `peer` against the simulator's
    /// modem profile `profile`.
    pub fn new(peer: &str, profile: &str) -> Work {
        let what = format!("{peer}-{profile}");
        let dir = tempfile::Builder::new()
            .prefix(&format!("smsgate-peers-{what}-"))
            .tempdir()
            .unwrap();
        let path = dir.path().to_path_buf();
        Work {
            dir: Some(dir),
            path,
            what,
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates (with parents) and returns a sub-directory.
    pub fn subdir(&self, rel: &str) -> PathBuf {
        let p = self.path.join(rel);
        fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        if !thread::panicking() {
            // Opt-in for studying a good run's dialogues (docs/peers.md).
            if std::env::var_os("SMSGATE_PEERS_KEEP").is_some() {
                if let Some(dir) = self.dir.take() {
                    let _ = dir.keep();
                }
                eprintln!(
                    "{}: work directory kept: {}",
                    self.what,
                    self.path.display()
                );
            }
            return;
        }
        // Keep everything for a post-mortem, and print the logs: CI output is
        // often all one gets.
        if let Some(dir) = self.dir.take() {
            let _ = dir.keep();
        }
        eprintln!(
            "==== {} failed; work directory kept: {}",
            self.what,
            self.path.display()
        );
        for file in files_under(&self.path) {
            let name = file.to_string_lossy();
            // Logs, and the adapted configurations they ran with.
            let wanted = [".log", ".out", ".conf", "smsdrc", "gammurc", "mo.txt"];
            if !wanted.iter().any(|w| name.ends_with(w)) {
                continue;
            }
            let Ok(bytes) = fs::read(&file) else { continue };
            // The tail is what matters; whole debug logs would drown CI.
            const TAIL: usize = 24 * 1024;
            let start = bytes.len().saturating_sub(TAIL);
            eprintln!(
                "==== {} ({} bytes{})",
                file.display(),
                bytes.len(),
                if start > 0 { ", tail" } else { "" }
            );
            eprintln!("{}", String::from_utf8_lossy(&bytes[start..]));
        }
    }
}

/// Every regular file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// The full path of an outside program, looked up in `PATH` and then in the
/// sbin directories (Debian installs `smsd` and `bearerbox` in `/usr/sbin`,
/// which is not on an ordinary user's `PATH`), or `None` after printing a
/// visible notice that `what` is skipped.
pub fn program(name: &str, what: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from));
    let found = dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file());
    if found.is_none() {
        eprintln!("SKIPPED: {what}: `{name}` is not installed");
    }
    found
}

/// A random hex tag so that each run's messages are told apart from any
/// other message (no `rand` needed: the std hasher is randomly keyed).
pub fn tag() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

/// The digits of a phone number (peers write numbers with or without `+`).
pub fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

/// Polls `probe` every 200 ms until it returns `Some`, or panics after
/// `limit` with `what` in the message.
pub fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// A child process (the simulator or a peer daemon), in its own process
/// group, stopped with SIGTERM (then SIGKILL) on drop.
pub struct Proc {
    name: String,
    child: Child,
    /// Set once stopped, so the group id (which may be reused by then) is
    /// never signalled twice.
    stopped: bool,
}

impl Proc {
    /// Spawns `cmd` with stdin closed and stdout and stderr written to
    /// `log` (created afresh), in a new process group.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        let out = fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        Proc::spawn_configured(name, cmd)
    }

    /// Spawns `cmd` as configured by the caller, in a new process group.
    pub fn spawn_configured(name: &str, mut cmd: Command) -> Proc {
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_string(),
            child,
            stopped: false,
        }
    }

    /// Panics if the process has already exited (a daemon that dies at
    /// start-up would otherwise show up only as a time-out).
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early: {status}", self.name);
        }
    }

    /// Waits until a file appears under `dir` (a spool directory the
    /// daemon moves a message into), failing early if the daemon dies.
    pub fn wait_file_in(&mut self, dir: &Path, what: &str) -> PathBuf {
        let label = format!("{}: {what}", self.name);
        wait_for(&label, DEADLINE, || {
            self.assert_running();
            files_under(dir).into_iter().next()
        })
    }

    /// Stops the whole process group: SIGTERM, up to 10 s for a clean exit,
    /// then SIGKILL.
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let Ok(raw) = i32::try_from(self.child.id()) else {
            return;
        };
        let pgid = Pid::from_raw(raw);
        let _ = killpg(pgid, Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        // Forked helpers (SMSTools3's modem process) may outlive the leader.
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a short-lived command to completion (killing its process group
/// after `limit`), with stdout and stderr in `log`; returns whether it
/// succeeded and what it printed.
pub fn run(name: &str, cmd: Command, log: &Path, limit: Duration) -> (bool, String) {
    let mut p = Proc::spawn(name, cmd, log);
    let start = Instant::now();
    let status = loop {
        if let Ok(Some(status)) = p.child.try_wait() {
            break Some(status);
        }
        if start.elapsed() > limit {
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    p.stop();
    let out = fs::read_to_string(log).unwrap_or_default();
    match status {
        Some(s) => (s.success(), out),
        None => panic!("{name} did not finish within {limit:?}; output:\n{out}"),
    }
}

/// A running `smsgate sim` with its work directory.
pub struct Sim {
    proc: Proc,
    dir: PathBuf,
    /// The JSON ready line the simulator printed.
    pub ready: Value,
}

/// The smsgate binary under test.
pub fn smsgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_smsgate"))
}

impl Sim {
    /// Starts `smsgate sim --dir WORK/sim --modems 1 ARGS...` with debug
    /// logs to `WORK/sim.log` and waits for its ready line.
    pub fn start(work: &Work, args: &[&str]) -> Sim {
        let dir = work.subdir("sim");
        let log = fs::File::create(work.path().join("sim.log")).unwrap();
        let mut cmd = smsgate();
        cmd.arg("sim")
            .arg("--dir")
            .arg(&dir)
            .args(["--modems", "1", "--report-delay", "1s"])
            .args(args)
            // Exploration knob (docs/peers.md): e.g. `--latency 300ms`.
            .args(
                std::env::var("SMSGATE_PEERS_SIM_ARGS")
                    .unwrap_or_default()
                    .split_whitespace(),
            )
            .env("SMSGATE_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut proc = Proc::spawn_configured("smsgate sim", cmd);
        let stdout = proc.child.stdout.take().unwrap();
        let out_path = work.path().join("sim.out");
        let (tx, rx) = mpsc::channel::<String>();
        // Keep draining stdout for the whole run so the simulator never
        // blocks on a full pipe; the lines also land in sim.out.
        thread::spawn(move || {
            let mut copy = fs::File::create(out_path).ok();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = copy.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                let _ = tx.send(line);
            }
        });
        let start = Instant::now();
        let ready = loop {
            if let Ok(Some(status)) = proc.child.try_wait() {
                panic!("smsgate sim exited before it was ready: {status}");
            }
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        if v.get("ready").and_then(Value::as_bool) == Some(true) {
                            break v;
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    thread::sleep(Duration::from_millis(200));
                }
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!("smsgate sim printed no ready line within 30 s");
            }
        };
        Sim { proc, dir, ready }
    }

    /// `DIR/modemK`, the device a peer opens.
    pub fn link(&self, k: usize) -> PathBuf {
        self.dir.join(format!("modem{k}"))
    }

    /// Runs `smsgate sim ctl --dir DIR ARGS...` and returns its JSON lines.
    pub fn ctl(&self, args: &[&str]) -> Vec<Value> {
        let out = smsgate()
            .arg("sim")
            .arg("ctl")
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sim ctl {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("sim ctl {args:?}: bad JSON line {l:?}: {e}"))
            })
            .collect()
    }

    /// A string field (`number`, `imei`, `iccid`, `link`) of modem `k` as
    /// `sim ctl modems` lists it.
    pub fn modem_field(&self, k: usize, field: &str) -> String {
        let modems = self.ctl(&["modems"]);
        modems
            .iter()
            .find(|m| m.get("modem").and_then(Value::as_u64) == Some(k as u64))
            .and_then(|m| m.get(field)?.as_str())
            .unwrap_or_else(|| panic!("no {field} for modem {k} in {modems:?}"))
            .to_string()
    }

    /// Modem `k`'s phone number.
    pub fn number(&self, k: usize) -> String {
        self.modem_field(k, "number")
    }

    /// Injects an inbound SMS from `from` to modem 0.
    pub fn inject(&self, from: &str, text: &str) {
        self.ctl(&["inject", "--modem", "0", "--from", from, "--text", text]);
    }

    /// Waits until the network's outbox holds a message to `to` with
    /// `text`, and returns that outbox entry.
    pub fn wait_outbox(&self, to: &str, text: &str, limit: Duration) -> Value {
        wait_for(&format!("{text:?} to {to} in sim outbox"), limit, || {
            self.ctl(&["outbox"]).into_iter().find(|m| {
                m.get("to").and_then(Value::as_str).map(digits) == Some(digits(to))
                    && m.get("text").and_then(Value::as_str) == Some(text)
            })
        })
    }

    /// Panics if the simulator died.
    pub fn assert_running(&mut self) {
        self.proc.assert_running();
    }
}

/// How a configuration file is divided into sections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `[name]` headers; keys before the first header are the global
    /// section (`None`). Keys are case-insensitive (gammu, SMSTools3).
    Ini,
    /// Kannel: a section starts at `group = name` and ends at the next
    /// `group =` or `include =` line.
    Kannel,
}

/// Sets `key = value` in section `section` of `text`: replaces the first
/// existing assignment of `key` there, or appends one at the end of the
/// section. Panics if the section does not exist (the corpus configuration
/// changed under us: better a clear failure than a silently wrong config).
pub fn set_key(
    text: &str,
    dialect: Dialect,
    section: Option<&str>,
    key: &str,
    value: &str,
) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let header = |line: &str| -> Option<String> {
        let t = line.trim();
        match dialect {
            Dialect::Ini => t
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .map(|n| n.trim().to_string()),
            Dialect::Kannel => match split_kv(t) {
                Some(("group", v)) => Some(v.to_string()),
                Some(("include", _)) => Some(String::new()),
                _ => None,
            },
        }
    };
    // The wanted section's body is [start, end): from its header (or the
    // top of the file for the global section) to the next header.
    let headers: Vec<(usize, String)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| header(l).map(|n| (i, n)))
        .collect();
    let (start, end) = match section {
        None => (0, headers.first().map_or(lines.len(), |h| h.0)),
        Some(s) => {
            let at = headers
                .iter()
                .position(|(_, n)| n.eq_ignore_ascii_case(s))
                .unwrap_or_else(|| panic!("section {s:?} not found in config"));
            let next = headers.get(at + 1).map_or(lines.len(), |h| h.0);
            (headers[at].0 + 1, next)
        }
    };
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let assignment = format!("{key} = {value}");
    let existing = (start..end)
        .find(|&i| split_kv(lines[i].trim()).is_some_and(|(k, _)| k.eq_ignore_ascii_case(key)));
    match existing {
        Some(i) => out[i] = assignment,
        None => {
            // Before trailing blank lines, so the section stays together.
            let mut at = end;
            while at > start && lines[at - 1].trim().is_empty() {
                at -= 1;
            }
            out.insert(at, assignment);
        }
    }
    let mut joined = out.join("\n");
    joined.push('\n');
    joined
}

/// `key = value` split and trimmed, or `None` for comments and headers.
fn split_kv(line: &str) -> Option<(&str, &str)> {
    if line.starts_with('#') || line.starts_with(';') || line.starts_with('[') {
        return None;
    }
    let (k, v) = line.split_once('=')?;
    Some((k.trim(), v.trim()))
}

/// Reads a corpus configuration `peers/configs/NAME` and substitutes the
/// recorded paths: `$WORKDIR/ttyFAKE2` (the modem) with `device`, then
/// `$WORKDIR` with `workdir`.
pub fn corpus_config(corpus: &Path, name: &str, device: &Path, workdir: &Path) -> String {
    let path = corpus.join("peers/configs").join(name);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.replace("$WORKDIR/ttyFAKE2", &device.to_string_lossy())
        .replace("$WORKDIR", &workdir.to_string_lossy())
}

/// Three distinct free TCP ports on 127.0.0.1 (held together while chosen,
/// so they differ; a tiny race with other programs remains).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut ports = [0u16; N];
    for (p, l) in ports.iter_mut().zip(&listeners) {
        *p = l.local_addr().unwrap().port();
    }
    ports
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(1),
    )
    .is_ok()
}

/// A hand-written HTTP/1.0 GET to 127.0.0.1:`port`; returns the status code
/// and the body.
pub fn http_get(port: u16, path_and_query: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// A tiny HTTP server on 127.0.0.1 that answers `200 OK` to everything
/// and records each request line's target (Kannel calls it back with
/// delivery reports through `dlr-url`).
pub struct HttpSink {
    /// The port it listens on.
    pub port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl HttpSink {
    /// Starts listening on a free port; the accept thread lives as long as
    /// the test process.
    pub fn start() -> HttpSink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut line = String::new();
                // The request line is all we need; the rest is ignored.
                if BufReader::new(&conn).read_line(&mut line).is_ok() {
                    if let Some(target) = line.split_whitespace().nth(1) {
                        if let Ok(mut v) = sink.lock() {
                            v.push(target.to_string());
                        }
                    }
                }
                let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        });
        HttpSink { port, seen }
    }

    /// The request targets received so far.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Percent-encodes a query-string value (RFC 3986 unreserved kept).
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space):
/// Kannel's `exec` sms-service passes `%p`/`%a` URL-encoded. Malformed
/// escapes are kept as they are.
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(v) = hex {
                    out.push(v);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A file's text, decoding UTF-16 when it starts with a byte-order mark
/// (gammu-smsd's files backend writes "unicode" inbox files by default).
pub fn read_text(path: &Path) -> Option<String> {
    let bytes = fs::read(path).ok()?;
    let utf16 = |chunks: &[u8], le: bool| {
        let units: Vec<u16> = chunks
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16_lossy(&units)
    };
    Some(match bytes.as_slice() {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        _ => String::from_utf8_lossy(&bytes).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INI: &str = "top = 1\n\n[gammu]\nport = x\n\n[smsd]\nService = files\n\n";

    #[test]
    fn set_key_replaces_case_insensitively_within_its_section() {
        let t = set_key(INI, Dialect::Ini, Some("smsd"), "service", "null");
        assert!(t.contains("[smsd]\nservice = null\n"), "{t}");
        assert!(t.contains("[gammu]\nport = x\n"), "{t}");
    }

    #[test]
    fn set_key_appends_at_section_end() {
        let t = set_key(INI, Dialect::Ini, Some("gammu"), "connection", "at");
        assert!(
            t.contains("[gammu]\nport = x\nconnection = at\n\n[smsd]"),
            "{t}"
        );
        let t = set_key(INI, Dialect::Ini, None, "delaytime", "1");
        assert!(t.starts_with("top = 1\ndelaytime = 1\n\n[gammu]"), "{t}");
    }

    #[test]
    fn set_key_kannel_groups() {
        let k =
            "group = core\nadmin-port = 1\n\ngroup = smsbox\nsendsms-port = 2\n\ninclude = \"x\"\n";
        let t = set_key(k, Dialect::Kannel, Some("smsbox"), "sendsms-port", "9");
        assert!(t.contains("group = smsbox\nsendsms-port = 9\n"), "{t}");
        assert!(t.contains("admin-port = 1\n"), "{t}");
        let t = set_key(
            k,
            Dialect::Kannel,
            Some("core"),
            "admin-interface",
            "127.0.0.1",
        );
        assert!(
            t.contains("admin-port = 1\nadmin-interface = 127.0.0.1\n\ngroup = smsbox"),
            "{t}"
        );
    }

    #[test]
    #[should_panic(expected = "not found")]
    fn set_key_missing_section_is_loud() {
        set_key(INI, Dialect::Ini, Some("nope"), "a", "b");
    }

    #[test]
    fn utf16_inbox_files_are_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut b = vec![0xFF, 0xFE];
        for u in "hi é".encode_utf16() {
            b.extend(u.to_le_bytes());
        }
        fs::write(&p, b).unwrap();
        assert_eq!(read_text(&p).unwrap(), "hi é");
    }

    #[test]
    fn url_encoding() {
        assert_eq!(url_encode("+1 a&b"), "%2B1%20a%26b");
        assert_eq!(url_decode("%2B1+a%26b%zz%4"), "+1 a&b%zz%4");
        assert_eq!(url_decode(&url_encode("héllo ✓")), "héllo ✓");
    }
}
