//! Choosing a hardware profile for a port and resolving its settings.
//!
//! A profile is matched, in order, by the USB ids of the device behind the
//! port (sysfs, when the port is a USB tty), then by the modem's own
//! `+CGMI`/`+CGMM` answers (27.007 §5.1, §5.2); an unknown modem uses the
//! generic profile and the actor says so in the log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::at::commands::{Iccid, PinAttemptsQuery, SetCnmi, Storage};
use crate::hardware::Profile;

/// The USB identity of the device behind a tty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbInfo {
    /// `idVendor`, four lower-case hex digits.
    pub vendor: String,
    /// `idProduct`, four lower-case hex digits.
    pub product: String,
    /// `bInterfaceNumber` of the tty's interface.
    pub interface: Option<u8>,
}

/// Reads the USB ids of `port` from sysfs under `sys` (`/sys` in
/// production). `port` may be a symlink (`/dev/smsgate/...`); it is
/// resolved to its `/dev/ttyXXX` node first. `None` for anything that is
/// not a USB tty (a pty, a built-in UART) or when sysfs says nothing.
pub fn usb_info(port: &Path, sys: &Path) -> Option<UsbInfo> {
    let dev = std::fs::canonicalize(port).ok()?;
    let name = dev.file_name()?.to_str()?;
    // /sys/class/tty/ttyUSB0/device -> .../1-1:1.2/ttyUSB0 (usb-serial) or
    // .../1-1:1.2 (cdc-acm): walk up until a directory has idVendor.
    let device = std::fs::canonicalize(sys.join("class/tty").join(name).join("device")).ok()?;
    let mut interface = None;
    let mut dir: Option<PathBuf> = Some(device);
    for _ in 0..6 {
        let d = dir?;
        if interface.is_none() {
            interface = read_trim(&d.join("bInterfaceNumber"))
                .and_then(|s| u8::from_str_radix(&s, 16).ok());
        }
        if let (Some(vendor), Some(product)) = (
            read_trim(&d.join("idVendor")),
            read_trim(&d.join("idProduct")),
        ) {
            return Some(UsbInfo {
                vendor: vendor.to_ascii_lowercase(),
                product: product.to_ascii_lowercase(),
                interface,
            });
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    None
}

/// A small sysfs attribute, trimmed; capped so a strange file cannot
/// make us read megabytes.
fn read_trim(p: &Path) -> Option<String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(p)
        .ok()?
        .take(64)
        .read_to_string(&mut s)
        .ok()?;
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// The profile whose USB ids match, if any.
pub fn by_usb<'a>(profiles: &'a [Profile], usb: &UsbInfo) -> Option<&'a Profile> {
    profiles.iter().find(|p| {
        p.usb.iter().any(|u| {
            u.vendor.eq_ignore_ascii_case(&usb.vendor)
                && u.product.eq_ignore_ascii_case(&usb.product)
        })
    })
}

/// The profile whose `[match]` substrings appear in the manufacturer or
/// model answer (case-insensitive), if any. The generic profile has no
/// match rules and is never returned here.
pub fn by_identity<'a>(
    profiles: &'a [Profile],
    manufacturer: &str,
    model: &str,
) -> Option<&'a Profile> {
    let (mf, md) = (manufacturer.to_lowercase(), model.to_lowercase());
    profiles.iter().find(|p| {
        p.matches
            .manufacturer
            .iter()
            .any(|s| !s.is_empty() && mf.contains(&s.to_lowercase()))
            || p.matches
                .model
                .iter()
                .any(|s| !s.is_empty() && md.contains(&s.to_lowercase()))
    })
}

