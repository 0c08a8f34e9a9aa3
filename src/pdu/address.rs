//! Addresses: TP-OA/TP-DA/TP-RA (TS 23.040 §9.1.2.5, length in semi-octets)
//! and the SMSC address in front of the TPDU (TS 24.011 §8.2.5.1, length in
//! octets), with their type of address (TON/NPI) and digits in swapped
//! semi-octets (TS 23.040 §9.1.2.3), or an alphanumeric name in GSM 7-bit.

use std::fmt;

use super::error::{fail, octet, take_field, Field, PResult, Reason};
use super::gsm7;

/// Type of number, bits 6..4 of the type-of-address octet (TS 23.040
/// §9.1.2.5). Open: a value the spec reserves is carried, not rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TypeOfNumber {
    /// 000: "unknown" in the spec: the number is given as dialled.
    Unspecified,
    /// 001: international number (printed with a leading `+`).
    International,
    /// 010: national number.
    National,
    /// 011: network specific number.
    NetworkSpecific,
    /// 100: subscriber number.
    Subscriber,
    /// 101: alphanumeric (GSM 7-bit default alphabet, TS 23.038).
    Alphanumeric,
    /// 110: abbreviated number.
    Abbreviated,
    /// A reserved value (111), carried as is.
    Unknown(u8),
}

impl TypeOfNumber {
    /// From the three TON bits (0..=7).
    pub fn from_bits(bits: u8) -> Self {
        match bits & 0x07 {
            0 => Self::Unspecified,
            1 => Self::International,
            2 => Self::National,
            3 => Self::NetworkSpecific,
            4 => Self::Subscriber,
            5 => Self::Alphanumeric,
            6 => Self::Abbreviated,
            other => Self::Unknown(other),
        }
    }

    /// The three TON bits.
    pub fn bits(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::International => 1,
            Self::National => 2,
            Self::NetworkSpecific => 3,
            Self::Subscriber => 4,
            Self::Alphanumeric => 5,
            Self::Abbreviated => 6,
            Self::Unknown(b) => b & 0x07,
        }
    }

    /// A lower-case name for JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unknown",
            Self::International => "international",
            Self::National => "national",
            Self::NetworkSpecific => "network-specific",
            Self::Subscriber => "subscriber",
            Self::Alphanumeric => "alphanumeric",
            Self::Abbreviated => "abbreviated",
            Self::Unknown(_) => "reserved",
        }
    }
}

/// Numbering plan identification, bits 3..0 of the type-of-address octet
/// (TS 23.040 §9.1.2.5). Open like [`TypeOfNumber`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumberingPlan {
    /// 0000: unknown.
    Unspecified,
    /// 0001: ISDN/telephone numbering plan (E.164/E.163).
    Isdn,
    /// 0011: data numbering plan (X.121).
    Data,
    /// 0100: telex numbering plan.
    Telex,
    /// 0101: service centre specific plan 1.
    ServiceCentre1,
    /// 0110: service centre specific plan 2.
    ServiceCentre2,
    /// 1000: national numbering plan.
    National,
    /// 1001: private numbering plan.
    Private,
    /// 1010: ERMES numbering plan (ETSI DE/PS 3 01-3).
    Ermes,
    /// Any reserved value, carried as is.
    Unknown(u8),
}

impl NumberingPlan {
    /// From the four NPI bits.
    pub fn from_bits(bits: u8) -> Self {
        match bits & 0x0F {
            0 => Self::Unspecified,
            1 => Self::Isdn,
            3 => Self::Data,
            4 => Self::Telex,
            5 => Self::ServiceCentre1,
            6 => Self::ServiceCentre2,
            8 => Self::National,
            9 => Self::Private,
            10 => Self::Ermes,
            other => Self::Unknown(other),
        }
    }

    /// The four NPI bits.
    pub fn bits(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::Isdn => 1,
            Self::Data => 3,
            Self::Telex => 4,
            Self::ServiceCentre1 => 5,
            Self::ServiceCentre2 => 6,
            Self::National => 8,
            Self::Private => 9,
            Self::Ermes => 10,
            Self::Unknown(b) => b & 0x0F,
        }
    }

    /// A lower-case name for JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unknown",
            Self::Isdn => "isdn",
            Self::Data => "data",
            Self::Telex => "telex",
            Self::ServiceCentre1 => "sc-specific-1",
            Self::ServiceCentre2 => "sc-specific-2",
            Self::National => "national",
            Self::Private => "private",
            Self::Ermes => "ermes",
            Self::Unknown(_) => "reserved",
        }
    }
}

