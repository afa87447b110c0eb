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
    InsertOutcome, PreviousSecret, RemoveOutcome, ReplaceOutcome, SealedSecret, SecretDigest,
    TenantId, Timestamp,
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
    // 2: versions and rotated-out secrets.
    "ALTER TABLE destinations ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    CREATE TABLE previous_secrets (
        tenant_id      TEXT    NOT NULL,
        destination_id TEXT    NOT NULL,
        position       INTEGER NOT NULL,
        sealed_secret  BLOB    NOT NULL,
        secret_digest  BLOB    NOT NULL,
        expires_at_ms  INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, destination_id, position),
        FOREIGN KEY (tenant_id, destination_id)
            REFERENCES destinations (tenant_id, destination_id) ON DELETE CASCADE
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX previous_secrets_by_secret_digest ON previous_secrets (secret_digest);",
];

/// The schema version this build writes: the number of migrations.
#[must_use]
pub fn schema_version() -> usize {
    MIGRATIONS.len()
}

const COLUMNS: &str = "destination_id, name, url, created_at_ms, updated_at_ms, sealed_secret, secret_digest, version";

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
    SchemaTooNew {
        found: i64,
        known: usize,
    },
    Unavailable,
    /// The database file could not be created.
    Create(std::io::Error),
    /// SQLite rolled back the whole batch's transaction (disk full, I/O
    /// error): nothing of the batch was written.
    RolledBack,
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
            ErrorKind::Create(_) => f.write_str("cannot create the database file"),
            ErrorKind::RolledBack => {
                f.write_str("the transaction was rolled back by an earlier failure in its batch")
            }
        }
    }
}

impl std::error::Error for SqliteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.0 {
            ErrorKind::Sqlite(e) => Some(e),
            ErrorKind::Create(e) => Some(e),
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

    fn rolled_back() -> Self {
        Self(Arc::new(ErrorKind::RolledBack))
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

/// What a job body may fail with: SQLite, or a row that does not decode.
type JobResult<T> = Result<T, SqliteError>;

impl SqliteRepo {
    /// Opens the database at `path`, creating the file (mode 0600 on Unix,
    /// whatever the umask; SQLite gives its `-wal` and `-shm` files the same
    /// mode) if it does not exist, switches it to WAL mode, applies the migrations it lacks, and starts the
    /// worker thread.
    ///
    /// # Errors
    /// If the file cannot be opened or created, is not a SQLite database, has
    /// a newer schema than this build, or a migration fails.
    pub fn open(path: &Path) -> Result<Self, SqliteError> {
        create_private(path)?;
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
        let mut finishers: Vec<Finish> = Vec::with_capacity(batch.len());
        let mut jobs = batch.into_iter();
        for job in jobs.by_ref() {
            finishers.push(job(conn));
            // Some errors (a full disk, an I/O error) make SQLite roll back
            // the whole transaction, not just the job's savepoint. The jobs
            // after it must not run outside a transaction, where each would
            // commit on its own.
            if conn.is_autocommit() {
                break;
            }
        }
        // Jobs that never ran answer their callers with `Unavailable` on drop.
        drop(jobs);
        let committed = if conn.is_autocommit() {
            Err(SqliteError::rolled_back())
        } else {
            conn.execute_batch("COMMIT").map_err(SqliteError::from)
        };
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
    version: i64,
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
            version: row.get(7)?,
        })
    }

    /// The record, with its previous secrets read from `conn` (in the same
    /// transaction as the row).
    fn decode(self, conn: &Connection, tenant: &str) -> JobResult<DestinationRecord> {
        let previous_secrets = previous_secrets(conn, tenant, &self.destination_id)?;
        let digest: [u8; 32] = self
            .secret_digest
            .try_into()
            .map_err(|_| SqliteError::corrupt("secret digest"))?;
        Ok(DestinationRecord {
            destination_id: DestinationId::try_from(self.destination_id)
                .map_err(|_| SqliteError::corrupt("destination id"))?,
            name: DestinationName::try_from(self.name).map_err(|_| SqliteError::corrupt("name"))?,
            // Not re-judged by today's host policy: see `from_stored`.
            url: DestinationUrl::from_stored(self.url).map_err(|_| SqliteError::corrupt("url"))?,
            created_at: timestamp(self.created_at, "created at")?,
            updated_at: timestamp(self.updated_at, "updated at")?,
            sealed_secret: SealedSecret::from_bytes(&self.sealed_secret)
                .map_err(|_| SqliteError::corrupt("sealed secret"))?,
            secret_digest: SecretDigest::from_bytes(digest),
            version: version_from_sql(self.version),
            previous_secrets,
        })
    }
}

