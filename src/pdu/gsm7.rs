//! GSM 7-bit default alphabet, its extension table and the national language
//! locking-shift and single-shift tables of 3GPP TS 23.038 §6.2.1 and Annex A;
//! septet packing (TS 23.038 §6.1.2.1.1) with the fill bits that follow a UDH.
//!
//! Decoding never fails (every septet sequence has a defined display, see
//! [`decode`]); encoding reports the first character the tables in force
//! lack ([`Unencodable`]) and never substitutes look-alikes: no Unicode
//! normalisation happens here. [`best_tables`] picks national tables for a
//! text. `docs/alphabets.md` describes the behaviour for users.
//!
//! ```
//! use smsgate::pdu::gsm7::{self, Tables};
//!
//! let septets = gsm7::encode("hellohello", Tables::default()).unwrap();
//! let octets = gsm7::pack(&septets, 0);
//! assert_eq!(octets, [0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37]);
//! let back = gsm7::unpack(&octets, 0, septets.len()).unwrap();
//! assert_eq!(gsm7::decode(&back, Tables::default()), "hellohello");
//! ```

mod tables;

use std::sync::OnceLock;

pub use tables::Table;

/// A national language identifier as carried in the UDH (IEI 0x25 locking
/// shift, IEI 0x24 single shift; TS 23.040 §9.2.3.24.15/16), with the values
/// of TS 23.038 §6.2.1.2.4.
///
/// `Default` (0) means "no national table": the default alphabet, or for the
/// single shift, the default extension table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NationalLanguage {
    /// 0: the default alphabet / default extension table.
    #[default]
    Default,
    /// 1
    Turkish,
    /// 2 (single shift only; its locking shift is the default alphabet)
    Spanish,
    /// 3
    Portuguese,
    /// 4
    Bengali,
    /// 5
    Gujarati,
    /// 6
    Hindi,
    /// 7
    Kannada,
    /// 8
    Malayalam,
    /// 9
    Oriya,
    /// 10
    Punjabi,
    /// 11
    Tamil,
    /// 12
    Telugu,
    /// 13
    Urdu,
}

/// The pair of tables in force for a message: the locking shift replaces the
/// basic alphabet, the single shift replaces the extension table reached with
/// the escape septet 0x1B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tables {
    /// Table for ordinary septets (IEI 0x25 locking shift).
    pub locking: NationalLanguage,
    /// Table for septets that follow the escape 0x1B (IEI 0x24 single shift).
    pub single: NationalLanguage,
}

/// A character that has no representation in the tables in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("character {ch:?} at index {index} is not in the GSM 7-bit tables in force")]
pub struct Unencodable {
    /// The character.
    pub ch: char,
    /// Its index in the text, counted in `char`s.
    pub index: usize,
}

/// The escape septet that selects the (single-shift) extension table.
pub const ESCAPE: u8 = 0x1B;

/// Shown for a septet that has no character in the tables in force (a gap in
/// an Annex A table, or a value above 127), so that decoding never fails.
pub const REPLACEMENT: char = '\u{FFFD}';

impl NationalLanguage {
    /// Every identifier, in code order (the index is the code).
    pub const ALL: [Self; 14] = [
        Self::Default,
        Self::Turkish,
        Self::Spanish,
        Self::Portuguese,
        Self::Bengali,
        Self::Gujarati,
        Self::Hindi,
        Self::Kannada,
        Self::Malayalam,
        Self::Oriya,
        Self::Punjabi,
        Self::Tamil,
        Self::Telugu,
        Self::Urdu,
    ];

    /// The identifier from a UDH IE (0x24/0x25); `None` for reserved values.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// The identifier carried in a UDH IE.
    pub fn code(self) -> u8 {
        // Fieldless enum declared in code order, see `ALL`.
        self as u8
    }

