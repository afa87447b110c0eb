//! One delivery attempt over HTTPS: rustls, no redirects, no proxy, pinned
//! addresses, bounded time and a bounded read of the answer.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use prets_destinations::HostPolicy;
use prets_destinations::delivery::{
    Answer, DeliveryRequest, Lookup, TransportError, lookup, pin_addresses,
};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use tokio::time::timeout_at;

use crate::delivery::config::DeliveryConfig;
use crate::delivery::deadline::after;
use crate::delivery::resolve::{CheckedResolver, DnsFailed, Refused, Resolve};

/// Most bytes of a response body read before the answer is complete: the
/// body is read (so that a small answer leaves the connection reusable) and
/// dropped; past this many bytes the connection is dropped instead.
pub const RESPONSE_READ_CAP: usize = 4096;

/// Longest `Retry-After` value kept; a longer one is ignored (the core reads
/// at most 64 bytes of it).
const RETRY_AFTER_KEEP: usize = 128;

/// Longest error detail kept.
const DETAIL_MAX: usize = 160;

/// Longest idle timeout handed to the pool, whose reaper adds it to the
/// current instant (an unbounded `Duration::MAX` would overflow there).
const POOL_IDLE_TIMEOUT_MAX: Duration = Duration::from_secs(365 * 86_400);

/// What one attempt came to, for the core's [`classify`]: the status (and
/// `Retry-After`) of an answer, or why there was none.
///
/// [`classify`]: prets_destinations::delivery::classify
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The destination answered.
    Response {
        /// The HTTP status.
        status: u16,
        /// The raw `Retry-After` value, if the answer had one.
        retry_after: Option<Vec<u8>>,
    },
    /// No answer: refused by the policy, or a DNS, connect, TLS, timeout or
    /// protocol failure.
    Failed {
        /// The kind of failure.
        error: TransportError,
        /// A short text for the attempt record: never the secret, never a
        /// response body.
        detail: String,
    },
}

impl Outcome {
    /// The answer as the core's classifier reads it.
    #[must_use]
    pub fn answer(&self) -> Answer<'_> {
        match self {
            Self::Response {
                status,
                retry_after,
            } => Answer::Response {
                status: *status,
                retry_after: retry_after.as_deref(),
            },
            Self::Failed { error, .. } => Answer::Failed(*error),
        }
    }

    fn failed(error: TransportError, detail: impl Into<String>) -> Self {
        let mut detail: String = detail.into();
        if detail.len() > DETAIL_MAX {
            let mut end = DETAIL_MAX;
            while !detail.is_char_boundary(end) {
                end -= 1;
            }
            detail.truncate(end);
        }
        Self::Failed { error, detail }
    }
}

/// The HTTP client could not be built (a root certificate rustls refuses).
#[derive(Debug)]
pub struct ClientError(reqwest::Error);

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot build the delivery client: {}", self.0)
    }
}

impl StdError for ClientError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.0)
    }
}

/// The HTTPS client of deliveries: one per process, cheap to share.
///
/// - rustls with the web PKI roots plus the configured extra roots; HTTP/1.1
///   or HTTP/2 as the receiver's ALPN offers;
/// - redirects are never followed (a 3xx is an answer), no proxy is read
///   from the environment;
/// - every name is resolved by the injected [`Resolve`] and every answer is
///   checked with the [`HostPolicy`]; a literal IP is checked before the
///   request; only checked addresses are connected to;
/// - the connect timeout bounds DNS, TCP and TLS, the total timeout the whole
///   attempt; at most [`RESPONSE_READ_CAP`] bytes of the body are read;
/// - a connection left unused is kept for the next attempt to the same
///   scheme, host and port at most `pool_idle_timeout`, and at most
///   `pool_max_idle_per_host` of them per host and port; the others close
///   when their attempt ends.
#[derive(Clone)]
pub struct DeliveryClient {
    http: reqwest::Client,
    policy: Arc<HostPolicy>,
    timeout: Duration,
}

