//! The TPDUs of TS 23.040 §9.2.2 and the PDU of the AT interface (TS 27.005
//! §3.1: an optional SMSC field, then the TPDU): types, decoding (nom) and
//! encoding of one PDU.

use nom::Parser;

use super::address::{parse_address, parse_smsc, Address};
use super::dcs::{Alphabet, Dcs, ProtocolId};
use super::error::{
    fail, from_hex, into_fail, octet, take_field, Field, PResult, PduError, Reason,
};
use super::gsm7::Tables;
use super::status::Status;
use super::time::{parse_timestamp, parse_validity, Timestamp, ValidityFormat, ValidityPeriod};
use super::ud::{encode_user_data, parse_user_data, Body, Payload, UserData};

/// Which way a TPDU travels. TP-MTI only makes sense with it: MTI 0 is an
/// SMS-DELIVER from the network but an SMS-DELIVER-REPORT from a phone
/// (TS 23.040 §9.2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// What a modem hands over at the AT interface (+CMGR, +CMGL, +CMT,
    /// +CDS): received SMS-DELIVER (0), stored SMS-SUBMIT (1) and
    /// SMS-STATUS-REPORT (2). The default.
    #[default]
    AtInterface,
    /// Network to phone: SMS-DELIVER (0), SMS-SUBMIT-REPORT (1),
    /// SMS-STATUS-REPORT (2).
    MobileTerminated,
    /// Phone to network: SMS-DELIVER-REPORT (0), SMS-SUBMIT (1), SMS-COMMAND
    /// (2).
    MobileOriginated,
}

/// How to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Which way the PDU travels.
    pub direction: Direction,
    /// Whether the bytes start with the SMSC field (true for everything a
    /// modem prints in PDU mode, TS 27.005 §3.1).
    pub smsc: bool,
    /// National language tables to assume when the header does not name any
    /// (the default alphabet unless the operator configured otherwise).
    pub tables: Tables,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            direction: Direction::AtInterface,
            smsc: true,
            tables: Tables::default(),
        }
    }
}

/// A PDU as exchanged with a modem: the SMSC address (if the field was
/// there and not empty) and the TPDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    /// The service centre address; `None` for `00` or no field.
    pub smsc: Option<Address>,
    /// The transfer protocol data unit.
    pub tpdu: Tpdu,
    /// Octets of the TPDU (the `<length>` of AT+CMGS/+CMGR).
    pub tpdu_len: usize,
}

/// One TPDU (TS 23.040 §9.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tpdu {
    /// SMS-DELIVER: a message from the network.
    Deliver(Deliver),
    /// SMS-SUBMIT: a message to the network.
    Submit(Submit),
    /// SMS-STATUS-REPORT: the fate of a submitted message.
    StatusReport(StatusReport),
    /// SMS-DELIVER-REPORT (recognised, not interpreted).
    DeliverReport(RawTpdu),
    /// SMS-SUBMIT-REPORT (recognised, not interpreted).
    SubmitReport(RawTpdu),
    /// SMS-COMMAND.
    Command(Command),
}

impl Tpdu {
    /// `deliver`, `submit`, `status-report`, `deliver-report`,
    /// `submit-report` or `command`.
    pub fn kind(&self) -> &'static str {
        match self {
            Tpdu::Deliver(_) => "deliver",
            Tpdu::Submit(_) => "submit",
            Tpdu::StatusReport(_) => "status-report",
            Tpdu::DeliverReport(_) => "deliver-report",
            Tpdu::SubmitReport(_) => "submit-report",
            Tpdu::Command(_) => "command",
        }
    }

    /// The user data, for the TPDUs that have it.
    pub fn user_data(&self) -> Option<&UserData> {
        match self {
            Tpdu::Deliver(d) => Some(&d.user_data),
            Tpdu::Submit(s) => Some(&s.user_data),
            Tpdu::StatusReport(r) => r.user_data.as_ref(),
            _ => None,
        }
    }

    /// The data coding scheme, for the TPDUs that have it.
    pub fn dcs(&self) -> Option<Dcs> {
        match self {
            Tpdu::Deliver(d) => Some(d.dcs),
            Tpdu::Submit(s) => Some(s.dcs),
            Tpdu::StatusReport(r) => r.dcs,
            _ => None,
        }
    }
}

