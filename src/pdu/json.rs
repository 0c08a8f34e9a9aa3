//! The JSON view of a decoded PDU printed by `smsgate pdu decode` (field
//! names documented in `docs/pdu.md`; scripts rely on them).
