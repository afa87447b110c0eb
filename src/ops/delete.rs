//! Delete: [`delete`], the destination and its secrets.

use crate::id::DestinationId;
use crate::ops::error::OpError;
use crate::repo::{DestinationRepo, RemoveOutcome};
use crate::tenant::TenantId;

/// The answer of [`delete`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum DeleteOutcome {
    /// Deleted, with its secrets (`200` with [`DeletedDestination`](crate::wire::DeletedDestination), or `204`).
    Deleted,
    /// The organization has no destination with that id (`404 not_found`).
    NotFound,
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
