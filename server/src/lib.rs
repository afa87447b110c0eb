//! The reference server of `prets-destinations`: the event destinations API
//! over HTTP (axum on tokio) on an embedded SQLite database, or on
//! PostgreSQL for several nodes behind a load balancer.
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

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;

use prets_destinations::{Keyring, MemoryRepo, TenantId, Timestamp};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

pub use crate::api::{AppState, BODY_LIMIT, OPENAPI_JSON, router};
pub use crate::auth::{ApiTokens, TOKEN_PREFIX, mint_token, token_digest};
pub use crate::config::{
    Config, DeliveryConfig, DeliveryConfigError, InvalidTokenEntry, TokenEntry,
};
pub use crate::database::{Database, PgUrl};
pub use crate::keyfile::KeyFileError;
pub use crate::problem::{PROBLEM_BASE, PROBLEM_JSON, Problem};
pub use crate::sqlite::{MAX_BATCH, SqliteError, SqliteRepo, schema_version};
pub use prets_destinations_postgres::PgError;

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
            Self::MissingSealingKey | Self::SealingKeyRequired | Self::Clock => None,
        }
    }
}

/// A server ready to serve: bound, with its storage open.
pub struct Prepared {
    listener: TcpListener,
    router: axum::Router,
    limits: serve::Limits,
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

/// Opens the storage, loads or creates the sealing key and the API tokens,
/// and binds the listen address.
///
/// # Errors
/// See [`StartError`].
pub async fn prepare(config: &Config) -> Result<Prepared, StartError> {
    let (router, demo_token, store) = match &config.database {
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
            let state = AppState::new(MemoryRepo::new(), tokens, keyring);
            (router(state), demo, "memory")
        }
        Database::Postgres(url) => {
            let pg = postgres::open(config, url).await?;
            let state = AppState::new(pg.repo, pg.tokens, pg.keyring);
            (router(state), pg.demo_token, "postgres")
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
            let state = AppState::new(repo, tokens, keyring);
            (router(state), demo, "sqlite")
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
        demo_token,
        local_addr,
        store,
    })
}

/// Serves until `shutdown` completes, then stops accepting connections and
/// returns once the requests in flight are answered. Connections are bounded
/// by the configured header, body and idle timeouts and connection cap. The storage closes when
/// the last of them is done.
///
/// # Errors
/// If accepting connections fails for good.
pub async fn serve(
    prepared: Prepared,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve::run(
        prepared.listener,
        prepared.router,
        prepared.limits,
        shutdown,
    )
    .await
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
    let mut prepared = prepare(config).await?;
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
