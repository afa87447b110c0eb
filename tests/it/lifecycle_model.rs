//! Random sequences of create, update, delete, rotate, list and the passing
//! of time against `MemoryRepo` and a plain model of the rules; any
//! divergence in an answer or in the stored state fails.

use std::collections::BTreeMap;
use std::time::Duration;

use prets_destinations::secret::MAX_PREVIOUS_SECRETS;
use prets_destinations::{
    CreateDestinationRequest, CreateOutcome, DeleteOutcome, DestinationId, DestinationRepo,
    ListDestinationsRequest, MemoryRepo, RotateOutcome, RotateSecretRequest, SecretDigest,
    TenantId, Timestamp, UpdateDestinationRequest, UpdateOutcome, create, delete, list, rotate,
    update,
};
use proptest::prelude::*;

use crate::support::{block_on, keyring, regressions_beside_module, rng, sealer, tenant};

const TENANTS: [&str; 2] = ["org_a", "org_b"];
const CLIENT_IDS: [&str; 3] = [
    "whk_01HF2V3J6T0Q8X5Y7Z9ABCDEFG",
    "whk_01HF2V3J6T0Q8X5Y7Z9ABCDEFH",
    "whk_7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
];
const GRACES: [u64; 6] = [0, 1, 60, 86_400, 604_800, 604_801];

#[derive(Clone, Debug)]
enum Op {
    Create {
        tenant: usize,
        client_id: Option<usize>,
        name: u8,
        valid: bool,
    },
    Update {
        tenant: usize,
        target: usize,
        name: Option<u8>,
        url: Option<u8>,
        stale: Option<bool>,
        valid: bool,
    },
    Delete {
        tenant: usize,
        target: usize,
    },
    Rotate {
        tenant: usize,
        target: usize,
        grace: usize,
    },
    List {
        tenant: usize,
        limit: u64,
    },
    Wait {
        secs: u64,
    },
    /// `writers` updates of one destination at once, on as many threads,
    /// each with its own name; with `versioned`, all naming the current
    /// version.
    Race {
        target: usize,
        writers: usize,
        versioned: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize, proptest::option::of(0..3usize), any::<u8>(), prop::bool::weighted(0.9))
            .prop_map(|(tenant, client_id, name, valid)| Op::Create { tenant, client_id, name, valid }),
        3 => (0..2usize, 0..12usize, proptest::option::of(any::<u8>()), proptest::option::of(any::<u8>()),
              proptest::option::of(any::<bool>()), prop::bool::weighted(0.9))
            .prop_map(|(tenant, target, name, url, stale, valid)| Op::Update { tenant, target, name, url, stale, valid }),
        1 => (0..2usize, 0..12usize).prop_map(|(tenant, target)| Op::Delete { tenant, target }),
        4 => (0..2usize, 0..12usize, 0..GRACES.len()).prop_map(|(tenant, target, grace)| Op::Rotate { tenant, target, grace }),
        2 => (0..2usize, 1..5u64).prop_map(|(tenant, limit)| Op::List { tenant, limit }),
        1 => prop_oneof![Just(0u64), Just(1), 1..200_000u64].prop_map(|secs| Op::Wait { secs }),
        1 => (0..12usize, 2..6usize, any::<bool>())
            .prop_map(|(target, writers, versioned)| Op::Race { target, writers, versioned }),
    ]
}

/// What the model knows of one destination.
#[derive(Clone, Debug)]
struct Dest {
    name: String,
    url: String,
    created_at: Timestamp,
    updated_at: Timestamp,
    version: u64,
    current: String,
    /// (header, deadline), newest first.
    previous: Vec<(String, Timestamp)>,
}

#[derive(Default)]
struct Model {
    dests: BTreeMap<(usize, DestinationId), Dest>,
    /// Every id ever seen, for picking targets (deleted ones included).
    known: Vec<DestinationId>,
}

