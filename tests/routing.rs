//! The router's store queries on real files, and the router driven by
//! them: unbound work, binding and failover, history after a restart,
//! load per modem, and a v1 database migrating under them.

use std::path::Path;

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
