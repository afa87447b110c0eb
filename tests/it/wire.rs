//! The request body of `POST /v1/events/destinations` and the validation
//! error body: field names exactly as in the spec, unknown and duplicate
//! members refused, every bad field reported at once.

use prets_destinations::error::Field;
use prets_destinations::{CreateDestinationRequest, ValidationErrors};
use serde_json::{Value, json};

use crate::support::Keys;

/// The request body from the spec, with its `"<string>"` placeholder.
const SPEC_REQUEST: &str = r#"
{
  "name": "Production",
  "url": "https://example.com/prets/events",
  "destinationId": "<string>"
}
"#;

const ID: &str = "whk_01ARZ3NDEKTSV4RRFFQ69G5FAV";

fn request(json: &str) -> Result<CreateDestinationRequest, serde_json::Error> {
    serde_json::from_str(json)
}

/// `(field, code)` of every error, in order.
fn codes(errors: &ValidationErrors) -> Vec<(&'static str, &'static str)> {
    errors
        .errors()
        .iter()
        .map(|e| (e.field().as_str(), e.code()))
        .collect()
}

fn errors_of(json: &str) -> ValidationErrors {
    request(json).unwrap().validate().unwrap_err()
}

fn keys(json: &str) -> Vec<String> {
    serde_json::from_str::<Keys>(json).unwrap().0
}

#[test]
fn the_spec_example_deserializes_and_only_its_placeholder_id_is_refused() {
    let errors = errors_of(SPEC_REQUEST);
    assert_eq!(codes(&errors), [("destinationId", "pattern")]);
}

#[test]
fn the_spec_example_with_a_real_id_validates() {
    let body = SPEC_REQUEST.replace("<string>", ID);
    let new = request(&body).unwrap().validate().unwrap();
    assert_eq!(new.name.as_str(), "Production");
    assert_eq!(new.url.as_str(), "https://example.com/prets/events");
    assert_eq!(
        new.destination_id.map(|id| id.to_string()).as_deref(),
        Some(ID)
    );
}

#[test]
fn ids_wider_than_a_ulid_validate() {
    for id in [
        "whk_Z1ARZ3NDEKTSV4RRFFQ69G5FAV",
        "whk_80000000000000000000000000",
        "whk_ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
    ] {
        let body = SPEC_REQUEST.replace("<string>", id);
        let new = request(&body).unwrap().validate().unwrap();
        assert_eq!(
            new.destination_id.map(|d| d.to_string()).as_deref(),
            Some(id)
        );
    }
}

