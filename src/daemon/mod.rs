//! The daemon: configuration, modem discovery, systemd notification and
//! the `smsgate run` entry point that wires the engine and the bus.

pub mod config;
pub mod discovery;
pub mod notify;
mod router_types;

pub use config::{Config, ConfigError};
