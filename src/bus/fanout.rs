//! The bus fan-out: one reader of the event log per server, many
//! subscribers.
//!
//! The [`feed`] task tails the store's event log up to the privacy gate's
//! cursor and builds each event's line once (one `outbound_status` per
//! status event, one inbound record per inbound event, both the number and
//! the handle view), then publishes it on a bounded
//! [`tokio::sync::broadcast`] channel ([`CAPACITY`] items). Each
//! [`subscription`] filters the items by its event mask and queues them for
//! its client, so the store's cost per event no longer grows with the
//! number of subscribers.
//!
//! Every item carries the cursor of the item published before it
//! ([`Item::prev`]). A subscriber whose own cursor is below it has missed
//! something: it lagged (the channel overwrote items it had not read,
//! because its client reads slowly), it subscribed with an older `since`,
//! or the feed skipped the log while nobody listened. It then reads the gap
//! from the store itself, exactly as a lone subscriber would, and rejoins
//! the live items once caught up. Nothing is buffered per client beyond its
//! writer queue, and a slow client never slows the feed or the others: the
//! log in SQLite *is* the buffer.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, watch};

use super::protocol::{inbound_event, modem_event, status_event, EventMask};
use super::server::{Out, Outbox};
use super::Backend;
use crate::store::{EventKind, InboundId, InboundMessage, StoreError};

/// Items the feed keeps for subscribers that have not read them yet; a
/// subscriber further behind lags and reads from the store. Bounds the
/// fan-out's memory to this many lines (each held once, however many
/// subscribers).
pub const CAPACITY: usize = 256;

/// Events or inbound messages fetched from the store per query.
const PAGE: u32 = 256;

/// How long to wait before retrying a failed store read.
const RETRY: Duration = Duration::from_secs(1);

/// One log entry as subscribers see it, built once.
#[derive(Debug)]
pub struct Item {
    /// The cursor of the item published before this one (or where the feed
    /// skipped to): a subscriber below it missed entries and reads them
    /// from the store.
    pub prev: u64,
    /// This entry's cursor.
    pub cursor: u64,
    /// The line.
    pub line: Line,
}

/// An event line in every view a subscriber may need.
#[derive(Debug)]
pub enum Line {
    /// An `inbound` event.
    Inbound {
        /// The message.
        message: InboundId,
        /// The line with the sender's number (peers with the see-numbers
        /// right).
        numbers: Arc<str>,
        /// The line with the sender's `sms:` handle.
        handles: Arc<str>,
        /// Set by the first subscriber whose client got the line, so the
        /// store records the delivery once, not once per subscriber.
        delivered: Arc<AtomicBool>,
    },
    /// A `status` event (no phone number in it: one view).
    Status(Arc<str>),
    /// A `modem` event.
    Modem(Arc<str>),
}

/// The sending side the server keeps; subscribers call `subscribe` on it.
pub type Sender = broadcast::Sender<Arc<Item>>;

/// A new feed channel.
pub(super) fn channel() -> Sender {
    broadcast::channel(CAPACITY).0
}

/// What the fan-out holds and how often subscribers fell behind it
/// ([`Server::fanout`](super::Server::fanout)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FanoutStats {
    /// Lines the feed holds now, at most [`CAPACITY`] however many
    /// subscribers there are and however slowly they read.
    pub held: usize,
    /// Subscribers connected to the feed.
    pub subscribers: usize,
    /// Times a subscriber read a gap from the store (it lagged, or it
    /// subscribed with an older `since`) since the server started.
    pub catch_ups: u64,
}

/// Reads the log after the gate's cursor and publishes each entry's line
/// on `tx`, until `stop` or the store closes.
pub(super) async fn feed<B: Backend>(backend: B, tx: Sender, mut stop: watch::Receiver<bool>) {
    let store = backend.store().clone();
    let mut wake = backend.gated();
    let mut cursor = *wake.borrow();
    let mut published = cursor;
    loop {
        let gated = *wake.borrow_and_update();
        if tx.receiver_count() == 0 {
            // Nobody listens: skip the log without reading it. A subscriber
            // that comes later sees `prev` above its cursor and reads what
            // it needs from the store.
            cursor = cursor.max(gated);
            published = cursor;
        } else {
            let events = match store.events_since(cursor, PAGE).await {
                Ok(ev) => ev,
                Err(StoreError::Closed) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "bus feed: cannot read the event log; retrying");
                    if pause(&mut stop).await {
                        return;
                    }
                    continue;
                }
            };
            let mut read = false;
            for ev in events.into_iter().filter(|e| e.cursor <= gated) {
                read = true;
                match build(&backend, EventMask::default(), ev.cursor, ev.kind).await {
                    Ok(Some(line)) => {
                        let item = Item {
                            prev: published,
                            cursor: ev.cursor,
                            line,
                        };
                        // No receiver left is fine: the next one catches up.
                        let _ = tx.send(Arc::new(item));
                        published = ev.cursor;
                    }
                    Ok(None) => {}
                    Err(StoreError::Closed) => return,
                    Err(e) => {
                        tracing::warn!(cursor = ev.cursor, error = %e,
                            "bus feed: cannot build an event; retrying");
                        if pause(&mut stop).await {
                            return;
                        }
                        break;
                    }
                }
                cursor = ev.cursor;
            }
            if read {
                continue;
            }
        }
        tokio::select! {
            changed = wake.changed() => if changed.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

/// Waits [`RETRY`]; true when the server stops meanwhile.
async fn pause(stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(RETRY) => false,
        _ = stop.changed() => true,
    }
}

