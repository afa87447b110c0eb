//! Organization quotas on PostgreSQL: the quotas kit, inserts racing at the
//! destination cap from two nodes, and the pending counts against the rows.

use std::sync::Arc;

use prets_destinations::conformance::quotas::{self as kit, KIT_QUOTAS};
use prets_destinations::ops::plan_create;
use prets_destinations::{
    CreateDestinationRequest, DestinationRepo, InsertOutcome, KeyId, SealingKey, TenantId,
    Timestamp,
};
use prets_destinations_postgres::test_support::TestDb;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

/// Tenants whose pending count (the folded count plus the changes not yet
/// folded) differs from their rows in `deliveries`.
async fn miscounted(db: &TestDb) -> Vec<(String, i64, i64)> {
    db.client()
        .await
        .query(
            "WITH kept AS (
                 SELECT tenant_id, pending FROM pending_counts
                 UNION ALL SELECT tenant_id, delta FROM pending_changes),
             counted AS (SELECT tenant_id, sum(pending)::BIGINT AS n FROM kept GROUP BY tenant_id),
             stored AS (SELECT tenant_id, count(*) AS n FROM deliveries GROUP BY tenant_id)
             SELECT COALESCE(c.tenant_id, s.tenant_id), COALESCE(c.n, 0), COALESCE(s.n, 0)
             FROM counted c FULL JOIN stored s ON s.tenant_id = c.tenant_id
             WHERE COALESCE(c.n, 0) <> COALESCE(s.n, 0)",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_repo_passes_the_quotas_conformance_kit() {
    let db = TestDb::new();
    let repo = db.repo().await.with_quotas(KIT_QUOTAS);
    kit::quotas_run_all(&repo).await;
    kit::manual_deliveries_within_the_pending_quota(&repo).await;
    kit::concurrent_inserts_at_the_quota_store_one(&repo, 16).await;
    assert_eq!(miscounted(&db).await, Vec::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlimited_repos_keep_the_pending_counts_too() {
    let db = TestDb::new();
    let repo = db.repo().await;
    prets_destinations::conformance::outbox::outbox_run_all(&repo).await;
    assert_eq!(miscounted(&db).await, Vec::new());
    // A repo opened with a quota later starts from the right count.
    let capped = db.repo().await.with_quotas(KIT_QUOTAS);
    kit::pending_quota_per_tenant(&capped).await;
    assert_eq!(miscounted(&db).await, Vec::new());
}

/// Two nodes, one database: creates racing from both for a tenant one
/// below its cap store exactly one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_at_the_destination_cap_store_one() {
    let db = TestDb::new();
    let nodes = [
        Arc::new(db.repo().await.with_quotas(KIT_QUOTAS)),
        Arc::new(db.repo().await.with_quotas(KIT_QUOTAS)),
    ];
    let tenant: TenantId = "org_race".parse().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(20);
    let sealer = SealingKey::new(KeyId::new(1), &[5; 32]);
    let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
    let mut plan = |n: usize| {
        plan_create(
            CreateDestinationRequest::new(format!("d{n}"), format!("https://example.com/{n}")),
            &tenant,
            now,
            &mut rng,
            &sealer,
        )
        .unwrap()
        .record
    };
    for n in 0..KIT_QUOTAS.max_destinations - 1 {
        assert_eq!(
            nodes[0].insert(&tenant, &plan(n)).await.unwrap(),
            InsertOutcome::Inserted
        );
    }
    for round in 0..5 {
        let records: Vec<_> = (0..16).map(|n| plan(100 * (round + 1) + n)).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for (n, record) in records.into_iter().enumerate() {
            let node = Arc::clone(&nodes[n % 2]);
            let tenant = tenant.clone();
            tasks.spawn(async move { node.insert(&tenant, &record).await.unwrap() });
        }
        let outcomes = tasks.join_all().await;
        let stored = outcomes
            .iter()
            .filter(|o| **o == InsertOutcome::Inserted)
            .count();
        assert_eq!(stored, 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, InsertOutcome::Inserted | InsertOutcome::QuotaExceeded)),
            "round {round}: {outcomes:?}"
        );
        assert_eq!(
            nodes[1].list(&tenant).await.unwrap().len(),
            KIT_QUOTAS.max_destinations
        );
        // Make room for the next round.
        let first = nodes[1].list(&tenant).await.unwrap()[0].destination_id;
        assert_eq!(
            nodes[1].remove(&tenant, first).await.unwrap(),
            prets_destinations::RemoveOutcome::Removed
        );
    }
}

/// A database from before the pending counts (schema 6) with deliveries
/// queued: migration 7 takes each organization's count from its rows, so
/// a quota holds from the first enqueue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_counts_start_from_the_queued_rows() {
    use prets_destinations::delivery::{EnqueueOutcome, Event, Outbox, Target};
    use prets_destinations::limits::Quotas;
    use prets_destinations_postgres::test_support::version_before;

    let db = TestDb::new();
    db.migrate_to(version_before("CREATE TABLE pending_counts"))
        .await;
    // The old schema has no triggers: the rows are inserted by hand.
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO destinations (tenant_id, destination_id, name, url, created_at_ms,
                 updated_at_ms, sealed_secret, secret_digest, version)
             SELECT 'org_old', 'whk_01HF2V3J6T0Q8X5Y7Z9ABCDEF' || n, 'd', 'https://example.com/', 0, 0,
                 '\\x00'::bytea, decode(lpad(n::text, 64, '0'), 'hex'), 1
             FROM generate_series(1, 2) n;
             INSERT INTO destination_filters (tenant_id, filter_key, destination_id)
             SELECT 'org_old', '*', destination_id FROM destinations;
             INSERT INTO events (tenant_id, event_id, event_type, created_at_ms, payload)
             SELECT 'org_old', 'evt_01HF2V3J6T0Q8X5Y7Z9ABCDEF' || n, 'a.b', 0, '{}'
             FROM generate_series(1, 2) n;
             INSERT INTO deliveries (tenant_id, event_id, destination_id, attempt, due_at_ms)
             SELECT 'org_old', 'evt_01HF2V3J6T0Q8X5Y7Z9ABCDEF' || e,
                 'whk_01HF2V3J6T0Q8X5Y7Z9ABCDEF' || d, 1, 0
             FROM generate_series(1, 2) e, generate_series(1, 2) d;",
        )
        .await
        .unwrap();
    let repo = db.repo().await.with_quotas(Quotas {
        max_destinations: 10,
        max_pending_deliveries: 5,
    });
    let pending: i64 = client
        .query_one(
            "SELECT pending FROM pending_counts WHERE tenant_id = 'org_old'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 4);
    let tenant: TenantId = "org_old".parse().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
    let event = Event::new("a.b", "{}".to_owned(), now, &mut rng).unwrap();
    // 4 pending: 2 more would be 6.
    assert_eq!(
        repo.enqueue(&tenant, &event, Target::AllEnabled)
            .await
            .unwrap(),
        EnqueueOutcome::QueueFull
    );
}
