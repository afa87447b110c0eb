//! Delivery without I/O: events, the request of an attempt, classifying the
//! answer, the retry schedule, auto-disable, address pinning and attempt
//! records, with adversarial inputs for each.

use std::net::IpAddr;
use std::time::Duration;

use prets_destinations::delivery::{
    Answer, AttemptId, AttemptMeta, AttemptOutcome, AttemptRecord, Classification, DisablePolicy,
    DisabledReason, Event, EventId, EventType, FailureCause, FailureStreak, Lookup, NextStep,
    PAYLOAD_MAX_BYTES, Payload, RetrySchedule, TransportError, USER_AGENT, classify, lookup,
    next_step, pin_addresses, plan_attempt,
};
use prets_destinations::error::Field;
use prets_destinations::ops::CreatePlan;
use prets_destinations::{
    CreateDestinationRequest, DestinationUrl, HostPolicy, KeyId, Keyring, SealingKey, TenantId,
    Timestamp,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng as _;

use crate::support::regressions_beside_module;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_seconds(secs).unwrap()
}

const NOW: u64 = 1_700_000_000;

fn event(payload: &str) -> Event {
    Event::new("invoice.paid", payload.to_owned(), at(NOW), &mut rng(7)).unwrap()
}

fn setup() -> (TenantId, Keyring, CreatePlan) {
    let org: TenantId = "org_a".parse().unwrap();
    let ring = Keyring::new(SealingKey::new(KeyId::new(1), &[0x11; 32]), []).unwrap();
    let plan = CreateDestinationRequest::new("Production", "https://example.com/prets/events")
        .validate()
        .unwrap()
        .plan(&org, at(NOW - 100), &mut rng(1), ring.current());
    (org, ring, plan)
}

// ---------------------------------------------------------------- events

#[test]
fn event_ids_are_evt_and_a_canonical_ulid_and_round_trip() {
    let e = event("{}");
    let text = e.event_id.to_string();
    assert!(text.starts_with("evt_") && text.len() == 30, "{text}");
    assert_eq!(text.parse::<EventId>().unwrap(), e.event_id);
    assert_eq!(e.event_id.timestamp_ms(), Some(NOW * 1000));
    // The pattern admits ids past 128 bits (a client's): no ULID time.
    let wide = "evt_81HF2V3J6T0Q8X5Y7Z9ABCDEFG".parse::<EventId>().unwrap();
    assert_eq!(wide.timestamp_ms(), None);
    for bad in [
        "",
        "evt_",
        "whk_01HF2V3J6T0Q8X5Y7Z9ABCDEFG",
        "evt_01hf2v3j6t0q8x5y7z9abcdefg",
        "evt_01HF2V3J6T0Q8X5Y7Z9ABCDEF",
        "evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFGH",
        "evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFI",
        "evt_01HF2V3J6T0Q8X5Y7Z9ABCDEF\u{e9}",
    ] {
        let err = bad.parse::<EventId>().unwrap_err();
        assert_eq!(err.code(), "pattern", "{bad:?}");
        assert_eq!(err.to_field_error().field(), Field::EventId);
    }
}

#[test]
fn event_types_are_1_to_128_characters_of_the_allowed_set() {
    for ok in ["a", "invoice.paid", "A-Z_a:z.0-9", &"x".repeat(128)] {
        assert_eq!(ok.parse::<EventType>().unwrap().as_str(), ok);
    }
    let cases: &[(&str, &str)] = &[
        ("", "too_short"),
        (&"x".repeat(129), "too_long"),
        ("invoice paid", "pattern"),
        ("invoice/paid", "pattern"),
        ("invoice.paid\n", "pattern"),
        ("inv\u{f6}ice", "pattern"),
        ("a\u{0}", "pattern"),
        ("\u{ff41}", "pattern"),
        // 100 characters in 200 bytes: the character is the problem, not the length.
        (&"\u{e9}".repeat(100), "pattern"),
        (&"\u{e9}".repeat(129), "too_long"),
    ];
    for &(bad, code) in cases {
        let err = bad.parse::<EventType>().unwrap_err();
        assert_eq!(err.code(), code, "{bad:?}");
        let fe = err.to_field_error();
        assert_eq!(fe.field(), Field::Type);
        assert_eq!(fe.field().as_str(), "type");
    }
}

