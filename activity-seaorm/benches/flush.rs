//! Criterion: the commit-time flush of 1, 100 and 10,000 entries on SQLite (in memory), and on
//! PostgreSQL when `BENCH_DATABASE_URL` is set.
//!
//! `cargo bench -p activity-seaorm --bench flush`

use activity_seaorm::entry::{Change, ChangeAction};
use activity_seaorm::prelude::ScopedFutureExt;
use activity_seaorm::{ActivityEntry, bulk_log_activity, transaction};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbErr};
use serde_json::json;

fn entries(n: usize) -> Vec<ActivityEntry> {
    (0..n)
        .map(|i| {
            let mut e = ActivityEntry::new("FeatureFlag", "updated")
                .with_item_id(i.to_string())
                .with_name(format!("flag-{i}"))
                .with_changes(vec![Change::new(
                    "FeatureFlag",
                    ChangeAction::Changed,
                    Some("enabled"),
                    json!(false),
                    json!(true),
                )]);
            e.team_id = Some("7".into());
            e
        })
        .collect()
}

async fn flush(db: &DatabaseConnection, batch: Vec<ActivityEntry>) -> Result<(), DbErr> {
    transaction(db, |txn| {
        async move { bulk_log_activity(txn, batch).await }.scope_boxed()
    })
    .await
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut targets = vec![("sqlite", "sqlite::memory:".to_owned())];
    if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
        targets.push(("postgres", url));
    }
    for (name, url) in targets {
        let db = rt.block_on(async {
            let db = Database::connect(&url).await.unwrap();
            activity_seaorm::schema::drop_table(&db).await.unwrap();
            activity_seaorm::schema::create_table(&db).await.unwrap();
            db
        });
        let mut group = c.benchmark_group(format!("flush/{name}"));
        group.sample_size(10);
        for n in [1usize, 100, 10_000] {
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
                b.iter_batched(
                    || entries(n),
                    |batch| rt.block_on(flush(&db, batch)).unwrap(),
                    criterion::BatchSize::LargeInput,
                );
            });
        }
        group.finish();
        rt.block_on(async {
            db.execute_unprepared("DELETE FROM activity_log")
                .await
                .unwrap()
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
