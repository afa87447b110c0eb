//! `PgRepo` as an `Outbox`: the outbox conformance kit, two nodes (two
//! pools) claiming from one database, a dead node's lease taken over, events
//! kept after their last delivery (also one in flight at a disable), a
//! schema-2 database migrated, and a delivered attempt not waiting for a
//! publish reading its destination.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use prets_destinations::delivery::{
    AttemptId, AttemptMeta, AttemptRecord, AttemptReport, Claimed, Classification, CompleteOutcome,
    DisablePolicy, EnqueueOutcome, Failure, FailureCause, LeaseRequest, LeaseToken, Outbox, Target,
};
use prets_destinations::delivery::{Event, ExistingEvent, NextStep, Payload};
use prets_destinations::ops::plan_create;
use prets_destinations::{
    CreateDestinationRequest, DestinationRecord, DestinationRepo, InsertOutcome, KeyId,
    RemoveOutcome, SealingKey, TenantId, Timestamp, conformance,
};
use prets_destinations_postgres::test_support::{TestDb, version_before};
use prets_destinations_postgres::{PgRepo, schema_version};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

pub(crate) fn t0() -> Timestamp {
    Timestamp::from_unix_seconds(1_700_000_000).unwrap()
}

pub(crate) fn at(secs: u64) -> Timestamp {
    t0().checked_add(Duration::from_secs(secs)).unwrap()
}

pub(crate) async fn destinations(
    repo: &PgRepo,
    tenant: &TenantId,
    n: usize,
    rng: &mut ChaCha20Rng,
) -> Vec<DestinationRecord> {
    let sealer = SealingKey::new(KeyId::new(1), &[9; 32]);
    let mut out = Vec::new();
    for i in 0..n {
        let plan = plan_create(
            CreateDestinationRequest::new(format!("d{i}"), "https://example.com/hook"),
            tenant,
            t0(),
            rng,
            &sealer,
        )
        .unwrap();
        assert_eq!(
            repo.insert(tenant, &plan.record).await.unwrap(),
            InsertOutcome::Inserted
        );
        out.push(plan.record);
    }
    out
}

fn event(n: u32, rng: &mut ChaCha20Rng) -> Event {
    Event::new("test.event", format!("{{\"n\": {n}}}"), t0(), rng).unwrap()
}

pub(crate) fn lease(rng: &mut ChaCha20Rng) -> LeaseRequest {
    LeaseRequest {
        token: LeaseToken::generate(rng),
        duration: Duration::from_secs(60),
    }
}

pub(crate) fn report(
    c: &Claimed,
    started_at: Timestamp,
    next: NextStep,
    rng: &mut ChaCha20Rng,
) -> AttemptReport {
    let classification = match next {
        NextStep::Delivered => Classification::Delivered { status: 204 },
        _ => Classification::Failed(Failure {
            cause: FailureCause::Status(503),
            retry_after: None,
        }),
    };
    let meta = AttemptMeta {
        attempt_id: AttemptId::generate(started_at, rng),
        event_id: c.event.event_id,
        destination_id: c.lease.delivery.destination_id,
        attempt: c.attempt,
        started_at,
        duration_ms: 12,
    };
    AttemptReport {
        attempt: AttemptRecord::new(meta, &classification, &next),
        next,
        disable: DisablePolicy::default(),
    }
}

