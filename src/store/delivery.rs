//! Status reports (TS 23.040 §9.2.2.3) matched to sent parts.
//!
//! A report names the submit it answers only by TP-MR, which the modem
//! counts modulo 256 (TS 23.040 §9.2.3.6), and by TP-RA, the recipient. So
//! a report is matched on (modem, MR, recipient) among parts sent within
//! `report_window_ms` before it arrived, preferring a part still waiting
//! for its final report, then the most recently sent one. The report's
//! TP-SCTS is not used for matching: SMSC clocks and time zones are too
//! often wrong. Reports that match nothing are kept and counted.

use rusqlite::{params, Connection, OptionalExtension};

use super::error::{Result, StoreError};
use super::limits::{check_address, check_id, check_pdu, digits, same_number};
use super::outbound;
use super::registry::{self, Daily};
use super::types::{MessageId, PartId, PartState, ReportClass, ReportOutcome, StatusReport};

/// How far after the report's arrival a part's `sent_ms` may lie (clock
/// steps between the two events).
const FUTURE_SLACK_MS: i64 = 60_000;

/// Stores a report and applies it to its part.
pub(crate) fn record(
    conn: &Connection,
    window_ms: i64,
    rep: &StatusReport,
) -> Result<ReportOutcome> {
    check_id("modem", &rep.modem)?;
    check_address("recipient", &rep.recipient)?;
    check_pdu("status report PDU", &rep.pdu)?;
    let op = "record status report";
    let class = ReportClass::of(rep.status);
    let inserted = conn
        .prepare_cached(
            "INSERT INTO status_reports (modem, mr, recipient, status, scts_ms, discharge_ms,
                 received_ms, pdu)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (modem, pdu) DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute(params![
                rep.modem,
                rep.mr,
                rep.recipient,
                rep.status,
                rep.scts_ms,
                rep.discharge_ms,
                rep.received_ms,
                rep.pdu
            ])
        })
        .map_err(StoreError::sql(op))?;
    if inserted == 0 {
        // Re-reported after a reset: already applied.
        let part = conn
            .prepare_cached("SELECT part_id FROM status_reports WHERE modem = ?1 AND pdu = ?2")
            .and_then(|mut st| {
                st.query_row(params![rep.modem, rep.pdu], |r| r.get::<_, Option<i64>>(0))
                    .optional()
            })
            .map_err(StoreError::sql(op))?
            .flatten();
        let message = match part {
            Some(p) => Some(part_message(conn, PartId(p))?),
            None => None,
        };
        return Ok(ReportOutcome {
            new: false,
            part: part.map(PartId),
            message,
            class,
        });
    }
    let report_id = conn.last_insert_rowid();
    let Some((part, message)) = find_part(conn, window_ms, rep)? else {
        registry::bump(conn, registry::UNMATCHED_REPORTS, 1)?;
        tracing::warn!(modem = %rep.modem, mr = rep.mr, status = rep.status,
            "status report matches no sent part; kept as unmatched");
        return Ok(ReportOutcome {
            new: true,
            part: None,
            message: None,
            class,
        });
    };
    conn.prepare_cached("UPDATE status_reports SET part_id = ?2 WHERE id = ?1")
        .and_then(|mut st| st.execute(params![report_id, part.0]))
        .map_err(StoreError::sql(op))?;
    apply(conn, part, message, class, rep)?;
    Ok(ReportOutcome {
        new: true,
        part: Some(part),
        message: Some(message),
        class,
    })
}

fn part_message(conn: &Connection, part: PartId) -> Result<MessageId> {
    conn.prepare_cached("SELECT message_id FROM out_parts WHERE id = ?1")
        .and_then(|mut st| st.query_row([part.0], |r| r.get(0)))
        .map(MessageId)
        .map_err(StoreError::sql("read part"))
}

fn find_part(
    conn: &Connection,
    window_ms: i64,
    rep: &StatusReport,
) -> Result<Option<(PartId, MessageId)>> {
    let op = "match status report";
    let mut st = conn
        .prepare_cached(
            "SELECT id, message_id, recipient_digits, state FROM out_parts
             WHERE modem = ?1 AND mr = ?2 AND sent_ms BETWEEN ?3 AND ?4
             ORDER BY sent_ms DESC, id DESC LIMIT 64",
        )
        .map_err(StoreError::sql(op))?;
    let from = rep.received_ms.saturating_sub(window_ms.max(0));
    let to = rep.received_ms.saturating_add(FUTURE_SLACK_MS);
    let candidates = st
        .query_map(params![rep.modem, rep.mr, from, to], |r| {
            Ok((
                PartId(r.get(0)?),
                MessageId(r.get(1)?),
                r.get::<_, String>(2)?,
                PartState::parse(&r.get::<_, String>(3)?),
            ))
        })
        .map_err(StoreError::sql(op))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(StoreError::sql(op))?;
    let want = digits(&rep.recipient);
    let matching: Vec<_> = candidates
        .into_iter()
        .filter(|(_, _, d, _)| same_number(d, &want))
        .collect();
    // Newest first; a part still `sent` (no final report yet) wins over one
    // already settled, so a late report for an old MR does not steal it.
    let pick = matching
        .iter()
        .find(|(_, _, _, s)| *s == PartState::Sent)
        .or(matching.first());
    Ok(pick.map(|(p, m, _, _)| (*p, *m)))
}

fn apply(
    conn: &Connection,
    part: PartId,
    message: MessageId,
    class: ReportClass,
    rep: &StatusReport,
) -> Result<()> {
    let op = "apply status report";
    let state: String = conn
        .prepare_cached("SELECT state FROM out_parts WHERE id = ?1")
        .and_then(|mut st| st.query_row([part.0], |r| r.get(0)))
        .map_err(StoreError::sql(op))?;
    // The first final report settles the part; later ones are kept in
    // `status_reports` but do not flip it back and forth.
    let settle = PartState::parse(&state) == PartState::Sent;
    let sql = match class {
        ReportClass::Delivered if settle => {
            "UPDATE out_parts SET report_status = ?2, state = 'delivered', delivered_ms = ?3
             WHERE id = ?1"
        }
        ReportClass::Failed if settle => {
            "UPDATE out_parts SET report_status = ?2, state = 'failed', reason = ?4
             WHERE id = ?1"
        }
        _ => "UPDATE out_parts SET report_status = ?2 WHERE id = ?1 AND state = 'sent'",
    };
    let reason = format!(
        "status report: TP-ST 0x{:02X}, the service centre gave up",
        rep.status
    );
    let when = rep.discharge_ms.unwrap_or(rep.received_ms);
    let mut st = conn.prepare_cached(sql).map_err(StoreError::sql(op))?;
    let changed = match class {
        ReportClass::Delivered if settle => st.execute(params![part.0, rep.status, when]),
        ReportClass::Failed if settle => st.execute(params![part.0, rep.status, when, reason]),
        _ => st.execute(params![part.0, rep.status]),
    }
    .map_err(StoreError::sql(op))?;
    if settle && changed > 0 && class == ReportClass::Failed {
        registry::bump_daily(conn, &rep.modem, rep.received_ms, Daily::Failed)?;
    }
    tracing::debug!(modem = %rep.modem, message_id = %message, part = %part, mr = rep.mr,
        status = rep.status, ?class, "status report matched");
    outbound::refresh(conn, message, rep.received_ms)?;
    Ok(())
}
