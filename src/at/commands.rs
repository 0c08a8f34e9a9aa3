//! Typed AT commands: each type knows its text, its response parser and its
//! policy (timeout, prompt), and cites the 3GPP clause it implements.
//!
//! Parsers take the information lines the digester collected for the
//! command (echo, URCs and the final `OK` already removed) and are tolerant
//! of the quirks real modems show (see `docs/at.md`), but they never invent
//! a value: a missing mandatory field is a [`ParseError`].

use std::time::Duration;

use super::digest::InFlight;
use super::parse::{after_prefix, clean_pdu, fields, groups, is_hex, range_list, Field};
use super::urc::{PinState, RegKind, Registration};

/// Default time a command may take before the link gives up (27.007 does
/// not specify one; 5 s covers every local query on the modems we know).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// For commands that wait on the network or walk a storage (`+CMGS`,
/// `+CMGL`): submitting an SMS can take tens of seconds on a weak signal.
pub const LONG_TIMEOUT: Duration = Duration::from_secs(90);
/// `+COPS=?` scans every band; three minutes is common on real modems.
pub const SCAN_TIMEOUT: Duration = Duration::from_secs(180);

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A mandatory value was not in the response.
    #[error("missing {0} in the response")]
    Missing(&'static str),
    /// A value was there but unreadable.
    #[error("invalid {what}: {text:?}")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// The offending text (capped at 80 characters).
        text: String,
    },
}

impl ParseError {
    fn invalid(what: &'static str, text: &str) -> Self {
        ParseError::Invalid {
            what,
            text: text.chars().take(80).collect(),
        }
    }
}

/// An argument that cannot be put on the wire (e.g. a PIN with letters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid argument {what}: {reason}")]
pub struct ArgError {
    /// Which argument.
    pub what: &'static str,
    /// Why it was refused.
    pub reason: &'static str,
}

/// An AT command with its response type and policy.
pub trait AtCommand {
    /// What a successful response parses into.
    type Response;

    /// The command line without the terminating CR (e.g. `AT+CSQ`).
    fn text(&self) -> String;

    /// How long the link waits for the final result code.
    fn timeout(&self) -> Duration {
        DEFAULT_TIMEOUT
    }

    /// What the digester needs to know: echo, response prefixes, prompt.
    fn in_flight(&self) -> InFlight {
        InFlight::for_command(&self.text())
    }

    /// Some modems never send the final `OK` after certain answers
    /// (Wavecom after `+CPIN: READY`). When true, the link accepts the
    /// response lines as complete after a short quiet period.
    fn ok_optional(&self) -> bool {
        false
    }

    /// Parses the information lines of a successful response.
    fn parse(&self, lines: &[String]) -> Result<Self::Response, ParseError>;
}

/// A command whose only answer is the final `OK` (a setting or an
/// action); implementing this gives the [`AtCommand`] for free.
pub trait SetCommand {
    /// The command line without the terminating CR.
    fn line(&self) -> String;

    /// How long the link waits for the final result code.
    fn max_wait(&self) -> Duration {
        DEFAULT_TIMEOUT
    }
}

impl<T: SetCommand> AtCommand for T {
    type Response = ();
    fn text(&self) -> String {
        self.line()
    }
    fn timeout(&self) -> Duration {
        self.max_wait()
    }
    /// No answer lines are expected, so a `+CREG:` or `+CPIN:` arriving
    /// while `AT+CREG=2` or `AT+CPIN="..."` is in flight stays a URC.
    fn in_flight(&self) -> InFlight {
        InFlight::for_command(&self.line()).with_prefixes(&[])
    }
    fn parse(&self, _: &[String]) -> Result<(), ParseError> {
        Ok(())
    }
}

/// Lines after their `prefix`, in order.
fn prefixed<'a>(lines: &'a [String], prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    lines.iter().filter_map(move |l| after_prefix(l, prefix))
}

fn first_prefixed<'a>(lines: &'a [String], prefix: &'static str) -> Result<&'a str, ParseError> {
    prefixed(lines, prefix)
        .next()
        .ok_or(ParseError::Missing(prefix))
}

/// Quotes a string parameter, dropping characters that would end it early.
fn quote(s: &str) -> String {
    let clean: String = s.chars().filter(|c| *c != '"' && !c.is_control()).collect();
    format!("\"{clean}\"")
}

/// Defines a command that takes no argument and whose answer is "OK".
macro_rules! simple_command {
    ($(#[$m:meta])* $name:ident, $text:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name;
        impl SetCommand for $name {
            fn line(&self) -> String {
                $text.to_string()
            }
        }
    };
}

// ---------------------------------------------------------------- identity

/// Free-text identification, stripped of an optional `+CGMx:` prefix and
/// joined over lines (Nokia answers `+CGMR` on five lines).
fn identification(
    lines: &[String],
    prefix: &str,
    what: &'static str,
) -> Result<String, ParseError> {
    let text: Vec<&str> = lines
        .iter()
        .map(|l| {
            after_prefix(l, prefix)
                .unwrap_or(l)
                .trim()
                .trim_matches('"')
                .trim()
        })
        .filter(|l| !l.is_empty())
        .collect();
    if text.is_empty() {
        return Err(ParseError::Missing(what));
    }
    Ok(text.join("\n"))
}

/// Which identification to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identify {
    /// `+CGMI`, manufacturer (27.007 §5.1).
    Manufacturer,
    /// `+CGMM`, model (27.007 §5.2).
    Model,
    /// `+CGMR`, firmware revision (27.007 §5.3).
    Revision,
}

impl AtCommand for Identify {
    type Response = String;
    fn text(&self) -> String {
        match self {
            Identify::Manufacturer => "AT+CGMI",
            Identify::Model => "AT+CGMM",
            Identify::Revision => "AT+CGMR",
        }
        .to_string()
    }
    fn parse(&self, lines: &[String]) -> Result<String, ParseError> {
        let (prefix, what) = match self {
            Identify::Manufacturer => ("+CGMI:", "manufacturer"),
            Identify::Model => ("+CGMM:", "model"),
            Identify::Revision => ("+CGMR:", "revision"),
        };
        identification(lines, prefix, what)
    }
}

/// Reads a run of digits (IMEI, IMSI) from the first line that has one.
fn digits(
    lines: &[String],
    prefix: &str,
    what: &'static str,
    hex: bool,
) -> Result<String, ParseError> {
    for l in lines {
        let t = after_prefix(l, prefix)
            .unwrap_or(l)
            .trim()
            .trim_matches('"')
            .trim();
        let ok = |c: char| {
            if hex {
                c.is_ascii_hexdigit()
            } else {
                c.is_ascii_digit()
            }
        };
        if !t.is_empty() && t.len() <= 32 && t.chars().all(ok) {
            return Ok(t.to_string());
        }
    }
    match lines.first() {
        Some(l) => Err(ParseError::invalid(what, l)),
        None => Err(ParseError::Missing(what)),
    }
}

/// `AT+CGSN`: the IMEI (27.007 §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Imei;
impl AtCommand for Imei {
    type Response = String;
    fn text(&self) -> String {
        "AT+CGSN".into()
    }
    fn parse(&self, lines: &[String]) -> Result<String, ParseError> {
        digits(lines, "+CGSN:", "IMEI", false)
    }
}

/// `AT+CIMI`: the IMSI of the SIM (27.007 §5.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Imsi;
impl AtCommand for Imsi {
    type Response = String;
    fn text(&self) -> String {
        "AT+CIMI".into()
    }
    fn parse(&self, lines: &[String]) -> Result<String, ParseError> {
        digits(lines, "+CIMI:", "IMSI", false)
    }
}

