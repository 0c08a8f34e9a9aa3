//! The privacy gate: the consent rules, the handles and the store put
//! together, as the daemon calls them. One call per inbound message, one
//! per send request, one per forget, one per retention run.

use std::path::Path;

use super::consent::{Consent, Decision, Inbound, OptedOut, Reply};
use super::handle::{is_handle, HandleKey, Handles, Target, PREFIX};
use super::number::{normalize, Region};
use super::retention::RetentionConfig;
use super::{PrivacyConfig, PrivacyError};
use crate::store::{
    ConsentChange, ConsentState, ForgetReport, InboundId, InboundMessage, PurgeReport, Store,
};

/// What the daemon does with one inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundOutcome {
    /// Relay this message to the bus now.
    pub relay: bool,
    /// Send this SMS back to the sender (through the modem it came in on).
    pub reply: Option<Reply>,
    /// Earlier held messages released to the bus (they got new
    /// `inbound_complete` events).
    pub released: Vec<InboundId>,
    /// The sender's handle (what the bus shows without `see_numbers`).
    pub handle: String,
    /// The sender as E.164, or as received when it is not a phone number
    /// (an alphanumeric sender).
    pub number: String,
    /// The rule's decision, for the log.
    pub decision: Decision,
}

/// Why a send was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendRefused {
    /// The recipient opted out.
    #[error(transparent)]
    OptedOut(#[from] OptedOut),
    /// A bad number, an unknown handle, or a store failure.
    #[error(transparent)]
    Privacy(#[from] PrivacyError),
}

impl SendRefused {
    /// The bus error code: `opted_out`, `invalid_number`, `not_found` (an
    /// unknown handle) or `internal`.
    pub fn code(&self) -> &'static str {
        match self {
            SendRefused::OptedOut(_) => OptedOut::CODE,
            SendRefused::Privacy(
                PrivacyError::InvalidNumber { .. } | PrivacyError::InvalidHandle(_),
            ) => "invalid_number",
            SendRefused::Privacy(PrivacyError::UnknownHandle(_)) => "not_found",
            SendRefused::Privacy(_) => "internal",
        }
    }
}

/// Consent, handles and retention over one store.
#[derive(Debug, Clone)]
pub struct Gate {
    consent: Consent,
    handles: Handles,
    region: Region,
    retention: RetentionConfig,
    privacy: PrivacyConfig,
    store: Store,
}

impl Gate {
    /// Builds the gate; the handle secret is loaded (or created) at
    /// `privacy.secret_file`, else `handle.key` in `state_dir`.
    pub fn open(
        privacy: &PrivacyConfig,
        retention: &RetentionConfig,
        state_dir: &Path,
        store: Store,
    ) -> Result<Gate, PrivacyError> {
        let path = privacy
            .secret_file
            .clone()
            .unwrap_or_else(|| state_dir.join(super::handle::SECRET_FILE));
        let key = HandleKey::load_or_create(&path)?;
        Gate::with_key(privacy, retention, key, store)
    }

    /// Builds the gate with a known key (tests).
    pub fn with_key(
        privacy: &PrivacyConfig,
        retention: &RetentionConfig,
        key: HandleKey,
        store: Store,
    ) -> Result<Gate, PrivacyError> {
        let consent = Consent::new(privacy, retention)?;
        let region = Region::parse(privacy.default_region.as_deref())?;
        Ok(Gate {
            consent,
            handles: Handles::new(key, region, store.clone()),
            region,
            retention: *retention,
            privacy: privacy.clone(),
            store,
        })
    }

    /// The consent rules.
    pub fn consent(&self) -> &Consent {
        &self.consent
    }

    /// The handles.
    pub fn handles(&self) -> &Handles {
        &self.handles
    }

    /// How a number is shown to a peer: the number itself to a peer with
    /// the see-numbers right, its handle to everyone else.
    pub fn show(&self, number: &str, see_numbers: bool) -> String {
        if see_numbers || number.starts_with(PREFIX) {
            return number.to_owned();
        }
        let e164 = normalize(number, self.region).unwrap_or_else(|_| number.to_owned());
        self.handles.key().handle(&e164)
    }

