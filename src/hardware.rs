//! Modem profiles loaded from `hardware/*.toml`.
//!
//! The generic profile describes any 3GPP TS 27.005/27.007 modem; a vendor
//! profile states only how a modem family differs (which USB interface
//! carries AT, init commands, `+CNMI` parameters, storage names, vendor URCs,
//! how to read the ICCID, how to reset). The same files carry a `[sim]`
//! section that tells the simulator how to imitate that family, so the
//! daemon's idea of a quirk and the simulator's reproduction of it cannot
//! drift apart.
//!
//! The profiles shipped in `hardware/` are compiled into the binary, so the
//! daemon and `smsgate sim` work without any file installed.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Errors while loading a profile.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The TOML did not parse or did not match the schema.
    #[error("profile {name}: {source}")]
    Parse {
        /// File or profile name.
        name: String,
        /// The parser's explanation (names the key and line).
        #[source]
        source: toml::de::Error,
    },
    /// No profile of that id exists.
    #[error("unknown modem profile {0:?} (known: {1})")]
    Unknown(String, String),
}

/// One USB identity of a modem family and the interface that carries AT.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UsbId {
    /// USB vendor id, four lower-case hex digits (`12d1`).
    pub vendor: String,
    /// USB product id, four lower-case hex digits.
    pub product: String,
    /// `bInterfaceNumber` of the AT command port, when known.
    #[serde(default)]
    pub at_interface: Option<u8>,
    /// Which model this id is, for humans.
    #[serde(default)]
    pub model: Option<String>,
}

/// How a profile is recognised from the modem's own answers.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// Case-insensitive substrings of the `+CGMI` answer.
    #[serde(default)]
    pub manufacturer: Vec<String>,
    /// Case-insensitive substrings of the `+CGMM` answer.
    #[serde(default)]
    pub model: Vec<String>,
}

/// How the daemon talks to this modem family. Every field is optional: a
/// missing one means "as the generic profile".
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AtSettings {
    /// Commands sent after the standard set-up, in order.
    pub init: Option<Vec<String>>,
    /// `+CNMI` parameters (`mode,mt,bm,ds,bfr`).
    pub cnmi: Option<String>,
    /// Preferred message storages, best first (`ME`, `SM`, `MT`).
    pub storage: Option<Vec<String>>,
    /// Whether `+CMGL` in PDU mode wants a number (`4`) or a string (`"ALL"`).
    pub cmgl_all: Option<String>,
    /// Delay before writing the PDU after the `> ` prompt, in milliseconds.
    pub prompt_delay_ms: Option<u64>,
    /// The command that resets the modem.
    pub reset: Option<String>,
    /// The command that reads the ICCID when `+CCID` is missing.
    pub iccid: Option<String>,
    /// Vendor URC prefixes this family emits (for the log: expected noise).
    pub urcs: Option<Vec<String>>,
    /// Seconds after a reset before the port is expected back.
    pub reset_settle_secs: Option<u64>,
    /// How this family tells the remaining PIN attempts, best first
    /// (`AT^CPIN?`, `AT+QPINC="SC"`); `AT+CPINR` (27.007 §8.65) is always
    /// tried last.
    pub pin_attempts: Option<Vec<String>>,
}