/// How a modem family reads the SIM's ICCID. 27.007 has no command for
/// it (it is read from EF_ICCID with `+CRSM`); vendors add their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Iccid {
    /// `AT+CCID` (SIMCom, Telit, u-blox).
    Ccid,
    /// `AT^ICCID?` (Huawei).
    Huawei,
    /// `AT+QCCID` (Quectel).
    Quectel,
    /// `AT+ICCID` (Sierra, some ZTE).
    Iccid,
}

impl AtCommand for Iccid {
    type Response = String;
    fn text(&self) -> String {
        match self {
            Iccid::Ccid => "AT+CCID",
            Iccid::Huawei => "AT^ICCID?",
            Iccid::Quectel => "AT+QCCID",
            Iccid::Iccid => "AT+ICCID",
        }
        .into()
    }
    fn parse(&self, lines: &[String]) -> Result<String, ParseError> {
        let prefix = match self {
            Iccid::Ccid => "+CCID:",
            Iccid::Huawei => "^ICCID:",
            Iccid::Quectel => "+QCCID:",
            Iccid::Iccid => "+ICCID:",
        };
        // The vendor's own prefix first, then any `<prefix>: <iccid>` or
        // bare line: firmware differs on what it echoes (`ICCID:` for
        // `AT!ICCID?`, `+ICCID:` for `AT+CICCID`, `#CCID:`...).
        prefixed(lines, prefix)
            .find_map(parse_iccid)
            .or_else(|| iccid_in(lines))
            .ok_or_else(|| match lines.first() {
                Some(l) => ParseError::invalid("ICCID", l),
                None => ParseError::Missing("ICCID"),
            })
    }
}

/// The ICCID in a vendor's answer lines, whatever the prefix: the first
/// line that reads as `<prefix>: <iccid>` or as a bare ICCID. Used for
/// the raw vendor commands (`AT#CCID`, `AT!ICCID?`, `AT+ZGETICCID`...).
pub fn iccid_in(lines: &[String]) -> Option<String> {
    lines
        .iter()
        .find_map(|l| parse_iccid(l.split_once(':').map_or(l.as_str(), |(_, rest)| rest)))
}

/// Validates and normalises one ICCID value (ITU-T E.118: 19 or 20
/// digits, starting with the telecom industry identifier `89`).
///
/// * Quotes and spaces around it are dropped.
/// * The filler `F` that pads an odd-length ICCID to whole bytes is
///   allowed and kept as printed: the ICCID keys PINs in the config and
///   the store's de-duplication scope, which must not change.
/// * An ICCID that starts with `98` is nibble-swapped: EF_ICCID holds it
///   as swapped BCD (TS 31.102 §4.1.1 / TS 11.11 §10.1.1) and Huawei's
///   `^ICCID` and some firmware print the bytes as stored. It is swapped
///   back pairwise.
///
/// `None` for anything else (too short or long, other characters).
pub fn parse_iccid(text: &str) -> Option<String> {
    let t = text.trim().trim_matches('"').trim();
    if t.len() > 24 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let t = if t.starts_with("98") {
        swap_nibbles(t)?
    } else {
        t.to_string()
    };
    let digits = t.trim_end_matches(['F', 'f']);
    ((19..=20).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())).then_some(t)
}

/// `"9868"` -> `"8986"`: the BCD digit order of SIM files. `None` for an
/// odd length (not whole bytes).
fn swap_nibbles(hex: &str) -> Option<String> {
    let b = hex.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    let mut out = String::with_capacity(b.len());
    for pair in b.chunks_exact(2) {
        if let [hi, lo] = pair {
            out.push(char::from(*lo));
            out.push(char::from(*hi));
        }
    }
    Some(out)
}

/// `AT+CRSM=176,12258,0,0,10`: READ BINARY (176) of EF_ICCID (file id
/// 0x2FE2 = 12258, 10 bytes) through restricted SIM access (27.007
/// §8.18). The standard way when no vendor command answers. The answer
/// `+CRSM: <sw1>,<sw2>,"<hex>"` carries the file in swapped BCD;
/// `<sw1>` 144 (0x90) or 145 (0x91) means success (TS 51.011 §9.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadIccidFile;
impl AtCommand for ReadIccidFile {
    type Response = String;
    fn text(&self) -> String {
        "AT+CRSM=176,12258,0,0,10".into()
    }
    fn parse(&self, lines: &[String]) -> Result<String, ParseError> {
        let line = first_prefixed(lines, "+CRSM:")?;
        let f = fields(line);
        let sw1: u32 = f
            .first()
            .and_then(Field::num)
            .ok_or(ParseError::Missing("+CRSM <sw1>"))?;
        if sw1 != 0x90 && sw1 != 0x91 {
            return Err(ParseError::invalid("+CRSM status", line));
        }
        let data = f
            .get(2)
            .and_then(Field::opt_text)
            .ok_or(ParseError::Missing("+CRSM <response>"))?
            .trim();
        // Stored swapped: swap unconditionally (an ICCID file never starts
        // with 0x89 once read in its stored order, it starts 0x98).
        swap_nibbles(data)
            .as_deref()
            .and_then(parse_iccid)
            .ok_or_else(|| ParseError::invalid("ICCID", line))
    }
}

/// One subscriber number from `+CNUM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnNumber {
    /// `<alpha>`, if any.
    pub alpha: Option<String>,
    /// The number; empty when the SIM does not know it.
    pub number: String,
    /// Type of address (145 international).
    pub ton: Option<u8>,
}

/// `AT+CNUM`: subscriber numbers stored on the SIM (27.007 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OwnNumbers;
impl AtCommand for OwnNumbers {
    type Response = Vec<OwnNumber>;
    fn text(&self) -> String {
        "AT+CNUM".into()
    }
    fn parse(&self, lines: &[String]) -> Result<Vec<OwnNumber>, ParseError> {
        Ok(prefixed(lines, "+CNUM:").map(parse_cnum).collect())
    }
}

/// Parses the text after `+CNUM:` (`[<alpha>],<number>,<type>`), keeping
/// the number even with a stray quote (`"",+7913...",145`).
pub fn parse_cnum(rest: &str) -> OwnNumber {
    let f = fields(rest);
    let alpha = f
        .first()
        .and_then(Field::opt_text)
        .filter(|a| !a.is_empty())
        .map(str::to_string);
    let number = f
        .get(1)
        .map(|x| x.text().trim().trim_matches('"').to_string())
        .unwrap_or_default();
    let ton = f.get(2).and_then(|x| x.num());
    OwnNumber { alpha, number, ton }
}

// --------------------------------------------------------------------- PIN

/// `AT+CPIN?`: is a PIN needed (27.007 §8.3)?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PinQuery;
impl AtCommand for PinQuery {
    type Response = PinState;
    fn text(&self) -> String {
        "AT+CPIN?".into()
    }
    fn ok_optional(&self) -> bool {
        true
    }
    fn parse(&self, lines: &[String]) -> Result<PinState, ParseError> {
        Ok(PinState::parse(first_prefixed(lines, "+CPIN:")?))
    }
}

/// `AT+CPIN=<pin>[,<newpin>]`: enter a PIN, or a PUK and a new PIN
/// (27.007 §8.3). Never retried automatically (DESIGN invariant 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnterPin {
    pin: String,
    new_pin: Option<String>,
}

fn check_pin(what: &'static str, pin: &str) -> Result<String, ArgError> {
    if (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(pin.to_string())
    } else {
        Err(ArgError {
            what,
            reason: "must be 4 to 8 digits",
        })
    }
}

