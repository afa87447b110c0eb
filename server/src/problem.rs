//! Error responses: `application/problem+json` (RFC 9457).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prets_destinations::{ApiError, DestinationId, FieldError};
use serde::Serialize;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The base of this API's problem type URIs (identifiers; the kinds are
/// documented in the OpenAPI document). A kind is a `snake_case` word: for
/// the core's errors ([`ApiError`]) its stable code, so the API has one
/// vocabulary.
pub const PROBLEM_BASE: &str = "https://api.prets.app/problems/";

/// One error response. Its fields are fixed texts chosen here: a client's
/// input, a token or a secret never reaches one.
#[derive(Debug)]
pub struct Problem(Box<Inner>);

#[derive(Debug)]
struct Inner {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    destination_id: Option<DestinationId>,
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
}

impl Problem {
    fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self(Box::new(Inner {
            status,
            kind,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            destination_id: None,
            headers: Vec::new(),
        }))
    }

    /// The status code.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// 401: no or an unknown API token.
    #[must_use]
    pub fn unauthorized() -> Self {
        let mut p = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "send an API token as `Authorization: Bearer <token>`",
        );
        p.0.headers
            .push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        p
    }

    /// 400: the body is not JSON (with the position of the first error).
    #[must_use]
    pub fn malformed_json(line: usize, column: usize) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "Malformed JSON",
            format!("the request body is not valid JSON (line {line}, column {column})"),
        )
    }

    /// 400: JSON, but not an object of the request's members.
    #[must_use]
    pub fn wrong_shape(detail: &'static str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "Invalid request body",
            detail,
        )
    }

    /// 400: the body could not be read.
    #[must_use]
    pub fn unreadable_body() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "Invalid request body",
            "the request body could not be read",
        )
    }

    /// 408: the body did not arrive in time; the connection is closed.
    #[must_use]
    pub fn body_timeout() -> Self {
        let mut p = Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "Request timeout",
            "the request body was not received in time",
        );
        p.0.headers
            .push((header::CONNECTION, HeaderValue::from_static("close")));
        p
    }

    /// 400: a header that must appear at most once appears more often, so
    /// which one counts would be a guess.
    #[must_use]
    pub fn ambiguous_header(name: &'static str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ambiguous_request",
            "Ambiguous request",
            format!("the request has more than one `{name}` header; send exactly one"),
        )
    }

    /// 431: more than `lines` header lines, or more than `bytes` bytes of
    /// header names and values; the connection is closed.
    #[must_use]
    pub fn headers_too_large(lines: usize, bytes: usize) -> Self {
        let mut p = Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            "Request header fields too large",
            format!(
                "a request may carry at most {lines} header lines of at most {bytes} bytes in all"
            ),
        );
        p.0.headers
            .push((header::CONNECTION, HeaderValue::from_static("close")));
        p
    }

    /// 414: the path and query are longer than `limit` bytes; the connection
    /// is closed.
    #[must_use]
    pub fn target_too_long(limit: usize) -> Self {
        let mut p = Self::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            "URI too long",
            format!("the path and query must be at most {limit} bytes"),
        );
        p.0.headers
            .push((header::CONNECTION, HeaderValue::from_static("close")));
        p
    }

    /// 400: the query string is not the operation's parameters.
    #[must_use]
    pub fn invalid_query(detail: &'static str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "Invalid query",
            detail,
        )
    }

    /// 413: the body is longer than `limit` bytes.
    #[must_use]
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "Request body too large",
            format!("the request body must be at most {limit} bytes"),
        )
    }

    /// 415: the body is not declared `application/json`.
    #[must_use]
    pub fn unsupported_media_type() -> Self {
        let mut p = Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "send the body as `Content-Type: application/json` (UTF-8: no charset, or `charset=utf-8`)",
        );
        p.0.headers
            .push((header::ACCEPT, HeaderValue::from_static("application/json")));
        p
    }

    /// 404: no such route, or no such destination in the organization.
    #[must_use]
    pub fn not_found(detail: &'static str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found", detail)
    }

    /// 405: the route exists, the method does not.
    #[must_use]
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
            "this resource does not support the method; see `Allow`",
        )
    }

    /// 500: the server failed (the cause is in the log, under the request id).
    #[must_use]
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
            "the server failed; the request id in `x-request-id` identifies the failure in the log",
        )
    }

    /// 503: the database cannot be reached right now (PostgreSQL down, or
    /// no pooled connection in time); nothing was done, retry in a second.
    #[must_use]
    pub fn database_unavailable() -> Self {
        let mut p = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "Database unavailable",
            "the database cannot be reached right now; retry after `Retry-After` seconds",
        );
        p.0.headers
            .push((header::RETRY_AFTER, HeaderValue::from_static("1")));
        p
    }
}

impl Problem {
    /// The 409 `conflict` of a create, naming the `existing` destination in
    /// `destinationId` and the detail.
    #[must_use]
    pub fn with_destination_id(mut self, existing: DestinationId) -> Self {
        self.0.detail = format!("a destination with id {existing} already exists");
        self.0.destination_id = Some(existing);
        self
    }
}

/// The core's error as a problem: its status, its stable code as the kind
/// (`…/problems/version_mismatch`; every 422 is `invalid_fields`) and its
/// field errors in `errors`.
impl From<ApiError> for Problem {
    fn from(error: ApiError) -> Self {
        let status =
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (kind, title, detail) = if status == StatusCode::UNPROCESSABLE_ENTITY {
            (
                "invalid_fields",
                "Invalid fields",
                "one or more fields are invalid; see `errors`",
            )
        } else {
            match error.code() {
                "not_found" => (
                    "not_found",
                    "Not found",
                    "the organization has no destination with this id",
                ),
                "conflict" => (
                    "conflict",
                    "Destination id already exists",
                    "a destination with this id already exists",
                ),
                "version_mismatch" => (
                    "version_mismatch",
                    "Version mismatch",
                    "the destination changed since it was read; get it again and retry",
                ),
                "version_exhausted" => (
                    "version_exhausted",
                    "Version exhausted",
                    "the destination has reached the largest version and cannot change; \
                     delete and recreate it",
                ),
                "contention" => (
                    "contention",
                    "Too much contention",
                    "too many concurrent changes to this destination; retry later",
                ),
                "disabled" => (
                    "disabled",
                    "Destination disabled",
                    "the destination is disabled; enable it with PATCH `enabled: true` first",
                ),
                // A code a newer core may add: still its own kind.
                other => (other, "Request failed", "see `errors`"),
            }
        };
        let mut p = Self::new(status, kind, title, detail);
        p.0.errors = error.errors().errors().to_vec();
        p
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let Self(p) = self;
        let body = Body {
            kind: format!("{PROBLEM_BASE}{}", p.kind),
            title: p.title,
            status: p.status.as_u16(),
            detail: &p.detail,
            errors: &p.errors,
            destination_id: p.destination_id,
        };
        // Serializing these fixed shapes cannot fail; the fallback keeps the
        // status even so.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (p.status, bytes).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in p.headers {
            headers.insert(name, value);
        }
        response
    }
}
