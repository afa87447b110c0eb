//! The delivery targets of the backlog runs (issue #19), each a ratio
//! measured in this process run. A benchmark, not a test: a MISS is printed,
//! never an exit status.

use std::time::Duration;

use crate::backlog::Drained;
use crate::cpu::{each, per};
use crate::{BACKLOG_FANOUT, Store};

/// One target: what it asks, what was measured, and whether it held.
struct Line {
    target: String,
    measured: String,
    held: Option<bool>,
}

impl Line {
    fn not_run(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            measured: "not run".into(),
            held: None,
        }
    }
}

/// Publish p99 during the drain on SQLite: at most this many milliseconds.
const PUBLISH_P99_MS: f64 = 20.0;

/// Prints the targets table for the backlog runs and the depth runs.
pub(crate) fn print(
    floor: Option<f64>,
    backlog: &[(Store, usize, Drained)],
    depths: &[(Store, usize, Drained)],
) {
    let run = |store: Store, nodes: usize| {
        backlog
            .iter()
            .find(|(s, n, _)| *s == store && *n == nodes)
            .map(|(_, _, d)| d)
    };
    let mut lines = Vec::new();
    for (store, nodes, least, name) in [
        (Store::Memory, 1, 0.5, "memory"),
        (Store::Sqlite, 1, 0.33, "SQLite"),
        (Store::Postgres, 1, 0.2, "PostgreSQL, 1 node"),
    ] {
        let target = format!("{name}: drain ≥ {least}× the floor");
        lines.push(match (run(store, nodes), floor) {
            (Some(d), Some(floor)) => {
                let r = d.rate / floor;
                Line {
                    target,
                    measured: format!("{r:.2}× ({:.0}/s of {floor:.0}/s)", d.rate),
                    held: Some(r >= least),
                }
            }
            _ => Line::not_run(target),
        });
    }
    let target = "PostgreSQL, 2 nodes: drain ≥ 1.0× 1 node";
    lines.push(match (run(Store::Postgres, 2), run(Store::Postgres, 1)) {
        (Some(two), Some(one)) => {
            let r = two.rate / one.rate;
            Line {
                target: target.into(),
                measured: format!("{r:.2}× ({:.0}/s and {:.0}/s)", two.rate, one.rate),
                held: Some(r >= 1.0),
            }
        }
        _ => Line::not_run(target),
    });
    for (store, name) in [(Store::Memory, "memory"), (Store::Sqlite, "SQLite")] {
        let mut at: Vec<_> = depths.iter().filter(|(s, _, _)| *s == store).collect();
        at.sort_by_key(|(_, depth, _)| *depth);
        lines.push(match (at.first(), at.last()) {
            (Some((_, low, shallow)), Some((_, high, deep))) if high > low => {
                let r = deep.window_rate / shallow.window_rate.max(1e-9);
                Line {
                    target: format!("{name}: drain with {high} queued ≥ 0.8× with {low} queued"),
                    measured: format!(
                        "{r:.2}× ({:.0}/s and {:.0}/s)",
                        deep.window_rate, shallow.window_rate
                    ),
                    held: Some(r >= 0.8),
                }
            }
            _ => Line::not_run(format!(
                "{name}: drain with 100000 queued ≥ 0.8× with 10000 queued"
            )),
        });
    }
    let all: Vec<&Drained> = backlog.iter().chain(depths).map(|(_, _, d)| d).collect();
    let target = "0 missing and 0 duplicates (backlog and depth runs)";
    lines.push(if all.is_empty() {
        Line::not_run(target)
    } else {
        let missing: usize = all.iter().map(|d| d.missing).sum();
        let duplicates: usize = all.iter().map(|d| d.duplicates).sum();
        let deliveries: usize = all.iter().map(|d| d.deliveries).sum();
        Line {
            target: target.into(),
            measured: format!(
                "{missing} missing, {duplicates} duplicates of {deliveries} in {} runs",
                all.len()
            ),
            held: Some(missing == 0 && duplicates == 0),
        }
    });
    let target = format!("SQLite: publish p99 during the drain ≤ {PUBLISH_P99_MS} ms");
    lines.push(match run(Store::Sqlite, 1) {
        Some(d) if !d.probes.latencies.is_empty() => {
            let p99 = crate::http::percentile(&d.probes.latencies, 0.99);
            let p99_ms = p99.as_secs_f64() * 1e3;
            Line {
                target,
                measured: format!("{p99_ms:.2} ms over {} publishes", d.probes.latencies.len()),
                held: Some(p99_ms <= PUBLISH_P99_MS),
            }
        }
        _ => Line::not_run(target),
    });

    println!("\n## Targets (fan-out {BACKLOG_FANOUT}, each ratio measured in this run)\n");
    println!("| target | measured | result |");
    println!("|---|---|---|");
    for line in lines {
        let result = match line.held {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "—",
        };
        println!("| {} | {} | {result} |", line.target, line.measured);
    }
}

/// Prints what each backlog run's drain cost in CPU time per delivery: this
/// process's less the floor's per POST (the client and receiver's share,
/// which the floor spends too), and the database's. Unlike the rates, these
/// hardly depend on how fast the machine is at the moment.
pub(crate) fn print_cpu(floor_per_post: Option<Duration>, backlog: &[(Store, usize, Drained)]) {
    if backlog.iter().all(|(_, _, d)| d.cpu.is_none()) {
        return;
    }
    println!("\n## CPU time per delivery over each drain (µs)\n");
    println!(
        "| store | this process | less the floor's per POST | database | server and database |"
    );
    println!("|---|---|---|---|---|");
    for (store, nodes, d) in backlog {
        let Some(cpu) = d.cpu else { continue };
        let process = each(cpu.process, d.deliveries);
        let server = floor_per_post.map(|f| process.saturating_sub(f));
        let database = (*store == Store::Postgres).then_some(each(cpu.database, d.deliveries));
        println!(
            "| {} | {} | {} | {} | {} |",
            crate::label(*store, *nodes),
            per(Some(process), 1),
            per(server, 1),
            per(database, 1),
            per(server.map(|s| s + database.unwrap_or_default()), 1),
        );
    }
}
