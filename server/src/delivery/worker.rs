//! The delivery worker: claims due deliveries through the core's
//! [`Outbox`] seam, sends each with the [`DeliveryClient`] in its own task
//! under a concurrency bound, and reports every attempt back.
//!
//! - Claims are fair ([`Outbox::claim`] with [`ClaimLimits`]): at most
//!   `--destination-concurrency` attempts in flight per destination, and
//!   the slow lane: destinations whose last attempt failed hold together at
//!   most [`slow_lane`] of the `--delivery-concurrency` slots (a quarter, at
//!   least 1), one attempt each. The worker counts its failing attempts in
//!   flight ([`Claimed::failing`]) and asks a claim for no more failing
//!   deliveries than the slow lane has free. A dead receiver thus holds at
//!   most its destination's cap while healthy, one slot once failing, and
//!   all the failing ones together a quarter of the worker. A failure also
//!   sends back unsent the destination's attempts claimed as healthy
//!   before it was written, so that claims ahead never give a failing
//!   destination a second full round.
//! - Claims run ahead of the sends ([`WorkerOptions::lookahead`], 4 by
//!   default): the worker holds up to four times as many leases as it may
//!   have attempts in flight, in all and per destination, so that an
//!   answer frees its slot for the next attempt of its destination at
//!   once, while its result is written and the next claim made. The attempts in flight stay
//!   within both caps, counted by the worker; the store's caps count leases
//!   (`lookahead` × the destination's cap per destination), which also
//!   bound what several workers on one store send to one destination
//!   together.
//! - Every time is the store's ([`Outbox::now`]): read once per claim (the
//!   claim's `now`), then advanced by the monotonic clock for the attempt's
//!   start, its retry time and the wakes; renewals read it again.
//! - A claim leases each delivery for [`lease_duration`] (2 × the delivery
//!   timeout + 5 s); an attempt renews its lease every half lease from the
//!   claim until its result is written, so a slow receiver or a slow store
//!   never lets another worker take it over.
//! - It claims when the routes signal a publish (the shared [`Notify`]), when
//!   attempts end (their leases are free; after a written batch, once its
//!   attempts have all ended, so one claim takes their successors), when a
//!   retry it scheduled falls due, and otherwise every poll interval (for
//!   retries scheduled elsewhere and expired leases). After a claim that
//!   found nothing, a publish wakes the next claim [`PUBLISH_GAP`] after it
//!   at the earliest: publishes to destinations at their cap (a dead
//!   receiver's backlog) cost the store one claim per gap, not one each.
//!   Store errors back off from 100 ms, doubling to 30 s.
//! - An attempt uses the destination as the claim read it
//!   ([`Claimed::destination`]: no read of its own), including its sealed
//!   secret: an attempt claimed just before a rotation carries the secret
//!   of the claim's moment, as an attempt already sent would. A destination
//!   the claim found disabled gets nothing (its lease is released).
//! - Finished attempts are written together: one recorder writes what
//!   finished while its previous write ran ([`Outbox::complete_all`], at
//!   most [`RECORD_BATCH`] at a time), so a busy worker makes one store
//!   write per batch, and an idle one writes each at once.
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

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prets_destinations::delivery::{
    AttemptOutcome, AttemptReport, ClaimLimits, Claimed, Classification, CompleteOutcome,
    DisablePolicy, DisabledReason, Lease, LeaseRequest, LeaseToken, Outbox, RetrySchedule,
    classify, plan_attempt,
};
use prets_destinations::ops::plan_finish;
use prets_destinations::{DestinationId, TenantId};
use prets_destinations::{Keyring, Timestamp, os_rng};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::delivery::client::{DeliveryClient, Outcome};
use crate::delivery::config::DeliveryConfig;
use crate::delivery::deadline::after;
use crate::metrics::Metrics;
use prets_destinations::delivery::Answer;

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

