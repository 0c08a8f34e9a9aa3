//! Byte-exact tests of the simulated modem, driven as a DTE drives it.

use std::time::{Duration, Instant};

use super::*;
use crate::hardware::builtin_profile;

pub(super) fn identity() -> Identity {
    Identity {
        number: "+15551230000".into(),
        imei: "350000001234567".into(),
        imsi: "001010000000001".into(),
        iccid: "8900100000000000001".into(),
        pin: None,
        smsc: "+15550000001".into(),
    }
}

/// A modem and a clock.
pub(super) struct Dte {
    pub m: SimModem,
    pub now: Instant,
}

impl Dte {
    pub fn new(profile: &str) -> Self {
        Self::with(profile, identity(), Duration::ZERO)
    }

    pub fn with(profile: &str, id: Identity, latency: Duration) -> Self {
        let now = Instant::now();
        let p = builtin_profile(profile).unwrap();
        Self {
            m: SimModem::new(id, &p, latency, 7, now),
            now,
        }
    }

    /// Writes `bytes`, returns what came back by now.
    /// A generic modem whose SIM asks for `pin`.
    pub fn with_pin(pin: &str) -> Self {
        let id = Identity {
            pin: Some(pin.into()),
            ..identity()
        };
        Self::with("generic", id, Duration::ZERO)
    }

    pub fn send(&mut self, bytes: &[u8]) -> String {
        self.m.input(bytes, self.now);
        self.read()
    }

    pub fn read(&mut self) -> String {
        String::from_utf8_lossy(&self.m.output(self.now)).into_owned()
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Echo off, then the given line; its answer.
    pub fn at(&mut self, line: &str) -> String {
        self.send(format!("{line}\r").as_bytes())
    }

    pub fn quiet_echo(mut self) -> Self {
        self.at("ATE0");
        self
    }
}

const OK: &str = "\r\nOK\r\n";

fn ok(info: &str) -> String {
    format!("\r\n{info}\r\n\r\nOK\r\n")
}

#[test]
fn echo_is_on_after_power_on_and_ate0_turns_it_off() {
    let mut d = Dte::new("generic");
    assert_eq!(d.at("AT"), "AT\r\r\nOK\r\n");
    assert_eq!(d.at("ATE0"), "ATE0\r\r\nOK\r\n");
    assert_eq!(d.at("AT"), OK);
    assert_eq!(d.at("ATE1"), OK);
    assert_eq!(d.at("at"), "at\r\r\nOK\r\n");
}

#[test]
fn basic_and_identification_commands() {
    let mut d = Dte::new("generic").quiet_echo();
    let table: &[(&str, String)] = &[
        ("AT+CGMI", ok("smsgate")),
        ("AT+CGMM", ok("SIM-GENERIC")),
        ("AT+CGMR", ok("1.0")),
        ("AT+CGSN", ok("350000001234567")),
        ("AT+GSN", ok("350000001234567")),
        ("AT+CIMI", ok("001010000000001")),
        ("AT+CCID", ok("+CCID: 8900100000000000001")),
        ("AT+CNUM", ok("+CNUM: \"\",\"+15551230000\",145")),
        ("ATI", ok("smsgate\r\nSIM-GENERIC\r\nRevision: 1.0")),
        ("AT+CSCS?", ok("+CSCS: \"IRA\"")),
        (
            "AT+CSCS=?",
            ok("+CSCS: (\"GSM\",\"IRA\",\"8859-1\",\"UCS2\",\"HEX\")"),
        ),
        ("AT+CSCS=\"HEX\"", OK.into()),
        ("AT+CSCS?", ok("+CSCS: \"HEX\"")),
        ("AT+CSMS=?", ok("+CSMS: (0,1)")),
        ("AT+CSMS?", ok("+CSMS: 0,1,1,1")),
        ("AT+CMGF=?", ok("+CMGF: (0,1)")),
        ("AT+CMGF?", ok("+CMGF: 0")),
        ("AT+CPIN?", ok("+CPIN: READY")),
        ("AT+CSQ", ok("+CSQ: 21,99")),
        ("AT+CBC", ok("+CBC: 0,100")),
        ("AT+CGATT?", ok("+CGATT: 1")),
        ("AT+CFUN?", ok("+CFUN: 1")),
        ("AT+CSCA?", ok("+CSCA: \"+15550000001\",145")),
        ("AT+CNMI=?", ok("+CNMI: (0-2),(0-3),(0-3),(0-2),(0,1)")),
        ("AT+CMMS=2", OK.into()),
        ("AT+IFC=2,2", OK.into()),
        ("AT&F", OK.into()),
        ("ATE0", "ATE0\r\r\nOK\r\n".into()),
        ("ATZ", OK.into()),
        ("ATE0", "ATE0\r\r\nOK\r\n".into()),
        ("ATQ0 V1 E0 S0=0 &C1 &D2", OK.into()),
        ("ATS3?", ok("013")),
        ("AT+MODE=2", "\r\nERROR\r\n".into()),
        ("AT+CPROT=?", "\r\nERROR\r\n".into()),
        ("AT$TSSPCSW=?", "\r\nERROR\r\n".into()),
        ("AT+CHUP=?", "\r\nERROR\r\n".into()),
        ("AT+CUSD=1", OK.into()),
        ("ATD+15551234567;", "\r\nNO CARRIER\r\n".into()),
    ];
    for (cmd, want) in table {
        assert_eq!(&d.at(cmd), want, "{cmd}");
    }
}

#[test]
fn chained_commands_answer_once() {
    let mut d = Dte::new("generic").quiet_echo();
    assert_eq!(d.at("AT+CMEE=1;+CREG=2"), OK);
    assert_eq!(
        d.at("AT+CMEE?;+CREG?"),
        "\r\n+CMEE: 1\r\n\r\n+CREG: 2,1,\"1A2B\",\"00C3D4E5\"\r\n\r\nOK\r\n"
    );
    // The first failing command ends the line.
    assert_eq!(
        d.at("AT+CSQ;+NOPE;+CBC"),
        "\r\n+CSQ: 21,99\r\n\r\n+CME ERROR: 100\r\n".replace("+CME ERROR: 100", "ERROR")
    );
}

#[test]
fn cmee_selects_error_format() {
    let mut d = Dte::with_pin("1234").quiet_echo();
    assert_eq!(d.at("AT+CIMI"), "\r\nERROR\r\n");
    d.at("AT+CMEE=1");
    assert_eq!(d.at("AT+CIMI"), "\r\n+CME ERROR: 11\r\n");
    assert_eq!(d.at("AT+CMGL=4"), "\r\n+CMS ERROR: 311\r\n");
    d.at("AT+CMEE=2");
    assert_eq!(d.at("AT+CIMI"), "\r\n+CME ERROR: SIM PIN required\r\n");
}

#[test]
fn verbose_off_gives_numeric_codes() {
    let mut d = Dte::new("generic").quiet_echo();
    assert_eq!(d.at("ATV0"), "0\r");
    assert_eq!(d.at("AT+CSQ"), "+CSQ: 21,99\r\n0\r");
    assert_eq!(d.at("AT+FOO"), "4\r");
    assert_eq!(d.at("ATV1"), OK);
    assert_eq!(d.at("ATQ1"), "");
    assert_eq!(d.at("AT+CSQ"), "\r\n+CSQ: 21,99\r\n");
}

#[test]
fn line_editing_garbage_and_limits() {
    let mut d = Dte::new("generic").quiet_echo();
    // A bare CR, LF, NUL and lines without "AT" are ignored.
    assert_eq!(d.send(b"\r"), "");
    assert_eq!(d.send(b"\n\0hello\r"), "");
    // ESC drops what was typed.
    assert_eq!(d.send(b"AT+CSQ\x1b\r"), "");
    assert_eq!(d.send(b"\x1bAT\r"), OK);
    // Garbage before AT is skipped (V.250 §5.2.1), CRLF terminators work.
    assert_eq!(d.send(b"\xff\xfeAT\r\n"), OK);
    // Backspace.
    assert_eq!(d.send(b"ATX\x08\r"), OK);
    // A line split over writes.
    assert_eq!(d.send(b"A"), "");
    assert_eq!(d.send(b"T+CS"), "");
    assert_eq!(d.send(b"Q\r"), ok("+CSQ: 21,99"));
    // Overlong lines are refused, and the modem still works after.
    let long = vec![b'A'; 100_000];
    assert_eq!(d.send(&long), "");
    assert_eq!(d.send(b"\r"), "\r\nERROR\r\n");
    assert_eq!(d.at("AT"), OK);
    // Syntax errors.
    assert_eq!(d.at("AT&"), "\r\nERROR\r\n");
    assert_eq!(d.at("AT+CMGR=\"1"), "\r\nERROR\r\n");
    // A/ repeats the last line.
    assert_eq!(d.at("AT+CSQ"), ok("+CSQ: 21,99"));
    assert_eq!(d.send(b"A/"), ok("+CSQ: 21,99"));
}

#[test]
fn random_bytes_never_panic() {
    let mut d = Dte::new("huawei");
    let mut x: u32 = 12345;
    for _ in 0..20_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let b = (x >> 16) as u8;
        let b = match b % 8 {
            0 => b'\r',
            1 => b'A',
            2 => b'T',
            3 => b'+',
            4 => 0x1A,
            _ => b,
        };
        d.m.input(&[b], d.now);
        d.advance(Duration::from_millis(3));
        d.m.output(d.now);
    }
    d.advance(Duration::from_secs(30));
    d.m.output(d.now);
    d.send(b"\x1b\r");
    d.send(b"ATZ\r");
    assert_eq!(d.at("ATE0"), "ATE0\r\r\nOK\r\n");
}

