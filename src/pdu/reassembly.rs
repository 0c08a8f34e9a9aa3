//! Reassembly of concatenated short messages (TS 23.040 §9.2.3.24.1 and
//! §9.2.3.24.8: IEI 0x00 with an 8-bit reference, IEI 0x08 with a 16-bit
//! one), as a pure state machine: the caller passes the current time in, so
//! tests and the store drive it deterministically and nothing here sleeps.
//!
//! Parts are grouped by [`PartKey`] (modem, sender, reference, total). A part
//! may arrive in any order and more than once; the first copy of a sequence
//! number is kept and later copies are reported as [`Pushed::Duplicate`].
//! A group that stops receiving new parts for [`ReassemblyConfig::timeout`]
//! is handed back by [`Reassembler::expire`] as a [`Partial`] message that
//! lists the missing parts, so nothing received is ever dropped silently.
//! At most [`ReassemblyConfig::max_groups`] groups are pending: a new group
//! beyond the cap first pushes out the oldest one, again as a [`Partial`].
//!
//! ```
//! use std::time::{Duration, Instant};
//! use smsgate::pdu::reassembly::{PartKey, Pushed, Reassembler, ReassemblyConfig};
//!
//! let mut r = Reassembler::new(ReassemblyConfig::default());
//! let key = PartKey { modem: "m0".into(), sender: "+4912345".into(), reference: 7, total: 2 };
//! let now = Instant::now();
//! assert!(matches!(r.push(key.clone(), 2, "world", now), Ok(Pushed::Pending { have: 1, .. })));
//! assert_eq!(r.push(key, 1, "hello ", now), Ok(Pushed::Complete(vec!["hello ", "world"])));
//! assert!(r.expire(now + Duration::from_secs(86_400)).is_empty());
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// What identifies the parts of one concatenated message. Two messages from
/// the same sender with the same reference but a different part count are
/// different messages (the reference wraps after 256 or 65536 messages).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct PartKey {
    /// The modem that received the parts: references are per sender and
    /// SMSC, and two modems may see the same sender.
    pub modem: String,
    /// The originating address as decoded (TP-OA).
    pub sender: String,
    /// The concatenation reference; 8-bit references are widened.
    pub reference: u16,
    /// The number of parts announced in the UDH (1..=255).
    pub total: u8,
}

/// Limits of a [`Reassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// How long a group may wait for its next new part before it is given
    /// up as partial. Counted from the last *new* part, so a slowly trickling
    /// message survives, but duplicates do not keep a group alive.
    pub timeout: Duration,
    /// The most groups pending at once (at least 1 is used). Bounds memory
    /// against a flood of first parts that never complete.
    pub max_groups: usize,
}

impl Default for ReassemblyConfig {
    /// One hour and 1024 groups: SMSCs normally deliver all parts within
    /// seconds, but store-and-forward retries can delay one by many minutes.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(3600),
            max_groups: 1024,
        }
    }
}

/// A part that cannot belong to any message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassemblyError {
    /// The UDH announced zero parts; TS 23.040 §9.2.3.24.1 says such an IE
    /// shall be ignored, so the caller should treat the PDU as a single
    /// message.
    #[error("concatenation IE announces 0 parts (TS 23.040 §9.2.3.24.1: the IE must be ignored)")]
    ZeroTotal,
    /// The sequence number is 0 or above the total; TS 23.040 §9.2.3.24.1
    /// says such an IE shall be ignored.
    #[error("concatenated part number {seq} is outside 1..={total} (TS 23.040 §9.2.3.24.1)")]
    SeqOutOfRange {
        /// The sequence number received.
        seq: u8,
        /// The total announced.
        total: u8,
    },
}

/// Why a group was handed back incomplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartialReason {
    /// No new part arrived within [`ReassemblyConfig::timeout`].
    TimedOut,
    /// The group was the oldest when [`ReassemblyConfig::max_groups`] was
    /// reached.
    Evicted,
    /// The caller emptied the reassembler with [`Reassembler::drain`] (at
    /// shutdown, to store what is pending).
    Drained,
}

