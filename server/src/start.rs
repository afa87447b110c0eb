//! Starting the server: the delivery settings checked, one store opened
//! (SQLite, memory or PostgreSQL) with its sealing key and API tokens, the
//! router and the delivery worker assembled over it, and the listen address
//! bound. [`serve`](fn@crate::serve) then runs what [`prepare`] returns.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use prets_destinations::delivery::EventLog;
use prets_destinations::limits::Rate;
use prets_destinations::{KeyId, Keyring, MemoryRepo, SealingKey, TenantId, Timestamp, os_rng};
use prets_destinations_postgres::{PgError, PgRepo};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use zeroize::Zeroizing;

use crate::api::{AppState, metrics_router, router_with_event_log};
use crate::auth::{ApiTokens, mint_token, token_digest};
use crate::config::{Config, DeliveryConfigError};
use crate::database::{Database, PgUrl};
use crate::delivery::{
    ClientError, DeliveryClient, DeliveryConfig, Resolve, SystemResolver, Worker, WorkerHandle,
    WorkerOptions,
};
use crate::health::Readiness;
use crate::keyfile::{self, KeyFileError};
use crate::metrics::{Metered, Metrics};
use crate::retention::{self, Retention, RetentionConfigError, SweeperHandle};
use crate::serve::Limits;
use crate::sqlite::{SqliteError, SqliteRepo};

/// The organization a first start creates, with its API token.
pub const DEMO_ORGANIZATION: &str = "demo";

/// Why the server could not start. The texts name files and settings, never
/// a key or a token.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The database could not be opened or migrated.
    Database(SqliteError),
    /// The sealing-key file could not be read or created.
    SealingKey(KeyFileError),
    /// The database holds data but its default sealing-key file is missing:
    /// a new key could not open the stored secrets, so none is made.
    MissingSealingKey,
    /// PostgreSQL was selected without `--sealing-key-file`: every node must
    /// use the same key, so none is made up.
    SealingKeyRequired,
    /// PostgreSQL could not be reached in time, refused the connection, or
    /// its schema is newer than this build's.
    Postgres(PgError),
    /// The listen address could not be bound.
    Listen(io::Error),
    /// The metrics listen address could not be bound.
    MetricsListen(io::Error),
    /// The system clock is outside the supported range.
    Clock,
    /// A delivery setting is unusable (a root-certificate file).
    Delivery(DeliveryConfigError),
    /// The delivery HTTPS client could not be built.
    DeliveryClient(ClientError),
    /// The retention settings contradict each other.
    Retention(RetentionConfigError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Database(_) => f.write_str("cannot open the database"),
            Self::SealingKey(e) => write!(f, "sealing key: {e}"),
            Self::MissingSealingKey => f.write_str(
                "the database exists but its sealing-key file does not; restore the file or name it with --sealing-key-file",
            ),
            Self::SealingKeyRequired => f.write_str(
                "PostgreSQL requires --sealing-key-file (PRETS_SEALING_KEY_FILE): every node must name the same sealing-key file",
            ),
            Self::Postgres(e) => write!(f, "cannot open the PostgreSQL database: {e}"),
            Self::Listen(_) => f.write_str("cannot listen on the configured address"),
            Self::MetricsListen(_) => {
                f.write_str("cannot listen on the configured metrics address (--metrics-listen)")
            }
            Self::Clock => f.write_str("the system clock is outside the supported range"),
            Self::Delivery(e) => write!(f, "delivery settings: {e}"),
            Self::DeliveryClient(e) => write!(f, "{e}"),
            Self::Retention(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Database(e) => Some(e),
            Self::SealingKey(e) => Some(e),
            Self::Postgres(e) => Some(e),
            Self::Listen(e) | Self::MetricsListen(e) => Some(e),
            Self::Delivery(e) => Some(e),
            Self::DeliveryClient(e) => Some(e),
            Self::Retention(e) => Some(e),
            Self::MissingSealingKey | Self::SealingKeyRequired | Self::Clock => None,
        }
    }
}

