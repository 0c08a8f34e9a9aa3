//! The engine: wires the modem actors, the store and the router together.
//!
//! Every message goes through the store, and the store's answer is the
//! point of no return:
//!
//! * **Inbound**: one task per modem consumes its [`ModemEvent`]s. A part is
//!   decoded, committed with [`Store::commit_inbound`], and only then is the
//!   actor told [`Committed`] (so it deletes the part from the modem). A
//!   store error drops the answer: the part stays on the SIM and the next
//!   sweep offers it again (DESIGN invariant 1). A PDU that does not decode
//!   is stored raw, never dropped.
//! * **Outbound**: [`Engine::send`] validates, encodes (TS 23.040 SMS-SUBMIT)
//!   and enqueues; it answers only after the store committed. A dispatcher
//!   task chooses a modem for each due message and binds a whole round of
//!   them in one commit; a sender task per modem ([`Pipeline`]) hands one
//!   message's parts at a time to the actor while the store commits, in one
//!   step, the records of what the modem accepted and the claim of what it
//!   sends next.
//! * **Failover**: a temporary failure requeues the part with the store's
//!   backoff and frees the message for another modem; a modem that is gone
//!   or removed gives its in-flight parts back to the queue (flagged
//!   maybe-sent).
//!
//! Every loop waits on a signal (store cursor, modem state, a notify) or a
//! timer, never spins; every wait on a modem is bounded, so one stuck modem
//! never blocks the dispatcher or another modem. `docs/engine.md` describes
//! the guarantees.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::modem::{
    self, Committed, ModemConfig, ModemError, ModemEvent, ModemHandle, ModemView, Origin, Received,
    RejectedPins, SendError, SentPart, Snapshot,
};
use crate::pdu::{
    encode_submit, Address, EncodedPdu, MessageClass, Pdu, PduError, SubmitOptions, Timestamp,
    Tpdu, ValidityPeriod,
};
use crate::router::{Candidate, Choice, LimitsConfig, RouteRequest, Router, RoutingConfig};
use crate::store::{
    now_ms, AttemptId, ClaimedPart, Concat, Enqueued, FailureOutcome, InboundBody, InboundPart,
    MessageId, ModemInfo, ModemRecord, NewOutbound, SendFailure, SendStep, SentRecord,
    StatusReport, Store, StoreError, MAX_LIMIT,
};

/// Longest a loop sleeps without a signal: a safety net for work that no
/// signal announces (a message scheduled before a restart, a backoff
/// computed by another process).
const IDLE: Duration = Duration::from_secs(5);
/// How long a removed or stopping modem actor gets to close its port.
const ACTOR_STOP: Duration = Duration::from_secs(10);
/// Sender name used for a PDU that could not be decoded (the raw PDU is
/// kept; the store requires a non-empty sender).
const UNKNOWN_SENDER: &str = "unknown";
/// How often the queue gauge behind `queue_limit` is refreshed from the
/// store (between refreshes, enqueued parts are added locally).
const GAUGE_MS: i64 = 1000;
/// When a message cannot be routed at all (pinned to a modem that is not
/// attached), how long before it is tried again (a modem appearing wakes
/// the dispatcher sooner).
const REJECT_RETRY_MS: i64 = 30_000;
/// How far back the router's counters and sticky choices are rebuilt from
/// at start (the longest quota window is a calendar month).
const HISTORY_MS: i64 = 32 * 86_400_000;
/// Messages remembered as bound or excluded; beyond this the oldest state
/// is dropped (only failover preferences are lost, never messages).
const MAX_TRACKED: usize = 100_000;
/// Most digits of a phone number (TS 23.040 §9.1.2.5 allows 20 semi-octets).
const MAX_DIGITS: usize = 20;

/// How the engine runs. Every field has a default ([`Default`]).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `[routing]`: pins, sticky peers, prefix rules.
    pub routing: RoutingConfig,
    /// `[limits]`: per-SIM quotas and jitter.
    pub limits: LimitsConfig,
    /// Most parts one outbound message may have (`[bus] max_parts`).
    pub max_parts: u32,
    /// Concatenate with 16-bit references (IEI 0x08, TS 23.040
    /// §9.2.3.24.8) rather than 8-bit ones (IEI 0x00, §9.2.3.24.1)
    /// (`[bus] concat_ref_bits`).
    pub ref16: bool,
    /// Most parts waiting in the queue; a send beyond it is refused with
    /// [`EngineError::QueueFull`] (`[bus] queue_limit`).
    pub queue_limit: u64,
    /// Most parts claimed (or messages dispatched) in one store round trip.
    pub dispatch_batch: u32,
    /// Time between maintenance passes (expiry of outbound messages and of
    /// inbound reassembly groups, absent modems' work).
    pub maintenance_interval: Duration,
    /// How long a modem that holds bound work may be absent or not ready
    /// before its unstarted, unpinned work is unbound for other modems
    /// (checked every `maintenance_interval`).
    pub unbind_after: Duration,
    /// How long the rest of a partly sent multipart message waits for its
    /// modem to come back before it fails (it may not go out through
    /// another SIM: the phone joins parts by sender number).
    pub stranded_after: Duration,
    /// Where rejected PINs are remembered across restarts (the state
    /// directory's `rejected-pins.json`); `None` remembers them for this
    /// process only.
    pub rejected_pins: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            routing: RoutingConfig::default(),
            limits: LimitsConfig::default(),
            max_parts: 10,
            ref16: true,
            queue_limit: 100_000,
            dispatch_batch: 16,
            maintenance_interval: Duration::from_secs(30),
            unbind_after: Duration::from_secs(60),
            stranded_after: Duration::from_secs(600),
            rejected_pins: None,
        }
    }
}

/// A client's request to send one text message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundRequest {
    /// Destination: digits with an optional leading `+` (1..=20 digits).
    pub to: String,
    /// The text; split into parts as needed (GSM 7-bit or UCS-2).
    pub text: String,
    /// Idempotency key: the same key with the same content returns the
    /// first message instead of sending again.
    pub key: Option<String>,
    /// Only this modem may send it: a modem id (IMEI), a configured name or
    /// an ICCID.
    pub modem: Option<String>,
    /// Ask for a status report (TP-SRR, TS 23.040 §9.2.3.5).
    pub report: bool,
    /// Flash message (class 0, TS 23.038 §4).
    pub flash: bool,
    /// Validity period (TP-VP, TS 23.040 §9.2.3.12); also the local expiry.
    pub validity: Option<Duration>,
    /// Do not send before this time (unix ms).
    pub send_at_ms: Option<i64>,
    /// Who asked (bus client name), for audit.
    pub client: Option<String>,
}

/// Why the engine refused or could not do something.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The destination is not a phone number.
    #[error("invalid number: {0}")]
    InvalidNumber(String),
    /// The text needs more parts than allowed.
    #[error("text needs {parts} parts, at most {max} allowed")]
    TextTooLong {
        /// Parts the text needs.
        parts: u32,
        /// The configured maximum.
        max: u32,
    },
    /// The requested modem is not known.
    #[error("unknown modem: {0}")]
    UnknownModem(String),
    /// The queue holds `queue_limit` parts already.
    #[error("the queue is full")]
    QueueFull,
    /// The idempotency key was used before for different content.
    #[error("idempotency key {0:?} was used for a different message")]
    Conflict(String),
    /// The text could not be encoded.
    #[error("cannot encode the message: {0}")]
    Encode(#[source] PduError),
    /// A modem actor could not be started.
    #[error(transparent)]
    Modem(#[from] ModemError),
    /// The engine is shutting down.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::IdempotencyConflict { key, .. } => EngineError::Conflict(key),
            e => EngineError::Store(e),
        }
    }
}

impl EngineError {
    /// The bus error code (docs/protocol.md).
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::InvalidNumber(_) => "invalid_number",
            EngineError::TextTooLong { .. } => "text_too_long",
            EngineError::UnknownModem(_) => "unknown_modem",
            EngineError::QueueFull => "queue_full",
            EngineError::Conflict(_) => "conflict",
            EngineError::Encode(_) => "invalid_field",
            EngineError::Store(StoreError::Invalid(_)) => "invalid_field",
            EngineError::Store(StoreError::NotFound { .. }) => "not_found",
            EngineError::Store(
                StoreError::Closed | StoreError::Full { .. } | StoreError::ReadOnly { .. },
            )
            | EngineError::ShuttingDown => "unavailable",
            EngineError::Store(_) | EngineError::Modem(_) => "internal",
        }
    }
}

