//! The conformance kit for [`EventLog`] implementations: one async function
//! per property, and [`events_run_all`].
//!
//! Like the outbox's, these claim deliveries of every tenant (and give back
//! the ones not theirs), and [`purge_deletes_old_attempts_and_finished_events`]
//! purges every tenant's data older than a year: run them one at a time, as
//! [`events_run_all`] does.
//!
//! ```
//! # #[cfg(feature = "memory")] {
//! use prets_destinations::{conformance, MemoryRepo};
//!
//! pollster::block_on(conformance::events::events_run_all(&MemoryRepo::new()));
//! # }
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use rand_core::Rng as _;

use super::outbox::{DELIVERED, at, attempts, claim_own, complete, deliver, enqueue, failed};
use super::{Kit, get, insert, replace};
use crate::delivery::{
    AttemptOutcome, Classification, CompleteOutcome, DeliveryState, DisablePolicy, DisabledReason,
    EnqueueOutcome, Event, EventCursor, EventDelivery, EventLog, EventType, FilterTypes, NextStep,
    PurgeCutoffs, RecoverOutcome, ResendOutcome, RetrySchedule, Target,
};
use crate::id::{DestinationId, EventId};
use crate::ops::plan_finish;
use crate::record::DestinationRecord;
use crate::repo::{InsertOutcome, ReplaceOutcome};
use crate::tenant::TenantId;
use crate::time::Timestamp;

impl Kit {
    fn typed_event(&mut self, event_type: &str, created_at: Timestamp) -> Event {
        let n = self.rng.next_u64();
        // Spacing and key order a parser would not keep: the payload must
        // come back byte for byte.
        Event::new(
            event_type,
            format!("{{ \"z\": 1,\n  \"n\" : \"{n:016x}\", \"a\":[1.50, 2e3] }}"),
            created_at,
            &mut self.rng,
        )
        .expect("a valid event")
    }
}

fn before(t: Timestamp, secs: u64) -> Timestamp {
    Timestamp::from_unix_millis(t.unix_millis().saturating_sub(secs * 1000))
        .expect("a time after 1970")
}

async fn list<O: EventLog>(
    outbox: &O,
    tenant: &TenantId,
    event_type: Option<&EventType>,
    cursor: Option<EventCursor>,
    limit: usize,
) -> Vec<Event> {
    outbox
        .list_events(tenant, event_type, cursor, limit)
        .await
        .expect("list_events failed")
}

async fn deliveries<O: EventLog>(outbox: &O, tenant: &TenantId, id: EventId) -> Vec<EventDelivery> {
    outbox
        .get_event(tenant, id)
        .await
        .expect("get_event failed")
        .expect("get_event: a retained event is missing")
        .deliveries
}

fn state_of(deliveries: &[EventDelivery], id: DestinationId) -> Option<DeliveryState> {
    deliveries
        .iter()
        .find(|d| d.destination_id == id)
        .map(|d| d.state)
}

async fn resend<O: EventLog>(
    outbox: &O,
    tenant: &TenantId,
    event: EventId,
    dest: DestinationId,
    now: Timestamp,
) -> ResendOutcome {
    outbox
        .resend(tenant, event, dest, now)
        .await
        .expect("resend failed")
}

async fn recover<O: EventLog>(
    outbox: &O,
    tenant: &TenantId,
    dest: DestinationId,
    since: Timestamp,
    now: Timestamp,
) -> RecoverOutcome {
    outbox
        .recover(tenant, dest, since, now)
        .await
        .expect("recover failed")
}

async fn disable<O: EventLog>(outbox: &O, tenant: &TenantId, record: &DestinationRecord) {
    let stored = get(outbox, tenant, record.destination_id)
        .await
        .expect("kept");
    let off = stored
        .disabled(DisabledReason::Manual, stored.updated_at)
        .expect("version");
    assert_eq!(
        replace(outbox, tenant, stored.version, &off).await,
        ReplaceOutcome::Replaced
    );
}

async fn enable<O: EventLog>(outbox: &O, tenant: &TenantId, id: DestinationId, now: Timestamp) {
    let stored = get(outbox, tenant, id).await.expect("kept");
    let on = stored.reenabled(now).expect("version");
    assert_eq!(
        replace(outbox, tenant, stored.version, &on).await,
        ReplaceOutcome::Replaced
    );
}

