//! The privacy gate in the real daemon (docs/privacy.md): `smsgate run`
//! against `smsgate sim`, driven through the bus socket and `sim ctl`.
//! The tests run as root, which always sees numbers; what a peer without
//! that right sees is proven by clients running as `nobody` (and a second
//! non-root user who was given the right), through `socat` started with
//! their uid, so the kernel's peer credentials name them.

mod common;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;

use common::daemon::{wait_for, Client, Gate, Sim, BIN, OUTSIDE, WAIT};
use nix::unistd::{Uid, User};
use serde_json::{json, Value};

const HELP_TEXT: &str = "Test gateway run by the test suite";

fn start(policy: &str) -> (Sim, Gate) {
    start_with(&format!(
        "[privacy]\npolicy = \"{policy}\"\nhelp_text = \"{HELP_TEXT}\"\n"
    ))
}

/// One simulated modem and the daemon watching it, with `sections` added
/// to the config.
fn start_with(sections: &str) -> (Sim, Gate) {
    let sim = Sim::start(1, &[]);
    let mut gate = Gate::new();
    gate.write_watching(&sim, sections);
    gate.start(&[]);
    gate.wait_modems_ready(1);
    (sim, gate)
}

fn inject(sim: &Sim, from: &str, text: &str) {
    sim.ctl(&["inject", "--modem", "0", "--from", from, "--text", text]);
}

/// Waits for an SMS to `to` in the simulator's outbox whose text contains
/// `needle`, beyond the first `seen` such messages.
fn wait_reply(sim: &Sim, to: &str, needle: &str, seen: usize) -> Value {
    wait_for(&format!("a reply containing {needle:?}"), || {
        let out: Vec<Value> = sim
            .outbox()
            .into_iter()
            .filter(|m| m["to"] == to && m["text"].as_str().unwrap_or("").contains(needle))
            .collect();
        out.get(seen).cloned()
    })
}

fn outbox_to(sim: &Sim, to: &str) -> usize {
    sim.outbox().iter().filter(|m| m["to"] == to).count()
}

/// The next `inbound` event (other kinds are skipped).
fn next_inbound(c: &mut Client) -> Value {
    loop {
        let ev = c.read().unwrap();
        if ev["event"] == "inbound" {
            return ev;
        }
    }
}

fn db_bytes_contain(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir.join("db")).unwrap().any(|e| {
        let bytes = std::fs::read(e.unwrap().path()).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    })
}