/// The engine: a cheap-to-clone handle; the tasks run on the tokio runtime
/// it was started on.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("ports", &self.ports())
            .finish_non_exhaustive()
    }
}

/// State shared by the engine's tasks. Every `Mutex` here is held only for
/// a map lookup or update, never across an `.await`.
struct Inner {
    store: Store,
    config: Mutex<EngineConfig>,
    /// Chooses modems and counts quotas; pure and fast, so a plain mutex.
    router: Mutex<Router>,
    /// One memory of rejected PINs for every actor: a PIN refused by one
    /// SIM is never tried again, whichever port the SIM moves to.
    rejected: RejectedPins,
    /// The live modems by port.
    slots: Mutex<BTreeMap<PathBuf, Arc<Slot>>>,
    /// Wakes the dispatcher: a modem's readiness changed, or a message was
    /// freed for another modem.
    dispatch: Notify,
    /// Messages the dispatcher bound, and to which modem: unbound again
    /// when that modem leaves `ready`, so others take them.
    bound: Mutex<HashMap<MessageId, String>>,
    /// Modems that failed a message temporarily: the router avoids them
    /// for that message while another modem can take it.
    exclude: Mutex<HashMap<MessageId, Vec<String>>>,
    /// Parts bound or in flight per modem id (the router's load, the
    /// views' `queued`), as last read from the store.
    loads: Mutex<HashMap<String, u64>>,
    /// Set once by [`Engine::shutdown`]: nothing is claimed any more.
    stop: watch::Sender<bool>,
    /// Earliest known time (unix ms) at which queued work becomes due
    /// (scheduled sends, retry backoffs); `i64::MAX` when none is known.
    next_due: AtomicI64,
    /// Sends handed to an actor and not yet recorded.
    in_flight: watch::Sender<usize>,
    /// Parts queued, as last counted by the store plus what was enqueued
    /// since (`queue_limit`).
    queued: AtomicU64,
    queued_at: AtomicI64,
    /// What the store knows about each modem (counters for [`ModemView`]),
    /// refreshed by the maintenance task.
    records: Mutex<HashMap<String, ModemRecord>>,
    background: Mutex<Vec<JoinHandle<()>>>,
    /// Modems holding bound work while absent or not ready, and since when
    /// (unix ms): the clock behind `unbind_after` and `stranded_after`.
    absent: Mutex<HashMap<String, i64>>,
}

/// One live modem: its actor and the engine's tasks around it.
struct Slot {
    port: PathBuf,
    handle: ModemHandle,
    /// Bound on one send of this modem (the actor's own timeout per part,
    /// plus a margin), so a wedged actor cannot hold a sender forever.
    send_timeout: Duration,
    /// Wakes the sender (work was bound to this modem).
    wake: Notify,
    /// Stops this modem's sender.
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// This port answered with the IMEI of a modem another port already
    /// serves (a second AT port of one device): it was stopped and does
    /// nothing under that IMEI, so it never touches the other's work.
    duplicate: AtomicBool,
}

impl Slot {
    /// The modem id: the IMEI once known, the configured name before.
    fn id(&self) -> String {
        modem_id(&self.handle.snapshot())
    }
}

fn modem_id(s: &Snapshot) -> String {
    s.imei.clone().unwrap_or_else(|| s.name.clone())
}

/// Locks a mutex, recovering the data if a task panicked while holding it
/// (every critical section leaves the data consistent).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine {
    /// Starts the engine's background tasks (maintenance) on the current
    /// tokio runtime. Modems are added with [`Engine::add_modem`].
    pub fn start(store: Store, config: EngineConfig) -> Engine {
        let rejected = config
            .rejected_pins
            .as_deref()
            .map_or_else(RejectedPins::new, RejectedPins::open);
        let inner = Arc::new(Inner {
            store,
            router: Mutex::new(Router::new(config.routing.clone(), config.limits.clone())),
            config: Mutex::new(config),
            rejected,
            dispatch: Notify::new(),
            bound: Mutex::new(HashMap::new()),
            exclude: Mutex::new(HashMap::new()),
            loads: Mutex::new(HashMap::new()),
            slots: Mutex::new(BTreeMap::new()),
            stop: watch::channel(false).0,
            next_due: AtomicI64::new(i64::MAX),
            in_flight: watch::channel(0).0,
            queued: AtomicU64::new(0),
            queued_at: AtomicI64::new(i64::MIN),
            records: Mutex::new(HashMap::new()),
            background: Mutex::new(Vec::new()),
            absent: Mutex::new(HashMap::new()),
        });
        let maintenance = tokio::spawn(maintain(Arc::clone(&inner)));
        let dispatcher = tokio::spawn(dispatch(Arc::clone(&inner)));
        lock(&inner.background).extend([maintenance, dispatcher]);
        Engine { inner }
    }

    /// Starts the actor for the modem at `config.port` and the tasks that
    /// serve it. A port already present is left alone (idempotent).
    pub fn add_modem(&self, config: ModemConfig) -> Result<(), EngineError> {
        if *self.inner.stop.borrow() {
            return Err(EngineError::ShuttingDown);
        }
        let mut slots = lock(&self.inner.slots);
        if slots.contains_key(&config.port) {
            return Ok(());
        }
        let port = config.port.clone();
        let send_timeout = config.send_timeout;
        let (handle, events) = modem::spawn(config, self.inner.rejected.clone())?;
        let slot = Arc::new(Slot {
            port: port.clone(),
            handle,
            send_timeout,
            wake: Notify::new(),
            stop: watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
            duplicate: AtomicBool::new(false),
        });
        let ev = tokio::spawn(serve_events(
            Arc::clone(&self.inner),
            Arc::clone(&slot),
            events,
        ));
        let tx = tokio::spawn(serve_sends(Arc::clone(&self.inner), Arc::clone(&slot)));
        lock(&slot.tasks).extend([ev, tx]);
        tracing::info!(port = %port.display(), "modem added");
        slots.insert(port, slot);
        Ok(())
    }

    /// Stops the modem at `port`: its sender stops claiming, the actor
    /// closes the port, and the parts it had in flight go back to the queue
    /// (flagged maybe-sent) for another modem.
    pub async fn remove_modem(&self, port: &Path) {
        let slot = lock(&self.inner.slots).remove(port);
        if let Some(slot) = slot {
            self.inner.retire(&slot).await;
            tracing::info!(port = %port.display(), "modem removed");
        }
    }

    /// The ports of the live modems.
    pub fn ports(&self) -> Vec<PathBuf> {
        lock(&self.inner.slots).keys().cloned().collect()
    }

    /// Validates, encodes and queues one message; answers once the store
    /// committed it (or, for a repeated idempotency key with the same
    /// content, with the first message and `created: false`).
    pub async fn send(&self, req: OutboundRequest) -> Result<Enqueued, EngineError> {
        self.inner.send(req, self).await
    }

    /// The live modems as the bus and the CLI show them.
    pub fn modems(&self) -> Vec<ModemView> {
        let slots: Vec<Arc<Slot>> = lock(&self.inner.slots).values().cloned().collect();
        let records = lock(&self.inner.records);
        let loads = lock(&self.inner.loads);
        slots
            .iter()
            .filter(|slot| !slot.duplicate.load(Ordering::Relaxed))
            .map(|slot| {
                let snapshot = slot.handle.snapshot();
                let id = modem_id(&snapshot);
                let rec = records.get(&id);
                ModemView {
                    queued: loads.get(&id).copied().unwrap_or(0),
                    sent_today: rec.map_or(0, |r| r.sent_today),
                    received_today: rec.map_or(0, |r| r.received_today),
                    id,
                    snapshot,
                }
            })
            .collect()
    }

    /// Resolves a modem id (IMEI), configured name or ICCID to the modem
    /// id, among the live modems and the modems the store remembers.
    pub fn resolve_modem(&self, pin: &str) -> Option<String> {
        let candidates = self.inner.candidates();
        if let Some(id) = lock(&self.inner.router).resolve(pin, &candidates) {
            return Some(id);
        }
        // A modem that is not plugged in now but was seen before.
        let records = lock(&self.inner.records);
        records
            .values()
            .find(|r| names_record(r, pin))
            .map(|r| r.id.clone())
    }

    /// Forgets what the router remembers about `number` (its sticky
    /// modem) at once, after a `forget` erased its rows from the store:
    /// otherwise it would be routed by stickiness until the next start.
    pub fn forget_peer(&self, number: &str) {
        if lock(&self.inner.router).forget_recipient(number) {
            tracing::debug!("router: sticky route of a forgotten number dropped");
        }
    }

    /// The store the engine writes to.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Replaces the configuration; takes effect at the next send and
    /// dispatch round.
    pub fn reconfigure(&self, config: EngineConfig) {
        lock(&self.inner.router).reconfigure(config.routing.clone(), config.limits.clone());
        *lock(&self.inner.config) = config;
        self.inner.dispatch.notify_one();
    }

    /// Stops claiming new work, waits up to `grace` for the sends in
    /// flight, then stops every actor; what is still in flight goes back
    /// to the queue, flagged maybe-sent.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.stop.send_replace(true);
        let mut in_flight = self.inner.in_flight.subscribe();
        if timeout(grace, in_flight.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = *self.inner.in_flight.borrow(),
                "grace period over with sends in flight; they are requeued"
            );
        }
        let slots: Vec<Arc<Slot>> = std::mem::take(&mut *lock(&self.inner.slots))
            .into_values()
            .collect();
        futures::future::join_all(slots.iter().map(|s| self.inner.retire(s))).await;
        for task in lock(&self.inner.background).drain(..) {
            task.abort();
        }
        tracing::info!("engine stopped");
    }
}

