//! Relay throughput and commit-to-stream latency (targets: ≥ 10,000 entries/s
//! sustained; p99 < 100 ms at 1,000 entries/s).
//!
//! ```sh
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test BENCH_NATS_URL=nats://127.0.0.1:4222 \
//!   cargo run --release -p activity-nats --example relay_bench
//! ```
//!
//! 1. Throughput: `BENCH_ENTRIES` (default 50,000) entries are committed in transactions of 10
//!    with the outbox on, then one relay drains the outbox into a fresh stream; entries/s is
//!    counted from the first claim to the last acknowledged batch.
//!    `BENCH_BATCH_ROWS` sets the relay's outbox rows per batch (default 200).
//!    `BENCH_POISON_EVERY=n` makes every n-th entry one the stream refuses (6 KB, the stream's
//!    `max_message_size` set to 4 KiB): it is dead-lettered and the throughput counts it.
//! 2. Latency: a writer commits 100 transactions of 10 entries per second for
//!    `BENCH_SECONDS` (default 10) while the relay runs; a consumer receives every message and
//!    measures from the writer's commit returning to the message's arrival. The relay polls an
//!    empty outbox every `BENCH_IDLE_POLL_MS` (default 20, the relay's default).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use activity_nats::{Relay, RelayConfig, Step};
use activity_seaorm::prelude::*;
use activity_seaorm::{ActivityConfig, bulk_log_activity, transaction};
use async_nats::jetstream::consumer::pull;
use futures::StreamExt;
use sea_orm::{DatabaseConnection, DbErr};

const PER_TXN: usize = 10;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Ten entries in one transaction, all named `key` (the latency run finds the commit by it).
/// With `poison_every` > 0, every `poison_every`-th entry is too large for the stream.
async fn commit_batch(
    db: &DatabaseConnection,
    n: u64,
    key: String,
    poison_every: u64,
) -> Result<(), DbErr> {
    transaction(db, |txn| {
        async move {
            let entries: Vec<ActivityEntry> = (0..PER_TXN as u64)
                .map(|i| {
                    let index = n * PER_TXN as u64 + i;
                    let mut e = ActivityEntry::new("Flag", "evaluated")
                        .with_item_id((index % 1000).to_string())
                        .with_name(key.as_str());
                    e.organization_id = Some("acme".into());
                    if poison_every > 0 && index % poison_every == poison_every - 1 {
                        e.detail.context = Some(serde_json::json!({ "notes": "p".repeat(6_000) }));
                    }
                    e
                })
                .collect();
            bulk_log_activity(txn, entries).await
        }
        .scope_boxed()
    })
    .await
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("BENCH_DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    let nats_url =
        std::env::var("BENCH_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let entries = env_or("BENCH_ENTRIES", 50_000);
    let poison_every = env_or("BENCH_POISON_EVERY", 0);
    let seconds = env_or("BENCH_SECONDS", 10);
    activity_seaorm::init(ActivityConfig::new().with_outbox(true))?;
    let mut options = sea_orm::ConnectOptions::new(url.clone());
    options.max_connections(8).sqlx_logging(false);
    let db = sea_orm::Database::connect(options).await?;
    activity_seaorm::schema::drop_table(&db).await?;
    activity_seaorm::schema::create_table(&db).await?;
    let nats = async_nats::connect(nats_url.as_str()).await?;
    let js = async_nats::jetstream::new(nats.clone());
    let stream = format!("ACTIVITY_BENCH_{}", std::process::id());
    let prefix = format!("activity_bench_{}", std::process::id());
    let config = RelayConfig::default()
        .with_stream(stream.as_str())
        .with_subject_prefix(prefix.as_str())
        .with_batch_rows(env_or("BENCH_BATCH_ROWS", 200) as u32)
        .with_idle_poll(
            Duration::from_millis(env_or("BENCH_IDLE_POLL_MS", 20)),
            Duration::from_millis(env_or("BENCH_IDLE_POLL_MAX_MS", 1000)),
        );
    let relay = Relay::with_config(db.clone(), nats.clone(), config);
    let _ = js.delete_stream(stream.as_str()).await;
    relay.ensure_stream().await?;
    if poison_every > 0 {
        let mut created = js.get_stream(stream.as_str()).await?;
        let mut config = created.info().await?.config.clone();
        config.max_message_size = 4096;
        js.update_stream(config).await?;
    }
    println!("backend: {:?}; NATS {nats_url}", db.get_database_backend());

    // 1. Throughput.
    let fill = Instant::now();
    for n in 0..entries / PER_TXN as u64 {
        commit_batch(&db, n, format!("fill-{n}"), poison_every).await?;
    }
    println!(
        "filled {entries} entries in {} transactions in {:.1?}",
        entries / PER_TXN as u64,
        fill.elapsed()
    );
    let start = Instant::now();
    while let Step::Published(_) = relay.relay_batch().await? {}
    let elapsed = start.elapsed();
    let stats = relay.stats();
    let relayed = stats.published() + stats.dead_letters();
    println!(
        "throughput: {relayed} entries relayed ({} dead-lettered) in {elapsed:.2?} = {:.0} entries/s",
        stats.dead_letters(),
        relayed as f64 / elapsed.as_secs_f64()
    );

    // 2. Latency at 1,000 entries/s.
    let js_stream = js.get_stream(stream.as_str()).await?;
    let consumer = js_stream
        .create_consumer(pull::Config {
            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::New,
            ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await?;
    let committed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let expected = seconds * 100 * PER_TXN as u64;
    let receiver = {
        let committed = Arc::clone(&committed);
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(expected as usize);
            let mut messages = consumer.messages().await.expect("messages");
            while (latencies.len() as u64) < expected {
                let Some(Ok(message)) = messages.next().await else {
                    break;
                };
                let arrived = Instant::now();
                let entry: ActivityEntry =
                    serde_json::from_slice(&message.payload).expect("entry json");
                let key = entry.detail.name.unwrap_or_default();
                // The commit time is recorded right after COMMIT returns; an entry can arrive
                // before the writer records it (relay faster than the writer's bookkeeping).
                let at = loop {
                    if let Some(at) = committed.lock().expect("lock").get(&key).copied() {
                        break at;
                    }
                    tokio::task::yield_now().await;
                };
                latencies.push(arrived.saturating_duration_since(at));
            }
            latencies
        })
    };
    let relay_task = {
        let relay = relay.clone();
        tokio::spawn(async move { relay.run().await })
    };
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for n in 0..seconds * 100 {
        tick.tick().await;
        let key = format!("lat-{n}");
        commit_batch(&db, n, key.clone(), 0).await?;
        committed.lock().expect("lock").insert(key, Instant::now());
    }
    let mut latencies = match tokio::time::timeout(Duration::from_secs(30), receiver).await {
        Ok(latencies) => latencies?,
        Err(_) => {
            let stats = relay.stats();
            return Err(format!(
                "the consumer did not receive every entry within 30 s (relay published {}, retries {})",
                stats.published(),
                stats.retries()
            )
            .into());
        }
    };
    relay_task.abort();
    latencies.sort();
    println!(
        "latency at 1,000 entries/s ({} entries, commit returned → consumer received): \
         p50 {:.1?}, p90 {:.1?}, p99 {:.1?}, max {:.1?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
    let stats = relay.stats();
    println!(
        "relay stats: published {}, duplicates {}, retries {}, batches {}",
        stats.published(),
        stats.duplicates(),
        stats.retries(),
        stats.batches()
    );
    js.delete_stream(stream.as_str()).await?;
    Ok(())
}
