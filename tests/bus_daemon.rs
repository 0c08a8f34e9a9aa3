//! The bus through the real daemon (docs/protocol.md): `smsgate run`
//! (against `smsgate sim` where modems matter) driven through its socket.
//! tests/bus.rs proves the same rules against an in-process server; this
//! file proves the binary wires them: error codes, replay, acks, refused
//! peers, half-close and the file-descriptor limit.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use common::daemon::{wait_for, Gate, Sim, OUTSIDE, WAIT};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

/// A bus connection that writes raw bytes and reads lines one by one.
struct Raw {
    w: UnixStream,
    r: BufReader<UnixStream>,
}

impl Raw {
    fn connect(gate: &Gate) -> Raw {
        let w = UnixStream::connect(gate.socket()).unwrap();
        w.set_read_timeout(Some(WAIT)).unwrap();
        Raw {
            r: BufReader::new(w.try_clone().unwrap()),
            w,
        }
    }

    /// The next line, `None` at the end of the stream.
    fn next(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.r.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))),
        }
    }

    /// Writes `bytes` and a newline; the next line (a reply when nothing
    /// is subscribed).
    fn line(&mut self, bytes: &[u8]) -> Value {
        self.w.write_all(bytes).unwrap();
        self.w.write_all(b"\n").unwrap();
        self.next().expect("a reply")
    }

    fn req(&mut self, v: Value) -> Value {
        self.line(v.to_string().as_bytes())
    }

    /// The reply to `v` on a subscribed connection: events read before it
    /// are kept in `events`.
    fn req_among(&mut self, v: Value, events: &mut Vec<Value>) -> Value {
        self.w.write_all(format!("{v}\n").as_bytes()).unwrap();
        loop {
            let l = self.next().expect("a reply");
            if l.get("event").is_some() {
                events.push(l);
            } else {
                return l;
            }
        }
    }

    /// A new connection subscribed with `req` (its fields besides `op`):
    /// the connection, the events read with the reply, the reply.
    fn subscribed(gate: &Gate, req: Value) -> (Raw, Vec<Value>, Value) {
        let mut c = Raw::connect(gate);
        let mut events = Vec::new();
        let mut req = req;
        req["op"] = json!("subscribe");
        let r = c.req_among(req, &mut events);
        assert_eq!(r["ok"], true, "{r}");
        (c, events, r)
    }

    /// Events until `done` holds for the ones read so far.
    fn events_until(&mut self, events: &mut Vec<Value>, done: impl Fn(&[Value]) -> bool) {
        while !done(events) {
            let e = self
                .next()
                .unwrap_or_else(|| panic!("closed; so far {events:?}"));
            assert!(e.get("event").is_some(), "not an event: {e}");
            events.push(e);
        }
    }
}

/// One simulated modem and the daemon watching it, ready.
fn start_with_modem() -> (Sim, Gate) {
    let sim = Sim::start(1, &[]);
    let mut gate = Gate::new();
    gate.write_watching(&sim, "");
    gate.start(&[]);
    gate.wait_modems_ready(1);
    (sim, gate)
}

/// Edits the running daemon's `[bus]` section and reloads it (SIGHUP).
fn reload_bus(gate: &Gate, keys: &str, wait_for_log: &str) {
    let config = std::fs::read_to_string(gate.config_path()).unwrap();
    let config = config.replacen("[bus]\n", &format!("[bus]\n{keys}\n"), 1);
    std::fs::write(gate.config_path(), config).unwrap();
    gate.signal(Signal::SIGHUP);
    wait_for("the reload", || {
        gate.log().contains(wait_for_log).then_some(())
    });
}

