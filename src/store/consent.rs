//! Consent records, the handle map and held inbound messages (schema in
//! `schema_privacy.sql`). The rules that decide what to write live in
//! `crate::privacy::consent`; this module only stores their outcome.

use std::fmt;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::error::{Result, StoreError};
use super::events::{self, EventKind};
use super::types::InboundId;

/// Where a number stands.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    /// Told how to join, no answer yet (kept only for the explanation
    /// rate limit and the hold period).
    Pending,
    /// Joined: relayed.
    Joined,
    /// Stopped: not relayed, not sent to.
    Stopped,
    /// A value written by another version of smsgate.
    Unknown(String),
}

impl ConsentState {
    /// The stored text.
    pub fn as_str(&self) -> &str {
        match self {
            ConsentState::Pending => "pending",
            ConsentState::Joined => "joined",
            ConsentState::Stopped => "stopped",
            ConsentState::Unknown(raw) => raw,
        }
    }

    /// Parses the stored text.
    pub fn parse(text: &str) -> ConsentState {
        match text {
            "pending" => ConsentState::Pending,
            "joined" => ConsentState::Joined,
            "stopped" => ConsentState::Stopped,
            other => ConsentState::Unknown(other.to_owned()),
        }
    }
}

impl fmt::Display for ConsentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One number's consent, as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentRecord {
    /// E.164 number.
    pub number: String,
    /// Its handle.
    pub handle: String,
    /// Where it stands.
    pub state: ConsentState,
    /// Since when (unix ms).
    pub since_ms: i64,
    /// The keyword kind that changed it (`join`, `stop`), if any.
    pub keyword: Option<String>,
    /// The modem the keyword came through.
    pub modem: Option<String>,
    /// When the join explanation was last sent (unix ms).
    pub explained_ms: Option<i64>,
}

/// A consent change to store (JOIN or STOP received).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentChange {
    /// E.164 number.
    pub number: String,
    /// Its handle.
    pub handle: String,
    /// The new state ([`ConsentState::Joined`] or [`ConsentState::Stopped`]).
    pub state: ConsentState,
    /// The keyword kind (`join`, `stop`).
    pub keyword: String,
    /// The modem it came through.
    pub modem: Option<String>,
}

/// What storing a consent change did to the number's held messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConsentOutcome {
    /// The state before (none: never seen).
    pub previous: Option<ConsentState>,
    /// Held messages released to the bus (joined), oldest first; each got
    /// a fresh `inbound_complete` event.
    pub released: Vec<InboundId>,
    /// Held messages deleted (stopped).
    pub deleted: u64,
}

const COLUMNS: &str = "number, handle, state, since_ms, keyword, modem, explained_ms";

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConsentRecord> {
    Ok(ConsentRecord {
        number: r.get(0)?,
        handle: r.get(1)?,
        state: ConsentState::parse(&r.get::<_, String>(2)?),
        since_ms: r.get(3)?,
        keyword: r.get(4)?,
        modem: r.get(5)?,
        explained_ms: r.get(6)?,
    })
}

/// The consent record of a number.
pub(crate) fn get(conn: &Connection, number: &str) -> Result<Option<ConsentRecord>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM consent WHERE number = ?1"))
        .and_then(|mut st| st.query_row([number], row_to_record).optional())
        .map_err(StoreError::sql("read consent"))
}

/// The consent record of a handle (index `consent_handle`).
pub(crate) fn get_by_handle(conn: &Connection, handle: &str) -> Result<Option<ConsentRecord>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM consent WHERE handle = ?1"))
        .and_then(|mut st| st.query_row([handle], row_to_record).optional())
        .map_err(StoreError::sql("read consent"))
}

