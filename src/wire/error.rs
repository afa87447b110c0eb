//! [`ApiError`]: the error answer of every operation, and [`ApiErrorKind`],
//! the one table of its statuses and codes.

use core::fmt;

use serde::{Serialize, Serializer};

use crate::error::{Field, FieldError, ValidationErrors};
use crate::id::{DestinationId, EventId};

/// An error answer of any operation, from the outcome's `into_result`: an
/// HTTP status and the body create uses for its field errors,
/// `{"errors":[{"field","code","message"}]}`, so a client parses one shape
/// everywhere. [`Invalid`](Self::Invalid) lists every bad field; every other
/// kind is one error naming the field it concerns. The status, field, code
/// and message of each kind are in one table, [`ApiErrorKind`].
///
/// Not `#[non_exhaustive]`: like the outcomes it comes from, each kind is an
/// answer a host gives, and a host's own table of answers should stop
/// compiling until it covers a new one.
///
/// ```
/// use prets_destinations::{ApiError, DestinationId};
///
/// let e = ApiError::NotFound;
/// assert_eq!((e.status(), e.code()), (404, "not_found"));
/// let body = serde_json::to_string(&e)?;
/// assert!(body.starts_with(r#"{"errors":[{"field":"destinationId","code":"not_found""#));
///
/// // A conflict keeps the destination that exists, for the answer.
/// let existing: DestinationId = "whk_01HF2V3J6T0Q8X5Y7Z9ABCDEFG".parse()?;
/// let e = ApiError::Conflict { existing };
/// assert_eq!((e.status(), e.code()), (409, "conflict"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// `422`: the request's fields are invalid; every one is listed, each
    /// with its own code.
    Invalid(ValidationErrors),
    /// `404 not_found`: the organization has no destination with that id.
    NotFound,
    /// `409 conflict`: a create named a `destinationId` the organization
    /// already has; nothing was written.
    Conflict {
        /// The destination that exists.
        existing: DestinationId,
    },
    /// `409 version_mismatch`: the destination is not at the version the
    /// request named, or changed between the read and the write; read it
    /// again and retry.
    VersionMismatch,
    /// `409 version_exhausted`: the destination is at
    /// [`MAX_VERSION`](crate::record::MAX_VERSION) and can no longer be
    /// updated or rotated; delete and recreate it.
    VersionExhausted,
    /// `409 disabled`: the destination is disabled, so a test event cannot
    /// be sent to it; enable it first.
    Disabled,
    /// `503 contention`: an update without `version`, or a rotation, lost
    /// the compare-and-swap to other writers
    /// [`VERSIONLESS_ATTEMPTS`](crate::ops::VERSIONLESS_ATTEMPTS) times;
    /// nothing was written. Retry later.
    Contention,
    /// `409 event_exists`: a publish named an `eventId` the organization
    /// already has, with another `type` or `payload`; nothing was queued.
    EventExists {
        /// The event that exists.
        existing: EventId,
    },
    /// `403 quota_exceeded`: a create would give the organization more
    /// destinations than the host allows; nothing was written. Delete one
    /// first.
    QuotaExceeded,
    /// `429 queue_full`: a publish, test event, resend or recover would
    /// queue more pending deliveries for the organization than the host
    /// allows; nothing was queued past it (a recover keeps what it queued
    /// up to it and answers `202`), and nothing already queued is lost.
    /// Retry once deliveries have drained.
    QueueFull,
}

/// The kind of an [`ApiError`], without its data: the table of every
/// error answer's status and, but for [`Invalid`](Self::Invalid) (whose
/// errors are the request's own field errors), its one error's field, stable
/// code and message. Hosts and documentation read the answers from here.
///
/// ```
/// use prets_destinations::wire::ApiErrorKind;
///
/// let codes: Vec<_> = ApiErrorKind::ALL
///     .iter()
///     .filter_map(|kind| kind.error().map(|e| (kind.status(), e.code())))
///     .collect();
/// assert!(codes.contains(&(409, "conflict")));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApiErrorKind {
    /// [`ApiError::Invalid`].
    Invalid,
    /// [`ApiError::NotFound`].
    NotFound,
    /// [`ApiError::Conflict`].
    Conflict,
    /// [`ApiError::VersionMismatch`].
    VersionMismatch,
    /// [`ApiError::VersionExhausted`].
    VersionExhausted,
    /// [`ApiError::Disabled`].
    Disabled,
    /// [`ApiError::Contention`].
    Contention,
    /// [`ApiError::EventExists`].
    EventExists,
    /// [`ApiError::QuotaExceeded`].
    QuotaExceeded,
    /// [`ApiError::QueueFull`].
    QueueFull,
}

