//! Name resolution behind a trait, so that tests can answer with any address.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use prets_destinations::HostPolicy;

/// What [`Resolve::resolve`] returns: the addresses of a name, in order.
pub type Resolving = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

/// Resolves a host name to its addresses (IPv4 and IPv6).
///
/// The delivery client calls it for every name it connects to and checks
/// every answer with the [`HostPolicy`] before any connection is made.
pub trait Resolve: Send + Sync + 'static {
    /// The addresses of `host` (a name, never an IP literal).
    fn resolve(&self, host: &str) -> Resolving;
}

/// The operating system's resolver (`getaddrinfo`, through tokio).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str) -> Resolving {
        let host = host.to_owned();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// A resolver the client refused to use an address of: an answer outside the
/// policy. Found again in the error's source chain to tell a refusal apart
/// from a network failure.
#[derive(Debug)]
pub(crate) struct Refused(pub(crate) IpAddr);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "destination address {} is not allowed", self.0)
    }
}

impl std::error::Error for Refused {}

/// The name did not resolve, or resolved to nothing.
#[derive(Debug)]
pub(crate) struct DnsFailed(pub(crate) &'static str);

impl std::fmt::Display for DnsFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for DnsFailed {}

/// The resolver reqwest uses: the injected one, then the policy over every
/// answer. Only addresses that all passed are handed on to be connected to;
/// one refused answer refuses the name (as `pin_addresses` in the core does),
/// so a rebinding name that mixes a public and a private address never
/// reaches either.
pub(crate) struct CheckedResolver {
    pub(crate) inner: Arc<dyn Resolve>,
    pub(crate) policy: Arc<HostPolicy>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let answers = self.inner.resolve(name.as_str());
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let ips = answers
                .await
                .map_err(|_| Box::new(DnsFailed("dns lookup failed")) as BoxError)?;
            let checked = check(&ips, &policy)?;
            let addrs: reqwest::dns::Addrs = Box::new(checked.into_iter());
            Ok(addrs)
        })
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every answer through the policy: all of them, or an error.
pub(crate) fn check(
    ips: &[IpAddr],
    policy: &HostPolicy,
) -> Result<Vec<std::net::SocketAddr>, BoxError> {
    if ips.is_empty() {
        return Err(Box::new(DnsFailed("destination host has no address")));
    }
    if let Some(&bad) = ips.iter().find(|&&ip| !policy.is_allowed(ip)) {
        return Err(Box::new(Refused(bad)));
    }
    // The port is replaced by the URL's when connecting.
    Ok(ips
        .iter()
        .map(|&ip| std::net::SocketAddr::new(ip, 0))
        .collect())
}
