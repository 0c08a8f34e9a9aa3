//! The command interpreter: one function per command family, each citing the
//! clause it follows. Answers are pushed as information lines; the caller
//! frames them and adds the final result code.

use std::time::{Duration, Instant};

use super::cmdline::{args, Arg, Cmd, Form};
use super::config::Cnmi;
use super::peek;
use super::storage::{Filter, Mem, Stat, Stored};
use super::{
    Fail, NetEvent, PromptKind, Settings, SimModem, SimState, MAX_TPDU, PIN_TRIES, PUK, PUK_TRIES,
};

/// What the line runner does after a command succeeded.
#[derive(Debug)]
pub(super) enum Flow {
    /// Run the next command of the line.
    Next,
    /// Run the next command; the final result comes this much later (a
    /// network search takes a while).
    Delay(Duration),
    /// Run the next command; after the final `OK` is out, do this.
    Then(After),
    /// Print `> ` and collect text until Ctrl-Z or ESC.
    Prompt(PromptKind),
}

/// Work that happens once the final result code has gone out.
#[derive(Debug)]
pub(super) enum After {
    /// `+CFUN=1,1`: reset after answering `OK`.
    Reboot,
    /// The SIM accepted a PIN/PUK: ready URCs and registration follow.
    SimReady,
    /// A USSD request: the network answers later.
    Ussd(String),
    /// `+CFUN` changed the radio: registration URCs follow.
    Radio,
    /// `+CNMI` left `<mode>` 0 with `<bfr>` 0: flush buffered indications.
    FlushBuffered,
}

/// Operator names of the simulated network (TS 27.007 §7.3 formats 0/1/2).
const OPERATOR_LONG: &str = "smsgate sim";
const OPERATOR_SHORT: &str = "SIMNET";
/// How long `AT+COPS=?` searches (real modems take 10 s to minutes).
const COPS_SEARCH: Duration = Duration::from_secs(2);

/// Verbose `+CME ERROR` text (`+CMEE=2`), TS 27.007 §9.2.1.
pub(super) fn cme_text(code: u16) -> String {
    match code {
        3 => "operation not allowed",
        4 => "operation not supported",
        10 => "SIM not inserted",
        11 => "SIM PIN required",
        12 => "SIM PUK required",
        13 => "SIM failure",
        14 => "SIM busy",
        16 => "incorrect password",
        30 => "no network service",
        50 => "incorrect parameters",
        100 => "unknown",
        262 => "SIM blocked",
        _ => return code.to_string(),
    }
    .to_string()
}

/// `0`/`1` of a basic command such as `E` or `V` (no number means 0).
fn flag(form: &Form) -> Result<bool, Fail> {
    match form {
        Form::Exec => Ok(false),
        Form::Set(n) => match n.parse::<u8>() {
            Ok(0) => Ok(false),
            Ok(1) => Ok(true),
            _ => Err(Fail::Error),
        },
        _ => Err(Fail::Error),
    }
}

/// The parameters of a set command, or `ERROR` for an unterminated string.
fn set_args(raw: &str) -> Result<Vec<Arg>, Fail> {
    args(raw).ok_or(Fail::Error)
}

/// Parameter `i` as a number in `0..=max`; `None` when left out.
fn opt_num(a: &[Arg], i: usize, max: u8) -> Result<Option<u8>, Fail> {
    match a.get(i) {
        None => Ok(None),
        Some(x) if x.is_empty() => Ok(None),
        Some(x) => match x.num::<u8>() {
            Some(n) if n <= max => Ok(Some(n)),
            _ => Err(Fail::Error),
        },
    }
}

const CSCS_LIST: &str = "(\"GSM\",\"IRA\",\"8859-1\",\"UCS2\",\"HEX\")";

/// Digits as a SIM file holds them: padded with `F` to whole bytes, the
/// two digits of each byte swapped (TS 31.102 §4.1.1).
fn swapped_bcd(digits: &str) -> String {
    let mut padded: Vec<char> = digits.chars().collect();
    if padded.len() % 2 == 1 {
        padded.push('F');
    }
    padded.chunks(2).flat_map(|p| p.iter().rev()).collect()
}

