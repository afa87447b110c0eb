//! The delivery worker: claims due deliveries through the core's
//! [`Outbox`] seam, sends each with the [`DeliveryClient`] in its own task
//! under a concurrency bound, and reports every attempt back.
//!
//! - A claim leases each delivery for [`lease_duration`] (2 × the delivery
//!   timeout + 5 s); an attempt renews its lease every half lease while it
//!   runs, so a slow store never lets another worker take it over.
//! - It claims when the routes signal a publish (the shared [`Notify`]), when
//!   a retry it scheduled falls due, and otherwise every poll interval (for
//!   retries scheduled elsewhere and expired leases). Store errors back off
//!   from 100 ms, doubling to 30 s.
//! - Each attempt opens the destination's current secret, so an attempt
//!   after a rotation carries the new one. A destination deleted or disabled
//!   since the claim gets nothing (its lease is released, and the store drops
//!   a disabled destination's delivery then).
//! - One `info` line per attempt: organization, destination id, event id,
//!   attempt number, outcome, status, error kind and duration. Never the
//!   secret, the payload or the response body.
//! - [`WorkerHandle::shutdown`] stops claiming, releases the leases of
//!   attempts not yet sent, and gives attempts being sent the grace period
//!   (the delivery timeout plus [`RECORD_GRACE`] by default) to get their
//!   answer; those still waiting then are cut short and release their
//!   leases, so a restart resumes them at once. An attempt whose answer (or
//!   timeout) has arrived is always recorded: its write is never cut short,
//!   so that a restart never sends it again.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use prets_destinations::OpError;
use prets_destinations::delivery::{
    AttemptOutcome, Claimed, Classification, CompleteOutcome, DisablePolicy, DisabledReason, Lease,
    LeaseRequest, LeaseToken, Outbox, RetrySchedule, classify, plan_attempt,
};
use prets_destinations::ops::{finish_attempt, plan_finish};
use prets_destinations::{Keyring, Timestamp, os_rng};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::delivery::client::{DeliveryClient, Outcome};
use crate::delivery::config::DeliveryConfig;
use crate::delivery::deadline::after;

/// The time allowed, beyond the delivery timeout, for writing an attempt's
/// result: part of the lease ([`lease_duration`]) and of the default
/// shutdown grace ([`WorkerOptions::shutdown_grace`]).
pub const RECORD_GRACE: Duration = Duration::from_secs(5);

/// How long a claim leases a delivery for an attempt bounded by `timeout`:
/// twice the timeout plus [`RECORD_GRACE`] (5 s), so that an attempt that
/// uses its whole timeout still reports well before the lease ends.
#[must_use]
pub fn lease_duration(timeout: Duration) -> Duration {
    timeout.saturating_mul(2).saturating_add(RECORD_GRACE)
}

/// The first wait after a store error; it doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest wait after repeated store errors.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Default [`WorkerOptions::poll_interval`].
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Default [`WorkerOptions::batch`].
pub const BATCH: usize = 32;
/// Most retry times a worker remembers to wake for; later ones are found by
/// the poll.
const DUE_REMEMBERED: usize = 1024;

/// Tuning of a [`Worker`] beyond the [`DeliveryConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerOptions {
    /// Longest wait between two claims when nothing signals work.
    pub poll_interval: Duration,
    /// Most deliveries taken by one claim.
    pub batch: usize,
    /// How long [`WorkerHandle::shutdown`] waits for the answers of
    /// attempts being sent before it cuts them short; `None` is the delivery
    /// timeout plus [`RECORD_GRACE`]. Recording an answer that arrived is
    /// never cut short, whatever the grace.
    pub shutdown_grace: Option<Duration>,
    /// The lease of a claim; `None` is [`lease_duration`] of the delivery
    /// timeout. A shorter lease is kept alive by renewals every half lease
    /// while the attempt runs.
    pub lease: Option<Duration>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            poll_interval: POLL_INTERVAL,
            batch: BATCH,
            shutdown_grace: None,
            lease: None,
        }
    }
}

impl WorkerOptions {
    /// These options with `poll_interval`.
    #[must_use]
    pub const fn poll_interval(mut self, poll_interval: Duration) -> Self {
        self.poll_interval = poll_interval;
        self
    }

    /// These options with `batch` (at least 1).
    #[must_use]
    pub const fn batch(mut self, batch: usize) -> Self {
        self.batch = batch;
        self
    }

    /// These options with `lease`.
    #[must_use]
    pub const fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// These options with `shutdown_grace`.
    #[must_use]
    pub const fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = Some(grace);
        self
    }
}

/// A delivery worker over the outbox `R`, ready to [`spawn`](Self::spawn).
pub struct Worker<R> {
    repo: R,
    keyring: Arc<Keyring>,
    client: DeliveryClient,
    schedule: RetrySchedule,
    disable: DisablePolicy,
    timeout: Duration,
    lease: Duration,
    concurrency: usize,
    published: Arc<Notify>,
    options: WorkerOptions,
}

