//! PIN safety rules (DESIGN invariant 5: never lock a SIM), as a pure
//! decision plus a process-wide memory of rejected PINs.
//!
//! The rules, in order:
//! 1. `+CPIN: READY` (27.007 §8.3): nothing to do.
//! 2. The SIM wants the PUK (or anything but the PIN): locked, with the
//!    reason. The actor never enters a PUK.
//! 3. A PIN for this ICCID was rejected before in this process: locked.
//!    It is never sent again, whatever the configuration says, until the
//!    process restarts (an operator fixed the config).
//! 4. No PIN configured for this ICCID: locked.
//! 5. The modem says only one attempt is left (`+CPINR`, `^CPIN`,
//!    `+QPINC`): locked. The last attempt is left to a human.
//! 6. Otherwise enter the configured PIN, once.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::at::urc::PinState;

/// What to do about the SIM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinDecision {
    /// The SIM is ready.
    Ready,
    /// Enter this PIN once.
    Enter(String),
    /// Do not touch the SIM; the reason is shown to the operator.
    Locked(String),
}

/// Decides per the module rules. `iccid` may be unknown (some modems do
/// not show it before the PIN): then only a PIN configured under `"*"`
/// applies, and a rejection is remembered under `"*"`.
pub fn decide(
    state: &PinState,
    iccid: Option<&str>,
    pins: &BTreeMap<String, String>,
    attempts_left: Option<u8>,
    rejected: &RejectedPins,
) -> PinDecision {
    match state {
        PinState::Ready => return PinDecision::Ready,
        PinState::SimPin => {}
        PinState::SimPuk => {
            return PinDecision::Locked(
                "SIM PUK required: the PIN was entered wrong too often; unlock it by hand".into(),
            )
        }
        other => return PinDecision::Locked(format!("SIM wants {other:?}; not handled")),
    }
    let key = iccid.unwrap_or("*");
    if rejected.contains(key) {
        return PinDecision::Locked(format!(
            "the configured PIN for SIM {key} was rejected before; not retried (fix the config and restart)"
        ));
    }
    let Some(pin) = pins.get(key).or_else(|| pins.get("*")) else {
        return PinDecision::Locked(format!("SIM {key} wants a PIN and none is configured"));
    };
    if attempts_left.is_some_and(|n| n <= 1) {
        return PinDecision::Locked(format!(
            "SIM {key} has only one PIN attempt left; not trying (enter it by hand)"
        ));
    }
    PinDecision::Enter(pin.clone())
}

/// ICCIDs whose configured PIN was rejected, shared by every actor of the
/// process (a SIM moved to another modem is still remembered). The lock is
/// held only to look up or insert one string, never across an await.
#[derive(Debug, Clone, Default)]
pub struct RejectedPins(Arc<Mutex<HashSet<String>>>);

impl RejectedPins {
    /// An empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers that the PIN for `iccid` was rejected.
    pub fn insert(&self, iccid: &str) {
        if let Ok(mut s) = self.0.lock() {
            s.insert(iccid.to_string());
        }
    }

    /// Whether the PIN for `iccid` was rejected. A poisoned lock counts as
    /// "rejected": when in doubt, do not risk the SIM.
    pub fn contains(&self, iccid: &str) -> bool {
        self.0.lock().map(|s| s.contains(iccid)).unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pins() -> BTreeMap<String, String> {
        [("8901".to_string(), "1234".to_string())].into()
    }

    #[test]
    fn decision_table() {
        let none = RejectedPins::new();
        let burnt = RejectedPins::new();
        burnt.insert("8901");
        let locked = |d: &PinDecision| matches!(d, PinDecision::Locked(_));
        type Case<'a> = (
            PinState,
            Option<&'a str>,
            Option<u8>,
            &'a RejectedPins,
            &'a str,
        );
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            (PinState::Ready, Some("8901"), None, &none, "ready"),
            (PinState::Ready, None, Some(1), &burnt, "ready"),
            (PinState::SimPin, Some("8901"), Some(3), &none, "enter"),
            (PinState::SimPin, Some("8901"), None, &none, "enter"),
            (PinState::SimPin, Some("8901"), Some(2), &none, "enter"),
            (PinState::SimPin, Some("8901"), Some(1), &none, "locked"),
            (PinState::SimPin, Some("8901"), Some(0), &none, "locked"),
            (PinState::SimPin, Some("8901"), Some(3), &burnt, "locked"),
            (PinState::SimPin, Some("8999"), Some(3), &none, "locked"),
            (PinState::SimPin, None, Some(3), &none, "locked"),
            (PinState::SimPuk, Some("8901"), Some(3), &none, "locked"),
            (PinState::PhSimPin, Some("8901"), Some(3), &none, "locked"),
            (PinState::Other("NOT INSERTED".into()), Some("8901"), None, &none, "locked"),
        ];
        for (state, iccid, left, rejected, want) in cases {
            let d = decide(&state, iccid, &pins(), left, rejected);
            let got = match &d {
                PinDecision::Ready => "ready",
                PinDecision::Enter(p) => {
                    assert_eq!(p, "1234");
                    "enter"
                }
                d if locked(d) => "locked",
                _ => unreachable!(),
            };
            assert_eq!(got, want, "{state:?} {iccid:?} {left:?}: {d:?}");
        }
    }

    #[test]
    fn wildcard_pin_applies_without_iccid_and_is_remembered_as_such() {
        let pins: BTreeMap<String, String> = [("*".to_string(), "0000".to_string())].into();
        let r = RejectedPins::new();
        assert_eq!(
            decide(&PinState::SimPin, None, &pins, None, &r),
            PinDecision::Enter("0000".into())
        );
        r.insert("*");
        assert!(matches!(
            decide(&PinState::SimPin, None, &pins, None, &r),
            PinDecision::Locked(_)
        ));
    }

    #[test]
    fn puk_reason_is_clear() {
        let d = decide(
            &PinState::SimPuk,
            Some("1"),
            &pins(),
            None,
            &RejectedPins::new(),
        );
        assert!(matches!(d, PinDecision::Locked(r) if r.contains("PUK")));
    }
}
