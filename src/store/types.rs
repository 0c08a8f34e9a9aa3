//! Plain data carried in and out of the store.
//!
//! These structs are the store's own: the PDU codec and the modem actor map
//! their values onto them, so the store compiles and is tested alone.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// An outbound message (a client's send request).
    MessageId
);
id_type!(
    /// One part (one SMS-SUBMIT) of an outbound message.
    PartId
);
id_type!(
    /// One try at sending a part through a modem.
    AttemptId
);
id_type!(
    /// A complete (or flagged partial) inbound message.
    InboundId
);

macro_rules! state_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
            /// A value written by another version of smsgate; carried, not
            /// rejected.
            Unknown(String),
        }

        impl $name {
            /// The text stored in the database.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Unknown(raw) => raw,
                }
            }

            /// Parses the stored text; anything else is `Unknown`.
            pub fn parse(text: &str) -> Self {
                match text {
                    $($text => $name::$variant,)+
                    other => $name::Unknown(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

state_enum!(
    /// State of an outbound part. A part moves
    /// `queued -> sending -> sent -> delivered`, may go back from `sending`
    /// to `queued` (temporary failure, crash), and ends in `failed`,
    /// `expired` or `cancelled` otherwise.
    PartState {
        /// Waiting for its `next_attempt_at`.
        Queued = "queued",
        /// Claimed by a modem; the result is not known yet.
        Sending = "sending",
        /// The modem accepted it (`+CMGS: <mr>`).
        Sent = "sent",
        /// A status report said it reached the recipient.
        Delivered = "delivered",
        /// Permanently failed (error from the modem or network, or too many
        /// attempts).
        Failed = "failed",
        /// Its `valid_until` passed before it could be sent.
        Expired = "expired",
        /// The client cancelled it while queued.
        Cancelled = "cancelled",
    }
);

state_enum!(
    /// State of an outbound message, combined from its parts (see
    /// [`MessageState::combine`]).
    MessageState {
        /// No part has been handed to a modem yet.
        Queued = "queued",
        /// Some parts are in flight or still to send.
        Sending = "sending",
        /// Every part was accepted by the network.
        Sent = "sent",
        /// Every part was reported delivered.
        Delivered = "delivered",
        /// At least one part failed permanently.
        Failed = "failed",
        /// The message's `valid_until` passed before all parts were sent.
        Expired = "expired",
        /// Cancelled by the client while queued.
        Cancelled = "cancelled",
    }
);

impl PartState {
    /// Whether the part will not change any more (except a late status
    /// report turning `sent` into `delivered`/`failed`).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            PartState::Delivered | PartState::Failed | PartState::Expired | PartState::Cancelled
        )
    }
}

impl MessageState {
    /// Combines part states into the message state.
    ///
    /// Precedence: a permanently failed part fails the message (the
    /// recipient cannot reassemble it); then cancelled, then expired; then
    /// all delivered -> delivered; all accepted -> sent; nothing started ->
    /// queued; anything else is in progress (sending).
    pub fn combine<'a>(parts: impl IntoIterator<Item = &'a PartState>) -> MessageState {
        let (mut n, mut failed, mut cancelled, mut expired) = (0, false, false, false);
        let (mut delivered, mut sent, mut queued) = (0, 0, 0);
        for p in parts {
            n += 1;
            match p {
                PartState::Failed | PartState::Unknown(_) => failed = true,
                PartState::Cancelled => cancelled = true,
                PartState::Expired => expired = true,
                PartState::Delivered => delivered += 1,
                PartState::Sent => sent += 1,
                PartState::Queued => queued += 1,
                PartState::Sending => {}
            }
        }
        if failed {
            MessageState::Failed
        } else if cancelled {
            MessageState::Cancelled
        } else if expired {
            MessageState::Expired
        } else if n > 0 && delivered == n {
            MessageState::Delivered
        } else if n > 0 && delivered + sent == n {
            MessageState::Sent
        } else if queued == n {
            MessageState::Queued
        } else {
            MessageState::Sending
        }
    }

    /// Whether the message will not change any more.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            MessageState::Delivered
                | MessageState::Failed
                | MessageState::Expired
                | MessageState::Cancelled
        )
    }
}

