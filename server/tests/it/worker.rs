//! The delivery worker over real HTTPS on 127.0.0.1: a receiver with a
//! certificate made here, trusted as a root, reached by a name a stub
//! resolver answers; the worker driven directly on a store (SQLite on a temp
//! file, and MemoryRepo for the core scenarios), events published with the
//! core's operations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prets_destinations::delivery::{
    AttemptOutcome, AttemptRecord, DisablePolicy, DisabledReason, Outbox,
};
use prets_destinations::wire::PublishedEvent;
use prets_destinations::{
    CreateDestinationRequest, CreateOutcome, DeleteOutcome, DestinationId, DestinationRepo,
    HostPolicy, KeyId, Keyring, MemoryRepo, PublishRequest, RotateOutcome, RotateSecretRequest,
    SealingKey, TenantId, TestOutcome, Timestamp, UpdateDestinationRequest, UpdateOutcome, create,
    delete, os_rng, publish, rotate, send_test, update,
};
use prets_destinations_server::delivery::{
    DeliveryClient, PUBLISH_GAP, Resolve, Worker, WorkerHandle, WorkerOptions,
    parse_root_certificates, slow_lane,
};
use prets_destinations_server::{Config, DeliveryConfig, Metrics, SqliteRepo, load_keyring};
use tokio::sync::Notify;

use crate::support::receiver::{Options, Receiver, Recorded, Reply};
use crate::support::resolver::{loopback, stub};
use crate::support::{self, captured_logs};

fn now() -> Timestamp {
    Timestamp::try_from(std::time::SystemTime::now()).unwrap()
}

/// Delivery settings trusting the receivers' certificates, admitting
/// 127.0.0.1/32, with `schedule` between attempts.
fn settings(receivers: &[&Receiver], schedule: &str) -> DeliveryConfig {
    DeliveryConfig {
        policy: HostPolicy::new().allow("127.0.0.1/32".parse().unwrap()),
        root_certificates: receivers
            .iter()
            .flat_map(|r| parse_root_certificates(r.cert_pem.as_bytes()).unwrap())
            .collect(),
        retry_schedule: schedule.parse().unwrap(),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        concurrency: 8,
        ..DeliveryConfig::default()
    }
}

/// Waits (up to 10 s) until `done` holds.
async fn eventually(what: &str, done: impl FnMut() -> bool) {
    support::eventually(what, Duration::from_secs(10), done).await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A store with one organization, its keyring, and the worker's wake-up.
struct Bench<R> {
    repo: Arc<R>,
    keyring: Arc<Keyring>,
    tenant: TenantId,
    published: Arc<Notify>,
    _dir: Option<tempfile::TempDir>,
}

fn keyring() -> Arc<Keyring> {
    Arc::new(Keyring::new(SealingKey::new(KeyId::new(1), &[0x42; 32]), []).unwrap())
}

impl Bench<SqliteRepo> {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = SqliteRepo::open(&dir.path().join("d.sqlite3")).unwrap();
        Self::over(repo, Some(dir))
    }
}

impl Bench<MemoryRepo> {
    fn memory() -> Self {
        Self::over(MemoryRepo::new(), None)
    }
}

impl<R: Outbox + 'static> Bench<R> {
    /// Another organization on the same store, keyring and wake-up.
    fn organization(&self, tenant: &str) -> Self {
        Self {
            repo: Arc::clone(&self.repo),
            keyring: Arc::clone(&self.keyring),
            tenant: tenant.parse().unwrap(),
            published: Arc::clone(&self.published),
            _dir: None,
        }
    }

    fn over(repo: R, dir: Option<tempfile::TempDir>) -> Self {
        Self {
            repo: Arc::new(repo),
            keyring: keyring(),
            tenant: "org_a".parse().unwrap(),
            published: Arc::new(Notify::new()),
            _dir: dir,
        }
    }

    fn worker_with(
        &self,
        config: &DeliveryConfig,
        resolver: Arc<dyn Resolve>,
        options: WorkerOptions,
    ) -> WorkerHandle {
        let client = DeliveryClient::new(config, resolver).unwrap();
        Worker::new(
            Arc::clone(&self.repo),
            Arc::clone(&self.keyring),
            client,
            config,
            Arc::clone(&self.published),
        )
        .with_options(options)
        .spawn()
    }

    fn worker(&self, config: &DeliveryConfig, resolver: Arc<dyn Resolve>) -> WorkerHandle {
        let options = WorkerOptions::default().poll_interval(Duration::from_millis(50));
        self.worker_with(config, resolver, options)
    }

    /// A new destination at `url`: its id and its bearer secret.
    async fn destination(&self, url: &str) -> (DestinationId, String) {
        let request = CreateDestinationRequest::new("Receiver", url);
        let outcome = create(
            &*self.repo,
            &self.tenant,
            request,
            now(),
            &mut os_rng(),
            self.keyring.current(),
        )
        .await
        .unwrap();
        let CreateOutcome::Created(created) = outcome else {
            panic!("{outcome:?}")
        };
        let secret = created.bearer_secret().expose_secret().to_owned();
        (created.destination_id(), secret)
    }

    /// Publishes `payload` as an `invoice.paid` event and wakes the worker,
    /// as the route does after the commit.
    async fn publish(&self, payload: &str) -> PublishedEvent {
        let request = PublishRequest::new("invoice.paid", payload.to_owned()).unwrap();
        let outcome = publish(&*self.repo, &self.tenant, request, now(), &mut os_rng())
            .await
            .unwrap();
        let event = outcome.into_result().unwrap();
        self.published.notify_one();
        event
    }

    async fn attempts(&self, id: DestinationId) -> Vec<AttemptRecord> {
        self.repo
            .list_attempts(&self.tenant, id, None, 100)
            .await
            .unwrap()
    }

    /// Waits until `id` has `n` recorded attempts; returns them newest first.
    async fn wait_attempts(&self, id: DestinationId, n: usize) -> Vec<AttemptRecord> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let attempts = self.attempts(id).await;
            if attempts.len() >= n {
                assert_eq!(attempts.len(), n, "more attempts than expected");
                return attempts;
            }
            assert!(Instant::now() < deadline, "waited for {n} attempts");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn rotate(&self, id: DestinationId) -> String {
        let outcome = rotate(
            &*self.repo,
            &self.tenant,
            id,
            RotateSecretRequest::default(),
            now(),
            &mut os_rng(),
            self.keyring.current(),
        )
        .await
        .unwrap();
        let RotateOutcome::Rotated(rotated) = outcome else {
            panic!("{outcome:?}")
        };
        rotated.bearer_secret().expose_secret().to_owned()
    }

    async fn set_enabled(&self, id: DestinationId, enabled: bool) {
        let request: UpdateDestinationRequest =
            serde_json::from_str(&format!(r#"{{"enabled":{enabled}}}"#)).unwrap();
        let outcome = update(
            &*self.repo,
            &self.tenant,
            id,
            request,
            now(),
            &mut os_rng(),
            self.keyring.current(),
        )
        .await
        .unwrap();
        assert!(matches!(outcome, UpdateOutcome::Updated(_)), "{outcome:?}");
    }
}

const PAYLOAD: &str =
    r#"{ "amount" : 12.50, "note":"ünïcode \u00e9 PAYLOAD-MARKER", "list":[1, 2,3] }"#;

// ---------------------------------------------------------------------------
// Scenarios run on both stores.

async fn delivers_once_with_secret_and_event_id<R: Outbox + 'static>(bench: Bench<R>) {
    let rx = Receiver::start(Options::default()).await;
    let (id, secret) = bench.destination(&rx.name_url("/hooks?x=1")).await;
    let (_other, other_secret) = bench.destination(&rx.name_url("/other")).await;
    let worker = bench.worker(&settings(&[&rx], "1s"), loopback());
    let event = bench.publish(PAYLOAD).await;
    assert_eq!(event.destinations, 2);

    let attempts = bench.wait_attempts(id, 1).await;
    eventually("both deliveries", || rx.requests().len() == 2).await;
    // No second delivery of the same event.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests = rx.requests();
    assert_eq!(requests.len(), 2);
    let mine = requests.iter().find(|r| r.target == "/hooks?x=1").unwrap();
    assert_eq!(mine.method, "POST");
    assert_eq!(mine.header("authorization"), format!("Bearer {secret}"));
    assert_eq!(mine.header("webhook-id"), event.event_id.to_string());
    assert!(
        contains(&mine.body, PAYLOAD.as_bytes()),
        "payload bytes kept"
    );
    let body: serde_json::Value = serde_json::from_slice(&mine.body).unwrap();
    assert_eq!(body["eventId"], event.event_id.to_string());
    assert_eq!(body["type"], "invoice.paid");
    let other = requests.iter().find(|r| r.target == "/other").unwrap();
    assert_eq!(
        other.header("authorization"),
        format!("Bearer {other_secret}")
    );
    assert_eq!(other.header("webhook-id"), event.event_id.to_string());

    assert_eq!(attempts[0].attempt, 1);
    assert_eq!(attempts[0].event_id, event.event_id);
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);
    assert_eq!(attempts[0].response_status, Some(204));
    assert_eq!(attempts[0].next_attempt_at, None);
    worker.shutdown().await;
}

