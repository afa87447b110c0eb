//! `MemoryRepo` as an `Outbox`: the outbox conformance kit, destination
//! state on the wire, and the publish, test-event and attempts operations.

use std::time::Duration;

use prets_destinations::conformance::outbox as kit;
use prets_destinations::delivery::EventId;
use prets_destinations::delivery::{
    Classification, CompleteOutcome, DisablePolicy, DisabledReason, LeaseRequest, LeaseToken,
    NextStep, Outbox, RetrySchedule,
};
use prets_destinations::ops::{OpError, SERVER_ID_ATTEMPTS, plan_finish};
use prets_destinations::{
    AttemptsOutcome, CreateDestinationRequest, CreateOutcome, DestinationRecord, DestinationRepo,
    ListAttemptsRequest, MemoryRepo, PublishOutcome, PublishRequest, TestOutcome,
    UpdateDestinationRequest, create, get, list_attempts, publish, send_test, update,
};

use crate::support::{block_on, keyring, now, rng, sealer, tenant};

#[test]
fn lease_exclusivity_under_concurrent_claims() {
    block_on(kit::lease_exclusivity_under_concurrent_claims(
        &MemoryRepo::new(),
        8,
    ));
}

#[test]
fn reoffer_after_lease_expiry() {
    block_on(kit::reoffer_after_lease_expiry(&MemoryRepo::new()));
}

#[test]
fn nothing_lost_across_complete_and_reschedule() {
    block_on(kit::nothing_lost_across_complete_and_reschedule(
        &MemoryRepo::new(),
    ));
}

#[test]
fn outbox_tenant_isolation() {
    block_on(kit::outbox_tenant_isolation(&MemoryRepo::new()));
}

#[test]
fn deleted_destination_has_nothing_pending() {
    block_on(kit::deleted_destination_has_nothing_pending(
        &MemoryRepo::new(),
    ));
}

#[test]
fn disabled_destinations_get_no_deliveries() {
    block_on(kit::disabled_destinations_get_no_deliveries(
        &MemoryRepo::new(),
    ));
}

#[test]
fn disabling_drops_the_backlog_at_once() {
    block_on(kit::disabling_drops_the_backlog_at_once(&MemoryRepo::new()));
}

#[test]
fn completing_after_a_disable_mid_flight_records_the_attempt() {
    block_on(kit::completing_after_a_disable_mid_flight_records_the_attempt(&MemoryRepo::new()));
}

#[test]
fn gone_disables_in_the_same_write() {
    block_on(kit::gone_disables_in_the_same_write(&MemoryRepo::new()));
}

#[test]
fn auto_disable_after_the_streak() {
    block_on(kit::auto_disable_after_the_streak(&MemoryRepo::new()));
}

#[test]
fn attempts_newest_first_with_cursor() {
    block_on(kit::attempts_newest_first_with_cursor(&MemoryRepo::new()));
}

#[test]
fn per_destination_cap_counts_live_leases() {
    block_on(kit::per_destination_cap_counts_live_leases(
        &MemoryRepo::new(),
    ));
}

#[test]
fn a_quiet_organization_is_served_beside_a_deep_backlog_on_one_destination() {
    block_on(kit::a_quiet_organization_is_served_beside_a_deep_backlog(
        &MemoryRepo::new(),
        1,
        10_000,
    ));
}

#[test]
fn a_quiet_organization_is_served_beside_a_deep_backlog_over_many_destinations() {
    block_on(kit::a_quiet_organization_is_served_beside_a_deep_backlog(
        &MemoryRepo::new(),
        10,
        10_000,
    ));
}

#[test]
fn failing_destinations_take_the_slow_lane() {
    block_on(kit::failing_destinations_take_the_slow_lane(
        &MemoryRepo::new(),
    ));
}

#[test]
fn earliest_due_first_within_a_destination() {
    block_on(kit::earliest_due_first_within_a_destination(
        &MemoryRepo::new(),
    ));
}

#[test]
fn claimed_destination_is_the_stored_record() {
    block_on(kit::claimed_destination_is_the_stored_record(
        &MemoryRepo::new(),
    ));
}

#[test]
fn complete_all_writes_as_complete_one_by_one() {
    block_on(kit::complete_all_writes_as_complete_one_by_one(
        &MemoryRepo::new(),
    ));
}