/// The slots of the slow lane for a worker of `concurrency` slots: what
/// destinations whose last attempt failed may hold together, one attempt
/// each. A quarter of the slots, at least 1.
#[must_use]
pub const fn slow_lane(concurrency: usize) -> usize {
    let quarter = concurrency / 4;
    if quarter == 0 { 1 } else { quarter }
}

/// The first wait after a store error; it doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest wait after repeated store errors.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Default [`WorkerOptions::poll_interval`].
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Default [`WorkerOptions::batch`].
pub const BATCH: usize = 32;
/// Most finished attempts written by one [`Outbox::complete_all`].
pub const RECORD_BATCH: usize = 64;
/// Default [`WorkerOptions::lookahead`].
pub const LOOKAHEAD: usize = 4;
/// Longest a claim waits for the attempts of a written batch to end.
const GATHER: Duration = Duration::from_millis(20);
/// After a claim that found nothing, the least time before a publish wakes
/// the next one (attempts ending, retries falling due and the poll wake it
/// at once). A publish that a claim could serve waits at most this long; a
/// claim that finds every lane of an organization at its cap costs the
/// store a visit of each of them.
pub const PUBLISH_GAP: Duration = Duration::from_millis(20);
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
    /// until the attempt is recorded.
    pub lease: Option<Duration>,
    /// Deliveries held claimed per attempt that may be in flight (at least
    /// 1): a worker of `c` slots and a cap of `d` per destination holds up
    /// to `c × lookahead` leases, `d × lookahead` of one destination, and
    /// still sends at most `c` and `d` at once. The leases beyond those in
    /// flight are the next attempts, sent the moment an answer frees a slot
    /// instead of a store write and a claim later. 1 claims only what can
    /// be sent at once.
    pub lookahead: usize,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            poll_interval: POLL_INTERVAL,
            batch: BATCH,
            shutdown_grace: None,
            lease: None,
            lookahead: LOOKAHEAD,
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

    /// These options with `lookahead` (at least 1).
    #[must_use]
    pub const fn lookahead(mut self, lookahead: usize) -> Self {
        self.lookahead = lookahead;
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
    per_destination: usize,
    published: Arc<Notify>,
    options: WorkerOptions,
    metrics: Arc<Metrics>,
}