async fn count(db: &TestDb, table: &str) -> i64 {
    db.client()
        .await
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_repo_passes_the_outbox_conformance_kit() {
    let db = TestDb::new();
    let repo = db.repo().await;
    conformance::outbox::outbox_run_all(&repo).await;
    conformance::outbox::lease_exclusivity_under_concurrent_claims(&repo, 8).await;
    conformance::outbox::concurrent_enqueues_of_one_id_store_one(&repo, 16).await;
}

/// Two nodes (two repos, two pools) claim from one database at once, in
/// small batches, until nothing is left: every delivery is handed out
/// exactly once, over both nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_claiming_at_once_never_share_a_delivery() {
    let db = TestDb::new();
    let a = Arc::new(db.repo().await);
    let b = Arc::new(db.repo().await);
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let tenant: TenantId = "org_nodes".parse().unwrap();
    let dests = destinations(&a, &tenant, 4, &mut rng).await;
    let mut expected = BTreeSet::new();
    for n in 0..30 {
        let e = event(n, &mut rng);
        let node = if n % 2 == 0 { &a } else { &b };
        assert_eq!(
            node.enqueue(&tenant, &e, Target::AllEnabled).await.unwrap(),
            EnqueueOutcome::Enqueued { deliveries: 4 }
        );
        for d in &dests {
            expected.insert((e.event_id, d.destination_id));
        }
    }
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let node = Arc::clone(if w % 2 == 0 { &a } else { &b });
            let request = lease(&mut rng);
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = node.claim(at(1), 3.into(), request).await.unwrap();
                    if batch.is_empty() {
                        return (request.token, got);
                    }
                    got.extend(batch);
                }
            })
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut per_node = [0usize; 2];
    for (w, worker) in workers.into_iter().enumerate() {
        let (token, got) = worker.await.unwrap();
        per_node[w % 2] += got.len();
        for c in got {
            assert_eq!(c.lease.token, token);
            assert_eq!(c.lease.expires_at, at(61));
            assert_eq!(c.attempt, 1);
            assert!(
                seen.insert((c.event.event_id, c.lease.delivery.destination_id)),
                "two claims returned one delivery"
            );
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(per_node.iter().sum::<usize>(), 120);
    // Both nodes' leases are live: nothing is offered before they expire.
    assert!(
        a.claim(at(60), 100.into(), lease(&mut rng))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        b.claim(at(60), 100.into(), lease(&mut rng))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A node claims a delivery and dies (never completes, never renews): the
/// other node gets it once the lease has expired, as the same attempt, and
/// the dead node's lease can no longer renew, release or complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_lease_is_claimed_by_the_other_after_expiry() {
    let db = TestDb::new();
    let a = db.repo().await;
    let b = db.repo().await;
    let mut rng = ChaCha20Rng::seed_from_u64(22);
    let tenant: TenantId = "org_dead".parse().unwrap();
    destinations(&a, &tenant, 1, &mut rng).await;
    let e = event(1, &mut rng);
    assert_eq!(
        a.enqueue(&tenant, &e, Target::AllEnabled).await.unwrap(),
        EnqueueOutcome::Enqueued { deliveries: 1 }
    );
    let dead = a.claim(at(1), 10.into(), lease(&mut rng)).await.unwrap();
    assert_eq!(dead.len(), 1);
    let dead = &dead[0];
    assert_eq!(dead.lease.expires_at, at(61));
    // Before expiry (and at one millisecond before), the other node gets nothing.
    assert!(
        b.claim(at(30), 10.into(), lease(&mut rng))
            .await
            .unwrap()
            .is_empty()
    );
    let just_before = Timestamp::from_unix_millis(at(61).unix_millis() - 1).unwrap();
    assert!(
        b.claim(just_before, 10.into(), lease(&mut rng))
            .await
            .unwrap()
            .is_empty()
    );
    let taken = b.claim(at(61), 10.into(), lease(&mut rng)).await.unwrap();
    assert_eq!(taken.len(), 1, "the expired lease was not offered again");
    let taken = &taken[0];
    assert_eq!(taken.lease.delivery, dead.lease.delivery);
    assert_eq!(taken.event, e);
    assert_eq!(taken.attempt, 1);
    assert_ne!(taken.lease.token, dead.lease.token);
    // The dead node's lease is lost for good.
    assert!(!a.renew(&dead.lease, at(200)).await.unwrap());
    assert!(!a.release(&dead.lease).await.unwrap());
    assert_eq!(
        a.complete(
            &dead.lease,
            report(dead, at(61), NextStep::Delivered, &mut rng)
        )
        .await
        .unwrap(),
        CompleteOutcome::LeaseLost
    );
    assert!(
        a.list_attempts(&tenant, dead.lease.delivery.destination_id, None, 10)
            .await
            .unwrap()
            .is_empty(),
        "a lost lease wrote an attempt"
    );
    // The live one renews across the old expiry and completes.
    assert!(b.renew(&taken.lease, at(400)).await.unwrap());
    assert!(
        a.claim(at(300), 10.into(), lease(&mut rng))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        b.complete(
            &taken.lease,
            report(taken, at(70), NextStep::Delivered, &mut rng)
        )
        .await
        .unwrap(),
        CompleteOutcome::Recorded {
            disabled: None,
            retry_at: None
        }
    );
    assert!(
        a.claim(at(10_000), 10.into(), lease(&mut rng))
            .await
            .unwrap()
            .is_empty()
    );
}

/// An event row stays after its last delivery, whether that is delivered,
/// failed, dropped by disabling or by removing its destination, and is
/// stored even with no delivery; deliveries and attempts go with their
/// destination, and a disable's drop is remembered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stay_after_their_last_delivery() {
    let db = TestDb::new();
    let repo = db.repo().await;
    let mut rng = ChaCha20Rng::seed_from_u64(23);
    let tenant: TenantId = "org_events".parse().unwrap();
    let dests = destinations(&repo, &tenant, 2, &mut rng).await;
    let e = event(1, &mut rng);
    assert_eq!(
        repo.enqueue(&tenant, &e, Target::AllEnabled).await.unwrap(),
        EnqueueOutcome::Enqueued { deliveries: 2 }
    );
    assert_eq!(
        (count(&db, "events").await, count(&db, "deliveries").await),
        (1, 2)
    );
    let claimed = repo.claim(at(1), 10.into(), lease(&mut rng)).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let first = &claimed[0];
    assert_eq!(
        repo.complete(
            &first.lease,
            report(first, at(1), NextStep::Delivered, &mut rng)
        )
        .await
        .unwrap(),
        CompleteOutcome::Recorded {
            disabled: None,
            retry_at: None
        }
    );
    assert_eq!(
        (count(&db, "events").await, count(&db, "deliveries").await),
        (1, 1)
    );
    let second = &claimed[1];
    assert_eq!(
        repo.complete(
            &second.lease,
            report(second, at(1), NextStep::Failed, &mut rng)
        )
        .await
        .unwrap(),
        CompleteOutcome::Recorded {
            disabled: None,
            retry_at: None
        }
    );
    assert_eq!(
        (count(&db, "events").await, count(&db, "deliveries").await),
        (1, 0)
    );
    assert_eq!(count(&db, "attempts").await, 2);

    // Removing a destination takes its pending deliveries and its
    // attempts; the event stays.
    let e2 = event(2, &mut rng);
    assert_eq!(
        repo.enqueue(&tenant, &e2, Target::AllEnabled)
            .await
            .unwrap(),
        EnqueueOutcome::Enqueued { deliveries: 2 }
    );
    assert_eq!(
        repo.remove(&tenant, dests[0].destination_id).await.unwrap(),
        RemoveOutcome::Removed
    );
    assert_eq!(
        (count(&db, "events").await, count(&db, "deliveries").await),
        (2, 1)
    );
    assert_eq!(count(&db, "attempts").await, 1);
    // Disabling the other drops its delivery, remembered as dropped.
    let stored = repo
        .get(&tenant, dests[1].destination_id)
        .await
        .unwrap()
        .unwrap();
    let off = stored
        .disabled(prets_destinations::delivery::DisabledReason::Manual, at(5))
        .unwrap();
    assert_eq!(
        repo.replace(&tenant, stored.version, &off).await.unwrap(),
        prets_destinations::ReplaceOutcome::Replaced
    );
    assert_eq!(
        (count(&db, "events").await, count(&db, "deliveries").await),
        (2, 0)
    );
    assert_eq!(count(&db, "dropped_deliveries").await, 1);
    // No deliveries: the event is stored all the same.
    assert_eq!(
        repo.enqueue(&tenant, &event(3, &mut rng), Target::AllEnabled)
            .await
            .unwrap(),
        EnqueueOutcome::Enqueued { deliveries: 0 }
    );
    assert_eq!(count(&db, "events").await, 3);
}

/// Deliveries in flight when their destination is disabled: one released
/// while disabled is deleted, one whose holder vanished is deleted by the
/// claim that leases it after its lease ran out, a completed one goes as
/// any other; each is remembered as dropped, and the events stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_in_flight_at_a_disable_are_remembered_as_dropped() {
    let db = TestDb::new();
    let repo = db.repo().await;
    let mut rng = ChaCha20Rng::seed_from_u64(25);
    let tenant: TenantId = "org_in_flight".parse().unwrap();
    let dest = destinations(&repo, &tenant, 1, &mut rng).await.remove(0);
    for n in 0..3 {
        assert_eq!(
            repo.enqueue(&tenant, &event(n, &mut rng), Target::AllEnabled)
                .await
                .unwrap(),
            EnqueueOutcome::Enqueued { deliveries: 1 }
        );
    }
    let claimed = repo.claim(at(1), 10.into(), lease(&mut rng)).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let off = dest
        .disabled(prets_destinations::delivery::DisabledReason::Manual, at(2))
        .unwrap();
    assert_eq!(
        repo.replace(&tenant, dest.version, &off).await.unwrap(),
        prets_destinations::ReplaceOutcome::Replaced
    );
    assert_eq!(
        (count(&db, "events").await, count(&db, "deliveries").await),
        (3, 3),
        "the deliveries in flight were dropped by the disable"
    );
    assert_eq!(
        repo.complete(
            &claimed[0].lease,
            report(&claimed[0], at(3), NextStep::RetryAt(at(30)), &mut rng)
        )
        .await
        .unwrap(),
        CompleteOutcome::Recorded {
            disabled: None,
            retry_at: None
        }
    );
    assert!(repo.release(&claimed[1].lease).await.unwrap());
    assert_eq!(
        (count(&db, "events").await, count(&db, "deliveries").await),
        (3, 1)
    );
    assert_eq!(count(&db, "dropped_deliveries").await, 2);
    assert!(
        repo.claim(at(1000), 10.into(), lease(&mut rng))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        (count(&db, "events").await, count(&db, "deliveries").await),
        (3, 0)
    );
    assert_eq!(count(&db, "attempts").await, 1);
    assert_eq!(count(&db, "dropped_deliveries").await, 3);
}

