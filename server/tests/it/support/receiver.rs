//! A webhook receiver for tests: HTTPS on 127.0.0.1 with a certificate made
//! for the test, HTTP/1.1 and (when offered by ALPN) HTTP/2. It counts the
//! connections it accepts and those that have ended, records every request
//! (method, target, version, headers, body) and answers with scripted
//! replies; tests wait for what it received with [`Receiver::wait_for`]. It
//! never closes a connection on its own (no timeouts): a connection ends
//! when the client closes it or a request fails.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The names the receiver's certificate is valid for, besides `127.0.0.1`.
pub const HOST: &str = "hooks.example.com";

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// When its headers were read.
    pub at: std::time::Instant,
}

impl Recorded {
    /// A header's value as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// What the receiver answers to one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Waited before answering.
    pub delay: Duration,
    /// An endless body (counted in [`Receiver::body_bytes_sent`]).
    pub endless: bool,
    pub body: Vec<u8>,
    /// Answer only once this many requests have arrived in all.
    pub after_requests: Option<usize>,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
            endless: false,
            body: Vec::new(),
            after_requests: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn endless(mut self) -> Self {
        self.endless = true;
        self
    }

    /// Holds the answer until `count` requests have arrived in all (this
    /// one included), so that that many requests are open at once.
    pub fn after_requests(mut self, count: usize) -> Self {
        self.after_requests = Some(count);
        self
    }
}

/// How the receiver is set up.
#[derive(Clone, Debug)]
pub struct Options {
    /// Offer `h2` by ALPN (besides `http/1.1`).
    pub h2: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self { h2: true }
    }
}

#[derive(Default)]
struct State {
    connections: AtomicUsize,
    closed: AtomicUsize,
    requests: Mutex<Vec<Recorded>>,
    /// How many requests have arrived, for [`Reply::after_requests`].
    arrived: tokio::sync::watch::Sender<usize>,
    script: Mutex<VecDeque<Reply>>,
    body_bytes_sent: Arc<AtomicU64>,
}

/// Counts a connection as ended when its task ends, however it ends.
struct Ended(Arc<State>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.closed.fetch_add(1, Ordering::SeqCst);
    }
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    /// The self-signed certificate to trust, PEM.
    pub cert_pem: String,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// A receiver that answers `204` unless replies are scripted.
    pub async fn start(options: Options) -> Self {
        Self::start_on(options, std::net::TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// [`start`](Self::start) on a socket the test already holds (bound and
    /// listening, so a port can be kept while "the receiver is down": its
    /// connections then wait, unanswered, in the backlog).
    pub fn start_on(options: Options, listener: std::net::TcpListener) -> Self {
        let certified =
            rcgen::generate_simple_self_signed(vec![HOST.to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        let cert_pem = certified.cert.pem();
        let chain = vec![CertificateDer::from(certified.cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let mut tls = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        tls.alpn_protocols = if options.h2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        listener.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(listener).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let task = tokio::spawn(accept_loop(listener, acceptor, Arc::clone(&state)));
        Self {
            addr,
            cert_pem,
            state,
            task,
        }
    }

    /// Queues a reply; replies are used in order, then `204`.
    pub fn reply(&self, reply: Reply) {
        self.state.script.lock().unwrap().push_back(reply);
    }

    /// Drops the replies queued and not yet used: later requests get `204`.
    pub fn clear_replies(&self) {
        self.state.script.lock().unwrap().clear();
    }

    /// Connections accepted so far (TCP, before TLS).
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Connections accepted and ended since (closed by the client, or
    /// failed); the receiver closes none on its own.
    pub fn closed(&self) -> usize {
        self.state.closed.load(Ordering::SeqCst)
    }

    /// Requests received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests have arrived (failing the test
    /// after `bound`) and returns every request received, in order.
    pub async fn wait_for(&self, n: usize, bound: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + bound;
        loop {
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} requests arrived within {bound:?}",
                requests.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Bytes of endless bodies handed to the connection so far.
    pub fn body_bytes_sent(&self) -> u64 {
        self.state.body_bytes_sent.load(Ordering::SeqCst)
    }

    /// `https://127.0.0.1:{port}{path}`.
    pub fn ip_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    /// `https://hooks.example.com:{port}{path}`: resolve [`HOST`] to
    /// 127.0.0.1 to reach it.
    pub fn name_url(&self, path: &str) -> String {
        format!("https://{HOST}:{}{path}", self.addr.port())
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, state: Arc<State>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        state.connections.fetch_add(1, Ordering::SeqCst);
        let acceptor = acceptor.clone();
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let _ended = Ended(Arc::clone(&state));
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let io = TokioIo::new(tls);
            let service = hyper::service::service_fn(move |req| handle(Arc::clone(&state), req));
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

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let at = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let arrived = {
        let mut requests = state.requests.lock().unwrap();
        requests.push(Recorded {
            method: parts.method.to_string(),
            target: parts
                .uri
                .path_and_query()
                .map(ToString::to_string)
                .unwrap_or_default(),
            version: parts.version,
            headers: parts.headers,
            body,
            at,
        });
        requests.len()
    };
    state.arrived.send_replace(arrived);
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| Reply::status(204));
    if let Some(count) = reply.after_requests {
        let mut arrived = state.arrived.subscribe();
        let _ = arrived.wait_for(|&n| n >= count).await;
    }
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let body = if reply.endless {
        Endless(Arc::clone(&state.body_bytes_sent)).boxed()
    } else {
        Full::new(Bytes::from(reply.body)).boxed()
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
    for (name, value) in reply.headers {
        response.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    Ok(response)
}

/// A body that never ends: 64 KiB chunks, counted as they are handed over.
struct Endless(Arc<AtomicU64>);

const CHUNK: usize = 64 * 1024;

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.fetch_add(CHUNK as u64, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&[b'x'; CHUNK])))))
    }
}
