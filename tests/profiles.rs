//! The built-in modem profiles (`hardware/*.toml`): each one parses, each
//! USB interface it names as the AT port is the one ModemManager's udev
//! rules in the corpus mark as an AT port, and `smsgate sim --profile <id>`
//! (the real binary, on a pseudo-terminal) introduces itself with the
//! profile's identity, in a way the profile's own `[match]` recognises.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use smsgate::hardware::{self, Profile};
use smsgate::sim::dte::Dte;

const BIN: &str = env!("CARGO_BIN_EXE_smsgate");

/// Generous: the machine is shared and slow; a pass is usually instant.
const WAIT: Duration = Duration::from_secs(20);

/// `[[usb]]` entries whose AT interface comes from a source other than the
/// corpus udev rules, with that source. Each must still name an interface
/// the rules do not contradict (checked below).
const NOT_IN_MM_RULES: &[(&str, &str, u8, &str)] = &[(
    "2c7c",
    "0121",
    2,
    "Quectel EC21: same layout as EC25 per the Linux option driver; absent from the MM rules",
)];

fn profiles() -> Vec<Profile> {
    hardware::builtin().expect("every built-in profile parses")
}

#[test]
fn every_builtin_profile_parses_with_its_file_stem_as_id() {
    let all = profiles();
    assert_eq!(all.len(), hardware::BUILTIN.len());
    for (p, (stem, _)) in all.iter().zip(hardware::BUILTIN) {
        assert_eq!(&p.id, stem);
        assert!(!p.name.is_empty(), "{stem}: empty name");
        for u in &p.usb {
            let hex4 =
                |s: &str| s.len() == 4 && s.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
            assert!(
                hex4(&u.vendor) && hex4(&u.product),
                "{stem}: bad USB id {u:?}"
            );
        }
    }
    for id in ["sierra", "telit", "ublox", "zte"] {
        assert!(all.iter().any(|p| p.id == id), "{id} is not built in");
    }
}

#[test]
fn vendor_profiles_recognise_the_identity_they_simulate() {
    for p in profiles().iter().filter(|p| p.id != "generic") {
        let m = p
            .sim
            .manufacturer
            .as_deref()
            .unwrap_or_default()
            .to_lowercase();
        assert!(
            p.matches
                .manufacturer
                .iter()
                .any(|s| m.contains(&s.to_lowercase())),
            "{}: [match] manufacturer {:?} does not recognise {m:?}",
            p.id,
            p.matches.manufacturer
        );
        let model = p.sim.model.as_deref().unwrap_or_default().to_lowercase();
        assert!(
            p.matches.model.is_empty()
                || p.matches
                    .model
                    .iter()
                    .any(|s| model.contains(&s.to_lowercase())),
            "{}: [match] model {:?} does not recognise {model:?}",
            p.id,
            p.matches.model
        );
    }
}

/// One udev rule line's `ATTRS{..}=="v"` / `ENV{..}=="v"` match value.
fn rule_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    let rest = line.get(start..)?.strip_prefix("==\"")?;
    rest.get(..rest.find('"')?)
}

/// The port role a rule line assigns (`AT_PRIMARY`, `QCDM`, `IGNORE`, ...).
fn rule_role(line: &str) -> Option<&str> {
    ["ENV{ID_MM_PORT_TYPE_", "ENV{ID_MM_PORT_"]
        .iter()
        .find_map(|k| {
            let start = line.find(k)? + k.len();
            let rest = line.get(start..)?;
            let role = rest.get(..rest.find('}')?)?;
            rest.get(role.len()..)?
                .starts_with("}=\"1\"")
                .then_some(role)
        })
}

/// (vendor, product, interface, role) of every port-type rule in the corpus.
fn udev_port_roles(dir: &Path) -> Vec<(String, String, u8, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rules") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            let (Some(v), Some(p), Some(i), Some(role)) = (
                rule_value(line, "ATTRS{idVendor}"),
                rule_value(line, "ATTRS{idProduct}"),
                rule_value(line, "ENV{.MM_USBIFNUM}"),
                rule_role(line),
            ) else {
                continue;
            };
            let Ok(i) = u8::from_str_radix(i, 16) else {
                continue;
            };
            out.push((v.to_lowercase(), p.to_lowercase(), i, role.to_string()));
        }
    }
    out
}

