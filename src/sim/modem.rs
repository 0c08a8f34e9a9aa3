//! One simulated modem as a sans-I/O state machine.
//!
//! The runtime (pty plumbing, network, control socket) feeds it the bytes
//! the DTE wrote with [`SimModem::input`], writes out what
//! [`SimModem::output`] returns, wakes it at [`SimModem::next_wakeup`], and
//! routes the [`NetEvent`]s it emits. Nothing here does I/O or reads a clock.
//!
//! (Interface fixed by the skeleton so that the modem and the runtime can be
//! built side by side. Extend it, don't break it.)

use std::time::{Duration, Instant};

use crate::hardware::Profile;

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
    /// Report every storage as full (`+CMS ERROR: 322` on write, and
    /// inbound messages are refused by the network until space is freed).
    pub full: bool,
}

/// One simulated modem.
#[derive(Debug)]
pub struct SimModem {
    _private: (),
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
        let _ = (identity, profile, latency, seed, now);
        todo!()
    }

    /// Bytes the DTE wrote.
    pub fn input(&mut self, bytes: &[u8], now: Instant) {
        let _ = (bytes, now);
        todo!()
    }

    /// Bytes due to the DTE by `now` (responses, prompts, URCs).
    pub fn output(&mut self, now: Instant) -> Vec<u8> {
        let _ = now;
        todo!()
    }

    /// When the modem next has something to do (a delayed answer, a reboot
    /// finishing, a periodic URC); `None` when idle.
    pub fn next_wakeup(&self) -> Option<Instant> {
        todo!()
    }

    /// Events for the network, drained.
    pub fn take_events(&mut self) -> Vec<NetEvent> {
        todo!()
    }

    /// The network delivers an SMS-DELIVER TPDU (no SMSC field). The modem
    /// stores it and indicates it (`+CMTI`), or routes it directly (`+CMT`),
    /// as `+CNMI` says.
    pub fn receive(&mut self, tpdu: &[u8], now: Instant) -> Result<(), ReceiveError> {
        let _ = (tpdu, now);
        todo!()
    }

    /// The network delivers an SMS-STATUS-REPORT TPDU (no SMSC field):
    /// `+CDS`, `+CDSI` or nothing, as `+CNMI` `<ds>` says.
    pub fn receive_status_report(&mut self, tpdu: &[u8], now: Instant) -> Result<(), ReceiveError> {
        let _ = (tpdu, now);
        todo!()
    }

    /// The faults in force.
    pub fn set_faults(&mut self, faults: Faults) {
        let _ = faults;
        todo!()
    }

    /// Reboot now (as `AT+CFUN=1,1` does): volatile settings reset, boot
    /// URCs after a delay, the SIM asks for its PIN again.
    pub fn reboot(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// The identity.
    pub fn identity(&self) -> &Identity {
        todo!()
    }
}
