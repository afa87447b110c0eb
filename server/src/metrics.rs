//! Prometheus metrics: what the API and the delivery worker count, served by
//! `--metrics-listen` in the Prometheus text format (encoded by
//! `prometheus-client`), and [`Metered`], the store wrapper that counts the
//! store's errors.
//!
//! Every label is a closed set chosen here: an outcome kind, a route
//! template, a status code, a method from a fixed list, a store operation
//! and an error kind. No URL, destination or event id, organization, token,
//! secret or payload reaches one. Recording is atomics (a histogram's
//! observation takes its short lock, never across an await); the queue
//! depth is counted by the store at most every [`DEPTH_SAMPLE_EVERY`],
//! however often the metrics are scraped.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prets_destinations::delivery::{
    AttemptId, AttemptRecord, AttemptReport, ClaimLimits, Claimed, Classification, CompleteOutcome,
    EnqueueOutcome, Event, EventCursor, EventDetail, EventId, EventLog, EventType, FailureCause,
    Lease, LeaseRequest, Outbox, PurgeCutoffs, Purged, QueueDepth, RecoverOutcome, ResendOutcome,
    Target, TransportError,
};
use prets_destinations::{
    DestinationId, DestinationRecord, DestinationRepo, InsertOutcome, RemoveOutcome,
    ReplaceOutcome, SecretDigest, StoreError, TenantId, Timestamp,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::health::{Readiness, ReadyCheck};

/// The `Content-Type` of `GET /metrics`: the Prometheus text format 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The longest a queue-depth gauge is left unsampled while scraped; scrapes
/// closer together than this read the last sample (the store's count may
/// walk the queue).
pub const DEPTH_SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Buckets of an attempt's duration, in seconds: from 5 ms to the longest
/// delivery timeout worth telling apart.
const ATTEMPT_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0,
];

/// Buckets of the time from publish to delivery, in seconds: from 10 ms
/// (delivered at once) to the retry schedule's day.
const LATENCY_BUCKETS: [f64; 16] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 7200.0,
    86400.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreErrorLabels {
    operation: &'static str,
    kind: &'static str,
}

/// Every attempt outcome label, in the order they are exported.
pub const ATTEMPT_OUTCOMES: [&str; 9] = [
    "delivered",
    "gone",
    "http_error",
    "timeout",
    "dns",
    "connect",
    "tls",
    "refused",
    "protocol",
];

/// The outcome label of a classified attempt: `delivered` (2xx), `gone`
/// (410), `http_error` (any other status), or the transport failure's kind.
#[must_use]
pub fn outcome_label(classification: &Classification) -> &'static str {
    match classification {
        Classification::Delivered { .. } => "delivered",
        Classification::Gone => "gone",
        Classification::Failed(failure) => match failure.cause {
            FailureCause::Status(_) => "http_error",
            FailureCause::Transport(TransportError::Timeout) => "timeout",
            FailureCause::Transport(TransportError::Dns) => "dns",
            FailureCause::Transport(TransportError::Connect) => "connect",
            FailureCause::Transport(TransportError::Tls) => "tls",
            FailureCause::Transport(TransportError::Refused) => "refused",
            FailureCause::Transport(_) => "protocol",
        },
    }
}

/// A request's method as a label: the methods the API knows, else `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The label of a route template: its parameters written `:name` instead
/// of `{name}` (`/v1/events/destinations/:id`), since braces inside a label
/// value trip simple exposition-format parsers.
#[must_use]
pub fn route_label(template: &str) -> String {
    template.replace('{', ":").replace('}', "")
}

/// The route label of a request the router matched to no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The metrics of one server: its registry and what it counts.
pub struct Metrics {
    registry: Registry,
    attempts: Family<OutcomeLabel, Counter>,
    attempt_duration: Histogram,
    delivery_latency: Histogram,
    waiting: Gauge,
    leased: Gauge,
    http: Family<HttpLabels, Counter>,
    store_errors: Family<StoreErrorLabels, Counter>,
    depth_every: Duration,
    origin: Instant,
    /// Milliseconds from `origin` of the last depth sample; `u64::MAX`
    /// before the first.
    depth_sampled_ms: AtomicU64,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, every attempt outcome at 0, the depth sampled at most
    /// every [`DEPTH_SAMPLE_EVERY`].
    #[must_use]
    pub fn new() -> Self {
        Self::with_depth_interval(DEPTH_SAMPLE_EVERY)
    }