/// Consent records ordered by handle, after handle `after`, at most
/// `limit`. Paged by handle, not by number, so that the paging cursor a
/// client sees never carries a number (index `consent_handle`).
pub(crate) fn list(conn: &Connection, after: &str, limit: u32) -> Result<Vec<ConsentRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM consent WHERE handle > ?1 ORDER BY handle LIMIT ?2"
    ))
    .and_then(|mut st| {
        st.query_map(params![after, limit], row_to_record)?
            .collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(StoreError::sql("list consent"))
}

/// Stores a JOIN or STOP and applies it to the held messages: joining
/// releases them (new `inbound_complete` events, so the bus relays them
/// through its usual path), stopping deletes them.
pub(crate) fn change(conn: &Connection, c: &ConsentChange, now_ms: i64) -> Result<ConsentOutcome> {
    if !matches!(c.state, ConsentState::Joined | ConsentState::Stopped) {
        return Err(StoreError::Invalid(format!(
            "a consent change must be joined or stopped, not {}",
            c.state
        )));
    }
    let previous = get(conn, &c.number)?.map(|r| r.state);
    // Repeating the current state keeps its original `since`.
    conn.prepare_cached(
        "INSERT INTO consent (number, handle, state, since_ms, keyword, modem)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (number) DO UPDATE SET
             handle = excluded.handle,
             since_ms = CASE WHEN state = excluded.state THEN since_ms ELSE excluded.since_ms END,
             state = excluded.state, keyword = excluded.keyword, modem = excluded.modem",
    )
    .and_then(|mut st| {
        st.execute(params![
            c.number,
            c.handle,
            c.state.as_str(),
            now_ms,
            c.keyword,
            c.modem
        ])
    })
    .map_err(StoreError::sql("store consent"))?;
    let held = held_for(conn, &c.number)?;
    let mut outcome = ConsentOutcome {
        previous,
        ..ConsentOutcome::default()
    };
    if held.is_empty() {
        return Ok(outcome);
    }
    conn.prepare_cached("DELETE FROM held WHERE number = ?1")
        .and_then(|mut st| st.execute([&c.number]))
        .map_err(StoreError::sql("release held"))?;
    if c.state == ConsentState::Joined {
        for id in &held {
            let partial: bool = conn
                .prepare_cached("SELECT partial FROM in_messages WHERE id = ?1")
                .and_then(|mut st| st.query_row([id.0], |r| r.get(0)))
                .map_err(StoreError::sql("release held"))?;
            let seq = events::append(
                conn,
                now_ms,
                &EventKind::InboundComplete {
                    message: *id,
                    partial,
                },
            )?;
            conn.prepare_cached("UPDATE in_messages SET released_seq = ?2 WHERE id = ?1")
                .and_then(|mut st| st.execute(params![id.0, seq as i64]))
                .map_err(StoreError::sql("release held"))?;
        }
        outcome.released = held;
    } else {
        for id in &held {
            delete_inbound(conn, *id)?;
        }
        outcome.deleted = held.len() as u64;
    }
    Ok(outcome)
}

/// Records that the join explanation was sent to `number` (creating a
/// `pending` record if it has none).
pub(crate) fn explained(conn: &Connection, number: &str, handle: &str, now_ms: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO consent (number, handle, state, since_ms, explained_ms)
         VALUES (?1, ?2, 'pending', ?3, ?3)
         ON CONFLICT (number) DO UPDATE SET explained_ms = excluded.explained_ms",
    )
    .and_then(|mut st| st.execute(params![number, handle, now_ms]))
    .map(|_| ())
    .map_err(StoreError::sql("record explanation"))
}

/// Holds an inbound message until `until_ms`.
pub(crate) fn hold(
    conn: &Connection,
    message: InboundId,
    number: &str,
    now_ms: i64,
    until_ms: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO held (message, number, held_ms, until_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (message) DO NOTHING",
    )
    .and_then(|mut st| st.execute(params![message.0, number, now_ms, until_ms]))
    .map(|_| ())
    .map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::NotFound {
            what: "inbound message",
            id: message.0,
        },
        _ => StoreError::sql("hold message")(e),
    })
}

/// Whether a message is held (the bus must not relay it).
pub(crate) fn is_held(conn: &Connection, message: InboundId) -> Result<bool> {
    conn.prepare_cached("SELECT 1 FROM held WHERE message = ?1")
        .and_then(|mut st| st.exists([message.0]))
        .map_err(StoreError::sql("read held"))
}