#[test]
fn cops_honours_format() {
    let mut d = Dte::new("generic").quiet_echo();
    assert_eq!(d.at("AT+COPS=3,2"), OK);
    assert_eq!(d.at("AT+COPS?"), ok("+COPS: 0,2,\"00101\",0"));
    assert_eq!(d.at("AT+COPS=3,0"), OK);
    assert_eq!(d.at("AT+COPS?"), ok("+COPS: 0,0,\"smsgate sim\",0"));
    assert_eq!(d.at("AT+COPS=3,1"), OK);
    assert_eq!(d.at("AT+COPS?"), ok("+COPS: 0,1,\"SIMNET\",0"));
    // The network search takes a while.
    assert_eq!(d.at("AT+COPS=?"), "");
    d.advance(Duration::from_secs(3));
    assert!(d.read().starts_with("\r\n+COPS: (2,\"smsgate sim\""));
}

#[test]
fn registration_urcs_follow_cfun() {
    let mut d = Dte::new("generic").quiet_echo();
    assert_eq!(d.at("AT+CREG=1"), OK);
    assert_eq!(d.at("AT+CREG?"), ok("+CREG: 1,1"));
    assert_eq!(d.at("AT+CFUN=0"), "\r\nOK\r\n\r\n+CREG: 0\r\n");
    assert_eq!(d.at("AT+CSQ"), ok("+CSQ: 99,99"));
    assert_eq!(
        d.at("AT+CREG=2;+CFUN=1"),
        "\r\nOK\r\n\r\n+CREG: 1,\"1A2B\",\"00C3D4E5\"\r\n"
    );
}

#[test]
fn denied_registration_fault() {
    let mut d = Dte::new("generic").quiet_echo();
    assert_eq!(d.at("AT+CREG=1"), OK);
    d.m.set_faults(Faults {
        deny: true,
        ..Faults::default()
    });
    d.m.network_changed(d.now);
    assert_eq!(d.read(), "\r\n+CREG: 3\r\n");
    assert_eq!(d.at("AT+CREG?"), ok("+CREG: 1,3"));
    assert_eq!(d.m.receive(&deliver(), d.now), Err(ReceiveError::NotReady));
    d.m.set_faults(Faults::default());
    d.m.network_changed(d.now);
    assert_eq!(d.read(), "\r\n+CREG: 1\r\n");
}

const SUBMIT: &str = "0011000B915155112122F20000FF13C8329BFD0699E5EF3668DE9ED3DF6FF61C";

