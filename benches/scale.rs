//! Scale load generator (issue 7, "Scale"; not a criterion benchmark: it
//! prints figures). Everything in-process on real pseudo-terminals: the
//! simulator, the engine, a durable store file and the bus socket with
//! `SCALE_SUBSCRIBERS` subscribed clients reading every event.
//!
//! 1. throughput: for 1, 8, 64 instant modems, `SCALE_MESSAGES` messages
//!    queued through `Engine::send` until the store says all were sent:
//!    msg/s, CPU per message (getrusage, simulator included), RSS; then
//!    8 modems with the subscribers (`SCALE_SUB_MESSAGES`);
//! 2. utilisation: the same modem counts with a 2 s send time
//!    (`SimConfig::send_time`), `SCALE_PER_MODEM` messages per modem
//!    queued at once, with and without the subscribers. Two clocks: the
//!    fraction of modem time spent sending while a backlog exists (from the
//!    last enqueue, when every message is queued, to the last send's start,
//!    after which no message waits; each send is the 2 s before its
//!    `sent_ms`), and end to end (sent × 2 s over modems × the time from
//!    the first enqueue to the last commit);
//! 3. idle: 8 modems, the subscribers, nothing to send, 10 s of CPU;
//! 4. a store of `SCALE_MILLION` messages made with direct SQL, against an
//!    empty one in the same run: send latency (`send` → sent), receive
//!    latency (injection → committed), `outbound_status` and `stats`.
//!
//! `cargo bench --profile dev --bench scale` (see docs/benchmarks.md).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{control, cpu, env, modem_config, percentile, status_kib, wait_drained, wait_ready};
use common::{OUTSIDE, WAIT};
use smsgate::bus::{BusConfig, Server};
use smsgate::daemon::engine::{Engine, OutboundRequest};
use smsgate::store::{InboundId, MessageId, MessageState, Store, StoreConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

const SEND_TIME: Duration = Duration::from_secs(2);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The engine on a fresh store file, the bus on `dir/bus.sock` with
/// `subscribers` clients that subscribed to every event and drain them.
async fn start(db: &Path, dir: &Path, subscribers: usize) -> (Engine, Server) {
    let store = Store::open_async(StoreConfig::at(db)).await.expect("store");
    let engine = common::start_engine(store);
    let socket = dir.join("bus.sock");
    let _ = std::fs::remove_file(&socket);
    let server = Server::bind(
        BusConfig {
            socket: socket.clone(),
            group: None,
            ..BusConfig::default()
        },
        engine.clone(),
    )
    .await
    .expect("bus");
    for c in 0..subscribers {
        let stream = UnixStream::connect(&socket).await.expect("bus socket");
        let (r, mut w) = stream.into_split();
        let hello = format!(
            "{{\"op\":\"hello\",\"id\":1,\"client\":\"sub{c}\"}}\n{{\"op\":\"subscribe\",\"id\":2}}\n"
        );
        w.write_all(hello.as_bytes()).await.expect("subscribe");
        let mut lines = BufReader::new(r).lines();
        // Wait for the subscribe answer so every client is live before
        // the measurement starts.
        while let Some(l) = lines.next_line().await.expect("bus line") {
            if l.contains("\"op\":\"subscribe\"") {
                assert!(l.contains("\"ok\":true"), "{l}");
                break;
            }
        }
        tokio::spawn(async move {
            let _keep = w;
            while let Ok(Some(_)) = lines.next_line().await {}
        });
    }
    (engine, server)
}

async fn stop(engine: Engine, server: Server) {
    server.shutdown().await;
    engine.shutdown(Duration::from_secs(5)).await;
    engine.store().clone().close().await;
}

/// Sends `m` messages through `n` modems; (msg/s, CPU per message, RSS KiB).
async fn throughput(sim: &Path, n: usize, m: usize, subs: usize) -> (f64, Duration, u64) {
    let db = tempfile::tempdir().expect("tempdir");
    let (engine, server) = start(&db.path().join("scale.db"), db.path(), subs).await;
    for i in 0..n {
        engine.add_modem(modem_config(sim, i)).expect("add");
    }
    wait_ready(&engine, n).await;
    let (t0, c0) = (Instant::now(), cpu());
    common::enqueue(&engine, m, 32).await;
    wait_drained(&engine, WAIT * 5).await;
    let (dt, dc) = (t0.elapsed(), cpu() - c0);
    let rss = status_kib("VmRSS:");
    stop(engine, server).await;
    (m as f64 / dt.as_secs_f64(), dc / m as u32, rss)
}

/// What a utilisation run measured.
struct Utilisation {
    /// Fraction of modem time spent sending while a backlog existed.
    backlog: f64,
    /// How long that window was.
    window: Duration,
    /// Sent × [`SEND_TIME`] over modems × (first enqueue → last commit).
    end_to_end: f64,
    /// First enqueue → last commit.
    drained: Duration,
}

/// `k` messages per modem, each `+CMGS` taking [`SEND_TIME`].
async fn utilisation(sim: &Path, n: usize, k: usize, subs: usize) -> Utilisation {
    let db = tempfile::tempdir().expect("tempdir");
    let file = db.path().join("scale.db");
    let (engine, server) = start(&file, db.path(), subs).await;
    for i in 0..n {
        engine.add_modem(modem_config(sim, i)).expect("add");
    }
    wait_ready(&engine, n).await;
    let t0 = Instant::now();
    common::enqueue(&engine, n * k, 32).await;
    // From here every message is queued: a backlog exists until the
    // last one is taken by a modem.
    let queued_ms = smsgate::store::now_ms();
    wait_drained(&engine, WAIT).await;
    let drained = t0.elapsed();
    stop(engine, server).await;
    let send_ms = SEND_TIME.as_millis() as i64;
    let sends = sent_times(&file);
    // The simulator answers `+CMGS` after SEND_TIME and the engine
    // records `sent_ms` right after: each send is the SEND_TIME before it.
    let last_start = sends
        .iter()
        .map(|(_, t)| t - send_ms)
        .max()
        .unwrap_or(queued_ms);
    let (from, to) = (queued_ms, last_start.max(queued_ms + 1));
    let busy: i64 = sends
        .iter()
        .map(|(_, t)| ((*t).min(to) - (t - send_ms).max(from)).max(0))
        .sum();
    let modems = sends
        .iter()
        .map(|(m, _)| m.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len();
    assert_eq!(modems, n, "every modem sent");
    Utilisation {
        backlog: busy as f64 / (n as i64 * (to - from)) as f64,
        window: Duration::from_millis((to - from) as u64),
        end_to_end: (SEND_TIME * k as u32).as_secs_f64() / drained.as_secs_f64(),
        drained,
    }
}

/// Every part's modem and `sent_ms`, read from the closed store file.
fn sent_times(db: &Path) -> Vec<(String, i64)> {
    let c = rusqlite::Connection::open(db).expect("sqlite");
    let mut st = c
        .prepare("SELECT modem, sent_ms FROM out_parts WHERE sent_ms IS NOT NULL")
        .expect("query");
    let rows = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .expect("rows");
    rows.collect::<Result<_, _>>().expect("rows")
}

/// Writes `total` finished messages straight into the store file: 80 %
/// outbound (sent or delivered, one part each), 20 % inbound (acked).
fn fill(db: &Path, total: usize) -> i64 {
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let out = (total * 4 / 5) as i64;
    let inb = total as i64 - out;
    let mut c = rusqlite::Connection::open(db).expect("sqlite");
    let tx = c.transaction().expect("tx");
    // Spread over the last ~11 days, newest last; retention keeps them.
    common::fill_history(&tx, out, inb, now);
    tx.execute(
        "INSERT INTO in_parts (scope, modem, sender, scts_ms, text, pdu, received_ms, message_id)
         SELECT 'modem:m0', modem, sender, scts_ms, text, CAST(printf('old%d', id) AS BLOB),
                received_ms, id FROM in_messages",
        [],
    )
    .expect("in_parts");
    tx.commit().expect("commit");
    inb
}

/// Latency samples against one store: send (`send` → sent), receive
/// (injection → committed), `outbound_status`, `stats`. `old_inbound` is
/// the newest inbound id the store had before the first pass; `pass`
/// tags the injected texts so passes do not see each other's.
async fn latencies(
    sim: &Path,
    db: &Path,
    old_inbound: i64,
    pass: usize,
    samples: usize,
) -> ([Vec<Duration>; 4], Duration) {
    let (engine, server) = start(db, db.parent().expect("dir"), 0).await;
    engine.add_modem(modem_config(sim, 0)).expect("add");
    wait_ready(&engine, 1).await;
    let store = engine.store().clone();
    let mut cursor = store.subscribe();
    let (mut send, mut recv, mut status, mut stats) = (vec![], vec![], vec![], vec![]);
    let mut ids: Vec<MessageId> = Vec::new();
    // The first send after opening waits for start-up work (the router's
    // history rebuild): reported apart, not mixed into the steady state.
    let mut first = Duration::ZERO;
    for i in 0..=samples {
        let t0 = Instant::now();
        let id = engine
            .send(OutboundRequest {
                to: OUTSIDE.into(),
                text: format!("latency {i}"),
                ..OutboundRequest::default()
            })
            .await
            .expect("queued")
            .id;
        loop {
            let s = store.outbound_status(id).await.expect("status");
            if s.state == MessageState::Sent {
                break;
            }
            assert!(t0.elapsed() < WAIT, "message {i} not sent");
            let _ = tokio::time::timeout(Duration::from_millis(50), cursor.changed()).await;
        }
        if i == 0 {
            first = t0.elapsed();
        } else {
            send.push(t0.elapsed());
        }
        ids.push(id);
    }
    let mut last = InboundId(old_inbound);
    for i in 0..samples {
        let t0 = Instant::now();
        control(
            sim,
            format!(r#"{{"op":"inject","modem":0,"from":"{OUTSIDE}","text":"in {pass}-{i}"}}"#),
        )
        .await;
        loop {
            let got = store.inbound_since(last, 1000).await.expect("inbound");
            if let Some(msg) = got
                .iter()
                .find(|m| m.text.as_deref() == Some(&*format!("in {pass}-{i}")))
            {
                last = msg.id;
                break;
            }
            if let Some(msg) = got.last() {
                last = msg.id;
            }
            assert!(t0.elapsed() < WAIT, "inbound {i} never committed");
            let _ = tokio::time::timeout(Duration::from_millis(50), cursor.changed()).await;
        }
        recv.push(t0.elapsed());
    }
    for i in 0..samples {
        let id = ids
            .get(i % ids.len().max(1))
            .copied()
            .unwrap_or(MessageId(1));
        let t0 = Instant::now();
        store.outbound_status(id).await.expect("status");
        status.push(t0.elapsed());
        let t0 = Instant::now();
        store.stats().await.expect("stats");
        stats.push(t0.elapsed());
    }
    stop(engine, server).await;
    ([send, recv, status, stats], first)
}

fn main() {
    let m = env("SCALE_MESSAGES", 10_000).max(1);
    let k = env("SCALE_PER_MODEM", 5).max(1);
    let subs = env("SCALE_SUBSCRIBERS", 100);
    let million = env("SCALE_MILLION", 1_000_000).max(10);
    let samples = env("SCALE_SAMPLES", 100).max(1);
    let counts: Vec<usize> = std::env::var("SCALE_MODEMS")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 8, 64]);
    let phases = std::env::var("SCALE_PHASES").unwrap_or_else(|_| "modems,idle,store".into());
    let most = counts.iter().copied().max().unwrap_or(1).max(8);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fast_dir = tempfile::tempdir().expect("tempdir");
    let slow_dir = tempfile::tempdir().expect("tempdir");
    let fast = common::start_sim(&rt, fast_dir.path(), most, Duration::ZERO);
    let slow = common::start_sim(&rt, slow_dir.path(), most, SEND_TIME);
    println!(
        "scale: modems {counts:?}, {m} messages, {subs} bus subscribers, \
         {k} messages per modem at {} s per send, store of {million}",
        SEND_TIME.as_secs()
    );

    if phases.contains("modems") {
        println!(
            "| modems | msg/s (instant) | CPU µs/msg | RSS MiB | utilisation while a backlog \
             exists, 2 s sends, {subs} subscribers (window) | same, no subscribers | end to end, \
             {subs} subscribers (drained in) | end to end, no subscribers |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
        for &n in &counts {
            let (rate, per, rss) = rt.block_on(throughput(fast_dir.path(), n, m, 0));
            let util = rt.block_on(utilisation(slow_dir.path(), n, k, subs));
            let bare = rt.block_on(utilisation(slow_dir.path(), n, k, 0));
            println!(
                "| {n} | {rate:.0} | {:.0} | {:.1} | {:.1} % ({:.1} s) | {:.1} % ({:.1} s) \
                 | {:.1} % ({:.2} s, ideal {} s) | {:.1} % |",
                per.as_secs_f64() * 1e6,
                rss as f64 / 1024.0,
                util.backlog * 100.0,
                util.window.as_secs_f64(),
                bare.backlog * 100.0,
                bare.window.as_secs_f64(),
                util.end_to_end * 100.0,
                util.drained.as_secs_f64(),
                SEND_TIME.as_secs() * k as u64,
                bare.end_to_end * 100.0
            );
        }

        // The bus fan-out: the same messages without and with every
        // subscriber reading every event.
        let sub_m = env("SCALE_SUB_MESSAGES", 300).max(1);
        for s in [0, subs] {
            let (rate, per, rss) = rt.block_on(throughput(fast_dir.path(), 8, sub_m, s));
            println!(
                "{s} bus subscribers, 8 instant modems, {sub_m} messages: {rate:.0} msg/s, \
                 {:.0} µs CPU/msg, RSS {:.1} MiB",
                per.as_secs_f64() * 1e6,
                rss as f64 / 1024.0
            );
        }
    }

    // Idle: 8 ready modems, the subscribers, nothing to do.
    if phases.contains("idle") {
        let idle = rt.block_on(async {
            let db = tempfile::tempdir().expect("tempdir");
            let (engine, server) = start(&db.path().join("idle.db"), db.path(), subs).await;
            for i in 0..8 {
                engine
                    .add_modem(modem_config(fast_dir.path(), i))
                    .expect("add");
            }
            wait_ready(&engine, 8).await;
            // Let start-up work (first probes, sweeps) finish.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let c0 = cpu();
            tokio::time::sleep(Duration::from_secs(10)).await;
            let dc = cpu() - c0;
            let rss = status_kib("VmRSS:");
            stop(engine, server).await;
            (dc, rss)
        });
        println!(
        "idle, 8 modems + {subs} subscribers, 10 s: {:.1} ms CPU ({:.3} % of one core), RSS {:.1} MiB",
        ms(idle.0),
        idle.0.as_secs_f64() / 10.0 * 100.0,
        idle.1 as f64 / 1024.0
    );
    }

    // The million-message store against an empty one, same run.
    if phases.contains("store") {
        let dbs = tempfile::tempdir().expect("tempdir");
        let empty = dbs.path().join("empty").join("store.db");
        let full = dbs.path().join("full").join("store.db");
        for p in [&empty, &full] {
            std::fs::create_dir_all(p.parent().expect("dir")).expect("dir");
            rt.block_on(async {
                Store::open_async(StoreConfig::at(p))
                    .await
                    .expect("store")
                    .close()
                    .await;
            });
        }
        let t = Instant::now();
        let old_inbound = fill(&full, million);
        let size = std::fs::metadata(&full).map(|m| m.len()).unwrap_or(0);
        println!(
            "store of {million} messages written in {:.1} s ({:.0} MiB)",
            t.elapsed().as_secs_f64(),
            size as f64 / 1048576.0
        );
        // Alternate the stores, two passes each, so warm-up and drift hit
        // both alike.
        let t = Instant::now();
        let (mut e, mut f): (Vec<Vec<Duration>>, Vec<Vec<Duration>>) =
            (vec![vec![]; 4], vec![vec![]; 4]);
        for pass in 0..4 {
            let (db, old, into) = if pass % 2 == 0 {
                (&empty, 0, &mut e)
            } else {
                (&full, old_inbound, &mut f)
            };
            let (got, first) =
                rt.block_on(latencies(fast_dir.path(), db, old, pass, samples / 2 + 1));
            println!(
                "first send after opening the {} store: {:.0} ms",
                if pass % 2 == 0 { "empty" } else { "full" },
                ms(first)
            );
            for (v, g) in into.iter_mut().zip(got) {
                v.extend(g);
            }
        }
        for v in e.iter_mut().chain(f.iter_mut()) {
            v.sort();
        }
        let pick = |v: &[Vec<Duration>]| {
            [
                percentile(&v[0], 0.5),
                percentile(&v[0], 0.99),
                percentile(&v[1], 0.5),
                percentile(&v[1], 0.99),
                percentile(&v[2], 0.5),
                percentile(&v[3], 0.5),
            ]
        };
        let (e, f) = (pick(&e), pick(&f));
        println!("latencies measured in {:.1} s", t.elapsed().as_secs_f64());
        println!("| {samples} samples | empty store | {million} messages | ratio |");
        println!("|---|---:|---:|---:|");
        let names = [
            "send → sent p50",
            "send → sent p99",
            "inject → committed p50",
            "inject → committed p99",
            "status (one message) p50",
            "stats p50",
        ];
        for (i, name) in names.iter().enumerate() {
            println!(
                "| {name} | {:.2} ms | {:.2} ms | {:.2} |",
                ms(e[i]),
                ms(f[i]),
                f[i].as_secs_f64() / e[i].as_secs_f64().max(1e-9)
            );
        }
    }
    println!(
        "peak RSS: {:.1} MiB",
        common::peak_rss_kib() as f64 / 1024.0
    );
    for sim in [fast, slow] {
        let _ = sim.stop.send(());
        let _ = rt.block_on(sim.task);
    }
}