/// A profile's daemon-side settings with the generic defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Profile id (`generic`, `huawei`...).
    pub id: String,
    /// Commands sent after the standard set-up.
    pub init: Vec<String>,
    /// `+CNMI` (27.005 §3.4.1).
    pub cnmi: SetCnmi,
    /// Preferred storages, best first.
    pub storage: Vec<Storage>,
    /// Pause between the `> ` prompt and the PDU.
    pub prompt_delay: Duration,
    /// The reset command.
    pub reset: String,
    /// How to read the ICCID, in order of preference.
    pub iccid: Vec<Iccid>,
    /// How to read the remaining PIN attempts, in order of preference.
    pub pin_attempts: Vec<PinAttemptsQuery>,
    /// Longest time a reset may take before the port answers again.
    pub reset_settle: Duration,
    /// The argument of `AT+CMGL` that lists every message (`4`, or `"ALL"`
    /// for firmware that wants the text-mode form).
    pub cmgl_all: String,
}

/// `cmgl_all` as written in a profile, when it is a `<stat>` 27.005 §3.4.2
/// knows (a digit 0-4, or one of the quoted text-mode names). Anything else
/// would send the modem a command it cannot parse, so it is refused and the
/// 27.005 PDU-mode value is used.
fn cmgl_arg(s: &str) -> Option<String> {
    let s = s.trim();
    let names = [
        "\"REC UNREAD\"",
        "\"REC READ\"",
        "\"STO UNSENT\"",
        "\"STO SENT\"",
        "\"ALL\"",
    ];
    (matches!(s, "0" | "1" | "2" | "3" | "4") || names.iter().any(|n| n.eq_ignore_ascii_case(s)))
        .then(|| s.to_ascii_uppercase())
}

/// The generic `+CNMI`: store and indicate (`+CMTI`), status reports
/// stored and indicated (`+CDSI`): nothing is lost while we are busy.
const GENERIC_CNMI: SetCnmi = SetCnmi {
    mode: 2,
    mt: 1,
    bm: 0,
    ds: 2,
    bfr: 0,
};

fn parse_cnmi(s: &str) -> Option<SetCnmi> {
    let v: Vec<u8> = s
        .split(',')
        .map(|x| x.trim().parse().ok())
        .collect::<Option<_>>()?;
    match v.as_slice() {
        [mode, mt, bm, ds, bfr] => Some(SetCnmi {
            mode: *mode,
            mt: *mt,
            bm: *bm,
            ds: *ds,
            bfr: *bfr,
        }),
        _ => None,
    }
}

fn iccid_command(text: &str) -> Option<Iccid> {
    match text.trim().to_ascii_uppercase().as_str() {
        "AT+CCID" => Some(Iccid::Ccid),
        "AT^ICCID?" => Some(Iccid::Huawei),
        "AT+QCCID" => Some(Iccid::Quectel),
        "AT+ICCID" => Some(Iccid::Iccid),
        _ => None,
    }
}

/// A profile's `pin_attempts` command as a typed query; unknown ones are
/// skipped (their answers could not be read).
fn pin_attempts_command(text: &str) -> Option<PinAttemptsQuery> {
    match text.trim().to_ascii_uppercase().as_str() {
        "AT+CPINR" | "AT+CPINR=\"SIM PIN\"" => Some(PinAttemptsQuery::Standard),
        "AT^CPIN?" => Some(PinAttemptsQuery::Huawei),
        "AT+QPINC=\"SC\"" => Some(PinAttemptsQuery::Quectel),
        other => {
            tracing::warn!(
                command = other,
                "profile pin_attempts: unknown command; skipped"
            );
            None
        }
    }
}

