//! The consent rules: what happens to an inbound SMS, and whether the bus
//! may send to a number. Pure: the caller passes the stored record and the
//! time, and stores the [`Decision`]'s outcome (`Store::set_consent`,
//! `Store::hold_inbound`, `Store::consent_explained`,
//! `Store::delete_inbound`) and sends its [`Reply`].
//!
//! | message from            | opt-in                 | open     | allowlist (listed / not) |
//! |-------------------------|------------------------|----------|--------------------------|
//! | STOP word               | stop + confirm         | same     | same / same              |
//! | HELP word               | help reply             | same     | same / same              |
//! | JOIN word               | join + confirm+release | same     | same / drop              |
//! | text, joined            | relay                  | relay    | relay / drop             |
//! | text, never joined      | hold (+ explain)       | relay    | relay / drop             |
//! | text, stopped           | hold (+ explain)       | hold (+) | hold (+) / drop          |
//!
//! STOP always works, for anyone, under every policy. Keyword messages are
//! control messages: they are never relayed (the caller deletes them).

use std::collections::HashSet;

use super::keywords::{Keyword, Keywords};
use super::number::{normalize, Region};
use super::retention::RetentionConfig;
use super::{Policy, PrivacyConfig, PrivacyError};
pub use crate::store::{ConsentRecord, ConsentState};

/// An inbound message as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The sender, E.164.
    pub number: &'a str,
    /// The text (empty for 8-bit data).
    pub text: &'a str,
}

/// Why a reply is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// How to join and what happens to their data (rate-limited).
    Explain,
    /// JOIN confirmed.
    Joined,
    /// STOP confirmed.
    Stopped,
    /// HELP/INFO answered.
    Help,
}

/// An SMS to send back to the sender, through the modem the message came
/// in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Why.
    pub kind: ReplyKind,
    /// The text.
    pub text: String,
}

/// What to do with one inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Hand it to the bus.
    Relay,
    /// Keep it off the bus until `until_ms`; released if the sender joins
    /// by then, deleted otherwise. With `explain`, send it and record it
    /// (`Store::consent_explained`).
    Hold {
        /// End of the hold.
        until_ms: i64,
        /// The join explanation, unless one was sent recently.
        explain: Option<Reply>,
    },
    /// Not for the bus and not kept (delete it): the policy refuses the
    /// sender.
    Drop {
        /// For the log.
        reason: &'static str,
    },
    /// A JOIN or STOP: store the change (which releases or deletes held
    /// messages), send the confirmation, delete the keyword message.
    Change {
        /// [`ConsentState::Joined`] or [`ConsentState::Stopped`].
        state: ConsentState,
        /// The keyword kind.
        keyword: Keyword,
        /// The confirmation; a repeated STOP is confirmed again (people
        /// resend it when unsure it worked).
        reply: Reply,
    },
    /// A HELP: send the reply, delete the keyword message.
    Help {
        /// The reply.
        reply: Reply,
    },
}

/// The sender may not be sent to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{handle} opted out (STOP) and may not be sent to until they send JOIN")]
pub struct OptedOut {
    /// The recipient's handle (never the number: this error reaches bus
    /// clients).
    pub handle: String,
}

impl OptedOut {
    /// The bus error code.
    pub const CODE: &'static str = "opted_out";
}

/// The consent rules, built from the configuration.
#[derive(Debug, Clone)]
pub struct Consent {
    policy: Policy,
    keywords: Keywords,
    allowlist: HashSet<String>,
    hold_ms: i64,
    explain_every_ms: i64,
    texts: Texts,
}

#[derive(Debug, Clone)]
struct Texts {
    explain: String,
    joined: String,
    stopped: String,
    help: String,
}