impl Inner {
    /// The live modems as the router sees them.
    fn candidates(&self) -> Vec<Candidate> {
        let slots: Vec<Arc<Slot>> = lock(&self.slots).values().cloned().collect();
        let loads = lock(&self.loads).clone();
        slots
            .iter()
            .map(|slot| {
                let s = slot.handle.snapshot();
                let id = modem_id(&s);
                Candidate {
                    load: loads.get(&id).copied().unwrap_or(0),
                    id,
                    ready: s.state == "ready",
                    name: s.name,
                    iccid: s.iccid,
                }
            })
            .collect()
    }

    async fn send(&self, req: OutboundRequest, engine: &Engine) -> Result<Enqueued, EngineError> {
        if *self.stop.borrow() {
            return Err(EngineError::ShuttingDown);
        }
        let config = lock(&self.config).clone();
        let to = Address::parse_number(&check_number(&req.to)?)
            .map_err(|e| EngineError::InvalidNumber(format!("{:?}: {e}", req.to)))?;
        let recipient = to.to_string();
        let pinned = match req.modem.as_deref() {
            Some(pin) => Some(self.resolve_stored(engine, pin).await?),
            None => None,
        };
        // A retried request answers with the first message. Checked here
        // and not only in the store: the content is compared as the client
        // sent it, not as encoded (the validity end moves with the clock).
        if let Some(key) = req.key.as_deref() {
            if let Some(id) = self.store.find_by_key(key).await? {
                let first = self.store.outbound_status(id).await?;
                let same = first.recipient == recipient
                    && first.text.as_deref() == Some(req.text.as_str())
                    // A pinned message is bound to its pin once dispatched.
                    && (pinned.is_none() || first.modem.is_none() || first.modem == pinned);
                return if same {
                    Ok(Enqueued { id, created: false })
                } else {
                    Err(EngineError::Conflict(key.to_owned()))
                };
            }
        }
        let opts = SubmitOptions {
            status_report: req.report,
            class: req.flash.then_some(MessageClass::Class0),
            validity: req.validity.map(ValidityPeriod::relative_from),
            // The reference is a placeholder: the store gives the message
            // its own when it is bound to a modem (per SIM and recipient,
            // persisted, TS 23.040 §9.2.3.24.1; store::refs).
            reference: 0,
            ref16: config.ref16,
            ..SubmitOptions::default()
        };
        let parts = encode_submit(&to, &req.text, &opts).map_err(EngineError::Encode)?;
        let n = u32::try_from(parts.len()).unwrap_or(u32::MAX);
        if n > config.max_parts {
            return Err(EngineError::TextTooLong {
                parts: n,
                max: config.max_parts,
            });
        }
        let now = now_ms();
        if self.queued_parts(now).await?.saturating_add(u64::from(n)) > config.queue_limit {
            return Err(EngineError::QueueFull);
        }
        let valid_until_ms = req
            .validity
            .map(|v| now.saturating_add(i64::try_from(v.as_millis()).unwrap_or(i64::MAX)));
        let new = NewOutbound {
            idempotency_key: req.key,
            recipient,
            text: Some(req.text),
            parts: parts.into_iter().map(|p| p.octets).collect(),
            send_at_ms: req.send_at_ms,
            valid_until_ms,
            modem: pinned,
            client: req.client,
        };
        let enqueued = self.store.enqueue(new, now).await?;
        if enqueued.created {
            self.queued.fetch_add(u64::from(n), Ordering::Relaxed);
            self.due_at(req.send_at_ms.unwrap_or(now));
            tracing::debug!(message_id = %enqueued.id, parts = n, "queued");
        }
        Ok(enqueued)
    }

    /// Resolves a pin among the live modems, then among every modem the
    /// store remembers (the cached list may lag a moment behind).
    async fn resolve_stored(&self, engine: &Engine, pin: &str) -> Result<String, EngineError> {
        if let Some(id) = engine.resolve_modem(pin) {
            return Ok(id);
        }
        let known = self.store.modems(now_ms()).await?;
        known
            .into_iter()
            .find(|r| names_record(r, pin))
            .map(|r| r.id)
            .ok_or_else(|| EngineError::UnknownModem(pin.to_owned()))
    }

    /// Parts queued, from a gauge the store refreshes at most every
    /// [`GAUGE_MS`] (a count per send would make a large queue slow).
    async fn queued_parts(&self, now: i64) -> Result<u64, EngineError> {
        if now.saturating_sub(self.queued_at.load(Ordering::Relaxed)) >= GAUGE_MS {
            let stats = self.store.stats().await?;
            self.queued.store(
                stats.parts_queued.saturating_add(stats.parts_sending),
                Ordering::Relaxed,
            );
            self.queued_at.store(now, Ordering::Relaxed);
        }
        Ok(self.queued.load(Ordering::Relaxed))
    }

    /// Remembers that work becomes due at `at_ms` and wakes the
    /// dispatcher.
    fn due_at(&self, at_ms: i64) {
        self.next_due.fetch_min(at_ms, Ordering::Relaxed);
        self.dispatch.notify_one();
    }

    /// Wakes the sender of modem `id` (or every sender).
    fn wake(&self, id: Option<&str>) {
        for slot in lock(&self.slots).values() {
            if id.map_or(true, |id| slot.id() == id) {
                slot.wake.notify_one();
            }
        }
    }

    /// How long the dispatcher may sleep: until the next known due time,
    /// at most [`IDLE`].
    fn idle_wait(&self) -> Duration {
        let now = now_ms();
        let due = self.next_due.load(Ordering::Relaxed);
        if due <= now {
            // Due now: whoever wakes claims it; forget it so the loops do
            // not spin on a time already past.
            let _ =
                self.next_due
                    .compare_exchange(due, i64::MAX, Ordering::Relaxed, Ordering::Relaxed);
            return Duration::ZERO;
        }
        let ms = u64::try_from(due.saturating_sub(now)).unwrap_or(u64::MAX);
        Duration::from_millis(ms).min(IDLE)
    }

    /// Stops a slot's tasks and actor and requeues what it had in flight.
    async fn retire(&self, slot: &Slot) {
        slot.stop.send_replace(true);
        let id = slot.id();
        if timeout(ACTOR_STOP, slot.handle.shutdown()).await.is_err() {
            tracing::warn!(modem = %id, "actor did not stop in time");
        }
        let tasks: Vec<JoinHandle<()>> = lock(&slot.tasks).drain(..).collect();
        for task in tasks {
            // The sender finishes recording its current send (the actor
            // answered it when stopping); a wedged one is cut off.
            let abort = task.abort_handle();
            if timeout(ACTOR_STOP, task).await.is_err() {
                abort.abort();
            }
        }
        if slot.duplicate.load(Ordering::Relaxed) {
            // The IMEI's work belongs to the port that serves it.
            return;
        }
        self.release(&id).await;
        self.unbind_modem(&id).await;
    }

    /// The port that already serves `imei`, when `slot` is a second port of
    /// the same device (a stick with two AT ports, both linked). Of two
    /// ports that identify at once, the one with the smaller path stays,
    /// so exactly one of them steps back.
    fn served_elsewhere(&self, slot: &Slot, imei: &str) -> Option<PathBuf> {
        let slots = lock(&self.slots);
        slots
            .values()
            .filter(|o| o.port != slot.port && !o.duplicate.load(Ordering::Relaxed))
            .find(|o| {
                let snap = o.handle.snapshot();
                snap.imei.as_deref() == Some(imei)
                    && !matches!(snap.state.as_str(), "gone" | "stopped")
                    && (o.port < slot.port || snap.state != "identifying")
            })
            .map(|o| o.port.clone())
    }

