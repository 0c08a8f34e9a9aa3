//! One simulated modem as a sans-I/O state machine.
//!
//! The runtime (pty plumbing, network, control socket) feeds it the bytes
//! the DTE wrote with [`SimModem::input`], writes out what
//! [`SimModem::output`] returns, wakes it at [`SimModem::next_wakeup`], and
//! routes the [`NetEvent`]s it emits. Nothing here does I/O or reads a clock.
//!
//! What it imitates (see `docs/simulator-modem.md` for every command and
//! answer):
//!
//! * the V.250 command line: `AT` prefix, echo as the characters arrive
//!   (`ATE1` after power-on), basic and extended commands chained on one line,
//!   `ATV0`/`ATQ1`, ESC and backspace, a capped line buffer;
//! * TS 27.007 identification, SIM PIN/PUK, registration, signal, operator,
//!   USSD and `+CFUN` resets, with vendor forms taken from the profile;
//! * TS 27.005 SMS: storages `SM`/`ME`/`SR`/`MT`, `+CNMI` routing with
//!   `+CMTI`/`+CMT`/`+CDS`/`+CDSI`, `+CNMA` when `+CSMS=1`, the `> ` prompt
//!   of `+CMGS`/`+CMGW` fed in any number of writes;
//! * faults switched on by the control socket: hang, `+CMS ERROR`s, full
//!   storage, reboot.
//!
//! Time only moves when the runtime passes `now`; every delayed answer or
//! timer is an entry whose due time [`SimModem::next_wakeup`] reports.

mod cmdline;
mod config;
mod exec;
mod peek;
mod storage;
#[cfg(test)]
mod tests;
mod text;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::hardware::Profile;

use config::{Cnmi, SimConfig};
use storage::{Mem, Stat, Storage, Stored};

/// The identity of one simulated modem and its SIM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The SIM's phone number, E.164 with `+`.
    pub number: String,
    /// 15-digit IMEI of the modem.
    pub imei: String,
    /// 15-digit IMSI of the SIM.
    pub imsi: String,
    /// 19- or 20-digit ICCID of the SIM.
    pub iccid: String,
    /// The SIM PIN, when the SIM asks for one at power-on.
    pub pin: Option<String>,
    /// The SMSC address the SIM holds, E.164 with `+`.
    pub smsc: String,
}

/// Something the modem did that the simulated network must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// The DTE sent one SMS-SUBMIT with `+CMGS` (or `+CMSS`) and the modem
    /// answered `+CMGS: <mr>`. `tpdu` is the TPDU without the SMSC field.
    Submitted {
        /// The bare TPDU, as sent (TP-MR already set to `mr`).
        tpdu: Vec<u8>,
        /// The message reference the modem reported.
        mr: u8,
    },
}

/// Why the network could not hand a message to the modem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReceiveError {
    /// Storage full, or the modem is off/hung; the network keeps the message
    /// and retries, as a real SMSC does.
    #[error("the modem cannot take the message now (storage full or not ready)")]
    NotReady,
}

/// Modem-level faults the control socket can switch on.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    /// Stop answering anything (input is swallowed).
    pub hang: bool,
    /// Answer `+CMGS` with `+CMS ERROR: code` with this probability (0..=1).
    pub cms_error: Option<(u16, f64)>,
    /// Answer `+CMGS` with a plain `ERROR`, whatever `+CMEE` says (a
    /// modem that ignores `+CMEE`).
    pub send_error: bool,
    /// The next `+CMGS` is sent to the network, then the modem hangs
    /// before answering it (its answer is lost: the DTE cannot know the
    /// message left). Cleared once it fired; `hang` is then on.
    pub hang_after_send: bool,
    /// Report every storage as full (`+CMS ERROR: 322` on write, and
    /// inbound messages are refused by the network until space is freed).
    pub full: bool,
    /// The network denies registration (`+CREG` `<stat>` 3, TS 27.007
    /// §7.2): not registered, inbound held by the network.
    pub deny: bool,
}

/// How full one message memory is, as `+CPMS?` would report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemUsage {
    /// Occupied slots.
    pub used: usize,
    /// Capacity (frozen at `used` under the `full` fault).
    pub total: usize,
}

/// One message in the modem's memories, as [`SimModem::stored`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// `SM`, `ME` or `SR`.
    pub mem: &'static str,
    /// The index `+CMGR` takes (counting from the profile's `index_base`).
    pub index: usize,
    /// `<stat>`: 0 received unread, 1 received read, 2 stored unsent,
    /// 3 stored sent (TS 27.005 §3.1).
    pub stat: u8,
    /// The TPDU (no SMSC field).
    pub tpdu: Vec<u8>,
}

/// Usage of the three physical memories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageUsage {
    /// SIM storage `SM`.
    pub sm: MemUsage,
    /// Modem storage `ME`.
    pub me: MemUsage,
    /// Status-report storage `SR`.
    pub sr: MemUsage,
}

