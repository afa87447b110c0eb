//! `PgRepo` as an `EventLog`: the event-log conformance kit, two nodes
//! purging and resending at once, an upgraded database keeping the events
//! of finished deliveries, and the plans of the statements that scan.

use std::collections::BTreeSet;
use std::sync::Arc;

use prets_destinations::delivery::{
    DeliveryState, EnqueueOutcome, Event, EventLog, NextStep, Outbox, PurgeCutoffs, ResendOutcome,
    Target,
};
use prets_destinations::{TenantId, conformance};
use prets_destinations_postgres::test_support::{EVENT_LOG_STATEMENTS, TestDb, version_before};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::outbox::{at, destinations, lease, report};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_repo_passes_the_event_log_conformance_kit() {
    let db = TestDb::new();
    let repo = db.repo().await;
    conformance::events::events_run_all(&repo).await;
}

fn event(n: u32, rng: &mut ChaCha20Rng) -> Event {
    Event::new("order.created", format!("{{\"n\":{n}}}"), at(n.into()), rng).unwrap()
}

async fn count(db: &TestDb, table: &str) -> i64 {
    db.client()
        .await
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// Two nodes purge one database at once, in small batches: every finished
/// event is deleted exactly once between them (no error, no double count),
/// the one with a pending delivery stays, and so do the attempts of the
/// recent one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_purging_at_once_delete_each_event_once() {
    let db = TestDb::new();
    let (a, b) = (Arc::new(db.repo().await), Arc::new(db.repo().await));
    let mut rng = ChaCha20Rng::seed_from_u64(71);
    let tenant: TenantId = "org_purge".parse().unwrap();
    destinations(&a, &tenant, 1, &mut rng).await;
    for n in 0..300 {
        assert_eq!(
            a.enqueue(&tenant, &event(n, &mut rng), Target::AllEnabled)
                .await
                .unwrap(),
            EnqueueOutcome::Enqueued { deliveries: 1 }
        );
    }
    // All but the last finish (failed, one attempt each).
    let claimed = a.claim(at(400), 300.into(), lease(&mut rng)).await.unwrap();
    assert_eq!(claimed.len(), 300);
    let batch: Vec<_> = claimed[..299]
        .iter()
        .map(|c| {
            (
                c.lease.clone(),
                report(c, at(400), NextStep::Failed, &mut rng),
            )
        })
        .collect();
    a.complete_all(batch).await.unwrap();
    let cutoffs = PurgeCutoffs {
        attempts_before: at(10_000),
        events_before: at(10_000),
    };
    let purge = |repo: Arc<prets_destinations_postgres::PgRepo>| {
        tokio::spawn(async move {
            let (mut attempts, mut events) = (0, 0);
            loop {
                let p = repo.purge(cutoffs, 7).await.unwrap();
                if p.is_empty() {
                    return (attempts, events);
                }
                attempts += p.attempts;
                events += p.events;
            }
        })
    };
    let (x, y) = (purge(Arc::clone(&a)), purge(Arc::clone(&b)));
    let (x, y) = (x.await.unwrap(), y.await.unwrap());
    assert_eq!(x.0 + y.0, 299, "attempts purged once each");
    assert_eq!(x.1 + y.1, 299, "events purged once each");
    assert_eq!(count(&db, "events").await, 1, "the pending one stays");
    assert_eq!(count(&db, "attempts").await, 0);
}