/// One subscriber: first the inbound messages nobody acknowledged yet
/// (at-least-once), then what it missed since `start` (from the store),
/// then the feed's items, reading gaps from the store whenever it fell
/// behind.
pub(super) async fn subscription<B: Backend>(
    backend: B,
    out: Outbox,
    mut feed: broadcast::Receiver<Arc<Item>>,
    catch_ups: Arc<AtomicU64>,
    mask: EventMask,
    start: u64,
    see: bool,
) {
    let mut sub = Subscriber {
        backend,
        out,
        mask,
        see,
        replayed: HashSet::new(),
    };
    if mask.inbound && sub.unacked(start).await.is_err() {
        return;
    }
    // What the gate decided already, read from the store: the feed's
    // items start wherever it is now, and no new event may come for long.
    let gated = *sub.backend.gated().borrow();
    let Ok(mut cursor) = sub.catch_up(start, gated).await else {
        return;
    };
    loop {
        let item = match feed.recv().await {
            Ok(item) => item,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                // The next item's `prev` shows the gap; it is read from
                // the store then.
                tracing::debug!(
                    missed,
                    cursor,
                    "bus: subscriber lagged; replaying from the store"
                );
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if item.cursor <= cursor {
            continue;
        }
        if item.prev > cursor {
            // Below this item's cursor: the item follows the gap.
            catch_ups.fetch_add(1, Ordering::Relaxed);
            if sub.catch_up(cursor, item.prev).await.is_err() {
                return;
            }
        }
        if let Some(out) = sub.pick(&item.line) {
            if sub.out.event(out).await.is_err() {
                return;
            }
        }
        cursor = item.cursor;
    }
}

/// The subscriber's client or the store went away: stop.
struct Gone;

struct Subscriber<B: Backend> {
    backend: B,
    out: Outbox,
    mask: EventMask,
    /// This peer sees numbers (else `sms:` handles).
    see: bool,
    /// Unacked messages sent up front; their log entries are skipped so a
    /// message is not sent twice in one subscription.
    replayed: HashSet<InboundId>,
}

impl<B: Backend> Subscriber<B> {
    /// Sends the inbound messages nobody acknowledged yet.
    async fn unacked(&mut self, start: u64) -> Result<(), Gone> {
        let store = self.backend.store().clone();
        let mut wake = self.backend.gated();
        let mut after = InboundId(0);
        loop {
            let page = match store.inbound_unacked(after, PAGE).await {
                Ok(p) => p,
                Err(StoreError::Closed) => return Err(Gone),
                Err(e) => {
                    tracing::warn!(error = %e, "bus: cannot list unacknowledged inbound; retrying");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            let full = page.len() >= PAGE as usize;
            // Every message of the page has its completion logged by now:
            // wait until the gate decided up to there, then show only what
            // it relayed (neither deleted nor held).
            let logged = *store.subscribe().borrow();
            if wake.wait_for(|gated| *gated >= logged).await.is_err() {
                return Err(Gone);
            }
            for m in page {
                after = m.id;
                let shown = match relayed(&self.backend, None, m.id).await {
                    Ok(Some(m)) => m,
                    Ok(None) => continue,
                    Err(StoreError::Closed) => return Err(Gone),
                    Err(e) => {
                        tracing::warn!(inbound = %m.id, error = %e, "bus: cannot replay a message; skipped");
                        continue;
                    }
                };
                let line = inbound_line(&self.backend, start, &shown, self.see);
                self.replayed.insert(m.id);
                if self
                    .out
                    .event(Out::Inbound(line, m.id, None))
                    .await
                    .is_err()
                {
                    return Err(Gone);
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Reads the log entries after `from` up to `to` from the store and
    /// sends those the subscriber wants; returns the new cursor (`to`, or
    /// `from` when `to` is below it).
    async fn catch_up(&mut self, from: u64, to: u64) -> Result<u64, Gone> {
        let store = self.backend.store().clone();
        let mut cursor = from;
        while cursor < to {
            let events = match store.events_since(cursor, PAGE).await {
                Ok(ev) => ev,
                Err(StoreError::Closed) => return Err(Gone),
                Err(e) => {
                    tracing::warn!(error = %e, "bus: cannot read the event log; retrying");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            if events.is_empty() {
                break;
            }
            for ev in events {
                if ev.cursor > to {
                    return Ok(to);
                }
                if let EventKind::InboundComplete { message, .. } = &ev.kind {
                    if self.mask.inbound && self.replayed.remove(message) {
                        cursor = ev.cursor;
                        continue;
                    }
                }
                let line = match build(&self.backend, self.mask, ev.cursor, ev.kind).await {
                    Ok(line) => line,
                    Err(StoreError::Closed) => return Err(Gone),
                    Err(e) => {
                        tracing::warn!(cursor = ev.cursor, error = %e, "bus: cannot build an event; retrying");
                        tokio::time::sleep(RETRY).await;
                        break;
                    }
                };
                if let Some(out) = line.and_then(|l| self.pick(&l)) {
                    if self.out.event(out).await.is_err() {
                        return Err(Gone);
                    }
                }
                cursor = ev.cursor;
            }
        }
        Ok(cursor.max(to))
    }

    /// The subscriber's view of a line, or `None` when its mask does not
    /// want it or it was replayed already.
    fn pick(&mut self, line: &Line) -> Option<Out> {
        match line {
            Line::Inbound {
                message,
                numbers,
                handles,
                delivered,
            } if self.mask.inbound => {
                if self.replayed.remove(message) {
                    return None;
                }
                let text = if self.see { numbers } else { handles };
                Some(Out::Inbound(
                    Arc::clone(text),
                    *message,
                    Some(Arc::clone(delivered)),
                ))
            }
            Line::Status(l) if self.mask.status => Some(Out::Event(Arc::clone(l))),
            Line::Modem(l) if self.mask.modem => Some(Out::Event(Arc::clone(l))),
            _ => None,
        }
    }
}

/// A row that was pruned since its event was logged is skipped, not an
/// error.
fn found<T>(r: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The line for one log entry, or `None` when `mask` does not want it (or
/// its subject is gone or held).
async fn build<B: Backend>(
    backend: &B,
    mask: EventMask,
    cursor: u64,
    kind: EventKind,
) -> Result<Option<Line>, StoreError> {
    let store = backend.store();
    Ok(match kind {
        EventKind::InboundComplete { message, .. } if mask.inbound => {
            relayed(backend, Some(cursor), message)
                .await?
                .map(|m| Line::Inbound {
                    message,
                    numbers: inbound_line(backend, cursor, &m, true),
                    handles: inbound_line(backend, cursor, &m, false),
                    delivered: Arc::new(AtomicBool::new(false)),
                })
        }
        EventKind::MessageState {
            message,
            state,
            reason,
        } if mask.status => found(store.outbound_status(message).await)?.map(|s| {
            Line::Status(
                status_event(cursor, &state, reason.as_deref(), &s)
                    .to_string()
                    .into(),
            )
        }),
        EventKind::ModemState { modem, state } if mask.modem => {
            let views = backend.modems();
            let view = views.iter().find(|v| v.id == modem);
            Some(Line::Modem(
                modem_event(cursor, &modem, &state, view).to_string().into(),
            ))
        }
        _ => None,
    })
}

/// A message the gate relayed, or `None` when it is gone (deleted,
/// purged), held, or released later than log entry `entry` (`None`:
/// replaying unacknowledged messages).
async fn relayed<B: Backend>(
    backend: &B,
    entry: Option<u64>,
    message: InboundId,
) -> Result<Option<InboundMessage>, StoreError> {
    let store = backend.store();
    // Checked first: a message released from a hold is shown at its
    // release entry only, in the order the gate released it.
    if !store.showable(message, entry).await? {
        return Ok(None);
    }
    found(store.inbound(message).await)
}

/// The `inbound` event line carrying `cursor`; `from` is the sender's
/// handle unless the peer sees numbers.
fn inbound_line<B: Backend>(backend: &B, cursor: u64, m: &InboundMessage, see: bool) -> Arc<str> {
    let mut v = inbound_event(cursor, m);
    if let Some(from) = v.get_mut("from") {
        *from = Value::String(backend.show(&m.sender, see));
    }
    v.to_string().into()
}

/// Whether the writer should record a delivery (the first client to get
/// a live line does; replays always do).
pub(super) fn first_delivery(flag: Option<&AtomicBool>) -> bool {
    match flag {
        None => true,
        Some(f) => !f.swap(true, Ordering::AcqRel),
    }
}
