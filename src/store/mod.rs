//! The durable store: SQLite, owned by one thread, the single source of
//! truth for messages.
//!
//! * [`Store`] is a cheap-to-clone handle. Every operation is sent to the
//!   store thread over a bounded channel and answered over a oneshot
//!   channel, so the async runtime never blocks on SQLite. The futures need
//!   no particular runtime: sync code drives them with
//!   `futures::executor::block_on`.
//! * The thread groups whatever requests are queued into one transaction
//!   (group commit, one fsync per batch) with a savepoint per request, and
//!   answers only after `COMMIT`: an `Ok` answer means durable
//!   (`synchronous = FULL` by default). See [`worker`].
//! * Outbound queue ([`NewOutbound`] -> parts -> attempts), inbound parts
//!   with de-duplication and persisted reassembly ([`InboundPart`]), status
//!   reports ([`StatusReport`]), modems and SIMs, and an append-only event
//!   log with a monotonic cursor for the bus ([`Event`]).
//!
//! Time is always passed in (`now_ms`, unix milliseconds), so every rule
//! that depends on it is testable. `docs/store.md` describes the schema,
//! the states and the durability promises.
#![warn(missing_docs)]

mod config;
mod consent;
mod delivery;
mod error;
mod events;
mod inbound;
mod limits;
mod outbound;
#[cfg(test)]
mod plans;
mod refs;
mod registry;
mod retention;
mod routing;
mod schema;
mod types;
pub(crate) mod worker;

use std::sync::Arc;
use std::thread;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot, watch};

pub use config::{RetryPolicy, StoreConfig, Synchronous};
pub use consent::{ConsentChange, ConsentOutcome, ConsentRecord, ConsentState};
pub use error::{Result, StoreError};
pub use events::{Event, EventKind};
pub use limits::{MAX_LIMIT, MAX_PARTS, MAX_PDU_BYTES};
pub use outbound::{SendStep, SentRecord};
pub use retention::{CompactReport, ForgetReport, PurgeReport, RetentionPlan};
pub use routing::{MAX_HISTORY, MAX_RECENT};
pub use schema::SCHEMA_VERSION;
pub use types::*;

use worker::{BoxJob, Call};

/// Messages, expiry passes and group expiry handled per maintenance call.
const EXPIRY_BATCH: u32 = 1000;
/// Prepared statements kept per connection. The store has about a hundred
/// distinct statements and a message touches some twenty of them; with
/// rusqlite's default of 16 the cache thrashed and every statement was
/// parsed again on every use.
const STATEMENT_CACHE: usize = 256;

/// The current time as unix milliseconds, for callers that have no clock
/// of their own.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

enum Msg {
    Job(BoxJob),
    /// Runs alone, outside any transaction (checkpoint, VACUUM).
    Outside(BoxJob),
    Close(oneshot::Sender<()>),
}