    /// Frees the messages the dispatcher bound to `modem` and that it has
    /// not started, so other modems take them (pinned ones stay).
    async fn unbind_modem(&self, modem: &str) {
        let messages: Vec<MessageId> = lock(&self.bound)
            .iter()
            .filter(|(_, m)| m.as_str() == modem)
            .map(|(id, _)| *id)
            .collect();
        let mut freed = 0;
        for id in messages {
            match self.store.unbind(id).await {
                Ok(changed) => {
                    lock(&self.bound).remove(&id);
                    freed += u32::from(changed);
                }
                Err(e) => {
                    tracing::warn!(modem, message_id = %id, error = %e, "cannot unbind")
                }
            }
        }
        if freed > 0 {
            tracing::info!(modem, messages = freed, "work freed for other modems");
            self.dispatch.notify_one();
        }
    }

    /// At start: every binding in the store was made by an earlier run,
    /// to modems that may never come back. Unstarted, unpinned work is
    /// unbound so the dispatcher routes it afresh (sticky routing still
    /// prefers the same modem when it is back); partly sent messages stay
    /// with their modem (see [`Inner::check_absent`]).
    async fn unbind_leftovers(&self) {
        let loads = match self.store.queued_by_modem().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the bindings left from the last run");
                return;
            }
        };
        let live: HashSet<String> = lock(&self.slots).values().map(|s| s.id()).collect();
        for (modem, _) in loads.into_iter().filter(|(m, _)| !live.contains(m)) {
            match self.store.unbind_modem(&modem).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    modem,
                    messages = n,
                    "work left bound by the last run unbound"
                ),
                Err(e) => tracing::warn!(modem, error = %e, "cannot unbind the last run's work"),
            }
        }
    }

    /// Modems that hold bound work but are absent or not ready: after
    /// `unbind_after` their unstarted, unpinned work is unbound (other
    /// modems take it); after `stranded_after` the rest of every message
    /// partly sent through them fails with a reason.
    async fn check_absent(&self, now: i64) {
        let (unbind_after, stranded_after) = {
            let c = lock(&self.config);
            (ms(c.unbind_after), ms(c.stranded_after))
        };
        let loads = match self.store.queued_by_modem().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the modem loads");
                return;
            }
        };
        let ready: HashSet<String> = self
            .candidates()
            .into_iter()
            .filter(|c| c.ready)
            .map(|c| c.id)
            .collect();
        let due: Vec<(String, i64)> = {
            let mut absent = lock(&self.absent);
            let holding: HashSet<&str> = loads
                .iter()
                .filter(|(m, n)| *n > 0 && !ready.contains(m))
                .map(|(m, _)| m.as_str())
                .collect();
            absent.retain(|m, _| holding.contains(m.as_str()));
            holding
                .into_iter()
                .map(|m| {
                    let since = *absent.entry(m.to_owned()).or_insert(now);
                    (m.to_owned(), now.saturating_sub(since))
                })
                .collect()
        };
        let mut changed = false;
        for (modem, gone_ms) in due {
            if gone_ms >= unbind_after {
                match self.store.unbind_modem(&modem).await {
                    Ok(n) => changed |= n > 0,
                    Err(e) => {
                        tracing::warn!(modem, error = %e, "cannot unbind an absent modem's work")
                    }
                }
            }
            if gone_ms >= stranded_after {
                match self.store.fail_stranded(&modem, now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(
                        modem,
                        parts = n,
                        gone_ms,
                        "rest of partly sent messages failed: the modem did not come back"
                    ),
                    Err(e) => tracing::warn!(modem, error = %e, "cannot fail stranded parts"),
                }
            }
        }
        if changed {
            self.dispatch.notify_one();
        }
    }

    /// Forgets what was tracked for a message that is done with this
    /// modem.
    fn forget(&self, message: MessageId) {
        lock(&self.bound).remove(&message);
        lock(&self.exclude).remove(&message);
        lock(&self.router).release(message.0);
    }

    /// One dispatch pass: routes up to `batch` due unbound messages and
    /// binds them, all in one store request (one commit). Returns
    /// (messages looked at, messages bound).
    async fn dispatch_round(&self, batch: u32) -> (usize, usize) {
        let now = now_ms();
        let (pending, loads) = match self.store.dispatch_view(now, batch).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the queue");
                return (0, 0);
            }
        };
        if pending.is_empty() {
            return (0, 0);
        }
        let loads: HashMap<String, u64> = loads.into_iter().collect();
        {
            // What the router holds for messages that are unbound again
            // (failover, a modem gone) or done with a modem that holds
            // nothing now (sent, expired, cancelled) is let go first.
            let mut router = lock(&self.router);
            for msg in &pending {
                router.release(msg.id.0);
            }
            router.release_idle(|m| loads.get(m).is_some_and(|&n| n > 0));
        }
        *lock(&self.loads) = loads;
        let mut candidates = self.candidates();
        let mut chosen: Vec<(MessageId, String)> = Vec::new();
        for msg in &pending {
            let exclude = lock(&self.exclude)
                .get(&msg.id)
                .cloned()
                .unwrap_or_default();
            let req = RouteRequest {
                message: msg.id.0,
                recipient: &msg.recipient,
                pinned: msg.pinned.as_deref(),
                parts: msg.parts,
                exclude: &exclude,
            };
            let choice = lock(&self.router).choose(&req, &candidates, now);
            match choice {
                Choice::Modem(id) => {
                    // Held from now: the next messages of this round see
                    // its parts in the load (per-SIM limits, jitter) and
                    // its recipient and sticky choice in the router.
                    if let Some(c) = candidates.iter_mut().find(|c| c.id == id) {
                        c.load = c.load.saturating_add(u64::from(msg.parts));
                        lock(&self.router).hold(
                            msg.id.0,
                            &c.id,
                            c.iccid.as_deref(),
                            &msg.recipient,
                            now,
                        );
                    }
                    chosen.push((msg.id, id));
                }
                Choice::Wait { until_ms, reason } => {
                    tracing::debug!(message_id = %msg.id, until_ms, reason, "waiting");
                    self.next_due.fetch_min(until_ms, Ordering::Relaxed);
                }
                Choice::Reject(reason) => {
                    tracing::warn!(message_id = %msg.id, reason, "cannot route now");
                    self.next_due
                        .fetch_min(now.saturating_add(REJECT_RETRY_MS), Ordering::Relaxed);
                }
            }
        }
        if chosen.is_empty() {
            return (pending.len(), 0);
        }
        let results = match self.store.bind_many(chosen.clone()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(messages = chosen.len(), error = %e, "cannot bind");
                let mut router = lock(&self.router);
                for (message, _) in &chosen {
                    router.release(message.0);
                }
                return (pending.len(), 0);
            }
        };
        let mut bound = 0;
        let mut woken = HashSet::new();
        for ((message, id), result) in chosen.into_iter().zip(results) {
            match result {
                Ok(true) => {
                    tracing::debug!(modem = %id, message_id = %message, "bound");
                    bound += 1;
                    {
                        let mut map = lock(&self.bound);
                        if map.len() >= MAX_TRACKED {
                            map.clear();
                        }
                        map.insert(message, id.clone());
                    }
                    if woken.insert(id.clone()) {
                        self.wake(Some(&id));
                    }
                }
                Ok(false) => lock(&self.router).release(message.0),
                Err(e) => {
                    lock(&self.router).release(message.0);
                    tracing::warn!(modem = %id, message_id = %message, error = %e,
                        "cannot bind")
                }
            }
        }
        (pending.len(), bound)
    }

    /// Gives the parts in flight on `modem` back to the queue.
    async fn release(&self, modem: &str) {
        match self.store.release_modem(modem, now_ms()).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(modem, parts = n, "parts in flight requeued as maybe-sent");
                self.due_at(now_ms());
            }
            Err(e) => tracing::error!(modem, error = %e, "cannot requeue the modem's parts"),
        }
    }

    // ------------------------------------------------------------ sending

    /// Records a send that did not (fully) go: `fates` has, per part,
    /// `None` for a part the modem accepted (recorded by the sender's next
    /// step) or how it failed. A temporary failure requeues the part with
    /// backoff and frees the message for another modem; a part that may
    /// have left ([`SendFailure::MaybeSent`]) is requeued counted
    /// maybe-sent and keeps the whole message on this modem (another SIM
    /// would resend it from another number); a permanent one fails it.
    async fn record_failure(
        &self,
        modem: &str,
        message: MessageId,
        parts: &[ClaimedPart],
        fates: &[Option<SendFailure>],
    ) {
        let now = now_ms();
        let mut kept = false;
        let mut temporary = false;
        for (p, failure) in parts
            .iter()
            .zip(fates)
            .filter_map(|(p, f)| Some((p, f.as_ref()?)))
        {
            match failure {
                SendFailure::Temporary(r) => {
                    temporary = true;
                    tracing::warn!(modem, message_id = %message, part = p.seq, reason = %r,
                        "temporary send failure")
                }
                SendFailure::Permanent(r) => {
                    tracing::warn!(modem, message_id = %message, part = p.seq, reason = %r,
                        "permanent send failure")
                }
                SendFailure::MaybeSent(r) => {
                    kept = true;
                    tracing::warn!(modem, message_id = %message, part = p.seq, reason = %r,
                        "send outcome unknown: retried on this modem only")
                }
            }
            match self
                .store
                .mark_failed(p.attempt, failure.clone(), now)
                .await
            {
                Ok(FailureOutcome::Retry { next_attempt_ms }) => self.due_at(next_attempt_ms),
                Ok(outcome) => {
                    tracing::info!(modem, message_id = %message, part = p.seq, ?outcome, "part given up")
                }
                Err(e) => tracing::error!(modem, message_id = %message, part = p.seq,
                    error = %e, "cannot record a failed part"),
            }
        }
        if kept {
            // The retry comes due on this modem's own queue (the store
            // keeps the binding), so nothing is excluded or unbound.
            self.wake(Some(modem));
        } else if temporary {
            // Fail over: another modem may take the message (the store
            // refuses while a part of it is sent: parts stay together).
            {
                let mut ex = lock(&self.exclude);
                if ex.len() >= MAX_TRACKED {
                    ex.clear();
                }
                let list = ex.entry(message).or_default();
                if !list.iter().any(|m| m == modem) {
                    list.push(modem.to_owned());
                }
            }
            match self.store.unbind(message).await {
                Ok(_) => {
                    lock(&self.bound).remove(&message);
                    self.dispatch.notify_one();
                }
                Err(e) => tracing::warn!(modem, message_id = %message, error = %e,
                    "cannot unbind for failover"),
            }
        } else {
            self.forget(message);
        }
    }

    // ------------------------------------------------------------ inbound

    async fn on_inbound(&self, part: Received, commit: oneshot::Sender<Committed>) {
        let modem = part.modem.clone();
        let row = inbound_part(&part, now_ms());
        if let Err(e) = &part.decoded {
            tracing::warn!(modem = %modem, pdu = %part.pdu, error = %e,
                "undecodable PDU: stored raw");
        }
        match self.store.commit_inbound(row).await {
            Ok(c) => {
                tracing::debug!(modem = %modem, new = c.new, completed = ?c.completed,
                    "inbound part committed");
                let _ = commit.send(Committed);
            }
            Err(e) => tracing::error!(modem = %modem, error = %e,
                "inbound part not committed: it stays on the modem"),
        }
    }

    async fn on_report(&self, report: Received, commit: oneshot::Sender<Committed>) {
        let modem = report.modem.clone();
        let Some(row) = status_report(&report, now_ms()) else {
            // Not a status report we can read: keep the PDU as a raw
            // inbound part rather than lose it or leave it filling the
            // modem's storage.
            return self.on_inbound(report, commit).await;
        };
        match self.store.record_status_report(row).await {
            Ok(o) => {
                tracing::info!(modem = %modem, message_id = ?o.message.map(|m| m.0),
                    class = ?o.class, new = o.new, "status report");
                let _ = commit.send(Committed);
            }
            Err(e) => tracing::error!(modem = %modem, error = %e,
                "status report not committed: it stays on the modem"),
        }
    }

    /// Records identity and state changes of a modem in the store.
    async fn on_state(&self, snap: &Snapshot, seen: &mut Seen) {
        let now = now_ms();
        // Before identification the modem has no stable id: nothing is
        // recorded under a temporary name.
        let Some(imei) = snap.imei.clone() else {
            return;
        };
        let info = ModemInfo {
            id: imei.clone(),
            manufacturer: snap.manufacturer.clone(),
            model: snap.model.clone(),
            revision: snap.revision.clone(),
            iccid: snap.iccid.clone(),
            imsi: snap.imsi.clone(),
            own_number: snap.own_number.clone(),
        };
        if seen.info.as_ref() != Some(&info) {
            match self.store.modem_seen(info.clone(), now).await {
                Ok(()) => seen.info = Some(info),
                Err(e) => tracing::warn!(modem = %imei, error = %e, "cannot record the modem"),
            }
        }
        if seen.state.as_deref() != Some(snap.state.as_str()) {
            match self.store.set_modem_state(&imei, &snap.state, now).await {
                Ok(_) => seen.state = Some(snap.state.clone()),
                Err(e) => tracing::warn!(modem = %imei, error = %e, "cannot record the state"),
            }
            if matches!(snap.state.as_str(), "gone" | "stopped") {
                self.release(&imei).await;
            }
            if snap.state != "ready" {
                self.unbind_modem(&imei).await;
            }
            self.dispatch.notify_one();
        }
    }
}

