//! Delivery end to end, through the public HTTP API only: a server
//! configured with the flags an operator writes (`--delivery-root-cert`,
//! `--allow-private-destinations 127.0.0.1/32`, `--retry-schedule`,
//! `--api-token`), destinations created and events published over HTTP, an
//! HTTPS receiver on 127.0.0.1 with a certificate made here, and the
//! attempts read back from the attempts route. This proves the wiring
//! between the routes, the publish wake-up, the worker and the flags.
//!
//! The server is either the real binary (the happy path, `kill -9` and the
//! allow-list check) or, for the other scenarios, started in-process with
//! `spawn` on a `Config` parsed from the same command-line flags.

use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser as _;
use prets_destinations::Timestamp;
use prets_destinations_server::{Config, Running, mint_token, spawn, token_digest};
use serde_json::{Value, json};

use crate::support::client::{Client, EVENTS, ITEM, ROTATE, TEST, item};
use crate::support::process::ServerProcess;
use crate::support::receiver::{Options, Receiver, Recorded, Reply};
use crate::support::{CREATE_PATH, TempDir, assert_documented};

/// How long a delivery may take to arrive on a loaded machine.
const ARRIVAL: Duration = Duration::from_secs(20);

/// A payload with whitespace, escapes and non-ASCII text, sent as these
/// exact bytes: the delivery must carry them unchanged.
const PAYLOAD: &str = r#"{ "amount" : 12.50, "note":"ünïcode \u00e9 \"q\" PAYLOAD-MARKER", "list":[1, 2,3], "n":null }"#;

/// The server under test: the binary, or `spawn` in this process.
enum Process {
    Binary(ServerProcess),
    InProcess(Running),
}

/// A running server, called as its organization `org_a`.
struct Node {
    client: Client,
    process: Option<Process>,
}

