//! Text mode (`+CMGF=1`), TS 27.005 §3.1 and §3.4-3.5: messages shown and
//! entered as text instead of PDUs. The modem still stores TPDUs; text is
//! produced and parsed with the codec at the edges, as a real modem does.

use crate::pdu::{
    self, address::parse_smsc, Address, Alphabet, Body, Dcs, Direction, Submit, SubmitOptions,
    Timestamp, Tpdu, TypeOfNumber, UserData, ValidityPeriod,
};

use super::peek;
use super::storage::Stored;
use super::{Fail, SimModem};

/// `"yy/MM/dd,hh:mm:ss±zz"` (TS 27.005 §3.3.4 `<scts>`; zone in quarter
/// hours).
fn scts_text(ts: &Timestamp) -> String {
    let f = ts.fields().map(|v| v.unwrap_or(0));
    let q = ts.tz_quarters().unwrap_or(0);
    let sign = if q < 0 { '-' } else { '+' };
    format!(
        "\"{:02}/{:02}/{:02},{:02}:{:02}:{:02}{sign}{:02}\"",
        f[0],
        f[1],
        f[2],
        f[3],
        f[4],
        f[5],
        q.unsigned_abs()
    )
}

impl SimModem {
    /// `"<number>",<type>` in the `+CSCS` character set (TS 27.005 §3.1
    /// `<oa>`/`<da>`/`<ra>` with `<tooa>`).
    fn text_addr(&self, a: &Address) -> (String, u8) {
        let v = match a.ton {
            TypeOfNumber::International => format!("+{}", a.value),
            _ => a.value.clone(),
        };
        (format!("\"{}\"", self.encode_text(&v)), a.toa())
    }

    /// The SMSC of a stored message, `("",129)` when none.
    fn text_sca(&self, msg: &Stored) -> (String, u8) {
        match parse_smsc(&msg.smsc) {
            Ok((_, Some(a))) => self.text_addr(&a),
            _ => ("\"\"".into(), 129),
        }
    }

    /// `<data>`: GSM 7-bit text in the TE character set; UCS-2 and 8-bit
    /// data as hex (TS 27.005 §3.1).
    fn text_data(&self, ud: &UserData, dcs: Dcs) -> String {
        match (&ud.body, dcs.alphabet) {
            (Body::Text(t), Alphabet::Gsm7) => self.encode_text(t),
            (Body::Text(t), _) => t.encode_utf16().map(|u| format!("{u:04X}")).collect(),
            (Body::Data(d), _) => hex::encode_upper(d),
        }
    }

    /// `[,<tooa>,<fo>,<pid>,<dcs>,<sca>,<tosca>,<length>]` when `+CSDH=1`.
    fn deliver_details(&self, msg: &Stored, d: &pdu::Deliver) -> String {
        if self.set.csdh == 0 {
            return String::new();
        }
        let (_, tooa) = self.text_addr(&d.originator);
        let (sca, tosca) = self.text_sca(msg);
        format!(
            ",{tooa},{},{},{},{sca},{tosca},{}",
            d.first_octet, d.pid.0, d.dcs.raw, d.user_data.udl
        )
    }

    /// `[,<toda>,<fo>,<pid>,<dcs>,[<vp>],<sca>,<tosca>,<length>]`.
    fn submit_details(&self, msg: &Stored, s: &Submit) -> String {
        if self.set.csdh == 0 {
            return String::new();
        }
        let (_, toda) = self.text_addr(&s.destination);
        let (sca, tosca) = self.text_sca(msg);
        let vp = match s.validity {
            Some(ValidityPeriod::Relative(v)) => v.to_string(),
            _ => String::new(),
        };
        format!(
            ",{toda},{},{},{},{vp},{sca},{tosca},{}",
            s.first_octet, s.pid.0, s.dcs.raw, s.user_data.udl
        )
    }

    /// `<fo>,<mr>,[<ra>],[<tora>],<scts>,<dt>,<st>` of a status report.
    fn report_fields(&self, r: &pdu::StatusReport) -> String {
        let (ra, tora) = self.text_addr(&r.recipient);
        format!(
            "{},{},{ra},{tora},{},{},{}",
            r.first_octet,
            r.message_reference,
            scts_text(&r.scts),
            scts_text(&r.discharge_time),
            r.status.0
        )
    }

    fn decoded(msg: &Stored) -> Result<Tpdu, Fail> {
        // A stored message the codec cannot read: a real modem would print
        // garbage; we refuse with "unknown error".
        peek::decode(&msg.tpdu, Direction::AtInterface).ok_or(Fail::Cms(500))
    }

