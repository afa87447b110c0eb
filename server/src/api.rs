//! The HTTP API: routes, authentication, the handlers, request ids in the
//! log. Each handler reads its request, calls its operation and answers the
//! outcome; every error reaches the client as a [`Problem`] through `?`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prets_destinations::PublishOutcome;
use prets_destinations::delivery::{
    EVENT_TYPE_MAX_CHARS, EventId, EventLog, Outbox, PAYLOAD_MAX_BYTES,
};
use prets_destinations::limits::{Rate, retry_after_seconds};
use prets_destinations::ops::{EventOutcome, create_with_policy, update_with_policy};
use prets_destinations::wire::PublishedEvent;
use prets_destinations::wire::{ListEventsRequest, RecoverRequest, ResendRequest};
use prets_destinations::{
    ApiError, CreateDestinationRequest, DeletedDestination, DestinationId, DestinationRepo,
    HostPolicy, Keyring, ListAttemptsRequest, ListDestinationsRequest, PublishRequest,
    RotateSecretRequest, TenantId, Timestamp, UpdateDestinationRequest,
};
use serde::Serialize;
use tokio::sync::Notify;
use tracing::Instrument as _;

use crate::auth::ApiTokens;
use crate::health::Readiness;
use crate::metrics::{METRICS_CONTENT_TYPE, Metrics, UNMATCHED_ROUTE};
use crate::problem::Problem;
use crate::ratelimit::RateLimiter;
use crate::request_id::next_request_id;
use crate::serve::is_body_timeout;

/// Largest accepted request body: 64 KiB. A valid create body is below 3 KiB
/// (a 128-character name and a 2048-character URL, JSON-escaped).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Largest accepted `POST /v1/events` body: the core's largest payload
/// ([`PAYLOAD_MAX_BYTES`], 256 KiB of JSON text, kept as sent) plus 4 KiB
/// for the object around it and the `type` (at most
/// [`EVENT_TYPE_MAX_CHARS`] characters, 12 bytes each when JSON-escaped as
/// a surrogate pair). A body over it is a 413; a payload under it but over
/// the core's limit is a 422 naming `payload`.
pub const PUBLISH_BODY_LIMIT: usize = PAYLOAD_MAX_BYTES + 4 * 1024;

const _: () = assert!(EVENT_TYPE_MAX_CHARS * 12 + 64 <= 4 * 1024);

/// Most header lines a request may carry (hyper parses up to
/// [`crate::serve`](mod@crate::serve)'s larger limit, so this one is answered as a problem).
pub(crate) const MAX_HEADERS: usize = 100;

/// Most bytes of header names and values a request may carry.
pub(crate) const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Longest request target (path and query) accepted, in bytes.
pub(crate) const MAX_TARGET: usize = 8 * 1024;

/// The OpenAPI 3.1 document of this API, as kept in `server/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// What every request handler shares.
pub struct AppState<R> {
    repo: R,
    tokens: ApiTokens,
    keyring: Arc<Keyring>,
    host_policy: HostPolicy,
    published: Arc<Notify>,
    readiness: Option<Arc<dyn Readiness>>,
    metrics: Arc<Metrics>,
    publish_limit: Option<RateLimiter>,
    test_send_limit: Option<RateLimiter>,
}

impl<R> AppState<R> {
    /// State over `repo`, accepting `tokens` and sealing with `keyring`,
    /// under the default host policy (public addresses only). The keyring
    /// may be shared (`Arc<Keyring>`) with a delivery worker.
    pub fn new(repo: R, tokens: ApiTokens, keyring: impl Into<Arc<Keyring>>) -> Self {
        Self {
            repo,
            tokens,
            keyring: keyring.into(),
            host_policy: HostPolicy::default(),
            published: Arc::new(Notify::new()),
            readiness: None,
            metrics: Arc::new(Metrics::new()),
            publish_limit: None,
            test_send_limit: None,
        }
    }

    /// This state answering `GET /readyz` by asking `readiness` (the store).
    /// Without it, `/readyz` answers ready while the process runs (a store
    /// that cannot be unready, such as memory).
    #[must_use]
    pub fn with_readiness(mut self, readiness: Arc<dyn Readiness>) -> Self {
        self.readiness = Some(readiness);
        self
    }

