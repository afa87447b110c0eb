//! The lifecycle's request and response bodies: shapes, names, refusals,
//! and that no view or page ever carries a secret.

use prets_destinations::ops::plan_create;
use prets_destinations::secret::GracePeriod;
use prets_destinations::wire::{ApiErrorKind, DestinationPage, DestinationView, MAX_PAGE_LIMIT};
use prets_destinations::{
    ApiError, CreateOutcome, DeletedDestination, ListDestinationsRequest, RotateSecretRequest,
    UpdateDestinationRequest,
};
use serde_json::{Value, json};

use crate::support::{keyring, now, rng, tenant};

fn codes(errors: &prets_destinations::ValidationErrors) -> Vec<(&'static str, &'static str)> {
    errors
        .errors()
        .iter()
        .map(|e| (e.field().as_str(), e.code()))
        .collect()
}

#[test]
fn update_reports_every_bad_field_at_once_with_create_codes() {
    let long_name = "n".repeat(129);
    let body = json!({"name": long_name, "url": "http://example.com/", "version": -1});
    let req: UpdateDestinationRequest = serde_json::from_value(body).unwrap();
    assert_eq!(
        codes(&req.validate().unwrap_err()),
        [
            ("name", "too_long"),
            ("url", "not_https"),
            ("version", "out_of_range")
        ]
    );
    for body in [
        json!({"name": null}),
        json!({"url": 5}),
        json!({"name": ["a"]}),
    ] {
        let req: UpdateDestinationRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(codes(&req.validate().unwrap_err())[0].1, "type", "{body}");
    }
}

#[test]
fn update_refuses_unknown_repeated_and_immutable_members_without_echoing() {
    for body in [
        r#"{"destinationId":"whk_01HF2V3J6T0Q8X5Y7Z9ABCDEFG"}"#,
        r#"{"bearerSecret":"whsec_x"}"#,
        r#"{"createdAt":"2020-01-01T00:00:00Z"}"#,
        r#"{"secretName_zz":1}"#,
        r#"{"name":"a","name":"b"}"#,
        r#"[]"#,
    ] {
        let err = serde_json::from_str::<UpdateDestinationRequest>(body).unwrap_err();
        assert!(!err.to_string().contains("secretName_zz"), "{err}");
    }
}