/// Concurrent completions of one event's deliveries (each the last but one
/// when it starts) all commit, and every event stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_last_completions_all_commit_and_keep_their_events() {
    let db = TestDb::new();
    let repo = Arc::new(db.repo().await);
    let mut rng = ChaCha20Rng::seed_from_u64(24);
    let tenant: TenantId = "org_race_events".parse().unwrap();
    destinations(&repo, &tenant, 6, &mut rng).await;
    for n in 0..5 {
        assert_eq!(
            repo.enqueue(&tenant, &event(n, &mut rng), Target::AllEnabled)
                .await
                .unwrap(),
            EnqueueOutcome::Enqueued { deliveries: 6 }
        );
    }
    let claimed = repo
        .claim(at(1), 100.into(), lease(&mut rng))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 30);
    let tasks: Vec<_> = claimed
        .into_iter()
        .map(|c| {
            let repo = Arc::clone(&repo);
            let r = report(&c, at(2), NextStep::Delivered, &mut rng);
            tokio::spawn(async move { repo.complete(&c.lease, r).await.unwrap() })
        })
        .collect();
    for t in tasks {
        assert_eq!(
            t.await.unwrap(),
            CompleteOutcome::Recorded {
                disabled: None,
                retry_at: None
            }
        );
    }
    assert_eq!(
        (count(&db, "events").await, count(&db, "deliveries").await),
        (5, 0)
    );
    assert_eq!(count(&db, "attempts").await, 30);
}

