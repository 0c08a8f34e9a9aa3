//! `smsgate sim` driven from outside, as a DTE would: the real binary, real
//! pseudo-terminals opened through the `DIR/modemK` links with raw termios,
//! AT commands byte by byte, and `smsgate sim ctl` for the control socket.
//!
//! Every wait reads with a timeout until the expected bytes arrive; no test
//! relies on a sleep for correctness. (The only fixed waits are for the
//! *absence* of an answer from a hung modem, which cannot be observed any
//! other way.)

mod common;

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use smsgate::sim::dte::Dte;

const BIN: &str = env!("CARGO_BIN_EXE_smsgate");

/// Generous: the machine is shared and slow; a pass is usually instant.
const WAIT: Duration = Duration::from_secs(20);

/// A running `smsgate sim`, stopped (SIGTERM) on drop.
struct Sim {
    child: Option<Child>,
    dir: tempfile::TempDir,
    ready: Value,
}

impl Sim {
    fn start(extra: &[&str]) -> Sim {
        Sim::start_in(tempfile::tempdir().unwrap(), extra)
    }

    fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Sim {
        let log = File::create(dir.path().join("sim.log")).unwrap();
        let mut child = Command::new(BIN)
            .arg("sim")
            .arg("--dir")
            .arg(dir.path())
            .args(extra)
            .env("SMSGATE_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let line = match common::first_stdout_line(&mut child, WAIT) {
            Some(l) => l,
            None => {
                let _ = child.kill();
                panic!(
                    "no ready line; log:\n{}",
                    std::fs::read_to_string(dir.path().join("sim.log")).unwrap_or_default()
                );
            }
        };
        let ready: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(ready["ready"], true, "{line}");
        Sim {
            child: Some(child),
            dir,
            ready,
        }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn link(&self, k: usize) -> PathBuf {
        self.dir().join(format!("modem{k}"))
    }

    fn number(&self, k: usize) -> String {
        self.ready["modems"][k]["number"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `smsgate sim ctl --dir DIR args...`: the JSON lines printed, or the
    /// stderr text on failure.
    fn ctl(&self, args: &[&str]) -> Result<Vec<Value>, String> {
        let out = Command::new(BIN)
            .arg("sim")
            .arg("ctl")
            .arg("--dir")
            .arg(self.dir())
            .args(args)
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `sim ctl inject --modem K --from OUTSIDE --text TEXT EXTRA...`.
    fn inject(&self, modem: usize, text: &str, extra: &[&str]) -> Value {
        let k = modem.to_string();
        let mut args = vec!["inject", "--modem", &k, "--from", OUTSIDE, "--text", text];
        args.extend_from_slice(extra);
        self.ctl_ok(&args).remove(0)
    }

    fn ctl_ok(&self, args: &[&str]) -> Vec<Value> {
        self.ctl(args)
            .unwrap_or_else(|e| panic!("sim ctl {args:?} failed: {e}\nlog:\n{}", self.log()))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("sim.log")).unwrap_or_default()
    }

    /// Sends `signal` and waits for the exit status.
    fn terminate(&mut self, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "simulator did not exit on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The library's DTE with panicking conveniences for tests.
struct Dev(Dte);

impl Dev {
    fn open(path: &Path) -> Dev {
        Dev(Dte::open(path).unwrap())
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes).unwrap();
    }

    fn fill(&mut self, timeout: Duration) -> std::io::Result<usize> {
        self.0.fill(timeout)
    }

    fn read_until(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        self.0
            .read_until(needle, timeout)
            .map_err(|e| e.to_string())
    }

    fn final_result(&mut self, timeout: Duration) -> Result<String, String> {
        self.0.final_result(timeout).map_err(|e| e.to_string())
    }

    fn at(&mut self, cmd: &str) -> String {
        self.0
            .at(cmd, WAIT)
            .unwrap_or_else(|e| panic!("{cmd}: {e}"))
    }

    fn cmgs(&mut self, pdu_hex: &str) -> String {
        // The length excludes the SMSC field ("00" here).
        let tpdu_len = pdu_hex.len() / 2 - 1;
        self.0.cmgs(pdu_hex, tpdu_len, WAIT).unwrap()
    }
}

/// A modem ready for SMS in PDU mode: echo off, verbose errors,
/// new messages stored and indicated (+CMTI), reports routed (+CDS).
fn setup(dev: &mut Dev) {
    let r = dev.at("ATE0");
    assert!(r.ends_with("OK\r\n"), "{r}");
    for cmd in ["AT+CMEE=1", "AT+CMGF=0", "AT+CNMI=2,1,0,1,0"] {
        let r = dev.at(cmd);
        assert!(r.ends_with("OK\r\n"), "{cmd}: {r}");
    }
}

/// The BCD semi-octets of an address's digits (TS 23.040 §9.1.2.3).
fn bcd(number: &str) -> String {
    let d: Vec<char> = number.trim_start_matches('+').chars().collect();
    let mut out = String::new();
    for pair in d.chunks(2) {
        out.push(*pair.get(1).unwrap_or(&'F'));
        out.push(pair[0]);
    }
    out
}

/// An SMS-SUBMIT to an international `to` with GSM 7-bit "hello", written
/// from TS 23.040 §9.2.2.2 by hand: first octet (MTI=01, VPF=10 relative,
/// SRR as asked), MR 0, DA, PID 0, DCS 0, VP 0xAA (4 days), UDL 5, UD.
fn submit_hello(to: &str, report: bool) -> String {
    let first = if report { "31" } else { "11" };
    let digits = to.trim_start_matches('+').len();
    format!("00{first}00{digits:02X}91{}0000AA05E8329BFD06", bcd(to))
}

/// Sends `AT` until the modem answers (after a reboot, hang or garbage).
fn answer_at(dev: &mut Dev, what: &str) -> String {
    wait_for(what, || {
        dev.0.buf.clear();
        dev.write(b"AT\r");
        dev.final_result(Duration::from_millis(500)).ok()
    })
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads the next `+CMTI: "ME",<index>` and returns the index.
fn next_cmti(dev: &mut Dev) -> u32 {
    dev.read_until("+CMTI:", WAIT).unwrap();
    let line = dev.read_until("\r\n", WAIT).unwrap();
    line.rsplit(',').next().unwrap().trim().parse().unwrap()
}

/// `AT+CMGR=<idx>` and the SMS-DELIVER it shows (SMSC address and TPDU).
fn read_deliver(dev: &mut Dev, idx: u32) -> (Option<String>, smsgate::pdu::Deliver) {
    let r = dev.at(&format!("AT+CMGR={idx}"));
    let mut lines = r.lines().skip_while(|l| !l.starts_with("+CMGR:"));
    lines.next().expect("+CMGR header");
    let pdu = lines.next().expect("PDU line").trim();
    let decoded = smsgate::pdu::decode_hex(pdu, Default::default()).unwrap();
    match decoded.tpdu {
        smsgate::pdu::Tpdu::Deliver(d) => (decoded.smsc.map(|a| a.to_string()), d),
        other => panic!("not an SMS-DELIVER: {other:?}"),
    }
}

/// The sender of every injected message.
const OUTSIDE: &str = "+4915112345678";

#[test]
fn ready_line_and_modems_list_identities_and_links() {
    let sim = Sim::start(&["--modems", "2"]);
    let modems = sim.ctl_ok(&["modems"]);
    assert_eq!(modems.len(), 2);
    for (k, m) in modems.iter().enumerate() {
        assert_eq!(m["modem"], k);
        assert_eq!(m["number"], format!("+1555000000{k}"));
        assert_eq!(m["imei"].as_str().unwrap().len(), 15);
        assert!(m["iccid"].as_str().unwrap().starts_with("89"));
        assert_eq!(m["link"], sim.link(k).to_str().unwrap());
        assert_eq!(m["state"], "running");
        assert_eq!(m["profile"], "generic");
        assert_eq!(m["storage"]["sm"][0], 0, "{m}");
        assert!(std::fs::read_link(sim.link(k)).is_ok());
    }
    assert_eq!(sim.ready["modems"][1]["imei"], modems[1]["imei"]);
    // The device answers identification like a modem.
    let mut dev = Dev::open(&sim.link(0));
    dev.at("ATE0");
    let imei = modems[0]["imei"].as_str().unwrap();
    let r = dev.at("AT+CGSN");
    assert!(r.contains(imei), "{r}");
    let r = dev.at("AT+CIMI");
    assert!(r.contains(modems[0]["imsi"].as_str().unwrap()), "{r}");
    let r = dev.at("AT+CGMI");
    assert!(r.ends_with("OK\r\n"), "{r}");
}

#[test]
fn message_between_modems_arrives_as_cmti_and_reads_back() {
    let sim = Sim::start(&["--modems", "2"]);
    let mut m0 = Dev::open(&sim.link(0));
    let mut m1 = Dev::open(&sim.link(1));
    setup(&mut m0);
    setup(&mut m1);
    let r = m0.cmgs(&submit_hello(&sim.number(1), false));
    assert!(r.contains("+CMGS:") && r.ends_with("OK\r\n"), "{r}");
    let idx = next_cmti(&mut m1);
    // SMSC field, then an SMS-DELIVER from modem0's number with "hello".
    let (smsc, d) = read_deliver(&mut m1, idx);
    assert_eq!(smsc.as_deref(), Some("+15559990000"));
    assert_eq!(d.originator.to_string(), sim.number(0));
    assert_eq!(d.user_data.text(), Some("hello"));
    // The outbox records it as a modem-to-modem message.
    let out = sim.ctl_ok(&["outbox"]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["modem"], 0);
    assert_eq!(out[0]["to"], sim.number(1));
    assert_eq!(out[0]["to_modem"], 1);
    assert_eq!(out[0]["text"], "hello");
}

#[test]
fn message_to_outside_is_in_the_outbox_with_a_status_report() {
    let sim = Sim::start(&["--modems", "1", "--report-delay", "300ms"]);
    let mut m0 = Dev::open(&sim.link(0));
    setup(&mut m0);
    let r = m0.cmgs(&submit_hello(OUTSIDE, true));
    assert!(r.contains("+CMGS:"), "{r}");
    let out = wait_for("outbox entry", || {
        let o = sim.ctl_ok(&["outbox"]);
        (!o.is_empty()).then_some(o)
    });
    assert_eq!(out[0]["to"], OUTSIDE);
    assert_eq!(out[0]["text"], "hello");
    assert_eq!(out[0]["parts"], 1);
    assert_eq!(out[0]["report_requested"], true);
    assert_eq!(out[0]["to_modem"], Value::Null);
    assert!(out[0]["time"].as_str().unwrap().contains('T'));
    // +CNMI ds=1: the report is routed as +CDS: <len> + PDU, after the delay.
    let report = read_cds(&mut m0);
    assert_eq!(report.message_reference, cmgs_mr(&r));
    assert_eq!(report.recipient.to_string(), OUTSIDE);
    assert_eq!(report.status.0, 0, "delivered");
}

#[test]
fn status_report_for_a_message_between_modems() {
    let sim = Sim::start(&["--modems", "2", "--report-delay", "100ms"]);
    let mut m0 = Dev::open(&sim.link(0));
    let mut m1 = Dev::open(&sim.link(1));
    setup(&mut m0);
    setup(&mut m1);
    let r = m0.cmgs(&submit_hello(&sim.number(1), true));
    next_cmti(&mut m1);
    let report = read_cds(&mut m0);
    assert_eq!(report.message_reference, cmgs_mr(&r));
    assert_eq!(report.recipient.to_string(), sim.number(1));
}

/// The TP-MR in a `+CMGS: <mr>` answer.
fn cmgs_mr(answer: &str) -> u8 {
    let line = answer.lines().find(|l| l.starts_with("+CMGS:")).unwrap();
    line["+CMGS:".len()..].trim().parse().unwrap()
}

/// Reads a `+CDS: <len>` URC and its PDU line and decodes the report.
fn read_cds(dev: &mut Dev) -> smsgate::pdu::StatusReport {
    dev.read_until("+CDS:", WAIT).unwrap();
    dev.read_until("\r\n", WAIT).unwrap();
    let pdu = dev.read_until("\r\n", WAIT).unwrap();
    let decoded = smsgate::pdu::decode_hex(pdu.trim(), Default::default()).unwrap();
    match decoded.tpdu {
        smsgate::pdu::Tpdu::StatusReport(r) => r,
        other => panic!("not a status report: {other:?}"),
    }
}

#[test]
fn injected_message_arrives_as_cmti() {
    let sim = Sim::start(&["--modems", "1"]);
    let mut m0 = Dev::open(&sim.link(0));
    setup(&mut m0);
    let inj = sim.inject(0, "hi there", &[]);
    assert_eq!(inj["parts"], 1);
    assert_eq!(inj["delivered"], true);
    let idx = next_cmti(&mut m0);
    let (_, d) = read_deliver(&mut m0, idx);
    assert_eq!(d.originator.to_string(), OUTSIDE);
    assert_eq!(d.user_data.text(), Some("hi there"));
}

#[test]
fn inbox_lists_stored_messages_without_marking_them_read() {
    let sim = Sim::start(&["--modems", "1"]);
    let mut m0 = Dev::open(&sim.link(0));
    setup(&mut m0);
    assert!(sim.ctl_ok(&["inbox", "--modem", "0"]).is_empty());
    sim.inject(0, "keep me", &[]);
    next_cmti(&mut m0);
    for _ in 0..2 {
        let inbox = sim.ctl_ok(&["inbox", "--modem", "0"]);
        assert_eq!(inbox.len(), 1, "{inbox:?}");
        assert_eq!(inbox[0]["type"], "deliver");
        assert_eq!(inbox[0]["from"], OUTSIDE);
        assert_eq!(inbox[0]["text"], "keep me");
        assert_eq!(inbox[0]["stat"], 0, "still unread");
    }
    let e = sim.ctl(&["inbox", "--modem", "4"]).unwrap_err();
    assert!(e.contains("no modem 4"), "{e}");
}

#[test]
fn injection_options_shape_the_tpdu() {
    let sim = Sim::start(&["--modems", "1"]);
    let inj = sim.inject(0, "Grüße €", &["--ucs2", "--class", "0"]);
    let hex = inj["tpdus"][0].as_str().unwrap();
    let opts = smsgate::pdu::DecodeOptions {
        direction: smsgate::pdu::Direction::MobileTerminated,
        smsc: false,
        ..Default::default()
    };
    let smsgate::pdu::Tpdu::Deliver(d) = smsgate::pdu::decode_hex(hex, opts).unwrap().tpdu else {
        panic!("not a deliver: {hex}")
    };
    assert_eq!(d.dcs.alphabet, smsgate::pdu::Alphabet::Ucs2);
    assert_eq!(d.dcs.class, Some(smsgate::pdu::MessageClass::Class0));
    assert_eq!(d.user_data.text(), Some("Grüße €"));
}

#[test]
fn multipart_injection_delivers_every_part() {
    let sim = Sim::start(&["--modems", "1"]);
    let mut m0 = Dev::open(&sim.link(0));
    setup(&mut m0);
    let inj = sim.inject(0, "abcdef", &["--parts", "3", "--out-of-order"]);
    assert_eq!(inj["parts"], 3);
    // All three indications first: a command's answer would swallow them.
    let indices: Vec<u32> = (0..3).map(|_| next_cmti(&mut m0)).collect();
    let mut parts = Vec::new();
    for idx in indices {
        let (_, d) = read_deliver(&mut m0, idx);
        let c = d.user_data.header.as_ref().unwrap().concat().unwrap();
        parts.push((c.seq, d.user_data.text().unwrap().to_string()));
    }
    // Delivered last-first; in sequence order they spell the text.
    assert_eq!(parts.iter().map(|p| p.0).collect::<Vec<_>>(), vec![3, 2, 1]);
    parts.sort();
    assert_eq!(parts.into_iter().map(|p| p.1).collect::<String>(), "abcdef");
}

#[test]
fn device_survives_close_and_reopen() {
    let sim = Sim::start(&["--modems", "1"]);
    for round in 0..3 {
        let mut dev = Dev::open(&sim.link(0));
        dev.at("ATE0");
        let r = dev.at("AT");
        assert!(r.ends_with("OK\r\n"), "round {round}: {r}");
        drop(dev);
        // Kannel's at2 also sets its own speed and hang-up-on-close before
        // closing; the next open must still find a working modem.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_NOCTTY.bits())
            .open(sim.link(0))
            .unwrap();
        use nix::sys::termios::{self, BaudRate, ControlFlags, SetArg};
        let mut tio = termios::tcgetattr(&f).unwrap();
        termios::cfsetspeed(&mut tio, BaudRate::B115200).unwrap();
        tio.control_flags |= ControlFlags::HUPCL;
        termios::tcsetattr(&f, SetArg::TCSANOW, &tio).unwrap();
        drop(f);
    }
}

#[test]
fn ctl_errors_are_clear_and_nonzero() {
    let sim = Sim::start(&["--modems", "1"]);
    let e = sim.ctl(&["hang", "--modem", "7"]).unwrap_err();
    assert!(e.starts_with("error:") && e.contains("no modem 7"), "{e}");
    let e = sim
        .ctl(&["cms-error", "--modem", "0", "--rate", "2", "500"])
        .unwrap_err();
    assert!(e.contains("rate"), "{e}");
    let e = sim
        .ctl(&["inject", "--modem", "0", "--from", "nobody", "--text", "x"])
        .unwrap_err();
    assert!(e.contains("--from"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["sim", "ctl", "--dir"])
        .arg(dir.path())
        .arg("modems")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the simulator"));
}

#[test]
fn bad_flags_and_unwritable_dir_fail_with_a_message() {
    let out = Command::new(BIN)
        .args(["sim", "--dir", "/proc/smsgate-nope", "--modems", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error:") && err.contains("/proc/smsgate-nope"),
        "{err}"
    );
    let out = Command::new(BIN)
        .args(["sim", "--dir", "/tmp/x", "--latency", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--latency"));
}

#[test]
fn sigterm_and_sigint_remove_links_and_socket_and_exit_zero() {
    use nix::sys::signal::Signal;
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let mut sim = Sim::start(&["--modems", "2"]);
        let sock = sim.dir().join("sim.sock");
        assert!(sock.exists());
        let st = sim.terminate(signal);
        assert!(st.success(), "{signal}: {st:?}");
        assert!(!sock.exists(), "{signal}: socket left behind");
        for k in 0..2 {
            assert!(
                std::fs::symlink_metadata(sim.link(k)).is_err(),
                "{signal}: link {k} left behind"
            );
        }
    }
}

#[test]
fn a_second_simulator_on_the_same_dir_is_refused() {
    let sim = Sim::start(&["--modems", "1"]);
    let out = Command::new(BIN)
        .args(["sim", "--modems", "1", "--dir"])
        .arg(sim.dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another simulator"), "{err}");
    // The first one is untouched.
    assert!(std::fs::read_link(sim.link(0)).is_ok());
    assert_eq!(sim.ctl_ok(&["modems"]).len(), 1);
}

#[test]
fn a_stale_socket_from_a_killed_simulator_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    drop(std::os::unix::net::UnixListener::bind(dir.path().join("sim.sock")).unwrap());
    assert!(dir.path().join("sim.sock").exists());
    let sim = Sim::start_in(dir, &["--modems", "1"]);
    assert_eq!(sim.ctl_ok(&["modems"]).len(), 1);
}

#[test]
fn unplug_and_replug() {
    let sim = Sim::start(&["--modems", "1"]);
    let mut dev = Dev::open(&sim.link(0));
    dev.at("ATE0");
    let old_tty = std::fs::read_link(sim.link(0)).unwrap();
    let r = sim.ctl_ok(&["unplug", "--modem", "0"]);
    assert_eq!(r[0]["state"], "unplugged");
    assert!(std::fs::symlink_metadata(sim.link(0)).is_err(), "link gone");
    // The open descriptor now fails, as on a USB pull (EIO or hang-up);
    // the write itself may already fail.
    let _ = dev.0.write(b"AT\r");
    let mut failed = false;
    for _ in 0..50 {
        if dev.fill(Duration::from_millis(100)).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "the open fd keeps working after unplug");
    drop(dev);
    let r = sim.ctl_ok(&["replug", "--modem", "0"]);
    assert_eq!(
        r[0]["state"], "rebooting",
        "power came back: the modem boots"
    );
    let new_tty = std::fs::read_link(sim.link(0)).unwrap();
    assert_eq!(r[0]["tty"], new_tty.to_str().unwrap());
    assert_ne!(old_tty, new_tty, "a replug enumerates a new node");
    let mut dev = Dev::open(&sim.link(0));
    // The modem boots after a replug; it answers once it is up.
    let r = answer_at(&mut dev, "modem to answer after replug");
    assert!(r.ends_with("OK\r\n"), "{r}");
}

#[test]
fn hang_stops_answers_until_cleared() {
    let sim = Sim::start(&["--modems", "2"]);
    let mut dev = Dev::open(&sim.link(0));
    dev.at("ATE0");
    let r = sim.ctl_ok(&["hang", "--modem", "0"]);
    assert_eq!(r[0]["state"], "hung");
    dev.write(b"AT\r");
    // The other modem and the control socket are not held up by it.
    let mut other = Dev::open(&sim.link(1));
    assert!(other.at("AT").ends_with("OK\r\n"));
    assert_eq!(sim.ctl_ok(&["modems"]).len(), 2);
    assert!(
        dev.final_result(Duration::from_millis(1500)).is_err(),
        "a hung modem answered"
    );
    sim.ctl_ok(&["hang", "--modem", "0", "--off"]);
    let r = answer_at(&mut dev, "answer after hang --off");
    assert!(r.contains("OK"), "{r}");
}

#[test]
fn cms_error_fault_answers_cmgs_with_the_code() {
    let sim = Sim::start(&["--modems", "1"]);
    let mut dev = Dev::open(&sim.link(0));
    setup(&mut dev);
    sim.ctl_ok(&["cms-error", "500", "--modem", "0"]);
    let r = dev.cmgs(&submit_hello(OUTSIDE, false));
    assert!(r.contains("+CMS ERROR: 500"), "{r}");
    sim.ctl_ok(&["cms-error", "--modem", "0", "--off"]);
    let r = dev.cmgs(&submit_hello(OUTSIDE, false));
    assert!(r.contains("+CMGS:"), "{r}");
}

#[test]
fn full_storage_holds_inbound_until_cleared() {
    let sim = Sim::start(&["--modems", "1"]);
    let mut dev = Dev::open(&sim.link(0));
    setup(&mut dev);
    sim.ctl_ok(&["full", "--modem", "0"]);
    let inj = sim.inject(0, "later", &[]);
    assert_eq!(inj["delivered"], false, "{inj:?}");
    // The network holds it for the modem.
    wait_for("the held message to be counted", || {
        (sim.ctl_ok(&["modems"])[0]["waiting"] == 1).then_some(())
    });
    sim.ctl_ok(&["clear", "--modem", "0"]);
    // The network retries, as an SMSC does.
    next_cmti(&mut dev);
}

#[test]
fn reboot_makes_the_modem_boot_again() {
    let sim = Sim::start(&["--modems", "1"]);
    let mut dev = Dev::open(&sim.link(0));
    dev.at("ATE0");
    let r = sim.ctl_ok(&["reboot", "--modem", "0"]);
    assert_eq!(r[0]["state"], "rebooting");
    // After a reboot echo is back on (volatile settings reset).
    let r = answer_at(&mut dev, "answer after reboot");
    assert!(r.contains("AT\r"), "echo on again after reboot: {r:?}");
}

#[test]
fn reboot_and_replug_emit_the_profile_boot_urcs() {
    let sim = Sim::start(&["--modems", "1", "--profile", "huawei"]);
    let mut dev = Dev::open(&sim.link(0));
    dev.at("ATE0");
    sim.ctl_ok(&["reboot", "--modem", "0"]);
    dev.read_until("^SIMST:1", WAIT).unwrap();
    drop(dev);
    sim.ctl_ok(&["unplug", "--modem", "0"]);
    sim.ctl_ok(&["unplug", "--modem", "0", "--off"]);
    let mut dev = Dev::open(&sim.link(0));
    dev.read_until("^SIMST:1", WAIT).unwrap();
}

#[test]
fn pin_numbers_and_latency_flags_reach_the_modems() {
    let sim = Sim::start(&[
        "--numbers",
        "+4930123,+4930124,+4930125",
        "--pin",
        "4321",
        "--latency",
        "200ms",
    ]);
    let modems = sim.ctl_ok(&["modems"]);
    assert_eq!(modems.len(), 3);
    assert_eq!(modems[2]["number"], "+4930125");
    let mut dev = Dev::open(&sim.link(2));
    dev.at("ATE0");
    let r = dev.at("AT+CPIN?");
    assert!(r.contains("SIM PIN"), "{r}");
    let r = dev.at("AT+CPIN=\"4321\"");
    assert!(r.ends_with("OK\r\n"), "{r}");
}

#[test]
fn garbage_fault_writes_unrequested_bytes() {
    let sim = Sim::start(&["--modems", "1", "--seed", "7"]);
    let mut dev = Dev::open(&sim.link(0));
    dev.at("ATE0");
    sim.ctl_ok(&["garbage", "--modem", "0"]);
    let n = wait_for("garbage", || {
        dev.fill(Duration::from_millis(200)).unwrap();
        (!dev.0.buf.is_empty()).then_some(dev.0.buf.len())
    });
    assert!(n > 0);
    sim.ctl_ok(&["garbage", "--modem", "0", "--off"]);
    // Once off, the modem talks sense again.
    let r = answer_at(&mut dev, "clean answer");
    assert!(r.contains("OK"));
}
