//! Standard Webhooks signatures as a receiver sees them: prints, as JSON,
//! three deliveries of one event to a destination created with
//! `"signing": "standard-webhooks"` (each the headers and the body exactly
//! as sent, the body as a string), with the signing secrets each must verify with and those it
//! must not:
//!
//! 1. just created: its secret verifies;
//! 2. after a rotation with a grace period: the new and the old secret
//!    both verify (`v1,<new> v1,<old>`);
//! 3. after a rotation with no grace period: only the newest verifies.
//!
//! `.ci/verify-standard-webhooks.py` feeds this to the official Python
//! library; any Standard Webhooks library does the same with the secrets
//! and headers shown. It prints signing secrets: a demonstration, not
//! something to run against real destinations.
//!
//! ```text
//! cargo run --example signed_delivery | python3 .ci/verify-standard-webhooks.py
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what it made")]

use std::time::SystemTime;

use prets_destinations::delivery::{Event, plan_attempt};
use prets_destinations::ops::plan_create;
use prets_destinations::secret::Signing;
use prets_destinations::{
    CreateDestinationRequest, DestinationRecord, KeyId, Keyring, RotateSecretRequest, SealingKey,
    TenantId, Timestamp, os_rng,
};
use serde_json::{Value, json};

/// One delivery of `event` to `record` at `now`, with the secrets it must
/// and must not verify with.
fn case(
    what: &str,
    tenant: &TenantId,
    record: &DestinationRecord,
    keyring: &Keyring,
    event: &Event,
    now: Timestamp,
    (verify, reject): (&[&str], &[&str]),
) -> Result<Value, Box<dyn std::error::Error>> {
    let request = plan_attempt(tenant, record, keyring, event, 1, now)?;
    let headers: serde_json::Map<String, Value> = request
        .expose_headers()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), Value::from(value)))
        .collect();
    Ok(json!({
        "case": what,
        "headers": headers,
        // A delivery body is JSON text: UTF-8, kept byte for byte.
        "body": String::from_utf8(request.body().to_vec())?,
        "verify": verify,
        "reject": reject,
    }))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = os_rng();
    let keyring = Keyring::new(SealingKey::from_rng(KeyId::new(1), &mut rng), [])?;
    let tenant: TenantId = "org_example".parse()?;
    let now = Timestamp::try_from(SystemTime::now())?;
    let request = CreateDestinationRequest::new("Signed", "https://example.com/hooks")
        .with_signing(Signing::StandardWebhooks);
    let created = plan_create(request, &tenant, now, &mut rng, keyring.current())?;
    let event = Event::new(
        "invoice.paid",
        r#"{ "amount": 12.50, "note": "ünïcode \"quoted\"" }"#.to_owned(),
        now,
        &mut rng,
    )?;
    let first = created
        .response
        .signing_secret()
        .ok_or("no signing secret")?
        .expose_secret();

    let grace = RotateSecretRequest::new().validate()?;
    let rotated = grace
        .plan(&created.record, &tenant, now, &mut rng, keyring.current())
        .ok_or("version exhausted")?;
    let second = rotated
        .response
        .signing_secret()
        .ok_or("no signing secret")?
        .expose_secret();

    let at_once = RotateSecretRequest::new()
        .with_grace_period_seconds(0)
        .validate()?;
    let revoked = at_once
        .plan(&rotated.record, &tenant, now, &mut rng, keyring.current())
        .ok_or("version exhausted")?;
    let third = revoked
        .response
        .signing_secret()
        .ok_or("no signing secret")?
        .expose_secret();

    let cases = [
        case(
            "created",
            &tenant,
            &created.record,
            &keyring,
            &event,
            now,
            (&[first], &[second]),
        )?,
        case(
            "rotated, in the grace period",
            &tenant,
            &rotated.record,
            &keyring,
            &event,
            now,
            (&[second, first], &[third]),
        )?,
        case(
            "rotated with no grace period",
            &tenant,
            &revoked.record,
            &keyring,
            &event,
            now,
            (&[third], &[second, first]),
        )?,
    ];
    println!("{}", Value::from(cases.to_vec()));
    Ok(())
}