/// Handle to the store thread. Clone it freely; the thread stops when
/// [`Store::close`] is called or every handle is dropped.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Msg>,
    config: Arc<StoreConfig>,
    report: OpenReport,
    cursor: watch::Receiver<u64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.config.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store from async code: the file work runs on the store
    /// thread, not on the runtime.
    ///
    /// Creates the file (and its directory) if missing, takes the owner
    /// lock (`<path>-owner.lock`), migrates the schema, and puts parts left
    /// `sending` by a crash back in the queue, flagged maybe-sent.
    pub async fn open_async(config: StoreConfig) -> Result<Store> {
        let config = Arc::new(config);
        let (tx, rx) = mpsc::channel::<Msg>(config.queue_capacity.max(1));
        let (opened_tx, opened_rx) = oneshot::channel::<Result<OpenReport>>();
        let (cursor_tx, cursor_rx) = watch::channel(0);
        let cfg = Arc::clone(&config);
        thread::Builder::new()
            .name("smsgate-store".into())
            .spawn(move || run_thread(cfg, rx, opened_tx, cursor_tx))
            .map_err(|source| StoreError::Io {
                path: config.path.clone(),
                source,
            })?;
        let report = opened_rx.await.map_err(|_| StoreError::Closed)??;
        Ok(Store {
            tx,
            config,
            report,
            cursor: cursor_rx,
        })
    }

    /// Opens the store from sync code (blocks the calling thread).
    pub fn open(config: StoreConfig) -> Result<Store> {
        futures::executor::block_on(Store::open_async(config))
    }

    /// What opening found (schema versions, parts requeued after a crash).
    pub fn open_report(&self) -> OpenReport {
        self.report
    }

    /// The settings in force.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Watches the newest event cursor, updated after each commit: the bus
    /// waits on it instead of polling.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.cursor.clone()
    }

    /// Finishes queued requests, closes the database and releases the owner
    /// lock. Other handles get [`StoreError::Closed`] afterwards.
    pub async fn close(self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Job(Box::new(Call { f, reply })))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Like `call`, but the closure runs after the pending batch committed
    /// and outside any transaction.
    async fn call_outside<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Outside(Box::new(Call { f, reply })))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    // ----- outbound -----

    /// Queues a message. Answers after it is durable. With an idempotency
    /// key already used for the same content, answers the first message
    /// (`created: false`); with other content, [`StoreError::IdempotencyConflict`].
    pub async fn enqueue(&self, req: NewOutbound, now_ms: i64) -> Result<Enqueued> {
        self.call(move |c| outbound::enqueue(c, &req, now_ms)).await
    }

    /// Claims up to `limit` parts due at `now_ms` for `modem`: binds
    /// unbound due messages it may send (unpinned or pinned to it), then
    /// marks parts bound to it `sending` and opens an attempt each. Without
    /// a router; the engine uses [`unbound_due`](Store::unbound_due),
    /// [`bind`](Store::bind) and [`claim_bound`](Store::claim_bound).
    pub async fn claim_due(
        &self,
        modem: &str,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedPart>> {
        let modem = modem.to_owned();
        self.call(move |c| outbound::claim_due(c, &modem, now_ms, limit))
            .await
    }

    // ----- routing -----

    /// Due messages with queued parts and no modem bound (pinned ones
    /// included: the router binds them to their pin), oldest due first.
    pub async fn unbound_due(&self, now_ms: i64, limit: u32) -> Result<Vec<PendingMessage>> {
        self.call(move |c| routing::unbound_due(c, now_ms, limit))
            .await
    }

    /// Binds an unbound message (all its parts) to `modem`; `false` if it
    /// was bound already or is finished.
    pub async fn bind(&self, message: MessageId, modem: &str) -> Result<bool> {
        let modem = modem.to_owned();
        self.call(move |c| routing::bind(c, message, &modem)).await
    }

    /// Binds several messages (one request, one commit), each as
    /// [`bind`](Store::bind) does; one answer per binding, in order.
    pub async fn bind_many(&self, bindings: Vec<(MessageId, String)>) -> Result<Vec<Result<bool>>> {
        self.call(move |c| routing::bind_many(c, &bindings)).await
    }

    /// [`unbound_due`](Store::unbound_due) and, when it found any,
    /// [`queued_by_modem`](Store::queued_by_modem), in one round trip: what
    /// a dispatch round needs.
    pub async fn dispatch_view(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<(Vec<PendingMessage>, Vec<(String, u64)>)> {
        self.call(move |c| {
            let pending = routing::unbound_due(c, now_ms, limit)?;
            let loads = if pending.is_empty() {
                Vec::new()
            } else {
                routing::queued_by_modem(c)?
            };
            Ok((pending, loads))
        })
        .await
    }

    /// Drops a message's binding while none of its parts is in flight or
    /// sent (failover); a pinned message stays bound to its pin. `true` if
    /// the binding changed.
    pub async fn unbind(&self, message: MessageId) -> Result<bool> {
        self.call(move |c| routing::unbind(c, message)).await
    }

    /// Claims the due parts of the one message bound to `modem` that is
    /// due first (in part order): only what is about to be written to the
    /// modem is `sending`, so a crash leaves at most that message
    /// maybe-sent.
    pub async fn claim_next_message(&self, modem: &str, now_ms: i64) -> Result<Vec<ClaimedPart>> {
        let modem = modem.to_owned();
        self.call(move |c| outbound::claim_next_message(c, &modem, now_ms))
            .await
    }

    /// One step of a modem's sender, in one commit: records the parts the
    /// modem accepted since the last step (`sent`, each on its own: a
    /// stale one does not undo the others), then claims up to
    /// `claim_parts` parts of whole messages bound to `modem` (none for 0),
    /// due first first. Each claimed part is `sending` before it is
    /// written to the modem, so a crash leaves it maybe-sent, never lost.
    pub async fn send_step(
        &self,
        modem: &str,
        sent: Vec<SentRecord>,
        claim_parts: u32,
        now_ms: i64,
    ) -> Result<SendStep> {
        let modem = modem.to_owned();
        self.call(move |c| outbound::send_step(c, &modem, &sent, claim_parts, now_ms))
            .await
    }

    /// Gives back claimed parts that were never written to a modem: their
    /// attempts are dropped, the parts are `queued` again (not
    /// maybe-sent), and messages none of whose parts left are unbound.
    /// Returns how many parts went back.
    pub async fn unclaim(&self, attempts: Vec<AttemptId>, now_ms: i64) -> Result<u64> {
        self.call(move |c| outbound::unclaim(c, &attempts, now_ms))
            .await
    }

    /// Unbinds the messages bound to `modem` that it has not started and
    /// that are not pinned (bindings left by an earlier run, or a modem
    /// gone for a while), so other modems take them. Returns how many.
    pub async fn unbind_modem(&self, modem: &str) -> Result<u64> {
        let modem = modem.to_owned();
        self.call(move |c| routing::unbind_modem(c, &modem)).await
    }

    /// Fails the queued rest of every unpinned message partly sent through
    /// `modem` (it cannot be finished on another SIM: TS 23.040
    /// §9.2.3.24.1 reassembly goes by sender number). Returns the parts
    /// failed.
    pub async fn fail_stranded(&self, modem: &str, now_ms: i64) -> Result<u64> {
        let modem = modem.to_owned();
        self.call(move |c| routing::fail_stranded(c, &modem, now_ms))
            .await
    }

    /// Like [`claim_due`](Store::claim_due), but only parts already bound
    /// to `modem`.
    pub async fn claim_bound(
        &self,
        modem: &str,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedPart>> {
        let modem = modem.to_owned();
        self.call(move |c| outbound::claim_bound(c, &modem, now_ms, limit))
            .await
    }

    /// What [`Router::restore`](crate::router::Router::restore) needs:
    /// per-SIM day counts and the last send per (SIM, recipient) since
    /// `since_ms`, and the sends of the minute before `now_ms`. Bounded
    /// index reads of summary tables, whatever the store holds.
    pub async fn route_history(&self, since_ms: i64, now_ms: i64) -> Result<RouteHistory> {
        self.call(move |c| routing::route_history(c, since_ms, now_ms))
            .await
    }

    /// Per modem id: parts bound to it and queued, plus parts in flight.
    pub async fn queued_by_modem(&self) -> Result<Vec<(String, u64)>> {
        self.call(routing::queued_by_modem).await
    }

    /// The modem accepted the part (`+CMGS: <mr>`).
    pub async fn mark_sent(&self, attempt: AttemptId, mr: u8, now_ms: i64) -> Result<()> {
        self.mark_sent_ref(attempt, Some(mr), now_ms).await
    }

    /// The modem accepted the part; `mr` is `None` when it answered `OK`
    /// without `+CMGS: <mr>`: the reference is stored as unknown (NULL),
    /// so no status report is ever matched to this part.
    pub async fn mark_sent_ref(
        &self,
        attempt: AttemptId,
        mr: Option<u8>,
        now_ms: i64,
    ) -> Result<()> {
        self.call(move |c| outbound::mark_sent(c, attempt, mr, now_ms))
            .await
    }

    /// The attempt failed: a temporary failure requeues the part with the
    /// configured backoff (until `max_attempts`), a permanent one fails it.
    pub async fn mark_failed(
        &self,
        attempt: AttemptId,
        failure: SendFailure,
        now_ms: i64,
    ) -> Result<FailureOutcome> {
        let retry = self.config.retry;
        self.call(move |c| outbound::mark_failed(c, &retry, attempt, &failure, now_ms))
            .await
    }

    /// Puts the parts in flight on `modem` back in the queue, flagged
    /// maybe-sent (the modem vanished mid-send). Returns how many.
    pub async fn release_modem(&self, modem: &str, now_ms: i64) -> Result<u64> {
        let modem = modem.to_owned();
        self.call(move |c| {
            let n = outbound::requeue_sending(c, Some(&modem), now_ms, "modem went away mid-send")?;
            // What may have left through the vanished modem goes back to
            // the queue like a part caught in flight (the failover
            // promise); only a confirmed part keeps a message on it.
            routing::unbind_vanished(c, &modem)?;
            Ok(n)
        })
        .await
    }

    /// Cancels a message whose parts are all still queued (repeating a
    /// cancel is fine).
    pub async fn cancel(&self, id: MessageId, now_ms: i64) -> Result<()> {
        self.call(move |c| outbound::cancel(c, id, now_ms)).await
    }

    /// The message a client's idempotency key is bound to, if any.
    pub async fn find_by_key(&self, key: &str) -> Result<Option<MessageId>> {
        let key = key.to_owned();
        self.call(move |c| outbound::find_by_key(c, &key)).await
    }

    /// A message and its parts.
    pub async fn outbound_status(&self, id: MessageId) -> Result<OutboundStatus> {
        self.call(move |c| outbound::status(c, id)).await
    }

    // ----- delivery -----

    /// Stores a status report and applies it to the part it answers.
    pub async fn record_status_report(&self, report: StatusReport) -> Result<ReportOutcome> {
        let window = self.config.report_window_ms;
        self.call(move |c| delivery::record(c, window, &report))
            .await
    }

    // ----- inbound -----

    /// Stores an inbound part. Delete it from the modem only after this
    /// answered `Ok` (it is then durable, or was stored before).
    pub async fn commit_inbound(&self, part: InboundPart) -> Result<InboundCommit> {
        self.call(move |c| inbound::commit(c, &part)).await
    }

    /// One inbound message.
    pub async fn inbound(&self, id: InboundId) -> Result<InboundMessage> {
        self.call(move |c| inbound::get(c, id)).await
    }

    /// Inbound messages not yet acknowledged, after `after`, oldest first.
    pub async fn inbound_unacked(
        &self,
        after: InboundId,
        limit: u32,
    ) -> Result<Vec<InboundMessage>> {
        self.call(move |c| inbound::list(c, after, limit, true))
            .await
    }

    /// All inbound messages after `after`, oldest first (for an inbox).
    pub async fn inbound_since(&self, after: InboundId, limit: u32) -> Result<Vec<InboundMessage>> {
        self.call(move |c| inbound::list(c, after, limit, false))
            .await
    }

    /// Records that the bus handed the message to a client.
    pub async fn inbound_delivered(&self, id: InboundId, now_ms: i64) -> Result<()> {
        self.call(move |c| inbound::set_bus_state(c, id, BusState::Delivered, now_ms))
            .await
    }

    /// Records that a client acknowledged the message.
    pub async fn ack_inbound(&self, id: InboundId, now_ms: i64) -> Result<()> {
        self.call(move |c| inbound::set_bus_state(c, id, BusState::Acked, now_ms))
            .await
    }

    // ----- maintenance -----

    /// Expires outbound messages past `valid_until` and turns inbound
    /// groups older than `reassembly_timeout_ms` into partial messages.
    /// Call it periodically; each call handles a bounded amount.
    pub async fn expire_due(&self, now_ms: i64) -> Result<ExpiryReport> {
        let timeout = self.config.reassembly_timeout_ms;
        self.call(move |c| {
            Ok(ExpiryReport {
                outbound_expired: outbound::expire(c, now_ms, EXPIRY_BATCH)?,
                inbound_partials: inbound::expire(c, timeout, now_ms, EXPIRY_BATCH)?,
            })
        })
        .await
    }

    // ----- modems -----

    /// Records a modem (and its SIM) as seen.
    pub async fn modem_seen(&self, info: ModemInfo, now_ms: i64) -> Result<()> {
        self.call(move |c| registry::modem_seen(c, &info, now_ms))
            .await
    }

    /// Records a modem's state and logs it for the bus; returns the cursor.
    pub async fn set_modem_state(&self, modem: &str, state: &str, now_ms: i64) -> Result<u64> {
        let (modem, state) = (modem.to_owned(), state.to_owned());
        self.call(move |c| registry::set_modem_state(c, &modem, &state, now_ms))
            .await
    }

    /// Modems seen, with their counters for the UTC day of `now_ms`.
    pub async fn modems(&self, now_ms: i64) -> Result<Vec<ModemRecord>> {
        self.call(move |c| registry::modems(c, now_ms, MAX_LIMIT))
            .await
    }

    /// SIMs seen.
    pub async fn sims(&self) -> Result<Vec<SimRecord>> {
        self.call(move |c| registry::sims(c, MAX_LIMIT)).await
    }

    /// Store-wide counters.
    pub async fn stats(&self) -> Result<StoreStats> {
        self.call(registry::stats).await
    }

    // ----- events -----

    /// Events after `cursor` (0: from the start), oldest first, at most
    /// `limit` (capped at [`MAX_LIMIT`]).
    pub async fn events_since(&self, cursor: u64, limit: u32) -> Result<Vec<Event>> {
        let limit = limits::limit(limit);
        self.call(move |c| events::since(c, cursor, limit)).await
    }

    // ----- privacy (consent, handles, retention; see docs/privacy.md) -----

    /// A number's consent record.
    pub async fn consent(&self, number: &str) -> Result<Option<ConsentRecord>> {
        let number = number.to_owned();
        self.call(move |c| consent::get(c, &number)).await
    }

    /// The consent record of a handle.
    pub async fn consent_by_handle(&self, handle: &str) -> Result<Option<ConsentRecord>> {
        let handle = handle.to_owned();
        self.call(move |c| consent::get_by_handle(c, &handle)).await
    }

    /// Consent records for admins, ordered by handle, after handle `after`
    /// ("" for the start), at most `limit` (capped at [`MAX_LIMIT`]).
    pub async fn consent_records(&self, after: &str, limit: u32) -> Result<Vec<ConsentRecord>> {
        let after = after.to_owned();
        let limit = limits::limit(limit);
        self.call(move |c| consent::list(c, &after, limit)).await
    }

    /// Stores a JOIN or STOP: joining releases the held messages (each gets
    /// a new `inbound_complete` event), stopping deletes them.
    pub async fn set_consent(&self, change: ConsentChange, now_ms: i64) -> Result<ConsentOutcome> {
        self.call(move |c| consent::change(c, &change, now_ms))
            .await
    }

    /// Records that the join explanation was sent to a number.
    pub async fn consent_explained(&self, number: &str, handle: &str, now_ms: i64) -> Result<()> {
        let (number, handle) = (number.to_owned(), handle.to_owned());
        self.call(move |c| consent::explained(c, &number, &handle, now_ms))
            .await
    }

    /// Holds an inbound message from `number` until `until_ms` (the bus
    /// must not relay it; see [`Store::is_held`]).
    pub async fn hold_inbound(
        &self,
        message: InboundId,
        number: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<()> {
        let number = number.to_owned();
        self.call(move |c| consent::hold(c, message, &number, now_ms, until_ms))
            .await
    }

    /// Whether an inbound message is held.
    pub async fn is_held(&self, message: InboundId) -> Result<bool> {
        self.call(move |c| consent::is_held(c, message)).await
    }

    /// Whether the bus may show an inbound message at log entry `cursor`
    /// (`None` for a replay of unacknowledged messages): it exists, is not
    /// held, and a released message only at its release entry.
    pub async fn showable(&self, message: InboundId, cursor: Option<u64>) -> Result<bool> {
        self.call(move |c| consent::showable(c, message, cursor))
            .await
    }

    /// The messages held for a number, oldest first.
    pub async fn held_for(&self, number: &str) -> Result<Vec<InboundId>> {
        let number = number.to_owned();
        self.call(move |c| consent::held_for(c, &number)).await
    }

    /// Deletes an inbound message and its parts (a keyword message, or one
    /// refused by the policy). Returns whether it existed.
    pub async fn delete_inbound(&self, message: InboundId) -> Result<bool> {
        self.call(move |c| consent::delete_inbound(c, message))
            .await
    }

    /// Records the handle of a number (or refreshes its last-seen time).
    pub async fn record_handle(&self, handle: String, number: String, now_ms: i64) -> Result<()> {
        self.call(move |c| consent::record_handle(c, &handle, &number, now_ms))
            .await
    }

    /// The number behind a handle.
    pub async fn handle_number(&self, handle: String) -> Result<Option<String>> {
        self.call(move |c| consent::handle_number(c, &handle)).await
    }

    /// One retention batch; call [`Store::compact`] afterwards so the bytes
    /// leave the files.
    pub async fn purge(&self, plan: RetentionPlan) -> Result<PurgeReport> {
        self.call(move |c| retention::purge(c, &plan)).await
    }

    /// Erases everything about a number (messages, parts, status reports,
    /// consent, handle) and writes one audit row with the handle and the
    /// time. Call [`Store::compact`] afterwards.
    pub async fn forget(&self, number: &str, handle: &str, now_ms: i64) -> Result<ForgetReport> {
        let (number, handle) = (number.to_owned(), handle.to_owned());
        self.call(move |c| retention::forget(c, &number, &handle, now_ms))
            .await
    }

    /// The forget audit: (handle, unix ms), newest first.
    pub async fn forget_audit(&self, limit: u32) -> Result<Vec<(String, i64)>> {
        let limit = limits::limit(limit);
        self.call(move |c| retention::forget_audit(c, limit)).await
    }

    /// Checkpoints and truncates the WAL (VACUUM when much is free), so
    /// deleted rows are gone from the files on disk.
    pub async fn compact(&self) -> Result<CompactReport> {
        self.call_outside(retention::compact).await
    }
}

/// The store thread's body: open, recover, then serve until closed.
fn run_thread(
    config: Arc<StoreConfig>,
    rx: mpsc::Receiver<Msg>,
    opened: oneshot::Sender<Result<OpenReport>>,
    cursor: watch::Sender<u64>,
) {
    let db = match schema::open(&config) {
        Ok(db) => db,
        Err(e) => {
            tracing::error!(path = %config.path.display(), error = %e, "cannot open the store");
            let _ = opened.send(Err(e));
            return;
        }
    };
    db.conn
        .set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let report = match recover(&db.conn, db.schema_from) {
        Ok(r) => r,
        Err(e) => {
            // Damage found this early is a damaged file: name it.
            let e = match e {
                StoreError::CorruptData { source, .. } => StoreError::Corrupt {
                    path: config.path.clone(),
                    source,
                },
                e => e,
            };
            tracing::error!(path = %config.path.display(), error = %e, "cannot open the store");
            let _ = opened.send(Err(e));
            return;
        }
    };
    if let Ok(last) = events::last(&db.conn) {
        cursor.send_replace(last);
    }
    tracing::info!(path = %config.path.display(), schema = report.schema_to,
        requeued_sending = report.requeued_sending, "store open");
    if opened.send(Ok(report)).is_err() {
        return;
    }
    let close = serve(&db.conn, rx, config.max_batch, &cursor);
    let schema::Opened { conn, _lock, .. } = db;
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the store");
    }
    drop(_lock);
    for done in close {
        let _ = done.send(());
    }
}

/// Puts parts a crash left `sending` back in the queue.
fn recover(conn: &Connection, schema_from: i64) -> Result<OpenReport> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(StoreError::sql("recover"))?;
    let requeued = outbound::requeue_sending(
        conn,
        None,
        now_ms(),
        "interrupted by a restart: may have been sent",
    );
    let result = requeued.and_then(|n| {
        conn.execute_batch("COMMIT")
            .map_err(StoreError::sql("recover"))?;
        Ok(n)
    });
    if result.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    let requeued_sending = result?;
    if requeued_sending > 0 {
        tracing::warn!(
            parts = requeued_sending,
            "parts were in flight when the store last stopped; requeued as maybe-sent"
        );
    }
    Ok(OpenReport {
        schema_from,
        schema_to: SCHEMA_VERSION,
        requeued_sending,
    })
}

/// Serves requests in group commits; returns the close requests, answered
/// once the database is closed.
fn serve(
    conn: &Connection,
    mut rx: mpsc::Receiver<Msg>,
    max_batch: usize,
    cursor: &watch::Sender<u64>,
) -> Vec<oneshot::Sender<()>> {
    let max_batch = max_batch.max(1);
    let mut batch: Vec<BoxJob> = Vec::with_capacity(max_batch);
    let mut close = Vec::new();
    let mut outside: Option<BoxJob> = None;
    while close.is_empty() {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Job(job) => batch.push(job),
                Msg::Close(done) => {
                    close.push(done);
                    break;
                }
                Msg::Outside(job) => {
                    outside = Some(job);
                    break;
                }
            }
            if batch.len() < max_batch {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            worker::run_batch(conn, batch.drain(..), || match events::last(conn) {
                Ok(last) => {
                    cursor.send_if_modified(|c| {
                        let newer = last > *c;
                        *c = last.max(*c);
                        newer
                    });
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the event cursor"),
            });
        }
        if let Some(job) = outside.take() {
            job.run(conn).finish(None);
        }
    }
    // Refuse what is still queued rather than leave callers hanging.
    rx.close();
    while let Ok(msg) = rx.try_recv() {
        match msg {
            Msg::Job(job) | Msg::Outside(job) => job.abort(StoreError::Closed),
            Msg::Close(done) => close.push(done),
        }
    }
    close
}