/// A client's request to send one message, already split into parts by the
/// caller (the PDU codec).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewOutbound {
    /// Client-chosen key: a retried request with the same key returns the
    /// first message instead of sending again (at most 200 bytes).
    pub idempotency_key: Option<String>,
    /// Destination number as the client gave it.
    pub recipient: String,
    /// The whole text, kept for status queries and the bus (optional).
    pub text: Option<String>,
    /// The encoded parts in order (e.g. SMS-SUBMIT TPDUs); opaque to the
    /// store, handed back by [`claim_due`](super::Store::claim_due).
    pub parts: Vec<Vec<u8>>,
    /// Do not send before this time (unix ms).
    pub send_at_ms: Option<i64>,
    /// Give up (state `expired`) if not sent by this time (unix ms).
    pub valid_until_ms: Option<i64>,
    /// Only this modem may send it (modem id, normally the IMEI).
    pub modem: Option<String>,
    /// Who asked (bus client name), for audit.
    pub client: Option<String>,
}

/// Answer to an enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// The message id (the first one, for a repeated idempotency key).
    pub id: MessageId,
    /// `false` when the idempotency key matched an earlier message and
    /// nothing new was queued.
    pub created: bool,
}

/// A part handed to a modem to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedPart {
    /// The part.
    pub part: PartId,
    /// Its message.
    pub message: MessageId,
    /// The attempt to report the result against.
    pub attempt: AttemptId,
    /// 1-based position of the part in the message.
    pub seq: u32,
    /// Number of parts of the message.
    pub total: u32,
    /// Destination number.
    pub recipient: String,
    /// The encoded part as enqueued.
    pub payload: Vec<u8>,
    /// How many attempts this is (1 for the first).
    pub attempt_no: u32,
    /// The part may already have left through an earlier attempt that was
    /// interrupted by a crash or a vanished modem.
    pub maybe_sent: bool,
}

/// How a send attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// Worth retrying later (network busy, no service, modem reset): the
    /// part goes back to the queue with a backoff.
    Temporary(String),
    /// Retrying cannot help (invalid number, barred): the part fails.
    Permanent(String),
    /// The modem took the part's PDU and never answered (timeout, port
    /// gone): it may have left. Retried like a temporary failure, but the
    /// part is counted maybe-sent and its message stays bound to the
    /// modem of this attempt (a resend through another SIM would come from
    /// another number).
    MaybeSent(String),
}

/// Where a part stands after a failure was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Queued again; next try not before this time (unix ms).
    Retry {
        /// Unix ms.
        next_attempt_ms: i64,
    },
    /// Failed for good.
    Failed,
    /// Not retried because the message expired meanwhile.
    Expired,
}

/// One part's status, for status queries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartStatus {
    /// The part id.
    pub id: PartId,
    /// 1-based position.
    pub seq: u32,
    /// Current state.
    pub state: PartState,
    /// Why it is failed/expired/cancelled or was last retried.
    pub reason: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// Modem of the last attempt.
    pub modem: Option<String>,
    /// TP-MR the modem gave when it accepted the part (TS 23.040 §9.2.3.6).
    pub mr: Option<u8>,
    /// When it was accepted (unix ms).
    pub sent_ms: Option<i64>,
    /// When a status report said delivered (unix ms).
    pub delivered_ms: Option<i64>,
    /// Not sent before this time.
    pub next_attempt_ms: i64,
    /// How often an attempt of this part was interrupted with the outcome
    /// unknown (crash or vanished modem).
    pub maybe_sent: u32,
}

/// An outbound message's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboundStatus {
    /// The message id.
    pub id: MessageId,
    /// Idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// Destination.
    pub recipient: String,
    /// Text, if given.
    pub text: Option<String>,
    /// Combined state.
    pub state: MessageState,
    /// Reason of the last part that failed/expired.
    pub reason: Option<String>,
    /// Modem the message is bound to (by the router, or on first claim);
    /// `None` while it waits to be routed, pinned or not.
    pub modem: Option<String>,
    /// Creation time.
    pub created_ms: i64,
    /// Last state change.
    pub updated_ms: i64,
    /// Scheduled time.
    pub send_at_ms: i64,
    /// Expiry.
    pub valid_until_ms: Option<i64>,
    /// The parts.
    pub parts: Vec<PartStatus>,
}

