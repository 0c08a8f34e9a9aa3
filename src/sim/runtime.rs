//! One task per simulated modem: a [`SimModem`] wired to its pty.
//!
//! The task owns its modem and its pty outright; everything else (the
//! network delivering a message, the control socket switching a fault on)
//! reaches it through a bounded command channel, so no lock is shared with
//! the I/O path and one modem's trouble (a hang, a full pty buffer, an
//! unplugged port) never blocks another modem or the control socket.
//!
//! Faults that live outside the modem are done here: `unplug`/`replug`
//! (the pty itself goes away and comes back, possibly at a new node) and
//! `garbage` (random bytes and broken lines written to the DTE).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use super::modem::{
    Faults, Identity, NetEvent, ReceiveError, SimModem, StorageUsage, StoredMessage,
};
use super::network::Network;
use super::pty::SimPty;
use super::SimError;
use crate::hardware::Profile;

/// Output waiting for a DTE that does not read is capped here; beyond it
/// the oldest bytes are dropped, as a real modem's UART FIFO overflows.
const MAX_PENDING_OUTPUT: usize = 256 * 1024;

/// How often `garbage` writes a burst while it is on.
const GARBAGE_INTERVAL: Duration = Duration::from_millis(700);

/// Capacity of each modem's command channel.
const COMMAND_QUEUE: usize = 64;

/// A fault (or its clearing) the control socket asks a modem for.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultOp {
    /// Close the pty (master and slave) and remove the link.
    Unplug,
    /// A new pty, the link recreated, the modem reboots.
    Replug,
    /// Stop (or resume) answering.
    Hang(bool),
    /// Start (or stop) writing garbage to the DTE.
    Garbage(bool),
    /// Answer `+CMGS` with `+CMS ERROR: code` at this rate, or stop.
    CmsError(Option<(u16, f64)>),
    /// Answer `+CMGS` with a plain `ERROR`, or stop.
    SendError(bool),
    /// Send the next `+CMGS`, then hang before answering; or disarm.
    HangAfterSend(bool),
    /// Report storage full, or stop.
    Full(bool),
    /// Deny registration, or stop.
    Deny(bool),
    /// Reboot as `AT+CFUN=1,1` does.
    Reboot,
    /// Clear every fault, replugging if unplugged.
    Clear,
}

/// The faults in force on one modem, as shown by `sim ctl modems`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FaultState {
    /// The pty is gone.
    pub unplugged: bool,
    /// The modem does not answer.
    pub hang: bool,
    /// Garbage bursts are being written.
    pub garbage: bool,
    /// `+CMS ERROR` code and rate for `+CMGS`.
    pub cms_error: Option<CmsErrorFault>,
    /// `+CMGS` answered with a plain `ERROR`.
    pub send_error: bool,
    /// The next `+CMGS` is sent, then the modem hangs without answering.
    pub hang_after_send: bool,
    /// Storage reports full.
    pub full: bool,
    /// Registration is denied.
    pub deny: bool,
}

/// The `cms-error` fault's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CmsErrorFault {
    /// The `+CMS ERROR` code (TS 27.005 §3.2.5).
    pub code: u16,
    /// Probability of answering with it, 0..=1.
    pub rate: f64,
}

/// What `sim ctl modems` prints for one modem.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModemInfo {
    /// Index K of `DIR/modemK`.
    pub modem: usize,
    /// The SIM's phone number.
    pub number: String,
    /// The modem's IMEI.
    pub imei: String,
    /// The SIM's IMSI.
    pub imsi: String,
    /// The SIM's ICCID.
    pub iccid: String,
    /// `DIR/modemK`.
    pub link: PathBuf,
    /// The pty slave node, absent while unplugged.
    pub tty: Option<PathBuf>,
    /// `running`, `rebooting`, `hung` or `unplugged`.
    pub state: &'static str,
    /// How full the SIM (`SM`), phone (`ME`) and status-report (`SR`)
    /// memories are, as `+CPMS?` reports them.
    pub storage: StorageInfo,
    /// The profile id.
    pub profile: String,
    /// Faults in force.
    pub faults: FaultState,
}

