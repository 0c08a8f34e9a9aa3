//! TP-UDL and TP-UD (TS 23.040 §9.2.3.16, §9.2.3.24): the optional header,
//! then text in GSM 7-bit (aligned to a septet boundary after the header by
//! fill bits), UCS-2, or 8-bit data.

use super::dcs::{Alphabet, Dcs};
use super::error::{fail, octet, take_field, Field, PResult, Reason};
use super::gsm7::{self, Tables};
use super::ucs2;
use super::udh::{parse_ies, Udh};

/// Most septets in one TP-UD (140 octets), TS 23.040 §9.2.3.16.
pub const MAX_SEPTETS: usize = 160;
/// Most octets in one TP-UD.
pub const MAX_OCTETS: usize = 140;

/// The body of the user data once the header is removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Body {
    /// Decoded text (GSM 7-bit or UCS-2).
    Text(String),
    /// 8-bit data, or compressed text (TS 23.042 compression is not
    /// decoded, so the octets are handed over as they are).
    Data(Vec<u8>),
}

/// Decoded user data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserData {
    /// TP-UDL as received (septets for GSM 7-bit, else octets).
    pub udl: u8,
    /// The header when TP-UDHI is set.
    pub header: Option<Udh>,
    /// The text or data.
    pub body: Body,
    /// The national language tables the text was decoded with.
    pub tables: Tables,
}

impl UserData {
    /// The text, if the body is text.
    pub fn text(&self) -> Option<&str> {
        match &self.body {
            Body::Text(t) => Some(t),
            Body::Data(_) => None,
        }
    }
}

/// Septets the header (with its UDHL octet) occupies, and the fill bits that
/// follow it (TS 23.040 §9.2.3.24: text starts on a septet boundary).
pub fn header_septets(header_octets: usize) -> (usize, u8) {
    let bits = header_octets * 8;
    let septets = bits.div_ceil(7);
    (septets, (septets * 7 - bits) as u8)
}

/// Splits off the header of `ud` when `udhi` is set. Returns the header, the
/// octets it took (with UDHL), and the rest.
fn split_header(ud: &[u8], udhi: bool) -> PResult<'_, (Option<Udh>, usize)> {
    if !udhi {
        return Ok((ud, (None, 0)));
    }
    let (i, udhl) = octet(Field::UserDataHeader)(ud)?;
    let (rest, body) = take_field(usize::from(udhl), Field::UserDataHeader)(i).or_else(|_| {
        fail(
            Field::UserDataHeader,
            Reason::Invalid("UDHL runs past the user data"),
            ud,
        )
    })?;
    let (_, udh) = parse_ies(body).map_err(|e| {
        // Offsets inside the header are relative to `body`; rebase them.
        e.map(|f| super::error::Fail {
            remaining: f.remaining + rest.len(),
            ..f
        })
    })?;
    Ok((rest, (Some(udh), usize::from(udhl) + 1)))
}

/// Parses TP-UDL and TP-UD for `dcs`. `base` are the tables assumed when the
/// header names none (the default tables, unless the caller knows better).
pub fn parse_user_data(
    dcs: Dcs,
    udhi: bool,
    base: Tables,
) -> impl Fn(&[u8]) -> PResult<'_, UserData> {
    move |input: &[u8]| {
        let (i, udl) = octet(Field::UserDataLength)(input)?;
        let septets = dcs.alphabet == Alphabet::Gsm7 && !dcs.compressed;
        let (max, octets) = if septets {
            (MAX_SEPTETS, (usize::from(udl) * 7).div_ceil(8))
        } else {
            (MAX_OCTETS, usize::from(udl))
        };
        if usize::from(udl) > max {
            return fail(
                Field::UserDataLength,
                Reason::TooLong {
                    len: udl.into(),
                    max,
                },
                input,
            );
        }
        let (rest, ud) = take_field(octets, Field::UserData)(i)?;
        let (after_header, (header, header_octets)) = split_header(ud, udhi)?;
        let tables = header.as_ref().map_or(base, |h| h.tables(base));
        let body = if septets {
            let (hs, fill) = if header.is_some() {
                header_septets(header_octets)
            } else {
                (0, 0)
            };
            let count = match usize::from(udl).checked_sub(hs) {
                Some(c) => c,
                None => {
                    return fail(
                        Field::UserDataLength,
                        Reason::Invalid("TP-UDL is shorter than the header"),
                        input,
                    )
                }
            };
            match gsm7::unpack(after_header, fill, count) {
                Some(s) => Body::Text(gsm7::decode(&s, tables)),
                None => {
                    return fail(
                        Field::UserData,
                        Reason::Invalid("fewer septets than TP-UDL"),
                        after_header,
                    )
                }
            }
        } else if dcs.alphabet == Alphabet::Ucs2 && !dcs.compressed {
            Body::Text(ucs2::decode_lossy(after_header))
        } else {
            Body::Data(after_header.to_vec())
        };
        Ok((
            rest,
            UserData {
                udl,
                header,
                body,
                tables,
            },
        ))
    }
}

/// The payload to put after an optional header.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// GSM 7-bit septets (packed here, after the fill bits).
    Septets(&'a [u8]),
    /// UCS-2 or 8-bit octets.
    Octets(&'a [u8]),
}

/// Appends TP-UDL and TP-UD. The caller has already made sure the payload
/// fits (see the splitter); the length octet saturates rather than wraps.
pub fn encode_user_data(header: Option<&Udh>, payload: Payload<'_>, out: &mut Vec<u8>) {
    let hdr = header.map(Udh::encode).unwrap_or_default();
    match payload {
        Payload::Septets(s) => {
            let (hs, fill) = if hdr.is_empty() {
                (0, 0)
            } else {
                header_septets(hdr.len())
            };
            out.push((hs + s.len()).min(255) as u8);
            out.extend_from_slice(&hdr);
            out.extend_from_slice(&gsm7::pack(s, fill));
        }
        Payload::Octets(o) => {
            out.push((hdr.len() + o.len()).min(255) as u8);
            out.extend_from_slice(&hdr);
            out.extend_from_slice(o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_bits_after_headers() {
        // 6-octet concat header: 48 bits -> 7 septets, 1 fill bit.
        assert_eq!(header_septets(6), (7, 1));
        // 7-octet header (16-bit concat): 56 bits -> 8 septets, 0 fill bits.
        assert_eq!(header_septets(7), (8, 0));
        assert_eq!(header_septets(5), (6, 2));
        assert_eq!(header_septets(12), (14, 2));
    }

    #[test]
    fn ucs2_with_header_and_lying_udl() {
        let dcs = Dcs::from_octet(0x08);
        let p = parse_user_data(dcs, true, Tables::default());
        let b = hex::decode("0A05000301020100480069").unwrap();
        let (_, ud) = p(&b).unwrap();
        assert_eq!(ud.text(), Some("Hi"));
        assert_eq!(ud.header.unwrap().concat().unwrap().total, 2);
        // UDL larger than the data present.
        let b = hex::decode("0C05000301020100480069").unwrap();
        assert!(p(&b).is_err());
        // UDHL larger than the UD.
        let b = hex::decode("040A000301").unwrap();
        assert!(p(&b).is_err());
        // UDL above 140 octets.
        let b = hex::decode("8D").unwrap();
        assert!(p(&b).is_err());
    }

    #[test]
    fn eight_bit_data() {
        let p = parse_user_data(Dcs::from_octet(0x04), false, Tables::default());
        let (_, ud) = p(&[3, 1, 2, 3]).unwrap();
        assert_eq!(ud.body, Body::Data(vec![1, 2, 3]));
    }
}
