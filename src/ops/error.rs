//! [`OpError`]: the one error type of every operation.

use core::fmt;

/// Why an operation could not give the client an answer: the host's `5xx`.
///
/// Every operation in [`ops`](crate::ops) (create, get, list, update, delete,
/// rotate, publish, send_test, list_attempts and the worker's
/// finish_attempt) returns `Result<Outcome, OpError<R::Error>>`: every answer
/// to the client is an outcome value, and `Err` is only for what the client
/// cannot act on. The store's error is a
/// [`StoreError`](crate::repo::StoreError): whether it is unavailable or busy
/// tells a host to answer `503` rather than `500`.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpError<E> {
    /// The repo failed; the error is its own, as its source.
    Repo(E),
    /// Every generated id of a create, publish or test event collided with
    /// an existing one
    /// ([`SERVER_ID_ATTEMPTS`](crate::ops::SERVER_ID_ATTEMPTS) times):
    /// broken randomness or a broken repo.
    IdCollisions {
        /// How many ids were tried.
        attempts: u32,
    },
}

impl<E> fmt::Display for OpError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Repo(_) => f.write_str("destination repository failed"),
            Self::IdCollisions { attempts } => {
                write!(f, "{attempts} generated ids all collided")
            }
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for OpError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Repo(e) => Some(e),
            Self::IdCollisions { .. } => None,
        }
    }
}