/// Whether `pin` names a modem the store remembers (by IMEI or ICCID;
/// names belong to live modems only).
fn names_record(r: &ModemRecord, pin: &str) -> bool {
    let pin = pin.trim();
    !pin.is_empty() && (r.id == pin || r.iccid.as_deref() == Some(pin))
}

/// What the store was last told about one modem.
#[derive(Default)]
struct Seen {
    info: Option<ModemInfo>,
    state: Option<String>,
}

/// Checks a destination: digits with an optional leading `+`, 1..=20
/// digits (TS 23.040 §9.1.2.5). Returns it trimmed.
fn check_number(to: &str) -> Result<String, EngineError> {
    let t = to.trim();
    let digits = t.strip_prefix('+').unwrap_or(t);
    if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(EngineError::InvalidNumber(format!(
            "{to:?}: want digits with an optional leading +, 1 to {MAX_DIGITS} digits"
        )));
    }
    Ok(t.to_owned())
}

/// A stored payload (SMSC field + TPDU, as enqueued) as the actor takes it.
fn encoded(payload: &[u8]) -> EncodedPdu {
    // The first octet is the SMSC field's length (TS 27.005 §3.5.1 <pdu>).
    let smsc = payload.first().map_or(0, |l| usize::from(*l) + 1);
    EncodedPdu {
        tpdu_len: payload.len().saturating_sub(smsc),
        octets: payload.to_vec(),
    }
}

/// Splits claimed parts into messages, each in part order.
fn by_message(parts: Vec<ClaimedPart>) -> Vec<Vec<ClaimedPart>> {
    let mut groups: Vec<Vec<ClaimedPart>> = Vec::new();
    for p in parts {
        match groups
            .iter_mut()
            .find(|g| g.first().map(|f| f.message) == Some(p.message))
        {
            Some(g) => g.push(p),
            None => groups.push(vec![p]),
        }
    }
    for g in &mut groups {
        g.sort_by_key(|p| p.seq);
    }
    groups
}

/// A sender's next claim-ahead window (parts), after a step that claimed:
/// doubled (at least 1, at most `max`) when the modem `waited` for that
/// step longer than 5 % of its time per part (the store holds the modem
/// up), the same when it waited less, one part smaller when it did not
/// wait. Unchanged before the modem sent anything (`part_time` unknown).
fn next_window(
    window: u32,
    max: u32,
    waited: Option<Duration>,
    part_time: Option<Duration>,
) -> u32 {
    let Some(part_time) = part_time else {
        return window;
    };
    match waited {
        Some(w) if w.saturating_mul(20) > part_time => window.saturating_mul(2).min(max).max(1),
        Some(_) => window,
        None => window.saturating_sub(1),
    }
}

/// A duration in whole milliseconds, saturating.
fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn unix_ms(ts: &Timestamp) -> Option<i64> {
    ts.to_datetime()
        .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
}

fn raw_pdu(r: &Received) -> Vec<u8> {
    hex::decode(r.pdu.trim()).unwrap_or_else(|_| r.pdu.as_bytes().to_vec())
}

