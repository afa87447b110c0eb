//! Waking every node's worker on a publish: after an `enqueue` commits, its
//! node sends `NOTIFY`, and each node
//! [listens](PgRepo::listen) on a connection of its own.

use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::{AsyncMessage, Client, Config, Connection, NoTls, Socket};

use crate::error::PgError;
use crate::repo::PgRepo;

/// Listens on the channel publishes notify.
const LISTEN: &str = "LISTEN prets_published";

/// Notifies the channel, in a transaction of its own that does not wait
/// for its commit record to be flushed: a notification lost in a crash
/// only leaves the work to the next poll.
const NOTIFY: &str = "BEGIN; SET LOCAL synchronous_commit = off; NOTIFY prets_published; COMMIT";

// The states of a node's publish notifications (`PgRepo::notifying`), sent
// at most one at a time: publishes during a send are covered by one more
// send after it. Not in the enqueue's transaction: PostgreSQL serializes
// the commits of all transactions that notify (a lock held until after the
// commit's flush), which would take group commit from the publishes; this
// way a node has at most one such commit in flight, with no flush to wait
// for.
/// Idle: no notification being sent.
const IDLE: u8 = 0;
/// One being sent.
const SENDING: u8 = 1;
/// One being sent, and another publish since it started: send one more.
const AGAIN: u8 = 2;

impl PgRepo {
    /// Notifies every listening node that work was published (soon, on a
    /// task: the caller's commit is done and waits for nothing).
    pub(crate) fn notify_published(&self) {
        // Idle: send (below). Sending: ask for one more send after it.
        // Asked already: nothing to do.
        let state = self.notifying();
        let previous = state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| match s {
            IDLE => Some(SENDING),
            SENDING => Some(AGAIN),
            _ => None,
        });
        if previous != Ok(IDLE) {
            return;
        }
        let repo = self.clone();
        self.spawn(async move {
            let state = repo.notifying();
            loop {
                // A failure is dropped: the listeners' poll finds the work.
                let _ = repo
                    .run(|pool| async move {
                        let client = pool.get().await?;
                        client.batch_execute(NOTIFY).await?;
                        Ok(())
                    })
                    .await;
                // Nothing new since this send started: idle. Else (AGAIN)
                // one more send, for the publishes since.
                if state
                    .compare_exchange(SENDING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return;
                }
                state.store(SENDING, Ordering::Release);
            }
        });
    }
}

/// The first wait before reconnecting a lost listening connection; it
/// doubles up to [`RECONNECT_MAX`].
const RECONNECT_MIN: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// How often an idle listener checks that someone still waits on its
/// `Notify` (it stops when no one does).
const IDLE_CHECK: Duration = Duration::from_secs(10);

type Conn = Connection<Socket, NoTlsStream>;

/// Connects and runs `LISTEN`, driving the connection meanwhile (a
/// notification arriving already wakes `published`).
async fn open(config: &Config, published: &Notify) -> Result<(Client, Conn), PgError> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(PgError::connect)?;
    {
        let listen = client.batch_execute(LISTEN);
        tokio::pin!(listen);
        loop {
            tokio::select! {
                done = &mut listen => {
                    done?;
                    break;
                }
                message = poll_fn(|cx| connection.poll_message(cx)) => match message {
                    Some(Ok(AsyncMessage::Notification(_))) => published.notify_one(),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(PgError::connect(ListenerClosed)),
                },
            }
        }
    }
    Ok((client, connection))
}

/// Forwards notifications until the connection fails (`Err`) or no one
/// holds `published` any more (`Ok`).
async fn forward(
    client: Client,
    mut connection: Conn,
    published: &Weak<Notify>,
) -> Result<(), PgError> {
    loop {
        let message =
            tokio::time::timeout(IDLE_CHECK, poll_fn(|cx| connection.poll_message(cx))).await;
        let Some(notify) = published.upgrade() else {
            drop(client);
            return Ok(());
        };
        match message {
            Ok(Some(Ok(AsyncMessage::Notification(_)))) => notify.notify_one(),
            // Idle, or a notice.
            Err(_) | Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => return Err(PgError::connect(ListenerClosed)),
        }
    }
}

/// The listening connection closed without an error.
#[derive(Debug)]
struct ListenerClosed;

impl std::fmt::Display for ListenerClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the listening connection closed")
    }
}

impl std::error::Error for ListenerClosed {}

impl PgRepo {
    /// Wakes `published` (`notify_one`) whenever an event is enqueued on
    /// this database, by any node: a dedicated connection (not one of the
    /// pool's) runs `LISTEN`. Returns once it listens; then, on its own
    /// task on the repo's runtime, it reconnects after any error (with a
    /// backoff from 0.5 s to 30 s, waking `published` once reconnected, as
    /// a publish may have been missed meanwhile) and stops when nothing
    /// else holds `published`.
    ///
    /// # Errors
    /// If the first connection or its `LISTEN` fails.
    pub async fn listen(&self, published: Arc<Notify>) -> Result<(), PgError> {
        let config = self.listen_config();
        let (client, connection) = open(&config, &published).await?;
        let weak = Arc::downgrade(&published);
        drop(published);
        self.spawn(async move {
            let mut session = (client, connection);
            let mut backoff = RECONNECT_MIN;
            loop {
                let (client, connection) = session;
                if forward(client, connection, &weak).await.is_ok() {
                    return;
                }
                session = loop {
                    tokio::time::sleep(backoff).await;
                    let Some(notify) = weak.upgrade() else {
                        return;
                    };
                    backoff = backoff.saturating_mul(2).min(RECONNECT_MAX);
                    if let Ok(opened) = open(&config, &notify).await {
                        backoff = RECONNECT_MIN;
                        notify.notify_one();
                        break opened;
                    }
                };
            }
        });
        Ok(())
    }
}
