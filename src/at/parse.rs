//! Small nom parsers shared by the URC and response parsers: the
//! comma-separated parameter lists of 3GPP TS 27.007 §4 ("extended syntax
//! result codes"), parenthesised ranges of test commands (`=?`), and PDU hex.
//!
//! Everything here is tolerant by design: real modems drop quotes, add
//! spaces, leave fields empty. A field that cannot be read becomes `None`
//! in the typed result instead of failing the whole line.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_till, take_while};
use nom::character::complete::{char, digit1, space0};
use nom::combinator::{map, map_res, opt};
use nom::multi::separated_list0;
use nom::sequence::{delimited, preceded, terminated};
use nom::{IResult, Parser};

/// One parameter of an extended-syntax line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    /// A `"string"` (the closing quote may be missing).
    Quoted(&'a str),
    /// An unquoted value, spaces trimmed; empty means "omitted".
    Bare(&'a str),
}

impl<'a> Field<'a> {
    /// The text of the field, without quotes.
    pub fn text(&self) -> &'a str {
        match self {
            Field::Quoted(s) => s,
            Field::Bare(s) => s,
        }
    }

    /// The field as a decimal number, `None` if omitted or not a number.
    pub fn num<T: std::str::FromStr>(&self) -> Option<T> {
        self.text().trim().parse().ok()
    }

    /// The field as text, `None` if omitted (an empty quoted string is
    /// `Some("")`: the modem said "empty", not "absent").
    pub fn opt_text(&self) -> Option<&'a str> {
        match self {
            Field::Quoted(s) => Some(s),
            Field::Bare("") => None,
            Field::Bare(s) => Some(s),
        }
    }

    /// The field as a hexadecimal number (LAC, cell id), quoted or not.
    pub fn hex(&self) -> Option<u32> {
        let t = self.text().trim();
        if t.is_empty() || t.len() > 8 {
            return None;
        }
        u32::from_str_radix(t, 16).ok()
    }
}

fn quoted(i: &str) -> IResult<&str, Field<'_>> {
    map(
        preceded(
            char('"'),
            terminated(take_till(|c| c == '"'), opt(char('"'))),
        ),
        Field::Quoted,
    )
    .parse(i)
}

fn bare(i: &str) -> IResult<&str, Field<'_>> {
    map(take_till(|c| c == ','), |s: &str| Field::Bare(s.trim())).parse(i)
}

fn field(i: &str) -> IResult<&str, Field<'_>> {
    // A quoted field followed by junk before the next comma (`"0B,"01"`)
    // falls back to the bare reading of the rest.
    delimited(space0, alt((terminated(quoted, space0), bare)), space0).parse(i)
}

/// Splits a parameter list (`2,1,"5E25","605F"`) into fields. Never fails:
/// text that is no list at all yields what could be read.
pub fn fields(i: &str) -> Vec<Field<'_>> {
    match separated_list0(char(','), field).parse(i) {
        Ok((_, v)) => v,
        Err(_) => Vec::new(),
    }
}

/// The text after `prefix` (e.g. `+CREG:`), matched case-insensitively,
/// with leading spaces removed; `None` if the line has another prefix.
pub fn after_prefix<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let head = line.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        line.get(prefix.len()..).map(str::trim_start)
    } else {
        None
    }
}

/// One `( ... )` group of a test-command answer, or a bare item, as raw text.
fn group(i: &str) -> IResult<&str, &str> {
    delimited(
        space0,
        alt((
            delimited(char('('), take_till(|c| c == ')'), opt(char(')'))),
            take_till(|c| c == ','),
        )),
        space0,
    )
    .parse(i)
}

/// Splits `(a,b),(c),(d)` into the inner texts `a,b` / `c` / `d`. Items
/// outside parentheses become their own group.
pub fn groups(i: &str) -> Vec<&str> {
    match separated_list0(char(','), group).parse(i) {
        Ok((_, v)) => v,
        Err(_) => Vec::new(),
    }
}