impl EnterPin {
    /// A PIN entry; refuses anything that is not 4..=8 digits.
    pub fn new(pin: &str) -> Result<Self, ArgError> {
        Ok(EnterPin {
            pin: check_pin("PIN", pin)?,
            new_pin: None,
        })
    }

    /// A PUK entry with the new PIN (8 digits PUK, 27.007 §8.3).
    pub fn with_puk(puk: &str, new_pin: &str) -> Result<Self, ArgError> {
        Ok(EnterPin {
            pin: check_pin("PUK", puk)?,
            new_pin: Some(check_pin("new PIN", new_pin)?),
        })
    }
}

impl SetCommand for EnterPin {
    fn line(&self) -> String {
        match &self.new_pin {
            Some(n) => format!("AT+CPIN={},{}", quote(&self.pin), quote(n)),
            None => format!("AT+CPIN={}", quote(&self.pin)),
        }
    }
    fn max_wait(&self) -> Duration {
        Duration::from_secs(20)
    }
}

/// Remaining PIN/PUK attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PinAttempts {
    /// PIN attempts left.
    pub pin: Option<u8>,
    /// PUK attempts left.
    pub puk: Option<u8>,
}

/// Reads the remaining attempts with whatever the modem supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinAttemptsQuery {
    /// `AT+CPINR` (27.007 §8.65): `+CPINR: <code>,<retries>,<default>`.
    Standard,
    /// Huawei `AT^CPIN?`: `^CPIN: <code>,[<times>],<puk>,<pin>,<puk2>,<pin2>`.
    Huawei,
    /// Quectel `AT+QPINC="SC"`: `+QPINC: "SC",<pin>,<puk>`.
    Quectel,
}

impl AtCommand for PinAttemptsQuery {
    type Response = PinAttempts;
    fn text(&self) -> String {
        match self {
            PinAttemptsQuery::Standard => "AT+CPINR",
            PinAttemptsQuery::Huawei => "AT^CPIN?",
            PinAttemptsQuery::Quectel => "AT+QPINC=\"SC\"",
        }
        .into()
    }
    fn parse(&self, lines: &[String]) -> Result<PinAttempts, ParseError> {
        match self {
            PinAttemptsQuery::Standard => {
                let mut out = PinAttempts::default();
                for rest in prefixed(lines, "+CPINR:") {
                    let f = fields(rest);
                    let code = f.first().map(|c| c.text().to_ascii_uppercase());
                    let n = f.get(1).and_then(|x| x.num());
                    match code.as_deref() {
                        Some("SIM PIN") => out.pin = n,
                        Some("SIM PUK") => out.puk = n,
                        _ => {}
                    }
                }
                if out.pin.is_none() && out.puk.is_none() {
                    return Err(ParseError::Missing("+CPINR: SIM PIN"));
                }
                Ok(out)
            }
            PinAttemptsQuery::Huawei => {
                let f = fields(first_prefixed(lines, "^CPIN:")?);
                Ok(PinAttempts {
                    puk: f.get(2).and_then(|x| x.num()),
                    pin: f.get(3).and_then(|x| x.num()),
                })
            }
            PinAttemptsQuery::Quectel => {
                let f = fields(first_prefixed(lines, "+QPINC:")?);
                Ok(PinAttempts {
                    pin: f.get(1).and_then(|x| x.num()),
                    puk: f.get(2).and_then(|x| x.num()),
                })
            }
        }
    }
}

// ------------------------------------------------------------ registration

fn reg_prefix(kind: RegKind) -> &'static str {
    match kind {
        RegKind::Cs => "+CREG",
        RegKind::Gprs => "+CGREG",
        RegKind::Eps => "+CEREG",
    }
}

/// `AT+CREG?` / `AT+CGREG?` / `AT+CEREG?`: registration state (27.007
/// §7.2, §10.1.20, §10.1.22). The answer is `(<n>, report)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationQuery(pub RegKind);

impl AtCommand for RegistrationQuery {
    type Response = (u8, Registration);
    fn text(&self) -> String {
        format!("AT{}?", reg_prefix(self.0))
    }
    fn parse(&self, lines: &[String]) -> Result<(u8, Registration), ParseError> {
        let prefix = match self.0 {
            RegKind::Cs => "+CREG:",
            RegKind::Gprs => "+CGREG:",
            RegKind::Eps => "+CEREG:",
        };
        let rest = first_prefixed(lines, prefix)?;
        let mode = fields(rest)
            .first()
            .and_then(|x| x.num())
            .ok_or_else(|| ParseError::invalid("registration mode", rest))?;
        let reg = Registration::parse(rest, true)
            .ok_or_else(|| ParseError::invalid("registration state", rest))?;
        Ok((mode, reg))
    }
}

/// `AT+CREG=<n>` (and `+CGREG`/`+CEREG`): 0 off, 1 state URCs, 2 with
/// location (27.007 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetRegistrationReports {
    /// Which registration.
    pub kind: RegKind,
    /// `<n>`.
    pub mode: u8,
}

impl SetCommand for SetRegistrationReports {
    fn line(&self) -> String {
        format!("AT{}={}", reg_prefix(self.kind), self.mode)
    }
}

// ------------------------------------------------------------------ signal

/// `+CSQ` answer (27.007 §8.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    /// `<rssi>`: 0..=31, 99 unknown.
    pub rssi: u8,
    /// `<ber>`: 0..=7, 99 unknown.
    pub ber: u8,
}

impl Signal {
    /// Received signal strength in dBm (`-113 + 2 * rssi`), `None` if unknown.
    pub fn dbm(&self) -> Option<i16> {
        (self.rssi <= 31).then(|| -113 + 2 * i16::from(self.rssi))
    }
}

/// `AT+CSQ`: signal quality (27.007 §8.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SignalQuery;
impl AtCommand for SignalQuery {
    type Response = Signal;
    fn text(&self) -> String {
        "AT+CSQ".into()
    }
    fn parse(&self, lines: &[String]) -> Result<Signal, ParseError> {
        let rest = first_prefixed(lines, "+CSQ:")?;
        let f = fields(rest);
        match (
            f.first().and_then(|x| x.num()),
            f.get(1).and_then(|x| x.num()),
        ) {
            (Some(rssi), Some(ber)) => Ok(Signal { rssi, ber }),
            _ => Err(ParseError::invalid("+CSQ", rest)),
        }
    }
}

// ---------------------------------------------------------------- operator

/// `+COPS?` answer (27.007 §7.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// `<mode>`: 0 automatic, 1 manual, 2 deregister...
    pub mode: u8,
    /// `<format>` of `name`: 0 long alphanumeric, 1 short, 2 numeric.
    pub format: Option<u8>,
    /// `<oper>`, absent when not registered.
    pub name: Option<String>,
    /// `<AcT>`.
    pub act: Option<u8>,
}

/// `AT+COPS?`: current operator (27.007 §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OperatorQuery;
impl AtCommand for OperatorQuery {
    type Response = Operator;
    fn text(&self) -> String {
        "AT+COPS?".into()
    }
    fn parse(&self, lines: &[String]) -> Result<Operator, ParseError> {
        let rest = first_prefixed(lines, "+COPS:")?;
        let f = fields(rest);
        let mode = f
            .first()
            .and_then(|x| x.num())
            .ok_or_else(|| ParseError::invalid("+COPS mode", rest))?;
        Ok(Operator {
            mode,
            format: f.get(1).and_then(|x| x.num()),
            name: f.get(2).and_then(Field::opt_text).map(str::to_string),
            act: f.get(3).and_then(|x| x.num()),
        })
    }
}

/// `AT+COPS=3,<format>`: choose how `+COPS?` names the operator
/// (27.007 §7.3); 0 long, 1 short, 2 numeric (MCC+MNC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetOperatorFormat(pub u8);
impl SetCommand for SetOperatorFormat {
    fn line(&self) -> String {
        format!("AT+COPS=3,{}", self.0)
    }
}

