//! GSM 7-bit default alphabet, its extension table and the national language
//! locking-shift and single-shift tables of 3GPP TS 23.038 §6.2.1 and Annex A;
//! septet packing (TS 23.038 §6.1.2.1.1) with the fill bits that follow a UDH.
//!
//! (Interface fixed by the crate skeleton; the bodies are filled in by the
//! alphabet work. Keep these signatures: the TPDU code depends on them.)

/// A national language identifier as carried in the UDH (IEI 0x24 locking
/// shift, IEI 0x25 single shift), TS 23.038 §6.2.1.2.4.
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

impl NationalLanguage {
    /// The identifier from a UDH IE (0x24/0x25); `None` for reserved values.
    pub fn from_code(code: u8) -> Option<Self> {
        todo!("gsm7: {code}")
    }

    /// The identifier carried in a UDH IE.
    pub fn code(self) -> u8 {
        todo!()
    }

    /// Parses a lower-case name as used on the command line and in config
    /// (`turkish`, `spanish`, `portuguese`, `bengali`, ..., `urdu`, `default`).
    pub fn from_name(name: &str) -> Option<Self> {
        todo!("gsm7: {name}")
    }

    /// The lower-case name, the inverse of [`NationalLanguage::from_name`].
    pub fn name(self) -> &'static str {
        todo!()
    }
}

/// Decodes unpacked septets (values 0..=127) into text with `tables`.
/// Never fails: an escape followed by a septet the single-shift table lacks
/// decodes as that septet of the locking table (TS 23.038 §6.2.1.1), and a
/// trailing lone escape decodes as a space.
pub fn decode(septets: &[u8], tables: Tables) -> String {
    todo!("gsm7 decode {} {tables:?}", septets.len())
}

/// Encodes text into septets, using the escape + single-shift table for
/// characters the locking table lacks.
pub fn encode(text: &str, tables: Tables) -> Result<Vec<u8>, Unencodable> {
    todo!("gsm7 encode {text} {tables:?}")
}

/// How many septets `c` takes with `tables` (1, or 2 with the escape), or
/// `None` when it cannot be encoded.
pub fn char_septets(c: char, tables: Tables) -> Option<usize> {
    todo!("{c} {tables:?}")
}

/// Packs septets into octets, LSB first, after `fill_bits` (0..=6) zero bits
/// that align the text after a UDH to a septet boundary (TS 23.040 §9.2.3.24).
pub fn pack(septets: &[u8], fill_bits: u8) -> Vec<u8> {
    todo!("{} {fill_bits}", septets.len())
}

/// Unpacks `count` septets that follow `fill_bits` fill bits in `octets`.
/// `None` when `octets` is too short to hold them.
pub fn unpack(octets: &[u8], fill_bits: u8, count: usize) -> Option<Vec<u8>> {
    todo!("{} {fill_bits} {count}", octets.len())
}
