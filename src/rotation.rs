//! Secret rotation with a grace window: the pure rotation step, the grace
//! period, and [`SecretSet`], the receiver-side verifier that accepts the
//! current secret and every unexpired previous one in constant time.

use core::fmt;
use core::time::Duration;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use subtle::{Choice, ConstantTimeEq as _, ConstantTimeLess as _};

use crate::error::{Field, field_error_type};
use crate::secret::bearer_token;
use crate::{
    BearerSecret, DestinationId, DestinationRecord, MAX_VERSION, SealedSecret, SealingKey,
    SecretDigest, TenantId, Timestamp,
};

/// Most previous secrets a record keeps. A rotation that would keep more
/// drops the oldest, whatever its deadline: with the current secret, at most
/// four secrets are ever valid for one destination.
pub const MAX_PREVIOUS_SECRETS: usize = 3;

/// The grace period of a rotation whose request does not choose one: 24
/// hours, as Svix does.
pub const DEFAULT_GRACE_PERIOD: GracePeriod = GracePeriod(86_400);

/// The longest grace period a rotation accepts: 7 days.
pub const MAX_GRACE_PERIOD: GracePeriod = GracePeriod(7 * 86_400);

/// A secret rotated out of a destination, still accepted until `expires_at`.
///
/// Sealed exactly as the current secret is (for the same tenant and id), so
/// deleting the record deletes it too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreviousSecret {
    /// The secret, sealed under the host's key for the record's tenant and id.
    pub sealed_secret: SealedSecret,
    /// SHA-256 of the secret's text.
    pub secret_digest: SecretDigest,
    /// The first instant at which the secret is no longer accepted (whole
    /// seconds).
    pub expires_at: Timestamp,
}

/// How long the secret a rotation replaces stays valid: whole seconds from 0
/// (revoked at once) to 7 days ([`MAX_GRACE_PERIOD`]); 24 hours by default.
///
/// ```
/// use prets_destinations::GracePeriod;
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

/// The pure rotation step's result: the record to store (with
/// [`replace`](crate::DestinationRepo::replace), expecting the old record's
/// version) and the one-time response.
#[derive(Debug)]
pub struct RotationPlan {
    /// The rotated record: new current secret, the old one first among the
    /// previous secrets (unless the grace period is 0), expired ones
    /// dropped, `updated_at` = now, version + 1.
    pub record: DestinationRecord,
    /// The response holding the new secret in cleartext; send it once.
    pub response: RotatedSecret,
}

impl DestinationRecord {
    /// Plans the rotation of this record's secret: mints a new secret from
    /// `rng`, seals it for `tenant` and the record's id under `sealer`, and
    /// moves the current secret to the front of the previous secrets with the
    /// deadline `now` (whole seconds) + `grace`. Previous secrets whose deadline
    /// is not after `now` are dropped, then all but the newest
    /// [`MAX_PREVIOUS_SECRETS`]. Older previous secrets keep their deadline
    /// only up to the new one: a rotation's grace period bounds every secret
    /// it leaves valid, so a grace period of 0 keeps nothing but the new
    /// secret. `updated_at` is `now`, or the record's own if that is later.
    /// Pure: no clock, no I/O.
    ///
    /// Returns `None` only if the version cannot grow (the record is at
    /// [`MAX_VERSION`]) or
    /// the deadline falls past year 9999.
    #[must_use]
    pub fn plan_rotation<R: CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        now: Timestamp,
        grace: GracePeriod,
        rng: &mut R,
        sealer: &SealingKey,
    ) -> Option<RotationPlan> {
        let at = now.truncated();
        let version = self.version.checked_add(1).filter(|v| *v <= MAX_VERSION)?;
        let expires_at = at.checked_add(grace.as_duration())?;
        // `updatedAt` never moves backwards, even if the host's clock does.
        let updated_at = at.max(self.updated_at);
        let secret = BearerSecret::from_rng(rng);
        let sealed_secret = sealer.seal(tenant, self.destination_id, &secret, rng);
        let mut previous_secrets = Vec::with_capacity(MAX_PREVIOUS_SECRETS);
        if expires_at > at {
            previous_secrets.push(PreviousSecret {
                sealed_secret: self.sealed_secret.clone(),
                secret_digest: self.secret_digest,
                expires_at,
            });
        }
        // Older secrets expire no later than the one just replaced: the
        // caller's deadline bounds every secret it leaves valid, so a grace
        // period of 0 revokes them all (the answer to a leaked secret).
        previous_secrets.extend(self.previous_secrets.iter().filter_map(|p| {
            let capped = p.expires_at.min(expires_at);
            (capped > at).then(|| PreviousSecret {
                expires_at: capped,
                ..p.clone()
            })
        }));
        previous_secrets.truncate(MAX_PREVIOUS_SECRETS);
        let record = Self {
            destination_id: self.destination_id,
            name: self.name.clone(),
            url: self.url.clone(),
            created_at: self.created_at,
            updated_at,
            sealed_secret,
            secret_digest: secret.digest(),
            version,
            previous_secrets,
            enabled: self.enabled,
            disabled_reason: self.disabled_reason,
        };
        let response = RotatedSecret {
            destination_id: self.destination_id,
            bearer_secret: secret,
            previous_secret_expires_at: (expires_at > at).then_some(expires_at),
            updated_at,
            version,
        };
        Some(RotationPlan { record, response })
    }

    /// The digests this record accepts at `now`: the current secret's and
    /// those of its unexpired previous secrets.
    #[must_use]
    pub fn secret_set(&self) -> SecretSet {
        SecretSet::from_record(self)
    }
}

