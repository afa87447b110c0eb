//! Shared test support, the one harness of every module:
//!
//! - a server in this process on an ephemeral port over a temporary
//!   database ([`TestServer`], [`config`]), or the binary as a child
//!   process ([`process`]);
//! - HTTP: one request with a client ([`request`]) or written by hand on a
//!   raw socket for malformed HTTP ([`raw_request`]), and the API as one
//!   organization calls it ([`client`]);
//! - the HTTPS webhook receiver deliveries go to, and waiting for what it
//!   received ([`receiver`], [`eventually`]), reached through a stub
//!   resolver ([`resolver`]);
//! - validation against the OpenAPI document's schemas
//!   ([`assert_documented`]).

pub mod client;
pub mod process;
pub mod receiver;
pub mod resolver;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use prets_destinations_server::{Config, Running, TokenEntry, mint_token, spawn, token_digest};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

pub const CREATE_PATH: &str = "/v1/events/destinations";

/// The delivery to destination `d` in an event's detail (the body of
/// `GET /v1/events/{id}`).
pub fn delivery_to<'a>(detail: &'a Value, d: &str) -> &'a Value {
    detail["deliveries"]
        .as_array()
        .and_then(|all| all.iter().find(|x| x["destinationId"] == d))
        .unwrap_or_else(|| panic!("no delivery to {d}: {detail}"))
}

/// A log written into memory.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The log of this test binary, every level, installed as the global
/// subscriber by the first caller. Global, because a scoped subscriber
/// misses the events of callsites first hit on other threads; so every test
/// of the binary logs into it, and none may leak a token, secret, payload or
/// response.
pub fn captured_logs() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).unwrap();
            captured
        })
        .clone()
}

/// A fresh, empty directory under the system's temp dir, removed on drop.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new() -> Self {
        Self(
            tempfile::Builder::new()
                .prefix("prets-server-test-")
                .tempdir()
                .unwrap(),
        )
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn database(&self) -> PathBuf {
        self.0.path().join("destinations.sqlite3")
    }
}

/// Waits until `done` holds, polling every 10 ms, failing the test with
/// `what` after `bound`.
pub async fn eventually(what: &str, bound: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn config(dir: &TempDir) -> Config {
    Config::new(dir.database(), "127.0.0.1:0".parse().unwrap())
}

/// A server on a temp database, started with the defaults (demo token).
pub struct TestServer {
    pub dir: TempDir,
    pub running: Running,
    pub token: Zeroizing<String>,
}

impl TestServer {
    pub async fn start() -> Self {
        let dir = TempDir::new();
        let mut running = spawn(&config(&dir)).await.unwrap();
        let token = running
            .demo_token
            .take()
            .expect("a first start mints a token");
        Self {
            dir,
            running,
            token,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    pub fn bearer(&self) -> String {
        format!("Bearer {}", *self.token)
    }

    /// POSTs `body` as JSON with the demo token.
    pub async fn create(&self, body: &[u8]) -> Response {
        post_json(self.addr(), &self.bearer(), body).await
    }
}

/// The API tokens of two organizations, `org_a` with `a` and `org_b` with
/// `b`, as a configuration's only ones.
pub fn two_org_tokens(a: &str, b: &str) -> Vec<TokenEntry> {
    vec![
        TokenEntry {
            organization: "org_a".parse().unwrap(),
            digest: token_digest(a),
        },
        TokenEntry {
            organization: "org_b".parse().unwrap(),
            digest: token_digest(b),
        },
    ]
}

/// Two organizations with configured tokens on one temp database.
pub async fn start_with_two_orgs(dir: &TempDir) -> (Running, Zeroizing<String>, Zeroizing<String>) {
    start_with_two_orgs_tuned(dir, |_| ()).await
}

/// [`start_with_two_orgs`] with the configuration tuned first.
pub async fn start_with_two_orgs_tuned(
    dir: &TempDir,
    tune: impl FnOnce(&mut Config),
) -> (Running, Zeroizing<String>, Zeroizing<String>) {
    let (a, b) = (mint_token(), mint_token());
    let mut config = config(dir);
    tune(&mut config);
    config.api_tokens = two_org_tokens(&a, &b);
    let running = spawn(&config).await.unwrap();
    assert!(running.demo_token.is_none(), "configured tokens: no demo");
    (running, a, b)
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one raw request (`Connection: close`) and reads the whole response.
pub async fn send_raw(addr: SocketAddr, head: &str, body: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(body);
    // The server may answer (413) before reading everything; then a failed
    // write is expected and the answer is still there to read.
    let _ = stream.write_all(&request).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no complete response head in {:?}",
                String::from_utf8_lossy(raw)
            )
        });
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let body = raw[split + 4..].to_vec();
    let response = Response {
        status,
        headers,
        body,
    };
    if let Some(len) = response.header("content-length") {
        assert_eq!(
            len.parse::<usize>().unwrap(),
            response.body.len(),
            "content-length"
        );
    }
    response
}

/// Sends one request with an HTTP client (a fresh connection each time)
/// and reads the whole response. Tests about malformed HTTP or stalled
/// connections use [`raw_request`] or raw sockets instead.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let sends_body =
        !body.is_empty() || method == reqwest::Method::POST || method == reqwest::Method::PATCH;
    let mut builder = client.request(method, format!("http://{addr}{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    if sends_body {
        builder = builder.body(body.to_vec());
    }
    let response = builder
        .send()
        .await
        .unwrap_or_else(|e| panic!("request to {path} failed: {e:?}"));
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response.bytes().await.unwrap().to_vec();
    Response {
        status,
        headers,
        body,
    }
}

/// [`request`] written by hand on a raw socket (`Connection: close`), for
/// requests an HTTP client would not send as they are.
pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PATCH" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    send_raw(addr, &head, body).await
}