#[test]
fn payload_of_exactly_256_kib_is_accepted_and_one_byte_more_is_too_large() {
    // A JSON string of exactly the limit: quotes plus filler.
    let exact = format!("\"{}\"", "a".repeat(PAYLOAD_MAX_BYTES - 2));
    assert_eq!(exact.len(), 262_144);
    assert_eq!(Payload::from_json(exact.clone()).unwrap().get(), exact);
    let over = format!("\"{}\"", "a".repeat(PAYLOAD_MAX_BYTES - 1));
    let err = Payload::from_json(over).unwrap_err();
    assert_eq!(err.code(), "too_large");
    assert_eq!(err.to_field_error().field(), Field::Payload);
    // Surrounding whitespace is not part of the value and does not count.
    assert!(Payload::from_json(format!("  {exact}\n")).is_ok());
}

#[test]
fn payload_must_be_one_json_value() {
    for bad in [
        "", " ", "{", "{}{}", "[1,]", "{'a':1}", "NaN", "01", "\"\\x\"", "[1] x",
    ] {
        assert_eq!(
            Payload::from_json(bad.to_owned()).unwrap_err().code(),
            "invalid_json",
            "{bad:?}"
        );
    }
    // Nesting as deep as the size allows is checked without recursion: no
    // stack overflow, and the bytes are kept.
    let deep = format!(
        "{}{}",
        "[".repeat(PAYLOAD_MAX_BYTES / 2),
        "]".repeat(PAYLOAD_MAX_BYTES / 2)
    );
    assert_eq!(Payload::from_json(deep.clone()).unwrap().get(), deep);
    let unbalanced = format!(
        "{}{}",
        "[".repeat(PAYLOAD_MAX_BYTES / 2),
        "]".repeat(PAYLOAD_MAX_BYTES / 2 - 1)
    );
    assert_eq!(
        Payload::from_json(unbalanced).unwrap_err().code(),
        "invalid_json"
    );
    for ok in [
        "null",
        "0",
        "-1.5e300",
        "\"\"",
        "[]",
        "{\"a\":[true,false]}",
    ] {
        assert_eq!(Payload::from_json(ok.to_owned()).unwrap().get(), ok);
    }
}

#[test]
fn event_errors_name_every_bad_field_at_once() {
    let errs = Event::new("bad type", "{".to_owned(), at(NOW), &mut rng(1)).unwrap_err();
    let fields: Vec<&str> = errs.errors().iter().map(|e| e.field().as_str()).collect();
    assert_eq!(fields, ["type", "payload"]);
    assert_eq!(errs.get(Field::Payload).unwrap().code(), "invalid_json");
}

#[test]
fn the_body_is_the_four_fields_with_the_payload_byte_for_byte() {
    let raw =
        "{ \"b\" : 1,\n\t\"a\":\"\\u00e9\\ud83d\\ude00\", \"n\": 1.50e+01 , \"k\":\"\u{e9}\" }";
    let e = Event::new("user.created", raw.to_owned(), at(NOW), &mut rng(3)).unwrap();
    let body = String::from_utf8(e.delivery_body()).unwrap();
    assert_eq!(
        body,
        format!(
            "{{\"eventId\":\"{}\",\"type\":\"user.created\",\"createdAt\":\"2023-11-14T22:13:20Z\",\"payload\":{raw}}}",
            e.event_id
        )
    );
    // It is JSON, with exactly these keys.
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["createdAt", "eventId", "payload", "type"]);
    // Serde writes the same bytes and reads the same event back.
    assert_eq!(serde_json::to_string(&e).unwrap(), body);
    let back: Event = serde_json::from_str(&body).unwrap();
    assert_eq!(back, e);
    assert_eq!(back.payload.get(), raw);
}

#[test]
fn created_at_is_whole_seconds() {
    let t = Timestamp::from_unix_millis(NOW * 1000 + 999).unwrap();
    let e = Event::new("a", "1".to_owned(), t, &mut rng(1)).unwrap();
    assert_eq!(e.created_at, at(NOW));
    assert_eq!(e.event_id.timestamp_ms(), Some(NOW * 1000 + 999));
}

#[test]
fn a_stored_event_with_an_oversized_or_unknown_field_does_not_load() {
    let big = format!(
        "{{\"eventId\":\"evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFG\",\"type\":\"a\",\"createdAt\":\"2023-11-14T22:13:20Z\",\"payload\":\"{}\"}}",
        "a".repeat(PAYLOAD_MAX_BYTES)
    );
    assert!(serde_json::from_str::<Event>(&big).is_err());
    let extra = "{\"eventId\":\"evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFG\",\"type\":\"a\",\"createdAt\":\"2023-11-14T22:13:20Z\",\"payload\":1,\"x\":1}";
    assert!(serde_json::from_str::<Event>(extra).is_err());
}

