//! Which addresses a delivery may connect to.

use core::fmt;
use core::net::{IpAddr, SocketAddr};

use url::{Host, Url};

use crate::policy::HostPolicy;
use crate::url::DestinationUrl;

/// What the host must look up before connecting, if anything.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Lookup {
    /// The URL's host is an IP address: connect to it, resolve nothing. It
    /// must still pass [`pin_addresses`], because an HTTP client connecting
    /// to a literal never calls its resolver.
    Literal(IpAddr),
    /// Resolve this name (ASCII, after IDNA), then pass every answer to
    /// [`pin_addresses`].
    Name(String),
}

/// Why a delivery must not connect at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// The name resolved to no address.
    NoAddress,
    /// One of the addresses (the first one found) is not allowed by the
    /// policy. One bad answer refuses them all: a name mixing public and
    /// private answers is an attack, not a misconfiguration.
    NotAllowed(IpAddr),
    /// The stored URL's host does not parse as a host.
    InvalidHost,
}

impl Refusal {
    /// A stable machine code: `no_address`, `address_not_allowed` or
    /// `invalid_host`.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::NoAddress => "no_address",
            Self::NotAllowed(_) => "address_not_allowed",
            Self::InvalidHost => "invalid_host",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoAddress => f.write_str("destination host has no address"),
            Self::NotAllowed(ip) => write!(f, "destination address {ip} is not allowed"),
            Self::InvalidHost => f.write_str("destination url host is not a valid host"),
        }
    }
}

impl std::error::Error for Refusal {}

/// What the URL's host is, read with the WHATWG rules an HTTP client uses,
/// so a stored URL in an old notation (`https://0x7f.1/`) is seen as the
/// literal it is.
///
/// # Errors
/// [`Refusal::InvalidHost`] if the host does not parse.
pub fn lookup(url: &DestinationUrl) -> Result<Lookup, Refusal> {
    let origin_end = url
        .as_str()
        .get(8..)
        .and_then(|rest| rest.find(['/', '?']))
        .map_or(url.as_str().len(), |i| i + 8);
    let origin = url.as_str().get(..origin_end).unwrap_or_default();
    let parsed = Url::parse(origin).map_err(|_| Refusal::InvalidHost)?;
    match parsed.host() {
        Some(Host::Ipv4(ip)) => Ok(Lookup::Literal(IpAddr::V4(ip))),
        Some(Host::Ipv6(ip)) => Ok(Lookup::Literal(IpAddr::V6(ip))),
        Some(Host::Domain(name)) => Ok(Lookup::Name(name.to_owned())),
        None => Err(Refusal::InvalidHost),
    }
}

/// The addresses a delivery to `url` may connect to, with the port, given
/// the DNS `answers` for its host (ignored when the host is an IP literal,
/// which is judged itself). Refuses if there is no address or if **any**
/// address is not allowed by `policy`. The host connects only to the
/// returned addresses (never resolving again) and follows no redirect.
///
/// ```
/// use prets_destinations::{DestinationUrl, HostPolicy};
/// use prets_destinations::delivery::pin_addresses;
///
/// let url: DestinationUrl = "https://hooks.example.com/in".parse()?;
/// let policy = HostPolicy::default();
/// let ok = pin_addresses(&url, &["93.184.215.14".parse()?], &policy)?;
/// assert_eq!(ok[0].to_string(), "93.184.215.14:443");
/// let mixed = ["93.184.215.14".parse()?, "10.0.0.5".parse()?];
/// assert_eq!(pin_addresses(&url, &mixed, &policy).unwrap_err().code(), "address_not_allowed");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Refusal`].
pub fn pin_addresses(
    url: &DestinationUrl,
    answers: &[IpAddr],
    policy: &HostPolicy,
) -> Result<Vec<SocketAddr>, Refusal> {
    let port = url.port().unwrap_or(443);
    let literal;
    let addrs: &[IpAddr] = match lookup(url)? {
        Lookup::Literal(ip) => {
            literal = [ip];
            &literal
        }
        Lookup::Name(_) => answers,
    };
    if addrs.is_empty() {
        return Err(Refusal::NoAddress);
    }
    if let Some(&bad) = addrs.iter().find(|&&ip| !policy.is_allowed(ip)) {
        return Err(Refusal::NotAllowed(bad));
    }
    Ok(addrs.iter().map(|&ip| SocketAddr::new(ip, port)).collect())
}
