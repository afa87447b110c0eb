// The crate documentation is the README (its introduction and create example,
// kept in one place) followed by docs/crate.md.
#![doc = include_str!("../README.md")]
#![doc = include_str!("../docs/crate.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The examples of ARCHITECTURE.md run as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../ARCHITECTURE.md")]
struct ArchitectureDoctests;

// The modules are the layers, lowest first: a file imports only from its own
// layer or the ones before it, always by module path. `.ci/layers` checks
// that, and that no file imports through this root and no files import each
// other; ARCHITECTURE.md lists the files of each layer.

// Values.
mod byteset;
pub mod description;
pub mod error;
pub mod headers;
pub mod id;
pub mod limits;
pub mod metadata;
pub mod name;
pub mod tenant;
pub mod time;

// Policy, and the URL value with its create-time host check.
pub mod address;
pub mod policy;
pub mod url;

// Secrets.
pub mod secret;

// Record.
pub mod record;

// Storage seam.
pub mod repo;

// Delivery: events, attempts, the decisions after an attempt, the outbox seam.
pub mod delivery;

// Wire.
pub mod wire;

// Operations.
pub mod ops;

// Adapters.
#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "memory")]
pub mod memory;

// What a host uses every day; everything else is in the modules above.
pub use crate::error::{FieldError, ValidationErrors};
pub use crate::id::DestinationId;
#[cfg(feature = "memory")]
pub use crate::memory::MemoryRepo;
pub use crate::name::DestinationName;
pub use crate::ops::{
    AttemptsOutcome, CreateOutcome, DeleteOutcome, GetOutcome, ListOutcome, OpError,
    PublishOutcome, RotateOutcome, TestOutcome, UpdateOutcome, create, delete, get, list,
    list_attempts, publish, rotate, send_test, update,
};
pub use crate::policy::HostPolicy;
pub use crate::record::{DestinationRecord, PreviousSecret};
pub use crate::repo::{DestinationRepo, InsertOutcome, RemoveOutcome, ReplaceOutcome, StoreError};
#[cfg(feature = "getrandom")]
pub use crate::secret::os_rng;
pub use crate::secret::{BearerSecret, KeyId, Keyring, SealedSecret, SealingKey, SecretDigest};
pub use crate::tenant::TenantId;
pub use crate::time::Timestamp;
pub use crate::url::DestinationUrl;
pub use crate::wire::{
    ApiError, CreateDestinationRequest, DeletedDestination, ListAttemptsRequest,
    ListDestinationsRequest, PublishRequest, RotateSecretRequest, UpdateDestinationRequest,
};

/// The `ipnet` version whose `IpNet` [`HostPolicy`] takes.
pub use ipnet;

/// The `rand_core` version this crate's `CryptoRng` bounds refer to.
pub use rand_core;
