//! The daemon configuration: one TOML file (`/etc/smsgate/smsgate.toml`
//! by default, `smsgate run --config FILE` otherwise).
//!
//! Every key is optional and has a safe default; an unknown key is an
//! error (a typo must not silently fall back to a default). Raw TOML is
//! validated into [`Config`] once, here at the edge: the rest of the
//! daemon never sees an unchecked value. Errors name the file, the key as
//! a dotted path and the line, so an operator can fix them without reading
//! code (`/etc/x.toml: unknown key `bus.sockett` at line 3`).
//! `docs/configuration.md` documents every key; `docs/smsgate.toml` is a
//! complete example that a test parses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::router::{Limits, LimitsConfig, RoutingConfig};
use crate::store::{RetryPolicy, StoreConfig, Synchronous};

/// Where `smsgate run` looks without `--config`.
pub const DEFAULT_PATH: &str = "/etc/smsgate/smsgate.toml";

/// Largest configuration file read (a real one is a few KiB).
const MAX_FILE: u64 = 1 << 20;

/// Longest Unix socket path: `sun_path` holds 108 bytes with the NUL.
const MAX_SOCKET_PATH: usize = 107;

/// Most parts a message may be split into: the 8-bit concatenation
/// reference counts parts in one octet (TS 23.040 §9.2.3.24.1).
const MAX_PARTS: u32 = 255;

/// Why a configuration was refused. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key is unknown or has the wrong type.
    #[error("{path}: {message}", path = path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The dotted key, when it could be located.
        key: Option<String>,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// What is wrong, naming the key and the line.
        message: String,
    },
    /// A value has the right type but is not acceptable.
    #[error("{path}: `{key}`{at}: {message}", path = path.display(),
            at = line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    Invalid {
        /// The file (`<built-in>` for a config made in code).
        path: PathBuf,
        /// The dotted key.
        key: String,
        /// The 1-based line, when the key is in the file.
        line: Option<usize>,
        /// What is wrong and what would be right.
        message: String,
    },
}

impl ConfigError {
    /// The dotted key the error is about, when known.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Parse { key, .. } => key.as_deref(),
            ConfigError::Invalid { key, .. } => Some(key),
        }
    }
}

/// The whole configuration. `Config::default()` is what an empty file gives.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[bus]`: the client socket.
    pub bus: BusSection,
    /// `[store]`: the database.
    pub store: StoreSection,
    /// `[discovery]`: the watched directory of modem links.
    pub discovery: DiscoverySection,
    /// `[modems]`: settings shared by every modem.
    pub modems: ModemsSection,
    /// `[[modem]]`: modems configured by port.
    pub modem: Vec<ModemEntry>,
    /// `[routing]`: which modem sends what.
    pub routing: RoutingConfig,
    /// `[limits]`: rate limits and quotas per SIM.
    pub limits: LimitsConfig,
    /// `[retry]`: temporary send failures.
    pub retry: RetrySection,
    /// `[privacy]`: consent policy, keywords, handles (docs/privacy.md).
    pub privacy: crate::privacy::PrivacyConfig,
    /// `[retention]`: how long message text and metadata are kept.
    pub retention: crate::privacy::RetentionConfig,
}

/// `[bus]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusSection {
    /// The Unix socket clients connect to.
    pub socket: PathBuf,
    /// Group of the socket (mode 0660); `None`: the daemon's own group.
    pub group: Option<String>,
    /// User names allowed to connect (root and the daemon's user always are).
    pub allow_users: Vec<String>,
    /// Group names whose members may connect.
    pub allow_groups: Vec<String>,
    /// Most parts one message may be split into (`text_too_long` beyond).
    pub max_parts: u32,
    /// Width of the concatenation reference of multipart messages: 16
    /// (IEI 0x08, TS 23.040 §9.2.3.24.8) or 8 (IEI 0x00, §9.2.3.24.1, for
    /// old handsets that do not join 16-bit ones).
    pub concat_ref_bits: u8,
    /// Most parts waiting in the queue (`queue_full` beyond).
    pub queue_limit: u64,
}