async fn retries_until_success<R: Outbox + 'static>(bench: Bench<R>) {
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(500));
    rx.reply(Reply::status(500));
    rx.reply(Reply::status(200));
    let (id, secret) = bench.destination(&rx.name_url("/")).await;
    let worker = bench.worker(&settings(&[&rx], "0s,0s,0s"), loopback());
    let event = bench.publish(PAYLOAD).await;

    let attempts = bench.wait_attempts(id, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests = rx.requests();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        assert_eq!(r.header("webhook-id"), event.event_id.to_string());
        assert_eq!(r.header("authorization"), format!("Bearer {secret}"));
        assert_eq!(r.body, requests[0].body);
    }
    // Newest first.
    let numbers: Vec<u32> = attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, [3, 2, 1]);
    let statuses: Vec<Option<u16>> = attempts.iter().map(|a| a.response_status).collect();
    assert_eq!(statuses, [Some(200), Some(500), Some(500)]);
    let outcomes: Vec<AttemptOutcome> = attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [
            AttemptOutcome::Succeeded,
            AttemptOutcome::Failed,
            AttemptOutcome::Failed
        ]
    );
    assert!(attempts[1].next_attempt_at.is_some());
    assert!(attempts[2].next_attempt_at.is_some());
    assert_eq!(attempts[0].next_attempt_at, None);
    assert!(attempts.iter().all(|a| a.event_id == event.event_id));
    worker.shutdown().await;
}

async fn gone_disables_and_reenabling_delivers<R: Outbox + 'static>(bench: Bench<R>) {
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(410));
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    let worker = bench.worker(&settings(&[&rx], "1s"), loopback());
    bench.publish(PAYLOAD).await;

    let attempts = bench.wait_attempts(id, 1).await;
    assert_eq!(attempts[0].response_status, Some(410));
    assert_eq!(attempts[0].next_attempt_at, None);
    let record = bench.repo.get(&bench.tenant, id).await.unwrap().unwrap();
    assert!(!record.enabled);
    assert_eq!(record.disabled_reason, Some(DisabledReason::Gone));

    // Disabled: nothing is queued or sent.
    assert_eq!(bench.publish(PAYLOAD).await.destinations, 0);
    let test = send_test(&*bench.repo, &bench.tenant, id, now(), &mut os_rng())
        .await
        .unwrap();
    assert_eq!(test, TestOutcome::Disabled);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.requests().len(), 1);

    bench.set_enabled(id, true).await;
    let event = bench.publish(PAYLOAD).await;
    assert_eq!(event.destinations, 1);
    eventually("delivered after re-enabling", || rx.requests().len() == 2).await;
    assert_eq!(
        rx.requests()[1].header("webhook-id"),
        event.event_id.to_string()
    );
    let attempts = bench.wait_attempts(id, 2).await;
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);
    worker.shutdown().await;
}

#[tokio::test]
async fn sqlite_delivers_once_with_the_secret_and_the_event_id() {
    delivers_once_with_secret_and_event_id(Bench::sqlite()).await;
}

#[tokio::test]
async fn memory_delivers_once_with_the_secret_and_the_event_id() {
    delivers_once_with_secret_and_event_id(Bench::memory()).await;
}

#[tokio::test]
async fn sqlite_500_500_200_is_three_attempts_of_one_event() {
    retries_until_success(Bench::sqlite()).await;
}

#[tokio::test]
async fn memory_500_500_200_is_three_attempts_of_one_event() {
    retries_until_success(Bench::memory()).await;
}

#[tokio::test]
async fn sqlite_410_disables_and_reenabling_delivers_again() {
    gone_disables_and_reenabling_delivers(Bench::sqlite()).await;
}

#[tokio::test]
async fn memory_410_disables_and_reenabling_delivers_again() {
    gone_disables_and_reenabling_delivers(Bench::memory()).await;
}

// ---------------------------------------------------------------------------
// SQLite only.

#[tokio::test]
async fn retry_after_on_503_is_honoured() {
    let bench = Bench::sqlite();
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(500));
    rx.reply(Reply::status(503).header("Retry-After", "1"));
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    // The schedule alone would retry at once; its longest step (2 s)
    // caps what a receiver may ask for.
    let worker = bench.worker(&settings(&[&rx], "0s,0s,2s"), loopback());
    bench.publish(PAYLOAD).await;

    let attempts = bench.wait_attempts(id, 3).await;
    let requests = rx.requests();
    assert_eq!(requests.len(), 3);
    let after_500 = requests[1].at - requests[0].at;
    let after_503 = requests[2].at - requests[1].at;
    assert!(after_500 < Duration::from_millis(900), "{after_500:?}");
    assert!(after_503 >= Duration::from_secs(1), "{after_503:?}");
    let asked = &attempts[1];
    assert_eq!(asked.response_status, Some(503));
    let next = asked.next_attempt_at.unwrap();
    assert!(next.unix_millis() >= asked.started_at.unix_millis() + 1000);
    assert!(attempts[2].next_attempt_at.unwrap().unix_millis() < next.unix_millis() - 500);
    worker.shutdown().await;
}

#[tokio::test]
async fn a_307_is_not_followed() {
    let bench = Bench::sqlite();
    let rx = Receiver::start(Options::default()).await;
    let elsewhere = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(307).header("Location", &elsewhere.name_url("/stolen")));
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    let worker = bench.worker(&settings(&[&rx, &elsewhere], "1h"), loopback());
    bench.publish(PAYLOAD).await;

    let attempts = bench.wait_attempts(id, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.requests().len(), 1);
    assert_eq!(elsewhere.connections(), 0);
    assert_eq!(attempts[0].outcome, AttemptOutcome::Failed);
    assert_eq!(attempts[0].response_status, Some(307));
    assert!(attempts[0].error.as_deref().unwrap().contains("307"));
    assert!(
        attempts[0].next_attempt_at.is_some(),
        "retried on the schedule"
    );
    worker.shutdown().await;
}

#[tokio::test]
async fn attempts_after_a_rotation_carry_the_new_secret() {
    let bench = Bench::sqlite();
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(500));
    let (id, old) = bench.destination(&rx.name_url("/")).await;
    let worker = bench.worker(&settings(&[&rx], "1s"), loopback());
    let event = bench.publish(PAYLOAD).await;
    eventually("first attempt", || rx.requests().len() == 1).await;
    let new = bench.rotate(id).await;
    assert_ne!(new, old);

    // The retry of the same event, planned after the rotation.
    eventually("retry", || rx.requests().len() == 2).await;
    let requests = rx.requests();
    assert_eq!(requests[0].header("authorization"), format!("Bearer {old}"));
    assert_eq!(requests[1].header("authorization"), format!("Bearer {new}"));
    assert_eq!(requests[1].header("webhook-id"), event.event_id.to_string());
    // And a new event.
    bench.publish(PAYLOAD).await;
    eventually("new event", || rx.requests().len() == 3).await;
    assert_eq!(
        rx.requests()[2].header("authorization"),
        format!("Bearer {new}")
    );
    worker.shutdown().await;
}

#[tokio::test]
async fn a_deleted_destination_receives_nothing() {
    let bench = Bench::sqlite();
    let rx = Receiver::start(Options::default()).await;
    let config = settings(&[&rx], "1s");

    // Queued, then deleted before any worker ran.
    let (id, _) = bench.destination(&rx.name_url("/queued")).await;
    assert_eq!(bench.publish(PAYLOAD).await.destinations, 1);
    assert_eq!(
        delete(&*bench.repo, &bench.tenant, id).await.unwrap(),
        DeleteOutcome::Deleted
    );
    let worker = bench.worker(&config, loopback());

    // A failed delivery whose retry is pending when the destination goes.
    rx.reply(Reply::status(500));
    let (id, _) = bench.destination(&rx.name_url("/retrying")).await;
    bench.publish(PAYLOAD).await;
    eventually("first attempt", || rx.requests().len() == 1).await;
    assert_eq!(
        delete(&*bench.repo, &bench.tenant, id).await.unwrap(),
        DeleteOutcome::Deleted
    );
    tokio::time::sleep(Duration::from_millis(1800)).await;

    let requests = rx.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].target, "/retrying");
    assert_eq!(bench.publish(PAYLOAD).await.destinations, 0);
    worker.shutdown().await;
}

