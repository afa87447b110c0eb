//! Error responses: `application/problem+json` (RFC 9457).

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prets_destinations::delivery::EventId;
use prets_destinations::wire::ApiErrorKind;
use prets_destinations::{ApiError, DestinationId, FieldError, OpError, StoreError};
use serde::Serialize;

use crate::health::NotReady;
/// The `Retry-After` of a `queue_full` answer, in seconds: deliveries
/// drain at the receivers' pace, unknown here, so a fixed short wait.
const QUEUE_FULL_RETRY_AFTER: &str = "5";

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The base of this API's problem type URIs (identifiers; the kinds are
/// [`ProblemKind`], documented in the OpenAPI document). A kind is a
/// `snake_case` word: for the core's errors ([`ApiError`]) its stable code,
/// so the API has one vocabulary.
pub const PROBLEM_BASE: &str = "https://api.prets.app/problems/";

/// Every problem type this API answers with: its `type` (after
/// [`PROBLEM_BASE`]), status and title. This is the one table of them; the
/// OpenAPI document's list is checked against [`ProblemKind::ALL`].
///
/// The core's errors ([`ApiError`]) have the kind of the same name as their
/// stable code ([`From<ApiErrorKind>`](#impl-From%3CApiErrorKind%3E-for-ProblemKind)),
/// but for field errors, which are `invalid_fields`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// 401: no or an unknown API token.
    Unauthorized,
    /// 400: the body is not JSON.
    MalformedJson,
    /// 400: JSON, but not the request's object; or a body that cannot be read.
    InvalidBody,
    /// 408: the body did not arrive in time.
    RequestTimeout,
    /// 400: a header that must appear once appears more often.
    AmbiguousRequest,
    /// 431: too many header lines or bytes.
    HeadersTooLarge,
    /// 414: the path and query are too long.
    UriTooLong,
    /// 400: the query string is not the operation's parameters.
    InvalidQuery,
    /// 413: the body is too long.
    BodyTooLarge,
    /// 415: the body is not declared JSON in UTF-8.
    UnsupportedMediaType,
    /// 404: no such route, or no such destination.
    NotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 500: the server failed.
    Internal,
    /// 503: the database cannot be reached.
    DatabaseUnavailable,
    /// 503: the database is busy (locked by another writer).
    DatabaseBusy,
    /// 503: the server is at its connection limit.
    ServerBusy,
    /// 422: the request's fields are invalid ([`ApiError::Invalid`]).
    InvalidFields,
    /// 409: [`ApiError::Conflict`].
    Conflict,
    /// 409: [`ApiError::VersionMismatch`].
    VersionMismatch,
    /// 409: [`ApiError::VersionExhausted`].
    VersionExhausted,
    /// 409: [`ApiError::Disabled`].
    Disabled,
    /// 503: [`ApiError::Contention`].
    Contention,
    /// 409: [`ApiError::EventExists`].
    EventExists,
    /// 503: `GET /readyz`: the store does not answer, or its schema is not
    /// this build's.
    NotReady,
    /// 403: [`ApiError::QuotaExceeded`].
    QuotaExceeded,
    /// 429: [`ApiError::QueueFull`].
    QueueFull,
    /// 429: the organization is over its request rate.
    RateLimited,
}

