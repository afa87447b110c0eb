//! Load generator: the server started in-process on each store, driven over
//! loopback HTTP. Bounded in request count and in time.
//!
//! - **creates**: creates destinations over keep-alive connections and
//!   reports creates per second and latency percentiles.
//! - **delivery**: starts an HTTPS receiver on 127.0.0.1 (a self-signed
//!   certificate trusted through `delivery_root_certs`), creates 1 and 10
//!   destinations pointing at it, publishes events at a fixed rate, waits for
//!   every delivery, and reports publishes per second, deliveries per second
//!   and the latency from publish to receipt. Every acknowledged event must
//!   reach every destination: a delivery still missing after the drain makes
//!   the run exit with status 1. Duplicates (allowed by at-least-once
//!   delivery) are counted apart.
//!
//! Stores: `sqlite` (a temporary file), `memory`, and `postgres` (a database
//! created for the run on `--postgres-url` and dropped after it, served by
//! one and by two nodes: in-process servers on the same database, the client
//! splitting its connections between them).
//!
//! ```text
//! cargo run --release -p prets-destinations-server --example load -- --stores sqlite,memory,postgres
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

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prets_destinations::rand_core::Rng as _;
use prets_destinations_server::{Config, Running, TokenEntry, mint_token, spawn, token_digest};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RunKind {
    /// Creates only.
    Creates,
    /// The delivery run only.
    Delivery,
    /// Both.
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
    /// Which runs.
    #[arg(long, value_enum, default_value_t = RunKind::All)]
    run: RunKind,
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

    /// Destinations per delivery run (one run per value).
    #[arg(long, value_delimiter = ',', default_value = "1,10")]
    fanout: Vec<usize>,
    /// Events published per second (paced; fewer if the server cannot keep up).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// How long to publish.
    #[arg(long, default_value_t = 5.0)]
    publish_seconds: f64,
    /// How long to wait, after the last publish, for every delivery.
    #[arg(long, default_value_t = 60.0)]
    drain_seconds: f64,
    /// Keep-alive connections publishing.
    #[arg(long, default_value_t = 16)]
    publishers: usize,
}

impl Args {
    /// Refuses values the runs cannot use (zero connections or nodes, a rate
    /// or a time that is not a positive finite number of seconds).
    fn check(&self) -> Result<(), &'static str> {
        let seconds = |s: f64| s.is_finite() && s > 0.0 && s <= 86_400.0;
        if self.concurrency == 0 || self.publishers == 0 {
            return Err("--concurrency and --publishers must be at least 1");
        }
        if self.postgres_nodes.contains(&0) {
            return Err("--postgres-nodes must be at least 1");
        }
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1e6) {
            return Err("--rate must be above 0 and at most 1000000");
        }
        if !seconds(self.publish_seconds) || !seconds(self.drain_seconds) {
            return Err("--publish-seconds and --drain-seconds must be above 0 and at most 86400");
        }
        Ok(())
    }
}

/// Where the run's files and databases are, and the token every node accepts.
struct Env {
    dir: PathBuf,
    key_file: PathBuf,
    token: Arc<str>,
    entry: TokenEntry,
    /// `--postgres-url`.
    postgres_url: String,
    /// Servers started so far: numbers the SQLite files and PostgreSQL
    /// databases.
    runs: usize,
}

impl Env {
    fn new(postgres_url: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "prets-load-{}-{:x}",
            std::process::id(),
            prets_destinations::os_rng().next_u32()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let key_file = dir.join("sealing-key");
        write_key_file(&key_file);
        let token = mint_token();
        let entry = TokenEntry {
            organization: "load".parse().unwrap(),
            digest: token_digest(&token),
        };
        Self {
            dir,
            key_file,
            token: format!("Bearer {}", *token).into(),
            entry,
            postgres_url: postgres_url.to_owned(),
            runs: 0,
        }
    }

    /// Starts `nodes` servers on a fresh database of `store` (a new SQLite
    /// file, a new memory repo, or a new PostgreSQL database), each with
    /// `adjust` applied to its configuration.
    async fn start(&mut self, store: Store, nodes: usize, adjust: impl Fn(&mut Config)) -> Nodes {
        self.runs += 1;
        let sqlite = self.dir.join(format!("load-{}.sqlite3", self.runs));
        let mut config = Config::new(sqlite, "127.0.0.1:0".parse().unwrap());
        config.api_tokens = vec![self.entry.clone()];
        config.sealing_key_file = Some(self.key_file.clone());
        config.memory = store == Store::Memory;
        let database = if store == Store::Postgres {
            let database = postgres::Database::create(&self.postgres_url, self.runs).await;
            postgres::configure(&mut config, &database);
            Some(database)
        } else {
            None
        };
        adjust(&mut config);
        let mut running = Vec::with_capacity(nodes);
        for _ in 0..nodes {
            running.push(spawn(&config).await.unwrap());
        }
        Nodes { running, database }
    }