#[tokio::test]
async fn without_the_allow_list_loopback_answers_are_refused_before_connecting() {
    for answers in [&["127.0.0.1"][..], &["93.184.215.14", "127.0.0.1"][..]] {
        let bench = Bench::sqlite();
        let rx = Receiver::start(Options::default()).await;
        let mut config = settings(&[&rx], "1h");
        config.policy = HostPolicy::new();
        let (id, _) = bench.destination(&rx.name_url("/")).await;
        let worker = bench.worker(&config, stub(answers));
        bench.publish(PAYLOAD).await;

        let attempts = bench.wait_attempts(id, 1).await;
        assert_eq!(attempts[0].outcome, AttemptOutcome::Refused, "{answers:?}");
        assert_eq!(attempts[0].response_status, None);
        assert!(attempts[0].error.is_some());
        worker.shutdown().await;
        assert_eq!(rx.connections(), 0, "{answers:?}");
    }
}

#[tokio::test]
async fn a_slow_destination_does_not_delay_another() {
    let bench = Bench::sqlite();
    let slow = Receiver::start(Options::default()).await;
    let fast = Receiver::start(Options::default()).await;
    slow.reply(Reply::status(200).delay(Duration::from_secs(3)));
    slow.reply(Reply::status(200).delay(Duration::from_secs(3)));
    let (slow_id, _) = bench.destination(&slow.name_url("/")).await;
    let (fast_id, _) = bench.destination(&fast.name_url("/")).await;
    let worker = bench.worker(&settings(&[&slow, &fast], "1s"), loopback());

    let published = Instant::now();
    bench.publish(PAYLOAD).await;
    let attempts = bench.wait_attempts(fast_id, 1).await;
    assert!(published.elapsed() < Duration::from_secs(2));
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);
    assert_eq!(slow.requests().len(), 1, "the slow one is being sent");
    assert!(
        bench.attempts(slow_id).await.is_empty(),
        "and not answered yet"
    );

    // A second event reaches the fast one while the slow one still stalls.
    bench.publish(PAYLOAD).await;
    bench.wait_attempts(fast_id, 2).await;
    assert!(bench.attempts(slow_id).await.is_empty());
    let attempts = bench.wait_attempts(slow_id, 2).await;
    assert!(
        attempts
            .iter()
            .all(|a| a.outcome == AttemptOutcome::Succeeded)
    );
    worker.shutdown().await;
}

#[tokio::test]
async fn shutdown_releases_an_attempt_in_flight_and_a_new_worker_delivers_at_once() {
    let bench = Bench::sqlite();
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(200).delay(Duration::from_secs(30)));
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    let config = settings(&[&rx], "1s");
    let options = WorkerOptions::default()
        .poll_interval(Duration::from_millis(50))
        .shutdown_grace(Duration::from_millis(200));
    let worker = bench.worker_with(&config, loopback(), options);
    let event = bench.publish(PAYLOAD).await;
    eventually("the stalled request", || rx.requests().len() == 1).await;

    let stopping = Instant::now();
    worker.shutdown().await;
    assert!(stopping.elapsed() < Duration::from_secs(2));
    assert!(
        bench.attempts(id).await.is_empty(),
        "the attempt was cut short"
    );

    // The lease (2 × 5 s + 5 s) was released: another worker takes it now.
    let restarted = Instant::now();
    let worker = bench.worker(&config, loopback());
    let attempts = bench.wait_attempts(id, 1).await;
    assert!(restarted.elapsed() < Duration::from_secs(3));
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);
    assert_eq!(attempts[0].event_id, event.event_id);
    assert_eq!(rx.requests().len(), 2);
    worker.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_an_attempt_in_flight_finish_within_the_grace() {
    let bench = Bench::sqlite();
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(200).delay(Duration::from_millis(500)));
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    let config = settings(&[&rx], "1s");
    let worker = bench.worker(&config, loopback());
    bench.publish(PAYLOAD).await;
    eventually("the request", || rx.requests().len() == 1).await;

    worker.shutdown().await;
    let attempts = bench.attempts(id).await;
    assert_eq!(attempts.len(), 1, "finished before the worker stopped");
    assert_eq!(attempts[0].response_status, Some(200));
    let worker = bench.worker(&config, loopback());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.requests().len(), 1, "nothing left to resume");
    worker.shutdown().await;
}

#[tokio::test]
async fn shutdown_never_cuts_short_the_recording_of_an_answered_attempt() {
    // The answer arrives, the store is slow to write it, and the grace runs
    // out meanwhile: the shutdown waits for the write, so the attempt is
    // recorded and a restart does not send it again.
    use std::sync::atomic::Ordering;
    let bench = Bench::over(Scripted::default(), None);
    let rx = Receiver::start(Options::default()).await;
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    let config = settings(&[&rx], "1s");
    let options = WorkerOptions::default()
        .poll_interval(Duration::from_millis(50))
        .shutdown_grace(Duration::from_millis(100));
    bench.repo.hold_completes.store(true, Ordering::SeqCst);
    let worker = bench.worker_with(&config, loopback(), options);
    bench.publish(PAYLOAD).await;
    eventually("the answer, being written", || {
        bench.repo.completing.load(Ordering::SeqCst) == 1
    })
    .await;

    let stopping = tokio::spawn(worker.shutdown());
    // Sequencing only: let the grace run out while the write waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !stopping.is_finished(),
        "the stop did not wait for the write"
    );
    bench.repo.hold_completes.store(false, Ordering::SeqCst);
    stopping.await.unwrap();
    let attempts = bench.attempts(id).await;
    assert_eq!(attempts.len(), 1, "the answered attempt was not recorded");
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);

    let worker = bench.worker(&config, loopback());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.requests().len(), 1, "sent again after the restart");
    worker.shutdown().await;
}

#[tokio::test]
async fn shutdown_records_an_attempt_that_times_out_within_the_default_grace() {
    // No answer within the delivery timeout, a stop while the request waits,
    // and a slow write of the timeout: by default the grace covers the
    // timeout and the write, so the attempt is recorded, never released.
    use std::sync::atomic::Ordering;
    let bench = Bench::over(Scripted::default(), None);
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(200).delay(Duration::from_secs(30)));
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    let mut config = settings(&[&rx], "1s");
    config.timeout = Duration::from_secs(1);
    bench.repo.hold_completes.store(true, Ordering::SeqCst);
    let worker = bench.worker(&config, loopback());
    bench.publish(PAYLOAD).await;
    eventually("the stalled request", || rx.requests().len() == 1).await;

    let stopping = tokio::spawn(worker.shutdown());
    eventually("the timeout, being written", || {
        bench.repo.completing.load(Ordering::SeqCst) == 1
    })
    .await;
    // Sequencing only: the old grace (the timeout) would be over by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !stopping.is_finished(),
        "the stop did not wait for the write"
    );
    bench.repo.hold_completes.store(false, Ordering::SeqCst);
    stopping.await.unwrap();
    let attempts = bench.attempts(id).await;
    assert_eq!(attempts.len(), 1, "the timed-out attempt was not recorded");
    assert_eq!(attempts[0].error.as_deref(), Some("timeout"));
    assert!(
        attempts[0].next_attempt_at.is_some(),
        "a retry is scheduled"
    );
}

#[tokio::test]
async fn unbounded_durations_in_the_settings_do_not_stop_the_worker() {
    // `Duration::MAX` everywhere a library user may put it: no
    // `Instant + Duration` overflow, the event is delivered and the worker
    // stops.
    let bench = Bench::sqlite();
    let rx = Receiver::start(Options::default()).await;
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    let mut config = settings(&[&rx], "1s");
    config.timeout = Duration::MAX;
    config.pool_idle_timeout = Duration::MAX;
    let options = WorkerOptions::default()
        .poll_interval(Duration::MAX)
        .lease(Duration::MAX)
        .shutdown_grace(Duration::MAX);
    let worker = bench.worker_with(&config, loopback(), options);
    bench.publish(PAYLOAD).await;

    let attempts = bench.wait_attempts(id, 1).await;
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);
    assert_eq!(rx.requests().len(), 1);
    worker.shutdown().await;
}