/// A report TPDU kept as its octets: its layout depends on whether it
/// answers with RP-ACK or RP-ERROR, which only the lower layer knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTpdu {
    /// The first octet.
    pub first_octet: u8,
    /// All octets of the TPDU, first octet included.
    pub octets: Vec<u8>,
}

/// SMS-DELIVER (TS 23.040 §9.2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    /// The first octet as received.
    pub first_octet: u8,
    /// TP-MMS inverted: the SC has more messages waiting.
    pub more_messages: bool,
    /// TP-SRI: the sender asked for a status report.
    pub status_report_indication: bool,
    /// TP-RP: a reply path is set.
    pub reply_path: bool,
    /// TP-OA.
    pub originator: Address,
    /// TP-PID.
    pub pid: ProtocolId,
    /// TP-DCS.
    pub dcs: Dcs,
    /// TP-SCTS.
    pub scts: Timestamp,
    /// TP-UDL/TP-UD.
    pub user_data: UserData,
}

/// SMS-SUBMIT (TS 23.040 §9.2.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    /// The first octet as received.
    pub first_octet: u8,
    /// TP-RD: the SC should reject a duplicate (same MR and DA).
    pub reject_duplicates: bool,
    /// TP-SRR: a status report is requested.
    pub status_report_request: bool,
    /// TP-RP: a reply path is requested.
    pub reply_path: bool,
    /// TP-MR.
    pub message_reference: u8,
    /// TP-DA.
    pub destination: Address,
    /// TP-PID.
    pub pid: ProtocolId,
    /// TP-DCS.
    pub dcs: Dcs,
    /// TP-VP (with the format of TP-VPF).
    pub validity: Option<ValidityPeriod>,
    /// TP-UDL/TP-UD.
    pub user_data: UserData,
}

/// SMS-STATUS-REPORT (TS 23.040 §9.2.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// The first octet as received.
    pub first_octet: u8,
    /// TP-MMS inverted.
    pub more_messages: bool,
    /// TP-SRQ: this reports on an SMS-COMMAND, not an SMS-SUBMIT.
    pub for_command: bool,
    /// TP-MR of the message reported on.
    pub message_reference: u8,
    /// TP-RA: the recipient of that message.
    pub recipient: Address,
    /// TP-SCTS: when the SC received that message.
    pub scts: Timestamp,
    /// TP-DT: when the status was reached (delivered, failed...).
    pub discharge_time: Timestamp,
    /// TP-ST.
    pub status: Status,
    /// TP-PI, when present.
    pub parameter_indicator: Option<u8>,
    /// TP-PID when TP-PI says so.
    pub pid: Option<ProtocolId>,
    /// TP-DCS when TP-PI says so.
    pub dcs: Option<Dcs>,
    /// TP-UDL/TP-UD when TP-PI says so.
    pub user_data: Option<UserData>,
}

/// SMS-COMMAND (TS 23.040 §9.2.2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The first octet.
    pub first_octet: u8,
    /// TP-SRR.
    pub status_report_request: bool,
    /// TP-MR.
    pub message_reference: u8,
    /// TP-PID.
    pub pid: ProtocolId,
    /// TP-CT: 0 enquiry, 1 cancel report request, 2 delete, 3 enable
    /// report request; others carried as is.
    pub command_type: u8,
    /// TP-MN: the TP-MR of the message the command is about.
    pub message_number: u8,
    /// TP-DA.
    pub destination: Address,
    /// TP-CD.
    pub data: Vec<u8>,
}

const MTI_MASK: u8 = 0x03;
const UDHI: u8 = 0x40;
const MMS: u8 = 0x04;
const SRI: u8 = 0x20;
const RP: u8 = 0x80;
/// Most command data octets (TS 23.040 §9.2.3.21).
const MAX_CD: usize = 156;

