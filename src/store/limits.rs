//! Caps on everything that comes from a client, a modem or a file, checked
//! before anything is written.

use super::error::{Result, StoreError};

/// Most parts of one message: the concatenation IE counts to 255
/// (TS 23.040 §9.2.3.24.1).
pub const MAX_PARTS: usize = 255;
/// Largest PDU kept (an SMS TPDU is at most 164 octets, plus up to 12 of
/// SMSC address as some modems report it; generous headroom).
pub const MAX_PDU_BYTES: usize = 512;
/// Longest address (TP-DA / TP-OA / TP-RA hold at most 20 digits; some
/// clients add formatting).
pub const MAX_ADDRESS: usize = 64;
/// Longest idempotency key.
pub const MAX_KEY: usize = 200;
/// Longest modem id, state name or client name.
pub const MAX_ID: usize = 128;
/// Longest text kept with an outbound message (255 parts of 160 chars,
/// in UTF-8).
pub const MAX_TEXT: usize = 255 * 160 * 4;
/// Longest decoded text or data of one inbound part.
pub const MAX_PART_BODY: usize = 1024;
/// Most rows any list query returns.
pub const MAX_LIMIT: u32 = 10_000;

/// Fails if `v` is longer than `max` bytes.
pub(crate) fn check_len(what: &str, v: &str, max: usize) -> Result<()> {
    if v.len() > max {
        return Err(StoreError::Invalid(format!(
            "{what} is {} bytes long, at most {max} allowed",
            v.len()
        )));
    }
    Ok(())
}

/// Fails if an identifier is empty or too long.
pub(crate) fn check_id(what: &str, v: &str) -> Result<()> {
    if v.is_empty() {
        return Err(StoreError::Invalid(format!("{what} is empty")));
    }
    check_len(what, v, MAX_ID)
}

/// Fails if an address is empty or too long.
pub(crate) fn check_address(what: &str, v: &str) -> Result<()> {
    if v.trim().is_empty() {
        return Err(StoreError::Invalid(format!("{what} is empty")));
    }
    check_len(what, v, MAX_ADDRESS)
}

/// Fails if a PDU is empty or too long.
pub(crate) fn check_pdu(what: &str, v: &[u8]) -> Result<()> {
    if v.is_empty() || v.len() > MAX_PDU_BYTES {
        return Err(StoreError::Invalid(format!(
            "{what} is {} bytes long, 1 to {MAX_PDU_BYTES} allowed",
            v.len()
        )));
    }
    Ok(())
}

/// Clamps a list limit into `1..=MAX_LIMIT`.
pub(crate) fn limit(n: u32) -> u32 {
    n.clamp(1, MAX_LIMIT)
}

/// The digits of an address, for comparing numbers written in different
/// forms (`+44 7700 900123` and `447700900123`).
pub(crate) fn digits(address: &str) -> String {
    address.chars().filter(char::is_ascii_digit).collect()
}

/// Whether two addresses name the same number: equal digits, or one is the
/// national form of the other (the shorter, of at least 7 digits, ends the
/// longer). Alphanumeric addresses compare as written.
pub(crate) fn same_number(a_digits: &str, b_digits: &str) -> bool {
    if a_digits == b_digits {
        return !a_digits.is_empty();
    }
    let (short, long) = if a_digits.len() < b_digits.len() {
        (a_digits, b_digits)
    } else {
        (b_digits, a_digits)
    };
    let short = short.trim_start_matches('0');
    short.len() >= 7 && long.ends_with(short)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_across_formats() {
        let cases = [
            ("+44 7700 900123", "447700900123", true),
            ("447700900123", "07700900123", true),
            ("447700900123", "447700900124", false),
            ("123", "0123", false),
            ("", "", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(same_number(&digits(a), &digits(b)), want, "{a} vs {b}");
        }
    }
}
