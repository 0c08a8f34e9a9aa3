//! Inbound parts, de-duplication and persisted multipart reassembly.
//!
//! * De-duplication: a part is the same part when the same SIM (or, without
//!   an ICCID, the same modem) reports the same raw PDU bytes. The PDU holds
//!   TP-SCTS, the time the service centre took the message in
//!   (TS 23.040 §9.2.3.11), so the same text sent twice by a person differs
//!   in its bytes and is stored twice, while a modem re-reporting its
//!   storage after a reset hits the same bytes and is recognised.
//! * Reassembly: parts are grouped by (scope, sender, reference, total)
//!   (TS 23.040 §9.2.3.24.1: the reference identifies the message of one
//!   originator). A group completes when every sequence number is present.
//!   A second, different part with the same sequence number means the
//!   reference was reused: the old group is closed as partial and a new one
//!   starts. A group that got no new part for `reassembly_timeout_ms`
//!   becomes a flagged partial message.

use rusqlite::{params, Connection, OptionalExtension};

use super::error::{Result, StoreError};
use super::events::{self, EventKind};
use super::limits::{self, check_address, check_id, check_pdu};
use super::registry::{self, Daily};
use super::types::{BusState, InboundBody, InboundCommit, InboundId, InboundMessage, InboundPart};

fn validate(p: &InboundPart) -> Result<()> {
    check_id("modem", &p.modem)?;
    if let Some(sim) = &p.sim {
        check_id("SIM", sim)?;
    }
    check_address("sender", &p.sender)?;
    check_pdu("PDU", &p.pdu)?;
    let body_len = match &p.body {
        InboundBody::Text(t) => t.len(),
        InboundBody::Data(d) => d.len(),
    };
    if body_len > limits::MAX_PART_BODY {
        return Err(StoreError::Invalid(format!(
            "decoded part body is {body_len} bytes, at most {} allowed",
            limits::MAX_PART_BODY
        )));
    }
    Ok(())
}

/// The de-duplication and reassembly scope: the SIM when known (a SIM
/// moved to another modem keeps its messages), else the modem.
fn scope(p: &InboundPart) -> String {
    match &p.sim {
        Some(iccid) => format!("sim:{iccid}"),
        None => format!("modem:{}", p.modem),
    }
}

/// Stores a part; completes its message when it was the last one missing.
pub(crate) fn commit(conn: &Connection, p: &InboundPart) -> Result<InboundCommit> {
    validate(p)?;
    let op = "store inbound part";
    let scope = scope(p);
    // TS 23.040 §9.2.3.24.1: a total of 0, or a sequence number of 0 or
    // beyond the total, makes the IE to be ignored: a single message.
    let concat = p
        .concat
        .filter(|c| c.total > 1 && c.seq >= 1 && c.seq <= c.total);
    let (text, data) = match &p.body {
        InboundBody::Text(t) => (Some(t.as_str()), None),
        InboundBody::Data(d) => (None, Some(d.as_slice())),
    };
    let inserted = conn
        .prepare_cached(
            "INSERT INTO in_parts (scope, modem, sim, sender, scts_ms, ref, total, seq, text,
                 data, pdu, storage_index, received_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (scope, pdu) DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute(params![
                scope,
                p.modem,
                p.sim,
                p.sender,
                p.scts_ms,
                concat.map(|c| c.reference),
                concat.map(|c| c.total),
                concat.map(|c| c.seq),
                text,
                data,
                p.pdu,
                p.storage_index,
                p.received_ms
            ])
        })
        .map_err(StoreError::sql(op))?;
    if inserted == 0 {
        registry::bump(conn, registry::INBOUND_DUPLICATES, 1)?;
        tracing::info!(modem = %p.modem, index = ?p.storage_index,
            "inbound PDU already stored (re-reported); not a new message");
        return Ok(InboundCommit {
            new: false,
            completed: None,
        });
    }
    let part_id = conn.last_insert_rowid();
    registry::bump_daily(conn, &p.modem, p.received_ms, Daily::Received)?;

    let Some(c) = concat else {
        let id = finish(conn, Group::Single(part_id), p.received_ms, false)?;
        return Ok(InboundCommit {
            new: true,
            completed: Some(id),
        });
    };

    let open = conn
        .prepare_cached(
            "SELECT id FROM in_groups
             WHERE scope = ?1 AND sender = ?2 AND ref = ?3 AND total = ?4 AND open = 1",
        )
        .and_then(|mut st| {
            st.query_row(params![scope, p.sender, c.reference, c.total], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
        })
        .map_err(StoreError::sql(op))?;
    let group = match open {
        Some(g) if has_seq(conn, g, c.seq)? => {
            tracing::info!(modem = %p.modem, group = g, seq = c.seq,
                "concatenation reference reused before the old message completed; \
                 closing the old one as partial");
            finish(conn, Group::Multi(g), p.received_ms, true)?;
            new_group(conn, &scope, p, c.reference, c.total)?
        }
        Some(g) => {
            // The timeout counts from the newest part: a long message whose
            // parts keep trickling in is not cut.
            conn.prepare_cached("UPDATE in_groups SET last_ms = max(last_ms, ?2) WHERE id = ?1")
                .and_then(|mut st| st.execute(params![g, p.received_ms]))
                .map_err(StoreError::sql(op))?;
            g
        }
        None => new_group(conn, &scope, p, c.reference, c.total)?,
    };
    conn.prepare_cached("UPDATE in_parts SET group_id = ?2 WHERE id = ?1")
        .and_then(|mut st| st.execute(params![part_id, group]))
        .map_err(StoreError::sql(op))?;
    let have: i64 = conn
        .prepare_cached("SELECT count(*) FROM in_parts WHERE group_id = ?1")
        .and_then(|mut st| st.query_row([group], |r| r.get(0)))
        .map_err(StoreError::sql(op))?;
    tracing::debug!(modem = %p.modem, group, seq = c.seq, total = c.total, have,
        "inbound part stored");
    let completed = if have >= i64::from(c.total) {
        Some(finish(conn, Group::Multi(group), p.received_ms, false)?)
    } else {
        None
    };
    Ok(InboundCommit {
        new: true,
        completed,
    })
}

