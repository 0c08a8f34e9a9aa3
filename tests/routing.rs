//! The router's store queries on real files, and the router driven by
//! them: unbound work, binding and failover, history after a restart,
//! load per modem, and a v1 database migrating under them. Then the real
//! `smsgate run` with `smsgate sim` modems: per-SIM limits, jitter and
//! stickiness hold for a backlog queued at once.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::{wait_for, Gate, Sim, OUTSIDE};
use serde_json::{json, Value};

use smsgate::router::{Candidate, Choice, LimitsConfig, RouteRequest, Router, RoutingConfig};
use smsgate::store::*;

const T0: i64 = 1_700_000_000_000;
const DAY: i64 = 86_400_000;
const MODEM: &str = "356938035643809";
const OTHER: &str = "862877030000001";
const ICCID: &str = "8944100000000000001";

async fn open(dir: &Path) -> Store {
    Store::open_async(StoreConfig::at(dir.join("smsgate.db")))
        .await
        .unwrap()
}

fn msg(to: &str, parts: usize, pin: Option<&str>) -> NewOutbound {
    NewOutbound {
        recipient: to.into(),
        parts: (0..parts).map(|i| vec![0x01, 0x00, i as u8]).collect(),
        modem: pin.map(Into::into),
        ..Default::default()
    }
}

fn ids(pending: &[PendingMessage]) -> Vec<MessageId> {
    pending.iter().map(|p| p.id).collect()
}

/// Claims and marks sent every part bound to `modem`.
async fn send_bound(store: &Store, modem: &str, at: i64) -> usize {
    let parts = store.claim_bound(modem, at, 100).await.unwrap();
    for p in &parts {
        store.mark_sent(p.attempt, 1, at).await.unwrap();
    }
    parts.len()
}

#[tokio::test]
async fn unbound_due_lists_what_the_router_must_place() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let a = store.enqueue(msg("+15550001", 3, None), T0).await.unwrap();
    let pinned = store
        .enqueue(msg("+15550002", 1, Some(MODEM)), T0 + 1)
        .await
        .unwrap();
    let mut later = msg("+15550003", 1, None);
    later.send_at_ms = Some(T0 + 60_000);
    let later = store.enqueue(later, T0).await.unwrap();
    let mut stale = msg("+15550004", 1, None);
    stale.valid_until_ms = Some(T0 + 10);
    store.enqueue(stale, T0).await.unwrap();

    let due = store.unbound_due(T0 + 20, 10).await.unwrap();
    assert_eq!(
        due,
        vec![
            PendingMessage {
                id: a.id,
                recipient: "+15550001".into(),
                parts: 3,
                pinned: None
            },
            PendingMessage {
                id: pinned.id,
                recipient: "+15550002".into(),
                parts: 1,
                pinned: Some(MODEM.into())
            },
        ]
    );
    assert_eq!(ids(&store.unbound_due(T0 + 20, 1).await.unwrap()), [a.id]);
    assert!(ids(&store.unbound_due(T0 + 60_000, 10).await.unwrap()).contains(&later.id));

    // Bound work leaves the list and is claimable only by its modem.
    assert!(store.bind(a.id, OTHER).await.unwrap());
    assert!(!store.bind(a.id, MODEM).await.unwrap(), "bound already");
    assert_eq!(
        ids(&store.unbound_due(T0 + 20, 10).await.unwrap()),
        [pinned.id]
    );
    assert!(store
        .claim_bound(MODEM, T0 + 20, 10)
        .await
        .unwrap()
        .is_empty());
    let c = store.claim_bound(OTHER, T0 + 20, 10).await.unwrap();
    assert_eq!(c.len(), 3);
    assert!(c.iter().all(|p| p.message == a.id));
    assert_eq!(
        store.outbound_status(a.id).await.unwrap().modem.as_deref(),
        Some(OTHER)
    );
    // A pinned message is not taken by another modem without a router.
    assert!(store
        .claim_due(OTHER, T0 + 20, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.claim_due(MODEM, T0 + 20, 10).await.unwrap().len(), 1);
    assert!(!store.bind(MessageId(9999), MODEM).await.unwrap());
    assert!(store.bind(pinned.id, "").await.is_err());
    store.close().await;
}