impl Model {
    /// A target for an operation: mostly an existing destination (any
    /// tenant); for `target` 8 and up, an id ever seen (perhaps deleted, or
    /// another tenant's) or one never created, in `tenant`.
    fn pick(&self, tenant: usize, target: usize, never: DestinationId) -> (usize, DestinationId) {
        if target < 8 && !self.dests.is_empty() {
            let (t, id) = self.dests.keys().nth(target % self.dests.len()).unwrap();
            return (*t, *id);
        }
        let id = self
            .known
            .get(target.wrapping_mul(7) % (self.known.len() + 1))
            .copied();
        (tenant, id.unwrap_or(never))
    }
}

fn name_of(n: u8) -> String {
    format!("Destination {n}")
}

fn url_of(n: u8) -> String {
    format!("https://example.com/hooks/{n}")
}

fn digest(header: &str) -> SecretDigest {
    SecretDigest::of_presented(header.strip_prefix("Bearer ").unwrap())
}

fn run(ops: Vec<Op>, seed: u64) {
    let repo = MemoryRepo::new();
    let mut rng = rng(seed);
    let keys = keyring(1, &mut rng);
    let tenants: Vec<TenantId> = TENANTS.iter().map(|t| tenant(t)).collect();
    let mut model = Model::default();
    let mut now = Timestamp::from_unix_millis(1_764_000_000_500).unwrap();
    // A target id no create can produce.
    let never = DestinationId::from_ulid(1);

    for op in ops {
        match op {
            Op::Wait { secs } => now = now.checked_add(Duration::from_secs(secs)).unwrap(),
            Op::Create {
                tenant: t,
                client_id,
                name,
                valid,
            } => {
                let url = if valid {
                    url_of(name)
                } else {
                    "http://example.com/".to_owned()
                };
                let mut req = CreateDestinationRequest::new(name_of(name), url.clone());
                if let Some(c) = client_id {
                    req = req.with_destination_id(CLIENT_IDS[c]);
                }
                let out = block_on(create(
                    &repo,
                    &tenants[t],
                    req,
                    now,
                    &mut rng,
                    keys.current(),
                ))
                .unwrap();
                let client = client_id.map(|c| CLIENT_IDS[c].parse::<DestinationId>().unwrap());
                match out {
                    CreateOutcome::Invalid(_) => assert!(!valid),
                    CreateOutcome::QuotaExceeded => panic!("an unlimited repo refused a create"),
                    CreateOutcome::Conflict { existing } => {
                        assert!(valid);
                        assert_eq!(Some(existing), client);
                        assert!(model.dests.contains_key(&(t, existing)));
                    }
                    CreateOutcome::Created(c) => {
                        assert!(valid);
                        let id = c.destination_id();
                        if let Some(client) = client {
                            assert_eq!(id, client);
                        }
                        assert!(
                            !model.dests.contains_key(&(t, id)),
                            "created over an existing id"
                        );
                        model.known.push(id);
                        model.dests.insert(
                            (t, id),
                            Dest {
                                name: name_of(name),
                                url,
                                created_at: now.truncated(),
                                updated_at: now.truncated(),
                                version: 1,
                                current: c.bearer_secret().authorization_header().to_string(),
                                previous: Vec::new(),
                            },
                        );
                    }
                }
            }
            Op::Update {
                tenant: t,
                target,
                name,
                url,
                stale,
                valid,
            } => {
                let id = model.known.get(target).copied().unwrap_or(never);
                let mut req = UpdateDestinationRequest::new();
                if let Some(n) = name {
                    req = req.with_name(if valid { name_of(n) } else { String::new() });
                } else if !valid {
                    req = req.with_name(String::new());
                }
                if let Some(u) = url {
                    req = req.with_url(url_of(u));
                }
                let current_version = model.dests.get(&(t, id)).map_or(1, |d| d.version);
                if let Some(stale) = stale {
                    req = req.with_version(if stale {
                        current_version + 1
                    } else {
                        current_version
                    });
                }
                let out = block_on(update(
                    &repo,
                    &tenants[t],
                    id,
                    req,
                    now,
                    &mut crate::support::rng(1),
                    &sealer(),
                ))
                .unwrap();
                match (valid, model.dests.get_mut(&(t, id))) {
                    (false, _) => assert!(matches!(out, UpdateOutcome::Invalid(_)), "{out:?}"),
                    (true, None) => assert_eq!(out, UpdateOutcome::NotFound),
                    (true, Some(_)) if stale == Some(true) => {
                        assert_eq!(out, UpdateOutcome::VersionMismatch)
                    }
                    (true, Some(d)) => {
                        if let Some(n) = name {
                            d.name = name_of(n);
                        }
                        if let Some(u) = url {
                            d.url = url_of(u);
                        }
                        d.updated_at = now.truncated().max(d.updated_at);
                        d.version += 1;
                        let UpdateOutcome::Updated(view) = out else {
                            panic!("{out:?}")
                        };
                        assert_eq!(view.name().as_str(), d.name);
                        assert_eq!(view.version(), d.version);
                    }
                }
            }
            Op::Race {
                target,
                writers,
                versioned,
            } => {
                let (t, id) = model.pick(0, target, never);
                let current = model.dests.get(&(t, id)).map(|d| d.version);
                let names: Vec<u8> = (0..writers)
                    .map(|w| u8::try_from(200 + w).unwrap())
                    .collect();
                let barrier = std::sync::Barrier::new(writers);
                let outs: Vec<UpdateOutcome> = std::thread::scope(|s| {
                    let handles: Vec<_> = names
                        .iter()
                        .map(|&n| {
                            let (repo, tenant, barrier) = (&repo, &tenants[t], &barrier);
                            s.spawn(move || {
                                let mut req = UpdateDestinationRequest::new().with_name(name_of(n));
                                if versioned {
                                    req = req.with_version(current.unwrap_or(1));
                                }
                                barrier.wait();
                                block_on(update(
                                    repo,
                                    tenant,
                                    id,
                                    req,
                                    now,
                                    &mut crate::support::rng(1),
                                    &sealer(),
                                ))
                                .unwrap()
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).collect()
                });
                let Some(d) = model.dests.get_mut(&(t, id)) else {
                    assert!(
                        outs.iter().all(|o| *o == UpdateOutcome::NotFound),
                        "{outs:?}"
                    );
                    continue;
                };
                let mut applied: Vec<(u64, String)> = Vec::new();
                for (out, &n) in outs.iter().zip(&names) {
                    match out {
                        UpdateOutcome::Updated(view) => {
                            assert_eq!(view.name().as_str(), name_of(n));
                            applied.push((view.version(), name_of(n)));
                        }
                        UpdateOutcome::VersionMismatch => {
                            assert!(versioned, "a versionless update was refused")
                        }
                        other => panic!("{other:?}"),
                    }
                }
                applied.sort();
                let applied_versions: Vec<u64> = applied.iter().map(|(v, _)| *v).collect();
                let expected: Vec<u64> = (d.version + 1..)
                    .take(if versioned { 1 } else { writers })
                    .collect();
                assert_eq!(applied_versions, expected, "versioned {versioned}");
                let (version, name) = applied.pop().unwrap();
                d.name = name;
                d.version = version;
                d.updated_at = now.truncated().max(d.updated_at);
            }
            Op::Delete { tenant, target } => {
                let (t, id) = model.pick(tenant, target, never);
                let out = block_on(delete(&repo, &tenants[t], id)).unwrap();
                let expected = if model.dests.remove(&(t, id)).is_some() {
                    DeleteOutcome::Deleted
                } else {
                    DeleteOutcome::NotFound
                };
                assert_eq!(out, expected);
            }
            Op::Rotate {
                tenant: t,
                target,
                grace,
            } => {
                let id = model.known.get(target).copied().unwrap_or(never);
                let secs = GRACES[grace];
                let req = RotateSecretRequest::new().with_grace_period_seconds(secs);
                let out = block_on(rotate(
                    &repo,
                    &tenants[t],
                    id,
                    req,
                    now,
                    &mut rng,
                    keys.current(),
                ))
                .unwrap();
                match (secs <= 604_800, model.dests.get_mut(&(t, id))) {
                    (false, _) => assert!(matches!(out, RotateOutcome::Invalid(_)), "{out:?}"),
                    (true, None) => assert!(matches!(out, RotateOutcome::NotFound), "{out:?}"),
                    (true, Some(d)) => {
                        let RotateOutcome::Rotated(r) = out else {
                            panic!("{out:?}")
                        };
                        let at = now.truncated();
                        let deadline = at.checked_add(Duration::from_secs(secs)).unwrap();
                        let old = std::mem::replace(
                            &mut d.current,
                            r.bearer_secret().authorization_header().to_string(),
                        );
                        let mut previous = Vec::new();
                        if secs > 0 {
                            previous.push((old, deadline));
                        }
                        // Older secrets expire no later than the new deadline.
                        previous.extend(d.previous.iter().filter_map(|(h, e)| {
                            let capped = (*e).min(deadline);
                            (capped > at).then(|| (h.clone(), capped))
                        }));
                        previous.truncate(MAX_PREVIOUS_SECRETS);
                        d.previous = previous;
                        d.updated_at = at.max(d.updated_at);
                        d.version += 1;
                        assert_eq!(r.version(), d.version);
                        assert_eq!(
                            r.previous_secret_expires_at(),
                            (secs > 0).then_some(deadline)
                        );
                    }
                }
            }
            Op::List { tenant: t, limit } => {
                let mut walked = Vec::new();
                let mut req = ListDestinationsRequest::new().with_limit(limit);
                loop {
                    let page = block_on(list(&repo, &tenants[t], req))
                        .unwrap()
                        .into_result()
                        .unwrap();
                    assert!(page.data.len() as u64 <= limit);
                    walked.extend(page.data);
                    match page.next_cursor {
                        Some(c) => {
                            assert!(page.has_more);
                            req = ListDestinationsRequest::new()
                                .with_limit(limit)
                                .with_cursor(c.to_string());
                        }
                        None => {
                            assert!(!page.has_more);
                            break;
                        }
                    }
                }
                let expected: Vec<_> = model
                    .dests
                    .range((t, DestinationId::MIN)..(t + 1, DestinationId::MIN))
                    .collect();
                assert_eq!(walked.len(), expected.len());
                for (view, ((_, id), d)) in walked.iter().zip(&expected) {
                    assert_eq!(view.destination_id(), *id);
                    assert_eq!(
                        (view.name().as_str(), view.url().as_str()),
                        (d.name.as_str(), d.url.as_str())
                    );
                    assert_eq!(
                        (view.created_at(), view.updated_at(), view.version()),
                        (d.created_at, d.updated_at, d.version)
                    );
                }
            }
        }
        check_state(&repo, &tenants, &model, &keys, now);
    }
}

/// The stored records are exactly the model's, and each accepts exactly the
/// secrets the model says it should at `now`.
fn check_state(
    repo: &MemoryRepo,
    tenants: &[TenantId],
    model: &Model,
    keys: &prets_destinations::Keyring,
    now: Timestamp,
) {
    assert_eq!(repo.len(), model.dests.len());
    for ((t, id), d) in &model.dests {
        let record = block_on(repo.get(&tenants[*t], *id))
            .unwrap()
            .expect("model has it");
        assert_eq!(
            (record.name.as_str(), record.url.as_str()),
            (d.name.as_str(), d.url.as_str())
        );
        assert_eq!(
            (record.created_at, record.updated_at, record.version),
            (d.created_at, d.updated_at, d.version)
        );
        assert_eq!(record.secret_digest, digest(&d.current));
        let stored: Vec<_> = record
            .previous_secrets
            .iter()
            .map(|p| (p.secret_digest, p.expires_at))
            .collect();
        let modelled: Vec<_> = d.previous.iter().map(|(h, e)| (digest(h), *e)).collect();
        assert_eq!(stored, modelled);
        assert_eq!(
            *keys.authorization_header(&tenants[*t], &record).unwrap(),
            d.current
        );
        let set = record.secret_set();
        assert!(set.verify_authorization(&d.current, now));
        for (header, deadline) in &d.previous {
            assert_eq!(set.verify_authorization(header, now), now < *deadline);
        }
    }
}

proptest! {
    #![proptest_config(regressions_beside_module(ProptestConfig { cases: 64, ..ProptestConfig::default() }))]

    #[test]
    fn memory_repo_matches_the_model(ops in prop::collection::vec(op(), 1..60), seed in any::<u64>()) {
        run(ops, seed);
    }
}
