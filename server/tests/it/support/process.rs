//! The server binary as a child process: started in a temp directory on an
//! ephemeral port, with no `PRETS_*` variable of the test's environment, its
//! output collected line by line, stopped by SIGTERM or `kill -9`.

use std::io::{BufRead as _, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::TempDir;

/// How long a start may take on a loaded machine.
const START: Duration = Duration::from_secs(60);

/// The binary run in `dir` with `--listen 127.0.0.1:0` and `args`, every
/// `PRETS_*` variable of this process removed (so only the flags and `env`
/// count), its output piped.
pub fn command(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_prets-destinations-server"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PRETS_") {
            command.env_remove(name);
        }
    }
    command
        .current_dir(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Collects the lines of `stream` into `into` on a thread of its own, which
/// ends with the stream; each line is also sent on the receiver while it is
/// kept.
fn collect(
    stream: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
) -> (mpsc::Receiver<String>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            into.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    (rx, reader)
}

/// A running server process; killed on drop.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

/// A server process after its exit, with everything it wrote.
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: String,
    /// The log (stderr).
    pub log: String,
}

impl ServerProcess {
    /// Starts the binary (see [`command`]) and waits for its "listening"
    /// log line.
    pub fn start(dir: &TempDir, args: &[&str]) -> Self {
        Self::start_with_env(dir, args, &[])
    }

    /// [`start`](Self::start) with the environment variables `env` set.
    pub fn start_with_env(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(command(dir, args, env))
    }

    /// Spawns `command` (the binary with piped stdout and stderr, such as
    /// [`command`] makes, or a shell that execs it) and waits for its
    /// "listening" log line.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command.spawn().unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (_, out_reader) = collect(child.stdout.take().unwrap(), Arc::clone(&stdout));
        let (lines, err_reader) = collect(child.stderr.take().unwrap(), Arc::clone(&stderr));
        let deadline = Instant::now() + START;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = lines.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server did not say it listens:\n{}",
                    stderr.lock().unwrap().join("\n")
                );
            };
            if let Some(rest) = line.split("addr=").nth(1) {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        Self {
            child,
            addr,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        }
    }

    /// Everything the process wrote so far: stdout, then the log (stderr).
    pub fn output(&self) -> String {
        let mut out = self.stdout.lock().unwrap().clone();
        out.extend(self.stderr.lock().unwrap().iter().cloned());
        out.join("\n")
    }

    /// What the process wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    /// SIGTERM, then waits (blocking) for the exit and for the end of its
    /// output: the status, stdout and the log, whole.
    pub fn exit(mut self) -> Exited {
        let status = self.signal_and_wait();
        for reader in std::mem::take(&mut self.readers) {
            reader.join().unwrap();
        }
        Exited {
            status,
            stdout: self.stdout(),
            log: self.stderr.lock().unwrap().join("\n"),
        }
    }

    /// `kill -9`: no shutdown, no lease released.
    pub fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the exit (blocking): its status.
    pub fn terminate(mut self) -> ExitStatus {
        self.signal_and_wait()
    }

    fn signal_and_wait(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }

    /// [`terminate`](Self::terminate) from async code: checks the exit is
    /// clean, showing the output if not.
    pub async fn stop(self) {
        let stderr = Arc::clone(&self.stderr);
        let exit = tokio::task::spawn_blocking(move || self.terminate())
            .await
            .unwrap();
        assert!(
            exit.success(),
            "{exit:?}\n{}",
            stderr.lock().unwrap().join("\n")
        );
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary (see [`command`]) to its exit, within a bound: its
/// status, its whole output (stdout, then stderr) and how long it ran.
pub fn run_to_exit(dir: &TempDir, args: &[&str]) -> (ExitStatus, String, Duration) {
    let started = Instant::now();
    let mut child = command(dir, args, &[]).spawn().unwrap();
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let (_, out_done) = collect(child.stdout.take().unwrap(), Arc::clone(&stdout));
    let (_, err_done) = collect(child.stderr.take().unwrap(), Arc::clone(&stderr));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > START {
            let _ = child.kill();
            panic!("the start hung");
        }
        thread::sleep(Duration::from_millis(50));
    };
    let elapsed = started.elapsed();
    // Both pipes close with the process: read them to the end.
    out_done.join().unwrap();
    err_done.join().unwrap();
    let mut out = stdout.lock().unwrap().clone();
    out.extend(stderr.lock().unwrap().iter().cloned());
    (status, out.join("\n"), elapsed)
}
