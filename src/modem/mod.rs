//! The modem actor: one tokio task per modem that owns its AT link and
//! its state, and talks to the rest of the daemon only through channels.
//!
//! * Commands in: [`ModemHandle`] (bounded mpsc): send the parts of a
//!   message, shut down.
//! * Events out: [`ModemEvent`] (bounded mpsc): state snapshots, inbound
//!   message parts and status reports, each with a `commit` channel. A
//!   stored message is deleted from the modem only after the daemon
//!   answered that it was committed (DESIGN invariant 1); no answer in time
//!   leaves it on the SIM for the next sweep.
//! * State out: a [`tokio::sync::watch`] of [`Snapshot`] for the bus and
//!   the CLI.
//!
//! The life cycle is the pure [`state::transition`] function; the PIN
//! rules are the pure [`pin::decide`]; profile matching is in [`profile`].
//! The actor never does SQL and never shares a lock with another modem
//! (invariant 3). User-facing behaviour: `docs/modem.md`.

mod actor;
pub mod pin;
pub mod profile;
pub mod state;
pub(crate) mod timed;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::hardware::Profile;
use crate::pdu::{EncodedPdu, Pdu, PduError};

pub use pin::{RejectedPins, Rejection, REJECTED_PINS_FILE};
pub use state::{State, Step};

/// Errors of the modem layer that are not about one send.
#[derive(Debug, thiserror::Error)]
pub enum ModemError {
    /// The built-in hardware profiles did not load.
    #[error("modem {modem}: {source}")]
    Profile {
        /// The modem id.
        modem: String,
        /// Why.
        #[source]
        source: Box<crate::hardware::ProfileError>,
    },
    /// The actor has ended (shut down, or its task is gone).
    #[error("modem {0}: actor stopped")]
    Stopped(String),
}

/// Why a message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Retrying later or on another modem may work (`+CMS ERROR` of the
    /// temporary class, 27.005 §3.2.5; timeout; modem not ready or gone).
    #[error("temporary failure: {reason}")]
    Temporary {
        /// What happened, for the log and the client.
        reason: String,
        /// Parts that did leave before the failure, in order.
        sent: Vec<SentPart>,
    },
    /// Retrying will fail the same way (invalid PDU, barred destination,
    /// unknown SMSC...).
    #[error("permanent failure: {reason}")]
    Permanent {
        /// What happened.
        reason: String,
        /// Parts that did leave before the failure, in order.
        sent: Vec<SentPart>,
    },
    /// Part `part` was written after the `> ` prompt (TS 27.005 §3.5.1)
    /// and no `+CMGS: <mr>`/`OK` nor error came back (timeout, port gone):
    /// it may have left. Retry it only through the same modem (the
    /// recipient sees the sender's number) and count it as maybe-sent.
    /// Parts after it were not written.
    #[error("outcome unknown: {reason}")]
    Unconfirmed {
        /// What happened.
        reason: String,
        /// Parts that did leave before it, in order.
        sent: Vec<SentPart>,
        /// Position of the part whose outcome is unknown, from 0.
        part: usize,
    },
}

impl SendError {
    /// Whether the router may retry (an unconfirmed part only through the
    /// same modem).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            SendError::Temporary { .. } | SendError::Unconfirmed { .. }
        )
    }
}

/// One part accepted by the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentPart {
    /// Position of the part in the request, from 0.
    pub part: usize,
    /// TP-MR the modem gave the part (`+CMGS: <mr>`, 27.005 §3.5.1), used
    /// to match status reports; `None` when the modem said OK without it.
    pub mr: Option<u8>,
}

/// What the daemon answers on an inbound `commit` channel once the part
/// is durably stored. Dropping the sender instead means "not committed".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed;

/// Where a received PDU came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Origin {
    /// Stored in the modem (`+CMTI`, `+CDSI`, a `+CMGL` sweep) at this
    /// storage and index; deleted after the commit.
    Stored {
        /// Storage name (`SM`, `ME`, `SR`).
        mem: String,
        /// Index in that storage.
        index: u32,
    },
    /// Routed directly (`+CMT`, `+CDS`); acknowledged with `+CNMA` after
    /// the commit when `+CSMS=1` is in force.
    Routed,
}

