//! `AttemptRecord`: what an outbox keeps about each delivery attempt.

use serde::{Deserialize, Serialize};

use crate::delivery::classify::{Classification, FailureCause};
use crate::delivery::step::NextStep;
use crate::id::{AttemptId, DestinationId, EventId};
use crate::time::Timestamp;

/// Most characters of an attempt's error text.
pub const ERROR_MAX_CHARS: usize = 200;

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
    /// Whether the delivery was queued by an operator (a resend or a
    /// recover: see [`EventLog`](crate::delivery::EventLog)) rather than by
    /// a publish. Set by the store when it records the attempt.
    #[serde(default)]
    pub manual: bool,
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
            manual: false,
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
