//! Building PDUs from text: SMS-SUBMIT for sending (what AT+CMGS takes,
//! TS 27.005 §3.5.1), and SMS-DELIVER / SMS-STATUS-REPORT as a network would
//! send them (for the simulator). Text goes in GSM 7-bit when every
//! character fits the tables in force, else UCS-2, and is split into
//! concatenated parts (TS 23.040 §9.2.3.24.1) on character boundaries, so an
//! escape sequence or a surrogate pair is never cut in two.

use std::fmt;

use super::address::Address;
use super::dcs::{Alphabet, Dcs, MessageClass, ProtocolId};
use super::error::PduError;
use super::gsm7::{self, NationalLanguage, Tables};
use super::status::Status;
use super::time::{Timestamp, ValidityPeriod};
use super::tpdu::{Deliver, StatusReport, Submit};
use super::ucs2;
use super::ud::{header_septets, Body, UserData, MAX_OCTETS, MAX_SEPTETS};
use super::udh::{Ie, Ports, Udh};

/// Most parts one message may have (the concat IE counts in one octet).
pub const MAX_PARTS: usize = 255;

/// One encoded PDU, ready for AT+CMGS / +CMT: the SMSC field (`00` when
/// none) followed by the TPDU, and the TPDU's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPdu {
    /// Octets of the TPDU alone: the `<length>` of AT+CMGS (TS 27.005
    /// §3.5.1).
    pub tpdu_len: usize,
    /// SMSC field and TPDU.
    pub octets: Vec<u8>,
}

impl EncodedPdu {
    /// The octets in upper-case hex, as typed after the `> ` prompt.
    pub fn hex(&self) -> String {
        hex::encode_upper(&self.octets)
    }
}

impl fmt::Display for EncodedPdu {
    /// `<TPDU length> <hex>`, the CLI's line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.tpdu_len, self.hex())
    }
}

/// Options of [`encode_submit`].
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    /// SMSC to put in the PDU; `None` writes `00` (use the SIM's).
    pub smsc: Option<Address>,
    /// TP-SRR: ask for a status report.
    pub status_report: bool,
    /// Message class; `Some(Class0)` is a flash message.
    pub class: Option<MessageClass>,
    /// TP-VP in any of its formats.
    pub validity: Option<ValidityPeriod>,
    /// TP-RD: the SC rejects a duplicate of a message it still holds.
    pub reject_duplicates: bool,
    /// Use UCS-2 even when the text fits GSM 7-bit.
    pub force_ucs2: bool,
    /// National languages whose shift tables may be used (signalled with IEI
    /// 0x24/0x25); empty means the default alphabet only.
    pub national: Vec<NationalLanguage>,
    /// Concatenation reference for multipart messages (the low 8 bits unless
    /// `ref16`).
    pub reference: u16,
    /// Use the 16-bit reference element (IEI 0x08).
    pub ref16: bool,
    /// TP-MR (most modems replace it with their own counter).
    pub message_reference: u8,
}

/// Options of [`encode_deliver`] and [`encode_deliver_data`].
#[derive(Debug, Clone)]
pub struct DeliverOptions {
    /// SMSC written in front; `None` writes `00`.
    pub smsc: Option<Address>,
    /// TP-SCTS (the codec has no clock: the caller passes the time).
    pub scts: Timestamp,
    /// Message class; `Some(Class0)` is a flash message.
    pub class: Option<MessageClass>,
    /// Use UCS-2 even when the text fits GSM 7-bit.
    pub force_ucs2: bool,
    /// National languages whose shift tables may be used.
    pub national: Vec<NationalLanguage>,
    /// Concatenation reference.
    pub reference: u16,
    /// Use the 16-bit reference element.
    pub ref16: bool,
    /// TP-PID.
    pub pid: u8,
    /// TP-SRI: the sender asked for a status report.
    pub status_report_indication: bool,
    /// Application ports (IEI 0x04/0x05), e.g. for WAP push.
    pub ports: Option<Ports>,
}

