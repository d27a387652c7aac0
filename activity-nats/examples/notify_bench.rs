//! Notifications per second through the router: 1,000 watchers spread over 100
//! items (10 subscribers each), entries by other users on random items, delivered to a channel
//! that only counts. Everything the router does per entry runs for real: the application's
//! audience, the subscription and preference reads, the delivery marks.
//!
//! ```sh
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p activity-nats --example notify_bench
//! ```
//!
//! `BENCH_ITEMS=1`: all 1,000 watchers on one item, so every entry fans out to 1,000
//! recipients (`BENCH_ENTRIES`, default 2,000, entries in all).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use activity_nats::notify::{
    self, Audience, BoxError, Channel, Depth, ItemAudience, Notification, Router, Visibility,
};
use activity_seaorm::ActivityEntry;
use sea_orm::ConnectionTrait;

const WATCHERS: u64 = 1_000;

struct Everyone;

#[async_trait::async_trait]
impl Audience for Everyone {
    async fn item(&self, entry: &ActivityEntry) -> Result<ItemAudience, BoxError> {
        let item = entry.item_id.clone().unwrap_or_default();
        Ok(ItemAudience::owned_by(format!("owner-{item}")).with_visibility(Visibility::Tenant))
    }

    async fn may_see(&self, _: &str, _: &ActivityEntry, _: Visibility) -> Result<bool, BoxError> {
        Ok(true)
    }
}

#[derive(Default)]
struct Count(AtomicU64);

#[async_trait::async_trait]
impl Channel for Count {
    async fn deliver(&self, _: &Notification) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("BENCH_DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    let entries: u64 = std::env::var("BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let items: u64 = std::env::var("BENCH_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .max(1);
    let mut options = sea_orm::ConnectOptions::new(url);
    options.max_connections(4).sqlx_logging(false);
    let db = sea_orm::Database::connect(options).await?;
    for table in [
        "activity_subscription",
        "activity_notification_preference",
        "activity_notification_delivery",
        "activity_notification_dead_letter",
    ] {
        db.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}"))
            .await?;
    }
    notify::create_tables(&db).await?;
    for user in 0..WATCHERS {
        let item = (user % items).to_string();
        notify::subscribe(
            &db,
            &notify::TenantKey::organization("acme"),
            &format!("u{user}"),
            "FeatureFlag",
            &item,
            Depth::Resource,
        )
        .await?;
    }
    let router = Router::new(Everyone);
    let channel = Count::default();
    let start = Instant::now();
    for n in 0..entries {
        let mut entry = ActivityEntry::new("FeatureFlag", "updated")
            .with_item_id((fastrand::u64(..items)).to_string());
        entry.organization_id = Some("acme".into());
        // The actor is one of the watchers now and then: never notified.
        entry.user_id = Some(format!("u{}", n % WATCHERS));
        notify::handle(&db, &router, &channel, entry).await?;
    }
    let elapsed = start.elapsed();
    let delivered = channel.0.load(Ordering::Relaxed);
    println!(
        "backend {:?}: {entries} entries, {delivered} notifications in {elapsed:.2?}: \
         {:.0} entries/s, {:.0} notifications/s ({WATCHERS} watchers over {items} items)",
        db.get_database_backend(),
        entries as f64 / elapsed.as_secs_f64(),
        delivered as f64 / elapsed.as_secs_f64(),
    );
    Ok(())
}