/// The flags every node here gets: its database in `dir`, one organization
/// `org_a` with `token`, and a delivery timeout of a few seconds; `extra`
/// adds the delivery flags of the scenario.
fn flags(dir: &TempDir, token: &str, extra: &[&str]) -> Vec<String> {
    let hex: String = token_digest(token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let database = dir.path().join("e2e.sqlite3");
    let mut args: Vec<String> = vec![
        "--database".into(),
        database.to_str().unwrap().into(),
        "--api-token".into(),
        format!("org_a={hex}"),
        "--delivery-timeout".into(),
        "3s".into(),
        "--delivery-connect-timeout".into(),
        "2s".into(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args
}

/// Writes `pem` to a file in `dir` and returns its path, for
/// `--delivery-root-cert`.
fn pem_file(dir: &TempDir, name: &str, pem: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, pem).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The delivery flags of most scenarios: trust `rx`, admit 127.0.0.1,
/// retry on `schedule`.
fn delivery_flags(dir: &TempDir, rx: &Receiver, schedule: &str) -> Vec<String> {
    vec![
        "--delivery-root-cert".into(),
        pem_file(dir, "receiver.pem", &rx.cert_pem),
        "--allow-private-destinations".into(),
        "127.0.0.1/32".into(),
        "--retry-schedule".into(),
        schedule.into(),
    ]
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

impl Node {
    /// Runs the binary in `dir` with `args` (only the flags count) and
    /// waits until it listens.
    fn binary(dir: &TempDir, token: &str, args: &[String]) -> Self {
        Self::binary_with_env(dir, token, args, &[])
    }

    /// [`Node::binary`] with the environment variables `env` set too.
    fn binary_with_env(dir: &TempDir, token: &str, args: &[String], env: &[(&str, &str)]) -> Self {
        let process = ServerProcess::start_with_env(dir, &as_strs(args), env);
        Self {
            client: Client::new(process.addr, token),
            process: Some(Process::Binary(process)),
        }
    }

    /// Parses `args` as the binary would and starts that configuration in
    /// this process.
    async fn in_process(token: &str, args: &[String]) -> Self {
        let config = Config::try_parse_from(
            ["prets-destinations-server", "--listen", "127.0.0.1:0"]
                .into_iter()
                .chain(args.iter().map(String::as_str)),
        )
        .unwrap();
        let running = spawn(&config).await.unwrap();
        Self {
            client: Client::new(running.addr, token),
            process: Some(Process::InProcess(running)),
        }
    }

    /// The binary's output so far ("" in process).
    fn log(&self) -> String {
        match &self.process {
            Some(Process::Binary(process)) => process.output(),
            _ => String::new(),
        }
    }

    /// `kill -9`: no shutdown, no lease released.
    fn kill_9(&mut self) {
        match self.process.take() {
            Some(Process::Binary(mut process)) => process.kill_9(),
            _ => panic!("only the binary is killed"),
        }
    }

    /// Stops the server gracefully (SIGTERM for the binary) and checks it
    /// exits cleanly.
    async fn stop(mut self) {
        match self.process.take() {
            Some(Process::Binary(process)) => process.stop().await,
            Some(Process::InProcess(running)) => running.stop().await.unwrap(),
            None => {}
        }
    }

    /// Waits until `id` has `n` attempts (more is a failure), at most
    /// [`ARRIVAL`].
    async fn wait_attempts(&self, id: &str, n: usize) -> Vec<Value> {
        self.client
            .wait_attempts(id, n, ARRIVAL, || self.log())
            .await
    }
}

impl Deref for Node {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

/// Time for a wrong extra delivery to show up before checking there is
/// none: longer than the gaps of the schedules used here.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

/// The exact body every delivery of the accepted event `accepted` with
/// `payload` carries.
fn expected_body(accepted: &Value, payload: &str) -> Vec<u8> {
    format!(
        "{{\"eventId\":\"{}\",\"type\":\"{}\",\"createdAt\":\"{}\",\"payload\":{payload}}}",
        accepted["eventId"].as_str().unwrap(),
        accepted["type"].as_str().unwrap(),
        accepted["createdAt"].as_str().unwrap(),
    )
    .into_bytes()
}

fn seconds(value: &Value) -> u64 {
    Timestamp::try_from(value.as_str().unwrap())
        .unwrap()
        .unix_seconds()
}

// ---------------------------------------------------------------------------
// 1. The binary delivers an event once per destination, with that
//    destination's secret, the event id and the payload unchanged.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_delivers_each_event_once_with_the_secret_the_id_and_the_payload() {
    let dir = TempDir::new();
    let rx = Receiver::start(Options::default()).await;
    let token = mint_token();
    let args = flags(&dir, &token, &as_strs(&delivery_flags(&dir, &rx, "1s")));
    let node = Node::binary(&dir, &token, &args);
    let (one, one_secret) = node.create("one", &rx.ip_url("/hooks/one?x=1")).await;
    let (two, two_secret) = node.create("two", &rx.ip_url("/hooks/two")).await;
    assert_ne!(one_secret, two_secret);

    let before = Timestamp::try_from(std::time::SystemTime::now())
        .unwrap()
        .unix_seconds();
    let accepted = node.publish("invoice.paid", PAYLOAD, 2).await;
    let event_id = accepted["eventId"].as_str().unwrap().to_owned();
    let requests = rx.wait_for(2, ARRIVAL).await;
    let attempts_one = node.wait_attempts(&one, 1).await;
    let attempts_two = node.wait_attempts(&two, 1).await;
    settle().await;
    assert_eq!(rx.requests().len(), 2, "once per destination, no more");

    let expected = expected_body(&accepted, PAYLOAD);
    for (path, secret) in [("/hooks/one?x=1", &one_secret), ("/hooks/two", &two_secret)] {
        let mine: Vec<&Recorded> = requests.iter().filter(|r| r.target == path).collect();
        assert_eq!(mine.len(), 1, "{path}");
        let r = mine[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("authorization"), format!("Bearer {secret}"));
        assert_eq!(r.header("webhook-id"), event_id);
        assert_eq!(r.header("content-type"), "application/json");
        let stamp: u64 = r.header("webhook-timestamp").parse().unwrap();
        assert!(stamp >= before && stamp <= before + 60, "{stamp}");
        // The exact bytes: the payload as it was sent, inside the envelope.
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            String::from_utf8_lossy(&expected)
        );
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            body["payload"],
            serde_json::from_str::<Value>(PAYLOAD).unwrap()
        );
        assert_eq!(body["eventId"], json!(event_id));
        assert_eq!(body["type"], json!("invoice.paid"));
    }
    for attempts in [&attempts_one, &attempts_two] {
        let a = &attempts[0];
        assert_eq!(a["eventId"], json!(event_id));
        assert_eq!(a["attempt"], json!(1));
        assert_eq!(a["outcome"], json!("succeeded"));
        assert_eq!(a["responseStatus"], json!(204));
        assert_eq!(a["nextAttemptAt"], Value::Null);
    }

    let log = node.log();
    assert!(
        log.contains(&one),
        "one line per attempt names the destination"
    );
    for secret in [&one_secret, &two_secret] {
        assert!(
            !log.contains(&secret["whsec_".len()..]),
            "a secret was logged"
        );
    }
    assert!(!log.contains(token.as_str()), "the token was logged");
    assert!(!log.contains("PAYLOAD-MARKER"), "the payload was logged");
    node.stop().await;
}

// ---------------------------------------------------------------------------
// 2. 500, 500, 200: three attempts of one event, shown by the attempts route.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_on_the_flag_schedule_and_listed_newest_first() {
    let dir = TempDir::new();
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(500));
    rx.reply(Reply::status(500));
    rx.reply(Reply::status(200));
    let token = mint_token();
    let args = flags(
        &dir,
        &token,
        &as_strs(&delivery_flags(&dir, &rx, "1s,1s,1s")),
    );
    let node = Node::in_process(&token, &args).await;
    let (id, secret) = node.create("flaky", &rx.ip_url("/flaky")).await;
    let accepted = node.publish("invoice.paid", PAYLOAD, 1).await;
    let event_id = accepted["eventId"].as_str().unwrap().to_owned();

    let attempts = node.wait_attempts(&id, 3).await;
    settle().await;
    let requests = rx.requests();
    assert_eq!(requests.len(), 3, "no attempt after the success");
    let expected = expected_body(&accepted, PAYLOAD);
    for r in &requests {
        assert_eq!(r.header("webhook-id"), event_id);
        assert_eq!(r.header("authorization"), format!("Bearer {secret}"));
        assert_eq!(r.body, expected, "every retry sends the same bytes");
    }
    // The schedule's 1 s waits, counted from the end of the failed attempt.
    for pair in requests.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(900), "{gap:?}");
    }

    let numbers: Vec<&Value> = attempts.iter().map(|a| &a["attempt"]).collect();
    assert_eq!(numbers, [&json!(3), &json!(2), &json!(1)], "newest first");
    let outcomes: Vec<&Value> = attempts.iter().map(|a| &a["outcome"]).collect();
    assert_eq!(
        outcomes,
        [&json!("succeeded"), &json!("failed"), &json!("failed")]
    );
    let statuses: Vec<&Value> = attempts.iter().map(|a| &a["responseStatus"]).collect();
    assert_eq!(statuses, [&json!(200), &json!(500), &json!(500)]);
    assert!(attempts.iter().all(|a| a["eventId"] == json!(event_id)));
    assert_eq!(attempts[0]["nextAttemptAt"], Value::Null);
    for failed in &attempts[1..] {
        let next = seconds(&failed["nextAttemptAt"]);
        let started = seconds(&failed["startedAt"]);
        assert!(
            (started..=started + 5).contains(&next),
            "{failed}: the next attempt 1 s after this one"
        );
    }
    // Distinct attempt ids.
    let mut ids: Vec<&str> = attempts
        .iter()
        .map(|a| a["attemptId"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    node.stop().await;
}

// ---------------------------------------------------------------------------
// 3. POST /test reaches that destination alone.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_event_reaches_that_destination_alone() {
    let dir = TempDir::new();
    let rx = Receiver::start(Options::default()).await;
    let token = mint_token();
    let args = flags(&dir, &token, &as_strs(&delivery_flags(&dir, &rx, "1s")));
    let node = Node::in_process(&token, &args).await;
    let (target, secret) = node.create("target", &rx.ip_url("/target")).await;
    let (bystander, _) = node.create("bystander", &rx.ip_url("/bystander")).await;

    let response = node
        .call("POST", &format!("{}/test", item(&target)), None)
        .await;
    assert_eq!(response.status, 202, "{}", response.text());
    assert_documented("POST", TEST, &response);
    let accepted = response.json();
    assert_eq!(accepted["type"], json!("destination.test"));
    assert_eq!(accepted["destinations"], json!(1));
    let event_id = accepted["eventId"].as_str().unwrap().to_owned();

    let got = rx.wait_for(1, ARRIVAL).await;
    let attempts = node.wait_attempts(&target, 1).await;
    settle().await;
    let requests = rx.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(got[0].target, "/target");
    assert_eq!(got[0].header("webhook-id"), event_id);
    assert_eq!(got[0].header("authorization"), format!("Bearer {secret}"));
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["type"], json!("destination.test"));
    assert_eq!(body["eventId"], json!(event_id));
    assert_eq!(attempts[0]["eventId"], json!(event_id));
    assert_eq!(attempts[0]["outcome"], json!("succeeded"));
    assert!(node.attempts(&bystander).await.is_empty());
    node.stop().await;
}

