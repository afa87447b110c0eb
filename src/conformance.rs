//! The conformance kit for [`DestinationRepo`] implementations (feature
//! `conformance`): one async function per property of the trait's contract.
//!
//! Run each against your repo from your own tests, driven by your runtime (or
//! any executor). Each function makes its own fresh, random tenants and ids,
//! so the kit runs against a repo that already holds data, such as a shared
//! test database, and its functions may run in parallel. A violated property
//! panics with a message naming it, like an `assert!` in a test.
//!
//! ```
//! # #[cfg(feature = "memory")] {
//! use prets_destinations::{conformance, MemoryRepo};
//!
//! // In a test: `#[tokio::test] async fn repo_conforms() { conformance::run_all(&repo).await }`
//! pollster::block_on(conformance::run_all(&MemoryRepo::new()));
//! # }
//! ```
//!
//! `MemoryRepo` passes every function here.

// A failed property is reported the way a test reports it: by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod events;
pub mod outbox;
pub mod quotas;

use core::fmt;
use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::task::Poll;
use std::thread;

// The kit's functions are async and run on the caller's executor. Only the
// properties that race calls from OS threads of their own need one more:
// those threads have no runtime, so each drives its future to completion
// with this blocking executor.
use pollster::block_on;

use rand_core::{Rng as _, UnwrapErr};

use crate::id::DestinationId;
use crate::ops::{CreateOutcome, CreatePlan, OpError, create};
use crate::record::DestinationRecord;
use crate::repo::{DestinationRepo, InsertOutcome, RemoveOutcome, ReplaceOutcome, StoreError};
use crate::secret::{GracePeriod, KeyId, Keyring, SealingKey, SecretDigest};
use crate::tenant::TenantId;
use crate::time::Timestamp;
use crate::wire::{CreateDestinationRequest, Rotation};

type Rng = UnwrapErr<getrandom::SysRng>;

/// Fresh randomness, a key, a clock and tenants for one property.
struct Kit {
    rng: Rng,
    keyring: Keyring,
    now: Timestamp,
}

impl Kit {
    fn new() -> Self {
        let mut rng = UnwrapErr(getrandom::SysRng);
        let key = SealingKey::from_rng(KeyId::new(rng.next_u32()), &mut rng);
        let now = Timestamp::try_from(std::time::SystemTime::now())
            .expect("the system clock is after 1970");
        Self {
            rng,
            keyring: Keyring::new(key, []).expect("one key"),
            now,
        }
    }

    fn tenant(&mut self) -> TenantId {
        format!("conformance-{:016x}", self.rng.next_u64())
            .parse()
            .expect("valid tenant id")
    }

    fn id(&mut self) -> DestinationId {
        DestinationId::generate(self.now, &mut self.rng)
    }

    /// A request with a distinctive name and URL, so overwrites show.
    fn request(&mut self, id: Option<DestinationId>) -> CreateDestinationRequest {
        let n = self.rng.next_u64();
        let req = CreateDestinationRequest::new(
            format!("Conformance {n:016x}"),
            format!("https://example.com/prets/{n:016x}?q=a%20b"),
        );
        match id {
            Some(id) => req.with_destination_id(id.to_string()),
            None => req,
        }
    }

    fn plan(&mut self, tenant: &TenantId, id: Option<DestinationId>) -> CreatePlan {
        let new = self
            .request(id)
            .validate()
            .expect("the kit's request is valid");
        new.plan(tenant, self.now, &mut self.rng, self.keyring.current())
    }

    /// Asserts that `record` is exactly `plan`'s, and that its sealed secret
    /// opens to the secret of `plan`'s response.
    fn assert_intact(
        &self,
        tenant: &TenantId,
        got: &DestinationRecord,
        plan: &CreatePlan,
        what: &str,
    ) {
        assert_eq!(got, &plan.record, "{what}: a field changed in storage");
        let header = self
            .keyring
            .authorization_header(tenant, got)
            .unwrap_or_else(|e| panic!("{what}: the stored sealed secret does not open: {e}"));
        assert_eq!(
            *header,
            *plan.response.bearer_secret().authorization_header(),
            "{what}: the stored secret is not the one minted"
        );
    }
}

async fn insert<R: DestinationRepo>(
    repo: &R,
    tenant: &TenantId,
    record: &DestinationRecord,
) -> InsertOutcome {
    repo.insert(tenant, record).await.expect("insert failed")
}

async fn get<R: DestinationRepo>(
    repo: &R,
    tenant: &TenantId,
    id: DestinationId,
) -> Option<DestinationRecord> {
    repo.get(tenant, id).await.expect("get failed")
}

async fn list<R: DestinationRepo>(repo: &R, tenant: &TenantId) -> Vec<DestinationRecord> {
    repo.list(tenant).await.expect("list failed")
}

async fn find<R: DestinationRepo>(
    repo: &R,
    digest: &SecretDigest,
) -> Vec<(TenantId, DestinationRecord)> {
    repo.find_by_digest(digest)
        .await
        .expect("find_by_digest failed")
}

/// Every field of an inserted record comes back from `get` and `list`
/// exactly as inserted (the sealed secret still opens to the minted secret),
/// for client-supplied and generated ids alike; an id never inserted is
/// `None`.
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn insert_get_round_trip<R: DestinationRepo>(repo: &R) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let client_id = kit.id();
    let plans = [kit.plan(&tenant, Some(client_id)), kit.plan(&tenant, None)];
    for plan in &plans {
        let outcome = insert(repo, &tenant, &plan.record).await;
        assert_eq!(
            outcome,
            InsertOutcome::Inserted,
            "round trip: a new id was refused"
        );
        let got = get(repo, &tenant, plan.record.destination_id).await;
        let got = got.unwrap_or_else(|| panic!("round trip: get found nothing after Inserted"));
        kit.assert_intact(&tenant, &got, plan, "round trip (get)");
    }
    let listed = list(repo, &tenant).await;
    assert_eq!(
        listed.len(),
        2,
        "round trip: list does not hold exactly the two records"
    );
    for plan in &plans {
        let got = listed
            .iter()
            .find(|r| r.destination_id == plan.record.destination_id);
        kit.assert_intact(
            &tenant,
            got.expect("round trip: list lost a record"),
            plan,
            "round trip (list)",
        );
    }
    let absent = kit.id();
    assert_eq!(
        get(repo, &tenant, absent).await,
        None,
        "round trip: get invented a record"
    );
}

/// Inserting a record whose id the tenant already has returns
/// [`InsertOutcome::Duplicate`] and leaves the first record untouched; through
/// [`create`], a client-supplied duplicate id is [`CreateOutcome::Conflict`]
/// carrying that id, with nothing written.
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn duplicate_client_id_conflicts<R: DestinationRepo>(repo: &R) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let id = kit.id();
    let first = kit.plan(&tenant, Some(id));
    let second = kit.plan(&tenant, Some(id));
    assert_eq!(
        insert(repo, &tenant, &first.record).await,
        InsertOutcome::Inserted
    );
    assert_eq!(
        insert(repo, &tenant, &second.record).await,
        InsertOutcome::Duplicate,
        "duplicate id: the second insert was not reported as a duplicate"
    );
    let req = kit.request(Some(id));
    let outcome = create(
        repo,
        &tenant,
        req,
        kit.now,
        &mut kit.rng,
        kit.keyring.current(),
    )
    .await
    .expect("create failed");
    match outcome {
        CreateOutcome::Conflict { existing } => {
            assert_eq!(existing, id, "duplicate id: the conflict names another id");
        }
        other => panic!("duplicate id: create answered {other:?}, not a conflict"),
    }
    let got = get(repo, &tenant, id)
        .await
        .expect("duplicate id: the first record vanished");
    kit.assert_intact(
        &tenant,
        &got,
        &first,
        "duplicate id: the first record was overwritten",
    );
    assert_eq!(
        list(repo, &tenant).await.len(),
        1,
        "duplicate id: list shows more than one record"
    );
}

