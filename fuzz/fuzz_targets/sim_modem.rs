//! Fuzz target: the simulated modem must never panic on any bytes a DTE
//! writes, split into writes at any points, interleaved with time passing
//! and messages arriving; and it must answer `AT` again afterwards.
#![no_main]
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use smsgate::hardware::{builtin, Profile};
use smsgate::sim::modem::{Identity, SimModem};

const DELIVER: &[u8] = &[
    0x04, 0x0B, 0x91, 0x51, 0x55, 0x33, 0x43, 0x44, 0xF4, 0x00, 0x00, 0x62, 0x11, 0x62, 0x60,
    0x33, 0x73, 0x00, 0x02, 0xC8, 0x34,
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    // Parsing the TOML profiles once keeps the target fast.
    static PROFILES: OnceLock<Vec<Profile>> = OnceLock::new();
    let profiles = PROFILES.get_or_init(|| builtin().unwrap_or_default());
    let Some(p) = profiles.get(usize::from(sel) % profiles.len().max(1)) else {
        return;
    };
    let id = Identity {
        number: "+15551230000".into(),
        imei: "350000001234567".into(),
        imsi: "001010000000001".into(),
        iccid: "8900100000000000001".into(),
        pin: (sel & 0x10 != 0).then(|| "1234".to_string()),
        smsc: "+15550000001".into(),
    };
    let mut now = Instant::now();
    let mut m = SimModem::new(id, p, Duration::from_millis(u64::from(sel >> 6) * 50), 1, now);
    // 0xFE splits writes and lets time pass; 0xFD delivers a message.
    for chunk in bytes.split(|b| *b == 0xFE) {
        for part in chunk.split(|b| *b == 0xFD) {
            m.input(part, now);
            let _ = m.receive(DELIVER, now);
        }
        now += Duration::from_millis(300);
        let _ = m.output(now);
        let _ = m.take_events();
    }
    now += Duration::from_secs(120);
    let _ = m.output(now);
    m.input(b"\x1b\rATZ\r", now);
    now += Duration::from_secs(120);
    let _ = m.output(now);
    m.input(b"AT\r", now);
    now += Duration::from_secs(1);
    let out = m.output(now);
    assert!(out.windows(2).any(|w| w == b"OK"), "{:?}", String::from_utf8_lossy(&out));
});
