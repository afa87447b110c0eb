//! The conformance kit for [`Outbox`] implementations: one async function
//! per property of the trait's contract, and [`outbox_run_all`].
//!
//! Claims take deliveries of every tenant, so unlike the repo functions these
//! must not run at the same time as each other or as another worker on the
//! same store: run them one at a time (as [`outbox_run_all`] does). Each uses
//! fresh tenants, and gives back (releases) any delivery it claims that is not
//! its own, so a store that already holds data is fine. The fairness
//! properties ([`fairness_run_all`]) first lease, for a day, every delivery
//! due within the hour that is not theirs, so that their claims see only
//! their own, and give them back at the end.
//!
//! ```
//! # #[cfg(feature = "memory")] {
//! use prets_destinations::{conformance, MemoryRepo};
//!
//! pollster::block_on(conformance::outbox::outbox_run_all(&MemoryRepo::new()));
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::Duration;

use rand_core::Rng as _;

use super::{Kit, block_on, get, insert, remove, replace};
use crate::delivery::{
    AttemptId, AttemptMeta, AttemptRecord, AttemptReport, ClaimLimits, Claimed, Classification,
    CompleteOutcome, DeliveryKey, DisablePolicy, DisabledReason, EVENT_ID_RETENTION,
    EnqueueOutcome, Event, EventLog, EventType, ExistingEvent, Failure, FailureCause, FilterTypes,
    LeaseRequest, LeaseToken, NextStep, Outbox, Payload, PurgeCutoffs, QueueDepth, RetrySchedule,
    Target,
};
use crate::id::DestinationId;
use crate::ops::{PublishOutcome, plan_finish, publish};
use crate::record::DestinationRecord;
use crate::repo::{InsertOutcome, RemoveOutcome, ReplaceOutcome};
use crate::tenant::TenantId;
use crate::time::Timestamp;
use crate::wire::PublishRequest;

const LEASE: Duration = Duration::from_secs(30);

pub(super) fn at(t: Timestamp, secs: u64) -> Timestamp {
    t.checked_add(Duration::from_secs(secs))
        .expect("a time before year 9999")
}

impl Kit {
    pub(super) fn lease(&mut self) -> LeaseRequest {
        LeaseRequest {
            token: LeaseToken::generate(&mut self.rng),
            duration: LEASE,
        }
    }

    pub(super) fn event(&mut self) -> Event {
        self.event_at(self.now)
    }

    pub(super) fn event_at(&mut self, created_at: Timestamp) -> Event {
        let n = self.rng.next_u64();
        Event::new(
            "conformance.event",
            format!("{{\"n\":\"{n:016x}\"}}"),
            created_at,
            &mut self.rng,
        )
        .expect("a valid event")
    }

    /// A report of one attempt of `claimed` at `at`, ending in `next`.
    pub(super) fn report(
        &mut self,
        claimed: &Claimed,
        classification: Classification,
        started_at: Timestamp,
        next: NextStep,
        disable: DisablePolicy,
    ) -> AttemptReport {
        let meta = AttemptMeta {
            attempt_id: AttemptId::generate(started_at, &mut self.rng),
            event_id: claimed.event.event_id,
            destination_id: claimed.lease.delivery.destination_id,
            attempt: claimed.attempt,
            started_at,
            duration_ms: 7,
        };
        AttemptReport {
            attempt: AttemptRecord::new(meta, &classification, &next),
            next,
            disable,
        }
    }

    /// Inserts `n` fresh enabled destinations for `tenant`.
    pub(super) async fn destinations<O: Outbox>(
        &mut self,
        outbox: &O,
        tenant: &TenantId,
        n: usize,
    ) -> Vec<DestinationRecord> {
        let mut out = Vec::new();
        for _ in 0..n {
            let plan = self.plan(tenant, None);
            assert_eq!(
                insert(outbox, tenant, &plan.record).await,
                InsertOutcome::Inserted
            );
            out.push(plan.record);
        }
        out
    }
}

pub(super) fn failed() -> Classification {
    Classification::Failed(Failure {
        cause: FailureCause::Status(500),
        retry_after: None,
    })
}

pub(super) const DELIVERED: Classification = Classification::Delivered { status: 200 };

