//! [`RateLimiter`]: one [`TokenBucket`] per organization, in a map that
//! forgets full buckets, so its size follows the organizations calling now,
//! not every organization that ever called.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use prets_destinations::TenantId;
use prets_destinations::limits::{Rate, TokenBucket};

/// The map is swept of full buckets when it reaches this many entries, or
/// twice its size after the last sweep, whichever is more: amortized O(1)
/// per call.
const SWEEP_AT_LEAST: usize = 1024;

/// A rate limit per organization, on this node. Each call to
/// [`check`](Self::check) spends one token of the organization's bucket.
#[derive(Debug)]
pub struct RateLimiter {
    rate: Rate,
    origin: Instant,
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    map: HashMap<TenantId, TokenBucket>,
    sweep_at: usize,
}

impl RateLimiter {
    /// A limiter of `rate` for every organization; every bucket starts full.
    #[must_use]
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            origin: Instant::now(),
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                sweep_at: SWEEP_AT_LEAST,
            }),
        }
    }

    /// Spends one of `tenant`'s tokens now: `Err` with the wait until one is
    /// back when there is none.
    ///
    /// # Errors
    /// The wait, when the organization is over its rate.
    pub fn check(&self, tenant: &TenantId) -> Result<(), Duration> {
        self.check_at(tenant, self.origin.elapsed())
    }

    /// [`check`](Self::check) at `now`, a time since this limiter's start.
    ///
    /// # Errors
    /// As for [`check`](Self::check).
    pub fn check_at(&self, tenant: &TenantId, now: Duration) -> Result<(), Duration> {
        // Nothing below panics while the lock is held: a poisoned lock is
        // only another thread's panic elsewhere.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.map.len() >= buckets.sweep_at {
            buckets.map.retain(|_, bucket| !bucket.is_full(now));
            buckets.sweep_at = buckets.map.len().saturating_mul(2).max(SWEEP_AT_LEAST);
        }
        if let Some(bucket) = buckets.map.get_mut(tenant) {
            return bucket.take(&self.rate, now);
        }
        let mut bucket = TokenBucket::new();
        let taken = bucket.take(&self.rate, now);
        buckets.map.insert(tenant.clone(), bucket);
        taken
    }

    /// How many organizations' buckets are kept.
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }
}
