//! The few TPDU fields a modem itself looks at, read without decoding the
//! message: the message type, TP-MR, the data coding scheme's message class.
//! A real modem routes and numbers messages from these octets alone; the
//! full codec lives in [`crate::pdu`].

/// TP-MTI of a TPDU, TS 23.040 §9.2.3.1 (bits 1..0 of the first octet).
pub(crate) fn mti(tpdu: &[u8]) -> Option<u8> {
    tpdu.first().map(|fo| fo & 0x03)
}

/// TP-MTI of an SMS-SUBMIT (MS to SC).
pub(crate) const MTI_SUBMIT: u8 = 0x01;

/// Length in octets of an address field whose length octet says `digits`
/// semi-octets, TS 23.040 §9.1.2.5 (length octet and type octet included).
fn address_len(digits: u8) -> usize {
    2 + usize::from(digits).div_ceil(2)
}

/// Offset of TP-PID in an SMS-DELIVER (after TP-OA), if the TPDU is long
/// enough to hold it and TP-DCS.
fn deliver_pid_offset(tpdu: &[u8]) -> Option<usize> {
    let digits = *tpdu.get(1)?;
    let pid = 1 + address_len(digits);
    (tpdu.len() > pid + 1).then_some(pid)
}

/// The message class of an SMS-DELIVER from its TP-DCS, TS 23.038 §4
/// (general data coding groups 00xx/01xx with bit 4 set, and group 1111);
/// `None` when it has no class or the TPDU is too short to say.
pub(crate) fn deliver_class(tpdu: &[u8]) -> Option<u8> {
    let dcs = *tpdu.get(deliver_pid_offset(tpdu)? + 1)?;
    match dcs >> 4 {
        0x0..=0x7 if dcs & 0x10 != 0 => Some(dcs & 0x03),
        0xF => Some(dcs & 0x03),
        _ => None,
    }
}

/// Checks that an SMS-SUBMIT's fixed header fits in the TPDU (TS 23.040
/// §9.2.2.2: first octet, TP-MR, TP-DA, TP-PID, TP-DCS, TP-VP, TP-UDL) and
/// that TP-UDL does not promise more user data than there is.
pub(crate) fn submit_plausible(tpdu: &[u8]) -> bool {
    let Some(&fo) = tpdu.first() else {
        return false;
    };
    if fo & 0x03 != MTI_SUBMIT {
        return false;
    }
    let Some(&digits) = tpdu.get(2) else {
        return false;
    };
    if digits > 20 {
        return false;
    }
    // TP-VPF, bits 4..3: none, enhanced (7), relative (1), absolute (7).
    let vp = match (fo >> 3) & 0x03 {
        0 => 0,
        2 => 1,
        _ => 7,
    };
    let pid = 2 + address_len(digits);
    let dcs_at = pid + 1;
    let udl_at = dcs_at + 1 + vp;
    let (Some(&dcs), Some(&udl)) = (tpdu.get(dcs_at), tpdu.get(udl_at)) else {
        return false;
    };
    let have = tpdu.len() - udl_at - 1;
    let udl = usize::from(udl);
    // TS 23.038 §4: 7-bit default alphabet unless the group says 8-bit or
    // UCS-2; TP-UDL counts septets for 7-bit, octets otherwise.
    // Reserved groups are read as 7-bit (TS 23.038 §4), the lenient choice.
    let seven_bit = match dcs >> 4 {
        0x0..=0x7 => (dcs >> 2) & 0x03 != 1 && (dcs >> 2) & 0x03 != 2,
        0xE => false,
        0xF => dcs & 0x04 == 0,
        _ => true,
    };
    let need = if seven_bit {
        (udl * 7).div_ceil(8)
    } else {
        udl
    };
    need <= have && need <= 140
}

/// The SMSC address field for `number` (`+` for international), TS 24.011
/// §8.2.5.2 / TS 23.040 §9.1.2.5 semi-octets; `[0]` for an empty number.
pub(crate) fn smsc_field(number: &str) -> Vec<u8> {
    let intl = number.starts_with('+');
    let digits: Vec<u8> = number
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|d| d - b'0')
        .take(20)
        .collect();
    if digits.is_empty() {
        return vec![0];
    }
    let mut out = vec![0, if intl { 0x91 } else { 0x81 }];
    for pair in digits.chunks(2) {
        let lo = pair[0];
        let hi = pair.get(1).copied().unwrap_or(0x0F);
        out.push(hi << 4 | lo);
    }
    out[0] = (out.len() - 1) as u8;
    out
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
        assert_eq!(hex::encode_upper(smsc_field("1234")), "03812143");
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
        assert!(submit_plausible(&ok));
        assert!(!submit_plausible(&ok[..ok.len() - 1]));
        let mut deliver = ok.clone();
        deliver[0] = 0x04;
        assert!(!submit_plausible(&deliver));
        assert!(!submit_plausible(&[]));
        assert!(!submit_plausible(&[0x11, 0x00]));
    }
}