// ---------------------------------------------------------------------------
// 3b. A client's eventId: 16 identical publishes at once are one event,
//     delivered once; a retry after the delivery sends nothing.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_of_one_event_id_are_delivered_once() {
    const ID: &str = "evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFG";
    let dir = TempDir::new();
    let rx = Receiver::start(Options::default()).await;
    let token = mint_token();
    let args = flags(&dir, &token, &as_strs(&delivery_flags(&dir, &rx, "1s")));
    let node = Node::in_process(&token, &args).await;
    let (target, _) = node.create("target", &rx.ip_url("/target")).await;
    let body = format!(r#"{{"eventId":"{ID}","type":"invoice.paid","payload":{PAYLOAD}}}"#);
    let mut racing = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (client, body) = (node.client.clone(), body.clone());
        racing.spawn(async move { client.call_raw("POST", EVENTS, body.as_bytes()).await });
    }
    let answers = racing.join_all().await;
    let first = answers[0].json();
    for answer in &answers {
        assert_eq!(answer.status, 202, "{}", answer.text());
        assert_documented("POST", EVENTS, answer);
        assert_eq!(answer.json(), first);
    }
    assert_eq!(first["eventId"], json!(ID));
    assert_eq!(first["destinations"], json!(1));

    let got = rx.wait_for(1, ARRIVAL).await;
    let attempts = node.wait_attempts(&target, 1).await;
    assert_eq!(attempts[0]["outcome"], json!("succeeded"));
    // Its deliveries are done: a retry now still answers the first 202.
    let retry = node.call_raw("POST", EVENTS, body.as_bytes()).await;
    assert_eq!(retry.status, 202, "{}", retry.text());
    assert_eq!(retry.json(), first);
    settle().await;
    let requests = rx.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(got[0].header("webhook-id"), ID);
    assert_eq!(got[0].body, expected_body(&first, PAYLOAD));
    assert_eq!(node.attempts(&target).await.len(), 1);
    node.stop().await;
}

