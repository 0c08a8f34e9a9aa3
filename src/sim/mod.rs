//! A simulated GSM network of modems that speak AT over pseudo-terminals.
//!
//! * [`modem`]: one simulated modem as a pure state machine (bytes in,
//!   bytes out, time passed in): the AT command interpreter, SIM/ME/SR
//!   storage, PIN, registration, sending and receiving, vendor quirks from
//!   the `[sim]` section of `hardware/*.toml`, modem-level faults.
//! * [`identity`]: deterministic IMEI/IMSI/ICCID for each simulated SIM.
//! * [`pty`]: the pseudo-terminal standing in for a USB serial port.
//! * [`network`]: the SMSC and the air between modems: routes what one
//!   modem sends to another or to the "outside world", sends status reports,
//!   keeps the outbox.
//! * [`runtime`]: one task per modem wiring a [`modem::SimModem`] to its
//!   pty, plus the faults that live outside the modem (unplug, garbage).
//! * [`control`]: the JSON Lines control socket (`DIR/sim.sock`).
//! * [`dte`]: a minimal blocking serial client to drive the simulator from
//!   tests, benchmarks and scripts.
//!
//! Never used by production code paths: the daemon only ever sees a
//! simulated modem through its pseudo-terminal, exactly like real hardware.

pub mod control;
pub mod dte;
pub mod identity;
pub mod modem;
pub mod network;
pub mod pty;
pub mod runtime;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Errors of the simulator runtime (the modem state machine has none: it
/// answers bad input the way a modem does).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A pseudo-terminal could not be created or set up.
    #[error("pseudo-terminal: {what}: {source}")]
    Pty {
        /// Which step failed.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The `DIR/modemK` link could not be created or replaced.
    #[error("link {}: {source}", link.display())]
    Link {
        /// The link path.
        link: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The simulator directory is missing or not writable.
    #[error("directory {}: {source}", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The control socket could not be bound or reached.
    #[error("control socket {}: {source}", path.display())]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A command-line or control-socket argument is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The profile could not be loaded.
    #[error(transparent)]
    Profile(#[from] crate::hardware::ProfileError),
}

/// Parses a duration as written on the command line: a number followed by
/// `ms`, `s`, `m` or `h` (`0ms`, `500ms`, `2s`, `1.5s`); a bare number is
/// seconds.
pub fn parse_duration(text: &str) -> Result<Duration, SimError> {
    let t = text.trim();
    let bad = || {
        SimError::Invalid(format!(
            "invalid duration {text:?} (examples: 0ms, 500ms, 2s, 1.5s)"
        ))
    };
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let secs = value * scale;
    // A day is far beyond any sane latency or report delay.
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0ms").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        for bad in ["", "ms", "2x", "-1s", "1e9s", "2 s", "nan"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