#[test]
fn an_empty_or_partial_patch_is_valid() {
    let patch: UpdateDestinationRequest = serde_json::from_str("{}").unwrap();
    let patch = patch.validate().unwrap();
    assert_eq!(
        (patch.name, patch.url, patch.expected_version),
        (None, None, None)
    );
    let patch: UpdateDestinationRequest =
        serde_json::from_str(r#"{"url":"https://example.com/new","version":3}"#).unwrap();
    let patch = patch.validate().unwrap();
    assert_eq!(patch.url.unwrap().as_str(), "https://example.com/new");
    assert_eq!((patch.name, patch.expected_version), (None, Some(3)));
}

#[test]
fn list_limits_default_bound_and_accept_query_string_text() {
    let default = ListDestinationsRequest::new().validate().unwrap();
    assert_eq!((default.limit, default.after), (20, None));
    for (limit, ok) in [
        (json!(1), true),
        (json!(MAX_PAGE_LIMIT), true),
        (json!("100"), true),
        (json!("007"), true),
        (json!(0), false),
        (json!(101), false),
        (json!("101"), false),
        (json!("99999999999999999999999"), false),
    ] {
        let req: ListDestinationsRequest =
            serde_json::from_value(json!({ "limit": limit })).unwrap();
        match req.validate() {
            Ok(p) => assert!(ok && (1..=MAX_PAGE_LIMIT).contains(&p.limit), "{limit}"),
            Err(e) => assert!(!ok && codes(&e) == [("limit", "out_of_range")], "{limit}"),
        }
    }
    for limit in [
        json!("+5"),
        json!("-1"),
        json!(" 5"),
        json!(""),
        json!(2.5),
        json!(null),
        json!(-3),
    ] {
        let req: ListDestinationsRequest =
            serde_json::from_value(json!({ "limit": limit })).unwrap();
        assert_eq!(
            codes(&req.validate().unwrap_err()),
            [("limit", "type")],
            "{limit}"
        );
    }
}

#[test]
fn list_cursor_is_an_id_and_bad_ones_are_refused() {
    let id = "whk_01HF2V3J6T0Q8X5Y7Z9ABCDEFG";
    let req: ListDestinationsRequest = serde_json::from_value(json!({ "cursor": id })).unwrap();
    assert_eq!(req.validate().unwrap().after.unwrap().to_string(), id);
    for cursor in [
        "",
        "whk_",
        "whk_01hf2v3j6t0q8x5y7z9abcdefg",
        "01HF2V3J6T0Q8X5Y7Z9ABCDEFG",
    ] {
        let req = ListDestinationsRequest::new().with_cursor(cursor);
        assert_eq!(codes(&req.validate().unwrap_err()), [("cursor", "invalid")]);
    }
    assert!(serde_json::from_str::<ListDestinationsRequest>(r#"{"offset":1}"#).is_err());
}

#[test]
fn rotation_grace_period_bounds_and_default() {
    for (secs, ok) in [
        (0, true),
        (1, true),
        (86_400, true),
        (604_800, true),
        (604_801, false),
        (u64::MAX, false),
    ] {
        let req: RotateSecretRequest =
            serde_json::from_value(json!({ "gracePeriodSeconds": secs })).unwrap();
        match req.validate() {
            Ok(r) => {
                assert!(ok && r.grace_period.as_secs() == secs && r.expected_version.is_none())
            }
            Err(e) => assert!(!ok && codes(&e) == [("gracePeriodSeconds", "out_of_range")]),
        }
    }
    let req: RotateSecretRequest = serde_json::from_str("{}").unwrap();
    assert_eq!(req.validate().unwrap().grace_period, GracePeriod::default());
    assert_eq!(GracePeriod::default().as_secs(), 24 * 3600);
    for bad in [json!(null), json!("60"), json!(-1), json!(1.5)] {
        let req: RotateSecretRequest =
            serde_json::from_value(json!({ "gracePeriodSeconds": bad })).unwrap();
        assert_eq!(
            codes(&req.validate().unwrap_err()),
            [("gracePeriodSeconds", "type")]
        );
    }
    assert!(serde_json::from_str::<RotateSecretRequest>(r#"{"grace":1}"#).is_err());
}

#[test]
fn views_pages_and_deletes_serialize_camel_case_without_secrets() {
    let mut rng = rng(3);
    let keys = keyring(1, &mut rng);
    let req = prets_destinations::CreateDestinationRequest::new("Prod", "https://example.com/a");
    let plan = plan_create(req, &tenant("org"), now(), &mut rng, keys.current()).unwrap();
    let secret = plan.response.bearer_secret().expose_secret().to_owned();
    let view = DestinationView::from(&plan.record);
    let value = serde_json::to_value(&view).unwrap();
    let keys_seen: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
    let mut sorted = keys_seen.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "createdAt",
            "description",
            "destinationId",
            "disabledReason",
            "enabled",
            "filterTypes",
            "headers",
            "metadata",
            "name",
            "signing",
            "updatedAt",
            "url",
            "version"
        ]
    );
    assert_eq!(value["enabled"], true);
    assert_eq!(value["disabledReason"], serde_json::Value::Null);
    // A destination created without the receiver members shows their
    // defaults: bearer only, every event, no headers, description or metadata.
    assert_eq!(value["signing"], "bearer");
    assert_eq!(value["filterTypes"], serde_json::json!([]));
    assert_eq!(value["headers"], serde_json::json!({}));
    assert_eq!(value["description"], "");
    assert_eq!(value["metadata"], serde_json::json!({}));
    let page = DestinationPage {
        data: vec![view.clone()],
        has_more: true,
        next_cursor: Some(view.destination_id()),
    };
    let text = serde_json::to_string(&page).unwrap();
    for t in [&text, &format!("{view:?}"), &format!("{page:?}")] {
        assert!(!t.contains(&secret[6..]), "a secret in {t}");
        assert!(
            !t.contains(&plan.record.secret_digest.to_string()),
            "a digest in {t}"
        );
    }
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["hasMore"], json!(true));
    assert_eq!(
        value["nextCursor"],
        json!(view.destination_id().to_string())
    );
    assert_eq!(
        value["data"][0]["createdAt"],
        json!(view.created_at().to_string())
    );
    assert_eq!(
        serde_json::from_str::<DestinationPage>(&text).unwrap(),
        page
    );
    let last = DestinationPage {
        data: vec![],
        has_more: false,
        next_cursor: None,
    };
    assert_eq!(
        serde_json::to_value(&last).unwrap(),
        json!({"data": [], "hasMore": false, "nextCursor": null})
    );
    let deleted = DeletedDestination {
        destination_id: view.destination_id(),
        deleted: true,
    };
    assert_eq!(
        serde_json::to_value(deleted).unwrap(),
        json!({"destinationId": view.destination_id().to_string(), "deleted": true})
    );
}

#[test]
fn api_errors_use_the_create_error_body_and_stable_codes() {
    let cases = [
        (ApiError::NotFound, 404, "destinationId", "not_found"),
        (
            ApiError::Conflict {
                existing: "whk_01HF2V3J6T0Q8X5Y7Z9ABCDEFG".parse().unwrap(),
            },
            409,
            "destinationId",
            "conflict",
        ),
        (
            ApiError::VersionMismatch,
            409,
            "version",
            "version_mismatch",
        ),
        (ApiError::Disabled, 409, "destinationId", "disabled"),
    ];
    for (e, status, field, code) in cases {
        assert_eq!((e.status(), e.code()), (status, code));
        let body = serde_json::to_value(&e).unwrap();
        assert_eq!(body["errors"].as_array().unwrap().len(), 1);
        assert_eq!(body["errors"][0]["field"], json!(field));
        assert_eq!(body["errors"][0]["code"], json!(code));
        assert!(body["errors"][0]["message"].is_string());
    }
    let invalid = UpdateDestinationRequest::new()
        .with_name("")
        .validate()
        .unwrap_err();
    let e = ApiError::from(invalid.clone());
    assert_eq!((e.status(), e.code()), (422, "too_short"));
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        serde_json::to_value(&invalid).unwrap()
    );
}

/// ARCHITECTURE.md's error-code table lists every code of `ApiErrorKind`,
/// the one table in the code, with its field and status, and claims a
/// status for no other code.
#[test]
fn the_documented_error_codes_are_the_api_error_table() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ARCHITECTURE.md")).unwrap();
    let section = doc
        .split("### Error codes")
        .nth(1)
        .expect("ARCHITECTURE.md has an error-code section");
    // `| `field` | `code` | when (status) |` rows that name a status.
    let mut documented = Vec::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row
            .split(" | ")
            .map(|c| c.trim_matches(['|', ' ']))
            .collect();
        let [field, code, when] = cells[..] else {
            panic!("not a three-column row: {row}")
        };
        let status = when
            .strip_suffix(')')
            .and_then(|w| w.rsplit_once('('))
            .and_then(|(_, s)| s.parse::<u16>().ok());
        if let Some(status) = status {
            documented.push((field.trim_matches('`'), code.trim_matches('`'), status));
        }
    }
    let table: Vec<(&str, &str, u16)> = ApiErrorKind::ALL
        .iter()
        .filter_map(|kind| {
            kind.error()
                .map(|e| (e.field().as_str(), e.code(), kind.status()))
        })
        .collect();
    assert_eq!(
        table.len(),
        ApiErrorKind::ALL.len() - 1,
        "only Invalid has no code"
    );
    documented.sort_unstable();
    let mut expected = table.clone();
    expected.sort_unstable();
    assert_eq!(documented, expected);
    assert_eq!(ApiErrorKind::Invalid.status(), 422);
}

