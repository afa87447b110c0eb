//! The delivery client over real HTTPS on loopback: what arrives, which
//! answers surface, and that no address outside the policy is ever connected
//! to.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::Version;
use prets_destinations::delivery::{
    Classification, DeliveryRequest, Event, Failure, FailureCause, TransportError, USER_AGENT,
    classify, plan_attempt,
};
use prets_destinations::{
    CreateDestinationRequest, DestinationUrl, HostPolicy, KeyId, Keyring, SealingKey, TenantId,
    Timestamp,
};
use prets_destinations_server::DeliveryConfig;
use prets_destinations_server::delivery::{
    DeliveryClient, Outcome, Resolve, Resolving, parse_root_certificates,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng as _;

use crate::support::receiver::{self, Options, Receiver, Reply};
use crate::support::resolver::Stub;

const NOW: u64 = 1_700_000_000;

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_seconds(secs).unwrap()
}

/// A planned attempt to `url`, the secret it carries and its event.
fn planned(url: &str) -> (DeliveryRequest, String, Event) {
    let org: TenantId = "org_a".parse().unwrap();
    let ring = Keyring::new(SealingKey::new(KeyId::new(1), &[0x11; 32]), []).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut plan = CreateDestinationRequest::new("Production", "https://example.com/prets/events")
        .validate()
        .unwrap()
        .plan(&org, at(NOW - 100), &mut rng, ring.current());
    // The stored URL may name an address the create-time policy refuses: the
    // delivery-time policy is what this file tests.
    plan.record.url = DestinationUrl::from_stored(url.to_owned()).unwrap();
    let event = Event::new(
        "invoice.paid",
        r#"{"amount": 12.50, "note": "ünïcode"}"#.to_owned(),
        at(NOW),
        &mut rng,
    )
    .unwrap();
    let request = plan_attempt(&org, &plan.record, &ring, &event, 1, at(NOW + 1)).unwrap();
    let secret = plan.response.bearer_secret().expose_secret().to_owned();
    (request, secret, event)
}

fn loopback_allowed() -> HostPolicy {
    HostPolicy::new().allow("127.0.0.1/32".parse().unwrap())
}

fn config(policy: HostPolicy, trusted: Option<&Receiver>) -> DeliveryConfig {
    DeliveryConfig {
        policy,
        root_certificates: trusted
            .map(|r| parse_root_certificates(r.cert_pem.as_bytes()).unwrap())
            .unwrap_or_default(),
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        ..DeliveryConfig::default()
    }
}

fn client(config: &DeliveryConfig) -> DeliveryClient {
    let (stub, _) = Stub::new(&["127.0.0.1"]);
    DeliveryClient::new(config, stub).unwrap()
}

fn status_of(outcome: &Outcome) -> u16 {
    match outcome {
        Outcome::Response { status, .. } => *status,
        Outcome::Failed { error, detail } => panic!("no answer: {error:?} {detail}"),
    }
}

fn failure_of(outcome: &Outcome) -> TransportError {
    match outcome {
        Outcome::Failed { error, .. } => *error,
        Outcome::Response { status, .. } => panic!("answered {status}"),
    }
}

#[tokio::test]
async fn a_post_arrives_with_exactly_the_planned_headers_and_body() {
    let rx = Receiver::start(Options { h2: false }).await;
    rx.reply(Reply::status(200));
    let (stub, calls) = Stub::new(&["127.0.0.1"]);
    let client = DeliveryClient::new(&config(loopback_allowed(), Some(&rx)), stub).unwrap();
    let (request, secret, event) = planned(&rx.name_url("/prets/events?source=test"));

    let outcome = client.send(&request).await;

    assert_eq!(
        outcome,
        Outcome::Response {
            status: 200,
            retry_after: None
        }
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let got = rx.requests();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/prets/events?source=test");
    assert_eq!(r.version, Version::HTTP_11);
    assert_eq!(r.header("authorization"), format!("Bearer {secret}"));
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("webhook-id"), event.event_id.to_string());
    assert_eq!(r.header("webhook-timestamp"), (NOW + 1).to_string());
    assert_eq!(r.header("user-agent"), USER_AGENT);
    assert_eq!(
        r.header("host"),
        format!("{}:{}", receiver::HOST, rx.addr.port())
    );
    assert_eq!(
        r.header("content-length"),
        event.delivery_body().len().to_string()
    );
    assert_eq!(r.body, event.delivery_body());
    assert_eq!(r.body, request.body());
    // Nothing else is sent: no Referer, no proxy or cookie headers.
    let names: Vec<&str> = r.headers.keys().map(|k| k.as_str()).collect();
    for name in &names {
        assert!(
            [
                "authorization",
                "content-type",
                "webhook-id",
                "webhook-timestamp",
                "user-agent",
                "host",
                "content-length",
                "accept"
            ]
            .contains(name),
            "unexpected header {name}"
        );
    }
}

