//! Fuzz target: the PDU decoder must never panic, on any bytes, in any
//! direction, with or without the SMSC field; and what it decodes must
//! encode again without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smsgate::pdu::{decode, DecodeOptions, Direction};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the options so one corpus covers all of them.
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let direction = match sel % 3 {
        0 => Direction::AtInterface,
        1 => Direction::MobileTerminated,
        _ => Direction::MobileOriginated,
    };
    let opts = DecodeOptions {
        direction,
        smsc: sel & 0x04 == 0,
        ..DecodeOptions::default()
    };
    if let Ok(pdu) = decode(bytes, opts) {
        let _ = smsgate::pdu::json::to_json(&pdu);
        let _ = pdu.encode();
    }
    let _ = smsgate::pdu::decode_hex(&String::from_utf8_lossy(bytes), opts);
});
