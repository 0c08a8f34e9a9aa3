//! The daemon: everything that runs inside `smsgate run`.
//!
//! * [`engine`]: the wiring of the modem actors, the store and the router —
//!   inbound parts committed before they are deleted from a modem, outbound
//!   messages dispatched to modems, retries and failover.
//! * [`config`]: the TOML configuration, validated once at the edge.
//! * [`discovery`]: hotplug of modem links in a watched directory.
//! * [`notify`]: systemd readiness, status and watchdog notifications.
pub mod engine;

pub mod config;
pub mod discovery;
pub mod notify;

pub use config::{Config, ConfigError};