    /// Parses a lower-case name as used on the command line and in config
    /// (`turkish`, `spanish`, `portuguese`, `bengali`, ..., `urdu`, `default`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.name() == name)
    }

    /// The lower-case name, the inverse of [`NationalLanguage::from_name`].
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Turkish => "turkish",
            Self::Spanish => "spanish",
            Self::Portuguese => "portuguese",
            Self::Bengali => "bengali",
            Self::Gujarati => "gujarati",
            Self::Hindi => "hindi",
            Self::Kannada => "kannada",
            Self::Malayalam => "malayalam",
            Self::Oriya => "oriya",
            Self::Punjabi => "punjabi",
            Self::Tamil => "tamil",
            Self::Telugu => "telugu",
            Self::Urdu => "urdu",
        }
    }

    /// Whether Annex A defines a locking-shift table of its own for this
    /// language. Spanish has only a single-shift table (A.2.2); `Default`
    /// is the default alphabet itself.
    pub fn has_locking_table(self) -> bool {
        !matches!(self, Self::Default | Self::Spanish)
    }

    /// The table that replaces the basic alphabet (A.3.x); Spanish and
    /// `Default` give the default alphabet of §6.2.1.
    pub fn locking_table(self) -> &'static Table {
        match self {
            Self::Default | Self::Spanish => &tables::DEFAULT_LOCK,
            Self::Turkish => &tables::TURKISH_LOCK,
            Self::Portuguese => &tables::PORTUGUESE_LOCK,
            Self::Bengali => &tables::BENGALI_LOCK,
            Self::Gujarati => &tables::GUJARATI_LOCK,
            Self::Hindi => &tables::HINDI_LOCK,
            Self::Kannada => &tables::KANNADA_LOCK,
            Self::Malayalam => &tables::MALAYALAM_LOCK,
            Self::Oriya => &tables::ORIYA_LOCK,
            Self::Punjabi => &tables::PUNJABI_LOCK,
            Self::Tamil => &tables::TAMIL_LOCK,
            Self::Telugu => &tables::TELUGU_LOCK,
            Self::Urdu => &tables::URDU_LOCK,
        }
    }

    /// The table reached through the escape (A.2.x); `Default` gives the
    /// extension table of §6.2.1.1.
    pub fn single_shift_table(self) -> &'static Table {
        match self {
            Self::Default => &tables::DEFAULT_SHIFT,
            Self::Turkish => &tables::TURKISH_SHIFT,
            Self::Spanish => &tables::SPANISH_SHIFT,
            Self::Portuguese => &tables::PORTUGUESE_SHIFT,
            Self::Bengali => &tables::BENGALI_SHIFT,
            Self::Gujarati => &tables::GUJARATI_SHIFT,
            Self::Hindi => &tables::HINDI_SHIFT,
            Self::Kannada => &tables::KANNADA_SHIFT,
            Self::Malayalam => &tables::MALAYALAM_SHIFT,
            Self::Oriya => &tables::ORIYA_SHIFT,
            Self::Punjabi => &tables::PUNJABI_SHIFT,
            Self::Tamil => &tables::TAMIL_SHIFT,
            Self::Telugu => &tables::TELUGU_SHIFT,
            Self::Urdu => &tables::URDU_SHIFT,
        }
    }
}

impl std::fmt::Display for NationalLanguage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Reverse lookup of one table, built once on first use because encoding is
/// on the hot path of every outgoing message.
struct Reverse {
    /// Septet for each ASCII character, [`Reverse::NONE`] where absent: the
    /// common case is answered by one index.
    ascii: [u8; 128],
    /// The remaining characters, sorted for binary search (at most 128).
    other: Vec<(char, u8)>,
}

impl Reverse {
    const NONE: u8 = 0xFF;

    fn build(table: &Table) -> Self {
        let mut ascii = [Self::NONE; 128];
        let mut other: Vec<(char, u8)> = Vec::new();
        // Where the spec lists a character twice (the Indic single-shift
        // tables repeat '¡' and '*'; Kannada A.3.7 has U+0CAA at 0x24, a
        // well-known misprint for U+0CA1, and at 0x3D), the later position
        // wins: it is the one in the table's natural order.
        for (septet, ch) in (0u8..).zip(table.iter()) {
            let Some(ch) = *ch else { continue };
            match usize::try_from(u32::from(ch)).ok().filter(|&i| i < 128) {
                Some(i) => {
                    if let Some(slot) = ascii.get_mut(i) {
                        *slot = septet;
                    }
                }
                None => {
                    other.retain(|&(c, _)| c != ch);
                    other.push((ch, septet));
                }
            }
        }
        other.sort_unstable();
        Self { ascii, other }
    }

