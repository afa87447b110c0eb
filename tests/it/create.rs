//! The pure create step: a request, an injected `now` and a seeded generator
//! in; the record to store and the one-time `201` body out, shaped exactly as
//! the spec's response.

use prets_destinations::id::ID_PATTERN;
use prets_destinations::ops::{IdSource, plan_create};
use prets_destinations::rand_core::SeedableRng;
use prets_destinations::secret::SECRET_PATTERN;
use prets_destinations::{
    CreateDestinationRequest, DestinationId, DestinationRecord, DestinationUrl, KeyId, SealingKey,
    SecretDigest, TenantId, Timestamp,
};
use rand_chacha::ChaCha20Rng;
use regex_lite::Regex;
use serde_json::Value;

use crate::support::Keys;

/// `2023-11-07T05:31:56Z`, the spec example's `createdAt`, plus 250 ms.
const NOW_MS: u64 = 1_699_335_116_250;
const SPEC_CREATED_AT: &str = "2023-11-07T05:31:56Z";
/// The response members, in the spec's order.
const RESPONSE_FIELDS: [&str; 6] = [
    "destinationId",
    "name",
    "url",
    "createdAt",
    "updatedAt",
    "bearerSecret",
];
const CLIENT_ID: &str = "whk_01ARZ3NDEKTSV4RRFFQ69G5FAV";