    /// This state counting its requests in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// This state limiting each organization's publishes to `publish` and
    /// its test events to `test_send` (`None`: no limit), counted on this
    /// node.
    #[must_use]
    pub fn with_rate_limits(mut self, publish: Option<Rate>, test_send: Option<Rate>) -> Self {
        self.publish_limit = publish.map(RateLimiter::new);
        self.test_send_limit = test_send.map(RateLimiter::new);
        self
    }

    /// This state judging literal-IP destination hosts by `policy` at create
    /// and update time (the operator's allow and deny lists).
    #[must_use]
    pub fn with_host_policy(mut self, policy: HostPolicy) -> Self {
        self.host_policy = policy;
        self
    }

    /// This state signalling `notify` each time deliveries are committed to
    /// the outbox, so a delivery worker waiting on it wakes at once.
    #[must_use]
    pub fn with_publish_notify(mut self, notify: Arc<Notify>) -> Self {
        self.published = notify;
        self
    }
}

type Shared<R> = Arc<AppState<R>>;

/// The API's router over `state`, without the event-log routes (a store
/// that keeps no [`EventLog`]).
pub fn router<R: Outbox + 'static>(state: AppState<R>) -> Router {
    finish(routes::<R>(), state)
}

/// The API's router over `state`, with the event-log routes: reading
/// events, resend and recover.
pub fn router_with_event_log<R: EventLog + 'static>(state: AppState<R>) -> Router {
    let routes = routes::<R>()
        .route("/v1/events", get(list_events::<R>))
        .route("/v1/events/{eventId}", get(get_event::<R>))
        .route("/v1/events/{eventId}/resend", post(resend::<R>))
        .route("/v1/events/destinations/{id}/recover", post(recover::<R>));
    finish(routes, state)
}

fn routes<R: Outbox + 'static>() -> Router<Shared<R>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<R>))
        .route(
            "/v1/events",
            post(publish_event::<R>).layer(DefaultBodyLimit::max(PUBLISH_BODY_LIMIT)),
        )
        .route(
            "/v1/events/destinations",
            post(create_destination::<R>).get(list_destinations::<R>),
        )
        .route(
            "/v1/events/destinations/{id}",
            get(get_destination::<R>)
                .patch(update_destination::<R>)
                .delete(delete_destination::<R>),
        )
        .route(
            "/v1/events/destinations/{id}/rotate-secret",
            post(rotate_secret::<R>),
        )
        .route(
            "/v1/events/destinations/{id}/attempts",
            get(list_attempts::<R>),
        )
        .route("/v1/events/destinations/{id}/test", post(send_test::<R>))
}

fn finish<R: Send + Sync + 'static>(routes: Router<Shared<R>>, state: AppState<R>) -> Router {
    let metrics = Arc::clone(&state.metrics);
    routes
        .route("/openapi.json", get(openapi))
        .route_layer(middleware::from_fn(record_route))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(metrics, with_request_id))
        .with_state(Arc::new(state))
}

/// The router of the metrics listener: `GET /metrics`, the queue depth of
/// `repo` sampled (at most every few seconds) and `metrics` in the
/// Prometheus text format. No token: bind it where only the scraper reaches.
pub fn metrics_router<R: Outbox + 'static>(repo: R, metrics: Arc<Metrics>) -> Router {
    let state = Arc::new((repo, metrics));
    Router::new()
        .route("/metrics", get(scrape::<R>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn scrape<R: Outbox + 'static>(
    State(state): State<Arc<(R, Arc<Metrics>)>>,
) -> Result<Response, Problem> {
    let (repo, metrics) = &*state;
    metrics.sample_depth(repo).await;
    let text = metrics.encode().map_err(|e| Problem::internal_error(&e))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(METRICS_CONTENT_TYPE),
        )],
        text,
    )
        .into_response())
}

/// The authenticated caller's organization.
struct Organization(TenantId);