/// The body of a successful rotation: the new secret in cleartext, once.
///
/// Like [`CreatedDestination`](crate::CreatedDestination), this is the one
/// place the new secret is serialized, and it is not `Clone`. Serializes as
/// `{"destinationId", "bearerSecret", "previousSecretExpiresAt", "updatedAt",
/// "version"}`; `previousSecretExpiresAt` is `null` when the grace period was
/// 0 (the old secret stopped working at once).
#[derive(Debug)]
pub struct RotatedSecret {
    destination_id: DestinationId,
    bearer_secret: BearerSecret,
    previous_secret_expires_at: Option<Timestamp>,
    updated_at: Timestamp,
    version: u64,
}

impl RotatedSecret {
    /// The destination's id.
    #[must_use]
    pub fn destination_id(&self) -> DestinationId {
        self.destination_id
    }
    /// The newly minted secret, now the one deliveries carry.
    #[must_use]
    pub fn bearer_secret(&self) -> &BearerSecret {
        &self.bearer_secret
    }
    /// Until when the replaced secret is still accepted, or `None` if it was
    /// revoked at once.
    #[must_use]
    pub fn previous_secret_expires_at(&self) -> Option<Timestamp> {
        self.previous_secret_expires_at
    }
    /// The destination's new `updatedAt`.
    #[must_use]
    pub fn updated_at(&self) -> Timestamp {
        self.updated_at
    }
    /// The destination's new version.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }
}

impl Serialize for RotatedSecret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut s = serializer.serialize_struct("RotatedSecret", 5)?;
        s.serialize_field("destinationId", &self.destination_id)?;
        s.serialize_field("bearerSecret", self.bearer_secret.expose_secret())?;
        s.serialize_field("previousSecretExpiresAt", &self.previous_secret_expires_at)?;
        s.serialize_field("updatedAt", &self.updated_at)?;
        s.serialize_field("version", &self.version)?;
        s.end()
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
/// use prets_destinations::{BearerSecret, SecretSet, Timestamp};
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
/// # Ok::<(), prets_destinations::SecretSetFull>(())
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

    /// The set a record accepts: its current secret and its previous secrets
    /// (at most [`MAX_PREVIOUS_SECRETS`], the newest, are taken; a record
    /// written by this crate never holds more).
    #[must_use]
    pub fn from_record(record: &DestinationRecord) -> Self {
        let mut set = Self::new(record.secret_digest);
        for (slot, previous) in set.slots.iter_mut().skip(1).zip(&record.previous_secrets) {
            *slot = Slot {
                digest: *previous.secret_digest.as_bytes(),
                expires_ms: previous.expires_at.unix_millis(),
                used: 1,
            };
        }
        set.len = 1 + record.previous_secrets.len().min(MAX_PREVIOUS_SECRETS);
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
