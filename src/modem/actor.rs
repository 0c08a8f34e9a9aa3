//! The actor task: drives one modem through its life cycle.
//!
//! The main loop asks the current [`State`] for its work (open, identify,
//! register, serve, recover, wait for the port), turns the outcome into an
//! [`Input`], and lets [`transition`] decide what comes next. Every wait
//! has a timeout and watches the shutdown signal; nothing here is shared
//! with another modem's actor except the rejected-PIN memory.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use super::pin::{decide, PinDecision, RejectedPins};
use super::profile::{self, Settings};
use super::state::{transition, Action, Input, State, Step};
use super::timed::Timed;
use super::{
    temporary, Committed, ModemConfig, ModemEvent, Origin, Received, SendError, SendRequest,
    SentPart, Snapshot,
};
use crate::at::commands::{
    iccid_in, AckMessage, AtCommand, EchoOff, EnterPin, Identify, Imei, Imsi, ListMessagesAs,
    MessageFormat, MessageStat, OperatorQuery, OwnNumbers, PinAttempts, PinQuery, Ping, Raw,
    ReadIccidFile, ReadMessage, RegistrationQuery, ReportErrors, SelectMessageService, SendMessage,
    SetFunctionality, SetOperatorFormat, SetRegistrationReports, SetSmsc, SetStorage, SignalQuery,
    SmscQuery, Storage, StorageQuery, StorageSupportQuery,
};
use crate::at::urc::{PinState, RegKind, RegStatus};
use crate::at::{AtError, CmeError, Link, LinkConfig, LinkError, PayloadError, Retry, Urc};
use crate::hardware::Profile;
use crate::pdu::{decode_hex, DecodeOptions, Tpdu};

/// Time for a modem to answer the ESC sent at open before its input is
/// discarded.
const ESC_SETTLE: Duration = Duration::from_millis(100);
/// Quiet time after the first answered `AT` of a freshly opened port. A
/// modem may still be answering the command of a process that died
/// (a kill during a slow command): that stale `OK` can satisfy our first
/// `AT`, and our own `OK` then follows. Waiting lets it arrive while no
/// command is in flight, where the link drops it; without the pause every
/// identification reply would be the previous command's.
const RESYNC_SETTLE: Duration = Duration::from_millis(200);
/// Identifications in a row that may end without an IMEI because the
/// answer to `AT+CGSN` did not parse (replies out of step) before the
/// modem is taken as one that has none.
const IMEI_RETRIES: u32 = 2;

/// Degraded this often without reaching ready, a modem that still answers
/// `AT` is reset rather than set up once more.
const STRIKES_BEFORE_RESET: u32 = 3;

/// Why an AT exchange did not produce an answer.
enum Fail {
    /// Shutdown was requested while waiting.
    Stop,
    /// The link said so.
    Link(LinkError),
}

type CommitFuture = Pin<Box<dyn Future<Output = (Origin, bool)> + Send>>;

/// What woke the serving loop.
enum Wake {
    Stop,
    Send(SendRequest),
    Urc(Result<Urc, broadcast::error::RecvError>),
    Commit(Origin, bool),
    Probe,
    Sweep,
    Closed,
}

/// The actor's state. Fields are private to the task.
pub(crate) struct Actor {
    cfg: ModemConfig,
    rejected: RejectedPins,
    rx: mpsc::Receiver<SendRequest>,
    events: mpsc::Sender<ModemEvent>,
    state_tx: watch::Sender<Snapshot>,
    shutdown: watch::Receiver<bool>,
    state: State,
    snap: Snapshot,
    link: Option<Link>,
    link_prompt_delay: Duration,
    urcs: Option<broadcast::Receiver<Urc>>,
    profile: Option<Profile>,
    settings: Settings,
    /// Offered, not yet committed (or timed out).
    pending: FuturesUnordered<CommitFuture>,
    pending_keys: HashSet<(String, u32)>,
    /// Where new messages land (`<mem3>`) and what `+CMTI` without a
    /// readable storage means.
    primary: Storage,
    /// Storages the sweep lists.
    sweep_mems: Vec<Storage>,
    /// `+CSMS=1` accepted: routed messages need `+CNMA` (27.005 §3.4.4).
    phase2plus: bool,
    /// Consecutive failed commands while serving.
    /// Identifications in a row whose `AT+CGSN` answer did not parse.
    imei_misses: u32,
    /// ICCIDs read in this process, by IMEI: a modem that had one and now
    /// answers none is out of step, not without a SIM identity (the store
    /// scopes de-duplication by ICCID).
    known_iccids: HashMap<String, String>,
    /// Whether "no ICCID" / "no IMEI" was already logged as a warning for
    /// a modem that never had one.
    warned_no_iccid: bool,
    warned_no_imei: bool,
    failures: u32,
    /// Times degraded since the modem was last ready.
    strikes: u32,
    /// A routed message went unacknowledged: the modem reset `+CNMI`
    /// (27.005 §3.4.4) and stored it; set up again and sweep.
    resync: bool,
    /// The receive storage was last seen nearly full (warned once per
    /// crossing).
    nearly_full: bool,
    next: Option<Input>,
}

impl Actor {
    pub(crate) fn new(
        cfg: ModemConfig,
        rejected: RejectedPins,
        rx: mpsc::Receiver<SendRequest>,
        events: mpsc::Sender<ModemEvent>,
        state_tx: watch::Sender<Snapshot>,
        shutdown: watch::Receiver<bool>,
    ) -> Actor {
        let generic = cfg.profiles.iter().find(|p| p.id == "generic").cloned();
        let settings = match &generic {
            Some(g) => Settings::resolve(g, Some(g)),
            None => Settings::resolve(&fallback_profile(), None),
        };
        let snap = state_tx.borrow().clone();
        Actor {
            cfg,
            rejected,
            rx,
            events,
            state_tx,
            shutdown,
            state: State::Opening,
            snap,
            link: None,
            link_prompt_delay: Duration::ZERO,
            urcs: None,
            profile: generic,
            settings,
            pending: FuturesUnordered::new(),
            pending_keys: HashSet::new(),
            primary: Storage::Sm,
            sweep_mems: vec![Storage::Sm],
            phase2plus: false,
            failures: 0,
            imei_misses: 0,
            known_iccids: HashMap::new(),
            warned_no_iccid: false,
            warned_no_imei: false,
            strikes: 0,
            resync: false,
            nearly_full: false,
            next: None,
        }
    }

    /// Runs until shutdown.
    pub(crate) async fn run(mut self) {
        info!(modem = %self.cfg.name, port = %self.cfg.port.display(), "modem actor started");
        self.publish();
        loop {
            let input = match self.next.take() {
                Some(i) => i,
                None => self.work().await,
            };
            self.apply(input).await;
            if self.state == State::Stopped {
                break;
            }
        }
        info!(modem = %self.cfg.name, "modem actor stopped");
    }

    /// The work of the current state, until something happens.
    async fn work(&mut self) -> Input {
        match self.state.clone() {
            State::Opening => self.open().await,
            State::Identifying => self.identify().await.unwrap_or_else(|i| i),
            State::SimLocked { .. } => self.idle().await,
            State::Registering => self.register().await.unwrap_or_else(|i| i),
            State::Ready => self.serve().await,
            State::Degraded { .. } => self.recheck().await,
            State::Resetting { step, attempt } => self.recover(step, attempt).await,
            State::Gone => self.wait_port().await,
            State::Stopped => Input::Shutdown,
        }
    }