/// One network from `+COPS=?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// `<stat>`: 0 unknown, 1 available, 2 current, 3 forbidden.
    pub stat: u8,
    /// Long name.
    pub long: String,
    /// Short name.
    pub short: String,
    /// MCC+MNC.
    pub numeric: String,
    /// `<AcT>`.
    pub act: Option<u8>,
}

/// `AT+COPS=?`: scan networks (27.007 §7.3); slow, see [`SCAN_TIMEOUT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OperatorScan;
impl AtCommand for OperatorScan {
    type Response = Vec<Network>;
    fn text(&self) -> String {
        "AT+COPS=?".into()
    }
    fn timeout(&self) -> Duration {
        SCAN_TIMEOUT
    }
    fn parse(&self, lines: &[String]) -> Result<Vec<Network>, ParseError> {
        let rest = first_prefixed(lines, "+COPS:")?;
        Ok(groups(rest)
            .into_iter()
            .filter_map(|g| {
                let f = fields(g);
                // Networks have quoted names; the trailing mode/format
                // range groups (`(0-4),(0-2)`) do not.
                if f.len() < 4 || !matches!(f.get(1), Some(Field::Quoted(_))) {
                    return None;
                }
                Some(Network {
                    stat: f.first()?.num()?,
                    long: f.get(1)?.text().to_string(),
                    short: f.get(2)?.text().to_string(),
                    numeric: f.get(3)?.text().to_string(),
                    act: f.get(4).and_then(|x| x.num()),
                })
            })
            .collect())
    }
}

// -------------------------------------------------------------------- SMSC

/// The service centre address (27.005 §3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smsc {
    /// The number, decoded from UCS2 hex when the modem sent it that way.
    pub number: String,
    /// `<tosca>` (145 international, 129 unknown).
    pub ton: Option<u8>,
}

/// Decodes a UCS2-hex string (`002B0037...` = `+7...`) as sent under
/// `AT+CSCS="UCS2"`; `None` if `s` is not that.
pub fn decode_ucs2_hex(s: &str) -> Option<String> {
    if s.len() < 4 || s.len() % 4 != 0 || !is_hex(s) || !s.starts_with("00") {
        return None;
    }
    let units: Option<Vec<u16>> = (0..s.len() / 4)
        .map(|i| {
            s.get(i * 4..i * 4 + 4)
                .and_then(|h| u16::from_str_radix(h, 16).ok())
        })
        .collect();
    String::from_utf16(&units?).ok()
}

/// `AT+CSCA?`: read the SMSC (27.005 §3.3.1). An empty number is an error:
/// the SIM has no SMSC and sending would fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SmscQuery;
impl AtCommand for SmscQuery {
    type Response = Smsc;
    fn text(&self) -> String {
        "AT+CSCA?".into()
    }
    fn parse(&self, lines: &[String]) -> Result<Smsc, ParseError> {
        let rest = first_prefixed(lines, "+CSCA:")?;
        let f = fields(rest);
        let raw = f.first().map(|x| x.text().trim()).unwrap_or("");
        if raw.is_empty() {
            return Err(ParseError::Missing("SMSC number"));
        }
        let number = decode_ucs2_hex(raw).unwrap_or_else(|| raw.to_string());
        Ok(Smsc {
            number,
            ton: f.get(1).and_then(|x| x.num()),
        })
    }
}

/// `AT+CSCA=<sca>[,<tosca>]`: set the SMSC (27.005 §3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSmsc(pub String);
impl SetCommand for SetSmsc {
    fn line(&self) -> String {
        let ton = if self.0.starts_with('+') { 145 } else { 129 };
        format!("AT+CSCA={},{ton}", quote(&self.0))
    }
}

// ------------------------------------------------------ format and charset

/// `AT+CMGF=<mode>`: 0 PDU mode, 1 text mode (27.005 §3.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageFormat {
    /// true for text mode (the daemon always uses PDU mode).
    pub text: bool,
}
impl SetCommand for MessageFormat {
    fn line(&self) -> String {
        format!("AT+CMGF={}", u8::from(self.text))
    }
}

/// `AT+CSCS=<chset>`: TE character set (27.007 §5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCharset(pub String);
impl SetCommand for SetCharset {
    fn line(&self) -> String {
        format!("AT+CSCS={}", quote(&self.0))
    }
}

/// `AT+CSCS?`: current TE character set (27.007 §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CharsetQuery;
impl AtCommand for CharsetQuery {
    type Response = String;
    fn text(&self) -> String {
        "AT+CSCS?".into()
    }
    fn parse(&self, lines: &[String]) -> Result<String, ParseError> {
        let rest = first_prefixed(lines, "+CSCS:")?;
        Ok(rest.trim().trim_matches('"').to_string())
    }
}

// ----------------------------------------------------------------- storage

/// A message storage name (27.005 §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// `SM`: (U)SIM.
    Sm,
    /// `ME`: modem memory.
    Me,
    /// `MT`: any storage of the MT (SM + ME).
    Mt,
    /// `BM`: broadcast messages.
    Bm,
    /// `SR`: status reports.
    Sr,
    /// `TA`: terminal adaptor.
    Ta,
    /// A name the spec does not define.
    Unknown(String),
}

impl Storage {
    /// Reads a storage name (quotes, spaces and parentheses ignored).
    pub fn parse(s: &str) -> Self {
        let s = s.trim_matches(|c: char| c == '"' || c == '(' || c == ')' || c.is_whitespace());
        match s.to_ascii_uppercase().as_str() {
            "SM" => Storage::Sm,
            "ME" => Storage::Me,
            "MT" => Storage::Mt,
            "BM" => Storage::Bm,
            "SR" => Storage::Sr,
            "TA" => Storage::Ta,
            _ => Storage::Unknown(s.to_string()),
        }
    }

    /// The name on the wire.
    pub fn name(&self) -> &str {
        match self {
            Storage::Sm => "SM",
            Storage::Me => "ME",
            Storage::Mt => "MT",
            Storage::Bm => "BM",
            Storage::Sr => "SR",
            Storage::Ta => "TA",
            Storage::Unknown(s) => s,
        }
    }
}

/// `+CPMS=?` answer: the storages usable for reading/deleting (`mem1`),
/// writing/sending (`mem2`) and receiving (`mem3`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StorageSupport {
    /// `<mem1>` choices.
    pub mem1: Vec<Storage>,
    /// `<mem2>` choices.
    pub mem2: Vec<Storage>,
    /// `<mem3>` choices.
    pub mem3: Vec<Storage>,
}

fn storage_list(text: &str) -> Vec<Storage> {
    fields(text)
        .iter()
        .map(|f| f.text().trim().trim_matches(['"', '(', ')']).trim())
        .filter(|s| !s.is_empty())
        .map(Storage::parse)
        .collect()
}

/// `AT+CPMS=?`: which storages exist (27.005 §3.2.2). Accepts the
/// standard `(..),(..),(..)`, flat lists without parentheses (3 items, or
/// 3 x n), mixed forms, stray spaces, a missing quote and empty lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StorageSupportQuery;
impl AtCommand for StorageSupportQuery {
    type Response = StorageSupport;
    fn text(&self) -> String {
        "AT+CPMS=?".into()
    }
    fn parse(&self, lines: &[String]) -> Result<StorageSupport, ParseError> {
        let rest = first_prefixed(lines, "+CPMS:")?.trim();
        let lists: Vec<Vec<Storage>> = if rest.contains('(') {
            groups(rest).into_iter().map(storage_list).collect()
        } else {
            let flat = storage_list(rest);
            let per = if flat.len() >= 3 && flat.len() % 3 == 0 {
                flat.len() / 3
            } else {
                1
            };
            flat.chunks(per).map(<[Storage]>::to_vec).collect()
        };
        let mut it = lists.into_iter();
        Ok(StorageSupport {
            mem1: it.next().unwrap_or_default(),
            mem2: it.next().unwrap_or_default(),
            mem3: it.next().unwrap_or_default(),
        })
    }
}

