//! `SqliteRepo`: a [`DestinationRepo`](prets_destinations::DestinationRepo) on an embedded SQLite database file.
//!
//! - [`migrations`]: the schema, and each connection's settings.
//! - [`writer`]: one connection on one thread runs every write, a batch of
//!   waiting writes in one transaction (group commit), answered only after
//!   `COMMIT` returned.
//! - [`readers`]: a few read-only (`query_only`) connections on their own
//!   threads run every read, outside the writer's queue (WAL).
//! - [`error`]: [`SqliteError`], what every job may fail with.
//! - [`rows`]: rows to records, values to columns.
//! - [`repo`]: the [`DestinationRepo`](prets_destinations::DestinationRepo) implementation.
//! - [`outbox`]: the [`Outbox`](prets_destinations::delivery::Outbox)
//!   implementation: events, leased deliveries and attempts.
//! - [`events`]: the [`EventLog`](prets_destinations::delivery::EventLog)
//!   implementation: events kept, read back, resent, recovered, purged.
//! - [`claim`]: fair claims through indexes: lanes, organizations' rings.
//! - [`tokens`]: API-token storage.
//!
//! Callers hand jobs to the threads over channels and await the answer on a
//! oneshot channel, so the repo's futures need no particular runtime and
//! never block an executor thread.

mod claim;
mod error;
mod events;
mod migrations;
mod outbox;
mod readers;
mod repo;
mod rows;
mod tokens;
mod writer;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

#[cfg(test)]
use prets_destinations::DestinationRepo;
use prets_destinations::limits::Quotas;
use rusqlite::Connection;

use self::error::ErrorKind;
use crate::health::{NotReady, Readiness, ReadyCheck};

pub use self::error::SqliteError;
pub use self::migrations::schema_version;
pub use self::writer::MAX_BATCH;

/// A [`DestinationRepo`](prets_destinations::DestinationRepo) on a SQLite database file, in WAL mode with
/// `synchronous = FULL`: an insert has reached the disk when it returns
/// `Ok(Inserted)`. The delivery worker's own writes (claims, renewals,
/// releases, completions) are committed with `synchronous = NORMAL` unless
/// they share a batch with a synced write (see the writer's
/// `Durability`).
///
/// Reads never wait behind writes: they run on their own read-only
/// connections, and see every write answered before they started.
///
/// It is also the [`Outbox`](prets_destinations::delivery::Outbox) of its
/// destinations: events, leased deliveries and attempts in the same file,
/// every outbox write (claims included) on the one writer.
///
/// Dropping it lets the threads finish the queued jobs, closes the database
/// and waits for that.
pub struct SqliteRepo {
    // Dropped first: the writer's connection is the last to close, so it
    // checkpoints the WAL.
    readers: readers::Readers,
    writer: writer::Writer,
    quotas: Quotas,
}

impl fmt::Debug for SqliteRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteRepo").finish_non_exhaustive()
    }
}

/// Creates an empty file at `path`, readable and writable by its owner only,
/// unless something is already there.
fn create_private(path: &Path) -> Result<(), SqliteError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(SqliteError(Arc::new(ErrorKind::Create(e)))),
    }
}

impl SqliteRepo {
    /// Opens the database at `path`, creating the file (mode 0600 on Unix,
    /// whatever the umask; SQLite gives its `-wal` and `-shm` files the same
    /// mode) if it does not exist, switches it to WAL mode, applies the
    /// migrations it lacks, and starts the writer and reader threads.
    ///
    /// # Errors
    /// If the file cannot be opened or created, is not a SQLite database, has
    /// a newer schema than this build, or a migration fails.
    pub fn open(path: &Path) -> Result<Self, SqliteError> {
        create_private(path)?;
        let mut conn = Connection::open(path)?;
        migrations::configure(&conn)?;
        migrations::migrate(&mut conn)?;
        let writer = writer::Writer::start(conn)?;
        let readers = readers::Readers::open(path, readers::READERS)?;
        Ok(Self {
            readers,
            writer,
            quotas: Quotas::UNLIMITED,
        })
    }