/// Concatenation information of an inbound part (TS 23.040 §9.2.3.24.1 /
/// §9.2.3.24.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concat {
    /// Concatenated short message reference (8- or 16-bit).
    pub reference: u16,
    /// Maximum number of short messages.
    pub total: u8,
    /// Sequence number of this part (1-based).
    pub seq: u8,
}

/// The decoded user data of an inbound part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundBody {
    /// GSM 7-bit or UCS-2 text, decoded.
    Text(String),
    /// 8-bit data.
    Data(Vec<u8>),
}

/// One SMS-DELIVER read from a modem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundPart {
    /// Modem id (normally the IMEI).
    pub modem: String,
    /// SIM (ICCID), when known: de-duplication follows the SIM.
    pub sim: Option<String>,
    /// TP-OA, as decoded.
    pub sender: String,
    /// TP-SCTS as unix ms (TS 23.040 §9.2.3.11).
    pub scts_ms: i64,
    /// Concatenation, if the UDH had it.
    pub concat: Option<Concat>,
    /// Decoded user data.
    pub body: InboundBody,
    /// The raw PDU bytes as the modem reported them (incl. SCTS): the
    /// de-duplication key.
    pub pdu: Vec<u8>,
    /// Index in the modem's storage, if it came from `+CMTI`/`+CMGL`.
    pub storage_index: Option<u32>,
    /// When the daemon read it (unix ms).
    pub received_ms: i64,
}

/// Answer to an inbound commit. Delete the part from the modem after this
/// arrived: it is committed (or was already).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InboundCommit {
    /// `false` when the same PDU had already been stored (re-reported after
    /// a reset).
    pub new: bool,
    /// The message this part completed, if it completed one now.
    pub completed: Option<InboundId>,
}

/// Bus hand-over state of an inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusState {
    /// Not yet handed to any bus client.
    Pending,
    /// Handed to a client, not yet acknowledged.
    Delivered,
    /// Acknowledged by a client.
    Acked,
}

impl BusState {
    pub(crate) fn from_i64(v: i64) -> Self {
        match v {
            0 => BusState::Pending,
            1 => BusState::Delivered,
            _ => BusState::Acked,
        }
    }
}

/// A complete (or flagged partial) inbound message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboundMessage {
    /// The message id.
    pub id: InboundId,
    /// Modem that received it.
    pub modem: String,
    /// SIM that received it.
    pub sim: Option<String>,
    /// Sender.
    pub sender: String,
    /// SCTS of the first part present (unix ms).
    pub scts_ms: i64,
    /// When its first part was read (unix ms).
    pub received_ms: i64,
    /// When it was completed (or given up on).
    pub completed_ms: i64,
    /// The text, when all parts present were text.
    pub text: Option<String>,
    /// The data, when some part was 8-bit data.
    pub data: Option<Vec<u8>>,
    /// Parts the sender sent.
    pub parts_total: u32,
    /// Parts we got.
    pub parts_received: u32,
    /// Some parts never arrived (reassembly timed out).
    pub partial: bool,
    /// Missing part numbers when partial.
    pub missing: Vec<u32>,
    /// Bus hand-over state.
    pub bus_state: BusState,
}

/// An SMS-STATUS-REPORT read from a modem (TS 23.040 §9.2.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// Modem id it came from.
    pub modem: String,
    /// TP-MR of the SMS-SUBMIT it reports on.
    pub mr: u8,
    /// TP-RA (the original recipient).
    pub recipient: String,
    /// TP-SCTS: when the SMSC received the submit (unix ms), if decoded.
    pub scts_ms: Option<i64>,
    /// TP-DT: discharge time (unix ms), if decoded.
    pub discharge_ms: Option<i64>,
    /// TP-ST, raw (TS 23.040 §9.2.3.15).
    pub status: u8,
    /// Raw PDU: re-reported copies are recognised by it.
    pub pdu: Vec<u8>,
    /// When the daemon read it (unix ms).
    pub received_ms: i64,
}

/// TP-ST classified (TS 23.040 §9.2.3.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportClass {
    /// 0x00..=0x02 and SC-specific 0x10..=0x1F: short message transaction
    /// completed (received, forwarded, replaced).
    Delivered,
    /// 0x20..=0x3F: temporary error, the SC is still trying.
    Pending,
    /// 0x40..=0x7F, and every reserved value (the spec says to read them as
    /// "service rejected"): the SC gave up.
    Failed,
}

