//! A host's delivery worker over the outbox seam: claim due deliveries,
//! send each, classify the answer, report the attempt. `send` stands in for
//! the HTTP client (the crate does no I/O): here the destination answers
//! 503 twice, then 200. Run: `cargo run --example worker --features memory`.
#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::time::Duration;

// A host runs these futures on its own runtime; the example blocks on each.
use pollster::block_on;
use prets_destinations::delivery::{
    Answer, ClaimLimits, DisablePolicy, LeaseRequest, LeaseToken, Outbox, RetrySchedule, classify,
};
use prets_destinations::ops::{finish_attempt, plan_finish};
use prets_destinations::{CreateDestinationRequest, KeyId, Keyring, MemoryRepo, SealingKey};
use prets_destinations::{PublishRequest, TenantId, Timestamp, create, publish};
use rand_core::UnwrapErr;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let keys = Keyring::new(SealingKey::from_rng(KeyId::new(1), &mut rng), [])?;
    let store = MemoryRepo::new();
    let tenant: TenantId = "org_1".parse()?;
    let mut now = Timestamp::try_from(std::time::SystemTime::now())?;
    let req = CreateDestinationRequest::new("Billing", "https://example.com/hooks");
    block_on(create(&store, &tenant, req, now, &mut rng, keys.current()))?.into_result()?;
    let event: PublishRequest =
        serde_json::from_str(r#"{"type":"invoice.paid","payload":{"id":7}}"#)?;
    let accepted = block_on(publish(&store, &tenant, event, now, &mut rng))?.into_result()?;
    println!(
        "published {} to {} destination(s)",
        accepted.event_id, accepted.destinations
    );

    let (schedule, disable) = (RetrySchedule::default(), DisablePolicy::default());
    let mut answers = [503, 503, 200].into_iter();
    let mut send = |_body: &[u8]| answers.next().unwrap_or(200); // the HTTP call
    // Fair claims: at most 4 attempts in flight per destination, and
    // destinations whose last attempt failed 1 each, 4 together (a host
    // passes the free slots of its slow lane as `failing_limit`).
    let limits = ClaimLimits {
        limit: 16,
        per_destination: 4,
        failing_limit: 4,
        per_failing_destination: 1,
    };
    for _ in 0..10 {
        let lease = LeaseRequest {
            token: LeaseToken::generate(&mut rng),
            duration: Duration::from_secs(60),
        };
        let claimed = block_on(store.claim(now, limits, lease))?;
        for job in &claimed {
            // A real worker builds the request with `plan_attempt` and the
            // keyring, pins the addresses, and sends it with a timeout.
            let status = send(&job.event.delivery_body());
            let answer = Answer::Response {
                status,
                retry_after: None,
            };
            let classified = classify(answer, now);
            let took = Duration::from_millis(35);
            let report = plan_finish(job, &classified, now, took, &schedule, disable, &mut rng);
            println!("attempt {} -> {status}: {:?}", job.attempt, report.next);
            let outcome = block_on(finish_attempt(&store, &job.lease, report))?;
            println!("  stored: {outcome:?}");
        }
        // Sleep until the next retry is due (here: jump the clock).
        now = now.saturating_add(Duration::from_secs(3600));
    }
    Ok(())
}
