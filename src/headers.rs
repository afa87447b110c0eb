//! `CustomHeaders`: the headers a client asks every delivery to carry.

use core::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::byteset::ByteSet;
use crate::error::{Field, field_error_type};

/// Most custom headers a destination may have.
pub const MAX_CUSTOM_HEADERS: usize = 20;

/// Most bytes of a custom header's name.
pub const HEADER_NAME_MAX_BYTES: usize = 256;

/// Most bytes (visible ASCII, so also characters) of a custom header's value.
pub const HEADER_VALUE_MAX_BYTES: usize = 1024;

/// Names the server sets or owns, and hop-by-hop ones, refused whatever their
/// case. Names beginning with [`RESERVED_HEADER_PREFIXES`] are refused too.
pub const RESERVED_HEADER_NAMES: &[&str] = &[
    "Authorization",
    "Content-Type",
    "Content-Length",
    "Host",
    "Connection",
    "Transfer-Encoding",
    "TE",
    "Trailer",
    "Upgrade",
    "Keep-Alive",
    "User-Agent",
    "Cookie",
    // The bare name of the `Proxy-*` family: CGI stacks turn it into the
    // HTTP_PROXY variable of the receiver's process ("httpoxy").
    "Proxy",
];

/// Prefixes of reserved names, matched whatever their case: `Proxy-*`
/// (hop-by-hop, for proxies) and `Webhook-*` (the Standard Webhooks headers
/// the server sets: `Webhook-Id`, `Webhook-Timestamp`, `Webhook-Signature`).
pub const RESERVED_HEADER_PREFIXES: &[&str] = &["Proxy-", "Webhook-"];

/// RFC 9110 `tchar`: the characters of a token.
static TCHAR: ByteSet = ByteSet::new(
    b"!#$%&'*+-.^_`|~",
    &[(b'0', b'9'), (b'A', b'Z'), (b'a', b'z')],
);

field_error_type! {
    /// Why a map is not valid [`CustomHeaders`]. Never contains a name or a
    /// value.
    InvalidHeaders, HeadersErrorKind, Field::Headers,
    {
        TooMany => ("too_many", "headers must have at most 20 entries"),
        InvalidName => ("invalid_name", "header names must be 1 to 256 characters of an rfc 9110 token"),
        ReservedName => ("reserved_name", "header names must not be one the server sets or a hop-by-hop header"),
        ValueTooLong => ("value_too_long", "header values must be at most 1024 characters"),
        InvalidValue => ("invalid_value", "header values must be visible ascii, with spaces or tabs only between other characters"),
        DuplicateName => ("duplicate_name", "header names must not repeat, whatever their case"),
    }
}

/// The custom headers of a destination, sent on every delivery: at most 20,
/// in the order given.
///
/// - A name is an RFC 9110 token (letters, digits and ``!#$%&'*+-.^_`|~``)
///   of 1 to 256 characters, kept in the case sent; two names that differ
///   only in case are refused (`duplicate_name`).
/// - Refused names (`reserved_name`, any case): those the server sets or owns
///   and the hop-by-hop ones, [`RESERVED_HEADER_NAMES`] and every name
///   beginning with one of [`RESERVED_HEADER_PREFIXES`].
/// - A value is at most 1,024 characters of visible ASCII (U+0021–U+007E);
///   spaces and tabs are allowed between them, as RFC 9110's `field-content`
///   allows, but not first or last, where HTTP strips them and the receiver
///   would see another value. The empty value is allowed. Bytes beyond ASCII
///   (`obs-text`) are refused.
///
/// The rules are checked in the order of the error codes, each over the whole
/// map, so the error does not depend on the order of the members.
///
/// Values may be credentials (an API key the receiver checks), so
/// [`Debug`](fmt::Debug) shows the names only, and the values are read
/// through the explicit [`expose_pairs`](Self::expose_pairs). `Serialize`
/// writes them, for storage.
///
/// ```
/// use prets_destinations::headers::CustomHeaders;
///
/// let h = CustomHeaders::new([("X-Api-Key", "k-123"), ("X-Team", "billing ops")])?;
/// assert_eq!(format!("{h:?}"), r#"CustomHeaders { names: ["X-Api-Key", "X-Team"], .. }"#);
/// assert_eq!(h.expose_pairs().next(), Some(("X-Api-Key", "k-123")));
/// let bad = CustomHeaders::new([("webhook-signature", "v1,forged")]).unwrap_err();
/// assert_eq!(bad.code(), "reserved_name");
/// # Ok::<(), prets_destinations::headers::InvalidHeaders>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct CustomHeaders(Vec<(String, String)>);