impl<R: DestinationRepo + 'static> FromRequestParts<Shared<R>> for Organization {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Shared<R>) -> Result<Self, Problem> {
        // Two credentials are ambiguous: a proxy may have checked the other.
        if parts
            .headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .nth(1)
            .is_some()
        {
            return Err(Problem::ambiguous_header("Authorization"));
        }
        parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| state.tokens.authenticate(value.as_bytes()))
            .map(Organization)
            .ok_or_else(Problem::unauthorized)
    }
}

/// Whether the one `Content-Type` is `application/json`, with no charset
/// parameter or `charset=utf-8` (any case, optionally quoted).
fn is_json(value: &HeaderValue) -> bool {
    let Ok(text) = value.to_str() else {
        return false;
    };
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or_default();
    if !essence.trim().eq_ignore_ascii_case("application/json") {
        return false;
    }
    parts.all(|param| match param.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            value.eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    })
}

/// Reads a JSON request body: 400 for two `Content-Type`s, 415 unless
/// declared JSON in UTF-8, 408 if it does not arrive in time, 413 over the limit,
/// 400 if it is not JSON or not an object of the expected members.
fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    shape: &'static str,
) -> Result<T, Problem> {
    json_body_within(headers, body, shape, BODY_LIMIT)
}

/// [`json_body`] for a route whose body limit is `limit`.
fn json_body_within<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    shape: &'static str,
    limit: usize,
) -> Result<T, Problem> {
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let declared = types.next();
    if types.next().is_some() {
        return Err(Problem::ambiguous_header("Content-Type"));
    }
    if !declared.is_some_and(is_json) {
        return Err(Problem::unsupported_media_type());
    }
    let body = body.map_err(|rejection| {
        if is_body_timeout(&rejection) {
            Problem::body_timeout()
        } else if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::too_large(limit)
        } else {
            Problem::unreadable_body()
        }
    })?;
    serde_json::from_slice(&body).map_err(|e| match e.classify() {
        // serde_json's own messages may quote the input: never send them.
        serde_json::error::Category::Data => Problem::wrong_shape(shape),
        _ => Problem::malformed_json(e.line(), e.column()),
    })
}

fn now() -> Result<Timestamp, Problem> {
    Timestamp::try_from(SystemTime::now()).map_err(|_| {
        tracing::error!("the system clock is outside the supported range");
        Problem::internal()
    })
}

/// The store's clock ([`Outbox::now`]): the time an event is stamped with,
/// so that its due time and the claims that compare with it read one clock
/// (a database's, for a store shared by several nodes).
async fn store_now<R: Outbox>(repo: &R) -> Result<Timestamp, Problem> {
    repo.now()
        .await
        .map_err(|e| Problem::from(prets_destinations::OpError::Repo(e)))
}

async fn create_destination<R: DestinationRepo + 'static>(
    State(state): State<Shared<R>>,
    Organization(org): Organization,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let request: CreateDestinationRequest = json_body(
        &headers,
        body,
        "the body must be a JSON object with the string members `name` and `url` and \
         optionally `destinationId`, `signing`, `filterTypes`, `headers`, `description` and \
         `metadata`, each at most once, and no others",
    )?;
    let now = now()?;
    let mut rng = prets_destinations::os_rng();
    let created = create_with_policy(
        &state.repo,
        &org,
        request,
        &state.host_policy,
        now,
        &mut rng,
        state.keyring.current(),
    )
    .await?
    .into_result()?;
    let body = serde_json::to_vec(&created).map_err(|e| Problem::internal_error(&e))?;
    tracing::info!(destination_id = %created.destination_id(), "destination created");
    let location = HeaderValue::try_from(format!(
        "/v1/events/destinations/{}",
        created.destination_id()
    ))
    .map_err(|e| Problem::internal_error(&e))?;
    Ok((
        StatusCode::CREATED,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::LOCATION, location),
            // The body holds the secret: no cache may keep it.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}

/// A `200` JSON body.
fn ok_json(body: &impl Serialize, no_store: bool) -> Result<Response, Problem> {
    let bytes = serde_json::to_vec(body).map_err(|e| Problem::internal_error(&e))?;
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response();
    if no_store {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

/// The destination id of a path. One that does not parse (or is not even
/// UTF-8 once percent-decoded) names no destination, so it is a 404 like an
/// unknown one, with the same problem body.
struct PathId(DestinationId);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| not_found_destination())?;
        raw.parse().map(PathId).map_err(|_| not_found_destination())
    }
}

