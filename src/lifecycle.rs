//! The lifecycle after create, over a [`DestinationRepo`]: [`get`], [`list`]
//! (cursor pagination), [`update`] (compare-and-swap), [`delete`] and
//! [`rotate`] (a new secret, the old one valid for a grace period).
//!
//! Like [`create`](crate::create), each answers every client outcome with a
//! value (`Ok`), and `Err` carries only the repo's own error, for the host's
//! `5xx`. Each outcome has `into_result`, giving the success body or the
//! [`ApiError`] to send.

use rand_core::CryptoRng;

use crate::delivery::DisabledReason;

use crate::{
    ApiError, CreateOutcome, CreatedDestination, DestinationId, DestinationPage, DestinationPatch,
    DestinationRecord, DestinationRepo, DestinationView, ListDestinationsRequest, PageRequest,
    RemoveOutcome, ReplaceOutcome, RotateSecretRequest, RotatedSecret, SealingKey, TenantId,
    Timestamp, UpdateDestinationRequest, ValidationErrors,
};

/// The largest version a destination reaches: 2^63 − 1, so that every
/// version fits a signed 64-bit column. A request naming a version outside
/// `1..=MAX_VERSION` is refused (`422 out_of_range`); a destination at this
/// version can no longer be updated or rotated
/// ([`UpdateOutcome::VersionExhausted`]); delete and recreate it. Reaching it
/// takes 2^63 − 2 changes, so in practice it never happens.
pub const MAX_VERSION: u64 = i64::MAX.unsigned_abs();

/// How many read-modify-write rounds [`update`] without a `version` and
/// [`rotate`] try before answering `Contention`: the first and up to 31
/// retries. A round is lost only to another writer's successful write since
/// the read, so with at most 32 concurrent single writes every one applies.
pub const VERSIONLESS_ATTEMPTS: u32 = 32;

/// The answer of [`get`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum GetOutcome {
    /// The destination (`200`).
    Found(DestinationView),
    /// The organization has no destination with that id (`404 not_found`).
    NotFound,
}

impl GetOutcome {
    /// The `200` body, or the error to answer.
    ///
    /// # Errors
    /// [`ApiError::not_found`].
    pub fn into_result(self) -> Result<DestinationView, ApiError> {
        match self {
            Self::Found(view) => Ok(view),
            Self::NotFound => Err(ApiError::not_found()),
        }
    }
}

/// The answer of [`list`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum ListOutcome {
    /// One page (`200`).
    Page(DestinationPage),
    /// `limit` or `cursor` is invalid (`422`).
    Invalid(ValidationErrors),
}

impl ListOutcome {
    /// The `200` body, or the error to answer.
    ///
    /// # Errors
    /// [`ApiError::invalid`].
    pub fn into_result(self) -> Result<DestinationPage, ApiError> {
        match self {
            Self::Page(page) => Ok(page),
            Self::Invalid(errors) => Err(ApiError::invalid(errors)),
        }
    }
}

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
    /// [`ApiError::not_found`], [`ApiError::version_mismatch`],
    /// [`ApiError::contention`], [`ApiError::version_exhausted`] or
    /// [`ApiError::invalid`].
    pub fn into_result(self) -> Result<DestinationView, ApiError> {
        match self {
            Self::Updated(view) => Ok(view),
            Self::NotFound => Err(ApiError::not_found()),
            Self::VersionMismatch => Err(ApiError::version_mismatch()),
            Self::Contention => Err(ApiError::contention()),
            Self::VersionExhausted => Err(ApiError::version_exhausted()),
            Self::Invalid(errors) => Err(ApiError::invalid(errors)),
        }
    }
}

