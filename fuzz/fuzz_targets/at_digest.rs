//! Feeds arbitrary bytes, in arbitrary chunks, to the AT digester, with
//! and without a command in flight, and checks its memory stays bounded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smsgate::at::digest::{Digester, InFlight, MAX_LINE};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let mut d = Digester::new();
    match ctl % 4 {
        0 => {}
        1 => d.start(InFlight::for_command("AT+CMGL=4")),
        2 => d.start(InFlight::for_command("AT+CMGS=23").with_prompt("0011AB")),
        _ => d.start(InFlight::for_command("AT+CREG?")),
    }
    // Chunk sizes come from the control byte so every split is reachable.
    let step = usize::from(ctl / 4) + 1;
    for chunk in rest.chunks(step) {
        let _ = d.feed(chunk);
        assert!(d.buffered() <= 2 * MAX_LINE);
    }
});
