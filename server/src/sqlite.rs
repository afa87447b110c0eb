//! `SqliteRepo`: a [`DestinationRepo`] on an embedded SQLite database file.
//!
//! One connection, owned by one worker thread, runs every statement. Callers
//! hand it jobs over a channel and await the answer on a oneshot channel, so
//! the repo's futures need no particular runtime and never block an executor
//! thread. The worker takes every job waiting in the queue (up to
//! [`MAX_BATCH`]) into one transaction, each job in its own savepoint, and
//! answers them only after `COMMIT` returned: a group commit, one `fsync` for
//! many concurrent creates, and still no answer before the data is durable.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread;

use prets_destinations::{
    DestinationId, DestinationName, DestinationRecord, DestinationRepo, DestinationUrl,
    InsertOutcome, SealedSecret, SecretDigest, TenantId, Timestamp,
};
use rusqlite::{Connection, OptionalExtension as _, Row, params};
use tokio::sync::oneshot;

/// Most jobs the worker commits in one transaction.
pub const MAX_BATCH: usize = 256;

/// The schema, one entry per version: entry `n` takes a database from
/// `user_version` `n` to `n + 1`. Append only; never edit a released entry.
const MIGRATIONS: &[&str] = &[
    // 1: destinations and API tokens.
    "CREATE TABLE destinations (
        tenant_id      TEXT    NOT NULL,
        destination_id TEXT    NOT NULL,
        name           TEXT    NOT NULL,
        url            TEXT    NOT NULL,
        created_at_ms  INTEGER NOT NULL,
        updated_at_ms  INTEGER NOT NULL,
        sealed_secret  BLOB    NOT NULL,
        secret_digest  BLOB    NOT NULL,
        PRIMARY KEY (tenant_id, destination_id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX destinations_by_secret_digest ON destinations (secret_digest);
    CREATE TABLE api_tokens (
        token_digest  BLOB    NOT NULL PRIMARY KEY,
        tenant_id     TEXT    NOT NULL,
        created_at_ms INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;",
];

/// The schema version this build writes: the number of migrations.
#[must_use]
pub fn schema_version() -> usize {
    MIGRATIONS.len()
}

const COLUMNS: &str =
    "destination_id, name, url, created_at_ms, updated_at_ms, sealed_secret, secret_digest";

type Finish = Box<dyn FnOnce(Option<&SqliteError>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Finish + Send>;

/// A [`DestinationRepo`] on a SQLite database file, in WAL mode with
/// `synchronous = FULL`: an insert has reached the disk when it returns
/// `Ok(Inserted)`.
///
/// Dropping it lets the worker finish the queued jobs, closes the database
/// and waits for that.
pub struct SqliteRepo {
    jobs: Option<mpsc::Sender<Job>>,
    worker: Option<thread::JoinHandle<()>>,
}

impl fmt::Debug for SqliteRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteRepo").finish_non_exhaustive()
    }
}

/// A storage failure of [`SqliteRepo`]. Its text names the failure, never a
/// stored value.
#[derive(Clone, Debug)]
pub struct SqliteError(Arc<ErrorKind>);

#[derive(Debug)]
enum ErrorKind {
    Sqlite(rusqlite::Error),
    Corrupt(&'static str),
    SchemaTooNew { found: i64, known: usize },
    Unavailable,
}

impl fmt::Display for SqliteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            ErrorKind::Sqlite(_) => f.write_str("sqlite failed"),
            ErrorKind::Corrupt(column) => write!(f, "stored {column} is not valid"),
            ErrorKind::SchemaTooNew { found, known } => write!(
                f,
                "database schema version {found} is newer than this server's {known}"
            ),
            ErrorKind::Unavailable => f.write_str("the database worker has stopped"),
        }
    }
}

