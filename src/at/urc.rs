//! Unsolicited result codes: one enum for every URC the daemon reacts to,
//! with `Unknown` for the rest (vendor noise is carried, never an error).

use super::parse::{after_prefix, clean_pdu, fields, Field};

/// Registration state `<stat>`, 3GPP TS 27.007 §7.2 (`+CREG`), §10.1.20
/// (`+CGREG`), §10.1.22 (`+CEREG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegStatus {
    /// 0: not registered, not searching.
    NotRegistered,
    /// 1: registered, home network.
    Home,
    /// 2: not registered, searching.
    Searching,
    /// 3: registration denied.
    Denied,
    /// 4: unknown (e.g. out of coverage).
    Unknown,
    /// 5: registered, roaming.
    Roaming,
    /// 6/7 (SMS only, home/roaming), 8 (emergency only), ... kept raw.
    Other(u8),
}

impl RegStatus {
    /// The state for a `<stat>` value.
    pub fn from_code(code: u8) -> Self {
        match code {
            0 => RegStatus::NotRegistered,
            1 => RegStatus::Home,
            2 => RegStatus::Searching,
            3 => RegStatus::Denied,
            4 => RegStatus::Unknown,
            5 => RegStatus::Roaming,
            other => RegStatus::Other(other),
        }
    }

    /// Whether the modem can send and receive SMS in this state (home or
    /// roaming, including the "SMS only" states 6 and 7).
    pub fn is_registered(&self) -> bool {
        matches!(
            self,
            RegStatus::Home | RegStatus::Roaming | RegStatus::Other(6) | RegStatus::Other(7)
        )
    }
}

/// Which registration the line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegKind {
    /// Circuit switched, `+CREG` (27.007 §7.2).
    Cs,
    /// GPRS, `+CGREG` (27.007 §10.1.20).
    Gprs,
    /// EPS (LTE), `+CEREG` (27.007 §10.1.22).
    Eps,
}

/// A registration report: `<stat>[,<lac>,<ci>[,<AcT>]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    /// Registration state.
    pub stat: RegStatus,
    /// Location (or tracking) area code; `None` if absent or unreadable.
    pub lac: Option<u32>,
    /// Cell id; `None` if absent or unreadable.
    pub ci: Option<u32>,
    /// Access technology `<AcT>` (27.007 §7.3: 0 GSM, 2 UTRAN, 7 E-UTRAN...).
    pub act: Option<u8>,
}

impl Registration {
    /// Reads the fields after the prefix. `has_mode` is true for the answer
    /// to a read command (`+CREG: <n>,<stat>,...`) and false for the URC
    /// (`+CREG: <stat>,...`). Malformed `<lac>`/`<ci>` become `None`: the
    /// registration state is what matters and must not be lost to a
    /// cosmetic field (gammu at-creg-corner).
    pub fn parse(rest: &str, has_mode: bool) -> Option<Self> {
        let f = fields(rest);
        let skip = usize::from(has_mode);
        let stat = f.get(skip)?.num::<u8>()?;
        let lac = f.get(skip + 1).and_then(Field::hex);
        let ci = f.get(skip + 2).and_then(Field::hex);
        let act = f.get(skip + 3).and_then(|x| x.num());
        Some(Registration {
            stat: RegStatus::from_code(stat),
            lac,
            ci,
            act,
        })
    }
}

/// SIM state reported by `+CPIN` (27.007 §8.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinState {
    /// `READY`: no PIN pending.
    Ready,
    /// `SIM PIN` pending.
    SimPin,
    /// `SIM PUK` pending: the PIN was entered wrong too often.
    SimPuk,
    /// `SIM PIN2` pending.
    SimPin2,
    /// `SIM PUK2` pending.
    SimPuk2,
    /// `PH-SIM PIN` (phone-to-SIM lock) pending.
    PhSimPin,
    /// Anything else (`NOT INSERTED`, network personalisation, ...).
    Other(String),
}

impl PinState {
    /// Parses the `<code>` text.
    pub fn parse(code: &str) -> Self {
        let code = code.trim().trim_matches('"');
        match code.to_ascii_uppercase().as_str() {
            "READY" => PinState::Ready,
            "SIM PIN" => PinState::SimPin,
            "SIM PUK" => PinState::SimPuk,
            "SIM PIN2" => PinState::SimPin2,
            "SIM PUK2" => PinState::SimPuk2,
            "PH-SIM PIN" => PinState::PhSimPin,
            _ => PinState::Other(code.to_string()),
        }
    }
}

