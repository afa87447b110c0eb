//! `PgRepo` as a `DestinationRepo`: the repo conformance kit, migrations,
//! several nodes on one database, and an unreachable database.

use std::error::Error as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prets_destinations::delivery::{LeaseRequest, LeaseToken, Outbox};
use prets_destinations::ops::plan_create;
use prets_destinations::{
    CreateDestinationRequest, DestinationId, DestinationRepo, InsertOutcome, KeyId, SealingKey,
    TenantId, Timestamp, conformance,
};
use prets_destinations_postgres::test_support::{self, TestDb};
use prets_destinations_postgres::{PgRepo, schema_version};
use rand_chacha::rand_core::SeedableRng;
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_repo_passes_the_conformance_kit() {
    let db = TestDb::new();
    let repo = db.repo().await;
    conformance::run_all(&repo).await;
    conformance::concurrent_creates_of_one_client_id(&repo, 64).await;
}

/// The repo's futures run on the runtime it was opened in, so plain threads
/// with a blocking executor can drive them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_repo_needs_no_runtime_for_parallel_creates_on_threads() {
    let db = TestDb::new();
    let repo = db.repo().await;
    conformance::parallel_creates_of_one_client_id_on_threads(&repo, 16).await;
}

async fn versions(db: &TestDb) -> Vec<i32> {
    db.client()
        .await
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn expected_versions() -> Vec<i32> {
    (1..=i32::try_from(schema_version()).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_once_and_reconnecting_keeps_the_data() {
    let db = TestDb::new();
    let repo = db.repo().await;
    assert_eq!(versions(&db).await, expected_versions());
    let tenant: TenantId = "org_m".parse().unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let sealer = SealingKey::new(KeyId::new(1), &[3; 32]);
    let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
    let plan = plan_create(
        CreateDestinationRequest::new("kept", "https://example.com/kept"),
        &tenant,
        now,
        &mut rng,
        &sealer,
    )
    .unwrap();
    assert_eq!(
        repo.insert(&tenant, &plan.record).await.unwrap(),
        InsertOutcome::Inserted
    );
    drop(repo);
    let again = db.repo().await;
    assert_eq!(versions(&db).await, expected_versions());
    let got = again
        .get(&tenant, plan.record.destination_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, plan.record);
    conformance::insert_get_round_trip(&again).await;
}

/// Nodes starting at once on an empty database: the advisory lock makes
/// them migrate one after another, every one starts, each migration ran once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_at_once_migrate_once() {
    let db = TestDb::new();
    let url = db.url();
    let starts: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgRepo::connect(&url, 2).await })
        })
        .collect();
    for start in starts {
        start.await.unwrap().unwrap();
    }
    assert_eq!(versions(&db).await, expected_versions());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_build_is_refused() {
    let db = TestDb::new();
    drop(db.repo().await);
    let newer = i32::try_from(schema_version() + 1).unwrap();
    db.client()
        .await
        .execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&newer],
        )
        .await
        .unwrap();
    let err = PgRepo::connect(&db.url(), 2).await.unwrap_err();
    assert!(err.is_schema_too_new(), "{err:?}");
    assert!(err.to_string().contains("newer"), "{err}");
    // Refusing wrote nothing.
    let mut expected = expected_versions();
    expected.push(newer);
    assert_eq!(versions(&db).await, expected);
}