#[test]
fn destination_id_is_optional() {
    let new = request(r#"{"name":"Production","url":"https://example.com/prets/events"}"#)
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(new.destination_id, None);
    // Member order does not matter.
    let new = request(&format!(
        r#"{{"destinationId":"{ID}","url":"https://example.com/","name":"x"}}"#
    ))
    .unwrap()
    .validate()
    .unwrap();
    assert_eq!(new.destination_id.unwrap().to_string(), ID);
}

#[test]
fn the_builder_gives_the_same_result_as_json() {
    let built = CreateDestinationRequest::new("Production", "https://example.com/prets/events")
        .with_destination_id(ID);
    let parsed = request(&SPEC_REQUEST.replace("<string>", ID)).unwrap();
    assert_eq!(built, parsed);
    assert_eq!(built.validate(), parsed.validate());
    let bad = CreateDestinationRequest::new("", "http://example.com").with_destination_id("x");
    assert_eq!(
        codes(&bad.validate().unwrap_err()),
        [
            ("name", "too_short"),
            ("url", "not_https"),
            ("destinationId", "pattern")
        ]
    );
}

#[test]
fn values_are_kept_exactly_as_sent() {
    let new = request(r#"{"name":"  Prod\u00e9 ","url":"HTTPS://example.com/%2F?a=b"}"#)
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(new.name.as_str(), "  Prodé ");
    assert_eq!(new.url.as_str(), "HTTPS://example.com/%2F?a=b");
}

#[test]
fn unknown_members_are_refused() {
    for extra in [
        r#""extra":1"#,
        r#""Name":"x""#,
        r#""NAME":"x""#,
        r#""destination_id":"x""#,
        r#""destinationid":"x""#,
        r#""bearerSecret":"whsec_x""#,
        r#""createdAt":"2023-11-07T05:31:56Z""#,
        r#""":null"#,
        r#""name ":"x""#,
    ] {
        let body = format!(r#"{{"name":"a","url":"https://example.com/",{extra}}}"#);
        assert!(request(&body).is_err(), "{body}");
    }
}

#[test]
fn unknown_member_errors_do_not_echo_the_member_name() {
    let body = r#"{"name":"a","url":"https://example.com/","s3cr3t-member-name":1}"#;
    let err = request(body).unwrap_err().to_string();
    assert!(!err.contains("s3cr3t"), "{err}");
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn duplicate_members_are_refused() {
    for body in [
        r#"{"name":"a","name":"b","url":"https://example.com/"}"#.to_owned(),
        r#"{"name":"a","url":"https://example.com/","url":"https://example.com/"}"#.to_owned(),
        format!(
            r#"{{"name":"a","url":"https://example.com/","destinationId":"{ID}","destinationId":"{ID}"}}"#
        ),
        // A null first value is still a value.
        format!(
            r#"{{"name":"a","url":"https://example.com/","destinationId":null,"destinationId":"{ID}"}}"#
        ),
        r#"{"name":null,"name":"a","url":"https://example.com/"}"#.to_owned(),
        r#"{"name":1,"name":"a","url":"https://example.com/"}"#.to_owned(),
        // The same key spelt with an escape.
        r#"{"name":"a","n\u0061me":"b","url":"https://example.com/"}"#.to_owned(),
    ] {
        assert!(request(&body).is_err(), "{body}");
    }
}

#[test]
fn bodies_that_are_not_objects_are_refused() {
    for body in [
        "null",
        "[]",
        r#"["a","https://example.com/"]"#,
        r#""name""#,
        "1",
        "true",
        "",
        "{",
        r#"{"name":"a","url":"https://example.com/"} x"#,
    ] {
        assert!(request(body).is_err(), "{body:?}");
    }
}

#[test]
fn deeply_nested_values_are_refused_without_a_crash() {
    let deep = format!(
        r#"{{"name":{}{},"url":"https://example.com/"}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    // The body is refused either by the parser or as a wrong type for `name`;
    // what matters is that nesting depth cannot overflow the stack.
    match request(&deep) {
        Err(_) => {}
        Ok(r) => assert_eq!(codes(&r.validate().unwrap_err()), [("name", "type")]),
    }
}

#[test]
fn null_destination_id_is_a_type_error() {
    let errors = errors_of(r#"{"name":"a","url":"https://example.com/","destinationId":null}"#);
    assert_eq!(codes(&errors), [("destinationId", "type")]);
}

#[test]
fn wrong_json_types_are_type_errors_for_every_field() {
    for value in [
        "null",
        "1",
        "-1",
        "1.5",
        "true",
        "false",
        "[]",
        r#"["a"]"#,
        "{}",
        r#"{"a":"b"}"#,
    ] {
        let e = errors_of(&format!(
            r#"{{"name":{value},"url":"https://example.com/"}}"#
        ));
        assert_eq!(codes(&e), [("name", "type")], "{value}");
        let e = errors_of(&format!(r#"{{"name":"a","url":{value}}}"#));
        assert_eq!(codes(&e), [("url", "type")], "{value}");
        let e = errors_of(&format!(
            r#"{{"name":"a","url":"https://example.com/","destinationId":{value}}}"#
        ));
        assert_eq!(codes(&e), [("destinationId", "type")], "{value}");
    }
}

#[test]
fn missing_name_and_url_are_required() {
    assert_eq!(
        codes(&errors_of(r#"{"url":"https://example.com/"}"#)),
        [("name", "required")]
    );
    assert_eq!(codes(&errors_of(r#"{"name":"a"}"#)), [("url", "required")]);
    assert_eq!(
        codes(&errors_of("{}")),
        [("name", "required"), ("url", "required")]
    );
    assert_eq!(
        codes(&errors_of(&format!(r#"{{"destinationId":"{ID}"}}"#))),
        [("name", "required"), ("url", "required")]
    );
}

#[test]
fn every_bad_field_is_reported_together_in_field_order() {
    // Members written in reverse order; errors still come name, url, destinationId.
    let body = r#"{"destinationId":"whk_81ARZ3NDEKTSV4RRFFQ69G5FAU","url":"http://example.com/","name":"\u0000"}"#;
    let errors = errors_of(body);
    assert_eq!(
        codes(&errors),
        [
            ("name", "control_character"),
            ("url", "not_https"),
            ("destinationId", "pattern")
        ]
    );
    assert_eq!(errors.get(Field::Url).map(|e| e.code()), Some("not_https"));
    assert_eq!(errors.get(Field::BearerSecret), None);
    let fields: Vec<Field> = errors.clone().into_iter().map(|e| e.field()).collect();
    assert_eq!(fields, [Field::Name, Field::Url, Field::DestinationId]);

    // Type, required and value errors mix.
    let errors = errors_of(r#"{"destinationId":[],"name":""}"#);
    assert_eq!(
        codes(&errors),
        [
            ("name", "too_short"),
            ("url", "required"),
            ("destinationId", "type")
        ]
    );
}

#[test]
fn the_error_body_has_the_documented_shape() {
    let errors = errors_of(r#"{"name":"","url":"ftp://example.com/","destinationId":"x"}"#);
    let text = serde_json::to_string(&errors).unwrap();
    assert_eq!(keys(&text), ["errors"]);
    let value: Value = serde_json::from_str(&text).unwrap();
    let list = value["errors"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    let expected_fields = ["name", "url", "destinationId"];
    for (item, (field, error)) in list.iter().zip(expected_fields.iter().zip(errors.errors())) {
        let obj = item.as_object().unwrap();
        assert_eq!(obj.len(), 3);
        assert_eq!(item["field"], json!(field));
        assert_eq!(item["code"], json!(error.code()));
        assert_eq!(item["message"], json!(error.message()));
        assert_eq!(keys(&item.to_string()).len(), 3);
    }
    // Member order within each error as documented: field, code, message.
    let first = serde_json::to_string(&errors.errors()[0]).unwrap();
    assert_eq!(keys(&first), ["field", "code", "message"]);
}

/// Bad requests that between them produce every request-level error code.
fn bad_bodies() -> Vec<String> {
    let long = "a".repeat(2100);
    vec![
        r#"{}"#.to_owned(),
        r#"{"name":1,"url":2,"destinationId":3}"#.to_owned(),
        r#"{"name":null,"url":null,"destinationId":null}"#.to_owned(),
        r#"{"name":"","url":"","destinationId":""}"#.to_owned(),
        format!(r#"{{"name":"{long}","url":"https://e.com/{long}"}}"#),
        r#"{"name":"a\u0001","url":"https://e.com/\u00e9"}"#.to_owned(),
        r#"{"name":"   ","url":"https://e.com/%zz"}"#.to_owned(),
        r#"{"name":"a","url":"http://e.com/"}"#.to_owned(),
        r#"{"name":"a","url":"https://u@e.com/"}"#.to_owned(),
        r#"{"name":"a","url":"https://:1/"}"#.to_owned(),
        r#"{"name":"a","url":"https://e.com:0/"}"#.to_owned(),
        r#"{"name":"a","url":"https://e.com/","destinationId":"whk_01arz3ndektsv4rrffq69g5fav"}"#
            .to_owned(),
    ]
}

#[test]
fn messages_are_lowercase_without_a_trailing_period() {
    let mut seen = std::collections::BTreeSet::new();
    for body in bad_bodies() {
        for e in errors_of(&body).errors() {
            seen.insert(e.code());
            let m = e.message();
            assert!(!m.is_empty());
            // Lowercase apart from the JSON field name, which is spelt as on the wire.
            let rest = m.replace("destinationId", "");
            assert_eq!(rest, rest.to_lowercase(), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
    }
    for code in [
        "required",
        "type",
        "too_short",
        "too_long",
        "control_character",
        "blank",
        "pattern",
        "not_https",
        "credentials",
        "empty_host",
        "invalid_port",
    ] {
        assert!(seen.contains(code), "no case produced {code}");
    }
}

#[test]
fn no_error_contains_the_rejected_value() {
    let marker = "zqxjmarker";
    let bodies = [
        format!(
            r#"{{"name":"{marker}\u0000","url":"http://{marker}.example/","destinationId":"whk_{marker}"}}"#
        ),
        format!(
            r#"{{"name":"{}","url":"https://{marker}@example.com/"}}"#,
            marker.repeat(20)
        ),
        format!(r#"{{"name":"a","url":"https://example.com/{marker}%"}}"#),
        format!(r#"{{"name":"a","url":"https://{marker}:99999/"}}"#),
        format!(r#"{{"name":"a","url":"https://example.com/","destinationId":"{marker}"}}"#),
    ];
    for body in bodies {
        let errors = errors_of(&body);
        let shown = [
            serde_json::to_string(&errors).unwrap(),
            errors.to_string(),
            format!("{errors:?}"),
        ];
        for text in shown {
            assert!(!text.to_lowercase().contains(marker), "{text}");
        }
    }
}

#[test]
fn validation_errors_display_lists_every_message() {
    let errors = errors_of(r#"{"name":"","url":"http://example.com/"}"#);
    let text = errors.to_string();
    for e in errors.errors() {
        assert!(text.contains(e.message()), "{text}");
    }
}

#[test]
fn mutated_bodies_never_panic_and_valid_results_echo_the_body() {
    use prets_destinations::rand_core::{Rng, SeedableRng};
    let seed_body = format!(
        r#"{{"name":"Production","url":"https://example.com/prets/events","destinationId":"{ID}"}}"#
    );
    let alphabet = b"{}[]\",:\\ nul0129aeZ%@/?.-_\x00\x7f\xc3\xa9\xff";
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(21);
    let (mut parsed, mut valid) = (0, 0);
    for _ in 0..20_000 {
        let mut body = seed_body.clone().into_bytes();
        for _ in 0..1 + rng.next_u32() % 4 {
            let at = (rng.next_u32() as usize) % (body.len() + 1);
            let byte = alphabet[(rng.next_u32() as usize) % alphabet.len()];
            match rng.next_u32() % 3 {
                0 if at < body.len() => body[at] = byte,
                1 if at < body.len() => {
                    body.remove(at);
                }
                _ => body.insert(at, byte),
            }
        }
        let Ok(req) = serde_json::from_slice::<CreateDestinationRequest>(&body) else {
            continue;
        };
        parsed += 1;
        match req.validate() {
            Ok(new) => {
                valid += 1;
                // What was accepted is what the body said, re-encoded as JSON.
                let text = String::from_utf8(body).unwrap();
                let name = serde_json::to_string(new.name.as_str()).unwrap();
                let url = serde_json::to_string(new.url.as_str()).unwrap();
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["name"].to_string(), name, "{text}");
                assert_eq!(v["url"].to_string(), url, "{text}");
            }
            Err(errors) => {
                assert!(!errors.errors().is_empty());
                let order = ["name", "url", "destinationId"];
                let ranks: Vec<usize> = errors
                    .errors()
                    .iter()
                    .map(|e| order.iter().position(|f| *f == e.field().as_str()).unwrap())
                    .collect();
                assert!(
                    ranks.windows(2).all(|w| w[0] < w[1]),
                    "one error per field, in field order: {ranks:?}"
                );
            }
        }
    }
    assert!(parsed > 1_000, "{parsed}");
    assert!(valid > 100, "{valid}");
}
