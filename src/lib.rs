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

// The layers, lowest first; a module imports only from the ones above it in
// this list (`.ci/layers` checks the imports).
pub mod address;
mod byteset;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod delivery;
pub mod error;
pub mod id;
pub mod name;
pub mod ops;
pub mod policy;
pub mod record;
pub mod repo;
pub mod secret;
pub mod tenant;
pub mod time;
pub mod url;
pub mod wire;

// What a host uses every day; everything else is in the modules above.
pub use crate::error::{FieldError, ValidationErrors};
pub use crate::id::DestinationId;
pub use crate::name::DestinationName;
pub use crate::ops::{
    CreateOutcome, DeleteOutcome, GetOutcome, ListOutcome, OpError, RotateOutcome, UpdateOutcome,
    create, delete, get, list, rotate, update,
};
pub use crate::policy::HostPolicy;
pub use crate::record::{DestinationRecord, PreviousSecret};
#[cfg(feature = "memory")]
pub use crate::repo::MemoryRepo;
pub use crate::repo::{DestinationRepo, InsertOutcome, RemoveOutcome, ReplaceOutcome};
#[cfg(feature = "getrandom")]
pub use crate::secret::os_rng;
pub use crate::secret::{BearerSecret, KeyId, Keyring, SealedSecret, SealingKey, SecretDigest};
pub use crate::tenant::TenantId;
pub use crate::time::Timestamp;
pub use crate::url::DestinationUrl;
pub use crate::wire::{
    ApiError, CreateDestinationRequest, DeletedDestination, ListDestinationsRequest,
    RotateSecretRequest, UpdateDestinationRequest,
};

/// The `ipnet` version whose `IpNet` [`HostPolicy`] takes.
pub use ipnet;

/// The `rand_core` version this crate's `CryptoRng` bounds refer to.
pub use rand_core;
