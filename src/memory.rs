//! `MemoryRepo`: a [`DestinationRepo`] in process memory.

use std::collections::{BTreeMap, BTreeSet, HashMap, btree_map::Entry};
use std::convert::Infallible;
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use crate::delivery::{
    AttemptRecord, AttemptReport, ClaimLimits, Claimed, CompleteOutcome, DeliveryAfter,
    DeliveryKey, EVENT_ID_RETENTION, EVENT_IDS_FORGOTTEN_PER_ENQUEUE, EnqueueOutcome, Event,
    EventCursor, EventDetail, EventFacts, EventLog, EventType, ExistingEvent, FailureStreak,
    FairQueue, FilterTypes, Lease, LeaseRequest, LeaseToken, Outbox, PurgeCutoffs, Purged,
    QueueDepth, RECOVER_MAX_EVENTS, RecoverOutcome, ResendOutcome, Target, settle,
};
use crate::id::{AttemptId, DestinationId, EventId};
use crate::limits::Quotas;
use crate::record::DestinationRecord;
use crate::repo::{DestinationRepo, InsertOutcome, RemoveOutcome, ReplaceOutcome};
use crate::secret::SecretDigest;
use crate::tenant::TenantId;
use crate::time::Timestamp;

/// A [`DestinationRepo`] in process memory: the embedded default for tests
/// and for small hosts that keep their destinations elsewhere or not at all
/// between restarts.
///
/// It is also an [`Outbox`]: deliveries, attempts
/// and failure streaks live under the same lock as the destinations, so
/// enqueue, complete (with its disabling) and remove are each atomic. Its
/// pending deliveries are scheduled by a [`FairQueue`], so a claim of k
/// costs O(k log n) whatever the depth of the queue, and is fair as
/// [`Outbox::claim`] asks; a destination is failing (the queue's slow lane)
/// while its stored failure streak is not empty.
///
/// Correct under concurrent use: one lock guards the records and the digest
/// index together, so an insert is atomic and every reader sees whole
/// records. Reads share the lock. Nothing is durable past the process; that
/// is the whole of its "durable on `Ok`". It never fails (its error type is
/// [`Infallible`]), and a panic in another thread holding the lock cannot
/// leave it half-written, since no code of ours panics while holding it.
///
/// Its [`Quotas`] ([`with_quotas`](Self::with_quotas); none by default) are
/// checked under the same lock as the write they cap: a tenant's
/// destinations are counted by its map's length, its pending deliveries by
/// a count kept beside the queue.
///
/// See [`create`](crate::ops::create) for an example.
#[derive(Debug, Default)]
pub struct MemoryRepo {
    inner: RwLock<Inner>,
    quotas: Quotas,
}

#[derive(Debug, Default)]
struct Inner {
    tenants: HashMap<TenantId, BTreeMap<DestinationId, DestinationRecord>>,
    by_digest: HashMap<SecretDigest, Vec<(TenantId, DestinationId)>>,
    /// Each tenant's destinations by filter index key
    /// ([`FilterTypes::index_keys`]): an event finds the destinations it
    /// goes to by looking up its matching keys, without reading the others.
    by_filter: HashMap<TenantId, HashMap<Box<str>, BTreeSet<DestinationId>>>,
    outbox: Queue,
    published: HashMap<TenantId, PublishedIds>,
    log: Log,
}

/// The retained events (see [`EventLog`]): each tenant's, and all of them
/// by age for [`EventLog::purge`].
#[derive(Debug, Default)]
struct Log {
    tenants: HashMap<TenantId, TenantEvents>,
    by_age: BTreeSet<(Timestamp, TenantId, EventId)>,
}

#[derive(Debug, Default)]
struct TenantEvents {
    by_id: HashMap<EventId, Arc<Event>>,
    by_time: BTreeSet<(Timestamp, EventId)>,
    by_type: HashMap<EventType, BTreeSet<(Timestamp, EventId)>>,
}

impl Log {
    fn retain(&mut self, tenant: &TenantId, event: &Arc<Event>) {
        let key = (event.created_at, event.event_id);
        let events = self.tenants.entry(tenant.clone()).or_default();
        events.by_id.insert(event.event_id, Arc::clone(event));
        events.by_time.insert(key);
        events
            .by_type
            .entry(event.event_type.clone())
            .or_default()
            .insert(key);
        self.by_age
            .insert((event.created_at, tenant.clone(), event.event_id));
    }

    fn get(&self, tenant: &TenantId, id: EventId) -> Option<&Arc<Event>> {
        self.tenants.get(tenant)?.by_id.get(&id)
    }

