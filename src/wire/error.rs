//! [`ApiError`]: the error answer of every operation.

use core::fmt;

use serde::{Serialize, Serializer};

use crate::error::{Field, FieldError, ValidationErrors};

/// An error answer of any operation: an HTTP status and the body create uses
/// for its field errors, `{"errors":[{"field","code","message"}]}`, so a
/// client parses one shape everywhere.
///
/// | code | status | field | when |
/// |---|---|---|---|
/// | field codes (`required`, `too_long`, `out_of_range`, ...) | 422 | the bad field | validation |
/// | `not_found` | 404 | `destinationId` | no such destination in the organization |
/// | `conflict` | 409 | `destinationId` | create with an id the organization has |
/// | `version_mismatch` | 409 | `version` | the destination changed since it was read |
/// | `version_exhausted` | 409 | `version` | the destination is at [`MAX_VERSION`](crate::record::MAX_VERSION) and cannot change |
/// | `disabled` | 409 | `destinationId` | a test event for a disabled destination |
/// | `contention` | 503 | `destinationId` | a write without `version` lost to other writers too many times |
///
/// ```
/// use prets_destinations::ApiError;
///
/// let e = ApiError::not_found();
/// assert_eq!((e.status(), e.code()), (404, "not_found"));
/// let body = serde_json::to_string(&e)?;
/// assert!(body.starts_with(r#"{"errors":[{"field":"destinationId","code":"not_found""#));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    status: u16,
    body: ValidationErrors,
}

impl ApiError {
    fn one(status: u16, field: Field, code: &'static str, message: &'static str) -> Self {
        Self {
            status,
            body: ValidationErrors::from_errors(vec![FieldError::new(field, code, message)]),
        }
    }

    /// `404 not_found`: the organization has no destination with that id.
    #[must_use]
    pub fn not_found() -> Self {
        Self::one(
            404,
            Field::DestinationId,
            "not_found",
            "no destination with this destinationId",
        )
    }

    /// `409 conflict`: create with a `destinationId` the organization has.
    #[must_use]
    pub fn conflict() -> Self {
        Self::one(
            409,
            Field::DestinationId,
            "conflict",
            "a destination with this destinationId already exists",
        )
    }

    /// `409 version_mismatch`: the destination changed since it was read;
    /// read it again and retry.
    #[must_use]
    pub fn version_mismatch() -> Self {
        Self::one(
            409,
            Field::Version,
            "version_mismatch",
            "the destination changed since it was read",
        )
    }

    /// `503 contention`: an update without `version`, or a rotation, lost
    /// the compare-and-swap to other writers
    /// [`VERSIONLESS_ATTEMPTS`](crate::ops::VERSIONLESS_ATTEMPTS) times; nothing
    /// was written. Retry later.
    #[must_use]
    pub fn contention() -> Self {
        Self::one(
            503,
            Field::DestinationId,
            "contention",
            "too many concurrent changes to this destination; retry later",
        )
    }

    /// `409 version_exhausted`: the destination is at
    /// [`MAX_VERSION`](crate::record::MAX_VERSION) and can no longer be updated or
    /// rotated; delete and recreate it.
    #[must_use]
    pub fn version_exhausted() -> Self {
        Self::one(
            409,
            Field::Version,
            "version_exhausted",
            "the destination has reached the largest version and cannot change",
        )
    }

    /// `409 disabled`: the destination is disabled, so a test event cannot
    /// be sent to it; enable it first.
    #[must_use]
    pub fn disabled() -> Self {
        Self::one(
            409,
            Field::DestinationId,
            "disabled",
            "the destination is disabled",
        )
    }

    /// `422` with every field error.
    #[must_use]
    pub fn invalid(errors: ValidationErrors) -> Self {
        Self {
            status: 422,
            body: errors,
        }
    }

    /// The HTTP status.
    #[must_use]
    pub const fn status(&self) -> u16 {
        self.status
    }

    /// The code of the first error (for `not_found`, `conflict` and
    /// `version_mismatch`, the only one).
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.body
            .errors()
            .first()
            .map_or("invalid", FieldError::code)
    }

    /// The body, every error.
    #[must_use]
    pub const fn errors(&self) -> &ValidationErrors {
        &self.body
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        Self::invalid(errors)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

impl std::error::Error for ApiError {}

impl Serialize for ApiError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.body.serialize(serializer)
    }
}