/// One tenant never sees another's destinations: `get` and `list` for
/// tenant B do not show tenant A's; B can insert the very id A has (no
/// conflict across tenants) without overwriting A's record; and a conflict in
/// B is only ever about B's own record.
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn tenant_isolation<R: DestinationRepo>(repo: &R) {
    let mut kit = Kit::new();
    let (a, b) = (kit.tenant(), kit.tenant());
    let id = kit.id();
    let in_a = kit.plan(&a, Some(id));
    assert_eq!(
        insert(repo, &a, &in_a.record).await,
        InsertOutcome::Inserted
    );

    assert_eq!(
        get(repo, &b, id).await,
        None,
        "isolation: get in B shows A's record"
    );
    assert!(
        list(repo, &b).await.is_empty(),
        "isolation: list in B shows A's records"
    );

    let in_b = kit.plan(&b, Some(id));
    assert_eq!(
        insert(repo, &b, &in_b.record).await,
        InsertOutcome::Inserted,
        "isolation: B's insert conflicted with A's id"
    );
    let got_a = get(repo, &a, id)
        .await
        .expect("isolation: A's record vanished");
    kit.assert_intact(
        &a,
        &got_a,
        &in_a,
        "isolation: B's insert overwrote A's record",
    );
    let got_b = get(repo, &b, id)
        .await
        .expect("isolation: B's record is missing");
    kit.assert_intact(
        &b,
        &got_b,
        &in_b,
        "isolation: B reads something other than its record",
    );

    // A conflict in B concerns B's record, and leaves both untouched.
    let again = kit.plan(&b, Some(id));
    assert_eq!(
        insert(repo, &b, &again.record).await,
        InsertOutcome::Duplicate
    );
    let got_a = get(repo, &a, id)
        .await
        .expect("isolation: A's record vanished");
    kit.assert_intact(
        &a,
        &got_a,
        &in_a,
        "isolation: a conflict in B changed A's record",
    );

    let only_a = kit.plan(&a, None);
    assert_eq!(
        insert(repo, &a, &only_a.record).await,
        InsertOutcome::Inserted
    );
    let ids =
        |v: Vec<DestinationRecord>| v.into_iter().map(|r| r.destination_id).collect::<Vec<_>>();
    let mut want_a = vec![id, only_a.record.destination_id];
    want_a.sort();
    assert_eq!(
        ids(list(repo, &a).await),
        want_a,
        "isolation: list in A is wrong"
    );
    assert_eq!(
        ids(list(repo, &b).await),
        vec![id],
        "isolation: list in B is wrong"
    );

    // A sealed secret is bound to its tenant: A's, copied into B's record, does not open.
    let mut copied = got_b;
    copied.sealed_secret = got_a.sealed_secret;
    copied.secret_digest = got_a.secret_digest;
    assert!(
        kit.keyring.authorization_header(&b, &copied).is_err(),
        "isolation: A's sealed secret opens in B"
    );
}

/// `list` returns all of a tenant's destinations in ascending id order; an
/// unknown tenant lists nothing.
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn list_in_id_order<R: DestinationRepo>(repo: &R) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let mut want = Vec::new();
    for _ in 0..8 {
        let plan = kit.plan(&tenant, None);
        assert_eq!(
            insert(repo, &tenant, &plan.record).await,
            InsertOutcome::Inserted
        );
        want.push(plan.record);
    }
    want.sort_by_key(|r| r.destination_id);
    assert_eq!(
        list(repo, &tenant).await,
        want,
        "list: not every record, in id order"
    );
    let nobody = kit.tenant();
    assert!(
        list(repo, &nobody).await.is_empty(),
        "list: an unknown tenant has records"
    );
}

/// `find_by_digest` finds a destination from the text of its secret (as a
/// leaked secret would be found), in whichever tenant it is, with that
/// tenant; a digest of no stored secret finds nothing.
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn find_by_digest_across_tenants<R: DestinationRepo>(repo: &R) {
    let mut kit = Kit::new();
    let (a, b) = (kit.tenant(), kit.tenant());
    let in_a = kit.plan(&a, None);
    let in_b = kit.plan(&b, None);
    assert_eq!(
        insert(repo, &a, &in_a.record).await,
        InsertOutcome::Inserted
    );
    assert_eq!(
        insert(repo, &b, &in_b.record).await,
        InsertOutcome::Inserted
    );
    for (tenant, plan) in [(&a, &in_a), (&b, &in_b)] {
        let leaked = plan.response.bearer_secret().expose_secret();
        let found = find(repo, &SecretDigest::of_presented(leaked)).await;
        assert_eq!(
            found,
            vec![(tenant.clone(), plan.record.clone())],
            "find by digest: not exactly the one destination with that secret"
        );
    }
    let unknown = SecretDigest::of_presented("whsec_not-a-stored-secret");
    assert!(
        find(repo, &unknown).await.is_empty(),
        "find by digest: found a stranger"
    );
}

/// Many concurrent [`create`] calls with one client-supplied id, joined in
/// the calling task (so they interleave at every await, on any runtime):
/// exactly one is `Created`, every other a `Conflict` naming the id, and the
/// stored record is the winner's.
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn concurrent_creates_of_one_client_id<R: DestinationRepo>(repo: &R, tasks: usize) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let id = kit.id();
    let requests: Vec<_> = (0..tasks).map(|_| kit.request(Some(id))).collect();
    let (now, key) = (kit.now, kit.keyring.current());
    let tenant_ref = &tenant;
    let futures: Vec<_> = requests
        .into_iter()
        .map(|req| async move {
            let mut rng = UnwrapErr(getrandom::SysRng);
            create(repo, tenant_ref, req, now, &mut rng, key).await
        })
        .collect();
    let outcomes = join_all(futures).await;
    check_one_winner(repo, &kit, &tenant, id, outcomes).await;
}

