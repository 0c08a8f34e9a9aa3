//! `smsgate pdu decode|encode`: the codec on the command line. Output
//! formats are documented in `docs/pdu.md`.

use std::io::{BufRead, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use crate::pdu::gsm7::{NationalLanguage, Tables};
use crate::pdu::{
    decode_hex, encode_submit, json, Address, DecodeOptions, Direction, MessageClass,
    SubmitOptions, Timestamp, ValidityPeriod,
};

/// Arguments of `smsgate pdu`.
#[derive(Debug, clap::Args)]
pub struct PduArgs {
    #[command(subcommand)]
    command: PduCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PduCommand {
    /// Decode PDUs (hex, as AT+CMGR/+CMGL/+CMT/+CDS print them) to JSON, one
    /// object per line. Reads one PDU per line from stdin when none is given.
    Decode(DecodeArgs),
    /// Encode a text as SMS-SUBMIT PDUs for AT+CMGS: one `<length> <hex>`
    /// line per part.
    Encode(EncodeArgs),
}

#[derive(Debug, clap::Args)]
struct DecodeArgs {
    /// The PDUs have no leading SMSC field (bare TPDUs).
    #[arg(long)]
    no_smsc: bool,
    /// Which way the PDUs travel: `at` (what a modem prints: MTI 0 deliver,
    /// 1 submit, 2 status report), `mt` (network to phone) or `mo` (phone to
    /// network).
    #[arg(long, default_value = "at", value_parser = parse_direction)]
    direction: Direction,
    /// National language tables to assume when a PDU's header names none
    /// (locking and single shift), e.g. `turkish`.
    #[arg(long, value_parser = parse_language)]
    tables: Option<NationalLanguage>,
    /// Hex PDUs.
    hex: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct EncodeArgs {
    /// Recipient; a leading `+` makes it international.
    #[arg(long)]
    to: String,
    /// The text; read from stdin when absent (one trailing newline removed).
    #[arg(long)]
    text: Option<String>,
    /// SMSC to put in the PDU (default: `00`, the SIM's).
    #[arg(long)]
    smsc: Option<String>,
    /// Request a status report (TP-SRR).
    #[arg(long)]
    report: bool,
    /// Class 0 (flash) message.
    #[arg(long)]
    flash: bool,
    /// Validity: a duration like `30m`, `6h`, `1d`, `2w` (relative format),
    /// or an RFC 3339 time (absolute format).
    #[arg(long)]
    validity: Option<String>,
    /// Write a duration validity in the enhanced format (TS 23.040
    /// §9.2.3.12.3) instead of the relative one.
    #[arg(long, requires = "validity")]
    enhanced_validity: bool,
    /// Ask the SC to reject a duplicate (TP-RD).
    #[arg(long)]
    reject_duplicates: bool,
    /// Use UCS-2 even if the text fits GSM 7-bit.
    #[arg(long)]
    ucs2: bool,
    /// Allow a national language shift table (repeatable): turkish,
    /// spanish, portuguese, bengali, gujarati, hindi, kannada, malayalam,
    /// oriya, punjabi, tamil, telugu, urdu.
    #[arg(long = "shift-table", value_parser = parse_language)]
    shift_table: Vec<NationalLanguage>,
    /// Concatenation reference for multipart messages (default: random).
    #[arg(long = "ref")]
    reference: Option<u16>,
    /// Use a 16-bit concatenation reference.
    #[arg(long)]
    ref16: bool,
    /// TP-MR to write (most modems replace it).
    #[arg(long, default_value_t = 0)]
    mr: u8,
}

fn parse_direction(s: &str) -> Result<Direction, String> {
    match s {
        "at" => Ok(Direction::AtInterface),
        "mt" => Ok(Direction::MobileTerminated),
        "mo" => Ok(Direction::MobileOriginated),
        _ => Err(format!("{s:?}: expected at, mt or mo")),
    }
}

fn parse_language(s: &str) -> Result<NationalLanguage, String> {
    NationalLanguage::from_name(&s.to_ascii_lowercase())
        .ok_or_else(|| format!("{s:?} is not a national language table"))
}

/// Parses `30m`, `6h`, `1d`, `2w`, `90s` (or several, `1d12h`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(format!("{s:?}: unknown unit {c:?} (use s, m, h, d, w)")),
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?}: a number must precede {c:?}"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{s:?}: too long"))?;
        num.clear();
    }
    if !num.is_empty() || total == 0 {
        return Err(format!("{s:?}: expected a duration like 30m, 6h, 1d, 2w"));
    }
    Ok(Duration::from_secs(total))
}