/// A server ready to serve: bound, with its storage open.
pub struct Prepared {
    pub(crate) listener: TcpListener,
    pub(crate) router: axum::Router,
    pub(crate) limits: Limits,
    /// `None` with `--no-delivery`.
    pub(crate) worker: Option<StartWorker>,
    /// Starts the retention sweeper (every node runs one: every store keeps
    /// an event log).
    pub(crate) sweeper: StartSweeper,
    /// The demo organization's API token when this start created it; print
    /// it once, to the operator, and drop it.
    pub demo_token: Option<Zeroizing<String>>,
    /// The bound address (useful with port 0).
    pub local_addr: SocketAddr,
    /// The metrics listener's bound address, with `--metrics-listen`.
    pub metrics_addr: Option<SocketAddr>,
    /// The metrics listener and its router, with `--metrics-listen`.
    pub(crate) metrics: Option<(TcpListener, axum::Router)>,
    /// `"sqlite"`, `"postgres"` or `"memory"`.
    pub store: &'static str,
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("local_addr", &self.local_addr)
            .field("metrics_addr", &self.metrics_addr)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Starts the delivery worker of a prepared server.
pub(crate) type StartWorker = Box<dyn FnOnce() -> WorkerHandle + Send>;

/// Starts the retention sweeper of a prepared server.
pub(crate) type StartSweeper = Box<dyn FnOnce() -> SweeperHandle + Send>;

/// Checks the delivery settings, opens the storage, loads or creates the
/// sealing key and the API tokens, and binds the listen address. Deliveries
/// resolve names with the operating system's resolver.
///
/// # Errors
/// See [`StartError`].
pub async fn prepare(config: &Config) -> Result<Prepared, StartError> {
    prepare_with_resolver(config, Arc::new(SystemResolver)).await
}

/// [`prepare`], with deliveries resolving names through `resolver` (tests
/// answer with chosen addresses).
///
/// # Errors
/// See [`StartError`].
pub async fn prepare_with_resolver(
    config: &Config,
    resolver: Arc<dyn Resolve>,
) -> Result<Prepared, StartError> {
    let retention = config.retention().map_err(StartError::Retention)?;
    let delivery = Delivery::new(config, resolver, retention)?;
    let store = match &config.database {
        _ if config.memory => memory(config, &delivery)?,
        Database::Postgres(url) => postgres(config, url, &delivery).await?,
        Database::Sqlite(path) => sqlite(config, path, &delivery).await?,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(StartError::Listen)?;
    let local_addr = listener.local_addr().map_err(StartError::Listen)?;
    let (metrics, metrics_addr) = match config.metrics_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(StartError::MetricsListen)?;
            let bound = listener.local_addr().map_err(StartError::MetricsListen)?;
            (Some((listener, store.metrics_router)), Some(bound))
        }
        None => (None, None),
    };
    let limits = Limits {
        header_read: config.header_read_timeout,
        body_read: config.body_read_timeout,
        idle: config.idle_timeout,
        max_connections: usize::try_from(config.max_connections).unwrap_or(usize::MAX),
    };
    Ok(Prepared {
        listener,
        router: store.router,
        limits,
        worker: (!config.no_delivery).then_some(store.worker),
        sweeper: store.sweeper,
        demo_token: store.demo_token,
        local_addr,
        metrics_addr,
        metrics,
        store: store.name,
    })
}

/// One store branch of [`prepare`], assembled.
struct Store {
    router: axum::Router,
    /// `GET /metrics` over this store's metrics.
    metrics_router: axum::Router,
    worker: StartWorker,
    sweeper: StartSweeper,
    /// The demo organization's token when this start created it.
    demo_token: Option<Zeroizing<String>>,
    name: &'static str,
}

/// Memory: the configured key file or a fresh key, the configured tokens or
/// a demo token minted for this run.
fn memory(config: &Config, delivery: &Delivery) -> Result<Store, StartError> {
    let keyring = match &config.sealing_key_file {
        Some(path) => keyfile::load(path).map_err(StartError::SealingKey)?,
        None => {
            let key = SealingKey::from_rng(KeyId::new(1), &mut os_rng());
            Keyring::new(key, [])
                .map_err(|e| StartError::SealingKey(KeyFileError::DuplicateKeyId(e.0)))?
        }
    };
    let (tokens, demo_token) = if config.api_tokens.is_empty() {
        let token = mint_token();
        let tokens = ApiTokens::new(vec![(token_digest(&token), demo_tenant())]);
        (tokens, Some(token))
    } else {
        (configured_tokens(config), None)
    };
    Ok(delivery.assemble(
        MemoryRepo::new().with_quotas(config.quotas()),
        tokens,
        keyring,
        demo_token,
        "memory",
    ))
}

