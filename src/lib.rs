//! smsgate: a daemon that drives GSM/LTE USB modems with AT commands and
//! relays SMS to and from a local message bus.
//!
//! The module tree mirrors the pipeline described in `DESIGN.md`:
//!
//! * [`pdu`]: the 3GPP TS 23.040 / 23.038 codec (SMS-DELIVER, SMS-SUBMIT,
//!   SMS-STATUS-REPORT, GSM 7-bit, UCS-2, UDH, multipart splitting and
//!   reassembly). Pure: bytes in, values out.
//! * [`at`]: the AT command engine (3GPP TS 27.007 / 27.005): a pure digester
//!   that frames a byte stream into responses, prompts and unsolicited result
//!   codes, typed commands, and an async link that keeps one command in flight.
//! * [`hardware`]: modem profiles (`hardware/*.toml`): USB ids, AT interface,
//!   init commands and quirks, shared by the daemon and the simulator.
//! * [`modem`]: one actor task per modem: identification, PIN, SMS set-up,
//!   receiving (delete only after commit), sending, health and recovery.
//! * [`daemon`]: the engine that wires modem actors, the store and the
//!   router together, the configuration, discovery and `smsgate run`.
//! * [`privacy`]: consent (JOIN/STOP/HELP), pseudonymous handles, number
//!   normalisation and masking, retention and erasure.
//! * [`router`]: chooses the modem for each outbound message (pin, sticky
//!   peer, prefix rules, load) under per-SIM limits.
//! * [`bus`]: the Unix-socket protocol (JSON lines) clients use to send
//!   and receive SMS; access control, subscriptions, inbound hand-over.
//! * [`sim`]: a simulated GSM network of modems speaking AT over
//!   pseudo-terminals, with vendor quirks and fault injection; used by tests,
//!   benchmarks and the demo, never by production code paths.
//! * [`udev`]: the udev rules generated from the profiles (stable links
//!   under `/dev/smsgate/`, ModemManager kept away).

// Every public item is documented; `clippy -D warnings` keeps it so.
#![warn(missing_docs)]

pub mod at;
pub mod atomic;
pub mod bus;
pub mod cli;
pub mod daemon;
pub mod hardware;
pub mod modem;
pub mod pdu;
pub mod privacy;
pub mod router;
pub mod sim;
pub mod store;
pub mod udev;