/// Used and total slots of the three memories.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StorageInfo {
    /// SIM storage.
    pub sm: [usize; 2],
    /// Phone storage.
    pub me: [usize; 2],
    /// Status-report storage.
    pub sr: [usize; 2],
}

impl From<StorageUsage> for StorageInfo {
    fn from(u: StorageUsage) -> Self {
        Self {
            sm: [u.sm.used, u.sm.total],
            me: [u.me.used, u.me.total],
            sr: [u.sr.used, u.sr.total],
        }
    }
}

/// One message stored on a modem, as `sim ctl inbox` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboxEntry {
    /// The modem index.
    pub modem: usize,
    /// `SM`, `ME` or `SR`.
    pub mem: &'static str,
    /// The index `AT+CMGR` takes.
    pub index: usize,
    /// `<stat>` (TS 27.005 §3.1): 0 unread, 1 read, 2 unsent, 3 sent.
    pub stat: u8,
    /// `deliver`, `status-report`, `submit`, or `unknown` when the TPDU
    /// does not decode.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Originator of a message received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Destination of a stored message, or recipient of a status report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The text, when the user data is text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `(reference, total, seq)` of a concatenated part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concat: Option<(u16, u8, u8)>,
    /// The TPDU in hex (no SMSC field).
    pub tpdu: String,
}

impl InboxEntry {
    fn new(modem: usize, m: StoredMessage) -> Self {
        use crate::pdu::{self, DecodeOptions, Tpdu};
        let opts = DecodeOptions {
            smsc: false,
            ..DecodeOptions::default()
        };
        let concat = |ud: &pdu::UserData| {
            ud.header
                .as_ref()
                .and_then(|h| h.concat())
                .map(|c| (c.reference, c.total, c.seq))
        };
        let mut e = InboxEntry {
            modem,
            mem: m.mem,
            index: m.index,
            stat: m.stat,
            kind: "unknown",
            from: None,
            to: None,
            text: None,
            concat: None,
            tpdu: hex::encode_upper(&m.tpdu),
        };
        match pdu::decode(&m.tpdu, opts).map(|p| p.tpdu) {
            Ok(Tpdu::Deliver(d)) => {
                e.kind = "deliver";
                e.from = Some(d.originator.to_string());
                e.text = d.user_data.text().map(str::to_string);
                e.concat = concat(&d.user_data);
            }
            Ok(Tpdu::Submit(s)) => {
                e.kind = "submit";
                e.to = Some(s.destination.to_string());
                e.text = s.user_data.text().map(str::to_string);
                e.concat = concat(&s.user_data);
            }
            Ok(Tpdu::StatusReport(r)) => {
                e.kind = "status-report";
                e.to = Some(r.recipient.to_string());
            }
            Ok(_) | Err(_) => {}
        }
        e
    }
}

/// A request to one modem task.
#[derive(Debug)]
pub enum ModemCmd {
    /// Deliver an SMS-DELIVER TPDU (no SMSC field).
    Deliver {
        /// The TPDU.
        tpdu: Vec<u8>,
        /// The modem's answer.
        reply: oneshot::Sender<Result<(), ReceiveError>>,
    },
    /// Deliver an SMS-STATUS-REPORT TPDU (no SMSC field).
    StatusReport {
        /// The TPDU.
        tpdu: Vec<u8>,
        /// The modem's answer.
        reply: oneshot::Sender<Result<(), ReceiveError>>,
    },
    /// Switch a fault on or off; answers the modem's info afterwards.
    Fault {
        /// What to do.
        op: FaultOp,
        /// The info after the change, or why it failed.
        reply: oneshot::Sender<Result<ModemInfo, String>>,
    },
    /// List what the modem has stored (read-only).
    Inbox {
        /// One entry per stored message.
        reply: oneshot::Sender<Vec<InboxEntry>>,
    },
    /// Report the modem's info.
    Info {
        /// The info.
        reply: oneshot::Sender<ModemInfo>,
    },
}