    fn finish(self) {
        std::fs::remove_dir_all(&self.dir).unwrap();
    }
}

/// The servers of one measurement, and the PostgreSQL database made for it.
struct Nodes {
    running: Vec<Running>,
    database: Option<postgres::Database>,
}

impl Nodes {
    fn addrs(&self) -> Vec<SocketAddr> {
        self.running.iter().map(|r| r.addr).collect()
    }

    /// Stops every node, then drops the database.
    async fn stop(self) {
        for node in self.running {
            node.stop().await.unwrap();
        }
        if let Some(database) = self.database {
            database.drop_database().await;
        }
    }
}

/// A fresh sealing-key file (mode 0600), shared by every node of a run.
fn write_key_file(path: &Path) {
    let mut key = [0u8; 32];
    prets_destinations::os_rng().fill_bytes(&mut key);
    let mut text = String::from("1 ");
    for b in key {
        write!(text, "{b:02x}").unwrap();
    }
    text.push('\n');
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path).unwrap(), text.as_bytes()).unwrap();
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

// ---------------------------------------------------------------- HTTP client

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    addr: SocketAddr,
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            addr,
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends a JSON POST and returns the status and the body.
    async fn post(&mut self, path: &str, bearer: &str, body: &str) -> (u16, &[u8]) {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {bearer}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.stream.write_all(request.as_bytes()).await.unwrap();
        self.read_response().await
    }

    /// Reads one response (with `Content-Length`).
    async fn read_response(&mut self) -> (u16, &[u8]) {
        let buf = &mut self.buf;
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
                    let read = self.stream.read(&mut chunk).await.unwrap();
                    assert!(read > 0, "connection closed mid-response");
                    buf.extend_from_slice(&chunk[..read]);
                }
                return (status, &buf[end + 4..end + 4 + length]);
            }
            let read = self.stream.read(&mut chunk).await.unwrap();
            assert!(read > 0, "connection closed");
            buf.extend_from_slice(&chunk[..read]);
        }
    }
}

// -------------------------------------------------------------------- creates

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

async fn creates(env: &mut Env, args: &Args) {
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

// ------------------------------------------------------------------- receiver

/// What the receiver saw of each delivery, keyed by `Webhook-Id` and the
/// destination (the number in the URL path `/d/{n}`).
#[derive(Default)]
struct Seen {
    /// Receipts per (event id, destination).
    receipts: HashMap<(String, usize), u32>,
    /// Publish-to-receipt latency of each first receipt.
    latencies: Vec<Duration>,
    /// When the last first receipt arrived, from the run's start.
    last: Duration,
    /// Requests that were not a delivery of this run (bad path or body).
    strays: usize,
}

struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    /// First receipts so far.
    distinct: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// HTTPS on 127.0.0.1 with a fresh self-signed certificate (written to
/// `cert_path` as PEM), HTTP/1.1 and HTTP/2 by ALPN; answers `204`.
async fn start_receiver(cert_path: &Path, epoch: Instant) -> Receiver {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(cert_path, certified.cert.pem()).unwrap();
    let chain = vec![CertificateDer::from(certified.cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let mut tls = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let distinct = Arc::new(AtomicUsize::new(0));
    let task = tokio::spawn(accept_loop(
        listener,
        acceptor,
        seen.clone(),
        distinct.clone(),
        epoch,
    ));
    Receiver {
        addr,
        seen,
        distinct,
        task,
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    seen: Arc<Mutex<Seen>>,
    distinct: Arc<AtomicUsize>,
    epoch: Instant,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let seen = seen.clone();
        let distinct = distinct.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let io = TokioIo::new(tls);
            let service = hyper::service::service_fn(move |req| {
                receive(seen.clone(), distinct.clone(), epoch, req)
            });
            if h2 {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service)
                    .await;
            } else {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            }
        });
    }
}