#[tokio::test]
async fn unbind_frees_unsent_messages_for_failover_but_not_pinned_or_started_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let a = store.enqueue(msg("+15550001", 2, None), T0).await.unwrap();
    let p = store
        .enqueue(msg("+15550002", 1, Some(MODEM)), T0)
        .await
        .unwrap();
    assert!(store.bind(a.id, MODEM).await.unwrap());
    assert!(store.bind(p.id, MODEM).await.unwrap());
    assert_eq!(
        store.queued_by_modem().await.unwrap(),
        [(MODEM.to_string(), 3)]
    );

    // Nothing left yet: failover may move it.
    assert!(store.unbind(a.id).await.unwrap());
    assert!(!store.unbind(a.id).await.unwrap());
    assert!(!store.unbind(p.id).await.unwrap(), "pinned stays bound");
    assert_eq!(ids(&store.unbound_due(T0, 10).await.unwrap()), [a.id]);
    assert_eq!(
        store.queued_by_modem().await.unwrap(),
        [(MODEM.to_string(), 1)]
    );

    // Once a part is in flight the message stays on its modem.
    assert!(store.bind(a.id, OTHER).await.unwrap());
    let c = store.claim_bound(OTHER, T0, 1).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(
        store.queued_by_modem().await.unwrap(),
        [(MODEM.to_string(), 1), (OTHER.to_string(), 2)]
    );
    assert!(!store.unbind(a.id).await.unwrap());
    store.mark_sent(c[0].attempt, 3, T0).await.unwrap();
    assert!(!store.unbind(a.id).await.unwrap());
    assert!(store.unbound_due(T0, 10).await.unwrap().is_empty());
    store.close().await;
}

#[tokio::test]
async fn history_survives_a_restart_and_rebuilds_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    store
        .modem_seen(
            ModemInfo {
                id: MODEM.into(),
                iccid: Some(ICCID.into()),
                ..Default::default()
            },
            T0,
        )
        .await
        .unwrap();
    for (to, parts, at, modem) in [
        ("+15550001", 2, T0, MODEM),
        ("+15550001", 1, T0 + 1000, MODEM),
        ("+15550001", 1, T0 + DAY, MODEM),
        ("+15550002", 1, T0 + DAY + 5, OTHER),
    ] {
        let q = store.enqueue(msg(to, parts, None), at).await.unwrap();
        assert!(store.bind(q.id, modem).await.unwrap());
        assert_eq!(send_bound(&store, modem, at).await, parts);
    }
    // A queued part is not history.
    store.enqueue(msg("+15550003", 1, None), T0).await.unwrap();
    store.close().await;

    let store = open(dir.path()).await;
    let now = T0 + DAY + 10;
    let mut history = store.route_history(T0, now).await.unwrap();
    history
        .peers
        .sort_by_key(|r| (r.last_sent_ms, r.modem.clone()));
    history.days.sort_by_key(|d| (d.day, d.last_sent_ms));
    let day = |sim: &str, at: i64, sent| SimDay {
        sim: sim.into(),
        day: at / DAY,
        sent,
        last_sent_ms: at,
    };
    let peer = |modem: &str, sim: &str, to: &str, at| PeerRecord {
        sim: sim.into(),
        modem: modem.into(),
        recipient: to.into(),
        last_sent_ms: at,
    };
    // Per SIM (the ICCID, or the modem id without one) and day; per (SIM,
    // recipient) the last send; the minute before `now`.
    assert_eq!(
        history.days,
        [
            day(ICCID, T0 + 1000, 3),
            day(ICCID, T0 + DAY, 1),
            day(OTHER, T0 + DAY + 5, 1),
        ]
    );
    assert_eq!(
        history.peers,
        [
            peer(MODEM, ICCID, "+15550001", T0 + DAY),
            peer(OTHER, OTHER, "+15550002", T0 + DAY + 5),
        ]
    );
    let recent: Vec<(String, i64)> = history
        .recent
        .iter()
        .map(|r| (r.sim.clone(), r.sent_ms))
        .collect();
    assert_eq!(
        recent,
        [
            (OTHER.to_string(), T0 + DAY + 5),
            (ICCID.to_string(), T0 + DAY)
        ]
    );
    let later = store.route_history(T0 + DAY, now).await.unwrap();
    assert_eq!((later.days.len(), later.peers.len()), (2, 2));
    let none = store.route_history(T0 + 2 * DAY, now).await.unwrap();
    assert!(none.days.is_empty() && none.peers.is_empty());

    // The recipients stick to the modems that sent to them.
    let mut router = Router::with_seed(RoutingConfig::default(), LimitsConfig::default(), 1);
    router.restore(&history);
    let cands = [
        Candidate {
            id: MODEM.into(),
            name: "left".into(),
            iccid: Some(ICCID.into()),
            ready: true,
            load: 10,
        },
        Candidate {
            id: OTHER.into(),
            name: "right".into(),
            iccid: None,
            ready: true,
            load: 0,
        },
    ];
    let req = |to| RouteRequest {
        message: 1,
        recipient: to,
        pinned: None,
        parts: 1,
        exclude: &[],
    };
    assert_eq!(
        router.choose(&req("+1 555 0001"), &cands, T0 + DAY + 10),
        Choice::Modem(MODEM.into())
    );
    assert_eq!(
        router.choose(&req("+15550009"), &cands, T0 + DAY + 10),
        Choice::Modem(OTHER.into())
    );
    store.close().await;
}

