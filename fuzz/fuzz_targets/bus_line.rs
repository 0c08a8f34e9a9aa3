//! Parses arbitrary bytes as a bus request line: never panics, and every
//! outcome turns into a reply line that is one valid JSON object.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smsgate::bus::protocol::{ok_reply, parse_line, MAX_LINE};

fuzz_target!(|data: &[u8]| {
    // A small limit too, so the cap path is reached with short inputs.
    for max in [MAX_LINE, 64] {
        let reply = match parse_line(data, max) {
            Ok(env) => ok_reply(env.id.as_ref(), env.request.op(), serde_json::json!({})),
            Err(e) => e.reply(),
        };
        assert!(!reply.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&reply).expect("reply is JSON");
        assert!(v.is_object());
    }
});
