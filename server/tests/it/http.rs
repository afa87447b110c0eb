//! The API over real HTTP: a server on an ephemeral port over a temporary
//! SQLite database, driven by a raw HTTP/1.1 client.

use crate::support::{
    CREATE_PATH, TempDir, TestServer, assert_documented, captured_logs, config, openapi, post_json,
    request, start_with_two_orgs,
};
use prets_destinations::id::ID_PATTERN;
use prets_destinations::secret::SECRET_PATTERN;
use prets_destinations::url::URL_PATTERN;
use prets_destinations::wire::ApiErrorKind;
use prets_destinations::{DestinationId, Keyring, TenantId};
use prets_destinations_server::{
    BODY_LIMIT, DEMO_ORGANIZATION, OPENAPI_JSON, PROBLEM_BASE, ProblemKind, SqliteRepo,
    load_keyring, spawn,
};
use regex_lite::Regex;
use serde_json::{Value, json};

const SPEC_EXAMPLE: &str = r#"{"name": "Production", "url": "https://example.com/prets/events"}"#;

/// The spec's response schema, from the published patterns themselves.
fn assert_spec_response(body: &Value, name: &str, url: &str) {
    let object = body.as_object().expect("an object");
    let mut keys: Vec<_> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "bearerSecret",
            "createdAt",
            "destinationId",
            "name",
            "updatedAt",
            "url"
        ],
        "exactly the spec's six members"
    );
    let text = |k: &str| {
        body[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} is a string"))
    };
    assert!(
        Regex::new(ID_PATTERN)
            .unwrap()
            .is_match(text("destinationId"))
    );
    assert!(
        Regex::new(SECRET_PATTERN)
            .unwrap()
            .is_match(text("bearerSecret"))
    );
    assert!(Regex::new(URL_PATTERN).unwrap().is_match(text("url")));
    assert!(text("url").chars().count() <= 2048);
    assert!((1..=128).contains(&text("name").chars().count()));
    assert_eq!(text("name"), name, "name echoed as sent");
    assert_eq!(text("url"), url, "url echoed as sent");
    let date_time = Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$").unwrap();
    assert!(
        date_time.is_match(text("createdAt")),
        "{}",
        text("createdAt")
    );
    assert_eq!(
        text("createdAt"),
        text("updatedAt"),
        "a new destination is unchanged"
    );
}

fn assert_problem(response: &crate::support::Response, status: u16, kind: &str) -> Value {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json")
    );
    let body = response.json();
    assert_eq!(
        body["status"],
        json!(status),
        "status member equals the status code"
    );
    assert_eq!(
        body["type"],
        json!(format!("https://api.prets.app/problems/{kind}"))
    );
    assert!(body["title"].is_string() && body["detail"].is_string());
    assert!(response.header("x-request-id").is_some());
    body
}