impl<R> fmt::Debug for Worker<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("lease", &self.lease)
            .field("concurrency", &self.concurrency)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<R: Outbox + 'static> Worker<R> {
    /// A worker delivering from `repo` with `client`, under `config`'s retry
    /// schedule, disable policy, timeout and concurrency, opening secrets
    /// with `keyring`, woken by `published`.
    pub fn new(
        repo: R,
        keyring: Arc<Keyring>,
        client: DeliveryClient,
        config: &DeliveryConfig,
        published: Arc<Notify>,
    ) -> Self {
        Self {
            repo,
            keyring,
            client,
            schedule: config.retry_schedule.clone(),
            disable: config.disable,
            timeout: config.timeout,
            lease: lease_duration(config.timeout),
            concurrency: usize::try_from(config.concurrency)
                .unwrap_or(usize::MAX)
                .clamp(1, Semaphore::MAX_PERMITS),
            published,
            options: WorkerOptions::default(),
        }
    }

    /// This worker with `options`.
    #[must_use]
    pub fn with_options(mut self, options: WorkerOptions) -> Self {
        self.options = options;
        if let Some(lease) = options.lease {
            self.lease = lease.max(Duration::from_millis(100));
        }
        self
    }

    /// Starts the worker on the current tokio runtime.
    pub fn spawn(self) -> WorkerHandle {
        let (stop, stopped) = watch::channel(false);
        let grace = self
            .options
            .shutdown_grace
            .unwrap_or_else(|| self.timeout.saturating_add(RECORD_GRACE));
        let shared = Arc::new(Shared {
            repo: self.repo,
            keyring: self.keyring,
            client: self.client,
            schedule: self.schedule,
            disable: self.disable,
            lease: self.lease,
            published: self.published,
            rescheduled: Notify::new(),
            due: Mutex::new(BTreeSet::new()),
            options: self.options,
        });
        let task = tokio::spawn(run(shared, self.concurrency, grace, stopped));
        WorkerHandle { stop, task }
    }
}

/// A running [`Worker`]. Dropping it leaves the worker running until the
/// runtime stops; call [`shutdown`](Self::shutdown) to stop it gracefully.
#[derive(Debug)]
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl WorkerHandle {
    /// Tells the worker to stop claiming, without waiting.
    pub fn begin_shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// Stops claiming, lets attempts being sent get their answer within the
    /// grace period and records them, releases the leases of the others, and
    /// returns when done.
    pub async fn shutdown(self) {
        self.begin_shutdown();
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the delivery worker failed");
        }
    }
}

/// What the worker's loop and its attempt tasks share.
struct Shared<R> {
    repo: R,
    keyring: Arc<Keyring>,
    client: DeliveryClient,
    schedule: RetrySchedule,
    disable: DisablePolicy,
    lease: Duration,
    published: Arc<Notify>,
    /// Signalled when an attempt schedules a retry, so the loop's next wake
    /// is recomputed.
    rescheduled: Notify,
    /// Retry times this worker scheduled, earliest first.
    due: Mutex<BTreeSet<Timestamp>>,
    options: WorkerOptions,
}

fn now() -> Timestamp {
    Timestamp::try_from(SystemTime::now()).unwrap_or_else(|_| {
        Timestamp::from_unix_millis(0).unwrap_or_else(|| unreachable!("0 is in range"))
    })
}

/// The instant `at` falls on, seen from `now`.
fn instant_of(at: Timestamp, now: Timestamp) -> Instant {
    let wait = at.unix_millis().saturating_sub(now.unix_millis());
    after(Duration::from_millis(wait))
}