impl std::error::Error for SqliteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.0 {
            ErrorKind::Sqlite(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for SqliteError {
    fn from(e: rusqlite::Error) -> Self {
        Self(Arc::new(ErrorKind::Sqlite(e)))
    }
}

impl SqliteError {
    fn corrupt(column: &'static str) -> Self {
        Self(Arc::new(ErrorKind::Corrupt(column)))
    }

    fn unavailable() -> Self {
        Self(Arc::new(ErrorKind::Unavailable))
    }
}

/// What a job body may fail with: SQLite, or a row that does not decode.
type JobResult<T> = Result<T, SqliteError>;

impl SqliteRepo {
    /// Opens the database at `path`, creating the file if it does not exist,
    /// switches it to WAL mode, applies the migrations it lacks, and starts the
    /// worker thread.
    ///
    /// # Errors
    /// If the file cannot be opened or created, is not a SQLite database, has
    /// a newer schema than this build, or a migration fails.
    pub fn open(path: &Path) -> Result<Self, SqliteError> {
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        migrate(&mut conn)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let worker = thread::Builder::new()
            .name("sqlite-repo".into())
            .spawn(move || work(&conn, &queue))
            .map_err(|_| SqliteError::unavailable())?;
        Ok(Self {
            jobs: Some(jobs),
            worker: Some(worker),
        })
    }

    /// Runs `body` on the worker, in its own savepoint of the current batch's
    /// transaction, and returns its result once the transaction committed.
    async fn call<T, F>(&self, body: F) -> Result<T, SqliteError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> JobResult<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = in_savepoint(conn, body);
            Box::new(move |commit_failed: Option<&SqliteError>| {
                let result = match commit_failed {
                    Some(e) => Err(e.clone()),
                    None => result,
                };
                // The caller may have gone away; then nobody needs the answer.
                let _ = answer.send(result);
            })
        });
        let jobs = self.jobs.as_ref().ok_or_else(SqliteError::unavailable)?;
        jobs.send(job).map_err(|_| SqliteError::unavailable())?;
        answered.await.map_err(|_| SqliteError::unavailable())?
    }

    /// Every API token digest stored in the database, with its organization.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn api_tokens(&self) -> Result<Vec<([u8; 32], TenantId)>, SqliteError> {
        self.call(|conn| {
            let mut stmt = conn.prepare_cached("SELECT token_digest, tenant_id FROM api_tokens")?;
            let rows = stmt.query_map([], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, String>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (digest, tenant) = row?;
                let digest: [u8; 32] = digest
                    .try_into()
                    .map_err(|_| SqliteError::corrupt("token digest"))?;
                let tenant =
                    TenantId::try_from(tenant).map_err(|_| SqliteError::corrupt("tenant id"))?;
                out.push((digest, tenant));
            }
            Ok(out)
        })
        .await
    }

    /// Stores an API token digest for `tenant`.
    ///
    /// # Errors
    /// On a storage failure, or if the digest is already stored.
    pub async fn add_api_token(
        &self,
        digest: [u8; 32],
        tenant: &TenantId,
        now: Timestamp,
    ) -> Result<(), SqliteError> {
        let tenant = tenant.as_str().to_owned();
        let now = millis(now);
        self.call(move |conn| {
            conn.prepare_cached(
                "INSERT INTO api_tokens (token_digest, tenant_id, created_at_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![&digest[..], tenant, now])?;
            Ok(())
        })
        .await
    }
}

impl Drop for SqliteRepo {
    fn drop(&mut self) {
        // Closing the channel ends the worker once the queue is empty.
        drop(self.jobs.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn configure(conn: &Connection) -> Result<(), SqliteError> {
    // WAL: readers never block the writer; with synchronous = FULL every
    // commit syncs the WAL before it returns, so a 2xx is never sent for a
    // record a power cut could still take back (NORMAL would only sync at
    // checkpoints).
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SqliteError::corrupt("journal mode"));
    }
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;",
    )?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), SqliteError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len();
    let start = usize::try_from(found)
        .ok()
        .filter(|v| *v <= known)
        .ok_or(SqliteError(Arc::new(ErrorKind::SchemaTooNew {
            found,
            known,
        })))?;
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(start) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        // `user_version` takes no bound parameter; the value is our own count.
        tx.execute_batch(&format!("PRAGMA user_version = {}", version + 1))?;
        tx.commit()?;
    }
    Ok(())
}

fn work(conn: &Connection, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let e = SqliteError::from(e);
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "could not begin a transaction");
            // Dropping the jobs answers each caller with `Unavailable`.
            continue;
        }
        let finishers: Vec<Finish> = batch.into_iter().map(|job| job(conn)).collect();
        let committed = conn.execute_batch("COMMIT").map_err(SqliteError::from);
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let failure = committed.err();
        for finish in finishers {
            finish(failure.as_ref());
        }
    }
}

fn in_savepoint<T>(
    conn: &Connection,
    body: impl FnOnce(&Connection) -> JobResult<T>,
) -> JobResult<T> {
    conn.execute_batch("SAVEPOINT job")?;
    match body(conn) {
        Ok(value) => {
            conn.execute_batch("RELEASE job")?;
            Ok(value)
        }
        Err(e) => {
            // Undo this job's writes only; the batch's other jobs stand.
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            Err(e)
        }
    }
}

fn millis(t: Timestamp) -> i64 {
    // Timestamps end in year 9999, far below i64::MAX milliseconds.
    i64::try_from(t.unix_millis()).unwrap_or(i64::MAX)
}