// ---------------------------------------------------------------- request

#[test]
fn the_request_posts_the_body_with_bearer_and_webhook_headers() {
    let (org, ring, plan) = setup();
    let e = event("{\"amount\": 12.50}");
    let t = Timestamp::from_unix_millis((NOW + 60) * 1000 + 400).unwrap();
    let req = plan_attempt(&org, &plan.record, &ring, &e, 1, t).unwrap();
    assert_eq!(req.method(), "POST");
    assert_eq!(req.url().as_str(), "https://example.com/prets/events");
    assert_eq!(req.attempt(), 1);
    let secret = plan.response.bearer_secret().expose_secret().to_owned();
    let headers = req.expose_headers();
    let expected_ts = (NOW + 60).to_string();
    let expected: [(&str, &str); 5] = [
        ("Authorization", &format!("Bearer {secret}")),
        ("Content-Type", "application/json"),
        ("Webhook-Id", e.event_id.as_str()),
        ("Webhook-Timestamp", &expected_ts),
        (
            "User-Agent",
            &format!("prets-destinations/{}", env!("CARGO_PKG_VERSION")),
        ),
    ];
    assert_eq!(headers, expected);
    assert_eq!(USER_AGENT, expected[4].1);
    assert_eq!(req.body(), e.delivery_body().as_slice());
}

#[test]
fn every_retry_carries_the_same_webhook_id_and_its_own_timestamp() {
    let (org, ring, plan) = setup();
    let e = event("[]");
    let first = plan_attempt(&org, &plan.record, &ring, &e, 1, at(NOW)).unwrap();
    let second = plan_attempt(&org, &plan.record, &ring, &e, 2, at(NOW + 5)).unwrap();
    assert_eq!(first.expose_headers()[2], second.expose_headers()[2]);
    assert_eq!(first.expose_headers()[3].1, NOW.to_string());
    assert_eq!(second.expose_headers()[3].1, (NOW + 5).to_string());
    assert_eq!(first.body(), second.body());
}

