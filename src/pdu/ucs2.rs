//! UCS-2 user data (TS 23.038 §6.2.3, DCS alphabet `10`), read and written
//! as UTF-16BE so that characters outside the Basic Multilingual Plane
//! (emoji) travel as surrogate pairs, as phones do in practice.
//!
//! Decoding is lenient where the text is still meaningful: an unpaired
//! surrogate becomes U+FFFD. An odd number of octets cannot be UCS-2 at all,
//! so [`decode`] reports it as [`OddLength`]; [`decode_lossy`] instead shows
//! the stray octet as U+FFFD for callers that must keep every message.

/// The UCS-2 user data has an odd number of octets: the last one is not
/// half of any 16-bit unit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("UCS-2 data has an odd length ({len} octets); trailing octet {trailing:#04x}")]
pub struct OddLength {
    /// Octets received.
    pub len: usize,
    /// The stray last octet.
    pub trailing: u8,
    /// The text decoded from all the octets before it.
    pub text: String,
}

/// Octets per UTF-16 unit.
pub const UNIT_OCTETS: usize = 2;

/// Encodes `text` as UTF-16BE (surrogate pairs for characters above
/// U+FFFF). Never fails: every Unicode scalar value has a UTF-16 form.
pub fn encode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * UNIT_OCTETS);
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_be_bytes());
    }
    out
}

/// Decodes UTF-16BE octets; an unpaired surrogate becomes U+FFFD, an odd
/// trailing octet is an error that still carries the text before it.
pub fn decode(octets: &[u8]) -> Result<String, OddLength> {
    let text = decode_units(octets);
    match octets.len() % UNIT_OCTETS {
        0 => Ok(text),
        _ => Err(OddLength {
            len: octets.len(),
            trailing: octets.last().copied().unwrap_or_default(),
            text,
        }),
    }
}

/// Like [`decode`], but an odd trailing octet is shown as U+FFFD instead of
/// failing, so the rest of the message is never lost.
pub fn decode_lossy(octets: &[u8]) -> String {
    decode(octets).unwrap_or_else(|odd| {
        let mut text = odd.text;
        text.push(char::REPLACEMENT_CHARACTER);
        text
    })
}

fn decode_units(octets: &[u8]) -> String {
    let units = octets.chunks_exact(UNIT_OCTETS).filter_map(unit);
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// One big-endian unit from a two-octet slice.
fn unit(pair: &[u8]) -> Option<u16> {
    match *pair {
        [high, low] => Some(u16::from_be_bytes([high, low])),
        _ => None,
    }
}

/// How many UTF-16 units `c` takes: 1, or 2 for a surrogate pair.
pub fn char_units(c: char) -> usize {
    c.len_utf16()
}

/// How many UTF-16 units `text` takes (octets = units × 2).
pub fn unit_count(text: &str) -> usize {
    text.chars().map(char_units).sum()
}

/// Whether a split of UTF-16BE `octets` at octet offset `at` is allowed:
/// on a unit boundary, and not between the high and low halves of a
/// surrogate pair (a concatenated part must not end in a lone high
/// surrogate, TS 23.040 §9.2.3.24.1 leaves the pair to the sender).
pub fn is_split_point(octets: &[u8], at: usize) -> bool {
    if at % UNIT_OCTETS != 0 || at > octets.len() {
        return false;
    }
    let before = at
        .checked_sub(UNIT_OCTETS)
        .and_then(|i| octets.get(i..at))
        .and_then(unit);
    !matches!(before, Some(0xD800..=0xDBFF))
}

/// The byte length of the longest prefix of `text` that fits in
/// `max_units` UTF-16 units; a surrogate pair is never cut in two because
/// whole characters are counted.
pub fn prefix_len(text: &str, max_units: usize) -> usize {
    let mut used = 0usize;
    for (offset, ch) in text.char_indices() {
        used += char_units(ch);
        if used > max_units {
            return offset;
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bmp_text_is_plain_ucs2() {
        assert_eq!(encode("はい"), [0x30, 0x6F, 0x30, 0x44]);
        assert_eq!(decode(&[0x30, 0x6F, 0x30, 0x44]).unwrap(), "はい");
        assert_eq!(encode("A"), [0x00, 0x41]);
    }

    #[test]
    fn emoji_is_a_surrogate_pair() {
        // U+1F600: D83D DE00 (UTF-16, RFC 2781 §2.1).
        assert_eq!(encode("😀"), [0xD8, 0x3D, 0xDE, 0x00]);
        assert_eq!(decode(&[0xD8, 0x3D, 0xDE, 0x00]).unwrap(), "😀");
        assert_eq!(char_units('😀'), 2);
        assert_eq!(char_units('é'), 1);
        assert_eq!(unit_count("a😀"), 3);
    }

    #[test]
    fn unpaired_surrogates_become_replacement() {
        // High surrogate then 'A'; lone low surrogate; trailing high.
        let octets = [0xD8, 0x3D, 0x00, 0x41, 0xDE, 0x00, 0xD8, 0x3D];
        assert_eq!(decode(&octets).unwrap(), "\u{FFFD}A\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn odd_length_is_reported_with_the_text_before_it() {
        let err = decode(&[0x00, 0x41, 0x42]).unwrap_err();
        assert_eq!(err.len, 3);
        assert_eq!(err.trailing, 0x42);
        assert_eq!(err.text, "A");
        assert_eq!(decode_lossy(&[0x00, 0x41, 0x42]), "A\u{FFFD}");
        assert_eq!(decode_lossy(&[0x00, 0x41]), "A");
        assert_eq!(decode(&[]).unwrap(), "");
    }

    #[test]
    fn split_points_avoid_surrogate_halves() {
        let octets = encode("a😀b");
        assert!(is_split_point(&octets, 0));
        assert!(is_split_point(&octets, 2));
        assert!(!is_split_point(&octets, 4), "between D83D and DE00");
        assert!(is_split_point(&octets, 6));
        assert!(is_split_point(&octets, 8));
        assert!(!is_split_point(&octets, 3), "mid-unit");
        assert!(!is_split_point(&octets, 10), "past the end");
        assert_eq!(prefix_len("a😀b", 2), 1);
        assert_eq!(prefix_len("a😀b", 3), 5);
        assert_eq!(prefix_len("a😀b", 99), "a😀b".len());
    }

    proptest! {
        #[test]
        fn round_trip_any_string(text in any::<String>()) {
            let octets = encode(&text);
            prop_assert_eq!(octets.len(), 2 * unit_count(&text));
            prop_assert_eq!(decode(&octets).unwrap(), text);
        }

        #[test]
        fn decode_never_panics(octets in proptest::collection::vec(any::<u8>(), 0..300)) {
            let lossy = decode_lossy(&octets);
            prop_assert!(lossy.chars().count() <= octets.len().div_ceil(2));
        }

        #[test]
        fn prefix_is_a_split_point(text in any::<String>(), max in 0usize..64) {
            let cut = prefix_len(&text, max);
            let prefix = text.get(..cut).unwrap();
            prop_assert!(unit_count(prefix) <= max);
            prop_assert!(is_split_point(&encode(&text), 2 * unit_count(prefix)));
        }
    }
}