/// A resend on one node is seen by the other node's `get_event` and
/// claims; a resend racing a purge of its event either queues it (the
/// event stays) or finds it gone, never an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_racing_a_purge_queues_or_finds_nothing() {
    let db = TestDb::new();
    let (a, b) = (Arc::new(db.repo().await), Arc::new(db.repo().await));
    let mut rng = ChaCha20Rng::seed_from_u64(72);
    let tenant: TenantId = "org_resend_race".parse().unwrap();
    let dest = destinations(&a, &tenant, 1, &mut rng).await.remove(0);
    let mut ids = Vec::new();
    for n in 0..50 {
        let e = event(n, &mut rng);
        assert_eq!(
            a.enqueue(&tenant, &e, Target::AllEnabled).await.unwrap(),
            EnqueueOutcome::Enqueued { deliveries: 1 }
        );
        ids.push(e.event_id);
    }
    let claimed = a.claim(at(100), 50.into(), lease(&mut rng)).await.unwrap();
    let batch: Vec<_> = claimed
        .iter()
        .map(|c| {
            (
                c.lease.clone(),
                report(c, at(100), NextStep::Delivered, &mut rng),
            )
        })
        .collect();
    a.complete_all(batch).await.unwrap();
    let purger = {
        let b = Arc::clone(&b);
        tokio::spawn(async move {
            let cutoffs = PurgeCutoffs {
                attempts_before: at(0),
                events_before: at(10_000),
            };
            while !b.purge(cutoffs, 5).await.unwrap().is_empty() {}
        })
    };
    let mut queued = BTreeSet::new();
    for id in &ids {
        match a
            .resend(&tenant, *id, dest.destination_id, at(200))
            .await
            .unwrap()
        {
            ResendOutcome::Queued => {
                queued.insert(*id);
            }
            ResendOutcome::EventNotFound => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    purger.await.unwrap();
    // Every queued event stayed (a pending delivery keeps it) and the
    // other node sees it pending and manual; every other one is gone.
    for id in &ids {
        let got = b.get_event(&tenant, *id).await.unwrap();
        if queued.contains(id) {
            let detail = got.expect("a queued event stays");
            assert!(matches!(
                detail.deliveries[0].state,
                DeliveryState::Pending { manual: true, .. }
            ));
        } else {
            assert!(got.is_none());
        }
    }
    assert_eq!(
        usize::try_from(count(&db, "deliveries WHERE manual").await).unwrap(),
        queued.len()
    );
}

/// A database from before the event log, holding an event whose delivery
/// finished (its sweep mark not yet taken) and one with a pending delivery:
/// upgrading keeps both, the finished one reads as delivered, the pending
/// one as pending and not manual, and the sweep's table is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_finished_deliveries_stay_after_upgrading() {
    let db = TestDb::new();
    db.migrate_to(version_before("CREATE TABLE dropped_deliveries"))
        .await;
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO destinations (tenant_id, destination_id, name, url, created_at_ms,
                 updated_at_ms, sealed_secret, secret_digest, version)
             VALUES ('org_up', 'whk_00000000000000000000000001', 'd', 'https://example.com/',
                 1, 1, '\\x00', '\\x00', 1);
             INSERT INTO events (tenant_id, event_id, event_type, created_at_ms, payload) VALUES
                 ('org_up', 'evt_00000000000000000000000001', 'order.created', 1000, '{}'),
                 ('org_up', 'evt_00000000000000000000000002', 'order.created', 2000, '{}');
             INSERT INTO deliveries (tenant_id, event_id, destination_id, attempt, due_at_ms)
                 VALUES ('org_up', 'evt_00000000000000000000000002',
                     'whk_00000000000000000000000001', 1, 2000);
             INSERT INTO attempts (tenant_id, destination_id, attempt_id, event_id, attempt,
                 started_at_ms, duration_ms, outcome)
                 VALUES ('org_up', 'whk_00000000000000000000000001',
                     'att_00000000000000000000000001', 'evt_00000000000000000000000001', 1,
                     1500, 3, 'succeeded');
             INSERT INTO finished_events (tenant_id, event_id)
                 VALUES ('org_up', 'evt_00000000000000000000000001');",
        )
        .await
        .unwrap();
    let repo = db.repo().await;
    let tenant: TenantId = "org_up".parse().unwrap();
    let listed = repo.list_events(&tenant, None, None, 10).await.unwrap();
    let ids: Vec<String> = listed.iter().map(|e| e.event_id.to_string()).collect();
    assert_eq!(
        ids,
        [
            "evt_00000000000000000000000002",
            "evt_00000000000000000000000001"
        ]
    );
    let done = repo
        .get_event(&tenant, "evt_00000000000000000000000001".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.deliveries.len(), 1);
    assert_eq!(done.deliveries[0].state, DeliveryState::Delivered);
    let pending = repo
        .get_event(&tenant, "evt_00000000000000000000000002".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        pending.deliveries[0].state,
        DeliveryState::Pending {
            manual: false,
            leased: false,
            ..
        }
    ));
    let gone: Option<String> = client
        .query_one("SELECT to_regclass('finished_events')::TEXT", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(gone, None);
}

