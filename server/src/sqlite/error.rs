//! [`SqliteError`]: what opening the database and every job on its
//! connections may fail with.

use std::fmt;
use std::sync::Arc;

/// A storage failure of [`SqliteRepo`](super::SqliteRepo). Its text names the failure, never a
/// stored value.
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
            ErrorKind::Sqlite(_) => f.write_str("sqlite failed"),
            ErrorKind::Corrupt(column) => write!(f, "stored {column} is not valid"),
            ErrorKind::SchemaTooNew { found, known } => write!(
                f,
                "database schema version {found} is newer than this server's {known}"
            ),
            ErrorKind::Unavailable => f.write_str("the database worker has stopped"),
            ErrorKind::Create(_) => f.write_str("cannot create the database file"),
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
