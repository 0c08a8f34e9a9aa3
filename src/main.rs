//! The `smsgate` binary: a thin dispatcher over [`smsgate::cli`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use smsgate::cli;

/// smsgate: relay SMS between USB GSM/LTE modems and a local message bus.
#[derive(Debug, Parser)]
#[command(name = "smsgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode and encode SMS PDUs (3GPP TS 23.040).
    Pdu(cli::pdu::PduArgs),
    /// Run the daemon: modems, store and the bus socket (`--config FILE`).
    Run(cli::run::RunArgs),
    /// Run simulated modems on pseudo-terminals, or control them (`sim ctl`).
    Sim(cli::sim::SimArgs),
    /// Queue SMS through the daemon (prints one message id per recipient).
    Send(cli::send::SendArgs),
    /// Inbound messages: the backlog, or follow new ones.
    Inbox(cli::inbox::InboxArgs),
    /// An outbound message's state, or the daemon's counters.
    Status(cli::status::StatusArgs),
    /// The daemon's modems as a table.
    Modems(cli::modems::ModemsArgs),
    /// Erase everything stored about a number or handle (admin).
    Forget(cli::forget::ForgetArgs),
    /// Consent records: who joined or stopped, since when (admin).
    Consent(cli::consent::ConsentArgs),
    /// Check the host, the modems and the daemon, and explain what is wrong.
    Doctor(cli::doctor::DoctorArgs),
    /// The whole system with two simulated modems, in seconds, no hardware needed.
    Demo(cli::demo::DemoArgs),
    /// Print the udev rules for the known modems (stable links in /dev/smsgate/).
    UdevRules(cli::udev::UdevArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo and the doctor talk to people on stdout; the daemon's and
    // the AT link's routine logs would drown that out.
    let default_level = match cli.command {
        Command::Demo(_) | Command::Doctor(_) => "warn",
        _ => "info",
    };
    // Logs go to stderr so that stdout stays machine-readable (JSON lines).
    // `SMSGATE_LOG`, else `RUST_LOG`, filters (`info`, `smsgate::modem=debug`).
    let filter = tracing_subscriber::EnvFilter::try_from_env("SMSGATE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for people: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // journald stamps every line itself.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        logs.without_time().init();
    } else {
        logs.init();
    }
    match cli.command {
        Command::Pdu(args) => cli::pdu::run(args),
        Command::Sim(args) => cli::sim::run(args),
        Command::Send(args) => cli::send::run(args),
        Command::Inbox(args) => cli::inbox::run(args),
        Command::Status(args) => cli::status::run(args),
        Command::Modems(args) => cli::modems::run(args),
        Command::Forget(args) => cli::forget::run(args),
        Command::Consent(args) => cli::consent::run(args),
        Command::Doctor(args) => cli::doctor::run(args),
        Command::Demo(args) => cli::demo::run(args),
        Command::Run(args) => cli::run::run(args),
        Command::UdevRules(args) => cli::udev::run(args),
    }
}
