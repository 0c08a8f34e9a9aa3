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
    ConsentChange, ConsentRecord, ConsentState, ForgetReport, InboundId, InboundMessage,
    PurgeReport, Store,
};

/// Records one `consent` request returns when it does not say (protocol).
pub const CONSENT_LIMIT: u32 = 100;
/// Most records one `consent` request may ask for.
pub const MAX_CONSENT_LIMIT: u32 = 1000;

/// What an admin asks of the consent records (the bus op `consent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentQuery {
    /// One person: a number (any form [`normalize`] accepts) or a handle.
    pub who: Option<String>,
    /// Most records to return (1 to [`MAX_CONSENT_LIMIT`]).
    pub limit: u32,
    /// Continue after this handle (the previous page's `next`).
    pub after: Option<String>,
}

impl Default for ConsentQuery {
    fn default() -> Self {
        ConsentQuery {
            who: None,
            limit: CONSENT_LIMIT,
            after: None,
        }
    }
}

/// One page of consent records, ordered by handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentPage {
    /// The records.
    pub records: Vec<ConsentRecord>,
    /// The handle to continue after when more records follow.
    pub next: Option<String>,
}

/// What a forget erased, and whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forgotten {
    /// The E.164 number, when it was given or the handle was known.
    pub number: Option<String>,
    /// The handle (what the audit row keeps).
    pub handle: String,
    /// Rows deleted per kind.
    pub erased: ForgetReport,
}

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
    pub async fn forget(&self, who: &str, now_ms: i64) -> Result<Forgotten, PrivacyError> {
        let who = who.trim();
        let (number, handle) = if is_handle(who) {
            (self.handles.resolve(who).await?, who.to_owned())
        } else {
            let number = self.number(who)?;
            let handle = self.handles.key().handle(&number);
            (Some(number), handle)
        };
        // Rows addressed to the handle itself are found by the handle.
        let rows_of = number.as_deref().unwrap_or(&handle);
        let erased = self.store.forget(rows_of, &handle, now_ms).await?;
        self.store.compact().await?;
        tracing::info!(handle = %handle, "forgot a number");
        Ok(Forgotten {
            number,
            handle,
            erased,
        })
    }

    /// A number (not a handle) normalised to E.164; anything starting
    /// with the handle prefix is an invalid handle.
    fn number(&self, who: &str) -> Result<String, PrivacyError> {
        if who.starts_with(PREFIX) {
            return Err(PrivacyError::InvalidHandle(who.chars().take(40).collect()));
        }
        normalize(who, self.region)
    }

    /// Consent records for an admin: one person's (a number or a handle),
    /// or a page of everyone's in handle order.
    pub async fn consent_records(&self, q: &ConsentQuery) -> Result<ConsentPage, PrivacyError> {
        if let Some(who) = q.who.as_deref().map(str::trim) {
            let record = if is_handle(who) {
                self.store.consent_by_handle(who).await?
            } else {
                self.store.consent(&self.number(who)?).await?
            };
            return Ok(ConsentPage {
                records: record.into_iter().collect(),
                next: None,
            });
        }
        let limit = q.limit.clamp(1, MAX_CONSENT_LIMIT);
        // One more than asked tells whether another page follows.
        let mut records = self
            .store
            .consent_records(q.after.as_deref().unwrap_or(""), limit + 1)
            .await?;
        let more = records.len() > limit as usize;
        records.truncate(limit as usize);
        let next = more
            .then(|| records.last().map(|r| r.handle.clone()))
            .flatten();
        Ok(ConsentPage { records, next })
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
