//! `PgRepo`: a [`DestinationRepo`] on PostgreSQL through a connection pool.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use prets_destinations::delivery::DisabledReason;
use prets_destinations::limits::Quotas;
use prets_destinations::{
    DestinationId, DestinationRecord, DestinationRepo, InsertOutcome, RemoveOutcome,
    ReplaceOutcome, SecretDigest, TenantId,
};
use tokio::runtime::Handle;
use tokio_postgres::NoTls;

use crate::clock::DbClock;
use crate::deliveries::{drop_all, drop_unleased};
use crate::error::PgError;
use crate::rows::{decode, decode_all, limit, millis, select, version};
use crate::schema::migrate;

/// How long opening one connection may take (TCP connect and startup)
/// before it fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a call waits for a pooled connection (all busy), or for a new
/// one to open, before it fails: calls made while the database is down
/// return `Err` within about this long, never hang.
pub const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle time before a connection's first TCP keepalive probe (unless the
/// connection string sets `keepalives_idle`).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// Time between unanswered keepalive probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes before the connection is dropped.
const KEEPALIVE_RETRIES: u32 = 3;
/// How long sent data may stay unacknowledged before the connection is
/// dropped (Linux `TCP_USER_TIMEOUT`; unless the string sets
/// `tcp_user_timeout`).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// A [`DestinationRepo`] on PostgreSQL.
///
/// Each node of a cluster opens its own; they share only the database.
/// Every call runs as a task on the tokio runtime [`connect`](Self::connect)
/// was called in, so the repo's futures can be awaited from anywhere (any
/// executor, any thread), and a call whose caller stops waiting still runs
/// to its commit or rollback, never half-way.
///
/// Writes are committed with `synchronous_commit = on` (set on every
/// connection): `Ok` comes after the commit record is flushed to disk. The
/// delivery worker's claims and completions are too, though losing one in
/// a crash of the database would only make a delivery be attempted again:
/// until a commit is flushed, no reader may mark the index entries of the
/// rows it replaced or deleted as dead, so every claim would walk them
/// again (measured in `docs/benchmarks.md`).
#[derive(Clone)]
pub struct PgRepo {
    pool: Pool,
    runtime: Handle,
    clock: Arc<DbClock>,
    turns: Arc<Turns>,
    /// The pool's connection settings, for the listening connection.
    config: Arc<tokio_postgres::Config>,
    /// The state of this node's publish notifications (see `listen.rs`).
    notifying: Arc<AtomicU8>,
    /// The caps enforced per organization.
    pub(crate) quotas: Quotas,
}

/// What one node remembers between claims.
#[derive(Debug)]
struct Turns {
    /// The tenant the next claim starts after.
    after: Mutex<String>,
    origin: Instant,
    /// Milliseconds since `origin` of the last background vacuum check.
    checked_at_ms: AtomicI64,
    vacuuming: AtomicBool,
    /// Queue rows this node made dead (deliveries leased, finished or
    /// retried; pending changes folded by an enqueue) since its last
    /// [`VACUUM`](PgRepo::vacuum_queues).
    churned: AtomicU64,
}

/// How often claims may start a background vacuum of the queue.
const VACUUM_EVERY: Duration = Duration::from_secs(1);

/// The queue rows a node makes dead before it vacuums the queue in the
/// background (at most once per [`VACUUM_EVERY`]), plus
/// 1/[`VACUUM_SCALE`] of the rows `deliveries` holds: a vacuum reads the
/// tables' indexes whole, so a deeper queue is vacuumed after
/// proportionally more changes, and a change's share of the cost stays
/// the same at any depth (as autovacuum's scale factor does).
const VACUUM_AFTER: u64 = 2_000;

/// See [`VACUUM_AFTER`]: a deep queue is vacuumed after a twentieth of its
/// rows changed.
const VACUUM_SCALE: u64 = 20;

/// Whether a node that made `churned` queue rows dead vacuums a queue of
/// `rows` deliveries.
const fn vacuum_due(churned: u64, rows: u64) -> bool {
    churned >= VACUUM_AFTER.saturating_add(rows / VACUUM_SCALE)
}