#[tokio::test]
async fn statuses_surface_and_the_core_classifies_them() {
    let rx = Receiver::start(Options::default()).await;
    let client = client(&config(loopback_allowed(), Some(&rx)));
    let (request, _, _) = planned(&rx.ip_url("/hook"));
    for (status, expected) in [
        (200, Classification::Delivered { status: 200 }),
        (
            500,
            Classification::Failed(Failure {
                cause: FailureCause::Status(500),
                retry_after: None,
            }),
        ),
        (410, Classification::Gone),
        (204, Classification::Delivered { status: 204 }),
    ] {
        rx.reply(Reply::status(status));
        let outcome = client.send(&request).await;
        assert_eq!(status_of(&outcome), status);
        assert_eq!(classify(outcome.answer(), at(NOW)), expected);
    }
    assert_eq!(rx.requests().len(), 4);
}

#[tokio::test]
async fn a_redirect_is_an_answer_and_is_not_followed() {
    let target = Receiver::start(Options::default()).await;
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(307).header("location", &target.ip_url("/elsewhere")));
    let client = client(&config(loopback_allowed(), Some(&rx)));
    let (request, _, _) = planned(&rx.ip_url("/hook"));

    let outcome = client.send(&request).await;

    assert_eq!(status_of(&outcome), 307);
    let Classification::Failed(failure) = classify(outcome.answer(), at(NOW)) else {
        panic!("a redirect is not a delivery");
    };
    assert_eq!(failure.cause.to_string(), "redirect 307 not followed");
    assert_eq!(rx.requests().len(), 1);
    assert_eq!(target.connections(), 0);
    assert!(target.requests().is_empty());
}

#[tokio::test]
async fn retry_after_surfaces_on_503() {
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(503).header("retry-after", "120"));
    let client = client(&config(loopback_allowed(), Some(&rx)));
    let (request, _, _) = planned(&rx.ip_url("/hook"));

    let outcome = client.send(&request).await;

    assert_eq!(
        outcome,
        Outcome::Response {
            status: 503,
            retry_after: Some(b"120".to_vec())
        }
    );
    assert_eq!(
        classify(outcome.answer(), at(NOW)),
        Classification::Failed(Failure {
            cause: FailureCause::Status(503),
            retry_after: Some(Duration::from_secs(120)),
        })
    );
}

#[tokio::test]
async fn an_endless_response_body_is_not_read_past_the_cap() {
    for h2 in [false, true] {
        let rx = Receiver::start(Options { h2 }).await;
        rx.reply(Reply::status(200).endless());
        let client = client(&config(loopback_allowed(), Some(&rx)));
        let (request, _, _) = planned(&rx.ip_url("/hook"));

        // Reading the body to its end would never finish: the answer comes
        // back with its status, not as a timeout.
        let outcome = client.send(&request).await;

        assert_eq!(status_of(&outcome), 200, "h2: {h2}");
        // What the receiver managed to hand over is bounded by socket and
        // flow-control buffers, not by the body.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = rx.body_bytes_sent();
        assert!(sent < 32 * 1024 * 1024, "h2: {h2}: {sent} bytes went out");
    }
}

#[tokio::test]
async fn a_slow_receiver_hits_the_total_timeout() {
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(200).delay(Duration::from_secs(30)));
    let mut config = config(loopback_allowed(), Some(&rx));
    config.timeout = Duration::from_millis(500);
    let client = client(&config);
    let (request, _, _) = planned(&rx.ip_url("/hook"));

    let outcome = client.send(&request).await;

    assert_eq!(failure_of(&outcome), TransportError::Timeout);
    assert_eq!(rx.requests().len(), 1, "the request did arrive");
}

