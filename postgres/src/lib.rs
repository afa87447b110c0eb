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
//! It is also the [`Outbox`](prets_destinations::delivery::Outbox): events,
//! deliveries, attempts and failure streaks live in the same database, and
//! each outbox call is one transaction (a claim that leases a disabled
//! destination's delivery drops it in a second one). postgres/README.md
//! has the design; in short:
//!
//! - **Claims** are one call of the SQL function `prets_claim`: tenants in
//!   turn, their destinations (lanes) in turn, one delivery per lane per
//!   turn, earliest due first within a lane, within the caps of
//!   [`ClaimLimits`](prets_destinations::delivery::ClaimLimits) counted over
//!   live leases; every step an index probe (`FOR UPDATE SKIP LOCKED` on
//!   the lane index), so the cost does not grow with the deliveries queued.
//!   Workers on every node share one queue and never hold one delivery
//!   twice; a delivery leased by a node that died is offered again once its
//!   lease expires.
//! - **Completions** ([`Outbox::complete_all`](prets_destinations::delivery::Outbox::complete_all))
//!   are one transaction per batch and lock no event row; claims vacuum
//!   the queue once the node made enough of its rows dead
//!   ([`PgRepo::vacuum_queues`]).
//! - **The event log** ([`EventLog`](prets_destinations::delivery::EventLog)):
//!   events stay after their deliveries until a purge deletes them (in
//!   batches, `FOR UPDATE SKIP LOCKED`, so nodes purge side by side); each
//!   list, recover and purge statement scans an index.
//! - **The clock** ([`Outbox::now`](prets_destinations::delivery::Outbox::now))
//!   is the database's, measured at connect and every 5 s
//!   ([`PgRepo::clock_offset_ms`]): hosts that take their `now`s from it
//!   agree on due times and leases whatever their own clocks say.
//! - **Wake-ups**: a node sends `NOTIFY` after its enqueues commit;
//!   [`PgRepo::listen`] wakes a host's worker on a publish made on any node.
//!
//! # Lease sizing
//! [`DEFAULT_LEASE`] is 60 s against the reference server's default
//! delivery timeout of 15 s: an attempt (connect, send, read at most the
//! timeout) and the write of its result fit in a quarter of the lease, and
//! the worker renews the lease (say every 20 s) while the attempt runs, so
//! a live delivery is never taken over. A node that dies leaves leases that
//! expire within 60 s of their last renewal; then another node delivers.
//! With a longer delivery timeout, keep the lease at least about four
//! times it, and renew well before expiry.
//!
//! The reference server's worker does not use it: it asks for its own lease
//! (2 × its delivery timeout + 5 s, 35 s by default) and renews it every
//! half lease.
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

mod clock;
mod complete;
mod deliveries;
mod error;
mod events;
mod listen;
mod outbox;
mod repo;
mod rows;
mod schema;
#[cfg(feature = "test-support")]
pub mod test_support;
mod tokens;

pub use crate::error::PgError;
pub use crate::outbox::DEFAULT_LEASE;
pub use crate::repo::{CONNECT_TIMEOUT, POOL_TIMEOUT, PgRepo};
pub use crate::schema::schema_version;
