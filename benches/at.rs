//! Criterion benchmarks of the AT digester and the `+CMGL` parser.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use smsgate::at::commands::{AtCommand, ListMessages, MessageStat};
use smsgate::at::digest::{Digester, Event, InFlight};

/// A `+CMGL=4` answer with `n` stored messages, echo on, and a URC in the
/// middle, as a full SIM would send it.
fn listing(n: usize) -> Vec<u8> {
    let pdu = "07914306073011F00405812261F700003130916191314095C274D96D2FBBD3E437280CB2BEC961F3DB5D76818EF2F0381D9E83E06F39A8CC2E9FD372F77BEE0249CBE37A594E0E83E2F532085E2F93CB73D0B93CA7A7DFEEB01C447F93DF7310BD3E07CDCB727B7A9C7ECF41E432C8FC96B7C32079189E26874179D0F8DD7E93C3A0B21B246AA641D637396C7EBBCB22D0FD7E77B5D376B3AB3C07";
    let mut s = String::from("AT+CMGL=4\r\r\n");
    for i in 0..n {
        s.push_str(&format!("+CMGL: {i},1,,147\r\n{pdu}\r\n"));
        if i == n / 2 {
            s.push_str("^RSSI: 17\r\n");
        }
    }
    s.push_str("\r\nOK\r\n");
    s.into_bytes()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("at_digest_cmgl");
    for n in [1usize, 50, 255] {
        let bytes = listing(n);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &bytes, |b, bytes| {
            b.iter(|| {
                let mut d = Digester::new();
                d.start(InFlight::for_command("AT+CMGL=4"));
                let mut lines = Vec::new();
                // Reads from a USB serial port arrive in small pieces.
                for chunk in bytes.chunks(64) {
                    for ev in d.feed(chunk) {
                        if let Event::Line(l) = ev {
                            lines.push(l);
                        }
                    }
                }
                ListMessages(MessageStat::All)
                    .parse(&lines)
                    .map(|v| v.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
