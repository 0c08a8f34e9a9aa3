//! TP-DCS, the data coding scheme (TS 23.038 §4), and TP-PID, the protocol
//! identifier (TS 23.040 §9.2.3.9).

/// How the user data is coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alphabet {
    /// GSM 7-bit default alphabet (with national tables when signalled).
    Gsm7,
    /// 8-bit data.
    Data8,
    /// UCS-2 (decoded as UTF-16BE, so surrogate pairs work).
    Ucs2,
}

impl Alphabet {
    /// `gsm7`, `8bit` or `ucs2`, the names of the CLI's JSON.
    pub fn name(self) -> &'static str {
        match self {
            Alphabet::Gsm7 => "gsm7",
            Alphabet::Data8 => "8bit",
            Alphabet::Ucs2 => "ucs2",
        }
    }
}

/// Message class (TS 23.038 §4): where the receiving phone puts the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageClass {
    /// Class 0: flash, shown immediately and not stored.
    Class0,
    /// Class 1: mobile equipment specific (default storage).
    Class1,
    /// Class 2: (U)SIM specific.
    Class2,
    /// Class 3: terminal equipment specific.
    Class3,
}

impl MessageClass {
    /// From the two class bits.
    pub fn from_bits(bits: u8) -> Self {
        match bits & 0x03 {
            0 => Self::Class0,
            1 => Self::Class1,
            2 => Self::Class2,
            _ => Self::Class3,
        }
    }

    /// The class number 0..=3.
    pub fn number(self) -> u8 {
        match self {
            Self::Class0 => 0,
            Self::Class1 => 1,
            Self::Class2 => 2,
            Self::Class3 => 3,
        }
    }
}

/// The kind of message waiting indicated by the MWI coding groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitingKind {
    /// Voicemail message waiting.
    Voicemail,
    /// Fax message waiting.
    Fax,
    /// Electronic mail message waiting.
    Email,
    /// Other message waiting.
    Other,
}

impl WaitingKind {
    /// A lower-case name for JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Voicemail => "voicemail",
            Self::Fax => "fax",
            Self::Email => "email",
            Self::Other => "other",
        }
    }
}

/// A message waiting indication carried in the DCS (coding groups 1100,
/// 1101, 1110 of TS 23.038 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageWaiting {
    /// Indication on (bit 3) or off.
    pub active: bool,
    /// What is waiting.
    pub kind: WaitingKind,
    /// Group 1100: the receiver may discard the message text.
    pub discard: bool,
}

/// The coding group of a DCS octet, TS 23.038 §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DcsGroup {
    /// 00xx: general data coding.
    General,
    /// 01xx: marked for automatic deletion, otherwise as general.
    AutomaticDeletion,
    /// 1000..1011: reserved; received as GSM 7-bit default (TS 23.038 §4).
    Reserved,
    /// 1100/1101/1110: message waiting indication.
    MessageWaiting,
    /// 1111: data coding / message class.
    DataCodingClass,
}

/// A decoded TP-DCS. Built from the octet with [`Dcs::from_octet`]; the
/// raw octet is kept so that nothing is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dcs {
    /// The octet as received or sent.
    pub raw: u8,
    /// Its coding group.
    pub group: DcsGroup,
    /// The alphabet of the user data.
    pub alphabet: Alphabet,
    /// The message class, when the DCS gives one.
    pub class: Option<MessageClass>,
    /// Text compressed per TS 23.042 (general groups, bit 5).
    pub compressed: bool,
    /// A message waiting indication.
    pub mwi: Option<MessageWaiting>,
}