impl<R> fmt::Debug for Worker<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("lease", &self.lease)
            .field("concurrency", &self.concurrency)
            .field("per_destination", &self.per_destination)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<R: Outbox + 'static> Worker<R> {
    /// A worker delivering from `repo` with `client`, under `config`'s retry
    /// schedule, disable policy, timeout and concurrency (overall and per
    /// destination), opening secrets with `keyring`, woken by `published`.
    pub fn new(
        repo: R,
        keyring: Arc<Keyring>,
        client: DeliveryClient,
        config: &DeliveryConfig,
        published: Arc<Notify>,
    ) -> Self {
        let slots = |n: u32| {
            usize::try_from(n)
                .unwrap_or(usize::MAX)
                .clamp(1, Semaphore::MAX_PERMITS)
        };
        Self {
            repo,
            keyring,
            client,
            schedule: config.retry_schedule.clone(),
            disable: config.disable,
            timeout: config.timeout,
            lease: lease_duration(config.timeout),
            concurrency: slots(config.concurrency),
            per_destination: slots(config.destination_concurrency),
            published,
            options: WorkerOptions::default(),
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// This worker counting its attempts in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
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
            per_destination: self.per_destination,
            lookahead: self.options.lookahead.max(1),
            sending: Semaphore::new(self.concurrency),
            lanes: Mutex::new(HashMap::new()),
            slow_lane: slow_lane(self.concurrency),
            failing_in_flight: AtomicUsize::new(0),
            answering: AtomicUsize::new(0),
            published: self.published,
            rescheduled: Notify::new(),
            ended: Notify::new(),
            due: Mutex::new(BTreeSet::new()),
            options: self.options,
            metrics: self.metrics,
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

/// What the worker's loop, its attempt tasks and its recorder share.
struct Shared<R> {
    repo: R,
    keyring: Arc<Keyring>,
    client: DeliveryClient,
    schedule: RetrySchedule,
    disable: DisablePolicy,
    lease: Duration,
    /// Most attempts in flight to one destination.
    per_destination: usize,
    /// [`WorkerOptions::lookahead`], at least 1.
    lookahead: usize,
    /// The slots of attempts in flight (from the request to its answer).
    sending: Semaphore,
    /// Each destination with attempts of this worker waiting or in flight,
    /// and its slots (`per_destination` of them).
    lanes: Mutex<HashMap<LaneKey, Arc<LaneState>>>,
    slow_lane: usize,
    /// Attempts in flight of destinations that were failing when claimed.
    failing_in_flight: AtomicUsize,
    /// Attempts the recorder has answered whose tasks have not ended yet:
    /// the loop lets them end before it claims, so that one claim follows
    /// a written batch instead of one claim per attempt in it.
    answering: AtomicUsize,
    published: Arc<Notify>,
    /// Signalled when an attempt schedules a retry, so the loop's next wake
    /// is recomputed.
    rescheduled: Notify,
    /// Signalled when an attempt ends: its slot, its destination's and
    /// perhaps a slow-lane one are free.
    ended: Notify,
    /// Retry times this worker scheduled, earliest first.
    due: Mutex<BTreeSet<Timestamp>>,
    options: WorkerOptions,
    metrics: Arc<Metrics>,
}

/// The store's clock as a claim read it, advanced by the monotonic clock.
#[derive(Clone, Copy)]
struct Clock {
    read: Timestamp,
    at: Instant,
}

impl Clock {
    fn now(self) -> Timestamp {
        self.read.saturating_add(self.at.elapsed())
    }
}

/// The instant `at` falls on, seen from `now`.
fn instant_of(at: Timestamp, now: Timestamp) -> Instant {
    let wait = at.unix_millis().saturating_sub(now.unix_millis());
    after(Duration::from_millis(wait))
}

/// A publish's signal, seen no earlier than `not_before`.
async fn published(signal: &Notify, not_before: Option<Instant>) {
    signal.notified().await;
    if let Some(at) = not_before {
        tokio::time::sleep_until(at).await;
    }
}

/// Completes once `flag` is set (the stop, or the cut after the grace).
async fn signalled(flag: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: nobody can set it anymore.
    if flag.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Waits out `backoff` (or the stop: `false`), and doubles it.
async fn back_off(backoff: &mut Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let wait = *backoff;
    *backoff = backoff.saturating_mul(2).min(BACKOFF_MAX);
    tokio::select! {
        biased;
        () = signalled(stop) => false,
        () = tokio::time::sleep(wait) => true,
    }
}

async fn run<R: Outbox + 'static>(
    shared: Arc<Shared<R>>,
    concurrency: usize,
    grace: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // One permit per lease this worker may hold: those in flight and those
    // claimed ahead of them.
    let leases = concurrency
        .saturating_mul(shared.lookahead)
        .min(Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(leases));
    let mut tasks = JoinSet::new();
    let mut backoff = BACKOFF_MIN;
    // Set when the grace after the stop is over: attempts still waiting for
    // their answer end then.
    let (cut, cut_seen) = watch::channel(false);
    // At most one finished attempt per slot waits for the recorder.
    let (finished, to_record) = mpsc::channel(leases.max(1));
    let recorder = tokio::spawn(recorder(Arc::clone(&shared), to_record));
    loop {
        while tasks.try_join_next().is_some() {}
        // The rest of a written batch ends first: its leases are free in the
        // store already, and one claim then takes their successors together.
        while shared.answering.load(Ordering::Acquire) > 0 {
            tokio::select! {
                biased;
                () = signalled(&mut stop) => break,
                () = shared.ended.notified() => {}
                () = tokio::time::sleep(GATHER) => break,
            }
        }
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
        let now = match shared.repo.now().await {
            Ok(now) => now,
            Err(error) => {
                drop(held);
                tracing::warn!(%error, retry_in_ms = millis(backoff), "reading the store's clock failed");
                if back_off(&mut backoff, &mut stop).await {
                    continue;
                }
                break;
            }
        };
        let clock = Clock {
            read: now,
            at: Instant::now(),
        };
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
        let failing = shared.failing_in_flight.load(Ordering::Acquire);
        let limits = ClaimLimits {
            limit,
            per_destination: shared.per_destination.saturating_mul(shared.lookahead),
            failing_limit: shared.slow_lane.saturating_sub(failing).min(limit),
            per_failing_destination: 1,
        };
        let claimed = match shared.repo.claim(now, limits, request).await {
            Ok(claimed) => claimed,
            Err(error) => {
                drop(held);
                tracing::warn!(%error, retry_in_ms = millis(backoff), "claiming deliveries failed");
                if back_off(&mut backoff, &mut stop).await {
                    continue;
                }
                break;
            }
        };
        backoff = BACKOFF_MIN;
        let full = claimed.len() >= limit;
        let found_none = claimed.is_empty();
        let mut held = held.into_iter();
        for job in claimed {
            let Some(permit) = held.next() else {
                // More than asked for: not ours to run now.
                release(&shared.repo, &job.lease).await;
                continue;
            };
            let slot = Slot::take(&shared, job.failing, permit);
            tasks.spawn(attempt(
                Arc::clone(&shared),
                job,
                slot,
                clock,
                finished.clone(),
                stop.clone(),
                cut_seen.clone(),
            ));
        }
        drop(held);
        if full {
            continue;
        }
        let poll = after(shared.options.poll_interval);
        let wake = shared
            .due
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first()
            .map_or(poll, |&at| instant_of(at, clock.now()).min(poll));
        let gap = found_none.then(|| after(PUBLISH_GAP));
        tokio::select! {
            biased;
            () = signalled(&mut stop) => break,
            () = published(&shared.published, gap) => {}
            () = shared.rescheduled.notified() => {}
            () = shared.ended.notified() => {}
            () = tokio::time::sleep_until(wake) => {}
        }
    }
    drain(tasks, grace, &cut).await;
    // Every attempt has handed its result over: the recorder writes the
    // last ones and ends.
    drop(finished);
    if let Err(error) = recorder.await {
        tracing::error!(%error, "the delivery recorder failed");
    }
}

/// An attempt's hold on the worker: its slot, and its place in the slow lane
/// if its destination was failing. Given back when the attempt task ends,
/// however it ends, and the loop told.
struct Slot<R> {
    shared: Arc<Shared<R>>,
    failing: bool,
    /// Set when the recorder answered the attempt (counted in
    /// [`Shared::answering`]).
    answered: AtomicBool,
    _permit: OwnedSemaphorePermit,
}

impl<R> Slot<R> {
    fn take(shared: &Arc<Shared<R>>, failing: bool, permit: OwnedSemaphorePermit) -> Self {
        if failing {
            shared.failing_in_flight.fetch_add(1, Ordering::AcqRel);
        }
        Self {
            shared: Arc::clone(shared),
            failing,
            answered: AtomicBool::new(false),
            _permit: permit,
        }
    }
}

impl<R> Drop for Slot<R> {
    fn drop(&mut self) {
        if self.failing {
            self.shared.failing_in_flight.fetch_sub(1, Ordering::AcqRel);
        }
        if *self.answered.get_mut() {
            self.shared.answering.fetch_sub(1, Ordering::AcqRel);
        }
        // `notify_one` keeps a permit when the loop is not waiting yet.
        self.shared.ended.notify_one();
    }
}

/// A destination, as the worker's lanes are keyed.
type LaneKey = (TenantId, DestinationId);

/// What the attempts of one destination share in a worker.
struct LaneState {
    /// Its slots of attempts in flight.
    slots: Semaphore,
    /// Its failures not yet written, and when the last one was.
    failures: Mutex<Failures>,
}

/// What a lane knows of its attempts' failures: its attempts claimed as
/// healthy while a failure was not yet written, waiting for a slot, give
/// their leases back instead of being sent, so that a claim after the
/// write finds the destination failing and gives it the slow lane. Those
/// claimed after it are sent: that claim saw the destination as the store
/// has it.
#[derive(Default)]
struct Failures {
    /// Failures answered and not yet written.
    unwritten: usize,
    /// When the last failure was written.
    written_at: Option<Instant>,
}

impl LaneState {
    fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether an attempt claimed at `claimed_at` as healthy was claimed
    /// before a failure of the lane was written.
    fn stale(&self, claimed_at: Instant) -> bool {
        let failures = self.failures();
        failures.unwritten > 0 || failures.written_at.is_some_and(|at| claimed_at <= at)
    }
}

/// An attempt's use of its destination's [`LaneState`], shared with the
/// other attempts of the destination while any of them holds it; the last
/// one to go removes it.
struct Lane<'a, R> {
    shared: &'a Shared<R>,
    key: LaneKey,
    state: Arc<LaneState>,
}

impl<'a, R> Lane<'a, R> {
    fn of(shared: &'a Shared<R>, key: LaneKey) -> Self {
        let state = Arc::clone(
            shared
                .lanes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key.clone())
                .or_insert_with(|| {
                    Arc::new(LaneState {
                        slots: Semaphore::new(shared.per_destination),
                        failures: Mutex::new(Failures::default()),
                    })
                }),
        );
        Self { shared, key, state }
    }
}

