//! The secrets layer: the bearer secret ([`BearerSecret`]), its digest
//! ([`SecretDigest`]), the Standard Webhooks signing secret
//! ([`SigningSecret`]) and the signatures made with it
//! ([`webhook_signature`]), sealing for storage ([`SealingKey`],
//! [`Keyring`], [`SealedSecret`], [`SealedSigningSecret`]) and what rotation
//! needs on the receiver's side ([`GracePeriod`], [`SecretSet`]).
//!
//! It knows values (ids, tenants, timestamps) and nothing above them: the
//! record layer builds on it.

mod bearer;
mod digest;
mod rotation;
mod seal;
mod signature;
mod signing;

pub use self::bearer::{BearerSecret, InvalidSecret, SECRET_PATTERN, SECRET_PREFIX};
#[cfg(feature = "getrandom")]
pub use self::bearer::{RandomnessError, os_rng};
pub use self::digest::{InvalidDigest, SecretDigest};
pub use self::rotation::{
    DEFAULT_GRACE_PERIOD, GracePeriod, InvalidGracePeriod, MAX_GRACE_PERIOD, MAX_PREVIOUS_SECRETS,
    SecretSet, SecretSetFull,
};
pub use self::seal::{
    DuplicateKeyId, InvalidSealedSecret, InvalidSealedSigningSecret, KeyId, Keyring, OpenError,
    SealedSecret, SealedSigningSecret, SealingKey,
};
pub use self::signature::{
    InvalidSigning, SIGNATURE_HEADER, SIGNATURE_VERSION, SignedMessage, Signing, webhook_signature,
};
pub use self::signing::{InvalidSigningSecret, SIGNING_SECRET_PATTERN, SigningSecret};