/// One storage's use in `+CPMS?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUse {
    /// Which storage.
    pub storage: Storage,
    /// Messages in it.
    pub used: u32,
    /// Its capacity.
    pub total: u32,
}

/// `AT+CPMS?`: selected storages and their use (27.005 §3.2.2). Entries
/// the modem leaves empty (`+CPMS: ,,,,,,,,`) are `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StorageQuery;
impl AtCommand for StorageQuery {
    type Response = [Option<StorageUse>; 3];
    fn text(&self) -> String {
        "AT+CPMS?".into()
    }
    fn parse(&self, lines: &[String]) -> Result<[Option<StorageUse>; 3], ParseError> {
        let f = fields(first_prefixed(lines, "+CPMS:")?);
        let entry = |i: usize| -> Option<StorageUse> {
            let name = f.get(i * 3)?.opt_text()?;
            if name.is_empty() {
                return None;
            }
            Some(StorageUse {
                storage: Storage::parse(name),
                used: f.get(i * 3 + 1)?.num()?,
                total: f.get(i * 3 + 2)?.num()?,
            })
        };
        Ok([entry(0), entry(1), entry(2)])
    }
}

/// `AT+CPMS=<mem1>[,<mem2>[,<mem3>]]`: select storages (27.005 §3.2.2).
/// The answer lists `(used, total)` for each storage given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetStorage {
    /// Read/delete storage.
    pub mem1: Storage,
    /// Write/send storage.
    pub mem2: Option<Storage>,
    /// Receive storage.
    pub mem3: Option<Storage>,
}
impl AtCommand for SetStorage {
    type Response = Vec<(u32, u32)>;
    fn text(&self) -> String {
        let mut t = format!("AT+CPMS={}", quote(self.mem1.name()));
        for m in [&self.mem2, &self.mem3].into_iter().flatten() {
            t.push(',');
            t.push_str(&quote(m.name()));
        }
        t
    }
    fn parse(&self, lines: &[String]) -> Result<Vec<(u32, u32)>, ParseError> {
        let f = fields(first_prefixed(lines, "+CPMS:")?);
        Ok(f.chunks(2)
            .filter_map(|p| Some((p.first()?.num()?, p.get(1)?.num()?)))
            .collect())
    }
}

// ----------------------------------------------- new message indications

/// `+CNMI=?` answer: the values each parameter accepts (27.005 §3.4.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CnmiSupport {
    /// `<mode>` values.
    pub mode: Vec<u32>,
    /// `<mt>` values (1: `+CMTI`, 2: `+CMT`).
    pub mt: Vec<u32>,
    /// `<bm>` values.
    pub bm: Vec<u32>,
    /// `<ds>` values (1: `+CDS`, 2: `+CDSI`).
    pub ds: Vec<u32>,
    /// `<bfr>` values.
    pub bfr: Vec<u32>,
}

/// `AT+CNMI=?` (27.005 §3.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CnmiSupportQuery;
impl AtCommand for CnmiSupportQuery {
    type Response = CnmiSupport;
    fn text(&self) -> String {
        "AT+CNMI=?".into()
    }
    fn parse(&self, lines: &[String]) -> Result<CnmiSupport, ParseError> {
        let rest = first_prefixed(lines, "+CNMI:")?;
        let mut g = groups(rest).into_iter().map(range_list);
        let out = CnmiSupport {
            mode: g.next().unwrap_or_default(),
            mt: g.next().unwrap_or_default(),
            bm: g.next().unwrap_or_default(),
            ds: g.next().unwrap_or_default(),
            bfr: g.next().unwrap_or_default(),
        };
        if out.mode.is_empty() {
            return Err(ParseError::invalid("+CNMI=?", rest));
        }
        Ok(out)
    }
}

/// `AT+CNMI=<mode>,<mt>,<bm>,<ds>,<bfr>`: how new messages are indicated
/// (27.005 §3.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetCnmi {
    /// `<mode>`.
    pub mode: u8,
    /// `<mt>`.
    pub mt: u8,
    /// `<bm>`.
    pub bm: u8,
    /// `<ds>`.
    pub ds: u8,
    /// `<bfr>`.
    pub bfr: u8,
}
impl SetCommand for SetCnmi {
    fn line(&self) -> String {
        format!(
            "AT+CNMI={},{},{},{},{}",
            self.mode, self.mt, self.bm, self.ds, self.bfr
        )
    }
}

/// `AT+CSMS=<service>`: 0 = phase 2, 1 = phase 2+ (then `+CMT`/`+CDS`
/// need `+CNMA`), 27.005 §3.2.1. Answers `(<mt>,<mo>,<bm>)` support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectMessageService(pub u8);
impl AtCommand for SelectMessageService {
    type Response = (u8, u8, u8);
    fn text(&self) -> String {
        format!("AT+CSMS={}", self.0)
    }
    fn parse(&self, lines: &[String]) -> Result<(u8, u8, u8), ParseError> {
        let rest = first_prefixed(lines, "+CSMS:")?;
        let f = fields(rest);
        let n = |i: usize| f.get(i).and_then(|x| x.num());
        match (n(0), n(1), n(2)) {
            (Some(a), Some(b), Some(c)) => Ok((a, b, c)),
            _ => Err(ParseError::invalid("+CSMS", rest)),
        }
    }
}

/// `AT+CNMA`: acknowledge a `+CMT`/`+CDS` (27.005 §3.4.4; only with
/// `+CSMS=1`). Positive acknowledgement in PDU mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AckMessage;
impl SetCommand for AckMessage {
    fn line(&self) -> String {
        "AT+CNMA".into()
    }
}

// -------------------------------------------------------- stored messages

/// `<stat>` of a stored message (27.005 §3.1: 0 "REC UNREAD", 1 "REC
/// READ", 2 "STO UNSENT", 3 "STO SENT", 4 "ALL").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStat {
    /// Received, unread.
    RecUnread,
    /// Received, read.
    RecRead,
    /// Stored, unsent.
    StoUnsent,
    /// Stored, sent.
    StoSent,
    /// All (only as a `+CMGL` filter).
    All,
    /// Another value.
    Unknown(u8),
}

impl MessageStat {
    /// From the PDU-mode number.
    pub fn from_code(n: u8) -> Self {
        match n {
            0 => MessageStat::RecUnread,
            1 => MessageStat::RecRead,
            2 => MessageStat::StoUnsent,
            3 => MessageStat::StoSent,
            4 => MessageStat::All,
            n => MessageStat::Unknown(n),
        }
    }

    /// From the text-mode name.
    pub fn from_text(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "REC UNREAD" => MessageStat::RecUnread,
            "REC READ" => MessageStat::RecRead,
            "STO UNSENT" => MessageStat::StoUnsent,
            "STO SENT" => MessageStat::StoSent,
            "ALL" => MessageStat::All,
            _ => return None,
        })
    }

    /// The PDU-mode number.
    pub fn code(&self) -> u8 {
        match self {
            MessageStat::RecUnread => 0,
            MessageStat::RecRead => 1,
            MessageStat::StoUnsent => 2,
            MessageStat::StoSent => 3,
            MessageStat::All => 4,
            MessageStat::Unknown(n) => *n,
        }
    }
}

