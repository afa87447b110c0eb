//! Several nodes on one PostgreSQL database: the real binary, started twice
//! on its own ports over a fresh database (created per test, dropped after),
//! sharing a sealing-key file and an API token.
//!
//! The PostgreSQL server is `127.0.0.1:5432` (user `postgres`, trust auth)
//! or the `host:port` in `PRETS_TEST_PG`. These tests never skip: an
//! unreachable server fails them, in CI and out of it.

use std::ops::{Deref, DerefMut};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prets_destinations_server::{TOKEN_PREFIX, mint_token, token_digest};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use zeroize::Zeroizing;

use crate::support::client::{Client, call};
use crate::support::process::{ServerProcess, command, run_to_exit};
use crate::support::receiver::{Options, Receiver, Recorded, Reply};
use crate::support::{CREATE_PATH, Response, TempDir, delivery_to};
use prets_destinations_postgres::test_support::{TestDb, admin, server as pg_server};

/// The URLs a node is given for a test database: with a password the
/// server ignores (trust auth) but must never show, and an application name
/// that finds the node's connections.
trait NodeUrls {
    /// Through `host_port` (a proxy, or a port nothing listens on).
    fn url_via(&self, host_port: &str, application: &str) -> String;

    /// Straight to the PostgreSQL server.
    fn node_url(&self, application: &str) -> String {
        self.url_via(&pg_server(), application)
    }
}

impl NodeUrls for TestDb {
    fn url_via(&self, host_port: &str, application: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@{host_port}/{}?application_name={application}",
            self.name()
        )
    }
}

/// In every database URL; must appear in no output.
const PASSWORD: &str = "hunter2-pg-password";

/// The files and the token every node of a cluster shares.
struct Cluster {
    dir: TempDir,
    key_file: PathBuf,
    token: Zeroizing<String>,
}

impl Cluster {
    fn new() -> Self {
        let dir = TempDir::new();
        let key_file = dir.path().join("sealing-key");
        let hex: String = (0..32u8).map(|b| format!("{:02x}", b ^ 0x5a)).collect();
        std::fs::write(&key_file, format!("1 {hex}\n")).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        Self {
            dir,
            key_file,
            token: mint_token(),
        }
    }

    fn token_flag(&self) -> String {
        let digest: String = token_digest(&self.token)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("org_nodes={digest}")
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", *self.token)
    }

    /// A node with the shared key file and token on `url`.
    fn start(&self, url: &str) -> Node {
        self.start_with(url, &[])
    }

    /// [`start`](Self::start) with more flags.
    fn start_with(&self, url: &str, extra: &[String]) -> Node {
        let key = self.key_file.to_str().unwrap();
        let token = self.token_flag();
        let mut args = vec![
            "--database",
            url,
            "--sealing-key-file",
            key,
            "--api-token",
            &token,
        ];
        args.extend(extra.iter().map(String::as_str));
        Node::start(&self.dir, &args)
    }
}

/// One server process (killed on drop), called with any token.
struct Node(ServerProcess);

impl Node {
    /// Starts the binary in `dir` with `args`, logging at `info`, and waits
    /// until it listens; nothing it printed so far shows the password.
    fn start(dir: &TempDir, args: &[&str]) -> Self {
        let process = ServerProcess::start_with_env(dir, args, &[("PRETS_LOG", "info")]);
        let output = process.output();
        assert!(!output.contains(PASSWORD), "{output}");
        Self(process)
    }

    /// `method path` with the `Authorization` header `bearer`.
    async fn send(&self, method: &str, path: &str, bearer: &str, body: Option<&Value>) -> Response {
        call(self.addr, bearer, method, path, body).await
    }
}

impl Deref for Node {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.0
    }
}

impl DerefMut for Node {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.0
    }
}

fn path(id: &str) -> String {
    format!("{CREATE_PATH}/{id}")
}