#[test]
fn every_outcome_gives_its_api_error_by_into_result() {
    use prets_destinations::{
        AttemptsOutcome, DeleteOutcome, GetOutcome, RotateOutcome, TestOutcome, UpdateOutcome,
    };
    let id = "whk_01HF2V3J6T0Q8X5Y7Z9ABCDEFG".parse().unwrap();
    assert_eq!(DeleteOutcome::Deleted.into_result(), Ok(()));
    assert_eq!(
        serde_json::to_value(DeletedDestination::of(id)).unwrap(),
        json!({"destinationId": id.to_string(), "deleted": true})
    );
    let errors = [
        DeleteOutcome::NotFound.into_result().map(drop),
        GetOutcome::NotFound.into_result().map(drop),
        UpdateOutcome::VersionMismatch.into_result().map(drop),
        UpdateOutcome::VersionExhausted.into_result().map(drop),
        UpdateOutcome::Contention.into_result().map(drop),
        RotateOutcome::NotFound.into_result().map(drop),
        TestOutcome::Disabled.into_result().map(drop),
        AttemptsOutcome::NotFound.into_result().map(drop),
    ];
    assert_eq!(
        errors.map(|e| e.unwrap_err().kind()),
        [
            ApiErrorKind::NotFound,
            ApiErrorKind::NotFound,
            ApiErrorKind::VersionMismatch,
            ApiErrorKind::VersionExhausted,
            ApiErrorKind::Contention,
            ApiErrorKind::NotFound,
            ApiErrorKind::Disabled,
            ApiErrorKind::NotFound,
        ]
    );
}