impl fmt::Debug for PgRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool's config holds the connection string and its password.
        f.debug_struct("PgRepo").finish_non_exhaustive()
    }
}

impl PgRepo {
    /// Connects to the database at `url` (a `postgres://` URL or a
    /// `key=value` connection string) with a pool of at most `pool_size`
    /// connections, applies the schema migrations it lacks (see
    /// [`schema_version`](crate::schema_version)) and returns the repo.
    ///
    /// Must be called inside a tokio runtime (with the `time` and `net`
    /// drivers enabled); the repo's calls run on it.
    ///
    /// # Errors
    /// If `url` does not parse, `pool_size` is 0, there is no runtime, the
    /// database cannot be reached within [`CONNECT_TIMEOUT`], its schema is
    /// newer than this build's, or a migration fails.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self, PgError> {
        if pool_size == 0 {
            return Err(PgError::pool_size());
        }
        let runtime = Handle::try_current().map_err(|_| PgError::no_runtime())?;
        let mut config: tokio_postgres::Config = url.parse().map_err(PgError::url)?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.keepalives(true);
        // A database that vanished without closing its connections (a
        // crashed host, a cut network) is noticed within about a minute, not
        // the system default of hours; values in `url` win.
        if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            config.keepalives_idle(KEEPALIVE_IDLE);
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(KEEPALIVE_INTERVAL);
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(KEEPALIVE_RETRIES);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        // Durable on `Ok`, whatever the server's default.
        let options = match config.get_options() {
            Some(o) if !o.is_empty() => format!("{o} -c synchronous_commit=on"),
            _ => "-c synchronous_commit=on".to_owned(),
        };
        config.options(options);
        if config.get_application_name().is_none() {
            config.application_name("prets-destinations");
        }
        let listen_config = Arc::new(config.clone());
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(PgError::connect)?;
        let mut client = pool.get().await?;
        migrate(&mut client).await?;
        let clock = Arc::new(DbClock::measure(&client).await?);
        drop(client);
        Ok(Self {
            pool,
            runtime,
            clock,
            turns: Arc::new(Turns {
                after: Mutex::new(String::new()),
                origin: Instant::now(),
                checked_at_ms: AtomicI64::new(0),
                vacuuming: AtomicBool::new(false),
                churned: AtomicU64::new(0),
            }),
            config: listen_config,
            notifying: Arc::default(),
            quotas: Quotas::UNLIMITED,
        })
    }

    /// The state of this node's publish notifications.
    pub(crate) fn notifying(&self) -> &AtomicU8 {
        &self.notifying
    }

    /// The connection settings of the pool's connections.
    pub(crate) fn listen_config(&self) -> Arc<tokio_postgres::Config> {
        Arc::clone(&self.config)
    }

    /// Runs `task` on the repo's runtime, detached.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        drop(self.runtime.spawn(task));
    }

    /// This repo enforcing `quotas` per organization: a tenant's inserts of
    /// destinations, and its writes that add deliveries (enqueues, resends,
    /// recovers), are serialized by advisory locks of the tenant (on every
    /// node), and counted under them.
    #[must_use]
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// The tenant this node's next claim starts after.
    pub(crate) fn claim_after(&self) -> String {
        self.turns
            .after
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_claim_after(&self, tenant: String) {
        *self
            .turns
            .after
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = tenant;
    }

    /// Vacuums the queue on the runtime when this node made enough of its
    /// rows dead (see [`VACUUM_AFTER`]), no vacuum of this node is running
    /// and the last check was over [`VACUUM_EVERY`] ago; its errors are
    /// dropped (the next one retries).
    pub(crate) fn vacuum_in_background(&self) {
        let t = &self.turns;
        let now = i64::try_from(t.origin.elapsed().as_millis()).unwrap_or(i64::MAX);
        let every = i64::try_from(VACUUM_EVERY.as_millis()).unwrap_or(i64::MAX);
        if now.saturating_sub(t.checked_at_ms.load(Ordering::Relaxed)) < every
            || t.vacuuming.swap(true, Ordering::AcqRel)
        {
            return;
        }
        t.checked_at_ms.store(now, Ordering::Relaxed);
        let repo = self.clone();
        self.runtime.spawn(async move {
            let churned = repo.turns.churned.load(Ordering::Relaxed);
            if churned >= VACUUM_AFTER {
                let rows = repo.queue_rows().await.unwrap_or(u64::MAX);
                if vacuum_due(churned, rows) {
                    repo.turns.churned.store(0, Ordering::Relaxed);
                    let _ = repo.vacuum_queues().await;
                }
            }
            repo.turns.vacuuming.store(false, Ordering::Release);
        });
    }

    /// The highest schema version applied to the database (0 when none
    /// is), read afresh: a host compares it with [`schema_version`] to
    /// tell whether the database is ready for this build.
    ///
    /// [`schema_version`]: crate::schema::schema_version
    ///
    /// # Errors
    /// Only storage failures (the database unreachable, the table gone).
    pub async fn schema_version_found(&self) -> Result<i64, PgError> {
        self.run(|pool| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached("SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations")
                .await?;
            Ok(client.query_one(&stmt, &[]).await?.try_get(0)?)
        })
        .await
    }

    /// Counts `n` queue rows this node made dead: leased, finished or
    /// retried deliveries, and an enqueue's fold of pending changes.
    pub(crate) fn churned(&self, n: usize) {
        self.turns
            .churned
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The rows of `deliveries` as the planner's statistics last counted
    /// them (0 before its first vacuum or analyze): one catalog row.
    async fn queue_rows(&self) -> Result<u64, PgError> {
        self.run(|pool| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT GREATEST(reltuples, 0)::BIGINT FROM pg_class
                     WHERE oid = 'deliveries'::regclass",
                )
                .await?;
            let rows: i64 = client.query_one(&stmt, &[]).await?.try_get(0)?;
            Ok(u64::try_from(rows).unwrap_or(0))
        })
        .await
    }

    /// Vacuums the queue tables (`deliveries`, and `pending_changes`, which
    /// every enqueue folds and every completion adds to), skipping one
    /// another vacuum holds, with their indexes. (Events stay after their
    /// deliveries, the event log, until a purge deletes them in batches:
    /// autovacuum keeps up with them.)
    ///
    /// A claim walks a destination's deliveries from the earliest due, in
    /// an index whose head fills with the entries of finished deliveries
    /// until they are vacuumed; autovacuum looks at a database once a
    /// minute at most (`autovacuum_naptime`), by which time a busy queue
    /// has tens of thousands of them and every claim steps over them. The
    /// node's claims therefore call this once the node made
    /// 2,000 rows dead, plus a twentieth of the queue's rows. A
    /// role that does not own the tables gets a warning from PostgreSQL and
    /// nothing is vacuumed.
    ///
    /// # Errors
    /// If the database cannot be reached.
    pub async fn vacuum_queues(&self) -> Result<(), PgError> {
        self.run(|pool| async move {
            let client = pool.get().await?;
            // One statement (`VACUUM` runs outside a transaction block).
            client
                .batch_execute(
                    "VACUUM (SKIP_LOCKED, INDEX_CLEANUP true) deliveries, pending_changes",
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// The database's clock minus this host's system clock, in
    /// milliseconds (negative when this host is ahead), as last measured:
    /// at [`connect`](Self::connect), then every few seconds while
    /// [`Outbox::now`](prets_destinations::delivery::Outbox::now) is called.
    /// Claims, leases and due times go by the database's clock, so a node
    /// whose own clock is off delivers correctly; a host logs this at start
    /// when it is large.
    #[must_use]
    pub fn clock_offset_ms(&self) -> i64 {
        self.clock.offset_ms()
    }

    /// The database's clock now (see [`Outbox::now`](prets_destinations::delivery::Outbox::now)).
    pub(crate) fn db_now(&self) -> prets_destinations::Timestamp {
        self.clock.now(&self.pool, &self.runtime)
    }

    /// Runs `body` with the pool as a task on the repo's runtime.
    pub(crate) async fn run<T, F, Fut>(&self, body: F) -> Result<T, PgError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, PgError>> + Send + 'static,
    {
        let task = self.runtime.spawn(body(self.pool.clone()));
        task.await.map_err(PgError::task)?
    }
}

/// The owned column values of a record, to move into a task.
struct Columns {
    tenant: String,
    id: String,
    name: String,
    url: String,
    created_at: i64,
    updated_at: i64,
    sealed_secret: Vec<u8>,
    secret_digest: Vec<u8>,
    version: i64,
    enabled: bool,
    disabled_reason: Option<&'static str>,
    positions: Vec<i32>,
    previous_sealed: Vec<Vec<u8>>,
    previous_digests: Vec<Vec<u8>>,
    previous_expires: Vec<i64>,
    previous_signing: Vec<Option<Vec<u8>>>,
    sealed_signing_secret: Option<Vec<u8>>,
    filter_types: Vec<String>,
    filter_keys: Vec<String>,
    header_names: Vec<String>,
    header_values: Vec<String>,
    description: String,
    metadata_keys: Vec<String>,
    metadata_values: Vec<String>,
}

impl Columns {
    fn of(tenant: &TenantId, r: &DestinationRecord) -> Result<Self, PgError> {
        let positions = (0..r.previous_secrets.len())
            .map(|p| i32::try_from(p).map_err(|_| PgError::corrupt("position")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            tenant: tenant.as_str().to_owned(),
            id: r.destination_id.to_string(),
            name: r.name.as_str().to_owned(),
            url: r.url.as_str().to_owned(),
            created_at: millis(r.created_at),
            updated_at: millis(r.updated_at),
            sealed_secret: r.sealed_secret.to_bytes().to_vec(),
            secret_digest: r.secret_digest.as_bytes().to_vec(),
            version: version(r.version),
            enabled: r.enabled,
            disabled_reason: r.disabled_reason.map(DisabledReason::as_str),
            positions,
            previous_sealed: r
                .previous_secrets
                .iter()
                .map(|p| p.sealed_secret.to_bytes().to_vec())
                .collect(),
            previous_digests: r
                .previous_secrets
                .iter()
                .map(|p| p.secret_digest.as_bytes().to_vec())
                .collect(),
            previous_expires: r
                .previous_secrets
                .iter()
                .map(|p| millis(p.expires_at))
                .collect(),
            previous_signing: r
                .previous_secrets
                .iter()
                .map(|p| {
                    p.sealed_signing_secret
                        .as_ref()
                        .map(|s| s.to_bytes().to_vec())
                })
                .collect(),
            sealed_signing_secret: r.signing_secret.as_ref().map(|s| s.to_bytes().to_vec()),
            filter_types: r.filter_types.entries().map(str::to_owned).collect(),
            filter_keys: r.filter_types.index_keys().map(str::to_owned).collect(),
            header_names: r.headers.names().map(str::to_owned).collect(),
            header_values: r
                .headers
                .expose_pairs()
                .map(|(_, v)| v.to_owned())
                .collect(),
            description: r.description.as_str().to_owned(),
            metadata_keys: r.metadata.iter().map(|(k, _)| k.to_owned()).collect(),
            metadata_values: r.metadata.iter().map(|(_, v)| v.to_owned()).collect(),
        })
    }

    /// Stores the previous secrets (after the row's old ones were deleted,
    /// or for a row just inserted), in one statement.
    async fn insert_previous(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
    ) -> Result<(), PgError> {
        if self.positions.is_empty() {
            return Ok(());
        }
        let stmt = tx
            .prepare_cached(
                "INSERT INTO previous_secrets (tenant_id, destination_id, position, sealed_secret,
                     secret_digest, expires_at_ms, sealed_signing_secret)
                 SELECT $1, $2, u.position, u.sealed, u.digest, u.expires, u.signing
                 FROM UNNEST($3::INTEGER[], $4::BYTEA[], $5::BYTEA[], $6::BIGINT[], $7::BYTEA[])
                     AS u(position, sealed, digest, expires, signing)",
            )
            .await?;
        tx.execute(
            &stmt,
            &[
                &self.tenant,
                &self.id,
                &self.positions,
                &self.previous_sealed,
                &self.previous_digests,
                &self.previous_expires,
                &self.previous_signing,
            ],
        )
        .await?;
        Ok(())
    }

    /// Indexes the destination under its filter's keys, replacing what was
    /// indexed for it unless `fresh` (a row just inserted), in one
    /// statement each.
    async fn write_filter_keys(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        fresh: bool,
    ) -> Result<(), PgError> {
        if !fresh {
            let delete = tx
                .prepare_cached(
                    "DELETE FROM destination_filters WHERE tenant_id = $1 AND destination_id = $2",
                )
                .await?;
            tx.execute(&delete, &[&self.tenant, &self.id]).await?;
        }
        let insert = tx
            .prepare_cached(
                "INSERT INTO destination_filters (tenant_id, filter_key, destination_id)
                 SELECT $1, k, $2 FROM UNNEST($3::TEXT[]) AS k",
            )
            .await?;
        tx.execute(&insert, &[&self.tenant, &self.id, &self.filter_keys])
            .await?;
        Ok(())
    }
}

/// Takes the tenant's advisory lock named `what` (`destinations`: its
/// inserts; `pending`: its writes that add deliveries), held to the end of
/// `tx`, on every node. The key is the hash of `"{what} {tenant}"`.
pub(crate) async fn lock_tenant(
    tx: &deadpool_postgres::Transaction<'_>,
    what: &str,
    tenant: &str,
) -> Result<(), PgError> {
    let stmt = tx
        .prepare_cached("SELECT pg_advisory_xact_lock(hashtextextended($1 || ' ' || $2, 0))")
        .await?;
    tx.execute(&stmt, &[&what, &tenant]).await?;
    Ok(())
}

/// Whether the tenant has `max` destinations or more and none with id `id`
/// (a duplicate, whatever the count). Takes the tenant's destination lock
/// first (an advisory lock held to the end of `tx`), so the tenant's
/// inserts are counted one after another on every node: the count, a
/// statement after the lock, sees every insert that held it before. Counted
/// over the primary key, at most `max` rows.
async fn at_quota(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
    id: &str,
    max: usize,
) -> Result<bool, PgError> {
    lock_tenant(tx, "destinations", tenant).await?;
    let stmt = tx
        .prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM destinations WHERE tenant_id = $1 LIMIT $2) t",
        )
        .await?;
    let max_rows = i64::try_from(max).unwrap_or(i64::MAX);
    let count: i64 = tx
        .query_one(&stmt, &[&tenant, &max_rows])
        .await?
        .try_get(0)?;
    if count < max_rows {
        return Ok(false);
    }
    let stmt = tx
        .prepare_cached("SELECT 1 FROM destinations WHERE tenant_id = $1 AND destination_id = $2")
        .await?;
    Ok(tx.query_opt(&stmt, &[&tenant, &id]).await?.is_none())
}