/// An address: its type and its value, which is a string of digits (with
/// `*#abc` for the BCD extension values 0xA..0xE) or, for
/// [`TypeOfNumber::Alphanumeric`], the decoded name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// Type of number.
    pub ton: TypeOfNumber,
    /// Numbering plan.
    pub npi: NumberingPlan,
    /// Digits (without `+`) or the alphanumeric text.
    pub value: String,
}

/// Longest TP-OA/DA/RA in semi-octets: the whole field is at most 12 octets
/// (TS 23.040 §9.1.2.5), i.e. 10 octets of value.
pub const MAX_ADDRESS_SEMI_OCTETS: usize = 20;

/// Longest SMSC address length octet: type of address plus 10 octets of
/// digits (TS 24.011 §8.2.5.1 limits the RP address to 12 octets with its
/// IEI and length octet... we accept the same 10 value octets as for TP
/// addresses).
pub const MAX_SMSC_OCTETS: usize = 11;

impl Address {
    /// Parses a phone number as a user types it: a leading `+` makes it
    /// international (ISDN plan), otherwise it is of unknown type. Spaces,
    /// dashes, dots and parentheses are ignored; digits, `*` and `#` are
    /// kept (the BCD extension digits `abc` only occur in received PDUs).
    /// Anything else, or more than 20 digits, is an error message.
    pub fn parse_number(text: &str) -> Result<Address, String> {
        let t = text.trim();
        let (ton, rest) = match t.strip_prefix('+') {
            Some(rest) => (TypeOfNumber::International, rest),
            None => (TypeOfNumber::Unspecified, t),
        };
        let mut value = String::new();
        for c in rest.chars() {
            match c {
                '0'..='9' | '*' | '#' => value.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                other => return Err(format!("{other:?} is not allowed in a phone number")),
            }
        }
        if value.is_empty() {
            return Err("empty phone number".into());
        }
        if value.len() > MAX_ADDRESS_SEMI_OCTETS {
            return Err(format!(
                "{} digits is more than the {MAX_ADDRESS_SEMI_OCTETS} an SMS address can carry",
                value.len()
            ));
        }
        Ok(Address {
            ton,
            npi: NumberingPlan::Isdn,
            value,
        })
    }

    /// An alphanumeric address (a sender name).
    pub fn alphanumeric(name: &str) -> Address {
        Address {
            ton: TypeOfNumber::Alphanumeric,
            npi: NumberingPlan::Unspecified,
            value: name.to_owned(),
        }
    }

    /// The type-of-address octet (bit 7 always set, TS 23.040 §9.1.2.5).
    pub fn toa(&self) -> u8 {
        0x80 | (self.ton.bits() << 4) | self.npi.bits()
    }

    /// Encodes as TP-OA/DA/RA: length in semi-octets, type, value.
    /// Errors when the value does not fit (or has characters the type cannot
    /// carry).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
        let (len, body) = self.encode_value()?;
        out.push(len);
        out.push(self.toa());
        out.extend_from_slice(&body);
        Ok(())
    }

    /// Encodes as an SMSC address: length in octets (type included), type,
    /// digits.
    pub fn encode_smsc(&self, out: &mut Vec<u8>) -> Result<(), String> {
        let (_, body) = self.encode_value()?;
        out.push((body.len() + 1) as u8);
        out.push(self.toa());
        out.extend_from_slice(&body);
        Ok(())
    }

    /// The value octets and the semi-octet count that goes in the length of
    /// a TP address.
    fn encode_value(&self) -> Result<(u8, Vec<u8>), String> {
        if self.ton == TypeOfNumber::Alphanumeric {
            let septets = gsm7::encode(&self.value, gsm7::Tables::default())
                .map_err(|e| format!("sender name: {e}"))?;
            let semi = (septets.len() * 7).div_ceil(4);
            if semi > MAX_ADDRESS_SEMI_OCTETS {
                return Err(format!(
                    "sender name {:?} is longer than 11 GSM 7-bit characters",
                    self.value
                ));
            }
            return Ok((semi as u8, gsm7::pack(&septets, 0)));
        }
        if self.value.len() > MAX_ADDRESS_SEMI_OCTETS {
            return Err(format!("number {:?} has more than 20 digits", self.value));
        }
        let mut nibbles = Vec::with_capacity(self.value.len());
        for c in self.value.chars() {
            nibbles
                .push(digit_nibble(c).ok_or_else(|| {
                    format!("{c:?} cannot be encoded in number {:?}", self.value)
                })?);
        }
        Ok((nibbles.len() as u8, pack_semi_octets(&nibbles)))
    }
}

