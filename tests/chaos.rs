//! A seeded chaos soak of `smsgate run` against `smsgate sim` (3 modems):
//! traffic both ways while a random fault lands every few hundred ms, then
//! a reconciliation of the simulator's outbox, the store (through the bus)
//! and what a bus subscriber received. See docs/chaos.md.
//!
//! * outbound: a sender thread sends through the bus, each message with an
//!   idempotency key; a request cut by a dying daemon is repeated with the
//!   same key until a reply comes back, so "accepted" is exactly what the
//!   store holds.
//! * inbound: `sim ctl inject` to a random modem, a third of them multipart
//!   (some out of order).
//! * a subscriber thread subscribes to `inbound`, acks what it gets and
//!   resumes from its last cursor whenever it is cut off (by a daemon kill
//!   or by the `subscriber` fault).
//! * faults: SIGKILL of the daemon (then a restart), unplug (replug later),
//!   hang, garbage, `+CMS ERROR` bursts with temporary codes, storage full,
//!   reboot, subscriber disconnect. Each modem fault is cleared after
//!   0.3-2 s.
//!
//! Asserted: no accepted message lost (every one `sent`, and in the outbox),
//! no inbound message stored twice, every injected one stored and delivered
//! to the subscriber. A message that left twice is counted with the faults
//! that were active around it (a part in flight at a kill, unplug, hang or
//! reboot is requeued flagged maybe-sent: the modem may have sent it).
//!
//! `SMSGATE_CHAOS_SEED` (default 1) and `SMSGATE_CHAOS_FAULTS` (default 40,
//! a CI-sized run) change the run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use time::OffsetDateTime;

use common::daemon::*;

const MODEMS: usize = 3;

/// `+CMS ERROR` codes of the temporary class (TS 27.005 §3.2.5, TS 24.011
/// annex E): congestion, SC busy, SC system failure, ME failure, SIM busy.
const TEMPORARY_CMS: [u16; 5] = [42, 192, 194, 300, 314];

/// Long waits of the drain phase: every fault is cleared but retries back
/// off and restarted modems boot again.
const DRAIN: Duration = Duration::from_secs(180);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    Kill,
    Unplug,
    Hang,
    Garbage,
    CmsError,
    Full,
    Reboot,
    Subscriber,
}

const FAULTS: [Fault; 8] = [
    Fault::Kill,
    Fault::Unplug,
    Fault::Hang,
    Fault::Garbage,
    Fault::CmsError,
    Fault::Full,
    Fault::Reboot,
    Fault::Subscriber,
];

impl Fault {
    /// Whether a part in flight when this fault lands may have left the
    /// modem without the daemon hearing the `+CMGS` answer.
    fn opens_maybe_sent_window(self) -> bool {
        matches!(
            self,
            Fault::Kill | Fault::Unplug | Fault::Hang | Fault::Reboot | Fault::Garbage
        )
    }
}

/// What the threads share with the fault loop.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Outbound texts the bus acknowledged, with their message id.
    accepted: Mutex<BTreeMap<String, i64>>,
    /// Inbound texts the subscriber received, with every id it saw.
    delivered: Mutex<BTreeMap<String, BTreeSet<i64>>>,
    /// The subscriber's last processed cursor.
    cursor: AtomicU64,
    /// The subscriber's live connection, for the `subscriber` fault.
    sub_stream: Mutex<Option<UnixStream>>,
    resubscribes: AtomicU64,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sends until stopped; repeats a cut request with the same key.
fn sender(socket: PathBuf, shared: Arc<Shared>, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5e4d);
    let mut conn: Option<Client> = None;
    let mut n = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let key = format!("chaos out {seed} {n}");
        let mut text = key.clone();
        if rng.gen_bool(0.2) {
            // Two parts: 7-bit concatenated SMS carry 153 characters each.
            // Every part unique, so that a part joined to another
            // message's part (same concat reference) shows up unmatched.
            while text.len() < 200 {
                text.push_str(&format!(" {n}"));
            }
        }
        loop {
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            let Some(c) = conn.as_mut() else {
                conn = Client::connect(&socket).ok();
                if conn.is_none() {
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            };
            let req = json!({"op": "send", "to": OUTSIDE, "text": text, "key": key});
            match c.try_request(req) {
                Ok(r) if r["ok"] == true => {
                    let id = r["message"].as_i64().unwrap();
                    let mut acc = shared.accepted.lock().unwrap();
                    if let Some(old) = acc.insert(text.clone(), id) {
                        assert_eq!(old, id, "{text}: one key, two messages");
                    }
                    break;
                }
                Ok(r) if r["error"]["code"] == "unavailable" => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Ok(r) => panic!("send {text} rejected: {r}"),
                Err(_) => {
                    conn = None;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(rng.gen_range(80..300)));
    }
}

/// Subscribes to inbound events, acks each, and resumes from its cursor
/// after every disconnect until stopped.
fn subscriber(socket: PathBuf, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        let Ok(stream) = UnixStream::connect(&socket) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        *shared.sub_stream.lock().unwrap() = stream.try_clone().ok();
        let _ = subscribe_once(stream, &shared);
        shared.resubscribes.fetch_add(1, Ordering::Relaxed);
    }
}

