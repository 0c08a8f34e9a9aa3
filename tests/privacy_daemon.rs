//! The privacy gate in the real daemon (docs/privacy.md): `smsgate run`
//! against `smsgate sim`, driven through the bus socket and `sim ctl`.
//! The tests run as root, which always sees numbers; what a peer without
//! that right sees is covered by the handle tests in `src/bus` and
//! `src/privacy`, and here by sending to a handle.

mod common;

use std::path::Path;

use common::daemon::{wait_for, Client, Gate, Sim, OUTSIDE};
use serde_json::{json, Value};

const HELP_TEXT: &str = "Test gateway run by the test suite";

fn start(policy: &str) -> (Sim, Gate) {
    let sim = Sim::start(1, &[]);
    let mut gate = Gate::new();
    gate.write_config(&format!(
        "[discovery]\ndir = \"{}\"\nrescan_secs = 1\n[privacy]\npolicy = \"{policy}\"\nhelp_text = \"{HELP_TEXT}\"\n",
        sim.dir().display()
    ));
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
    // JOIN releases both, in order, and is itself not relayed.
    inject(&sim, OUTSIDE, "join");
    let ev = next_inbound(&mut events);
    assert_eq!(ev["text"], "first words", "{ev}");
    assert_eq!(ev["from"], OUTSIDE, "{ev}");
    assert_eq!(ev["transport"], "sms", "{ev}");
    assert_eq!(ev["e2e"], false, "{ev}");
    let ev = next_inbound(&mut events);
    assert_eq!(ev["text"], "second words", "{ev}");
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
    wait_reply(&sim, OUTSIDE, HELP_TEXT, 0);

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
