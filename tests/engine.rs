//! The engine end to end: the real `smsgate sim` binary on pseudo-terminals,
//! the modem actors, a real SQLite store in a temporary directory, and the
//! router. Outbound messages are checked against the simulator's outbox
//! (what the network received), inbound ones against the store.
//!
//! Waits are bounded polls of observable state; no sleep decides a result.

use std::time::Duration;

use serde_json::Value;
use smsgate::daemon::engine::{Engine, EngineConfig, EngineError, OutboundRequest};
use smsgate::modem::ModemConfig;
use smsgate::router::{PrefixRule, RoutingConfig};
use smsgate::store::{
    InboundId, InboundMessage, MessageId, MessageState, OutboundStatus, RetryPolicy, Store,
    StoreConfig,
};

mod common;

use common::pty::{Sim, OUTSIDE};

/// Generous: the machine is shared; a pass is usually much faster.
const WAIT: Duration = Duration::from_secs(90);

/// A simulator, a store and an engine over them.
struct Rig {
    sim: Sim,
    engine: Engine,
    _db: tempfile::TempDir,
}

fn trace() {
    // `SMSGATE_LOG=debug cargo test --test engine -- --nocapture`
    if std::env::var_os("SMSGATE_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("SMSGATE_LOG"))
            .with_test_writer()
            .try_init();
    }
}

