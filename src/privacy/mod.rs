//! Privacy building blocks: consent, pseudonymous handles, data minimisation.
//!
//! smsgate relays SMS into a connected network. The people on the SMS side
//! did not choose that network, so by default they must join first
//! ([`consent`]), STOP always works, the network sees a stable pseudonym
//! instead of their number ([`handle`]), logs mask numbers ([`mask`]), and
//! what is stored is purged on a schedule or on request ([`retention`],
//! with the store side in `store::privacy`).
//!
//! Everything here is pure (no I/O besides the handle secret file) and
//! takes the time as an argument; the daemon wires it between the store and
//! the bus. `docs/privacy.md` is the operator's and data-protection
//! officer's view of the same rules.
#![warn(missing_docs)]

pub mod consent;
pub mod gate;
pub mod handle;
pub mod keywords;
pub mod mask;
pub mod number;
pub mod retention;

use std::path::PathBuf;

use serde::Deserialize;

pub use consent::{
    Consent, ConsentRecord, ConsentState, Decision, Inbound, OptedOut, Reply, ReplyKind,
};
pub use gate::{ConsentPage, ConsentQuery, Forgotten, Gate, InboundOutcome, SendRefused};
pub use handle::{HandleKey, Handles, Target};
pub use keywords::{Keyword, Keywords};
pub use mask::mask;
pub use number::{normalize, warm_up, Region};
pub use retention::{RetentionConfig, RetentionPlan};

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Who gets relayed to the bus (`[privacy] policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Only senders who joined (default): a stranger's first message is
    /// held and they are told how to join.
    #[default]
    OptIn,
    /// Everyone is relayed; STOP is still honoured.
    Open,
    /// Only numbers listed in `allowlist`; STOP is still honoured.
    Allowlist,
}

impl Policy {
    /// The name used in the configuration file.
    pub fn as_str(&self) -> &'static str {
        match self {
            Policy::OptIn => "opt-in",
            Policy::Open => "open",
            Policy::Allowlist => "allowlist",
        }
    }
}

/// The `[privacy]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Who is relayed (default `opt-in`).
    pub policy: Policy,
    /// ISO 3166 region for numbers written without `+` (e.g. `"DE"`);
    /// without it only international numbers are accepted.
    pub default_region: Option<String>,
    /// Numbers relayed under `policy = "allowlist"` (any format
    /// [`normalize`] accepts).
    pub allowlist: Vec<String>,
    /// Messages that join (whole trimmed message, any case).
    pub join_keywords: Vec<String>,
    /// Messages that stop.
    pub stop_keywords: Vec<String>,
    /// Messages that ask for help and what is stored.
    pub help_keywords: Vec<String>,
    /// How long a stranger's messages are held waiting for JOIN (hours,
    /// default 72); deleted afterwards.
    pub hold_hours: u32,
    /// At most one join explanation per number per this many hours
    /// (default 24).
    pub explain_every_hours: u32,
    /// The operator's text at the start of the HELP reply (who runs this
    /// gateway and how to reach them).
    pub help_text: String,
    /// Local users whose bus clients see numbers instead of handles (root
    /// and the daemon's own user always do).
    pub see_numbers_users: Vec<String>,
    /// Local groups whose members' bus clients see numbers.
    pub see_numbers_groups: Vec<String>,
    /// Where the handle secret lives (default: next to the store,
    /// `handle.key` in the state directory).
    pub secret_file: Option<PathBuf>,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            policy: Policy::OptIn,
            default_region: None,
            allowlist: Vec::new(),
            join_keywords: keywords::DEFAULT_JOIN
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            stop_keywords: keywords::DEFAULT_STOP
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            help_keywords: keywords::DEFAULT_HELP
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            hold_hours: 72,
            explain_every_hours: 24,
            help_text:
                "This number relays SMS to a chat network run by the operator of this gateway."
                    .to_owned(),
            see_numbers_users: Vec::new(),
            see_numbers_groups: Vec::new(),
            secret_file: None,
        }
    }
}

impl PrivacyConfig {
    /// Checks what serde cannot: regions, keyword lists, allowlisted
    /// numbers. The daemon calls it when loading the configuration.
    pub fn validate(&self) -> Result<(), PrivacyError> {
        let region = Region::parse(self.default_region.as_deref())?;
        Keywords::from_config(self)?;
        for n in &self.allowlist {
            normalize(n, region).map_err(|e| PrivacyError::Config {
                key: "privacy.allowlist",
                message: e.to_string(),
            })?;
        }
        if self.hold_hours == 0 {
            return Err(PrivacyError::Config {
                key: "privacy.hold_hours",
                message: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// The hold period in milliseconds.
    pub fn hold_ms(&self) -> i64 {
        i64::from(self.hold_hours) * HOUR_MS
    }

    /// The explanation rate limit in milliseconds.
    pub fn explain_every_ms(&self) -> i64 {
        i64::from(self.explain_every_hours) * HOUR_MS
    }
}

/// Everything that can go wrong in the privacy layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivacyError {
    /// Not a phone number (or not a valid one for its region).
    #[error("invalid phone number {input:?}: {reason}")]
    InvalidNumber {
        /// What was given (capped, for the message).
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// A handle that is not of the form `sms:<16 base32 chars>`.
    #[error("invalid handle {0:?}: expected sms: followed by 16 lowercase base32 characters")]
    InvalidHandle(String),
    /// A well-formed handle no number is known for (never seen, or forgotten).
    #[error("unknown handle {0}")]
    UnknownHandle(String),
    /// A configuration value is wrong.
    #[error("invalid configuration key {key}: {message}")]
    Config {
        /// The key, e.g. `privacy.default_region`.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The handle secret file is unusable.
    #[error("handle secret {path}: {message}")]
    Secret {
        /// The secret file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// Reading or writing the handle secret failed.
    #[error("handle secret {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
