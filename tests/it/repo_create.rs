//! `create` over a scripted repo: retries, conflicts, errors, and what the
//! record handed to the repo holds.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;

use prets_destinations::ops::SERVER_ID_ATTEMPTS;
use prets_destinations::{
    CreateDestinationRequest, CreateOutcome, DestinationId, DestinationRecord, DestinationRepo,
    InsertOutcome, OpError, SecretDigest, TenantId, create,
};

use crate::support::{block_on, keyring, now, rng, tenant};

#[derive(Debug, PartialEq)]
struct Boom(u32);

impl fmt::Display for Boom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "boom {}", self.0)
    }
}

impl std::error::Error for Boom {}

impl prets_destinations::StoreError for Boom {}

/// Answers inserts from a script (then `Inserted`) and records every call.
#[derive(Default)]
struct Scripted {
    answers: Mutex<VecDeque<Result<InsertOutcome, Boom>>>,
    inserts: Mutex<Vec<(TenantId, DestinationRecord)>>,
}

impl Scripted {
    fn new(answers: impl IntoIterator<Item = Result<InsertOutcome, Boom>>) -> Self {
        Self {
            answers: Mutex::new(answers.into_iter().collect()),
            inserts: Mutex::default(),
        }
    }
    fn inserts(&self) -> Vec<(TenantId, DestinationRecord)> {
        self.inserts.lock().unwrap().clone()
    }
}

impl DestinationRepo for Scripted {
    type Error = Boom;
    async fn insert(&self, t: &TenantId, r: &DestinationRecord) -> Result<InsertOutcome, Boom> {
        self.inserts.lock().unwrap().push((t.clone(), r.clone()));
        self.answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(InsertOutcome::Inserted))
    }
    async fn get(&self, _: &TenantId, _: DestinationId) -> Result<Option<DestinationRecord>, Boom> {
        unreachable!("create never reads")
    }
    async fn list(&self, _: &TenantId) -> Result<Vec<DestinationRecord>, Boom> {
        unreachable!("create never reads")
    }
    async fn find_by_digest(
        &self,
        _: &SecretDigest,
    ) -> Result<Vec<(TenantId, DestinationRecord)>, Boom> {
        unreachable!("create never reads")
    }
    async fn list_page(
        &self,
        _: &TenantId,
        _: Option<DestinationId>,
        _: usize,
    ) -> Result<Vec<DestinationRecord>, Boom> {
        unreachable!("create never reads")
    }
    async fn replace(
        &self,
        _: &TenantId,
        _: u64,
        _: &DestinationRecord,
    ) -> Result<prets_destinations::ReplaceOutcome, Boom> {
        unreachable!("create never replaces")
    }
    async fn remove(
        &self,
        _: &TenantId,
        _: DestinationId,
    ) -> Result<prets_destinations::RemoveOutcome, Boom> {
        unreachable!("create never removes")
    }
}

const CLIENT_ID: &str = "whk_01HF2V3J6T0Q8X5Y7Z9ABCDEFG";

fn request() -> CreateDestinationRequest {
    CreateDestinationRequest::new("Production", "https://example.com/prets/events")
}

fn run(repo: &Scripted, req: CreateDestinationRequest) -> Result<CreateOutcome, OpError<Boom>> {
    let mut rng = rng(1);
    let keys = keyring(1, &mut rng);
    block_on(create(
        repo,
        &tenant("org_a"),
        req,
        now(),
        &mut rng,
        keys.current(),
    ))
}

#[test]
fn generated_id_collisions_retry_with_fresh_ids_and_secrets() {
    let dup = Ok(InsertOutcome::Duplicate);
    let repo = Scripted::new([dup, Ok(InsertOutcome::Duplicate)]);
    let CreateOutcome::Created(created) = run(&repo, request()).unwrap() else {
        panic!("not created")
    };
    let inserts = repo.inserts();
    assert_eq!(inserts.len(), 3);
    let mut ids: Vec<_> = inserts.iter().map(|(_, r)| r.destination_id).collect();
    let mut digests: Vec<_> = inserts.iter().map(|(_, r)| r.secret_digest).collect();
    ids.sort();
    ids.dedup();
    digests.sort();
    digests.dedup();
    assert_eq!(ids.len(), 3, "every attempt has a fresh id");
    assert_eq!(digests.len(), 3, "every attempt has a fresh secret");
    let (_, stored) = inserts.last().unwrap();
    assert_eq!(created.destination_id(), stored.destination_id);
    assert_eq!(created.bearer_secret().digest(), stored.secret_digest);
}

#[test]
fn generated_id_collisions_stop_after_the_documented_attempts() {
    let repo = Scripted::new((0..100).map(|_| Ok(InsertOutcome::Duplicate)));
    match run(&repo, request()) {
        Err(OpError::IdCollisions { attempts }) => assert_eq!(attempts, SERVER_ID_ATTEMPTS),
        other => panic!("{other:?}"),
    }
    assert_eq!(repo.inserts().len(), SERVER_ID_ATTEMPTS as usize);
}