/// Events stay after their deliveries finish (and with none at all), and
/// are listed newest first by `(created_at, event_id)` descending, exactly
/// as published (payload byte for byte); the cursor walks every event once
/// in pages of at most the limit; the type filter keeps one type; another
/// tenant sees none of them.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn events_are_retained_and_listed_newest_first<O: EventLog>(outbox: &O) {
    let mut kit = Kit::new();
    let (tenant, other) = (kit.tenant(), kit.tenant());
    let base = kit.now;
    let mut made = Vec::new();
    // Without a destination: kept all the same.
    let lone = kit.typed_event("invoice.paid", base);
    assert_eq!(
        enqueue(outbox, &tenant, &lone, Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 0 }
    );
    made.push(lone);
    kit.destinations(outbox, &tenant, 1).await;
    for i in 0..7 {
        let t = if i % 2 == 0 {
            "invoice.paid"
        } else {
            "user.created"
        };
        // Two share each creation time: the id breaks the tie.
        let e = kit.typed_event(t, at(base, i / 2));
        assert_eq!(
            enqueue(outbox, &tenant, &e, Target::AllEnabled).await,
            EnqueueOutcome::Enqueued { deliveries: 1 }
        );
        made.push(e);
    }
    // Every delivery succeeds: the events stay.
    let now = at(base, 10);
    for c in claim_own(outbox, &mut kit, now, &[&tenant]).await {
        deliver(outbox, &mut kit, &c, now).await;
    }
    made.sort_by_key(|e| core::cmp::Reverse((e.created_at, e.event_id)));
    assert_eq!(
        list(outbox, &tenant, None, None, 100).await,
        made,
        "list_events: not every event, newest first, as published"
    );
    let mut walked = Vec::new();
    let mut cursor = None;
    loop {
        let page = list(outbox, &tenant, None, cursor, 3).await;
        assert!(page.len() <= 3, "list_events: more than the limit");
        let Some(last) = page.last() else { break };
        cursor = Some(EventCursor::after(last));
        walked.extend(page);
    }
    assert_eq!(walked, made, "list_events: the cursor repeated or skipped");
    let cursor: EventCursor = EventCursor::after(&made[2])
        .to_string()
        .parse()
        .expect("a cursor's text reads back");
    assert_eq!(
        list(outbox, &tenant, None, Some(cursor), 100).await,
        made[3..],
        "list_events: a cursor read back from its text"
    );
    let paid: EventType = "invoice.paid".parse().expect("type");
    let want: Vec<Event> = made
        .iter()
        .filter(|e| e.event_type == paid)
        .cloned()
        .collect();
    assert_eq!(
        list(outbox, &tenant, Some(&paid), None, 100).await,
        want,
        "list_events: the type filter"
    );
    assert_eq!(
        list(
            outbox,
            &tenant,
            Some(&paid),
            Some(EventCursor::after(&want[0])),
            2
        )
        .await,
        want[1..3],
        "list_events: the type filter with a cursor"
    );
    let none: EventType = "no.such.type".parse().expect("type");
    assert!(
        list(outbox, &tenant, Some(&none), None, 100)
            .await
            .is_empty()
    );
    assert!(
        list(outbox, &other, None, None, 100).await.is_empty(),
        "list_events: another tenant sees the events"
    );
    for e in &made {
        let got = outbox
            .get_event(&tenant, e.event_id)
            .await
            .expect("get_event failed")
            .expect("get_event: a retained event is missing");
        assert_eq!(&got.event, e, "get_event: not the event as published");
        assert_eq!(got.event.payload.get(), e.payload.get());
        assert!(
            outbox
                .get_event(&other, e.event_id)
                .await
                .expect("get_event failed")
                .is_none(),
            "get_event: another tenant reads the event"
        );
    }
    let unknown = EventId::generate(base, &mut kit.rng);
    assert!(
        outbox
            .get_event(&tenant, unknown)
            .await
            .expect("get_event failed")
            .is_none()
    );
}

