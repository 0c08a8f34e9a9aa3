//! Text mode (`+CMGF=1`), TS 27.005 §3.1 and §3.4-3.5: messages shown and
//! entered as text. Needs the PDU codec to read and build TPDUs.

use super::storage::Stored;
use super::{Fail, SimModem};

impl SimModem {
    /// `+CMGL` entry in text mode.
    pub(super) fn text_cmgl(&self, index: usize, msg: &Stored) -> Result<Vec<String>, Fail> {
        let _ = (index, msg);
        Err(Fail::Cms(303))
    }

    /// `+CMGR` answer in text mode.
    pub(super) fn text_cmgr(&self, msg: &Stored) -> Result<Vec<String>, Fail> {
        let _ = msg;
        Err(Fail::Cms(303))
    }

    /// Builds the SMS-SUBMIT of a text-mode `+CMGS`/`+CMGW`.
    pub(super) fn text_submit(&self, da: &str, text: &str) -> Result<Vec<u8>, Fail> {
        let _ = (da, text);
        Err(Fail::Cms(303))
    }
}
