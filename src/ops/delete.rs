//! Delete: [`delete`], the destination and its secrets.

use crate::id::DestinationId;
use crate::ops::error::OpError;
use crate::repo::{DestinationRepo, RemoveOutcome};
use crate::tenant::TenantId;
use crate::wire::ApiError;

/// The answer of [`delete`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum DeleteOutcome {
    /// Deleted, with its secrets (`200` with
    /// [`DeletedDestination`](crate::wire::DeletedDestination), or `204`).
    Deleted,
    /// The organization has no destination with that id (`404 not_found`).
    NotFound,
}

impl DeleteOutcome {
    /// `Ok` once deleted (a delete has no body of its own: a host answers
    /// [`DeletedDestination::of`](crate::wire::DeletedDestination::of) the
    /// id, or `204`), or the error to answer.
    ///
    /// # Errors
    /// [`ApiError::NotFound`].
    pub fn into_result(self) -> Result<(), ApiError> {
        match self {
            Self::Deleted => Ok(()),
            Self::NotFound => Err(ApiError::NotFound),
        }
    }
}

/// Deletes the tenant's destination `id` and its secrets (current and
/// previous); deliveries stop being authorized at once.
///
/// The id is free again afterwards: a create with the same client-supplied
/// `destinationId` makes a new destination, with a new secret and version 1.
///
/// # Errors
/// [`OpError::Repo`] with the repo's own error.
pub async fn delete<R: DestinationRepo>(
    repo: &R,
    tenant: &TenantId,
    id: DestinationId,
) -> Result<DeleteOutcome, OpError<R::Error>> {
    Ok(
        match repo.remove(tenant, id).await.map_err(OpError::Repo)? {
            RemoveOutcome::Removed => DeleteOutcome::Deleted,
            RemoveOutcome::NotFound => DeleteOutcome::NotFound,
        },
    )
}
