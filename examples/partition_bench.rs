//! The retention benchmark: removing a month of entries from PostgreSQL, by `DELETE` +
//! `VACUUM` on the plain table against archive-and-drop on the partitioned one, same rows, same
//! run: time and WAL bytes of each.
//!
//! ```sh
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p activity-examples --example partition_bench
//! ```
//!
//! In a schema of its own (`partition_bench`, dropped at the end unless `BENCH_KEEP=1`) it fills
//! `activity_log` with `BENCH_ROWS` entries (default 1,000,000) in January 2025 and a tenth as
//! many in February, then removes January:
//!
//! - **plain table**: `ops::retention::prune` (the library's batched `DELETE`) then
//!   `VACUUM activity_log`;
//! - **partitioned** (`schema::partition`, months created with `create_partitions`):
//!   `ops::retention::archive_then_drop_partitions`, split into the archive (written, read back
//!   and verified, gzip) and the drop (the partition locked, its ids checked against the
//!   archive, detached and dropped in one transaction).
//!
//! WAL bytes are `pg_current_wal_lsn()` differences around each step. `BENCH_KEEP=1` keeps the
//! schema and the archive.

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use activity_examples::bench::{drop_schema, env_num, generated_entries, postgres_schema};
use activity_seaorm::ops::archive::{ArchiveCodec, ArchiveOptions, ArchiveStep};
use activity_seaorm::ops::retention::{archive_then_drop_partitions, prune};
use activity_seaorm::schema::partition;
use chrono::{TimeZone, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

const SCHEMA: &str = "partition_bench";

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

async fn lsn(db: &DatabaseConnection) -> Res<String> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_current_wal_lsn()::text AS lsn",
        ))
        .await?
        .ok_or("no lsn")?;
    Ok(row.try_get("", "lsn")?)
}

async fn wal_since(db: &DatabaseConnection, from: &str) -> Res<f64> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{from}')::float8 AS bytes"),
        ))
        .await?
        .ok_or("no lsn")?;
    Ok(row.try_get::<f64>("", "bytes")? / 1e6)
}