// ---------------------------------------------------------------------------
// 4. 410 disables; a disabled destination gets nothing; re-enabling works.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_destination_until_it_is_enabled_again() {
    let dir = TempDir::new();
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(410));
    let token = mint_token();
    let args = flags(&dir, &token, &as_strs(&delivery_flags(&dir, &rx, "1s")));
    let node = Node::in_process(&token, &args).await;
    let (id, _) = node.create("gone", &rx.ip_url("/gone")).await;
    node.publish("invoice.paid", PAYLOAD, 1).await;

    let attempts = node.wait_attempts(&id, 1).await;
    assert_eq!(attempts[0]["responseStatus"], json!(410));
    assert_eq!(attempts[0]["nextAttemptAt"], Value::Null, "no retry");
    let view = node.get(&id).await;
    assert_eq!(view["enabled"], json!(false));
    assert_eq!(view["disabledReason"], json!("gone"));
    let list = node.call("GET", CREATE_PATH, None).await.json();
    assert_eq!(list["data"][0]["disabledReason"], json!("gone"));

    // Disabled: a publish queues nothing for it, a test is refused, and
    // nothing arrives.
    node.publish("invoice.paid", PAYLOAD, 0).await;
    let response = node
        .call("POST", &format!("{}/test", item(&id)), None)
        .await;
    assert_eq!(response.status, 409, "{}", response.text());
    assert_documented("POST", TEST, &response);
    settle().await;
    assert_eq!(rx.requests().len(), 1);
    assert_eq!(node.attempts(&id).await.len(), 1);

    let response = node
        .call("PATCH", &item(&id), Some(&json!({"enabled": true})))
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_documented("PATCH", ITEM, &response);
    assert_eq!(response.json()["enabled"], json!(true));
    assert_eq!(response.json()["disabledReason"], Value::Null);
    let accepted = node.publish("invoice.paid", PAYLOAD, 1).await;
    let got = rx.wait_for(2, ARRIVAL).await;
    assert_eq!(
        got[1].header("webhook-id"),
        accepted["eventId"].as_str().unwrap()
    );
    let attempts = node.wait_attempts(&id, 2).await;
    assert_eq!(attempts[0]["eventId"], accepted["eventId"]);
    assert_eq!(attempts[0]["outcome"], json!("succeeded"));
    assert_eq!(node.get(&id).await["enabled"], json!(true));
    node.stop().await;
}