/// A database at schema 2 holding destinations: migrating keeps every row
/// as it was (enabled ones enabled, a disabled one disabled), and the
/// enabled ones get deliveries at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_from_schema_2_keeps_rows_and_their_state() {
    let db = TestDb::new();
    // The schema as version 2 of this crate left it: its own first two
    // migrations.
    db.migrate_to(2).await;
    let client = db.client().await;
    let tenant: TenantId = "org_old".parse().unwrap();
    let sealer = SealingKey::new(KeyId::new(1), &[4; 32]);
    let mut rng = ChaCha20Rng::seed_from_u64(25);
    let mut records = Vec::new();
    for (i, enabled) in [(0, true), (1, true), (2, false)] {
        let plan = plan_create(
            CreateDestinationRequest::new(format!("old {i}"), "https://example.com/old"),
            &tenant,
            t0(),
            &mut rng,
            &sealer,
        )
        .unwrap();
        let r = plan.record;
        let reason = (!enabled).then_some("manual");
        // Rows 0 and 1 as written before migration 2 (the column default);
        // row 2 disabled under schema 2.
        if enabled {
            client
                .execute(
                    "INSERT INTO destinations (tenant_id, destination_id, name, url,
                         created_at_ms, updated_at_ms, sealed_secret, secret_digest, version)
                     VALUES ($1, $2, $3, $4, $5, $5, $6, $7, 1)",
                    &[
                        &tenant.as_str(),
                        &r.destination_id.to_string(),
                        &r.name.as_str(),
                        &r.url.as_str(),
                        &i64::try_from(r.created_at.unix_millis()).unwrap(),
                        &r.sealed_secret.to_bytes().to_vec(),
                        &r.secret_digest.as_bytes().to_vec(),
                    ],
                )
                .await
                .unwrap();
        } else {
            client
                .execute(
                    "INSERT INTO destinations (tenant_id, destination_id, name, url,
                         created_at_ms, updated_at_ms, sealed_secret, secret_digest, version,
                         enabled, disabled_reason)
                     VALUES ($1, $2, $3, $4, $5, $5, $6, $7, 1, false, $8)",
                    &[
                        &tenant.as_str(),
                        &r.destination_id.to_string(),
                        &r.name.as_str(),
                        &r.url.as_str(),
                        &i64::try_from(r.created_at.unix_millis()).unwrap(),
                        &r.sealed_secret.to_bytes().to_vec(),
                        &r.secret_digest.as_bytes().to_vec(),
                        &reason,
                    ],
                )
                .await
                .unwrap();
        }
        records.push((r, enabled));
    }
    let repo = db.repo().await;
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let all: Vec<i32> = (1..=i32::try_from(schema_version()).unwrap()).collect();
    assert_eq!(versions, all);
    for (r, enabled) in &records {
        let got = repo.get(&tenant, r.destination_id).await.unwrap().unwrap();
        assert_eq!(got.enabled, *enabled);
        assert_eq!(got.name, r.name);
        assert_eq!(got.secret_digest, r.secret_digest);
        assert_eq!(got.version, 1);
        assert_eq!(
            got.disabled_reason,
            (!enabled).then_some(prets_destinations::delivery::DisabledReason::Manual)
        );
    }
    let e = event(1, &mut rng);
    assert_eq!(
        repo.enqueue(&tenant, &e, Target::AllEnabled).await.unwrap(),
        EnqueueOutcome::Enqueued { deliveries: 2 }
    );
    let claimed = repo.claim(at(1), 10.into(), lease(&mut rng)).await.unwrap();
    let got: BTreeSet<_> = claimed
        .iter()
        .map(|c| c.lease.delivery.destination_id)
        .collect();
    let want: BTreeSet<_> = records
        .iter()
        .filter(|(_, on)| *on)
        .map(|(r, _)| r.destination_id)
        .collect();
    assert_eq!(got, want);
}

