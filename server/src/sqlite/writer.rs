//! The group-commit writer: one connection on one thread runs every write.
//!
//! Callers hand it [`Job`]s over a channel and await the answer on a
//! oneshot channel, so the futures need no particular runtime and never
//! block an executor thread. The thread takes every job waiting in the
//! queue (up to [`MAX_BATCH`]) into one `BEGIN IMMEDIATE` transaction, each
//! job in its own savepoint (a job alone in its batch needs none: if it
//! fails, the transaction is rolled back), and answers them only after
//! `COMMIT` returned:
//! one `fsync` for many concurrent writes, and still no answer before the
//! data is durable.
//!
//! A batch is committed with `synchronous = FULL` (the WAL synced before
//! `COMMIT` returns) if any of its jobs is [`Durability::Synced`], else
//! with `synchronous = NORMAL` ([`Durability::Relaxed`]: the delivery
//! worker's leases and results). A relaxed commit survives the process's
//! crash (`kill -9`: the WAL is in the operating system's cache) and
//! never corrupts the file, but a power loss or an operating-system crash
//! may undo it, together with every commit after it that was not synced.
//! The WAL is appended in commit order and a synced commit syncs all of it,
//! so what survives is always a prefix of the commits, and every synced
//! commit is in it.

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
pub(super) struct Job {
    work: Box<dyn Work>,
    durability: Durability,
}

/// How a job's commit must reach the disk before it is answered.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Durability {
    /// Synced (`synchronous = FULL`): what an API answer promises.
    Synced,
    /// Written to the WAL, not synced (`synchronous = NORMAL`): only for
    /// writes whose loss in a power failure makes a delivery be attempted
    /// again (a lease, a renewal, an attempt's result), never an answer's
    /// data. Synced with the next synced commit.
    Relaxed,
}

