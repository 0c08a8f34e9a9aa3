//! `smsgate modems`: the daemon's modems as a table, or JSON.

use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Value};

use super::client::{cell, print_table, Client, ClientError, SocketArg};

/// Arguments of `smsgate modems`.
#[derive(Debug, Args)]
pub struct ModemsArgs {
    /// `--socket PATH` (or `SMSGATE_SOCKET`): where the daemon listens.
    #[command(flatten)]
    pub socket: SocketArg,
    /// A JSON array of the modems (every field the daemon knows).
    #[arg(long)]
    pub json: bool,
}

/// The `modems` reply's list.
pub fn fetch(client: &mut Client) -> Result<Vec<Value>, ClientError> {
    let mut reply = client.request("modems", json!({}))?;
    match reply["modems"].take() {
        Value::Array(list) => Ok(list),
        other => Err(ClientError::Protocol(format!(
            "`modems` answered {other} instead of a list"
        ))),
    }
}

/// Runs `smsgate modems`.
pub fn run(args: ModemsArgs) -> ExitCode {
    let list = match Client::connect(&args.socket.socket).and_then(|mut c| fetch(&mut c)) {
        Ok(l) => l,
        Err(e) => return e.report(),
    };
    if args.json {
        println!("{}", Value::Array(list));
        return ExitCode::SUCCESS;
    }
    if list.is_empty() {
        println!("no modems (plug one in, or see `smsgate doctor`)");
        return ExitCode::SUCCESS;
    }
    let mut out = std::io::stdout().lock();
    match print_table(&mut out, &HEADER, &rows(&list)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// The table's columns.
pub const HEADER: [&str; 9] = [
    "NAME",
    "STATE",
    "MODEL",
    "IMEI",
    "OPERATOR",
    "SIGNAL",
    "REGISTRATION",
    "QUEUE",
    "SENT TODAY",
];

/// `+CSQ` rssi as people read it: `20 (-73 dBm)`; 99 is unknown
/// (27.007 §8.5: dBm = -113 + 2 * rssi).
pub fn signal(v: &Value) -> String {
    match v["signal"].as_u64() {
        Some(r @ 0..=31) => format!("{r} ({} dBm)", -113 + 2 * r as i64),
        _ => "-".into(),
    }
}

/// One row per modem.
pub fn rows(list: &[Value]) -> Vec<Vec<String>> {
    list.iter()
        .map(|m| {
            vec![
                cell(m, "name"),
                cell(m, "state"),
                cell(m, "model"),
                cell(m, "imei"),
                cell(m, "operator"),
                signal(m),
                cell(m, "registration"),
                cell(m, "queued"),
                cell(m, "sent_today"),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_show_missing_fields_as_dashes() {
        let list = vec![
            json!({"id":"350","name":"left","state":"ready","model":"E3372",
            "imei":"350","operator":"Test","signal":20,"registration":"home","queued":2,"sent_today":5}),
            json!({"id":"x","name":"right","state":"opening","signal":99}),
        ];
        let r = rows(&list);
        assert_eq!(
            r[0],
            [
                "left",
                "ready",
                "E3372",
                "350",
                "Test",
                "20 (-73 dBm)",
                "home",
                "2",
                "5"
            ]
        );
        assert_eq!(r[1][5], "-");
        // What a modem reports cannot drive the terminal.
        let odd = rows(&[json!({"name":"m\u{1b}[2J","operator":"\u{202e}ti\r"})]);
        assert_eq!(odd[0][0], "m\\x1b[2J");
        assert_eq!(odd[0][4], "\\u{202e}ti\\r");
        assert_eq!(r[1][2], "-");
    }
}