/// How the simulator imitates this modem family.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SimSettings {
    /// `+CGMI` answer.
    pub manufacturer: Option<String>,
    /// `+CGMM` answer.
    pub model: Option<String>,
    /// `+CGMR` answer.
    pub revision: Option<String>,
    /// First six to eight digits of simulated IMEIs (the TAC).
    pub imei_prefix: Option<String>,
    /// Vendor commands that read the ICCID, answered with this prefix,
    /// e.g. `{ "^ICCID?" = "^ICCID" }`.
    #[serde(default)]
    pub iccid_commands: BTreeMap<String, String>,
    /// Unsolicited lines emitted when the modem boots or reboots.
    #[serde(default)]
    pub boot_urcs: Vec<String>,
    /// Unsolicited lines emitted periodically (signal noise such as `^RSSI`).
    #[serde(default)]
    pub periodic_urcs: Vec<String>,
    /// Interval of `periodic_urcs`, seconds.
    pub periodic_secs: Option<u64>,
    /// Answer to an unknown command (`ERROR`, or Huawei's `COMMAND NOT SUPPORT`).
    pub unknown_reply: Option<String>,
    /// Capacity of SIM storage (`SM`).
    pub sm_capacity: Option<usize>,
    /// Capacity of phone storage (`ME`).
    pub me_capacity: Option<usize>,
    /// Capacity of status-report storage (`SR`).
    pub sr_capacity: Option<usize>,
    /// `ATI` answer lines. Placeholders: see [`SimSettings::responses`].
    #[serde(default)]
    pub ati: Vec<String>,
    /// Seconds a reboot (`AT+CFUN=1,1`, a `reboot` fault) keeps the modem
    /// silent before the boot URCs.
    pub boot_secs: Option<u64>,
    /// Unsolicited lines emitted once the SIM is ready (right after the boot
    /// URCs without a PIN, or after `+CPIN=` succeeds): Quectel
    /// `+QIND: SMS DONE`, SIMCom `SMS Ready`.
    #[serde(default)]
    pub ready_urcs: Vec<String>,
    /// Seconds between the SIM becoming ready and `ready_urcs`; until then
    /// SMS commands answer `+CMS ERROR: 314` (SIM busy), as Quectel and
    /// SIMCom modules do before `+QIND: SMS DONE` / `SMS Ready`.
    pub sms_ready_secs: Option<u64>,
    /// Vendor (or overridden standard) commands answered with fixed lines
    /// and `OK`. The key is the command without `AT`, upper case, as the DTE
    /// sends it (`^SYSINFO`, `+QPINC?`, `+CBC`). Placeholders in the lines:
    /// `{imei}`, `{imsi}`, `{iccid}`, `{number}`, `{manufacturer}`,
    /// `{model}`, `{revision}`, `{rssi}`, `{cpin}` (`READY`, `SIM PIN`,
    /// `SIM PUK`), `{pin_left}`, `{puk_left}`, `{code_left}` (attempts left
    /// for the code the SIM asks for now, empty when ready).
    #[serde(default)]
    pub responses: BTreeMap<String, Vec<String>>,
    /// Standard commands this family does not know (answered with
    /// `unknown_reply`), e.g. `+CCID` on modems that only have a vendor form.
    #[serde(default)]
    pub unsupported: Vec<String>,
    /// Index of the first message slot: 1 per TS 27.005, 0 on Huawei.
    pub index_base: Option<usize>,
    /// Storage used for all three `+CPMS` memories after power-on.
    pub default_storage: Option<String>,
    /// Where status reports are stored when `+CNMI` `<ds>` is 2 (`SR`, or
    /// `SM`/`ME` on modems without a status-report store).
    pub status_report_storage: Option<String>,
    /// `+CNMI` after power-on and `ATZ` (`mode,mt,bm,ds,bfr`).
    pub cnmi_default: Option<String>,
    /// Access technology appended to `+COPS?`/`+CREG`/`+CEREG` (0 GSM,
    /// 2 UTRAN, 7 E-UTRAN, TS 27.007 §7.3); absent: not shown in `+CREG`.
    pub access_technology: Option<u8>,
    /// Signal strength `<rssi>` for `+CSQ` (0..=31, TS 27.007 §8.5).
    pub rssi: Option<u8>,
    /// Line terminator of answers: `"\r\n"` (V.250), or `"\r\r\n"` on
    /// some Huawei firmware.
    pub line_end: Option<String>,
}

/// A modem family's profile: one file in `hardware/`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short id, the file's stem (`generic`, `huawei`, `quectel`).
    pub id: String,
    /// Human name of the family.
    pub name: String,
    /// USB identities.
    #[serde(default)]
    pub usb: Vec<UsbId>,
    /// Recognition from `+CGMI`/`+CGMM`.
    #[serde(default, rename = "match")]
    pub matches: Match,
    /// Daemon-side settings.
    #[serde(default)]
    pub at: AtSettings,
    /// Known misbehaviours, as prose for the log and `doctor`.
    #[serde(default)]
    pub quirks: Vec<String>,
    /// Simulator-side settings.
    #[serde(default)]
    pub sim: SimSettings,
}

/// The profiles compiled into the binary, as (file stem, TOML text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("generic", include_str!("../hardware/generic.toml")),
    ("huawei", include_str!("../hardware/huawei.toml")),
    ("quectel", include_str!("../hardware/quectel.toml")),
    ("simcom", include_str!("../hardware/simcom.toml")),
    ("sierra", include_str!("../hardware/sierra.toml")),
    ("telit", include_str!("../hardware/telit.toml")),
    ("ublox", include_str!("../hardware/ublox.toml")),
    ("zte", include_str!("../hardware/zte.toml")),
];

impl Profile {
    /// Parses one profile from TOML text; `name` is used in errors.
    pub fn parse(name: &str, text: &str) -> Result<Self, ProfileError> {
        toml::from_str(text).map_err(|source| ProfileError::Parse {
            name: name.to_string(),
            source,
        })
    }
}

/// All built-in profiles, parsed.
pub fn builtin() -> Result<Vec<Profile>, ProfileError> {
    BUILTIN.iter().map(|(n, t)| Profile::parse(n, t)).collect()
}

/// The built-in profile with this id.
pub fn builtin_profile(id: &str) -> Result<Profile, ProfileError> {
    let all = builtin()?;
    let known = all
        .iter()
        .map(|p| p.id.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    all.iter()
        .find(|p| p.id == id)
        .cloned()
        .ok_or_else(|| ProfileError::Unknown(id.to_string(), known))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse_and_ids_match_file_stems() {
        for (stem, text) in BUILTIN {
            let p = Profile::parse(stem, text).expect("builtin profile parses");
            assert_eq!(&p.id, stem);
        }
    }

    #[test]
    fn unknown_profile_names_the_known_ones() {
        let err = builtin_profile("nokia-3310").unwrap_err().to_string();
        assert!(err.contains("generic"), "{err}");
    }
}
