//! The scale harness: the reads users make, timed on a PostgreSQL log of `BENCH_ROWS` entries,
//! plain or partitioned by month, for the curves at 1M, 10M, … entries.
//!
//! ```sh
//! BENCH_ROWS=1000000 BENCH_LAYOUT=partitioned BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p activity-examples --example scale_bench
//! ```
//!
//! In the schema `scale_bench` (dropped first, and at the end unless `BENCH_KEEP=1`) it
//! generates the rows with the read benchmark's generator (`examples/sql/seed_activity_log.sql`:
//! 2025, 200 teams in 40 organizations, 2,000 users, one hot item of `BENCH_HOT_ROWS` entries,
//! default 200,000, spread over the year; `detail` in the library's compact form), with every
//! index in place, one statement per `BENCH_SLICE` entries (default 1,000,000: consecutive
//! stretches of the year, so the rows go in in time order as a live log's do), then
//! `VACUUM ANALYZE`.
//! `BENCH_LAYOUT=partitioned` partitions the empty log by month first
//! (`schema::partition::partition_by_month`, then `create_partitions` for 2025).
//! Each figure is the median of `BENCH_REPS` (default 50) runs after 3 warm-up runs, client
//! wall time, through the library (`load_activity`, `activity_report`); then one erasure
//! (`anonymize_user` of a user-scope item) and, for comparison, the statement its pass on that
//! item was before (a scan), each timed once.

use std::error::Error;
use std::time::{Duration, Instant};

use activity_examples::bench::{drop_schema, env_num, kept_schema, postgres_schema};
use activity_seaorm::ops::report::{ReportDimension, activity_report};
use activity_seaorm::query::{FilterOp, Page};
use activity_seaorm::schema::partition;
use activity_seaorm::{ActivityQuery, load_activity};
use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

const SCHEMA: &str = "scale_bench";

type Res<T> = Result<T, Box<dyn Error>>;

async fn median<F, Fut, T>(reps: usize, mut f: F) -> Res<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Res<T>>,
{
    for _ in 0..3 {
        std::hint::black_box(f().await?);
    }
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        std::hint::black_box(f().await?);
        samples.push(t.elapsed());
    }
    samples.sort();
    Ok(samples[samples.len() / 2])
}

