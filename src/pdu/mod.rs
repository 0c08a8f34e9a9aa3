//! SMS PDU codec, 3GPP TS 23.040 (transfer layer) and TS 23.038 (alphabets).
//!
//! Everything here is pure: it takes bytes (and, for reassembly, the current
//! time) and returns values or a precise [`PduError`]. No I/O, no async.
//!
//! * [`decode`] / [`decode_hex`]: one PDU as a modem prints it (SMSC field
//!   and TPDU), given the [`Direction`] it travels in (TP-MTI depends on it).
//! * [`encode_submit`]: text to the SMS-SUBMIT parts AT+CMGS needs, picking
//!   GSM 7-bit or UCS-2 and splitting with a concatenation header.
//! * [`encode_deliver`], [`encode_deliver_data`], [`encode_status_report`]:
//!   what a network sends, for the simulator.
//! * The field types: [`Address`], [`Timestamp`], [`ValidityPeriod`],
//!   [`Dcs`], [`Udh`], [`UserData`], [`Status`].
//!
//! Decoding never panics: every length is checked against the TS 23.040
//! maximum and against the octets present before it is used.

pub mod address;
pub mod dcs;
pub mod encode;
pub mod error;
pub mod gsm7;
pub mod json;
#[cfg(test)]
mod proptests;
pub mod reassembly;
pub mod status;
pub mod time;
pub mod tpdu;
pub mod ucs2;
pub mod ud;
pub mod udh;

pub use address::{Address, NumberingPlan, TypeOfNumber};
pub use dcs::{Alphabet, Dcs, MessageClass, ProtocolId};
pub use encode::{
    encode_deliver, encode_deliver_data, encode_status_report, encode_submit, DeliverOptions,
    EncodedPdu, ReferenceSlot, SubmitOptions,
};
pub use encode::{find_submit_reference, set_submit_reference};
pub use error::{Field, PduError, Reason};
pub use status::{Status, StatusClass};
pub use time::{Timestamp, ValidityPeriod};
pub use tpdu::{
    decode, decode_hex, Command, DecodeOptions, Deliver, Direction, Pdu, RawTpdu, StatusReport,
    Submit, Tpdu,
};
pub use ud::{Body, UserData};
pub use udh::{Concat, Ie, Ports, Udh};
