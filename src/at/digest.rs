//! The digester: a pure state machine that turns the byte stream of an AT
//! port into [`Event`]s. No I/O, no clock: the link feeds it bytes as they
//! arrive (split anywhere) and tells it which command is in flight.
//!
//! # Byte shapes it accepts
//!
//! * Line endings `CR LF` (V.250 §5.7.1 with the default S3/S4), bare `CR`
//!   (`+CDS:25\r<pdu>\r`), bare `LF` (dumps), doubled `CR CR LF` (Huawei):
//!   every CR or LF ends a line and empty lines are skipped.
//! * Echo on or off: while a command is in flight and before any of its
//!   response lines, a line starting with the command text (`AT+CGMM`,
//!   also `AT+CGMM\r\r` and the mangled `ATI4"`) is its echo and is dropped;
//!   after the `> ` prompt a line equal to the PDU sent is dropped too.
//! * Final result codes (V.250 §5.7.1, 27.007 §9.2, 27.005 §3.2.5): `OK`,
//!   `ERROR`, `+CME ERROR: <n|text>`, `+CMS ERROR: <n|text>`, `NO CARRIER`,
//!   `BUSY`, `NO ANSWER`, `NO DIALTONE`, Huawei `COMMAND NOT SUPPORT`,
//!   `MODEM ERROR: <n>`. `+CME ERROR:` with nothing after the colon and
//!   `MODEM ERROR: <text>` are not final (ModemManager's rule).
//! * The prompt `> ` or `>` (27.005 §3.5.1) at the start of a line, only
//!   while the command in flight waits for one; it needs no line end.
//! * URCs, also in the middle of a response: a line is a response line if
//!   it starts with one of the prefixes the caller expects (`AT+CREG?` wants
//!   `+CREG:`, so `+CREG: 2,1` is NOT a URC then), a URC if it starts like
//!   one of [`URC_PREFIXES`], and otherwise a response line (with a command
//!   in flight) or an unknown URC (without one).
//! * `+CMT:`/`+CDS:` headers are joined with the line that follows (their
//!   PDU) into one URC; `+CMGR:`/`+CMGL:` headers make the next line a
//!   response line whatever it looks like. A PDU on the header line after a
//!   space (`+CMGR: 1,,147 0791...`) and a trailing `"` are accepted by the
//!   parsers.
//! * NUL and other control bytes are dropped; invalid UTF-8 is replaced.
//! * A line longer than [`MAX_LINE`] is dropped with one
//!   [`Event::Overflow`]; the digester resynchronises at the next line end
//!   and never buffers more than [`MAX_LINE`] bytes.

use super::error::{AtError, CmeError, CmsError};
use super::parse::{after_prefix, split_inline_pdu};
use super::urc::{has_pdu_line, looks_like_urc, Urc, URC_PREFIXES};

/// Longest line kept, in bytes. The longest legitimate lines are `+CMGL`
/// PDUs (under 400 hex digits) and Huawei's one-line `+CLAC` (about 2500).
pub const MAX_LINE: usize = 4096;

/// What the digester recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An information line of the response to the command in flight.
    Line(String),
    /// The final result code of the command in flight: `Ok(())` for `OK`.
    Final(Result<(), AtError>),
    /// The `> ` prompt: the command in flight wants its PDU now.
    Prompt,
    /// An unsolicited result code.
    Urc(Urc),
    /// A final result code with no command in flight (a late answer to a
    /// command that timed out); logged and ignored by the link.
    Stray(String),
    /// A line longer than [`MAX_LINE`] was discarded; `len` is how many
    /// bytes it had.
    Overflow {
        /// Length of the discarded line.
        len: usize,
    },
    /// A `+CMT:`/`+CDS:` header whose PDU line never came (the next line
    /// was a result code or another header); the header is kept here.
    MissingPdu(String),
}

/// The command in flight, as the digester needs to know it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InFlight {
    /// The command as written, without the terminating CR (for echo).
    pub echo: String,
    /// Prefixes of the lines that belong to the response (`+CREG:`).
    pub prefixes: Vec<String>,
    /// Whether the command waits for the `> ` prompt (`+CMGS`, `+CMGW`).
    pub prompt: bool,
    /// What will be written after the prompt (its echo is dropped).
    pub payload: Option<String>,
}