    /// Applies the consent rules to a completed inbound message: stores
    /// the outcome (consent change, hold, explanation time; keyword and
    /// refused messages are deleted) and says whether to relay it and what
    /// to reply.
    pub async fn on_inbound(
        &self,
        msg: &InboundMessage,
        now_ms: i64,
    ) -> Result<InboundOutcome, PrivacyError> {
        let text = msg.text.as_deref().unwrap_or("");
        let (number, handle) = match self.handles.record(&msg.sender, now_ms).await {
            Ok(t) => (t.number, t.handle),
            Err(PrivacyError::InvalidNumber { .. }) => {
                // An alphanumeric or short-code sender: nobody who could
                // JOIN, so only `open` relays it.
                let handle = self.handles.key().handle(&msg.sender);
                let relay = self.consent.policy() == super::Policy::Open;
                if !relay {
                    self.store.delete_inbound(msg.id).await?;
                }
                let decision = if relay {
                    Decision::Relay
                } else {
                    Decision::Drop {
                        reason: "sender is not a phone number and cannot join",
                    }
                };
                return Ok(InboundOutcome {
                    relay,
                    reply: None,
                    released: Vec::new(),
                    handle,
                    number: msg.sender.clone(),
                    decision,
                });
            }
            Err(e) => return Err(e),
        };
        let record = self.store.consent(&number).await?;
        let decision = self.consent.decide(
            &Inbound {
                number: &number,
                text,
            },
            record.as_ref(),
            now_ms,
        );
        let mut out = InboundOutcome {
            relay: false,
            reply: None,
            released: Vec::new(),
            handle: handle.clone(),
            number: number.clone(),
            decision: decision.clone(),
        };
        match decision {
            Decision::Relay => out.relay = true,
            Decision::Hold { until_ms, explain } => {
                self.store
                    .hold_inbound(msg.id, &number, now_ms, until_ms)
                    .await?;
                if let Some(reply) = explain {
                    self.store
                        .consent_explained(&number, &handle, now_ms)
                        .await?;
                    out.reply = Some(reply);
                }
            }
            Decision::Drop { .. } => {
                self.store.delete_inbound(msg.id).await?;
            }
            Decision::Change {
                state,
                keyword,
                reply,
            } => {
                let change = ConsentChange {
                    number: number.clone(),
                    handle: handle.clone(),
                    state,
                    keyword: keyword.as_str().to_owned(),
                    modem: Some(msg.modem.clone()),
                };
                let done = self.store.set_consent(change, now_ms).await?;
                self.store.delete_inbound(msg.id).await?;
                out.released = done.released;
                out.reply = Some(reply);
            }
            Decision::Help { reply } => {
                self.store.delete_inbound(msg.id).await?;
                out.reply = Some(reply);
            }
        }
        tracing::info!(sender = %super::mask(&number), message = msg.id.0,
            decision = ?out.decision, "privacy decision");
        Ok(out)
    }

    /// Checks a send request's recipient (a number or a handle): the
    /// E.164 number to send to and its handle, or why not.
    pub async fn check_send(&self, to: &str, now_ms: i64) -> Result<Target, SendRefused> {
        let target = self.handles.target(to, now_ms).await?;
        let record = self
            .store
            .consent(&target.number)
            .await
            .map_err(PrivacyError::from)?;
        self.consent.may_send(&target.handle, record.as_ref())?;
        Ok(target)
    }

    /// Erases everything about a number or handle, then compacts so the
    /// bytes leave the files. A handle no number is known for is still
    /// audited: its rows may exist under the handle itself.
    pub async fn forget(&self, who: &str, now_ms: i64) -> Result<ForgetReport, PrivacyError> {
        let who = who.trim();
        let (number, handle) = if is_handle(who) {
            let number = self.handles.resolve(who).await?;
            (number.unwrap_or_else(|| who.to_owned()), who.to_owned())
        } else if who.starts_with(PREFIX) {
            return Err(PrivacyError::InvalidHandle(who.chars().take(40).collect()));
        } else {
            let number = normalize(who, self.region)?;
            let handle = self.handles.key().handle(&number);
            (number, handle)
        };
        let report = self.store.forget(&number, &handle, now_ms).await?;
        self.store.compact().await?;
        tracing::info!(handle = %handle, "forgot a number");
        Ok(report)
    }

    /// Runs the retention purge to completion at `now_ms` (in batches,
    /// so other store users get turns), then compacts.
    pub async fn purge(&self, now_ms: i64) -> Result<PurgeReport, PrivacyError> {
        let plan = self.retention.plan(&self.privacy, now_ms);
        let mut total = PurgeReport::default();
        loop {
            let r = self.store.purge(plan).await?;
            total.held_deleted += r.held_deleted;
            total.inbound_text_purged += r.inbound_text_purged;
            total.outbound_text_purged += r.outbound_text_purged;
            total.inbound_deleted += r.inbound_deleted;
            total.outbound_deleted += r.outbound_deleted;
            total.reports_deleted += r.reports_deleted;
            total.handles_deleted += r.handles_deleted;
            total.pending_deleted += r.pending_deleted;
            if !r.more {
                break;
            }
        }
        if total.total() > 0 {
            self.store.compact().await?;
        }
        tracing::info!(purged = total.total(), "retention purge");
        Ok(total)
    }

    /// A number's stored consent state (none: never sent a keyword nor
    /// was told how to join).
    pub async fn state(&self, number: &str) -> Result<Option<ConsentState>, PrivacyError> {
        let number = normalize(number, self.region)?;
        Ok(self.store.consent(&number).await?.map(|r| r.state))
    }
}