pub async fn post_json(addr: SocketAddr, authorization: &str, body: &[u8]) -> Response {
    request(
        addr,
        "POST",
        CREATE_PATH,
        &[
            ("Authorization", authorization),
            ("Content-Type", "application/json"),
        ],
        body,
    )
    .await
}

// ---- the OpenAPI document and a validator for the subset of JSON Schema it uses

pub fn openapi() -> Value {
    serde_json::from_str(prets_destinations_server::OPENAPI_JSON).unwrap()
}

/// The documented schema of the response `status` of `method path` with
/// media type `content_type`; panics if the document does not list it.
pub fn response_schema<'a>(
    doc: &'a Value,
    method: &str,
    path: &str,
    status: u16,
    content_type: &str,
) -> &'a Value {
    let pointer = format!(
        "/paths/{}/{}/responses/{status}",
        path.replace('~', "~0").replace('/', "~1"),
        method.to_ascii_lowercase()
    );
    let response = doc
        .pointer(&pointer)
        .unwrap_or_else(|| panic!("the document has no {status} for {method} {path}"));
    let media = content_type.split(';').next().unwrap().trim();
    response
        .pointer(&format!("/content/{}/schema", media.replace('/', "~1")))
        .unwrap_or_else(|| {
            panic!("the document has no {media} body for {status} of {method} {path}")
        })
}

/// Checks a real response against the document: its status and media type
/// are documented for the operation, its body validates against the schema,
/// and the headers the document requires are there.
pub fn assert_documented(method: &str, path_template: &str, response: &Response) {
    let doc = openapi();
    let content_type = response.header("content-type").expect("content-type");
    let schema = response_schema(&doc, method, path_template, response.status, content_type);
    let errors = validate(&doc, schema, &response.json());
    assert!(
        errors.is_empty(),
        "{method} {path_template} {}: {errors:#?}\n{}",
        response.status,
        response.text()
    );
    if let Some(headers) = doc
        .pointer(&format!(
            "/paths/{}/{}/responses/{}/headers",
            path_template.replace('/', "~1"),
            method.to_ascii_lowercase(),
            response.status
        ))
        .and_then(Value::as_object)
    {
        for (name, spec) in headers {
            let value = response
                .header(name)
                .unwrap_or_else(|| panic!("documented header {name} missing"));
            if let Some(c) = spec.pointer("/schema/const").and_then(Value::as_str) {
                assert_eq!(value, c, "header {name}");
            }
        }
    }
}

/// Violations of `schema` (a schema of the OpenAPI document, whose `$ref`s
/// point into the document's `components`) by `value`, formats included.
pub fn validate(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    // The schema as the root of a resource that also holds the document's
    // components, so `#/components/schemas/...` resolves.
    let root = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
        "components": doc["components"],
    });
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("the document's schema does not compile: {e}"));
    validator
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}