    async fn apply(&mut self, input: Input) {
        let (next, actions) = transition(&self.state, &input);
        if next != self.state {
            info!(
                modem = %self.cfg.name,
                imei = self.snap.imei.as_deref().unwrap_or(""),
                iccid = self.snap.iccid.as_deref().unwrap_or(""),
                from = %self.state,
                to = %next,
                input = ?input,
                "state change"
            );
        } else {
            debug!(modem = %self.cfg.name, state = %self.state, input = ?input, "input ignored");
        }
        if matches!(next, State::Degraded { .. }) && !matches!(self.state, State::Degraded { .. }) {
            self.strikes = self.strikes.saturating_add(1);
        }
        if next == State::Ready {
            self.strikes = 0;
        }
        self.state = next;
        match &input {
            Input::SimLocked(r)
            | Input::Unhealthy(r)
            | Input::OpenFailed(r)
            | Input::StillFailing { reason: r, .. } => {
                self.snap.last_error = Some(r.clone());
            }
            _ => {}
        }
        self.publish();
        for action in actions {
            match action {
                Action::FailPendingSends => self.fail_queued(),
                Action::ClosePort => self.close(),
                Action::Sweep => {
                    if let Err(i) = self.sweep().await {
                        self.next = Some(i);
                    }
                }
            }
        }
    }

    fn publish(&mut self) {
        self.snap.state = self.state.name().to_string();
        self.snap.detail = self.state.to_string();
        self.snap.profile = Some(self.settings.id.clone());
        self.state_tx.send_replace(self.snap.clone());
        // The watch carries the truth; a full event queue only loses an
        // intermediate state.
        let _ = self.events.try_send(ModemEvent::State(self.snap.clone()));
    }

    fn fail_queued(&mut self) {
        let why = format!("modem {} is {}", self.cfg.name, self.state);
        while let Ok(req) = self.rx.try_recv() {
            let _ = req.reply.send(Err(temporary(why.clone())));
        }
    }

    fn close(&mut self) {
        if self.link.take().is_some() {
            debug!(modem = %self.cfg.name, "port closed");
        }
        self.urcs = None;
    }

    fn port_exists(&self) -> bool {
        self.cfg.port.exists()
    }

