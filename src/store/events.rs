//! The append-only event log the bus replays from.
//!
//! Every event gets a cursor from an `AUTOINCREMENT` key, so cursors only
//! grow, even after old events are pruned; a bus client that saw cursor `n`
//! asks for `events_since(n)` after a reconnect or a daemon restart.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::error::{Result, StoreError};
use super::types::{InboundId, MessageId, MessageState};

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// An inbound message is complete (or given up on as partial) and
    /// ready for the bus.
    InboundComplete {
        /// The message.
        message: InboundId,
        /// Some parts are missing.
        partial: bool,
    },
    /// An outbound message changed state.
    MessageState {
        /// The message.
        message: MessageId,
        /// Its new state.
        state: MessageState,
        /// Why, for failures and expiry.
        reason: Option<String>,
    },
    /// A modem changed state.
    ModemState {
        /// Modem id.
        modem: String,
        /// The modem actor's state name.
        state: String,
    },
    /// An event written by another version of smsgate.
    #[serde(other)]
    Unknown,
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Monotonic cursor.
    pub cursor: u64,
    /// When (unix ms).
    pub at_ms: i64,
    /// What.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Appends an event inside the caller's transaction.
pub(crate) fn append(conn: &Connection, at_ms: i64, kind: &EventKind) -> Result<u64> {
    let payload = serde_json::to_string(kind)
        .map_err(|e| StoreError::Internal(format!("cannot encode event: {e}")))?;
    conn.prepare_cached("INSERT INTO events (at_ms, payload) VALUES (?1, ?2)")
        .and_then(|mut st| st.execute(params![at_ms, payload]))
        .map_err(StoreError::sql("append event"))?;
    Ok(conn.last_insert_rowid().max(0) as u64)
}

/// Events after `cursor`, oldest first, at most `limit`.
pub(crate) fn since(conn: &Connection, cursor: u64, limit: u32) -> Result<Vec<Event>> {
    let op = "read events";
    let mut st = conn
        .prepare_cached(
            "SELECT seq, at_ms, payload FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .map_err(StoreError::sql(op))?;
    let cursor = i64::try_from(cursor).unwrap_or(i64::MAX);
    let rows = st
        .query_map(params![cursor, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(StoreError::sql(op))?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, at_ms, payload) = row.map_err(StoreError::sql(op))?;
        // A payload we cannot read is carried as Unknown, never dropped:
        // dropping it would make the cursor skip silently.
        let kind = serde_json::from_str(&payload).unwrap_or(EventKind::Unknown);
        out.push(Event {
            cursor: seq.max(0) as u64,
            at_ms,
            kind,
        });
    }
    Ok(out)
}

/// The highest cursor written so far (0 for an empty log).
pub(crate) fn last(conn: &Connection) -> Result<u64> {
    conn.prepare_cached("SELECT max(seq) FROM events")
        .and_then(|mut st| st.query_row([], |r| r.get::<_, Option<i64>>(0)).optional())
        .map(|v| v.flatten().unwrap_or(0).max(0) as u64)
        .map_err(StoreError::sql("read last event"))
}
