//! Per (SIM, recipient) state kept next to the queue: the concatenation
//! reference counter, and the summary the router restores from.
//!
//! A phone joins the parts of a concatenated message by originating
//! address, reference and part count (TS 23.040 §9.2.3.24.1). A reference
//! that comes back too soon to the same phone from the same number lets a
//! stray part of an older message (a part resent after a crash, when the
//! first copy had arrived) be joined to the new one: the recipient sees a
//! garbled text. So each message's reference comes from a counter persisted
//! per (sending SIM, recipient): it survives restarts, and a phone sees the
//! same reference from the same number again only after 65,536 (16-bit,
//! §9.2.3.24.8) or 256 (8-bit) multipart messages to it. The reference is
//! allocated once, when the message is first bound to a modem (the SIM is
//! known only then), written into every part's stored PDU, and kept for
//! every retry and maybe-sent resend. Only a message that moves to another
//! SIM before any part left gets a new one, from that SIM's counter.
//!
//! [`note_sent`] keeps the router's summary (`peers`, `sim_days`) in the
//! transaction that marks a part sent.

use rusqlite::{params, Connection, OptionalExtension};

use super::error::{Result, StoreError};
use super::types::MessageId;
use crate::pdu::set_submit_reference;

const DAY_MS: i64 = 86_400_000;

/// The counter key of the SIM in `modem`: its ICCID as last recorded, or
/// the modem id when it reported none (as the router keys its limits).
pub(crate) fn sim_of(conn: &Connection, modem: &str) -> Result<String> {
    let iccid: Option<String> = conn
        .prepare_cached("SELECT iccid FROM modems WHERE id = ?1")
        .and_then(|mut st| st.query_row([modem], |r| r.get(0)).optional())
        .map_err(StoreError::sql("find the modem's SIM"))?
        .flatten();
    Ok(iccid
        .filter(|i| !i.trim().is_empty())
        .unwrap_or_else(|| modem.to_owned()))
}

/// Hands out the next concatenation reference for (`sim`, `recipient`),
/// 0..=65535, wrapping; the first one for a new pair is 0.
pub(crate) fn next_reference(conn: &Connection, sim: &str, recipient: &str) -> Result<u16> {
    let n: i64 = conn
        .prepare_cached(
            "INSERT INTO peers (sim, recipient, next_ref) VALUES (?1, ?2, 1)
             ON CONFLICT (sim, recipient) DO UPDATE SET next_ref = (next_ref + 1) % 65536
             RETURNING next_ref",
        )
        .and_then(|mut st| st.query_row([sim, recipient], |r| r.get(0)))
        .map_err(StoreError::sql("allocate a concatenation reference"))?;
    // The value handed out is the one before the increment.
    Ok(u16::try_from((n + 65535) % 65536).unwrap_or(0))
}