#[test]
fn opt_in_hold_join_release_stop_start_help_handle_and_forget() {
    let (sim, gate) = start("opt-in");
    let mut events = gate.client();
    let sub = events.request(json!({"op": "subscribe", "events": ["inbound"]}));
    assert_eq!(sub["ok"], true, "{sub}");
    let mut c = gate.client();
    let hello = c.request(json!({"op": "hello", "client": "privacy test"}));
    assert_eq!(hello["see_numbers"], true, "root sees numbers: {hello}");

    // A stranger's first message is held and explained, once.
    inject(&sim, OUTSIDE, "first words");
    let explain = wait_reply(&sim, OUTSIDE, "JOIN", 0);
    inject(&sim, OUTSIDE, "second words");
    // Held messages wait for consent, not for a client: counted apart, so
    // `smsgate inbox` knows its backlog is empty and shows nothing.
    let s = wait_for("both messages held", || {
        let s = c.request(json!({"op": "stats"}));
        (s["stats"]["inbound_held"] == 2).then_some(s)
    });
    assert_eq!(s["stats"]["inbound_unacked"], 0, "{s}");
    let out = cli(&gate, &["inbox", "--json"]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "held messages shown: {out:?}");
    // JOIN releases both, in order, and is itself not relayed.
    inject(&sim, OUTSIDE, "join");
    let ev = next_inbound(&mut events);
    assert_eq!(ev["text"], "first words", "{ev}");
    assert_eq!(ev["from"], OUTSIDE, "{ev}");
    assert_eq!(ev["transport"], "sms", "{ev}");
    assert_eq!(ev["e2e"], false, "{ev}");
    let ev = next_inbound(&mut events);
    assert_eq!(ev["text"], "second words", "{ev}");
    let s = c.request(json!({"op": "stats"}));
    assert_eq!(s["stats"]["inbound_held"], 0, "released: {s}");
    wait_for("the join confirmation", || {
        (outbox_to(&sim, OUTSIDE) >= 2).then_some(())
    });
    let replies: Vec<Value> = sim
        .outbox()
        .into_iter()
        .filter(|m| m["to"] == OUTSIDE)
        .collect();
    assert_eq!(
        replies
            .iter()
            .filter(|m| m["text"] == explain["text"])
            .count(),
        1,
        "one explanation only (rate-limited): {replies:?}"
    );

    // Joined: relayed at once, never a held duplicate.
    inject(&sim, OUTSIDE, "now relayed");
    let ev = next_inbound(&mut events);
    assert_eq!(ev["text"], "now relayed", "{ev}");

    // HELP: the operator's text.
    inject(&sim, OUTSIDE, " Help ");
    let help = wait_reply(&sim, OUTSIDE, HELP_TEXT, 0);
    // ... and what is stored about the sender, for how long (the default
    // retention: text 30 days, metadata 365).
    let help = help["text"].as_str().unwrap_or_default();
    for want in ["30 days", "365 days", "STOP"] {
        assert!(
            help.contains(want),
            "{want:?} missing in the HELP reply: {help}"
        );
    }

    // STOP: confirmed, and sends are refused with `opted_out`.
    let before = outbox_to(&sim, OUTSIDE);
    inject(&sim, OUTSIDE, "STOP");
    wait_for("the stop confirmation", || {
        (outbox_to(&sim, OUTSIDE) > before).then_some(())
    });
    let r = c.request(json!({"op": "send", "to": OUTSIDE, "text": "refused"}));
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"]["code"], "opted_out", "{r}");

    // START reverses it.
    let before = outbox_to(&sim, OUTSIDE);
    inject(&sim, OUTSIDE, "start");
    wait_for("the start confirmation", || {
        (outbox_to(&sim, OUTSIDE) > before).then_some(())
    });

    // A send to the sender's handle reaches their number; a bad number is
    // refused.
    let key = smsgate::privacy::HandleKey::load_or_create(&gate.dir.path().join("db/handle.key"))
        .unwrap();
    let handle = key.handle(OUTSIDE);
    let id = c.send(&handle, "to a handle");
    wait_for("the send to the handle", || {
        (c.state(id) == "sent").then_some(())
    });
    wait_reply(&sim, OUTSIDE, "to a handle", 0);
    let r = c.request(json!({"op": "send", "to": "+12", "text": "x"}));
    assert_eq!(r["error"]["code"], "invalid_number", "{r}");

    // Forget: everything about the number leaves the database files (the
    // handle stays, in the audit row that a forget happened).
    let r = c.request(json!({"op": "forget", "who": OUTSIDE}));
    assert_eq!(r["ok"], true, "{r}");
    assert!(r["erased"]["inbound"].as_u64().unwrap() >= 3, "{r}");
    let digits = OUTSIDE.trim_start_matches('+');
    for needle in ["first words", "now relayed", "to a handle", digits] {
        assert!(
            !db_bytes_contain(gate.dir.path(), needle),
            "{needle:?} still in the database files"
        );
    }

    // A fresh subscription replaying the whole log resurrects nothing:
    // the next event it shows is a later message from someone else.
    let other = "+4915198765432";
    let mut replay = gate.client();
    let sub = replay.request(json!({"op": "subscribe", "events": ["inbound"], "since": 0}));
    assert_eq!(sub["ok"], true, "{sub}");
    let mut admin = gate.client();
    // Under opt-in the other sender must join first; its JOIN is not relayed.
    inject(&sim, other, "JOIN");
    wait_reply(&sim, other, "", 0);
    inject(&sim, other, "from someone else");
    let ev = next_inbound(&mut replay);
    assert_eq!(ev["text"], "from someone else", "{ev}");
    assert_eq!(ev["from"], other, "{ev}");
    let r = admin.request(json!({"op": "forget", "who": "sms:aaaaaaaaaaaaaaaa"}));
    assert_eq!(r["ok"], true, "an unknown handle is audited too: {r}");
    // The CLI: `smsgate forget` prints what was erased.
    let out = std::process::Command::new(common::daemon::BIN)
        .args(["forget", other, "--socket"])
        .arg(gate.socket())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("inbound: 1"), "{stdout}");
    assert!(!db_bytes_contain(gate.dir.path(), "from someone else"));
}

