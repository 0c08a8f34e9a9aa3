//! What the router needs from the queue: due messages no modem is bound to
//! yet, binding and unbinding them, and what each modem sent and holds.
//!
//! A message is bound as a whole: every part leaves through the same modem,
//! because the recipient's phone joins the parts of a concatenated message
//! by originating address (TS 23.040 §9.2.3.24.1). Parts carry the binding
//! in `bound_modem`, which the `out_parts_due` index leads with, so finding
//! unbound work and a modem's bound work are both index range scans.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};

use super::error::{Result, StoreError};
use super::limits::{self, check_id};
use super::outbound::{sync_binding, unbind_if_unsent};
use super::types::{MessageId, PendingMessage, RouteRecord};

/// Parts looked at per message asked for by [`unbound_due`]: messages have
/// up to [`MAX_PARTS`](super::MAX_PARTS) parts but rarely more than a few,
/// and a short answer only delays the rest to the next call.
const PARTS_PER_MESSAGE: u32 = 16;

/// Most records [`route_history`] returns (the newest first).
pub const MAX_HISTORY: u32 = 100_000;

const DAY_MS: i64 = 86_400_000;

/// Due messages with queued parts and no modem bound, oldest due first, at
/// most `limit` (capped at [`MAX_LIMIT`](super::MAX_LIMIT)).
pub(crate) fn unbound_due(
    conn: &Connection,
    now_ms: i64,
    limit: u32,
) -> Result<Vec<PendingMessage>> {
    let op = "find unbound due messages";
    let limit = limits::limit(limit);
    conn.prepare_cached(
        "SELECT m.id, m.recipient, m.pin_modem,
                (SELECT COUNT(*) FROM out_parts q WHERE q.message_id = m.id AND q.state = 'queued')
         FROM (
             SELECT message_id, MIN(next_attempt_ms) AS due_ms, MIN(id) AS first_id FROM (
                 SELECT message_id, next_attempt_ms, id FROM out_parts
                 WHERE state = 'queued' AND bound_modem IS NULL AND next_attempt_ms <= ?1
                 ORDER BY next_attempt_ms, id LIMIT ?3)
             GROUP BY message_id
         ) due
         JOIN out_messages m ON m.id = due.message_id
         WHERE m.modem IS NULL AND (m.valid_until_ms IS NULL OR m.valid_until_ms > ?1)
         ORDER BY due.due_ms, due.first_id
         LIMIT ?2",
    )
    .and_then(|mut st| {
        st.query_map(
            params![now_ms, limit, limit.saturating_mul(PARTS_PER_MESSAGE)],
            |r| {
                Ok(PendingMessage {
                    id: MessageId(r.get(0)?),
                    recipient: r.get(1)?,
                    pinned: r.get(2)?,
                    parts: r.get(3)?,
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(StoreError::sql(op))
}

/// Binds an unbound, unfinished message to `modem`; `false` if it is
/// bound already, finished or unknown. The caller (the router) has checked
/// a pin: it may name the modem by name or ICCID, so it is not compared
/// here.
pub(crate) fn bind(conn: &Connection, message: MessageId, modem: &str) -> Result<bool> {
    check_id("modem", modem)?;
    let changed = conn
        .prepare_cached(
            "UPDATE out_messages SET modem = ?2
             WHERE id = ?1 AND modem IS NULL AND state IN ('queued', 'sending')",
        )
        .and_then(|mut st| st.execute(params![message.0, modem]))
        .map_err(StoreError::sql("bind message"))?;
    if changed > 0 {
        sync_binding(conn, message)?;
        tracing::debug!(modem, message_id = %message, "message bound");
    }
    Ok(changed > 0)
}

/// Drops a message's binding so another modem may take it (failover),
/// while none of its parts is in flight or sent. A pinned message stays
/// bound to its pin. `true` if the binding changed.
pub(crate) fn unbind(conn: &Connection, message: MessageId) -> Result<bool> {
    let changed = unbind_if_unsent(conn, message)?;
    if changed {
        tracing::debug!(message_id = %message, "message unbound");
    }
    Ok(changed)
}

/// Parts sent since `since_ms`, one record per modem, recipient and UTC
/// day, newest first, at most [`MAX_HISTORY`]. The ICCID is the one the
/// modem has now (a swapped SIM counts its predecessor's sends).
pub(crate) fn route_history(conn: &Connection, since_ms: i64) -> Result<Vec<RouteRecord>> {
    conn.prepare_cached(
        "SELECT p.modem, d.iccid, m.recipient, COUNT(*), MAX(p.sent_ms)
         FROM out_parts p
         JOIN out_messages m ON m.id = p.message_id
         LEFT JOIN modems d ON d.id = p.modem
         WHERE p.sent_ms IS NOT NULL AND p.sent_ms >= ?1 AND p.modem IS NOT NULL
         GROUP BY p.modem, m.recipient, p.sent_ms / ?2
         ORDER BY MAX(p.sent_ms) DESC
         LIMIT ?3",
    )
    .and_then(|mut st| {
        st.query_map(params![since_ms, DAY_MS, MAX_HISTORY], |r| {
            Ok(RouteRecord {
                modem: r.get(0)?,
                iccid: r.get(1)?,
                recipient: r.get(2)?,
                count: r.get(3)?,
                last_sent_ms: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(StoreError::sql("read routing history"))
}

/// Parts bound to each modem and still queued, plus parts in flight on it:
/// the load the router balances.
pub(crate) fn queued_by_modem(conn: &Connection) -> Result<Vec<(String, u64)>> {
    let op = "count queued parts per modem";
    let mut load: BTreeMap<String, u64> = BTreeMap::new();
    for sql in [
        "SELECT bound_modem, COUNT(*) FROM out_parts
         WHERE state = 'queued' AND bound_modem IS NOT NULL GROUP BY bound_modem",
        "SELECT modem, COUNT(*) FROM out_parts
         WHERE state = 'sending' AND modem IS NOT NULL GROUP BY modem",
    ] {
        let rows = conn
            .prepare_cached(sql)
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql(op))?;
        for (modem, n) in rows {
            *load.entry(modem).or_default() += n;
        }
    }
    Ok(load.into_iter().collect())
}