async fn fill(db: &DatabaseConnection, rows: usize) -> Res<()> {
    db.execute_unprepared(&generated_entries(rows, "2025-01-01 00:00:00+00", 0))
        .await?;
    db.execute_unprepared(&generated_entries(
        rows / 10,
        "2025-02-01 00:00:00+00",
        rows,
    ))
    .await?;
    db.execute_unprepared("VACUUM ANALYZE activity_log").await?;
    db.execute_unprepared("CHECKPOINT").await?;
    Ok(())
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::main]
async fn main() -> Res<()> {
    let rows = env_num("BENCH_ROWS", 1_000_000);
    // The retention's own split of the drop (check; detach and drop), at debug level.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .init();
    let (admin, db) = postgres_schema("partition_bench", SCHEMA, 2).await?;
    let february = Utc
        .with_ymd_and_hms(2025, 2, 1, 0, 0, 0)
        .single()
        .ok_or("date")?;

    // Plain table: batched DELETE, then VACUUM.
    activity_seaorm::schema::create_table(&db).await?;
    let t = Instant::now();
    fill(&db, rows).await?;
    println!(
        "plain table: {rows} + {} entries in {:.1} s",
        rows / 10,
        t.elapsed().as_secs_f64()
    );
    let start = lsn(&db).await?;
    let t = Instant::now();
    let deleted = prune(&db, february, &[]).await?;
    let delete_time = t.elapsed();
    let delete_wal = wal_since(&db, &start).await?;
    let start = lsn(&db).await?;
    let t = Instant::now();
    db.execute_unprepared("VACUUM activity_log").await?;
    let vacuum_time = t.elapsed();
    let vacuum_wal = wal_since(&db, &start).await?;
    activity_seaorm::schema::drop_table(&db).await?;

    // Partitioned: archive, then check, detach and drop.
    partition::partition_by_month(&db, Utc::now()).await?;
    partition::create_partitions(&db, february - chrono::Duration::days(1), february).await?;
    let t = Instant::now();
    fill(&db, rows).await?;
    println!(
        "partitioned: the same rows in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // The closed month's indexes packed (`pack_closed_months`), before it leaves retention.
    let january = partition::month_partition_name(february - chrono::Duration::days(1));
    let index_bytes = |db: DatabaseConnection, table: String| async move {
        let row = db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT pg_indexes_size('{table}')::float8 AS b"),
            ))
            .await?
            .ok_or("no size")?;
        Res::<f64>::Ok(row.try_get::<f64>("", "b")?)
    };
    let unpacked = index_bytes(db.clone(), january.clone()).await?;
    let start = lsn(&db).await?;
    let t = Instant::now();
    let packed_months =
        partition::pack_closed_months(&db, february + chrono::Duration::days(14)).await?;
    let pack_time = t.elapsed();
    let pack_wal = wal_since(&db, &start).await?;
    let packed = index_bytes(db.clone(), january.clone()).await?;
    println!(
        "pack_closed_months: {packed_months:?} in {}, {pack_wal:.1} MB of WAL; {january}'s \
         indexes {:.1} → {:.1} B per entry",
        secs(pack_time),
        unpacked / rows as f64,
        packed / rows as f64
    );
    let dir = std::env::temp_dir().join(format!("partition-bench-{}", std::process::id()));
    let marks: Arc<Mutex<Option<(Instant, String)>>> = Arc::default();
    let hook = {
        let (marks, db, handle) = (marks.clone(), db.clone(), tokio::runtime::Handle::current());
        move |step: ArchiveStep| {
            if step == ArchiveStep::ManifestWritten {
                let at = Instant::now();
                let now = tokio::task::block_in_place(|| handle.block_on(lsn(&db)))
                    .map_err(std::io::Error::other)?;
                if let Ok(mut slot) = marks.lock() {
                    *slot = Some((at, now));
                }
            }
            Ok(())
        }
    };
    // `BENCH_CODEC=gzip` for gzip; zstd otherwise.
    let codec = match std::env::var("BENCH_CODEC").as_deref() {
        Ok("gzip") => ArchiveCodec::Gzip,
        _ => ArchiveCodec::Zstd,
    };
    let archive_to = ArchiveOptions::new(&dir, "unused")
        .codec(codec)
        .on_step(hook);
    let start = lsn(&db).await?;
    let t = Instant::now();
    let dropped = archive_then_drop_partitions(&db, february, &archive_to).await?;
    let end = Instant::now();
    let total_wal = wal_since(&db, &start).await?;
    let (archived_at, archived_lsn) = marks
        .lock()
        .map_err(|_| "poisoned")?
        .clone()
        .ok_or("no manifest step")?;
    let drop_wal = wal_since(&db, &archived_lsn).await?;
    let one = dropped.first().ok_or("nothing dropped")?;
    let archived = one.archive.manifest.count;
    let bytes = one.archive.manifest.bytes;

    println!(
        "\n| removing January 2025 ({deleted} entries; {archived} on the partitioned log) | time | WAL |"
    );
    println!("|---|---|---|");
    println!(
        "| plain: `prune` (batched DELETE) | {} | {delete_wal:.1} MB |",
        secs(delete_time)
    );
    println!(
        "| plain: `VACUUM activity_log` | {} | {vacuum_wal:.1} MB |",
        secs(vacuum_time)
    );
    println!(
        "| plain: total | {} | {:.1} MB |",
        secs(delete_time + vacuum_time),
        delete_wal + vacuum_wal
    );
    println!(
        "| partitioned: archive (write, read back, verify; {codec:?}) | {} | {:.1} MB |",
        secs(archived_at - t),
        total_wal - drop_wal
    );
    println!(
        "| partitioned: check ids, detach, drop (one transaction) | {} | {drop_wal:.3} MB |",
        secs(end - archived_at)
    );
    println!(
        "\narchive: {bytes} bytes for {archived} entries = {:.1} bytes per entry ({codec:?} JSON lines)",
        bytes as f64 / archived.max(1) as f64
    );

    if std::env::var_os("BENCH_KEEP").is_none() {
        std::fs::remove_dir_all(&dir).ok();
    } else {
        println!("archive kept in {}", dir.display());
    }
    drop_schema(&admin, SCHEMA).await?;
    Ok(())
}
