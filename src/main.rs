//! The `smsgate` binary: a thin command-line front end over the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// smsgate: relay SMS between USB GSM/LTE modems and a local message bus.
#[derive(Debug, Parser)]
#[command(name = "smsgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    // Subcommands are added by each layer (pdu, sim, ...).
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {}
}