/// Like [`concurrent_creates_of_one_client_id`], but each create runs on its
/// own OS thread, all released at once, each driving its future with a
/// blocking executor (`pollster`): truly parallel calls. The calling thread
/// waits for them. Only for repos whose futures need no runtime (such as
/// `MemoryRepo`, or a repo over a blocking client); a repo on an async
/// driver runs the joined variant.
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn parallel_creates_of_one_client_id_on_threads<R: DestinationRepo>(
    repo: &R,
    threads: usize,
) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let id = kit.id();
    let requests: Vec<_> = (0..threads).map(|_| kit.request(Some(id))).collect();
    let (now, key) = (kit.now, kit.keyring.current());
    let barrier = std::sync::Barrier::new(threads);
    let outcomes = thread::scope(|s| {
        let handles: Vec<_> = requests
            .into_iter()
            .map(|req| {
                let (barrier, tenant) = (&barrier, &tenant);
                s.spawn(move || {
                    let mut rng = UnwrapErr(getrandom::SysRng);
                    barrier.wait();
                    block_on(create(repo, tenant, req, now, &mut rng, key))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a create thread panicked"))
            .collect()
    });
    check_one_winner(repo, &kit, &tenant, id, outcomes).await;
}

async fn check_one_winner<R: DestinationRepo>(
    repo: &R,
    kit: &Kit,
    tenant: &TenantId,
    id: DestinationId,
    outcomes: Vec<Result<CreateOutcome, OpError<R::Error>>>,
) {
    let tasks = outcomes.len();
    let mut winners = Vec::new();
    for outcome in outcomes {
        match outcome.expect("create failed") {
            CreateOutcome::Created(created) => winners.push(created),
            CreateOutcome::Conflict { existing } => {
                assert_eq!(
                    existing, id,
                    "concurrent inserts: a conflict names another id"
                );
            }
            CreateOutcome::Invalid(e) => panic!("the kit's request is invalid: {e:?}"),
            CreateOutcome::QuotaExceeded => panic!("concurrent inserts: a quota refused one"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "concurrent inserts: {} of {tasks} creates of one id succeeded",
        winners.len()
    );
    let stored = get(repo, tenant, id)
        .await
        .expect("concurrent inserts: nothing stored");
    let header = kit
        .keyring
        .authorization_header(tenant, &stored)
        .expect("stored secret opens");
    for winner in winners {
        assert_eq!(
            *header,
            *winner.bearer_secret().authorization_header(),
            "concurrent inserts: the stored secret is not the winner's"
        );
        assert_eq!(
            stored.name,
            *winner.name(),
            "concurrent inserts: stored name is not the winner's"
        );
        assert_eq!(
            stored.url,
            *winner.url(),
            "concurrent inserts: stored url is not the winner's"
        );
    }
    assert_eq!(
        list(repo, tenant).await.len(),
        1,
        "concurrent inserts: more than one record"
    );
}

/// After a failed insert nothing is half-written: [`create`] through a repo
/// whose inserts fail (a [`FailingInserts`] around yours) returns
/// [`OpError::Repo`] with the failure as its source and no secret, and
/// your repo then holds nothing for that tenant, so creating the same client
/// id again succeeds.
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn errors_leave_nothing_behind<R: DestinationRepo>(repo: &R) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let failing = FailingInserts::new(repo);
    let id = kit.id();
    for req in [kit.request(Some(id)), kit.request(None)] {
        let result = create(
            &failing,
            &tenant,
            req,
            kit.now,
            &mut kit.rng,
            kit.keyring.current(),
        )
        .await;
        match result {
            Err(err @ OpError::Repo(FailingRepoError::Injected)) => {
                let source = std::error::Error::source(&err).expect("the repo error is the source");
                assert!(
                    source.is::<FailingRepoError<R::Error>>(),
                    "errors: the source was replaced"
                );
            }
            other => panic!("errors: create through a failing repo gave {other:?}"),
        }
    }
    assert_eq!(
        get(repo, &tenant, id).await,
        None,
        "errors: a failed insert left a record"
    );
    assert!(
        list(repo, &tenant).await.is_empty(),
        "errors: a failed insert left records"
    );
    let req = kit.request(Some(id));
    let outcome = create(
        repo,
        &tenant,
        req,
        kit.now,
        &mut kit.rng,
        kit.keyring.current(),
    )
    .await
    .expect("create failed");
    assert!(
        matches!(outcome, CreateOutcome::Created(_)),
        "errors: after a failed create the id is taken: {outcome:?}"
    );
}

/// Runs every property once, the concurrent one with 16 joined tasks.
///
/// # Panics
/// If the repo violates a property or returns an error.
pub async fn run_all<R: DestinationRepo>(repo: &R) {
    insert_get_round_trip(repo).await;
    duplicate_client_id_conflicts(repo).await;
    tenant_isolation(repo).await;
    list_in_id_order(repo).await;
    find_by_digest_across_tenants(repo).await;
    concurrent_creates_of_one_client_id(repo, 16).await;
    errors_leave_nothing_behind(repo).await;
    list_page_walks_in_id_order(repo).await;
    pages_hold_under_concurrent_changes(repo).await;
    replace_is_compare_and_swap(repo).await;
    concurrent_replaces_one_wins(repo, 16).await;
    concurrent_versionless_updates_all_apply(repo, 16).await;
    concurrent_rotations_all_apply(repo, 16).await;
    concurrent_versioned_updates_one_wins(repo, 16).await;
    remove_deletes_everything(repo).await;
    rotation_keeps_previous_secrets(repo).await;
    lifecycle_through_the_core(repo).await;
    ids_of_every_width(repo).await;
    receiver_members_round_trip(repo).await;
}

/// What receivers expect is stored and read back exactly, through create,
/// rotation and update: the signing secret (sealed; it opens to the one
/// minted, and signs), `filterTypes` in order, custom headers in their
/// order (not sorted), a multi-line description, metadata; a rotation moves
/// the signing secret beside the bearer secret it replaced; an update
/// turning signing off and clearing every member stores exactly that; get,
/// list, a page and a lookup by digest all agree.
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn receiver_members_round_trip<R: DestinationRepo>(repo: &R) {
    use crate::ops::{RotateOutcome, UpdateOutcome, rotate, update};
    use crate::secret::{SignedMessage, Signing};
    use crate::wire::{RotateSecretRequest, UpdateDestinationRequest};

    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let request = kit
        .request(None)
        .with_signing(Signing::StandardWebhooks)
        .with_filter_types(["invoice.*", "user.created", "*"])
        .with_headers([("X-Zeta", "last, sorted"), ("X-Alpha", "v\ta l")])
        .with_description("Line one\nLine two\tand a tab")
        .with_metadata([("team", "billing"), ("a", "")]);
    let created = create(
        repo,
        &tenant,
        request,
        kit.now,
        &mut kit.rng,
        kit.keyring.current(),
    )
    .await
    .expect("create failed");
    let CreateOutcome::Created(created) = created else {
        panic!("receivers: create answered {created:?}")
    };
    let id = created.destination_id();
    let stored = get(repo, &tenant, id)
        .await
        .expect("receivers: record gone");
    assert_eq!(stored.signing(), Signing::StandardWebhooks);
    assert_eq!(
        stored.filter_types.entries().collect::<Vec<_>>(),
        ["invoice.*", "user.created", "*"],
        "receivers: filterTypes changed in storage"
    );
    assert_eq!(
        stored.headers.expose_pairs().collect::<Vec<_>>(),
        [("X-Zeta", "last, sorted"), ("X-Alpha", "v\ta l")],
        "receivers: headers changed (or were reordered) in storage"
    );
    assert_eq!(stored.description.as_str(), "Line one\nLine two\tand a tab");
    assert_eq!(
        stored.metadata.iter().collect::<Vec<_>>(),
        [("a", ""), ("team", "billing")]
    );
    // The stored signing secret is the one the 201 showed: it signs alike.
    let minted = created
        .signing_secret()
        .expect("receivers: no signing secret");
    let message = SignedMessage {
        webhook_id: "evt_conformance",
        timestamp: kit.now,
        body: b"{}",
    };
    assert_eq!(
        kit.keyring
            .record_signature(&tenant, &stored, &message, kit.now)
            .expect("receivers: the sealed signing secret does not open"),
        Some(crate::secret::webhook_signature(&message, minted, [])),
        "receivers: the stored signing secret is not the one minted"
    );
    for (what, found) in [
        ("list", list(repo, &tenant).await),
        ("page", page(repo, &tenant, None, 10).await),
        (
            "find_by_digest",
            find(repo, &stored.secret_digest)
                .await
                .into_iter()
                .map(|(_, r)| r)
                .collect(),
        ),
    ] {
        assert_eq!(
            found,
            core::slice::from_ref(&stored),
            "receivers: {what} disagrees with get"
        );
    }

    let rotated = rotate(
        repo,
        &tenant,
        id,
        RotateSecretRequest::new(),
        kit.now,
        &mut kit.rng,
        kit.keyring.current(),
    )
    .await
    .expect("rotate failed");
    let RotateOutcome::Rotated(rotated) = rotated else {
        panic!("receivers: rotate answered {rotated:?}")
    };
    let after = get(repo, &tenant, id)
        .await
        .expect("receivers: record gone");
    assert_eq!(
        after.previous_secrets[0].sealed_signing_secret.as_ref(),
        stored.signing_secret.as_ref(),
        "receivers: the replaced signing secret is not kept for the grace period"
    );
    let new = rotated
        .signing_secret()
        .expect("receivers: rotation minted no signing secret");
    assert_eq!(
        kit.keyring
            .record_signature(&tenant, &after, &message, kit.now)
            .expect("receivers: sealed signing secrets do not open"),
        Some(crate::secret::webhook_signature(&message, new, [minted])),
        "receivers: a delivery in the grace period is not signed by both"
    );

    let clear = UpdateDestinationRequest::new()
        .with_signing(Signing::Bearer)
        .with_filter_types(Vec::<String>::new())
        .with_headers(Vec::<(String, String)>::new())
        .with_description("")
        .with_metadata(Vec::<(String, String)>::new());
    let updated = update(
        repo,
        &tenant,
        id,
        clear,
        kit.now,
        &mut kit.rng,
        kit.keyring.current(),
    )
    .await
    .expect("update failed");
    let UpdateOutcome::Updated(updated) = updated else {
        panic!("receivers: update answered {updated:?}")
    };
    let cleared = get(repo, &tenant, id)
        .await
        .expect("receivers: record gone");
    assert_eq!(cleared.signing(), Signing::Bearer);
    assert!(
        cleared
            .previous_secrets
            .iter()
            .all(|p| p.sealed_signing_secret.is_none()),
        "receivers: signing off kept a signing secret"
    );
    assert!(
        cleared.filter_types.is_empty()
            && cleared.headers.is_empty()
            && cleared.description.is_empty()
            && cleared.metadata.is_empty(),
        "receivers: an update did not replace the whole list or map"
    );
    assert_eq!(
        crate::wire::DestinationView::from(&cleared),
        *updated.view(),
        "receivers: the update's view is not what was stored"
    );
}

/// Client ids across the whole pattern, including those wider than a 128-bit
/// ULID (first character `8` to `Z`), are stored, read back exactly, listed
/// and paged in text order beside generated ids, usable as cursors, replaced
/// and removed.
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn ids_of_every_width<R: DestinationRepo>(repo: &R) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let texts = [
        "whk_00000000000000000000000000",
        "whk_7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
        "whk_80000000000000000000000000",
        "whk_9ZZZZZZZZZZZZZZZZZZZZZZZZZ",
        "whk_Z1ARZ3NDEKTSV4RRFFQ69G5FAV",
        "whk_ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
    ];
    let mut plans = Vec::new();
    for text in texts {
        let id: DestinationId = text.parse().expect("a pattern-valid id");
        plans.push(kit.plan(&tenant, Some(id)));
    }
    plans.push(kit.plan(&tenant, None));
    for plan in &plans {
        assert_eq!(
            insert(repo, &tenant, &plan.record).await,
            InsertOutcome::Inserted,
            "wide ids: {} was refused",
            plan.record.destination_id
        );
        let got = get(repo, &tenant, plan.record.destination_id).await;
        let got = got.unwrap_or_else(|| panic!("wide ids: get found nothing after Inserted"));
        kit.assert_intact(&tenant, &got, plan, "wide ids (get)");
        assert_eq!(
            got.destination_id.as_str(),
            plan.record.destination_id.as_str(),
            "wide ids: the id text changed in storage"
        );
    }
    let mut ids: Vec<_> = plans.iter().map(|p| p.record.destination_id).collect();
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let listed: Vec<_> = list(repo, &tenant)
        .await
        .iter()
        .map(|r| r.destination_id)
        .collect();
    assert_eq!(listed, ids, "wide ids: list is not in text order");
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let got = page(repo, &tenant, after, 2).await;
        let Some(last) = got.last() else { break };
        after = Some(last.destination_id);
        walked.extend(got.iter().map(|r| r.destination_id));
    }
    assert_eq!(walked, ids, "wide ids: the page walk is not in text order");
    // A cursor at the largest ULID: exactly the wider ids follow.
    let ulid_max = DestinationId::from_ulid(u128::MAX);
    let wider: Vec<_> = ids.iter().copied().filter(|id| *id > ulid_max).collect();
    let got: Vec<_> = page(repo, &tenant, Some(ulid_max), 100)
        .await
        .iter()
        .map(|r| r.destination_id)
        .collect();
    assert_eq!(got, wider, "wide ids: a cursor at the largest ulid");
    // A wide cursor that is not an id is a position too.
    let between: DestinationId = "whk_80000000000000000000000001"
        .parse()
        .expect("a pattern-valid id");
    let got: Vec<_> = page(repo, &tenant, Some(between), 100)
        .await
        .iter()
        .map(|r| r.destination_id)
        .collect();
    assert_eq!(
        got,
        ids.iter()
            .copied()
            .filter(|id| *id > between)
            .collect::<Vec<_>>(),
        "wide ids: a cursor between wide ids"
    );
    let widest = DestinationId::MAX;
    let plan = plans
        .iter()
        .find(|p| p.record.destination_id == widest)
        .expect("the kit inserted the largest id");
    let rotated = kit.rotated(&tenant, &plan.record, 60);
    assert_eq!(
        replace(repo, &tenant, 1, &rotated).await,
        ReplaceOutcome::Replaced,
        "wide ids: replace"
    );
    assert_eq!(
        get(repo, &tenant, widest).await.as_ref(),
        Some(&rotated),
        "wide ids: the replaced record"
    );
    assert_eq!(
        remove(repo, &tenant, widest).await,
        RemoveOutcome::Removed,
        "wide ids: remove"
    );
    assert_eq!(get(repo, &tenant, widest).await, None, "wide ids: removed");
}

/// A repo whose writes (`insert`, `replace`, `remove`) always fail, without
/// reaching the repo it wraps; reads go through. For testing how callers
/// handle backend errors.
#[derive(Debug)]
pub struct FailingInserts<'a, R> {
    inner: &'a R,
}

impl<'a, R: DestinationRepo> FailingInserts<'a, R> {
    /// Wraps `inner`.
    pub const fn new(inner: &'a R) -> Self {
        Self { inner }
    }
}

/// The error of [`FailingInserts`]: the injected failure, or the wrapped
/// repo's own error.
#[derive(Debug)]
pub enum FailingRepoError<E> {
    /// The failure every write returns.
    Injected,
    /// The wrapped repo failed.
    Inner(E),
}

impl<E: fmt::Display> fmt::Display for FailingRepoError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Injected => f.write_str("injected write failure"),
            // A store error's text is what a host logs (see `StoreError`).
            Self::Inner(e) => write!(f, "wrapped repository failed: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for FailingRepoError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Injected => None,
            Self::Inner(e) => Some(e),
        }
    }
}

