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
mod health;
mod hex;
mod keyfile;
mod metrics;
mod problem;
mod ratelimit;
mod request_id;
mod retention;
mod serve;
mod sqlite;
mod start;
#[cfg(feature = "test-support")]
pub mod test_support;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use prets_destinations::Keyring;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

pub use crate::api::{
    AppState, BODY_LIMIT, OPENAPI_JSON, PUBLISH_BODY_LIMIT, metrics_router, router,
    router_with_event_log,
};
pub use crate::auth::{ApiTokens, TOKEN_PREFIX, mint_token, token_digest};
pub use crate::config::{Config, DeliveryConfigError, InvalidTokenEntry, TokenEntry};
pub use crate::database::{ConninfoRefused, Database, PgUrl};
pub use crate::delivery::DeliveryConfig;
pub use crate::health::{NotReady, Readiness, ReadyCheck};
pub use crate::keyfile::KeyFileError;
pub use crate::metrics::{
    ATTEMPT_OUTCOMES, DEPTH_SAMPLE_EVERY, METRICS_CONTENT_TYPE, Metered, Metrics, UNMATCHED_ROUTE,
    outcome_label, route_label,
};
pub use crate::problem::{PROBLEM_BASE, PROBLEM_JSON, Problem, ProblemKind};
pub use crate::ratelimit::RateLimiter;
pub use crate::retention::{BATCH as RETENTION_BATCH, Retention, RetentionConfigError, sweep};
pub use crate::sqlite::{MAX_BATCH, SqliteError, SqliteRepo, schema_version};
pub use crate::start::{DEMO_ORGANIZATION, Prepared, StartError, prepare, prepare_with_resolver};
pub use prets_destinations_postgres::PgError;

use crate::delivery::{Resolve, SystemResolver};

/// Reads a sealing-key file (`<key id> <64 hex digits>` per line, the first
/// line the current key) into a keyring.
///
/// # Errors
/// If the file cannot be read, a line is malformed, it holds no key, or two
/// keys share an id.
pub fn load_keyring(path: &std::path::Path) -> Result<Keyring, KeyFileError> {
    keyfile::load(path)
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
    let sweeper = (prepared.sweeper)();
    let (stopping, stop_seen) = oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    // The metrics listener serves until the API's listener has stopped.
    let (metrics_stop, metrics_stopped) = oneshot::channel::<()>();
    let metrics = prepared.metrics.map(|(listener, router)| {
        tokio::spawn(serve::run(listener, router, prepared.limits, async {
            let _ = metrics_stopped.await;
        }))
    });
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
    sweeper.shutdown().await;
    let _ = metrics_stop.send(());
    if let Some(metrics) = metrics {
        match metrics.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "the metrics listener failed"),
            Err(error) => tracing::error!(%error, "the metrics listener failed"),
        }
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
    /// The metrics listener's bound address, with `--metrics-listen`.
    pub metrics_addr: Option<SocketAddr>,
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
    let metrics_addr = prepared.metrics_addr;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(prepared, async {
        let _ = stopped.await;
    }));
    Ok(Running {
        addr,
        metrics_addr,
        demo_token,
        stop,
        task,
    })
}