fn parse_deliver(tables: Tables) -> impl Fn(&[u8]) -> PResult<'_, Deliver> {
    move |input: &[u8]| {
        let (i, fo) = octet(Field::FirstOctet)(input)?;
        let (i, originator) = parse_address(Field::OriginatingAddress)(i)?;
        let (i, pid) = octet(Field::ProtocolId)(i)?;
        let (i, dcs) = octet(Field::DataCodingScheme)(i)?;
        let dcs = Dcs::from_octet(dcs);
        let (i, scts) = parse_timestamp(Field::ServiceCentreTimestamp)(i)?;
        let (i, user_data) = parse_user_data(dcs, fo & UDHI != 0, tables)(i)?;
        Ok((
            i,
            Deliver {
                first_octet: fo,
                more_messages: fo & MMS == 0,
                status_report_indication: fo & SRI != 0,
                reply_path: fo & RP != 0,
                originator,
                pid: ProtocolId(pid),
                dcs,
                scts,
                user_data,
            },
        ))
    }
}

fn parse_submit(tables: Tables) -> impl Fn(&[u8]) -> PResult<'_, Submit> {
    move |input: &[u8]| {
        let (i, fo) = octet(Field::FirstOctet)(input)?;
        let (i, mr) = octet(Field::MessageReference)(i)?;
        let (i, destination) = parse_address(Field::DestinationAddress)(i)?;
        let (i, pid) = octet(Field::ProtocolId)(i)?;
        let (i, dcs) = octet(Field::DataCodingScheme)(i)?;
        let dcs = Dcs::from_octet(dcs);
        let (i, validity) = parse_validity(ValidityFormat::from_first_octet(fo))(i)?;
        let (i, user_data) = parse_user_data(dcs, fo & UDHI != 0, tables)(i)?;
        Ok((
            i,
            Submit {
                first_octet: fo,
                reject_duplicates: fo & 0x04 != 0,
                status_report_request: fo & SRI != 0,
                reply_path: fo & RP != 0,
                message_reference: mr,
                destination,
                pid: ProtocolId(pid),
                dcs,
                validity,
                user_data,
            },
        ))
    }
}

fn parse_status_report(tables: Tables) -> impl Fn(&[u8]) -> PResult<'_, StatusReport> {
    move |input: &[u8]| {
        let (i, fo) = octet(Field::FirstOctet)(input)?;
        let (i, mr) = octet(Field::MessageReference)(i)?;
        let (i, recipient) = parse_address(Field::RecipientAddress)(i)?;
        let (i, scts) = parse_timestamp(Field::ServiceCentreTimestamp)(i)?;
        let (i, discharge_time) = parse_timestamp(Field::DischargeTime)(i)?;
        let (mut i, st) = octet(Field::Status)(i)?;
        let mut report = StatusReport {
            first_octet: fo,
            more_messages: fo & MMS == 0,
            for_command: fo & SRI != 0,
            message_reference: mr,
            recipient,
            scts,
            discharge_time,
            status: Status(st),
            parameter_indicator: None,
            pid: None,
            dcs: None,
            user_data: None,
        };
        // TP-PI and what it announces are optional (TS 23.040 §9.2.3.27).
        // Reports read from SIM storage come padded with 0xFF to the record
        // size (TS 31.102 EF-SMSR); all-0xFF after TP-ST is padding, not a PI.
        if i.iter().all(|&b| b == 0xFF) {
            return Ok((&i[i.len()..], report));
        }
        if let Ok((rest, pi)) = octet(Field::ParameterIndicator)(i) {
            report.parameter_indicator = Some(pi);
            i = rest;
            // Extension octets (bit 7) carry only reserved bits: skip them.
            let mut ext = pi;
            while ext & 0x80 != 0 {
                let (rest, e) = octet(Field::ParameterIndicator)(i)?;
                ext = e;
                i = rest;
            }
            if pi & 0x01 != 0 {
                let (rest, pid) = octet(Field::ProtocolId)(i)?;
                report.pid = Some(ProtocolId(pid));
                i = rest;
            }
            if pi & 0x02 != 0 {
                let (rest, dcs) = octet(Field::DataCodingScheme)(i)?;
                report.dcs = Some(Dcs::from_octet(dcs));
                i = rest;
            }
            if pi & 0x04 != 0 {
                let dcs = report.dcs.unwrap_or(Dcs::from_octet(0));
                let (rest, ud) = parse_user_data(dcs, fo & UDHI != 0, tables)(i)?;
                report.user_data = Some(ud);
                i = rest;
            }
        }
        Ok((i, report))
    }
}

