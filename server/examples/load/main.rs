//! Load generator: the server started in-process on each store, driven over
//! loopback HTTP. Bounded in request count and in time.
//!
//! - **creates**: creates destinations over keep-alive connections and
//!   reports creates per second and latency percentiles.
//! - **floor**: an HTTPS receiver on 127.0.0.1 driven by a bare reqwest
//!   client with the delivery client's settings, posting what deliveries
//!   post, `--delivery-concurrency` at once: the deliveries per second no
//!   store can beat, which every delivery run is divided by. It runs first
//!   whenever a delivery run is asked (unless `--no-floor`), and again at the
//!   end to show how much the machine drifted.
//! - **delivery**: the same receiver (a self-signed certificate trusted
//!   through `delivery_root_certs`), 1 and 10 destinations pointing at it,
//!   events published at a fixed rate; reports publishes per second,
//!   deliveries per second and the latency from publish to receipt.
//! - **backlog**: `--backlog-events` events × fan-out 10 published as fast as
//!   the server acknowledges them while the receiver holds every request,
//!   then drained with the receiver answering while events are published at
//!   `--probe-rate`: the drain's deliveries per second and the publish
//!   latency during it.
//! - **depth**: the same at each of `--depths` deliveries queued (memory and
//!   SQLite): does the drain rate depend on the queue's depth?
//!
//! - **soak**: `--soak-rate` events/s × fan-out 10 for `--soak-seconds`
//!   to a receiver that refuses every connection, with 6 s retentions and
//!   a sweep every second (SQLite and PostgreSQL): the store's size on disk
//!   over time, which must stop growing once the first events age out.
//!
//! The backlog and depth runs end with the table of targets (PASS or MISS,
//! never an exit status: these are benchmarks). Every acknowledged event
//! must reach every destination: a delivery still missing after a drain makes
//! the example exit with status 1. Duplicates (allowed by at-least-once
//! delivery) are counted apart.
//!
//! Stores: `sqlite` (a temporary file), `memory`, and `postgres` (a database
//! created for the run on `--postgres-url` and dropped after it, served by
//! one and by two nodes: in-process servers on the same database, the client
//! splitting its connections between them).
//!
//! ```text
//! cargo run --release -p prets-destinations-server --example load -- --stores sqlite,memory,postgres
//! cargo run --release -p prets-destinations-server --example load -- --run backlog,depth
//! ```

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

mod backlog;
mod cpu;
mod creates;
mod delivery;
mod env;
mod floor;
mod http;
mod publish;
mod receiver;
mod soak;
mod targets;

use std::path::Path;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use prets_destinations_server::Config;

use crate::env::Env;

/// Destinations of the backlog, depth and floor runs.
const BACKLOG_FANOUT: usize = 10;

/// The delivery timeout of every delivery run: long enough that the attempts
/// the paused receiver holds while a backlog fills never time out.
const HOLD_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RunKind {
    /// Creates.
    Creates,
    /// The floor alone (it also runs before any delivery run).
    Floor,
    /// Paced publishing and delivery.
    Delivery,
    /// A backlog published, then drained.
    Backlog,
    /// Backlogs of each of `--depths`, drained.
    Depth,
    /// Steady publishing to a dead receiver with short retentions: the
    /// store's size on disk over time.
    Soak,
    /// Every run.
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Store {
    Sqlite,
    Memory,
    Postgres,
}

impl Store {
    const fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Memory => "memory",
            Self::Postgres => "PostgreSQL",
        }
    }
}