/// `get_event` tells each destination's state: delivered (a success, even
/// after failures), failed (no success, no more attempts), pending (with
/// its due time and attempt count), dropped (disabled while it waited, with
/// no attempt; or disabled now), and names no destination the event never
/// went to.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn get_event_tells_each_delivery_state<O: EventLog>(outbox: &O) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let dests = kit.destinations(outbox, &tenant, 4).await;
    let ids: Vec<DestinationId> = dests.iter().map(|d| d.destination_id).collect();
    let event = kit.typed_event("order.placed", kit.now);
    assert_eq!(
        enqueue(outbox, &tenant, &event, Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 4 }
    );
    let d = deliveries(outbox, &tenant, event.event_id).await;
    assert_eq!(d.len(), 4, "get_event: one entry per destination");
    for entry in &d {
        assert_eq!(
            entry.state,
            DeliveryState::Pending {
                next_attempt_at: event.created_at,
                leased: false,
                manual: false
            }
        );
        assert_eq!(entry.attempts, 0);
    }
    // Dropped: disabled while it waits.
    disable(outbox, &tenant, &dests[3]).await;
    let now = at(kit.now, 1);
    let retry = at(now, 60);
    let claimed = claim_own(outbox, &mut kit, now, &[&tenant]).await;
    assert_eq!(claimed.len(), 3);
    for c in claimed {
        let dest = c.lease.delivery.destination_id;
        let (class, next) = if dest == ids[0] {
            (DELIVERED, NextStep::Delivered)
        } else if dest == ids[1] {
            (failed(), NextStep::Failed)
        } else {
            (failed(), NextStep::RetryAt(retry))
        };
        let report = kit.report(&c, class, now, next, DisablePolicy::default());
        assert_eq!(
            complete(outbox, &c, report).await,
            CompleteOutcome::Recorded {
                disabled: None,
                retry_at: super::outbox::retry_of(next)
            }
        );
    }
    let d = deliveries(outbox, &tenant, event.event_id).await;
    let ids_seen: BTreeSet<DestinationId> = d.iter().map(|e| e.destination_id).collect();
    assert_eq!(ids_seen, ids.iter().copied().collect());
    assert_eq!(state_of(&d, ids[0]), Some(DeliveryState::Delivered));
    assert_eq!(state_of(&d, ids[1]), Some(DeliveryState::Failed));
    assert_eq!(
        state_of(&d, ids[2]),
        Some(DeliveryState::Pending {
            next_attempt_at: retry,
            leased: false,
            manual: false
        })
    );
    assert_eq!(
        state_of(&d, ids[3]),
        Some(DeliveryState::Dropped),
        "get_event: a delivery dropped by a disable"
    );
    for entry in &d {
        let want = if entry.destination_id == ids[3] { 0 } else { 1 };
        assert_eq!(entry.attempts, want, "get_event: the attempt count");
        assert_eq!(entry.last_attempt_at, (want == 1).then_some(now));
    }
    // A destination created after the event is not named.
    kit.destinations(outbox, &tenant, 1).await;
    assert_eq!(deliveries(outbox, &tenant, event.event_id).await.len(), 4);
    // Enabled again, the dropped one still reads dropped (nothing was
    // attempted); the pending one, disabled, drops.
    enable(outbox, &tenant, ids[3], now).await;
    disable(outbox, &tenant, &dests[2]).await;
    let d = deliveries(outbox, &tenant, event.event_id).await;
    assert_eq!(state_of(&d, ids[3]), Some(DeliveryState::Dropped));
    assert_eq!(state_of(&d, ids[2]), Some(DeliveryState::Dropped));
}

