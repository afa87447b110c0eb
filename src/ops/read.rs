//! Get and list: [`get`], [`list`] (cursor pagination) and [`list_page`].

use crate::error::ValidationErrors;
use crate::id::DestinationId;
use crate::ops::error::OpError;
use crate::repo::DestinationRepo;
use crate::tenant::TenantId;
use crate::wire::{
    ApiError, DestinationPage, DestinationView, ListDestinationsRequest, PageRequest,
};

/// The answer of [`get`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
#[allow(
    clippy::large_enum_variant,
    reason = "one answer per request, moved once; boxing would only add an allocation"
)]
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
    /// [`ApiError::NotFound`].
    pub fn into_result(self) -> Result<DestinationView, ApiError> {
        match self {
            Self::Found(view) => Ok(view),
            Self::NotFound => Err(ApiError::NotFound),
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
    /// [`ApiError::Invalid`].
    pub fn into_result(self) -> Result<DestinationPage, ApiError> {
        match self {
            Self::Page(page) => Ok(page),
            Self::Invalid(errors) => Err(ApiError::Invalid(errors)),
        }
    }
}

/// The tenant's destination `id`, without its secrets.
///
/// # Errors
/// [`OpError::Repo`] with the repo's own error.
pub async fn get<R: DestinationRepo>(
    repo: &R,
    tenant: &TenantId,
    id: DestinationId,
) -> Result<GetOutcome, OpError<R::Error>> {
    Ok(match repo.get(tenant, id).await.map_err(OpError::Repo)? {
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
/// [`OpError::Repo`] with the repo's own error.
pub async fn list<R: DestinationRepo>(
    repo: &R,
    tenant: &TenantId,
    request: ListDestinationsRequest,
) -> Result<ListOutcome, OpError<R::Error>> {
    match request.validate() {
        Ok(page) => list_page(repo, tenant, page).await.map(ListOutcome::Page),
        Err(errors) => Ok(ListOutcome::Invalid(errors)),
    }
}

/// [`list`] for an already valid request.
///
/// # Errors
/// [`OpError::Repo`] with the repo's own error.
pub async fn list_page<R: DestinationRepo>(
    repo: &R,
    tenant: &TenantId,
    page: PageRequest,
) -> Result<DestinationPage, OpError<R::Error>> {
    let limit = page.limit.max(1);
    let mut records = repo
        .list_page(tenant, page.after, limit.saturating_add(1))
        .await
        .map_err(OpError::Repo)?;
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