#[derive(Parser, Debug)]
#[command(about = "Load over loopback: creates, and publish-to-delivery, per store")]
struct Args {
    /// Which runs, in this order: creates, floor, delivery, backlog, depth.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    run: Vec<RunKind>,
    /// The stores, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sqlite,memory"
    )]
    stores: Vec<Store>,
    /// Node counts for PostgreSQL (each node an in-process server on the same
    /// database).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    postgres_nodes: Vec<usize>,
    /// The PostgreSQL server: the run creates its own database there and
    /// drops it at the end.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,

    /// Creates per store (after the warm-up).
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// Concurrent keep-alive connections for creates.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Stop a store's creates after this many seconds even if requests remain.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Creates per store before measuring (not counted).
    #[arg(long, default_value_t = 500)]
    warmup: usize,

    /// The server's `--delivery-concurrency` in every delivery run, and the
    /// floor's requests in flight.
    #[arg(long, default_value_t = 64)]
    delivery_concurrency: u32,
    /// The server's `--destination-concurrency` in every delivery run
    /// (default: the server's).
    #[arg(long)]
    destination_concurrency: Option<u32>,
    /// The server's `--delivery-lookahead` in every delivery run (default:
    /// the server's).
    #[arg(long)]
    delivery_lookahead: Option<u32>,
    /// Skip the floor (the delivery runs then print no ratios).
    #[arg(long)]
    no_floor: bool,
    /// Floor measurements at the start (and at the end); the fastest of
    /// those at the start is the floor.
    #[arg(long, default_value_t = 3)]
    floor_runs: usize,

    /// Destinations per paced delivery run (one run per value).
    #[arg(long, value_delimiter = ',', default_value = "1,10")]
    fanout: Vec<usize>,
    /// Events published per second (paced; fewer if the server cannot keep up).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// How long to publish.
    #[arg(long, default_value_t = 5.0)]
    publish_seconds: f64,
    /// How long to wait, after the last publish (or the receiver's resume),
    /// for every delivery.
    #[arg(long, default_value_t = 120.0)]
    drain_seconds: f64,
    /// Keep-alive connections publishing.
    #[arg(long, default_value_t = 16)]
    publishers: usize,

    /// Events of the backlog run (and of the floor), each delivered to 10
    /// destinations.
    #[arg(long, default_value_t = 3_000)]
    backlog_events: usize,
    /// Events published per second during a backlog's drain, whose publish
    /// latencies the backlog table reports.
    #[arg(long, default_value_t = 20.0)]
    probe_rate: f64,
    /// Deliveries queued in the depth runs (one run per value and store).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    depths: Vec<usize>,

    /// How long the soak publishes.
    #[arg(long, default_value_t = 60.0)]
    soak_seconds: f64,
    /// Events published per second in the soak (each to 10 destinations).
    #[arg(long, default_value_t = 20.0)]
    soak_rate: f64,
    /// The soak's payload size in KiB (1 to 255).
    #[arg(long, default_value_t = 16)]
    soak_payload_kib: usize,
}

impl Args {
    /// Refuses values the runs cannot use (zero connections, nodes or
    /// events, a rate or a time that is not a positive finite number of
    /// seconds).
    fn check(&self) -> Result<(), &'static str> {
        let seconds = |s: f64| s.is_finite() && s > 0.0 && s <= 86_400.0;
        let rate = |r: f64| r.is_finite() && r > 0.0 && r <= 1e6;
        if self.concurrency == 0
            || self.publishers == 0
            || self.delivery_concurrency == 0
            || self.destination_concurrency == Some(0)
        {
            return Err(
                "--concurrency, --publishers, --delivery-concurrency and --destination-concurrency must be at least 1",
            );
        }
        if self.postgres_nodes.contains(&0) {
            return Err("--postgres-nodes must be at least 1");
        }
        if !rate(self.rate) || !rate(self.probe_rate) || !rate(self.soak_rate) {
            return Err("--rate, --probe-rate and --soak-rate must be above 0 and at most 1000000");
        }
        if !seconds(self.publish_seconds)
            || !seconds(self.drain_seconds)
            || !seconds(self.soak_seconds)
        {
            return Err(
                "--publish-seconds, --drain-seconds and --soak-seconds must be above 0 and at most 86400",
            );
        }
        if !(1..=255).contains(&self.soak_payload_kib) {
            return Err("--soak-payload-kib must be 1 to 255");
        }
        if self.backlog_events == 0 || self.depths.contains(&0) || self.floor_runs == 0 {
            return Err("--backlog-events, --depths and --floor-runs must be at least 1");
        }
        Ok(())
    }

    fn wants(&self, kind: RunKind) -> bool {
        self.run.contains(&kind) || self.run.contains(&RunKind::All)
    }
}

fn label(store: Store, nodes: usize) -> String {
    if store == Store::Postgres {
        format!(
            "{} ({nodes} node{})",
            store.name(),
            if nodes == 1 { "" } else { "s" }
        )
    } else {
        store.name().to_owned()
    }
}

fn node_counts(store: Store, args: &Args) -> Vec<usize> {
    if store == Store::Postgres {
        args.postgres_nodes.clone()
    } else {
        vec![1]
    }
}

/// The delivery settings of every delivery run and of the floor: the
/// receiver's address allowed and its certificate trusted, short retries,
/// `--delivery-concurrency`, and a timeout the held attempts never reach.
fn delivery_settings(config: &mut Config, cert_path: &Path, args: &Args) {
    config.allow_private_destinations = vec!["127.0.0.1/32".parse().unwrap()];
    config.delivery_root_certs = vec![cert_path.to_owned()];
    config.retry_schedule = "1s,1s,2s,5s,10s".parse().unwrap();
    config.delivery_concurrency = args.delivery_concurrency;
    if let Some(n) = args.delivery_lookahead {
        config.delivery_lookahead = n;
    }
    if let Some(n) = args.destination_concurrency {
        config.destination_concurrency = n;
    }
    config.delivery_timeout = HOLD_TIMEOUT;
}