#[test]
fn the_debug_of_a_request_redacts_the_secret() {
    let (org, ring, plan) = setup();
    let req = plan_attempt(&org, &plan.record, &ring, &event("1"), 1, at(NOW)).unwrap();
    let secret = plan.response.bearer_secret().expose_secret().to_owned();
    let debug = format!("{req:?} {req:#?}");
    assert!(!debug.contains(&secret), "{debug}");
    assert!(!debug.contains("whsec_"), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");
}

#[test]
fn a_secret_that_does_not_open_plans_no_request() {
    let (org, _, plan) = setup();
    let other = Keyring::new(SealingKey::new(KeyId::new(1), &[0x22; 32]), []).unwrap();
    let err = plan_attempt(&org, &plan.record, &other, &event("1"), 1, at(NOW)).unwrap_err();
    assert_eq!(err.code(), "unauthentic");
    let wrong_tenant: TenantId = "org_b".parse().unwrap();
    let (_, ring, _) = setup();
    let err =
        plan_attempt(&wrong_tenant, &plan.record, &ring, &event("1"), 1, at(NOW)).unwrap_err();
    assert_eq!(err.code(), "unauthentic");
}

// ---------------------------------------------------------------- classify

fn status(s: u16) -> Classification {
    classify(
        Answer::Response {
            status: s,
            retry_after: None,
        },
        at(NOW),
    )
}

#[test]
fn every_2xx_is_delivered_and_410_is_gone() {
    for s in 200..=299 {
        assert_eq!(status(s), Classification::Delivered { status: s });
    }
    assert_eq!(status(410), Classification::Gone);
}

#[test]
fn redirects_and_every_other_status_are_failures() {
    for s in (0..200).chain(300..410).chain(411..=1000).chain([u16::MAX]) {
        match status(s) {
            Classification::Failed(f) => {
                assert_eq!(f.cause, FailureCause::Status(s));
                assert_eq!(f.retry_after, None);
            }
            other => panic!("{s}: {other:?}"),
        }
    }
    let Classification::Failed(f) = status(307) else {
        panic!()
    };
    assert_eq!(f.cause.to_string(), "redirect 307 not followed");
}

#[test]
fn transport_errors_are_failures_without_a_status() {
    for e in [
        TransportError::Timeout,
        TransportError::Dns,
        TransportError::Connect,
        TransportError::Tls,
        TransportError::Refused,
        TransportError::Protocol,
    ] {
        let Classification::Failed(f) = classify(Answer::Failed(e), at(NOW)) else {
            panic!()
        };
        assert_eq!(f.cause.status(), None);
        assert_eq!(f.cause.to_string(), e.as_str());
    }
}

fn retry_after(status: u16, value: &[u8]) -> Option<Duration> {
    match classify(
        Answer::Response {
            status,
            retry_after: Some(value),
        },
        at(NOW),
    ) {
        Classification::Failed(f) => f.retry_after,
        other => panic!("{other:?}"),
    }
}

#[test]
fn retry_after_seconds_and_dates_count_on_429_and_503_only() {
    assert_eq!(retry_after(429, b"120"), Some(Duration::from_secs(120)));
    assert_eq!(retry_after(503, b" 7\t"), Some(Duration::from_secs(7)));
    assert_eq!(retry_after(500, b"120"), None);
    assert_eq!(retry_after(418, b"120"), None);
    // 2023-11-14T22:13:20Z is NOW; a minute later in the three date forms.
    for date in [
        &b"Tue, 14 Nov 2023 22:14:20 GMT"[..],
        b"Tuesday, 14-Nov-23 22:14:20 GMT",
        b"Tue Nov 14 22:14:20 2023",
    ] {
        assert_eq!(
            retry_after(503, date),
            Some(Duration::from_secs(60)),
            "{}",
            String::from_utf8_lossy(date)
        );
    }
}

#[test]
fn retry_after_garbage_negative_past_and_huge_values_are_handled() {
    for garbage in [
        &b""[..],
        b"-5",
        b"+5",
        b"1.5",
        b"5s",
        b"0x10",
        b"soon",
        b"\xff\xfe",
        b"Tue, 14 Nov 2023 25:00:00 GMT",
        b"Tue, 14 Nov 2023 22:14:20 PST",
    ] {
        assert_eq!(retry_after(429, garbage), None, "{garbage:?}");
    }
    let long = vec![b'1'; 10_000];
    assert_eq!(retry_after(429, &long), None);
    // A date at or before the attempt asks for no extra wait.
    assert_eq!(retry_after(429, b"Tue, 14 Nov 2023 22:13:20 GMT"), None);
    assert_eq!(retry_after(429, b"Thu, 01 Jan 1970 00:00:00 GMT"), None);
    // More seconds than a u64 holds saturate rather than fail.
    assert_eq!(
        retry_after(429, b"99999999999999999999999"),
        Some(Duration::from_secs(u64::MAX))
    );
    assert_eq!(retry_after(429, b"0"), Some(Duration::ZERO));
}

// ---------------------------------------------------------------- schedule

#[test]
fn the_default_schedule_is_the_documented_one() {
    let s = RetrySchedule::default();
    assert_eq!(s.to_string(), "5s,5m,30m,2h,5h,10h,10h");
    assert_eq!(
        "5s,5m,30m,2h,5h,10h,10h".parse::<RetrySchedule>().unwrap(),
        s
    );
    let secs: Vec<u64> = s.steps().map(|d| d.as_secs()).collect();
    assert_eq!(secs, [5, 300, 1800, 7200, 18_000, 36_000, 36_000]);
    assert_eq!(s.max_attempts(), 8);
    assert_eq!(s.longest(), Duration::from_secs(36_000));
    assert_eq!(s.delay_after(0), None);
    assert_eq!(s.delay_after(7), Some(Duration::from_secs(36_000)));
    assert_eq!(s.delay_after(8), None);
    assert_eq!(s.delay_after(u32::MAX), None);
}

#[test]
fn schedule_text_round_trips_in_the_largest_exact_unit() {
    for (input, shown) in [
        ("0s", "0s"),
        ("60s,120s", "1m,2m"),
        ("90s", "90s"),
        ("1d,7d", "1d,7d"),
        ("3600s", "1h"),
        ("0000005s", "5s"),
    ] {
        let s: RetrySchedule = input.parse().unwrap();
        assert_eq!(s.to_string(), shown, "{input}");
        assert_eq!(shown.parse::<RetrySchedule>().unwrap(), s);
    }
}

#[test]
fn malformed_schedules_are_refused_with_a_code() {
    let thirty_three = vec!["1s"; 33].join(",");
    let cases: &[(&str, &str)] = &[
        ("", "pattern"),
        (",", "pattern"),
        ("5s,", "pattern"),
        (",5s", "pattern"),
        ("5", "pattern"),
        ("s", "pattern"),
        ("5 s", "pattern"),
        (" 5s", "pattern"),
        ("5S", "pattern"),
        ("5ms", "pattern"),
        ("-5s", "pattern"),
        ("+5s", "pattern"),
        ("1.5h", "pattern"),
        ("5w", "pattern"),
        ("12345678s", "pattern"),
        ("5\u{e9}", "pattern"),
        ("\u{665}s", "pattern"),
        ("8d", "step_too_long"),
        ("9999999d", "step_too_long"),
        ("5m,5s", "decreasing"),
        (&thirty_three, "too_long"),
    ];
    for &(bad, code) in cases {
        let err = bad.parse::<RetrySchedule>().unwrap_err();
        assert_eq!(err.code(), code, "{bad:?}");
        assert_eq!(err.to_field_error().field(), Field::RetrySchedule);
    }
    assert_eq!(RetrySchedule::new([]).unwrap_err().code(), "too_short");
    assert_eq!(
        RetrySchedule::new(vec![Duration::from_secs(1); 33])
            .unwrap_err()
            .code(),
        "too_long"
    );
    assert_eq!(
        RetrySchedule::new(vec![Duration::from_secs(1); 32])
            .unwrap()
            .max_attempts(),
        33
    );
}

fn schedule_strategy() -> impl Strategy<Value = RetrySchedule> {
    prop::collection::vec(0u64..=7 * 86_400, 1..=32).prop_map(|mut v| {
        v.sort_unstable();
        RetrySchedule::new(v.into_iter().map(Duration::from_secs)).unwrap()
    })
}

proptest! {
    #![proptest_config(regressions_beside_module(ProptestConfig::default()))]
    #[test]
    fn steps_never_decrease_and_jitter_stays_within_a_tenth_above_the_step(
        s in schedule_strategy(), seed in any::<u64>()
    ) {
        let mut r = rng(seed);
        let mut previous_step = Duration::ZERO;
        for attempt in 1..s.max_attempts() {
            let step = s.delay_after(attempt).unwrap();
            let d = s.jittered_delay_after(attempt, &mut r).unwrap();
            prop_assert!(step >= previous_step, "{previous_step:?} then {step:?}");
            // Never shorter than this step, so never shorter than any earlier step.
            prop_assert!(d >= step);
            prop_assert!(d <= step + step / 10, "{step:?} jittered to {d:?}");
            prop_assert!(d <= s.longest() + s.longest() / 10);
            previous_step = step;
        }
        prop_assert_eq!(s.jittered_delay_after(s.max_attempts(), &mut r), None);
    }

    #[test]
    fn jitter_is_reproducible_from_a_seeded_rng(s in schedule_strategy(), seed in any::<u64>()) {
        let run = |seed| {
            let mut r = rng(seed);
            (1..s.max_attempts()).map(|a| s.jittered_delay_after(a, &mut r)).collect::<Vec<_>>()
        };
        prop_assert_eq!(run(seed), run(seed));
    }

    #[test]
    fn schedule_text_round_trips(s in schedule_strategy()) {
        prop_assert_eq!(s.to_string().parse::<RetrySchedule>().unwrap(), s);
    }

    #[test]
    fn schedule_parsing_never_panics(text in ".{0,80}") {
        let _ = text.parse::<RetrySchedule>();
    }

    #[test]
    fn retry_after_parsing_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..80), status in any::<u16>()) {
        let _ = classify(Answer::Response { status, retry_after: Some(&bytes) }, at(NOW));
    }

    #[test]
    fn pinning_refuses_exactly_when_any_answer_is_not_allowed(
        v4 in prop::collection::vec(any::<u32>(), 0..6),
        v6 in prop::collection::vec(any::<u128>(), 0..6),
        allow in any::<u32>(), allow_len in 0u8..=32,
        deny in any::<u32>(), deny_len in 0u8..=32,
    ) {
        let answers: Vec<IpAddr> = v4.iter().map(|&a| IpAddr::from(std::net::Ipv4Addr::from(a)))
            .chain(v6.iter().map(|&a| IpAddr::from(std::net::Ipv6Addr::from(a))))
            .collect();
        let allow = prets_destinations::ipnet::Ipv4Net::new(allow.into(), allow_len).unwrap();
        let deny = prets_destinations::ipnet::Ipv4Net::new(deny.into(), deny_len).unwrap();
        let p = HostPolicy::default().allow(allow.into()).deny(deny.into());
        let u = url("https://hooks.example.com/in");
        let got = pin_addresses(&u, &answers, &p);
        let all_allowed = answers.iter().all(|&ip| p.is_allowed(ip));
        prop_assert_eq!(got.is_ok(), !answers.is_empty() && all_allowed);
        if let Ok(pinned) = got {
            prop_assert_eq!(pinned.iter().map(|a| a.ip()).collect::<Vec<_>>(), answers);
        }
        // Deny wins: nothing inside the denied network is ever allowed,
        // in either IPv4 or IPv4-mapped form.
        for &a in &v4 {
            let ip = std::net::Ipv4Addr::from(a);
            if deny.contains(&ip) {
                prop_assert!(!p.is_allowed(ip.into()));
                prop_assert!(!p.is_allowed(ip.to_ipv6_mapped().into()));
            } else if allow.contains(&ip) {
                prop_assert!(p.is_allowed(ip.into()));
            }
        }
    }

    #[test]
    fn stored_urls_never_panic_the_delivery_check(text in "https://[a-zA-Z0-9.%:-]{1,40}/?") {
        if let Ok(u) = DestinationUrl::from_stored(text) {
            let _ = pin_addresses(&u, &ips(&["93.184.215.14"]), &HostPolicy::default());
        }
    }

    #[test]
    fn event_type_and_payload_validation_never_panic(t in ".{0,140}", p in ".{0,80}") {
        let _ = Event::new(&t, p, at(NOW), &mut rng(1));
    }
}

