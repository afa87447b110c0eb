//! The I/O side of one delivery attempt: resolving the destination's host,
//! checking every address with the core's [`HostPolicy`], and the HTTPS POST
//! to the addresses that passed.
//!
//! [`HostPolicy`]: prets_destinations::HostPolicy

mod client;
mod resolve;

pub use crate::delivery::client::{
    ClientError, DeliveryClient, Outcome, RESPONSE_READ_CAP, parse_root_certificates,
};
pub use crate::delivery::resolve::{Resolve, Resolving, SystemResolver};