#[tokio::test]
async fn http2_is_used_when_the_receiver_offers_it_by_alpn() {
    for (h2, version) in [(true, Version::HTTP_2), (false, Version::HTTP_11)] {
        let rx = Receiver::start(Options { h2 }).await;
        let client = client(&config(loopback_allowed(), Some(&rx)));
        let (request, secret, event) = planned(&rx.ip_url("/hook"));
        let outcome = client.send(&request).await;
        assert_eq!(status_of(&outcome), 204);
        let got = rx.requests();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].version, version);
        assert_eq!(got[0].header("authorization"), format!("Bearer {secret}"));
        assert_eq!(got[0].body, event.delivery_body());
    }
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_without_a_connection() {
    let rx = Receiver::start(Options::default()).await;
    let (request, secret, _) = planned(&rx.name_url("/hook"));
    for answers in [
        &["127.0.0.1"][..],
        &["93.184.215.14", "127.0.0.1"],
        &["::1"],
        &["::ffff:127.0.0.1"],
    ] {
        let (stub, calls) = Stub::new(answers);
        let client = DeliveryClient::new(&config(HostPolicy::new(), Some(&rx)), stub).unwrap();

        let outcome = client.send(&request).await;

        assert_eq!(failure_of(&outcome), TransportError::Refused, "{answers:?}");
        assert!(calls.load(Ordering::SeqCst) >= 1);
        let Outcome::Failed { detail, .. } = &outcome else {
            unreachable!()
        };
        assert!(detail.contains("not allowed"), "{detail}");
        assert!(!detail.contains(&secret), "{detail}");
        assert!(!format!("{outcome:?}").contains(&secret));
        assert_eq!(
            classify(outcome.answer(), at(NOW)),
            Classification::Failed(Failure {
                cause: FailureCause::Transport(TransportError::Refused),
                retry_after: None,
            })
        );
    }
    assert_eq!(rx.connections(), 0);
    assert!(rx.requests().is_empty());
}

