//! The report benchmark: `activity_report` for one organization's month on a 1,000,000-row
//! `activity_log` in PostgreSQL, with the `EXPLAIN (ANALYZE, BUFFERS)` plan of the statement it
//! sends (issue 17's target: < 50 ms).
//!
//! ```sh
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p activity-examples --example report_bench
//! ```
//! It creates the schema `report_bench` (dropped first, and again at the end unless
//! `BENCH_KEEP=1`), generates the rows with the read benchmark's generator
//! (`examples/sql/seed_activity_log.sql`: 200 teams in 40 organizations over 2025, one hot team
//! `team-7` of `org-7`), runs `VACUUM ANALYZE`, then times each report `BENCH_REPS` times
//! (default 50) after 3 warm-up runs. Options (env): `BENCH_ROWS` (default 1,000,000).

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use activity_seaorm::ActivityQuery;
use activity_seaorm::ops::report::{ReportDimension, activity_report};
use chrono::{TimeZone, Utc};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DbBackend, Statement};

const SCHEMA: &str = "report_bench";

type Res<T> = Result<T, Box<dyn Error>>;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Res<()> {
    let url = std::env::var("BENCH_DATABASE_URL")
        .map_err(|_| "set BENCH_DATABASE_URL to a PostgreSQL URL (postgres://…)")?;
    let rows = env_num("BENCH_ROWS", 1_000_000);
    let reps = env_num("BENCH_REPS", 50).max(1);
    let admin = Database::connect(&url).await?;
    if admin.get_database_backend() != DbBackend::Postgres {
        return Err("report_bench needs PostgreSQL".into());
    }
    admin
        .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .await?;
    admin
        .execute_unprepared(&format!("CREATE SCHEMA {SCHEMA}"))
        .await?;
    let mut opts = ConnectOptions::new(url.clone());
    opts.max_connections(1)
        .min_connections(1)
        .sqlx_logging(false)
        .set_schema_search_path(SCHEMA.to_owned());
    let mut db = Database::connect(opts).await?;
    let captured: Arc<Mutex<Option<Statement>>> = Arc::default();
    let sink = captured.clone();
    db.set_metric_callback(move |info| {
        if let Ok(mut slot) = sink.lock() {
            *slot = Some(info.statement.clone());
        }
    });

    let t = Instant::now();
    activity_seaorm::schema::create_table(&db).await?;
    let seed = include_str!("sql/seed_activity_log.sql")
        .replace("{rows}", &rows.to_string())
        .replace("{first}", "1")
        .replace("{last}", &rows.to_string())
        .replace("{hot}", &(rows / 5).to_string());
    db.execute_unprepared(&seed).await?;
    db.execute_unprepared("VACUUM ANALYZE activity_log").await?;
    println!("built {rows} rows in {:.1} s", t.elapsed().as_secs_f64());

    let march = (
        Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0)
            .single()
            .ok_or("date")?,
        Utc.with_ymd_and_hms(2025, 3, 31, 23, 59, 59)
            .single()
            .ok_or("date")?
            + chrono::Duration::microseconds(999_999),
    );
    use ReportDimension::{Activity, Day, User};
    let cases: [(&str, &[ReportDimension]); 4] = [
        ("org-12", &[Day, Activity]),
        ("org-12", &[]),
        ("org-12", &[User]),
        ("org-7", &[Day, Activity]),
    ];
    for (org, dims) in cases {
        let query = ActivityQuery::for_organization(org).between(Some(march.0), Some(march.1));
        let mut report = Vec::new();
        for _ in 0..3 {
            report = activity_report(&db, &query, dims).await?;
        }
        let mut samples = Vec::with_capacity(reps);
        for _ in 0..reps {
            let t = Instant::now();
            std::hint::black_box(activity_report(&db, &query, dims).await?);
            samples.push(t.elapsed());
        }
        samples.sort();
        let median = samples[samples.len() / 2];
        let p95 = samples[(samples.len() * 95 / 100).min(samples.len() - 1)];
        let entries: u64 = report.iter().map(|r| r.count).sum();
        println!(
            "\n## {org}, March 2025, group by {dims:?}: {} groups, {entries} entries; median {}, p95 {}",
            report.len(),
            ms(median),
            ms(p95)
        );
        let stmt = captured
            .lock()
            .map_err(|_| "poisoned")?
            .clone()
            .ok_or("no statement captured")?;
        println!("{}", stmt.sql);
        let explain = Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("EXPLAIN (ANALYZE, BUFFERS) {}", stmt.sql),
            stmt.values.clone().map(|v| v.0).unwrap_or_default(),
        );
        for row in db.query_all_raw(explain).await? {
            let line: String = row.try_get("", "QUERY PLAN")?;
            println!("    {line}");
        }
    }

    if std::env::var_os("BENCH_KEEP").is_none() {
        admin
            .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            .await?;
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
