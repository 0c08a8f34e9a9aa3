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
use super::outbound::{refresh, sync_binding, unbind_if_unsent, unbind_unstarted};
use super::refs;
use super::registry::{self, Daily};
use super::types::{MessageId, PeerRecord, PendingMessage, RecentSend, RouteHistory, SimDay};
use super::worker;

/// Parts looked at per message asked for by [`unbound_due`]: messages have
/// up to [`MAX_PARTS`](super::MAX_PARTS) parts but rarely more than a few,
/// and a short answer only delays the rest to the next call.
const PARTS_PER_MESSAGE: u32 = 16;

/// Most peers [`route_history`] returns (the newest first).
pub const MAX_HISTORY: u32 = 100_000;

/// Most sends of the last minute [`route_history`] returns (the router
/// keeps no more per SIM: [`MAX_MINUTE_WINDOW`](crate::router::MAX_MINUTE_WINDOW)).
pub const MAX_RECENT: u32 = 16_384;

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
        refs::assign_reference(conn, message, modem)?;
        tracing::debug!(modem, message_id = %message, "message bound");
    }
    Ok(changed > 0)
}

/// Binds each message to its modem as [`bind`] does, each alone (one that
/// fails leaves the others bound): a dispatch round's bindings in one
/// request, so one commit instead of one per message.
pub(crate) fn bind_many(
    conn: &Connection,
    bindings: &[(MessageId, String)],
) -> Result<Vec<Result<bool>>> {
    worker::each(conn, bindings, |c, (message, modem)| {
        bind(c, *message, modem)
    })
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

/// What the router restores at start (see [`RouteHistory`]): the per-SIM
/// day counts since `since_ms`'s day, the last send per (SIM, recipient)
/// since `since_ms` (newest first, at most [`MAX_HISTORY`]), and the sends
/// of the minute before `now_ms`. Three index range scans over summary
/// tables kept with every sent part (schema v5), so the cost does not grow
/// with the number of messages stored.
pub(crate) fn route_history(conn: &Connection, since_ms: i64, now_ms: i64) -> Result<RouteHistory> {
    let op = "read routing history";
    let days = conn
        .prepare_cached(
            "SELECT sim, day, sent, last_sent_ms FROM sim_days WHERE day >= ?1
             ORDER BY day DESC LIMIT ?2",
        )
        .and_then(|mut st| {
            st.query_map(params![since_ms.div_euclid(DAY_MS), MAX_HISTORY], |r| {
                Ok(SimDay {
                    sim: r.get(0)?,
                    day: r.get(1)?,
                    sent: r.get(2)?,
                    last_sent_ms: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sql(op))?;
    let peers = conn
        .prepare_cached(
            "SELECT sim, modem, recipient, last_sent_ms FROM peers
             WHERE last_sent_ms IS NOT NULL AND last_sent_ms >= ?1 AND modem IS NOT NULL
             ORDER BY last_sent_ms DESC LIMIT ?2",
        )
        .and_then(|mut st| {
            st.query_map(params![since_ms, MAX_HISTORY], |r| {
                Ok(PeerRecord {
                    sim: r.get(0)?,
                    modem: r.get(1)?,
                    recipient: r.get(2)?,
                    last_sent_ms: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sql(op))?;
    let recent = conn
        .prepare_cached(
            "SELECT COALESCE(NULLIF(d.iccid, ''), p.modem), p.sent_ms
             FROM out_parts p LEFT JOIN modems d ON d.id = p.modem
             WHERE p.sent_ms IS NOT NULL AND p.sent_ms > ?1 AND p.sent_ms <= ?2
               AND p.modem IS NOT NULL
             ORDER BY p.sent_ms DESC LIMIT ?3",
        )
        .and_then(|mut st| {
            st.query_map(
                params![now_ms.saturating_sub(60_000), now_ms, MAX_RECENT],
                |r| {
                    Ok(RecentSend {
                        sim: r.get(0)?,
                        sent_ms: r.get(1)?,
                    })
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sql(op))?;
    Ok(RouteHistory {
        days,
        peers,
        recent,
    })
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

/// Messages with queued parts bound to `modem` (one range of the
/// `out_parts_due` index).
fn bound_messages(conn: &Connection, modem: &str) -> Result<Vec<MessageId>> {
    conn.prepare_cached(
        "SELECT DISTINCT message_id FROM out_parts
         WHERE state = 'queued' AND bound_modem = ?1",
    )
    .and_then(|mut st| {
        st.query_map([modem], |r| Ok(MessageId(r.get(0)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(StoreError::sql("find messages bound to a modem"))
}

/// Unbinds every unpinned message bound to `modem` (which vanished) that
/// has no part in flight or confirmed sent, also one whose part may have
/// left unconfirmed through it: at-least-once, counted maybe-sent, rather
/// than held for a modem that is gone. Returns how many were freed.
pub(crate) fn unbind_vanished(conn: &Connection, modem: &str) -> Result<u64> {
    check_id("modem", modem)?;
    let mut freed = 0;
    for m in bound_messages(conn, modem)? {
        if unbind_unstarted(conn, m, false)? {
            freed += 1;
        }
    }
    if freed > 0 {
        tracing::info!(
            modem,
            messages = freed,
            "a vanished modem's maybe-sent work unbound"
        );
    }
    Ok(freed)
}

/// Unbinds every message bound to `modem` that it has not started (no
/// part in flight or sent) and that is not pinned, so another modem takes
/// it: for bindings left by an earlier run, or a modem gone for a while.
/// Returns how many messages were freed.
pub(crate) fn unbind_modem(conn: &Connection, modem: &str) -> Result<u64> {
    check_id("modem", modem)?;
    let mut freed = 0;
    for m in bound_messages(conn, modem)? {
        if unbind_if_unsent(conn, m)? {
            freed += 1;
        }
    }
    if freed > 0 {
        tracing::info!(modem, messages = freed, "unstarted work unbound");
    }
    Ok(freed)
}

/// Fails the remaining parts of unpinned messages that are partly sent
/// through `modem`, or of which a part may have left through it (an
/// unconfirmed attempt): they cannot go through another SIM, because the
/// recipient's phone joins the parts of a concatenated message by the
/// sender's number (TS 23.040 §9.2.3.24.1), which differs per SIM. The
/// engine calls this once the modem has been absent longer than it is
/// willing to wait. Returns how many parts failed.
pub(crate) fn fail_stranded(conn: &Connection, modem: &str, now_ms: i64) -> Result<u64> {
    check_id("modem", modem)?;
    let op = "fail stranded parts";
    let reason = format!(
        "partly sent (or maybe sent) through modem {modem}, which did not come back: the \
         remaining parts cannot go through another SIM (the phone joins parts by sender \
         number, and a resend would be a duplicate from another number)"
    );
    let mut failed = 0u64;
    for m in bound_messages(conn, modem)? {
        let stranded = conn
            .prepare_cached(
                "SELECT 1 FROM out_messages m WHERE m.id = ?1 AND m.pin_modem IS NULL
                 AND (EXISTS (SELECT 1 FROM out_parts p WHERE p.message_id = m.id
                              AND p.state IN ('sent', 'delivered'))
                      OR EXISTS (SELECT 1 FROM out_parts p
                                 JOIN out_attempts a ON a.part_id = p.id
                                 WHERE p.message_id = m.id AND a.outcome = 'unconfirmed'))",
            )
            .and_then(|mut st| st.exists([m.0]))
            .map_err(StoreError::sql(op))?;
        if !stranded {
            continue;
        }
        let n = conn
            .prepare_cached(
                "UPDATE out_parts SET state = 'failed', reason = ?2, current_attempt = NULL
                 WHERE message_id = ?1 AND state = 'queued'",
            )
            .and_then(|mut st| st.execute(params![m.0, reason]))
            .map_err(StoreError::sql(op))?;
        for _ in 0..n {
            registry::bump_daily(conn, modem, now_ms, Daily::Failed)?;
        }
        tracing::warn!(modem, message_id = %m, parts = n, "partly sent message failed: its modem did not come back");
        failed += n as u64;
        refresh(conn, m, now_ms)?;
    }
    Ok(failed)
}
