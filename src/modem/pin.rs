//! PIN safety rules (DESIGN invariant 5: never lock a SIM), as a pure
//! decision plus a memory of rejected PINs that survives restarts.
//!
//! The rules, in order:
//! 1. `+CPIN: READY` (27.007 §8.3): nothing to do.
//! 2. The SIM wants the PUK (or anything but the PIN): locked, with the
//!    reason. The actor never enters a PUK.
//! 3. No PIN configured for this ICCID: locked.
//! 4. The configured PIN was rejected by this SIM before (in this run or an
//!    earlier one): locked. It is never sent again.
//! 5. Another PIN was rejected by this SIM before and the modem cannot tell
//!    how many attempts are left: locked. Each wrong try costs one of the
//!    three, and nobody can say whether this one would be the last.
//! 6. The modem says only one attempt is left (`+CPINR`, `^CPIN`,
//!    `+QPINC`): locked. The last attempt is left to a human.
//! 7. Otherwise enter the configured PIN, once.
//!
//! A SIM seen `READY` is cleared from the memory: whoever unlocked it reset
//! its counter of wrong tries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::at::urc::PinState;

/// The file name of the memory in the state directory.
pub const REJECTED_PINS_FILE: &str = "rejected-pins.json";

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

/// What the memory knows about one SIM and one PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No PIN was rejected by this SIM.
    None,
    /// This very PIN was rejected by this SIM.
    ThisPin,
    /// Another PIN was rejected by this SIM (or the memory could not be
    /// read, so it is not known which).
    Earlier,
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
    let Some(pin) = pins.get(key).or_else(|| pins.get("*")) else {
        return PinDecision::Locked(format!("SIM {key} wants a PIN and none is configured"));
    };
    match rejected.check(key, pin) {
        Rejection::ThisPin => {
            return PinDecision::Locked(format!(
                "the configured PIN for SIM {key} was rejected before; not retried \
                 (fix the config, or enter the PIN by hand)"
            ))
        }
        Rejection::Earlier if attempts_left.is_none() => {
            return PinDecision::Locked(format!(
                "a PIN for SIM {key} was rejected before and the modem cannot tell how many \
                 attempts are left; not trying another (enter it by hand)"
            ))
        }
        Rejection::Earlier | Rejection::None => {}
    }
    if attempts_left.is_some_and(|n| n <= 1) {
        return PinDecision::Locked(format!(
            "SIM {key} has only one PIN attempt left; not trying (enter it by hand)"
        ));
    }
    PinDecision::Enter(pin.clone())
}

/// The memory as kept on disk: per ICCID, digests of the rejected PINs.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    version: u32,
    rejected: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug, Default)]
struct Memory {
    saved: Saved,
    /// Where it is kept; `None` keeps it in memory only.
    file: Option<PathBuf>,
    /// The file existed but could not be read: every SIM counts as having
    /// rejected some PIN (rule 5) for this run.
    doubt: bool,
}

/// ICCIDs whose PINs were rejected, shared by every actor of the process
/// (a SIM moved to another modem is still remembered) and, when opened on
/// a file, kept across restarts (a service restarted by systemd must not
/// burn one attempt per restart). The lock is held only for a lookup or an
/// insert, never across an await.
#[derive(Debug, Clone, Default)]
pub struct RejectedPins(Arc<Mutex<Memory>>);