fn parse_command(input: &[u8]) -> PResult<'_, Command> {
    let (i, fo) = octet(Field::FirstOctet)(input)?;
    let (i, mr) = octet(Field::MessageReference)(i)?;
    let (i, pid) = octet(Field::ProtocolId)(i)?;
    let (i, ct) = octet(Field::CommandType)(i)?;
    let (i, mn) = octet(Field::MessageNumber)(i)?;
    let (i, destination) = parse_address(Field::DestinationAddress)(i)?;
    let (i, cdl) = octet(Field::CommandData)(i)?;
    if usize::from(cdl) > MAX_CD {
        return fail(
            Field::CommandData,
            Reason::TooLong {
                len: cdl.into(),
                max: MAX_CD,
            },
            i,
        );
    }
    let (i, cd) = take_field(usize::from(cdl), Field::CommandData)(i)?;
    Ok((
        i,
        Command {
            first_octet: fo,
            status_report_request: fo & SRI != 0,
            message_reference: mr,
            pid: ProtocolId(pid),
            command_type: ct,
            message_number: mn,
            destination,
            data: cd.to_vec(),
        },
    ))
}

/// Parses one TPDU (no SMSC field) travelling in `direction`.
pub fn parse_tpdu(opts: DecodeOptions) -> impl Fn(&[u8]) -> PResult<'_, Tpdu> {
    move |input: &[u8]| {
        let (_, fo) = octet(Field::FirstOctet)(input)?;
        let raw = || {
            Ok((
                &input[input.len()..],
                RawTpdu {
                    first_octet: fo,
                    octets: input.to_vec(),
                },
            ))
        };
        let t = opts.tables;
        use Direction::*;
        match (opts.direction, fo & MTI_MASK) {
            (AtInterface | MobileTerminated, 0) => parse_deliver(t).map(Tpdu::Deliver).parse(input),
            (AtInterface | MobileOriginated, 1) => parse_submit(t).map(Tpdu::Submit).parse(input),
            (AtInterface | MobileTerminated, 2) => {
                parse_status_report(t).map(Tpdu::StatusReport).parse(input)
            }
            (MobileTerminated, 1) => raw().map(|(i, r)| (i, Tpdu::SubmitReport(r))),
            (MobileOriginated, 0) => raw().map(|(i, r)| (i, Tpdu::DeliverReport(r))),
            (MobileOriginated, 2) => parse_command.map(Tpdu::Command).parse(input),
            _ => fail(
                Field::FirstOctet,
                Reason::Invalid("TP-MTI 3 is reserved"),
                input,
            ),
        }
    }
}

/// Parses a whole PDU: the SMSC field when `opts.smsc`, then the TPDU.
/// Octets after the end of the TPDU are ignored (some modems pad).
pub fn parse_pdu(opts: DecodeOptions) -> impl Fn(&[u8]) -> PResult<'_, Pdu> {
    move |input: &[u8]| {
        let (i, smsc) = if opts.smsc {
            parse_smsc(input)?
        } else {
            (input, None)
        };
        let tpdu_len = i.len();
        let (rest, tpdu) = parse_tpdu(opts)(i)?;
        Ok((
            rest,
            Pdu {
                smsc,
                tpdu,
                tpdu_len,
            },
        ))
    }
}

/// Decodes a PDU from its octets.
pub fn decode(bytes: &[u8], opts: DecodeOptions) -> Result<Pdu, PduError> {
    match parse_pdu(opts)(bytes) {
        Ok((_, pdu)) => Ok(pdu),
        Err(e) => Err(into_fail(e, bytes).at(bytes.len())),
    }
}

/// Decodes a PDU from hex, as a modem prints it.
pub fn decode_hex(hex: &str, opts: DecodeOptions) -> Result<Pdu, PduError> {
    decode(&from_hex(hex)?, opts)
}