    fn get(&self, ch: char) -> Option<u8> {
        if ch.is_ascii() {
            let septet = *self.ascii.get(ch as usize)?;
            (septet != Self::NONE).then_some(septet)
        } else {
            self.other
                .binary_search_by_key(&ch, |&(c, _)| c)
                .ok()
                .and_then(|i| self.other.get(i))
                .map(|&(_, septet)| septet)
        }
    }
}

const LANGUAGES: usize = NationalLanguage::ALL.len();
static LOCKING_REVERSE: [OnceLock<Reverse>; LANGUAGES] = [const { OnceLock::new() }; LANGUAGES];
static SHIFT_REVERSE: [OnceLock<Reverse>; LANGUAGES] = [const { OnceLock::new() }; LANGUAGES];

fn reverse(
    cache: &'static [OnceLock<Reverse>; LANGUAGES],
    lang: NationalLanguage,
    table: fn(NationalLanguage) -> &'static Table,
) -> Option<&'static Reverse> {
    cache
        .get(usize::from(lang.code()))
        .map(|cell| cell.get_or_init(|| Reverse::build(table(lang))))
}

/// How one character is written: a septet of the locking table, or the
/// escape followed by a septet of the single-shift table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    Locking(u8),
    Shifted(u8),
}

impl Code {
    fn septets(self) -> usize {
        match self {
            Self::Locking(_) => 1,
            Self::Shifted(_) => 2,
        }
    }

    fn write(self, out: &mut Vec<u8>) {
        match self {
            Self::Locking(s) => out.push(s),
            Self::Shifted(s) => out.extend_from_slice(&[ESCAPE, s]),
        }
    }
}

/// The reverse tables for one [`Tables`] pair, fetched once per call so
/// the per-character work is one or two array/binary-search lookups.
#[derive(Clone, Copy)]
struct Lookup {
    locking: Option<&'static Reverse>,
    single: Option<&'static Reverse>,
}

impl Lookup {
    fn new(tables: Tables) -> Self {
        Self {
            locking: reverse(
                &LOCKING_REVERSE,
                tables.locking,
                NationalLanguage::locking_table,
            ),
            single: reverse(
                &SHIFT_REVERSE,
                tables.single,
                NationalLanguage::single_shift_table,
            ),
        }
    }

    /// The locking table wins over the single shift: it costs one septet,
    /// not two (so CR, LF and space always come from the basic table).
    fn code(self, ch: char) -> Option<Code> {
        if let Some(s) = self.locking.and_then(|r| r.get(ch)) {
            return Some(Code::Locking(s));
        }
        self.single.and_then(|r| r.get(ch)).map(Code::Shifted)
    }
}

fn table_char(table: &Table, septet: u8) -> Option<char> {
    table.get(usize::from(septet)).copied().flatten()
}

/// Decodes unpacked septets (values 0..=127) into text with `tables`.
/// Never fails: an escape followed by a septet the single-shift table lacks
/// decodes as that septet of the locking table (TS 23.038 §6.2.1.1), and a
/// trailing lone escape decodes as a space.
///
/// Escape + escape is reserved for a future second extension table; the
/// spec asks receivers to show a space for it, and the septet after the pair
/// is read afresh. A septet with no character at all (a gap in an Annex A
/// table, or a value above 127) becomes [`REPLACEMENT`].
pub fn decode(septets: &[u8], tables: Tables) -> String {
    let lock = tables.locking.locking_table();
    let shift = tables.single.single_shift_table();
    let mut out = String::with_capacity(septets.len());
    let mut iter = septets.iter().copied();
    while let Some(septet) = iter.next() {
        let ch = if septet == ESCAPE {
            match iter.next() {
                None | Some(ESCAPE) => Some(' '),
                Some(next) => table_char(shift, next).or_else(|| table_char(lock, next)),
            }
        } else {
            table_char(lock, septet)
        };
        out.push(ch.unwrap_or(REPLACEMENT));
    }
    out
}