impl Settings {
    /// Resolves `profile` over `generic` (a missing key means "as
    /// generic"; a missing generic key means the 27.005 default).
    pub fn resolve(profile: &Profile, generic: Option<&Profile>) -> Settings {
        let g = generic.map(|g| &g.at);
        let p = &profile.at;
        let pick = |a: &Option<String>, b: Option<&Option<String>>| {
            a.clone().or_else(|| b.and_then(Clone::clone))
        };
        let cnmi = pick(&p.cnmi, g.map(|g| &g.cnmi))
            .and_then(|s| parse_cnmi(&s))
            .unwrap_or(GENERIC_CNMI);
        let storage = p
            .storage
            .clone()
            .or_else(|| g.and_then(|g| g.storage.clone()))
            .unwrap_or_else(|| vec!["ME".into(), "SM".into()])
            .iter()
            .map(|s| Storage::parse(s))
            .collect();
        // The profile's own ICCID command first, then +CCID, then every
        // vendor form we know (a profile may not know its firmware).
        let mut iccid: Vec<Iccid> = Vec::new();
        let own = p.iccid.as_deref().map(str::trim);
        // SIMCom's `AT+CICCID` is not a typed form: the actor sends it raw
        // (see `raw_iccid`).
        if let Some(c) = own.and_then(iccid_command) {
            iccid.push(c);
        }
        for c in [Iccid::Ccid, Iccid::Huawei, Iccid::Quectel, Iccid::Iccid] {
            if !iccid.contains(&c) {
                iccid.push(c);
            }
        }
        let mut pin_attempts: Vec<PinAttemptsQuery> = p
            .pin_attempts
            .iter()
            .flatten()
            .filter_map(|c| pin_attempts_command(c))
            .collect();
        if !pin_attempts.contains(&PinAttemptsQuery::Standard) {
            pin_attempts.push(PinAttemptsQuery::Standard);
        }
        Settings {
            id: profile.id.clone(),
            init: p
                .init
                .clone()
                .or_else(|| g.and_then(|g| g.init.clone()))
                .unwrap_or_default(),
            cnmi,
            storage,
            prompt_delay: Duration::from_millis(
                p.prompt_delay_ms
                    .or_else(|| g.and_then(|g| g.prompt_delay_ms))
                    .unwrap_or(0)
                    .min(5_000),
            ),
            reset: pick(&p.reset, g.map(|g| &g.reset)).unwrap_or_else(|| "AT+CFUN=1,1".into()),
            iccid,
            pin_attempts,
            reset_settle: Duration::from_secs(
                p.reset_settle_secs
                    .or_else(|| g.and_then(|g| g.reset_settle_secs))
                    .unwrap_or(20)
                    .min(600),
            ),
            cmgl_all: pick(&p.cmgl_all, g.map(|g| &g.cmgl_all))
                .and_then(|s| cmgl_arg(&s))
                .unwrap_or_else(|| "4".into()),
        }
    }

