//! Test databases on the PostgreSQL server the tests run against.
//!
//! The server is `127.0.0.1:5432` (user `postgres`, trust auth), or the
//! `host:port` in `PRETS_TEST_PG`. An unreachable server fails every test
//! (in CI and out of it): these tests never skip.
//!
//! The server's two-node tests include this file too (`#[path]`), so both
//! crates make and drop their test databases the same way.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU32, Ordering};

use prets_destinations_postgres::PgRepo;
use tokio_postgres::NoTls;

/// The server's `host:port`.
pub fn server() -> String {
    std::env::var("PRETS_TEST_PG").unwrap_or_else(|_| "127.0.0.1:5432".to_owned())
}

fn url(database: &str) -> String {
    format!("postgres://postgres@{}/{database}", server())
}

/// Runs `sql` on the server's `postgres` database, on a thread of its own
/// (so it works from `Drop`, inside or outside a runtime).
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
pub struct TestDb {
    name: String,
}

impl TestDb {
    pub fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "prets_test_{}_{}_{:x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        if let Err(e) = admin(format!("CREATE DATABASE \"{name}\"")) {
            panic!("cannot create a test database: {e}");
        }
        Self { name }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> String {
        url(&self.name)
    }

    pub async fn repo(&self) -> PgRepo {
        PgRepo::connect(&self.url(), 8).await.unwrap()
    }

    /// A plain client on this database, for inspecting and tampering.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url(), NoTls).await.unwrap();
        tokio::spawn(conn);
        client
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
