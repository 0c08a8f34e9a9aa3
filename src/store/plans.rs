//! Every statement the store runs must find its rows through an index: a
//! full scan of a big table would make a store of millions of messages
//! slow. This test runs every operation with SQL tracing on, then asks
//! SQLite for the plan of each statement it saw.

use std::sync::Mutex;

use rusqlite::trace::{TraceEvent, TraceEventCodes};
use rusqlite::Connection;

use super::config::{RetryPolicy, StoreConfig};
use super::types::*;
use super::{consent, delivery, events, inbound, outbound, registry, retention, routing, schema};

static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record(event: TraceEvent<'_>) {
    if let TraceEvent::Stmt(stmt, _) = event {
        if let (Some(sql), Ok(mut seen)) = (stmt.expanded_sql(), SEEN.lock()) {
            seen.push(sql);
        }
    }
}

/// Aliases of subqueries whose rows are bounded by an inner `LIMIT`.
const SUBQUERIES: &[&str] = &["due"];

/// Tables that stay small (one row per modem, SIM, counter, day or forget),
/// and `held`, which keeps only live holds (each row goes at release, `JOIN`
/// or the end of the hold period), like a partial index; `stats` counts it.
const SMALL: &[&str] = &[
    "counters",
    "modems",
    "sims",
    "daily_counters",
    "sim_days",
    "forget_audit",
    "held",
];

fn exercise(conn: &Connection) {
    let t = 1_700_000_000_000;
    let m = "356938035643809";
    let mut req = NewOutbound {
        idempotency_key: Some("k".into()),
        recipient: "+15551230000".into(),
        parts: vec![vec![1, 2, 3], vec![4, 5, 6]],
        ..Default::default()
    };
    req.valid_until_ms = Some(t + 10);
    let q = outbound::enqueue(conn, &req, t).unwrap();
    outbound::enqueue(conn, &req, t).unwrap();
    outbound::enqueue(
        conn,
        &NewOutbound {
            idempotency_key: None,
            ..req.clone()
        },
        t,
    )
    .unwrap();
    // The router's path: find unbound work, bind it, claim what is bound.
    let mut pinned = NewOutbound {
        idempotency_key: None,
        modem: Some(m.into()),
        ..req.clone()
    };
    pinned.valid_until_ms = None;
    let p = outbound::enqueue(conn, &pinned, t).unwrap();
    let pending = routing::unbound_due(conn, t, 10).unwrap();
    assert!(pending.iter().any(|x| x.id == p.id));
    routing::bind(conn, p.id, m).unwrap();
    routing::queued_by_modem(conn).unwrap();
    routing::unbind(conn, p.id).unwrap();
    outbound::claim_bound(conn, m, t, 1).unwrap();
    // The engine's path: one message at a time; absent modems.
    routing::bind(conn, p.id, m).unwrap();
    outbound::claim_next_message(conn, m, t).unwrap();
    // A real two-part SMS-SUBMIT: its reference is rewritten at bind.
    let to = crate::pdu::Address::parse_number("+15551230000").unwrap();
    let real = NewOutbound {
        idempotency_key: Some("real".into()),
        parts: crate::pdu::encode_submit(&to, &"r".repeat(200), &Default::default())
            .unwrap()
            .into_iter()
            .map(|p| p.octets)
            .collect(),
        valid_until_ms: None,
        ..req.clone()
    };
    let r = outbound::enqueue(conn, &real, t).unwrap();
    routing::bind(conn, r.id, m).unwrap();
    outbound::enqueue(conn, &real, t).unwrap();
    outbound::requeue_sending(conn, Some(m), t, "gone").unwrap();
    routing::unbind_modem(conn, m).unwrap();
    routing::fail_stranded(conn, m, t).unwrap();
    let c = outbound::claim_due(conn, m, t, 10).unwrap();
    outbound::mark_sent(conn, c[0].attempt, Some(7), t).unwrap();
    let retry = RetryPolicy::default();
    let fail = SendFailure::Temporary("x".into());
    outbound::mark_failed(conn, &retry, c[1].attempt, &fail, t).unwrap();
    outbound::requeue_sending(conn, Some(m), t, "gone").unwrap();
    outbound::requeue_sending(conn, None, t, "restart").unwrap();
    outbound::cancel(conn, MessageId(q.id.0 + 1), t).unwrap();
    outbound::expire(conn, t + 20, 100).unwrap();
    outbound::status(conn, q.id).unwrap();
    let report = StatusReport {
        modem: m.into(),
        mr: 7,
        recipient: "+15551230000".into(),
        scts_ms: None,
        discharge_ms: None,
        status: 0,
        pdu: vec![9, 9],
        received_ms: t + 5,
    };
    delivery::record(conn, 86_400_000, &report).unwrap();
    delivery::record(conn, 86_400_000, &report).unwrap();
    let part = |seq, pdu: u8| InboundPart {
        modem: m.into(),
        sim: Some("8944".into()),
        sender: "+1555".into(),
        scts_ms: t,
        concat: Some(Concat {
            reference: 1,
            total: 3,
            seq,
        }),
        body: InboundBody::Text("x".into()),
        pdu: vec![pdu],
        storage_index: None,
        received_ms: t,
    };
    inbound::commit(conn, &part(1, 1)).unwrap();
    inbound::commit(conn, &part(1, 1)).unwrap();
    inbound::commit(conn, &part(1, 2)).unwrap();
    inbound::commit(conn, &part(2, 3)).unwrap();
    inbound::commit(conn, &part(3, 4)).unwrap();
    inbound::commit(
        conn,
        &InboundPart {
            concat: None,
            ..part(1, 5)
        },
    )
    .unwrap();
    inbound::expire(conn, 0, t + 1, 100).unwrap();
    let id = InboundId(1);
    inbound::get(conn, id).unwrap();
    inbound::list(conn, InboundId(0), 10, true).unwrap();
    inbound::list(conn, InboundId(0), 10, false).unwrap();
    outbound::find_by_key(conn, "k").unwrap();
    inbound::set_bus_state(conn, id, BusState::Delivered, t).unwrap();
    inbound::set_bus_state(conn, id, BusState::Acked, t).unwrap();
    registry::modem_seen(
        conn,
        &ModemInfo {
            id: m.into(),
            iccid: Some("8944".into()),
            ..Default::default()
        },
        t,
    )
    .unwrap();
    registry::set_modem_state(conn, m, "ready", t).unwrap();
    registry::modems(conn, t, 10).unwrap();
    registry::sims(conn, 10).unwrap();
    registry::stats(conn).unwrap();
    routing::route_history(conn, 0, t).unwrap();
    routing::queued_by_modem(conn).unwrap();
    events::since(conn, 0, 10).unwrap();
    events::last(conn).unwrap();
    // Privacy: consent, holds, handles, retention, forget.
    let n = "+1555";
    consent::record_handle(conn, "sms:h", n, t).unwrap();
    consent::record_handle(conn, "sms:h", n, t).unwrap();
    consent::handle_number(conn, "sms:h").unwrap();
    consent::explained(conn, n, "sms:h", t).unwrap();
    consent::hold(conn, InboundId(2), n, t, t + 10).unwrap();
    consent::is_held(conn, InboundId(2)).unwrap();
    consent::held_for(conn, n).unwrap();
    consent::get(conn, n).unwrap();
    consent::list(conn, "", 10).unwrap();
    consent::get_by_handle(conn, "sms:h").unwrap();
    let change = |state| consent::ConsentChange {
        number: n.into(),
        handle: "sms:h".into(),
        state,
        keyword: "join".into(),
        modem: None,
    };
    consent::change(conn, &change(consent::ConsentState::Joined), t).unwrap();
    consent::hold(conn, InboundId(2), n, t, t + 10).unwrap();
    consent::change(conn, &change(consent::ConsentState::Stopped), t).unwrap();
    consent::delete_inbound(conn, InboundId(1)).unwrap();
    let plan = retention::RetentionPlan {
        now_ms: t + 100,
        text_before_ms: t + 100,
        meta_before_ms: t + 100,
        pending_before_ms: t + 100,
        batch: 10,
    };
    retention::purge(conn, &plan).unwrap();
    retention::forget(conn, "+15551230000", "sms:h", t).unwrap();
    retention::forget_audit(conn, 10).unwrap();
}