/// Gives a multipart message bound to `modem` its concatenation reference,
/// unless it already carries one from the same SIM. Called by
/// [`bind`](super::routing::bind) in its transaction. A part whose PDU has
/// no concatenation element (or that does not parse: a caller that stored
/// raw octets) is left as it is.
pub(crate) fn assign_reference(conn: &Connection, message: MessageId, modem: &str) -> Result<()> {
    let op = "assign a concatenation reference";
    type Row = (String, i64, Option<i64>, Option<String>);
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT recipient, parts_total, concat_ref, concat_sim FROM out_messages
             WHERE id = ?1",
        )
        .and_then(|mut st| st.query_row([message.0], |r| Row::try_from(r)).optional())
        .map_err(StoreError::sql(op))?;
    let Some((recipient, total, current, current_sim)) = row else {
        return Ok(());
    };
    if total < 2 {
        return Ok(());
    }
    let sim = sim_of(conn, modem)?;
    if current.is_some() && current_sim.as_deref() == Some(sim.as_str()) {
        return Ok(());
    }
    let parts: Vec<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT id, payload FROM out_parts WHERE message_id = ?1 ORDER BY seq")
        .and_then(|mut st| {
            // At most MAX_PARTS rows: enqueue refuses longer messages.
            st.query_map([message.0], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sql(op))?;
    let reference = next_reference(conn, &sim, &recipient)?;
    let mut written = None;
    for (id, mut payload) in parts {
        match set_submit_reference(&mut payload, reference) {
            Ok(Some(r)) => {
                written = Some(r);
                conn.prepare_cached("UPDATE out_parts SET payload = ?2 WHERE id = ?1")
                    .and_then(|mut st| st.execute(params![id, payload]))
                    .map_err(StoreError::sql(op))?;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(modem, message_id = %message, part = id, error = %e,
                    "stored part is not an SMS-SUBMIT: reference left as it is")
            }
        }
    }
    conn.prepare_cached("UPDATE out_messages SET concat_ref = ?2, concat_sim = ?3 WHERE id = ?1")
        .and_then(|mut st| st.execute(params![message.0, written, sim]))
        .map_err(StoreError::sql(op))?;
    tracing::debug!(modem, message_id = %message, reference = ?written, "concatenation reference assigned");
    Ok(())
}

/// Records one part of `message` sent by `modem` at `now_ms` in the
/// router's summary: the (SIM, recipient) last send and the SIM's day
/// count. Called in the transaction that marks the part sent.
pub(crate) fn note_sent(
    conn: &Connection,
    modem: &str,
    message: MessageId,
    now_ms: i64,
) -> Result<()> {
    let op = "record a send in the routing summary";
    let recipient: Option<String> = conn
        .prepare_cached("SELECT recipient FROM out_messages WHERE id = ?1")
        .and_then(|mut st| st.query_row([message.0], |r| r.get(0)).optional())
        .map_err(StoreError::sql(op))?;
    let Some(recipient) = recipient else {
        return Ok(());
    };
    let sim = sim_of(conn, modem)?;
    conn.prepare_cached(
        "INSERT INTO peers (sim, recipient, modem, last_sent_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (sim, recipient) DO UPDATE SET modem = excluded.modem,
             last_sent_ms = MAX(COALESCE(last_sent_ms, excluded.last_sent_ms),
                                excluded.last_sent_ms)",
    )
    .and_then(|mut st| st.execute(params![sim, recipient, modem, now_ms]))
    .map_err(StoreError::sql(op))?;
    conn.prepare_cached(
        "INSERT INTO sim_days (sim, day, sent, last_sent_ms) VALUES (?1, ?2, 1, ?3)
         ON CONFLICT (sim, day) DO UPDATE SET sent = sent + 1,
             last_sent_ms = MAX(last_sent_ms, excluded.last_sent_ms)",
    )
    .and_then(|mut st| st.execute(params![sim, now_ms.div_euclid(DAY_MS), now_ms]))
    .map_err(StoreError::sql(op))?;
    Ok(())
}

/// Whether two lists of encoded parts are the same message: equal but for
/// the concatenation reference, which [`assign_reference`] rewrites after
/// the message was queued.
pub(crate) fn same_parts(stored: &[Vec<u8>], new: &[Vec<u8>]) -> bool {
    let plain = |p: &Vec<u8>| {
        let mut p = p.clone();
        // A PDU that does not parse is compared as it is.
        let _ = set_submit_reference(&mut p, 0);
        p
    };
    stored.len() == new.len()
        && stored
            .iter()
            .zip(new)
            .all(|(a, b)| a == b || plain(a) == plain(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{decode, encode_submit, Address, SubmitOptions, Tpdu};
    use crate::store::config::StoreConfig;
    use crate::store::types::{ModemInfo, NewOutbound};
    use crate::store::{outbound, registry, routing, schema};

    const T: i64 = 1_700_000_000_000;

    fn open(dir: &std::path::Path) -> schema::Opened {
        schema::open(&StoreConfig::at(dir.join("r.db"))).unwrap()
    }

    #[test]
    fn counter_is_per_sim_and_recipient_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open(dir.path());
            let c = &db.conn;
            assert_eq!(next_reference(c, "8944", "+1").unwrap(), 0);
            assert_eq!(next_reference(c, "8944", "+1").unwrap(), 1);
            // Another recipient, another SIM: their own counters.
            assert_eq!(next_reference(c, "8944", "+2").unwrap(), 0);
            assert_eq!(next_reference(c, "8945", "+1").unwrap(), 0);
            assert_eq!(next_reference(c, "8944", "+1").unwrap(), 2);
        }
        let db = open(dir.path());
        assert_eq!(next_reference(&db.conn, "8944", "+1").unwrap(), 3);
        assert_eq!(next_reference(&db.conn, "8944", "+2").unwrap(), 1);
    }

    #[test]
    fn counter_wraps_after_65535() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let c = &db.conn;
        next_reference(c, "s", "+1").unwrap();
        c.execute("UPDATE peers SET next_ref = 65534", []).unwrap();
        assert_eq!(next_reference(c, "s", "+1").unwrap(), 65534);
        assert_eq!(next_reference(c, "s", "+1").unwrap(), 65535);
        assert_eq!(next_reference(c, "s", "+1").unwrap(), 0);
        assert_eq!(next_reference(c, "s", "+1").unwrap(), 1);
    }

    fn references(c: &Connection, m: MessageId) -> Vec<u16> {
        let mut st = c
            .prepare("SELECT payload FROM out_parts WHERE message_id = ?1 ORDER BY seq")
            .unwrap();
        st.query_map([m.0], |r| r.get::<_, Vec<u8>>(0))
            .unwrap()
            .map(|p| {
                let pdu = decode(&p.unwrap(), Default::default()).unwrap();
                let Tpdu::Submit(s) = pdu.tpdu else { panic!() };
                s.user_data
                    .header
                    .and_then(|h| h.concat())
                    .unwrap()
                    .reference
            })
            .collect()
    }

    fn message(c: &Connection, to: &str, ref16: bool) -> MessageId {
        let addr = Address::parse_number(to).unwrap();
        let opts = SubmitOptions {
            ref16,
            ..SubmitOptions::default()
        };
        let parts = encode_submit(&addr, &"z".repeat(300), &opts).unwrap();
        let req = NewOutbound {
            recipient: to.into(),
            parts: parts.into_iter().map(|p| p.octets).collect(),
            ..Default::default()
        };
        outbound::enqueue(c, &req, T).unwrap().id
    }

    #[test]
    fn bind_gives_each_message_the_next_reference_of_its_sim_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let c = &db.conn;
        for (id, iccid) in [("350001", Some("89440001")), ("350002", None)] {
            let info = ModemInfo {
                id: id.into(),
                iccid: iccid.map(Into::into),
                ..Default::default()
            };
            registry::modem_seen(c, &info, T).unwrap();
        }
        let a = message(c, "+15550001", true);
        let b = message(c, "+15550001", true);
        let other = message(c, "+15550002", false);
        assert!(routing::bind(c, a, "350001").unwrap());
        assert!(routing::bind(c, b, "350001").unwrap());
        assert!(routing::bind(c, other, "350001").unwrap());
        assert_eq!(references(c, a), [0, 0]);
        assert_eq!(references(c, b), [1, 1]);
        assert_eq!(references(c, other), [0, 0]);
        // Unbound (nothing left) and bound again through the same SIM: the
        // same reference. Through another SIM: that SIM's counter.
        assert!(routing::unbind(c, b).unwrap());
        assert!(routing::bind(c, b, "350001").unwrap());
        assert_eq!(references(c, b), [1, 1]);
        assert!(routing::unbind(c, b).unwrap());
        next_reference(c, "350002", "+15550001").unwrap();
        assert!(routing::bind(c, b, "350002").unwrap());
        assert_eq!(references(c, b), [1, 1]);
        assert!(routing::unbind(c, a).unwrap());
        assert!(routing::bind(c, a, "350002").unwrap());
        assert_eq!(references(c, a), [2, 2]);
        // 8-bit elements take the low octet of the counter.
        c.execute(
            "UPDATE peers SET next_ref = 0x1FF WHERE recipient = '+15550002'",
            [],
        )
        .unwrap();
        let eight = message(c, "+15550002", false);
        assert!(routing::bind(c, eight, "350001").unwrap());
        assert_eq!(references(c, eight), [0xFF, 0xFF]);
        let stored: i64 = c
            .query_row(
                "SELECT concat_ref FROM out_messages WHERE id = ?1",
                [eight.0],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored, 0xFF);
    }
}
