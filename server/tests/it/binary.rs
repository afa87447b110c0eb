//! The binary as a newcomer runs it: first start with no configuration,
//! the token printed once to stdout (never the log), SIGTERM stops it cleanly.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prets_destinations::delivery::{AttemptOutcome, Outbox as _};
use prets_destinations::{
    CreateDestinationRequest, DestinationRepo as _, DestinationUrl, InsertOutcome, PublishRequest,
    TenantId, Timestamp, os_rng, publish,
};
use prets_destinations_server::{SqliteRepo, load_keyring};

use crate::support::process::ServerProcess;
use crate::support::receiver::{Options, Receiver, Reply};
use crate::support::{CREATE_PATH, TempDir, eventually, post_json};

/// SIGTERM, and a clean exit: what the process wrote to stdout and to its
/// log (stderr).
fn terminate(process: ServerProcess) -> (String, String) {
    let exited = process.exit();
    assert!(
        exited.status.success(),
        "SIGTERM is a clean exit: {:?}\n{}",
        exited.status,
        exited.log
    );
    (exited.stdout, exited.log)
}

#[tokio::test]
async fn first_start_prints_the_token_once_and_sigterm_stops_cleanly() {
    let dir = TempDir::new();
    let first = ServerProcess::start(&dir, &[]);
    let addr = first.addr;
    let key_file = dir.path().join("prets-destinations.sqlite3.sealing-key");
    assert!(dir.path().join("prets-destinations.sqlite3").exists());
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Stdout is read once the process has exited; the token is used on the
    // second start.
    let (stdout, stderr) = terminate(first);
    let token = stdout
        .split_whitespace()
        .find(|w| w.starts_with("prets_") && w.len() == 70)
        .expect("the token is printed")
        .to_owned();
    assert!(!stderr.contains(&token), "the token is not in the log");
    assert!(stderr.contains("SIGTERM"), "{stderr}");

    // Second start: same database, the printed token works, nothing printed.
    let second = ServerProcess::start(&dir, &[]);
    assert_ne!(second.addr, addr);
    let response = post_json(
        second.addr,
        &format!("Bearer {token}"),
        br#"{"name":"Production","url":"https://example.com/prets/events"}"#,
    )
    .await;
    assert_eq!(response.status, 201, "{}", response.text());
    let secret = response.json()["bearerSecret"].as_str().unwrap().to_owned();
    let (stdout, stderr) = terminate(second);
    assert!(
        stdout.is_empty(),
        "the token is shown only on the first start: {stdout}"
    );
    assert!(!stderr.contains(&secret) && !stderr.contains(&token));
    assert!(stderr.contains(&format!("route={CREATE_PATH}")));
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Runs the binary under `umask 000` (so nothing private comes from the
/// umask) with `args`.
fn command_with_open_umask(dir: &TempDir, args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .current_dir(dir.path())
        .arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_prets-destinations-server"))
        .args(args)
        .env_remove("PRETS_DATABASE")
        .env_remove("PRETS_API_TOKENS")
        .env_remove("PRETS_SEALING_KEY_FILE")
        .env_remove("PRETS_MEMORY");
    command
}

#[tokio::test]
async fn database_and_its_wal_and_shm_files_are_private_whatever_the_umask() {
    let dir = TempDir::new();
    let mut command = command_with_open_umask(&dir, &["--listen", "127.0.0.1:0"]);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let server = ServerProcess::spawn(command);
    // The token is printed before the listening line, but stdout is read on
    // a thread of its own.
    let printed = |stdout: &str| {
        stdout
            .split_whitespace()
            .find(|w| w.starts_with("prets_"))
            .map(str::to_owned)
    };
    eventually("the token is printed", Duration::from_secs(10), || {
        printed(&server.stdout()).is_some()
    })
    .await;
    let token = printed(&server.stdout()).unwrap();
    // A write, so SQLite has made its -wal and -shm files.
    let response = post_json(
        server.addr,
        &format!("Bearer {token}"),
        br#"{"name":"Production","url":"https://example.com/prets/events"}"#,
    )
    .await;
    assert_eq!(response.status, 201, "{}", response.text());
    let database = dir.path().join("prets-destinations.sqlite3");
    for suffix in ["", "-wal", "-shm", ".sealing-key"] {
        let mut path = database.clone().into_os_string();
        path.push(suffix);
        assert_eq!(mode(std::path::Path::new(&path)), 0o600, "{suffix:?}");
    }
    server.stop().await;
}

#[test]
fn a_sealing_key_file_readable_by_group_or_others_stops_the_start() {
    let dir = TempDir::new();
    let key = dir.path().join("keys");
    std::fs::write(&key, format!("1 {}\n", "ab".repeat(32))).unwrap();
    let key_arg = key.to_str().unwrap();
    for mode_bits in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode_bits)).unwrap();
        for memory in [false, true] {
            let mut args = vec!["--listen", "127.0.0.1:0", "--sealing-key-file", key_arg];
            if memory {
                args.push("--memory");
            }
            let output = command_with_open_umask(&dir, &args).output().unwrap();
            assert!(!output.status.success(), "{mode_bits:o} memory={memory}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains("chmod 600"), "{stderr}");
        }
    }
}

