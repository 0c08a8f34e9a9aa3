//! The simulated network: an SMSC and the air between the modems.
//!
//! What a modem sends (`NetEvent::Submitted`, an SMS-SUBMIT) is routed here:
//! to another simulated modem's number it becomes an SMS-DELIVER (originator
//! the sender's number, SCTS now, same PID/DCS/UDH/UD, TS 23.040 §9.2.2.1)
//! handed to that modem; to any other number it is recorded as delivered
//! to the outside world. A message the receiving modem cannot take now
//! (storage full, unplugged, hung) is kept and retried, as an SMSC does
//! (TS 23.040 §3.2.5, "SMS-DELIVER ... retried"). When the SUBMIT asked for
//! a status report (TP-SRR), an SMS-STATUS-REPORT (TS 23.040 §9.2.2.3)
//! goes back to the sender `report_delay` after delivery.
//!
//! The outbox (what the network received from the modems, multipart
//! messages reassembled) is shared state behind a mutex: it is touched
//! briefly by the modem tasks and read by the control socket, never held
//! across an await.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::Instrument;

use super::modem::ReceiveError;
use super::runtime::ModemHandle;

/// How long the SMSC waits before retrying a message a modem refused.
const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// How long the SMSC keeps retrying before giving up (a day: the default
/// validity period of most SMSCs).
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The outbox keeps this many most recent messages.
const OUTBOX_CAP: usize = 10_000;

/// Multipart groups still missing parts are kept at most this many, and
/// for at most [`PARTIAL_TIMEOUT`].
const MAX_PARTIAL_GROUPS: usize = 1024;

/// A multipart message whose parts stop coming is recorded as partial after this.
const PARTIAL_TIMEOUT: Duration = Duration::from_secs(120);

/// One message the network received from a modem, as `sim ctl outbox` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxRecord {
    /// Sequence number in this simulator run.
    pub id: u64,
    /// Index of the sending modem.
    pub modem: usize,
    /// The sending SIM's number.
    pub from: String,
    /// The destination address as the modem sent it.
    pub to: String,
    /// The text (parts joined); `null` when the data is 8-bit.
    pub text: Option<String>,
    /// Number of parts.
    pub parts: u8,
    /// When the network received the (last) part, RFC 3339.
    pub time: String,
    /// Whether TP-SRR asked for a status report.
    pub report_requested: bool,
    /// The simulated modem it went to, or `null` for the outside world.
    pub to_modem: Option<usize>,
    /// The TP-MR of each part, in sequence order.
    pub mrs: Vec<u8>,
    /// Seqs missing when a multipart message was recorded incomplete.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_parts: Vec<u8>,
}

/// What `sim ctl inject` asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Injection {
    /// Target modem.
    pub modem: usize,
    /// Originator address.
    pub from: String,
    /// The text.
    pub text: String,
    /// Force this many parts (the text is cut into that many pieces).
    pub parts: Option<u8>,
    /// Deliver the parts last-first.
    pub out_of_order: bool,
    /// Class 0 (flash) message.
    pub class0: bool,
    /// UCS-2 even if GSM 7-bit would do.
    pub ucs2: bool,
}

/// What `sim ctl inject` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Injected {
    /// Target modem.
    pub modem: usize,
    /// Originator.
    pub from: String,
    /// The text.
    pub text: String,
    /// Number of parts.
    pub parts: usize,
    /// The concatenation reference (multipart only).
    pub reference: Option<u16>,
    /// The TPDUs in the order they were handed to the modem, hex.
    pub tpdus: Vec<String>,
    /// Whether the modem took every part at once; `false` means the
    /// network keeps retrying (storage full, unplugged, hung).
    pub delivered: bool,
}

/// A cheap, cloneable handle to the network.
#[derive(Clone)]
pub struct Network {
    inner: Arc<Inner>,
}

struct Inner {
    modems: Vec<ModemHandle>,
    report_delay: Duration,
    state: Mutex<State>,
    shutdown: watch::Receiver<bool>,
}

#[derive(Default)]
struct State {
    outbox: VecDeque<OutboxRecord>,
    next_id: u64,
    /// Incomplete multipart submissions: (modem, to, ref, total) -> parts.
    partial: Vec<PartialGroup>,
    next_ref: u16,
    /// Deliveries and reports waiting to be retried.
    in_flight: usize,
}