/// SQLite: the database file opened (created and migrated), its sealing key
/// (the default file beside it created on a first start), and the
/// configured tokens or those stored, a first start storing the demo
/// organization's.
async fn sqlite(config: &Config, path: &Path, delivery: &Delivery) -> Result<Store, StartError> {
    let database_existed = path.exists();
    let repo = SqliteRepo::open(path)
        .map_err(StartError::Database)?
        .with_quotas(config.quotas());
    let keyring = sqlite_keyring(config, database_existed)?;
    let (tokens, demo_token) = if config.api_tokens.is_empty() {
        let stored = repo.api_tokens().await.map_err(StartError::Database)?;
        if stored.is_empty() {
            let token = mint_token();
            let now = now()?;
            let tenant = demo_tenant();
            let digest = token_digest(&token);
            repo.add_api_token(digest, &tenant, now)
                .await
                .map_err(StartError::Database)?;
            (ApiTokens::new(vec![(digest, tenant)]), Some(token))
        } else {
            (ApiTokens::new(stored), None)
        }
    } else {
        (configured_tokens(config), None)
    };
    Ok(delivery.assemble(repo, tokens, keyring, demo_token, "sqlite"))
}

/// The sealing key of a SQLite database: the named file, or the default one
/// beside the database, created with a fresh key when neither it nor the
/// database exists yet.
fn sqlite_keyring(config: &Config, database_existed: bool) -> Result<Keyring, StartError> {
    let (path, is_default) = config
        .sealing_key_path()
        .ok_or(StartError::SealingKeyRequired)?;
    if path.exists() {
        return keyfile::load(&path).map_err(StartError::SealingKey);
    }
    if !is_default {
        return keyfile::load(&path).map_err(StartError::SealingKey);
    }
    if database_existed {
        return Err(StartError::MissingSealingKey);
    }
    let ring = keyfile::create(&path).map_err(StartError::SealingKey)?;
    tracing::info!(path = %path.display(), "created a sealing-key file (mode 0600); back it up with the database");
    Ok(ring)
}

/// PostgreSQL, several nodes on one database: loads the sealing key every
/// node shares (an explicit file is required: a key made by one node could
/// not open what another sealed), connects (migrating the schema), and loads
/// the API tokens: the configured ones, or those stored, the first node of a
/// cluster creating the demo organization's. Refuses before connecting if
/// the key file is missing.
async fn postgres(config: &Config, url: &PgUrl, delivery: &Delivery) -> Result<Store, StartError> {
    let path = config
        .sealing_key_file
        .as_ref()
        .ok_or(StartError::SealingKeyRequired)?;
    let keyring = keyfile::load(path).map_err(StartError::SealingKey)?;
    tracing::info!(database = %url, pool_size = config.database_pool_size, "connecting to PostgreSQL");
    let pool_size = usize::try_from(config.database_pool_size).unwrap_or(usize::MAX);
    let repo = PgRepo::connect(url.expose(), pool_size)
        .await
        .map_err(StartError::Postgres)?
        .with_quotas(config.quotas());
    let offset_ms = repo.clock_offset_ms();
    if offset_ms.unsigned_abs() > 1000 {
        tracing::warn!(
            offset_ms,
            "this host's clock differs from the database's (offset = database - host); due times and leases go by the database's clock"
        );
    }
    let (tokens, demo_token) = if config.api_tokens.is_empty() {
        let token = mint_token();
        let now = now()?;
        let digest = token_digest(&token);
        let created = repo
            .add_first_api_token(digest, &demo_tenant(), now)
            .await
            .map_err(StartError::Postgres)?;
        if created {
            // The table was empty under the lock, so the committed token is
            // the only one: no second read that could fail after the commit
            // and lose the token before the operator ever sees it.
            (ApiTokens::new(vec![(digest, demo_tenant())]), Some(token))
        } else {
            let stored = repo.api_tokens().await.map_err(StartError::Postgres)?;
            (ApiTokens::new(stored), None)
        }
    } else {
        (configured_tokens(config), None)
    };
    // A publish on any node wakes this node's worker: the enqueue's NOTIFY,
    // heard on a connection of its own.
    let published = Arc::new(Notify::new());
    repo.listen(Arc::clone(&published))
        .await
        .map_err(StartError::Postgres)?;
    Ok(delivery.assemble_with(repo, (tokens, keyring), demo_token, "postgres", published))
}