/// The injected failure is a plain failure; the wrapped repo's errors say
/// what they say.
impl<E: StoreError> StoreError for FailingRepoError<E> {
    fn is_unavailable(&self) -> bool {
        matches!(self, Self::Inner(e) if e.is_unavailable())
    }

    fn is_busy(&self) -> bool {
        matches!(self, Self::Inner(e) if e.is_busy())
    }
}

impl<R: DestinationRepo> DestinationRepo for FailingInserts<'_, R> {
    type Error = FailingRepoError<R::Error>;

    async fn insert(
        &self,
        _tenant: &TenantId,
        _record: &DestinationRecord,
    ) -> Result<InsertOutcome, Self::Error> {
        Err(FailingRepoError::Injected)
    }

    async fn get(
        &self,
        tenant: &TenantId,
        id: DestinationId,
    ) -> Result<Option<DestinationRecord>, Self::Error> {
        self.inner
            .get(tenant, id)
            .await
            .map_err(FailingRepoError::Inner)
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<DestinationRecord>, Self::Error> {
        self.inner
            .list(tenant)
            .await
            .map_err(FailingRepoError::Inner)
    }

    async fn find_by_digest(
        &self,
        digest: &SecretDigest,
    ) -> Result<Vec<(TenantId, DestinationRecord)>, Self::Error> {
        self.inner
            .find_by_digest(digest)
            .await
            .map_err(FailingRepoError::Inner)
    }

    async fn list_page(
        &self,
        tenant: &TenantId,
        after: Option<DestinationId>,
        limit: usize,
    ) -> Result<Vec<DestinationRecord>, Self::Error> {
        self.inner
            .list_page(tenant, after, limit)
            .await
            .map_err(FailingRepoError::Inner)
    }

    async fn replace(
        &self,
        _tenant: &TenantId,
        _expected_version: u64,
        _record: &DestinationRecord,
    ) -> Result<ReplaceOutcome, Self::Error> {
        Err(FailingRepoError::Injected)
    }

    async fn remove(
        &self,
        _tenant: &TenantId,
        _id: DestinationId,
    ) -> Result<RemoveOutcome, Self::Error> {
        Err(FailingRepoError::Injected)
    }
}