/// A cheap, cloneable way to reach one modem task.
#[derive(Debug, Clone)]
pub struct ModemHandle {
    /// The modem's index.
    pub index: usize,
    /// The SIM's phone number (immutable for the modem's life).
    pub number: String,
    tx: mpsc::Sender<ModemCmd>,
}

/// Why a request to a modem task failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HandleError {
    /// The task has stopped (the simulator is shutting down).
    #[error("modem {0} is shut down")]
    Gone(usize),
    /// The task did not answer in time.
    #[error("modem {0} did not answer the request in time")]
    Timeout(usize),
    /// The modem refused the request.
    #[error("modem {0}: {1}")]
    Refused(usize, String),
}

/// How long a request to a modem task may take. The task never blocks, so
/// this only matters if it is overloaded.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

impl ModemHandle {
    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> ModemCmd,
    ) -> Result<T, HandleError> {
        let (reply, rx) = oneshot::channel();
        let fut = async {
            self.tx
                .send(make(reply))
                .await
                .map_err(|_| HandleError::Gone(self.index))?;
            rx.await.map_err(|_| HandleError::Gone(self.index))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| HandleError::Timeout(self.index))?
    }

    /// Hands an SMS-DELIVER to the modem.
    pub async fn deliver(&self, tpdu: Vec<u8>) -> Result<Result<(), ReceiveError>, HandleError> {
        self.request(|reply| ModemCmd::Deliver { tpdu, reply })
            .await
    }

    /// Hands an SMS-STATUS-REPORT to the modem.
    pub async fn status_report(
        &self,
        tpdu: Vec<u8>,
    ) -> Result<Result<(), ReceiveError>, HandleError> {
        self.request(|reply| ModemCmd::StatusReport { tpdu, reply })
            .await
    }

    /// Applies a fault.
    pub async fn fault(&self, op: FaultOp) -> Result<ModemInfo, HandleError> {
        self.request(|reply| ModemCmd::Fault { op, reply })
            .await?
            .map_err(|e| HandleError::Refused(self.index, e))
    }

    /// What the modem has stored.
    pub async fn inbox(&self) -> Result<Vec<InboxEntry>, HandleError> {
        self.request(|reply| ModemCmd::Inbox { reply }).await
    }

    /// The modem's info.
    pub async fn info(&self) -> Result<ModemInfo, HandleError> {
        self.request(|reply| ModemCmd::Info { reply }).await
    }
}

/// Creates the command channel of modem `index`: the handle for others,
/// the receiver for [`ModemTask::spawn`].
pub fn channel(index: usize, number: &str) -> (ModemHandle, mpsc::Receiver<ModemCmd>) {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    (
        ModemHandle {
            index,
            number: number.to_string(),
            tx,
        },
        rx,
    )
}

/// One modem's task state.
pub struct ModemTask {
    index: usize,
    modem: SimModem,
    identity: Identity,
    profile_id: String,
    link: PathBuf,
    pty: Option<SimPty>,
    /// The node of the last pty, so that a replug can avoid reusing it.
    last_tty: Option<PathBuf>,
    /// Output produced by the modem but not yet accepted by the pty.
    pending: Vec<u8>,
    faults: FaultState,
    rng: StdRng,
    rx: mpsc::Receiver<ModemCmd>,
    network: Network,
}

