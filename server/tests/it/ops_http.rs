//! Operating the server over real HTTP: `GET /healthz` and `GET /readyz`
//! on the API listener without a token, on every store, ready and not;
//! and `GET /metrics` on `--metrics-listen`, parsed with a Prometheus text
//! parser after real deliveries to an HTTPS receiver on 127.0.0.1.

#[cfg(unix)]
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use clap::Parser as _;
use prets_destinations_postgres::test_support::{TestDb, admin};
use prets_destinations_server::{
    ATTEMPT_OUTCOMES, Config, Running, mint_token, route_label, schema_version, spawn, token_digest,
};
use prometheus_parse::{Scrape, Value as Metric};
use serde_json::{Value, json};

use crate::support::client::{ATTEMPTS, Client};
use crate::support::receiver::{Options, Receiver, Reply};
use crate::support::{CREATE_PATH, Response, TempDir, assert_documented, request};

/// How long a delivery may take to be recorded on a loaded machine.
const ARRIVAL: Duration = Duration::from_secs(20);

const ORG: &str = "org_ops";

/// `--api-token` for `token` in [`ORG`].
fn token_flag(token: &str) -> String {
    let hex: String = token_digest(token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{ORG}={hex}")
}

/// Starts, in this process, the server the binary would be with `args`
/// (listening on an ephemeral port).
async fn start(args: &[&str]) -> Running {
    let config = Config::try_parse_from(
        ["prets-destinations-server", "--listen", "127.0.0.1:0"]
            .into_iter()
            .chain(args.iter().copied()),
    )
    .unwrap();
    spawn(&config).await.unwrap()
}

async fn get(addr: std::net::SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"").await
}

