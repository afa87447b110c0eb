//! The wire layer: the request bodies as received and the valid requests
//! they give ([`CreateDestinationRequest`] and [`NewDestination`],
//! [`PublishRequest`], ...), the response bodies ([`CreatedDestination`],
//! [`DestinationView`], [`PublishedEvent`], [`AttemptPage`], ...) and
//! [`ApiError`], the error answer of every operation. Field names are the
//! spec's, byte for byte.

mod error;
mod json;
mod request;
mod response;

pub use self::error::{ApiError, ApiErrorKind};
pub use self::request::{
    AttemptPageRequest, CreateDestinationRequest, DEFAULT_PAGE_LIMIT, DestinationPatch,
    EventPageRequest, ListAttemptsRequest, ListDestinationsRequest, ListEventsRequest,
    MAX_PAGE_LIMIT, NewDestination, NewEvent, PageRequest, PublishRequest, ReceiverOptions,
    RecoverRequest, ResendRequest, RotateSecretRequest, Rotation, UpdateDestinationRequest,
};
pub use self::response::{
    AttemptPage, AttemptView, CreatedDestination, DeletedDestination, DeliveryView,
    DestinationPage, DestinationView, EventDetailView, EventPage, EventView, PublishedEvent,
    RecoveredEvents, RotatedSecret, UpdatedDestination,
};