/// A received PDU handed to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The modem's IMEI (or its configured name before it is known).
    pub modem: String,
    /// The SIM's ICCID, when known.
    pub iccid: Option<String>,
    /// Where it was read from.
    pub origin: Origin,
    /// The PDU in hex as the modem printed it (SMSC field included): kept
    /// so nothing is lost even when decoding fails.
    pub pdu: String,
    /// The decoded PDU, or why it did not decode (then the daemon stores
    /// the raw PDU and flags it).
    pub decoded: Result<Pdu, PduError>,
}

/// What the actor tells the daemon.
#[derive(Debug)]
pub enum ModemEvent {
    /// The state changed (also available through [`ModemHandle::watch`]).
    State(Snapshot),
    /// A received SMS-DELIVER part (or an undecodable PDU). Answer
    /// [`Committed`] once it is stored; the actor then deletes it.
    Inbound {
        /// The part.
        part: Received,
        /// Where to say it was committed.
        commit: oneshot::Sender<Committed>,
    },
    /// A received SMS-STATUS-REPORT, same contract as `Inbound`.
    StatusReport {
        /// The report.
        report: Received,
        /// Where to say it was committed.
        commit: oneshot::Sender<Committed>,
    },
}

/// The modem as the bus and the CLI see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Snapshot {
    /// The configured name (log id until the IMEI is known).
    pub name: String,
    /// The port path as configured.
    pub port: String,
    /// `opening`, `identifying`, `sim-locked`, `registering`, `ready`,
    /// `degraded`, `resetting`, `gone`, `stopped`.
    pub state: String,
    /// The state with its detail (reason, rung).
    pub detail: String,
    /// `+CGMI`.
    pub manufacturer: Option<String>,
    /// `+CGMM`.
    pub model: Option<String>,
    /// `+CGMR`.
    pub revision: Option<String>,
    /// `+CGSN`: the modem's identity.
    pub imei: Option<String>,
    /// `+CIMI`.
    pub imsi: Option<String>,
    /// The SIM's identity.
    pub iccid: Option<String>,
    /// `+CNUM`, when the SIM knows it.
    pub own_number: Option<String>,
    /// `+COPS?` operator name.
    pub operator: Option<String>,
    /// `+CSQ` `<rssi>` (0..31, 99 unknown).
    pub signal: Option<u8>,
    /// Registration state as text (`home`, `roaming`, `searching`...).
    pub registration: Option<String>,
    /// The hardware profile in use.
    pub profile: Option<String>,
    /// The last error worth showing an operator.
    pub last_error: Option<String>,
    /// Messages in the storage new messages land in (`<mem3>` of
    /// `+CPMS?`, 27.005 §3.2.2), read on every probe and sweep.
    pub storage_used: Option<u32>,
    /// That storage's capacity.
    pub storage_total: Option<u32>,
}

/// A modem as the bus (`modems` op) and the CLI (`smsgate modems`) show it:
/// the actor's [`Snapshot`] plus what the daemon knows about its queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ModemView {
    /// The modem id used everywhere else (bus `modem` fields, the store,
    /// pins): the IMEI once known, the configured name before.
    pub id: String,
    /// The actor's view.
    #[serde(flatten)]
    pub snapshot: Snapshot,
    /// Parts waiting for or being sent by this modem.
    pub queued: u64,
    /// Parts the network accepted from this modem today (UTC).
    pub sent_today: u64,
    /// Inbound parts stored from this modem today (UTC).
    pub received_today: u64,
}