/// Each statement that scans a range goes through its index (the
/// organization's part of it for a list or a recover), never a
/// sequential scan, with 20,000 events and attempts of twenty
/// organizations analyzed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_log_scans_through_indexes() {
    let db = TestDb::new();
    drop(db.repo().await);
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO destinations (tenant_id, destination_id, name, url, created_at_ms,
                 updated_at_ms, sealed_secret, secret_digest, version)
             SELECT 'org_' || t, 'whk_00000000000000000000000001', 'd', 'https://example.com/',
                 1, 1, '\\x00', '\\x00', 1 FROM generate_series(1, 20) t;
             INSERT INTO events (tenant_id, event_id, event_type, created_at_ms, payload)
             SELECT 'org_' || (n % 20 + 1), 'evt_' || lpad(n::TEXT, 26, '0'),
                 CASE WHEN n % 10 = 0 THEN 'order.paid' ELSE 'order.created' END,
                 1000 * n, '{}'
             FROM generate_series(1, 20000) n;
             INSERT INTO attempts (tenant_id, destination_id, attempt_id, event_id, attempt,
                 started_at_ms, duration_ms, outcome)
             SELECT 'org_' || (n % 20 + 1), 'whk_00000000000000000000000001',
                 'att_' || lpad(n::TEXT, 26, '0'), 'evt_' || lpad(n::TEXT, 26, '0'), 1,
                 1000 * n, 3, 'failed'
             FROM generate_series(1, 20000) n;
             ANALYZE;",
        )
        .await
        .unwrap();
    let args = |name: &str| match name {
        "list_newest" => "('org_1', 50)",
        "list_after" => "('org_1', 5000000, 'evt_00000000000000000000005000', 50)",
        "list_of_type" => "('org_1', 'order.paid', 50)",
        "list_of_type_after" => {
            "('org_1', 'order.paid', 5000000, 'evt_00000000000000000000005000', 50)"
        }
        "recover_scan" => "('org_1', 5000000, 'evt_00000000000000000000005000', 1000)",
        "purge_attempts" | "purge_events_lock" => "(100000, 1000)",
        other => panic!("no arguments for {other}"),
    };
    let index = |name: &str| match name {
        "list_of_type" | "list_of_type_after" => "events_newest_of_type",
        "list_newest" | "list_after" | "recover_scan" => "events_newest",
        "purge_attempts" => "attempts_by_age",
        _ => "events_by_age",
    };
    // As the store runs them (see `events.rs`): without an incremental
    // sort, which would rather walk `events_by_age` filtering out the other
    // organizations' events.
    client
        .batch_execute("SET enable_incremental_sort = off")
        .await
        .unwrap();
    for (name, sql) in EVENT_LOG_STATEMENTS {
        client
            .batch_execute(&format!("PREPARE {name} AS {sql}"))
            .await
            .unwrap();
        let plan: Vec<String> = client
            .query(&format!("EXPLAIN EXECUTE {name} {}", args(name)), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let plan = plan.join("\n");
        assert!(
            (plan.contains(&format!("using {} on", index(name)))
                || plan.contains(&format!("Index Scan on {} ", index(name))))
                && !plan.contains("Seq Scan on events")
                && !plan.contains("Seq Scan on attempts"),
            "{name} scans without an index:\n{plan}"
        );
    }
}
