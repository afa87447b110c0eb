//! `PgRepo` against the real PostgreSQL server: one test binary, one module
//! per area.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod events;
mod fair;
mod outbox;
mod quotas;
mod repo;
mod tokens;
