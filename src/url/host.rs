//! The create-time host policy: judge the host an HTTP client would connect
//! to, from the URL text alone (no DNS).
//!
//! The URL is parsed by the `url` crate, which implements the WHATWG URL
//! Standard that reqwest and other hyper-based clients use, so the host judged
//! here is the host those clients connect to after percent-decoding, IDNA
//! mapping and IPv4 number parsing (`0x7f.1`, `2130706433`, `0177.0.0.1`,
//! `127.1`, full-width digits). The parsed host must then be spelled exactly
//! as the client wrote it (ignoring ASCII case), so that no other parser can
//! read the text differently.

use core::net::IpAddr;

use url::{Host, Url};

use crate::policy::HostPolicy;
use crate::url::error::UrlErrorKind;

/// Most octets in a DNS name without its trailing dot (RFC 1035 §3.1: 255
/// octets on the wire, which leaves 253 characters of text).
const NAME_MAX: usize = 253;

/// Most octets in one DNS label (RFC 1035 §2.3.4).
const LABEL_MAX: usize = 63;

/// Top-level domains whose names never lead to a public endpoint, each with
/// the document that sets it apart. A host equal to one of them or ending in
/// `.` plus one of them is refused.
///
/// `example.com`, `example.net` and `example.org` (RFC 2606 §3) are *not* in
/// this list: they are delegated, resolve to public addresses, and the API
/// reference itself uses `https://example.com/prets/events`.
#[rustfmt::skip]
static RESERVED_TLDS: &[(&str, &str)] = &[
    ("localhost", "RFC 6761 §6.3: loopback"),
    ("local", "RFC 6762: multicast DNS, link-local"),
    ("test", "RFC 6761 §6.2: testing"),
    ("invalid", "RFC 6761 §6.4: guaranteed not to exist"),
    ("example", "RFC 2606 §2, RFC 6761 §6.5: documentation"),
    ("onion", "RFC 7686: Tor hidden services, never in the public DNS"),
    ("alt", "RFC 9476: non-DNS name spaces"),
    ("arpa", "RFC 3172: infrastructure only (home.arpa RFC 8375, ipv4only.arpa RFC 8880)"),
    ("internal", "ICANN board resolution of 29 July 2024: private use"),
    ("localdomain", "conventional local name in hosts files"),
    ("intranet", "RFC 6762 appendix G: used on private networks"),
    ("private", "RFC 6762 appendix G: used on private networks"),
    ("corp", "RFC 6762 appendix G; ICANN decided in 2018 not to delegate it"),
    ("home", "RFC 6762 appendix G; ICANN decided in 2018 not to delegate it"),
    ("lan", "RFC 6762 appendix G: used on private networks"),
    ("mail", "ICANN decided in 2018 not to delegate it (name collision)"),
];

/// Judges the host of a URL that already matched the published pattern,
/// begins with `https://`, has no `@` in its authority and a valid `port`.
///
/// `origin` is the URL up to the end of its authority (`https://host:port`,
/// without path or query); `host` is the raw text between `https://` and the
/// port, path or query (non-empty ASCII from the pattern's character set).
pub(crate) fn check_host(
    origin: &str,
    host: &str,
    port: Option<u16>,
    policy: &HostPolicy,
) -> Result<(), UrlErrorKind> {
    // IDNA's punycode step is quadratic in a label's length, so bound what
    // reaches it: after percent-decoding, no label can be longer than the
    // UTF-8 of 63 characters, nor the name than that of 253, and still map to
    // a valid DNS name. Longer hosts are refused before parsing, which keeps
    // the whole check linear in the input.
    let decoded_len = |text: &str| {
        text.len()
            .saturating_sub(2 * text.bytes().filter(|&b| b == b'%').count())
    };
    if decoded_len(host) > NAME_MAX * 4 || host.split('.').any(|l| decoded_len(l) > LABEL_MAX * 4) {
        return Err(UrlErrorKind::InvalidHost);
    }
    let parsed = Url::parse(origin).map_err(|e| match e {
        url::ParseError::InvalidPort => UrlErrorKind::Port,
        _ => UrlErrorKind::InvalidHost,
    })?;
    // The pattern and the scan already rule these out; checking what the
    // WHATWG parser found guards against any disagreement between the two.
    if parsed.scheme() != "https" {
        return Err(UrlErrorKind::NotHttps);
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlErrorKind::Credentials);
    }
    if parsed.port_or_known_default() != Some(port.unwrap_or(443)) {
        return Err(UrlErrorKind::Port);
    }
    match parsed.host() {
        None => Err(UrlErrorKind::EmptyHost),
        Some(Host::Ipv4(ip)) => check_ip(IpAddr::V4(ip), host, parsed.host_str(), policy),
        Some(Host::Ipv6(ip)) => check_ip(IpAddr::V6(ip), host, parsed.host_str(), policy),
        Some(Host::Domain(name)) => check_domain(name, host),
    }
}

