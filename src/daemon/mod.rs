//! The daemon: everything that runs inside `smsgate run`.
//!
//! * [`engine`]: the wiring of the modem actors, the store and the router —
//!   inbound parts committed before they are deleted from a modem, outbound
//!   messages dispatched to modems, retries and failover.
//! * [`config`]: the TOML configuration, validated once at the edge.
//! * [`discovery`]: hotplug of modem links in a watched directory.
//! * [`notify`]: systemd readiness, status and watchdog notifications.
//! * [`run`]: [`Daemon`] (store, engine, bus, modems) and `smsgate run`
//!   (signals, reload, exit codes). `backend` makes the engine the bus's
//!   backend.
pub mod engine;

mod backend;
pub mod config;
pub mod discovery;
pub mod notify;
pub mod privacy;
pub mod run;

pub use config::{Config, ConfigError};
pub use run::{run, Daemon, DaemonError, RunArgs};