#[test]
fn open_policy_relays_at_once_without_replies() {
    let (sim, gate) = start("open");
    let mut events = gate.client();
    let sub = events.request(json!({"op": "subscribe", "events": ["inbound"]}));
    assert_eq!(sub["ok"], true, "{sub}");
    inject(&sim, OUTSIDE, "open door");
    let ev = next_inbound(&mut events);
    assert_eq!(ev["text"], "open door", "{ev}");
    assert_eq!(ev["transport"], "sms", "{ev}");
    // STOP still works under `open`.
    inject(&sim, OUTSIDE, "STOP");
    wait_for("the stop confirmation", || {
        (outbox_to(&sim, OUTSIDE) == 1).then_some(())
    });
    let mut c = gate.client();
    let r = c.request(json!({"op": "send", "to": OUTSIDE, "text": "refused"}));
    assert_eq!(r["error"]["code"], "opted_out", "{r}");
}

#[test]
fn allowlist_relays_listed_numbers_only_and_drops_the_rest() {
    let (sim, gate) = start_with(&format!(
        "[privacy]\npolicy = \"allowlist\"\nallowlist = [\"{OUTSIDE}\"]\n"
    ));
    let mut events = gate.client();
    let sub = events.request(json!({"op": "subscribe", "events": ["inbound"]}));
    assert_eq!(sub["ok"], true, "{sub}");
    let unlisted = "+4915198765432";
    // Neither a message nor JOIN lets an unlisted number in; it is not
    // kept either, and gets no reply.
    inject(&sim, unlisted, "UNLISTED-NEEDLE-3391");
    inject(&sim, unlisted, "JOIN");
    inject(&sim, OUTSIDE, "listed hello");
    let ev = next_inbound(&mut events);
    assert_eq!(ev["text"], "listed hello", "the unlisted came first: {ev}");
    assert_eq!(ev["from"], OUTSIDE, "{ev}");
    assert_eq!(outbox_to(&sim, unlisted), 0, "no reply to the unlisted");
    wait_for("the unlisted text to leave the files", || {
        (!db_bytes_contain(gate.dir.path(), "UNLISTED-NEEDLE-3391")).then_some(())
    });
    // STOP works for everyone, listed or not.
    inject(&sim, OUTSIDE, "stop");
    wait_for("the stop confirmation", || {
        (outbox_to(&sim, OUTSIDE) == 1).then_some(())
    });
    let mut c = gate.client();
    let r = c.request(json!({"op": "send", "to": OUTSIDE, "text": "refused"}));
    assert_eq!(r["error"]["code"], "opted_out", "{r}");
}

/// The national significant number of [`OUTSIDE`]: what must never reach a
/// peer without the see-numbers right, in any spelling.
const OUTSIDE_NSN: &str = "15112345678";

/// A bus client running as another user: `socat` started with that uid
/// and gid, so the daemon's SO_PEERCRED check sees that user. Every line
/// it receives is kept for the byte search.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    events: VecDeque<Value>,
    seen: Vec<String>,
}

impl Peer {
    fn connect(socket: &Path, user: &User) -> Peer {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new("socat")
            .arg("-")
            .arg(format!("UNIX-CONNECT:{}", socket.display()))
            .uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Peer {
            child,
            stdin,
            lines,
            events: VecDeque::new(),
            seen: Vec::new(),
        }
    }