    /// [`new`](Self::new), sampling the queue depth at most every `every`.
    #[must_use]
    pub fn with_depth_interval(every: Duration) -> Self {
        let mut registry = Registry::default();
        let attempts = Family::<OutcomeLabel, Counter>::default();
        for outcome in ATTEMPT_OUTCOMES {
            let _ = attempts.get_or_create(&OutcomeLabel { outcome });
        }
        registry.register(
            "prets_delivery_attempts",
            "Delivery attempts by outcome: delivered (2xx), gone (410), http_error (another status) or the transport failure",
            attempts.clone(),
        );
        let attempt_duration = Histogram::new(ATTEMPT_BUCKETS);
        registry.register(
            "prets_delivery_attempt_duration_seconds",
            "Time from sending a delivery attempt to its answer or failure",
            attempt_duration.clone(),
        );
        let delivery_latency = Histogram::new(LATENCY_BUCKETS);
        registry.register(
            "prets_delivery_latency_seconds",
            "Time from an event's publish (createdAt) to the end of its successful delivery attempt, per destination",
            delivery_latency.clone(),
        );
        let waiting = Gauge::default();
        registry.register(
            "prets_deliveries_waiting",
            "Pending deliveries under no lease (due or scheduled), sampled",
            waiting.clone(),
        );
        let leased = Gauge::default();
        registry.register(
            "prets_deliveries_leased",
            "Pending deliveries under a lease (attempts in flight), sampled",
            leased.clone(),
        );
        let http = Family::<HttpLabels, Counter>::default();
        registry.register(
            "prets_http_requests",
            "API requests answered, by method, route template and status",
            http.clone(),
        );
        let store_errors = Family::<StoreErrorLabels, Counter>::default();
        registry.register(
            "prets_store_errors",
            "Store calls that failed, by operation and kind (unavailable, busy, failed)",
            store_errors.clone(),
        );
        Self {
            registry,
            attempts,
            attempt_duration,
            delivery_latency,
            waiting,
            leased,
            http,
            store_errors,
            depth_every: every,
            origin: Instant::now(),
            depth_sampled_ms: AtomicU64::new(u64::MAX),
        }
    }

    /// Counts one attempt, classified as `classification`, that took
    /// `took`; a delivered one also observes the time from `created_at` (the
    /// event's publish) to `ended_at` (the attempt's end, both on the
    /// store's clock).
    pub fn attempt(
        &self,
        classification: &Classification,
        took: Duration,
        created_at: Timestamp,
        ended_at: Timestamp,
    ) {
        let outcome = outcome_label(classification);
        self.attempts.get_or_create(&OutcomeLabel { outcome }).inc();
        self.attempt_duration.observe(took.as_secs_f64());
        if matches!(classification, Classification::Delivered { .. }) {
            let ms = ended_at
                .unix_millis()
                .saturating_sub(created_at.unix_millis());
            #[allow(clippy::cast_precision_loss)]
            self.delivery_latency.observe(ms as f64 / 1000.0);
        }
    }

    /// Counts one answered API request: `route` is the matched route's
    /// template (or [`UNMATCHED_ROUTE`]), never the path as sent; its label
    /// is [`route_label`] of it.
    pub fn request(&self, method: &axum::http::Method, route: &str, status: u16) {
        self.http
            .get_or_create(&HttpLabels {
                method: method_label(method),
                route: route_label(route),
                status,
            })
            .inc();
    }

    /// Counts a failed store call.
    pub fn store_error(&self, operation: &'static str, error: &impl StoreError) {
        let kind = if error.is_unavailable() {
            "unavailable"
        } else if error.is_busy() {
            "busy"
        } else {
            "failed"
        };
        self.store_errors
            .get_or_create(&StoreErrorLabels { operation, kind })
            .inc();
    }

    /// Sets the depth gauges from `repo` if the last sample is older than
    /// the interval (or there is none); of scrapes at once, one asks the
    /// store and the others read the gauges as they are. A store error
    /// leaves the gauges as they were (the error is counted by [`Metered`]).
    pub async fn sample_depth<R: Outbox>(&self, repo: &R) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let every = u64::try_from(self.depth_every.as_millis()).unwrap_or(u64::MAX);
        let last = self.depth_sampled_ms.load(Ordering::Acquire);
        if last != u64::MAX && now.saturating_sub(last) < every {
            return;
        }
        if self
            .depth_sampled_ms
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        match repo.queue_depth().await {
            Ok(QueueDepth { waiting, leased }) => {
                self.waiting.set(i64::try_from(waiting).unwrap_or(i64::MAX));
                self.leased.set(i64::try_from(leased).unwrap_or(i64::MAX));
            }
            Err(error) => {
                tracing::warn!(%error, "sampling the queue depth failed");
            }
        }
    }

    /// The metrics in the Prometheus text format.
    ///
    /// # Errors
    /// If encoding fails (it writes to a `String`, so only on a bug).
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// A store whose failed calls are counted in [`Metrics`] by operation (the
/// method's name) and kind; everything else passes through.
pub struct Metered<R> {
    inner: R,
    metrics: std::sync::Arc<Metrics>,
}