impl Default for DeliverOptions {
    fn default() -> Self {
        DeliverOptions {
            smsc: None,
            scts: Timestamp::new(0, 1, 1, 0, 0, 0, 0),
            class: None,
            force_ucs2: false,
            national: Vec::new(),
            reference: 0,
            ref16: false,
            pid: 0,
            status_report_indication: false,
            ports: None,
        }
    }
}

/// Text cut into parts, each already in its alphabet.
#[derive(Debug, Clone)]
struct Split {
    alphabet: Alphabet,
    tables: Tables,
    /// Septets (GSM 7-bit) or octets (UCS-2 / 8-bit) of each part.
    parts: Vec<Vec<u8>>,
    /// The text of each part (empty for data).
    texts: Vec<String>,
}

/// Octets the national language elements take for `tables`.
fn shift_ie_octets(tables: Tables) -> usize {
    3 * (usize::from(tables.locking != NationalLanguage::Default)
        + usize::from(tables.single != NationalLanguage::Default))
}

/// Cuts `text` into pieces of at most `cap` units, where `prefix` gives the
/// byte length of the longest prefix that fits (whole characters only, so
/// escapes and surrogate pairs stay together).
fn chunks(text: &str, cap: usize, prefix: impl Fn(&str, usize) -> usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        // A cap below the widest character would stall; take one char then.
        let n = match prefix(rest, cap) {
            0 => rest.chars().next().map_or(rest.len(), char::len_utf8),
            n => n,
        };
        let (head, tail) = rest.split_at(n);
        out.push(head.to_owned());
        rest = tail;
    }
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

/// Septet capacity of one part whose header has `hdr` octets (0: none).
fn septet_cap(hdr: usize) -> usize {
    if hdr == 0 {
        MAX_SEPTETS
    } else {
        MAX_SEPTETS - header_septets(hdr + 1).0
    }
}

/// Octet capacity of one part whose header has `hdr` octets (0: none).
fn octet_cap(hdr: usize) -> usize {
    if hdr == 0 {
        MAX_OCTETS
    } else {
        MAX_OCTETS - (hdr + 1)
    }
}

fn split_text(
    text: &str,
    force_ucs2: bool,
    allowed: &[NationalLanguage],
    ref16: bool,
    extra_hdr: usize,
) -> Result<Split, PduError> {
    let concat_ie = if ref16 { 6 } else { 5 };
    let tables = if force_ucs2 {
        None
    } else {
        gsm7::best_tables(text, allowed)
    };
    let chunks = match tables {
        Some(t) => {
            let fixed = shift_ie_octets(t) + extra_hdr;
            let total = gsm7::septet_count(text, t).unwrap_or(usize::MAX);
            if total <= septet_cap(fixed) {
                vec![text.to_owned()]
            } else {
                // best_tables guarantees every character encodes.
                chunks(text, septet_cap(fixed + concat_ie), |s, n| {
                    gsm7::prefix_len(s, t, n).unwrap_or(s.len())
                })
            }
        }
        None => {
            if ucs2::unit_count(text) * 2 <= octet_cap(extra_hdr) {
                vec![text.to_owned()]
            } else {
                chunks(text, octet_cap(extra_hdr + concat_ie) / 2, ucs2::prefix_len)
            }
        }
    };
    if chunks.len() > MAX_PARTS {
        return Err(PduError::encode(
            "text",
            format!("needs {} parts, more than {MAX_PARTS}", chunks.len()),
        ));
    }
    let mut parts = Vec::with_capacity(chunks.len());
    for chunk in &chunks {
        parts.push(match tables {
            Some(t) => {
                gsm7::encode(chunk, t).map_err(|e| PduError::encode("text", e.to_string()))?
            }
            None => ucs2::encode(chunk),
        });
    }
    Ok(Split {
        alphabet: if tables.is_some() {
            Alphabet::Gsm7
        } else {
            Alphabet::Ucs2
        },
        tables: tables.unwrap_or_default(),
        parts,
        texts: chunks,
    })
}