impl fmt::Display for Address {
    /// International numbers get a leading `+`; names are printed as is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ton == TypeOfNumber::International && !self.value.starts_with('+') {
            f.write_str("+")?;
        }
        f.write_str(&self.value)
    }
}

/// The semi-octet value of a digit character (TS 23.040 §9.1.2.3).
fn digit_nibble(c: char) -> Option<u8> {
    Some(match c {
        '0'..='9' => c as u8 - b'0',
        '*' => 0xA,
        '#' => 0xB,
        'a' | 'A' => 0xC,
        'b' | 'B' => 0xD,
        'c' | 'C' => 0xE,
        _ => return None,
    })
}

/// The character of a semi-octet value; 0xF is the filler, `None`.
fn nibble_digit(n: u8) -> Option<char> {
    Some(match n {
        0..=9 => (b'0' + n) as char,
        0xA => '*',
        0xB => '#',
        0xC => 'a',
        0xD => 'b',
        0xE => 'c',
        _ => return None,
    })
}

/// Packs semi-octets low nibble first, padding an odd count with `F`.
pub fn pack_semi_octets(nibbles: &[u8]) -> Vec<u8> {
    nibbles
        .chunks(2)
        .map(|pair| match pair {
            [lo, hi] => (hi << 4) | (lo & 0x0F),
            [lo] => 0xF0 | (lo & 0x0F),
            _ => 0xFF,
        })
        .collect()
}

/// Decodes `count` digits from swapped semi-octets. A filler `F` may only end
/// the digits; a count that includes the final filler (a common encoder bug)
/// is tolerated by dropping it. `Err` carries the index of the bad octet.
pub fn decode_semi_octets(octets: &[u8], count: usize) -> Result<String, (usize, &'static str)> {
    let mut out = String::with_capacity(count);
    for i in 0..count {
        let o = octets
            .get(i / 2)
            .copied()
            .ok_or((i / 2, "too few digits"))?;
        let n = if i % 2 == 0 { o & 0x0F } else { o >> 4 };
        match nibble_digit(n) {
            Some(c) => out.push(c),
            // The filler: only acceptable as the very last semi-octet.
            None if i + 1 == count && i % 2 == 1 => {}
            None => return Err((i / 2, "filler F inside the digits")),
        }
    }
    Ok(out)
}

fn address_value<'a>(
    input: &'a [u8],
    toa: u8,
    semi_octets: usize,
    field: Field,
) -> PResult<'a, Address> {
    let ton = TypeOfNumber::from_bits(toa >> 4);
    let npi = NumberingPlan::from_bits(toa);
    let octets = semi_octets.div_ceil(2);
    let (rest, body) = take_field(octets, field)(input)?;
    let value = if ton == TypeOfNumber::Alphanumeric {
        let septets = semi_octets * 4 / 7;
        match gsm7::unpack(body, 0, septets) {
            Some(s) => gsm7::decode(&s, gsm7::Tables::default()),
            None => {
                return fail(
                    field,
                    Reason::Invalid("alphanumeric address too short"),
                    input,
                )
            }
        }
    } else {
        match decode_semi_octets(body, semi_octets) {
            Ok(v) => v,
            Err((i, why)) => {
                let at = input.get(i..).unwrap_or(&[]);
                return fail(field, Reason::Invalid(why), at);
            }
        }
    };
    Ok((rest, Address { ton, npi, value }))
}

