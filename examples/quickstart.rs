//! The quick start: a short story on embedded SQLite, then the activity feed.
//!
//! Run with `cargo run -p activity-examples --example quickstart [PATH.db]`; set `DATABASE_URL`
//! to run it on PostgreSQL or MySQL instead.

use activity_examples::{create_tables, feature_flag};
use activity_seaorm::prelude::*;
use activity_seaorm::{activity_log, log_activity, transaction};
use sea_orm::{ActiveModelTrait, Database, DbErr, EntityTrait, NotSet, QueryOrder, Set};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), DbErr> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        let path = std::env::args().nth(1).map_or_else(
            || std::env::temp_dir().join("activity-quickstart.db"),
            std::path::PathBuf::from,
        );
        let _ = std::fs::remove_file(&path);
        format!("sqlite://{}?mode=rwc", path.display())
    });
    let db = Database::connect(&url).await?;
    create_tables(&db).await?;

    // 1. alice creates a flag, then turns it on: both in one transaction, one log INSERT.
    let alice =
        ActivityContext::for_user(Actor::new("1").with_name("alice")).with_request_id("req-1");
    let flag = ActivityContext::scope(alice, async {
        transaction(&db, |txn| {
            async move {
                let flag = feature_flag::ActiveModel {
                    id: NotSet,
                    team_id: Set(7),
                    key: Set("beta-checkout".into()),
                    active: Set(false),
                    filters: Set(json!({"rollout": 10})),
                    webhook_secret: Set("whsec_live_123".into()),
                    cached_count: Set(0),
                    last_accessed_at: Set(None),
                }
                .insert(txn)
                .await?;
                let mut tracked = track(flag); // no before-read on update
                tracked.active = Set(true);
                tracked.update(txn).await
            }
            .scope_boxed()
        })
        .await
    })
    .await?;

    // 2. A support agent impersonates alice and widens the rollout.
    let support = ActivityContext::impersonating(
        Actor::new("1").with_name("alice"),
        Actor::new("staff-9").with_name("sam"),
    );
    let flag = ActivityContext::scope(support, async {
        let mut tracked = track(flag);
        tracked.filters = Set(json!({"rollout": 50}));
        tracked.update(&db).await
    })
    .await?;

    // 3. A scheduled job rotates the webhook secret, as the system.
    let job = ActivityContext::system().with_trigger(Trigger::new("rotate_secrets", "run-42"));
    ActivityContext::scope(job, async {
        let mut tracked = track(flag);
        tracked.webhook_secret = Set("whsec_live_456".into());
        tracked.update(&db).await
    })
    .await?;

    // 4. A bulk import runs muted, and records one summary entry instead.
    {
        let _muted = mute_signals();
        for i in 0..100 {
            feature_flag::ActiveModel {
                id: NotSet,
                team_id: Set(7),
                key: Set(format!("imported-{i}")),
                active: Set(false),
                filters: Set(json!({})),
                webhook_secret: Set(String::new()),
                cached_count: Set(0),
                last_accessed_at: Set(None),
            }
            .insert(&db)
            .await?;
        }
    }
    log_activity(
        &db,
        ActivityEntry::new("FeatureFlag", "imported").with_name("100 flags"),
    )
    .await?;

    // The feed, newest first.
    let feed = activity_log::Entity::find()
        .order_by_desc(activity_log::Column::CreatedAt)
        .order_by_desc(activity_log::Column::Id)
        .all(&db)
        .await?;
    println!("Activity feed ({} entries):", feed.len());
    for row in feed {
        let entry: ActivityEntry = row.into();
        println!(
            "  {}  {}",
            entry.created_at.format("%H:%M:%S%.3f"),
            describe(&entry)
        );
    }
    Ok(())
}