fn has_seq(conn: &Connection, group: i64, seq: u8) -> Result<bool> {
    conn.prepare_cached("SELECT 1 FROM in_parts WHERE group_id = ?1 AND seq = ?2")
        .and_then(|mut st| st.query_row(params![group, seq], |_| Ok(())).optional())
        .map(|v| v.is_some())
        .map_err(StoreError::sql("find part"))
}

fn new_group(
    conn: &Connection,
    scope: &str,
    p: &InboundPart,
    reference: u16,
    total: u8,
) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO in_groups (scope, sender, ref, total, modem, sim, last_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut st| {
        st.execute(params![
            scope,
            p.sender,
            reference,
            total,
            p.modem,
            p.sim,
            p.received_ms
        ])
    })
    .map_err(StoreError::sql("open reassembly group"))?;
    Ok(conn.last_insert_rowid())
}

enum Group {
    Single(i64),
    Multi(i64),
}

/// Builds the message from a single part or a group's parts.
fn finish(conn: &Connection, group: Group, now_ms: i64, partial: bool) -> Result<InboundId> {
    let op = "complete inbound message";
    let (sql, key, total) = match group {
        Group::Single(part) => (
            "SELECT seq, modem, sim, sender, scts_ms, received_ms, text, data
             FROM in_parts WHERE id = ?1",
            part,
            1_u32,
        ),
        Group::Multi(g) => {
            let total: u32 = conn
                .prepare_cached("SELECT total FROM in_groups WHERE id = ?1")
                .and_then(|mut st| st.query_row([g], |r| r.get(0)))
                .map_err(StoreError::sql(op))?;
            (
                "SELECT seq, modem, sim, sender, scts_ms, received_ms, text, data
                 FROM in_parts WHERE group_id = ?1 ORDER BY seq LIMIT 255",
                g,
                total,
            )
        }
    };
    type Row = (
        Option<u32>,
        String,
        Option<String>,
        String,
        i64,
        i64,
        Option<String>,
        Option<Vec<u8>>,
    );
    let parts: Vec<Row> = conn
        .prepare_cached(sql)
        .and_then(|mut st| {
            st.query_map([key], |r| Row::try_from(r))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sql(op))?;
    let Some(first) = parts.first() else {
        return Err(StoreError::Internal(
            "reassembly group without parts".into(),
        ));
    };
    let (modem, sim, sender, scts) = (first.1.clone(), first.2.clone(), first.3.clone(), first.4);
    let received = parts.iter().map(|r| r.5).min().unwrap_or(now_ms);
    let all_text = parts.iter().all(|r| r.6.is_some());
    let (text, data) = if all_text {
        (
            Some(
                parts
                    .iter()
                    .filter_map(|r| r.6.as_deref())
                    .collect::<String>(),
            ),
            None,
        )
    } else {
        let mut bytes = Vec::new();
        for r in &parts {
            match (&r.6, &r.7) {
                (Some(t), _) => bytes.extend_from_slice(t.as_bytes()),
                (None, Some(d)) => bytes.extend_from_slice(d),
                (None, None) => {}
            }
        }
        (None, Some(bytes))
    };
    let present: Vec<u32> = parts.iter().filter_map(|r| r.0).collect();
    let missing: Vec<u32> = match group {
        Group::Single(_) => Vec::new(),
        Group::Multi(_) => (1..=total).filter(|s| !present.contains(s)).collect(),
    };
    let missing_text = (!missing.is_empty()).then(|| {
        missing
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    });
    let partial = partial || !missing.is_empty();
    let id = super::registry::next_id(conn, super::registry::Ids::Inbound)?;
    conn.prepare_cached(
        "INSERT INTO in_messages (modem, sim, sender, scts_ms, received_ms, completed_ms, text,
             data, parts_total, parts_received, partial, missing, id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )
    .and_then(|mut st| {
        st.execute(params![
            modem,
            sim,
            sender,
            scts,
            received,
            now_ms,
            text,
            data,
            total,
            parts.len() as i64,
            partial,
            missing_text,
            id
        ])
    })
    .map_err(StoreError::sql(op))?;
    let id = InboundId(id);
    let link = match group {
        Group::Single(_) => "UPDATE in_parts SET message_id = ?2 WHERE id = ?1",
        Group::Multi(_) => {
            conn.prepare_cached("UPDATE in_groups SET open = 0 WHERE id = ?1")
                .and_then(|mut st| st.execute([key]))
                .map_err(StoreError::sql(op))?;
            "UPDATE in_parts SET message_id = ?2 WHERE group_id = ?1"
        }
    };
    conn.prepare_cached(link)
        .and_then(|mut st| st.execute(params![key, id.0]))
        .map_err(StoreError::sql(op))?;
    events::append(
        conn,
        now_ms,
        &EventKind::InboundComplete {
            message: id,
            partial,
        },
    )?;
    tracing::info!(modem, message_id = %id, parts = parts.len(), total, partial,
        "inbound message complete");
    Ok(id)
}

/// Turns groups that got no new part for `timeout_ms` into flagged partial
/// messages (at most `limit` per call).
pub(crate) fn expire(conn: &Connection, timeout_ms: i64, now_ms: i64, limit: u32) -> Result<u64> {
    let groups = conn
        .prepare_cached(
            "SELECT id FROM in_groups WHERE open = 1 AND last_ms <= ?1
             ORDER BY last_ms LIMIT ?2",
        )
        .and_then(|mut st| {
            st.query_map(
                params![now_ms.saturating_sub(timeout_ms), limits::limit(limit)],
                |r| r.get::<_, i64>(0),
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sql("expire reassembly"))?;
    for g in &groups {
        finish(conn, Group::Multi(*g), now_ms, true)?;
    }
    Ok(groups.len() as u64)
}

const MESSAGE_COLUMNS: &str = "id, modem, sim, sender, scts_ms, received_ms, completed_ms, text, \
     data, parts_total, parts_received, partial, missing, bus_state";

fn row_to_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<InboundMessage> {
    let missing: Option<String> = r.get(12)?;
    Ok(InboundMessage {
        id: InboundId(r.get(0)?),
        modem: r.get(1)?,
        sim: r.get(2)?,
        sender: r.get(3)?,
        scts_ms: r.get(4)?,
        received_ms: r.get(5)?,
        completed_ms: r.get(6)?,
        text: r.get(7)?,
        data: r.get(8)?,
        parts_total: r.get(9)?,
        parts_received: r.get(10)?,
        partial: r.get(11)?,
        missing: missing
            .unwrap_or_default()
            .split(',')
            .filter_map(|s| s.parse().ok())
            .collect(),
        bus_state: BusState::from_i64(r.get(13)?),
    })
}

/// One inbound message.
pub(crate) fn get(conn: &Connection, id: InboundId) -> Result<InboundMessage> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM in_messages WHERE id = ?1"
    ))
    .and_then(|mut st| st.query_row([id.0], row_to_message).optional())
    .map_err(StoreError::sql("read inbound message"))?
    .ok_or(StoreError::NotFound {
        what: "inbound message",
        id: id.0,
    })
}