impl Default for BusSection {
    fn default() -> Self {
        BusSection {
            socket: PathBuf::from("/run/smsgate/smsgate.sock"),
            group: None,
            allow_users: Vec::new(),
            allow_groups: Vec::new(),
            max_parts: 10,
            concat_ref_bits: 16,
            queue_limit: 100_000,
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// The SQLite database file.
    pub path: PathBuf,
    /// SQLite `synchronous`: `full` (default), `extra` or `normal`.
    pub synchronous: Synchronous,
    /// How long an incomplete multipart message waits for its other parts.
    pub reassembly_timeout_secs: u64,
    /// Cap on the database's size; writes beyond it fail as on a full disk
    /// (nothing is acknowledged, modems keep their messages). `None`: only
    /// the disk limits it.
    pub max_size_bytes: Option<u64>,
}

impl Default for StoreSection {
    fn default() -> Self {
        let store = StoreConfig::default();
        StoreSection {
            path: store.path,
            synchronous: store.synchronous,
            reassembly_timeout_secs: u64::try_from(store.reassembly_timeout_ms / 1000)
                .unwrap_or(3600),
            max_size_bytes: store.max_size_bytes,
        }
    }
}

/// `[discovery]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoverySection {
    /// Directory whose links and device nodes are modems (udev puts stable
    /// links in `/dev/smsgate/`; `smsgate sim --dir` works too).
    pub dir: PathBuf,
    /// Whether to watch `dir` at all.
    pub enabled: bool,
    /// Full rescan period, the safety net behind inotify.
    pub rescan_secs: u64,
}

impl Default for DiscoverySection {
    fn default() -> Self {
        DiscoverySection {
            dir: PathBuf::from("/dev/smsgate"),
            enabled: true,
            rescan_secs: 10,
        }
    }
}

/// `[modems]`: settings of every modem, discovered or configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModemsSection {
    /// SMSC to set on every modem (`+CSCA`); unset keeps the SIM's.
    pub smsc: Option<String>,
    /// Health probe period while a modem is ready.
    pub probe_interval_secs: u64,
    /// Period of the storage sweep (`+CMGL`), the net behind lost URCs.
    pub sweep_interval_secs: u64,
    /// How long a modem may be gone before the messages waiting for it
    /// go to other modems (a replug within this keeps them).
    pub unbind_after_secs: u64,
    /// How long a partly sent multipart message waits for its modem to
    /// come back before it fails (its remaining parts must come from the
    /// same number to be joined by the phone).
    pub stranded_after_secs: u64,
    /// How long a modem may stay unregistered (denied, searching) before
    /// it is reported in `last_error` and its polling backs off.
    pub registration_report_secs: u64,
    /// SIM PINs by ICCID (`"*"`: any SIM).
    pub pins: BTreeMap<String, String>,
}

impl Default for ModemsSection {
    fn default() -> Self {
        ModemsSection {
            smsc: None,
            probe_interval_secs: 30,
            sweep_interval_secs: 300,
            unbind_after_secs: 60,
            stranded_after_secs: 600,
            registration_report_secs: 300,
            pins: BTreeMap::new(),
        }
    }
}

/// One `[[modem]]`: a modem at a fixed port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModemEntry {
    /// The AT port.
    pub port: PathBuf,
    /// A name for logs, routing rules and pins (default: the port's file name).
    #[serde(default)]
    pub name: Option<String>,
    /// The SIM PIN of this modem.
    #[serde(default)]
    pub pin: Option<String>,
    /// Force a hardware profile instead of matching (`huawei`, `quectel`...).
    #[serde(default)]
    pub profile: Option<String>,
    /// SMSC for this modem, overriding `[modems] smsc`.
    #[serde(default)]
    pub smsc: Option<String>,
}

impl ModemEntry {
    /// The name used in logs and routing rules.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| port_name(&self.port))
    }
}

/// `[retry]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySection {
    /// After this many attempts a temporary failure becomes permanent.
    pub max_attempts: u32,
    /// Delay after the first failure; doubles after each.
    pub backoff_min_secs: u64,
    /// Longest delay.
    pub backoff_max_secs: u64,
}

impl Default for RetrySection {
    fn default() -> Self {
        let p = RetryPolicy::default();
        RetrySection {
            max_attempts: p.max_attempts,
            backoff_min_secs: u64::try_from(p.base_ms / 1000).unwrap_or(5),
            backoff_max_secs: u64::try_from(p.max_ms / 1000).unwrap_or(600),
        }
    }
}

