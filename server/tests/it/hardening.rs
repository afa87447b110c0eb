//! Outside-in hardening over real sockets: stalled and idle connections are
//! closed after their timeouts without locking others out, the connection
//! cap refuses cleanly, ambiguous requests are refused, requests over the
//! head limits get problems, and the cases hyper answers itself are as
//! documented.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{
    CREATE_PATH, Response, TempDir, assert_documented, config, parse_response, post_json,
    raw_request, request,
};
use prets_destinations_server::{Config, Running, spawn};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

const BODY: &[u8] = br#"{"name":"Production","url":"https://example.com/prets/events"}"#;

/// A generous bound on "closed after a short timeout": a multiple of it,
/// never a claim about speed.
const CLOSE_BOUND: Duration = Duration::from_secs(20);

async fn start(dir: &TempDir, tune: impl FnOnce(&mut Config)) -> (Running, Zeroizing<String>) {
    let mut config = config(dir);
    tune(&mut config);
    let mut running = spawn(&config).await.unwrap();
    let token = running.demo_token.take().unwrap();
    (running, token)
}

/// Reads until the server closes the connection (or resets it), within
/// `CLOSE_BOUND`; returns what was read.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let read = tokio::time::timeout(CLOSE_BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    raw
}

fn assert_problem(response: &Response, status: u16, kind: &str) {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json")
    );
    let body = response.json();
    assert_eq!(body["status"], status);
    assert_eq!(
        body["type"],
        format!("https://api.prets.app/problems/{kind}"),
        "{body}"
    );
    let id = response.header("x-request-id").expect("a request id");
    assert_eq!(id.len(), 16);
}

async fn connect(addr: SocketAddr, sent: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(sent).await.unwrap();
    stream
}

