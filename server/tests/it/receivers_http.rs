//! What receivers expect, over real HTTP and HTTPS: Standard Webhooks
//! signatures (verified by the official `standardwebhooks` crate, through a
//! rotation's grace period), event-type filters, custom headers,
//! description and metadata, from the create request to the delivery the
//! receiver gets.

use std::time::Duration;

use clap::Parser as _;
use prets_destinations::secret::SIGNING_SECRET_PATTERN;
use prets_destinations_server::{Config, Running, mint_token, spawn, token_digest};
use regex_lite::Regex;
use serde_json::{Value, json};
use standardwebhooks::Webhook;

use crate::support::client::{Client, ITEM, ROTATE, item, rotate_path};
use crate::support::receiver::{Options, Receiver, Recorded};
use crate::support::{CREATE_PATH, TempDir, assert_documented, captured_logs};

/// How long a delivery may take to arrive on a loaded machine.
const ARRIVAL: Duration = Duration::from_secs(20);

/// A server in this process for one organization, delivering to `rx` (its
/// certificate trusted, 127.0.0.1 allowed); its client.
async fn start(dir: &TempDir, rx: &Receiver) -> (Running, Client) {
    let token = mint_token();
    let hex: String = token_digest(&token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let pem = dir.path().join("receiver.pem");
    std::fs::write(&pem, &rx.cert_pem).unwrap();
    let config = Config::try_parse_from([
        "prets-destinations-server",
        "--listen",
        "127.0.0.1:0",
        "--database",
        dir.database().to_str().unwrap(),
        "--api-token",
        &format!("org_a={hex}"),
        "--delivery-root-cert",
        pem.to_str().unwrap(),
        "--allow-private-destinations",
        "127.0.0.1/32",
        "--retry-schedule",
        "1s",
    ])
    .unwrap();
    let running = spawn(&config).await.unwrap();
    let client = Client::new(running.addr, &token);
    (running, client)
}

/// Creates a destination with `body`; checks the documented 201.
async fn create(client: &Client, body: &Value) -> Value {
    let response = client.call("POST", CREATE_PATH, Some(body)).await;
    assert_eq!(response.status, 201, "{}", response.text());
    assert_documented("POST", CREATE_PATH, &response);
    response.json()
}

/// `PATCH`es `id` with `body`; checks the documented 200.
async fn patch(client: &Client, id: &str, body: &Value) -> Value {
    let response = client.call("PATCH", &item(id), Some(body)).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_documented("PATCH", ITEM, &response);
    response.json()
}

/// The `(field, code)` pairs of a 422.
fn field_errors(problem: &Value) -> Vec<(String, String)> {
    problem["errors"]
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

fn keys(body: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn official(secret: &str) -> Webhook {
    Webhook::new(secret).unwrap()
}

/// The delivery's signatures, each `v1,<base64>`.
fn signatures(r: &Recorded) -> Vec<&str> {
    r.header("webhook-signature").split(' ').collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_201_keeps_the_seed_shape_unless_a_receiver_member_is_given() {
    let dir = TempDir::new();
    let rx = Receiver::start(Options::default()).await;
    let (running, client) = start(&dir, &rx).await;
    let seed = [
        "bearerSecret",
        "createdAt",
        "destinationId",
        "name",
        "updatedAt",
        "url",
    ];
    // None of the members, or each at its default: the seed's six.
    for body in [
        json!({"name": "plain", "url": rx.ip_url("/a")}),
        json!({"name": "defaults", "url": rx.ip_url("/b"), "signing": "bearer",
               "filterTypes": [], "headers": {}, "description": "", "metadata": {}}),
    ] {
        let created = create(&client, &body).await;
        assert_eq!(keys(&created), seed, "{created}");
        let view = client.get(created["destinationId"].as_str().unwrap()).await;
        assert_eq!(view["signing"], json!("bearer"));
        assert_eq!(view["filterTypes"], json!([]));
        assert_eq!(view["headers"], json!({}));
        assert_eq!(view["description"], json!(""));
        assert_eq!(view["metadata"], json!({}));
    }

    let created = create(
        &client,
        &json!({
            "name": "signed",
            "url": rx.ip_url("/c"),
            "signing": "standard-webhooks",
            "filterTypes": ["invoice.*", "user.created"],
            "headers": {"X-Zeta": "z", "X-Alpha": "a b"},
            "description": "Billing\nteam",
            "metadata": {"team": "billing"},
        }),
    )
    .await;
    let mut with_members = seed.to_vec();
    with_members.extend([
        "description",
        "filterTypes",
        "headers",
        "metadata",
        "signing",
        "signingSecret",
    ]);
    with_members.sort_unstable();
    assert_eq!(keys(&created), with_members);
    let secret = created["signingSecret"].as_str().unwrap();
    assert!(Regex::new(SIGNING_SECRET_PATTERN).unwrap().is_match(secret));
    assert_eq!(created["signing"], json!("standard-webhooks"));
    // Headers keep the order they were sent in.
    let sent: Vec<&str> = created["headers"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(sent.contains(&"X-Zeta") && sent.contains(&"X-Alpha"));

    // Reads show `signing`, never the secret.
    let id = created["destinationId"].as_str().unwrap();
    let view = client.get(id).await;
    assert_eq!(view["signing"], json!("standard-webhooks"));
    assert_eq!(view["filterTypes"], json!(["invoice.*", "user.created"]));
    assert_eq!(view["description"], json!("Billing\nteam"));
    assert_eq!(view["metadata"], json!({"team": "billing"}));
    let list = client.call("GET", CREATE_PATH, None).await;
    for text in [view.to_string(), list.text()] {
        assert!(!text.contains(&secret["whsec_".len()..]), "{text}");
        assert!(!text.contains("signingSecret"), "{text}");
    }
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_receiver_members_are_422_naming_each_field_and_change_nothing() {
    let dir = TempDir::new();
    let rx = Receiver::start(Options::default()).await;
    let (running, client) = start(&dir, &rx).await;
    let too_many: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    let cases = [
        (json!({"signing": "hmac"}), ("signing", "invalid")),
        (json!({"signing": null}), ("signing", "type")),
        (
            json!({"filterTypes": too_many}),
            ("filterTypes", "too_many"),
        ),
        (json!({"filterTypes": ["a b"]}), ("filterTypes", "pattern")),
        (
            json!({"filterTypes": ["*.paid"]}),
            ("filterTypes", "pattern"),
        ),
        (
            json!({"filterTypes": ["a", "a"]}),
            ("filterTypes", "duplicate"),
        ),
        (json!({"filterTypes": "a"}), ("filterTypes", "type")),
        (json!({"filterTypes": [1]}), ("filterTypes", "type")),
        (
            json!({"headers": {"Authorization": "x"}}),
            ("headers", "reserved_name"),
        ),
        (
            json!({"headers": {"webhook-signature": "x"}}),
            ("headers", "reserved_name"),
        ),
        (
            json!({"headers": {"Proxy-Authorization": "x"}}),
            ("headers", "reserved_name"),
        ),
        (
            json!({"headers": {"X A": "x"}}),
            ("headers", "invalid_name"),
        ),
        (
            json!({"headers": {"X-A": "é"}}),
            ("headers", "invalid_value"),
        ),
        (
            json!({"headers": {"X-A": "v".repeat(1025)}}),
            ("headers", "value_too_long"),
        ),
        (json!({"headers": {"X-A": 1}}), ("headers", "type")),
        (
            json!({"description": "d".repeat(1025)}),
            ("description", "too_long"),
        ),
        (json!({"description": 7}), ("description", "type")),
        (
            json!({"metadata": {"": "v"}}),
            ("metadata", "key_too_short"),
        ),
        (
            json!({"metadata": {"k".repeat(41): "v"}}),
            ("metadata", "key_too_long"),
        ),
        (
            json!({"metadata": {"k": "v".repeat(501)}}),
            ("metadata", "value_too_long"),
        ),
        (json!({"metadata": []}), ("metadata", "type")),
    ];
    let existing = create(&client, &json!({"name": "kept", "url": rx.ip_url("/k")})).await;
    let id = existing["destinationId"].as_str().unwrap();
    let before = client.get(id).await;
    for (extra, (field, code)) in cases {
        let mut body = json!({"name": "x", "url": rx.ip_url("/x")});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        for (method, path, body) in [
            ("POST", CREATE_PATH.to_owned(), &body),
            ("PATCH", item(id), &extra),
        ] {
            let response = client.call(method, &path, Some(body)).await;
            assert_eq!(
                response.status,
                422,
                "{method} {extra}: {}",
                response.text()
            );
            assert_eq!(
                field_errors(&response.json()),
                [(field.to_owned(), code.to_owned())],
                "{method} {extra}"
            );
            assert!(
                !response.text().contains("vvvv") && !response.text().contains("dddd"),
                "a value was echoed"
            );
        }
    }
    // All five bad at once: every field listed, in order.
    let response = client
        .call(
            "PATCH",
            &item(id),
            Some(
                &json!({"signing": 1, "filterTypes": [""], "headers": {"Host": "h"},
                         "description": "\u{7}", "metadata": {"k": 1}}),
            ),
        )
        .await;
    assert_eq!(
        field_errors(&response.json()),
        [
            ("signing".to_owned(), "type".to_owned()),
            ("filterTypes".to_owned(), "pattern".to_owned()),
            ("headers".to_owned(), "reserved_name".to_owned()),
            ("description".to_owned(), "control_character".to_owned()),
            ("metadata".to_owned(), "type".to_owned()),
        ]
    );
    assert_eq!(client.get(id).await, before, "a refused PATCH wrote");
    let list = client.call("GET", CREATE_PATH, None).await.json();
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "a refused create wrote"
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_turns_signing_on_once_replaces_whole_maps_and_turns_it_off() {
    let dir = TempDir::new();
    let rx = Receiver::start(Options::default()).await;
    let (running, client) = start(&dir, &rx).await;
    let created = create(
        &client,
        &json!({"name": "p", "url": rx.ip_url("/p"), "metadata": {"a": "1", "b": "2"},
                "headers": {"X-One": "1"}, "filterTypes": ["a.*"]}),
    )
    .await;
    let id = created["destinationId"].as_str().unwrap();

    let on = patch(&client, id, &json!({"signing": "standard-webhooks"})).await;
    let secret = on["signingSecret"].as_str().unwrap().to_owned();
    assert!(
        Regex::new(SIGNING_SECRET_PATTERN)
            .unwrap()
            .is_match(&secret)
    );
    assert_eq!(on["signing"], json!("standard-webhooks"));
    // Asking again while on mints nothing and shows nothing.
    let again = patch(&client, id, &json!({"signing": "standard-webhooks"})).await;
    assert!(again.get("signingSecret").is_none(), "{again}");
    assert!(!client.get(id).await.to_string().contains(&secret[6..]));

    // Maps and lists given are replaced whole; absent ones are kept.
    let replaced = patch(&client, id, &json!({"metadata": {"c": "3"}})).await;
    assert_eq!(replaced["metadata"], json!({"c": "3"}));
    assert_eq!(replaced["headers"], json!({"X-One": "1"}));
    assert_eq!(replaced["filterTypes"], json!(["a.*"]));
    let cleared = patch(
        &client,
        id,
        &json!({"headers": {}, "filterTypes": [], "description": "now"}),
    )
    .await;
    assert_eq!(cleared["headers"], json!({}));
    assert_eq!(cleared["filterTypes"], json!([]));
    assert_eq!(cleared["metadata"], json!({"c": "3"}));
    assert_eq!(cleared["description"], json!("now"));

    let off = patch(&client, id, &json!({"signing": "bearer"})).await;
    assert_eq!(off["signing"], json!("bearer"));
    assert!(off.get("signingSecret").is_none());
    // On again: a new secret, not the old one.
    let on_again = patch(&client, id, &json!({"signing": "standard-webhooks"})).await;
    assert_ne!(on_again["signingSecret"].as_str().unwrap(), secret);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_filtered_and_carry_the_headers_through_a_rotation() {
    let logs = captured_logs();
    let dir = TempDir::new();
    let rx = Receiver::start(Options::default()).await;
    let (running, client) = start(&dir, &rx).await;
    let created = create(
        &client,
        &json!({
            "name": "signed",
            "url": rx.ip_url("/signed"),
            "signing": "standard-webhooks",
            "filterTypes": ["invoice.*"],
            "headers": {"X-Receiver-Key": "HEADER-VALUE-MARKER", "X-Tenant": "acme"},
        }),
    )
    .await;
    let id = created["destinationId"].as_str().unwrap();
    let old = created["signingSecret"].as_str().unwrap().to_owned();
    let plain = create(
        &client,
        &json!({"name": "plain", "url": rx.ip_url("/plain")}),
    )
    .await;

    // Filtered: only the plain destination takes `user.created`, both take
    // `invoice.paid`; the 202 counts them.
    client.publish("user.created", "{}", 1).await;
    let accepted = client.publish("invoice.paid", r#"{"n": 1}"#, 2).await;
    let requests = rx.wait_for(3, ARRIVAL).await;
    let signed: Vec<&Recorded> = requests.iter().filter(|r| r.target == "/signed").collect();
    assert_eq!(signed.len(), 1, "the filtered destination got another type");
    let r = signed[0];
    assert_eq!(
        r.header("webhook-id"),
        accepted["eventId"].as_str().unwrap()
    );
    assert_eq!(r.header("x-receiver-key"), "HEADER-VALUE-MARKER");
    assert_eq!(r.header("x-tenant"), "acme");
    assert!(
        r.header("authorization").starts_with("Bearer whsec_"),
        "the bearer secret stays beside the signature"
    );
    assert_eq!(signatures(r).len(), 1);
    // The official library verifies it; an altered body, id or timestamp
    // does not.
    official(&old).verify(&r.body, &r.headers).unwrap();
    let mut altered = r.body.clone();
    altered.push(b' ');
    assert!(official(&old).verify(&altered, &r.headers).is_err());
    let mut other_id = r.headers.clone();
    other_id.insert("webhook-id", "evt_other".parse().unwrap());
    assert!(official(&old).verify(&r.body, &other_id).is_err());
    let mut other_time = r.headers.clone();
    let stamp: u64 = r.header("webhook-timestamp").parse().unwrap();
    other_time.insert(
        "webhook-timestamp",
        (stamp - 1).to_string().parse().unwrap(),
    );
    assert!(official(&old).verify(&r.body, &other_time).is_err());
    // The bearer-only destination gets no signature.
    let unsigned: Vec<&Recorded> = requests.iter().filter(|r| r.target == "/plain").collect();
    assert_eq!(unsigned.len(), 2);
    assert!(
        unsigned
            .iter()
            .all(|r| r.header("webhook-signature").is_empty())
    );

    // Rotation: the new secret once; during the grace period both verify.
    let response = client
        .call(
            "POST",
            &rotate_path(id),
            Some(&json!({"gracePeriodSeconds": 3600})),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_documented("POST", ROTATE, &response);
    let rotated = response.json();
    let new = rotated["signingSecret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let view = client.get(id).await;
    assert!(!view.to_string().contains(&new[6..]));
    client.publish("invoice.sent", "{}", 2).await;
    let requests = rx.wait_for(5, ARRIVAL).await;
    let during: Vec<&Recorded> = requests
        .iter()
        .filter(|r| r.target == "/signed")
        .skip(1)
        .collect();
    assert_eq!(during.len(), 1);
    let r = during[0];
    let sigs = signatures(r);
    assert_eq!(
        sigs.len(),
        2,
        "v1,<new> v1,<old>: {}",
        r.header("webhook-signature")
    );
    official(&new).verify(&r.body, &r.headers).unwrap();
    official(&old).verify(&r.body, &r.headers).unwrap();
    let mut altered = r.body.clone();
    altered[0] = b' ';
    assert!(official(&new).verify(&altered, &r.headers).is_err());
    assert!(official(&old).verify(&altered, &r.headers).is_err());
    // The new secret's signature comes first: alone, it verifies with the
    // new secret and not with the old.
    let mut first_only = r.headers.clone();
    first_only.insert("webhook-signature", sigs[0].parse().unwrap());
    official(&new).verify(&r.body, &first_only).unwrap();
    assert!(official(&old).verify(&r.body, &first_only).is_err());

    // A rotation with no grace period: only the new secret signs.
    let response = client
        .call(
            "POST",
            &rotate_path(id),
            Some(&json!({"gracePeriodSeconds": 0})),
        )
        .await;
    let newest = response.json()["signingSecret"]
        .as_str()
        .unwrap()
        .to_owned();
    client.publish("invoice.void", "{}", 2).await;
    let requests = rx.wait_for(7, ARRIVAL).await;
    let last = requests
        .iter()
        .filter(|r| r.target == "/signed")
        .nth(2)
        .unwrap();
    assert_eq!(signatures(last).len(), 1);
    official(&newest).verify(&last.body, &last.headers).unwrap();
    assert!(official(&new).verify(&last.body, &last.headers).is_err());

    let text = logs.text();
    for secret in [&old, &new, &newest] {
        assert!(!text.contains(&secret[6..]), "a signing secret was logged");
    }
    assert!(
        !text.contains("HEADER-VALUE-MARKER"),
        "a custom header's value was logged"
    );
    let _ = plain;
    running.stop().await.unwrap();
}