#[tokio::test]
async fn a_version_1_database_migrates_and_its_pinned_messages_stay_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("smsgate.db");
    {
        // What smsgate with schema 1 left: pinned messages bound at enqueue.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../src/store/schema_v1.sql"))
            .unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO out_messages (id, recipient, pin_modem, modem, state, parts_total,
                 created_ms, updated_ms, send_at_ms)
             VALUES (1, '+15550001', '{MODEM}', '{MODEM}', 'queued', 1, {T0}, {T0}, {T0});
             INSERT INTO out_parts (message_id, seq, payload, recipient_digits, state,
                 next_attempt_ms, bound_modem)
             VALUES (1, 1, x'0100', '15550001', 'queued', {T0}, '{MODEM}');
             PRAGMA user_version = 1;"
        ))
        .unwrap();
    }
    let store = open(dir.path()).await;
    assert_eq!(store.open_report().schema_from, 1);
    assert_eq!(store.open_report().schema_to, SCHEMA_VERSION);
    assert!(store.unbound_due(T0, 10).await.unwrap().is_empty());
    assert_eq!(
        store.queued_by_modem().await.unwrap(),
        [(MODEM.to_string(), 1)]
    );
    assert_eq!(send_bound(&store, MODEM, T0).await, 1);
    assert_eq!(store.route_history(0, T0).await.unwrap().peers.len(), 1);
    store.close().await;
}

// ------------------------------------------------- the real daemon

/// Queues `n` messages to `to` that all come due at once (two seconds
/// from now, `send_at` in unix seconds), so the dispatcher sees the whole
/// backlog in one round.
fn queue_backlog(gate: &Gate, to: &str, n: usize, tag: &str) -> Vec<i64> {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    let mut c = gate.client();
    (0..n)
        .map(|i| {
            let r = c.request(
                json!({"op": "send", "to": to, "text": format!("{tag} {i}"), "send_at": at}),
            );
            assert_eq!(r["ok"], true, "{r}");
            r["message"].as_i64().unwrap()
        })
        .collect()
}

/// The simulator's outbox entries whose text starts with `tag`.
fn outbox_of(sim: &Sim, tag: &str) -> Vec<Value> {
    sim.outbox()
        .into_iter()
        .filter(|m| m["text"].as_str().is_some_and(|t| t.starts_with(tag)))
        .collect()
}

#[test]
fn a_per_minute_limit_holds_for_a_backlog_queued_at_once() {
    let sim = Sim::start(1, &[]);
    let mut gate = Gate::new();
    gate.write_watching(
        &sim,
        &format!("[limits.sim.\"{}\"]\nper_minute = 3\n", sim.imei(0)),
    );
    gate.start(&[]);
    gate.wait_modems_ready(1);
    let ids = queue_backlog(&gate, OUTSIDE, 10, "backlog");
    wait_for("three messages in the outbox", || {
        (outbox_of(&sim, "backlog").len() >= 3).then_some(())
    });
    // The other seven wait for the minute window: queued, with the limit
    // as the reason, for several seconds (a full minute is too long here).
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(5) {
        let out = outbox_of(&sim, "backlog");
        assert_eq!(out.len(), 3, "more than per_minute left: {out:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let mut c = gate.client();
    let states: Vec<String> = ids.iter().map(|&id| c.state(id)).collect();
    assert_eq!(
        states.iter().filter(|s| *s == "sent").count(),
        3,
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| *s == "queued").count(),
        7,
        "{states:?}"
    );
    let log = gate.log();
    assert!(
        log.contains("per_minute limit 3 reached on SIM"),
        "no wait reason in the log:\n{log}"
    );
}

#[test]
fn jitter_spaces_the_sends_of_a_backlog() {
    let sim = Sim::start(1, &[]);
    let mut gate = Gate::new();
    gate.write_watching(&sim, "[limits]\njitter_ms = [1500, 1500]\n");
    gate.start(&[]);
    gate.wait_modems_ready(1);
    queue_backlog(&gate, OUTSIDE, 3, "spaced");
    let out = wait_for("three messages in the outbox", || {
        let out = outbox_of(&sim, "spaced");
        (out.len() == 3).then_some(out)
    });
    let mut times: Vec<time::OffsetDateTime> = out
        .iter()
        .map(|m| {
            time::OffsetDateTime::parse(
                m["time"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        })
        .collect();
    times.sort();
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= time::Duration::milliseconds(1400),
            "sends {gap} apart: {out:?}"
        );
    }
}

#[test]
fn two_messages_to_a_new_number_queued_together_leave_from_one_modem() {
    let sim = Sim::start(2, &[]);
    let mut gate = Gate::new();
    gate.write_watching(&sim, "");
    gate.start(&[]);
    gate.wait_modems_ready(2);
    queue_backlog(&gate, OUTSIDE, 2, "sticky");
    let out = wait_for("both messages in the outbox", || {
        let out = outbox_of(&sim, "sticky");
        (out.len() == 2).then_some(out)
    });
    assert_eq!(out[0]["from"], out[1]["from"], "{out:?}");
    let numbers = [sim.number(0), sim.number(1)];
    assert!(
        numbers.iter().any(|n| out[0]["from"] == n.as_str()),
        "{out:?}"
    );
}