impl ProblemKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 27] = [
        Self::Unauthorized,
        Self::MalformedJson,
        Self::InvalidBody,
        Self::RequestTimeout,
        Self::AmbiguousRequest,
        Self::HeadersTooLarge,
        Self::UriTooLong,
        Self::InvalidQuery,
        Self::BodyTooLarge,
        Self::UnsupportedMediaType,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Internal,
        Self::DatabaseUnavailable,
        Self::DatabaseBusy,
        Self::ServerBusy,
        Self::InvalidFields,
        Self::Conflict,
        Self::VersionMismatch,
        Self::VersionExhausted,
        Self::Disabled,
        Self::Contention,
        Self::EventExists,
        Self::NotReady,
        Self::QuotaExceeded,
        Self::QueueFull,
        Self::RateLimited,
    ];

    /// The table: `type`, status and title of each kind.
    const fn row(self) -> (&'static str, StatusCode, &'static str) {
        match self {
            Self::Unauthorized => ("unauthorized", StatusCode::UNAUTHORIZED, "Unauthorized"),
            Self::MalformedJson => ("malformed_json", StatusCode::BAD_REQUEST, "Malformed JSON"),
            Self::InvalidBody => (
                "invalid_body",
                StatusCode::BAD_REQUEST,
                "Invalid request body",
            ),
            Self::RequestTimeout => (
                "request_timeout",
                StatusCode::REQUEST_TIMEOUT,
                "Request timeout",
            ),
            Self::AmbiguousRequest => (
                "ambiguous_request",
                StatusCode::BAD_REQUEST,
                "Ambiguous request",
            ),
            Self::HeadersTooLarge => (
                "headers_too_large",
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Request header fields too large",
            ),
            Self::UriTooLong => ("uri_too_long", StatusCode::URI_TOO_LONG, "URI too long"),
            Self::InvalidQuery => ("invalid_query", StatusCode::BAD_REQUEST, "Invalid query"),
            Self::BodyTooLarge => (
                "body_too_large",
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body too large",
            ),
            Self::UnsupportedMediaType => (
                "unsupported_media_type",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
            ),
            Self::NotFound => ("not_found", StatusCode::NOT_FOUND, "Not found"),
            Self::MethodNotAllowed => (
                "method_not_allowed",
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
            ),
            Self::Internal => (
                "internal",
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error",
            ),
            Self::DatabaseUnavailable => (
                "database_unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unavailable",
            ),
            Self::DatabaseBusy => (
                "database_busy",
                StatusCode::SERVICE_UNAVAILABLE,
                "Database busy",
            ),
            Self::ServerBusy => (
                "server_busy",
                StatusCode::SERVICE_UNAVAILABLE,
                "Server busy",
            ),
            Self::InvalidFields => (
                "invalid_fields",
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid fields",
            ),
            Self::Conflict => (
                "conflict",
                StatusCode::CONFLICT,
                "Destination id already exists",
            ),
            Self::VersionMismatch => ("version_mismatch", StatusCode::CONFLICT, "Version mismatch"),
            Self::VersionExhausted => (
                "version_exhausted",
                StatusCode::CONFLICT,
                "Version exhausted",
            ),
            Self::Disabled => ("disabled", StatusCode::CONFLICT, "Destination disabled"),
            Self::Contention => (
                "contention",
                StatusCode::SERVICE_UNAVAILABLE,
                "Too much contention",
            ),
            Self::EventExists => (
                "event_exists",
                StatusCode::CONFLICT,
                "Event id already exists",
            ),
            Self::NotReady => ("not_ready", StatusCode::SERVICE_UNAVAILABLE, "Not ready"),
            Self::QuotaExceeded => (
                "quota_exceeded",
                StatusCode::FORBIDDEN,
                "Destination quota exceeded",
            ),
            Self::QueueFull => (
                "queue_full",
                StatusCode::TOO_MANY_REQUESTS,
                "Delivery queue full",
            ),
            Self::RateLimited => (
                "rate_limited",
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit exceeded",
            ),
        }
    }

    /// The `type`'s last segment, a `snake_case` word: the problem's `type`
    /// is [`PROBLEM_BASE`] followed by it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        self.row().0
    }

    /// The status.
    #[must_use]
    pub const fn status(self) -> StatusCode {
        self.row().1
    }

    /// The title.
    #[must_use]
    pub const fn title(self) -> &'static str {
        self.row().2
    }
}