struct PartialGroup {
    key: (usize, String, u16, u8),
    from: String,
    to_modem: Option<usize>,
    first: Instant,
    report_requested: bool,
    /// (seq, mr, text)
    parts: Vec<(u8, u8, Option<String>)>,
}

impl Network {
    /// A network joining `modems`; tasks it spawns stop when `shutdown` turns true.
    pub fn new(
        modems: Vec<ModemHandle>,
        report_delay: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                modems,
                report_delay,
                state: Mutex::new(State::default()),
                shutdown,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the outbox half-written
        // in a way that matters to a simulator; keep serving.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The modems.
    pub fn modems(&self) -> &[ModemHandle] {
        &self.inner.modems
    }

    /// The outbox, oldest first.
    pub fn outbox(&self) -> Vec<OutboxRecord> {
        let mut st = self.state();
        expire_partials(&mut st, Instant::now(), false);
        st.outbox.iter().cloned().collect()
    }

    /// Messages waiting for a modem to take them.
    pub fn in_flight(&self) -> usize {
        self.state().in_flight
    }

    /// Modem `from` sent `tpdu` (an SMS-SUBMIT) with message reference `mr`.
    /// Never blocks: delivery and reports run in their own tasks.
    pub fn submitted(&self, from: usize, tpdu: Vec<u8>, mr: u8) {
        let Some(sender) = self.inner.modems.get(from) else {
            tracing::warn!(modem = from, "submission from an unknown modem ignored");
            return;
        };
        let now = OffsetDateTime::now_utc();
        let submit = match codec::decode_submit(&tpdu) {
            Ok(s) => s,
            Err(e) => {
                // The modem accepted it, so the SMSC rejects it (a real one
                // would answer RP-ERROR); nothing to route.
                tracing::warn!(modem = from, mr, error = %e, tpdu = %hex::encode_upper(&tpdu), "undecodable SMS-SUBMIT dropped");
                return;
            }
        };
        let target = self.find_modem(&submit.to);
        tracing::info!(
            modem = from, mr, to = %submit.to, to_modem = ?target,
            report = submit.report_requested, concat = ?submit.concat,
            "network received a message"
        );
        self.record(from, &sender.number, &submit, mr, target, now);
        match target {
            Some(t) => match codec::submit_to_deliver(&tpdu, &sender.number, now) {
                Ok(deliver) => {
                    let net = self.clone();
                    let report = submit
                        .report_requested
                        .then(|| (from, mr, submit.to.clone(), now));
                    self.spawn(async move {
                        if net.deliver_until_taken(t, deliver, false).await {
                            if let Some((from, mr, to, scts)) = report {
                                net.report_later(from, mr, to, scts).await;
                            }
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(modem = from, mr, error = %e, "cannot convert SMS-SUBMIT to SMS-DELIVER")
                }
            },
            None => {
                if submit.report_requested {
                    let net = self.clone();
                    let to = submit.to.clone();
                    self.spawn(async move { net.report_later(from, mr, to, now).await });
                }
            }
        }
    }

    /// Builds and delivers an inbound message from the outside world.
    pub async fn inject(&self, inj: &Injection) -> Result<Injected, String> {
        if self.inner.modems.get(inj.modem).is_none() {
            return Err(format!(
                "no modem {} (there are {})",
                inj.modem,
                self.inner.modems.len()
            ));
        }
        if !super::identity::valid_number(&inj.from) {
            return Err(format!("invalid --from number {:?}", inj.from));
        }
        let reference = {
            let mut st = self.state();
            st.next_ref = st.next_ref.wrapping_add(1);
            st.next_ref
        };
        let mut tpdus = codec::deliver_tpdus(inj, reference, OffsetDateTime::now_utc())?;
        let multipart = tpdus.len() > 1;
        if inj.out_of_order {
            tpdus.reverse();
        }
        let mut delivered = true;
        for tpdu in &tpdus {
            // Try each part once here so the caller learns whether it landed;
            // a refused part is retried in the background.
            let taken = self.try_deliver(inj.modem, tpdu.clone(), false).await;
            if !taken {
                delivered = false;
                let net = self.clone();
                let tpdu = tpdu.clone();
                let modem = inj.modem;
                self.spawn(async move {
                    tokio::time::sleep(RETRY_INTERVAL).await;
                    net.deliver_until_taken(modem, tpdu, false).await;
                });
            }
        }
        tracing::info!(modem = inj.modem, from = %inj.from, parts = tpdus.len(), delivered, "injected");
        Ok(Injected {
            modem: inj.modem,
            from: inj.from.clone(),
            text: inj.text.clone(),
            parts: tpdus.len(),
            reference: multipart.then_some(reference),
            tpdus: tpdus.iter().map(hex::encode_upper).collect(),
            delivered,
        })
    }

    fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut shutdown = self.inner.shutdown.clone();
        tokio::spawn(
            async move {
                tokio::select! {
                    _ = fut => {}
                    _ = shutdown.wait_for(|s| *s) => {}
                }
            }
            .in_current_span(),
        );
    }

    fn find_modem(&self, to: &str) -> Option<usize> {
        let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
        let to = digits(to);
        self.inner
            .modems
            .iter()
            .find(|m| !to.is_empty() && digits(&m.number) == to)
            .map(|m| m.index)
    }

    /// One attempt to hand `tpdu` to modem `to`; true when it took it.
    async fn try_deliver(&self, to: usize, tpdu: Vec<u8>, report: bool) -> bool {
        let Some(handle) = self.inner.modems.get(to) else {
            return false;
        };
        let r = if report {
            handle.status_report(tpdu).await
        } else {
            handle.deliver(tpdu).await
        };
        match r {
            Ok(Ok(())) => true,
            Ok(Err(ReceiveError::NotReady)) => false,
            Err(e) => {
                tracing::debug!(modem = to, error = %e, "delivery attempt failed");
                false
            }
        }
    }

    /// Retries until modem `to` takes `tpdu` (or the SMSC gives up).
    async fn deliver_until_taken(&self, to: usize, tpdu: Vec<u8>, report: bool) -> bool {
        let start = Instant::now();
        let mut counted = false;
        loop {
            if self.try_deliver(to, tpdu.clone(), report).await {
                if counted {
                    self.state().in_flight -= 1;
                }
                return true;
            }
            if !counted {
                counted = true;
                self.state().in_flight += 1;
                tracing::info!(
                    modem = to,
                    report,
                    "modem cannot take the message now; retrying"
                );
            }
            if start.elapsed() > GIVE_UP_AFTER {
                self.state().in_flight -= 1;
                tracing::warn!(modem = to, report, "message expired undelivered");
                return false;
            }
            tokio::time::sleep(RETRY_INTERVAL).await;
        }
    }

    /// Sends the SMS-STATUS-REPORT for (`from`, `mr`) after the report delay.
    async fn report_later(&self, from: usize, mr: u8, recipient: String, scts: OffsetDateTime) {
        tokio::time::sleep(self.inner.report_delay).await;
        let tpdu = codec::status_report(mr, &recipient, scts, OffsetDateTime::now_utc());
        tracing::info!(modem = from, mr, "status report sent");
        self.deliver_until_taken(from, tpdu, true).await;
    }

    /// Adds the submission to the outbox, joining multipart parts.
    fn record(
        &self,
        modem: usize,
        from: &str,
        submit: &codec::Submit,
        mr: u8,
        to_modem: Option<usize>,
        now: OffsetDateTime,
    ) {
        let mut st = self.state();
        expire_partials(&mut st, Instant::now(), false);
        let Some((reference, total, seq)) = submit.concat.filter(|c| c.1 > 1) else {
            push_record(
                &mut st,
                OutboxRecord {
                    id: 0,
                    modem,
                    from: from.to_string(),
                    to: submit.to.clone(),
                    text: submit.text.clone(),
                    parts: 1,
                    time: rfc3339(now),
                    report_requested: submit.report_requested,
                    to_modem,
                    mrs: vec![mr],
                    missing_parts: Vec::new(),
                },
            );
            return;
        };
        let key = (modem, submit.to.clone(), reference, total);
        let pos = match st.partial.iter().position(|g| g.key == key) {
            Some(p) => p,
            None => {
                if st.partial.len() >= MAX_PARTIAL_GROUPS {
                    expire_partials(&mut st, Instant::now(), true);
                }
                st.partial.push(PartialGroup {
                    key,
                    from: from.to_string(),
                    to_modem,
                    first: Instant::now(),
                    report_requested: false,
                    parts: Vec::new(),
                });
                st.partial.len() - 1
            }
        };
        let Some(group) = st.partial.get_mut(pos) else {
            return;
        };
        group.report_requested |= submit.report_requested;
        if group.parts.iter().any(|p| p.0 == seq) {
            tracing::info!(
                modem,
                seq,
                reference,
                "duplicate part ignored in the outbox"
            );
            return;
        }
        group.parts.push((seq, mr, submit.text.clone()));
        if group.parts.len() >= usize::from(total) {
            let group = st.partial.swap_remove(pos);
            let record = group_record(group, now);
            push_record(&mut st, record);
        }
    }
}

/// Turns a (possibly incomplete) multipart group into an outbox record.
fn group_record(mut group: PartialGroup, now: OffsetDateTime) -> OutboxRecord {
    group.parts.sort_by_key(|p| p.0);
    let (modem, to, _reference, total) = group.key;
    let missing = (1..=total)
        .filter(|s| !group.parts.iter().any(|p| p.0 == *s))
        .collect();
    let text = group
        .parts
        .iter()
        .map(|p| p.2.as_deref())
        .collect::<Option<Vec<_>>>()
        .map(|v| v.concat());
    OutboxRecord {
        id: 0,
        modem,
        from: group.from,
        to,
        text,
        parts: total,
        time: rfc3339(now),
        report_requested: group.report_requested,
        to_modem: group.to_modem,
        mrs: group.parts.iter().map(|p| p.1).collect(),
        missing_parts: missing,
    }
}

fn push_record(st: &mut State, mut record: OutboxRecord) {
    st.next_id += 1;
    record.id = st.next_id;
    st.outbox.push_back(record);
    while st.outbox.len() > OUTBOX_CAP {
        st.outbox.pop_front();
    }
}

/// Records multipart groups that waited too long as partial messages;
/// with `force_oldest`, also the oldest one (to make room).
fn expire_partials(st: &mut State, now: Instant, force_oldest: bool) {
    let oldest = if force_oldest {
        st.partial.iter().map(|g| g.first).min()
    } else {
        None
    };
    let (expired, kept): (Vec<_>, Vec<_>) =
        std::mem::take(&mut st.partial).into_iter().partition(|g| {
            now.saturating_duration_since(g.first) > PARTIAL_TIMEOUT || Some(g.first) == oldest
        });
    st.partial = kept;
    for g in expired {
        tracing::warn!(
            modem = g.key.0,
            reference = g.key.2,
            "multipart message recorded incomplete"
        );
        let record = group_record(g, OffsetDateTime::now_utc());
        push_record(st, record);
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Glue between the network and the PDU codec.
mod codec {
    use time::OffsetDateTime;

    use super::Injection;

    /// What the network needs to know about an SMS-SUBMIT.
    #[derive(Debug, Clone)]
    pub struct Submit {
        pub to: String,
        pub report_requested: bool,
        pub text: Option<String>,
        /// (reference, total, seq)
        pub concat: Option<(u16, u8, u8)>,
    }

    pub fn decode_submit(_tpdu: &[u8]) -> Result<Submit, String> {
        Err("codec not merged yet".into())
    }

    pub fn submit_to_deliver(
        _tpdu: &[u8],
        _from: &str,
        _scts: OffsetDateTime,
    ) -> Result<Vec<u8>, String> {
        Err("codec not merged yet".into())
    }

    pub fn status_report(
        _mr: u8,
        _recipient: &str,
        _scts: OffsetDateTime,
        _dt: OffsetDateTime,
    ) -> Vec<u8> {
        Vec::new()
    }

    pub fn deliver_tpdus(
        _inj: &Injection,
        _reference: u16,
        _scts: OffsetDateTime,
    ) -> Result<Vec<Vec<u8>>, String> {
        Err("codec not merged yet".into())
    }
}
