//! Replays what gammu-smsd, SMSTools3 and Kannel really sent to a modem
//! (`../shared/corpus/peers/*.cmds.txt`) into a `SimModem` and checks that
//! every command is answered the way that peer needs: no `ERROR` except for
//! the probes the peers are known to tolerate, `+CSCS=?` non-empty,
//! `+COPS?` in the format `+COPS=3,<n>` asked for, every `+CMGS` accepted,
//! every message read back.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use smsgate::hardware::builtin_profile;
use smsgate::pdu::{
    encode_deliver, encode_status_report, Address, DeliverOptions, Status, Timestamp,
};
use smsgate::sim::modem::{Identity, NetEvent, SimModem};

/// Probes the peers send and expect to fail on some modems
/// (`peers/README.md`).
const MAY_FAIL: &[&str] = &[
    "AT+MODE=2",
    "AT+CPROT=?",
    "AT+SYNCML=?",
    "AT$TSSPCSW=?",
    "AT+CHUP=?",
];

/// One line of a `*.cmds.txt`.
#[derive(Debug)]
enum Step {
    /// Bytes the peer wrote (a command line without its CR, or a PDU with
    /// its Ctrl-Z).
    Write { at: f64, bytes: Vec<u8>, pdu: bool },
    /// A message the simulated network delivered.
    Deliver { at: f64, from: String, text: String },
    /// A status report the network delivered.
    Report { at: f64, mr: u8 },
}

/// Decodes a Python `repr` of `str` or `bytes` (`'AT'`, `b'0011..\x1a'`).
fn py_literal(s: &str) -> Option<Vec<u8>> {
    let s = s.strip_prefix('b').unwrap_or(s);
    let inner = s.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = Vec::new();
    let mut it = inner.bytes();
    while let Some(c) = it.next() {
        if c != b'\\' {
            out.push(c);
            continue;
        }
        match it.next()? {
            b'x' => {
                let hi = it.next()?;
                let lo = it.next()?;
                out.push(u8::from_str_radix(std::str::from_utf8(&[hi, lo]).ok()?, 16).ok()?);
            }
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            other => out.push(other),
        }
    }
    Some(out)
}

