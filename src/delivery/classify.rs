//! Classifying what came back from one delivery attempt.

use core::fmt;
use std::time::{Duration, UNIX_EPOCH};

use crate::time::Timestamp;

/// What the host's HTTP client saw for one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer<'a> {
    /// A response arrived: its status and its `Retry-After` header, if any
    /// (the raw value; the body is never looked at).
    Response {
        /// The status code.
        status: u16,
        /// The `Retry-After` header's value, as received.
        retry_after: Option<&'a [u8]>,
    },
    /// No response: why not.
    Failed(TransportError),
}

/// Why an attempt got no response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportError {
    /// The request or the connection took too long.
    Timeout,
    /// The name did not resolve.
    Dns,
    /// The TCP connection failed.
    Connect,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The delivery was refused before connecting: an address is not allowed
    /// by the [`HostPolicy`](crate::policy::HostPolicy), or the name had no address.
    Refused,
    /// The response could not be read (reset, malformed, too large).
    Protocol,
}

impl TransportError {
    /// A short stable description for attempt records.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Dns => "dns lookup failed",
            Self::Connect => "connection failed",
            Self::Tls => "tls handshake failed",
            Self::Refused => "refused: address not allowed",
            Self::Protocol => "invalid response",
        }
    }
}

/// What an answer means for the delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classification {
    /// Any 2xx: delivered.
    Delivered {
        /// The status code.
        status: u16,
    },
    /// `410 Gone`: the receiver asks never to be called again; the
    /// destination is disabled now with reason `gone`.
    Gone,
    /// Anything else: the attempt failed and is retried on the schedule.
    Failed(Failure),
}

/// A failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub cause: FailureCause,
    /// For a 429 or 503 with a valid `Retry-After`: how long from the
    /// attempt the receiver asked to wait (not yet capped; the schedule caps
    /// it at its longest step).
    pub retry_after: Option<Duration>,
}

/// What went wrong in a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureCause {
    /// A response with a status that is neither 2xx nor 410.
    Status(u16),
    /// No response.
    Transport(TransportError),
}

impl FailureCause {
    /// The response status, if there was a response.
    #[must_use]
    pub const fn status(self) -> Option<u16> {
        match self {
            Self::Status(s) => Some(s),
            Self::Transport(_) => None,
        }
    }
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Status(s @ 300..=399) => write!(f, "redirect {s} not followed"),
            Self::Status(s) => write!(f, "http status {s}"),
            Self::Transport(t) => f.write_str(t.as_str()),
        }
    }
}

/// Classifies the answer to an attempt made at `now`.
///
/// Any 2xx is delivered; 410 disables the destination; everything else,
/// redirects (never followed) and other 4xx included, is a failure retried
/// on the schedule. On 429 and 503 a `Retry-After` of delta-seconds or an
/// HTTP-date is read; a value that is neither, or a date in the past, is
/// ignored.
///
/// ```
/// use std::time::Duration;
/// use prets_destinations::Timestamp;
/// use prets_destinations::delivery::{Answer, Classification, classify};
///
/// let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
/// let answer = Answer::Response { status: 429, retry_after: Some(b"120") };
/// let Classification::Failed(f) = classify(answer, now) else { unreachable!() };
/// assert_eq!(f.retry_after, Some(Duration::from_secs(120)));
/// ```
#[must_use]
pub fn classify(answer: Answer<'_>, now: Timestamp) -> Classification {
    match answer {
        Answer::Response { status, .. } if (200..=299).contains(&status) => {
            Classification::Delivered { status }
        }
        Answer::Response { status: 410, .. } => Classification::Gone,
        Answer::Response {
            status,
            retry_after,
        } => {
            let retry_after = match status {
                429 | 503 => retry_after.and_then(|v| parse_retry_after(v, now)),
                _ => None,
            };
            Classification::Failed(Failure {
                cause: FailureCause::Status(status),
                retry_after,
            })
        }
        Answer::Failed(e) => Classification::Failed(Failure {
            cause: FailureCause::Transport(e),
            retry_after: None,
        }),
    }
}

/// Longest `Retry-After` text read; a longer one is ignored (the longest
/// HTTP-date form is 29 bytes).
const RETRY_AFTER_MAX_LEN: usize = 64;

/// `Retry-After = HTTP-date / delay-seconds` (RFC 9110 §10.2.3), after
/// optional whitespace: the delay from `now`, or `None` if unreadable or
/// already past.
pub(crate) fn parse_retry_after(value: &[u8], now: Timestamp) -> Option<Duration> {
    if value.len() > RETRY_AFTER_MAX_LEN {
        return None;
    }
    let text = core::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    if !text.is_empty() && text.bytes().all(|c| c.is_ascii_digit()) {
        // Huge delays saturate; the schedule caps them anyway.
        let secs = text.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    let at = at.duration_since(UNIX_EPOCH).ok()?;
    at.checked_sub(Duration::from_millis(now.unix_millis()))
        .filter(|d| !d.is_zero())
}