/// The schema has what the queue's statements rely on: the lane index a
/// claim walks (tenant, destination, due time), the partial index of leased
/// deliveries it counts a lane's live leases on, and the outbox tables
/// cascading from their destination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_tables_cascade_and_claims_have_an_index() {
    let db = TestDb::new();
    drop(db.repo().await);
    let client = db.client().await;
    let indexes: Vec<String> = client
        .query(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'deliveries' ORDER BY indexname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        indexes
            .iter()
            .any(|i| i.contains("(tenant_id, destination_id, due_at_ms)")),
        "{indexes:?}"
    );
    assert!(
        indexes.iter().any(|i| i.contains(
            "(tenant_id, destination_id, lease_expires_at_ms) WHERE (lease_token IS NOT NULL)"
        )),
        "{indexes:?}"
    );
    let cascades: Vec<String> = client
        .query(
            "SELECT conrelid::regclass::TEXT FROM pg_constraint
             WHERE contype = 'f' AND confrelid = 'destinations'::regclass
               AND confdeltype = 'c'
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        cascades,
        [
            "attempts",
            "deliveries",
            "destination_filters",
            "dropped_deliveries",
            "previous_secrets"
        ]
    );
}

/// The payload comes back byte for byte (spacing, key order, escapes and
/// non-ASCII text kept), so every delivery sends the body the event was
/// published with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_come_back_byte_for_byte() {
    let db = TestDb::new();
    let repo = db.repo().await;
    let mut rng = ChaCha20Rng::seed_from_u64(26);
    let tenant: TenantId = "org_bytes".parse().unwrap();
    destinations(&repo, &tenant, 1, &mut rng).await;
    let text = "{ \"z\" : 1, \"a\":[1.50, -0e3 ,\"é😀\\u0000\\n\\\"\"],\n\t\"k\": {\"b\":null,\"a\":true} }";
    let e = Event::new("shape.kept", text.to_owned(), t0(), &mut rng).unwrap();
    assert_eq!(
        repo.enqueue(&tenant, &e, Target::AllEnabled).await.unwrap(),
        EnqueueOutcome::Enqueued { deliveries: 1 }
    );
    let claimed = repo.claim(at(1), 10.into(), lease(&mut rng)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event.payload.get(), e.payload.get());
    assert_eq!(claimed[0].event.delivery_body(), e.delivery_body());
    assert_eq!(claimed[0].event, e);
}