    fn forget(&mut self, tenant: &TenantId, id: EventId) {
        let Some(events) = self.tenants.get_mut(tenant) else {
            return;
        };
        let Some(event) = events.by_id.remove(&id) else {
            return;
        };
        let key = (event.created_at, id);
        events.by_time.remove(&key);
        if let Some(of_type) = events.by_type.get_mut(&event.event_type) {
            of_type.remove(&key);
            if of_type.is_empty() {
                events.by_type.remove(&event.event_type);
            }
        }
        if events.by_id.is_empty() {
            self.tenants.remove(tenant);
        }
        self.by_age.remove(&(event.created_at, tenant.clone(), id));
    }
}

/// A tenant's remembered event ids (see [`Outbox::enqueue`]). The event is
/// stored while a pending delivery holds its `Arc`.
#[derive(Debug, Default)]
struct PublishedIds {
    ids: HashMap<EventId, (ExistingEvent, Weak<Event>)>,
    /// The ids by `created_at` (ms), oldest first: the next to forget.
    by_time: BTreeSet<(u64, EventId)>,
}

impl PublishedIds {
    /// Forgets up to [`EVENT_IDS_FORGOTTEN_PER_ENQUEUE`] of the oldest ids
    /// created before `before_ms` whose event is no longer stored.
    fn forget_expired(&mut self, before_ms: u64) {
        let expired: Vec<(u64, EventId)> = self
            .by_time
            .iter()
            .take(EVENT_IDS_FORGOTTEN_PER_ENQUEUE)
            .take_while(|(at, _)| *at < before_ms)
            .copied()
            .collect();
        for (at, id) in expired {
            if self
                .ids
                .get(&id)
                .is_none_or(|(_, stored)| stored.strong_count() == 0)
            {
                self.ids.remove(&id);
                self.by_time.remove(&(at, id));
            }
        }
    }
}

/// The outbox's state, under the same lock as the destinations.
///
/// `fair` schedules the pending deliveries (due times, leases, turns) and
/// `deliveries` holds what each carries, under the same keys: a delivery is
/// in both or in neither. A destination's lane in `fair` is failing iff it
/// has a streak in `streaks`.
#[derive(Debug, Default)]
struct Queue {
    fair: FairQueue,
    /// Pending deliveries; a finished one is removed.
    deliveries: HashMap<DeliveryKey, Pending>,
    /// How many of `deliveries` each tenant has (no entry for none).
    pending: HashMap<TenantId, usize>,
    /// Each destination's failure streak.
    streaks: HashMap<(TenantId, DestinationId), FailureStreak>,
    /// Each destination's attempts, by id.
    attempts: HashMap<(TenantId, DestinationId), BTreeMap<AttemptId, AttemptRecord>>,
    /// The attempts of each event.
    attempts_by_event: HashMap<(TenantId, EventId), BTreeSet<(DestinationId, AttemptId)>>,
    /// Every attempt, oldest first: the purge's order.
    attempts_by_age: BTreeSet<(Timestamp, TenantId, DestinationId, AttemptId)>,
    /// The destinations each event has a pending delivery to.
    pending_by_event: HashMap<(TenantId, EventId), BTreeSet<DestinationId>>,
    /// The destinations a disable dropped a pending delivery of each event
    /// for.
    dropped: HashMap<(TenantId, EventId), BTreeSet<DestinationId>>,
}

#[derive(Debug)]
struct Pending {
    event: Arc<Event>,
    attempt: u32,
    due: Timestamp,
    /// Queued by a resend or a recover.
    manual: bool,
    /// The last lease's token and expiry, until the delivery is released,
    /// retried or claimed again: an expired lease is held until then.
    lease: Option<(LeaseToken, Timestamp)>,
}

fn delivery(tenant: &TenantId, destination_id: DestinationId, event_id: EventId) -> DeliveryKey {
    DeliveryKey {
        tenant: tenant.clone(),
        event_id,
        destination_id,
    }
}

impl Queue {
    fn push(&mut self, key: DeliveryKey, event: &Arc<Event>) {
        self.push_at(key, event, event.created_at, false);
    }

    fn push_at(&mut self, key: DeliveryKey, event: &Arc<Event>, due: Timestamp, manual: bool) {
        if self
            .fair
            .push(&key.tenant, key.destination_id, key.event_id, due)
        {
            self.pending_by_event
                .entry((key.tenant.clone(), key.event_id))
                .or_default()
                .insert(key.destination_id);
            *self.pending.entry(key.tenant.clone()).or_default() += 1;
            self.deliveries.insert(
                key,
                Pending {
                    event: Arc::clone(event),
                    attempt: 1,
                    due,
                    manual,
                    lease: None,
                },
            );
        }
    }