#[tokio::test]
async fn stalled_connections_do_not_lock_out_a_create_and_are_closed() {
    let dir = TempDir::new();
    let (running, token) = start(&dir, |c| {
        // Long enough that the create below runs while all are stalled.
        c.header_read_timeout = Duration::from_secs(3);
        c.body_read_timeout = Duration::from_secs(3);
    })
    .await;
    let addr = running.addr;
    let bearer = format!("Bearer {}", *token);
    let partial_head = format!("POST {CREATE_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: ");
    let short_body = format!(
        "POST {CREATE_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: {bearer}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"na"
    );
    let mut heads = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..150 {
        heads.push(connect(addr, partial_head.as_bytes()).await);
        bodies.push(connect(addr, short_body.as_bytes()).await);
    }
    // 300 stalled connections are open; a create is still answered.
    let created = post_json(addr, &bearer, BODY).await;
    assert_eq!(created.status, 201, "{}", created.text());

    // The stalled bodies are answered 408 (a problem) and closed; the
    // stalled heads are closed.
    for stream in &mut bodies {
        let raw = read_until_closed(stream).await;
        let response = parse_response(&raw);
        assert_problem(&response, 408, "request_timeout");
        assert_documented("POST", CREATE_PATH, &response);
    }
    for stream in &mut heads {
        let raw = read_until_closed(stream).await;
        if !raw.is_empty() {
            // hyper may say 408 before closing; never a success.
            assert!(
                raw.starts_with(b"HTTP/1.1 408"),
                "{:?}",
                String::from_utf8_lossy(&raw)
            );
        }
    }
    // Nothing was created by the stalled bodies.
    let list = request(addr, "GET", CREATE_PATH, &[("Authorization", &bearer)], b"").await;
    assert_eq!(
        list.json()["data"].as_array().unwrap().len(),
        1,
        "{}",
        list.text()
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_after_the_header_timeout() {
    let dir = TempDir::new();
    let (running, token) = start(&dir, |c| c.header_read_timeout = Duration::from_secs(1)).await;
    let request = format!(
        "GET {CREATE_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        *token
    );
    let mut stream = connect(running.addr, request.as_bytes()).await;
    // The response arrives and, the connection then sitting idle, it is closed.
    let raw = read_until_closed(&mut stream).await;
    let response = parse_response(&raw);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), None, "kept alive until idle");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_connection_that_stops_mid_head_is_closed_after_the_idle_timeout() {
    let dir = TempDir::new();
    // The header timeout is far; only the silence limit can close it.
    let (running, _token) = start(&dir, |c| {
        c.header_read_timeout = Duration::from_secs(3600);
        c.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = connect(running.addr, b"GET /openapi.json HTTP/1.1\r\nHost:").await;
    let raw = read_until_closed(&mut stream).await;
    assert!(raw.is_empty(), "{:?}", String::from_utf8_lossy(&raw));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn past_the_connection_cap_a_connection_gets_a_503_problem_and_is_closed() {
    let dir = TempDir::new();
    let (running, token) = start(&dir, |c| c.max_connections = 2).await;
    let addr = running.addr;
    let holders = [connect(addr, b"GET").await, connect(addr, b"GET").await];
    // Let the server accept both before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = raw_request(addr, "GET", "/openapi.json", &[], b"").await;
    assert_problem(&refused, 503, "server_busy");
    assert_documented("GET", "/openapi.json", &refused);
    assert_eq!(refused.header("connection"), Some("close"));
    assert_eq!(refused.header("retry-after"), Some("1"));
    // Once a slot frees, connections are served again.
    drop(holders);
    let bearer = format!("Bearer {}", *token);
    let mut served = None;
    for _ in 0..100 {
        let response = post_json(addr, &bearer, BODY).await;
        if response.status == 201 {
            served = Some(response);
            break;
        }
        assert_problem(&response, 503, "server_busy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served.is_some(), "the freed slots were never reused");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn two_authorization_headers_are_refused_in_either_order() {
    let dir = TempDir::new();
    let (running, token) = start(&dir, |_| ()).await;
    let good = format!("Bearer {}", *token);
    let other = format!("Bearer prets_{}", "0".repeat(64));
    for pair in [[&good, &other], [&other, &good], [&good, &good]] {
        let response = request(
            running.addr,
            "POST",
            CREATE_PATH,
            &[
                ("Authorization", pair[0]),
                ("Authorization", pair[1]),
                ("Content-Type", "application/json"),
            ],
            BODY,
        )
        .await;
        assert_problem(&response, 400, "ambiguous_request");
        assert_documented("POST", CREATE_PATH, &response);
        assert!(
            response.json()["detail"]
                .as_str()
                .unwrap()
                .contains("Authorization")
        );
    }
    running.stop().await.unwrap();
}

#[tokio::test]
async fn content_type_must_be_one_json_in_utf8() {
    let dir = TempDir::new();
    let (running, token) = start(&dir, |_| ()).await;
    let bearer = format!("Bearer {}", *token);
    let send = |types: Vec<&'static str>| {
        let bearer = bearer.clone();
        async move {
            let mut headers = vec![("Authorization", bearer.as_str())];
            headers.extend(types.iter().map(|t| ("Content-Type", *t)));
            request(running.addr, "POST", CREATE_PATH, &headers, BODY).await
        }
    };
    for pair in [
        vec!["application/json", "application/json"],
        vec!["application/json", "text/plain"],
        vec!["text/plain", "application/json"],
    ] {
        assert_problem(&send(pair).await, 400, "ambiguous_request");
    }
    // Also on rotation with an empty body, where no type is otherwise needed.
    let rotate = request(
        running.addr,
        "POST",
        "/v1/events/destinations/whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K/rotate-secret",
        &[
            ("Authorization", bearer.as_str()),
            ("Content-Type", "application/json"),
            ("Content-Type", "text/plain"),
        ],
        b"",
    )
    .await;
    assert_problem(&rotate, 400, "ambiguous_request");
    assert_documented(
        "POST",
        "/v1/events/destinations/{id}/rotate-secret",
        &rotate,
    );
    for bad in [
        "application/json; charset=iso-8859-1",
        "application/json; charset=utf-16",
        "application/json;charset=UTF-16LE",
        "application/json; charset=",
        "application/json; charset=\"latin1\"",
        "application/json; charset=utf-8; charset=utf-16",
    ] {
        let response = send(vec![bad]).await;
        assert_problem(&response, 415, "unsupported_media_type");
        assert_documented("POST", CREATE_PATH, &response);
    }
    for good in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;CHARSET=UTF-8",
        "application/json; charset=\"utf-8\"",
    ] {
        let response = send(vec![good]).await;
        assert_eq!(response.status, 201, "{good}: {}", response.text());
    }
    running.stop().await.unwrap();
}

/// Sends raw bytes and reads the whole answer.
async fn raw_exchange(addr: SocketAddr, sent: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before everything is written.
    let _ = stream.write_all(sent).await;
    read_until_closed(&mut stream).await
}

#[tokio::test]
async fn oversized_heads_within_the_parser_limits_get_problems() {
    let dir = TempDir::new();
    let (running, _token) = start(&dir, |_| ()).await;
    let addr = running.addr;
    // 2,000 header lines: over the application's 100.
    let mut many = String::from("GET /openapi.json HTTP/1.1\r\nHost: x\r\n");
    for i in 0..2000 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let response = parse_response(&raw_exchange(addr, many.as_bytes()).await);
    assert_problem(&response, 431, "headers_too_large");
    assert_documented("GET", "/openapi.json", &response);
    // One 20 kB header value: over the application's 16 KiB of headers.
    let big = format!(
        "GET /openapi.json HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
        "v".repeat(20_000)
    );
    let response = parse_response(&raw_exchange(addr, big.as_bytes()).await);
    assert_problem(&response, 431, "headers_too_large");
    // A 20 kB path: over the application's 8 KiB target limit.
    let long = format!(
        "GET /v1/events/destinations/{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(20_000)
    );
    let response = parse_response(&raw_exchange(addr, long.as_bytes()).await);
    assert_problem(&response, 414, "uri_too_long");
    assert_documented("GET", "/v1/events/destinations/{id}", &response);
    // 100 headers are still served.
    let mut hundred =
        String::from("GET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..98 {
        hundred.push_str(&format!("x-h{i}: v\r\n"));
    }
    hundred.push_str("\r\n");
    let response = parse_response(&raw_exchange(addr, hundred.as_bytes()).await);
    assert_eq!(response.status, 200);
    running.stop().await.unwrap();
}

/// The requests hyper's parser refuses before any application code runs:
/// the documented exemptions, answered with an empty body, no request id,
/// and a closed connection.
#[tokio::test]
async fn parser_errors_are_the_documented_exemptions() {
    let dir = TempDir::new();
    let (running, _token) = start(&dir, |_| ()).await;
    let addr = running.addr;
    let long_path = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (long_path.into_bytes(), "HTTP/1.1 414"),
        (
            format!(
                "POST {CREATE_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n"
            )
            .into_bytes(),
            "HTTP/1.1 400",
        ),
        (
            format!(
                "POST {CREATE_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{{}}"
            )
            .into_bytes(),
            "HTTP/1.1 400",
        ),
        (
            b"GET /openapi.json HTTP/1.1\r\nHost: x\r\nx-a: b\x01c\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            b"GET /v1/events/destinations/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
    ];
    let mut lines = String::from("GET /openapi.json HTTP/1.1\r\nHost: x\r\n");
    for i in 0..5000 {
        lines.push_str(&format!("x-{i}: v\r\n"));
    }
    lines.push_str("\r\n");
    let cases = cases.into_iter().chain([
        // Past hyper's 4096 header lines and its 256 KiB head.
        (lines.into_bytes(), "HTTP/1.1 431"),
        (
            format!(
                "GET /openapi.json HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
                "v".repeat(300 * 1024)
            )
            .into_bytes(),
            "HTTP/1.1 431",
        ),
    ]);
    for (sent, status) in cases {
        let raw = raw_exchange(addr, &sent).await;
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with(status), "{status}: {text:?}");
        let response = parse_response(&raw);
        assert!(response.body.is_empty(), "{text:?}");
        assert_eq!(response.header("x-request-id"), None);
    }
    // The server is unharmed.
    let response = request(addr, "GET", "/openapi.json", &[], b"").await;
    assert_eq!(response.status, 200);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_is_not_held_up_by_stalled_connections_past_their_timeouts() {
    let dir = TempDir::new();
    let (running, token) = start(&dir, |c| {
        c.header_read_timeout = Duration::from_secs(1);
        c.body_read_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = running.addr;
    let mut stalled = vec![
        connect(addr, b"GET /openapi.json HTTP/1.1\r\nHo").await,
        connect(
            addr,
            format!(
                "POST {CREATE_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
                *token
            )
            .as_bytes(),
        )
        .await,
        connect(addr, b"").await,
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = tokio::time::timeout(CLOSE_BOUND, running.stop()).await;
    assert!(stopped.is_ok(), "shutdown waited on stalled connections");
    stopped.unwrap().unwrap();
    for stream in &mut stalled {
        read_until_closed(stream).await;
    }
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}
