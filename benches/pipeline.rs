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

mod common;

use std::time::{Duration, Instant};

use common::{control, cpu, env, modem_config, peak_rss_kib, percentile, wait_drained, wait_ready};
use common::{OUTSIDE, WAIT};
use smsgate::modem::{self, RejectedPins};
use smsgate::pdu::{encode_submit, Address, SubmitOptions};
use smsgate::store::{InboundId, Store, StoreConfig};

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
    let sim = common::start_sim(&rt, dir.path(), n, Duration::ZERO);
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
        let engine = common::start_engine(store);
        for i in 0..n {
            engine.add_modem(modem_config(dir.path(), i)).expect("add");
        }
        wait_ready(&engine, n).await;
        // Outbound: 32 clients submitting concurrently.
        let (t0, c0) = (Instant::now(), cpu());
        common::enqueue(&engine, m, 32).await;
        let queued_in = t0.elapsed();
        wait_drained(&engine, WAIT * 5).await;
        let mut cursor = engine.store().subscribe();
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
    let _ = sim.stop.send(());
    let _ = rt.block_on(sim.task);
}
