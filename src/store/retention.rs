//! Retention purge, erasure (`forget`) and compaction.
//!
//! Deleting a row in SQLite normally leaves its bytes in the file (in the
//! free space of a page, on the freelist, and in old WAL frames) until they
//! happen to be overwritten. Privacy needs them gone, so every job here
//! turns on `PRAGMA secure_delete` (SQLite then zeroes deleted content and
//! freed pages), and [`compact`] checkpoints the WAL into the database and
//! truncates it (and VACUUMs when much was freed). Only after `compact` are
//! the bytes gone from the files on disk.

use rusqlite::{params, Connection};
use serde::Serialize;

use super::consent::delete_inbound;
use super::error::{Result, StoreError};
use super::types::InboundId;

/// Cut-off times for one purge (all unix ms). Built by
/// `crate::privacy::retention` from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPlan {
    /// The time of the purge; held messages whose hold ended by then go.
    pub now_ms: i64,
    /// Message text (and the PDUs carrying it) older than this goes.
    pub text_before_ms: i64,
    /// Message rows, status reports and unused handles older than this go.
    pub meta_before_ms: i64,
    /// `pending` consent records (told how to join, never answered)
    /// explained before this go, once nothing of theirs is held.
    pub pending_before_ms: i64,
    /// At most this many messages per kind per call (the store thread
    /// serves nobody else meanwhile); call again while
    /// [`PurgeReport::more`] is true.
    pub batch: u32,
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// Held messages deleted at the end of their hold period.
    pub held_deleted: u64,
    /// Inbound messages whose text (and parts) were purged.
    pub inbound_text_purged: u64,
    /// Outbound messages whose text and PDUs were purged.
    pub outbound_text_purged: u64,
    /// Inbound message rows deleted.
    pub inbound_deleted: u64,
    /// Outbound message rows deleted.
    pub outbound_deleted: u64,
    /// Status reports deleted.
    pub reports_deleted: u64,
    /// Handle mappings deleted.
    pub handles_deleted: u64,
    /// Pending consent records deleted.
    pub pending_deleted: u64,
    /// A batch limit was reached: call again.
    pub more: bool,
}

impl PurgeReport {
    /// Rows touched in all.
    pub fn total(&self) -> u64 {
        self.held_deleted
            + self.inbound_text_purged
            + self.outbound_text_purged
            + self.inbound_deleted
            + self.outbound_deleted
            + self.reports_deleted
            + self.handles_deleted
            + self.pending_deleted
    }
}

/// What a forget erased.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ForgetReport {
    /// Inbound messages deleted.
    pub inbound: u64,
    /// Inbound parts not yet in a message (reassembly) deleted.
    pub inbound_parts: u64,
    /// Outbound messages deleted (with their parts and attempts).
    pub outbound: u64,
    /// Status reports deleted.
    pub reports: u64,
    /// Consent records deleted.
    pub consent: u64,
    /// Handle mappings deleted.
    pub handles: u64,
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CompactReport {
    /// Free pages before.
    pub free_pages: u64,
    /// Pages in the file before.
    pub pages: u64,
    /// Whether a VACUUM ran (much was free).
    pub vacuumed: bool,
}

const FINAL_OUT: &str = "('delivered', 'failed', 'expired', 'cancelled', 'sent')";

/// Turns on zeroing of deleted content for this connection (it stays on;
/// every privacy path calls it so none depends on another having run).
pub(crate) fn secure(conn: &Connection) -> Result<()> {
    conn.execute_batch("PRAGMA secure_delete = ON")
        .map_err(StoreError::sql("secure_delete"))
}