    /// This repo enforcing `quotas` per organization, in the writer's
    /// transactions: a tenant's destinations are counted in the insert's
    /// (over its primary key, at most the quota's rows), its pending
    /// deliveries read from the count the `deliveries` triggers keep.
    #[must_use]
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }
}

/// Ready when a reader answers and the file's schema version
/// (`PRAGMA user_version`, read afresh) is this build's.
impl Readiness for SqliteRepo {
    fn ready(&self) -> ReadyCheck<'_> {
        Box::pin(async move {
            let found = self
                .readers
                .call(|conn| Ok(conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?))
                .await
                .map_err(|error| {
                    tracing::warn!(%error, "readiness: the database did not answer");
                    NotReady::Unreachable
                })?;
            NotReady::check_schema(found, migrations::schema_version())
        })
    }
}

/// Creates the database at `path` as [`SqliteRepo::open`] does, with only
/// the first `version` migrations: the file an older release left.
#[cfg(feature = "test-support")]
pub(crate) fn create_at_version(path: &Path, version: usize) -> Result<(), SqliteError> {
    create_private(path)?;
    let mut conn = Connection::open(path)?;
    migrations::configure(&conn)?;
    migrations::migrate_to(&mut conn, version)
}

#[cfg(test)]
mod tests {
    use super::migrations::{configure, migrate_to};
    use super::*;
    use prets_destinations::{
        BearerSecret, KeyId, Keyring, SealingKey, os_rng, rand_core::Rng as _,
    };
    use prets_destinations::{DestinationId, TenantId};
    use rusqlite::params;

