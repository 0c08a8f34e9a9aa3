//! The alphabet tables and codecs of `smsgate::pdu::{gsm7, ucs2}` checked
//! against the real-world corpus: every CSV table of TS 23.038 entry by
//! entry, the field-level vectors of python-gsmmodem, and oFono's
//! national-language decode vectors. Skipped visibly without the corpus.

mod common;

use std::fs;
use std::path::Path;

use serde_json::Value;
use smsgate::pdu::gsm7::{self, NationalLanguage, Tables, ESCAPE};
use smsgate::pdu::ucs2;

/// Splits one CSV line of quoted (or bare) fields; `""` inside quotes is a
/// quote character.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                    } else {
                        break;
                    }
                } else {
                    field.push(c);
                }
            }
        }
        let mut saw_comma = false;
        for c in chars.by_ref() {
            if c == ',' {
                saw_comma = true;
                break;
            }
            field.push(c);
        }
        fields.push(field);
        if chars.peek().is_none() {
            // A line that ends in a comma has one more, empty, cell.
            if saw_comma {
                fields.push(String::new());
            }
            return fields;
        }
    }
}

/// A CSV cell as the corpus README defines it.
fn cell_char(cell: &str) -> Option<char> {
    match cell {
        "" => None,
        "SP" => Some(' '),
        "LF" => Some('\n'),
        "CR" => Some('\r'),
        "QM" => Some('"'),
        hex if hex.len() == 4 && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
            Some(char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap())
        }
        lit => {
            let mut it = lit.chars();
            let c = it.next().unwrap();
            assert!(it.next().is_none(), "unexpected cell {lit:?}");
            Some(c)
        }
    }
}

/// The table in a CSV file as 128 entries (position 0x1B included as read).
fn read_csv(path: &Path) -> Vec<Option<char>> {
    let text = fs::read_to_string(path).unwrap();
    let mut table = vec![None; 128];
    let mut rows = 0;
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let fields = csv_fields(line);
        assert_eq!(fields.len(), 9, "{}: {line}", path.display());
        let low = usize::from_str_radix(&fields[0], 16).unwrap();
        for (column, cell) in fields[1..].iter().enumerate() {
            table[column * 16 + low] = cell_char(cell);
        }
        rows += 1;
    }
    assert_eq!(rows, 16, "{}", path.display());
    table
}

fn language_of(stem: &str) -> NationalLanguage {
    // The corpus keeps upstream's spelling "portugese".
    let name = if stem == "portugese" {
        "portuguese"
    } else {
        stem
    };
    NationalLanguage::from_name(name).unwrap_or_else(|| panic!("unknown table language {stem}"))
}

#[test]
fn every_csv_table_matches_entry_by_entry() {
    let Some(corpus) = common::corpus("gsm7 CSV tables") else {
        return;
    };
    let dir = corpus.join("gsm7-tables");
    let mut checked = Vec::new();
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("csv") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let (lang, kind) = stem.rsplit_once('_').unwrap();
        let lang = language_of(lang);
        let ours = match kind {
            "lock" => lang.locking_table(),
            "shift" => lang.single_shift_table(),
            other => panic!("unknown table kind {other} in {stem}"),
        };
        let theirs = read_csv(&path);
        for (septet, (mine, csv)) in ours.iter().zip(&theirs).enumerate() {
            if septet == usize::from(ESCAPE) {
                // README: written SP everywhere; in the spec it is the escape
                // (locking) or the reserved ESC ESC shown as a space (shift).
                assert_eq!(*csv, Some(' '), "{stem} 0x1B");
                assert_eq!(*mine, None, "{stem} 0x1B must stay the escape");
                continue;
            }
            assert_eq!(mine, csv, "{stem} septet {septet:#04x}");
        }
        checked.push((lang, kind.to_owned()));
    }
    // 14 single-shift tables (default + 13) and 13 locking ones (no Spanish).
    assert_eq!(checked.len(), 27, "tables checked: {checked:?}");
    for lang in NationalLanguage::ALL {
        assert!(
            checked.contains(&(lang, "shift".into())),
            "{lang} shift missing"
        );
        if lang != NationalLanguage::Spanish {
            assert!(
                checked.contains(&(lang, "lock".into())),
                "{lang} lock missing"
            );
        }
    }
    eprintln!("checked {} CSV tables entry by entry", checked.len());
}