impl ApiErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 10] = [
        Self::Invalid,
        Self::NotFound,
        Self::Conflict,
        Self::VersionMismatch,
        Self::VersionExhausted,
        Self::Disabled,
        Self::Contention,
        Self::EventExists,
        Self::QuotaExceeded,
        Self::QueueFull,
    ];

    /// The table: each kind's status and its one error.
    const fn row(self) -> (u16, Option<FieldError>) {
        const fn one(
            field: Field,
            code: &'static str,
            message: &'static str,
        ) -> Option<FieldError> {
            Some(FieldError::new(field, code, message))
        }
        match self {
            Self::Invalid => (422, None),
            Self::NotFound => (
                404,
                one(
                    Field::DestinationId,
                    "not_found",
                    "no destination with this destinationId",
                ),
            ),
            Self::Conflict => (
                409,
                one(
                    Field::DestinationId,
                    "conflict",
                    "a destination with this destinationId already exists",
                ),
            ),
            Self::VersionMismatch => (
                409,
                one(
                    Field::Version,
                    "version_mismatch",
                    "the destination changed since it was read",
                ),
            ),
            Self::VersionExhausted => (
                409,
                one(
                    Field::Version,
                    "version_exhausted",
                    "the destination has reached the largest version and cannot change",
                ),
            ),
            Self::Disabled => (
                409,
                one(
                    Field::DestinationId,
                    "disabled",
                    "the destination is disabled",
                ),
            ),
            Self::Contention => (
                503,
                one(
                    Field::DestinationId,
                    "contention",
                    "too many concurrent changes to this destination; retry later",
                ),
            ),
            Self::EventExists => (
                409,
                one(
                    Field::EventId,
                    "event_exists",
                    "an event with this eventId exists with another type or payload",
                ),
            ),
            Self::QuotaExceeded => (
                403,
                one(
                    Field::DestinationId,
                    "quota_exceeded",
                    "the organization has the most destinations allowed",
                ),
            ),
            Self::QueueFull => (
                429,
                one(
                    Field::EventId,
                    "queue_full",
                    "the organization has the most pending deliveries allowed; retry later",
                ),
            ),
        }
    }

    /// The HTTP status.
    #[must_use]
    pub const fn status(self) -> u16 {
        self.row().0
    }

    /// The one error of this kind (its field, stable code and message), or
    /// `None` for [`Invalid`](Self::Invalid).
    #[must_use]
    pub const fn error(self) -> Option<FieldError> {
        self.row().1
    }
}

impl ApiError {
    /// The kind, without its data.
    #[must_use]
    pub const fn kind(&self) -> ApiErrorKind {
        match self {
            Self::Invalid(_) => ApiErrorKind::Invalid,
            Self::NotFound => ApiErrorKind::NotFound,
            Self::Conflict { .. } => ApiErrorKind::Conflict,
            Self::VersionMismatch => ApiErrorKind::VersionMismatch,
            Self::VersionExhausted => ApiErrorKind::VersionExhausted,
            Self::Disabled => ApiErrorKind::Disabled,
            Self::Contention => ApiErrorKind::Contention,
            Self::EventExists { .. } => ApiErrorKind::EventExists,
            Self::QuotaExceeded => ApiErrorKind::QuotaExceeded,
            Self::QueueFull => ApiErrorKind::QueueFull,
        }
    }

    /// The HTTP status.
    #[must_use]
    pub const fn status(&self) -> u16 {
        self.kind().status()
    }

    /// The code of the first error (for every kind but
    /// [`Invalid`](Self::Invalid), the only one).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(errors) => errors.errors().first().map_or("invalid", FieldError::code),
            other => other.kind().error().map_or("invalid", |e| e.code()),
        }
    }

    /// The body: every error.
    #[must_use]
    pub fn errors(&self) -> ValidationErrors {
        match self {
            Self::Invalid(errors) => errors.clone(),
            other => ValidationErrors::from_errors(other.kind().error().into_iter().collect()),
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        Self::Invalid(errors)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.errors())
    }
}

impl std::error::Error for ApiError {}

impl Serialize for ApiError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Invalid(errors) => errors.serialize(serializer),
            other => other.errors().serialize(serializer),
        }
    }
}