    /// Busy is SQLite's `SQLITE_BUSY` and `SQLITE_LOCKED` (primary and
    /// extended codes) and a writer that took no job; nothing else is.
    #[test]
    fn busy_is_a_held_lock_or_a_writer_that_took_no_job() {
        use prets_destinations::StoreError as _;
        let sqlite = |code| {
            SqliteError::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
        };
        for code in [
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_BUSY_SNAPSHOT,
            rusqlite::ffi::SQLITE_LOCKED,
            rusqlite::ffi::SQLITE_LOCKED_SHAREDCACHE,
        ] {
            let e = sqlite(code);
            assert!(e.is_busy() && !e.is_unavailable(), "{code}: {e}");
        }
        assert!(SqliteError::unavailable().is_busy());
        for e in [
            sqlite(rusqlite::ffi::SQLITE_FULL),
            sqlite(rusqlite::ffi::SQLITE_CORRUPT),
            sqlite(rusqlite::ffi::SQLITE_CONSTRAINT),
            SqliteError::corrupt("tenant id"),
            SqliteError::rolled_back(),
        ] {
            assert!(!e.is_busy() && !e.is_unavailable(), "{e}");
        }
        // The text a log shows says what SQLite said.
        let said = SqliteError::from(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            Some("database is locked".to_owned()),
        ));
        assert_eq!(said.to_string(), "sqlite failed: database is locked");
    }

    /// The connection commits durably: WAL, and every commit synced
    /// (`synchronous` 2 = FULL), with foreign keys enforced for the
    /// previous-secrets cascade.
    #[test]
    fn connections_are_wal_with_full_sync_and_foreign_keys() {
        let path = std::env::temp_dir().join(format!(
            "prets-sqlite-pragmas-{}-{:x}.sqlite3",
            std::process::id(),
            os_rng().next_u64()
        ));
        let conn = Connection::open(&path).unwrap();
        configure(&conn).unwrap();
        let get = |pragma: &str| -> String {
            conn.query_row(&format!("PRAGMA {pragma}"), [], |r| {
                r.get::<_, rusqlite::types::Value>(0)
            })
            .map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
            .unwrap()
        };
        assert_eq!(get("journal_mode"), "wal");
        assert_eq!(get("synchronous"), "2");
        assert_eq!(get("foreign_keys"), "1");
        assert_eq!(get("temp_store"), "2");
        drop(conn);
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }

    /// Reader connections cannot write: opened read-only and `query_only`,
    /// yet they read what the writer committed.
    #[tokio::test]
    async fn readers_are_read_only_and_see_commits() {
        let path = std::env::temp_dir().join(format!(
            "prets-sqlite-readers-{}-{:x}.sqlite3",
            std::process::id(),
            os_rng().next_u64()
        ));
        let repo = SqliteRepo::open(&path).unwrap();
        let tenant: TenantId = "org_readers".parse().unwrap();
        repo.add_api_token(
            [7; 32],
            &tenant,
            prets_destinations::Timestamp::from_unix_millis(1).unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(repo.api_tokens().await.unwrap(), vec![([7; 32], tenant)]);
        let reader = super::migrations::open_reader(&path).unwrap();
        let only: i64 = reader
            .query_row("PRAGMA query_only", [], |r| r.get(0))
            .unwrap();
        assert_eq!(only, 1);
        let write = reader.execute("DELETE FROM api_tokens", []);
        assert!(write.is_err(), "a reader wrote: {write:?}");
        drop(reader);
        assert_eq!(repo.api_tokens().await.unwrap().len(), 1);
        drop(repo);
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }

    /// A read answers while the writer is stuck waiting for a lock another
    /// process holds; the write then completes once the lock is released.
    /// (Were reads queued behind writes, the read would wait out the
    /// writer's busy timeout and the write would fail.)
    #[tokio::test]
    async fn reads_do_not_wait_behind_a_blocked_write() {
        let path = std::env::temp_dir().join(format!(
            "prets-sqlite-blocked-{}-{:x}.sqlite3",
            std::process::id(),
            os_rng().next_u64()
        ));
        let repo = Arc::new(SqliteRepo::open(&path).unwrap());
        let tenant: TenantId = "org_blocked".parse().unwrap();
        let blocker = Connection::open(&path).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let write = {
            let repo = Arc::clone(&repo);
            let tenant = tenant.clone();
            tokio::spawn(async move {
                repo.add_api_token(
                    [3; 32],
                    &tenant,
                    prets_destinations::Timestamp::from_unix_millis(1).unwrap(),
                )
                .await
            })
        };
        // Sequencing only: let the write reach the writer and block there.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!write.is_finished(), "the write waits for the lock");
        assert_eq!(repo.api_tokens().await.unwrap(), vec![]);
        assert!(!write.is_finished(), "the read did not wait for the write");
        blocker.execute_batch("COMMIT").unwrap();
        write.await.unwrap().unwrap();
        assert_eq!(repo.api_tokens().await.unwrap(), vec![([3; 32], tenant)]);
        drop(blocker);
        drop(repo);
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }

    /// An event stored (its delivery pending) before the schema remembered
    /// event ids gets its id remembered by the migration: publishing the id
    /// again finds it, with its type, payload digest and delivery count.
    #[tokio::test]
    async fn events_stored_before_event_ids_are_remembered() {
        use prets_destinations::Timestamp;
        use prets_destinations::delivery::{
            EnqueueOutcome, Event, ExistingEvent, Outbox as _, Target,
        };

        let path = std::env::temp_dir().join(format!(
            "prets-sqlite-migrate-ids-{}-{:x}.sqlite3",
            std::process::id(),
            os_rng().next_u64()
        ));
        let tenant: TenantId = "org_ids".parse().unwrap();
        let id: DestinationId = "whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K".parse().unwrap();
        let t0 = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
        let event = Event::new("invoice.paid", "{\"a\": 1}".to_owned(), t0, &mut os_rng()).unwrap();
        let ms = i64::try_from(t0.unix_millis()).unwrap();
        {
            let mut conn = Connection::open(&path).unwrap();
            configure(&conn).unwrap();
            // The schema before the event ids' migration.
            let before = super::migrations::MIGRATIONS
                .iter()
                .position(|m| m.contains("CREATE TABLE event_ids"))
                .unwrap();
            migrate_to(&mut conn, before).unwrap();
            conn.execute(
                "INSERT INTO destinations (tenant_id, destination_id, name, url, created_at_ms,
                     updated_at_ms, sealed_secret, secret_digest)
                 VALUES (?1, ?2, 'Old', 'https://example.com/old', ?3, ?3, x'00', x'00')",
                params![tenant.as_str(), id.to_string(), ms],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO events (tenant_id, event_id, event_type, created_at_ms, payload)
                 VALUES (?1, ?2, 'invoice.paid', ?3, ?4)",
                params![
                    tenant.as_str(),
                    event.event_id.to_string(),
                    ms,
                    event.payload.get()
                ],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO deliveries (tenant_id, event_id, destination_id, attempt, due_at_ms)
                 VALUES (?1, ?2, ?3, 1, ?4)",
                params![
                    tenant.as_str(),
                    event.event_id.to_string(),
                    id.to_string(),
                    ms
                ],
            )
            .unwrap();
        }
        let repo = SqliteRepo::open(&path).unwrap();
        let mut other = event.clone();
        other.payload = prets_destinations::delivery::Payload::from_json("2".to_owned()).unwrap();
        for again in [&event, &other] {
            assert_eq!(
                repo.enqueue(&tenant, again, Target::AllEnabled)
                    .await
                    .unwrap(),
                EnqueueOutcome::Exists(ExistingEvent::of(&event, 1))
            );
        }
        drop(repo);
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }

    /// A database at schema 4 (the failure streak in `streak_*` columns)
    /// opens at the current one: the streak moved to `failing_*` with its
    /// CHECK, and the outbox goes on from it (a third failure five days
    /// after the first disables the destination).
    #[tokio::test]
    async fn version_4_databases_keep_their_failure_streaks() {
        use prets_destinations::delivery::{
            Classification, CompleteOutcome, DisablePolicy, DisabledReason, Event, Failure,
            FailureCause, LeaseRequest, LeaseToken, Outbox as _, RetrySchedule,
        };
        use prets_destinations::ops::plan_finish;
        use prets_destinations::{DestinationRepo as _, Timestamp};

        let path = std::env::temp_dir().join(format!(
            "prets-sqlite-migrate-4-{}-{:x}.sqlite3",
            std::process::id(),
            os_rng().next_u64()
        ));
        let tenant: TenantId = "org_streak".parse().unwrap();
        let id: DestinationId = "whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K".parse().unwrap();
        let key = SealingKey::from_rng(KeyId::new(9), &mut os_rng());
        let secret = BearerSecret::from_rng(&mut os_rng());
        let sealed = key.seal(&tenant, id, &secret, &mut os_rng());
        let t0 = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
        let event = Event::new("invoice.paid", "{}".to_owned(), t0, &mut os_rng()).unwrap();
        let ms = |t: Timestamp| i64::try_from(t.unix_millis()).unwrap();
        {
            let mut conn = Connection::open(&path).unwrap();
            configure(&conn).unwrap();
            migrate_to(&mut conn, 4).unwrap();
            conn.execute(
                "INSERT INTO destinations (tenant_id, destination_id, name, url, created_at_ms,
                     updated_at_ms, sealed_secret, secret_digest, streak_since_ms,
                     streak_attempts)
                 VALUES (?1, ?2, 'Old', 'https://example.com/old', ?3, ?3, ?4, ?5, ?3, 2)",
                params![
                    tenant.as_str(),
                    id.to_string(),
                    ms(t0),
                    &sealed.to_bytes()[..],
                    &secret.digest().as_bytes()[..]
                ],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO events (tenant_id, event_id, event_type, created_at_ms, payload)
                 VALUES (?1, ?2, 'invoice.paid', ?3, '{}')",
                params![tenant.as_str(), event.event_id.to_string(), ms(t0)],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO deliveries (tenant_id, event_id, destination_id, attempt, due_at_ms)
                 VALUES (?1, ?2, ?3, 3, ?4)",
                params![
                    tenant.as_str(),
                    event.event_id.to_string(),
                    id.to_string(),
                    ms(t0)
                ],
            )
            .unwrap();
        }
        let repo = SqliteRepo::open(&path).unwrap();
        let later = Timestamp::from_unix_seconds(1_700_000_000 + 5 * 86_400).unwrap();
        let lease = LeaseRequest {
            token: LeaseToken::generate(&mut os_rng()),
            duration: std::time::Duration::from_secs(30),
        };
        let claimed = repo.claim(later, 10.into(), lease).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].attempt, 3);
        let failed = Classification::Failed(Failure {
            cause: FailureCause::Status(500),
            retry_after: None,
        });
        let report = plan_finish(
            &claimed[0],
            &failed,
            later,
            std::time::Duration::from_millis(3),
            &RetrySchedule::default(),
            DisablePolicy::default(),
            &mut os_rng(),
        );
        assert_eq!(
            repo.complete(&claimed[0].lease, report).await.unwrap(),
            CompleteOutcome::Recorded {
                disabled: Some(DisabledReason::Failing),
                retry_at: None
            },
            "the streak stored under schema 4 was not carried over"
        );
        let record = repo.get(&tenant, id).await.unwrap().unwrap();
        assert_eq!(record.disabled_reason, Some(DisabledReason::Failing));
        drop(repo);

        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(usize::try_from(version).unwrap(), schema_version());
        let streak: (i64, i64) = conn
            .query_row(
                "SELECT failing_since_ms, failing_attempts FROM destinations",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(streak, (ms(t0), 3));
        let half = conn.execute("UPDATE destinations SET failing_attempts = NULL", []);
        assert!(half.is_err(), "the streak's CHECK was lost: {half:?}");
        drop(conn);
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }

    /// A database written by the first schema (before versions and
    /// rotation) opens under the current one: its records read back at
    /// version 1 with no previous secrets, and their secrets still open.
    #[tokio::test]
    async fn version_1_databases_migrate_and_keep_their_records() {
        let path = std::env::temp_dir().join(format!(
            "prets-sqlite-migrate-{}-{:x}.sqlite3",
            std::process::id(),
            os_rng().next_u64()
        ));
        let tenant: TenantId = "org_old".parse().unwrap();
        let id: DestinationId = "whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K".parse().unwrap();
        let key = SealingKey::from_rng(KeyId::new(9), &mut os_rng());
        let secret = BearerSecret::from_rng(&mut os_rng());
        let sealed = key.seal(&tenant, id, &secret, &mut os_rng());
        {
            let mut conn = Connection::open(&path).unwrap();
            configure(&conn).unwrap();
            migrate_to(&mut conn, 1).unwrap();
            conn.execute(
                "INSERT INTO destinations VALUES (?1, ?2, 'Old', 'https://example.com/old', 1000, 2000, ?3, ?4)",
                params![
                    tenant.as_str(),
                    id.to_string(),
                    &sealed.to_bytes()[..],
                    &secret.digest().as_bytes()[..]
                ],
            )
            .unwrap();
        }
        let repo = SqliteRepo::open(&path).unwrap();
        let record = repo.get(&tenant, id).await.unwrap().unwrap();
        assert_eq!((record.version, record.previous_secrets.len()), (1, 0));
        assert_eq!(record.name.as_str(), "Old");
        assert_eq!(record.updated_at.unix_millis(), 2000);
        let keyring = Keyring::new(key, []).unwrap();
        assert_eq!(
            *keyring.authorization_header(&tenant, &record).unwrap(),
            *secret.authorization_header()
        );
        drop(repo);
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }

    /// A fresh path in the temporary directory, and its removal.
    fn temp_db(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "prets-sqlite-{name}-{}-{:x}.sqlite3",
            std::process::id(),
            os_rng().next_u64()
        ))
    }

    fn remove_db(path: &std::path::Path) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.to_path_buf().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }

    /// A database from before the lanes (the schema the migration that
    /// creates them starts from) with queued, leased and future deliveries,
    /// one of them leased for a destination disabled since, opens at the
    /// current schema: each delivery of an enabled destination is claimed
    /// exactly once, when it is due or its lease has run out; the disabled
    /// one is dropped by the claim that finds its lease over; a lease taken
    /// before the migration is lost once claimed again; `complete_all`
    /// writes the batch.
    #[tokio::test]
    async fn databases_from_before_the_lanes_migrate_and_every_delivery_is_claimed_once() {
        use std::collections::BTreeSet;
        use std::time::Duration;

        use prets_destinations::Timestamp;
        use prets_destinations::delivery::{
            AttemptId, AttemptMeta, AttemptRecord, AttemptReport, Classification, CompleteOutcome,
            DisablePolicy, Event, Lease, LeaseRequest, LeaseToken, NextStep, Outbox as _,
        };

        let before = super::migrations::MIGRATIONS
            .iter()
            .position(|m| m.contains("CREATE TABLE lanes"))
            .unwrap();
        let path = temp_db("migrate-lanes");
        let key = SealingKey::from_rng(KeyId::new(9), &mut os_rng());
        let t0 = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
        let ms = |t: Timestamp| i64::try_from(t.unix_millis()).unwrap();
        let at = |s: u64| t0.checked_add(Duration::from_secs(s)).unwrap();
        let (a, b): (TenantId, TenantId) = ("org_a".parse().unwrap(), "org_b".parse().unwrap());
        let ids: Vec<DestinationId> = (1..=4).map(|n| DestinationId::from_parts(t0, n)).collect();
        // (tenant, destination, enabled): org_a's first two, org_b's third
        // (disabled since its lease was taken) and fourth.
        let dests = [
            (&a, ids[0], true),
            (&a, ids[1], true),
            (&b, ids[2], false),
            (&b, ids[3], true),
        ];
        let old_token = [1u8; 16];
        // (destination index, due, lease expiry)
        let rows: &[(usize, u64, Option<u64>)] = &[
            (0, 0, None),
            (0, 0, None),
            (0, 0, Some(30)),
            (1, 0, None),
            (1, 100, None),
            (2, 0, Some(30)),
            (3, 0, Some(30)),
            (3, 0, None),
        ];
        let mut events = Vec::new();
        {
            let mut conn = Connection::open(&path).unwrap();
            configure(&conn).unwrap();
            migrate_to(&mut conn, before).unwrap();
            for (tenant, id, enabled) in dests {
                let secret = BearerSecret::from_rng(&mut os_rng());
                let sealed = key.seal(tenant, id, &secret, &mut os_rng());
                conn.execute(
                    "INSERT INTO destinations (tenant_id, destination_id, name, url,
                         created_at_ms, updated_at_ms, sealed_secret, secret_digest, enabled,
                         disabled_reason)
                     VALUES (?1, ?2, 'Old', 'https://example.com/old', ?3, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        tenant.as_str(),
                        id.to_string(),
                        ms(t0),
                        &sealed.to_bytes()[..],
                        &secret.digest().as_bytes()[..],
                        enabled,
                        (!enabled).then_some("manual"),
                    ],
                )
                .unwrap();
            }
            for &(d, due, lease) in rows {
                let (tenant, id, _) = dests[d];
                let event = Event::new("invoice.paid", "{}".to_owned(), t0, &mut os_rng()).unwrap();
                conn.execute(
                    "INSERT INTO events (tenant_id, event_id, event_type, created_at_ms, payload)
                     VALUES (?1, ?2, 'invoice.paid', ?3, '{}')",
                    params![tenant.as_str(), event.event_id.to_string(), ms(t0)],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO deliveries (tenant_id, event_id, destination_id, attempt,
                         due_at_ms, lease_token, lease_expires_ms)
                     VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6)",
                    params![
                        tenant.as_str(),
                        event.event_id.to_string(),
                        id.to_string(),
                        ms(at(due)),
                        lease.map(|_| &old_token[..]),
                        lease.map(|s| ms(at(s))),
                    ],
                )
                .unwrap();
                events.push((tenant.clone(), id, event, lease));
            }
        }
        let repo = SqliteRepo::open(&path).unwrap();
        // Longer than the test: only the old leases run out.
        let lease = || LeaseRequest {
            token: LeaseToken::generate(&mut os_rng()),
            duration: Duration::from_secs(10_000),
        };
        let mut claimed = Vec::new();
        let mut seen = BTreeSet::new();
        for (now, expected) in [(1, 4), (2, 0), (31, 2), (32, 0), (100, 1), (1_000, 0)] {
            let got = repo.claim(at(now), 100.into(), lease()).await.unwrap();
            assert_eq!(got.len(), expected, "claim at +{now}s: {got:?}");
            for c in got {
                assert!(
                    seen.insert(c.lease.delivery.clone()),
                    "claimed twice: {c:?}"
                );
                assert!(c.destination.enabled);
                claimed.push(c);
            }
        }
        let expected: BTreeSet<_> = events
            .iter()
            .filter(|(_, id, _, _)| *id != ids[2])
            .map(
                |(tenant, id, event, _)| prets_destinations::delivery::DeliveryKey {
                    tenant: tenant.clone(),
                    event_id: event.event_id,
                    destination_id: *id,
                },
            )
            .collect();
        assert_eq!(seen, expected);
        // The lease taken before the migration, lost since.
        let (tenant, id, event, _) = events
            .iter()
            .find(|(_, id, _, lease)| *id == ids[0] && lease.is_some())
            .unwrap();
        let stale = Lease {
            token: LeaseToken::from_bytes(old_token),
            delivery: prets_destinations::delivery::DeliveryKey {
                tenant: tenant.clone(),
                event_id: event.event_id,
                destination_id: *id,
            },
            expires_at: at(30),
        };
        let report = |c: &prets_destinations::delivery::Claimed| {
            let meta = AttemptMeta {
                attempt_id: AttemptId::generate(at(1_001), &mut os_rng()),
                event_id: c.event.event_id,
                destination_id: c.lease.delivery.destination_id,
                attempt: c.attempt,
                started_at: at(1_001),
                duration_ms: 5,
            };
            let delivered = Classification::Delivered { status: 200 };
            AttemptReport {
                attempt: AttemptRecord::new(meta, &delivered, &NextStep::Delivered),
                next: NextStep::Delivered,
                disable: DisablePolicy::default(),
            }
        };
        let mut batch = vec![(stale, report(&claimed[0]))];
        batch.extend(claimed.iter().map(|c| (c.lease.clone(), report(c))));
        let outcomes = repo.complete_all(batch).await.unwrap();
        assert_eq!(outcomes[0], CompleteOutcome::LeaseLost);
        assert!(
            outcomes[1..].iter().all(|o| *o
                == CompleteOutcome::Recorded {
                    disabled: None,
                    retry_at: None
                }),
            "{outcomes:?}"
        );
        assert!(
            repo.claim(at(2_000), 100.into(), lease())
                .await
                .unwrap()
                .is_empty()
        );
        drop(repo);
        let conn = Connection::open(&path).unwrap();
        let left: (i64, i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM deliveries), (SELECT count(*) FROM events),
                     (SELECT count(*) FROM attempts)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        // Every delivery done; the events stay in the event log.
        assert_eq!(left, (0, 8, 7));
        drop(conn);
        remove_db(&path);
    }
}
