//! The backlog runs: events × fan-out 10 published as fast as the server
//! takes them while the receiver holds every delivery, then drained with
//! the receiver answering; and the same at two depths, to see whether the
//! drain rate depends on how much is queued.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::cpu::{Cpu, per};
use crate::env::Env;
use crate::http::{ms, percentile};
use crate::publish::{Pace, Published, create_destinations, publish};
use crate::receiver::start_receiver;
use crate::{Args, BACKLOG_FANOUT, Store, delivery_settings, label, node_counts, ratio};

/// One backlog drained.
pub(crate) struct Drained {
    /// Events acknowledged while the receiver was paused.
    pub(crate) events: usize,
    /// Publishes per second while the receiver was paused.
    pub(crate) fill_rate: f64,
    /// Publishes during the drain (paced at `--probe-rate`) and their
    /// latencies, sorted.
    pub(crate) probes: Published,
    /// Distinct deliveries received.
    pub(crate) deliveries: usize,
    /// From resuming the receiver to the last first receipt.
    pub(crate) drain: Duration,
    /// Deliveries per second over the whole drain.
    pub(crate) rate: f64,
    /// Deliveries per second over the first `window` deliveries.
    pub(crate) window_rate: f64,
    pub(crate) duplicates: usize,
    pub(crate) missing: usize,
    /// Publishes refused, and requests that were not deliveries of the run.
    pub(crate) refused: usize,
    pub(crate) strays: usize,
    /// CPU time from the resume to the last delivery of the backlog.
    pub(crate) cpu: Option<Cpu>,
}

/// `events` × [`BACKLOG_FANOUT`] queued while the receiver holds every
/// request, then drained; with `probe`, events are published at
/// `--probe-rate` during the drain, and their latencies kept.
async fn drain_case(
    env: &mut Env,
    args: &Args,
    store: Store,
    nodes: usize,
    events: usize,
    window: usize,
    probe: bool,
) -> Drained {
    let epoch = Instant::now();
    let cert_path = env.dir.join("receiver.pem");
    let receiver = start_receiver(&cert_path, epoch).await;
    receiver.pause();
    let running = env
        .start(store, nodes, |config| {
            delivery_settings(config, &cert_path, args);
        })
        .await;
    let addrs = running.addrs();
    create_destinations(addrs[0], &env.token, receiver.addr.port(), BACKLOG_FANOUT).await;

    // Fill: as fast as the server acknowledges, the worker's first attempts
    // held by the paused receiver.
    let stop = Arc::new(AtomicBool::new(false));
    let filling = Instant::now();
    let fill = Pace::Fast {
        count: events as u64,
    };
    let backlog = publish(&addrs, args.publishers, &env.token, fill, epoch, &stop)
        .await
        .unwrap();
    let fill_rate = backlog.acked.len() as f64 / filling.elapsed().as_secs_f64();

    // Drain, publishing at the probe rate until the backlog has arrived.
    let resumed = epoch.elapsed();
    let cpu_before = Cpu::now();
    receiver.resume();
    let probes = probe.then(|| {
        let pace = Pace::Rate {
            start: tokio::time::Instant::now(),
            rate: args.probe_rate,
            end: None,
        };
        publish(
            &addrs,
            args.publishers.min(4),
            &env.token,
            pace,
            epoch,
            &stop,
        )
    });
    let drain_until = Instant::now() + Duration::from_secs_f64(args.drain_seconds);
    receiver.wait_for(backlog.expected(), drain_until).await;
    let cpu = Cpu::since(cpu_before);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut probes = match probes {
        Some(task) => task.await.unwrap(),
        None => Published::default(),
    };
    probes.latencies.sort_unstable();
    receiver
        .wait_for(backlog.expected() + probes.expected(), drain_until)
        .await;
    // Let late duplicates, if any, arrive before counting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.stop().await;

    let seen = receiver.take();
    let expected = backlog
        .acked
        .iter()
        .chain(&probes.acked)
        .map(|a| (a.event_id.as_str(), BACKLOG_FANOUT));
    let missing = seen.missing(expected);
    let drain = seen.last().saturating_sub(resumed);
    let window_rate = seen
        .arrivals
        .get(window.saturating_sub(1))
        .map_or(0.0, |&at| {
            window as f64 / at.saturating_sub(resumed).as_secs_f64().max(1e-9)
        });
    Drained {
        events: backlog.acked.len(),
        fill_rate,
        deliveries: seen.receipts.len(),
        drain,
        rate: seen.receipts.len() as f64 / drain.as_secs_f64().max(1e-9),
        window_rate,
        duplicates: seen.duplicates(),
        missing,
        refused: backlog.refused + probes.refused,
        strays: seen.strays,
        probes,
        cpu,
    }
}