#[test]
fn every_at_interface_is_an_at_port_in_the_modemmanager_rules() {
    let Some(corpus) = common::corpus("profile USB interfaces vs ModemManager udev rules") else {
        return;
    };
    let roles = udev_port_roles(&corpus.join("hardware/modemmanager-udev"));
    // The parser itself must find the rules, or every check below is vacuous.
    assert!(roles.len() > 100, "only {} port rules parsed", roles.len());
    let mut checked = 0;
    for p in profiles() {
        for u in &p.usb {
            let Some(at) = u.at_interface else { continue };
            let here: Vec<_> = roles
                .iter()
                .filter(|(v, pr, i, _)| *v == u.vendor && *pr == u.product && *i == at)
                .map(|r| r.3.as_str())
                .collect();
            assert!(
                here.iter().all(|r| r.starts_with("AT_")),
                "{}: {}:{} interface {at} is {here:?} in the MM rules, not AT",
                p.id,
                u.vendor,
                u.product
            );
            let excused = NOT_IN_MM_RULES
                .iter()
                .any(|(v, pr, i, _)| *v == u.vendor && *pr == u.product && *i == at);
            assert!(
                excused || here.iter().any(|r| r.starts_with("AT_")),
                "{}: {}:{} interface {at} is not marked AT in the MM rules",
                p.id,
                u.vendor,
                u.product
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} USB entries checked");
}

#[test]
fn rule_parser_reads_the_port_role() {
    let line = r#"ATTRS{idVendor}=="1199", ATTRS{idProduct}=="9071", ENV{.MM_USBIFNUM}=="03", SUBSYSTEM=="tty", ENV{ID_MM_PORT_TYPE_AT_PRIMARY}="1""#;
    assert_eq!(rule_value(line, "ATTRS{idProduct}"), Some("9071"));
    assert_eq!(rule_value(line, "ENV{.MM_USBIFNUM}"), Some("03"));
    assert_eq!(rule_role(line), Some("AT_PRIMARY"));
    let ignore = r#"ATTRS{idVendor}=="1546", ATTRS{idProduct}=="1107", ENV{.MM_USBIFNUM}=="0a", ENV{ID_MM_PORT_IGNORE}="1""#;
    assert_eq!(rule_role(ignore), Some("IGNORE"));
    assert_eq!(rule_role(r#"ENV{ID_MM_UBLOX_PORT_READY_DELAY}="20""#), None);
}

/// A running `smsgate sim --modems 1 --profile <id>`, killed on drop.
struct Sim {
    child: Child,
    dir: tempfile::TempDir,
}

impl Sim {
    fn start(profile: &str) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(BIN)
            .args(["sim", "--modems", "1", "--profile", profile, "--dir"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let line = common::first_stdout_line(&mut child, WAIT);
        let sim = Sim { child, dir };
        let line = line.unwrap_or_else(|| panic!("{profile}: no ready line"));
        assert!(line.contains("\"ready\":true"), "{profile}: {line}");
        sim
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sim_with_each_profile_answers_with_that_profiles_identity() {
    for p in profiles() {
        let sim = Sim::start(&p.id);
        let mut dte = Dte::open(&sim.dir.path().join("modem0")).unwrap();
        let at = |dte: &mut Dte, cmd: &str| {
            dte.at(cmd, WAIT)
                .unwrap_or_else(|e| panic!("{}: {cmd}: {e}", p.id))
        };
        at(&mut dte, "ATE0");
        let manufacturer = p.sim.manufacturer.clone().unwrap_or_default();
        let r = at(&mut dte, "AT+CGMI");
        assert!(
            r.contains(&manufacturer) && r.ends_with("OK\r\n"),
            "{}: AT+CGMI -> {r:?}, want {manufacturer:?}",
            p.id
        );
        let model = p.sim.model.clone().unwrap_or_default();
        let r = at(&mut dte, "AT+CGMM");
        assert!(r.contains(&model), "{}: AT+CGMM -> {r:?}", p.id);
        // The daemon's set-up commands must be ones the simulated family knows.
        for cmd in p.at.init.iter().flatten() {
            let r = at(&mut dte, cmd);
            assert!(r.ends_with("OK\r\n"), "{}: {cmd} -> {r:?}", p.id);
        }
        // So must its ICCID command.
        if let Some(cmd) = &p.at.iccid {
            let r = at(&mut dte, cmd);
            assert!(
                r.ends_with("OK\r\n") && r.contains("89"),
                "{}: {cmd} -> {r:?}",
                p.id
            );
        }
    }
}

#[test]
fn sim_reboot_prints_the_new_profiles_boot_urcs() {
    // In parallel: each reboot keeps its modem silent for `boot_secs`.
    let workers: Vec<_> = ["sierra", "telit", "ublox", "zte"]
        .into_iter()
        .map(|id| {
            std::thread::spawn(move || {
                let p = hardware::builtin_profile(id).unwrap();
                let first = p.sim.boot_urcs.first().cloned();
                let first = first.unwrap_or_else(|| panic!("{id}: no boot URC"));
                let sim = Sim::start(id);
                let mut dte = Dte::open(&sim.dir.path().join("modem0")).unwrap();
                dte.at("ATE0", WAIT).unwrap();
                let r = dte.at("AT+CFUN=1,1", WAIT).unwrap();
                assert!(r.ends_with("OK\r\n"), "{id}: AT+CFUN=1,1 -> {r:?}");
                let wait = WAIT + Duration::from_secs(p.sim.boot_secs.unwrap_or(0));
                dte.read_until(&first, wait)
                    .unwrap_or_else(|e| panic!("{id}: no {first:?} after reboot: {e}"));
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}
