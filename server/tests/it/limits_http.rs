//! Organization limits over HTTP, two organizations each: A reaches the
//! limit, B is unaffected. And the rate limiter's memory stays bounded by
//! the organizations calling now.

use std::time::Duration;

use prets_destinations::TenantId;
use prets_destinations::limits::Rate;
use prets_destinations_server::RateLimiter;
use serde_json::{Value, json};

use crate::support::client::{Client, TEST, item, test_path};
use crate::support::{
    CREATE_PATH, Response, TempDir, assert_documented, start_with_two_orgs_tuned,
};

const URL: &str = "https://example.com/prets/hook";

fn kind(response: &Response) -> String {
    response.json()["type"]
        .as_str()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn event() -> Value {
    json!({"type": "invoice.paid", "payload": {"n": 1}})
}

/// Calls until one answer is not `ok` (at most `bound` calls), and returns
/// it: a limit of 1 a second with a burst of 1 is reached at the second
/// call made within a second, whatever the machine's pace.
async fn until_refused(bound: usize, ok: u16, mut call: impl AsyncFnMut() -> Response) -> Response {
    for _ in 0..bound {
        let response = call().await;
        if response.status != ok {
            return response;
        }
    }
    panic!("{bound} calls were all answered {ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_over_the_rate_are_429_rate_limited_for_that_organization_only() {
    let dir = TempDir::new();
    let (running, a, b) = start_with_two_orgs_tuned(&dir, |c| c.publish_rate_limit = 1).await;
    let (a, b) = (Client::new(running.addr, &a), Client::new(running.addr, &b));
    let refused = until_refused(50, 202, async || a.post_event(&event()).await).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(kind(&refused), "rate_limited");
    assert_eq!(refused.header("retry-after"), Some("1"));
    // B's bucket is its own: full.
    let response = b.post_event(&event()).await;
    assert_eq!(response.status, 202, "{}", response.text());
    // A's refused publishes stored nothing: after the wait, A publishes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let response = a.post_event(&event()).await;
    assert_eq!(response.status, 202, "{}", response.text());
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_events_over_their_rate_are_429_rate_limited_for_that_organization_only() {
    let dir = TempDir::new();
    let (running, a, b) = start_with_two_orgs_tuned(&dir, |c| {
        c.test_send_rate_limit = 1;
        c.no_delivery = true;
    })
    .await;
    let (a, b) = (Client::new(running.addr, &a), Client::new(running.addr, &b));
    let (id_a, _) = a.create("a", URL).await;
    let (id_b, _) = b.create("b", URL).await;
    let refused = until_refused(50, 202, async || {
        let response = a.call("POST", &test_path(&id_a), None).await;
        assert_documented("POST", TEST, &response);
        response
    })
    .await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(kind(&refused), "rate_limited");
    assert_eq!(refused.header("retry-after"), Some("1"));
    let response = b.call("POST", &test_path(&id_b), None).await;
    assert_eq!(response.status, 202, "{}", response.text());
    // Publishing has its own limit.
    let response = a.post_event(&event()).await;
    assert_eq!(response.status, 202, "{}", response.text());
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_past_the_destination_quota_are_403_quota_exceeded() {
    let dir = TempDir::new();
    let (running, a, b) = start_with_two_orgs_tuned(&dir, |c| c.max_destinations = 2).await;
    let (a, b) = (Client::new(running.addr, &a), Client::new(running.addr, &b));
    let (first, _) = a.create("one", URL).await;
    a.create("two", URL).await;
    let body = json!({"name": "three", "url": URL});
    let response = a.call("POST", CREATE_PATH, Some(&body)).await;
    assert_documented("POST", CREATE_PATH, &response);
    assert_eq!(response.status, 403, "{}", response.text());
    assert_eq!(kind(&response), "quota_exceeded");
    assert_eq!(
        response.json()["errors"][0]["field"],
        json!("destinationId")
    );
    assert_eq!(
        response.json()["errors"][0]["code"],
        json!("quota_exceeded")
    );
    // B has its own quota.
    b.create("b1", URL).await;
    b.create("b2", URL).await;
    // A deletion makes room for one.
    assert_eq!(a.call("DELETE", &item(&first), None).await.status, 200);
    a.create("three", URL).await;
    let response = a.call("POST", CREATE_PATH, Some(&body)).await;
    assert_eq!(response.status, 403, "{}", response.text());
    running.stop().await.unwrap();
}

/// Creates racing over HTTP for an organization one below its quota: one
/// is stored, the others are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_at_the_quota_store_one() {
    let dir = TempDir::new();
    let (running, a, _b) = start_with_two_orgs_tuned(&dir, |c| c.max_destinations = 3).await;
    let a = Client::new(running.addr, &a);
    a.create("one", URL).await;
    a.create("two", URL).await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..16 {
        let a = a.clone();
        tasks.spawn(async move {
            let body = json!({"name": format!("racer {n}"), "url": URL});
            a.call("POST", CREATE_PATH, Some(&body)).await.status
        });
    }
    let mut statuses = tasks.join_all().await;
    statuses.sort_unstable();
    let mut expected = vec![201];
    expected.extend([403; 15]);
    assert_eq!(statuses, expected);
    let list = a.call("GET", CREATE_PATH, None).await.json();
    assert_eq!(list["data"].as_array().map(Vec::len), Some(3), "{list}");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_past_the_pending_quota_are_429_queue_full_and_queue_nothing() {
    let dir = TempDir::new();
    let (running, a, b) = start_with_two_orgs_tuned(&dir, |c| {
        c.max_pending_deliveries = 3;
        // Nothing drains: the pending count is what was queued.
        c.no_delivery = true;
    })
    .await;
    let (a, b) = (Client::new(running.addr, &a), Client::new(running.addr, &b));
    let (one, _) = a.create("one", URL).await;
    a.create("two", URL).await;
    let (id_b, _) = b.create("b", URL).await;
    a.publish("invoice.paid", "{}", 2).await;
    // 2 pending: 2 more would be 4.
    let response = a.post_event(&event()).await;
    assert_eq!(response.status, 429, "{}", response.text());
    assert_eq!(kind(&response), "queue_full");
    assert_eq!(response.header("retry-after"), Some("5"));
    assert_eq!(response.json()["errors"][0]["code"], json!("queue_full"));
    // A test event queues one: it fits, then the next does not.
    let response = a.call("POST", &test_path(&one), None).await;
    assert_eq!(response.status, 202, "{}", response.text());
    let response = a.call("POST", &test_path(&one), None).await;
    assert_documented("POST", TEST, &response);
    assert_eq!(response.status, 429, "{}", response.text());
    assert_eq!(kind(&response), "queue_full");
    // B queues on.
    b.publish("invoice.paid", "{}", 1).await;
    let response = b.call("POST", &test_path(&id_b), None).await;
    assert_eq!(response.status, 202, "{}", response.text());
    // A's refused publish stored nothing, not even its id: once room is
    // made (a destination removed, its deliveries with it), the same id
    // is a new event.
    let with_id =
        json!({"type": "invoice.paid", "payload": {}, "eventId": "evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFG"});
    assert_eq!(a.post_event(&with_id).await.status, 429);
    assert_eq!(a.call("DELETE", &item(&one), None).await.status, 200);
    let response = a.post_event(&with_id).await;
    assert_eq!(response.status, 202, "{}", response.text());
    assert_eq!(response.json()["destinations"], json!(1));
    running.stop().await.unwrap();
}

/// Fifty thousand organizations calling, five thousand a second: the
/// limiter keeps the buckets of those calling now, not of every one that
/// ever called.
#[test]
fn the_rate_limiter_forgets_full_buckets() {
    let rate = Rate::new(10.try_into().unwrap(), 10.try_into().unwrap());
    let limiter = RateLimiter::new(rate);
    let wave = 5_000;
    for second in 0..10u64 {
        let now = Duration::from_secs(100 + second);
        for n in 0..wave {
            let tenant: TenantId = format!("org_{second}_{n}").parse().unwrap();
            assert_eq!(limiter.check_at(&tenant, now), Ok(()));
        }
        assert!(
            limiter.tracked() <= 2 * wave,
            "{} buckets after {} organizations",
            limiter.tracked(),
            wave * (second as usize + 1)
        );
    }
    // An organization over its rate is remembered as such.
    let busy: TenantId = "org_busy".parse().unwrap();
    let now = Duration::from_secs(200);
    for _ in 0..10 {
        assert_eq!(limiter.check_at(&busy, now), Ok(()));
    }
    assert_eq!(
        limiter.check_at(&busy, now),
        Err(Duration::from_millis(100))
    );
}

/// Resends and recovers queue deliveries too: past the pending quota they
/// are `429 queue_full` and queue nothing, while a resend of a pending
/// delivery goes on; B is unaffected; room made lets a recover queue what
/// it could not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_and_recovers_past_the_pending_quota_are_429_queue_full() {
    const RESEND: &str = "/v1/events/{eventId}/resend";
    const RECOVER: &str = "/v1/events/destinations/{id}/recover";
    let dir = TempDir::new();
    let (running, a, b) = start_with_two_orgs_tuned(&dir, |c| {
        c.max_pending_deliveries = 2;
        // Nothing drains: the pending count is what was queued.
        c.no_delivery = true;
    })
    .await;
    let (a, b) = (Client::new(running.addr, &a), Client::new(running.addr, &b));
    let resend = async |client: &Client, event: &str, destination: &str| {
        let body = json!({ "destinationId": destination });
        let response = client
            .call("POST", &format!("/v1/events/{event}/resend"), Some(&body))
            .await;
        assert_documented("POST", RESEND, &response);
        response
    };
    let recover = async |client: &Client, destination: &str| {
        let body = json!({ "since": "2020-01-01T00:00:00Z" });
        let response = client
            .call(
                "POST",
                &format!("{}/recover", item(destination)),
                Some(&body),
            )
            .await;
        assert_documented("POST", RECOVER, &response);
        response
    };
    let (one, _) = a.create("one", URL).await;
    // `two` exists before the events (a recover looks at none older than
    // its destination, to the second) but is disabled while they are
    // published.
    let (two, _) = a.create("two", URL).await;
    a.set_enabled(&two, false).await;
    let first = a.publish("invoice.paid", "{}", 1).await;
    a.publish("invoice.paid", "{}", 1).await;
    let first = first["eventId"].as_str().unwrap().to_owned();
    a.set_enabled(&two, true).await;
    // 2 pending, both to `one`; `two` has none.
    let response = resend(&a, &first, &two).await;
    assert_eq!(response.status, 429, "{}", response.text());
    assert_eq!(kind(&response), "queue_full");
    assert_eq!(response.header("retry-after"), Some("5"));
    let response = recover(&a, &two).await;
    assert_eq!(response.status, 429, "{}", response.text());
    assert_eq!(kind(&response), "queue_full");
    // A pending delivery is made due whatever the quota.
    let response = resend(&a, &first, &one).await;
    assert_eq!(response.status, 202, "{}", response.text());
    // B resends and recovers on.
    let (theirs, _) = b.create("b", URL).await;
    let event = b.publish("invoice.paid", "{}", 1).await;
    let response = resend(&b, event["eventId"].as_str().unwrap(), &theirs).await;
    assert_eq!(response.status, 202, "{}", response.text());
    let response = recover(&b, &theirs).await;
    assert_eq!(response.status, 202, "{}", response.text());
    assert_eq!(response.json()["events"], json!(0));
    // Room made (`one` removed with its deliveries): both events queued to
    // `two`, and the organization is full again.
    assert_eq!(a.call("DELETE", &item(&one), None).await.status, 200);
    let response = recover(&a, &two).await;
    assert_eq!(response.status, 202, "{}", response.text());
    assert_eq!(response.json()["events"], json!(2));
    let (three, _) = a.create("three", URL).await;
    assert_eq!(resend(&a, &first, &three).await.status, 429);
    running.stop().await.unwrap();
}

/// Resends and recovers spend the organization's publish tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_and_recovers_over_the_publish_rate_are_429_rate_limited() {
    let dir = TempDir::new();
    let (running, a, b) = start_with_two_orgs_tuned(&dir, |c| {
        c.publish_rate_limit = 1;
        c.no_delivery = true;
    })
    .await;
    let (a, b) = (Client::new(running.addr, &a), Client::new(running.addr, &b));
    let (one, _) = a.create("one", URL).await;
    let (theirs, _) = b.create("b", URL).await;
    let event = a.publish("invoice.paid", "{}", 1).await;
    let path = format!("/v1/events/{}/resend", event["eventId"].as_str().unwrap());
    let body = json!({ "destinationId": one });
    let refused = until_refused(50, 202, async || a.call("POST", &path, Some(&body)).await).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(kind(&refused), "rate_limited");
    assert_eq!(refused.header("retry-after"), Some("1"));
    let since = json!({ "since": "2020-01-01T00:00:00Z" });
    let recover = format!("{}/recover", item(&one));
    let refused = until_refused(50, 202, async || {
        a.call("POST", &recover, Some(&since)).await
    })
    .await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(kind(&refused), "rate_limited");
    // B's bucket is its own.
    let response = b
        .call("POST", &format!("{}/recover", item(&theirs)), Some(&since))
        .await;
    assert_eq!(response.status, 202, "{}", response.text());
    running.stop().await.unwrap();
}
