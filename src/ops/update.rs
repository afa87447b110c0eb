//! Update: the pure step [`DestinationPatch::plan`] and the async [`update`],
//! a compare-and-swap on the version read.

use rand_core::CryptoRng;

use crate::error::ValidationErrors;
use crate::id::DestinationId;
use crate::ops::error::OpError;
use crate::policy::HostPolicy;
use crate::record::{DestinationRecord, DisabledReason, MAX_VERSION};
use crate::repo::{DestinationRepo, ReplaceOutcome};
use crate::secret::{SealingKey, Signing, SigningSecret};
use crate::tenant::TenantId;
use crate::time::Timestamp;
use crate::wire::{ApiError, DestinationPatch, UpdateDestinationRequest, UpdatedDestination};

/// How many read-modify-write rounds [`update`] without a `version` and
/// [`rotate`](crate::ops::rotate()) try before answering `Contention`: the first and up to 31
/// retries. A round is lost only to another writer's successful write since
/// the read, so with at most 32 concurrent single writes every one applies.
pub const VERSIONLESS_ATTEMPTS: u32 = 32;

/// The answer of [`update`].
#[derive(Debug, PartialEq, Eq)]
#[must_use]
#[allow(
    clippy::large_enum_variant,
    reason = "one answer per request, moved once; boxing would only add an allocation"
)]
pub enum UpdateOutcome {
    /// Updated; the destination as it now is (`200`).
    Updated(UpdatedDestination),
    /// The organization has no destination with that id (`404 not_found`).
    NotFound,
    /// The destination is not at the version the request named, or changed
    /// between the read and the write; nothing was written
    /// (`409 version_mismatch`). Read it again and retry.
    VersionMismatch,
    /// An update without `version` lost the compare-and-swap to other
    /// writers [`VERSIONLESS_ATTEMPTS`] times in a row; nothing was written
    /// (`503 contention`). Retry later.
    Contention,
    /// The destination is at [`MAX_VERSION`] and cannot change any more;
    /// nothing was written (`409 version_exhausted`).
    VersionExhausted,
    /// Some fields are invalid, all listed; the repo was not called (`422`).
    Invalid(ValidationErrors),
}

impl UpdateOutcome {
    /// The `200` body, or the error to answer.
    ///
    /// # Errors
    /// [`ApiError::NotFound`], [`ApiError::VersionMismatch`],
    /// [`ApiError::Contention`], [`ApiError::VersionExhausted`] or
    /// [`ApiError::Invalid`].
    pub fn into_result(self) -> Result<UpdatedDestination, ApiError> {
        match self {
            Self::Updated(view) => Ok(view),
            Self::NotFound => Err(ApiError::NotFound),
            Self::VersionMismatch => Err(ApiError::VersionMismatch),
            Self::Contention => Err(ApiError::Contention),
            Self::VersionExhausted => Err(ApiError::VersionExhausted),
            Self::Invalid(errors) => Err(ApiError::Invalid(errors)),
        }
    }
}

impl DestinationPatch {
    /// `record` with this patch applied at `now`: the given fields replaced
    /// (a list or map given replaces the whole of it), `updated_at` = `now`
    /// (whole seconds), version + 1; `created_at` and the bearer secrets
    /// untouched. Turning signing on mints a signing secret (sealed with
    /// `sealer` for `tenant` and the record's id, and returned in cleartext
    /// this once); asking for it again while on keeps the secret; turning it
    /// off drops the signing secret and those kept for a rotation's grace
    /// period. `None` only if the version cannot grow (the record is at
    /// [`MAX_VERSION`]).
    #[must_use]
    pub fn plan<R: CryptoRng + ?Sized>(
        &self,
        record: &DestinationRecord,
        tenant: &TenantId,
        now: Timestamp,
        rng: &mut R,
        sealer: &SealingKey,
    ) -> Option<(DestinationRecord, Option<SigningSecret>)> {
        let version = record
            .version
            .checked_add(1)
            .filter(|v| *v <= MAX_VERSION)?;
        let r = &self.receiver;
        let mut next = DestinationRecord {
            name: self.name.clone().unwrap_or_else(|| record.name.clone()),
            url: self.url.clone().unwrap_or_else(|| record.url.clone()),
            // Never before the last change, even if the host's clock steps back.
            updated_at: now.truncated().max(record.updated_at),
            version,
            enabled: self.enabled.unwrap_or(record.enabled),
            disabled_reason: match self.enabled {
                None => record.disabled_reason,
                Some(true) => None,
                Some(false) => Some(DisabledReason::Manual),
            },
            filter_types: r
                .filter_types
                .clone()
                .unwrap_or_else(|| record.filter_types.clone()),
            headers: r.headers.clone().unwrap_or_else(|| record.headers.clone()),
            description: r
                .description
                .clone()
                .unwrap_or_else(|| record.description.clone()),
            metadata: r
                .metadata
                .clone()
                .unwrap_or_else(|| record.metadata.clone()),
            ..record.clone()
        };
        let mut minted = None;
        match (r.signing, record.signing()) {
            (Some(Signing::StandardWebhooks), Signing::Bearer) => {
                let secret = SigningSecret::from_rng(rng);
                next.signing_secret =
                    Some(sealer.seal_signing_secret(tenant, record.destination_id, &secret, rng));
                minted = Some(secret);
            }
            (Some(Signing::Bearer), Signing::StandardWebhooks) => {
                next.signing_secret = None;
                for previous in &mut next.previous_secrets {
                    previous.sealed_signing_secret = None;
                }
            }
            _ => {}
        }
        Some((next, minted))
    }
}

