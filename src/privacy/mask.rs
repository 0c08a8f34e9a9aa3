//! Numbers as logs show them: `+49*******56`.
//!
//! Logs end up in journald, support tickets and screenshots; the last two
//! digits are enough to tell two conversations apart while debugging, and
//! the country code to tell networks apart, without identifying anyone.

/// Masks a phone number for logs: keeps a leading `+` with the first two
/// digits (the country code's neighbourhood) and the last two digits, and
/// replaces every other digit with `*`. Short numbers (6 digits or fewer,
/// e.g. service short codes) keep only their last two digits. Handles
/// (`sms:...`) are already pseudonyms and pass through. Anything else that
/// is not a digit is dropped, so a malformed sender cannot smuggle text
/// into a log line.
pub fn mask(number: &str) -> String {
    if number.starts_with("sms:") && number.len() <= 40 {
        return number.to_owned();
    }
    let plus = number.trim_start().starts_with('+');
    // Cap what is looked at: a sender field is at most 20 digits (TS 23.040
    // 9.1.2.5), anything longer is shown by its length alone.
    let digits: Vec<char> = number
        .chars()
        .filter(char::is_ascii_digit)
        .take(33)
        .collect();
    let n = digits.len();
    if n > 32 {
        return "<long number>".to_owned();
    }
    let head = if plus && n > 6 { 2 } else { 0 };
    let tail = n.min(2);
    let mut out = String::with_capacity(n + 1);
    if plus {
        out.push('+');
    }
    for (i, d) in digits.iter().enumerate() {
        if i < head || i >= n - tail {
            out.push(*d);
        } else {
            out.push('*');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn keeps_country_and_last_two_digits() {
        assert_eq!(mask("+4917112345656"), "+49*********56");
        assert_eq!(mask("+491711234556"), "+49********56");
        assert_eq!(mask("01711234567"), "*********67");
        assert_eq!(mask("+12025550143"), "+12*******43");
    }

    #[test]
    fn short_and_odd_inputs() {
        assert_eq!(mask("22333"), "***33");
        assert_eq!(mask("+123"), "+*23");
        assert_eq!(mask("7"), "7");
        assert_eq!(mask(""), "");
        assert_eq!(mask("Vodafone"), "");
        assert_eq!(mask("+49 171\n123 4567"), "+49********67");
        assert_eq!(mask(&"9".repeat(500)), "<long number>");
        assert_eq!(mask("sms:abcdefghijklmnop"), "sms:abcdefghijklmnop");
    }

    #[test]
    fn never_shows_more_than_four_digits_of_a_long_number() {
        for n in ["+491711234567", "+4412345678901", "+33612345678"] {
            let shown = mask(n).chars().filter(char::is_ascii_digit).count();
            assert!(shown <= 4, "{n} -> {}", mask(n));
        }
    }
}