// ---------------------------------------------------------------- next step

fn failed(cause: FailureCause, retry_after: Option<Duration>) -> Classification {
    Classification::Failed(prets_destinations::delivery::Failure { cause, retry_after })
}

fn decide(
    c: &Classification,
    attempt: u32,
    streak: Option<FailureStreak>,
    now: u64,
) -> (NextStep, Option<FailureStreak>) {
    let d = next_step(
        c,
        attempt,
        &RetrySchedule::default(),
        streak,
        &DisablePolicy::default(),
        at(now),
        &mut rng(9),
    );
    (d.step, d.streak)
}

#[test]
fn a_failure_retries_after_the_jittered_step_until_none_is_left() {
    let c = failed(FailureCause::Status(500), None);
    let s = RetrySchedule::default();
    let mut streak = None;
    for attempt in 1..=7 {
        let (step, next) = decide(&c, attempt, streak, NOW);
        let NextStep::RetryAt(t) = step else {
            panic!("{step:?}")
        };
        let base = s.delay_after(attempt).unwrap();
        let waited = Duration::from_millis(t.unix_millis() - NOW * 1000);
        assert!(
            waited >= base && waited <= base + base / 10,
            "{attempt}: {waited:?}"
        );
        streak = next;
    }
    assert_eq!(streak.unwrap().attempts, 7);
    assert_eq!(decide(&c, 8, streak, NOW).0, NextStep::Failed);
}