fn parse(text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        let Some((t, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(at) = t.parse::<f64>() else {
            continue;
        };
        if let Some(lit) = rest.strip_prefix("< ") {
            let pdu = lit.starts_with("b'");
            if let Some(bytes) = py_literal(lit) {
                steps.push(Step::Write { at, bytes, pdu });
            }
        } else if let Some(ev) = rest.strip_prefix("! ") {
            // "MT SMS stored SM/1 from +1555...: 'text'" (preloaded) or
            // "CTL 'deliver +1555... text'" (injected while running).
            if let Some(x) = ev.strip_prefix("MT SMS stored ") {
                if let Some((_, rest)) = x.split_once(" from ") {
                    if let Some((from, t)) = rest.split_once(": ") {
                        let text = t.trim_matches('\'').to_string();
                        steps.push(Step::Deliver {
                            at,
                            from: from.to_string(),
                            text,
                        });
                    }
                }
            } else if let Some(x) = ev.strip_prefix("CTL 'deliver ") {
                let x = x.trim_end_matches('\'');
                if let Some((from, text)) = x.split_once(' ') {
                    steps.push(Step::Deliver {
                        at,
                        from: from.to_string(),
                        text: text.to_string(),
                    });
                }
            } else if let Some(x) = ev.strip_prefix("status report ") {
                if let Some(mr) = x
                    .split_whitespace()
                    .find_map(|w| w.trim_end_matches(',').strip_prefix("mr="))
                    .and_then(|n| n.parse().ok())
                {
                    steps.push(Step::Report { at, mr });
                }
            }
        }
    }
    steps
}

fn identity() -> Identity {
    Identity {
        number: "+15551230000".into(),
        imei: "356938035643809".into(),
        imsi: "001010123456789".into(),
        iccid: "8900100000000000001".into(),
        pin: None,
        smsc: "+15550000001".into(),
    }
}

fn tpdu_of(p: &smsgate::pdu::EncodedPdu) -> Vec<u8> {
    p.octets[p.octets.len() - p.tpdu_len..].to_vec()
}

/// Replays one transcript; returns (commands answered, messages sent,
/// messages read back with +CMGR/+CMGL or +CMT).
fn replay(file: &Path, profile: &str) -> (usize, usize, usize) {
    let text = std::fs::read_to_string(file).unwrap();
    let steps = parse(&text);
    assert!(!steps.is_empty(), "{}: nothing parsed", file.display());
    let t0 = Instant::now();
    let mut p = builtin_profile(profile).unwrap();
    // The recorded modem kept status reports in SM (many real ones do) and
    // the peers read them back from there.
    p.sim.status_report_storage = Some("SM".into());
    p.sim.index_base = Some(1);
    let mut m = SimModem::new(identity(), &p, Duration::ZERO, 1, t0);
    let scts = Timestamp::new(26, 11, 26, 8, 0, 0, 0);
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    let (mut answered, mut read) = (0, 0);
    let mut cops_format = 0;
    let mut sent_total = 0;
    for step in steps {
        let at = match &step {
            Step::Write { at, .. } | Step::Deliver { at, .. } | Step::Report { at, .. } => *at,
        };
        let now = t0 + Duration::from_secs_f64(at);
        match step {
            Step::Deliver { from, text, .. } => {
                let addr = Address::parse_number(&from).unwrap();
                let opts = DeliverOptions {
                    scts,
                    ..DeliverOptions::default()
                };
                for part in encode_deliver(&addr, &text, &opts).unwrap() {
                    m.receive(&tpdu_of(&part), now).unwrap();
                }
                let out = String::from_utf8_lossy(&m.output(now)).into_owned();
                if out.contains("+CMT:") {
                    read += 1;
                }
            }
            Step::Report { mr, .. } => {
                let ra = Address::parse_number("+15551112222").unwrap();
                let r = encode_status_report(None, mr, &ra, scts, scts, Status(0)).unwrap();
                m.receive_status_report(&tpdu_of(&r), now).unwrap();
                m.output(now);
            }
            Step::Write { bytes, pdu, .. } => {
                let mut input = bytes.clone();
                if !pdu {
                    input.push(b'\r');
                }
                m.input(&input, now);
                // Everything due by the next step, plus the latency-free
                // answer itself.
                let out = String::from_utf8_lossy(&m.output(now)).into_owned();
                let cmd = String::from_utf8_lossy(&bytes).into_owned();
                let ctx = format!("{name} [{profile}] {cmd:?} -> {out:?}");
                if cmd.starts_with('\u{1b}') {
                    // ESC then CR: an abandoned line, no answer needed.
                    continue;
                }
                answered += 1;
                let failed = out.contains("ERROR") || out.contains("COMMAND NOT SUPPORT");
                if MAY_FAIL.contains(&cmd.as_str()) {
                    continue;
                }
                assert!(!failed, "{ctx}");
                if pdu {
                    assert!(out.contains("+CMGS: "), "{ctx}");
                    sent_total += 1;
                    continue;
                }
                assert!(
                    out.contains("OK") || out.ends_with("> "),
                    "no final result: {ctx}"
                );
                if cmd == "AT+CSCS=?" {
                    assert!(
                        out.contains("(\"GSM\",\"IRA\",\"8859-1\",\"UCS2\",\"HEX\")"),
                        "{ctx}"
                    );
                }
                if let Some(f) = cmd.strip_prefix("AT+COPS=3,") {
                    cops_format = f.parse().unwrap();
                }
                if cmd == "AT+COPS?" {
                    let want = format!("+COPS: 0,{cops_format},");
                    assert!(out.contains(&want), "{ctx}");
                    if cops_format == 2 {
                        assert!(out.contains("+COPS: 0,2,\"00101\""), "{ctx}");
                    }
                }
                if cmd.starts_with("AT+CMGR=") {
                    assert!(out.contains("+CMGR: "), "{ctx}");
                    read += 1;
                }
                if cmd.starts_with("AT+CMGL=") {
                    read += out.matches("+CMGL: ").count();
                }
            }
        }
    }
    let sent = m
        .take_events()
        .into_iter()
        .filter(|e| matches!(e, NetEvent::Submitted { .. }))
        .count();
    assert_eq!(sent, sent_total, "{name}: every +CMGS reached the network");
    (answered, sent, read)
}

fn transcripts(corpus: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(corpus.join("peers"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".cmds.txt"))
        .collect();
    files.sort();
    files
}

#[test]
fn peers_work_against_the_generic_modem() {
    let Some(corpus) = common::corpus("peer command replay") else {
        return;
    };
    let files = transcripts(&corpus);
    assert!(files.len() >= 6, "gammu, smstools and kannel transcripts");
    for f in &files {
        let (answered, sent, read) = replay(f, "generic");
        eprintln!(
            "{}: {answered} commands answered, {sent} sent, {read} read",
            f.file_name().unwrap().to_string_lossy()
        );
        assert!(answered > 10);
        assert!(sent >= 1, "{}: the peer sent something", f.display());
    }
}

#[test]
fn peers_work_against_the_vendor_profiles() {
    let Some(corpus) = common::corpus("peer command replay (vendor profiles)") else {
        return;
    };
    // Huawei numbers messages from 0, which the recorded peers (configured
    // for a modem counting from 1) do not know: `replay` counts from 1 for
    // it; everything else about the family (COMMAND NOT SUPPORT, ^RSSI
    // noise, its identity) is kept.
    for profile in ["huawei", "quectel", "simcom"] {
        for f in &transcripts(&corpus) {
            replay(f, profile);
        }
    }
}

#[test]
fn python_literals() {
    assert_eq!(py_literal("'\\x1b'"), Some(vec![0x1b]));
    assert_eq!(
        py_literal("'AT+CPMS=\"SM\"'"),
        Some(b"AT+CPMS=\"SM\"".to_vec())
    );
    assert_eq!(py_literal("b'00\\x1a'"), Some(b"00\x1a".to_vec()));
    assert_eq!(py_literal("nope"), None);
}
