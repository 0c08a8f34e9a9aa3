//! The user data header (TS 23.040 §9.2.3.24): a list of information
//! elements, each `IEI, IEDL, data`. Known elements are decoded; any other
//! is carried as [`Ie::Other`] so nothing is lost.

use super::error::{fail, octet, take_field, Field, PResult, Reason};
use super::gsm7::{NationalLanguage, Tables};

/// One information element of a UDH.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ie {
    /// IEI 0x00: concatenated short message, 8-bit reference (§9.2.3.24.1).
    Concat8 {
        /// Reference shared by all parts.
        reference: u8,
        /// Number of parts.
        total: u8,
        /// This part's number, from 1.
        seq: u8,
    },
    /// IEI 0x08: concatenated short message, 16-bit reference (§9.2.3.24.8).
    Concat16 {
        /// Reference shared by all parts.
        reference: u16,
        /// Number of parts.
        total: u8,
        /// This part's number, from 1.
        seq: u8,
    },
    /// IEI 0x04: application port addressing, 8-bit (§9.2.3.24.3).
    Ports8 {
        /// Destination port.
        dst: u8,
        /// Originator port.
        src: u8,
    },
    /// IEI 0x05: application port addressing, 16-bit (§9.2.3.24.4).
    Ports16 {
        /// Destination port.
        dst: u16,
        /// Originator port.
        src: u16,
    },
    /// IEI 0x01: special SMS message indication (§9.2.3.24.2).
    SpecialSms {
        /// Bit 7 of the first octet: store the message (else discard).
        store: bool,
        /// Bits 6..0: the indication type (voicemail 0, fax 1, email 2,
        /// other 3, extended types above).
        kind: u8,
        /// Number of messages waiting.
        count: u8,
    },
    /// IEI 0x24: national language single shift (§9.2.3.24.15), the
    /// language code as carried (see [`NationalLanguage::from_code`]).
    SingleShift(u8),
    /// IEI 0x25: national language locking shift (§9.2.3.24.16).
    LockingShift(u8),
    /// Any other element (or a known one with the wrong length), verbatim.
    Other {
        /// The element identifier.
        iei: u8,
        /// Its data.
        data: Vec<u8>,
    },
}

/// Concatenation information from either concat element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Concat {
    /// The reference (8 or 16 bits).
    pub reference: u16,
    /// Number of parts.
    pub total: u8,
    /// This part's number, from 1.
    pub seq: u8,
    /// Whether the reference is 16-bit (IEI 0x08).
    pub wide: bool,
}

/// Application ports from either port element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ports {
    /// Destination port.
    pub dst: u16,
    /// Originator port.
    pub src: u16,
    /// 8 or 16.
    pub bits: u8,
}

/// A parsed user data header.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Udh {
    /// The elements in the order received.
    pub ies: Vec<Ie>,
}

impl Ie {
    /// Builds an element from its identifier and data; known identifiers
    /// with the length their clause requires are decoded.
    pub fn from_parts(iei: u8, data: &[u8]) -> Ie {
        match (iei, data) {
            (0x00, &[reference, total, seq]) => Ie::Concat8 {
                reference,
                total,
                seq,
            },
            (0x08, &[r1, r2, total, seq]) => Ie::Concat16 {
                reference: u16::from_be_bytes([r1, r2]),
                total,
                seq,
            },
            (0x04, &[dst, src]) => Ie::Ports8 { dst, src },
            (0x05, &[d1, d2, s1, s2]) => Ie::Ports16 {
                dst: u16::from_be_bytes([d1, d2]),
                src: u16::from_be_bytes([s1, s2]),
            },
            (0x01, &[a, count]) => Ie::SpecialSms {
                store: a & 0x80 != 0,
                kind: a & 0x7F,
                count,
            },
            (0x24, &[code]) => Ie::SingleShift(code),
            (0x25, &[code]) => Ie::LockingShift(code),
            _ => Ie::Other {
                iei,
                data: data.to_vec(),
            },
        }
    }

    /// The element identifier.
    pub fn iei(&self) -> u8 {
        match self {
            Ie::Concat8 { .. } => 0x00,
            Ie::Concat16 { .. } => 0x08,
            Ie::Ports8 { .. } => 0x04,
            Ie::Ports16 { .. } => 0x05,
            Ie::SpecialSms { .. } => 0x01,
            Ie::SingleShift(_) => 0x24,
            Ie::LockingShift(_) => 0x25,
            Ie::Other { iei, .. } => *iei,
        }
    }

    /// Appends `IEI, IEDL, data`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut data: Vec<u8> = match self {
            Ie::Concat8 {
                reference,
                total,
                seq,
            } => vec![*reference, *total, *seq],
            Ie::Concat16 {
                reference,
                total,
                seq,
            } => {
                let r = reference.to_be_bytes();
                vec![r[0], r[1], *total, *seq]
            }
            Ie::Ports8 { dst, src } => vec![*dst, *src],
            Ie::Ports16 { dst, src } => {
                let (d, s) = (dst.to_be_bytes(), src.to_be_bytes());
                vec![d[0], d[1], s[0], s[1]]
            }
            Ie::SpecialSms { store, kind, count } => {
                vec![(u8::from(*store) << 7) | (kind & 0x7F), *count]
            }
            Ie::SingleShift(c) | Ie::LockingShift(c) => vec![*c],
            Ie::Other { data, .. } => data.clone(),
        };
        data.truncate(255);
        out.push(self.iei());
        out.push(data.len() as u8);
        out.extend_from_slice(&data);
    }

    /// Encoded size: identifier, length and data.
    pub fn encoded_len(&self) -> usize {
        let mut v = Vec::new();
        self.encode(&mut v);
        v.len()
    }
}