#[test]
fn cmgs_pdu_in_one_write_and_in_two() {
    let mut d = Dte::new("generic").quiet_echo();
    // smstools: PDU and Ctrl-Z in one write.
    assert_eq!(d.at("AT+CMGS=31"), "\r\n> ");
    assert_eq!(d.send(format!("{SUBMIT}\x1a").as_bytes()), ok("+CMGS: 1"));
    // gammu: Ctrl-Z in a second write 500 ms later.
    assert_eq!(d.at("AT+CMGS=31"), "\r\n> ");
    assert_eq!(d.send(SUBMIT.as_bytes()), "");
    d.advance(Duration::from_millis(500));
    assert_eq!(d.send(b"\x1a"), ok("+CMGS: 2"));
    let ev = d.m.take_events();
    assert_eq!(ev.len(), 2);
    let NetEvent::Submitted { tpdu, mr } = &ev[1];
    assert_eq!(*mr, 2);
    assert_eq!(tpdu[1], 2, "TP-MR is set in the TPDU");
    assert_eq!(tpdu.len(), 31);
    assert!(d.m.take_events().is_empty());
}

#[test]
fn cmgs_with_echo_echoes_the_pdu() {
    let mut d = Dte::new("generic");
    assert_eq!(d.at("AT+CMGS=31"), "AT+CMGS=31\r\r\n> ");
    let echoed = d.send(format!("{SUBMIT}\x1a").as_bytes());
    assert_eq!(echoed, format!("{SUBMIT}\r\n+CMGS: 1\r\n\r\nOK\r\n"));
}

#[test]
fn cmgs_rejects_bad_pdus() {
    let mut d = Dte::new("generic").quiet_echo();
    d.at("AT+CMEE=1");
    let cases: &[(&str, &str)] = &[
        ("AT+CMGS=31", "zz\x1a"),
        ("AT+CMGS=31", "0011\x1a"),
        (
            "AT+CMGS=30",
            "0011000B915155112122F20000FF13C8329BFD0699E5EF3668DE9ED3DF6FF61C\x1a",
        ),
        ("AT+CMGS=3", "00040000\x1a"),
        ("AT+CMGS=31", "0\x1a"),
        ("AT+CMGS=31", "\x1a"),
    ];
    for (cmd, body) in cases {
        assert_eq!(d.at(cmd), "\r\n> ", "{cmd}");
        assert_eq!(
            d.send(body.as_bytes()),
            "\r\n+CMS ERROR: 304\r\n",
            "{body:?}"
        );
    }
    assert_eq!(d.at("AT+CMGS=0"), "\r\n+CMS ERROR: 304\r\n");
    assert_eq!(d.at("AT+CMGS=999"), "\r\n+CMS ERROR: 304\r\n");
    assert_eq!(d.at("AT+CMGS=x"), "\r\nERROR\r\n");
    // ESC cancels.
    assert_eq!(d.at("AT+CMGS=31"), "\r\n> ");
    assert_eq!(d.send(b"0011\x1b"), OK);
    // A huge PDU is cut off, refused, and the modem goes on.
    assert_eq!(d.at("AT+CMGS=31"), "\r\n> ");
    assert_eq!(d.send(&vec![b'0'; 50_000]), "");
    assert_eq!(d.send(b"\x1a"), "\r\n+CMS ERROR: 304\r\n");
    assert_eq!(d.at("AT"), OK);
    assert!(d.m.take_events().is_empty());
}

#[test]
fn latency_is_honoured_via_next_wakeup() {
    let mut d = Dte::with("generic", identity(), Duration::from_millis(200));
    let t0 = d.now;
    // The echo comes at once, the answer after the latency.
    assert_eq!(d.at("AT"), "AT\r");
    assert_eq!(d.m.next_wakeup(), Some(t0 + Duration::from_millis(200)));
    d.advance(Duration::from_millis(199));
    assert_eq!(d.read(), "");
    d.advance(Duration::from_millis(1));
    assert_eq!(d.read(), OK);
    assert_eq!(d.m.next_wakeup(), None);
    // +CMGS: prompt and result both take the latency.
    d.at("ATE0");
    d.advance(Duration::from_millis(200));
    d.read();
    assert_eq!(d.at("AT+CMGS=31"), "");
    d.advance(Duration::from_millis(200));
    assert_eq!(d.read(), "\r\n> ");
    assert_eq!(d.send(format!("{SUBMIT}\x1a").as_bytes()), "");
    d.advance(Duration::from_millis(200));
    assert_eq!(d.read(), ok("+CMGS: 1"));
}

#[test]
fn send_time_delays_only_the_cmgs_result() {
    let mut d = Dte::new("generic").quiet_echo();
    d.m.set_send_time(Duration::from_secs(2));
    // Other commands stay instant.
    assert_eq!(d.at("AT"), OK);
    assert_eq!(d.at("AT+CMGS=31"), "\r\n> ");
    assert_eq!(d.send(format!("{SUBMIT}\x1a").as_bytes()), "");
    d.advance(Duration::from_millis(1999));
    assert_eq!(d.read(), "");
    d.advance(Duration::from_millis(1));
    assert_eq!(d.read(), ok("+CMGS: 1"));
    // Writing to storage is not sending: no send time.
    assert_eq!(d.at("AT+CMGW=31"), "\r\n> ");
    assert_eq!(d.send(format!("{SUBMIT}\x1a").as_bytes()), ok("+CMGW: 1"));
}