// ---------------------------------------------------------------------------
// 5. After a rotation, the next attempt (a retry included) carries the new
//    secret.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rotation_attempts_carry_the_new_secret() {
    let dir = TempDir::new();
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(500));
    let token = mint_token();
    // A 3 s wait before the retry: the rotation lands in between.
    let args = flags(&dir, &token, &as_strs(&delivery_flags(&dir, &rx, "3s")));
    let node = Node::in_process(&token, &args).await;
    let (id, old_secret) = node.create("rotating", &rx.ip_url("/rotating")).await;
    let first = node.publish("invoice.paid", PAYLOAD, 1).await;

    let got = rx.wait_for(1, ARRIVAL).await;
    assert_eq!(
        got[0].header("authorization"),
        format!("Bearer {old_secret}")
    );
    let response = node
        .call(
            "POST",
            &format!("{}/rotate-secret", item(&id)),
            Some(&json!({"gracePeriodSeconds": 3600})),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_documented("POST", ROTATE, &response);
    let new_secret = response.json()["bearerSecret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);

    // The retry of the first event, made after the rotation.
    let got = rx.wait_for(2, ARRIVAL).await;
    assert_eq!(
        got[1].header("webhook-id"),
        first["eventId"].as_str().unwrap()
    );
    assert_eq!(
        got[1].header("authorization"),
        format!("Bearer {new_secret}")
    );
    // A new event.
    let second = node.publish("invoice.paid", "2", 1).await;
    let got = rx.wait_for(3, ARRIVAL).await;
    assert_eq!(
        got[2].header("webhook-id"),
        second["eventId"].as_str().unwrap()
    );
    assert_eq!(
        got[2].header("authorization"),
        format!("Bearer {new_secret}")
    );
    node.stop().await;
}

// ---------------------------------------------------------------------------
// 6. kill -9 right after the 202s, with the receiver down; a restart on the
//    same database delivers every acknowledged event.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_arrives_after_kill_9_and_a_restart() {
    const EVENTS_SENT: usize = 20;
    let dir = TempDir::new();
    let token = mint_token();
    // The receiver's port is held, listening, but nothing accepts: every
    // connection waits unanswered in the backlog (the TLS handshake times
    // out), so nothing can reach a receiver before the kill.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let url = |path: &str| format!("https://127.0.0.1:{port}{path}");
    let schedule = "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s";
    let down = flags(
        &dir,
        &token,
        &[
            "--allow-private-destinations",
            "127.0.0.1/32",
            "--retry-schedule",
            schedule,
        ],
    );
    let mut node = Node::binary(&dir, &token, &down);
    let (one, _) = node.create("one", &url("/one")).await;
    let (two, _) = node.create("two", &url("/two")).await;
    let mut acknowledged = Vec::new();
    for n in 0..EVENTS_SENT {
        let accepted = node
            .publish("invoice.paid", &format!("{{\"n\":{n}}}"), 2)
            .await;
        acknowledged.push(accepted["eventId"].as_str().unwrap().to_owned());
    }
    node.kill_9();

    // The receiver comes up on the held port; the server restarts on the
    // same database, now trusting the receiver's certificate.
    let rx = Receiver::start_on(Options::default(), held);
    let mut up = down.clone();
    up.extend([
        "--delivery-root-cert".to_owned(),
        pem_file(&dir, "receiver.pem", &rx.cert_pem),
    ]);
    let node = Node::binary(&dir, &token, &up);
    let expected = 2 * EVENTS_SENT;
    let deadline = Instant::now() + Duration::from_secs(30);
    let delivered = |requests: &[Recorded]| {
        let mut pairs: Vec<(String, String)> = requests
            .iter()
            .map(|r| (r.target.clone(), r.header("webhook-id").to_owned()))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        pairs
    };
    while delivered(&rx.requests()).len() < expected {
        assert!(
            Instant::now() < deadline,
            "{} of {expected} deliveries arrived after the restart\n{}",
            delivered(&rx.requests()).len(),
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    settle().await;
    let requests = rx.requests();
    let mut wanted: Vec<(String, String)> = acknowledged
        .iter()
        .flat_map(|e| {
            [
                ("/one".to_owned(), e.clone()),
                ("/two".to_owned(), e.clone()),
            ]
        })
        .collect();
    wanted.sort_unstable();
    assert_eq!(
        delivered(&requests),
        wanted,
        "every acknowledged event, to both"
    );
    // At-least-once permits a duplicate only for an attempt that reached
    // the receiver before the kill and whose answer was never recorded.
    // Here none could reach it (nothing was accepted before the kill), so
    // every duplicate would be a fault.
    let duplicates = requests.len() - wanted.len();
    assert_eq!(duplicates, 0, "duplicates after the restart");
    for id in [&one, &two] {
        let attempts = node.attempts(id).await;
        let succeeded = attempts
            .iter()
            .filter(|a| a["outcome"] == json!("succeeded"))
            .count();
        assert_eq!(succeeded, EVENTS_SENT, "{id}");
    }
    node.stop().await;
}

/// The receiver is up but slow when the binary is killed: attempts in
/// flight reached it and were never answered. After the restart every
/// acknowledged event arrives and is answered; a delivery seen twice is one
/// the receiver had already seen before the kill (the at-least-once permit,
/// same `Webhook-Id`), and none arrives twice after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_mid_attempt_duplicates_are_only_the_attempts_cut_short() {
    const EVENTS_SENT: usize = 20;
    let dir = TempDir::new();
    let token = mint_token();
    let rx = Receiver::start(Options::default()).await;
    for _ in 0..EVENTS_SENT {
        rx.reply(Reply::status(200).delay(Duration::from_secs(60)));
    }
    // A long retry schedule: an attempt after the restart is the lease
    // running out, not a retry of a recorded failure.
    let args = flags(
        &dir,
        &token,
        &as_strs(&delivery_flags(&dir, &rx, "1s,1s,1s,1s,1s")),
    );
    let mut node = Node::binary(&dir, &token, &args);
    let (id, _) = node.create("slow", &rx.ip_url("/slow")).await;
    let mut acknowledged = Vec::new();
    for n in 0..EVENTS_SENT {
        let accepted = node
            .publish("invoice.paid", &format!("{{\"n\":{n}}}"), 1)
            .await;
        acknowledged.push(accepted["eventId"].as_str().unwrap().to_owned());
    }
    // Some attempts are under way: wait for the first to reach the receiver.
    rx.wait_for(1, ARRIVAL).await;
    node.kill_9();
    // Let receptions cut by the kill finish recording.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert!(!before.is_empty());
    rx.clear_replies();

    let node = Node::binary(&dir, &token, &args);
    let deadline = Instant::now() + Duration::from_secs(40);
    let after = |rx: &Receiver| -> Vec<String> {
        rx.requests()[before.len()..]
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect()
    };
    let mut wanted = acknowledged.clone();
    wanted.sort_unstable();
    loop {
        let mut got = after(&rx);
        got.sort_unstable();
        got.dedup();
        if got == wanted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {EVENTS_SENT} events arrived after the restart\n{}",
            got.len(),
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    settle().await;
    let mut after = after(&rx);
    after.sort_unstable();
    assert_eq!(after, wanted, "each event once after the restart");
    // The duplicates: the attempts the receiver saw before the kill, each
    // of an acknowledged event, each once; every one of them arrived again.
    let mut seen_before = before.clone();
    seen_before.sort_unstable();
    seen_before.dedup();
    assert_eq!(
        seen_before.len(),
        before.len(),
        "one attempt per event before the kill"
    );
    assert!(before.iter().all(|e| wanted.contains(e)), "{before:?}");
    let duplicates = before.len() + after.len() - wanted.len();
    assert_eq!(duplicates, before.len());
    let attempts = node.attempts(&id).await;
    let succeeded: Vec<&Value> = attempts
        .iter()
        .filter(|a| a["outcome"] == json!("succeeded"))
        .map(|a| &a["eventId"])
        .collect();
    assert_eq!(succeeded.len(), EVENTS_SENT);
    node.stop().await;
}

// ---------------------------------------------------------------------------
// 7. `--allow-private-destinations` is what admits a loopback receiver.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_allow_list_flag_admits_a_loopback_destination() {
    let token = mint_token();
    let body = json!({"name": "local", "url": "https://127.0.0.1:8443/hooks"});
    for (extra, admitted) in [
        (&[][..], false),
        (&["--allow-private-destinations", "10.0.0.0/8"][..], false),
        (
            &[
                "--allow-private-destinations",
                "127.0.0.1/32",
                "--deny-destinations",
                "127.0.0.0/8",
            ][..],
            false,
        ),
        (&["--allow-private-destinations", "127.0.0.1/32"][..], true),
    ] {
        let dir = TempDir::new();
        let node = Node::binary(&dir, &token, &flags(&dir, &token, extra));
        let response = node.call("POST", CREATE_PATH, Some(&body)).await;
        assert_documented("POST", CREATE_PATH, &response);
        if admitted {
            assert_eq!(response.status, 201, "{extra:?}: {}", response.text());
            assert!(
                node.log().contains("--allow-private-destinations"),
                "the start warns"
            );
        } else {
            assert_eq!(response.status, 422, "{extra:?}: {}", response.text());
            let problem = response.json();
            assert_eq!(problem["errors"][0]["field"], json!("url"));
            assert_eq!(problem["errors"][0]["code"], json!("non_public_address"));
        }
        node.stop().await;
    }
}

// ---------------------------------------------------------------------------
// 8. Proxy variables in the environment are never used: the delivery goes
//    straight to the checked address and the "proxy" sees no connection.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_variables_in_the_environment_are_ignored() {
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let reached = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&reached);
    let accept = tokio::spawn(async move {
        while let Ok((stream, _)) = proxy.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });

    let dir = TempDir::new();
    let rx = Receiver::start(Options::default()).await;
    let token = mint_token();
    let args = flags(&dir, &token, &as_strs(&delivery_flags(&dir, &rx, "1s")));
    let env: Vec<(&str, &str)> = [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .into_iter()
    .map(|name| (name, proxy_url.as_str()))
    .chain([("NO_PROXY", ""), ("no_proxy", "")])
    .collect();
    let node = Node::binary_with_env(&dir, &token, &args, &env);
    let (id, _) = node.create("direct", &rx.ip_url("/hooks")).await;
    node.publish("invoice.paid", PAYLOAD, 1).await;

    rx.wait_for(1, ARRIVAL).await;
    let attempts = node.wait_attempts(&id, 1).await;
    assert_eq!(attempts[0]["outcome"], json!("succeeded"));
    assert_eq!(
        reached.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the delivery went through the proxy from the environment"
    );
    node.stop().await;
    accept.abort();
}

