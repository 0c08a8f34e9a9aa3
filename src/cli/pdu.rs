//! `smsgate pdu decode|encode`.

use std::process::ExitCode;

/// Arguments of `smsgate pdu`.
#[derive(Debug, clap::Args)]
pub struct PduArgs {}

/// Runs `smsgate pdu`.
pub fn run(_args: PduArgs) -> ExitCode {
    ExitCode::SUCCESS
}