fn digest(bytes: Vec<u8>) -> JobResult<SecretDigest> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| SqliteError::corrupt("secret digest"))?;
    Ok(SecretDigest::from_bytes(bytes))
}

/// The previous secrets of one destination, newest first (as stored).
fn previous_secrets(
    conn: &Connection,
    tenant: &str,
    destination_id: &str,
) -> JobResult<Vec<PreviousSecret>> {
    let mut stmt = conn.prepare_cached(
        "SELECT sealed_secret, secret_digest, expires_at_ms FROM previous_secrets
         WHERE tenant_id = ?1 AND destination_id = ?2 ORDER BY position",
    )?;
    let rows = stmt.query_map(params![tenant, destination_id], |row| {
        Ok((
            row.get::<_, Vec<u8>>(0)?,
            row.get::<_, Vec<u8>>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (sealed, secret_digest, expires_at) = row?;
        out.push(PreviousSecret {
            sealed_secret: SealedSecret::from_bytes(&sealed)
                .map_err(|_| SqliteError::corrupt("previous sealed secret"))?,
            secret_digest: digest(secret_digest)?,
            expires_at: timestamp(expires_at, "previous secret expiry")?,
        });
    }
    Ok(out)
}

/// Stores `record`'s previous secrets, replacing those stored for it unless
/// `fresh` (a row just inserted has none: a removed destination's went with
/// it).
fn write_previous_secrets(
    conn: &Connection,
    tenant: &str,
    record: &DestinationRecord,
    fresh: bool,
) -> JobResult<()> {
    if fresh && record.previous_secrets.is_empty() {
        return Ok(());
    }
    let id = record.destination_id.to_string();
    conn.prepare_cached(
        "DELETE FROM previous_secrets WHERE tenant_id = ?1 AND destination_id = ?2",
    )?
    .execute(params![tenant, id])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO previous_secrets (tenant_id, destination_id, position, sealed_secret,
             secret_digest, expires_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (position, previous) in record.previous_secrets.iter().enumerate() {
        let position = i64::try_from(position).map_err(|_| SqliteError::corrupt("position"))?;
        insert.execute(params![
            tenant,
            id,
            position,
            &previous.sealed_secret.to_bytes()[..],
            &previous.secret_digest.as_bytes()[..],
            millis(previous.expires_at),
        ])?;
    }
    Ok(())
}

/// A version as SQLite's signed 64-bit integer: the same 64 bits, so every
/// `u64` round-trips and compares for equality (versions are never ordered
/// in SQL).
fn version(v: u64) -> i64 {
    i64::from_be_bytes(v.to_be_bytes())
}

fn version_from_sql(v: i64) -> u64 {
    u64::from_be_bytes(v.to_be_bytes())
}

/// Reads the records of a statement's rows (the `COLUMNS`, for `tenant`).
fn read_records(
    conn: &Connection,
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
    tenant: &str,
) -> JobResult<Vec<DestinationRecord>> {
    let raw: Vec<RawRow> = stmt
        .query_map(params, RawRow::read)?
        .collect::<rusqlite::Result<_>>()?;
    raw.into_iter().map(|r| r.decode(conn, tenant)).collect()
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
                         updated_at_ms, sealed_secret, secret_digest, version)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
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
                    version(r.version),
                ])?;
            if changed != 1 {
                return Ok(InsertOutcome::Duplicate);
            }
            write_previous_secrets(conn, &tenant, &r, true)?;
            Ok(InsertOutcome::Inserted)
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
            .map(|raw| raw.decode(conn, &tenant))
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
            read_records(conn, &mut stmt, params![tenant], &tenant)
        })
        .await
    }

    async fn find_by_digest(
        &self,
        digest: &SecretDigest,
    ) -> Result<Vec<(TenantId, DestinationRecord)>, SqliteError> {
        let digest = *digest.as_bytes();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT tenant_id, destination_id FROM destinations WHERE secret_digest = ?1
                 UNION
                 SELECT tenant_id, destination_id FROM previous_secrets WHERE secret_digest = ?1
                 ORDER BY tenant_id, destination_id",
            )?;
            let keys: Vec<(String, String)> = stmt
                .query_map(params![&digest[..]], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut get = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM destinations WHERE tenant_id = ?1 AND destination_id = ?2"
            ))?;
            let mut out = Vec::new();
            for (tenant, id) in keys {
                let raw = get.query_row(params![tenant, id], RawRow::read)?;
                let record = raw.decode(conn, &tenant)?;
                let tenant =
                    TenantId::try_from(tenant).map_err(|_| SqliteError::corrupt("tenant id"))?;
                out.push((tenant, record));
            }
            Ok(out)
        })
        .await
    }

    async fn list_page(
        &self,
        tenant: &TenantId,
        after: Option<DestinationId>,
        limit: usize,
    ) -> Result<Vec<DestinationRecord>, SqliteError> {
        let tenant = tenant.as_str().to_owned();
        // Every id is greater than the empty string.
        let after = after.map(|id| id.to_string()).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM destinations
                 WHERE tenant_id = ?1 AND destination_id > ?2
                 ORDER BY destination_id LIMIT ?3"
            ))?;
            read_records(conn, &mut stmt, params![tenant, after, limit], &tenant)
        })
        .await
    }

    async fn replace(
        &self,
        tenant: &TenantId,
        expected_version: u64,
        record: &DestinationRecord,
    ) -> Result<ReplaceOutcome, SqliteError> {
        let tenant = tenant.as_str().to_owned();
        let r = record.clone();
        self.call(move |conn| {
            let id = r.destination_id.to_string();
            // The version check and the write are one statement.
            let changed = conn
                .prepare_cached(
                    "UPDATE destinations SET name = ?3, url = ?4, created_at_ms = ?5,
                         updated_at_ms = ?6, sealed_secret = ?7, secret_digest = ?8, version = ?9
                     WHERE tenant_id = ?1 AND destination_id = ?2 AND version = ?10",
                )?
                .execute(params![
                    tenant,
                    id,
                    r.name.as_str(),
                    r.url.as_str(),
                    millis(r.created_at),
                    millis(r.updated_at),
                    &r.sealed_secret.to_bytes()[..],
                    &r.secret_digest.as_bytes()[..],
                    version(r.version),
                    version(expected_version),
                ])?;
            if changed == 1 {
                write_previous_secrets(conn, &tenant, &r, false)?;
                return Ok(ReplaceOutcome::Replaced);
            }
            let exists = conn
                .prepare_cached(
                    "SELECT 1 FROM destinations WHERE tenant_id = ?1 AND destination_id = ?2",
                )?
                .exists(params![tenant, id])?;
            Ok(if exists {
                ReplaceOutcome::VersionMismatch
            } else {
                ReplaceOutcome::NotFound
            })
        })
        .await
    }

    async fn remove(
        &self,
        tenant: &TenantId,
        id: DestinationId,
    ) -> Result<RemoveOutcome, SqliteError> {
        let tenant = tenant.as_str().to_owned();
        self.call(move |conn| {
            // Previous secrets go with the row (ON DELETE CASCADE).
            let removed = conn
                .prepare_cached(
                    "DELETE FROM destinations WHERE tenant_id = ?1 AND destination_id = ?2",
                )?
                .execute(params![tenant, id.to_string()])?;
            Ok(if removed == 1 {
                RemoveOutcome::Removed
            } else {
                RemoveOutcome::NotFound
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prets_destinations::{
        BearerSecret, KeyId, Keyring, SealingKey, os_rng, rand_core::Rng as _,
    };

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
            let conn = Connection::open(&path).unwrap();
            configure(&conn).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch("PRAGMA user_version = 1").unwrap();
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
}
