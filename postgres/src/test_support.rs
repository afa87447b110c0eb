//! Test databases on a PostgreSQL server (feature `test-support`), for this
//! crate's tests and for the tests of a crate built on it.
//!
//! The server is `127.0.0.1:5432` (user `postgres`, trust auth), or the
//! `host:port` in `PRETS_TEST_PG`. An unreachable server fails every test
//! that asks for a database (in CI and out of it): tests never skip.
//!
//! Each [`TestDb`] is a database of its own with a unique name, so tests run
//! in parallel, in several processes at once, on one server; it is dropped
//! `WITH (FORCE)` (connections still open to it are closed) when the guard
//! is. Not part of the crate's API for applications: it panics where a test
//! would fail.
//!
//! ```no_run
//! use prets_destinations_postgres::test_support::TestDb;
//!
//! # async fn run() {
//! let db = TestDb::new();
//! // An old release's schema, before `PgRepo::connect` migrates it.
//! db.migrate_to(2).await;
//! let client = db.client().await;
//! # drop(client);
//! let repo = db.repo().await;
//! # drop(repo);
//! # }
//! ```

// A test helper fails the way a test does: by panicking.
#![allow(clippy::panic, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::NoTls;

use crate::repo::PgRepo;

/// The test server's `host:port`: `PRETS_TEST_PG`, or `127.0.0.1:5432`.
#[must_use]
pub fn server() -> String {
    std::env::var("PRETS_TEST_PG").unwrap_or_else(|_| "127.0.0.1:5432".to_owned())
}

fn url(database: &str) -> String {
    format!("postgres://postgres@{}/{database}", server())
}

/// Runs `sql` on the server's `postgres` database, on a thread and runtime
/// of its own (so it works from `Drop`, inside or outside a runtime).
///
/// # Errors
/// The server's refusal, or that it is unreachable, as text.
pub fn admin(sql: String) -> Result<(), String> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url("postgres"), NoTls)
                .await
                .map_err(|e| format!("postgres at {} is unreachable: {e}", server()))?;
            let driver = tokio::spawn(conn);
            let result = client.batch_execute(&sql).await.map_err(|e| e.to_string());
            drop(client);
            let _ = driver.await;
            result
        })
    })
    .join()
    .map_err(|_| "admin thread panicked".to_owned())?
}

/// A uniquely named, empty database, dropped (with any connections still
/// open to it) when this guard is.
#[derive(Debug)]
pub struct TestDb {
    name: String,
}

impl TestDb {
    /// Creates the database: `prets_test_<pid>_<n>_<nanos>`, unique across
    /// the processes sharing the server.
    ///
    /// # Panics
    /// If the server is unreachable or refuses.
    #[must_use]
    pub fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "prets_test_{}_{}_{nanos:x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
        );
        if let Err(e) = admin(format!("CREATE DATABASE \"{name}\"")) {
            panic!("cannot create a test database: {e}");
        }
        Self { name }
    }

    /// The database's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL of the database, for [`PgRepo::connect`] or a server's flags.
    #[must_use]
    pub fn url(&self) -> String {
        url(&self.name)
    }

    /// A repo on the database (which it migrates), with a pool of 8.
    ///
    /// # Panics
    /// If it cannot connect or migrate.
    pub async fn repo(&self) -> PgRepo {
        PgRepo::connect(&self.url(), 8)
            .await
            .unwrap_or_else(|e| panic!("cannot open a repo on {}: {e}", self.name))
    }

    /// A plain client on the database, for inspecting and tampering; its
    /// connection runs on the current runtime.
    ///
    /// # Panics
    /// If it cannot connect.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url(), NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.name));
        tokio::spawn(conn);
        client
    }

    /// Applies the first `version` of this crate's migrations, recorded as
    /// [`PgRepo::connect`] records them, and no more: the database as the
    /// release whose schema was `version` left it. A later
    /// [`repo`](Self::repo) migrates it the rest of the way.
    ///
    /// # Panics
    /// If `version` is above [`schema_version`](crate::schema_version), or
    /// a migration fails.
    pub async fn migrate_to(&self, version: usize) {
        assert!(
            version <= crate::schema::schema_version(),
            "schema version {version} does not exist"
        );
        let mut client = self.client().await;
        crate::schema::migrate_to(&mut client, version)
            .await
            .unwrap_or_else(|e| panic!("cannot migrate {} to {version}: {e}", self.name));
    }
}

/// The event log's range-scanning statements, by name, for a test that
/// explains their plans.
pub const EVENT_LOG_STATEMENTS: &[(&str, &str)] = crate::events::STATEMENTS;

/// The schema version just before the migration whose SQL contains
/// `marker` (such as `"CREATE TABLE event_ids"`): where a test of that
/// migration starts, whatever is appended after it.
///
/// # Panics
/// If no migration contains `marker`.
#[must_use]
pub fn version_before(marker: &str) -> usize {
    crate::schema::MIGRATIONS
        .iter()
        .position(|sql| sql.contains(marker))
        .unwrap_or_else(|| panic!("no migration contains {marker:?}"))
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = admin(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ));
    }
}
