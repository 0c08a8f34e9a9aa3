//! Message storage of one simulated modem: SIM (`SM`), phone (`ME`) and
//! status-report (`SR`) memories, and the combined `MT` view, TS 27.005 §3.1
//! (`<mem1>`..`<mem3>`) and §3.2.3 (`<stat>`).
//!
//! Messages are kept as bytes (the SMSC address field and the TPDU), as a
//! real modem keeps them; nothing here decodes a TPDU.

/// A message memory, TS 27.005 §3.1 `<mem>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mem {
    /// SIM message storage.
    Sm,
    /// Mobile-equipment (modem) message storage.
    Me,
    /// Status-report storage.
    Sr,
    /// SM and ME together, SM first.
    Mt,
}

impl Mem {
    /// Parses a storage name (case-insensitive, quotes already removed).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "SM" => Some(Self::Sm),
            "ME" => Some(Self::Me),
            "SR" => Some(Self::Sr),
            "MT" => Some(Self::Mt),
            _ => None,
        }
    }

    /// The name as the modem prints it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sm => "SM",
            Self::Me => "ME",
            Self::Sr => "SR",
            Self::Mt => "MT",
        }
    }
}

/// `<stat>` of a stored message, TS 27.005 §3.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stat {
    /// 0, "REC UNREAD"
    RecUnread,
    /// 1, "REC READ"
    RecRead,
    /// 2, "STO UNSENT"
    StoUnsent,
    /// 3, "STO SENT"
    StoSent,
}

impl Stat {
    /// The PDU-mode number.
    pub fn number(self) -> u8 {
        match self {
            Self::RecUnread => 0,
            Self::RecRead => 1,
            Self::StoUnsent => 2,
            Self::StoSent => 3,
        }
    }

    /// The text-mode name.
    pub fn text(self) -> &'static str {
        match self {
            Self::RecUnread => "REC UNREAD",
            Self::RecRead => "REC READ",
            Self::StoUnsent => "STO UNSENT",
            Self::StoSent => "STO SENT",
        }
    }

    /// From a PDU-mode number (0..=3).
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            0 => Some(Self::RecUnread),
            1 => Some(Self::RecRead),
            2 => Some(Self::StoUnsent),
            3 => Some(Self::StoSent),
            _ => None,
        }
    }

    /// From a text-mode name.
    pub fn from_text(s: &str) -> Option<Self> {
        [
            Self::RecUnread,
            Self::RecRead,
            Self::StoUnsent,
            Self::StoSent,
        ]
        .into_iter()
        .find(|st| st.text().eq_ignore_ascii_case(s))
    }
}

/// Which messages a `+CMGL` or `+CMGD` call concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filter {
    /// Exactly this status.
    Only(Stat),
    /// 4 / "ALL".
    All,
}

impl Filter {
    /// Whether a message of status `stat` is selected.
    pub fn matches(self, stat: Stat) -> bool {
        match self {
            Self::All => true,
            Self::Only(s) => s == stat,
        }
    }
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    /// Its `<stat>`.
    pub stat: Stat,
    /// The SMSC address field as it goes in front of the TPDU (length octet
    /// included; `[0]` for none).
    pub smsc: Vec<u8>,
    /// The TPDU.
    pub tpdu: Vec<u8>,
    /// Whether this is an SMS-STATUS-REPORT (rendered differently in text
    /// mode).
    pub is_report: bool,
}

impl Stored {
    /// The PDU as `+CMGR`/`+CMGL` print it: SMSC field then TPDU, upper-case
    /// hex.
    pub fn pdu_hex(&self) -> String {
        let mut s = hex::encode_upper(&self.smsc);
        s.push_str(&hex::encode_upper(&self.tpdu));
        s
    }
}

/// Fixed-size slot arrays for SM, ME and SR.
#[derive(Debug, Clone)]
pub(crate) struct Storage {
    sm: Vec<Option<Stored>>,
    me: Vec<Option<Stored>>,
    sr: Vec<Option<Stored>>,
    /// Fault: pretend every memory is exactly as full as it is now.
    pub full: bool,
}

impl Storage {
    /// Empty memories of the given capacities.
    pub fn new(sm: usize, me: usize, sr: usize) -> Self {
        Self {
            sm: vec![None; sm],
            me: vec![None; me],
            sr: vec![None; sr],
            full: false,
        }
    }

    fn slots(&self, mem: Mem) -> Vec<&Option<Stored>> {
        match mem {
            Mem::Sm => self.sm.iter().collect(),
            Mem::Me => self.me.iter().collect(),
            Mem::Sr => self.sr.iter().collect(),
            Mem::Mt => self.sm.iter().chain(self.me.iter()).collect(),
        }
    }

    fn slot_mut(&mut self, mem: Mem, i: usize) -> Option<&mut Option<Stored>> {
        match mem {
            Mem::Sm => self.sm.get_mut(i),
            Mem::Me => self.me.get_mut(i),
            Mem::Sr => self.sr.get_mut(i),
            Mem::Mt => {
                let n = self.sm.len();
                if i < n {
                    self.sm.get_mut(i)
                } else {
                    self.me.get_mut(i - n)
                }
            }
        }
    }