fn not_found_destination() -> Problem {
    Problem::from(ApiError::NotFound)
}

async fn get_destination<R: DestinationRepo + 'static>(
    State(state): State<Shared<R>>,
    Organization(org): Organization,
    PathId(id): PathId,
) -> Result<Response, Problem> {
    let view = prets_destinations::get(&state.repo, &org, id)
        .await?
        .into_result()?;
    ok_json(&view, false)
}

async fn list_destinations<R: DestinationRepo + 'static>(
    State(state): State<Shared<R>>,
    Organization(org): Organization,
    query: Result<Query<ListDestinationsRequest>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(request) = query.map_err(|_| {
        Problem::invalid_query("the query may hold only `limit` and `cursor`, each at most once")
    })?;
    let page = prets_destinations::list(&state.repo, &org, request)
        .await?
        .into_result()?;
    ok_json(&page, false)
}

async fn update_destination<R: DestinationRepo + 'static>(
    State(state): State<Shared<R>>,
    Organization(org): Organization,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let request: UpdateDestinationRequest = json_body(
        &headers,
        body,
        "the body must be a JSON object with the optional members `name`, `url`, \
         `version`, `enabled`, `signing`, `filterTypes`, `headers`, `description` and \
         `metadata`, each at most once, and no others",
    )?;
    let mut rng = prets_destinations::os_rng();
    let updated = update_with_policy(
        &state.repo,
        &org,
        id,
        request,
        &state.host_policy,
        now()?,
        &mut rng,
        state.keyring.current(),
    )
    .await?
    .into_result()?;
    tracing::info!(destination_id = %id, version = updated.version(), "destination updated");
    // A body carrying a newly minted signing secret is not to be cached.
    ok_json(&updated, updated.signing_secret().is_some())
}

async fn delete_destination<R: DestinationRepo + 'static>(
    State(state): State<Shared<R>>,
    Organization(org): Organization,
    PathId(id): PathId,
) -> Result<Response, Problem> {
    prets_destinations::delete(&state.repo, &org, id)
        .await?
        .into_result()?;
    tracing::info!(destination_id = %id, "destination deleted");
    ok_json(&DeletedDestination::of(id), false)
}

async fn rotate_secret<R: DestinationRepo + 'static>(
    State(state): State<Shared<R>>,
    Organization(org): Organization,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    // An empty body, whatever its declared type, means the default grace
    // period; two declared types are still ambiguous.
    if headers
        .get_all(header::CONTENT_TYPE)
        .iter()
        .nth(1)
        .is_some()
    {
        return Err(Problem::ambiguous_header("Content-Type"));
    }
    let empty = body.as_ref().is_ok_and(Bytes::is_empty);
    let request: RotateSecretRequest = if empty {
        RotateSecretRequest::new()
    } else {
        json_body(
            &headers,
            body,
            "the body must be empty or a JSON object with the optional members \
             `gracePeriodSeconds` and `version`, each at most once, and no others",
        )?
    };
    let mut rng = prets_destinations::os_rng();
    let rotated = prets_destinations::rotate(
        &state.repo,
        &org,
        id,
        request,
        now()?,
        &mut rng,
        state.keyring.current(),
    )
    .await?
    .into_result()?;
    tracing::info!(destination_id = %id, version = rotated.version(), "secret rotated");
    ok_json(&rotated, true)
}

/// Spends one of the organization's tokens of `limit`, if there is a limit:
/// `429 rate_limited` with the wait in `Retry-After` when there is none.
fn within(limit: Option<&RateLimiter>, org: &TenantId, what: &'static str) -> Result<(), Problem> {
    match limit.map(|l| l.check(org)) {
        Some(Err(wait)) => Err(Problem::rate_limited(what, retry_after_seconds(wait))),
        _ => Ok(()),
    }
}

/// A `202` JSON body: the event is stored with its deliveries.
fn accepted(event: &PublishedEvent) -> Result<Response, Problem> {
    let mut response = ok_json(event, false)?;
    *response.status_mut() = StatusCode::ACCEPTED;
    Ok(response)
}

