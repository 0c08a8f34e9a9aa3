//! AT command engine, 3GPP TS 27.007 and TS 27.005.
//!
//! * [`digest`]: the pure digester, bytes in (split anywhere), events out:
//!   response lines, final result codes, the `> ` prompt, URCs.
//! * [`urc`]: unsolicited result codes as one enum with `Unknown`.
//! * [`error`]: `+CME ERROR` / `+CMS ERROR` codes with their spec meaning and
//!   a temporary/permanent classification.
//! * [`commands`]: typed commands ([`AtCommand`]), each with its response
//!   parser and timeout, citing its 27.005/27.007 clause.
//! * [`link`]: the async link over any byte stream: one command in flight,
//!   timeouts, the prompt handshake, URC fan-out, `Closed` when the port
//!   goes away.
//!
//! The user-facing behaviour is documented in `docs/at.md`.

pub mod commands;
pub mod digest;
pub mod error;
pub mod link;
pub mod parse;
pub mod urc;

pub use commands::{AtCommand, ParseError};
pub use digest::{Digester, Event, InFlight};
pub use error::{AtError, CmeError, CmsError, Retry};
pub use link::{Link, LinkConfig, LinkError, PayloadError};
pub use urc::Urc;
