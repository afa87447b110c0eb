//! `DestinationUrl`: the public HTTPS endpoint deliveries go to.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use self::error::UrlErrorKind;
use crate::byteset::ByteSet;
use crate::policy::HostPolicy;

mod error;
mod host;

pub use self::error::InvalidUrl;

/// Most characters a destination URL may have.
pub const URL_MAX_CHARS: usize = 2048;

/// The published `url` pattern, verbatim from the API reference.
///
/// The crate does not run this expression; it checks the same language with a
/// byte-table scanner (see the `url` bench). The tests and fuzz targets use it
/// as the oracle.
pub const URL_PATTERN: &str =
    r"^((%[0-9A-Fa-f]{2}|[-()_.!~*';/?:@&=+$,A-Za-z0-9])+)([).!';/?:,])?$";

/// Bytes the published pattern allows outside a `%XX` escape.
static ALLOWED: ByteSet = ByteSet::new(
    b"-()_.!~*';/?:@&=+$,",
    &[(b'0', b'9'), (b'A', b'Z'), (b'a', b'z')],
);

const SCHEME: &[u8] = b"https://";

/// A destination URL: at most 2048 characters matching the published pattern
/// over the whole input, beginning with `https://` (scheme case-insensitive),
/// with a non-empty host, no user information and, if present, a port from 1
/// to 65535.
///
/// The host must also pass the create-time host policy. It is judged as an
/// HTTP client would see it after WHATWG URL parsing (percent-decoding, IDNA
/// mapping, every IPv4 notation): an IP literal must be public (see
/// [`is_public_address`](crate::address::is_public_address)) and a name must be a valid
/// DNS name with at least two labels outside the reserved and local-only
/// domains (`localhost`, `.local`, `.internal`, `.test`, ...), and the host
/// must be spelled as the parser spells it, up to ASCII case. The text check
/// cannot see DNS, so the delivery path must still check every resolved
/// address.
///
/// [`AsRef<str>`], [`Display`](fmt::Display) and serde give back exactly the
/// string the client sent.
///
/// ```
/// use prets_destinations::DestinationUrl;
///
/// let url: DestinationUrl = "https://example.com/prets/events".parse()?;
/// assert_eq!(url.as_str(), "https://example.com/prets/events");
/// assert_eq!(url.host(), "example.com");
/// assert_eq!(url.port(), None);
///
/// let err = "http://example.com/".parse::<DestinationUrl>().unwrap_err();
/// assert_eq!(err.code(), "not_https");
///
/// let err = "https://0x7f.1/".parse::<DestinationUrl>().unwrap_err();
/// assert_eq!(err.code(), "non_public_address");
/// # Ok::<(), prets_destinations::url::InvalidUrl>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DestinationUrl {
    text: String,
    /// Byte offset one past the host, where a `:port`, path or query begins.
    host_end: usize,
    port: Option<u16>,
}

/// The parts found by [`scan`].
struct Parsed {
    host_end: usize,
    port: Option<u16>,
}

/// Checks the whole input in one pass (plus one bounded pass over the
/// authority), then applies the host policy.
fn scan(s: &str) -> Result<Parsed, UrlErrorKind> {
    scan_policy(s, &HostPolicy::new())
}

/// [`scan`] under an operator's host policy.
fn scan_policy(s: &str, policy: &HostPolicy) -> Result<Parsed, UrlErrorKind> {
    scan_with(s, |origin, host, port| {
        host::check_host(origin, host, port, policy)
    })
}

/// [`scan`] with the host policy as a parameter, so the benches can measure
/// what the policy adds.
fn scan_with(
    s: &str,
    check_host: impl FnOnce(&str, &str, Option<u16>) -> Result<(), UrlErrorKind>,
) -> Result<Parsed, UrlErrorKind> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(UrlErrorKind::Empty);
    }
    // Length is counted in characters, as JSON Schema counts it. Only a string
    // with more than 2048 bytes can have more than 2048 characters.
    if b.len() > URL_MAX_CHARS && s.chars().count() > URL_MAX_CHARS {
        return Err(UrlErrorKind::TooLong);
    }
    match b.get(..SCHEME.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(SCHEME) => {}
        _ => return Err(UrlErrorKind::NotHttps),
    }
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            match (b.get(i + 1), b.get(i + 2)) {
                (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return Err(UrlErrorKind::PercentEscape),
            }
        } else if ALLOWED.contains(c) {
            i += 1;
        } else {
            return Err(UrlErrorKind::Character);
        }
    }
    let rest = b.get(SCHEME.len()..).unwrap_or_default();
    // The pattern has no '#', '[' or ']', so the authority ends at the first
    // '/' or '?' and cannot hold an IPv6 literal.
    let authority_len = rest
        .iter()
        .position(|&c| c == b'/' || c == b'?')
        .unwrap_or(rest.len());
    let authority = rest.get(..authority_len).unwrap_or_default();
    if authority.contains(&b'@') {
        return Err(UrlErrorKind::Credentials);
    }
    let (host_len, port) = match authority.iter().position(|&c| c == b':') {
        Some(colon) => (
            colon,
            Some(parse_port(authority.get(colon + 1..).unwrap_or_default())?),
        ),
        None => (authority_len, None),
    };
    if host_len == 0 {
        return Err(UrlErrorKind::EmptyHost);
    }
    let host_end = SCHEME.len() + host_len;
    // The host policy parses only `https://` and the authority: the pattern
    // has no '#' or backslash, so the WHATWG parser ends the authority where this
    // scan does, and the cost does not grow with the path.
    let authority_end = SCHEME.len() + authority_len;
    check_host(
        s.get(..authority_end).unwrap_or_default(),
        s.get(SCHEME.len()..host_end).unwrap_or_default(),
        port,
    )?;
    Ok(Parsed { host_end, port })
}

