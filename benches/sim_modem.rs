//! Criterion benchmarks of the simulated modem: how many AT commands and
//! `+CMGS` sends one `SimModem` handles per second of CPU, so that the
//! simulator is never the bottleneck of a load test.
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use smsgate::hardware::builtin_profile;
use smsgate::sim::identity;
use smsgate::sim::modem::SimModem;

fn modem() -> (SimModem, Instant) {
    let id = identity::generate(0, "+15551230000", None, None);
    let now = Instant::now();
    let p = builtin_profile("generic").expect("generic profile");
    let mut m = SimModem::new(id, &p, Duration::ZERO, 1, now);
    m.input(b"ATE0\r", now);
    m.output(now);
    (m, now)
}

const SUBMIT: &[u8] = b"0011000B915155112122F20000FF13C8329BFD0699E5EF3668DE9ED3DF6FF61C\x1a";
const DELIVER: &str = "040B915155334344F400006211626033730012ECB4BD0C6A5241E6B71CB40EBBDD6536";

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim_modem");
    g.throughput(Throughput::Elements(1));
    g.bench_function("AT+CSQ", |b| {
        let (mut m, now) = modem();
        b.iter(|| {
            m.input(b"AT+CSQ\r", now);
            m.output(now)
        })
    });
    g.bench_function("AT+CMGS (PDU, one message)", |b| {
        let (mut m, now) = modem();
        b.iter(|| {
            m.input(b"AT+CMGS=31\r", now);
            m.input(SUBMIT, now);
            m.take_events();
            m.output(now)
        })
    });
    g.bench_function("receive + AT+CMGR + AT+CMGD", |b| {
        let (mut m, now) = modem();
        let tpdu = hex::decode(DELIVER).expect("hex");
        b.iter(|| {
            m.receive(&tpdu, now).expect("room");
            m.input(b"AT+CMGR=1\r", now);
            m.input(b"AT+CMGD=1\r", now);
            m.output(now)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