/// Parses a TP-OA/DA/RA field (TS 23.040 §9.1.2.5): the length counts the
/// useful semi-octets of the value (for alphanumeric addresses, the
/// semi-octets the packed septets occupy).
pub fn parse_address(field: Field) -> impl Fn(&[u8]) -> PResult<'_, Address> {
    move |input: &[u8]| {
        let (i, len) = octet(field)(input)?;
        let len = usize::from(len);
        if len > MAX_ADDRESS_SEMI_OCTETS {
            return fail(
                field,
                Reason::TooLong {
                    len,
                    max: MAX_ADDRESS_SEMI_OCTETS,
                },
                input,
            );
        }
        let (i, toa) = octet(field)(i)?;
        address_value(i, toa, len, field)
    }
}

/// Parses the SMSC field in front of a TPDU (TS 27.005 §3.1 `<pdu>`, TS
/// 24.011 §8.2.5.1): length in octets including the type; `00` means none.
pub fn parse_smsc(input: &[u8]) -> PResult<'_, Option<Address>> {
    let (i, len) = octet(Field::SmscLength)(input)?;
    let len = usize::from(len);
    if len == 0 {
        return Ok((i, None));
    }
    if len > MAX_SMSC_OCTETS {
        return fail(
            Field::SmscLength,
            Reason::TooLong {
                len,
                max: MAX_SMSC_OCTETS,
            },
            input,
        );
    }
    let (rest, body) = take_field(len, Field::Smsc)(i)?;
    let (_, toa) = octet(Field::Smsc)(body)?;
    let digits = body.get(1..).unwrap_or(&[]);
    // The digit count is not given: two per octet, minus a final filler.
    let mut count = digits.len() * 2;
    if digits.last().is_some_and(|o| o >> 4 == 0x0F) {
        count -= 1;
    }
    let (_, addr) = address_value(digits, toa, count, Field::Smsc).map_err(|e| {
        e.map(|f| super::error::Fail {
            remaining: rest.len() + f.remaining,
            ..f
        })
    })?;
    Ok((rest, Some(addr)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(hex: &str) -> Address {
        let b = hex::decode(hex).unwrap();
        parse_address(Field::OriginatingAddress)(&b).unwrap().1
    }

    #[test]
    fn international_odd_digits_with_filler() {
        let a = tp("0B917228195339F4");
        assert_eq!(a.ton, TypeOfNumber::International);
        assert_eq!(a.npi, NumberingPlan::Isdn);
        assert_eq!(a.to_string(), "+27829135934");
        let mut out = Vec::new();
        a.encode(&mut out).unwrap();
        assert_eq!(hex::encode_upper(out), "0B917228195339F4");
    }

    #[test]
    fn bcd_extension_digits() {
        // TS 23.040 §9.1.2.3: 1010 '*', 1011 '#', 1100..1110 'a'..'c'.
        let a = tp("09E1BADCBE5AF1");
        assert_eq!(a.value, "*#abc#*51");
        assert_eq!(a.ton, TypeOfNumber::Abbreviated);
    }

    #[test]
    fn filler_counted_in_length_is_tolerated_but_not_inside() {
        assert_eq!(tp("0C910661345542F6").value, "60164355246");
        let b = hex::decode("0491F121").unwrap();
        assert!(parse_address(Field::OriginatingAddress)(&b).is_err());
    }

    #[test]
    fn overlong_and_truncated_addresses_are_errors() {
        let b = hex::decode("1591").unwrap();
        assert!(parse_address(Field::DestinationAddress)(&b).is_err());
        let b = hex::decode("0B917228").unwrap();
        assert!(parse_address(Field::DestinationAddress)(&b).is_err());
    }

    #[test]
    fn smsc_forms() {
        let b = hex::decode("07919130079229F0").unwrap();
        let (rest, a) = parse_smsc(&b).unwrap();
        assert!(rest.is_empty());
        assert_eq!(a.unwrap().to_string(), "+19037029920");
        assert_eq!(parse_smsc(&[0]).unwrap().1, None);
        let a = Address::parse_number("9037029920").unwrap();
        let mut out = Vec::new();
        a.encode_smsc(&mut out).unwrap();
        assert_eq!(hex::encode_upper(out), "06810973209902");
    }

    #[test]
    fn number_parsing() {
        let a = Address::parse_number("+44 (0)7700-900.123").unwrap();
        assert_eq!(a.to_string(), "+4407700900123");
        assert!(Address::parse_number("12x").is_err());
        assert!(Address::parse_number("").is_err());
        assert!(Address::parse_number("123456789012345678901").is_err());
    }
}
