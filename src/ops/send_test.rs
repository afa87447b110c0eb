//! Test events: [`send_test`], a `destination.test` event to one destination.

use rand_core::CryptoRng;
use serde_json::value::RawValue;

use crate::delivery::{EnqueueOutcome, Event, EventType, Outbox, Payload, Target};
use crate::id::{DestinationId, EventId};
use crate::ops::create::SERVER_ID_ATTEMPTS;
use crate::ops::error::OpError;
use crate::tenant::TenantId;
use crate::time::Timestamp;
use crate::wire::{ApiError, PublishedEvent};

/// The type of the event [`send_test`] sends.
pub const TEST_EVENT_TYPE: &str = "destination.test";

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
    /// The organization has the most pending deliveries its store's quota
    /// allows (`429 queue_full`); nothing stored.
    QueueFull,
}

impl TestOutcome {
    /// The `202` body, or the error to answer.
    ///
    /// # Errors
    /// [`ApiError::NotFound`], [`ApiError::Disabled`] or
    /// [`ApiError::QueueFull`].
    pub fn into_result(self) -> Result<PublishedEvent, ApiError> {
        match self {
            Self::Accepted(e) => Ok(e),
            Self::NotFound => Err(ApiError::NotFound),
            Self::Disabled => Err(ApiError::Disabled),
            Self::QueueFull => Err(ApiError::QueueFull),
        }
    }
}

/// Sends a `destination.test` event, payload `{"destinationId":"whk_..."}`,
/// to the tenant's destination `id` only.
///
/// # Errors
/// [`OpError::Repo`] with the store's own error, and
/// [`OpError::IdCollisions`] if every minted id existed.
pub async fn send_test<O, G>(
    outbox: &O,
    tenant: &TenantId,
    id: DestinationId,
    now: Timestamp,
    rng: &mut G,
) -> Result<TestOutcome, OpError<O::Error>>
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
    let mut event = Event {
        event_id: EventId::generate(now, rng),
        event_type,
        created_at: now.truncated(),
        payload,
    };
    for _ in 0..SERVER_ID_ATTEMPTS {
        match outbox
            .enqueue(tenant, &event, Target::Only(id))
            .await
            .map_err(OpError::Repo)?
        {
            EnqueueOutcome::Enqueued { deliveries } => {
                return Ok(TestOutcome::Accepted(PublishedEvent::of(
                    &event, deliveries,
                )));
            }
            EnqueueOutcome::NotFound => return Ok(TestOutcome::NotFound),
            EnqueueOutcome::Disabled => return Ok(TestOutcome::Disabled),
            EnqueueOutcome::QueueFull => return Ok(TestOutcome::QueueFull),
            // A minted id that exists is minted again, as create does.
            EnqueueOutcome::Exists(_) => event.event_id = EventId::generate(now, rng),
        }
    }
    Err(OpError::IdCollisions {
        attempts: SERVER_ID_ATTEMPTS,
    })
}
