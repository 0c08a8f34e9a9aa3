//! Criterion benchmarks of the PDU codec: decoding real PDUs (GSM 7-bit,
//! UCS-2 concatenated part, status report) and encoding a short and a
//! three-part message. Run with
//! `cargo bench --bench pdu -- --warm-up-time 1 --measurement-time 3`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use smsgate::pdu::{decode, encode_submit, Address, DecodeOptions, SubmitOptions};

/// GSM 7-bit SMS-DELIVER with extension characters (112-octet TPDU).
const GSM7: &str = "07912104442961F4040B916171957291F800001120821105050A6AC8B2BC7C9A83C220F6DB7D2ECB41EDF27C1E3E97411BDE06754FD3D1A0F9BB5D0695F1F4B29B5C2683C6E8B03C3CA697E5F34D6AE303D1D1F2F7DD0D4ABB59A0797D8C0685E7A00028EC26832A960B28EC2683BE6050780EBA97D96C17";
/// UCS-2 part 1/2 of a concatenated message from an alphanumeric sender.
const UCS2_CONCAT: &str = "07919762020033F1400DD0CDF2396C7EBB010008415072411084618C0500035602010053004D005300200063006F00640065003A00200034003800350036002C00200063006F006E006600690072006D006100740069006F006E0020006F00660020006100730073006F00630069006100740069006F006E0020006200650074007700650065006E0020006100630063006F0075006E007400200061006E00640020004D00650067";
/// SMS-STATUS-REPORT (delivered).
const STATUS: &str = "07914356060013F1065A098136397339F7219011700463802190117004638030";

fn bench_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    for (name, hex) in [
        ("gsm7", GSM7),
        ("ucs2_concat", UCS2_CONCAT),
        ("status_report", STATUS),
    ] {
        let bytes = hex::decode(hex).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| decode(black_box(&bytes), DecodeOptions::default()).unwrap())
        });
    }
    g.finish();
}

fn bench_encode(c: &mut Criterion) {
    let to = Address::parse_number("+4915112345678").unwrap();
    let opts = SubmitOptions {
        reference: 42,
        ..SubmitOptions::default()
    };
    let long = "The quick brown fox jumps over the lazy dog; {all} [good] €uros. ".repeat(6);
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("short", |b| {
        b.iter(|| encode_submit(&to, black_box("See you at 8, bring the keys!"), &opts).unwrap())
    });
    assert_eq!(encode_submit(&to, &long, &opts).unwrap().len(), 3);
    g.bench_function("three_parts", |b| {
        b.iter(|| encode_submit(&to, black_box(&long), &opts).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_decode, bench_encode);
criterion_main!(benches);
