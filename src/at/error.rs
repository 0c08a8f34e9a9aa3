//! `+CME ERROR` (3GPP TS 27.007 §9.2) and `+CMS ERROR` (3GPP TS 27.005
//! §3.2.5) codes as enums, with their spec meaning and a retry
//! classification, plus the error types of the AT layer.
//!
//! Modems report these errors either numerically (`+CME ERROR: 11`, after
//! `AT+CMEE=1`) or verbosely (`+CME ERROR: SIM PIN required`, after
//! `AT+CMEE=2`); [`CmeError::parse`] and [`CmsError::parse`] accept both. A
//! code the spec does not define is carried as `Unknown(raw)`, never rejected.

use std::fmt;

/// Whether retrying the same operation later can succeed.
///
/// The router uses this to decide between "retry with backoff" and "fail the
/// message now". Unknown (vendor) codes count as temporary: the caller caps
/// its retries anyway, and failing a message for good on a code nobody
/// understands loses more than one extra attempt costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Retry {
    /// The condition is expected to clear by itself (SIM busy, network
    /// congestion, no service): retry later.
    Temporary,
    /// Retrying the same request will fail the same way (bad PDU, barred
    /// destination, PIN required): do not retry.
    Permanent,
}

impl fmt::Display for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Retry::Temporary => "temporary",
            Retry::Permanent => "permanent",
        })
    }
}

/// Defines a protocol error enum with one variant per spec code, its spec
/// text and its retry class, plus `Unknown(u16)`.
macro_rules! error_codes {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $variant:ident = $code:literal, $text:literal, $retry:ident; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $(
                #[doc = concat!("`", stringify!($code), "`: ", $text, ".")]
                $variant,
            )*
            /// A code the spec does not define here (often vendor specific).
            Unknown(u16),
        }

        impl $name {
            /// Every defined code with its spec text, for lookups by text.
            const TABLE: &'static [(u16, &'static str)] = &[ $( ($code, $text), )* ];

            /// The enum value for a numeric code.
            pub fn from_code(code: u16) -> Self {
                match code {
                    $( $code => $name::$variant, )*
                    other => $name::Unknown(other),
                }
            }

            /// The numeric code.
            pub fn code(&self) -> u16 {
                match self {
                    $( $name::$variant => $code, )*
                    $name::Unknown(raw) => *raw,
                }
            }

            /// The meaning the spec gives this code.
            pub fn description(&self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )*
                    $name::Unknown(_) => "unknown error code",
                }
            }

            /// Whether a retry can help (see [`Retry`]).
            pub fn retry(&self) -> Retry {
                match self {
                    $( $name::$variant => Retry::$retry, )*
                    $name::Unknown(_) => Retry::Temporary,
                }
            }

            /// Parses the text after `+CxS ERROR:`: a number, or the spec
            /// text of a code (case and surrounding spaces ignored). `None`
            /// for an empty or unrecognised text.
            pub fn parse(text: &str) -> Option<Self> {
                let text = text.trim();
                if text.is_empty() {
                    return None;
                }
                if let Ok(code) = text.parse::<u16>() {
                    return Some(Self::from_code(code));
                }
                Self::TABLE
                    .iter()
                    .find(|(_, t)| t.eq_ignore_ascii_case(text))
                    .map(|(code, _)| Self::from_code(*code))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} ({}, {})", self.description(), self.code(), self.retry())
            }
        }
    };
}