/// Awaits every future of `futures` concurrently (polled in turn on the
/// caller's task), giving their outputs in order.
async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    core::future::poll_fn(|cx| {
        let mut waiting = false;
        for (future, out) in pending.iter_mut().zip(done.iter_mut()) {
            if out.is_none() {
                match future.as_mut().poll(cx) {
                    core::task::Poll::Ready(v) => *out = Some(v),
                    core::task::Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            core::task::Poll::Pending
        } else {
            core::task::Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

pub(super) async fn enqueue<O: Outbox>(
    outbox: &O,
    tenant: &TenantId,
    event: &Event,
    target: Target,
) -> EnqueueOutcome {
    outbox
        .enqueue(tenant, event, target)
        .await
        .expect("enqueue failed")
}

/// Claims everything due at `now` until nothing more comes; keeps the
/// deliveries of `tenants`, releases the others (another user's).
pub(super) async fn claim_own<O: Outbox>(
    outbox: &O,
    kit: &mut Kit,
    now: Timestamp,
    tenants: &[&TenantId],
) -> Vec<Claimed> {
    let mut own = Vec::new();
    let mut foreign = Vec::new();
    let mut seen = BTreeSet::new();
    loop {
        let batch = outbox
            .claim(now, 100.into(), kit.lease())
            .await
            .expect("claim failed");
        if batch.is_empty() {
            break;
        }
        for c in batch {
            assert!(
                c.lease.expires_at > now,
                "claim: a lease that is already over"
            );
            assert!(
                seen.insert(c.lease.delivery.clone()),
                "claim: offered a delivery under a live lease"
            );
            if tenants.contains(&&c.lease.delivery.tenant) {
                own.push(c);
            } else {
                foreign.push(c);
            }
        }
    }
    for c in foreign {
        outbox.release(&c.lease).await.expect("release failed");
    }
    own
}

pub(super) async fn complete<O: Outbox>(
    outbox: &O,
    claimed: &Claimed,
    report: AttemptReport,
) -> CompleteOutcome {
    outbox
        .complete(&claimed.lease, report)
        .await
        .expect("complete failed")
}

pub(super) async fn attempts<O: Outbox>(
    outbox: &O,
    tenant: &TenantId,
    id: DestinationId,
    before: Option<AttemptId>,
    limit: usize,
) -> Vec<AttemptRecord> {
    outbox
        .list_attempts(tenant, id, before, limit)
        .await
        .expect("list_attempts failed")
}

/// Many claims racing, from OS threads, over one tenant's deliveries: every
/// delivery is handed out exactly once, each with the lease of the claim that
/// got it.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn lease_exclusivity_under_concurrent_claims<O: Outbox>(outbox: &O, threads: usize) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let dests = kit.destinations(outbox, &tenant, 3).await;
    let mut expected = BTreeSet::new();
    for _ in 0..8 {
        let event = kit.event();
        assert_eq!(
            enqueue(outbox, &tenant, &event, Target::AllEnabled).await,
            EnqueueOutcome::Enqueued { deliveries: 3 },
            "enqueue: one delivery per enabled destination"
        );
        for d in &dests {
            expected.insert((event.event_id, d.destination_id));
        }
    }
    let now = at(kit.now, 1);
    let tokens: Vec<LeaseToken> = (0..threads.max(2))
        .map(|_| LeaseToken::generate(&mut kit.rng))
        .collect();
    let results: Vec<Vec<Claimed>> = thread::scope(|s| {
        let handles: Vec<_> = tokens
            .iter()
            .map(|&token| {
                s.spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        let lease = LeaseRequest {
                            token,
                            duration: LEASE,
                        };
                        let batch =
                            block_on(outbox.claim(now, 2.into(), lease)).expect("claim failed");
                        let again = batch.iter().any(|c: &Claimed| {
                            got.iter()
                                .any(|g: &Claimed| g.lease.delivery == c.lease.delivery)
                        });
                        let done = batch.is_empty();
                        got.extend(batch);
                        if done || again {
                            return got;
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a claiming thread panicked"))
            .collect()
    });
    let mut seen = BTreeSet::new();
    for (token, batch) in tokens.iter().zip(&results) {
        for c in batch {
            assert_eq!(c.lease.token, *token, "claim: a lease with another token");
            if c.lease.delivery.tenant != tenant {
                outbox.release(&c.lease).await.expect("release failed");
                continue;
            }
            assert_eq!(c.attempt, 1, "claim: a fresh delivery is attempt 1");
            let key = (c.event.event_id, c.lease.delivery.destination_id);
            assert!(
                seen.insert(key),
                "lease exclusivity: two concurrent claims returned the same delivery"
            );
        }
    }
    assert_eq!(
        seen, expected,
        "lease exclusivity: a delivery was not claimed"
    );
}

/// A lease that expires is offered again; renew keeps a lease; release makes
/// the delivery due at once; a lost lease can neither renew, release nor
/// complete (`LeaseLost`, nothing written).
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn reoffer_after_lease_expiry<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let dest = kit.destinations(outbox, &tenant, 1).await.remove(0);
    let event = kit.event();
    assert!(matches!(
        enqueue(outbox, &tenant, &event, Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 1.. }
    ));
    let t0 = at(kit.now, 1);
    let first = claim_own(outbox, &mut kit, t0, &[&tenant]).await;
    assert_eq!(first.len(), 1, "claim: the due delivery is offered");
    let first = &first[0];
    assert_eq!(first.event, event, "claim: the event comes back as stored");
    assert_eq!(
        first.lease.expires_at,
        at(t0, 30),
        "claim: lease = now + duration"
    );
    assert!(
        claim_own(outbox, &mut kit, at(t0, 10), &[&tenant])
            .await
            .is_empty(),
        "claim: a delivery under a live lease was offered again"
    );
    assert!(
        outbox
            .renew(&first.lease, at(t0, 60))
            .await
            .expect("renew failed"),
        "renew: a held lease was refused"
    );
    assert!(
        claim_own(outbox, &mut kit, at(t0, 45), &[&tenant])
            .await
            .is_empty(),
        "renew: the renewed lease did not hold"
    );
    let second = claim_own(outbox, &mut kit, at(t0, 61), &[&tenant]).await;
    assert_eq!(second.len(), 1, "claim: an expired lease is offered again");
    let second = &second[0];
    assert_eq!(second.attempt, 1, "an expired lease is no attempt");
    assert!(
        !outbox
            .renew(&first.lease, at(t0, 90))
            .await
            .expect("renew failed"),
        "renew: a lost lease was renewed"
    );
    assert!(
        !outbox.release(&first.lease).await.expect("release failed"),
        "release: a lost lease was released"
    );
    let report = kit.report(
        first,
        DELIVERED,
        at(t0, 62),
        NextStep::Delivered,
        DisablePolicy::default(),
    );
    assert_eq!(
        complete(outbox, first, report).await,
        CompleteOutcome::LeaseLost,
        "complete: a lost lease was honoured"
    );
    assert!(
        attempts(outbox, &tenant, dest.destination_id, None, 10)
            .await
            .is_empty(),
        "complete: LeaseLost wrote an attempt"
    );
    assert!(
        outbox.release(&second.lease).await.expect("release failed"),
        "release: a held lease was refused"
    );
    let third = claim_own(outbox, &mut kit, at(t0, 62), &[&tenant]).await;
    assert_eq!(third.len(), 1, "release: the delivery is not due again");
    let third = &third[0];
    deliver(outbox, &mut kit, third, at(t0, 63)).await;
    assert!(
        claim_own(outbox, &mut kit, at(t0, 3600), &[&tenant])
            .await
            .is_empty(),
        "complete: a delivered delivery is offered again"
    );
    assert_eq!(
        attempts(outbox, &tenant, dest.destination_id, None, 10)
            .await
            .len(),
        1,
        "complete: the attempt is listed once"
    );
}

/// N events × M destinations, each attempt randomly delivered or
/// rescheduled: every delivery ends delivered exactly once, attempts count up
/// by one per reschedule, and every attempt is listed.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn nothing_lost_across_complete_and_reschedule<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let dests = kit.destinations(outbox, &tenant, 3).await;
    let mut pending: BTreeMap<DeliveryKey, u32> = BTreeMap::new();
    for _ in 0..5 {
        let event = kit.event();
        assert!(matches!(
            enqueue(outbox, &tenant, &event, Target::AllEnabled).await,
            EnqueueOutcome::Enqueued { deliveries: 1.. }
        ));
        for d in &dests {
            let key = DeliveryKey {
                tenant: tenant.clone(),
                event_id: event.event_id,
                destination_id: d.destination_id,
            };
            pending.insert(key, 1);
        }
    }
    let mut delivered = BTreeSet::new();
    let mut total_attempts = 0usize;
    let mut now = at(kit.now, 1);
    for _ in 0..200 {
        if pending.is_empty() {
            break;
        }
        for c in claim_own(outbox, &mut kit, now, &[&tenant]).await {
            let key = c.lease.delivery.clone();
            let Some(expected) = pending.get(&key).copied() else {
                panic!("nothing lost: a finished or unknown delivery was claimed");
            };
            assert_eq!(c.attempt, expected, "reschedule: attempt count is off");
            let (class, next) = if kit.rng.next_u32() & 1 == 0 {
                (DELIVERED, NextStep::Delivered)
            } else {
                (failed(), NextStep::RetryAt(at(now, 1)))
            };
            let report = kit.report(&c, class, now, next, DisablePolicy::default());
            assert_eq!(
                complete(outbox, &c, report).await,
                CompleteOutcome::Recorded {
                    disabled: None,
                    retry_at: retry_of(next)
                }
            );
            total_attempts += 1;
            if next == NextStep::Delivered {
                pending.remove(&key);
                assert!(delivered.insert(key), "a delivery finished twice");
            } else {
                pending.insert(key, expected + 1);
            }
        }
        now = at(now, 1);
    }
    assert!(
        pending.is_empty(),
        "nothing lost: deliveries never came back"
    );
    assert_eq!(delivered.len(), 15);
    let mut listed = 0;
    for d in &dests {
        listed += attempts(outbox, &tenant, d.destination_id, None, 10_000)
            .await
            .len();
    }
    assert_eq!(listed, total_attempts, "every attempt is listed");
}

/// Enqueue reaches only the tenant's own destinations (even when another
/// tenant has one with the same id); `Target::Only` never finds another
/// tenant's destination; attempts are listed only for their tenant.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn outbox_tenant_isolation<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let (a, b) = (kit.tenant(), kit.tenant());
    let shared_id = kit.id();
    let plan_a = kit.plan(&a, Some(shared_id));
    let plan_b = kit.plan(&b, Some(shared_id));
    assert_eq!(
        insert(outbox, &a, &plan_a.record).await,
        InsertOutcome::Inserted
    );
    assert_eq!(
        insert(outbox, &b, &plan_b.record).await,
        InsertOutcome::Inserted
    );
    let only_b = kit.destinations(outbox, &b, 1).await.remove(0);
    let event = kit.event();
    assert_eq!(
        enqueue(outbox, &a, &event, Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 1 },
        "enqueue reached another tenant's destination"
    );
    assert_eq!(
        enqueue(
            outbox,
            &a,
            &kit.event(),
            Target::Only(only_b.destination_id)
        )
        .await,
        EnqueueOutcome::NotFound,
        "Target::Only found another tenant's destination"
    );
    let now = at(kit.now, 1);
    let claimed = claim_own(outbox, &mut kit, now, &[&a, &b]).await;
    assert_eq!(claimed.len(), 1);
    let c = &claimed[0];
    assert_eq!(
        c.lease.delivery.tenant, a,
        "a delivery for the wrong tenant"
    );
    deliver(outbox, &mut kit, c, now).await;
    assert_eq!(attempts(outbox, &a, shared_id, None, 10).await.len(), 1);
    assert!(
        attempts(outbox, &b, shared_id, None, 10).await.is_empty(),
        "list_attempts showed another tenant's attempts"
    );
}

/// Removing a destination removes its pending deliveries (a held lease is
/// then lost) and its attempts; the same id inserted again starts clean.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn deleted_destination_has_nothing_pending<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let dests = kit.destinations(outbox, &tenant, 2).await;
    let (gone, kept) = (dests[0].destination_id, dests[1].destination_id);
    assert!(matches!(
        enqueue(outbox, &tenant, &kit.event(), Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 1.. }
    ));
    assert!(matches!(
        enqueue(outbox, &tenant, &kit.event(), Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 1.. }
    ));
    let now = at(kit.now, 1);
    let claimed = claim_own(outbox, &mut kit, now, &[&tenant]).await;
    assert_eq!(claimed.len(), 4);
    let mut held = None;
    for c in &claimed {
        if c.lease.delivery.destination_id == gone && held.is_none() {
            let report = kit.report(
                c,
                failed(),
                now,
                NextStep::RetryAt(now),
                DisablePolicy::default(),
            );
            assert_eq!(
                complete(outbox, c, report).await,
                CompleteOutcome::Recorded {
                    disabled: None,
                    retry_at: Some(now)
                }
            );
            // The retry, among any released before it (in whatever order
            // the claim takes them).
            for again in claim_own(outbox, &mut kit, now, &[&tenant]).await {
                if again.lease.delivery == c.lease.delivery {
                    held = Some(again);
                } else {
                    outbox.release(&again.lease).await.expect("release failed");
                }
            }
        } else {
            outbox.release(&c.lease).await.expect("release failed");
        }
    }
    let held = held.expect("the rescheduled delivery is claimed again");
    assert_eq!(attempts(outbox, &tenant, gone, None, 10).await.len(), 1);
    assert_eq!(remove(outbox, &tenant, gone).await, RemoveOutcome::Removed);
    let report = kit.report(
        &held,
        DELIVERED,
        now,
        NextStep::Delivered,
        DisablePolicy::default(),
    );
    assert_eq!(
        complete(outbox, &held, report).await,
        CompleteOutcome::LeaseLost,
        "complete: a removed destination's delivery was completed"
    );
    assert!(
        attempts(outbox, &tenant, gone, None, 10).await.is_empty(),
        "remove: attempts stayed behind"
    );
    let later = claim_own(outbox, &mut kit, at(now, 3600), &[&tenant]).await;
    assert!(
        later
            .iter()
            .all(|c| c.lease.delivery.destination_id == kept),
        "remove: a pending delivery stayed behind"
    );
    assert_eq!(
        later.len(),
        2,
        "remove: another destination lost deliveries"
    );
    for c in &later {
        outbox.release(&c.lease).await.expect("release failed");
    }
    let again = kit.plan(&tenant, Some(gone));
    assert_eq!(
        insert(outbox, &tenant, &again.record).await,
        InsertOutcome::Inserted
    );
    assert!(attempts(outbox, &tenant, gone, None, 10).await.is_empty());
    assert!(
        claim_own(outbox, &mut kit, at(now, 3600), &[&tenant])
            .await
            .iter()
            .all(|c| c.lease.delivery.destination_id == kept),
        "an id inserted again inherited deliveries"
    );
}

/// A disabled destination gets no new deliveries (`Target::Only` answers
/// `Disabled`); disabling one drops its pending deliveries, and enabling it
/// again does not bring them back.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn disabled_destinations_get_no_deliveries<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let dests = kit.destinations(outbox, &tenant, 2).await;
    let off = dests[1]
        .disabled(DisabledReason::Manual, kit.now)
        .expect("version");
    assert_eq!(
        replace(outbox, &tenant, 1, &off).await,
        ReplaceOutcome::Replaced
    );
    assert_eq!(
        enqueue(outbox, &tenant, &kit.event(), Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 1 },
        "enqueue: a disabled destination got a delivery"
    );
    assert_eq!(
        enqueue(
            outbox,
            &tenant,
            &kit.event(),
            Target::Only(off.destination_id)
        )
        .await,
        EnqueueOutcome::Disabled
    );
    let on = &dests[0];
    let off0 = on
        .disabled(DisabledReason::Manual, kit.now)
        .expect("version");
    assert_eq!(
        replace(outbox, &tenant, 1, &off0).await,
        ReplaceOutcome::Replaced
    );
    let now = at(kit.now, 1);
    assert!(
        claim_own(outbox, &mut kit, now, &[&tenant])
            .await
            .is_empty(),
        "claim: offered a delivery of a disabled destination"
    );
    let back = off0.reenabled(now).expect("version");
    assert_eq!(
        replace(outbox, &tenant, 2, &back).await,
        ReplaceOutcome::Replaced
    );
    assert!(
        claim_own(outbox, &mut kit, now, &[&tenant])
            .await
            .is_empty(),
        "claim: a dropped delivery came back after enabling"
    );
    assert_eq!(
        enqueue(outbox, &tenant, &kit.event(), Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 1 },
        "enqueue: an enabled-again destination gets deliveries"
    );
}

/// Disabling drops the destination's pending deliveries at once, in the
/// same write: disabled by an update and enabled again with no claim in
/// between, or disabled by a `410` while other deliveries wait, a
/// destination gets none of its backlog; another destination's deliveries
/// of the same events are untouched, and events after the re-enable reach
/// it.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn disabling_drops_the_backlog_at_once<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let dests = kit.destinations(outbox, &tenant, 2).await;
    let (off, kept) = (dests[0].destination_id, dests[1].destination_id);
    for _ in 0..3 {
        assert_eq!(
            enqueue(outbox, &tenant, &kit.event(), Target::AllEnabled).await,
            EnqueueOutcome::Enqueued { deliveries: 2 }
        );
    }
    // Disabled by an update, enabled again by the next; no claim between.
    let disabled = dests[0]
        .disabled(DisabledReason::Manual, kit.now)
        .expect("version");
    assert_eq!(
        replace(outbox, &tenant, dests[0].version, &disabled).await,
        ReplaceOutcome::Replaced
    );
    let enabled = disabled.reenabled(kit.now).expect("version");
    assert_eq!(
        replace(outbox, &tenant, disabled.version, &enabled).await,
        ReplaceOutcome::Replaced
    );
    let now = at(kit.now, 1);
    let claimed = claim_own(outbox, &mut kit, now, &[&tenant]).await;
    assert!(
        claimed
            .iter()
            .all(|c| c.lease.delivery.destination_id == kept),
        "disable: the backlog came back after enabling with no claim in between"
    );
    assert_eq!(
        claimed.len(),
        3,
        "disable: another destination lost deliveries"
    );
    for c in &claimed {
        outbox.release(&c.lease).await.expect("release failed");
    }

    // Disabled by a 410 on one delivery while two more wait: they go with
    // the same write.
    assert_eq!(
        enqueue(outbox, &tenant, &kit.event(), Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 2 }
    );
    let first = claim_own(outbox, &mut kit, now, &[&tenant]).await;
    let mut gone = None;
    for c in first {
        if c.lease.delivery.destination_id == off {
            gone = Some(c);
        } else {
            outbox.release(&c.lease).await.expect("release failed");
        }
    }
    let gone = gone.expect("the re-enabled destination's delivery is claimed");
    for _ in 0..2 {
        assert_eq!(
            enqueue(outbox, &tenant, &kit.event(), Target::AllEnabled).await,
            EnqueueOutcome::Enqueued { deliveries: 2 }
        );
    }
    let report = plan_finish(
        &gone,
        &Classification::Gone,
        now,
        Duration::from_millis(5),
        &RetrySchedule::default(),
        DisablePolicy::default(),
        &mut kit.rng,
    );
    assert_eq!(
        complete(outbox, &gone, report).await,
        CompleteOutcome::Recorded {
            disabled: Some(DisabledReason::Gone),
            retry_at: None
        }
    );
    let stored = get(outbox, &tenant, off).await.expect("kept");
    let enabled = stored.reenabled(now).expect("version");
    assert_eq!(
        replace(outbox, &tenant, stored.version, &enabled).await,
        ReplaceOutcome::Replaced
    );
    let claimed = claim_own(outbox, &mut kit, now, &[&tenant]).await;
    assert!(
        claimed
            .iter()
            .all(|c| c.lease.delivery.destination_id == kept),
        "410: the deliveries waiting behind it came back after enabling"
    );
    assert_eq!(claimed.len(), 6, "410: another destination lost deliveries");
    for c in &claimed {
        outbox.release(&c.lease).await.expect("release failed");
    }
    assert_eq!(
        enqueue(outbox, &tenant, &kit.event(), Target::Only(off)).await,
        EnqueueOutcome::Enqueued { deliveries: 1 },
        "enqueue: an enabled-again destination gets deliveries"
    );
    let later = claim_own(outbox, &mut kit, now, &[&tenant]).await;
    assert_eq!(
        later
            .iter()
            .filter(|c| c.lease.delivery.destination_id == off)
            .count(),
        1,
        "claim: the event after the re-enable is offered"
    );
    for c in &later {
        outbox.release(&c.lease).await.expect("release failed");
    }
}

/// Attempts in flight when their destination is disabled (by an update):
/// `complete` still records each attempt and ends its delivery (a retry the
/// report asks for is not scheduled, nor a `410` a second disable), and the
/// destination keeps the state the update gave it; one released while the
/// destination is disabled is dropped; one whose holder vanished is dropped
/// by a claim made while the destination is disabled that finds its lease
/// over, and its lease is then lost. Enabling the destination again brings
/// none of them back.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn completing_after_a_disable_mid_flight_records_the_attempt<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let dest = kit.destinations(outbox, &tenant, 1).await.remove(0);
    let id = dest.destination_id;
    for _ in 0..4 {
        assert!(matches!(
            enqueue(outbox, &tenant, &kit.event(), Target::AllEnabled).await,
            EnqueueOutcome::Enqueued { deliveries: 1 }
        ));
    }
    let t0 = at(kit.now, 1);
    let claimed = claim_own(outbox, &mut kit, t0, &[&tenant]).await;
    assert_eq!(claimed.len(), 4);
    let off = dest.disabled(DisabledReason::Manual, t0).expect("version");
    assert_eq!(
        replace(outbox, &tenant, dest.version, &off).await,
        ReplaceOutcome::Replaced
    );

    // A failure asking for a retry: recorded, and the delivery ends.
    let retry = kit.report(
        &claimed[0],
        failed(),
        at(t0, 2),
        NextStep::RetryAt(at(t0, 5)),
        DisablePolicy::default(),
    );
    assert_eq!(
        complete(outbox, &claimed[0], retry).await,
        CompleteOutcome::Recorded {
            disabled: None,
            retry_at: None
        },
        "complete: an attempt in flight at the disable was not recorded"
    );
    let listed = attempts(outbox, &tenant, id, None, 10).await;
    assert_eq!(listed.len(), 1, "complete: the attempt is not listed");
    assert_eq!(
        listed[0].next_attempt_at, None,
        "complete: a disabled destination's delivery lists a next attempt"
    );
    // A 410 on a destination already disabled: recorded, the state kept.
    let gone = plan_finish(
        &claimed[1],
        &Classification::Gone,
        at(t0, 3),
        Duration::from_millis(5),
        &RetrySchedule::default(),
        DisablePolicy::default(),
        &mut kit.rng,
    );
    assert_eq!(
        complete(outbox, &claimed[1], gone).await,
        CompleteOutcome::Recorded {
            disabled: None,
            retry_at: None
        },
        "complete: a disabled destination was disabled again"
    );
    assert_eq!(attempts(outbox, &tenant, id, None, 10).await.len(), 2);
    let stored = get(outbox, &tenant, id).await.expect("kept");
    assert_eq!(stored, off, "complete: the update's state was changed");
    // Released while disabled: dropped, not given back, even once enabled
    // again (the fourth's lease still runs).
    assert!(
        outbox
            .release(&claimed[2].lease)
            .await
            .expect("release failed"),
        "release: a held lease was refused"
    );
    let on = off.reenabled(at(t0, 4)).expect("version");
    assert_eq!(
        replace(outbox, &tenant, off.version, &on).await,
        ReplaceOutcome::Replaced
    );
    assert!(
        claim_own(outbox, &mut kit, at(t0, 5), &[&tenant])
            .await
            .is_empty(),
        "release: a disabled destination's delivery was given back"
    );
    // The fourth's holder vanished: once its lease is over, a claim made
    // while the destination is disabled drops it.
    let off = on
        .disabled(DisabledReason::Manual, at(t0, 6))
        .expect("version");
    assert_eq!(
        replace(outbox, &tenant, on.version, &off).await,
        ReplaceOutcome::Replaced
    );
    let late = at(t0, 3600);
    assert!(
        claim_own(outbox, &mut kit, late, &[&tenant])
            .await
            .is_empty(),
        "claim: offered a disabled destination's delivery"
    );
    let on = off.reenabled(late).expect("version");
    assert_eq!(
        replace(outbox, &tenant, off.version, &on).await,
        ReplaceOutcome::Replaced
    );
    assert!(
        claim_own(outbox, &mut kit, late, &[&tenant])
            .await
            .is_empty(),
        "claim: a delivery in flight at the disable came back after enabling"
    );
    let report = kit.report(
        &claimed[3],
        DELIVERED,
        late,
        NextStep::Delivered,
        DisablePolicy::default(),
    );
    assert_eq!(
        complete(outbox, &claimed[3], report).await,
        CompleteOutcome::LeaseLost,
        "complete: a dropped delivery was completed"
    );
    assert_eq!(attempts(outbox, &tenant, id, None, 10).await.len(), 2);
}

