//! Rotate: the pure step [`Rotation::plan`] and the async [`rotate`], a new
//! secret with the old one valid for a grace period.

use rand_core::CryptoRng;

use crate::error::ValidationErrors;
use crate::id::DestinationId;
use crate::ops::error::OpError;
use crate::ops::update::VERSIONLESS_ATTEMPTS;
use crate::record::{DestinationRecord, MAX_VERSION, PreviousSecret};
use crate::repo::{DestinationRepo, ReplaceOutcome};
use crate::secret::{BearerSecret, MAX_PREVIOUS_SECRETS, SealingKey, SigningSecret};
use crate::tenant::TenantId;
use crate::time::Timestamp;
use crate::wire::{ApiError, RotateSecretRequest, RotatedSecret, Rotation};

/// The pure rotation step's result: the record to store (with
/// [`replace`](crate::repo::DestinationRepo::replace), expecting the old record's
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

impl Rotation {
    /// Plans the rotation of `record`'s secret: mints a new secret from
    /// `rng`, seals it for `tenant` and the record's id under `sealer`, and
    /// moves the current secret to the front of the previous secrets with the
    /// deadline `now` (whole seconds) + the grace period. Previous secrets whose deadline
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
    pub fn plan<R: CryptoRng + ?Sized>(
        &self,
        record: &DestinationRecord,
        tenant: &TenantId,
        now: Timestamp,
        rng: &mut R,
        sealer: &SealingKey,
    ) -> Option<RotationPlan> {
        let at = now.truncated();
        let version = record
            .version
            .checked_add(1)
            .filter(|v| *v <= MAX_VERSION)?;
        let expires_at = at.checked_add(self.grace_period.as_duration())?;
        // `updatedAt` never moves backwards, even if the host's clock does.
        let updated_at = at.max(record.updated_at);
        let secret = BearerSecret::from_rng(rng);
        let sealed_secret = sealer.seal(tenant, record.destination_id, &secret, rng);
        // A destination that signs gets a new signing secret too; the one
        // replaced goes with the replaced bearer secret, on its deadline.
        let signing_secret = record
            .signing_secret
            .is_some()
            .then(|| SigningSecret::from_rng(rng));
        let sealed_signing_secret = signing_secret
            .as_ref()
            .map(|s| sealer.seal_signing_secret(tenant, record.destination_id, s, rng));
        let mut previous_secrets = Vec::with_capacity(MAX_PREVIOUS_SECRETS);
        if expires_at > at {
            previous_secrets.push(PreviousSecret {
                sealed_secret: record.sealed_secret.clone(),
                secret_digest: record.secret_digest,
                expires_at,
                sealed_signing_secret: record.signing_secret.clone(),
            });
        }
        // Older secrets expire no later than the one just replaced: the
        // caller's deadline bounds every secret it leaves valid, so a grace
        // period of 0 revokes them all (the answer to a leaked secret).
        previous_secrets.extend(record.previous_secrets.iter().filter_map(|p| {
            let capped = p.expires_at.min(expires_at);
            (capped > at).then(|| PreviousSecret {
                expires_at: capped,
                ..p.clone()
            })
        }));
        previous_secrets.truncate(MAX_PREVIOUS_SECRETS);
        let next = DestinationRecord {
            updated_at,
            sealed_secret,
            secret_digest: secret.digest(),
            version,
            previous_secrets,
            signing_secret: sealed_signing_secret,
            ..record.clone()
        };
        let response = RotatedSecret {
            destination_id: record.destination_id,
            bearer_secret: secret,
            signing_secret,
            previous_secret_expires_at: (expires_at > at).then_some(expires_at),
            updated_at,
            version,
        };
        Some(RotationPlan {
            record: next,
            response,
        })
    }
}