impl SimModem {
    /// Runs one command.
    pub(super) fn exec(
        &mut self,
        cmd: &Cmd,
        now: Instant,
        info: &mut Vec<String>,
    ) -> Result<Flow, Fail> {
        let key = cmd.key();
        if let Some(lines) = self.cfg.responses.get(&key) {
            let lines: Vec<String> = lines.iter().map(|l| self.render(l)).collect();
            info.extend(lines);
            return Ok(Flow::Next);
        }
        if self.cfg.unsupported.contains(&cmd.name) {
            return Err(Fail::Unknown);
        }
        if let Some(prefix) = self.cfg.iccid_commands.get(&key) {
            info.push(if prefix.is_empty() {
                self.id.iccid.clone()
            } else {
                format!("{prefix}: {}", self.id.iccid)
            });
            return Ok(Flow::Next);
        }
        if self.cfg.reset_command.as_deref() == Some(key.as_str()) {
            return Ok(Flow::Then(After::Reboot));
        }
        let form = &cmd.form;
        match cmd.name.as_str() {
            // ---- V.250 basic commands -------------------------------------
            "E" => self.set.echo = flag(form)?,
            "V" => self.set.verbose = flag(form)?,
            "Q" => self.set.quiet = flag(form)?,
            "Z" | "&F" => {
                // V.250 §6.1.1/§6.1.2: back to the stored / factory profile.
                self.set = Settings::defaults(&self.cfg);
            }
            "I" => {
                let lines: Vec<String> = self.cfg.ati.iter().map(|l| self.render(l)).collect();
                info.extend(lines);
            }
            "X" | "L" | "M" | "&C" | "&D" | "&K" | "&S" | "&W" | "&V" | "H" | "T" | "P" => {}
            "A" | "D" | "O" => return Err(Fail::NoCarrier),
            s if s.starts_with('S') && s[1..].bytes().all(|b| b.is_ascii_digit()) => {
                self.sreg(s, form, info)?
            }
            // ---- TS 27.007 §5 identification ---------------------------------
            "+CGMI" | "+GMI" => self.ident(form, info, self.cfg.manufacturer.clone())?,
            "+CGMM" | "+GMM" => self.ident(form, info, self.cfg.model.clone())?,
            "+CGMR" | "+GMR" => self.ident(form, info, self.cfg.revision.clone())?,
            "+CGSN" | "+GSN" => self.ident(form, info, self.id.imei.clone())?,
            "+CIMI" => {
                self.need_sim(false)?;
                self.ident(form, info, self.id.imsi.clone())?
            }
            "+CCID" | "+ICCID" => match form {
                Form::Exec | Form::Read => info.push(format!("+CCID: {}", self.id.iccid)),
                Form::Test => {}
                Form::Set(_) => return Err(Fail::Error),
            },
            // TS 27.007 §8.18: only READ BINARY (176) of EF_ICCID (0x2FE2)
            // is answered, in the swapped BCD the SIM stores (TS 31.102
            // §4.1.1); any other file is "not found" (SW 0x6A82).
            "+CRSM" => match form {
                Form::Set(raw) => {
                    let a = set_args(raw)?;
                    let n = |i: usize| a.get(i).and_then(|x| x.num::<u32>());
                    if n(0) == Some(176) && n(1) == Some(0x2FE2) {
                        info.push(format!("+CRSM: 144,0,\"{}\"", swapped_bcd(&self.id.iccid)));
                    } else {
                        info.push("+CRSM: 106,130,\"\"".into());
                    }
                }
                Form::Test => {}
                _ => return Err(Fail::Error),
            },
            "+CNUM" => {
                self.need_sim(false)?;
                if *form == Form::Exec {
                    let ty = if self.id.number.starts_with('+') {
                        145
                    } else {
                        129
                    };
                    info.push(format!("+CNUM: \"\",\"{}\",{ty}", self.id.number));
                }
            }
            "+GCAP" => info.push("+GCAP: +CGSM,+DS,+ES".into()),
            "+CPAS" => match form {
                Form::Test => info.push("+CPAS: (0-5)".into()),
                _ => info.push("+CPAS: 0".into()),
            },
            // ---- TS 27.007 §9.1 error reporting -----------------------------
            "+CMEE" => self.simple_setting(form, info, "+CMEE", 2, |s| &mut s.cmee)?,
            // ---- TS 27.007 §5.5 character set -------------------------------
            "+CSCS" => match form {
                Form::Read => info.push(format!("+CSCS: \"{}\"", self.set.cscs)),
                Form::Test => info.push(format!("+CSCS: {CSCS_LIST}")),
                Form::Set(raw) => {
                    let a = set_args(raw)?;
                    let cs = a
                        .first()
                        .map(|x| x.text.to_ascii_uppercase())
                        .unwrap_or_default();
                    if !["GSM", "IRA", "8859-1", "UCS2", "HEX"].contains(&cs.as_str()) {
                        return Err(Fail::Cme(4));
                    }
                    self.set.cscs = cs;
                }
                Form::Exec => return Err(Fail::Error),
            },
            // ---- TS 27.007 §8.2-8.3 power and PIN ----------------------------
            "+CFUN" => return self.cfun(form, info),
            "+CPIN" => return self.cpin(form, info),
            "+CPINR" => self.cpinr(form, info)?,
            "+CLCK" => self.clck(form, info)?,
            // ---- TS 27.007 §7.2, §10.1.20, §10.1.22 registration -------------
            "+CREG" => self.reg(form, info, "+CREG", |s| &mut s.creg_n)?,
            "+CGREG" => self.reg(form, info, "+CGREG", |s| &mut s.cgreg_n)?,
            "+CEREG" => self.reg(form, info, "+CEREG", |s| &mut s.cereg_n)?,
            "+CSQ" => match form {
                Form::Test => info.push("+CSQ: (0-31,99),(0-7,99)".into()),
                Form::Exec => info.push(format!("+CSQ: {},99", self.rssi())),
                _ => return Err(Fail::Error),
            },
            "+COPS" => return self.cops(form, info),
            "+CGATT" => match form {
                Form::Read => info.push(format!("+CGATT: {}", u8::from(self.registered()))),
                Form::Test => info.push("+CGATT: (0,1)".into()),
                Form::Set(raw) => {
                    opt_num(&set_args(raw)?, 0, 1)?;
                }
                Form::Exec => return Err(Fail::Error),
            },
            "+CBC" => match form {
                Form::Test => info.push("+CBC: (0-3),(0-100)".into()),
                _ => info.push("+CBC: 0,100".into()),
            },
            "+CUSD" => return self.cusd(form, info),
            // ---- V.250 / TS 27.007 port settings ------------------------------
            "+IFC" => match form {
                Form::Read => info.push(format!("+IFC: {},{}", self.set.ifc.0, self.set.ifc.1)),
                Form::Test => info.push("+IFC: (0-2),(0-2)".into()),
                Form::Set(raw) => {
                    let a = set_args(raw)?;
                    let dce = opt_num(&a, 0, 2)?.unwrap_or(2);
                    let dte = opt_num(&a, 1, 2)?.unwrap_or(2);
                    self.set.ifc = (dce, dte);
                }
                Form::Exec => self.set.ifc = (2, 2),
            },
            "+IPR" => match form {
                Form::Read => info.push("+IPR: 115200".into()),
                Form::Test => {
                    info.push("+IPR: (0,9600,19200,38400,57600,115200,230400,460800,921600)".into())
                }
                _ => {}
            },
            "+ICF" | "+CSCB" | "+CLIP" | "+CRC" | "+CVHU" | "+CMOD" | "+FCLASS" => {
                if let Form::Read = form {
                    info.push(format!("{}: 0", cmd.name));
                }
            }
            // ---- TS 27.005 SMS -------------------------------------------------
            "+CSMS" => match form {
                Form::Read => info.push(format!("+CSMS: {},1,1,1", self.set.csms)),
                Form::Test => info.push("+CSMS: (0,1)".into()),
                Form::Set(raw) => {
                    self.set.csms = opt_num(&set_args(raw)?, 0, 1)?.ok_or(Fail::Error)?;
                    info.push("+CSMS: 1,1,1".into());
                }
                Form::Exec => return Err(Fail::Error),
            },
            "+CMGF" => self.simple_setting(form, info, "+CMGF", 1, |s| &mut s.cmgf)?,
            "+CSDH" => self.simple_setting(form, info, "+CSDH", 1, |s| &mut s.csdh)?,
            "+CMMS" => self.simple_setting(form, info, "+CMMS", 2, |s| &mut s.cmms)?,
            "+CSMP" => match form {
                Form::Read => {
                    let [fo, vp, pid, dcs] = self.set.csmp;
                    info.push(format!("+CSMP: {fo},{vp},{pid},{dcs}"));
                }
                Form::Test => {}
                Form::Set(raw) => {
                    let a = set_args(raw)?;
                    let mut v = self.set.csmp;
                    for (i, slot) in v.iter_mut().enumerate() {
                        if let Some(n) = opt_num(&a, i, 255)? {
                            *slot = n;
                        }
                    }
                    self.set.csmp = v;
                }
                Form::Exec => return Err(Fail::Error),
            },
            "+CSCA" => self.csca(form, info)?,
            "+CPMS" => self.cpms(form, info)?,
            "+CNMI" => return self.cnmi(form, info),
            "+CNMA" => self.cnma(form, info, now)?,
            "+CMGL" => self.cmgl(form, info)?,
            "+CMGR" => self.cmgr(form, info)?,
            "+CMGD" => self.cmgd(form, info)?,
            "+CMGS" => return self.cmgs(form),
            "+CMGW" => return self.cmgw(form),
            "+CMSS" => self.cmss(form, info)?,
            _ => return Err(Fail::Unknown),
        }
        Ok(Flow::Next)
    }

