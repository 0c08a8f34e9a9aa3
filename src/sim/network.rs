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

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::Instrument;

use super::modem::ReceiveError;
use super::runtime::ModemHandle;
use crate::pdu::reassembly::{PartKey, Partial, Pushed, Reassembler, ReassemblyConfig};

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
    /// The concatenation reference the parts were joined by (TS 23.040
    /// §9.2.3.24.1 8-bit or §9.2.3.24.8 16-bit, widened); multipart only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<u16>,
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

struct State {
    outbox: VecDeque<OutboxRecord>,
    next_id: u64,
    /// Incomplete multipart submissions, keyed by (sending modem,
    /// destination, reference, total).
    partial: Reassembler<Part>,
    next_ref: u8,
    /// Deliveries and reports waiting to be retried, per target modem.
    waiting: HashMap<usize, usize>,
}

/// One part of a multipart submission, as the outbox needs it.
struct Part {
    /// The sending SIM's number.
    from: String,
    mr: u8,
    text: Option<String>,
    report_requested: bool,
    to_modem: Option<usize>,
}

impl State {
    fn new() -> Self {
        Self {
            outbox: VecDeque::new(),
            next_id: 0,
            partial: Reassembler::new(ReassemblyConfig {
                timeout: PARTIAL_TIMEOUT,
                max_groups: MAX_PARTIAL_GROUPS,
            }),
            next_ref: 0,
            waiting: HashMap::new(),
        }
    }
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
                state: Mutex::new(State::new()),
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

    /// Modem `k`, or an error naming how many there are.
    pub fn modem(&self, k: usize) -> Result<&ModemHandle, String> {
        self.inner
            .modems
            .get(k)
            .ok_or_else(|| format!("no modem {k} (there are {})", self.inner.modems.len()))
    }

    /// The outbox, oldest first.
    pub fn outbox(&self) -> Vec<OutboxRecord> {
        let mut st = self.state();
        expire_partials(&mut st, Instant::now());
        st.outbox.iter().cloned().collect()
    }

    /// Messages and reports the network holds for modem `k` because it
    /// could not take them yet (storage full, unplugged, hung).
    pub fn waiting(&self, k: usize) -> usize {
        self.state().waiting.get(&k).copied().unwrap_or(0)
    }