/// Messages after `after`, oldest first; only those not yet acknowledged
/// by the bus when `unacked_only`.
pub(crate) fn list(
    conn: &Connection,
    after: InboundId,
    limit: u32,
    unacked_only: bool,
) -> Result<Vec<InboundMessage>> {
    let op = "list inbound";
    let filter = if unacked_only {
        "bus_state < 2 AND"
    } else {
        ""
    };
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM in_messages WHERE {filter} id > ?1
         ORDER BY id LIMIT ?2"
    ))
    .and_then(|mut st| {
        st.query_map(params![after.0, limits::limit(limit)], row_to_message)?
            .collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(StoreError::sql(op))
}

/// Moves a message forward in its bus hand-over (never backwards).
pub(crate) fn set_bus_state(
    conn: &Connection,
    id: InboundId,
    to: BusState,
    now_ms: i64,
) -> Result<()> {
    let sql = match to {
        BusState::Pending => return Err(StoreError::Invalid("cannot move back to pending".into())),
        BusState::Delivered => {
            "UPDATE in_messages SET bus_state = 1, bus_delivered_ms = ?2
             WHERE id = ?1 AND bus_state < 1"
        }
        BusState::Acked => {
            "UPDATE in_messages SET bus_state = 2, bus_acked_ms = ?2,
                 bus_delivered_ms = coalesce(bus_delivered_ms, ?2)
             WHERE id = ?1 AND bus_state < 2"
        }
    };
    let changed = conn
        .prepare_cached(sql)
        .and_then(|mut st| st.execute(params![id.0, now_ms]))
        .map_err(StoreError::sql("update bus state"))?;
    if changed == 0 {
        // Already there (a repeated ack) is fine; a wrong id is not.
        get(conn, id)?;
    }
    Ok(())
}
