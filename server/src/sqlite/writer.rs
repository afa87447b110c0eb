//! The group-commit writer: one connection on one thread runs every write.
//!
//! Callers hand it [`Job`]s over a channel and await the answer on a
//! oneshot channel, so the futures need no particular runtime and never
//! block an executor thread. The thread takes every job waiting in the
//! queue (up to [`MAX_BATCH`]) into one `BEGIN IMMEDIATE` transaction, each
//! job in its own savepoint, and answers them only after `COMMIT` returned:
//! one `fsync` for many concurrent writes, and still no answer before the
//! data is durable.

use std::sync::mpsc;
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::error::{JobResult, SqliteError};

/// Most jobs the writer commits in one transaction.
pub const MAX_BATCH: usize = 256;

/// One caller's write: run in its own savepoint of a batch's transaction,
/// answered once the batch's fate is known. A job dropped before it is
/// answered (it never ran) answers its caller with `Unavailable`.
pub(super) struct Job(Box<dyn Work>);

/// What the writer does with a [`Job`]: run it, then answer it.
trait Work: Send {
    /// Runs the body in its own savepoint and keeps its result.
    fn run(&mut self, conn: &Connection);
    /// Answers the caller: the kept result if the batch committed, else the
    /// commit's failure.
    fn answer(self: Box<Self>, commit_failed: Option<&SqliteError>);
}

/// A [`Work`] returning `T` to the caller waiting on `answer`.
struct Call<T, F> {
    body: Option<F>,
    result: Option<JobResult<T>>,
    answer: oneshot::Sender<JobResult<T>>,
}

impl<T, F> Work for Call<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> JobResult<T> + Send,
{
    fn run(&mut self, conn: &Connection) {
        if let Some(body) = self.body.take() {
            self.result = Some(in_savepoint(conn, body));
        }
    }

    fn answer(self: Box<Self>, commit_failed: Option<&SqliteError>) {
        let result = match (commit_failed, self.result) {
            (Some(e), _) => Err(e.clone()),
            (None, Some(result)) => result,
            (None, None) => Err(SqliteError::unavailable()),
        };
        // The caller may have gone away; then nobody needs the answer.
        let _ = self.answer.send(result);
    }
}

/// The writer thread and its queue. Dropping it lets the thread finish the
/// queued jobs, closes its connection and waits for that.
pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub(super) fn start(conn: Connection) -> Result<Self, SqliteError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || work(&conn, &queue))
            .map_err(|_| SqliteError::unavailable())?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Runs `body` on the writer, in its own savepoint of the current
    /// batch's transaction, and returns its result once the transaction
    /// committed.
    pub(super) async fn call<T, F>(&self, body: F) -> JobResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> JobResult<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job = Job(Box::new(Call {
            body: Some(body),
            result: None,
            answer,
        }));
        let jobs = self.jobs.as_ref().ok_or_else(SqliteError::unavailable)?;
        jobs.send(job).map_err(|_| SqliteError::unavailable())?;
        answered.await.map_err(|_| SqliteError::unavailable())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread once the queue is empty.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn work(conn: &Connection, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let e = SqliteError::from(e);
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "could not begin a transaction");
            // Dropping the jobs answers each caller with `Unavailable`.
            continue;
        }
        let mut ran: Vec<Job> = Vec::with_capacity(batch.len());
        let mut jobs = batch.into_iter();
        for mut job in jobs.by_ref() {
            job.0.run(conn);
            ran.push(job);
            // Some errors (a full disk, an I/O error) make SQLite roll back
            // the whole transaction, not just the job's savepoint. The jobs
            // after it must not run outside a transaction, where each would
            // commit on its own.
            if conn.is_autocommit() {
                break;
            }
        }
        // Jobs that never ran answer their callers with `Unavailable` on drop.
        drop(jobs);
        let committed = if conn.is_autocommit() {
            Err(SqliteError::rolled_back())
        } else {
            conn.execute_batch("COMMIT").map_err(SqliteError::from)
        };
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let failure = committed.err();
        for job in ran {
            job.0.answer(failure.as_ref());
        }
    }
}

fn in_savepoint<T>(
    conn: &Connection,
    body: impl FnOnce(&Connection) -> JobResult<T>,
) -> JobResult<T> {
    conn.execute_batch("SAVEPOINT job")?;
    match body(conn) {
        Ok(value) => {
            conn.execute_batch("RELEASE job")?;
            Ok(value)
        }
        Err(e) => {
            // Undo this job's writes only; the batch's other jobs stand.
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            Err(e)
        }
    }
}