/// Appends the user data of `ud` coded as `dcs` says.
fn encode_ud(dcs: Dcs, ud: &UserData, out: &mut Vec<u8>) -> Result<(), PduError> {
    let header = ud.header.as_ref();
    match &ud.body {
        Body::Text(t) if dcs.alphabet == Alphabet::Gsm7 && !dcs.compressed => {
            let septets = super::gsm7::encode(t, ud.tables)
                .map_err(|e| PduError::encode("text", e.to_string()))?;
            encode_user_data(header, Payload::Septets(&septets), out);
        }
        Body::Text(t) => encode_user_data(header, Payload::Octets(&super::ucs2::encode(t)), out),
        Body::Data(d) => encode_user_data(header, Payload::Octets(d), out),
    }
    Ok(())
}

impl Deliver {
    /// Appends the TPDU octets. The first octet is rebuilt from the fields
    /// (TP-UDHI from the header).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), PduError> {
        let mut fo = 0x00;
        if !self.more_messages {
            fo |= MMS;
        }
        if self.status_report_indication {
            fo |= SRI;
        }
        if self.reply_path {
            fo |= RP;
        }
        if self.user_data.header.is_some() {
            fo |= UDHI;
        }
        out.push(fo);
        self.originator
            .encode(out)
            .map_err(|e| PduError::encode("originator", e))?;
        out.push(self.pid.0);
        out.push(self.dcs.raw);
        out.extend_from_slice(&self.scts.raw);
        encode_ud(self.dcs, &self.user_data, out)?;
        Ok(())
    }
}

impl Submit {
    /// Appends the TPDU octets (the first octet is rebuilt from the fields).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), PduError> {
        let mut fo = 0x01;
        if self.reject_duplicates {
            fo |= 0x04;
        }
        if let Some(vp) = &self.validity {
            fo |= vp.format().first_octet_bits();
        }
        if self.status_report_request {
            fo |= SRI;
        }
        if self.reply_path {
            fo |= RP;
        }
        if self.user_data.header.is_some() {
            fo |= UDHI;
        }
        out.push(fo);
        out.push(self.message_reference);
        self.destination
            .encode(out)
            .map_err(|e| PduError::encode("recipient", e))?;
        out.push(self.pid.0);
        out.push(self.dcs.raw);
        if let Some(vp) = &self.validity {
            vp.encode(out);
        }
        encode_ud(self.dcs, &self.user_data, out)?;
        Ok(())
    }
}

impl StatusReport {
    /// Appends the TPDU octets (TP-PI is written when any optional field is
    /// present or was present).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), PduError> {
        let mut fo = 0x02;
        if !self.more_messages {
            fo |= MMS;
        }
        if self.for_command {
            fo |= SRI;
        }
        if self.user_data.as_ref().is_some_and(|u| u.header.is_some()) {
            fo |= UDHI;
        }
        out.push(fo);
        out.push(self.message_reference);
        self.recipient
            .encode(out)
            .map_err(|e| PduError::encode("recipient", e))?;
        out.extend_from_slice(&self.scts.raw);
        out.extend_from_slice(&self.discharge_time.raw);
        out.push(self.status.0);
        let pi = u8::from(self.pid.is_some())
            | (u8::from(self.dcs.is_some()) << 1)
            | (u8::from(self.user_data.is_some()) << 2);
        if pi != 0 || self.parameter_indicator.is_some() {
            out.push(pi);
        }
        if let Some(pid) = self.pid {
            out.push(pid.0);
        }
        if let Some(dcs) = self.dcs {
            out.push(dcs.raw);
        }
        if let Some(ud) = &self.user_data {
            encode_ud(self.dcs.unwrap_or(Dcs::from_octet(0)), ud, out)?;
        }
        Ok(())
    }
}

