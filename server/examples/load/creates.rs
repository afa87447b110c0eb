//! The creates run: destinations created over keep-alive connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::env::Env;
use crate::http::{Conn, ms, percentile};
use crate::{Args, label, node_counts};

/// One keep-alive connection sending creates until the shared budget or the
/// deadline runs out; returns each request's latency.
async fn create_client(
    addr: SocketAddr,
    bearer: Arc<str>,
    budget: Arc<AtomicUsize>,
    deadline: Instant,
) -> Vec<Duration> {
    let mut conn = Conn::open(addr).await;
    let mut latencies = Vec::new();
    let mut n = 0u64;
    while Instant::now() < deadline
        && budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_ok()
    {
        n += 1;
        let body = format!(r#"{{"name":"load {n}","url":"https://example.com/prets/events/{n}"}}"#);
        let started = Instant::now();
        let (status, answer) = conn.post("/v1/events/destinations", &bearer, &body).await;
        latencies.push(started.elapsed());
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(answer));
    }
    latencies
}

/// Creates `count` destinations over `concurrency` connections, connection
/// `i` on node `i % nodes`.
async fn drive_creates(
    addrs: &[SocketAddr],
    bearer: &Arc<str>,
    count: usize,
    concurrency: usize,
    limit: Duration,
) -> (Vec<Duration>, Duration) {
    let budget = Arc::new(AtomicUsize::new(count));
    let started = Instant::now();
    let deadline = started + limit;
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            tokio::spawn(create_client(
                addrs[i % addrs.len()],
                bearer.clone(),
                budget.clone(),
                deadline,
            ))
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    (latencies, started.elapsed())
}

pub(crate) async fn creates(env: &mut Env, args: &Args) {
    println!(
        "\n## Creates: {} per store (+{} warm-up), {} keep-alive connections, at most {} s per store\n",
        args.requests, args.warmup, args.concurrency, args.seconds
    );
    println!("| store | creates | seconds | creates/s | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    for &store in &args.stores {
        for nodes in node_counts(store, args) {
            let running = env.start(store, nodes, |_| {}).await;
            let addrs = running.addrs();
            let limit = Duration::from_secs(args.seconds);
            drive_creates(&addrs, &env.token, args.warmup, args.concurrency, limit).await;
            let (mut latencies, elapsed) =
                drive_creates(&addrs, &env.token, args.requests, args.concurrency, limit).await;
            running.stop().await;
            latencies.sort_unstable();
            println!(
                "| {} | {} | {:.2} | {:.0} | {} | {} | {} |",
                label(store, nodes),
                latencies.len(),
                elapsed.as_secs_f64(),
                latencies.len() as f64 / elapsed.as_secs_f64(),
                ms(percentile(&latencies, 0.50)),
                ms(percentile(&latencies, 0.99)),
                ms(latencies.last().copied().unwrap_or_default()),
            );
        }
    }
}