    fn read(&mut self) -> Value {
        let line = self
            .lines
            .recv_timeout(WAIT)
            .expect("a line from the daemon");
        let v = serde_json::from_str(&line).unwrap();
        self.seen.push(line);
        v
    }

    /// The reply to `req`; events read meanwhile are kept for later.
    fn request(&mut self, req: Value) -> Value {
        writeln!(self.stdin, "{req}").unwrap();
        loop {
            let v = self.read();
            if v.get("event").is_none() {
                return v;
            }
            self.events.push_back(v);
        }
    }

    fn next_inbound(&mut self) -> Value {
        loop {
            let v = self.events.pop_front().unwrap_or_else(|| self.read());
            if v["event"] == "inbound" {
                return v;
            }
        }
    }

    /// Every line received so far (and whatever is still arriving).
    fn transcript(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local user other than root, or `None` after a visible notice.
fn user(name: &str) -> Option<User> {
    match User::from_name(name) {
        Ok(Some(u)) if !u.uid.is_root() => Some(u),
        _ => {
            eprintln!("SKIPPED: no user {name} on this system");
            None
        }
    }
}

/// Writes a full config (the harness's has no room for more `[bus]` keys).
fn write_config(gate: &Gate, sim: &Sim, bus: &str, privacy: &str) {
    let text = format!(
        "[bus]\nsocket = \"{}\"\n{bus}\n[store]\npath = \"{}\"\nsynchronous = \"normal\"\n\
         [discovery]\ndir = \"{}\"\nrescan_secs = 1\n[privacy]\n{privacy}\n",
        gate.socket().display(),
        gate.dir.path().join("db/smsgate.db").display(),
        sim.dir().display(),
    );
    std::fs::write(gate.config_path(), text).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn cli(gate: &Gate, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg("--socket")
        .arg(gate.socket())
        .output()
        .unwrap()
}

#[test]
fn a_peer_without_the_right_sees_only_handles_and_one_with_it_sees_numbers() {
    if !Uid::effective().is_root() {
        eprintln!("SKIPPED: clients as other users need root to start them");
        return;
    }
    if !common::have_program("socat", "bus clients as other users") {
        return;
    }
    let (Some(nobody), Some(admin)) = (user("nobody"), user("daemon")) else {
        return;
    };
    let sim = Sim::start(1, &[]);
    let mut gate = Gate::new();
    write_config(
        &gate,
        &sim,
        "allow_users = [\"nobody\", \"daemon\"]",
        &format!(
            "policy = \"opt-in\"\nhelp_text = \"{HELP_TEXT}\"\nsee_numbers_users = [\"daemon\"]"
        ),
    );
    // The default log level, as an operator runs it.
    gate.start(&[("SMSGATE_LOG", "info")]);
    gate.wait_modems_ready(1);
    // The socket's file mode is not what is under test: the daemon's own
    // checks are.
    chmod(gate.dir.path(), 0o755);
    chmod(&gate.socket(), 0o666);

    let mut anon = Peer::connect(&gate.socket(), &nobody);
    let hello = anon.request(json!({"op": "hello", "client": "nobody"}));
    assert_eq!(hello["ok"], true, "{hello}");
    assert_eq!(hello["see_numbers"], false, "{hello}");
    let sub = anon.request(json!({"op": "subscribe"}));
    assert_eq!(sub["ok"], true, "{sub}");
    let mut seer = Peer::connect(&gate.socket(), &admin);
    let hello = seer.request(json!({"op": "hello", "client": "admin"}));
    assert_eq!(hello["see_numbers"], true, "{hello}");
    let sub = seer.request(json!({"op": "subscribe", "events": ["inbound"]}));
    assert_eq!(sub["ok"], true, "{sub}");

    // Held, joined, released: the event shows the handle.
    inject(&sim, OUTSIDE, "first words");
    wait_reply(&sim, OUTSIDE, "JOIN", 0);
    inject(&sim, OUTSIDE, "JOIN");
    let ev = anon.next_inbound();
    assert_eq!(ev["text"], "first words", "{ev}");
    let handle = ev["from"].as_str().unwrap().to_owned();
    assert!(handle.starts_with("sms:"), "{ev}");
    let key = smsgate::privacy::HandleKey::load_or_create(&gate.dir.path().join("db/handle.key"))
        .unwrap();
    assert_eq!(handle, key.handle(OUTSIDE));
    // The peer with the right sees the number.
    let ev = seer.next_inbound();
    assert_eq!(ev["from"], OUTSIDE, "{ev}");
    inject(&sim, OUTSIDE, "second words");
    assert_eq!(anon.next_inbound()["from"], handle.as_str());
    assert_eq!(seer.next_inbound()["from"], OUTSIDE);

    // Sends to the handle (and to the number) reach the number; what the
    // peer hears back shows the handle.
    let mut ids = Vec::new();
    for (to, text) in [(handle.as_str(), "by handle"), (OUTSIDE, "by number")] {
        let r = anon.request(json!({"op": "send", "to": to, "text": text}));
        assert_eq!(r["ok"], true, "{r}");
        ids.push(r["message"].as_i64().unwrap());
        wait_reply(&sim, OUTSIDE, text, 0);
    }
    for id in &ids {
        let s = wait_for("the send to be sent", || {
            let s = anon.request(json!({"op": "status", "message": id}));
            (s["state"] == "sent").then_some(s)
        });
        assert_eq!(s["to"], handle.as_str(), "{s}");
    }
    // Every message, the gateway's own replies included.
    for id in 1..=ids[1] {
        anon.request(json!({"op": "status", "message": id}));
    }

    // Admin ops are refused; consent shows numbers to the right peer only.
    for op in ["consent", "forget"] {
        let r = anon.request(json!({"op": op, "who": handle}));
        assert_eq!(r["error"]["code"], "not_allowed", "{r}");
    }
    let r = seer.request(json!({"op": "consent", "who": handle}));
    assert_eq!(r["records"][0]["number"], OUTSIDE, "{r}");
    assert_eq!(r["records"][0]["state"], "joined", "{r}");

    // STOP: the refusal names the handle, not the number.
    inject(&sim, OUTSIDE, "STOP");
    wait_reply(&sim, OUTSIDE, "opted out", 0);
    let r = anon.request(json!({"op": "send", "to": handle, "text": "refused"}));
    assert_eq!(r["error"]["code"], "opted_out", "{r}");
    let r = anon.request(json!({"op": "send", "to": OUTSIDE, "text": "refused"}));
    assert_eq!(r["error"]["code"], "opted_out", "{r}");
    let r = anon.request(json!({"op": "send", "to": "+12", "text": "bad"}));
    assert_eq!(r["error"]["code"], "invalid_number", "{r}");
    let r = anon.request(json!({"op": "stats"}));
    assert_eq!(r["ok"], true, "{r}");

    let heard = anon.transcript();
    assert!(heard.contains(&handle), "{heard}");
    assert!(
        !heard.contains(OUTSIDE_NSN),
        "a peer without the right received the number:\n{heard}"
    );
    assert!(seer.transcript().contains(OUTSIDE_NSN));
    drop(anon);
    drop(seer);
    gate.stop(nix::sys::signal::Signal::SIGTERM);
    let log = gate.log();
    assert!(
        log.contains("privacy decision"),
        "info logs were written:\n{log}"
    );
    assert!(
        !log.contains(OUTSIDE_NSN),
        "the daemon logged a full number at the default level:\n{log}"
    );
}

#[test]
fn consent_records_for_admins_over_the_bus_and_the_cli() {
    let (sim, gate) = start("opt-in");
    let other = "+4915198765432";
    inject(&sim, OUTSIDE, "JOIN");
    wait_reply(&sim, OUTSIDE, "joined", 0);
    inject(&sim, other, "hello");
    wait_reply(&sim, other, "JOIN", 0);
    let mut c = gate.client();
    let key = smsgate::privacy::HandleKey::load_or_create(&gate.dir.path().join("db/handle.key"))
        .unwrap();

    // One person, by number or by handle.
    let r = c.request(json!({"op": "consent", "who": OUTSIDE}));
    assert_eq!(r["ok"], true, "{r}");
    let rec = &r["records"][0];
    assert_eq!(rec["number"], OUTSIDE, "{r}");
    assert_eq!(rec["handle"], key.handle(OUTSIDE), "{r}");
    assert_eq!(rec["state"], "joined", "{r}");
    assert_eq!(rec["keyword"], "join", "{r}");
    assert!(rec["since"].as_str().unwrap().ends_with('Z'), "{r}");
    assert_eq!(rec["modem"], sim.imei(0), "{r}");
    let by_handle = c.request(json!({"op": "consent", "who": key.handle(other)}));
    assert_eq!(by_handle["records"][0]["state"], "pending", "{by_handle}");
    assert_eq!(by_handle["records"][0]["number"], other, "{by_handle}");
    let none = c.request(json!({"op": "consent", "who": "+4930123456"}));
    assert_eq!(none["records"], json!([]), "{none}");
    let bad = c.request(json!({"op": "consent", "who": "hello"}));
    assert_eq!(bad["error"]["code"], "invalid_number", "{bad}");

    // Everyone, a page at a time in handle order.
    let first = c.request(json!({"op": "consent", "limit": 1}));
    assert_eq!(first["records"].as_array().unwrap().len(), 1, "{first}");
    let next = first["next"].as_str().unwrap();
    let second = c.request(json!({"op": "consent", "limit": 1, "after": next}));
    assert_eq!(second["records"].as_array().unwrap().len(), 1, "{second}");
    assert_eq!(second["next"], Value::Null, "{second}");
    let mut handles = vec![
        first["records"][0]["handle"].as_str().unwrap(),
        second["records"][0]["handle"].as_str().unwrap(),
    ];
    assert!(handles[0] < handles[1]);
    handles.sort();
    let mut want = vec![key.handle(OUTSIDE), key.handle(other)];
    want.sort();
    assert_eq!(handles, want);

    // The CLI: a table, JSON lines, and the usual exit codes.
    let out = cli(&gate, &["consent"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(table.starts_with("NUMBER"), "{table}");
    assert!(
        table.contains(OUTSIDE) && table.contains("joined"),
        "{table}"
    );
    assert!(
        table.contains(other) && table.contains("pending"),
        "{table}"
    );
    let out = cli(&gate, &["consent", &key.handle(OUTSIDE), "--json"]);
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["number"], OUTSIDE);
    let out = cli(&gate, &["consent", "not a number"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_number"));
    let out = cli(&gate, &["consent", "a", "b"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = Command::new(BIN)
        .args(["consent", "--socket"])
        .arg(gate.dir.path().join("nothing.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69), "{out:?}");
    if Uid::effective().is_root() {
        use std::os::unix::process::CommandExt;
        chmod(gate.dir.path(), 0o755);
        chmod(&gate.socket(), 0o666);
        let out = Command::new(BIN)
            .args(["consent", "--socket"])
            .arg(gate.socket())
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(77), "{out:?}");
    }
}

#[test]
fn forget_drops_the_sticky_route_at_once() {
    let sim = Sim::start(2, &[]);
    let mut gate = Gate::new();
    gate.write_watching(&sim, "");
    gate.start(&[]);
    let modems = gate.wait_modems_ready(2);
    let a = modems[0]["id"].as_str().unwrap().to_owned();
    let b = modems[1]["id"].as_str().unwrap().to_owned();
    let mut c = gate.client();
    let mut sent_by = |pin: Option<&str>, text: &str| -> String {
        let r = c.request(json!({"op": "send", "to": OUTSIDE, "text": text, "modem": pin}));
        assert_eq!(r["ok"], true, "{r}");
        let id = r["message"].as_i64().unwrap();
        let s = wait_for("the send", || {
            let s = c.request(json!({"op": "status", "message": id}));
            (s["state"] == "sent").then_some(s)
        });
        s["modem"].as_str().unwrap().to_owned()
    };
    // Pinned to A: A has now sent one more than B today, so the
    // least-loaded rule alone would pick B; stickiness keeps A.
    assert_eq!(sent_by(Some(&a), "pinned"), a);
    assert_eq!(sent_by(None, "sticky"), a);
    let r = gate
        .client()
        .request(json!({"op": "forget", "who": OUTSIDE}));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["erased"]["outbound"], 2, "{r}");
    // Forgotten: routed as a stranger, by the least-loaded rule.
    assert_eq!(sent_by(None, "a stranger again"), b);
}

#[test]
fn numbers_the_numbering_library_rejects_can_join_and_stop() {
    // +1 555 01xx: fiction and test range, invalid to libphonenumber.
    let test_number = "+15550100123";
    let (sim, gate) = start("opt-in");
    let mut events = gate.client();
    let sub = events.request(json!({"op": "subscribe", "events": ["inbound"]}));
    assert_eq!(sub["ok"], true, "{sub}");
    inject(&sim, test_number, "held words");
    wait_reply(&sim, test_number, "JOIN", 0);
    inject(&sim, test_number, "JOIN");
    let ev = next_inbound(&mut events);
    assert_eq!(ev["text"], "held words", "{ev}");
    assert_eq!(ev["from"], test_number, "{ev}");
    inject(&sim, test_number, "STOP");
    wait_reply(&sim, test_number, "opted out", 0);
    let mut c = gate.client();
    let r = c.request(json!({"op": "send", "to": test_number, "text": "refused"}));
    assert_eq!(r["error"]["code"], "opted_out", "{r}");
    let r = c.request(json!({"op": "send", "to": "+1 555 0100 123", "text": "refused"}));
    assert_eq!(r["error"]["code"], "opted_out", "another spelling: {r}");
    let r = c.request(json!({"op": "consent", "who": test_number}));
    assert_eq!(r["records"][0]["state"], "stopped", "{r}");
    // Short or garbled numbers are still refused.
    for bad in ["+1555012", "+1555-0100-123-45678", "0155501"] {
        let r = c.request(json!({"op": "send", "to": bad, "text": "x"}));
        assert_eq!(r["error"]["code"], "invalid_number", "{bad}: {r}");
    }
}

/// The text or the digits in the database file or its WAL.
fn in_db(gate: &Gate, needle: &str) -> bool {
    db_bytes_contain(gate.dir.path(), needle)
}

/// libfaketime (Debian package `faketime`), which the `faketime`
/// program preloads: found where the package puts it for any architecture.
fn libfaketime() -> Option<std::path::PathBuf> {
    if !common::have_program("faketime", "the retention purge under a fake clock") {
        return None;
    }
    let found = std::fs::read_dir("/usr/lib").ok()?.find_map(|arch| {
        let lib = arch.ok()?.path().join("faketime/libfaketime.so.1");
        lib.is_file().then_some(lib)
    });
    found.or_else(|| {
        let lib = Path::new("/usr/lib/faketime/libfaketime.so.1");
        lib.is_file().then(|| lib.to_path_buf())
    })
}

/// The environment that runs the daemon `offset` (`+40d`) in the future:
/// libfaketime preloaded into the daemon itself (the `faketime` program
/// would stand between our signals and the daemon); tokio's timers run on
/// the monotonic clock, which stays real.
fn faked<'a>(lib: &'a str, offset: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("LD_PRELOAD", lib),
        ("FAKETIME", offset),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ]
}

#[test]
fn retention_purge_in_the_daemon_under_a_controlled_clock() {
    let Some(libfaketime) = libfaketime() else {
        eprintln!("SKIPPED: faketime not installed");
        return;
    };
    let (sim, mut gate) =
        start_with("[privacy]\npolicy = \"open\"\n[retention]\ntext_days = 30\nmeta_days = 365\n");
    let mut events = gate.client();
    let sub = events.request(json!({"op": "subscribe", "events": ["inbound"]}));
    assert_eq!(sub["ok"], true, "{sub}");
    inject(&sim, OUTSIDE, "INBOUND-TEXT-NEEDLE-4417");
    let inbound = next_inbound(&mut events)["id"].as_i64().unwrap();
    let mut c = gate.client();
    let out = c.send(OUTSIDE, "OUTBOUND-TEXT-NEEDLE-5528");
    wait_for("the send", || (c.state(out) == "sent").then_some(()));
    drop((c, events));
    gate.stop(nix::sys::signal::Signal::SIGTERM);
    for needle in [
        "INBOUND-TEXT-NEEDLE-4417",
        "OUTBOUND-TEXT-NEEDLE-5528",
        OUTSIDE_NSN,
    ] {
        assert!(in_db(&gate, needle), "{needle} stored before the purge");
    }

    // 40 days later: the texts are purged at start, the metadata stays.
    let lib = libfaketime.to_str().unwrap();
    let later = |offset| faked(lib, offset);
    gate.start(&later("+40d"));
    wait_for("the text purge", || {
        let gone =
            !in_db(&gate, "INBOUND-TEXT-NEEDLE-4417") && !in_db(&gate, "OUTBOUND-TEXT-NEEDLE-5528");
        gone.then_some(())
    });
    let mut c = gate.client();
    let s = c.request(json!({"op": "status", "message": out}));
    assert_eq!(s["state"], "sent", "the outbound metadata stays: {s}");
    let mut replay = gate.client();
    replay.request(json!({"op": "subscribe", "events": ["inbound"], "since": 0}));
    let ev = next_inbound(&mut replay);
    assert_eq!(ev["id"], inbound, "{ev}");
    assert_eq!(ev["text"], Value::Null, "{ev}");
    assert_eq!(ev["from"], OUTSIDE, "who and when stay: {ev}");
    drop((c, replay));
    gate.stop(nix::sys::signal::Signal::SIGTERM);

    // 400 days later: the metadata is gone too, number and all.
    gate.start(&later("+400d"));
    wait_for("the metadata purge", || {
        let mut c = gate.client();
        let s = c.request(json!({"op": "status", "message": out}));
        (s["error"]["code"] == "not_found").then_some(())
    });
    wait_for("the number to leave the files", || {
        (!in_db(&gate, OUTSIDE_NSN)).then_some(())
    });
}

#[test]
fn held_messages_are_deleted_when_the_hold_ends() {
    let Some(libfaketime) = libfaketime() else {
        eprintln!("SKIPPED: faketime not installed");
        return;
    };
    let (sim, mut gate) = start_with("[privacy]\npolicy = \"opt-in\"\nhold_hours = 1\n");
    inject(&sim, OUTSIDE, "HELD-NEEDLE-8812");
    wait_reply(&sim, OUTSIDE, "JOIN", 0);
    assert!(in_db(&gate, "HELD-NEEDLE-8812"), "held, so stored");
    gate.stop(nix::sys::signal::Signal::SIGTERM);

    // Two hours later (the hold was one): the purge at start deletes it.
    gate.start(&faked(libfaketime.to_str().unwrap(), "+2h"));
    gate.wait_modems_ready(1);
    wait_for("the held message to leave the files", || {
        (!in_db(&gate, "HELD-NEEDLE-8812")).then_some(())
    });
    // A JOIN now releases nothing: the first event a full replay shows is
    // the message sent after joining.
    let mut events = gate.client();
    let sub = events.request(json!({"op": "subscribe", "events": ["inbound"], "since": 0}));
    assert_eq!(sub["ok"], true, "{sub}");
    inject(&sim, OUTSIDE, "JOIN");
    inject(&sim, OUTSIDE, "after joining");
    let ev = next_inbound(&mut events);
    assert_eq!(ev["text"], "after joining", "{ev}");
}
