//! A nightly job: recompute a counter on 50,000 flags, muted, then record one summary entry.
//! Prints how long the same job takes muted and unmuted (every row logged).
//!
//! Run with `cargo run --release -p activity-examples --example bulk_job` (SQLite in a temp dir,
//! or `DATABASE_URL`; `ROWS` sets the row count).

use std::time::Instant;

use activity_examples::{create_tables, feature_flag};
use activity_seaorm::prelude::*;
use activity_seaorm::{log_activity, transaction};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, Set,
};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), DbErr> {
    let rows: usize = std::env::var("ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50_000);
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        let path = std::env::temp_dir().join("activity-bulk-job.db");
        let _ = std::fs::remove_file(&path);
        format!("sqlite://{}?mode=rwc", path.display())
    });
    let db = Database::connect(&url).await?;
    create_tables(&db).await?;
    db.execute_unprepared("DELETE FROM feature_flag").await?;
    seed(&db, rows).await?;

    let job = ActivityContext::system().with_trigger(Trigger::new("recount", "nightly-1"));
    let muted = ActivityContext::scope(job.clone(), async {
        let start = Instant::now();
        let updated = mute_signals_in(recount(&db, 1)).await?;
        let elapsed = start.elapsed();
        // One entry says what the job did, instead of 50,000.
        let summary = ActivityEntry::new("FeatureFlag", "recounted")
            .with_name(format!("{updated} flags"))
            .with_detail(activity_seaorm::entry::Detail {
                context: Some(json!({"rows": updated, "seconds": elapsed.as_secs_f64()})),
                ..Default::default()
            });
        log_activity(&db, summary).await?;
        Ok::<_, DbErr>(elapsed)
    })
    .await?;
    let entries_before = activity_seaorm::activity_log::Entity::find()
        .count(&db)
        .await?;

    let unmuted = ActivityContext::scope(job, async {
        let start = Instant::now();
        recount(&db, 2).await?;
        Ok::<_, DbErr>(start.elapsed())
    })
    .await?;
    let entries_after = activity_seaorm::activity_log::Entity::find()
        .count(&db)
        .await?;

    println!("{rows} rows recounted");
    println!("  muted:   {muted:>10.2?}  ({entries_before} log entry: the summary)");
    println!(
        "  unmuted: {unmuted:>10.2?}  ({} log entries, one per row)",
        entries_after - entries_before
    );
    println!(
        "  unmuted / muted = {:.2}",
        unmuted.as_secs_f64() / muted.as_secs_f64()
    );
    Ok(())
}

async fn seed(db: &DatabaseConnection, rows: usize) -> Result<(), DbErr> {
    let _muted = mute_signals();
    let all: Vec<feature_flag::ActiveModel> = (0..rows)
        .map(|i| feature_flag::ActiveModel {
            team_id: Set(7),
            key: Set(format!("flag-{i}")),
            active: Set(i % 2 == 0),
            filters: Set(json!({})),
            webhook_secret: Set(String::new()),
            cached_count: Set(0),
            last_accessed_at: Set(None),
            ..Default::default()
        })
        .collect();
    for chunk in all.chunks(500) {
        feature_flag::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// The job: load every flag and write its recomputed counter, in transactions of 1,000 rows.
/// `cached_count` is excluded from the log, so to show the cost of logging every row the job
/// also bumps `filters.generation` (a logged field).
async fn recount(db: &DatabaseConnection, generation: i64) -> Result<usize, DbErr> {
    let flags = feature_flag::Entity::find().all(db).await?;
    let total = flags.len();
    for chunk in flags.chunks(1_000) {
        let chunk = chunk.to_vec();
        transaction(db, |txn| {
            async move {
                for flag in chunk {
                    let count = flag.key.len() as i32 * 3;
                    // The rows are loaded already: `track` spares the hook its before-read.
                    let mut am = track(flag);
                    am.cached_count = Set(count);
                    am.filters = Set(json!({"generation": generation}));
                    am.update(txn).await?;
                }
                Ok::<_, DbErr>(())
            }
            .scope_boxed()
        })
        .await?;
    }
    Ok(total)
}