async fn publish_event<R: Outbox + 'static>(
    State(state): State<Shared<R>>,
    Organization(org): Organization,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    within(state.publish_limit.as_ref(), &org, "publishes")?;
    let request: PublishRequest = json_body_within(
        &headers,
        body,
        "the body must be a JSON object with the members `type`, `payload` and \
         optionally `eventId`, each at most once, and no others",
        PUBLISH_BODY_LIMIT,
    )?;
    let mut rng = prets_destinations::os_rng();
    let now = store_now(&state.repo).await?;
    let outcome = prets_destinations::publish(&state.repo, &org, request, now, &mut rng).await?;
    if let PublishOutcome::Replayed(event) = &outcome {
        // Nothing stored or queued: the first answer again.
        tracing::info!(event_id = %event.event_id, "event publish replayed");
        return accepted(event);
    }
    let event = outcome.into_result()?;
    // The store answered after its commit: wake the worker. `notify_one`
    // keeps a permit when no worker is waiting yet, so a publish that lands
    // while the worker is busy still wakes its next wait.
    if event.destinations > 0 {
        state.published.notify_one();
    }
    tracing::info!(
        event_id = %event.event_id,
        destinations = event.destinations,
        "event published"
    );
    accepted(&event)
}

async fn send_test<R: Outbox + 'static>(
    State(state): State<Shared<R>>,
    Organization(org): Organization,
    PathId(id): PathId,
) -> Result<Response, Problem> {
    within(state.test_send_limit.as_ref(), &org, "test events")?;
    let mut rng = prets_destinations::os_rng();
    let now = store_now(&state.repo).await?;
    let event = prets_destinations::send_test(&state.repo, &org, id, now, &mut rng)
        .await?
        .into_result()?;
    state.published.notify_one();
    tracing::info!(destination_id = %id, event_id = %event.event_id, "test event sent");
    accepted(&event)
}

async fn list_attempts<R: Outbox + 'static>(
    State(state): State<Shared<R>>,
    Organization(org): Organization,
    PathId(id): PathId,
    query: Result<Query<ListAttemptsRequest>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(request) = query.map_err(|_| {
        Problem::invalid_query("the query may hold only `limit` and `cursor`, each at most once")
    })?;
    let page = prets_destinations::list_attempts(&state.repo, &org, id, request)
        .await?
        .into_result()?;
    ok_json(&page, false)
}

/// The event id of a path. One that does not parse names no event: a 404
/// like an unknown one.
struct PathEventId(EventId);

impl<S: Send + Sync> FromRequestParts<S> for PathEventId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| not_found_event())?;
        raw.parse().map(PathEventId).map_err(|_| not_found_event())
    }
}

fn not_found_event() -> Problem {
    Problem::not_found("the organization has no retained event with this id")
}

/// An event-log outcome's answer, or its problem.
fn event_answer<T>(outcome: EventOutcome<T>) -> Result<T, Problem> {
    match outcome {
        EventOutcome::Done(v) => Ok(v),
        EventOutcome::Invalid(errors) => Err(Problem::from(ApiError::Invalid(errors))),
        EventOutcome::EventNotFound => Err(not_found_event()),
        EventOutcome::DestinationNotFound => Err(not_found_destination()),
        EventOutcome::Disabled => Err(Problem::from(ApiError::Disabled)),
        EventOutcome::QueueFull => Err(Problem::from(ApiError::QueueFull)),
    }
}

async fn list_events<R: EventLog + 'static>(
    State(state): State<Shared<R>>,
    Organization(org): Organization,
    query: Result<Query<ListEventsRequest>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(request) = query.map_err(|_| {
        Problem::invalid_query(
            "the query may hold only `limit`, `cursor` and `type`, each at most once",
        )
    })?;
    let page =
        event_answer(prets_destinations::ops::list_events(&state.repo, &org, request).await?)?;
    ok_json(&page, false)
}

async fn get_event<R: EventLog + 'static>(
    State(state): State<Shared<R>>,
    Organization(org): Organization,
    PathEventId(id): PathEventId,
) -> Result<Response, Problem> {
    let view = event_answer(prets_destinations::ops::get_event(&state.repo, &org, id).await?)?;
    ok_json(&view, false)
}