/// Completes once `flag` is set (the stop, or the cut after the grace).
async fn signalled(flag: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: nobody can set it anymore.
    if flag.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn run<R: Outbox + 'static>(
    shared: Arc<Shared<R>>,
    concurrency: usize,
    grace: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let mut backoff = BACKOFF_MIN;
    // Set when the grace after the stop is over: attempts still waiting for
    // their answer end then.
    let (cut, cut_seen) = watch::channel(false);
    loop {
        while tasks.try_join_next().is_some() {}
        let first = tokio::select! {
            biased;
            () = signalled(&mut stop) => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let mut held = vec![first];
        let batch = shared.options.batch.max(1);
        while held.len() < batch {
            match Arc::clone(&permits).try_acquire_owned() {
                Ok(permit) => held.push(permit),
                Err(_) => break,
            }
        }
        let now = now();
        shared
            .due
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|&at| at > now);
        let request = LeaseRequest {
            token: LeaseToken::generate(&mut os_rng()),
            duration: shared.lease,
        };
        let limit = held.len();
        let claimed = match shared.repo.claim(now, limit.into(), request).await {
            Ok(claimed) => claimed,
            Err(error) => {
                drop(held);
                tracing::warn!(%error, retry_in_ms = millis(backoff), "claiming deliveries failed");
                tokio::select! {
                    biased;
                    () = signalled(&mut stop) => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = backoff.saturating_mul(2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        let full = claimed.len() >= limit;
        let mut held = held.into_iter();
        for job in claimed {
            let Some(permit) = held.next() else {
                // More than asked for: not ours to run now.
                release(&shared.repo, &job.lease).await;
                continue;
            };
            tasks.spawn(attempt(
                Arc::clone(&shared),
                job,
                permit,
                stop.clone(),
                cut_seen.clone(),
            ));
        }
        drop(held);
        if full {
            continue;
        }
        let now = self::now();
        let poll = after(shared.options.poll_interval);
        let wake = shared
            .due
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first()
            .map_or(poll, |&at| instant_of(at, now).min(poll));
        tokio::select! {
            biased;
            () = signalled(&mut stop) => break,
            () = shared.published.notified() => {}
            () = shared.rescheduled.notified() => {}
            () = tokio::time::sleep_until(wake) => {}
        }
    }
    drain(tasks, grace, &cut).await;
}

/// After the stop: attempts not yet sent release their own leases; those
/// being sent get `grace` for their answer, then `cut` ends those still
/// waiting (each releases its lease). Attempts recording their answer are
/// awaited however long that takes: their write is bounded by the store's
/// own timeouts.
async fn drain(mut tasks: JoinSet<Ended>, grace: Duration, cut: &watch::Sender<bool>) {
    let deadline = after(grace);
    let mut released = 0usize;
    loop {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(ended)) => released += usize::from(matches!(ended, Ok(Ended::Released))),
            Ok(None) => break,
            Err(_) => {
                cut.send_replace(true);
                while let Some(ended) = tasks.join_next().await {
                    released += usize::from(matches!(ended, Ok(Ended::Released)));
                }
                break;
            }
        }
    }
    if released > 0 {
        tracing::info!(
            released,
            "delivery worker stopped; unfinished attempts released"
        );
    }
}

async fn release<R: Outbox>(repo: &R, lease: &Lease) {
    if let Err(error) = repo.release(lease).await {
        tracing::warn!(
            %error,
            destination = %lease.delivery.destination_id,
            event = %lease.delivery.event_id,
            "releasing a delivery lease failed; it is offered again when the lease expires"
        );
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How an attempt task ended.
enum Ended {
    /// With the attempt recorded, or its outcome left to the lease's expiry
    /// (a store error).
    Done,
    /// Without an attempt: the lease was given back.
    Released,
}

/// One attempt of `job`: read the destination, plan, send, report. Until
/// the answer (or the timeout) arrives, `cut` ends it and its lease is
/// released; from then on, it is recorded whatever happens.
async fn attempt<R: Outbox>(
    shared: Arc<Shared<R>>,
    job: Claimed,
    _permit: OwnedSemaphorePermit,
    stop: watch::Receiver<bool>,
    mut cut: watch::Receiver<bool>,
) -> Ended {
    let sent = tokio::select! {
        biased;
        sent = send(&shared, &job, &stop) => sent,
        () = signalled(&mut cut) => {
            let key = &job.lease.delivery;
            tracing::info!(
                destination = %key.destination_id,
                event = %key.event_id,
                "delivery attempt cut short by the shutdown; its lease is released"
            );
            Sent::Released
        }
    };
    match sent {
        Sent::Answered(answered) => {
            record(&shared, &job, answered).await;
            Ended::Done
        }
        Sent::Released => {
            release(&shared.repo, &job.lease).await;
            Ended::Released
        }
        Sent::LeftToExpire => Ended::Done,
    }
}

/// What [`send`] came to.
enum Sent {
    /// The answer or the timeout arrived: the attempt is to be recorded.
    Answered(Answered),
    /// Nothing sent; the lease is to be given back.
    Released,
    /// Nothing sent; the lease is left to expire (a store or secret error,
    /// logged).
    LeftToExpire,
}

/// An attempt whose answer (or timeout) arrived.
struct Answered {
    lease: Lease,
    outcome: Outcome,
    started_at: Timestamp,
    took: Duration,
}

/// The attempt up to its answer: read the destination, plan, send under a
/// renewed lease.
async fn send<R: Outbox>(shared: &Shared<R>, job: &Claimed, stop: &watch::Receiver<bool>) -> Sent {
    let key = &job.lease.delivery;
    let record = match shared.repo.get(&key.tenant, key.destination_id).await {
        Ok(Some(record)) if record.enabled => record,
        Ok(_) => {
            // Deleted or disabled since the claim: released, the store drops
            // it (or, if it is enabled again by then, offers it again).
            tracing::debug!(
                destination = %key.destination_id,
                event = %key.event_id,
                "delivery skipped: the destination is gone or disabled"
            );
            return Sent::Released;
        }
        Err(error) => {
            tracing::warn!(
                %error,
                destination = %key.destination_id,
                event = %key.event_id,
                "reading the destination failed; the delivery is offered again when its lease expires"
            );
            return Sent::LeftToExpire;
        }
    };
    if *stop.borrow() {
        return Sent::Released;
    }
    let started_at = now();
    let started = Instant::now();
    let request = match plan_attempt(
        &key.tenant,
        &record,
        &shared.keyring,
        &job.event,
        job.attempt,
        started_at,
    ) {
        Ok(request) => request,
        Err(error) => {
            tracing::error!(
                %error,
                destination = %key.destination_id,
                event = %key.event_id,
                "the destination's secret does not open with the sealing keys; the delivery waits for its lease to expire"
            );
            return Sent::LeftToExpire;
        }
    };
    let mut lease = job.lease.clone();
    let outcome = {
        let send = shared.client.send(&request);
        tokio::pin!(send);
        // At most daily: a longer period could overflow the interval's
        // instants, and renewing more often than needed is harmless.
        let every = (shared.lease / 2).min(Duration::from_secs(86_400));
        let mut renew = tokio::time::interval_at(after(every), every);
        loop {
            tokio::select! {
                outcome = &mut send => break outcome,
                _ = renew.tick() => {
                    let until = now().saturating_add(shared.lease);
                    match shared.repo.renew(&lease, until).await {
                        Ok(true) => lease.expires_at = until,
                        Ok(false) => tracing::warn!(
                            destination = %key.destination_id,
                            event = %key.event_id,
                            "delivery lease lost while sending"
                        ),
                        Err(error) => tracing::warn!(
                            %error,
                            destination = %key.destination_id,
                            event = %key.event_id,
                            "renewing a delivery lease failed"
                        ),
                    }
                }
            }
        }
    };
    Sent::Answered(Answered {
        lease,
        outcome,
        started_at,
        took: started.elapsed(),
    })
}

/// Classifies the answer and writes the attempt and its consequence.
async fn record<R: Outbox>(shared: &Shared<R>, job: &Claimed, answered: Answered) {
    let Answered {
        lease,
        outcome,
        started_at,
        took,
    } = answered;
    let key = &job.lease.delivery;
    let mut classification = classify(outcome.answer(), now());
    // Retry-After counts from the answer; the schedule counts from the start.
    if let Classification::Failed(failure) = &mut classification {
        failure.retry_after = failure.retry_after.map(|d| d.saturating_add(took));
    }
    let report = plan_finish(
        job,
        &classification,
        started_at,
        took,
        &shared.schedule,
        shared.disable,
        &mut os_rng(),
    );
    let record = report.attempt.clone();
    let stored = finish_attempt(&shared.repo, &lease, report).await;
    let outcome_text = match record.outcome {
        AttemptOutcome::Succeeded => "succeeded",
        AttemptOutcome::Failed => "failed",
        AttemptOutcome::Refused => "refused",
    };
    let detail = match &outcome {
        Outcome::Failed { detail, .. } => Some(detail.as_str()),
        Outcome::Response { .. } => None,
    };
    let (stored_text, disabled) = match &stored {
        Ok(CompleteOutcome::Recorded { disabled }) => ("recorded", *disabled),
        Ok(CompleteOutcome::LeaseLost) => ("lease_lost", None),
        Err(_) => ("store_error", None),
    };
    tracing::info!(
        organization = %key.tenant,
        destination = %key.destination_id,
        event = %key.event_id,
        attempt = job.attempt,
        outcome = outcome_text,
        status = record.response_status,
        error = detail,
        duration_ms = record.duration_ms,
        next_attempt_at = record.next_attempt_at.map(|t| t.to_string()),
        disabled = disabled.map(DisabledReason::as_str),
        stored = stored_text,
        "delivery attempt"
    );
    if let Err(error) = stored {
        // The store's text, never its sources (`StoreError`).
        let error = match error {
            OpError::Repo(store) => store.to_string(),
            other => other.to_string(),
        };
        tracing::warn!(
            %error,
            destination = %key.destination_id,
            event = %key.event_id,
            "recording a delivery attempt failed; the delivery is offered again when its lease expires"
        );
    }
    if let Some(at) = record.next_attempt_at {
        let mut due = shared.due.lock().unwrap_or_else(PoisonError::into_inner);
        due.insert(at);
        while due.len() > DUE_REMEMBERED {
            due.pop_last();
        }
        drop(due);
        shared.rescheduled.notify_one();
    }
}
