//! What the server logs: every request with its id, and never a token, a
//! secret or a client's text.

use crate::support::{CREATE_PATH, TestServer, captured_logs, post_json, request};
use serde_json::json;

#[tokio::test]
async fn logs_carry_request_ids_and_no_token_secret_or_client_text() {
    let captured = captured_logs();

    let server = TestServer::start().await;
    let mut request_ids = Vec::new();
    let mut secrets = Vec::new();
    let created = server
        .create(br#"{"name":"Production","url":"https://example.com/prets/events"}"#)
        .await;
    assert_eq!(created.status, 201);
    secrets.push(created.json()["bearerSecret"].as_str().unwrap().to_owned());
    request_ids.push(created.header("x-request-id").unwrap().to_owned());

    let client_text = "whsec_clientTextThatMustNotBeLogged0000000000000";
    let wrong_token = format!("{}ff", *server.token);
    let responses = vec![
        post_json(server.addr(), &format!("Bearer {wrong_token}"), b"{}").await,
        server
            .create(
                json!({"name": client_text, "url": format!("http://{client_text}.example/")})
                    .to_string()
                    .as_bytes(),
            )
            .await,
        server
            .create(format!("{{\"{client_text}\": 1}}").as_bytes())
            .await,
        server
            .create(format!("{{\"name\": \"{client_text}").as_bytes())
            .await,
        request(
            server.addr(),
            "GET",
            &format!("/{client_text}?token={}", *server.token),
            &[],
            b"",
        )
        .await,
    ];
    for response in &responses {
        assert!(response.status >= 400);
        request_ids.push(response.header("x-request-id").unwrap().to_owned());
    }
    let id = created.json()["destinationId"].as_str().unwrap().to_owned();
    let conflict = server
        .create(
            json!({"name": "x", "url": "https://example.com/", "destinationId": id})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(conflict.status, 409);
    server.running.stop().await.unwrap();

    let logs = captured.text();
    for request_id in &request_ids {
        assert!(
            logs.lines()
                .any(|l| l.contains(request_id.as_str()) && l.contains("served")),
            "request {request_id} logged with its id:\n{logs}"
        );
    }
    assert!(logs.contains(&format!("route={CREATE_PATH}")), "{logs}");
    assert!(
        logs.contains("status=401") && logs.contains("status=422") && logs.contains("status=409")
    );
    for (what, text) in [
        ("the demo token", server.token.as_str()),
        ("a wrong token", wrong_token.as_str()),
        ("a client's text", client_text),
        ("a query string", "token="),
    ] {
        assert!(!logs.contains(text), "{what} in the log:\n{logs}");
    }
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a bearer secret in the log"
        );
        assert!(
            !logs.contains(&secret["whsec_".len()..]),
            "a bearer secret in the log"
        );
    }
}

/// A publish of a known `eventId` with the same type and payload stores and
/// queues nothing: it is logged as a replay, not as a second publish.
#[tokio::test]
async fn a_replayed_publish_is_logged_as_a_replay() {
    let captured = captured_logs();
    let server = TestServer::start().await;
    let created = server
        .create(br#"{"name":"Replays","url":"https://example.com/prets/replays"}"#)
        .await;
    assert_eq!(created.status, 201);
    let event_id = "evt_01HF2V3J6T0Q8X5Y7Z9RPXYS00";
    let body =
        json!({"eventId": event_id, "type": "invoice.paid", "payload": {"n": 1}}).to_string();
    let auth = server.bearer();
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let publish = async || {
        request(
            server.addr(),
            "POST",
            "/v1/events",
            &headers,
            body.as_bytes(),
        )
        .await
    };
    let (first, again) = (publish().await, publish().await);
    assert_eq!((first.status, again.status), (202, 202), "{}", again.text());
    assert_eq!(first.json(), again.json());
    server.running.stop().await.unwrap();
    let text = captured.text();
    let mine: Vec<&str> = text.lines().filter(|l| l.contains(event_id)).collect();
    let count = |what: &str| mine.iter().filter(|l| l.contains(what)).count();
    assert_eq!(count("event published"), 1, "{mine:#?}");
    assert_eq!(count("event publish replayed"), 1, "{mine:#?}");
}
