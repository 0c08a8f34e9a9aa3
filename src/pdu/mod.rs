//! SMS PDU codec, 3GPP TS 23.040 (transfer layer) and TS 23.038 (alphabets).
//!
//! Everything here is pure: it takes bytes (and, for reassembly, the current
//! time) and returns values or a precise [`PduError`]. No I/O, no async.

pub mod gsm7;
pub mod reassembly;
pub mod ucs2;
