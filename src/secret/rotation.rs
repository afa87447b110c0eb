//! What rotation needs in the secrets layer: the grace period, and
//! [`SecretSet`], the receiver-side verifier that accepts the current secret
//! and every unexpired previous one in constant time.

use core::fmt;
use core::time::Duration;

use subtle::{Choice, ConstantTimeEq as _, ConstantTimeLess as _};

use crate::error::{Field, field_error_type};
use crate::secret::bearer::bearer_token;
use crate::secret::digest::SecretDigest;
use crate::time::Timestamp;

/// Most previous secrets a record keeps. A rotation that would keep more
/// drops the oldest, whatever its deadline: with the current secret, at most
/// four secrets are ever valid for one destination.
pub const MAX_PREVIOUS_SECRETS: usize = 3;

/// The grace period of a rotation whose request does not choose one: 24
/// hours, as Svix does.
pub const DEFAULT_GRACE_PERIOD: GracePeriod = GracePeriod(86_400);

/// The longest grace period a rotation accepts: 7 days.
pub const MAX_GRACE_PERIOD: GracePeriod = GracePeriod(7 * 86_400);

/// How long the secret a rotation replaces stays valid: whole seconds from 0
/// (revoked at once) to 7 days ([`MAX_GRACE_PERIOD`]); 24 hours by default.
///
/// ```
/// use prets_destinations::secret::GracePeriod;
///
/// assert_eq!(GracePeriod::default().as_secs(), 86_400);
/// assert!(GracePeriod::from_secs(0).is_ok());
/// assert_eq!(GracePeriod::from_secs(604_801).unwrap_err().code(), "out_of_range");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GracePeriod(u64);

field_error_type! {
    /// Why a number of seconds is not a [`GracePeriod`]: more than 7 days.
    InvalidGracePeriod, GracePeriodKind, Field::GracePeriodSeconds, {
        /// More than 604800 seconds.
        OutOfRange => ("out_of_range", "gracePeriodSeconds must be between 0 and 604800"),
    }
}

impl GracePeriod {
    /// `secs` seconds.
    ///
    /// # Errors
    /// [`InvalidGracePeriod`] (`out_of_range`) above 604800 (7 days).
    pub const fn from_secs(secs: u64) -> Result<Self, InvalidGracePeriod> {
        if secs <= MAX_GRACE_PERIOD.0 {
            Ok(Self(secs))
        } else {
            Err(InvalidGracePeriod::new(GracePeriodKind::OutOfRange))
        }
    }

    /// The period in seconds.
    #[must_use]
    pub const fn as_secs(self) -> u64 {
        self.0
    }

    /// The period as a [`Duration`].
    #[must_use]
    pub const fn as_duration(self) -> Duration {
        Duration::from_secs(self.0)
    }
}

impl Default for GracePeriod {
    fn default() -> Self {
        DEFAULT_GRACE_PERIOD
    }
}

/// One digest a [`SecretSet`] may accept, valid before `expires_ms`.
#[derive(Clone, Copy)]
struct Slot {
    digest: [u8; 32],
    expires_ms: u64,
    /// 1 for a filled slot, 0 for padding.
    used: u8,
}

const PADDING: Slot = Slot {
    digest: [0; 32],
    expires_ms: 0,
    used: 0,
};

const SLOTS: usize = 1 + MAX_PREVIOUS_SECRETS;