/// `resend` queues one more delivery of the pair, due at once and manual,
/// whatever the earlier outcome; its attempt is recorded `manual`; a
/// resend while one is pending makes that one due and manual instead of a
/// second; unknown events and destinations, disabled destinations and
/// another tenant's event are refused with nothing queued.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn resend_queues_one_manual_delivery<O: EventLog>(outbox: &O) {
    let mut kit = Kit::new();
    let (tenant, other) = (kit.tenant(), kit.tenant());
    let dests = kit.destinations(outbox, &tenant, 2).await;
    let (dest, off) = (dests[0].destination_id, dests[1].destination_id);
    let event = kit.typed_event("invoice.paid", kit.now);
    assert_eq!(
        enqueue(outbox, &tenant, &event, Target::Only(dest)).await,
        EnqueueOutcome::Enqueued { deliveries: 1 }
    );
    let mut now = at(kit.now, 1);
    let c = claim_own(outbox, &mut kit, now, &[&tenant]).await.remove(0);
    let report = kit.report(
        &c,
        DELIVERED,
        now,
        NextStep::Delivered,
        DisablePolicy::default(),
    );
    assert!(!report.attempt.manual);
    assert!(matches!(
        complete(outbox, &c, report).await,
        CompleteOutcome::Recorded { .. }
    ));
    now = at(now, 5);
    assert_eq!(
        resend(outbox, &tenant, event.event_id, dest, now).await,
        ResendOutcome::Queued,
        "resend: a delivered event is sent again"
    );
    let d = deliveries(outbox, &tenant, event.event_id).await;
    assert_eq!(
        state_of(&d, dest),
        Some(DeliveryState::Pending {
            next_attempt_at: now,
            leased: false,
            manual: true
        })
    );
    // Pending already (failed once, due in an hour): made due now.
    let c = claim_own(outbox, &mut kit, now, &[&tenant]).await;
    assert_eq!(c.len(), 1, "resend: not exactly one delivery");
    let c = c.into_iter().next().expect("one");
    assert_eq!(
        c.attempt, 1,
        "resend: a manual delivery starts at attempt 1"
    );
    let later = at(now, 3600);
    let report = kit.report(
        &c,
        failed(),
        now,
        NextStep::RetryAt(later),
        DisablePolicy::default(),
    );
    assert!(matches!(
        complete(outbox, &c, report).await,
        CompleteOutcome::Recorded { .. }
    ));
    let logged = attempts(outbox, &tenant, dest, None, 10).await;
    assert_eq!(logged.len(), 2);
    assert!(logged[0].manual, "resend: its attempt is not marked manual");
    assert!(!logged[1].manual, "resend: the first attempt became manual");
    now = at(now, 2);
    assert_eq!(
        resend(outbox, &tenant, event.event_id, dest, now).await,
        ResendOutcome::AlreadyPending
    );
    assert_eq!(
        resend(outbox, &tenant, event.event_id, dest, now).await,
        ResendOutcome::AlreadyPending
    );
    let c = claim_own(outbox, &mut kit, now, &[&tenant]).await;
    assert_eq!(c.len(), 1, "resend: a second delivery of a pending pair");
    assert_eq!(
        c[0].attempt, 2,
        "resend: a pending delivery keeps its count"
    );
    for c in &c {
        outbox.release(&c.lease).await.expect("release failed");
    }
    // Refusals.
    let unknown = EventId::generate(now, &mut kit.rng);
    assert_eq!(
        resend(outbox, &tenant, unknown, dest, now).await,
        ResendOutcome::EventNotFound
    );
    assert_eq!(
        resend(outbox, &other, event.event_id, dest, now).await,
        ResendOutcome::EventNotFound,
        "resend: another tenant's event"
    );
    let nobody = DestinationId::generate(now, &mut kit.rng);
    assert_eq!(
        resend(outbox, &tenant, event.event_id, nobody, now).await,
        ResendOutcome::DestinationNotFound
    );
    disable(outbox, &tenant, &dests[1]).await;
    assert_eq!(
        resend(outbox, &tenant, event.event_id, off, now).await,
        ResendOutcome::Disabled
    );
    let theirs = kit.destinations(outbox, &other, 1).await.remove(0);
    assert_eq!(
        resend(outbox, &tenant, event.event_id, theirs.destination_id, now).await,
        ResendOutcome::DestinationNotFound,
        "resend: to another tenant's destination"
    );
    let left = claim_own(outbox, &mut kit, at(now, 7200), &[&tenant, &other]).await;
    assert_eq!(left.len(), 1, "resend: a refusal queued something");
    for c in &left {
        outbox.release(&c.lease).await.expect("release failed");
    }
}

