//! The retention sweeper: a background task that removes, in bounded
//! batches, the attempt records older than `--attempt-retention` and the
//! events older than `--event-retention` with no delivery pending, through
//! the store's [`EventLog::purge`].
//!
//! Each batch is one short write (at most [`BATCH`] rows of each kind), and
//! the sweeper pauses between batches, so on SQLite the single writer is
//! never held for long and requests' writes interleave with a large purge.
//! Every node of a PostgreSQL cluster runs its own; their purges may
//! overlap, each deleting what the others have not.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prets_destinations::Timestamp;
use prets_destinations::delivery::{EventLog, PurgeCutoffs, Purged};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The most attempt records, and the most events, one purge write removes.
pub const BATCH: usize = 1_000;

/// The pause between two batches of one sweep: the other writers' turn.
const PAUSE: Duration = Duration::from_millis(20);

/// How long records are kept, and how often the sweeper looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Attempt records, by the time the attempt started.
    pub attempts: Duration,
    /// Events with no delivery pending, by the time they were published.
    pub events: Duration,
    /// Between two sweeps.
    pub interval: Duration,
}

impl Default for Retention {
    /// 30 days of attempts, 7 days of events, a sweep a minute.
    fn default() -> Self {
        Self {
            attempts: Duration::from_secs(30 * 86_400),
            events: Duration::from_secs(7 * 86_400),
            interval: Duration::from_secs(60),
        }
    }
}

/// The attempt retention is shorter than the event retention: a retained
/// event could lose the record of its successful delivery, and recover would
/// then send it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionConfigError;

impl fmt::Display for RetentionConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "--attempt-retention must not be shorter than --event-retention: a kept event would lose the record of its delivery",
        )
    }
}

impl std::error::Error for RetentionConfigError {}

impl Retention {
    /// The cutoffs at `now`: what started or was published before
    /// `now - retention` goes (none before the epoch).
    #[must_use]
    pub fn cutoffs(&self, now: Timestamp) -> PurgeCutoffs {
        PurgeCutoffs {
            attempts_before: before(now, self.attempts),
            events_before: before(now, self.events),
        }
    }
}

fn before(now: Timestamp, age: Duration) -> Timestamp {
    let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
    Timestamp::from_unix_millis(now.unix_millis().saturating_sub(age_ms))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A running sweeper.
#[derive(Debug)]
pub(crate) struct SweeperHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SweeperHandle {
    /// Stops the sweeper (a batch being written finishes first) and waits
    /// for it.
    pub(crate) async fn shutdown(self) {
        self.stop.send_replace(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the retention sweeper failed");
        }
    }
}

/// Starts sweeping `repo` every `retention.interval`, the first sweep at
/// once.
pub(crate) fn spawn<R: EventLog + 'static>(repo: Arc<R>, retention: Retention) -> SweeperHandle {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            match sweep_until(&*repo, &retention, &stopped).await {
                Ok(purged) if !purged.is_empty() => tracing::info!(
                    attempts = purged.attempts,
                    events = purged.events,
                    "retention: removed old attempt records and events"
                ),
                Ok(_) => {}
                Err(error) => tracing::warn!(
                    error = %error,
                    "retention: the sweep failed; it runs again at the next interval"
                ),
            }
            tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => return,
                () = tokio::time::sleep(retention.interval) => {}
            }
        }
    });
    SweeperHandle { stop, task }
}

/// One sweep, as the sweeper makes it: purges batch after batch at the
/// cutoffs of the store's clock (`now` from [`Outbox::now`]) until a batch
/// removes less than a full batch of each kind. Returns what it removed in
/// all.
///
/// [`Outbox::now`]: prets_destinations::delivery::Outbox::now
///
/// # Errors
/// The store's, from the first batch that fails (earlier batches stay
/// removed).
pub async fn sweep<R: EventLog + ?Sized>(
    repo: &R,
    retention: &Retention,
) -> Result<Purged, R::Error> {
    sweep_until(repo, retention, &watch::channel(false).1).await
}

/// [`sweep`], ending early after a batch once `stop` is set.
async fn sweep_until<R: EventLog + ?Sized>(
    repo: &R,
    retention: &Retention,
    stop: &watch::Receiver<bool>,
) -> Result<Purged, R::Error> {
    let cutoffs = retention.cutoffs(repo.now().await?);
    let mut total = Purged::default();
    loop {
        let purged = repo.purge(cutoffs, BATCH).await?;
        total.attempts += purged.attempts;
        total.events += purged.events;
        if (purged.attempts < BATCH && purged.events < BATCH) || *stop.borrow() {
            return Ok(total);
        }
        tokio::time::sleep(PAUSE).await;
    }
}