/// The header of part `seq` (from 1) of `total`, or `None` when nothing
/// needs signalling.
fn part_header(
    seq: usize,
    total: usize,
    reference: u16,
    ref16: bool,
    tables: Tables,
    ports: Option<Ports>,
) -> Option<Udh> {
    let mut ies = Vec::new();
    if total > 1 {
        // MAX_PARTS keeps these within a u8.
        let (total, seq) = (total.min(MAX_PARTS) as u8, seq.min(MAX_PARTS) as u8);
        ies.push(if ref16 {
            Ie::Concat16 {
                reference,
                total,
                seq,
            }
        } else {
            Ie::Concat8 {
                reference: (reference & 0xFF) as u8,
                total,
                seq,
            }
        });
    }
    if let Some(p) = ports {
        ies.push(if p.bits == 8 && p.dst <= 0xFF && p.src <= 0xFF {
            Ie::Ports8 {
                dst: p.dst as u8,
                src: p.src as u8,
            }
        } else {
            Ie::Ports16 {
                dst: p.dst,
                src: p.src,
            }
        });
    }
    if tables.locking != NationalLanguage::Default {
        ies.push(Ie::LockingShift(tables.locking.code()));
    }
    if tables.single != NationalLanguage::Default {
        ies.push(Ie::SingleShift(tables.single.code()));
    }
    (!ies.is_empty()).then_some(Udh { ies })
}

fn ports_ie_octets(ports: Option<Ports>) -> usize {
    match ports {
        Some(p) if p.bits == 8 && p.dst <= 0xFF && p.src <= 0xFF => 4,
        Some(_) => 6,
        None => 0,
    }
}

fn finish(smsc: Option<&Address>, tpdu: &[u8]) -> Result<EncodedPdu, PduError> {
    let mut octets = Vec::with_capacity(tpdu.len() + 12);
    match smsc {
        Some(a) => a
            .encode_smsc(&mut octets)
            .map_err(|e| PduError::encode("SMSC", e))?,
        None => octets.push(0),
    }
    octets.extend_from_slice(tpdu);
    Ok(EncodedPdu {
        tpdu_len: tpdu.len(),
        octets,
    })
}

fn user_data(split: &Split, i: usize, header: Option<Udh>) -> UserData {
    let body = match split.alphabet {
        Alphabet::Data8 => Body::Data(split.parts.get(i).cloned().unwrap_or_default()),
        _ => Body::Text(split.texts.get(i).cloned().unwrap_or_default()),
    };
    UserData {
        udl: 0,
        header,
        body,
        tables: split.tables,
    }
}

/// Encodes `text` to `to` as one or more SMS-SUBMIT PDUs, in order.
pub fn encode_submit(
    to: &Address,
    text: &str,
    opts: &SubmitOptions,
) -> Result<Vec<EncodedPdu>, PduError> {
    let split = split_text(text, opts.force_ucs2, &opts.national, opts.ref16, 0)?;
    let dcs = Dcs::general(split.alphabet, opts.class);
    let total = split.parts.len();
    let mut out = Vec::with_capacity(total);
    for i in 0..total {
        let header = part_header(i + 1, total, opts.reference, opts.ref16, split.tables, None);
        let submit = Submit {
            first_octet: 0x01,
            reject_duplicates: opts.reject_duplicates,
            status_report_request: opts.status_report,
            reply_path: false,
            message_reference: opts.message_reference,
            destination: to.clone(),
            pid: ProtocolId(0),
            dcs,
            validity: opts.validity,
            user_data: user_data(&split, i, header),
        };
        let mut tpdu = Vec::with_capacity(176);
        submit.encode(&mut tpdu)?;
        out.push(finish(opts.smsc.as_ref(), &tpdu)?);
    }
    Ok(out)
}