/// The answer of [`delete`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum DeleteOutcome {
    /// Deleted, with its secrets (`200` with [`DeletedDestination`](crate::DeletedDestination), or `204`).
    Deleted,
    /// The organization has no destination with that id (`404 not_found`).
    NotFound,
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
    /// [`ApiError::not_found`], [`ApiError::version_mismatch`],
    /// [`ApiError::contention`], [`ApiError::version_exhausted`] or
    /// [`ApiError::invalid`].
    pub fn into_result(self) -> Result<RotatedSecret, ApiError> {
        match self {
            Self::Rotated(rotated) => Ok(rotated),
            Self::NotFound => Err(ApiError::not_found()),
            Self::VersionMismatch => Err(ApiError::version_mismatch()),
            Self::Contention => Err(ApiError::contention()),
            Self::VersionExhausted => Err(ApiError::version_exhausted()),
            Self::Invalid(errors) => Err(ApiError::invalid(errors)),
        }
    }
}

impl CreateOutcome {
    /// The `201` body, or the error to answer.
    ///
    /// # Errors
    /// [`ApiError::conflict`] or [`ApiError::invalid`].
    pub fn into_result(self) -> Result<CreatedDestination, ApiError> {
        match self {
            Self::Created(created) => Ok(created),
            Self::Conflict { .. } => Err(ApiError::conflict()),
            Self::Invalid(errors) => Err(ApiError::invalid(errors)),
        }
    }
}

/// The tenant's destination `id`, without its secrets.
///
/// # Errors
/// Only the repo's.
pub async fn get<R: DestinationRepo>(
    repo: &R,
    tenant: &TenantId,
    id: DestinationId,
) -> Result<GetOutcome, R::Error> {
    Ok(match repo.get(tenant, id).await? {
        Some(record) => GetOutcome::Found(DestinationView::from(&record)),
        None => GetOutcome::NotFound,
    })
}

/// One page of the tenant's destinations, in ascending id order: validates
/// `request` (limit 1 to 100, default 20; cursor from a previous page) and
/// asks the repo for one more than the limit, to know whether more follow.
///
/// Walking the pages by `nextCursor` never repeats a destination and never
/// skips one that existed for the whole walk, whatever is created or
/// deleted meanwhile (the cursor is a position in id order, not an offset).
///
/// # Errors
/// Only the repo's.
pub async fn list<R: DestinationRepo>(
    repo: &R,
    tenant: &TenantId,
    request: ListDestinationsRequest,
) -> Result<ListOutcome, R::Error> {
    match request.validate() {
        Ok(page) => list_page(repo, tenant, page).await.map(ListOutcome::Page),
        Err(errors) => Ok(ListOutcome::Invalid(errors)),
    }
}

/// [`list`] for an already valid request.
///
/// # Errors
/// Only the repo's.
pub async fn list_page<R: DestinationRepo>(
    repo: &R,
    tenant: &TenantId,
    page: PageRequest,
) -> Result<DestinationPage, R::Error> {
    let limit = page.limit.max(1);
    let mut records = repo
        .list_page(tenant, page.after, limit.saturating_add(1))
        .await?;
    let has_more = records.len() > limit;
    records.truncate(limit);
    let next_cursor = if has_more {
        records.last().map(|r| r.destination_id)
    } else {
        None
    };
    Ok(DestinationPage {
        data: records.iter().map(DestinationView::from).collect(),
        has_more,
        next_cursor,
    })
}