/// A `410 Gone` disables the destination `gone` in the same write as the
/// attempt: version + 1, the delivery finished, the attempt listed with 410.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn gone_disables_in_the_same_write<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let dest = kit.destinations(outbox, &tenant, 1).await.remove(0);
    assert!(matches!(
        enqueue(outbox, &tenant, &kit.event(), Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 1.. }
    ));
    let now = at(kit.now, 1);
    let c = claim_own(outbox, &mut kit, now, &[&tenant]).await.remove(0);
    let report = plan_finish(
        &c,
        &Classification::Gone,
        now,
        Duration::from_millis(12),
        &RetrySchedule::default(),
        DisablePolicy::default(),
        &mut kit.rng,
    );
    assert_eq!(
        complete(outbox, &c, report).await,
        CompleteOutcome::Recorded {
            disabled: Some(DisabledReason::Gone),
            retry_at: None
        }
    );
    let stored = get(outbox, &tenant, dest.destination_id)
        .await
        .expect("kept");
    assert!(!stored.enabled, "410: the destination is still enabled");
    assert_eq!(stored.disabled_reason, Some(DisabledReason::Gone));
    assert_eq!(stored.version, dest.version + 1, "410: version not moved");
    let listed = attempts(outbox, &tenant, dest.destination_id, None, 10).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].response_status, Some(410));
    assert_eq!(listed[0].next_attempt_at, None);
    assert!(
        claim_own(outbox, &mut kit, at(now, 86_400), &[&tenant])
            .await
            .is_empty(),
        "410: the delivery is still pending"
    );
}