    fn count_waiting(&self, k: usize, up: bool) {
        let mut st = self.state();
        let n = st.waiting.entry(k).or_insert(0);
        *n = if up {
            n.saturating_add(1)
        } else {
            n.saturating_sub(1)
        };
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
            Some(t) => match codec::submit_to_deliver(&submit, &sender.number, now) {
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
        self.modem(inj.modem)?;
        if !super::identity::valid_number(&inj.from) {
            return Err(format!("invalid --from number {:?}", inj.from));
        }
        // 8-bit concatenation references (IEI 0x00), as most SMSCs use.
        let reference = {
            let mut st = self.state();
            st.next_ref = st.next_ref.wrapping_add(1);
            u16::from(st.next_ref)
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
                    self.count_waiting(to, false);
                }
                return true;
            }
            if !counted {
                counted = true;
                self.count_waiting(to, true);
                tracing::info!(
                    modem = to,
                    report,
                    "modem cannot take the message now; retrying"
                );
            }
            if start.elapsed() > GIVE_UP_AFTER {
                self.count_waiting(to, false);
                tracing::warn!(modem = to, report, "message expired undelivered");
                return false;
            }
            tokio::time::sleep(RETRY_INTERVAL).await;
        }
    }

    /// Sends the SMS-STATUS-REPORT for (`from`, `mr`) after the report delay.
    async fn report_later(&self, from: usize, mr: u8, recipient: String, scts: OffsetDateTime) {
        tokio::time::sleep(self.inner.report_delay).await;
        let tpdu = match codec::status_report(mr, &recipient, scts, OffsetDateTime::now_utc()) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(modem = from, mr, error = %e, "cannot encode the status report");
                return;
            }
        };
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
        expire_partials(&mut st, Instant::now());
        let part = Part {
            from: from.to_string(),
            mr,
            text: submit.text.clone(),
            report_requested: submit.report_requested,
            to_modem,
        };
        let (reference, total, seq) = submit.concat.unwrap_or((0, 1, 1));
        let key = PartKey {
            modem: modem.to_string(),
            sender: submit.to.clone(),
            reference,
            total,
        };
        let record = |parts: Vec<(u8, Part)>, missing: Vec<u8>| OutboxRecord {
            id: 0,
            modem,
            from: from.to_string(),
            to: submit.to.clone(),
            text: parts
                .iter()
                .map(|(_, p)| p.text.as_deref())
                .collect::<Option<Vec<_>>>()
                .map(|v| v.concat()),
            parts: total.max(1),
            time: rfc3339(now),
            report_requested: parts.iter().any(|(_, p)| p.report_requested),
            to_modem: parts.first().and_then(|(_, p)| p.to_modem),
            mrs: parts.iter().map(|(_, p)| p.mr).collect(),
            missing_parts: missing,
            reference: submit.concat.map(|(r, _, _)| r),
        };
        match st.partial.push(key, seq, part, Instant::now()) {
            Ok(Pushed::Complete(parts)) => {
                let numbered = parts.into_iter().zip(1u8..).map(|(p, s)| (s, p)).collect();
                let r = record(numbered, Vec::new());
                push_record(&mut st, r);
            }
            Ok(Pushed::Pending { evicted, .. }) => {
                if let Some(p) = evicted {
                    push_partial(&mut st, *p);
                }
            }
            Ok(Pushed::Duplicate { seq, .. }) => {
                tracing::info!(
                    modem,
                    seq,
                    reference,
                    "duplicate part ignored in the outbox"
                );
            }
            Err(e) => {
                // A broken concatenation IE is ignored (TS 23.040 §9.2.3.24.1):
                // the part is a message of its own.
                tracing::info!(modem, error = %e, "concatenation IE ignored");
                let r = record(
                    vec![(
                        1,
                        Part {
                            from: from.to_string(),
                            mr,
                            text: submit.text.clone(),
                            report_requested: submit.report_requested,
                            to_modem,
                        },
                    )],
                    Vec::new(),
                );
                push_record(
                    &mut st,
                    OutboxRecord {
                        parts: 1,
                        reference: None,
                        ..r
                    },
                );
            }
        }
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

/// Records an incomplete multipart message (timed out or evicted).
fn push_partial(st: &mut State, p: Partial<Part>) {
    tracing::warn!(modem = %p.key.modem, reference = p.key.reference, missing = ?p.missing, "multipart message recorded incomplete");
    let text = p
        .parts
        .iter()
        .map(|(_, part)| part.text.as_deref())
        .collect::<Option<Vec<_>>>()
        .map(|v| v.concat());
    let record = OutboxRecord {
        id: 0,
        modem: p.key.modem.parse().unwrap_or(usize::MAX),
        from: p
            .parts
            .first()
            .map(|(_, part)| part.from.clone())
            .unwrap_or_default(),
        to: p.key.sender.clone(),
        text,
        parts: p.key.total,
        time: rfc3339(OffsetDateTime::now_utc()),
        report_requested: p.parts.iter().any(|(_, part)| part.report_requested),
        to_modem: p.parts.first().and_then(|(_, part)| part.to_modem),
        mrs: p.parts.iter().map(|(_, part)| part.mr).collect(),
        missing_parts: p.missing,
        reference: Some(p.key.reference),
    };
    push_record(st, record);
}