/// The name of a modem found at `port` (its file name).
pub fn port_name(port: &Path) -> String {
    port.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| port.display().to_string())
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        use std::io::Read;
        let read_err = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        if let Ok(meta) = file.metadata() {
            // Anyone who can write the config can choose the PINs and who
            // may use the bus.
            if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o002 != 0 {
                tracing::warn!(path = %path.display(), "configuration file is writable by everyone");
            }
        }
        let mut text = String::new();
        file.take(MAX_FILE + 1)
            .read_to_string(&mut text)
            .map_err(read_err)?;
        if text.len() as u64 > MAX_FILE {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                key: None,
                line: None,
                message: format!("larger than {MAX_FILE} bytes; not a configuration file"),
            });
        }
        Config::parse(&text, path)
    }

    /// `smsgate run`'s rule: a missing *default* file means all defaults
    /// (a fresh install runs without one); any other error is an error.
    pub fn load_default(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            _ => Config::load(path),
        }
    }

    /// Parses and validates TOML `text`; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| parse_error(path, text, &e))?;
        config.check().map_err(|mut e| {
            if let ConfigError::Invalid {
                path: p, key, line, ..
            } = &mut e
            {
                *p = path.to_path_buf();
                *line = locate_key(text, key);
            }
            e
        })?;
        Ok(config)
    }

    /// Checks every value a type cannot express. Called by [`Config::parse`];
    /// call it on a config built in code too (errors name `<built-in>`).
    pub fn check(&self) -> Result<(), ConfigError> {
        let bus = &self.bus;
        let socket = bus.socket.as_os_str().len();
        absolute("bus.socket", &bus.socket)?;
        if socket > MAX_SOCKET_PATH {
            return invalid(
                "bus.socket",
                format!("{socket} bytes long; a Unix socket path has at most {MAX_SOCKET_PATH}"),
            );
        }
        if let Some(g) = &bus.group {
            account_name("bus.group", g)?;
        }
        for u in &bus.allow_users {
            account_name("bus.allow_users", u)?;
        }
        for g in &bus.allow_groups {
            account_name("bus.allow_groups", g)?;
        }
        range("bus.max_parts", bus.max_parts.into(), 1, MAX_PARTS.into())?;
        if !matches!(bus.concat_ref_bits, 8 | 16) {
            return invalid(
                "bus.concat_ref_bits",
                format!("{} is neither 8 nor 16", bus.concat_ref_bits),
            );
        }
        range("bus.queue_limit", bus.queue_limit, 1, 100_000_000)?;

        absolute("store.path", &self.store.path)?;
        range(
            "store.reassembly_timeout_secs",
            self.store.reassembly_timeout_secs,
            1,
            30 * 86_400,
        )?;

        absolute("discovery.dir", &self.discovery.dir)?;
        range("discovery.rescan_secs", self.discovery.rescan_secs, 1, 3600)?;

        let m = &self.modems;
        if let Some(smsc) = &m.smsc {
            number("modems.smsc", smsc)?;
        }
        range("modems.probe_interval_secs", m.probe_interval_secs, 1, 3600)?;
        range(
            "modems.sweep_interval_secs",
            m.sweep_interval_secs,
            1,
            86_400,
        )?;
        range("modems.unbind_after_secs", m.unbind_after_secs, 1, 86_400)?;
        range(
            "modems.registration_report_secs",
            m.registration_report_secs,
            1,
            86_400,
        )?;
        range(
            "modems.stranded_after_secs",
            m.stranded_after_secs,
            1,
            7 * 86_400,
        )?;
        for (iccid, pin) in &m.pins {
            if iccid != "*" && !is_iccid(iccid) {
                return invalid(
                    "modems.pins",
                    format!("`{iccid}` is not an ICCID (10 to 22 digits) nor \"*\""),
                );
            }
            check_pin("modems.pins", pin)?;
        }

        let mut names = BTreeSet::new();
        let mut ports = BTreeSet::new();
        let profiles = crate::hardware::builtin()
            .map(|all| all.into_iter().map(|p| p.id).collect::<Vec<_>>())
            .unwrap_or_default();
        for e in &self.modem {
            absolute("modem.port", &e.port)?;
            if !ports.insert(&e.port) {
                return invalid(
                    "modem.port",
                    format!("{} is configured twice", e.port.display()),
                );
            }
            let name = e.display_name();
            if name.is_empty() || name.chars().any(|c| c.is_control()) {
                return invalid("modem.name", format!("{name:?} is not a usable name"));
            }
            if !names.insert(name.clone()) {
                return invalid("modem.name", format!("`{name}` names two modems"));
            }
            if let Some(pin) = &e.pin {
                check_pin("modem.pin", pin)?;
            }
            if let Some(p) = &e.profile {
                if !profiles.contains(p) {
                    return invalid(
                        "modem.profile",
                        format!("unknown profile `{p}` (known: {})", profiles.join(", ")),
                    );
                }
            }
            if let Some(smsc) = &e.smsc {
                number("modem.smsc", smsc)?;
            }
        }

        range(
            "routing.sticky_days",
            self.routing.sticky_days.into(),
            0,
            3650,
        )?;
        // The router knows its own rules; its messages start with the key.
        for checked in [self.routing.validate(), self.limits.validate()] {
            if let Err(m) = checked {
                let (key, rest) = m.split_once(' ').unwrap_or((&m, ""));
                return invalid(key.trim_end_matches(':'), rest.trim().to_string());
            }
        }
        check_limits("limits", &self.limits.default)?;
        for (sim, limits) in &self.limits.sim {
            check_limits(&format!("limits.sim.{sim:?}"), limits)?;
        }

        let r = &self.retry;
        range("retry.max_attempts", r.max_attempts.into(), 1, 1000)?;
        range("retry.backoff_min_secs", r.backoff_min_secs, 1, 86_400)?;
        range(
            "retry.backoff_max_secs",
            r.backoff_max_secs,
            r.backoff_min_secs,
            7 * 86_400,
        )?;

        // The privacy layer knows its own rules; its errors name the key.
        for checked in [self.privacy.validate(), self.retention.validate()] {
            match checked {
                Ok(()) => {}
                Err(crate::privacy::PrivacyError::Config { key, message }) => {
                    return invalid(key, message)
                }
                Err(e) => return invalid("privacy", e.to_string()),
            }
        }
        for u in &self.privacy.see_numbers_users {
            account_name("privacy.see_numbers_users", u)?;
        }
        for g in &self.privacy.see_numbers_groups {
            account_name("privacy.see_numbers_groups", g)?;
        }
        Ok(())
    }

    /// The store settings.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            path: self.store.path.clone(),
            synchronous: self.store.synchronous,
            reassembly_timeout_ms: secs_ms(self.store.reassembly_timeout_secs),
            max_size_bytes: self.store.max_size_bytes,
            retry: RetryPolicy {
                base_ms: secs_ms(self.retry.backoff_min_secs),
                max_ms: secs_ms(self.retry.backoff_max_secs),
                max_attempts: self.retry.max_attempts,
            },
            ..StoreConfig::default()
        }
    }

    /// The actor settings of a modem at `port` named `name`, with the
    /// shared `[modems]` settings.
    pub fn modem_config(&self, name: &str, port: &Path) -> crate::modem::ModemConfig {
        let mut c = crate::modem::ModemConfig::new(name, port);
        c.pins = self.modems.pins.clone();
        c.smsc = self.modems.smsc.clone();
        c.probe_interval = Duration::from_secs(self.modems.probe_interval_secs);
        c.sweep_interval = Duration::from_secs(self.modems.sweep_interval_secs);
        c.registration_report_after = Duration::from_secs(self.modems.registration_report_secs);
        c
    }

    /// The actor settings of every `[[modem]]`.
    pub fn configured_modems(&self) -> Vec<crate::modem::ModemConfig> {
        self.modem
            .iter()
            .map(|e| {
                let mut c = self.modem_config(&e.display_name(), &e.port);
                if let Some(pin) = &e.pin {
                    // A per-port PIN applies to whatever SIM is inside.
                    c.pins.insert("*".into(), pin.clone());
                }
                if e.smsc.is_some() {
                    c.smsc = e.smsc.clone();
                }
                c.profile = e.profile.clone();
                c
            })
            .collect()
    }
}