#[tokio::test]
async fn spec_example_gives_201_with_the_spec_body() {
    let server = TestServer::start().await;
    let response = server.create(SPEC_EXAMPLE.as_bytes()).await;
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let body = response.json();
    assert_spec_response(&body, "Production", "https://example.com/prets/events");
    assert_eq!(
        response.header("location").unwrap(),
        format!("{CREATE_PATH}/{}", body["destinationId"].as_str().unwrap())
    );
    assert_documented("POST", CREATE_PATH, &response);

    // With a client-supplied id, the id is the client's.
    let id = "whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K";
    let response = server
        .create(
            json!({"name": "Staging", "url": "https://example.com/a", "destinationId": id})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(response.json()["destinationId"], json!(id));
    assert_documented("POST", CREATE_PATH, &response);
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn served_openapi_document_is_the_file_and_carries_the_spec_patterns() {
    let server = TestServer::start().await;
    let response = request(server.addr(), "GET", "/openapi.json", &[], b"").await;
    assert_eq!(response.status, 200);
    let file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap();
    assert_eq!(
        response.text(),
        file,
        "served document is the committed file"
    );
    assert_eq!(OPENAPI_JSON, file);
    let doc = openapi();
    assert_eq!(doc["openapi"], json!("3.1.0"));
    let schemas = &doc["components"]["schemas"];
    for schema in ["CreateDestinationRequest", "CreatedDestination"] {
        let p = &schemas[schema]["properties"];
        assert_eq!(p["url"]["pattern"], json!(URL_PATTERN), "{schema}.url");
        assert_eq!(p["url"]["maxLength"], json!(2048));
        assert_eq!(p["name"]["minLength"], json!(1));
        assert_eq!(p["name"]["maxLength"], json!(128));
        assert_eq!(
            p["destinationId"]["pattern"],
            json!(ID_PATTERN),
            "{schema}.destinationId"
        );
    }
    assert_eq!(
        schemas["CreatedDestination"]["properties"]["bearerSecret"]["pattern"],
        json!(SECRET_PATTERN)
    );
    assert_eq!(
        schemas["CreateDestinationRequest"]["required"],
        json!(["name", "url"])
    );
    assert_eq!(
        doc.pointer("/paths/~1v1~1events~1destinations/post/requestBody/description"),
        Some(&json!(format!(
            "At most {BODY_LIMIT} bytes (larger bodies get 413)."
        )))
    );
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn missing_or_wrong_token_is_401_with_www_authenticate() {
    let server = TestServer::start().await;
    let wrong = format!("Bearer {}0", *server.token);
    let basic = format!("Basic {}", *server.token);
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("Content-Type", "application/json")],
        vec![
            ("Content-Type", "application/json"),
            ("Authorization", &wrong),
        ],
        vec![
            ("Content-Type", "application/json"),
            ("Authorization", &basic),
        ],
        vec![
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer"),
        ],
        vec![("Authorization", &wrong)],
    ];
    for headers in cases {
        let response = request(
            server.addr(),
            "POST",
            CREATE_PATH,
            &headers,
            SPEC_EXAMPLE.as_bytes(),
        )
        .await;
        assert_problem(&response, 401, "unauthorized");
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
        assert!(
            !response.text().contains(&*server.token),
            "no token in an error"
        );
        assert_documented("POST", CREATE_PATH, &response);
    }
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn bodies_that_are_not_json_objects_are_400() {
    let server = TestServer::start().await;
    for (body, kind) in [
        (&b"{\"name\": \"Production\""[..], "malformed_json"),
        (b"", "malformed_json"),
        (b"{'name': 'x'}", "malformed_json"),
        (
            b"{\"name\": \"a\xff\", \"url\": \"https://example.com/\"}",
            "malformed_json",
        ),
        (b"[]", "invalid_body"),
        (b"\"Production\"", "invalid_body"),
        (b"null", "invalid_body"),
        (
            b"{\"name\": \"a\", \"url\": \"https://example.com/\", \"extra\": 1}",
            "invalid_body",
        ),
        (
            b"{\"name\": \"a\", \"name\": \"b\", \"url\": \"https://example.com/\"}",
            "invalid_body",
        ),
    ] {
        let response = server.create(body).await;
        let problem = assert_problem(&response, 400, kind);
        assert!(problem.get("errors").is_none());
        assert_documented("POST", CREATE_PATH, &response);
    }
    // A member name the client chose is never echoed.
    let response = server
        .create(br#"{"name":"a","url":"https://example.com/","whsec_leak":1}"#)
        .await;
    assert_eq!(response.status, 400);
    assert!(!response.text().contains("whsec_leak"));
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn invalid_fields_are_422_listing_every_field_with_its_code() {
    let server = TestServer::start().await;
    let response = server
        .create(
            json!({"name": "", "url": "http://example.com/", "destinationId": "whk_nope"})
                .to_string()
                .as_bytes(),
        )
        .await;
    let problem = assert_problem(&response, 422, "invalid_fields");
    let errors: Vec<(String, String)> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            ("name".to_owned(), "too_short".to_owned()),
            ("url".to_owned(), "not_https".to_owned()),
            ("destinationId".to_owned(), "pattern".to_owned())
        ]
    );
    assert_documented("POST", CREATE_PATH, &response);

    let response = server
        .create(br#"{"name": 7, "destinationId": null}"#)
        .await;
    let problem = assert_problem(&response, 422, "invalid_fields");
    let codes: Vec<_> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].clone())
        .collect();
    assert_eq!(codes, [json!("type"), json!("required"), json!("type")]);
    assert_documented("POST", CREATE_PATH, &response);
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn content_type_other_than_json_is_415() {
    let server = TestServer::start().await;
    let bearer = server.bearer();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
    ] {
        let mut headers = vec![("Authorization", bearer.as_str())];
        headers.extend(content_type.map(|c| ("Content-Type", c)));
        let response = request(
            server.addr(),
            "POST",
            CREATE_PATH,
            &headers,
            SPEC_EXAMPLE.as_bytes(),
        )
        .await;
        assert_problem(&response, 415, "unsupported_media_type");
        assert_documented("POST", CREATE_PATH, &response);
    }
    let response = request(
        server.addr(),
        "POST",
        CREATE_PATH,
        &[
            ("Authorization", &bearer),
            ("Content-Type", "Application/JSON; charset=utf-8"),
        ],
        SPEC_EXAMPLE.as_bytes(),
    )
    .await;
    assert_eq!(
        response.status, 201,
        "media type parameters and case are accepted"
    );
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn body_over_the_limit_is_413_and_at_the_limit_is_read() {
    let server = TestServer::start().await;
    let over = vec![b' '; BODY_LIMIT + 1];
    let response = server.create(&over).await;
    assert_problem(&response, 413, "body_too_large");
    assert_documented("POST", CREATE_PATH, &response);
    // Exactly at the limit: read and judged as JSON (whitespace-padded).
    let mut at = SPEC_EXAMPLE.as_bytes().to_vec();
    at.resize(BODY_LIMIT, b' ');
    let response = server.create(&at).await;
    assert_eq!(response.status, 201, "{}", response.text());
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn duplicate_client_id_is_409_naming_it_but_other_organizations_may_use_it() {
    let dir = TempDir::new();
    let (running, a, b) = start_with_two_orgs(&dir).await;
    let id = "whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K";
    let body = json!({"name": "Production", "url": "https://example.com/prets/events", "destinationId": id}).to_string();
    let (bearer_a, bearer_b) = (format!("Bearer {}", *a), format!("Bearer {}", *b));
    let first = post_json(running.addr, &bearer_a, body.as_bytes()).await;
    assert_eq!(first.status, 201);
    let second = post_json(running.addr, &bearer_a, body.as_bytes()).await;
    let problem = assert_problem(&second, 409, "conflict");
    assert_eq!(problem["destinationId"], json!(id));
    assert!(!second.text().contains("whsec_"), "no secret in a conflict");
    assert_documented("POST", CREATE_PATH, &second);
    let other_org = post_json(running.addr, &bearer_b, body.as_bytes()).await;
    assert_eq!(
        other_org.status, 201,
        "ids are unique within an organization"
    );
    assert_ne!(
        other_org.json()["bearerSecret"],
        first.json()["bearerSecret"]
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let server = TestServer::start().await;
    let bearer = server.bearer();
    for path in [
        "/",
        "/v1",
        "/v1/events/",
        "/v1/events/destinations/x/y/z",
        "/openapi.yaml",
    ] {
        let response = request(
            server.addr(),
            "GET",
            path,
            &[("Authorization", &bearer)],
            b"",
        )
        .await;
        assert_problem(&response, 404, "not_found");
    }
    for method in ["PUT", "DELETE"] {
        let response = request(
            server.addr(),
            method,
            CREATE_PATH,
            &[("Authorization", &bearer)],
            b"",
        )
        .await;
        assert_problem(&response, 405, "method_not_allowed");
        let allow = response
            .header("allow")
            .expect("405 names the allowed methods");
        assert!(allow.contains("POST"), "{allow}");
    }
    let response = request(server.addr(), "POST", "/openapi.json", &[], b"").await;
    assert_problem(&response, 405, "method_not_allowed");
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn data_survives_a_restart() {
    let dir = TempDir::new();
    let mut first = spawn(&config(&dir)).await.unwrap();
    let token = first.demo_token.take().unwrap();
    let bearer = format!("Bearer {}", *token);
    let created = post_json(first.addr, &bearer, SPEC_EXAMPLE.as_bytes()).await;
    assert_eq!(created.status, 201);
    let created = created.json();
    let id = created["destinationId"].as_str().unwrap().to_owned();
    first.stop().await.unwrap();

    let mut second = spawn(&config(&dir)).await.unwrap();
    assert!(
        second.demo_token.take().is_none(),
        "the token is minted and shown once"
    );
    let again =
        json!({"name": "Again", "url": "https://example.com/", "destinationId": id}).to_string();
    let response = post_json(second.addr, &bearer, again.as_bytes()).await;
    assert_eq!(
        response.status,
        409,
        "the stored token and record survived: {}",
        response.text()
    );
    assert_eq!(response.json()["destinationId"], json!(id));
    second.stop().await.unwrap();

    // The stored record is the one created, and the key file beside the
    // database opens its secret to the one the client received.
    let repo = SqliteRepo::open(&dir.database()).unwrap();
    let tenant: TenantId = DEMO_ORGANIZATION.parse().unwrap();
    let record = prets_destinations::DestinationRepo::get(
        &repo,
        &tenant,
        id.parse::<DestinationId>().unwrap(),
    )
    .await
    .unwrap()
    .expect("stored");
    assert_eq!(record.name.as_str(), "Production");
    assert_eq!(record.url.as_str(), "https://example.com/prets/events");
    assert_eq!(
        record.created_at.to_string(),
        created["createdAt"].as_str().unwrap()
    );
    let keyring: Keyring =
        load_keyring(&dir.database().with_extension("sqlite3.sealing-key")).unwrap();
    let header = keyring.authorization_header(&tenant, &record).unwrap();
    assert_eq!(
        *header,
        format!("Bearer {}", created["bearerSecret"].as_str().unwrap())
    );
}

#[tokio::test]
async fn fifty_concurrent_creates_of_one_id_give_one_201_and_49_409s() {
    let server = TestServer::start().await;
    let id = "whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K";
    let addr = server.addr();
    let bearer = server.bearer();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (bearer, barrier) = (bearer.clone(), barrier.clone());
            let body = json!({"name": format!("racer {i}"), "url": "https://example.com/", "destinationId": id}).to_string();
            tokio::spawn(async move {
                barrier.wait().await;
                post_json(addr, &bearer, body.as_bytes()).await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        let response = task.await.unwrap();
        if response.status == 409 {
            assert_eq!(response.json()["destinationId"], json!(id));
        }
        statuses.push(response.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        49,
        "{statuses:?}"
    );
    server.running.stop().await.unwrap();
}

/// Bodies a careless or hostile client sends; none may give a 5xx.
pub(crate) fn malformed_bodies() -> Vec<Vec<u8>> {
    let valid = json!({"name": "Production", "url": "https://example.com/prets/events", "destinationId": "whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K"}).to_string();
    let mut bodies: Vec<Vec<u8>> = (0..valid.len())
        .map(|n| valid.as_bytes()[..n].to_vec())
        .collect();
    for value in [
        json!(null),
        json!(true),
        json!(1),
        json!(-1.5e308),
        json!([]),
        json!({}),
        json!(["https://example.com/"]),
        json!({"a": 1}),
    ] {
        for field in ["name", "url", "destinationId"] {
            let mut body = json!({"name": "Production", "url": "https://example.com/"});
            body[field] = value.clone();
            bodies.push(body.to_string().into_bytes());
        }
    }
    let long = "a".repeat(60_000);
    bodies.push(
        json!({"name": long, "url": "https://example.com/"})
            .to_string()
            .into_bytes(),
    );
    bodies.push(
        json!({"name": "x", "url": format!("https://example.com/{long}")})
            .to_string()
            .into_bytes(),
    );
    bodies.push(
        json!({"name": "x", "url": "https://example.com/", "destinationId": long})
            .to_string()
            .into_bytes(),
    );
    bodies.push(
        format!("{{\"name\":\"x\",\"url\":\"https://example.com/\",\"{long}\":1}}").into_bytes(),
    );
    for bad_utf8 in [
        &b"\xff"[..],
        b"\xc3",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xc0\xaf",
    ] {
        let mut body = b"{\"name\":\"".to_vec();
        body.extend_from_slice(bad_utf8);
        body.extend_from_slice(b"\",\"url\":\"https://example.com/\"}");
        bodies.push(body);
    }
    bodies.push(br#"{"name":"\ud800","url":"https://example.com/"}"#.to_vec());
    bodies.push(br#"{"name":"a\u0000b","url":"https://example.com/\u0000"}"#.to_vec());
    bodies.push(format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes());
    bodies.push(format!("{}1{}", "{\"a\":".repeat(3000), "}".repeat(3000)).into_bytes());
    bodies.push(b"{\"name\":\"x\",\"url\":\"https://example.com/\"} trailing".to_vec());
    bodies.push(b"\xef\xbb\xbf{\"name\":\"x\",\"url\":\"https://example.com/\"}".to_vec());
    bodies.push(
        br#"{"name":"x","url":"https://[::1]/","destinationId":"whk_8ZZZZZZZZZZZZZZZZZZZZZZZZZ"}"#
            .to_vec(),
    );
    bodies.push(br#"{"name":"x","url":"https://user:pw@example.com/"}"#.to_vec());
    bodies.push(br#"{"name":"x","url":"https://127.0.0.1/","destinationId":"whk_7ZZZZZZZZZZZZZZZZZZZZZZZZZ"}"#.to_vec());
    bodies
}

#[tokio::test]
async fn malformed_input_sweep_never_gives_a_5xx() {
    let server = TestServer::start().await;
    let bodies = malformed_bodies();
    let count = bodies.len();
    for body in bodies {
        let response = server.create(&body).await;
        assert!(
            matches!(response.status, 201 | 400 | 413 | 422),
            "{} for {:?}: {}",
            response.status,
            String::from_utf8_lossy(&body[..body.len().min(200)]),
            response.text()
        );
        assert_documented("POST", CREATE_PATH, &response);
    }
    // Raw requests with broken framing get 4xx from the HTTP layer, or a
    // closed connection, but never a 5xx.
    let bearer = server.bearer();
    for head in [
        format!(
            "POST {CREATE_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: {bearer}\r\nContent-Type: application/json\r\nContent-Length: 10\r\nContent-Length: 11\r\nConnection: close\r\n\r\n"
        ),
        format!(
            "POST {CREATE_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: {bearer}\r\nContent-Type: application/json\r\nContent-Length: -1\r\nConnection: close\r\n\r\n"
        ),
        format!(
            "POST {CREATE_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: {bearer}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n"
        ),
    ] {
        let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.shutdown().await;
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw).await;
        if !raw.is_empty() {
            let response = crate::support::parse_response(&raw);
            assert!((400..500).contains(&response.status), "{}", response.status);
        }
    }
    assert!(count > 100, "the sweep covers {count} bodies");
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_flight() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = TestServer::start().await;
    let body = SPEC_EXAMPLE.as_bytes();
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let head = format!(
        "POST {CREATE_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        server.bearer(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let addr = server.addr();
    let stopping = tokio::spawn(server.running.stop());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !stopping.is_finished(),
        "shutdown waits for the request in flight"
    );
    stream.write_all(&body[10..]).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let response = crate::support::parse_response(&raw);
    assert_eq!(response.status, 201, "{}", response.text());
    stopping.await.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
    drop(server.dir);
}

/// The schema check used throughout rejects what the document forbids: an
/// old-style problem type, a missing member, a status out of range, a
/// timestamp that is not RFC 3339.
#[test]
fn the_documents_schemas_reject_bodies_they_do_not_describe() {
    let doc = openapi();
    let problem =
        crate::support::response_schema(&doc, "POST", CREATE_PATH, 409, "application/problem+json");
    let good = json!({
        "type": "https://api.prets.app/problems/conflict",
        "title": "Destination id already exists",
        "status": 409,
        "detail": "a destination with this id already exists",
    });
    assert_eq!(
        crate::support::validate(&doc, problem, &good),
        Vec::<String>::new()
    );
    let mut hyphenated = good.clone();
    hyphenated["type"] = json!("https://api.prets.app/problems/duplicate-destination-id");
    let mut no_detail = good.clone();
    no_detail.as_object_mut().unwrap().remove("detail");
    let mut status = good.clone();
    status["status"] = json!(200);
    for bad in [hyphenated, no_detail, status] {
        assert!(
            !crate::support::validate(&doc, problem, &bad).is_empty(),
            "{bad}"
        );
    }
    let created =
        crate::support::response_schema(&doc, "POST", CREATE_PATH, 201, "application/json");
    let body = json!({
        "destinationId": "whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K",
        "name": "Production",
        "url": "https://example.com/prets/events",
        "createdAt": "2026-01-01T00:00:00Z",
        "updatedAt": "2026-01-01T00:00:00Z",
        "bearerSecret": "whsec_x",
        "version": 1,
    });
    let errors = crate::support::validate(&doc, created, &body);
    let mut yesterday = body.clone();
    yesterday["createdAt"] = json!("yesterday");
    let more = crate::support::validate(&doc, created, &yesterday);
    assert!(
        more.len() > errors.len() && more.iter().any(|e| e.contains("createdAt")),
        "{errors:?} / {more:?}"
    );
}

/// A JSON value that refuses an object with a repeated member: a parser
/// keeps one of the two silently, so a repeated response code would hide
/// the other's text.
struct NoDuplicateKeys;

impl<'de> serde::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = NoDuplicateKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut seen = std::collections::HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(serde::de::Error::custom(format!("repeated member {key:?}")));
                    }
                    map.next_value::<NoDuplicateKeys>()?;
                }
                Ok(NoDuplicateKeys)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
                Ok(NoDuplicateKeys)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[test]
fn openapi_document_repeats_no_member() {
    if let Err(e) = serde_json::from_str::<NoDuplicateKeys>(OPENAPI_JSON) {
        panic!("openapi.json: {e}");
    }
    let twice = r#"{"responses": {"404": {}, "409": {}, "404": {}}}"#;
    assert!(serde_json::from_str::<NoDuplicateKeys>(twice).is_err());
    assert!(serde_json::from_str::<NoDuplicateKeys>(r#"{"a": {"b": 1}, "b": [{"a": 2}]}"#).is_ok());
}

/// Another process holding SQLite's write lock makes a write wait out the
/// busy timeout and fail `SQLITE_BUSY`: the client hears a documented 503
/// `database_busy` with `Retry-After`, nothing is written, reads still
/// answer (WAL), and once the lock is released the same request succeeds.
#[tokio::test]
async fn a_locked_sqlite_database_answers_503_database_busy_with_retry_after() {
    let logs = captured_logs();
    let server = TestServer::start().await;
    let blocker = rusqlite::Connection::open(server.dir.database()).unwrap();
    // Waits for the server's writer if it is mid-transaction (a claim).
    blocker
        .busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let busy = server.create(SPEC_EXAMPLE.as_bytes()).await;
    let problem = assert_problem(&busy, 503, "database_busy");
    assert_eq!(busy.header("retry-after"), Some("1"));
    assert!(problem.get("errors").is_none(), "{problem}");
    assert_documented("POST", CREATE_PATH, &busy);
    let bearer = server.bearer();
    let list = request(
        server.addr(),
        "GET",
        CREATE_PATH,
        &[("Authorization", &bearer)],
        b"",
    )
    .await;
    assert_eq!(list.status, 200, "{}", list.text());
    assert_eq!(list.json()["data"], json!([]), "nothing was written");
    let log = logs.text();
    assert!(
        log.contains("request failed: the database is busy"),
        "{log}"
    );
    assert!(log.contains("database is locked"), "SQLite's words: {log}");

    blocker.execute_batch("ROLLBACK").unwrap();
    let created = server.create(SPEC_EXAMPLE.as_bytes()).await;
    assert_eq!(created.status, 201, "{}", created.text());
    drop(blocker);
    server.running.stop().await.unwrap();
}

/// The problem types the OpenAPI document lists are `ProblemKind::ALL`,
/// the one table in the code, and every error of the core answers with
/// the kind named by its code (or `invalid_fields`) and its status.
#[test]
fn the_documented_problem_types_are_the_problem_table() {
    let doc = openapi();
    let description = doc
        .pointer("/components/schemas/Problem/description")
        .and_then(Value::as_str)
        .unwrap();
    let (_, listed) = description
        .split_once(&format!("{PROBLEM_BASE}{{"))
        .expect("the description lists the types");
    let (listed, _) = listed.split_once('}').unwrap();
    let mut documented: Vec<&str> = listed.split(", ").collect();
    documented.sort_unstable();
    let mut table: Vec<&str> = ProblemKind::ALL.iter().map(|k| k.name()).collect();
    table.sort_unstable();
    assert_eq!(documented, table);
    let unique: std::collections::BTreeSet<_> = table.iter().collect();
    assert_eq!(unique.len(), table.len(), "each type once");

    for kind in ApiErrorKind::ALL {
        let problem = ProblemKind::from(kind);
        assert_eq!(problem.status().as_u16(), kind.status(), "{kind:?}");
        let expected = kind.error().map_or("invalid_fields", |e| e.code());
        assert_eq!(problem.name(), expected, "{kind:?}");
    }
}