/// Every error code a client can provoke, from the real daemon, with the
/// connection usable after each; `line_too_long` closes it, one byte past
/// the 65536 that are still served.
#[test]
fn every_error_code_through_the_daemon_and_the_connection_survives() {
    let (_sim, gate) = start_with_modem();
    let mut c = Raw::connect(&gate);
    let hello = c.req(json!({"op": "hello", "id": 0, "client": "bus_daemon"}));
    assert_eq!(hello["ok"], true, "{hello}");
    let later = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let first =
        c.req(json!({"op": "send", "to": OUTSIDE, "text": "held", "key": "k1", "send_at": later}));
    assert_eq!(first["created"], true, "{first}");
    // Idempotent resend: the same message, not a new one.
    let again =
        c.req(json!({"op": "send", "to": OUTSIDE, "text": "held", "key": "k1", "send_at": later}));
    assert_eq!(
        (again["created"].clone(), again["message"].clone()),
        (json!(false), first["message"].clone()),
        "{again}"
    );
    let long = "x".repeat(160 * 11);
    let cases: Vec<(String, &str)> = vec![
        ("{oops".into(), "bad_json"),
        (r#"{"op":"teleport"}"#.into(), "unknown_op"),
        (r#"{"op":"send","text":"x"}"#.into(), "missing_field"),
        (
            r#"{"op":"status","message":"seven"}"#.into(),
            "invalid_field",
        ),
        (r#"{"op":"subscribe","events":[]}"#.into(), "invalid_field"),
        (
            format!(
                r#"{{"op":"send","to":"{OUTSIDE}","text":"x","send_at":"9999-01-01T00:00:00Z"}}"#
            ),
            "invalid_field",
        ),
        (
            format!(r#"{{"op":"hello","client":"{}"}}"#, "c".repeat(65)),
            "invalid_field",
        ),
        (
            r#"{"op":"send","to":"+49 30 12x","text":"x"}"#.into(),
            "invalid_number",
        ),
        (
            format!(r#"{{"op":"send","to":"{OUTSIDE}","text":"{long}"}}"#),
            "text_too_long",
        ),
        (
            format!(r#"{{"op":"send","to":"{OUTSIDE}","text":"x","modem":"nope"}}"#),
            "unknown_modem",
        ),
        (r#"{"op":"status","message":999999}"#.into(), "not_found"),
        (
            format!(r#"{{"op":"send","to":"{OUTSIDE}","text":"other","key":"k1"}}"#),
            "conflict",
        ),
    ];
    for (line, code) in &cases {
        let r = c.line(line.as_bytes());
        assert_eq!(r["ok"], false, "{line} -> {r}");
        assert_eq!(r["error"]["code"], *code, "{line} -> {r}");
        assert_eq!(
            c.req(json!({"op": "hello", "id": 1}))["id"],
            1,
            "alive after {code}"
        );
    }

    // queue_full: a queue of one part, held by the message above.
    reload_bus(&gate, "queue_limit = 1", "configuration reloaded");
    let full = wait_for("queue_full", || {
        let r = c.req(json!({"op": "send", "to": OUTSIDE, "text": "one more", "send_at": later}));
        (r["ok"] == false).then_some(r)
    });
    assert_eq!(full["error"]["code"], "queue_full", "{full}");
    assert_eq!(c.req(json!({"op": "hello", "id": 2}))["id"], 2);

    // 65536 bytes are a line; one more is not, and the connection ends.
    let pad = |total: usize| {
        let head = r#"{"op":"stats","pad":""#;
        let mut l = head.to_string();
        l.push_str(&"p".repeat(total - head.len() - 2));
        l.push_str("\"}");
        assert_eq!(l.len(), total);
        l
    };
    let r = c.line(pad(65536).as_bytes());
    assert_eq!(r["ok"], true, "{r}");
    let r = c.line(pad(65537).as_bytes());
    assert_eq!(r["error"]["code"], "line_too_long", "{r}");
    assert!(c.next().is_none(), "closed after line_too_long");
}

/// Cursors: a subscriber that comes back with `since` gets exactly what it
/// missed. Acks: an inbound message nobody acked is delivered again to the
/// next subscriber, an acked one is not.
#[test]
fn replay_after_reconnect_and_ack_semantics() {
    let (sim, gate) = start_with_modem();
    let (mut c, mut events, _) = Raw::subscribed(&gate, json!({"events": ["status"]}));
    let later = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let m1 = c.req_among(
        json!({"op": "send", "to": OUTSIDE, "text": "m1", "send_at": later}),
        &mut events,
    )["message"]
        .clone();
    c.events_until(&mut events, |e| e.iter().any(|e| e["message"] == m1));
    let since = events.last().unwrap()["cursor"].as_u64().unwrap();
    drop(c);

    // Missed while away.
    let mut other = Raw::connect(&gate);
    let m2 = other.req(json!({"op": "send", "to": OUTSIDE, "text": "m2", "send_at": later}))
        ["message"]
        .clone();
    let r = other.req(json!({"op": "cancel", "message": m2}));
    assert_eq!(r["state"], "cancelled", "{r}");

    let (mut c, mut events, r) =
        Raw::subscribed(&gate, json!({"events": ["status"], "since": since}));
    assert_eq!(r["cursor"], since, "{r}");
    c.events_until(&mut events, |e| e.iter().any(|e| e["state"] == "cancelled"));
    let got: Vec<_> = events
        .iter()
        .map(|e| (e["message"].clone(), e["state"].clone()))
        .collect();
    assert_eq!(
        got,
        [
            (m2.clone(), json!("queued")),
            (m2.clone(), json!("cancelled"))
        ]
    );
    let cursors: Vec<u64> = events
        .iter()
        .map(|e| e["cursor"].as_u64().unwrap())
        .collect();
    assert!(cursors[0] > since && cursors[1] > cursors[0], "{cursors:?}");
    drop(c);

    // Two inbound messages; the first subscriber acks only the first.
    let modem = sim.number(0);
    for text in ["first inbound", "second inbound"] {
        sim.ctl(&[
            "inject",
            "--modem",
            "0",
            "--from",
            "+4915199990000",
            "--text",
            text,
        ]);
    }
    let (mut a, mut events, _) = Raw::subscribed(&gate, json!({"events": ["inbound"]}));
    a.events_until(&mut events, |e| e.len() >= 2);
    let texts: Vec<_> = events.iter().map(|e| e["text"].clone()).collect();
    assert_eq!(
        texts,
        [json!("first inbound"), json!("second inbound")],
        "to {modem}"
    );
    let r = a.req_among(
        json!({"op": "ack", "message": events[0]["id"]}),
        &mut Vec::new(),
    );
    assert_eq!(r["ok"], true, "{r}");
    drop(a);

    let (mut b, mut again, _) = Raw::subscribed(&gate, json!({"events": ["inbound"]}));
    b.events_until(&mut again, |e| !e.is_empty());
    assert_eq!(again[0]["id"], events[1]["id"], "{again:?}");
    b.w.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(b.next().is_none(), "the acked message came again");
}

/// `echo '{"op":"subscribe",...}' | socat`: the half-closed connection
/// still gets the replay and the live events; a plain one ends.
#[test]
fn half_closed_subscriber_keeps_receiving() {
    let (_sim, gate) = start_with_modem();
    let mut other = Raw::connect(&gate);
    let later = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let m1 = other.req(json!({"op": "send", "to": OUTSIDE, "text": "before", "send_at": later}))
        ["message"]
        .clone();

    let mut c = Raw::connect(&gate);
    c.w.write_all(b"{\"op\":\"subscribe\",\"events\":[\"status\"],\"since\":0}\n")
        .unwrap();
    c.w.shutdown(Shutdown::Write).unwrap();
    let mut events = Vec::new();
    assert_eq!(c.next().unwrap()["ok"], true);
    c.events_until(&mut events, |e| e.iter().any(|e| e["message"] == m1));
    std::thread::sleep(Duration::from_millis(200));
    let m2 = other.req(json!({"op": "send", "to": OUTSIDE, "text": "after", "send_at": later}))
        ["message"]
        .clone();
    c.events_until(&mut events, |e| e.iter().any(|e| e["message"] == m2));

    let mut plain = Raw::connect(&gate);
    plain.w.write_all(b"{\"op\":\"stats\"}\n").unwrap();
    plain.w.shutdown(Shutdown::Write).unwrap();
    assert_eq!(plain.next().unwrap()["ok"], true);
    assert!(plain.next().is_none());
}

/// A peer not on the lists gets one `not_allowed` line and is closed.
#[test]
fn refused_peer_gets_not_allowed() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIPPED: a refused peer needs root to run a client as another user");
        return;
    }
    if !common::have_program("socat", "a refused peer") {
        return;
    }
    let mut gate = Gate::new();
    gate.write_config("");
    gate.start(&[]);
    // Let `nobody` reach the socket: the kernel's check is SO_PEERCRED's.
    for (p, mode) in [
        (gate.dir.path().to_path_buf(), 0o755),
        (gate.socket(), 0o666),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    use std::os::unix::process::CommandExt;
    let input = gate.dir.path().join("hello.jsonl");
    std::fs::write(&input, "{\"op\":\"hello\"}\n").unwrap();
    let out = Command::new("socat")
        .args(["-t", "5", "-"])
        .arg(format!("UNIX-CONNECT:{}", gate.socket().display()))
        .uid(65534)
        .gid(65534)
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["error"]["code"], "not_allowed", "{out}");
    assert!(gate.log().contains("refused peer"), "{}", gate.log());
    // The daemon goes on serving the others.
    assert_eq!(Raw::connect(&gate).req(json!({"op": "stats"}))["ok"], true);

    // The same user in the daemon's group (the socket's group when
    // `[bus] group` is unset) is let in, without the right to see numbers.
    let out = Command::new("socat")
        .args(["-t", "5", "-"])
        .arg(format!("UNIX-CONNECT:{}", gate.socket().display()))
        .uid(65534)
        .gid(nix::unistd::Gid::effective().as_raw())
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    let hello: Value = serde_json::from_str(out.lines().next().unwrap_or("{}")).unwrap();
    assert_eq!(hello["ok"], true, "{out}");
    assert_eq!(hello["see_numbers"], false, "{out}");
}

/// Starts `smsgate run` under a file-descriptor limit (`ulimit` in a
/// shell that then execs the daemon), as systemd's `LimitNOFILE=` would.
fn start_limited(gate: &mut Gate, soft: u64, hard: u64) {
    let script = format!("ulimit -S -n {soft} && ulimit -H -n {hard} && exec \"$@\"");
    gate.start_via(&["sh", "-c", &script, "sh"], &[("SMSGATE_LOG", "info")]);
}

/// A raw connection that said `hello`: its answer (`ok` or the refusal).
fn hello(gate: &Gate) -> (UnixStream, Value) {
    let mut s = UnixStream::connect(gate.socket()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    writeln!(s, r#"{{"op":"hello"}}"#).unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    let v = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    (s, v)
}

/// Under a soft limit of 100 descriptors the daemon serves 36 clients
/// (100 less the reserve of 64) and answers the next ones `unavailable`
/// at once instead of running out of descriptors; with a higher hard
/// limit it raises the soft one and serves them all.
#[test]
fn clients_are_capped_below_the_descriptor_limit() {
    let mut gate = Gate::new();
    gate.write_config("");
    start_limited(&mut gate, 100, 100);
    let mut served = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        let (s, r) = hello(&gate);
        if r["ok"] == true {
            served.push(s);
        } else {
            assert_eq!(r["error"]["code"], "unavailable", "{r}");
            refused += 1;
        }
    }
    assert_eq!((served.len(), refused), (36, 4), "{}", gate.log());
    // A slot freed is a slot served again.
    served.pop();
    wait_for("a freed slot", || {
        (hello(&gate).1["ok"] == true).then_some(())
    });
    drop(served);
    gate.stop(nix::sys::signal::Signal::SIGTERM);

    let mut gate = Gate::new();
    gate.write_config("");
    start_limited(&mut gate, 100, 4096);
    let all: Vec<_> = (0..100).map(|_| hello(&gate)).collect();
    assert!(all.iter().all(|(_, r)| r["ok"] == true), "{}", gate.log());
    assert!(gate.log().contains("max_clients=1024"), "{}", gate.log());
}