    /// Removes the delivery from `deliveries` and its event's index (not
    /// from `fair`).
    /// Removes a delivery's entry from every index, and counts it out of
    /// its tenant's pending deliveries.
    fn unpend(&mut self, key: &DeliveryKey) {
        if self.deliveries.remove(key).is_none() {
            return;
        }
        if let Some(n) = self.pending.get_mut(&key.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.pending.remove(&key.tenant);
            }
        }
        let by_event = (key.tenant.clone(), key.event_id);
        if let Some(ids) = self.pending_by_event.get_mut(&by_event) {
            ids.remove(&key.destination_id);
            if ids.is_empty() {
                self.pending_by_event.remove(&by_event);
            }
        }
    }

    fn finish(&mut self, key: &DeliveryKey) {
        self.fair
            .finish(&key.tenant, key.destination_id, key.event_id);
        self.unpend(key);
    }

    /// Finishes a delivery its destination's disable drops, and marks it.
    fn drop_delivery(&mut self, key: &DeliveryKey) {
        self.finish(key);
        self.mark_dropped(key);
    }

    fn mark_dropped(&mut self, key: &DeliveryKey) {
        self.dropped
            .entry((key.tenant.clone(), key.event_id))
            .or_default()
            .insert(key.destination_id);
    }

    fn record(&mut self, tenant: &TenantId, attempt: AttemptRecord) {
        let (dest, id) = (attempt.destination_id, attempt.attempt_id);
        self.attempts_by_event
            .entry((tenant.clone(), attempt.event_id))
            .or_default()
            .insert((dest, id));
        self.attempts_by_age
            .insert((attempt.started_at, tenant.clone(), dest, id));
        self.attempts
            .entry((tenant.clone(), dest))
            .or_default()
            .insert(id, attempt);
    }

    /// Deletes one attempt record from every index.
    fn unrecord(&mut self, tenant: &TenantId, dest: DestinationId, id: AttemptId) {
        let key = (tenant.clone(), dest);
        let Some(attempts) = self.attempts.get_mut(&key) else {
            return;
        };
        let Some(attempt) = attempts.remove(&id) else {
            return;
        };
        if attempts.is_empty() {
            self.attempts.remove(&key);
        }
        self.attempts_by_age
            .remove(&(attempt.started_at, tenant.clone(), dest, id));
        let by_event = (tenant.clone(), attempt.event_id);
        if let Some(ids) = self.attempts_by_event.get_mut(&by_event) {
            ids.remove(&(dest, id));
            if ids.is_empty() {
                self.attempts_by_event.remove(&by_event);
            }
        }
    }

    /// The tenant's pending deliveries.
    fn pending_of(&self, tenant: &TenantId) -> usize {
        self.pending.get(tenant).copied().unwrap_or(0)
    }

    fn forget(&mut self, tenant: &TenantId, id: DestinationId) {
        for event in self.fair.remove_lane(tenant, id) {
            self.unpend(&delivery(tenant, id, event));
        }
        let key = (tenant.clone(), id);
        self.streaks.remove(&key);
        let ids: Vec<AttemptId> = self
            .attempts
            .get(&key)
            .map(|a| a.keys().copied().collect())
            .unwrap_or_default();
        for attempt in ids {
            self.unrecord(tenant, id, attempt);
        }
    }

    /// Drops the destination's pending deliveries that are not under a
    /// lease: what disabling it does (the leased ones are in flight, and a
    /// lease that expired counts until a claim takes the delivery).
    fn drop_unleased(&mut self, tenant: &TenantId, id: DestinationId) {
        for event in self.fair.remove_unleased(tenant, id) {
            let key = delivery(tenant, id, event);
            // The queue forgets a lapsed lease at the first claim after it;
            // its holder still holds it: put it back, leased as it was.
            let Some(pending) = self.deliveries.get(&key) else {
                continue;
            };
            match pending.lease {
                Some((_, until)) => {
                    self.fair.push(tenant, id, event, pending.due);
                    self.fair.renew(tenant, id, event, until);
                }
                None => {
                    self.unpend(&key);
                    self.mark_dropped(&key);
                }
            }
        }
    }

    /// Stores the destination's streak (`None` clears it) and moves its lane
    /// to the slow lane or out of it to match.
    fn set_streak(&mut self, tenant: &TenantId, id: DestinationId, streak: Option<FailureStreak>) {
        let key = (tenant.clone(), id);
        match streak {
            Some(streak) => self.streaks.insert(key, streak),
            None => self.streaks.remove(&key),
        };
        self.fair.set_failing(tenant, id, streak.is_some());
    }

    fn held(&mut self, lease: &Lease) -> Option<&mut Pending> {
        self.deliveries
            .get_mut(&lease.delivery)
            .filter(|p| p.lease.is_some_and(|(token, _)| token == lease.token))
    }
}