#[test]
fn pin_and_puk_flow() {
    let mut d = Dte::with_pin("1234").quiet_echo();
    d.at("AT+CMEE=1");
    assert_eq!(d.at("AT+CPIN?"), ok("+CPIN: SIM PIN"));
    assert_eq!(
        d.at("AT+CPINR"),
        ok("+CPINR: SIM PIN,3,3\r\n+CPINR: SIM PUK,10,10")
    );
    assert_eq!(d.at("AT+CPIN=\"0000\""), "\r\n+CME ERROR: 16\r\n");
    assert_eq!(d.at("AT+CPINR=\"SIM PIN\""), ok("+CPINR: SIM PIN,2,3"));
    assert_eq!(d.at("AT+CPIN=0000"), "\r\n+CME ERROR: 16\r\n");
    assert_eq!(d.at("AT+CPIN=0000"), "\r\n+CME ERROR: 16\r\n");
    assert_eq!(d.at("AT+CPIN?"), ok("+CPIN: SIM PUK"));
    // The right PIN no longer helps.
    assert_eq!(d.at("AT+CPIN=1234"), "\r\n+CME ERROR: 50\r\n");
    assert_eq!(
        d.at("AT+CPIN=\"11111111\",\"4321\""),
        "\r\n+CME ERROR: 16\r\n"
    );
    assert_eq!(d.at("AT+CPINR=\"SIM PUK\""), ok("+CPINR: SIM PUK,9,10"));
    assert_eq!(d.at(&format!("AT+CPIN=\"{PUK}\",\"4321\"")), OK);
    assert_eq!(d.at("AT+CPIN?"), ok("+CPIN: READY"));
    assert_eq!(d.at("AT+CIMI"), ok("001010000000001"));
    // After a reboot the new PIN is asked for.
    d.m.reboot(d.now);
    d.advance(Duration::from_secs(5));
    d.read();
    d.at("ATE0;+CMEE=1");
    assert_eq!(d.at("AT+CPIN?"), ok("+CPIN: SIM PIN"));
    assert_eq!(d.at("AT+CPIN=4321"), OK);
}

#[test]
fn ten_wrong_puks_block_the_sim() {
    let mut d = Dte::with_pin("1234").quiet_echo();
    d.at("AT+CMEE=1");
    for _ in 0..3 {
        d.at("AT+CPIN=9999");
    }
    for _ in 0..10 {
        assert_eq!(d.at("AT+CPIN=00000000,1111"), "\r\n+CME ERROR: 16\r\n");
    }
    assert_eq!(d.at("AT+CPIN?"), "\r\n+CME ERROR: 262\r\n");
    assert_eq!(
        d.at(&format!("AT+CPIN={PUK},1111")),
        "\r\n+CME ERROR: 262\r\n"
    );
}

/// An SMS-DELIVER from +15553334444, "live MT for kannel" (kannel2.log).
const DELIVER: &str = "040B915155334344F400006211626033730012ECB4BD0C6A5241E6B71CB40EBBDD6536";

fn deliver() -> Vec<u8> {
    hex::decode(DELIVER).unwrap()
}

#[test]
fn receive_store_and_indicate_then_read_and_delete() {
    let mut d = Dte::new("generic").quiet_echo();
    d.at("AT+CNMI=2,1,0,2,0");
    d.m.receive(&deliver(), d.now).unwrap();
    assert_eq!(d.read(), "\r\n+CMTI: \"SM\",1\r\n");
    assert_eq!(
        d.at("AT+CPMS?"),
        ok("+CPMS: \"SM\",1,30,\"SM\",1,30,\"SM\",1,30")
    );
    let pdu = format!("07915155000000F1{DELIVER}");
    assert_eq!(d.at("AT+CMGL=0"), ok(&format!("+CMGL: 1,0,,35\r\n{pdu}")));
    // Listing marked it read.
    assert_eq!(d.at("AT+CMGL=0"), OK);
    assert_eq!(d.at("AT+CMGL=4"), ok(&format!("+CMGL: 1,1,,35\r\n{pdu}")));
    assert_eq!(d.at("AT+CMGR=1"), ok(&format!("+CMGR: 1,,35\r\n{pdu}")));
    let listed = d.m.stored();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].mem, listed[0].index, listed[0].stat),
        ("SM", 1, 1)
    );
    assert_eq!(listed[0].tpdu, deliver());
    d.at("AT+CMEE=1");
    assert_eq!(d.at("AT+CMGR=2"), "\r\n+CMS ERROR: 321\r\n");
    assert_eq!(d.at("AT+CMGR=31"), "\r\n+CMS ERROR: 321\r\n");
    assert_eq!(d.at("AT+CMGR=0"), "\r\n+CMS ERROR: 321\r\n");
    assert_eq!(d.at("AT+CMGD=?"), ok("+CMGD: (1),(0-4)"));
    assert_eq!(d.at("AT+CMGD=1"), OK);
    assert_eq!(d.at("AT+CMGD=1"), OK);
    assert_eq!(
        d.at("AT+CPMS?"),
        ok("+CPMS: \"SM\",0,30,\"SM\",0,30,\"SM\",0,30")
    );
}

#[test]
fn cpms_selects_memories() {
    let mut d = Dte::new("generic").quiet_echo();
    assert_eq!(
        d.at("AT+CPMS=?"),
        ok("+CPMS: (\"SM\",\"ME\",\"MT\",\"SR\"),(\"SM\",\"ME\",\"MT\"),(\"SM\",\"ME\",\"MT\")")
    );
    assert_eq!(d.at("AT+CPMS=\"ME\""), ok("+CPMS: 0,100,0,30,0,30"));
    assert_eq!(
        d.at("AT+CPMS=\"ME\",\"ME\",\"ME\""),
        ok("+CPMS: 0,100,0,100,0,100")
    );
    d.m.receive(&deliver(), d.now).unwrap();
    assert_eq!(d.read(), "\r\n+CMTI: \"ME\",1\r\n");
    assert_eq!(d.at("AT+CPMS=\"SM\",\"SM\""), ok("+CPMS: 0,30,0,30,1,100"));
    assert_eq!(d.at("AT+CPMS=\"MT\""), ok("+CPMS: 1,130,0,30,1,100"));
    // MT numbers SM first, then ME.
    assert!(d.at("AT+CMGR=31").starts_with("\r\n+CMGR: 0,,35\r\n"));
    d.at("AT+CMEE=1");
    assert_eq!(d.at("AT+CPMS=\"XX\""), "\r\n+CMS ERROR: 302\r\n");
    assert_eq!(d.at("AT+CPMS=\"SM\",\"SR\""), "\r\n+CMS ERROR: 302\r\n");
}

