//! The modem actor end to end against the in-process simulator, through
//! real pseudo-terminals: one send (`AT+CMGS` with the prompt handshake,
//! until the TP-MR is back), and one modem-to-modem message (send on modem
//! 0 until the `Inbound` event of modem 1 is committed and deleted).

use std::time::Duration;

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use smsgate::modem::{self, Committed, ModemConfig, ModemEvent, RejectedPins};
use smsgate::pdu::{encode_submit, Address, SubmitOptions};

use common::WAIT;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // The simulator shares the runtime with the actors: the figures are
    // those of one box running both.
    let sim = common::start_sim(&rt, dir.path(), 2, Duration::ZERO);
    let rejected = RejectedPins::new();
    let (h0, mut ev0, h1, mut ev1) = rt.block_on(async {
        let (h0, ev0) = modem::spawn(
            ModemConfig::new("m0", dir.path().join("modem0")),
            rejected.clone(),
        )
        .expect("actor 0");
        let (h1, ev1) = modem::spawn(ModemConfig::new("m1", dir.path().join("modem1")), rejected)
            .expect("actor 1");
        for h in [&h0, &h1] {
            let mut w = h.watch();
            tokio::time::timeout(WAIT, w.wait_for(|s| s.state == "ready"))
                .await
                .expect("ready in time")
                .expect("actor alive");
        }
        (h0, ev0, h1, ev1)
    });
    // Keep modem 0's event queue drained (state events only).
    rt.spawn(async move { while ev0.recv().await.is_some() {} });
    let outside = encode_submit(
        &Address::parse_number("+4915112345678").expect("number"),
        "benchmark",
        &SubmitOptions::default(),
    )
    .expect("encode");
    let to_modem1 = encode_submit(
        &Address::parse_number("+15550000001").expect("number"),
        "benchmark",
        &SubmitOptions::default(),
    )
    .expect("encode");

    c.bench_function("modem_send_one_part", |b| {
        b.iter(|| rt.block_on(h0.send(outside.clone())).expect("sent"));
    });
    c.bench_function("modem_to_modem_committed", |b| {
        b.iter(|| {
            rt.block_on(async {
                h0.send(to_modem1.clone()).await.expect("sent");
                loop {
                    match tokio::time::timeout(WAIT, ev1.recv()).await {
                        Ok(Some(ModemEvent::Inbound { commit, .. })) => {
                            let _ = commit.send(Committed);
                            break;
                        }
                        Ok(Some(_)) => {}
                        other => panic!("no inbound event: {other:?}"),
                    }
                }
            })
        });
    });
    rt.block_on(async {
        h0.shutdown().await;
        h1.shutdown().await;
    });
    let _ = sim.stop.send(());
    let _ = rt.block_on(sim.task);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
