//! `smsgate consent [NUMBER|HANDLE]`: the consent records the daemon keeps
//! (who joined, who stopped, since when, through which keyword and modem),
//! through the bus op `consent` (docs/privacy.md). Only admins (peers that
//! see numbers: root, the daemon's user, `see_numbers_*`) may.

use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Value};

use super::client::{cell, print_table, Client, ClientError, SocketArg};

/// Records asked for per request when listing everyone (the op's maximum).
const PAGE: u32 = 1000;

/// Arguments of `smsgate consent`.
#[derive(Debug, Args)]
pub struct ConsentArgs {
    /// One person: a phone number (any format the daemon accepts) or an
    /// `sms:` handle. None: every record.
    pub who: Option<String>,
    /// One JSON object per record and line, instead of a table.
    #[arg(long)]
    pub json: bool,
    /// `--socket PATH` (or `SMSGATE_SOCKET`): where the daemon listens.
    #[command(flatten)]
    pub socket: SocketArg,
}

/// Every record the daemon returns for `who` (all pages when `None`).
pub fn fetch(client: &mut Client, who: Option<&str>) -> Result<Vec<Value>, ClientError> {
    let mut records = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut reply = client.request(
            "consent",
            json!({ "who": who, "limit": PAGE, "after": after }),
        )?;
        match reply["records"].take() {
            Value::Array(page) => records.extend(page),
            other => {
                return Err(ClientError::Protocol(format!(
                    "`consent` answered {other} instead of a list"
                )))
            }
        }
        match reply["next"].as_str() {
            // A `next` that does not move on would loop forever.
            Some(next) if who.is_none() && after.as_deref() != Some(next) => {
                after = Some(next.to_owned());
            }
            _ => return Ok(records),
        }
    }
}

/// Runs `smsgate consent`.
pub fn run(args: ConsentArgs) -> ExitCode {
    let records = match Client::connect(&args.socket.socket)
        .and_then(|mut c| fetch(&mut c, args.who.as_deref()))
    {
        Ok(r) => r,
        Err(e) => return e.report(),
    };
    if args.json {
        for r in &records {
            println!("{r}");
        }
        return ExitCode::SUCCESS;
    }
    if records.is_empty() {
        match &args.who {
            Some(who) => println!(
                "no consent record for {who} (never sent JOIN or STOP, nor was told how to join)"
            ),
            None => println!("no consent records"),
        }
        return ExitCode::SUCCESS;
    }
    let mut out = std::io::stdout().lock();
    let (header, rows) = table(&records);
    match print_table(&mut out, &header, &rows) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// The table: a NUMBER column only when the daemon showed numbers.
pub fn table(records: &[Value]) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let numbers = records.iter().any(|r| r.get("number").is_some());
    let mut header = vec!["HANDLE", "STATE", "SINCE", "KEYWORD", "MODEM"];
    if numbers {
        header.insert(0, "NUMBER");
    }
    let rows = records
        .iter()
        .map(|r| {
            let mut row = vec![
                cell(r, "handle"),
                cell(r, "state"),
                cell(r, "since"),
                cell(r, "keyword"),
                cell(r, "modem"),
            ];
            if numbers {
                row.insert(0, cell(r, "number"));
            }
            row
        })
        .collect();
    (header, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::client::tests::{fake_daemon, hello, ok};

    #[test]
    fn pages_are_followed_until_next_is_absent() {
        let (_dir, socket) = fake_daemon(|req| {
            Some(vec![match req["op"].as_str() {
                Some("hello") => hello(req),
                _ => match req["after"].as_str() {
                    None => ok(
                        req,
                        json!({"records": [{"handle": "sms:a", "state": "joined"}],
                               "next": "sms:a"}),
                    ),
                    Some(_) => ok(
                        req,
                        json!({"records": [{"handle": "sms:b", "state": "stopped"}],
                               "next": null}),
                    ),
                },
            }])
        });
        let mut c = Client::connect(&socket).unwrap();
        let all = fetch(&mut c, None).unwrap();
        let handles: Vec<_> = all.iter().map(|r| cell(r, "handle")).collect();
        assert_eq!(handles, ["sms:a", "sms:b"]);
    }

    #[test]
    fn the_number_column_appears_only_with_numbers() {
        let with = [
            json!({"number": "+491711234567", "handle": "sms:a", "state": "joined",
            "since": "2026-11-26T10:00:00Z", "keyword": "join", "modem": "350"}),
        ];
        let (h, rows) = table(&with);
        assert_eq!(h[0], "NUMBER");
        assert_eq!(rows[0][0], "+491711234567");
        let without = [json!({"handle": "sms:a", "state": "pending", "keyword": null})];
        let (h, rows) = table(&without);
        assert_eq!(h[0], "HANDLE");
        assert_eq!(rows[0], ["sms:a", "pending", "-", "-", "-"]);
    }
}
