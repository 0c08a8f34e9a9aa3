//! The real-world PDU corpus (`corpus/pdu/*.jsonl`, 393 vectors from eight
//! projects, see its README) against our codec: every asserted field is
//! checked, every encoder vector is compared byte for byte where our encoder
//! has the inputs, every vector a source says must fail must be an `Err`.
//! Values a source asserts that are that library's own, non-spec view are
//! listed in [`DEVIATIONS`] with the reason, instead of being matched.
//! Skips visibly when the corpus is absent.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use smsgate::pdu::gsm7::{NationalLanguage, Tables};
use smsgate::pdu::{
    decode_hex, encode_submit, Address, Alphabet, Body, Dcs, DecodeOptions, Deliver, MessageClass,
    Pdu, ProtocolId, StatusClass, SubmitOptions, Timestamp, Tpdu, UserData, ValidityPeriod,
};

/// (record name, asserted key, why we do not match the source).
const DEVIATIONS: &[(&str, &str, &str)] = &[
    (
        "test_decode[7]",
        "*",
        "python-gsmmodem tolerates a UCS-2 TP-UDL (0xA0 = 160) above the 140-octet maximum and \
         larger than the data present; TS 23.040 §9.2.3.16 makes that a malformed PDU, we return \
         an error naming TP-UDL",
    ),
    (
        "test_decode[10]",
        "number",
        "python-gsmmodem prints BCD 0xB as 'b'; TS 23.040 §9.1.2.3 assigns 1011 to '#', so we \
         print '+#08427829207025' for this broken ZTE report",
    ),
    (
        "test_encodeSmsSubmit[3]",
        "encoded_from",
        "python-gsmmodem encodes numbers with a leading 0 as national (TOA 0xA1); we do not guess \
         the type of a number without '+' and write 0x81 (unknown, ISDN) as ModemManager and gammu do",
    ),
    (
        "test_decode[8]",
        "text",
        "python-gsmmodem shows 8-bit user data (TP-DCS 0x04) as text; TS 23.038 §4 makes it \
         binary data, which we hand over as `data` (its octets are exactly \"Hello world!\")",
    ),
    (
        "sms-at-parse-41",
        "decode",
        "gammu accepts a TP-UD 3 octets shorter than TP-UDL (93 septets need 82 octets, 79 are \
         present: a truncated capture); we reject it with an error naming TP-UD rather than \
         decode a message with its end silently missing",
    ),
    (
        "sms-at-parse-20",
        "decode",
        "gammu accepts TP-UDHI set with TP-UDL 0 (no room for the header TP-UDHI announces); \
         ModemManager's test_pdu_wrong_udh asserts the same shape must fail, and so do we \
         (TS 23.040 §9.2.3.24: the header is part of TP-UD)",
    ),
    (
        "testCPHSVoiceMail[set]",
        "mwi",
        "CPHS voicemail flags ride in the originator address (CPHS 4.2), not in TS 23.040 \
         DCS/UDH; the codec reports the address and PID, the CPHS rule is Android's",
    ),
    (
        "testCPHSVoiceMail[clear1]",
        "mwi",
        "CPHS voicemail flag (see testCPHSVoiceMail[set])",
    ),
    (
        "testCPHSVoiceMail[clear2]",
        "mwi",
        "CPHS voicemail flag (see testCPHSVoiceMail[set])",
    ),
    (
        "test_decoding_odd_length_pdu_(strict|no_strict)",
        "lenient_text",
        "python-messaging's lenient mode drops an odd trailing hex digit; we only do the strict \
         decode (an error naming the hex offset), so a truncated PDU is never silently accepted",
    ),
];

/// Keys that record one library's own view or another layer's behaviour
/// (AT parsing, reassembly, e-mail gateway heuristics): not checked here.
const NOT_CODEC: &[&str] = &[
    "cmgl_index",
    "cmgl_stat",
    "cmgr_stat",
    "cds_length",
    "msgstart",
    "assembles_with",
    "assembled_message_count",
    "assembly_group",
    "assembly_parts",
    "assembly_complete_after_all_three",
    "mms_transaction_id_after_reassembly",
    "python_messaging_repr",
    "gammu_decoded",
    "is_email",
    "email_from",
    "display_body",
    "decode_with",
];

#[derive(Default)]
struct Tally {
    records: usize,
    checks: usize,
    passed: usize,
    deviations: BTreeMap<String, String>,
    skipped: BTreeMap<String, usize>,
    failures: Vec<String>,
}

fn deviation(name: &str, key: &str) -> Option<&'static str> {
    DEVIATIONS
        .iter()
        .find(|(n, k, _)| *n == name && (*k == key || *k == "*"))
        .map(|(_, _, why)| *why)
}

