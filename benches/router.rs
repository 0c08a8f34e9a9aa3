//! Router decisions: one `choose` + `record_sent` among 16 modems with
//! every limit set, prefix rules, and a router restored from a month of
//! history (100 000 records).
//!
//! `cargo bench --bench router`

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use smsgate::router::*;
use smsgate::store::{PeerRecord, RouteHistory};

const T0: i64 = 1_795_687_200_000;
const MODEMS: usize = 16;

fn candidates() -> Vec<Candidate> {
    (0..MODEMS)
        .map(|i| Candidate {
            id: format!("3569380356{i:05}"),
            name: format!("m{i}"),
            iccid: Some(format!("894900000000{i:07}")),
            ready: i % 5 != 4,
            load: (i as u64 * 7) % 5,
        })
        .collect()
}

fn router() -> Router {
    let routing = RoutingConfig {
        rule: vec![
            PrefixRule {
                prefix: "+49".into(),
                modems: (0..8).map(|i| format!("m{i}")).collect(),
            },
            PrefixRule {
                prefix: "+4915".into(),
                modems: (8..MODEMS).map(|i| format!("m{i}")).collect(),
            },
        ],
        ..RoutingConfig::default()
    };
    let limits = LimitsConfig {
        default: Limits {
            per_minute: Some(1_000),
            per_day: Some(1_000_000),
            recipients_per_month: Some(1_000_000),
            jitter_ms: None,
        },
        sim: BTreeMap::new(),
    };
    let mut r = Router::with_seed(routing, limits, 1);
    let cands = candidates();
    let peers: Vec<PeerRecord> = (0..100_000)
        .map(|i| {
            let c = &cands[i % MODEMS];
            PeerRecord {
                sim: c.iccid.clone().unwrap_or_else(|| c.id.clone()),
                modem: c.id.clone(),
                recipient: format!("+49151{:07}", i),
                last_sent_ms: T0 - (i as i64 * 20_000),
            }
        })
        .collect();
    let history = RouteHistory {
        peers,
        ..RouteHistory::default()
    };
    r.restore(&history);
    r
}

fn bench(c: &mut Criterion) {
    let cands = candidates();
    let mut g = c.benchmark_group("router");
    g.throughput(Throughput::Elements(1));
    let mut r = router();
    let mut i = 0u64;
    g.bench_function("choose_and_record_16_modems", |b| {
        b.iter(|| {
            i += 1;
            let to = format!("+4930{:07}", i % 1_000_000);
            let req = RouteRequest {
                message: i as i64,
                recipient: &to,
                pinned: None,
                parts: 1,
                exclude: &[],
            };
            let now = T0 + i as i64;
            if let Choice::Modem(id) = r.choose(&req, &cands, now) {
                let iccid = cands
                    .iter()
                    .find(|c| c.id == id)
                    .and_then(|c| c.iccid.as_deref());
                r.record_sent(&id, iccid, &to, now);
            }
        })
    });
    g.bench_function("restore_100k_records", |b| b.iter(router));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
