//! `smsgate udev-rules [--output FILE]`: prints the udev rules generated
//! from the built-in modem profiles (see [`crate::udev`], `docs/install.md`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `smsgate udev-rules`.
#[derive(Debug, clap::Args)]
pub struct UdevArgs {
    /// Write the rules to this file (replaced atomically) instead of stdout,
    /// e.g. `/etc/udev/rules.d/70-smsgate.rules` or `udev/70-smsgate.rules`.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// Runs `smsgate udev-rules`: 0 on success, 1 when the rules cannot be
/// generated or written (with the reason on stderr).
pub fn run(args: UdevArgs) -> ExitCode {
    let rules = match crate::udev::builtin_rules() {
        Ok(rules) => rules,
        Err(e) => {
            eprintln!("smsgate udev-rules: {e}");
            return ExitCode::FAILURE;
        }
    };
    let written = match &args.output {
        Some(path) => write_file(path, &rules),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(rules.as_bytes()).and_then(|()| out.flush())
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let target = args
                .output
                .as_deref()
                .map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
            eprintln!("smsgate udev-rules: cannot write {target}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes via a temporary file in the same directory and a rename, so udev
/// (which re-reads rules files on change) never sees half a file.
fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    crate::atomic::write(path, text.as_bytes(), None)
}