fn ids(
    conn: &Connection,
    op: &'static str,
    sql: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<i64>> {
    conn.prepare_cached(sql)
        .and_then(|mut st| {
            st.query_map(p, |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()
        })
        .map_err(StoreError::sql(op))
}

fn exec(conn: &Connection, op: &'static str, sql: &str, p: impl rusqlite::Params) -> Result<u64> {
    conn.prepare_cached(sql)
        .and_then(|mut st| st.execute(p))
        .map(|n| n as u64)
        .map_err(StoreError::sql(op))
}

/// Runs one purge batch (see [`RetentionPlan`]).
pub(crate) fn purge(conn: &Connection, plan: &RetentionPlan) -> Result<PurgeReport> {
    let op = "retention purge";
    secure(conn)?;
    let limit = i64::from(plan.batch.max(1));
    let mut report = PurgeReport::default();
    let mut more = false;
    let mut full = |n: usize| more |= n as i64 >= limit;

    // Held messages whose sender never joined.
    let held = ids(
        conn,
        op,
        "SELECT message FROM held WHERE until_ms <= ?1 ORDER BY until_ms LIMIT ?2",
        params![plan.now_ms, limit],
    )?;
    full(held.len());
    for id in &held {
        delete_inbound(conn, InboundId(*id))?;
    }
    report.held_deleted = held.len() as u64;

    // Inbound rows past the metadata limit go whole.
    let old_in = ids(
        conn,
        op,
        "SELECT id FROM in_messages WHERE completed_ms < ?1 ORDER BY completed_ms LIMIT ?2",
        params![plan.meta_before_ms, limit],
    )?;
    full(old_in.len());
    for id in &old_in {
        delete_inbound(conn, InboundId(*id))?;
    }
    report.inbound_deleted = old_in.len() as u64;

    // Inbound text: the message's text/data and its parts (whose PDUs
    // carry the text too) go; the row keeps sender, times and modem.
    let texts = ids(
        conn,
        op,
        "SELECT id FROM in_messages WHERE completed_ms < ?1
           AND (text IS NOT NULL OR data IS NOT NULL
                OR EXISTS (SELECT 1 FROM in_parts WHERE message_id = in_messages.id))
         ORDER BY completed_ms LIMIT ?2",
        params![plan.text_before_ms, limit],
    )?;
    full(texts.len());
    for id in &texts {
        let groups = ids(
            conn,
            op,
            "SELECT DISTINCT group_id FROM in_parts WHERE message_id = ?1 AND group_id IS NOT NULL",
            [id],
        )?;
        exec(conn, op, "DELETE FROM in_parts WHERE message_id = ?1", [id])?;
        for g in groups {
            exec(
                conn,
                op,
                "DELETE FROM in_groups WHERE id = ?1
                 AND NOT EXISTS (SELECT 1 FROM in_parts WHERE group_id = ?1)",
                [g],
            )?;
        }
        exec(
            conn,
            op,
            "UPDATE in_messages SET text = NULL, data = NULL WHERE id = ?1",
            [id],
        )?;
    }
    report.inbound_text_purged = texts.len() as u64;

    // Outbound rows past the metadata limit (cascades to parts, attempts;
    // matched status reports go with them).
    let old_out = ids(
        conn,
        op,
        &format!(
            "SELECT id FROM out_messages WHERE updated_ms < ?1 AND state IN {FINAL_OUT}
             ORDER BY updated_ms LIMIT ?2"
        ),
        params![plan.meta_before_ms, limit],
    )?;
    full(old_out.len());
    for id in &old_out {
        delete_outbound(conn, *id)?;
    }
    report.outbound_deleted = old_out.len() as u64;

    // Outbound text: the text and the encoded PDUs.
    let out_texts = ids(
        conn,
        op,
        &format!(
            "SELECT id FROM out_messages WHERE updated_ms < ?1 AND state IN {FINAL_OUT}
               AND (text IS NOT NULL OR EXISTS (SELECT 1 FROM out_parts
                    WHERE message_id = out_messages.id AND length(payload) > 0))
             ORDER BY updated_ms LIMIT ?2"
        ),
        params![plan.text_before_ms, limit],
    )?;
    full(out_texts.len());
    for id in &out_texts {
        exec(
            conn,
            op,
            "UPDATE out_messages SET text = NULL WHERE id = ?1",
            [id],
        )?;
        exec(
            conn,
            op,
            "UPDATE out_parts SET payload = x'' WHERE message_id = ?1",
            [id],
        )?;
    }
    report.outbound_text_purged = out_texts.len() as u64;

    report.reports_deleted = exec(
        conn,
        op,
        "DELETE FROM status_reports WHERE id IN
           (SELECT id FROM status_reports WHERE received_ms < ?1 LIMIT ?2)",
        params![plan.meta_before_ms, limit],
    )?;
    full(report.reports_deleted as usize);

    // The routing summary's rows of numbers not sent to since (schema v5;
    // their reference counters go with them).
    let peers = exec(
        conn,
        op,
        "DELETE FROM peers WHERE (sim, recipient) IN
           (SELECT sim, recipient FROM peers WHERE last_sent_ms < ?1 LIMIT ?2)",
        params![plan.meta_before_ms, limit],
    )?;
    full(peers as usize);

    // A handle mapping lives as long as the number's metadata, or as long
    // as its JOIN/STOP must be honoured.
    report.handles_deleted = exec(
        conn,
        op,
        "DELETE FROM handles WHERE handle IN
           (SELECT handle FROM handles WHERE last_seen_ms < ?1
              AND NOT EXISTS (SELECT 1 FROM consent WHERE consent.number = handles.number
                              AND consent.state IN ('joined', 'stopped'))
            LIMIT ?2)",
        params![plan.meta_before_ms, limit],
    )?;
    full(report.handles_deleted as usize);

    report.pending_deleted = exec(
        conn,
        op,
        "DELETE FROM consent WHERE number IN
           (SELECT number FROM consent WHERE state = 'pending' AND explained_ms < ?1
              AND NOT EXISTS (SELECT 1 FROM held WHERE held.number = consent.number)
            LIMIT ?2)",
        params![plan.pending_before_ms, limit],
    )?;
    full(report.pending_deleted as usize);
    report.more = more;
    Ok(report)
}

fn delete_outbound(conn: &Connection, id: i64) -> Result<()> {
    let op = "delete outbound message";
    exec(
        conn,
        op,
        "DELETE FROM status_reports WHERE part_id IN
           (SELECT id FROM out_parts WHERE message_id = ?1)",
        [id],
    )?;
    exec(conn, op, "DELETE FROM out_messages WHERE id = ?1", [id])?;
    Ok(())
}

/// The spellings a number may have been stored under: E.164, its digits
/// alone (PDU address fields, `recipient_digits`), and its handle (a
/// client that sent to the handle).
fn forms<'a>(number: &'a str, handle: &'a str) -> [&'a str; 3] {
    [number, number.strip_prefix('+').unwrap_or(number), handle]
}

/// Erases everything about one person and writes one audit row (handle
/// and time only).
pub(crate) fn forget(
    conn: &Connection,
    number: &str,
    handle: &str,
    now_ms: i64,
) -> Result<ForgetReport> {
    let op = "forget";
    secure(conn)?;
    let f = forms(number, handle);
    let mut report = ForgetReport::default();

    let inbound = ids(
        conn,
        op,
        "SELECT id FROM in_messages WHERE sender IN (?1, ?2, ?3)",
        params![f[0], f[1], f[2]],
    )?;
    for id in &inbound {
        delete_inbound(conn, InboundId(*id))?;
    }
    report.inbound = inbound.len() as u64;
    // Parts still waiting for their siblings, and their groups.
    // (Every part belongs to a message or to a group.)
    let groups = ids(
        conn,
        op,
        "SELECT id FROM in_groups WHERE sender IN (?1, ?2, ?3)",
        params![f[0], f[1], f[2]],
    )?;
    for g in &groups {
        report.inbound_parts += exec(conn, op, "DELETE FROM in_parts WHERE group_id = ?1", [g])?;
        exec(conn, op, "DELETE FROM in_groups WHERE id = ?1", [g])?;
    }

    let outbound = ids(
        conn,
        op,
        "SELECT id FROM out_messages WHERE recipient IN (?1, ?2, ?3)",
        params![f[0], f[1], f[2]],
    )?;
    for id in &outbound {
        delete_outbound(conn, *id)?;
    }
    report.outbound = outbound.len() as u64;
    report.reports = exec(
        conn,
        op,
        "DELETE FROM status_reports WHERE recipient IN (?1, ?2, ?3)",
        params![f[0], f[1], f[2]],
    )?;
    // The routing summary and reference counter (schema v5) name them too.
    exec(
        conn,
        op,
        "DELETE FROM peers WHERE recipient IN (?1, ?2, ?3)",
        params![f[0], f[1], f[2]],
    )?;
    report.consent = exec(
        conn,
        op,
        "DELETE FROM consent WHERE number = ?1 OR handle = ?2",
        params![number, handle],
    )?;
    report.handles = exec(
        conn,
        op,
        "DELETE FROM handles WHERE number = ?1 OR handle = ?2",
        params![number, handle],
    )?;
    exec(
        conn,
        op,
        "INSERT INTO forget_audit (handle, at_ms) VALUES (?1, ?2)",
        params![handle, now_ms],
    )?;
    Ok(report)
}

/// The audit of forgets: (handle, time), newest first.
pub(crate) fn forget_audit(conn: &Connection, limit: u32) -> Result<Vec<(String, i64)>> {
    conn.prepare_cached("SELECT handle, at_ms FROM forget_audit ORDER BY id DESC LIMIT ?1")
        .and_then(|mut st| {
            st.query_map([limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sql("read forget audit"))
}

/// Free pages above which (and above this share of the file) a compaction
/// also VACUUMs: rewriting the file is worth it only when much is free.
const VACUUM_MIN_FREE_PAGES: u64 = 256;

/// Moves the WAL into the database and truncates it, so deleted bytes are
/// gone from both files; VACUUMs when a quarter of the file is free. Runs
/// outside any transaction.
pub(crate) fn compact(conn: &Connection) -> Result<CompactReport> {
    let op = "compact";
    secure(conn)?;
    let pragma = |name: &str| -> Result<u64> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
            .map(|v| v.max(0) as u64)
            .map_err(StoreError::sql(op))
    };
    let checkpoint = || -> Result<()> {
        let (busy, _, _): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(StoreError::sql(op))?;
        if busy != 0 {
            return Err(StoreError::Internal(
                "WAL checkpoint could not finish (another reader holds the database)".into(),
            ));
        }
        Ok(())
    };
    let report = CompactReport {
        free_pages: pragma("freelist_count")?,
        pages: pragma("page_count")?,
        vacuumed: false,
    };
    checkpoint()?;
    if report.free_pages >= VACUUM_MIN_FREE_PAGES && report.free_pages * 4 >= report.pages {
        conn.execute_batch("VACUUM").map_err(StoreError::sql(op))?;
        checkpoint()?;
        return Ok(CompactReport {
            vacuumed: true,
            ..report
        });
    }
    Ok(report)
}