#[test]
fn success_clears_the_streak_and_gone_disables_at_once() {
    let streak = Some(FailureStreak {
        since: at(NOW - 86_400),
        attempts: 40,
    });
    assert_eq!(
        decide(&status(204), 3, streak, NOW),
        (NextStep::Delivered, None)
    );
    assert_eq!(
        decide(&status(410), 1, None, NOW).0,
        NextStep::Disable(DisabledReason::Gone)
    );
}

#[test]
fn five_days_of_failure_with_three_attempts_disables_as_failing() {
    let c = failed(FailureCause::Transport(TransportError::Timeout), None);
    let five_days = 5 * 86_400;
    // Two earlier failures five days ago: this third one disables.
    let streak = Some(FailureStreak {
        since: at(NOW - five_days),
        attempts: 2,
    });
    let (step, next) = decide(&c, 3, streak, NOW);
    assert_eq!(step, NextStep::Disable(DisabledReason::Failing));
    assert_eq!(next.unwrap().attempts, 3);
    // One second short of five days: retry.
    let streak = Some(FailureStreak {
        since: at(NOW - five_days + 1),
        attempts: 100,
    });
    assert!(matches!(decide(&c, 3, streak, NOW).0, NextStep::RetryAt(_)));
    // Five days but only two attempts in the streak: retry.
    let streak = Some(FailureStreak {
        since: at(NOW - 10 * five_days),
        attempts: 1,
    });
    assert!(matches!(decide(&c, 1, streak, NOW).0, NextStep::RetryAt(_)));
    // A first failure starts a streak now.
    assert_eq!(
        decide(&c, 1, None, NOW).1,
        Some(FailureStreak {
            since: at(NOW),
            attempts: 1
        })
    );
}