#[test]
fn create_outcomes_map_to_api_answers() {
    let existing = "whk_01HF2V3J6T0Q8X5Y7Z9ABCDEFG".parse().unwrap();
    let e = CreateOutcome::Conflict { existing }
        .into_result()
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (409, "conflict"));
    // The error keeps the destination that exists, for the answer.
    assert_eq!(e, ApiError::Conflict { existing });
    let bad = prets_destinations::CreateDestinationRequest::new("", "https://example.com/")
        .validate()
        .unwrap_err();
    let e = CreateOutcome::Invalid(bad).into_result().unwrap_err();
    assert_eq!((e.status(), e.code()), (422, "too_short"));
}

#[test]
fn update_version_must_be_between_1_and_2_pow_63_minus_1() {
    assert_eq!(prets_destinations::record::MAX_VERSION, (1u64 << 63) - 1);
    for (text, expected) in [
        ("1", Ok(1)),
        ("9223372036854775807", Ok(9_223_372_036_854_775_807)),
        ("0", Err("out_of_range")),
        ("-1", Err("out_of_range")),
        ("-9223372036854775808", Err("out_of_range")),
        ("-9223372036854775809", Err("out_of_range")),
        ("9223372036854775808", Err("out_of_range")),
        ("18446744073709551615", Err("out_of_range")),
        ("18446744073709551616", Err("out_of_range")),
        ("1e30", Err("out_of_range")),
        ("-1e30", Err("out_of_range")),
        ("1.5", Err("type")),
        ("1.0", Err("type")),
        ("null", Err("type")),
        ("\"2\"", Err("type")),
        ("true", Err("type")),
    ] {
        let body = format!(r#"{{"version":{text}}}"#);
        let req: UpdateDestinationRequest = serde_json::from_str(&body).unwrap();
        match (req.validate(), expected) {
            (Ok(patch), Ok(v)) => assert_eq!(patch.expected_version, Some(v), "{text}"),
            (Err(e), Err(code)) => assert_eq!(codes(&e), [("version", code)], "{text}"),
            (got, want) => panic!("{text}: {got:?}, expected {want:?}"),
        }
        // A rotation reads `version` by the same rule.
        let req: RotateSecretRequest = serde_json::from_str(&body).unwrap();
        match (req.validate(), expected) {
            (Ok(r), Ok(v)) => assert_eq!(r.expected_version, Some(v), "rotate {text}"),
            (Err(e), Err(code)) => assert_eq!(codes(&e), [("version", code)], "rotate {text}"),
            (got, want) => panic!("rotate {text}: {got:?}, expected {want:?}"),
        }
    }
    let v = UpdateDestinationRequest::new().with_version(u64::MAX);
    assert_eq!(
        codes(&v.validate().unwrap_err()),
        [("version", "out_of_range")]
    );
    let err = UpdateDestinationRequest::new()
        .with_version(0)
        .validate()
        .unwrap_err();
    let api = ApiError::Invalid(err);
    assert_eq!((api.status(), api.code()), (422, "out_of_range"));
    // Both rotation members are checked, every error at once.
    let req: RotateSecretRequest =
        serde_json::from_str(r#"{"gracePeriodSeconds":604801,"version":0}"#).unwrap();
    assert_eq!(
        codes(&req.validate().unwrap_err()),
        [
            ("gracePeriodSeconds", "out_of_range"),
            ("version", "out_of_range")
        ]
    );
}

#[test]
fn contention_and_exhaustion_have_their_own_codes() {
    let e = ApiError::Contention;
    assert_eq!((e.status(), e.code()), (503, "contention"));
    assert_eq!(e.errors().errors()[0].field().as_str(), "destinationId");
    let e = ApiError::VersionExhausted;
    assert_eq!((e.status(), e.code()), (409, "version_exhausted"));
    assert_eq!(e.errors().errors()[0].field().as_str(), "version");
}