#[test]
fn storage_full_refuses_and_frees() {
    let mut d = Dte::new("generic").quiet_echo();
    d.at("AT+CNMI=2,0,0,0,0");
    for _ in 0..30 {
        d.m.receive(&deliver(), d.now).unwrap();
    }
    assert_eq!(d.read(), "", "mt=0 stores without indication");
    assert_eq!(d.m.receive(&deliver(), d.now), Err(ReceiveError::NotReady));
    d.at("AT+CMGD=1,4");
    assert_eq!(d.m.storage_usage().sm.used, 0);
    // The fault freezes capacity at what is used.
    d.m.receive(&deliver(), d.now).unwrap();
    d.m.set_faults(Faults {
        full: true,
        ..Faults::default()
    });
    assert_eq!(
        d.at("AT+CPMS?"),
        ok("+CPMS: \"SM\",1,1,\"SM\",1,1,\"SM\",1,1")
    );
    assert_eq!(d.m.receive(&deliver(), d.now), Err(ReceiveError::NotReady));
    d.at("AT+CMEE=1");
    assert_eq!(d.at("AT+CMGW=31"), "\r\n> ");
    assert_eq!(
        d.send(format!("{SUBMIT}\x1a").as_bytes()),
        "\r\n+CMS ERROR: 322\r\n"
    );
    d.m.set_faults(Faults::default());
    d.m.receive(&deliver(), d.now).unwrap();
}

#[test]
fn cmt_direct_and_cnma() {
    let mut d = Dte::new("generic").quiet_echo();
    // Kannel's set-up.
    d.at("AT+CNMI=1,2,0,1,0");
    d.m.receive(&deliver(), d.now).unwrap();
    let pdu = format!("07915155000000F1{DELIVER}");
    assert_eq!(d.read(), format!("\r\n+CMT: ,35\r\n{pdu}\r\n"));
    assert_eq!(d.m.storage_usage().sm.used, 0);
    d.at("AT+CMEE=1");
    assert_eq!(d.at("AT+CNMA"), "\r\n+CMS ERROR: 340\r\n");
    // Phase 2+: the DTE must acknowledge.
    assert_eq!(d.at("AT+CSMS=1"), ok("+CSMS: 1,1,1"));
    d.m.receive(&deliver(), d.now).unwrap();
    d.read();
    assert_eq!(d.m.receive(&deliver(), d.now), Err(ReceiveError::NotReady));
    assert_eq!(d.at("AT+CNMA"), OK);
    assert_eq!(d.m.storage_usage().sm.used, 0);
    // Without +CNMA the modem stores the message and stops routing.
    d.m.receive(&deliver(), d.now).unwrap();
    d.read();
    d.advance(Duration::from_secs(16));
    assert_eq!(d.read(), "");
    assert_eq!(d.m.storage_usage().sm.used, 1);
    assert_eq!(d.at("AT+CNMI?"), ok("+CNMI: 1,0,0,0,0"));
}

#[test]
fn class_routing() {
    let mut d = Dte::new("generic").quiet_echo();
    d.at("AT+CNMI=2,1,0,0,0");
    let mut flash = deliver();
    flash[10] = 0x10; // TP-DCS: class 0
    d.m.receive(&flash, d.now).unwrap();
    assert!(d.read().starts_with("\r\n+CMT: ,35\r\n"));
    d.at("AT+CNMI=2,2,0,0,0;+CPMS=\"ME\",\"ME\",\"ME\"");
    let mut sim = deliver();
    sim[10] = 0x12; // class 2: always to the SIM
    d.m.receive(&sim, d.now).unwrap();
    assert_eq!(d.read(), "\r\n+CMTI: \"SM\",1\r\n");
}

#[test]
fn status_reports_by_ds() {
    let report = hex::decode("06010B915155112122F2621162603342006211626033420000").unwrap();
    let mut d = Dte::new("generic").quiet_echo();
    d.at("AT+CNMI=2,1,0,1,0");
    d.m.receive_status_report(&report, d.now).unwrap();
    assert_eq!(
        d.read(),
        "\r\n+CDS: 25\r\n07915155000000F106010B915155112122F2621162603342006211626033420000\r\n"
    );
    d.at("AT+CNMI=2,1,0,2,0");
    d.m.receive_status_report(&report, d.now).unwrap();
    assert_eq!(d.read(), "\r\n+CDSI: \"SR\",1\r\n");
    assert_eq!(d.at("AT+CPMS=\"SR\""), ok("+CPMS: 1,20,0,30,0,30"));
    assert_eq!(
        d.at("AT+CMGR=1"),
        ok("+CMGR: 0,,25\r\n07915155000000F106010B915155112122F2621162603342006211626033420000")
    );
    d.at("AT+CNMI=2,1,0,0,0");
    d.m.receive_status_report(&report, d.now).unwrap();
    assert_eq!(d.read(), "");
}

#[test]
fn cnmi_mode_zero_buffers_until_mode_changes() {
    let mut d = Dte::new("generic").quiet_echo();
    d.at("AT+CNMI=0,1,0,0,0");
    d.m.receive(&deliver(), d.now).unwrap();
    assert_eq!(d.read(), "");
    assert_eq!(
        d.at("AT+CNMI=2,1,0,0,0"),
        "\r\nOK\r\n\r\n+CMTI: \"SM\",1\r\n"
    );
}

#[test]
fn urcs_wait_while_the_dte_types_a_pdu() {
    let mut d = Dte::new("generic").quiet_echo();
    assert_eq!(d.at("AT+CMGS=31"), "\r\n> ");
    d.m.receive(&deliver(), d.now).unwrap();
    assert_eq!(d.read(), "");
    assert_eq!(
        d.send(format!("{SUBMIT}\x1a").as_bytes()),
        "\r\n+CMGS: 1\r\n\r\nOK\r\n\r\n+CMTI: \"SM\",1\r\n"
    );
}

#[test]
fn faults_hang_and_cms_error() {
    let mut d = Dte::new("generic").quiet_echo();
    d.m.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    assert_eq!(d.at("AT"), "");
    assert_eq!(d.m.next_wakeup(), None);
    assert_eq!(d.m.receive(&deliver(), d.now), Err(ReceiveError::NotReady));
    d.m.set_faults(Faults {
        cms_error: Some((500, 1.0)),
        ..Faults::default()
    });
    assert_eq!(d.at("AT"), OK);
    d.at("AT+CMEE=1");
    d.at("AT+CMGS=31");
    assert_eq!(
        d.send(format!("{SUBMIT}\x1a").as_bytes()),
        "\r\n+CMS ERROR: 500\r\n"
    );
    assert!(d.m.take_events().is_empty());
    // A rate between 0 and 1 fails some, reproducibly.
    d.m.set_faults(Faults {
        cms_error: Some((500, 0.5)),
        ..Faults::default()
    });
    let mut fails = 0;
    for _ in 0..100 {
        d.at("AT+CMGS=31");
        if d.send(format!("{SUBMIT}\x1a").as_bytes()).contains("ERROR") {
            fails += 1;
        }
    }
    assert!((20..80).contains(&fails), "{fails}");
    assert_eq!(d.m.take_events().len(), 100 - fails);
}