/// The kind of each of the core's errors: its code's, or `invalid_fields`.
impl From<ApiErrorKind> for ProblemKind {
    fn from(kind: ApiErrorKind) -> Self {
        match kind {
            ApiErrorKind::Invalid => Self::InvalidFields,
            ApiErrorKind::NotFound => Self::NotFound,
            ApiErrorKind::Conflict => Self::Conflict,
            ApiErrorKind::VersionMismatch => Self::VersionMismatch,
            ApiErrorKind::VersionExhausted => Self::VersionExhausted,
            ApiErrorKind::Disabled => Self::Disabled,
            ApiErrorKind::Contention => Self::Contention,
            ApiErrorKind::EventExists => Self::EventExists,
            ApiErrorKind::QuotaExceeded => Self::QuotaExceeded,
            ApiErrorKind::QueueFull => Self::QueueFull,
        }
    }
}

/// One error response. Its fields are fixed texts chosen here: a client's
/// input, a token or a secret never reaches one.
#[derive(Debug)]
pub struct Problem(Box<Inner>);

#[derive(Debug)]
struct Inner {
    kind: ProblemKind,
    detail: Cow<'static, str>,
    errors: Vec<FieldError>,
    destination_id: Option<DestinationId>,
    event_id: Option<EventId>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
    #[serde(skip_serializing_if = "Option::is_none")]
    destination_id: Option<DestinationId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<EventId>,
}

impl Problem {
    fn new(kind: ProblemKind, detail: impl Into<Cow<'static, str>>) -> Self {
        Self(Box::new(Inner {
            kind,
            detail: detail.into(),
            errors: Vec::new(),
            destination_id: None,
            event_id: None,
            headers: Vec::new(),
        }))
    }

    fn with_header(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.0.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    /// 429: the organization is over its rate for this route; retry after
    /// `retry_after` whole seconds (at least 1).
    #[must_use]
    pub fn rate_limited(what: &'static str, retry_after: u64) -> Self {
        let mut p = Self::new(
            ProblemKind::RateLimited,
            format!(
                "the organization is over its rate of {what}; retry after `Retry-After` seconds"
            ),
        );
        p.0.headers
            .push((header::RETRY_AFTER, HeaderValue::from(retry_after.max(1))));
        p
    }

    /// The kind.
    #[must_use]
    pub fn kind(&self) -> ProblemKind {
        self.0.kind
    }

    /// The status code.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.0.kind.status()
    }

    /// 401: no or an unknown API token.
    #[must_use]
    pub fn unauthorized() -> Self {
        Self::new(
            ProblemKind::Unauthorized,
            "send an API token as `Authorization: Bearer <token>`",
        )
        .with_header(header::WWW_AUTHENTICATE, "Bearer")
    }

    /// 400: the body is not JSON (with the position of the first error).
    #[must_use]
    pub fn malformed_json(line: usize, column: usize) -> Self {
        Self::new(
            ProblemKind::MalformedJson,
            format!("the request body is not valid JSON (line {line}, column {column})"),
        )
    }

    /// 400: JSON, but not an object of the request's members.
    #[must_use]
    pub fn wrong_shape(detail: &'static str) -> Self {
        Self::new(ProblemKind::InvalidBody, detail)
    }

    /// 400: the body could not be read.
    #[must_use]
    pub fn unreadable_body() -> Self {
        Self::new(
            ProblemKind::InvalidBody,
            "the request body could not be read",
        )
    }

    /// 408: the body did not arrive in time; the connection is closed.
    #[must_use]
    pub fn body_timeout() -> Self {
        Self::new(
            ProblemKind::RequestTimeout,
            "the request body was not received in time",
        )
        .with_header(header::CONNECTION, "close")
    }

    /// 400: a header that must appear at most once appears more often, so
    /// which one counts would be a guess.
    #[must_use]
    pub fn ambiguous_header(name: &'static str) -> Self {
        Self::new(
            ProblemKind::AmbiguousRequest,
            format!("the request has more than one `{name}` header; send exactly one"),
        )
    }

