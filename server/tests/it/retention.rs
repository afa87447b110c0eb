//! Retention over real HTTP on memory, SQLite and PostgreSQL: the sweeper removes a
//! finished event and its attempts once they are past the retentions, and
//! keeps an event of the same age whose delivery is still pending (another
//! organization's, held by a receiver that never answers); settings that
//! would remove attempts before their events are refused at start.

use std::time::Duration;

use prets_destinations_postgres::test_support::TestDb;
use prets_destinations_server::{Config, Database, PgUrl, StartError, mint_token, spawn};
use serde_json::json;
use tokio::net::TcpListener;
use zeroize::Zeroizing;

use crate::support::client::Client;
use crate::support::{TempDir, assert_documented, config, two_org_tokens};

/// Within this, a delivery to a refusing port has failed twice and a
/// sweep has run: generous, since a loaded machine may be slow; the test
/// passes as soon as the event is gone.
const BOUND: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
enum Store {
    Memory,
    Sqlite,
    Postgres,
}

fn retention_config(dir: &TempDir, store: Store) -> (Config, Zeroizing<String>, Zeroizing<String>) {
    let (a, b) = (mint_token(), mint_token());
    let mut config = config(dir);
    config.memory = matches!(store, Store::Memory);
    config.api_tokens = two_org_tokens(&a, &b);
    config.allow_private_destinations = vec!["127.0.0.1/32".parse().unwrap()];
    config.retry_schedule = "1s".parse().unwrap();
    // B's receiver holds its attempt for as long as the test runs.
    config.delivery_timeout = Duration::from_secs(600);
    config.delivery_connect_timeout = Duration::from_secs(600);
    config.event_retention = Duration::from_secs(1);
    config.attempt_retention = Duration::from_secs(1);
    config.retention_interval = Duration::from_millis(100);
    (config, a, b)
}

async fn event_status(client: &Client, id: &str) -> u16 {
    let path = format!("/v1/events/{id}");
    let response = client.call("GET", &path, None).await;
    assert_documented("GET", "/v1/events/{eventId}", &response);
    response.status
}

async fn finished_events_go_and_pending_ones_stay(store: Store) {
    let dir = TempDir::new();
    let (mut config, a, b) = retention_config(&dir, store);
    let db = matches!(store, Store::Postgres).then(TestDb::new);
    if let Some(db) = &db {
        use std::os::unix::fs::PermissionsExt as _;
        config.database = Database::from(PgUrl::parse(&db.url()).unwrap());
        let key_file = dir.path().join("sealing-key");
        let hex: String = (0..32u8).map(|b| format!("{:02x}", b ^ 0x3c)).collect();
        std::fs::write(&key_file, format!("1 {hex}\n")).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        config.sealing_key_file = Some(key_file);
    }
    let running = spawn(&config).await.unwrap();
    let (a, b) = (Client::new(running.addr, &a), Client::new(running.addr, &b));

    // A's receiver refuses every connection: two attempts, then failed.
    let refusing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused_port = refusing.local_addr().unwrap().port();
    drop(refusing);
    // B's accepts and never answers: its delivery stays pending.
    let tarpit = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tarpit_port = tarpit.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = tarpit.accept().await {
            held.push(socket);
        }
    });

    let (a_dest, _) = a
        .create("dead", &format!("https://127.0.0.1:{refused_port}/hook"))
        .await;
    let (b_dest, _) = b
        .create("tarpit", &format!("https://127.0.0.1:{tarpit_port}/hook"))
        .await;
    let a_event = a.publish("order.paid", r#"{"n":1}"#, 1).await;
    let b_event = b.publish("order.paid", r#"{"n":2}"#, 1).await;
    let (a_event, b_event) = (
        a_event["eventId"].as_str().unwrap().to_owned(),
        b_event["eventId"].as_str().unwrap().to_owned(),
    );
    assert_eq!(event_status(&a, &a_event).await, 200, "{store:?}");

    // A's event is removed once its delivery has failed and it is past the
    // retention; its attempts each once past theirs (the last may have
    // started after the event's removal).
    let deadline = tokio::time::Instant::now() + BOUND;
    while event_status(&a, &a_event).await != 404 || !a.attempts(&a_dest).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{store:?}: the failed event or its attempts were not removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // B's event, as old, is kept: its delivery is pending.
    let response = b.call("GET", &format!("/v1/events/{b_event}"), None).await;
    assert_eq!(response.status, 200, "{store:?}: {}", response.text());
    let detail = response.json();
    assert_eq!(detail["payload"], json!({"n": 2}));
    assert_eq!(detail["deliveries"][0]["destinationId"], json!(b_dest));
    assert_eq!(
        detail["deliveries"][0]["state"],
        json!("pending"),
        "{detail}"
    );

    // Closing the held connections ends B's attempt, so the shutdown does
    // not wait out its timeout.
    held.abort();
    running.stop().await.unwrap();
    drop(db);
}

#[tokio::test]
async fn memory_finished_events_go_and_pending_ones_stay() {
    finished_events_go_and_pending_ones_stay(Store::Memory).await;
}

#[tokio::test]
async fn sqlite_finished_events_go_and_pending_ones_stay() {
    finished_events_go_and_pending_ones_stay(Store::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_finished_events_go_and_pending_ones_stay() {
    finished_events_go_and_pending_ones_stay(Store::Postgres).await;
}

#[tokio::test]
async fn an_attempt_retention_shorter_than_the_event_retention_is_refused() {
    let dir = TempDir::new();
    let mut config = config(&dir);
    config.memory = true;
    config.attempt_retention = Duration::from_secs(86_400);
    config.event_retention = Duration::from_secs(7 * 86_400);
    let error = spawn(&config).await.unwrap_err();
    assert!(matches!(error, StartError::Retention(_)), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("--attempt-retention") && text.contains("--event-retention"),
        "{text}"
    );
    // Equal is fine.
    config.attempt_retention = config.event_retention;
    spawn(&config).await.unwrap().stop().await.unwrap();
}
