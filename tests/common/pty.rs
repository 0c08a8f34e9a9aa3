//! `smsgate sim` driven from async integration tests (the engine and the
//! modem actor): ports, `sim ctl` as JSON, and the modem's storage.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_smsgate");
/// The outside number injected messages come from.
pub const OUTSIDE: &str = "+4915112345678";

/// `smsgate sim` in a temporary directory, killed on drop.
pub struct Sim {
    child: Child,
    dir: tempfile::TempDir,
}

impl Sim {
    pub fn start(args: &[&str]) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let log = File::create(dir.path().join("sim.log")).unwrap();
        let mut child = Command::new(BIN)
            .args(["sim", "--dir"])
            .arg(dir.path())
            .args(args)
            .env("SMSGATE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert!(ready.contains("\"ready\":true"), "sim not ready: {ready}");
        Sim { child, dir }
    }

    pub fn port(&self, k: usize) -> PathBuf {
        self.dir.path().join(format!("modem{k}"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sim.log")).unwrap_or_default()
    }

    pub async fn ctl(&self, args: &[&str]) -> Vec<Value> {
        let out = tokio::process::Command::new(BIN)
            .args(["sim", "ctl", "--dir"])
            .arg(self.dir.path())
            .args(args)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "sim ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub async fn modem(&self, k: usize) -> Value {
        self.ctl(&["modems"]).await.swap_remove(k)
    }

    pub async fn number(&self, k: usize) -> String {
        self.modem(k).await["number"].as_str().unwrap().to_owned()
    }

    pub async fn imei(&self, k: usize) -> String {
        self.modem(k).await["imei"].as_str().unwrap().to_owned()
    }

    pub async fn iccid(&self, k: usize) -> String {
        self.modem(k).await["iccid"].as_str().unwrap().to_owned()
    }

    pub async fn stored(&self, k: usize) -> u64 {
        let m = self.modem(k).await;
        ["sm", "me", "sr"]
            .iter()
            .map(|s| m["storage"][s][0].as_u64().unwrap())
            .sum()
    }

    pub async fn inject(&self, k: usize, text: &str, extra: &[&str]) {
        let k = k.to_string();
        let mut args = vec!["inject", "--modem", &k, "--from", OUTSIDE, "--text", text];
        args.extend_from_slice(extra);
        self.ctl(&args).await;
    }

    /// Outbox entries with this text.
    pub async fn sent(&self, text: &str) -> Vec<Value> {
        self.ctl(&["outbox"])
            .await
            .into_iter()
            .filter(|m| m["text"] == text)
            .collect()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