impl Dcs {
    /// Decodes a DCS octet (TS 23.038 §4). Never fails: reserved values are
    /// read as the spec tells a receiver to (GSM 7-bit default alphabet).
    pub fn from_octet(raw: u8) -> Dcs {
        let mut dcs = Dcs {
            raw,
            group: DcsGroup::General,
            alphabet: Alphabet::Gsm7,
            class: None,
            compressed: false,
            mwi: None,
        };
        match raw >> 4 {
            0x0..=0x7 => {
                dcs.group = if raw & 0x40 != 0 {
                    DcsGroup::AutomaticDeletion
                } else {
                    DcsGroup::General
                };
                dcs.compressed = raw & 0x20 != 0;
                if raw & 0x10 != 0 {
                    dcs.class = Some(MessageClass::from_bits(raw));
                }
                dcs.alphabet = match (raw >> 2) & 0x03 {
                    1 => Alphabet::Data8,
                    2 => Alphabet::Ucs2,
                    // 11 is reserved and read as the default alphabet.
                    _ => Alphabet::Gsm7,
                };
            }
            0x8..=0xB => dcs.group = DcsGroup::Reserved,
            g @ 0xC..=0xE => {
                dcs.group = DcsGroup::MessageWaiting;
                dcs.alphabet = if g == 0xE {
                    Alphabet::Ucs2
                } else {
                    Alphabet::Gsm7
                };
                dcs.mwi = Some(MessageWaiting {
                    active: raw & 0x08 != 0,
                    kind: match raw & 0x03 {
                        0 => WaitingKind::Voicemail,
                        1 => WaitingKind::Fax,
                        2 => WaitingKind::Email,
                        _ => WaitingKind::Other,
                    },
                    discard: g == 0xC,
                });
            }
            _ => {
                dcs.group = DcsGroup::DataCodingClass;
                dcs.alphabet = if raw & 0x04 != 0 {
                    Alphabet::Data8
                } else {
                    Alphabet::Gsm7
                };
                dcs.class = Some(MessageClass::from_bits(raw));
            }
        }
        dcs
    }

    /// The general-group DCS for `alphabet` and an optional class
    /// (uncompressed), as the encoder emits it.
    pub fn general(alphabet: Alphabet, class: Option<MessageClass>) -> Dcs {
        let a = match alphabet {
            Alphabet::Gsm7 => 0x00,
            Alphabet::Data8 => 0x04,
            Alphabet::Ucs2 => 0x08,
        };
        let c = class.map_or(0, |c| 0x10 | c.number());
        Dcs::from_octet(a | c)
    }
}

/// TP-PID (TS 23.040 §9.2.3.9), kept as its octet with accessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ProtocolId(pub u8);

impl ProtocolId {
    /// Short message type 0 (0x40): acknowledge and discard.
    pub fn is_type0(self) -> bool {
        self.0 == 0x40
    }

    /// Replace short message type 1..7 (0x41..=0x47) or return call (0x5F).
    pub fn replace_type(self) -> Option<u8> {
        matches!(self.0, 0x41..=0x47).then_some(self.0 & 0x07)
    }

    /// Telematic interworking (bits 7..5 = 001): the device type bits.
    pub fn telematic_device(self) -> Option<u8> {
        (self.0 & 0xE0 == 0x20).then_some(self.0 & 0x1F)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dcs_groups() {
        let d = Dcs::from_octet(0x00);
        assert_eq!((d.alphabet, d.class), (Alphabet::Gsm7, None));
        let d = Dcs::from_octet(0x08);
        assert_eq!(d.alphabet, Alphabet::Ucs2);
        let d = Dcs::from_octet(0x19);
        assert_eq!(
            (d.alphabet, d.class),
            (Alphabet::Ucs2, Some(MessageClass::Class1))
        );
        let d = Dcs::from_octet(0xF0);
        assert_eq!(
            (d.alphabet, d.class),
            (Alphabet::Gsm7, Some(MessageClass::Class0))
        );
        let d = Dcs::from_octet(0xF4);
        assert_eq!(
            (d.alphabet, d.class),
            (Alphabet::Data8, Some(MessageClass::Class0))
        );
        let d = Dcs::from_octet(0x53);
        assert_eq!(d.group, DcsGroup::AutomaticDeletion);
        assert_eq!(d.class, Some(MessageClass::Class3));
        let d = Dcs::from_octet(0x30);
        assert!(d.compressed);
        let d = Dcs::from_octet(0xC8);
        let m = d.mwi.unwrap();
        assert!(m.active && m.discard);
        assert_eq!(m.kind, WaitingKind::Voicemail);
        let d = Dcs::from_octet(0xE2);
        assert_eq!(d.alphabet, Alphabet::Ucs2);
        assert!(!d.mwi.unwrap().active);
        assert_eq!(Dcs::from_octet(0x85).group, DcsGroup::Reserved);
    }

    #[test]
    fn general_roundtrip() {
        let d = Dcs::general(Alphabet::Gsm7, Some(MessageClass::Class0));
        assert_eq!(d.raw, 0x10);
        assert_eq!(Dcs::general(Alphabet::Ucs2, None).raw, 0x08);
    }
}
