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
