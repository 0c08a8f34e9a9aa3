//! Phone numbers normalised to E.164 (ITU-T E.164: `+`, country code,
//! national number, at most 15 digits).
//!
//! One canonical form matters for privacy: consent, handles and `forget`
//! must find the same person whether they wrote `0171 1234567`,
//! `+49 171 1234567` or `0049171…`. Parsing and validation use the
//! `phonenumber` crate (Google's libphonenumber metadata).

use std::str::FromStr;

use phonenumber::country;

use super::PrivacyError;

/// Longest input looked at: a formatted E.164 number with spaces, dashes
/// and an extension fits well within it; anything longer is not a number.
const MAX_INPUT: usize = 64;

/// The region assumed for numbers written without `+` (`[privacy]
/// default_region`), or none: then only international numbers are valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Region(Option<country::Id>);

impl Region {
    /// No default region: national numbers are refused.
    pub const NONE: Region = Region(None);

    /// Parses an ISO 3166-1 alpha-2 code (`"DE"`, case-insensitive).
    pub fn parse(code: Option<&str>) -> Result<Region, PrivacyError> {
        let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
            return Ok(Region::NONE);
        };
        let upper = code.to_ascii_uppercase();
        if upper.len() != 2 {
            return Err(bad_region(code));
        }
        country::Id::from_str(&upper)
            .map(|id| Region(Some(id)))
            .map_err(|_| bad_region(code))
    }
}

fn bad_region(code: &str) -> PrivacyError {
    PrivacyError::Config {
        key: "privacy.default_region",
        message: format!(
            "{:?} is not an ISO 3166 two-letter region code (e.g. \"DE\")",
            cap(code)
        ),
    }
}

/// The input, capped for use in an error message.
fn cap(input: &str) -> String {
    input.chars().take(MAX_INPUT).collect()
}

/// Loads the numbering-plan metadata now. The `phonenumber` crate parses
/// its database on first use, which takes about a second in a debug build
/// (tens of milliseconds in release); the daemon calls this at start so
/// that neither the first `send` nor the first inbound decision waits.
pub fn warm_up() {
    let _ = normalize("+4930123456", Region::default());
}

/// Normalises a number to E.164 (`+4917112345678`), or explains why it is
/// not a valid number. National numbers need a default `region`.
pub fn normalize(input: &str, region: Region) -> Result<String, PrivacyError> {
    let invalid = |reason: &str| PrivacyError::InvalidNumber {
        input: cap(input),
        reason: reason.to_owned(),
    };
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(invalid("empty"));
    }
    if trimmed.len() > MAX_INPUT {
        return Err(invalid("too long"));
    }
    // Digits, spaces and the usual separators only: no letters (vanity
    // numbers are not something an SMS sender has) and no control bytes.
    if !trimmed
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '.' | '(' | ')' | '/'))
    {
        return Err(invalid(
            "only digits, '+', spaces and - . ( ) / are allowed",
        ));
    }
    if !trimmed.starts_with('+') && !trimmed.starts_with("00") && region.0.is_none() {
        return Err(invalid(
            "not in international format (+...) and no [privacy] default_region is configured",
        ));
    }
    let checked = match phonenumber::parse(region.0, trimmed) {
        Ok(parsed) if phonenumber::is_valid(&parsed) => {
            return Ok(parsed.format().mode(phonenumber::Mode::E164).to_string())
        }
        Ok(_) => invalid("not a valid number for its country"),
        Err(e) => invalid(&e.to_string()),
    };
    match as_written_e164(trimmed) {
        Some(e164) => {
            tracing::debug!(number = %super::mask(&e164),
                "number unknown to the numbering plan; taken as E.164 as written");
            Ok(e164)
        }
        None => Err(checked),
    }
}

/// Shortest and longest digit count taken as written: E.164 allows at most
/// 15 digits (ITU-T E.164 §6.1); fewer than 8 is a short code or a typo.
const AS_WRITTEN_DIGITS: std::ops::RangeInclusive<usize> = 8..=15;

/// `+` then 8 to 15 digits (separators allowed, the first digit a country
/// code's, never 0): the E.164 form, or `None`.
fn as_written_e164(trimmed: &str) -> Option<String> {
    let rest = trimmed.strip_prefix('+')?;
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    let plausible = AS_WRITTEN_DIGITS.contains(&digits.len())
        && !digits.starts_with('0')
        && !rest.contains('+');
    plausible.then(|| format!("+{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn de() -> Region {
        Region::parse(Some("de")).unwrap()
    }

    #[test]
    fn national_and_international_forms_meet_in_e164() {
        for input in [
            "+49 171 1234567",
            "+491711234567",
            "0171 1234567",
            "0171/1234567",
            "0049 171 1234567",
            " (0171) 123-4567 ",
        ] {
            assert_eq!(normalize(input, de()).unwrap(), "+491711234567", "{input}");
        }
        assert_eq!(normalize("+1 202 555 0143", de()).unwrap(), "+12025550143");
    }

    #[test]
    fn national_numbers_need_a_region() {
        let e = normalize("0171 1234567", Region::NONE).unwrap_err();
        assert!(e.to_string().contains("default_region"), "{e}");
        assert_eq!(
            normalize("+491711234567", Region::NONE).unwrap(),
            "+491711234567"
        );
    }

    #[test]
    fn garbage_is_a_clear_error() {
        for input in [
            "",
            "   ",
            "hello",
            "+49abc",
            "+",
            "12",
            "+999 1234",
            "\u{0}+49171",
            "+1555012",
            "+1234567890123456",
            "+0155501001",
            "001 555 0100 123",
            "++15550100123",
        ] {
            let e = normalize(input, de()).unwrap_err();
            assert!(
                matches!(e, PrivacyError::InvalidNumber { .. }),
                "{input:?}: {e}"
            );
        }
        let long = "1".repeat(10_000);
        let e = normalize(&long, de()).unwrap_err().to_string();
        assert!(e.len() < 200, "the error caps the input: {e}");
    }

    #[test]
    fn international_numbers_the_library_rejects_are_taken_as_written() {
        // +1 555 01xx is reserved for fiction and tests; the library calls
        // it invalid, the simulator and test networks use it.
        for (input, want) in [
            ("+15550100123", "+15550100123"),
            ("+1 555-0100 123", "+15550100123"),
            ("+1 (555) 0100123", "+15550100123"),
            ("+99912345678", "+99912345678"),
            ("+12345678", "+12345678"),
            ("+123456789012345", "+123456789012345"),
        ] {
            assert_eq!(normalize(input, de()).unwrap(), want, "{input}");
            assert_eq!(normalize(input, Region::NONE).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn regions_are_checked() {
        assert_eq!(Region::parse(None).unwrap(), Region::NONE);
        assert_eq!(Region::parse(Some(" ")).unwrap(), Region::NONE);
        assert!(Region::parse(Some("XX")).is_err());
        assert!(Region::parse(Some("GERMANY")).is_err());
        assert!(Region::parse(Some("fr")).is_ok());
    }
}
