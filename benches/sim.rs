//! Throughput of `smsgate sim` as a DTE sees it: an AT round trip and a
//! modem-to-modem SMS (AT+CMGS on modem 0 until the +CMT on modem 1),
//! through real pseudo-terminals and the simulated network, in-process.

use std::sync::mpsc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use smsgate::sim::dte::Dte;
use smsgate::sim::runtime::{self, SimConfig};

const WAIT: Duration = Duration::from_secs(10);

/// "hello" to +15550000001 (TS 23.040 §9.2.2.2, hand-made): SMSC "00",
/// SUBMIT, MR 0, DA, PID 0, DCS 0, VP 4 days, UDL 5, UD.
const SUBMIT: &str = "0011000B915155000000F10000AA05E8329BFD06";

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = SimConfig {
        dir: dir.path().to_path_buf(),
        numbers: vec!["+15550000000".into(), "+15550000001".into()],
        profile: smsgate::hardware::builtin_profile("generic").expect("profile"),
        latency: Duration::ZERO,
        pin: None,
        send_time: Duration::ZERO,
        report_delay: Duration::from_secs(1),
        seed: 1,
    };
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sim = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(runtime::run(
            cfg,
            async {
                let _ = stop_rx.await;
            },
            |_| {
                let _ = ready_tx.send(());
            },
        ))
        .expect("simulator");
    });
    ready_rx.recv_timeout(WAIT).expect("simulator ready");
    let mut m0 = Dte::open(&dir.path().join("modem0")).expect("modem0");
    let mut m1 = Dte::open(&dir.path().join("modem1")).expect("modem1");
    for (m, cnmi) in [
        (&mut m0, "AT+CNMI=2,1,0,0,0"),
        (&mut m1, "AT+CNMI=2,2,0,0,0"),
    ] {
        for cmd in ["ATE0", "AT+CMGF=0", cnmi] {
            m.at(cmd, WAIT).expect(cmd);
        }
    }
    c.bench_function("sim_at_roundtrip", |b| {
        b.iter(|| m0.at("AT", WAIT).expect("AT"));
    });
    c.bench_function("sim_sms_modem_to_modem", |b| {
        b.iter(|| {
            let r = m0.cmgs(SUBMIT, 19, WAIT).expect("CMGS");
            assert!(r.contains("+CMGS:"), "{r}");
            // +CMT: ,<len>\r\n<pdu>\r\n routed straight to the DTE.
            m1.read_until("+CMT:", WAIT).expect("+CMT");
            m1.read_until("\r\n", WAIT).expect("+CMT header");
            m1.read_until("\r\n", WAIT).expect("+CMT PDU");
        });
    });
    let _ = stop_tx.send(());
    let _ = sim.join();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
