//! Property tests of the codec: encode → decode round trips for arbitrary
//! text, numbers and options (including reassembly of the parts), and
//! decoding that never panics on arbitrary bytes.

use std::time::Instant;

use proptest::prelude::*;

use super::gsm7::NationalLanguage;
use super::reassembly::{PartKey, Pushed, Reassembler, ReassemblyConfig};
use super::{
    decode, encode_submit, Address, DecodeOptions, Direction, MessageClass, SubmitOptions, Tpdu,
    ValidityPeriod,
};

fn text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        4 => proptest::char::range('a', 'z'),
        2 => proptest::sample::select(vec![' ', '.', '@', '£', '\n', '\r', 'Ä', 'é', 'Ω']),
        2 => proptest::sample::select(vec!['€', '{', '}', '[', ']', '~', '\\', '^', '|', '\u{c}']),
        1 => proptest::sample::select(vec!['ş', 'ğ', 'İ', 'ı', 'ç', 'Ç', 'á', 'õ', 'ê']),
        1 => proptest::sample::select(vec!['😀', '👍', '🇩', '𝄞', 'я', '中', 'ह']),
        1 => any::<char>(),
    ];
    proptest::collection::vec(ch, 0..420).prop_map(|v| v.into_iter().collect())
}

fn national() -> impl Strategy<Value = Vec<NationalLanguage>> {
    proptest::sample::subsequence(
        vec![
            NationalLanguage::Turkish,
            NationalLanguage::Spanish,
            NationalLanguage::Portuguese,
            NationalLanguage::Hindi,
            NationalLanguage::Urdu,
        ],
        0..=2,
    )
}

fn options() -> impl Strategy<Value = SubmitOptions> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<u16>(),
        proptest::option::of(any::<u8>()),
        national(),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(
            |(report, flash, ucs2, ref16, reference, vp, national, mr, rd)| SubmitOptions {
                smsc: None,
                status_report: report,
                class: flash.then_some(MessageClass::Class0),
                validity: vp.map(ValidityPeriod::Relative),
                reject_duplicates: rd,
                force_ucs2: ucs2,
                national,
                reference: if ref16 { reference } else { reference & 0xFF },
                ref16,
                message_reference: mr,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn submit_round_trip(
        text in text(),
        number in "\\+?[0-9*#]{1,20}",
        opts in options(),
        smsc in proptest::option::of("\\+[0-9]{3,15}"),
        seed in any::<u64>(),
    ) {
        let to = Address::parse_number(&number).unwrap();
        let opts = SubmitOptions { smsc: smsc.as_deref().map(|s| Address::parse_number(s).unwrap()), ..opts };
        let parts = encode_submit(&to, &text, &opts).unwrap();
        let total = parts.len();
        let mut decoded = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            prop_assert!(p.tpdu_len <= 164, "TPDU too long: {}", p.tpdu_len);
            let pdu = decode(&p.octets, DecodeOptions::default()).unwrap();
            prop_assert_eq!(pdu.tpdu_len, p.tpdu_len);
            prop_assert_eq!(pdu.smsc.as_ref().map(ToString::to_string), smsc.clone());
            let Tpdu::Submit(s) = &pdu.tpdu else { panic!("not a submit") };
            prop_assert_eq!(s.destination.to_string(), number.clone());
            prop_assert_eq!(s.status_report_request, opts.status_report);
            prop_assert_eq!(s.reject_duplicates, opts.reject_duplicates);
            prop_assert_eq!(s.validity, opts.validity);
            prop_assert_eq!(s.message_reference, opts.message_reference);
            prop_assert_eq!(s.dcs.class, opts.class);
            let c = s.user_data.header.as_ref().and_then(|h| h.concat());
            if total > 1 {
                let c = c.unwrap();
                prop_assert_eq!(usize::from(c.total), total);
                prop_assert_eq!(usize::from(c.seq), i + 1);
                prop_assert_eq!(c.reference, opts.reference);
                prop_assert_eq!(c.wide, opts.ref16);
            } else {
                prop_assert!(c.is_none());
            }
            decoded.push((c.map_or(1, |c| c.seq), s.user_data.text().unwrap().to_owned()));
        }
        prop_assert_eq!(decoded.iter().map(|(_, t)| t.as_str()).collect::<String>(), text.clone());

        // Any arrival order reassembles to the text.
        let mut order: Vec<usize> = (0..total).collect();
        let mut x = seed;
        for i in (1..order.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (x >> 33) as usize % (i + 1));
        }
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let key = PartKey { modem: "m".into(), sender: number.clone(), reference: opts.reference, total: total as u8 };
        let now = Instant::now();
        let mut complete = None;
        for &i in &order {
            let (seq, t) = decoded[i].clone();
            if let Pushed::Complete(all) = r.push(key.clone(), seq, t, now).unwrap() {
                complete = Some(all.concat());
            }
        }
        prop_assert_eq!(complete, Some(text));
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for direction in [Direction::AtInterface, Direction::MobileTerminated, Direction::MobileOriginated] {
            for smsc in [true, false] {
                if let Ok(pdu) = decode(&bytes, DecodeOptions { direction, smsc, ..DecodeOptions::default() }) {
                    let _ = super::json::to_json(&pdu);
                    let _ = pdu.encode();
                }
            }
        }
    }

    #[test]
    fn decode_never_panics_on_damaged_pdus(
        text in text(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let to = Address::parse_number("+15551234567").unwrap();
        let parts = encode_submit(&to, &text, &SubmitOptions::default()).unwrap();
        let mut b = parts[0].octets.clone();
        for (i, v) in flips {
            let n = b.len();
            b[i % n] ^= v;
        }
        b.truncate(cut % (b.len() + 1));
        let _ = decode(&b, DecodeOptions::default());
    }
}
