//! The outbox seam: [`Outbox`], the durable queue of deliveries a store
//! implements next to its destinations, and [`settle`], the pure function
//! every store applies when an attempt completes.

use core::fmt;
use core::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand_core::CryptoRng;

use crate::delivery::attempt::AttemptRecord;
use crate::delivery::disable::{DisablePolicy, FailureStreak};
use crate::delivery::event::Event;
use crate::delivery::step::NextStep;
use crate::id::{AttemptId, DestinationId, EventId};
use crate::record::DisabledReason;
use crate::repo::DestinationRepo;
use crate::tenant::TenantId;
use crate::time::Timestamp;

/// Which destinations of a tenant an event goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// Every destination of the tenant that is enabled when the event is
    /// stored.
    AllEnabled,
    /// Only this destination (a test event), if it exists and is enabled.
    Only(DestinationId),
}

/// What [`Outbox::enqueue`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub enum EnqueueOutcome {
    /// The event and this many pending deliveries were stored (0 when the
    /// tenant has no enabled destination: the event is then not stored).
    Enqueued {
        /// How many deliveries were stored.
        deliveries: usize,
    },
    /// [`Target::Only`] names no destination of the tenant; nothing stored.
    NotFound,
    /// [`Target::Only`] names a disabled destination; nothing stored.
    Disabled,
}

/// A lease's token: 128 random bits, chosen by the claiming worker. Only
/// the holder of the token may renew, release or complete the delivery.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseToken([u8; 16]);

impl LeaseToken {
    /// A fresh token from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// A token read back from storage.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The 16 bytes, for storage.
    #[must_use]
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0
    }
}

impl fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LeaseToken(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// What a worker asks of [`Outbox::claim`]: its token and how long the
/// lease lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The worker's token for the leases of this claim.
    pub token: LeaseToken,
    /// How long each lease lasts from the claim's `now`.
    pub duration: Duration,
}

/// One delivery: an event for one destination of a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryKey {
    /// The tenant.
    pub tenant: TenantId,
    /// The event.
    pub event_id: EventId,
    /// The destination.
    pub destination_id: DestinationId,
}

/// A held lease on one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The worker's token.
    pub token: LeaseToken,
    /// The delivery leased.
    pub delivery: DeliveryKey,
    /// When the lease ends unless renewed; after it, another claim may take
    /// the delivery.
    pub expires_at: Timestamp,
}

/// A delivery handed to a worker by [`Outbox::claim`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    /// The lease to renew, release or complete with.
    pub lease: Lease,
    /// The event to deliver.
    pub event: Event,
    /// Which attempt this is, from 1.
    pub attempt: u32,
}

/// One attempt's result, for [`Outbox::complete`]; built by
/// [`plan_finish`](crate::ops::plan_finish).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptReport {
    /// The attempt, as it will be listed.
    pub attempt: AttemptRecord,
    /// What the worker decided for the delivery.
    pub next: NextStep,
    /// The auto-disable rule the store applies to the destination's stored
    /// failure streak.
    pub disable: DisablePolicy,
}

/// What [`Outbox::complete`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub enum CompleteOutcome {
    /// The attempt and its consequence were written.
    Recorded {
        /// The reason the destination was disabled by this write, if it was.
        disabled: Option<DisabledReason>,
    },
    /// The lease is no longer held (expired and claimed again, released, or
    /// the delivery is gone); nothing was written.
    LeaseLost,
}

/// What happens to a delivery after an attempt, as [`settle`] decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryAfter {
    /// Done (delivered, failed, or its destination is disabled): remove it.
    Finished,
    /// Pending again: attempt + 1, due at this time, lease cleared.
    RetryAt(Timestamp),
}

/// The writes [`Outbox::complete`] makes, in one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// The attempt record to store (its `next_attempt_at` cleared if the
    /// delivery does not continue).
    pub attempt: AttemptRecord,
    /// The delivery's next state.
    pub delivery: DeliveryAfter,
    /// The destination's failure streak to store: `None` clears it.
    pub streak: Option<FailureStreak>,
    /// Disable the destination (if it is still enabled) for this reason.
    pub disable: Option<DisabledReason>,
}

/// The consequence of `report` for a destination whose stored failure streak
/// is `streak`: every store calls this in [`Outbox::complete`] instead of
/// re-implementing the rules.
///
/// A delivered attempt clears the streak. Any other attempt extends it (from
/// the attempt's start time); `NextStep::Disable(r)` disables with `r`;
/// otherwise, if the extended streak satisfies `report.disable`
/// ([`DisablePolicy::disables`] at the attempt's start), the destination is
/// disabled `failing` and the delivery ends; else `RetryAt(t)` reschedules
/// and `Failed` ends the delivery.
#[must_use]
pub fn settle(report: &AttemptReport, streak: Option<FailureStreak>) -> Settlement {
    let mut attempt = report.attempt.clone();
    let at = attempt.started_at;
    let (delivery, streak, disable) = match report.next {
        NextStep::Delivered => (DeliveryAfter::Finished, None, None),
        step => {
            let streak = FailureStreak::after_failure(streak, at);
            match step {
                NextStep::Disable(reason) => (DeliveryAfter::Finished, Some(streak), Some(reason)),
                _ if report.disable.disables(&streak, at) => (
                    DeliveryAfter::Finished,
                    Some(streak),
                    Some(DisabledReason::Failing),
                ),
                NextStep::RetryAt(t) => (DeliveryAfter::RetryAt(t), Some(streak), None),
                _ => (DeliveryAfter::Finished, Some(streak), None),
            }
        }
    };
    if delivery == DeliveryAfter::Finished {
        attempt.next_attempt_at = None;
    }
    Settlement {
        attempt,
        delivery,
        streak,
        disable,
    }
}