impl ReportClass {
    /// Classifies a raw TP-ST.
    pub fn of(status: u8) -> ReportClass {
        match status {
            0x00..=0x02 | 0x10..=0x1F => ReportClass::Delivered,
            0x20..=0x23 | 0x30..=0x3F => ReportClass::Pending,
            // 0x03..=0x0F, 0x24..=0x2F, 0x46..=0x4F, 0x66..=0x6F and
            // 0x80..=0xFF are reserved: treated as 0x63 "service rejected".
            _ => ReportClass::Failed,
        }
    }
}

/// What happened to a status report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReportOutcome {
    /// `false` when the same report PDU had been stored already.
    pub new: bool,
    /// The part it was matched to (`None`: kept as unmatched).
    pub part: Option<PartId>,
    /// That part's message.
    pub message: Option<MessageId>,
    /// How the TP-ST reads.
    pub class: ReportClass,
}

/// What the modem actor learned about a modem (and its SIM).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModemInfo {
    /// Modem id (the IMEI).
    pub id: String,
    /// `+CGMI`.
    pub manufacturer: Option<String>,
    /// `+CGMM`.
    pub model: Option<String>,
    /// `+CGMR`.
    pub revision: Option<String>,
    /// The SIM in it (ICCID), if readable.
    pub iccid: Option<String>,
    /// `+CIMI`.
    pub imsi: Option<String>,
    /// `+CNUM`, when the SIM knows it.
    pub own_number: Option<String>,
}

/// A modem as the store remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModemRecord {
    /// Modem id (IMEI).
    pub id: String,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Firmware revision.
    pub revision: Option<String>,
    /// SIM last seen in it.
    pub iccid: Option<String>,
    /// Last reported state (modem actor's words).
    pub state: Option<String>,
    /// First seen (unix ms).
    pub first_seen_ms: i64,
    /// Last seen (unix ms).
    pub last_seen_ms: i64,
    /// Parts accepted by the network today (UTC).
    pub sent_today: u64,
    /// Inbound parts stored today (UTC).
    pub received_today: u64,
    /// Parts failed permanently today (UTC).
    pub failed_today: u64,
}

/// A SIM as the store remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimRecord {
    /// ICCID.
    pub iccid: String,
    /// IMSI.
    pub imsi: Option<String>,
    /// Own number.
    pub own_number: Option<String>,
    /// Modem it was last seen in.
    pub modem: Option<String>,
    /// First seen (unix ms).
    pub first_seen_ms: i64,
    /// Last seen (unix ms).
    pub last_seen_ms: i64,
}

/// Store-wide counters, for `smsgate status` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct StoreStats {
    /// Parts waiting to be sent.
    pub parts_queued: u64,
    /// Parts in flight.
    pub parts_sending: u64,
    /// Attempts interrupted with unknown outcome, ever (the crash window).
    pub maybe_sent_total: u64,
    /// Status reports that matched no part, ever.
    pub unmatched_reports_total: u64,
    /// Inbound PDUs recognised as re-reported duplicates, ever.
    pub inbound_duplicates_total: u64,
    /// Inbound multipart groups still waiting for parts.
    pub inbound_groups_open: u64,
    /// Inbound messages the bus may see and has not acknowledged yet
    /// (held ones wait for consent, not for a client: see `inbound_held`).
    pub inbound_unacked: u64,
    /// Inbound messages the privacy gate holds until their sender joins.
    pub inbound_held: u64,
    /// Highest event cursor.
    pub last_event: u64,
}

/// What a periodic expiry pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ExpiryReport {
    /// Outbound messages that expired.
    pub outbound_expired: u64,
    /// Inbound groups turned into flagged partial messages.
    pub inbound_partials: u64,
}