impl Consent {
    /// Builds the rules; fails on a bad region, keyword list or allowlisted
    /// number.
    pub fn new(
        privacy: &PrivacyConfig,
        retention: &RetentionConfig,
    ) -> Result<Consent, PrivacyError> {
        privacy.validate()?;
        retention.validate()?;
        let region = Region::parse(privacy.default_region.as_deref())?;
        let keywords = Keywords::from_config(privacy)?;
        let allowlist = privacy
            .allowlist
            .iter()
            .map(|n| normalize(n, region))
            .collect::<Result<_, _>>()?;
        let texts = Texts::new(privacy, retention, &keywords);
        Ok(Consent {
            policy: privacy.policy,
            keywords,
            allowlist,
            hold_ms: privacy.hold_ms(),
            explain_every_ms: privacy.explain_every_ms(),
            texts,
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The keyword matcher.
    pub fn keywords(&self) -> &Keywords {
        &self.keywords
    }

    /// Decides what happens to `msg`, given the sender's stored record.
    pub fn decide(
        &self,
        msg: &Inbound<'_>,
        record: Option<&ConsentRecord>,
        now_ms: i64,
    ) -> Decision {
        let state = record.map(|r| &r.state);
        let listed = self.policy != Policy::Allowlist || self.allowlist.contains(msg.number);
        match self.keywords.classify(msg.text) {
            Some(Keyword::Stop) => Decision::Change {
                state: ConsentState::Stopped,
                keyword: Keyword::Stop,
                reply: self.reply(ReplyKind::Stopped),
            },
            Some(Keyword::Help) => Decision::Help {
                reply: self.reply(ReplyKind::Help),
            },
            Some(Keyword::Join) if listed => Decision::Change {
                state: ConsentState::Joined,
                keyword: Keyword::Join,
                reply: self.reply(ReplyKind::Joined),
            },
            Some(Keyword::Join) => Decision::Drop {
                reason: "JOIN from a number not on the allowlist",
            },
            None if !listed => Decision::Drop {
                reason: "sender not on the allowlist",
            },
            None => {
                let relay = match state {
                    Some(ConsentState::Joined) => true,
                    Some(ConsentState::Stopped) => false,
                    _ => self.policy != Policy::OptIn,
                };
                if relay {
                    return Decision::Relay;
                }
                let explained = record.and_then(|r| r.explained_ms);
                let due = explained.map_or(true, |at| {
                    now_ms.saturating_sub(at) >= self.explain_every_ms
                });
                Decision::Hold {
                    until_ms: now_ms.saturating_add(self.hold_ms),
                    explain: due.then(|| self.reply(ReplyKind::Explain)),
                }
            }
        }
    }

    /// Whether the bus may send to a number with this record: not after a
    /// STOP (error code `opted_out`).
    pub fn may_send(&self, handle: &str, record: Option<&ConsentRecord>) -> Result<(), OptedOut> {
        match record.map(|r| &r.state) {
            Some(ConsentState::Stopped) => Err(OptedOut {
                handle: handle.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// The reply text of a kind.
    pub fn reply(&self, kind: ReplyKind) -> Reply {
        let text = match kind {
            ReplyKind::Explain => &self.texts.explain,
            ReplyKind::Joined => &self.texts.joined,
            ReplyKind::Stopped => &self.texts.stopped,
            ReplyKind::Help => &self.texts.help,
        };
        Reply {
            kind,
            text: text.clone(),
        }
    }
}

impl Texts {
    fn new(p: &PrivacyConfig, r: &RetentionConfig, k: &Keywords) -> Texts {
        let (join, stop) = (k.join_word(), k.stop_word());
        let hours = p.hold_hours;
        let stored = format!(
            "We store your number, your messages (text {} days, date and sender {} days) and your \
             {join}/{stop} choice.",
            r.text_days, r.meta_days
        );
        let help_word = p.help_keywords.first().map(|w| w.trim()).unwrap_or("");
        let help_hint = if help_word.is_empty() {
            String::new()
        } else {
            format!(" {help_word}: info.")
        };
        Texts {
            explain: format!(
                "This number relays SMS to a chat network. Your message is held, not delivered. \
                 Reply {join} within {hours}h to deliver it and join, {stop} to opt out.{help_hint}"
            ),
            joined: format!(
                "You joined: your messages are now relayed to the chat network. {stop} to leave \
                 at any time.{help_hint}"
            ),
            stopped: format!(
                "You opted out: nothing more is relayed or sent to you. Reply {join} to come back."
            ),
            help: format!(
                "{} {stored} {join} to join, {stop} to opt out.",
                p.help_text.trim()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::HOUR_MS;

    const ME: &str = "+491711234567";

    fn rules(policy: Policy) -> Consent {
        let config = PrivacyConfig {
            policy,
            allowlist: vec!["+33612345678".into()],
            help_text: "Run by the Example Club, contact@example.org.".into(),
            ..PrivacyConfig::default()
        };
        Consent::new(&config, &RetentionConfig::default()).unwrap()
    }

    fn record(state: ConsentState, explained_ms: Option<i64>) -> ConsentRecord {
        ConsentRecord {
            number: ME.into(),
            handle: "sms:x".into(),
            state,
            since_ms: 0,
            keyword: None,
            modem: None,
            explained_ms,
        }
    }

    fn msg(text: &str) -> Inbound<'_> {
        Inbound { number: ME, text }
    }

    #[test]
    fn opt_in_holds_strangers_and_explains_once_per_period() {
        let c = rules(Policy::OptIn);
        let now = 1_000 * HOUR_MS;
        let d = c.decide(&msg("hello"), None, now);
        let Decision::Hold {
            until_ms,
            explain: Some(reply),
        } = d
        else {
            panic!("{d:?}")
        };
        assert_eq!(until_ms, now + 72 * HOUR_MS);
        assert_eq!(reply.kind, ReplyKind::Explain);
        assert!(
            reply.text.contains("JOIN") && reply.text.contains("STOP"),
            "{}",
            reply.text
        );
        let told = record(ConsentState::Pending, Some(now));
        let later = now + 23 * HOUR_MS;
        assert!(matches!(
            c.decide(&msg("again"), Some(&told), later),
            Decision::Hold { explain: None, .. }
        ));
        assert!(matches!(
            c.decide(&msg("again"), Some(&told), now + 24 * HOUR_MS),
            Decision::Hold {
                explain: Some(_),
                ..
            }
        ));
        let joined = record(ConsentState::Joined, Some(now));
        assert_eq!(c.decide(&msg("hi"), Some(&joined), later), Decision::Relay);
    }

    #[test]
    fn keywords_change_consent_under_every_policy() {
        for policy in [Policy::OptIn, Policy::Open, Policy::Allowlist] {
            let c = rules(policy);
            let stop = c.decide(&msg(" Stop "), None, 0);
            assert!(
                matches!(&stop, Decision::Change { state: ConsentState::Stopped, reply, .. }
                    if reply.kind == ReplyKind::Stopped),
                "{policy:?}: {stop:?}"
            );
            let help = c.decide(&msg("info"), None, 0);
            let Decision::Help { reply } = help else {
                panic!()
            };
            assert!(
                reply.text.starts_with("Run by the Example Club"),
                "{}",
                reply.text
            );
            assert!(reply.text.contains("30 days") && reply.text.contains("365 days"));
        }
        let join = rules(Policy::OptIn).decide(&msg("JOIN"), None, 0);
        assert!(matches!(
            join,
            Decision::Change {
                state: ConsentState::Joined,
                ..
            }
        ));
    }

    #[test]
    fn open_relays_all_but_the_stopped() {
        let c = rules(Policy::Open);
        assert_eq!(c.decide(&msg("hi"), None, 0), Decision::Relay);
        let stopped = record(ConsentState::Stopped, None);
        assert!(matches!(
            c.decide(&msg("hi"), Some(&stopped), 0),
            Decision::Hold {
                explain: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn allowlist_drops_the_unlisted() {
        let c = rules(Policy::Allowlist);
        assert!(matches!(
            c.decide(&msg("hi"), None, 0),
            Decision::Drop { .. }
        ));
        assert!(matches!(
            c.decide(&msg("join"), None, 0),
            Decision::Drop { .. }
        ));
        let listed = Inbound {
            number: "+33612345678",
            text: "bonjour",
        };
        assert_eq!(c.decide(&listed, None, 0), Decision::Relay);
    }

    #[test]
    fn only_stop_blocks_sending() {
        let c = rules(Policy::OptIn);
        assert!(c.may_send("sms:x", None).is_ok());
        assert!(c
            .may_send("sms:x", Some(&record(ConsentState::Pending, None)))
            .is_ok());
        assert!(c
            .may_send("sms:x", Some(&record(ConsentState::Joined, None)))
            .is_ok());
        let e = c
            .may_send("sms:x", Some(&record(ConsentState::Stopped, None)))
            .unwrap_err();
        assert_eq!(OptedOut::CODE, "opted_out");
        assert!(!e.to_string().contains(ME));
    }

    #[test]
    fn replies_fit_in_few_sms() {
        let c = rules(Policy::OptIn);
        for kind in [ReplyKind::Explain, ReplyKind::Joined, ReplyKind::Stopped] {
            let r = c.reply(kind);
            assert!(
                r.text.chars().count() <= 306,
                "{kind:?}: {} chars",
                r.text.len()
            );
        }
    }
}