/// Maps a received part onto the store's row. An undecodable PDU (or one
/// that is not an SMS-DELIVER) becomes a data part from [`UNKNOWN_SENDER`]
/// holding the raw octets, so it is kept and shown, never dropped.
fn inbound_part(r: &Received, now: i64) -> InboundPart {
    let pdu = raw_pdu(r);
    let mut part = InboundPart {
        modem: r.modem.clone(),
        sim: r.iccid.clone(),
        sender: UNKNOWN_SENDER.into(),
        scts_ms: now,
        concat: None,
        body: InboundBody::Data(pdu.clone()),
        pdu,
        storage_index: match &r.origin {
            Origin::Stored { index, .. } => Some(*index),
            Origin::Routed => None,
        },
        received_ms: now,
    };
    if let Ok(Pdu {
        tpdu: Tpdu::Deliver(d),
        ..
    }) = &r.decoded
    {
        let sender = d.originator.to_string();
        if !sender.trim().is_empty() {
            part.sender = sender;
        }
        part.scts_ms = unix_ms(&d.scts).unwrap_or(now);
        part.concat = d
            .user_data
            .header
            .as_ref()
            .and_then(|h| h.concat())
            .map(|c| Concat {
                reference: c.reference,
                total: c.total,
                seq: c.seq,
            });
        part.body = match &d.user_data.body {
            crate::pdu::Body::Text(t) => InboundBody::Text(t.clone()),
            crate::pdu::Body::Data(b) => InboundBody::Data(b.clone()),
        };
    }
    part
}

/// Maps a received SMS-STATUS-REPORT onto the store's row (TS 23.040
/// §9.2.2.3); `None` when it is not one.
fn status_report(r: &Received, now: i64) -> Option<StatusReport> {
    let Ok(Pdu {
        tpdu: Tpdu::StatusReport(s),
        ..
    }) = &r.decoded
    else {
        return None;
    };
    Some(StatusReport {
        modem: r.modem.clone(),
        mr: s.message_reference,
        recipient: s.recipient.to_string(),
        scts_ms: unix_ms(&s.scts),
        discharge_ms: unix_ms(&s.discharge_time),
        status: s.status.0,
        pdu: raw_pdu(r),
        received_ms: now,
    })
}

// ---------------------------------------------------------------- tasks

/// Consumes one actor's events until the actor ends.
async fn serve_events(inner: Arc<Inner>, slot: Arc<Slot>, mut events: mpsc::Receiver<ModemEvent>) {
    let mut seen = Seen::default();
    while let Some(ev) = events.recv().await {
        if slot.duplicate.load(Ordering::Relaxed) {
            // Stopping: nothing of this port is recorded under the IMEI.
            continue;
        }
        match ev {
            ModemEvent::State(snap) => {
                if let Some(imei) = snap.imei.as_deref() {
                    if let Some(other) = inner.served_elsewhere(&slot, imei) {
                        tracing::warn!(modem = %imei, port = %slot.port.display(),
                            serving = %other.display(),
                            "this port belongs to a modem another port already serves; \
                             leaving it alone (two actors would share one SMS storage)");
                        slot.duplicate.store(true, Ordering::Relaxed);
                        slot.stop.send_replace(true);
                        let handle = slot.handle.clone();
                        tokio::spawn(async move {
                            let _ = timeout(ACTOR_STOP, handle.shutdown()).await;
                        });
                        continue;
                    }
                }
                inner.on_state(&snap, &mut seen).await;
                if snap.state == "ready" {
                    slot.wake.notify_one();
                }
            }
            ModemEvent::Inbound { part, commit } => inner.on_inbound(part, commit).await,
            ModemEvent::StatusReport { report, commit } => inner.on_report(report, commit).await,
        }
    }
    tracing::debug!(port = %slot.port.display(), "modem events ended");
}

/// One modem's sender: while the modem is ready, runs its [`Pipeline`];
/// otherwise waits for a signal or a timer.
async fn serve_sends(inner: Arc<Inner>, slot: Arc<Slot>) {
    let mut stop = slot.stop.subscribe();
    let mut global = inner.stop.subscribe();
    let mut state = slot.handle.watch();
    let max = lock(&inner.config).dispatch_batch.max(1);
    let mut pipeline = Pipeline::new(max);
    loop {
        if *stop.borrow_and_update() || *global.borrow_and_update() {
            break;
        }
        if state.borrow_and_update().state == "ready" {
            inner.in_flight.send_modify(|n| *n += 1);
            pipeline.run(&inner, &slot, &stop, &global, &state).await;
            inner.in_flight.send_modify(|n| *n = n.saturating_sub(1));
        }
        // The dispatcher wakes this sender when it binds work here or when
        // a retry comes due; the timer is a safety net.
        tokio::select! {
            _ = stop.changed() => {}
            _ = global.changed() => {}
            r = state.changed() => if r.is_err() { break },
            _ = slot.wake.notified() => {}
            _ = tokio::time::sleep(IDLE) => {}
        }
    }
}

/// The store step a sender is waiting for: the task, the records it
/// carries, the messages they finish, and how many parts it claims.
struct Step {
    task: JoinHandle<Result<SendStep, StoreError>>,
    records: Vec<SentRecord>,
    finished: Vec<(MessageId, usize)>,
    claim: u32,
}

/// A modem's sender: the modem writes one message after the other while
/// the store commits, in ONE transaction per step, the records of the
/// parts the modem accepted since the previous step together with the
/// claim of the next messages. Every part is committed `sending` before
/// its `AT+CMGS`, so a crash leaves it maybe-sent, never lost; what a crash
/// can leave `sending` is the claimed window plus the accepted parts whose
/// record was not committed yet.
///
/// How far ahead it claims adapts to the modem against the store. A modem
/// that sends slowly next to a commit (a real one: seconds per `AT+CMGS`)
/// claims nothing ahead: after each message one step records it and
/// claims the next, and the modem waits for that one commit (under 5 % of
/// its send time, else the window opens). When the modem ran out of
/// claimed work and waited for a step longer than that, the window (parts
/// claimed ahead of the one being written) doubles, up to `dispatch_batch`
/// parts; each step the modem did not wait for shrinks it by one part.
/// An instant simulator on a slow disk thus keeps writing while the store
/// commits, and a real modem keeps one message in flight.
struct Pipeline {
    /// Claimed (committed `sending`), not yet written; one entry a message.
    ready: VecDeque<Vec<ClaimedPart>>,
    /// Accepted by the modem, not yet handed to a step.
    sent: Vec<SentRecord>,
    /// Messages all of whose parts the modem accepted, with their part
    /// count, logged once their records are committed.
    finished: Vec<(MessageId, usize)>,
    step: Option<Step>,
    /// Parts claimed ahead of the message being written.
    window: u32,
    max_window: u32,
    /// How long the modem waited for the current step (it ran dry).
    waited: Option<Duration>,
    /// How long the last message took the modem, per part.
    part_time: Option<Duration>,
    /// Whether claiming may find more (the last claim found something).
    more: bool,
}

/// Who a pipeline sends for.
struct Target<'a> {
    inner: &'a Arc<Inner>,
    slot: &'a Slot,
    modem: String,
    iccid: Option<String>,
}

impl Pipeline {
    fn new(max_window: u32) -> Pipeline {
        Pipeline {
            ready: VecDeque::new(),
            sent: Vec::new(),
            finished: Vec::new(),
            step: None,
            window: 0,
            max_window,
            waited: None,
            part_time: None,
            more: true,
        }
    }

    /// Sends until there is nothing more to claim, the modem leaves
    /// `ready` or the sender is stopped; returns with nothing claimed and
    /// unwritten, and nothing accepted unrecorded.
    async fn run(
        &mut self,
        inner: &Arc<Inner>,
        slot: &Slot,
        stop: &watch::Receiver<bool>,
        global: &watch::Receiver<bool>,
        state: &watch::Receiver<Snapshot>,
    ) {
        let snap = slot.handle.snapshot();
        let t = Target {
            inner,
            slot,
            modem: modem_id(&snap),
            iccid: snap.iccid,
        };
        self.more = true;
        loop {
            if self.step.as_ref().is_some_and(|s| s.task.is_finished()) {
                self.finish_step(&t).await;
            }
            if *stop.borrow() || *global.borrow() || state.borrow().state != "ready" {
                break;
            }
            // Take the next message before starting a step, so the step
            // claims the one after it while this one is written.
            let next = self.ready.pop_front();
            if self.step.is_none() {
                self.start_step(&t, next.is_none());
            }
            if let Some(group) = next {
                if !self.send(&t, group).await {
                    break;
                }
            } else if self.step.is_some() {
                let since = tokio::time::Instant::now();
                self.finish_step_waited(&t, Some(since)).await;
            } else {
                break;
            }
        }
        self.drain(&t).await;
    }