/// What opening the store found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct OpenReport {
    /// Schema version found in the file (0: new file).
    pub schema_from: i64,
    /// Schema version after migrations.
    pub schema_to: i64,
    /// Parts found `sending` (left by a crash) and put back in the queue,
    /// flagged maybe-sent.
    pub requeued_sending: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use PartState::*;

    #[test]
    fn message_state_combines_parts() {
        let table: &[(&[PartState], MessageState)] = &[
            (&[Queued], MessageState::Queued),
            (&[Queued, Queued], MessageState::Queued),
            (&[Sending, Queued], MessageState::Sending),
            (&[Sent, Queued], MessageState::Sending),
            (&[Sent, Sending], MessageState::Sending),
            (&[Sent, Sent], MessageState::Sent),
            (&[Sent, Delivered], MessageState::Sent),
            (&[Delivered, Delivered], MessageState::Delivered),
            (&[Delivered, Failed], MessageState::Failed),
            (&[Expired, Sending], MessageState::Expired),
            (&[Expired, Failed], MessageState::Failed),
            (&[Cancelled, Cancelled], MessageState::Cancelled),
            (&[Sent, Unknown("x".into())], MessageState::Failed),
            (&[], MessageState::Queued),
        ];
        for (parts, want) in table {
            assert_eq!(&MessageState::combine(parts.iter()), want, "{parts:?}");
        }
    }

    #[test]
    fn tp_st_classes_follow_23040() {
        let table = [
            (0x00, ReportClass::Delivered),
            (0x02, ReportClass::Delivered),
            (0x03, ReportClass::Failed), // reserved
            (0x1F, ReportClass::Delivered),
            (0x20, ReportClass::Pending),
            (0x24, ReportClass::Failed), // reserved
            (0x30, ReportClass::Pending),
            (0x40, ReportClass::Failed),
            (0x63, ReportClass::Failed),
            (0x7F, ReportClass::Failed),
            (0x80, ReportClass::Failed), // reserved
        ];
        for (st, want) in table {
            assert_eq!(ReportClass::of(st), want, "TP-ST {st:#04x}");
        }
    }

    #[test]
    fn states_round_trip_through_text_and_keep_unknown_values() {
        for s in [
            "queued",
            "sending",
            "sent",
            "delivered",
            "failed",
            "expired",
            "cancelled",
        ] {
            assert_eq!(PartState::parse(s).as_str(), s);
            assert_eq!(MessageState::parse(s).to_string(), s);
        }
        assert_eq!(PartState::parse("held"), PartState::Unknown("held".into()));
    }
}

/// A due outbound message that no modem is bound to yet: the router picks
/// one and [`bind`](super::Store::bind)s it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingMessage {
    /// The message.
    pub id: MessageId,
    /// Destination number as the client gave it.
    pub recipient: String,
    /// Parts still queued (what the chosen modem will send).
    pub parts: u32,
    /// The modem the client pinned it to (modem id), if any.
    pub pinned: Option<String>,
}

/// What the router rebuilds its per-SIM counters and sticky choices from
/// at start: read from small summary tables kept with every sent part
/// (schema v5), so its size is bounded by SIMs × days plus recent peers,
/// never by the number of messages stored.
///
/// `sim` is the key the router counts under: the sending SIM's ICCID, or
/// the modem id when the modem reported none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteHistory {
    /// Parts sent per SIM and UTC day, for the days asked for.
    pub days: Vec<SimDay>,
    /// The last send to each recipient through each SIM, newest first, at
    /// most [`MAX_HISTORY`](super::MAX_HISTORY).
    pub peers: Vec<PeerRecord>,
    /// Every part sent in the last minute before the time asked for (the
    /// per-minute limit), at most [`MAX_RECENT`](super::MAX_RECENT).
    pub recent: Vec<RecentSend>,
}

/// Parts one SIM sent during one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimDay {
    /// ICCID, or the modem id without one.
    pub sim: String,
    /// UTC day number (unix ms / 86,400,000).
    pub day: i64,
    /// Parts sent (each SMS-SUBMIT the modem accepted, resends included).
    pub sent: u64,
    /// When the last of them was sent (unix ms).
    pub last_sent_ms: i64,
}

/// The last send to one recipient through one SIM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// ICCID, or the modem id without one.
    pub sim: String,
    /// The modem that sent it (the sticky choice).
    pub modem: String,
    /// Destination number as the client gave it.
    pub recipient: String,
    /// When (unix ms).
    pub last_sent_ms: i64,
}

/// One part sent recently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentSend {
    /// ICCID, or the modem id without one.
    pub sim: String,
    /// When (unix ms).
    pub sent_ms: i64,
}