/// A durable, shared queue of deliveries, kept by the same store as the
/// destinations (an extension of [`DestinationRepo`], with its error type).
///
/// It is one trait with the repo, not a separate one, because its writes span
/// both: [`enqueue`](Self::enqueue) reads the tenant's enabled destinations
/// and writes the event and its deliveries in one transaction;
/// [`complete`](Self::complete) may disable the destination in the same write
/// as the attempt; and [`DestinationRepo::remove`] must drop the
/// destination's pending deliveries, its attempts and its failure streak (an
/// id inserted again starts clean).
///
/// # Delivery guarantees
/// At least once: a delivery stays pending until a [`complete`](Self::complete)
/// by the holder of a live lease finishes it; a worker that dies leaves a
/// lease that expires, and the delivery is claimed again. Two live leases
/// never cover one delivery.
///
/// Disabled destinations: no new deliveries are enqueued for them, and
/// [`claim`](Self::claim) finishes (drops) their pending deliveries instead
/// of offering them. Enabling a destination again does not bring those back.
///
/// `MemoryRepo` (feature `memory`) implements it; the
/// `conformance::outbox` functions (feature `conformance`) check any
/// implementation.
pub trait Outbox: DestinationRepo {
    /// Stores `event` and one pending delivery (attempt 1, due
    /// `event.created_at`) per destination of `tenant` selected by `target`
    /// that is enabled at this moment, atomically (all or nothing), durable
    /// on `Ok`.
    ///
    /// # Errors
    /// Only storage failures.
    fn enqueue(
        &self,
        tenant: &TenantId,
        event: &Event,
        target: Target,
    ) -> impl Future<Output = Result<EnqueueOutcome, Self::Error>> + Send;

    /// Leases up to `limit` deliveries (any tenant) due at or before `now`
    /// and not under a live lease (never leased, released, or lease expired
    /// at or before `now`), earliest due first. Each gets the lease
    /// `{ token, expires_at: now + duration }`. Deliveries whose destination
    /// is disabled are finished (dropped) instead of being offered. Two
    /// concurrent claims never return the same delivery.
    ///
    /// # Errors
    /// Only storage failures.
    fn claim(
        &self,
        now: Timestamp,
        limit: usize,
        lease: LeaseRequest,
    ) -> impl Future<Output = Result<Vec<Claimed>, Self::Error>> + Send;

    /// Extends a held lease to `until`. `Ok(false)` if the lease was lost
    /// (claimed by another token, released, or the delivery is finished or
    /// gone); an expired lease not yet claimed again is still held.
    ///
    /// # Errors
    /// Only storage failures.
    fn renew(
        &self,
        lease: &Lease,
        until: Timestamp,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Gives a leased delivery back without an attempt (a worker shutting
    /// down): the lease is cleared and the delivery is offered to the next
    /// claim (its due time is kept). `Ok(false)` if the lease was lost.
    ///
    /// # Errors
    /// Only storage failures.
    fn release(&self, lease: &Lease) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Records one attempt and its consequence in one write, only if `lease`
    /// is still held: [`settle`] over the destination's stored failure
    /// streak gives the attempt record to store, the streak to store, the
    /// delivery's next state and whether to disable the destination (if it
    /// is still enabled: version + 1, `updated_at` = the attempt's start,
    /// never earlier than the last change). `Ok(LeaseLost)` and nothing
    /// written if the lease is no longer held.
    ///
    /// # Errors
    /// Only storage failures.
    fn complete(
        &self,
        lease: &Lease,
        report: AttemptReport,
    ) -> impl Future<Output = Result<CompleteOutcome, Self::Error>> + Send;

    /// The attempts of the tenant's destination, newest first (descending
    /// attempt id; ids start with the attempt's start time), at most `limit`,
    /// only those with an id below `before` when given. Tenant-scoped: another
    /// tenant's destination of the same id shows nothing.
    ///
    /// # Errors
    /// Only storage failures.
    fn list_attempts(
        &self,
        tenant: &TenantId,
        destination: DestinationId,
        before: Option<AttemptId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AttemptRecord>, Self::Error>> + Send;
}

/// A shared outbox is an outbox (see the [`DestinationRepo`] impl for `Arc`).
impl<T: Outbox + ?Sized> Outbox for Arc<T> {
    fn enqueue(
        &self,
        tenant: &TenantId,
        event: &Event,
        target: Target,
    ) -> impl Future<Output = Result<EnqueueOutcome, Self::Error>> + Send {
        (**self).enqueue(tenant, event, target)
    }

    fn claim(
        &self,
        now: Timestamp,
        limit: usize,
        lease: LeaseRequest,
    ) -> impl Future<Output = Result<Vec<Claimed>, Self::Error>> + Send {
        (**self).claim(now, limit, lease)
    }

    fn renew(
        &self,
        lease: &Lease,
        until: Timestamp,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        (**self).renew(lease, until)
    }

    fn release(&self, lease: &Lease) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        (**self).release(lease)
    }

    fn complete(
        &self,
        lease: &Lease,
        report: AttemptReport,
    ) -> impl Future<Output = Result<CompleteOutcome, Self::Error>> + Send {
        (**self).complete(lease, report)
    }

    fn list_attempts(
        &self,
        tenant: &TenantId,
        destination: DestinationId,
        before: Option<AttemptId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AttemptRecord>, Self::Error>> + Send {
        (**self).list_attempts(tenant, destination, before, limit)
    }
}