fn subscribe_once(stream: UnixStream, shared: &Shared) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let since = shared.cursor.load(Ordering::Relaxed);
    writeln!(
        writer,
        "{}",
        json!({"op": "subscribe", "events": ["inbound"], "since": since})
    )?;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || !line.ends_with('\n') {
            return Ok(());
        }
        let v: Value = serde_json::from_str(&line).map_err(std::io::Error::other)?;
        if v["op"] == "subscribe" {
            assert_eq!(v["ok"], true, "{v}");
            continue;
        }
        if v["event"] != "inbound" {
            continue;
        }
        let (Some(id), Some(text), Some(cursor)) =
            (v["id"].as_i64(), v["text"].as_str(), v["cursor"].as_u64())
        else {
            panic!("inbound event without id, text or cursor: {v}");
        };
        assert_eq!(v["partial"], false, "{v}");
        shared
            .delivered
            .lock()
            .unwrap()
            .entry(text.to_string())
            .or_default()
            .insert(id);
        writeln!(writer, "{}", json!({"op": "ack", "message": id}))?;
        shared.cursor.fetch_max(cursor, Ordering::Relaxed);
    }
}

/// Every inbound event the store replays from cursor 0: text -> ids.
fn stored_inbound(socket: &Path) -> BTreeMap<String, BTreeSet<i64>> {
    let stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writeln!(
        writer,
        "{}",
        json!({"op": "subscribe", "events": ["inbound"], "since": 0})
    )
    .unwrap();
    let mut out: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let mut line = String::new();
    // The replay comes at once; a quiet socket means it is over.
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        let v: Value = serde_json::from_str(&line).unwrap();
        line.clear();
        if let (Some(id), Some(text)) = (v["id"].as_i64(), v["text"].as_str()) {
            out.entry(text.into()).or_default().insert(id);
        }
    }
    out
}

/// A fault with when it was injected (for the sent-twice reasons).
struct Injected {
    kind: Fault,
    at: OffsetDateTime,
}