impl MemoryRepo {
    /// An empty repo.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// This repo enforcing `quotas` per tenant.
    #[must_use]
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// The number of destinations, over all tenants.
    #[must_use]
    pub fn len(&self) -> usize {
        self.read().tenants.values().map(BTreeMap::len).sum()
    }

    /// Whether there are no destinations at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A poisoned lock only means another thread panicked elsewhere while
    // holding it; every write below completes before anything can panic.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DestinationRepo for MemoryRepo {
    type Error = Infallible;

    async fn insert(
        &self,
        tenant: &TenantId,
        record: &DestinationRecord,
    ) -> Result<InsertOutcome, Infallible> {
        let mut inner = self.write();
        let Inner {
            tenants,
            by_digest,
            by_filter,
            ..
        } = &mut *inner;
        // Checked before the tenant's map is made: a refused tenant leaves
        // no empty one behind.
        if let Some(records) = tenants.get(tenant) {
            if records.contains_key(&record.destination_id) {
                return Ok(InsertOutcome::Duplicate);
            }
            if !self.quotas.allows_destination(records.len()) {
                return Ok(InsertOutcome::QuotaExceeded);
            }
        } else if !self.quotas.allows_destination(0) {
            return Ok(InsertOutcome::QuotaExceeded);
        }
        let records = tenants.entry(tenant.clone()).or_default();
        match records.entry(record.destination_id) {
            Entry::Occupied(_) => Ok(InsertOutcome::Duplicate),
            Entry::Vacant(slot) => {
                slot.insert(record.clone());
                index(by_digest, tenant, record);
                index_filter(by_filter, tenant, record);
                Ok(InsertOutcome::Inserted)
            }
        }
    }

