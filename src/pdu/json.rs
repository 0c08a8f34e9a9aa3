//! The JSON view of a decoded PDU, printed by `smsgate pdu decode` one object
//! per line. Field names are documented in `docs/pdu.md`; scripts outside
//! the project rely on them, so they only ever grow.

use serde_json::{json, Map, Value};

use super::address::Address;
use super::dcs::Dcs;
use super::time::{EnhancedValidity, Timestamp, ValidityPeriod};
use super::tpdu::{Pdu, Tpdu};
use super::ud::{Body, UserData};
use super::udh::Ie;

fn addr(a: &Address) -> Value {
    Value::String(a.to_string())
}

fn time(t: &Timestamp) -> Value {
    t.to_rfc3339().map_or(Value::Null, Value::String)
}

/// `validity` as an object: `format` and what it means.
fn validity(vp: &Option<ValidityPeriod>) -> Value {
    match vp {
        None => Value::Null,
        Some(vp @ ValidityPeriod::Relative(v)) => json!({
            "format": "relative",
            "value": v,
            "seconds": vp.duration().map(|d| d.as_secs()),
        }),
        Some(ValidityPeriod::Absolute(t)) => json!({
            "format": "absolute",
            "time": time(t),
            "raw": hex::encode_upper(t.raw),
        }),
        Some(vp @ ValidityPeriod::Enhanced(raw)) => json!({
            "format": "enhanced",
            "seconds": vp.duration().map(|d| d.as_secs()),
            "none": vp.enhanced() == Some(EnhancedValidity::None),
            "raw": hex::encode_upper(raw),
        }),
    }
}

fn ie(ie: &Ie) -> Value {
    let mut data = Vec::new();
    ie.encode(&mut data);
    json!({ "iei": ie.iei(), "data": hex::encode_upper(data.get(2..).unwrap_or(&[])) })
}

/// Adds the DCS-derived and user-data fields to `m`.
fn user_data(m: &mut Map<String, Value>, dcs: Option<Dcs>, ud: Option<&UserData>) {
    let dcs = dcs.unwrap_or(Dcs::from_octet(0));
    m.insert("alphabet".into(), dcs.alphabet.name().into());
    m.insert("dcs".into(), dcs.raw.into());
    m.insert("class".into(), dcs.class.map(|c| c.number()).into());
    m.insert("compressed".into(), dcs.compressed.into());
    m.insert(
        "mwi".into(),
        dcs.mwi.map_or(
            Value::Null,
            |w| json!({ "active": w.active, "kind": w.kind.name(), "discard": w.discard }),
        ),
    );
    let header = ud.and_then(|u| u.header.as_ref());
    m.insert(
        "concat".into(),
        header.and_then(|h| h.concat()).map_or(Value::Null, |c| {
            json!({ "ref": c.reference, "total": c.total, "seq": c.seq, "ref_bits": if c.wide { 16 } else { 8 } })
        }),
    );
    m.insert(
        "ports".into(),
        header.and_then(|h| h.ports()).map_or(
            Value::Null,
            |p| json!({ "dst": p.dst, "src": p.src, "bits": p.bits }),
        ),
    );
    m.insert(
        "udh".into(),
        header.map_or(Value::Null, |h| h.ies.iter().map(ie).collect()),
    );
    match ud.map(|u| &u.body) {
        Some(Body::Text(t)) => {
            m.insert("text".into(), t.clone().into());
        }
        Some(Body::Data(d)) => {
            m.insert("data".into(), hex::encode_upper(d).into());
        }
        None => {}
    }
}

/// The JSON object for one decoded PDU.
pub fn to_json(pdu: &Pdu) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), pdu.tpdu.kind().into());
    m.insert("smsc".into(), pdu.smsc.as_ref().map_or(Value::Null, addr));
    m.insert("tpdu_length".into(), pdu.tpdu_len.into());
    match &pdu.tpdu {
        Tpdu::Deliver(d) => {
            m.insert("first_octet".into(), d.first_octet.into());
            m.insert("from".into(), addr(&d.originator));
            m.insert("from_type".into(), d.originator.ton.name().into());
            m.insert("timestamp".into(), time(&d.scts));
            m.insert("timestamp_raw".into(), hex::encode_upper(d.scts.raw).into());
            m.insert("pid".into(), d.pid.0.into());
            m.insert("report_requested".into(), d.status_report_indication.into());
            m.insert("more_messages".into(), d.more_messages.into());
            m.insert("reply_path".into(), d.reply_path.into());
            m.insert("validity".into(), Value::Null);
            user_data(&mut m, Some(d.dcs), Some(&d.user_data));
        }
        Tpdu::Submit(s) => {
            m.insert("first_octet".into(), s.first_octet.into());
            m.insert("reference".into(), s.message_reference.into());
            m.insert("to".into(), addr(&s.destination));
            m.insert("to_type".into(), s.destination.ton.name().into());
            m.insert("pid".into(), s.pid.0.into());
            m.insert("report_requested".into(), s.status_report_request.into());
            m.insert("reject_duplicates".into(), s.reject_duplicates.into());
            m.insert("reply_path".into(), s.reply_path.into());
            m.insert("validity".into(), validity(&s.validity));
            user_data(&mut m, Some(s.dcs), Some(&s.user_data));
        }
        Tpdu::StatusReport(r) => {
            m.insert("first_octet".into(), r.first_octet.into());
            m.insert("reference".into(), r.message_reference.into());
            m.insert("recipient".into(), addr(&r.recipient));
            m.insert("recipient_type".into(), r.recipient.ton.name().into());
            m.insert("timestamp".into(), time(&r.scts));
            m.insert("discharge_time".into(), time(&r.discharge_time));
            let class = r.status.class();
            m.insert(
                "status".into(),
                json!({
                    "code": r.status.0,
                    "meaning": r.status.meaning(),
                    "class": class.name(),
                    "final": class.is_final(),
                }),
            );
            m.insert("for_command".into(), r.for_command.into());
            m.insert("pid".into(), r.pid.map(|p| p.0).into());
            m.insert("validity".into(), Value::Null);
            if r.dcs.is_some() || r.user_data.is_some() {
                user_data(&mut m, r.dcs, r.user_data.as_ref());
            } else {
                // Same keys as the other types, so scripts need no special case.
                for k in ["alphabet", "dcs", "class", "concat", "ports", "udh", "mwi"] {
                    m.insert(k.into(), Value::Null);
                }
            }
        }
        Tpdu::DeliverReport(raw) | Tpdu::SubmitReport(raw) => {
            m.insert("first_octet".into(), raw.first_octet.into());
            m.insert("data".into(), hex::encode_upper(&raw.octets).into());
        }
        Tpdu::Command(c) => {
            m.insert("first_octet".into(), c.first_octet.into());
            m.insert("reference".into(), c.message_reference.into());
            m.insert("to".into(), addr(&c.destination));
            m.insert("pid".into(), c.pid.0.into());
            m.insert("command_type".into(), c.command_type.into());
            m.insert("message_number".into(), c.message_number.into());
            m.insert("report_requested".into(), c.status_report_request.into());
            m.insert("data".into(), hex::encode_upper(&c.data).into());
        }
    }
    Value::Object(m)
}
