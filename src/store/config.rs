//! Store settings (the `[store]` section of the daemon config).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// SQLite `synchronous` level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync at every commit: a committed transaction survives power loss.
    /// The default, and the only level under which invariant 1 holds
    /// against power loss.
    #[default]
    Full,
    /// fsync of the WAL only at checkpoints: survives a process crash, but
    /// the last commits may be lost on power loss.
    Normal,
    /// Like `Full`, plus an fsync of the directory after a WAL reset.
    Extra,
}

impl Synchronous {
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
            Synchronous::Extra => "EXTRA",
        }
    }
}

/// Retry schedule for temporary send failures: exponential backoff
/// `base * 2^(attempt-1)` capped at `max`, and a cap on attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Delay after the first failure (ms).
    pub base_ms: i64,
    /// Longest delay (ms).
    pub max_ms: i64,
    /// After this many attempts a temporary failure becomes permanent.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_ms: 5_000,
            max_ms: 600_000,
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempts + 1`, after `attempts` tries.
    pub fn delay_ms(&self, attempts: u32) -> i64 {
        let shift = attempts.saturating_sub(1).min(30);
        self.base_ms
            .max(0)
            .saturating_mul(1_i64 << shift)
            .min(self.max_ms.max(0))
    }
}

/// Store settings. Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The database file.
    pub path: PathBuf,
    /// SQLite `synchronous` level (default `full`).
    pub synchronous: Synchronous,
    /// How long to wait for a lock held by another connection (ms).
    pub busy_timeout_ms: u64,
    /// Requests that may wait for the store thread; senders wait (async)
    /// when it is full, which is the back-pressure.
    pub queue_capacity: usize,
    /// Most requests grouped into one transaction.
    pub max_batch: usize,
    /// Cap on the database size (`PRAGMA max_page_count`); beyond it writes
    /// fail as "full" instead of filling the disk.
    pub max_size_bytes: Option<u64>,
    /// Retry schedule for temporary send failures.
    pub retry: RetryPolicy,
    /// How long an incomplete multipart message waits for a further part
    /// before it is handed on as a flagged partial message (ms).
    pub reassembly_timeout_ms: i64,
    /// How far back a status report may match a sent part (ms). TP-MR wraps
    /// at 256, so the newest matching part inside the window wins.
    pub report_window_ms: i64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: PathBuf::from("/var/lib/smsgate/smsgate.db"),
            synchronous: Synchronous::Full,
            busy_timeout_ms: 5_000,
            queue_capacity: 1024,
            max_batch: 512,
            max_size_bytes: None,
            retry: RetryPolicy::default(),
            reassembly_timeout_ms: 3_600_000,
            report_window_ms: 3 * 86_400_000,
        }
    }
}

impl StoreConfig {
    /// Defaults with the database at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            path: path.into(),
            ..StoreConfig::default()
        }
    }

    pub(crate) fn busy_timeout(&self) -> Duration {
        Duration::from_millis(self.busy_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            base_ms: 1_000,
            max_ms: 5_000,
            max_attempts: 9,
        };
        let got: Vec<i64> = (0..6).map(|a| p.delay_ms(a)).collect();
        assert_eq!(got, [1_000, 1_000, 2_000, 4_000, 5_000, 5_000]);
        assert_eq!(p.delay_ms(u32::MAX), 5_000);
    }

    #[test]
    fn config_reads_from_toml_and_rejects_unknown_keys() {
        let c: StoreConfig = toml::from_str(
            "path = \"/tmp/x.db\"\nsynchronous = \"normal\"\n[retry]\nmax_attempts = 3\n",
        )
        .unwrap();
        assert_eq!(c.path, PathBuf::from("/tmp/x.db"));
        assert_eq!(c.synchronous, Synchronous::Normal);
        assert_eq!(c.retry.max_attempts, 3);
        assert_eq!(c.retry.base_ms, RetryPolicy::default().base_ms);
        assert!(toml::from_str::<StoreConfig>("synchronus = \"full\"").is_err());
    }
}
