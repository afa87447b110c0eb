//! The event routes over real HTTP on 127.0.0.1, on the memory store and
//! on SQLite: publish (`POST /v1/events`), a destination's attempts, its
//! test event, `enabled` through PATCH, and the create-time host policy.
//! Every response is checked against the OpenAPI document.

use std::time::{Duration, SystemTime};

use prets_destinations::delivery::{
    Classification, CompleteOutcome, LeaseRequest, LeaseToken, Outbox, PAYLOAD_MAX_BYTES,
    RetrySchedule,
};
use prets_destinations::ops::plan_finish;
use prets_destinations::{DestinationId, TenantId, Timestamp};
use prets_destinations_server::{
    Config, PUBLISH_BODY_LIMIT, Running, SqliteRepo, mint_token, spawn, token_digest,
};
use regex_lite::Regex;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::support::client::{
    ATTEMPTS, Client, EVENTS, ITEM, TEST, attempts_path, item, test_path,
};
use crate::support::{
    CREATE_PATH, Response, TempDir, assert_documented, config, request, two_org_tokens,
};

/// Where the destinations made here post.
const HOOKS: &str = "https://example.com/hooks";

/// A server for two organizations (`org_a`, `org_b`) on `store`: each
/// organization's client, and their tokens (for a restart).
struct Server {
    dir: TempDir,
    running: Running,
    a: Client,
    b: Client,
    tokens: (Zeroizing<String>, Zeroizing<String>),
}

#[derive(Clone, Copy, Debug)]
enum Store {
    Memory,
    Sqlite,
}

const STORES: [Store; 2] = [Store::Memory, Store::Sqlite];

fn two_org_config(dir: &TempDir, store: Store) -> (Config, Zeroizing<String>, Zeroizing<String>) {
    let (a, b) = (mint_token(), mint_token());
    let mut config = config(dir);
    config.memory = matches!(store, Store::Memory);
    // These tests look at the queue and the attempts the API reports, so no
    // worker may claim behind their back: the node only takes requests.
    config.no_delivery = true;
    config.api_tokens = two_org_tokens(&a, &b);
    (config, a, b)
}

impl Server {
    async fn start(store: Store) -> Self {
        Self::start_with(store, |_| {}).await
    }

    async fn start_with(store: Store, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = TempDir::new();
        let (mut config, a, b) = two_org_config(&dir, store);
        adjust(&mut config);
        let running = spawn(&config).await.unwrap();
        Self::over(dir, running, (a, b))
    }

    /// The clients of `running`, a server for the organizations of `tokens`.
    fn over(
        dir: TempDir,
        running: Running,
        tokens: (Zeroizing<String>, Zeroizing<String>),
    ) -> Self {
        Self {
            a: Client::new(running.addr, &tokens.0),
            b: Client::new(running.addr, &tokens.1),
            dir,
            running,
            tokens,
        }
    }
}

fn assert_problem(response: &Response, status: u16, kind: &str) -> Value {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json")
    );
    let body = response.json();
    assert_eq!(body["status"], json!(status));
    assert_eq!(
        body["type"],
        json!(format!("https://api.prets.app/problems/{kind}"))
    );
    body
}