/// How one actor runs. Every field has a default ([`ModemConfig::new`]).
#[derive(Debug, Clone)]
pub struct ModemConfig {
    /// A stable name for logs before the IMEI is known (config key or path).
    pub name: String,
    /// The AT port (`/dev/smsgate/...`, or a pty in tests).
    pub port: PathBuf,
    /// Line speed (ignored by USB CDC and ptys).
    pub baud: u32,
    /// PINs keyed by ICCID (`"*"`: any SIM).
    pub pins: BTreeMap<String, String>,
    /// SMSC to set (`+CSCA`); `None` keeps the SIM's.
    pub smsc: Option<String>,
    /// Force a profile id instead of matching.
    pub profile: Option<String>,
    /// Available profiles (the built-in ones by default).
    pub profiles: Vec<Profile>,
    /// sysfs root for USB matching (`/sys`).
    pub sysfs: PathBuf,
    /// Time between health probes (`AT`) while ready.
    pub probe_interval: Duration,
    /// How long a probe may take.
    pub probe_timeout: Duration,
    /// Time between periodic storage sweeps (`+CMGL`).
    pub sweep_interval: Duration,
    /// How long one `+CMGL` may take.
    pub sweep_timeout: Duration,
    /// How long one `+CMGS` may take (the network answers slowly on a
    /// weak signal; 27.005 sets no limit).
    pub send_timeout: Duration,
    /// How long the daemon has to commit an inbound part.
    pub commit_timeout: Duration,
    /// How long to wait for room in the event channel.
    pub event_timeout: Duration,
    /// How long a modem may stay unregistered (searching, denied...) in
    /// `registering` before it is reported in the snapshot's `last_error`
    /// and polled less often.
    pub registration_report_after: Duration,
    /// Consecutive failed commands that count as an error storm.
    pub error_storm: u32,
    /// First backoff of the recovery ladder and of waiting for the port.
    pub backoff_min: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// Cap on the profile's reset settle time (tests shorten it).
    pub settle_max: Duration,
    /// Capacity of the command and event channels.
    pub queue: usize,
}

impl ModemConfig {
    /// Defaults for the modem at `port`.
    pub fn new(name: impl Into<String>, port: impl Into<PathBuf>) -> Self {
        ModemConfig {
            name: name.into(),
            port: port.into(),
            baud: 115_200,
            pins: BTreeMap::new(),
            smsc: None,
            profile: None,
            profiles: Vec::new(),
            sysfs: PathBuf::from("/sys"),
            probe_interval: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(5),
            sweep_interval: Duration::from_secs(300),
            sweep_timeout: Duration::from_secs(90),
            send_timeout: Duration::from_secs(90),
            commit_timeout: Duration::from_secs(10),
            event_timeout: Duration::from_secs(5),
            registration_report_after: Duration::from_secs(300),
            error_storm: 5,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            settle_max: Duration::from_secs(120),
            queue: 32,
        }
    }
}

/// A send request with its answer channel.
pub(crate) struct SendRequest {
    pub(crate) parts: Vec<EncodedPdu>,
    pub(crate) reply: oneshot::Sender<Result<Vec<SentPart>, SendError>>,
    /// What the request is for (the message id), for the log.
    pub(crate) label: Option<String>,
    /// Told when the actor takes the request up, right before its first
    /// `AT+CMGS`; a dropped receiver withdraws the request.
    pub(crate) started: Option<oneshot::Sender<()>>,
}

/// The outcome channels of a request queued with
/// [`ModemHandle::submit_tracked`].
#[derive(Debug)]
pub struct Submitted {
    /// Resolves when the actor takes the request up (right before its
    /// first `AT+CMGS`). Dropping it before then withdraws the request:
    /// the actor drops it unsent. Closed without a value: answered
    /// without starting (modem not ready) or the actor is gone; the
    /// answer is on `outcome`.
    pub started: oneshot::Receiver<()>,
    /// The outcome of the send.
    pub outcome: oneshot::Receiver<Result<Vec<SentPart>, SendError>>,
}

/// A cheap-to-clone handle to one modem actor.
#[derive(Clone)]
pub struct ModemHandle {
    name: Arc<str>,
    tx: mpsc::Sender<SendRequest>,
    state: watch::Receiver<Snapshot>,
    shutdown: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for ModemHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModemHandle")
            .field("name", &self.name)
            .finish()
    }
}

