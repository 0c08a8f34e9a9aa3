//! `smsgate sim` and `smsgate sim ctl`.

use std::process::ExitCode;

/// Arguments of `smsgate sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {}

/// Runs `smsgate sim`.
pub fn run(_args: SimArgs) -> ExitCode {
    ExitCode::SUCCESS
}
