//! The lifecycle routes over real HTTP: get, paginated list, update,
//! delete and secret rotation, each response checked against the OpenAPI
//! document.

use std::collections::BTreeSet;

use crate::support::{
    CREATE_PATH, TempDir, TestServer, assert_documented, request, start_with_two_orgs,
};
use prets_destinations::{DestinationRepo, SecretDigest, TenantId};
use prets_destinations_server::{SqliteRepo, load_keyring};
use serde_json::{Value, json};

const ITEM: &str = "/v1/events/destinations/{id}";
const ROTATE: &str = "/v1/events/destinations/{id}/rotate-secret";

fn item(id: &str) -> String {
    format!("{CREATE_PATH}/{id}")
}

async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> crate::support::Response {
    let bearer = server.bearer();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut headers = vec![("Authorization", bearer.as_str())];
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    request(server.addr(), method, path, &headers, body.as_bytes()).await
}

async fn create(server: &TestServer, name: &str) -> Value {
    let response = server
        .create(
            json!({"name": name, "url": "https://example.com/hooks"})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(response.status, 201, "{}", response.text());
    response.json()
}

#[tokio::test]
async fn get_returns_the_destination_without_its_secret() {
    let server = TestServer::start().await;
    let created = create(&server, "Production").await;
    let id = created["destinationId"].as_str().unwrap();
    let response = call(&server, "GET", &item(id), None).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_documented("GET", ITEM, &response);
    let view = response.json();
    for field in ["destinationId", "name", "url", "createdAt", "updatedAt"] {
        assert_eq!(view[field], created[field], "{field}");
    }
    assert_eq!(view["version"], json!(1));
    assert!(!response.text().contains("whsec_"), "never the secret");
    // Unknown ids, ids that do not parse, and the location the create gave.
    let location = format!("{CREATE_PATH}/{id}");
    assert_eq!(call(&server, "GET", &location, None).await.status, 200);
    for missing in [
        "whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K",
        "not-an-id",
        "whk_01hzy8zq5m3j9v6w2x4t7r1p0k",
        "%F0%9F%92%A9",
        // Not UTF-8 once percent-decoded: still the same 404 problem.
        "%ff",
        "whk_%C0%AF",
    ] {
        let response = call(&server, "GET", &item(missing), None).await;
        assert_eq!(response.status, 404, "{missing}: {}", response.text());
        assert_eq!(
            response.header("content-type"),
            Some("application/problem+json"),
            "{missing}"
        );
        assert_documented("GET", ITEM, &response);
        for method in ["PATCH", "DELETE"] {
            let body = (method == "PATCH").then(|| json!({"name": "x"}));
            let response = call(&server, method, &item(missing), body).await;
            assert_eq!(
                response.status,
                404,
                "{method} {missing}: {}",
                response.text()
            );
        }
    }
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn another_organization_sees_none_of_it() {
    let dir = TempDir::new();
    let (running, a, b) = start_with_two_orgs(&dir).await;
    let (bearer_a, bearer_b) = (format!("Bearer {}", *a), format!("Bearer {}", *b));
    let created = crate::support::post_json(
        running.addr,
        &bearer_a,
        br#"{"name":"A's","url":"https://example.com/a"}"#,
    )
    .await
    .json();
    let path = item(created["destinationId"].as_str().unwrap());
    let as_b = |method: &'static str, path: String, body: &'static [u8]| {
        let bearer = bearer_b.clone();
        async move {
            request(
                running.addr,
                method,
                &path,
                &[
                    ("Authorization", bearer.as_str()),
                    ("Content-Type", "application/json"),
                ],
                body,
            )
            .await
        }
    };
    assert_eq!(as_b("GET", path.clone(), b"").await.status, 404);
    assert_eq!(
        as_b("PATCH", path.clone(), br#"{"name":"B's now"}"#)
            .await
            .status,
        404
    );
    assert_eq!(
        as_b("POST", format!("{path}/rotate-secret"), b"")
            .await
            .status,
        404
    );
    assert_eq!(as_b("DELETE", path.clone(), b"").await.status, 404);
    let list = as_b("GET", CREATE_PATH.to_owned(), b"").await.json();
    assert_eq!(list["data"], json!([]));
    let still = request(
        running.addr,
        "GET",
        &path,
        &[("Authorization", &bearer_a)],
        b"",
    )
    .await;
    assert_eq!(still.status, 200);
    assert_eq!(still.json()["name"], json!("A's"));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn list_walks_every_destination_once_in_id_order() {
    let server = TestServer::start().await;
    let mut ids = BTreeSet::new();
    for i in 0..7 {
        ids.insert(
            create(&server, &format!("d{i}")).await["destinationId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("{CREATE_PATH}?limit=3&cursor={c}"),
            None => format!("{CREATE_PATH}?limit=3"),
        };
        let response = call(&server, "GET", &path, None).await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert_documented("GET", CREATE_PATH, &response);
        let page = response.json();
        pages += 1;
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 3);
        seen.extend(
            data.iter()
                .map(|d| d["destinationId"].as_str().unwrap().to_owned()),
        );
        if page["hasMore"] == json!(false) {
            assert_eq!(page["nextCursor"], Value::Null);
            break;
        }
        cursor = Some(page["nextCursor"].as_str().unwrap().to_owned());
        // A destination deleted between pages does not disturb the walk.
        if pages == 1 {
            let last = seen.last().unwrap().clone();
            assert_eq!(
                call(&server, "DELETE", &item(&last), None).await.status,
                200
            );
            ids.remove(&last);
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = ids.iter().cloned().collect();
    let mut walked = seen.clone();
    walked.retain(|id| ids.contains(id));
    assert_eq!(walked, expected, "every destination once, ascending");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);

    let all = call(&server, "GET", CREATE_PATH, None).await.json();
    assert_eq!(
        all["data"].as_array().unwrap().len(),
        6,
        "default limit 20 holds all"
    );
    assert_eq!(all["hasMore"], json!(false));
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn list_parameters_are_validated() {
    let server = TestServer::start().await;
    for (query, status, field) in [
        ("limit=0", 422, "limit"),
        ("limit=101", 422, "limit"),
        ("limit=abc", 422, "limit"),
        ("limit=-1", 422, "limit"),
        ("cursor=whk_nope", 422, "cursor"),
        ("limit=1&limit=2", 400, ""),
        ("offset=5", 400, ""),
        ("token=whsec_abc", 400, ""),
    ] {
        let response = call(&server, "GET", &format!("{CREATE_PATH}?{query}"), None).await;
        assert_eq!(response.status, status, "{query}: {}", response.text());
        assert_documented("GET", CREATE_PATH, &response);
        if status == 422 {
            assert_eq!(response.json()["errors"][0]["field"], json!(field));
        }
        assert!(!response.text().contains("whsec_abc"));
    }
    for query in [
        "limit=1",
        "limit=100",
        "cursor=whk_00000000000000000000000000",
    ] {
        let response = call(&server, "GET", &format!("{CREATE_PATH}?{query}"), None).await;
        assert_eq!(response.status, 200, "{query}");
    }
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn update_changes_name_and_url_under_version_control() {
    let server = TestServer::start().await;
    let created = create(&server, "Production").await;
    let path = item(created["destinationId"].as_str().unwrap());

    let response = call(
        &server,
        "PATCH",
        &path,
        Some(json!({"name": "Production EU", "version": 1})),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_documented("PATCH", ITEM, &response);
    let updated = response.json();
    assert_eq!(updated["name"], json!("Production EU"));
    assert_eq!(
        updated["url"], created["url"],
        "members left out keep their value"
    );
    assert_eq!(updated["version"], json!(2));
    assert_eq!(updated["createdAt"], created["createdAt"]);

    // A stale version is refused and changes nothing.
    let response = call(
        &server,
        "PATCH",
        &path,
        Some(json!({"url": "https://example.org/x", "version": 1})),
    )
    .await;
    assert_eq!(response.status, 409, "{}", response.text());
    assert_documented("PATCH", ITEM, &response);
    let problem = response.json();
    assert_eq!(
        problem["type"],
        json!("https://api.prets.app/problems/version_mismatch")
    );
    assert_eq!(problem["errors"][0]["code"], json!("version_mismatch"));
    assert_eq!(
        call(&server, "GET", &path, None).await.json()["url"],
        created["url"]
    );

    // Without a version the change applies to whatever is stored.
    let response = call(
        &server,
        "PATCH",
        &path,
        Some(json!({"url": "https://example.org/x"})),
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["version"], json!(3));

    // Every invalid field at once; nothing written.
    let response = call(
        &server,
        "PATCH",
        &path,
        Some(json!({"name": "", "url": "http://x", "version": "3"})),
    )
    .await;
    assert_eq!(response.status, 422, "{}", response.text());
    assert_documented("PATCH", ITEM, &response);
    let fields: Vec<_> = response.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].clone())
        .collect();
    assert_eq!(fields, [json!("name"), json!("url"), json!("version")]);

    for (body, status) in [
        (&b"{\"name\": "[..], 400),
        (b"[]", 400),
        (b"{\"destinationId\": \"x\"}", 400),
    ] {
        let bearer = server.bearer();
        let response = request(
            server.addr(),
            "PATCH",
            &path,
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
            body,
        )
        .await;
        assert_eq!(response.status, status, "{}", response.text());
        assert_documented("PATCH", ITEM, &response);
    }
    let bearer = server.bearer();
    let response = request(
        server.addr(),
        "PATCH",
        &path,
        &[("Authorization", &bearer)],
        b"{}",
    )
    .await;
    assert_eq!(response.status, 415);
    assert_documented("PATCH", ITEM, &response);
    assert_eq!(
        call(
            &server,
            "PATCH",
            &item("whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K"),
            Some(json!({"name": "x"}))
        )
        .await
        .status,
        404
    );
    assert_eq!(
        call(&server, "GET", &path, None).await.json()["version"],
        json!(3)
    );
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn delete_removes_it_and_frees_the_id() {
    let server = TestServer::start().await;
    let id = "whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K";
    let body = json!({"name": "Production", "url": "https://example.com/", "destinationId": id})
        .to_string();
    let first = server.create(body.as_bytes()).await;
    assert_eq!(first.status, 201);
    let response = call(&server, "DELETE", &item(id), None).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_documented("DELETE", ITEM, &response);
    assert_eq!(
        response.json(),
        json!({"destinationId": id, "deleted": true})
    );
    let again = call(&server, "DELETE", &item(id), None).await;
    assert_eq!(again.status, 404);
    assert_documented("DELETE", ITEM, &again);
    assert_eq!(call(&server, "GET", &item(id), None).await.status, 404);
    let recreated = server.create(body.as_bytes()).await;
    assert_eq!(recreated.status, 201, "the id is free again");
    assert_ne!(
        recreated.json()["bearerSecret"],
        first.json()["bearerSecret"]
    );
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn rotation_returns_a_new_secret_once_and_keeps_the_old_one_for_the_grace_period() {
    let server = TestServer::start().await;
    let created = create(&server, "Production").await;
    let id = created["destinationId"].as_str().unwrap().to_owned();
    let path = format!("{}/rotate-secret", item(&id));
    let old_secret = created["bearerSecret"].as_str().unwrap().to_owned();

    let response = call(
        &server,
        "POST",
        &path,
        Some(json!({"gracePeriodSeconds": 3600})),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_documented("POST", ROTATE, &response);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let rotated = response.json();
    let new_secret = rotated["bearerSecret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    assert_eq!(rotated["version"], json!(2));
    let updated =
        prets_destinations::Timestamp::try_from(rotated["updatedAt"].as_str().unwrap()).unwrap();
    let expires = prets_destinations::Timestamp::try_from(
        rotated["previousSecretExpiresAt"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(expires.unix_seconds() - updated.unix_seconds(), 3600);

    // An empty body: the default grace period (24 h); 0 revokes at once.
    let response = call(&server, "POST", &path, None).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let r = response.json();
    let (u, e) = (
        prets_destinations::Timestamp::try_from(r["updatedAt"].as_str().unwrap()).unwrap(),
        prets_destinations::Timestamp::try_from(r["previousSecretExpiresAt"].as_str().unwrap())
            .unwrap(),
    );
    assert_eq!(e.unix_seconds() - u.unix_seconds(), 86_400);
    let response = call(
        &server,
        "POST",
        &path,
        Some(json!({"gracePeriodSeconds": 0})),
    )
    .await;
    assert_eq!(response.status, 200);
    assert_documented("POST", ROTATE, &response);
    let last = response.json();
    assert_eq!(last["previousSecretExpiresAt"], Value::Null);
    assert_eq!(last["version"], json!(4));

    for (body, status) in [
        (json!({"gracePeriodSeconds": 604_801}), 422),
        (json!({"gracePeriodSeconds": -1}), 422),
        (json!({"gracePeriodSeconds": "60"}), 422),
        (json!({"grace": 60}), 400),
    ] {
        let response = call(&server, "POST", &path, Some(body.clone())).await;
        assert_eq!(response.status, status, "{body}: {}", response.text());
        assert_documented("POST", ROTATE, &response);
    }
    let missing = call(
        &server,
        "POST",
        &format!("{}/rotate-secret", item("whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K")),
        None,
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_documented("POST", ROTATE, &missing);
    let wrong_method = call(&server, "GET", &path, None).await;
    assert_eq!(wrong_method.status, 405);
    server.running.stop().await.unwrap();

    // What is stored: the latest secret opens from the record; the rotation
    // with grace 0 revoked every earlier secret, those still in a grace
    // period included, so no previous secret is kept or found.
    let repo = SqliteRepo::open(&server.dir.database()).unwrap();
    let tenant: TenantId = "demo".parse().unwrap();
    let record = repo
        .get(&tenant, id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let keyring =
        load_keyring(&server.dir.database().with_extension("sqlite3.sealing-key")).unwrap();
    assert_eq!(
        *keyring.authorization_header(&tenant, &record).unwrap(),
        format!("Bearer {}", last["bearerSecret"].as_str().unwrap())
    );
    assert_eq!(record.version, 4);
    assert!(
        record.previous_secrets.is_empty(),
        "a secret outlived a rotation with grace 0"
    );
    for revoked in [&old_secret, &new_secret] {
        let found = repo
            .find_by_digest(&SecretDigest::of_presented(revoked))
            .await
            .unwrap();
        assert!(
            found.is_empty(),
            "a revoked secret still finds its destination"
        );
    }
}

#[tokio::test]
async fn ids_wider_than_a_ulid_work_on_every_route() {
    let server = TestServer::start().await;
    let wide = [
        "whk_80000000000000000000000000",
        "whk_Z1ARZ3NDEKTSV4RRFFQ69G5FAV",
        "whk_ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
    ];
    let generated = create(&server, "generated").await["destinationId"]
        .as_str()
        .unwrap()
        .to_owned();
    for id in wide {
        let body =
            json!({"name": "Wide", "url": "https://example.com/", "destinationId": id}).to_string();
        let response = server.create(body.as_bytes()).await;
        assert_eq!(response.status, 201, "{id}: {}", response.text());
        assert_eq!(response.json()["destinationId"], json!(id));
        assert_eq!(response.header("location"), Some(item(id).as_str()), "{id}");
        // The same id again conflicts and names it.
        let again = server.create(body.as_bytes()).await;
        assert_eq!(again.status, 409, "{id}: {}", again.text());
        assert_eq!(again.json()["destinationId"], json!(id));

        let response = call(&server, "GET", &item(id), None).await;
        assert_eq!(response.status, 200, "{id}: {}", response.text());
        assert_documented("GET", ITEM, &response);
        assert_eq!(response.json()["destinationId"], json!(id));
    }

    // The list walks them after the generated id, in text order, and a wide
    // id works as a cursor.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{CREATE_PATH}?limit=1&cursor={c}"),
            None => format!("{CREATE_PATH}?limit=1"),
        };
        let response = call(&server, "GET", &path, None).await;
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        assert_documented("GET", CREATE_PATH, &response);
        let page = response.json();
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["destinationId"].as_str().unwrap().to_owned()),
        );
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut expected: Vec<String> = wide.iter().map(|s| (*s).to_owned()).collect();
    expected.insert(0, generated);
    assert_eq!(seen, expected);
    let response = call(
        &server,
        "GET",
        &format!("{CREATE_PATH}?cursor={}", wide[0]),
        None,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let after: Vec<String> = response.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["destinationId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(after, wide[1..]);

    let id = wide[2];
    let response = call(
        &server,
        "PATCH",
        &item(id),
        Some(json!({"name": "Wide EU", "version": 1})),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_documented("PATCH", ITEM, &response);
    assert_eq!(response.json()["destinationId"], json!(id));
    assert_eq!(response.json()["name"], json!("Wide EU"));

    let response = call(
        &server,
        "POST",
        &format!("{}/rotate-secret", item(id)),
        Some(json!({"gracePeriodSeconds": 60})),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_documented("POST", ROTATE, &response);
    assert_eq!(response.json()["version"], json!(3));

    let response = call(&server, "DELETE", &item(id), None).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_documented("DELETE", ITEM, &response);
    assert_eq!(call(&server, "GET", &item(id), None).await.status, 404);
    server.running.stop().await.unwrap();
}

/// Sends `bodies.len()` requests at once, each on its own connection and
/// task, and answers in the order of `bodies`.
async fn concurrently(
    server: &TestServer,
    method: &'static str,
    path: &str,
    bodies: Vec<Option<Value>>,
) -> Vec<crate::support::Response> {
    let (addr, bearer) = (server.addr(), server.bearer());
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(bodies.len()));
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (path, bearer, start) = (path.to_owned(), bearer.clone(), start.clone());
            tokio::spawn(async move {
                let body = body.map(|b| b.to_string()).unwrap_or_default();
                let mut headers = vec![("Authorization", bearer.as_str())];
                if !body.is_empty() {
                    headers.push(("Content-Type", "application/json"));
                }
                start.wait().await;
                request(addr, method, &path, &headers, body.as_bytes()).await
            })
        })
        .collect();
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.unwrap());
    }
    responses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_without_version_all_apply_once() {
    let server = TestServer::start().await;
    let created = create(&server, "Production").await;
    let path = item(created["destinationId"].as_str().unwrap());
    let names: Vec<String> = (0..20).map(|i| format!("Writer {i}")).collect();
    let bodies = names.iter().map(|n| Some(json!({ "name": n }))).collect();
    let responses = concurrently(&server, "PATCH", &path, bodies).await;
    let mut versions = BTreeSet::new();
    let mut last = None;
    for (response, name) in responses.iter().zip(&names) {
        assert_eq!(response.status, 200, "{}", response.text());
        assert_documented("PATCH", ITEM, response);
        let view = response.json();
        assert_eq!(view["name"], json!(name), "an answer carries another name");
        let version = view["version"].as_u64().unwrap();
        assert!(versions.insert(version), "version {version} answered twice");
        if version == 21 {
            last = Some(name.clone());
        }
    }
    assert_eq!(versions, (2..=21).collect::<BTreeSet<u64>>());
    let stored = call(&server, "GET", &path, None).await.json();
    assert_eq!(stored["version"], json!(21));
    assert_eq!(stored["name"], json!(last.unwrap()));
    server.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_empty_body_rotations_all_apply_once() {
    let server = TestServer::start().await;
    let created = create(&server, "Production").await;
    let path = format!(
        "{}/rotate-secret",
        item(created["destinationId"].as_str().unwrap())
    );
    let responses = concurrently(&server, "POST", &path, vec![None; 20]).await;
    let mut versions = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for response in &responses {
        assert_eq!(response.status, 200, "{}", response.text());
        assert_documented("POST", ROTATE, response);
        let rotated = response.json();
        versions.insert(rotated["version"].as_u64().unwrap());
        secrets.insert(rotated["bearerSecret"].as_str().unwrap().to_owned());
    }
    assert_eq!(versions, (2..=21).collect::<BTreeSet<u64>>());
    assert_eq!(secrets.len(), 20, "a secret was answered twice");
    let stored = call(
        &server,
        "GET",
        &item(created["destinationId"].as_str().unwrap()),
        None,
    )
    .await
    .json();
    assert_eq!(stored["version"], json!(21));
    server.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_of_one_version_have_one_winner() {
    let server = TestServer::start().await;
    let created = create(&server, "Production").await;
    let path = item(created["destinationId"].as_str().unwrap());
    let bodies = (0..20)
        .map(|i| Some(json!({"name": format!("Writer {i}"), "version": 1})))
        .collect();
    let responses = concurrently(&server, "PATCH", &path, bodies).await;
    let mut winner = None;
    for response in &responses {
        assert_documented("PATCH", ITEM, response);
        match response.status {
            200 => {
                assert!(winner.is_none(), "two updates of version 1 applied");
                winner = Some(response.json());
            }
            409 => assert_eq!(
                response.json()["errors"][0]["code"],
                json!("version_mismatch")
            ),
            other => panic!("{other}: {}", response.text()),
        }
    }
    let winner = winner.expect("one update of version 1 applies");
    let stored = call(&server, "GET", &path, None).await.json();
    assert_eq!(
        (&stored["version"], &stored["name"]),
        (&json!(2), &winner["name"])
    );
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn a_version_outside_1_to_2_pow_63_minus_1_is_out_of_range() {
    let doc = crate::support::openapi();
    for schema in [
        "UpdateDestinationRequest",
        "RotateSecretRequest",
        "DestinationView",
        "RotatedSecret",
    ] {
        let version = &doc["components"]["schemas"][schema]["properties"]["version"];
        assert_eq!(
            (&version["minimum"], &version["maximum"]),
            (&json!(1), &json!(9_223_372_036_854_775_807_u64)),
            "{schema}"
        );
    }
    let server = TestServer::start().await;
    let created = create(&server, "Production").await;
    let path = item(created["destinationId"].as_str().unwrap());
    for version in [
        "0",
        "-1",
        "-9223372036854775809",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "1e30",
    ] {
        let bearer = server.bearer();
        let body = format!(r#"{{"name":"Renamed","version":{version}}}"#);
        let response = request(
            server.addr(),
            "PATCH",
            &path,
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
        .await;
        assert_eq!(response.status, 422, "{version}: {}", response.text());
        assert_documented("PATCH", ITEM, &response);
        let errors = response.json()["errors"].clone();
        assert_eq!(
            errors,
            json!([{
                "field": "version",
                "code": "out_of_range",
                "message": "version must be between 1 and 9223372036854775807"
            }]),
            "{version}"
        );
    }
    // A rotation's `version` follows the same rule, and nothing rotates.
    let rotate_path = format!("{path}/rotate-secret");
    for version in ["0", "-1", "9223372036854775808", "18446744073709551616"] {
        let bearer = server.bearer();
        let body = format!(r#"{{"version":{version}}}"#);
        let response = request(
            server.addr(),
            "POST",
            &rotate_path,
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
        .await;
        assert_eq!(response.status, 422, "{version}: {}", response.text());
        assert_documented("POST", ROTATE, &response);
        assert_eq!(
            response.json()["errors"],
            json!([{
                "field": "version",
                "code": "out_of_range",
                "message": "version must be between 1 and 9223372036854775807"
            }]),
            "{version}"
        );
    }
    let response = call(&server, "POST", &rotate_path, Some(json!({"version": 2}))).await;
    assert_eq!(response.status, 409, "{}", response.text());
    assert_documented("POST", ROTATE, &response);
    assert_eq!(
        response.json()["errors"][0]["code"],
        json!("version_mismatch")
    );
    // The largest version is in range: not stored, so a mismatch.
    let response = call(
        &server,
        "PATCH",
        &path,
        Some(json!({"name": "Renamed", "version": 9_223_372_036_854_775_807_u64})),
    )
    .await;
    assert_eq!(response.status, 409, "{}", response.text());
    assert_eq!(
        response.json()["errors"][0]["code"],
        json!("version_mismatch")
    );
    let stored = call(&server, "GET", &path, None).await.json();
    assert_eq!(
        (&stored["name"], &stored["version"]),
        (&json!("Production"), &json!(1))
    );
    server.running.stop().await.unwrap();
}
