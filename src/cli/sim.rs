//! `smsgate sim` (run simulated modems) and `smsgate sim ctl` (control them).
//!
//! Flags are validated into a [`SimConfig`] once, here at the edge; the
//! runtime never sees raw strings. stdout carries only JSON (the ready
//! line, `ctl` results); logs go to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::Value;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::hardware;
use crate::sim::control::{self, Request};
use crate::sim::identity;
use crate::sim::runtime::{self, SimConfig};
use crate::sim::{parse_duration, SimError};

/// Default number of modems: two, so that modem-to-modem delivery works
/// out of the box.
pub const DEFAULT_MODEMS: usize = 2;

/// Most modems one simulator runs (one box has dozens of real ones).
pub const MAX_MODEMS: usize = 256;

/// Arguments of `smsgate sim`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SimArgs {
    /// `ctl`: talk to a running simulator.
    #[command(subcommand)]
    pub command: Option<SimCommand>,
    /// Flags of the simulator itself.
    #[command(flatten)]
    pub run: Box<RunArgs>,
}

/// Subcommands of `smsgate sim`.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Control a running simulator through DIR/sim.sock (JSON lines on stdout).
    Ctl(CtlArgs),
}

/// Flags of `smsgate sim`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Directory for the links DIR/modemK and the control socket DIR/sim.sock (created if missing).
    #[arg(long, required = true)]
    pub dir: Option<PathBuf>,
    /// Number of modems [default: 2, or the count of --numbers].
    #[arg(long)]
    pub modems: Option<usize>,
    /// Vendor profile the modems imitate (generic, huawei, quectel, simcom, ...).
    #[arg(long, default_value = "generic")]
    pub profile: String,
    /// Delay before every final result (0ms, 500ms, 2s).
    #[arg(long, default_value = "0ms")]
    pub latency: String,
    /// Extra time every AT+CMGS takes before its result: how long the
    /// network needs to accept a message (0ms instant, 2s realistic).
    #[arg(long, default_value = "0ms")]
    pub send_time: String,
    /// Comma-separated phone numbers, one per modem [default: +15550000000, +15550000001, ...].
    #[arg(long, value_delimiter = ',')]
    pub numbers: Option<Vec<String>>,
    /// SIM PIN: the SIMs ask for it at power-on (AT+CPIN?) [default: no PIN].
    #[arg(long)]
    pub pin: Option<String>,
    /// Delay between delivery and the status report (when one was requested).
    #[arg(long, default_value = "1s")]
    pub report_delay: String,
    /// Seed of every random choice (faults, garbage), for reproducible runs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `smsgate sim ctl --dir DIR <op>`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The simulator's directory (as given to `smsgate sim --dir`).
    #[arg(long)]
    pub dir: PathBuf,
    /// Seconds to wait for the simulator's answer.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// The operation.
    #[command(subcommand)]
    pub op: Request,
}