    /// After the link closed: gone when the path went with it.
    fn closed_input(&self) -> Input {
        if self.port_exists() {
            Input::PortClosed
        } else {
            Input::PortMissing
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        backoff(self.cfg.backoff_min, self.cfg.backoff_max, attempt)
    }

    // ------------------------------------------------------------ AT I/O

    async fn at<C: AtCommand + Sync>(&mut self, cmd: &C) -> Result<C::Response, Fail> {
        let Some(link) = self.link.clone() else {
            return Err(Fail::Link(LinkError::Closed));
        };
        tokio::select! {
            r = link.send(cmd) => r.map_err(Fail::Link),
            _ = stopping(&mut self.shutdown) => Err(Fail::Stop),
        }
    }

    /// An answer, `None` for an error result or an unreadable answer (the
    /// caller can do without), or the input that ends the current work.
    fn soft<T>(&mut self, r: Result<T, Fail>, what: &str) -> Result<Option<T>, Input> {
        match r {
            Ok(v) => {
                self.failures = 0;
                Ok(Some(v))
            }
            Err(Fail::Stop) => Err(Input::Shutdown),
            Err(Fail::Link(LinkError::Closed)) => Err(self.closed_input()),
            Err(Fail::Link(e @ LinkError::Timeout { .. })) => Err(Input::Unhealthy(e.to_string())),
            Err(Fail::Link(e)) => {
                debug!(modem = %self.cfg.name, what, error = %e, "command failed");
                self.failures = self.failures.saturating_add(1);
                Ok(None)
            }
        }
    }

    /// Like [`soft`](Self::soft), but retries a temporary refusal (SIM
    /// busy: Quectel answers SMS commands with `+CMS ERROR: 314` until
    /// `+QIND: SMS DONE`) for up to 30 s.
    async fn busy<C: AtCommand + Sync>(
        &mut self,
        cmd: &C,
        what: &str,
    ) -> Result<Option<C::Response>, Input> {
        for _ in 0..30 {
            match self.at(cmd).await {
                Err(Fail::Link(LinkError::At { error, .. }))
                    if error.retry() == Retry::Temporary =>
                {
                    debug!(modem = %self.cfg.name, what, %error, "busy, retrying in 1 s");
                    if let Some(i) = self.wait(Duration::from_secs(1)).await {
                        return Err(i);
                    }
                }
                r => return self.soft(r, what),
            }
        }
        Ok(None)
    }

    async fn probe(&mut self) -> bool {
        let t = self.cfg.probe_timeout;
        self.at(&Timed(Ping, t)).await.is_ok()
    }

    /// Opens the port and starts a link on it. The port is locked with
    /// `flock` (serialport's exclusive open) so a second program using the
    /// same convention cannot take it; the link we just dropped releases
    /// its descriptor a moment later, hence a few short retries.
    async fn open_port(&mut self) -> Result<(), String> {
        self.close();
        let path = self.cfg.port.to_string_lossy().into_owned();
        let mut tries = 0;
        let mut port = loop {
            let builder = tokio_serial::new(path.clone(), self.cfg.baud);
            match tokio_serial::SerialPortBuilderExt::open_native_async(builder) {
                Ok(p) => break p,
                Err(e) if e.kind == tokio_serial::ErrorKind::NoDevice && tries < 20 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(format!("cannot open {}: {e}", self.cfg.port.display())),
            }
        };
        // Exclusive mode would make the next reopen (recovery ladder)
        // fail with EBUSY if the old descriptor lingers.
        let _ = port.set_exclusive(false);
        // A previous process may have died at the `> ` prompt of +CMGS:
        // the modem then takes every byte as PDU text and never answers
        // `AT`. ESC aborts the message being entered (TS 27.005 §3.5.1)
        // and is ignored outside a prompt; whatever it answers is dropped.
        if tokio::io::AsyncWriteExt::write_all(&mut port, &[0x1B])
            .await
            .is_ok()
        {
            tokio::time::sleep(ESC_SETTLE).await;
            let _ = tokio_serial::SerialPort::clear(&port, tokio_serial::ClearBuffer::Input);
        }
        let mut lc = LinkConfig::new(self.cfg.name.clone());
        lc.prompt_delay = self.settings.prompt_delay;
        self.link_prompt_delay = lc.prompt_delay;
        let link = Link::spawn(port, lc);
        self.urcs = Some(link.subscribe());
        self.link = Some(link);
        debug!(modem = %self.cfg.name, "port opened");
        Ok(())
    }

    /// Waits `dur` while answering sends with "not ready"; returns early
    /// with the input on shutdown or when the port closes.
    async fn wait(&mut self, dur: Duration) -> Option<Input> {
        let sleep = tokio::time::sleep(dur);
        tokio::pin!(sleep);
        let link = self.link.clone();
        loop {
            let wake = tokio::select! {
                _ = &mut sleep => return None,
                _ = stopping(&mut self.shutdown) => Wake::Stop,
                r = self.rx.recv() => match r {
                    Some(req) => Wake::Send(req),
                    None => Wake::Stop,
                },
                _ = closed(link.as_ref()) => Wake::Closed,
            };
            match wake {
                Wake::Send(req) => {
                    let why = format!("modem {} cannot send now ({})", self.cfg.name, self.state);
                    let _ = req.reply.send(Err(temporary(why)));
                }
                Wake::Closed => return Some(self.closed_input()),
                _ => return Some(Input::Shutdown),
            }
        }
    }

    // ---------------------------------------------------- state work

    async fn open(&mut self) -> Input {
        if !self.port_exists() {
            return Input::PortMissing;
        }
        if let Err(e) = self.open_port().await {
            return Input::OpenFailed(e);
        }
        if self.probe().await {
            if let Some(i) = self.wait(RESYNC_SETTLE).await {
                return i;
            }
            Input::Opened
        } else if *self.shutdown.borrow() {
            Input::Shutdown
        } else {
            Input::OpenFailed("no answer to AT".into())
        }
    }

    async fn identify(&mut self) -> Result<Input, Input> {
        let before = (self.snap.imei.clone(), self.snap.iccid.clone());
        let r = self.identify_inner().await;
        let after = (self.snap.imei.clone(), self.snap.iccid.clone());
        if before.0.is_some() && before != after && !self.pending_keys.is_empty() {
            // Another modem or SIM behind the same port: the indices we
            // were about to delete belong to someone else's storage.
            warn!(
                modem = %self.cfg.name,
                pending = self.pending_keys.len(),
                "modem or SIM changed; pending deletions dropped (the messages stay)"
            );
            self.pending = FuturesUnordered::new();
            self.pending_keys.clear();
        }
        r
    }

    async fn identify_inner(&mut self) -> Result<Input, Input> {
        if !self.link.as_ref().is_some_and(|l| !l.is_closed()) {
            if let Err(e) = self.open_port().await {
                return Ok(Input::Unhealthy(e));
            }
        }
        let t = self.cfg.probe_timeout;
        let r = self.at(&Timed(Ping, t)).await;
        self.soft(r, "AT")?;
        let r = self.at(&EchoOff).await;
        self.soft(r, "ATE0")?;
        // 27.007 §9.1: numeric +CME/+CMS errors, so they can be classified.
        let r = self.at(&ReportErrors(1)).await;
        self.soft(r, "AT+CMEE=1")?;
        let r = self.at(&Identify::Manufacturer).await;
        let manufacturer = self.soft(r, "AT+CGMI")?;
        let r = self.at(&Identify::Model).await;
        let model = self.soft(r, "AT+CGMM")?;
        let r = self.at(&Identify::Revision).await;
        let revision = self.soft(r, "AT+CGMR")?;
        self.choose_profile(
            manufacturer.as_deref().unwrap_or(""),
            model.as_deref().unwrap_or(""),
        );
        self.snap.manufacturer = manufacturer;
        self.snap.model = model;
        self.snap.revision = revision;
        let r = self.at(&Imei).await;
        let garbled = matches!(r, Err(Fail::Link(LinkError::Parse { .. })));
        let imei = self.soft(r, "AT+CGSN")?;
        if imei.is_none() && self.snap.imei.is_some() {
            // This modem had an IMEI in this process: identified without
            // one, its messages would be stored under its name (another
            // de-duplication key). The snapshot keeps the IMEI it had.
            warn!(modem = %self.cfg.name, imei = self.snap.imei.as_deref().unwrap_or(""), "AT+CGSN answered no IMEI from a modem that had one; replies out of step, identifying again");
            return Ok(Input::Unhealthy(
                "identification replies out of step: no IMEI from a modem that had one".into(),
            ));
        }
        self.snap.imei = imei;
        if garbled && self.imei_misses < IMEI_RETRIES {
            // Every modem has an IMEI; an answer that is not one means the
            // replies are out of step with the commands (a stale reply
            // from before we opened the port). Identified like this, the
            // modem would get a name instead of its id, and messages on
            // its SIM would be stored again under another key: reopen and
            // identify again instead.
            self.imei_misses += 1;
            warn!(modem = %self.cfg.name, "AT+CGSN answered no IMEI; replies out of step, reopening");
            return Ok(Input::Unhealthy(
                "identification replies out of step with the commands".into(),
            ));
        }
        self.imei_misses = 0;
        if self.snap.imei.is_none() && !self.warned_no_imei {
            self.warned_no_imei = true;
            warn!(modem = %self.cfg.name, "no IMEI; the modem is known by its configured name");
        }
        if self.settings.prompt_delay != self.link_prompt_delay {
            // The profile wants a prompt delay the link was not opened with.
            if let Err(e) = self.open_port().await {
                return Ok(Input::Unhealthy(e));
            }
        }
        let pin = match self.pin_state().await? {
            Ok(p) => p,
            Err(reason) => return Ok(Input::SimLocked(reason)),
        };
        let had_iccid = self.snap.iccid.clone();
        self.snap.iccid = self.read_iccid().await?;
        if pin != PinState::Ready {
            if let Some(locked) = self.unlock(&pin).await? {
                return Ok(Input::SimLocked(locked));
            }
            if self.snap.iccid.is_none() {
                self.snap.iccid = self.read_iccid().await?;
            }
        }
        if let Some(out) = self.check_iccid(had_iccid) {
            return Ok(out);
        }
        let r = self.busy(&Imsi, "AT+CIMI").await?;
        self.snap.imsi = r;
        let r = self.at(&OwnNumbers).await;
        self.snap.own_number = self
            .soft(r, "AT+CNUM")?
            .and_then(|v| v.into_iter().map(|n| n.number).find(|n| !n.is_empty()));
        self.failures = 0;
        info!(
            modem = %self.cfg.name,
            imei = self.snap.imei.as_deref().unwrap_or(""),
            iccid = self.snap.iccid.as_deref().unwrap_or(""),
            profile = %self.settings.id,
            "identified"
        );
        Ok(Input::SimReady)
    }

    /// After the ICCID read: a modem whose ICCID was read before in this
    /// process (same IMEI) and now gives none is answering out of step
    /// (its SIM answered a moment ago): going ready would change the
    /// store's de-duplication scope from `sim:` to `modem:` and store a
    /// committed-but-not-deleted message twice. Then the snapshot keeps
    /// the ICCID it had and the answer is [`Input::Unhealthy`] (degraded,
    /// identified again, reset after repeated strikes). A modem that never
    /// had one goes on without (warned once).
    fn check_iccid(&mut self, had: Option<String>) -> Option<Input> {
        let imei = self.snap.imei.clone()?;
        match (&self.snap.iccid, self.known_iccids.get(&imei)) {
            (Some(iccid), _) => {
                self.known_iccids.insert(imei, iccid.clone());
                None
            }
            (None, Some(known)) => {
                warn!(modem = %self.cfg.name, %imei, iccid = %known, "no ICCID from a modem whose SIM had one; replies out of step, identifying again");
                self.snap.iccid = had;
                Some(Input::Unhealthy(
                    "identification replies out of step: no ICCID from a SIM that had one".into(),
                ))
            }
            (None, None) => {
                if !self.warned_no_iccid {
                    self.warned_no_iccid = true;
                    warn!(modem = %self.cfg.name, %imei, "no ICCID readable; inbound de-duplication is scoped by the modem, not the SIM");
                }
                None
            }
        }
    }

    fn choose_profile(&mut self, manufacturer: &str, model: &str) {
        let profiles = &self.cfg.profiles;
        let usb = profile::usb_info(&self.cfg.port, &self.cfg.sysfs);
        let (chosen, how) = if let Some(id) = &self.cfg.profile {
            (profiles.iter().find(|p| &p.id == id), "configured")
        } else if let Some(p) = usb.as_ref().and_then(|u| profile::by_usb(profiles, u)) {
            (Some(p), "USB ids")
        } else {
            (
                profile::by_identity(profiles, manufacturer, model),
                "+CGMI/+CGMM",
            )
        };
        let generic = profiles.iter().find(|p| p.id == "generic");
        let chosen = match chosen {
            Some(p) => {
                info!(modem = %self.cfg.name, profile = %p.id, by = how, "hardware profile");
                if let Some((u, at)) = usb.as_ref().and_then(|u| {
                    let id = p.usb.iter().find(|x| {
                        x.vendor.eq_ignore_ascii_case(&u.vendor)
                            && x.product.eq_ignore_ascii_case(&u.product)
                    })?;
                    Some((u, id.at_interface?))
                }) {
                    if u.interface.is_some_and(|i| i != at) {
                        warn!(
                            modem = %self.cfg.name,
                            interface = ?u.interface,
                            at_interface = at,
                            "this port is not the AT interface the profile names; it may not answer"
                        );
                    }
                }
                p.clone()
            }
            None => {
                info!(
                    modem = %self.cfg.name,
                    manufacturer, model,
                    "unknown modem, using the generic profile"
                );
                generic.cloned().unwrap_or_else(fallback_profile)
            }
        };
        self.settings = Settings::resolve(&chosen, generic);
        self.profile = Some(chosen);
    }

    /// `+CPIN?` (27.007 §8.3), waiting out a busy SIM. `Ok(Err(reason))`
    /// when there is no usable SIM.
    async fn pin_state(&mut self) -> Result<Result<PinState, String>, Input> {
        for _ in 0..20 {
            match self.at(&PinQuery).await {
                Ok(p) => return Ok(Ok(p)),
                Err(Fail::Link(LinkError::At {
                    error: AtError::Cme(Some(CmeError::SimNotInserted)),
                    ..
                })) => return Ok(Err("no SIM inserted".into())),
                Err(Fail::Link(LinkError::At { error, .. }))
                    if error.retry() == Retry::Temporary =>
                {
                    if let Some(i) = self.wait(Duration::from_secs(1)).await {
                        return Err(i);
                    }
                }
                r => {
                    // A modem without +CPIN? is taken as ready; the SMS
                    // commands will say otherwise.
                    return Ok(Ok(self.soft(r, "AT+CPIN?")?.unwrap_or(PinState::Ready)));
                }
            }
        }
        Ok(Err("SIM stays busy".into()))
    }

    async fn read_iccid(&mut self) -> Result<Option<String>, Input> {
        if let Some(raw) = self.profile.as_ref().and_then(Settings::raw_iccid) {
            let r = self.at(&Raw::new(&raw)).await;
            if let Some(lines) = self.soft(r, "ICCID")? {
                // Vendors answer with their own prefix (`#CCID:`,
                // `ICCID:`, `+ZGETICCID:`) or a bare line.
                match iccid_in(&lines) {
                    Some(id) => return Ok(Some(id)),
                    None => {
                        debug!(modem = %self.cfg.name, command = %raw, ?lines, "no ICCID in the answer")
                    }
                }
            }
        }
        for form in self.settings.iccid.clone() {
            let r = self.at(&form).await;
            if let Some(id) = self.soft(r, "ICCID")? {
                return Ok(Some(id));
            }
        }
        // 27.007 §8.18: EF_ICCID through restricted SIM access, which
        // every 27.007 modem has even when no vendor command answers.
        let r = self.at(&ReadIccidFile).await;
        self.soft(r, "AT+CRSM (EF_ICCID)")
    }

    async fn pin_attempts(&mut self) -> Result<PinAttempts, Input> {
        for q in self.settings.pin_attempts.clone() {
            let r = self.at(&q).await;
            if let Some(a) = self.soft(r, "PIN attempts")? {
                return Ok(a);
            }
        }
        Ok(PinAttempts::default())
    }

    /// Applies the PIN rules; `Some(reason)` when the SIM stays locked.
    async fn unlock(&mut self, state: &PinState) -> Result<Option<String>, Input> {
        let attempts = self.pin_attempts().await?;
        let iccid = self.snap.iccid.clone();
        let key = iccid.clone().unwrap_or_else(|| "*".into());
        let pin = match decide(
            state,
            iccid.as_deref(),
            &self.cfg.pins,
            attempts.pin,
            &self.rejected,
        ) {
            PinDecision::Ready => {
                if let Some(i) = &iccid {
                    self.rejected.clear(i);
                }
                return Ok(None);
            }
            PinDecision::Locked(r) => {
                warn!(modem = %self.cfg.name, iccid = %key, reason = %r, "SIM locked");
                return Ok(Some(r));
            }
            PinDecision::Enter(p) => p,
        };
        let cmd = match EnterPin::new(&pin) {
            Ok(c) => c,
            Err(e) => {
                self.rejected.insert(&key, &pin);
                return Ok(Some(format!("configured PIN for SIM {key}: {e}")));
            }
        };
        info!(modem = %self.cfg.name, iccid = %key, left = ?attempts.pin, "entering the configured PIN");
        let outcome = self.at(&cmd).await;
        let refused = match outcome {
            Ok(()) => None,
            Err(Fail::Stop) => return Err(Input::Shutdown),
            Err(Fail::Link(LinkError::Closed)) => {
                // We cannot know whether it was taken: never send it again.
                self.rejected.insert(&key, &pin);
                return Err(self.closed_input());
            }
            // Never the command text: it holds the PIN.
            Err(Fail::Link(LinkError::At { error, .. })) => Some(error.to_string()),
            Err(Fail::Link(LinkError::Timeout { after, .. })) => {
                Some(format!("no answer within {after:?}"))
            }
            Err(Fail::Link(LinkError::Parse { .. })) => Some("unreadable answer".into()),
        };
        if let Some(err) = refused {
            // Whatever the reason (wrong PIN, timeout), it is never sent
            // again, also not after a restart (invariant 5).
            self.rejected.insert(&key, &pin);
            let left = self.pin_attempts().await?.pin;
            let reason = format!(
                "PIN for SIM {key} rejected ({err}); {} attempt(s) left; not retried",
                left.map_or("unknown".to_string(), |n| n.to_string())
            );
            warn!(modem = %self.cfg.name, iccid = %key, %reason, "PIN rejected");
            return Ok(Some(reason));
        }
        // The SIM takes a moment after the PIN (27.007 §8.3).
        for _ in 0..20 {
            match self.pin_state().await? {
                Ok(PinState::Ready) => {
                    self.rejected.clear(&key);
                    return Ok(None);
                }
                Ok(PinState::SimPin) => {
                    if let Some(i) = self.wait(Duration::from_millis(500)).await {
                        return Err(i);
                    }
                }
                Ok(other) => return Ok(Some(format!("SIM wants {other:?} after the PIN"))),
                Err(reason) => return Ok(Some(reason)),
            }
        }
        Ok(Some("SIM not ready after the PIN".into()))
    }

    async fn register(&mut self) -> Result<Input, Input> {
        // 27.005 §3.2.3: PDU mode.
        if self
            .busy(&MessageFormat { text: false }, "AT+CMGF=0")
            .await?
            .is_none()
        {
            return Ok(Input::Unhealthy("the modem refuses PDU mode".into()));
        }
        self.choose_storage().await?;
        // 27.005 §3.2.1: phase 2+ so that routed messages are acknowledged.
        let r = self.at(&SelectMessageService(1)).await;
        self.phase2plus = self.soft(r, "AT+CSMS=1")?.is_some();
        if !self.phase2plus {
            let r = self.at(&SelectMessageService(0)).await;
            self.soft(r, "AT+CSMS=0")?;
        }
        let cnmi = self.settings.cnmi;
        if self.busy(&cnmi, "AT+CNMI").await?.is_none() {
            warn!(modem = %self.cfg.name, "+CNMI refused; relying on sweeps");
        }
        match self.cfg.smsc.clone() {
            Some(n) => {
                if self.busy(&SetSmsc(n), "AT+CSCA=").await?.is_none() {
                    self.snap.last_error = Some("the modem refused the configured SMSC".into());
                }
            }
            None => {
                if self.busy(&SmscQuery, "AT+CSCA?").await?.is_none() {
                    warn!(modem = %self.cfg.name, "no SMSC on the SIM and none configured: sends will fail");
                    self.snap.last_error = Some("no SMSC on the SIM; set one in the config".into());
                }
            }
        }
        for line in self.settings.init.clone() {
            let r = self.at(&Raw::new(&line)).await;
            self.soft(r, "init")?;
        }
        let r = self
            .at(&SetRegistrationReports {
                kind: RegKind::Cs,
                mode: 1,
            })
            .await;
        self.soft(r, "AT+CREG=1")?;
        let mut attempt = 0;
        let since = Instant::now();
        let mut swept = false;
        let mut reported = false;
        loop {
            let r = self.at(&RegistrationQuery(RegKind::Cs)).await;
            if let Some((_, reg)) = self.soft(r, "AT+CREG?")? {
                self.snap.registration = Some(reg_name(reg.stat).into());
                if reg.stat.is_registered() {
                    break;
                }
            }
            if !swept {
                // Messages already on the SIM can be read (and deleted
                // once committed) without a network.
                swept = true;
                self.sweep().await?;
            }
            self.settle_commits().await?;
            let waited = since.elapsed();
            let overdue = waited >= self.cfg.registration_report_after;
            if overdue {
                let reg = self.snap.registration.as_deref().unwrap_or("unknown");
                let why = format!("not registered after {} s ({reg})", waited.as_secs());
                if !reported {
                    reported = true;
                    warn!(modem = %self.cfg.name, registration = reg, waited_s = waited.as_secs(), "not registered; still trying");
                }
                self.snap.last_error = Some(why);
            }
            self.publish();
            // Every few seconds at first; once overdue, backing off to
            // `backoff_max` (an idle network need not be asked so often).
            let cap = if overdue {
                self.cfg.backoff_max
            } else {
                Duration::from_secs(5)
            };
            let pause = self.backoff(attempt).min(cap);
            attempt = attempt.saturating_add(1);
            if let Some(i) = self.wait(pause).await {
                return Err(i);
            }
        }
        if reported {
            info!(modem = %self.cfg.name, waited_s = since.elapsed().as_secs(), "registered at last");
            self.snap.last_error = None;
        }
        let r = self.at(&SetOperatorFormat(0)).await;
        self.soft(r, "AT+COPS=3,0")?;
        let r = self.at(&OperatorQuery).await;
        self.snap.operator = self.soft(r, "AT+COPS?")?.and_then(|o| o.name);
        self.update_signal().await?;
        self.failures = 0;
        // Boot URCs seen while coming up would read as a fresh reboot once
        // ready; indications among them are covered by the sweep that
        // follows (Action::Sweep on the way to ready).
        if let Some(u) = self.urcs.as_mut() {
            let mut stale = 0usize;
            while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = u.try_recv() {
                stale += 1;
            }
            debug!(modem = %self.cfg.name, stale, "URCs from the bring-up dropped");
        }
        Ok(Input::Registered)
    }

    /// Handles the commits that have arrived (deleting what was stored)
    /// without waiting for the others: used while not serving yet.
    async fn settle_commits(&mut self) -> Result<(), Input> {
        while let Some(Some((origin, ok))) = self.pending.next().now_or_never() {
            self.on_commit(origin, ok).await?;
        }
        Ok(())
    }

    /// Preferred storage (ME, falling back to SM, per profile) for all
    /// three memories (27.005 §3.2.2); the sweep covers every storage
    /// that can hold messages for us, status reports included.
    async fn choose_storage(&mut self) -> Result<(), Input> {
        let support = self.busy(&StorageSupportQuery, "AT+CPMS=?").await?;
        let usable = |m: &Storage| {
            support
                .as_ref()
                .map_or(true, |s| s.mem1.contains(m) && s.mem3.contains(m))
        };
        let mut wanted: Vec<Storage> = self.settings.storage.clone();
        if !wanted.contains(&Storage::Sm) {
            wanted.push(Storage::Sm);
        }
        let mut chosen = None;
        for mem in wanted.iter().filter(|m| usable(m)) {
            let cmd = SetStorage {
                mem1: mem.clone(),
                mem2: Some(mem.clone()),
                mem3: Some(mem.clone()),
            };
            if self.busy(&cmd, "AT+CPMS=").await?.is_some() {
                chosen = Some(mem.clone());
                break;
            }
        }
        let primary = chosen.unwrap_or(Storage::Sm);
        let mut mems = vec![primary.clone()];
        let readable = |m: &Storage| support.as_ref().map_or(true, |s| s.mem1.contains(m));
        for m in wanted.iter().chain([&Storage::Sr]) {
            if !mems.contains(m) && readable(m) && support.is_some() {
                mems.push(m.clone());
            }
        }
        info!(modem = %self.cfg.name, storage = primary.name(), sweep = ?mems.iter().map(Storage::name).collect::<Vec<_>>(), "message storage");
        self.primary = primary;
        self.sweep_mems = mems;
        Ok(())
    }

    async fn update_signal(&mut self) -> Result<(), Input> {
        let r = self.at(&SignalQuery).await;
        if let Some(s) = self.soft(r, "AT+CSQ")? {
            self.snap.signal = Some(s.rssi);
        }
        Ok(())
    }

    /// SIM locked: touch nothing, but notice a reboot (boot URCs) or a
    /// SIM that became ready (a human entered the PIN elsewhere): then
    /// identify again, the SIM may have been swapped.
    async fn idle(&mut self) -> Input {
        let mut urcs = self.urcs.take();
        let input = loop {
            let wake = tokio::select! {
                i = self.wait(self.cfg.probe_interval) => match i {
                    Some(i) => Err(i),
                    None => Ok(None),
                },
                u = recv_urc(urcs.as_mut()) => Ok(Some(u)),
            };
            match wake {
                Err(i) => break i,
                Ok(Some(Ok(urc @ (Urc::Pin(_) | Urc::Ready | Urc::SimState { .. })))) => {
                    info!(modem = %self.cfg.name, ?urc, "SIM state changed");
                    break Input::Rebooted;
                }
                Ok(Some(Err(broadcast::error::RecvError::Closed))) => break self.closed_input(),
                Ok(Some(_)) => {}
                Ok(None) => {
                    // +CPIN? only reads the state; it never spends an attempt.
                    match self.at(&PinQuery).await {
                        Ok(PinState::Ready) => break Input::Rebooted,
                        Err(Fail::Stop) => break Input::Shutdown,
                        Err(Fail::Link(LinkError::Closed)) => break self.closed_input(),
                        _ => {}
                    }
                }
            }
        };
        self.urcs = urcs;
        input
    }

    async fn recheck(&mut self) -> Input {
        if let Some(i) = self.wait(self.cfg.backoff_min).await {
            return i;
        }
        if !self.link.as_ref().is_some_and(|l| !l.is_closed()) {
            return self.closed_input();
        }
        if !self.probe().await {
            Input::Unhealthy("the modem does not answer AT".into())
        } else if self.strikes >= STRIKES_BEFORE_RESET {
            Input::StillFailing {
                reason: format!("degraded {} times without getting ready", self.strikes),
                strikes: self.strikes,
            }
        } else {
            Input::Healthy
        }
    }

    async fn ensure_open(&mut self) -> bool {
        if self.link.as_ref().is_some_and(|l| !l.is_closed()) {
            return true;
        }
        self.open_port().await.is_ok()
    }

    async fn recover(&mut self, step: Step, attempt: u32) -> Input {
        let pause = self.backoff(attempt);
        info!(modem = %self.cfg.name, ?step, attempt, ?pause, "recovery");
        if let Some(i) = self.wait(pause).await {
            return i;
        }
        if !self.port_exists() {
            return Input::PortMissing;
        }
        match step {
            Step::Reopen => {
                self.close();
                if let Err(e) = self.open_port().await {
                    return Input::OpenFailed(e);
                }
                self.healthy_or_failed().await
            }
            Step::CfunCycle => {
                if !self.ensure_open().await || !self.probe().await {
                    return Input::StepFailed;
                }
                // 27.007 §8.2: minimum, then full functionality.
                for fun in [0, 1] {
                    let _ = self
                        .at(&Timed(
                            SetFunctionality { fun, reset: false },
                            Duration::from_secs(15),
                        ))
                        .await;
                }
                self.healthy_or_failed().await
            }
            Step::Reset => {
                if self.ensure_open().await {
                    let mut cmd = Raw::new(&self.settings.reset);
                    cmd.timeout = self.cfg.probe_timeout;
                    info!(modem = %self.cfg.name, command = %cmd.text, "resetting the modem");
                    let _ = self.at(&cmd).await;
                }
                self.close();
                self.await_answer().await
            }
            Step::Reenumerate => {
                self.close();
                self.await_answer().await
            }
        }
    }

    async fn healthy_or_failed(&mut self) -> Input {
        if self.probe().await {
            Input::Healthy
        } else if *self.shutdown.borrow() {
            Input::Shutdown
        } else {
            Input::StepFailed
        }
    }

    /// After a reset: waits up to the profile's settle time for the port
    /// to (re)appear and answer.
    async fn await_answer(&mut self) -> Input {
        let settle = self.settings.reset_settle.min(self.cfg.settle_max);
        let deadline = Instant::now() + settle;
        let poll = self
            .cfg
            .backoff_min
            .clamp(Duration::from_millis(100), Duration::from_secs(1));
        loop {
            if let Some(i) = self.wait(poll).await {
                // The old port closing under us is expected here.
                if i != Input::PortClosed && i != Input::PortMissing {
                    return i;
                }
                self.close();
            }
            if self.port_exists() {
                if self.ensure_open().await && self.probe().await {
                    return Input::Healthy;
                }
            } else {
                self.close();
            }
            if Instant::now() >= deadline {
                return if self.port_exists() {
                    Input::StepFailed
                } else {
                    Input::PortMissing
                };
            }
        }
    }

    async fn wait_port(&mut self) -> Input {
        let poll = self
            .cfg
            .backoff_min
            .clamp(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            if self.port_exists() {
                return Input::PortAppeared;
            }
            if let Some(i) = self.wait(poll).await {
                return i;
            }
        }
    }

    // ------------------------------------------------------------ serving

    async fn serve(&mut self) -> Input {
        let Some(link) = self.link.clone() else {
            return self.closed_input();
        };
        let Some(mut urcs) = self.urcs.take() else {
            return self.closed_input();
        };
        let now = Instant::now();
        let mut probe = interval_at(now + self.cfg.probe_interval, self.cfg.probe_interval);
        probe.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut sweep = interval_at(now + self.cfg.sweep_interval, self.cfg.sweep_interval);
        sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let wake = tokio::select! {
                _ = stopping(&mut self.shutdown) => Wake::Stop,
                r = self.rx.recv() => match r {
                    Some(req) => Wake::Send(req),
                    None => Wake::Stop,
                },
                u = urcs.recv() => Wake::Urc(u),
                Some((o, ok)) = self.pending.next(), if !self.pending.is_empty() => Wake::Commit(o, ok),
                _ = probe.tick() => Wake::Probe,
                _ = sweep.tick() => Wake::Sweep,
                _ = link.closed() => Wake::Closed,
            };
            let r = match wake {
                Wake::Stop => Err(Input::Shutdown),
                Wake::Closed => Err(self.closed_input()),
                Wake::Send(req) => self.do_send(req).await,
                Wake::Urc(Ok(urc)) => self.on_urc(urc).await,
                Wake::Urc(Err(broadcast::error::RecvError::Lagged(n))) => {
                    warn!(modem = %self.cfg.name, lost = n, "URCs lost; sweeping the storage");
                    self.sweep().await
                }
                Wake::Urc(Err(broadcast::error::RecvError::Closed)) => Err(self.closed_input()),
                Wake::Commit(origin, ok) => self.on_commit(origin, ok).await,
                Wake::Probe => {
                    if self.probe().await {
                        match self.update_signal().await {
                            // Nearly full: sweep now rather than at the
                            // next interval (a full storage refuses
                            // messages, 27.005 §3.2.5 322).
                            Ok(()) => match self.update_storage().await {
                                Ok(true) => self.sweep().await,
                                other => other.map(drop),
                            },
                            Err(i) => Err(i),
                        }
                    } else if *self.shutdown.borrow() {
                        Err(Input::Shutdown)
                    } else if link.is_closed() {
                        Err(self.closed_input())
                    } else {
                        Err(Input::Unhealthy("health probe: no answer to AT".into()))
                    }
                }
                Wake::Sweep => self.sweep().await,
            };
            let r = match r {
                Ok(()) if self.resync => {
                    self.resync = false;
                    let cnmi = self.settings.cnmi;
                    match self.busy(&cnmi, "AT+CNMI").await {
                        Ok(_) => self.sweep().await,
                        Err(i) => Err(i),
                    }
                }
                other => other,
            };
            let r = match r {
                Ok(()) if self.failures >= self.cfg.error_storm => Err(Input::Unhealthy(format!(
                    "error storm: {} commands failed in a row",
                    self.failures
                ))),
                other => other,
            };
            if let Err(input) = r {
                self.failures = 0;
                self.urcs = Some(urcs);
                return input;
            }
        }
    }