#[test]
fn a_libpq_connection_string_is_refused_without_echo_and_creates_no_file() {
    let dir = TempDir::new();
    let conninfo = "host=127.0.0.1 dbname=prets user=app password=Hunter2-Conninfo";
    // As the flag and as the variable.
    for via_env in [false, true] {
        let mut command = command_with_open_umask(&dir, &["--listen", "127.0.0.1:0"]);
        if via_env {
            command.env("PRETS_DATABASE", conninfo);
        } else {
            command.args(["--database", conninfo]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server started on a connection string (via_env={via_env})");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let output = child.wait_with_output().unwrap();
        assert!(!output.status.success(), "via_env={via_env}");
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(shown.contains("--database"), "{shown}");
        assert!(shown.contains("postgres://"), "{shown}");
        for part in ["Hunter2", "dbname=prets", "user=app"] {
            assert!(!shown.contains(part), "{part} shown: {shown}");
        }
    }
    // Nothing was created under that name.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // A SQLite file whose name has an `=` still works, prefixed or not a
    // libpq keyword.
    for name in ["./host=db.sqlite3", "data=1.sqlite3"] {
        let started = ServerProcess::start(&dir, &["--database", name]);
        let (stdout, _) = terminate(started);
        assert!(stdout.contains("prets_"), "{stdout}");
        let file = name.trim_start_matches("./");
        assert!(dir.path().join(file).is_file(), "{name}");
    }
}

/// SIGTERM while an attempt is in flight: the attempt ends within the
/// delivery timeout and is recorded, the process exits cleanly, and a
/// restart makes the retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_attempt_in_flight_and_a_restart_resumes() {
    let dir = TempDir::new();
    let rx = Receiver::start(Options::default()).await;
    rx.reply(Reply::status(200).delay(Duration::from_secs(60)));
    let pem = dir.path().join("receiver.pem");
    std::fs::write(&pem, &rx.cert_pem).unwrap();
    let pem = pem.to_str().unwrap().to_owned();
    let args = [
        "--allow-private-destinations",
        "127.0.0.1/32",
        "--delivery-root-cert",
        &pem,
        "--delivery-timeout",
        "2s",
        "--retry-schedule",
        "0s",
    ];
    let started = ServerProcess::start(&dir, &args);

    // A destination and an event, written by another handle on the database
    // (as the routes would write them).
    let database = dir.path().join("prets-destinations.sqlite3");
    let keyring = load_keyring(&dir.path().join("prets-destinations.sqlite3.sealing-key")).unwrap();
    let repo = SqliteRepo::open(&database).unwrap();
    let tenant: TenantId = "org_a".parse().unwrap();
    let now = Timestamp::try_from(std::time::SystemTime::now()).unwrap();
    let mut plan = CreateDestinationRequest::new("Receiver", "https://example.com/hooks")
        .validate()
        .unwrap()
        .plan(&tenant, now, &mut os_rng(), keyring.current());
    plan.record.url = DestinationUrl::from_stored(rx.ip_url("/hooks")).unwrap();
    let id = plan.record.destination_id;
    assert_eq!(
        repo.insert(&tenant, &plan.record).await.unwrap(),
        InsertOutcome::Inserted
    );
    let request = PublishRequest::new("invoice.paid", "{\"n\":1}".to_owned()).unwrap();
    let event = publish(&repo, &tenant, request, now, &mut os_rng())
        .await
        .unwrap()
        .into_result()
        .unwrap();

    rx.wait_for(1, Duration::from_secs(10)).await;
    let stopping = Instant::now();
    let (_, stderr) = tokio::task::spawn_blocking(move || terminate(started))
        .await
        .unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(10));
    let attempts = repo.list_attempts(&tenant, id, None, 10).await.unwrap();
    assert_eq!(attempts.len(), 1, "{stderr}");
    assert_eq!(attempts[0].outcome, AttemptOutcome::Failed);
    assert_eq!(attempts[0].error.as_deref(), Some("timeout"));
    assert!(stderr.contains("delivery attempt"), "{stderr}");

    let started = ServerProcess::start(&dir, &args);
    let deadline = Instant::now() + Duration::from_secs(10);
    while repo
        .list_attempts(&tenant, id, None, 10)
        .await
        .unwrap()
        .len()
        < 2
    {
        assert!(Instant::now() < deadline, "not resumed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let attempts = repo.list_attempts(&tenant, id, None, 10).await.unwrap();
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);
    assert_eq!(attempts[0].attempt, 2);
    let requests = rx.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("webhook-id"), event.event_id.to_string());
    tokio::task::spawn_blocking(move || terminate(started))
        .await
        .unwrap();
}