#[test]
fn retry_after_pushes_the_next_attempt_but_never_past_the_longest_step() {
    let s = RetrySchedule::default();
    let wait = |retry_after| {
        let c = failed(FailureCause::Status(429), retry_after);
        let NextStep::RetryAt(t) = decide(&c, 1, None, NOW).0 else {
            panic!()
        };
        Duration::from_millis(t.unix_millis() - NOW * 1000)
    };
    assert_eq!(
        wait(Some(Duration::from_secs(600))),
        Duration::from_secs(600)
    );
    assert_eq!(wait(Some(Duration::from_secs(u64::MAX))), s.longest());
    // Shorter than the step: the step wins.
    let w = wait(Some(Duration::from_secs(1)));
    assert!(w >= Duration::from_secs(5), "{w:?}");
}

#[test]
fn a_retry_past_year_9999_is_a_failed_delivery_not_a_panic() {
    let c = failed(FailureCause::Status(500), None);
    let end = Timestamp::from_unix_millis(253_402_300_799_000).unwrap();
    let d = next_step(
        &c,
        1,
        &RetrySchedule::default(),
        None,
        &DisablePolicy::default(),
        end,
        &mut rng(1),
    );
    assert_eq!(d.step, NextStep::Failed);
}

#[test]
fn disabled_reasons_serialize_lowercase() {
    for (r, text) in [
        (DisabledReason::Manual, "manual"),
        (DisabledReason::Gone, "gone"),
        (DisabledReason::Failing, "failing"),
    ] {
        assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{text}\""));
        assert_eq!(r.as_str(), text);
        assert_eq!(
            serde_json::from_str::<DisabledReason>(&format!("\"{text}\"")).unwrap(),
            r
        );
    }
    assert!(serde_json::from_str::<DisabledReason>("\"Gone\"").is_err());
}

// ---------------------------------------------------------------- pinning

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn url(s: &str) -> DestinationUrl {
    s.parse().unwrap()
}

#[test]
fn public_answers_are_pinned_with_the_port() {
    let u = url("https://hooks.example.com:8443/in");
    assert_eq!(
        lookup(&u).unwrap(),
        Lookup::Name("hooks.example.com".to_owned())
    );
    let pinned = pin_addresses(
        &u,
        &ips(&["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]),
        &HostPolicy::default(),
    )
    .unwrap();
    let shown: Vec<String> = pinned.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "93.184.215.14:8443",
            "[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:8443"
        ]
    );
}

#[test]
fn one_private_answer_refuses_them_all() {
    let u = url("https://hooks.example.com/in");
    let p = HostPolicy::default();
    for mixed in [
        &["93.184.215.14", "10.0.0.5"][..],
        &["127.0.0.1", "93.184.215.14"],
        &["93.184.215.14", "::ffff:169.254.169.254"],
        &["93.184.215.14", "::1"],
        &["93.184.215.14", "fd00::1"],
        &["93.184.215.14", "64:ff9b::a00:1"],
        &["0.0.0.0"],
    ] {
        let err = pin_addresses(&u, &ips(mixed), &p).unwrap_err();
        assert_eq!(err.code(), "address_not_allowed", "{mixed:?}");
    }
    assert_eq!(pin_addresses(&u, &[], &p).unwrap_err().code(), "no_address");
}

#[test]
fn literal_hosts_are_judged_even_when_stored_in_an_old_notation() {
    let p = HostPolicy::default();
    // A literal is judged itself, whatever the (unneeded) answers say.
    let u = url("https://93.184.215.14/in");
    assert_eq!(
        lookup(&u).unwrap(),
        Lookup::Literal("93.184.215.14".parse().unwrap())
    );
    assert_eq!(
        pin_addresses(&u, &ips(&["10.0.0.1"]), &p).unwrap()[0].to_string(),
        "93.184.215.14:443"
    );
    // Stored URLs skip the create-time policy; the delivery check still refuses them.
    for stored in [
        "https://127.0.0.1/",
        "https://0x7f.1/",
        "https://2130706433:8443/",
        "https://10.1.2.3/x",
    ] {
        let u = DestinationUrl::from_stored(stored.to_owned()).unwrap();
        assert!(
            matches!(lookup(&u).unwrap(), Lookup::Literal(_)),
            "{stored}"
        );
        let err = pin_addresses(&u, &ips(&["93.184.215.14"]), &p).unwrap_err();
        assert_eq!(err.code(), "address_not_allowed", "{stored}");
    }
    // A stored name in a reserved domain is resolved and judged by its answers.
    let u = DestinationUrl::from_stored("https://localhost/".to_owned()).unwrap();
    assert_eq!(
        pin_addresses(&u, &ips(&["127.0.0.1"]), &p)
            .unwrap_err()
            .code(),
        "address_not_allowed"
    );
}