error_codes! {
    /// Mobile termination error result code `+CME ERROR: <err>`, 3GPP TS
    /// 27.007 §9.2.1 (general errors) and §9.2.2 (GPRS/EPS errors).
    CmeError {
        PhoneFailure = 0, "phone failure", Temporary;
        NoConnection = 1, "no connection to phone", Temporary;
        AdaptorLinkReserved = 2, "phone-adaptor link reserved", Temporary;
        OperationNotAllowed = 3, "operation not allowed", Permanent;
        OperationNotSupported = 4, "operation not supported", Permanent;
        PhSimPinRequired = 5, "PH-SIM PIN required", Permanent;
        PhFsimPinRequired = 6, "PH-FSIM PIN required", Permanent;
        PhFsimPukRequired = 7, "PH-FSIM PUK required", Permanent;
        SimNotInserted = 10, "SIM not inserted", Permanent;
        SimPinRequired = 11, "SIM PIN required", Permanent;
        SimPukRequired = 12, "SIM PUK required", Permanent;
        SimFailure = 13, "SIM failure", Permanent;
        SimBusy = 14, "SIM busy", Temporary;
        SimWrong = 15, "SIM wrong", Permanent;
        IncorrectPassword = 16, "incorrect password", Permanent;
        SimPin2Required = 17, "SIM PIN2 required", Permanent;
        SimPuk2Required = 18, "SIM PUK2 required", Permanent;
        MemoryFull = 20, "memory full", Temporary;
        InvalidIndex = 21, "invalid index", Permanent;
        NotFound = 22, "not found", Permanent;
        MemoryFailure = 23, "memory failure", Temporary;
        TextTooLong = 24, "text string too long", Permanent;
        InvalidTextChars = 25, "invalid characters in text string", Permanent;
        DialStringTooLong = 26, "dial string too long", Permanent;
        InvalidDialChars = 27, "invalid characters in dial string", Permanent;
        NoNetworkService = 30, "no network service", Temporary;
        NetworkTimeout = 31, "network timeout", Temporary;
        EmergencyOnly = 32, "network not allowed - emergency calls only", Temporary;
        NetPersPinRequired = 40, "network personalization PIN required", Permanent;
        NetPersPukRequired = 41, "network personalization PUK required", Permanent;
        NetSubsetPersPinRequired = 42, "network subset personalization PIN required", Permanent;
        NetSubsetPersPukRequired = 43, "network subset personalization PUK required", Permanent;
        ProviderPersPinRequired = 44, "service provider personalization PIN required", Permanent;
        ProviderPersPukRequired = 45, "service provider personalization PUK required", Permanent;
        CorporatePersPinRequired = 46, "corporate personalization PIN required", Permanent;
        CorporatePersPukRequired = 47, "corporate personalization PUK required", Permanent;
        HiddenKeyRequired = 48, "hidden key required", Permanent;
        EapMethodNotSupported = 49, "EAP method not supported", Permanent;
        IncorrectParameters = 50, "incorrect parameters", Permanent;
        Unknown100 = 100, "unknown", Temporary;
        IllegalMs = 103, "illegal MS", Permanent;
        IllegalMe = 106, "illegal ME", Permanent;
        GprsNotAllowed = 107, "GPRS services not allowed", Permanent;
        PlmnNotAllowed = 111, "PLMN not allowed", Permanent;
        LocationAreaNotAllowed = 112, "location area not allowed", Permanent;
        RoamingNotAllowed = 113, "roaming not allowed in this location area", Permanent;
        ServiceOptionNotSupported = 132, "service option not supported", Permanent;
        ServiceOptionNotSubscribed = 133, "requested service option not subscribed", Permanent;
        ServiceOptionOutOfOrder = 134, "service option temporarily out of order", Temporary;
        UnspecifiedGprsError = 148, "unspecified GPRS error", Temporary;
        PdpAuthFailure = 149, "PDP authentication failure", Permanent;
        InvalidMobileClass = 150, "invalid mobile class", Permanent;
    }
}

