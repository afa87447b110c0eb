//! The secrets layer: the bearer secret ([`BearerSecret`]), its digest
//! ([`SecretDigest`]), sealing for storage ([`SealingKey`], [`Keyring`],
//! [`SealedSecret`]) and what rotation needs on the receiver's side
//! ([`GracePeriod`], [`SecretSet`]).
//!
//! It knows values (ids, tenants, timestamps) and nothing above them: the
//! record layer builds on it.

mod bearer;
mod digest;
mod rotation;
mod seal;

pub use self::bearer::{BearerSecret, InvalidSecret, SECRET_PATTERN, SECRET_PREFIX};
#[cfg(feature = "getrandom")]
pub use self::bearer::{RandomnessError, os_rng};
pub use self::digest::{InvalidDigest, SecretDigest};
pub use self::rotation::{
    DEFAULT_GRACE_PERIOD, GracePeriod, InvalidGracePeriod, MAX_GRACE_PERIOD, MAX_PREVIOUS_SECRETS,
    SecretSet, SecretSetFull,
};
pub use self::seal::{
    DuplicateKeyId, InvalidSealedSecret, KeyId, Keyring, OpenError, SealedSecret, SealingKey,
};
