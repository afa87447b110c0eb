//! Delivering to a destination without opening an SSRF hole.
//!
//! `DestinationUrl` refuses, at create time, every URL whose host *text* is
//! local or private. It cannot see DNS: `127.0.0.1.nip.io` or a name whose
//! owner re-points it at `10.0.0.5` after the check (DNS rebinding) passes
//! the text check. So the delivery path must judge the addresses it actually
//! connects to:
//!
//! 1. resolve the host itself;
//! 2. check **every** resolved address with `is_public_address`, and refuse
//!    the delivery if any one is not public (a name that mixes public and
//!    private answers is an attack, not a misconfiguration);
//! 3. connect to an address that was checked, never re-resolve the name
//!    (a second lookup can return a different answer);
//! 4. do not follow redirects (a `307` to `https://169.254.169.254/` would
//!    bypass both checks), and do not use a proxy from the environment
//!    (`HTTPS_PROXY` makes the proxy, not this code, resolve the name).
//!
//! The crate's part is pure: `delivery::lookup` says whether the URL's host
//! is an IP literal (connect to it, resolve nothing) or a name to resolve,
//! and `delivery::pin_addresses` judges the literal or **every** answer
//! against the operator's `HostPolicy` and returns the addresses to connect
//! to. This example does the rest with the standard library and stops at the
//! TCP connection: TLS and HTTP go on top of the returned stream, with the
//! URL's host as the TLS server name. Run it with a URL:
//!
//! ```text
//! cargo run --example delivering_safely -- https://example.com/prets/events
//! ```
//!
//! With reqwest, a custom `dns::Resolve` alone is **not** enough: hyper-util's
//! connector connects to an IP-literal host (`https://10.0.0.5/`, or a stored
//! URL in an old notation such as `https://0x7f.1/`) without calling the
//! resolver at all. Pin per attempt instead, so literals and names go through
//! the same check:
//!
//! ```text
//! let addrs = match delivery::lookup(&url)? {
//!     Lookup::Literal(_) => Vec::new(), // judged by pin_addresses itself
//!     Lookup::Name(name) => tokio::net::lookup_host((name.as_str(), 0)).await?
//!         .map(|a| a.ip()).collect(),
//! };
//! let pinned = delivery::pin_addresses(&url, &addrs, &policy)?; // refuses if ANY is not allowed
//! let client = reqwest::Client::builder()
//!     .resolve_to_addrs(url.host(), &pinned) // connect only there, never re-resolve
//!     .redirect(reqwest::redirect::Policy::none())
//!     .no_proxy()
//!     .build()?;
//! ```
//!
//! With hyper directly, do the same check before handing the request to the
//! connector (an `HttpConnector::new_with_resolver` resolver is skipped for
//! literals too), connect to the pinned addresses, and add no
//! redirect-following layer. Whatever the client, also cap the response size
//! and time, and send the request only over HTTPS.

#![allow(clippy::print_stdout, reason = "an example reports to its user")]

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use prets_destinations::delivery::{Lookup, Refusal, lookup, pin_addresses};
use prets_destinations::{DestinationUrl, HostPolicy};

/// Why a delivery was not attempted.
enum NotSent {
    /// The host did not resolve.
    Resolve(io::Error),
    /// The policy refused the literal or one of the answers, or there was none.
    Refused(Refusal),
    /// Every checked address refused the connection.
    Connect(io::Error),
}

/// The addresses a delivery to `url` may connect to: the literal, or every
/// answer for the name, all allowed by `policy`.
fn resolve_checked(url: &DestinationUrl, policy: &HostPolicy) -> Result<Vec<SocketAddr>, NotSent> {
    let answers: Vec<IpAddr> = match lookup(url).map_err(NotSent::Refused)? {
        // hyper-based clients connect to a literal without resolving: it is
        // judged by `pin_addresses` itself.
        Lookup::Literal(_) => Vec::new(),
        Lookup::Name(name) => (name.as_str(), 0)
            .to_socket_addrs()
            .map_err(NotSent::Resolve)?
            .map(|a| a.ip())
            .collect(),
    };
    pin_addresses(url, &answers, policy).map_err(NotSent::Refused)
}

/// Connects to the first checked address that accepts, without resolving the
/// name again.
fn connect_checked(addrs: &[SocketAddr]) -> Result<TcpStream, NotSent> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match TcpStream::connect_timeout(addr, Duration::from_secs(5)) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(NotSent::Connect(last))
}

fn main() {
    let text = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "https://example.com/prets/events".to_owned());
    // The operator's policy: the default (public addresses only, never a
    // cloud metadata address) plus, for example, a public network of the
    // operator's own that must never be reached (192.0.2.0/24 stands for it).
    let policy = HostPolicy::default().deny(
        "192.0.2.0/24"
            .parse()
            .unwrap_or_else(|_| unreachable!("a valid network")),
    );
    let url = match DestinationUrl::parse_with_policy(&text, &policy) {
        Ok(url) => url,
        Err(e) => {
            println!("refused at create time: {} ({})", e.code(), e.message());
            return;
        }
    };
    let outcome = resolve_checked(&url, &policy).and_then(|addrs| connect_checked(&addrs));
    match outcome {
        Ok(stream) => {
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            println!(
                "connected to {peer}; TLS for {} goes on this stream",
                url.host()
            );
        }
        Err(NotSent::Refused(r)) => println!("refused: {} ({})", r.code(), r),
        Err(NotSent::Resolve(e)) => println!("not delivered: lookup failed: {e}"),
        Err(NotSent::Connect(e)) => println!("not delivered: connection failed: {e}"),
    }
}