fn parse_validity(s: &str, enhanced: bool) -> Result<ValidityPeriod, String> {
    if let Ok(dt) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(ValidityPeriod::Absolute(Timestamp::from_datetime(dt)));
    }
    let d = parse_duration(s)?;
    Ok(if enhanced {
        ValidityPeriod::enhanced_from(d)
    } else {
        ValidityPeriod::relative_from(d)
    })
}

fn decode(args: DecodeArgs) -> ExitCode {
    let opts = DecodeOptions {
        direction: args.direction,
        smsc: !args.no_smsc,
        tables: args.tables.map_or_else(Tables::default, |l| Tables {
            locking: l,
            single: l,
        }),
    };
    let inputs: Vec<String> = if args.hex.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .filter(|l| !l.trim().is_empty())
            .collect()
    } else {
        args.hex
    };
    let many = inputs.len() > 1;
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for (n, hex) in inputs.iter().enumerate() {
        match decode_hex(hex, opts) {
            Ok(pdu) => {
                if writeln!(out, "{}", json::to_json(&pdu)).is_err() {
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                failed = true;
                tracing::debug!(pdu = %hex, error = %e, "undecodable PDU");
                if many {
                    eprintln!("error: PDU {}: {e}", n + 1);
                } else {
                    eprintln!("error: {e}");
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn encode(args: EncodeArgs) -> Result<Vec<String>, String> {
    let to = Address::parse_number(&args.to).map_err(|e| format!("--to: {e}"))?;
    let smsc = args
        .smsc
        .as_deref()
        .map(Address::parse_number)
        .transpose()
        .map_err(|e| format!("--smsc: {e}"))?;
    let validity = args
        .validity
        .as_deref()
        .map(|v| parse_validity(v, args.enhanced_validity))
        .transpose()
        .map_err(|e| format!("--validity: {e}"))?;
    if let Some(r) = args.reference {
        if !args.ref16 && r > 255 {
            return Err(format!(
                "--ref {r} needs --ref16 (8-bit references are 0..=255)"
            ));
        }
    }
    let text = match args.text {
        Some(t) => t,
        None => {
            let mut t = String::new();
            std::io::stdin()
                .read_to_string(&mut t)
                .map_err(|e| format!("reading the text from stdin: {e}"))?;
            if t.ends_with('\n') {
                t.pop();
                if t.ends_with('\r') {
                    t.pop();
                }
            }
            t
        }
    };
    let reference = args.reference.unwrap_or_else(|| {
        if args.ref16 {
            rand::random::<u16>()
        } else {
            u16::from(rand::random::<u8>())
        }
    });
    let opts = SubmitOptions {
        smsc,
        status_report: args.report,
        class: args.flash.then_some(MessageClass::Class0),
        validity,
        reject_duplicates: args.reject_duplicates,
        force_ucs2: args.ucs2,
        national: args.shift_table,
        reference,
        ref16: args.ref16,
        message_reference: args.mr,
    };
    let parts = encode_submit(&to, &text, &opts).map_err(|e| e.to_string())?;
    Ok(parts.iter().map(ToString::to_string).collect())
}

/// Runs `smsgate pdu`.
pub fn run(args: PduArgs) -> ExitCode {
    match args.command {
        PduCommand::Decode(a) => decode(a),
        PduCommand::Encode(a) => match encode(a) {
            Ok(lines) => {
                let mut out = std::io::stdout().lock();
                for l in lines {
                    if writeln!(out, "{l}").is_err() {
                        return ExitCode::FAILURE;
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(129_600)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("0m").is_err());
        assert!(parse_duration("99999999999999999999w").is_err());
    }

    #[test]
    fn validity_forms() {
        assert_eq!(
            parse_validity("4d", false),
            Ok(ValidityPeriod::Relative(170))
        );
        assert!(matches!(
            parse_validity("2026-01-02T03:04:05+01:00", false),
            Ok(ValidityPeriod::Absolute(_))
        ));
        assert!(matches!(
            parse_validity("90s", true),
            Ok(ValidityPeriod::Enhanced(_))
        ));
    }
}
