//! The bus: a Unix stream socket speaking newline-delimited JSON (protocol
//! version 1, `docs/protocol.md`), through which clients send SMS, follow
//! message states and receive inbound messages.
//!
//! * [`protocol`]: requests, replies, events and error codes, and the line
//!   parser (pure; fuzzed by `fuzz/fuzz_targets/bus_line.rs`).
//! * [`access`]: who may connect (SO_PEERCRED against allow lists).
//! * [`server`]: the listener and one task per connection.
//! * [`fanout`]: one reader of the store's event log per server builds each
//!   event line once for every subscriber; a slow client lags and is
//!   replayed from the store instead of making the daemon buffer for it.
//!
//! The bus decides no policy: sending goes through a [`Backend`] (the
//! engine in the daemon), everything else reads the store.
#![warn(missing_docs)]

pub mod access;
pub mod fanout;
pub mod protocol;
pub mod server;

use std::future::Future;
use std::path::PathBuf;

use tokio::sync::watch;

use crate::modem::ModemView;
use crate::store::{Enqueued, Store};

pub use crate::daemon::engine::{EngineError, OutboundRequest};
pub use crate::privacy::ConsentQuery;
pub use protocol::{ErrorCode, PROTOCOL_VERSION};
pub use server::Server;

/// What the bus needs from the rest of the daemon. The engine implements
/// it; tests implement it over a real store.
pub trait Backend: Clone + Send + Sync + 'static {
    /// The store the event log, statuses and inbound messages come from.
    fn store(&self) -> &Store;
    /// Validates, encodes and durably queues one outbound message.
    fn send(
        &self,
        req: OutboundRequest,
    ) -> impl Future<Output = Result<Enqueued, EngineError>> + Send;
    /// The modems as the `modems` op shows them.
    fn modems(&self) -> Vec<ModemView>;

    /// The event-log cursor up to which inbound messages have been
    /// decided by the privacy gate: a subscription shows no event past
    /// it, so a message is never relayed before it was decided. Without
    /// a gate, the store's own cursor.
    fn gated(&self) -> watch::Receiver<u64> {
        self.store().subscribe()
    }

    /// How a phone number is shown to a peer (its `sms:` handle unless the
    /// peer may see numbers). Without a gate, the number itself.
    fn show(&self, number: &str, see_numbers: bool) -> String {
        let _ = see_numbers;
        number.to_owned()
    }

    /// Maps a send's `to` (a number or a handle) to the number to send
    /// to, or refuses it with a bus error code and message (`opted_out`,
    /// `invalid_number`, `not_found`). Without a gate, `to` unchanged.
    fn recipient(&self, to: String) -> impl Future<Output = Result<String, Refusal>> + Send {
        async move { Ok(to) }
    }

    /// Erases everything about a number or handle (the `forget` op) and
    /// says what was erased.
    fn forget(
        &self,
        who: String,
    ) -> impl Future<Output = Result<serde_json::Value, Refusal>> + Send {
        let _ = who;
        async move {
            Err((
                "unavailable",
                "this daemon has no privacy layer to forget with".to_owned(),
            ))
        }
    }

    /// Consent records for an admin (the `consent` op): `records` and the
    /// paging cursor `next`; a record's number only when `see_numbers`.
    fn consent(
        &self,
        query: ConsentQuery,
        see_numbers: bool,
    ) -> impl Future<Output = Result<serde_json::Value, Refusal>> + Send {
        let _ = (query, see_numbers);
        async move {
            Err((
                "unavailable",
                "this daemon has no privacy layer to keep consent records".to_owned(),
            ))
        }
    }
}

/// A refused request: the bus error code and a message.
pub type Refusal = (&'static str, String);

/// Where the socket lives and who may use it (`[bus]` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusConfig {
    /// Socket path (default `/run/smsgate/smsgate.sock`).
    pub socket: PathBuf,
    /// Group owning the socket file (mode 0660); its members may connect.
    pub group: Option<String>,
    /// User names allowed besides root and the daemon's own user.
    pub allow_users: Vec<String>,
    /// Group names whose members are allowed.
    pub allow_groups: Vec<String>,
    /// Longest accepted request line in bytes (default 65536).
    pub max_line: usize,
    /// Users whose clients see phone numbers instead of `sms:` handles
    /// (root and the daemon's own user always do).
    pub see_numbers_users: Vec<String>,
    /// Groups whose members' clients see phone numbers.
    pub see_numbers_groups: Vec<String>,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            socket: PathBuf::from("/run/smsgate/smsgate.sock"),
            // As the daemon's config: the socket keeps the daemon's group.
            group: None,
            allow_users: Vec::new(),
            allow_groups: Vec::new(),
            max_line: protocol::MAX_LINE,
            see_numbers_users: Vec::new(),
            see_numbers_groups: Vec::new(),
        }
    }
}

/// Why the bus could not start.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Creating the directory, binding, or setting the socket's mode failed.
    #[error("cannot set up the bus socket {path}: {source}")]
    Io {
        /// The socket path (or its directory).
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A live daemon already answers on the socket.
    #[error("the bus socket {0} is in use by a running process")]
    InUse(PathBuf),
    /// Something that is not a socket sits at the socket path; we do not
    /// delete it.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
}
