//! Error responses: `application/problem+json` (RFC 9457).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prets_destinations::{DestinationId, FieldError, ValidationErrors};
use serde::Serialize;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The base of this API's problem type URIs (identifiers; the kinds are
/// documented in the OpenAPI document).
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
            "malformed-json",
            "Malformed JSON",
            format!("the request body is not valid JSON (line {line}, column {column})"),
        )
    }

    /// 400: JSON, but not an object of the request's members.
    #[must_use]
    pub fn wrong_shape(detail: &'static str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-body",
            "Invalid request body",
            detail,
        )
    }

    /// 400: the body could not be read.
    #[must_use]
    pub fn unreadable_body() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-body",
            "Invalid request body",
            "the request body could not be read",
        )
    }

    /// 408: the body did not arrive in time; the connection is closed.
    #[must_use]
    pub fn body_timeout() -> Self {
        let mut p = Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
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
            "ambiguous-request",
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
            "headers-too-large",
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
            "uri-too-long",
            "URI too long",
            format!("the path and query must be at most {limit} bytes"),
        );
        p.0.headers
            .push((header::CONNECTION, HeaderValue::from_static("close")));
        p
    }

    /// 422: every invalid field, with its code.
    #[must_use]
    pub fn invalid_fields(errors: ValidationErrors) -> Self {
        let mut p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-fields",
            "Invalid fields",
            "one or more fields are invalid; see `errors`",
        );
        p.0.errors = errors.into_iter().collect();
        p
    }

    /// 409: the organization already has a destination with this id.
    #[must_use]
    pub fn duplicate_id(existing: DestinationId) -> Self {
        let mut p = Self::new(
            StatusCode::CONFLICT,
            "duplicate-destination-id",
            "Destination id already exists",
            format!("a destination with id {existing} already exists"),
        );
        p.0.destination_id = Some(existing);
        p
    }

    /// 409: the destination changed since the client read it (its
    /// `version` is not the one sent).
    #[must_use]
    pub fn version_mismatch() -> Self {
        let mut p = Self::new(
            StatusCode::CONFLICT,
            "version-mismatch",
            "Version mismatch",
            "the destination changed since it was read; get it again and retry",
        );
        p.0.errors = prets_destinations::ApiError::version_mismatch()
            .errors()
            .errors()
            .to_vec();
        p
    }

    /// 409: the destination is at the largest version and can no longer
    /// change.
    #[must_use]
    pub fn version_exhausted() -> Self {
        let mut p = Self::new(
            StatusCode::CONFLICT,
            "version-exhausted",
            "Version exhausted",
            "the destination has reached the largest version and cannot change; \
             delete and recreate it",
        );
        p.0.errors = prets_destinations::ApiError::version_exhausted()
            .errors()
            .errors()
            .to_vec();
        p
    }

    /// 503: a write without `version` lost to other concurrent writers
    /// every time it tried; nothing was written.
    #[must_use]
    pub fn contention() -> Self {
        let mut p = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "contention",
            "Too much contention",
            "too many concurrent changes to this destination; retry later",
        );
        p.0.errors = prets_destinations::ApiError::contention()
            .errors()
            .errors()
            .to_vec();
        p
    }

    /// 400: the query string is not the operation's parameters.
    #[must_use]
    pub fn invalid_query(detail: &'static str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "Invalid query",
            detail,
        )
    }

    /// 413: the body is longer than `limit` bytes.
    #[must_use]
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
            format!("the request body must be at most {limit} bytes"),
        )
    }

    /// 415: the body is not declared `application/json`.
    #[must_use]
    pub fn unsupported_media_type() -> Self {
        let mut p = Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
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
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 405: the route exists, the method does not.
    #[must_use]
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
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