fn is_token(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| TCHAR.contains(b))
}

/// Whether `name` (a token) is reserved, ignoring ASCII case.
fn is_reserved(name: &str) -> bool {
    let b = name.as_bytes();
    RESERVED_HEADER_NAMES
        .iter()
        .any(|r| b.eq_ignore_ascii_case(r.as_bytes()))
        || RESERVED_HEADER_PREFIXES.iter().any(|p| {
            b.get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p.as_bytes()))
        })
}

fn is_valid_value(value: &[u8]) -> bool {
    let vchar = |b: &u8| (0x21..=0x7e).contains(b);
    let inner = |b: &u8| vchar(b) || matches!(b, b' ' | b'\t');
    match value {
        [] => true,
        [only] => vchar(only),
        [first, middle @ .., last] => vchar(first) && vchar(last) && middle.iter().all(inner),
    }
}

/// The first rule (in the order of the codes) that one header fails.
fn check_entry(name: &str, value: &str) -> Option<HeadersErrorKind> {
    if name.len() > HEADER_NAME_MAX_BYTES || !is_token(name.as_bytes()) {
        Some(HeadersErrorKind::InvalidName)
    } else if is_reserved(name) {
        Some(HeadersErrorKind::ReservedName)
    } else if value.len() > HEADER_VALUE_MAX_BYTES {
        Some(HeadersErrorKind::ValueTooLong)
    } else if !is_valid_value(value.as_bytes()) {
        Some(HeadersErrorKind::InvalidValue)
    } else {
        None
    }
}

impl CustomHeaders {
    /// Validates `headers`, keeping their order. Stops reading at the 21st.
    ///
    /// Every check is linear in the header's length; the duplicate check
    /// compares at most 20 names pairwise.
    ///
    /// # Errors
    /// [`InvalidHeaders`] with code `too_many`, `invalid_name`,
    /// `reserved_name`, `value_too_long`, `invalid_value` or
    /// `duplicate_name`: the first of these rules that any header fails.
    pub fn new<I, N, V>(headers: I) -> Result<Self, InvalidHeaders>
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<String>,
        V: Into<String>,
    {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut first: Option<HeadersErrorKind> = None;
        for (i, (name, value)) in headers.into_iter().enumerate() {
            if i == MAX_CUSTOM_HEADERS {
                return Err(InvalidHeaders::new(HeadersErrorKind::TooMany));
            }
            let (name, value) = (name.into(), value.into());
            let mut kind = check_entry(&name, &value);
            // Only a valid name (at most 256 bytes) is compared: the work
            // stays linear in the input, and an invalid name already reports
            // a rule before `duplicate_name`.
            if kind != Some(HeadersErrorKind::InvalidName)
                && pairs
                    .iter()
                    .any(|(seen, _)| seen.eq_ignore_ascii_case(&name))
            {
                kind = kind.or(Some(HeadersErrorKind::DuplicateName));
            }
            if let Some(kind) = kind {
                first = Some(first.map_or(kind, |f| f.min(kind)));
            }
            pairs.push((name, value));
        }
        match first {
            Some(kind) => Err(InvalidHeaders::new(kind)),
            None => Ok(Self(pairs)),
        }
    }

    /// How many headers there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names, in order, as sent.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_str())
    }

    /// The names and values, in order: what a delivery sends. Values may be
    /// credentials: keep them out of logs.
    pub fn expose_pairs(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

impl TryFrom<Vec<(String, String)>> for CustomHeaders {
    type Error = InvalidHeaders;
    fn try_from(headers: Vec<(String, String)>) -> Result<Self, Self::Error> {
        Self::new(headers)
    }
}

impl fmt::Debug for CustomHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Names<'a>(&'a CustomHeaders);
        impl fmt::Debug for Names<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.names()).finish()
            }
        }
        f.debug_struct("CustomHeaders")
            .field("names", &Names(self))
            .finish_non_exhaustive()
    }
}

/// A JSON object, members in order.
impl Serialize for CustomHeaders {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// Reads a JSON object member by member, so a repeated name is seen (a map
/// type would keep only the last) and reported as `duplicate_name`.
impl<'de> Deserialize<'de> for CustomHeaders {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CustomHeaders;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CustomHeaders, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, String>()? {
                    if entries.len() > MAX_CUSTOM_HEADERS {
                        continue;
                    }
                    entries.push(entry);
                }
                CustomHeaders::new(entries).map_err(serde::de::Error::custom)
            }
        }
        d.deserialize_map(V)
    }
}