/// An incomplete message: the parts that did arrive, in sequence order, and
/// the sequence numbers that did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partial<T> {
    /// The group.
    pub key: PartKey,
    /// `(seq, part)` for each part received, ascending.
    pub parts: Vec<(u8, T)>,
    /// The sequence numbers never received, ascending; never empty.
    pub missing: Vec<u8>,
    /// Why the group was given up.
    pub reason: PartialReason,
}

/// The result of [`Reassembler::push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed<T> {
    /// The part completed its message: all parts in sequence order.
    Complete(Vec<T>),
    /// The part was stored; the message still lacks parts.
    Pending {
        /// Distinct parts held now.
        have: u8,
        /// Parts announced.
        total: u8,
        /// A group pushed out to make room for this one (only when the
        /// part started a new group while at the cap).
        evicted: Option<Box<Partial<T>>>,
    },
    /// A part with this sequence number is already held; the first copy is
    /// kept and this one is handed back.
    Duplicate {
        /// The repeated sequence number.
        seq: u8,
        /// The rejected copy.
        part: T,
    },
}

/// Parts of one message collected so far.
struct Group<T> {
    /// Slot `seq - 1` holds part `seq`.
    slots: Vec<Option<T>>,
    have: u8,
    /// Position in [`Reassembler::by_age`].
    age: (Instant, u64),
}

/// Collects the parts of concatenated messages; see the module doc.
pub struct Reassembler<T> {
    config: ReassemblyConfig,
    groups: HashMap<PartKey, Group<T>>,
    /// Groups by the time of their last new part (and a counter for ties),
    /// oldest first: the expiry and eviction order.
    by_age: BTreeMap<(Instant, u64), PartKey>,
    counter: u64,
}

impl<T> Reassembler<T> {
    /// An empty reassembler with these limits.
    pub fn new(config: ReassemblyConfig) -> Self {
        Self {
            config,
            groups: HashMap::new(),
            by_age: BTreeMap::new(),
            counter: 0,
        }
    }

    /// The limits in force.
    pub fn config(&self) -> ReassemblyConfig {
        self.config
    }

    /// Adds part `seq` (1-based) of the message `key` received at `now`.
    ///
    /// A single-part message (`total` 1) completes at once and is not kept.
    /// A part that arrives after its message completed starts a new group,
    /// which will later come back as a [`Partial`]: late copies stay visible
    /// instead of being guessed away.
    pub fn push(
        &mut self,
        key: PartKey,
        seq: u8,
        part: T,
        now: Instant,
    ) -> Result<Pushed<T>, ReassemblyError> {
        let total = key.total;
        if total == 0 {
            return Err(ReassemblyError::ZeroTotal);
        }
        if seq == 0 || seq > total {
            return Err(ReassemblyError::SeqOutOfRange { seq, total });
        }
        if total == 1 {
            return Ok(Pushed::Complete(vec![part]));
        }
        let index = usize::from(seq - 1);
        let age = self.next_age(now);
        if let Some(group) = self.groups.get_mut(&key) {
            let Some(slot) = group.slots.get_mut(index) else {
                // Unreachable: slots has `total` entries and seq <= total.
                return Err(ReassemblyError::SeqOutOfRange { seq, total });
            };
            if slot.is_some() {
                tracing::debug!(modem = %key.modem, sender = %key.sender, reference = key.reference, seq, "duplicate concatenated part");
                return Ok(Pushed::Duplicate { seq, part });
            }
            *slot = Some(part);
            group.have += 1;
            let have = group.have;
            let old_age = std::mem::replace(&mut group.age, age);
            self.by_age.remove(&old_age);
            if have == total {
                let parts = self
                    .groups
                    .remove(&key)
                    .map(|g| g.slots.into_iter().flatten().collect())
                    .unwrap_or_default();
                return Ok(Pushed::Complete(parts));
            }
            self.by_age.insert(age, key);
            return Ok(Pushed::Pending {
                have,
                total,
                evicted: None,
            });
        }
        let evicted = if self.groups.len() >= self.config.max_groups.max(1) {
            self.pop_oldest(Some(now)).map(Box::new)
        } else {
            None
        };
        let mut slots: Vec<Option<T>> = std::iter::repeat_with(|| None)
            .take(usize::from(total))
            .collect();
        if let Some(slot) = slots.get_mut(index) {
            *slot = Some(part);
        }
        self.by_age.insert(age, key.clone());
        self.groups.insert(
            key,
            Group {
                slots,
                have: 1,
                age,
            },
        );
        Ok(Pushed::Pending {
            have: 1,
            total,
            evicted,
        })
    }