#[test]
fn enabling_clears_the_failure_streak() {
    block_on(kit::enabling_clears_the_failure_streak(&MemoryRepo::new()));
}

#[test]
fn queue_depth_counts_waiting_and_leased() {
    block_on(kit::queue_depth_counts_waiting_and_leased(
        &MemoryRepo::new(),
    ));
}

#[test]
fn run_all_twice_on_one_store() {
    // A store that already holds another run's data still conforms.
    let repo = MemoryRepo::new();
    block_on(kit::outbox_run_all(&repo));
    block_on(kit::outbox_run_all(&repo));
}

#[test]
fn a_shared_store_conforms_as_the_store_does() {
    // `Arc<MemoryRepo>`: how a host shares one store between its API and its
    // delivery worker. Both kits, through the `Arc` impls.
    let repo = std::sync::Arc::new(MemoryRepo::new());
    block_on(prets_destinations::conformance::run_all(&repo));
    block_on(kit::outbox_run_all(&repo));
}

fn created(repo: &MemoryRepo, t: &str, name: &str) -> CreateOutcome {
    let mut r = rng(7);
    let keys = keyring(1, &mut r);
    let req = CreateDestinationRequest::new(name, "https://example.com/hook");
    block_on(create(repo, &tenant(t), req, now(), &mut r, keys.current())).unwrap()
}

#[test]
fn a_record_stored_before_destination_state_loads_enabled() {
    let repo = MemoryRepo::new();
    let CreateOutcome::Created(c) = created(&repo, "org_1", "Old") else {
        panic!()
    };
    let record = block_on(repo.get(&tenant("org_1"), c.destination_id()))
        .unwrap()
        .unwrap();
    let mut json: serde_json::Value = serde_json::to_value(&record).unwrap();
    let obj = json.as_object_mut().unwrap();
    assert_eq!(obj.remove("enabled"), Some(serde_json::Value::Bool(true)));
    assert_eq!(obj.remove("disabledReason"), Some(serde_json::Value::Null));
    let old: DestinationRecord = serde_json::from_value(json).unwrap();
    assert!(old.enabled);
    assert_eq!(old.disabled_reason, None);
    assert_eq!(old, record);
}

