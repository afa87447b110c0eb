//! The delivery settings, validated: which addresses deliveries may reach,
//! the extra root certificates, the retry schedule, the disable policy and
//! the limits. The server's flags build them
//! ([`Config::delivery`](crate::Config::delivery)); the
//! [`DeliveryClient`](super::DeliveryClient) and the
//! [`Worker`](super::Worker) read them.

use std::time::Duration;

use prets_destinations::HostPolicy;
use prets_destinations::delivery::{DisablePolicy, RetrySchedule};

/// The delivery settings, validated: see
/// [`Config::delivery`](crate::Config::delivery) for the flags that set them.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// Which addresses deliveries may connect to.
    pub policy: HostPolicy,
    /// Root certificates trusted besides the web PKI roots.
    pub root_certificates: Vec<reqwest::Certificate>,
    /// The waits between attempts.
    pub retry_schedule: RetrySchedule,
    /// When continuous failure disables a destination.
    pub disable: DisablePolicy,
    /// The most one attempt may take.
    pub timeout: Duration,
    /// The most resolving, connecting and the TLS handshake may take.
    pub connect_timeout: Duration,
    /// Most attempts in flight at once.
    pub concurrency: u32,
    /// Most attempts in flight at once to one destination (while it is
    /// failing: 1, within the worker's slow lane).
    pub destination_concurrency: u32,
    /// How long an unused connection stays in the pool before it is closed.
    pub pool_idle_timeout: Duration,
    /// Most unused connections kept per destination host and port.
    pub pool_max_idle_per_host: u32,
}

impl Default for DeliveryConfig {
    /// The defaults of the flags: public addresses only, no extra roots.
    fn default() -> Self {
        Self {
            policy: HostPolicy::new(),
            root_certificates: Vec::new(),
            retry_schedule: RetrySchedule::default(),
            disable: DisablePolicy::default(),
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            concurrency: 64,
            destination_concurrency: 4,
            pool_idle_timeout: Duration::from_secs(4),
            pool_max_idle_per_host: 2,
        }
    }
}

/// The certificates of a PEM file (one or more `CERTIFICATE` blocks).
///
/// # Errors
/// A text naming what is wrong: no certificate in the file, or a block that
/// does not parse.
pub fn parse_root_certificates(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, String> {
    let certs = reqwest::Certificate::from_pem_bundle(pem)
        .map_err(|_| "not a PEM file of certificates".to_owned())?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block in the file".to_owned());
    }
    Ok(certs)
}