fn note_anomalies(d: &Drained) {
    if d.refused > 0 || d.strays > 0 {
        println!(
            "  ({} publishes refused, {} stray requests)",
            d.refused, d.strays
        );
    }
}

/// One backlog run per store (and PostgreSQL node count).
pub(crate) async fn backlog(
    env: &mut Env,
    args: &Args,
    floor: Option<f64>,
) -> Vec<(Store, usize, Drained)> {
    println!(
        "\n## Backlog: {} events × fan-out {BACKLOG_FANOUT} published as fast as acknowledged over {} connections with the receiver paused, then drained while publishing {} events/s\n",
        args.backlog_events, args.publishers, args.probe_rate
    );
    println!(
        "| store | events | fill publishes/s | deliveries | drain | deliveries/s | × floor | CPU µs/delivery: process | database | publishes in the drain | publish p50 | publish p99 | duplicates | missing |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for &store in &args.stores {
        for nodes in node_counts(store, args) {
            let d = drain_case(env, args, store, nodes, args.backlog_events, 1, true).await;
            println!(
                "| {} | {} | {:.0} | {} | {:.2} s | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
                label(store, nodes),
                d.events,
                d.fill_rate,
                d.deliveries,
                d.drain.as_secs_f64(),
                d.rate,
                ratio(Some(d.rate), floor),
                per(d.cpu.map(|c| c.process), d.deliveries),
                per(
                    d.cpu
                        .filter(|_| store == Store::Postgres)
                        .map(|c| c.database),
                    d.deliveries
                ),
                d.probes.latencies.len(),
                ms(percentile(&d.probes.latencies, 0.50)),
                ms(percentile(&d.probes.latencies, 0.99)),
                d.duplicates,
                d.missing,
            );
            note_anomalies(&d);
            rows.push((store, nodes, d));
        }
    }
    rows
}

/// The drain at each of `--depths` deliveries queued, memory and SQLite
/// only: the rate over the first half of the smallest depth's deliveries,
/// so that every depth is measured over as many deliveries, with the queue
/// still at least half full.
pub(crate) async fn depths(
    env: &mut Env,
    args: &Args,
    floor: Option<f64>,
) -> Vec<(Store, usize, Drained)> {
    let stores: Vec<Store> = args
        .stores
        .iter()
        .copied()
        .filter(|s| *s != Store::Postgres)
        .collect();
    let smallest = args.depths.iter().copied().min().unwrap_or(0);
    let window = (smallest / 2).max(1);
    println!(
        "\n## Depth: {:?} deliveries queued (fan-out {BACKLOG_FANOUT}) with the receiver paused, then drained; rate over the first {window} deliveries\n",
        args.depths
    );
    println!(
        "| store | queued | deliveries/s, first {window} | × floor | deliveries/s, whole drain | drain | duplicates | missing |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for &store in &stores {
        for &depth in &args.depths {
            let events = depth.div_ceil(BACKLOG_FANOUT);
            let d = drain_case(env, args, store, 1, events, window, false).await;
            println!(
                "| {} | {} | {:.0} | {} | {:.0} | {:.2} s | {} | {} |",
                store.name(),
                d.events * BACKLOG_FANOUT,
                d.window_rate,
                ratio(Some(d.window_rate), floor),
                d.rate,
                d.drain.as_secs_f64(),
                d.duplicates,
                d.missing,
            );
            note_anomalies(&d);
            rows.push((store, depth, d));
        }
    }
    rows
}
