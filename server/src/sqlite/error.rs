//! [`SqliteError`]: what opening the database and every job on its
//! connections may fail with.

use std::fmt;
use std::sync::Arc;

use prets_destinations::StoreError;
use rusqlite::ffi::ErrorCode;

/// A storage failure of [`SqliteRepo`](super::SqliteRepo). Its text names
/// the failure and SQLite's own words for it, never a stored value.
///
/// As a [`StoreError`], it is busy when SQLite answered `SQLITE_BUSY` or
/// `SQLITE_LOCKED` (another connection held the lock past the busy timeout)
/// or the writer could not take the job (its thread has stopped): nothing
/// was written, and a retry may succeed.
#[derive(Clone, Debug)]
pub struct SqliteError(pub(super) Arc<ErrorKind>);

#[derive(Debug)]
pub(super) enum ErrorKind {
    Sqlite(rusqlite::Error),
    Corrupt(&'static str),
    SchemaTooNew {
        found: i64,
        known: usize,
    },
    Unavailable,
    /// The database file could not be created.
    Create(std::io::Error),
    /// SQLite rolled back the whole batch's transaction (disk full, I/O
    /// error): nothing of the batch was written.
    RolledBack,
}

impl fmt::Display for SqliteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            ErrorKind::Sqlite(e) => write!(f, "sqlite failed: {e}"),
            ErrorKind::Corrupt(column) => write!(f, "stored {column} is not valid"),
            ErrorKind::SchemaTooNew { found, known } => write!(
                f,
                "database schema version {found} is newer than this server's {known}"
            ),
            ErrorKind::Unavailable => f.write_str("the database worker has stopped"),
            ErrorKind::Create(e) => write!(f, "cannot create the database file: {e}"),
            ErrorKind::RolledBack => {
                f.write_str("the transaction was rolled back by an earlier failure in its batch")
            }
        }
    }
}

impl std::error::Error for SqliteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.0 {
            ErrorKind::Sqlite(e) => Some(e),
            ErrorKind::Create(e) => Some(e),
            _ => None,
        }
    }
}

impl StoreError for SqliteError {
    fn is_busy(&self) -> bool {
        match &*self.0 {
            ErrorKind::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
            ),
            ErrorKind::Unavailable => true,
            _ => false,
        }
    }
}

impl From<rusqlite::Error> for SqliteError {
    fn from(e: rusqlite::Error) -> Self {
        Self(Arc::new(ErrorKind::Sqlite(e)))
    }
}

impl SqliteError {
    pub(super) fn corrupt(column: &'static str) -> Self {
        Self(Arc::new(ErrorKind::Corrupt(column)))
    }

    pub(super) fn unavailable() -> Self {
        Self(Arc::new(ErrorKind::Unavailable))
    }

    pub(super) fn rolled_back() -> Self {
        Self(Arc::new(ErrorKind::RolledBack))
    }
}

/// What a job body may fail with: SQLite, or a row that does not decode.
pub(super) type JobResult<T> = Result<T, SqliteError>;
