//! The simulator's view of a profile: the `[sim]` section of a
//! `hardware/*.toml` file with every missing key filled from the generic
//! defaults, validated once so that the command interpreter never has to.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::hardware::Profile;

use super::storage::Mem;

/// `+CNMI` parameters, TS 27.005 §3.4.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cnmi {
    /// `<mode>`: 0 buffer indications in the TA, 1/2 forward them.
    pub mode: u8,
    /// `<mt>`: how SMS-DELIVERs are indicated.
    pub mt: u8,
    /// `<bm>`: cell broadcast (accepted, never used).
    pub bm: u8,
    /// `<ds>`: how SMS-STATUS-REPORTs are indicated.
    pub ds: u8,
    /// `<bfr>`: what happens to buffered indications when `<mode>` leaves 0.
    pub bfr: u8,
}

impl Cnmi {
    /// The highest value each parameter takes (`+CNMI=?`).
    pub const MAX: [u8; 5] = [2, 3, 3, 2, 1];

    /// Parses `mode,mt,bm,ds,bfr` (missing trailing values are 0).
    pub fn parse(text: &str) -> Option<Self> {
        let mut v = [0u8; 5];
        for (i, part) in text.split(',').enumerate() {
            let slot = v.get_mut(i)?;
            let n: u8 = part.trim().parse().ok()?;
            if n > *Self::MAX.get(i)? {
                return None;
            }
            *slot = n;
        }
        Some(Self::from_array(v))
    }

    /// From the five values in order.
    pub fn from_array(v: [u8; 5]) -> Self {
        Self {
            mode: v[0],
            mt: v[1],
            bm: v[2],
            ds: v[3],
            bfr: v[4],
        }
    }

    /// The five values in order.
    pub fn to_array(self) -> [u8; 5] {
        [self.mode, self.mt, self.bm, self.ds, self.bfr]
    }
}

/// Everything the simulator takes from a profile, with defaults applied.
#[derive(Debug, Clone)]
pub(crate) struct SimConfig {
    pub manufacturer: String,
    pub model: String,
    pub revision: String,
    pub ati: Vec<String>,
    pub iccid_commands: BTreeMap<String, String>,
    /// The profile's vendor reset (`[at] reset`, e.g. `!RESET`, `#REBOOT`)
    /// as a command key, so the daemon's recovery ladder gets a reboot
    /// from the simulator just as from the real module.
    pub reset_command: Option<String>,
    pub boot_urcs: Vec<String>,
    pub ready_urcs: Vec<String>,
    pub sms_ready: Duration,
    pub periodic_urcs: Vec<String>,
    pub periodic: Option<Duration>,
    pub unknown_reply: String,
    pub sm_capacity: usize,
    pub me_capacity: usize,
    pub sr_capacity: usize,
    pub boot: Duration,
    pub responses: BTreeMap<String, Vec<String>>,
    pub unsupported: Vec<String>,
    pub index_base: usize,
    pub default_storage: Mem,
    pub status_report_storage: Mem,
    pub cnmi_default: Cnmi,
    pub access_technology: Option<u8>,
    pub rssi: u8,
    pub line_end: String,
}

/// Storage capacities are capped so that a typo in a profile cannot make the
/// simulator allocate gigabytes (real SIMs hold 10..=255 messages).
const MAX_CAPACITY: usize = 1000;

impl SimConfig {
    /// The effective settings of `profile` (generic defaults for what it
    /// leaves out; out-of-range values fall back to the default, logged).
    pub fn from_profile(profile: &Profile) -> Self {
        let s = &profile.sim;
        let mem = |v: &Option<String>, dflt: Mem| {
            v.as_deref()
                .map(|name| {
                    Mem::parse(name).unwrap_or_else(|| {
                        tracing::warn!(profile = %profile.id, storage = name, "unknown storage in profile, using {}", dflt.name());
                        dflt
                    })
                })
                .unwrap_or(dflt)
        };
        let cnmi_default = s
            .cnmi_default
            .as_deref()
            .and_then(|c| {
                let parsed = Cnmi::parse(c);
                if parsed.is_none() {
                    tracing::warn!(profile = %profile.id, cnmi = c, "bad cnmi_default in profile");
                }
                parsed
            })
            .unwrap_or(Cnmi::from_array([2, 1, 0, 0, 0]));
        let manufacturer = s.manufacturer.clone().unwrap_or_else(|| "smsgate".into());
        let model = s.model.clone().unwrap_or_else(|| "SIM-GENERIC".into());
        let revision = s.revision.clone().unwrap_or_else(|| "1.0".into());
        let ati = if s.ati.is_empty() {
            vec![
                "{manufacturer}".to_string(),
                "{model}".to_string(),
                "Revision: {revision}".to_string(),
            ]
        } else {
            s.ati.clone()
        };
        let upper = |m: &BTreeMap<String, Vec<String>>| {
            m.iter()
                .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        Self {
            manufacturer,
            model,
            revision,
            ati,
            iccid_commands: s
                .iccid_commands
                .iter()
                .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
                .collect(),
            reset_command: profile
                .at
                .reset
                .as_deref()
                .map(|r| r.trim().to_ascii_uppercase())
                .and_then(|r| r.strip_prefix("AT").map(str::to_owned))
                .filter(|r| !r.is_empty() && !r.starts_with("+CFUN")),
            boot_urcs: s.boot_urcs.clone(),
            ready_urcs: s.ready_urcs.clone(),
            sms_ready: Duration::from_secs(s.sms_ready_secs.unwrap_or(0).min(600)),
            periodic_urcs: s.periodic_urcs.clone(),
            periodic: s
                .periodic_secs
                .filter(|n| *n > 0 && !s.periodic_urcs.is_empty())
                .map(Duration::from_secs),
            unknown_reply: s.unknown_reply.clone().unwrap_or_else(|| "ERROR".into()),
            sm_capacity: s.sm_capacity.unwrap_or(30).clamp(1, MAX_CAPACITY),
            me_capacity: s.me_capacity.unwrap_or(100).clamp(1, MAX_CAPACITY),
            sr_capacity: s.sr_capacity.unwrap_or(20).clamp(1, MAX_CAPACITY),
            boot: Duration::from_secs(s.boot_secs.unwrap_or(3).min(600)),
            responses: upper(&s.responses),
            unsupported: s
                .unsupported
                .iter()
                .map(|c| c.to_ascii_uppercase())
                .collect(),
            index_base: s.index_base.unwrap_or(1).min(1),
            default_storage: mem(&s.default_storage, Mem::Sm),
            status_report_storage: mem(&s.status_report_storage, Mem::Sr),
            cnmi_default,
            access_technology: s.access_technology.filter(|a| *a <= 13),
            rssi: s.rssi.unwrap_or(21).min(31),
            line_end: match s.line_end.as_deref() {
                Some("\r\r\n") => "\r\r\n".into(),
                _ => "\r\n".into(),
            },
        }
    }
}