async fn receive(
    seen: Arc<Mutex<Seen>>,
    distinct: Arc<AtomicUsize>,
    epoch: Instant,
    req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let arrived = epoch.elapsed();
    let destination = parts
        .uri
        .path()
        .strip_prefix("/d/")
        .and_then(|n| n.parse::<usize>().ok());
    let event_id = parts
        .headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // The payload carries the publish instant, in microseconds from `epoch`.
    let sent = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("payload")?.get("sentUs")?.as_u64())
        .map(Duration::from_micros);
    {
        let mut seen = seen.lock().unwrap();
        match (destination, event_id, sent) {
            (Some(destination), Some(event_id), Some(sent)) => {
                let count = seen.receipts.entry((event_id, destination)).or_insert(0);
                *count += 1;
                if *count == 1 {
                    seen.latencies.push(arrived.saturating_sub(sent));
                    seen.last = arrived;
                    distinct.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => seen.strays += 1,
        }
    }
    let mut response = Response::new(Empty::new());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

// ------------------------------------------------------------------- delivery

/// An event the server acknowledged: its id and how many deliveries it
/// queued.
struct Acked {
    event_id: String,
    destinations: usize,
}

struct Published {
    acked: Vec<Acked>,
    /// Latency of each acknowledged publish (request to 202).
    latencies: Vec<Duration>,
    /// Publishes answered other than 202.
    refused: usize,
}

/// One keep-alive connection publishing the events whose turn it takes: event
/// `i` is due at `start + i / rate`, and none is sent at or after `end`.
async fn publisher(
    addr: SocketAddr,
    bearer: Arc<str>,
    next: Arc<AtomicU64>,
    start: tokio::time::Instant,
    end: tokio::time::Instant,
    rate: f64,
    epoch: Instant,
) -> Published {
    let mut conn = Conn::open(addr).await;
    let mut out = Published {
        acked: Vec::new(),
        latencies: Vec::new(),
        refused: 0,
    };
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        if due >= end {
            return out;
        }
        tokio::time::sleep_until(due).await;
        let started = Instant::now();
        let sent_us = started.duration_since(epoch).as_micros();
        let body = format!(r#"{{"type":"load.tick","payload":{{"i":{i},"sentUs":{sent_us}}}}}"#);
        let (status, answer) = conn.post("/v1/events", &bearer, &body).await;
        if status != 202 {
            out.refused += 1;
            if out.refused <= 3 {
                eprintln!("publish {i}: {status} {}", String::from_utf8_lossy(answer));
            }
            continue;
        }
        out.latencies.push(started.elapsed());
        let answer: serde_json::Value = serde_json::from_slice(answer).unwrap();
        out.acked.push(Acked {
            event_id: answer["eventId"].as_str().unwrap().to_owned(),
            destinations: answer["destinations"].as_u64().unwrap() as usize,
        });
    }
}

struct DeliveryRow {
    label: String,
    fanout: usize,
    events: usize,
    refused: usize,
    publish_rate: f64,
    publish_p99: Duration,
    deliveries: usize,
    delivery_rate: f64,
    e2e_p50: Duration,
    e2e_p99: Duration,
    e2e_max: Duration,
    duplicates: usize,
    missing: usize,
    wrong_count: usize,
    strays: usize,
}

async fn delivery_case(
    env: &mut Env,
    args: &Args,
    store: Store,
    nodes: usize,
    fanout: usize,
) -> DeliveryRow {
    let epoch = Instant::now();
    let cert_path = env.dir.join("receiver.pem");
    let receiver = start_receiver(&cert_path, epoch).await;
    let running = env
        .start(store, nodes, |config| {
            config.allow_private_destinations = vec!["127.0.0.1/32".parse().unwrap()];
            config.delivery_root_certs = vec![cert_path.clone()];
            config.retry_schedule = "1s,1s,2s,5s,10s".parse().unwrap();
        })
        .await;
    let addrs = running.addrs();

    let mut conn = Conn::open(addrs[0]).await;
    for d in 0..fanout {
        let body = format!(
            r#"{{"name":"receiver {d}","url":"https://127.0.0.1:{}/d/{d}"}}"#,
            receiver.addr.port()
        );
        let (status, answer) = conn
            .post("/v1/events/destinations", &env.token, &body)
            .await;
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(answer));
    }
    drop(conn);

    // Publish, paced, over `publishers` connections split between the nodes.
    let next = Arc::new(AtomicU64::new(0));
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let end = start + Duration::from_secs_f64(args.publish_seconds);
    let tasks: Vec<_> = (0..args.publishers)
        .map(|i| {
            tokio::spawn(publisher(
                addrs[i % addrs.len()],
                env.token.clone(),
                next.clone(),
                start,
                end,
                args.rate,
                epoch,
            ))
        })
        .collect();
    let mut acked = Vec::new();
    let mut publish_latencies = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let p = task.await.unwrap();
        acked.extend(p.acked);
        publish_latencies.extend(p.latencies);
        refused += p.refused;
    }
    let published_in = start.elapsed();
    publish_latencies.sort_unstable();

    // Drain: wait until every queued delivery has arrived, or the time is up.
    let expected: usize = acked.iter().map(|a| a.destinations).sum();
    let drain_until = Instant::now() + Duration::from_secs_f64(args.drain_seconds);
    while receiver.distinct.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let late duplicates, if any, arrive before counting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.stop().await;

    let seen = std::mem::take(&mut *receiver.seen.lock().unwrap());
    let mut missing = 0;
    let wrong_count = acked.iter().filter(|a| a.destinations != fanout).count();
    for a in &acked {
        for d in 0..fanout {
            if !seen.receipts.contains_key(&(a.event_id.clone(), d)) {
                missing += 1;
            }
        }
    }
    let duplicates = seen
        .receipts
        .values()
        .map(|&n| n.saturating_sub(1) as usize)
        .sum();
    let mut e2e = seen.latencies;
    e2e.sort_unstable();
    let first_publish = start.duration_since(tokio::time::Instant::from_std(epoch));
    let delivering = seen.last.saturating_sub(first_publish);
    DeliveryRow {
        label: label(store, nodes),
        fanout,
        events: acked.len(),
        refused,
        publish_rate: acked.len() as f64 / published_in.as_secs_f64(),
        publish_p99: percentile(&publish_latencies, 0.99),
        deliveries: seen.receipts.len(),
        delivery_rate: seen.receipts.len() as f64 / delivering.as_secs_f64().max(1e-9),
        e2e_p50: percentile(&e2e, 0.50),
        e2e_p99: percentile(&e2e, 0.99),
        e2e_max: e2e.last().copied().unwrap_or_default(),
        duplicates,
        missing,
        wrong_count,
        strays: seen.strays,
    }
}