impl<R> Metered<R> {
    /// `inner`, counting its errors in `metrics`.
    pub fn new(inner: R, metrics: std::sync::Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    fn count<T, E: StoreError>(
        &self,
        operation: &'static str,
        result: Result<T, E>,
    ) -> Result<T, E> {
        if let Err(error) = &result {
            self.metrics.store_error(operation, error);
        }
        result
    }
}

impl<R> fmt::Debug for Metered<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metered").finish_non_exhaustive()
    }
}

impl<R: Readiness> Readiness for Metered<R> {
    fn ready(&self) -> ReadyCheck<'_> {
        self.inner.ready()
    }
}

impl<R: DestinationRepo> DestinationRepo for Metered<R> {
    type Error = R::Error;

    async fn insert(
        &self,
        tenant: &TenantId,
        record: &DestinationRecord,
    ) -> Result<InsertOutcome, Self::Error> {
        self.count("insert", self.inner.insert(tenant, record).await)
    }

    async fn get(
        &self,
        tenant: &TenantId,
        id: DestinationId,
    ) -> Result<Option<DestinationRecord>, Self::Error> {
        self.count("get", self.inner.get(tenant, id).await)
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<DestinationRecord>, Self::Error> {
        self.count("list", self.inner.list(tenant).await)
    }

    async fn find_by_digest(
        &self,
        digest: &SecretDigest,
    ) -> Result<Vec<(TenantId, DestinationRecord)>, Self::Error> {
        self.count("find_by_digest", self.inner.find_by_digest(digest).await)
    }

    async fn list_page(
        &self,
        tenant: &TenantId,
        after: Option<DestinationId>,
        limit: usize,
    ) -> Result<Vec<DestinationRecord>, Self::Error> {
        self.count("list", self.inner.list_page(tenant, after, limit).await)
    }

    async fn replace(
        &self,
        tenant: &TenantId,
        expected_version: u64,
        record: &DestinationRecord,
    ) -> Result<ReplaceOutcome, Self::Error> {
        self.count(
            "replace",
            self.inner.replace(tenant, expected_version, record).await,
        )
    }

    async fn remove(
        &self,
        tenant: &TenantId,
        id: DestinationId,
    ) -> Result<RemoveOutcome, Self::Error> {
        self.count("remove", self.inner.remove(tenant, id).await)
    }
}

impl<R: Outbox> Outbox for Metered<R> {
    async fn enqueue(
        &self,
        tenant: &TenantId,
        event: &Event,
        target: Target,
    ) -> Result<EnqueueOutcome, Self::Error> {
        self.count("enqueue", self.inner.enqueue(tenant, event, target).await)
    }

    async fn claim(
        &self,
        now: Timestamp,
        limits: ClaimLimits,
        lease: LeaseRequest,
    ) -> Result<Vec<Claimed>, Self::Error> {
        self.count("claim", self.inner.claim(now, limits, lease).await)
    }

    async fn now(&self) -> Result<Timestamp, Self::Error> {
        self.count("now", self.inner.now().await)
    }

    async fn complete_all(
        &self,
        batch: Vec<(Lease, AttemptReport)>,
    ) -> Result<Vec<CompleteOutcome>, Self::Error> {
        self.count("complete", self.inner.complete_all(batch).await)
    }

    async fn renew(&self, lease: &Lease, until: Timestamp) -> Result<bool, Self::Error> {
        self.count("renew", self.inner.renew(lease, until).await)
    }

    async fn release(&self, lease: &Lease) -> Result<bool, Self::Error> {
        self.count("release", self.inner.release(lease).await)
    }

    async fn complete(
        &self,
        lease: &Lease,
        report: AttemptReport,
    ) -> Result<CompleteOutcome, Self::Error> {
        self.count("complete", self.inner.complete(lease, report).await)
    }

    async fn list_attempts(
        &self,
        tenant: &TenantId,
        destination: DestinationId,
        before: Option<AttemptId>,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, Self::Error> {
        self.count(
            "list_attempts",
            self.inner
                .list_attempts(tenant, destination, before, limit)
                .await,
        )
    }

    async fn queue_depth(&self) -> Result<QueueDepth, Self::Error> {
        self.count("queue_depth", self.inner.queue_depth().await)
    }
}

impl<R: EventLog> EventLog for Metered<R> {
    async fn list_events(
        &self,
        tenant: &TenantId,
        event_type: Option<&EventType>,
        cursor: Option<EventCursor>,
        limit: usize,
    ) -> Result<Vec<Event>, Self::Error> {
        self.count(
            "list_events",
            self.inner
                .list_events(tenant, event_type, cursor, limit)
                .await,
        )
    }