/// The longest command line kept (V.250 asks for at least 40 characters;
/// real modems keep a few hundred). Longer lines answer `ERROR`.
const MAX_LINE: usize = 1024;
/// The longest text kept after a `> ` prompt: an SMSC field and a 176-octet
/// TPDU in hex need 378 characters; text mode with UCS-2 hex needs 280.
const MAX_PROMPT: usize = 1024;
/// The longest TPDU a modem accepts (TS 23.040: 176 octets with the header).
const MAX_TPDU: usize = 176;
/// How long the modem waits for `+CNMA` after `+CMT`/`+CDS` when
/// `+CSMS=1` (the network's RP-ACK timer, TS 24.011 TR2M, 12-20 s).
const CNMA_TIMEOUT: Duration = Duration::from_secs(15);
/// Delay of the network's answer to a USSD request.
const USSD_DELAY: Duration = Duration::from_secs(1);
/// How many indications a `+CNMI` `<mode>` 0 buffer holds (oldest dropped).
const MAX_BUFFERED_URCS: usize = 32;
/// The PUK of every simulated SIM (documented in `docs/simulator-modem.md`).
pub const PUK: &str = "12345678";
/// PIN attempts a SIM allows before it asks for the PUK (TS 31.102).
const PIN_TRIES: u8 = 3;
/// PUK attempts before the SIM is blocked for good.
const PUK_TRIES: u8 = 10;

/// Whether the modem is running or rebooting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Power {
    On,
    /// Silent from `from` until `until`, then boot URCs.
    Booting {
        from: Instant,
        until: Instant,
    },
}

/// What the SIM wants before it lets the modem use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SimState {
    Ready,
    NeedPin,
    NeedPuk,
    /// PUK attempts exhausted.
    Blocked,
}

/// Settings that `ATZ`, `AT&F` and a reboot put back (V.250 §6.1, TS 27.005
/// §3.2 and §3.4, TS 27.007 §7).
#[derive(Debug, Clone)]
struct Settings {
    echo: bool,
    verbose: bool,
    quiet: bool,
    cmee: u8,
    cmgf: u8,
    csdh: u8,
    cscs: String,
    csms: u8,
    cnmi: Cnmi,
    /// `<fo>,<vp>,<pid>,<dcs>` for text-mode SMS-SUBMITs (TS 27.005 §3.3.2).
    csmp: [u8; 4],
    cops_format: u8,
    cops_mode: u8,
    creg_n: u8,
    cgreg_n: u8,
    cereg_n: u8,
    cmms: u8,
    cusd_n: u8,
    ifc: (u8, u8),
    /// S0..S12 (V.250 §6.2).
    sregs: [u8; 13],
}

impl Settings {
    fn defaults(cfg: &SimConfig) -> Self {
        Self {
            echo: true,
            verbose: true,
            quiet: false,
            cmee: 0,
            cmgf: 0,
            csdh: 0,
            cscs: "IRA".into(),
            csms: 0,
            cnmi: cfg.cnmi_default,
            csmp: [17, 167, 0, 0],
            cops_format: 0,
            cops_mode: 0,
            creg_n: 0,
            cgreg_n: 0,
            cereg_n: 0,
            cmms: 0,
            cusd_n: 0,
            ifc: (0, 0),
            sregs: [0, 0, 43, 13, 10, 8, 2, 50, 2, 6, 14, 95, 50],
        }
    }
}

/// What the text after a `> ` prompt is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PromptKind {
    /// `+CMGS=<length>` in PDU mode.
    SendPdu { len: usize },
    /// `+CMGS="<da>"[,<toda>]` in text mode.
    SendText { da: String },
    /// `+CMGW=<length>[,<stat>]` in PDU mode.
    WritePdu { len: usize, stat: Stat },
    /// `+CMGW="<da>"` in text mode.
    WriteText { da: String, stat: Stat },
}

/// Input collected after a `> ` prompt.
#[derive(Debug, Clone)]
struct Prompt {
    kind: PromptKind,
    buf: Vec<u8>,
    overflow: bool,
}

/// A message routed to the DTE with `+CMT`/`+CDS` that waits for `+CNMA`.
#[derive(Debug, Clone)]
struct AwaitingAck {
    deadline: Instant,
    msg: Stored,
}

/// The final result of a command line (V.250 §5.7, TS 27.007 §9.2, TS 27.005
/// §3.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    /// `ERROR`
    Error,
    /// The profile's answer to an unknown command.
    Unknown,
    /// `+CME ERROR: <n>` (or `ERROR` when `+CMEE=0`).
    Cme(u16),
    /// `+CMS ERROR: <n>` (or `ERROR` when `+CMEE=0`).
    Cms(u16),
    /// `NO CARRIER`
    NoCarrier,
}

/// One simulated modem.
#[derive(Debug)]
pub struct SimModem {
    id: Identity,
    /// The profile id, for logs.
    profile: String,
    cfg: SimConfig,
    latency: Duration,
    /// Added to the final result of `+CMGS` only: the time the network
    /// takes to accept a message (a real one takes 1 to 3 s).
    send_time: Duration,
    rng: u64,
    faults: Faults,
    power: Power,
    /// `+CFUN` level: 1 full, 0 minimum, 4 radio off.
    cfun: u8,
    set: Settings,
    sim: SimState,
    pin: Option<String>,
    pin_left: u8,
    puk_left: u8,
    store: Storage,
    /// `+CPMS` `<mem1>`, `<mem2>`, `<mem3>`.
    mem: [Mem; 3],
    /// The SMSC address (`+CSCA`), kept by the SIM across reboots.
    smsc: String,
    /// The last TP-MR handed out.
    mr: u8,
    line: Vec<u8>,
    line_overflow: bool,
    last_line: Option<String>,
    prompt: Option<Prompt>,
    /// Output not yet due, in due order.
    out: VecDeque<(Instant, Vec<u8>)>,
    /// Due time of the last output queued, so answers never overtake each
    /// other.
    tail: Option<Instant>,
    /// URCs held while the DTE is typing after a prompt (TS 27.005 §3.4.1:
    /// indications are not interleaved with a command in progress).
    held: Vec<Vec<u8>>,
    /// Indications buffered while `+CNMI` `<mode>` is 0.
    buffered: VecDeque<Vec<u8>>,
    awaiting_ack: Option<AwaitingAck>,
    ussd: Option<(Instant, String)>,
    /// Until then SMS commands answer `+CMS ERROR: 314` (SIM busy).
    sms_busy_until: Option<Instant>,
    next_periodic: Option<Instant>,
    /// Registration as last announced, to emit `+CREG` URCs on change.
    announced_reg: bool,
    events: Vec<NetEvent>,
}