/// What the writer does with a [`Job`]: run it, then answer it.
trait Work: Send {
    /// Runs the body, in its own savepoint if `isolated`, keeps its result
    /// and says whether it succeeded.
    fn run(&mut self, conn: &Connection, isolated: bool) -> bool;
    /// Answers the caller: the kept result if the batch committed, else the
    /// batch's failure (its `BEGIN` or its `COMMIT`).
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
    fn run(&mut self, conn: &Connection, isolated: bool) -> bool {
        let Some(body) = self.body.take() else {
            return false;
        };
        let result = if isolated {
            in_savepoint(conn, body)
        } else {
            body(conn)
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
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

    /// Runs `body` on the writer, in the current batch's transaction (in
    /// its own savepoint when the batch holds other jobs), and returns its
    /// result once the transaction committed.
    pub(super) async fn call<T, F>(&self, body: F) -> JobResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> JobResult<T> + Send + 'static,
    {
        self.call_with(Durability::Synced, body).await
    }

    /// [`call`](Self::call) with the commit's `durability`.
    pub(super) async fn call_with<T, F>(&self, durability: Durability, body: F) -> JobResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> JobResult<T> + Send + 'static,
    {
        let answered = self.submit(durability, body)?;
        answered.await.map_err(|_| SqliteError::unavailable())?
    }

    /// Queues `body` and returns where its answer arrives.
    fn submit<T, F>(
        &self,
        durability: Durability,
        body: F,
    ) -> Result<oneshot::Receiver<JobResult<T>>, SqliteError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> JobResult<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job = Job {
            work: Box::new(Call {
                body: Some(body),
                result: None,
                answer,
            }),
            durability,
        };
        let jobs = self.jobs.as_ref().ok_or_else(SqliteError::unavailable)?;
        jobs.send(job).map_err(|_| SqliteError::unavailable())?;
        Ok(answered)
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

/// Sets the connection's `synchronous` for the next commit, unless it is
/// already so (`current`).
fn sync_for(
    conn: &Connection,
    current: &mut Durability,
    wanted: Durability,
) -> Result<(), SqliteError> {
    if *current != wanted {
        conn.execute_batch(match wanted {
            Durability::Synced => "PRAGMA synchronous = FULL",
            Durability::Relaxed => "PRAGMA synchronous = NORMAL",
        })?;
        *current = wanted;
    }
    Ok(())
}

fn work(conn: &Connection, queue: &mpsc::Receiver<Job>) {
    // The connection starts with `synchronous = FULL` (`configure`).
    let mut current = Durability::Synced;
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let wanted = if batch.iter().any(|j| j.durability == Durability::Synced) {
            Durability::Synced
        } else {
            Durability::Relaxed
        };
        if let Err(e) = sync_for(conn, &mut current, wanted)
            .and_then(|()| run_cached(conn, "BEGIN IMMEDIATE").map_err(SqliteError::from))
        {
            // Another connection holding the lock past the busy timeout
            // (`SQLITE_BUSY`), or worse: no job ran, each caller hears why.
            tracing::warn!(error = %e, "could not begin a transaction");
            for job in batch {
                job.work.answer(Some(&e));
            }
            continue;
        }
        // A job alone in its batch needs no savepoint: if it fails, the
        // whole transaction is rolled back instead of committed (the
        // savepoint's sub-journal copied each page the job wrote).
        let alone = batch.len() == 1;
        let mut failed_alone = false;
        let mut ran: Vec<Job> = Vec::with_capacity(batch.len());
        let mut jobs = batch.into_iter();
        for mut job in jobs.by_ref() {
            failed_alone = !job.work.run(conn, !alone) && alone;
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
        let committed = if failed_alone {
            // Its writes undone (unless SQLite did already); it answers with
            // its own error.
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Ok(())
        } else if conn.is_autocommit() {
            Err(SqliteError::rolled_back())
        } else {
            run_cached(conn, "COMMIT").map_err(SqliteError::from)
        };
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let failure = committed.err();
        for job in ran {
            job.work.answer(failure.as_ref());
        }
    }
}

/// Runs one statement without parameters, prepared once per connection
/// (every job runs two, every batch two more: parsing them each time cost
/// the writer more than some jobs).
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn in_savepoint<T>(
    conn: &Connection,
    body: impl FnOnce(&Connection) -> JobResult<T>,
) -> JobResult<T> {
    run_cached(conn, "SAVEPOINT job")?;
    match body(conn) {
        Ok(value) => {
            run_cached(conn, "RELEASE job")?;
            Ok(value)
        }
        Err(e) => {
            // Undo this job's writes only; the batch's other jobs stand.
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prets_destinations::{os_rng, rand_core::Rng as _};
    use std::sync::mpsc as std_mpsc;

    /// A writer on a new database file, and the file's path.
    fn temp_writer() -> (Writer, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "prets-sqlite-writer-{}-{:x}.sqlite3",
            std::process::id(),
            os_rng().next_u64()
        ));
        let conn = Connection::open(&path).unwrap();
        super::super::migrations::configure(&conn).unwrap();
        (Writer::start(conn).unwrap(), path)
    }

    fn remove_db(path: &std::path::Path) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.to_path_buf().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }

    /// Submits a job that holds the writer until the returned sender sends
    /// (or is dropped), and returns once it runs: the jobs submitted
    /// meanwhile are the next batch, together.
    fn hold(writer: &Writer) -> (std_mpsc::Sender<()>, oneshot::Receiver<JobResult<()>>) {
        let (started, running) = std_mpsc::channel::<()>();
        let (release, held) = std_mpsc::channel::<()>();
        let blocker = writer
            .submit(Durability::Relaxed, move |_: &Connection| {
                started.send(()).unwrap();
                let _ = held.recv();
                Ok(())
            })
            .unwrap();
        running.recv().unwrap();
        (release, blocker)
    }

    /// The `synchronous` setting a job runs (and its batch commits) under:
    /// 2 is FULL, 1 is NORMAL.
    fn synchronous(conn: &Connection) -> JobResult<i64> {
        Ok(conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?)
    }

    /// A job that fails leaves nothing written, whether it runs alone (its
    /// transaction rolled back) or in a batch (its savepoint rolled back,
    /// the other jobs committed), and answers with its own error.
    #[tokio::test]
    async fn a_failed_job_writes_nothing_alone_or_in_a_batch() {
        let (writer, path) = temp_writer();
        writer
            .call(|conn: &Connection| Ok(conn.execute_batch("CREATE TABLE t (x TEXT)")?))
            .await
            .unwrap();
        let insert = |x: &'static str, fail: bool| {
            move |conn: &Connection| -> JobResult<()> {
                conn.execute("INSERT INTO t VALUES (?1)", [x])?;
                if fail {
                    Err(SqliteError::corrupt("job"))
                } else {
                    Ok(())
                }
            }
        };
        let rows = |conn: &Connection| -> JobResult<Vec<String>> {
            let mut stmt = conn.prepare("SELECT x FROM t ORDER BY x")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        };

        let alone = writer.call(insert("alone", true)).await.unwrap_err();
        assert_eq!(alone.to_string(), "stored job is not valid");
        assert_eq!(writer.call(rows).await.unwrap(), Vec::<String>::new());

        // Hold the writer until three jobs are queued: they are one batch.
        let (release, blocker) = hold(&writer);
        let a = writer
            .submit(Durability::Synced, insert("a", false))
            .unwrap();
        let b = writer
            .submit(Durability::Synced, insert("b", true))
            .unwrap();
        let c = writer
            .submit(Durability::Synced, insert("c", false))
            .unwrap();
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        a.await.unwrap().unwrap();
        let b = b.await.unwrap().unwrap_err();
        assert_eq!(b.to_string(), "stored job is not valid");
        c.await.unwrap().unwrap();
        assert_eq!(writer.call(rows).await.unwrap(), ["a", "c"]);

        // The writer goes on after a failure alone.
        writer.call(insert("d", false)).await.unwrap();
        assert_eq!(writer.call(rows).await.unwrap(), ["a", "c", "d"]);
        drop(writer);
        remove_db(&path);
    }

    /// A batch of relaxed jobs only commits with `synchronous = NORMAL`; a
    /// batch holding a synced job commits with FULL, whatever else it
    /// holds; the setting follows each batch, both ways.
    #[tokio::test]
    async fn a_batch_is_synced_when_any_of_its_jobs_asks() {
        let (writer, path) = temp_writer();

        let relaxed = writer.call_with(Durability::Relaxed, synchronous).await;
        assert_eq!(relaxed.unwrap(), 1);
        assert_eq!(writer.call(synchronous).await.unwrap(), 2);

        // Hold the writer in a job until a relaxed and a synced job are both
        // queued: they are the next batch, together.
        let (release, blocker) = hold(&writer);
        let mixed = writer.submit(Durability::Relaxed, synchronous).unwrap();
        let synced = writer.submit(Durability::Synced, synchronous).unwrap();
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        assert_eq!(mixed.await.unwrap().unwrap(), 2);
        assert_eq!(synced.await.unwrap().unwrap(), 2);

        let relaxed = writer.call_with(Durability::Relaxed, synchronous).await;
        assert_eq!(relaxed.unwrap(), 1);
        drop(writer);
        remove_db(&path);
    }
}