    async fn on_urc(&mut self, urc: Urc) -> Result<(), Input> {
        match urc {
            // 27.005 §3.4.1 <mt>=1: stored, read it.
            Urc::MessageStored { mem, index } | Urc::StatusReportStored { mem, index } => {
                let mem = match Storage::parse(&mem) {
                    Storage::Unknown(_) => self.primary.clone(),
                    m => m,
                };
                self.read_stored(mem, index).await
            }
            // <mt>=2 / <ds>=1: routed to us, acknowledged after the commit.
            Urc::Message { pdu, .. } | Urc::StatusReport { pdu, .. } => {
                if !self.offer(Origin::Routed, pdu).await {
                    // Not offered, so never acknowledged: the modem falls
                    // back to storing (27.005 §3.4.4: no +CNMA in time
                    // resets +CNMI) and the network re-delivers. Set
                    // +CNMI again and sweep so it is not left there.
                    warn!(modem = %self.cfg.name, "routed message not taken by the daemon (event queue full); left unacknowledged for the network to deliver again");
                    self.resync = self.phase2plus;
                }
                Ok(())
            }
            Urc::Registration {
                kind: RegKind::Cs,
                reg,
            } => {
                self.snap.registration = Some(reg_name(reg.stat).into());
                self.publish();
                if reg.stat.is_registered() {
                    Ok(())
                } else {
                    Err(Input::RegistrationLost)
                }
            }
            Urc::Rssi(r) => {
                self.snap.signal = Some(r);
                Ok(())
            }
            Urc::Unknown(line) if memory_full_indication(&line) => {
                warn!(modem = %self.cfg.name, urc = %line, "the modem says its message storage is full; sweeping");
                self.sweep().await
            }
            // Boot indications: the modem restarted and lost its settings.
            Urc::Ready | Urc::Pin(_) | Urc::SimState { .. } => {
                info!(modem = %self.cfg.name, ?urc, "the modem rebooted");
                Err(Input::Rebooted)
            }
            other => {
                debug!(modem = %self.cfg.name, urc = ?other, "URC ignored");
                Ok(())
            }
        }
    }