    /// Runs the work that follows a final `OK` due at `due`.
    pub(super) fn after(&mut self, a: After, due: Instant) {
        match a {
            After::Reboot => self.start_reboot(due),
            After::SimReady => self.sim_became_ready(due),
            After::Radio => self.registration_changed(due),
            After::Ussd(text) => self.ussd = Some((due + super::USSD_DELAY, text)),
            After::FlushBuffered => {
                for b in std::mem::take(&mut self.buffered) {
                    self.queue(due, b);
                }
            }
        }
    }

    /// The SIM must be unlocked: `+CME ERROR: 11/12` (TS 27.007 §9.2.1) or,
    /// for SMS commands, `+CMS ERROR: 311/316` (TS 27.005 §3.2.5).
    fn need_sim(&self, sms: bool) -> Result<(), Fail> {
        let (cme, cms) = match self.sim {
            SimState::Ready if sms && self.sms_busy_until.is_some() => return Err(Fail::Cms(314)),
            SimState::Ready => return Ok(()),
            SimState::NeedPin => (11, 311),
            SimState::NeedPuk => (12, 316),
            SimState::Blocked => (262, 310),
        };
        Err(if sms { Fail::Cms(cms) } else { Fail::Cme(cme) })
    }

    fn ident(&self, form: &Form, info: &mut Vec<String>, value: String) -> Result<(), Fail> {
        match form {
            Form::Exec => info.push(value),
            Form::Test => {}
            _ => return Err(Fail::Error),
        }
        Ok(())
    }