/// Whether the bus may show an inbound message at log entry `cursor`
/// (`None`: a replay of unacknowledged messages, not tied to an entry):
/// it exists, is not held, and, if it was released from a hold, `cursor`
/// is its release entry. The entry of its arrival was decided as held
/// by the gate; showing it there would put it ahead of messages the
/// gate released before it.
pub(crate) fn showable(conn: &Connection, message: InboundId, cursor: Option<u64>) -> Result<bool> {
    let cursor = cursor.map(|c| i64::try_from(c).unwrap_or(i64::MAX));
    conn.prepare_cached(
        "SELECT NOT EXISTS (SELECT 1 FROM held WHERE message = ?1)
                AND (released_seq IS NULL OR ?2 IS NULL OR released_seq = ?2)
         FROM in_messages WHERE id = ?1",
    )
    .and_then(|mut st| {
        st.query_row(params![message.0, cursor], |r| r.get(0))
            .optional()
    })
    .map(|v| v.unwrap_or(false))
    .map_err(StoreError::sql("read held"))
}

/// The messages held for a number, oldest first.
pub(crate) fn held_for(conn: &Connection, number: &str) -> Result<Vec<InboundId>> {
    conn.prepare_cached("SELECT message FROM held WHERE number = ?1 ORDER BY message")
        .and_then(|mut st| {
            st.query_map([number], |r| Ok(InboundId(r.get(0)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sql("read held"))
}

/// Deletes an inbound message with its parts (a keyword, a dropped or an
/// expired held message): not kept, so nothing to purge later.
pub(crate) fn delete_inbound(conn: &Connection, message: InboundId) -> Result<bool> {
    let op = "delete inbound message";
    super::retention::secure(conn)?;
    let groups: Vec<i64> = conn
        .prepare_cached(
            "SELECT DISTINCT group_id FROM in_parts WHERE message_id = ?1 AND group_id IS NOT NULL",
        )
        .and_then(|mut st| {
            st.query_map([message.0], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sql(op))?;
    conn.prepare_cached("DELETE FROM in_parts WHERE message_id = ?1")
        .and_then(|mut st| st.execute([message.0]))
        .map_err(StoreError::sql(op))?;
    for g in groups {
        conn.prepare_cached(
            "DELETE FROM in_groups WHERE id = ?1
             AND NOT EXISTS (SELECT 1 FROM in_parts WHERE group_id = ?1)",
        )
        .and_then(|mut st| st.execute([g]))
        .map_err(StoreError::sql(op))?;
    }
    conn.prepare_cached("DELETE FROM in_messages WHERE id = ?1")
        .and_then(|mut st| st.execute([message.0]))
        .map(|n| n > 0)
        .map_err(StoreError::sql(op))
}

/// Records (or refreshes) a handle -> number mapping. A handle already
/// bound to another number is refused: that would be an 80-bit collision
/// or a changed secret, and either must not silently redirect messages.
pub(crate) fn record_handle(
    conn: &Connection,
    handle: &str,
    number: &str,
    now_ms: i64,
) -> Result<()> {
    let op = "record handle";
    let existing: Option<String> = conn
        .prepare_cached("SELECT number FROM handles WHERE handle = ?1")
        .and_then(|mut st| st.query_row([handle], |r| r.get(0)).optional())
        .map_err(StoreError::sql(op))?;
    match existing {
        Some(n) if n != number => Err(StoreError::Invalid(format!(
            "handle {handle} is already bound to another number (was the handle secret replaced?)"
        ))),
        Some(_) => conn
            .prepare_cached(
                "UPDATE handles SET last_seen_ms = max(last_seen_ms, ?2) WHERE handle = ?1",
            )
            .and_then(|mut st| st.execute(params![handle, now_ms]))
            .map(|_| ())
            .map_err(StoreError::sql(op)),
        None => conn
            .prepare_cached(
                "INSERT INTO handles (handle, number, first_seen_ms, last_seen_ms)
                 VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (number) DO UPDATE SET handle = excluded.handle,
                     last_seen_ms = excluded.last_seen_ms",
            )
            .and_then(|mut st| st.execute(params![handle, number, now_ms]))
            .map(|_| ())
            .map_err(StoreError::sql(op)),
    }
}

/// The number behind a handle.
pub(crate) fn handle_number(conn: &Connection, handle: &str) -> Result<Option<String>> {
    conn.prepare_cached("SELECT number FROM handles WHERE handle = ?1")
        .and_then(|mut st| st.query_row([handle], |r| r.get(0)).optional())
        .map_err(StoreError::sql("resolve handle"))
}
