//! The few TPDU facts a modem itself needs: the message type, the message
//! class of an incoming SMS-DELIVER (read from its TP-DCS octet alone, as a
//! modem routes before it decodes anything), whether an SMS-SUBMIT from the
//! DTE is well-formed, and the SMSC address field. Decoding and encoding
//! are the codec's ([`crate::pdu`]).

use crate::pdu::{self, Address, Dcs, DecodeOptions, Direction, Tpdu};

/// TP-MTI of a TPDU, TS 23.040 §9.2.3.1 (bits 1..0 of the first octet).
pub(crate) fn mti(tpdu: &[u8]) -> Option<u8> {
    tpdu.first().map(|fo| fo & 0x03)
}

/// TP-MTI of an SMS-SUBMIT (MS to SC).
pub(crate) const MTI_SUBMIT: u8 = 0x01;

/// The message class of an SMS-DELIVER from its TP-DCS (TS 23.038 §4);
/// `None` when it has none or the TPDU is too short to say. TP-DCS follows
/// the first octet, TP-OA (length in semi-octets, type, digits) and TP-PID
/// (TS 23.040 §9.2.2.1).
pub(crate) fn deliver_class(tpdu: &[u8]) -> Option<u8> {
    let digits = usize::from(*tpdu.get(1)?);
    let dcs_at = 1 + 2 + digits.div_ceil(2) + 1;
    let raw = *tpdu.get(dcs_at)?;
    Dcs::from_octet(raw).class.map(|c| c.number())
}

/// Decodes a TPDU without SMSC field travelling in `direction`.
pub(crate) fn decode(tpdu: &[u8], direction: Direction) -> Option<Tpdu> {
    let opts = DecodeOptions {
        direction,
        smsc: false,
        ..DecodeOptions::default()
    };
    pdu::decode(tpdu, opts).ok().map(|p| p.tpdu)
}

/// Whether the DTE's TPDU is an SMS-SUBMIT the codec can read in full
/// (TS 23.040 §9.2.2.2); a real modem refuses the others with
/// `+CMS ERROR: 304`.
pub(crate) fn submit_ok(tpdu: &[u8]) -> bool {
    matches!(
        decode(tpdu, Direction::MobileOriginated),
        Some(Tpdu::Submit(_))
    )
}

/// The SMSC address field for `number` (TS 27.005 §3.1: length octet, type,
/// semi-octets); `[0]` for no or an unusable number.
pub(crate) fn smsc_field(number: &str) -> Vec<u8> {
    let mut out = Vec::new();
    match Address::parse_number(number).map(|a| a.encode_smsc(&mut out)) {
        Ok(Ok(())) => out,
        _ => vec![0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smsc_field_is_semi_octets() {
        // "07915155000000F1" from the gammu recordings: +15550000001.
        assert_eq!(
            hex::encode_upper(smsc_field("+15550000001")),
            "07915155000000F1"
        );
        assert_eq!(smsc_field(""), vec![0]);
    }

    #[test]
    fn class_of_deliver() {
        // SMS-DELIVER, OA 11 digits, PID 0, DCS as given.
        let mut t = hex::decode("040B915155334344F40000").unwrap();
        t.extend([0u8; 8]);
        assert_eq!(deliver_class(&t), None);
        t[10] = 0x10; // class 0, 7-bit
        assert_eq!(deliver_class(&t), Some(0));
        t[10] = 0xF2; // group 1111, class 2
        assert_eq!(deliver_class(&t), Some(2));
        assert_eq!(deliver_class(&t[..5]), None);
    }

    #[test]
    fn submit_checks() {
        // From the smstools recording: "Hello from smstools".
        let ok =
            hex::decode("11000B915155112122F20000FF13C8329BFD0699E5EF3668DE9ED3DF6FF61C").unwrap();
        assert!(submit_ok(&ok));
        assert!(!submit_ok(&ok[..ok.len() - 1]));
        let mut deliver = ok.clone();
        deliver[0] = 0x04;
        assert!(!submit_ok(&deliver));
        assert!(!submit_ok(&[]));
        assert!(!submit_ok(&[0x11, 0x00]));
    }
}
