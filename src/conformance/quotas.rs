//! The conformance kit for a store's [`Quotas`]: run these against a store
//! opened with [`KIT_QUOTAS`] (and, like the outbox functions, one at a
//! time: they claim). Each uses fresh tenants.
//!
//! ```
//! # #[cfg(feature = "memory")] {
//! use prets_destinations::{conformance::quotas, MemoryRepo};
//!
//! let repo = MemoryRepo::new().with_quotas(quotas::KIT_QUOTAS);
//! pollster::block_on(quotas::quotas_run_all(&repo));
//! # }
//! ```

use std::thread;

use super::outbox::{at, claim_own, complete, deliver, enqueue, failed};
use super::{Kit, block_on, get, insert, list, remove, replace};
use crate::delivery::{
    CompleteOutcome, DisablePolicy, EnqueueOutcome, EventLog, NextStep, Outbox, RecoverOutcome,
    ResendOutcome, Target,
};
use crate::limits::Quotas;
use crate::ops::{CreateOutcome, PublishOutcome, TestOutcome, create, publish, send_test};
use crate::repo::{DestinationRepo, InsertOutcome, RemoveOutcome, ReplaceOutcome};
use crate::tenant::TenantId;
use crate::wire::PublishRequest;

/// The quotas the store under test is opened with: 3 destinations and 5
/// pending deliveries per tenant.
pub const KIT_QUOTAS: Quotas = Quotas {
    max_destinations: 3,
    max_pending_deliveries: 5,
};

/// Inserts `n` destinations for `tenant`, each `Inserted`.
async fn fill<R: DestinationRepo>(
    repo: &R,
    kit: &mut Kit,
    tenant: &TenantId,
    n: usize,
) -> Vec<crate::id::DestinationId> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let plan = kit.plan(tenant, None);
        assert_eq!(
            insert(repo, tenant, &plan.record).await,
            InsertOutcome::Inserted,
            "an insert below the destination quota was refused"
        );
        ids.push(plan.record.destination_id);
    }
    ids
}

/// A tenant at [`KIT_QUOTAS`]`.max_destinations` gets `QuotaExceeded` for a
/// new id (nothing stored) and `Duplicate` for one it has; another tenant
/// is unaffected; a removed destination makes room for exactly one.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn destination_quota_per_tenant<R: DestinationRepo>(repo: &R) {
    let mut kit = Kit::new();
    let (a, b) = (kit.tenant(), kit.tenant());
    let ids = fill(repo, &mut kit, &a, KIT_QUOTAS.max_destinations).await;
    let over = kit.plan(&a, None);
    assert_eq!(
        insert(repo, &a, &over.record).await,
        InsertOutcome::QuotaExceeded,
        "an insert past the destination quota"
    );
    assert_eq!(
        get(repo, &a, over.record.destination_id).await,
        None,
        "a refused insert left a record"
    );
    let again = kit.plan(&a, Some(ids[0]));
    assert_eq!(
        insert(repo, &a, &again.record).await,
        InsertOutcome::Duplicate,
        "a duplicate id at the quota is a duplicate"
    );
    let request = kit.request(None);
    let outcome = create(
        repo,
        &a,
        request,
        kit.now,
        &mut kit.rng,
        kit.keyring.current(),
    )
    .await
    .expect("create failed");
    assert!(
        matches!(outcome, CreateOutcome::QuotaExceeded),
        "create past the quota: {outcome:?}"
    );
    assert_eq!(list(repo, &a).await.len(), KIT_QUOTAS.max_destinations);
    // Another tenant is not counted against this one's quota.
    fill(repo, &mut kit, &b, KIT_QUOTAS.max_destinations).await;
    assert_eq!(remove(repo, &a, ids[1]).await, RemoveOutcome::Removed);
    fill(repo, &mut kit, &a, 1).await;
    let over = kit.plan(&a, None);
    assert_eq!(
        insert(repo, &a, &over.record).await,
        InsertOutcome::QuotaExceeded,
        "a removal made room for more than one"
    );
}