/// Failing attempts build a streak that disables the destination `failing`
/// once it holds `min_attempts` over `disable_after`; a success in between
/// resets the streak.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn auto_disable_after_the_streak<O: Outbox>(outbox: &O) {
    let policy = DisablePolicy {
        disable_after: Duration::from_secs(60),
        min_attempts: 3,
    };
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let dest = kit.destinations(outbox, &tenant, 1).await.remove(0);
    assert!(matches!(
        enqueue(outbox, &tenant, &kit.event(), Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 1.. }
    ));
    let t0 = at(kit.now, 1);
    // Two failures, then a success: the streak is reset.
    for (t, ok) in [(0, false), (40, false), (80, true)] {
        let now = at(t0, t);
        let c = claim_own(outbox, &mut kit, now, &[&tenant]).await.remove(0);
        let (class, next) = if ok {
            (DELIVERED, NextStep::Delivered)
        } else {
            (failed(), NextStep::RetryAt(at(now, 40)))
        };
        let report = kit.report(&c, class, now, next, policy);
        assert_eq!(
            complete(outbox, &c, report).await,
            CompleteOutcome::Recorded {
                disabled: None,
                retry_at: retry_of(next)
            }
        );
    }
    assert!(matches!(
        enqueue(outbox, &tenant, &kit.event(), Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 1.. }
    ));
    // Without the reset, the first of these would disable (3 over 90 s).
    for t in [90, 130, 170] {
        let now = at(t0, t);
        let c = claim_own(outbox, &mut kit, now, &[&tenant]).await.remove(0);
        let report = kit.report(&c, failed(), now, NextStep::RetryAt(at(now, 40)), policy);
        let want = if t == 170 {
            Some(DisabledReason::Failing)
        } else {
            None
        };
        assert_eq!(
            complete(outbox, &c, report).await,
            CompleteOutcome::Recorded {
                disabled: want,
                retry_at: want.is_none().then(|| at(now, 40))
            },
            "auto-disable at +{t}s"
        );
    }
    let stored = get(outbox, &tenant, dest.destination_id)
        .await
        .expect("kept");
    assert_eq!(stored.disabled_reason, Some(DisabledReason::Failing));
    assert!(!stored.enabled);
    let listed = attempts(outbox, &tenant, dest.destination_id, None, 1).await;
    assert_eq!(
        listed[0].next_attempt_at, None,
        "a disabling attempt lists no next attempt"
    );
    assert!(
        claim_own(outbox, &mut kit, at(t0, 86_400), &[&tenant])
            .await
            .is_empty(),
        "auto-disable: the delivery is still pending"
    );
}

/// Attempts are listed newest first, and walking pages by the last id
/// gives each exactly once.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn attempts_newest_first_with_cursor<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let dest = kit.destinations(outbox, &tenant, 1).await.remove(0);
    assert!(matches!(
        enqueue(outbox, &tenant, &kit.event(), Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 1.. }
    ));
    let mut made = Vec::new();
    let mut now = at(kit.now, 1);
    for _ in 0..5 {
        let c = claim_own(outbox, &mut kit, now, &[&tenant]).await.remove(0);
        let report = kit.report(
            &c,
            failed(),
            now,
            NextStep::RetryAt(at(now, 1)),
            DisablePolicy::default(),
        );
        made.push(report.attempt.clone());
        assert_eq!(
            complete(outbox, &c, report).await,
            CompleteOutcome::Recorded {
                disabled: None,
                retry_at: Some(at(now, 1))
            }
        );
        now = at(now, 2);
    }
    made.reverse();
    let all = attempts(outbox, &tenant, dest.destination_id, None, 100).await;
    assert_eq!(all, made, "attempts: not newest first, or not as stored");
    let mut walked = Vec::new();
    let mut before = None;
    loop {
        let page = attempts(outbox, &tenant, dest.destination_id, before, 2).await;
        assert!(page.len() <= 2, "list_attempts: more than the limit");
        let Some(last) = page.last() else { break };
        before = Some(last.attempt_id);
        walked.extend(page);
    }
    assert_eq!(
        walked, made,
        "attempts: the cursor walk repeated or skipped"
    );
}

/// Event ids are remembered per tenant: enqueuing an id again (the same
/// event, or another type or payload under its id) stores nothing and
/// answers `Exists` with the first enqueue's time, type, payload digest and
/// delivery count; that holds after its deliveries are done, and for an id
/// first enqueued with no destination (a destination added since gets
/// nothing). Another tenant's same id is its own event.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn event_ids_are_remembered<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let now = kit.now;
    let (tenant, other) = (kit.tenant(), kit.tenant());
    kit.destinations(outbox, &tenant, 2).await;
    let event = kit.event();
    assert_eq!(
        enqueue(outbox, &tenant, &event, Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 2 }
    );
    let first = EnqueueOutcome::Exists(ExistingEvent::of(&event, 2));
    let mut retry = event.clone();
    retry.created_at = at(kit.now, 60);
    let mut other_payload = retry.clone();
    other_payload.payload = Payload::from_json("{\"n\":\"other\"}".to_owned()).expect("json");
    let mut other_type = retry.clone();
    other_type.event_type = "conformance.other".parse::<EventType>().expect("a type");
    for (again, what) in [
        (&event, "the same event"),
        (&retry, "a retry a minute later"),
        (&other_payload, "another payload"),
        (&other_type, "another type"),
    ] {
        assert_eq!(
            enqueue(outbox, &tenant, again, Target::AllEnabled).await,
            first,
            "enqueue of a known id ({what}): not the first enqueue's record"
        );
    }
    assert_eq!(
        enqueue(outbox, &other, &other_payload, Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 0 },
        "event ids: another tenant's id is not scoped to its tenant"
    );
    let claimed = claim_own(outbox, &mut kit, at(now, 1), &[&tenant, &other]).await;
    assert_eq!(claimed.len(), 2, "enqueue of a known id queued more");
    for c in &claimed {
        assert_eq!(c.event, event, "enqueue of a known id changed the event");
        let when = at(kit.now, 2);
        deliver(outbox, &mut kit, c, when).await;
    }
    assert_eq!(
        enqueue(outbox, &tenant, &retry, Target::AllEnabled).await,
        first,
        "event ids: an id was forgotten once its deliveries were done"
    );
    // An id first enqueued with no destination is remembered too.
    kit.destinations(outbox, &other, 1).await;
    assert_eq!(
        enqueue(outbox, &other, &event, Target::AllEnabled).await,
        EnqueueOutcome::Exists(ExistingEvent::of(&other_payload, 0)),
        "event ids: an id enqueued with no destination was forgotten"
    );
    assert!(
        claim_own(outbox, &mut kit, at(now, 3), &[&tenant, &other])
            .await
            .is_empty(),
        "enqueue of a known id queued a delivery"
    );
}

/// `publish` with a client `eventId` over the store: the same id, type and
/// payload bytes answer the first body again (even a minute later, after a
/// destination was added) and queue nothing; other payload bytes (the same
/// JSON value spelt differently too) or another type are
/// `PublishOutcome::Exists`; another tenant's same id is its own event.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn publish_is_idempotent_by_event_id<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let (tenant, other) = (kit.tenant(), kit.tenant());
    kit.destinations(outbox, &tenant, 2).await;
    let (t0, t1) = (kit.now, at(kit.now, 60));
    let id = crate::id::EventId::generate(t0, &mut kit.rng);
    let request = |event_type: &str, payload: &str| {
        PublishRequest::new(event_type, payload.to_owned())
            .expect("a valid payload")
            .with_event_id(id.to_string())
    };
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let mut send = async |tenant: &TenantId, request: PublishRequest, now: Timestamp| {
        publish(outbox, tenant, request, now, &mut rng)
            .await
            .expect("publish failed")
    };
    let first = send(&tenant, request("kit.paid", "{\"a\": 1}"), t0).await;
    let PublishOutcome::Accepted(body) = first.clone() else {
        panic!("publish with a new eventId: {first:?}")
    };
    assert_eq!((body.event_id, body.destinations), (id, 2));
    kit.destinations(outbox, &tenant, 1).await;
    assert_eq!(
        send(&tenant, request("kit.paid", "{\"a\": 1}"), t1).await,
        PublishOutcome::Replayed(body),
        "publish of a known eventId with the same content: not the first answer"
    );
    for (event_type, payload) in [
        ("kit.paid", "{\"a\":1}"),
        ("kit.paid", "{\"a\": 2}"),
        ("kit.void", "{\"a\": 1}"),
    ] {
        assert_eq!(
            send(&tenant, request(event_type, payload), t1).await,
            PublishOutcome::Exists(id),
            "publish of a known eventId with other content ({event_type} {payload})"
        );
    }
    let theirs = send(&other, request("kit.void", "2"), t1).await;
    let PublishOutcome::Accepted(theirs) = theirs else {
        panic!("another tenant's eventId: {theirs:?}")
    };
    assert_eq!((theirs.event_id, theirs.destinations), (id, 0));
    let claimed = claim_own(outbox, &mut kit, at(t0, 1), &[&tenant, &other]).await;
    assert_eq!(claimed.len(), 2, "publish of a known eventId queued more");
    for c in claimed {
        assert_eq!(c.event.payload.get(), "{\"a\": 1}");
        outbox.release(&c.lease).await.expect("release failed");
    }
}

/// Enqueues of one event from many OS threads at once store it once: one
/// `Enqueued`, every other `Exists`, one delivery per destination.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn concurrent_enqueues_of_one_id_store_one<O: Outbox>(outbox: &O, threads: usize) {
    let mut kit = Kit::new();
    let now = kit.now;
    let tenant = kit.tenant();
    kit.destinations(outbox, &tenant, 3).await;
    let event = kit.event();
    let outcomes: Vec<EnqueueOutcome> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(2))
            .map(|_| s.spawn(|| block_on(outbox.enqueue(&tenant, &event, Target::AllEnabled))))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .expect("an enqueuing thread panicked")
                    .expect("enqueue failed")
            })
            .collect()
    });
    let stored = outcomes
        .iter()
        .filter(|o| **o == EnqueueOutcome::Enqueued { deliveries: 3 })
        .count();
    assert_eq!(stored, 1, "concurrent enqueues of one id: {outcomes:?}");
    let exists = EnqueueOutcome::Exists(ExistingEvent::of(&event, 3));
    assert!(
        outcomes
            .iter()
            .all(|o| *o == exists || *o == EnqueueOutcome::Enqueued { deliveries: 3 }),
        "concurrent enqueues of one id: {outcomes:?}"
    );
    let claimed = claim_own(outbox, &mut kit, at(now, 1), &[&tenant]).await;
    assert_eq!(
        claimed.len(),
        3,
        "concurrent enqueues of one id: not one delivery per destination"
    );
    for c in claimed {
        outbox.release(&c.lease).await.expect("release failed");
    }
}