impl InFlight {
    /// The usual description of a command: its echo, and the response
    /// prefix derived from its name (`AT+CMGR=1` -> `+CMGR:`,
    /// `AT^ICCID?` -> `^ICCID:`; basic commands like `ATI` get none).
    pub fn for_command(text: &str) -> Self {
        let text = text.trim_end_matches(['\r', '\n']).trim();
        let mut prefixes = Vec::new();
        if let Some(body) = text.get(2..).filter(|_| text.len() > 2) {
            let name_end = body.find(['=', '?']).unwrap_or(body.len());
            let name = body.get(..name_end).unwrap_or(body);
            if name.starts_with(['+', '^', '$', '%', '*']) && name.len() > 1 {
                prefixes.push(format!("{}:", name.to_ascii_uppercase()));
            }
        }
        InFlight {
            echo: text.to_string(),
            prefixes,
            prompt: false,
            payload: None,
        }
    }

    /// Adds a prompt and the payload written after it.
    pub fn with_prompt(mut self, payload: impl Into<String>) -> Self {
        self.prompt = true;
        self.payload = Some(payload.into());
        self
    }

    /// Replaces the response prefixes.
    pub fn with_prefixes(mut self, prefixes: &[&str]) -> Self {
        self.prefixes = prefixes.iter().map(|p| p.to_string()).collect();
        self
    }
}

/// The digester state. See the module docs for the shapes it handles.
#[derive(Debug, Default)]
pub struct Digester {
    /// The line being assembled; never longer than [`MAX_LINE`].
    buf: Vec<u8>,
    /// `Some(n)` while discarding an over-long line of `n` bytes so far.
    overflow: Option<usize>,
    /// The command in flight, if any.
    cmd: Option<InFlight>,
    /// Whether the command in flight has produced a response line yet
    /// (echo is only recognised before its first line).
    answered: bool,
    /// Whether the prompt was seen for the command in flight.
    prompted: bool,
    /// A space right after the prompt is part of it.
    skip_space: bool,
    /// After a `+CMGR:`/`+CMGL:` header: the next line is its body.
    body_pending: bool,
    /// A `+CMT:`/`+CDS:` header waiting for its PDU line.
    urc_header: Option<String>,
}

impl Digester {
    /// A digester with no command in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares the command just written; its echo, response lines and
    /// final result are recognised from now on.
    pub fn start(&mut self, cmd: InFlight) {
        self.cmd = Some(cmd);
        self.answered = false;
        self.prompted = false;
        self.body_pending = false;
    }

    /// Forgets the command in flight (after a timeout); lines that still
    /// arrive for it become URCs or [`Event::Stray`].
    pub fn abandon(&mut self) {
        self.cmd = None;
        self.body_pending = false;
    }

    /// Whether a command is in flight.
    pub fn in_flight(&self) -> bool {
        self.cmd.is_some()
    }