#[test]
fn create_body_is_unchanged_and_views_show_the_state() {
    let repo = MemoryRepo::new();
    let outcome = created(&repo, "org_1", "New");
    let body = serde_json::to_value(outcome.into_result().unwrap()).unwrap();
    let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "bearerSecret",
            "createdAt",
            "destinationId",
            "name",
            "updatedAt",
            "url"
        ]
    );
    let id: prets_destinations::DestinationId =
        body["destinationId"].as_str().unwrap().parse().unwrap();
    let t = tenant("org_1");
    let view = block_on(get(&repo, &t, id)).unwrap().into_result().unwrap();
    let v = serde_json::to_value(&view).unwrap();
    assert_eq!(v["enabled"], true);
    assert_eq!(v["disabledReason"], serde_json::Value::Null);

    let later = prets_destinations::Timestamp::from_unix_seconds(now().unix_seconds() + 5).unwrap();
    let off: UpdateDestinationRequest = serde_json::from_str(r#"{"enabled":false}"#).unwrap();
    let view = block_on(update(
        &repo,
        &t,
        id,
        off,
        later,
        &mut crate::support::rng(1),
        &sealer(),
    ))
    .unwrap()
    .into_result()
    .unwrap();
    let v = serde_json::to_value(&view).unwrap();
    assert_eq!(
        (
            v["enabled"].clone(),
            v["disabledReason"].clone(),
            v["version"].clone()
        ),
        (false.into(), "manual".into(), 2.into())
    );
    let on = UpdateDestinationRequest::new()
        .with_enabled(true)
        .with_version(2);
    let view = block_on(update(
        &repo,
        &t,
        id,
        on,
        later,
        &mut crate::support::rng(1),
        &sealer(),
    ))
    .unwrap()
    .into_result()
    .unwrap();
    assert!(view.enabled());
    assert_eq!(view.disabled_reason(), None);
    assert_eq!(view.version(), 3);

    for bad in [
        r#"{"enabled":null}"#,
        r#"{"enabled":"false"}"#,
        r#"{"enabled":0}"#,
    ] {
        let req: UpdateDestinationRequest = serde_json::from_str(bad).unwrap();
        let e = req.validate().unwrap_err();
        assert_eq!(
            (e.errors()[0].field().as_str(), e.errors()[0].code()),
            ("enabled", "type"),
            "{bad}"
        );
    }
    assert!(
        serde_json::from_str::<UpdateDestinationRequest>(r#"{"enabled":true,"enabled":false}"#)
            .is_err()
    );
}

#[test]
fn publish_is_strict_and_answers_the_202_body() {
    let repo = MemoryRepo::new();
    let t = tenant("org_1");
    for _ in 0..2 {
        assert!(matches!(
            created(&repo, "org_1", "A"),
            CreateOutcome::Created(_)
        ));
    }
    assert!(matches!(
        created(&repo, "org_2", "B"),
        CreateOutcome::Created(_)
    ));
    for malformed in [
        r#"{"type":"a","payload":1,"extra":true}"#,
        r#"{"type":"a","type":"b","payload":1}"#,
        r#"{"type":"a","payload":1,"payload":2}"#,
        r#"[]"#,
    ] {
        assert!(
            serde_json::from_str::<PublishRequest>(malformed).is_err(),
            "{malformed}"
        );
    }
    let cases = [
        (r#"{"payload":{}}"#, vec![("type", "required")]),
        (r#"{"type":"x"}"#, vec![("payload", "required")]),
        (r#"{"type":7,"payload":{}}"#, vec![("type", "type")]),
        (r#"{"type":null,"payload":{}}"#, vec![("type", "type")]),
        (r#"{"type":"","payload":{}}"#, vec![("type", "too_short")]),
        (
            r#"{"type":"a b"}"#,
            vec![("type", "pattern"), ("payload", "required")],
        ),
    ];
    let mut r = rng(3);
    for (body, want) in cases {
        let req: PublishRequest = serde_json::from_str(body).unwrap();
        let out = block_on(publish(&repo, &t, req, now(), &mut r)).unwrap();
        let PublishOutcome::Invalid(errors) = out else {
            panic!("{body}: {out:?}")
        };
        let got: Vec<_> = errors
            .errors()
            .iter()
            .map(|e| (e.field().as_str(), e.code()))
            .collect();
        assert_eq!(got, want, "{body}");
    }
    let big = format!(r#"{{"type":"x","payload":"{}"}}"#, "a".repeat(300 * 1024));
    let req: PublishRequest = serde_json::from_str(&big).unwrap();
    let err = block_on(publish(&repo, &t, req, now(), &mut r))
        .unwrap()
        .into_result()
        .unwrap_err();
    assert_eq!((err.status(), err.code()), (422, "too_large"));

    let req: PublishRequest =
        serde_json::from_str(r#"{"type":"invoice.paid","payload":{"a": 1}}"#).unwrap();
    let body = block_on(publish(&repo, &t, req, now(), &mut r))
        .unwrap()
        .into_result()
        .unwrap();
    let v = serde_json::to_value(&body).unwrap();
    assert_eq!(v["type"], "invoice.paid");
    assert_eq!(v["destinations"], 2);
    assert_eq!(v["createdAt"], now().truncated().to_string());
    assert!(v["eventId"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(v.as_object().unwrap().len(), 4);
    // The payload is delivered byte for byte.
    let lease = LeaseRequest {
        token: LeaseToken::generate(&mut r),
        duration: Duration::from_secs(30),
    };
    let claimed = block_on(repo.claim(now(), 10.into(), lease)).unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(
        claimed
            .iter()
            .all(|c| c.event.payload.get() == r#"{"a": 1}"#)
    );
    assert!(claimed.iter().all(|c| c.lease.delivery.tenant == t));
}

/// A client's `eventId`: validated (`pattern`, `type`, named `eventId`,
/// listed with the other fields' errors), kept as the event's id; a publish
/// of it again with the same type and payload bytes answers the first body
/// and queues nothing, and anything else under it is `409 event_exists`
/// naming it. Another organization's same id is its own event.
#[test]
fn a_client_event_id_makes_publish_idempotent() {
    let repo = MemoryRepo::new();
    let t = tenant("org_1");
    for _ in 0..2 {
        assert!(matches!(
            created(&repo, "org_1", "A"),
            CreateOutcome::Created(_)
        ));
    }
    let mut r = rng(23);
    let id = "evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFG";
    for (body, want) in [
        (
            r#"{"type":"a","payload":1,"eventId":null}"#.to_owned(),
            vec![("eventId", "type")],
        ),
        (
            r#"{"type":"a","payload":1,"eventId":7}"#.to_owned(),
            vec![("eventId", "type")],
        ),
        (
            r#"{"type":"a","payload":1,"eventId":"evt_01hf2v3j6t0q8x5y7z9abcdefg"}"#.to_owned(),
            vec![("eventId", "pattern")],
        ),
        (
            r#"{"type":"a","payload":1,"eventId":"whk_01HF2V3J6T0Q8X5Y7Z9ABCDEFG"}"#.to_owned(),
            vec![("eventId", "pattern")],
        ),
        (
            r#"{"type":"a","payload":1,"eventId":"evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFGH"}"#.to_owned(),
            vec![("eventId", "pattern")],
        ),
        (
            r#"{"type":"a","payload":1,"eventId":"evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFI"}"#.to_owned(),
            vec![("eventId", "pattern")],
        ),
        (
            format!(r#"{{"type":"a","payload":1,"eventId":"{id}\n"}}"#),
            vec![("eventId", "pattern")],
        ),
        (
            r#"{"type":"a b","eventId":""}"#.to_owned(),
            vec![
                ("eventId", "pattern"),
                ("type", "pattern"),
                ("payload", "required"),
            ],
        ),
    ] {
        let req: PublishRequest = serde_json::from_str(&body).unwrap();
        let out = block_on(publish(&repo, &t, req, now(), &mut r)).unwrap();
        let PublishOutcome::Invalid(errors) = out else {
            panic!("{body}: {out:?}")
        };
        let got: Vec<_> = errors
            .errors()
            .iter()
            .map(|e| (e.field().as_str(), e.code()))
            .collect();
        assert_eq!(got, want, "{body}");
    }
    assert!(
        serde_json::from_str::<PublishRequest>(&format!(
            r#"{{"type":"a","payload":1,"eventId":"{id}","eventId":"{id}"}}"#
        ))
        .is_err()
    );
    let publish_body = |body: &str, at, r: &mut _| {
        let req: PublishRequest = serde_json::from_str(body).unwrap();
        block_on(publish(&repo, &t, req, at, r)).unwrap()
    };
    let body = format!(r#"{{"eventId":"{id}","type":"invoice.paid","payload":{{"a": 1}}}}"#);
    let PublishOutcome::Accepted(first) = publish_body(&body, now(), &mut r) else {
        panic!("the first publish")
    };
    assert_eq!(first.event_id.to_string(), id);
    assert_eq!(first.destinations, 2);
    let later = now().checked_add(Duration::from_secs(90)).unwrap();
    // Another destination since: a retry still answers the first body.
    assert!(matches!(
        created(&repo, "org_1", "C"),
        CreateOutcome::Created(_)
    ));
    assert_eq!(
        publish_body(&body, later, &mut r),
        PublishOutcome::Replayed(first.clone())
    );
    for other in [
        format!(r#"{{"eventId":"{id}","type":"invoice.paid","payload":{{"a":1}}}}"#),
        format!(r#"{{"eventId":"{id}","type":"invoice.paid","payload":{{"a": 2}}}}"#),
        format!(r#"{{"eventId":"{id}","type":"invoice.void","payload":{{"a": 1}}}}"#),
    ] {
        let out = publish_body(&other, later, &mut r);
        assert_eq!(out, PublishOutcome::Exists(first.event_id), "{other}");
        let err = out.into_result().unwrap_err();
        assert_eq!((err.status(), err.code()), (409, "event_exists"));
        assert_eq!(err.errors().errors()[0].field().as_str(), "eventId");
    }
    let lease = LeaseRequest {
        token: LeaseToken::generate(&mut r),
        duration: Duration::from_secs(30),
    };
    let claimed = block_on(repo.claim(later, 10.into(), lease)).unwrap();
    assert_eq!(claimed.len(), 2, "a retry queued more");
    assert!(
        claimed
            .iter()
            .all(|c| c.event.event_id == first.event_id && c.event.payload.get() == r#"{"a": 1}"#)
    );
    // Scoped per organization.
    assert!(matches!(
        created(&repo, "org_2", "B"),
        CreateOutcome::Created(_)
    ));
    let req: PublishRequest = serde_json::from_str(&body).unwrap();
    let PublishOutcome::Accepted(theirs) =
        block_on(publish(&repo, &tenant("org_2"), req, later, &mut r)).unwrap()
    else {
        panic!("another organization's publish")
    };
    assert_eq!(
        (theirs.event_id, theirs.created_at, theirs.destinations),
        (first.event_id, later.truncated(), 1)
    );
}

/// A minted id that the organization already has (a client chose it
/// first) is minted again, never answered 409 nor merged into the other
/// event; one that keeps colliding ends in `OpError::IdCollisions` after
/// `SERVER_ID_ATTEMPTS`, with nothing stored.
#[test]
fn a_minted_event_id_that_exists_is_minted_again() {
    let repo = MemoryRepo::new();
    let t = tenant("org_1");
    assert!(matches!(
        created(&repo, "org_1", "A"),
        CreateOutcome::Created(_)
    ));
    let mut r = rng(31);
    // The ids `r` will mint, in order, taken by the client first.
    let mut predict = r.clone();
    let minted: Vec<EventId> = (0..SERVER_ID_ATTEMPTS + 1)
        .map(|_| EventId::generate(now(), &mut predict))
        .collect();
    let mut other = rng(32);
    let publish_as = |id: Option<EventId>, rng: &mut _| {
        let mut req = PublishRequest::new("invoice.paid", "1".to_owned()).unwrap();
        if let Some(id) = id {
            req = req.with_event_id(id.to_string());
        }
        block_on(publish(&repo, &t, req, now(), rng))
    };
    let first = publish_as(Some(minted[0]), &mut other).unwrap();
    assert!(matches!(first, PublishOutcome::Accepted(_)));
    let PublishOutcome::Accepted(second) = publish_as(None, &mut r.clone()).unwrap() else {
        panic!("a minted id that exists")
    };
    assert_eq!(second.event_id, minted[1], "minted again");
    for id in &minted[2..] {
        assert!(matches!(
            publish_as(Some(*id), &mut other).unwrap(),
            PublishOutcome::Accepted(_)
        ));
    }
    // Every id `r` mints now exists: ids 0 to SERVER_ID_ATTEMPTS - 1.
    match publish_as(None, &mut r) {
        Err(OpError::IdCollisions { attempts }) => assert_eq!(attempts, SERVER_ID_ATTEMPTS),
        other => panic!("{other:?}"),
    }
    let lease = LeaseRequest {
        token: LeaseToken::generate(&mut other),
        duration: Duration::from_secs(30),
    };
    let claimed = block_on(repo.claim(now(), 100.into(), lease)).unwrap();
    assert_eq!(claimed.len(), minted.len(), "one delivery per stored event");
}

#[test]
fn test_events_and_attempt_pages() {
    let repo = MemoryRepo::new();
    let t = tenant("org_1");
    let CreateOutcome::Created(c) = created(&repo, "org_1", "A") else {
        panic!()
    };
    let id = c.destination_id();
    let mut r = rng(5);
    let other: prets_destinations::DestinationId =
        "whk_01HF2V3J6T0Q8X5Y7Z9ABCDEFG".parse().unwrap();
    assert_eq!(
        block_on(send_test(&repo, &t, other, now(), &mut r)).unwrap(),
        TestOutcome::NotFound
    );
    assert_eq!(
        block_on(send_test(&repo, &tenant("org_2"), id, now(), &mut r)).unwrap(),
        TestOutcome::NotFound
    );
    let TestOutcome::Accepted(sent) = block_on(send_test(&repo, &t, id, now(), &mut r)).unwrap()
    else {
        panic!()
    };
    assert_eq!(sent.event_type.as_str(), "destination.test");
    assert_eq!(sent.destinations, 1);

    // Attempts: three failures, paged two at a time.
    let schedule = RetrySchedule::default();
    let mut clock = now();
    for _ in 0..3 {
        let lease = LeaseRequest {
            token: LeaseToken::generate(&mut r),
            duration: Duration::from_secs(30),
        };
        let claimed = block_on(repo.claim(clock, 10.into(), lease)).unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(
            claimed[0].event.payload.get(),
            format!(r#"{{"destinationId":"{id}"}}"#)
        );
        let failed = prets_destinations::delivery::classify(
            prets_destinations::delivery::Answer::Response {
                status: 503,
                retry_after: None,
            },
            clock,
        );
        let report = plan_finish(
            &claimed[0],
            &failed,
            clock,
            Duration::from_millis(40),
            &schedule,
            DisablePolicy::default(),
            &mut r,
        );
        let NextStep::RetryAt(next) = report.next else {
            panic!("{:?}", report.next)
        };
        assert_eq!(
            block_on(repo.complete(&claimed[0].lease, report)).unwrap(),
            CompleteOutcome::Recorded {
                disabled: None,
                retry_at: Some(next)
            }
        );
        clock = next;
    }
    let first = block_on(list_attempts(
        &repo,
        &t,
        id,
        ListAttemptsRequest::new().with_limit(2),
    ))
    .unwrap();
    let first = first.into_result().unwrap();
    assert!(first.has_more);
    assert_eq!(first.data.len(), 2);
    assert_eq!(first.data[0].attempt, 3);
    let v = serde_json::to_value(&first).unwrap();
    let item = v["data"][0].as_object().unwrap();
    let mut keys: Vec<_> = item.keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "attempt",
            "attemptId",
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
    assert_eq!(item["responseStatus"], 503);
    assert_eq!(item["outcome"], "failed");
    let cursor = first.next_cursor.unwrap().to_string();
    let second = block_on(list_attempts(
        &repo,
        &t,
        id,
        ListAttemptsRequest::new().with_limit(2).with_cursor(cursor),
    ))
    .unwrap();
    let second = second.into_result().unwrap();
    assert!(!second.has_more);
    assert_eq!(second.next_cursor, None);
    assert_eq!(second.data.len(), 1);
    assert_eq!(second.data[0].attempt, 1);

    let out = block_on(list_attempts(
        &repo,
        &tenant("org_2"),
        id,
        ListAttemptsRequest::new(),
    ))
    .unwrap();
    assert_eq!(out, AttemptsOutcome::NotFound);
    let bad = ListAttemptsRequest::new()
        .with_limit(0)
        .with_cursor("whk_01HF2V3J6T0Q8X5Y7Z9ABCDEFG");
    let out = block_on(list_attempts(&repo, &t, id, bad))
        .unwrap()
        .into_result()
        .unwrap_err();
    let got: Vec<_> = out
        .errors()
        .errors()
        .iter()
        .map(|e| (e.field().as_str(), e.code()))
        .collect();
    assert_eq!(got, [("limit", "out_of_range"), ("cursor", "invalid")]);

    // Disabled: no test event.
    let off = UpdateDestinationRequest::new().with_enabled(false);
    let _ = block_on(update(
        &repo,
        &t,
        id,
        off,
        clock,
        &mut crate::support::rng(1),
        &sealer(),
    ))
    .unwrap()
    .into_result()
    .unwrap();
    let out = block_on(send_test(&repo, &t, id, clock, &mut r)).unwrap();
    assert_eq!(out, TestOutcome::Disabled);
    let e = out.into_result().unwrap_err();
    assert_eq!((e.status(), e.code()), (409, "disabled"));
    let rec = block_on(repo.get(&t, id)).unwrap().unwrap();
    assert_eq!(rec.disabled_reason, Some(DisabledReason::Manual));
    let _ = Classification::Gone;
}

#[test]
fn event_ids_are_remembered() {
    block_on(kit::event_ids_are_remembered(&MemoryRepo::new()));
}

#[test]
fn publish_is_idempotent_by_event_id() {
    block_on(kit::publish_is_idempotent_by_event_id(&MemoryRepo::new()));
}

#[test]
fn concurrent_enqueues_of_one_id_store_one() {
    block_on(kit::concurrent_enqueues_of_one_id_store_one(
        &MemoryRepo::new(),
        16,
    ));
}

#[test]
fn expired_event_ids_are_forgotten() {
    block_on(kit::expired_event_ids_are_forgotten(&MemoryRepo::new()));
}

#[test]
fn a_busy_tenant_forgets_only_its_own_ids() {
    block_on(kit::a_busy_tenant_forgets_only_its_own_ids(
        &MemoryRepo::new(),
    ));
}