/// Encodes text into septets, using the escape + single-shift table for
/// characters the locking table lacks.
pub fn encode(text: &str, tables: Tables) -> Result<Vec<u8>, Unencodable> {
    let lookup = Lookup::new(tables);
    let mut out = Vec::with_capacity(text.len());
    for (index, ch) in text.chars().enumerate() {
        lookup
            .code(ch)
            .ok_or(Unencodable { ch, index })?
            .write(&mut out);
    }
    Ok(out)
}

/// Encodes what can be encoded and leaves out every other character, which
/// is returned so the caller can log or refuse. Only for callers that asked
/// for lossy text explicitly; [`encode`] is the default.
pub fn encode_discarding(text: &str, tables: Tables) -> (Vec<u8>, Vec<Unencodable>) {
    let mut out = Vec::with_capacity(text.len());
    let mut dropped = Vec::new();
    let lookup = Lookup::new(tables);
    for (index, ch) in text.chars().enumerate() {
        match lookup.code(ch) {
            Some(code) => code.write(&mut out),
            None => dropped.push(Unencodable { ch, index }),
        }
    }
    (out, dropped)
}

/// How many septets `c` takes with `tables` (1, or 2 with the escape), or
/// `None` when it cannot be encoded.
pub fn char_septets(c: char, tables: Tables) -> Option<usize> {
    Lookup::new(tables).code(c).map(Code::septets)
}

/// How many septets `text` takes with `tables`, or `None` when some
/// character cannot be encoded.
pub fn septet_count(text: &str, tables: Tables) -> Option<usize> {
    let lookup = Lookup::new(tables);
    text.chars()
        .map(|c| lookup.code(c).map(Code::septets))
        .sum()
}

/// The byte length of the longest prefix of `text` that fits in
/// `max_septets`. An escape sequence is never cut in two, because a
/// character and its escape are counted together; this is the split point
/// for a part of a concatenated message (TS 23.040 §9.2.3.24.1).
pub fn prefix_len(text: &str, tables: Tables, max_septets: usize) -> Result<usize, Unencodable> {
    let lookup = Lookup::new(tables);
    let mut used = 0usize;
    for (index, (offset, ch)) in text.char_indices().enumerate() {
        let n = lookup
            .code(ch)
            .map(Code::septets)
            .ok_or(Unencodable { ch, index })?;
        if used + n > max_septets {
            return Ok(offset);
        }
        used += n;
    }
    Ok(text.len())
}

/// Picks the tables for `text` among the national languages in `allowed`,
/// or `None` when no combination encodes every character.
///
/// The order of preference keeps the message as plain as possible for the
/// receiving phone: first the default alphabet with its extension table (no
/// national IE in the UDH), then a single-shift table alone (one IE, IEI
/// 0x24; every phone can fall back to the default alphabet for the other
/// characters), then a locking-shift table with or without a single-shift
/// table (IEI 0x25 and possibly 0x24). Within a step the combination with
/// the fewest septets, counting the UDH it needs, wins; ties go to the
/// language listed first in `allowed`.
pub fn best_tables(text: &str, allowed: &[NationalLanguage]) -> Option<Tables> {
    let default = Tables::default();
    if septet_count(text, default).is_some() {
        return Some(default);
    }
    let singles = allowed.iter().map(|&single| Tables {
        locking: NationalLanguage::Default,
        single,
    });
    if let Some(best) = cheapest(text, singles) {
        return Some(best);
    }
    let lockings = allowed
        .iter()
        .filter(|l| l.has_locking_table())
        .flat_map(|&locking| {
            std::iter::once(NationalLanguage::Default)
                .chain(allowed.iter().copied())
                .map(move |single| Tables { locking, single })
        });
    cheapest(text, lockings)
}