impl DestinationRecord {
    /// The record with `patch` applied at `now`: the given fields replaced,
    /// `updated_at` = `now` (whole seconds), version + 1; `created_at` and
    /// every secret untouched. Pure. `None` only if the version cannot grow
    /// (the record is at [`MAX_VERSION`]).
    #[must_use]
    pub fn patched(&self, patch: &DestinationPatch, now: Timestamp) -> Option<Self> {
        Some(Self {
            name: patch.name.clone().unwrap_or_else(|| self.name.clone()),
            url: patch.url.clone().unwrap_or_else(|| self.url.clone()),
            // Never before the last change, even if the host's clock steps back.
            updated_at: now.truncated().max(self.updated_at),
            version: self.version.checked_add(1).filter(|v| *v <= MAX_VERSION)?,
            enabled: patch.enabled.unwrap_or(self.enabled),
            disabled_reason: match patch.enabled {
                None => self.disabled_reason,
                Some(true) => None,
                Some(false) => Some(DisabledReason::Manual),
            },
            ..self.clone()
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
/// Only the repo's.
pub async fn update<R: DestinationRepo>(
    repo: &R,
    tenant: &TenantId,
    id: DestinationId,
    request: UpdateDestinationRequest,
    now: Timestamp,
) -> Result<UpdateOutcome, R::Error> {
    let patch = match request.validate() {
        Ok(patch) => patch,
        Err(errors) => return Ok(UpdateOutcome::Invalid(errors)),
    };
    for _ in 0..VERSIONLESS_ATTEMPTS {
        let Some(current) = repo.get(tenant, id).await? else {
            return Ok(UpdateOutcome::NotFound);
        };
        if patch.expected_version.is_some_and(|v| v != current.version) {
            return Ok(UpdateOutcome::VersionMismatch);
        }
        let Some(next) = current.patched(&patch, now) else {
            return Ok(UpdateOutcome::VersionExhausted);
        };
        match repo.replace(tenant, current.version, &next).await? {
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

/// Deletes the tenant's destination `id` and its secrets (current and
/// previous); deliveries stop being authorized at once.
///
/// The id is free again afterwards: a create with the same client-supplied
/// `destinationId` makes a new destination, with a new secret and version 1.
///
/// # Errors
/// Only the repo's.
pub async fn delete<R: DestinationRepo>(
    repo: &R,
    tenant: &TenantId,
    id: DestinationId,
) -> Result<DeleteOutcome, R::Error> {
    Ok(match repo.remove(tenant, id).await? {
        RemoveOutcome::Removed => DeleteOutcome::Deleted,
        RemoveOutcome::NotFound => DeleteOutcome::NotFound,
    })
}

/// Rotates the secret of the tenant's destination `id`: mints a new secret,
/// seals it under `sealer` and makes it the current one (deliveries carry it
/// from now on); the replaced secret stays valid for the request's grace
/// period (0 to 7 days, default 24 hours), expired previous secrets are
/// dropped and at most [`MAX_PREVIOUS_SECRETS`](crate::MAX_PREVIOUS_SECRETS)
/// are kept. See [`DestinationRecord::plan_rotation`].
///
/// The new secret leaves only in [`RotateOutcome::Rotated`], after the repo
/// stored it. Like [`update`]: with a `version` in the request, another
/// stored version or a change landing between the read and the write gives
/// [`RotateOutcome::VersionMismatch`]; without one, such a change makes it
/// read again and plan again (with a new secret; the unstored one is dropped,
/// and wiped), up to [`VERSIONLESS_ATTEMPTS`] rounds, then
/// [`RotateOutcome::Contention`]. Each rotation applies at most once, and
/// only the secret stored is returned.
///
/// # Errors
/// Only the repo's.
pub async fn rotate<R, G>(
    repo: &R,
    tenant: &TenantId,
    id: DestinationId,
    request: RotateSecretRequest,
    now: Timestamp,
    rng: &mut G,
    sealer: &SealingKey,
) -> Result<RotateOutcome, R::Error>
where
    R: DestinationRepo,
    G: CryptoRng + Send + ?Sized,
{
    let rotation = match request.validate() {
        Ok(rotation) => rotation,
        Err(errors) => return Ok(RotateOutcome::Invalid(errors)),
    };
    for _ in 0..VERSIONLESS_ATTEMPTS {
        let Some(current) = repo.get(tenant, id).await? else {
            return Ok(RotateOutcome::NotFound);
        };
        if rotation
            .expected_version
            .is_some_and(|v| v != current.version)
        {
            return Ok(RotateOutcome::VersionMismatch);
        }
        let grace = rotation.grace_period;
        let Some(plan) = current.plan_rotation(tenant, now, grace, rng, sealer) else {
            return Ok(RotateOutcome::VersionExhausted);
        };
        match repo.replace(tenant, current.version, &plan.record).await? {
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