impl fmt::Debug for DeliveryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryClient")
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl DeliveryClient {
    /// A client for `config`, resolving names with `resolver`.
    ///
    /// # Errors
    /// [`ClientError`] if the TLS configuration cannot be built.
    pub fn new(config: &DeliveryConfig, resolver: Arc<dyn Resolve>) -> Result<Self, ClientError> {
        let policy = Arc::new(config.policy.clone());
        let checked = CheckedResolver {
            inner: resolver,
            policy: Arc::clone(&policy),
        };
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(true)
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .referer(false)
            .dns_resolver(Arc::new(checked))
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .pool_idle_timeout(config.pool_idle_timeout.min(POOL_IDLE_TIMEOUT_MAX))
            .pool_max_idle_per_host(
                usize::try_from(config.pool_max_idle_per_host).unwrap_or(usize::MAX),
            );
        for cert in &config.root_certificates {
            builder = builder.add_root_certificate(cert.clone());
        }
        let http = builder.build().map_err(ClientError)?;
        Ok(Self {
            http,
            policy,
            timeout: config.timeout,
        })
    }

    /// Makes one attempt: the POST `request` describes, to checked addresses
    /// only. Never fails: every failure is an [`Outcome::Failed`].
    pub async fn send(&self, request: &DeliveryRequest) -> Outcome {
        let deadline = after(self.timeout);
        let response = match timeout_at(deadline, self.post(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(outcome)) => return outcome,
            Err(_) => {
                return Outcome::failed(TransportError::Timeout, "no answer within the timeout");
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .map(HeaderValue::as_bytes)
            .filter(|v| v.len() <= RETRY_AFTER_KEEP)
            .map(<[u8]>::to_vec);
        // The status is the answer; the body is read only so that a short one
        // frees the connection for reuse, never past the cap or the deadline.
        let _ = timeout_at(deadline, drain(response)).await;
        Outcome::Response {
            status,
            retry_after,
        }
    }

    async fn post(&self, request: &DeliveryRequest) -> Result<reqwest::Response, Outcome> {
        let refused = |r: prets_destinations::delivery::Refusal| {
            Outcome::failed(TransportError::Refused, r.to_string())
        };
        // A literal IP is connected to without the resolver: check it here.
        match lookup(request.url()) {
            Ok(Lookup::Literal(_)) => {
                pin_addresses(request.url(), &[], &self.policy).map_err(refused)?;
            }
            Ok(Lookup::Name(_)) => {}
            Err(r) => return Err(refused(r)),
        }
        let url = reqwest::Url::parse(request.url().as_str()).map_err(|_| {
            Outcome::failed(TransportError::Refused, "destination url does not parse")
        })?;
        // The same parse as the connector's: an IP host here is checked too.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal.filter(|&ip| !self.policy.is_allowed(ip)) {
            return Err(Outcome::failed(
                TransportError::Refused,
                Refused(ip).to_string(),
            ));
        }
        let mut headers = HeaderMap::new();
        for (index, (name, value)) in request.expose_headers().into_iter().enumerate() {
            let bad = || Outcome::failed(TransportError::Protocol, "invalid request header");
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            let mut value = HeaderValue::from_str(value).map_err(|_| bad())?;
            value.set_sensitive(DeliveryRequest::is_sensitive(index));
            headers.insert(name, value);
        }
        self.http
            .post(url)
            .headers(headers)
            .body(request.body().to_vec())
            .send()
            .await
            .map_err(|e| describe(&e))
    }
}

/// Reads and drops at most [`RESPONSE_READ_CAP`] bytes of the body.
async fn drain(mut response: reqwest::Response) {
    let mut read = 0usize;
    while read < RESPONSE_READ_CAP {
        match response.chunk().await {
            Ok(Some(chunk)) => read = read.saturating_add(chunk.len()),
            Ok(None) | Err(_) => break,
        }
    }
}

/// The kind of a request error and a short text naming it. The text is built
/// here, never from reqwest's message (which quotes the URL).
fn describe(error: &reqwest::Error) -> Outcome {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    let mut io_kind = None;
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<Refused>() {
            return Outcome::failed(TransportError::Refused, refused.to_string());
        }
        if let Some(dns) = err.downcast_ref::<DnsFailed>() {
            return Outcome::failed(TransportError::Dns, dns.0);
        }
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Outcome::failed(TransportError::Tls, format!("tls handshake failed: {tls}"));
        }
        let io = err.downcast_ref::<io::Error>();
        if let Some(io) = io {
            io_kind.get_or_insert(io.kind());
        }
        // `io::Error::source` skips the error it wraps (tokio-rustls puts the
        // rustls error there): step into it instead.
        source = match io.and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => err.source(),
        };
    }
    if error.is_timeout() || io_kind == Some(io::ErrorKind::TimedOut) {
        Outcome::failed(TransportError::Timeout, "timed out")
    } else if error.is_connect() {
        match io_kind {
            Some(kind) => Outcome::failed(
                TransportError::Connect,
                format!("connection failed: {kind}"),
            ),
            None => Outcome::failed(TransportError::Connect, "connection failed"),
        }
    } else {
        Outcome::failed(TransportError::Protocol, "invalid or interrupted response")
    }
}