/// A message read with `+CMGR` or listed with `+CMGL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Storage index (`+CMGL` only).
    pub index: Option<u32>,
    /// `<stat>`; `None` when the modem left it out (`+CMGR: ,,27`).
    pub stat: Option<MessageStat>,
    /// `<alpha>`, if the modem sent a non-empty one.
    pub alpha: Option<String>,
    /// TPDU length the header claims (PDU mode); not trusted, the PDU
    /// decoder checks the PDU itself.
    pub length: Option<u16>,
    /// PDU mode: the PDU hex. Text mode: the body lines joined by `\n`.
    pub body: String,
    /// Whether the header was a text-mode header (quoted `<stat>`).
    pub text_mode: bool,
    /// The header's parameters as text (text mode: `<oa>`, `<scts>`...).
    pub fields: Vec<String>,
}

/// Parses one header (after `+CMGR:`/`+CMGL:`) into a message without body.
fn message_header(rest: &str, with_index: bool) -> Result<StoredMessage, ParseError> {
    let f = fields(rest);
    let (index, f) = if with_index {
        let idx = f
            .first()
            .and_then(|x| x.num())
            .ok_or_else(|| ParseError::invalid("message index", rest))?;
        (Some(idx), f.get(1..).unwrap_or_default())
    } else {
        (None, f.as_slice())
    };
    let texts: Vec<String> = f.iter().map(|x| x.text().to_string()).collect();
    let stat_field = f.first();
    let text_stat = stat_field.and_then(|s| match s {
        Field::Quoted(t) => MessageStat::from_text(t),
        Field::Bare(_) => None,
    });
    if let Some(stat) = text_stat {
        return Ok(StoredMessage {
            index,
            stat: Some(stat),
            alpha: None,
            length: None,
            body: String::new(),
            text_mode: true,
            fields: texts,
        });
    }
    // Text-mode status report with empty <stat>: `,6,20,"0870000000",...`.
    if f.len() >= 7 {
        return Ok(StoredMessage {
            index,
            stat: stat_field.and_then(|x| x.num()).map(MessageStat::from_code),
            alpha: None,
            length: None,
            body: String::new(),
            text_mode: true,
            fields: texts,
        });
    }
    // PDU mode: <stat>,[<alpha>],<length>; stat or alpha may be missing.
    let stat = if f.len() >= 2 {
        stat_field.and_then(|x| x.num()).map(MessageStat::from_code)
    } else {
        None
    };
    let length = f.last().and_then(|x| x.num());
    if length.is_none() {
        return Err(ParseError::invalid("message header", rest));
    }
    let alpha = if f.len() >= 3 {
        f.get(f.len() - 2)
            .and_then(Field::opt_text)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
    } else {
        None
    };
    Ok(StoredMessage {
        index,
        stat,
        alpha,
        length,
        body: String::new(),
        text_mode: false,
        fields: texts,
    })
}

/// Walks header/body lines of a `+CMGR`/`+CMGL` answer.
///
/// `strict` (`+CMGR`): a PDU line with non-hex characters is an error. Not
/// strict (`+CMGL`): the body is kept as is, so one garbled entry does not
/// hide the others; the PDU decoder rejects it per message. Odd lengths
/// (a truncated last entry) are kept either way.
fn messages(
    lines: &[String],
    prefix: &str,
    with_index: bool,
    strict: bool,
) -> Result<Vec<StoredMessage>, ParseError> {
    let mut out: Vec<StoredMessage> = Vec::new();
    let mut body_lines = 0usize;
    for line in lines {
        if let Some(rest) = after_prefix(line, prefix) {
            let (rest, inline) = match super::parse::split_inline_pdu(line) {
                Some((head, pdu)) => (after_prefix(head, prefix).unwrap_or(rest), Some(pdu)),
                None => (rest, None),
            };
            let mut m = message_header(rest, with_index)?;
            if let Some(pdu) = inline {
                m.body = pdu.to_string();
                body_lines = 1;
            } else {
                body_lines = 0;
            }
            out.push(m);
            continue;
        }
        let Some(m) = out.last_mut() else { continue };
        if m.text_mode {
            if body_lines > 0 {
                m.body.push('\n');
            }
            m.body.push_str(line);
            body_lines += 1;
        } else if body_lines == 0 {
            let pdu = clean_pdu(line);
            if strict && !is_hex(pdu) {
                return Err(ParseError::invalid("PDU", pdu));
            }
            m.body = pdu.to_string();
            body_lines = 1;
        }
        // Further lines after a PDU are noise (python-gsmmodem inserts a
        // garbage line between entries); skipped.
    }
    Ok(out)
}

/// `AT+CMGR=<index>`: read one message (27.005 §3.4.3; PDU mode §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMessage(pub u32);
impl AtCommand for ReadMessage {
    type Response = StoredMessage;
    fn text(&self) -> String {
        format!("AT+CMGR={}", self.0)
    }
    fn timeout(&self) -> Duration {
        Duration::from_secs(15)
    }
    fn parse(&self, lines: &[String]) -> Result<StoredMessage, ParseError> {
        let m = messages(lines, "+CMGR:", false, true)?
            .into_iter()
            .next()
            .ok_or(ParseError::Missing("+CMGR:"))?;
        if m.body.is_empty() && !m.text_mode {
            return Err(ParseError::Missing("PDU"));
        }
        Ok(m)
    }
}

/// `AT+CMGL=<stat>`: list messages (27.005 §3.4.2; PDU mode §4.1). Slow on
/// full SIMs, hence [`LONG_TIMEOUT`]. Quirks accepted: no `<alpha>`, quoted
/// empty alpha, a truncated last entry (returned as is), header lengths
/// that do not match the PDU, garbage lines between entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListMessages(pub MessageStat);
impl AtCommand for ListMessages {
    type Response = Vec<StoredMessage>;
    fn text(&self) -> String {
        format!("AT+CMGL={}", self.0.code())
    }
    fn timeout(&self) -> Duration {
        LONG_TIMEOUT
    }
    fn parse(&self, lines: &[String]) -> Result<Vec<StoredMessage>, ParseError> {
        messages(lines, "+CMGL:", true, false)
    }
}

/// `AT+CMGL=<arg>` with the argument a hardware profile asks for
/// (`cmgl_all`): 27.005 §4.1 wants a number in PDU mode, but some firmware
/// only takes the text-mode string (`"ALL"`). Answers as [`ListMessages`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListMessagesAs(pub String);
impl AtCommand for ListMessagesAs {
    type Response = Vec<StoredMessage>;
    fn text(&self) -> String {
        format!("AT+CMGL={}", self.0)
    }
    fn timeout(&self) -> Duration {
        LONG_TIMEOUT
    }
    fn parse(&self, lines: &[String]) -> Result<Vec<StoredMessage>, ParseError> {
        messages(lines, "+CMGL:", true, false)
    }
}

/// `AT+CMGD=<index>[,<delflag>]`: delete (27.005 §3.5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteMessage {
    /// Index in the read storage.
    pub index: u32,
    /// `<delflag>` (1 read, 2 read+sent, 3 +unsent, 4 all), if any.
    pub flag: Option<u8>,
}
impl SetCommand for DeleteMessage {
    fn line(&self) -> String {
        match self.flag {
            Some(f) => format!("AT+CMGD={},{f}", self.index),
            None => format!("AT+CMGD={}", self.index),
        }
    }
    fn max_wait(&self) -> Duration {
        Duration::from_secs(25)
    }
}

/// `AT+CMGS=<length><CR>` `> ` `<pdu><Ctrl-Z>`: send a message (27.005
/// §3.5.1; PDU mode §4.3). The answer is the message reference `<mr>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendMessage {
    pdu: String,
    tpdu_len: usize,
    timeout: Duration,
}

