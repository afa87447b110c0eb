//! The thin async operations over an [`Outbox`] a host calls from its routes
//! and its worker: [`publish`], [`send_test`], [`list_attempts`] and
//! [`finish_attempt`]. Like [`create`](crate::ops::create), every client outcome
//! is a value with `into_result`, and `Err` carries only the store's error.

use core::fmt;
use std::time::Duration;

use rand_core::CryptoRng;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::delivery::attempt::{AttemptMeta, AttemptOutcome, AttemptRecord};
use crate::delivery::classify::Classification;
use crate::delivery::disable::DisablePolicy;
use crate::delivery::event::{Event, EventType, Payload};
use crate::delivery::outbox::{AttemptReport, Claimed, EnqueueOutcome, Outbox, Target};
use crate::delivery::schedule::RetrySchedule;
use crate::delivery::step::next_step;
use crate::error::{Field, FieldError, ValidationErrors};
use crate::id::{AttemptId, DestinationId, EventId};
use crate::tenant::TenantId;
use crate::time::Timestamp;
use crate::wire::{ApiError, AttemptPageRequest, KeySeed, ListAttemptsRequest};

/// The type of the event [`send_test`] sends.
pub const TEST_EVENT_TYPE: &str = "destination.test";

const PUBLISH_FIELDS: &[&str; 2] = &["type", "payload"];
const PUBLISH_EXPECTED: &str = "an object with type and payload";

/// The body of `POST /v1/events` (publish), as received: `type` and
/// `payload`.
///
/// Deserializing checks only the shape, as for a create body: an object
/// whose members are `type` and `payload`, each at most once; unknown and
/// repeated members make the body malformed. Serde reads it only from
/// `serde_json`, since the payload is kept as raw JSON text. Values are
/// checked by [`validate`](Self::validate), every error at once.
///
/// ```
/// use prets_destinations::delivery::PublishRequest;
///
/// let req: PublishRequest = serde_json::from_str(r#"{"type":"invoice paid","payload":{"n":1}}"#)?;
/// let errors = req.validate().unwrap_err();
/// assert_eq!((errors.errors()[0].field().as_str(), errors.errors()[0].code()), ("type", "pattern"));
/// assert!(serde_json::from_str::<PublishRequest>(r#"{"type":"a","payload":1,"extra":0}"#).is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct PublishRequest {
    event_type: TypeMember,
    payload: Option<Box<RawValue>>,
}

#[derive(Clone, Debug, Default)]
enum TypeMember {
    #[default]
    Missing,
    String(String),
    Other,
}

impl PublishRequest {
    /// A request with this type and payload (JSON text).
    ///
    /// # Errors
    /// [`ValidationErrors`] naming `payload` (`invalid_json`) if `payload`
    /// is not one JSON value.
    pub fn new(event_type: impl Into<String>, payload: String) -> Result<Self, ValidationErrors> {
        let payload = Payload::from_json(payload)
            .map_err(|e| ValidationErrors::from_errors(vec![FieldError::from(e)]))?;
        let raw = RawValue::from_string(payload.get().to_owned()).map_err(|_| {
            ValidationErrors::from_errors(vec![FieldError::new(
                Field::Payload,
                "invalid_json",
                "payload must be a json value",
            )])
        })?;
        Ok(Self {
            event_type: TypeMember::String(event_type.into()),
            payload: Some(raw),
        })
    }

