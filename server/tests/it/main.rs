//! The server's integration tests, one binary: each module was a test
//! binary of its own; `support` is what they share.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code,
    unreachable_pub
)]

#[cfg(unix)]
mod binary;
mod delivery_client;
#[cfg(unix)]
mod delivery_e2e;
mod event_log_http;
mod events_http;
mod hardening;
mod http;
mod lifecycle_http;
mod limits_http;
mod logs;
mod ops_http;
#[cfg(unix)]
mod postgres_nodes;
mod receivers_http;
mod retention;
mod sqlite_repo;
mod support;
mod worker;