    async fn get(
        &self,
        tenant: &TenantId,
        id: DestinationId,
    ) -> Result<Option<DestinationRecord>, Infallible> {
        Ok(self
            .read()
            .tenants
            .get(tenant)
            .and_then(|records| records.get(&id))
            .cloned())
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<DestinationRecord>, Infallible> {
        Ok(self
            .read()
            .tenants
            .get(tenant)
            .map(|records| records.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn find_by_digest(
        &self,
        digest: &SecretDigest,
    ) -> Result<Vec<(TenantId, DestinationRecord)>, Infallible> {
        let inner = self.read();
        let Some(hits) = inner.by_digest.get(digest) else {
            return Ok(Vec::new());
        };
        Ok(hits
            .iter()
            .filter_map(|(tenant, id)| {
                let record = inner.tenants.get(tenant)?.get(id)?;
                // The index is kept with the records; checking the digest
                // again keeps it honest.
                digests(record)
                    .any(|d| d == *digest)
                    .then(|| (tenant.clone(), record.clone()))
            })
            .collect())
    }

    async fn list_page(
        &self,
        tenant: &TenantId,
        after: Option<DestinationId>,
        limit: usize,
    ) -> Result<Vec<DestinationRecord>, Infallible> {
        let inner = self.read();
        let Some(records) = inner.tenants.get(tenant) else {
            return Ok(Vec::new());
        };
        let range = match after {
            Some(after) => records.range((Bound::Excluded(after), Bound::Unbounded)),
            None => records.range(..),
        };
        Ok(range.take(limit).map(|(_, r)| r.clone()).collect())
    }

    async fn replace(
        &self,
        tenant: &TenantId,
        expected_version: u64,
        record: &DestinationRecord,
    ) -> Result<ReplaceOutcome, Infallible> {
        let mut inner = self.write();
        let Inner {
            tenants,
            by_digest,
            by_filter,
            outbox,
            ..
        } = &mut *inner;
        let Some(stored) = tenants
            .get_mut(tenant)
            .and_then(|records| records.get_mut(&record.destination_id))
        else {
            return Ok(ReplaceOutcome::NotFound);
        };
        if stored.version != expected_version {
            return Ok(ReplaceOutcome::VersionMismatch);
        }
        if record.enabled && !stored.enabled {
            // Enabled again: it comes back healthy.
            outbox.set_streak(tenant, record.destination_id, None);
        }
        unindex(by_digest, tenant, stored);
        unindex_filter(by_filter, tenant, stored);
        *stored = record.clone();
        index(by_digest, tenant, stored);
        index_filter(by_filter, tenant, stored);
        if !record.enabled {
            outbox.drop_unleased(tenant, record.destination_id);
        }
        Ok(ReplaceOutcome::Replaced)
    }

    async fn remove(
        &self,
        tenant: &TenantId,
        id: DestinationId,
    ) -> Result<RemoveOutcome, Infallible> {
        let mut inner = self.write();
        let Inner {
            tenants,
            by_digest,
            by_filter,
            outbox,
            ..
        } = &mut *inner;
        let Some(records) = tenants.get_mut(tenant) else {
            return Ok(RemoveOutcome::NotFound);
        };
        let Some(removed) = records.remove(&id) else {
            return Ok(RemoveOutcome::NotFound);
        };
        if records.is_empty() {
            tenants.remove(tenant);
        }
        unindex(by_digest, tenant, &removed);
        unindex_filter(by_filter, tenant, &removed);
        outbox.forget(tenant, id);
        Ok(RemoveOutcome::Removed)
    }
}

impl Outbox for MemoryRepo {
    async fn enqueue(
        &self,
        tenant: &TenantId,
        event: &Event,
        target: Target,
    ) -> Result<EnqueueOutcome, Infallible> {
        let mut inner = self.write();
        let Inner {
            tenants,
            by_filter,
            outbox,
            published,
            log,
            ..
        } = &mut *inner;
        let records = tenants.get(tenant);
        let ids: Vec<DestinationId> = match target {
            Target::AllEnabled => {
                // The destinations whose filter matches, found by key; then
                // only those are read, to keep the enabled ones.
                let mut matching = BTreeSet::new();
                if let Some(keys) = by_filter.get(tenant) {
                    for key in FilterTypes::keys_matching(&event.event_type) {
                        if let Some(ids) = keys.get(key.as_str()) {
                            matching.extend(ids.iter().copied());
                        }
                    }
                }
                matching
                    .into_iter()
                    .filter(|id| {
                        records
                            .and_then(|r| r.get(id))
                            .is_some_and(|r| r.enabled && r.filter_types.matches(&event.event_type))
                    })
                    .collect()
            }
            Target::Only(id) => match records.and_then(|r| r.get(&id)) {
                None => return Ok(EnqueueOutcome::NotFound),
                Some(r) if !r.enabled => return Ok(EnqueueOutcome::Disabled),
                Some(_) => vec![id],
            },
        };
        let known = published.entry(tenant.clone()).or_default();
        if let Some((existing, _)) = known.ids.get(&event.event_id) {
            return Ok(EnqueueOutcome::Exists(existing.clone()));
        }
        if !self
            .quotas
            .allows_deliveries(outbox.pending_of(tenant), ids.len())
        {
            return Ok(EnqueueOutcome::QueueFull);
        }
        let retention = u64::try_from(EVENT_ID_RETENTION.as_millis()).unwrap_or(u64::MAX);
        known.forget_expired(event.created_at.unix_millis().saturating_sub(retention));
        let shared = Arc::new(event.clone());
        known.ids.insert(
            event.event_id,
            (ExistingEvent::of(event, ids.len()), Arc::downgrade(&shared)),
        );
        known
            .by_time
            .insert((event.created_at.unix_millis(), event.event_id));
        log.retain(tenant, &shared);
        for &destination_id in &ids {
            outbox.push(delivery(tenant, destination_id, event.event_id), &shared);
        }
        Ok(EnqueueOutcome::Enqueued {
            deliveries: ids.len(),
        })
    }

    async fn claim(
        &self,
        now: Timestamp,
        limits: ClaimLimits,
        lease: LeaseRequest,
    ) -> Result<Vec<Claimed>, Infallible> {
        let mut inner = self.write();
        let Inner {
            tenants, outbox, ..
        } = &mut *inner;
        let expires_at = now.saturating_add(lease.duration);
        let mut out = Vec::new();
        let mut failing_left = limits.failing_limit;
        // A delivery of a disabled destination whose lease ran out (its
        // holder vanished after the disable) is finished, not offered; the
        // queue is asked again for the places it took.
        loop {
            let ask = ClaimLimits {
                limit: limits.limit.saturating_sub(out.len()),
                failing_limit: failing_left,
                ..limits
            };
            if ask.limit == 0 {
                break;
            }
            let keys = outbox.fair.claim(now, &ask, expires_at);
            if keys.is_empty() {
                break;
            }
            let mut dropped = false;
            for (tenant, destination_id, event_id) in keys {
                let key = delivery(&tenant, destination_id, event_id);
                let stored = tenants.get(&tenant).and_then(|r| r.get(&destination_id));
                let record = stored.filter(|r| r.enabled);
                let (Some(record), Some(pending)) = (record, outbox.deliveries.get_mut(&key))
                else {
                    if stored.is_some() {
                        outbox.drop_delivery(&key);
                    } else {
                        outbox.finish(&key);
                    }
                    dropped = true;
                    continue;
                };
                pending.lease = Some((lease.token, expires_at));
                let failing = outbox.streaks.contains_key(&(tenant, destination_id));
                if failing {
                    failing_left = failing_left.saturating_sub(1);
                }
                out.push(Claimed {
                    lease: Lease {
                        token: lease.token,
                        delivery: key,
                        expires_at,
                    },
                    event: Event::clone(&pending.event),
                    attempt: pending.attempt,
                    destination: record.clone(),
                    failing,
                });
            }
            if !dropped {
                break;
            }
        }
        Ok(out)
    }

    async fn renew(&self, lease: &Lease, until: Timestamp) -> Result<bool, Infallible> {
        let mut inner = self.write();
        let outbox = &mut inner.outbox;
        let Some(pending) = outbox.held(lease) else {
            return Ok(false);
        };
        pending.lease = Some((lease.token, until));
        let key = &lease.delivery;
        Ok(outbox
            .fair
            .renew(&key.tenant, key.destination_id, key.event_id, until))
    }

    async fn release(&self, lease: &Lease) -> Result<bool, Infallible> {
        let mut inner = self.write();
        let Inner {
            tenants, outbox, ..
        } = &mut *inner;
        let Some(pending) = outbox.held(lease) else {
            return Ok(false);
        };
        pending.lease = None;
        let key = &lease.delivery;
        let enabled = tenants
            .get(&key.tenant)
            .and_then(|r| r.get(&key.destination_id))
            .is_some_and(|r| r.enabled);
        if enabled {
            outbox
                .fair
                .release(&key.tenant, key.destination_id, key.event_id);
        } else {
            outbox.drop_delivery(key);
        }
        Ok(true)
    }

    async fn complete(
        &self,
        lease: &Lease,
        mut report: AttemptReport,
    ) -> Result<CompleteOutcome, Infallible> {
        let mut inner = self.write();
        let Inner {
            tenants, outbox, ..
        } = &mut *inner;
        let Some(pending) = outbox.held(lease) else {
            return Ok(CompleteOutcome::LeaseLost);
        };
        report.attempt.manual = pending.manual;
        let key = &lease.delivery;
        let dest = (key.tenant.clone(), key.destination_id);
        let enabled = tenants
            .get(&key.tenant)
            .and_then(|r| r.get(&key.destination_id))
            .is_some_and(|r| r.enabled);
        let settled = settle(&report, outbox.streaks.get(&dest).copied(), enabled);
        match settled.delivery {
            DeliveryAfter::Finished => outbox.finish(key),
            DeliveryAfter::RetryAt(at) => {
                if let Some(pending) = outbox.deliveries.get_mut(key) {
                    pending.attempt = pending.attempt.saturating_add(1);
                    pending.due = at;
                    pending.lease = None;
                }
                outbox
                    .fair
                    .retry(&key.tenant, key.destination_id, key.event_id, at);
            }
        }
        outbox.set_streak(&key.tenant, key.destination_id, settled.streak);
        outbox.record(&key.tenant, settled.attempt);
        let mut disabled = None;
        if let Some(reason) = settled.disable {
            let record = tenants
                .get_mut(&key.tenant)
                .and_then(|r| r.get_mut(&key.destination_id));
            if let Some(record) = record
                && let Some(next) = record.disabled(reason, report.attempt.started_at)
            {
                // Digests are unchanged: the index needs no update.
                *record = next;
                outbox.drop_unleased(&key.tenant, key.destination_id);
                disabled = Some(reason);
            }
        }
        Ok(CompleteOutcome::Recorded {
            disabled,
            retry_at: settled.delivery.retry_at(),
        })
    }

    async fn list_attempts(
        &self,
        tenant: &TenantId,
        destination: DestinationId,
        before: Option<AttemptId>,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, Infallible> {
        let inner = self.read();
        let Some(attempts) = inner.outbox.attempts.get(&(tenant.clone(), destination)) else {
            return Ok(Vec::new());
        };
        let range = match before {
            Some(before) => attempts.range(..before),
            None => attempts.range(..),
        };
        Ok(range.rev().take(limit).map(|(_, a)| a.clone()).collect())
    }

    /// Counted by the scheduler as it goes: no walk over the queue.
    async fn queue_depth(&self) -> Result<QueueDepth, Infallible> {
        let inner = self.read();
        let fair = &inner.outbox.fair;
        let leased = fair.leased();
        let waiting = fair.len().saturating_sub(leased);
        Ok(QueueDepth {
            waiting: u64::try_from(waiting).unwrap_or(u64::MAX),
            leased: u64::try_from(leased).unwrap_or(u64::MAX),
        })
    }
}

impl EventLog for MemoryRepo {
    async fn list_events(
        &self,
        tenant: &TenantId,
        event_type: Option<&EventType>,
        cursor: Option<EventCursor>,
        limit: usize,
    ) -> Result<Vec<Event>, Infallible> {
        let inner = self.read();
        let Some(events) = inner.log.tenants.get(tenant) else {
            return Ok(Vec::new());
        };
        let keys = match event_type {
            Some(t) => match events.by_type.get(t) {
                Some(keys) => keys,
                None => return Ok(Vec::new()),
            },
            None => &events.by_time,
        };
        let range = match cursor {
            Some(c) => keys.range(..(c.created_at, c.event_id)),
            None => keys.range(..),
        };
        Ok(range
            .rev()
            .take(limit)
            .filter_map(|(_, id)| events.by_id.get(id).map(|e| Event::clone(e)))
            .collect())
    }

    async fn get_event(
        &self,
        tenant: &TenantId,
        event_id: EventId,
    ) -> Result<Option<EventDetail>, Infallible> {
        let inner = self.read();
        let Some(event) = inner.log.get(tenant, event_id) else {
            return Ok(None);
        };
        let queue = &inner.outbox;
        let by_event = (tenant.clone(), event_id);
        let mut facts = EventFacts::default();
        for &dest in queue.pending_by_event.get(&by_event).into_iter().flatten() {
            if let Some(p) = queue.deliveries.get(&delivery(tenant, dest, event_id)) {
                facts
                    .pending
                    .push((dest, p.due, p.lease.is_some(), p.manual));
            }
        }
        for &(dest, id) in queue.attempts_by_event.get(&by_event).into_iter().flatten() {
            if let Some(a) = queue
                .attempts
                .get(&(tenant.clone(), dest))
                .and_then(|a| a.get(&id))
            {
                facts.attempts.push((dest, a.started_at, a.outcome));
            }
        }
        let records = inner.tenants.get(tenant);
        // A removed destination's marks stay until the event is purged:
        // only destinations that still exist are told.
        facts.dropped = queue
            .dropped
            .get(&by_event)
            .into_iter()
            .flatten()
            .copied()
            .filter(|d| records.is_some_and(|r| r.contains_key(d)))
            .collect();
        let named = facts
            .pending
            .iter()
            .map(|p| p.0)
            .chain(facts.attempts.iter().map(|a| a.0))
            .chain(facts.dropped.iter().copied());
        facts.disabled = named
            .filter(|d| records.and_then(|r| r.get(d)).is_some_and(|r| !r.enabled))
            .collect();
        Ok(Some(EventDetail {
            event: Event::clone(event),
            deliveries: facts.derive(),
        }))
    }

    async fn resend(
        &self,
        tenant: &TenantId,
        event_id: EventId,
        destination_id: DestinationId,
        now: Timestamp,
    ) -> Result<ResendOutcome, Infallible> {
        let mut inner = self.write();
        let Inner {
            tenants,
            outbox,
            log,
            ..
        } = &mut *inner;
        let Some(event) = log.get(tenant, event_id) else {
            return Ok(ResendOutcome::EventNotFound);
        };
        match tenants.get(tenant).and_then(|r| r.get(&destination_id)) {
            None => return Ok(ResendOutcome::DestinationNotFound),
            Some(r) if !r.enabled => return Ok(ResendOutcome::Disabled),
            Some(_) => {}
        }
        let key = delivery(tenant, destination_id, event_id);
        if let Some(pending) = outbox.deliveries.get_mut(&key) {
            pending.manual = true;
            if pending.lease.is_none() {
                pending.due = now;
                outbox.fair.finish(tenant, destination_id, event_id);
                outbox.fair.push(tenant, destination_id, event_id, now);
            }
            return Ok(ResendOutcome::AlreadyPending);
        }
        if !self.quotas.allows_deliveries(outbox.pending_of(tenant), 1) {
            return Ok(ResendOutcome::QueueFull);
        }
        let event = Arc::clone(event);
        outbox.push_at(key, &event, now, true);
        Ok(ResendOutcome::Queued)
    }

    async fn recover(
        &self,
        tenant: &TenantId,
        destination_id: DestinationId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<RecoverOutcome, Infallible> {
        let mut inner = self.write();
        let Inner {
            tenants,
            outbox,
            log,
            ..
        } = &mut *inner;
        let record = match tenants.get(tenant).and_then(|r| r.get(&destination_id)) {
            None => return Ok(RecoverOutcome::NotFound),
            Some(r) if !r.enabled => return Ok(RecoverOutcome::Disabled),
            Some(r) => r,
        };
        let Some(events) = log.tenants.get(tenant) else {
            return Ok(RecoverOutcome::Queued(0));
        };
        let from = since.max(record.created_at);
        let dest_key = (tenant.clone(), destination_id);
        let mut queued = 0;
        for (_, id) in events.by_time.range((from, EventId::MIN)..) {
            if queued == RECOVER_MAX_EVENTS {
                break;
            }
            let Some(event) = events.by_id.get(id) else {
                continue;
            };
            let key = delivery(tenant, destination_id, *id);
            if !record.filter_types.matches(&event.event_type)
                || outbox.deliveries.contains_key(&key)
            {
                continue;
            }
            let succeeded = outbox
                .attempts_by_event
                .get(&(tenant.clone(), *id))
                .into_iter()
                .flatten()
                .filter(|(d, _)| *d == destination_id)
                .filter_map(|(_, a)| outbox.attempts.get(&dest_key)?.get(a))
                .any(|a| a.outcome == crate::delivery::AttemptOutcome::Succeeded);
            if succeeded {
                continue;
            }
            if !self.quotas.allows_deliveries(outbox.pending_of(tenant), 1) {
                return Ok(RecoverOutcome::QueueFull(queued));
            }
            outbox.push_at(key, event, now, true);
            queued += 1;
        }
        Ok(RecoverOutcome::Queued(queued))
    }

    async fn purge(&self, cutoffs: PurgeCutoffs, batch: usize) -> Result<Purged, Infallible> {
        let mut inner = self.write();
        let Inner { outbox, log, .. } = &mut *inner;
        let old: Vec<(Timestamp, TenantId, DestinationId, AttemptId)> = outbox
            .attempts_by_age
            .iter()
            .take_while(|a| a.0 < cutoffs.attempts_before)
            .take(batch)
            .cloned()
            .collect();
        let mut purged = Purged::default();
        for (_, tenant, dest, id) in old {
            outbox.unrecord(&tenant, dest, id);
            purged.attempts += 1;
        }
        let done: Vec<(TenantId, EventId)> = log
            .by_age
            .iter()
            .take_while(|e| e.0 < cutoffs.events_before)
            .filter(|(_, tenant, id)| !outbox.pending_by_event.contains_key(&(tenant.clone(), *id)))
            .take(batch)
            .map(|(_, tenant, id)| (tenant.clone(), *id))
            .collect();
        for (tenant, id) in done {
            log.forget(&tenant, id);
            outbox.dropped.remove(&(tenant, id));
            purged.events += 1;
        }
        Ok(purged)
    }
}

/// Every digest a record holds: the current secret's, then the previous ones'.
fn digests(record: &DestinationRecord) -> impl Iterator<Item = SecretDigest> + '_ {
    core::iter::once(record.secret_digest)
        .chain(record.previous_secrets.iter().map(|p| p.secret_digest))
}

fn index(
    by_digest: &mut HashMap<SecretDigest, Vec<(TenantId, DestinationId)>>,
    tenant: &TenantId,
    record: &DestinationRecord,
) {
    for digest in digests(record) {
        let hits = by_digest.entry(digest).or_default();
        let key = (tenant.clone(), record.destination_id);
        if !hits.contains(&key) {
            hits.push(key);
        }
    }
}

fn index_filter(
    by_filter: &mut HashMap<TenantId, HashMap<Box<str>, BTreeSet<DestinationId>>>,
    tenant: &TenantId,
    record: &DestinationRecord,
) {
    let keys = by_filter.entry(tenant.clone()).or_default();
    for key in record.filter_types.index_keys() {
        keys.entry(key.into())
            .or_default()
            .insert(record.destination_id);
    }
}

fn unindex_filter(
    by_filter: &mut HashMap<TenantId, HashMap<Box<str>, BTreeSet<DestinationId>>>,
    tenant: &TenantId,
    record: &DestinationRecord,
) {
    let Some(keys) = by_filter.get_mut(tenant) else {
        return;
    };
    for key in record.filter_types.index_keys() {
        if let Some(ids) = keys.get_mut(key) {
            ids.remove(&record.destination_id);
            if ids.is_empty() {
                keys.remove(key);
            }
        }
    }
    if keys.is_empty() {
        by_filter.remove(tenant);
    }
}

fn unindex(
    by_digest: &mut HashMap<SecretDigest, Vec<(TenantId, DestinationId)>>,
    tenant: &TenantId,
    record: &DestinationRecord,
) {
    for digest in digests(record) {
        if let Some(hits) = by_digest.get_mut(&digest) {
            hits.retain(|(t, id)| !(t == tenant && *id == record.destination_id));
            if hits.is_empty() {
                by_digest.remove(&digest);
            }
        }
    }
}