impl ModemHandle {
    /// Queues the parts of one message (from [`crate::pdu::encode_submit`])
    /// and returns the channel that will carry the outcome. A full queue
    /// or a stopped actor is a temporary error at once.
    pub fn submit(
        &self,
        parts: Vec<EncodedPdu>,
    ) -> Result<oneshot::Receiver<Result<Vec<SentPart>, SendError>>, SendError> {
        let (reply, rx) = oneshot::channel();
        self.queue(SendRequest {
            parts,
            reply,
            label: None,
            started: None,
        })?;
        Ok(rx)
    }

    /// [`submit`](Self::submit) for a caller that limits how long it
    /// waits: the time a request spends queued behind other work (a long
    /// storage sweep) is told apart from the send itself, and a caller
    /// that gives up while it is queued withdraws it (drops `started`)
    /// instead of leaving a send nobody waits for. `label` (the message
    /// id) goes into the actor's log lines.
    pub fn submit_tracked(
        &self,
        parts: Vec<EncodedPdu>,
        label: impl Into<String>,
    ) -> Result<Submitted, SendError> {
        let (reply, outcome) = oneshot::channel();
        let (started_tx, started) = oneshot::channel();
        self.queue(SendRequest {
            parts,
            reply,
            label: Some(label.into()),
            started: Some(started_tx),
        })?;
        Ok(Submitted { started, outcome })
    }

    fn queue(&self, req: SendRequest) -> Result<(), SendError> {
        self.tx.try_send(req).map_err(|e| SendError::Temporary {
            reason: match e {
                mpsc::error::TrySendError::Full(_) => "modem send queue full".into(),
                mpsc::error::TrySendError::Closed(_) => "modem actor stopped".into(),
            },
            sent: vec![],
        })
    }

    /// [`submit`](Self::submit) and wait for the outcome.
    pub async fn send(&self, parts: Vec<EncodedPdu>) -> Result<Vec<SentPart>, SendError> {
        self.submit(parts)?
            .await
            .unwrap_or_else(|_| Err(temporary("modem actor stopped")))
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.state.borrow().clone()
    }

    /// A receiver of every state change.
    pub fn watch(&self) -> watch::Receiver<Snapshot> {
        self.state.clone()
    }

    /// Asks the actor to stop and waits until it has (queued sends are
    /// answered with a temporary error, the port is closed).
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let mut rx = self.state.clone();
        let _ = rx.wait_for(|s| s.state == State::Stopped.name()).await;
    }
}

pub(crate) fn temporary(reason: impl Into<String>) -> SendError {
    SendError::Temporary {
        reason: reason.into(),
        sent: vec![],
    }
}

/// Starts the actor for one modem on the current runtime. `rejected` is
/// the process-wide memory of rejected PINs (share one between actors).
pub fn spawn(
    mut config: ModemConfig,
    rejected: RejectedPins,
) -> Result<(ModemHandle, mpsc::Receiver<ModemEvent>), ModemError> {
    if config.profiles.is_empty() {
        config.profiles = crate::hardware::builtin().map_err(|source| ModemError::Profile {
            modem: config.name.clone(),
            source: Box::new(source),
        })?;
    }
    let queue = config.queue.max(1);
    let (tx, rx) = mpsc::channel(queue);
    let (ev_tx, ev_rx) = mpsc::channel(queue);
    let snap = Snapshot {
        name: config.name.clone(),
        port: config.port.display().to_string(),
        state: State::Opening.name().into(),
        detail: State::Opening.to_string(),
        ..Snapshot::default()
    };
    let (state_tx, state_rx) = watch::channel(snap);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let name: Arc<str> = config.name.clone().into();
    let actor = actor::Actor::new(config, rejected, rx, ev_tx, state_tx, shutdown_rx);
    tokio::spawn(actor.run());
    Ok((
        ModemHandle {
            name,
            tx,
            state: state_rx,
            shutdown: Arc::new(shutdown_tx),
        },
        ev_rx,
    ))
}