impl Pdu {
    /// The octets: SMSC field (`00` when there is none) and TPDU. Reports
    /// and commands are written back as they were received.
    pub fn encode(&self) -> Result<Vec<u8>, PduError> {
        let mut out = Vec::with_capacity(176);
        match &self.smsc {
            Some(a) => a
                .encode_smsc(&mut out)
                .map_err(|e| PduError::encode("SMSC", e))?,
            None => out.push(0),
        }
        match &self.tpdu {
            Tpdu::Deliver(d) => d.encode(&mut out)?,
            Tpdu::Submit(s) => s.encode(&mut out)?,
            Tpdu::StatusReport(r) => r.encode(&mut out)?,
            Tpdu::DeliverReport(r) | Tpdu::SubmitReport(r) => out.extend_from_slice(&r.octets),
            Tpdu::Command(c) => {
                out.push(c.first_octet);
                out.push(c.message_reference);
                out.push(c.pid.0);
                out.push(c.command_type);
                out.push(c.message_number);
                c.destination
                    .encode(&mut out)
                    .map_err(|e| PduError::encode("destination", e))?;
                out.push(c.data.len().min(MAX_CD) as u8);
                out.extend_from_slice(c.data.get(..MAX_CD).unwrap_or(&c.data));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    //! Hand-made vectors written from TS 23.040 (not taken from the corpus).
    use super::*;
    use crate::pdu::address::TypeOfNumber;
    use crate::pdu::error::Reason;
    use crate::pdu::status::StatusClass;

    fn at(hex: &str) -> Result<Pdu, PduError> {
        decode_hex(hex, DecodeOptions::default())
    }

    // SMSC +44770009123: length 7, TOA 0x91, 11 digits in swapped semi-octets.
    const SMSC: &str = "07914477009021F3";

    #[test]
    fn deliver_gsm7_with_all_header_fields() {
        // fo 0x04 (no more messages), OA +4477009001 (10 digits), PID 0,
        // DCS 0, SCTS 2024-02-29 23:59:58 +01:00 (4 quarters), "hi".
        let pdu = at(&format!("{SMSC}040A91447700900100004220923295854002E834")).unwrap();
        assert_eq!(pdu.smsc.as_ref().unwrap().to_string(), "+44770009123");
        let Tpdu::Deliver(d) = &pdu.tpdu else {
            panic!()
        };
        assert_eq!(d.originator.to_string(), "+4477000910");
        assert!(!d.more_messages);
        assert_eq!(d.scts.to_rfc3339().unwrap(), "2024-02-29T23:59:58+01:00");
        assert_eq!(d.user_data.text(), Some("hi"));
        assert_eq!(pdu.tpdu_len, 20);
    }

    #[test]
    fn direction_decides_the_mti() {
        // MTI 0 from a phone is a DELIVER-REPORT (RP-ACK form: fo, PI 0).
        let opts = DecodeOptions {
            direction: Direction::MobileOriginated,
            smsc: false,
            ..DecodeOptions::default()
        };
        let p = decode(&[0x00, 0x00], opts).unwrap();
        assert_eq!(p.tpdu.kind(), "deliver-report");
        // MTI 1 towards a phone is a SUBMIT-REPORT.
        let opts = DecodeOptions {
            direction: Direction::MobileTerminated,
            ..opts
        };
        let p = decode(
            &[0x01, 0x00, 0x42, 0x20, 0x92, 0x92, 0x95, 0x95, 0x84],
            opts,
        )
        .unwrap();
        assert_eq!(p.tpdu.kind(), "submit-report");
        // MTI 2 from a phone is an SMS-COMMAND: delete (CT 2) message 7 to 12345.
        let opts = DecodeOptions {
            direction: Direction::MobileOriginated,
            ..opts
        };
        let p = decode(&hex::decode("020500020705812143F500").unwrap(), opts).unwrap();
        let Tpdu::Command(c) = &p.tpdu else {
            panic!("{p:?}")
        };
        assert_eq!(
            (c.message_reference, c.command_type, c.message_number),
            (5, 2, 7)
        );
        assert_eq!(c.destination.value, "12345");
        // MTI 3 is reserved everywhere.
        let e = decode(&[0x03], opts).unwrap_err();
        assert!(matches!(
            e,
            PduError::Malformed {
                field: Field::FirstOctet,
                offset: 0,
                ..
            }
        ));
    }

    #[test]
    fn status_report_with_parameter_indicator() {
        // No SMSC, fo 0x06, MR 0x2A, RA 12345 (national, 0xA1), SCTS, DT,
        // ST 0x46 (validity expired), PI 0x03 (PID + DCS), PID 0, DCS 0.
        let hexs = "062A05A12143F5422092329585404220923295854046030000";
        let opts = DecodeOptions {
            smsc: false,
            ..DecodeOptions::default()
        };
        let p = decode_hex(hexs, opts).unwrap();
        let Tpdu::StatusReport(r) = &p.tpdu else {
            panic!()
        };
        assert_eq!(r.message_reference, 42);
        assert_eq!(r.recipient.ton, TypeOfNumber::National);
        assert_eq!(r.recipient.to_string(), "12345");
        assert_eq!(r.status.class(), StatusClass::Permanent);
        assert_eq!(r.status.meaning(), "SM validity period expired");
        assert_eq!(r.parameter_indicator, Some(3));
        assert_eq!(r.pid, Some(ProtocolId(0)));
        assert!(r.user_data.is_none());
        // Encoding gives the same octets back (with an empty SMSC field).
        assert_eq!(hex::encode_upper(p.encode().unwrap()), format!("00{hexs}"));
    }

    #[test]
    fn errors_name_field_and_offset() {
        // UDL 10 septets need 9 octets; only 2 present.
        let e = at(&format!("{SMSC}040A91447700900100004220923295854009E834")).unwrap_err();
        assert!(
            matches!(
                e,
                PduError::Malformed {
                    field: Field::UserData,
                    offset: 26,
                    reason: Reason::Truncated {
                        needed: 8,
                        available: 2
                    }
                }
            ),
            "{e}"
        );
        let e = at("0791").unwrap_err();
        assert!(
            matches!(
                e,
                PduError::Malformed {
                    field: Field::Smsc,
                    offset: 1,
                    ..
                }
            ),
            "{e}"
        );
        let e = at("").unwrap_err();
        assert!(matches!(
            e,
            PduError::Malformed {
                field: Field::SmscLength,
                offset: 0,
                ..
            }
        ));
        let e = at("0G").unwrap_err();
        assert!(matches!(
            e,
            PduError::Malformed {
                field: Field::Hex,
                reason: Reason::NotHex('G'),
                ..
            }
        ));
        let e = at("000").unwrap_err();
        assert!(matches!(
            e,
            PduError::Malformed {
                field: Field::Hex,
                reason: Reason::OddHex(3),
                ..
            }
        ));
        // SMSC length above the maximum.
        let e = at("0C91").unwrap_err();
        assert!(matches!(
            e,
            PduError::Malformed {
                field: Field::SmscLength,
                reason: Reason::TooLong { len: 12, .. },
                ..
            }
        ));
        assert!(e.to_string().contains("SMSC length at octet 0"));
    }

    #[test]
    fn submit_validity_formats() {
        // Enhanced VP (fo VPF 01): format 010, 90 seconds.
        let hexs = "0D00038121F30000025A00000000000000";
        let p = decode_hex(
            hexs,
            DecodeOptions {
                smsc: false,
                ..DecodeOptions::default()
            },
        );
        let p = p.unwrap();
        let Tpdu::Submit(s) = &p.tpdu else { panic!() };
        assert_eq!(
            s.validity.unwrap().duration(),
            Some(std::time::Duration::from_secs(90))
        );
        assert!(s.reject_duplicates);
        assert_eq!(s.user_data.text(), Some(""));
    }

    #[test]
    fn gsm7_fill_bits_after_udh() {
        // UDH 05 00 03 01 02 01 (6 octets with UDHL = 48 bits): 1 fill bit,
        // then "A" (0x41) starts at bit 49: octets 0x82 0x00 hold it.
        let hexs = "44038121F30000422092329585400805000301020182";
        let p = decode_hex(
            hexs,
            DecodeOptions {
                smsc: false,
                ..DecodeOptions::default()
            },
        )
        .unwrap();
        let ud = p.tpdu.user_data().unwrap();
        assert_eq!(ud.text(), Some("A"));
        assert_eq!(ud.header.as_ref().unwrap().concat().unwrap().seq, 1);
    }
}