#[tokio::test]
async fn a_lease_is_renewed_while_the_attempt_runs() {
    // Two workers on one store, leases of 1 s, an answer after 2.5 s: the
    // renewals keep the second worker off the delivery.
    let bench = Bench::sqlite();
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(200).delay(Duration::from_millis(2500)));
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    let config = settings(&[&rx], "1s");
    let options = WorkerOptions::default()
        .poll_interval(Duration::from_millis(50))
        .lease(Duration::from_secs(1));
    let first = bench.worker_with(&config, loopback(), options);
    let second = bench.worker_with(&config, loopback(), options);
    bench.publish(PAYLOAD).await;

    let attempts = bench.wait_attempts(id, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.requests().len(), 1, "one worker sent it, once");
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);
    assert!(attempts[0].duration_ms >= 2500);
    assert_eq!(bench.attempts(id).await.len(), 1);
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn a_lease_is_renewed_until_the_attempt_is_recorded() {
    // Two workers on one store, leases of 1 s, an answer at once and a
    // write held for 2.5 s: the renewals go on while the write waits, so the
    // second worker (claiming every 50 ms) never takes the delivery over and
    // the write finds its lease.
    use std::sync::atomic::Ordering;
    let bench = Bench::over(Scripted::default(), None);
    let rx = Receiver::start(Options::default()).await;
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    let config = settings(&[&rx], "1s");
    let options = WorkerOptions::default()
        .poll_interval(Duration::from_millis(50))
        .lease(Duration::from_secs(1));
    bench.repo.hold_completes.store(true, Ordering::SeqCst);
    let first = bench.worker_with(&config, loopback(), options);
    let second = bench.worker_with(&config, loopback(), options);
    bench.publish(PAYLOAD).await;
    eventually("the answer, being written", || {
        bench.repo.completing.load(Ordering::SeqCst) == 1
    })
    .await;
    // Time for the lease to have run out twice over without renewals.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        rx.requests().len(),
        1,
        "the delivery was taken over while its result was being written"
    );
    bench.repo.hold_completes.store(false, Ordering::SeqCst);
    let attempts = bench.wait_attempts(id, 1).await;
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);
    first.shutdown().await;
    second.shutdown().await;
    assert_eq!(bench.repo.completing.load(Ordering::SeqCst), 1);
    assert_eq!(rx.requests().len(), 1, "sent twice");
    assert_eq!(bench.attempts(id).await.len(), 1);
}

#[tokio::test]
async fn a_publish_and_a_due_retry_wake_the_worker_before_its_poll() {
    let bench = Bench::sqlite();
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(500));
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    let options = WorkerOptions::default().poll_interval(Duration::from_secs(3600));
    let worker = bench.worker_with(&settings(&[&rx], "1s"), loopback(), options);
    // Let the worker's first claim find nothing and go to sleep.
    tokio::time::sleep(Duration::from_millis(200)).await;
    bench.publish(PAYLOAD).await;
    bench.wait_attempts(id, 1).await;
    // The retry it scheduled (1 s + jitter) wakes it, not the hour-long poll.
    let attempts = bench.wait_attempts(id, 2).await;
    let gap = attempts[0].started_at.unix_millis() - attempts[1].started_at.unix_millis();
    assert!((1000..3000).contains(&gap), "{gap} ms");
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);
    worker.shutdown().await;
}

/// A store whose claims fail while `failing` is set, counting them, whose
/// reads of a destination are counted in `gets`, whose completions
/// (counted in `completing`) wait while `hold_completes` is set, whose
/// batches of completions are listed in `batches`, and whose clock is
/// `ahead_ms` ahead of the system's.
#[derive(Default)]
struct Scripted {
    inner: MemoryRepo,
    failing: std::sync::atomic::AtomicBool,
    claims: std::sync::atomic::AtomicUsize,
    gets: std::sync::atomic::AtomicUsize,
    hold_completes: std::sync::atomic::AtomicBool,
    completing: std::sync::atomic::AtomicUsize,
    batches: std::sync::Mutex<Vec<usize>>,
    ahead_ms: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
struct Flaky;

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the store is unavailable")
    }
}

impl std::error::Error for Flaky {}

impl prets_destinations::StoreError for Flaky {
    fn is_unavailable(&self) -> bool {
        true
    }
}

fn flaky<T>(r: Result<T, std::convert::Infallible>) -> Result<T, Flaky> {
    r.map_err(|e| match e {})
}

impl DestinationRepo for Scripted {
    type Error = Flaky;
    async fn insert(
        &self,
        t: &TenantId,
        r: &prets_destinations::DestinationRecord,
    ) -> Result<prets_destinations::InsertOutcome, Flaky> {
        flaky(self.inner.insert(t, r).await)
    }
    async fn get(
        &self,
        t: &TenantId,
        id: DestinationId,
    ) -> Result<Option<prets_destinations::DestinationRecord>, Flaky> {
        use std::sync::atomic::Ordering;
        self.gets.fetch_add(1, Ordering::SeqCst);
        flaky(self.inner.get(t, id).await)
    }
    async fn list(
        &self,
        t: &TenantId,
    ) -> Result<Vec<prets_destinations::DestinationRecord>, Flaky> {
        flaky(self.inner.list(t).await)
    }
    async fn find_by_digest(
        &self,
        d: &prets_destinations::SecretDigest,
    ) -> Result<Vec<(TenantId, prets_destinations::DestinationRecord)>, Flaky> {
        flaky(self.inner.find_by_digest(d).await)
    }
    async fn list_page(
        &self,
        t: &TenantId,
        after: Option<DestinationId>,
        limit: usize,
    ) -> Result<Vec<prets_destinations::DestinationRecord>, Flaky> {
        flaky(self.inner.list_page(t, after, limit).await)
    }
    async fn replace(
        &self,
        t: &TenantId,
        v: u64,
        r: &prets_destinations::DestinationRecord,
    ) -> Result<prets_destinations::ReplaceOutcome, Flaky> {
        flaky(self.inner.replace(t, v, r).await)
    }
    async fn remove(
        &self,
        t: &TenantId,
        id: DestinationId,
    ) -> Result<prets_destinations::RemoveOutcome, Flaky> {
        flaky(self.inner.remove(t, id).await)
    }
}

impl Outbox for Scripted {
    async fn enqueue(
        &self,
        t: &TenantId,
        e: &prets_destinations::delivery::Event,
        target: prets_destinations::delivery::Target,
    ) -> Result<prets_destinations::delivery::EnqueueOutcome, Flaky> {
        flaky(self.inner.enqueue(t, e, target).await)
    }
    async fn claim(
        &self,
        now: Timestamp,
        limits: prets_destinations::delivery::ClaimLimits,
        lease: prets_destinations::delivery::LeaseRequest,
    ) -> Result<Vec<prets_destinations::delivery::Claimed>, Flaky> {
        use std::sync::atomic::Ordering;
        self.claims.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(Flaky);
        }
        flaky(self.inner.claim(now, limits, lease).await)
    }
    async fn now(&self) -> Result<Timestamp, Flaky> {
        use std::sync::atomic::Ordering;
        let ahead = Duration::from_millis(self.ahead_ms.load(Ordering::SeqCst));
        Ok(now().saturating_add(ahead))
    }
    async fn complete_all(
        &self,
        batch: Vec<(
            prets_destinations::delivery::Lease,
            prets_destinations::delivery::AttemptReport,
        )>,
    ) -> Result<Vec<prets_destinations::delivery::CompleteOutcome>, Flaky> {
        self.batches.lock().unwrap().push(batch.len());
        let mut out = Vec::new();
        for (lease, report) in batch {
            out.push(self.complete(&lease, report).await?);
        }
        Ok(out)
    }
    async fn renew(
        &self,
        l: &prets_destinations::delivery::Lease,
        until: Timestamp,
    ) -> Result<bool, Flaky> {
        flaky(self.inner.renew(l, until).await)
    }
    async fn release(&self, l: &prets_destinations::delivery::Lease) -> Result<bool, Flaky> {
        flaky(self.inner.release(l).await)
    }
    async fn complete(
        &self,
        l: &prets_destinations::delivery::Lease,
        r: prets_destinations::delivery::AttemptReport,
    ) -> Result<prets_destinations::delivery::CompleteOutcome, Flaky> {
        use std::sync::atomic::Ordering;
        self.completing.fetch_add(1, Ordering::SeqCst);
        while self.hold_completes.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        flaky(self.inner.complete(l, r).await)
    }
    async fn list_attempts(
        &self,
        t: &TenantId,
        d: DestinationId,
        before: Option<prets_destinations::delivery::AttemptId>,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, Flaky> {
        flaky(self.inner.list_attempts(t, d, before, limit).await)
    }
    async fn queue_depth(&self) -> Result<prets_destinations::delivery::QueueDepth, Flaky> {
        flaky(self.inner.queue_depth().await)
    }
}

