//! `AttemptRecord`: what an outbox keeps about each delivery attempt.

use core::fmt;
use core::str::FromStr;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::delivery::classify::{Classification, FailureCause};
use crate::delivery::event::{EventId, generate_ulid, parse_prefixed_ulid};
use crate::delivery::step::NextStep;
use crate::id::DestinationId;
use crate::time::Timestamp;

/// The prefix of every attempt id.
pub const ATTEMPT_ID_PREFIX: &str = "att_";

/// Most characters of an attempt's error text.
pub const ERROR_MAX_CHARS: usize = 200;

/// An attempt id: `att_` and a canonical ULID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AttemptId(Ulid);

/// A string is not `att_` followed by a canonical ULID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InvalidAttemptId(());

impl fmt::Display for InvalidAttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("attempt id must be att_ followed by a 26-character ulid")
    }
}

impl std::error::Error for InvalidAttemptId {}

impl AttemptId {
    /// A new id whose time part is `now` and whose random bits come from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(now: Timestamp, rng: &mut R) -> Self {
        Self(generate_ulid(now, rng))
    }
}

impl FromStr for AttemptId {
    type Err = InvalidAttemptId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_prefixed_ulid(s, ATTEMPT_ID_PREFIX)
            .map(Self)
            .ok_or(InvalidAttemptId(()))
    }
}

impl TryFrom<String> for AttemptId {
    type Error = InvalidAttemptId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<AttemptId> for String {
    fn from(id: AttemptId) -> Self {
        id.to_string()
    }
}

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ATTEMPT_ID_PREFIX}{}", self.0)
    }
}

impl fmt::Debug for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AttemptId({self})")
    }
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    /// A 2xx answer.
    Succeeded,
    /// Any other answer, or none.
    Failed,
    /// Not sent: an address was not allowed or there was none.
    Refused,
}

/// One attempt, as an outbox stores it and an API lists it. Holds no secret
/// and no response body: the error text is built from the status or the
/// transport failure only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    /// This attempt's id.
    pub attempt_id: AttemptId,
    /// The event delivered.
    pub event_id: EventId,
    /// The destination it went to.
    pub destination_id: DestinationId,
    /// Which attempt, from 1.
    pub attempt: u32,
    /// When it started.
    pub started_at: Timestamp,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The response status, if a response arrived.
    pub response_status: Option<u16>,
    /// What went wrong, at most [`ERROR_MAX_CHARS`] characters; `None` on
    /// success. A stored form with a longer text is refused on load.
    #[serde(deserialize_with = "bounded_error")]
    pub error: Option<String>,
    /// When the next attempt is due, if there is one.
    pub next_attempt_at: Option<Timestamp>,
}

/// What an attempt needs besides its classification and next step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptMeta {
    /// This attempt's id.
    pub attempt_id: AttemptId,
    /// The event delivered.
    pub event_id: EventId,
    /// The destination it went to.
    pub destination_id: DestinationId,
    /// Which attempt, from 1.
    pub attempt: u32,
    /// When it started.
    pub started_at: Timestamp,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
}

impl AttemptRecord {
    /// The record of an attempt that was classified as `classification` and
    /// led to `next`.
    #[must_use]
    pub fn new(meta: AttemptMeta, classification: &Classification, next: &NextStep) -> Self {
        let (outcome, response_status, error) = match *classification {
            Classification::Delivered { status } => (AttemptOutcome::Succeeded, Some(status), None),
            Classification::Gone => (
                AttemptOutcome::Failed,
                Some(410),
                Some("http status 410: destination gone".to_owned()),
            ),
            Classification::Failed(f) => {
                let outcome = match f.cause {
                    FailureCause::Transport(crate::delivery::classify::TransportError::Refused) => {
                        AttemptOutcome::Refused
                    }
                    _ => AttemptOutcome::Failed,
                };
                (
                    outcome,
                    f.cause.status(),
                    Some(bounded(&f.cause.to_string())),
                )
            }
        };
        let next_attempt_at = match *next {
            NextStep::RetryAt(t) => Some(t),
            _ => None,
        };
        Self {
            attempt_id: meta.attempt_id,
            event_id: meta.event_id,
            destination_id: meta.destination_id,
            attempt: meta.attempt,
            started_at: meta.started_at,
            duration_ms: meta.duration_ms,
            outcome,
            response_status,
            error,
            next_attempt_at,
        }
    }
}

fn bounded(text: &str) -> String {
    text.chars().take(ERROR_MAX_CHARS).collect()
}

fn bounded_error<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let error = Option::<String>::deserialize(d)?;
    match &error {
        Some(text) if text.chars().count() > ERROR_MAX_CHARS => Err(serde::de::Error::custom(
            "attempt error text is longer than 200 characters",
        )),
        _ => Ok(error),
    }
}