    /// The type and payload, or every field error (`type` then `payload`):
    /// `required`, `type` (not a string), the [`EventType`] codes, and
    /// `too_large` for a payload over 256 KiB.
    ///
    /// # Errors
    /// [`ValidationErrors`] naming `type` and/or `payload`.
    pub fn validate(self) -> Result<(EventType, Payload), ValidationErrors> {
        let mut errors = Vec::new();
        let event_type = match self.event_type {
            TypeMember::String(s) => EventType::try_from(s)
                .map_err(|e| errors.push(e.into()))
                .ok(),
            TypeMember::Missing => {
                errors.push(FieldError::new(Field::Type, "required", "type is required"));
                None
            }
            TypeMember::Other => {
                errors.push(FieldError::new(
                    Field::Type,
                    "type",
                    "type must be a string",
                ));
                None
            }
        };
        let payload = match self.payload {
            Some(raw) => Payload::from_raw(raw)
                .map_err(|e| errors.push(e.into()))
                .ok(),
            None => {
                errors.push(FieldError::new(
                    Field::Payload,
                    "required",
                    "payload is required",
                ));
                None
            }
        };
        match (event_type, payload) {
            (Some(t), Some(p)) => Ok((t, p)),
            _ => Err(ValidationErrors::from_errors(errors)),
        }
    }
}

