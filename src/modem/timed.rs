//! A typed command with the actor's own timeout.
//!
//! The AT engine gives each command the timeout its clause calls for (90 s
//! for `+CMGL`). The actor sometimes knows better: a health probe must fail
//! fast, and a sweep on a simulated or small storage should not hold the
//! link for 90 s when the modem rebooted under it. Dropping a pending
//! `Link::send` would not help (the command stays in flight in the link),
//! so the timeout is given to the link itself.

use std::time::Duration;

use crate::at::commands::{AtCommand, ParseError};
use crate::at::InFlight;

/// `cmd` with `timeout` instead of its own.
#[derive(Debug, Clone)]
pub(crate) struct Timed<C>(pub C, pub Duration);

impl<C: AtCommand> AtCommand for Timed<C> {
    type Response = C::Response;
    fn text(&self) -> String {
        self.0.text()
    }
    fn timeout(&self) -> Duration {
        self.1
    }
    fn in_flight(&self) -> InFlight {
        self.0.in_flight()
    }
    fn ok_optional(&self) -> bool {
        self.0.ok_optional()
    }
    fn parse(&self, lines: &[String]) -> Result<Self::Response, ParseError> {
        self.0.parse(lines)
    }
}
