//! Arbitrary bytes as the body of `POST /v1/events`: parsing never panics;
//! a valid request becomes an event whose delivery body is one JSON object
//! of exactly `eventId`, `type`, `createdAt` and `payload`, in that order,
//! with the payload's text copied unchanged, and the client's `eventId`
//! when it gave one; an invalid one names only `eventId`, `type` and
//! `payload`, each at most once, in that order.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prets_destinations::Timestamp;
use prets_destinations::delivery::{Event, EventId, PAYLOAD_MAX_BYTES};
use prets_destinations::wire::{NewEvent, PublishRequest};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use serde_json::Value;
use serde_json::value::RawValue;

const NOW_MS: u64 = 1_699_335_116_250;

/// The members of the delivery body, in the order written, with the
/// payload's text as written.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Body<'a> {
    event_id: String,
    #[serde(rename = "type")]
    event_type: String,
    created_at: String,
    #[serde(borrow)]
    payload: &'a RawValue,
}

/// The request's payload member as written (`type` is ignored here).
#[derive(serde::Deserialize)]
struct Sent<'a> {
    #[serde(borrow)]
    payload: &'a RawValue,
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<PublishRequest>(data) else {
        return;
    };
    let NewEvent {
        event_id,
        event_type,
        payload,
    } = match request.validate() {
        Ok(valid) => valid,
        Err(errors) => {
            let list = errors.errors();
            assert!(!list.is_empty() && list.len() <= 3);
            assert!(list.windows(2).all(|w| w[0].field() < w[1].field()));
            for e in list {
                assert!(["eventId", "type", "payload"].contains(&e.field().as_str()));
            }
            return;
        }
    };
    assert!(payload.get().len() <= PAYLOAD_MAX_BYTES);
    // The payload is the request's own text for it.
    let sent: Sent<'_> = serde_json::from_slice(data).expect("a valid request is JSON");
    match (
        serde_json::from_str::<Value>(sent.payload.get()),
        serde_json::from_str::<Value>(payload.get()),
    ) {
        (Ok(sent), Ok(kept)) => assert_eq!(sent, kept),
        // A number beyond f64 (`-4e555`) is valid JSON that `Value` cannot
        // hold: the payload is then kept as the very same text.
        _ => assert_eq!(sent.payload.get(), payload.get()),
    }

    let now = Timestamp::from_unix_millis(NOW_MS).expect("in range");
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let event = Event {
        event_id: event_id.unwrap_or_else(|| EventId::generate(now, &mut rng)),
        event_type,
        created_at: now.truncated(),
        payload,
    };
    let bytes = event.delivery_body();
    let body: Body<'_> = serde_json::from_slice(&bytes).expect("the body is one JSON object");
    assert_eq!(body.event_id, event.event_id.to_string());
    assert_eq!(body.event_type, event.event_type.as_str());
    assert_eq!(body.created_at, now.truncated().to_string());
    assert_eq!(body.payload.get(), event.payload.get());
    let text = String::from_utf8(bytes).expect("the body is UTF-8");
    assert!(text.starts_with(r#"{"eventId":"evt_"#));
    assert!(text.ends_with(&format!(r#","payload":{}}}"#, event.payload.get())));
});