    /// Bytes held in the partial-line buffer (bounded by [`MAX_LINE`]).
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.urc_header.as_ref().map_or(0, String::len)
    }

    /// Feeds bytes, returning the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        self.feed_into(bytes, &mut out);
        out
    }

    /// Feeds bytes, appending the events they complete to `out`.
    pub fn feed_into(&mut self, bytes: &[u8], out: &mut Vec<Event>) {
        for &b in bytes {
            match b {
                b'\r' | b'\n' => self.end_line(out),
                b'>' if self.buf.is_empty() && self.overflow.is_none() && self.wants_prompt() => {
                    self.prompted = true;
                    self.skip_space = true;
                    out.push(Event::Prompt);
                }
                b' ' if self.skip_space && self.buf.is_empty() => self.skip_space = false,
                // NUL, Ctrl-Z echo, ESC and other control bytes are noise.
                0..=8 | 11..=12 | 14..=31 | 127 => {}
                _ => {
                    self.skip_space = false;
                    if let Some(n) = self.overflow.as_mut() {
                        *n += 1;
                    } else if self.buf.len() >= MAX_LINE {
                        self.overflow = Some(self.buf.len() + 1);
                        self.buf.clear();
                    } else {
                        self.buf.push(b);
                    }
                }
            }
        }
    }

    fn wants_prompt(&self) -> bool {
        self.cmd.as_ref().is_some_and(|c| c.prompt) && !self.prompted
    }

    fn end_line(&mut self, out: &mut Vec<Event>) {
        self.skip_space = false;
        if let Some(len) = self.overflow.take() {
            out.push(Event::Overflow { len });
            // The over-long line was the PDU a pending header waited for.
            if let Some(header) = self.urc_header.take() {
                out.push(Event::MissingPdu(header));
            }
            return;
        }
        if self.buf.is_empty() {
            return;
        }
        let raw = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        let line = raw.trim();
        if line.is_empty() {
            return;
        }
        self.classify(line, raw.trim_start(), out);
    }

    fn classify(&mut self, line: &str, untrimmed: &str, out: &mut Vec<Event>) {
        if let Some(header) = self.urc_header.take() {
            if final_result(untrimmed).is_none() && !line.starts_with(['+', '^']) {
                out.push(Event::Urc(Urc::with_pdu(&header, line)));
                return;
            }
            out.push(Event::MissingPdu(header));
        }
        let Some(cmd) = self.cmd.as_ref() else {
            if final_result(untrimmed).is_some() {
                out.push(Event::Stray(line.to_string()));
            } else {
                self.urc(line, out);
            }
            return;
        };
        if !self.answered && is_echo(cmd, line) {
            return;
        }
        if let Some(result) = final_result(untrimmed) {
            self.cmd = None;
            self.body_pending = false;
            out.push(Event::Final(result));
            return;
        }
        if std::mem::take(&mut self.body_pending) {
            self.answered = true;
            out.push(Event::Line(line.to_string()));
            return;
        }
        let expected = cmd.prefixes.iter().any(|p| after_prefix(line, p).is_some());
        if !expected && looks_like_urc(line) {
            self.urc(line, out);
            return;
        }
        if expected
            && (after_prefix(line, "+CMGR:").is_some() || after_prefix(line, "+CMGL:").is_some())
            && split_inline_pdu(line).is_none()
        {
            self.body_pending = true;
        }
        self.answered = true;
        out.push(Event::Line(line.to_string()));
    }

    fn urc(&mut self, line: &str, out: &mut Vec<Event>) {
        if has_pdu_line(line) {
            match split_inline_pdu(line) {
                Some((head, pdu)) => out.push(Event::Urc(Urc::with_pdu(head, pdu))),
                None => self.urc_header = Some(line.to_string()),
            }
        } else {
            out.push(Event::Urc(Urc::parse(line)));
        }
    }
}

fn is_echo(cmd: &InFlight, line: &str) -> bool {
    let starts = |p: &str| {
        !p.is_empty()
            && line
                .get(..p.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(p))
    };
    starts(&cmd.echo) || cmd.payload.as_deref().is_some_and(starts)
}

/// Recognises a final result code. `line` has leading spaces removed but
/// keeps trailing ones, because `+CME ERROR: ` (with a space) is final and
/// `+CME ERROR:` (nothing after the colon) is not.
pub fn final_result(line: &str) -> Option<Result<(), AtError>> {
    let trimmed = line.trim_end();
    let upper = trimmed.to_ascii_uppercase();
    match upper.as_str() {
        "OK" => return Some(Ok(())),
        "ERROR" => return Some(Err(AtError::Error)),
        "NO CARRIER" => return Some(Err(AtError::NoCarrier)),
        "BUSY" => return Some(Err(AtError::Busy)),
        "NO ANSWER" => return Some(Err(AtError::NoAnswer)),
        "NO DIALTONE" => return Some(Err(AtError::NoDialtone)),
        "COMMAND NOT SUPPORT" => return Some(Err(AtError::NotSupported)),
        _ => {}
    }
    if let Some(rest) = line.get(11..).filter(|_| upper.starts_with("+CME ERROR:")) {
        return (!rest.is_empty()).then(|| Err(AtError::Cme(CmeError::parse(rest))));
    }
    if let Some(rest) = line.get(11..).filter(|_| upper.starts_with("+CMS ERROR:")) {
        return (!rest.is_empty()).then(|| Err(AtError::Cms(CmsError::parse(rest))));
    }
    if let Some(rest) = after_prefix(trimmed, "MODEM ERROR:") {
        return rest.parse().ok().map(|n| Err(AtError::Modem(n)));
    }
    None
}