#[tokio::test]
async fn a_literal_loopback_url_is_refused_without_a_connection() {
    let rx = Receiver::start(Options::default()).await;
    let (stub, calls) = Stub::new(&["127.0.0.1"]);
    let client = DeliveryClient::new(&config(HostPolicy::new(), Some(&rx)), stub).unwrap();
    for url in [
        rx.ip_url("/hook"),
        // Other spellings the URL parser reads as 127.0.0.1.
        format!("https://127.1:{}/hook", rx.addr.port()),
        format!("https://2130706433:{}/hook", rx.addr.port()),
        format!("https://0x7f.0.0.1:{}/hook", rx.addr.port()),
    ] {
        let (request, _, _) = planned(&url);
        let outcome = client.send(&request).await;
        assert_eq!(failure_of(&outcome), TransportError::Refused, "{url}");
    }
    // A denied network is refused even when allowed by a wider rule.
    let denied = loopback_allowed().deny("127.0.0.1/32".parse().unwrap());
    let (stub, _) = Stub::new(&["127.0.0.1"]);
    let client2 = DeliveryClient::new(&config(denied, Some(&rx)), stub).unwrap();
    let (request, _, _) = planned(&rx.ip_url("/hook"));
    assert_eq!(
        failure_of(&client2.send(&request).await),
        TransportError::Refused
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no lookup for a literal");
    assert_eq!(rx.connections(), 0);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_as_tls() {
    let rx = Receiver::start(Options::default()).await;
    let client = client(&config(loopback_allowed(), None));
    let (request, secret, _) = planned(&rx.ip_url("/hook"));

    let outcome = client.send(&request).await;

    assert_eq!(failure_of(&outcome), TransportError::Tls);
    assert!(!format!("{outcome:?}").contains(&secret));
    let Outcome::Failed { detail, .. } = &outcome else {
        unreachable!()
    };
    assert!(detail.starts_with("tls handshake failed: "), "{detail}");
    assert!(detail.contains("UnknownIssuer"), "{detail}");
    assert!(rx.requests().is_empty());
    assert_eq!(rx.connections(), 1);
}

#[tokio::test]
async fn dns_and_connect_failures_are_short_texts() {
    // A name that does not resolve.
    let rx = Receiver::start(Options::default()).await;
    let (stub, _) = Stub::failing();
    let failing = DeliveryClient::new(&config(loopback_allowed(), Some(&rx)), stub).unwrap();
    let (request, _, _) = planned(&rx.name_url("/hook"));
    let outcome = failing.send(&request).await;
    assert_eq!(failure_of(&outcome), TransportError::Dns);
    // A name with no address at all.
    let (stub, _) = Stub::new(&[]);
    let empty = DeliveryClient::new(&config(loopback_allowed(), Some(&rx)), stub).unwrap();
    assert_eq!(failure_of(&empty.send(&request).await), TransportError::Dns);

    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = client(&config(loopback_allowed(), Some(&rx)));
    let (request, _, _) = planned(&format!("https://127.0.0.1:{closed}/hook"));
    let outcome = client.send(&request).await;
    assert_eq!(failure_of(&outcome), TransportError::Connect);
    let Outcome::Failed { detail, .. } = outcome else {
        unreachable!()
    };
    assert!(
        detail.len() <= 160 && !detail.contains("127.0.0.1"),
        "{detail}"
    );
}

#[test]
fn a_pem_without_certificates_is_refused() {
    assert!(parse_root_certificates(b"").is_err());
    assert!(parse_root_certificates(b"hello").is_err());
    let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    assert!(parse_root_certificates(key.as_bytes()).is_err());
    let cert = rcgen::generate_simple_self_signed(vec!["a.example".to_owned()]).unwrap();
    let two = format!("{}{}", cert.cert.pem(), cert.cert.pem());
    assert_eq!(parse_root_certificates(two.as_bytes()).unwrap().len(), 2);
}

#[test]
fn the_server_refuses_to_start_with_a_missing_root_certificate_file() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_prets-destinations-server"))
        .args([
            "--memory",
            "--listen",
            "127.0.0.1:0",
            "--delivery-root-cert",
            "/nonexistent/private-ca.pem",
        ])
        .env_remove("PRETS_DELIVERY_ROOT_CERTS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--delivery-root-cert /nonexistent/private-ca.pem"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "no demo token is minted before the check"
    );
}

/// Never answers.
struct Hanging;

impl Resolve for Hanging {
    fn resolve(&self, _host: &str) -> Resolving {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn a_resolver_that_never_answers_is_cut_by_the_connect_timeout() {
    let rx = Receiver::start(Options::default()).await;
    let mut config = config(loopback_allowed(), Some(&rx));
    config.connect_timeout = Duration::from_millis(300);
    config.timeout = Duration::from_secs(3600);
    let client = DeliveryClient::new(&config, Arc::new(Hanging)).unwrap();
    let (request, _, _) = planned(&rx.name_url("/hook"));

    // Bounded here only so that a failure ends the test: the connect timeout,
    // not the hour-long total one, ends the attempt.
    let outcome = tokio::time::timeout(Duration::from_secs(60), client.send(&request))
        .await
        .expect("the connect timeout covers resolving");

    assert_eq!(failure_of(&outcome), TransportError::Timeout);
    assert_eq!(rx.connections(), 0);
}

#[tokio::test]
async fn a_metadata_answer_is_refused_even_when_every_network_is_allowed() {
    let rx = Receiver::start(Options::default()).await;
    let everything = HostPolicy::new()
        .allow("0.0.0.0/0".parse().unwrap())
        .allow("::/0".parse().unwrap());
    let (request, _, _) = planned(&rx.name_url("/hook"));
    for answers in [
        &["169.254.169.254"][..],
        &["127.0.0.1", "169.254.170.2"],
        &["fd00:ec2::254"],
        // The metadata address through NAT64, 6to4 and ISATAP.
        &["64:ff9b::a9fe:a9fe"],
        &["2002:a9fe:a9fe::1"],
        &["2a00:1450:4001:1::5efe:a9fe:a9fe"],
    ] {
        let (stub, _) = Stub::new(answers);
        let client = DeliveryClient::new(&config(everything.clone(), Some(&rx)), stub).unwrap();
        let outcome = client.send(&request).await;
        assert_eq!(failure_of(&outcome), TransportError::Refused, "{answers:?}");
    }
    assert_eq!(rx.connections(), 0);
    // The same policy delivers to the receiver itself.
    let (stub, _) = Stub::new(&["127.0.0.1"]);
    let client = DeliveryClient::new(&config(everything, Some(&rx)), stub).unwrap();
    assert_eq!(status_of(&client.send(&request).await), 204);
}

/// A client trusting `rx` and resolving its name to 127.0.0.1, with these
/// pool settings.
fn pooled(rx: &Receiver, idle_timeout: Duration, max_idle_per_host: u32) -> DeliveryClient {
    let mut config = config(loopback_allowed(), Some(rx));
    config.pool_idle_timeout = idle_timeout;
    config.pool_max_idle_per_host = max_idle_per_host;
    client(&config)
}

/// Waits until `done` holds; bounded at 10 s only so that a failure ends the
/// test.
async fn eventually(what: &str, done: impl FnMut() -> bool) {
    crate::support::eventually(what, Duration::from_secs(10), done).await;
}

/// Sends `request` `count` times at once and returns the statuses.
async fn send_at_once(
    client: &DeliveryClient,
    request: &Arc<DeliveryRequest>,
    count: usize,
) -> Vec<u16> {
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (client, request) = (client.clone(), Arc::clone(request));
        sends.spawn(async move { client.send(&request).await });
    }
    let mut statuses = Vec::new();
    while let Some(outcome) = sends.join_next().await {
        statuses.push(status_of(&outcome.unwrap()));
    }
    statuses
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_pool_idle_timeout() {
    // The same requests to two receivers, whose clients differ only in
    // their idle timeout. The receivers never close a connection: every
    // close counted is the client's.
    let short_rx = Receiver::start(Options { h2: false }).await;
    let long_rx = Receiver::start(Options { h2: false }).await;
    let short = pooled(&short_rx, Duration::from_millis(200), 2);
    let long = pooled(&long_rx, Duration::from_secs(3600), 2);
    let (to_short, _, _) = planned(&short_rx.name_url("/hook"));
    let (to_long, _, _) = planned(&long_rx.name_url("/hook"));

    assert_eq!(status_of(&short.send(&to_short).await), 204);
    assert_eq!(status_of(&long.send(&to_long).await), 204);
    eventually("the short pool closes its unused connection", || {
        short_rx.closed() == 1
    })
    .await;
    assert_eq!(long_rx.closed(), 0, "the long pool keeps its connection");

    assert_eq!(status_of(&short.send(&to_short).await), 204);
    assert_eq!(status_of(&long.send(&to_long).await), 204);
    assert_eq!(
        short_rx.connections(),
        2,
        "a new connection after the timeout"
    );
    assert_eq!(long_rx.connections(), 1, "the kept connection is reused");
    assert_eq!(long_rx.closed(), 0);
}

#[tokio::test]
async fn no_more_idle_connections_than_the_per_host_cap_are_kept() {
    let rx = Receiver::start(Options { h2: false }).await;
    let client = pooled(&rx, Duration::from_secs(3600), 2);
    let (request, _, _) = planned(&rx.name_url("/hook"));
    let request = Arc::new(request);

    // Six attempts at once, each answered only when all six have arrived:
    // six connections.
    for _ in 0..6 {
        rx.reply(Reply::status(204).after_requests(6));
    }
    assert_eq!(send_at_once(&client, &request, 6).await, [204; 6]);
    assert_eq!(rx.connections(), 6);
    // Two stay in the pool; the other four are closed as their attempts end.
    eventually("four connections beyond the cap are closed", || {
        rx.closed() == 4
    })
    .await;

    // The two kept ones carry the next two attempts at once.
    for _ in 0..2 {
        rx.reply(Reply::status(204).after_requests(8));
    }
    assert_eq!(send_at_once(&client, &request, 2).await, [204; 2]);
    assert_eq!(rx.connections(), 6, "both kept connections were reused");
    assert_eq!(rx.closed(), 4);

    // With a cap of 0 nothing is kept: each attempt closes its connection.
    let rx = Receiver::start(Options { h2: false }).await;
    let client = pooled(&rx, Duration::from_secs(3600), 0);
    let (request, _, _) = planned(&rx.name_url("/hook"));
    for sent in 1..=3 {
        assert_eq!(status_of(&client.send(&request).await), 204);
        assert_eq!(rx.connections(), sent);
        eventually("the connection is closed", || rx.closed() == sent).await;
    }
}
