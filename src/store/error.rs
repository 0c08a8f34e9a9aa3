//! The one error type of the store layer.

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::ErrorCode;

use super::{MessageId, MessageState};

/// Everything that can go wrong in the store.
///
/// A request that returns an error changed nothing: its savepoint (or the
/// whole batch transaction) was rolled back before the answer was sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be opened or created (missing or
    /// read-only directory, permissions).
    #[error("cannot open the store at {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The file exists but is not an SQLite database, or its pages are
    /// damaged.
    #[error("the store at {path} is not a readable smsgate database (corrupt, or not SQLite); move it away or restore a backup: {source}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer smsgate: we refuse to guess what
    /// its tables mean.
    #[error("the store at {path} has schema version {found}, newer than version {supported} known to this smsgate; refusing to open it (upgrade smsgate or restore a backup)")]
    FutureSchema {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// The newest schema version this build knows.
        supported: i64,
    },
    /// Another process owns the store (only one owner may requeue crashed
    /// sends, or it would requeue the live owner's in-flight parts).
    #[error("the store at {path} is already in use by another process (lock file {lock} is held)")]
    InUse {
        /// The database file.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// A file-system operation around the database failed (directory, lock
    /// file).
    #[error("cannot prepare {path} for the store: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A schema migration step failed; the database stays at the previous
    /// version.
    #[error("migrating the store at {path} to schema version {version} failed: {source}")]
    Migration {
        /// The database file.
        path: PathBuf,
        /// The version the failed step would have produced.
        version: i64,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The disk (or the configured size limit) is full.
    #[error("the store is full (disk full or size limit reached) during {op}; nothing of this request was stored: {source}")]
    Full {
        /// The operation that needed space.
        op: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The database file or its directory became read-only.
    #[error("the store is not writable (read-only file, directory or file system) during {op}: {source}")]
    ReadOnly {
        /// The operation that tried to write.
        op: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite found damaged pages while running a request.
    #[error("the store is corrupt (detected during {op}): {source}")]
    CorruptData {
        /// The operation that hit the damage.
        op: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// Any other SQLite failure.
    #[error("SQLite failed during {op}: {source}")]
    Sqlite {
        /// The operation that failed.
        op: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The request itself succeeded, but the transaction it was grouped into
    /// could not be committed, so nothing of it was stored.
    #[error("not stored: the transaction holding this request failed: {0}")]
    NotCommitted(Arc<StoreError>),
    /// The idempotency key is already bound to a message with other content.
    #[error(
        "idempotency key {key:?} was already used by message {existing} with different content"
    )]
    IdempotencyConflict {
        /// The key the client sent.
        key: String,
        /// The message that owns the key.
        existing: MessageId,
    },
    /// The request is malformed (empty recipient, too many parts, ...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The referenced row does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// What kind of row.
        what: &'static str,
        /// Its id.
        id: i64,
    },
    /// Only messages still entirely queued can be cancelled.
    #[error("message {id} cannot be cancelled: it is {state}")]
    NotCancellable {
        /// The message.
        id: MessageId,
        /// Its current state.
        state: MessageState,
    },
    /// A send result was reported for an attempt that is no longer current
    /// (e.g. the part was requeued after a restart).
    #[error("attempt {attempt} is not in flight (it ended as {outcome}); result ignored")]
    StaleAttempt {
        /// The attempt id.
        attempt: i64,
        /// How it ended.
        outcome: String,
    },
    /// The store thread hit a bug while running this request; the request
    /// was rolled back and the thread goes on.
    #[error("internal error in the store thread: {0}")]
    Internal(String),
    /// The store thread has stopped (the store was closed).
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// Wraps an SQLite error raised during `op`, sorting out the conditions
    /// an operator must act on (full disk, read-only, corruption).
    pub(crate) fn sql(op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
        move |source| match source.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::Full { op, source },
            Some(ErrorCode::ReadOnly) | Some(ErrorCode::CannotOpen) => {
                StoreError::ReadOnly { op, source }
            }
            Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => {
                StoreError::CorruptData { op, source }
            }
            _ => StoreError::Sqlite { op, source },
        }
    }
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