/// The `(field, code)` pairs of a 422.
fn field_codes(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn assert_accepted(response: &Response, event_type: &str, destinations: u64) -> String {
    assert_eq!(response.status, 202, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    keys.sort_unstable();
    assert_eq!(keys, ["createdAt", "destinations", "eventId", "type"]);
    assert_eq!(body["type"], json!(event_type));
    assert_eq!(body["destinations"], json!(destinations), "{body}");
    let id = body["eventId"].as_str().unwrap();
    assert!(
        Regex::new("^evt_[0-9A-HJKMNP-TV-Z]{26}$")
            .unwrap()
            .is_match(id),
        "{id}"
    );
    let created = body["createdAt"].as_str().unwrap();
    assert!(
        Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
            .unwrap()
            .is_match(created),
        "{created}"
    );
    id.to_owned()
}

#[tokio::test]
async fn publish_fans_out_to_the_callers_enabled_destinations_only() {
    for store in STORES {
        let server = Server::start(store).await;
        let event = json!({"type": "invoice.paid", "payload": {"n": 1}});
        // No destinations yet: accepted, nothing queued.
        assert_accepted(&server.a.post_event(&event).await, "invoice.paid", 0);

        let a1 = server.a.create("a1", HOOKS).await.0;
        let a2 = server.a.create("a2", HOOKS).await.0;
        let a3 = server.a.create("a3", HOOKS).await.0;
        for name in ["b1", "b2", "b3", "b4"] {
            server.b.create(name, HOOKS).await;
        }
        assert_accepted(&server.a.post_event(&event).await, "invoice.paid", 3);
        assert_accepted(&server.b.post_event(&event).await, "invoice.paid", 4);

        server.a.set_enabled(&a2, false).await;
        assert_accepted(&server.a.post_event(&event).await, "invoice.paid", 2);
        server.a.set_enabled(&a1, false).await;
        server.a.set_enabled(&a3, false).await;
        assert_accepted(&server.a.post_event(&event).await, "invoice.paid", 0);
        // The other organization is untouched by org_a's changes.
        assert_accepted(&server.b.post_event(&event).await, "invoice.paid", 4);

        server.a.set_enabled(&a2, true).await;
        assert_accepted(&server.a.post_event(&event).await, "invoice.paid", 1);
        // A deleted destination receives nothing new.
        let deleted = server.a.call("DELETE", &item(&a2), None).await;
        assert_eq!(deleted.status, 200);
        assert_accepted(&server.a.post_event(&event).await, "invoice.paid", 0);

        // Every event gets its own id.
        let first = assert_accepted(&server.b.post_event(&event).await, "invoice.paid", 4);
        let second = assert_accepted(&server.b.post_event(&event).await, "invoice.paid", 4);
        assert_ne!(first, second, "{store:?}");
        server.running.stop().await.unwrap();
    }
}

#[tokio::test]
async fn publish_accepts_any_json_payload_up_to_the_core_limit() {
    let server = Server::start(Store::Sqlite).await;
    server.a.create("one", HOOKS).await;
    for payload in [
        json!(null),
        json!(0),
        json!("text"),
        json!([1, "two", {"three": 3}]),
        json!({"deep": {"er": [true, false, null]}}),
    ] {
        let response = server
            .a
            .post_event(&json!({"type": "a.b_c:d-E9", "payload": payload}))
            .await;
        assert_accepted(&response, "a.b_c:d-E9", 1);
    }
    // A payload of exactly the core's limit, kept as sent, is accepted; one
    // byte more is a 422 naming `payload` (still under the body limit).
    for (extra, status) in [(0, 202), (1, 422)] {
        let filler = "x".repeat(PAYLOAD_MAX_BYTES - 2 + extra);
        let body = format!(r#"{{"type":"big","payload":"{filler}"}}"#);
        assert!(body.len() <= PUBLISH_BODY_LIMIT);
        let response = server
            .a
            .call_with(
                "POST",
                EVENTS,
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            )
            .await;
        assert_eq!(response.status, status, "{}", response.text());
        assert_documented("POST", EVENTS, &response);
        if status == 422 {
            let body = assert_problem(&response, 422, "invalid_fields");
            assert_eq!(field_codes(&body), [("payload".into(), "too_large".into())]);
        }
    }
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn publish_refuses_invalid_type_and_payload_with_422_naming_them() {
    let server = Server::start(Store::Memory).await;
    let long = "t".repeat(129);
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (json!({"payload": 1}), vec![("type", "required")]),
        (json!({"type": "a"}), vec![("payload", "required")]),
        (
            json!({}),
            vec![("type", "required"), ("payload", "required")],
        ),
        (json!({"type": 7, "payload": 1}), vec![("type", "type")]),
        (json!({"type": null, "payload": 1}), vec![("type", "type")]),
        (json!({"type": ["a"], "payload": 1}), vec![("type", "type")]),
        (
            json!({"type": "", "payload": 1}),
            vec![("type", "too_short")],
        ),
        (
            json!({"type": "invoice paid", "payload": 1}),
            vec![("type", "pattern")],
        ),
        (
            json!({"type": "facture.payée", "payload": 1}),
            vec![("type", "pattern")],
        ),
        (
            json!({"type": long, "payload": 1}),
            vec![("type", "too_long")],
        ),
        (
            json!({"type": "", "payload": null}),
            vec![("type", "too_short")],
        ),
    ];
    for (body, expected) in cases {
        let response = server.a.post_event(&body).await;
        let problem = assert_problem(&response, 422, "invalid_fields");
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(f, c)| ((*f).to_owned(), (*c).to_owned()))
            .collect();
        assert_eq!(field_codes(&problem), expected, "{body}");
    }
    // 128 characters is the longest type.
    let longest = "t".repeat(128);
    let response = server
        .a
        .post_event(&json!({"type": longest, "payload": 1}))
        .await;
    assert_accepted(&response, &longest, 0);
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn publish_answers_400_413_415_and_401_as_the_other_routes_do() {
    let server = Server::start(Store::Sqlite).await;
    server.a.create("one", HOOKS).await;
    let json_type = [("Content-Type", "application/json")];
    for body in [
        &b"{"[..],
        b"not json",
        b"[]",
        b"\"text\"",
        br#"{"type":"a","payload":1,"extra":2}"#,
        br#"{"type":"a","type":"b","payload":1}"#,
        br#"{"type":"a","payload":1,"payload":2}"#,
        br#"{"type":"a","payload":1} trailing"#,
        b"",
    ] {
        let response = server.a.call_with("POST", EVENTS, &json_type, body).await;
        assert_eq!(
            response.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(body),
            response.text()
        );
        assert_documented("POST", EVENTS, &response);
    }
    let good = br#"{"type":"a","payload":1}"#;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/json; charset=latin1"),
    ] {
        let headers: Vec<_> = content_type
            .map(|c| ("Content-Type", c))
            .into_iter()
            .collect();
        let response = server.a.call_with("POST", EVENTS, &headers, good).await;
        assert_problem(&response, 415, "unsupported_media_type");
        assert_documented("POST", EVENTS, &response);
    }
    // Over the route's limit: 413, naming the limit.
    let filler = "x".repeat(PUBLISH_BODY_LIMIT);
    let body = format!(r#"{{"type":"big","payload":"{filler}"}}"#);
    let response = server
        .a
        .call_with("POST", EVENTS, &json_type, body.as_bytes())
        .await;
    let problem = assert_problem(&response, 413, "body_too_large");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(&PUBLISH_BODY_LIMIT.to_string()),
        "{problem}"
    );
    assert_documented("POST", EVENTS, &response);
    // Exactly at the limit: read and judged (whitespace-padded), so the
    // limit is this route's, not the 64 KiB of the others.
    let mut at = good.to_vec();
    at.resize(PUBLISH_BODY_LIMIT, b' ');
    let response = server.a.call_with("POST", EVENTS, &json_type, &at).await;
    assert_accepted(&response, "a", 1);
    // Without a token, or with an unknown one: 401, nothing stored.
    for headers in [
        vec![("Content-Type", "application/json")],
        vec![
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer nope"),
        ],
    ] {
        let response = request(server.running.addr, "POST", EVENTS, &headers, good).await;
        assert_problem(&response, 401, "unauthorized");
        assert_documented("POST", EVENTS, &response);
    }
    // Only the one accepted request queued anything.
    let Server { dir, running, .. } = server;
    running.stop().await.unwrap();
    let repo = SqliteRepo::open(&dir.database()).unwrap();
    let claimed = claim_all(&repo).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event.event_type.as_str(), "a");
}

#[tokio::test]
async fn other_methods_on_events_are_405_with_allow() {
    let server = Server::start(Store::Memory).await;
    // GET lists the event log.
    for method in ["PUT", "DELETE", "PATCH"] {
        let response = server.a.call(method, EVENTS, None).await;
        assert_problem(&response, 405, "method_not_allowed");
        let allow = response.header("allow").unwrap();
        assert!(
            allow.contains("POST") && allow.contains("GET"),
            "{method}: {allow}"
        );
    }
    let response = server
        .a
        .call("GET", "/v1/events/destinations/x/test", None)
        .await;
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("POST"));
    let response = server
        .a
        .call("POST", "/v1/events/destinations/x/attempts", None)
        .await;
    assert_eq!(response.status, 405);
    assert!(response.header("allow").unwrap().contains("GET"));
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn attempts_route_pages_validates_and_hides_other_tenants() {
    for store in STORES {
        let server = Server::start(store).await;
        let id = server.a.create("a", HOOKS).await.0;
        let b_id = server.b.create("b", HOOKS).await.0;
        server
            .a
            .post_event(&json!({"type": "x", "payload": 1}))
            .await;
        // Nothing attempted yet: an empty last page.
        let response = server.a.call("GET", &attempts_path(&id), None).await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert_documented("GET", ATTEMPTS, &response);
        assert_eq!(
            response.json(),
            json!({"data": [], "hasMore": false, "nextCursor": null})
        );
        for query in [
            "?limit=1",
            "?limit=100",
            "?cursor=att_01HZY8ZQ5M3J9V6W2X4T7R1P0K",
        ] {
            let response = server
                .a
                .call("GET", &format!("{}{query}", attempts_path(&id)), None)
                .await;
            assert_eq!(response.status, 200, "{query}: {}", response.text());
        }
        for (query, field, code) in [
            ("?limit=0", "limit", "out_of_range"),
            ("?limit=101", "limit", "out_of_range"),
            ("?limit=-1", "limit", "type"),
            ("?limit=ten", "limit", "type"),
            ("?limit=", "limit", "type"),
            ("?cursor=nope", "cursor", "invalid"),
            (
                "?cursor=whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K",
                "cursor",
                "invalid",
            ),
            (
                "?cursor=evt_01HZY8ZQ5M3J9V6W2X4T7R1P0K",
                "cursor",
                "invalid",
            ),
        ] {
            let response = server
                .a
                .call("GET", &format!("{}{query}", attempts_path(&id)), None)
                .await;
            let problem = assert_problem(&response, 422, "invalid_fields");
            let codes = field_codes(&problem);
            assert_eq!(codes.len(), 1, "{query}: {problem}");
            assert_eq!(codes[0].0, field, "{query}: {problem}");
            // The limit's exact code for a non-number is the core's; the
            // field is what the client needs.
            if field == "cursor" || code == "out_of_range" {
                assert_eq!(codes[0].1, code, "{query}");
            }
            assert_documented("GET", ATTEMPTS, &response);
        }
        for query in ["?page=2", "?limit=1&limit=2"] {
            let response = server
                .a
                .call("GET", &format!("{}{query}", attempts_path(&id)), None)
                .await;
            assert_problem(&response, 400, "invalid_query");
            assert_documented("GET", ATTEMPTS, &response);
        }
        // Another organization's destination, an unknown one and one that
        // does not parse: the same 404.
        for (token, target) in [
            (&server.a, b_id.as_str()),
            (&server.b, id.as_str()),
            (&server.a, "whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K"),
            (&server.a, "not-an-id"),
        ] {
            let response = token.call("GET", &attempts_path(target), None).await;
            assert_problem(&response, 404, "not_found");
            assert_documented("GET", ATTEMPTS, &response);
        }
        let response = request(server.running.addr, "GET", &attempts_path(&id), &[], b"").await;
        assert_problem(&response, 401, "unauthorized");
        assert_documented("GET", ATTEMPTS, &response);
        server.running.stop().await.unwrap();
    }
}

#[tokio::test]
async fn test_route_queues_one_event_for_that_destination_or_refuses() {
    for store in STORES {
        let server = Server::start(store).await;
        let id = server.a.create("a", HOOKS).await.0;
        server.a.create("other", HOOKS).await;
        let b_id = server.b.create("b", HOOKS).await.0;

        let response = server.a.call("POST", &test_path(&id), None).await;
        assert_documented("POST", TEST, &response);
        assert_accepted(&response, "destination.test", 1);

        for (token, target) in [
            (&server.a, b_id.as_str()),
            (&server.b, id.as_str()),
            (&server.a, "whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K"),
            (&server.a, "%ff"),
        ] {
            let response = token.call("POST", &test_path(target), None).await;
            assert_problem(&response, 404, "not_found");
            assert_documented("POST", TEST, &response);
        }

        let view = server.a.set_enabled(&id, false).await;
        assert_eq!(view["enabled"], json!(false));
        let response = server.a.call("POST", &test_path(&id), None).await;
        let problem = assert_problem(&response, 409, "disabled");
        assert_eq!(field_codes(&problem)[0].1, "disabled");
        assert_documented("POST", TEST, &response);

        server.a.set_enabled(&id, true).await;
        let response = server.a.call("POST", &test_path(&id), None).await;
        assert_accepted(&response, "destination.test", 1);

        let response = request(server.running.addr, "POST", &test_path(&id), &[], b"").await;
        assert_problem(&response, 401, "unauthorized");
        assert_documented("POST", TEST, &response);
        server.running.stop().await.unwrap();
    }
}

#[tokio::test]
async fn patch_enabled_round_trips_through_every_view() {
    for store in STORES {
        let server = Server::start(store).await;
        let id = server.a.create("a", HOOKS).await.0;
        let get = server.a.call("GET", &item(&id), None).await;
        assert_eq!(get.json()["enabled"], json!(true));
        assert_eq!(get.json()["disabledReason"], json!(null));

        let view = server.a.set_enabled(&id, false).await;
        assert_eq!(view["enabled"], json!(false));
        assert_eq!(view["disabledReason"], json!("manual"));
        assert_eq!(view["version"], json!(2));
        let get = server.a.call("GET", &item(&id), None).await;
        assert_documented("GET", ITEM, &get);
        assert_eq!(get.json()["enabled"], json!(false));
        assert_eq!(get.json()["disabledReason"], json!("manual"));
        let list = server.a.call("GET", CREATE_PATH, None).await;
        assert_documented("GET", CREATE_PATH, &list);
        assert_eq!(list.json()["data"][0]["enabled"], json!(false));
        assert_eq!(list.json()["data"][0]["disabledReason"], json!("manual"));

        let view = server.a.set_enabled(&id, true).await;
        assert_eq!(view["enabled"], json!(true));
        assert_eq!(view["disabledReason"], json!(null));
        let get = server.a.call("GET", &item(&id), None).await;
        assert_eq!(get.json()["enabled"], json!(true));
        assert_eq!(get.json()["disabledReason"], json!(null));

        // `enabled` with name and version in one patch; a wrong type is 422.
        let response = server
            .a
            .call(
                "PATCH",
                &item(&id),
                Some(&json!({"enabled": false, "name": "renamed", "version": 3})),
            )
            .await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.json()["name"], json!("renamed"));
        assert_eq!(response.json()["enabled"], json!(false));
        for bad in [json!("false"), json!(0), json!(null), json!([true])] {
            let response = server
                .a
                .call("PATCH", &item(&id), Some(&json!({ "enabled": bad })))
                .await;
            let problem = assert_problem(&response, 422, "invalid_fields");
            assert_eq!(
                field_codes(&problem),
                [("enabled".into(), "type".into())],
                "{bad}"
            );
            assert_documented("PATCH", ITEM, &response);
        }
        // The other organization cannot change it.
        let response = server
            .b
            .call("PATCH", &item(&id), Some(&json!({"enabled": true})))
            .await;
        assert_problem(&response, 404, "not_found");
        let get = server.a.call("GET", &item(&id), None).await;
        assert_eq!(get.json()["enabled"], json!(false));
        server.running.stop().await.unwrap();
    }
}

