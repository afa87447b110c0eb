//! The API as one organization calls it over real HTTP: its routes, and a
//! [`Client`] (an address and a token) whose helpers check each answer
//! against the OpenAPI document.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{CREATE_PATH, Response, assert_documented, request};

/// `POST` publishes an event.
pub const EVENTS: &str = "/v1/events";
/// One destination (the document's path template).
pub const ITEM: &str = "/v1/events/destinations/{id}";
/// A destination's attempts.
pub const ATTEMPTS: &str = "/v1/events/destinations/{id}/attempts";
/// A destination's test event.
pub const TEST: &str = "/v1/events/destinations/{id}/test";
/// A destination's secret rotation.
pub const ROTATE: &str = "/v1/events/destinations/{id}/rotate-secret";

/// [`ITEM`] for `id`.
pub fn item(id: &str) -> String {
    format!("{CREATE_PATH}/{id}")
}

/// [`ATTEMPTS`] for `id`.
pub fn attempts_path(id: &str) -> String {
    format!("{CREATE_PATH}/{id}/attempts")
}

/// [`TEST`] for `id`.
pub fn test_path(id: &str) -> String {
    format!("{CREATE_PATH}/{id}/test")
}

/// [`ROTATE`] for `id`.
pub fn rotate_path(id: &str) -> String {
    format!("{CREATE_PATH}/{id}/rotate-secret")
}

/// `method path` with this `Authorization` header and a JSON body if given.
pub async fn call(
    addr: SocketAddr,
    authorization: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Response {
    let body = body.map(Value::to_string).unwrap_or_default();
    call_raw(addr, authorization, method, path, body.as_bytes()).await
}

/// [`call`] with the body's bytes as they are (sent as JSON when not empty).
pub async fn call_raw(
    addr: SocketAddr,
    authorization: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> Response {
    let mut headers = vec![("Authorization", authorization)];
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    request(addr, method, path, &headers, body).await
}

/// One organization's calls to one server.
#[derive(Clone, Debug)]
pub struct Client {
    pub addr: SocketAddr,
    authorization: String,
}

impl Client {
    /// Calls `addr` with the bearer `token`.
    pub fn new(addr: SocketAddr, token: &str) -> Self {
        Self {
            addr,
            authorization: format!("Bearer {token}"),
        }
    }

    /// Calls `addr` with this `Authorization` header.
    pub fn with_authorization(addr: SocketAddr, authorization: &str) -> Self {
        Self {
            addr,
            authorization: authorization.to_owned(),
        }
    }

    /// The `Authorization` header it sends.
    pub fn authorization(&self) -> &str {
        &self.authorization
    }

    /// `method path` with a JSON body if given.
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Response {
        call(self.addr, &self.authorization, method, path, body).await
    }

    /// [`call`](Self::call) with the body's bytes as they are.
    pub async fn call_raw(&self, method: &str, path: &str, body: &[u8]) -> Response {
        call_raw(self.addr, &self.authorization, method, path, body).await
    }

    /// `method path` with these headers besides the token, and `body`.
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut headers = vec![("Authorization", self.authorization.as_str())];
        headers.extend_from_slice(extra);
        request(self.addr, method, path, &headers, body).await
    }

    /// Creates a destination posting to `url`; checks the documented 201.
    /// Its id and bearer secret.
    pub async fn create(&self, name: &str, url: &str) -> (String, String) {
        let body = json!({"name": name, "url": url});
        let response = self.call("POST", CREATE_PATH, Some(&body)).await;
        assert_eq!(response.status, 201, "{}", response.text());
        assert_documented("POST", CREATE_PATH, &response);
        let body = response.json();
        (
            body["destinationId"].as_str().unwrap().to_owned(),
            body["bearerSecret"].as_str().unwrap().to_owned(),
        )
    }

    /// Reads a destination; checks the documented 200.
    pub async fn get(&self, id: &str) -> Value {
        let response = self.call("GET", &item(id), None).await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert_documented("GET", ITEM, &response);
        response.json()
    }

    /// Enables or disables a destination; checks the documented 200 and
    /// returns its view.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Value {
        let body = json!({ "enabled": enabled });
        let response = self.call("PATCH", &item(id), Some(&body)).await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert_documented("PATCH", ITEM, &response);
        response.json()
    }

    /// Posts `body` to [`EVENTS`], whatever the answer; checks it against
    /// the document.
    pub async fn post_event(&self, body: &Value) -> Response {
        let response = self.call("POST", EVENTS, Some(body)).await;
        assert_documented("POST", EVENTS, &response);
        response
    }

    /// Publishes `{"type": event_type, "payload": <payload>}` (the body
    /// written by hand, so the payload's bytes are exactly `payload`);
    /// checks the documented 202 for `queued` destinations and returns its
    /// body.
    pub async fn publish(&self, event_type: &str, payload: &str, queued: u64) -> Value {
        let body = format!("{{\"type\":\"{event_type}\",\"payload\":{payload}}}");
        let response = self.call_raw("POST", EVENTS, body.as_bytes()).await;
        assert_eq!(response.status, 202, "{}", response.text());
        assert_documented("POST", EVENTS, &response);
        let accepted = response.json();
        assert_eq!(accepted["type"], json!(event_type));
        assert_eq!(accepted["destinations"], json!(queued), "{accepted}");
        accepted
    }

    /// The attempts route's first page (up to 100), newest first; checks the
    /// documented 200 and that it is the only page.
    pub async fn attempts(&self, id: &str) -> Vec<Value> {
        let response = self
            .call("GET", &format!("{}?limit=100", attempts_path(id)), None)
            .await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert_documented("GET", ATTEMPTS, &response);
        let page = response.json();
        assert_eq!(page["hasMore"], json!(false));
        page["data"].as_array().unwrap().clone()
    }

    /// Polls the attempts route until `id` has `n` attempts (more is a
    /// failure), within `bound`; `context` (a server's log, say) is shown
    /// if they do not come.
    pub async fn wait_attempts(
        &self,
        id: &str,
        n: usize,
        bound: Duration,
        context: impl Fn() -> String,
    ) -> Vec<Value> {
        let deadline = Instant::now() + bound;
        loop {
            let attempts = self.attempts(id).await;
            assert!(attempts.len() <= n, "more than {n} attempts: {attempts:#?}");
            if attempts.len() == n {
                return attempts;
            }
            assert!(
                Instant::now() < deadline,
                "{n} attempts not recorded within {bound:?}: {attempts:#?}\n{}",
                context()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