/// The header of the floor's table.
const FLOOR_HEADER: &str = "| floor | POSTs | in flight | seconds | deliveries/s | CPU µs/POST | failed |\n|---|---|---|---|---|---|---|";

/// `rate` as a multiple of the floor, or a dash without one.
fn ratio(rate: Option<f64>, floor: Option<f64>) -> String {
    match (rate, floor) {
        (Some(rate), Some(floor)) if floor > 0.0 => format!("{:.2}", rate / floor),
        _ => "—".into(),
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The floor of a run: the fastest of its runs, and the least CPU time of
/// this process per POST.
#[derive(Clone, Copy)]
struct FloorBest {
    rate: f64,
    cpu_per_post: Option<Duration>,
}

/// Measures the floor `--floor-runs` times, prints a row for each, and
/// returns the best of them: the machine's speed changes from one run to
/// the next (the same POSTs cost twice the CPU time in some runs), and a
/// floor measured in a slow run would flatter every ratio to it.
async fn floor_rows(env: &Env, args: &Args, when: &str) -> FloorBest {
    let mut best = FloorBest {
        rate: 0.0,
        cpu_per_post: None,
    };
    for run in 1..=args.floor_runs {
        let f = floor::measure(&env.dir, args, args.backlog_events).await;
        println!(
            "| {when}, {run} of {} | {} | {} | {:.2} | {:.0} | {} | {} |",
            args.floor_runs,
            f.requests,
            args.delivery_concurrency,
            f.seconds,
            f.rate(),
            cpu::per(f.cpu.map(|c| c.process), f.received),
            f.failed + (f.requests - f.received.min(f.requests)),
        );
        best.rate = best.rate.max(f.rate());
        if let Some(cpu) = f.cpu {
            let per_post = cpu::each(cpu.process, f.received);
            best.cpu_per_post = Some(best.cpu_per_post.map_or(per_post, |b| b.min(per_post)));
        }
    }
    println!(
        "| {when}, best | | | | {:.0} | {} | |",
        best.rate,
        cpu::per(best.cpu_per_post, 1)
    );
    best
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = args.check() {
        eprintln!("{e}");
        std::process::exit(2);
    }
    let mut env = Env::new(&args.postgres_url);
    println!(
        "stores: {:?}; machine: {} CPUs; load average at start: {}",
        args.stores,
        std::thread::available_parallelism().map_or(0, usize::from),
        load_average()
    );
    if args.wants(RunKind::Creates) {
        creates::creates(&mut env, &args).await;
    }
    let delivering = [RunKind::Delivery, RunKind::Backlog, RunKind::Depth]
        .into_iter()
        .any(|kind| args.wants(kind));
    let with_floor = args.wants(RunKind::Floor) || (delivering && !args.no_floor);
    let floor = if with_floor {
        println!(
            "\n## Floor: a bare reqwest client with the delivery client's settings, POSTing {} × {BACKLOG_FANOUT} delivery bodies to the receiver\n",
            args.backlog_events
        );
        println!("{FLOOR_HEADER}");
        Some(floor_rows(&env, &args, "first").await)
    } else {
        None
    };
    let cpu_per_post = floor.and_then(|f| f.cpu_per_post);
    let floor = floor.map(|f| f.rate);
    let mut complete = true;
    if args.wants(RunKind::Delivery) {
        complete &= delivery::delivery(&mut env, &args, floor).await;
    }
    let backlog = if args.wants(RunKind::Backlog) {
        backlog::backlog(&mut env, &args, floor).await
    } else {
        Vec::new()
    };
    let depths = if args.wants(RunKind::Depth) {
        backlog::depths(&mut env, &args, floor).await
    } else {
        Vec::new()
    };
    complete &= backlog
        .iter()
        .chain(&depths)
        .all(|(_, _, d)| d.missing == 0);
    if with_floor && delivering {
        println!("\n{FLOOR_HEADER}");
        floor_rows(&env, &args, "at the end").await;
    }
    if !backlog.is_empty() || !depths.is_empty() {
        targets::print(floor, &backlog, &depths);
        targets::print_cpu(cpu_per_post, &backlog);
    }
    if args.wants(RunKind::Soak) {
        // A benchmark like the targets: its verdict is printed, never an
        // exit status.
        soak::soak(&mut env, &args).await;
    }
    println!("\nload average at end: {}", load_average());
    env.finish();
    if !complete {
        eprintln!("some acknowledged deliveries never arrived");
        std::process::exit(1);
    }
}