/// A delivered attempt with no failure streak leaves the destination row
/// alone: it completes while a publish holds the row `FOR SHARE`. A failed
/// attempt writes the streak, so it waits for that publish; a delivered
/// attempt that finds a streak clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_streak_change_waits_for_a_publish_reading_the_destination() {
    let db = TestDb::new();
    let repo = Arc::new(db.repo().await);
    let mut rng = ChaCha20Rng::seed_from_u64(41);
    let tenant: TenantId = "org_locks".parse().unwrap();
    let dest = destinations(&repo, &tenant, 1, &mut rng).await.remove(0);
    for n in 0..2 {
        let e = event(n, &mut rng);
        assert_eq!(
            repo.enqueue(&tenant, &e, Target::AllEnabled).await.unwrap(),
            EnqueueOutcome::Enqueued { deliveries: 1 }
        );
    }
    let claimed = repo.claim(at(1), 10.into(), lease(&mut rng)).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let streak = || async {
        let row = db
            .client()
            .await
            .query_one(
                "SELECT failing_since_ms, failing_attempts FROM destinations
                 WHERE tenant_id = $1 AND destination_id = $2",
                &[&tenant.as_str(), &dest.destination_id.to_string()],
            )
            .await
            .unwrap();
        (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1))
    };

    // A publish in progress: the destination read `FOR SHARE`, as `enqueue`.
    let publish = db.client().await;
    publish.batch_execute("BEGIN").await.unwrap();
    publish
        .execute(
            "SELECT 1 FROM destinations WHERE tenant_id = $1 AND destination_id = $2 FOR SHARE",
            &[&tenant.as_str(), &dest.destination_id.to_string()],
        )
        .await
        .unwrap();

    let delivered = report(&claimed[0], at(1), NextStep::Delivered, &mut rng);
    let done = tokio::time::timeout(
        Duration::from_secs(10),
        repo.complete(&claimed[0].lease, delivered),
    )
    .await
    .expect("a delivered attempt waited for a publish");
    assert_eq!(
        done.unwrap(),
        CompleteOutcome::Recorded {
            disabled: None,
            retry_at: None
        }
    );
    assert_eq!(streak().await, (None, None));

    let failed = report(&claimed[1], at(1), NextStep::RetryAt(at(2)), &mut rng);
    let (r, lease1) = (Arc::clone(&repo), claimed[1].lease.clone());
    let waiting = tokio::spawn(async move { r.complete(&lease1, failed).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a streak was written under a publish"
    );
    publish.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        waiting.await.unwrap().unwrap(),
        CompleteOutcome::Recorded {
            disabled: None,
            retry_at: Some(at(2))
        }
    );
    let since = i64::try_from(at(1).unix_millis()).unwrap();
    assert_eq!(streak().await, (Some(since), Some(1)));

    let again = repo.claim(at(3), 10.into(), lease(&mut rng)).await.unwrap();
    assert_eq!(again.len(), 1);
    let delivered = report(&again[0], at(3), NextStep::Delivered, &mut rng);
    assert_eq!(
        repo.complete(&again[0].lease, delivered).await.unwrap(),
        CompleteOutcome::Recorded {
            disabled: None,
            retry_at: None
        }
    );
    assert_eq!(streak().await, (None, None));
    assert_eq!(
        (count(&db, "events").await, count(&db, "deliveries").await),
        (2, 0)
    );
}

