//! The daemon: everything that runs inside `smsgate run`.
//!
//! * [`engine`]: the wiring of the modem actors, the store and the router —
//!   inbound parts committed before they are deleted from a modem, outbound
//!   messages dispatched to modems, retries and failover.
pub mod engine;