/// A destination disabled by a `410` loses the deliveries waiting behind
/// it; enabled again, `recover` queues every event since the time given
/// (not before the destination's creation) that it did not receive, that
/// matches its filter and that is not pending: the failed one and the
/// dropped ones, not the delivered one; their attempts are `manual`. A
/// second recover queues nothing; a disabled destination is refused.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn recover_requeues_what_a_disable_dropped<O: EventLog>(outbox: &O) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let mut record = kit.plan(&tenant, None).record;
    record.filter_types = FilterTypes::new(["invoice.*"]).expect("valid filter");
    let dest = record.destination_id;
    let created = record.created_at;
    // Before the destination existed (enqueued to nobody).
    let old = kit.typed_event("invoice.paid", before(created, 60));
    assert_eq!(
        enqueue(outbox, &tenant, &old, Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 0 }
    );
    assert_eq!(
        insert(outbox, &tenant, &record).await,
        InsertOutcome::Inserted
    );
    let mut events = Vec::new();
    for i in 0..4 {
        let e = kit.typed_event("invoice.paid", at(created, i));
        assert_eq!(
            enqueue(outbox, &tenant, &e, Target::AllEnabled).await,
            EnqueueOutcome::Enqueued { deliveries: 1 }
        );
        events.push(e);
    }
    // Another type: not the filter's.
    let other_type = kit.typed_event("user.created", at(created, 1));
    assert_eq!(
        enqueue(outbox, &tenant, &other_type, Target::Only(dest)).await,
        EnqueueOutcome::Enqueued { deliveries: 1 }
    );
    let now = at(created, 10);
    let mut claimed = claim_own(outbox, &mut kit, now, &[&tenant]).await;
    assert_eq!(claimed.len(), 5);
    claimed.sort_by_key(|c| (c.event.created_at, c.event.event_id));
    let delivered = events[0].event_id;
    let gone = claimed
        .iter()
        .position(|c| c.event.event_id == events[1].event_id)
        .expect("claimed");
    // The first delivered, the second gets a 410; the rest were leased and
    // are given back: the disable then dropped them.
    for (i, c) in claimed.iter().enumerate() {
        if c.event.event_id == delivered {
            let report = kit.report(
                c,
                DELIVERED,
                now,
                NextStep::Delivered,
                DisablePolicy::default(),
            );
            assert!(matches!(
                complete(outbox, c, report).await,
                CompleteOutcome::Recorded { .. }
            ));
        } else if i != gone {
            outbox.release(&c.lease).await.expect("release failed");
        }
    }
    let report = plan_finish(
        &claimed[gone],
        &Classification::Gone,
        now,
        Duration::from_millis(5),
        &RetrySchedule::default(),
        DisablePolicy::default(),
        &mut kit.rng,
    );
    assert_eq!(
        complete(outbox, &claimed[gone], report).await,
        CompleteOutcome::Recorded {
            disabled: Some(DisabledReason::Gone),
            retry_at: None
        }
    );
    for e in &events[2..] {
        let d = deliveries(outbox, &tenant, e.event_id).await;
        assert_eq!(state_of(&d, dest), Some(DeliveryState::Dropped));
    }
    assert_eq!(
        recover(outbox, &tenant, dest, created, now).await,
        RecoverOutcome::Disabled,
        "recover: a disabled destination"
    );
    enable(outbox, &tenant, dest, now).await;
    let nobody = DestinationId::generate(now, &mut kit.rng);
    assert_eq!(
        recover(outbox, &tenant, nobody, created, now).await,
        RecoverOutcome::NotFound
    );
    let other = kit.tenant();
    assert_eq!(
        recover(outbox, &other, dest, created, now).await,
        RecoverOutcome::NotFound,
        "recover: another tenant's destination"
    );
    // Since before the destination's creation: the old event stays out.
    let later = at(now, 1);
    assert_eq!(
        recover(outbox, &tenant, dest, before(created, 3600), later).await,
        RecoverOutcome::Queued(3),
        "recover: not the failed one and the two dropped ones"
    );
    assert_eq!(
        recover(outbox, &tenant, dest, before(created, 3600), later).await,
        RecoverOutcome::Queued(0),
        "recover: queued again what is pending"
    );
    let again = claim_own(outbox, &mut kit, later, &[&tenant]).await;
    let got: BTreeSet<EventId> = again.iter().map(|c| c.event.event_id).collect();
    let want: BTreeSet<EventId> = events[1..].iter().map(|e| e.event_id).collect();
    assert_eq!(got, want, "recover: not the events the destination missed");
    for c in &again {
        assert_eq!(c.attempt, 1);
        let report = kit.report(
            c,
            DELIVERED,
            later,
            NextStep::Delivered,
            DisablePolicy::default(),
        );
        assert!(matches!(
            complete(outbox, c, report).await,
            CompleteOutcome::Recorded { .. }
        ));
    }
    let logged = attempts(outbox, &tenant, dest, None, 10).await;
    assert_eq!(logged.len(), 5);
    for a in &logged {
        assert_eq!(
            a.manual,
            want.contains(&a.event_id) && a.outcome == AttemptOutcome::Succeeded,
            "recover: the manual mark"
        );
    }
    for e in &events {
        let d = deliveries(outbox, &tenant, e.event_id).await;
        assert_eq!(state_of(&d, dest), Some(DeliveryState::Delivered));
    }
    // Since a time: only from there.
    let e = kit.typed_event("invoice.sent", at(created, 20));
    assert_eq!(
        enqueue(outbox, &tenant, &e, Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 1 }
    );
    disable(outbox, &tenant, &record).await;
    enable(outbox, &tenant, dest, later).await;
    assert_eq!(
        recover(outbox, &tenant, dest, at(created, 21), later).await,
        RecoverOutcome::Queued(0)
    );
    assert_eq!(
        recover(outbox, &tenant, dest, at(created, 20), later).await,
        RecoverOutcome::Queued(1)
    );
    for c in claim_own(outbox, &mut kit, later, &[&tenant]).await {
        outbox.release(&c.lease).await.expect("release failed");
    }
}

