//! The paced delivery run: events published at a fixed rate, each delivered
//! to every destination, publish to receipt measured.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::env::Env;
use crate::http::{ms, percentile};
use crate::publish::{Pace, create_destinations, publish};
use crate::receiver::start_receiver;
use crate::{Args, Store, delivery_settings, label, node_counts, ratio};

struct DeliveryRow {
    label: String,
    fanout: usize,
    events: usize,
    refused: usize,
    publish_rate: f64,
    publish_p99: Duration,
    deliveries: usize,
    delivery_rate: f64,
    e2e_p50: Duration,
    e2e_p99: Duration,
    e2e_max: Duration,
    duplicates: usize,
    missing: usize,
    wrong_count: usize,
    strays: usize,
}

async fn delivery_case(
    env: &mut Env,
    args: &Args,
    store: Store,
    nodes: usize,
    fanout: usize,
) -> DeliveryRow {
    let epoch = Instant::now();
    let cert_path = env.dir.join("receiver.pem");
    let receiver = start_receiver(&cert_path, epoch).await;
    let running = env
        .start(store, nodes, |config| {
            delivery_settings(config, &cert_path, args);
        })
        .await;
    let addrs = running.addrs();
    create_destinations(addrs[0], &env.token, receiver.addr.port(), fanout).await;

    // Publish, paced, over `publishers` connections split between the nodes.
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let pace = Pace::Rate {
        start,
        rate: args.rate,
        end: Some(start + Duration::from_secs_f64(args.publish_seconds)),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut published = publish(&addrs, args.publishers, &env.token, pace, epoch, &stop)
        .await
        .unwrap();
    let published_in = start.elapsed();
    published.latencies.sort_unstable();

    // Drain: wait until every queued delivery has arrived, or the time is up.
    let drain_until = Instant::now() + Duration::from_secs_f64(args.drain_seconds);
    receiver.wait_for(published.expected(), drain_until).await;
    // Let late duplicates, if any, arrive before counting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.stop().await;

    let seen = receiver.take();
    let acked = &published.acked;
    let wrong_count = acked.iter().filter(|a| a.destinations != fanout).count();
    let missing = seen.missing(acked.iter().map(|a| (a.event_id.as_str(), fanout)));
    let mut e2e = seen.latencies.clone();
    e2e.sort_unstable();
    let first_publish = start.duration_since(tokio::time::Instant::from_std(epoch));
    let delivering = seen.last().saturating_sub(first_publish);
    DeliveryRow {
        label: label(store, nodes),
        fanout,
        events: acked.len(),
        refused: published.refused,
        publish_rate: acked.len() as f64 / published_in.as_secs_f64(),
        publish_p99: percentile(&published.latencies, 0.99),
        deliveries: seen.receipts.len(),
        delivery_rate: seen.receipts.len() as f64 / delivering.as_secs_f64().max(1e-9),
        e2e_p50: percentile(&e2e, 0.50),
        e2e_p99: percentile(&e2e, 0.99),
        e2e_max: e2e.last().copied().unwrap_or_default(),
        duplicates: seen.duplicates(),
        missing,
        wrong_count,
        strays: seen.strays,
    }
}

/// Returns whether every acknowledged delivery arrived.
pub(crate) async fn delivery(env: &mut Env, args: &Args, floor: Option<f64>) -> bool {
    println!(
        "\n## Delivery: {} events/s for {} s over {} connections, HTTPS receiver on 127.0.0.1, drain at most {} s\n",
        args.rate, args.publish_seconds, args.publishers, args.drain_seconds
    );
    println!(
        "| store | fan-out | events | publishes/s | publish p99 | deliveries | deliveries/s | × floor | e2e p50 | e2e p99 | e2e max | duplicates | missing |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut complete = true;
    for &store in &args.stores {
        for nodes in node_counts(store, args) {
            for &fanout in &args.fanout {
                let r = delivery_case(env, args, store, nodes, fanout).await;
                println!(
                    "| {} | {} | {} | {:.0} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
                    r.label,
                    r.fanout,
                    r.events,
                    r.publish_rate,
                    ms(r.publish_p99),
                    r.deliveries,
                    r.delivery_rate,
                    ratio(Some(r.delivery_rate), floor),
                    ms(r.e2e_p50),
                    ms(r.e2e_p99),
                    ms(r.e2e_max),
                    r.duplicates,
                    r.missing,
                );
                if r.refused > 0 || r.wrong_count > 0 || r.strays > 0 {
                    println!(
                        "  ({} publishes refused, {} events with a destination count other than {}, {} stray requests)",
                        r.refused, r.wrong_count, r.fanout, r.strays
                    );
                }
                if r.missing > 0 || r.wrong_count > 0 {
                    complete = false;
                }
            }
        }
    }
    complete
}
