//! Update: the pure step [`DestinationPatch::plan`] and the async [`update`],
//! a compare-and-swap on the version read.

use crate::error::ValidationErrors;
use crate::id::DestinationId;
use crate::ops::error::OpError;
use crate::policy::HostPolicy;
use crate::record::{DestinationRecord, DisabledReason, MAX_VERSION};
use crate::repo::{DestinationRepo, ReplaceOutcome};
use crate::tenant::TenantId;
use crate::time::Timestamp;
use crate::wire::{ApiError, DestinationPatch, DestinationView, UpdateDestinationRequest};

/// How many read-modify-write rounds [`update`] without a `version` and
/// [`rotate`](crate::ops::rotate()) try before answering `Contention`: the first and up to 31
/// retries. A round is lost only to another writer's successful write since
/// the read, so with at most 32 concurrent single writes every one applies.
pub const VERSIONLESS_ATTEMPTS: u32 = 32;

/// The answer of [`update`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum UpdateOutcome {
    /// Updated; the destination as it now is (`200`).
    Updated(DestinationView),
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
    pub fn into_result(self) -> Result<DestinationView, ApiError> {
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
    /// `record` with this patch applied at `now`: the given fields replaced,
    /// `updated_at` = `now` (whole seconds), version + 1; `created_at` and
    /// every secret untouched. Pure. `None` only if the version cannot grow
    /// (the record is at [`MAX_VERSION`]).
    #[must_use]
    pub fn plan(&self, record: &DestinationRecord, now: Timestamp) -> Option<DestinationRecord> {
        Some(DestinationRecord {
            name: self.name.clone().unwrap_or_else(|| record.name.clone()),
            url: self.url.clone().unwrap_or_else(|| record.url.clone()),
            // Never before the last change, even if the host's clock steps back.
            updated_at: now.truncated().max(record.updated_at),
            version: record
                .version
                .checked_add(1)
                .filter(|v| *v <= MAX_VERSION)?,
            enabled: self.enabled.unwrap_or(record.enabled),
            disabled_reason: match self.enabled {
                None => record.disabled_reason,
                Some(true) => None,
                Some(false) => Some(DisabledReason::Manual),
            },
            ..record.clone()
        })
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
pub async fn update<R: DestinationRepo>(
    repo: &R,
    tenant: &TenantId,
    id: DestinationId,
    request: UpdateDestinationRequest,
    now: Timestamp,
) -> Result<UpdateOutcome, OpError<R::Error>> {
    update_with_policy(repo, tenant, id, request, &HostPolicy::default(), now).await
}

/// [`update`], judging a new URL's host under an operator's [`HostPolicy`]
/// ([`UpdateDestinationRequest::validate_with_policy`]) instead of the
/// default one.
///
/// # Errors
/// As for [`update`].
pub async fn update_with_policy<R: DestinationRepo>(
    repo: &R,
    tenant: &TenantId,
    id: DestinationId,
    request: UpdateDestinationRequest,
    policy: &HostPolicy,
    now: Timestamp,
) -> Result<UpdateOutcome, OpError<R::Error>> {
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
        let Some(next) = patch.plan(&current, now) else {
            return Ok(UpdateOutcome::VersionExhausted);
        };
        match repo
            .replace(tenant, current.version, &next)
            .await
            .map_err(OpError::Repo)?
        {
            ReplaceOutcome::Replaced => {
                return Ok(UpdateOutcome::Updated(DestinationView::from(&next)));
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