impl ModemTask {
    /// Opens the pty at `link` and builds the task (not yet running).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: usize,
        identity: Identity,
        profile: &Profile,
        latency: Duration,
        seed: u64,
        link: &Path,
        rx: mpsc::Receiver<ModemCmd>,
        network: Network,
    ) -> Result<Self, SimError> {
        let pty = SimPty::open(link)?;
        let modem = SimModem::new(identity.clone(), profile, latency, seed, Instant::now());
        Ok(Self {
            index,
            modem,
            identity,
            profile_id: profile.id.clone(),
            link: link.to_path_buf(),
            pty: Some(pty),
            last_tty: None,
            pending: Vec::new(),
            faults: FaultState::default(),
            // A different stream than the modem's own, same reproducibility.
            rng: StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15),
            rx,
            network,
        })
    }

    /// The modem's info right now.
    pub fn info(&self) -> ModemInfo {
        ModemInfo {
            modem: self.index,
            number: self.identity.number.clone(),
            imei: self.identity.imei.clone(),
            imsi: self.identity.imsi.clone(),
            iccid: self.identity.iccid.clone(),
            link: self.link.clone(),
            tty: self.pty.as_ref().map(|p| p.tty().to_path_buf()),
            state: if self.pty.is_none() {
                "unplugged"
            } else if self.faults.hang || self.modem.faults().hang {
                "hung"
            } else if self.modem.is_rebooting(Instant::now()) {
                "rebooting"
            } else {
                "running"
            },
            storage: self.modem.storage_usage().into(),
            profile: self.profile_id.clone(),
            faults: FaultState {
                hang: self.faults.hang || self.modem.faults().hang,
                hang_after_send: self.modem.faults().hang_after_send,
                ..self.faults.clone()
            },
        }
    }

    /// Runs until `shutdown` turns true or every handle is dropped. The pty
    /// (and its link) is dropped on return.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(
            tty = ?self.pty.as_ref().map(SimPty::tty),
            number = %self.identity.number,
            "modem up"
        );
        let mut garbage_tick = tokio::time::interval(GARBAGE_INTERVAL);
        // The interval is only polled while garbage is on; do not let the
        // ticks missed meanwhile fire as one big burst when it is switched on.
        garbage_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = Instant::now();
            self.pump(now);
            // A wake-up at or before `now` that output() did not consume
            // would spin this loop; never wake sooner than 1 ms from now.
            let wake = self
                .modem
                .next_wakeup()
                .map(|w| tokio::time::Instant::from_std(w.max(now + Duration::from_millis(1))));
            let pty = self.pty.as_ref();
            let pending = &self.pending;
            let garbage = self.faults.garbage;
            tokio::select! {
                r = shutdown.changed() => {
                    // The sender gone means the simulator is gone: stop too.
                    if r.is_err() {
                        break;
                    }
                }
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => {
                        self.handle(cmd);
                        if self.faults.garbage && !garbage {
                            // Switched on: one burst now (written by the
                            // fault itself), the next a full interval later.
                            garbage_tick.reset();
                        }
                    }
                    None => break,
                },
                r = read_opt(pty) => match r {
                    Ok(bytes) => {
                        tracing::trace!(bytes = %String::from_utf8_lossy(&bytes), "dte wrote");
                        self.modem.input(&bytes, Instant::now());
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "pty read failed; treating the port as unplugged");
                        self.unplug();
                    }
                },
                r = write_opt(pty, pending), if !pending.is_empty() => match r {
                    Ok(n) => {
                        self.pending.drain(..n.min(self.pending.len()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "pty write failed; treating the port as unplugged");
                        self.unplug();
                    }
                },
                _ = sleep_opt(wake) => {}
                _ = garbage_tick.tick(), if garbage => self.write_garbage(),
            }
        }
        tracing::info!("modem down");
    }

    /// Moves the modem's due output to the pty queue and its events to the
    /// network.
    fn pump(&mut self, now: Instant) {
        let out = self.modem.output(now);
        if self.pty.is_some() {
            self.queue_output(&out);
        } else if !out.is_empty() {
            // Unplugged: nobody can hear it, as with a real modem off the bus.
            tracing::trace!(len = out.len(), "output dropped while unplugged");
        }
        for event in self.modem.take_events() {
            match event {
                NetEvent::Submitted { tpdu, mr } => self.network.submitted(self.index, tpdu, mr),
            }
        }
    }

    fn queue_output(&mut self, out: &[u8]) {
        self.pending.extend_from_slice(out);
        if self.pending.len() > MAX_PENDING_OUTPUT {
            let drop = self.pending.len() - MAX_PENDING_OUTPUT;
            self.pending.drain(..drop);
            tracing::warn!(
                dropped = drop,
                "the DTE is not reading; oldest output dropped"
            );
        }
    }

    fn handle(&mut self, cmd: ModemCmd) {
        let now = Instant::now();
        match cmd {
            ModemCmd::Deliver { tpdu, reply } => {
                let r = if self.pty.is_none() {
                    // An unplugged modem is off the network; the SMSC keeps it.
                    Err(ReceiveError::NotReady)
                } else {
                    self.modem.receive(&tpdu, now)
                };
                tracing::debug!(ok = r.is_ok(), "network delivered a message");
                let _ = reply.send(r);
            }
            ModemCmd::StatusReport { tpdu, reply } => {
                let r = if self.pty.is_none() {
                    Err(ReceiveError::NotReady)
                } else {
                    self.modem.receive_status_report(&tpdu, now)
                };
                tracing::debug!(ok = r.is_ok(), "network delivered a status report");
                let _ = reply.send(r);
            }
            ModemCmd::Fault { op, reply } => {
                let r = self.apply(op, now);
                let _ = reply.send(r.map(|()| self.info()));
            }
            ModemCmd::Info { reply } => {
                let _ = reply.send(self.info());
            }
            ModemCmd::Inbox { reply } => {
                let index = self.index;
                let _ = reply.send(
                    self.modem
                        .stored()
                        .into_iter()
                        .map(|m| InboxEntry::new(index, m))
                        .collect(),
                );
            }
        }
    }

    fn apply(&mut self, op: FaultOp, now: Instant) -> Result<(), String> {
        tracing::info!(fault = ?op, "fault");
        self.sync_faults();
        match op {
            FaultOp::Unplug => self.unplug(),
            FaultOp::Replug => self.replug(now)?,
            FaultOp::Hang(on) => self.faults.hang = on,
            FaultOp::Garbage(on) => {
                self.faults.garbage = on;
                if on {
                    self.write_garbage();
                }
            }
            FaultOp::CmsError(c) => {
                self.faults.cms_error = c.map(|(code, rate)| CmsErrorFault { code, rate })
            }
            FaultOp::Full(on) => self.faults.full = on,
            FaultOp::SendError(on) => self.faults.send_error = on,
            FaultOp::HangAfterSend(on) => self.faults.hang_after_send = on,
            FaultOp::Deny(on) => self.faults.deny = on,
            FaultOp::Reboot => self.modem.reboot(now),
            FaultOp::Clear => {
                let unplugged = self.faults.unplugged;
                self.faults = FaultState::default();
                self.faults.unplugged = unplugged;
                if unplugged {
                    self.replug(now)?;
                }
            }
        }
        self.modem.set_faults(Faults {
            hang: self.faults.hang,
            cms_error: self.faults.cms_error.map(|c| (c.code, c.rate)),
            full: self.faults.full,
            send_error: self.faults.send_error,
            hang_after_send: self.faults.hang_after_send,
            deny: self.faults.deny,
        });
        self.modem.network_changed(now);
        Ok(())
    }

    /// Takes in what the modem changed itself (`hang-after-send` fired:
    /// it is hung now).
    fn sync_faults(&mut self) {
        let m = self.modem.faults();
        self.faults.hang = m.hang;
        self.faults.hang_after_send = m.hang_after_send;
    }

    fn unplug(&mut self) {
        // Dropping the pty closes master and slave and removes the link: a
        // DTE holding the device open now gets EIO/hang-up, as on a USB pull.
        if let Some(old) = self.pty.take() {
            self.last_tty = Some(old.tty().to_path_buf());
        }
        self.pending.clear();
        self.faults.unplugged = true;
    }

    fn replug(&mut self, now: Instant) -> Result<(), String> {
        if self.pty.is_some() {
            // Replugging a plugged modem is a pull-and-push: a new node.
            self.unplug();
        }
        let mut pty = SimPty::open(&self.link).map_err(|e| e.to_string())?;
        if self.last_tty.as_deref() == Some(pty.tty()) {
            // The kernel handed back the node just freed. A re-enumerated USB
            // modem often gets a new one, and a DTE must follow the link, not
            // a cached node: take the next node (the link moves with it) and
            // free this one.
            let next = SimPty::open(&self.link).map_err(|e| e.to_string())?;
            drop(std::mem::replace(&mut pty, next));
        }
        tracing::info!(tty = %pty.tty().display(), "replugged");
        self.pty = Some(pty);
        self.faults.unplugged = false;
        // Power came back: the modem boots like a cold start.
        self.modem.reboot(now);
        Ok(())
    }

    /// Queues one burst of random bytes and broken lines, as a modem with a
    /// bad USB link or firmware crash spews.
    fn write_garbage(&mut self) {
        if self.pty.is_none() {
            return;
        }
        const FRAGMENTS: &[&[u8]] = &[
            b"\r\n+CMTI: \"S",
            b"\r\n+CSQ: 9",
            b"\r\r\n\r",
            b"\0\0\0",
            b"\r\n^RSSI:",
            b"\xff\xfe\x80",
            b"+CMS ERR",
            b"\n\n",
            b"AT+C",
        ];
        let mut burst = Vec::new();
        for _ in 0..self.rng.gen_range(2..8) {
            if self.rng.gen_bool(0.5) {
                let n = self.rng.gen_range(1..24);
                burst.extend((0..n).map(|_| self.rng.gen::<u8>()));
            } else {
                let i = self.rng.gen_range(0..FRAGMENTS.len());
                burst.extend_from_slice(FRAGMENTS.get(i).copied().unwrap_or(b"?"));
            }
        }
        self.queue_output(&burst);
    }
}