impl<'de> Deserialize<'de> for PublishRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TypeValue;
        impl<'de> Visitor<'de> for TypeValue {
            type Value = TypeMember;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<TypeMember, E> {
                Ok(TypeMember::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<TypeMember, E> {
                Ok(TypeMember::String(v))
            }
            fn visit_unit<E>(self) -> Result<TypeMember, E> {
                Ok(TypeMember::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<TypeMember, E> {
                Ok(TypeMember::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<TypeMember, E> {
                Ok(TypeMember::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<TypeMember, E> {
                Ok(TypeMember::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<TypeMember, E> {
                Ok(TypeMember::Other)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<TypeMember, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(TypeMember::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TypeMember, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(TypeMember::Other)
            }
        }
        struct TypeSeed;
        impl<'de> de::DeserializeSeed<'de> for TypeSeed {
            type Value = TypeMember;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<TypeMember, D::Error> {
                d.deserialize_any(TypeValue)
            }
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PublishRequest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(PUBLISH_EXPECTED)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PublishRequest, A::Error> {
                let mut event_type = None;
                let mut payload = None;
                while let Some(i) = map.next_key_seed(KeySeed {
                    names: PUBLISH_FIELDS,
                    expected: PUBLISH_EXPECTED,
                })? {
                    if i == 0 {
                        if event_type.is_some() {
                            return Err(de::Error::duplicate_field("type"));
                        }
                        event_type = Some(map.next_value_seed(TypeSeed)?);
                    } else {
                        if payload.is_some() {
                            return Err(de::Error::duplicate_field("payload"));
                        }
                        payload = Some(map.next_value::<Box<RawValue>>()?);
                    }
                }
                Ok(PublishRequest {
                    event_type: event_type.unwrap_or_default(),
                    payload,
                })
            }
        }
        d.deserialize_struct("PublishRequest", PUBLISH_FIELDS, V)
    }
}

/// The `202` body of a publish or a test event:
/// `{"eventId","type","createdAt","destinations"}`, where `destinations` is
/// how many deliveries were enqueued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedEvent {
    /// The event's id, its `Webhook-Id`.
    pub event_id: EventId,
    /// The type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it was published, whole seconds.
    pub created_at: Timestamp,
    /// How many destinations it will be delivered to.
    pub destinations: usize,
}

impl PublishedEvent {
    fn of(event: &Event, destinations: usize) -> Self {
        Self {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            created_at: event.created_at,
            destinations,
        }
    }
}

/// The answer of [`publish`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum PublishOutcome {
    /// Stored with its deliveries (`202`).
    Accepted(PublishedEvent),
    /// `type` and/or `payload` are invalid; nothing stored (`422`).
    Invalid(ValidationErrors),
}

impl PublishOutcome {
    /// The `202` body, or the error to answer.
    ///
    /// # Errors
    /// [`ApiError::invalid`].
    pub fn into_result(self) -> Result<PublishedEvent, ApiError> {
        match self {
            Self::Accepted(e) => Ok(e),
            Self::Invalid(errors) => Err(ApiError::invalid(errors)),
        }
    }
}

/// Publishes an event for `tenant`: validates `request`, gives the event a
/// new id and `now` (whole seconds) as its creation time, and enqueues one
/// delivery per destination of the tenant enabled at this moment, in one
/// atomic write. The `202` answer comes only after that write.
///
/// # Errors
/// Only the store's.
pub async fn publish<O, G>(
    outbox: &O,
    tenant: &TenantId,
    request: PublishRequest,
    now: Timestamp,
    rng: &mut G,
) -> Result<PublishOutcome, O::Error>
where
    O: Outbox,
    G: CryptoRng + Send + ?Sized,
{
    let (event_type, payload) = match request.validate() {
        Ok(v) => v,
        Err(errors) => return Ok(PublishOutcome::Invalid(errors)),
    };
    let event = Event {
        event_id: EventId::generate(now, rng),
        event_type,
        created_at: now.truncated(),
        payload,
    };
    let destinations = match outbox.enqueue(tenant, &event, Target::AllEnabled).await? {
        EnqueueOutcome::Enqueued { deliveries } => deliveries,
        // Not answered for `AllEnabled`; nothing was stored.
        EnqueueOutcome::NotFound | EnqueueOutcome::Disabled => 0,
    };
    Ok(PublishOutcome::Accepted(PublishedEvent::of(
        &event,
        destinations,
    )))
}

/// The answer of [`send_test`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum TestOutcome {
    /// The test event is enqueued for the destination (`202`).
    Accepted(PublishedEvent),
    /// The tenant has no such destination (`404 not_found`).
    NotFound,
    /// The destination is disabled (`409 disabled`); nothing stored.
    Disabled,
}

impl TestOutcome {
    /// The `202` body, or the error to answer.
    ///
    /// # Errors
    /// [`ApiError::not_found`] or [`ApiError::disabled`].
    pub fn into_result(self) -> Result<PublishedEvent, ApiError> {
        match self {
            Self::Accepted(e) => Ok(e),
            Self::NotFound => Err(ApiError::not_found()),
            Self::Disabled => Err(ApiError::disabled()),
        }
    }
}

/// Sends a `destination.test` event, payload `{"destinationId":"whk_..."}`,
/// to the tenant's destination `id` only.
///
/// # Errors
/// Only the store's.
pub async fn send_test<O, G>(
    outbox: &O,
    tenant: &TenantId,
    id: DestinationId,
    now: Timestamp,
    rng: &mut G,
) -> Result<TestOutcome, O::Error>
where
    O: Outbox,
    G: CryptoRng + Send + ?Sized,
{
    let payload = RawValue::from_string(format!("{{\"destinationId\":\"{id}\"}}"))
        .ok()
        .and_then(|raw| Payload::from_raw(raw).ok());
    let (Ok(event_type), Some(payload)) = (TEST_EVENT_TYPE.parse::<EventType>(), payload) else {
        // Both are constant-shaped and valid; never reached.
        return Ok(TestOutcome::NotFound);
    };
    let event = Event {
        event_id: EventId::generate(now, rng),
        event_type,
        created_at: now.truncated(),
        payload,
    };
    Ok(
        match outbox.enqueue(tenant, &event, Target::Only(id)).await? {
            EnqueueOutcome::Enqueued { deliveries } => {
                TestOutcome::Accepted(PublishedEvent::of(&event, deliveries))
            }
            EnqueueOutcome::NotFound => TestOutcome::NotFound,
            EnqueueOutcome::Disabled => TestOutcome::Disabled,
        },
    )
}

/// One attempt as clients read it: `{"attemptId","eventId","attempt",
/// "startedAt","durationMs","outcome","responseStatus","error","nextAttemptAt"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    /// The attempt's id.
    pub attempt_id: AttemptId,
    /// The event delivered.
    pub event_id: EventId,
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
    /// What went wrong; `null` on success.
    pub error: Option<String>,
    /// When the next attempt is due, if there is one.
    pub next_attempt_at: Option<Timestamp>,
}

impl From<&AttemptRecord> for AttemptView {
    fn from(a: &AttemptRecord) -> Self {
        Self {
            attempt_id: a.attempt_id,
            event_id: a.event_id,
            attempt: a.attempt,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            outcome: a.outcome,
            response_status: a.response_status,
            error: a.error.clone(),
            next_attempt_at: a.next_attempt_at,
        }
    }
}

/// One page of attempts, newest first: `{"data","hasMore","nextCursor"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptPage {
    /// The attempts.
    pub data: Vec<AttemptView>,
    /// Whether older attempts follow.
    pub has_more: bool,
    /// The cursor of the next page (the last attempt's id) when there is one.
    pub next_cursor: Option<AttemptId>,
}

/// The answer of [`list_attempts`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum AttemptsOutcome {
    /// One page (`200`).
    Page(AttemptPage),
    /// The tenant has no such destination (`404 not_found`).
    NotFound,
    /// `limit` or `cursor` is invalid (`422`).
    Invalid(ValidationErrors),
}

impl AttemptsOutcome {
    /// The `200` body, or the error to answer.
    ///
    /// # Errors
    /// [`ApiError::not_found`] or [`ApiError::invalid`].
    pub fn into_result(self) -> Result<AttemptPage, ApiError> {
        match self {
            Self::Page(p) => Ok(p),
            Self::NotFound => Err(ApiError::not_found()),
            Self::Invalid(errors) => Err(ApiError::invalid(errors)),
        }
    }
}

/// One page of the delivery attempts of the tenant's destination `id`,
/// newest first: validates `request` (limit 1 to 100, default 20; cursor
/// from a previous page), checks the destination exists, and asks the store
/// for one more than the limit to know whether more follow.
///
/// # Errors
/// Only the store's.
pub async fn list_attempts<O: Outbox>(
    outbox: &O,
    tenant: &TenantId,
    id: DestinationId,
    request: ListAttemptsRequest,
) -> Result<AttemptsOutcome, O::Error> {
    let page: AttemptPageRequest = match request.validate() {
        Ok(p) => p,
        Err(errors) => return Ok(AttemptsOutcome::Invalid(errors)),
    };
    if outbox.get(tenant, id).await?.is_none() {
        return Ok(AttemptsOutcome::NotFound);
    }
    let limit = page.limit.max(1);
    let mut attempts = outbox
        .list_attempts(tenant, id, page.before, limit.saturating_add(1))
        .await?;
    let has_more = attempts.len() > limit;
    attempts.truncate(limit);
    let next_cursor = if has_more {
        attempts.last().map(|a| a.attempt_id)
    } else {
        None
    };
    Ok(AttemptsOutcome::Page(AttemptPage {
        data: attempts.iter().map(AttemptView::from).collect(),
        has_more,
        next_cursor,
    }))
}

/// A worker's report of one attempt of `claimed`, for
/// [`Outbox::complete`]: a new attempt id, the decision of [`next_step`]
/// (made without the destination's failure streak, which only the store
/// holds; the store applies `disable` to it in [`settle`](crate::delivery::settle)),
/// and the attempt record.
pub fn finish_attempt<G: CryptoRng + ?Sized>(
    claimed: &Claimed,
    classification: &Classification,
    started_at: Timestamp,
    duration: Duration,
    schedule: &RetrySchedule,
    disable: DisablePolicy,
    rng: &mut G,
) -> AttemptReport {
    let decision = next_step(
        classification,
        claimed.attempt,
        schedule,
        None,
        &disable,
        started_at,
        rng,
    );
    let meta = AttemptMeta {
        attempt_id: AttemptId::generate(started_at, rng),
        event_id: claimed.event.event_id,
        destination_id: claimed.lease.delivery.destination_id,
        attempt: claimed.attempt,
        started_at,
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
    };
    AttemptReport {
        attempt: AttemptRecord::new(meta, classification, &decision.step),
        next: decision.step,
        disable,
    }
}
