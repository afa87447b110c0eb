//! The I/O side of one delivery attempt: resolving the destination's host,
//! checking every address with the core's [`HostPolicy`], and the HTTPS POST
//! to the addresses that passed; and the [`Worker`] that claims due
//! deliveries and makes their attempts, under the [`DeliveryConfig`].
//!
//! [`HostPolicy`]: prets_destinations::HostPolicy

mod client;
mod config;
mod deadline;
mod resolve;
mod worker;

pub use crate::delivery::client::{ClientError, DeliveryClient, Outcome, RESPONSE_READ_CAP};
pub use crate::delivery::config::{DeliveryConfig, parse_root_certificates};
pub use crate::delivery::resolve::{Resolve, Resolving, SystemResolver};
pub use crate::delivery::worker::{
    BACKOFF_MAX, BACKOFF_MIN, BATCH, LOOKAHEAD, POLL_INTERVAL, PUBLISH_GAP, RECORD_BATCH,
    RECORD_GRACE, Worker, WorkerHandle, WorkerOptions, lease_duration, slow_lane,
};
