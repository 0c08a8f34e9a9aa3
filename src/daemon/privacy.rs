//! The privacy gate wired into the daemon (docs/privacy.md): every
//! completed inbound message is decided (relay, hold, keyword, drop)
//! before the bus may show it, replies go out through the normal queue
//! pinned to the modem the message came in on, sends are checked
//! (handles mapped back, STOP honoured), and the retention purge runs at
//! start and periodically.
//!
//! Ordering without touching the store's commit path: one task tails the
//! store's event log and decides each `inbound_complete` in log order,
//! then advances a *gated cursor*. Bus subscriptions read the log only up
//! to that cursor (`Backend::gated`), and show an inbound message only if
//! it still exists and is not held. Released messages (JOIN) get a new
//! log entry from the store, which the gate passes (the sender joined) and
//! the bus then shows. The gated cursor is kept in `gate.cursor` next to
//! the database, so a restart decides what a crash left undecided.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::Config;
use super::engine::{Engine, EngineError, OutboundRequest};
use crate::bus::protocol::rfc3339_ms;
use crate::bus::{Backend, ConsentQuery, Refusal};
use crate::modem::ModemView;
use crate::privacy::{mask, Decision, Gate, PrivacyError};
use crate::store::{now_ms, ConsentRecord, Enqueued, EventKind, InboundId, Store, StoreError};

/// Where the gated cursor is kept, next to the database.
pub const CURSOR_FILE: &str = "gate.cursor";
/// Log entries decided per store query.
const PAGE: u32 = 256;
/// Wait before retrying a decision the store could not complete.
const RETRY: Duration = Duration::from_secs(1);
/// How often the retention purge (and the end of held periods) runs after
/// the one at start. More often than the daily minimum so held messages
/// are deleted within an hour of their hold period's end.
pub const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// The `client` name replies are queued under (visible in `status`).
pub const REPLY_CLIENT: &str = "smsgate-privacy";

/// The gate and the engine, shared by the decision task, the purge task
/// and the bus backend.
struct Inner {
    engine: Engine,
    gate: RwLock<Gate>,
    gated: watch::Sender<u64>,
    cursor_file: PathBuf,
}

impl Inner {
    fn gate(&self) -> Gate {
        match self.gate.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store(&self) -> &Store {
        self.engine.store()
    }
}

/// The running privacy layer.
pub struct Privacy {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Privacy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Privacy")
            .field("cursor_file", &self.inner.cursor_file)
            .finish_non_exhaustive()
    }
}

