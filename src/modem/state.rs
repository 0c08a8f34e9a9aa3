//! The modem actor's life cycle as a pure transition function.
//!
//! The actor does the work each state asks for (open the port, identify,
//! unlock, register, serve, recover) and reports what happened as an
//! [`Input`]; [`transition`] decides the next [`State`] and the
//! [`Action`]s the actor must take on the way. No I/O and no clock here, so
//! the whole table is tested below.

use std::fmt;

use serde::Serialize;

/// One rung of the recovery ladder, mildest first. Each rung is tried once
/// per climb, with an exponential backoff between rungs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Close and reopen the port (a wedged USB serial driver, a stuck
    /// line discipline).
    Reopen,
    /// `AT+CFUN=0` then `AT+CFUN=1` (27.007 §8.2): restart the radio stack.
    CfunCycle,
    /// The profile's reset command (`AT+CFUN=1,1`, 27.007 §8.2 `<rst>`):
    /// reboot the modem, then wait for it to settle.
    Reset,
    /// Wait for the device to leave and come back (USB re-enumeration), or
    /// for an operator to replug it.
    Reenumerate,
}

impl Step {
    /// The next rung; after the last the climb starts again at the first
    /// (with the longest backoff).
    pub fn next(self) -> Step {
        match self {
            Step::Reopen => Step::CfunCycle,
            Step::CfunCycle => Step::Reset,
            Step::Reset => Step::Reenumerate,
            Step::Reenumerate => Step::Reopen,
        }
    }
}

/// Where the actor is in its life cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    /// Opening the serial port.
    Opening,
    /// Reading identities, checking the SIM, entering the PIN.
    Identifying,
    /// The SIM wants a code the actor must not or cannot give. Stays so
    /// until the modem is replugged or restarted (invariant 5).
    SimLocked {
        /// Why, for the operator.
        reason: String,
    },
    /// Configuring SMS and waiting for network registration.
    Registering,
    /// Serving: sending, receiving, sweeping, probing.
    Ready,
    /// A health probe failed or commands keep failing; one more probe
    /// decides between ready and the recovery ladder.
    Degraded {
        /// What went wrong.
        reason: String,
    },
    /// Climbing the recovery ladder.
    Resetting {
        /// The rung being tried.
        step: Step,
        /// How many rungs were tried since the trouble started (drives
        /// the backoff).
        attempt: u32,
    },
    /// The port is gone (unplugged); waiting for it to come back.
    Gone,
    /// Shut down on request; the actor has ended.
    Stopped,
}

impl State {
    /// Short name for logs and the CLI.
    pub fn name(&self) -> &'static str {
        match self {
            State::Opening => "opening",
            State::Identifying => "identifying",
            State::SimLocked { .. } => "sim-locked",
            State::Registering => "registering",
            State::Ready => "ready",
            State::Degraded { .. } => "degraded",
            State::Resetting { .. } => "resetting",
            State::Gone => "gone",
            State::Stopped => "stopped",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::SimLocked { reason } => write!(f, "sim-locked ({reason})"),
            State::Degraded { reason } => write!(f, "degraded ({reason})"),
            State::Resetting { step, attempt } => write!(f, "resetting ({step:?}, #{attempt})"),
            other => f.write_str(other.name()),
        }
    }
}

/// What happened, as the actor reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The port is open and answers `AT`.
    Opened,
    /// The port path does not exist (unplugged, not yet enumerated).
    PortMissing,
    /// The port exists but could not be opened or does not answer.
    OpenFailed(String),
    /// Identities read and the SIM is ready.
    SimReady,
    /// The SIM wants a code the actor will not give.
    SimLocked(String),
    /// SMS set up and the modem is registered (home or roaming).
    Registered,
    /// Registration was lost while ready.
    RegistrationLost,
    /// A probe or a burst of commands failed while the port is open.
    Unhealthy(String),
    /// A probe succeeded (in degraded or after a recovery rung).
    Healthy,
    /// The modem answers `AT` but has failed again and again since it was
    /// last ready (an error storm, a set-up that never completes): a mild
    /// rung would not help, reset it. `strikes` (times degraded since last
    /// ready) drives the backoff.
    StillFailing {
        /// What went wrong.
        reason: String,
        /// Times degraded since the modem was last ready.
        strikes: u32,
    },
    /// The modem rebooted by itself (boot URCs, `+CPIN: SIM PIN` while
    /// ready): settings are lost, identify and set up again.
    Rebooted,
    /// A recovery rung did not bring the modem back.
    StepFailed,
    /// The port closed under us (EIO, EOF).
    PortClosed,
    /// The port path exists again after being gone.
    PortAppeared,
    /// Shutdown was requested.
    Shutdown,
}

/// What the actor must do on a transition, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Answer every queued send with a temporary error so the router
    /// re-queues it elsewhere.
    FailPendingSends,
    /// Drop the link (close the port).
    ClosePort,
    /// List every storage and offer what is there (start-up, after a
    /// reset, after registration).
    Sweep,
}