    /// Number of occupied slots.
    pub fn used(&self, mem: Mem) -> usize {
        self.slots(mem).iter().filter(|s| s.is_some()).count()
    }

    /// Capacity as reported by `+CPMS` (shrunk to `used` under the `full`
    /// fault, so that the DTE sees a full memory and the modem refuses more).
    pub fn total(&self, mem: Mem) -> usize {
        if self.full {
            self.used(mem)
        } else {
            self.slots(mem).len()
        }
    }

    /// Number of slots (valid zero-based indices are `0..capacity`).
    pub fn capacity(&self, mem: Mem) -> usize {
        self.slots(mem).len()
    }

    /// The message at zero-based index `i`, if any.
    pub fn get(&self, mem: Mem, i: usize) -> Option<&Stored> {
        self.slots(mem).get(i).and_then(|s| s.as_ref())
    }

    /// Marks a received-unread message read (reading does that, §3.4.3).
    pub fn mark_read(&mut self, mem: Mem, i: usize) {
        if let Some(Some(m)) = self.slot_mut(mem, i) {
            if m.stat == Stat::RecUnread {
                m.stat = Stat::RecRead;
            }
        }
    }

    /// Sets the status of the message at `i` (a sent `+CMSS` message).
    pub fn set_stat(&mut self, mem: Mem, i: usize, stat: Stat) {
        if let Some(Some(m)) = self.slot_mut(mem, i) {
            m.stat = stat;
        }
    }

    /// Stores `msg` in the first free slot; its zero-based index, or `None`
    /// when the memory is full.
    pub fn store(&mut self, mem: Mem, msg: Stored) -> Option<usize> {
        if self.full {
            return None;
        }
        let i = self.slots(mem).iter().position(|s| s.is_none())?;
        let slot = self.slot_mut(mem, i)?;
        *slot = Some(msg);
        Some(i)
    }

    /// Deletes the message at `i`; `false` when `i` is out of range.
    pub fn delete(&mut self, mem: Mem, i: usize) -> bool {
        match self.slot_mut(mem, i) {
            Some(slot) => {
                *slot = None;
                true
            }
            None => false,
        }
    }

    /// Deletes every message whose status `keep` rejects (for `+CMGD`
    /// `<delflag>` 1..=4).
    pub fn delete_where(&mut self, mem: Mem, del: impl Fn(Stat) -> bool) {
        for i in 0..self.capacity(mem) {
            if let Some(slot) = self.slot_mut(mem, i) {
                if slot.as_ref().is_some_and(|m| del(m.stat)) {
                    *slot = None;
                }
            }
        }
    }

    /// Zero-based indices of the messages `filter` selects, in order.
    pub fn list(&self, mem: Mem, filter: Filter) -> Vec<usize> {
        self.slots(mem)
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().filter(|m| filter.matches(m.stat)).map(|_| i))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(stat: Stat) -> Stored {
        Stored {
            stat,
            smsc: vec![0],
            tpdu: vec![4, 0],
            is_report: false,
        }
    }

    #[test]
    fn mt_is_sm_then_me() {
        let mut st = Storage::new(1, 2, 1);
        assert_eq!(st.store(Mem::Mt, msg(Stat::RecUnread)), Some(0));
        assert_eq!(st.store(Mem::Mt, msg(Stat::RecUnread)), Some(1));
        assert_eq!(st.used(Mem::Sm), 1);
        assert_eq!(st.used(Mem::Me), 1);
        assert_eq!(st.total(Mem::Mt), 3);
        assert!(st.delete(Mem::Mt, 1));
        assert_eq!(st.used(Mem::Me), 0);
        assert!(!st.delete(Mem::Mt, 3));
    }

    #[test]
    fn full_memory_refuses_and_fault_freezes_capacity() {
        let mut st = Storage::new(1, 1, 1);
        assert_eq!(st.store(Mem::Sm, msg(Stat::RecUnread)), Some(0));
        assert_eq!(st.store(Mem::Sm, msg(Stat::RecUnread)), None);
        st.full = true;
        assert_eq!(st.total(Mem::Me), 0);
        assert_eq!(st.store(Mem::Me, msg(Stat::RecUnread)), None);
    }

    #[test]
    fn delete_where_and_list_filter() {
        let mut st = Storage::new(4, 1, 1);
        for s in [
            Stat::RecUnread,
            Stat::RecRead,
            Stat::StoUnsent,
            Stat::StoSent,
        ] {
            st.store(Mem::Sm, msg(s));
        }
        assert_eq!(st.list(Mem::Sm, Filter::Only(Stat::RecRead)), vec![1]);
        st.mark_read(Mem::Sm, 0);
        st.delete_where(Mem::Sm, |s| s == Stat::RecRead);
        assert_eq!(st.list(Mem::Sm, Filter::All), vec![2, 3]);
    }
}