/// Polls every future in turn until all are done: concurrency without a
/// runtime or a dependency.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(v) => *output = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

// ---------------------------------------------------------------------------
// The lifecycle: pages, compare-and-swap, removal, rotation.
// ---------------------------------------------------------------------------

async fn page<R: DestinationRepo>(
    repo: &R,
    tenant: &TenantId,
    after: Option<DestinationId>,
    limit: usize,
) -> Vec<DestinationRecord> {
    let page = repo
        .list_page(tenant, after, limit)
        .await
        .expect("list_page failed");
    assert!(
        page.len() <= limit,
        "list_page: {} records for a limit of {limit}",
        page.len()
    );
    page
}

async fn replace<R: DestinationRepo>(
    repo: &R,
    tenant: &TenantId,
    expected: u64,
    record: &DestinationRecord,
) -> ReplaceOutcome {
    repo.replace(tenant, expected, record)
        .await
        .expect("replace failed")
}

async fn remove<R: DestinationRepo>(
    repo: &R,
    tenant: &TenantId,
    id: DestinationId,
) -> RemoveOutcome {
    repo.remove(tenant, id).await.expect("remove failed")
}

impl Kit {
    /// Inserts `n` fresh records for `tenant`; returns them in id order.
    async fn fill<R: DestinationRepo>(
        &mut self,
        repo: &R,
        tenant: &TenantId,
        n: usize,
    ) -> Vec<DestinationRecord> {
        let mut records = Vec::with_capacity(n);
        for _ in 0..n {
            let plan = self.plan(tenant, None);
            assert_eq!(
                insert(repo, tenant, &plan.record).await,
                InsertOutcome::Inserted
            );
            records.push(plan.record);
        }
        records.sort_by_key(|r| r.destination_id);
        records
    }

    /// `record` rotated now with a grace period of `secs` seconds.
    fn rotated(
        &mut self,
        tenant: &TenantId,
        record: &DestinationRecord,
        secs: u64,
    ) -> DestinationRecord {
        let rotation = Rotation {
            grace_period: GracePeriod::from_secs(secs).expect("a valid grace period"),
            expected_version: None,
        };
        rotation
            .plan(
                record,
                tenant,
                self.now,
                &mut self.rng,
                self.keyring.current(),
            )
            .expect("rotation plan")
            .record
    }
}

/// `list_page` gives the records after the cursor in ascending id order, at
/// most `limit`, for every page size; walking it page by page gives exactly
/// `list`; a cursor that is not (or no longer) an id of the tenant works as a
/// position; other tenants' records never appear.
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn list_page_walks_in_id_order<R: DestinationRepo>(repo: &R) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let other = kit.tenant();
    let records = kit.fill(repo, &tenant, 7).await;
    kit.fill(repo, &other, 3).await;
    let all: Vec<_> = records.iter().map(|r| r.destination_id).collect();
    for limit in [1, 2, 3, 6, 7, 8, 101] {
        let mut walked = Vec::new();
        let mut after = None;
        for round in 0.. {
            assert!(
                round <= all.len(),
                "list_page: the walk with limit {limit} does not end"
            );
            let got = page(repo, &tenant, after, limit).await;
            if got.is_empty() {
                break;
            }
            if got.len() < limit {
                walked.extend(got.iter().map(|r| r.destination_id));
                let tail = page(repo, &tenant, walked.last().copied(), limit).await;
                assert!(tail.is_empty(), "list_page: a short page was not the last");
                break;
            }
            after = got.last().map(|r| r.destination_id);
            walked.extend(got.iter().map(|r| r.destination_id));
        }
        assert_eq!(
            walked, all,
            "list_page: the walk with limit {limit} is not the tenant's ids in order"
        );
    }
    let first = page(repo, &tenant, None, 7).await;
    assert_eq!(first, records, "list_page: a record changed in storage");
    // A position between two ids, not itself an id.
    if let Some(between) = all[2].successor().filter(|id| *id < all[3]) {
        let got = page(repo, &tenant, Some(between), 100).await;
        assert_eq!(
            got.iter().map(|r| r.destination_id).collect::<Vec<_>>(),
            all[3..],
            "list_page: a cursor that is not an id is not a position"
        );
    }
    let last = page(repo, &tenant, all.last().copied(), 5).await;
    assert!(last.is_empty(), "list_page: records after the last id");
}

/// Walking the pages while records are inserted (before and after the
/// cursor) and removed (behind it, ahead of it, and the cursor's own record)
/// never repeats a record and never skips one that existed for the whole
/// walk.
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn pages_hold_under_concurrent_changes<R: DestinationRepo>(repo: &R) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let mut records = kit.fill(repo, &tenant, 12).await;
    // Destinations removed during the walk did not exist for all of it.
    let mut stable: std::collections::BTreeSet<_> =
        records.iter().map(|r| r.destination_id).collect();
    let mut seen = Vec::new();
    let mut after = None;
    for round in 0.. {
        let got = page(repo, &tenant, after, 3).await;
        seen.extend(got.iter().map(|r| r.destination_id));
        let Some(last) = got.last() else { break };
        let cursor = last.destination_id;
        after = Some(cursor);
        // Remove one record behind the cursor and, every other round, the
        // cursor's own record and one ahead of it.
        let victims: Vec<_> = [
            Some(cursor).filter(|_| round % 2 == 1),
            records
                .iter()
                .map(|r| r.destination_id)
                .find(|id| *id < cursor),
            records
                .iter()
                .map(|r| r.destination_id)
                .rev()
                .find(|id| *id > cursor && round % 2 == 0),
        ]
        .into_iter()
        .flatten()
        .collect();
        for id in victims {
            if stable.remove(&id) || records.iter().any(|r| r.destination_id == id) {
                let _ = remove(repo, &tenant, id).await;
                records.retain(|r| r.destination_id != id);
            }
        }
        // Insert new ones: a generated id lands anywhere (same time, random
        // part); a client-chosen id just before the cursor lands behind it.
        kit.fill(repo, &tenant, 1).await;
        if let Some(behind) = cursor.predecessor() {
            let plan = kit.plan(&tenant, Some(behind));
            let _ = insert(repo, &tenant, &plan.record).await;
        }
        if round > 20 {
            panic!("pagination: the walk does not end");
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        seen.len(),
        "pagination: a record appeared twice"
    );
    assert_eq!(sorted, seen, "pagination: the walk is not in id order");
    for id in &stable {
        assert!(
            seen.contains(id),
            "pagination: a record present for the whole walk was skipped"
        );
    }
}

