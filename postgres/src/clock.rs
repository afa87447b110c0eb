//! The database's clock, as [`Outbox::now`](prets_destinations::delivery::Outbox::now)
//! answers it: measured against this process's monotonic clock, so every
//! node of a cluster judges due times and leases by one clock whatever its
//! own wall clock says.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use deadpool_postgres::Pool;
use prets_destinations::Timestamp;
use tokio::runtime::Handle;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::error::PgError;

/// How old a measurement may be before [`DbClock::now`] starts a new one
/// (in the background: the answer never waits for it).
pub(crate) const REFRESH: Duration = Duration::from_secs(5);

/// Samples taken at connect; the one with the shortest round trip wins.
const SAMPLES_AT_CONNECT: usize = 3;

/// The database's clock, as an offset from this process's monotonic clock.
#[derive(Debug)]
pub(crate) struct DbClock {
    /// The monotonic origin every offset is counted from.
    origin: Instant,
    /// Database Unix milliseconds minus milliseconds since `origin`.
    base_ms: AtomicI64,
    /// Database clock minus this host's system clock, in milliseconds, at
    /// the last measurement.
    offset_ms: AtomicI64,
    /// Milliseconds since `origin` of the last measurement.
    measured_at_ms: AtomicI64,
    /// A refresh is running.
    refreshing: AtomicBool,
}

/// One reading: the database's Unix milliseconds at the midpoint of the
/// round trip, that midpoint, and the round trip.
struct Sample {
    db_ms: i64,
    mid: Instant,
    rtt: Duration,
}

fn since(origin: Instant, at: Instant) -> i64 {
    i64::try_from(at.saturating_duration_since(origin).as_millis()).unwrap_or(i64::MAX)
}

fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One round trip (a simple query: no separate prepare) reading
/// `clock_timestamp()`, the wall clock when the statement runs.
async fn sample(client: &Client) -> Result<Sample, PgError> {
    let sent = Instant::now();
    let messages = client
        .simple_query("SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT")
        .await?;
    let received = Instant::now();
    let text = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0),
            _ => None,
        })
        .ok_or(PgError::corrupt("database clock"))?;
    let db_ms: i64 = text
        .parse()
        .map_err(|_| PgError::corrupt("database clock"))?;
    let rtt = received.saturating_duration_since(sent);
    Ok(Sample {
        db_ms,
        mid: sent + rtt / 2,
        rtt,
    })
}

impl DbClock {
    /// Measures the database's clock on `client` (the best of a few round
    /// trips).
    pub(crate) async fn measure(client: &Client) -> Result<Self, PgError> {
        let origin = Instant::now();
        let mut best = sample(client).await?;
        for _ in 1..SAMPLES_AT_CONNECT {
            let next = sample(client).await?;
            if next.rtt < best.rtt {
                best = next;
            }
        }
        let clock = Self {
            origin,
            base_ms: AtomicI64::new(0),
            offset_ms: AtomicI64::new(0),
            measured_at_ms: AtomicI64::new(0),
            refreshing: AtomicBool::new(false),
        };
        clock.store(&best);
        Ok(clock)
    }

    fn store(&self, s: &Sample) {
        let mid = since(self.origin, s.mid);
        self.base_ms
            .store(s.db_ms.saturating_sub(mid), Ordering::Relaxed);
        // The system clock at the midpoint: now, less the time since it.
        let system_at_mid = system_ms().saturating_sub(since(s.mid, Instant::now()));
        self.offset_ms
            .store(s.db_ms.saturating_sub(system_at_mid), Ordering::Relaxed);
        self.measured_at_ms
            .store(since(self.origin, Instant::now()), Ordering::Relaxed);
    }

    /// The database clock minus this host's system clock, in milliseconds,
    /// at the last measurement.
    pub(crate) fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// The database's time now; starts a refresh on `runtime` when the last
    /// measurement is older than [`REFRESH`].
    pub(crate) fn now(self: &Arc<Self>, pool: &Pool, runtime: &Handle) -> Timestamp {
        let elapsed = since(self.origin, Instant::now());
        let ms = self.base_ms.load(Ordering::Relaxed).saturating_add(elapsed);
        let age = elapsed.saturating_sub(self.measured_at_ms.load(Ordering::Relaxed));
        if age > i64::try_from(REFRESH.as_millis()).unwrap_or(i64::MAX)
            && !self.refreshing.swap(true, Ordering::AcqRel)
        {
            let (clock, pool) = (Arc::clone(self), pool.clone());
            runtime.spawn(async move {
                // A failed refresh keeps the last measurement; the next
                // call tries again.
                if let Ok(client) = pool.get().await
                    && let Ok(s) = sample(&client).await
                {
                    clock.store(&s);
                }
                clock.refreshing.store(false, Ordering::Release);
            });
        }
        u64::try_from(ms)
            .ok()
            .and_then(Timestamp::from_unix_millis)
            .unwrap_or(Timestamp::UNIX_EPOCH)
    }
}
