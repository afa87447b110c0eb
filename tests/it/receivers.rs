//! What receivers expect, through the core: the receiver members of create
//! and update requests, the one-time bodies, and the signed, filtered
//! deliveries with custom headers that `plan_attempt` builds (verified by
//! the official `standardwebhooks` crate).

use prets_destinations::delivery::{DeliveryRequest, Event, plan_attempt};
use prets_destinations::ops::{CreatePlan, plan_create};
use prets_destinations::secret::{SIGNATURE_HEADER, Signing};
use prets_destinations::{
    CreateDestinationRequest, DestinationRecord, Keyring, RotateSecretRequest, TenantId, Timestamp,
    UpdateDestinationRequest,
};
use serde_json::{Value, json};
use standardwebhooks::Webhook;

use crate::support::{keyring, rng, sealer, tenant};

const NOW: u64 = 1_700_000_000;

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_seconds(secs).unwrap()
}

fn signed(org: &TenantId, ring: &Keyring) -> CreatePlan {
    let request = CreateDestinationRequest::new("Signed", "https://example.com/hooks")
        .with_signing(Signing::StandardWebhooks)
        .with_headers([("X-Key", "HEADER-VALUE"), ("X-Another", "a b")]);
    plan_create(request, org, at(NOW), &mut rng(5), ring.current()).unwrap()
}

fn event() -> Event {
    Event::new(
        "invoice.paid",
        r#"{"n":1}"#.to_owned(),
        at(NOW),
        &mut rng(6),
    )
    .unwrap()
}

/// The delivery's headers as an `http::HeaderMap`, as a receiver gets them.
fn header_map(request: &DeliveryRequest) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in request.expose_headers() {
        map.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    map
}

/// Whether one of the delivery's signatures is the one the official crate
/// computes with `secret` for its id, timestamp and `body`. (The crate's
/// `verify` also checks the timestamp against the wall clock; these
/// deliveries are made at fixed times, so the signature is checked alone.
/// The server's tests call `verify` itself on live deliveries.)
fn verifies(secret: &str, body: &[u8], headers: &http::HeaderMap) -> bool {
    let wh = Webhook::new(secret).unwrap();
    let id = headers["webhook-id"].to_str().unwrap();
    let ts: i64 = headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let expected = wh.sign(id, ts, body).unwrap();
    headers[SIGNATURE_HEADER]
        .to_str()
        .unwrap()
        .split(' ')
        .any(|s| s == expected)
}

#[test]
fn a_signed_delivery_carries_the_signature_then_the_custom_headers_in_order() {
    let org = tenant("org_a");
    let ring = keyring(1, &mut rng(1));
    let plan = signed(&org, &ring);
    let secret = plan.response.signing_secret().unwrap().expose_secret();
    let request = plan_attempt(&org, &plan.record, &ring, &event(), 1, at(NOW + 3)).unwrap();
    let names: Vec<&str> = request.expose_headers().iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "Authorization",
            "Content-Type",
            "Webhook-Id",
            "Webhook-Timestamp",
            "User-Agent",
            "Webhook-Signature",
            "X-Key",
            "X-Another"
        ]
    );
    let headers = header_map(&request);
    assert_eq!(headers["webhook-timestamp"], (NOW + 3).to_string().as_str());
    assert!(verifies(secret, request.body(), &headers));
    let mut altered = request.body().to_vec();
    altered.push(b'\n');
    assert!(!verifies(secret, &altered, &headers));
    // Only the fixed headers' values may be logged.
    let sensitive: Vec<bool> = (0..names.len())
        .map(DeliveryRequest::is_sensitive)
        .collect();
    assert_eq!(
        sensitive,
        [true, false, false, false, false, true, true, true]
    );
    let debug = format!("{request:?}");
    for hidden in [
        "HEADER-VALUE",
        &secret[6..],
        headers[SIGNATURE_HEADER].to_str().unwrap(),
    ] {
        assert!(!debug.contains(hidden), "{debug}");
    }
    assert!(debug.contains("X-Key"), "header names are shown: {debug}");
}

#[test]
fn a_bearer_destination_gets_no_signature_and_the_bearer_header_stays_first() {
    let org = tenant("org_a");
    let ring = keyring(1, &mut rng(1));
    let plan = plan_create(
        CreateDestinationRequest::new("Plain", "https://example.com/hooks"),
        &org,
        at(NOW),
        &mut rng(2),
        ring.current(),
    )
    .unwrap();
    let request = plan_attempt(&org, &plan.record, &ring, &event(), 1, at(NOW)).unwrap();
    assert_eq!(request.expose_headers().len(), 5);
    assert!(
        request
            .expose_headers()
            .iter()
            .all(|(n, _)| !n.eq_ignore_ascii_case(SIGNATURE_HEADER))
    );
    assert_eq!(request.expose_headers()[0].0, "Authorization");
}

