//! How long things are kept (`[retention]`), turned into cut-off times for
//! the store's purge.

use serde::Deserialize;

use super::{PrivacyConfig, DAY_MS};
pub use crate::store::RetentionPlan;

/// Messages per kind handled by one purge call.
pub const PURGE_BATCH: u32 = 5_000;

/// The `[retention]` section of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days message text is kept (default 30).
    pub text_days: u32,
    /// Days message metadata (who, when, which modem, delivery state) is
    /// kept (default 365).
    pub meta_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            text_days: 30,
            meta_days: 365,
        }
    }
}

impl RetentionConfig {
    /// Text cannot outlive its message row:
    /// `text_days` must not exceed `meta_days`, and both must be at least 1.
    pub fn validate(&self) -> Result<(), super::PrivacyError> {
        let err = |key, message: &str| super::PrivacyError::Config {
            key,
            message: message.to_owned(),
        };
        if self.text_days == 0 {
            return Err(err("retention.text_days", "must be at least 1"));
        }
        if self.meta_days < self.text_days {
            return Err(err(
                "retention.meta_days",
                "must be at least retention.text_days (text lives inside the message row)",
            ));
        }
        Ok(())
    }

    /// The cut-offs for a purge at `now_ms`.
    pub fn plan(&self, privacy: &PrivacyConfig, now_ms: i64) -> RetentionPlan {
        let days = |d: u32| now_ms.saturating_sub(i64::from(d).saturating_mul(DAY_MS));
        // A pending record is needed while its messages are held and while
        // it rate-limits the next explanation.
        let pending = privacy.hold_ms().max(privacy.explain_every_ms());
        RetentionPlan {
            now_ms,
            text_before_ms: days(self.text_days),
            meta_before_ms: days(self.meta_days),
            pending_before_ms: now_ms.saturating_sub(pending),
            batch: PURGE_BATCH,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_cutoffs() {
        let r = RetentionConfig::default();
        assert_eq!((r.text_days, r.meta_days), (30, 365));
        let now = 1_000 * DAY_MS;
        let p = r.plan(&PrivacyConfig::default(), now);
        assert_eq!(p.text_before_ms, 970 * DAY_MS);
        assert_eq!(p.meta_before_ms, 635 * DAY_MS);
        assert_eq!(p.pending_before_ms, now - 72 * super::super::HOUR_MS);
        assert_eq!(p.now_ms, now);
    }

    #[test]
    fn validation() {
        assert!(RetentionConfig::default().validate().is_ok());
        let bad = RetentionConfig {
            text_days: 40,
            meta_days: 30,
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("meta_days"));
        let zero = RetentionConfig {
            text_days: 0,
            meta_days: 30,
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn toml_rejects_unknown_keys() {
        let r: RetentionConfig = toml::from_str("text_days = 7").unwrap();
        assert_eq!((r.text_days, r.meta_days), (7, 365));
        assert!(toml::from_str::<RetentionConfig>("text_dayz = 7").is_err());
    }
}