/// The digest under which a rejected PIN is remembered: the file never
/// holds a PIN, and a digest per SIM says nothing about another SIM.
fn digest(iccid: &str, pin: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"smsgate rejected pin\0");
    h.update(iccid.as_bytes());
    h.update(b"\0");
    h.update(pin.as_bytes());
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl RejectedPins {
    /// A memory for this process only (tests, benchmarks).
    pub fn new() -> Self {
        Self::default()
    }

    /// A memory kept in `file` (created at the first rejection, mode 0600).
    /// A missing file is an empty memory; an unreadable or damaged one is
    /// logged and makes every SIM count as "a PIN was rejected before"
    /// for this run, since what it said is unknown.
    pub fn open(file: &Path) -> Self {
        let mut m = Memory {
            file: Some(file.to_path_buf()),
            ..Memory::default()
        };
        match std::fs::read(file) {
            Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
                Ok(saved) => m.saved = saved,
                Err(e) => {
                    tracing::error!(file = %file.display(), error = %e,
                        "rejected-PIN memory is damaged: no PIN is entered unless the modem says at least two attempts are left");
                    m.doubt = true;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(file = %file.display(), error = %e,
                    "rejected-PIN memory is unreadable: no PIN is entered unless the modem says at least two attempts are left");
                m.doubt = true;
            }
        }
        RejectedPins(Arc::new(Mutex::new(m)))
    }

    /// Remembers that `pin` was rejected by the SIM `iccid` (or that it is
    /// unknown whether it was taken). A failure to save is logged; the
    /// memory of this run still holds it.
    pub fn insert(&self, iccid: &str, pin: &str) {
        let Ok(mut m) = self.0.lock() else { return };
        m.saved
            .rejected
            .entry(iccid.to_string())
            .or_default()
            .insert(digest(iccid, pin));
        m.save();
    }

    /// What the memory knows about `pin` on the SIM `iccid`. A poisoned
    /// lock counts as "this PIN": when in doubt, do not risk the SIM.
    pub fn check(&self, iccid: &str, pin: &str) -> Rejection {
        let Ok(m) = self.0.lock() else {
            return Rejection::ThisPin;
        };
        match m.saved.rejected.get(iccid) {
            Some(set) if set.contains(&digest(iccid, pin)) => Rejection::ThisPin,
            Some(set) if !set.is_empty() => Rejection::Earlier,
            _ if m.doubt => Rejection::Earlier,
            _ => Rejection::None,
        }
    }

    /// Forgets the SIM `iccid`: it was seen unlocked, so its counter of
    /// wrong tries was reset by whoever unlocked it.
    pub fn clear(&self, iccid: &str) {
        let Ok(mut m) = self.0.lock() else { return };
        if m.saved.rejected.remove(iccid).is_some() {
            m.save();
        }
    }
}

impl Memory {
    /// Replaces the file atomically (never a half-written one), 0600.
    fn save(&mut self) {
        let Some(file) = self.file.clone() else {
            return;
        };
        self.saved.version = 1;
        let result = serde_json::to_vec_pretty(&self.saved)
            .map_err(std::io::Error::from)
            .and_then(|bytes| crate::atomic::write(&file, &bytes, Some(0o600)));
        if let Err(e) = result {
            tracing::error!(file = %file.display(), error = %e,
                "could not save the rejected-PIN memory; it holds for this run only");
        }
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
        burnt.insert("8901", "1234");
        let other = RejectedPins::new();
        other.insert("8901", "9999");
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
            (PinState::SimPin, Some("8901"), None, &burnt, "locked"),
            (PinState::SimPin, Some("8901"), Some(3), &other, "enter"),
            (PinState::SimPin, Some("8901"), Some(1), &other, "locked"),
            (PinState::SimPin, Some("8901"), None, &other, "locked"),
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
        r.insert("*", "0000");
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

    #[test]
    fn the_memory_survives_a_restart_and_never_holds_the_pin() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(REJECTED_PINS_FILE);
        let r = RejectedPins::open(&file);
        assert_eq!(r.check("8901", "1234"), Rejection::None);
        r.insert("8901", "1234");
        let again = RejectedPins::open(&file);
        assert_eq!(again.check("8901", "1234"), Rejection::ThisPin);
        assert_eq!(again.check("8901", "4321"), Rejection::Earlier);
        assert_eq!(again.check("8902", "1234"), Rejection::None);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("1234"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        again.clear("8901");
        assert_eq!(
            RejectedPins::open(&file).check("8901", "1234"),
            Rejection::None
        );
    }

    #[test]
    fn a_damaged_memory_enters_no_pin_without_known_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(REJECTED_PINS_FILE);
        std::fs::write(&file, b"{not json").unwrap();
        let r = RejectedPins::open(&file);
        assert!(matches!(
            decide(&PinState::SimPin, Some("8901"), &pins(), None, &r),
            PinDecision::Locked(_)
        ));
        assert_eq!(
            decide(&PinState::SimPin, Some("8901"), &pins(), Some(3), &r),
            PinDecision::Enter("1234".into())
        );
    }
}