#[test]
fn a_rotation_signs_with_both_secrets_until_the_deadline_then_with_the_new_one() {
    let org = tenant("org_a");
    let ring = keyring(1, &mut rng(1));
    let plan = signed(&org, &ring);
    let old = plan.response.signing_secret().unwrap().expose_secret();
    let rotation = RotateSecretRequest::new()
        .with_grace_period_seconds(60)
        .validate()
        .unwrap();
    let rotated = rotation
        .plan(&plan.record, &org, at(NOW), &mut rng(3), ring.current())
        .unwrap();
    let new = rotated.response.signing_secret().unwrap().expose_secret();
    assert_ne!(old, new);
    let body = serde_json::to_value(&rotated.response).unwrap();
    assert_eq!(body["signingSecret"], json!(new));
    let e = event();
    for (t, both) in [
        (NOW, true),
        (NOW + 59, true),
        (NOW + 60, false),
        (NOW + 600, false),
    ] {
        let request = plan_attempt(&org, &rotated.record, &ring, &e, 1, at(t)).unwrap();
        let headers = header_map(&request);
        let value = headers[SIGNATURE_HEADER].to_str().unwrap();
        assert_eq!(value.split(' ').count(), if both { 2 } else { 1 }, "{t}");
        assert!(verifies(new, request.body(), &headers), "{t}");
        assert_eq!(verifies(old, request.body(), &headers), both, "{t}");
        // The new one first.
        let first: http::HeaderMap = {
            let mut h = headers.clone();
            h.insert(
                SIGNATURE_HEADER,
                value.split(' ').next().unwrap().parse().unwrap(),
            );
            h
        };
        assert!(verifies(new, request.body(), &first));
    }
}

#[test]
fn a_bearer_destination_rotates_without_a_signing_secret() {
    let org = tenant("org_a");
    let ring = keyring(1, &mut rng(1));
    let plan = plan_create(
        CreateDestinationRequest::new("Plain", "https://example.com/hooks"),
        &org,
        at(NOW),
        &mut rng(2),
        ring.current(),
    )
    .unwrap();
    let rotated = RotateSecretRequest::new()
        .validate()
        .unwrap()
        .plan(&plan.record, &org, at(NOW), &mut rng(3), ring.current())
        .unwrap();
    assert!(rotated.response.signing_secret().is_none());
    let body = serde_json::to_value(&rotated.response).unwrap();
    assert!(body.get("signingSecret").is_none(), "{body}");
    assert!(
        rotated.record.previous_secrets[0]
            .sealed_signing_secret
            .is_none()
    );
}

fn update(record: &DestinationRecord, org: &TenantId, body: Value) -> (DestinationRecord, Value) {
    let patch: UpdateDestinationRequest = serde_json::from_value(body).unwrap();
    let (next, secret) = patch
        .validate()
        .unwrap()
        .plan(record, org, at(NOW + 1), &mut rng(9), &sealer())
        .unwrap();
    let shown = json!({
        "signing": next.signing().as_str(),
        "secret": secret.as_ref().map(|s| s.expose_secret().to_owned()),
    });
    (next, shown)
}

