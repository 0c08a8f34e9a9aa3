//! Deterministic, valid-looking identities for simulated modems and SIMs.
//!
//! The same index and number always give the same IMEI, IMSI and ICCID, so
//! a test or a daemon database sees the same modem across simulator runs.
//! The values use the test network (MCC 001, MNC 01, TS 23.122 / ITU-T
//! E.212) and carry correct Luhn check digits (IMEI: TS 23.003 §6.2.1;
//! ICCID: ITU-T E.118), so tools that validate them accept them.

use super::modem::Identity;

/// The SMSC address every simulated SIM holds.
pub const SMSC: &str = "+15559990000";

/// Mobile country and network code of the simulated network (test network
/// 001/01), the numeric `+COPS` operator.
pub const PLMN: &str = "00101";

/// TAC used when the profile gives no `imei_prefix`.
const DEFAULT_TAC: &str = "35000000";

/// The identity of modem `index` with phone `number`.
///
/// `imei_prefix` is the profile's TAC (digits only; anything else falls back
/// to the default so that a bad profile cannot produce an invalid IMEI).
pub fn generate(
    index: usize,
    number: &str,
    imei_prefix: Option<&str>,
    pin: Option<&str>,
) -> Identity {
    let tac = imei_prefix
        .filter(|p| !p.is_empty() && p.len() <= 12 && p.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or(DEFAULT_TAC);
    // IMEI: 14 digits (TAC + serial) + Luhn check digit.
    let serial_len = 14 - tac.len();
    let serial = format!(
        "{:0width$}",
        (index as u64 + 1) * 7919 % 10u64.pow(serial_len as u32),
        width = serial_len
    );
    let imei_body = format!("{tac}{serial}");
    let imei = format!("{imei_body}{}", luhn_digit(&imei_body));
    // IMSI: MCC+MNC + 10-digit MSIN taken from the number so that it is
    // stable and distinct per SIM.
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let tail = if digits.len() >= 10 {
        &digits[digits.len() - 10..]
    } else {
        digits.as_str()
    };
    let imsi = format!("{PLMN}{tail:0>10}");
    // ICCID: 89 (telecom) + 001 (test) + 01 (issuer) + 12-digit account + Luhn = 20.
    let iccid_body = format!("8900101{:012}", index as u64 + 1);
    let iccid = format!("{iccid_body}{}", luhn_digit(&iccid_body));
    Identity {
        number: number.to_string(),
        imei,
        imsi,
        iccid,
        pin: pin.map(str::to_string),
        smsc: SMSC.to_string(),
    }
}

/// The Luhn check digit for a string of decimal digits (non-digits are
/// ignored): the digit that makes the whole string pass the Luhn check.
pub fn luhn_digit(body: &str) -> char {
    let sum: u32 = body
        .bytes()
        .filter(u8::is_ascii_digit)
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            // Counting from the right, the digits next to the check digit
            // (positions 0, 2, ...) are doubled.
            if i % 2 == 0 {
                let dd = d * 2;
                if dd > 9 {
                    dd - 9
                } else {
                    dd
                }
            } else {
                d
            }
        })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// Whether a digit string passes the Luhn check.
pub fn luhn_valid(full: &str) -> bool {
    match full.len().checked_sub(1) {
        Some(n) if n > 0 && full.bytes().all(|b| b.is_ascii_digit()) => {
            full[n..].starts_with(luhn_digit(&full[..n]))
        }
        _ => false,
    }
}

/// The default number of modem `index`: `+15550000000` + index.
pub fn default_number(index: usize) -> String {
    format!("+1555{:07}", index)
}

/// Checks a phone number given on the command line: `+` and 1 to 20
/// digits (TS 23.040 §9.1.2.5 allows at most 20 address digits).
pub fn valid_number(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or(number);
    (1..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_matches_known_values() {
        // The worked IMEI example of TS 23.003 Annex B: 49015420323751-8.
        assert_eq!(luhn_digit("49015420323751"), '8');
        assert!(luhn_valid("490154203237518"));
        assert!(!luhn_valid("490154203237519"));
        assert_eq!(luhn_digit("7992739871"), '3');
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("12a4"));
    }

    #[test]
    fn identities_are_deterministic_distinct_and_valid() {
        let a = generate(0, "+15550000000", None, Some("1234"));
        let b = generate(1, "+15550000001", Some("86"), None);
        assert_eq!(a, generate(0, "+15550000000", None, Some("1234")));
        for id in [&a, &b] {
            assert_eq!(id.imei.len(), 15, "{id:?}");
            assert!(luhn_valid(&id.imei), "{id:?}");
            assert_eq!(id.iccid.len(), 20, "{id:?}");
            assert!(luhn_valid(&id.iccid), "{id:?}");
            assert_eq!(id.imsi.len(), 15, "{id:?}");
            assert!(id.imsi.starts_with(PLMN));
        }
        assert_ne!(a.imei, b.imei);
        assert_ne!(a.imsi, b.imsi);
        assert_ne!(a.iccid, b.iccid);
        assert!(b.imei.starts_with("86"));
        assert_eq!(a.pin.as_deref(), Some("1234"));
        // A profile prefix that is not digits cannot break the IMEI.
        assert!(luhn_valid(&generate(2, "+1", Some("x1"), None).imei));
    }

    #[test]
    fn numbers() {
        assert_eq!(default_number(0), "+15550000000");
        assert_eq!(default_number(12), "+15550000012");
        assert!(valid_number("+15550000000"));
        assert!(valid_number("12345"));
        assert!(!valid_number("+"));
        assert!(!valid_number("+1555abc"));
        assert!(!valid_number("+123456789012345678901"));
    }
}