/// What every store branch of [`prepare`] shares to deliver: the settings,
/// the HTTPS client and the worker's tuning, and the retention.
struct Delivery {
    config: DeliveryConfig,
    client: DeliveryClient,
    options: WorkerOptions,
    retention: Retention,
    /// The API's rate limits per organization: publishes, test events.
    rates: (Option<Rate>, Option<Rate>),
}

impl Delivery {
    fn new(
        config: &Config,
        resolver: Arc<dyn Resolve>,
        retention: Retention,
    ) -> Result<Self, StartError> {
        let delivery = config.delivery().map_err(StartError::Delivery)?;
        let client =
            DeliveryClient::new(&delivery, resolver).map_err(StartError::DeliveryClient)?;
        for net in delivery.policy.allowed() {
            tracing::warn!(%net, "deliveries may reach this non-public network (--allow-private-destinations)");
        }
        Ok(Self {
            config: delivery,
            client,
            options: WorkerOptions::default()
                .lookahead(usize::try_from(config.delivery_lookahead).unwrap_or(usize::MAX)),
            retention,
            rates: (config.publish_rate(), config.test_send_rate()),
        })
    }

    /// The router and the delivery worker over one store: the API and the
    /// worker share the store, the keyring and the publish signal, and the
    /// API judges literal-IP destinations by the delivery host policy. Every
    /// store branch of [`prepare`] ends here.
    fn assemble<R: EventLog + Readiness + 'static>(
        &self,
        repo: R,
        tokens: ApiTokens,
        keyring: Keyring,
        demo_token: Option<Zeroizing<String>>,
        name: &'static str,
    ) -> Store {
        let published = Arc::new(Notify::new());
        self.assemble_with(repo, (tokens, keyring), demo_token, name, published)
    }

    /// [`assemble`](Self::assemble) with the publish signal given (one the
    /// store also wakes).
    fn assemble_with<R: EventLog + Readiness + 'static>(
        &self,
        repo: R,
        (tokens, keyring): (ApiTokens, Keyring),
        demo_token: Option<Zeroizing<String>>,
        name: &'static str,
        published: Arc<Notify>,
    ) -> Store {
        let metrics = Arc::new(Metrics::new());
        let repo = Arc::new(Metered::new(repo, Arc::clone(&metrics)));
        let keyring = Arc::new(keyring);
        let state = AppState::new(Arc::clone(&repo), tokens, Arc::clone(&keyring))
            .with_host_policy(self.config.policy.clone())
            .with_publish_notify(Arc::clone(&published))
            .with_rate_limits(self.rates.0, self.rates.1)
            .with_readiness(Arc::clone(&repo) as Arc<dyn Readiness>)
            .with_metrics(Arc::clone(&metrics));
        let metrics_router = metrics_router(Arc::clone(&repo), metrics.clone());
        let retention = self.retention;
        let swept = Arc::clone(&repo);
        let worker = Worker::new(repo, keyring, self.client.clone(), &self.config, published)
            .with_options(self.options)
            .with_metrics(metrics);
        Store {
            router: router_with_event_log(state),
            metrics_router,
            worker: Box::new(move || worker.spawn()),
            sweeper: Box::new(move || retention::spawn(swept, retention)),
            demo_token,
            name,
        }
    }
}

fn configured_tokens(config: &Config) -> ApiTokens {
    ApiTokens::new(
        config
            .api_tokens
            .iter()
            .map(|t| (t.digest, t.organization.clone()))
            .collect(),
    )
}

fn demo_tenant() -> TenantId {
    TenantId::try_from(DEMO_ORGANIZATION).unwrap_or_else(|_| unreachable!("a valid literal"))
}

fn now() -> Result<Timestamp, StartError> {
    Timestamp::try_from(std::time::SystemTime::now()).map_err(|_| StartError::Clock)
}