#[test]
fn faults_send_error_and_hang_after_send() {
    let mut d = Dte::new("generic").quiet_echo();
    d.at("AT+CMEE=1");
    d.m.set_faults(Faults {
        send_error: true,
        ..Faults::default()
    });
    d.at("AT+CMGS=31");
    assert_eq!(d.send(format!("{SUBMIT}\x1a").as_bytes()), "\r\nERROR\r\n");
    assert!(d.m.take_events().is_empty());
    d.m.set_faults(Faults {
        hang_after_send: true,
        ..Faults::default()
    });
    d.at("AT+CMGS=31");
    // It left, and no answer comes.
    assert_eq!(d.send(format!("{SUBMIT}\x1a").as_bytes()), "");
    assert_eq!(d.m.take_events().len(), 1);
    assert!(d.m.faults().hang && !d.m.faults().hang_after_send);
    assert_eq!(d.at("AT"), "");
    d.m.set_faults(Faults::default());
    assert_eq!(d.at("AT"), OK);
}

#[test]
fn cfun_reset_reboots_with_profile_urcs() {
    // (profile, URCs at the end of the boot, URCs once SMS is ready)
    let table = [
        ("generic", "", ""),
        (
            "huawei",
            "\r\n^SIMST:1\r\n\r\n^SRVST:2\r\n\r\n^MODE:5,4\r\n",
            "",
        ),
        (
            "quectel",
            "\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n",
            "\r\n+QIND: SMS DONE\r\n\r\n+QIND: PB DONE\r\n",
        ),
        (
            "simcom",
            "\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n",
            "\r\nSMS Ready\r\n\r\nPB DONE\r\n",
        ),
    ];
    for (profile, boot, ready) in table {
        let mut d = Dte::new(profile).quiet_echo();
        d.at("AT+CMEE=1");
        assert_eq!(d.at("AT+CFUN=1,1"), OK, "{profile}");
        assert!(d.m.is_rebooting(d.now));
        assert_eq!(d.at("AT"), "", "{profile}: silent while booting");
        d.advance(Duration::from_secs(1));
        assert_eq!(d.read(), "");
        d.now = d.m.next_wakeup().unwrap();
        assert_eq!(d.read(), boot, "{profile}");
        // Volatile settings are back to their defaults: echo on.
        assert_eq!(d.at("ATE0"), "ATE0\r\r\nOK\r\n", "{profile}");
        d.at("AT+CMEE=1");
        if !ready.is_empty() {
            // SMS is not usable until the module has read the SIM.
            assert_eq!(d.at("AT+CPMS?"), "\r\n+CMS ERROR: 314\r\n", "{profile}");
            assert_eq!(d.m.receive(&deliver(), d.now), Err(ReceiveError::NotReady));
            d.now = d.m.next_wakeup().unwrap();
            assert_eq!(d.read(), ready, "{profile}");
        }
        assert!(d.at("AT+CPMS?").starts_with("\r\n+CPMS: "), "{profile}");
    }
}

#[test]
fn huawei_quirks() {
    let mut d = Dte::new("huawei").quiet_echo();
    assert_eq!(d.at("AT+CGMI"), ok("huawei"));
    assert_eq!(d.at("AT^ICCID?"), ok("^ICCID: 8900100000000000001"));
    assert_eq!(d.at("AT+WIND?"), "\r\nCOMMAND NOT SUPPORT\r\n");
    // gammu's Huawei set-up.
    assert_eq!(d.at("AT^CURC=0;^PORTSEL=1"), OK);
    assert_eq!(d.at("AT^PORTSEL?"), ok("^PORTSEL: 0"));
    // Periodic ^RSSI noise.
    let wake = d.m.next_wakeup().unwrap();
    d.now = wake;
    assert!(d.read().contains("^RSSI:21"));
    // Huawei numbers messages from 0.
    d.at("AT+CNMI=2,1,0,0,0");
    d.m.receive(&deliver(), d.now).unwrap();
    assert_eq!(d.read(), "\r\n+CMTI: \"SM\",0\r\n");
    assert!(d.at("AT+CMGR=0").starts_with("\r\n+CMGR: 0,,35"));
}

#[test]
fn crsm_reads_ef_iccid_swapped() {
    let mut s = Dte::new("generic").quiet_echo();
    assert_eq!(
        s.at("AT+CRSM=176,12258,0,0,10"),
        ok("+CRSM: 144,0,\"980001000000000000F1\"")
    );
    assert_eq!(s.at("AT+CRSM=176,28423,0,0,9"), ok("+CRSM: 106,130,\"\""));
}

#[test]
fn vendor_iccid_commands() {
    let mut q = Dte::new("quectel").quiet_echo();
    assert_eq!(q.at("AT+QCCID"), ok("+QCCID: 8900100000000000001"));
    let mut s = Dte::new("simcom").quiet_echo();
    assert_eq!(s.at("AT+CICCID"), ok("+ICCID: 8900100000000000001"));
}

#[test]
fn cusd_answers_later() {
    let mut d = Dte::new("generic").quiet_echo();
    assert_eq!(d.at("AT+CUSD=1,\"*100#\",15"), OK);
    d.now = d.m.next_wakeup().unwrap();
    assert_eq!(
        d.read(),
        "\r\n+CUSD: 0,\"Balance: 10.00 (request *100#)\",15\r\n"
    );
}

#[test]
fn csca_set_and_ucs2() {
    let mut d = Dte::new("generic").quiet_echo();
    assert_eq!(d.at("AT+CSCA=\"+4915550000\",145"), OK);
    assert_eq!(d.at("AT+CSCA?"), ok("+CSCA: \"+4915550000\",145"));
    d.at("AT+CSCS=\"UCS2\"");
    assert_eq!(
        d.at("AT+CSCA?"),
        ok("+CSCA: \"002B0034003900310035003500350030003000300030\",145")
    );
}

