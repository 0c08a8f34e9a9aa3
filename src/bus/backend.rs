//! The engine-side request and error types the [`Backend`](super::Backend)
//! trait speaks. They belong to the engine (`src/daemon/engine.rs`); they
//! live here until the engine branch provides them.

use std::time::Duration;

use crate::store::StoreError;

use super::protocol::store_error_code;

/// A client's send request, as the bus parsed it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboundRequest {
    /// Destination number as the client wrote it.
    pub to: String,
    /// The text (split into parts by the engine).
    pub text: String,
    /// Idempotency key: a retried request with the same key and content
    /// returns the first message.
    pub key: Option<String>,
    /// Pin to a modem (name, IMEI or ICCID).
    pub modem: Option<String>,
    /// Ask for a status report (TS 23.040 TP-SRR).
    pub report: bool,
    /// Class 0 (flash) message.
    pub flash: bool,
    /// Give up if not sent within this time.
    pub validity: Option<Duration>,
    /// Do not send before this time (unix ms).
    pub send_at_ms: Option<i64>,
    /// The bus client's name (from `hello`), for audit.
    pub client: Option<String>,
}

/// Why the engine refused a send.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The destination is not a phone number.
    #[error("invalid number: {0}")]
    InvalidNumber(String),
    /// The text needs more parts than allowed.
    #[error("text needs {parts} parts, at most {max} allowed")]
    TextTooLong {
        /// Parts the text needs.
        parts: u32,
        /// Configured maximum.
        max: u32,
    },
    /// The pinned modem is not known.
    #[error("unknown modem {0:?}")]
    UnknownModem(String),
    /// The queue holds the configured maximum of parts.
    #[error("the queue is full; try again later")]
    QueueFull,
    /// The idempotency key was used before with other content.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine is shutting down or not running.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl EngineError {
    /// The bus error code (`docs/protocol.md`).
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::InvalidNumber(_) => "invalid_number",
            EngineError::TextTooLong { .. } => "text_too_long",
            EngineError::UnknownModem(_) => "unknown_modem",
            EngineError::QueueFull => "queue_full",
            EngineError::Conflict(_) => "conflict",
            EngineError::Store(e) => store_error_code(e),
            EngineError::Unavailable(_) => "unavailable",
        }
    }
}