    /// Selects `<mem1>` (27.005 §3.2.2) before every read or delete: after
    /// an unnoticed reboot the modem is back on its default storage, and
    /// deleting an index in the wrong storage would destroy a message.
    async fn select_mem(&mut self, mem: &Storage) -> Result<bool, Input> {
        let cmd = SetStorage {
            mem1: mem.clone(),
            mem2: None,
            mem3: None,
        };
        Ok(self.busy(&cmd, "AT+CPMS=").await?.is_some())
    }

    async fn read_stored(&mut self, mem: Storage, index: u32) -> Result<(), Input> {
        if self.pending_keys.contains(&(mem.name().to_string(), index)) {
            return Ok(());
        }
        if !self.select_mem(&mem).await? {
            return Ok(());
        }
        let r = self.at(&ReadMessage(index)).await;
        match self.soft(r, "AT+CMGR")? {
            Some(m) if !m.text_mode => {
                let origin = Origin::Stored {
                    mem: mem.name().to_string(),
                    index,
                };
                self.offer(origin, m.body).await;
            }
            // Unreadable here: the next sweep lists it leniently.
            _ => {}
        }
        Ok(())
    }

    /// Lists every storage and offers what is not already pending.
    async fn sweep(&mut self) -> Result<(), Input> {
        let mut offered = 0usize;
        for mem in self.sweep_mems.clone() {
            if !self.select_mem(&mem).await? {
                continue;
            }
            let r = self
                .at(&Timed(
                    ListMessagesAs(self.settings.cmgl_all.clone()),
                    self.cfg.sweep_timeout,
                ))
                .await;
            let Some(list) = self.soft(r, "AT+CMGL")? else {
                continue;
            };
            for m in list {
                let Some(index) = m.index else { continue };
                if m.text_mode
                    || matches!(m.stat, Some(MessageStat::StoSent | MessageStat::StoUnsent))
                {
                    continue;
                }
                if self.pending_keys.contains(&(mem.name().to_string(), index)) {
                    continue;
                }
                let origin = Origin::Stored {
                    mem: mem.name().to_string(),
                    index,
                };
                if !self.offer(origin, m.body).await {
                    // The daemon is not taking events: the rest stays on
                    // the modem for the next sweep.
                    return Ok(());
                }
                offered += 1;
            }
        }
        debug!(modem = %self.cfg.name, offered, "sweep done");
        self.update_storage().await?;
        Ok(())
    }