/// Short timers so faults are noticed in seconds.
fn modem_config(sim: &Sim, k: usize) -> ModemConfig {
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

async fn open_store(dir: &tempfile::TempDir) -> Store {
    let mut c = StoreConfig::at(dir.path().join("smsgate.db"));
    c.retry = RetryPolicy {
        base_ms: 200,
        max_ms: 1_000,
        max_attempts: 8,
    };
    Store::open_async(c).await.unwrap()
}

impl Rig {
    /// `modems` simulated modems, of which the first `add` are added to
    /// the engine and awaited ready.
    async fn start(sim_args: &[&str], add: usize, config: EngineConfig) -> Rig {
        trace();
        let sim = Sim::start(sim_args);
        let db = tempfile::tempdir().unwrap();
        let engine = Engine::start(open_store(&db).await, config);
        let rig = Rig {
            sim,
            engine,
            _db: db,
        };
        for k in 0..add {
            rig.add(k).await;
        }
        rig
    }

    async fn add(&self, k: usize) {
        self.add_with(modem_config(&self.sim, k)).await;
    }

    async fn add_with(&self, c: ModemConfig) {
        let name = c.name.clone();
        self.engine.add_modem(c).unwrap();
        self.ready(&name).await;
    }

    async fn ready(&self, name: &str) {
        let what = format!("{name} ready");
        eventually(&what, || async {
            self.engine
                .modems()
                .iter()
                .any(|m| m.snapshot.name == name && m.snapshot.state == "ready")
        })
        .await;
    }

    async fn send(&self, to: &str, text: &str) -> MessageId {
        self.request(OutboundRequest {
            to: to.into(),
            text: text.into(),
            ..OutboundRequest::default()
        })
        .await
    }

    async fn request(&self, req: OutboundRequest) -> MessageId {
        let e = self.engine.send(req).await.unwrap();
        assert!(e.created);
        e.id
    }

    async fn status(&self, id: MessageId) -> OutboundStatus {
        self.engine.store().outbound_status(id).await.unwrap()
    }

    /// Waits until message `id` is in `state`.
    async fn reaches(&self, id: MessageId, state: MessageState) -> OutboundStatus {
        let what = format!("message {id} {state}");
        eventually(&what, || async { self.status(id).await.state == state }).await;
        self.status(id).await
    }

    async fn inbox(&self) -> Vec<InboundMessage> {
        self.engine
            .store()
            .inbound_since(InboundId(0), 1000)
            .await
            .unwrap()
    }

    /// Waits until the store holds an inbound message with `text`.
    async fn received(&self, text: &str) -> InboundMessage {
        let what = format!("inbound {text:?}");
        eventually(&what, || async {
            self.inbox()
                .await
                .iter()
                .any(|m| m.text.as_deref() == Some(text))
        })
        .await;
        let all: Vec<InboundMessage> = self
            .inbox()
            .await
            .into_iter()
            .filter(|m| m.text.as_deref() == Some(text))
            .collect();
        assert_eq!(all.len(), 1, "stored more than once: {all:?}");
        all.into_iter().next().unwrap()
    }

    /// Waits until the outbox holds exactly one message with `text`.
    async fn left_once(&self, text: &str) -> Value {
        let what = format!("{text:?} in the outbox");
        eventually(&what, || async { !self.sim.sent(text).await.is_empty() }).await;
        let sent = self.sim.sent(text).await;
        assert_eq!(sent.len(), 1, "sent more than once: {sent:?}");
        sent.into_iter().next().unwrap()
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

// ------------------------------------------------------------ requests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_their_codes() {
    let db = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        max_parts: 2,
        queue_limit: 3,
        ..EngineConfig::default()
    };
    let engine = Engine::start(open_store(&db).await, config);
    let req = |to: &str, text: &str| OutboundRequest {
        to: to.into(),
        text: text.into(),
        ..OutboundRequest::default()
    };
    let code = |r: Result<_, EngineError>| r.unwrap_err().code();
    assert_eq!(
        code(engine.send(req("+49 151", "x")).await),
        "invalid_number"
    );
    assert_eq!(code(engine.send(req("", "x")).await), "invalid_number");
    assert_eq!(
        code(engine.send(req(OUTSIDE, &"x".repeat(400))).await),
        "text_too_long"
    );
    let pinned = OutboundRequest {
        modem: Some("nowhere".into()),
        ..req(OUTSIDE, "x")
    };
    assert_eq!(code(engine.send(pinned).await), "unknown_modem");
    // Two parts fit, a third and fourth part would pass the queue limit.
    engine.send(req(OUTSIDE, &"y".repeat(200))).await.unwrap();
    engine.send(req(OUTSIDE, "z")).await.unwrap();
    assert_eq!(code(engine.send(req(OUTSIDE, "w")).await), "queue_full");
    // Nothing refused was stored.
    let stats = engine.store().stats().await.unwrap();
    assert_eq!(stats.parts_queued, 3);
    engine.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_resend_returns_the_first_message() {
    let rig = Rig::start(&["--modems", "1"], 1, EngineConfig::default()).await;
    let req = OutboundRequest {
        to: OUTSIDE.into(),
        text: "only once".into(),
        key: Some("order-17".into()),
        validity: Some(Duration::from_secs(3600)),
        ..OutboundRequest::default()
    };
    let first = rig.engine.send(req.clone()).await.unwrap();
    assert!(first.created);
    rig.reaches(first.id, MessageState::Sent).await;
    let again = rig.engine.send(req.clone()).await.unwrap();
    assert_eq!((again.id, again.created), (first.id, false));
    let other = OutboundRequest {
        text: "something else".into(),
        ..req
    };
    let e = rig.engine.send(other).await.unwrap_err();
    assert_eq!(e.code(), "conflict", "{e}");
    rig.left_once("only once").await;
}

// ------------------------------------------------------------- traffic

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_go_out_and_between_modems() {
    let rig = Rig::start(&["--modems", "2"], 2, EngineConfig::default()).await;
    let out = rig.send(OUTSIDE, "hello world").await;
    let st = rig.reaches(out, MessageState::Sent).await;
    assert!(st.parts[0].mr.is_some(), "{st:?}");
    let entry = rig.left_once("hello world").await;
    assert_eq!(entry["to"], OUTSIDE);

    // Modem 0 to modem 1: it comes back in as an inbound message of modem 1.
    let to = rig.sim.number(1).await;
    let id = rig
        .request(OutboundRequest {
            to: to.clone(),
            text: "hello neighbour".into(),
            modem: Some("m0".into()),
            ..OutboundRequest::default()
        })
        .await;
    let st = rig.reaches(id, MessageState::Sent).await;
    assert_eq!(st.modem, Some(rig.sim.imei(0).await));
    let got = rig.received("hello neighbour").await;
    assert_eq!(got.sender, rig.sim.number(0).await);
    assert_eq!(got.modem, rig.sim.imei(1).await);
    assert_eq!(got.sim, Some(rig.sim.iccid(1).await));
    eventually("delivered inbound deleted from modem 1", || async {
        rig.sim.stored(1).await == 0
    })
    .await;
    // The views carry the store's counters.
    eventually("counters", || async {
        let v = rig.engine.modems();
        v.iter().map(|m| m.sent_today).sum::<u64>() >= 2
            && v.iter().map(|m| m.received_today).sum::<u64>() >= 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_ucs2_and_flash_arrive_whole() {
    let rig = Rig::start(&["--modems", "2"], 2, EngineConfig::default()).await;
    let to = rig.sim.number(1).await;
    let long: String = (0..40).map(|i| format!("part{i:03} ")).collect();
    let ucs2 = "Grüße aus Köln — 你好 👋";
    let ids = [
        rig.send(&to, &long).await,
        rig.send(&to, ucs2).await,
        rig.request(OutboundRequest {
            to: to.clone(),
            text: "flash!".into(),
            flash: true,
            ..OutboundRequest::default()
        })
        .await,
    ];
    for id in ids {
        rig.reaches(id, MessageState::Sent).await;
    }
    let entry = rig.left_once(&long).await;
    assert_eq!(entry["parts"], 3);
    let st = rig.status(ids[0]).await;
    let modems: Vec<_> = st.parts.iter().map(|p| p.modem.clone()).collect();
    assert!(
        modems.windows(2).all(|w| w[0] == w[1]),
        "parts of one message went through one modem: {modems:?}"
    );
    for text in [long.as_str(), ucs2, "flash!"] {
        let got = rig.received(text).await;
        assert!(!got.partial);
    }
    assert_eq!(rig.received(&long).await.parts_total, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_multipart_out_of_order_is_stored_once_and_whole() {
    let rig = Rig::start(&["--modems", "1"], 1, EngineConfig::default()).await;
    let text: String = (0..30).map(|i| format!("chunk{i:02}-")).collect();
    rig.sim
        .inject(0, &text, &["--parts", "3", "--out-of-order"])
        .await;
    let got = rig.received(&text).await;
    assert_eq!((got.parts_total, got.parts_received), (3, 3));
    assert_eq!(got.sender, OUTSIDE);
    eventually("deleted after commit", || async {
        rig.sim.stored(0).await == 0
    })
    .await;
    // Nothing else was stored (no partial, no duplicate).
    assert_eq!(rig.inbox().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_mark_messages_delivered() {
    let rig = Rig::start(
        &["--modems", "1", "--report-delay", "200ms"],
        1,
        EngineConfig::default(),
    )
    .await;
    let id = rig
        .request(OutboundRequest {
            to: OUTSIDE.into(),
            text: "report me".into(),
            report: true,
            ..OutboundRequest::default()
        })
        .await;
    let st = rig.reaches(id, MessageState::Delivered).await;
    assert!(st.parts[0].delivered_ms.is_some(), "{st:?}");
    eventually("report deleted after commit", || async {
        rig.sim.stored(0).await == 0
    })
    .await;
    let stats = rig.engine.store().stats().await.unwrap();
    assert_eq!(stats.unmatched_reports_total, 0);
}

// -------------------------------------------------------------- faults

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_during_a_send_requeues_to_the_other_modem() {
    let rig = Rig::start(&["--modems", "2"], 0, EngineConfig::default()).await;
    // Modem 0 alone, hung but not yet noticed (no probe): the send starts
    // on it and never finishes.
    let mut c = modem_config(&rig.sim, 0);
    c.probe_interval = Duration::from_secs(600);
    c.send_timeout = Duration::from_secs(60);
    rig.add_with(c).await;
    rig.sim.ctl(&["hang", "--modem", "0"]).await;
    let id = rig.send(OUTSIDE, "through the window").await;
    eventually("the part is in flight on modem 0", || async {
        rig.status(id).await.parts[0].state.as_str() == "sending"
    })
    .await;
    rig.sim.ctl(&["unplug", "--modem", "0"]).await;
    rig.add(1).await;
    let st = rig.reaches(id, MessageState::Sent).await;
    assert_eq!(st.modem, Some(rig.sim.imei(1).await), "{st:?}");
    // The hung modem answered nothing: the attempt there was given up
    // (temporary) and the part went out once, through modem 1.
    assert!(st.parts[0].attempts >= 2, "{st:?}");
    let entry = rig.left_once("through the window").await;
    assert_eq!(entry["modem"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_modem_does_not_hold_back_the_others() {
    let rig = Rig::start(&["--modems", "2"], 2, EngineConfig::default()).await;
    rig.sim.ctl(&["hang", "--modem", "0"]).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(rig.send(OUTSIDE, &format!("still flowing {i}")).await);
    }
    for (i, id) in ids.into_iter().enumerate() {
        rig.reaches(id, MessageState::Sent).await;
        let entry = rig.left_once(&format!("still flowing {i}")).await;
        assert_eq!(entry["modem"], 1);
    }
    rig.sim.ctl(&["hang", "--modem", "0", "--off"]).await;
    rig.ready("m0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_errors_are_retried_and_permanent_ones_fail() {
    let rig = Rig::start(&["--modems", "1"], 1, EngineConfig::default()).await;
    rig.sim.ctl(&["cms-error", "500", "--modem", "0"]).await;
    let id = rig.send(OUTSIDE, "second time lucky").await;
    eventually("a failed attempt", || async {
        let st = rig.status(id).await;
        st.parts[0].attempts >= 1 && st.parts[0].state.as_str() == "queued"
    })
    .await;
    let reason = rig.status(id).await.parts[0].reason.clone();
    assert!(reason.unwrap_or_default().contains("500"));
    rig.sim.ctl(&["cms-error", "--modem", "0", "--off"]).await;
    rig.reaches(id, MessageState::Sent).await;
    rig.left_once("second time lucky").await;

    rig.sim.ctl(&["cms-error", "21", "--modem", "0"]).await;
    let id = rig.send(OUTSIDE, "never").await;
    let st = rig.reaches(id, MessageState::Failed).await;
    assert!(
        st.reason.clone().unwrap_or_default().contains("21"),
        "{st:?}"
    );
    assert_eq!(st.parts[0].attempts, 1, "a permanent error is not retried");
    assert!(rig.sim.sent("never").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_errors_fail_over_to_another_modem() {
    let rig = Rig::start(&["--modems", "2"], 2, EngineConfig::default()).await;
    rig.sim.ctl(&["cms-error", "500", "--modem", "0"]).await;
    rig.sim.ctl(&["cms-error", "500", "--modem", "1"]).await;
    let id = rig.send(OUTSIDE, "find a way").await;
    eventually("a failed attempt", || async {
        rig.status(id).await.parts[0].attempts >= 1
    })
    .await;
    let failed_on = rig.status(id).await.parts[0].modem.clone();
    let (bad, good) = if failed_on == Some(rig.sim.imei(0).await) {
        (0, 1)
    } else {
        (1, 0)
    };
    let good_s = good.to_string();
    rig.sim
        .ctl(&["cms-error", "--modem", &good_s, "--off"])
        .await;
    let st = rig.reaches(id, MessageState::Sent).await;
    assert_eq!(st.parts[0].modem, Some(rig.sim.imei(good).await));
    let entry = rig.left_once("find a way").await;
    assert_eq!(entry["modem"], good);
    let _ = bad;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_answer_is_lost_is_maybe_sent_and_stays_on_its_modem() {
    // Work bound to a modem that is not ready is freed after a second, so
    // only the store's maybe-sent binding keeps the message on its modem.
    let config = EngineConfig {
        unbind_after: Duration::from_secs(1),
        ..EngineConfig::default()
    };
    let rig = Rig::start(&["--modems", "2"], 2, config).await;
    // Whichever modem takes it sends it and hangs before answering; the
    // other would do the same, so a resend through it would show.
    for k in ["0", "1"] {
        rig.sim.ctl(&["hang-after-send", "--modem", k]).await;
    }
    let id = rig.send(OUTSIDE, "did it leave?").await;
    let first = rig.left_once("did it leave?").await;
    let k = first["modem"].as_u64().unwrap() as usize;
    let imei = rig.sim.imei(k).await;
    eventually("the part requeued as maybe-sent", || async {
        let st = rig.status(id).await;
        st.parts[0].maybe_sent >= 1 && st.parts[0].state.as_str() == "queued"
    })
    .await;
    let st = rig.status(id).await;
    assert_eq!(st.modem.as_ref(), Some(&imei), "kept on its modem: {st:?}");
    let reason = st.parts[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("may have left"), "{reason}");
    assert!(rig.engine.store().stats().await.unwrap().maybe_sent_total >= 1);
    // Long past `unbind_after`, with the other modem ready: not resent.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let sent = rig.sim.sent("did it leave?").await;
    assert_eq!(sent.len(), 1, "resent through another SIM: {sent:?}");
    assert_eq!(rig.status(id).await.modem.as_ref(), Some(&imei));
    // Back on its feet, the same modem sends it again (a counted
    // duplicate, from the same number).
    let ks = k.to_string();
    rig.sim.ctl(&["hang", "--modem", &ks, "--off"]).await;
    let st = rig.reaches(id, MessageState::Sent).await;
    assert_eq!(st.parts[0].modem.as_ref(), Some(&imei), "{st:?}");
    assert!(st.parts[0].maybe_sent >= 1, "{st:?}");
    let sent = rig.sim.sent("did it leave?").await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|m| m["modem"] == k as u64), "{sent:?}");
}

/// The other side of the same window: when the modem that may have sent
/// it vanishes (unplugged), the message goes back to the queue and another
/// modem sends it (at-least-once, counted maybe-sent), rather than waiting
/// for a modem that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maybe_sent_message_fails_over_when_its_modem_vanishes() {
    let rig = Rig::start(&["--modems", "2"], 1, EngineConfig::default()).await;
    rig.sim.ctl(&["hang-after-send", "--modem", "0"]).await;
    let id = rig.send(OUTSIDE, "gone with the modem?").await;
    let first = rig.left_once("gone with the modem?").await;
    assert_eq!(first["modem"], 0);
    eventually("the part requeued as maybe-sent", || async {
        let st = rig.status(id).await;
        st.parts[0].maybe_sent >= 1 && st.parts[0].state.as_str() == "queued"
    })
    .await;
    rig.add(1).await;
    rig.sim.ctl(&["unplug", "--modem", "0"]).await;
    let st = rig.reaches(id, MessageState::Sent).await;
    assert_eq!(
        st.parts[0].modem.as_ref(),
        Some(&rig.sim.imei(1).await),
        "{st:?}"
    );
    let sent = rig.sim.sent("gone with the modem?").await;
    assert_eq!(sent.len(), 2, "{sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_error_to_a_send_is_retried_then_given_up_with_a_reason() {
    let rig = Rig::start(&["--modems", "1"], 1, EngineConfig::default()).await;
    rig.sim.ctl(&["send-error", "--modem", "0"]).await;
    let id = rig.send(OUTSIDE, "no reason given").await;
    eventually("a failed attempt", || async {
        rig.status(id).await.parts[0].attempts >= 1
    })
    .await;
    eventually("the attempt recorded", || async {
        rig.status(id).await.parts[0].state.as_str() != "sending"
    })
    .await;
    let st = rig.status(id).await;
    assert_eq!(st.parts[0].state.as_str(), "queued", "retried: {st:?}");
    let reason = st.parts[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("plain ERROR"), "{reason}");
    assert_eq!(st.parts[0].maybe_sent, 0, "refused, so not maybe-sent");
    rig.sim.ctl(&["send-error", "--modem", "0", "--off"]).await;
    rig.reaches(id, MessageState::Sent).await;
    rig.left_once("no reason given").await;

    // A modem that keeps refusing: up to the attempt cap, then failed.
    rig.sim.ctl(&["send-error", "--modem", "0"]).await;
    let id = rig.send(OUTSIDE, "refused for good").await;
    let st = rig.reaches(id, MessageState::Failed).await;
    assert_eq!(st.parts[0].attempts, 8, "{st:?}");
    let reason = st.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("gave up after 8 attempts") && reason.contains("plain ERROR"),
        "{reason}"
    );
    assert!(rig.sim.sent("refused for good").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_full_storage_lose_nothing() {
    let rig = Rig::start(&["--modems", "2"], 2, EngineConfig::default()).await;
    rig.sim.ctl(&["garbage", "--modem", "0"]).await;
    rig.sim.inject(0, "through the noise", &[]).await;
    rig.received("through the noise").await;
    rig.sim.ctl(&["garbage", "--modem", "0", "--off"]).await;

    rig.sim.ctl(&["full", "--modem", "1"]).await;
    rig.sim.inject(1, "held by the network", &[]).await;
    rig.sim.ctl(&["full", "--modem", "1", "--off"]).await;
    rig.received("held by the network").await;
    eventually("storage emptied", || async {
        rig.sim.stored(0).await + rig.sim.stored(1).await == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboot_in_the_middle_of_a_sweep_loses_and_duplicates_nothing() {
    let rig = Rig::start(&["--modems", "1"], 0, EngineConfig::default()).await;
    let n = 8;
    for i in 0..n {
        rig.sim.inject(0, &format!("stored {i}"), &[]).await;
    }
    let mut c = modem_config(&rig.sim, 0);
    // One event at a time, so the reboot lands within the start-up sweep.
    c.queue = 1;
    // A part whose commit answer came after the actor gave up waiting (a
    // loaded machine) stays on the modem until the next sweep: make it soon.
    c.sweep_interval = Duration::from_secs(3);
    rig.engine.add_modem(c).unwrap();
    eventually("the sweep started", || async {
        !rig.inbox().await.is_empty()
    })
    .await;
    rig.sim.ctl(&["reboot", "--modem", "0"]).await;
    for i in 0..n {
        rig.received(&format!("stored {i}")).await;
    }
    eventually("storage emptied", || async { rig.sim.stored(0).await == 0 }).await;
    assert_eq!(rig.inbox().await.len(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pin_is_never_retried_and_the_sim_is_reported_locked() {
    let rig = Rig::start(
        &["--modems", "2", "--pin", "1234"],
        0,
        EngineConfig::default(),
    )
    .await;
    let mut c = modem_config(&rig.sim, 0);
    c.pins.insert("*".into(), "0000".into());
    rig.engine.add_modem(c).unwrap();
    let mut c = modem_config(&rig.sim, 1);
    c.pins.insert(rig.sim.iccid(1).await, "1234".into());
    rig.add_with(c).await;
    eventually("modem 0 reported locked", || async {
        let m = rig.engine.modems();
        m.iter()
            .any(|m| m.snapshot.name == "m0" && m.snapshot.state == "sim-locked")
    })
    .await;
    let imei0 = rig.sim.imei(0).await;
    eventually("the store knows the state", || async {
        let modems = rig.engine.store().modems(0).await.unwrap();
        modems
            .iter()
            .any(|m| m.id == imei0 && m.state.as_deref() == Some("sim-locked"))
    })
    .await;
    // Reboots ask for the PIN again; the rejected one is never re-sent.
    rig.sim.ctl(&["reboot", "--modem", "0"]).await;
    let id = rig.send(OUTSIDE, "via the unlocked one").await;
    rig.reaches(id, MessageState::Sent).await;
    eventually("modem 0 locked again after its reboot", || async {
        rig.engine
            .modems()
            .iter()
            .any(|m| m.snapshot.name == "m0" && m.snapshot.state == "sim-locked")
    })
    .await;
    assert_eq!(rig.sim.log().matches("wrong PIN").count(), 1);
    let entry = rig.left_once("via the unlocked one").await;
    assert_eq!(entry["modem"], 1);
}

// ------------------------------------------------------------- routing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_rules_and_sticky_peers_choose_the_modem() {
    let config = EngineConfig {
        routing: RoutingConfig {
            rule: vec![PrefixRule {
                prefix: "+44".into(),
                modems: vec!["m2".into()],
            }],
            ..RoutingConfig::default()
        },
        ..EngineConfig::default()
    };
    let rig = Rig::start(&["--modems", "3"], 3, config).await;
    // Pinned by ICCID.
    let iccid = rig.sim.iccid(1).await;
    let id = rig
        .request(OutboundRequest {
            to: OUTSIDE.into(),
            text: "pinned".into(),
            modem: Some(iccid),
            ..OutboundRequest::default()
        })
        .await;
    rig.reaches(id, MessageState::Sent).await;
    assert_eq!(rig.left_once("pinned").await["modem"], 1);
    // A prefix rule.
    let id = rig.send("+447700900123", "by the rule").await;
    rig.reaches(id, MessageState::Sent).await;
    assert_eq!(rig.left_once("by the rule").await["modem"], 2);
    // Sticky: a conversation keeps its modem.
    let peer = "+4917000000001";
    let first = rig.send(peer, "sticky 0").await;
    rig.reaches(first, MessageState::Sent).await;
    let modem = rig.left_once("sticky 0").await["modem"].clone();
    for i in 1..4 {
        let text = format!("sticky {i}");
        let id = rig.send(peer, &text).await;
        rig.reaches(id, MessageState::Sent).await;
        assert_eq!(rig.left_once(&text).await["modem"], modem, "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_requeues_nothing_that_was_sent_and_stops_the_modems() {
    let rig = Rig::start(&["--modems", "1"], 1, EngineConfig::default()).await;
    let id = rig.send(OUTSIDE, "before the end").await;
    rig.reaches(id, MessageState::Sent).await;
    rig.engine.shutdown(Duration::from_secs(5)).await;
    assert!(rig.engine.ports().is_empty());
    let e = rig.engine.send(OutboundRequest {
        to: OUTSIDE.into(),
        text: "after".into(),
        ..OutboundRequest::default()
    });
    assert_eq!(e.await.unwrap_err().code(), "unavailable");
    let stats = rig.engine.store().stats().await.unwrap();
    assert_eq!(stats.parts_sending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_puk_locked_sim_is_reported_and_its_work_waits() {
    use smsgate::at::commands::EnterPin;
    use smsgate::at::{Link, LinkConfig};
    let rig = Rig::start(
        &["--modems", "1", "--pin", "1234"],
        0,
        EngineConfig::default(),
    )
    .await;
    // A careless human used up the three PIN attempts.
    {
        let port = tokio_serial::SerialPortBuilderExt::open_native_async(tokio_serial::new(
            rig.sim.port(0).to_string_lossy(),
            115_200,
        ))
        .unwrap();
        let link = Link::spawn(port, LinkConfig::new("human"));
        for _ in 0..3 {
            assert!(link.send(&EnterPin::new("0000").unwrap()).await.is_err());
        }
    }
    let mut c = modem_config(&rig.sim, 0);
    c.pins.insert(rig.sim.iccid(0).await, "1234".into());
    rig.engine.add_modem(c).unwrap();
    eventually("reported PUK-locked", || async {
        rig.engine
            .modems()
            .iter()
            .any(|m| m.snapshot.state == "sim-locked" && m.snapshot.detail.contains("PUK"))
    })
    .await;
    let imei = rig.sim.imei(0).await;
    eventually("the store knows the state", || async {
        let modems = rig.engine.store().modems(0).await.unwrap();
        modems
            .iter()
            .any(|m| m.id == imei && m.state.as_deref() == Some("sim-locked"))
    })
    .await;
    // Work for it waits in the queue; nothing is lost or failed.
    let id = rig.send(OUTSIDE, "waiting for a PUK").await;
    let st = rig.status(id).await;
    assert_eq!(st.state, MessageState::Queued);
    assert_eq!(rig.sim.log().matches("wrong PIN").count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_pinned_to_a_removed_modem_waits_without_blocking_the_rest() {
    let config = EngineConfig {
        dispatch_batch: 2,
        ..EngineConfig::default()
    };
    let rig = Rig::start(&["--modems", "2"], 2, config).await;
    let imei0 = rig.sim.imei(0).await;
    eventually("the store knows modem 0", || async {
        rig.engine.resolve_modem(&imei0).is_some()
    })
    .await;
    rig.engine.remove_modem(&rig.sim.port(0)).await;
    assert_eq!(rig.engine.ports(), vec![rig.sim.port(1)]);
    // Pinned to the absent modem (known to the store by its IMEI): they wait.
    let mut pinned = Vec::new();
    for i in 0..6 {
        pinned.push(
            rig.request(OutboundRequest {
                to: OUTSIDE.into(),
                text: format!("for modem 0 only {i}"),
                modem: Some(imei0.clone()),
                ..OutboundRequest::default()
            })
            .await,
        );
    }
    // Behind them in the queue, unpinned work still leaves through modem 1.
    for i in 0..3 {
        let id = rig.send(OUTSIDE, &format!("anyone {i}")).await;
        rig.reaches(id, MessageState::Sent).await;
        assert_eq!(rig.left_once(&format!("anyone {i}")).await["modem"], 1);
    }
    for id in &pinned {
        assert_eq!(rig.status(*id).await.state, MessageState::Queued);
    }
    // Modem 0 back: its pinned work goes out through it.
    rig.add(0).await;
    for (i, id) in pinned.into_iter().enumerate() {
        rig.reaches(id, MessageState::Sent).await;
        assert_eq!(
            rig.left_once(&format!("for modem 0 only {i}")).await["modem"],
            0
        );
    }
}

// ------------------------------------------------ engine2 follow-ups

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_message_in_flight_is_claimed() {
    // Each +CMGS takes 300 ms, so a part claimed ahead of its send would
    // sit in `sending` (maybe-sent after a crash) long enough to be seen.
    let rig = Rig::start(
        &["--modems", "1", "--latency", "300ms"],
        0,
        EngineConfig::default(),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(rig.send(OUTSIDE, &format!("one at a time {i}")).await);
    }
    let store = rig.engine.store().clone();
    let watch = tokio::spawn(async move {
        let mut most = 0;
        loop {
            let s = store.stats().await.unwrap();
            most = most.max(s.parts_sending);
            if s.parts_queued + s.parts_sending == 0 {
                return most;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    rig.add(0).await;
    for id in ids {
        rig.reaches(id, MessageState::Sent).await;
    }
    let most = watch.await.unwrap();
    assert_eq!(
        most, 1,
        "parts in `sending` at once (one message's parts at most)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_left_bound_to_a_vanished_modem_is_unbound_at_start() {
    trace();
    let sim = Sim::start(&["--modems", "1"]);
    let db = tempfile::tempdir().unwrap();
    let store = open_store(&db).await;
    // An earlier run bound a message to a modem that never came back.
    let id = {
        let engine = Engine::start(store.clone(), EngineConfig::default());
        let e = engine
            .send(OutboundRequest {
                to: OUTSIDE.into(),
                text: "left behind".into(),
                ..OutboundRequest::default()
            })
            .await
            .unwrap();
        engine.shutdown(Duration::from_secs(1)).await;
        e.id
    };
    assert!(store.bind(id, "356938035643809").await.unwrap());
    let engine = Engine::start(store, EngineConfig::default());
    let rig = Rig {
        sim,
        engine,
        _db: db,
    };
    rig.add(0).await;
    let st = rig.reaches(id, MessageState::Sent).await;
    assert_eq!(st.modem, Some(rig.sim.imei(0).await));
    rig.left_once("left behind").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_modems_lose_their_unstarted_work_and_partly_sent_rests_fail() {
    trace();
    let db = tempfile::tempdir().unwrap();
    let store = open_store(&db).await;
    const GHOST: &str = "356938035643809";
    let mk = |to: &str, parts: usize| smsgate::store::NewOutbound {
        recipient: to.into(),
        text: Some(format!("{parts} parts")),
        parts: (0..parts).map(|i| vec![0x00, 0x01, i as u8]).collect(),
        ..Default::default()
    };
    let now = smsgate::store::now_ms();
    let partly = store.enqueue(mk("+4930111", 3), now).await.unwrap().id;
    assert!(store.bind(partly, GHOST).await.unwrap());
    let c = store.claim_next_message(GHOST, now).await.unwrap();
    store.mark_sent(c[0].attempt, 1, now).await.unwrap();
    store.release_modem(GHOST, now).await.unwrap();
    let config = EngineConfig {
        maintenance_interval: Duration::from_millis(200),
        unbind_after: Duration::from_millis(300),
        stranded_after: Duration::from_secs(2),
        ..EngineConfig::default()
    };
    let engine = Engine::start(store.clone(), config);
    // Bound while the engine runs (as a modem that then vanished would).
    let later = store.enqueue(mk("+4930112", 1), now).await.unwrap().id;
    // The dispatcher has no modem to bind it to; bind it to the ghost.
    let _ = store.bind(later, GHOST).await.unwrap();
    let t0 = std::time::Instant::now();
    eventually("the partly sent message fails", || async {
        store.outbound_status(partly).await.unwrap().state == MessageState::Failed
    })
    .await;
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "failed before stranded_after"
    );
    let st = store.outbound_status(partly).await.unwrap();
    assert!(
        st.reason
            .clone()
            .unwrap_or_default()
            .contains("did not come back"),
        "{st:?}"
    );
    assert_eq!(st.parts[0].state.as_str(), "sent");
    // The unstarted one was freed for any modem.
    let st = store.outbound_status(later).await.unwrap();
    assert_eq!(
        (st.state.clone(), st.modem.clone()),
        (MessageState::Queued, None),
        "{st:?}"
    );
    engine.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_message_does_not_leave_before_its_time() {
    let rig = Rig::start(&["--modems", "1"], 1, EngineConfig::default()).await;
    let at = smsgate::store::now_ms() + 2_000;
    let id = rig
        .request(OutboundRequest {
            to: OUTSIDE.into(),
            text: "not before two seconds".into(),
            send_at_ms: Some(at),
            ..OutboundRequest::default()
        })
        .await;
    // Watch it until its time: never sent early.
    while smsgate::store::now_ms() < at - 100 {
        let st = rig.status(id).await;
        assert_eq!(st.state, MessageState::Queued, "left early: {st:?}");
        assert!(rig.sim.sent("not before two seconds").await.is_empty());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let st = rig.reaches(id, MessageState::Sent).await;
    let sent_ms = st.parts[0].sent_ms.unwrap();
    assert!(sent_ms >= at, "sent at {sent_ms}, scheduled for {at}");
    rig.left_once("not before two seconds").await;
}

/// A part resent after a temporary failure carries the reference its
/// message was given when first bound: the retry takes no new one from the
/// (SIM, recipient) counter, and the next message gets the next value. The
/// references are 16-bit by default (TS 23.040 §9.2.3.24.8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_part_keeps_its_concatenation_reference() {
    let rig = Rig::start(&["--modems", "1"], 1, EngineConfig::default()).await;
    let long = |tag: &str| format!("{tag} {}", "r".repeat(200));
    rig.sim.ctl(&["cms-error", "500", "--modem", "0"]).await;
    let first = rig.send(OUTSIDE, &long("first")).await;
    eventually("two failed attempts", || async {
        rig.status(first).await.parts[0].attempts >= 2
    })
    .await;
    rig.sim.ctl(&["cms-error", "--modem", "0", "--off"]).await;
    rig.reaches(first, MessageState::Sent).await;
    let second = rig.send(OUTSIDE, &long("second")).await;
    rig.reaches(second, MessageState::Sent).await;
    let a = rig.left_once(&long("first")).await;
    let b = rig.left_once(&long("second")).await;
    assert_eq!(
        (a["parts"].as_u64(), b["parts"].as_u64()),
        (Some(2), Some(2))
    );
    // A fresh store: the counter of this SIM and recipient starts at 0.
    assert_eq!(a["reference"], 0, "{a}");
    assert_eq!(b["reference"], 1, "{b}");

    // 8-bit elements when configured, from the same counter.
    rig.engine.reconfigure(EngineConfig {
        ref16: false,
        ..EngineConfig::default()
    });
    let third = rig.send(OUTSIDE, &long("third")).await;
    rig.reaches(third, MessageState::Sent).await;
    assert_eq!(rig.left_once(&long("third")).await["reference"], 2);
}

// ------------------------------------------------------- one device, two ports

/// A stick with two AT ports (Huawei, u-blox: the udev rules link both)
/// must be driven by one actor: two would sweep and delete the same SMS
/// storage, and one going away would requeue the other's work. Two
/// simulators with the same seed give modems with the same IMEI, standing
/// in for the second port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_port_of_a_served_modem_is_left_alone() {
    let rig = Rig::start(
        &["--modems", "1", "--seed", "42"],
        0,
        EngineConfig::default(),
    )
    .await;
    let twin = Sim::start(&["--modems", "1", "--seed", "42"]);
    assert_eq!(rig.sim.imei(0).await, twin.imei(0).await);
    rig.add(0).await;
    // Stored on the "device" before its second port is opened: a second
    // actor would sweep it.
    twin.inject(0, "for the second port", &[]).await;
    assert_eq!(twin.stored(0).await, 1);
    let mut c = modem_config(&twin, 0);
    c.name = "m0-second-port".into();
    rig.engine.add_modem(c).unwrap();
    eventually("the second port stepped back", || async {
        rig.engine.ports().len() == 2 && rig.engine.modems().len() == 1
    })
    .await;
    // Give it time to misbehave if it were still running.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let views = rig.engine.modems();
    assert_eq!(views.len(), 1, "{views:?}");
    assert_eq!(views[0].snapshot.name, "m0");
    assert_eq!(views[0].snapshot.state, "ready");
    assert_eq!(twin.stored(0).await, 1, "the second port read the storage");
    let id = rig.send(OUTSIDE, "through the one actor").await;
    rig.reaches(id, MessageState::Sent).await;
    assert!(rig.sim.sent("through the one actor").await.len() == 1);
    // Removing the second port does not touch the first one's work.
    rig.engine.remove_modem(&twin.port(0)).await;
    assert_eq!(rig.engine.modems()[0].snapshot.state, "ready");
}
