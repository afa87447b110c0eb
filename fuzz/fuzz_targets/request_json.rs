//! Arbitrary bytes as the body of a create request: parsing never panics;
//! validation reports each field the way its validator does; a valid request
//! plans into a record and a response that agree with each other and with the
//! request, and the response's JSON parses back to the same values.
//!
//! The secret is compared, never formatted.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use prets_destinations::error::Field;
use prets_destinations::ops::IdSource;
use prets_destinations::{
    BearerSecret, CreateDestinationRequest, DestinationId, DestinationName, DestinationRecord,
    DestinationUrl, KeyId, SealingKey, TenantId, Timestamp,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The instant of the spec's example response, plus some milliseconds.
const NOW_MS: u64 = 1_699_335_116_250;

/// One top-level member of the body as sent, read independently of the
/// crate's parser.
#[derive(Clone)]
enum Sent {
    Missing,
    Str(String),
    /// Any other JSON value, `null` included.
    Other,
}

/// Reads a string as itself and skips anything else the way serde skips
/// ignored values (without recursion, and without checking the UTF-8 of
/// nested strings), so every body the crate accepts is read here too.
impl<'de> Deserialize<'de> for Sent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Sent;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Sent, E> {
                Ok(Sent::Str(v.to_owned()))
            }
            fn visit_unit<E>(self) -> Result<Sent, E> {
                Ok(Sent::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Sent, E> {
                Ok(Sent::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Sent, E> {
                Ok(Sent::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Sent, E> {
                Ok(Sent::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Sent, E> {
                Ok(Sent::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Sent, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Sent::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Sent, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Sent::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The member names of a JSON object, in the order they are written.
struct KeysInOrder(Vec<String>);

impl<'de> Deserialize<'de> for KeysInOrder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeysInOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<KeysInOrder, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, IgnoredAny)) = a.next_entry::<String, IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(KeysInOrder(keys))
            }
        }
        d.deserialize_map(V)
    }
}

/// The members of an object body.
fn members(data: &[u8]) -> BTreeMap<String, Sent> {
    serde_json::from_slice(data).expect("an accepted body is a JSON object")
}

fn sent(body: &BTreeMap<String, Sent>, key: &str) -> Sent {
    body.get(key).cloned().unwrap_or(Sent::Missing)
}

/// What validating one member must report: `None` for no error, or the code.
fn expected_code(member: &Sent, field: Field) -> Option<&'static str> {
    match member {
        Sent::Missing if field == Field::DestinationId => None,
        Sent::Missing => Some("required"),
        Sent::Str(s) => match field {
            Field::Name => DestinationName::validate(s).err().map(|e| e.code()),
            Field::Url => DestinationUrl::validate(s).err().map(|e| e.code()),
            _ => s.parse::<DestinationId>().err().map(|e| e.code()),
        },
        Sent::Other => Some("type"),
    }
}

/// The string a valid request sent for `key`.
fn sent_str(body: &BTreeMap<String, Sent>, key: &str) -> String {
    match sent(body, key) {
        Sent::Str(s) => s,
        _ => panic!("a valid request has {key} as a string"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<CreateDestinationRequest>(data) else {
        return;
    };
    // What the typed parser accepted is a JSON object with known members only.
    let body = members(data);
    const RECEIVER: [&str; 5] = ["signing", "filterTypes", "headers", "description", "metadata"];
    assert!(
        body.keys()
            .all(|k| ["name", "url", "destinationId"].contains(&k.as_str())
                || RECEIVER.contains(&k.as_str()))
    );
    // The receiver members' values have their own target (`receivers`);
    // with any of them here, validating and planning only must not panic.
    if body.keys().any(|k| RECEIVER.contains(&k.as_str())) {
        if let Ok(new) = request.validate() {
            let now = Timestamp::from_unix_millis(NOW_MS).expect("in range");
            let mut rng = ChaCha20Rng::from_seed([0x5e; 32]);
            let tenant: TenantId = "org_fuzz".parse().expect("a valid tenant");
            let sealer = SealingKey::new(KeyId::new(1), &[0x42; 32]);
            let plan = new.plan(&tenant, now, &mut rng, &sealer);
            let json = serde_json::to_string(&plan.record).expect("the record serializes");
            let back: DestinationRecord = serde_json::from_str(&json).expect("and reads back");
            assert_eq!(back, plan.record);
        }
        return;
    }

    let fields = [
        (Field::Name, "name"),
        (Field::Url, "url"),
        (Field::DestinationId, "destinationId"),
    ];

    let new = match request.clone().validate() {
        Err(errors) => {
            // Every bad field, once, in field order, with its validator's code.
            let list = errors.errors();
            assert!(!list.is_empty());
            assert!(list.windows(2).all(|w| w[0].field() < w[1].field()));
            for (field, key) in fields {
                let got = errors.get(field).map(|e| e.code());
                assert_eq!(got, expected_code(&sent(&body, key), field), "{key}");
            }
            let json = serde_json::to_value(&errors).expect("errors serialize");
            let items = json["errors"].as_array().expect("an errors array");
            assert_eq!(items.len(), list.len());
            for (item, e) in items.iter().zip(list) {
                assert_eq!(item["field"], e.field().as_str());
                assert_eq!(item["code"], e.code());
                assert_eq!(item["message"], e.message());
                assert_eq!(item.as_object().map(Map::len), Some(3));
            }
            return;
        }
        Ok(new) => new,
    };
    for (field, key) in fields {
        assert_eq!(expected_code(&sent(&body, key), field), None, "{key}");
    }
    // serde_json skips ignored values without checking their UTF-8, but a
    // valid request has no ignored values: all of it was read.
    assert!(
        std::str::from_utf8(data).is_ok(),
        "a valid request is not UTF-8"
    );
    let (sent_name, sent_url) = (sent_str(&body, "name"), sent_str(&body, "url"));
    assert_eq!(new.name.as_str(), sent_name);
    assert_eq!(new.url.as_str(), sent_url);
    let client_id = body
        .contains_key("destinationId")
        .then(|| sent_str(&body, "destinationId"));
    assert_eq!(new.destination_id.map(|id| id.to_string()), client_id);

    let now = Timestamp::from_unix_millis(NOW_MS).expect("in range");
    let mut rng = ChaCha20Rng::from_seed([0x5e; 32]);
    let tenant: TenantId = "org_fuzz".parse().expect("a valid tenant");
    let sealer = SealingKey::new(KeyId::new(1), &[0x42; 32]);
    let plan = new.plan(&tenant, now, &mut rng, &sealer);
    let (record, response) = (&plan.record, &plan.response);

    match new.destination_id {
        Some(id) => {
            assert_eq!(plan.id_source, IdSource::Client);
            assert_eq!(response.destination_id(), id);
        }
        None => {
            assert_eq!(plan.id_source, IdSource::Server);
            assert_eq!(response.destination_id().timestamp_ms(), Some(NOW_MS));
        }
    }
    assert_eq!(record.destination_id, response.destination_id());
    assert_eq!(&record.name, response.name());
    assert_eq!(&record.url, response.url());
    assert_eq!(response.created_at(), now.truncated());
    assert_eq!(response.updated_at(), response.created_at());
    assert_eq!(record.created_at, response.created_at());
    assert_eq!(record.updated_at, response.updated_at());
    let secret = response.bearer_secret();
    assert!(
        record.secret_digest == secret.digest(),
        "record digest is not the secret's"
    );

    // The response, as the client would read it.
    let json = serde_json::to_vec(response).expect("the response serializes");
    let read: Value = serde_json::from_slice(&json).expect("the response is JSON");
    let read = read.as_object().expect("the response is an object");
    let KeysInOrder(keys) = serde_json::from_slice(&json).expect("the response is an object");
    let spec_order = [
        "destinationId",
        "name",
        "url",
        "createdAt",
        "updatedAt",
        "bearerSecret",
    ];
    assert_eq!(keys, spec_order);
    assert_eq!(read.len(), spec_order.len());
    let text = |key: &str| read.get(key).and_then(Value::as_str).expect(key);
    let id_text = response.destination_id().to_string();
    assert_eq!(text("destinationId"), id_text);
    assert_eq!(
        text("destinationId").parse::<DestinationId>(),
        Ok(response.destination_id())
    );
    if let Some(sent) = client_id {
        assert_eq!(id_text, sent);
    }
    assert_eq!(text("name"), sent_name);
    assert_eq!(text("url"), sent_url);
    assert_eq!(
        text("createdAt").parse::<Timestamp>(),
        Ok(response.created_at())
    );
    assert_eq!(text("updatedAt"), text("createdAt"));
    assert!(
        text("bearerSecret") == secret.expose_secret(),
        "bearerSecret differs"
    );
    let read_secret: BearerSecret = text("bearerSecret")
        .parse()
        .expect("the response's secret parses");
    assert!(
        read_secret.ct_eq(secret),
        "bearerSecret parses to another secret"
    );
    // Re-sending the echoed fields is the same request again.
    let again = serde_json::json!({ "name": text("name"), "url": text("url") });
    let again: CreateDestinationRequest =
        serde_json::from_value(again).expect("echoed fields form a request");
    let again = again.validate().expect("echoed fields validate");
    assert_eq!((again.name, again.url), (new.name.clone(), new.url.clone()));

    // The stored record round-trips through JSON.
    let stored = serde_json::to_string(record).expect("the record serializes");
    let loaded: DestinationRecord = serde_json::from_str(&stored).expect("the record loads");
    assert_eq!(&loaded, record);

    // Planning again mints a fresh secret.
    let second = new.plan(&tenant, now, &mut rng, &sealer);
    assert!(
        !second.response.bearer_secret().ct_eq(secret),
        "a secret was minted twice"
    );
});
