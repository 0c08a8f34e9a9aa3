//! Splitting one AT command line into commands, ITU-T V.250 §5.2-5.4 (as
//! TS 27.007 §4 adopts it): after the `AT` prefix come basic commands
//! (`E0`, `&F`, `S0=0`, spaces between them ignored) and extended commands
//! (`+CMGF=0`, `^ICCID?`, `$QCSIMSTAT?`) separated by `;`.

/// How an extended command is invoked (V.250 §5.4.2, §5.4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Form {
    /// `+CMD` (action) or a basic command's number (`E1` -> `Set("1")`
    /// is used for basic commands instead).
    Exec,
    /// `+CMD?`
    Read,
    /// `+CMD=?`
    Test,
    /// `+CMD=<args>` (raw text after `=`), or a basic command with a value.
    Set(String),
}

/// One command of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cmd {
    /// Upper-case name with its prefix: `E`, `&F`, `S0`, `+CMGS`, `^ICCID`.
    pub name: String,
    /// How it was invoked.
    pub form: Form,
}

impl Cmd {
    /// The command as written, for the `responses` table and logs
    /// (`+CSQ`, `^CPIN?`, `+CMGF=?`, `+COPS=3,0`).
    pub fn key(&self) -> String {
        match &self.form {
            Form::Exec => self.name.clone(),
            Form::Read => format!("{}?", self.name),
            Form::Test => format!("{}=?", self.name),
            Form::Set(a) => format!("{}={}", self.name, a.to_ascii_uppercase()),
        }
    }
}

/// Why a command line could not be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Syntax;

/// Characters allowed in an extended command name after its prefix
/// (V.250 §5.4.1 plus what vendors use).
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '!' | '%' | '-' | '.' | '/' | ':' | '_' | '#')
}

/// Splits the text after `AT` into commands.
pub(crate) fn parse(body: &str) -> Result<Vec<Cmd>, Syntax> {
    let chars: Vec<char> = body.chars().collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == ' ' || c == ';' {
            i += 1;
            continue;
        }
        if matches!(c, '+' | '^' | '$' | '%' | '*' | '#' | '!') {
            let start = i;
            i += 1;
            while i < chars.len() && name_char(chars[i]) {
                i += 1;
            }
            if i == start + 1 {
                return Err(Syntax);
            }
            let name: String = chars[start..i]
                .iter()
                .collect::<String>()
                .to_ascii_uppercase();
            let form = match (chars.get(i), chars.get(i + 1)) {
                (Some('='), Some('?')) => {
                    i += 2;
                    Form::Test
                }
                (Some('?'), _) => {
                    i += 1;
                    Form::Read
                }
                (Some('='), _) => {
                    i += 1;
                    let arg_start = i;
                    let mut quoted = false;
                    while i < chars.len() && (quoted || chars[i] != ';') {
                        if chars[i] == '"' {
                            quoted = !quoted;
                        }
                        i += 1;
                    }
                    Form::Set(chars[arg_start..i].iter().collect())
                }
                _ => Form::Exec,
            };
            cmds.push(Cmd { name, form });
            continue;
        }
        // Basic commands.
        let upper = c.to_ascii_uppercase();
        if upper == 'D' {
            // Dial takes the rest of the line (V.250 §6.3.1).
            let rest: String = chars[i + 1..].iter().collect();
            cmds.push(Cmd {
                name: "D".into(),
                form: Form::Set(rest),
            });
            break;
        }
        let mut name = String::new();
        if c == '&' || c == '\\' {
            name.push(c);
            i += 1;
            match chars.get(i) {
                Some(l) if l.is_ascii_alphabetic() => name.push(l.to_ascii_uppercase()),
                _ => return Err(Syntax),
            }
            i += 1;
        } else if upper == 'S' {
            name.push('S');
            i += 1;
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return Err(Syntax);
            }
            name.extend(&chars[start..i]);
            let form = match chars.get(i) {
                Some('?') => {
                    i += 1;
                    Form::Read
                }
                Some('=') => {
                    i += 1;
                    let vs = i;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                    Form::Set(chars[vs..i].iter().collect())
                }
                _ => Form::Exec,
            };
            cmds.push(Cmd { name, form });
            continue;
        } else if upper.is_ascii_alphabetic() {
            name.push(upper);
            i += 1;
        } else {
            return Err(Syntax);
        }
        let vs = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let form = if i > vs {
            Form::Set(chars[vs..i].iter().collect())
        } else if chars.get(i) == Some(&'?') {
            i += 1;
            Form::Read
        } else {
            Form::Exec
        };
        cmds.push(Cmd { name, form });
    }
    Ok(cmds)
}