fn timestamp(ms: i64, column: &'static str) -> JobResult<Timestamp> {
    u64::try_from(ms)
        .ok()
        .and_then(Timestamp::from_unix_millis)
        .ok_or(SqliteError::corrupt(column))
}

/// The raw columns of one row, decoded into a record outside rusqlite's
/// row callback so that decoding errors keep their own type.
struct RawRow {
    destination_id: String,
    name: String,
    url: String,
    created_at: i64,
    updated_at: i64,
    sealed_secret: Vec<u8>,
    secret_digest: Vec<u8>,
}

impl RawRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            destination_id: row.get(0)?,
            name: row.get(1)?,
            url: row.get(2)?,
            created_at: row.get(3)?,
            updated_at: row.get(4)?,
            sealed_secret: row.get(5)?,
            secret_digest: row.get(6)?,
        })
    }

    fn decode(self) -> JobResult<DestinationRecord> {
        let digest: [u8; 32] = self
            .secret_digest
            .try_into()
            .map_err(|_| SqliteError::corrupt("secret digest"))?;
        Ok(DestinationRecord {
            destination_id: DestinationId::try_from(self.destination_id)
                .map_err(|_| SqliteError::corrupt("destination id"))?,
            name: DestinationName::try_from(self.name).map_err(|_| SqliteError::corrupt("name"))?,
            url: DestinationUrl::try_from(self.url).map_err(|_| SqliteError::corrupt("url"))?,
            created_at: timestamp(self.created_at, "created at")?,
            updated_at: timestamp(self.updated_at, "updated at")?,
            sealed_secret: SealedSecret::from_bytes(&self.sealed_secret)
                .map_err(|_| SqliteError::corrupt("sealed secret"))?,
            secret_digest: SecretDigest::from_bytes(digest),
        })
    }
}

impl DestinationRepo for SqliteRepo {
    type Error = SqliteError;

    async fn insert(
        &self,
        tenant: &TenantId,
        record: &DestinationRecord,
    ) -> Result<InsertOutcome, SqliteError> {
        let tenant = tenant.as_str().to_owned();
        let r = record.clone();
        self.call(move |conn| {
            let changed = conn
                .prepare_cached(
                    "INSERT INTO destinations (tenant_id, destination_id, name, url, created_at_ms,
                         updated_at_ms, sealed_secret, secret_digest)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (tenant_id, destination_id) DO NOTHING",
                )?
                .execute(params![
                    tenant,
                    r.destination_id.to_string(),
                    r.name.as_str(),
                    r.url.as_str(),
                    millis(r.created_at),
                    millis(r.updated_at),
                    &r.sealed_secret.to_bytes()[..],
                    &r.secret_digest.as_bytes()[..],
                ])?;
            Ok(if changed == 1 {
                InsertOutcome::Inserted
            } else {
                InsertOutcome::Duplicate
            })
        })
        .await
    }

    async fn get(
        &self,
        tenant: &TenantId,
        id: DestinationId,
    ) -> Result<Option<DestinationRecord>, SqliteError> {
        let tenant = tenant.as_str().to_owned();
        self.call(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM destinations WHERE tenant_id = ?1 AND destination_id = ?2"
            ))?
            .query_row(params![tenant, id.to_string()], RawRow::read)
            .optional()?
            .map(RawRow::decode)
            .transpose()
        })
        .await
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<DestinationRecord>, SqliteError> {
        let tenant = tenant.as_str().to_owned();
        self.call(move |conn| {
            // Ids are fixed-length Crockford base32, whose alphabet is in
            // ASCII order: text order is id order.
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM destinations WHERE tenant_id = ?1 ORDER BY destination_id"
            ))?;
            let rows = stmt.query_map(params![tenant], RawRow::read)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row?.decode()?);
            }
            Ok(out)
        })
        .await
    }

    async fn find_by_digest(
        &self,
        digest: &SecretDigest,
    ) -> Result<Vec<(TenantId, DestinationRecord)>, SqliteError> {
        let digest = *digest.as_bytes();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS}, tenant_id FROM destinations WHERE secret_digest = ?1"
            ))?;
            let rows = stmt.query_map(params![&digest[..]], |row| {
                Ok((RawRow::read(row)?, row.get::<_, String>(7)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (raw, tenant) = row?;
                let tenant =
                    TenantId::try_from(tenant).map_err(|_| SqliteError::corrupt("tenant id"))?;
                out.push((tenant, raw.decode()?));
            }
            Ok(out)
        })
        .await
    }
}