/// Two years before the kit's time: events a test purges.
fn long_ago(kit: &Kit) -> Timestamp {
    Timestamp::from_unix_millis(kit.now.unix_millis().saturating_sub(2 * 366 * 86_400_000))
        .expect("a time after 1970")
}

/// Purges every event (of any tenant) created more than a year before the
/// kit's time that has no pending delivery.
async fn purge_old_events<O: EventLog>(outbox: &O, kit: &Kit) {
    let year_ago = Timestamp::from_unix_millis(kit.now.unix_millis() - 366 * 86_400_000)
        .expect("a time after 1970");
    let cutoffs = PurgeCutoffs {
        attempts_before: Timestamp::UNIX_EPOCH,
        events_before: year_ago,
    };
    while !outbox
        .purge(cutoffs, 1_000)
        .await
        .expect("purge failed")
        .is_empty()
    {}
}

/// An id is forgotten once it is past [`EVENT_ID_RETENTION`] and its event
/// is no longer stored (purged: see [`EventLog`]), by a later enqueue of
/// the tenant, never while its event is stored.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn expired_event_ids_are_forgotten<O: EventLog>(outbox: &O) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let t0 = long_ago(&kit);
    let lonely = kit.event_at(at(t0, 1));
    assert_eq!(
        enqueue(outbox, &tenant, &lonely, Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 0 }
    );
    let dest = kit.destinations(outbox, &tenant, 1).await.remove(0);
    let pending = kit.event_at(t0);
    assert_eq!(
        enqueue(outbox, &tenant, &pending, Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 1 }
    );
    // The event without deliveries is purged; the pending one stays.
    purge_old_events(outbox, &kit).await;
    let later = at(t0, EVENT_ID_RETENTION.as_secs() + 3600);
    let trigger = kit.event_at(later);
    assert_eq!(
        enqueue(outbox, &tenant, &trigger, Target::Only(dest.destination_id)).await,
        EnqueueOutcome::Enqueued { deliveries: 1 }
    );
    assert_eq!(
        enqueue(outbox, &tenant, &pending, Target::AllEnabled).await,
        EnqueueOutcome::Exists(ExistingEvent::of(&pending, 1)),
        "event ids: an id was forgotten while its event is stored"
    );
    assert_eq!(
        enqueue(outbox, &tenant, &lonely, Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 1 },
        "event ids: an expired id whose event is gone was not forgotten"
    );
    // Removing the destination takes the deliveries made here with it.
    assert_eq!(
        remove(outbox, &tenant, dest.destination_id).await,
        RemoveOutcome::Removed
    );
}

/// A busy tenant's publishes forget only its own expired ids whose events
/// are purged (two per enqueue, so its ids shrink back to its last day's),
/// never a quiet tenant's.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn a_busy_tenant_forgets_only_its_own_ids<O: EventLog>(outbox: &O) {
    const BURST: usize = 20;
    let mut kit = Kit::new();
    let (quiet, busy) = (kit.tenant(), kit.tenant());
    let t0 = long_ago(&kit);
    let later = at(t0, EVENT_ID_RETENTION.as_secs() + 60);
    let mine = kit.event_at(t0);
    assert_eq!(
        enqueue(outbox, &quiet, &mine, Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 0 }
    );
    let old: Vec<Event> = (0..BURST).map(|_| kit.event_at(t0)).collect();
    let new: Vec<Event> = (0..BURST).map(|_| kit.event_at(later)).collect();
    for (i, event) in old.iter().chain(&new).enumerate() {
        if i == BURST {
            purge_old_events(outbox, &kit).await;
        }
        assert_eq!(
            enqueue(outbox, &busy, event, Target::AllEnabled).await,
            EnqueueOutcome::Enqueued { deliveries: 0 }
        );
    }
    for event in &old {
        let mut again = event.clone();
        again.created_at = later;
        assert_eq!(
            enqueue(outbox, &busy, &again, Target::AllEnabled).await,
            EnqueueOutcome::Enqueued { deliveries: 0 },
            "event ids: a busy tenant's expired id was not forgotten by its publishes"
        );
    }
    assert_eq!(
        enqueue(outbox, &quiet, &mine, Target::AllEnabled).await,
        EnqueueOutcome::Exists(ExistingEvent::of(&mine, 0)),
        "event ids: another tenant's publishes forgot this tenant's id"
    );
}

/// Every outbox property, one after another.
///
/// # Panics
/// If the store violates a property or returns an error.
pub async fn outbox_run_all<O: Outbox>(outbox: &O) {
    lease_exclusivity_under_concurrent_claims(outbox, 4).await;
    reoffer_after_lease_expiry(outbox).await;
    nothing_lost_across_complete_and_reschedule(outbox).await;
    outbox_tenant_isolation(outbox).await;
    deleted_destination_has_nothing_pending(outbox).await;
    disabled_destinations_get_no_deliveries(outbox).await;
    disabling_drops_the_backlog_at_once(outbox).await;
    completing_after_a_disable_mid_flight_records_the_attempt(outbox).await;
    gone_disables_in_the_same_write(outbox).await;
    auto_disable_after_the_streak(outbox).await;
    attempts_newest_first_with_cursor(outbox).await;
    enqueue_follows_filter_types(outbox).await;
    event_ids_are_remembered(outbox).await;
    publish_is_idempotent_by_event_id(outbox).await;
    concurrent_enqueues_of_one_id_store_one(outbox, 4).await;
    queue_depth_counts_waiting_and_leased(outbox).await;
    fairness_run_all(outbox).await;
}

// --- Fairness: the claim caps and turns every store gives (see
// `Outbox::claim`). ---

/// The caps a worker passes: up to `limit`, 4 per destination, failing
/// destinations `failing_limit` per claim and 1 each.
fn worker_limits(limit: usize, failing_limit: usize) -> ClaimLimits {
    ClaimLimits {
        limit,
        per_destination: 4,
        failing_limit,
        per_failing_destination: 1,
    }
}

/// Leases, for a day, every delivery due within the hour of `now` (other
/// properties' or users' leftovers), so that the claims of a fairness
/// property see only its own deliveries; [`release_all`] gives them back.
async fn set_aside<O: Outbox>(outbox: &O, kit: &mut Kit, now: Timestamp) -> Vec<Claimed> {
    let lease = LeaseRequest {
        token: LeaseToken::generate(&mut kit.rng),
        duration: Duration::from_secs(86_400),
    };
    let mut aside: Vec<Claimed> = Vec::new();
    let mut seen = BTreeSet::new();
    loop {
        let batch = outbox
            .claim(at(now, 3600), 1000.into(), lease)
            .await
            .expect("claim failed");
        if batch.is_empty() {
            return aside;
        }
        for c in batch {
            assert!(
                seen.insert(c.lease.delivery.clone()),
                "claim: offered a delivery under a live lease"
            );
            aside.push(c);
        }
    }
}

async fn release_all<O: Outbox>(outbox: &O, claimed: &[Claimed]) {
    for c in claimed {
        outbox.release(&c.lease).await.expect("release failed");
    }
}

/// Removes the destinations (and with them their pending deliveries), so a
/// property's backlog does not burden the next.
async fn remove_all<O: Outbox>(outbox: &O, tenant: &TenantId, dests: &[DestinationRecord]) {
    for d in dests {
        assert_eq!(
            remove(outbox, tenant, d.destination_id).await,
            RemoveOutcome::Removed
        );
    }
}

/// One claim with `limits`; every delivery must be of `tenants` (the others
/// are set aside) and leased past `now`.
async fn claim_with<O: Outbox>(
    outbox: &O,
    kit: &mut Kit,
    now: Timestamp,
    limits: ClaimLimits,
    tenants: &[&TenantId],
) -> Vec<Claimed> {
    let batch = outbox
        .claim(now, limits, kit.lease())
        .await
        .expect("claim failed");
    assert!(
        batch.len() <= limits.limit,
        "claim: more deliveries than the limit"
    );
    let mut seen = BTreeSet::new();
    for c in &batch {
        assert!(
            tenants.contains(&&c.lease.delivery.tenant),
            "claim: offered a delivery under a live lease (another user's, set aside)"
        );
        assert!(
            c.lease.expires_at > now,
            "claim: a lease that is already over"
        );
        assert!(
            seen.insert(c.lease.delivery.clone()),
            "claim: one delivery twice in a claim"
        );
    }
    batch
}

fn count_of(claimed: &[Claimed], id: DestinationId) -> usize {
    claimed
        .iter()
        .filter(|c| c.lease.delivery.destination_id == id)
        .count()
}

/// Makes `dest` failing: one delivery of a fresh event to it alone is
/// claimed and fails, to be retried at `now` (so it is pending again, as
/// attempt 2).
async fn make_failing<O: Outbox>(
    outbox: &O,
    kit: &mut Kit,
    tenant: &TenantId,
    dest: DestinationId,
    now: Timestamp,
) {
    assert_eq!(
        enqueue(outbox, tenant, &kit.event(), Target::Only(dest)).await,
        EnqueueOutcome::Enqueued { deliveries: 1 }
    );
    let claimed = claim_with(outbox, kit, now, 100.into(), &[tenant]).await;
    let mut failed_one = false;
    for c in &claimed {
        if c.lease.delivery.destination_id == dest && !failed_one {
            failed_one = true;
            let report = kit.report(
                c,
                failed(),
                now,
                NextStep::RetryAt(now),
                DisablePolicy::default(),
            );
            assert_eq!(
                complete(outbox, c, report).await,
                CompleteOutcome::Recorded {
                    disabled: None,
                    retry_at: Some(now)
                }
            );
        } else {
            outbox.release(&c.lease).await.expect("release failed");
        }
    }
    assert!(failed_one, "claim: the due delivery was not offered");
}

