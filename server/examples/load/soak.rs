//! The soak run: steady publishing to destinations whose receiver is dead
//! (every connection refused), with short retries and short retentions,
//! while the store's size on disk is sampled. With the retention sweeper
//! working, the size grows while the first events age, then stays flat:
//! what is removed makes room for what arrives.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::env::{Env, Nodes};
use crate::http::Conn;
use crate::publish::create_destinations;
use crate::{Args, Store, label};

/// Destinations of the soak, all on the dead receiver.
const FANOUT: usize = 10;

/// Keep-alive connections publishing, the rate split between them.
const PUBLISHERS: usize = 4;

/// How often the size is sampled.
const SAMPLE: Duration = Duration::from_secs(2);

/// The retentions of the soak: an event is removed about this long after
/// its deliveries have failed (3 attempts within about 2 s).
const RETENTION: Duration = Duration::from_secs(6);

/// One sample: seconds since the soak started, events acknowledged so far,
/// bytes on disk.
struct Sample {
    at: f64,
    events: u64,
    bytes: u64,
}

/// One soak per store that keeps a file (SQLite, PostgreSQL); prints the
/// samples and the verdict (a benchmark's: never an exit status).
pub(crate) async fn soak(env: &mut Env, args: &Args) {
    println!(
        "\n## Soak: {} events/s × fan-out {FANOUT} of {} KiB for {} s to a receiver refusing every connection; retries 1s,1s; retentions {} s; sweeps every second\n",
        args.soak_rate,
        args.soak_payload_kib,
        args.soak_seconds,
        RETENTION.as_secs()
    );
    println!(
        "| store | events | publishes/s | refused | size at 1/3 | size at 2/3 | size at end | growth, last third | flat |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &store in &args.stores {
        if store == Store::Memory {
            continue;
        }
        let samples = soak_case(env, args, store).await;
        let (events, refused, samples) = samples;
        let at = |fraction: f64| {
            let t = args.soak_seconds * fraction;
            samples
                .iter()
                .rev()
                .find(|s| s.at <= t)
                .map_or(0, |s| s.bytes)
        };
        let (third, two_thirds, end) = (at(1.0 / 3.0), at(2.0 / 3.0), at(1.0));
        // Flat: the last third adds at most a tenth of what the store held
        // at two thirds (pages reused; no growth with the events published).
        let growth = end.saturating_sub(two_thirds);
        let flat = growth * 10 <= two_thirds.max(1);
        println!(
            "| {} | {events} | {:.0} | {refused} | {} | {} | {} | {} | {} |",
            label(store, 1),
            events as f64 / args.soak_seconds,
            mib(third),
            mib(two_thirds),
            mib(end),
            mib(growth),
            if flat { "yes" } else { "NO" },
        );
        println!(
            "  samples (s: MiB): {}",
            samples
                .iter()
                .map(|s| format!("{:.0}: {} ({} events)", s.at, mib(s.bytes), s.events))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Publishes for `--soak-seconds` at `--soak-rate`, sampling the size.
/// Returns the events acknowledged, the publishes refused and the samples.
async fn soak_case(env: &mut Env, args: &Args, store: Store) -> (u64, u64, Vec<Sample>) {
    // A port nothing listens on: bound, then closed.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let running = env
        .start(store, 1, |config| {
            config.allow_private_destinations = vec!["127.0.0.1/32".parse().unwrap()];
            config.retry_schedule = "1s,1s".parse().unwrap();
            config.event_retention = RETENTION;
            config.attempt_retention = RETENTION;
            config.retention_interval = Duration::from_secs(1);
        })
        .await;
    let addr = running.addrs()[0];
    create_destinations(addr, &env.token, port, FANOUT).await;

    let stop = Arc::new(AtomicBool::new(false));
    let events = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let body: Arc<str> = format!(
        r#"{{"type":"load.soak","payload":{{"pad":"{}"}}}}"#,
        "x".repeat(args.soak_payload_kib * 1024)
    )
    .into();
    let period = Duration::from_secs_f64(PUBLISHERS as f64 / args.soak_rate);
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|_| {
            let (token, body) = (env.token.clone(), body.clone());
            let (stop, events, refused) = (stop.clone(), events.clone(), refused.clone());
            tokio::spawn(async move {
                let mut conn = Conn::open(addr).await;
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let (status, _) = conn.post("/v1/events", &token, &body).await;
                    let counter = if status == 202 { &events } else { &refused };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut sampler = tokio::time::interval(SAMPLE);
    loop {
        sampler.tick().await;
        let at = started.elapsed().as_secs_f64();
        samples.push(Sample {
            at,
            events: events.load(Ordering::Relaxed),
            bytes: size(env, &running, store).await,
        });
        if at >= args.soak_seconds {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for publisher in publishers {
        publisher.await.unwrap();
    }
    running.stop().await;
    (
        events.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        samples,
    )
}

/// The store's bytes on disk: SQLite's database file with its `-wal` and
/// `-shm`; PostgreSQL's database.
async fn size(env: &Env, running: &Nodes, store: Store) -> u64 {
    match store {
        Store::Sqlite => sqlite_size(&env.last_sqlite()),
        Store::Postgres => running.database_size().await,
        Store::Memory => 0,
    }
}

fn sqlite_size(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            std::fs::metadata(name).map_or(0, |m| m.len())
        })
        .sum()
}
