//! The I/O side of one delivery attempt: resolving the destination's host,
//! checking every address with the core's [`HostPolicy`], and the HTTPS POST
//! to the addresses that passed; and the [`Worker`] that claims due
//! deliveries and makes their attempts.
//!
//! [`HostPolicy`]: prets_destinations::HostPolicy

mod client;
mod resolve;
mod worker;

use std::time::Duration;

use tokio::time::Instant;

/// The instant `wait` from now, or about thirty years from now when that
/// does not fit (an unbounded setting such as `Duration::MAX` must not make
/// `Instant + Duration` panic).
pub(crate) fn after(wait: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 86_400);
    let now = Instant::now();
    now.checked_add(wait.min(FAR))
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

pub use crate::delivery::client::{
    ClientError, DeliveryClient, Outcome, RESPONSE_READ_CAP, parse_root_certificates,
};
pub use crate::delivery::resolve::{Resolve, Resolving, SystemResolver};
pub use crate::delivery::worker::{
    BACKOFF_MAX, BACKOFF_MIN, BATCH, POLL_INTERVAL, RECORD_GRACE, Worker, WorkerHandle,
    WorkerOptions, lease_duration,
};
