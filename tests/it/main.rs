//! The core's integration tests, one module per concern, through the public
//! API only. `support` holds what several modules share.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers as well as tests: a panic is a test failure"
)]

mod support;

mod address;
mod api_traits;
mod create;
mod delivery;
mod description_metadata;
#[cfg(all(feature = "memory", feature = "conformance"))]
mod events_memory;
mod fair_queue;
mod filter;
mod headers;
mod host_policy;
mod id;
#[cfg(all(feature = "memory", feature = "conformance"))]
mod lifecycle_memory;
#[cfg(feature = "memory")]
mod lifecycle_model;
mod lifecycle_rotation;
mod lifecycle_wire;
mod limits;
mod name;
mod oracle;
#[cfg(all(feature = "memory", feature = "conformance"))]
mod outbox_memory;
#[cfg(feature = "memory")]
mod outbox_model;
mod receivers;
mod repo_create;
#[cfg(all(feature = "memory", feature = "conformance"))]
mod repo_memory;
mod repo_seal;
mod repo_send;
mod secret;
mod signing;
mod time;
mod url;
mod wire;