/// `purge` deletes, oldest first and at most `batch` of each at a time,
/// attempts that started before the attempt cutoff and events created
/// before the event cutoff that have no pending delivery; it keeps events
/// with a pending delivery and everything newer; a loop ends with an empty
/// purge.
///
/// # Panics
/// If the store violates the property or returns an error.
pub async fn purge_deletes_old_attempts_and_finished_events<O: EventLog>(outbox: &O) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let dest = kit.destinations(outbox, &tenant, 1).await.remove(0);
    let year = 366 * 86_400;
    let long_ago = before(kit.now, 2 * year);
    let mut old = Vec::new();
    for i in 0..5 {
        let e = kit.typed_event("old.event", at(long_ago, i));
        assert_eq!(
            enqueue(outbox, &tenant, &e, Target::AllEnabled).await,
            EnqueueOutcome::Enqueued { deliveries: 1 }
        );
        old.push(e);
    }
    // All five attempted long ago: four done, one pending still.
    let then = at(long_ago, 10);
    let claimed = claim_own(outbox, &mut kit, then, &[&tenant]).await;
    assert_eq!(claimed.len(), 5);
    let pending_one = old[2].event_id;
    for c in &claimed {
        let report = if c.event.event_id == pending_one {
            kit.report(
                c,
                failed(),
                then,
                NextStep::RetryAt(at(kit.now, 86_400)),
                DisablePolicy::default(),
            )
        } else {
            kit.report(
                c,
                DELIVERED,
                then,
                NextStep::Delivered,
                DisablePolicy::default(),
            )
        };
        assert!(matches!(
            complete(outbox, c, report).await,
            CompleteOutcome::Recorded { .. }
        ));
    }
    let recent = kit.typed_event("new.event", kit.now);
    assert_eq!(
        enqueue(outbox, &tenant, &recent, Target::AllEnabled).await,
        EnqueueOutcome::Enqueued { deliveries: 1 }
    );
    let cutoffs = PurgeCutoffs {
        attempts_before: before(kit.now, year),
        events_before: before(kit.now, year),
    };
    let mut total = (0, 0);
    loop {
        let purged = outbox.purge(cutoffs, 2).await.expect("purge failed");
        assert!(
            purged.attempts <= 2 && purged.events <= 2,
            "purge: more than the batch"
        );
        if purged.is_empty() {
            break;
        }
        total.0 += purged.attempts;
        total.1 += purged.events;
    }
    assert!(total.0 >= 5 && total.1 >= 4, "purge: too little deleted");
    assert!(
        attempts(outbox, &tenant, dest.destination_id, None, 100)
            .await
            .is_empty(),
        "purge: old attempts kept"
    );
    let left: Vec<EventId> = list(outbox, &tenant, None, None, 100)
        .await
        .iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(
        left,
        vec![recent.event_id, pending_one],
        "purge: not exactly the finished old events deleted"
    );
    for e in &old {
        let kept = outbox
            .get_event(&tenant, e.event_id)
            .await
            .expect("get_event failed");
        assert_eq!(kept.is_some(), e.event_id == pending_one);
    }
    let end = at(kit.now, 2 * 86_400);
    for c in claim_own(outbox, &mut kit, end, &[&tenant]).await {
        outbox.release(&c.lease).await.expect("release failed");
    }
}

/// Every event-log property, one after another, and the outbox's
/// properties of forgotten event ids (which purge events to forget them).
///
/// # Panics
/// If the store violates a property or returns an error.
pub async fn events_run_all<O: EventLog>(outbox: &O) {
    events_are_retained_and_listed_newest_first(outbox).await;
    get_event_tells_each_delivery_state(outbox).await;
    resend_queues_one_manual_delivery(outbox).await;
    recover_requeues_what_a_disable_dropped(outbox).await;
    purge_deletes_old_attempts_and_finished_events(outbox).await;
    super::outbox::expired_event_ids_are_forgotten(outbox).await;
    super::outbox::a_busy_tenant_forgets_only_its_own_ids(outbox).await;
}
