//! CPU time read from `/proc` (Linux; `None` elsewhere): this process's
//! (the load client, the servers and the receiver, every thread that ever
//! ran) and the PostgreSQL server's (every process named `postgres` on the
//! machine: its backends, writers and vacuum). `/proc` counts in ticks of
//! `USER_HZ`, 100 a second on Linux, so a reading is good to 10 ms per
//! process.
//!
//! A rate depends on how fast this machine is at the moment; CPU time per
//! delivery much less, so these are printed beside the rates: what the
//! server spends per delivery is the process's time per delivery less the
//! floor's per POST, plus the database's.

use std::time::Duration;

/// Ticks a second in `/proc/*/stat`.
const USER_HZ: u64 = 100;

/// CPU time used so far, or between two readings.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cpu {
    /// This process, user and system.
    pub(crate) process: Duration,
    /// The processes named `postgres`, user and system.
    pub(crate) database: Duration,
}

impl Cpu {
    /// The time used so far, or `None` without a readable `/proc/self/stat`.
    pub(crate) fn now() -> Option<Self> {
        let process = ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        let mut database = 0;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if stat.contains("(postgres)") {
                database += ticks(&stat).unwrap_or(0);
            }
        }
        Some(Self {
            process: from_ticks(process),
            database: from_ticks(database),
        })
    }

    /// The time used from `earlier` to now (a process that ended in
    /// between takes its time with it); `None` without both readings.
    pub(crate) fn since(earlier: Option<Self>) -> Option<Self> {
        let (now, earlier) = Self::now().zip(earlier)?;
        Some(Self {
            process: now.process.saturating_sub(earlier.process),
            database: now.database.saturating_sub(earlier.database),
        })
    }
}

/// `time` spread over `items` (at least one).
pub(crate) fn each(time: Duration, items: usize) -> Duration {
    time / u32::try_from(items.max(1)).unwrap_or(u32::MAX)
}

/// User plus system ticks of one `/proc/PID/stat` line: the 12th and 13th
/// fields after the command name's closing parenthesis (which the name may
/// itself contain).
fn ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

fn from_ticks(ticks: u64) -> Duration {
    Duration::from_millis(ticks.saturating_mul(1000 / USER_HZ))
}

/// Microseconds per item, or a dash.
pub(crate) fn per(time: Option<Duration>, items: usize) -> String {
    match time {
        Some(t) if items > 0 => format!("{:.1}", t.as_secs_f64() * 1e6 / items as f64),
        _ => "—".into(),
    }
}