/// An event stored (its delivery pending) before the schema remembered
/// event ids gets its id remembered by the migration: enqueuing the id
/// again finds it, with its type, payload digest (PostgreSQL's `sha256` of
/// the stored text, as `Payload::digest`) and delivery count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stored_before_event_ids_are_remembered() {
    let db = TestDb::new();
    // The schema before the event ids' migration.
    db.migrate_to(version_before("CREATE TABLE event_ids"))
        .await;
    let client = db.client().await;
    let tenant: TenantId = "org_ids".parse().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(41);
    let event = Event::new(
        "test.event",
        "{\"é\": [1, 2.50]}".to_owned(),
        t0(),
        &mut rng,
    )
    .unwrap();
    let ms = i64::try_from(t0().unix_millis()).unwrap();
    let dest = "whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K";
    client
        .execute(
            "INSERT INTO destinations (tenant_id, destination_id, name, url, created_at_ms,
                 updated_at_ms, sealed_secret, secret_digest, version)
             VALUES ($1, $2, 'old', 'https://example.com/old', $3, $3, '\\x00', '\\x00', 1)",
            &[&tenant.as_str(), &dest, &ms],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO events (tenant_id, event_id, event_type, created_at_ms, payload)
             VALUES ($1, $2, 'test.event', $3, $4)",
            &[
                &tenant.as_str(),
                &event.event_id.to_string(),
                &ms,
                &event.payload.get(),
            ],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO deliveries (tenant_id, event_id, destination_id, attempt, due_at_ms)
             VALUES ($1, $2, $3, 1, $4)",
            &[&tenant.as_str(), &event.event_id.to_string(), &dest, &ms],
        )
        .await
        .unwrap();
    let repo = db.repo().await;
    let mut other = event.clone();
    other.payload = Payload::from_json("2".to_owned()).unwrap();
    for again in [&event, &other] {
        assert_eq!(
            repo.enqueue(&tenant, again, Target::AllEnabled)
                .await
                .unwrap(),
            EnqueueOutcome::Exists(ExistingEvent::of(&event, 1))
        );
    }
}

/// `now()` is the database's clock: between two readings of
/// `clock_timestamp()` taken around it (within the measurement's
/// round-trip error), and the offset to this host's clock is what the two
/// clocks say (both on this host here, so about zero).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn now_is_the_database_clock() {
    let db = TestDb::new();
    let repo = db.repo().await;
    let client = db.client().await;
    let read = || async {
        let ms: i64 = client
            .query_one(
                "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        u64::try_from(ms).unwrap()
    };
    for _ in 0..5 {
        let before = read().await;
        let now = repo.now().await.unwrap().unix_millis();
        let after = read().await;
        assert!(
            before.saturating_sub(50) <= now && now <= after + 50,
            "{before} {now} {after}"
        );
    }
    let system = Timestamp::try_from(std::time::SystemTime::now()).unwrap();
    let db_now = read().await;
    let offset = i64::try_from(db_now).unwrap() - i64::try_from(system.unix_millis()).unwrap();
    assert!(
        (repo.clock_offset_ms() - offset).abs() < 200,
        "{} {offset}",
        repo.clock_offset_ms()
    );
}

/// Completing never locks the event row: an event's deliveries complete
/// while another transaction holds that row `FOR UPDATE`, all ten in one
/// `complete_all` (one transaction), each as `complete` judges it (the
/// same lease twice in the batch: the second is lost; a stale token: lost);
/// the event stays, and the attempts say whether they were manual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_deliveries_complete_together_without_its_row_lock() {
    let db = TestDb::new();
    let repo = db.repo().await;
    let mut rng = ChaCha20Rng::seed_from_u64(43);
    let tenant: TenantId = "org_fan_out".parse().unwrap();
    destinations(&repo, &tenant, 10, &mut rng).await;
    let e = event(1, &mut rng);
    assert_eq!(
        repo.enqueue(&tenant, &e, Target::AllEnabled).await.unwrap(),
        EnqueueOutcome::Enqueued { deliveries: 10 }
    );
    let claimed = repo.claim(at(1), 10.into(), lease(&mut rng)).await.unwrap();
    assert_eq!(claimed.len(), 10);

    let holder = db.client().await;
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .execute(
            "SELECT 1 FROM events WHERE tenant_id = $1 AND event_id = $2 FOR UPDATE",
            &[&tenant.as_str(), &e.event_id.to_string()],
        )
        .await
        .unwrap();

    let mut batch: Vec<_> = claimed
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let next = if i % 2 == 0 {
                NextStep::Delivered
            } else {
                NextStep::Failed
            };
            (c.lease.clone(), report(c, at(2), next, &mut rng))
        })
        .collect();
    // The first lease again, and one with a token never issued.
    batch.push((
        claimed[0].lease.clone(),
        report(&claimed[0], at(2), NextStep::Delivered, &mut rng),
    ));
    let mut stale = claimed[1].lease.clone();
    stale.token = LeaseToken::generate(&mut rng);
    batch.push((
        stale,
        report(&claimed[1], at(2), NextStep::Delivered, &mut rng),
    ));
    let outcomes = tokio::time::timeout(Duration::from_secs(10), repo.complete_all(batch))
        .await
        .expect("completing waited for the event row")
        .unwrap();
    let mut want = vec![
        CompleteOutcome::Recorded {
            disabled: None,
            retry_at: None
        };
        10
    ];
    want.extend([CompleteOutcome::LeaseLost, CompleteOutcome::LeaseLost]);
    assert_eq!(outcomes, want);
    assert_eq!(count(&db, "deliveries").await, 0);
    assert_eq!(count(&db, "attempts").await, 10);
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(count(&db, "events").await, 1);
    assert_eq!(count(&db, "attempts WHERE manual").await, 0);
}