/// One parameter of an extended command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Arg {
    /// The text, without quotes.
    pub text: String,
    /// Whether it was a quoted string.
    pub quoted: bool,
}

impl Arg {
    /// Whether the parameter was left out (`AT+CNMI=2,,0`).
    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && !self.quoted
    }

    /// The value as a number, if it is one.
    pub fn num<T: std::str::FromStr>(&self) -> Option<T> {
        if self.quoted {
            return None;
        }
        self.text.trim().parse().ok()
    }
}

/// Splits `a,"b,c",,d` into parameters; `None` for an unterminated string.
pub(crate) fn args(raw: &str) -> Option<Vec<Arg>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut in_quotes = false;
    for c in raw.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                quoted = true;
            }
            ',' if !in_quotes => {
                out.push(Arg {
                    text: if quoted {
                        cur.clone()
                    } else {
                        cur.trim().to_string()
                    },
                    quoted,
                });
                cur.clear();
                quoted = false;
            }
            _ => cur.push(c),
        }
    }
    if in_quotes {
        return None;
    }
    out.push(Arg {
        text: if quoted { cur } else { cur.trim().to_string() },
        quoted,
    });
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, form: Form) -> Cmd {
        Cmd {
            name: name.into(),
            form,
        }
    }

    #[test]
    fn splits_lines_as_v250_says() {
        let set = |s: &str| Form::Set(s.into());
        let table: &[(&str, Vec<Cmd>)] = &[
            ("", vec![]),
            ("E0", vec![c("E", set("0"))]),
            ("e1v1", vec![c("E", set("1")), c("V", set("1"))]),
            ("Z", vec![c("Z", Form::Exec)]),
            ("&F", vec![c("&F", Form::Exec)]),
            (
                "Q0 V1 E1 S0=0 &C1 &D2 +FCLASS=0",
                vec![
                    c("Q", set("0")),
                    c("V", set("1")),
                    c("E", set("1")),
                    c("S0", set("0")),
                    c("&C", set("1")),
                    c("&D", set("2")),
                    c("+FCLASS", set("0")),
                ],
            ),
            (
                "+CMEE=1;+CREG=2",
                vec![c("+CMEE", set("1")), c("+CREG", set("2"))],
            ),
            ("+cpms=?", vec![c("+CPMS", Form::Test)]),
            ("^ICCID?", vec![c("^ICCID", Form::Read)]),
            ("$TSSPCSW=?", vec![c("$TSSPCSW", Form::Test)]),
            (
                "+CMGS=\"+1;2\";+CSQ",
                vec![c("+CMGS", set("\"+1;2\"")), c("+CSQ", Form::Exec)],
            ),
            ("D+15551234567;", vec![c("D", set("+15551234567;"))]),
            ("S3?", vec![c("S3", Form::Read)]),
        ];
        for (line, want) in table {
            assert_eq!(&parse(line).unwrap(), want, "{line:?}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for line in ["+", "&", "S", "\u{1b}", "@@", "&1"] {
            assert_eq!(parse(line), Err(Syntax), "{line:?}");
        }
    }

    #[test]
    fn splits_args() {
        let a = args("\"SM\",\"a,b\",,3").unwrap();
        assert_eq!(a.len(), 4);
        assert_eq!(a[1].text, "a,b");
        assert!(a[2].is_empty());
        assert_eq!(a[3].num::<u8>(), Some(3));
        assert!(args("\"open").is_none());
    }
}
