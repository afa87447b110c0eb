//! `SqliteRepo` against the repo conformance kit, and its file handling.

use crate::support::TempDir;
use prets_destinations::conformance;
use prets_destinations_server::{SqliteRepo, schema_version};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_repo_passes_the_conformance_kit() {
    let dir = TempDir::new();
    let repo = SqliteRepo::open(&dir.database()).unwrap();
    conformance::run_all(&repo).await;
    conformance::concurrent_creates_of_one_client_id(&repo, 64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_repo_versionless_writes_all_apply_under_contention() {
    let dir = TempDir::new();
    let repo = SqliteRepo::open(&dir.database()).unwrap();
    conformance::concurrent_versionless_updates_all_apply(&repo, 32).await;
    conformance::concurrent_rotations_all_apply(&repo, 32).await;
    conformance::concurrent_versioned_updates_one_wins(&repo, 32).await;
}

#[tokio::test]
async fn sqlite_repo_needs_no_runtime_for_parallel_creates_on_threads() {
    let dir = TempDir::new();
    let repo = SqliteRepo::open(&dir.database()).unwrap();
    conformance::parallel_creates_of_one_client_id_on_threads(&repo, 16).await;
}

#[tokio::test]
async fn a_reopened_database_still_conforms_and_is_migrated_once() {
    let dir = TempDir::new();
    drop(SqliteRepo::open(&dir.database()).unwrap());
    let repo = SqliteRepo::open(&dir.database()).unwrap();
    conformance::insert_get_round_trip(&repo).await;
    drop(repo);
    let conn = rusqlite::Connection::open(dir.database()).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(usize::try_from(version).unwrap(), schema_version());
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn a_database_from_a_newer_server_is_refused() {
    let dir = TempDir::new();
    drop(SqliteRepo::open(&dir.database()).unwrap());
    let conn = rusqlite::Connection::open(dir.database()).unwrap();
    conn.execute_batch(&format!("PRAGMA user_version = {}", schema_version() + 1))
        .unwrap();
    drop(conn);
    let err = SqliteRepo::open(&dir.database()).unwrap_err();
    assert!(err.to_string().contains("newer"), "{err}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = TempDir::new();
    std::fs::write(
        dir.database(),
        b"this is not a sqlite database, just text that is long enough to have a header",
    )
    .unwrap();
    assert!(SqliteRepo::open(&dir.database()).is_err());
}

#[tokio::test]
async fn a_stored_url_the_host_policy_now_refuses_still_loads() {
    use prets_destinations::ops::plan_create;
    use prets_destinations::{
        CreateDestinationRequest, DestinationRepo, InsertOutcome, KeyId, SealingKey, TenantId,
        Timestamp,
    };
    use rand_chacha::rand_core::SeedableRng;

    let dir = TempDir::new();
    let repo = SqliteRepo::open(&dir.database()).unwrap();
    let tenant: TenantId = "org_1".parse().unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let sealer = SealingKey::new(KeyId::new(1), &[9; 32]);
    let request = CreateDestinationRequest::new("n", "https://hooks.example.com/x");
    let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
    let plan = plan_create(request, &tenant, now, &mut rng, &sealer).unwrap();
    let id = plan.record.destination_id;
    assert_eq!(
        repo.insert(&tenant, &plan.record).await.unwrap(),
        InsertOutcome::Inserted
    );
    drop(repo);
    // As if a later release had reserved `.corp` after this row was written.
    let conn = rusqlite::Connection::open(dir.database()).unwrap();
    conn.execute(
        "UPDATE destinations SET url = 'https://hooks.corp/x' WHERE destination_id = ?1",
        [id.to_string()],
    )
    .unwrap();
    drop(conn);
    assert!(
        "https://hooks.corp/x"
            .parse::<prets_destinations::DestinationUrl>()
            .is_err()
    );
    let repo = SqliteRepo::open(&dir.database()).unwrap();
    let listed = repo.list(&tenant).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].url.as_str(), "https://hooks.corp/x");
    let got = repo.get(&tenant, id).await.unwrap().unwrap();
    assert_eq!(got.url.as_str(), "https://hooks.corp/x");
}

/// The outbox's tests: the conformance kit, concurrent claims from tasks,
/// durability across close and open, the migration from schema 3, and what
/// a removed destination and a finished event leave behind in the tables.
mod outbox {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::time::Duration;

    use prets_destinations::delivery::{
        AttemptId, AttemptMeta, AttemptRecord, AttemptReport, Claimed, Classification,
        CompleteOutcome, DisablePolicy, EnqueueOutcome, Event, Failure, FailureCause, LeaseRequest,
        LeaseToken, NextStep, Outbox, Target,
    };
    use prets_destinations::ops::plan_create;
    use prets_destinations::{
        CreateDestinationRequest, DestinationId, DestinationRecord, DestinationRepo, InsertOutcome,
        KeyId, RemoveOutcome, SealingKey, TenantId, Timestamp, conformance,
    };
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;

    use super::TempDir;
    use prets_destinations_server::test_support::sqlite_at_version;
    use prets_destinations_server::{SqliteRepo, schema_version};

    const LEASE: Duration = Duration::from_secs(30);

    fn t0() -> Timestamp {
        Timestamp::from_unix_seconds(1_700_000_000).unwrap()
    }

    fn at(secs: u64) -> Timestamp {
        t0().checked_add(Duration::from_secs(secs)).unwrap()
    }

    struct Fixture {
        rng: ChaCha20Rng,
        sealer: SealingKey,
    }

    impl Fixture {
        fn new(seed: u64) -> Self {
            Self {
                rng: ChaCha20Rng::seed_from_u64(seed),
                sealer: SealingKey::new(KeyId::new(1), &[9; 32]),
            }
        }

        fn record(&mut self, tenant: &TenantId) -> DestinationRecord {
            let request = CreateDestinationRequest::new("n", "https://hooks.example.com/x");
            plan_create(request, tenant, t0(), &mut self.rng, &self.sealer)
                .unwrap()
                .record
        }

        async fn destination(&mut self, repo: &SqliteRepo, tenant: &TenantId) -> DestinationId {
            let record = self.record(tenant);
            assert_eq!(
                repo.insert(tenant, &record).await.unwrap(),
                InsertOutcome::Inserted
            );
            record.destination_id
        }

        fn event(&mut self, payload: &str) -> Event {
            Event::new("order.created", payload.to_owned(), t0(), &mut self.rng).unwrap()
        }

        fn lease(&mut self) -> LeaseRequest {
            LeaseRequest {
                token: LeaseToken::generate(&mut self.rng),
                duration: LEASE,
            }
        }

        fn report(
            &mut self,
            claimed: &Claimed,
            started_at: Timestamp,
            next: NextStep,
        ) -> AttemptReport {
            let classification = match next {
                NextStep::Delivered => Classification::Delivered { status: 200 },
                _ => Classification::Failed(Failure {
                    cause: FailureCause::Status(500),
                    retry_after: None,
                }),
            };
            let meta = AttemptMeta {
                attempt_id: AttemptId::generate(started_at, &mut self.rng),
                event_id: claimed.event.event_id,
                destination_id: claimed.lease.delivery.destination_id,
                attempt: claimed.attempt,
                started_at,
                duration_ms: 12,
            };
            AttemptReport {
                attempt: AttemptRecord::new(meta, &classification, &next),
                next,
                disable: DisablePolicy::default(),
            }
        }
    }

    /// Rows of `table` matching `filter` (SQL), read on a connection of its
    /// own.
    fn count(dir: &TempDir, table: &str, filter: &str) -> i64 {
        let conn = rusqlite::Connection::open(dir.database()).unwrap();
        conn.query_row(
            &format!("SELECT count(*) FROM {table} WHERE {filter}"),
            [],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_repo_passes_the_outbox_conformance_kit() {
        let dir = TempDir::new();
        let repo = SqliteRepo::open(&dir.database()).unwrap();
        conformance::outbox::outbox_run_all(&repo).await;
        // Many more racing claims from OS threads than `run_all` uses.
        conformance::outbox::lease_exclusivity_under_concurrent_claims(&repo, 16).await;
        conformance::outbox::concurrent_enqueues_of_one_id_store_one(&repo, 16).await;
        // The repo's own properties still hold next to the outbox's data.
        conformance::run_all(&repo).await;
    }

    /// Claims racing from tokio tasks hand every delivery out exactly once;
    /// completing them all leaves no delivery and no event row behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_claims_from_tasks_share_no_delivery() {
        let dir = TempDir::new();
        let repo = Arc::new(SqliteRepo::open(&dir.database()).unwrap());
        let mut fx = Fixture::new(11);
        let tenant: TenantId = "org_tasks".parse().unwrap();
        let mut dests = Vec::new();
        for _ in 0..4 {
            dests.push(fx.destination(&repo, &tenant).await);
        }
        let mut expected = BTreeSet::new();
        for n in 0..25 {
            let event = fx.event(&format!("{{\"n\":{n}}}"));
            assert_eq!(
                repo.enqueue(&tenant, &event, Target::AllEnabled)
                    .await
                    .unwrap(),
                EnqueueOutcome::Enqueued { deliveries: 4 }
            );
            for d in &dests {
                expected.insert((event.event_id, *d));
            }
        }
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let repo = Arc::clone(&repo);
                let lease = fx.lease();
                tokio::spawn(async move {
                    let mut got: Vec<Claimed> = Vec::new();
                    loop {
                        let batch = repo.claim(at(1), 3.into(), lease).await.unwrap();
                        // A delivery offered twice ends the loop (and fails
                        // below) rather than looping for ever.
                        let again = batch
                            .iter()
                            .any(|c| got.iter().any(|g| g.lease.delivery == c.lease.delivery));
                        let done = batch.is_empty();
                        got.extend(batch);
                        if done || again {
                            return (lease.token, got);
                        }
                    }
                })
            })
            .collect();
        let mut seen = BTreeSet::new();
        let mut all = Vec::new();
        for task in tasks {
            let (token, got) = task.await.unwrap();
            for c in got {
                assert_eq!(c.lease.token, token);
                assert_eq!(c.lease.expires_at, at(31));
                assert_eq!(c.attempt, 1);
                assert!(
                    seen.insert((c.event.event_id, c.lease.delivery.destination_id)),
                    "a delivery was handed to two claims"
                );
                all.push(c);
            }
        }
        assert_eq!(seen, expected);
        assert_eq!(count(&dir, "events", "true"), 25);
        let completions: Vec<_> = all
            .into_iter()
            .map(|c| {
                let repo = Arc::clone(&repo);
                let report = fx.report(&c, at(2), NextStep::Delivered);
                tokio::spawn(async move { repo.complete(&c.lease, report).await.unwrap() })
            })
            .collect();
        for c in completions {
            assert_eq!(
                c.await.unwrap(),
                CompleteOutcome::Recorded { disabled: None }
            );
        }
        assert!(
            repo.claim(at(1_000), 100.into(), fx.lease())
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(count(&dir, "deliveries", "true"), 0);
        assert_eq!(count(&dir, "events", "true"), 0);
        assert_eq!(count(&dir, "attempts", "true"), 100);
    }

    /// Closing and opening the database keeps every pending delivery: one
    /// under a lease its worker never finished (offered again once the lease
    /// ends) and one rescheduled (offered at its due time, as attempt 2),
    /// with the payload's text unchanged.
    #[tokio::test]
    async fn a_reopened_database_keeps_pending_deliveries() {
        let dir = TempDir::new();
        let mut fx = Fixture::new(12);
        let tenant: TenantId = "org_durable".parse().unwrap();
        let payload = "{\"b\" : [1.50e2, \"\\u00e9\"],\n  \"a\":null}";
        let event = fx.event(payload);
        let (leased, retried) = {
            let repo = SqliteRepo::open(&dir.database()).unwrap();
            fx.destination(&repo, &tenant).await;
            fx.destination(&repo, &tenant).await;
            assert_eq!(
                repo.enqueue(&tenant, &event, Target::AllEnabled)
                    .await
                    .unwrap(),
                EnqueueOutcome::Enqueued { deliveries: 2 }
            );
            let claimed = repo.claim(at(1), 10.into(), fx.lease()).await.unwrap();
            assert_eq!(claimed.len(), 2);
            let report = fx.report(&claimed[1], at(1), NextStep::RetryAt(at(60)));
            assert_eq!(
                repo.complete(&claimed[1].lease, report).await.unwrap(),
                CompleteOutcome::Recorded { disabled: None }
            );
            // The worker holding claimed[0] dies here.
            (claimed[0].clone(), claimed[1].clone())
        };
        let repo = SqliteRepo::open(&dir.database()).unwrap();
        assert!(
            repo.claim(at(30), 10.into(), fx.lease())
                .await
                .unwrap()
                .is_empty(),
            "a live lease and a future due time survive the reopen"
        );
        let again = repo.claim(at(31), 10.into(), fx.lease()).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].lease.delivery, leased.lease.delivery);
        assert_eq!(again[0].attempt, 1);
        assert_eq!(again[0].event, event);
        assert_eq!(again[0].event.payload.get(), payload);
        // The dead worker's lease is lost now.
        assert!(!repo.renew(&leased.lease, at(100)).await.unwrap());
        let later = repo.claim(at(60), 10.into(), fx.lease()).await.unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].lease.delivery, retried.lease.delivery);
        assert_eq!(later[0].attempt, 2);
        assert_eq!(later[0].event, event);
        let listed = repo
            .list_attempts(&tenant, retried.lease.delivery.destination_id, None, 10)
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].next_attempt_at, Some(at(60)));
    }

    /// A database at schema 3 with rows opens at the current schema: its
    /// destinations load as they were (the one stored without a state is
    /// enabled), and the outbox works on them.
    #[tokio::test]
    async fn a_schema_3_database_with_rows_migrates_to_4() {
        let dir = TempDir::new();
        let mut fx = Fixture::new(13);
        let tenant: TenantId = "org_old".parse().unwrap();
        let enabled = fx.record(&tenant);
        let disabled = fx.record(&tenant);
        // The file as a version-3 server left it: its own first three
        // migrations.
        sqlite_at_version(&dir.database(), 3).unwrap();
        {
            let conn = rusqlite::Connection::open(dir.database()).unwrap();
            let insert = |r: &DestinationRecord, state: &str| {
                conn.execute(
                    &format!(
                        "INSERT INTO destinations (tenant_id, destination_id, name, url,
                             created_at_ms, updated_at_ms, sealed_secret, secret_digest{})
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8{})",
                        if state.is_empty() {
                            ""
                        } else {
                            ", enabled, disabled_reason"
                        },
                        state
                    ),
                    rusqlite::params![
                        tenant.as_str(),
                        r.destination_id.to_string(),
                        r.name.as_str(),
                        r.url.as_str(),
                        i64::try_from(r.created_at.unix_millis()).unwrap(),
                        i64::try_from(r.updated_at.unix_millis()).unwrap(),
                        &r.sealed_secret.to_bytes()[..],
                        &r.secret_digest.as_bytes()[..],
                    ],
                )
                .unwrap();
            };
            insert(&enabled, "");
            insert(&disabled, ", 0, 'manual'");
        }
        let repo = SqliteRepo::open(&dir.database()).unwrap();
        let loaded = repo
            .get(&tenant, enabled.destination_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(loaded, enabled);
        assert!(loaded.enabled && loaded.disabled_reason.is_none());
        let loaded = repo
            .get(&tenant, disabled.destination_id)
            .await
            .unwrap()
            .unwrap();
        assert!(!loaded.enabled);
        assert_eq!(
            loaded.disabled_reason,
            Some(prets_destinations::delivery::DisabledReason::Manual)
        );
        let event = fx.event("{}");
        assert_eq!(
            repo.enqueue(&tenant, &event, Target::AllEnabled)
                .await
                .unwrap(),
            EnqueueOutcome::Enqueued { deliveries: 1 }
        );
        let claimed = repo.claim(at(0), 10.into(), fx.lease()).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(
            claimed[0].lease.delivery.destination_id,
            enabled.destination_id
        );
        drop(repo);
        let conn = rusqlite::Connection::open(dir.database()).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(usize::try_from(version).unwrap(), schema_version());
    }

    /// Removing a destination deletes its deliveries (a held lease is then
    /// lost), its attempts and its failure streak, and the event rows only
    /// it still needed; the other destination's rows stay.
    #[tokio::test]
    async fn removing_a_destination_deletes_its_rows() {
        let dir = TempDir::new();
        let repo = SqliteRepo::open(&dir.database()).unwrap();
        let mut fx = Fixture::new(14);
        let tenant: TenantId = "org_remove".parse().unwrap();
        let gone = fx.record(&tenant);
        assert_eq!(
            repo.insert(&tenant, &gone).await.unwrap(),
            InsertOutcome::Inserted
        );
        let kept = fx.destination(&repo, &tenant).await;
        let only_gone = fx.event("{\"to\":\"gone\"}");
        assert_eq!(
            repo.enqueue(&tenant, &only_gone, Target::Only(gone.destination_id))
                .await
                .unwrap(),
            EnqueueOutcome::Enqueued { deliveries: 1 }
        );
        let both = fx.event("{\"to\":\"both\"}");
        assert_eq!(
            repo.enqueue(&tenant, &both, Target::AllEnabled)
                .await
                .unwrap(),
            EnqueueOutcome::Enqueued { deliveries: 2 }
        );
        let claimed = repo.claim(at(0), 10.into(), fx.lease()).await.unwrap();
        assert_eq!(claimed.len(), 3);
        for c in &claimed {
            let report = fx.report(c, at(1), NextStep::RetryAt(at(5)));
            assert_eq!(
                repo.complete(&c.lease, report).await.unwrap(),
                CompleteOutcome::Recorded { disabled: None }
            );
        }
        let gone_id = format!("destination_id = '{}'", gone.destination_id);
        let kept_id = format!("destination_id = '{kept}'");
        assert_eq!(count(&dir, "deliveries", &gone_id), 2);
        assert_eq!(count(&dir, "attempts", &gone_id), 2);
        assert_eq!(
            count(
                &dir,
                "destinations",
                &format!("{gone_id} AND failing_attempts = 2")
            ),
            1
        );
        let held = repo.claim(at(5), 10.into(), fx.lease()).await.unwrap();
        assert_eq!(held.len(), 3);
        assert_eq!(
            repo.remove(&tenant, gone.destination_id).await.unwrap(),
            RemoveOutcome::Removed
        );
        assert_eq!(count(&dir, "deliveries", &gone_id), 0);
        assert_eq!(count(&dir, "attempts", &gone_id), 0);
        assert_eq!(count(&dir, "deliveries", &kept_id), 1);
        assert_eq!(count(&dir, "attempts", &kept_id), 1);
        assert_eq!(
            count(
                &dir,
                "events",
                &format!("event_id = '{}'", only_gone.event_id)
            ),
            0,
            "the event only the removed destination needed is gone"
        );
        assert_eq!(
            count(&dir, "events", &format!("event_id = '{}'", both.event_id)),
            1
        );
        for c in held
            .iter()
            .filter(|c| c.lease.delivery.destination_id == gone.destination_id)
        {
            assert!(!repo.renew(&c.lease, at(20)).await.unwrap());
            let report = fx.report(c, at(6), NextStep::Delivered);
            assert_eq!(
                repo.complete(&c.lease, report).await.unwrap(),
                CompleteOutcome::LeaseLost
            );
        }
        assert_eq!(count(&dir, "attempts", &gone_id), 0);
        // The same id inserted again starts clean.
        assert_eq!(
            repo.insert(&tenant, &gone).await.unwrap(),
            InsertOutcome::Inserted
        );
        assert_eq!(
            count(
                &dir,
                "destinations",
                &format!("{gone_id} AND failing_since_ms IS NULL AND failing_attempts IS NULL")
            ),
            1
        );
        assert!(
            repo.list_attempts(&tenant, gone.destination_id, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            repo.remove(&tenant, kept).await.unwrap(),
            RemoveOutcome::Removed
        );
        assert_eq!(count(&dir, "deliveries", "true"), 0);
        assert_eq!(count(&dir, "events", "true"), 0);
    }

    /// The event row holds the payload's text exactly as given, lives while
    /// a delivery still needs it, and is not stored when no destination is
    /// enabled.
    #[tokio::test]
    async fn an_event_row_lives_as_long_as_its_deliveries() {
        let dir = TempDir::new();
        let repo = SqliteRepo::open(&dir.database()).unwrap();
        let mut fx = Fixture::new(15);
        let tenant: TenantId = "org_events".parse().unwrap();
        let lonely: TenantId = "org_nobody".parse().unwrap();
        assert_eq!(
            repo.enqueue(&lonely, &fx.event("1"), Target::AllEnabled)
                .await
                .unwrap(),
            EnqueueOutcome::Enqueued { deliveries: 0 }
        );
        assert_eq!(count(&dir, "events", "true"), 0);
        fx.destination(&repo, &tenant).await;
        fx.destination(&repo, &tenant).await;
        let payload = "[ 1.0,\t{\"z\":1,\"a\":2} ]";
        let event = fx.event(payload);
        assert_eq!(
            repo.enqueue(&tenant, &event, Target::AllEnabled)
                .await
                .unwrap(),
            EnqueueOutcome::Enqueued { deliveries: 2 }
        );
        let stored: String = rusqlite::Connection::open(dir.database())
            .unwrap()
            .query_row("SELECT payload FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, payload);
        let claimed = repo.claim(at(0), 10.into(), fx.lease()).await.unwrap();
        assert_eq!(claimed.len(), 2);
        let report = fx.report(&claimed[0], at(1), NextStep::Delivered);
        assert_eq!(
            repo.complete(&claimed[0].lease, report).await.unwrap(),
            CompleteOutcome::Recorded { disabled: None }
        );
        assert_eq!(count(&dir, "events", "true"), 1);
        // A failure after the last retry finishes the delivery too.
        let report = fx.report(&claimed[1], at(1), NextStep::Failed);
        assert_eq!(
            repo.complete(&claimed[1].lease, report).await.unwrap(),
            CompleteOutcome::Recorded { disabled: None }
        );
        assert_eq!(count(&dir, "events", "true"), 0);
        assert_eq!(count(&dir, "attempts", "true"), 2);
    }
}