/// Runs `smsgate sim` or `smsgate sim ctl`.
pub fn run(args: SimArgs) -> ExitCode {
    match args.command {
        Some(SimCommand::Ctl(ctl)) => run_ctl(ctl),
        None => match config(*args.run) {
            Ok(cfg) => run_sim(cfg),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// Validates the flags of `smsgate sim`.
pub fn config(args: RunArgs) -> Result<SimConfig, SimError> {
    let dir = args
        .dir
        .ok_or_else(|| SimError::Invalid("--dir is required".into()))?;
    let count = match (args.modems, &args.numbers) {
        (Some(n), Some(nums)) if nums.len() != n => {
            return Err(SimError::Invalid(format!(
                "--modems {n} but --numbers lists {} numbers",
                nums.len()
            )))
        }
        (Some(n), _) => n,
        (None, Some(nums)) => nums.len(),
        (None, None) => DEFAULT_MODEMS,
    };
    if !(1..=MAX_MODEMS).contains(&count) {
        return Err(SimError::Invalid(format!(
            "--modems must be 1..={MAX_MODEMS}, not {count}"
        )));
    }
    let numbers = match args.numbers {
        Some(nums) => nums.into_iter().map(|n| n.trim().to_string()).collect(),
        None => (0..count).map(identity::default_number).collect::<Vec<_>>(),
    };
    for (i, n) in numbers.iter().enumerate() {
        if !n.starts_with('+') || !identity::valid_number(n) {
            return Err(SimError::Invalid(format!(
                "--numbers: {n:?} is not an international number (+ and 1 to 20 digits)"
            )));
        }
        if numbers.iter().take(i).any(|m| m == n) {
            return Err(SimError::Invalid(format!("--numbers: {n} is listed twice")));
        }
    }
    if let Some(pin) = &args.pin {
        if !(4..=8).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SimError::Invalid("--pin must be 4 to 8 digits".into()));
        }
    }
    Ok(SimConfig {
        dir,
        numbers,
        profile: hardware::builtin_profile(&args.profile)?,
        latency: parse_duration(&args.latency)
            .map_err(|e| SimError::Invalid(format!("--latency: {e}")))?,
        send_time: parse_duration(&args.send_time)
            .map_err(|e| SimError::Invalid(format!("--send-time: {e}")))?,
        pin: args.pin,
        report_delay: parse_duration(&args.report_delay)
            .map_err(|e| SimError::Invalid(format!("--report-delay: {e}")))?,
        seed: args.seed,
    })
}

fn run_sim(cfg: SimConfig) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let signals = signal_hook_tokio::Signals::new([SIGINT, SIGTERM])
            .map_err(|e| SimError::Invalid(format!("cannot install signal handlers: {e}")))?;
        let (first_tx, first_rx) = tokio::sync::oneshot::channel::<i32>();
        tokio::spawn(async move {
            let mut signals = signals;
            if let Some(sig) = signals.next().await {
                let _ = first_tx.send(sig);
            }
            // A second signal while cleaning up: the operator means it.
            if let Some(sig) = signals.next().await {
                eprintln!("second signal {sig}: exiting immediately");
                std::process::exit(128 + sig);
            }
        });
        let shutdown = async {
            if let Ok(sig) = first_rx.await {
                tracing::info!(signal = sig, "signal received");
            }
        };
        runtime::run(cfg, shutdown, |ready| {
            let mut out = std::io::stdout().lock();
            let line = serde_json::to_string(ready).unwrap_or_else(|_| r#"{"ready":true}"#.into());
            // Scripts block on this line; a closed stdout must not kill us.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        })
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_ctl(args: CtlArgs) -> ExitCode {
    match control::call(
        &args.dir,
        &args.op,
        Duration::from_secs(args.timeout.max(1)),
    ) {
        Ok(result) => {
            let mut out = std::io::stdout().lock();
            let lines = match result {
                Value::Array(items) => items,
                other => vec![other],
            };
            for item in lines {
                if writeln!(out, "{item}").is_err() {
                    break;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Top {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> Result<SimArgs, clap::Error> {
        Top::try_parse_from(std::iter::once("sim").chain(args.iter().copied())).map(|t| t.sim)
    }

    #[test]
    fn defaults_are_two_modems_with_default_numbers() {
        let a = parse(&["--dir", "/tmp/x"]).unwrap();
        let cfg = config(*a.run).unwrap();
        assert_eq!(cfg.numbers, vec!["+15550000000", "+15550000001"]);
        assert_eq!(cfg.latency, Duration::ZERO);
        assert_eq!(cfg.report_delay, Duration::from_secs(1));
        assert_eq!(cfg.profile.id, "generic");
    }

    #[test]
    fn numbers_set_the_count_and_must_agree_with_modems() {
        let a = parse(&["--dir", "d", "--numbers", "+491,+492,+493"]).unwrap();
        assert_eq!(config(*a.run).unwrap().numbers.len(), 3);
        let a = parse(&["--dir", "d", "--modems", "2", "--numbers", "+491"]).unwrap();
        assert!(config(*a.run)
            .unwrap_err()
            .to_string()
            .contains("--numbers"));
        let a = parse(&["--dir", "d", "--numbers", "+491,+491"]).unwrap();
        assert!(config(*a.run).unwrap_err().to_string().contains("twice"));
        let a = parse(&["--dir", "d", "--numbers", "12345"]).unwrap();
        assert!(config(*a.run).is_err());
    }

    #[test]
    fn bad_flags_are_clear_errors() {
        for (args, needle) in [
            (&["--dir", "d", "--modems", "0"][..], "--modems"),
            (&["--dir", "d", "--latency", "fast"][..], "--latency"),
            (&["--dir", "d", "--report-delay=-1s"][..], "--report-delay"),
            (&["--dir", "d", "--pin", "12"][..], "--pin"),
            (&["--dir", "d", "--profile", "nokia"][..], "nokia"),
        ] {
            let a = parse(args).unwrap();
            let e = config(*a.run).unwrap_err().to_string();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
        assert!(parse(&[]).is_err(), "--dir is required");
    }

    #[test]
    fn ctl_ops_map_to_requests() {
        let a = parse(&[
            "ctl",
            "--dir",
            "d",
            "cms-error",
            "500",
            "--modem",
            "1",
            "--rate",
            "0.5",
        ])
        .unwrap();
        let Some(SimCommand::Ctl(c)) = a.command else {
            panic!()
        };
        assert_eq!(
            c.op,
            Request::CmsError {
                modem: 1,
                code: Some(500),
                rate: Some(0.5),
                off: false
            }
        );
        let a = parse(&["ctl", "--dir", "d", "hang", "--modem", "0", "--off"]).unwrap();
        let Some(SimCommand::Ctl(c)) = a.command else {
            panic!()
        };
        assert_eq!(
            c.op,
            Request::Hang {
                modem: 0,
                off: true
            }
        );
        let a = parse(&[
            "ctl",
            "--dir",
            "d",
            "inject",
            "--modem",
            "0",
            "--from",
            "+1",
            "--text",
            "hi",
            "--parts",
            "2",
            "--out-of-order",
            "--class",
            "0",
            "--ucs2",
        ])
        .unwrap();
        let Some(SimCommand::Ctl(c)) = a.command else {
            panic!()
        };
        assert!(matches!(
            c.op,
            Request::Inject {
                parts: Some(2),
                out_of_order: true,
                class: Some(0),
                ucs2: true,
                ..
            }
        ));
    }
}