    /// `+CMGL` entry in text mode (TS 27.005 §3.4.2).
    pub(super) fn text_cmgl(&self, index: usize, msg: &Stored) -> Result<Vec<String>, Fail> {
        let stat = msg.stat.text();
        Ok(match Self::decoded(msg)? {
            Tpdu::Deliver(d) => {
                let (oa, tooa) = self.text_addr(&d.originator);
                let details = if self.set.csdh == 1 {
                    format!(",{tooa},{}", d.user_data.udl)
                } else {
                    String::new()
                };
                vec![
                    format!(
                        "+CMGL: {index},\"{stat}\",{oa},,{}{details}",
                        scts_text(&d.scts)
                    ),
                    self.text_data(&d.user_data, d.dcs),
                ]
            }
            Tpdu::Submit(s) => {
                let (da, toda) = self.text_addr(&s.destination);
                let details = if self.set.csdh == 1 {
                    format!(",{toda},{}", s.user_data.udl)
                } else {
                    String::new()
                };
                vec![
                    format!("+CMGL: {index},\"{stat}\",{da},,{details}"),
                    self.text_data(&s.user_data, s.dcs),
                ]
            }
            Tpdu::StatusReport(r) => {
                vec![format!(
                    "+CMGL: {index},\"{stat}\",{}",
                    self.report_fields(&r)
                )]
            }
            _ => return Err(Fail::Cms(500)),
        })
    }

    /// `+CMGR` answer in text mode (TS 27.005 §3.4.3).
    pub(super) fn text_cmgr(&self, msg: &Stored) -> Result<Vec<String>, Fail> {
        let stat = msg.stat.text();
        Ok(match Self::decoded(msg)? {
            Tpdu::Deliver(d) => {
                let (oa, _) = self.text_addr(&d.originator);
                vec![
                    format!(
                        "+CMGR: \"{stat}\",{oa},,{}{}",
                        scts_text(&d.scts),
                        self.deliver_details(msg, &d)
                    ),
                    self.text_data(&d.user_data, d.dcs),
                ]
            }
            Tpdu::Submit(s) => {
                let (da, _) = self.text_addr(&s.destination);
                vec![
                    format!("+CMGR: \"{stat}\",{da},{}", self.submit_details(msg, &s)),
                    self.text_data(&s.user_data, s.dcs),
                ]
            }
            Tpdu::StatusReport(r) => {
                vec![format!("+CMGR: \"{stat}\",{}", self.report_fields(&r))]
            }
            _ => return Err(Fail::Cms(500)),
        })
    }

    /// `+CMT` in text mode (TS 27.005 §3.4.1); PDU form if the codec cannot
    /// read the message.
    pub(super) fn text_cmt(&self, msg: &Stored) -> Option<Vec<String>> {
        match Self::decoded(msg).ok()? {
            Tpdu::Deliver(d) => {
                let (oa, _) = self.text_addr(&d.originator);
                Some(vec![
                    format!(
                        "+CMT: {oa},,{}{}",
                        scts_text(&d.scts),
                        self.deliver_details(msg, &d)
                    ),
                    self.text_data(&d.user_data, d.dcs),
                ])
            }
            _ => None,
        }
    }

    /// `+CDS` in text mode (TS 27.005 §3.4.1).
    pub(super) fn text_cds(&self, msg: &Stored) -> Option<Vec<String>> {
        match Self::decoded(msg).ok()? {
            Tpdu::StatusReport(r) => Some(vec![format!("+CDS: {}", self.report_fields(&r))]),
            _ => None,
        }
    }

    /// Builds the SMS-SUBMIT of a text-mode `+CMGS`/`+CMGW` from `+CSMP`
    /// (TS 27.005 §3.3.2): one part only, as a real modem (longer text is
    /// `+CMS ERROR: 305`).
    pub(super) fn text_submit(&self, da: &str, typed: &str) -> Result<Vec<u8>, Fail> {
        let to = Address::parse_number(da).map_err(|_| Fail::Cms(305))?;
        // Lines of the message are ended with CR at the prompt.
        let text = self
            .decode_text(typed)
            .ok_or(Fail::Cms(305))?
            .replace('\r', "\n");
        let [fo, vp, _pid, dcs] = self.set.csmp;
        let dcs = Dcs::from_octet(dcs);
        let opts = SubmitOptions {
            status_report: fo & 0x20 != 0,
            validity: ((fo >> 3) & 0x03 == 2).then_some(ValidityPeriod::Relative(vp)),
            force_ucs2: dcs.alphabet == Alphabet::Ucs2,
            class: dcs.class,
            ..SubmitOptions::default()
        };
        let parts = pdu::encode_submit(&to, &text, &opts).map_err(|_| Fail::Cms(305))?;
        match parts.as_slice() {
            [one] => {
                let start = one.octets.len().saturating_sub(one.tpdu_len);
                Ok(one.octets.get(start..).unwrap_or_default().to_vec())
            }
            _ => Err(Fail::Cms(305)),
        }
    }
}