error_codes! {
    /// Message service failure result code `+CMS ERROR: <err>`, 3GPP TS
    /// 27.005 §3.2.5. Values 0..=127 are RP cause values of 3GPP TS 24.011
    /// Annex E-2, 128..=255 TP-Failure-Cause values of 3GPP TS 23.040
    /// §9.2.3.22, 300..=500 are defined by 27.005 itself; 512 and up are
    /// manufacturer specific (`Unknown`).
    CmsError {
        UnassignedNumber = 1, "unassigned (unallocated) number", Permanent;
        OperatorBarring = 8, "operator determined barring", Permanent;
        CallBarred = 10, "call barred", Permanent;
        TransferRejected = 21, "short message transfer rejected", Permanent;
        DestinationOutOfService = 27, "destination out of service", Temporary;
        UnidentifiedSubscriber = 28, "unidentified subscriber", Permanent;
        FacilityRejected = 29, "facility rejected", Permanent;
        UnknownSubscriber = 30, "unknown subscriber", Permanent;
        NetworkOutOfOrder = 38, "network out of order", Temporary;
        TemporaryFailure = 41, "temporary failure", Temporary;
        Congestion = 42, "congestion", Temporary;
        ResourcesUnavailable = 47, "resources unavailable, unspecified", Temporary;
        FacilityNotSubscribed = 50, "requested facility not subscribed", Permanent;
        FacilityNotImplemented = 69, "requested facility not implemented", Permanent;
        InvalidReference = 81, "invalid short message transfer reference value", Permanent;
        InvalidMessage = 95, "invalid message, unspecified", Permanent;
        InvalidMandatoryInfo = 96, "invalid mandatory information", Permanent;
        MessageTypeNotImplemented = 97, "message type non-existent or not implemented", Permanent;
        MessageNotCompatible = 98, "message not compatible with short message protocol state", Permanent;
        InfoElementNotImplemented = 99, "information element non-existent or not implemented", Permanent;
        ProtocolError = 111, "protocol error, unspecified", Temporary;
        Interworking = 127, "interworking, unspecified", Temporary;
        TelematicNotSupported = 128, "telematic interworking not supported", Permanent;
        Type0NotSupported = 129, "short message type 0 not supported", Permanent;
        CannotReplace = 130, "cannot replace short message", Permanent;
        UnspecifiedPid = 143, "unspecified TP-PID error", Permanent;
        DcsNotSupported = 144, "data coding scheme (alphabet) not supported", Permanent;
        ClassNotSupported = 145, "message class not supported", Permanent;
        UnspecifiedDcs = 159, "unspecified TP-DCS error", Permanent;
        CommandCannotBeActioned = 160, "command cannot be actioned", Permanent;
        CommandUnsupported = 161, "command unsupported", Permanent;
        UnspecifiedCommand = 175, "unspecified TP-Command error", Permanent;
        TpduNotSupported = 176, "TPDU not supported", Permanent;
        ScBusy = 192, "SC busy", Temporary;
        NoScSubscription = 193, "no SC subscription", Permanent;
        ScSystemFailure = 194, "SC system failure", Temporary;
        InvalidSmeAddress = 195, "invalid SME address", Permanent;
        DestinationBarred = 196, "destination SME barred", Permanent;
        DuplicateRejected = 197, "SM rejected-duplicate SM", Permanent;
        VpfNotSupported = 198, "TP-VPF not supported", Permanent;
        VpNotSupported = 199, "TP-VP not supported", Permanent;
        SimStorageFull = 208, "(U)SIM SMS storage full", Temporary;
        NoSimStorage = 209, "no SMS storage capability in (U)SIM", Permanent;
        ErrorInMs = 210, "error in MS", Temporary;
        MemoryExceeded = 211, "memory capacity exceeded", Temporary;
        SatBusy = 212, "(U)SIM application toolkit busy", Temporary;
        SimDataDownloadError = 213, "(U)SIM data download error", Temporary;
        UnspecifiedCause = 255, "unspecified error cause", Temporary;
        MeFailure = 300, "ME failure", Temporary;
        SmsServiceReserved = 301, "SMS service of ME reserved", Temporary;
        OperationNotAllowed = 302, "operation not allowed", Permanent;
        OperationNotSupported = 303, "operation not supported", Permanent;
        InvalidPduParameter = 304, "invalid PDU mode parameter", Permanent;
        InvalidTextParameter = 305, "invalid text mode parameter", Permanent;
        SimNotInserted = 310, "(U)SIM not inserted", Permanent;
        SimPinRequired = 311, "(U)SIM PIN required", Permanent;
        PhSimPinRequired = 312, "PH-(U)SIM PIN required", Permanent;
        SimFailure = 313, "(U)SIM failure", Permanent;
        SimBusy = 314, "(U)SIM busy", Temporary;
        SimWrong = 315, "(U)SIM wrong", Permanent;
        SimPukRequired = 316, "(U)SIM PUK required", Permanent;
        SimPin2Required = 317, "(U)SIM PIN2 required", Permanent;
        SimPuk2Required = 318, "(U)SIM PUK2 required", Permanent;
        MemoryFailure = 320, "memory failure", Temporary;
        InvalidMemoryIndex = 321, "invalid memory index", Permanent;
        MemoryFull = 322, "memory full", Temporary;
        SmscAddressUnknown = 330, "SMSC address unknown", Permanent;
        NoNetworkService = 331, "no network service", Temporary;
        NetworkTimeout = 332, "network timeout", Temporary;
        NoCnmaExpected = 340, "no +CNMA acknowledgement expected", Permanent;
        UnknownError = 500, "unknown error", Temporary;
    }
}

/// A final result code that is not `OK`: how the modem refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AtError {
    /// Plain `ERROR` (V.250 §5.7.1), also Huawei's `COMMAND NOT SUPPORT`.
    #[error("ERROR")]
    Error,
    /// `+CME ERROR`, 3GPP TS 27.007 §9.2; `None` when the text was not a
    /// code or known text (kept in the log).
    #[error("+CME ERROR: {}", opt(.0))]
    Cme(Option<CmeError>),
    /// `+CMS ERROR`, 3GPP TS 27.005 §3.2.5.
    #[error("+CMS ERROR: {}", opt(.0))]
    Cms(Option<CmsError>),
    /// `NO CARRIER` (V.250 §5.7.1).
    #[error("NO CARRIER")]
    NoCarrier,
    /// `BUSY`.
    #[error("BUSY")]
    Busy,
    /// `NO ANSWER`.
    #[error("NO ANSWER")]
    NoAnswer,
    /// `NO DIALTONE`.
    #[error("NO DIALTONE")]
    NoDialtone,
    /// `COMMAND NOT SUPPORT` (Huawei's `ERROR`).
    #[error("COMMAND NOT SUPPORT")]
    NotSupported,
    /// `MODEM ERROR: <n>` (some Sierra/Option firmware).
    #[error("MODEM ERROR: {0}")]
    Modem(u16),
}