#[tokio::test]
async fn store_errors_back_off_instead_of_spinning_and_work_resumes() {
    use std::sync::atomic::Ordering;
    let bench = Bench::over(
        Scripted {
            failing: true.into(),
            ..Scripted::default()
        },
        None,
    );
    let rx = Receiver::start(Options::default()).await;
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    let worker = bench.worker(&settings(&[&rx], "1s"), loopback());
    bench.publish(PAYLOAD).await;
    // 100 ms, 200 ms, 400 ms, 800 ms...: a handful of claims in 1.2 s.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let claims = bench.repo.claims.load(Ordering::SeqCst);
    assert!((2..=6).contains(&claims), "{claims} claims");
    assert_eq!(rx.connections(), 0);

    bench.repo.failing.store(false, Ordering::SeqCst);
    let attempts = bench.wait_attempts(id, 1).await;
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);
    worker.shutdown().await;
}

/// Resolves nothing, ever, counting the questions: an attempt that never
/// reaches its receiver (within the connect timeout).
struct Stalling(Arc<std::sync::atomic::AtomicUsize>);

impl Resolve for Stalling {
    fn resolve(&self, _host: &str) -> prets_destinations_server::delivery::Resolving {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn shutdown_releases_a_claimed_delivery_not_yet_connected() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let bench = Bench::over(Scripted::default(), None);
    let rx = Receiver::start(Options::default()).await;
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    let config = settings(&[&rx], "1s");
    let options = WorkerOptions::default()
        .poll_interval(Duration::from_millis(50))
        .shutdown_grace(Duration::from_millis(200));
    let resolving = Arc::new(AtomicUsize::new(0));
    let worker = bench.worker_with(&config, Arc::new(Stalling(Arc::clone(&resolving))), options);
    bench.publish(PAYLOAD).await;
    eventually("claimed, stuck resolving", || {
        resolving.load(Ordering::SeqCst) == 1
    })
    .await;
    // Cut after the 200 ms grace, well within the 2 s connect timeout.
    worker.shutdown().await;
    assert_eq!(rx.connections(), 0);
    assert!(
        bench.attempts(id).await.is_empty(),
        "an attempt cut short was recorded"
    );
    // The attempt used the destination its claim read: no read of its own.
    assert_eq!(bench.repo.gets.load(Ordering::SeqCst), 0);

    // Released, not left to its 15 s lease.
    let restarted = Instant::now();
    let worker = bench.worker(&config, loopback());
    let attempts = bench.wait_attempts(id, 1).await;
    assert!(restarted.elapsed() < Duration::from_secs(3));
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);
    assert_eq!(attempts[0].attempt, 1);
    assert_eq!(rx.requests().len(), 1);
    worker.shutdown().await;
}

// ---------------------------------------------------------------------------
// Logs.

/// The `delivery attempt` lines of `text` for destination `id`, in order.
fn attempt_lines(text: &str, id: DestinationId) -> Vec<&str> {
    let mine = format!("destination={id}");
    text.lines()
        .filter(|l| l.contains("delivery attempt") && l.contains(&mine))
        .collect()
}