async fn read_opt(pty: Option<&SimPty>) -> std::io::Result<Vec<u8>> {
    match pty {
        Some(p) => p.read().await,
        None => std::future::pending().await,
    }
}

async fn write_opt(pty: Option<&SimPty>, bytes: &[u8]) -> std::io::Result<usize> {
    match pty {
        Some(p) => p.write(bytes).await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(when: Option<tokio::time::Instant>) {
    match when {
        Some(w) => tokio::time::sleep_until(w).await,
        None => std::future::pending().await,
    }
}

/// Everything `smsgate sim` was asked for, validated.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where the links and the control socket live.
    pub dir: PathBuf,
    /// The modems' numbers; their count is the number of modems.
    pub numbers: Vec<String>,
    /// The vendor profile every modem imitates.
    pub profile: Profile,
    /// Added before every final result.
    pub latency: Duration,
    /// Added to the final result of every `+CMGS` (a realistic network
    /// takes about 2 s to accept a message); zero for instant modems.
    pub send_time: Duration,
    /// The SIM PIN, if the SIMs ask for one.
    pub pin: Option<String>,
    /// Delay between delivery and its status report.
    pub report_delay: Duration,
    /// Seed of every random choice (faults, garbage).
    pub seed: u64,
}

/// The simulator once started: what the ready line announces.
#[derive(Debug, Clone, Serialize)]
pub struct Ready {
    /// Always true; scripts wait for it.
    pub ready: bool,
    /// The simulator directory.
    pub dir: PathBuf,
    /// The control socket.
    pub socket: PathBuf,
    /// One entry per modem.
    pub modems: Vec<ModemInfo>,
}

/// Runs the simulator until `shutdown` completes. Calls `on_ready` once
/// every pty and the control socket exist. Removes links and the socket
/// before returning.
pub async fn run(
    config: SimConfig,
    shutdown: impl std::future::Future<Output = ()>,
    on_ready: impl FnOnce(&Ready),
) -> Result<(), SimError> {
    use tracing::Instrument;

    let dir = config.dir.clone();
    std::fs::create_dir_all(&dir).map_err(|source| SimError::Dir {
        dir: dir.clone(),
        source,
    })?;
    let socket_path = dir.join(super::control::SOCKET_NAME);
    // Bind first: it also detects a simulator already running here, before
    // we touch its links.
    let listener = super::control::bind(&socket_path)?;
    let _socket_guard = RemoveOnDrop(socket_path.clone());

    let (stop_tx, stop_rx) = watch::channel(false);
    let (handles, receivers): (Vec<_>, Vec<_>) = config
        .numbers
        .iter()
        .enumerate()
        .map(|(i, n)| channel(i, n))
        .unzip();
    let network = Network::new(handles.clone(), config.report_delay, stop_rx.clone());
    let mut tasks = Vec::new();
    for ((i, number), rx) in config.numbers.iter().enumerate().zip(receivers) {
        let identity = super::identity::generate(
            i,
            number,
            config.profile.sim.imei_prefix.as_deref(),
            config.pin.as_deref(),
        );
        let link = dir.join(format!("modem{i}"));
        let seed = config.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
        // On error, tasks built so far drop here and remove their links.
        let mut task = ModemTask::new(
            i,
            identity,
            &config.profile,
            config.latency,
            seed,
            &link,
            rx,
            network.clone(),
        )?;
        task.modem.set_send_time(config.send_time);
        tasks.push(task);
    }
    let infos: Vec<ModemInfo> = tasks.iter().map(ModemTask::info).collect();
    let mut joins = Vec::new();
    for task in tasks {
        let span = tracing::info_span!("modem", modem = task.index);
        joins.push(tokio::spawn(task.run(stop_rx.clone()).instrument(span)));
    }
    let control = tokio::spawn(super::control::serve(
        listener,
        network.clone(),
        stop_rx.clone(),
    ));
    on_ready(&Ready {
        ready: true,
        dir: dir.clone(),
        socket: socket_path.clone(),
        modems: infos,
    });
    tracing::info!(modems = config.numbers.len(), dir = %dir.display(), "simulator ready");

    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for j in joins {
        // Each task drops its pty (and link) on the way out.
        let _ = tokio::time::timeout(Duration::from_secs(5), j).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), control).await;
    drop(handles);
    Ok(())
}