impl DestinationRepo for PgRepo {
    type Error = PgError;

    async fn insert(
        &self,
        tenant: &TenantId,
        record: &DestinationRecord,
    ) -> Result<InsertOutcome, PgError> {
        let c = Columns::of(tenant, record)?;
        let max = self.quotas.max_destinations;
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            if max != usize::MAX && at_quota(&tx, &c.tenant, &c.id, max).await? {
                return Ok(InsertOutcome::QuotaExceeded);
            }
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO destinations (tenant_id, destination_id, name, url, created_at_ms,
                         updated_at_ms, sealed_secret, secret_digest, version, enabled, disabled_reason,
                         sealed_signing_secret, filter_types, header_names, header_values,
                         description, metadata_keys, metadata_values)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                         $17, $18)
                     ON CONFLICT (tenant_id, destination_id) DO NOTHING",
                )
                .await?;
            let inserted = tx
                .execute(
                    &stmt,
                    &[
                        &c.tenant,
                        &c.id,
                        &c.name,
                        &c.url,
                        &c.created_at,
                        &c.updated_at,
                        &c.sealed_secret,
                        &c.secret_digest,
                        &c.version,
                        &c.enabled,
                        &c.disabled_reason,
                        &c.sealed_signing_secret,
                        &c.filter_types,
                        &c.header_names,
                        &c.header_values,
                        &c.description,
                        &c.metadata_keys,
                        &c.metadata_values,
                    ],
                )
                .await?;
            if inserted != 1 {
                // Nothing written; dropping the transaction rolls it back.
                return Ok(InsertOutcome::Duplicate);
            }
            c.insert_previous(&tx).await?;
            c.write_filter_keys(&tx, true).await?;
            tx.commit().await?;
            Ok(InsertOutcome::Inserted)
        })
        .await
    }

    async fn get(
        &self,
        tenant: &TenantId,
        id: DestinationId,
    ) -> Result<Option<DestinationRecord>, PgError> {
        let (tenant, id) = (tenant.as_str().to_owned(), id.to_string());
        self.run(|pool| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(&select("d.tenant_id = $1 AND d.destination_id = $2", ""))
                .await?;
            let rows = client.query(&stmt, &[&tenant, &id]).await?;
            Ok(decode_all(&rows)?.into_iter().next())
        })
        .await
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<DestinationRecord>, PgError> {
        self.list_page(tenant, None, usize::MAX).await
    }

    async fn find_by_digest(
        &self,
        digest: &SecretDigest,
    ) -> Result<Vec<(TenantId, DestinationRecord)>, PgError> {
        let digest = digest.as_bytes().to_vec();
        self.run(|pool| async move {
            let client = pool.get().await?;
            // Both digest indexes, then the matching records, in one
            // statement.
            let stmt = client
                .prepare_cached(&select(
                    "(d.tenant_id, d.destination_id) IN (
                         SELECT tenant_id, destination_id FROM destinations
                         WHERE secret_digest = $1
                         UNION
                         SELECT tenant_id, destination_id FROM previous_secrets
                         WHERE secret_digest = $1)",
                    "",
                ))
                .await?;
            let rows = client.query(&stmt, &[&digest]).await?;
            rows.iter()
                .map(|row| {
                    let (tenant, record) = decode(row)?;
                    let tenant =
                        TenantId::try_from(tenant).map_err(|_| PgError::corrupt("tenant id"))?;
                    Ok((tenant, record))
                })
                .collect()
        })
        .await
    }

    async fn list_page(
        &self,
        tenant: &TenantId,
        after: Option<DestinationId>,
        limit_to: usize,
    ) -> Result<Vec<DestinationRecord>, PgError> {
        let tenant = tenant.as_str().to_owned();
        // Every id is greater than the empty string.
        let after = after.map(|id| id.to_string()).unwrap_or_default();
        let limit_to = limit(limit_to);
        self.run(|pool| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(&select(
                    "d.tenant_id = $1 AND d.destination_id > $2",
                    "LIMIT $3",
                ))
                .await?;
            let rows = client.query(&stmt, &[&tenant, &after, &limit_to]).await?;
            decode_all(&rows)
        })
        .await
    }

    async fn replace(
        &self,
        tenant: &TenantId,
        expected_version: u64,
        record: &DestinationRecord,
    ) -> Result<ReplaceOutcome, PgError> {
        let c = Columns::of(tenant, record)?;
        let expected = version(expected_version);
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            // The version check and the write are one statement: a racing
            // replace waits for this row's lock, then finds another version.
            // Enabling a disabled destination clears its failure streak (the
            // right-hand sides read the row as it was).
            let stmt = tx
                .prepare_cached(
                    "UPDATE destinations SET name = $3, url = $4, created_at_ms = $5,
                         updated_at_ms = $6, sealed_secret = $7, secret_digest = $8, version = $9,
                         enabled = $11, disabled_reason = $12,
                         failing_since_ms =
                             CASE WHEN $11 AND NOT enabled THEN NULL ELSE failing_since_ms END,
                         failing_attempts =
                             CASE WHEN $11 AND NOT enabled THEN NULL ELSE failing_attempts END,
                         sealed_signing_secret = $13, filter_types = $14, header_names = $15,
                         header_values = $16, description = $17, metadata_keys = $18,
                         metadata_values = $19
                     WHERE tenant_id = $1 AND destination_id = $2 AND version = $10",
                )
                .await?;
            let changed = tx
                .execute(
                    &stmt,
                    &[
                        &c.tenant,
                        &c.id,
                        &c.name,
                        &c.url,
                        &c.created_at,
                        &c.updated_at,
                        &c.sealed_secret,
                        &c.secret_digest,
                        &c.version,
                        &expected,
                        &c.enabled,
                        &c.disabled_reason,
                        &c.sealed_signing_secret,
                        &c.filter_types,
                        &c.header_names,
                        &c.header_values,
                        &c.description,
                        &c.metadata_keys,
                        &c.metadata_values,
                    ],
                )
                .await?;
            if changed == 1 {
                let delete = tx
                    .prepare_cached(
                        "DELETE FROM previous_secrets WHERE tenant_id = $1 AND destination_id = $2",
                    )
                    .await?;
                tx.execute(&delete, &[&c.tenant, &c.id]).await?;
                c.insert_previous(&tx).await?;
                c.write_filter_keys(&tx, false).await?;
                if !c.enabled {
                    // Disabled: its pending deliveries not in flight are
                    // finished now, in the same write (see `Outbox`'s
                    // "Disabling").
                    drop_unleased(&tx, &c.tenant, &c.id).await?;
                }
                tx.commit().await?;
                return Ok(ReplaceOutcome::Replaced);
            }
            let exists = tx
                .prepare_cached(
                    "SELECT 1 FROM destinations WHERE tenant_id = $1 AND destination_id = $2",
                )
                .await?;
            let found = tx.query_opt(&exists, &[&c.tenant, &c.id]).await?;
            Ok(if found.is_some() {
                ReplaceOutcome::VersionMismatch
            } else {
                ReplaceOutcome::NotFound
            })
        })
        .await
    }

    async fn remove(&self, tenant: &TenantId, id: DestinationId) -> Result<RemoveOutcome, PgError> {
        let (tenant, id) = (tenant.as_str().to_owned(), id.to_string());
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            // The row first, then its deliveries and their events (the
            // outbox's lock order); previous secrets and attempts go with
            // the row (ON DELETE CASCADE).
            let lock = tx
                .prepare_cached(
                    "SELECT 1 FROM destinations WHERE tenant_id = $1 AND destination_id = $2
                     FOR UPDATE",
                )
                .await?;
            if tx.query_opt(&lock, &[&tenant, &id]).await?.is_none() {
                return Ok(RemoveOutcome::NotFound);
            }
            drop_all(&tx, &tenant, &id).await?;
            let stmt = tx
                .prepare_cached(
                    "DELETE FROM destinations WHERE tenant_id = $1 AND destination_id = $2",
                )
                .await?;
            tx.execute(&stmt, &[&tenant, &id]).await?;
            tx.commit().await?;
            Ok(RemoveOutcome::Removed)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::vacuum_due;

    /// 2,000 dead rows vacuum a small queue; a deep one waits for a
    /// twentieth of its rows more; a queue of unknown size (its count
    /// failed) is not vacuumed.
    #[test]
    fn a_vacuum_waits_for_changes_in_proportion_to_the_queue() {
        assert!(!vacuum_due(1_999, 0));
        assert!(vacuum_due(2_000, 0));
        assert!(vacuum_due(2_000, 19));
        assert!(!vacuum_due(2_000, 20));
        assert!(!vacuum_due(6_999, 100_000));
        assert!(vacuum_due(7_000, 100_000));
        assert!(!vacuum_due(1_000_000, u64::MAX));
        assert!(vacuum_due(u64::MAX, 1_000_000_000));
    }
}