/// `replace` is a compare-and-swap on the version: a stale version is
/// `VersionMismatch` and changes nothing; the right one replaces every field
/// (previous secrets included); a missing id, or another tenant's, is
/// `NotFound` and inserts nothing.
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn replace_is_compare_and_swap<R: DestinationRepo>(repo: &R) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let other = kit.tenant();
    let plan = kit.plan(&tenant, None);
    let id = plan.record.destination_id;
    assert_eq!(
        insert(repo, &tenant, &plan.record).await,
        InsertOutcome::Inserted
    );
    let next = kit.rotated(&tenant, &plan.record, 3_600);
    assert_eq!(next.version, 2);
    for stale in [0, 2, u64::MAX] {
        assert_eq!(
            replace(repo, &tenant, stale, &next).await,
            ReplaceOutcome::VersionMismatch,
            "replace: version {stale} was accepted for a record at version 1"
        );
    }
    kit.assert_intact(
        &tenant,
        &get(repo, &tenant, id).await.expect("record"),
        &plan,
        "replace: a refused replace wrote",
    );
    assert_eq!(
        replace(repo, &other, 1, &next).await,
        ReplaceOutcome::NotFound,
        "replace: reached another tenant's record"
    );
    assert_eq!(
        get(repo, &other, id).await,
        None,
        "replace: inserted into another tenant"
    );
    assert_eq!(
        replace(repo, &tenant, 1, &next).await,
        ReplaceOutcome::Replaced,
        "replace: the current version was refused"
    );
    assert_eq!(
        get(repo, &tenant, id).await.as_ref(),
        Some(&next),
        "replace: the stored record is not the replacement"
    );
    assert_eq!(
        replace(repo, &tenant, 1, &next).await,
        ReplaceOutcome::VersionMismatch,
        "replace: the old version was accepted again"
    );
    let missing = kit.plan(&tenant, None).record;
    assert_eq!(
        replace(repo, &tenant, 1, &missing).await,
        ReplaceOutcome::NotFound,
        "replace: a missing id was not NotFound"
    );
    assert_eq!(
        get(repo, &tenant, missing.destination_id).await,
        None,
        "replace: inserted a missing record"
    );
}

/// Of `tasks` replaces of one record from one version, joined concurrently,
/// exactly one is `Replaced` and the stored record is that one's.
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn concurrent_replaces_one_wins<R: DestinationRepo>(repo: &R, tasks: usize) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let plan = kit.plan(&tenant, None);
    assert_eq!(
        insert(repo, &tenant, &plan.record).await,
        InsertOutcome::Inserted
    );
    let candidates: Vec<_> = (0..tasks)
        .map(|_| kit.rotated(&tenant, &plan.record, 60))
        .collect();
    let tenant_ref = &tenant;
    let outcomes = join_all(
        candidates
            .iter()
            .map(|r| async move { replace(repo, tenant_ref, 1, r).await })
            .collect(),
    )
    .await;
    let winners: Vec<_> = outcomes
        .iter()
        .zip(&candidates)
        .filter(|(o, _)| **o == ReplaceOutcome::Replaced)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "concurrent replaces: {} won",
        winners.len()
    );
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            ReplaceOutcome::Replaced | ReplaceOutcome::VersionMismatch
        )),
        "concurrent replaces: an answer other than Replaced or VersionMismatch"
    );
    let stored = get(repo, &tenant, plan.record.destination_id).await;
    assert_eq!(
        stored.as_ref(),
        winners.first().map(|(_, r)| *r),
        "concurrent replaces: the stored record is not the winner's"
    );
}

/// Yields to the executor once: the joined futures of the kit all run to
/// this point before any goes on.
async fn yield_once() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

/// A repo whose `get` yields after reading, so that joined read-modify-write
/// operations all read before any writes: every round but one loses its
/// compare-and-swap, whatever the repo's own scheduling.
struct Interleaved<'a, R>(&'a R);

impl<R: DestinationRepo> DestinationRepo for Interleaved<'_, R> {
    type Error = R::Error;

    async fn insert(
        &self,
        tenant: &TenantId,
        record: &DestinationRecord,
    ) -> Result<InsertOutcome, Self::Error> {
        self.0.insert(tenant, record).await
    }

    async fn get(
        &self,
        tenant: &TenantId,
        id: DestinationId,
    ) -> Result<Option<DestinationRecord>, Self::Error> {
        let record = self.0.get(tenant, id).await;
        yield_once().await;
        record
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<DestinationRecord>, Self::Error> {
        self.0.list(tenant).await
    }

    async fn find_by_digest(
        &self,
        digest: &SecretDigest,
    ) -> Result<Vec<(TenantId, DestinationRecord)>, Self::Error> {
        self.0.find_by_digest(digest).await
    }

    async fn list_page(
        &self,
        tenant: &TenantId,
        after: Option<DestinationId>,
        limit: usize,
    ) -> Result<Vec<DestinationRecord>, Self::Error> {
        self.0.list_page(tenant, after, limit).await
    }

    async fn replace(
        &self,
        tenant: &TenantId,
        expected_version: u64,
        record: &DestinationRecord,
    ) -> Result<ReplaceOutcome, Self::Error> {
        self.0.replace(tenant, expected_version, record).await
    }

    async fn remove(
        &self,
        tenant: &TenantId,
        id: DestinationId,
    ) -> Result<RemoveOutcome, Self::Error> {
        self.0.remove(tenant, id).await
    }
}

/// Of `tasks` concurrent [`update`](crate::ops::update)s without `version`, each
/// naming its own name, joined so that every one reads before any writes
/// (each round, all but one lose the compare-and-swap): all are `Updated`,
/// each applied exactly once (their versions are 2 to `tasks` + 1, one each,
/// and each answer carries its own name), and the stored record is at
/// version `tasks` + 1 with the name of the update answered with that
/// version. `tasks` must be at most
/// [`VERSIONLESS_ATTEMPTS`](crate::ops::VERSIONLESS_ATTEMPTS).
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn concurrent_versionless_updates_all_apply<R: DestinationRepo>(repo: &R, tasks: usize) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let plan = kit.plan(&tenant, None);
    let id = plan.record.destination_id;
    assert_eq!(
        insert(repo, &tenant, &plan.record).await,
        InsertOutcome::Inserted
    );
    let names: Vec<String> = (0..tasks).map(|i| format!("Writer {i}")).collect();
    let (now, tenant_ref, racing) = (kit.now, &tenant, &Interleaved(repo));
    let key = kit.keyring.current();
    let outcomes = join_all(
        names
            .iter()
            .map(|name| async move {
                let request = crate::wire::UpdateDestinationRequest::new().with_name(name.as_str());
                let mut rng = UnwrapErr(getrandom::SysRng);
                crate::ops::update(racing, tenant_ref, id, request, now, &mut rng, key).await
            })
            .collect(),
    )
    .await;
    let mut versions = Vec::new();
    let mut last_name = None;
    for (outcome, name) in outcomes.into_iter().zip(&names) {
        match outcome.expect("update failed") {
            crate::ops::UpdateOutcome::Updated(view) => {
                assert_eq!(
                    view.name().as_str(),
                    name,
                    "versionless updates: an answer carries another update's name"
                );
                if view.version() == 1 + tasks as u64 {
                    last_name = Some(name.clone());
                }
                versions.push(view.version());
            }
            other => panic!("versionless updates: one answered {other:?}"),
        }
    }
    versions.sort_unstable();
    let expected: Vec<u64> = (2..).take(tasks).collect();
    assert_eq!(
        versions, expected,
        "versionless updates: not each applied exactly once"
    );
    let stored = get(repo, &tenant, id).await.expect("record");
    assert_eq!(
        stored.version,
        1 + tasks as u64,
        "versionless updates: stored version"
    );
    assert_eq!(
        Some(stored.name.as_str().to_owned()),
        last_name,
        "versionless updates: the stored name is not the last applied"
    );
    assert_eq!(
        (&stored.sealed_secret, stored.secret_digest),
        (&plan.record.sealed_secret, plan.record.secret_digest),
        "versionless updates: the secret changed"
    );
}