/// The transition table. Inputs that make no sense in a state leave it
/// unchanged with no action (logged by the actor as ignored).
pub fn transition(state: &State, input: &Input) -> (State, Vec<Action>) {
    use Action::*;
    use Input as I;
    use State as S;
    let recover = |attempt: u32| S::Resetting {
        step: Step::Reopen,
        attempt,
    };
    match (state, input) {
        (S::Stopped, _) => (S::Stopped, vec![]),
        (_, I::Shutdown) => (S::Stopped, vec![FailPendingSends, ClosePort]),
        (_, I::PortMissing) => (S::Gone, vec![FailPendingSends, ClosePort]),

        (S::Opening, I::Opened) => (S::Identifying, vec![]),
        (S::Opening, I::OpenFailed(_)) => (recover(0), vec![ClosePort]),

        (S::Identifying, I::SimReady) => (S::Registering, vec![]),
        (S::Identifying, I::SimLocked(r)) => {
            (S::SimLocked { reason: r.clone() }, vec![FailPendingSends])
        }
        (S::Identifying | S::Registering, I::Unhealthy(r)) => {
            (S::Degraded { reason: r.clone() }, vec![FailPendingSends])
        }
        (S::Identifying | S::Registering | S::Ready, I::Rebooted) => {
            (S::Identifying, vec![FailPendingSends])
        }
        // A locked SIM after a reboot may have been replaced.
        (S::SimLocked { .. }, I::Rebooted) => (S::Identifying, vec![]),

        (S::Registering, I::Registered) => (S::Ready, vec![Sweep]),

        (S::Ready, I::RegistrationLost) => (S::Registering, vec![]),
        (S::Ready, I::Unhealthy(r)) => (S::Degraded { reason: r.clone() }, vec![]),

        (S::Degraded { .. }, I::Healthy) => (S::Identifying, vec![]),
        (S::Degraded { .. }, I::Unhealthy(_)) => (recover(0), vec![FailPendingSends]),
        (S::Degraded { .. }, I::StillFailing { strikes, .. }) => (
            S::Resetting {
                step: Step::Reset,
                attempt: *strikes,
            },
            vec![FailPendingSends],
        ),

        (S::Resetting { .. }, I::Healthy | I::Opened) => (S::Identifying, vec![]),
        (S::Resetting { step, attempt }, I::StepFailed | I::OpenFailed(_)) => (
            S::Resetting {
                step: step.next(),
                attempt: attempt.saturating_add(1),
            },
            vec![ClosePort],
        ),

        (S::Gone, I::PortAppeared) => (S::Opening, vec![]),

        // The port closing is the same everywhere but in gone/stopped: the
        // path may still exist (a USB reset in progress) or not.
        (S::Gone, I::PortClosed) => (S::Gone, vec![]),
        (S::SimLocked { .. } | S::Resetting { .. }, I::PortClosed) => (recover(0), vec![ClosePort]),
        (_, I::PortClosed) => (recover(0), vec![FailPendingSends, ClosePort]),

        (s, _) => (s.clone(), vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    use Input as I;
    use State as S;

    fn reset(step: Step, attempt: u32) -> State {
        S::Resetting { step, attempt }
    }

    #[test]
    fn transition_table() {
        let locked = S::SimLocked {
            reason: "PUK".into(),
        };
        let degraded = S::Degraded {
            reason: "probe".into(),
        };
        #[rustfmt::skip]
        let table: Vec<(State, Input, State, Vec<Action>)> = vec![
            (S::Opening, I::Opened, S::Identifying, vec![]),
            (S::Opening, I::OpenFailed("EBUSY".into()), reset(Step::Reopen, 0), vec![ClosePort]),
            (S::Opening, I::PortMissing, S::Gone, vec![FailPendingSends, ClosePort]),
            (S::Identifying, I::SimReady, S::Registering, vec![]),
            (S::Identifying, I::SimLocked("PUK".into()), locked.clone(), vec![FailPendingSends]),
            (S::Identifying, I::Unhealthy("probe".into()), degraded.clone(), vec![FailPendingSends]),
            (S::Identifying, I::PortClosed, reset(Step::Reopen, 0), vec![FailPendingSends, ClosePort]),
            (S::Registering, I::Registered, S::Ready, vec![Sweep]),
            (S::Registering, I::Rebooted, S::Identifying, vec![FailPendingSends]),
            (S::Ready, I::RegistrationLost, S::Registering, vec![]),
            (S::Ready, I::Unhealthy("probe".into()), degraded.clone(), vec![]),
            (S::Ready, I::Rebooted, S::Identifying, vec![FailPendingSends]),
            (S::Ready, I::PortClosed, reset(Step::Reopen, 0), vec![FailPendingSends, ClosePort]),
            (S::Ready, I::PortMissing, S::Gone, vec![FailPendingSends, ClosePort]),
            (S::Ready, I::Shutdown, S::Stopped, vec![FailPendingSends, ClosePort]),
            (S::Ready, I::Registered, S::Ready, vec![]),
            (degraded.clone(), I::Healthy, S::Identifying, vec![]),
            (degraded.clone(), I::Unhealthy("again".into()), reset(Step::Reopen, 0), vec![FailPendingSends]),
            (degraded.clone(), I::StillFailing { reason: "again".into(), strikes: 3 }, reset(Step::Reset, 3), vec![FailPendingSends]),
            (S::Ready, I::StillFailing { reason: "x".into(), strikes: 3 }, S::Ready, vec![]),
            (reset(Step::Reopen, 0), I::StepFailed, reset(Step::CfunCycle, 1), vec![ClosePort]),
            (reset(Step::CfunCycle, 1), I::StepFailed, reset(Step::Reset, 2), vec![ClosePort]),
            (reset(Step::Reset, 2), I::StepFailed, reset(Step::Reenumerate, 3), vec![ClosePort]),
            (reset(Step::Reenumerate, 3), I::StepFailed, reset(Step::Reopen, 4), vec![ClosePort]),
            (reset(Step::Reset, u32::MAX), I::StepFailed, reset(Step::Reenumerate, u32::MAX), vec![ClosePort]),
            (reset(Step::Reset, 2), I::Healthy, S::Identifying, vec![]),
            (reset(Step::Reopen, 0), I::PortMissing, S::Gone, vec![FailPendingSends, ClosePort]),
            (reset(Step::Reopen, 0), I::PortClosed, reset(Step::Reopen, 0), vec![ClosePort]),
            (locked.clone(), I::Rebooted, S::Identifying, vec![]),
            (locked.clone(), I::Registered, locked.clone(), vec![]),
            (locked.clone(), I::PortMissing, S::Gone, vec![FailPendingSends, ClosePort]),
            (S::Gone, I::PortAppeared, S::Opening, vec![]),
            (S::Gone, I::PortClosed, S::Gone, vec![]),
            (S::Gone, I::Healthy, S::Gone, vec![]),
            (S::Stopped, I::PortAppeared, S::Stopped, vec![]),
            (S::Stopped, I::Shutdown, S::Stopped, vec![]),
        ];
        for (from, input, to, actions) in table {
            let (got, acts) = transition(&from, &input);
            assert_eq!((&got, &acts), (&to, &actions), "{from} + {input:?}");
        }
    }

    fn any_input() -> impl proptest::strategy::Strategy<Value = Input> {
        use proptest::prelude::*;
        prop_oneof![
            Just(I::Opened),
            Just(I::PortMissing),
            Just(I::OpenFailed("x".into())),
            Just(I::SimReady),
            Just(I::SimLocked("x".into())),
            Just(I::Registered),
            Just(I::RegistrationLost),
            Just(I::Unhealthy("x".into())),
            Just(I::Healthy),
            Just(I::StillFailing {
                reason: "x".into(),
                strikes: 3
            }),
            Just(I::Rebooted),
            Just(I::StepFailed),
            Just(I::PortClosed),
            Just(I::PortAppeared),
            Just(I::Shutdown),
        ]
    }

    proptest::proptest! {
        /// Over any run of inputs: shutdown always stops and stopped is
        /// final; a vanished port is always gone; ready is only reached
        /// from registering, and always with a sweep; leaving ready or
        /// registering for trouble never keeps queued sends waiting.
        #[test]
        fn invariants_hold_over_any_run(inputs in proptest::collection::vec(any_input(), 0..60)) {
            let mut s = S::Opening;
            for input in inputs {
                let (next, acts) = transition(&s, &input);
                if s == S::Stopped {
                    proptest::prop_assert_eq!(&next, &S::Stopped);
                }
                if input == I::Shutdown {
                    proptest::prop_assert_eq!(&next, &S::Stopped);
                }
                if input == I::PortMissing && s != S::Stopped {
                    proptest::prop_assert_eq!(&next, &S::Gone);
                }
                if next == S::Ready && s != S::Ready {
                    proptest::prop_assert_eq!(&s, &S::Registering);
                    proptest::prop_assert!(acts.contains(&Sweep));
                }
                if matches!(next, S::Gone | S::Stopped | S::SimLocked { .. }) && next != s {
                    proptest::prop_assert!(acts.contains(&FailPendingSends) || matches!(s, S::Gone | S::Stopped));
                }
                s = next;
            }
        }
    }

    #[test]
    fn the_ladder_cycles_through_every_rung() {
        let mut s = Step::Reopen;
        let mut seen = vec![s];
        for _ in 0..4 {
            s = s.next();
            seen.push(s);
        }
        assert_eq!(
            seen,
            [
                Step::Reopen,
                Step::CfunCycle,
                Step::Reset,
                Step::Reenumerate,
                Step::Reopen
            ]
        );
    }

    #[test]
    fn display_names_the_reason() {
        let s = S::SimLocked {
            reason: "SIM PUK required".into(),
        };
        assert_eq!(s.to_string(), "sim-locked (SIM PUK required)");
        assert_eq!(S::Ready.to_string(), "ready");
    }
}