/// Inserts of distinct ids racing from OS threads for a tenant one below its
/// destination quota: exactly one is stored, the others are
/// `QuotaExceeded`.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn concurrent_inserts_at_the_quota_store_one<R: DestinationRepo>(
    repo: &R,
    threads: usize,
) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    fill(repo, &mut kit, &tenant, KIT_QUOTAS.max_destinations - 1).await;
    let threads = threads.max(2);
    let plans: Vec<_> = (0..threads).map(|_| kit.plan(&tenant, None)).collect();
    let barrier = std::sync::Barrier::new(threads);
    let outcomes: Vec<InsertOutcome> = thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .map(|plan| {
                let (barrier, tenant) = (&barrier, &tenant);
                s.spawn(move || {
                    barrier.wait();
                    block_on(repo.insert(tenant, &plan.record))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .expect("an inserting thread panicked")
                    .expect("insert failed")
            })
            .collect()
    });
    let stored = outcomes
        .iter()
        .filter(|o| **o == InsertOutcome::Inserted)
        .count();
    assert_eq!(stored, 1, "concurrent inserts at the quota: {outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, InsertOutcome::Inserted | InsertOutcome::QuotaExceeded)),
        "concurrent inserts at the quota: {outcomes:?}"
    );
    assert_eq!(
        list(repo, &tenant).await.len(),
        KIT_QUOTAS.max_destinations,
        "concurrent inserts at the quota: the tenant's count"
    );
}