    /// Starts a step when there is something to record or to claim;
    /// `dry`: the modem has nothing to write, so at least one message is
    /// claimed.
    fn start_step(&mut self, t: &Target<'_>, dry: bool) {
        let ahead: usize = self.ready.iter().map(Vec::len).sum();
        let claim = if self.more {
            let want = self
                .window
                .saturating_sub(u32::try_from(ahead).unwrap_or(u32::MAX));
            if dry {
                want.max(1)
            } else {
                want
            }
        } else {
            0
        };
        if claim == 0 && self.sent.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.sent);
        let (store, modem, batch) = (t.inner.store.clone(), t.modem.clone(), records.clone());
        let task =
            tokio::spawn(async move { store.send_step(&modem, batch, claim, now_ms()).await });
        self.waited = None;
        self.step = Some(Step {
            task,
            records,
            finished: std::mem::take(&mut self.finished),
            claim,
        });
    }

    /// Waits for the running step and takes in what it claimed.
    async fn finish_step(&mut self, t: &Target<'_>) {
        self.finish_step_waited(t, None).await;
    }

    /// [`finish_step`](Pipeline::finish_step); `since`: the modem is idle
    /// waiting for it since then.
    async fn finish_step_waited(&mut self, t: &Target<'_>, since: Option<tokio::time::Instant>) {
        let Some(step) = self.step.take() else {
            return;
        };
        let modem = t.modem.as_str();
        let result = step
            .task
            .await
            .unwrap_or_else(|e| Err(StoreError::Internal(format!("send step: {e}"))));
        self.waited = since.map(|s| s.elapsed());
        match result {
            Ok(done) => {
                for (r, e) in step.records.iter().zip(&done.recorded) {
                    if let Err(e) = e {
                        tracing::error!(modem, attempt = r.attempt.0, error = %e,
                            "cannot record a sent part");
                    }
                }
                // The one line per message outcome.
                for (message, parts) in step.finished {
                    tracing::info!(modem, message_id = %message, parts, "sent");
                    t.inner.forget(message);
                }
                if step.claim > 0 {
                    self.more = !done.claimed.is_empty();
                    self.adapt();
                }
                self.ready.extend(by_message(done.claimed));
            }
            Err(e) => {
                // Nothing of the step stands: the accepted parts stay
                // `sending` (requeued maybe-sent when the modem goes or at
                // the next start), nothing was claimed.
                tracing::error!(modem, parts = step.records.len(), error = %e,
                    "cannot record sent parts");
                self.more = false;
            }
        }
    }

    /// Adapts the window after a step that claimed (see [`next_window`]).
    fn adapt(&mut self) {
        self.window = next_window(self.window, self.max_window, self.waited, self.part_time);
    }

    /// Writes one message's parts to the modem; `false` when the sender
    /// should stop for now (a temporary failure: the rest of the window is
    /// given back rather than spent on a modem that may be failing).
    async fn send(&mut self, t: &Target<'_>, parts: Vec<ClaimedPart>) -> bool {
        let Some(message) = parts.first().map(|p| p.message) else {
            return true;
        };
        let modem = t.modem.as_str();
        let pdus: Vec<EncodedPdu> = parts.iter().map(|p| encoded(&p.payload)).collect();
        let (n, started) = (pdus.len(), tokio::time::Instant::now());
        let result = call(t.slot, message, pdus).await;
        if result.is_ok() {
            let per_part = started.elapsed() / u32::try_from(n).unwrap_or(u32::MAX).max(1);
            self.part_time = Some(per_part);
        }
        let now = now_ms();
        let (sent, mut fates) = fates(result, n);
        for s in &sent {
            let Some(p) = parts.get(s.part) else { continue };
            if let Some(fate) = fates.get_mut(s.part) {
                *fate = None;
            }
            // A modem that said OK without `+CMGS: <mr>` (27.005 §3.5.1
            // makes it mandatory: a broken modem) leaves nothing to match
            // a report with: the reference is stored as unknown (NULL),
            // never as a made-up 0 that could match another part's report.
            if s.mr.is_none() {
                tracing::warn!(modem, message_id = %message, part = p.seq,
                    "the modem sent no message reference: status reports cannot be matched");
            }
            // Quotas count what left, whatever the store then says.
            lock(&t.inner.router).record_sent(modem, t.iccid.as_deref(), &p.recipient, now);
            self.sent.push(SentRecord {
                attempt: p.attempt,
                mr: s.mr,
            });
        }
        if fates.iter().all(Option::is_none) {
            self.finished.push((message, parts.len()));
            return true;
        }
        let permanent = fates
            .iter()
            .flatten()
            .all(|f| matches!(f, SendFailure::Permanent(_)));
        t.inner.record_failure(modem, message, &parts, &fates).await;
        permanent
    }

    /// Commits what is pending and gives back what was claimed but not
    /// written (not maybe-sent: it never reached the modem).
    async fn drain(&mut self, t: &Target<'_>) {
        self.finish_step(t).await;
        let unsent: Vec<AttemptId> = self.ready.drain(..).flatten().map(|p| p.attempt).collect();
        if !unsent.is_empty() {
            match t.inner.store.unclaim(unsent, now_ms()).await {
                Ok(n) => tracing::debug!(modem = %t.modem, parts = n, "claimed parts given back"),
                Err(e) => tracing::warn!(modem = %t.modem, error = %e,
                    "cannot give back claimed parts: they are requeued as maybe-sent later"),
            }
            t.inner.dispatch.notify_one();
        }
        if !self.sent.is_empty() {
            self.more = false;
            self.start_step(t, false);
            self.finish_step(t).await;
        }
    }
}

/// How a message handed to the actor ended, when not all of it left.
enum CallError {
    /// The actor's answer.
    Modem(SendError),
    /// The actor started the send and did not answer within the send's
    /// own limit: any part not confirmed may have left.
    Overran(String),
}

/// Hands one message to its modem's actor and waits for the outcome. The
/// wait in the actor's queue (behind a storage sweep, say) and the send
/// have a limit each: a request still queued at its limit is withdrawn,
/// so the actor drops it unsent and it is a plain temporary failure that
/// never leaves later; once started, a send that overruns its limit is
/// unconfirmed (its PDUs may have been written), never "not sent".
async fn call(
    slot: &Slot,
    message: MessageId,
    pdus: Vec<EncodedPdu>,
) -> Result<Vec<SentPart>, CallError> {
    let limit = slot.send_timeout.saturating_mul(
        u32::try_from(pdus.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1),
    );
    let mut call = slot
        .handle
        .submit_tracked(pdus, message.to_string())
        .map_err(CallError::Modem)?;
    if timeout(limit, &mut call.started).await.is_err() {
        // Close first, then look: a start that raced the limit is seen.
        call.started.close();
        if call.started.try_recv().is_err() {
            return Err(CallError::Modem(SendError::Temporary {
                reason: format!(
                    "the modem did not take the send up within {limit:?} (withdrawn unsent)"
                ),
                sent: vec![],
            }));
        }
    }
    match timeout(limit, call.outcome).await {
        Ok(Ok(r)) => r.map_err(CallError::Modem),
        Ok(Err(_)) => Err(CallError::Modem(SendError::Temporary {
            reason: "modem actor stopped".into(),
            sent: vec![],
        })),
        Err(_) => Err(CallError::Overran(format!(
            "the modem did not answer the send within {limit:?}: it may have left"
        ))),
    }
}

/// The parts that left and, per part, how it failed (`None`: it left, or
/// nothing is known against it): only the part the actor reports
/// unconfirmed (or, after an overrun, every part) is maybe-sent.
fn fates(
    result: Result<Vec<SentPart>, CallError>,
    n: usize,
) -> (Vec<SentPart>, Vec<Option<SendFailure>>) {
    let every = |f: SendFailure| vec![Some(f); n];
    match result {
        Ok(sent) => {
            let fates = every(SendFailure::Temporary(
                "the modem did not confirm every part".into(),
            ));
            (sent, fates)
        }
        Err(CallError::Overran(reason)) => (vec![], every(SendFailure::MaybeSent(reason))),
        Err(CallError::Modem(SendError::Temporary { reason, sent })) => {
            (sent, every(SendFailure::Temporary(reason)))
        }
        Err(CallError::Modem(SendError::Permanent { reason, sent })) => {
            (sent, every(SendFailure::Permanent(reason)))
        }
        Err(CallError::Modem(SendError::Unconfirmed { reason, sent, part })) => {
            let mut fates = every(SendFailure::Temporary(format!(
                "not written: part {} of the same send is unconfirmed",
                part.saturating_add(1)
            )));
            if let Some(f) = fates.get_mut(part) {
                *f = Some(SendFailure::MaybeSent(reason));
            }
            (sent, fates)
        }
    }
}

