//! `prets-destinations-server`: see `--help`.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;
use prets_destinations_server::{Config, prepare, serve, shutdown_signal};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut prepared = match prepare(&config).await {
        Ok(prepared) => prepared,
        Err(error) => {
            let source = std::error::Error::source(&error).map(ToString::to_string);
            tracing::error!(%error, ?source, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    // Signals are caught from here on: before anyone learns the server is up.
    let shutdown = shutdown_signal();
    if let Some(token) = prepared.demo_token.take() {
        // The one place the token is shown: stdout, once, never the log.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "Created the demo organization `{}`. Its API token (shown only now):\n\n  {}\n\n\
             Try: curl -i http://{}/v1/events/destinations -H 'Authorization: Bearer {}' \
             -H 'Content-Type: application/json' \
             -d '{{\"name\":\"Production\",\"url\":\"https://example.com/prets/events\"}}'\n",
            prets_destinations_server::DEMO_ORGANIZATION,
            *token,
            prepared.local_addr,
            *token,
        );
        let _ = out.flush();
    }
    if let Some(metrics) = prepared.metrics_addr {
        tracing::info!(metrics = %metrics, "serving metrics at /metrics");
    }
    tracing::info!(addr = %prepared.local_addr, store = prepared.store, "listening");
    match serve(prepared, shutdown).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}