/// A `202` with a JSON body.
fn accepted_json(body: &impl Serialize) -> Result<Response, Problem> {
    let mut response = ok_json(body, false)?;
    *response.status_mut() = StatusCode::ACCEPTED;
    Ok(response)
}

async fn resend<R: EventLog + 'static>(
    State(state): State<Shared<R>>,
    Organization(org): Organization,
    PathEventId(id): PathEventId,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    // A resend queues a delivery as a publish does: it spends the same
    // tokens.
    within(state.publish_limit.as_ref(), &org, "publishes and resends")?;
    let request: ResendRequest = json_body(
        &headers,
        body,
        "the body must be a JSON object with the string member `destinationId`, once, and no \
         others",
    )?;
    let now = store_now(&state.repo).await?;
    let outcome =
        event_answer(prets_destinations::ops::resend(&state.repo, &org, id, request, now).await?)?;
    state.published.notify_one();
    tracing::info!(event_id = %id, ?outcome, "resend queued");
    accepted_json(&serde_json::json!({ "eventId": id }))
}

async fn recover<R: EventLog + 'static>(
    State(state): State<Shared<R>>,
    Organization(org): Organization,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    within(state.publish_limit.as_ref(), &org, "publishes and recovers")?;
    let request: RecoverRequest = json_body(
        &headers,
        body,
        "the body must be a JSON object with the string member `since`, once, and no others",
    )?;
    let now = store_now(&state.repo).await?;
    let recovered =
        event_answer(prets_destinations::ops::recover(&state.repo, &org, id, request, now).await?)?;
    if recovered.events > 0 {
        state.published.notify_one();
    }
    tracing::info!(destination_id = %id, events = recovered.events, "deliveries recovered");
    accepted_json(&recovered)
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI_JSON,
    )
        .into_response()
}

/// `GET /healthz`: the process is up and serving.
async fn healthz() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// `GET /readyz`: the store answers and holds this build's schema, asked
/// afresh on each request.
async fn readyz<R: Outbox + 'static>(State(state): State<Shared<R>>) -> Result<Response, Problem> {
    if let Some(readiness) = &state.readiness {
        readiness.ready().await.map_err(Problem::not_ready)?;
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        r#"{"status":"ready"}"#,
    )
        .into_response())
}

async fn not_found() -> Problem {
    Problem::not_found("no resource at this path")
}

async fn method_not_allowed() -> Problem {
    Problem::method_not_allowed()
}

/// Records the matched route template in the request's span (routes only;
/// an unmatched path stays unlogged), and hands it to [`with_request_id`]
/// in the response's extensions, for the request metric.
async fn record_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    if let Some(route) = &route {
        tracing::Span::current().record("route", tracing::field::display(route.as_str()));
    }
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}

/// Gives every request an id: in a span around its handling (so each log
/// line carries it) and in the `x-request-id` response header. Logs the
/// method, the matched route template (never the path as sent, the query,
/// headers or body: they are the client's text), status and duration.
async fn with_request_id(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let id = next_request_id();
    let method = request.method().clone();
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %request.method(),
        route = tracing::field::Empty,
    );
    async move {
        let started = Instant::now();
        let target = request
            .uri()
            .path_and_query()
            .map_or(0, |p| p.as_str().len());
        let header_bytes = request.headers().iter().fold(0usize, |n, (name, value)| {
            n.saturating_add(name.as_str().len() + value.len())
        });
        let mut response =
            if request.headers().len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
                Problem::headers_too_large(MAX_HEADERS, MAX_HEADER_BYTES).into_response()
            } else if target > MAX_TARGET {
                Problem::target_too_long(MAX_TARGET).into_response()
            } else {
                next.run(request).await
            };
        let status = response.status().as_u16();
        let route = response
            .extensions()
            .get::<MatchedPath>()
            .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
        metrics.request(&method, route, status);
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        if response.status().is_server_error() {
            tracing::warn!(status, micros, "served");
        } else {
            tracing::info!(status, micros, "served");
        }
        if let Ok(value) = HeaderValue::try_from(id) {
            response.headers_mut().insert("x-request-id", value);
        }
        response
    }
    .instrument(span)
    .await
}