fn deliver_parts(
    from: &Address,
    split: &Split,
    opts: &DeliverOptions,
) -> Result<Vec<EncodedPdu>, PduError> {
    let dcs = match (split.alphabet, opts.class) {
        // 8-bit data with a class: coding group 1111 (TS 23.038 §4).
        (Alphabet::Data8, Some(c)) => Dcs::from_octet(0xF4 | c.number()),
        (a, c) => Dcs::general(a, c),
    };
    let total = split.parts.len();
    let mut out = Vec::with_capacity(total);
    for i in 0..total {
        let header = part_header(
            i + 1,
            total,
            opts.reference,
            opts.ref16,
            split.tables,
            opts.ports,
        );
        let deliver = Deliver {
            first_octet: 0x04,
            more_messages: false,
            status_report_indication: opts.status_report_indication,
            reply_path: false,
            originator: from.clone(),
            pid: ProtocolId(opts.pid),
            dcs,
            scts: opts.scts,
            user_data: user_data(split, i, header),
        };
        let mut tpdu = Vec::with_capacity(176);
        deliver.encode(&mut tpdu)?;
        out.push(finish(opts.smsc.as_ref(), &tpdu)?);
    }
    Ok(out)
}

/// Encodes `text` from `from` as one or more SMS-DELIVER PDUs, in order
/// (the caller may hand them out in any order to test reassembly).
pub fn encode_deliver(
    from: &Address,
    text: &str,
    opts: &DeliverOptions,
) -> Result<Vec<EncodedPdu>, PduError> {
    let extra = ports_ie_octets(opts.ports);
    let split = split_text(text, opts.force_ucs2, &opts.national, opts.ref16, extra)?;
    deliver_parts(from, &split, opts)
}

/// Encodes 8-bit `data` from `from` as SMS-DELIVER PDUs (split into parts
/// of up to 134 octets, or 140 when it fits one).
pub fn encode_deliver_data(
    from: &Address,
    data: &[u8],
    opts: &DeliverOptions,
) -> Result<Vec<EncodedPdu>, PduError> {
    let extra = ports_ie_octets(opts.ports);
    let concat_ie = if opts.ref16 { 6 } else { 5 };
    let parts: Vec<Vec<u8>> = if data.len() <= octet_cap(extra) {
        vec![data.to_vec()]
    } else {
        data.chunks(octet_cap(extra + concat_ie))
            .map(<[u8]>::to_vec)
            .collect()
    };
    if parts.len() > MAX_PARTS {
        return Err(PduError::encode(
            "data",
            format!("needs {} parts, more than {MAX_PARTS}", parts.len()),
        ));
    }
    let split = Split {
        alphabet: Alphabet::Data8,
        tables: Tables::default(),
        texts: vec![String::new(); parts.len()],
        parts,
    };
    deliver_parts(from, &split, opts)
}

/// Encodes an SMS-STATUS-REPORT about message `mr` sent to `recipient`.
pub fn encode_status_report(
    smsc: Option<&Address>,
    mr: u8,
    recipient: &Address,
    scts: Timestamp,
    discharge_time: Timestamp,
    status: Status,
) -> Result<EncodedPdu, PduError> {
    let report = StatusReport {
        first_octet: 0x06,
        more_messages: false,
        for_command: false,
        message_reference: mr,
        recipient: recipient.clone(),
        scts,
        discharge_time,
        status,
        parameter_indicator: None,
        pid: None,
        dcs: None,
        user_data: None,
    };
    let mut tpdu = Vec::with_capacity(32);
    report.encode(&mut tpdu)?;
    finish(smsc, &tpdu)
}

/// Where the concatenation element of an encoded SMS-SUBMIT keeps its
/// reference: the octet offset of the reference within the PDU and whether
/// it is 16-bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReferenceSlot {
    /// Offset of the (first) reference octet, counted from the start of the
    /// SMSC field.
    pub offset: usize,
    /// IEI 0x08 (two octets, TS 23.040 §9.2.3.24.8) rather than IEI 0x00
    /// (one octet, §9.2.3.24.1).
    pub wide: bool,
}