impl SendMessage {
    /// `pdu` is the full hex PDU (SMSC part included); `tpdu_len` the TPDU
    /// length in octets (without the SMSC part), as 27.005 §4.3 wants.
    pub fn new(pdu: &str, tpdu_len: usize) -> Result<Self, ArgError> {
        if !is_hex(pdu) || pdu.len() % 2 != 0 {
            return Err(ArgError {
                what: "PDU",
                reason: "must be an even number of hex digits",
            });
        }
        if tpdu_len == 0 || tpdu_len > 164 || tpdu_len > pdu.len() / 2 {
            return Err(ArgError {
                what: "TPDU length",
                reason: "must be 1..=164 and fit in the PDU",
            });
        }
        Ok(SendMessage {
            pdu: pdu.to_ascii_uppercase(),
            tpdu_len,
            timeout: LONG_TIMEOUT,
        })
    }

    /// Overrides the [`LONG_TIMEOUT`] (a hardware profile may know better).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The PDU written after the prompt.
    pub fn pdu(&self) -> &str {
        &self.pdu
    }
}

impl AtCommand for SendMessage {
    type Response = u8;
    fn text(&self) -> String {
        format!("AT+CMGS={}", self.tpdu_len)
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
    fn in_flight(&self) -> InFlight {
        InFlight::for_command(&self.text()).with_prompt(self.pdu.clone())
    }
    fn parse(&self, lines: &[String]) -> Result<u8, ParseError> {
        let rest = first_prefixed(lines, "+CMGS:")?;
        fields(rest)
            .first()
            .and_then(|x| x.num())
            .ok_or_else(|| ParseError::invalid("message reference", rest))
    }
}

// ------------------------------------------------------------------- misc

/// `AT+CFUN=<fun>[,<rst>]`: set functionality; `reset` restarts the modem
/// (27.007 §8.2). Slow: the radio powers up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetFunctionality {
    /// `<fun>`: 0 minimum, 1 full, 4 flight mode.
    pub fun: u8,
    /// `<rst>` = 1: reset before setting.
    pub reset: bool,
}
impl SetCommand for SetFunctionality {
    fn line(&self) -> String {
        if self.reset {
            format!("AT+CFUN={},1", self.fun)
        } else {
            format!("AT+CFUN={}", self.fun)
        }
    }
    fn max_wait(&self) -> Duration {
        Duration::from_secs(30)
    }
}

/// `AT+CMEE=<n>`: 0 plain `ERROR`, 1 numeric, 2 verbose `+CME ERROR`
/// (27.007 §9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportErrors(pub u8);
impl SetCommand for ReportErrors {
    fn line(&self) -> String {
        format!("AT+CMEE={}", self.0)
    }
}

simple_command!(
    /// `ATE0`: echo off (V.250 §6.2.4).
    EchoOff,
    "ATE0"
);
simple_command!(
    /// `AT`: is the modem there?
    Ping,
    "AT"
);

