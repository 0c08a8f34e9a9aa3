//! Load generator for the whole pipeline (not a criterion benchmark: it
//! prints figures). N instant simulated modems in-process, on real
//! pseudo-terminals, a durable SQLite store (`synchronous = FULL`) in a
//! temporary directory, and the engine between them.
//!
//! * baseline: M messages straight through `ModemHandle::send`, N modems
//!   in parallel, no store;
//! * outbound: M messages through `Engine::send` (committed) until the
//!   store says every part was sent;
//! * inbound: K messages injected one at a time; latency from the
//!   injection request to the store's commit (p50/p99);
//! * CPU time per message (getrusage, the simulator included) and peak RSS
//!   (VmHWM).
//!
//! `PIPELINE_MODEMS=4 PIPELINE_MESSAGES=2000 PIPELINE_INBOUND=300
//! cargo bench --bench pipeline`

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};
use smsgate::daemon::engine::{Engine, EngineConfig, OutboundRequest};
use smsgate::modem::{self, ModemConfig, RejectedPins};
use smsgate::pdu::{encode_submit, Address, SubmitOptions};
use smsgate::sim::runtime::{self, SimConfig};
use smsgate::store::{InboundId, Store, StoreConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(120);
const OUTSIDE: &str = "+4915112345678";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU time of the process so far.
fn cpu() -> Duration {
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

/// Peak resident set size in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn modem_config(dir: &Path, k: usize) -> ModemConfig {
    let mut c = ModemConfig::new(format!("m{k}"), dir.join(format!("modem{k}")));
    c.queue = 256;
    c
}

/// One request to the simulator's control socket.
async fn control(dir: &Path, line: String) {
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let n = env("PIPELINE_MODEMS", 4).max(1);
    let m = env("PIPELINE_MESSAGES", 2000).max(1);
    let k = env("PIPELINE_INBOUND", 300).max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let sim = rt.spawn(runtime::run(
        SimConfig {
            seed: 7,
            pin: None,
            latency: Duration::ZERO,
            report_delay: Duration::from_millis(500),
            numbers: (0..n).map(|i| format!("+1555{i:07}")).collect(),
            profile: smsgate::hardware::builtin_profile("generic").expect("profile"),
            dir: dir.path().to_path_buf(),
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
    println!("pipeline: {n} modems, {m} outbound messages, {k} inbound messages");

    // ---- baseline: the actors alone
    let pdu = encode_submit(
        &Address::parse_number(OUTSIDE).expect("number"),
        "benchmark",
        &SubmitOptions::default(),
    )
    .expect("encode");
    let (base_rate, base_cpu) = rt.block_on(async {
        let rejected = RejectedPins::new();
        let mut handles = Vec::new();
        for i in 0..n {
            let (h, mut ev) =
                modem::spawn(modem_config(dir.path(), i), rejected.clone()).expect("actor");
            // Drained, nothing committed: the baseline measures sending.
            tokio::spawn(async move { while ev.recv().await.is_some() {} });
            let mut w = h.watch();
            tokio::time::timeout(WAIT, w.wait_for(|s| s.state == "ready"))
                .await
                .expect("ready in time")
                .expect("actor alive");
            handles.push(h);
        }
        let (t0, c0) = (Instant::now(), cpu());
        let tasks: Vec<_> = handles
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let (h, pdu) = (h.clone(), pdu.clone());
                let share = m / n + usize::from(i < m % n);
                tokio::spawn(async move {
                    for _ in 0..share {
                        h.send(pdu.clone()).await.expect("sent");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        let (dt, dc) = (t0.elapsed(), cpu() - c0);
        for h in &handles {
            h.shutdown().await;
        }
        (m as f64 / dt.as_secs_f64(), dc / m as u32)
    });
    println!(
        "baseline (ModemHandle::send, no store): {base_rate:.0} msg/s, {:.0} µs CPU/msg",
        base_cpu.as_secs_f64() * 1e6
    );

    // ---- the engine
    let store = rt
        .block_on(Store::open_async(StoreConfig::at(
            db.path().join("bench.db"),
        )))
        .expect("store");
    let (out_rate, out_cpu, lat) = rt.block_on(async {
        let engine = Engine::start(
            store,
            EngineConfig {
                queue_limit: u64::MAX,
                dispatch_batch: 64,
                ..EngineConfig::default()
            },
        );
        for i in 0..n {
            engine.add_modem(modem_config(dir.path(), i)).expect("add");
        }
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
        // Outbound: 32 clients submitting concurrently.
        let (t0, c0) = (Instant::now(), cpu());
        let clients: Vec<_> = (0..32)
            .map(|c| {
                let engine = engine.clone();
                tokio::spawn(async move {
                    let mut i = c;
                    while i < m {
                        engine
                            .send(OutboundRequest {
                                to: OUTSIDE.into(),
                                text: format!("benchmark {i}"),
                                ..OutboundRequest::default()
                            })
                            .await
                            .expect("queued");
                        i += 32;
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.expect("client");
        }
        let queued_in = t0.elapsed();
        let mut cursor = engine.store().subscribe();
        loop {
            let s = engine.store().stats().await.expect("stats");
            if s.parts_queued + s.parts_sending == 0 {
                break;
            }
            assert!(t0.elapsed() < WAIT * 5, "outbound did not drain: {s:?}");
            let _ = tokio::time::timeout(Duration::from_millis(50), cursor.changed()).await;
        }
        let (dt, dc) = (t0.elapsed(), cpu() - c0);
        println!(
            "engine outbound: all {m} committed in {:.2} s, all sent in {:.2} s",
            queued_in.as_secs_f64(),
            dt.as_secs_f64()
        );
        // Inbound latency, one message at a time.
        let mut lat = Vec::with_capacity(k);
        let mut last = InboundId(0);
        for i in 0..k {
            let modem = i % n;
            let t0 = Instant::now();
            control(
                dir.path(),
                format!(
                    r#"{{"op":"inject","modem":{modem},"from":"{OUTSIDE}","text":"inbound {i}"}}"#
                ),
            )
            .await;
            loop {
                let got = engine
                    .store()
                    .inbound_since(last, 10)
                    .await
                    .expect("inbound");
                if let Some(msg) = got.last() {
                    last = msg.id;
                    break;
                }
                assert!(t0.elapsed() < WAIT, "inbound {i} never committed");
                let _ = tokio::time::timeout(Duration::from_millis(50), cursor.changed()).await;
            }
            lat.push(t0.elapsed());
        }
        engine.shutdown(Duration::from_secs(5)).await;
        engine.store().clone().close().await;
        (m as f64 / dt.as_secs_f64(), dc / m as u32, lat)
    });
    let mut lat = lat;
    lat.sort();
    println!(
        "engine outbound (enqueue -> sent, durable): {out_rate:.0} msg/s, {:.0} µs CPU/msg",
        out_cpu.as_secs_f64() * 1e6
    );
    println!(
        "inbound latency (inject -> committed): p50 {:.1} ms, p99 {:.1} ms",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "ratios: engine/baseline throughput {:.2}, CPU per message {:.2}x",
        out_rate / base_rate,
        out_cpu.as_secs_f64() / base_cpu.as_secs_f64().max(1e-9)
    );
    println!("peak RSS: {} KiB", peak_rss_kib());
    let _ = stop_tx.send(());
    let _ = rt.block_on(sim);
}
