//! Opening the database: pragmas, the owner lock, schema migrations.
//!
//! Migrations are a list of SQL steps; `PRAGMA user_version` records how
//! many have run. Each step runs in its own transaction together with the
//! version bump, so a crash mid-migration leaves the previous version. A
//! file whose version is beyond the list was written by a newer smsgate and
//! is refused.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::config::StoreConfig;
use super::error::{Result, StoreError};

/// The migration steps; step `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("schema_v1.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
    include_str!("schema_v4.sql"),
    include_str!("schema_v5.sql"),
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// An open database and the lock that makes this process its owner.
pub(crate) struct Opened {
    pub conn: Connection,
    /// Held for as long as the connection lives; released by the kernel if
    /// the process dies.
    pub _lock: Flock<File>,
    pub schema_from: i64,
}

/// The lock file next to the database.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-owner.lock");
    PathBuf::from(name)
}

/// Opens (creating if needed) and migrates the database at `config.path`.
pub(crate) fn open(config: &StoreConfig) -> Result<Opened> {
    let path = config.path.clone();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
    }
    let lock = take_lock(&path)?;

    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&path, flags).map_err(|e| open_error(&path, e))?;
    conn.busy_timeout(config.busy_timeout())
        .map_err(|e| open_error(&path, e))?;
    // The first statement reads the header: a garbage file fails here.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| open_error(&path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "SQLite refused WAL journal mode");
    }
    let pragmas = format!(
        "PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;",
        config.synchronous.pragma()
    );
    conn.execute_batch(&pragmas)
        .map_err(|e| open_error(&path, e))?;
    if let Some(max) = config.max_size_bytes {
        let page: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(|e| open_error(&path, e))?;
        let pages = (max / page.max(512) as u64).max(1);
        conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .map_err(|e| open_error(&path, e))?;
    }

    let schema_from = migrate(&conn, &path)?;
    Ok(Opened {
        conn,
        _lock: lock,
        schema_from,
    })
}

/// Takes the owner lock without waiting: a second owner is an operator
/// error, better reported than waited for.
fn take_lock(db: &Path) -> Result<Flock<File>> {
    let lock = lock_path(db);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|source| StoreError::Io {
            path: lock.clone(),
            source,
        })?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        if errno == nix::errno::Errno::EWOULDBLOCK {
            StoreError::InUse {
                path: db.to_owned(),
                lock,
            }
        } else {
            StoreError::Io {
                path: lock,
                source: errno.into(),
            }
        }
    })
}

fn open_error(path: &Path, source: rusqlite::Error) -> StoreError {
    let path = path.to_owned();
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt { path, source }
        }
        _ => StoreError::Open { path, source },
    }
}

/// Runs the pending migration steps; returns the version found.
fn migrate(conn: &Connection, path: &Path) -> Result<i64> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| open_error(path, e))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::FutureSchema {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 0 {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            source: rusqlite::Error::InvalidParameterName(format!("negative user_version {found}")),
        });
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i as i64 + 1;
        let sql = format!("BEGIN IMMEDIATE; {step}\n; PRAGMA user_version = {version}; COMMIT;");
        if let Err(source) = conn.execute_batch(&sql) {
            // Leave the file at the previous version.
            let _ = conn.execute_batch("ROLLBACK");
            return Err(match source.sqlite_error_code() {
                Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
                    StoreError::Corrupt {
                        path: path.to_owned(),
                        source,
                    }
                }
                Some(ErrorCode::ReadOnly) | Some(ErrorCode::CannotOpen) => StoreError::Open {
                    path: path.to_owned(),
                    source,
                },
                _ => StoreError::Migration {
                    path: path.to_owned(),
                    version,
                    source,
                },
            });
        }
        tracing::info!(path = %path.display(), version, "store schema migrated");
    }
    Ok(found)
}