async fn page(db: &DatabaseConnection, q: &ActivityQuery) -> Res<Page> {
    Ok(load_activity(db, q).await?)
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> Res<f64> {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
        .await?
        .ok_or("no row")?;
    Ok(row.try_get_by_index::<f64>(0)?)
}

/// Midnight UTC of a date of the generated year.
fn date(y: i32, m: u32, d: u32) -> Res<DateTime<Utc>> {
    Ok(Utc
        .with_ymd_and_hms(y, m, d, 0, 0, 0)
        .single()
        .ok_or("date")?)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Res<()> {
    let rows = env_num("BENCH_ROWS", 1_000_000);
    let hot = env_num("BENCH_HOT_ROWS", 200_000).min(rows);
    let reps = env_num("BENCH_REPS", 50).max(1);
    let partitioned = std::env::var("BENCH_LAYOUT").is_ok_and(|v| v == "partitioned");
    if hot <= 99_900 {
        return Err("BENCH_HOT_ROWS must be > 99,900 for page 1000".into());
    }
    // `BENCH_REUSE=1`: time the reads again on the log a `BENCH_KEEP=1` run left.
    if std::env::var_os("BENCH_REUSE").is_some() {
        let db = kept_schema(SCHEMA, 1).await.map_err(|e| e.to_string())?;
        return reads(&db, rows, reps, "reused").await;
    }
    let (admin, db) = postgres_schema("scale_bench", SCHEMA, 1)
        .await
        .map_err(|e| e.to_string())?;
    let result = run(&db, rows, hot, reps, partitioned).await;
    drop_schema(&admin, SCHEMA).await?;
    result
}

async fn run(
    db: &DatabaseConnection,
    rows: usize,
    hot: usize,
    reps: usize,
    partitioned: bool,
) -> Res<()> {
    let t = Instant::now();
    if partitioned {
        partition::partition_by_month(db, Utc::now()).await?;
        partition::create_partitions(db, date(2025, 1, 1)?, date(2025, 12, 1)?).await?;
    } else {
        activity_seaorm::schema::create_table(db).await?;
    }
    // In slices of the year, in time order: each statement's sort stays in memory and the
    // indexes it touches are one stretch of the year's (one month's, once partitioned).
    let seed = include_str!("sql/seed_activity_log.sql")
        .replace("{rows}", &rows.to_string())
        .replace("{hot}", &hot.to_string());
    let slice = env_num("BENCH_SLICE", 1_000_000).max(1);
    let mut first = 1;
    while first <= rows {
        let last = (first + slice - 1).min(rows);
        let sql = seed
            .replace("{first}", &first.to_string())
            .replace("{last}", &last.to_string());
        db.execute_unprepared(&sql).await?;
        first = last + 1;
    }
    let load = t.elapsed();
    let t = Instant::now();
    db.execute_unprepared("VACUUM ANALYZE activity_log").await?;
    let layout = if partitioned {
        "partitioned by month"
    } else {
        "plain"
    };
    println!(
        "{rows} entries, {layout}: generated in {:.0} s, VACUUM ANALYZE {:.0} s",
        load.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    // A partitioned table's size is its partitions'.
    let relations = "(SELECT 'activity_log'::regclass AS r UNION ALL \
         SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'activity_log'::regclass)";
    let total = scalar(
        db,
        &format!("SELECT sum(pg_total_relation_size(r))::float8 FROM {relations} AS x"),
    )
    .await?;
    let indexes = scalar(
        db,
        &format!("SELECT sum(pg_indexes_size(r))::float8 FROM {relations} AS x"),
    )
    .await?;
    println!(
        "storage: {:.2} GB, {:.0} bytes per entry ({:.0} in indexes)",
        total / 1e9,
        total / rows as f64,
        indexes / rows as f64
    );

    reads(db, rows, reps, layout).await
}

/// The timed reads, then the erasure (of `BENCH_ERASE_USER`, default `17`).
async fn reads(db: &DatabaseConnection, rows: usize, reps: usize, layout: &str) -> Res<()> {
    let hot = scalar(
        db,
        "SELECT count(*)::float8 FROM activity_log \
         WHERE team_id = 'team-7' AND scope = 'Scope3' AND item_id = 'hot'",
    )
    .await?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut figures: Vec<(String, Duration)> = Vec::new();

    let item = ActivityQuery::for_team("team-7")
        .item("Scope3", "hot")
        .limit(100);
    figures.push((
        format!("item page 1 ({hot:.0} entries)"),
        median(reps, || page(db, &item)).await?,
    ));
    let mut deep = item.clone();
    for n in 1..1000 {
        let next = page(db, &deep)
            .await?
            .next_cursor
            .ok_or_else(|| format!("the item's history ended at page {n}"))?;
        deep = item.clone().after(next);
    }
    figures.push((
        "item page 1000 (by cursor)".into(),
        median(reps, || page(db, &deep)).await?,
    ));
    let team = ActivityQuery::for_team("team-42").limit(100);
    figures.push((
        "team feed page 1".into(),
        median(reps, || page(db, &team)).await?,
    ));
    let org = ActivityQuery::for_organization("org-12").limit(100);
    figures.push((
        "organization feed page 1".into(),
        median(reps, || page(db, &org)).await?,
    ));
    let actor = ActivityQuery::for_organization("org-12")
        .users(["user-17"])
        .limit(100);
    figures.push((
        "actor filter (one user in an organization) page 1".into(),
        median(reps, || page(db, &actor)).await?,
    ));
    let detail = ActivityQuery::for_team("team-42")
        .detail_filter("changes[].field", FilterOp::Exact("enabled".into()))
        .limit(100);
    figures.push((
        "detail filter (`changes[].field = enabled`, a team) page 1".into(),
        median(reps, || page(db, &detail)).await?,
    ));
    let march = ActivityQuery::for_organization("org-12").between(
        Some(date(2025, 3, 1)?),
        Some(date(2025, 4, 1)? - chrono::Duration::microseconds(1)),
    );
    let dims = [ReportDimension::Day, ReportDimension::Activity];
    figures.push((
        "`activity_report`, one organization's month by day and activity".into(),
        median(reps, || async {
            Ok::<_, Box<dyn Error>>(activity_report(db, &march, &dims).await?)
        })
        .await?,
    ));

    // Erasure of a user whose record is an item of a user scope (`Scope5` here: the user `17`
    // is the item of ~1 in 250,000 entries, in any team): once through the library (a walk
    // finds the teams, 500 a statement, and one statement reads the item in all of them), and
    // the statement its about-pass was before (the item
    // without its team: no index leads with it), timed once on the same warm table.
    let user = std::env::var("BENCH_ERASE_USER").unwrap_or_else(|_| "17".into());
    let old_pass = format!(
        "SELECT * FROM activity_log WHERE scope IN ('Scope5') AND item_id = '{user}' \
         ORDER BY created_at, id LIMIT 500"
    );
    let t = Instant::now();
    db.query_all_raw(Statement::from_string(DbBackend::Postgres, old_pass))
        .await?;
    let scan = t.elapsed();
    let t = Instant::now();
    let erased = activity_seaorm::ActivityConfig::new()
        .with_erasure_key([7u8; 32])
        .with_user_scopes(["Scope5"])
        .scope(activity_seaorm::ops::erasure::anonymize_user(db, &user))
        .await?;
    figures.push((
        format!("`anonymize_user`, a user-scope item ({erased} entries rewritten)"),
        t.elapsed(),
    ));
    figures.push((
        "the about-pass's statement before (item without team: a scan; the erasure ran it twice)"
            .into(),
        scan,
    ));

    println!("\n| read ({rows} entries, {layout}) | median |");
    println!("|---|---:|");
    for (label, d) in figures {
        println!("| {label} | {:.2} ms |", ms(d));
    }
    Ok(())
}