/// The secrets a receiver accepts for one destination: the current one and
/// up to [`MAX_PREVIOUS_SECRETS`] previous ones, each until its deadline, held
/// as digests only.
///
/// [`verify_authorization`](Self::verify_authorization) hashes the presented
/// token once and compares the hash with every slot, padding included, so its
/// work depends neither on which secret matched, nor on how many are set,
/// nor on how many bytes agree: no early exit.
///
/// ```
/// use prets_destinations::{BearerSecret, Timestamp};
/// use prets_destinations::secret::SecretSet;
/// use rand_core::UnwrapErr;
///
/// let mut rng = UnwrapErr(getrandom::SysRng);
/// let (old, new) = (BearerSecret::from_rng(&mut rng), BearerSecret::from_rng(&mut rng));
/// let deadline = Timestamp::from_unix_seconds(1_800_000_000).unwrap();
/// let set = SecretSet::new(new.digest()).with_previous(old.digest(), deadline)?;
///
/// let before = Timestamp::from_unix_seconds(1_799_999_999).unwrap();
/// assert!(set.verify_authorization(&*old.authorization_header(), before));
/// assert!(!set.verify_authorization(&*old.authorization_header(), deadline));
/// assert!(set.verify_authorization(&*new.authorization_header(), deadline));
/// # Ok::<(), prets_destinations::secret::SecretSetFull>(())
/// ```
#[derive(Clone)]
pub struct SecretSet {
    slots: [Slot; SLOTS],
    len: usize,
}

/// [`SecretSet::with_previous`] was given more than
/// [`MAX_PREVIOUS_SECRETS`] previous secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SecretSetFull(());

impl fmt::Display for SecretSetFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a secret set holds at most {MAX_PREVIOUS_SECRETS} previous secrets"
        )
    }
}

impl std::error::Error for SecretSetFull {}

impl SecretSet {
    /// A set accepting only the secret whose digest is `current`, forever.
    #[must_use]
    pub fn new(current: SecretDigest) -> Self {
        let mut slots = [PADDING; SLOTS];
        slots[0] = Slot {
            digest: *current.as_bytes(),
            expires_ms: u64::MAX,
            used: 1,
        };
        Self { slots, len: 1 }
    }

    /// The same set also accepting the secret whose digest is `digest`
    /// before `expires_at`.
    ///
    /// # Errors
    /// [`SecretSetFull`] if the set already holds
    /// [`MAX_PREVIOUS_SECRETS`] previous secrets.
    pub fn with_previous(
        mut self,
        digest: SecretDigest,
        expires_at: Timestamp,
    ) -> Result<Self, SecretSetFull> {
        let slot = self.slots.get_mut(self.len).ok_or(SecretSetFull(()))?;
        *slot = Slot {
            digest: *digest.as_bytes(),
            expires_ms: expires_at.unix_millis(),
            used: 1,
        };
        self.len += 1;
        Ok(self)
    }

    /// The set of `current` and the first [`MAX_PREVIOUS_SECRETS`] of
    /// `previous` (digest, deadline), in order.
    pub(crate) fn from_digests<'a>(
        current: SecretDigest,
        previous: impl IntoIterator<Item = (&'a SecretDigest, Timestamp)>,
    ) -> Self {
        let mut set = Self::new(current);
        for (slot, (digest, expires_at)) in set.slots.iter_mut().skip(1).zip(previous) {
            *slot = Slot {
                digest: *digest.as_bytes(),
                expires_ms: expires_at.unix_millis(),
                used: 1,
            };
            set.len += 1;
        }
        set
    }

    /// How many secrets the set holds, expired ones included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: a set holds at least the current secret.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `header`, an `Authorization` header value, presents the
    /// current secret or a previous one whose deadline is after `now`.
    ///
    /// Accepts the header forms of
    /// [`SecretDigest::verify_authorization`]. A header of the right shape is
    /// hashed once, and the hash and `now` are compared with all four slots
    /// (padding included) in constant time, results combined without
    /// branching; only a malformed header returns early.
    #[must_use]
    pub fn verify_authorization(&self, header: impl AsRef<[u8]>, now: Timestamp) -> bool {
        let Some(token) = bearer_token(header.as_ref()) else {
            return false;
        };
        let presented = SecretDigest::of_text(token);
        let now = now.unix_millis();
        let mut accepted = Choice::from(0);
        for slot in &self.slots {
            let same = presented.as_bytes().ct_eq(&slot.digest);
            let live = now.ct_lt(&slot.expires_ms);
            accepted |= same & live & Choice::from(slot.used);
        }
        bool::from(accepted)
    }
}

impl fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretSet")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}
