//! The record layer: [`DestinationRecord`], what a host stores for one
//! destination, with its [`PreviousSecret`]s and, when it is disabled, its
//! [`DisabledReason`]; and what can be read from a record (the secrets it
//! accepts, the header its deliveries carry).

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::delivery::filter::FilterTypes;
use crate::description::Description;
use crate::headers::CustomHeaders;
use crate::id::DestinationId;
use crate::metadata::Metadata;
use crate::name::DestinationName;
use crate::secret::{
    Keyring, OpenError, SealedSecret, SealedSigningSecret, SecretDigest, SecretSet, SignedMessage,
    Signing,
};
use crate::tenant::TenantId;
use crate::time::Timestamp;
use crate::url::DestinationUrl;

/// What a host stores for one destination of a tenant. It never holds the
/// cleartext secret: only the secret sealed for its tenant and id, and the
/// secret's digest.
///
/// The tenant is not a field: the repo keys records by (tenant, id), and the
/// sealed secret opens only for the tenant it was sealed for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationRecord {
    /// The id, unique within the organization.
    pub destination_id: DestinationId,
    /// The label, as sent.
    pub name: DestinationName,
    /// The endpoint, as sent. Loaded with [`DestinationUrl::from_stored`]:
    /// a host-policy change never makes a stored record unreadable.
    #[serde(deserialize_with = "crate::url::deserialize_stored")]
    pub url: DestinationUrl,
    /// Creation time, whole seconds.
    pub created_at: Timestamp,
    /// Time of the last change, whole seconds.
    pub updated_at: Timestamp,
    /// The current secret, sealed under the host's key; opened only by
    /// [`Keyring::authorization_header`](crate::secret::Keyring::authorization_header).
    pub sealed_secret: SealedSecret,
    /// SHA-256 of the current secret's text.
    pub secret_digest: SecretDigest,
    /// The record's version: 1 when created, one more on every change
    /// (update or rotation). Repos compare it in
    /// [`replace`](crate::repo::DestinationRepo::replace) so that concurrent
    /// changes never silently overwrite each other.
    pub version: u64,
    /// Secrets rotated out but still accepted until their deadline, newest
    /// first, at most [`MAX_PREVIOUS_SECRETS`](crate::secret::MAX_PREVIOUS_SECRETS).
    /// Never used for delivery, which always uses the current secret.
    /// Missing in a stored form means none (records stored before rotation
    /// existed).
    #[serde(default)]
    pub previous_secrets: Vec<PreviousSecret>,
    /// Whether deliveries go to it: `true` when created. Missing in a stored
    /// form means `true` (records stored before destinations could be
    /// disabled). Always `disabled_reason.is_none()`.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Why it is disabled (`manual`, `gone` or `failing`); `None` exactly
    /// when `enabled`. Missing in a stored form means `None`.
    #[serde(default)]
    pub disabled_reason: Option<DisabledReason>,
    /// The Standard Webhooks signing secret, sealed like the bearer secret
    /// (for the same tenant and id): `Some` exactly when the destination's
    /// [`signing`](Self::signing) is `standard-webhooks`. Missing in a
    /// stored form means `None` (bearer only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<SealedSigningSecret>,
    /// The event types it receives; empty means every event.
    #[serde(default, skip_serializing_if = "FilterTypes::is_empty")]
    pub filter_types: FilterTypes,
    /// The custom headers every delivery carries.
    #[serde(default, skip_serializing_if = "CustomHeaders::is_empty")]
    pub headers: CustomHeaders,
    /// Free text, stored and returned, never interpreted; empty means none.
    #[serde(default, skip_serializing_if = "Description::is_empty")]
    pub description: Description,
    /// The client's string-to-string map, stored and returned, never
    /// interpreted.
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

const fn enabled_by_default() -> bool {
    true
}

impl DestinationRecord {
    /// How its deliveries are signed: `standard-webhooks` exactly when it
    /// holds a signing secret.
    #[must_use]
    pub const fn signing(&self) -> Signing {
        if self.signing_secret.is_some() {
            Signing::StandardWebhooks
        } else {
            Signing::Bearer
        }
    }

    /// The record disabled for `reason` at `now`: `enabled` false,
    /// `disabled_reason` set, `updated_at` = `now` (whole seconds, never
    /// before the last change), version + 1. `None` only if the version
    /// cannot grow (the record is at [`MAX_VERSION`]).
    #[must_use]
    pub fn disabled(&self, reason: DisabledReason, now: Timestamp) -> Option<Self> {
        self.with_state(Some(reason), now)
    }

    /// The record enabled at `now`: `enabled` true, the reason cleared,
    /// `updated_at` and version moved as for [`disabled`](Self::disabled).
    #[must_use]
    pub fn reenabled(&self, now: Timestamp) -> Option<Self> {
        self.with_state(None, now)
    }

