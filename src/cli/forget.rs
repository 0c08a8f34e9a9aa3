//! `smsgate forget NUMBER|HANDLE`: erases everything the daemon stores
//! about a person, through the bus op `forget` (docs/privacy.md). Only
//! peers that see numbers (root, the daemon's user, `see_numbers_*`) may.

use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Value};

use super::client::{Client, SocketArg};

/// Arguments of `smsgate forget`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// A phone number (any format the daemon accepts) or an `sms:` handle.
    pub who: String,
    /// `--socket PATH` (or `SMSGATE_SOCKET`): where the daemon listens.
    #[command(flatten)]
    pub socket: SocketArg,
}

/// Runs `smsgate forget`: prints the rows erased per kind.
pub fn run(args: ForgetArgs) -> ExitCode {
    let reply = match Client::connect(&args.socket.socket)
        .and_then(|mut c| c.request("forget", json!({ "who": args.who })))
    {
        Ok(r) => r,
        Err(e) => return e.report(),
    };
    println!("forgot {}; erased:", args.who);
    if let Value::Object(erased) = &reply["erased"] {
        for (kind, n) in erased {
            println!("  {kind}: {n}");
        }
    }
    ExitCode::SUCCESS
}
