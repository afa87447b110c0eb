//! The event-log routes over real HTTP on 127.0.0.1, on the memory store
//! and on SQLite, with two organizations: `GET /v1/events` (pages, cursor,
//! type), `GET /v1/events/{eventId}` (the payload byte for byte, each
//! destination's state), resend and recover, their refusals, and that
//! neither organization reaches the other's events. Every response is
//! checked against the OpenAPI document.

use prets_destinations_server::{Config, mint_token, spawn};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::support::client::{Client, EVENTS, item};
use crate::support::{TempDir, assert_documented, config, delivery_to, two_org_tokens};

const HOOKS: &str = "https://example.com/hooks";
const EVENT: &str = "/v1/events/{eventId}";
const RESEND: &str = "/v1/events/{eventId}/resend";
const RECOVER: &str = "/v1/events/destinations/{id}/recover";

fn two_orgs(dir: &TempDir, memory: bool) -> (Config, Zeroizing<String>, Zeroizing<String>) {
    let (a, b) = (mint_token(), mint_token());
    let mut config = config(dir);
    config.memory = memory;
    // No worker: the deliveries stay as the routes left them.
    config.no_delivery = true;
    config.api_tokens = two_org_tokens(&a, &b);
    (config, a, b)
}

async fn checked(
    client: &Client,
    method: &str,
    template: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let response = client.call(method, path, body).await;
    assert_documented(method, template, &response);
    (response.status, response.json())
}

fn problem_type(body: &Value) -> &str {
    body["type"]
        .as_str()
        .unwrap()
        .trim_start_matches("https://api.prets.app/problems/")
}

