//! The reference server of `prets-destinations`: the event destinations API
//! over HTTP (axum on tokio) on an embedded SQLite database (or on
//! PostgreSQL, for several nodes behind a load balancer), and the
//! [`delivery`] worker that posts published events to the destinations.
//!
//! The binary `prets-destinations-server` is [`Config`] parsed from flags
//! and environment variables, then [`prepare`] and [`serve`](fn@serve). Tests and the
//! load generator start it in-process with [`spawn`].

#![forbid(unsafe_code)]

mod api;
mod auth;
mod config;
mod database;
pub mod delivery;
mod hex;
mod keyfile;
mod postgres;
mod problem;
mod serve;
mod sqlite;
#[cfg(feature = "test-support")]
pub mod test_support;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use prets_destinations::delivery::Outbox;
use prets_destinations::{Keyring, MemoryRepo, TenantId, Timestamp};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

pub use crate::api::{AppState, BODY_LIMIT, OPENAPI_JSON, PUBLISH_BODY_LIMIT, router};
pub use crate::auth::{ApiTokens, TOKEN_PREFIX, mint_token, token_digest};
pub use crate::config::{
    Config, DeliveryConfig, DeliveryConfigError, InvalidTokenEntry, TokenEntry,
};
pub use crate::database::{ConninfoRefused, Database, PgUrl};
pub use crate::keyfile::KeyFileError;
pub use crate::problem::{PROBLEM_BASE, PROBLEM_JSON, Problem};
pub use crate::sqlite::{MAX_BATCH, SqliteError, SqliteRepo, schema_version};
pub use prets_destinations_postgres::PgError;

use crate::delivery::{
    ClientError, DeliveryClient, Resolve, SystemResolver, Worker, WorkerHandle, WorkerOptions,
};

/// Reads a sealing-key file (`<key id> <64 hex digits>` per line, the first
/// line the current key) into a keyring.
///
/// # Errors
/// If the file cannot be read, a line is malformed, it holds no key, or two
/// keys share an id.
pub fn load_keyring(path: &std::path::Path) -> Result<Keyring, KeyFileError> {
    keyfile::load(path)
}

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
    /// The system clock is outside the supported range.
    Clock,
    /// A delivery setting is unusable (a root-certificate file).
    Delivery(DeliveryConfigError),
    /// The delivery HTTPS client could not be built.
    DeliveryClient(ClientError),
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
            Self::Clock => f.write_str("the system clock is outside the supported range"),
            Self::Delivery(e) => write!(f, "delivery settings: {e}"),
            Self::DeliveryClient(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Database(e) => Some(e),
            Self::SealingKey(e) => Some(e),
            Self::Postgres(e) => Some(e),
            Self::Listen(e) => Some(e),
            Self::Delivery(e) => Some(e),
            Self::DeliveryClient(e) => Some(e),
            Self::MissingSealingKey | Self::SealingKeyRequired | Self::Clock => None,
        }
    }
}

