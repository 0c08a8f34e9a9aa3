//! A simulated GSM network of modems that speak AT over pseudo-terminals.
//!
//! * [`modem`]: one simulated modem as a pure state machine (bytes in,
//!   bytes out, time passed in): the AT command interpreter, SIM/ME/SR
//!   storage, PIN, registration, sending and receiving, vendor quirks from
//!   the `[sim]` section of `hardware/*.toml`, modem-level faults.
//!
//! Never used by production code paths: the daemon only ever sees a
//! simulated modem through its pseudo-terminal, exactly like real hardware.

pub mod modem;
