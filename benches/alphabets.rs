//! Criterion benchmarks of the alphabet layer: GSM 7-bit encode/decode and
//! packing, table choice, UCS-2, and multipart reassembly. Encode runs for
//! every outgoing part, so its reverse lookups must stay cheap.
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use smsgate::pdu::gsm7::{self, NationalLanguage, Tables};
use smsgate::pdu::reassembly::{PartKey, Reassembler, ReassemblyConfig};
use smsgate::pdu::ucs2;

/// 160 septets of ordinary text with a few extension characters.
const LATIN: &str = "Hello World! Your code is 4711. Reply STOP to end [info] ~ costs 5€. \
Üñöcödé? Ça va: ÄÖÜäöüß @ £ $ ¥ è é ù ì ò Ç Ø ø Å å Δ _ Φ Γ Λ Ω Π Ψ Σ Θ Ξ. Thanks!";
const TURKISH: &str = "Merhaba dünya, ığdır şişli çarşı: İstanbul'da güneşli bir gün. Ğğ Şş İı Çç";

fn bench(c: &mut Criterion) {
    let default = Tables::default();
    let septets = gsm7::encode(LATIN, default).unwrap();
    let packed = gsm7::pack(&septets, 1);

    let mut g = c.benchmark_group("gsm7");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_160", |b| {
        b.iter(|| gsm7::encode(black_box(LATIN), default))
    });
    g.bench_function("septet_count_160", |b| {
        b.iter(|| gsm7::septet_count(black_box(LATIN), default))
    });
    g.bench_function("decode_160", |b| {
        b.iter(|| gsm7::decode(black_box(&septets), default))
    });
    g.bench_function("pack_160", |b| {
        b.iter(|| gsm7::pack(black_box(&septets), 1))
    });
    g.bench_function("unpack_160", |b| {
        b.iter(|| gsm7::unpack(black_box(&packed), 1, septets.len()))
    });
    g.bench_function("best_tables_turkish_all_allowed", |b| {
        b.iter(|| gsm7::best_tables(black_box(TURKISH), &NationalLanguage::ALL))
    });
    g.finish();

    let mut g = c.benchmark_group("ucs2");
    g.throughput(Throughput::Elements(1));
    let text = "Привет, мир! 😀 こんにちは世界 70 units or so in one part ok";
    let octets = ucs2::encode(text);
    g.bench_function("encode", |b| b.iter(|| ucs2::encode(black_box(text))));
    g.bench_function("decode", |b| b.iter(|| ucs2::decode(black_box(&octets))));
    g.finish();

    let mut g = c.benchmark_group("reassembly");
    g.throughput(Throughput::Elements(3));
    g.bench_function("three_parts_out_of_order", |b| {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let now = Instant::now();
        let mut reference = 0u16;
        b.iter(|| {
            reference = reference.wrapping_add(1);
            let key = PartKey {
                modem: "modem0".into(),
                sender: "+491701234567".into(),
                reference,
                total: 3,
            };
            for seq in [2, 3, 1] {
                black_box(r.push(key.clone(), seq, seq, now).unwrap());
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
