//! Store throughput on a real file with `synchronous = FULL`:
//! group commit (many concurrent requesters) against one transaction per
//! message, claim + mark sent, inbound commit, and a status query on a
//! store pre-filled with 100k messages.
//!
//! `cargo bench --bench store`

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures::future::join_all;
use smsgate::store::*;

const T0: i64 = 1_700_000_000_000;
const MODEM: &str = "356938035643809";
const CONCURRENT: usize = 64;

fn msg(i: usize) -> NewOutbound {
    NewOutbound {
        recipient: format!("+1555{:07}", i % 10_000_000),
        text: Some("benchmark message".into()),
        parts: vec![vec![
            0x01, 0x00, 0x0B, 0x91, 0x51, 0x55, 0x21, 0x43, 0x65, 0xF7,
        ]],
        ..Default::default()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(StoreConfig::at(dir.path().join("bench.db"))).expect("open store")
}

/// Fills the store with `n` single-part messages, in large group commits.
async fn fill(store: &Store, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(512) {
        join_all(chunk.iter().map(|&i| store.enqueue(msg(i), T0)))
            .await
            .into_iter()
            .for_each(|r| {
                r.expect("enqueue");
            });
    }
}

fn enqueue(c: &mut Criterion) {
    let rt = rt();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let mut g = c.benchmark_group("enqueue");
    g.throughput(Throughput::Elements(CONCURRENT as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("group_commit_64_concurrent", |b| {
        b.iter(|| {
            rt.block_on(async {
                for r in join_all((0..CONCURRENT).map(|i| store.enqueue(msg(i), T0))).await {
                    r.expect("enqueue");
                }
            })
        })
    });
    g.bench_function("one_transaction_per_message_64", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..CONCURRENT {
                    store.enqueue(msg(i), T0).await.expect("enqueue");
                }
            })
        })
    });
    g.finish();
    rt.block_on(store.close());
}

fn claim_and_send(c: &mut Criterion) {
    let rt = rt();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let mut g = c.benchmark_group("outbound");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    g.bench_function("claim_1_and_mark_sent", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                fill(&store, iters as usize).await;
                let start = Instant::now();
                for _ in 0..iters {
                    let parts = store.claim_due(MODEM, T0, 1).await.expect("claim");
                    for p in parts {
                        store.mark_sent(p.attempt, 1, T0).await.expect("sent");
                    }
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    rt.block_on(store.close());
}

fn inbound(c: &mut Criterion) {
    let rt = rt();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let n = AtomicI64::new(0);
    let part = |k: i64| InboundPart {
        modem: MODEM.into(),
        sim: Some("8944100000000000001".into()),
        sender: "+4915112345678".into(),
        scts_ms: T0 + k,
        concat: None,
        body: InboundBody::Text("hello there".into()),
        pdu: k.to_be_bytes().to_vec(),
        storage_index: Some(1),
        received_ms: T0 + k,
    };
    let mut g = c.benchmark_group("inbound");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    g.bench_function("commit_single_part", |b| {
        b.iter_batched(
            || part(n.fetch_add(1, Ordering::Relaxed)),
            |p| rt.block_on(store.commit_inbound(p)).expect("commit"),
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(CONCURRENT as u64));
    g.bench_function("commit_64_concurrent", |b| {
        b.iter(|| {
            let parts: Vec<_> = (0..CONCURRENT)
                .map(|_| part(n.fetch_add(1, Ordering::Relaxed)))
                .collect();
            rt.block_on(join_all(parts.into_iter().map(|p| store.commit_inbound(p))))
        })
    });
    g.finish();
    rt.block_on(store.close());
}

fn status_query(c: &mut Criterion) {
    let rt = rt();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    const N: usize = 100_000;
    rt.block_on(fill(&store, N));
    let mut id = 0_i64;
    let mut g = c.benchmark_group("query_100k");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    g.bench_function("outbound_status", |b| {
        b.iter(|| {
            // A stride walks the whole id range, defeating the page cache
            // as little as a real lookup pattern would.
            id = (id + 7919) % N as i64 + 1;
            rt.block_on(store.outbound_status(MessageId(id)))
                .expect("status")
        })
    });
    g.bench_function("claim_1_of_100k_queued", |b| {
        b.iter(|| {
            let parts = rt.block_on(store.claim_due(MODEM, T0, 1)).expect("claim");
            for p in parts {
                rt.block_on(store.mark_sent(p.attempt, 1, T0))
                    .expect("sent");
            }
        })
    });
    g.bench_function("events_since_100", |b| {
        b.iter(|| {
            id = (id + 7919) % N as i64 + 1;
            rt.block_on(store.events_since(id as u64, 100))
                .expect("events")
        })
    });
    g.finish();
    rt.block_on(store.close());
}

criterion_group!(benches, enqueue, claim_and_send, inbound, status_query);
criterion_main!(benches);