/// The cap per destination counts every live lease, from this claim and
/// earlier ones: a lane at its cap gets nothing more until a lease ends
/// (completed, released or expired), then as many as were freed; an expired
/// lease no longer counts.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn per_destination_cap_counts_live_leases<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let now = at(kit.now, 1);
    let aside = set_aside(outbox, &mut kit, now).await;
    let tenant = kit.tenant();
    let dests = kit.destinations(outbox, &tenant, 2).await;
    let (d0, d1) = (dests[0].destination_id, dests[1].destination_id);
    for _ in 0..10 {
        assert_eq!(
            enqueue(outbox, &tenant, &kit.event(), Target::AllEnabled).await,
            EnqueueOutcome::Enqueued { deliveries: 2 }
        );
    }
    let limits = ClaimLimits {
        limit: 100,
        per_destination: 3,
        failing_limit: 100,
        per_failing_destination: 3,
    };
    let first = claim_with(outbox, &mut kit, now, limits, &[&tenant]).await;
    assert_eq!(
        (count_of(&first, d0), count_of(&first, d1)),
        (3, 3),
        "cap: a claim took more (or fewer) than the cap of a deep lane"
    );
    let again = claim_with(outbox, &mut kit, at(now, 1), limits, &[&tenant]).await;
    assert!(
        again.is_empty(),
        "cap: the leases of an earlier claim were not counted"
    );
    // One completed, one released: one slot of each lane frees.
    let done = first
        .iter()
        .find(|c| c.lease.delivery.destination_id == d0)
        .expect("a d0 delivery");
    deliver(outbox, &mut kit, done, at(now, 1)).await;
    let given_back = first
        .iter()
        .find(|c| c.lease.delivery.destination_id == d1)
        .expect("a d1 delivery");
    assert!(
        outbox
            .release(&given_back.lease)
            .await
            .expect("release failed")
    );
    let third = claim_with(outbox, &mut kit, at(now, 2), limits, &[&tenant]).await;
    assert_eq!(
        (count_of(&third, d0), count_of(&third, d1)),
        (1, 1),
        "cap: a freed slot was not refilled once"
    );
    let lower = ClaimLimits {
        per_destination: 1,
        ..limits
    };
    assert!(
        claim_with(outbox, &mut kit, at(now, 3), lower, &[&tenant])
            .await
            .is_empty(),
        "cap: a lane over a lower cap got more"
    );
    // Every lease so far is over at +40 s: they count no more.
    let later = claim_with(outbox, &mut kit, at(now, 40), limits, &[&tenant]).await;
    assert_eq!(
        (count_of(&later, d0), count_of(&later, d1)),
        (3, 3),
        "cap: expired leases still counted"
    );
    release_all(outbox, &later).await;
    remove_all(outbox, &tenant, &dests).await;
    release_all(outbox, &aside).await;
}

/// A quiet organization's due delivery comes in the first claim of two
/// beside a hostile organization's `depth` due deliveries spread over
/// `destinations` destinations (older than the quiet one's), round after
/// round while the hostile backlog holds its leases.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn a_quiet_organization_is_served_beside_a_deep_backlog<O: Outbox>(
    outbox: &O,
    destinations: usize,
    depth: usize,
) {
    let mut kit = Kit::new();
    let now = at(kit.now, 10);
    let aside = set_aside(outbox, &mut kit, now).await;
    let (hostile, quiet) = (kit.tenant(), kit.tenant());
    let deep = kit
        .destinations(outbox, &hostile, destinations.max(1))
        .await;
    // Enqueued 64 at a time, so that a store which groups commits (one
    // fsync for many writes) builds the backlog in seconds.
    let per_event = destinations.max(1);
    let events: Vec<Event> = (0..depth.div_ceil(per_event))
        .map(|_| kit.event())
        .collect();
    for chunk in events.chunks(64) {
        let outcomes = join_all(
            chunk
                .iter()
                .map(|event| enqueue(outbox, &hostile, event, Target::AllEnabled)),
        )
        .await;
        for outcome in outcomes {
            assert_eq!(
                outcome,
                EnqueueOutcome::Enqueued {
                    deliveries: per_event
                },
                "enqueue for the hostile organization"
            );
        }
    }
    let calm = kit.destinations(outbox, &quiet, 1).await;
    let mut held = Vec::new();
    for round in 0..3 {
        // Published after the whole backlog.
        let event = Event::new(
            "conformance.quiet",
            "{}".to_owned(),
            at(kit.now, 1 + round),
            &mut kit.rng,
        )
        .expect("a valid event");
        assert_eq!(
            enqueue(outbox, &quiet, &event, Target::AllEnabled).await,
            EnqueueOutcome::Enqueued { deliveries: 1 }
        );
        let claimed = claim_with(
            outbox,
            &mut kit,
            at(now, round),
            worker_limits(2, 1),
            &[&hostile, &quiet],
        )
        .await;
        assert!(
            claimed.iter().any(|c| c.event.event_id == event.event_id),
            "fairness: round {round}, a quiet organization's delivery waited behind \
             {depth} of another's over {destinations} destination(s)"
        );
        held.extend(claimed);
    }
    release_all(outbox, &held).await;
    remove_all(outbox, &hostile, &deep).await;
    remove_all(outbox, &quiet, &calm).await;
    release_all(outbox, &aside).await;
}

/// `Claimed::failing` says whether the destination's failure streak is not
/// empty; a claim returns at most `failing_limit` deliveries of failing
/// destinations (none at 0) and keeps each failing destination within
/// `per_failing_destination` live leases, while healthy ones are served up
/// to their own cap; a destination whose attempt succeeds is healthy again.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn failing_destinations_take_the_slow_lane<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let now = at(kit.now, 1);
    let aside = set_aside(outbox, &mut kit, now).await;
    let tenant = kit.tenant();
    let dests = kit.destinations(outbox, &tenant, 3).await;
    let (f1, f2, ok) = (
        dests[0].destination_id,
        dests[1].destination_id,
        dests[2].destination_id,
    );
    make_failing(outbox, &mut kit, &tenant, f1, now).await;
    make_failing(outbox, &mut kit, &tenant, f2, now).await;
    for _ in 0..3 {
        assert_eq!(
            enqueue(outbox, &tenant, &kit.event(), Target::AllEnabled).await,
            EnqueueOutcome::Enqueued { deliveries: 3 }
        );
    }
    // f1 and f2 hold 4 each, ok 3.
    let is_failing = |c: &Claimed| c.lease.delivery.destination_id != ok;
    let wide = ClaimLimits {
        limit: 100,
        per_destination: 10,
        failing_limit: 1,
        per_failing_destination: 10,
    };
    let mut held = Vec::new();
    for round in 0..2 {
        let claimed = claim_with(outbox, &mut kit, at(now, 1), wide, &[&tenant]).await;
        for c in &claimed {
            assert_eq!(
                c.failing,
                is_failing(c),
                "Claimed::failing does not match the destination's streak"
            );
        }
        assert_eq!(
            claimed.iter().filter(|c| is_failing(c)).count(),
            1,
            "failing_limit: round {round}, not exactly 1 of the failing backlog"
        );
        let healthy = if round == 0 { 3 } else { 0 };
        assert_eq!(
            count_of(&claimed, ok),
            healthy,
            "failing_limit: the healthy destination was not served in full"
        );
        held.extend(claimed);
    }
    let (slow, fast): (Vec<Claimed>, Vec<Claimed>) = held.into_iter().partition(is_failing);
    release_all(outbox, &slow).await;
    let none = ClaimLimits {
        failing_limit: 0,
        ..wide
    };
    assert!(
        claim_with(outbox, &mut kit, at(now, 2), none, &[&tenant])
            .await
            .is_empty(),
        "failing_limit 0: a failing destination's delivery was claimed"
    );
    let capped = ClaimLimits {
        failing_limit: 100,
        per_failing_destination: 2,
        ..wide
    };
    let claimed = claim_with(outbox, &mut kit, at(now, 2), capped, &[&tenant]).await;
    assert_eq!(
        (count_of(&claimed, f1), count_of(&claimed, f2)),
        (2, 2),
        "per_failing_destination: not the cap of each failing lane"
    );
    assert!(
        claim_with(outbox, &mut kit, at(now, 2), capped, &[&tenant])
            .await
            .is_empty(),
        "per_failing_destination: a failing lane at its cap got more"
    );
    // f1 delivers: healthy again, its others served with failing_limit 0.
    let (first_f1, others): (Vec<Claimed>, Vec<Claimed>) = claimed
        .into_iter()
        .partition(|c| c.lease.delivery.destination_id == f1);
    deliver(outbox, &mut kit, &first_f1[0], at(now, 3)).await;
    release_all(outbox, &first_f1[1..]).await;
    let back = claim_with(outbox, &mut kit, at(now, 4), none, &[&tenant]).await;
    assert_eq!(
        count_of(&back, f1),
        3,
        "a destination that delivered again is still in the slow lane"
    );
    assert!(
        back.iter()
            .all(|c| c.lease.delivery.destination_id == f1 && !c.failing),
        "Claimed::failing: set for a destination that delivered again, or f2 served"
    );
    release_all(outbox, &back).await;
    release_all(outbox, &others).await;
    release_all(outbox, &fast).await;
    remove_all(outbox, &tenant, &dests).await;
    release_all(outbox, &aside).await;
}

/// Within a destination, deliveries come earliest due first, a retry taking
/// its place by its new due time; another organization's lane beside it
/// changes nothing.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn earliest_due_first_within_a_destination<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let base = kit.now.truncated();
    let now = at(base, 20);
    let aside = set_aside(outbox, &mut kit, now).await;
    let (tenant, other) = (kit.tenant(), kit.tenant());
    let dests = kit.destinations(outbox, &tenant, 1).await;
    let beside = kit.destinations(outbox, &other, 1).await;
    // Due at +0, +2, ..., +10 s, published out of order.
    let mut events = BTreeMap::new();
    for offset in [6, 0, 10, 4, 2, 8] {
        for t in [&tenant, &other] {
            let event = Event::new(
                "conformance.due",
                "{}".to_owned(),
                at(base, offset),
                &mut kit.rng,
            )
            .expect("a valid event");
            assert_eq!(
                enqueue(outbox, t, &event, Target::AllEnabled).await,
                EnqueueOutcome::Enqueued { deliveries: 1 }
            );
            if *t == tenant {
                events.insert(event.event_id, offset);
            }
        }
    }
    let limits = ClaimLimits {
        limit: 100,
        per_destination: 2,
        failing_limit: 100,
        per_failing_destination: 2,
    };
    // (offset of the due time, attempt) in claim order; the retry of +0 is
    // due at +5.
    let want = [[(0, 1), (2, 1)], [(4, 1), (5, 2)], [(6, 1), (8, 1)]];
    let mut rest = Vec::new();
    for (round, pair) in want.iter().enumerate() {
        let claimed = claim_with(
            outbox,
            &mut kit,
            at(now, round as u64),
            limits,
            &[&tenant, &other],
        )
        .await;
        let (mine, theirs): (Vec<Claimed>, Vec<Claimed>) = claimed
            .into_iter()
            .partition(|c| c.lease.delivery.tenant == tenant);
        assert_eq!(
            theirs.len(),
            2,
            "another organization's lane was not served"
        );
        rest.extend(theirs);
        let mut got: Vec<(u64, u32)> = mine
            .iter()
            .map(|c| {
                let offset = events[&c.event.event_id];
                (if c.attempt == 2 { 5 } else { offset }, c.attempt)
            })
            .collect();
        got.sort_unstable();
        assert_eq!(
            got,
            pair.to_vec(),
            "earliest due first: round {round} took the wrong deliveries of the lane"
        );
        for c in &mine {
            let (class, next) = if round == 0 && events[&c.event.event_id] == 0 {
                (failed(), NextStep::RetryAt(at(base, 5)))
            } else {
                (DELIVERED, NextStep::Delivered)
            };
            let report = kit.report(
                c,
                class,
                at(now, round as u64),
                next,
                DisablePolicy::default(),
            );
            assert_eq!(
                complete(outbox, c, report).await,
                CompleteOutcome::Recorded {
                    disabled: None,
                    retry_at: retry_of(next)
                }
            );
        }
        release_all(outbox, &rest).await;
        rest.clear();
    }
    let last = claim_with(outbox, &mut kit, at(now, 3), limits, &[&tenant, &other]).await;
    let mine: Vec<u64> = last
        .iter()
        .filter(|c| c.lease.delivery.tenant == tenant)
        .map(|c| events[&c.event.event_id])
        .collect();
    assert_eq!(
        mine,
        [10],
        "earliest due first: the last delivery of the lane"
    );
    release_all(outbox, &last).await;
    remove_all(outbox, &tenant, &dests).await;
    remove_all(outbox, &other, &beside).await;
    release_all(outbox, &aside).await;
}

