//! `PgError`: every failure of [`PgRepo`](crate::PgRepo).

use std::fmt;

use prets_destinations::StoreError;

/// A failure of [`PgRepo`](crate::PgRepo): the database could not be
/// reached, a statement failed, or a stored row does not decode.
///
/// Its text and its `Debug` name the failure and, for a statement the
/// database refused, its SQLSTATE code, primary message and constraint:
/// never the server's `DETAIL` or `HINT` (which quote row values, such as
/// ids or an API-token digest), a parameter value, a secret or the
/// connection string (which may hold a password). The driver's or the
/// pool's error is kept as the [`source`](std::error::Error::source); its
/// own text is not so careful, so a log should show this error's text and
/// not walk on to its sources.
pub struct PgError {
    kind: Kind,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

#[derive(Debug)]
enum Kind {
    Url,
    PoolSize,
    NoRuntime,
    Connect,
    Pool,
    Busy,
    Postgres,
    Corrupt(&'static str),
    SchemaTooNew { found: i64, known: usize },
    Task,
}

impl PgError {
    fn new(kind: Kind) -> Self {
        Self { kind, source: None }
    }

    fn with(kind: Kind, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            kind,
            source: Some(Box::new(source)),
        }
    }

    pub(crate) fn url(source: tokio_postgres::Error) -> Self {
        Self::with(Kind::Url, source)
    }

    pub(crate) fn pool_size() -> Self {
        Self::new(Kind::PoolSize)
    }

    pub(crate) fn no_runtime() -> Self {
        Self::new(Kind::NoRuntime)
    }

    pub(crate) fn connect(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::with(Kind::Connect, source)
    }

    pub(crate) fn corrupt(column: &'static str) -> Self {
        Self::new(Kind::Corrupt(column))
    }

    pub(crate) fn schema_too_new(found: i64, known: usize) -> Self {
        Self::new(Kind::SchemaTooNew { found, known })
    }

    pub(crate) fn task(source: tokio::task::JoinError) -> Self {
        Self::with(Kind::Task, source)
    }

    /// Whether the database is newer than this build: its schema version is
    /// above [`schema_version`](crate::schema_version).
    #[must_use]
    pub fn is_schema_too_new(&self) -> bool {
        matches!(self.kind, Kind::SchemaTooNew { .. })
    }

    /// Whether the database could not be reached (refused, timed out, the
    /// connection closed or the server shutting down, or no pooled
    /// connection came free in time): worth retrying shortly.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(self.kind, Kind::Connect | Kind::Pool)
    }

    /// Whether the database was reachable but refused the work for now: a
    /// lock not granted within `lock_timeout`, a statement cancelled (by
    /// `statement_timeout` or an operator), a deadlock or a serialization
    /// conflict. The transaction was rolled back, so nothing was done:
    /// worth retrying shortly.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        matches!(self.kind, Kind::Busy)
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.describe_kind(f)?;
        match &self.source {
            Some(source) if self.cause_is_safe() => write!(f, ": {}", Cause(source.as_ref())),
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("PgError");
        debug.field("kind", &self.kind);
        if let Some(source) = &self.source
            && self.cause_is_safe()
        {
            debug.field("cause", &format_args!("{}", Cause(source.as_ref())));
        }
        debug.finish()
    }
}

/// A source of a [`PgError`], told without what the database server quotes
/// from the data: for a database error its SQLSTATE code, constraint and
/// primary message (none for a data exception, class `22`, whose messages
/// quote the rejected input), never `DETAIL`, `HINT` or `WHERE`.
struct Cause<'a>(&'a (dyn std::error::Error + Send + Sync + 'static));

impl fmt::Display for Cause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut link: Option<&(dyn std::error::Error + 'static)> = Some(self.0);
        while let Some(error) = link {
            if let Some(db) = error
                .downcast_ref::<tokio_postgres::Error>()
                .and_then(tokio_postgres::Error::as_db_error)
            {
                return write_db_error(f, db);
            }
            if let Some(db) = error.downcast_ref::<tokio_postgres::error::DbError>() {
                return write_db_error(f, db);
            }
            link = error.source();
        }
        // No database error anywhere in the chain: a connection, pool or
        // conversion failure, whose text quotes no stored value.
        write!(f, "{}", self.0)
    }
}

fn write_db_error(f: &mut fmt::Formatter<'_>, db: &tokio_postgres::error::DbError) -> fmt::Result {
    let code = db.code().code();
    write!(f, "SQLSTATE {code}")?;
    if let Some(constraint) = db.constraint() {
        write!(f, " (constraint {constraint})")?;
    }
    if !code.starts_with("22") {
        write!(f, ": {}", db.message())?;
    }
    Ok(())
}

impl PgError {
    /// Whether the source may be told at all: the driver's complaint about
    /// a connection string may quote a piece of it.
    fn cause_is_safe(&self) -> bool {
        !matches!(self.kind, Kind::Url)
    }

    fn describe_kind(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Url => f.write_str("the postgres connection string is not valid"),
            Kind::PoolSize => f.write_str("the postgres pool size must be at least 1"),
            Kind::NoRuntime => f.write_str("postgres repo must be created inside a tokio runtime"),
            Kind::Connect => f.write_str("could not connect to postgres"),
            Kind::Pool => f.write_str("no postgres connection became available in time"),
            Kind::Busy => f.write_str("postgres is busy"),
            Kind::Postgres => f.write_str("postgres failed"),
            Kind::Corrupt(column) => write!(f, "stored {column} is not valid"),
            Kind::SchemaTooNew { found, known } => write!(
                f,
                "database schema version {found} is newer than this build's {known}"
            ),
            Kind::Task => f.write_str("the postgres task stopped before answering"),
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A host answers [`is_unavailable`](PgError::is_unavailable) and
/// [`is_busy`](PgError::is_busy) with a `503` and logs the error's text,
/// never its sources.
impl StoreError for PgError {
    fn is_unavailable(&self) -> bool {
        Self::is_unavailable(self)
    }

    fn is_busy(&self) -> bool {
        Self::is_busy(self)
    }
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        // A connection the server closed, or one that never opened, is the
        // database being unreachable, not a failed statement.
        // So is a server shutting down, or not yet accepting connections:
        // the next connection may well succeed.
        let shutting_down = e.code().is_some_and(|code| {
            *code == tokio_postgres::error::SqlState::ADMIN_SHUTDOWN
                || *code == tokio_postgres::error::SqlState::CRASH_SHUTDOWN
                || *code == tokio_postgres::error::SqlState::CANNOT_CONNECT_NOW
        });
        // Refused for now, rolled back: a lock or statement past its
        // timeout, a deadlock, a serialization conflict.
        let busy = e.code().is_some_and(|code| {
            *code == tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE
                || *code == tokio_postgres::error::SqlState::QUERY_CANCELED
                || *code == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED
                || *code == tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
        });
        let kind = if e.is_closed() || shutting_down {
            Kind::Connect
        } else if busy {
            Kind::Busy
        } else {
            Kind::Postgres
        };
        Self::with(kind, e)
    }
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        let kind = match e {
            deadpool_postgres::PoolError::Backend(_)
            | deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Create) => {
                Kind::Connect
            }
            _ => Kind::Pool,
        };
        Self::with(kind, e)
    }
}