    /// Reads `+CPMS?` (27.005 §3.2.2) into the snapshot: the use of the
    /// receive storage (`<mem3>`, else `<mem1>`). `true` when it is nearly
    /// full (at most a tenth, or one message, free), warned once each time
    /// it gets there.
    async fn update_storage(&mut self) -> Result<bool, Input> {
        let r = self.at(&StorageQuery).await;
        let Some([mem1, _, mem3]) = self.soft(r, "AT+CPMS?")? else {
            return Ok(false);
        };
        let Some(u) = mem3.or(mem1) else {
            return Ok(false);
        };
        if (self.snap.storage_used, self.snap.storage_total) != (Some(u.used), Some(u.total)) {
            self.snap.storage_used = Some(u.used);
            self.snap.storage_total = Some(u.total);
            self.publish();
        }
        let nearly = nearly_full(u.used, u.total);
        if nearly && !self.nearly_full {
            warn!(modem = %self.cfg.name, storage = u.storage.name(), used = u.used, total = u.total, "message storage nearly full; sweeping");
        } else if !nearly && self.nearly_full {
            info!(modem = %self.cfg.name, storage = u.storage.name(), used = u.used, total = u.total, "message storage no longer nearly full");
        }
        self.nearly_full = nearly;
        Ok(nearly)
    }