fn secs_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn invalid<T>(key: &str, message: String) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid {
        path: PathBuf::from("<built-in>"),
        key: key.to_string(),
        line: None,
        message,
    })
}

fn absolute(key: &str, path: &Path) -> Result<(), ConfigError> {
    if path.is_absolute() {
        Ok(())
    } else {
        invalid(key, format!("{} is not an absolute path", path.display()))
    }
}

fn range(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        invalid(key, format!("{value} is outside {min}..={max}"))
    }
}

/// User and group names as `useradd` accepts them (portable set, at most
/// 32 characters, not starting with a digit or a dash).
fn account_name(key: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        || name.ends_with('$') && name.len() > 1;
    if ok {
        Ok(())
    } else {
        invalid(key, format!("`{name}` is not a user or group name"))
    }
}

/// A SIM PIN is 4 to 8 digits (TS 31.101 §9.1.3 / 27.007 `+CPIN`).
fn check_pin(key: &str, pin: &str) -> Result<(), ConfigError> {
    if (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        // Never echo the value: it is a secret.
        invalid(key, "a PIN is 4 to 8 digits".into())
    }
}

/// ICCIDs are up to 20 BCD digits (ITU-T E.118); some modems print a
/// trailing `F` filler, and a few print 22 with a checksum.
fn is_iccid(s: &str) -> bool {
    (10..=22).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b == b'F' || b == b'f')
}