/// Returns whether every acknowledged delivery arrived.
async fn delivery(env: &mut Env, args: &Args) -> bool {
    println!(
        "\n## Delivery: {} events/s for {} s over {} connections, HTTPS receiver on 127.0.0.1, drain at most {} s\n",
        args.rate, args.publish_seconds, args.publishers, args.drain_seconds
    );
    println!(
        "| store | fan-out | events | publishes/s | publish p99 | deliveries | deliveries/s | e2e p50 | e2e p99 | e2e max | duplicates | missing |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut complete = true;
    for &store in &args.stores {
        for nodes in node_counts(store, args) {
            for &fanout in &args.fanout {
                let r = delivery_case(env, args, store, nodes, fanout).await;
                println!(
                    "| {} | {} | {} | {:.0} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
                    r.label,
                    r.fanout,
                    r.events,
                    r.publish_rate,
                    ms(r.publish_p99),
                    r.deliveries,
                    r.delivery_rate,
                    ms(r.e2e_p50),
                    ms(r.e2e_p99),
                    ms(r.e2e_max),
                    r.duplicates,
                    r.missing,
                );
                if r.refused > 0 || r.wrong_count > 0 || r.strays > 0 {
                    println!(
                        "  ({} publishes refused, {} events with a destination count other than {}, {} stray requests)",
                        r.refused, r.wrong_count, r.fanout, r.strays
                    );
                }
                if r.missing > 0 || r.wrong_count > 0 {
                    complete = false;
                }
            }
        }
    }
    complete
}

// ----------------------------------------------------------------- PostgreSQL

mod postgres {
    use prets_destinations_server::Config;
    use tokio_postgres::NoTls;

    /// A database created on `--postgres-url` for one measurement, named
    /// after the process and the measurement.
    pub(crate) struct Database {
        admin_url: String,
        name: String,
        /// The URL of the created database.
        pub(crate) url: String,
    }

    async fn execute(url: &str, statement: &str) {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .expect("cannot connect to PostgreSQL at --postgres-url");
        let connection = tokio::spawn(connection);
        client.batch_execute(statement).await.unwrap();
        drop(client);
        let _ = connection.await;
    }

    impl Database {
        pub(crate) async fn create(admin_url: &str, n: usize) -> Self {
            let name = format!("prets_load_{}_{n}", std::process::id());
            execute(admin_url, &format!("CREATE DATABASE {name}")).await;
            let mut url = url::Url::parse(admin_url).unwrap();
            url.set_path(&format!("/{name}"));
            Self {
                admin_url: admin_url.to_owned(),
                name,
                url: url.into(),
            }
        }

        pub(crate) async fn drop_database(self) {
            execute(
                &self.admin_url,
                &format!("DROP DATABASE {} WITH (FORCE)", self.name),
            )
            .await;
        }
    }

    /// Points `config` at `database`.
    pub(crate) fn configure(config: &mut Config, database: &Database) {
        config.database =
            prets_destinations_server::Database::parse(database.url.as_ref()).unwrap();
    }
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
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    if matches!(args.run, RunKind::Creates | RunKind::All) {
        creates(&mut env, &args).await;
    }
    let complete = if matches!(args.run, RunKind::Delivery | RunKind::All) {
        delivery(&mut env, &args).await
    } else {
        true
    };
    println!(
        "\nload average at end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    env.finish();
    if !complete {
        eprintln!("some acknowledged deliveries never arrived");
        std::process::exit(1);
    }
}
