//! The error of the PDU layer: which field was wrong, at which octet offset,
//! and why. One enum for the whole codec, as for every layer of smsgate.

use std::fmt;

/// A TPDU field (or the SMSC field in front of it), as named by 3GPP TS 23.040
/// §9.2.3 and TS 27.005 §3.1, used to say where a PDU went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The hexadecimal text itself (odd length, non-hex characters).
    Hex,
    /// The SMSC address length octet (TS 24.011 §8.2.5.1, counts octets).
    SmscLength,
    /// The SMSC address (type of address and digits).
    Smsc,
    /// The first octet of the TPDU (TP-MTI and flags).
    FirstOctet,
    /// TP-MR, the message reference.
    MessageReference,
    /// TP-OA, the originating address (SMS-DELIVER).
    OriginatingAddress,
    /// TP-DA, the destination address (SMS-SUBMIT, SMS-COMMAND).
    DestinationAddress,
    /// TP-RA, the recipient address (SMS-STATUS-REPORT).
    RecipientAddress,
    /// TP-PID, the protocol identifier.
    ProtocolId,
    /// TP-DCS, the data coding scheme.
    DataCodingScheme,
    /// TP-SCTS, the service centre time stamp.
    ServiceCentreTimestamp,
    /// TP-DT, the discharge time.
    DischargeTime,
    /// TP-VP, the validity period.
    ValidityPeriod,
    /// TP-ST, the status.
    Status,
    /// TP-PI, the parameter indicator.
    ParameterIndicator,
    /// TP-FCS, the failure cause (reports).
    FailureCause,
    /// TP-CT, the command type.
    CommandType,
    /// TP-MN, the message number (SMS-COMMAND).
    MessageNumber,
    /// TP-CDL / TP-CD, the command data.
    CommandData,
    /// TP-UDL, the user data length.
    UserDataLength,
    /// TP-UDH, the user data header.
    UserDataHeader,
    /// TP-UD, the user data (text or octets).
    UserData,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Hex => "hex",
            Field::SmscLength => "SMSC length",
            Field::Smsc => "SMSC address",
            Field::FirstOctet => "first octet (TP-MTI)",
            Field::MessageReference => "TP-MR",
            Field::OriginatingAddress => "TP-OA",
            Field::DestinationAddress => "TP-DA",
            Field::RecipientAddress => "TP-RA",
            Field::ProtocolId => "TP-PID",
            Field::DataCodingScheme => "TP-DCS",
            Field::ServiceCentreTimestamp => "TP-SCTS",
            Field::DischargeTime => "TP-DT",
            Field::ValidityPeriod => "TP-VP",
            Field::Status => "TP-ST",
            Field::ParameterIndicator => "TP-PI",
            Field::FailureCause => "TP-FCS",
            Field::CommandType => "TP-CT",
            Field::MessageNumber => "TP-MN",
            Field::CommandData => "TP-CD",
            Field::UserDataLength => "TP-UDL",
            Field::UserDataHeader => "TP-UDH",
            Field::UserData => "TP-UD",
        })
    }
}

/// Why a field is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The PDU ends before the field does.
    Truncated {
        /// Octets the field needs.
        needed: usize,
        /// Octets left in the PDU.
        available: usize,
    },
    /// A length is larger than the field can ever be.
    TooLong {
        /// The length found.
        len: usize,
        /// The largest allowed.
        max: usize,
    },
    /// The field has a value TS 23.040 reserves or forbids.
    Invalid(&'static str),
    /// The hex text has an odd number of digits.
    OddHex(usize),
    /// The hex text holds a character that is not a hex digit.
    NotHex(char),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Truncated { needed, available } => write!(
                f,
                "truncated: needs {needed} octet(s), only {available} left"
            ),
            Reason::TooLong { len, max } => write!(f, "length {len} exceeds the maximum {max}"),
            Reason::Invalid(why) => f.write_str(why),
            Reason::OddHex(n) => write!(f, "odd number of hex digits ({n})"),
            Reason::NotHex(c) => write!(f, "{c:?} is not a hex digit"),
        }
    }
}