/// Every URC prefix the digester recognises mid-response (for docs/tests).
pub fn urc_prefixes() -> &'static [&'static str] {
    URC_PREFIXES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(text: &str) -> InFlight {
        InFlight::for_command(text)
    }

    fn line(s: &str) -> Event {
        Event::Line(s.to_string())
    }

    const OK: Event = Event::Final(Ok(()));

    /// Runs `input` through a digester in one piece and split at every
    /// byte position, asserting the same events each time.
    fn check(command: Option<InFlight>, input: &[u8], want: &[Event]) {
        let run = |chunks: &[&[u8]]| {
            let mut d = Digester::new();
            if let Some(c) = command.clone() {
                d.start(c);
            }
            let mut out = Vec::new();
            for c in chunks {
                d.feed_into(c, &mut out);
            }
            out
        };
        assert_eq!(
            run(&[input]),
            want,
            "whole: {:?}",
            String::from_utf8_lossy(input)
        );
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(
                run(&[a, b]),
                want,
                "split at {i}: {:?}",
                String::from_utf8_lossy(input)
            );
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&bytes), want, "byte by byte");
    }

    /// name, command in flight, bytes, expected events.
    type Case = (&'static str, Option<InFlight>, &'static [u8], Vec<Event>);

    #[test]
    fn shapes() {
        use Event::*;
        let cmgs = || cmd("AT+CMGS=23").with_prompt("0011AB");
        let table: Vec<Case> = vec![
            (
                "crlf echo off",
                Some(cmd("AT+CGMM")),
                b"\r\nE1752\r\n\r\nOK\r\n",
                vec![line("E1752"), OK],
            ),
            (
                "echo on",
                Some(cmd("AT+CGMM")),
                b"AT+CGMM\r\r\nE1752\r\n\r\nOK\r\n",
                vec![line("E1752"), OK],
            ),
            (
                "echo cr cr",
                Some(cmd("AT+CGMM")),
                b"AT+CGMM\r\r\n MULTIBAND  900E  1800 \r\n\r\nOK\r\n",
                vec![line("MULTIBAND  900E  1800"), OK],
            ),
            (
                "mangled echo",
                Some(cmd("ATI4")),
                b"ATI4\"\nModel: X\nOK\n",
                vec![line("Model: X"), OK],
            ),
            (
                "lf only",
                Some(cmd("AT+CSQ")),
                b"+CSQ: 17,99\nOK\n",
                vec![line("+CSQ: 17,99"), OK],
            ),
            (
                "cr only",
                Some(cmd("AT+CSQ")),
                b"+CSQ: 17,99\rOK\r",
                vec![line("+CSQ: 17,99"), OK],
            ),
            (
                "creg is response",
                Some(cmd("AT+CREG?")),
                b"\r\n+CREG: 2,1\r\n\r\nOK\r\n",
                vec![line("+CREG: 2,1"), OK],
            ),
            (
                "creg is urc",
                Some(cmd("AT+CSQ")),
                b"\r\n+CREG: 1\r\n+CSQ: 9,99\r\nOK\r\n",
                vec![
                    Urc(crate::at::Urc::Registration {
                        kind: crate::at::urc::RegKind::Cs,
                        reg: crate::at::urc::Registration {
                            stat: crate::at::urc::RegStatus::Home,
                            lac: None,
                            ci: None,
                            act: None,
                        },
                    }),
                    line("+CSQ: 9,99"),
                    OK,
                ],
            ),
            (
                "urc mid response",
                Some(cmd("AT+CGMI")),
                b"huawei\r\n^RSSI: 12\r\nOK\r\n",
                vec![line("huawei"), Urc(crate::at::Urc::Rssi(12)), OK],
            ),
            (
                "cmti no command",
                None,
                b"\r\n+CMTI: \"SM\",3\r\n",
                vec![Urc(crate::at::Urc::MessageStored {
                    mem: "SM".into(),
                    index: 3,
                })],
            ),
            (
                "cmt with pdu mid response",
                Some(cmd("AT+CSQ")),
                b"\r\n+CMT: ,23\r\n0791AB\r\n+CSQ: 1,2\r\nOK\r\n",
                vec![
                    Urc(crate::at::Urc::Message {
                        alpha: None,
                        length: Some(23),
                        pdu: "0791AB".into(),
                    }),
                    line("+CSQ: 1,2"),
                    OK,
                ],
            ),
            (
                "cds bare cr",
                None,
                b"+CDS:25\r0791AB\r",
                vec![Urc(crate::at::Urc::StatusReport {
                    length: Some(25),
                    pdu: "0791AB".into(),
                })],
            ),
            (
                "cmgr body",
                Some(cmd("AT+CMGR=1")),
                b"+CMGR: 0,,4\r\nRING\r\nOK\r\nOK\r\n",
                vec![line("+CMGR: 0,,4"), line("RING"), OK, Stray("OK".into())],
            ),
            (
                "cmgr inline",
                Some(cmd("AT+CMGR=1")),
                b"+CMGR: 1,,4 0791AB\r\nOK\r\n",
                vec![line("+CMGR: 1,,4 0791AB"), OK],
            ),
            (
                "cmgr trailing quote",
                Some(cmd("AT+CMGR=5")),
                b"+CMGR: 1,,4\n0791AB\"\r\nOK\r\n",
                vec![line("+CMGR: 1,,4"), line("0791AB\""), OK],
            ),
            ("prompt", Some(cmgs()), b"\r\n> ", vec![Prompt]),
            ("prompt no space", Some(cmgs()), b">", vec![Prompt]),
            (
                "prompt then result",
                Some(cmgs()),
                b"> \r\n+CMGS: 183\r\nOK\r\n+CDSI: \"SM\",3\r\n",
                vec![
                    Prompt,
                    line("+CMGS: 183"),
                    OK,
                    Urc(crate::at::Urc::StatusReportStored {
                        mem: "SM".into(),
                        index: 3,
                    }),
                ],
            ),
            (
                "prompt echo",
                Some(cmgs()),
                b"AT+CMGS=23\r\r\n> 0011AB\x1a\r\n+CMGS: 7\r\n\r\nOK\r\n",
                vec![Prompt, line("+CMGS: 7"), OK],
            ),
            (
                "gt without prompt",
                Some(cmd("AT+CSQ")),
                b">x\r\nOK\r\n",
                vec![line(">x"), OK],
            ),
            (
                "cme text",
                Some(cmd("AT+CPIN?")),
                b"+CME ERROR: SIM PIN required\r\n",
                vec![Final(Err(AtError::Cme(Some(CmeError::SimPinRequired))))],
            ),
            (
                "cms code",
                Some(cmd("AT+CMGS=9")),
                b"\r\n+CMS ERROR: 330\r\n",
                vec![Final(Err(AtError::Cms(Some(CmsError::SmscAddressUnknown))))],
            ),
            (
                "cme empty",
                Some(cmd("AT")),
                b"+CME ERROR:\r\n",
                vec![line("+CME ERROR:")],
            ),
            (
                "cme space",
                Some(cmd("AT")),
                b"+CME ERROR: \r\n",
                vec![Final(Err(AtError::Cme(None)))],
            ),
            (
                "huawei",
                Some(cmd("AT+WIND?")),
                b"COMMAND NOT SUPPORT\r\n",
                vec![Final(Err(AtError::NotSupported))],
            ),
            (
                "modem error",
                Some(cmd("AT")),
                b"MODEM ERROR: 5\r\n",
                vec![Final(Err(AtError::Modem(5)))],
            ),
            (
                "modem error text",
                Some(cmd("AT")),
                b"MODEM ERROR: apple\r\n",
                vec![line("MODEM ERROR: apple")],
            ),
            (
                "dial results",
                Some(cmd("ATD1;")),
                b"NO DIALTONE\r\n",
                vec![Final(Err(AtError::NoDialtone))],
            ),
            (
                "busy",
                Some(cmd("ATD1;")),
                b"BUSY\r\n",
                vec![Final(Err(AtError::Busy))],
            ),
            ("stray ok", None, b"\r\nOK\r\n", vec![Stray("OK".into())]),
            (
                "nul and garbage",
                Some(cmd("AT")),
                b"\0\0\x01O\0K\r\n",
                vec![OK],
            ),
            (
                "missing pdu",
                None,
                b"+CMT: ,23\r\n+CMTI: \"SM\",1\r\n",
                vec![
                    MissingPdu("+CMT: ,23".into()),
                    Urc(crate::at::Urc::MessageStored {
                        mem: "SM".into(),
                        index: 1,
                    }),
                ],
            ),
            (
                "huawei clac",
                Some(cmd("AT+CLAC")),
                b"&C\r\r\n&D\r\r\nOK\r\n",
                vec![line("&C"), line("&D"), OK],
            ),
        ];
        for (name, command, input, want) in table {
            eprintln!("case {name}");
            check(command, input, &want);
        }
    }

    #[test]
    fn overlong_line_is_dropped_and_resyncs() {
        let mut d = Digester::new();
        d.start(cmd("AT+CGMM"));
        let mut input = vec![b'A'; MAX_LINE * 3];
        input.extend_from_slice(b"\r\nX\r\nOK\r\n");
        let ev = d.feed(&input);
        assert_eq!(
            ev,
            vec![Event::Overflow { len: MAX_LINE * 3 }, line("X"), OK]
        );
        assert_eq!(d.buffered(), 0);
        let mut input = b"+CMT: ,23\r\n".to_vec();
        input.extend(vec![b'0'; MAX_LINE + 1]);
        input.extend_from_slice(b"\r\n");
        assert_eq!(
            Digester::new().feed(&input),
            vec![
                Event::Overflow { len: MAX_LINE + 1 },
                Event::MissingPdu("+CMT: ,23".into())
            ]
        );
    }

    proptest::proptest! {
        /// Arbitrary bytes in arbitrary chunks: no panic, bounded memory,
        /// and splitting never changes the events.
        #[test]
        fn never_panics_and_stays_bounded(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..3 * MAX_LINE),
            cut in 0usize..3 * MAX_LINE,
            mode in 0u8..3,
        ) {
            let start = |d: &mut Digester| match mode {
                0 => {}
                1 => d.start(cmd("AT+CMGL=4")),
                _ => d.start(cmd("AT+CMGS=5").with_prompt("00AB")),
            };
            let mut whole = Digester::new();
            start(&mut whole);
            let a = whole.feed(&data);
            proptest::prop_assert!(whole.buffered() <= 2 * MAX_LINE);
            let mut split = Digester::new();
            start(&mut split);
            let (x, y) = data.split_at(cut.min(data.len()));
            let mut b = split.feed(x);
            proptest::prop_assert!(split.buffered() <= 2 * MAX_LINE);
            b.extend(split.feed(y));
            proptest::prop_assert_eq!(a, b);
        }

        /// Lines made of AT-ish tokens, to reach the classifier often.
        #[test]
        fn at_like_input_never_panics(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "OK", "ERROR", "+CMTI: \"SM\",1", "+CMT: ,23", "+CDS:25", "0791AB",
                    "> ", ">", "+CME ERROR: ", "+CMS ERROR: 3", "\r", "\n", "\r\n",
                    "+CMGL: 1,1,,5", "+CMGR: ,,5 0791", "AT+CMGL=4", "\0", "\x1a", "MODEM ERROR: 9",
                ]),
                0..64,
            ),
        ) {
            let mut d = Digester::new();
            d.start(cmd("AT+CMGL=4"));
            for p in parts {
                let _ = d.feed(p.as_bytes());
            }
            proptest::prop_assert!(d.buffered() <= 2 * MAX_LINE);
        }
    }

    #[test]
    fn prefixes_from_command() {
        assert_eq!(cmd("AT+CMGR=1").prefixes, vec!["+CMGR:"]);
        assert_eq!(cmd("AT^ICCID?").prefixes, vec!["^ICCID:"]);
        assert_eq!(cmd("AT+CSQ\r").prefixes, vec!["+CSQ:"]);
        assert!(cmd("ATI").prefixes.is_empty());
        assert!(cmd("AT").prefixes.is_empty());
    }
}
