//! Organization limits: [`TokenBucket`], a pure rate limiter (the time is an
//! argument), and [`Quotas`], the caps a store enforces in its writes.

use core::num::NonZeroU32;
use std::time::Duration;

/// A rate: `per_second` requests each second on average, with bursts of up
/// to `burst` at once after a quiet spell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    /// One token's refill time (at least 1 ns).
    interval: Duration,
    /// How far ahead of `now` a bucket's debt may run: `interval × (burst − 1)`.
    tolerance: Duration,
    burst: NonZeroU32,
}

impl Rate {
    /// `per_second` tokens a second, `burst` at most at once.
    #[must_use]
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        let nanos = 1_000_000_000 / u64::from(per_second.get());
        let interval = Duration::from_nanos(nanos.max(1));
        let tolerance = interval
            .checked_mul(burst.get() - 1)
            .unwrap_or(Duration::MAX);
        Self {
            interval,
            tolerance,
            burst,
        }
    }

    /// The burst: how many tokens a full bucket holds.
    #[must_use]
    pub const fn burst(&self) -> NonZeroU32 {
        self.burst
    }

    /// One token's refill time.
    #[must_use]
    pub const fn interval(&self) -> Duration {
        self.interval
    }
}

/// A token bucket, kept as the generic cell rate algorithm keeps it: one
/// time, the *theoretical arrival time* (when the bucket is full again),
/// 16 bytes per organization. Pure: every call takes the time, as a
/// [`Duration`] since any fixed origin that never goes backwards (a host
/// passes `Instant::elapsed` of its start), and the [`Rate`], so one rate
/// serves every organization's bucket.
///
/// A bucket starts full, holding [`Rate::burst`] tokens; each
/// [`take`](Self::take) spends one; it refills by one every
/// [`Rate::interval`], up to the burst. A take from an empty bucket is
/// refused with the wait until a token is back, and spends nothing.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use prets_destinations::limits::{Rate, TokenBucket};
///
/// let rate = Rate::new(NonZeroU32::new(2).unwrap(), NonZeroU32::new(3).unwrap());
/// let mut bucket = TokenBucket::new();
/// let t0 = Duration::from_secs(100);
/// // A burst of 3 at once, then one token per half second.
/// assert!((0..3).all(|_| bucket.take(&rate, t0).is_ok()));
/// assert_eq!(bucket.take(&rate, t0), Err(Duration::from_millis(500)));
/// assert!(bucket.take(&rate, t0 + Duration::from_millis(500)).is_ok());
/// assert!(!bucket.is_full(t0 + Duration::from_millis(500)));
/// assert!(bucket.is_full(t0 + Duration::from_secs(2)));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TokenBucket {
    /// When the bucket is full again; at or before `now`, it is full.
    full_at: Duration,
}

impl TokenBucket {
    /// A full bucket.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            full_at: Duration::ZERO,
        }
    }

    /// Spends one token at `now`: `Ok` if there was one, else `Err` with
    /// the wait until there is one (never zero), and the bucket unchanged.
    ///
    /// # Errors
    /// The wait, when the bucket is empty.
    pub fn take(&mut self, rate: &Rate, now: Duration) -> Result<(), Duration> {
        let from = self.full_at.max(now);
        let debt = from.saturating_sub(now);
        if debt > rate.tolerance {
            return Err(debt - rate.tolerance);
        }
        self.full_at = from.saturating_add(rate.interval);
        Ok(())
    }

    /// How many tokens the bucket holds at `now`.
    #[must_use]
    pub fn tokens(&self, rate: &Rate, now: Duration) -> u32 {
        let debt = self.full_at.saturating_sub(now);
        // Tokens missing: the debt in whole intervals, rounded up.
        let missing = debt.as_nanos().div_ceil(rate.interval.as_nanos());
        let missing = u32::try_from(missing).unwrap_or(u32::MAX);
        rate.burst.get().saturating_sub(missing)
    }

    /// Whether the bucket is full at `now`: forgetting it changes nothing,
    /// as a new bucket starts full. A host keeping one per organization
    /// drops the full ones to stay bounded.
    #[must_use]
    pub fn is_full(&self, now: Duration) -> bool {
        self.full_at <= now
    }
}

/// A wait as an HTTP `Retry-After` value: whole seconds, rounded up, at
/// least 1.
///
/// ```
/// use std::time::Duration;
/// use prets_destinations::limits::retry_after_seconds;
///
/// assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
/// assert_eq!(retry_after_seconds(Duration::from_millis(1500)), 2);
/// assert_eq!(retry_after_seconds(Duration::ZERO), 1);
/// ```
#[must_use]
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let whole = wait.as_secs();
    let up = if wait.subsec_nanos() > 0 {
        whole.saturating_add(1)
    } else {
        whole
    };
    up.max(1)
}

/// The caps a store enforces per organization, in the writes that would
/// pass them (see [`DestinationRepo::insert`](crate::repo::DestinationRepo::insert)
/// and [`Outbox::enqueue`](crate::delivery::Outbox::enqueue)). A store is
/// given them when it is opened; [`Quotas::UNLIMITED`] (the default) caps
/// nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quotas {
    /// Most destinations an organization may have.
    pub max_destinations: usize,
    /// Most pending deliveries (not yet finished, leased or not) an
    /// organization may have queued.
    pub max_pending_deliveries: usize,
}

impl Quotas {
    /// No caps.
    pub const UNLIMITED: Self = Self {
        max_destinations: usize::MAX,
        max_pending_deliveries: usize::MAX,
    };

    /// Whether an organization holding `destinations` may add one more.
    #[must_use]
    pub const fn allows_destination(&self, destinations: usize) -> bool {
        destinations < self.max_destinations
    }

    /// Whether pending deliveries are capped at all: a store whose quota
    /// caps none ([`max_pending_deliveries`](Self::max_pending_deliveries)
    /// at `usize::MAX`) need not count an organization's pending
    /// deliveries before it queues more.
    ///
    /// ```
    /// use prets_destinations::limits::Quotas;
    ///
    /// assert!(!Quotas::UNLIMITED.caps_pending_deliveries());
    /// let quotas = Quotas { max_pending_deliveries: 10_000, ..Quotas::UNLIMITED };
    /// assert!(quotas.caps_pending_deliveries());
    /// assert!(quotas.allows_deliveries(9_990, 10));
    /// assert!(!quotas.allows_deliveries(9_991, 10));
    /// ```
    #[must_use]
    pub const fn caps_pending_deliveries(&self) -> bool {
        self.max_pending_deliveries != usize::MAX
    }

    /// Whether an organization with `pending` deliveries queued may queue
    /// `more` (zero always may: nothing is queued).
    #[must_use]
    pub const fn allows_deliveries(&self, pending: usize, more: usize) -> bool {
        more == 0 || pending.saturating_add(more) <= self.max_pending_deliveries
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Self::UNLIMITED
    }
}
