//! Readiness: whether a store can serve, as `GET /readyz` answers it. The
//! store must answer and hold the schema this build writes: every migration
//! applied, none newer than it knows.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use prets_destinations::MemoryRepo;
use prets_destinations_postgres::PgRepo;

/// Why a store is not ready. The texts name no connection string, path,
/// host or credential: they are answered to anyone who asks `/readyz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotReady {
    /// The store did not answer (unreachable, refused, busy past its wait,
    /// or failed).
    Unreachable,
    /// The store's schema is behind this build's: a migration is missing.
    SchemaBehind {
        /// The version the store holds.
        found: i64,
        /// The version this build writes.
        expected: i64,
    },
    /// The store's schema is newer than this build knows.
    SchemaNewer {
        /// The version the store holds.
        found: i64,
        /// The version this build writes.
        expected: i64,
    },
}

impl NotReady {
    /// Judges a store at schema version `found` for a build writing
    /// `expected`.
    ///
    /// # Errors
    /// If the versions differ.
    pub fn check_schema(found: i64, expected: usize) -> Result<(), Self> {
        let expected = i64::try_from(expected).unwrap_or(i64::MAX);
        match found.cmp(&expected) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Less => Err(Self::SchemaBehind { found, expected }),
            std::cmp::Ordering::Greater => Err(Self::SchemaNewer { found, expected }),
        }
    }
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable => f.write_str("the database does not answer"),
            Self::SchemaBehind { found, expected } => write!(
                f,
                "the database schema is at version {found}, behind this build's {expected}: a migration is missing"
            ),
            Self::SchemaNewer { found, expected } => write!(
                f,
                "the database schema is at version {found}, newer than this build's {expected}"
            ),
        }
    }
}

impl std::error::Error for NotReady {}

/// The future of a [`Readiness`] check.
pub type ReadyCheck<'a> = Pin<Box<dyn Future<Output = Result<(), NotReady>> + Send + 'a>>;

/// A store that can tell whether it is ready to serve: it answers, and its
/// schema is the one this build writes. Each call asks the store afresh.
pub trait Readiness: Send + Sync {
    /// Asks the store.
    fn ready(&self) -> ReadyCheck<'_>;
}

/// Memory is ready while the process runs.
impl Readiness for MemoryRepo {
    fn ready(&self) -> ReadyCheck<'_> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// PostgreSQL: one query on a pooled connection reads the highest applied
/// migration.
impl Readiness for PgRepo {
    fn ready(&self) -> ReadyCheck<'_> {
        Box::pin(async move {
            let found = self.schema_version_found().await.map_err(|error| {
                tracing::warn!(%error, "readiness: the database did not answer");
                NotReady::Unreachable
            })?;
            NotReady::check_schema(found, prets_destinations_postgres::schema_version())
        })
    }
}

impl<T: Readiness + ?Sized> Readiness for Arc<T> {
    fn ready(&self) -> ReadyCheck<'_> {
        (**self).ready()
    }
}
