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
use crate::delivery::event::{Event, EventType, PayloadDigest};
use crate::delivery::fair::ClaimLimits;
use crate::delivery::step::NextStep;
use crate::id::{AttemptId, DestinationId, EventId};
use crate::record::{DestinationRecord, DisabledReason};
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

/// How long a store remembers a published event id at least, counted from
/// the event's `created_at`: 24 hours, and beyond for as long as the event
/// is stored (a store that is an [`EventLog`](crate::delivery::EventLog)
/// keeps it until purged). See [`Outbox::enqueue`].
pub const EVENT_ID_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// How many of a tenant's expired event ids (past [`EVENT_ID_RETENTION`],
/// event no longer stored) an [`Outbox::enqueue`] forgets, at most: more
/// than the one it adds, so a tenant's ids shrink back to its last day's.
pub const EVENT_IDS_FORGOTTEN_PER_ENQUEUE: usize = 2;

/// What a store remembers of a published event: enough to answer a publish
/// of the same id again as the first one was answered, and to tell a retry
/// (same type and payload) from a different event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExistingEvent {
    /// The event's creation time.
    pub created_at: Timestamp,
    /// Its type.
    pub event_type: EventType,
    /// The digest of its payload.
    pub payload: PayloadDigest,
    /// How many deliveries its first enqueue stored.
    pub destinations: usize,
}

impl ExistingEvent {
    /// What a store keeps of `event`, enqueued to `destinations`.
    #[must_use]
    pub fn of(event: &Event, destinations: usize) -> Self {
        Self {
            created_at: event.created_at,
            event_type: event.event_type.clone(),
            payload: event.payload.digest(),
            destinations,
        }
    }

    /// Whether `event` has this one's type and payload (byte for byte).
    #[must_use]
    pub fn same_content(&self, event: &Event) -> bool {
        self.event_type == event.event_type && self.payload == event.payload.digest()
    }
}

/// What [`Outbox::enqueue`] did.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub enum EnqueueOutcome {
    /// The event and this many pending deliveries were stored (0 when the
    /// tenant has no enabled destination it matches).
    Enqueued {
        /// How many deliveries were stored.
        deliveries: usize,
    },
    /// The tenant already has an event of this id (whatever its content);
    /// nothing stored.
    Exists(ExistingEvent),
    /// [`Target::Only`] names no destination of the tenant; nothing stored.
    NotFound,
    /// [`Target::Only`] names a disabled destination; nothing stored.
    Disabled,
    /// Storing the deliveries would give the tenant more pending deliveries
    /// than the store's
    /// [`Quotas::max_pending_deliveries`](crate::limits::Quotas::max_pending_deliveries);
    /// nothing stored, not even the id.
    QueueFull,
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
    /// The destination as the claim read it (enabled then), so that the
    /// attempt needs no read of its own.
    pub destination: DestinationRecord,
    /// Whether the destination was failing when claimed (its stored failure
    /// streak is not empty): the claim took it within
    /// [`ClaimLimits::failing_limit`].
    pub failing: bool,
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
        /// When the delivery is due again, if this write kept it for a
        /// retry ([`DeliveryAfter::retry_at`]); `None` when it finished:
        /// delivered, failed for good, or its destination disabled (by
        /// this write or before it, while the attempt was in flight).
        retry_at: Option<Timestamp>,
    },
    /// The lease is no longer held (expired and claimed again, released, or
    /// the delivery is gone); nothing was written.
    LeaseLost,
}

/// How many deliveries are pending, as [`Outbox::queue_depth`] counts
/// them: every tenant's, due or scheduled for later.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct QueueDepth {
    /// Pending deliveries under no lease: never claimed, released, or
    /// rescheduled after a failed attempt (due now or later).
    pub waiting: u64,
    /// Pending deliveries under a lease: an attempt in flight, or a lapsed
    /// lease that no claim, release or completion has cleared yet.
    pub leased: u64,
}