    /// Hands a PDU to the daemon. `false` when the event channel stayed
    /// full (the PDU stays where it is).
    async fn offer(&mut self, origin: Origin, pdu: String) -> bool {
        let decoded = decode_hex(&pdu, DecodeOptions::default());
        let report = matches!(&decoded, Ok(p) if matches!(p.tpdu, Tpdu::StatusReport(_)));
        if matches!(&decoded, Ok(p) if matches!(p.tpdu, Tpdu::Submit(_))) {
            // A stored outgoing message (someone's draft): not ours.
            return true;
        }
        if let Err(e) = &decoded {
            warn!(modem = %self.cfg.name, ?origin, error = %e, "undecodable PDU; handed over raw");
        }
        let received = Received {
            modem: self
                .snap
                .imei
                .clone()
                .unwrap_or_else(|| self.cfg.name.clone()),
            iccid: self.snap.iccid.clone(),
            origin: origin.clone(),
            pdu,
            decoded,
        };
        let (commit, rx) = oneshot::channel::<Committed>();
        let ev = if report {
            ModemEvent::StatusReport {
                report: received,
                commit,
            }
        } else {
            ModemEvent::Inbound {
                part: received,
                commit,
            }
        };
        if self
            .events
            .send_timeout(ev, self.cfg.event_timeout)
            .await
            .is_err()
        {
            if let Origin::Stored { .. } = origin {
                warn!(modem = %self.cfg.name, ?origin, "daemon not taking events; message left on the modem");
            }
            return false;
        }
        debug!(modem = %self.cfg.name, ?origin, report, "offered");
        if let Origin::Stored { mem, index } = &origin {
            self.pending_keys.insert((mem.clone(), *index));
        }
        let deadline = Instant::now() + self.cfg.commit_timeout;
        self.pending.push(Box::pin(async move {
            let ok = matches!(tokio::time::timeout_at(deadline, rx).await, Ok(Ok(_)));
            (origin, ok)
        }));
        true
    }

    async fn on_commit(&mut self, origin: Origin, committed: bool) -> Result<(), Input> {
        match origin {
            Origin::Stored { mem, index } => {
                let key = (mem.clone(), index);
                if !committed {
                    self.pending_keys.remove(&key);
                    info!(modem = %self.cfg.name, %mem, index, "not committed in time; kept on the modem for the next sweep");
                    return Ok(());
                }
                let storage = Storage::parse(&mem);
                let deleted = if self.select_mem(&storage).await? {
                    let r = self
                        .at(&crate::at::commands::DeleteMessage { index, flag: None })
                        .await;
                    self.soft(r, "AT+CMGD")?.is_some()
                } else {
                    false
                };
                self.pending_keys.remove(&key);
                if deleted {
                    debug!(modem = %self.cfg.name, %mem, index, "committed and deleted");
                } else {
                    warn!(modem = %self.cfg.name, %mem, index, "committed but not deleted; the next sweep offers it again");
                }
                Ok(())
            }
            Origin::Routed => {
                if !committed {
                    warn!(modem = %self.cfg.name, "routed message not committed; the modem keeps it unacknowledged");
                    self.resync = self.phase2plus;
                    return Ok(());
                }
                if self.phase2plus {
                    let r = self.at(&AckMessage).await;
                    self.soft(r, "AT+CNMA")?;
                }
                Ok(())
            }
        }
    }

