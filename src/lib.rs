#![doc = include_str!("../docs/crate.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The examples of the README and of ARCHITECTURE.md run as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
#[cfg(doctest)]
#[doc = include_str!("../ARCHITECTURE.md")]
struct ArchitectureDoctests;

mod address;
mod byteset;
#[cfg(feature = "conformance")]
pub mod conformance;
mod create;
pub mod delivery;
mod error;
mod host;
mod id;
mod lifecycle;
#[cfg(feature = "memory")]
mod memory;
mod name;
mod policy;
mod repo;
mod rotation;
mod seal;
mod secret;
mod time;
mod url;
mod wire;

pub use crate::address::is_public_address;
pub use crate::create::{CreatePlan, DestinationRecord, IdSource, plan_create};
pub use crate::delivery::{DeliveryRequest, Event, NextStep, RetrySchedule, plan_attempt};
pub use crate::error::{Field, FieldError, ValidationErrors};
pub use crate::id::{DestinationId, ID_PATTERN, ID_PREFIX, InvalidDestinationId};
pub use crate::lifecycle::{
    DeleteOutcome, GetOutcome, ListOutcome, MAX_VERSION, RotateOutcome, UpdateOutcome,
    VERSIONLESS_ATTEMPTS, delete, get, list, list_page, rotate, update,
};
#[cfg(feature = "memory")]
pub use crate::memory::MemoryRepo;
pub use crate::name::{DestinationName, InvalidName, NAME_MAX_CHARS};
pub use crate::policy::HostPolicy;
pub use crate::repo::{
    CreateError, CreateOutcome, DestinationRepo, InsertOutcome, InvalidTenantId, RemoveOutcome,
    ReplaceOutcome, SERVER_ID_ATTEMPTS, TENANT_ID_MAX_LEN, TenantId, create,
};
pub use crate::rotation::{
    DEFAULT_GRACE_PERIOD, GracePeriod, InvalidGracePeriod, MAX_GRACE_PERIOD, MAX_PREVIOUS_SECRETS,
    PreviousSecret, RotatedSecret, RotationPlan, SecretSet, SecretSetFull,
};
pub use crate::seal::{
    DuplicateKeyId, InvalidSealedSecret, KeyId, Keyring, OpenError, SealedSecret, SealingKey,
};
pub use crate::secret::{
    BearerSecret, InvalidDigest, InvalidSecret, SECRET_PATTERN, SECRET_PREFIX, SecretDigest,
};
#[cfg(feature = "getrandom")]
pub use crate::secret::{RandomnessError, os_rng};
pub use crate::time::{InvalidTimestamp, Timestamp};
pub use crate::url::{DestinationUrl, InvalidUrl, URL_MAX_CHARS, URL_PATTERN};
pub use crate::wire::{
    ApiError, CreateDestinationRequest, CreatedDestination, DEFAULT_PAGE_LIMIT, DeletedDestination,
    DestinationPage, DestinationPatch, DestinationView, ListDestinationsRequest, MAX_PAGE_LIMIT,
    NewDestination, PageRequest, RotateSecretRequest, Rotation, UpdateDestinationRequest,
};

/// The `ipnet` version whose `IpNet` [`HostPolicy`] takes.
pub use ipnet;

/// The `rand_core` version this crate's `CryptoRng` bounds refer to.
pub use rand_core;
