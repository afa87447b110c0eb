//! The wire layer: the request bodies as received and the valid requests
//! they give ([`CreateDestinationRequest`] and [`NewDestination`], ...), the
//! response bodies ([`CreatedDestination`], [`DestinationView`], ...) and
//! [`ApiError`], the error answer of every operation. Field names are the
//! spec's, byte for byte.

mod error;
mod json;
mod request;
mod response;

pub use self::error::ApiError;
pub(crate) use self::json::KeySeed;
pub use self::request::{
    AttemptPageRequest, CreateDestinationRequest, DEFAULT_PAGE_LIMIT, DestinationPatch,
    ListAttemptsRequest, ListDestinationsRequest, MAX_PAGE_LIMIT, NewDestination, PageRequest,
    RotateSecretRequest, Rotation, UpdateDestinationRequest,
};
pub use self::response::{
    CreatedDestination, DeletedDestination, DestinationPage, DestinationView, RotatedSecret,
};