fn destination(name: &str) -> Value {
    json!({"name": name, "url": "https://example.com/prets/events"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_made_on_one_node_is_read_updated_and_deleted_on_the_other() {
    let db = TestDb::new();
    let cluster = Cluster::new();
    let a = cluster.start(&db.node_url("node_a"));
    let b = cluster.start(&db.node_url("node_b"));
    let bearer = cluster.bearer();

    let created = a
        .send(
            "POST",
            CREATE_PATH,
            &bearer,
            Some(&destination("Production")),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let created = created.json();
    let id = created["destinationId"].as_str().unwrap().to_owned();

    // The other node reads it whole, secret included: it opens what the
    // first sealed, with the shared key.
    let read = b.send("GET", &path(&id), &bearer, None).await;
    assert_eq!(read.status, 200, "{}", read.text());
    let read = read.json();
    for field in ["destinationId", "name", "url", "createdAt"] {
        assert_eq!(read[field], created[field], "{field}");
    }
    assert_eq!(read["version"], json!(1));
    let listed = b.send("GET", CREATE_PATH, &bearer, None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["data"][0]["destinationId"], json!(id));

    let updated = b
        .send(
            "PATCH",
            &path(&id),
            &bearer,
            Some(&json!({"name": "Renamed", "version": 1})),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text());
    assert_eq!(updated.json()["version"], json!(2));
    // A stale version is refused on either node.
    let stale = a
        .send(
            "PATCH",
            &path(&id),
            &bearer,
            Some(&json!({"name": "Stale", "version": 1})),
        )
        .await;
    assert_eq!(stale.status, 409, "{}", stale.text());
    let read = a.send("GET", &path(&id), &bearer, None).await;
    assert_eq!(read.json()["name"], json!("Renamed"));

    let deleted = b.send("DELETE", &path(&id), &bearer, None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    for node in [&a, &b] {
        let gone = node.send("GET", &path(&id), &bearer, None).await;
        assert_eq!(gone.status, 404, "{}", gone.text());
    }
    let again = a.send("DELETE", &path(&id), &bearer, None).await;
    assert_eq!(again.status, 404);
    for node in [&a, &b] {
        assert!(!node.output().contains(PASSWORD));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_id_across_nodes_make_exactly_one() {
    let db = TestDb::new();
    let cluster = Cluster::new();
    let nodes = Arc::new([
        cluster.start(&db.node_url("node_a")),
        cluster.start(&db.node_url("node_b")),
    ]);
    let bearer = cluster.bearer();
    let id = "whk_01HZY8ZQ5M3J9V6W2X4T7R1P0K";
    let barrier = Arc::new(tokio::sync::Barrier::new(40));
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let nodes = Arc::clone(&nodes);
            let bearer = bearer.clone();
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                let node = &nodes[i % 2];
                let body = json!({
                    "destinationId": id,
                    "name": format!("Attempt {i}"),
                    "url": "https://example.com/prets/events",
                });
                barrier.wait().await;
                let response = node.send("POST", CREATE_PATH, &bearer, Some(&body)).await;
                (i, response)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        let (i, response) = task.await.unwrap();
        match response.status {
            201 => winners.push((i, response.json())),
            409 => {
                assert_eq!(response.json()["destinationId"], json!(id));
                conflicts += 1;
            }
            other => panic!("create {i}: {other} {}", response.text()),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(conflicts, 39);
    // What is stored is the winner's, as both nodes see it.
    let (winner, body) = &winners[0];
    for node in nodes.iter() {
        let read = node.send("GET", &path(id), &bearer, None).await;
        assert_eq!(read.status, 200);
        assert_eq!(read.json()["name"], json!(format!("Attempt {winner}")));
        assert_eq!(read.json()["createdAt"], body["createdAt"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_versionless_updates_across_nodes_each_apply_once() {
    const N: u64 = 24;
    let db = TestDb::new();
    let cluster = Cluster::new();
    let nodes = Arc::new([
        cluster.start(&db.node_url("node_a")),
        cluster.start(&db.node_url("node_b")),
    ]);
    let bearer = cluster.bearer();
    let created = nodes[0]
        .send("POST", CREATE_PATH, &bearer, Some(&destination("Start")))
        .await;
    assert_eq!(created.status, 201);
    let id = created.json()["destinationId"].as_str().unwrap().to_owned();
    let read = nodes[1].send("GET", &path(&id), &bearer, None).await;
    assert_eq!(read.json()["version"], json!(1));
    let barrier = Arc::new(tokio::sync::Barrier::new(usize::try_from(N).unwrap()));
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let nodes = Arc::clone(&nodes);
            let bearer = bearer.clone();
            let barrier = Arc::clone(&barrier);
            let path = path(&id);
            tokio::spawn(async move {
                let node = &nodes[usize::try_from(i % 2).unwrap()];
                let body = json!({"name": format!("Name {i}")});
                barrier.wait().await;
                (i, node.send("PATCH", &path, &bearer, Some(&body)).await)
            })
        })
        .collect();
    let mut versions = Vec::new();
    let mut by_version = std::collections::BTreeMap::new();
    for task in tasks {
        let (i, response) = task.await.unwrap();
        assert_eq!(response.status, 200, "update {i}: {}", response.text());
        let body = response.json();
        assert_eq!(body["name"], json!(format!("Name {i}")));
        let version = body["version"].as_u64().unwrap();
        versions.push(version);
        by_version.insert(version, i);
    }
    // Each update made exactly one version: 2, 3, …, 1 + N, none twice.
    versions.sort_unstable();
    assert_eq!(versions, (2..=N + 1).collect::<Vec<_>>());
    // The last version's update is what is stored, on both nodes.
    let last = by_version[&(N + 1)];
    for node in nodes.iter() {
        let read = node.send("GET", &path(&id), &bearer, None).await.json();
        assert_eq!(read["version"], json!(N + 1));
        assert_eq!(read["name"], json!(format!("Name {last}")));
    }
}

#[test]
fn start_refuses_postgres_without_a_key_file_or_with_an_unreachable_database() {
    let db = TestDb::new();
    let cluster = Cluster::new();
    // No sealing-key file: refused before connecting, whatever the token flags.
    let url = db.node_url("refused");
    let token = cluster.token_flag();
    for args in [
        vec!["--database", url.as_str()],
        vec!["--database", url.as_str(), "--api-token", token.as_str()],
    ] {
        let (status, output, _) = run_to_exit(&cluster.dir, &args);
        assert!(!status.success(), "{output}");
        assert!(output.contains("requires --sealing-key-file"), "{output}");
        assert!(!output.contains(PASSWORD), "{output}");
    }
    let key = cluster.key_file.to_str().unwrap();

    // Nothing listens on a port just bound and released.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let unreachable = db.url_via(&format!("127.0.0.1:{port}"), "unreachable");
    let (status, output, elapsed) = run_to_exit(
        &cluster.dir,
        &["--database", &unreachable, "--sealing-key-file", key],
    );
    assert!(!status.success(), "{output}");
    assert!(
        output.contains("cannot open the PostgreSQL database"),
        "{output}"
    );
    assert!(output.contains("could not connect"), "{output}");
    assert!(!output.contains(PASSWORD), "{output}");
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    // The log names where it tried, password hidden.
    assert!(output.contains("postgres:***@127.0.0.1:"), "{output}");

    // A URL the driver cannot read is refused as such, password unseen.
    let malformed = format!("postgres://app:{PASSWORD}@127.0.0.1:notaport/db");
    let (status, output, _) = run_to_exit(
        &cluster.dir,
        &["--database", &malformed, "--sealing-key-file", key],
    );
    assert!(!status.success(), "{output}");
    assert!(
        output.contains("connection string is not valid"),
        "{output}"
    );
    assert!(!output.contains(PASSWORD), "{output}");

    // A password in the variable shows neither in `--help` nor in errors.
    let output = command(
        &cluster.dir,
        &["--help"],
        &[("PRETS_DATABASE", &unreachable)],
    )
    .output()
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success());
    assert!(text.contains("--database-pool-size"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

/// A loopback TCP proxy to PostgreSQL that can be cut: "the database went
/// away" without stopping the shared server.
struct Proxy {
    port: u16,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let inner = Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(pg_server()).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                inner.lock().unwrap().push(conn.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Self { port, tasks }
    }

    /// Closes the listener (new connections are refused) and every proxied
    /// connection.
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Sends `GET` until it is answered `want`, within `bound`; every answer
/// before must be a `503` problem (never a `500`, never a hang).
async fn until_status(
    node: &Node,
    path: &str,
    bearer: &str,
    want: u16,
    bound: Duration,
) -> Response {
    let started = Instant::now();
    loop {
        let response = tokio::time::timeout(bound, node.send("GET", path, bearer, None))
            .await
            .expect("a request hung");
        if response.status == want {
            return response;
        }
        assert!(
            response.status == 503 || response.status == 200,
            "{} {}",
            response.status,
            response.text()
        );
        assert!(started.elapsed() < bound, "no {want} within {bound:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_answers_503_and_the_node_recovers_when_it_returns() {
    let db = TestDb::new();
    let cluster = Cluster::new();
    let proxy = Proxy::start_on(0).await;
    let application = format!("prets_proxied_{}", std::process::id());
    let node = cluster.start(&db.url_via(&format!("127.0.0.1:{}", proxy.port), &application));
    let bearer = cluster.bearer();
    let created = node
        .send("POST", CREATE_PATH, &bearer, Some(&destination("Kept")))
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["destinationId"].as_str().unwrap().to_owned();

    proxy.cut();
    // Every kind of request is answered 503, with Retry-After, promptly.
    let started = Instant::now();
    for (method, target, body) in [
        ("GET", path(&id), None),
        ("GET", CREATE_PATH.to_owned(), None),
        ("POST", CREATE_PATH.to_owned(), Some(destination("Lost"))),
        ("PATCH", path(&id), Some(json!({"name": "Lost"}))),
        ("DELETE", path(&id), None),
        ("GET", path(&id), None),
    ] {
        let one = Instant::now();
        let response = tokio::time::timeout(
            Duration::from_secs(30),
            node.send(method, &target, &bearer, body.as_ref()),
        )
        .await
        .expect("a request hung while the database was away");
        assert_eq!(
            response.status,
            503,
            "{method} {target}: {}",
            response.text()
        );
        assert_eq!(response.header("retry-after"), Some("1"));
        assert_eq!(
            response.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(
            response.json()["type"],
            json!("https://api.prets.app/problems/database_unavailable")
        );
        assert!(
            one.elapsed() < Duration::from_secs(12),
            "{:?}",
            one.elapsed()
        );
    }
    assert!(started.elapsed() < Duration::from_secs(60));

    // The database is back on the same address: the node serves again,
    // without a restart, and nothing was written while it was away.
    let _back = Proxy::start_on(proxy.port).await;
    let read = until_status(&node, &path(&id), &bearer, 200, Duration::from_secs(30)).await;
    assert_eq!(read.json()["name"], json!("Kept"));
    let listed = node.send("GET", CREATE_PATH, &bearer, None).await;
    assert_eq!(listed.json()["data"].as_array().unwrap().len(), 1);

    // The database ends the node's connections: the node recovers.
    admin(format!(
        "DO $$ BEGIN
           IF (SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
               FROM pg_stat_activity WHERE application_name = '{application}') = 0 THEN
             RAISE EXCEPTION 'the node holds no connection';
           END IF;
         END $$"
    ))
    .unwrap();
    let read = until_status(&node, &path(&id), &bearer, 200, Duration::from_secs(30)).await;
    assert_eq!(read.json()["name"], json!("Kept"));
    let updated = node
        .send(
            "PATCH",
            &path(&id),
            &bearer,
            Some(&json!({"name": "After"})),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text());
    assert!(!node.output().contains(PASSWORD));
}

/// The distinct API tokens (`prets_` and 64 hex digits) in `out`.
fn printed_tokens(out: &str) -> std::collections::BTreeSet<String> {
    out.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| {
            w.strip_prefix(TOKEN_PREFIX)
                .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_of_two_racing_nodes_creates_one_demo_token() {
    let db = TestDb::new();
    let cluster = Cluster::new();
    let key = cluster.key_file.to_str().unwrap().to_owned();
    let urls = [db.node_url("race_a"), db.node_url("race_b")];
    // Both start at once, with no token flag, on an empty database.
    let nodes: Vec<Node> = std::thread::scope(|scope| {
        let handles: Vec<_> = urls
            .iter()
            .map(|url| {
                let key = key.as_str();
                let dir = &cluster.dir;
                scope.spawn(move || {
                    Node::start(dir, &["--database", url, "--sealing-key-file", key])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // The token is printed before the "listening" line, so it is in by now.
    std::thread::sleep(Duration::from_millis(200));
    let outputs: Vec<String> = nodes.iter().map(|node| node.output()).collect();
    let tokens: Vec<String> = outputs.iter().flat_map(|out| printed_tokens(out)).collect();
    assert_eq!(tokens.len(), 1, "{outputs:?}");
    let printed = outputs
        .iter()
        .filter(|out| out.contains("Its API token"))
        .count();
    assert_eq!(printed, 1, "{outputs:?}");
    // The one token works on both nodes, for the demo organization.
    let bearer = format!("Bearer {}", tokens[0]);
    let created = nodes[0]
        .send("POST", CREATE_PATH, &bearer, Some(&destination("Demo")))
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["destinationId"].as_str().unwrap().to_owned();
    let read = nodes[1].send("GET", &path(&id), &bearer, None).await;
    assert_eq!(read.status, 200, "{}", read.text());
    // A later start finds the token and prints none.
    let third = Node::start(
        &cluster.dir,
        &[
            "--database",
            &db.node_url("race_c"),
            "--sealing-key-file",
            &key,
        ],
    );
    std::thread::sleep(Duration::from_millis(200));
    let out = third.output();
    assert!(!out.contains("Its API token"), "{out}");
    let read = third.send("GET", &path(&id), &bearer, None).await;
    assert_eq!(read.status, 200);
}

/// A login role of its own, dropped (after the databases that grant it
/// anything) on drop.
struct TestRole {
    name: String,
}

impl TestRole {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "prets_role_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        admin(format!("CREATE ROLE \"{name}\" LOGIN")).unwrap();
        Self { name }
    }
}

impl Drop for TestRole {
    fn drop(&mut self) {
        let _ = admin(format!("DROP ROLE IF EXISTS \"{}\"", self.name));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_token_committed_at_first_start_is_printed_even_if_tokens_cannot_be_read_back() {
    // Declared first, dropped last: after the database granting it.
    let role = TestRole::new();
    let db = TestDb::new();
    let cluster = Cluster::new();
    let key = cluster.key_file.to_str().unwrap().to_owned();
    // The schema as a node makes it; then a role that may add a token but
    // not read the stored ones (only `created_at_ms`, enough for the first
    // start's "is there any?"): reading the tokens back fails after the
    // demo token is committed.
    drop(
        prets_destinations_postgres::PgRepo::connect(&db.node_url("migrate"), 1)
            .await
            .unwrap(),
    );
    let (admin_client, conn) =
        tokio_postgres::connect(&db.node_url("grants"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    let r = &role.name;
    admin_client
        .batch_execute(&format!(
            "GRANT USAGE, CREATE ON SCHEMA public TO \"{r}\";
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO \"{r}\";
             REVOKE ALL ON api_tokens FROM \"{r}\";
             GRANT INSERT, UPDATE ON api_tokens TO \"{r}\";
             GRANT SELECT (created_at_ms) ON api_tokens TO \"{r}\";"
        ))
        .await
        .unwrap();
    let url = format!(
        "postgres://{r}:{PASSWORD}@{}/{}?application_name=restricted",
        pg_server(),
        db.name()
    );

    let node = Node::start(
        &cluster.dir,
        &["--database", &url, "--sealing-key-file", &key],
    );
    std::thread::sleep(Duration::from_millis(200));
    let out = node.output();
    assert_eq!(out.matches("Its API token").count(), 1, "{out}");
    let tokens = printed_tokens(&out);
    assert_eq!(tokens.len(), 1, "{out}");
    let token = tokens.first().unwrap().to_string();
    // It is the one stored, and this node accepts it.
    let stored: Vec<Vec<u8>> = admin_client
        .query("SELECT token_digest FROM api_tokens", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(stored, vec![token_digest(&token).to_vec()]);
    let bearer = format!("Bearer {token}");
    let listed = node.send("GET", CREATE_PATH, &bearer, None).await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let wrong = node.send("GET", CREATE_PATH, &cluster.bearer(), None).await;
    assert_eq!(wrong.status, 401);
    drop(node);
    // A later start, able to read the tokens, prints none and accepts it.
    let later = Node::start(
        &cluster.dir,
        &[
            "--database",
            &db.node_url("later"),
            "--sealing-key-file",
            &key,
        ],
    );
    std::thread::sleep(Duration::from_millis(200));
    let out = later.output();
    assert!(!out.contains("Its API token"), "{out}");
    let listed = later.send("GET", CREATE_PATH, &bearer, None).await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    drop(later);
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_gets_no_pooled_connection_in_time_is_answered_503() {
    let db = TestDb::new();
    let cluster = Cluster::new();
    let key = cluster.key_file.to_str().unwrap();
    let token = cluster.token_flag();
    let url = db.node_url("pool_of_one");
    let node = Node::start(
        &cluster.dir,
        &[
            "--database",
            &url,
            "--sealing-key-file",
            key,
            "--api-token",
            &token,
            "--database-pool-size",
            "1",
        ],
    );
    let bearer = cluster.bearer();
    let created = node
        .send("POST", CREATE_PATH, &bearer, Some(&destination("Locked")))
        .await;
    assert_eq!(created.status, 201);
    let id = created.json()["destinationId"].as_str().unwrap().to_owned();

    // Another client locks the table: a read waits for the lock holding
    // the node's only connection.
    let (locker, conn) = tokio_postgres::connect(&db.node_url("locker"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    locker
        .batch_execute("BEGIN; LOCK TABLE destinations IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let node = Arc::new(node);
    let blocked = {
        let node = Arc::clone(&node);
        let (bearer, path) = (bearer.clone(), path(&id));
        tokio::spawn(async move { node.send("GET", &path, &bearer, None).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!blocked.is_finished());

    // The next request waits for a connection, then gets a 503, not a hang.
    let started = Instant::now();
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        node.send("GET", CREATE_PATH, &bearer, None),
    )
    .await
    .expect("a request waiting for a connection hung");
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(response.header("retry-after"), Some("1"));
    assert_eq!(
        response.json()["type"],
        json!("https://api.prets.app/problems/database_unavailable")
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(12),
        "{waited:?}"
    );

    // The lock goes: the waiting read is answered, and the node serves on.
    locker.batch_execute("COMMIT").await.unwrap();
    let read = blocked.await.unwrap();
    assert_eq!(read.status, 200, "{}", read.text());
    let listed = node.send("GET", CREATE_PATH, &bearer, None).await;
    assert_eq!(listed.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_statement_is_logged_by_sqlstate_never_with_the_rows_values() {
    let db = TestDb::new();
    let cluster = Cluster::new();
    let node = cluster.start(&db.node_url("refused_statement"));
    let bearer = cluster.bearer();
    // A constraint the store does not expect: PostgreSQL's DETAIL for its
    // violation quotes the whole failing row (name, URL, sealed secret).
    let (admin, conn) = tokio_postgres::connect(&db.node_url("constraint"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let name = "Leaky-Probe-Name-7731";
    admin
        .batch_execute(&format!(
            "ALTER TABLE destinations ADD CONSTRAINT no_probe CHECK (name <> '{name}')"
        ))
        .await
        .unwrap();

    let refused = node
        .send("POST", CREATE_PATH, &bearer, Some(&destination(name)))
        .await;
    assert_eq!(refused.status, 500, "{}", refused.text());
    assert!(!refused.text().contains(name), "{}", refused.text());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut output = String::new();
    while !output.contains("request failed") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        output = node.output();
    }
    let logged = output
        .lines()
        .find(|line| line.contains("request failed"))
        .unwrap_or_else(|| panic!("no log of the failure: {output}"));
    assert!(logged.contains("23514"), "{logged}");
    assert!(logged.contains("no_probe"), "{logged}");
    for leak in [name, "example.com", "DETAIL", "Failing row", PASSWORD] {
        assert!(!output.contains(leak), "{leak} logged: {output}");
    }
    assert_eq!(
        logged.matches("violates check constraint").count(),
        1,
        "{logged}"
    );

    // The node serves on.
    let created = node
        .send("POST", CREATE_PATH, &bearer, Some(&destination("Fine")))
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
}

/// The delivery flags of a node delivering to `rx` on loopback, with a
/// 2 s delivery timeout (so a lease of 2 × 2 s + 5 s = 9 s).
fn delivery_args(cluster: &Cluster, rx: &Receiver) -> Vec<String> {
    let pem = cluster.dir.path().join("receiver.pem");
    std::fs::write(&pem, &rx.cert_pem).unwrap();
    [
        "--allow-private-destinations",
        "127.0.0.1/32",
        "--delivery-root-cert",
        pem.to_str().unwrap(),
        "--delivery-timeout",
        "2s",
        "--retry-schedule",
        "1s,1s,1s",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// The lease a claim takes with `--delivery-timeout 2s`.
const LEASE: Duration = Duration::from_secs(9);

/// Publishes an event through `node` as `bearer`'s organization; its id
/// once acknowledged (202, for one destination).
async fn publish_on(node: &Node, bearer: &str, n: usize) -> String {
    let accepted = Client::with_authorization(node.addr, bearer)
        .publish("invoice.paid", &format!("{{\"n\":{n}}}"), 1)
        .await;
    accepted["eventId"].as_str().unwrap().to_owned()
}

fn webhook_ids(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_published_on_both_nodes_are_each_delivered_once() {
    const N: usize = 40;
    let db = TestDb::new();
    let cluster = Cluster::new();
    let rx = Receiver::start(Options::default()).await;
    let extra = delivery_args(&cluster, &rx);
    let nodes = Arc::new([
        cluster.start_with(&db.node_url("deliver_a"), &extra),
        cluster.start_with(&db.node_url("deliver_b"), &extra),
    ]);
    let bearer = cluster.bearer();
    let created = nodes[0]
        .send(
            "POST",
            CREATE_PATH,
            &bearer,
            Some(&json!({"name": "Receiver", "url": rx.ip_url("/hooks")})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());

    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let nodes = Arc::clone(&nodes);
            let bearer = bearer.clone();
            tokio::spawn(async move { publish_on(&nodes[i % 2], &bearer, i).await })
        })
        .collect();
    let mut published = Vec::new();
    for task in tasks {
        published.push(task.await.unwrap());
    }
    published.sort();

    rx.wait_for(N, Duration::from_secs(60)).await;
    // Past a poll interval and a lease more: no second delivery of any.
    tokio::time::sleep(LEASE + Duration::from_secs(2)).await;
    let mut delivered = webhook_ids(&rx.requests());
    delivered.sort();
    assert_eq!(delivered, published);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_kill_9_of_a_node_the_other_delivers_what_it_acknowledged_within_the_lease() {
    const N: usize = 6;
    let db = TestDb::new();
    let cluster = Cluster::new();
    let rx = Receiver::start(Options::default()).await;
    let extra = delivery_args(&cluster, &rx);
    let mut a = cluster.start_with(&db.node_url("doomed"), &extra);
    let bearer = cluster.bearer();
    let created = a
        .send(
            "POST",
            CREATE_PATH,
            &bearer,
            Some(&json!({"name": "Receiver", "url": rx.ip_url("/hooks")})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    // The receiver holds A's attempts open: A has claimed every event and
    // is mid-attempt when it dies.
    for _ in 0..N {
        rx.reply(Reply::status(204).delay(Duration::from_secs(60)));
    }
    let mut published = Vec::new();
    for i in 0..N {
        published.push(publish_on(&a, &bearer, i).await);
    }
    published.sort();
    let mut held = webhook_ids(&rx.wait_for(N, Duration::from_secs(30)).await);
    held.sort();
    assert_eq!(held, published);

    a.kill_9();
    let killed = Instant::now();
    let b = cluster.start_with(&db.node_url("survivor"), &extra);

    // B takes each delivery over once A's lease ends, and the receiver now
    // answers at once.
    let requests = rx.wait_for(2 * N, LEASE + Duration::from_secs(15)).await;
    let elapsed = killed.elapsed();
    let mut redelivered = webhook_ids(&requests[N..]);
    redelivered.sort();
    assert_eq!(redelivered, published);
    assert!(elapsed < LEASE + Duration::from_secs(15), "{elapsed:?}");
    // Each delivery succeeded: no third request for any.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rx.requests().len(), 2 * N);
    drop(b);
}

/// A client's `eventId` published 16 times at once, split over two nodes:
/// every answer is the same 202, the database holds one event, and the
/// receiver gets it once; another payload under the id is a 409 on either
/// node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishes_of_one_event_id_across_nodes_deliver_once() {
    const ID: &str = "evt_01HZY8ZQ5M3J9V6W2X4T7R1P0K";
    let db = TestDb::new();
    let cluster = Cluster::new();
    let rx = Receiver::start(Options::default()).await;
    let extra = delivery_args(&cluster, &rx);
    let nodes = Arc::new([
        cluster.start_with(&db.node_url("idem_a"), &extra),
        cluster.start_with(&db.node_url("idem_b"), &extra),
    ]);
    let bearer = cluster.bearer();
    let created = nodes[0]
        .send(
            "POST",
            CREATE_PATH,
            &bearer,
            Some(&json!({"name": "Receiver", "url": rx.ip_url("/hooks")})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let body = json!({"eventId": ID, "type": "invoice.paid", "payload": {"n": 1}});
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (nodes, bearer, body) = (Arc::clone(&nodes), bearer.clone(), body.clone());
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                nodes[i % 2]
                    .send("POST", "/v1/events", &bearer, Some(&body))
                    .await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(response.status, 202, "{}", response.text());
        answers.push(response.json());
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0]["eventId"], json!(ID));
    assert_eq!(answers[0]["destinations"], json!(1));
    let client = db.client().await;
    let stored: i64 = client
        .query_one("SELECT count(*) FROM event_ids", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);

    rx.wait_for(1, Duration::from_secs(60)).await;
    for node in nodes.iter() {
        let other = json!({"eventId": ID, "type": "invoice.paid", "payload": {"n": 2}});
        let response = node.send("POST", "/v1/events", &bearer, Some(&other)).await;
        assert_eq!(response.status, 409, "{}", response.text());
        assert_eq!(response.json()["eventId"], json!(ID));
        let again = node.send("POST", "/v1/events", &bearer, Some(&body)).await;
        assert_eq!(again.status, 202, "{}", again.text());
        assert_eq!(again.json(), answers[0]);
    }
    // Past a poll interval and a lease more: no second delivery.
    tokio::time::sleep(LEASE + Duration::from_secs(2)).await;
    assert_eq!(webhook_ids(&rx.requests()), [ID]);
}

/// A publish on node A wakes node B's worker, whose poll interval (10
/// minutes) would otherwise keep the delivery waiting: B listens for the
/// `NOTIFY` of A's enqueue. The second event proves it (the first may be
/// taken by B's first claim, made at its start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_on_one_node_wakes_the_worker_of_the_other() {
    use prets_destinations::delivery::Outbox;
    use prets_destinations::{
        CreateDestinationRequest, CreateOutcome, HostPolicy, KeyId, Keyring, PublishRequest,
        SealingKey, TenantId, create, os_rng, publish,
    };
    use prets_destinations_server::DeliveryConfig;
    use prets_destinations_server::delivery::{
        DeliveryClient, Worker, WorkerOptions, parse_root_certificates,
    };
    use tokio::sync::Notify;

    let db = TestDb::new();
    let a = db.repo().await;
    let b = Arc::new(db.repo().await);
    let rx = Receiver::start(Options::default()).await;
    let keyring = Arc::new(Keyring::new(SealingKey::new(KeyId::new(1), &[0x42; 32]), []).unwrap());
    let tenant: TenantId = "org_wake".parse().unwrap();
    let created = create(
        &a,
        &tenant,
        CreateDestinationRequest::new("Receiver", rx.name_url("/hooks")),
        a.now().await.unwrap(),
        &mut os_rng(),
        keyring.current(),
    )
    .await
    .unwrap();
    assert!(matches!(created, CreateOutcome::Created(_)), "{created:?}");

    let config = DeliveryConfig {
        policy: HostPolicy::new().allow("127.0.0.1/32".parse().unwrap()),
        root_certificates: parse_root_certificates(rx.cert_pem.as_bytes()).unwrap(),
        timeout: Duration::from_secs(5),
        ..DeliveryConfig::default()
    };
    let published = Arc::new(Notify::new());
    b.listen(Arc::clone(&published)).await.unwrap();
    let client = DeliveryClient::new(&config, crate::support::resolver::loopback()).unwrap();
    let worker = Worker::new(Arc::clone(&b), keyring, client, &config, published)
        .with_options(WorkerOptions::default().poll_interval(Duration::from_secs(600)))
        .spawn();

    for n in 0..2 {
        let request = PublishRequest::new("invoice.paid", format!("{{\"n\":{n}}}")).unwrap();
        let event = publish(&a, &tenant, request, a.now().await.unwrap(), &mut os_rng())
            .await
            .unwrap()
            .into_result()
            .unwrap();
        // Node A's own signal is not B's: only the NOTIFY reaches B.
        let got = rx.wait_for(n + 1, Duration::from_secs(30)).await;
        assert_eq!(got[n].header("webhook-id"), event.event_id.to_string());
    }
    // A burst of publishes at once: their notifications are sent one at a
    // time, the last after the last commit, so none is left to the poll.
    let a = Arc::new(a);
    let burst: Vec<_> = (0..20)
        .map(|n| {
            let (a, tenant) = (Arc::clone(&a), tenant.clone());
            tokio::spawn(async move {
                let request =
                    PublishRequest::new("invoice.paid", format!("{{\"burst\":{n}}}")).unwrap();
                publish(&*a, &tenant, request, a.now().await.unwrap(), &mut os_rng())
                    .await
                    .unwrap()
                    .into_result()
                    .unwrap()
                    .event_id
                    .to_string()
            })
        })
        .collect();
    let mut want = Vec::new();
    for t in burst {
        want.push(t.await.unwrap());
    }
    want.sort();
    let got = rx.wait_for(22, Duration::from_secs(30)).await;
    let mut got = webhook_ids(&got[2..]);
    got.sort();
    assert_eq!(got, want);
    worker.shutdown().await;
}

/// libfaketime's preload library, where the Debian `faketime` package puts
/// it (any architecture), if installed.
fn libfaketime() -> Option<PathBuf> {
    let mut dirs = vec![PathBuf::from("/usr/lib/faketime")];
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        dirs.extend(entries.flatten().map(|e| e.path().join("faketime")));
    }
    dirs.push(PathBuf::from("/usr/local/lib/faketime"));
    dirs.into_iter()
        .map(|d| d.join("libfaketime.so.1"))
        .find(|p| p.is_file())
}

/// Two nodes on one database, one with its clock 40 s ahead, then 40 s
/// behind (libfaketime): 60 events to a receiver that answers in 3 s are
/// each delivered exactly once, because claims, leases and due times go by
/// the database's clock (the skewed node logs its offset at start). With
/// each node's own clock, the node ahead would take over the other's
/// leases (25 s) while their attempts run, and the node behind would have
/// its own taken over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_with_a_skewed_clock_delivers_nothing_twice() {
    const N: usize = 60;
    let Some(lib) = libfaketime() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "libfaketime is not installed (Debian package faketime): required under CI"
        );
        eprintln!("skipped: libfaketime is not installed (apt-get install faketime)");
        return;
    };
    let lib = lib.to_str().unwrap().to_owned();
    for skew in ["+40s", "-40s"] {
        let db = TestDb::new();
        let cluster = Cluster::new();
        let rx = Receiver::start(Options::default()).await;
        for _ in 0..N {
            rx.reply(Reply::status(204).delay(Duration::from_secs(3)));
        }
        let mut extra = delivery_args(&cluster, &rx);
        // A 10 s timeout: a lease of 2 × 10 s + 5 s = 25 s, shorter than
        // the skew.
        let timeout = extra
            .iter()
            .position(|a| a == "--delivery-timeout")
            .unwrap();
        extra[timeout + 1] = "10s".to_owned();
        // Up to 16 attempts in flight on the one destination on each node,
        // and 64 leases of it (16 × the lookahead 4) across both.
        extra.extend(["--destination-concurrency".to_owned(), "16".to_owned()]);
        let a = cluster.start_with(&db.node_url("clock_true"), &extra);
        let key = cluster.key_file.to_str().unwrap().to_owned();
        let token = cluster.token_flag();
        let url = db.node_url("clock_skewed");
        let mut args = vec![
            "--database",
            &url,
            "--sealing-key-file",
            &key,
            "--api-token",
            &token,
        ];
        args.extend(extra.iter().map(String::as_str));
        let b = Node(ServerProcess::start_with_env(
            &cluster.dir,
            &args,
            &[
                ("PRETS_LOG", "info"),
                ("LD_PRELOAD", &lib),
                ("FAKETIME", skew),
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ],
        ));
        let logged = b.output();
        assert!(
            logged.contains("clock differs from the database"),
            "{skew}: {logged}"
        );
        let bearer = cluster.bearer();
        let created = a
            .send(
                "POST",
                CREATE_PATH,
                &bearer,
                Some(&json!({"name": "Receiver", "url": rx.ip_url("/hooks")})),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text());
        let nodes = [&a, &b];
        let mut published = Vec::new();
        for i in 0..N {
            published.push(publish_on(nodes[i % 2], &bearer, i).await);
        }
        published.sort();
        rx.wait_for(N, Duration::from_secs(120)).await;
        // Past an answer's delay and a poll more: any second delivery of
        // an attempt in flight would have arrived.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let mut delivered = webhook_ids(&rx.requests());
        delivered.sort();
        assert_eq!(delivered, published, "{skew}");
    }
}

/// Creates a destination named `name` on `node`; its id.
async fn create(node: &Node, bearer: &str, name: &str) -> String {
    let created = node
        .send("POST", CREATE_PATH, bearer, Some(&destination(name)))
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    created.json()["destinationId"].as_str().unwrap().to_owned()
}

/// Resends the event at `event` (its path) to destination `d` on `node`.
async fn resend(node: &Node, bearer: &str, event: &str, d: &str) -> Response {
    let body = json!({ "destinationId": d });
    node.send("POST", &format!("{event}/resend"), bearer, Some(&body))
        .await
}

/// The event log over HTTP on two nodes of one database (API-only, so
/// deliveries stay pending): an event published on one is listed and read
/// on the other, a resend on the other queues a manual delivery the first
/// then reads, and a resend to a delivery pending already makes it manual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_read_and_resent_across_nodes() {
    let db = TestDb::new();
    let cluster = Cluster::new();
    let api_only = ["--no-delivery".to_owned()];
    let a = cluster.start_with(&db.node_url("node_a"), &api_only);
    let b = cluster.start_with(&db.node_url("node_b"), &api_only);
    let bearer = cluster.bearer();
    let d1 = create(&a, &bearer, "one").await;
    let published = a
        .send(
            "POST",
            "/v1/events",
            &bearer,
            Some(&json!({"type": "invoice.paid", "payload": {"n": 1}})),
        )
        .await;
    assert_eq!(published.status, 202, "{}", published.text());
    let id = published.json()["eventId"].as_str().unwrap().to_owned();
    let event = format!("/v1/events/{id}");

    let listed = b.send("GET", "/v1/events", &bearer, None).await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(listed.json()["data"][0]["eventId"], json!(id));
    let read = b.send("GET", &event, &bearer, None).await;
    assert_eq!(read.status, 200, "{}", read.text());
    let detail = read.json();
    assert_eq!(detail["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(delivery_to(&detail, &d1)["state"], json!("pending"));
    assert_eq!(delivery_to(&detail, &d1)["manual"], json!(false));

    // A destination made after the event: a resend on the other node
    // queues it one delivery, which the first node reads.
    let d2 = create(&b, &bearer, "two").await;
    let queued = resend(&b, &bearer, &event, &d2).await;
    assert_eq!(queued.status, 202, "{}", queued.text());
    let pending = resend(&a, &bearer, &event, &d1).await;
    assert_eq!(pending.status, 202, "{}", pending.text());
    for node in [&a, &b] {
        let detail = node.send("GET", &event, &bearer, None).await.json();
        assert_eq!(
            detail["deliveries"].as_array().unwrap().len(),
            2,
            "{detail}"
        );
        for d in [&d1, &d2] {
            assert_eq!(delivery_to(&detail, d)["state"], json!("pending"));
            assert_eq!(delivery_to(&detail, d)["manual"], json!(true));
        }
    }
    // An event id never published: 404 on either node.
    for node in [&a, &b] {
        let missing = node
            .send(
                "GET",
                "/v1/events/evt_01HZY8ZQ5M3J9V6W2X4T7R1P0K",
                &bearer,
                None,
            )
            .await;
        assert_eq!(missing.status, 404);
    }
}

/// The quotas hold across nodes, through the binary's flags: creates racing
/// on two nodes for an organization one below `--max-destinations` store
/// one; publishes on either node stop at `--max-pending-deliveries`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quotas_hold_across_nodes() {
    let db = TestDb::new();
    let cluster = Cluster::new();
    let flags = [
        "--max-destinations",
        "3",
        "--max-pending-deliveries",
        "3",
        "--no-delivery",
    ]
    .map(String::from);
    let nodes = Arc::new([
        cluster.start_with(&db.node_url("node_a"), &flags),
        cluster.start_with(&db.node_url("node_b"), &flags),
    ]);
    let bearer = cluster.bearer();
    for (i, node) in nodes.iter().enumerate() {
        let response = node
            .send(
                "POST",
                CREATE_PATH,
                &bearer,
                Some(&destination(&format!("d{i}"))),
            )
            .await;
        assert_eq!(response.status, 201, "{}", response.text());
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (nodes, bearer, barrier) =
                (Arc::clone(&nodes), bearer.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                let body = destination(&format!("racer {i}"));
                barrier.wait().await;
                nodes[i % 2]
                    .send("POST", CREATE_PATH, &bearer, Some(&body))
                    .await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        let response = task.await.unwrap();
        if response.status == 403 {
            assert!(
                response.text().contains("quota_exceeded"),
                "{}",
                response.text()
            );
        }
        statuses.push(response.status);
    }
    statuses.sort_unstable();
    let mut expected = vec![201];
    expected.extend([403; 19]);
    assert_eq!(statuses, expected);
    // Three destinations: one publish queues 3, the next is refused on
    // either node.
    let event = json!({"type": "invoice.paid", "payload": {}});
    let response = nodes[0]
        .send("POST", "/v1/events", &bearer, Some(&event))
        .await;
    assert_eq!(response.status, 202, "{}", response.text());
    for node in nodes.iter() {
        let response = node.send("POST", "/v1/events", &bearer, Some(&event)).await;
        assert_eq!(response.status, 429, "{}", response.text());
        assert!(
            response.text().contains("queue_full"),
            "{}",
            response.text()
        );
        assert_eq!(response.header("retry-after"), Some("5"));
    }
}