#[test]
fn every_statement_uses_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = schema::open(&StoreConfig::at(dir.path().join("p.db"))).unwrap();
    db.conn
        .trace_v2(TraceEventCodes::SQLITE_TRACE_STMT, Some(record));
    exercise(&db.conn);
    db.conn.trace_v2(TraceEventCodes::empty(), None);
    let seen = std::mem::take(&mut *SEEN.lock().unwrap());
    let mut checked = 0;
    let mut bad = Vec::new();
    for sql in seen {
        let head = sql.trim_start().to_ascii_uppercase();
        if !["SELECT", "UPDATE", "INSERT", "DELETE"]
            .iter()
            .any(|k| head.starts_with(k))
        {
            continue;
        }
        let mut st = db
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let plan: Vec<String> = st
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        checked += 1;
        for step in plan {
            // "SCAN t" without an index reads the whole table;
            // "SCAN t USING ... INDEX" over one of our partial indexes reads
            // only the rows that index holds.
            // Scans of bounded subquery results (`LIMIT`ed inside) are fine.
            // A SELECT without FROM (its subqueries are checked on their
            // own lines) reads no table at all.
            if step == "SCAN CONSTANT ROW"
                || step.starts_with("SCAN (subquery")
                || SUBQUERIES.iter().any(|q| step == format!("SCAN {q}"))
            {
                continue;
            }
            let Some(table) = step.strip_prefix("SCAN ") else {
                continue;
            };
            let name = table.split_whitespace().next().unwrap_or("");
            if SMALL.contains(&name) || table.contains("USING") && is_partial(table) {
                continue;
            }
            bad.push(format!("{step}\n    in: {sql}"));
        }
    }
    assert!(checked > 40, "only {checked} statements traced");
    assert!(bad.is_empty(), "full scans:\n{}", bad.join("\n"));
}

/// Partial indexes (see schema_v1.sql) cover only live rows.
fn is_partial(scan: &str) -> bool {
    [
        "out_parts_due",
        "out_parts_sending",
        "in_groups_expiry",
        "in_messages_unacked",
        "out_messages_expiry",
        "out_parts_sent",
    ]
    .iter()
    .any(|i| scan.contains(i))
}