impl SimModem {
    /// A powered-on modem with `identity`, behaving as `profile` says.
    /// `latency` is added before each final result (a slow modem); `+CMGS`
    /// takes it too. `seed` makes random faults reproducible.
    pub fn new(
        identity: Identity,
        profile: &Profile,
        latency: Duration,
        seed: u64,
        now: Instant,
    ) -> Self {
        let cfg = SimConfig::from_profile(profile);
        let set = Settings::defaults(&cfg);
        let store = Storage::new(cfg.sm_capacity, cfg.me_capacity, cfg.sr_capacity);
        let mem = [cfg.default_storage; 3];
        let pin = identity.pin.clone().filter(|p| !p.is_empty());
        let mut m = Self {
            smsc: identity.smsc.clone(),
            id: identity,
            profile: profile.id.clone(),
            latency,
            send_time: Duration::ZERO,
            rng: seed,
            faults: Faults::default(),
            power: Power::On,
            cfun: 1,
            set,
            sim: SimState::Ready,
            pin,
            pin_left: PIN_TRIES,
            puk_left: PUK_TRIES,
            store,
            mem,
            mr: 0,
            line: Vec::new(),
            line_overflow: false,
            last_line: None,
            prompt: None,
            out: VecDeque::new(),
            tail: None,
            held: Vec::new(),
            buffered: VecDeque::new(),
            awaiting_ack: None,
            ussd: None,
            sms_busy_until: None,
            next_periodic: cfg.periodic.map(|p| now + p),
            announced_reg: false,
            events: Vec::new(),
            cfg,
        };
        m.sim = m.sim_at_power_on();
        m.announced_reg = m.registered();
        tracing::debug!(modem = %m.id.number, profile = %m.profile, "simulated modem powered on");
        m
    }

    /// Bytes the DTE wrote.
    pub fn input(&mut self, bytes: &[u8], now: Instant) {
        self.tick(now);
        if self.faults.hang || self.booting() {
            tracing::trace!(modem = %self.id.number, n = bytes.len(), "input swallowed (hung or rebooting)");
            return;
        }
        for &b in bytes {
            self.byte(b, now);
        }
    }

    /// Bytes due to the DTE by `now` (responses, prompts, URCs).
    pub fn output(&mut self, now: Instant) -> Vec<u8> {
        self.tick(now);
        let mut bytes = Vec::new();
        if self.faults.hang {
            return bytes;
        }
        while let Some((due, _)) = self.out.front() {
            if *due > now {
                break;
            }
            if let Some((_, chunk)) = self.out.pop_front() {
                bytes.extend_from_slice(&chunk);
            }
        }
        bytes
    }