/// A server ready to serve: bound, with its storage open.
pub struct Prepared {
    listener: TcpListener,
    router: axum::Router,
    limits: serve::Limits,
    /// `None` with `--no-delivery`.
    worker: Option<StartWorker>,
    /// The demo organization's API token when this start created it; print
    /// it once, to the operator, and drop it.
    pub demo_token: Option<Zeroizing<String>>,
    /// The bound address (useful with port 0).
    pub local_addr: SocketAddr,
    /// `"sqlite"`, `"postgres"` or `"memory"`.
    pub store: &'static str,
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("local_addr", &self.local_addr)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Starts the delivery worker of a prepared server.
type StartWorker = Box<dyn FnOnce() -> WorkerHandle + Send>;

/// What every store branch of [`prepare`] shares to deliver: the settings,
/// the HTTPS client and the worker's tuning.
struct Delivery {
    config: DeliveryConfig,
    client: DeliveryClient,
    options: WorkerOptions,
}

impl Delivery {
    fn new(config: &Config, resolver: Arc<dyn Resolve>) -> Result<Self, StartError> {
        let delivery = config.delivery().map_err(StartError::Delivery)?;
        let client =
            DeliveryClient::new(&delivery, resolver).map_err(StartError::DeliveryClient)?;
        for net in delivery.policy.allowed() {
            tracing::warn!(%net, "deliveries may reach this non-public network (--allow-private-destinations)");
        }
        Ok(Self {
            config: delivery,
            client,
            options: WorkerOptions::default(),
        })
    }
}

/// The router and the delivery worker over one store: the API and the
/// worker share the store, the keyring and the publish signal, and the API
/// judges literal-IP destinations by the delivery host policy. Every store
/// branch of [`prepare`] ends here.
fn assemble<R: Outbox + 'static>(
    repo: R,
    tokens: ApiTokens,
    keyring: Keyring,
    delivery: &Delivery,
) -> (axum::Router, StartWorker) {
    let repo = Arc::new(repo);
    let keyring = Arc::new(keyring);
    let published = Arc::new(Notify::new());
    let state = AppState::new(Arc::clone(&repo), tokens, Arc::clone(&keyring))
        .with_host_policy(delivery.config.policy.clone())
        .with_publish_notify(Arc::clone(&published));
    let worker = Worker::new(
        repo,
        keyring,
        delivery.client.clone(),
        &delivery.config,
        published,
    )
    .with_options(delivery.options);
    (router(state), Box::new(move || worker.spawn()))
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

fn keyring(config: &Config, database_existed: bool) -> Result<Keyring, StartError> {
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
    let delivery = Delivery::new(config, resolver)?;
    let (router, worker, demo_token, store) = match &config.database {
        _ if config.memory => {
            let keyring = match &config.sealing_key_file {
                Some(path) => keyfile::load(path).map_err(StartError::SealingKey)?,
                None => {
                    let key = prets_destinations::SealingKey::from_rng(
                        prets_destinations::KeyId::new(1),
                        &mut prets_destinations::os_rng(),
                    );
                    Keyring::new(key, [])
                        .map_err(|e| StartError::SealingKey(KeyFileError::DuplicateKeyId(e.0)))?
                }
            };
            let (tokens, demo) = if config.api_tokens.is_empty() {
                let token = mint_token();
                let tokens = ApiTokens::new(vec![(token_digest(&token), demo_tenant())]);
                (tokens, Some(token))
            } else {
                (configured_tokens(config), None)
            };
            let (router, worker) = assemble(MemoryRepo::new(), tokens, keyring, &delivery);
            (router, worker, demo, "memory")
        }
        Database::Postgres(url) => {
            let pg = postgres::open(config, url).await?;
            let (router, worker) = assemble(pg.repo, pg.tokens, pg.keyring, &delivery);
            (router, worker, pg.demo_token, "postgres")
        }
        Database::Sqlite(database) => {
            let database_existed = database.exists();
            let repo = SqliteRepo::open(database).map_err(StartError::Database)?;
            let keyring = keyring(config, database_existed)?;
            let (tokens, demo) = if config.api_tokens.is_empty() {
                let stored = repo.api_tokens().await.map_err(StartError::Database)?;
                if stored.is_empty() {
                    let token = mint_token();
                    let now = Timestamp::try_from(std::time::SystemTime::now())
                        .map_err(|_| StartError::Clock)?;
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
            let (router, worker) = assemble(repo, tokens, keyring, &delivery);
            (router, worker, demo, "sqlite")
        }
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(StartError::Listen)?;
    let local_addr = listener.local_addr().map_err(StartError::Listen)?;
    let limits = serve::Limits {
        header_read: config.header_read_timeout,
        body_read: config.body_read_timeout,
        idle: config.idle_timeout,
        max_connections: usize::try_from(config.max_connections).unwrap_or(usize::MAX),
    };
    Ok(Prepared {
        listener,
        router,
        limits,
        worker: (!config.no_delivery).then_some(worker),
        demo_token,
        local_addr,
        store,
    })
}

/// Serves and delivers until `shutdown` completes; then stops accepting
/// connections and claiming deliveries, and returns once the requests in
/// flight are answered and the delivery worker has stopped (attempts being
/// sent finish within the delivery timeout, the leases of the others are
/// released). Connections are bounded by the configured header, body and
/// idle timeouts and connection cap. The storage closes when the last user
/// of it is done.
///
/// # Errors
/// If accepting connections fails for good.
pub async fn serve(
    prepared: Prepared,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let worker = prepared.worker.map(|start| start());
    let (stopping, stop_seen) = oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    let server = serve::run(
        prepared.listener,
        prepared.router,
        prepared.limits,
        shutdown,
    );
    tokio::pin!(server);
    let result = tokio::select! {
        biased;
        result = &mut server => result,
        _ = stop_seen => {
            if let Some(worker) = &worker {
                worker.begin_shutdown();
            }
            server.await
        }
    };
    if let Some(worker) = worker {
        worker.shutdown().await;
    }
    result
}

/// Completes on ctrl-c (SIGINT) or, on Unix, SIGTERM. On Unix both are
/// caught from the call on (not from the first poll), so a signal sent as
/// soon as the server says it listens still stops it gracefully. Call it
/// within the runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            let wait = |s: io::Result<tokio::signal::unix::Signal>| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(int) => tracing::info!("ctrl-c: shutting down"),
                () = wait(term) => tracing::info!("SIGTERM: shutting down"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("ctrl-c: shutting down");
    }
}

/// A server started in the background by [`spawn`].
#[derive(Debug)]
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The demo token, when this start created it.
    pub demo_token: Option<Zeroizing<String>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

impl Running {
    /// Shuts the server down gracefully and waits until it has stopped and
    /// its storage is closed.
    ///
    /// # Errors
    /// If serving failed, or the server task panicked.
    pub async fn stop(self) -> io::Result<()> {
        let _ = self.stop.send(());
        self.task.await.map_err(io::Error::other)?
    }
}

/// Prepares and serves `config` on a background task, for tests and the load
/// generator.
///
/// # Errors
/// See [`prepare`].
pub async fn spawn(config: &Config) -> Result<Running, StartError> {
    spawn_with_resolver(config, Arc::new(SystemResolver)).await
}

/// [`spawn`], with deliveries resolving names through `resolver`.
///
/// # Errors
/// See [`prepare`].
pub async fn spawn_with_resolver(
    config: &Config,
    resolver: Arc<dyn Resolve>,
) -> Result<Running, StartError> {
    let mut prepared = prepare_with_resolver(config, resolver).await?;
    let demo_token = prepared.demo_token.take();
    let addr = prepared.local_addr;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(prepared, async {
        let _ = stopped.await;
    }));
    Ok(Running {
        addr,
        demo_token,
        stop,
        task,
    })
}