/// What happens to a delivery after an attempt, as [`settle`] decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryAfter {
    /// Done (delivered, failed, or its destination is disabled): remove it.
    Finished,
    /// Pending again: attempt + 1, due at this time, lease cleared.
    RetryAt(Timestamp),
}

impl DeliveryAfter {
    /// When the delivery is due again: `None` once it is finished.
    #[must_use]
    pub const fn retry_at(self) -> Option<Timestamp> {
        match self {
            Self::Finished => None,
            Self::RetryAt(at) => Some(at),
        }
    }
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
    /// Disable the destination for this reason (never set when it is
    /// already disabled).
    pub disable: Option<DisabledReason>,
}

/// The consequence of `report` for a destination whose stored failure streak
/// is `streak` and which is `enabled` (or not) when the attempt is recorded:
/// every store calls this in [`Outbox::complete`] instead of re-implementing
/// the rules.
///
/// A delivered attempt clears the streak. Any other attempt extends it (from
/// the attempt's start time); `NextStep::Disable(r)` disables with `r`;
/// otherwise, if the extended streak satisfies `report.disable`
/// ([`DisablePolicy::disables`] at the attempt's start), the destination is
/// disabled `failing` and the delivery ends; else `RetryAt(t)` reschedules
/// and `Failed` ends the delivery.
///
/// A destination that is no longer enabled (disabled while the attempt was
/// in flight) keeps its state: the attempt is recorded and moves the streak
/// as above, but the delivery ends whatever the report says, and nothing is
/// disabled again.
///
/// ```
/// use prets_destinations::delivery::{
///     AttemptMeta, AttemptRecord, AttemptReport, Classification, DeliveryAfter, DisablePolicy,
///     EventId, Failure, FailureCause, NextStep, settle,
/// };
/// use prets_destinations::{DestinationId, Timestamp};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let started_at = Timestamp::from_unix_seconds(1_700_000_000).ok_or("time")?;
/// let retry = Timestamp::from_unix_seconds(1_700_000_060).ok_or("time")?;
/// let failed = Classification::Failed(Failure {
///     cause: FailureCause::Status(500),
///     retry_after: None,
/// });
/// let meta = AttemptMeta {
///     attempt_id: "att_01HZY8ZQ5M3J9V6W2X4T7R1P0K".parse()?,
///     event_id: "evt_01HZY8ZQ5M3J9V6W2X4T7R1P0K".parse::<EventId>()?,
///     destination_id: "whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K".parse::<DestinationId>()?,
///     attempt: 1,
///     started_at,
///     duration_ms: 12,
/// };
/// let next = NextStep::RetryAt(retry);
/// let report = AttemptReport {
///     attempt: AttemptRecord::new(meta, &failed, &next),
///     next,
///     disable: DisablePolicy::default(),
/// };
/// // Enabled: the delivery is retried; the streak counts one failure.
/// let settled = settle(&report, None, true);
/// assert_eq!(settled.delivery, DeliveryAfter::RetryAt(retry));
/// assert_eq!(settled.delivery.retry_at(), Some(retry));
/// assert_eq!(settled.streak.map(|s| s.attempts), Some(1));
/// // Disabled mid-flight: the attempt is kept, the delivery ends.
/// let settled = settle(&report, None, false);
/// assert_eq!(settled.delivery, DeliveryAfter::Finished);
/// assert_eq!(settled.delivery.retry_at(), None);
/// assert_eq!(settled.attempt.next_attempt_at, None);
/// assert_eq!(settled.disable, None);
/// # Ok(())
/// # }
/// ```
#[must_use]
pub fn settle(report: &AttemptReport, streak: Option<FailureStreak>, enabled: bool) -> Settlement {
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
    let (delivery, disable) = if enabled {
        (delivery, disable)
    } else {
        (DeliveryAfter::Finished, None)
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
/// as the attempt; [`DestinationRepo::replace`] must drop a disabled
/// destination's pending deliveries (see [Disabling](#disabling)); and
/// [`DestinationRepo::remove`] must drop the destination's pending
/// deliveries (leased or not), its attempts and its failure streak (an id
/// inserted again starts clean).
///
/// # Delivery guarantees
/// At least once: a delivery stays pending until a [`complete`](Self::complete)
/// by the holder of a live lease finishes it; a worker that dies leaves a
/// lease that expires, and the delivery is claimed again. Two live leases
/// never cover one delivery.
///
/// # Disabling
/// A destination is disabled by [`DestinationRepo::replace`] storing it with
/// `enabled: false`, or by [`complete`](Self::complete) (a `410 Gone`, or a
/// failure streak the policy disables on). That same write drops every
/// pending delivery of the destination that is not under a lease: none of
/// them is offered again, and enabling the destination again does not bring
/// them back. No new deliveries are enqueued for a disabled destination.
/// Enabling it again (a `replace` with `enabled: true` of a disabled record)
/// clears its failure streak: it comes back healthy, not
/// [failing](Claimed::failing).
///
/// A delivery under a lease when its destination is disabled is an attempt
/// in flight: it stays with the lease's holder (an expired lease counts
/// until a claim takes the delivery). While the destination is disabled,
/// its [`complete`](Self::complete) records the attempt and finishes the
/// delivery, never reschedules it ([`settle`] for a destination not
/// enabled); its [`release`](Self::release) drops it; and if its holder is
/// gone, a [`claim`](Self::claim) that finds its lease over drops it. Each
/// of these writes judges by the destination's state when it is made: once
/// enabled again, such a delivery is an ordinary one.
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
    /// # Event ids
    /// Ids are unique per tenant. The store remembers each id it enqueued
    /// (even with no delivery) as an [`ExistingEvent`], and an enqueue of a
    /// remembered id stores nothing and answers
    /// [`Exists`](EnqueueOutcome::Exists) with it; of concurrent enqueues of
    /// one id (on any host sharing the store), exactly one stores it. An
    /// id is remembered for [`EVENT_ID_RETENTION`] after its `created_at`
    /// and for as long as the event is stored, then may be forgotten: each
    /// enqueue forgets up to [`EVENT_IDS_FORGOTTEN_PER_ENQUEUE`] of the
    /// tenant's oldest ids that are past both, in the same write.
    /// [`Target::Only`] checks its destination first: `NotFound` and
    /// `Disabled` remember nothing.
    ///
    /// # Pending quota
    /// A store opened with
    /// [`Quotas::max_pending_deliveries`](crate::limits::Quotas::max_pending_deliveries)
    /// refuses, in the same atomic write, an enqueue whose deliveries would
    /// take the tenant's pending deliveries (stored and not yet finished,
    /// leased or not) past it: [`QueueFull`](EnqueueOutcome::QueueFull),
    /// nothing stored. An enqueue of no delivery, and an id already
    /// remembered ([`Exists`](EnqueueOutcome::Exists) comes first), are never
    /// refused. Nothing already queued is touched. The count is the tenant's
    /// own, kept so that checking it does not read the whole queue.
    ///
    /// # Errors
    /// Only storage failures.
    fn enqueue(
        &self,
        tenant: &TenantId,
        event: &Event,
        target: Target,
    ) -> impl Future<Output = Result<EnqueueOutcome, Self::Error>> + Send;

    /// Leases up to `limits.limit` deliveries (any tenant) due at or before
    /// `now` and not under a live lease (never leased, released, or lease
    /// expired at or before `now`). Each gets the lease
    /// `{ token, expires_at: now + duration }`. A delivery it would offer
    /// whose destination is disabled (one whose lease ran out after the
    /// disable) is finished (dropped) instead. Two concurrent claims never
    /// return the same delivery.
    ///
    /// Fair, as [`FairQueue`](crate::delivery::FairQueue) is: organizations
    /// take turns, and within one its destinations, earliest due first
    /// within a destination; after the claim no destination has more live
    /// leases than `limits.per_destination` (`per_failing_destination` for
    /// a failing one: see [`Claimed::failing`]), and at most
    /// `limits.failing_limit` of the deliveries returned are of failing
    /// destinations. [`ClaimLimits::up_to`] (also `n.into()`) sets no caps:
    /// earliest due first. Its cost does not grow with the number of
    /// deliveries queued.
    ///
    /// # Errors
    /// Only storage failures.
    fn claim(
        &self,
        now: Timestamp,
        limits: ClaimLimits,
        lease: LeaseRequest,
    ) -> impl Future<Output = Result<Vec<Claimed>, Self::Error>> + Send;

    /// The store's clock: the time claims, leases and due times are judged
    /// by. A store shared by several hosts answers one clock for all of them
    /// (a database's); the default is this host's system clock. Hosts take
    /// `now` for [`claim`](Self::claim), [`renew`](Self::renew) and the
    /// times of attempts and events from it.
    ///
    /// # Errors
    /// Only storage failures.
    fn now(&self) -> impl Future<Output = Result<Timestamp, Self::Error>> + Send {
        core::future::ready(Ok(
            Timestamp::try_from(std::time::SystemTime::now()).unwrap_or(Timestamp::UNIX_EPOCH)
        ))
    }

    /// [`complete`](Self::complete) for each `(lease, report)`, in order,
    /// each all or nothing and judged as `complete` judges it; a store may
    /// write them in one transaction. On `Err`, a prefix of them may have
    /// been written: completing one again answers
    /// [`LeaseLost`](CompleteOutcome::LeaseLost) once its lease is gone.
    ///
    /// # Errors
    /// Only storage failures.
    fn complete_all(
        &self,
        batch: Vec<(Lease, AttemptReport)>,
    ) -> impl Future<Output = Result<Vec<CompleteOutcome>, Self::Error>> + Send {
        async move {
            let mut out = Vec::with_capacity(batch.len());
            for (lease, report) in batch {
                out.push(self.complete(&lease, report).await?);
            }
            Ok(out)
        }
    }

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
    /// claim (its due time is kept), or, if its destination is disabled,
    /// dropped in the same write. `Ok(false)` if the lease was lost.
    ///
    /// # Errors
    /// Only storage failures.
    fn release(&self, lease: &Lease) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Records one attempt and its consequence in one write, only if `lease`
    /// is still held: [`settle`] over the destination's stored failure
    /// streak and whether it is enabled gives the attempt record to store,
    /// the streak to store, the delivery's next state and whether to disable
    /// the destination (as [`DestinationRecord::disabled`] at the attempt's
    /// start, dropping its other unleased deliveries: see
    /// [Disabling](#disabling)). A destination disabled while the attempt
    /// was in flight still gets the attempt recorded. `Ok(LeaseLost)` and
    /// nothing written if the lease is no longer held.
    ///
    /// [`DestinationRecord::disabled`]: crate::record::DestinationRecord::disabled
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

    /// How many deliveries are pending, of every tenant: those under a
    /// lease and the others ([`QueueDepth`]). A delivery is counted from
    /// its enqueue until it is finished (delivered, failed, dropped with its
    /// destination); one whose lease lapsed counts as leased until a claim,
    /// a release or a completion clears the lease. The answer is a snapshot:
    /// concurrent writes may or may not be in it. For gauges and operators,
    /// not for decisions: a store may count over an index (cost growing
    /// with the queue), so a host samples it, not calls it per request.
    ///
    /// # Errors
    /// Only storage failures.
    fn queue_depth(&self) -> impl Future<Output = Result<QueueDepth, Self::Error>> + Send;
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
        limits: ClaimLimits,
        lease: LeaseRequest,
    ) -> impl Future<Output = Result<Vec<Claimed>, Self::Error>> + Send {
        (**self).claim(now, limits, lease)
    }

    fn now(&self) -> impl Future<Output = Result<Timestamp, Self::Error>> + Send {
        (**self).now()
    }

    fn complete_all(
        &self,
        batch: Vec<(Lease, AttemptReport)>,
    ) -> impl Future<Output = Result<Vec<CompleteOutcome>, Self::Error>> + Send {
        (**self).complete_all(batch)
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

    fn queue_depth(&self) -> impl Future<Output = Result<QueueDepth, Self::Error>> + Send {
        (**self).queue_depth()
    }
}