/// An unsolicited result code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Urc {
    /// `+CMTI: <mem>,<index>`: a message was stored (27.005 §3.4.1).
    /// `<mem>` is kept as sent; some dongles send `0` instead of `"SM"`.
    MessageStored {
        /// Storage name (`SM`, `ME`, ...).
        mem: String,
        /// Index in that storage.
        index: u32,
    },
    /// `+CMT: [<alpha>],<length><CR><LF><pdu>`: a message routed directly to
    /// the TE (27.005 §3.4.1). In text mode `length` is `None` and `pdu`
    /// holds the text body.
    Message {
        /// Optional `<alpha>`.
        alpha: Option<String>,
        /// TPDU length in octets, as the modem claims.
        length: Option<u16>,
        /// The PDU in hex (SMSC address included).
        pdu: String,
    },
    /// `+CDS: <length><CR><LF><pdu>`: a status report routed directly to the
    /// TE (27.005 §3.4.1).
    StatusReport {
        /// TPDU length in octets.
        length: Option<u16>,
        /// The PDU in hex.
        pdu: String,
    },
    /// `+CDSI: <mem>,<index>`: a status report was stored (27.005 §3.4.1).
    StatusReportStored {
        /// Storage name (`SR`, `SM`, ...).
        mem: String,
        /// Index in that storage.
        index: u32,
    },
    /// `+CREG`/`+CGREG`/`+CEREG` registration change.
    Registration {
        /// Which domain.
        kind: RegKind,
        /// The report.
        reg: Registration,
    },
    /// `+CUSD: <m>[,<str>[,<dcs>]]` (27.007 §7.15); `text` is raw (hex or
    /// text depending on `dcs` and `+CSCS`).
    Ussd {
        /// `<m>`: 0 no further action, 1 further action, 2 terminated...
        status: u8,
        /// `<str>` as sent.
        text: Option<String>,
        /// `<dcs>` (3GPP TS 23.038 §5).
        dcs: Option<u8>,
    },
    /// `RING` or `+CRING: <type>`: an incoming call (V.250, 27.007 §6.11).
    Ring,
    /// `+CLIP: <number>,<type>,...` calling line identity (27.007 §7.18).
    CallerId {
        /// The caller's number.
        number: String,
        /// Type of address (145 international, 129 national).
        ton: Option<u8>,
    },
    /// Huawei `^RSSI: <rssi>` (same scale as `+CSQ`).
    Rssi(u8),
    /// Huawei `^BOOT: ...` heartbeat, kept raw.
    Boot(String),
    /// Huawei `^MODE: <sys_mode>[,<sys_submode>]`.
    Mode {
        /// System mode (0 none, 3 GSM, 5 WCDMA, 7 LTE...).
        sys_mode: u8,
        /// Submode, if sent.
        sub_mode: Option<u8>,
    },
    /// `RDY`: the modem finished booting (Quectel, SIMCom).
    Ready,
    /// `+CPIN: <code>` after a SIM change or boot.
    Pin(PinState),
    /// Quectel `+QIND: ...` indication, kept raw.
    Quectel(String),
    /// Huawei `^SIMST: <state>[,<lock>]`.
    SimState {
        /// SIM state (1 valid, 255 absent...).
        state: u8,
        /// Lock state, if sent.
        lock: Option<u8>,
    },
    /// Anything else, the line as received.
    Unknown(String),
}

/// Prefixes of the URCs this module knows; while a command is in flight,
/// a line with one of these prefixes that the command did not ask for is
/// a URC. Vendor noise that is not in this list but arrives mid-response
/// is indistinguishable from response text and is handed to the command.
pub const URC_PREFIXES: &[&str] = &[
    "+CMTI:",
    "+CMT:",
    "+CDS:",
    "+CDSI:",
    "+CREG:",
    "+CGREG:",
    "+CEREG:",
    "+CUSD:",
    "RING",
    "+CRING:",
    "+CLIP:",
    "^RSSI:",
    "^BOOT:",
    "^MODE:",
    "RDY",
    "+CPIN:",
    "+QIND:",
    "^SIMST:",
    "+CIEV:",
    "^HCSQ:",
    "^SRVST:",
    "^SYSSTART",
    "+CBM:",
    "^ORIG:",
    "^CONF:",
    "^CONN:",
    "^CEND:",
    "+WIND:",
    "+PBREADY",
    "+QUSIM:",
    "SMS DONE",
    "CALL READY",
    "+CFUN:",
];