/// Two nodes (two repos, two pools) on one database race 40 creates of one
/// id: exactly one insert wins, and both nodes then read the winner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_creates_of_one_id_insert_it_once() {
    let db = TestDb::new();
    let a = Arc::new(db.repo().await);
    let b = Arc::new(db.repo().await);
    let tenant: TenantId = "org_race".parse().unwrap();
    let sealer = SealingKey::new(KeyId::new(1), &[5; 32]);
    let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
    let id: DestinationId = "whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K".parse().unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(40);
    let records: Vec<_> = (0..40)
        .map(|n| {
            let request =
                CreateDestinationRequest::new(format!("racer {n}"), "https://example.com/race")
                    .with_destination_id(id.to_string());
            plan_create(request, &tenant, now, &mut rng, &sealer)
                .unwrap()
                .record
        })
        .collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(records.len()));
    let tasks: Vec<_> = records
        .iter()
        .cloned()
        .enumerate()
        .map(|(n, record)| {
            let repo = Arc::clone(if n % 2 == 0 { &a } else { &b });
            let (tenant, barrier) = (tenant.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                repo.insert(&tenant, &record).await.unwrap()
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (n, task) in tasks.into_iter().enumerate() {
        if task.await.unwrap() == InsertOutcome::Inserted {
            winners.push(n);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let winner = &records[winners[0]];
    for repo in [&a, &b] {
        assert_eq!(repo.get(&tenant, id).await.unwrap().as_ref(), Some(winner));
        assert_eq!(repo.list(&tenant).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn an_unreachable_database_fails_connect_without_the_password() {
    // Nothing listens on a port we just bound and released.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("postgres://app:hunter2-password@127.0.0.1:{port}/prets");
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(60), PgRepo::connect(&url, 2))
        .await
        .expect("connect hung")
        .unwrap_err();
    // A refused connection fails at once, well inside the 5 s bounds.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(err.is_unavailable(), "{err:?}");
    let mut chain = format!("{err} {err:?}");
    let mut source = err.source();
    while let Some(e) = source {
        chain.push_str(&format!(" {e} {e:?}"));
        source = e.source();
    }
    assert!(!chain.contains("hunter2"), "{chain}");
}

#[tokio::test]
async fn bad_arguments_are_refused() {
    let db = TestDb::new();
    let err = PgRepo::connect(&db.url(), 0).await.unwrap_err();
    assert!(err.to_string().contains("pool size"), "{err}");
    let err = PgRepo::connect("postgres://u:hunter2@127.0.0.1:notaport/db", 2)
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
}

/// A loopback TCP proxy to the server that can be cut: "the database went
/// down" without stopping the shared server.
struct Proxy {
    port: u16,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start() -> Self {
        Self::start_on(0).await
    }

    /// A proxy on `port` (0: any free port).
    async fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let inner = Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(test_support::server()).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                inner.lock().unwrap().push(conn.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Self { port, tasks }
    }

    /// Closes the listener and every proxied connection.
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_while_the_database_is_down_fail_and_never_hang() {
    let db = TestDb::new();
    let proxy = Proxy::start().await;
    let database = db.url().rsplit('/').next().unwrap().to_owned();
    let url = format!("postgres://postgres@127.0.0.1:{}/{database}", proxy.port);
    let repo = PgRepo::connect(&url, 2).await.unwrap();
    let tenant: TenantId = "org_down".parse().unwrap();
    assert!(repo.list(&tenant).await.unwrap().is_empty());
    proxy.cut();
    // Pooled connections are now closed and new ones are refused: every
    // call answers `Err`. The bound only catches a hang.
    for _ in 0..3 {
        let result = tokio::time::timeout(Duration::from_secs(60), repo.list(&tenant))
            .await
            .expect("a call hung while the database was down");
        assert!(result.is_err(), "{result:?}");
    }
    let id: DestinationId = "whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K".parse().unwrap();
    let result = tokio::time::timeout(Duration::from_secs(60), repo.get(&tenant, id))
        .await
        .expect("a call hung while the database was down");
    let err = result.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    // The outbox's calls too: a worker's claim fails quickly, never hangs.
    let started = std::time::Instant::now();
    let lease = LeaseRequest {
        token: LeaseToken::from_bytes([1; 16]),
        duration: Duration::from_secs(60),
    };
    let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(60), repo.claim(now, 10.into(), lease))
        .await
        .expect("a claim hung while the database was down");
    assert!(result.unwrap_err().is_unavailable());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // The database comes back (on the same address): the same repo serves
    // again, without a restart.
    let _back = Proxy::start_on(proxy.port).await;
    assert!(repo.list(&tenant).await.unwrap().is_empty());
    assert!(repo.claim(now, 10.into(), lease).await.unwrap().is_empty());
}

/// Ids are compared as text in byte order whatever the database's default
/// collation, and both digest columns are indexed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_c_collated_text_and_digests_are_indexed() {
    let db = TestDb::new();
    drop(db.repo().await);
    let client = db.client().await;
    let columns = client
        .query(
            "SELECT table_name::TEXT, column_name::TEXT, data_type::TEXT,
                    COALESCE(collation_name::TEXT, '')
             FROM information_schema.columns
             WHERE table_schema = current_schema()
               AND column_name IN ('tenant_id', 'destination_id', 'event_id', 'attempt_id')
             ORDER BY table_name, column_name",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, String, String)> = columns
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let want: Vec<(String, String, String, String)> = [
        ("api_tokens", "tenant_id"),
        ("attempts", "attempt_id"),
        ("attempts", "destination_id"),
        ("attempts", "event_id"),
        ("attempts", "tenant_id"),
        ("claim_turns", "destination_id"),
        ("claim_turns", "tenant_id"),
        ("deliveries", "destination_id"),
        ("deliveries", "event_id"),
        ("deliveries", "tenant_id"),
        ("destination_filters", "destination_id"),
        ("destination_filters", "tenant_id"),
        ("destinations", "destination_id"),
        ("destinations", "tenant_id"),
        ("dropped_deliveries", "destination_id"),
        ("dropped_deliveries", "event_id"),
        ("dropped_deliveries", "tenant_id"),
        ("event_ids", "event_id"),
        ("event_ids", "tenant_id"),
        ("events", "event_id"),
        ("events", "tenant_id"),
        ("pending_changes", "tenant_id"),
        ("pending_counts", "tenant_id"),
        ("previous_secrets", "destination_id"),
        ("previous_secrets", "tenant_id"),
    ]
    .iter()
    .map(|(t, c)| ((*t).into(), (*c).into(), "text".into(), "C".into()))
    .collect();
    assert_eq!(got, want);
    let indexes: Vec<String> = client
        .query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()
             AND indexdef LIKE '%(secret_digest)%' ORDER BY indexdef",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(indexes.len(), 2, "{indexes:?}");
    assert!(
        indexes
            .iter()
            .any(|i| i.contains("ON public.destinations "))
    );
    assert!(
        indexes
            .iter()
            .any(|i| i.contains("ON public.previous_secrets "))
    );
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<PgRepo>();
    check::<prets_destinations_postgres::PgError>();
}

/// `schema_version_found` reads the applied version afresh: the latest
/// after `connect`, and what the table says once it changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_version_found_is_read_afresh() {
    let db = TestDb::new();
    let repo = db.repo().await;
    let latest = i64::try_from(schema_version()).unwrap();
    assert_eq!(repo.schema_version_found().await.unwrap(), latest);
    let client = db.client().await;
    client
        .execute(
            "DELETE FROM schema_migrations WHERE version = $1",
            &[&i32::try_from(latest).unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(repo.schema_version_found().await.unwrap(), latest - 1);
}

/// A database that gives up on a lock (`lock_timeout`, set by its
/// operator) makes the write busy, not failed: a host answers `503` with
/// `Retry-After`. Nothing was written; once the lock is gone the same write
/// goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_past_the_databases_lock_timeout_is_busy() {
    let db = TestDb::new();
    test_support::admin(format!(
        "ALTER DATABASE \"{}\" SET lock_timeout = '100ms'",
        db.name()
    ))
    .unwrap();
    let repo = db.repo().await;
    let tenant: TenantId = "org_busy".parse().unwrap();
    let record = plan_create(
        CreateDestinationRequest::new("busy", "https://example.com/hook"),
        &tenant,
        Timestamp::from_unix_seconds(1_700_000_000).unwrap(),
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(1),
        &SealingKey::new(KeyId::new(1), &[3; 32]),
    )
    .unwrap()
    .record;
    assert_eq!(
        repo.insert(&tenant, &record).await.unwrap(),
        InsertOutcome::Inserted
    );
    let mut holder = db.client().await;
    let tx = holder.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM destinations WHERE tenant_id = $1 FOR UPDATE",
        &[&tenant.as_str()],
    )
    .await
    .unwrap();
    let err = repo
        .remove(&tenant, record.destination_id)
        .await
        .unwrap_err();
    assert!(err.is_busy() && !err.is_unavailable(), "{err:?}");
    assert!(
        prets_destinations::StoreError::is_busy(&err),
        "a host sees it busy"
    );
    assert!(err.to_string().contains("SQLSTATE 55P03"), "{err}");
    tx.rollback().await.unwrap();
    assert_eq!(
        repo.get(&tenant, record.destination_id)
            .await
            .unwrap()
            .map(|r| r.destination_id),
        Some(record.destination_id),
        "the refused removal removed it"
    );
}