/// A phone number: `+` and up to 20 digits (TS 23.040 §9.1.2.5 allows 20
/// address digits).
fn number(key: &str, n: &str) -> Result<(), ConfigError> {
    let digits = n.strip_prefix('+').unwrap_or(n);
    if (1..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        invalid(
            key,
            format!("`{n}` is not a phone number like \"+4917...\""),
        )
    }
}

fn check_limits(key: &str, l: &Limits) -> Result<(), ConfigError> {
    for (name, v) in [
        ("per_minute", l.per_minute),
        ("per_day", l.per_day),
        ("recipients_per_month", l.recipients_per_month),
    ] {
        if v == Some(0) {
            return invalid(
                &format!("{key}.{name}"),
                "0 would never send; leave the key out for no limit".into(),
            );
        }
    }
    if let Some([_, hi]) = l.jitter_ms {
        if hi > 600_000 {
            return invalid(
                &format!("{key}.jitter_ms"),
                format!("{hi} ms is more than the longest pause, 600000"),
            );
        }
    }
    Ok(())
}

/// Turns a toml/serde error into one that names the key and the line.
fn parse_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let raw = e.message().trim().to_string();
    // `unknown field `x`, expected one of ...`; inside a flattened table
    // (`[limits]`) serde's span covers the whole table, not the key.
    let unknown = raw
        .strip_prefix("unknown field `")
        .and_then(|r| r.split_once('`'));
    let (line, key) = match e.span() {
        Some(span) => {
            // The unknown key's own line when the span is wider than it.
            let line = unknown
                .and_then(|(field, _)| line_in_span(text, span.clone(), field))
                .unwrap_or_else(|| line_of(text, span.start));
            (Some(line), key_at(text, span))
        }
        None => (None, None),
    };
    let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
    let key = match (key, unknown) {
        (Some(k), Some((field, _))) if k.rsplit('.').next() != Some(field) => {
            Some(format!("{k}.{field}"))
        }
        (k, _) => k,
    };
    let message = match (&key, unknown) {
        (Some(k), Some((_, rest))) => {
            let expected = rest.trim_start_matches(", ");
            if expected.is_empty() {
                format!("unknown key `{k}`{at}")
            } else {
                format!("unknown key `{k}`{at} ({expected})")
            }
        }
        (Some(k), None) => format!("`{k}`{at}: {raw}"),
        (None, _) => format!("{raw}{at}"),
    };
    ConfigError::Parse {
        path: path.to_path_buf(),
        key,
        line,
        message,
    }
}

/// 1-based line inside `span` that sets `field` (bare, quoted or as the
/// first part of a dotted key): where an unknown key really is when the
/// error's span covers its whole table.
fn line_in_span(text: &str, span: std::ops::Range<usize>, field: &str) -> Option<usize> {
    let first = line_of(text, span.start);
    let last = line_of(text, span.end);
    text.lines()
        .enumerate()
        .skip(first - 1)
        .take(last + 1 - first)
        .find(|(_, l)| {
            l.split_once('=').is_some_and(|(k, _)| {
                let k = k.trim();
                let head = k.split('.').next().unwrap_or(k).trim();
                head.trim_matches(|c| c == '"' || c == '\'') == field
            })
        })
        .map(|(i, _)| i + 1)
}

