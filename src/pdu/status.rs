//! TP-ST, the status of a status report (TS 23.040 §9.2.3.15).

/// What the status means for the message it reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// 0x00..=0x1F: the transaction is complete (delivered, forwarded or
    /// replaced).
    Delivered,
    /// 0x20..=0x3F: a temporary error; the SC is still trying.
    Temporary,
    /// 0x40..=0x5F: a permanent error; the SC is no longer trying.
    Permanent,
    /// 0x60..=0x7F: a temporary error, but the SC is no longer trying: final
    /// for the sender.
    TemporaryFinal,
    /// 0x80..=0xFF: reserved by TS 23.040; the SC gives no category. Handled
    /// like a permanent failure (nothing will follow).
    Reserved,
}

impl StatusClass {
    /// `delivered`, `temporary` or `permanent`: the three outcomes a sender
    /// acts on. A temporary error the SC gave up on, and reserved values, are
    /// `permanent` here (no further report will come); [`StatusClass::is_final`]
    /// says whether the SC stopped.
    pub fn name(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Temporary => "temporary",
            Self::Permanent | Self::TemporaryFinal | Self::Reserved => "permanent",
        }
    }

    /// Whether the SC stopped working on the message (no later report).
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Temporary)
    }
}

/// A TP-ST octet with its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u8);

impl Status {
    /// The category of the value.
    pub fn class(self) -> StatusClass {
        match self.0 {
            0x00..=0x1F => StatusClass::Delivered,
            0x20..=0x3F => StatusClass::Temporary,
            0x40..=0x5F => StatusClass::Permanent,
            0x60..=0x7F => StatusClass::TemporaryFinal,
            _ => StatusClass::Reserved,
        }
    }

    /// The meaning TS 23.040 §9.2.3.15 gives the value.
    pub fn meaning(self) -> &'static str {
        match self.0 {
            0x00 => "short message received by the SME",
            0x01 => "short message forwarded by the SC to the SME but the SC is unable to confirm delivery",
            0x02 => "short message replaced by the SC",
            0x03..=0x0F => "reserved (transaction completed)",
            0x10..=0x1F => "SC specific (transaction completed)",
            0x20 | 0x60 => "congestion",
            0x21 | 0x61 => "SME busy",
            0x22 | 0x62 => "no response from SME",
            0x23 | 0x63 => "service rejected",
            0x24 | 0x64 | 0x44 => "quality of service not available",
            0x25 | 0x65 => "error in SME",
            0x26..=0x2F => "reserved (temporary error, SC still trying)",
            0x30..=0x3F => "SC specific (temporary error, SC still trying)",
            0x40 => "remote procedure error",
            0x41 => "incompatible destination",
            0x42 => "connection rejected by SME",
            0x43 => "not obtainable",
            0x45 => "no interworking available",
            0x46 => "SM validity period expired",
            0x47 => "SM deleted by originating SME",
            0x48 => "SM deleted by SC administration",
            0x49 => "SM does not exist",
            0x4A..=0x4F => "reserved (permanent error)",
            0x50..=0x5F => "SC specific (permanent error)",
            0x66..=0x6F => "reserved (temporary error, SC not trying)",
            0x70..=0x7F => "SC specific (temporary error, SC not trying)",
            _ => "reserved",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_and_meanings() {
        assert_eq!(Status(0).class().name(), "delivered");
        assert_eq!(Status(0x21).class().name(), "temporary");
        assert!(!Status(0x21).class().is_final());
        assert_eq!(Status(0x46).meaning(), "SM validity period expired");
        assert_eq!(Status(0x46).class().name(), "permanent");
        assert_eq!(Status(0x62).class(), StatusClass::TemporaryFinal);
        assert_eq!(Status(0x62).class().name(), "permanent");
        assert_eq!(Status(0xAB).class(), StatusClass::Reserved);
    }
}