/// Finds the concatenation reference in an encoded SMS-SUBMIT (SMSC field
/// and TPDU, as [`encode_submit`] writes them and the store keeps them).
/// `None` when the PDU has no user data header or no concatenation element
/// (a single-part message). Every length is checked before it is used.
pub fn find_submit_reference(pdu: &[u8]) -> Result<Option<ReferenceSlot>, PduError> {
    use super::error::{Field, Reason};
    let at = |i: usize, field: Field| {
        pdu.get(i).copied().ok_or(PduError::Malformed {
            field,
            offset: i,
            reason: Reason::Truncated {
                needed: 1,
                available: 0,
            },
        })
    };
    let bad = |field: Field, offset: usize, why: &'static str| PduError::Malformed {
        field,
        offset,
        reason: Reason::Invalid(why),
    };
    // TS 27.005 §3.5.1: the SMSC field's length counts its octets (at most
    // 11 after the length: TS 24.011 §8.2.5.1).
    let smsc = usize::from(at(0, Field::SmscLength)?);
    if smsc > 11 {
        return Err(bad(
            Field::SmscLength,
            0,
            "SMSC field longer than 11 octets",
        ));
    }
    let mut i = 1 + smsc;
    let first = at(i, Field::FirstOctet)?;
    // TS 23.040 §9.2.3.1: TP-MTI 01 is SMS-SUBMIT (mobile to network).
    if first & 0x03 != 0x01 {
        return Err(bad(Field::FirstOctet, i, "not an SMS-SUBMIT"));
    }
    // §9.2.3.23: TP-UDHI.
    if first & 0x40 == 0 {
        return Ok(None);
    }
    // First octet, TP-MR; TP-DA counts semi-octets (§9.1.2.5, at most 20).
    i += 2;
    let digits = usize::from(at(i, Field::DestinationAddress)?);
    if digits > 20 {
        return Err(bad(Field::DestinationAddress, i, "more than 20 digits"));
    }
    i += 2 + digits.div_ceil(2);
    // TP-PID, TP-DCS, then TP-VP as TP-VPF says (§9.2.3.3, §9.2.3.12).
    i += 2;
    i += match (first >> 3) & 0x03 {
        0 => 0,
        2 => 1,
        _ => 7,
    };
    at(i, Field::UserDataLength)?;
    i += 1;
    let udhl = usize::from(at(i, Field::UserDataHeader)?);
    i += 1;
    let end = i + udhl;
    if end > pdu.len() {
        return Err(PduError::Malformed {
            field: Field::UserDataHeader,
            offset: i,
            reason: Reason::Truncated {
                needed: udhl,
                available: pdu.len().saturating_sub(i),
            },
        });
    }
    // §9.2.3.24: IEI, IEDL, data; repeated.
    while i + 2 <= end {
        let (iei, len) = (
            at(i, Field::UserDataHeader)?,
            usize::from(at(i + 1, Field::UserDataHeader)?),
        );
        let data = i + 2;
        if data + len > end {
            return Err(bad(
                Field::UserDataHeader,
                i,
                "element longer than the header",
            ));
        }
        match (iei, len) {
            (0x00, 3) => {
                return Ok(Some(ReferenceSlot {
                    offset: data,
                    wide: false,
                }))
            }
            (0x08, 4) => {
                return Ok(Some(ReferenceSlot {
                    offset: data,
                    wide: true,
                }))
            }
            _ => i = data + len,
        }
    }
    Ok(None)
}