/// The error of the PDU layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    /// Bytes that are not a valid PDU: the field, the octet offset from the
    /// start of the bytes given (including the SMSC field when present) and
    /// the reason.
    #[error("{field} at octet {offset}: {reason}")]
    Malformed {
        /// The field that is wrong.
        field: Field,
        /// Octet offset where the problem was found: the start of the
        /// field, or of the part of it that is wrong or missing (for hex
        /// input, the digit index divided by two).
        offset: usize,
        /// What is wrong with it.
        reason: Reason,
    },
    /// Values that cannot be encoded into a PDU.
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// What could not be encoded (`recipient`, `text`, ...).
        what: &'static str,
        /// Why.
        reason: String,
    },
}

impl PduError {
    /// An encoding error.
    pub fn encode(what: &'static str, reason: impl Into<String>) -> Self {
        PduError::Encode {
            what,
            reason: reason.into(),
        }
    }
}

/// The error carried through the nom parsers: like [`PduError`], but the
/// position is the length of the input that was left, because a parser only
/// sees its suffix. [`Fail::at`] turns it into an absolute offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    /// The field that is wrong.
    pub field: Field,
    /// What is wrong with it.
    pub reason: Reason,
    /// Octets of input left when the field started.
    pub remaining: usize,
}

impl Fail {
    /// A failure of `field` whose input starts at `input`.
    pub fn new(field: Field, reason: Reason, input: &[u8]) -> Self {
        Fail {
            field,
            reason,
            remaining: input.len(),
        }
    }

    /// The absolute error, for a parse that started on `total` octets.
    pub fn at(self, total: usize) -> PduError {
        PduError::Malformed {
            field: self.field,
            offset: total.saturating_sub(self.remaining),
            reason: self.reason,
        }
    }
}

impl<'a> nom::error::ParseError<&'a [u8]> for Fail {
    fn from_error_kind(input: &'a [u8], _kind: nom::error::ErrorKind) -> Self {
        // Our parsers map every nom error to a named field; this is only the
        // fallback for a combinator that fails on its own.
        Fail::new(Field::UserData, Reason::Invalid("malformed"), input)
    }

    fn append(_input: &'a [u8], _kind: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

/// The result of the crate's nom parsers.
pub type PResult<'a, T> = nom::IResult<&'a [u8], T, Fail>;

/// `n` octets of `field`, or a truncation error that says how many were left.
pub fn take_field(n: usize, field: Field) -> impl Fn(&[u8]) -> PResult<'_, &[u8]> {
    move |input: &[u8]| {
        use nom::Parser;
        nom::bytes::complete::take::<usize, &[u8], Fail>(n)
            .parse(input)
            .map_err(|_| {
                nom::Err::Error(Fail::new(
                    field,
                    Reason::Truncated {
                        needed: n,
                        available: input.len(),
                    },
                    input,
                ))
            })
    }
}

/// One octet of `field`.
pub fn octet(field: Field) -> impl Fn(&[u8]) -> PResult<'_, u8> {
    move |input: &[u8]| {
        use nom::Parser;
        nom::number::complete::u8::<&[u8], Fail>
            .parse(input)
            .map_err(|_| {
                nom::Err::Error(Fail::new(
                    field,
                    Reason::Truncated {
                        needed: 1,
                        available: 0,
                    },
                    input,
                ))
            })
    }
}

/// A hard failure of `field` at `input`.
pub fn fail<T>(field: Field, reason: Reason, input: &[u8]) -> PResult<'_, T> {
    Err(nom::Err::Failure(Fail::new(field, reason, input)))
}

/// Unwraps nom's error wrapper (our parsers never return `Incomplete`: they
/// all work on complete input).
pub fn into_fail(e: nom::Err<Fail>, input: &[u8]) -> Fail {
    match e {
        nom::Err::Error(f) | nom::Err::Failure(f) => f,
        nom::Err::Incomplete(_) => {
            Fail::new(Field::UserData, Reason::Invalid("incomplete input"), input)
        }
    }
}

/// Decodes a hex string (either case, surrounding whitespace ignored).
pub fn from_hex(hex: &str) -> Result<Vec<u8>, PduError> {
    let hex = hex.trim();
    if let Some((i, c)) = hex.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(PduError::Malformed {
            field: Field::Hex,
            offset: i / 2,
            reason: Reason::NotHex(c),
        });
    }
    if hex.len() % 2 != 0 {
        return Err(PduError::Malformed {
            field: Field::Hex,
            offset: hex.len() / 2,
            reason: Reason::OddHex(hex.len()),
        });
    }
    hex::decode(hex).map_err(|_| PduError::Malformed {
        field: Field::Hex,
        offset: 0,
        reason: Reason::Invalid("not hex"),
    })
}
