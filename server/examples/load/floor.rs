//! The floor: the receiver of the delivery runs, driven by a bare reqwest
//! client with the delivery client's settings, posting the bodies and
//! headers a delivery sends, as many at once as the worker may have in
//! flight. No store, no claims, no records: what the delivery runs are
//! divided by.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use prets_destinations::Timestamp;
use prets_destinations::delivery::{Event, USER_AGENT};
use prets_destinations_server::{Config, DeliveryConfig};
use reqwest::header::{HeaderMap, HeaderValue};

use crate::cpu::Cpu;
use crate::receiver::start_receiver;
use crate::{Args, BACKLOG_FANOUT, delivery_settings};

/// One floor measurement.
pub(crate) struct Floor {
    /// POSTs sent (events × fan-out).
    pub(crate) requests: usize,
    /// POSTs the receiver counted once each.
    pub(crate) received: usize,
    /// POSTs answered other than 204, or not at all.
    pub(crate) failed: usize,
    pub(crate) seconds: f64,
    /// This process's CPU time over the POSTs.
    pub(crate) cpu: Option<Cpu>,
}

impl Floor {
    /// Deliveries per second.
    pub(crate) fn rate(&self) -> f64 {
        self.received as f64 / self.seconds.max(1e-9)
    }
}

/// The HTTP client of [`DeliveryClient::new`] with the same settings, less
/// the checked resolver (the receiver is a literal IP address, so no name is
/// resolved either way).
///
/// [`DeliveryClient::new`]: prets_destinations_server::delivery::DeliveryClient::new
fn bare_client(config: &DeliveryConfig) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(true)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .referer(false)
        .connect_timeout(config.connect_timeout)
        .timeout(config.timeout)
        .pool_idle_timeout(
            config
                .pool_idle_timeout
                .min(Duration::from_secs(365 * 86_400)),
        )
        .pool_max_idle_per_host(usize::try_from(config.pool_max_idle_per_host).unwrap());
    for cert in &config.root_certificates {
        builder = builder.add_root_certificate(cert.clone());
    }
    builder.build().unwrap()
}

/// `events` × [`BACKLOG_FANOUT`] POSTs with `--delivery-concurrency` in
/// flight.
pub(crate) async fn measure(dir: &std::path::Path, args: &Args, events: usize) -> Floor {
    let epoch = Instant::now();
    let cert_path = dir.join("floor.pem");
    let receiver = start_receiver(&cert_path, epoch).await;
    let mut config = Config::new(dir.join("unused.sqlite3"), "127.0.0.1:0".parse().unwrap());
    delivery_settings(&mut config, &cert_path, args);
    let client = bare_client(&config.delivery().unwrap());

    // The bodies and headers a delivery of each event sends, made before
    // the clock starts (the store holds them ready too).
    let now = Timestamp::try_from(SystemTime::now()).unwrap();
    let sent_us = epoch.elapsed().as_micros();
    let mut rng = prets_destinations::os_rng();
    let authorization = HeaderValue::from_str(&format!("Bearer whsec_{}", "A".repeat(43))).unwrap();
    let requests: Arc<Vec<(HeaderMap, bytes::Bytes)>> = Arc::new(
        (0..events)
            .map(|i| {
                let payload = format!(r#"{{"i":{i},"sentUs":{sent_us}}}"#);
                let event = Event::new("load.tick", payload, now, &mut rng).unwrap();
                let mut headers = HeaderMap::new();
                let mut auth = authorization.clone();
                auth.set_sensitive(true);
                headers.insert("authorization", auth);
                headers.insert("content-type", HeaderValue::from_static("application/json"));
                let id = event.event_id.to_string();
                headers.insert("webhook-id", HeaderValue::from_str(&id).unwrap());
                let timestamp = now.unix_seconds().to_string();
                headers.insert(
                    "webhook-timestamp",
                    HeaderValue::from_str(&timestamp).unwrap(),
                );
                headers.insert("user-agent", HeaderValue::from_static(USER_AGENT));
                (headers, bytes::Bytes::from(event.delivery_body()))
            })
            .collect(),
    );
    let total = events * BACKLOG_FANOUT;
    let base = format!("https://127.0.0.1:{}/d/", receiver.addr.port());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let cpu_before = Cpu::now();
    let tasks: Vec<_> = (0..args.delivery_concurrency)
        .map(|_| {
            let (client, requests, next, base) =
                (client.clone(), requests.clone(), next.clone(), base.clone());
            tokio::spawn(async move {
                let mut failed = 0;
                loop {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    if j >= total {
                        return failed;
                    }
                    let (headers, body) = &requests[j / BACKLOG_FANOUT];
                    let url = format!("{base}{}", j % BACKLOG_FANOUT);
                    let answer = client
                        .post(url)
                        .headers(headers.clone())
                        .body(body.clone())
                        .send()
                        .await;
                    match answer {
                        Ok(response) if response.status() == 204 => {
                            let _ = response.bytes().await;
                        }
                        _ => failed += 1,
                    }
                }
            })
        })
        .collect();
    let mut failed = 0;
    for task in tasks {
        failed += task.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = Cpu::since(cpu_before);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let seen = receiver.take();
    Floor {
        requests: total,
        received: seen.receipts.len(),
        failed,
        seconds,
        cpu,
    }
}