    /// 431: more than `lines` header lines, or more than `bytes` bytes of
    /// header names and values; the connection is closed.
    #[must_use]
    pub fn headers_too_large(lines: usize, bytes: usize) -> Self {
        Self::new(
            ProblemKind::HeadersTooLarge,
            format!(
                "a request may carry at most {lines} header lines of at most {bytes} bytes in all"
            ),
        )
        .with_header(header::CONNECTION, "close")
    }

    /// 414: the path and query are longer than `limit` bytes; the connection
    /// is closed.
    #[must_use]
    pub fn target_too_long(limit: usize) -> Self {
        Self::new(
            ProblemKind::UriTooLong,
            format!("the path and query must be at most {limit} bytes"),
        )
        .with_header(header::CONNECTION, "close")
    }

    /// 400: the query string is not the operation's parameters.
    #[must_use]
    pub fn invalid_query(detail: &'static str) -> Self {
        Self::new(ProblemKind::InvalidQuery, detail)
    }

    /// 413: the body is longer than `limit` bytes.
    #[must_use]
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            ProblemKind::BodyTooLarge,
            format!("the request body must be at most {limit} bytes"),
        )
    }

    /// 415: the body is not declared `application/json`.
    #[must_use]
    pub fn unsupported_media_type() -> Self {
        Self::new(
            ProblemKind::UnsupportedMediaType,
            "send the body as `Content-Type: application/json` (UTF-8: no charset, or `charset=utf-8`)",
        )
        .with_header(header::ACCEPT, "application/json")
    }

    /// 404: no such route, or no such destination in the organization.
    #[must_use]
    pub fn not_found(detail: &'static str) -> Self {
        Self::new(ProblemKind::NotFound, detail)
    }

    /// 405: the route exists, the method does not.
    #[must_use]
    pub fn method_not_allowed() -> Self {
        Self::new(
            ProblemKind::MethodNotAllowed,
            "this resource does not support the method; see `Allow`",
        )
    }

    /// 500: the server failed (the cause is in the log, under the request id).
    #[must_use]
    pub fn internal() -> Self {
        Self::new(
            ProblemKind::Internal,
            "the server failed; the request id in `x-request-id` identifies the failure in the log",
        )
    }

    /// 500 for `error`, which is logged with its sources: a failure of the
    /// server's own making (a body that does not serialize), never a store's
    /// error (those are [`From<OpError>`](#impl-From%3COpError%3CE%3E%3E-for-Problem)).
    #[must_use]
    pub fn internal_error(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        tracing::error!(error = %chain, "request failed");
        Self::internal()
    }

    /// 503: the database cannot be reached right now (PostgreSQL down, or
    /// no pooled connection in time); nothing was done, retry in a second.
    #[must_use]
    pub fn database_unavailable() -> Self {
        Self::new(
            ProblemKind::DatabaseUnavailable,
            "the database cannot be reached right now; retry after `Retry-After` seconds",
        )
        .with_header(header::RETRY_AFTER, "1")
    }

    /// 503: the database is busy right now (SQLite locked by another
    /// process past its busy timeout); nothing was done, retry in a second.
    #[must_use]
    pub fn database_busy() -> Self {
        Self::new(
            ProblemKind::DatabaseBusy,
            "the database is busy right now; retry after `Retry-After` seconds",
        )
        .with_header(header::RETRY_AFTER, "1")
    }

    /// 503: the store is not ready (see [`NotReady`]); `detail` says why,
    /// without a connection string or path.
    #[must_use]
    pub fn not_ready(reason: NotReady) -> Self {
        Self::new(ProblemKind::NotReady, reason.to_string()).with_header(header::RETRY_AFTER, "5")
    }

    /// 503: the server is at its connection limit; the connection is closed.
    #[must_use]
    pub fn server_busy() -> Self {
        Self::new(
            ProblemKind::ServerBusy,
            "the server is at its connection limit; retry shortly",
        )
        .with_header(header::RETRY_AFTER, "1")
        .with_header(header::CONNECTION, "close")
    }

    /// The headers the problem adds to its response besides its media type.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&header::HeaderName, &HeaderValue)> {
        self.0.headers.iter().map(|(name, value)| (name, value))
    }

    /// The `application/problem+json` body.
    pub(crate) fn body(&self) -> Vec<u8> {
        let p = &self.0;
        let body = Body {
            kind: format!("{PROBLEM_BASE}{}", p.kind.name()),
            title: p.kind.title(),
            status: p.kind.status().as_u16(),
            detail: &p.detail,
            errors: &p.errors,
            destination_id: p.destination_id,
            event_id: p.event_id,
        };
        // Serializing these fixed shapes cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// The core's error as a problem: the kind of its code (every 422 is
/// `invalid_fields`), its status, and its field errors in `errors`; a
/// conflict names the existing destination in `destinationId`, an
/// `event_exists` the existing event in `eventId`.
impl From<ApiError> for Problem {
    fn from(error: ApiError) -> Self {
        let detail: Cow<'static, str> = match &error {
            ApiError::Invalid(_) => "one or more fields are invalid; see `errors`".into(),
            ApiError::NotFound => "the organization has no destination with this id".into(),
            ApiError::Conflict { existing } => {
                format!("a destination with id {existing} already exists").into()
            }
            ApiError::VersionMismatch => {
                "the destination changed since it was read; get it again and retry".into()
            }
            ApiError::VersionExhausted => "the destination has reached the largest version and \
                                           cannot change; delete and recreate it"
                .into(),
            ApiError::Disabled => {
                "the destination is disabled; enable it with PATCH `enabled: true` first".into()
            }
            ApiError::Contention => {
                "too many concurrent changes to this destination; retry later".into()
            }
            ApiError::EventExists { existing } => {
                format!("an event with id {existing} already exists with another type or payload")
                    .into()
            }
            ApiError::QuotaExceeded => "the organization has the most destinations allowed; \
                                        delete one first"
                .into(),
            ApiError::QueueFull => "the organization has the most pending deliveries allowed; \
                                    nothing was queued, retry after `Retry-After` seconds"
                .into(),
        };
        let mut p = Self::new(ProblemKind::from(error.kind()), detail);
        p.0.errors = error.errors().into_iter().collect();
        if matches!(error, ApiError::QueueFull) {
            p = p.with_header(header::RETRY_AFTER, QUEUE_FULL_RETRY_AFTER);
        }
        match error {
            ApiError::Conflict { existing } => p.0.destination_id = Some(existing),
            ApiError::EventExists { existing } => p.0.event_id = Some(existing),
            _ => {}
        }
        p
    }
}

/// An operation that gave the client no answer: `503` with `Retry-After`
/// when the store is unavailable (`database_unavailable`) or busy
/// (`database_busy`), `500` otherwise. Logged as the operation's error and
/// the store's text, never the store error's sources, which may quote row
/// values ([`StoreError`]).
impl<E: StoreError> From<OpError<E>> for Problem {
    fn from(error: OpError<E>) -> Self {
        let (text, store) = match &error {
            OpError::Repo(store) => (format!("{error}: {store}"), Some(store)),
            other => (other.to_string(), None),
        };
        if store.is_some_and(StoreError::is_unavailable) {
            tracing::warn!(error = %text, "request failed: the database is unavailable");
            Self::database_unavailable()
        } else if store.is_some_and(StoreError::is_busy) {
            tracing::warn!(error = %text, "request failed: the database is busy");
            Self::database_busy()
        } else {
            tracing::error!(error = %text, "request failed");
            Self::internal()
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.status(), self.body()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        let Self(p) = self;
        for (name, value) in p.headers {
            headers.insert(name, value);
        }
        response
    }
}