    /// The raw ICCID command of the profile when it is not one of the
    /// typed [`Iccid`] forms (SIMCom `AT+CICCID`).
    pub fn raw_iccid(profile: &Profile) -> Option<String> {
        let own = profile.at.iccid.as_deref()?.trim();
        iccid_command(own).is_none().then(|| own.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::builtin;

    #[test]
    fn identity_matching_finds_vendors_and_never_generic() {
        let all = builtin().unwrap();
        assert_eq!(
            by_identity(&all, "huawei", "E3372").map(|p| p.id.as_str()),
            Some("huawei")
        );
        assert_eq!(
            by_identity(&all, "Quectel", "EC25").map(|p| p.id.as_str()),
            Some("quectel")
        );
        assert_eq!(
            by_identity(&all, "SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H").map(|p| p.id.as_str()),
            Some("simcom")
        );
        assert_eq!(by_identity(&all, "smsgate", "SIM-GENERIC"), None);
        assert_eq!(by_identity(&all, "", ""), None);
    }

    #[test]
    fn cmgl_all_comes_from_the_profile_and_a_bad_one_falls_back() {
        let all = builtin().unwrap();
        let generic = all.iter().find(|p| p.id == "generic");
        let mut p = all.iter().find(|p| p.id == "huawei").unwrap().clone();
        assert_eq!(Settings::resolve(&p, generic).cmgl_all, "4");
        p.at.cmgl_all = Some("\"all\"".into());
        assert_eq!(Settings::resolve(&p, generic).cmgl_all, "\"ALL\"");
        for bad in ["5", "ALL", "4;+CFUN=0", "\"ALL", ""] {
            p.at.cmgl_all = Some(bad.into());
            assert_eq!(Settings::resolve(&p, generic).cmgl_all, "4", "{bad:?}");
        }
    }

    #[test]
    fn pin_attempt_queries_come_from_the_profiles() {
        let all = builtin().unwrap();
        let generic = all.iter().find(|p| p.id == "generic");
        let of = |id: &str| {
            let p = all.iter().find(|p| p.id == id).unwrap();
            Settings::resolve(p, generic).pin_attempts
        };
        assert_eq!(
            of("huawei"),
            vec![PinAttemptsQuery::Huawei, PinAttemptsQuery::Standard]
        );
        assert_eq!(
            of("quectel"),
            vec![PinAttemptsQuery::Quectel, PinAttemptsQuery::Standard]
        );
        assert_eq!(of("generic"), vec![PinAttemptsQuery::Standard]);
        let mut odd = all.iter().find(|p| p.id == "telit").unwrap().clone();
        odd.at.pin_attempts = Some(vec!["AT#PCT".into(), "at+cpinr".into()]);
        assert_eq!(
            Settings::resolve(&odd, generic).pin_attempts,
            vec![PinAttemptsQuery::Standard]
        );
    }

    #[test]
    fn usb_matching_uses_vendor_and_product() {
        let all = builtin().unwrap();
        let info = UsbInfo {
            vendor: "2c7c".into(),
            product: "0125".into(),
            interface: Some(2),
        };
        assert_eq!(by_usb(&all, &info).map(|p| p.id.as_str()), Some("quectel"));
        let other = UsbInfo {
            vendor: "dead".into(),
            product: "beef".into(),
            interface: None,
        };
        assert_eq!(by_usb(&all, &other), None);
    }

    #[test]
    fn usb_info_walks_a_fake_sysfs() {
        let tmp = tempfile::tempdir().unwrap();
        let sys = tmp.path().join("sys");
        let usbdev = sys.join("devices/pci0/usb1/1-1");
        let intf = usbdev.join("1-1:1.2");
        let ttydir = intf.join("ttyUSB7");
        std::fs::create_dir_all(&ttydir).unwrap();
        std::fs::write(usbdev.join("idVendor"), "2c7c\n").unwrap();
        std::fs::write(usbdev.join("idProduct"), "0125\n").unwrap();
        std::fs::write(intf.join("bInterfaceNumber"), "02\n").unwrap();
        let class = sys.join("class/tty/ttyUSB7");
        std::fs::create_dir_all(&class).unwrap();
        std::os::unix::fs::symlink(&ttydir, class.join("device")).unwrap();
        // The "device node" is a plain file named like the tty.
        let dev = tmp.path().join("dev");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(dev.join("ttyUSB7"), "").unwrap();
        std::os::unix::fs::symlink(dev.join("ttyUSB7"), tmp.path().join("modem")).unwrap();
        let info = usb_info(&tmp.path().join("modem"), &sys).unwrap();
        assert_eq!(
            info,
            UsbInfo {
                vendor: "2c7c".into(),
                product: "0125".into(),
                interface: Some(2)
            }
        );
        // A pty (no sysfs entry) has no USB identity.
        std::fs::write(dev.join("pts3"), "").unwrap();
        assert_eq!(usb_info(&dev.join("pts3"), &sys), None);
    }

    #[test]
    fn settings_fill_in_generic_and_keep_vendor_differences() {
        let all = builtin().unwrap();
        let g = all.iter().find(|p| p.id == "generic");
        let hw = all.iter().find(|p| p.id == "huawei").unwrap();
        let s = Settings::resolve(hw, g);
        assert_eq!(s.storage, vec![Storage::Sm, Storage::Me]);
        assert_eq!(s.iccid.first(), Some(&Iccid::Huawei));
        assert_eq!(s.init, vec!["AT^CURC=0".to_string()]);
        assert_eq!(s.pin_attempts.first(), Some(&PinAttemptsQuery::Huawei));
        let sc = all.iter().find(|p| p.id == "simcom").unwrap();
        assert_eq!(Settings::raw_iccid(sc).as_deref(), Some("AT+CICCID"));
        let s = Settings::resolve(sc, g);
        assert_eq!(s.iccid.first(), Some(&Iccid::Ccid));
        assert_eq!(parse_cnmi("2,1,0,2,0"), Some(GENERIC_CNMI));
        assert_eq!(parse_cnmi("2,1"), None);
        assert_eq!(parse_cnmi("2,x,0,2,0"), None);
    }
}
