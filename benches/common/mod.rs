//! Helpers shared by the load generators (`pipeline`, `scale`, `restore`,
//! `modem`): process
//! CPU and memory figures, the simulator's control socket, the engine's
//! readiness and drain waits.

#![allow(dead_code)] // each bench uses its own subset

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};
use smsgate::daemon::engine::{Engine, EngineConfig};
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

/// Writes finished history straight into a store's tables inside `tx`:
/// `out` outbound messages (sent or delivered, one part each, 5000
/// recipients) and `inb` acknowledged inbound messages (5000 senders),
/// one per millisecond up to `now`, from modem `m0`. Direct SQL: a million
/// rows through the store's API would take an hour.
pub fn fill_history(tx: &rusqlite::Transaction<'_>, out: i64, inb: i64, now: i64) {
    tx.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO out_messages (id, recipient, text, client, modem, state, parts_total,
                                   created_ms, updated_ms, send_at_ms)
         SELECT i, '+49151' || (1000000 + i % 5000), 'old message ' || i, 'bench', 'm0',
                CASE WHEN i % 3 = 0 THEN 'delivered' ELSE 'sent' END, 1,
                ?2 - (?1 - i), ?2 - (?1 - i), ?2 - (?1 - i) FROM n",
        rusqlite::params![out, now],
    )
    .expect("out_messages");
    tx.execute(
        "INSERT INTO out_parts (id, message_id, seq, payload, recipient_digits, state, attempts,
                                next_attempt_ms, modem, mr, sent_ms)
         SELECT id, id, 1, x'0001000b911905111532f40000', '4915111532', state, 1,
                created_ms, modem, id % 256, created_ms FROM out_messages",
        [],
    )
    .expect("out_parts");
    tx.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO in_messages (id, modem, sender, scts_ms, received_ms, completed_ms, text,
                                  parts_total, parts_received, bus_state)
         SELECT i, 'm0', '+49160' || (1000000 + i % 5000), ?2 - (?1 - i), ?2 - (?1 - i),
                ?2 - (?1 - i), 'old inbound ' || i, 1, 1, 2 FROM n",
        rusqlite::params![inb, now],
    )
    .expect("in_messages");
}

/// The engine as the load generators run it: no queue limit (the bench
/// measures the pipeline, not admission), dispatch rounds of 64. Inside
/// the runtime: it spawns its tasks.
pub fn start_engine(store: smsgate::store::Store) -> Engine {
    Engine::start(
        store,
        EngineConfig {
            queue_limit: u64::MAX,
            dispatch_batch: 64,
            ..EngineConfig::default()
        },
    )
}