#[test]
fn chaos_soak_loses_nothing_and_duplicates_no_inbound() {
    let started = Instant::now();
    let seed = env_u64("SMSGATE_CHAOS_SEED", 1);
    let faults = env_u64("SMSGATE_CHAOS_FAULTS", 40);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let sim = Sim::start(MODEMS, &["--seed", &seed.to_string(), "--latency", "20ms"]);
    let mut gate = Gate::new();
    gate.write_watching(
        &sim,
        "\
         [retry]\nmax_attempts = 1000\nbackoff_min_secs = 1\nbackoff_max_secs = 2\n",
    );
    gate.start(&[]);
    gate.wait_modems_ready(MODEMS);

    let shared = Arc::new(Shared::default());
    let threads = [
        std::thread::spawn({
            let (socket, shared) = (gate.socket(), Arc::clone(&shared));
            move || sender(socket, shared, seed)
        }),
        std::thread::spawn({
            let (socket, shared) = (gate.socket(), Arc::clone(&shared));
            move || subscriber(socket, shared)
        }),
    ];

    let mut injected_faults: Vec<Injected> = Vec::new();
    let mut inbound: Vec<String> = Vec::new();
    let mut multipart = 0;
    // Modem faults to clear: (when, modem).
    let mut clears: Vec<(Instant, usize)> = Vec::new();
    for _ in 0..faults {
        let now = Instant::now();
        for (_, modem) in clears.iter().filter(|(at, _)| *at <= now) {
            sim.ctl(&["clear", "--modem", &modem.to_string()]);
        }
        clears.retain(|(at, _)| *at > now);
        std::thread::sleep(Duration::from_millis(rng.gen_range(100..400)));

        if rng.gen_bool(0.5) {
            let modem = rng.gen_range(0..MODEMS).to_string();
            let mut text = format!("chaos in {seed} {}", inbound.len());
            let mut args = vec!["inject", "--modem", &modem, "--from", OUTSIDE];
            let parts = if rng.gen_bool(0.3) {
                rng.gen_range(2..=3u32)
            } else {
                1
            };
            let parts_arg = parts.to_string();
            if parts > 1 {
                multipart += 1;
                while text.len() < 140 * parts as usize {
                    text.push_str(" pad");
                }
                args.extend(["--parts", &parts_arg]);
                if rng.gen_bool(0.5) {
                    args.push("--out-of-order");
                }
            }
            args.extend(["--text", &text]);
            sim.ctl(&args);
            inbound.push(text);
        }

        let kind = FAULTS[rng.gen_range(0..FAULTS.len())];
        let modem = rng.gen_range(0..MODEMS);
        let k = modem.to_string();
        match kind {
            Fault::Kill => {
                let st = gate.stop(Signal::SIGKILL);
                assert_eq!(st.code(), None, "killed");
                gate.start(&[]);
            }
            Fault::Unplug => drop(sim.ctl(&["unplug", "--modem", &k])),
            Fault::Hang => drop(sim.ctl(&["hang", "--modem", &k])),
            Fault::Garbage => drop(sim.ctl(&["garbage", "--modem", &k])),
            Fault::CmsError => {
                let code = TEMPORARY_CMS[rng.gen_range(0..TEMPORARY_CMS.len())].to_string();
                let rate = format!("{:.1}", rng.gen_range(0.3..1.0));
                sim.ctl(&["cms-error", &code, "--modem", &k, "--rate", &rate]);
            }
            Fault::Full => drop(sim.ctl(&["full", "--modem", &k])),
            Fault::Reboot => drop(sim.ctl(&["reboot", "--modem", &k])),
            Fault::Subscriber => {
                if let Some(s) = shared.sub_stream.lock().unwrap().as_ref() {
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }
            }
        }
        if matches!(
            kind,
            Fault::Unplug | Fault::Hang | Fault::Garbage | Fault::CmsError | Fault::Full
        ) {
            clears.push((
                Instant::now() + Duration::from_millis(rng.gen_range(300..2000)),
                modem,
            ));
        }
        injected_faults.push(Injected {
            kind,
            at: OffsetDateTime::now_utc(),
        });
    }
    let faults_done = started.elapsed();

    // Drain: every fault off, the sender stopped, the queue emptied.
    for k in 0..MODEMS {
        sim.ctl(&["clear", "--modem", &k.to_string()]);
    }
    shared.stop.store(true, Ordering::Relaxed);
    let [send_thread, sub_thread] = threads;
    send_thread.join().unwrap();
    gate.wait_modems_ready(MODEMS);
    let accepted = shared.accepted.lock().unwrap().clone();
    let mut c = gate.client();
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for (text, id) in &accepted {
        let state = common::wait_for(DRAIN, &format!("{text} (message {id}) sent"), || {
            let s = c.state(*id);
            matches!(
                s.as_str(),
                "sent" | "delivered" | "failed" | "expired" | "cancelled"
            )
            .then_some(s)
        });
        *states.entry(state).or_default() += 1;
    }
    common::wait_for(
        DRAIN,
        "every inbound message delivered to the subscriber",
        || {
            let d = shared.delivered.lock().unwrap();
            inbound.iter().all(|t| d.contains_key(t)).then_some(())
        },
    );
    if let Some(s) = shared.sub_stream.lock().unwrap().as_ref() {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    sub_thread.join().unwrap();

    // Reconcile.
    let mut by_kind: BTreeMap<Fault, usize> = BTreeMap::new();
    for f in &injected_faults {
        *by_kind.entry(f.kind).or_default() += 1;
    }
    let outbox = sim.outbox();
    let mut left: BTreeMap<&str, Vec<OffsetDateTime>> = BTreeMap::new();
    for m in &outbox {
        if let (Some(text), Some(time)) = (m["text"].as_str(), m["time"].as_str()) {
            let at = OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
                .unwrap();
            left.entry(text).or_default().push(at);
        }
    }
    let (mut once, mut twice, mut more, mut lost, mut split) = (0, 0, 0, Vec::new(), Vec::new());
    let mut twice_reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut over_attempts = Vec::new();
    for text in accepted.keys() {
        let times = left.get(text.as_str()).cloned().unwrap_or_default();
        match times.len() {
            0 => {
                // Not in the outbox as a whole: were its parts sent over
                // different modems? The network (and a real phone) joins
                // parts per sender, so such a message never completes.
                let id = accepted[text];
                let st = c.request(json!({"op": "status", "message": id}));
                let modems: BTreeSet<String> = st["parts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| p["modem"].to_string())
                    .collect();
                if modems.len() > 1 {
                    split.push((id, st));
                } else {
                    lost.push((id, st));
                }
            }
            1 => once += 1,
            n => {
                if n == 2 {
                    twice += 1;
                } else {
                    more += 1;
                }
                // The faults that could have opened the maybe-sent window:
                // from shortly before the first copy to the last one.
                let (first, last) = (times[0], times[n - 1]);
                let window = first - Duration::from_secs(3)..=last;
                let mut why: Vec<String> = injected_faults
                    .iter()
                    .filter(|f| f.kind.opens_maybe_sent_window() && window.contains(&f.at))
                    .map(|f| format!("{:?}", f.kind).to_lowercase())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                if why.is_empty() {
                    why.push("no fault nearby".into());
                }
                *twice_reasons.entry(why.join("+")).or_default() += 1;
                // A copy leaves only on an attempt: more copies than
                // attempts would be a resend the store never recorded.
                let id = accepted[text];
                let st = c.request(json!({"op": "status", "message": id}));
                let attempts = st["parts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["attempts"].as_u64())
                    .max()
                    .unwrap_or(0) as usize;
                if n > attempts {
                    over_attempts.push((id, n, st));
                }
            }
        }
    }
    // Outbox entries that match no accepted text: a part left again after
    // its message was joined waits alone in the network's reassembly and
    // is listed incomplete (`missing_parts`) when it times out: harmless
    // if it is a piece of an accepted text. Anything else is garbled: parts
    // of different messages joined (a concatenation reference reused too
    // soon, TS 23.040 §9.2.3.24.1).
    let (mut stray, mut garbled) = (0, Vec::new());
    for m in &outbox {
        let text = m["text"].as_str().unwrap_or("");
        if accepted.contains_key(text) {
            continue;
        }
        let incomplete = m["missing_parts"].as_array().is_some_and(|a| !a.is_empty());
        if incomplete && !text.is_empty() && accepted.keys().any(|t| t.contains(text)) {
            stray += 1;
        } else {
            garbled.push(m.clone());
        }
    }
    let unmatched = stray + garbled.len();
    let stored = stored_inbound(&gate.socket());
    let delivered = shared.delivered.lock().unwrap().clone();
    let stored_once = inbound
        .iter()
        .filter(|t| stored.get(*t).is_some_and(|ids| ids.len() == 1))
        .count();
    let duplicated: Vec<_> = stored.iter().filter(|(_, ids)| ids.len() > 1).collect();
    let inbound_lost: Vec<_> = inbound
        .iter()
        .filter(|t| !stored.contains_key(*t))
        .collect();
    let delivered_count = inbound
        .iter()
        .filter(|t| delivered.contains_key(*t))
        .count();
    let delivered_dup: Vec<_> = delivered.iter().filter(|(_, ids)| ids.len() > 1).collect();

    println!(
        "chaos seed {seed}: {} faults in {:.0?} (total {:.0?}, {} daemon runs, {} subscriptions)",
        injected_faults.len(),
        faults_done,
        started.elapsed(),
        gate.runs,
        shared.resubscribes.load(Ordering::Relaxed),
    );
    println!("  faults by kind: {by_kind:?}");
    println!(
        "  outbound: accepted {}, states {states:?}, sent once {once}, sent twice {twice} \
         {twice_reasons:?}, more than twice {more}, parts split across modems {}, lost {}, \
         outbox entries matching no accepted text {unmatched} ({stray} stray parts of \
         sent messages, {} garbled)",
        accepted.len(),
        split.len(),
        lost.len(),
        garbled.len(),
    );
    for (id, st) in &split {
        println!("  split across modems (the recipient cannot join them): message {id}: {st}");
    }
    println!(
        "  inbound: injected {} ({multipart} multipart), stored once {stored_once}, \
         duplicated {}, lost {}, delivered to the bus client {delivered_count}",
        inbound.len(),
        duplicated.len(),
        inbound_lost.len(),
    );
    assert!(lost.is_empty(), "lost outbound: {lost:?}");
    assert!(split.is_empty(), "parts split across modems: {split:?}");
    assert!(
        over_attempts.is_empty(),
        "left more often than attempted: {over_attempts:?}"
    );
    assert!(
        !twice_reasons.contains_key("no fault nearby"),
        "a message left again with no fault that could explain it: {twice_reasons:?}"
    );
    assert!(garbled.is_empty(), "garbled outbox entries: {garbled:?}");
    assert_eq!(
        states.get("sent").copied().unwrap_or(0),
        accepted.len(),
        "{states:?}"
    );
    assert!(
        duplicated.is_empty(),
        "inbound stored twice: {duplicated:?}"
    );
    assert!(
        delivered_dup.is_empty(),
        "inbound delivered under two ids: {delivered_dup:?}"
    );
    assert!(inbound_lost.is_empty(), "inbound lost: {inbound_lost:?}");
    assert_eq!(stored_once, inbound.len());
    assert_eq!(delivered_count, inbound.len());
    assert_eq!(gate.stop(Signal::SIGTERM).code(), Some(0));
}
