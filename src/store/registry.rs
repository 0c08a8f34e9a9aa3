//! Modems, SIMs and counters.

use rusqlite::{params, Connection, OptionalExtension};

use super::error::{Result, StoreError};
use super::events::{self, EventKind};
use super::limits::check_id;
use super::types::{ModemInfo, ModemRecord, SimRecord, StoreStats};

/// A per-modem daily counter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Daily {
    Sent,
    Received,
    Failed,
}

/// Store-wide counters kept in the `counters` table.
pub(crate) const MAYBE_SENT: &str = "maybe_sent_total";
pub(crate) const UNMATCHED_REPORTS: &str = "unmatched_reports_total";
pub(crate) const INBOUND_DUPLICATES: &str = "inbound_duplicates_total";

const DAY_MS: i64 = 86_400_000;

/// Adds `by` to a store-wide counter.
pub(crate) fn bump(conn: &Connection, name: &str, by: u64) -> Result<()> {
    if by == 0 {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO counters (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
    )
    .and_then(|mut st| st.execute(params![name, by as i64]))
    .map(|_| ())
    .map_err(StoreError::sql("update counter"))
}

/// Tables whose ids clients hold on to (bus `message` ids, event
/// payloads): an id is never given twice, also not after the row was
/// deleted (a dropped or forgotten message, a retention purge). SQLite
/// would otherwise reuse the highest id after its row is deleted, and an
/// old event, `status` or `ack` would then name someone else's message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ids {
    /// `in_messages`.
    Inbound,
    /// `out_messages`.
    Outbound,
}

/// The id for a new row of `which`: one above both the highest id ever
/// given (kept in `counters`) and the highest present (rows written before
/// the counter existed). Inside the caller's transaction.
pub(crate) fn next_id(conn: &Connection, which: Ids) -> Result<i64> {
    let (name, sql) = match which {
        Ids::Inbound => (
            "in_messages_last_id",
            "SELECT max(coalesce((SELECT value FROM counters WHERE name = 'in_messages_last_id'), 0),
                        coalesce((SELECT max(id) FROM in_messages), 0)) + 1",
        ),
        Ids::Outbound => (
            "out_messages_last_id",
            "SELECT max(coalesce((SELECT value FROM counters WHERE name = 'out_messages_last_id'), 0),
                        coalesce((SELECT max(id) FROM out_messages), 0)) + 1",
        ),
    };
    let op = "allocate an id";
    let id: i64 = conn
        .prepare_cached(sql)
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .map_err(StoreError::sql(op))?;
    conn.prepare_cached(
        "INSERT INTO counters (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .and_then(|mut st| st.execute(params![name, id]))
    .map_err(StoreError::sql(op))?;
    Ok(id)
}

fn counter(conn: &Connection, name: &str) -> Result<u64> {
    conn.prepare_cached("SELECT value FROM counters WHERE name = ?1")
        .and_then(|mut st| st.query_row([name], |r| r.get::<_, i64>(0)).optional())
        .map(|v| v.unwrap_or(0).max(0) as u64)
        .map_err(StoreError::sql("read counter"))
}

/// Adds one to a modem's counter for the UTC day of `now_ms`.
pub(crate) fn bump_daily(conn: &Connection, modem: &str, now_ms: i64, which: Daily) -> Result<()> {
    let sql = match which {
        Daily::Sent => {
            "INSERT INTO daily_counters (modem, day, sent) VALUES (?1, ?2, 1)
             ON CONFLICT (modem, day) DO UPDATE SET sent = sent + 1"
        }
        Daily::Received => {
            "INSERT INTO daily_counters (modem, day, received) VALUES (?1, ?2, 1)
             ON CONFLICT (modem, day) DO UPDATE SET received = received + 1"
        }
        Daily::Failed => {
            "INSERT INTO daily_counters (modem, day, failed) VALUES (?1, ?2, 1)
             ON CONFLICT (modem, day) DO UPDATE SET failed = failed + 1"
        }
    };
    let op = "update daily counter";
    conn.prepare_cached(sql)
        .and_then(|mut st| st.execute(params![modem, now_ms.div_euclid(DAY_MS)]))
        .map_err(StoreError::sql(op))?;
    // A modem that works is a modem seen, even before it was identified.
    conn.prepare_cached(
        "INSERT INTO modems (id, first_seen_ms, last_seen_ms) VALUES (?1, ?2, ?2)
         ON CONFLICT (id) DO NOTHING",
    )
    .and_then(|mut st| st.execute(params![modem, now_ms]))
    .map(|_| ())
    .map_err(StoreError::sql(op))
}