    fn sreg(&mut self, name: &str, form: &Form, info: &mut Vec<String>) -> Result<(), Fail> {
        let n: usize = name[1..].parse().map_err(|_| Fail::Error)?;
        match form {
            Form::Read => {
                let v = self.set.sregs.get(n).copied().unwrap_or(0);
                info.push(format!("{v:03}"));
            }
            Form::Set(v) => {
                let v: u8 = v.parse().map_err(|_| Fail::Error)?;
                if let Some(slot) = self.set.sregs.get_mut(n) {
                    *slot = v;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A setting with `?`, `=?` listing `(0-max)` and `=n`.
    fn simple_setting(
        &mut self,
        form: &Form,
        info: &mut Vec<String>,
        name: &str,
        max: u8,
        field: impl Fn(&mut Settings) -> &mut u8,
    ) -> Result<(), Fail> {
        match form {
            Form::Read => {
                let v = *field(&mut self.set);
                info.push(format!("{name}: {v}"));
            }
            Form::Test => {
                if max == 1 {
                    info.push(format!("{name}: (0,1)"));
                } else {
                    info.push(format!("{name}: (0-{max})"));
                }
            }
            Form::Set(raw) => {
                let v = opt_num(&set_args(raw)?, 0, max)?.unwrap_or(0);
                *field(&mut self.set) = v;
            }
            Form::Exec => *field(&mut self.set) = 0,
        }
        Ok(())
    }

    /// `+CFUN`, TS 27.007 §8.2.
    fn cfun(&mut self, form: &Form, info: &mut Vec<String>) -> Result<Flow, Fail> {
        match form {
            Form::Read => info.push(format!("+CFUN: {}", self.cfun)),
            Form::Test => info.push("+CFUN: (0,1,4),(0,1)".into()),
            Form::Set(raw) => {
                let a = set_args(raw)?;
                let fun = opt_num(&a, 0, 4)?.ok_or(Fail::Error)?;
                if !matches!(fun, 0 | 1 | 4) {
                    return Err(Fail::Cme(4));
                }
                let rst = opt_num(&a, 1, 1)?.unwrap_or(0);
                if rst == 1 {
                    return Ok(Flow::Then(After::Reboot));
                }
                self.cfun = fun;
                return Ok(Flow::Then(After::Radio));
            }
            Form::Exec => return Err(Fail::Error),
        }
        Ok(Flow::Next)
    }

    /// `+CPIN`, TS 27.007 §8.3; three wrong PINs ask for the PUK, ten wrong
    /// PUKs block the SIM.
    fn cpin(&mut self, form: &Form, info: &mut Vec<String>) -> Result<Flow, Fail> {
        match form {
            Form::Read => {
                if self.sim == SimState::Blocked {
                    return Err(Fail::Cme(262));
                }
                let code = self.render("{cpin}");
                info.push(format!("+CPIN: {code}"));
                Ok(Flow::Next)
            }
            Form::Test | Form::Exec => Ok(Flow::Next),
            Form::Set(raw) => {
                let a = set_args(raw)?;
                let first = a.first().map(|x| x.text.clone()).unwrap_or_default();
                match self.sim {
                    SimState::Ready => Err(Fail::Cme(3)),
                    SimState::Blocked => Err(Fail::Cme(262)),
                    SimState::NeedPin => {
                        if Some(&first) == self.pin.as_ref() {
                            tracing::info!(modem = %self.id.number, "PIN accepted");
                            self.sim = SimState::Ready;
                            self.pin_left = PIN_TRIES;
                            Ok(Flow::Then(After::SimReady))
                        } else {
                            self.pin_left = self.pin_left.saturating_sub(1);
                            tracing::warn!(modem = %self.id.number, left = self.pin_left, "wrong PIN");
                            if self.pin_left == 0 {
                                self.sim = SimState::NeedPuk;
                            }
                            Err(Fail::Cme(16))
                        }
                    }
                    SimState::NeedPuk => {
                        let Some(new_pin) = a.get(1).map(|x| x.text.clone()) else {
                            return Err(Fail::Cme(50));
                        };
                        if first == PUK && (4..=8).contains(&new_pin.len()) {
                            tracing::info!(modem = %self.id.number, "PUK accepted, new PIN set");
                            self.pin = Some(new_pin);
                            self.sim = SimState::Ready;
                            self.pin_left = PIN_TRIES;
                            self.puk_left = PUK_TRIES;
                            Ok(Flow::Then(After::SimReady))
                        } else {
                            self.puk_left = self.puk_left.saturating_sub(1);
                            tracing::warn!(modem = %self.id.number, left = self.puk_left, "wrong PUK");
                            if self.puk_left == 0 {
                                self.sim = SimState::Blocked;
                            }
                            Err(Fail::Cme(16))
                        }
                    }
                }
            }
        }
    }

    /// `+CPINR`, TS 27.007 §8.65: remaining attempts.
    fn cpinr(&self, form: &Form, info: &mut Vec<String>) -> Result<(), Fail> {
        let all = [
            ("SIM PIN", self.pin_left, PIN_TRIES),
            ("SIM PUK", self.puk_left, PUK_TRIES),
        ];
        match form {
            Form::Test => {}
            Form::Exec => {
                for (code, left, max) in all {
                    info.push(format!("+CPINR: {code},{left},{max}"));
                }
            }
            Form::Set(raw) => {
                let a = set_args(raw)?;
                let sel = a
                    .first()
                    .map(|x| x.text.to_ascii_uppercase())
                    .unwrap_or_default();
                let pattern = sel.trim_end_matches('*');
                for (code, left, max) in all {
                    if code.starts_with(pattern) {
                        info.push(format!("+CPINR: {code},{left},{max}"));
                    }
                }
            }
            Form::Read => return Err(Fail::Error),
        }
        Ok(())
    }

    /// `+CLCK="SC",2`, TS 27.007 §7.4: only the SIM lock query.
    fn clck(&self, form: &Form, info: &mut Vec<String>) -> Result<(), Fail> {
        match form {
            Form::Test => info.push("+CLCK: (\"SC\")".into()),
            Form::Set(raw) => {
                let a = set_args(raw)?;
                let fac = a
                    .first()
                    .map(|x| x.text.to_ascii_uppercase())
                    .unwrap_or_default();
                let mode = opt_num(&a, 1, 2)?.ok_or(Fail::Error)?;
                if fac != "SC" || mode != 2 {
                    return Err(Fail::Cme(4));
                }
                info.push(format!("+CLCK: {}", u8::from(self.pin.is_some())));
            }
            _ => return Err(Fail::Error),
        }
        Ok(())
    }

    fn reg(
        &mut self,
        form: &Form,
        info: &mut Vec<String>,
        name: &str,
        field: impl Fn(&mut Settings) -> &mut u8,
    ) -> Result<(), Fail> {
        match form {
            Form::Read => {
                let n = *field(&mut self.set);
                info.push(format!("{name}: {}", self.reg_fields(n, true)));
            }
            Form::Test => info.push(format!("{name}: (0-2)")),
            Form::Set(raw) => {
                let n = opt_num(&set_args(raw)?, 0, 5)?.unwrap_or(0);
                *field(&mut self.set) = n.min(2);
            }
            Form::Exec => *field(&mut self.set) = 0,
        }
        Ok(())
    }

    /// `+COPS`, TS 27.007 §7.3; `+COPS=3,<format>` changes what `+COPS?`
    /// prints (gammu crashes if the numeric form is not honoured).
    fn cops(&mut self, form: &Form, info: &mut Vec<String>) -> Result<Flow, Fail> {
        let act = self.cfg.access_technology.unwrap_or(0);
        let numeric = self.id.imsi.get(..5).unwrap_or("00101").to_string();
        match form {
            Form::Read => {
                if self.registered() {
                    let name = match self.set.cops_format {
                        0 => OPERATOR_LONG.to_string(),
                        1 => OPERATOR_SHORT.to_string(),
                        _ => numeric,
                    };
                    info.push(format!(
                        "+COPS: {},{},\"{name}\",{act}",
                        self.set.cops_mode.min(1),
                        self.set.cops_format
                    ));
                } else {
                    info.push(format!("+COPS: {}", self.set.cops_mode));
                }
                Ok(Flow::Next)
            }
            Form::Test => {
                if self.cfun != 1 {
                    return Err(Fail::Cme(30));
                }
                info.push(format!(
                    "+COPS: (2,\"{OPERATOR_LONG}\",\"{OPERATOR_SHORT}\",\"{numeric}\",{act}),,(0,1,2,3,4),(0,1,2)"
                ));
                Ok(Flow::Delay(COPS_SEARCH))
            }
            Form::Set(raw) => {
                let a = set_args(raw)?;
                let mode = opt_num(&a, 0, 4)?.ok_or(Fail::Error)?;
                let format = opt_num(&a, 1, 2)?;
                match mode {
                    3 => {
                        self.set.cops_format = format.ok_or(Fail::Error)?;
                        return Ok(Flow::Next);
                    }
                    1 | 4 => {
                        let oper = a.get(2).map(|x| x.text.clone()).unwrap_or_default();
                        let known = [OPERATOR_LONG, OPERATOR_SHORT, numeric.as_str()];
                        if !known.contains(&oper.as_str()) && mode == 1 {
                            return Err(Fail::Cme(30));
                        }
                    }
                    _ => {}
                }
                if let Some(f) = format {
                    self.set.cops_format = f;
                }
                self.set.cops_mode = if mode == 2 { 2 } else { 0 };
                Ok(Flow::Then(After::Radio))
            }
            Form::Exec => Err(Fail::Error),
        }
    }

    /// `+CUSD`, TS 27.007 §7.15: the answer comes later as `+CUSD: 0,...`.
    fn cusd(&mut self, form: &Form, info: &mut Vec<String>) -> Result<Flow, Fail> {
        match form {
            Form::Read => info.push(format!("+CUSD: {}", self.set.cusd_n)),
            Form::Test => info.push("+CUSD: (0-2)".into()),
            Form::Exec => self.set.cusd_n = 0,
            Form::Set(raw) => {
                let a = set_args(raw)?;
                let n = opt_num(&a, 0, 2)?.unwrap_or(0);
                if n != 2 {
                    self.set.cusd_n = n;
                }
                if let Some(req) = a.get(1).filter(|x| !x.is_empty()) {
                    self.need_sim(false)?;
                    if !self.registered() {
                        return Err(Fail::Cme(30));
                    }
                    let code = self
                        .decode_text(&req.text)
                        .unwrap_or_else(|| req.text.clone());
                    let reply = format!("Balance: 10.00 (request {code})");
                    return Ok(Flow::Then(After::Ussd(reply)));
                }
            }
        }
        Ok(Flow::Next)
    }

    /// `+CSCA`, TS 27.005 §3.3.1.
    fn csca(&mut self, form: &Form, info: &mut Vec<String>) -> Result<(), Fail> {
        self.need_sim(true)?;
        match form {
            Form::Read => {
                let ty = if self.smsc.starts_with('+') { 145 } else { 129 };
                info.push(format!("+CSCA: \"{}\",{ty}", self.encode_text(&self.smsc)));
            }
            Form::Test => {}
            Form::Set(raw) => {
                let a = set_args(raw)?;
                let num = a.first().ok_or(Fail::Error)?;
                let num = self.decode_text(&num.text).ok_or(Fail::Cms(304))?;
                let ok = num.len() <= 21
                    && num
                        .char_indices()
                        .all(|(i, c)| c.is_ascii_digit() || (c == '+' && i == 0));
                if !ok {
                    return Err(Fail::Cms(304));
                }
                self.smsc = num;
            }
            Form::Exec => return Err(Fail::Error),
        }
        Ok(())
    }

    /// `+CPMS`, TS 27.005 §3.2.2.
    fn cpms(&mut self, form: &Form, info: &mut Vec<String>) -> Result<(), Fail> {
        self.need_sim(true)?;
        match form {
            Form::Test => info.push(
                "+CPMS: (\"SM\",\"ME\",\"MT\",\"SR\"),(\"SM\",\"ME\",\"MT\"),(\"SM\",\"ME\",\"MT\")"
                    .into(),
            ),
            Form::Read => {
                let parts: Vec<String> = self
                    .mem
                    .iter()
                    .map(|m| {
                        format!("\"{}\",{},{}", m.name(), self.store.used(*m), self.store.total(*m))
                    })
                    .collect();
                info.push(format!("+CPMS: {}", parts.join(",")));
            }
            Form::Set(raw) => {
                let a = set_args(raw)?;
                if a.len() > 3 {
                    return Err(Fail::Error);
                }
                let mut mem = self.mem;
                for (i, x) in a.iter().enumerate() {
                    if x.is_empty() {
                        continue;
                    }
                    let m = Mem::parse(&x.text).ok_or(Fail::Cms(302))?;
                    // SR only holds status reports: it can be read, not
                    // written to or received into.
                    if i > 0 && m == Mem::Sr {
                        return Err(Fail::Cms(302));
                    }
                    if let Some(slot) = mem.get_mut(i) {
                        *slot = m;
                    }
                }
                self.mem = mem;
                let parts: Vec<String> = self
                    .mem
                    .iter()
                    .map(|m| format!("{},{}", self.store.used(*m), self.store.total(*m)))
                    .collect();
                info.push(format!("+CPMS: {}", parts.join(",")));
            }
            Form::Exec => return Err(Fail::Error),
        }
        Ok(())
    }

    /// `+CNMI`, TS 27.005 §3.4.1; left-out values keep their setting.
    fn cnmi(&mut self, form: &Form, info: &mut Vec<String>) -> Result<Flow, Fail> {
        match form {
            Form::Read => {
                let v = self.set.cnmi.to_array();
                info.push(format!(
                    "+CNMI: {},{},{},{},{}",
                    v[0], v[1], v[2], v[3], v[4]
                ));
            }
            Form::Test => info.push("+CNMI: (0-2),(0-3),(0-3),(0-2),(0,1)".into()),
            Form::Set(raw) => {
                let a = set_args(raw)?;
                if a.len() > 5 {
                    return Err(Fail::Error);
                }
                let mut v = self.set.cnmi.to_array();
                for (i, slot) in v.iter_mut().enumerate() {
                    let max = Cnmi::MAX.get(i).copied().unwrap_or(0);
                    if let Some(n) = opt_num(&a, i, max).map_err(|_| Fail::Cms(303))? {
                        *slot = n;
                    }
                }
                let was_buffering = self.set.cnmi.mode == 0;
                self.set.cnmi = Cnmi::from_array(v);
                if was_buffering && self.set.cnmi.mode != 0 {
                    if self.set.cnmi.bfr == 0 {
                        return Ok(Flow::Then(After::FlushBuffered));
                    }
                    self.buffered.clear();
                }
            }
            Form::Exec => self.set.cnmi = Cnmi::from_array([0; 5]),
        }
        Ok(Flow::Next)
    }

    /// `+CNMA`, TS 27.005 §3.4.4: acknowledges the `+CMT`/`+CDS` in flight.
    fn cnma(&mut self, form: &Form, info: &mut Vec<String>, now: Instant) -> Result<(), Fail> {
        let _ = now;
        let nack = match form {
            Form::Test => {
                if self.set.cmgf == 0 {
                    info.push("+CNMA: (0-2)".into());
                }
                return Ok(());
            }
            Form::Read => return Err(Fail::Error),
            Form::Exec => false,
            Form::Set(raw) => {
                if self.set.cmgf == 1 {
                    return Err(Fail::Error);
                }
                opt_num(&set_args(raw)?, 0, 2)? == Some(2)
            }
        };
        if self.set.csms != 1 {
            return Err(Fail::Cms(340));
        }
        let Some(a) = self.awaiting_ack.take() else {
            return Err(Fail::Cms(340));
        };
        if nack {
            // RP-ERROR: the network would keep and retry the message; the
            // simulator keeps it in storage instead so nothing is lost.
            tracing::info!(modem = %self.id.number, "+CNMA=2: message kept in storage");
            let mem = if a.msg.is_report {
                self.cfg.status_report_storage
            } else {
                self.mem[2]
            };
            let _ = self.store.store(mem, a.msg);
        }
        Ok(())
    }

    /// Zero-based slot of the index the DTE gave, `+CMS ERROR: 321` when out
    /// of range.
    fn slot(&self, mem: Mem, arg: Option<&Arg>) -> Result<usize, Fail> {
        let n: usize = arg.and_then(|a| a.num()).ok_or(Fail::Error)?;
        let i = n.checked_sub(self.cfg.index_base).ok_or(Fail::Cms(321))?;
        if i >= self.store.capacity(mem) {
            return Err(Fail::Cms(321));
        }
        Ok(i)
    }

    /// The message at the index the DTE gave: `+CMS ERROR: 321` when the
    /// index is out of range or empty.
    fn stored_at(&self, mem: Mem, arg: Option<&Arg>) -> Result<(usize, Stored), Fail> {
        let i = self.slot(mem, arg)?;
        let msg = self.store.get(mem, i).cloned().ok_or(Fail::Cms(321))?;
        Ok((i, msg))
    }

    /// `+CMGL`, TS 27.005 §3.4.2 (PDU mode §4.1); listing marks unread
    /// messages read.
    fn cmgl(&mut self, form: &Form, info: &mut Vec<String>) -> Result<(), Fail> {
        self.need_sim(true)?;
        let text = self.set.cmgf == 1;
        let filter = match form {
            Form::Test => {
                info.push(if text {
                    "+CMGL: (\"REC UNREAD\",\"REC READ\",\"STO UNSENT\",\"STO SENT\",\"ALL\")"
                        .into()
                } else {
                    "+CMGL: (0-4)".into()
                });
                return Ok(());
            }
            Form::Read => return Err(Fail::Error),
            Form::Exec => Filter::Only(Stat::RecUnread),
            Form::Set(raw) => {
                let a = set_args(raw)?;
                let x = a.first().ok_or(Fail::Error)?;
                parse_filter(x, text)?
            }
        };
        let mem = self.mem[0];
        for i in self.store.list(mem, filter) {
            let Some(msg) = self.store.get(mem, i).cloned() else {
                continue;
            };
            let index = i + self.cfg.index_base;
            if text {
                info.extend(self.text_cmgl(index, &msg)?);
            } else {
                info.push(format!(
                    "+CMGL: {index},{},,{}",
                    msg.stat.number(),
                    msg.tpdu.len()
                ));
                info.push(msg.pdu_hex());
            }
            self.store.mark_read(mem, i);
        }
        Ok(())
    }

    /// `+CMGR`, TS 27.005 §3.4.3 (PDU mode §4.2).
    fn cmgr(&mut self, form: &Form, info: &mut Vec<String>) -> Result<(), Fail> {
        self.need_sim(true)?;
        let Some(a) = set_only(form)? else {
            return Ok(());
        };
        let mem = self.mem[0];
        let (i, msg) = self.stored_at(mem, a.first())?;
        if self.set.cmgf == 1 {
            info.extend(self.text_cmgr(&msg)?);
        } else {
            info.push(format!("+CMGR: {},,{}", msg.stat.number(), msg.tpdu.len()));
            info.push(msg.pdu_hex());
        }
        self.store.mark_read(mem, i);
        Ok(())
    }

    /// `+CMGD`, TS 27.005 §3.5.4.
    fn cmgd(&mut self, form: &Form, info: &mut Vec<String>) -> Result<(), Fail> {
        self.need_sim(true)?;
        let mem = self.mem[0];
        let raw = match form {
            Form::Test => {
                let used: Vec<String> = self
                    .store
                    .list(mem, Filter::All)
                    .iter()
                    .map(|i| (i + self.cfg.index_base).to_string())
                    .collect();
                info.push(format!("+CMGD: ({}),(0-4)", used.join(",")));
                return Ok(());
            }
            Form::Set(raw) => raw,
            _ => return Err(Fail::Error),
        };
        let a = set_args(raw)?;
        let delflag = opt_num(&a, 1, 4)?.unwrap_or(0);
        if delflag == 0 {
            let i = self.slot(mem, a.first())?;
            self.store.delete(mem, i);
            tracing::debug!(modem = %self.id.number, mem = mem.name(), index = i + self.cfg.index_base, "deleted");
            return Ok(());
        }
        self.store.delete_where(mem, |s| match delflag {
            1 => s == Stat::RecRead,
            2 => matches!(s, Stat::RecRead | Stat::StoSent),
            3 => s != Stat::RecUnread,
            _ => true,
        });
        Ok(())
    }

    /// `+CMGS`, TS 27.005 §3.5.1 (PDU mode §4.3): prompt for the PDU.
    fn cmgs(&mut self, form: &Form) -> Result<Flow, Fail> {
        self.need_sim(true)?;
        let raw = match form {
            Form::Test => return Ok(Flow::Next),
            Form::Set(raw) => raw,
            _ => return Err(Fail::Error),
        };
        let a = set_args(raw)?;
        let first = a.first().ok_or(Fail::Error)?;
        if self.set.cmgf == 1 {
            let da = self.decode_text(&first.text).ok_or(Fail::Cms(305))?;
            if da.is_empty() {
                return Err(Fail::Cms(305));
            }
            return Ok(Flow::Prompt(PromptKind::SendText { da }));
        }
        let len: usize = first.num().ok_or(Fail::Error)?;
        if len == 0 || len > MAX_TPDU {
            return Err(Fail::Cms(304));
        }
        Ok(Flow::Prompt(PromptKind::SendPdu { len }))
    }

    /// `+CMGW`, TS 27.005 §3.5.3 (PDU mode §4.4).
    fn cmgw(&mut self, form: &Form) -> Result<Flow, Fail> {
        self.need_sim(true)?;
        let raw = match form {
            Form::Test => return Ok(Flow::Next),
            Form::Set(raw) => raw,
            _ => return Err(Fail::Error),
        };
        let a = set_args(raw)?;
        if self.set.cmgf == 1 {
            let da = match a.first() {
                Some(x) if !x.is_empty() => self.decode_text(&x.text).ok_or(Fail::Cms(305))?,
                _ => String::new(),
            };
            let stat = match a.get(2) {
                Some(x) if !x.is_empty() => Stat::from_text(&x.text).ok_or(Fail::Cms(305))?,
                _ => Stat::StoUnsent,
            };
            return Ok(Flow::Prompt(PromptKind::WriteText { da, stat }));
        }
        let len: usize = a.first().and_then(|x| x.num()).ok_or(Fail::Error)?;
        if len == 0 || len > MAX_TPDU {
            return Err(Fail::Cms(304));
        }
        let stat = match opt_num(&a, 1, 3).map_err(|_| Fail::Cms(304))? {
            Some(n) => Stat::from_number(n).ok_or(Fail::Cms(304))?,
            None => Stat::StoUnsent,
        };
        Ok(Flow::Prompt(PromptKind::WritePdu { len, stat }))
    }

    /// `+CMSS`, TS 27.005 §3.5.2: send a stored SMS-SUBMIT.
    fn cmss(&mut self, form: &Form, info: &mut Vec<String>) -> Result<(), Fail> {
        self.need_sim(true)?;
        let Some(a) = set_only(form)? else {
            return Ok(());
        };
        let mem = self.mem[1];
        let (i, msg) = self.stored_at(mem, a.first())?;
        if peek::mti(&msg.tpdu) != Some(peek::MTI_SUBMIT) {
            return Err(Fail::Cms(302));
        }
        if a.get(1).is_some_and(|x| !x.is_empty()) {
            // A new destination means re-encoding TP-DA: not simulated.
            return Err(Fail::Cms(303));
        }
        let has_smsc = msg.smsc.first().is_some_and(|l| *l > 0);
        let mr = self.submit(msg.tpdu.clone(), has_smsc)?;
        self.store.set_stat(mem, i, Stat::StoSent);
        info.push(format!("+CMSS: {mr}"));
        Ok(())
    }

    /// Handles the text typed after a prompt once Ctrl-Z arrives.
    pub(super) fn exec_prompt(
        &mut self,
        kind: &PromptKind,
        buf: &[u8],
        info: &mut Vec<String>,
    ) -> Result<(), Fail> {
        match kind {
            PromptKind::SendPdu { len } => {
                let (smsc, tpdu) = parse_pdu_input(buf, *len)?;
                if !peek::submit_ok(&tpdu) {
                    return Err(Fail::Cms(304));
                }
                let mr = self.submit(tpdu, smsc.len() > 1)?;
                info.push(format!("+CMGS: {mr}"));
                Ok(())
            }
            PromptKind::WritePdu { len, stat } => {
                let (smsc, tpdu) = parse_pdu_input(buf, *len)?;
                let msg = Stored {
                    stat: *stat,
                    smsc,
                    tpdu,
                    is_report: false,
                };
                let mem = self.mem[1];
                let i = self.store.store(mem, msg).ok_or(Fail::Cms(322))?;
                info.push(format!("+CMGW: {}", i + self.cfg.index_base));
                Ok(())
            }
            PromptKind::SendText { da } => {
                let text = String::from_utf8_lossy(buf).into_owned();
                let tpdu = self.text_submit(da, &text)?;
                let mr = self.submit(tpdu, false)?;
                info.push(format!("+CMGS: {mr}"));
                Ok(())
            }
            PromptKind::WriteText { da, stat } => {
                let text = String::from_utf8_lossy(buf).into_owned();
                let tpdu = self.text_submit(da, &text)?;
                let msg = Stored {
                    stat: *stat,
                    smsc: vec![0],
                    tpdu,
                    is_report: false,
                };
                let mem = self.mem[1];
                let i = self.store.store(mem, msg).ok_or(Fail::Cms(322))?;
                info.push(format!("+CMGW: {}", i + self.cfg.index_base));
                Ok(())
            }
        }
    }

    /// Hands an SMS-SUBMIT to the network: TP-MR assigned (TS 23.040
    /// §9.2.3.6), faults applied, [`NetEvent::Submitted`] emitted.
    fn submit(&mut self, mut tpdu: Vec<u8>, has_smsc: bool) -> Result<u8, Fail> {
        if !self.registered() {
            return Err(Fail::Cms(331));
        }
        if !has_smsc && self.smsc.is_empty() {
            return Err(Fail::Cms(330));
        }
        if self.faults.send_error {
            tracing::info!(modem = %self.id.number, "fault: plain ERROR on send");
            return Err(Fail::Error);
        }
        if let Some((code, rate)) = self.faults.cms_error {
            if self.random() < rate {
                tracing::info!(modem = %self.id.number, code, "fault: +CMS ERROR on send");
                return Err(Fail::Cms(code));
            }
        }
        self.mr = self.mr.wrapping_add(1);
        let mr = self.mr;
        if let Some(slot) = tpdu.get_mut(1) {
            *slot = mr;
        }
        tracing::info!(modem = %self.id.number, mr, len = tpdu.len(), "SMS-SUBMIT sent");
        self.events.push(NetEvent::Submitted { tpdu, mr });
        Ok(mr)
    }
}

/// The parameters of an action that only has a set form and a test form
/// (`None` for the test form, which just answers `OK`).
fn set_only(form: &Form) -> Result<Option<Vec<Arg>>, Fail> {
    match form {
        Form::Test => Ok(None),
        Form::Set(raw) => set_args(raw).map(Some),
        _ => Err(Fail::Error),
    }
}

/// `<stat>` of `+CMGL`: a number in PDU mode, a name in text mode.
fn parse_filter(x: &Arg, text: bool) -> Result<Filter, Fail> {
    if text {
        if x.text.eq_ignore_ascii_case("ALL") {
            return Ok(Filter::All);
        }
        return Stat::from_text(&x.text)
            .map(Filter::Only)
            .ok_or(Fail::Cms(305));
    }
    match x.num::<u8>() {
        Some(4) => Ok(Filter::All),
        Some(n) => Stat::from_number(n).map(Filter::Only).ok_or(Fail::Cms(304)),
        None => Err(Fail::Cms(304)),
    }
}

/// Splits the hex typed after a PDU-mode prompt into the SMSC field and a
/// TPDU of exactly `len` octets (TS 27.005 §4.3); `+CMS ERROR: 304` when it
/// is not hex or the lengths disagree.
fn parse_pdu_input(buf: &[u8], len: usize) -> Result<(Vec<u8>, Vec<u8>), Fail> {
    let hex_text: Vec<u8> = buf
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let bytes = hex::decode(&hex_text).map_err(|_| Fail::Cms(304))?;
    let sca_len = usize::from(*bytes.first().ok_or(Fail::Cms(304))?);
    if sca_len > 11 {
        return Err(Fail::Cms(304));
    }
    let split = 1 + sca_len;
    if bytes.len() != split + len {
        return Err(Fail::Cms(304));
    }
    let tpdu = bytes.get(split..).ok_or(Fail::Cms(304))?.to_vec();
    let smsc = bytes.get(..split).ok_or(Fail::Cms(304))?.to_vec();
    Ok((smsc, tpdu))
}