    /// Hands back, oldest first, every group whose last new part is at least
    /// [`ReassemblyConfig::timeout`] older than `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Partial<T>> {
        let mut out = Vec::new();
        while let Some((&(arrived, _), _)) = self.by_age.first_key_value() {
            if now.saturating_duration_since(arrived) < self.config.timeout {
                break;
            }
            match self.pop_oldest(Some(now)) {
                Some(partial) => out.push(partial),
                None => break,
            }
        }
        out
    }

    /// Hands back every pending group, oldest first, so that nothing is lost
    /// when the daemon stops; the reassembler is empty afterwards.
    pub fn drain(&mut self) -> Vec<Partial<T>> {
        let mut out = Vec::with_capacity(self.groups.len());
        while let Some(mut partial) = self.pop_oldest(None) {
            partial.reason = PartialReason::Drained;
            out.push(partial);
        }
        out
    }

    /// When the oldest pending group will time out: the moment to call
    /// [`Reassembler::expire`] next. `None` when nothing is pending (or the
    /// deadline lies beyond what [`Instant`] can represent).
    pub fn next_deadline(&self) -> Option<Instant> {
        let (&(arrived, _), _) = self.by_age.first_key_value()?;
        arrived.checked_add(self.config.timeout)
    }

    /// Pending groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no group is pending.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    fn next_age(&mut self, now: Instant) -> (Instant, u64) {
        self.counter = self.counter.wrapping_add(1);
        (now, self.counter)
    }

    /// Removes the oldest group and turns it into a [`Partial`]: timed out
    /// if it is past its deadline at `now`, else evicted (drained without
    /// `now`).
    fn pop_oldest(&mut self, now: Option<Instant>) -> Option<Partial<T>> {
        let ((arrived, _), key) = self.by_age.pop_first()?;
        let group = self.groups.remove(&key)?;
        let reason = match now {
            Some(now) if now.saturating_duration_since(arrived) >= self.config.timeout => {
                PartialReason::TimedOut
            }
            Some(_) => PartialReason::Evicted,
            None => PartialReason::Drained,
        };
        let mut parts = Vec::with_capacity(usize::from(group.have));
        let mut missing = Vec::new();
        for (seq, slot) in (1u8..=u8::MAX).zip(group.slots) {
            match slot {
                Some(part) => parts.push((seq, part)),
                None => missing.push(seq),
            }
        }
        tracing::info!(modem = %key.modem, sender = %key.sender, reference = key.reference,
            total = key.total, ?missing, ?reason, "giving up incomplete concatenated message");
        Some(Partial {
            key,
            parts,
            missing,
            reason,
        })
    }
}

