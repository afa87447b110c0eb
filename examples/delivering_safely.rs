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
//! This example does steps 1 to 3 with the standard library and stops at the
//! TCP connection: TLS and HTTP go on top of the returned stream, with the
//! URL's host as the TLS server name. Run it with a URL:
//!
//! ```text
//! cargo run --example delivering_safely -- https://example.com/prets/events
//! ```
//!
//! With reqwest, the same policy is a custom resolver plus two builder calls:
//!
//! ```text
//! struct PublicOnly;
//! impl reqwest::dns::Resolve for PublicOnly {
//!     fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
//!         Box::pin(async move {
//!             let host = name.as_str().to_owned();
//!             let addrs = tokio::task::spawn_blocking(move || {
//!                 std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), 0))
//!             })
//!             .await??
//!             .collect::<Vec<_>>();
//!             if addrs.is_empty() || !addrs.iter().all(|a| is_public_address(a.ip())) {
//!                 return Err("destination resolves to a non-public address".into());
//!             }
//!             Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
//!         })
//!     }
//! }
//!
//! let client = reqwest::Client::builder()
//!     .dns_resolver(std::sync::Arc::new(PublicOnly))
//!     .redirect(reqwest::redirect::Policy::none())
//!     .no_proxy()
//!     .build()?;
//! ```
//!
//! reqwest connects only to the addresses the resolver returns. With hyper
//! directly, wrap `hyper_util::client::legacy::connect::HttpConnector::new_with_resolver`
//! around a `tower::Service<Name>` that does the same filtering, and do not
//! add a redirect-following layer. Whatever the client, also cap the response
//! size and time, and send the request only over HTTPS.

#![allow(clippy::print_stdout, reason = "an example reports to its user")]

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use prets_destinations::{DestinationUrl, is_public_address};

/// Why a delivery was not attempted.
enum Refused {
    /// The host did not resolve.
    Resolve(io::Error),
    /// The host resolved to no address at all.
    NoAddress,
    /// At least one resolved address is not public.
    NotPublic(SocketAddr),
    /// Every checked address refused the connection.
    Connect(io::Error),
}

/// Resolves the destination's host and returns its addresses if, and only
/// if, every one of them is public.
fn resolve_public(url: &DestinationUrl) -> Result<Vec<SocketAddr>, Refused> {
    let port = url.port().unwrap_or(443);
    let addrs: Vec<SocketAddr> = (url.host(), port)
        .to_socket_addrs()
        .map_err(Refused::Resolve)?
        .collect();
    if addrs.is_empty() {
        return Err(Refused::NoAddress);
    }
    if let Some(bad) = addrs.iter().find(|a| !is_public_address(a.ip())) {
        return Err(Refused::NotPublic(*bad));
    }
    Ok(addrs)
}

/// Connects to the first checked address that accepts, without resolving the
/// name again.
fn connect_checked(addrs: &[SocketAddr]) -> Result<TcpStream, Refused> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        // The address was checked by `resolve_public`; check again right
        // here so this function is safe on its own.
        if !is_public_address(addr.ip()) {
            return Err(Refused::NotPublic(*addr));
        }
        match TcpStream::connect_timeout(addr, Duration::from_secs(5)) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(Refused::Connect(last))
}

fn main() {
    let text = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "https://example.com/prets/events".to_owned());
    let url: DestinationUrl = match text.parse() {
        Ok(url) => url,
        Err(e) => {
            println!("refused at create time: {} ({})", e.code(), e.message());
            return;
        }
    };
    let outcome = resolve_public(&url).and_then(|addrs| connect_checked(&addrs));
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
        Err(Refused::NotPublic(addr)) => {
            println!("refused: {} resolves to non-public {addr}", url.host());
        }
        Err(Refused::NoAddress) => println!("not delivered: {} has no address", url.host()),
        Err(Refused::Resolve(e)) => println!("not delivered: lookup failed: {e}"),
        Err(Refused::Connect(e)) => println!("not delivered: connection failed: {e}"),
    }
}
