//! Publishing events over keep-alive connections, paced or as fast as the
//! server answers, and the destinations they fan out to.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::http::Conn;

/// Creates `fanout` destinations of the run's organization, destination `d`
/// posting to `https://127.0.0.1:{port}/d/{d}`.
pub(crate) async fn create_destinations(addr: SocketAddr, bearer: &str, port: u16, fanout: usize) {
    let mut conn = Conn::open(addr).await;
    for d in 0..fanout {
        let body = format!(r#"{{"name":"receiver {d}","url":"https://127.0.0.1:{port}/d/{d}"}}"#);
        let (status, answer) = conn.post("/v1/events/destinations", bearer, &body).await;
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(answer));
    }
}

/// An event the server acknowledged: its id and how many deliveries it
/// queued.
pub(crate) struct Acked {
    pub(crate) event_id: String,
    pub(crate) destinations: usize,
}

#[derive(Default)]
pub(crate) struct Published {
    pub(crate) acked: Vec<Acked>,
    /// Latency of each acknowledged publish (request to 202).
    pub(crate) latencies: Vec<Duration>,
    /// Publishes answered other than 202.
    pub(crate) refused: usize,
}

impl Published {
    fn extend(&mut self, other: Self) {
        self.acked.extend(other.acked);
        self.latencies.extend(other.latencies);
        self.refused += other.refused;
    }

    /// The deliveries the acknowledged events queued.
    pub(crate) fn expected(&self) -> usize {
        self.acked.iter().map(|a| a.destinations).sum()
    }
}

/// When the events are sent.
#[derive(Clone, Copy)]
pub(crate) enum Pace {
    /// Event `i` is due at `start + i / rate`; none is sent at or after
    /// `end`, if there is one.
    Rate {
        start: tokio::time::Instant,
        rate: f64,
        end: Option<tokio::time::Instant>,
    },
    /// `count` events, each sent as soon as its connection is free.
    Fast { count: u64 },
}

/// Publishes over `connections` keep-alive connections, connection `i` on
/// node `i % nodes`, each taking the next event's turn, until the pace ends
/// or `stop` is set.
pub(crate) fn publish(
    addrs: &[SocketAddr],
    connections: usize,
    bearer: &Arc<str>,
    pace: Pace,
    epoch: Instant,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Published> {
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            tokio::spawn(publisher(
                addrs[i % addrs.len()],
                bearer.clone(),
                next.clone(),
                pace,
                epoch,
                stop.clone(),
            ))
        })
        .collect();
    tokio::spawn(async move {
        let mut all = Published::default();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    })
}

/// One keep-alive connection publishing the events whose turn it takes.
async fn publisher(
    addr: SocketAddr,
    bearer: Arc<str>,
    next: Arc<AtomicU64>,
    pace: Pace,
    epoch: Instant,
    stop: Arc<AtomicBool>,
) -> Published {
    let mut conn = Conn::open(addr).await;
    let mut out = Published::default();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        match pace {
            Pace::Rate { start, rate, end } => {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                if end.is_some_and(|end| due >= end) {
                    return out;
                }
                tokio::time::sleep_until(due).await;
            }
            Pace::Fast { count } => {
                if i >= count {
                    return out;
                }
            }
        }
        if stop.load(Ordering::Relaxed) {
            return out;
        }
        let started = Instant::now();
        let sent_us = started.duration_since(epoch).as_micros();
        let body = format!(r#"{{"type":"load.tick","payload":{{"i":{i},"sentUs":{sent_us}}}}}"#);
        let (status, answer) = conn.post("/v1/events", &bearer, &body).await;
        if status != 202 {
            out.refused += 1;
            if out.refused <= 3 {
                eprintln!("publish {i}: {status} {}", String::from_utf8_lossy(answer));
            }
            continue;
        }
        out.latencies.push(started.elapsed());
        let answer: serde_json::Value = serde_json::from_slice(answer).unwrap();
        out.acked.push(Acked {
            event_id: answer["eventId"].as_str().unwrap().to_owned(),
            destinations: answer["destinations"].as_u64().unwrap() as usize,
        });
    }
}
