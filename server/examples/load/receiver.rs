//! The HTTPS receiver every delivery run and the floor post to: it keys what
//! it gets by `Webhook-Id` and destination, and can be paused (holding every
//! request it receives) so that a backlog builds up in the store.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// What the receiver saw of each delivery, keyed by `Webhook-Id` and the
/// destination (the number in the URL path `/d/{n}`).
#[derive(Default)]
pub(crate) struct Seen {
    /// Receipts per (event id, destination).
    pub(crate) receipts: HashMap<(String, usize), u32>,
    /// Publish-to-receipt latency of each first receipt.
    pub(crate) latencies: Vec<Duration>,
    /// When each first receipt arrived, from the run's start, in order.
    pub(crate) arrivals: Vec<Duration>,
    /// Requests that were not a delivery of this run (bad path or body).
    pub(crate) strays: usize,
}

impl Seen {
    /// When the last first receipt arrived, from the run's start.
    pub(crate) fn last(&self) -> Duration {
        self.arrivals.last().copied().unwrap_or_default()
    }

    /// Deliveries received more than once, counted once per extra receipt.
    pub(crate) fn duplicates(&self) -> usize {
        self.receipts
            .values()
            .map(|&n| n.saturating_sub(1) as usize)
            .sum()
    }

    /// How many of `expected` (event id, destinations it was queued for)
    /// never arrived at a destination `0..destinations`.
    pub(crate) fn missing<'a>(&self, expected: impl Iterator<Item = (&'a str, usize)>) -> usize {
        let mut missing = 0;
        let mut key = (String::new(), 0);
        for (event_id, destinations) in expected {
            event_id.clone_into(&mut key.0);
            for d in 0..destinations {
                key.1 = d;
                if !self.receipts.contains_key(&key) {
                    missing += 1;
                }
            }
        }
        missing
    }
}

pub(crate) struct Receiver {
    pub(crate) addr: SocketAddr,
    pub(crate) seen: Arc<Mutex<Seen>>,
    /// First receipts so far.
    pub(crate) distinct: Arc<AtomicUsize>,
    /// `true` while paused.
    paused: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Holds every request from now on, unanswered and uncounted, until
    /// [`resume`](Self::resume).
    pub(crate) fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Answers the held requests and every later one.
    pub(crate) fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// Waits until `n` distinct deliveries have arrived or `until` passes;
    /// returns whether they arrived.
    pub(crate) async fn wait_for(&self, n: usize, until: Instant) -> bool {
        loop {
            if self.distinct.load(Ordering::Relaxed) >= n {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// What it saw so far, leaving an empty record.
    pub(crate) fn take(&self) -> Seen {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// HTTPS on 127.0.0.1 with a fresh self-signed certificate (written to
/// `cert_path` as PEM), HTTP/1.1 and HTTP/2 by ALPN; answers `204`.
pub(crate) async fn start_receiver(cert_path: &Path, epoch: Instant) -> Receiver {
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
    let (paused, gate) = watch::channel(false);
    let shared = Shared {
        seen: seen.clone(),
        distinct: distinct.clone(),
        gate,
        epoch,
    };
    let task = tokio::spawn(accept_loop(listener, acceptor, shared));
    Receiver {
        addr,
        seen,
        distinct,
        paused,
        task,
    }
}

/// What every connection of the receiver shares.
#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Seen>>,
    distinct: Arc<AtomicUsize>,
    /// `true` while paused.
    gate: watch::Receiver<bool>,
    epoch: Instant,
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, shared: Shared) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let io = TokioIo::new(tls);
            let service = hyper::service::service_fn(move |req| receive(shared.clone(), req));
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
    mut shared: Shared,
    req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    // Paused: hold the request here, before it counts as arrived.
    let _ = shared.gate.wait_for(|paused| !*paused).await;
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
        let mut seen = shared.seen.lock().unwrap();
        // Taken under the lock, so that `arrivals` is in order.
        let arrived = shared.epoch.elapsed();
        match (destination, event_id, sent) {
            (Some(destination), Some(event_id), Some(sent)) => {
                let count = seen.receipts.entry((event_id, destination)).or_insert(0);
                *count += 1;
                if *count == 1 {
                    seen.latencies.push(arrived.saturating_sub(sent));
                    seen.arrivals.push(arrived);
                    shared.distinct.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => seen.strays += 1,
        }
    }
    let mut response = Response::new(Empty::new());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}