/// 1 to 5 ASCII digits, no leading zero, value at most 65535.
fn parse_port(digits: &[u8]) -> Result<u16, UrlErrorKind> {
    if digits.is_empty() || digits.len() > 5 || digits.first() == Some(&b'0') {
        return Err(UrlErrorKind::Port);
    }
    let mut value: u32 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(UrlErrorKind::Port);
        }
        value = value * 10 + u32::from(d - b'0');
    }
    u16::try_from(value).map_err(|_| UrlErrorKind::Port)
}

impl DestinationUrl {
    /// Validates `s` without allocating.
    ///
    /// # Errors
    /// [`InvalidUrl`]; see its [`code`](InvalidUrl::code) for the rule that failed.
    pub fn validate(s: &str) -> Result<(), InvalidUrl> {
        scan(s).map(|_| ()).map_err(InvalidUrl::new)
    }

    /// Checks only the pattern, length, scheme, credentials, empty-host and
    /// port rules, skipping the host policy.
    ///
    /// Not a way to accept a URL: it exists so the `url_policy` bench can
    /// measure what the host policy adds to [`validate`](Self::validate).
    ///
    /// # Errors
    /// [`InvalidUrl`] for the rules above.
    #[doc(hidden)]
    pub fn validate_without_host_policy(s: &str) -> Result<(), InvalidUrl> {
        scan_with(s, |_, _, _| Ok(()))
            .map(|_| ())
            .map_err(InvalidUrl::new)
    }

    /// Parses `s` under an operator's [`HostPolicy`] instead of the default
    /// one ([`FromStr`] uses [`HostPolicy::default`]).
    ///
    /// The policy judges IP-literal hosts only: an allowed network admits
    /// `https://10.1.2.3/` but never a name like `localhost` or `*.internal`,
    /// and a denied network refuses even a public literal.
    ///
    /// ```
    /// use prets_destinations::{DestinationUrl, HostPolicy};
    ///
    /// let policy = HostPolicy::default().allow("127.0.0.1/32".parse()?);
    /// let url = DestinationUrl::parse_with_policy("https://127.0.0.1:8443/hook", &policy)?;
    /// assert_eq!(url.port(), Some(8443));
    /// let err = DestinationUrl::parse_with_policy("https://localhost/hook", &policy).unwrap_err();
    /// assert_eq!(err.code(), "reserved_host");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`InvalidUrl`], as for [`FromStr`].
    pub fn parse_with_policy(s: &str, policy: &HostPolicy) -> Result<Self, InvalidUrl> {
        let Parsed { host_end, port } = scan_policy(s, policy).map_err(InvalidUrl::new)?;
        Ok(Self {
            text: s.to_owned(),
            host_end,
            port,
        })
    }

    /// The URL exactly as sent.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host as written (between `https://` and the port, path or query).
    #[must_use]
    pub fn host(&self) -> &str {
        self.text
            .get(SCHEME.len()..self.host_end)
            .unwrap_or_default()
    }

    /// The explicit port, if the URL has one.
    #[must_use]
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The owned string.
    #[must_use]
    pub fn into_string(self) -> String {
        self.text
    }

    /// A URL read back from the host's own storage, which this crate accepted
    /// when it was stored. Everything but the host policy is checked again
    /// (pattern, length, `https://`, credentials, port, a non-empty host).
    ///
    /// The host policy is skipped on purpose: it may have grown stricter since
    /// the URL was stored (a newly reserved name, an updated IDNA table), and
    /// one such URL must not make a tenant's stored destinations unreadable.
    /// Deliveries still check every resolved address with
    /// [`is_public_address`](crate::address::is_public_address). Never use this for
    /// client input.
    ///
    /// # Errors
    /// [`InvalidUrl`] if the text breaks a rule other than the host policy.
    pub fn from_stored(text: String) -> Result<Self, InvalidUrl> {
        let Parsed { host_end, port } =
            scan_with(&text, |_, _, _| Ok(())).map_err(InvalidUrl::new)?;
        Ok(Self {
            text,
            host_end,
            port,
        })
    }

    fn from_string(text: String) -> Result<Self, InvalidUrl> {
        let Parsed { host_end, port } = scan(&text).map_err(InvalidUrl::new)?;
        Ok(Self {
            text,
            host_end,
            port,
        })
    }
}

impl FromStr for DestinationUrl {
    type Err = InvalidUrl;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Parsed { host_end, port } = scan(s).map_err(InvalidUrl::new)?;
        Ok(Self {
            text: s.to_owned(),
            host_end,
            port,
        })
    }
}

impl TryFrom<&str> for DestinationUrl {
    type Error = InvalidUrl;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<String> for DestinationUrl {
    type Error = InvalidUrl;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::from_string(s)
    }
}

impl From<DestinationUrl> for String {
    fn from(u: DestinationUrl) -> Self {
        u.text
    }
}

impl AsRef<str> for DestinationUrl {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for DestinationUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for DestinationUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DestinationUrl").field(&self.text).finish()
    }
}

/// Serde's `deserialize_with` for stored records: [`DestinationUrl::from_stored`].
pub(crate) fn deserialize_stored<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<DestinationUrl, D::Error> {
    let text = String::deserialize(d)?;
    DestinationUrl::from_stored(text).map_err(serde::de::Error::custom)
}