/// A tenant's pending deliveries stay within
/// [`KIT_QUOTAS`]`.max_pending_deliveries`: an enqueue that would pass it is
/// `QueueFull` and stores nothing (not even its id), whatever the target
/// (test events too), while an enqueue of no delivery and another tenant's
/// enqueues go on; finishing, removing and disabling make room, a retry
/// does not.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn pending_quota_per_tenant<O: Outbox>(outbox: &O) {
    let mut kit = Kit::new();
    let (a, b) = (kit.tenant(), kit.tenant());
    let dests = kit.destinations(outbox, &a, 2).await;
    let (d0, d1) = (dests[0].destination_id, dests[1].destination_id);
    let two = EnqueueOutcome::Enqueued { deliveries: 2 };
    assert_eq!(
        enqueue(outbox, &a, &kit.event(), Target::AllEnabled).await,
        two
    );
    assert_eq!(
        enqueue(outbox, &a, &kit.event(), Target::AllEnabled).await,
        two
    );
    // 4 pending: 2 more would be 6.
    let refused = kit.event();
    assert_eq!(
        enqueue(outbox, &a, &refused, Target::AllEnabled).await,
        EnqueueOutcome::QueueFull,
        "an enqueue past the pending quota"
    );
    let one = EnqueueOutcome::Enqueued { deliveries: 1 };
    assert_eq!(
        enqueue(outbox, &a, &kit.event(), Target::Only(d0)).await,
        one
    );
    // 5 pending: a test event is refused too.
    assert_eq!(
        enqueue(outbox, &a, &kit.event(), Target::Only(d1)).await,
        EnqueueOutcome::QueueFull,
        "a test event past the pending quota"
    );
    let outcome = send_test(outbox, &a, d1, kit.now, &mut kit.rng)
        .await
        .expect("send_test failed");
    assert_eq!(outcome, TestOutcome::QueueFull);
    let request = PublishRequest::new("conformance.event", "{}".to_owned()).expect("valid");
    let outcome = publish(outbox, &a, request, kit.now, &mut kit.rng)
        .await
        .expect("publish failed");
    assert_eq!(outcome, PublishOutcome::QueueFull);
    // Another tenant is not counted against this one's quota.
    kit.destinations(outbox, &b, 1).await;
    for _ in 0..KIT_QUOTAS.max_pending_deliveries {
        assert_eq!(
            enqueue(outbox, &b, &kit.event(), Target::AllEnabled).await,
            one
        );
    }
    // Nothing of the refused enqueues was stored.
    let now = at(kit.now, 1);
    let claimed = claim_own(outbox, &mut kit, now, &[&a]).await;
    assert_eq!(claimed.len(), 5, "a refused enqueue stored deliveries");
    assert!(
        claimed.iter().all(|c| c.event.event_id != refused.event_id),
        "a refused enqueue stored deliveries"
    );
    // A retry keeps its delivery pending; a delivered one makes room.
    let (retried, rest) = claimed.split_first().expect("five claimed");
    let report = kit.report(
        retried,
        failed(),
        now,
        NextStep::RetryAt(at(now, 60)),
        DisablePolicy::default(),
    );
    assert_eq!(
        complete(outbox, retried, report).await,
        CompleteOutcome::Recorded {
            disabled: None,
            retry_at: Some(at(now, 60))
        }
    );
    assert_eq!(
        enqueue(outbox, &a, &kit.event(), Target::Only(d0)).await,
        EnqueueOutcome::QueueFull,
        "a rescheduled delivery stopped counting"
    );
    let mut rest = rest.to_vec();
    for _ in 0..2 {
        let done = rest.pop().expect("four left");
        deliver(outbox, &mut kit, &done, now).await;
    }
    // 3 pending: the refused event fits now, under its own id (never
    // remembered).
    assert_eq!(
        enqueue(outbox, &a, &refused, Target::AllEnabled).await,
        two,
        "room made by finished deliveries"
    );
    for c in &rest {
        outbox.release(&c.lease).await.expect("release failed");
    }
    // 5 pending. Disabling d1 drops its unleased deliveries; removing d0
    // drops all of its.
    let mut off = get(outbox, &a, d1).await.expect("stored");
    let expected = off.version;
    off.version += 1;
    off.enabled = false;
    assert_eq!(
        replace(outbox, &a, expected, &off).await,
        ReplaceOutcome::Replaced
    );
    assert_eq!(remove(outbox, &a, d0).await, RemoveOutcome::Removed);
    let fresh = kit.destinations(outbox, &a, 1).await;
    let fresh = fresh[0].destination_id;
    for _ in 0..KIT_QUOTAS.max_pending_deliveries {
        assert_eq!(
            enqueue(outbox, &a, &kit.event(), Target::Only(fresh)).await,
            one,
            "room made by disabling and removing"
        );
    }
    assert_eq!(
        enqueue(outbox, &a, &kit.event(), Target::Only(fresh)).await,
        EnqueueOutcome::QueueFull
    );
    // An event that goes nowhere queues nothing, so is never refused.
    let mut lonely = get(outbox, &a, fresh).await.expect("stored");
    let expected = lonely.version;
    lonely.version += 1;
    lonely.enabled = false;
    assert_eq!(
        replace(outbox, &a, expected, &lonely).await,
        ReplaceOutcome::Replaced
    );
    let more = kit.destinations(outbox, &a, 1).await;
    let mut full = Vec::new();
    for _ in 0..KIT_QUOTAS.max_pending_deliveries {
        full.push(enqueue(outbox, &a, &kit.event(), Target::AllEnabled).await);
    }
    assert!(full.iter().all(|o| *o == one), "{full:?}");
    // Leased, they stay pending when their destination is disabled: the
    // tenant is full, with no enabled destination.
    let leased = claim_own(outbox, &mut kit, at(now, 3600), &[&a]).await;
    let mut quiet = get(outbox, &a, more[0].destination_id)
        .await
        .expect("stored");
    let expected = quiet.version;
    quiet.version += 1;
    quiet.enabled = false;
    assert_eq!(
        replace(outbox, &a, expected, &quiet).await,
        ReplaceOutcome::Replaced
    );
    assert_eq!(
        enqueue(outbox, &a, &kit.event(), Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 0 },
        "an event with no delivery was refused"
    );
    for c in &leased {
        outbox.release(&c.lease).await.expect("release failed");
    }
    for c in claim_own(outbox, &mut kit, at(now, 3600), &[&a, &b]).await {
        outbox.release(&c.lease).await.expect("release failed");
    }
}