/// The candidate with the fewest septets including its national-language
/// IEs (3 octets each, plus the UDHL octet), the first one on a tie.
fn cheapest(text: &str, candidates: impl Iterator<Item = Tables>) -> Option<Tables> {
    let mut best: Option<(usize, Tables)> = None;
    for tables in candidates {
        let Some(septets) = septet_count(text, tables) else {
            continue;
        };
        let ies = usize::from(tables.locking != NationalLanguage::Default)
            + usize::from(tables.single != NationalLanguage::Default);
        let udh_octets = if ies == 0 { 0 } else { 1 + 3 * ies };
        let cost = septets + (udh_octets * 8).div_ceil(7);
        if best.map_or(true, |(c, _)| cost < c) {
            best = Some((cost, tables));
        }
    }
    best.map(|(_, tables)| tables)
}

/// The fill bits (0..=6) that follow a UDH of `udh_octets` octets (counting
/// the UDHL octet itself) so that the first septet starts on a septet
/// boundary of the user data (TS 23.040 §9.2.3.24).
pub fn fill_bits(udh_octets: usize) -> u8 {
    // (7 - (bits % 7)) % 7, computed on the remainder so it cannot overflow.
    let rem = (udh_octets % 7) * 8 % 7;
    ((7 - rem) % 7) as u8
}

/// Packs septets into octets, LSB first, after `fill_bits` (0..=6) zero bits
/// that align the text after a UDH to a septet boundary (TS 23.040 §9.2.3.24).
///
/// Only the low 7 bits of each value are used.
pub fn pack(septets: &[u8], fill_bits: u8) -> Vec<u8> {
    let start = usize::from(fill_bits);
    let total_bits = start.saturating_add(septets.len().saturating_mul(7));
    let mut out = vec![0u8; total_bits.div_ceil(8)];
    let mut bit = start;
    for &septet in septets {
        let shifted = u16::from(septet & 0x7F) << (bit % 8);
        let [low, high] = shifted.to_le_bytes();
        let at = bit / 8;
        if let Some(octet) = out.get_mut(at) {
            *octet |= low;
        }
        if let Some(octet) = out.get_mut(at + 1) {
            *octet |= high;
        }
        bit += 7;
    }
    out
}