#[test]
fn cmgw_and_cmss() {
    let mut d = Dte::new("generic").quiet_echo();
    assert_eq!(d.at("AT+CMGW=31"), "\r\n> ");
    assert_eq!(d.send(format!("{SUBMIT}\x1a").as_bytes()), ok("+CMGW: 1"));
    assert_eq!(
        d.at("AT+CMGL=2"),
        ok(&format!("+CMGL: 1,2,,31\r\n{SUBMIT}"))
    );
    assert_eq!(d.at("AT+CMSS=1"), ok("+CMSS: 1"));
    assert_eq!(d.at("AT+CMGL=3").lines().nth(1), Some("+CMGL: 1,3,,31"));
    assert_eq!(d.m.take_events().len(), 1);
}

#[test]
fn text_mode_read_list_and_cmt() {
    let mut d = Dte::new("generic").quiet_echo();
    d.at("AT+CMGF=1;+CNMI=2,1,0,0,0");
    d.m.receive(&deliver(), d.now).unwrap();
    assert_eq!(d.read(), "\r\n+CMTI: \"SM\",1\r\n");
    assert_eq!(
        d.at("AT+CMGL=\"ALL\""),
        ok("+CMGL: 1,\"REC UNREAD\",\"+15553334444\",,\"26/11/26,06:33:37+00\"\r\nlive MT for kannel")
    );
    assert_eq!(
        d.at("AT+CMGR=1"),
        ok("+CMGR: \"REC READ\",\"+15553334444\",,\"26/11/26,06:33:37+00\"\r\nlive MT for kannel")
    );
    d.at("AT+CSDH=1");
    assert_eq!(
        d.at("AT+CMGR=1"),
        ok("+CMGR: \"REC READ\",\"+15553334444\",,\"26/11/26,06:33:37+00\",145,4,0,0,\"+15550000001\",145,18\r\nlive MT for kannel")
    );
    assert_eq!(
        d.at("AT+CMGL=\"REC READ\""),
        ok("+CMGL: 1,\"REC READ\",\"+15553334444\",,\"26/11/26,06:33:37+00\",145,18\r\nlive MT for kannel")
    );
    d.at("AT+CMEE=1");
    assert_eq!(d.at("AT+CMGL=4"), "\r\n+CMS ERROR: 305\r\n");
    d.at("AT+CSDH=0;+CNMI=2,2,0,0,0");
    d.m.receive(&deliver(), d.now).unwrap();
    assert_eq!(
        d.read(),
        "\r\n+CMT: \"+15553334444\",,\"26/11/26,06:33:37+00\"\r\nlive MT for kannel\r\n"
    );
    // Status reports in text mode.
    let report = hex::decode("06010B915155112122F2621162603342006211626033420000").unwrap();
    d.at("AT+CNMI=2,1,0,1,0");
    d.m.receive_status_report(&report, d.now).unwrap();
    assert_eq!(
        d.read(),
        "\r\n+CDS: 6,1,\"+15551112222\",145,\"26/11/26,06:33:24+00\",\"26/11/26,06:33:24+00\",0\r\n"
    );
}