/// Claims every delivery due within the next hour (a worker's view).
async fn claim_all(repo: &SqliteRepo) -> Vec<prets_destinations::delivery::Claimed> {
    let later = Timestamp::try_from(SystemTime::now() + Duration::from_secs(3600)).unwrap();
    repo.claim(
        later,
        1000.into(),
        LeaseRequest {
            token: LeaseToken::generate(&mut prets_destinations::os_rng()),
            duration: Duration::from_secs(60),
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn an_accepted_event_is_committed_before_the_202() {
    let server = Server::start(Store::Sqlite).await;
    let a1 = server.a.create("a1", HOOKS).await.0;
    let a2 = server.a.create("a2", HOOKS).await.0;
    let off = server.a.create("off", HOOKS).await.0;
    server.b.create("b", HOOKS).await;
    server.a.set_enabled(&off, false).await;
    let payload = r#"{"amount": 4200, "note": "kept \u00e9xactly"}"#;
    let body = format!(r#"{{"type":"invoice.paid","payload":{payload}}}"#);
    let response = server
        .a
        .call_with(
            "POST",
            EVENTS,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await;
    let event_id = assert_accepted(&response, "invoice.paid", 2);
    let test = server.a.call("POST", &test_path(&a1), None).await;
    let test_id = assert_accepted(&test, "destination.test", 1);
    // Stop the server: only what was committed is in the database.
    let Server { dir, running, .. } = server;
    running.stop().await.unwrap();

    let repo = SqliteRepo::open(&dir.database()).unwrap();
    let claimed = claim_all(&repo).await;
    let org_a: TenantId = "org_a".parse().unwrap();
    let mut published: Vec<DestinationId> = claimed
        .iter()
        .filter(|c| c.event.event_id.to_string() == event_id)
        .map(|c| {
            assert_eq!(c.lease.delivery.tenant, org_a);
            assert_eq!(c.attempt, 1);
            assert_eq!(c.event.event_type.as_str(), "invoice.paid");
            assert_eq!(c.event.payload.get(), payload, "the payload as sent");
            c.lease.delivery.destination_id
        })
        .collect();
    published.sort_unstable();
    let mut expected: Vec<DestinationId> = [&a1, &a2].iter().map(|s| s.parse().unwrap()).collect();
    expected.sort_unstable();
    assert_eq!(published, expected, "the enabled destinations of org_a");
    let tests: Vec<_> = claimed
        .iter()
        .filter(|c| c.event.event_id.to_string() == test_id)
        .collect();
    assert_eq!(tests.len(), 1);
    assert_eq!(tests[0].lease.delivery.destination_id.to_string(), a1);
    assert_eq!(
        tests[0].event.payload.get(),
        format!(r#"{{"destinationId":"{a1}"}}"#)
    );
    assert_eq!(claimed.len(), 3, "nothing else was queued");
}

#[tokio::test]
async fn attempts_are_listed_newest_first_across_pages() {
    let server = Server::start(Store::Sqlite).await;
    let id = server.a.create("a", HOOKS).await.0;
    server.a.create("other", HOOKS).await;
    for n in 0..5 {
        let response = server
            .a
            .post_event(&json!({"type": "n", "payload": n}))
            .await;
        assert_accepted(&response, "n", 2);
    }
    let Server {
        dir,
        running,
        tokens: (a, b),
        ..
    } = server;
    running.stop().await.unwrap();

    // A worker's attempts, written through the store.
    {
        let repo = SqliteRepo::open(&dir.database()).unwrap();
        let claimed = claim_all(&repo).await;
        assert_eq!(claimed.len(), 10);
        let mut rng = prets_destinations::os_rng();
        let mut at = Timestamp::try_from(SystemTime::now()).unwrap();
        for c in &claimed {
            at = Timestamp::from_unix_millis(at.unix_millis() + 5).unwrap();
            let classification = Classification::Delivered { status: 204 };
            let report = plan_finish(
                c,
                &classification,
                at,
                Duration::from_millis(12),
                &RetrySchedule::default(),
                prets_destinations::delivery::DisablePolicy::default(),
                &mut rng,
            );
            let outcome = repo.complete(&c.lease, report).await.unwrap();
            assert_eq!(
                outcome,
                CompleteOutcome::Recorded {
                    disabled: None,
                    retry_at: None
                }
            );
        }
    }

    let dir_config = {
        let (mut config, _, _) = two_org_config(&dir, Store::Sqlite);
        config.api_tokens = two_org_tokens(&a, &b);
        config
    };
    let running = spawn(&dir_config).await.unwrap();
    let server = Server::over(dir, running, (a, b));
    let mut seen = Vec::new();
    let mut path = format!("{}?limit=2", attempts_path(&id));
    for page in 0.. {
        let response = server.a.call("GET", &path, None).await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert_documented("GET", ATTEMPTS, &response);
        let body = response.json();
        for view in body["data"].as_array().unwrap() {
            assert_eq!(view["outcome"], json!("succeeded"));
            assert_eq!(view["responseStatus"], json!(204));
            assert_eq!(view["attempt"], json!(1));
            assert_eq!(view["durationMs"], json!(12));
            assert_eq!(view["error"], json!(null));
            assert_eq!(view["nextAttemptAt"], json!(null));
            seen.push(view["attemptId"].as_str().unwrap().to_owned());
        }
        if body["hasMore"] == json!(false) {
            assert_eq!(body["nextCursor"], json!(null));
            assert_eq!(page, 2, "5 attempts in pages of 2");
            break;
        }
        let cursor = body["nextCursor"].as_str().unwrap();
        assert_eq!(cursor, seen.last().unwrap());
        path = format!("{}?limit=2&cursor={cursor}", attempts_path(&id));
    }
    assert_eq!(seen.len(), 5, "one attempt per event for this destination");
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first");
    // The other organization sees none of them.
    let response = server.b.call("GET", &attempts_path(&id), None).await;
    assert_problem(&response, 404, "not_found");
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn create_and_update_follow_the_configured_host_policy() {
    for store in STORES {
        let local = json!({"name": "local", "url": "https://127.0.0.1:8443/x"});
        // Default policy: a loopback literal is refused.
        let server = Server::start(store).await;
        let response = server.a.call("POST", CREATE_PATH, Some(&local)).await;
        let problem = assert_problem(&response, 422, "invalid_fields");
        assert_eq!(
            field_codes(&problem),
            [("url".into(), "non_public_address".into())]
        );
        assert_documented("POST", CREATE_PATH, &response);
        server.running.stop().await.unwrap();

        let server = Server::start_with(store, |c| {
            c.allow_private_destinations = vec!["127.0.0.1/32".parse().unwrap()];
            c.deny_destinations = vec!["93.184.215.14/32".parse().unwrap()];
        })
        .await;
        let response = server.a.call("POST", CREATE_PATH, Some(&local)).await;
        assert_eq!(response.status, 201, "{}", response.text());
        assert_documented("POST", CREATE_PATH, &response);
        assert_eq!(response.json()["url"], json!("https://127.0.0.1:8443/x"));
        let id = response.json()["destinationId"]
            .as_str()
            .unwrap()
            .to_owned();
        for (url, code) in [
            ("https://127.0.0.2/", "non_public_address"),
            ("https://10.0.0.1/", "non_public_address"),
            ("https://93.184.215.14/", "non_public_address"),
            ("https://localhost:8443/x", "reserved_host"),
            ("https://127.1/", "non_canonical_host"),
        ] {
            let body = json!({"name": "n", "url": url});
            let response = server.a.call("POST", CREATE_PATH, Some(&body)).await;
            let problem = assert_problem(&response, 422, "invalid_fields");
            assert_eq!(
                field_codes(&problem),
                [("url".into(), code.into())],
                "{url}"
            );
            let response = server
                .a
                .call("PATCH", &item(&id), Some(&json!({ "url": url })))
                .await;
            let problem = assert_problem(&response, 422, "invalid_fields");
            assert_eq!(
                field_codes(&problem),
                [("url".into(), code.into())],
                "PATCH {url}"
            );
        }
        let response = server
            .a
            .call(
                "PATCH",
                &item(&id),
                Some(&json!({"url": "https://127.0.0.1/other"})),
            )
            .await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.json()["url"], json!("https://127.0.0.1/other"));
        server.running.stop().await.unwrap();
    }
}

#[tokio::test]
async fn malformed_publish_bodies_never_give_a_5xx() {
    let server = Server::start(Store::Memory).await;
    server.a.create("one", HOOKS).await;
    let mut bodies = crate::http::malformed_bodies();
    // Publish-shaped ones too: type and payload of every JSON kind, nested
    // deeply, escaped, with stray bytes.
    let kinds = [
        "null",
        "true",
        "1",
        "-0.5e300",
        "\"s\"",
        "[]",
        "{}",
        "[[[[1]]]]",
    ];
    for t in kinds {
        for p in kinds {
            bodies.push(format!(r#"{{"type":{t},"payload":{p}}}"#).into_bytes());
        }
    }
    bodies.push(format!(r#"{{"type":"a","payload":{}}}"#, "[".repeat(200)).into_bytes());
    bodies.push(
        format!(
            r#"{{"type":"a","payload":{}1{}}}"#,
            "[".repeat(120),
            "]".repeat(120)
        )
        .into_bytes(),
    );
    bodies.push(br#"{"type":"\ud800","payload":1}"#.to_vec());
    bodies.push(br#"{"type":"a","payload":"\ud800"}"#.to_vec());
    bodies.push(b"{\"type\":\"a\",\"payload\":\"\xff\"}".to_vec());
    bodies.push(br#"{"type":"a\u0000","payload":1}"#.to_vec());
    for id in kinds {
        bodies.push(format!(r#"{{"type":"a","payload":1,"eventId":{id}}}"#).into_bytes());
    }
    bodies.push(b"{\"type\":\"a\",\"payload\":1,\"eventId\":\"evt_\xff\"}".to_vec());
    for body in bodies {
        let response = server
            .a
            .call_with(
                "POST",
                EVENTS,
                &[("Content-Type", "application/json")],
                &body,
            )
            .await;
        assert!(
            matches!(response.status, 202 | 400 | 413 | 422),
            "{} for {:?}: {}",
            response.status,
            String::from_utf8_lossy(&body[..body.len().min(200)]),
            response.text()
        );
        assert_documented("POST", EVENTS, &response);
    }
    server.running.stop().await.unwrap();
}

/// The body of a publish with the client's `eventId` (payload bytes as
/// given).
fn with_id(id: &str, event_type: &str, payload: &str) -> Vec<u8> {
    format!(r#"{{"eventId":"{id}","type":"{event_type}","payload":{payload}}}"#).into_bytes()
}

async fn post_bytes(client: &Client, body: &[u8]) -> Response {
    let response = client
        .call_with(
            "POST",
            EVENTS,
            &[("Content-Type", "application/json")],
            body,
        )
        .await;
    assert_documented("POST", EVENTS, &response);
    response
}

/// A client's `eventId` over HTTP: 16 identical publishes at once all
/// answer the same 202 and queue one event (one delivery per destination);
/// a retry later answers it again; another payload (other bytes, even the
/// same JSON value) or type is `409 event_exists` naming the event; the
/// other organization's same id is its own event; a bad id is 422 naming
/// `eventId`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_with_an_event_id_is_idempotent_per_organization() {
    const ID: &str = "evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFG";
    const PAYLOAD: &str = r#"{"amount": 4200, "note": "\u00e9"}"#;
    for store in STORES {
        let server = Server::start(store).await;
        server.a.create("a1", HOOKS).await;
        server.a.create("a2", HOOKS).await;
        server.b.create("b1", HOOKS).await;
        let body = with_id(ID, "invoice.paid", PAYLOAD);
        let mut racing = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (client, body) = (server.a.clone(), body.clone());
            racing.spawn(async move { post_bytes(&client, &body).await });
        }
        let answers: Vec<Response> = racing.join_all().await;
        let first = answers[0].json();
        for answer in &answers {
            assert_eq!(assert_accepted(answer, "invoice.paid", 2), ID, "{store:?}");
            assert_eq!(answer.json(), first, "{store:?}: not the same 202");
        }
        // A destination added since changes nothing for a retry.
        server.a.create("a3", HOOKS).await;
        let retry = post_bytes(&server.a, &body).await;
        assert_eq!(retry.status, 202);
        assert_eq!(retry.json(), first, "{store:?}: a retry's 202");

        for other in [
            with_id(ID, "invoice.paid", r#"{"amount":4200,"note":"\u00e9"}"#),
            with_id(ID, "invoice.paid", r#"{"amount": 4201, "note": "\u00e9"}"#),
            with_id(ID, "invoice.void", PAYLOAD),
        ] {
            let response = post_bytes(&server.a, &other).await;
            let problem = assert_problem(&response, 409, "event_exists");
            assert_eq!(problem["eventId"], json!(ID));
            assert_eq!(
                field_codes(&problem),
                [("eventId".into(), "event_exists".into())]
            );
            assert!(problem.get("destinationId").is_none());
        }
        // Per organization: org_b's same id is its own event.
        let theirs = post_bytes(&server.b, &with_id(ID, "invoice.void", "1")).await;
        assert_eq!(assert_accepted(&theirs, "invoice.void", 1), ID);

        for (bad, code) in [
            (json!(null), "type"),
            (json!(7), "type"),
            (json!(["evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFG"]), "type"),
            (json!(""), "pattern"),
            (json!("evt_01hf2v3j6t0q8x5y7z9abcdefg"), "pattern"),
            (json!("EVT_01HF2V3J6T0Q8X5Y7Z9ABCDEFG"), "pattern"),
            (json!("evt_01HF2V3J6T0Q8X5Y7Z9ABCDEF"), "pattern"),
            (json!("evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFGH"), "pattern"),
            (json!("evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFU"), "pattern"),
            (json!("whk_01HF2V3J6T0Q8X5Y7Z9ABCDEFG"), "pattern"),
            (json!(" evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFG"), "pattern"),
            (json!("evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFG\n"), "pattern"),
        ] {
            let body = json!({"type": "invoice.paid", "payload": 1, "eventId": bad});
            let response = server.a.post_event(&body).await;
            let problem = assert_problem(&response, 422, "invalid_fields");
            assert_eq!(
                field_codes(&problem),
                [("eventId".into(), code.into())],
                "{body}"
            );
        }
        // Past 128 bits, yet the published pattern admits it: accepted.
        let wide = json!({"type": "invoice.paid", "payload": 1, "eventId": "evt_8ZZZZZZZZZZZZZZZZZZZZZZZZZ"});
        let response = server.a.post_event(&wide).await;
        assert_eq!(response.status, 202, "{}", response.text());
        assert_eq!(response.json()["eventId"], "evt_8ZZZZZZZZZZZZZZZZZZZZZZZZZ");
        // Every field's error at once.
        let response = server
            .a
            .post_event(&json!({"type": "", "eventId": "evt_"}))
            .await;
        let problem = assert_problem(&response, 422, "invalid_fields");
        assert_eq!(
            field_codes(&problem),
            [
                ("eventId".into(), "pattern".into()),
                ("type".into(), "too_short".into()),
                ("payload".into(), "required".into())
            ]
        );
        // Twice in one body is malformed.
        let twice = format!(r#"{{"eventId":"{ID}","eventId":"{ID}","type":"a","payload":1}}"#);
        assert_problem(
            &post_bytes(&server.a, twice.as_bytes()).await,
            400,
            "invalid_body",
        );

        let Server { dir, running, .. } = server;
        running.stop().await.unwrap();
        if let Store::Sqlite = store {
            // What was committed: org_a's event once (two deliveries, the
            // first payload), org_b's once.
            let repo = SqliteRepo::open(&dir.database()).unwrap();
            let claimed = claim_all(&repo).await;
            let mut seen: Vec<(String, String)> = claimed
                .iter()
                .filter(|c| c.event.event_id.as_str() != "evt_8ZZZZZZZZZZZZZZZZZZZZZZZZZ")
                .map(|c| {
                    assert_eq!(c.event.event_id.to_string(), ID);
                    (
                        c.lease.delivery.tenant.as_str().to_owned(),
                        c.event.payload.get().to_owned(),
                    )
                })
                .collect();
            seen.sort_unstable();
            assert_eq!(
                seen,
                [
                    ("org_a".to_owned(), PAYLOAD.to_owned()),
                    ("org_a".to_owned(), PAYLOAD.to_owned()),
                    ("org_b".to_owned(), "1".to_owned())
                ]
            );
        }
    }
}

/// `kill -9` of the binary right after the last 202: every acknowledged
/// event's deliveries are in the database.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_kill_9_of_the_binary() {
    use crate::support::process::ServerProcess;

    let dir = TempDir::new();
    let token = mint_token();
    let hex: String = token_digest(&token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut server = ServerProcess::start(&dir, &["--api-token", &format!("org_a={hex}")]);
    let client = Client::new(server.addr, &token);
    let mut destinations = Vec::new();
    for name in ["one", "two"] {
        let (id, _) = client.create(name, HOOKS).await;
        destinations.push(id.parse::<DestinationId>().unwrap());
    }
    // Concurrent publishes, so several share a group commit.
    let tasks: Vec<_> = (0..24)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                let body = json!({"type": "n", "payload": n});
                client.call("POST", EVENTS, Some(&body)).await
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.push(assert_accepted(&task.await.unwrap(), "n", 2));
    }
    server.kill_9();

    let repo = SqliteRepo::open(&dir.path().join("prets-destinations.sqlite3")).unwrap();
    let claimed = claim_all(&repo).await;
    let mut found: Vec<(String, DestinationId)> = claimed
        .iter()
        .map(|c| {
            (
                c.event.event_id.to_string(),
                c.lease.delivery.destination_id,
            )
        })
        .collect();
    found.sort_unstable();
    let mut expected: Vec<(String, DestinationId)> = acknowledged
        .iter()
        .flat_map(|e| destinations.iter().map(move |d| (e.clone(), *d)))
        .collect();
    expected.sort_unstable();
    assert_eq!(found, expected, "every acknowledged delivery, once");
}

/// The new schemas describe what the server sends and nothing looser: a
/// failed attempt with a next attempt validates; wrong prefixes, outcomes
/// and missing members do not.
#[test]
fn the_event_schemas_accept_their_bodies_and_reject_others() {
    use crate::support::{openapi, response_schema, validate};
    let doc = openapi();
    let page = response_schema(&doc, "GET", ATTEMPTS, 200, "application/json");
    let attempt = json!({
        "attemptId": "att_01HZY8ZQ5M3J9V6W2X4T7R1P0K",
        "eventId": "evt_01HZY8ZQ5M3J9V6W2X4T7R1P0K",
        "attempt": 2,
        "startedAt": "2026-01-01T00:00:00Z",
        "durationMs": 15000,
        "outcome": "failed",
        "responseStatus": null,
        "error": "timed out",
        "nextAttemptAt": "2026-01-01T00:05:00Z",
        "manual": false,
    });
    let good =
        json!({"data": [attempt], "hasMore": true, "nextCursor": "att_01HZY8ZQ5M3J9V6W2X4T7R1P0K"});
    assert_eq!(validate(&doc, page, &good), Vec::<String>::new());
    let mut bad_bodies = Vec::new();
    for (member, value) in [
        ("attemptId", json!("evt_01HZY8ZQ5M3J9V6W2X4T7R1P0K")),
        ("eventId", json!("whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K")),
        ("attempt", json!(0)),
        ("outcome", json!("pending")),
        ("startedAt", json!("yesterday")),
        ("durationMs", json!(-1)),
        ("manual", json!("yes")),
    ] {
        let mut bad = good.clone();
        bad["data"][0][member] = value;
        bad_bodies.push(bad);
    }
    let mut missing = good.clone();
    missing["data"][0]
        .as_object_mut()
        .unwrap()
        .remove("nextAttemptAt");
    bad_bodies.push(missing);
    let mut extra = good.clone();
    extra["data"][0]["responseBody"] = json!("never sent");
    bad_bodies.push(extra);
    let mut cursor = good.clone();
    cursor["nextCursor"] = json!("whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K");
    bad_bodies.push(cursor);
    for bad in bad_bodies {
        assert!(!validate(&doc, page, &bad).is_empty(), "{bad}");
    }

    let published = response_schema(&doc, "POST", EVENTS, 202, "application/json");
    let good = json!({
        "eventId": "evt_01HZY8ZQ5M3J9V6W2X4T7R1P0K",
        "type": "invoice.paid",
        "createdAt": "2026-01-01T00:00:00Z",
        "destinations": 0,
    });
    assert_eq!(validate(&doc, published, &good), Vec::<String>::new());
    for (member, value) in [
        ("eventId", json!("att_01HZY8ZQ5M3J9V6W2X4T7R1P0K")),
        ("type", json!("invoice paid")),
        ("destinations", json!(-1)),
        ("createdAt", json!(1)),
    ] {
        let mut bad = good.clone();
        bad[member] = value;
        assert!(!validate(&doc, published, &bad).is_empty(), "{bad}");
    }
    let test = response_schema(&doc, "POST", TEST, 202, "application/json");
    assert_eq!(validate(&doc, test, &good), Vec::<String>::new());
}
