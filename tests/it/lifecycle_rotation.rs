//! Rotation: the pure step's rules (deadline, expiry, cap, grace 0) and
//! `SecretSet`, the receiver-side verifier over the whole set of secrets.

use std::time::Duration;

use prets_destinations::ops::plan_create;
use prets_destinations::secret::{GracePeriod, MAX_PREVIOUS_SECRETS, SecretSet, SecretSetFull};
use prets_destinations::wire::Rotation;
use prets_destinations::{BearerSecret, DestinationRecord, Keyring, TenantId, Timestamp};
use rand_chacha::ChaCha20Rng;

use crate::support::{keyring, now, rng, tenant};

struct Setup {
    rng: ChaCha20Rng,
    keys: Keyring,
    org: TenantId,
}

fn setup() -> (Setup, DestinationRecord, String) {
    let mut rng = rng(21);
    let keys = keyring(1, &mut rng);
    let org = tenant("org_rot");
    let req = prets_destinations::CreateDestinationRequest::new("n", "https://example.com/");
    let plan = plan_create(req, &org, now(), &mut rng, keys.current()).unwrap();
    let header = plan
        .response
        .bearer_secret()
        .authorization_header()
        .to_string();
    (Setup { rng, keys, org }, plan.record, header)
}

fn at(secs: u64) -> Timestamp {
    now().checked_add(Duration::from_secs(secs)).unwrap()
}

fn rotate(
    s: &mut Setup,
    r: &DestinationRecord,
    when: Timestamp,
    grace: u64,
) -> (DestinationRecord, String) {
    let rotation = Rotation {
        grace_period: GracePeriod::from_secs(grace).unwrap(),
        expected_version: None,
    };
    let plan = rotation
        .plan(r, &s.org, when, &mut s.rng, s.keys.current())
        .unwrap();
    let header = plan
        .response
        .bearer_secret()
        .authorization_header()
        .to_string();
    (plan.record, header)
}

#[test]
fn a_rotation_keeps_the_old_secret_until_its_deadline_only() {
    let (mut s, r0, h0) = setup();
    let (r1, h1) = rotate(&mut s, &r0, at(10), 3_600);
    let deadline = at(10)
        .truncated()
        .checked_add(Duration::from_secs(3_600))
        .unwrap();
    assert_eq!(r1.previous_secrets.len(), 1);
    assert_eq!(r1.previous_secrets[0].expires_at, deadline);
    assert_eq!(r1.previous_secrets[0].secret_digest, r0.secret_digest);
    assert_eq!(r1.previous_secrets[0].sealed_secret, r0.sealed_secret);
    assert_eq!(
        (r1.version, r1.created_at, r1.updated_at),
        (2, r0.created_at, at(10).truncated())
    );
    assert_eq!((&r1.name, &r1.url), (&r0.name, &r0.url));
    assert_ne!(r1.secret_digest, r0.secret_digest);
    // Deliveries use the new secret.
    assert_eq!(*s.keys.authorization_header(&s.org, &r1).unwrap(), h1);
    let set = r1.secret_set();
    let just_before = Timestamp::from_unix_millis(deadline.unix_millis() - 1).unwrap();
    assert!(set.verify_authorization(&h0, just_before));
    assert!(!set.verify_authorization(&h0, deadline));
    assert!(set.verify_authorization(&h1, deadline));
    assert!(set.verify_authorization(&h1, Timestamp::from_unix_seconds(253_402_300_799).unwrap()));
}

#[test]
fn grace_zero_revokes_at_once_and_expired_secrets_are_dropped() {
    let (mut s, r0, h0) = setup();
    let (r1, _) = rotate(&mut s, &r0, at(0), 0);
    assert!(r1.previous_secrets.is_empty());
    assert!(!r1.secret_set().verify_authorization(&h0, at(0)));
    let (r2, h2) = rotate(&mut s, &r1, at(1), 60);
    let (r3, _) = rotate(&mut s, &r2, at(61), 600);
    // r2's secret expired exactly at 61 s: at its deadline it is gone.
    assert_eq!(r3.previous_secrets.len(), 1);
    assert_eq!(r3.previous_secrets[0].secret_digest, r2.secret_digest);
    let (r4, _) = rotate(&mut s, &r3, at(62), 600);
    assert_eq!(r4.previous_secrets.len(), 2);
    let (r5, _) = rotate(&mut s, &r4, at(10_000), 600);
    assert_eq!(
        r5.previous_secrets.len(),
        1,
        "both earlier previous secrets expired"
    );
    assert!(!r5.secret_set().verify_authorization(&h2, at(10_000)));
}

#[test]
fn a_rotation_bounds_every_older_secret_by_its_own_deadline() {
    let (mut s, r0, h0) = setup();
    // A routine rotation keeps the first secret for a day...
    let (r1, h1) = rotate(&mut s, &r0, at(10), 86_400);
    // ...then the second leaks: rotating with grace 0 must revoke both.
    let (r2, h2) = rotate(&mut s, &r1, at(20), 0);
    assert!(r2.previous_secrets.is_empty());
    let set = r2.secret_set();
    assert!(
        !set.verify_authorization(&h0, at(20)),
        "an older secret survived"
    );
    assert!(!set.verify_authorization(&h1, at(20)));
    assert!(set.verify_authorization(&h2, at(20)));
    // A short grace period caps older, longer ones at the new deadline.
    let (r3, h3) = rotate(&mut s, &r2, at(30), 86_400);
    let (r4, _) = rotate(&mut s, &r3, at(40), 60);
    let deadline = at(40)
        .truncated()
        .checked_add(Duration::from_secs(60))
        .unwrap();
    assert!(r4.previous_secrets.iter().all(|p| p.expires_at <= deadline));
    assert!(r4.secret_set().verify_authorization(&h3, at(99)));
    assert!(!r4.secret_set().verify_authorization(&h3, at(100)));
}