/// Records that a modem (and its SIM) was seen.
pub(crate) fn modem_seen(conn: &Connection, info: &ModemInfo, now_ms: i64) -> Result<()> {
    check_id("modem id", &info.id)?;
    for (what, v) in [
        ("manufacturer", &info.manufacturer),
        ("model", &info.model),
        ("revision", &info.revision),
        ("ICCID", &info.iccid),
        ("IMSI", &info.imsi),
        ("own number", &info.own_number),
    ] {
        if let Some(v) = v {
            super::limits::check_len(what, v, 200)?;
        }
    }
    let op = "record modem";
    conn.prepare_cached(
        "INSERT INTO modems (id, manufacturer, model, revision, iccid, first_seen_ms, last_seen_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
         ON CONFLICT (id) DO UPDATE SET
           manufacturer = coalesce(excluded.manufacturer, manufacturer),
           model = coalesce(excluded.model, model),
           revision = coalesce(excluded.revision, revision),
           iccid = coalesce(excluded.iccid, iccid),
           last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)",
    )
    .and_then(|mut st| {
        st.execute(params![
            info.id,
            info.manufacturer,
            info.model,
            info.revision,
            info.iccid,
            now_ms
        ])
    })
    .map_err(StoreError::sql(op))?;
    if let Some(iccid) = &info.iccid {
        conn.prepare_cached(
            "INSERT INTO sims (iccid, imsi, own_number, modem, first_seen_ms, last_seen_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT (iccid) DO UPDATE SET
               imsi = coalesce(excluded.imsi, imsi),
               own_number = coalesce(excluded.own_number, own_number),
               modem = excluded.modem,
               last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)",
        )
        .and_then(|mut st| st.execute(params![iccid, info.imsi, info.own_number, info.id, now_ms]))
        .map_err(StoreError::sql(op))?;
    }
    Ok(())
}

/// Records a modem's new state and logs the event for the bus.
pub(crate) fn set_modem_state(
    conn: &Connection,
    modem: &str,
    state: &str,
    now_ms: i64,
) -> Result<u64> {
    check_id("modem id", modem)?;
    check_id("modem state", state)?;
    conn.prepare_cached(
        "INSERT INTO modems (id, state, first_seen_ms, last_seen_ms) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state,
           last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)",
    )
    .and_then(|mut st| st.execute(params![modem, state, now_ms]))
    .map_err(StoreError::sql("record modem state"))?;
    events::append(
        conn,
        now_ms,
        &EventKind::ModemState {
            modem: modem.to_owned(),
            state: state.to_owned(),
        },
    )
}

/// Every modem seen, with today's counters (at most `limit`).
pub(crate) fn modems(conn: &Connection, now_ms: i64, limit: u32) -> Result<Vec<ModemRecord>> {
    let op = "list modems";
    let mut st = conn
        .prepare_cached(
            "SELECT modems.id, manufacturer, model, revision, iccid, state,
                    first_seen_ms, last_seen_ms,
                    coalesce(d.sent, 0), coalesce(d.received, 0), coalesce(d.failed, 0)
             FROM modems LEFT JOIN daily_counters d ON d.modem = modems.id AND d.day = ?1
             ORDER BY modems.id LIMIT ?2",
        )
        .map_err(StoreError::sql(op))?;
    let rows = st
        .query_map(params![now_ms.div_euclid(DAY_MS), limit], |r| {
            Ok(ModemRecord {
                id: r.get(0)?,
                manufacturer: r.get(1)?,
                model: r.get(2)?,
                revision: r.get(3)?,
                iccid: r.get(4)?,
                state: r.get(5)?,
                first_seen_ms: r.get(6)?,
                last_seen_ms: r.get(7)?,
                sent_today: r.get::<_, i64>(8)?.max(0) as u64,
                received_today: r.get::<_, i64>(9)?.max(0) as u64,
                failed_today: r.get::<_, i64>(10)?.max(0) as u64,
            })
        })
        .map_err(StoreError::sql(op))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(StoreError::sql(op))
}

/// Every SIM seen (at most `limit`).
pub(crate) fn sims(conn: &Connection, limit: u32) -> Result<Vec<SimRecord>> {
    let op = "list SIMs";
    let mut st = conn
        .prepare_cached(
            "SELECT iccid, imsi, own_number, modem, first_seen_ms, last_seen_ms
             FROM sims ORDER BY iccid LIMIT ?1",
        )
        .map_err(StoreError::sql(op))?;
    let rows = st
        .query_map([limit], |r| {
            Ok(SimRecord {
                iccid: r.get(0)?,
                imsi: r.get(1)?,
                own_number: r.get(2)?,
                modem: r.get(3)?,
                first_seen_ms: r.get(4)?,
                last_seen_ms: r.get(5)?,
            })
        })
        .map_err(StoreError::sql(op))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(StoreError::sql(op))
}

/// Store-wide figures.
pub(crate) fn stats(conn: &Connection) -> Result<StoreStats> {
    let op = "read stats";
    let count = |sql: &str| -> Result<u64> {
        conn.prepare_cached(sql)
            .and_then(|mut st| st.query_row([], |r| r.get::<_, i64>(0)))
            .map(|v| v.max(0) as u64)
            .map_err(StoreError::sql(op))
    };
    Ok(StoreStats {
        parts_queued: count("SELECT count(*) FROM out_parts WHERE state = 'queued'")?,
        parts_sending: count("SELECT count(*) FROM out_parts WHERE state = 'sending'")?,
        maybe_sent_total: counter(conn, MAYBE_SENT)?,
        unmatched_reports_total: counter(conn, UNMATCHED_REPORTS)?,
        inbound_duplicates_total: counter(conn, INBOUND_DUPLICATES)?,
        inbound_groups_open: count("SELECT count(*) FROM in_groups WHERE open = 1")?,
        inbound_unacked: count(
            "SELECT count(*) FROM in_messages
             WHERE bus_state < 2 AND id NOT IN (SELECT message FROM held)",
        )?,
        inbound_held: count("SELECT count(*) FROM held")?,
        last_event: events::last(conn)?,
    })
}
