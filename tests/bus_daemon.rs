//! The bus through the real daemon (docs/protocol.md): `smsgate run`
//! (against `smsgate sim` where modems matter) driven through its socket.
//! tests/bus.rs proves the same rules against an in-process server; this
//! file proves the binary wires them: error codes, replay, acks, refused
//! peers, half-close and the file-descriptor limit.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use common::daemon::{wait_for, Gate, WAIT};
use serde_json::Value;

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