impl Tally {
    fn check(&mut self, name: &str, key: &str, ok: bool, detail: impl FnOnce() -> String) {
        self.checks += 1;
        if ok {
            self.passed += 1;
        } else if let Some(why) = deviation(name, key) {
            self.deviations
                .insert(format!("{name}: {key}"), why.to_string());
        } else {
            self.failures.push(format!("{name}: {key}: {}", detail()));
        }
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn tables_of(rec: &Value) -> Tables {
    let name = |k: &str| {
        rec["expect"]["decode_with"][k]
            .as_str()
            .and_then(NationalLanguage::from_name)
            .unwrap_or_default()
    };
    Tables {
        locking: name("locking_shift_table"),
        single: name("single_shift_table"),
    }
}

fn address(pdu: &Pdu) -> Option<&Address> {
    match &pdu.tpdu {
        Tpdu::Deliver(d) => Some(&d.originator),
        Tpdu::Submit(s) => Some(&s.destination),
        Tpdu::StatusReport(r) => Some(&r.recipient),
        Tpdu::Command(c) => Some(&c.destination),
        _ => None,
    }
}

fn addr_matches(a: &Address, exp: &str) -> bool {
    a.to_string() == exp || a.value == exp
}

fn scts(pdu: &Pdu) -> Option<Timestamp> {
    match &pdu.tpdu {
        Tpdu::Deliver(d) => Some(d.scts),
        Tpdu::StatusReport(r) => Some(r.scts),
        _ => None,
    }
}

fn discharge(pdu: &Pdu) -> Option<Timestamp> {
    match &pdu.tpdu {
        Tpdu::StatusReport(r) => Some(r.discharge_time),
        _ => None,
    }
}

fn rfc(t: Option<Timestamp>) -> String {
    t.and_then(|t| t.to_rfc3339()).unwrap_or_default()
}

/// ModemManager prints `-05`, `+02`, `Z`: normalise to RFC 3339 offsets.
fn mm_time(exp: &str) -> String {
    if let Some(p) = exp.strip_suffix('Z') {
        return format!("{p}+00:00");
    }
    let b = exp.as_bytes();
    if b.len() >= 3 && matches!(b[b.len() - 3], b'+' | b'-') {
        return format!("{exp}:00");
    }
    exp.to_string()
}

fn naive(t: Option<Timestamp>, utc: bool) -> String {
    let Some(dt) = t.and_then(|t| t.to_datetime()) else {
        return String::new();
    };
    let dt = if utc {
        dt.to_offset(time::UtcOffset::UTC)
    } else {
        dt
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

fn ud(pdu: &Pdu) -> Option<&UserData> {
    pdu.tpdu.user_data()
}

fn text(pdu: &Pdu) -> Option<&str> {
    ud(pdu).and_then(UserData::text)
}

fn ud_octets(pdu: &Pdu) -> Option<usize> {
    let u = ud(pdu)?;
    let dcs = pdu.tpdu.dcs().unwrap_or(Dcs::from_octet(0));
    Some(if dcs.alphabet == Alphabet::Gsm7 && !dcs.compressed {
        (usize::from(u.udl) * 7).div_ceil(8)
    } else {
        usize::from(u.udl)
    })
}

fn first_octet(pdu: &Pdu) -> u8 {
    match &pdu.tpdu {
        Tpdu::Deliver(d) => d.first_octet,
        Tpdu::Submit(s) => s.first_octet,
        Tpdu::StatusReport(r) => r.first_octet,
        Tpdu::Command(c) => c.first_octet,
        Tpdu::DeliverReport(r) | Tpdu::SubmitReport(r) => r.first_octet,
    }
}

fn mr(pdu: &Pdu) -> Option<u8> {
    match &pdu.tpdu {
        Tpdu::Submit(s) => Some(s.message_reference),
        Tpdu::StatusReport(r) => Some(r.message_reference),
        Tpdu::Command(c) => Some(c.message_reference),
        _ => None,
    }
}

fn pid(pdu: &Pdu) -> Option<u8> {
    match &pdu.tpdu {
        Tpdu::Deliver(d) => Some(d.pid.0),
        Tpdu::Submit(s) => Some(s.pid.0),
        Tpdu::StatusReport(r) => r.pid.map(|p| p.0),
        Tpdu::Command(c) => Some(c.pid.0),
        _ => None,
    }
}

fn validity(pdu: &Pdu) -> Option<ValidityPeriod> {
    match &pdu.tpdu {
        Tpdu::Submit(s) => s.validity,
        _ => None,
    }
}

fn concat_matches(pdu: &Pdu, exp: &Value) -> bool {
    let Some(c) = ud(pdu)
        .and_then(|u| u.header.as_ref())
        .and_then(|h| h.concat())
    else {
        return false;
    };
    let bits_ok = match exp.get("ref_bits").and_then(Value::as_u64) {
        Some(16) => c.wide,
        Some(_) => !c.wide,
        None => true,
    };
    exp["ref"].as_u64() == Some(u64::from(c.reference))
        && exp["parts"].as_u64() == Some(u64::from(c.total))
        && exp["seq"].as_u64() == Some(u64::from(c.seq))
        && bits_ok
}

/// Parses the corpus's English durations (`4 days`, `52 weeks`).
fn english_duration(s: &str) -> Option<Duration> {
    let mut it = s.split_whitespace();
    let n: u64 = it.next()?.parse().ok()?;
    let unit = match it.next()?.trim_end_matches('s') {
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        "week" => 604_800,
        _ => return None,
    };
    Some(Duration::from_secs(n * unit))
}

fn rfc3339(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

fn check_expect(t: &mut Tally, name: &str, rec: &Value, pdu: &Pdu, bytes: &[u8]) {
    let Some(expect) = rec["expect"].as_object() else {
        return;
    };
    for (key, exp) in expect {
        let k = key.as_str();
        if NOT_CODEC.contains(&k) {
            *t.skipped
                .entry(format!("{k} (not a codec value)"))
                .or_default() += 1;
            continue;
        }
        let got: Result<bool, String> = match k {
            "smsc" => Ok(match exp.as_str() {
                None | Some("") => pdu.smsc.is_none(),
                Some(e) => pdu.smsc.as_ref().is_some_and(|a| addr_matches(a, e)),
            }),
            "smsc_ton" => Ok(pdu.smsc.as_ref().is_some_and(|a| a.ton.name() == s(exp))),
            "smsc_npi" => Ok(pdu.smsc.as_ref().is_some_and(|a| a.npi.name() == s(exp))),
            "number" | "recipient" => Ok(address(pdu).is_some_and(|a| addr_matches(a, s(exp)))),
            "number_ton" => Ok(address(pdu).is_some_and(|a| a.ton.name() == s(exp))),
            "number_npi" => Ok(address(pdu).is_some_and(|a| a.npi.name() == s(exp))),
            "number_toa" => Ok(address(pdu).map(|a| u64::from(a.toa())) == exp.as_u64()),
            "text" => Ok(text(pdu) == exp.as_str()),
            "data_hex" => Ok(match ud(pdu).map(|u| &u.body) {
                Some(Body::Data(d)) => hex::encode_upper(d) == s(exp).to_uppercase(),
                _ => false,
            }),
            "timestamp" => Ok(rfc(scts(pdu)) == mm_time(s(exp))),
            "time" | "sent_time" => Ok(rfc(scts(pdu)) == s(exp)),
            "discharge" | "delivery_time" | "dt" => Ok(rfc(discharge(pdu)) == s(exp)),
            "scts" => Ok(match exp {
                Value::String(e) => rfc(scts(pdu)) == *e,
                _ => scts(pdu).is_some_and(|ts| {
                    let f = ts.fields();
                    let want = ["year", "month", "day", "hour", "minute", "second"];
                    want.iter()
                        .zip(f)
                        .all(|(w, v)| exp[*w].as_u64() == v.map(u64::from))
                        && exp["tz_quarter_hours"].as_i64() == ts.tz_quarters().map(i64::from)
                }),
            }),
            "date_utc" => Ok(naive(scts(pdu), true) == s(exp)),
            "scts_local" => Ok(naive(scts(pdu), false) == s(exp)),
            "dt_local" => Ok(naive(discharge(pdu), false) == s(exp)),
            "dcs" => Ok(pdu.tpdu.dcs().map(|d| u64::from(d.raw)) == exp.as_u64()),
            "pid" | "protocol_id" => Ok(pid(pdu).map(u64::from) == exp.as_u64()),
            "mr" | "reference" => Ok(mr(pdu).map(u64::from) == exp.as_u64()),
            "udl" => Ok(ud(pdu).map(|u| u64::from(u.udl)) == exp.as_u64()),
            "ud_bytes" => Ok(ud_octets(pdu).map(|n| n as u64) == exp.as_u64()),
            "udhl" => Ok(ud(pdu)
                .and_then(|u| u.header.as_ref())
                .map(|h| h.encode_body().len() as u64)
                == exp.as_u64()),
            "tpdu_len" => Ok(Some(pdu.tpdu_len as u64) == exp.as_u64()),
            "first_octet" => Ok(Some(u64::from(first_octet(pdu))) == exp.as_u64()),
            "vpf" => Ok(match validity(pdu) {
                Some(ValidityPeriod::Relative(_)) => s(exp) == "relative",
                Some(ValidityPeriod::Absolute(_)) => s(exp) == "absolute",
                Some(ValidityPeriod::Enhanced(_)) => s(exp) == "enhanced",
                None => s(exp) == "none",
            }),
            "vp_relative" => Ok(
                matches!(validity(pdu), Some(ValidityPeriod::Relative(v)) if Some(u64::from(v)) == exp.as_u64()),
            ),
            "vp_relative_duration_minutes" => Ok(validity(pdu)
                .and_then(|v| v.duration())
                .map(|d| d.as_secs() / 60)
                == exp.as_u64()),
            "validity" => Ok(match (validity(pdu), s(exp).split_once(" (")) {
                (Some(v @ ValidityPeriod::Relative(_)), Some((d, "relative)"))) => {
                    english_duration(d) == v.duration()
                }
                (Some(ValidityPeriod::Absolute(ts)), Some((d, "absolute)"))) => {
                    ts.to_datetime() == rfc3339(d)
                }
                _ => false,
            }),
            "concat" => Ok(concat_matches(pdu, exp)),
            "concat_parts" | "concat_seq" => {
                let c = ud(pdu)
                    .and_then(|u| u.header.as_ref())
                    .and_then(|h| h.concat());
                let (parts, seq) = c.map_or((1, 1), |c| (c.total, c.seq));
                let v = if k == "concat_parts" { parts } else { seq };
                Ok(Some(u64::from(v)) == exp.as_u64())
            }
            "multipart" => Ok(ud(pdu)
                .and_then(|u| u.header.as_ref())
                .and_then(|h| h.concat())
                .is_some_and(|c| c.total > 1)
                == exp.as_bool().unwrap_or(false)),
            "ports" => Ok(ud(pdu)
                .and_then(|u| u.header.as_ref())
                .and_then(|h| h.ports())
                .is_some_and(|p| {
                    exp["dst"].as_u64() == Some(u64::from(p.dst))
                        && exp
                            .get("src")
                            .map_or(true, |v| v.as_u64() == Some(u64::from(p.src)))
                        && exp["bits"].as_u64() == Some(u64::from(p.bits))
                })),
            "udh" => Ok(exp.as_array().is_some_and(|list| {
                list.iter()
                    .all(|ie| ie.get("concat").is_some_and(|c| concat_matches(pdu, c)))
            })),
            "udh_text_formatting" => Ok(exp.as_array().is_some_and(|list| {
                let ies: Vec<_> = ud(pdu)
                    .and_then(|u| u.header.as_ref())
                    .map(|h| h.ies.iter().filter(|ie| ie.iei() == 0x0A).collect())
                    .unwrap_or_default();
                ies.len() == list.len()
                    && ies.iter().zip(list).all(|(ie, e)| match ie {
                        smsgate::pdu::Ie::Other { data, .. } => {
                            data.len() as u64 == e["ie_len"].as_u64().unwrap_or(0)
                                && data.first().map(|&v| u64::from(v)) == e["start"].as_u64()
                                && data.get(1).map(|&v| u64::from(v)) == e["span"].as_u64()
                                && data.get(2).map(|&v| u64::from(v)) == e["format"].as_u64()
                        }
                        _ => false,
                    })
            })),
            "status" => Ok(match &pdu.tpdu {
                Tpdu::StatusReport(r) => match exp {
                    Value::String(n) if n == "DELIVERED" => {
                        r.status.class() == StatusClass::Delivered
                    }
                    v => v.as_u64() == Some(u64::from(r.status.0)),
                },
                _ => false,
            }),
            "delivered" => Ok(match &pdu.tpdu {
                Tpdu::StatusReport(r) => {
                    (r.status.class() == StatusClass::Delivered) == exp.as_bool().unwrap_or(false)
                }
                _ => false,
            }),
            "pi" => Ok(match &pdu.tpdu {
                Tpdu::StatusReport(r) => r.parameter_indicator.map(u64::from) == exp.as_u64(),
                _ => false,
            }),
            "alphabet" => Ok(pdu.tpdu.dcs().map(|d| d.alphabet.name()) == exp.as_str()),
            "compressed" => Ok(pdu.tpdu.dcs().map(|d| d.compressed) == exp.as_bool()),
            "type" | "gammu_pdu_type" => Ok(matches!(
                (s(exp), pdu.tpdu.kind()),
                ("SMS-DELIVER" | "SMS_Deliver", "deliver")
                    | ("SMS-SUBMIT" | "SMS_Submit", "submit")
                    | ("SMS-STATUS-REPORT" | "SMS_Status_Report", "status-report")
            )),
            "mwi" => Ok(pdu
                .tpdu
                .dcs()
                .and_then(|d| d.mwi)
                .is_some_and(|m| m.active == (s(exp) == "set"))),
            "mwi_dont_store" => Ok(pdu
                .tpdu
                .dcs()
                .and_then(|d| d.mwi)
                .is_some_and(|m| m.discard == exp.as_bool().unwrap_or(false))),
            "mwi_dcs_decodes" => Ok(pdu.tpdu.dcs().and_then(|d| d.mwi).is_some()),
            "is_replace" => Ok(pid(pdu).is_some_and(|p| ProtocolId(p).replace_type().is_some())),
            "datagram_decodes" => Ok(pdu
                .tpdu
                .dcs()
                .is_some_and(|d| d.alphabet == Alphabet::Data8)
                && ud(pdu)
                    .and_then(|u| u.header.as_ref())
                    .and_then(|h| h.ports())
                    .is_some()),
            "reencode_identical" => Ok(pdu.encode().is_ok_and(|b| b == bytes)),
            "gammu_parse" | "parse_ok" => Ok(true),
            "lenient_text" => Ok(false),
            "encoded_from" => check_encoder(rec, pdu),
            _ => Err(format!("unknown key {k}")),
        };
        match got {
            Ok(ok) => t.check(name, k, ok, || {
                format!(
                    "expected {exp}, decoded {}",
                    smsgate::pdu::json::to_json(pdu)
                )
            }),
            Err(skip) => *t.skipped.entry(skip).or_default() += 1,
        }
    }
}

fn number(s: &str) -> Address {
    Address::parse_number(s).unwrap()
}

/// gammu `sent` (`20070605T135630`, local time written with TZ 00).
fn gammu_time(s: &str) -> Option<Timestamp> {
    let d = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u8>().ok());
    Some(Timestamp::new(
        d(2..4)?,
        d(4..6)?,
        d(6..8)?,
        d(9..11)?,
        d(11..13)?,
        d(13..15)?,
        0,
    ))
}

/// Re-encodes from the inputs the source gave its encoder; `Err` when we
/// cannot express those inputs (counted as skipped, with the reason).
fn check_encoder(rec: &Value, pdu: &Pdu) -> Result<bool, String> {
    let e = &rec["expect"]["encoded_from"];
    let name = s(&rec["name"]);
    let want = s(&rec["pdu"]).to_uppercase();
    let source = s(&rec["source"]);
    if rec.get("collector_note").is_some() {
        return Err(
            "encoded_from: gammu substituted or truncated the input text (collector_note)".into(),
        );
    }
    let smsc = e["smsc"].as_str().filter(|s| !s.is_empty()).map(number);
    let to = number(s(&e["number"]));
    let text = s(&e["text"]);
    let mut opts = SubmitOptions {
        smsc: smsc.clone(),
        ..SubmitOptions::default()
    };
    if source.starts_with("gammu/") {
        if rec["kind"] == "deliver" {
            // gammu writes an SMS-DELIVER with TP-MMS 0 and the sent time in TZ 00.
            let ucs2 = e["coding"] == "Unicode";
            let dcs = Dcs::general(if ucs2 { Alphabet::Ucs2 } else { Alphabet::Gsm7 }, None);
            let d = Deliver {
                first_octet: 0,
                more_messages: true,
                status_report_indication: false,
                reply_path: false,
                originator: to,
                pid: ProtocolId(0),
                dcs,
                scts: gammu_time(s(&e["sent"])).ok_or("encoded_from: bad sent time")?,
                user_data: UserData {
                    udl: 0,
                    header: None,
                    body: Body::Text(text.to_string()),
                    tables: Tables::default(),
                },
            };
            let mut out = Vec::new();
            match &smsc {
                Some(a) => a.encode_smsc(&mut out).map_err(|e| e.to_string())?,
                None => out.push(0),
            }
            d.encode(&mut out).map_err(|e| e.to_string())?;
            return Ok(hex::encode_upper(out) == want);
        }
        opts.force_ucs2 = e["coding"] == "Unicode";
        opts.validity = Some(ValidityPeriod::Relative(0xFF));
    } else if source.starts_with("pmarti/python-messaging") {
        opts.message_reference = e["ref"].as_u64().unwrap_or(0) as u8;
        opts.class = e["class"]
            .as_u64()
            .map(|c| MessageClass::from_bits(c as u8));
        opts.status_report = e["request_status_report"].as_bool().unwrap_or(false);
        opts.validity = e["validity_relative"]
            .as_str()
            .and_then(english_duration)
            .map(ValidityPeriod::relative_from);
        if let Some(abs) = e["validity_absolute"].as_str() {
            // "2010-07-25T20:15:39 (naive datetime, encoded with TZ 00)"
            let t =
                rfc3339(&format!("{}Z", abs.split(' ').next().unwrap_or(""))).ok_or("bad time")?;
            opts.validity = Some(ValidityPeriod::Absolute(Timestamp::from_datetime(t)));
        }
        if let Some(r) = e["concat_ref"].as_u64() {
            opts.reference = r as u16;
        }
        if e["dcs"].as_u64() == Some(4) {
            // 8-bit text: build the SUBMIT by hand from the same fields.
            let mut p = pdu.clone();
            if let Tpdu::Submit(sub) = &mut p.tpdu {
                sub.user_data.body = Body::Data(text.as_bytes().to_vec());
                sub.message_reference = opts.message_reference;
                sub.destination = to;
            }
            p.smsc = smsc;
            return Ok(p.encode().is_ok_and(|b| hex::encode_upper(b) == want));
        }
    } else if source.starts_with("faucamp/python-gsmmodem") {
        opts.message_reference = e["reference"].as_u64().unwrap_or(0) as u8;
        opts.status_report = e["requestStatusReport"].as_bool().unwrap_or(false);
        opts.reject_duplicates = e["rejectDuplicates"].as_bool().unwrap_or(false);
        opts.validity = match e["validity"].as_str() {
            None => None,
            Some(v) => Some(match rfc3339(v.split(' ').next().unwrap_or("")) {
                Some(t) => ValidityPeriod::Absolute(Timestamp::from_datetime(t)),
                None => ValidityPeriod::relative_from(english_duration(v).ok_or("bad validity")?),
            }),
        };
        if let Some(v) = s(&rec["expect"]["validity"]).strip_suffix(" (absolute)") {
            let t = rfc3339(v).ok_or("bad time")?;
            opts.validity = Some(ValidityPeriod::Absolute(Timestamp::from_datetime(t)));
        }
    } else if source.starts_with("linux-mobile-broadband/ModemManager") {
        // MM's validity is in minutes.
        opts.validity = e["validity_relative"]
            .as_u64()
            .map(|m| ValidityPeriod::relative_from(Duration::from_secs(m * 60)));
        opts.class = e["class"]
            .as_u64()
            .map(|c| MessageClass::from_bits(c as u8));
    } else if source.starts_with("sailfishos-native/ofono") {
        // ofono's sms_text_prepare() default validity: 0xA7 (24 hours).
        opts.validity = Some(ValidityPeriod::Relative(0xA7));
        opts.reference = e["concat_ref"].as_u64().unwrap_or(0) as u16;
        opts.ref16 = e["use_16bit_ref"].as_bool().unwrap_or(false);
    } else {
        return Err(format!("encoded_from: no encoder mapping for {source}"));
    }
    let parts = encode_submit(&to, text, &opts).map_err(|e| format!("{name}: {e}"))?;
    // For a multipart vector, compare the part it is.
    let seq = ud(pdu)
        .and_then(|u| u.header.as_ref())
        .and_then(|h| h.concat())
        .map_or(1, |c| usize::from(c.seq));
    Ok(parts.get(seq - 1).is_some_and(|p| p.hex() == want))
}

fn must_fail(rec: &Value) -> bool {
    let e = &rec["expect"];
    rec["kind"] == "invalid"
        || e["parse_ok"] == Value::Bool(false)
        || e["gammu_parse"] == "error"
        || e.get("strict_parse").is_some()
}

fn run_file(t: &mut Tally, path: &Path) {
    let body = std::fs::read_to_string(path).unwrap();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let rec: Value = serde_json::from_str(line).unwrap();
        t.records += 1;
        let name = s(&rec["name"]).to_string();
        let opts = DecodeOptions {
            smsc: rec["smsc_included"].as_bool().unwrap_or(true),
            tables: tables_of(&rec),
            ..DecodeOptions::default()
        };
        let hex = s(&rec["pdu"]);
        let res = decode_hex(hex, opts);
        if must_fail(&rec) {
            t.check(&name, "must fail", res.is_err(), || {
                format!("decoded although the source says it must fail: {res:?}")
            });
            if let Err(e) = &res {
                // The error names a field and an offset inside the input.
                t.check(&name, "error offset", matches!(e, smsgate::pdu::PduError::Malformed { offset, .. } if *offset <= hex.len() / 2), || e.to_string());
            }
            continue;
        }
        match res {
            Ok(pdu) => {
                t.check(&name, "kind", pdu.tpdu.kind() == s(&rec["kind"]), || {
                    format!("kind {} != {}", pdu.tpdu.kind(), rec["kind"])
                });
                let bytes = hex::decode(hex).unwrap_or_default();
                check_expect(t, &name, &rec, &pdu, &bytes);
            }
            Err(e) => t.check(&name, "decode", false, || format!("{e}")),
        }
    }
}

#[test]
fn corpus_pdu_vectors() {
    let Some(dir) = common::corpus("PDU corpus (pdu/*.jsonl)") else {
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(dir.join("pdu"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .filter(|p| !p.ends_with("field-vectors.jsonl"))
        .collect();
    files.sort();
    let mut t = Tally::default();
    for f in &files {
        run_file(&mut t, f);
    }
    for (k, why) in &t.deviations {
        eprintln!("DEVIATION {k}: {why}");
    }
    for (k, n) in &t.skipped {
        eprintln!("SKIPPED {n}x {k}");
    }
    for f in &t.failures {
        eprintln!("FAIL {f}");
    }
    eprintln!(
        "pdu corpus: {} records, {} checks: {} passed, {} deviations, {} skipped, {} failed",
        t.records,
        t.checks,
        t.passed,
        t.deviations.len(),
        t.skipped.values().sum::<usize>(),
        t.failures.len()
    );
    assert_eq!(t.records, 393, "the corpus README promises 393 PDU vectors");
    assert!(
        t.failures.is_empty(),
        "{} corpus checks failed",
        t.failures.len()
    );
}

/// Field vectors whose asserted value is one library's rule, not the spec.
const FIELD_DEVIATIONS: &[(&str, &str, &str)] = &[
    (
        "vp_relative",
        "6 minutes",
        "python-messaging rounds a validity down (6 min -> 5 min, 0x00); we round up (0x01, \
         10 min) so a message never expires earlier than asked",
    ),
    (
        "vp_relative",
        "4 minutes",
        "python-messaging refuses validities below 5 minutes; we use the shortest one (0x00)",
    ),
    (
        "vp_relative",
        "64 weeks",
        "python-messaging refuses validities above 63 weeks; we use the longest one (0xFF)",
    ),
];

#[test]
fn corpus_field_vectors() {
    use smsgate::pdu::address::{decode_semi_octets, parse_address, parse_smsc};
    use smsgate::pdu::time::parse_timestamp;
    use smsgate::pdu::udh::parse_ies;
    use smsgate::pdu::Field;

    let Some(dir) = common::corpus("PDU field vectors (pdu/field-vectors.jsonl)") else {
        return;
    };
    let body = std::fs::read_to_string(dir.join("pdu/field-vectors.jsonl")).unwrap();
    let (mut passed, mut deviations, mut other, mut failures) = (0, 0, 0, Vec::new());
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let rec: Value = serde_json::from_str(line).unwrap();
        let field = s(&rec["field"]);
        let dir = s(&rec["direction"]);
        let (decode, encode) = (dir != "encode", dir != "decode");
        let hexs = rec["hex"].as_str().unwrap_or("").to_uppercase();
        let bytes = hex::decode(&hexs).unwrap_or_default();
        let value = &rec["value"];
        let v = s(value);
        let ok: bool = match field {
            "semi_octets" => {
                let count = bytes.len() * 2
                    - usize::from(
                        hexs.ends_with('F')
                            && hexs.len() % 2 == 0
                            && bytes.last().is_some_and(|b| b >> 4 == 0xF),
                    );
                let dec_ok = decode_semi_octets(&bytes, count).as_deref() == Ok(v);
                let enc_ok = !encode || {
                    let nib: Vec<u8> = v.bytes().map(|b| b - b'0').collect();
                    smsgate::pdu::address::pack_semi_octets(&nib) == bytes
                };
                dec_ok && enc_ok
            }
            "address" | "smsc_address" => {
                let consumed = rec["note"]
                    .as_str()
                    .and_then(|n| n.split("octets consumed: ").nth(1))
                    .and_then(|n| n.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse::<usize>().ok());
                let dec_ok = !decode || {
                    let parsed = if field == "address" {
                        parse_address(Field::OriginatingAddress)(&bytes)
                            .map(|(r, a)| (r.len(), Some(a)))
                    } else {
                        parse_smsc(&bytes).map(|(r, a)| (r.len(), a))
                    };
                    parsed.is_ok_and(|(rest, a)| {
                        a.is_some_and(|a| a.to_string() == v)
                            && consumed.map_or(true, |n| n == bytes.len() - rest)
                    })
                };
                let enc_ok = !encode || {
                    // The type comes from the vector's TOA octet: this checks the
                    // value coding, not how a type is guessed from text.
                    let toa = bytes.get(1).copied().unwrap_or(0x81);
                    let a = Address {
                        ton: smsgate::pdu::TypeOfNumber::from_bits(toa >> 4),
                        npi: smsgate::pdu::NumberingPlan::from_bits(toa),
                        value: v.trim_start_matches('+').to_string(),
                    };
                    let mut out = Vec::new();
                    let r = if field == "address" {
                        a.encode(&mut out)
                    } else {
                        a.encode_smsc(&mut out)
                    };
                    r.is_ok() && out == bytes
                };
                dec_ok && enc_ok
            }
            "scts" => {
                let dec_ok = !decode
                    || parse_timestamp(Field::ServiceCentreTimestamp)(&bytes)
                        .is_ok_and(|(_, t)| t.to_rfc3339().as_deref() == Some(v));
                let enc_ok = !encode
                    || rfc3339(v)
                        .is_some_and(|t| Timestamp::from_datetime(t).raw.as_slice() == bytes);
                dec_ok && enc_ok
            }
            "scts_timezone_octet" => {
                // The source writes the octet with its semi-octets in reading
                // order; the wire octet is the swap.
                let octet = bytes.first().map_or(0, |b| b.rotate_left(4));
                let t = Timestamp {
                    raw: [0x21, 0x10, 0x10, 0, 0, 0, octet],
                };
                let hours: i64 = v
                    .split_whitespace()
                    .next()
                    .and_then(|h| h.parse().ok())
                    .unwrap_or(99);
                t.tz_quarters().map(i64::from) == Some(hours * 4)
            }
            "vp_relative" => {
                let d = english_duration(v);
                match rec["hex"].as_str() {
                    None => false, // the source refuses; we clamp (see FIELD_DEVIATIONS)
                    Some(_) => {
                        let b = bytes.first().copied().unwrap_or(0);
                        let dec_ok = !decode || Some(ValidityPeriod::relative_duration(b)) == d;
                        let enc_ok = !encode
                            || d.map(ValidityPeriod::relative_from)
                                == Some(ValidityPeriod::Relative(b));
                        dec_ok && enc_ok
                    }
                }
            }
            "udh_ie" | "udh_ies" => match parse_ies(&bytes) {
                Ok((_, udh)) => {
                    let c_ok = value.get("concat").map_or(true, |c| {
                        udh.concat().is_some_and(|got| {
                            c["ref"].as_u64() == Some(u64::from(got.reference))
                                && c["parts"].as_u64() == Some(u64::from(got.total))
                                && c["seq"].as_u64() == Some(u64::from(got.seq))
                                && c["ref_bits"].as_u64() == Some(if got.wide { 16 } else { 8 })
                        })
                    });
                    let p_ok = value.get("ports").map_or(true, |p| {
                        udh.ports().is_some_and(|got| {
                            p["dst"].as_u64() == Some(u64::from(got.dst))
                                && p["src"].as_u64() == Some(u64::from(got.src))
                                && p["bits"].as_u64() == Some(u64::from(got.bits))
                        })
                    });
                    let enc_ok = !encode || udh.encode_body() == bytes;
                    c_ok && p_ok && enc_ok
                }
                Err(_) => false,
            },
            _ => {
                // gsm7_packed, ucs2, gsm7_encode_*: the alphabet tests own them.
                other += 1;
                continue;
            }
        };
        if ok {
            passed += 1;
        } else if let Some((_, _, why)) = FIELD_DEVIATIONS
            .iter()
            .find(|(f, val, _)| *f == field && *val == v)
        {
            deviations += 1;
            eprintln!("DEVIATION {field} {v:?}: {why}");
        } else {
            failures.push(format!("{field} {hexs} {value}"));
        }
    }
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    eprintln!(
        "field vectors: {passed} passed, {deviations} deviations, {other} left to the alphabet tests, {} failed",
        failures.len()
    );
    assert!(failures.is_empty());
}

/// The real `smsgate pdu` binary, without the corpus.
mod cli {
    use std::io::Write;
    use std::process::{Command, Output, Stdio};

    fn smsgate(args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_smsgate"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        child.wait_with_output().unwrap()
    }

    fn json_lines(out: &Output) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn decode_prints_one_json_object_per_pdu() {
        // Hand-made: SMSC +44770009123, DELIVER from +4477000910, "hi".
        let deliver = "07914477009021F3040A91447700900100004220923295854002E834";
        let report = "00062A05A12143F5422092329585404220923295854046";
        let out = smsgate(&["pdu", "decode", deliver, report], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = json_lines(&out);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0]["type"], "deliver");
        assert_eq!(v[0]["smsc"], "+44770009123");
        assert_eq!(v[0]["from"], "+4477000910");
        assert_eq!(v[0]["timestamp"], "2024-02-29T23:59:58+01:00");
        assert_eq!(v[0]["alphabet"], "gsm7");
        assert_eq!(v[0]["text"], "hi");
        assert_eq!(v[0]["concat"], serde_json::Value::Null);
        assert_eq!(v[0]["class"], serde_json::Value::Null);
        assert_eq!(v[0]["report_requested"], false);
        assert_eq!(v[1]["type"], "status-report");
        assert_eq!(v[1]["smsc"], serde_json::Value::Null);
        assert_eq!(v[1]["recipient"], "12345");
        assert_eq!(v[1]["reference"], 42);
        assert_eq!(v[1]["discharge_time"], "2024-02-29T23:59:58+01:00");
        assert_eq!(v[1]["status"]["code"], 0x46);
        assert_eq!(v[1]["status"]["class"], "permanent");
        assert_eq!(v[1]["status"]["meaning"], "SM validity period expired");
    }

    #[test]
    fn decode_reads_stdin_and_bare_tpdus() {
        let out = smsgate(
            &["pdu", "decode", "--no-smsc"],
            Some("040491361900005150713220052308C8303A8C0EA3C3\n"),
        );
        assert!(out.status.success());
        let v = json_lines(&out);
        assert_eq!(v[0]["text"], "Hahahaha");
        assert_eq!(v[0]["timestamp"], "2015-05-17T23:02:50+08:00");
    }

    #[test]
    fn bad_pdu_exits_1_naming_field_and_offset() {
        let out = smsgate(&["pdu", "decode", "07914477009021F3040A9144770090"], None);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: TP-OA at octet 11"), "{err}");
        assert!(out.stdout.is_empty());
        let out = smsgate(&["pdu", "decode", "0xyz"], None);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("hex"));
    }

    #[test]
    fn encode_prints_length_and_hex_per_part() {
        let out = smsgate(
            &[
                "pdu",
                "encode",
                "--to",
                "+27820001111",
                "--text",
                "Hello World!",
            ],
            None,
        );
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "24 0001000B917228001011F100000CC8329BFD065DDF72363904\n"
        );
        let long = "x".repeat(200);
        let out = smsgate(
            &[
                "pdu",
                "encode",
                "--to",
                "12345",
                "--smsc",
                "+4477",
                "--report",
                "--flash",
                "--validity",
                "1d",
                "--ref",
                "9",
            ],
            Some(&format!("{long}\n")),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 2);
        for (i, l) in lines.iter().enumerate() {
            let (len, hex) = l.split_once(' ').unwrap();
            // SMSC field 03 91 4477, then the TPDU of the stated length.
            assert!(hex.starts_with("03914477"));
            assert_eq!(len.parse::<usize>().unwrap(), hex.len() / 2 - 4);
            let out = smsgate(&["pdu", "decode", hex], None);
            let v = &json_lines(&out)[0];
            assert_eq!(v["to"], "12345");
            assert_eq!(v["class"], 0);
            assert_eq!(v["report_requested"], true);
            assert_eq!(v["validity"]["seconds"], 86_400);
            assert_eq!(v["concat"]["ref"], 9);
            assert_eq!(v["concat"]["seq"], i + 1);
        }
    }

    #[test]
    fn encode_rejects_bad_arguments() {
        for args in [
            &["pdu", "encode", "--to", "12ab", "--text", "x"][..],
            &[
                "pdu",
                "encode",
                "--to",
                "1",
                "--text",
                "x",
                "--validity",
                "soon",
            ],
            &["pdu", "encode", "--to", "1", "--text", "x", "--ref", "300"],
        ] {
            let out = smsgate(args, None);
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
        }
    }
}