/// 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()
        .get(..end)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
        + 1
}

/// The dotted key an error span points at: the span is either the key
/// itself (unknown key) or its value (wrong type), inside the table whose
/// header comes last before it.
fn key_at(text: &str, span: std::ops::Range<usize>) -> Option<String> {
    let start = span.start.min(text.len());
    let line_start = text.get(..start)?.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text
        .get(start..)?
        .find('\n')
        .map_or(text.len(), |i| start + i);
    let line = text.get(line_start..line_end)?;
    let spanned = text.get(start..span.end.min(text.len()))?.trim();
    let key = if spanned.starts_with('[') && line.trim_start().starts_with('[') {
        // A whole table is wrong (an unknown section): its header names it.
        return Some(header_name(line.trim()));
    } else if let Some((k, _)) = line
        .split_once('=')
        .filter(|(k, _)| k.len() < start - line_start)
    {
        k.trim().trim_matches('"').to_string()
    } else {
        spanned.trim_matches('"').to_string()
    };
    if key.is_empty() {
        return None;
    }
    let table = text
        .get(..line_start)?
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(header_name);
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key,
    })
}

/// `[bus]` -> `bus`, `[[modem]]` -> `modem`, `[limits.sim."89.."]` as is.
fn header_name(line: &str) -> String {
    let inner = line.split('#').next().unwrap_or(line).trim();
    inner
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim()
        .to_string()
}