/// The state directory: the database's directory (the handle secret, the
/// gated cursor and the rejected-PIN memory live there).
pub(crate) fn state_dir(config: &Config) -> PathBuf {
    config
        .store
        .path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn open_gate(config: &Config, store: Store) -> Result<Gate, PrivacyError> {
    Gate::open(
        &config.privacy,
        &config.retention,
        &state_dir(config),
        store,
    )
}

impl Privacy {
    /// Opens the gate (creating the handle secret at first start), starts
    /// the decision task from the saved cursor and the purge task (which
    /// purges at once).
    pub fn start(config: &Config, engine: Engine) -> Result<Privacy, PrivacyError> {
        let store = engine.store().clone();
        let gate = open_gate(config, store.clone())?;
        let cursor_file = state_dir(config).join(CURSOR_FILE);
        let last = *store.subscribe().borrow();
        // No file: a first start (or an upgrade) decides from now on; a
        // cursor past the log means the database was replaced.
        let start = read_cursor(&cursor_file).map_or(last, |c| c.min(last));
        let (gated, _) = watch::channel(start);
        let inner = Arc::new(Inner {
            engine,
            gate: RwLock::new(gate),
            gated,
            cursor_file,
        });
        // Off the runtime: parsing the numbering plan takes a moment.
        tokio::task::spawn_blocking(crate::privacy::warm_up);
        let (stop, stop_rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(decide_loop(Arc::clone(&inner), start, stop_rx.clone())),
            tokio::spawn(purge_loop(Arc::clone(&inner), stop_rx)),
        ];
        tracing::info!(
            policy = config.privacy.policy.as_str(),
            cursor = start,
            "privacy gate running"
        );
        Ok(Privacy { inner, stop, tasks })
    }

    /// The bus backend: the engine behind the gate.
    pub fn backend(&self) -> Gated {
        Gated {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Applies a reloaded `[privacy]`/`[retention]` (the next decision
    /// uses it). An unusable secret keeps the old gate.
    pub fn reconfigure(&self, config: &Config) -> Result<(), PrivacyError> {
        let gate = open_gate(config, self.inner.store().clone())?;
        match self.inner.gate.write() {
            Ok(mut g) => *g = gate,
            Err(poisoned) => *poisoned.into_inner() = gate,
        }
        Ok(())
    }

    /// Stops the tasks (a decision in progress is finished by the store or
    /// redone at the next start).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn read_cursor(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().parse().ok()
}

/// Writes the cursor through a temporary file and a rename, so a crash
/// leaves the old or the new value, never a torn one.
fn save_cursor(path: &Path, cursor: u64) {
    let tmp = path.with_extension("cursor.tmp");
    let written =
        std::fs::write(&tmp, format!("{cursor}\n")).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "cannot save the gate cursor");
    }
}

/// Tails the event log and decides each completed inbound message in
/// order; only then moves the gated cursor the bus reads up to.
async fn decide_loop(inner: Arc<Inner>, start: u64, mut stop: watch::Receiver<bool>) {
    let store = inner.store().clone();
    let mut wake = store.subscribe();
    let mut cursor = start;
    loop {
        wake.borrow_and_update();
        let events = match store.events_since(cursor, PAGE).await {
            Ok(ev) => ev,
            Err(StoreError::Closed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "privacy gate: cannot read the event log; retrying");
                tokio::select! { _ = stop.changed() => return, _ = tokio::time::sleep(RETRY) => {} }
                continue;
            }
        };
        if events.is_empty() {
            tokio::select! {
                _ = stop.changed() => return,
                r = wake.changed() => if r.is_err() { return },
            }
            continue;
        }
        let mut erased = false;
        let mut decided = false;
        for ev in events {
            if let EventKind::InboundComplete { message, .. } = ev.kind {
                decided = true;
                // A decision is retried until the store takes it: relaying
                // undecided would break the promise to the sender.
                loop {
                    match decide(&inner, ev.cursor, message).await {
                        Ok(gone) => {
                            erased |= gone;
                            break;
                        }
                        Err(PrivacyError::Store(StoreError::Closed)) => return,
                        Err(e) => {
                            tracing::warn!(message = message.0, error = %e,
                                "privacy gate: cannot decide; retrying");
                            tokio::select! {
                                _ = stop.changed() => return,
                                _ = tokio::time::sleep(RETRY) => {}
                            }
                        }
                    }
                }
            }
            cursor = ev.cursor;
            inner.gated.send_replace(cursor);
        }
        // Only after decisions: a restart from an older cursor re-reads
        // status and modem entries, which cost nothing to pass again (and
        // a decision redone is harmless: replies are keyed by cursor), so
        // the file is not rewritten after every outbound commit.
        if decided {
            save_cursor(&inner.cursor_file, cursor);
        }
        // A message that is not kept (a keyword, an unlisted or
        // alphanumeric sender) must leave the files, not only the tables:
        // its old pages sit in the WAL until a checkpoint. Once per page
        // of decisions, so a flood of them costs one checkpoint per page.
        if erased {
            if let Err(e) = store.compact().await {
                tracing::warn!(error = %e, "privacy gate: cannot compact after deleting messages");
            }
        }
    }
}

/// Decides one message (logged at `cursor`) and queues its reply. Says
/// whether the decision deleted messages (the message itself, or held
/// ones after a STOP).
async fn decide(inner: &Inner, cursor: u64, message: InboundId) -> Result<bool, PrivacyError> {
    let store = inner.store();
    let m = match store.inbound(message).await {
        Ok(m) => m,
        // Deleted (a keyword, forgotten, purged) before we got to it.
        Err(StoreError::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if store.is_held(message).await? {
        return Ok(false);
    }
    let out = inner.gate().on_inbound(&m, now_ms()).await?;
    let erased = !matches!(out.decision, Decision::Relay | Decision::Hold { .. });
    let Some(reply) = out.reply else {
        return Ok(erased);
    };
    // Queued off the decision path: the engine may wait on the store or a
    // full queue, and inbound must keep flowing.
    let engine = inner.engine.clone();
    let modem = m.modem.clone();
    let req = OutboundRequest {
        to: out.number,
        text: reply.text,
        // The log cursor never repeats, so a decision redone after a
        // crash does not send the same reply twice.
        key: Some(format!("privacy-reply:{cursor}")),
        modem: Some(modem.clone()),
        report: false,
        flash: false,
        validity: None,
        send_at_ms: None,
        client: Some(REPLY_CLIENT.to_owned()),
    };
    let kind = reply.kind;
    let handle = out.handle;
    tokio::spawn(async move {
        match engine.send(req).await {
            Ok(done) => tracing::info!(modem = %modem, message = done.id.0, handle = %handle,
                kind = ?kind, "privacy reply queued"),
            Err(e) => tracing::warn!(modem = %modem, handle = %handle, kind = ?kind, error = %e,
                "privacy reply not queued"),
        }
    });
    Ok(erased)
}

/// The retention purge at start and every [`PURGE_EVERY`].
async fn purge_loop(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        match inner.gate().purge(now_ms()).await {
            Ok(r) => tracing::debug!(purged = r.total(), "retention purge done"),
            Err(PrivacyError::Store(StoreError::Closed)) => return,
            Err(e) => tracing::warn!(error = %e, "retention purge failed"),
        }
    }
}

/// The engine behind the privacy gate, as the bus's [`Backend`].
#[derive(Clone)]
pub struct Gated {
    inner: Arc<Inner>,
}

impl Backend for Gated {
    fn store(&self) -> &Store {
        self.inner.store()
    }

    fn send(
        &self,
        req: OutboundRequest,
    ) -> impl std::future::Future<Output = Result<Enqueued, EngineError>> + Send {
        let engine = self.inner.engine.clone();
        async move { engine.send(req).await }
    }

    fn modems(&self) -> Vec<ModemView> {
        self.inner.engine.modems()
    }

    fn gated(&self) -> watch::Receiver<u64> {
        self.inner.gated.subscribe()
    }

    fn show(&self, number: &str, see_numbers: bool) -> String {
        self.inner.gate().show(number, see_numbers)
    }

    fn recipient(
        &self,
        to: String,
    ) -> impl std::future::Future<Output = Result<String, Refusal>> + Send {
        let gate = self.inner.gate();
        async move {
            match gate.check_send(&to, now_ms()).await {
                Ok(target) => Ok(target.number),
                Err(e) => {
                    tracing::info!(to = %mask(&to), code = e.code(), "send refused by the privacy gate");
                    Err((e.code(), e.to_string()))
                }
            }
        }
    }

    fn forget(
        &self,
        who: String,
    ) -> impl std::future::Future<Output = Result<Value, Refusal>> + Send {
        let gate = self.inner.gate();
        let engine = self.inner.engine.clone();
        async move {
            let forgotten = gate.forget(&who, now_ms()).await.map_err(refusal)?;
            // The store's rows are gone; the router's memory must not
            // keep routing this person by stickiness until a restart.
            if let Some(number) = &forgotten.number {
                engine.forget_peer(number);
            }
            Ok(json!({ "erased": forgotten.erased }))
        }
    }

    fn consent(
        &self,
        query: ConsentQuery,
        see_numbers: bool,
    ) -> impl std::future::Future<Output = Result<Value, Refusal>> + Send {
        let gate = self.inner.gate();
        async move {
            let page = gate.consent_records(&query).await.map_err(refusal)?;
            let records: Vec<Value> = page
                .records
                .iter()
                .map(|r| consent_json(r, see_numbers))
                .collect();
            Ok(json!({ "records": records, "next": page.next }))
        }
    }
}

/// A privacy failure as a bus refusal.
fn refusal(e: PrivacyError) -> Refusal {
    match e {
        e @ (PrivacyError::InvalidNumber { .. } | PrivacyError::InvalidHandle(_)) => {
            ("invalid_number", e.to_string())
        }
        PrivacyError::Store(e) => (crate::bus::protocol::store_error_code(&e), e.to_string()),
        e => ("internal", e.to_string()),
    }
}

/// One consent record as the `consent` op shows it: the number only to a
/// peer that may see numbers.
fn consent_json(r: &ConsentRecord, see_numbers: bool) -> Value {
    let mut v = json!({
        "handle": r.handle,
        "state": r.state.as_str(),
        "since": rfc3339_ms(r.since_ms),
        "keyword": r.keyword,
        "modem": r.modem,
    });
    if see_numbers {
        if let Value::Object(o) = &mut v {
            o.insert("number".into(), Value::String(r.number.clone()));
        }
    }
    v
}