/// Whether `line` starts like a URC of [`URC_PREFIXES`].
pub fn looks_like_urc(line: &str) -> bool {
    URC_PREFIXES.iter().any(|p| after_prefix(line, p).is_some())
}

/// Whether `line` is a header whose PDU (or text) follows on the next line
/// (`+CMT:` and `+CDS:`, 27.005 §3.4.1).
pub fn has_pdu_line(line: &str) -> bool {
    after_prefix(line, "+CMT:").is_some() || after_prefix(line, "+CDS:").is_some()
}

fn stored(rest: &str) -> Option<(String, u32)> {
    let f = fields(rest);
    let mem = f.first()?.text().to_string();
    let index = f.get(1)?.num()?;
    Some((mem, index))
}

impl Urc {
    /// Parses a one-line URC. Lines this module cannot read (including a
    /// known prefix with broken parameters, e.g. `+CMTI: `) come back as
    /// `Unknown` with the line, so nothing is lost.
    pub fn parse(line: &str) -> Urc {
        Self::parse_known(line).unwrap_or_else(|| Urc::Unknown(line.to_string()))
    }

    fn parse_known(line: &str) -> Option<Urc> {
        let line = line.trim();
        if let Some(rest) = after_prefix(line, "+CMTI:") {
            let (mem, index) = stored(rest)?;
            return Some(Urc::MessageStored { mem, index });
        }
        if let Some(rest) = after_prefix(line, "+CDSI:") {
            let (mem, index) = stored(rest)?;
            return Some(Urc::StatusReportStored { mem, index });
        }
        for (prefix, kind) in [
            ("+CREG:", RegKind::Cs),
            ("+CGREG:", RegKind::Gprs),
            ("+CEREG:", RegKind::Eps),
        ] {
            if let Some(rest) = after_prefix(line, prefix) {
                let reg = Registration::parse(rest, false)?;
                return Some(Urc::Registration { kind, reg });
            }
        }
        if let Some(rest) = after_prefix(line, "+CUSD:") {
            return parse_cusd(rest);
        }
        if line.eq_ignore_ascii_case("RING") || after_prefix(line, "+CRING:").is_some() {
            return Some(Urc::Ring);
        }
        if let Some(rest) = after_prefix(line, "+CLIP:") {
            let f = fields(rest);
            let number = f.first()?.text().to_string();
            let ton = f.get(1).and_then(|x| x.num());
            return Some(Urc::CallerId { number, ton });
        }
        if let Some(rest) = after_prefix(line, "^RSSI:") {
            return Some(Urc::Rssi(rest.trim().parse().ok()?));
        }
        if let Some(rest) = after_prefix(line, "^BOOT:") {
            return Some(Urc::Boot(rest.to_string()));
        }
        if let Some(rest) = after_prefix(line, "^MODE:") {
            let f = fields(rest);
            let sys_mode = f.first()?.num()?;
            let sub_mode = f.get(1).and_then(|x| x.num());
            return Some(Urc::Mode { sys_mode, sub_mode });
        }
        if line.eq_ignore_ascii_case("RDY") {
            return Some(Urc::Ready);
        }
        if let Some(rest) = after_prefix(line, "+CPIN:") {
            return Some(Urc::Pin(PinState::parse(rest)));
        }
        if let Some(rest) = after_prefix(line, "+QIND:") {
            return Some(Urc::Quectel(rest.to_string()));
        }
        if let Some(rest) = after_prefix(line, "^SIMST:") {
            let f = fields(rest);
            let state = f.first()?.num()?;
            let lock = f.get(1).and_then(|x| x.num());
            return Some(Urc::SimState { state, lock });
        }
        None
    }