    async fn get_event(
        &self,
        tenant: &TenantId,
        event_id: EventId,
    ) -> Result<Option<EventDetail>, Self::Error> {
        self.count("get_event", self.inner.get_event(tenant, event_id).await)
    }

    async fn resend(
        &self,
        tenant: &TenantId,
        event_id: EventId,
        destination_id: DestinationId,
        now: Timestamp,
    ) -> Result<ResendOutcome, Self::Error> {
        self.count(
            "resend",
            self.inner
                .resend(tenant, event_id, destination_id, now)
                .await,
        )
    }

    async fn recover(
        &self,
        tenant: &TenantId,
        destination_id: DestinationId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<RecoverOutcome, Self::Error> {
        self.count(
            "recover",
            self.inner.recover(tenant, destination_id, since, now).await,
        )
    }

    async fn purge(&self, cutoffs: PurgeCutoffs, batch: usize) -> Result<Purged, Self::Error> {
        self.count("purge", self.inner.purge(cutoffs, batch).await)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use prets_destinations::MemoryRepo;

    use super::*;

    fn gauge(text: &str, name: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .map(str::to_owned)
    }

    /// Every classification maps to one of [`ATTEMPT_OUTCOMES`], each kind
    /// to its own label, whatever the status code.
    #[test]
    fn outcome_labels_are_the_closed_set() {
        use prets_destinations::delivery::Failure;
        let failed = |cause| {
            Classification::Failed(Failure {
                cause,
                retry_after: None,
            })
        };
        let cases = [
            (Classification::Delivered { status: 204 }, "delivered"),
            (Classification::Gone, "gone"),
            (failed(FailureCause::Status(500)), "http_error"),
            (failed(FailureCause::Status(302)), "http_error"),
            (
                failed(FailureCause::Transport(TransportError::Timeout)),
                "timeout",
            ),
            (failed(FailureCause::Transport(TransportError::Dns)), "dns"),
            (
                failed(FailureCause::Transport(TransportError::Connect)),
                "connect",
            ),
            (failed(FailureCause::Transport(TransportError::Tls)), "tls"),
            (
                failed(FailureCause::Transport(TransportError::Refused)),
                "refused",
            ),
            (
                failed(FailureCause::Transport(TransportError::Protocol)),
                "protocol",
            ),
        ];
        for (classification, label) in cases {
            assert_eq!(outcome_label(&classification), label, "{classification:?}");
            assert!(ATTEMPT_OUTCOMES.contains(&label));
        }
        assert_eq!(
            route_label("/v1/events/destinations/{id}/test"),
            "/v1/events/destinations/:id/test"
        );
    }

    /// Scrapes within the interval read the last sample; one after it (an
    /// interval of zero) asks the store again.
    #[tokio::test]
    async fn the_depth_is_sampled_at_most_once_per_interval() {
        let repo = MemoryRepo::new();
        let metrics = Metrics::new();
        metrics.sample_depth(&repo).await;
        let first = metrics.encode().unwrap();
        assert_eq!(
            gauge(&first, "prets_deliveries_waiting").as_deref(),
            Some("0")
        );
        // A store whose count would now differ: the gauge keeps the sample.
        let tenant: TenantId = "t".parse().unwrap();
        let keyring = prets_destinations::Keyring::new(
            prets_destinations::SealingKey::from_rng(
                prets_destinations::KeyId::new(1),
                &mut prets_destinations::os_rng(),
            ),
            [],
        )
        .unwrap();
        let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
        let plan = prets_destinations::ops::plan_create(
            prets_destinations::CreateDestinationRequest::new("d", "https://example.com/hook"),
            &tenant,
            now,
            &mut prets_destinations::os_rng(),
            keyring.current(),
        )
        .expect("a valid request");
        assert_eq!(
            repo.insert(&tenant, &plan.record).await.unwrap(),
            InsertOutcome::Inserted
        );
        let event = Event::new(
            "t.e",
            "{}".to_owned(),
            now,
            &mut prets_destinations::os_rng(),
        )
        .unwrap();
        let _ = repo
            .enqueue(&tenant, &event, Target::AllEnabled)
            .await
            .unwrap();
        metrics.sample_depth(&repo).await;
        let again = metrics.encode().unwrap();
        assert_eq!(
            gauge(&again, "prets_deliveries_waiting").as_deref(),
            Some("0")
        );
        let eager = Arc::new(Metrics::with_depth_interval(Duration::ZERO));
        eager.sample_depth(&repo).await;
        let sampled = eager.encode().unwrap();
        assert_eq!(
            gauge(&sampled, "prets_deliveries_waiting").as_deref(),
            Some("1")
        );
        assert_eq!(
            gauge(&sampled, "prets_deliveries_leased").as_deref(),
            Some("0")
        );
    }
}