    /// Writes the parts of one message. A part's `AT+CMGS` is never
    /// abandoned halfway, not even for a shutdown: once its PDU is written
    /// only the modem's answer (or the link's timeout) says whether it
    /// left, and a part whose PDU was written without an answer is
    /// reported [`SendError::Unconfirmed`], never as not sent.
    async fn do_send(&mut self, mut req: SendRequest) -> Result<(), Input> {
        let label = req.label.take().unwrap_or_default();
        if self.state != State::Ready {
            let why = format!("modem {} is {}", self.cfg.name, self.state);
            let _ = req.reply.send(Err(temporary(why)));
            return Ok(());
        }
        // The caller may have given up while the request waited behind
        // other work (a long sweep): it has recorded the parts as not
        // sent, so they must not leave now.
        let withdrawn = req.reply.is_closed()
            || req
                .started
                .take()
                .is_some_and(|started| started.send(()).is_err());
        if withdrawn {
            info!(modem = %self.cfg.name, message_id = %label, "send withdrawn by the engine before AT+CMGS; dropped unsent");
            return Ok(());
        }
        let mut sent: Vec<SentPart> = Vec::with_capacity(req.parts.len());
        let total = req.parts.len();
        for (i, part) in req.parts.iter().enumerate() {
            let what = format!("part {}/{total}", i + 1);
            if i > 0 && req.reply.is_closed() {
                info!(modem = %self.cfg.name, message_id = %label, part = i + 1, "the engine gave up on this send; the rest is not written");
                return Ok(());
            }
            if i > 0 && *self.shutdown.borrow() {
                let reason = format!("{what}: modem shutting down (not written)");
                let _ = req.reply.send(Err(SendError::Temporary { reason, sent }));
                return Err(Input::Shutdown);
            }
            let cmd = match SendMessage::new(&part.hex(), part.tpdu_len) {
                Ok(c) => c.with_timeout(self.cfg.send_timeout),
                Err(e) => {
                    let _ = req.reply.send(Err(SendError::Permanent {
                        reason: format!("{what}: {e}"),
                        sent,
                    }));
                    return Ok(());
                }
            };
            let Some(link) = self.link.clone() else {
                let reason = format!("{what}: modem port closed (not written)");
                let _ = req.reply.send(Err(SendError::Temporary { reason, sent }));
                return Err(self.closed_input());
            };
            let (error, written) = match link.send_payload(&cmd).await {
                Ok(mr) => {
                    sent.push(SentPart {
                        part: i,
                        mr: Some(mr),
                    });
                    continue;
                }
                Err(PayloadError { error, written }) => (error, written),
            };
            let (outcome, next) = match error {
                // OK without a readable +CMGS: it left; the MR is unknown.
                LinkError::Parse { .. } => {
                    sent.push(SentPart { part: i, mr: None });
                    continue;
                }
                // A final result code: the modem (or the network through
                // it) refused the part, whether before the prompt or
                // after the PDU. It did not leave.
                LinkError::At { error, .. } => {
                    let reason = match error {
                        AtError::Error | AtError::NotSupported => format!(
                            "{what}: the modem refused AT+CMGS with a plain {error} \
                             (no +CMS ERROR reason)"
                        ),
                        _ => format!("{what}: {error}"),
                    };
                    info!(modem = %self.cfg.name, message_id = %label, %reason, "send refused");
                    let e = match error.send_retry() {
                        Retry::Temporary => SendError::Temporary { reason, sent },
                        Retry::Permanent => SendError::Permanent { reason, sent },
                    };
                    (e, Ok(()))
                }
                LinkError::Timeout { .. } | LinkError::Closed => {
                    let closed = matches!(error, LinkError::Closed);
                    if !closed {
                        self.failures = self.failures.saturating_add(1);
                    }
                    let next = if closed {
                        Err(self.closed_input())
                    } else {
                        Ok(())
                    };
                    let e = if written {
                        let reason = format!("{what}: PDU written, then {error}: it may have left");
                        warn!(modem = %self.cfg.name, message_id = %label, part = i + 1, %reason, "send outcome unknown");
                        SendError::Unconfirmed {
                            reason,
                            sent,
                            part: i,
                        }
                    } else {
                        let reason = format!("{what}: {error} before the PDU was written");
                        SendError::Temporary { reason, sent }
                    };
                    (e, next)
                }
            };
            let _ = req.reply.send(Err(outcome));
            return next;
        }
        debug!(modem = %self.cfg.name, message_id = %label, parts = total, mrs = ?sent.iter().map(|p| p.mr).collect::<Vec<_>>(), "sent");
        let _ = req.reply.send(Ok(sent));
        Ok(())
    }
}

/// Resolves once shutdown is requested (or every handle is gone).
async fn stopping(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn recv_urc(
    rx: Option<&mut broadcast::Receiver<Urc>>,
) -> Result<Urc, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn closed(link: Option<&Link>) {
    match link {
        Some(l) => l.closed().await,
        None => std::future::pending().await,
    }
}

/// `min` doubled `attempt` times, capped at `max`; never below 10 ms so
/// a zero setting cannot turn the ladder into a busy loop.
fn backoff(min: Duration, max: Duration, attempt: u32) -> Duration {
    let min = min.max(Duration::from_millis(10));
    let factor = 1u32 << attempt.min(16);
    min.saturating_mul(factor).min(max.max(min))
}

/// At most a tenth (at least one message) of the storage free. A storage
/// of no capacity (a full one, as some modems report it) is full.
fn nearly_full(used: u32, total: u32) -> bool {
    used >= total.saturating_sub((total / 10).max(1))
}

/// Vendor "SMS storage full" URCs: Huawei `^SMMEMFULL: <mem>`, and the
/// `+CIND` indicators (27.007 §8.9) `smsfull` / `message` reported by
/// name (`+CIEV: "SMSFULL",1`). A numbered `+CIEV` cannot be read without
/// the modem's `+CIND=?` list and is left alone.
fn memory_full_indication(line: &str) -> bool {
    let upper = line.trim().to_ascii_uppercase();
    if upper.starts_with("^SMMEMFULL") {
        return true;
    }
    let Some(rest) = upper.strip_prefix("+CIEV:") else {
        return false;
    };
    let mut f = rest.split(',').map(|x| x.trim().trim_matches('"'));
    let name = f.next().unwrap_or("");
    let on = f.next().is_some_and(|v| v != "0");
    on && (name == "SMSFULL" || name == "MESSAGE")
}

fn reg_name(s: RegStatus) -> &'static str {
    match s {
        RegStatus::NotRegistered => "not-registered",
        RegStatus::Home => "home",
        RegStatus::Searching => "searching",
        RegStatus::Denied => "denied",
        RegStatus::Unknown => "unknown",
        RegStatus::Roaming => "roaming",
        RegStatus::Other(6) => "home-sms-only",
        RegStatus::Other(7) => "roaming-sms-only",
        RegStatus::Other(_) => "other",
    }
}

/// Used only if the built-in generic profile is missing from the list the
/// caller gave: 27.005/27.007 defaults.
fn fallback_profile() -> Profile {
    Profile {
        id: "generic".into(),
        name: "Generic 27.005/27.007 modem".into(),
        usb: vec![],
        matches: Default::default(),
        at: Default::default(),
        quirks: vec![],
        sim: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_never_spins() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        #[rustfmt::skip]
        let cases = [
            (s(1), s(60), 0, s(1)),
            (s(1), s(60), 1, s(2)),
            (s(1), s(60), 5, s(32)),
            (s(1), s(60), 6, s(60)),
            (s(1), s(60), u32::MAX, s(60)),
            (Duration::ZERO, Duration::ZERO, 0, ms(10)),
            (Duration::ZERO, Duration::ZERO, 40, ms(10)),
            (s(5), s(1), 3, s(5)),
        ];
        for (min, max, attempt, want) in cases {
            assert_eq!(
                backoff(min, max, attempt),
                want,
                "{min:?} {max:?} #{attempt}"
            );
        }
    }

    #[test]
    fn storage_nearly_full() {
        #[rustfmt::skip]
        let cases = [
            (0, 0, true), (0, 30, false), (26, 30, false), (27, 30, true),
            (30, 30, true), (31, 30, true), (0, 1, true), (8, 10, false),
            (9, 10, true), (229, 255, false), (230, 255, true),
        ];
        for (used, total, want) in cases {
            assert_eq!(nearly_full(used, total), want, "{used}/{total}");
        }
    }

    #[test]
    fn memory_full_urcs() {
        for yes in [
            "^SMMEMFULL: \"SM\"",
            "^SMMEMFULL",
            "+CIEV: \"SMSFULL\",1",
            "+ciev: \"MESSAGE\",1",
        ] {
            assert!(memory_full_indication(yes), "{yes}");
        }
        for no in [
            "+CIEV: \"SMSFULL\",0",
            "+CIEV: 7,1",
            "+CIEV: \"signal\",3",
            "^RSSI:20",
            "",
        ] {
            assert!(!memory_full_indication(no), "{no}");
        }
    }

    #[test]
    fn registration_names() {
        assert_eq!(reg_name(RegStatus::Home), "home");
        assert_eq!(reg_name(RegStatus::Other(7)), "roaming-sms-only");
    }
}