#[tokio::test]
async fn events_are_read_resent_and_recovered_per_organization() {
    for memory in [true, false] {
        let dir = TempDir::new();
        let (config, a, b) = two_orgs(&dir, memory);
        let running = spawn(&config).await.unwrap();
        let (a, b) = (Client::new(running.addr, &a), Client::new(running.addr, &b));
        let (d1, _) = a.create("one", HOOKS).await;
        let (d2, _) = a.create("two", HOOKS).await;
        // Spacing, key order and number spelling a parser would not keep.
        let odd = "{ \"z\": 1,\n  \"a\" : [1.50, 2e3] }";
        let first = a.publish("invoice.paid", odd, 2).await;
        let second = a.publish("user.created", "[]", 2).await;
        let third = a.publish("invoice.paid", "null", 2).await;
        let theirs = b.publish("invoice.paid", "{}", 0).await;
        let ids: Vec<&str> = [&third, &second, &first]
            .iter()
            .map(|e| e["eventId"].as_str().unwrap())
            .collect();

        // Newest first, in pages with an opaque cursor.
        let (status, page) = checked(&a, "GET", EVENTS, &format!("{EVENTS}?limit=2"), None).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["hasMore"], json!(true));
        let listed: Vec<&str> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["eventId"].as_str().unwrap())
            .collect();
        // Events published within one second may share `createdAt`: the id
        // orders them then, so compare as sets page by page.
        let cursor = page["nextCursor"].as_str().unwrap().to_owned();
        let (_, rest) = checked(
            &a,
            "GET",
            EVENTS,
            &format!("{EVENTS}?limit=2&cursor={cursor}"),
            None,
        )
        .await;
        assert_eq!(rest["hasMore"], json!(false));
        assert_eq!(rest["nextCursor"], Value::Null);
        let mut all: Vec<&str> = listed.clone();
        all.extend(
            rest["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["eventId"].as_str().unwrap()),
        );
        let mut want = ids.clone();
        want.sort_unstable();
        let mut got = all.clone();
        got.sort_unstable();
        assert_eq!(got, want, "every event once");
        let (_, typed) = checked(
            &a,
            "GET",
            EVENTS,
            &format!("{EVENTS}?type=user.created"),
            None,
        )
        .await;
        assert_eq!(typed["data"].as_array().unwrap().len(), 1);
        assert_eq!(typed["data"][0]["eventId"], second["eventId"]);
        for bad in ["limit=0", "cursor=nope", "type=a%20b"] {
            let (status, body) = checked(&a, "GET", EVENTS, &format!("{EVENTS}?{bad}"), None).await;
            assert_eq!(status, 422, "{bad}: {body}");
        }
        let (status, _) = checked(&a, "GET", EVENTS, &format!("{EVENTS}?after=1"), None).await;
        assert_eq!(status, 400);

        // One event: the payload exactly as published, two pending deliveries.
        let id = first["eventId"].as_str().unwrap();
        let response = a.call("GET", &format!("{EVENTS}/{id}"), None).await;
        assert_documented("GET", EVENT, &response);
        assert_eq!(response.status, 200);
        assert!(
            response.text().contains(&format!("\"payload\":{odd}")),
            "{}",
            response.text()
        );
        let detail = response.json();
        let deliveries = detail["deliveries"].as_array().unwrap();
        assert_eq!(deliveries.len(), 2);
        for d in deliveries {
            assert_eq!(d["state"], json!("pending"));
            assert_eq!(d["manual"], json!(false));
            assert_eq!(d["attempts"], json!(0));
        }

        // The other organization reaches none of it.
        let theirs_id = theirs["eventId"].as_str().unwrap();
        let (_, mine) = checked(&b, "GET", EVENTS, EVENTS, None).await;
        assert_eq!(mine["data"].as_array().unwrap().len(), 1);
        assert_eq!(mine["data"][0]["eventId"], json!(theirs_id));
        let (status, body) = checked(&b, "GET", EVENT, &format!("{EVENTS}/{id}"), None).await;
        assert_eq!((status, problem_type(&body)), (404, "not_found"));
        let (status, body) = checked(
            &b,
            "POST",
            RESEND,
            &format!("{EVENTS}/{id}/resend"),
            Some(&json!({ "destinationId": d1 })),
        )
        .await;
        assert_eq!((status, problem_type(&body)), (404, "not_found"));
        let (status, _) = checked(
            &b,
            "POST",
            RECOVER,
            &format!("{}/recover", item(&d1)),
            Some(&json!({ "since": "2020-01-01T00:00:00Z" })),
        )
        .await;
        assert_eq!(status, 404);
        let (status, _) = checked(
            &a,
            "POST",
            RESEND,
            &format!("{EVENTS}/{theirs_id}/resend"),
            Some(&json!({ "destinationId": d1 })),
        )
        .await;
        assert_eq!(status, 404, "org_a resends org_b's event");

        // Resend: pending already, so made manual.
        let (status, body) = checked(
            &a,
            "POST",
            RESEND,
            &format!("{EVENTS}/{id}/resend"),
            Some(&json!({ "destinationId": d1 })),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        let (_, detail) = checked(&a, "GET", EVENT, &format!("{EVENTS}/{id}"), None).await;
        assert_eq!(delivery_to(&detail, &d1)["manual"], json!(true));
        assert_eq!(delivery_to(&detail, &d2)["manual"], json!(false));
        for (body, status) in [
            (json!({}), 422),
            (json!({ "destinationId": 7 }), 422),
            (json!({ "destinationId": "whk_nope" }), 422),
            (json!({ "destinationId": d1, "extra": 1 }), 400),
            (
                json!({ "destinationId": "whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K" }),
                404,
            ),
        ] {
            let (got, answer) = checked(
                &a,
                "POST",
                RESEND,
                &format!("{EVENTS}/{id}/resend"),
                Some(&body),
            )
            .await;
            assert_eq!(got, status, "{body}: {answer}");
        }
        let (status, _) = checked(
            &a,
            "POST",
            RESEND,
            "/v1/events/evt_01HZY8ZQ5M3J9V6W2X4T7R1P0K/resend",
            Some(&json!({ "destinationId": d1 })),
        )
        .await;
        assert_eq!(status, 404);

        // Disabled: the backlog drops, resend and recover are refused.
        a.set_enabled(&d2, false).await;
        let (_, detail) = checked(&a, "GET", EVENT, &format!("{EVENTS}/{id}"), None).await;
        assert_eq!(delivery_to(&detail, &d2)["state"], json!("dropped"));
        let (status, body) = checked(
            &a,
            "POST",
            RESEND,
            &format!("{EVENTS}/{id}/resend"),
            Some(&json!({ "destinationId": d2 })),
        )
        .await;
        assert_eq!((status, problem_type(&body)), (409, "disabled"));
        let recover_path = format!("{}/recover", item(&d2));
        let since = json!({ "since": "2020-01-01T00:00:00Z" });
        let (status, body) = checked(&a, "POST", RECOVER, &recover_path, Some(&since)).await;
        assert_eq!((status, problem_type(&body)), (409, "disabled"));

        // Enabled again: recover queues the three dropped events, once.
        a.set_enabled(&d2, true).await;
        for (body, code) in [
            (json!({ "since": "yesterday" }), "invalid"),
            (json!({ "since": 5 }), "type"),
            (json!({}), "required"),
        ] {
            let (status, answer) = checked(&a, "POST", RECOVER, &recover_path, Some(&body)).await;
            assert_eq!(status, 422, "{answer}");
            assert_eq!(answer["errors"][0]["field"], json!("since"));
            assert_eq!(answer["errors"][0]["code"], json!(code));
        }
        let (status, body) = checked(&a, "POST", RECOVER, &recover_path, Some(&since)).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body, json!({ "events": 3 }));
        let (_, body) = checked(&a, "POST", RECOVER, &recover_path, Some(&since)).await;
        assert_eq!(
            body,
            json!({ "events": 0 }),
            "pending ones are not queued twice"
        );
        let (_, detail) = checked(&a, "GET", EVENT, &format!("{EVENTS}/{id}"), None).await;
        assert_eq!(delivery_to(&detail, &d2)["state"], json!("pending"));
        assert_eq!(delivery_to(&detail, &d2)["manual"], json!(true));
        running.stop().await.unwrap();
    }
}