impl<R> Drop for Lane<'_, R> {
    fn drop(&mut self) {
        let mut lanes = self
            .shared
            .lanes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Clones are made under this lock only: two is the map's and ours.
        if Arc::strong_count(&self.state) == 2 {
            lanes.remove(&self.key);
        }
    }
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

/// A finished attempt for the recorder, and where its write's result goes
/// (the store's error as text: the error itself need not be `Clone`).
struct Finished {
    lease: Lease,
    report: AttemptReport,
    written: oneshot::Sender<Result<CompleteOutcome, String>>,
}

/// Writes finished attempts: each write takes what finished while the one
/// before it ran, up to [`RECORD_BATCH`], with one
/// [`Outbox::complete_all`]. Ends when every sender is gone.
async fn recorder<R: Outbox>(shared: Arc<Shared<R>>, mut to_record: mpsc::Receiver<Finished>) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while to_record.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let (writes, answers): (Vec<_>, Vec<_>) = batch
            .drain(..)
            .map(|f| ((f.lease, f.report), f.written))
            .unzip();
        let written = shared.repo.complete_all(writes).await;
        shared.answering.fetch_add(answers.len(), Ordering::AcqRel);
        let unheard = |_| {
            // A closed receiver: its attempt task is gone (it never is
            // before the answer, but nothing is lost either way).
            shared.answering.fetch_sub(1, Ordering::AcqRel);
        };
        match written {
            Ok(outcomes) => {
                for (answer, outcome) in answers.into_iter().zip(outcomes) {
                    answer.send(Ok(outcome)).map_or_else(unheard, |()| ());
                }
            }
            Err(error) => {
                let text = error.to_string();
                for answer in answers {
                    answer.send(Err(text.clone())).map_or_else(unheard, |()| ());
                }
            }
        }
    }
}