fn opt<T: fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "unrecognised".to_string(), |e| e.to_string())
}

impl AtError {
    /// Whether a retry can help. Plain `ERROR` is classed permanent: the
    /// command itself was refused (a send is judged by
    /// [`send_retry`](Self::send_retry) instead).
    pub fn retry(&self) -> Retry {
        match self {
            AtError::Cme(Some(e)) => e.retry(),
            AtError::Cms(Some(e)) => e.retry(),
            AtError::Cme(None) | AtError::Cms(None) | AtError::Modem(_) => Retry::Temporary,
            AtError::NoCarrier | AtError::Busy | AtError::NoAnswer | AtError::NoDialtone => {
                Retry::Temporary
            }
            AtError::Error | AtError::NotSupported => Retry::Permanent,
        }
    }

    /// Whether a retry can help when this refused a send (`AT+CMGS`).
    /// The network's refusals come as `+CMS ERROR: <err>` (TS 27.005
    /// §3.2.5) and keep their class. A plain `ERROR` (or Huawei's `COMMAND
    /// NOT SUPPORT`) carries no reason: a modem that ignores `+CMEE`
    /// answers every refusal so, including the passing ones (no service,
    /// SIM busy, a network timeout), so it is temporary here; the caller's
    /// cap on attempts bounds the retries.
    pub fn send_retry(&self) -> Retry {
        match self {
            AtError::Error | AtError::NotSupported => Retry::Temporary,
            other => other.retry(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_is_kept() {
        for &(code, _) in CmeError::TABLE {
            assert_eq!(CmeError::from_code(code).code(), code);
        }
        for &(code, _) in CmsError::TABLE {
            assert_eq!(CmsError::from_code(code).code(), code);
        }
        assert_eq!(CmeError::from_code(515), CmeError::Unknown(515));
        assert_eq!(CmsError::from_code(999).code(), 999);
    }

    #[test]
    fn parses_numeric_and_verbose_forms() {
        let table: &[(&str, Option<CmeError>)] = &[
            ("11", Some(CmeError::SimPinRequired)),
            (" 14 ", Some(CmeError::SimBusy)),
            ("SIM PIN required", Some(CmeError::SimPinRequired)),
            ("sim puk required", Some(CmeError::SimPukRequired)),
            ("515", Some(CmeError::Unknown(515))),
            ("raspberry", None),
            ("", None),
        ];
        for (text, want) in table {
            assert_eq!(CmeError::parse(text), *want, "{text:?}");
        }
        assert_eq!(CmsError::parse("330"), Some(CmsError::SmscAddressUnknown));
        assert_eq!(CmsError::parse("memory full"), Some(CmsError::MemoryFull));
        assert_eq!(CmsError::parse("bananas"), None);
    }

    #[test]
    fn retry_classification() {
        assert_eq!(CmsError::ScBusy.retry(), Retry::Temporary);
        assert_eq!(CmsError::InvalidPduParameter.retry(), Retry::Permanent);
        assert_eq!(CmeError::SimPinRequired.retry(), Retry::Permanent);
        assert_eq!(CmeError::SimBusy.retry(), Retry::Temporary);
        assert_eq!(AtError::Error.retry(), Retry::Permanent);
        assert_eq!(
            CmsError::SmscAddressUnknown.to_string(),
            "SMSC address unknown (330, permanent)"
        );
    }

    #[test]
    fn send_refusals_without_a_reason_are_temporary() {
        #[rustfmt::skip]
        let cases = [
            (AtError::Error, Retry::Temporary),
            (AtError::NotSupported, Retry::Temporary),
            (AtError::Cms(None), Retry::Temporary),
            (AtError::Cme(None), Retry::Temporary),
            (AtError::Cms(Some(CmsError::ScBusy)), Retry::Temporary),
            (AtError::Cms(Some(CmsError::UnassignedNumber)), Retry::Permanent),
            (AtError::Cms(Some(CmsError::InvalidPduParameter)), Retry::Permanent),
            (AtError::Cme(Some(CmeError::SimPinRequired)), Retry::Permanent),
            (AtError::Modem(3), Retry::Temporary),
        ];
        for (error, want) in cases {
            assert_eq!(error.send_retry(), want, "{error}");
        }
        // Outside a send a plain ERROR still means the command was refused.
        assert_eq!(AtError::Error.retry(), Retry::Permanent);
    }
}