/// `Claimed::destination` is the record `get` returns at the claim (after
/// updates, not a stale copy), for every delivery of every tenant.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn claimed_destination_is_the_stored_record<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let (a, b) = (kit.tenant(), kit.tenant());
    let mut made = Vec::new();
    for t in [&a, &b] {
        let dests = kit.destinations(outbox, t, 2).await;
        // Disabled and enabled again: version 3, a new `updated_at`.
        let off = dests[0]
            .disabled(DisabledReason::Manual, at(kit.now, 1))
            .expect("version");
        assert_eq!(
            replace(outbox, t, dests[0].version, &off).await,
            ReplaceOutcome::Replaced
        );
        let on = off.reenabled(at(kit.now, 2)).expect("version");
        assert_eq!(
            replace(outbox, t, off.version, &on).await,
            ReplaceOutcome::Replaced
        );
        assert_eq!(
            enqueue(outbox, t, &kit.event(), Target::AllEnabled).await,
            EnqueueOutcome::Enqueued { deliveries: 2 }
        );
        made.push((t.clone(), dests));
    }
    let t = at(kit.now, 3);
    let claimed = claim_own(outbox, &mut kit, t, &[&a, &b]).await;
    assert_eq!(claimed.len(), 4);
    for c in &claimed {
        let stored = get(
            outbox,
            &c.lease.delivery.tenant,
            c.lease.delivery.destination_id,
        )
        .await
        .expect("kept");
        assert_eq!(
            c.destination, stored,
            "Claimed::destination is not the stored record"
        );
    }
    release_all(outbox, &claimed).await;
    for (t, dests) in &made {
        remove_all(outbox, t, dests).await;
    }
}

/// What one run of the `complete_all` scenario leaves, in terms that do not
/// depend on ids: the outcomes; per destination its state (enabled, reason,
/// versions moved) and its attempts (attempt, status, retried); and what a
/// later claim offers (destination, attempt, failing).
type Observed = (
    Vec<CompleteOutcome>,
    Vec<(
        bool,
        Option<DisabledReason>,
        u64,
        Vec<(u32, Option<u16>, bool)>,
    )>,
    Vec<(usize, u32, bool)>,
);

async fn complete_scenario<O: Outbox>(outbox: &O, kit: &mut Kit, batched: bool) -> Observed {
    let tenant = kit.tenant();
    let dests = kit.destinations(outbox, &tenant, 3).await;
    let index = |id: DestinationId| {
        dests
            .iter()
            .position(|d| d.destination_id == id)
            .expect("one of ours")
    };
    let mut events = Vec::new();
    for _ in 0..2 {
        let event = kit.event();
        assert_eq!(
            enqueue(outbox, &tenant, &event, Target::AllEnabled).await,
            EnqueueOutcome::Enqueued { deliveries: 3 }
        );
        events.push(event.event_id);
    }
    let t0 = at(kit.now, 1);
    let claimed = claim_own(outbox, kit, t0, &[&tenant]).await;
    assert_eq!(claimed.len(), 6);
    let pick = |d: usize, e: usize| {
        claimed
            .iter()
            .find(|c| index(c.lease.delivery.destination_id) == d && c.event.event_id == events[e])
            .expect("claimed")
            .clone()
    };
    let strict = DisablePolicy {
        disable_after: Duration::ZERO,
        min_attempts: 2,
    };
    let lost = pick(2, 1);
    assert!(outbox.release(&lost.lease).await.expect("release failed"));
    let mut batch = Vec::new();
    let a1 = pick(0, 0);
    batch.push((
        a1.lease.clone(),
        kit.report(
            &a1,
            DELIVERED,
            at(t0, 1),
            NextStep::Delivered,
            DisablePolicy::default(),
        ),
    ));
    let a2 = pick(0, 1);
    batch.push((
        a2.lease.clone(),
        kit.report(
            &a2,
            failed(),
            at(t0, 2),
            NextStep::RetryAt(at(t0, 60)),
            DisablePolicy::default(),
        ),
    ));
    // b: the second failure disables, only after the first is written.
    for (e, s) in [(0, 3), (1, 4)] {
        let b = pick(1, e);
        batch.push((
            b.lease.clone(),
            kit.report(
                &b,
                failed(),
                at(t0, s),
                NextStep::RetryAt(at(t0, 60)),
                strict,
            ),
        ));
    }
    let c1 = pick(2, 0);
    let gone = plan_finish(
        &c1,
        &Classification::Gone,
        at(t0, 5),
        Duration::from_millis(5),
        &RetrySchedule::default(),
        DisablePolicy::default(),
        &mut kit.rng,
    );
    batch.push((c1.lease.clone(), gone));
    batch.push((
        lost.lease.clone(),
        kit.report(
            &lost,
            DELIVERED,
            at(t0, 6),
            NextStep::Delivered,
            DisablePolicy::default(),
        ),
    ));
    let outcomes = if batched {
        outbox
            .complete_all(batch)
            .await
            .expect("complete_all failed")
    } else {
        let mut out = Vec::new();
        for (lease, report) in batch {
            out.push(
                outbox
                    .complete(&lease, report)
                    .await
                    .expect("complete failed"),
            );
        }
        out
    };
    let mut state = Vec::new();
    for d in &dests {
        let stored = get(outbox, &tenant, d.destination_id).await.expect("kept");
        let mut listed: Vec<(u32, Option<u16>, bool)> =
            attempts(outbox, &tenant, d.destination_id, None, 100)
                .await
                .iter()
                .map(|a| (a.attempt, a.response_status, a.next_attempt_at.is_some()))
                .collect();
        listed.sort_unstable();
        state.push((
            stored.enabled,
            stored.disabled_reason,
            stored.version - d.version,
            listed,
        ));
    }
    let later = claim_own(outbox, kit, at(t0, 120), &[&tenant]).await;
    let mut offered: Vec<(usize, u32, bool)> = later
        .iter()
        .map(|c| (index(c.lease.delivery.destination_id), c.attempt, c.failing))
        .collect();
    offered.sort_unstable();
    release_all(outbox, &later).await;
    remove_all(outbox, &tenant, &dests).await;
    (outcomes, state, offered)
}

/// When a delivery is due again after an attempt whose report says `next`,
/// for an enabled destination the attempt does not disable.
pub(crate) const fn retry_of(next: NextStep) -> Option<Timestamp> {
    match next {
        NextStep::RetryAt(at) => Some(at),
        _ => None,
    }
}

/// `complete_all` writes as `complete` one by one, in order: the same
/// outcomes (a lost lease `LeaseLost` without stopping the rest, a streak
/// that disables only once the attempt before it in the batch is written, a
/// `410` disabling), the same attempts, destination states and retries.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn complete_all_writes_as_complete_one_by_one<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let one_by_one = complete_scenario(outbox, &mut kit, false).await;
    let batched = complete_scenario(outbox, &mut kit, true).await;
    let t0 = at(kit.now, 1);
    let (delivered, retried) = (
        CompleteOutcome::Recorded {
            disabled: None,
            retry_at: None,
        },
        CompleteOutcome::Recorded {
            disabled: None,
            retry_at: Some(at(t0, 60)),
        },
    );
    assert_eq!(
        one_by_one.0,
        [
            delivered,
            retried,
            retried,
            CompleteOutcome::Recorded {
                disabled: Some(DisabledReason::Failing),
                retry_at: None
            },
            CompleteOutcome::Recorded {
                disabled: Some(DisabledReason::Gone),
                retry_at: None
            },
            CompleteOutcome::LeaseLost,
        ],
        "complete: the scenario's outcomes"
    );
    assert_eq!(
        one_by_one.2,
        [(0, 2, true)],
        "complete: only the retry of the enabled destination is offered, failing"
    );
    assert_eq!(
        batched, one_by_one,
        "complete_all: not the writes of complete one by one"
    );
}