#[test]
fn an_update_mints_a_signing_secret_only_when_it_turns_signing_on() {
    let org = tenant("org_a");
    let ring = keyring(1, &mut rng(1));
    let plan = plan_create(
        CreateDestinationRequest::new("Plain", "https://example.com/hooks")
            .with_metadata([("a", "1"), ("b", "2")]),
        &org,
        at(NOW),
        &mut rng(2),
        ring.current(),
    )
    .unwrap();
    let (on, shown) = update(&plan.record, &org, json!({"signing": "standard-webhooks"}));
    assert_eq!(shown["signing"], "standard-webhooks");
    assert!(shown["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(on.metadata.len(), 2, "an absent member is kept");
    let (again, shown) = update(&on, &org, json!({"signing": "standard-webhooks"}));
    assert_eq!(shown["secret"], Value::Null);
    assert_eq!(again.signing_secret, on.signing_secret);
    let (replaced, _) = update(&again, &org, json!({"metadata": {"c": "3"}}));
    assert_eq!(
        replaced.metadata.iter().collect::<Vec<_>>(),
        [("c", "3")],
        "a map given replaces the whole map"
    );
    let (off, shown) = update(&replaced, &org, json!({"signing": "bearer"}));
    assert_eq!(
        (shown["signing"].as_str(), &shown["secret"]),
        (Some("bearer"), &Value::Null)
    );
    assert!(off.signing_secret.is_none());
}

#[test]
fn turning_signing_off_drops_the_signing_secrets_kept_for_a_grace_period() {
    let org = tenant("org_a");
    let ring = keyring(1, &mut rng(1));
    let plan = signed(&org, &ring);
    let rotated = RotateSecretRequest::new()
        .validate()
        .unwrap()
        .plan(&plan.record, &org, at(NOW), &mut rng(3), ring.current())
        .unwrap();
    assert!(
        rotated.record.previous_secrets[0]
            .sealed_signing_secret
            .is_some()
    );
    let (off, _) = update(&rotated.record, &org, json!({"signing": "bearer"}));
    assert!(off.signing_secret.is_none());
    assert!(
        off.previous_secrets
            .iter()
            .all(|p| p.sealed_signing_secret.is_none())
    );
    // The bearer secrets and their grace period are untouched.
    assert_eq!(off.previous_secrets.len(), 1);
    assert_eq!(off.secret_digest, rotated.record.secret_digest);
    let request = plan_attempt(&org, &off, &ring, &event(), 1, at(NOW + 2)).unwrap();
    assert!(
        request
            .expose_headers()
            .iter()
            .all(|(n, _)| *n != SIGNATURE_HEADER),
        "no signature once off"
    );
}

#[test]
fn the_created_body_adds_members_only_when_they_are_not_defaults() {
    let org = tenant("org_a");
    let ring = keyring(1, &mut rng(1));
    let seed = [
        "bearerSecret",
        "createdAt",
        "destinationId",
        "name",
        "updatedAt",
        "url",
    ];
    let defaults: CreateDestinationRequest = serde_json::from_value(json!({
        "name": "n", "url": "https://example.com/", "signing": "bearer",
        "filterTypes": [], "headers": {}, "description": "", "metadata": {}
    }))
    .unwrap();
    for request in [
        CreateDestinationRequest::new("n", "https://example.com/"),
        defaults,
    ] {
        let plan = plan_create(request, &org, at(NOW), &mut rng(2), ring.current()).unwrap();
        let body = serde_json::to_value(&plan.response).unwrap();
        let mut keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, seed);
    }
    let full = CreateDestinationRequest::new("n", "https://example.com/")
        .with_signing(Signing::StandardWebhooks)
        .with_filter_types(["a.*"])
        .with_headers([("X-A", "HDR-VALUE-1")])
        .with_description("d")
        .with_metadata([("k", "v")]);
    let plan = plan_create(full, &org, at(NOW), &mut rng(2), ring.current()).unwrap();
    let text = serde_json::to_string(&plan.response).unwrap();
    let order: Vec<usize> = [
        "\"bearerSecret\"",
        "\"signing\"",
        "\"signingSecret\"",
        "\"filterTypes\"",
        "\"headers\"",
        "\"description\"",
        "\"metadata\"",
    ]
    .iter()
    .map(|k| {
        text.find(k)
            .unwrap_or_else(|| panic!("{k} missing: {text}"))
    })
    .collect();
    assert!(order.is_sorted(), "{text}");
    // The record holds the secret sealed, never in cleartext.
    let stored = serde_json::to_string(&plan.record).unwrap();
    let secret = plan.response.signing_secret().unwrap().expose_secret();
    assert!(!stored.contains(&secret[6..]));
    assert!(!format!("{:?}", plan.response).contains(&secret[6..]));
    // Custom header values stay out of `Debug` (a receiver's credentials
    // often travel in one); their names show.
    let debug = format!("{:?}", plan.record);
    assert!(
        !debug.contains("HDR-VALUE-1") && debug.contains("X-A"),
        "{debug}"
    );
}

#[test]
fn every_receiver_member_error_names_its_field_with_its_code() {
    let cases = [
        (json!({"signing": "Bearer"}), "signing", "invalid"),
        (json!({"signing": ["bearer"]}), "signing", "type"),
        (json!({"filterTypes": ["ok", ""]}), "filterTypes", "pattern"),
        (json!({"filterTypes": {"a": "b"}}), "filterTypes", "type"),
        (json!({"filterTypes": [null]}), "filterTypes", "type"),
        (
            json!({"filterTypes": (0..101).map(|i| format!("t{i}")).collect::<Vec<_>>()}),
            "filterTypes",
            "too_many",
        ),
        (
            json!({"headers": (0..21).map(|i| (format!("X-{i}"), Value::from("v"))).collect::<serde_json::Map<String, Value>>()}),
            "headers",
            "too_many",
        ),
        (json!({"headers": {"te": "x"}}), "headers", "reserved_name"),
        (
            json!({"headers": {"X-A": " padded"}}),
            "headers",
            "invalid_value",
        ),
        (json!({"headers": ["X-A"]}), "headers", "type"),
        (json!({"description": null}), "description", "type"),
        (
            json!({"metadata": (0..51).map(|i| (format!("k{i}"), Value::from("v"))).collect::<serde_json::Map<String, Value>>()}),
            "metadata",
            "too_many",
        ),
        (
            json!({"metadata": {"k": "\u{1b}[31m"}}),
            "metadata",
            "control_character",
        ),
        (json!({"metadata": "k=v"}), "metadata", "type"),
    ];
    for (extra, field, code) in cases {
        let mut body = json!({"name": "n", "url": "https://example.com/"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let create: CreateDestinationRequest = serde_json::from_value(body).unwrap();
        let update: UpdateDestinationRequest = serde_json::from_value(extra.clone()).unwrap();
        for errors in [
            create.validate().unwrap_err(),
            update.validate().unwrap_err(),
        ] {
            let got: Vec<(&str, &str)> = errors
                .errors()
                .iter()
                .map(|e| (e.field().as_str(), e.code()))
                .collect();
            assert_eq!(got, [(field, code)], "{extra}");
        }
    }
}

#[test]
fn request_debug_never_shows_a_custom_header_value() {
    let body = json!({"name": "n", "url": "https://example.com/",
                      "headers": {"X-Key": "HDR-SECRET-VALUE"}});
    let create: CreateDestinationRequest = serde_json::from_value(body).unwrap();
    let update: UpdateDestinationRequest =
        serde_json::from_value(json!({"headers": {"X-Key": "HDR-SECRET-VALUE"}})).unwrap();
    let texts = [
        format!("{create:?}"),
        format!("{update:?}"),
        format!("{:?}", create.clone().validate().unwrap()),
        format!("{:?}", update.clone().validate().unwrap()),
    ];
    for text in texts {
        assert!(!text.contains("HDR-SECRET-VALUE"), "{text}");
    }
}

/// A hostile organization's many destinations and filters change nothing
/// for a quiet one beside it: the quiet one's publishes reach exactly its
/// matching destinations, and the hostile one's never reach the quiet one.
/// The keys a publish looks up are bounded by the event type alone.
#[cfg(feature = "memory")]
#[test]
fn a_hostile_organizations_filters_never_reach_a_quiet_one() {
    use prets_destinations::delivery::{EventType, FilterTypes};
    use prets_destinations::wire::PublishRequest;
    use prets_destinations::{MemoryRepo, PublishOutcome, create, publish};

    use crate::support::block_on;

    let repo = MemoryRepo::new();
    let ring = keyring(1, &mut rng(1));
    let (hostile, quiet) = (tenant("org_hostile"), tenant("org_quiet"));
    let mut g = rng(2);
    let entries: Vec<String> = (0..100).map(|i| format!("invoice.{i}*")).collect();
    for i in 0..300 {
        let request = CreateDestinationRequest::new(format!("h{i}"), "https://example.com/h")
            .with_filter_types(
                entries
                    .iter()
                    .cloned()
                    .chain(["invoice.paid".to_owned()])
                    .take(100),
            );
        block_on(create(
            &repo,
            &hostile,
            request,
            at(NOW),
            &mut g,
            ring.current(),
        ))
        .unwrap()
        .into_result()
        .unwrap();
    }
    for (name, filter) in [("paid", vec!["invoice.paid"]), ("users", vec!["user.*"])] {
        let request =
            CreateDestinationRequest::new(name, "https://example.com/q").with_filter_types(filter);
        block_on(create(
            &repo,
            &quiet,
            request,
            at(NOW),
            &mut g,
            ring.current(),
        ))
        .unwrap()
        .into_result()
        .unwrap();
    }
    let count = |org: &TenantId, event_type: &str, g: &mut rand_chacha::ChaCha20Rng| {
        let request = PublishRequest::new(event_type, "{}".to_owned()).unwrap();
        match block_on(publish(&repo, org, request, at(NOW), g)).unwrap() {
            PublishOutcome::Accepted(e) => e.destinations,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(count(&quiet, "invoice.paid", &mut g), 1);
    assert_eq!(count(&quiet, "user.created", &mut g), 1);
    assert_eq!(count(&quiet, "invoice.1", &mut g), 0);
    assert_eq!(count(&hostile, "invoice.10", &mut g), 300);
    assert_eq!(count(&hostile, "user.created", &mut g), 0);
    // The longest event type looks up at most 130 keys, whatever the
    // organizations hold.
    let longest: EventType = "a".repeat(128).parse().unwrap();
    assert_eq!(FilterTypes::keys_matching(&longest).len(), 130);
}