impl Udh {
    /// The concatenation element, if any (the first one wins).
    pub fn concat(&self) -> Option<Concat> {
        self.ies.iter().find_map(|ie| match *ie {
            Ie::Concat8 {
                reference,
                total,
                seq,
            } => Some(Concat {
                reference: u16::from(reference),
                total,
                seq,
                wide: false,
            }),
            Ie::Concat16 {
                reference,
                total,
                seq,
            } => Some(Concat {
                reference,
                total,
                seq,
                wide: true,
            }),
            _ => None,
        })
    }

    /// The application ports, if any.
    pub fn ports(&self) -> Option<Ports> {
        self.ies.iter().find_map(|ie| match *ie {
            Ie::Ports8 { dst, src } => Some(Ports {
                dst: u16::from(dst),
                src: u16::from(src),
                bits: 8,
            }),
            Ie::Ports16 { dst, src } => Some(Ports { dst, src, bits: 16 }),
            _ => None,
        })
    }

    /// The national language tables the header selects, starting from
    /// `base` (what the caller assumes when the header is silent). Reserved
    /// language codes fall back to the default tables (TS 23.038 §6.2.1.2.4).
    pub fn tables(&self, base: Tables) -> Tables {
        let mut t = base;
        for ie in &self.ies {
            match *ie {
                Ie::SingleShift(c) => t.single = NationalLanguage::from_code(c).unwrap_or_default(),
                Ie::LockingShift(c) => {
                    t.locking = NationalLanguage::from_code(c).unwrap_or_default()
                }
                _ => {}
            }
        }
        t
    }

    /// The header's octets without the UDHL octet.
    pub fn encode_body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for ie in &self.ies {
            ie.encode(&mut out);
        }
        out
    }

    /// The header with its UDHL octet in front.
    pub fn encode(&self) -> Vec<u8> {
        let body = self.encode_body();
        let mut out = Vec::with_capacity(body.len() + 1);
        out.push(body.len().min(255) as u8);
        out.extend_from_slice(&body);
        out
    }
}

/// Parses the information elements of a UDH body (the octets after UDHL).
/// An element whose length runs past the header is an error.
pub fn parse_ies(mut input: &[u8]) -> PResult<'_, Udh> {
    let mut ies = Vec::new();
    while !input.is_empty() {
        let start = input;
        let (i, iei) = octet(Field::UserDataHeader)(input)?;
        let (i, len) = octet(Field::UserDataHeader)(i).or_else(|_| {
            fail(
                Field::UserDataHeader,
                Reason::Invalid("element without a length"),
                start,
            )
        })?;
        let (i, data) = take_field(usize::from(len), Field::UserDataHeader)(i).or_else(|_| {
            fail(
                Field::UserDataHeader,
                Reason::Invalid("element length runs past the header"),
                start,
            )
        })?;
        ies.push(Ie::from_parts(iei, data));
        input = i;
    }
    Ok((input, Udh { ies }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(hex: &str) -> Result<Udh, ()> {
        let b = hex::decode(hex).unwrap();
        parse_ies(&b).map(|(_, u)| u).map_err(|_| ())
    }

    #[test]
    fn concat_and_ports() {
        let u = parse("08049f8e020105040b8423f0").unwrap();
        assert_eq!(
            u.concat(),
            Some(Concat {
                reference: 0x9f8e,
                total: 2,
                seq: 1,
                wide: true
            })
        );
        assert_eq!(
            u.ports(),
            Some(Ports {
                dst: 2948,
                src: 9200,
                bits: 16
            })
        );
        assert_eq!(hex::encode(u.encode_body()), "08049f8e020105040b8423f0");
        let u = parse("04026432").unwrap();
        assert_eq!(
            u.ports(),
            Some(Ports {
                dst: 100,
                src: 50,
                bits: 8
            })
        );
    }

    #[test]
    fn unknown_and_misshapen_elements_are_carried() {
        let u = parse("0A04000000000002AABB").unwrap();
        assert_eq!(u.ies.len(), 2);
        assert_eq!(
            u.ies[0],
            Ie::Other {
                iei: 0x0A,
                data: vec![0, 0, 0, 0]
            }
        );
        // A concat element with the wrong length is not a concat element.
        assert_eq!(
            u.ies[1],
            Ie::Other {
                iei: 0x00,
                data: vec![0xAA, 0xBB]
            }
        );
        assert_eq!(u.concat(), None);
    }

    #[test]
    fn lying_lengths_are_errors() {
        assert!(parse("0005010203").is_err());
        assert!(parse("00").is_err());
    }

    #[test]
    fn special_sms_indication() {
        let u = parse("01028003").unwrap();
        assert_eq!(
            u.ies[0],
            Ie::SpecialSms {
                store: true,
                kind: 0,
                count: 3
            }
        );
        let mut out = Vec::new();
        u.ies[0].encode(&mut out);
        assert_eq!(out, vec![1, 2, 0x80, 3]);
    }
}