    /// Builds the URC for a `+CMT:`/`+CDS:` header and the line that
    /// followed it (27.005 §3.4.1: the header and its PDU are one unit).
    pub fn with_pdu(header: &str, pdu: &str) -> Urc {
        let header = header.trim();
        let pdu = clean_pdu(pdu).to_string();
        if let Some(rest) = after_prefix(header, "+CMT:") {
            let f = fields(rest);
            // PDU mode: [<alpha>],<length>; text mode has more fields and
            // no numeric last field, so `length` stays None.
            let (alpha, length) = match f.as_slice() {
                [a, l] => (a.opt_text().map(str::to_string), l.num()),
                [l] => (None, l.num()),
                _ => (None, None),
            };
            return Urc::Message { alpha, length, pdu };
        }
        if let Some(rest) = after_prefix(header, "+CDS:") {
            let length = fields(rest).first().and_then(|x| x.num());
            return Urc::StatusReport { length, pdu };
        }
        Urc::Unknown(format!("{header} {pdu}"))
    }
}

fn parse_cusd(rest: &str) -> Option<Urc> {
    let f = fields(rest);
    let status = f.first()?.num()?;
    let text = f.get(1).and_then(Field::opt_text).map(str::to_string);
    let dcs = f.get(2).and_then(|x| x.num());
    Some(Urc::Ussd { status, text, dcs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urc_table() {
        let reg = |stat, lac, ci, act| Registration { stat, lac, ci, act };
        let table: Vec<(&str, Urc)> = vec![
            (
                "+CMTI: \"SM\",3",
                Urc::MessageStored {
                    mem: "SM".into(),
                    index: 3,
                },
            ),
            (
                "+CMTI: 0,111",
                Urc::MessageStored {
                    mem: "0".into(),
                    index: 111,
                },
            ),
            ("+CMTI: ", Urc::Unknown("+CMTI: ".into())),
            (
                "+CDSI: \"SR\",0",
                Urc::StatusReportStored {
                    mem: "SR".into(),
                    index: 0,
                },
            ),
            (
                "+CREG: 1,\"5E25\",\"605F\",7",
                Urc::Registration {
                    kind: RegKind::Cs,
                    reg: reg(RegStatus::Home, Some(0x5E25), Some(0x605F), Some(7)),
                },
            ),
            (
                "+CEREG: 5",
                Urc::Registration {
                    kind: RegKind::Eps,
                    reg: reg(RegStatus::Roaming, None, None, None),
                },
            ),
            (
                "+CGREG: 2",
                Urc::Registration {
                    kind: RegKind::Gprs,
                    reg: reg(RegStatus::Searching, None, None, None),
                },
            ),
            (
                "+CUSD: 0,\"CF21\",15",
                Urc::Ussd {
                    status: 0,
                    text: Some("CF21".into()),
                    dcs: Some(15),
                },
            ),
            (
                "+CUSD: 5",
                Urc::Ussd {
                    status: 5,
                    text: None,
                    dcs: None,
                },
            ),
            ("RING", Urc::Ring),
            ("+CRING: VOICE", Urc::Ring),
            (
                "+CLIP: \"+0123456789\",145,,,,0",
                Urc::CallerId {
                    number: "+0123456789".into(),
                    ton: Some(145),
                },
            ),
            ("^RSSI: 17", Urc::Rssi(17)),
            (
                "^BOOT:20952263,0,0,0,75",
                Urc::Boot("20952263,0,0,0,75".into()),
            ),
            (
                "^MODE: 5,4",
                Urc::Mode {
                    sys_mode: 5,
                    sub_mode: Some(4),
                },
            ),
            ("RDY", Urc::Ready),
            ("+CPIN: READY", Urc::Pin(PinState::Ready)),
            ("+CPIN: SIM PIN", Urc::Pin(PinState::SimPin)),
            ("+QIND: SMS DONE", Urc::Quectel("SMS DONE".into())),
            (
                "^SIMST: 1,0",
                Urc::SimState {
                    state: 1,
                    lock: Some(0),
                },
            ),
            ("+WHATEVER: 1", Urc::Unknown("+WHATEVER: 1".into())),
        ];
        for (line, want) in table {
            assert_eq!(Urc::parse(line), want, "{line:?}");
        }
    }

    #[test]
    fn pdu_urcs() {
        assert_eq!(
            Urc::with_pdu("+CMT: ,23", "0791AB\""),
            Urc::Message {
                alpha: None,
                length: Some(23),
                pdu: "0791AB".into()
            }
        );
        assert_eq!(
            Urc::with_pdu("+CDS:25", "0791"),
            Urc::StatusReport {
                length: Some(25),
                pdu: "0791".into()
            }
        );
    }
}