/// One attempt of `job`, its lease renewed from the claim until its result
/// is written: send, then record. Until the answer (or the timeout)
/// arrives, `cut` ends it and its lease is released; from then on, it is
/// recorded whatever happens.
async fn attempt<R: Outbox>(
    shared: Arc<Shared<R>>,
    job: Claimed,
    slot: Slot<R>,
    clock: Clock,
    finished: mpsc::Sender<Finished>,
    stop: watch::Receiver<bool>,
    mut cut: watch::Receiver<bool>,
) -> Ended {
    let lease = Mutex::new(job.lease.clone());
    // Held until the attempt is recorded: a failure it marks on the lane
    // stays seen until the store knows it.
    let key = &job.lease.delivery;
    let lane = Lane::of(&shared, (key.tenant.clone(), key.destination_id));
    let work = async {
        let sent = tokio::select! {
            biased;
            sent = send(&shared, &job, &lane, clock, &stop) => sent,
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
        let held = || lease.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match sent {
            Sent::Answered(answered) => {
                let failure = failed(&answered.outcome);
                record(&shared, &job, held(), answered, &finished, &slot.answered).await;
                if failure {
                    let mut failures = lane.state.failures();
                    failures.unwritten = failures.unwritten.saturating_sub(1);
                    failures.written_at = Some(Instant::now());
                }
                Ended::Done
            }
            Sent::Released => {
                release(&shared.repo, &held()).await;
                Ended::Released
            }
            Sent::LeftToExpire => Ended::Done,
        }
    };
    tokio::select! {
        ended = work => ended,
        never = renew(&shared, &lease) => match never {},
    }
}

/// Renews `lease` every half lease, for as long as it is polled (the
/// attempt's whole life), until the lease is lost.
async fn renew<R: Outbox>(shared: &Shared<R>, lease: &Mutex<Lease>) -> core::convert::Infallible {
    // At most daily: a longer period could overflow the interval's
    // instants, and renewing more often than needed is harmless.
    let every = (shared.lease / 2).min(Duration::from_secs(86_400));
    let mut tick = tokio::time::interval_at(after(every), every);
    loop {
        tick.tick().await;
        let held = lease.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let key = &held.delivery;
        let now = match shared.repo.now().await {
            Ok(now) => now,
            Err(error) => {
                tracing::warn!(%error, destination = %key.destination_id, event = %key.event_id,
                    "reading the store's clock to renew a delivery lease failed");
                continue;
            }
        };
        let until = now.saturating_add(shared.lease);
        match shared.repo.renew(&held, until).await {
            Ok(true) => {
                lease
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .expires_at = until;
            }
            Ok(false) => {
                tracing::warn!(
                    destination = %key.destination_id,
                    event = %key.event_id,
                    "delivery lease lost during the attempt"
                );
                return std::future::pending().await;
            }
            Err(error) => tracing::warn!(
                %error,
                destination = %key.destination_id,
                event = %key.event_id,
                "renewing a delivery lease failed"
            ),
        }
    }
}

/// Whether an answer counts against its destination: anything but a 2xx.
fn failed(outcome: &Outcome) -> bool {
    !matches!(outcome.answer(), Answer::Response { status, .. } if (200..300).contains(&status))
}

/// What [`send`] came to.
enum Sent {
    /// The answer or the timeout arrived: the attempt is to be recorded.
    Answered(Answered),
    /// Nothing sent; the lease is to be given back.
    Released,
    /// Nothing sent; the lease is left to expire (a secret that does not
    /// open, logged).
    LeftToExpire,
}

/// An attempt whose answer (or timeout) arrived.
struct Answered {
    outcome: Outcome,
    started_at: Timestamp,
    took: Duration,
}

/// The attempt up to its answer: plan from the destination the claim read,
/// send.
async fn send<R: Outbox>(
    shared: &Shared<R>,
    job: &Claimed,
    lane: &Lane<'_, R>,
    clock: Clock,
    stop: &watch::Receiver<bool>,
) -> Sent {
    let key = &job.lease.delivery;
    if !job.destination.enabled {
        // Claims return enabled destinations only; released, the store
        // drops it.
        tracing::debug!(
            destination = %key.destination_id,
            event = %key.event_id,
            "delivery skipped: the destination is disabled"
        );
        return Sent::Released;
    }
    // A slot of the destination's, then one of the worker's: claimed ahead,
    // the attempt waits here for an answer to free one.
    let mut stopped = stop.clone();
    let slots = tokio::select! {
        biased;
        () = signalled(&mut stopped) => return Sent::Released,
        slots = async {
            let own = lane.state.slots.acquire().await;
            let worker = shared.sending.acquire().await;
            own.and_then(|own| Ok((own, worker?)))
        } => slots,
    };
    // Never closed: the worker and the lanes live as long as this attempt.
    let Ok(_slots) = slots else {
        return Sent::Released;
    };
    if !job.failing && lane.state.stale(clock.at) {
        // Claimed ahead while healthy; an attempt before it just failed.
        tracing::debug!(
            destination = %key.destination_id,
            event = %key.event_id,
            "delivery given back: its destination is failing now"
        );
        return Sent::Released;
    }
    let started_at = clock.now();
    let started = Instant::now();
    let request = match plan_attempt(
        &key.tenant,
        &job.destination,
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
    let outcome = shared.client.send(&request).await;
    if failed(&outcome) {
        // Before the slots are given back: the attempts waiting for them see
        // it.
        lane.state.failures().unwritten += 1;
    }
    Sent::Answered(Answered {
        outcome,
        started_at,
        took: started.elapsed(),
    })
}

/// Classifies the answer and writes the attempt and its consequence
/// (through the recorder).
async fn record<R: Outbox>(
    shared: &Shared<R>,
    job: &Claimed,
    lease: Lease,
    answered: Answered,
    finished: &mpsc::Sender<Finished>,
    heard: &AtomicBool,
) {
    let Answered {
        outcome,
        started_at,
        took,
    } = answered;
    let key = &job.lease.delivery;
    let mut classification = classify(outcome.answer(), started_at.saturating_add(took));
    // Retry-After counts from the answer; the schedule counts from the start.
    if let Classification::Failed(failure) = &mut classification {
        failure.retry_after = failure.retry_after.map(|d| d.saturating_add(took));
    }
    shared.metrics.attempt(
        &classification,
        took,
        job.event.created_at,
        started_at.saturating_add(took),
    );
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
    let (written, answer) = oneshot::channel();
    let stored = match finished
        .send(Finished {
            lease,
            report,
            written,
        })
        .await
    {
        Ok(()) => match answer.await {
            Ok(stored) => {
                heard.store(true, Ordering::Release);
                stored
            }
            Err(_) => Err("the recorder stopped before writing".to_owned()),
        },
        Err(unsent) => {
            // The recorder is gone (it never is before the attempts): write
            // it here.
            let Finished { lease, report, .. } = unsent.0;
            shared
                .repo
                .complete(&lease, report)
                .await
                .map_err(|e| e.to_string())
        }
    };
    let outcome_text = match record.outcome {
        AttemptOutcome::Succeeded => "succeeded",
        AttemptOutcome::Failed => "failed",
        AttemptOutcome::Refused => "refused",
    };
    let detail = match &outcome {
        Outcome::Failed { detail, .. } => Some(detail.as_str()),
        Outcome::Response { .. } => None,
    };
    // The retry the store kept: none when the delivery finished (its
    // destination disabled by this attempt, or before it was written), its
    // lease was lost, or nothing was written.
    let (stored_text, disabled, next_attempt_at) = match &stored {
        Ok(CompleteOutcome::Recorded { disabled, retry_at }) => ("recorded", *disabled, *retry_at),
        Ok(CompleteOutcome::LeaseLost) => ("lease_lost", None, None),
        Err(_) => ("store_error", None, None),
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
        next_attempt_at = next_attempt_at.map(|t| t.to_string()),
        disabled = disabled.map(DisabledReason::as_str),
        stored = stored_text,
        "delivery attempt"
    );
    if let Err(error) = stored {
        tracing::warn!(
            %error,
            destination = %key.destination_id,
            event = %key.event_id,
            "recording a delivery attempt failed; the delivery is offered again when its lease expires"
        );
    }
    if let Some(at) = next_attempt_at {
        let mut due = shared.due.lock().unwrap_or_else(PoisonError::into_inner);
        due.insert(at);
        while due.len() > DUE_REMEMBERED {
            due.pop_last();
        }
        drop(due);
        shared.rescheduled.notify_one();
    }
}