/// The answer of [`rotate`].
#[derive(Debug)]
#[must_use]
pub enum RotateOutcome {
    /// Rotated; send this body, with the new secret, once (`200`).
    Rotated(RotatedSecret),
    /// The organization has no destination with that id (`404 not_found`).
    NotFound,
    /// The request named a `version` and the destination is not at it, or
    /// changed between the read and the write; nothing was written and the
    /// minted secret is gone (`409 version_mismatch`).
    VersionMismatch,
    /// A rotation without `version` lost the compare-and-swap to other writers
    /// [`VERSIONLESS_ATTEMPTS`] times in a row; nothing was written and
    /// every minted secret is gone (`503 contention`). Retry later.
    Contention,
    /// The destination is at [`MAX_VERSION`] and cannot change any more, or
    /// (unreachable in practice) the grace deadline falls past year 9999;
    /// nothing was written (`409 version_exhausted`).
    VersionExhausted,
    /// `gracePeriodSeconds` is invalid (`422`).
    Invalid(ValidationErrors),
}

impl RotateOutcome {
    /// The `200` body, or the error to answer.
    ///
    /// # Errors
    /// [`ApiError::NotFound`], [`ApiError::VersionMismatch`],
    /// [`ApiError::Contention`], [`ApiError::VersionExhausted`] or
    /// [`ApiError::Invalid`].
    pub fn into_result(self) -> Result<RotatedSecret, ApiError> {
        match self {
            Self::Rotated(rotated) => Ok(rotated),
            Self::NotFound => Err(ApiError::NotFound),
            Self::VersionMismatch => Err(ApiError::VersionMismatch),
            Self::Contention => Err(ApiError::Contention),
            Self::VersionExhausted => Err(ApiError::VersionExhausted),
            Self::Invalid(errors) => Err(ApiError::Invalid(errors)),
        }
    }
}

/// Rotates the secret of the tenant's destination `id`: mints a new secret,
/// seals it under `sealer` and makes it the current one (deliveries carry it
/// from now on); the replaced secret stays valid for the request's grace
/// period (0 to 7 days, default 24 hours), expired previous secrets are
/// dropped and at most [`MAX_PREVIOUS_SECRETS`](crate::secret::MAX_PREVIOUS_SECRETS)
/// are kept. See [`Rotation::plan`].
///
/// The new secret leaves only in [`RotateOutcome::Rotated`], after the repo
/// stored it. Like [`update`](crate::ops::update()): with a `version` in the request, another
/// stored version or a change landing between the read and the write gives
/// [`RotateOutcome::VersionMismatch`]; without one, such a change makes it
/// read again and plan again (with a new secret; the unstored one is dropped,
/// and wiped), up to [`VERSIONLESS_ATTEMPTS`] rounds, then
/// [`RotateOutcome::Contention`]. Each rotation applies at most once, and
/// only the secret stored is returned.
///
/// # Errors
/// [`OpError::Repo`] with the repo's own error.
pub async fn rotate<R, G>(
    repo: &R,
    tenant: &TenantId,
    id: DestinationId,
    request: RotateSecretRequest,
    now: Timestamp,
    rng: &mut G,
    sealer: &SealingKey,
) -> Result<RotateOutcome, OpError<R::Error>>
where
    R: DestinationRepo,
    G: CryptoRng + Send + ?Sized,
{
    let rotation = match request.validate() {
        Ok(rotation) => rotation,
        Err(errors) => return Ok(RotateOutcome::Invalid(errors)),
    };
    for _ in 0..VERSIONLESS_ATTEMPTS {
        let Some(current) = repo.get(tenant, id).await.map_err(OpError::Repo)? else {
            return Ok(RotateOutcome::NotFound);
        };
        if rotation
            .expected_version
            .is_some_and(|v| v != current.version)
        {
            return Ok(RotateOutcome::VersionMismatch);
        }
        let Some(plan) = rotation.plan(&current, tenant, now, rng, sealer) else {
            return Ok(RotateOutcome::VersionExhausted);
        };
        match repo
            .replace(tenant, current.version, &plan.record)
            .await
            .map_err(OpError::Repo)?
        {
            ReplaceOutcome::Replaced => return Ok(RotateOutcome::Rotated(plan.response)),
            ReplaceOutcome::NotFound => return Ok(RotateOutcome::NotFound),
            ReplaceOutcome::VersionMismatch if rotation.expected_version.is_some() => {
                return Ok(RotateOutcome::VersionMismatch);
            }
            // Versionless: another writer won this round; the plan (and its
            // secret) is dropped here, and the next round reads again.
            ReplaceOutcome::VersionMismatch => {}
        }
    }
    Ok(RotateOutcome::Contention)
}