/// The dispatcher: routes due messages to modems whenever the queue
/// changes, a modem's readiness changes, or a known due time comes.
async fn dispatch(inner: Arc<Inner>) {
    let mut stop = inner.stop.subscribe();
    let mut cursor = inner.store.subscribe();
    let now = now_ms();
    let since = now.saturating_sub(HISTORY_MS);
    match inner.store.route_history(since, now).await {
        Ok(history) => lock(&inner.router).restore(&history),
        Err(e) => tracing::warn!(error = %e, "cannot restore the routing history"),
    }
    inner.unbind_leftovers().await;
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        // Messages that must wait (a pinned modem absent, quotas) stay at
        // the head of the queue: when a whole batch of them binds nothing,
        // look further (up to the store's cap) so they cannot starve the
        // rest; back to the configured batch once something binds.
        let base = lock(&inner.config).dispatch_batch.max(1);
        let mut batch = base;
        loop {
            let (seen, bound) = inner.dispatch_round(batch).await;
            if *stop.borrow() {
                return;
            }
            if seen < batch as usize {
                break;
            }
            if bound == 0 {
                if batch >= MAX_LIMIT {
                    break;
                }
                batch = batch.saturating_mul(4).min(MAX_LIMIT);
            } else {
                batch = base;
            }
        }
        let idle = inner.idle_wait();
        tokio::select! {
            _ = stop.changed() => {}
            r = cursor.changed() => if r.is_err() { break },
            _ = inner.dispatch.notified() => {}
            _ = tokio::time::sleep(idle) => {
                // A backoff or schedule may have come due for work that
                // stays bound (pinned, or partly sent): let senders look.
                inner.wake(None);
            }
        }
    }
}

/// Expiry passes and the counters behind [`Engine::modems`].
async fn maintain(inner: Arc<Inner>) {
    let mut stop = inner.stop.subscribe();
    let mut cursor = inner.store.subscribe();
    let mut last_expiry = tokio::time::Instant::now();
    let mut counters = tokio::time::interval(Duration::from_secs(1));
    counters.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = true;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            r = cursor.changed() => { if r.is_err() { break } dirty = true; continue }
            _ = counters.tick() => {}
        }
        let interval = lock(&inner.config).maintenance_interval;
        let now = now_ms();
        if last_expiry.elapsed() >= interval {
            last_expiry = tokio::time::Instant::now();
            match inner.store.expire_due(now).await {
                Ok(r) if r.outbound_expired + r.inbound_partials > 0 => {
                    tracing::info!(
                        outbound_expired = r.outbound_expired,
                        inbound_partials = r.inbound_partials,
                        "expiry pass"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "expiry pass failed"),
            }
            inner.check_absent(now).await;
        }
        if dirty {
            dirty = false;
            match inner.store.modems(now).await {
                Ok(list) => {
                    *lock(&inner.records) = list.into_iter().map(|r| (r.id.clone(), r)).collect()
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the modem counters"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_checked() {
        for ok in ["+4915112345678", "4915112345678", " 112 ", "+1"] {
            assert!(check_number(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "+",
            "++49",
            "+49 151",
            "abc",
            "+49-151",
            &"1".repeat(21),
        ] {
            let e = check_number(bad).unwrap_err();
            assert_eq!(e.code(), "invalid_number", "{bad}");
        }
        assert!(check_number(&"9".repeat(20)).is_ok());
    }

    #[test]
    fn the_claim_window_follows_the_modem_against_the_store() {
        let ms = Duration::from_millis;
        let us = Duration::from_micros;
        // A real modem (2 s per part) waiting 5 ms for a commit: nothing
        // is claimed ahead, one commit per message.
        assert_eq!(next_window(0, 16, Some(ms(5)), Some(ms(2000))), 0);
        // An instant modem (150 µs) waiting 3 ms: the window opens, then
        // doubles up to the cap.
        assert_eq!(next_window(0, 16, Some(ms(3)), Some(us(150))), 1);
        assert_eq!(next_window(4, 16, Some(ms(3)), Some(us(150))), 8);
        assert_eq!(next_window(16, 16, Some(ms(3)), Some(us(150))), 16);
        // No wait: one part less, never below 0.
        assert_eq!(next_window(8, 16, None, Some(us(150))), 7);
        assert_eq!(next_window(0, 16, None, Some(us(150))), 0);
        // Nothing sent yet: nothing learnt.
        assert_eq!(next_window(3, 16, Some(ms(50)), None), 3);
        // A cap of 0 (misconfigured) still claims one part ahead at most.
        assert_eq!(next_window(0, 0, Some(ms(3)), Some(us(150))), 1);
    }

    #[test]
    fn payload_length_skips_the_smsc_field() {
        assert_eq!(encoded(&[0, 1, 2, 3]).tpdu_len, 3);
        assert_eq!(encoded(&[2, 0x91, 0x21, 1, 2]).tpdu_len, 2);
        // A broken length never underflows.
        assert_eq!(encoded(&[9, 1]).tpdu_len, 0);
        assert_eq!(encoded(&[]).tpdu_len, 0);
    }

    fn claimed(message: i64, seq: u32) -> ClaimedPart {
        ClaimedPart {
            part: crate::store::PartId(message * 10 + i64::from(seq)),
            message: MessageId(message),
            attempt: crate::store::AttemptId(0),
            seq,
            total: 3,
            recipient: "+1".into(),
            payload: vec![0],
            attempt_no: 1,
            maybe_sent: false,
        }
    }

    #[test]
    fn claimed_parts_are_grouped_per_message_in_order() {
        let groups = by_message(vec![
            claimed(1, 2),
            claimed(2, 1),
            claimed(1, 1),
            claimed(1, 3),
        ]);
        let shape: Vec<Vec<(i64, u32)>> = groups
            .iter()
            .map(|g| g.iter().map(|p| (p.message.0, p.seq)).collect())
            .collect();
        assert_eq!(shape, vec![vec![(1, 1), (1, 2), (1, 3)], vec![(2, 1)]]);
    }

    fn received(pdu: &str, decoded: Result<Pdu, PduError>) -> Received {
        Received {
            modem: "350000000079190".into(),
            iccid: Some("89001010000000000018".into()),
            origin: Origin::Stored {
                mem: "SM".into(),
                index: 3,
            },
            pdu: pdu.into(),
            decoded,
        }
    }

    #[test]
    fn undecodable_pdu_is_kept_raw() {
        let r = received(
            "00040B91",
            crate::pdu::decode_hex("00040B91", Default::default()),
        );
        assert!(r.decoded.is_err());
        let p = inbound_part(&r, 1_000);
        assert_eq!(p.sender, UNKNOWN_SENDER);
        assert_eq!(p.pdu, vec![0x00, 0x04, 0x0B, 0x91]);
        assert_eq!(p.body, InboundBody::Data(p.pdu.clone()));
        assert_eq!(p.storage_index, Some(3));
        assert_eq!(p.scts_ms, 1_000);
        // Not a status report either: the report path falls back to it.
        assert!(status_report(&r, 1_000).is_none());
    }

    #[test]
    fn deliver_is_mapped_with_sender_time_and_concat() {
        use crate::pdu::{encode_deliver, DeliverOptions};
        let from = Address::parse_number("+4915112345678").unwrap();
        let opts = DeliverOptions {
            scts: Timestamp::new(26, 11, 26, 10, 0, 0, 4),
            reference: 7,
            ..DeliverOptions::default()
        };
        let text = "x".repeat(200);
        let parts = encode_deliver(&from, &text, &opts).unwrap();
        let hexed = parts[1].hex();
        let r = received(&hexed, crate::pdu::decode_hex(&hexed, Default::default()));
        let p = inbound_part(&r, 5);
        assert_eq!(p.sender, "+4915112345678");
        assert_eq!(
            p.concat,
            Some(Concat {
                reference: 7,
                total: 2,
                seq: 2
            })
        );
        // 2026-11-26 10:00:00 +01:00
        assert_eq!(p.scts_ms, 1_795_683_600_000);
        assert!(matches!(p.body, InboundBody::Text(ref t) if t.chars().all(|c| c == 'x')));
    }
}
