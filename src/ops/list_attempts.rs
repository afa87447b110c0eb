//! Attempts: [`list_attempts`], a destination's delivery attempts, newest
//! first.

use crate::delivery::Outbox;
use crate::error::ValidationErrors;
use crate::id::DestinationId;
use crate::ops::error::OpError;
use crate::tenant::TenantId;
use crate::wire::{ApiError, AttemptPage, AttemptPageRequest, AttemptView, ListAttemptsRequest};

/// The answer of [`list_attempts`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum AttemptsOutcome {
    /// One page (`200`).
    Page(AttemptPage),
    /// The tenant has no such destination (`404 not_found`).
    NotFound,
    /// `limit` or `cursor` is invalid (`422`).
    Invalid(ValidationErrors),
}

impl AttemptsOutcome {
    /// The `200` body, or the error to answer.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] or [`ApiError::Invalid`].
    pub fn into_result(self) -> Result<AttemptPage, ApiError> {
        match self {
            Self::Page(p) => Ok(p),
            Self::NotFound => Err(ApiError::NotFound),
            Self::Invalid(errors) => Err(ApiError::Invalid(errors)),
        }
    }
}

/// One page of the delivery attempts of the tenant's destination `id`,
/// newest first: validates `request` (limit 1 to 100, default 20; cursor
/// from a previous page), checks the destination exists, and asks the store
/// for one more than the limit to know whether more follow.
///
/// # Errors
/// [`OpError::Repo`] with the store's own error.
pub async fn list_attempts<O: Outbox>(
    outbox: &O,
    tenant: &TenantId,
    id: DestinationId,
    request: ListAttemptsRequest,
) -> Result<AttemptsOutcome, OpError<O::Error>> {
    let page: AttemptPageRequest = match request.validate() {
        Ok(p) => p,
        Err(errors) => return Ok(AttemptsOutcome::Invalid(errors)),
    };
    if outbox
        .get(tenant, id)
        .await
        .map_err(OpError::Repo)?
        .is_none()
    {
        return Ok(AttemptsOutcome::NotFound);
    }
    let limit = page.limit.max(1);
    let mut attempts = outbox
        .list_attempts(tenant, id, page.before, limit.saturating_add(1))
        .await
        .map_err(OpError::Repo)?;
    let has_more = attempts.len() > limit;
    attempts.truncate(limit);
    let next_cursor = if has_more {
        attempts.last().map(|a| a.attempt_id)
    } else {
        None
    };
    Ok(AttemptsOutcome::Page(AttemptPage {
        data: attempts.iter().map(AttemptView::from).collect(),
        has_more,
        next_cursor,
    }))
}
