//! The router's start-up restore on a store of one million messages
//! (`SCALE_MILLION`, default 1,000,000; the shape of `benches/scale.rs`:
//! 80 % outbound, one part each, 5,000 recipients, over the last ~11
//! days; 20 % inbound).
//!
//! Before schema v5 the restore grouped every part sent in the last 32
//! days (`GROUP BY modem, recipient, day`): that query is timed once on a
//! version-4 file. Then the file is opened with this build (the v5
//! migration fills the summary tables once, timed) and
//! `Store::route_history` is measured with criterion.
//!
//! `cargo bench --profile dev --bench restore`

use std::path::Path;
use std::time::Instant;

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use smsgate::store::{Store, StoreConfig};

const DAY_MS: i64 = 86_400_000;

/// A schema-4 file, as smsgate left it before the summary tables.
fn v4_file(db: &Path) {
    let c = rusqlite::Connection::open(db).expect("sqlite");
    for sql in [
        include_str!("../src/store/schema_v1.sql"),
        include_str!("../src/store/schema_v2.sql"),
        include_str!("../src/store/schema_v3.sql"),
        include_str!("../src/store/schema_v4.sql"),
    ] {
        c.execute_batch(sql).expect("schema");
    }
    c.execute_batch("PRAGMA user_version = 4; PRAGMA journal_mode = WAL;")
        .expect("version");
}

/// Writes `total` finished messages ([`common::fill_history`], as
/// `benches/scale.rs` does).
fn fill(db: &Path, total: usize, now: i64) {
    let out = (total * 4 / 5) as i64;
    let inb = total as i64 - out;
    let mut c = rusqlite::Connection::open(db).expect("sqlite");
    let tx = c.transaction().expect("tx");
    tx.execute(
        "INSERT INTO modems (id, iccid, first_seen_ms, last_seen_ms)
         VALUES ('m0', '8944000000000000001', 0, ?1)",
        [now],
    )
    .expect("modem");
    common::fill_history(&tx, out, inb, now);
    tx.commit().expect("commit");
}

/// The restore query of schema 2..4, as it ran at every start.
fn old_restore(db: &Path, since: i64) -> usize {
    let c = rusqlite::Connection::open(db).expect("sqlite");
    let mut st = c
        .prepare(
            "SELECT p.modem, d.iccid, m.recipient, COUNT(*), MAX(p.sent_ms)
             FROM out_parts p
             JOIN out_messages m ON m.id = p.message_id
             LEFT JOIN modems d ON d.id = p.modem
             WHERE p.sent_ms IS NOT NULL AND p.sent_ms >= ?1 AND p.modem IS NOT NULL
             GROUP BY p.modem, m.recipient, p.sent_ms / ?2
             ORDER BY MAX(p.sent_ms) DESC
             LIMIT 100000",
        )
        .expect("prepare");
    let rows = st
        .query_map(rusqlite::params![since, DAY_MS], |_| Ok(()))
        .expect("query");
    rows.count()
}

fn bench(c: &mut Criterion) {
    let million: usize = std::env::var("SCALE_MILLION")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let since = now - 32 * DAY_MS;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("store.db");
    v4_file(&db);
    let t = Instant::now();
    fill(&db, million, now);
    println!(
        "store of {million} messages (schema 4) written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    for _ in 0..2 {
        let t = Instant::now();
        let n = old_restore(&db, since);
        println!(
            "before (schema 4 GROUP BY): {n} records in {:.0} ms",
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let t = Instant::now();
    let store = rt
        .block_on(Store::open_async(StoreConfig::at(&db)))
        .expect("open");
    println!(
        "open with the v5 migration (fills the summary once): {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let h = rt
        .block_on(store.route_history(since, now))
        .expect("history");
    println!(
        "after (schema 5 summary): {} SIM days, {} peers, {} recent sends",
        h.days.len(),
        h.peers.len(),
        h.recent.len()
    );
    let mut g = c.benchmark_group("restore");
    g.sample_size(20);
    g.bench_function("route_history_1m_store", |b| {
        b.iter(|| {
            rt.block_on(store.route_history(since, now))
                .expect("history")
        })
    });
    g.finish();
    rt.block_on(store.close());
}

criterion_group!(benches, bench);
criterion_main!(benches);