#[test]
fn client_id_duplicate_is_a_conflict_carrying_the_id_and_is_not_retried() {
    let repo = Scripted::new([Ok(InsertOutcome::Duplicate)]);
    match run(&repo, request().with_destination_id(CLIENT_ID)).unwrap() {
        CreateOutcome::Conflict { existing } => assert_eq!(existing.to_string(), CLIENT_ID),
        other => panic!("{other:?}"),
    }
    assert_eq!(repo.inserts().len(), 1);
}

#[test]
fn client_id_is_used_as_sent() {
    let repo = Scripted::new([]);
    let CreateOutcome::Created(created) =
        run(&repo, request().with_destination_id(CLIENT_ID)).unwrap()
    else {
        panic!("not created")
    };
    assert_eq!(created.destination_id().to_string(), CLIENT_ID);
    assert_eq!(repo.inserts()[0].1.destination_id.to_string(), CLIENT_ID);
}

#[test]
fn backend_error_is_returned_as_its_source_and_not_retried() {
    let repo = Scripted::new([Err(Boom(42))]);
    let err = run(&repo, request()).unwrap_err();
    let source = std::error::Error::source(&err).expect("has a source");
    assert_eq!(source.downcast_ref::<Boom>(), Some(&Boom(42)));
    assert!(matches!(err, OpError::Repo(Boom(42))));
    assert_eq!(repo.inserts().len(), 1);
}

#[test]
fn invalid_request_lists_every_field_and_never_reaches_the_repo() {
    let repo = Scripted::new([]);
    let req = CreateDestinationRequest::new("", "http://example.com").with_destination_id("whk_x");
    let CreateOutcome::Invalid(errors) = run(&repo, req).unwrap() else {
        panic!("not invalid")
    };
    let fields: Vec<_> = errors.errors().iter().map(|e| e.field().as_str()).collect();
    assert_eq!(fields, ["name", "url", "destinationId"]);
    assert!(repo.inserts().is_empty());
}

#[test]
fn record_holds_the_sealed_secret_and_digest_never_the_cleartext() {
    let mut rng = rng(9);
    let keys = keyring(3, &mut rng);
    let org = tenant("org_a");
    let repo = Scripted::new([]);
    let outcome = block_on(create(
        &repo,
        &org,
        request(),
        now(),
        &mut rng,
        keys.current(),
    ));
    let CreateOutcome::Created(created) = outcome.unwrap() else {
        panic!("not created")
    };
    let (stored_tenant, record) = repo.inserts().pop().unwrap();
    assert_eq!(stored_tenant, org);

    let secret = created.bearer_secret().expose_secret();
    let random_part = secret.strip_prefix("whsec_").unwrap();
    let json = serde_json::to_string(&record).unwrap();
    let debug = format!("{record:?}");
    for text in [&json, &debug] {
        assert!(!text.contains(random_part), "cleartext secret in {text}");
    }
    // Serialized, the record carries exactly its fields, the secret only sealed.
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut keys_seen: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
    keys_seen.sort();
    let mut expected = [
        "createdAt",
        "destinationId",
        "disabledReason",
        "enabled",
        "name",
        "previousSecrets",
        "sealedSecret",
        "secretDigest",
        "updatedAt",
        "url",
        "version",
    ];
    expected.sort();
    assert_eq!(keys_seen, expected);
    assert_eq!(
        serde_json::from_str::<DestinationRecord>(&json).unwrap(),
        record
    );

    assert_eq!(record.secret_digest, SecretDigest::of_presented(secret));
    assert_eq!(record.sealed_secret.key_id(), keys.current().id());
    let header = keys.authorization_header(&org, &record).unwrap();
    assert_eq!(*header, format!("Bearer {secret}"));
    assert!(record.secret_digest.verify_authorization(&*header));
}

#[test]
fn record_and_response_agree_and_times_are_whole_seconds() {
    let repo = Scripted::new([]);
    let CreateOutcome::Created(created) = run(&repo, request()).unwrap() else {
        panic!("not created")
    };
    let (_, record) = repo.inserts().pop().unwrap();
    assert_eq!(record.destination_id, created.destination_id());
    assert_eq!(&record.name, created.name());
    assert_eq!(&record.url, created.url());
    assert_eq!(record.name.as_str(), "Production");
    assert_eq!(record.url.as_str(), "https://example.com/prets/events");
    assert_eq!(record.created_at, created.created_at());
    assert_eq!(record.updated_at, created.updated_at());
    assert_eq!(record.created_at, record.updated_at);
    assert_eq!(record.created_at.unix_millis() % 1000, 0);
    assert_eq!(record.created_at.unix_seconds(), now().unix_seconds());
    assert_eq!(
        record.destination_id.timestamp_ms(),
        Some(now().unix_millis())
    );
}
