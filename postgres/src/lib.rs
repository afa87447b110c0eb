//! A PostgreSQL [`DestinationRepo`](prets_destinations::DestinationRepo) for
//! prets-destinations: [`PgRepo`].
//!
//! SQLite stays the embedded default; PostgreSQL is for a team whose traffic
//! outgrows one machine and runs several server nodes behind a load balancer
//! on one database. Every node opens its own [`PgRepo`] (its own connection
//! pool); the database is the only shared state, and every contract of the
//! trait (atomic insert-if-absent, compare-and-swap replace, one-statement
//! remove, durable on `Ok`) holds across nodes, not just within one.
//!
//! ```no_run
//! use prets_destinations::DestinationRepo;
//! use prets_destinations_postgres::PgRepo;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Applies the schema migrations the database lacks, then serves.
//! let repo = PgRepo::connect("postgres://app@127.0.0.1:5432/prets", 16).await?;
//! let tenant = "org_1".parse()?;
//! let page = repo.list_page(&tenant, None, 50).await?;
//! # drop(page);
//! # Ok(())
//! # }
//! ```

mod error;
mod repo;
mod schema;

pub use crate::error::PgError;
pub use crate::repo::{CONNECT_TIMEOUT, POOL_TIMEOUT, PgRepo};
pub use crate::schema::schema_version;
