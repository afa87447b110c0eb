//! Load generator: creates destinations over loopback HTTP against the
//! server started in-process, once on a SQLite database in a temporary
//! directory and once on the in-memory repo, and reports creates per second
//! and latency percentiles. Bounded in request count and in time.
//!
//! ```text
//! cargo run --release -p prets-destinations-server --example load -- --requests 20000 --concurrency 32
//! ```

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use prets_destinations_server::{Config, spawn};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(about = "Create-destination load over loopback, SQLite vs memory")]
struct Args {
    /// Creates per store (after the warm-up).
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Stop a store's run after this many seconds even if requests remain.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Creates per store before measuring (not counted).
    #[arg(long, default_value_t = 500)]
    warmup: usize,
}

struct Report {
    store: &'static str,
    done: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Report {
    fn percentile(&self, p: f64) -> Duration {
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }
}

/// One keep-alive connection sending creates until the shared budget or the
/// deadline runs out; returns each request's latency.
async fn client(
    addr: SocketAddr,
    bearer: Arc<str>,
    budget: Arc<AtomicUsize>,
    deadline: Instant,
) -> Vec<Duration> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut latencies = Vec::new();
    let mut buf = Vec::with_capacity(4096);
    let mut n = 0u64;
    while Instant::now() < deadline
        && budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_ok()
    {
        n += 1;
        let body = format!(r#"{{"name":"load {n}","url":"https://example.com/prets/events/{n}"}}"#);
        let request = format!(
            "POST /v1/events/destinations HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {bearer}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let started = Instant::now();
        stream.write_all(request.as_bytes()).await.unwrap();
        let status = read_response(&mut stream, &mut buf).await;
        latencies.push(started.elapsed());
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&buf));
    }
    latencies
}

/// Reads one response (with `Content-Length`) and returns its status.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> u16 {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap();
            let status = head[9..12].parse().unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .unwrap();
            while buf.len() < end + 4 + length {
                let read = stream.read(&mut chunk).await.unwrap();
                assert!(read > 0, "connection closed mid-response");
                buf.extend_from_slice(&chunk[..read]);
            }
            return status;
        }
        let read = stream.read(&mut chunk).await.unwrap();
        assert!(read > 0, "connection closed");
        buf.extend_from_slice(&chunk[..read]);
    }
}

async fn drive(
    addr: SocketAddr,
    bearer: &Arc<str>,
    count: usize,
    concurrency: usize,
    limit: Duration,
) -> (Vec<Duration>, Duration) {
    let budget = Arc::new(AtomicUsize::new(count));
    let started = Instant::now();
    let deadline = started + limit;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(client(addr, bearer.clone(), budget.clone(), deadline)))
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    (latencies, started.elapsed())
}

async fn run(store: &'static str, args: &Args, dir: &Path) -> Report {
    let mut config = Config::new(
        dir.join(format!("load-{store}.sqlite3")),
        "127.0.0.1:0".parse().unwrap(),
    );
    config.memory = store == "memory";
    let mut running = spawn(&config).await.unwrap();
    let token = running.demo_token.take().unwrap();
    let bearer: Arc<str> = format!("Bearer {}", *token).into();
    drive(
        running.addr,
        &bearer,
        args.warmup,
        args.concurrency,
        Duration::from_secs(args.seconds),
    )
    .await;
    let (mut latencies, elapsed) = drive(
        running.addr,
        &bearer,
        args.requests,
        args.concurrency,
        Duration::from_secs(args.seconds),
    )
    .await;
    running.stop().await.unwrap();
    latencies.sort_unstable();
    Report {
        store,
        done: latencies.len(),
        elapsed,
        latencies,
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("prets-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "{} creates per store (+{} warm-up), {} keep-alive connections, at most {} s per store",
        args.requests, args.warmup, args.concurrency, args.seconds
    );
    println!("| store | creates | seconds | creates/s | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    for store in ["sqlite", "memory"] {
        let r = run(store, &args, &dir).await;
        println!(
            "| {} | {} | {:.2} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms |",
            r.store,
            r.done,
            r.elapsed.as_secs_f64(),
            r.done as f64 / r.elapsed.as_secs_f64(),
            r.percentile(0.50).as_secs_f64() * 1e3,
            r.percentile(0.99).as_secs_f64() * 1e3,
            r.latencies.last().unwrap().as_secs_f64() * 1e3,
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