    /// When the modem next has something to do (a delayed answer, a reboot
    /// finishing, a periodic URC); `None` when idle.
    pub fn next_wakeup(&self) -> Option<Instant> {
        if self.faults.hang {
            return None;
        }
        let boot = match self.power {
            Power::Booting { until, .. } => Some(until),
            Power::On => None,
        };
        [
            self.out.front().map(|(t, _)| *t),
            boot,
            self.awaiting_ack.as_ref().map(|a| a.deadline),
            self.ussd.as_ref().map(|(t, _)| *t),
            self.sms_busy_until,
            self.next_periodic,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Events for the network, drained.
    pub fn take_events(&mut self) -> Vec<NetEvent> {
        std::mem::take(&mut self.events)
    }

    /// The network delivers an SMS-DELIVER TPDU (no SMSC field). The modem
    /// stores it and indicates it (`+CMTI`), or routes it directly (`+CMT`),
    /// as `+CNMI` says.
    pub fn receive(&mut self, tpdu: &[u8], now: Instant) -> Result<(), ReceiveError> {
        self.tick(now);
        self.check_can_receive(tpdu)?;
        let class = peek::deliver_class(tpdu);
        let msg = Stored {
            stat: Stat::RecUnread,
            smsc: peek::smsc_field(&self.id.smsc),
            tpdu: tpdu.to_vec(),
            is_report: false,
        };
        let mt = self.set.cnmi.mt;
        // TS 27.005 §3.4.1 <mt>: class 2 always goes to the SIM; mt=2 routes
        // the rest directly, mt=3 only class 3; class 0 (flash) is shown
        // directly whenever indications are on.
        let direct = match class {
            Some(2) => false,
            Some(0) => mt >= 1,
            Some(3) => mt >= 2,
            _ => mt == 2,
        };
        if direct && self.set.cnmi.mode != 0 {
            let lines = self.render_cmt(&msg);
            tracing::info!(modem = %self.id.number, "SMS-DELIVER routed to the DTE (+CMT)");
            self.route_direct(msg, lines, now);
            return Ok(());
        }
        let mem = if class == Some(2) {
            Mem::Sm
        } else {
            self.mem[2]
        };
        let Some(i) = self.store.store(mem, msg) else {
            tracing::info!(modem = %self.id.number, mem = mem.name(), "storage full, SMS-DELIVER refused");
            return Err(ReceiveError::NotReady);
        };
        tracing::info!(modem = %self.id.number, mem = mem.name(), index = i + self.cfg.index_base, "SMS-DELIVER stored");
        if mt != 0 {
            let line = format!("+CMTI: \"{}\",{}", mem.name(), i + self.cfg.index_base);
            self.sms_indication(vec![line], now);
        }
        Ok(())
    }

    /// The network delivers an SMS-STATUS-REPORT TPDU (no SMSC field):
    /// `+CDS`, `+CDSI` or nothing, as `+CNMI` `<ds>` says.
    pub fn receive_status_report(&mut self, tpdu: &[u8], now: Instant) -> Result<(), ReceiveError> {
        self.tick(now);
        self.check_can_receive(tpdu)?;
        let msg = Stored {
            stat: Stat::RecUnread,
            smsc: peek::smsc_field(&self.id.smsc),
            tpdu: tpdu.to_vec(),
            is_report: true,
        };
        let ds = self.set.cnmi.ds;
        if ds == 1 && self.set.cnmi.mode != 0 {
            let lines = self.render_cds(&msg);
            tracing::info!(modem = %self.id.number, "status report routed to the DTE (+CDS)");
            self.route_direct(msg, lines, now);
            return Ok(());
        }
        let mem = self.cfg.status_report_storage;
        match self.store.store(mem, msg) {
            Some(i) => {
                tracing::info!(modem = %self.id.number, mem = mem.name(), index = i + self.cfg.index_base, "status report stored");
                if ds != 0 {
                    let line = format!("+CDSI: \"{}\",{}", mem.name(), i + self.cfg.index_base);
                    self.sms_indication(vec![line], now);
                }
                Ok(())
            }
            // With <ds>=0 nobody asked for the report: a full memory drops
            // it, as real modems do; with <ds>=2 the network retries.
            None if ds == 0 => Ok(()),
            None => Err(ReceiveError::NotReady),
        }
    }

    /// The faults in force.
    pub fn set_faults(&mut self, faults: Faults) {
        if faults.hang && !self.faults.hang {
            // A hung modem loses what it was about to say and what it was
            // reading.
            self.out.clear();
            self.prompt = None;
            self.line.clear();
            self.held.clear();
        }
        tracing::info!(modem = %self.id.number, ?faults, "faults set");
        self.store.full = faults.full;
        self.faults = faults;
    }

    /// Announces a registration change a fault caused (`+CREG` URCs).
    pub fn network_changed(&mut self, now: Instant) {
        self.registration_changed(now);
    }

    /// The faults in force now.
    pub fn faults(&self) -> Faults {
        self.faults
    }

    /// Makes every `+CMGS` take `send_time` more before its final result
    /// (on top of the latency): a modem busy sending for that long, while
    /// other commands stay as fast as the latency says.
    pub fn set_send_time(&mut self, send_time: Duration) {
        self.send_time = send_time;
    }

    /// Reboot now (as `AT+CFUN=1,1` does): volatile settings reset, boot
    /// URCs after a delay, the SIM asks for its PIN again.
    pub fn reboot(&mut self, now: Instant) {
        self.start_reboot(now);
    }

    /// The identity.
    pub fn identity(&self) -> &Identity {
        &self.id
    }

    /// How full the memories are.
    pub fn storage_usage(&self) -> StorageUsage {
        let u = |m| MemUsage {
            used: self.store.used(m),
            total: self.store.total(m),
        };
        StorageUsage {
            sm: u(Mem::Sm),
            me: u(Mem::Me),
            sr: u(Mem::Sr),
        }
    }

    /// Every stored message, SM then ME then SR, without marking anything
    /// read (for the control socket; the DTE's reads go through `+CMGR`).
    pub fn stored(&self) -> Vec<StoredMessage> {
        let mut out = Vec::new();
        for mem in [Mem::Sm, Mem::Me, Mem::Sr] {
            for i in self.store.list(mem, storage::Filter::All) {
                if let Some(m) = self.store.get(mem, i) {
                    out.push(StoredMessage {
                        mem: mem.name(),
                        index: i + self.cfg.index_base,
                        stat: m.stat.number(),
                        tpdu: m.tpdu.clone(),
                    });
                }
            }
        }
        out
    }

    /// Whether the modem is rebooting (silent) at `now`.
    pub fn is_rebooting(&self, now: Instant) -> bool {
        self.silent(now)
    }

    // ----- internals -------------------------------------------------------

    fn sim_at_power_on(&self) -> SimState {
        match (&self.pin, self.pin_left, self.puk_left) {
            (_, _, 0) => SimState::Blocked,
            (Some(_), 0, _) => SimState::NeedPuk,
            (Some(_), _, _) => SimState::NeedPin,
            (None, _, _) => SimState::Ready,
        }
    }

    /// A reboot is under way (or accepted and about to start): no new input
    /// is taken and nothing new is said until the boot is over.
    fn booting(&self) -> bool {
        matches!(self.power, Power::Booting { .. })
    }

    /// Rebooting and past the moment the reboot started.
    fn silent(&self, now: Instant) -> bool {
        matches!(self.power, Power::Booting { from, .. } if now >= from)
    }

    fn registered(&self) -> bool {
        self.power == Power::On
            && self.cfun == 1
            && self.sim == SimState::Ready
            && self.set.cops_mode != 2
            && !self.faults.deny
    }

    fn check_can_receive(&self, tpdu: &[u8]) -> Result<(), ReceiveError> {
        if self.faults.hang || self.booting() || !self.registered() || self.sms_busy_until.is_some()
        {
            return Err(ReceiveError::NotReady);
        }
        if tpdu.is_empty() || tpdu.len() > MAX_TPDU {
            tracing::warn!(modem = %self.id.number, len = tpdu.len(), "network offered a TPDU of impossible length");
            return Err(ReceiveError::NotReady);
        }
        if self.awaiting_ack.is_some() {
            // One unacknowledged message at a time (TS 24.011 RP-ACK).
            return Err(ReceiveError::NotReady);
        }
        Ok(())
    }

    /// Sends `+CMT`/`+CDS`; with `+CSMS=1` the DTE must `+CNMA` it.
    fn route_direct(&mut self, msg: Stored, lines: Vec<String>, now: Instant) {
        if self.set.csms == 1 {
            self.awaiting_ack = Some(AwaitingAck {
                deadline: now + CNMA_TIMEOUT,
                msg,
            });
        }
        self.urc_block(lines, now);
    }

    /// An SMS indication: sent, or buffered while `+CNMI` `<mode>` is 0.
    fn sms_indication(&mut self, lines: Vec<String>, now: Instant) {
        if self.set.cnmi.mode == 0 {
            if self.buffered.len() >= MAX_BUFFERED_URCS {
                self.buffered.pop_front();
            }
            let bytes = self.frame_urc(&lines);
            self.buffered.push_back(bytes);
        } else {
            self.urc_block(lines, now);
        }
    }

    /// `+CMT` (TS 27.005 §3.4.1): PDU mode `+CMT: ,<length>` and the PDU,
    /// text mode per `+CSDH`.
    fn render_cmt(&self, msg: &Stored) -> Vec<String> {
        if self.set.cmgf == 1 {
            if let Some(lines) = self.text_cmt(msg) {
                return lines;
            }
        }
        vec![format!("+CMT: ,{}", msg.tpdu.len()), msg.pdu_hex()]
    }

    /// `+CDS` (TS 27.005 §3.4.1): `+CDS: <length>` and the PDU, or text.
    fn render_cds(&self, msg: &Stored) -> Vec<String> {
        if self.set.cmgf == 1 {
            if let Some(lines) = self.text_cds(msg) {
                return lines;
            }
        }
        vec![format!("+CDS: {}", msg.tpdu.len()), msg.pdu_hex()]
    }

    /// Advances timers to `now`.
    fn tick(&mut self, now: Instant) {
        if let Power::Booting { until, .. } = self.power {
            if now >= until {
                self.finish_boot(now);
            }
        }
        if self.faults.hang || self.booting() {
            return;
        }
        if self.sms_busy_until.is_some_and(|t| now >= t) {
            self.sms_ready(now);
        }
        if let Some(a) = &self.awaiting_ack {
            if now >= a.deadline {
                self.ack_timeout(now);
            }
        }
        if let Some((due, _)) = &self.ussd {
            if now >= *due {
                if let Some((_, text)) = self.ussd.take() {
                    let line = format!("+CUSD: 0,\"{}\",15", self.encode_text(&text));
                    self.urc(vec![line], now);
                }
            }
        }
        if let (Some(next), Some(period)) = (self.next_periodic, self.cfg.periodic) {
            if now >= next {
                let lines: Vec<String> = self
                    .cfg
                    .periodic_urcs
                    .iter()
                    .map(|l| self.render(l))
                    .collect();
                if !self.link_reserved() {
                    self.urc(lines, now);
                }
                // Skip missed periods rather than bursting.
                let mut n = next + period;
                while n <= now {
                    n += period;
                }
                self.next_periodic = Some(n);
            }
        }
    }

    /// No `+CNMA` came: TS 27.005 §3.4.1 says the modem stops routing to the
    /// TE (`<mt>` and `<ds>` to 0); the message is kept in storage.
    fn ack_timeout(&mut self, now: Instant) {
        let Some(a) = self.awaiting_ack.take() else {
            return;
        };
        tracing::warn!(modem = %self.id.number, "no +CNMA in time: storing the message, +CNMI mt/ds set to 0");
        self.set.cnmi.mt = 0;
        self.set.cnmi.ds = 0;
        let mem = if a.msg.is_report {
            self.cfg.status_report_storage
        } else {
            self.mem[2]
        };
        if self.store.store(mem, a.msg).is_none() {
            tracing::warn!(modem = %self.id.number, "storage full: unacknowledged message dropped (the network would retry)");
        }
        let _ = now;
    }

    fn start_reboot(&mut self, at: Instant) {
        let until = at + self.cfg.boot;
        tracing::info!(modem = %self.id.number, boot = ?self.cfg.boot, "rebooting");
        // Whatever had not gone out before the reset is lost.
        self.out.retain(|(due, _)| *due <= at);
        self.prompt = None;
        self.line.clear();
        self.line_overflow = false;
        self.held.clear();
        self.buffered.clear();
        self.ussd = None;
        self.sms_busy_until = None;
        if let Some(a) = self.awaiting_ack.take() {
            // An unacknowledged +CMT was never RP-ACKed: the network keeps
            // it. We cannot hand it back, so keep it in storage instead.
            let mem = if a.msg.is_report {
                self.cfg.status_report_storage
            } else {
                self.mem[2]
            };
            let _ = self.store.store(mem, a.msg);
        }
        self.power = Power::Booting { from: at, until };
    }

    fn finish_boot(&mut self, now: Instant) {
        self.power = Power::On;
        self.cfun = 1;
        self.set = Settings::defaults(&self.cfg);
        self.mem = [self.cfg.default_storage; 3];
        self.sim = self.sim_at_power_on();
        self.next_periodic = self.cfg.periodic.map(|p| now + p);
        tracing::info!(modem = %self.id.number, sim = ?self.sim, "boot finished");
        let lines: Vec<String> = self.cfg.boot_urcs.iter().map(|l| self.render(l)).collect();
        self.urc(lines, now);
        if self.sim == SimState::Ready {
            self.sim_became_ready(now);
        }
        self.announced_reg = self.registered();
    }

    fn sim_became_ready(&mut self, now: Instant) {
        if self.cfg.sms_ready.is_zero() {
            self.sms_ready(now);
        } else {
            self.sms_busy_until = Some(now + self.cfg.sms_ready);
        }
        self.registration_changed(now);
    }

    /// The SIM's SMS files are read: the profile's ready URCs.
    fn sms_ready(&mut self, now: Instant) {
        self.sms_busy_until = None;
        let lines: Vec<String> = self.cfg.ready_urcs.iter().map(|l| self.render(l)).collect();
        self.urc(lines, now);
    }

    /// Emits `+CREG`/`+CGREG`/`+CEREG` URCs if registration changed
    /// (TS 27.007 §7.2, §10.1.20, §10.1.22).
    fn registration_changed(&mut self, now: Instant) {
        let reg = self.registered();
        if reg == self.announced_reg {
            return;
        }
        self.announced_reg = reg;
        let mut lines = Vec::new();
        for (name, n) in [
            ("+CREG", self.set.creg_n),
            ("+CGREG", self.set.cgreg_n),
            ("+CEREG", self.set.cereg_n),
        ] {
            if n > 0 {
                lines.push(format!("{name}: {}", self.reg_fields(n, false)));
            }
        }
        if !lines.is_empty() {
            self.urc(lines, now);
        }
    }

    /// `<stat>[,<lac>,<ci>[,<AcT>]]`, preceded by `<n>,` in a read answer.
    fn reg_fields(&self, n: u8, read: bool) -> String {
        let stat = if self.registered() {
            1
        } else if self.faults.deny {
            3
        } else {
            0
        };
        let mut s = if read {
            format!("{n},{stat}")
        } else {
            format!("{stat}")
        };
        if n >= 2 && stat == 1 {
            s.push_str(",\"1A2B\",\"00C3D4E5\"");
            if let Some(act) = self.cfg.access_technology {
                s.push_str(&format!(",{act}"));
            }
        }
        s
    }

    // ----- output ----------------------------------------------------------

    fn queue(&mut self, due: Instant, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        let due = self.tail.map_or(due, |t| t.max(due));
        self.tail = Some(due);
        match self.out.back_mut() {
            Some((d, chunk)) if *d == due => chunk.extend_from_slice(&bytes),
            _ => self.out.push_back((due, bytes)),
        }
    }

    /// Unsolicited result codes, one per line, held while the DTE is typing
    /// after a prompt.
    fn urc(&mut self, lines: Vec<String>, now: Instant) {
        for line in lines {
            self.urc_block(vec![line], now);
        }
    }

    /// One unsolicited result code of several lines (`+CMT: ,<len>` and its
    /// PDU), framed as one block.
    fn urc_block(&mut self, lines: Vec<String>, now: Instant) {
        if lines.is_empty() || self.faults.hang || self.booting() {
            return;
        }
        let bytes = self.frame_urc(&lines);
        if self.link_reserved() {
            if self.held.len() >= MAX_BUFFERED_URCS {
                self.held.remove(0);
            }
            self.held.push(bytes);
        } else {
            self.queue(now, bytes);
        }
    }

    /// The TA-TE link is reserved from the first character of a command
    /// line until its final result, and while the DTE types after a `> `
    /// prompt: URCs wait (TS 27.005 §3.4.1 `<mode>` 1/2, TS 27.007 §8.10), so
    /// one never lands inside an echoed line. (Answers already queued are
    /// never overtaken: the output queue keeps its order.)
    fn link_reserved(&self) -> bool {
        self.prompt.is_some() || !self.line.is_empty()
    }

    /// `\r\n<line>[\r\n<line>]\r\n`: a `+CMT` header and its PDU are
    /// one result code of two lines (TS 27.005 §3.4.1).
    fn frame_urc(&self, lines: &[String]) -> Vec<u8> {
        let mut b = b"\r\n".to_vec();
        b.extend_from_slice(lines.join(&self.cfg.line_end).as_bytes());
        b.extend_from_slice(self.cfg.line_end.as_bytes());
        b
    }

    /// Information text of one command (V.250 §5.7.1): `\r\n` lines `\r\n`.
    fn frame_info(&self, lines: &[String]) -> Vec<u8> {
        let mut b = Vec::new();
        if lines.is_empty() {
            return b;
        }
        if self.set.verbose {
            b.extend_from_slice(b"\r\n");
        }
        for (i, l) in lines.iter().enumerate() {
            if i > 0 {
                b.extend_from_slice(self.cfg.line_end.as_bytes());
            }
            b.extend_from_slice(l.as_bytes());
        }
        b.extend_from_slice(self.cfg.line_end.as_bytes());
        b
    }

    /// A final result code in the current `ATV`/`ATQ`/`+CMEE` format.
    fn frame_final(&self, result: Result<(), Fail>) -> Vec<u8> {
        if self.set.quiet {
            return Vec::new();
        }
        let (text, code): (String, Option<u8>) = match result {
            Ok(()) => ("OK".into(), Some(0)),
            Err(Fail::Error) => ("ERROR".into(), Some(4)),
            Err(Fail::NoCarrier) => ("NO CARRIER".into(), Some(3)),
            Err(Fail::Unknown) => {
                let t = self.cfg.unknown_reply.clone();
                let code = (t == "ERROR").then_some(4);
                (t, code)
            }
            Err(Fail::Cme(n)) => match self.set.cmee {
                0 => ("ERROR".into(), Some(4)),
                1 => (format!("+CME ERROR: {n}"), None),
                _ => (format!("+CME ERROR: {}", exec::cme_text(n)), None),
            },
            Err(Fail::Cms(n)) => match self.set.cmee {
                0 => ("ERROR".into(), Some(4)),
                _ => (format!("+CMS ERROR: {n}"), None),
            },
        };
        match (self.set.verbose, code) {
            (true, _) => format!("\r\n{text}\r\n").into_bytes(),
            // V.250 §5.7.1: ATV0 gives the number and a bare CR.
            (false, Some(c)) => format!("{c}\r").into_bytes(),
            (false, None) => format!("{text}\r\n").into_bytes(),
        }
    }

    fn echo(&mut self, b: u8, now: Instant) {
        if self.set.echo {
            self.queue(now, vec![b]);
        }
    }

    /// When an answer to input arriving `now` is due.
    fn reply_due(&self, now: Instant) -> Instant {
        self.tail.map_or(now, |t| t.max(now)) + self.latency
    }

    // ----- input -----------------------------------------------------------

    fn byte(&mut self, b: u8, now: Instant) {
        if self.prompt.is_some() {
            self.prompt_byte(b, now);
        } else {
            self.line_byte(b, now);
        }
        if !self.held.is_empty() && !self.link_reserved() {
            self.release_held(now);
        }
    }

    fn line_byte(&mut self, b: u8, now: Instant) {
        match b {
            b'\r' => {
                self.echo(b, now);
                self.end_of_line(now);
            }
            b'\n' => {
                self.echo(b, now);
                if !self.line.is_empty() {
                    self.end_of_line(now);
                }
            }
            // ESC: abandon the line (V.250 leaves it to the DCE; modems drop
            // what was typed).
            0x1B => {
                self.line.clear();
                self.line_overflow = false;
            }
            // Backspace (S5) and DEL.
            0x08 | 0x7F => {
                self.echo(b, now);
                self.line.pop();
            }
            0x00 => {}
            _ => {
                self.echo(b, now);
                if self.line.len() < MAX_LINE {
                    self.line.push(b);
                    // "A/" repeats the last line, no terminator (V.250 §5.2.4).
                    if self.line.eq_ignore_ascii_case(b"A/") {
                        self.line.clear();
                        if let Some(last) = self.last_line.clone() {
                            self.run_line(&last, now);
                        }
                    }
                } else {
                    self.line_overflow = true;
                }
            }
        }
    }

    fn end_of_line(&mut self, now: Instant) {
        let raw = std::mem::take(&mut self.line);
        let overflow = std::mem::replace(&mut self.line_overflow, false);
        if overflow {
            tracing::debug!(modem = %self.id.number, "command line too long");
            let due = self.reply_due(now);
            let b = self.frame_final(Err(Fail::Error));
            self.queue(due, b);
            return;
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        // V.250 §5.2.1: everything before the "AT" prefix is ignored, and a
        // line without one is not a command at all.
        let Some(pos) = text
            .as_bytes()
            .windows(2)
            .position(|w| w.eq_ignore_ascii_case(b"AT"))
        else {
            if !text.trim().is_empty() {
                tracing::debug!(modem = %self.id.number, line = %text.escape_debug(), "line without AT prefix ignored");
            }
            return;
        };
        let line = text[pos..].to_string();
        self.last_line = Some(line.clone());
        self.run_line(&line, now);
    }

    /// Executes `AT...` (the prefix included) and queues its answer.
    fn run_line(&mut self, line: &str, now: Instant) {
        tracing::debug!(modem = %self.id.number, cmd = %line.escape_debug(), "command");
        let body = line.get(2..).unwrap_or("");
        let mut answer = Vec::new();
        let mut delay = Duration::ZERO;
        let mut after_ok: Vec<exec::After> = Vec::new();
        let result = match cmdline::parse(body) {
            Err(cmdline::Syntax) => Err(Fail::Error),
            Ok(cmds) => {
                let mut result = Ok(());
                for cmd in &cmds {
                    let mut info = Vec::new();
                    let r = self.exec(cmd, now, &mut info);
                    answer.extend(self.frame_info(&info));
                    match r {
                        Ok(exec::Flow::Next) => {}
                        Ok(exec::Flow::Delay(d)) => delay += d,
                        Ok(exec::Flow::Then(a)) => after_ok.push(a),
                        Ok(exec::Flow::Prompt(kind)) => {
                            let due = self.reply_due(now);
                            answer.extend_from_slice(b"\r\n> ");
                            self.queue(due, answer);
                            self.prompt = Some(Prompt {
                                kind,
                                buf: Vec::new(),
                                overflow: false,
                            });
                            return;
                        }
                        Err(f) => {
                            tracing::debug!(modem = %self.id.number, cmd = %cmd.key(), fail = ?f, "command failed");
                            result = Err(f);
                            break;
                        }
                    }
                }
                result
            }
        };
        answer.extend(self.frame_final(result));
        let due = self.reply_due(now) + delay;
        self.queue(due, answer);
        if result.is_ok() {
            for a in after_ok {
                self.after(a, due);
            }
        }
    }

    fn prompt_byte(&mut self, b: u8, now: Instant) {
        let Some(p) = self.prompt.as_mut() else {
            return;
        };
        match b {
            // Ctrl-Z: send/store (TS 27.005 §3.5.1).
            0x1A => {
                if let Some(p) = self.prompt.take() {
                    self.finish_prompt(p, now);
                }
            }
            // ESC: cancel without sending.
            0x1B => {
                self.prompt = None;
                tracing::debug!(modem = %self.id.number, "prompt cancelled with ESC");
                let due = self.reply_due(now);
                let b = self.frame_final(Ok(()));
                self.queue(due, b);
                self.release_held(now);
            }
            _ => {
                let text_mode = matches!(
                    p.kind,
                    PromptKind::SendText { .. } | PromptKind::WriteText { .. }
                );
                if p.buf.len() < MAX_PROMPT {
                    p.buf.push(b);
                } else {
                    p.overflow = true;
                }
                if text_mode && b == b'\r' {
                    // In text mode a CR ends a line of the message and the
                    // modem prompts again (TS 27.005 §3.5.1).
                    self.queue(now, b"\r\n> ".to_vec());
                } else {
                    self.echo(b, now);
                }
            }
        }
    }

    fn finish_prompt(&mut self, p: Prompt, now: Instant) {
        let mut info = Vec::new();
        let result = if p.overflow {
            Err(match p.kind {
                PromptKind::SendText { .. } | PromptKind::WriteText { .. } => Fail::Cms(305),
                _ => Fail::Cms(304),
            })
        } else {
            self.exec_prompt(&p.kind, &p.buf, &mut info)
        };
        let sending = matches!(
            p.kind,
            PromptKind::SendPdu { .. } | PromptKind::SendText { .. }
        );
        if sending && result.is_ok() && self.faults.hang_after_send {
            tracing::info!(modem = %self.id.number, "fault: message sent, then hung before answering");
            self.faults.hang_after_send = false;
            self.faults.hang = true;
            self.out.clear();
            self.line.clear();
            self.held.clear();
            return;
        }
        let mut answer = self.frame_info(&info);
        answer.extend(self.frame_final(result));
        let due = self.reply_due(now)
            + if sending {
                self.send_time
            } else {
                Duration::ZERO
            };
        self.queue(due, answer);
        self.release_held(now);
    }

    fn release_held(&mut self, now: Instant) {
        for b in std::mem::take(&mut self.held) {
            self.queue(now, b);
        }
    }

    /// A seeded draw in `[0, 1)` (splitmix64), so faults are reproducible.
    fn random(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Fills the profile placeholders of a response template.
    fn render(&self, template: &str) -> String {
        let cpin = match self.sim {
            SimState::Ready => "READY",
            SimState::NeedPin => "SIM PIN",
            SimState::NeedPuk | SimState::Blocked => "SIM PUK",
        };
        let code_left = match self.sim {
            SimState::Ready => String::new(),
            SimState::NeedPin => self.pin_left.to_string(),
            SimState::NeedPuk | SimState::Blocked => self.puk_left.to_string(),
        };
        template
            .replace("{imei}", &self.id.imei)
            .replace("{imsi}", &self.id.imsi)
            .replace("{iccid}", &self.id.iccid)
            .replace("{number}", &self.id.number)
            .replace("{manufacturer}", &self.cfg.manufacturer)
            .replace("{model}", &self.cfg.model)
            .replace("{revision}", &self.cfg.revision)
            .replace("{rssi}", &self.rssi().to_string())
            .replace("{cpin}", cpin)
            .replace("{pin_left}", &self.pin_left.to_string())
            .replace("{puk_left}", &self.puk_left.to_string())
            .replace("{code_left}", &code_left)
    }

    fn rssi(&self) -> u8 {
        if self.registered() {
            self.cfg.rssi
        } else {
            99
        }
    }

    /// Text in the `+CSCS` character set. UCS2 is hex of UTF-16 units; HEX
    /// is left as plain text, as the modems gammu was recorded against do
    /// (gammu selects HEX and then reads `+CSCA?` in plain digits).
    fn encode_text(&self, text: &str) -> String {
        match self.set.cscs.as_str() {
            "UCS2" => text.encode_utf16().map(|u| format!("{u:04X}")).collect(),
            _ => text.to_string(),
        }
    }

    /// A string parameter the DTE wrote in the `+CSCS` character set.
    fn decode_text(&self, text: &str) -> Option<String> {
        match self.set.cscs.as_str() {
            "UCS2" => {
                if text.len() % 4 != 0 {
                    return None;
                }
                let units: Option<Vec<u16>> = (0..text.len())
                    .step_by(4)
                    .map(|i| {
                        text.get(i..i + 4)
                            .and_then(|h| u16::from_str_radix(h, 16).ok())
                    })
                    .collect();
                String::from_utf16(&units?).ok()
            }
            _ => Some(text.to_string()),
        }
    }
}
