//! Publish: [`publish`], an event and its deliveries in one write.

use rand_core::CryptoRng;

use crate::delivery::{EnqueueOutcome, Event, Outbox, Target};
use crate::error::ValidationErrors;
use crate::id::EventId;
use crate::ops::create::SERVER_ID_ATTEMPTS;
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
    /// An `eventId` published before with the same type and payload: the
    /// first answer again (`202`), with nothing stored or queued.
    Replayed(PublishedEvent),
    /// The organization has an event of this `eventId` with another type or
    /// payload; nothing queued (`409 event_exists`).
    Exists(EventId),
    /// `type`, `payload` and/or `eventId` are invalid; nothing stored
    /// (`422`).
    Invalid(ValidationErrors),
    /// Its deliveries would take the organization past the store's quota of
    /// pending deliveries; nothing stored (`429 queue_full`).
    QueueFull,
}

impl PublishOutcome {
    /// The `202` body, or the error to answer.
    ///
    /// # Errors
    /// [`ApiError::EventExists`], [`ApiError::Invalid`],
    /// [`ApiError::QueueFull`].
    pub fn into_result(self) -> Result<PublishedEvent, ApiError> {
        match self {
            Self::Accepted(e) | Self::Replayed(e) => Ok(e),
            Self::Exists(existing) => Err(ApiError::EventExists { existing }),
            Self::Invalid(errors) => Err(ApiError::Invalid(errors)),
            Self::QueueFull => Err(ApiError::QueueFull),
        }
    }
}

/// Publishes an event for `tenant`: validates `request`, gives the event
/// the client's `eventId` or a new one and `now` (whole seconds) as its
/// creation time, and enqueues one delivery per destination of the tenant
/// enabled at this moment, in one atomic write. The `202` answer comes only
/// after that write.
///
/// An `eventId` the tenant already has (see [`Outbox::enqueue`]) queues
/// nothing: with the same `type` and the same payload bytes it is a retry,
/// [`PublishOutcome::Replayed`] with the first publish's body (its
/// `createdAt` and `destinations`); otherwise it is
/// [`PublishOutcome::Exists`].
///
/// Deliveries that would take the tenant past the store's quota of pending
/// deliveries are [`PublishOutcome::QueueFull`]: nothing is stored.
///
/// ```
/// # #[cfg(feature = "memory")] {
/// use pollster::block_on;
/// use prets_destinations::{MemoryRepo, PublishOutcome, PublishRequest, TenantId, Timestamp, publish};
/// use rand_core::UnwrapErr;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let repo = MemoryRepo::new();
/// let tenant: TenantId = "org_1".parse()?;
/// let mut rng = UnwrapErr(getrandom::SysRng);
/// let t0 = Timestamp::from_unix_seconds(1_700_000_000).ok_or("time")?;
/// let t1 = Timestamp::from_unix_seconds(1_700_000_060).ok_or("time")?;
/// let request = |payload: &str| {
///     PublishRequest::new("invoice.paid", payload.to_owned())
///         .map(|r| r.with_event_id("evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFG"))
/// };
/// let first = block_on(publish(&repo, &tenant, request("{\"n\":1}")?, t0, &mut rng))?
///     .into_result()?;
/// // A retry a minute later answers as the first publish did.
/// let again = block_on(publish(&repo, &tenant, request("{\"n\":1}")?, t1, &mut rng))?;
/// assert_eq!(again, PublishOutcome::Replayed(first.clone()));
/// // Another payload under the same id is refused.
/// let other = block_on(publish(&repo, &tenant, request("{\"n\":2}")?, t1, &mut rng))?;
/// assert_eq!(other, PublishOutcome::Exists(first.event_id));
/// # Ok(())
/// # }
/// # main().unwrap();
/// # }
/// ```
///
/// # Errors
/// [`OpError::Repo`] with the store's own error, and
/// [`OpError::IdCollisions`] if every minted id existed.
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
    let valid = match request.validate() {
        Ok(v) => v,
        Err(errors) => return Ok(PublishOutcome::Invalid(errors)),
    };
    let mut event = Event {
        event_id: valid
            .event_id
            .unwrap_or_else(|| EventId::generate(now, rng)),
        event_type: valid.event_type,
        created_at: now.truncated(),
        payload: valid.payload,
    };
    let mut attempts = 1;
    let outcome = loop {
        let outcome = outbox
            .enqueue(tenant, &event, Target::AllEnabled)
            .await
            .map_err(OpError::Repo)?;
        // A minted id that exists is minted again, as create does.
        match outcome {
            EnqueueOutcome::Exists(_) if valid.event_id.is_none() => {
                if attempts == SERVER_ID_ATTEMPTS {
                    return Err(OpError::IdCollisions { attempts });
                }
                attempts += 1;
                event.event_id = EventId::generate(now, rng);
            }
            outcome => break outcome,
        }
    };
    Ok(match outcome {
        EnqueueOutcome::Enqueued { deliveries } => {
            PublishOutcome::Accepted(PublishedEvent::of(&event, deliveries))
        }
        EnqueueOutcome::Exists(existing) if existing.same_content(&event) => {
            PublishOutcome::Replayed(PublishedEvent {
                created_at: existing.created_at,
                destinations: existing.destinations,
                ..PublishedEvent::of(&event, 0)
            })
        }
        EnqueueOutcome::Exists(_) => PublishOutcome::Exists(event.event_id),
        EnqueueOutcome::QueueFull => PublishOutcome::QueueFull,
        // Not answered for `AllEnabled`; nothing was stored.
        EnqueueOutcome::NotFound | EnqueueOutcome::Disabled => {
            PublishOutcome::Accepted(PublishedEvent::of(&event, 0))
        }
    })
}
