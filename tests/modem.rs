//! The modem actor against `smsgate sim` (the real binary) on real
//! pseudo-terminals: bring-up per profile, PIN safety, receiving with
//! commit-before-delete, sending, and faults (hang, unplug, reboot).
//!
//! Waits are bounded polls of observable state (the actor's watch, the
//! simulator's `sim ctl` answers); no test relies on a sleep to be right.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use smsgate::at::commands::EnterPin;
use smsgate::at::{Link, LinkConfig};
use smsgate::modem::{
    self, Committed, ModemConfig, ModemEvent, ModemHandle, Received, RejectedPins, SendError,
    Snapshot,
};
use smsgate::pdu::{encode_submit, Address, EncodedPdu, SubmitOptions, Tpdu};
use tokio::sync::mpsc;
use tokio::time::timeout;

mod common;

use common::pty::Sim;

/// Generous: the machine is shared; a pass is usually much faster.
const WAIT: Duration = Duration::from_secs(60);

/// Waits until modem `k` holds no message.
async fn emptied(sim: &Sim, k: usize) {
    eventually("storage emptied", || async { sim.stored(k).await == 0 }).await;
}

/// Short timers so faults are noticed in seconds.
fn config(sim: &Sim, k: usize) -> ModemConfig {
    let mut c = ModemConfig::new(format!("m{k}"), sim.port(k));
    c.probe_interval = Duration::from_millis(700);
    c.probe_timeout = Duration::from_secs(2);
    c.backoff_min = Duration::from_millis(200);
    c.backoff_max = Duration::from_secs(2);
    c.settle_max = Duration::from_secs(4);
    c.sweep_timeout = Duration::from_secs(10);
    c.commit_timeout = Duration::from_secs(5);
    c.send_timeout = Duration::from_secs(5);
    c
}

fn start(c: ModemConfig) -> (ModemHandle, mpsc::Receiver<ModemEvent>) {
    start_with(c, RejectedPins::new())
}

fn start_with(c: ModemConfig, r: RejectedPins) -> (ModemHandle, mpsc::Receiver<ModemEvent>) {
    // `SMSGATE_LOG=info cargo test --test modem -- --nocapture` shows the
    // actor's log.
    if std::env::var_os("SMSGATE_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("SMSGATE_LOG"))
            .with_test_writer()
            .try_init();
    }
    modem::spawn(c, r).unwrap()
}

async fn wait_state(h: &ModemHandle, state: &str) -> Snapshot {
    let mut rx = h.watch();
    let got = match timeout(WAIT, rx.wait_for(|s| s.state == state)).await {
        Ok(Ok(s)) => s.clone(),
        _ => panic!("never reached {state}; now {:?}", h.snapshot()),
    };
    got
}

/// The first snapshot (now or later) for which `f` holds.
async fn wait_snapshot(h: &ModemHandle, what: &str, f: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let mut rx = h.watch();
    let got = match timeout(WAIT, rx.wait_for(|s| f(s))).await {
        Ok(Ok(s)) => s.clone(),
        _ => panic!("timed out: {what}; now {:?}", h.snapshot()),
    };
    got
}

/// Ready, with the sweep that follows ready done (it ends by reading the
/// storage fill): a fault injected now hits the next command, not the
/// start-up `+CMGL` (which, on a loaded machine, can still be running).
async fn ready_and_swept(h: &ModemHandle) -> Snapshot {
    wait_snapshot(h, "ready after the start-up sweep", |s| {
        s.state == "ready" && s.storage_total.is_some()
    })
    .await
}

/// The first snapshot whose `last_error` reports a denied registration.
async fn denied_reported(h: &ModemHandle) -> Snapshot {
    wait_snapshot(h, "denied reported", |s| {
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("denied"))
    })
    .await
}

/// The next inbound part or status report, skipping state events.
async fn next_received(
    ev: &mut mpsc::Receiver<ModemEvent>,
) -> (Received, tokio::sync::oneshot::Sender<Committed>) {
    loop {
        match timeout(WAIT, ev.recv()).await {
            Ok(Some(ModemEvent::Inbound { part, commit })) => return (part, commit),
            Ok(Some(ModemEvent::StatusReport { report, commit })) => return (report, commit),
            Ok(Some(ModemEvent::State(_))) => continue,
            other => panic!("no inbound event: {other:?}"),
        }
    }
}

fn text_of(r: &Received) -> String {
    match &r.decoded {
        Ok(p) => match &p.tpdu {
            Tpdu::Deliver(d) => match &d.user_data.body {
                smsgate::pdu::Body::Text(t) => t.clone(),
                other => panic!("not text: {other:?}"),
            },
            other => panic!("not a deliver: {other:?}"),
        },
        Err(e) => panic!("undecodable: {e}"),
    }
}

