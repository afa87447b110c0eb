//! A stub resolver for deliveries to the [receiver](super::receiver): the
//! receiver's name answered with fixed addresses (or a failure), and the
//! questions counted.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prets_destinations_server::delivery::{Resolve, Resolving};

use super::receiver::HOST;

/// Answers [`HOST`], the only name it may be asked, with fixed addresses
/// and counts the questions.
pub struct Stub {
    answers: Result<Vec<IpAddr>, ()>,
    calls: Arc<AtomicUsize>,
}

impl Stub {
    /// Answers `answers`; with the count of questions asked.
    pub fn new(answers: &[&str]) -> (Arc<Self>, Arc<AtomicUsize>) {
        Self::with(Ok(answers.iter().map(|a| a.parse().unwrap()).collect()))
    }

    /// Answers with a failure, as for a name that does not exist.
    pub fn failing() -> (Arc<Self>, Arc<AtomicUsize>) {
        Self::with(Err(()))
    }

    fn with(answers: Result<Vec<IpAddr>, ()>) -> (Arc<Self>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let stub = Self {
            answers,
            calls: Arc::clone(&calls),
        };
        (Arc::new(stub), calls)
    }
}

impl Resolve for Stub {
    fn resolve(&self, host: &str) -> Resolving {
        assert_eq!(host, HOST);
        self.calls.fetch_add(1, Ordering::SeqCst);
        let answers = self
            .answers
            .clone()
            .map_err(|()| io::Error::other("no such host"));
        Box::pin(async move { answers })
    }
}

/// A resolver answering `answers`.
pub fn stub(answers: &[&str]) -> Arc<dyn Resolve> {
    Stub::new(answers).0
}

/// A resolver answering 127.0.0.1, where the receiver listens.
pub fn loopback() -> Arc<dyn Resolve> {
    stub(&["127.0.0.1"])
}