/// Manual deliveries count against
/// [`KIT_QUOTAS`]`.max_pending_deliveries` as published ones do: a resend
/// that would queue one past it is `QueueFull` and writes nothing, while a
/// resend of a pending delivery still makes it due; a recover queues up to
/// the quota and says so (`QueueFull` with what it queued), and a recover
/// again once deliveries have drained queues the rest. Another tenant's
/// deliveries are not counted.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn manual_deliveries_within_the_pending_quota<O: EventLog>(outbox: &O) {
    let max = KIT_QUOTAS.max_pending_deliveries;
    let mut kit = Kit::new();
    let (a, b) = (kit.tenant(), kit.tenant());
    let dests = kit.destinations(outbox, &a, 2).await;
    let (d0, d1) = (dests[0].destination_id, dests[1].destination_id);
    let since = dests.iter().map(|d| d.created_at).max().expect("two");
    let mut events = Vec::new();
    for i in 0..max {
        let event = kit.event_at(at(since, u64::try_from(i).expect("small")));
        assert_eq!(
            enqueue(outbox, &a, &event, Target::Only(d1)).await,
            EnqueueOutcome::Enqueued { deliveries: 1 }
        );
        events.push(event.event_id);
    }
    // At the quota, every delivery to d1.
    let now = at(since, 60);
    assert_eq!(
        outbox
            .resend(&a, events[0], d0, now)
            .await
            .expect("resend failed"),
        ResendOutcome::QueueFull,
        "a resend past the pending quota"
    );
    assert_eq!(
        outbox
            .resend(&a, events[0], d1, now)
            .await
            .expect("resend failed"),
        ResendOutcome::AlreadyPending,
        "a resend of a pending delivery at the quota"
    );
    assert_eq!(
        outbox
            .recover(&a, d0, since, now)
            .await
            .expect("recover failed"),
        RecoverOutcome::QueueFull(0),
        "a recover at the quota"
    );
    // Another tenant's quota is its own.
    let theirs = kit.destinations(outbox, &b, 1).await;
    let event = kit.event();
    assert_eq!(
        enqueue(outbox, &b, &event, Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 1 }
    );
    let outcome = outbox
        .resend(&b, event.event_id, theirs[0].destination_id, now)
        .await
        .expect("resend failed");
    assert_eq!(outcome, ResendOutcome::AlreadyPending);
    // Nothing refused was stored: the five to d1 only.
    let claimed = claim_own(outbox, &mut kit, now, &[&a]).await;
    assert_eq!(
        claimed.len(),
        max,
        "a refused resend or recover stored a delivery"
    );
    assert!(
        claimed
            .iter()
            .all(|c| c.lease.delivery.destination_id == d1)
    );
    // Two delivered: room for two.
    for c in &claimed[max - 2..] {
        deliver(outbox, &mut kit, c, now).await;
    }
    let later = at(now, 1);
    assert_eq!(
        outbox
            .resend(&a, events[0], d0, later)
            .await
            .expect("resend failed"),
        ResendOutcome::Queued,
        "a resend with room"
    );
    assert_eq!(
        outbox
            .recover(&a, d0, since, later)
            .await
            .expect("recover failed"),
        RecoverOutcome::QueueFull(1),
        "a recover stops at the quota"
    );
    // Everything delivered: a recover again queues the rest.
    for c in &claimed[..max - 2] {
        deliver(outbox, &mut kit, c, later).await;
    }
    let manual = claim_own(outbox, &mut kit, at(later, 1), &[&a]).await;
    assert_eq!(manual.len(), 2, "the resent and the recovered delivery");
    for c in &manual {
        assert_eq!(c.lease.delivery.destination_id, d0);
        deliver(outbox, &mut kit, c, later).await;
    }
    assert_eq!(
        outbox
            .recover(&a, d0, since, at(later, 2))
            .await
            .expect("recover failed"),
        RecoverOutcome::Queued(max - 2),
        "a recover again queues the rest"
    );
    for c in claim_own(outbox, &mut kit, at(later, 3), &[&a, &b]).await {
        outbox.release(&c.lease).await.expect("release failed");
    }
}

/// Every quota property, one after another, on a store opened with
/// [`KIT_QUOTAS`].
///
/// # Panics
/// If the store violates a property or returns an error.
pub async fn quotas_run_all<O: Outbox>(outbox: &O) {
    destination_quota_per_tenant(outbox).await;
    concurrent_inserts_at_the_quota_store_one(outbox, 4).await;
    pending_quota_per_tenant(outbox).await;
}
