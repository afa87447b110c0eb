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
        CompleteOutcome, DisablePolicy, EnqueueOutcome, Event, EventLog, Failure, FailureCause,
        LeaseRequest, LeaseToken, NextStep, Outbox, PurgeCutoffs, Purged, Target,
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_repo_passes_the_event_log_conformance_kit() {
        let dir = TempDir::new();
        let repo = SqliteRepo::open(&dir.database()).unwrap();
        conformance::events::events_run_all(&repo).await;
        conformance::outbox::outbox_run_all(&repo).await;
        conformance::events::events_run_all(&repo).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_repo_passes_the_quotas_conformance_kit() {
        let dir = TempDir::new();
        let repo = SqliteRepo::open(&dir.database())
            .unwrap()
            .with_quotas(conformance::quotas::KIT_QUOTAS);
        conformance::quotas::quotas_run_all(&repo).await;
        conformance::quotas::manual_deliveries_within_the_pending_quota(&repo).await;
        // Many more racing inserts at the cap than `run_all` uses.
        conformance::quotas::concurrent_inserts_at_the_quota_store_one(&repo, 16).await;
        drop(repo);
        // The counts the triggers keep are the rows'.
        assert_eq!(
            count(
                &dir,
                "pending_counts p",
                "pending <> (SELECT count(*) FROM deliveries d WHERE d.tenant_id = p.tenant_id)"
            ),
            0
        );
        assert_eq!(
            count(
                &dir,
                "deliveries d",
                "NOT EXISTS (SELECT 1 FROM pending_counts p WHERE p.tenant_id = d.tenant_id)"
            ),
            0
        );
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
                CompleteOutcome::Recorded {
                    disabled: None,
                    retry_at: None
                }
            );
        }
        assert!(
            repo.claim(at(1_000), 100.into(), fx.lease())
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(count(&dir, "deliveries", "true"), 0);
        // The event log keeps the events.
        assert_eq!(count(&dir, "events", "true"), 25);
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
                CompleteOutcome::Recorded {
                    disabled: None,
                    retry_at: Some(at(60))
                }
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

    /// A database from before the pending counts (the last migration) with
    /// deliveries queued opens with each organization's count taken from
    /// its rows: a quota holds from the first enqueue.
    #[tokio::test]
    async fn pending_counts_start_from_the_queued_rows() {
        let dir = TempDir::new();
        let mut fx = Fixture::new(15);
        let tenant: TenantId = "org_counted".parse().unwrap();
        {
            let repo = SqliteRepo::open(&dir.database()).unwrap();
            fx.destination(&repo, &tenant).await;
            fx.destination(&repo, &tenant).await;
            for n in 0..2 {
                let event = fx.event(&format!("{{\"n\":{n}}}"));
                assert_eq!(
                    repo.enqueue(&tenant, &event, Target::AllEnabled)
                        .await
                        .unwrap(),
                    EnqueueOutcome::Enqueued { deliveries: 2 }
                );
            }
        }
        // Back to the schema before the pending counts (the last
        // migration): no counts, no triggers.
        let conn = rusqlite::Connection::open(dir.database()).unwrap();
        conn.execute_batch(&format!(
            "DROP TRIGGER pending_counts_add; DROP TRIGGER pending_counts_remove;
             DROP TABLE pending_counts; PRAGMA user_version = {};",
            prets_destinations_server::schema_version() - 1
        ))
        .unwrap();
        drop(conn);
        let quotas = prets_destinations::limits::Quotas {
            max_destinations: 10,
            max_pending_deliveries: 5,
        };
        let repo = SqliteRepo::open(&dir.database())
            .unwrap()
            .with_quotas(quotas);
        // 4 pending: 2 more would be 6.
        assert_eq!(
            repo.enqueue(&tenant, &fx.event("{}"), Target::AllEnabled)
                .await
                .unwrap(),
            EnqueueOutcome::QueueFull
        );
        drop(repo);
        assert_eq!(count(&dir, "pending_counts", "pending = 4"), 1);
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
                CompleteOutcome::Recorded {
                    disabled: None,
                    retry_at: Some(at(5))
                }
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
            1,
            "the event only the removed destination needed stays in the event log"
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
        assert_eq!(count(&dir, "dropped_deliveries", "true"), 0);
    }

    /// The event row holds the payload's text exactly as given, is stored
    /// when no destination is enabled too, and stays after its deliveries
    /// finish, until a purge finds it past the cutoff with none pending.
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
        assert_eq!(count(&dir, "events", "true"), 1);
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
            .query_row(
                "SELECT payload FROM events WHERE tenant_id = 'org_events'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored, payload);
        let claimed = repo.claim(at(0), 10.into(), fx.lease()).await.unwrap();
        assert_eq!(claimed.len(), 2);
        let report = fx.report(&claimed[0], at(1), NextStep::Delivered);
        assert_eq!(
            repo.complete(&claimed[0].lease, report).await.unwrap(),
            CompleteOutcome::Recorded {
                disabled: None,
                retry_at: None
            }
        );
        let cutoffs = PurgeCutoffs {
            attempts_before: at(0),
            events_before: at(1),
        };
        // One delivery pending: the purge keeps it (the other tenant's,
        // with none, goes).
        assert_eq!(
            repo.purge(cutoffs, 10).await.unwrap(),
            Purged {
                attempts: 0,
                events: 1
            }
        );
        assert_eq!(count(&dir, "events", "true"), 1);
        // A failure after the last retry finishes the delivery too.
        let report = fx.report(&claimed[1], at(1), NextStep::Failed);
        assert_eq!(
            repo.complete(&claimed[1].lease, report).await.unwrap(),
            CompleteOutcome::Recorded {
                disabled: None,
                retry_at: None
            }
        );
        assert_eq!(count(&dir, "events", "true"), 1);
        assert_eq!(count(&dir, "attempts", "true"), 2);
        assert_eq!(
            repo.purge(cutoffs, 10).await.unwrap(),
            Purged {
                attempts: 0,
                events: 1
            }
        );
        assert_eq!(count(&dir, "events", "true"), 0);
        assert_eq!(count(&dir, "attempts", "true"), 2);
    }

    /// Fair claims: what `ClaimLimits` promises, checked on the SQLite
    /// store with queues deep enough that a global due order would show.
    mod fair {
        use std::collections::{BTreeMap, BTreeSet};
        use std::sync::Arc;

        use prets_destinations::delivery::{
            ClaimLimits, Claimed, CompleteOutcome, EnqueueOutcome, Event, NextStep, Outbox, Target,
        };
        use prets_destinations::{DestinationId, DestinationRepo, TenantId};

        use super::{Fixture, TempDir, at};
        use prets_destinations_server::SqliteRepo;

        fn caps(limit: usize, per: usize, failing: usize, per_failing: usize) -> ClaimLimits {
            ClaimLimits {
                limit,
                per_destination: per,
                failing_limit: failing,
                per_failing_destination: per_failing,
            }
        }

        /// The server's shape: a cap of 4 per destination, one failing
        /// delivery per claim.
        fn worker(limit: usize) -> ClaimLimits {
            caps(limit, 4, 1, 1)
        }

        /// Enqueues `events` for `tenant` concurrently (the writer commits
        /// them in groups), each to `target`.
        async fn enqueue_all(
            repo: &Arc<SqliteRepo>,
            tenant: &TenantId,
            events: Vec<Event>,
            target: Target,
        ) {
            let mut tasks = tokio::task::JoinSet::new();
            for event in events {
                let repo = Arc::clone(repo);
                let tenant = tenant.clone();
                tasks.spawn(async move { repo.enqueue(&tenant, &event, target).await.unwrap() });
            }
            while let Some(done) = tasks.join_next().await {
                assert!(matches!(
                    done.unwrap(),
                    EnqueueOutcome::Enqueued { deliveries: 1.. }
                ));
            }
        }

        fn of<'a>(claimed: &'a [Claimed], tenant: &TenantId) -> Vec<&'a Claimed> {
            claimed
                .iter()
                .filter(|c| &c.lease.delivery.tenant == tenant)
                .collect()
        }

        /// Claimed deliveries per destination.
        fn per_lane(claimed: &[Claimed]) -> BTreeMap<DestinationId, usize> {
            let mut lanes = BTreeMap::new();
            for c in claimed {
                *lanes.entry(c.lease.delivery.destination_id).or_default() += 1;
            }
            lanes
        }

        /// A quiet organization's one delivery comes in the first claim of
        /// two while another has 10,000 due on one destination, with the
        /// server's caps and with none; the hostile lane gives its earliest.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_quiet_org_is_served_beside_10000_due_on_one_destination() {
            let dir = TempDir::new();
            let repo = Arc::new(SqliteRepo::open(&dir.database()).unwrap());
            let mut fx = Fixture::new(21);
            let (hostile, quiet): (TenantId, TenantId) =
                ("org_hostile".parse().unwrap(), "org_quiet".parse().unwrap());
            fx.destination(&repo, &hostile).await;
            let calm = fx.destination(&repo, &quiet).await;
            let backlog: Vec<Event> = (0..10_000).map(|n| fx.event(&n.to_string())).collect();
            let first = backlog.iter().map(|e| e.event_id).min().unwrap();
            enqueue_all(&repo, &hostile, backlog, Target::AllEnabled).await;
            let q = fx.event("{}");
            enqueue_all(&repo, &quiet, vec![q.clone()], Target::AllEnabled).await;

            let claimed = repo.claim(at(1), worker(2), fx.lease()).await.unwrap();
            assert_eq!(claimed.len(), 2);
            let mine = of(&claimed, &quiet);
            assert_eq!(mine.len(), 1, "the quiet organization waited: {claimed:?}");
            assert_eq!(mine[0].event, q);
            assert_eq!(mine[0].lease.delivery.destination_id, calm);
            let theirs = of(&claimed, &hostile);
            assert_eq!(theirs[0].event.event_id, first, "earliest (due, id) first");

            // No caps at all: still one each.
            let q2 = fx.event("{\"again\":1}");
            enqueue_all(&repo, &quiet, vec![q2.clone()], Target::AllEnabled).await;
            let claimed = repo.claim(at(2), 2.into(), fx.lease()).await.unwrap();
            assert_eq!(claimed.len(), 2);
            let mine = of(&claimed, &quiet);
            assert_eq!(mine.len(), 1, "the quiet organization waited: {claimed:?}");
            assert_eq!(mine[0].event, q2);
        }

        /// The same with the hostile backlog spread over 50 destinations
        /// (200 events each): the quiet organization is in the first claim
        /// of two, and a claim of 64 never puts more than 4 leases on a
        /// destination, counting those of earlier claims.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_quiet_org_is_served_beside_10000_due_on_50_destinations() {
            let dir = TempDir::new();
            let repo = Arc::new(SqliteRepo::open(&dir.database()).unwrap());
            let mut fx = Fixture::new(22);
            let (hostile, quiet): (TenantId, TenantId) =
                ("org_many".parse().unwrap(), "org_calm".parse().unwrap());
            for _ in 0..50 {
                fx.destination(&repo, &hostile).await;
            }
            fx.destination(&repo, &quiet).await;
            let backlog: Vec<Event> = (0..200).map(|n| fx.event(&n.to_string())).collect();
            enqueue_all(&repo, &hostile, backlog, Target::AllEnabled).await;
            let q = fx.event("{}");
            enqueue_all(&repo, &quiet, vec![q.clone()], Target::AllEnabled).await;

            let claimed = repo.claim(at(1), worker(2), fx.lease()).await.unwrap();
            assert_eq!(claimed.len(), 2);
            assert_eq!(of(&claimed, &quiet).len(), 1, "{claimed:?}");

            let mut all = claimed;
            let mut claims = Vec::new();
            for now in 2..6 {
                let more = repo.claim(at(now), worker(64), fx.lease()).await.unwrap();
                claims.push(more.len());
                all.extend(more);
            }
            assert_eq!(claims, [64, 64, 64, 7], "each claim fills up to the caps");
            // 50 destinations × 4, and the quiet one's single delivery.
            assert_eq!(all.len(), 201);
            let lanes = per_lane(&all);
            assert_eq!(lanes.len(), 51);
            assert!(lanes.values().all(|&n| n <= 4), "{lanes:?}");
            let keys: BTreeSet<_> = all.iter().map(|c| c.lease.delivery.clone()).collect();
            assert_eq!(keys.len(), all.len(), "a delivery was claimed twice");
            assert!(
                repo.claim(at(6), worker(64), fx.lease())
                    .await
                    .unwrap()
                    .is_empty(),
                "every destination is at its cap"
            );
        }

        /// A destination's cap counts live leases of earlier claims; a
        /// completion frees a slot; a lease that runs out frees its slot and
        /// its delivery is offered again (the old lease is then lost).
        /// Within the destination, earliest (due, event id) first.
        #[tokio::test]
        async fn the_cap_holds_across_claims_and_lapsed_leases_free_their_slot() {
            let dir = TempDir::new();
            let repo = Arc::new(SqliteRepo::open(&dir.database()).unwrap());
            let mut fx = Fixture::new(23);
            let tenant: TenantId = "org_capped".parse().unwrap();
            fx.destination(&repo, &tenant).await;
            let events: Vec<Event> = (0..10).map(|n| fx.event(&n.to_string())).collect();
            let mut order: Vec<_> = events.iter().map(|e| e.event_id).collect();
            order.sort();
            enqueue_all(&repo, &tenant, events, Target::AllEnabled).await;
            let ids = |c: &[Claimed]| c.iter().map(|c| c.event.event_id).collect::<Vec<_>>();

            let first = repo
                .claim(at(1), caps(10, 4, 0, 0), fx.lease())
                .await
                .unwrap();
            assert_eq!(ids(&first), order[..4]);
            assert!(
                repo.claim(at(2), caps(10, 4, 0, 0), fx.lease())
                    .await
                    .unwrap()
                    .is_empty()
            );
            let report = fx.report(&first[0], at(2), NextStep::Delivered);
            assert_eq!(
                repo.complete(&first[0].lease, report).await.unwrap(),
                CompleteOutcome::Recorded {
                    disabled: None,
                    retry_at: None
                }
            );
            let fifth = repo
                .claim(at(3), caps(10, 4, 0, 0), fx.lease())
                .await
                .unwrap();
            assert_eq!(ids(&fifth), order[4..5]);
            // first[1..] run out at 31; the fifth's lease lives until 33.
            let again = repo
                .claim(at(31), caps(10, 4, 0, 0), fx.lease())
                .await
                .unwrap();
            assert_eq!(ids(&again), order[1..4]);
            for c in &first[1..] {
                assert!(!repo.renew(&c.lease, at(60)).await.unwrap(), "lease lost");
            }
            assert!(
                repo.claim(at(32), caps(10, 4, 0, 0), fx.lease())
                    .await
                    .unwrap()
                    .is_empty()
            );
            // A higher cap lets the rest through, earliest first.
            let rest = repo
                .claim(at(32), caps(10, 9, 0, 0), fx.lease())
                .await
                .unwrap();
            assert_eq!(ids(&rest), order[5..]);
        }

        /// A failing destination (its last attempt failed) gives at most
        /// `failing_limit` deliveries per claim and at most
        /// `per_failing_destination` live leases; `Claimed::failing` and
        /// `Claimed::destination` say what the claim read.
        #[tokio::test]
        async fn failing_destinations_stay_within_their_limits() {
            let dir = TempDir::new();
            let repo = Arc::new(SqliteRepo::open(&dir.database()).unwrap());
            let mut fx = Fixture::new(24);
            let tenant: TenantId = "org_failing".parse().unwrap();
            let sick = fx.destination(&repo, &tenant).await;
            let first = fx.event("{}");
            enqueue_all(&repo, &tenant, vec![first], Target::Only(sick)).await;
            let claimed = repo.claim(at(1), 10.into(), fx.lease()).await.unwrap();
            assert!(!claimed[0].failing);
            let report = fx.report(&claimed[0], at(1), NextStep::RetryAt(at(1)));
            assert_eq!(
                repo.complete(&claimed[0].lease, report).await.unwrap(),
                CompleteOutcome::Recorded {
                    disabled: None,
                    retry_at: Some(at(1))
                }
            );
            let well = fx.destination(&repo, &tenant).await;
            let events: Vec<Event> = (0..5).map(|n| fx.event(&n.to_string())).collect();
            enqueue_all(&repo, &tenant, events, Target::AllEnabled).await;

            let got = repo
                .claim(at(2), caps(20, 20, 1, 20), fx.lease())
                .await
                .unwrap();
            let lanes = per_lane(&got);
            assert_eq!(lanes.get(&sick), Some(&1), "{lanes:?}");
            assert_eq!(lanes.get(&well), Some(&5), "{lanes:?}");
            for c in &got {
                let stored = repo
                    .get(&tenant, c.lease.delivery.destination_id)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(c.destination, stored);
                assert_eq!(c.failing, c.lease.delivery.destination_id == sick);
            }
            assert!(
                repo.claim(at(3), caps(20, 20, 0, 20), fx.lease())
                    .await
                    .unwrap()
                    .is_empty(),
                "failing_limit 0 offered a failing delivery"
            );
            // One lease live on it: a cap of 3 lets two more through.
            let got = repo
                .claim(at(4), caps(20, 20, 20, 3), fx.lease())
                .await
                .unwrap();
            assert_eq!(per_lane(&got).get(&sick), Some(&2));
            assert!(got.iter().all(|c| c.failing));
        }

        /// Organizations take turns from a rotating start: claims of one
        /// serve each of three backlogged organizations once per three
        /// claims, and an organization's destinations take turns too.
        #[tokio::test]
        async fn organizations_and_destinations_take_turns() {
            let dir = TempDir::new();
            let repo = Arc::new(SqliteRepo::open(&dir.database()).unwrap());
            let mut fx = Fixture::new(25);
            let mut tenants = Vec::new();
            for name in ["org_one", "org_two", "org_three"] {
                let tenant: TenantId = name.parse().unwrap();
                fx.destination(&repo, &tenant).await;
                fx.destination(&repo, &tenant).await;
                let events: Vec<Event> = (0..6).map(|n| fx.event(&n.to_string())).collect();
                enqueue_all(&repo, &tenant, events, Target::AllEnabled).await;
                tenants.push(tenant);
            }
            let mut served: Vec<(TenantId, DestinationId)> = Vec::new();
            for n in 0..12 {
                let got = repo.claim(at(1 + n), 1.into(), fx.lease()).await.unwrap();
                assert_eq!(got.len(), 1);
                let key = &got[0].lease.delivery;
                served.push((key.tenant.clone(), key.destination_id));
            }
            for round in served.chunks(3) {
                let orgs: BTreeSet<_> = round.iter().map(|(t, _)| t.clone()).collect();
                assert_eq!(orgs.len(), 3, "an organization waited: {served:?}");
            }
            // Each organization's four turns alternate its two destinations.
            for tenant in &tenants {
                let lanes: Vec<_> = served
                    .iter()
                    .filter(|(t, _)| t == tenant)
                    .map(|(_, d)| *d)
                    .collect();
                assert_eq!(lanes.len(), 4);
                assert!(
                    lanes.windows(2).all(|w| w[0] != w[1]),
                    "a destination waited: {lanes:?}"
                );
            }
        }
    }
}