fn range(i: &str) -> IResult<&str, (u32, u32)> {
    let num = |i| map_res(delimited(space0, digit1, space0), str::parse::<u32>).parse(i);
    alt((
        map((num, tag("-"), num), |(a, _, b)| (a, b)),
        map(num, |a| (a, a)),
    ))
    .parse(i)
}

/// Expands a range list such as `0-1,3` into `[0, 1, 3]` (at most 256
/// values, so a hostile `0-4294967295` cannot exhaust memory).
pub fn range_list(i: &str) -> Vec<u32> {
    let Ok((_, ranges)) = separated_list0(char(','), range).parse(i) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (a, b) in ranges {
        for v in a..=b {
            if out.len() >= 256 {
                return out;
            }
            out.push(v);
        }
    }
    out
}

/// Whether `s` is a plausible PDU: non-empty hex digits only.
pub fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Cleans a PDU line: trims spaces and a stray trailing `"` (seen from
/// some modems, gammu at-sms/04.dump).
pub fn clean_pdu(s: &str) -> &str {
    s.trim().trim_end_matches('"').trim_end()
}

/// Splits a header that carries its PDU on the same line after a space
/// (`+CMGR: 1,,147 0791...`, ModemManager test_cmgr_response_generic)
/// into header and PDU.
pub fn split_inline_pdu(line: &str) -> Option<(&str, &str)> {
    let last_comma = line.rfind(',')?;
    let after = line.get(last_comma + 1..)?;
    let tail = after.trim_start();
    let space = tail.find(' ')?;
    let pdu = clean_pdu(tail.get(space..)?);
    if is_hex(pdu) && pdu.len() >= 2 {
        let head_len = last_comma + 1 + (after.len() - tail.len()) + space;
        Some((line.get(..head_len)?.trim_end(), pdu))
    } else {
        None
    }
}

/// A quoted-or-bare token, used for numbers like `"+123",145`.
pub fn token(i: &str) -> IResult<&str, &str> {
    alt((
        delimited(char('"'), take_till(|c| c == '"'), opt(char('"'))),
        take_while(|c: char| c != ','),
    ))
    .parse(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_table() {
        use Field::*;
        let table: &[(&str, Vec<Field>)] = &[
            (
                "2,1,\"5E25\",\"605F\"",
                vec![Bare("2"), Bare("1"), Quoted("5E25"), Quoted("605F")],
            ),
            (
                "2,1,4CA,81DE445",
                vec![Bare("2"), Bare("1"), Bare("4CA"), Bare("81DE445")],
            ),
            (" 0 , \"x\" ,", vec![Bare("0"), Quoted("x"), Bare("")]),
            ("\"\",129", vec![Quoted(""), Bare("129")]),
            (",,27", vec![Bare(""), Bare(""), Bare("27")]),
            ("2,1,\"5E25", vec![Bare("2"), Bare("1"), Quoted("5E25")]),
            ("", vec![Bare("")]),
        ];
        for (input, want) in table {
            assert_eq!(&fields(input), want, "{input:?}");
        }
    }

    #[test]
    fn groups_and_ranges() {
        assert_eq!(groups("(2),(0-1,3),(0,2)"), vec!["2", "0-1,3", "0,2"]);
        assert_eq!(groups("\"SM\",\"SM\""), vec!["\"SM\"", "\"SM\""]);
        assert_eq!(range_list("0-1,3"), vec![0, 1, 3]);
        assert_eq!(range_list(" 0 - 2 "), vec![0, 1, 2]);
        assert_eq!(range_list("0-4294967295").len(), 256);
    }

    #[test]
    fn inline_pdu() {
        assert_eq!(
            split_inline_pdu("+CMGR: 1,,147 0791AB"),
            Some(("+CMGR: 1,,147", "0791AB"))
        );
        assert_eq!(split_inline_pdu("+CMGR: 1,,147"), None);
        assert_eq!(
            split_inline_pdu("+CMGR: \"REC READ\",\"+1\",,\"07/07/05,09:56:03+08\""),
            None
        );
        assert_eq!(clean_pdu("0791AB\""), "0791AB");
    }
}