/// Of `tasks` concurrent [`rotate`](crate::ops::rotate)s (a rotation names no
/// version), joined so that every one reads before any writes: all are
/// `Rotated`, each applied exactly once (versions 2 to `tasks` + 1, one
/// each, all secrets distinct), and only applied secrets were returned: the
/// stored current secret is the one answered with the last version, and the
/// kept previous secrets are those answered with the versions just before
/// it, newest first. `tasks` must be at most
/// [`VERSIONLESS_ATTEMPTS`](crate::ops::VERSIONLESS_ATTEMPTS).
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn concurrent_rotations_all_apply<R: DestinationRepo>(repo: &R, tasks: usize) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let plan = kit.plan(&tenant, None);
    let id = plan.record.destination_id;
    assert_eq!(
        insert(repo, &tenant, &plan.record).await,
        InsertOutcome::Inserted
    );
    let (now, key, tenant_ref, racing) =
        (kit.now, kit.keyring.current(), &tenant, &Interleaved(repo));
    let outcomes = join_all(
        (0..tasks)
            .map(|_| async move {
                let mut rng = UnwrapErr(getrandom::SysRng);
                let request =
                    crate::wire::RotateSecretRequest::new().with_grace_period_seconds(3_600);
                crate::ops::rotate(racing, tenant_ref, id, request, now, &mut rng, key).await
            })
            .collect(),
    )
    .await;
    let mut by_version = Vec::new();
    for outcome in outcomes {
        match outcome.expect("rotate failed") {
            crate::ops::RotateOutcome::Rotated(rotated) => {
                by_version.push((rotated.version(), rotated.bearer_secret().digest()));
            }
            other => panic!("concurrent rotations: one answered {other:?}"),
        }
    }
    by_version.sort_unstable_by_key(|(v, _)| *v);
    let versions: Vec<u64> = by_version.iter().map(|(v, _)| *v).collect();
    let expected: Vec<u64> = (2..).take(tasks).collect();
    assert_eq!(
        versions, expected,
        "concurrent rotations: not each applied exactly once"
    );
    let mut digests: Vec<[u8; 32]> = by_version.iter().map(|(_, d)| *d.as_bytes()).collect();
    digests.sort_unstable();
    digests.dedup();
    assert_eq!(
        digests.len(),
        tasks,
        "concurrent rotations: a secret repeats"
    );
    let stored = get(repo, &tenant, id).await.expect("record");
    assert_eq!(
        stored.version,
        1 + tasks as u64,
        "concurrent rotations: stored version"
    );
    // Newest first: the current secret, then the kept previous ones.
    let mut answered = by_version.iter().rev().map(|(_, d)| *d);
    assert_eq!(
        Some(stored.secret_digest),
        answered.next(),
        "concurrent rotations: the stored secret is not the last one answered"
    );
    let previous: Vec<SecretDigest> = stored
        .previous_secrets
        .iter()
        .map(|p| p.secret_digest)
        .collect();
    let expected_previous: Vec<SecretDigest> = answered
        .chain(core::iter::once(plan.record.secret_digest))
        .take(crate::secret::MAX_PREVIOUS_SECRETS)
        .collect();
    assert_eq!(
        previous, expected_previous,
        "concurrent rotations: the kept secrets are not the answered ones"
    );
}

/// Of `tasks` concurrent [`update`](crate::ops::update)s all naming version 1,
/// joined so that every one reads before any writes: exactly one is
/// `Updated` (to version 2), every other `VersionMismatch` (a named version
/// is never retried), and the stored record is the winner's.
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn concurrent_versioned_updates_one_wins<R: DestinationRepo>(repo: &R, tasks: usize) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let plan = kit.plan(&tenant, None);
    let id = plan.record.destination_id;
    assert_eq!(
        insert(repo, &tenant, &plan.record).await,
        InsertOutcome::Inserted
    );
    let names: Vec<String> = (0..tasks).map(|i| format!("Writer {i}")).collect();
    let (now, tenant_ref, racing) = (kit.now, &tenant, &Interleaved(repo));
    let key = kit.keyring.current();
    let outcomes = join_all(
        names
            .iter()
            .map(|name| async move {
                let request = crate::wire::UpdateDestinationRequest::new()
                    .with_name(name.as_str())
                    .with_version(1);
                let mut rng = UnwrapErr(getrandom::SysRng);
                crate::ops::update(racing, tenant_ref, id, request, now, &mut rng, key).await
            })
            .collect(),
    )
    .await;
    let mut winners = Vec::new();
    for outcome in outcomes {
        match outcome.expect("update failed") {
            crate::ops::UpdateOutcome::Updated(view) => winners.push(view),
            crate::ops::UpdateOutcome::VersionMismatch => {}
            other => panic!("versioned updates: one answered {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "versioned updates: {} of {tasks} updates of version 1 applied",
        winners.len()
    );
    let stored = get(repo, &tenant, id).await.expect("record");
    let winner = winners.first().expect("one winner");
    assert_eq!(
        (stored.version, &stored.name),
        (2, winner.name()),
        "versioned updates: the stored record is not the winner's"
    );
}

/// `remove` deletes the record with all its secrets: afterwards `get` is
/// `None`, no page lists it, and none of its digests (current or previous)
/// finds it; removing again, or from another tenant, is `NotFound` (and the
/// other tenant's remove leaves it alone). The id may then be inserted again.
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn remove_deletes_everything<R: DestinationRepo>(repo: &R) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let other = kit.tenant();
    let id = kit.id();
    let plan = kit.plan(&tenant, Some(id));
    assert_eq!(
        insert(repo, &tenant, &plan.record).await,
        InsertOutcome::Inserted
    );
    let rotated = kit.rotated(&tenant, &plan.record, 3_600);
    assert_eq!(
        replace(repo, &tenant, 1, &rotated).await,
        ReplaceOutcome::Replaced
    );
    let digests: Vec<_> = core::iter::once(rotated.secret_digest)
        .chain(rotated.previous_secrets.iter().map(|p| p.secret_digest))
        .collect();
    assert_eq!(digests.len(), 2);
    assert_eq!(
        remove(repo, &other, id).await,
        RemoveOutcome::NotFound,
        "remove: reached another tenant's record"
    );
    assert!(
        get(repo, &tenant, id).await.is_some(),
        "remove: another tenant's remove deleted it"
    );
    assert_eq!(remove(repo, &tenant, id).await, RemoveOutcome::Removed);
    assert_eq!(
        get(repo, &tenant, id).await,
        None,
        "remove: get still finds it"
    );
    assert!(
        page(repo, &tenant, None, 100).await.is_empty(),
        "remove: a page still lists it"
    );
    assert!(
        list(repo, &tenant).await.is_empty(),
        "remove: list still holds it"
    );
    for d in &digests {
        assert!(
            repo.find_by_digest(d)
                .await
                .expect("find_by_digest failed")
                .iter()
                .all(|(t, r)| !(t == &tenant && r.destination_id == id)),
            "remove: a digest of the removed record still finds it"
        );
    }
    assert_eq!(
        remove(repo, &tenant, id).await,
        RemoveOutcome::NotFound,
        "remove: a second remove was not NotFound"
    );
    let again = kit.plan(&tenant, Some(id));
    assert_eq!(
        insert(repo, &tenant, &again.record).await,
        InsertOutcome::Inserted,
        "remove: the id cannot be inserted again"
    );
    kit.assert_intact(
        &tenant,
        &get(repo, &tenant, id).await.expect("record"),
        &again,
        "remove: the new record",
    );
}