/// Updates the name and/or URL of the tenant's destination `id`: validates
/// `request` with the rules of create (every field error at once), reads the
/// record, applies the patch and writes it back with a compare-and-swap on
/// the version read.
///
/// - With a `version` in the request, the update applies only to that
///   version: another stored version, or a change that lands between the
///   read and the write, gives [`UpdateOutcome::VersionMismatch`] and writes
///   nothing. Of several updates naming one version, exactly one applies.
/// - Without a `version`, the update applies to the version the server
///   reads: a change landing between the read and the write makes it read
///   again and re-apply the patch, up to [`VERSIONLESS_ATTEMPTS`] rounds,
///   then [`UpdateOutcome::Contention`]. It never answers
///   `VersionMismatch`, and each update applies exactly once.
///
/// Concurrent updates never silently lose one another. Every successful
/// update moves `updatedAt` to `now` and the version up by one, even if no
/// value changed. A record at [`MAX_VERSION`] gives
/// [`UpdateOutcome::VersionExhausted`].
///
/// # Errors
/// [`OpError::Repo`] with the repo's own error.
pub async fn update<R, G>(
    repo: &R,
    tenant: &TenantId,
    id: DestinationId,
    request: UpdateDestinationRequest,
    now: Timestamp,
    rng: &mut G,
    sealer: &SealingKey,
) -> Result<UpdateOutcome, OpError<R::Error>>
where
    R: DestinationRepo,
    G: CryptoRng + Send + ?Sized,
{
    update_with_policy(
        repo,
        tenant,
        id,
        request,
        &HostPolicy::default(),
        now,
        rng,
        sealer,
    )
    .await
}

/// [`update`], judging a new URL's host under an operator's [`HostPolicy`]
/// ([`UpdateDestinationRequest::validate_with_policy`]) instead of the
/// default one.
///
/// # Errors
/// As for [`update`].
#[allow(clippy::too_many_arguments)]
pub async fn update_with_policy<R, G>(
    repo: &R,
    tenant: &TenantId,
    id: DestinationId,
    request: UpdateDestinationRequest,
    policy: &HostPolicy,
    now: Timestamp,
    rng: &mut G,
    sealer: &SealingKey,
) -> Result<UpdateOutcome, OpError<R::Error>>
where
    R: DestinationRepo,
    G: CryptoRng + Send + ?Sized,
{
    let patch = match request.validate_with_policy(policy) {
        Ok(patch) => patch,
        Err(errors) => return Ok(UpdateOutcome::Invalid(errors)),
    };
    for _ in 0..VERSIONLESS_ATTEMPTS {
        let Some(current) = repo.get(tenant, id).await.map_err(OpError::Repo)? else {
            return Ok(UpdateOutcome::NotFound);
        };
        if patch.expected_version.is_some_and(|v| v != current.version) {
            return Ok(UpdateOutcome::VersionMismatch);
        }
        let Some((next, signing_secret)) = patch.plan(&current, tenant, now, rng, sealer) else {
            return Ok(UpdateOutcome::VersionExhausted);
        };
        match repo
            .replace(tenant, current.version, &next)
            .await
            .map_err(OpError::Repo)?
        {
            ReplaceOutcome::Replaced => {
                return Ok(UpdateOutcome::Updated(UpdatedDestination {
                    view: (&next).into(),
                    signing_secret,
                }));
            }
            ReplaceOutcome::NotFound => return Ok(UpdateOutcome::NotFound),
            ReplaceOutcome::VersionMismatch if patch.expected_version.is_some() => {
                return Ok(UpdateOutcome::VersionMismatch);
            }
            // Versionless: another writer won this round; read again.
            ReplaceOutcome::VersionMismatch => {}
        }
    }
    Ok(UpdateOutcome::Contention)
}