/// Any command, answered with its raw information lines (for profile init
/// strings and diagnostics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raw {
    /// The command line without CR.
    pub text: String,
    /// How long to wait.
    pub timeout: Duration,
}
impl Raw {
    /// A raw command with the default timeout.
    pub fn new(text: &str) -> Self {
        Raw {
            text: text.trim_end_matches(['\r', '\n']).to_string(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}
impl AtCommand for Raw {
    type Response = Vec<String>;
    fn text(&self) -> String {
        self.text.clone()
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
    fn parse(&self, lines: &[String]) -> Result<Vec<String>, ParseError> {
        Ok(lines.to_vec())
    }
}

/// `AT+CLAC`: the commands the modem supports (27.007 §8.37). Accepts one
/// `+CLAC:` line with a comma list, or one command per line without
/// prefix (ZTE, Huawei).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SupportedCommands;
impl AtCommand for SupportedCommands {
    type Response = Vec<String>;
    fn text(&self) -> String {
        "AT+CLAC".into()
    }
    fn parse(&self, lines: &[String]) -> Result<Vec<String>, ParseError> {
        Ok(lines
            .iter()
            .flat_map(|l| after_prefix(l, "+CLAC:").unwrap_or(l).split(','))
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect())
    }
}

/// Parses a text-mode time stamp `yy/MM/dd,hh:mm:ss±zz` (27.005 §3.1,
/// the `<scts>`/`<dt>` of text mode; `zz` in quarters of an hour, 3GPP TS
/// 23.040 §9.2.3.11). Years are 2000-based. `None` if malformed.
pub fn text_timestamp(s: &str) -> Option<time::OffsetDateTime> {
    let s = s.trim().trim_matches('"');
    let (date, rest) = s.split_once(',')?;
    let mut d = date.split('/').map(|x| x.trim().parse::<u16>().ok());
    let (yy, mo, dd) = (d.next()??, d.next()??, d.next()??);
    let split = rest.find(['+', '-']);
    let (clock, zone) = match split {
        Some(i) => (rest.get(..i)?, rest.get(i..)?),
        None => (rest, "+0"),
    };
    let mut c = clock.split(':').map(|x| x.trim().parse::<u8>().ok());
    let (h, mi, sec) = (c.next()??, c.next()??, c.next()??);
    let quarters: i32 = zone.parse().ok()?;
    let year = if yy < 100 {
        2000 + i32::from(yy)
    } else {
        i32::from(yy)
    };
    let month = time::Month::try_from(u8::try_from(mo).ok()?).ok()?;
    let date = time::Date::from_calendar_date(year, month, u8::try_from(dd).ok()?).ok()?;
    let clock = time::Time::from_hms(h, mi, sec).ok()?;
    let offset = time::UtcOffset::from_whole_seconds(quarters.checked_mul(15 * 60)?).ok()?;
    Some(time::PrimitiveDateTime::new(date, clock).assume_offset(offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn texts() {
        assert_eq!(EnterPin::new("1234").unwrap().text(), "AT+CPIN=\"1234\"");
        assert!(EnterPin::new("12a4").is_err());
        assert!(EnterPin::new("123").is_err());
        assert_eq!(
            EnterPin::with_puk("12345678", "0000").unwrap().text(),
            "AT+CPIN=\"12345678\",\"0000\""
        );
        assert_eq!(SetSmsc("+4477\"".into()).text(), "AT+CSCA=\"+4477\",145");
        assert_eq!(ListMessages(MessageStat::All).text(), "AT+CMGL=4");
        assert_eq!(
            SetStorage {
                mem1: Storage::Sm,
                mem2: Some(Storage::Sm),
                mem3: Some(Storage::Me)
            }
            .text(),
            "AT+CPMS=\"SM\",\"SM\",\"ME\""
        );
        assert_eq!(
            SetFunctionality {
                fun: 1,
                reset: true
            }
            .text(),
            "AT+CFUN=1,1"
        );
        assert!(SendMessage::new("0011", 5).is_err());
        assert!(SendMessage::new("00X1", 1).is_err());
        let s = SendMessage::new("0011000b", 3).unwrap();
        assert_eq!(s.text(), "AT+CMGS=3");
        assert_eq!(s.in_flight().payload.as_deref(), Some("0011000B"));
    }

    #[test]
    fn parsers() {
        assert_eq!(
            SignalQuery.parse(&l(&["+CSQ: 17,99"])).unwrap().dbm(),
            Some(-79)
        );
        assert!(SignalQuery.parse(&l(&["+CSQ: x"])).is_err());
        let op = OperatorQuery
            .parse(&l(&["+COPS: 0,2,\"26201\",7"]))
            .unwrap();
        assert_eq!(op.name.as_deref(), Some("26201"));
        assert_eq!(OperatorQuery.parse(&l(&["+COPS: 0"])).unwrap().name, None);
        let nets = OperatorScan
            .parse(&l(&["+COPS: (2,\"T-Mobile D\",\"TMO D\",\"26201\",7),(3,\"Vodafone\",\"VF\",\"26202\",2),,(0-4),(0-2)"]))
            .unwrap();
        assert_eq!(nets.len(), 2);
        assert_eq!(nets[1].numeric, "26202");
        let (mode, reg) = RegistrationQuery(RegKind::Eps)
            .parse(&l(&["+CEREG: 2,1,\"1A2B\",\"01ABCDEF\",7"]))
            .unwrap();
        assert_eq!(
            (mode, reg.lac, reg.ci, reg.act),
            (2, Some(0x1A2B), Some(0x01AB_CDEF), Some(7))
        );
        assert_eq!(
            PinAttemptsQuery::Standard
                .parse(&l(&[
                    "+CPINR: \"SIM PIN\",3,3",
                    "+CPINR: \"SIM PUK\",10,10"
                ]))
                .unwrap(),
            PinAttempts {
                pin: Some(3),
                puk: Some(10)
            }
        );
        assert_eq!(
            PinAttemptsQuery::Huawei
                .parse(&l(&["^CPIN: READY,,10,3,10,3"]))
                .unwrap(),
            PinAttempts {
                pin: Some(3),
                puk: Some(10)
            }
        );
        assert_eq!(
            PinAttemptsQuery::Quectel
                .parse(&l(&["+QPINC: \"SC\",3,10"]))
                .unwrap(),
            PinAttempts {
                pin: Some(3),
                puk: Some(10)
            }
        );
        assert_eq!(
            SendMessage::new("00", 1)
                .unwrap()
                .parse(&l(&["+CMGS: 183"]))
                .unwrap(),
            183
        );
        assert_eq!(
            SelectMessageService(1)
                .parse(&l(&["+CSMS: 1,1,1"]))
                .unwrap(),
            (1, 1, 1)
        );
        assert_eq!(
            Iccid::Huawei
                .parse(&l(&["^ICCID: 8986001234567890123F"]))
                .unwrap(),
            "8986001234567890123F"
        );
        assert!(Iccid::Quectel.parse(&l(&["+QCCID: 8944"])).is_err());
        assert_eq!(
            Imei.parse(&l(&["352099001761481"])).unwrap(),
            "352099001761481"
        );
        assert!(Imei.parse(&l(&["ERROR junk"])).is_err());
        assert_eq!(
            StorageQuery
                .parse(&l(&["+CPMS: \"SM\",3,30,\"SM\",3,30,\"SR\",0,20"]))
                .unwrap()[2],
            Some(StorageUse {
                storage: Storage::Sr,
                used: 0,
                total: 20
            })
        );
        assert_eq!(
            SetStorage {
                mem1: Storage::Sm,
                mem2: None,
                mem3: None
            }
            .parse(&l(&["+CPMS: 14,50,14,50"]))
            .unwrap(),
            vec![(14, 50), (14, 50)]
        );
        assert_eq!(decode_ucs2_hex("002B0031"), Some("+1".into()));
        assert_eq!(decode_ucs2_hex("+79168999100"), None);
        let t = text_timestamp("13/04/29,19:58:00+04").unwrap();
        assert_eq!(
            (t.year(), t.hour(), t.offset().whole_hours()),
            (2013, 19, 1)
        );
        assert!(text_timestamp("2009/8/18,19:11:45").is_some());
        assert!(text_timestamp("99/99/99,1:2:3").is_none());
        assert_eq!(
            SupportedCommands
                .parse(&l(&["+CLAC:&C,D,\\S", "^DTMF"]))
                .unwrap(),
            vec!["&C", "D", "\\S", "^DTMF"]
        );
    }

    #[test]
    fn stored_messages() {
        let m = ReadMessage(1)
            .parse(&l(&["+CMGR: ,,27", "0297F1"]))
            .unwrap();
        assert_eq!(
            (m.stat, m.length, m.body.as_str()),
            (None, Some(27), "0297F1")
        );
        let m = ReadMessage(1)
            .parse(&l(&["+CMGR: 0,\"\",50", "07AB"]))
            .unwrap();
        assert_eq!((m.stat, m.alpha), (Some(MessageStat::RecUnread), None));
        let m = ReadMessage(1).parse(&l(&["+CMGR: 24", "07AB"])).unwrap();
        assert_eq!((m.stat, m.length), (None, Some(24)));
        assert!(ReadMessage(1)
            .parse(&l(&["+CMGR: 1,,2", "0BD0=96p"]))
            .is_err());
        assert!(ReadMessage(1).parse(&l(&["+CMGR: 1,,2"])).is_err());
        let v = ListMessages(MessageStat::All)
            .parse(&l(&[
                "+CMGL: 17,3,35",
                "0791AB",
                "garbage",
                "+CMGL: 1,1,\"x\",2",
                "07",
            ]))
            .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].index, v[0].stat, v[0].body.as_str()),
            (Some(17), Some(MessageStat::StoSent), "0791AB")
        );
        assert_eq!(v[1].alpha.as_deref(), Some("x"));
    }

    #[test]
    fn iccid_any_prefix_swapped_and_filler() {
        // Hand-made from E.118 / TS 31.102 §4.1.1 (EF_ICCID swapped BCD).
        #[rustfmt::skip]
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["#CCID: 89014103211118510720"], Some("89014103211118510720")),
            (&["ICCID: 89014103211118510720"], Some("89014103211118510720")),
            (&["+ZGETICCID: 8986011234567890123F"], Some("8986011234567890123F")),
            (&["+ICCID: \"89014103211118510720\""], Some("89014103211118510720")),
            (&["89014103211118510720"], Some("89014103211118510720")),
            // Huawei ^ICCID as stored: nibble pairs swapped.
            (&["^ICCID: 98101430121181157002"], Some("89014103211118510720")),
            (&["^ICCID: 986810214365870921F3"], Some("8986011234567890123F")),
            (&["", "#CCID: 8901"], None),
            (&["+CME ERROR-ish: 8901410321111851072X"], None),
            (&["898601123456789012345678"], None),
            (&[], None),
        ];
        for (lines, want) in cases {
            assert_eq!(iccid_in(&l(lines)).as_deref(), *want, "{lines:?}");
        }
        assert_eq!(
            Iccid::Ccid
                .parse(&l(&["#CCID: 89014103211118510720"]))
                .unwrap(),
            "89014103211118510720"
        );
    }

    #[test]
    fn iccid_from_ef_iccid() {
        let r = ReadIccidFile;
        assert_eq!(r.text(), "AT+CRSM=176,12258,0,0,10");
        assert_eq!(
            r.parse(&l(&["+CRSM: 144,0,\"98101430121181157002\""]))
                .unwrap(),
            "89014103211118510720"
        );
        assert_eq!(
            r.parse(&l(&["+CRSM: 144,0,986810214365870921F3"])).unwrap(),
            "8986011234567890123F"
        );
        // 0x6A82: file not found; 0x94: no EF selected.
        assert!(r.parse(&l(&["+CRSM: 106,130,\"\""])).is_err());
        assert!(r.parse(&l(&["+CRSM: 148,4"])).is_err());
        assert!(r.parse(&l(&["+CRSM: 144,0,\"981041\""])).is_err());
        assert!(r
            .parse(&l(&["+CRSM: 144,0,\"9810413012111158070\""]))
            .is_err());
        assert!(r.parse(&l(&[])).is_err());
    }
}