#[test]
fn updated_at_never_moves_backwards_when_the_clock_does() {
    let (mut s, r0, _) = setup();
    let (r1, _) = rotate(&mut s, &r0, at(100), 60);
    let (r2, _) = rotate(&mut s, &r1, at(50), 60);
    assert_eq!(r2.updated_at, r1.updated_at);
    assert!(r2.updated_at >= r2.created_at);
}

#[test]
fn at_most_three_previous_secrets_newest_first() {
    let (mut s, mut r, h0) = setup();
    let mut headers = vec![h0];
    for i in 1..=6 {
        let (next, h) = rotate(&mut s, &r, at(i), 604_800);
        assert!(next.previous_secrets.len() <= MAX_PREVIOUS_SECRETS);
        r = next;
        headers.push(h);
    }
    assert_eq!(r.previous_secrets.len(), MAX_PREVIOUS_SECRETS);
    let set = r.secret_set();
    assert_eq!(set.len(), 1 + MAX_PREVIOUS_SECRETS);
    let accepted: Vec<bool> = headers
        .iter()
        .map(|h| set.verify_authorization(h, at(7)))
        .collect();
    assert_eq!(accepted, [false, false, false, true, true, true, true]);
    let deadlines: Vec<_> = r.previous_secrets.iter().map(|p| p.expires_at).collect();
    assert!(
        deadlines.windows(2).all(|w| w[0] > w[1]),
        "not newest first"
    );
}

#[test]
fn a_rotated_record_round_trips_through_serde() {
    let (mut s, r0, _) = setup();
    let (r1, _) = rotate(&mut s, &r0, at(5), 86_400);
    let json = serde_json::to_string(&r1).unwrap();
    assert_eq!(
        serde_json::from_str::<DestinationRecord>(&json).unwrap(),
        r1
    );
    // A stored form from before rotation existed has no previous secrets.
    let mut old: serde_json::Value = serde_json::to_value(&r0).unwrap();
    old.as_object_mut().unwrap().remove("previousSecrets");
    assert_eq!(
        serde_json::from_value::<DestinationRecord>(old).unwrap(),
        r0
    );
}

#[test]
fn rotated_secret_is_serialized_once_and_never_shown_in_debug() {
    let (mut s, r0, _) = setup();
    let rotation = Rotation {
        grace_period: GracePeriod::default(),
        expected_version: None,
    };
    let plan = rotation
        .plan(&r0, &s.org, at(1), &mut s.rng, s.keys.current())
        .unwrap();
    let secret = plan.response.bearer_secret().expose_secret().to_owned();
    let body = serde_json::to_value(&plan.response).unwrap();
    assert_eq!(body["bearerSecret"], serde_json::json!(secret));
    assert_eq!(body["version"], serde_json::json!(2));
    assert_eq!(
        body["previousSecretExpiresAt"],
        serde_json::json!(
            at(1)
                .truncated()
                .checked_add(Duration::from_secs(86_400))
                .unwrap()
                .to_string()
        )
    );
    for text in [
        format!("{plan:?}"),
        format!("{:?}", plan.record.secret_set()),
        serde_json::to_string(&plan.record).unwrap(),
    ] {
        assert!(!text.contains(&secret[6..]), "secret in {text}");
    }
}

#[test]
fn secret_set_is_bounded_and_checks_each_slot() {
    let mut rng = rng(5);
    let secrets: Vec<_> = (0..5).map(|_| BearerSecret::from_rng(&mut rng)).collect();
    let mut set = SecretSet::new(secrets[0].digest());
    for s in &secrets[1..4] {
        set = set.with_previous(s.digest(), at(100)).unwrap();
    }
    let full: Result<SecretSet, SecretSetFull> =
        set.clone().with_previous(secrets[4].digest(), at(100));
    assert!(full.is_err(), "a fifth secret was accepted");
    for s in &secrets[..4] {
        assert!(set.verify_authorization(&*s.authorization_header(), at(99)));
    }
    assert!(!set.verify_authorization(&*secrets[4].authorization_header(), at(0)));
    for s in &secrets[1..4] {
        assert!(!set.verify_authorization(&*s.authorization_header(), at(100)));
    }
    // Header forms as for one digest; malformed ones never verify.
    let text = secrets[0].expose_secret();
    for ok in [
        format!("Bearer {text}"),
        format!("bearer  {text}"),
        format!(" Bearer {text}\t"),
    ] {
        assert!(set.verify_authorization(&ok, at(0)), "{ok}");
    }
    for bad in [
        text.to_owned(),
        format!("Basic {text}"),
        format!("Bearer {text}x"),
        String::new(),
        "Bearer ".into(),
    ] {
        assert!(!set.verify_authorization(&bad, at(0)), "{bad}");
    }
    // Padding slots of a smaller set accept nothing, not even at the epoch.
    let small = SecretSet::new(secrets[0].digest());
    assert_eq!(small.len(), 1);
    for s in &secrets[1..] {
        assert!(!small.verify_authorization(&*s.authorization_header(), Timestamp::UNIX_EPOCH));
    }
}