impl<T> std::fmt::Debug for Reassembler<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reassembler")
            .field("config", &self.config)
            .field("groups", &self.groups.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(reference: u16, total: u8) -> PartKey {
        PartKey {
            modem: "m1".into(),
            sender: "+491701234567".into(),
            reference,
            total,
        }
    }

    fn config(secs: u64, max_groups: usize) -> ReassemblyConfig {
        ReassemblyConfig {
            timeout: Duration::from_secs(secs),
            max_groups,
        }
    }

    #[test]
    fn out_of_order_parts_complete_in_order() {
        let mut r = Reassembler::new(config(60, 10));
        let t = Instant::now();
        assert_eq!(
            r.push(key(7, 3), 3, "c", t),
            Ok(Pushed::Pending {
                have: 1,
                total: 3,
                evicted: None
            })
        );
        assert_eq!(
            r.push(key(7, 3), 1, "a", t),
            Ok(Pushed::Pending {
                have: 2,
                total: 3,
                evicted: None
            })
        );
        assert_eq!(r.len(), 1);
        assert_eq!(
            r.push(key(7, 3), 2, "b", t),
            Ok(Pushed::Complete(vec!["a", "b", "c"]))
        );
        assert!(r.is_empty());
        assert_eq!(r.next_deadline(), None);
    }

    #[test]
    fn duplicate_keeps_the_first_copy() {
        let mut r = Reassembler::new(config(60, 10));
        let t = Instant::now();
        r.push(key(1, 2), 1, "first", t).unwrap();
        assert_eq!(
            r.push(key(1, 2), 1, "second", t),
            Ok(Pushed::Duplicate {
                seq: 1,
                part: "second"
            })
        );
        assert_eq!(
            r.push(key(1, 2), 2, "x", t),
            Ok(Pushed::Complete(vec!["first", "x"]))
        );
    }

    #[test]
    fn bad_numbers_are_errors() {
        let mut r: Reassembler<()> = Reassembler::new(ReassemblyConfig::default());
        let t = Instant::now();
        assert_eq!(r.push(key(1, 0), 1, (), t), Err(ReassemblyError::ZeroTotal));
        assert_eq!(
            r.push(key(1, 3), 0, (), t),
            Err(ReassemblyError::SeqOutOfRange { seq: 0, total: 3 })
        );
        assert_eq!(
            r.push(key(1, 3), 4, (), t),
            Err(ReassemblyError::SeqOutOfRange { seq: 4, total: 3 })
        );
        assert!(r.is_empty());
        assert_eq!(r.push(key(1, 1), 1, (), t), Ok(Pushed::Complete(vec![()])));
        assert!(r.is_empty());
    }

    #[test]
    fn different_keys_do_not_mix() {
        let mut r = Reassembler::new(config(60, 10));
        let t = Instant::now();
        r.push(key(1, 2), 1, 1, t).unwrap();
        r.push(key(1, 3), 1, 2, t).unwrap();
        let mut other = key(1, 2);
        other.modem = "m2".into();
        r.push(other, 2, 3, t).unwrap();
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn missing_parts_expire_flagged() {
        let mut r = Reassembler::new(config(60, 10));
        let t0 = Instant::now();
        r.push(key(5, 4), 2, "b", t0).unwrap();
        r.push(key(9, 2), 1, "x", t0 + Duration::from_secs(30))
            .unwrap();
        // A new part at 50 s moves the deadline of group 5 to 110 s.
        r.push(key(5, 4), 4, "d", t0 + Duration::from_secs(50))
            .unwrap();
        assert_eq!(r.next_deadline(), Some(t0 + Duration::from_secs(90)));
        assert!(r.expire(t0 + Duration::from_secs(89)).is_empty());
        let gone = r.expire(t0 + Duration::from_secs(90));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].key.reference, 9);
        assert_eq!(r.next_deadline(), Some(t0 + Duration::from_secs(110)));
        let gone = r.expire(t0 + Duration::from_secs(1000));
        assert_eq!(
            gone,
            vec![Partial {
                key: key(5, 4),
                parts: vec![(2, "b"), (4, "d")],
                missing: vec![1, 3],
                reason: PartialReason::TimedOut,
            }]
        );
        assert!(r.is_empty());
    }

    #[test]
    fn duplicates_do_not_extend_the_deadline() {
        let mut r = Reassembler::new(config(60, 10));
        let t0 = Instant::now();
        r.push(key(1, 2), 1, 0, t0).unwrap();
        r.push(key(1, 2), 1, 0, t0 + Duration::from_secs(59))
            .unwrap();
        assert_eq!(r.expire(t0 + Duration::from_secs(60)).len(), 1);
    }

    #[test]
    fn cap_evicts_the_oldest_group() {
        let mut r = Reassembler::new(config(3600, 2));
        let t0 = Instant::now();
        r.push(key(1, 2), 1, 'a', t0).unwrap();
        r.push(key(2, 2), 1, 'b', t0 + Duration::from_secs(1))
            .unwrap();
        let third = r
            .push(key(3, 2), 2, 'c', t0 + Duration::from_secs(2))
            .unwrap();
        let Pushed::Pending {
            have: 1,
            total: 2,
            evicted: Some(evicted),
        } = third
        else {
            panic!("expected an eviction, got {third:?}");
        };
        assert_eq!(evicted.key.reference, 1);
        assert_eq!(evicted.parts, vec![(1, 'a')]);
        assert_eq!(evicted.missing, vec![2]);
        assert_eq!(evicted.reason, PartialReason::Evicted);
        assert_eq!(r.len(), 2);
        // A flood stays bounded.
        for reference in 10..1000 {
            r.push(key(reference, 9), 1, 'z', t0 + Duration::from_secs(3))
                .unwrap();
            assert!(r.len() <= 2);
        }
    }

    #[test]
    fn drain_hands_back_everything() {
        let mut r = Reassembler::new(config(60, 10));
        let t = Instant::now();
        r.push(key(1, 3), 3, "c", t).unwrap();
        r.push(key(2, 2), 1, "x", t).unwrap();
        let all = r.drain();
        assert!(r.is_empty());
        assert_eq!(r.next_deadline(), None);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].parts, vec![(3, "c")]);
        assert_eq!(all[0].missing, vec![1, 2]);
        assert!(all.iter().all(|p| p.reason == PartialReason::Drained));
    }

    #[test]
    fn zero_cap_still_works() {
        let mut r = Reassembler::new(config(60, 0));
        let t = Instant::now();
        r.push(key(1, 2), 1, 1, t).unwrap();
        assert_eq!(r.push(key(1, 2), 2, 2, t), Ok(Pushed::Complete(vec![1, 2])));
    }

    #[test]
    fn huge_timeout_and_backwards_time_do_not_panic() {
        let mut r = Reassembler::new(config(u64::MAX, 4));
        let t = Instant::now();
        r.push(key(1, 2), 1, 1, t).unwrap();
        assert_eq!(r.next_deadline(), None);
        assert!(r.expire(t).is_empty());
        let mut r = Reassembler::new(config(10, 4));
        r.push(key(1, 3), 1, 1, t + Duration::from_secs(100))
            .unwrap();
        r.push(key(1, 3), 2, 2, t).unwrap();
        assert!(r.expire(t).is_empty());
        assert_eq!(r.expire(t + Duration::from_secs(200)).len(), 1);
    }

    proptest! {
        #[test]
        fn any_order_with_duplicates_completes_once_in_order(
            (total, order) in (2u8..=12).prop_flat_map(|total| {
                let seqs: Vec<u8> = (1..=total).collect();
                let dups = proptest::collection::vec(1..=total, 0..usize::from(total));
                (Just(total), dups.prop_flat_map(move |d| {
                    let mut all = seqs.clone();
                    all.extend(d);
                    Just(all).prop_shuffle()
                }))
            })
        ) {
            let mut r = Reassembler::new(config(60, 8));
            let t = Instant::now();
            let mut completes = Vec::new();
            let mut duplicates = 0;
            for &seq in &order {
                match r.push(key(42, total), seq, seq, t).unwrap() {
                    Pushed::Complete(parts) => completes.push(parts),
                    Pushed::Duplicate { seq: s, part } => {
                        prop_assert_eq!(s, part);
                        duplicates += 1;
                    }
                    Pushed::Pending { evicted, .. } => prop_assert!(evicted.is_none()),
                }
            }
            prop_assert_eq!(completes.len(), 1);
            prop_assert_eq!(&completes[0], &(1..=total).collect::<Vec<u8>>());
            // Copies after completion start a new group that expires flagged.
            let late = r.expire(t + Duration::from_secs(60));
            let late_parts: usize = late.iter().map(|p| p.parts.len()).sum();
            prop_assert!(late.iter().all(|p| !p.missing.is_empty()));
            prop_assert_eq!(usize::from(total) + duplicates + late_parts, order.len());
            prop_assert!(r.is_empty());
        }
    }
}
