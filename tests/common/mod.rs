//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

pub mod daemon;
pub mod pty;

/// The real-world corpus (`../shared/corpus`, or `$SMSGATE_CORPUS`), or
/// `None` after printing a visible notice that `what` is skipped.
pub fn corpus(what: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("SMSGATE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {what}: corpus not found at {} (set SMSGATE_CORPUS)",
            dir.display()
        );
        None
    }
}

/// Whether an outside program is on PATH; prints a visible notice if not.
pub fn have_program(name: &str, what: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    if !found {
        eprintln!("SKIPPED: {what}: `{name}` is not installed");
    }
    found
}

/// The first line `child` prints on its stdout (a daemon's "ready" line),
/// waiting at most `wait`; the rest of stdout is drained in the background
/// so the child never blocks on a full pipe. `None` on timeout or EOF.
pub fn first_stdout_line(
    child: &mut std::process::Child,
    wait: std::time::Duration,
) -> Option<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    rx.recv_timeout(wait).ok()
}

/// Polls `f` every 50 ms until it returns `Some`, failing the test after
/// `wait` with `what` in the message.
pub fn wait_for<T>(wait: std::time::Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + wait;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The JSON lines a successful command printed (`smsgate sim ctl ...`);
/// panics with its stderr when it failed.
pub fn json_lines(what: &str, out: std::process::Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