// ---------------------------------------------------------------------------
// 9. Fairness: one organization's dead receiver does not stall another's.

/// Issue 19's scenario against the binary on the store of `store` flags:
/// organization A publishes 256 events to a receiver that accepts TLS and
/// never answers within the test (a tarpit); organization B then publishes
/// 10 to a healthy receiver. Every one of B's arrives, once, within 3 s of
/// its publish, while A's attempts are still held by the tarpit; A's
/// destination has exactly its cap, 3, of attempts in flight, set by
/// `PRETS_DESTINATION_CONCURRENCY` (the lookahead, 4, times that is
/// claimed, the 9 beyond it waiting for a slot).
async fn a_tarpit_does_not_delay_another_organization(store: &[&str]) {
    use std::collections::HashMap;
    let dir = TempDir::new();
    let tarpit = Receiver::start(Options::default()).await;
    for _ in 0..300 {
        tarpit.reply(Reply::status(200).delay(Duration::from_secs(3600)));
    }
    let healthy = Receiver::start(Options::default()).await;
    let (token_a, token_b) = (mint_token(), mint_token());
    let hex = |token: &str| -> String {
        token_digest(token)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let mut args: Vec<String> = store.iter().map(|s| (*s).to_owned()).collect();
    args.extend([
        "--api-token".into(),
        format!("org_a={}", hex(&token_a)),
        "--api-token".into(),
        format!("org_b={}", hex(&token_b)),
        // Longer than the test: no attempt of A's ends.
        "--delivery-timeout".into(),
        "60s".into(),
        "--delivery-concurrency".into(),
        "64".into(),
        "--delivery-root-cert".into(),
        pem_file(&dir, "tarpit.pem", &tarpit.cert_pem),
        "--delivery-root-cert".into(),
        pem_file(&dir, "healthy.pem", &healthy.cert_pem),
        "--allow-private-destinations".into(),
        "127.0.0.1/32".into(),
    ]);
    let mut node = Node::binary_with_env(
        &dir,
        &token_a,
        &args,
        &[("PRETS_DESTINATION_CONCURRENCY", "3")],
    );
    let b = Client::new(node.client.addr, &token_b);
    let (slow, _) = node.create("Tarpit", &tarpit.ip_url("/a")).await;
    let (fast, _) = b.create("Healthy", &healthy.ip_url("/b")).await;
    for _ in 0..256 {
        node.publish("invoice.paid", PAYLOAD, 1).await;
    }
    // A's backlog is being held: its cap of attempts is in the tarpit.
    tarpit.wait_for(3, ARRIVAL).await;

    let mut published = HashMap::new();
    for _ in 0..10 {
        let at = Instant::now();
        let accepted = b.publish("invoice.paid", PAYLOAD, 1).await;
        published.insert(accepted["eventId"].as_str().unwrap().to_owned(), at);
    }
    let arrived = healthy.wait_for(10, ARRIVAL).await;
    // The ordering fact: all of B's arrived while A's attempts were held,
    // none of them ended, and no more of A's backlog was sent.
    assert_eq!(
        tarpit.requests().len(),
        3,
        "A's destination went past its cap of attempts in flight\n{}",
        node.log()
    );
    assert!(
        node.attempts(&slow).await.is_empty(),
        "an attempt of A's ended: the tarpit did not hold it"
    );
    let mut slowest = Duration::ZERO;
    for request in &arrived {
        let id = request.header("webhook-id");
        let at = published
            .remove(id)
            .unwrap_or_else(|| panic!("{id}: not one of B's events, or delivered twice"));
        slowest = slowest.max(request.at.duration_since(at));
    }
    assert!(
        published.is_empty(),
        "B's events not delivered: {published:?}"
    );
    assert!(
        slowest <= Duration::from_secs(3),
        "B's slowest delivery arrived {slowest:?} after its publish"
    );
    let attempts = b.wait_attempts(&fast, 10, ARRIVAL, || node.log()).await;
    assert!(attempts.iter().all(|a| a["outcome"] == json!("succeeded")));
    // A graceful stop would wait out the tarpit's 60 s timeout.
    node.kill_9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_on_memory_delivers_another_organization_beside_a_tarpit() {
    a_tarpit_does_not_delay_another_organization(&["--memory"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_on_postgres_delivers_another_organization_beside_a_tarpit() {
    use std::os::unix::fs::PermissionsExt as _;
    let db = prets_destinations_postgres::test_support::TestDb::new();
    let keys = TempDir::new();
    let key = keys.path().join("sealing-key");
    std::fs::write(&key, format!("1 {}\n", "5a".repeat(32))).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let url = db.url();
    let key = key.to_str().unwrap();
    a_tarpit_does_not_delay_another_organization(&["--database", &url, "--sealing-key-file", key])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_on_sqlite_delivers_another_organization_beside_a_tarpit() {
    let db = TempDir::new();
    let path = db.path().join("tarpit.sqlite3");
    a_tarpit_does_not_delay_another_organization(&["--database", path.to_str().unwrap()]).await;
}
