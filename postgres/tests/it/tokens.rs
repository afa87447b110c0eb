//! API tokens in PostgreSQL: stored digests come back with their
//! organizations, from any node and after a restart; a digest is stored
//! once.

use std::error::Error as _;

use prets_destinations::{TenantId, Timestamp};
use prets_destinations_postgres::test_support::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_round_trip_across_nodes_and_restarts() {
    let db = TestDb::new();
    let a = db.repo().await;
    let b = db.repo().await;
    assert!(a.api_tokens().await.unwrap().is_empty());
    let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
    let org1: TenantId = "org_1".parse().unwrap();
    let org2: TenantId = "org_2".parse().unwrap();
    let (d1, d2, d3) = ([1u8; 32], [0xfe; 32], [7; 32]);
    a.add_api_token(d1, &org1, now).await.unwrap();
    b.add_api_token(d2, &org2, now).await.unwrap();
    a.add_api_token(d3, &org1, now).await.unwrap();
    let mut want = vec![(d1, org1.clone()), (d2, org2.clone()), (d3, org1.clone())];
    want.sort();
    for node in [&a, &b] {
        let mut got = node.api_tokens().await.unwrap();
        got.sort();
        assert_eq!(got, want);
    }
    // A digest is stored once, even for another organization.
    let err = b.add_api_token(d1, &org2, now).await.unwrap_err();
    let text = err.to_string();
    assert!(
        !text.contains("0101010101"),
        "the digest in the message: {text}"
    );
    let mut got = a.api_tokens().await.unwrap();
    got.sort();
    assert_eq!(got, want);
    drop((a, b));
    let again = db.repo().await;
    let mut got = again.api_tokens().await.unwrap();
    got.sort();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_token_error_tells_the_sqlstate_never_the_stored_digest() {
    let db = TestDb::new();
    let repo = db.repo().await;
    let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
    let org: TenantId = "org_detail_probe".parse().unwrap();
    let digest = [0xc4u8; 32];
    repo.add_api_token(digest, &org, now).await.unwrap();
    let err = repo.add_api_token(digest, &org, now).await.unwrap_err();

    // The server's own words do carry the digest in DETAIL: the source
    // chain below the error is not safe to print, the error itself is.
    let mut chain = String::new();
    let mut link = err.source();
    while let Some(cause) = link {
        chain.push_str(&format!("{cause} {cause:?} "));
        link = cause.source();
    }
    assert!(chain.contains("c4c4c4c4"), "no DETAIL to hide: {chain}");

    let text = err.to_string();
    let debug = format!("{err:?}");
    let alternate = format!("{err:#?}");
    for shown in [&text, &debug, &alternate] {
        assert!(shown.contains("23505"), "no SQLSTATE: {shown}");
        assert!(shown.contains("api_tokens_pkey"), "no constraint: {shown}");
        assert!(
            shown.contains("duplicate key value violates unique constraint"),
            "no primary message: {shown}"
        );
        for leak in ["c4c4c4c4", "C4C4C4C4", "DETAIL", "Key (", "already exists"] {
            assert!(!shown.contains(leak), "{leak} shown: {shown}");
        }
    }
    assert_eq!(text.matches("duplicate key value").count(), 1, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_token_row_is_an_error_not_a_panic() {
    let db = TestDb::new();
    let repo = db.repo().await;
    let client = db.client().await;
    // The schema refuses a digest that is not 32 bytes.
    let short = client
        .execute(
            "INSERT INTO api_tokens (token_digest, tenant_id, created_at_ms) VALUES ($1, 'org_1', 0)",
            &[&vec![1u8; 31]],
        )
        .await;
    assert!(short.is_err());
    // A tenant id that does not parse is reported as corrupt.
    client
        .execute(
            "INSERT INTO api_tokens (token_digest, tenant_id, created_at_ms) VALUES ($1, 'not a tenant!', 0)",
            &[&vec![2u8; 32]],
        )
        .await
        .unwrap();
    let err = repo.api_tokens().await.unwrap_err();
    assert!(err.to_string().contains("tenant id"), "{err}");
    assert!(err.source().is_none());
    assert!(!format!("{err:?}").contains("not a tenant"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_nodes_racing_for_the_first_token_exactly_one_stores_it() {
    let db = TestDb::new();
    let mut nodes = Vec::new();
    for _ in 0..6 {
        nodes.push(db.repo().await);
    }
    let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
    let demo: TenantId = "demo".parse().unwrap();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(nodes.len()));
    let tasks: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let node = node.clone();
            let demo = demo.clone();
            let barrier = std::sync::Arc::clone(&barrier);
            let digest = [u8::try_from(i).unwrap() + 1; 32];
            tokio::spawn(async move {
                barrier.wait().await;
                let stored = node.add_first_api_token(digest, &demo, now).await.unwrap();
                (digest, stored)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (digest, stored) = task.await.unwrap();
        if stored {
            winners.push(digest);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        nodes[0].api_tokens().await.unwrap(),
        [(winners[0], demo.clone())]
    );
    // Once a token exists, a later start stores none.
    assert!(
        !nodes[1]
            .add_first_api_token([0xaa; 32], &demo, now)
            .await
            .unwrap()
    );
    assert_eq!(nodes[1].api_tokens().await.unwrap().len(), 1);
}