/// The line where dotted `key` (`bus.socket`, `modem.pin`) is set: the
/// first line setting its last component inside a table named by the rest.
fn locate_key(text: &str, key: &str) -> Option<usize> {
    let key: String = key
        .split('.')
        .map(|c| c.split('[').next().unwrap_or(c))
        .collect::<Vec<_>>()
        .join(".");
    let key = key.as_str();
    let (table, leaf) = key.rsplit_once('.').unwrap_or(("", key));
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            current = header_name(t);
            continue;
        }
        let Some((k, _)) = t.split_once('=') else {
            continue;
        };
        let k = k.trim().trim_matches('"');
        let full = if current.is_empty() {
            k.to_string()
        } else {
            format!("{current}.{k}")
        };
        if full == key || (current == table && k == leaf) || (current == key) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/x.toml"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.bus, BusSection::default());
        assert_eq!(c.bus.socket, PathBuf::from("/run/smsgate/smsgate.sock"));
        assert_eq!(c.store.path, PathBuf::from("/var/lib/smsgate/smsgate.db"));
        assert_eq!(c.discovery.dir, PathBuf::from("/dev/smsgate"));
        assert!(c.discovery.enabled);
        assert!(c.modem.is_empty());
        assert_eq!(c.store_config().retry, RetryPolicy::default());
        Config::default().check().unwrap();
    }

    #[test]
    fn unknown_key_names_the_dotted_key_file_and_line() {
        let e = err("[bus]\nsocket = \"/run/x.sock\"\nsockett = \"/x\"\n");
        assert!(
            e.starts_with("/etc/x.toml: unknown key `bus.sockett` at line 3"),
            "{e}"
        );
        let e = err("[[modem]]\nport = \"/dev/a\"\npni = \"1234\"\n");
        assert!(e.contains("unknown key `modem.pni` at line 3"), "{e}");
        let e = err("top = 1\n");
        assert!(e.contains("unknown key `top` at line 1"), "{e}");
        let e = err("[limits.sim.\"8949\"]\nper_dya = 3\n");
        assert!(e.contains("per_dya"), "{e}");
        let e = err("[limits]\nper_dya = 3\n");
        assert!(e.contains("unknown key `limits.per_dya`"), "{e}");
    }

    #[test]
    fn privacy_and_retention_sections_are_checked() {
        let c = parse("[privacy]\npolicy = \"open\"\nsee_numbers_users = [\"alice\"]\n[retention]\ntext_days = 7\n").unwrap();
        assert_eq!(c.privacy.policy, crate::privacy::Policy::Open);
        assert_eq!(c.retention.text_days, 7);
        assert_eq!(c.bus_config().see_numbers_users, vec!["alice".to_owned()]);
        assert_eq!(
            parse("").unwrap().privacy.policy,
            crate::privacy::Policy::OptIn
        );
        let e = err("[privacy]\npolicyy = \"open\"\n");
        assert!(e.contains("privacy.policyy"), "{e}");
        let e = err("[privacy]\npolicy = \"closed\"\n");
        assert!(e.contains("privacy.policy"), "{e}");
        let e = err("[privacy]\ndefault_region = \"XX\"\n");
        assert!(e.contains("privacy.default_region"), "{e}");
        let e = err("[retention]\ntext_days = 40\nmeta_days = 30\n");
        assert!(e.contains("retention.meta_days"), "{e}");
        let e = err("[privacy]\nsee_numbers_groups = [\"bad name\"]\n");
        assert!(e.contains("privacy.see_numbers_groups"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key_and_line() {
        let e = err("[bus]\n\nmax_parts = \"ten\"\n");
        assert!(e.contains("`bus.max_parts` at line 3"), "{e}");
        let e = err("[discovery]\nenabled = 1\n");
        assert!(e.contains("`discovery.enabled` at line 2"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            ("[bus]\nsocket = \"run/x.sock\"\n", "bus.socket"),
            ("[bus]\nmax_parts = 0\n", "bus.max_parts"),
            ("[bus]\nmax_parts = 256\n", "bus.max_parts"),
            ("[bus]\nconcat_ref_bits = 12\n", "bus.concat_ref_bits"),
            ("[bus]\ngroup = \"bad group\"\n", "bus.group"),
            ("[bus]\nallow_users = [\"ok\", \"1x\"]\n", "bus.allow_users"),
            ("[store]\npath = \"db.sqlite\"\n", "store.path"),
            ("[modems]\npins = { \"*\" = \"12\" }\n", "modems.pins"),
            ("[modems]\npins = { \"abc\" = \"1234\" }\n", "modems.pins"),
            ("[modems]\nsmsc = \"+49 x\"\n", "modems.smsc"),
            ("[modems]\nprobe_interval_secs = 0\n", "modems.probe_interval_secs"),
            ("[modems]\nunbind_after_secs = 0\n", "modems.unbind_after_secs"),
            (
                "[modems]\nstranded_after_secs = 999999999\n",
                "modems.stranded_after_secs",
            ),
            ("[[modem]]\nport = \"ttyUSB2\"\n", "modem.port"),
            ("[[modem]]\nport = \"/dev/a\"\npin = \"12a4\"\n", "modem.pin"),
            ("[[modem]]\nport = \"/dev/a\"\nprofile = \"nokia\"\n", "modem.profile"),
            (
                "[[modem]]\nport = \"/dev/a\"\n[[modem]]\nport = \"/dev/a\"\n",
                "modem.port",
            ),
            (
                "[[modem]]\nport = \"/dev/a\"\nname = \"x\"\n[[modem]]\nport = \"/dev/b\"\nname = \"x\"\n",
                "modem.name",
            ),
            ("[[routing.rule]]\nprefix = \"49x\"\nmodems = [\"a\"]\n", "routing.rule[0].prefix"),
            ("[[routing.rule]]\nprefix = \"+49\"\nmodems = []\n", "routing.rule[0].modems"),
            ("[limits]\njitter_ms = [0, 600001]\n", "limits.jitter_ms"),
            ("[limits]\nper_day = 0\n", "limits.per_day"),
            ("[limits]\njitter_ms = [500, 0]\n", "limits.jitter_ms"),
            ("[retry]\nbackoff_min_secs = 60\nbackoff_max_secs = 10\n", "retry.backoff_max_secs"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.key(), Some(key), "{text}: {e}");
            let s = e.to_string();
            assert!(s.starts_with("/etc/x.toml: `"), "{s}");
            assert!(s.contains(key), "{s}");
        }
    }

    #[test]
    fn bad_value_error_has_the_line() {
        let e = err("# comment\n[bus]\nallow_users = []\nmax_parts = 0\n");
        assert!(e.contains("`bus.max_parts` at line 4"), "{e}");
    }

    #[test]
    fn pins_are_never_echoed() {
        let e = err("[[modem]]\nport = \"/dev/a\"\npin = \"98765432109\"\n");
        assert!(!e.contains("98765432109"), "{e}");
    }

    #[test]
    fn modems_get_the_shared_settings_and_their_own() {
        let c = parse(
            "[modems]\nsmsc = \"+491720000000\"\nprobe_interval_secs = 7\nregistration_report_secs = 9\npins = { \"*\" = \"0000\" }\n\
             [[modem]]\nport = \"/dev/ttyUSB2\"\npin = \"1234\"\nprofile = \"huawei\"\n\
             [[modem]]\nport = \"/dev/ttyUSB5\"\nname = \"right\"\nsmsc = \"+15550000\"\n",
        )
        .unwrap();
        let m = c.configured_modems();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name, "ttyUSB2");
        assert_eq!(m[0].pins.get("*").map(String::as_str), Some("1234"));
        assert_eq!(m[0].profile.as_deref(), Some("huawei"));
        assert_eq!(m[0].smsc.as_deref(), Some("+491720000000"));
        assert_eq!(m[0].probe_interval, Duration::from_secs(7));
        assert_eq!(m[0].registration_report_after, Duration::from_secs(9));
        assert_eq!(m[1].name, "right");
        assert_eq!(m[1].pins.get("*").map(String::as_str), Some("0000"));
        assert_eq!(m[1].smsc.as_deref(), Some("+15550000"));
    }

    #[test]
    fn store_settings_carry_over() {
        let c = parse(
            "[store]\npath = \"/tmp/s.db\"\nsynchronous = \"normal\"\nreassembly_timeout_secs = 60\n\
             [retry]\nmax_attempts = 3\nbackoff_min_secs = 2\nbackoff_max_secs = 20\n",
        )
        .unwrap();
        let s = c.store_config();
        assert_eq!(s.path, PathBuf::from("/tmp/s.db"));
        assert_eq!(s.synchronous, Synchronous::Normal);
        assert_eq!(s.reassembly_timeout_ms, 60_000);
        assert_eq!(
            s.retry,
            RetryPolicy {
                base_ms: 2000,
                max_ms: 20_000,
                max_attempts: 3
            }
        );
    }

    #[test]
    fn routing_and_limits_parse() {
        let c = parse(
            "[routing]\nsticky = false\n[[routing.rule]]\nprefix = \"+49\"\nmodems = [\"left\"]\n\
             [limits]\nper_minute = 10\njitter_ms = [0, 500]\n[limits.sim.\"8949000000000000001\"]\nper_day = 100\n",
        )
        .unwrap();
        assert!(!c.routing.sticky);
        assert_eq!(c.routing.rule.len(), 1);
        assert_eq!(c.limits.default.per_minute, Some(10));
        assert_eq!(c.limits.default.jitter_ms, Some([0, 500]));
        assert_eq!(
            c.limits
                .sim
                .get("8949000000000000001")
                .and_then(|l| l.per_day),
            Some(100)
        );
    }

    #[test]
    fn the_documented_example_parses_and_sets_every_section() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/smsgate.toml");
        let c = Config::load(&path).unwrap();
        assert!(!c.modem.is_empty());
        assert!(!c.routing.rule.is_empty());
        assert!(!c.limits.sim.is_empty());
        assert!(!c.modems.pins.is_empty());
    }

    #[test]
    fn missing_default_file_is_defaults_but_missing_explicit_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        assert!(Config::load_default(&missing).is_ok());
        let e = Config::load(&missing).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        assert!(e.to_string().contains("none.toml"));
    }

    #[test]
    fn oversized_and_non_utf8_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; (MAX_FILE + 10) as usize]).unwrap();
        assert!(Config::load(&big)
            .unwrap_err()
            .to_string()
            .contains("larger than"));
        let bin = dir.path().join("bin.toml");
        std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
        assert!(matches!(Config::load(&bin), Err(ConfigError::Read { .. })));
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "[",
            "=",
            "[bus\n",
            "a.b.c = [",
            "\"",
            "[[modem]]\n",
            "[bus]\n[bus]\n",
        ] {
            assert!(parse(text).is_err(), "{text:?}");
        }
    }
}