/// An IP literal must be allowed by the policy (by default: public) and
/// written the canonical way (dotted decimal without leading zeros for IPv4).
fn check_ip(
    ip: IpAddr,
    raw: &str,
    serialized: Option<&str>,
    policy: &HostPolicy,
) -> Result<(), UrlErrorKind> {
    if !policy.is_allowed(ip) {
        return Err(UrlErrorKind::NonPublicAddress);
    }
    match serialized {
        Some(s) if s.eq_ignore_ascii_case(raw) => Ok(()),
        _ => Err(UrlErrorKind::NonCanonicalHost),
    }
}

/// `name` is the host after percent-decoding and IDNA processing: ASCII, lower
/// case, with `xn--` labels already verified by the `url` crate's UTS 46
/// processing.
fn check_domain(name: &str, raw: &str) -> Result<(), UrlErrorKind> {
    let fqdn = name.strip_suffix('.').unwrap_or(name);
    let tld = fqdn.rsplit('.').next().unwrap_or(fqdn);
    if RESERVED_TLDS.iter().any(|&(t, _)| t == tld) {
        return Err(UrlErrorKind::ReservedHost);
    }
    if !is_dns_name(fqdn) {
        return Err(UrlErrorKind::InvalidHost);
    }
    if !fqdn.contains('.') {
        return Err(UrlErrorKind::SingleLabelHost);
    }
    // Case is the only difference allowed between what was sent and what the
    // client will look up; a trailing dot is refused as a second spelling of
    // the same name.
    if fqdn.len() != name.len() || !name.eq_ignore_ascii_case(raw) {
        return Err(UrlErrorKind::NonCanonicalHost);
    }
    Ok(())
}

/// RFC 1123 §2.1 host name syntax: at most 253 octets, labels of 1 to 63
/// letters, digits and hyphens, neither starting nor ending with a hyphen.
fn is_dns_name(name: &str) -> bool {
    name.len() <= NAME_MAX
        && name.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= LABEL_MAX
                && b.first() != Some(&b'-')
                && b.last() != Some(&b'-')
                && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_tlds_are_lower_case_single_labels_that_pass_dns_syntax() {
        // A reserved entry that could never match a parsed host would be a
        // silent hole.
        for &(tld, _) in RESERVED_TLDS {
            assert!(is_dns_name(tld), "{tld}");
            assert!(!tld.contains('.'), "{tld}");
            assert_eq!(tld, tld.to_ascii_lowercase(), "{tld}");
        }
    }

    #[test]
    fn dns_syntax_limits_are_inclusive() {
        let label63 = "a".repeat(63);
        assert!(is_dns_name(&format!("{label63}.com")));
        assert!(!is_dns_name(&format!("{label63}a.com")));
        // Four labels of 61, four dots and five letters: 253 octets.
        let name253 = format!("{0}.{0}.{0}.{0}.abcde", "b".repeat(61));
        assert_eq!(name253.len(), 253);
        assert!(is_dns_name(&name253));
        assert!(!is_dns_name(&format!("{name253}g")));
    }
}