fn concat_seq(r: &Received) -> Option<u8> {
    match &r.decoded {
        Ok(p) => match &p.tpdu {
            Tpdu::Deliver(d) => d
                .user_data
                .header
                .as_ref()
                .and_then(|h| h.concat())
                .map(|c| c.seq),
            _ => None,
        },
        Err(_) => None,
    }
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn submit(to: &str, text: &str) -> Vec<EncodedPdu> {
    encode_submit(
        &Address::parse_number(to).unwrap(),
        text,
        &SubmitOptions::default(),
    )
    .unwrap()
}

// ------------------------------------------------------------- bring-up

async fn bring_up(profile: &str) {
    let sim = Sim::start(&["--modems", "1", "--profile", profile]);
    let (h, _ev) = start(config(&sim, 0));
    let s = wait_state(&h, "ready").await;
    let m = sim.modem(0).await;
    assert_eq!(s.imei.as_deref(), m["imei"].as_str(), "{s:?}");
    assert_eq!(s.imsi.as_deref(), m["imsi"].as_str(), "{s:?}");
    assert_eq!(s.iccid.as_deref(), m["iccid"].as_str(), "{s:?}");
    assert_eq!(s.own_number.as_deref(), m["number"].as_str(), "{s:?}");
    assert_eq!(s.profile.as_deref(), Some(profile), "{s:?}");
    assert_eq!(s.registration.as_deref(), Some("home"));
    assert!(s.manufacturer.is_some() && s.model.is_some() && s.revision.is_some());
    h.shutdown().await;
    assert_eq!(h.snapshot().state, "stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bring_up_generic() {
    bring_up("generic").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bring_up_huawei() {
    bring_up("huawei").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bring_up_quectel() {
    bring_up("quectel").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bring_up_simcom() {
    bring_up("simcom").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bring_up_sierra() {
    bring_up("sierra").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bring_up_telit() {
    bring_up("telit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bring_up_ublox() {
    bring_up("ublox").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bring_up_zte() {
    bring_up("zte").await;
}

/// The answer of a fake modem's vendor command (`None`: not this one).
type Answer = &'static (dyn Fn(&str) -> Option<&'static str> + Sync);

/// A modem of `profile` that answers only its vendor ICCID command (as
/// `answer` says); every other ICCID form is an `ERROR`. Returns the ICCID
/// the actor read and the commands it sent.
async fn iccid_read_by(profile: Option<&str>, answer: Answer) -> (Option<String>, Vec<String>) {
    let fake = Fake::start(move |cmd| {
        if let Some(info) = answer(cmd) {
            return Some(format!("\r\n{info}\r\n\r\nOK\r\n"));
        }
        let iccid_form = ["AT+CCID", "AT^ICCID?", "AT+QCCID", "AT+ICCID", "AT+CRSM"]
            .iter()
            .any(|f| cmd.starts_with(f));
        iccid_form.then(|| "\r\nERROR\r\n".to_string())
    });
    let mut c = ModemConfig::new("fake", &fake.path);
    c.probe_interval = Duration::from_secs(30);
    c.profile = profile.map(str::to_string);
    let (h, _ev) = start(c);
    let s = wait_state(&h, "ready").await;
    h.shutdown().await;
    (s.iccid, fake.commands())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_iccid_answers_with_their_own_prefix() {
    #[rustfmt::skip]
    let cases: [(&str, &str, Answer); 3] = [
        ("telit", "AT#CCID", &|c| (c == "AT#CCID").then_some("#CCID: 89390100001234567895")),
        ("sierra", "AT!ICCID?", &|c| (c == "AT!ICCID?").then_some("ICCID: 89390100001234567895")),
        ("zte", "AT+ZGETICCID", &|c| (c == "AT+ZGETICCID").then_some("+ZGETICCID: 89390100001234567895")),
    ];
    for (profile, command, answer) in cases {
        let (iccid, cmds) = iccid_read_by(Some(profile), answer).await;
        assert_eq!(
            iccid.as_deref(),
            Some("89390100001234567895"),
            "{profile}: {cmds:?}"
        );
        assert!(cmds.iter().any(|c| c == command), "{profile}: {cmds:?}");
        // Read from the first answer: no other form was tried.
        assert!(!cmds.iter().any(|c| c == "AT+CCID"), "{profile}: {cmds:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iccid_falls_back_to_ef_iccid() {
    // No vendor command answers; EF_ICCID in swapped BCD (27.007 §8.18).
    let (iccid, cmds) = iccid_read_by(None, &|c| {
        (c == "AT+CRSM=176,12258,0,0,10").then_some("+CRSM: 144,0,\"98931000002143658759\"")
    })
    .await;
    assert_eq!(iccid.as_deref(), Some("89390100001234567895"), "{cmds:?}");
}

/// The first set-up fails (PDU mode refused once), so the modem is
/// identified again; that time `lost` fails, the next time it works.
/// Returns the first ready snapshot and every `state/value` published.
async fn identity_lost_once(lost: &'static str) -> (Snapshot, Vec<String>) {
    use std::sync::atomic::{AtomicU32, Ordering};
    let calls = AtomicU32::new(0);
    let cmgf = AtomicU32::new(0);
    let fake = Fake::start(move |cmd| {
        let err = || Some("\r\nERROR\r\n".to_string());
        match cmd {
            c if c == lost && calls.fetch_add(1, Ordering::SeqCst) == 1 => err(),
            "AT+CMGF=0" if cmgf.fetch_add(1, Ordering::SeqCst) == 0 => err(),
            c if ["AT^ICCID?", "AT+QCCID", "AT+ICCID", "AT+CRSM"]
                .iter()
                .any(|f| c.starts_with(f)) =>
            {
                err()
            }
            _ => None,
        }
    });
    let mut c = ModemConfig::new("fake", &fake.path);
    c.probe_interval = Duration::from_secs(30);
    c.backoff_min = Duration::from_millis(100);
    let (h, _ev) = start(c);
    let seen = record(&h, |s| format!("{}/{:?}/{:?}", s.state, s.imei, s.iccid));
    let s = wait_state(&h, "ready").await;
    let cmds = fake.commands();
    assert!(cmds.iter().filter(|c| *c == lost).count() >= 3, "{cmds:?}");
    h.shutdown().await;
    let seen = seen.lock().unwrap().clone();
    (s, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_iccid_or_imei_read_is_out_of_step_not_another_scope() {
    for lost in ["AT+CCID", "AT+CGSN"] {
        let (s, seen) = identity_lost_once(lost).await;
        assert_eq!(
            s.iccid.as_deref(),
            Some("89490200001234567890"),
            "{lost}: {s:?}"
        );
        assert_eq!(s.imei.as_deref(), Some("490154203237518"), "{lost}: {s:?}");
        // Once identified, never without the identity it had.
        let after = seen.iter().skip_while(|s| !s.starts_with("registering"));
        assert!(after.clone().count() > 2, "{lost}: {seen:?}");
        assert!(
            after.clone().all(|s| !s.contains("None")),
            "{lost}: {seen:?}"
        );
        assert!(
            seen.iter().any(|s| s.starts_with("degraded")),
            "{lost}: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_message_the_daemon_cannot_take_brings_cnmi_back() {
    // The daemon never reads events (queue of 1, filled by a state
    // event); a +CMT arrives after a probe: it cannot be acknowledged, so
    // +CNMI is set again and the storage swept (27.005 §3.4.4).
    // The first +CSQ is the bring-up's (its URCs are dropped): the second.
    let csq = std::sync::atomic::AtomicU32::new(0);
    let fake = Fake::start(move |cmd| {
        if cmd == "AT+CSQ" && csq.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            return Some(format!("{}\r\n+CMT: ,4\r\n00040B91\r\n", plain(cmd)));
        }
        None
    });
    let mut c = ModemConfig::new("fake", &fake.path);
    c.probe_interval = Duration::from_millis(300);
    c.queue = 1;
    c.event_timeout = Duration::from_millis(100);
    let (h, _ev) = start(c);
    wait_state(&h, "ready").await;
    eventually("+CNMI set again", || {
        let cmds = fake.commands();
        async move { cmds.iter().filter(|c| c.starts_with("AT+CNMI=")).count() >= 2 }
    })
    .await;
    let cmds = fake.commands();
    let again = cmds
        .iter()
        .rposition(|c| c.starts_with("AT+CNMI="))
        .unwrap();
    eventually("swept after", || {
        let cmds = fake.commands();
        async move { cmds.iter().skip(again).any(|c| c.starts_with("AT+CMGL")) }
    })
    .await;
    assert!(!fake.commands().iter().any(|c| c == "AT+CNMA"));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_registration_is_reported_and_stored_messages_are_read() {
    // Registration denied for good (27.007 §7.2 <stat>=3); one message
    // already on the SIM (a GSM 7-bit "hi" from +4912345, hand-made).
    const PDU: &str = "0004068121436500006210110000000002E834";
    let mem = std::sync::Mutex::new(String::new());
    let fake = Fake::start(move |cmd| {
        if let Some(m) = cmd.strip_prefix("AT+CPMS=\"") {
            *mem.lock().unwrap() = m.chars().take(2).collect();
            return None;
        }
        match cmd {
            "AT+CREG?" => Some("\r\n+CREG: 1,3\r\n\r\nOK\r\n".into()),
            "AT+CMGL=4" if *mem.lock().unwrap() == "ME" => {
                Some(format!("\r\n+CMGL: 2,0,,19\r\n{PDU}\r\n\r\nOK\r\n"))
            }
            _ => None,
        }
    });
    let mut c = ModemConfig::new("fake", &fake.path);
    c.backoff_min = Duration::from_millis(100);
    c.backoff_max = Duration::from_millis(500);
    c.registration_report_after = Duration::from_secs(1);
    let (h, mut ev) = start(c);
    let (part, commit) = next_received(&mut ev).await;
    assert_eq!(
        part.origin,
        modem::Origin::Stored {
            mem: "ME".into(),
            index: 2
        }
    );
    assert_eq!(h.snapshot().state, "registering");
    commit.send(Committed).unwrap();
    eventually("deleted while registering", || {
        let cmds = fake.commands();
        async move { cmds.iter().any(|c| c == "AT+CMGD=2") }
    })
    .await;
    let s = denied_reported(&h).await;
    assert_eq!(s.state, "registering", "{s:?}");
    assert_eq!(s.registration.as_deref(), Some("denied"), "{s:?}");
    // Still polled, but not in a busy loop: backoff_max 0.5 s.
    let before = fake.commands().iter().filter(|c| *c == "AT+CREG?").count();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let polls = fake.commands().iter().filter(|c| *c == "AT+CREG?").count() - before;
    assert!((1..=20).contains(&polls), "{polls} polls in 2 s");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_modem_is_reported_then_gets_ready_when_allowed() {
    let sim = Sim::start(&["--modems", "1"]);
    sim.ctl(&["deny", "--modem", "0"]).await;
    let mut c = config(&sim, 0);
    c.registration_report_after = Duration::from_secs(1);
    let (h, _ev) = start(c);
    let s = denied_reported(&h).await;
    assert_eq!(s.state, "registering", "{s:?}");
    sim.ctl(&["deny", "--modem", "0", "--off"]).await;
    let s = wait_state(&h, "ready").await;
    assert_eq!(s.registration.as_deref(), Some("home"), "{s:?}");
    assert_eq!(s.last_error, None, "{s:?}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_fill_is_in_the_snapshot() {
    let sim = Sim::start(&["--modems", "1"]);
    let (h, _ev) = start(config(&sim, 0));
    wait_state(&h, "ready").await;
    // Read by the sweep that follows ready.
    let s = wait_snapshot(&h, "storage read", |s| s.storage_total.is_some()).await;
    let me = &sim.modem(0).await["storage"]["me"];
    assert_eq!(s.storage_used, me[0].as_u64().map(|n| n as u32), "{s:?}");
    assert_eq!(s.storage_total, me[1].as_u64().map(|n| n as u32), "{s:?}");
    assert!(s.storage_total.unwrap() > 0);
    // Full (the simulator then reports a capacity equal to the use): seen
    // at the next probe.
    sim.ctl(&["full", "--modem", "0"]).await;
    let s = wait_snapshot(&h, "full seen", |s| s.storage_total == Some(0)).await;
    assert_eq!(s.storage_used, Some(0), "{s:?}");
    assert_eq!(s.state, "ready", "{s:?}");
    h.shutdown().await;
}

// ------------------------------------------------------------------ PIN

async fn iccid(sim: &Sim) -> String {
    sim.modem(0).await["iccid"].as_str().unwrap().to_string()
}

fn wrong_pins_in_log(sim: &Sim) -> usize {
    sim.log().matches("wrong PIN").count()
}

/// Enters `pin` `n` times through the AT engine, as a careless human would.
async fn enter_pin_by_hand(sim: &Sim, pin: &str, n: usize) {
    let port = tokio_serial::SerialPortBuilderExt::open_native_async(tokio_serial::new(
        sim.port(0).to_string_lossy(),
        115_200,
    ))
    .unwrap();
    let link = Link::spawn(port, LinkConfig::new("human"));
    for _ in 0..n {
        assert!(link.send(&EnterPin::new(pin).unwrap()).await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_pin_from_config_gets_ready() {
    let sim = Sim::start(&["--modems", "1", "--pin", "1234"]);
    let mut c = config(&sim, 0);
    c.pins.insert(iccid(&sim).await, "1234".into());
    let (h, _ev) = start(c);
    wait_state(&h, "ready").await;
    assert_eq!(wrong_pins_in_log(&sim), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pin_is_sent_once_and_never_again() {
    // Quectel announces a reboot (+CPIN: SIM PIN among its boot URCs).
    let sim = Sim::start(&["--modems", "1", "--pin", "1234", "--profile", "quectel"]);
    let mut c = config(&sim, 0);
    c.pins.insert(iccid(&sim).await, "9999".into());
    let rejected = RejectedPins::new();
    let (h, _ev) = start_with(c.clone(), rejected.clone());
    let s = wait_state(&h, "sim-locked").await;
    let reason = s.detail;
    assert!(
        reason.contains("rejected") && reason.contains("2 attempt"),
        "{reason}"
    );
    assert_eq!(wrong_pins_in_log(&sim), 1);
    // The modem reboots and asks again: the actor re-identifies, but does
    // not try the rejected PIN.
    sim.ctl(&["reboot", "--modem", "0"]).await;
    let mut rx = h.watch();
    timeout(WAIT, rx.wait_for(|s| s.state == "identifying"))
        .await
        .unwrap()
        .unwrap();
    wait_state(&h, "sim-locked").await;
    h.shutdown().await;
    // A new actor in the same process remembers too.
    let (h2, _ev2) = start_with(c, rejected);
    let s = wait_state(&h2, "sim-locked").await;
    assert!(s.detail.contains("rejected before"), "{}", s.detail);
    assert_eq!(wrong_pins_in_log(&sim), 1, "the PIN was sent twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_attempt_is_left_to_a_human() {
    let sim = Sim::start(&["--modems", "1", "--pin", "1234"]);
    enter_pin_by_hand(&sim, "0000", 2).await;
    let mut c = config(&sim, 0);
    c.pins.insert(iccid(&sim).await, "1234".into());
    let (h, _ev) = start(c);
    let s = wait_state(&h, "sim-locked").await;
    assert!(s.detail.contains("one PIN attempt left"), "{}", s.detail);
    assert_eq!(wrong_pins_in_log(&sim), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puk_locked_sim_is_reported() {
    let sim = Sim::start(&["--modems", "1", "--pin", "1234"]);
    enter_pin_by_hand(&sim, "0000", 3).await;
    let mut c = config(&sim, 0);
    c.pins.insert(iccid(&sim).await, "1234".into());
    let (h, _ev) = start(c);
    let s = wait_state(&h, "sim-locked").await;
    assert!(s.detail.contains("PUK"), "{}", s.detail);
    assert_eq!(wrong_pins_in_log(&sim), 3);
    // Sends are refused at once, temporarily (another modem may take it).
    let e = h.send(submit("+4915112345678", "hi")).await.unwrap_err();
    assert!(e.is_temporary(), "{e}");
}

// -------------------------------------------------------------- receive

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_is_deleted_only_after_commit() {
    inbound_commit_then_delete("generic").await;
}

/// Huawei numbers its slots from 0 and prefers SIM storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_on_huawei_slot_zero() {
    inbound_commit_then_delete("huawei").await;
}

async fn inbound_commit_then_delete(profile: &str) {
    let sim = Sim::start(&["--modems", "1", "--profile", profile]);
    let (h, mut ev) = start(config(&sim, 0));
    wait_state(&h, "ready").await;
    sim.inject(0, "hello gateway", &[]).await;
    let (part, commit) = next_received(&mut ev).await;
    assert_eq!(text_of(&part), "hello gateway");
    assert!(
        matches!(part.origin, modem::Origin::Stored { .. }),
        "{:?}",
        part.origin
    );
    if profile == "huawei" {
        let first = modem::Origin::Stored {
            mem: "SM".into(),
            index: 0,
        };
        assert_eq!(part.origin, first);
    }
    assert_eq!(part.modem, sim.modem(0).await["imei"].as_str().unwrap());
    // Not committed yet: still on the modem.
    assert_eq!(sim.stored(0).await, 1);
    commit.send(Committed).unwrap();
    emptied(&sim, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_out_of_order_arrives_whole() {
    let sim = Sim::start(&["--modems", "1"]);
    let (h, mut ev) = start(config(&sim, 0));
    wait_state(&h, "ready").await;
    let text: String = (0..400)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    sim.inject(0, &text, &["--parts", "3", "--out-of-order"])
        .await;
    let mut parts = BTreeMap::new();
    while parts.len() < 3 {
        let (p, commit) = next_received(&mut ev).await;
        commit.send(Committed).unwrap();
        parts.insert(concat_seq(&p).unwrap(), text_of(&p));
    }
    assert_eq!(parts.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(parts.values().cloned().collect::<String>(), text);
    emptied(&sim, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncommitted_stays_and_is_offered_again() {
    let sim = Sim::start(&["--modems", "1"]);
    let mut c = config(&sim, 0);
    c.commit_timeout = Duration::from_millis(500);
    c.sweep_interval = Duration::from_secs(2);
    let (h, mut ev) = start(c);
    wait_state(&h, "ready").await;
    sim.inject(0, "keep me", &[]).await;
    let (first, commit) = next_received(&mut ev).await;
    drop(commit); // the store failed: no commit
    let (again, commit) = next_received(&mut ev).await;
    assert_eq!(again.pdu, first.pdu);
    assert_eq!(again.origin, first.origin);
    assert_eq!(sim.stored(0).await, 1, "deleted without a commit");
    commit.send(Committed).unwrap();
    emptied(&sim, 0).await;
}

// ----------------------------------------------------------------- send

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_single_and_multipart() {
    let sim = Sim::start(&["--modems", "1"]);
    let (h, _ev) = start(config(&sim, 0));
    wait_state(&h, "ready").await;
    let sent = h
        .send(submit("+4915112345678", "hello world"))
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].mr.is_some());
    let long: String = "0123456789".repeat(35);
    let sent = h.send(submit("+4915112345679", &long)).await.unwrap();
    assert_eq!(sent.len(), 3);
    let mrs: BTreeSet<_> = sent.iter().map(|p| p.mr.unwrap()).collect();
    assert_eq!(mrs.len(), 3, "each part has its own TP-MR");
    let out = sim.ctl(&["outbox"]).await;
    assert!(out
        .iter()
        .any(|m| m["to"] == "+4915112345678" && m["text"] == "hello world"));
    let multi = out
        .iter()
        .find(|m| m["to"] == "+4915112345679")
        .expect("multipart in the outbox");
    assert_eq!(multi["text"], long.as_str());
    assert_eq!(multi["parts"], 3);
    let want: Vec<Value> = sent.iter().map(|p| Value::from(p.mr.unwrap())).collect();
    assert_eq!(multi["mrs"], Value::Array(want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cms_errors_are_classified() {
    let sim = Sim::start(&["--modems", "1"]);
    let (h, _ev) = start(config(&sim, 0));
    ready_and_swept(&h).await;
    sim.ctl(&["cms-error", "500", "--modem", "0"]).await;
    match h.send(submit("+4915112345678", "x")).await {
        Err(SendError::Temporary { reason, sent }) => {
            assert!(reason.contains("500"), "{reason}");
            assert!(sent.is_empty());
        }
        other => panic!("want temporary, got {other:?}"),
    }
    sim.ctl(&["cms-error", "21", "--modem", "0"]).await;
    match h.send(submit("+4915112345678", "x")).await {
        Err(SendError::Permanent { reason, .. }) => assert!(reason.contains("21"), "{reason}"),
        other => panic!("want permanent, got {other:?}"),
    }
    sim.ctl(&["cms-error", "--modem", "0", "--off"]).await;
    // Refusals from the network are not a sick modem.
    assert_eq!(h.snapshot().state, "ready");
    h.send(submit("+4915112345678", "after")).await.unwrap();
    assert!(sim.ctl(&["outbox"]).await.iter().all(|m| m["text"] != "x"));
}

// --------------------------------------------------------------- faults

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdu_written_without_an_answer_is_unconfirmed_not_failed() {
    let sim = Sim::start(&["--modems", "1"]);
    let mut c = config(&sim, 0);
    c.send_timeout = Duration::from_secs(2);
    // No probe: the actor stays ready through the short hangs.
    c.probe_interval = Duration::from_secs(600);
    let (h, _ev) = start(c);
    ready_and_swept(&h).await;
    // A hang before the prompt: the PDU never left, an ordinary failure.
    sim.ctl(&["hang", "--modem", "0"]).await;
    match h.send(submit("+4915112345678", "never written")).await {
        Err(SendError::Temporary { reason, sent }) => {
            assert!(reason.contains("before the PDU was written"), "{reason}");
            assert!(sent.is_empty());
        }
        other => panic!("want temporary, got {other:?}"),
    }
    sim.ctl(&["hang", "--modem", "0", "--off"]).await;
    wait_state(&h, "ready").await;
    // The PDU taken, then silence: it left, and the actor must not say
    // it did not.
    sim.ctl(&["hang-after-send", "--modem", "0"]).await;
    match h.send(submit("+4915112345678", "lost answer")).await {
        Err(e @ SendError::Unconfirmed { .. }) => {
            assert!(e.is_temporary());
            let SendError::Unconfirmed { reason, sent, part } = e else {
                unreachable!()
            };
            assert_eq!((part, sent.len()), (0, 0));
            assert!(reason.contains("may have left"), "{reason}");
        }
        other => panic!("want unconfirmed, got {other:?}"),
    }
    assert_eq!(sim.sent("lost answer").await.len(), 1);
    assert!(sim.sent("never written").await.is_empty());
    sim.ctl(&["hang", "--modem", "0", "--off"]).await;
    wait_state(&h, "ready").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_withdrawn_while_queued_never_leaves() {
    let sim = Sim::start(&["--modems", "1"]);
    let mut c = config(&sim, 0);
    c.send_timeout = Duration::from_secs(3);
    c.probe_interval = Duration::from_secs(600);
    let (h, _ev) = start(c);
    ready_and_swept(&h).await;
    // The actor is busy with a send the hung modem does not answer ...
    sim.ctl(&["hang", "--modem", "0"]).await;
    let blocker = h.submit(submit("+4915112345678", "blocker")).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ... while this one waits behind it, and its caller gives up.
    let queued = h
        .submit_tracked(submit("+4915112345678", "withdrawn"), "42")
        .unwrap();
    drop(queued.started);
    sim.ctl(&["hang", "--modem", "0", "--off"]).await;
    let r = timeout(WAIT, blocker).await.unwrap().unwrap();
    assert!(r.unwrap_err().is_temporary());
    // Dropped unanswered (nobody waits for it), or, when the hang made the
    // actor reopen the port first, refused with the queue: never sent.
    if let Ok(r) = timeout(WAIT, queued.outcome).await.unwrap() {
        assert!(r.is_err(), "a withdrawn send was sent: {r:?}");
    }
    // The hang may have sent the actor through a reopen: the next send is
    // taken once it is ready again.
    wait_state(&h, "ready").await;
    let after = h
        .submit_tracked(submit("+4915112345678", "after"), "43")
        .unwrap();
    timeout(WAIT, after.started).await.unwrap().unwrap();
    timeout(WAIT, after.outcome)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(sim.sent("withdrawn").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_escalates_and_recovers() {
    let sim = Sim::start(&["--modems", "1"]);
    let (h, _ev) = start(config(&sim, 0));
    wait_state(&h, "ready").await;
    sim.ctl(&["hang", "--modem", "0"]).await;
    let mut rx = h.watch();
    timeout(WAIT, rx.wait_for(|s| s.state == "resetting"))
        .await
        .expect("the probe never failed")
        .unwrap();
    let e = h
        .send(submit("+4915112345678", "while hung"))
        .await
        .unwrap_err();
    assert!(e.is_temporary());
    sim.ctl(&["hang", "--modem", "0", "--off"]).await;
    wait_state(&h, "ready").await;
    h.send(submit("+4915112345678", "after the hang"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ladder_climbs_rung_by_rung_while_hung() {
    let sim = Sim::start(&["--modems", "1"]);
    let mut c = config(&sim, 0);
    c.settle_max = Duration::from_secs(1);
    let (h, _ev) = start(c);
    wait_state(&h, "ready").await;
    let details = record_details(&h);
    sim.ctl(&["hang", "--modem", "0"]).await;
    let mut rx = h.watch();
    timeout(WAIT, rx.wait_for(|s| s.detail.contains("Reenumerate")))
        .await
        .expect("the ladder never reached its last rung")
        .unwrap();
    sim.ctl(&["hang", "--modem", "0", "--off"]).await;
    wait_state(&h, "ready").await;
    let details = details.lock().unwrap().clone();
    let first = |rung: &str| {
        details
            .iter()
            .position(|d| d.contains(&format!("({rung},")))
    };
    let order: Vec<Option<usize>> = ["Reopen", "CfunCycle", "Reset", "Reenumerate"]
        .into_iter()
        .map(first)
        .collect();
    assert!(order.iter().all(Option::is_some), "{details:?}");
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{details:?}");
    assert!(
        details.iter().any(|d| d.starts_with("degraded")),
        "{details:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_is_gone_and_replug_is_ready_again() {
    let sim = Sim::start(&["--modems", "1"]);
    let (h, _ev) = start(config(&sim, 0));
    wait_state(&h, "ready").await;
    sim.ctl(&["unplug", "--modem", "0"]).await;
    wait_state(&h, "gone").await;
    let e = h
        .send(submit("+4915112345678", "nowhere"))
        .await
        .unwrap_err();
    assert!(e.is_temporary(), "{e}");
    sim.ctl(&["replug", "--modem", "0"]).await;
    wait_state(&h, "ready").await;
    h.send(submit("+4915112345678", "back")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboot_mid_sweep_loses_nothing() {
    let sim = Sim::start(&["--modems", "1"]);
    let n = 8;
    for i in 0..n {
        let text = format!("message {i}");
        sim.inject(0, &text, &[]).await;
    }
    assert_eq!(sim.stored(0).await, n);
    let mut c = config(&sim, 0);
    // One event at a time: the start-up sweep waits for us between offers,
    // so the reboot below lands in the middle of it.
    c.queue = 1;
    let (h, mut ev) = start(c);
    let (first, commit) = next_received(&mut ev).await;
    sim.ctl(&["reboot", "--modem", "0"]).await;
    let states = record_states(&h);
    commit.send(Committed).unwrap();
    let mut seen = BTreeSet::from([text_of(&first)]);
    let mut offers = 1;
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen.len() < n as usize || sim.stored(0).await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "seen {seen:?}");
        if let Ok(Some(e)) = timeout(Duration::from_millis(500), ev.recv()).await {
            match e {
                ModemEvent::Inbound { part, commit } => {
                    seen.insert(text_of(&part));
                    offers += 1;
                    let _ = commit.send(Committed);
                }
                ModemEvent::StatusReport { commit, .. } => drop(commit),
                ModemEvent::State(_) => {}
            }
        }
    }
    let want: BTreeSet<String> = (0..n).map(|i| format!("message {i}")).collect();
    assert_eq!(seen, want);
    eprintln!("{n} messages, {offers} offers across the reboot");
    wait_state(&h, "ready").await;
    let states = states.lock().unwrap().clone();
    assert!(
        states.iter().any(|s| s == "identifying"),
        "the reboot went unnoticed: {states:?}"
    );
}

type Seen = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Every state name `h` goes through from now on.
fn record_states(h: &ModemHandle) -> Seen {
    record(h, |s| s.state.clone())
}

/// Every state detail (with reason or rung) `h` goes through from now on.
fn record_details(h: &ModemHandle) -> Seen {
    record(h, |s| s.detail.clone())
}

fn record(h: &ModemHandle, f: fn(&Snapshot) -> String) -> Seen {
    let seen = Seen::default();
    let mut rx = h.watch();
    let out = seen.clone();
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let s = f(&rx.borrow_and_update());
            out.lock().unwrap().push(s);
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hung_modem_does_not_stall_another() {
    let sim = Sim::start(&["--modems", "2"]);
    let (h0, _e0) = start(config(&sim, 0));
    let (h1, _e1) = start(config(&sim, 1));
    wait_state(&h0, "ready").await;
    wait_state(&h1, "ready").await;
    sim.ctl(&["hang", "--modem", "0"]).await;
    let stuck = h0.submit(submit("+4915112345678", "stuck")).unwrap();
    for i in 0..5 {
        let text = format!("still flowing {i}");
        timeout(
            Duration::from_secs(10),
            h1.send(submit("+4915112345678", &text)),
        )
        .await
        .expect("modem 1 stalled by modem 0")
        .unwrap();
    }
    // The send queued on the hung modem is answered (temporary), not lost.
    let r = timeout(WAIT, stuck).await.unwrap().unwrap();
    assert!(r.unwrap_err().is_temporary());
    sim.ctl(&["hang", "--modem", "0", "--off"]).await;
    wait_state(&h0, "ready").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_line_is_survived() {
    let sim = Sim::start(&["--modems", "1"]);
    let (h, mut ev) = start(config(&sim, 0));
    wait_state(&h, "ready").await;
    sim.ctl(&["garbage", "--modem", "0"]).await;
    sim.inject(0, "through the noise", &[]).await;
    let (part, commit) = next_received(&mut ev).await;
    assert_eq!(text_of(&part), "through the noise");
    commit.send(Committed).unwrap();
    sim.ctl(&["garbage", "--modem", "0", "--off"]).await;
    emptied(&sim, 0).await;
    wait_state(&h, "ready").await;
    h.send(submit("+4915112345678", "after the noise"))
        .await
        .unwrap();
}

// ---------------------------------------------- routed messages, reports

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flash_message_is_routed_and_acknowledged_after_commit() {
    let sim = Sim::start(&["--modems", "1"]);
    let (h, mut ev) = start(config(&sim, 0));
    wait_state(&h, "ready").await;
    sim.inject(0, "flash", &["--class", "0"]).await;
    let (part, commit) = next_received(&mut ev).await;
    assert_eq!(part.origin, modem::Origin::Routed);
    assert_eq!(text_of(&part), "flash");
    commit.send(Committed).unwrap();
    // Acknowledged (+CNMA): the modem does not store it, and the actor is
    // still ready and able to receive the next one.
    sim.inject(0, "second", &["--class", "0"]).await;
    let (part, commit) = next_received(&mut ev).await;
    assert_eq!(text_of(&part), "second");
    commit.send(Committed).unwrap();
    assert_eq!(sim.stored(0).await, 0);
    assert_eq!(h.snapshot().state, "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_flash_message_is_kept_by_the_modem_and_swept() {
    let sim = Sim::start(&["--modems", "1"]);
    let mut c = config(&sim, 0);
    c.commit_timeout = Duration::from_millis(300);
    c.sweep_interval = Duration::from_secs(2);
    let (h, mut ev) = start(c);
    wait_state(&h, "ready").await;
    sim.inject(0, "flash", &["--class", "0"]).await;
    let (part, commit) = next_received(&mut ev).await;
    assert_eq!(part.origin, modem::Origin::Routed);
    drop(commit);
    // 27.005 §3.4.4: without +CNMA the modem stores it; a sweep offers it.
    let (again, commit) = next_received(&mut ev).await;
    assert!(
        matches!(again.origin, modem::Origin::Stored { .. }),
        "{:?}",
        again.origin
    );
    assert_eq!(text_of(&again), "flash");
    commit.send(Committed).unwrap();
    emptied(&sim, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_report_comes_back_with_the_part_reference() {
    let sim = Sim::start(&["--modems", "1", "--report-delay", "200ms"]);
    let (h, mut ev) = start(config(&sim, 0));
    wait_state(&h, "ready").await;
    let opts = SubmitOptions {
        status_report: true,
        ..SubmitOptions::default()
    };
    let parts = encode_submit(
        &Address::parse_number("+4915112345678").unwrap(),
        "report me",
        &opts,
    )
    .unwrap();
    let sent = h.send(parts).await.unwrap();
    let mr = sent[0].mr.unwrap();
    let report = loop {
        match timeout(WAIT, ev.recv()).await {
            Ok(Some(ModemEvent::StatusReport { report, commit })) => {
                commit.send(Committed).unwrap();
                break report;
            }
            Ok(Some(ModemEvent::State(_))) => {}
            other => panic!("no status report: {other:?}"),
        }
    };
    match report.decoded.as_ref().map(|p| &p.tpdu) {
        Ok(Tpdu::StatusReport(r)) => {
            assert_eq!(r.message_reference, mr);
            assert_eq!(r.recipient.to_string(), "+4915112345678");
        }
        other => panic!("not a status report: {other:?}"),
    }
    emptied(&sim, 0).await;
}

// ------------------------------------------------- a scripted fake modem

/// A modem scripted by the test on a raw pty: every command line is
/// recorded and answered by `answer` (`None`: the 27.007 answer of a plain
/// modem from [`plain`]).
struct Fake {
    path: PathBuf,
    commands: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Held so the master never sees EIO while the actor reopens.
    _slave: std::os::fd::OwnedFd,
}

impl Fake {
    fn start(answer: impl Fn(&str) -> Option<String> + Send + 'static) -> Fake {
        use std::io::{Read, Write};
        let p = nix::pty::openpty(None, None).unwrap();
        let mut t = nix::sys::termios::tcgetattr(&p.slave).unwrap();
        nix::sys::termios::cfmakeraw(&mut t);
        nix::sys::termios::tcsetattr(&p.slave, nix::sys::termios::SetArg::TCSANOW, &t).unwrap();
        let path = nix::unistd::ttyname(&p.slave).unwrap();
        let mut rd = File::from(p.master);
        let mut wr = rd.try_clone().unwrap();
        let commands = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = commands.clone();
        std::thread::spawn(move || {
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            while let Ok(1) = rd.read(&mut b) {
                match b[0] {
                    b'\r' => {
                        let cmd = String::from_utf8_lossy(&line).trim().to_string();
                        line.clear();
                        if cmd.is_empty() {
                            continue;
                        }
                        let reply = answer(&cmd).unwrap_or_else(|| plain(&cmd));
                        log.lock().unwrap().push(cmd);
                        // A NUL in a reply: a pause there, as when a
                        // modem's answers straddle two reads.
                        for (i, chunk) in reply.split('\0').enumerate() {
                            if i > 0 {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            if wr.write_all(chunk.as_bytes()).is_err() {
                                return;
                            }
                        }
                    }
                    b'\n' => {}
                    c => line.push(c),
                }
            }
        });
        Fake {
            path,
            commands,
            _slave: p.slave,
        }
    }

    fn commands(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }
}

/// Answers of a plain registered 27.005/27.007 modem with ME and SM.
fn plain(cmd: &str) -> String {
    let info = match cmd {
        "AT+CGMI" => "fake",
        "AT+CGMM" => "FAKE-1",
        "AT+CGMR" => "0.1",
        "AT+CGSN" => "490154203237518",
        "AT+CPIN?" => "+CPIN: READY",
        "AT+CCID" => "+CCID: 89490200001234567890",
        "AT+CIMI" => "262011234567890",
        "AT+CPMS=?" => "+CPMS: (\"ME\",\"SM\"),(\"ME\",\"SM\"),(\"ME\",\"SM\")",
        "AT+CSMS=1" => "+CSMS: 1,1,1",
        "AT+CSCA?" => "+CSCA: \"+491710760000\",145",
        "AT+CREG?" => "+CREG: 1,1",
        "AT+COPS?" => "+COPS: 0,0,\"Fake Net\",7",
        "AT+CSQ" => "+CSQ: 20,99",
        c if c.starts_with("AT+CPMS=\"") => "+CPMS: 0,10,0,10,0,10",
        _ => "",
    };
    if info.is_empty() {
        "\r\nOK\r\n".to_string()
    } else {
        format!("\r\n{info}\r\n\r\nOK\r\n")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_pdu_is_handed_over_raw_and_deleted_only_after_commit() {
    // A stored SMS-DELIVER cut short after its originator length.
    const BROKEN: &str = "00040B91";
    let mem = std::sync::Mutex::new(String::new());
    let fake = Fake::start(move |cmd| {
        if let Some(m) = cmd.strip_prefix("AT+CPMS=\"") {
            *mem.lock().unwrap() = m.chars().take(2).collect();
            return None;
        }
        (cmd == "AT+CMGL=4" && *mem.lock().unwrap() == "ME")
            .then(|| format!("\r\n+CMGL: 1,1,,3\r\n{BROKEN}\r\n\r\nOK\r\n"))
    });
    let mut c = ModemConfig::new("fake", &fake.path);
    c.probe_interval = Duration::from_secs(30);
    let (h, mut ev) = start(c);
    let (part, commit) = next_received(&mut ev).await;
    assert_eq!(part.pdu, BROKEN);
    assert!(part.decoded.is_err(), "{:?}", part.decoded);
    assert_eq!(
        part.origin,
        modem::Origin::Stored {
            mem: "ME".into(),
            index: 1
        }
    );
    let s = h.snapshot();
    assert_eq!(s.imei.as_deref(), Some("490154203237518"));
    assert_eq!(s.iccid.as_deref(), Some("89490200001234567890"));
    assert_eq!(s.operator.as_deref(), Some("Fake Net"));
    assert_eq!(s.profile.as_deref(), Some("generic"));
    assert!(!fake.commands().iter().any(|c| c.starts_with("AT+CMGD")));
    commit.send(Committed).unwrap();
    eventually("deleted after commit", || {
        let cmds = fake.commands();
        async move { cmds.iter().any(|c| c == "AT+CMGD=1") }
    })
    .await;
    // The storage was selected right before the delete.
    let cmds = fake.commands();
    let del = cmds.iter().position(|c| c == "AT+CMGD=1").unwrap();
    assert_eq!(cmds[del - 1], "AT+CPMS=\"ME\"");
    // Set-up as documented: PDU mode, storage, phase 2+, indications.
    for want in [
        "AT+CMEE=1",
        "AT+CMGF=0",
        "AT+CPMS=\"ME\",\"ME\",\"ME\"",
        "AT+CSMS=1",
        "AT+CNMI=2,1,0,2,0",
        "AT+CREG=1",
    ] {
        assert!(cmds.iter().any(|c| c == want), "{want} missing: {cmds:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_reply_at_open_does_not_shift_the_identification() {
    // A daemon killed during a slow command: the modem answers it after we
    // opened the port, so our first AT gets that stale OK at once and its
    // own OK a moment later. Read in step, the next command would get the
    // previous one's answer all through the identification (no IMEI, no
    // ICCID: the modem would be known by its name, not its id).
    // Every answer takes 50 ms (so the offset, once there, persists).
    let first = std::sync::atomic::AtomicBool::new(true);
    let fake = Fake::start(move |cmd| {
        if cmd == "AT" && first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Some("\r\nOK\r\n\0\r\nOK\r\n".to_string());
        }
        Some(format!("\0{}", plain(cmd)))
    });
    let mut c = ModemConfig::new("fake", &fake.path);
    c.probe_interval = Duration::from_secs(30);
    let (h, _ev) = start(c);
    let s = wait_state(&h, "ready").await;
    assert_eq!(s.imei.as_deref(), Some("490154203237518"), "{s:?}");
    assert_eq!(s.iccid.as_deref(), Some("89490200001234567890"), "{s:?}");
    assert_eq!(s.manufacturer.as_deref(), Some("fake"), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modem_that_answers_at_but_never_gets_ready_is_reset() {
    // Answers AT, but +CGMI never: identification times out every time.
    let fake = Fake::start(|cmd| (cmd == "AT+CGMI").then(String::new));
    let mut c = ModemConfig::new("fake", &fake.path);
    c.backoff_min = Duration::from_millis(100);
    c.backoff_max = Duration::from_secs(1);
    c.settle_max = Duration::from_secs(1);
    let (h, _ev) = start(c);
    eventually("the reset command", || {
        let cmds = fake.commands();
        async move { cmds.iter().any(|c| c == "AT+CFUN=1,1") }
    })
    .await;
    let cmds = fake.commands();
    let identifications = cmds.iter().filter(|c| *c == "AT+CGMI").count();
    assert!(identifications >= 3, "{cmds:?}");
    assert!(h.snapshot().last_error.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_status_report_is_acknowledged_after_commit() {
    let sim = Sim::start(&["--modems", "1", "--report-delay", "200ms"]);
    // A profile that routes status reports directly (+CDS, <ds>=1).
    let mut routed = smsgate::hardware::builtin_profile("generic").unwrap();
    routed.at.cnmi = Some("2,1,0,1,0".into());
    let mut c = config(&sim, 0);
    c.profiles = vec![routed];
    let (h, mut ev) = start(c);
    wait_state(&h, "ready").await;
    let opts = SubmitOptions {
        status_report: true,
        ..SubmitOptions::default()
    };
    let to = Address::parse_number("+4915112345678").unwrap();
    for text in ["first", "second"] {
        let sent = h
            .send(encode_submit(&to, text, &opts).unwrap())
            .await
            .unwrap();
        let (report, commit) = next_received(&mut ev).await;
        assert_eq!(report.origin, modem::Origin::Routed);
        match report.decoded.as_ref().map(|p| &p.tpdu) {
            Ok(Tpdu::StatusReport(r)) => assert_eq!(Some(r.message_reference), sent[0].mr),
            other => panic!("not a status report: {other:?}"),
        }
        // +CNMA after the commit; the modem then routes the next one.
        commit.send(Committed).unwrap();
    }
    assert_eq!(sim.stored(0).await, 0);
}
