//! Publish: [`publish`], an event and its deliveries in one write.

use rand_core::CryptoRng;

use crate::delivery::{EnqueueOutcome, Event, Outbox, Target};
use crate::error::ValidationErrors;
use crate::id::EventId;
use crate::ops::error::OpError;
use crate::tenant::TenantId;
use crate::time::Timestamp;
use crate::wire::{ApiError, PublishRequest, PublishedEvent};

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
    /// [`ApiError::Invalid`].
    pub fn into_result(self) -> Result<PublishedEvent, ApiError> {
        match self {
            Self::Accepted(e) => Ok(e),
            Self::Invalid(errors) => Err(ApiError::Invalid(errors)),
        }
    }
}

/// Publishes an event for `tenant`: validates `request`, gives the event a
/// new id and `now` (whole seconds) as its creation time, and enqueues one
/// delivery per destination of the tenant enabled at this moment, in one
/// atomic write. The `202` answer comes only after that write.
///
/// # Errors
/// [`OpError::Repo`] with the store's own error.
pub async fn publish<O, G>(
    outbox: &O,
    tenant: &TenantId,
    request: PublishRequest,
    now: Timestamp,
    rng: &mut G,
) -> Result<PublishOutcome, OpError<O::Error>>
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
    let destinations = match outbox
        .enqueue(tenant, &event, Target::AllEnabled)
        .await
        .map_err(OpError::Repo)?
    {
        EnqueueOutcome::Enqueued { deliveries } => deliveries,
        // Not answered for `AllEnabled`; nothing was stored.
        EnqueueOutcome::NotFound | EnqueueOutcome::Disabled => 0,
    };
    Ok(PublishOutcome::Accepted(PublishedEvent::of(
        &event,
        destinations,
    )))
}