/// A publish on one node wakes the listener of another (the `NOTIFY` sent
/// in the enqueue's transaction); a listening connection that dies is
/// opened again, waking once (a publish may have been missed), and wakes
/// on the next publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_on_one_node_wakes_the_listener_of_another() {
    let db = TestDb::new();
    let a = db.repo().await;
    let b = db.repo().await;
    let mut rng = ChaCha20Rng::seed_from_u64(44);
    let tenant: TenantId = "org_listen".parse().unwrap();
    destinations(&a, &tenant, 1, &mut rng).await;
    let woken = Arc::new(tokio::sync::Notify::new());
    b.listen(Arc::clone(&woken)).await.unwrap();
    let wake = || async {
        tokio::time::timeout(Duration::from_secs(10), woken.notified())
            .await
            .is_ok()
    };
    // Nothing published yet: no wake-up waiting.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), woken.notified())
            .await
            .is_err()
    );
    assert_eq!(
        a.enqueue(&tenant, &event(1, &mut rng), Target::AllEnabled)
            .await
            .unwrap(),
        EnqueueOutcome::Enqueued { deliveries: 1 }
    );
    assert!(wake().await, "the publish on the other node woke nothing");

    let admin = db.client().await;
    let killed: Vec<bool> = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND query = 'LISTEN prets_published'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(killed, [true]);
    assert!(wake().await, "no wake-up once listening again");
    assert_eq!(
        a.enqueue(&tenant, &event(2, &mut rng), Target::AllEnabled)
            .await
            .unwrap(),
        EnqueueOutcome::Enqueued { deliveries: 1 }
    );
    assert!(wake().await, "the publish after the reconnect woke nothing");
}

/// The vacuum counts of the queue tables and of `events`.
async fn vacuums(db: &TestDb) -> Vec<i64> {
    let client = db.client().await;
    let mut counts = Vec::new();
    for table in ["deliveries", "pending_changes", "events"] {
        let row = client
            .query_one(
                "SELECT pg_stat_get_vacuum_count($1::TEXT::regclass)",
                &[&table],
            )
            .await
            .unwrap();
        counts.push(row.get(0));
    }
    counts
}

/// `vacuum_queues` vacuums each queue table once, after deliveries finished
/// (dead rows to remove: deliveries, and the pending changes enqueues
/// folded), and not `events` (kept, the event log: a vacuum of it would
/// read every retained event's index entries); the queue works on: the
/// next publish is claimed and finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_queues_vacuums_each_queue_table_and_the_queue_works_on() {
    let db = TestDb::new();
    let repo = db.repo().await;
    let mut rng = ChaCha20Rng::seed_from_u64(70);
    let tenant: TenantId = "org_vacuum".parse().unwrap();
    destinations(&repo, &tenant, 3, &mut rng).await;
    let finish = async |n: u32, rng: &mut ChaCha20Rng| {
        let e = event(n, rng);
        assert_eq!(
            repo.enqueue(&tenant, &e, Target::AllEnabled).await.unwrap(),
            EnqueueOutcome::Enqueued { deliveries: 3 }
        );
        let claimed = repo.claim(at(1), 100.into(), lease(rng)).await.unwrap();
        assert_eq!(claimed.len(), 3);
        let batch = claimed
            .iter()
            .map(|c| (c.lease.clone(), report(c, at(1), NextStep::Delivered, rng)))
            .collect();
        let outcomes = repo.complete_all(batch).await.unwrap();
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, CompleteOutcome::Recorded { .. }))
        );
    };
    for n in 0..5 {
        finish(n, &mut rng).await;
    }
    let before = vacuums(&db).await;
    repo.vacuum_queues().await.unwrap();
    let after = vacuums(&db).await;
    assert_eq!(
        after,
        [before[0] + 1, before[1] + 1, before[2]],
        "deliveries and pending changes vacuumed, events not"
    );
    finish(5, &mut rng).await;
    assert_eq!(count(&db, "deliveries").await, 0);
    assert_eq!(count(&db, "events").await, 6);
}