/// Tables whose characters round-trip through encode/decode with the
/// escape position honoured, for every table of the corpus.
#[test]
fn every_table_character_round_trips() {
    for locking in NationalLanguage::ALL {
        for single in NationalLanguage::ALL {
            let tables = Tables { locking, single };
            let text: String = locking
                .locking_table()
                .iter()
                .chain(single.single_shift_table())
                .flatten()
                .collect();
            let septets = gsm7::encode(&text, tables).unwrap();
            assert_eq!(gsm7::decode(&septets, tables), text, "{tables:?}");
        }
    }
}

fn field_vectors(corpus: &Path) -> Vec<Value> {
    fs::read_to_string(corpus.join("pdu/field-vectors.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} missing in {v}"))
}

#[test]
fn field_vectors_gsm7_and_ucs2() {
    let Some(corpus) = common::corpus("gsm7/ucs2 field vectors") else {
        return;
    };
    let default = Tables::default();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for v in field_vectors(&corpus) {
        let kind = field(&v, "field");
        // Other kinds (UDH IEs, addresses) carry structured values and are
        // checked by the PDU corpus test.
        let Some(value) = v["value"].as_str() else {
            continue;
        };
        match kind {
            "gsm7_packed" => {
                let packed = hex::decode(field(&v, "hex")).unwrap();
                let note = field(&v, "note");
                let septets_hex = note.rsplit_once(": ").unwrap().1;
                let septets = hex::decode(septets_hex).unwrap();
                assert_eq!(gsm7::encode(value, default).unwrap(), septets, "{v}");
                assert_eq!(gsm7::pack(&septets, 0), packed, "{v}");
                let unpacked = gsm7::unpack(&packed, 0, septets.len()).unwrap();
                assert_eq!(unpacked, septets, "{v}");
                assert_eq!(gsm7::decode(&unpacked, default), value, "{v}");
            }
            "ucs2" => {
                let octets = hex::decode(field(&v, "hex")).unwrap();
                assert_eq!(ucs2::encode(value), octets, "{v}");
                assert_eq!(ucs2::decode(&octets).unwrap(), value, "{v}");
            }
            "gsm7_encode_invalid" => {
                let err = gsm7::encode(value, default).unwrap_err();
                assert_eq!(value.chars().nth(err.index), Some(err.ch), "{v}");
            }
            "gsm7_encode_discard_invalid" => {
                // Our strict `encode` errors; the opt-in `encode_discarding`
                // gives python-gsmmodem's discard semantics.
                assert!(gsm7::encode(value, default).is_err(), "{v}");
                let (septets, dropped) = gsm7::encode_discarding(value, default);
                assert_eq!(septets, hex::decode(field(&v, "hex")).unwrap(), "{v}");
                assert!(!dropped.is_empty());
            }
            _ => continue,
        }
        *counts.entry(kind.to_owned()).or_default() += 1;
    }
    eprintln!("field vectors checked: {counts:?}");
    assert_eq!(counts.get("gsm7_packed"), Some(&8));
    assert_eq!(counts.get("ucs2"), Some(&2));
    assert_eq!(counts.get("gsm7_encode_invalid"), Some(&1));
    assert_eq!(counts.get("gsm7_encode_discard_invalid"), Some(&1));
}

/// oFono's charset tests: PDUs without a UDH whose user data the caller
/// decodes with given national tables. The user data is the last `ud_bytes`
/// octets and TP-UDL (in septets) the octet before them.
#[test]
fn ofono_national_language_vectors() {
    let Some(corpus) = common::corpus("oFono national-language vectors") else {
        return;
    };
    let text = fs::read_to_string(corpus.join("pdu/ofono.jsonl")).unwrap();
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap();
        let expect = &v["expect"];
        let Some(with) = expect.get("decode_with") else {
            continue;
        };
        let tables = Tables {
            locking: NationalLanguage::from_name(field(with, "locking_shift_table")).unwrap(),
            single: NationalLanguage::from_name(field(with, "single_shift_table")).unwrap(),
        };
        let pdu = hex::decode(field(&v, "pdu")).unwrap();
        let ud_len = usize::try_from(expect["ud_bytes"].as_u64().unwrap()).unwrap();
        let ud = &pdu[pdu.len() - ud_len..];
        let udl = usize::from(pdu[pdu.len() - ud_len - 1]);
        let septets = gsm7::unpack(ud, 0, udl).unwrap();
        let want = field(expect, "text");
        assert_eq!(
            gsm7::decode(&septets, tables),
            want,
            "{}",
            field(&v, "name")
        );
        // And back: the text encodes to the same septets with these tables.
        assert_eq!(
            gsm7::encode(want, tables).as_ref(),
            Ok(&septets),
            "{}",
            field(&v, "name")
        );
        checked += 1;
    }
    eprintln!("oFono national-language vectors checked: {checked}");
    assert_eq!(checked, 7);
}