/// Removes a path when dropped (the control socket, on every exit path).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.0.display(), error = %e, "cannot remove");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(dir: &Path, seed: u64) -> ModemTask {
        let (handle, rx) = channel(0, "+15550000000");
        let (_stop, stop_rx) = watch::channel(false);
        let network = Network::new(vec![handle], Duration::ZERO, stop_rx);
        let profile = crate::hardware::builtin_profile("generic").unwrap();
        let identity = super::super::identity::generate(0, "+15550000000", None, None);
        ModemTask::new(
            0,
            identity,
            &profile,
            Duration::ZERO,
            seed,
            &dir.join(format!("modem-{seed}-{}", dir.read_dir().unwrap().count())),
            rx,
            network,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn garbage_is_reproducible_from_the_seed() {
        let dir = tempfile::tempdir().unwrap();
        let burst = |seed| {
            let mut t = task(dir.path(), seed);
            t.pending.clear();
            t.write_garbage();
            t.write_garbage();
            std::mem::take(&mut t.pending)
        };
        let a = burst(7);
        assert!(!a.is_empty());
        assert_eq!(a, burst(7));
        assert_ne!(a, burst(8));
    }

    #[tokio::test]
    async fn unplug_drops_the_link_and_replug_takes_a_new_node() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = task(dir.path(), 1);
        let link = t.link.clone();
        let old = std::fs::read_link(&link).unwrap();
        t.apply(FaultOp::Unplug, Instant::now()).unwrap();
        assert!(std::fs::symlink_metadata(&link).is_err());
        assert_eq!(t.info().state, "unplugged");
        // No garbage can be queued for a port that is gone.
        t.write_garbage();
        assert!(t.pending.is_empty());
        t.apply(FaultOp::Clear, Instant::now()).unwrap();
        let new = std::fs::read_link(&link).unwrap();
        assert_ne!(old, new);
        assert!(!t.info().faults.unplugged);
    }
}