    fn with_state(&self, reason: Option<DisabledReason>, now: Timestamp) -> Option<Self> {
        Some(Self {
            enabled: reason.is_none(),
            disabled_reason: reason,
            updated_at: now.truncated().max(self.updated_at),
            version: self.version.checked_add(1).filter(|v| *v <= MAX_VERSION)?,
            ..self.clone()
        })
    }
}

/// Why a destination is disabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DisabledReason {
    /// Someone turned it off.
    Manual,
    /// The receiver answered `410 Gone`.
    Gone,
    /// It failed continuously for longer than the disable threshold.
    Failing,
}

impl DisabledReason {
    /// Every reason, in declaration order.
    pub const ALL: [Self; 3] = [Self::Manual, Self::Gone, Self::Failing];

    /// The reason whose wire form is `text` (as stored), if any.
    #[must_use]
    pub fn from_wire(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// The wire form: `manual`, `gone` or `failing`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Gone => "gone",
            Self::Failing => "failing",
        }
    }
}

/// The largest version a destination reaches: 2^63 − 1, so that every
/// version fits a signed 64-bit column. A request naming a version outside
/// `1..=MAX_VERSION` is refused (`422 out_of_range`); a destination at this
/// version can no longer be updated or rotated
/// ([`UpdateOutcome::VersionExhausted`](crate::ops::UpdateOutcome::VersionExhausted)); delete and recreate it. Reaching it
/// takes 2^63 − 2 changes, so in practice it never happens.
pub const MAX_VERSION: u64 = i64::MAX.unsigned_abs();

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
    /// The signing secret rotated out with it, when the destination signed
    /// its deliveries then: until `expires_at`, deliveries carry a signature
    /// under it too. Missing in a stored form means `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_signing_secret: Option<SealedSigningSecret>,
}

impl DestinationRecord {
    /// The digests this record accepts at `now`: the current secret's and
    /// those of its unexpired previous secrets.
    #[must_use]
    pub fn secret_set(&self) -> SecretSet {
        SecretSet::from_record(self)
    }
}

impl SecretSet {
    /// The set a record accepts: its current secret and its previous secrets
    /// (at most [`MAX_PREVIOUS_SECRETS`](crate::secret::MAX_PREVIOUS_SECRETS), the newest, are taken; a record
    /// written by this crate never holds more).
    #[must_use]
    pub fn from_record(record: &DestinationRecord) -> Self {
        Self::from_digests(
            record.secret_digest,
            record
                .previous_secrets
                .iter()
                .map(|p| (&p.secret_digest, p.expires_at)),
        )
    }
}

impl Keyring {
    /// Opens the sealed secret of `tenant`'s `record` and returns the value of
    /// the `Authorization` header its deliveries carry, `Bearer whsec_...`,
    /// wiped on drop.
    ///
    /// Always the record's current (newest) secret: previous secrets kept
    /// after a rotation are only ever accepted by receivers
    /// ([`SecretSet`]), never sent.
    ///
    /// # Errors
    /// [`OpenError`] if no key of the keyring has the record's key id
    /// (`unknown_key`), if the sealed secret does not authenticate for this
    /// tenant and destination id (tampered with, or copied from another
    /// record: `unauthentic`), or if it opens to a secret whose digest is not
    /// the record's `secret_digest` (`digest_mismatch`).
    pub fn authorization_header(
        &self,
        tenant: &TenantId,
        record: &DestinationRecord,
    ) -> Result<Zeroizing<String>, OpenError> {
        let secret = self.open(tenant, record.destination_id, &record.sealed_secret)?;
        if secret.digest() != record.secret_digest {
            return Err(OpenError::digest_mismatch());
        }
        Ok(secret.authorization_header())
    }

    /// The `webhook-signature` header value of a delivery of `message` to
    /// `tenant`'s `record` at `now`, or `None` when the record does not sign
    /// (`bearer`): a signature under the current signing secret, then one
    /// under each signing secret of a previous secret still in its grace
    /// period at `now`, newest first (`v1,<new> v1,<old>`).
    ///
    /// # Errors
    /// [`OpenError`] if a sealed signing secret does not open (see
    /// [`Keyring::webhook_signature`]).
    pub fn record_signature(
        &self,
        tenant: &TenantId,
        record: &DestinationRecord,
        message: &SignedMessage<'_>,
        now: Timestamp,
    ) -> Result<Option<String>, OpenError> {
        let Some(current) = &record.signing_secret else {
            return Ok(None);
        };
        let previous = record
            .previous_secrets
            .iter()
            .filter(|p| p.expires_at > now)
            .filter_map(|p| p.sealed_signing_secret.as_ref());
        self.webhook_signature(tenant, record.destination_id, current, previous, message)
            .map(Some)
    }
}