#[tokio::test]
async fn one_log_line_per_attempt_without_secret_or_payload() {
    // The binary's log: the other worker tests (same payload) log into it too.
    let captured = captured_logs();

    let bench = Bench::sqlite();
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(500).header("x-echo", "RESPONSE-MARKER"));
    rx.reply(Reply {
        body: b"RESPONSE-MARKER body".to_vec(),
        ..Reply::status(200)
    });
    let (id, secret) = bench.destination(&rx.name_url("/")).await;
    let worker = bench.worker(&settings(&[&rx], "1s"), loopback());
    let event = bench.publish(PAYLOAD).await;
    bench.wait_attempts(id, 2).await;
    worker.shutdown().await;

    let text = captured.text();
    let lines = attempt_lines(&text, id);
    assert_eq!(lines.len(), 2, "{text}");
    for (line, (attempt, status)) in lines.iter().zip([(1, 500), (2, 200)]) {
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains(&format!("destination={id}")), "{line}");
        assert!(
            line.contains(&format!("event={}", event.event_id)),
            "{line}"
        );
        assert!(line.contains(&format!("attempt={attempt}")), "{line}");
        assert!(line.contains(&format!("status={status}")), "{line}");
        assert!(line.contains("duration_ms="), "{line}");
    }
    assert!(lines[0].contains(r#"outcome="failed""#), "{}", lines[0]);
    assert!(lines[1].contains(r#"outcome="succeeded""#), "{}", lines[1]);
    assert!(!text.contains(&secret), "the secret was logged");
    assert!(
        !text.contains(&secret["whsec_".len()..]),
        "the secret was logged"
    );
    assert!(!text.contains("PAYLOAD-MARKER"), "the payload was logged");
    assert!(!text.contains("RESPONSE-MARKER"), "the response was logged");
}

// ---------------------------------------------------------------------------
// The server as started by `spawn`: the worker is wired in.

/// An attempt whose failure disables its destination logs the disabling
/// and no next attempt (the store ended the delivery, whatever the retry
/// schedule offered); the retried attempt before it logs its next attempt.
#[tokio::test]
async fn the_attempt_log_shows_a_next_attempt_only_when_the_store_keeps_one() {
    let captured = captured_logs();

    let bench = Bench::sqlite();
    let rx = Receiver::start(Options::default()).await;
    for _ in 0..2 {
        rx.reply(Reply::status(500));
    }
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    // The second failure disables: the streak is then long enough.
    let config = DeliveryConfig {
        disable: DisablePolicy {
            disable_after: Duration::ZERO,
            min_attempts: 2,
        },
        ..settings(&[&rx], "0s,0s,0s")
    };
    let worker = bench.worker(&config, loopback());
    bench.publish(PAYLOAD).await;
    bench.wait_attempts(id, 2).await;
    worker.shutdown().await;

    let text = captured.text();
    let lines = attempt_lines(&text, id);
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("next_attempt_at="), "{}", lines[0]);
    assert!(!lines[0].contains("disabled="), "{}", lines[0]);
    assert!(lines[1].contains(r#"disabled="failing""#), "{}", lines[1]);
    assert!(!lines[1].contains("next_attempt_at="), "{}", lines[1]);
}

/// An attempt in flight when its destination is disabled through the API
/// logs no next attempt, and the attempt is recorded without one: the store
/// ended the delivery, whatever the retry schedule offered. The receiver
/// holds the first answer (a 500) until a second request arrives: one to
/// another destination, published once the first is disabled.
#[tokio::test]
async fn an_attempt_answered_after_an_api_disable_logs_no_next_attempt() {
    let captured = captured_logs();

    let bench = Bench::sqlite();
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(500).after_requests(2));
    let (first, _) = bench.destination(&rx.name_url("/")).await;
    let worker = bench.worker(&settings(&[&rx], "0s,0s,0s"), loopback());
    bench.publish(PAYLOAD).await;
    eventually("the held attempt", || rx.requests().len() == 1).await;
    bench.set_enabled(first, false).await;
    let (second, _) = bench.destination(&rx.name_url("/")).await;
    bench.publish(PAYLOAD).await;
    let attempts = bench.wait_attempts(first, 1).await;
    bench.wait_attempts(second, 1).await;
    worker.shutdown().await;
    assert_eq!(attempts[0].outcome, AttemptOutcome::Failed);
    assert_eq!(attempts[0].next_attempt_at, None);

    let text = captured.text();
    let lines = attempt_lines(&text, first);
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains(r#"outcome="failed""#), "{}", lines[0]);
    assert!(lines[0].contains(r#"stored="recorded""#), "{}", lines[0]);
    assert!(!lines[0].contains("next_attempt_at="), "{}", lines[0]);
    assert!(!lines[0].contains("disabled="), "{}", lines[0]);
}

#[tokio::test]
async fn a_spawned_server_delivers_with_its_flags_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Options::default()).await;
    let cert = dir.path().join("receiver.pem");
    std::fs::write(&cert, &rx.cert_pem).unwrap();
    let database = dir.path().join("d.sqlite3");
    let mut config = Config::new(database.clone(), "127.0.0.1:0".parse().unwrap());
    config.allow_private_destinations = vec!["127.0.0.1/32".parse().unwrap()];
    config.delivery_root_certs = vec![cert];
    config.retry_schedule = "0s".parse().unwrap();
    rx.reply(Reply::status(500));
    let running = prets_destinations_server::spawn_with_resolver(&config, loopback())
        .await
        .unwrap();

    // Another handle on the same database writes as the routes would (the
    // worker finds it at its next poll).
    let keyring = load_keyring(&config.sealing_key_path().unwrap().0).unwrap();
    let repo = SqliteRepo::open(&database).unwrap();
    let tenant: TenantId = "org_a".parse().unwrap();
    let request = CreateDestinationRequest::new("Receiver", rx.name_url("/"));
    let outcome = create(
        &repo,
        &tenant,
        request,
        now(),
        &mut os_rng(),
        keyring.current(),
    )
    .await
    .unwrap();
    let CreateOutcome::Created(created) = outcome else {
        panic!("{outcome:?}")
    };
    let request = PublishRequest::new("invoice.paid", PAYLOAD.to_owned()).unwrap();
    let event = publish(&repo, &tenant, request, now(), &mut os_rng())
        .await
        .unwrap()
        .into_result()
        .unwrap();

    eventually("delivered after a retry", || rx.requests().len() == 2).await;
    let requests = rx.requests();
    let secret = created.bearer_secret().expose_secret();
    assert_eq!(
        requests[1].header("authorization"),
        format!("Bearer {secret}")
    );
    assert_eq!(requests[1].header("webhook-id"), event.event_id.to_string());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_spawned_server_refuses_a_bad_root_certificate_file() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("not-a-cert.pem");
    std::fs::write(&cert, "hello").unwrap();
    let mut config = Config::new(dir.path().join("d.sqlite3"), "127.0.0.1:0".parse().unwrap());
    config.delivery_root_certs = vec![cert];
    let error = prets_destinations_server::spawn(&config).await.unwrap_err();
    assert!(
        matches!(error, prets_destinations_server::StartError::Delivery(_)),
        "{error:?}"
    );
    assert!(error.to_string().contains("not-a-cert.pem"), "{error}");
    assert!(
        !dir.path().join("d.sqlite3").exists(),
        "checked before opening"
    );
}

// ---------------------------------------------------------------------------
// Fairness: one organization's dead receiver does not stall another's.

/// Issue 19's scenario on `a`'s store: organization A publishes 256 events
/// to a receiver that accepts TLS and never answers within the test (a
/// tarpit); organization B then publishes 10 to a healthy receiver. Every
/// one of B's arrives, once, within 3 s of its publish, while A's attempts
/// are still held by the tarpit, A's destination never having more than
/// its cap (the default 4) of attempts in flight in the 64 slots, though
/// four times that is claimed (the lookahead 4): the 12 claimed ahead
/// wait.
async fn a_tarpit_does_not_delay_another_organization<R: Outbox + 'static>(a: Bench<R>) {
    use std::collections::HashMap;
    let b = a.organization("org_b");
    let tarpit = Receiver::start(Options::default()).await;
    for _ in 0..300 {
        tarpit.reply(Reply::status(200).delay(Duration::from_secs(3600)));
    }
    let healthy = Receiver::start(Options::default()).await;
    let config = DeliveryConfig {
        // Longer than the test: no attempt of A's ends.
        timeout: Duration::from_secs(60),
        concurrency: 64,
        ..settings(&[&tarpit, &healthy], "1s")
    };
    assert_eq!(config.destination_concurrency, 4, "the default cap");
    let (slow, _) = a.destination(&tarpit.name_url("/a")).await;
    let (fast, _) = b.destination(&healthy.name_url("/b")).await;
    let options = WorkerOptions::default()
        .poll_interval(Duration::from_millis(50))
        .shutdown_grace(Duration::from_millis(200));
    let worker = a.worker_with(&config, loopback(), options);
    for _ in 0..256 {
        a.publish(PAYLOAD).await;
    }
    // A's backlog is being held: its cap of attempts is in the tarpit.
    tarpit.wait_for(4, Duration::from_secs(10)).await;

    let mut published = HashMap::new();
    for _ in 0..10 {
        let at = Instant::now();
        let event = b.publish(PAYLOAD).await;
        published.insert(event.event_id.to_string(), at);
    }
    let arrived = healthy.wait_for(10, Duration::from_secs(20)).await;
    // The ordering fact: all of B's arrived while A's attempts were held,
    // none of them ended, and no more of A's backlog was sent.
    assert_eq!(
        tarpit.requests().len(),
        4,
        "A's destination went past its cap of attempts in flight"
    );
    assert!(
        a.attempts(slow).await.is_empty(),
        "an attempt of A's ended: the tarpit did not hold it"
    );
    let mut slowest = Duration::ZERO;
    for request in &arrived {
        let id = request.header("webhook-id");
        let at = published
            .remove(id)
            .unwrap_or_else(|| panic!("{id}: not one of B's events, or delivered twice"));
        slowest = slowest.max(request.at.duration_since(at));
    }
    assert!(
        published.is_empty(),
        "B's events not delivered: {published:?}"
    );
    assert!(
        slowest <= Duration::from_secs(3),
        "B's slowest delivery arrived {slowest:?} after its publish"
    );
    worker.shutdown().await;
    let delivered = b.attempts(fast).await;
    assert_eq!(delivered.len(), 10);
    assert!(
        delivered
            .iter()
            .all(|a| a.outcome == AttemptOutcome::Succeeded && a.attempt == 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_tarpit_does_not_delay_another_organization() {
    a_tarpit_does_not_delay_another_organization(Bench::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_tarpit_does_not_delay_another_organization() {
    let db = prets_destinations_postgres::test_support::TestDb::new();
    a_tarpit_does_not_delay_another_organization(Bench::over(db.repo().await, None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_tarpit_does_not_delay_another_organization() {
    a_tarpit_does_not_delay_another_organization(Bench::sqlite()).await;
}

/// Publishes to a destination at its cap (its receiver holds every attempt,
/// the store holds its cap of leases) leave nothing to claim: after a claim
/// that found nothing, a publish wakes the next claim `PUBLISH_GAP` later at
/// the earliest, so 100 publishes a millisecond apart make about one claim
/// per gap, not 100.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_to_a_destination_at_its_cap_do_not_each_claim() {
    use std::sync::atomic::Ordering;
    let bench = Bench::over(Scripted::default(), None);
    let tarpit = Receiver::start(Options::default()).await;
    for _ in 0..200 {
        tarpit.reply(Reply::status(200).delay(Duration::from_secs(3600)));
    }
    let config = DeliveryConfig {
        // Longer than the test: no attempt ends.
        timeout: Duration::from_secs(60),
        ..settings(&[&tarpit], "1s")
    };
    bench.destination(&tarpit.name_url("/held")).await;
    // No poll within the test: every claim is a publish's.
    let options = WorkerOptions::default()
        .poll_interval(Duration::from_secs(3600))
        .shutdown_grace(Duration::from_millis(200));
    let worker = bench.worker_with(&config, loopback(), options);
    // Its cap of 4 in flight, and 4 × 4 leases (the lookahead): the store's
    // cap for it.
    for _ in 0..16 {
        bench.publish(PAYLOAD).await;
    }
    tarpit.wait_for(4, Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while bench.repo.queue_depth().await.unwrap().leased < 16 {
        assert!(Instant::now() < deadline, "the worker never held 16 leases");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let before = bench.repo.claims.load(Ordering::SeqCst);
    let start = Instant::now();
    for _ in 0..100 {
        bench.publish(PAYLOAD).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = start.elapsed();
    let claims = bench.repo.claims.load(Ordering::SeqCst) - before;
    // One per gap, the first one at once, and one at each end of the window.
    let bound = elapsed.as_millis() / PUBLISH_GAP.as_millis() + 3;
    assert!(
        u128::try_from(claims).unwrap() <= bound,
        "{claims} claims in {elapsed:?} (at most {bound})"
    );
    assert!(claims >= 1, "no publish woke the worker");
    assert_eq!(tarpit.requests().len(), 4, "past the cap in flight");
    assert_eq!(bench.repo.queue_depth().await.unwrap().leased, 16);
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_destinations_share_the_slow_lane() {
    // Eight slots: the slow lane is 2. Six destinations of A fail (500 after
    // 500 ms): once failing, they never have more than 2 attempts in flight
    // together, 1 each, while B's healthy destination is served beside them.
    let a = Bench::memory();
    let b = a.organization("org_b");
    let failing = Receiver::start(Options::default()).await;
    for _ in 0..500 {
        failing.reply(Reply::status(500).delay(Duration::from_millis(500)));
    }
    let healthy = Receiver::start(Options::default()).await;
    let config = DeliveryConfig {
        concurrency: 8,
        ..settings(&[&failing, &healthy], "1s,1s,1s,1s,1s")
    };
    assert_eq!(slow_lane(8), 2);
    let mut dests = Vec::new();
    for i in 0..6 {
        dests.push(a.destination(&failing.name_url(&format!("/{i}"))).await.0);
    }
    let (fast, _) = b.destination(&healthy.name_url("/b")).await;
    let worker = a.worker(&config, loopback());
    // While the six are healthy, their first attempts go out together.
    a.publish(PAYLOAD).await;
    for d in &dests {
        a.wait_attempts(*d, 1).await;
    }
    let first_wave = failing.requests().len();
    assert_eq!(first_wave, 6);
    for _ in 0..5 {
        a.publish(PAYLOAD).await;
    }
    for _ in 0..20 {
        b.publish(PAYLOAD).await;
    }
    b.wait_attempts(fast, 20).await;
    failing
        .wait_for(first_wave + 8, Duration::from_secs(20))
        .await;
    worker.shutdown().await;

    assert_within_the_slow_lane(&failing.requests()[first_wave..], 2);
}

/// `attempts` are first attempts that succeeded, one for each of the events
/// `published`: none recorded twice, none missing.
fn assert_each_recorded_once(
    attempts: &[AttemptRecord],
    published: &std::collections::HashSet<String>,
) {
    assert!(
        attempts
            .iter()
            .all(|a| a.outcome == AttemptOutcome::Succeeded && a.attempt == 1),
        "{attempts:?}"
    );
    let recorded: std::collections::HashSet<_> =
        attempts.iter().map(|a| a.event_id.to_string()).collect();
    assert_eq!(attempts.len(), recorded.len(), "an event recorded twice");
    assert_eq!(
        &recorded, published,
        "an event recorded twice, or not at all"
    );
}

/// Each of `requests` was answered at least 500 ms after its arrival: a
/// request arriving within 500 ms of another's was sent while that one was
/// in flight. At most `lane` of them were in flight at once, and one per
/// destination.
fn assert_within_the_slow_lane(requests: &[Recorded], lane: usize) {
    let window = Duration::from_millis(500);
    for r in requests {
        let open: Vec<_> = requests
            .iter()
            .filter(|o| o.at <= r.at && r.at < o.at + window)
            .collect();
        assert!(
            open.len() <= lane,
            "{} attempts of failing destinations in flight at once",
            open.len()
        );
        assert_eq!(
            open.iter().filter(|o| o.target == r.target).count(),
            1,
            "a failing destination had two attempts in flight"
        );
    }
}

#[tokio::test]
async fn the_worker_keeps_the_store_clock() {
    // The store's clock is 40 s ahead of this host's: an event stamped by
    // it is due 40 s from now by the host's clock. The worker claims, starts
    // and schedules by the store's clock, so it delivers at once, and the
    // retry of a failure is due by the store's clock too.
    use std::sync::atomic::Ordering;
    let bench = Bench::over(Scripted::default(), None);
    bench.repo.ahead_ms.store(40_000, Ordering::SeqCst);
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(500));
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    let worker = bench.worker(&settings(&[&rx], "1s"), loopback());
    let stamped = bench.repo.now().await.unwrap();
    let request = PublishRequest::new("invoice.paid", PAYLOAD.to_owned()).unwrap();
    publish(&*bench.repo, &bench.tenant, request, stamped, &mut os_rng())
        .await
        .unwrap()
        .into_result()
        .unwrap();
    bench.published.notify_one();
    // Both attempts within the wait, 40 s before the host's clock reaches
    // the event's time.
    let attempts = bench.wait_attempts(id, 2).await;
    assert!(now().unix_millis() + 30_000 < stamped.unix_millis());
    let (second, first) = (&attempts[0], &attempts[1]);
    assert!(first.started_at >= stamped.truncated(), "{first:?}");
    assert!(
        second.started_at >= first.next_attempt_at.unwrap(),
        "{second:?}"
    );
    assert_eq!(second.outcome, AttemptOutcome::Succeeded);
    worker.shutdown().await;
}

#[tokio::test]
async fn finished_attempts_are_written_in_batches() {
    // Five deliveries to one destination (four at a time, all five claimed
    // at once): a write is held while the answers come; those not in it wait
    // for the recorder and go in its next write together (the fifth is sent
    // as soon as an answer frees a slot, its write held too). Each is
    // recorded once, in fewer writes than attempts.
    use std::sync::atomic::Ordering;
    let bench = Bench::over(Scripted::default(), None);
    let rx = Receiver::start(Options::default()).await;
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    bench.repo.hold_completes.store(true, Ordering::SeqCst);
    let worker = bench.worker(&settings(&[&rx], "1s"), loopback());
    for _ in 0..5 {
        bench.publish(PAYLOAD).await;
    }
    rx.wait_for(4, Duration::from_secs(10)).await;
    eventually("the first write held, the others answered", || {
        bench.repo.completing.load(Ordering::SeqCst) == 1
    })
    .await;
    // Sequencing only: the three other answers reach the recorder's queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    bench.repo.hold_completes.store(false, Ordering::SeqCst);
    let attempts = bench.wait_attempts(id, 5).await;
    assert!(
        attempts
            .iter()
            .all(|a| a.outcome == AttemptOutcome::Succeeded)
    );
    worker.shutdown().await;
    let batches = bench.repo.batches.lock().unwrap().clone();
    assert_eq!(batches.iter().sum::<usize>(), 5, "{batches:?}");
    assert!(
        batches.iter().any(|&n| n >= 2) && batches.len() <= 3,
        "one write per attempt: {batches:?}"
    );
    assert_eq!(rx.requests().len(), 5);
}

#[tokio::test]
async fn the_api_stamps_events_with_the_store_clock() {
    // The store's clock is an hour ahead of this host's: the event the
    // route publishes is created (and so due) at the store's time, the one
    // claims compare with.
    use prets_destinations_server::{ApiTokens, AppState, mint_token, router, token_digest};
    use std::sync::atomic::Ordering;
    let repo = Arc::new(Scripted::default());
    repo.ahead_ms.store(3_600_000, Ordering::SeqCst);
    let token = mint_token();
    let tokens = ApiTokens::new(vec![(token_digest(&token), "org_a".parse().unwrap())]);
    let app = router(AppState::new(Arc::clone(&repo), tokens, keyring()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let before = now();
    let authorization = format!("Bearer {}", token.as_str());
    let response = support::request(
        addr,
        "POST",
        "/v1/events",
        &[
            ("Authorization", &authorization),
            ("Content-Type", "application/json"),
        ],
        br#"{"type":"invoice.paid","payload":{}}"#,
    )
    .await;
    assert_eq!(response.status, 202, "{}", response.text());
    let created = Timestamp::try_from(response.json()["createdAt"].as_str().unwrap()).unwrap();
    let ahead = created.unix_millis() - before.truncated().unix_millis();
    assert!(
        (3_600_000..3_660_000).contains(&ahead),
        "createdAt is {ahead} ms past this host's clock"
    );
    server.abort();
}

// ---------------------------------------------------------------------------
// Claims ahead of the sends (`WorkerOptions::lookahead`).

/// One destination of the default cap (4), the lookahead 2 (the worker
/// holds up to 8 of its leases) and 20 events to a receiver that answers
/// each after 500 ms: the receiver never has more than 4 of its requests
/// open at once, it does have 4 open (the first four answers wait for the
/// fourth request), and every event arrives exactly once.
async fn claims_ahead_keep_a_destination_within_its_cap_in_flight<R: Outbox + 'static>(
    bench: Bench<R>,
) {
    use std::collections::HashSet;
    const EVENTS: usize = 20;
    let answer = Duration::from_millis(500);
    let rx = Receiver::start(Options::default()).await;
    for i in 0..EVENTS {
        let reply = Reply::status(204).delay(answer);
        rx.reply(if i < 4 {
            reply.after_requests(4)
        } else {
            reply
        });
    }
    let config = settings(&[&rx], "1s");
    assert_eq!(config.destination_concurrency, 4, "the default cap");
    assert!(
        config.concurrency >= 8,
        "the worker's slots are not the bound"
    );
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    let options = WorkerOptions::default()
        .poll_interval(Duration::from_millis(50))
        .lookahead(2);
    let worker = bench.worker_with(&config, loopback(), options);
    let mut published = HashSet::new();
    for _ in 0..EVENTS {
        published.insert(bench.publish(PAYLOAD).await.event_id.to_string());
    }
    let attempts = bench.wait_attempts(id, EVENTS).await;
    worker.shutdown().await;
    assert_each_recorded_once(&attempts, &published);

    let requests = rx.requests();
    assert_eq!(requests.len(), EVENTS, "an event was sent twice");
    let arrived: HashSet<_> = requests
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(arrived, published, "an event arrived twice, or not at all");
    // Each answer takes at least 500 ms from its request's arrival: a
    // request arriving within 500 ms of another's was sent while that one
    // was open.
    for r in &requests {
        let open = requests
            .iter()
            .filter(|o| o.at <= r.at && r.at < o.at + answer)
            .count();
        assert!(
            open <= 4,
            "{open} requests of one destination open at once: past its cap of 4"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_claims_ahead_keep_a_destination_within_its_cap_in_flight() {
    claims_ahead_keep_a_destination_within_its_cap_in_flight(Bench::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_claims_ahead_keep_a_destination_within_its_cap_in_flight() {
    claims_ahead_keep_a_destination_within_its_cap_in_flight(Bench::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_claims_ahead_keep_a_destination_within_its_cap_in_flight() {
    let db = prets_destinations_postgres::test_support::TestDb::new();
    claims_ahead_keep_a_destination_within_its_cap_in_flight(Bench::over(db.repo().await, None))
        .await;
}

/// The attempts `metrics` counted as delivered: answered, their slots free,
/// their results handed to the recorder next.
fn delivered(metrics: &Metrics) -> u64 {
    let text = metrics.encode().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(r#"prets_delivery_attempts_total{outcome="delivered"} "#))
        .unwrap_or_else(|| panic!("no delivered attempts counter: {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Eight deliveries to one destination of the default cap (4), a receiver
/// that answers at once, and every write of a result held from the start:
/// with `lookahead`, the receiver gets `sent` of them before any result is
/// written, and no more once every answer is in and the worker has claimed
/// again. Then the writes go through and each attempt is recorded once.
async fn sends_while_every_write_is_held(lookahead: usize, sent: usize) {
    use std::collections::HashSet;
    use std::sync::atomic::Ordering;
    const EVENTS: usize = 8;
    let bench = Bench::over(Scripted::default(), None);
    let rx = Receiver::start(Options::default()).await;
    let config = settings(&[&rx], "1s");
    assert_eq!(config.destination_concurrency, 4, "the default cap");
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    bench.repo.hold_completes.store(true, Ordering::SeqCst);
    let metrics = Arc::new(Metrics::new());
    let options = WorkerOptions::default()
        .poll_interval(Duration::from_millis(50))
        .lookahead(lookahead);
    let client = DeliveryClient::new(&config, loopback()).unwrap();
    let worker = Worker::new(
        Arc::clone(&bench.repo),
        Arc::clone(&bench.keyring),
        client,
        &config,
        Arc::clone(&bench.published),
    )
    .with_options(options)
    .with_metrics(Arc::clone(&metrics))
    .spawn();
    let mut published = HashSet::new();
    for _ in 0..EVENTS {
        published.insert(bench.publish(PAYLOAD).await.event_id.to_string());
    }

    rx.wait_for(sent, Duration::from_secs(10)).await;
    eventually("every answer in, its slots free", || {
        delivered(&metrics) == u64::try_from(sent).unwrap()
    })
    .await;
    eventually("the first write held", || {
        bench.repo.completing.load(Ordering::SeqCst) == 1
    })
    .await;
    // A claim made from start to end after the last answer: two more
    // begun (one every 50 ms poll, the writes being held).
    let claims = bench.repo.claims.load(Ordering::SeqCst);
    eventually("a claim after the answers", || {
        bench.repo.claims.load(Ordering::SeqCst) >= claims + 2
    })
    .await;
    let depth = bench.repo.queue_depth().await.unwrap();
    assert_eq!(
        usize::try_from(depth.leased).unwrap(),
        sent,
        "leases held with the lookahead {lookahead}: {depth:?}"
    );
    assert_eq!(
        usize::try_from(depth.waiting).unwrap(),
        EVENTS - sent,
        "{depth:?}"
    );
    assert_eq!(
        rx.requests().len(),
        sent,
        "sent while no result was written, with the lookahead {lookahead}"
    );
    assert!(
        bench.attempts(id).await.is_empty(),
        "a result was written while the writes were held"
    );
    assert_eq!(bench.repo.completing.load(Ordering::SeqCst), 1);

    bench.repo.hold_completes.store(false, Ordering::SeqCst);
    let attempts = bench.wait_attempts(id, EVENTS).await;
    worker.shutdown().await;
    assert_each_recorded_once(&attempts, &published);
    let batches = bench.repo.batches.lock().unwrap().clone();
    assert_eq!(batches.iter().sum::<usize>(), EVENTS, "{batches:?}");
    let requests = rx.requests();
    assert_eq!(requests.len(), EVENTS, "an event was sent twice");
    let arrived: HashSet<_> = requests
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(arrived, published);
}

#[tokio::test]
async fn claimed_ahead_attempts_are_sent_while_the_results_before_them_are_written() {
    // The lookahead 2: 8 leases of the destination. Each answer frees its
    // slots before its result is written, so all 8 go out while not one
    // result is.
    sends_while_every_write_is_held(2, 8).await;
}

#[tokio::test]
async fn without_claims_ahead_a_held_write_holds_the_next_attempt_back() {
    // The lookahead 1: 4 leases of the destination, each kept until its
    // result is written; the other 4 deliveries wait in the store.
    sends_while_every_write_is_held(1, 4).await;
}

#[tokio::test]
async fn shutdown_releases_claimed_ahead_deliveries_waiting_for_a_slot() {
    // Eight deliveries to one destination of the default cap (4), the
    // lookahead 2: all 8 claimed, 4 sent to a receiver that does not answer
    // within the test, 4 waiting for a slot. The stop releases every lease
    // (the 4 never sent among them), and a new worker delivers all 8 at
    // once, each once, as first attempts.
    use std::collections::HashSet;
    let bench = Bench::sqlite();
    let rx = Receiver::start(Options::default()).await;
    for _ in 0..4 {
        rx.reply(Reply::status(200).delay(Duration::from_secs(30)));
    }
    let (id, _) = bench.destination(&rx.name_url("/")).await;
    let config = settings(&[&rx], "1s");
    assert_eq!(config.destination_concurrency, 4, "the default cap");
    let options = WorkerOptions::default()
        .poll_interval(Duration::from_millis(50))
        .lookahead(2)
        .shutdown_grace(Duration::from_millis(200));
    let worker = bench.worker_with(&config, loopback(), options);
    let mut published = HashSet::new();
    for _ in 0..8 {
        published.insert(bench.publish(PAYLOAD).await.event_id.to_string());
    }
    rx.wait_for(4, Duration::from_secs(10)).await;
    let mut depth = bench.repo.queue_depth().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while depth.leased < 8 {
        assert!(Instant::now() < deadline, "all 8 claimed: {depth:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
        depth = bench.repo.queue_depth().await.unwrap();
    }
    assert_eq!(depth.waiting, 0, "{depth:?}");

    let stopping = Instant::now();
    worker.shutdown().await;
    assert!(stopping.elapsed() < Duration::from_secs(2));
    assert_eq!(
        rx.requests().len(),
        4,
        "an attempt waiting for a slot was sent"
    );
    assert!(
        bench.attempts(id).await.is_empty(),
        "an attempt released or cut short was recorded"
    );
    let depth = bench.repo.queue_depth().await.unwrap();
    assert_eq!((depth.waiting, depth.leased), (8, 0), "{depth:?}");

    // Released, not left to their 15 s leases.
    let restarted = Instant::now();
    let worker = bench.worker(&config, loopback());
    let attempts = bench.wait_attempts(id, 8).await;
    assert!(restarted.elapsed() < Duration::from_secs(3));
    worker.shutdown().await;
    assert!(
        attempts
            .iter()
            .all(|a| a.outcome == AttemptOutcome::Succeeded && a.attempt == 1),
        "{attempts:?}"
    );
    let requests = rx.requests();
    assert_eq!(requests.len(), 12);
    let resent: HashSet<_> = requests[4..]
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(
        resent, published,
        "the new worker sent an event twice, or not at all"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_claimed_ahead_of_a_failure_wait_for_the_slow_lane() {
    // Eight slots (a slow lane of 2), two destinations on a receiver that
    // answers 500 after 500 ms, eight events each, no retry within the test.
    // Healthy at first, each destination has 4 attempts in flight and 4
    // claimed ahead. When the first ones fail, those claimed ahead are not
    // sent as if the destination were healthy: they go back, and come again
    // through the slow lane, 1 per destination and 2 in all.
    let a = Bench::memory();
    let failing = Receiver::start(Options::default()).await;
    for _ in 0..100 {
        failing.reply(Reply::status(500).delay(Duration::from_millis(500)));
    }
    let config = DeliveryConfig {
        concurrency: 8,
        ..settings(&[&failing], "1h")
    };
    assert_eq!(slow_lane(8), 2);
    for i in 0..2 {
        a.destination(&failing.name_url(&format!("/{i}"))).await;
    }
    let options = WorkerOptions::default()
        .poll_interval(Duration::from_millis(50))
        .lookahead(2);
    let worker = a.worker_with(&config, loopback(), options);
    for _ in 0..8 {
        a.publish(PAYLOAD).await;
    }
    failing.wait_for(16, Duration::from_secs(20)).await;
    worker.shutdown().await;

    let requests = failing.requests();
    assert_eq!(requests.len(), 16, "each delivery attempted once");
    // The first 8 are the healthy wave, answered before any other is sent.
    assert_within_the_slow_lane(&requests[8..], 2);
}