/// A rotation stored with `replace` keeps the previous secrets faithfully:
/// `find_by_digest` finds the record by a previous secret's digest and no
/// longer by a dropped one, the delivery path uses the new secret, and the
/// record's [`SecretSet`](crate::secret::SecretSet) accepts both until the deadline.
/// Through [`rotate`](crate::ops::rotate), a grace period of 0 revokes every
/// secret but the new one at once, including one still in its grace period.
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn rotation_keeps_previous_secrets<R: DestinationRepo>(repo: &R) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let created = create(
        repo,
        &tenant,
        kit.request(None),
        kit.now,
        &mut kit.rng,
        kit.keyring.current(),
    )
    .await
    .expect("create failed");
    let CreateOutcome::Created(created) = created else {
        panic!("rotation: create answered {created:?}")
    };
    let id = created.destination_id();
    let old_header = created.bearer_secret().authorization_header();
    let old_digest = created.bearer_secret().digest();
    let rotated = crate::ops::rotate(
        repo,
        &tenant,
        id,
        crate::wire::RotateSecretRequest::new(),
        kit.now,
        &mut kit.rng,
        kit.keyring.current(),
    )
    .await
    .expect("rotate failed");
    let crate::ops::RotateOutcome::Rotated(rotated) = rotated else {
        panic!("rotation: rotate answered {rotated:?}")
    };
    let new_header = rotated.bearer_secret().authorization_header();
    let record = get(repo, &tenant, id).await.expect("rotation: record gone");
    assert_eq!(record.version, 2, "rotation: version not 2");
    assert_eq!(
        record.previous_secrets.len(),
        1,
        "rotation: previous secret not kept"
    );
    assert_eq!(
        *kit.keyring
            .authorization_header(&tenant, &record)
            .expect("rotation: the new sealed secret does not open"),
        *new_header,
        "rotation: delivery does not use the new secret"
    );
    let deadline = rotated
        .previous_secret_expires_at()
        .expect("rotation: no deadline");
    let set = record.secret_set();
    let before = Timestamp::from_unix_millis(deadline.unix_millis() - 1).expect("time");
    assert!(
        set.verify_authorization(&*old_header, before),
        "rotation: old secret refused in its grace period"
    );
    assert!(
        !set.verify_authorization(&*old_header, deadline),
        "rotation: old secret accepted at its deadline"
    );
    assert!(
        set.verify_authorization(&*new_header, deadline),
        "rotation: new secret refused"
    );
    let found = repo
        .find_by_digest(&old_digest)
        .await
        .expect("find_by_digest failed");
    assert!(
        found
            .iter()
            .any(|(t, r)| t == &tenant && r.destination_id == id),
        "rotation: a previous secret's digest does not find the record"
    );
    // Grace 0 (the answer to a leak): nothing but the new secret survives,
    // neither the replaced secret nor the one still in its grace period.
    let now_revoke = crate::ops::rotate(
        repo,
        &tenant,
        id,
        crate::wire::RotateSecretRequest::new().with_grace_period_seconds(0),
        kit.now,
        &mut kit.rng,
        kit.keyring.current(),
    )
    .await
    .expect("rotate failed");
    let crate::ops::RotateOutcome::Rotated(third) = now_revoke else {
        panic!("rotation: rotate answered {now_revoke:?}")
    };
    assert_eq!(third.previous_secret_expires_at(), None);
    let record = get(repo, &tenant, id).await.expect("rotation: record gone");
    assert!(
        record.previous_secrets.is_empty(),
        "rotation: grace 0 left a previous secret valid"
    );
    let set = record.secret_set();
    for (header, which) in [(&new_header, "replaced"), (&old_header, "older")] {
        assert!(
            !set.verify_authorization(&**header, kit.now),
            "rotation: the {which} secret is still accepted after a grace-0 rotation"
        );
    }
    for digest in [old_digest] {
        assert!(
            repo.find_by_digest(&digest)
                .await
                .expect("find_by_digest failed")
                .is_empty(),
            "rotation: a revoked secret's digest still finds the record"
        );
    }
    let second_digest = crate::secret::SecretDigest::of_presented(
        new_header.strip_prefix("Bearer ").expect("bearer header"),
    );
    assert!(
        repo.find_by_digest(&second_digest)
            .await
            .expect("find_by_digest failed")
            .is_empty(),
        "rotation: a dropped secret's digest still finds the record"
    );
}

/// Through the core: [`update`](crate::ops::update) keeps `createdAt` and the
/// secret, moves `updatedAt` and the version; a stale `version` is
/// `VersionMismatch` with nothing written; [`get`](crate::ops::get),
/// [`update`](crate::ops::update), [`delete`](crate::ops::delete) and
/// [`rotate`](crate::ops::rotate) of a missing id are `NotFound`; after
/// [`delete`](crate::ops::delete), [`create`] with the same client id makes a new
/// destination at version 1.
///
/// # Panics
/// If the repo violates the property or returns an error.
pub async fn lifecycle_through_the_core<R: DestinationRepo>(repo: &R) {
    let mut kit = Kit::new();
    let tenant = kit.tenant();
    let id = kit.id();
    let (first_request, second_request, missing) =
        (kit.request(Some(id)), kit.request(Some(id)), kit.id());
    let mut rng = UnwrapErr(getrandom::SysRng);
    let key = kit.keyring.current();
    let created = create(repo, &tenant, first_request, kit.now, &mut rng, key)
        .await
        .expect("create failed");
    let CreateOutcome::Created(created) = created else {
        panic!("lifecycle: create answered {created:?}")
    };
    let before = get(repo, &tenant, id).await.expect("record");
    let later = kit
        .now
        .checked_add(core::time::Duration::from_secs(90))
        .expect("time");
    let patch = crate::wire::UpdateDestinationRequest::new()
        .with_name("Renamed")
        .with_version(1);
    let updated = crate::ops::update(repo, &tenant, id, patch.clone(), later, &mut rng, key)
        .await
        .expect("update failed");
    let crate::ops::UpdateOutcome::Updated(view) = updated else {
        panic!("lifecycle: update answered {updated:?}")
    };
    assert_eq!(view.name().as_str(), "Renamed");
    assert_eq!(view.url(), created.url());
    assert_eq!(
        view.created_at(),
        created.created_at(),
        "lifecycle: createdAt moved"
    );
    assert_eq!(
        view.updated_at(),
        later.truncated(),
        "lifecycle: updatedAt is not now"
    );
    assert_eq!(view.version(), 2);
    let after = get(repo, &tenant, id).await.expect("record");
    assert_eq!(
        (
            &after.sealed_secret,
            after.secret_digest,
            &after.previous_secrets
        ),
        (
            &before.sealed_secret,
            before.secret_digest,
            &before.previous_secrets
        ),
        "lifecycle: update touched the secret"
    );
    assert_eq!(
        crate::ops::update(repo, &tenant, id, patch, later, &mut rng, key)
            .await
            .expect("update failed"),
        crate::ops::UpdateOutcome::VersionMismatch,
        "lifecycle: a stale version was applied"
    );
    assert_eq!(
        get(repo, &tenant, id).await.as_ref(),
        Some(&after),
        "lifecycle: a refused update wrote"
    );
    assert_eq!(
        crate::ops::get(repo, &tenant, missing)
            .await
            .expect("get failed"),
        crate::ops::GetOutcome::NotFound
    );
    assert_eq!(
        crate::ops::update(
            repo,
            &tenant,
            missing,
            crate::wire::UpdateDestinationRequest::new(),
            later,
            &mut rng,
            key,
        )
        .await
        .expect("update failed"),
        crate::ops::UpdateOutcome::NotFound
    );
    assert_eq!(
        crate::ops::delete(repo, &tenant, missing)
            .await
            .expect("delete failed"),
        crate::ops::DeleteOutcome::NotFound
    );
    let rotated = crate::ops::rotate(
        repo,
        &tenant,
        missing,
        crate::wire::RotateSecretRequest::new(),
        later,
        &mut rng,
        key,
    )
    .await
    .expect("rotate failed");
    assert!(
        matches!(rotated, crate::ops::RotateOutcome::NotFound),
        "lifecycle: rotate of a missing id answered {rotated:?}"
    );
    assert_eq!(
        crate::ops::delete(repo, &tenant, id)
            .await
            .expect("delete failed"),
        crate::ops::DeleteOutcome::Deleted
    );
    assert_eq!(
        crate::ops::get(repo, &tenant, id)
            .await
            .expect("get failed"),
        crate::ops::GetOutcome::NotFound
    );
    let again = create(repo, &tenant, second_request, later, &mut rng, key)
        .await
        .expect("create failed");
    let CreateOutcome::Created(again) = again else {
        panic!("lifecycle: create after delete answered {again:?}")
    };
    assert!(
        !again.bearer_secret().ct_eq(created.bearer_secret()),
        "lifecycle: the secret came back"
    );
    let record = get(repo, &tenant, id).await.expect("record");
    assert_eq!(
        (record.version, record.previous_secrets.len()),
        (1, 0),
        "lifecycle: the new destination is not fresh"
    );
}