fn now() -> Timestamp {
    Timestamp::from_unix_millis(NOW_MS).unwrap()
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn tenant() -> TenantId {
    "org_1".parse().unwrap()
}

fn sealer() -> SealingKey {
    SealingKey::new(KeyId::new(1), &[7; 32])
}

fn spec_request() -> CreateDestinationRequest {
    serde_json::from_str(r#"{"name":"Production","url":"https://example.com/prets/events"}"#)
        .unwrap()
}

#[test]
fn the_spec_instant_is_written_as_in_the_spec() {
    assert_eq!(now().to_string(), SPEC_CREATED_AT);
    assert_eq!(
        SPEC_CREATED_AT.parse::<Timestamp>().unwrap(),
        now().truncated()
    );
}

#[test]
fn the_response_has_exactly_the_six_spec_fields_in_spec_order() {
    let plan = plan_create(spec_request(), &tenant(), now(), &mut rng(1), &sealer()).unwrap();
    let text = serde_json::to_string(&plan.response).unwrap();
    let keys = serde_json::from_str::<Keys>(&text).unwrap().0;
    assert_eq!(keys, RESPONSE_FIELDS);

    let v: Value = serde_json::from_str(&text).unwrap();
    for field in RESPONSE_FIELDS {
        assert!(v[field].is_string(), "{field} is a string");
    }
    assert_eq!(v["name"], "Production");
    assert_eq!(v["url"], "https://example.com/prets/events");
    assert_eq!(v["createdAt"], SPEC_CREATED_AT);
    assert_eq!(v["updatedAt"], v["createdAt"]);
    let id = v["destinationId"].as_str().unwrap();
    assert!(Regex::new(ID_PATTERN).unwrap().is_match(id), "{id}");
    let secret = v["bearerSecret"].as_str().unwrap();
    assert!(Regex::new(SECRET_PATTERN).unwrap().is_match(secret));
    assert_eq!(secret, plan.response.bearer_secret().expose_secret());
}

#[test]
fn timestamps_are_whole_seconds_utc_with_z() {
    let whole = Regex::new(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$").unwrap();
    for ms in [0, 999, 1_000, NOW_MS, NOW_MS + 749, 253_402_300_799_999] {
        let t = Timestamp::from_unix_millis(ms).unwrap();
        let plan = plan_create(spec_request(), &tenant(), t, &mut rng(2), &sealer()).unwrap();
        let v: Value = serde_json::to_value(&plan.response).unwrap();
        let created = v["createdAt"].as_str().unwrap();
        assert!(whole.is_match(created), "{created}");
        assert_eq!(v["updatedAt"], created);
        assert_eq!(plan.response.created_at(), t.truncated());
        assert_eq!(plan.response.updated_at(), plan.response.created_at());
        assert_eq!(plan.record.created_at, t.truncated());
        assert_eq!(plan.record.updated_at, plan.record.created_at);
        assert_eq!(plan.record.created_at.unix_seconds(), ms / 1000);
    }
    let first = Timestamp::from_unix_millis(999).unwrap();
    assert_eq!(first.to_string(), "1970-01-01T00:00:00Z");
    let last = Timestamp::from_unix_millis(253_402_300_799_999).unwrap();
    assert_eq!(last.to_string(), "9999-12-31T23:59:59Z");
}

#[test]
fn the_record_digest_verifies_the_returned_secret() {
    let plan = plan_create(spec_request(), &tenant(), now(), &mut rng(3), &sealer()).unwrap();
    let v: Value = serde_json::to_value(&plan.response).unwrap();
    let secret = v["bearerSecret"].as_str().unwrap();
    let digest = plan.record.secret_digest;
    assert!(digest.verify_authorization(format!("Bearer {secret}")));
    assert_eq!(digest, SecretDigest::of_presented(secret));
    assert_eq!(digest, plan.response.bearer_secret().digest());
    let other = plan_create(spec_request(), &tenant(), now(), &mut rng(4), &sealer()).unwrap();
    let other_secret = other.response.bearer_secret().expose_secret();
    assert!(!digest.verify_authorization(format!("Bearer {other_secret}")));
}

#[test]
fn the_record_holds_no_cleartext_secret() {
    for seed in 0..50 {
        let plan =
            plan_create(spec_request(), &tenant(), now(), &mut rng(seed), &sealer()).unwrap();
        let secret = plan.response.bearer_secret().expose_secret().to_owned();
        let body = &secret[6..];
        let record_json = serde_json::to_string(&plan.record).unwrap();
        let record_debug = format!("{:?}", plan.record);
        let plan_debug = format!("{plan:?}");
        let response_debug = format!("{:?}", plan.response);
        for shown in [record_json, record_debug, plan_debug, response_debug] {
            for window in body.as_bytes().windows(8) {
                let w = std::str::from_utf8(window).unwrap();
                assert!(!shown.contains(w), "{shown} shows part of the secret");
            }
        }
    }
}

#[test]
fn the_record_round_trips_through_serde() {
    let plan = plan_create(spec_request(), &tenant(), now(), &mut rng(5), &sealer()).unwrap();
    let json = serde_json::to_string(&plan.record).unwrap();
    let back: DestinationRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan.record);
}

#[test]
fn a_stored_record_with_a_cleartext_secret_member_does_not_load() {
    let plan = plan_create(spec_request(), &tenant(), now(), &mut rng(5), &sealer()).unwrap();
    let mut value: Value = serde_json::to_value(&plan.record).unwrap();
    let secret = plan.response.bearer_secret().expose_secret().to_owned();
    value["bearerSecret"] = Value::String(secret);
    let loaded = serde_json::from_value::<DestinationRecord>(value);
    assert!(loaded.is_err(), "an unknown member was silently dropped");
}

#[test]
fn a_client_id_is_kept() {
    let request = spec_request().with_destination_id(CLIENT_ID);
    let plan = plan_create(request, &tenant(), now(), &mut rng(6), &sealer()).unwrap();
    assert_eq!(plan.id_source, IdSource::Client);
    assert_eq!(plan.record.destination_id.to_string(), CLIENT_ID);
    assert_eq!(plan.response.destination_id().to_string(), CLIENT_ID);
    let v: Value = serde_json::to_value(&plan.response).unwrap();
    assert_eq!(v["destinationId"], CLIENT_ID);
}

#[test]
fn a_server_id_carries_the_injected_time_to_the_millisecond() {
    let plan = plan_create(spec_request(), &tenant(), now(), &mut rng(7), &sealer()).unwrap();
    assert_eq!(plan.id_source, IdSource::Server);
    let id = plan.response.destination_id();
    assert_eq!(id, plan.record.destination_id);
    assert_eq!(id.timestamp_ms(), Some(NOW_MS));
    let v: Value = serde_json::to_value(&plan.response).unwrap();
    let text = v["destinationId"].as_str().unwrap();
    assert_eq!(text.parse::<DestinationId>().unwrap(), id);
}

#[test]
fn name_and_url_are_echoed_exactly() {
    let request = CreateDestinationRequest::new("  Prodé 🦀 ", "hTtPs://Example.COM:8443/%aF?x=@:");
    let plan = plan_create(request, &tenant(), now(), &mut rng(8), &sealer()).unwrap();
    let v: Value = serde_json::to_value(&plan.response).unwrap();
    assert_eq!(v["name"], "  Prodé 🦀 ");
    assert_eq!(v["url"], "hTtPs://Example.COM:8443/%aF?x=@:");
    assert_eq!(plan.record.name.as_str(), "  Prodé 🦀 ");
    assert_eq!(
        plan.record.url.as_str(),
        "hTtPs://Example.COM:8443/%aF?x=@:"
    );
    assert_eq!(plan.response.name(), &plan.record.name);
    assert_eq!(plan.response.url(), &plan.record.url);
}

#[test]
fn planning_twice_gives_fresh_secrets_and_ids() {
    let new = spec_request().validate().unwrap();
    let mut r = rng(9);
    let a = new.plan(&tenant(), now(), &mut r, &sealer());
    let b = new.plan(&tenant(), now(), &mut r, &sealer());
    assert!(!a.response.bearer_secret().ct_eq(b.response.bearer_secret()));
    assert_ne!(a.record.secret_digest, b.record.secret_digest);
    assert_ne!(a.record.destination_id, b.record.destination_id);
    // With a client id only the secret changes.
    let new = spec_request()
        .with_destination_id(CLIENT_ID)
        .validate()
        .unwrap();
    let a = new.plan(&tenant(), now(), &mut r, &sealer());
    let b = new.plan(&tenant(), now(), &mut r, &sealer());
    assert_eq!(a.record.destination_id, b.record.destination_id);
    assert_ne!(a.record.secret_digest, b.record.secret_digest);
}

#[test]
fn the_step_is_a_function_of_its_inputs() {
    let a = plan_create(spec_request(), &tenant(), now(), &mut rng(10), &sealer()).unwrap();
    let b = spec_request()
        .validate()
        .unwrap()
        .plan(&tenant(), now(), &mut rng(10), &sealer());
    assert_eq!(
        serde_json::to_string(&a.response).unwrap(),
        serde_json::to_string(&b.response).unwrap()
    );
    assert_eq!(a.record, b.record);
}

#[test]
fn an_invalid_request_plans_nothing_and_reports_every_field() {
    let request =
        CreateDestinationRequest::new(" ", "http://example.com/").with_destination_id("x");
    let errors = plan_create(request, &tenant(), now(), &mut rng(11), &sealer()).unwrap_err();
    let codes: Vec<_> = errors
        .errors()
        .iter()
        .map(|e| (e.field().as_str(), e.code()))
        .collect();
    assert_eq!(
        codes,
        [
            ("name", "blank"),
            ("url", "not_https"),
            ("destinationId", "pattern")
        ]
    );
}

#[test]
fn stored_records_load_even_if_the_host_policy_has_grown_stricter() {
    let plan = plan_create(spec_request(), &tenant(), now(), &mut rng(5), &sealer()).unwrap();
    let mut value: Value = serde_json::to_value(&plan.record).unwrap();
    value["url"] = Value::String("https://hooks.corp/x".to_owned());
    assert!("https://hooks.corp/x".parse::<DestinationUrl>().is_err());
    let loaded: DestinationRecord = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(loaded.url.as_str(), "https://hooks.corp/x");
    // Every rule but the host policy still holds for stored data.
    for broken in [
        "http://example.com/",
        "https://user@example.com/",
        "https://example.com:0/",
        "https:///x",
        "https://example.com/ space",
    ] {
        value["url"] = Value::String(broken.to_owned());
        assert!(
            serde_json::from_value::<DestinationRecord>(value.clone()).is_err(),
            "{broken}"
        );
        assert!(
            DestinationUrl::from_stored(broken.to_owned()).is_err(),
            "{broken}"
        );
    }
}