/// Enabling a disabled destination clears its failure streak: claims see it
/// healthy (not `failing`, served with `failing_limit` 0), while another
/// destination still failing stays in the slow lane.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn enabling_clears_the_failure_streak<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let now = at(kit.now, 1);
    let aside = set_aside(outbox, &mut kit, now).await;
    let tenant = kit.tenant();
    let dests = kit.destinations(outbox, &tenant, 2).await;
    let (back, still) = (&dests[0], dests[1].destination_id);
    make_failing(outbox, &mut kit, &tenant, back.destination_id, now).await;
    make_failing(outbox, &mut kit, &tenant, still, now).await;
    let claimed = claim_with(outbox, &mut kit, now, worker_limits(10, 10), &[&tenant]).await;
    assert_eq!(claimed.len(), 2);
    assert!(
        claimed.iter().all(|c| c.failing),
        "Claimed::failing: not set after a failed attempt"
    );
    release_all(outbox, &claimed).await;
    let stored = get(outbox, &tenant, back.destination_id)
        .await
        .expect("kept");
    let off = stored
        .disabled(DisabledReason::Manual, now)
        .expect("version");
    assert_eq!(
        replace(outbox, &tenant, stored.version, &off).await,
        ReplaceOutcome::Replaced
    );
    let on = off.reenabled(now).expect("version");
    assert_eq!(
        replace(outbox, &tenant, off.version, &on).await,
        ReplaceOutcome::Replaced
    );
    assert_eq!(
        enqueue(
            outbox,
            &tenant,
            &kit.event(),
            Target::Only(back.destination_id)
        )
        .await,
        EnqueueOutcome::Enqueued { deliveries: 1 }
    );
    let healthy = claim_with(
        outbox,
        &mut kit,
        at(now, 1),
        worker_limits(10, 0),
        &[&tenant],
    )
    .await;
    assert_eq!(
        healthy.len(),
        1,
        "enable: the destination enabled again is still in the slow lane (or the failing one was served)"
    );
    assert_eq!(
        healthy[0].lease.delivery.destination_id,
        back.destination_id
    );
    assert!(
        !healthy[0].failing,
        "enable: Claimed::failing set for a destination enabled again"
    );
    let slow = claim_with(
        outbox,
        &mut kit,
        at(now, 1),
        worker_limits(10, 10),
        &[&tenant],
    )
    .await;
    assert_eq!(slow.len(), 1);
    assert_eq!(slow[0].lease.delivery.destination_id, still);
    assert!(
        slow[0].failing,
        "a destination not enabled again lost its streak"
    );
    release_all(outbox, &healthy).await;
    release_all(outbox, &slow).await;
    remove_all(outbox, &tenant, &dests).await;
    release_all(outbox, &aside).await;
}

/// Every fairness property (the claim caps and turns of
/// [`Outbox::claim`]), one after another; the deep backlog is
/// 10,000 deliveries, on one destination and then over ten.
///
/// # Panics
/// If the store violates a property or returns an error.
pub async fn fairness_run_all<O: Outbox>(outbox: &O) {
    per_destination_cap_counts_live_leases(outbox).await;
    a_quiet_organization_is_served_beside_a_deep_backlog(outbox, 1, 10_000).await;
    a_quiet_organization_is_served_beside_a_deep_backlog(outbox, 10, 10_000).await;
    failing_destinations_take_the_slow_lane(outbox).await;
    earliest_due_first_within_a_destination(outbox).await;
    claimed_destination_is_the_stored_record(outbox).await;
    complete_all_writes_as_complete_one_by_one(outbox).await;
    enabling_clears_the_failure_streak(outbox).await;
}

/// Enqueues an event of `event_type` for `tenants.0` and checks that it
/// counts and reaches exactly `want`; completes what it claimed.
async fn publish_and_claim<O: Outbox>(
    outbox: &O,
    kit: &mut Kit,
    (tenant, other): (&TenantId, &TenantId),
    now: &mut Timestamp,
    event_type: &str,
    want: BTreeSet<DestinationId>,
) {
    let n = kit.rng.next_u64();
    let event = Event::new(event_type, format!("{{\"n\":{n}}}"), kit.now, &mut kit.rng)
        .expect("a valid event");
    assert_eq!(
        enqueue(outbox, tenant, &event, Target::AllEnabled).await,
        EnqueueOutcome::Enqueued {
            deliveries: want.len()
        },
        "enqueue: {event_type} counted other destinations than its filters match"
    );
    *now = at(*now, 1);
    let claimed = claim_own(outbox, kit, *now, &[tenant, other]).await;
    let got: BTreeSet<DestinationId> = claimed
        .iter()
        .map(|c| c.lease.delivery.destination_id)
        .collect();
    assert_eq!(
        (got, claimed.len()),
        (want.clone(), want.len()),
        "enqueue: {event_type} reached other destinations than its filters match"
    );
    for c in &claimed {
        deliver(outbox, kit, c, *now).await;
    }
}

/// Completes `c` as delivered at `now`, which must be recorded.
pub(super) async fn deliver<O: Outbox>(outbox: &O, kit: &mut Kit, c: &Claimed, now: Timestamp) {
    let report = kit.report(
        c,
        DELIVERED,
        now,
        NextStep::Delivered,
        DisablePolicy::default(),
    );
    assert_eq!(
        complete(outbox, c, report).await,
        CompleteOutcome::Recorded {
            disabled: None,
            retry_at: None
        }
    );
}

/// Publishing queues only the enabled destinations whose `filterTypes`
/// match the event's type, and counts exactly those: an empty filter and
/// `*` match every type, `invoice.*` matches `invoice.paid` but not
/// `invoice`, an exact entry only its type; a disabled or another tenant's
/// destination never gets one. Changing a filter (a replace) changes what
/// the next event reaches, and the deliveries claimed are exactly the
/// matching destinations'.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn enqueue_follows_filter_types<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let (tenant, other) = (kit.tenant(), kit.tenant());
    let filters: [&[&str]; 6] = [
        &[],
        &["invoice.*"],
        &["invoice.paid"],
        &["*"],
        &["invoice.*"],
        &["user.created", "invoice.paid"],
    ];
    let mut dests = Vec::new();
    for filter in filters {
        let mut record = kit.plan(&tenant, None).record;
        record.filter_types = FilterTypes::new(filter.iter().copied()).expect("valid filter");
        assert_eq!(
            insert(outbox, &tenant, &record).await,
            InsertOutcome::Inserted
        );
        dests.push(record);
    }
    let off = dests[4]
        .disabled(DisabledReason::Manual, kit.now)
        .expect("version");
    assert_eq!(
        replace(outbox, &tenant, 1, &off).await,
        ReplaceOutcome::Replaced
    );
    let mut theirs = kit.plan(&other, None).record;
    theirs.filter_types = FilterTypes::new(["invoice.*"]).expect("valid filter");
    assert_eq!(
        insert(outbox, &other, &theirs).await,
        InsertOutcome::Inserted
    );
    let ids = |which: &[usize]| -> BTreeSet<DestinationId> {
        which.iter().map(|&i| dests[i].destination_id).collect()
    };
    let mut now = kit.now;
    publish_and_claim(
        outbox,
        &mut kit,
        (&tenant, &other),
        &mut now,
        "invoice.paid",
        ids(&[0, 1, 2, 3, 5]),
    )
    .await;
    publish_and_claim(
        outbox,
        &mut kit,
        (&tenant, &other),
        &mut now,
        "invoice",
        ids(&[0, 3]),
    )
    .await;
    publish_and_claim(
        outbox,
        &mut kit,
        (&tenant, &other),
        &mut now,
        "user.created",
        ids(&[0, 3, 5]),
    )
    .await;
    publish_and_claim(
        outbox,
        &mut kit,
        (&tenant, &other),
        &mut now,
        "invoice.paid.late",
        ids(&[0, 1, 3]),
    )
    .await;
    // Filters change with the record: the index follows a replace.
    let mut moved = dests[1].clone();
    moved.filter_types = FilterTypes::new(["user.*"]).expect("valid filter");
    moved.version = 2;
    assert_eq!(
        replace(outbox, &tenant, 1, &moved).await,
        ReplaceOutcome::Replaced
    );
    let mut every = dests[2].clone();
    every.filter_types = FilterTypes::default();
    every.version = 2;
    assert_eq!(
        replace(outbox, &tenant, 1, &every).await,
        ReplaceOutcome::Replaced
    );
    publish_and_claim(
        outbox,
        &mut kit,
        (&tenant, &other),
        &mut now,
        "invoice.paid",
        ids(&[0, 2, 3, 5]),
    )
    .await;
    publish_and_claim(
        outbox,
        &mut kit,
        (&tenant, &other),
        &mut now,
        "user.deleted",
        ids(&[0, 1, 2, 3]),
    )
    .await;
}

async fn depth<O: Outbox>(outbox: &O) -> QueueDepth {
    outbox.queue_depth().await.expect("queue_depth failed")
}

/// [`Outbox::queue_depth`] follows the deliveries: an enqueue adds waiting
/// ones, a claim moves them to leased, a completion finishes one or makes
/// it wait again (a retry due later still counts), a release gives it back
/// to the waiting, and removing the destinations drops theirs; what other
/// users hold is set aside first, so the counts move by this property's
/// deliveries alone.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn queue_depth_counts_waiting_and_leased<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let now = at(kit.now, 1);
    let aside = set_aside(outbox, &mut kit, now).await;
    let before = depth(outbox).await;
    let moved = |waiting: i64, leased: i64| QueueDepth {
        waiting: before.waiting.saturating_add_signed(waiting),
        leased: before.leased.saturating_add_signed(leased),
    };
    let tenant = kit.tenant();
    let dests = kit.destinations(outbox, &tenant, 3).await;
    for _ in 0..2 {
        assert_eq!(
            enqueue(outbox, &tenant, &kit.event(), Target::AllEnabled).await,
            EnqueueOutcome::Enqueued { deliveries: 3 }
        );
    }
    assert_eq!(
        depth(outbox).await,
        moved(6, 0),
        "queue depth: an enqueue's deliveries are not counted as waiting"
    );
    let claimed = claim_with(outbox, &mut kit, now, 3.into(), &[&tenant]).await;
    assert_eq!(claimed.len(), 3, "claim: fewer than asked of a due backlog");
    assert_eq!(
        depth(outbox).await,
        moved(3, 3),
        "queue depth: claimed deliveries are not counted as leased"
    );
    deliver(outbox, &mut kit, &claimed[0], now).await;
    let report = kit.report(
        &claimed[1],
        failed(),
        now,
        NextStep::RetryAt(at(now, 3600)),
        DisablePolicy::default(),
    );
    assert_eq!(
        complete(outbox, &claimed[1], report).await,
        CompleteOutcome::Recorded {
            disabled: None,
            retry_at: Some(at(now, 3600))
        }
    );
    assert_eq!(
        depth(outbox).await,
        moved(4, 1),
        "queue depth: a delivered attempt still counted, or a retry due later not waiting"
    );
    assert!(
        outbox
            .release(&claimed[2].lease)
            .await
            .expect("release failed")
    );
    assert_eq!(
        depth(outbox).await,
        moved(5, 0),
        "queue depth: a released delivery is not waiting again"
    );
    remove_all(outbox, &tenant, &dests).await;
    assert_eq!(
        depth(outbox).await,
        before,
        "queue depth: removed destinations' deliveries still counted"
    );
    release_all(outbox, &aside).await;
}