#[test]
fn the_policy_allows_and_denies_at_delivery_time_with_deny_winning() {
    let u = url("https://hooks.example.com/in");
    let p = HostPolicy::default()
        .allow("10.0.0.0/8".parse().unwrap())
        .deny("10.9.0.0/16".parse().unwrap())
        .deny("168.63.129.16/32".parse().unwrap());
    assert!(pin_addresses(&u, &ips(&["10.1.2.3", "93.184.215.14"]), &p).is_ok());
    for bad in [
        "10.9.0.1",
        "168.63.129.16",
        "::ffff:168.63.129.16",
        "::ffff:10.9.9.9",
        "192.168.1.1",
    ] {
        assert_eq!(
            pin_addresses(&u, &ips(&["10.1.2.3", bad]), &p).unwrap_err(),
            prets_destinations::delivery::Refusal::NotAllowed(bad.parse().unwrap()),
            "{bad}"
        );
    }
}

// ---------------------------------------------------------------- attempts

#[test]
fn attempt_records_serialize_with_the_documented_fields_and_no_secret() {
    let (org, ring, plan) = setup();
    let e = event("{\"x\":1}");
    let req = plan_attempt(&org, &plan.record, &ring, &e, 2, at(NOW)).unwrap();
    let c = classify(
        Answer::Response {
            status: 503,
            retry_after: Some(b"600"),
        },
        at(NOW),
    );
    let d = next_step(
        &c,
        2,
        &RetrySchedule::default(),
        None,
        &DisablePolicy::default(),
        at(NOW),
        &mut rng(2),
    );
    let meta = AttemptMeta {
        attempt_id: AttemptId::generate(at(NOW), &mut rng(4)),
        event_id: e.event_id,
        destination_id: plan.record.destination_id,
        attempt: req.attempt(),
        started_at: at(NOW),
        duration_ms: 1234,
    };
    let rec = AttemptRecord::new(meta, &c, &d.step);
    assert_eq!(rec.outcome, AttemptOutcome::Failed);
    assert_eq!(rec.response_status, Some(503));
    assert_eq!(rec.error.as_deref(), Some("http status 503"));
    let json = serde_json::to_value(&rec).unwrap();
    let mut keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "attempt",
            "attemptId",
            "destinationId",
            "durationMs",
            "error",
            "eventId",
            "manual",
            "nextAttemptAt",
            "outcome",
            "responseStatus",
            "startedAt"
        ]
    );
    assert!(json["attemptId"].as_str().unwrap().starts_with("att_"));
    assert_eq!(json["outcome"], "failed");
    assert_eq!(json["nextAttemptAt"], "2023-11-14T22:23:20Z");
    let text = json.to_string();
    assert!(!text.contains("whsec_"), "{text}");
    let back: AttemptRecord = serde_json::from_value(json).unwrap();
    assert_eq!(back, rec);

    let ok = AttemptRecord::new(meta, &status(200), &NextStep::Delivered);
    let json = serde_json::to_value(&ok).unwrap();
    assert_eq!(json["outcome"], "succeeded");
    assert_eq!(json["error"], serde_json::Value::Null);
    assert_eq!(json["nextAttemptAt"], serde_json::Value::Null);

    let refused = classify(Answer::Failed(TransportError::Refused), at(NOW));
    let r = AttemptRecord::new(meta, &refused, &NextStep::Failed);
    assert_eq!(r.outcome, AttemptOutcome::Refused);
    assert_eq!(r.response_status, None);
    assert!(r.error.unwrap().len() <= prets_destinations::delivery::ERROR_MAX_CHARS);
}

#[test]
fn public_delivery_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Event>();
    check::<prets_destinations::delivery::DeliveryRequest>();
    check::<AttemptRecord>();
    check::<RetrySchedule>();
    check::<HostPolicy>();
}

#[test]
fn disabled_reasons_read_back_from_their_wire_form_only() {
    use prets_destinations::delivery::DisabledReason;
    for r in DisabledReason::ALL {
        assert_eq!(DisabledReason::from_wire(r.as_str()), Some(r));
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, format!("\"{}\"", r.as_str()));
    }
    for bad in ["", "Manual", "gone ", "disabled", "failing\0"] {
        assert_eq!(DisabledReason::from_wire(bad), None, "{bad:?}");
    }
}