/// Unpacks `count` septets that follow `fill_bits` fill bits in `octets`.
/// `None` when `octets` is too short to hold them.
pub fn unpack(octets: &[u8], fill_bits: u8, count: usize) -> Option<Vec<u8>> {
    let needed = count.checked_mul(7)?.checked_add(usize::from(fill_bits))?;
    if needed > octets.len().saturating_mul(8) {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    let mut bit = usize::from(fill_bits);
    for _ in 0..count {
        let at = bit / 8;
        let low = *octets.get(at)?;
        // The septet may end exactly at the last octet: no high octet then.
        let high = octets.get(at + 1).copied().unwrap_or(0);
        let word = u16::from_le_bytes([low, high]) >> (bit % 8);
        out.push((word & 0x7F) as u8);
        bit += 7;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DEFAULT: Tables = Tables {
        locking: NationalLanguage::Default,
        single: NationalLanguage::Default,
    };
    const TURKISH: Tables = Tables {
        locking: NationalLanguage::Turkish,
        single: NationalLanguage::Turkish,
    };

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02X}")).collect()
    }

    #[test]
    fn hellohello_packs_as_in_ts_23_038() {
        let septets = encode("hellohello", DEFAULT).unwrap();
        assert_eq!(septets, b"hellohello");
        let packed = pack(&septets, 0);
        assert_eq!(hex(&packed), "E8329BFD4697D9EC37");
        assert_eq!(unpack(&packed, 0, 10).unwrap(), septets);
        assert_eq!(decode(&septets, DEFAULT), "hellohello");
    }

    #[test]
    fn fill_bits_one_to_six_shift_the_bit_stream() {
        // "Hello" after 1..=6 zero fill bits, worked out bit by bit from
        // TS 23.040 §9.2.3.24 (fill bits are the low bits of the first octet).
        let expected = [
            (1, "906536FB0D"),
            (2, "20CB6CF61B"),
            (3, "4096D9EC37"),
            (4, "802CB3D96F"),
            (5, "005966B3DF"),
            (6, "00B2CC66BF01"),
        ];
        for (fill, want) in expected {
            let packed = pack(b"Hello", fill);
            assert_eq!(hex(&packed), want, "fill bits {fill}");
            assert_eq!(unpack(&packed, fill, 5).unwrap(), b"Hello");
        }
    }

    #[test]
    fn fill_bits_after_udh() {
        // 6 octets (UDHL + 8-bit concat IE) = 48 bits: 1 fill bit to 49.
        assert_eq!(fill_bits(6), 1);
        // 7 octets (16-bit concat IE) = 56 bits, already a septet boundary.
        assert_eq!(fill_bits(7), 0);
        assert_eq!(fill_bits(0), 0);
        assert_eq!(fill_bits(1), 6);
        for n in 0..200usize {
            assert_eq!((n * 8 + usize::from(fill_bits(n))) % 7, 0, "{n}");
        }
    }

    #[test]
    fn unpack_refuses_short_input() {
        assert_eq!(unpack(&[0xE8, 0x32], 0, 3), None);
        assert_eq!(unpack(&[0xE8, 0x32], 0, 2).map(|v| v.len()), Some(2));
        assert_eq!(unpack(&[], 0, usize::MAX), None);
        assert_eq!(unpack(&[0xFF], 1, 1), Some(vec![0x7F]));
        assert_eq!(unpack(&[0xFF], 2, 1), None);
    }

    #[test]
    fn extension_characters_go_through_the_escape() {
        let text = "{}[]~\\^|€\u{000C}";
        let septets = encode(text, DEFAULT).unwrap();
        assert_eq!(
            septets,
            [
                0x1B, 0x28, 0x1B, 0x29, 0x1B, 0x3C, 0x1B, 0x3E, 0x1B, 0x3D, 0x1B, 0x2F, 0x1B, 0x14,
                0x1B, 0x40, 0x1B, 0x65, 0x1B, 0x0A
            ]
        );
        assert_eq!(septet_count(text, DEFAULT), Some(20));
        assert_eq!(char_septets('€', DEFAULT), Some(2));
        assert_eq!(char_septets('e', DEFAULT), Some(1));
        assert_eq!(decode(&septets, DEFAULT), text);
    }

    #[test]
    fn basic_table_characters_are_never_escaped() {
        for ch in ['\r', '\n', ' ', '@', '$', 'Ä', 'ß'] {
            assert_eq!(char_septets(ch, DEFAULT), Some(1), "{ch:?}");
        }
    }

    #[test]
    fn escape_rules_of_6_2_1_1() {
        // Escape + septet missing from the extension table: the basic char.
        assert_eq!(decode(&[0x1B, b'A'], DEFAULT), "A");
        // Lone trailing escape: a space.
        assert_eq!(decode(b"ab\x1B", DEFAULT), "ab ");
        // Escape escape (reserved): a space; the next septet is read afresh.
        assert_eq!(decode(&[0x1B, 0x1B, b'x'], DEFAULT), " x");
        // A value outside 0..=127 cannot crash.
        assert_eq!(decode(&[0x80, b'x'], DEFAULT), "\u{FFFD}x");
    }

    #[test]
    fn turkish_locking_shift() {
        let text = "ığİşĞçŞ€";
        assert!(encode(text, DEFAULT).is_err());
        let septets = encode(text, TURKISH).unwrap();
        // All in the Turkish locking table A.3.1, one septet each.
        assert_eq!(septets, [0x07, 0x0C, 0x40, 0x1D, 0x0B, 0x60, 0x1C, 0x04]);
        assert_eq!(decode(&septets, TURKISH), text);
        // The same septets under the default alphabet mean other letters.
        assert_eq!(decode(&septets, DEFAULT), "ìø¡æØ¿Æè");
    }

    #[test]
    fn turkish_single_shift_only() {
        let tables = Tables {
            locking: NationalLanguage::Default,
            single: NationalLanguage::Turkish,
        };
        let septets = encode("aş", tables).unwrap();
        assert_eq!(septets, [b'a', 0x1B, 0x73]);
        assert_eq!(decode(&septets, tables), "aş");
    }

    #[test]
    fn unencodable_reports_the_character_and_index() {
        let err = encode("ab世c", DEFAULT).unwrap_err();
        assert_eq!(
            err,
            Unencodable {
                ch: '世', index: 2
            }
        );
        let (septets, dropped) = encode_discarding("a世界b您c好！", DEFAULT);
        assert_eq!(septets, b"abc");
        assert_eq!(dropped.len(), 5);
        assert_eq!(char_septets('世', DEFAULT), None);
        assert_eq!(septet_count("a世", DEFAULT), None);
    }

    #[test]
    fn no_silent_normalisation() {
        // 'é' is in the default alphabet but 'ê' is not: no mapping to 'e'.
        assert!(encode("é", DEFAULT).is_ok());
        assert_eq!(
            encode("ê", DEFAULT).unwrap_err(),
            Unencodable { ch: 'ê', index: 0 }
        );
    }

    #[test]
    fn language_codes_and_names_round_trip() {
        for (code, lang) in (0u8..).zip(NationalLanguage::ALL) {
            assert_eq!(lang.code(), code);
            assert_eq!(NationalLanguage::from_code(code), Some(lang));
            assert_eq!(NationalLanguage::from_name(lang.name()), Some(lang));
        }
        assert_eq!(NationalLanguage::from_code(14), None);
        assert_eq!(NationalLanguage::from_code(255), None);
        assert_eq!(NationalLanguage::from_name("Turkish"), None);
        assert_eq!(
            NationalLanguage::from_name("portuguese"),
            Some(NationalLanguage::Portuguese)
        );
    }

    #[test]
    fn spanish_locking_is_the_default_alphabet() {
        assert_eq!(
            NationalLanguage::Spanish.locking_table(),
            NationalLanguage::Default.locking_table()
        );
        assert!(!NationalLanguage::Spanish.has_locking_table());
    }

    #[test]
    fn kannada_duplicate_encodes_at_its_natural_position() {
        let tables = Tables {
            locking: NationalLanguage::Kannada,
            single: NationalLanguage::Kannada,
        };
        assert_eq!(encode("\u{0CAA}", tables).unwrap(), [0x3D]);
        assert_eq!(decode(&[0x24, 0x3D], tables), "\u{0CAA}\u{0CAA}");
    }

    #[test]
    fn best_tables_prefers_plain_then_single_then_locking() {
        use NationalLanguage::*;
        let all = NationalLanguage::ALL;
        assert_eq!(best_tables("hello {x}", &all), Some(Tables::default()));
        // 'ş' exists in the Turkish single-shift table: no locking needed.
        assert_eq!(
            best_tables("kış", &[Turkish]),
            Some(Tables {
                locking: Default,
                single: Turkish
            })
        );
        // Spanish single shift has 'á'; it is enough.
        assert_eq!(
            best_tables("¿Qué tal? á", &[Turkish, Spanish]),
            Some(Tables {
                locking: Default,
                single: Spanish
            })
        );
        // Hindi letters need the Hindi locking table.
        let hindi = best_tables("नमस्ते", &[Hindi]).unwrap();
        assert_eq!(hindi.locking, Hindi);
        assert!(encode("नमस्ते", hindi).is_ok());
        // Not allowed, or not encodable at all.
        assert_eq!(best_tables("नमस्ते", &[Turkish]), None);
        assert_eq!(best_tables("世界", &all), None);
        assert_eq!(best_tables("ş", &[]), None);
    }

    #[test]
    fn prefix_len_never_splits_an_escape() {
        assert_eq!(prefix_len("abc€", DEFAULT, 4).unwrap(), 3);
        assert_eq!(prefix_len("abc€", DEFAULT, 5).unwrap(), "abc€".len());
        assert_eq!(prefix_len("", DEFAULT, 0).unwrap(), 0);
        assert!(prefix_len("a世", DEFAULT, 1).is_err());
        assert!(prefix_len("a世", DEFAULT, 5).is_err());
    }

    /// Every character of the tables in force, to build arbitrary texts from.
    fn alphabet(tables: Tables) -> Vec<char> {
        let lock = tables.locking.locking_table().iter();
        let shift = tables.single.single_shift_table().iter();
        lock.chain(shift).flatten().copied().collect()
    }

    fn any_tables() -> impl Strategy<Value = Tables> {
        (0u8..14, 0u8..14).prop_map(|(l, s)| Tables {
            locking: NationalLanguage::from_code(l).unwrap(),
            single: NationalLanguage::from_code(s).unwrap(),
        })
    }

    proptest! {
        #[test]
        fn pack_unpack_round_trip(septets in proptest::collection::vec(0u8..128, 0..400), fill in 0u8..=6) {
            let packed = pack(&septets, fill);
            prop_assert_eq!(packed.len(), (usize::from(fill) + 7 * septets.len()).div_ceil(8));
            prop_assert_eq!(unpack(&packed, fill, septets.len()), Some(septets));
        }

        #[test]
        fn encode_decode_round_trip(
            (tables, text) in any_tables().prop_flat_map(|t| {
                let chars = alphabet(t);
                (Just(t), proptest::collection::vec(proptest::sample::select(chars), 0..200))
            })
        ) {
            let text: String = text.into_iter().collect();
            let septets = encode(&text, tables).unwrap();
            prop_assert!(septets.iter().all(|&s| s < 128));
            prop_assert_eq!(Some(septets.len()), septet_count(&text, tables));
            prop_assert_eq!(decode(&septets, tables), text);
        }

        #[test]
        fn best_tables_result_encodes_the_text(
            text in proptest::collection::vec(
                proptest::sample::select(
                    alphabet(TURKISH).into_iter()
                        .chain(alphabet(Tables { locking: NationalLanguage::Hindi, single: NationalLanguage::Spanish }))
                        .chain(['世', '😀'])
                        .collect::<Vec<char>>()),
                0..40),
            allowed in proptest::sample::subsequence(NationalLanguage::ALL.to_vec(), 0..=14),
        ) {
            let text: String = text.into_iter().collect();
            match best_tables(&text, &allowed) {
                Some(t) => {
                    prop_assert!(encode(&text, t).is_ok());
                    if encode(&text, DEFAULT).is_ok() {
                        prop_assert_eq!(t, DEFAULT);
                    }
                    prop_assert!(t == DEFAULT || allowed.contains(&t.locking) || allowed.contains(&t.single));
                }
                None => {
                    let mut langs = allowed.clone();
                    langs.push(NationalLanguage::Default);
                    for &locking in &langs {
                        for &single in &langs {
                            let t = Tables { locking, single };
                            prop_assert!(encode(&text, t).is_err(), "{:?} encodes it", t);
                        }
                    }
                }
            }
        }

        #[test]
        fn prefix_fits_and_keeps_whole_characters(
            text in proptest::collection::vec(proptest::sample::select(alphabet(DEFAULT)), 0..60),
            max in 0usize..80,
        ) {
            let text: String = text.into_iter().collect();
            let cut = prefix_len(&text, DEFAULT, max).unwrap();
            let (head, tail) = text.split_at(cut);
            let used = septet_count(head, DEFAULT).unwrap();
            prop_assert!(used <= max);
            if let Some(next) = tail.chars().next() {
                prop_assert!(used + char_septets(next, DEFAULT).unwrap() > max);
            }
            let mut septets = encode(head, DEFAULT).unwrap();
            septets.extend(encode(tail, DEFAULT).unwrap());
            prop_assert_eq!(decode(&septets, DEFAULT), text);
        }

        #[test]
        fn decode_never_panics(septets in proptest::collection::vec(any::<u8>(), 0..300), tables in any_tables()) {
            let text = decode(&septets, tables);
            prop_assert!(text.chars().count() <= septets.len());
        }
    }
}