/// Records multipart groups that waited too long as partial messages.
fn expire_partials(st: &mut State, now: Instant) {
    for p in st.partial.expire(now) {
        push_partial(st, p);
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Glue between the network and the PDU codec (`crate::pdu`).
mod codec {
    use time::OffsetDateTime;

    use super::Injection;
    use crate::pdu::gsm7::{self, Tables};
    use crate::pdu::{
        self, Address, Alphabet, Body, Dcs, DecodeOptions, Deliver, DeliverOptions, Direction, Ie,
        MessageClass, ProtocolId, Status, Timestamp, Tpdu, Udh, UserData,
    };

    /// Septets of text in one part behind a 6-octet concatenation header
    /// (TS 23.040 §9.2.3.24.1: 160 - 7).
    const PART_SEPTETS: usize = 153;
    /// UCS-2 octets in one part behind that header (140 - 6).
    const PART_OCTETS: usize = 134;

    /// What the network needs to know about an SMS-SUBMIT.
    #[derive(Debug, Clone)]
    pub struct Submit {
        /// TP-DA as text (`+` for international numbers).
        pub to: String,
        /// TP-SRR.
        pub report_requested: bool,
        /// The text, when the user data is text.
        pub text: Option<String>,
        /// (reference, total, seq) from a concatenation IE.
        pub concat: Option<(u16, u8, u8)>,
        /// The decoded TPDU, for conversion to SMS-DELIVER.
        pub tpdu: pdu::Submit,
    }

    /// Decodes a bare SMS-SUBMIT TPDU (mobile originated, no SMSC field).
    pub fn decode_submit(tpdu: &[u8]) -> Result<Submit, String> {
        let opts = DecodeOptions {
            direction: Direction::MobileOriginated,
            smsc: false,
            tables: Tables::default(),
        };
        match pdu::decode(tpdu, opts).map_err(|e| e.to_string())?.tpdu {
            Tpdu::Submit(s) => Ok(Submit {
                to: s.destination.to_string(),
                report_requested: s.status_report_request,
                text: s.user_data.text().map(str::to_string),
                concat: s
                    .user_data
                    .header
                    .as_ref()
                    .and_then(|h| h.concat())
                    .map(|c| (c.reference, c.total, c.seq)),
                tpdu: s,
            }),
            other => Err(format!("expected an SMS-SUBMIT, got {}", other.kind())),
        }
    }

    /// The sender's number as TP-OA.
    fn originator(from: &str) -> Address {
        Address::parse_number(from).unwrap_or_else(|_| Address::alphanumeric(from))
    }

    /// The SMS-DELIVER the recipient gets for `submit` (TS 23.040 §9.2.2.1):
    /// originator `from`, SCTS `scts`, the same PID, DCS, header and user data.
    pub fn submit_to_deliver(
        submit: &Submit,
        from: &str,
        scts: OffsetDateTime,
    ) -> Result<Vec<u8>, String> {
        let s = &submit.tpdu;
        let deliver = Deliver {
            first_octet: 0x04,
            more_messages: false,
            // TP-SRI tells the recipient that the sender asked for a report.
            status_report_indication: s.status_report_request,
            reply_path: false,
            originator: originator(from),
            pid: s.pid,
            dcs: s.dcs,
            scts: Timestamp::from_datetime(scts),
            user_data: s.user_data.clone(),
        };
        let mut out = Vec::with_capacity(176);
        deliver.encode(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// The bare SMS-STATUS-REPORT TPDU for message `mr` to `recipient`:
    /// status 0, "short message received by the SME" (TS 23.040 §9.2.3.15).
    pub fn status_report(
        mr: u8,
        recipient: &str,
        scts: OffsetDateTime,
        dt: OffsetDateTime,
    ) -> Result<Vec<u8>, String> {
        let pdu = pdu::encode_status_report(
            None,
            mr,
            &originator(recipient),
            Timestamp::from_datetime(scts),
            Timestamp::from_datetime(dt),
            Status(0),
        )
        .map_err(|e| e.to_string())?;
        bare(pdu)
    }

    /// Strips the empty SMSC field the encoder writes in front.
    fn bare(pdu: pdu::EncodedPdu) -> Result<Vec<u8>, String> {
        let start = pdu
            .octets
            .len()
            .checked_sub(pdu.tpdu_len)
            .ok_or("encoder returned a TPDU longer than the PDU")?;
        Ok(pdu.octets.get(start..).unwrap_or_default().to_vec())
    }

    /// The SMS-DELIVER TPDUs (bare) of an injected message, in part order.
    pub fn deliver_tpdus(
        inj: &Injection,
        reference: u16,
        scts: OffsetDateTime,
    ) -> Result<Vec<Vec<u8>>, String> {
        let from = Address::parse_number(&inj.from).map_err(|e| format!("--from: {e}"))?;
        let class = inj.class0.then_some(MessageClass::Class0);
        let forced = inj.parts.filter(|&n| n > 1);
        let Some(n) = forced else {
            let opts = DeliverOptions {
                scts: Timestamp::from_datetime(scts),
                class,
                force_ucs2: inj.ucs2,
                reference,
                ..DeliverOptions::default()
            };
            return pdu::encode_deliver(&from, &inj.text, &opts)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(bare)
                .collect();
        };
        // `--parts N`: cut the text into N pieces on character boundaries,
        // each behind an 8-bit concatenation IE (TS 23.040 §9.2.3.24.1).
        let chunks = cut(&inj.text, usize::from(n));
        let tables = Tables::default();
        let ucs2 = inj.ucs2 || chunks.iter().any(|c| gsm7::encode(c, tables).is_err());
        let alphabet = if ucs2 { Alphabet::Ucs2 } else { Alphabet::Gsm7 };
        let mut out = Vec::with_capacity(chunks.len());
        for (i, chunk) in chunks.iter().enumerate() {
            let size = if ucs2 {
                pdu::ucs2::encode(chunk).len()
            } else {
                gsm7::encode(chunk, tables)
                    .map(|s| s.len())
                    .unwrap_or(usize::MAX)
            };
            let cap = if ucs2 { PART_OCTETS } else { PART_SEPTETS };
            if size > cap {
                return Err(format!(
                    "the text is too long for {n} parts (part {} would need {size} of {cap} {})",
                    i + 1,
                    if ucs2 { "octets" } else { "septets" }
                ));
            }
            let seq = u8::try_from(i + 1).map_err(|_| "too many parts".to_string())?;
            let deliver = Deliver {
                first_octet: 0x04,
                more_messages: false,
                status_report_indication: false,
                reply_path: false,
                originator: from.clone(),
                pid: ProtocolId(0),
                dcs: Dcs::general(alphabet, class),
                scts: Timestamp::from_datetime(scts),
                user_data: UserData {
                    udl: 0, // recomputed by the encoder
                    header: Some(Udh {
                        ies: vec![Ie::Concat8 {
                            // Callers pass an 8-bit reference, widened.
                            reference: reference as u8,
                            total: n,
                            seq,
                        }],
                    }),
                    body: Body::Text(chunk.clone()),
                    tables,
                },
            };
            let mut tpdu = Vec::with_capacity(176);
            deliver.encode(&mut tpdu).map_err(|e| e.to_string())?;
            out.push(tpdu);
        }
        Ok(out)
    }

    /// Cuts `text` into `n` pieces of nearly equal character counts (never
    /// splitting a character; the caller checked `n <= chars`).
    fn cut(text: &str, n: usize) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let n = n.clamp(1, chars.len().max(1));
        let base = chars.len() / n;
        let extra = chars.len() % n;
        let mut out = Vec::with_capacity(n);
        let mut start = 0;
        for i in 0..n {
            let len = base + usize::from(i < extra);
            out.push(
                chars
                    .get(start..start + len)
                    .unwrap_or_default()
                    .iter()
                    .collect(),
            );
            start += len;
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn cut_is_even_and_keeps_every_char() {
            assert_eq!(cut("abcdefg", 3), vec!["abc", "de", "fg"]);
            assert_eq!(cut("a€😀", 3), vec!["a", "€", "😀"]);
            assert_eq!(cut("ab", 1), vec!["ab"]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{self, Address, DecodeOptions, Direction, SubmitOptions, Tpdu};
    use crate::sim::runtime::{channel, ModemCmd};
    use tokio::sync::mpsc;

    /// What a fake modem saw: (is_report, tpdu).
    type Seen = mpsc::UnboundedReceiver<(usize, bool, Vec<u8>)>;

    /// A network of `n` fake modems; each refuses the first `refuse[k]`
    /// deliveries with NotReady, then takes everything.
    fn net(
        n: usize,
        refuse: Vec<usize>,
        report_delay: Duration,
    ) -> (Network, Seen, watch::Sender<bool>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (seen_tx, seen_rx) = mpsc::unbounded_channel();
        let mut handles = Vec::new();
        for k in 0..n {
            let (h, mut rx) = channel(k, &format!("+1555000000{k}"));
            handles.push(h);
            let seen = seen_tx.clone();
            let mut refuse_left = refuse.get(k).copied().unwrap_or(0);
            tokio::spawn(async move {
                while let Some(cmd) = rx.recv().await {
                    let (report, tpdu, reply) = match cmd {
                        ModemCmd::Deliver { tpdu, reply } => (false, tpdu, reply),
                        ModemCmd::StatusReport { tpdu, reply } => (true, tpdu, reply),
                        _ => continue,
                    };
                    if refuse_left > 0 {
                        refuse_left -= 1;
                        let _ = reply.send(Err(ReceiveError::NotReady));
                        continue;
                    }
                    let _ = seen.send((k, report, tpdu));
                    let _ = reply.send(Ok(()));
                }
            });
        }
        (
            Network::new(handles, report_delay, stop_rx),
            seen_rx,
            stop_tx,
        )
    }

    fn submits(to: &str, text: &str, report: bool) -> Vec<Vec<u8>> {
        let opts = SubmitOptions {
            status_report: report,
            reference: 42,
            ..SubmitOptions::default()
        };
        pdu::encode_submit(&Address::parse_number(to).unwrap(), text, &opts)
            .unwrap()
            .into_iter()
            .map(|p| p.octets[p.octets.len() - p.tpdu_len..].to_vec())
            .collect()
    }

    fn decode_mt(tpdu: &[u8]) -> Tpdu {
        let opts = DecodeOptions {
            direction: Direction::MobileTerminated,
            smsc: false,
            ..DecodeOptions::default()
        };
        pdu::decode(tpdu, opts).unwrap().tpdu
    }

    async fn next(seen: &mut Seen) -> (usize, bool, Vec<u8>) {
        tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn modem_to_modem_becomes_a_deliver_from_the_sender() {
        let (net, mut seen, _stop) = net(2, vec![], Duration::from_millis(10));
        for t in submits("+15550000001", "hello", false) {
            net.submitted(0, t, 7);
        }
        let (k, report, tpdu) = next(&mut seen).await;
        assert_eq!((k, report), (1, false));
        let Tpdu::Deliver(d) = decode_mt(&tpdu) else {
            panic!("not a deliver")
        };
        assert_eq!(d.originator.to_string(), "+15550000000");
        assert_eq!(d.user_data.text(), Some("hello"));
        let out = net.outbox();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to_modem, Some(1));
        assert_eq!(out[0].mrs, vec![7]);
    }

    #[tokio::test]
    async fn refused_messages_are_retried_and_reports_follow_delivery() {
        let (net, mut seen, _stop) = net(2, vec![0, 2], Duration::from_millis(10));
        for t in submits("+15550000001", "retry me", true) {
            net.submitted(0, t, 9);
        }
        let (k, report, _) = next(&mut seen).await;
        assert_eq!((k, report), (1, false), "delivered after two refusals");
        let (k, report, tpdu) = next(&mut seen).await;
        assert_eq!((k, report), (0, true), "report back to the sender");
        let Tpdu::StatusReport(r) = decode_mt(&tpdu) else {
            panic!("not a report")
        };
        assert_eq!(r.message_reference, 9);
        assert_eq!(r.recipient.to_string(), "+15550000001");
        assert_eq!(net.waiting(1), 0);
    }

    #[tokio::test]
    async fn outside_multipart_is_one_outbox_record_with_a_report_per_part() {
        let (net, mut seen, _stop) = net(1, vec![], Duration::from_millis(10));
        let text = "x".repeat(200);
        let parts = submits("+4915112345678", &text, true);
        assert_eq!(parts.len(), 2);
        // Out of order.
        net.submitted(0, parts[1].clone(), 2);
        net.submitted(0, parts[0].clone(), 1);
        let out = net.outbox();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].text.as_deref(), Some(text.as_str()));
        assert_eq!(out[0].parts, 2);
        assert_eq!(out[0].mrs, vec![1, 2]);
        assert_eq!(out[0].to_modem, None);
        assert!(out[0].report_requested);
        let mut mrs = Vec::new();
        for _ in 0..2 {
            let (_, report, tpdu) = next(&mut seen).await;
            assert!(report);
            let Tpdu::StatusReport(r) = decode_mt(&tpdu) else {
                panic!()
            };
            mrs.push(r.message_reference);
        }
        mrs.sort();
        assert_eq!(mrs, vec![1, 2]);
    }

    /// 16-bit references (IEI 0x08, TS 23.040 §9.2.3.24.8) join by all
    /// 16 bits: two messages whose references share the low octet,
    /// interleaved, stay apart.
    #[tokio::test]
    async fn sixteen_bit_references_join_by_all_sixteen_bits() {
        let (net, _seen, _stop) = net(1, vec![], Duration::from_millis(10));
        let parts = |text: &str, reference| {
            let opts = SubmitOptions {
                reference,
                ref16: true,
                ..SubmitOptions::default()
            };
            let to = Address::parse_number("+4915112345678").unwrap();
            pdu::encode_submit(&to, text, &opts)
                .unwrap()
                .into_iter()
                .map(|p| p.octets[p.octets.len() - p.tpdu_len..].to_vec())
                .collect::<Vec<_>>()
        };
        let (a, b) = ("a".repeat(200), "b".repeat(200));
        let (pa, pb) = (parts(&a, 0x0102), parts(&b, 0x0202));
        net.submitted(0, pa[0].clone(), 1);
        net.submitted(0, pb[1].clone(), 2);
        net.submitted(0, pb[0].clone(), 3);
        net.submitted(0, pa[1].clone(), 4);
        let out = net.outbox();
        let got: Vec<_> = out
            .iter()
            .map(|r| (r.text.clone().unwrap_or_default(), r.reference))
            .collect();
        assert_eq!(got, [(b, Some(0x0202)), (a, Some(0x0102))], "{out:?}");
    }

    #[tokio::test]
    async fn undecodable_submissions_are_dropped_not_fatal() {
        let (net, _seen, _stop) = net(1, vec![], Duration::from_millis(10));
        net.submitted(0, vec![0x01], 1);
        net.submitted(0, vec![], 1);
        net.submitted(5, vec![0x11], 1);
        assert!(net.outbox().is_empty());
    }

    #[tokio::test]
    async fn forced_parts_out_of_order_carry_concat_headers() {
        let (net, mut seen, _stop) = net(1, vec![], Duration::from_millis(10));
        let inj = Injection {
            modem: 0,
            from: "+4915112345678".into(),
            text: "abcdefgh".into(),
            parts: Some(3),
            out_of_order: true,
            class0: true,
            ucs2: true,
        };
        let r = net.inject(&inj).await.unwrap();
        assert!(r.delivered);
        assert_eq!(r.parts, 3);
        let mut seqs = Vec::new();
        let mut texts = Vec::new();
        for _ in 0..3 {
            let (_, _, tpdu) = next(&mut seen).await;
            let Tpdu::Deliver(d) = decode_mt(&tpdu) else {
                panic!()
            };
            let c = d.user_data.header.as_ref().unwrap().concat().unwrap();
            assert_eq!(c.total, 3);
            seqs.push(c.seq);
            texts.push(d.user_data.text().unwrap().to_string());
            assert_eq!(d.dcs.alphabet, pdu::Alphabet::Ucs2);
        }
        assert_eq!(seqs, vec![3, 2, 1]);
        assert_eq!(texts.concat(), "ghdefabc");
        // Too much text for the forced part count is an error, not a panic.
        let long = Injection {
            text: "y".repeat(400),
            parts: Some(2),
            ..inj
        };
        assert!(net.inject(&long).await.unwrap_err().contains("too long"));
    }
}
