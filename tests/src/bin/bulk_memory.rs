//! Child process of the memory test (`tests/write_memory.rs`) and of the 1M-row figure in
//! BENCHMARKS.md: seeds `<rows>` feature flags, then updates every one of them with a per-row
//! bulk inside one `activity_seaorm::transaction`, and prints the process's peak resident
//! memory before and after (Linux `VmHWM`), the entries written and the time taken.
//!
//! `bulk_memory <database-url> <schema or -> <rows>` (on an empty database: it creates the
//! tables).
//!
//! Output, one line: `rows=<n> entries=<n> seeded_hwm_kb=<kb> peak_hwm_kb=<kb> secs=<s>`.

use std::time::Instant;

use activity_seaorm::bulk::{BulkMode, ExecLogged};
use activity_tests::models::feature_flag;
use scoped_futures::ScopedFutureExt;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, PaginatorTrait};

/// Rows per seeding INSERT.
const SEED_CHUNK: usize = 1_000;

/// The process's peak resident set so far, in KiB.
fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, schema, rows] = &args[..] else {
        panic!("usage: bulk_memory <database-url> <schema or -> <rows>");
    };
    let rows: usize = rows.parse().expect("rows");
    let schema = (schema != "-").then_some(schema.as_str());
    let db = activity_tests::connect_sized(url, schema, 2).await;
    let backend = db.get_database_backend();
    // Idempotent: the test's database has them already; a fresh one for a manual run has not.
    activity_seaorm::schema::create_table(&db)
        .await
        .expect("create activity_log");
    activity_tests::models::create_tables(&db).await;

    // Seed without the log: plain multi-row INSERTs.
    let mut next = 0usize;
    while next < rows {
        let n = SEED_CHUNK.min(rows - next);
        let values: Vec<String> = (next..next + n)
            .map(|i| {
                format!(
                    "({}, 7, 'flag-{i}', {}, '{{}}', 's', '{{}}', NULL, 0, NULL)",
                    i + 1,
                    {
                        if backend == sea_orm::DbBackend::Postgres {
                            "true"
                        } else {
                            "1"
                        }
                    }
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO feature_flag (id, team_id, {key}, active, filters, webhook_secret, \
             config, description, cached_count, last_accessed_at) VALUES {}",
            values.join(", "),
            key = if backend == sea_orm::DbBackend::MySql {
                "`key`"
            } else {
                "\"key\""
            },
        );
        db.execute_unprepared(&sql).await.expect("seed");
        next += n;
    }
    let seeded = peak_rss_kb();

    let started = Instant::now();
    let updated = activity_seaorm::transaction(&db, |txn| {
        async move {
            feature_flag::Entity::update_many()
                .set(feature_flag::ActiveModel {
                    description: Set(Some("reviewed".to_owned())),
                    ..Default::default()
                })
                .exec_logged(txn, BulkMode::PerRow)
                .await
        }
        .scope_boxed()
    })
    .await
    .expect("per-row bulk in one transaction");
    let secs = started.elapsed().as_secs_f64();
    let peak = peak_rss_kb();
    assert_eq!(updated as usize, rows, "every row updated");
    let entries = activity_seaorm::schema::activity_log::Entity::find()
        .count(&db)
        .await
        .expect("count entries");
    println!(
        "rows={rows} entries={entries} seeded_hwm_kb={seeded} peak_hwm_kb={peak} secs={secs:.1}"
    );
}