#[test]
fn text_mode_send() {
    use crate::pdu::{Direction, Tpdu};
    let mut d = Dte::new("generic").quiet_echo();
    d.at("AT+CMGF=1");
    assert_eq!(d.at("AT+CMGS=\"+15551112222\""), "\r\n> ");
    assert_eq!(d.send(b"Hello"), "");
    assert_eq!(d.send(b"\r"), "\r\n> ");
    assert_eq!(d.send(b"world\x1a"), ok("+CMGS: 1"));
    let ev = d.m.take_events();
    let NetEvent::Submitted { tpdu, mr } = &ev[0];
    assert_eq!(*mr, 1);
    let Some(Tpdu::Submit(s)) = peek::decode(tpdu, Direction::MobileOriginated) else {
        panic!("not a submit");
    };
    assert_eq!(s.destination.value, "15551112222");
    assert_eq!(s.user_data.text(), Some("Hello\nworld"));
    // UCS2 character set: number and text in hex.
    d.at("AT+CSCS=\"UCS2\";+CSMP=17,167,0,8");
    assert_eq!(d.at("AT+CMGS=\"002B0031\""), "\r\n> ");
    assert_eq!(d.send(b"041F0440043804320435044220AC\x1a"), ok("+CMGS: 2"));
    let ev = d.m.take_events();
    let NetEvent::Submitted { tpdu, .. } = &ev[0];
    let Some(Tpdu::Submit(s)) = peek::decode(tpdu, Direction::MobileOriginated) else {
        panic!("not a submit");
    };
    assert_eq!(s.user_data.text(), Some("Привет€"));
    // Too long for one message.
    d.at("AT+CMEE=1;+CSCS=\"IRA\";+CSMP=17,167,0,0");
    d.at("AT+CMGS=\"+1555\"");
    assert_eq!(d.send(&[b'x'; 200]), "");
    assert_eq!(d.send(b"\x1a"), "\r\n+CMS ERROR: 305\r\n");
    // Text-mode +CMGW then +CMGR shows the stored SMS-SUBMIT.
    assert_eq!(d.at("AT+CMGW=\"+15551112222\""), "\r\n> ");
    assert_eq!(d.send(b"draft\x1a"), ok("+CMGW: 1"));
    assert_eq!(
        d.at("AT+CMGR=1"),
        ok("+CMGR: \"STO UNSENT\",\"+15551112222\",\r\ndraft")
    );
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    /// Fragments a DTE (or line noise) might write.
    fn fragment() -> impl Strategy<Value = Vec<u8>> {
        let tokens: Vec<&'static [u8]> = vec![
            b"AT",
            b"at",
            b"\r",
            b"\n",
            b"\x1a",
            b"\x1b",
            b"\x08",
            b"\0",
            b"+CMGS=",
            b"+CMGW=",
            b"+CMGR=",
            b"+CMGL=",
            b"+CMGD=",
            b"+CPMS=",
            b"+CNMI=",
            b"+CMGF=1",
            b"+CSCS=",
            b"+CPIN=",
            b"+COPS=",
            b"+CUSD=1,",
            b"+CSMS=1",
            b"+CNMA",
            b"+CSCA=",
            b"?",
            b"=?",
            b";",
            b",",
            b"\"",
            b"\"UCS2\"",
            b"\"SR\"",
            b"0",
            b"1",
            b"2",
            b"4",
            b"31",
            b"255",
            b"0011000B915155112122F20000FF13C8329BFD0699E5EF3668DE9ED3DF6FF61C",
            b"E0",
            b"V0",
            b"Q1",
            b"&F",
            b"Z",
            b"S3=",
        ];
        prop_oneof![
            proptest::sample::select(tokens).prop_map(|t| t.to_vec()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever arrives, the modem never panics, its output stays
        /// bounded, and it still answers after ESC and ATZ.
        #[test]
        fn any_input_leaves_a_working_modem(
            writes in proptest::collection::vec(
                proptest::collection::vec(fragment(), 1..12), 1..40),
            profile in proptest::sample::select(vec!["generic", "huawei", "quectel", "simcom"]),
            deliveries in proptest::collection::vec(any::<bool>(), 0..5),
        ) {
            let mut d = Dte::new(profile);
            let mut total = 0usize;
            for (i, w) in writes.iter().enumerate() {
                let bytes: Vec<u8> = w.concat();
                d.m.input(&bytes, d.now);
                if deliveries.get(i).copied().unwrap_or(false) {
                    let _ = d.m.receive(&deliver(), d.now);
                }
                d.advance(Duration::from_millis(700));
                total += d.m.output(d.now).len();
            }
            // Output is bounded by what was asked (echo and answers).
            prop_assert!(total < 200_000);
            d.advance(Duration::from_secs(60));
            d.m.output(d.now);
            d.send(b"\x1b\x1b\r");
            d.send(b"ATZ\r");
            d.advance(Duration::from_secs(60));
            d.m.output(d.now);
            let r = d.send(b"ATE0\r");
            prop_assert!(r.ends_with("\r\nOK\r\n"), "{:?}", r);
        }
    }
}

#[test]
fn profile_knobs_line_end_and_unsupported() {
    let mut p = builtin_profile("generic").unwrap();
    p.sim.line_end = Some("\r\r\n".into());
    p.sim.unsupported = vec!["+CCID".into()];
    p.sim
        .responses
        .insert("+CBC".into(), vec!["+CBC: 0,{rssi},{imei}".into()]);
    let now = Instant::now();
    let mut m = SimModem::new(identity(), &p, Duration::ZERO, 1, now);
    m.input(b"ATE0\r", now);
    m.output(now);
    let mut at = |cmd: &str| {
        m.input(format!("{cmd}\r").as_bytes(), now);
        String::from_utf8(m.output(now)).unwrap()
    };
    // Huawei-style CR CR LF after information lines.
    assert_eq!(at("AT+CSQ"), "\r\n+CSQ: 21,99\r\r\n\r\nOK\r\n");
    assert_eq!(at("AT+CCID"), "\r\nERROR\r\n");
    assert_eq!(
        at("AT+CBC"),
        "\r\n+CBC: 0,21,350000001234567\r\r\n\r\nOK\r\n"
    );
}

#[test]
fn pin_then_chained_commands_run_every_follow_up() {
    let mut d = Dte::with_pin("1234").quiet_echo();
    d.at("AT+CREG=1");
    // Both the PIN's ready work and +CFUN's registration check happen.
    assert_eq!(d.at("AT+CPIN=1234;+CFUN=1"), "\r\nOK\r\n\r\n+CREG: 1\r\n");
}

#[test]
fn nothing_is_taken_or_said_between_cfun_reset_and_boot() {
    let mut d = Dte::with("quectel", identity(), Duration::from_millis(300));
    d.at("ATE0");
    d.advance(Duration::from_millis(300));
    d.read();
    assert_eq!(d.at("AT+CFUN=1,1"), "");
    // Typed before the OK went out: swallowed, never answered.
    assert_eq!(d.at("AT+CSQ"), "");
    assert_eq!(d.m.receive(&deliver(), d.now), Err(ReceiveError::NotReady));
    d.advance(Duration::from_millis(300));
    assert_eq!(d.read(), OK);
    d.advance(Duration::from_secs(8));
    assert!(d.read().starts_with("\r\nRDY\r\n"));
}

#[test]
fn urcs_never_split_a_command_line_being_typed() {
    // The peers' finding: gammu wrote "AT+CSCS" and "?\r" in two reads and a
    // ^RSSI fell between them.
    let mut d = Dte::new("huawei");
    assert_eq!(d.send(b"AT+CSCS"), "AT+CSCS");
    d.now = d.m.next_wakeup().unwrap();
    assert_eq!(d.read(), "", "the periodic URC is not sent into the line");
    let mut d = Dte::new("generic");
    d.at("AT+CNMI=2,1,0,0,0");
    assert_eq!(d.send(b"AT+CS"), "AT+CS");
    d.m.receive(&deliver(), d.now).unwrap();
    assert_eq!(d.read(), "");
    assert_eq!(
        d.send(b"Q\r"),
        "Q\r\r\n+CSQ: 21,99\r\n\r\nOK\r\n\r\n+CMTI: \"SM\",1\r\n"
    );
    // ESC frees the link too.
    d.send(b"AT+C");
    d.m.receive(&deliver(), d.now).unwrap();
    assert_eq!(d.send(b"\x1b"), "\r\n+CMTI: \"SM\",2\r\n");
}

#[test]
fn vendor_reset_commands_reboot() {
    // The recovery ladder's rung 3 sends the profile's `[at] reset`.
    for (profile, reset) in [("sierra", "AT!RESET"), ("telit", "AT#REBOOT")] {
        let mut d = Dte::new(profile).quiet_echo();
        assert_eq!(d.at(reset), OK, "{profile}");
        assert!(d.m.is_rebooting(d.now), "{profile}");
    }
    // Other profiles do not know those commands.
    let mut g = Dte::new("generic").quiet_echo();
    assert_ne!(g.at("AT!RESET"), OK);
    assert!(!g.m.is_rebooting(g.now));
}
