//! Helpers shared by the load generators (`pipeline`, `scale`): process
//! CPU and memory figures, the simulator's control socket, the engine's
//! readiness and drain waits.

#![allow(dead_code)] // each bench uses its own subset

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};
use smsgate::daemon::engine::Engine;
use smsgate::modem::ModemConfig;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// How long any single wait of a bench may take before it gives up.
pub const WAIT: Duration = Duration::from_secs(120);
/// The recipient of every benchmark message (outside the simulator).
pub const OUTSIDE: &str = "+4915112345678";

/// A size from the environment, or `default`.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU time of the process so far.
pub fn cpu() -> Duration {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| {
                Duration::from_secs(tv.tv_sec().max(0) as u64)
                    + Duration::from_micros(tv.tv_usec().max(0) as u64)
            };
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// A field of `/proc/self/status` in KiB (`VmHWM` peak, `VmRSS` now).
pub fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Peak resident set size in KiB.
pub fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// The actor settings for simulated modem `k` in `dir`.
pub fn modem_config(dir: &Path, k: usize) -> ModemConfig {
    let mut c = ModemConfig::new(format!("m{k}"), dir.join(format!("modem{k}")));
    c.queue = 256;
    c
}

/// One request to the simulator's control socket.
pub async fn control(dir: &Path, line: String) {
    let stream = UnixStream::connect(dir.join("sim.sock"))
        .await
        .expect("sim socket");
    let (r, mut w) = stream.into_split();
    w.write_all(line.as_bytes()).await.expect("write");
    w.write_all(b"\n").await.expect("write");
    let mut answer = String::new();
    BufReader::new(r)
        .read_line(&mut answer)
        .await
        .expect("answer");
    assert!(answer.contains("\"ok\":true"), "{answer}");
}

/// The `p` quantile (0..=1) of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Waits until `n` modems of the engine are `ready`.
pub async fn wait_ready(engine: &Engine, n: usize) {
    let t = Instant::now();
    while engine
        .modems()
        .iter()
        .filter(|v| v.snapshot.state == "ready")
        .count()
        < n
    {
        assert!(t.elapsed() < WAIT, "modems not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the store has nothing queued or sending (woken by commits,
/// re-checked every 50 ms), for at most `limit`.
pub async fn wait_drained(engine: &Engine, limit: Duration) {
    let t0 = Instant::now();
    let mut cursor = engine.store().subscribe();
    loop {
        let s = engine.store().stats().await.expect("stats");
        if s.parts_queued + s.parts_sending == 0 {
            return;
        }
        assert!(t0.elapsed() < limit, "outbound did not drain: {s:?}");
        let _ = tokio::time::timeout(Duration::from_millis(50), cursor.changed()).await;
    }
}

/// A running in-process simulator; dropping `stop` shuts it down.
pub struct Sim {
    /// Completing (or dropping) it stops the simulator.
    pub stop: tokio::sync::oneshot::Sender<()>,
    /// The simulator task.
    pub task: tokio::task::JoinHandle<Result<(), smsgate::sim::SimError>>,
}

/// Starts `n` simulated modems in `dir` (instant unless `send_time`
/// is set) on `rt` and waits until their links exist.
pub fn start_sim(rt: &tokio::runtime::Runtime, dir: &Path, n: usize, send_time: Duration) -> Sim {
    use smsgate::sim::runtime::{self, SimConfig};
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = rt.spawn(runtime::run(
        SimConfig {
            seed: 7,
            pin: None,
            latency: Duration::ZERO,
            send_time,
            report_delay: Duration::from_millis(500),
            numbers: (0..n).map(|i| format!("+1555{i:07}")).collect(),
            profile: smsgate::hardware::builtin_profile("generic").expect("profile"),
            dir: dir.to_path_buf(),
        },
        async {
            let _ = stop_rx.await;
        },
        |_| {
            let _ = ready_tx.send(());
        },
    ));
    rt.block_on(async { tokio::time::timeout(WAIT, ready_rx).await })
        .expect("simulator ready in time")
        .expect("simulator started");
    Sim { stop, task }
}

/// Queues `m` messages to [`OUTSIDE`] through `Engine::send` from
/// `clients` concurrent submitters; returns once all are committed.
pub async fn enqueue(engine: &Engine, m: usize, clients: usize) {
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut i = c;
                while i < m {
                    engine
                        .send(smsgate::daemon::engine::OutboundRequest {
                            to: OUTSIDE.into(),
                            text: format!("benchmark {i}"),
                            ..Default::default()
                        })
                        .await
                        .expect("queued");
                    i += clients;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client");
    }
}