/// Rewrites the concatenation reference of an encoded SMS-SUBMIT in place,
/// keeping the element's width: IEI 0x00 takes the low 8 bits of
/// `reference` (TS 23.040 §9.2.3.24.1), IEI 0x08 all 16 (§9.2.3.24.8).
/// Returns the reference written, `None` for a PDU without concatenation
/// element (left unchanged).
pub fn set_submit_reference(pdu: &mut [u8], reference: u16) -> Result<Option<u16>, PduError> {
    let Some(slot) = find_submit_reference(pdu)? else {
        return Ok(None);
    };
    let [hi, lo] = reference.to_be_bytes();
    let (octets, written): (&[u8], u16) = if slot.wide {
        (&[hi, lo], reference)
    } else {
        (&[lo], u16::from(lo))
    };
    // find_submit_reference checked the element lies within the PDU.
    for (k, v) in octets.iter().enumerate() {
        if let Some(o) = pdu.get_mut(slot.offset + k) {
            *o = *v;
        }
    }
    Ok(Some(written))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::tpdu::{decode, DecodeOptions, Tpdu};

    fn to() -> Address {
        Address::parse_number("+4915112345678").unwrap()
    }

    fn texts(parts: &[EncodedPdu]) -> Vec<String> {
        parts
            .iter()
            .map(|p| {
                let pdu = decode(&p.octets, DecodeOptions::default()).unwrap();
                assert_eq!(pdu.tpdu_len + 1, p.octets.len(), "no SMSC: one `00` octet");
                pdu.tpdu.user_data().unwrap().text().unwrap().to_owned()
            })
            .collect()
    }

    fn submit(text: &str, opts: &SubmitOptions) -> Vec<EncodedPdu> {
        encode_submit(&to(), text, opts).unwrap()
    }

    #[test]
    fn gsm7_part_sizes() {
        let o = SubmitOptions::default();
        assert_eq!(submit(&"a".repeat(160), &o).len(), 1);
        let parts = submit(&"a".repeat(161), &o);
        assert_eq!(
            texts(&parts).iter().map(String::len).collect::<Vec<_>>(),
            [153, 8]
        );
        let parts = submit(
            &"a".repeat(161),
            &SubmitOptions {
                ref16: true,
                ..o.clone()
            },
        );
        assert_eq!(texts(&parts)[0].len(), 152);
    }

    #[test]
    fn escape_sequences_are_never_split() {
        // 152 septets, then '€' (escape + 0x65): it does not fit in 153.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let t = texts(&submit(&text, &SubmitOptions::default()));
        assert_eq!(t, ["a".repeat(152), format!("€{}", "b".repeat(10))]);
        // 80 '€' are 160 septets: one part.
        assert_eq!(submit(&"€".repeat(80), &SubmitOptions::default()).len(), 1);
    }

    #[test]
    fn ucs2_part_sizes_and_surrogates() {
        let o = SubmitOptions::default();
        assert_eq!(submit(&"я".repeat(70), &o).len(), 1);
        let t = texts(&submit(&"я".repeat(71), &o));
        assert_eq!(
            t.iter().map(|s| s.chars().count()).collect::<Vec<_>>(),
            [67, 4]
        );
        // 66 units then a pair: the pair does not fit in 67 units.
        let text = format!("{}😀xxxxx", "я".repeat(66));
        let t = texts(&submit(&text, &o));
        assert_eq!(t, [&"я".repeat(66), "😀xxxxx"]);
    }

    #[test]
    fn options_reach_the_first_octet_and_dcs() {
        let o = SubmitOptions {
            status_report: true,
            class: Some(MessageClass::Class0),
            validity: Some(ValidityPeriod::Relative(0xAA)),
            reject_duplicates: true,
            message_reference: 7,
            smsc: Some(Address::parse_number("+447700900").unwrap()),
            ..SubmitOptions::default()
        };
        let p = &submit("hi", &o)[0];
        // SMSC 06 91 44770009F0, fo 0x35 (SRR|VPF rel|RD|SUBMIT), MR 7.
        assert!(p.hex().starts_with("069144770009F03507"), "{}", p.hex());
        assert_eq!(p.tpdu_len, p.octets.len() - 7);
        let pdu = decode(&p.octets, DecodeOptions::default()).unwrap();
        let Tpdu::Submit(s) = pdu.tpdu else { panic!() };
        assert_eq!(s.dcs.raw, 0x10);
        assert_eq!(s.message_reference, 7);
        assert!(s.status_report_request && s.reject_duplicates);
        assert_eq!(s.destination.to_string(), "+4915112345678");
    }

    #[test]
    fn forced_ucs2_and_16bit_reference() {
        let o = SubmitOptions {
            force_ucs2: true,
            ref16: true,
            reference: 0xBEEF,
            ..SubmitOptions::default()
        };
        let parts = submit(&"x".repeat(70), &o);
        assert_eq!(parts.len(), 1);
        let parts = submit(&"x".repeat(71), &o);
        let pdu = decode(&parts[1].octets, DecodeOptions::default()).unwrap();
        let c = pdu
            .tpdu
            .user_data()
            .unwrap()
            .header
            .as_ref()
            .unwrap()
            .concat()
            .unwrap();
        assert_eq!((c.reference, c.total, c.seq, c.wide), (0xBEEF, 2, 2, true));
    }

    #[test]
    fn national_shift_tables_are_signalled() {
        let text = "Çok güzel, teşekkürler";
        // Without national tables the Turkish 'ş' forces UCS-2.
        let p = &submit(text, &SubmitOptions::default())[0];
        let pdu = decode(&p.octets, DecodeOptions::default()).unwrap();
        assert_eq!(pdu.tpdu.dcs().unwrap().alphabet, Alphabet::Ucs2);
        let o = SubmitOptions {
            national: vec![NationalLanguage::Turkish],
            ..SubmitOptions::default()
        };
        let p = &submit(text, &o)[0];
        let pdu = decode(&p.octets, DecodeOptions::default()).unwrap();
        assert_eq!(pdu.tpdu.dcs().unwrap().alphabet, Alphabet::Gsm7);
        let ud = pdu.tpdu.user_data().unwrap();
        assert_eq!(ud.text(), Some(text));
        assert!(ud
            .header
            .as_ref()
            .unwrap()
            .ies
            .iter()
            .any(|ie| matches!(ie, Ie::SingleShift(1) | Ie::LockingShift(1))));
        // The shift IE shrinks the part: 155 septets with one IE.
        let long = "ş".repeat(100);
        let parts = submit(&long, &o);
        assert!(parts.len() >= 2);
        assert_eq!(texts(&parts).concat(), long);
    }

    #[test]
    fn empty_text_is_one_empty_part() {
        let parts = submit("", &SubmitOptions::default());
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].hex(), "0001000D91945111325476F8000000");
    }

    #[test]
    fn bad_recipient_is_an_error() {
        let a = Address {
            value: "12x".into(),
            ..to()
        };
        assert!(encode_submit(&a, "hi", &SubmitOptions::default()).is_err());
    }

    #[test]
    fn deliver_and_status_report_for_the_simulator() {
        let from = Address::alphanumeric("Bank");
        let opts = DeliverOptions {
            scts: Timestamp::new(26, 11, 26, 8, 15, 0, 4),
            class: Some(MessageClass::Class0),
            ..DeliverOptions::default()
        };
        let parts = encode_deliver(&from, &"ü".repeat(200), &opts).unwrap();
        assert_eq!(parts.len(), 2);
        let pdu = decode(&parts[0].octets, DecodeOptions::default()).unwrap();
        let Tpdu::Deliver(d) = &pdu.tpdu else {
            panic!()
        };
        assert_eq!(d.originator.to_string(), "Bank");
        assert_eq!(d.scts.to_rfc3339().unwrap(), "2026-11-26T08:15:00+01:00");
        assert_eq!(d.dcs.class, Some(MessageClass::Class0));

        let data: Vec<u8> = (0..=255).collect();
        let opts = DeliverOptions {
            ports: Some(Ports {
                dst: 2948,
                src: 9200,
                bits: 16,
            }),
            ..DeliverOptions::default()
        };
        let parts = encode_deliver_data(&from, &data, &opts).unwrap();
        let mut got = Vec::new();
        for p in &parts {
            let pdu = decode(&p.octets, DecodeOptions::default()).unwrap();
            let ud = pdu.tpdu.user_data().unwrap();
            assert_eq!(ud.header.as_ref().unwrap().ports().unwrap().dst, 2948);
            let crate::pdu::Body::Data(d) = &ud.body else {
                panic!()
            };
            got.extend_from_slice(d);
        }
        assert_eq!(got, data);

        let r = encode_status_report(
            None,
            42,
            &to(),
            Timestamp::new(26, 11, 26, 8, 15, 0, 0),
            Timestamp::new(26, 11, 26, 8, 15, 9, 0),
            Status(0),
        )
        .unwrap();
        let pdu = decode(&r.octets, DecodeOptions::default()).unwrap();
        let Tpdu::StatusReport(s) = &pdu.tpdu else {
            panic!()
        };
        assert_eq!((s.message_reference, s.status), (42, Status(0)));
        assert_eq!(
            s.discharge_time.to_rfc3339().unwrap(),
            "2026-11-26T08:15:09+00:00"
        );
    }

    fn concat_of(octets: &[u8]) -> crate::pdu::Concat {
        let pdu = decode(octets, DecodeOptions::default()).unwrap();
        let Tpdu::Submit(s) = pdu.tpdu else {
            panic!("not a submit")
        };
        s.user_data.header.and_then(|h| h.concat()).unwrap()
    }

    #[test]
    fn reference_is_rewritten_in_place_at_either_width() {
        let smsc = Address::parse_number("+491710760000").unwrap();
        let base = SubmitOptions {
            smsc: Some(smsc),
            status_report: true,
            validity: Some(ValidityPeriod::Relative(0xA7)),
            national: vec![NationalLanguage::Turkish],
            reference: 0x1234,
            ..SubmitOptions::default()
        };
        let text = format!("{}ğ", "a".repeat(300));
        for ref16 in [false, true] {
            let opts = SubmitOptions {
                ref16,
                ..base.clone()
            };
            let parts = submit(&text, &opts);
            assert!(parts.len() > 1);
            for p in &parts {
                let mut octets = p.octets.clone();
                let before = concat_of(&octets);
                assert_eq!(before.reference, if ref16 { 0x1234 } else { 0x34 });
                let written = set_submit_reference(&mut octets, 0xBEEF).unwrap();
                assert_eq!(written, Some(if ref16 { 0xBEEF } else { 0xEF }));
                let after = concat_of(&octets);
                assert_eq!(after.reference, written.unwrap());
                assert_eq!(
                    (after.total, after.seq, after.wide),
                    (before.total, before.seq, ref16)
                );
                // Nothing else moved: only the reference octets differ.
                let changed = octets.iter().zip(&p.octets).filter(|(a, b)| a != b).count();
                assert!(changed <= if ref16 { 2 } else { 1 });
            }
        }
        // A single part has no element: untouched.
        let one = submit("hi", &base);
        let mut octets = one[0].octets.clone();
        assert_eq!(set_submit_reference(&mut octets, 7).unwrap(), None);
        assert_eq!(octets, one[0].octets);
    }

    #[test]
    fn reference_search_never_panics_on_cut_or_foreign_pdus() {
        let parts = submit(&"a".repeat(200), &SubmitOptions::default());
        let full = &parts[0].octets;
        for n in 0..full.len() {
            let mut cut = full[..n].to_vec();
            let _ = set_submit_reference(&mut cut, 1);
        }
        // An SMS-DELIVER is refused, not patched.
        let from = Address::parse_number("+4915112345678").unwrap();
        let d = encode_deliver(&from, &"b".repeat(200), &DeliverOptions::default()).unwrap();
        let mut octets = d[0].octets.clone();
        assert!(set_submit_reference(&mut octets, 1).is_err());
        assert_eq!(octets, d[0].octets);
    }
}
