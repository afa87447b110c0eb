//! The readers: a few read-only connections, each on its own thread, that
//! run every read outside the writer's queue. WAL lets them read the last
//! committed state while the writer writes; a read that starts after a
//! write was answered sees it (the writer answers after `COMMIT`).

use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::error::{JobResult, SqliteError};
use super::migrations;

/// How many reader connections (and threads) a repo opens.
pub(super) const READERS: usize = 3;

/// One caller's read, run in one read transaction (one snapshot) on
/// whichever reader is free.
struct ReadJob(Box<dyn FnOnce(&Connection) + Send>);

/// The reader threads and their shared queue. Dropping it lets the threads
/// finish the queued reads, closes their connections and waits for that.
pub(super) struct Readers {
    jobs: Option<mpsc::Sender<ReadJob>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Readers {
    /// Opens `count` reader connections to the database at `path` and
    /// starts a thread for each.
    pub(super) fn open(path: &Path, count: usize) -> Result<Self, SqliteError> {
        let (jobs, queue) = mpsc::channel::<ReadJob>();
        let queue = Arc::new(Mutex::new(queue));
        let mut readers = Self {
            jobs: Some(jobs),
            threads: Vec::with_capacity(count),
        };
        for n in 0..count {
            let conn = migrations::open_reader(path)?;
            let queue = Arc::clone(&queue);
            let thread = thread::Builder::new()
                .name(format!("sqlite-reader-{n}"))
                .spawn(move || read(&conn, &queue))
                .map_err(|_| SqliteError::unavailable())?;
            readers.threads.push(thread);
        }
        Ok(readers)
    }

    /// Runs `body` on a reader, in one read transaction, and returns its
    /// result.
    pub(super) async fn call<T, F>(&self, body: F) -> JobResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> JobResult<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job = ReadJob(Box::new(move |conn: &Connection| {
            // The caller may have gone away; then nobody needs the answer.
            let _ = answer.send(in_read_transaction(conn, body));
        }));
        let jobs = self.jobs.as_ref().ok_or_else(SqliteError::unavailable)?;
        jobs.send(job).map_err(|_| SqliteError::unavailable())?;
        answered.await.map_err(|_| SqliteError::unavailable())?
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        // Closing the channel ends every thread once the queue is empty.
        drop(self.jobs.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn read(conn: &Connection, queue: &Mutex<mpsc::Receiver<ReadJob>>) {
    loop {
        // Holding the lock only while waiting: the job runs without it, so
        // the other readers take the next jobs meanwhile.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => (job.0)(conn),
            Err(_) => return,
        }
    }
}

fn in_read_transaction<T>(
    conn: &Connection,
    body: impl FnOnce(&Connection) -> JobResult<T>,
) -> JobResult<T> {
    conn.execute_batch("BEGIN DEFERRED")?;
    let result = body(conn);
    if conn.execute_batch("COMMIT").is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}