/// `/healthz` and `/readyz` answer 200 with their documented bodies.
async fn assert_ready(addr: std::net::SocketAddr) {
    let health = get(addr, "/healthz").await;
    assert_eq!(health.status, 200, "{}", health.text());
    assert_documented("GET", "/healthz", &health);
    assert_eq!(health.json(), json!({"status": "ok"}));
    let ready = get(addr, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_documented("GET", "/readyz", &ready);
    assert_eq!(ready.json(), json!({"status": "ready"}));
}

/// `/readyz` answers the documented 503 `not_ready` problem whose detail
/// holds `why` and none of `secrets`; `/healthz` still answers 200.
async fn assert_not_ready(addr: std::net::SocketAddr, why: &str, secrets: &[&str]) {
    let ready = get(addr, "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert_documented("GET", "/readyz", &ready);
    assert_eq!(
        ready.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(ready.header("retry-after"), Some("5"));
    let body = ready.json();
    assert_eq!(
        body["type"],
        json!("https://api.prets.app/problems/not_ready")
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(why), "{detail}");
    for secret in secrets {
        assert!(
            !ready.text().contains(secret),
            "{} leaks {secret}",
            ready.text()
        );
    }
    let health = get(addr, "/healthz").await;
    assert_eq!(health.status, 200, "the process is up whatever the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_healthy_and_ready_without_a_token() {
    let token = mint_token();
    let server = start(&["--memory", "--api-token", &token_flag(&token)]).await;
    assert_ready(server.addr).await;
    // A token is not needed, and a wrong one changes nothing.
    let ready = request(
        server.addr,
        "GET",
        "/readyz",
        &[("Authorization", "Bearer nonsense")],
        b"",
    )
    .await;
    assert_eq!(ready.status, 200);
    // No metrics listener unless asked for, and no metrics on the API's.
    assert_eq!(server.metrics_addr, None);
    assert_eq!(get(server.addr, "/metrics").await.status, 404);
    server.stop().await.unwrap();
}

/// SQLite: ready while the file's schema is this build's; not ready when
/// it is behind (a file of an older release put back) or newer (a newer
/// release's), and ready again once it is right, each asked afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_readiness_follows_the_schema_version_of_the_file() {
    let dir = TempDir::new();
    let database = dir.path().join("ready.sqlite3");
    let token = mint_token();
    let server = start(&[
        "--database",
        database.to_str().unwrap(),
        "--api-token",
        &token_flag(&token),
    ])
    .await;
    assert_ready(server.addr).await;
    let current = i64::try_from(schema_version()).unwrap();
    let set_version = |v: i64| {
        let conn = rusqlite::Connection::open(&database).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn.execute_batch(&format!("PRAGMA user_version = {v}"))
            .unwrap();
    };
    let path = database.to_str().unwrap();
    set_version(current - 1);
    assert_not_ready(server.addr, "behind", &[path, "ready.sqlite3"]).await;
    set_version(current + 1);
    assert_not_ready(server.addr, "newer", &[path, "ready.sqlite3"]).await;
    set_version(current);
    assert_ready(server.addr).await;
    server.stop().await.unwrap();
}

/// A sealing-key file for PostgreSQL nodes, in `dir`.
fn key_file(dir: &TempDir) -> String {
    let path = dir.path().join("sealing-key");
    let hex: String = (0..32u8).map(|b| format!("{:02x}", b ^ 0x3c)).collect();
    std::fs::write(&path, format!("1 {hex}\n")).unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// PostgreSQL: ready while every migration is applied and none newer; not
/// ready when one is missing or an unknown one is recorded; not ready, and
/// saying nothing of the connection, once the database is gone, while the
/// API's store errors are counted by operation and kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_readiness_follows_its_migrations_and_its_reachability() {
    let db = TestDb::new();
    let dir = TempDir::new();
    let key = key_file(&dir);
    let token = mint_token();
    let url = db.url();
    let server = start(&[
        "--database",
        &url,
        "--sealing-key-file",
        &key,
        "--api-token",
        &token_flag(&token),
        "--metrics-listen",
        "127.0.0.1:0",
    ])
    .await;
    assert_ready(server.addr).await;
    let current = i32::try_from(prets_destinations_postgres::schema_version()).unwrap();
    let client = db.client().await;
    let secrets = [url.as_str(), db.name(), "postgres://", "127.0.0.1"];

    client
        .execute(
            "DELETE FROM schema_migrations WHERE version = $1",
            &[&current],
        )
        .await
        .unwrap();
    assert_not_ready(server.addr, "behind", &secrets).await;
    client
        .execute(
            "INSERT INTO schema_migrations (version) VALUES ($1), ($2)",
            &[&current, &(current + 1)],
        )
        .await
        .unwrap();
    assert_not_ready(server.addr, "newer", &secrets).await;
    client
        .execute(
            "DELETE FROM schema_migrations WHERE version = $1",
            &[&(current + 1)],
        )
        .await
        .unwrap();
    assert_ready(server.addr).await;
    drop(client);

    // The database is dropped under the node: every pooled connection is
    // closed and no new one can be made.
    admin(format!("DROP DATABASE \"{}\" WITH (FORCE)", db.name())).unwrap();
    assert_not_ready(server.addr, "does not answer", &secrets).await;
    let api = Client::new(server.addr, &token);
    let listed = api.call("GET", CREATE_PATH, None).await;
    assert_eq!(listed.status, 503, "{}", listed.text());
    let scrape = scrape(server.metrics_addr.unwrap()).await;
    let errors: f64 = samples(&scrape, "prets_store_errors_total")
        .filter(|s| s.labels.get("operation") == Some("list"))
        .map(|s| {
            let kind = s.labels.get("kind").unwrap();
            assert!(["unavailable", "busy", "failed"].contains(&kind), "{kind}");
            counter(&s.value)
        })
        .sum();
    assert!(errors >= 1.0, "the failed list is not counted");
    // The scrape still answers: its depth sample failed, counted, and the
    // gauges keep their last value.
    let sampled: f64 = samples(&scrape, "prets_store_errors_total")
        .filter(|s| s.labels.get("operation") == Some("queue_depth"))
        .map(|s| counter(&s.value))
        .sum();
    assert!(sampled >= 1.0, "the failed depth sample is not counted");
    assert_eq!(value(&scrape, "prets_deliveries_waiting", &[]), 0.0);
    assert_no_label_holds(&scrape, &secrets);
    server.stop().await.unwrap();
}

// --- Metrics ---

async fn scrape(addr: std::net::SocketAddr) -> Scrape {
    let response = get(addr, "/metrics").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = response.text();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn samples<'a>(
    scrape: &'a Scrape,
    name: &'a str,
) -> impl Iterator<Item = &'a prometheus_parse::Sample> + 'a {
    scrape.samples.iter().filter(move |s| s.metric == name)
}

fn counter(value: &Metric) -> f64 {
    match value {
        Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => *v,
        other => panic!("not a single value: {other:?}"),
    }
}

/// The one sample of `name` whose labels include `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = samples(scrape, name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    counter(&found[0].value)
}

/// A histogram's observation count (its `+Inf` bucket, and `_count`).
fn observations(scrape: &Scrape, name: &str) -> f64 {
    let histogram = samples(scrape, name)
        .find_map(|s| match &s.value {
            Metric::Histogram(buckets) => Some(buckets.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no histogram {name}"));
    let inf = histogram
        .iter()
        .find(|b| b.less_than.is_infinite())
        .unwrap()
        .count;
    assert_eq!(value(scrape, &format!("{name}_count"), &[]), inf);
    // Buckets are cumulative.
    assert!(histogram.windows(2).all(|w| w[0].count <= w[1].count));
    inf
}

/// No label value anywhere holds one of `needles`.
fn assert_no_label_holds(scrape: &Scrape, needles: &[&str]) {
    for sample in &scrape.samples {
        for (name, value) in sample.labels.iter() {
            for needle in needles {
                assert!(
                    !value.contains(needle),
                    "{}{{{name}=\"{value}\"}} holds {needle}",
                    sample.metric
                );
            }
        }
    }
}

/// Two real deliveries to an HTTPS receiver on 127.0.0.1, one answered
/// 204 and one 500 (retried an hour later): the attempt counters, the
/// histograms, the queue gauges and the request counters move by exactly
/// what happened, and no label holds the URL, the secret, the token, an id
/// or the payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_real_deliveries_and_hold_no_secret_in_a_label() {
    let dir = TempDir::new();
    let rx = Receiver::start(Options::default()).await;
    let pem = dir.path().join("receiver.pem");
    std::fs::write(&pem, &rx.cert_pem).unwrap();
    let database = dir.path().join("metrics.sqlite3");
    let token = mint_token();
    let server = start(&[
        "--database",
        database.to_str().unwrap(),
        "--api-token",
        &token_flag(&token),
        "--delivery-root-cert",
        pem.to_str().unwrap(),
        "--allow-private-destinations",
        "127.0.0.1/32",
        "--retry-schedule",
        "1h",
        "--metrics-listen",
        "127.0.0.1:0",
    ])
    .await;
    let metrics = server.metrics_addr.unwrap();
    assert_ne!(metrics, server.addr);
    let api = Client::new(server.addr, &token);
    let url = rx.ip_url("/hooks/PATH-MARKER?sig=QUERY-MARKER");
    let (id, secret) = api.create("metrics", &url).await;
    let payload = r#"{"note":"PAYLOAD-MARKER"}"#;
    let delivered = api.publish("invoice.paid", payload, 1).await;
    api.wait_attempts(&id, 1, ARRIVAL, String::new).await;
    rx.reply(Reply::status(500));
    let failed = api.publish("invoice.failed", payload, 1).await;
    let attempts = api.wait_attempts(&id, 2, ARRIVAL, String::new).await;
    assert_eq!(attempts[0]["outcome"], json!("failed"), "{attempts:#?}");
    assert_eq!(get(server.addr, "/no/such/PATH-MARKER").await.status, 404);

    // The first scrape: the queue depth is sampled now (later scrapes
    // within `DEPTH_SAMPLE_EVERY` read this sample).
    let after = scrape(metrics).await;
    let attempts_of = |outcome: &str| {
        value(
            &after,
            "prets_delivery_attempts_total",
            &[("outcome", outcome)],
        )
    };
    assert_eq!(attempts_of("delivered"), 1.0);
    assert_eq!(attempts_of("http_error"), 1.0);
    for outcome in ATTEMPT_OUTCOMES {
        if !["delivered", "http_error"].contains(&outcome) {
            assert_eq!(attempts_of(outcome), 0.0, "{outcome}");
        }
    }
    assert_eq!(
        observations(&after, "prets_delivery_attempt_duration_seconds"),
        2.0
    );
    // Only the delivered attempt has a publish-to-delivery latency.
    assert_eq!(observations(&after, "prets_delivery_latency_seconds"), 1.0);
    let latency = value(&after, "prets_delivery_latency_seconds_sum", &[]);
    assert!((0.0..ARRIVAL.as_secs_f64()).contains(&latency), "{latency}");
    // The failed delivery waits for its retry in an hour; nothing is leased.
    assert_eq!(value(&after, "prets_deliveries_waiting", &[]), 1.0);
    assert_eq!(value(&after, "prets_deliveries_leased", &[]), 0.0);
    // Requests by route template and status.
    let requests = |method: &str, route: &str, status: &str| {
        value(
            &after,
            "prets_http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("POST", CREATE_PATH, "201"), 1.0);
    assert_eq!(requests("POST", "/v1/events", "202"), 2.0);
    assert!(requests("GET", &route_label(ATTEMPTS), "200") >= 2.0);
    assert_eq!(
        route_label(ATTEMPTS),
        "/v1/events/destinations/:id/attempts"
    );
    assert_eq!(requests("GET", "unmatched", "404"), 1.0);
    // Nothing failed in the store.
    assert!(
        samples(&after, "prets_store_errors_total").all(|s| counter(&s.value) == 0.0),
        "{:?}",
        samples(&after, "prets_store_errors_total").collect::<Vec<_>>()
    );
    let event_ids: Vec<String> = [&delivered, &failed]
        .iter()
        .map(|e: &&Value| e["eventId"].as_str().unwrap().to_owned())
        .collect();
    let mut needles = vec![
        url.as_str(),
        "127.0.0.1",
        "hooks",
        "PATH-MARKER",
        "QUERY-MARKER",
        "PAYLOAD-MARKER",
        secret.as_str(),
        &secret["whsec_".len()..],
        token.as_str(),
        id.as_str(),
        ORG,
        "invoice",
    ];
    needles.extend(event_ids.iter().map(String::as_str));
    assert_no_label_holds(&after, &needles);
    server.stop().await.unwrap();
}

/// The binary with `PRETS_METRICS_LISTEN`: it says where it serves the
/// metrics, which parse, and answers its probes.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_metrics_on_the_address_of_its_variable() {
    let dir = TempDir::new();
    let token = mint_token();
    let database = dir.path().join("binary.sqlite3");
    let flag = token_flag(&token);
    let process = crate::support::process::ServerProcess::start_with_env(
        &dir,
        &[
            "--database",
            database.to_str().unwrap(),
            "--api-token",
            &flag,
        ],
        &[("PRETS_METRICS_LISTEN", "127.0.0.1:0")],
    );
    let output = process.output();
    let metrics: std::net::SocketAddr = output
        .split("metrics=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no metrics address in:\n{output}"))
        .parse()
        .unwrap();
    assert_ne!(metrics, process.addr);
    assert_ready(process.addr).await;
    let scraped = scrape(metrics).await;
    assert_eq!(
        value(
            &scraped,
            "prets_http_requests_total",
            &[("method", "GET"), ("route", "/readyz"), ("status", "200")]
        ),
        1.0
    );
    // Only `/metrics` is served there.
    assert_eq!(get(metrics, "/readyz").await.status, 404);
    let exited = process.exit();
    assert!(exited.status.success(), "{}", exited.log);
}
