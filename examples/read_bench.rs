//! The read-path benchmark: `load_activity` on a 1,000,000-row `activity_log` in PostgreSQL
//! (the target: a page of 100 for one item < 5 ms, and page 1000 as fast as page 1), the team
//! feed, the same pages for a member under a read policy of three rules, streaming export
//! memory, and storage per row.
//!
//! ```sh
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p activity-examples --example read_bench
//! ```
//! It creates the schema `read_bench` (dropped first if it exists, and again at the end unless
//! `BENCH_KEEP=1`), generates the rows in one `INSERT … SELECT … generate_series` in time order
//! with every index in place, and runs `VACUUM ANALYZE`. Options (env): `BENCH_ROWS` (default
//! 1,000,000), `BENCH_HOT_ROWS` (entries of the one hot item, default 200,000), `BENCH_REPS`
//! (timed repetitions per figure, default 100), `BENCH_EXPORT_ROWS` (default 200,000).

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use activity_seaorm::ops::export::export_csv;
use activity_seaorm::policy::{EntryCondition, VisibilityRule};
use activity_seaorm::query::Page;
use activity_seaorm::{ActivityConfig, ActivityQuery, ReadPolicy, Reader, load_activity};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde_json::Value as Json;

const SCHEMA: &str = "read_bench";
const HOT_TEAM: &str = "team-7";
const HOT_SCOPE: &str = "Scope3";
const HOT_ITEM: &str = "hot";
/// A typical team (~`rows / 200` entries).
const TYPICAL_TEAM: &str = "team-42";
const PAGE: usize = 100;
const DEEP_PAGE: usize = 1000;

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
    let hot = env_num("BENCH_HOT_ROWS", 200_000).min(rows);
    let reps = env_num("BENCH_REPS", 100).max(1);
    let export_rows = env_num("BENCH_EXPORT_ROWS", 200_000).min(hot);
    if hot < PAGE * (DEEP_PAGE - 1) + 1 {
        return Err(format!(
            "BENCH_HOT_ROWS must be > {} for page {DEEP_PAGE}",
            PAGE * (DEEP_PAGE - 1)
        )
        .into());
    }

    let admin = Database::connect(&url).await?;
    if admin.get_database_backend() != DbBackend::Postgres {
        return Err("read_bench needs PostgreSQL".into());
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
        *sink.lock().unwrap() = Some(info.statement.clone());
    });

    let result = run(&db, &captured, rows, hot, reps, export_rows).await;
    let _ = db.close().await;
    if std::env::var_os("BENCH_KEEP").is_none() {
        admin
            .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            .await?;
        println!("\nschema {SCHEMA} dropped");
    } else {
        println!("\nschema {SCHEMA} kept (BENCH_KEEP)");
    }
    result
}

async fn run(
    db: &DatabaseConnection,
    captured: &Mutex<Option<Statement>>,
    rows: usize,
    hot: usize,
    reps: usize,
    export_rows: usize,
) -> Res<()> {
    println!("{}", scalar_text(db, "SELECT version()").await?);
    println!(
        "rows {rows}, hot item {HOT_TEAM}/{HOT_SCOPE}/{HOT_ITEM} with {hot} entries, page size {PAGE}, {reps} timed repetitions per figure\n"
    );

    // -- build ----------------------------------------------------------------------------
    let t = Instant::now();
    activity_seaorm::schema::create_table(db).await?;
    db.execute_unprepared(&seed_sql(rows as i64, hot as i64))
        .await?;
    let load = t.elapsed();
    let t = Instant::now();
    db.execute_unprepared("VACUUM ANALYZE activity_log").await?;
    println!(
        "built: INSERT … generate_series of {rows} rows with indexes in place {:.1} s, VACUUM ANALYZE {:.1} s",
        load.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    let storage = storage(db).await?;
    println!("{storage}");

    // -- item history ---------------------------------------------------------------------
    let item = ActivityQuery::for_team(HOT_TEAM)
        .item(HOT_SCOPE, HOT_ITEM)
        .limit(PAGE);
    let (page1, page1_stmt) = timed(db, captured, &item, reps).await?;

    // Follow the cursors to page 1000 (one sample per page, reported at a few depths).
    let mut query = item.clone();
    let mut walk = Vec::with_capacity(DEEP_PAGE);
    let mut last_seen = None;
    let walk_start = Instant::now();
    for n in 1..DEEP_PAGE {
        let t = Instant::now();
        let page = load_activity(db, &query).await?;
        walk.push((n, t.elapsed()));
        last_seen = page.results.last().map(|e| (e.created_at, e.id));
        let cursor = page
            .next_cursor
            .ok_or_else(|| format!("item history ended at page {n}"))?;
        query = item.clone().after(cursor);
    }
    let walk_total = walk_start.elapsed();
    let (deep, deep_stmt) = timed(db, captured, &query, reps).await?;
    let deep_page = load_activity(db, &query).await?;
    if deep_page.results.len() != PAGE {
        return Err(format!("page {DEEP_PAGE} has {} rows", deep_page.results.len()).into());
    }
    // Reference, not the library: the same page with the bound as a row comparison
    // `(created_at, id) < ($t, $id)`, which PostgreSQL applies inside the index scan.
    let (at, id) = last_seen.ok_or("empty page 999")?;
    let mut samples = Vec::with_capacity(reps);
    for i in 0..reps + 5 {
        let t = Instant::now();
        let rows = row_value_page(db, at, id).await?;
        if i >= 5 {
            samples.push(t.elapsed());
        }
        let ids: Vec<_> = rows.iter().map(|e| e.id).collect();
        let expected: Vec<_> = deep_page.results.iter().map(|e| e.id).collect();
        if ids[..PAGE] != expected[..] {
            return Err("the row-value page differs from load_activity's page 1000".into());
        }
    }
    let reference = stats(samples);

    // -- team feed ------------------------------------------------------------------------
    let typical = ActivityQuery::for_team(TYPICAL_TEAM).limit(PAGE);
    let (feed, feed_stmt) = timed(db, captured, &typical, reps).await?;
    let hot_team = ActivityQuery::for_team(HOT_TEAM).limit(PAGE);
    let (hot_feed, _) = timed(db, captured, &hot_team, reps).await?;
    let typical_rows = scalar_text(
        db,
        &format!("SELECT count(*)::text FROM activity_log WHERE team_id = '{TYPICAL_TEAM}'"),
    )
    .await?;

    // -- the same reads under a read policy of three rules, for a member ------------------
    // Rules that hide rows of this data set: impersonated entries (about 1%), one scope's
    // entries but for the item's own user, and system entries (5%) but for their actor.
    let policy = ReadPolicy::new()
        .hide(VisibilityRule::new("impersonated").when_impersonated())
        .hide(
            VisibilityRule::new("accounts")
                .scopes(["Scope1"])
                .visible_to_subject(),
        )
        .hide(
            VisibilityRule::new("system")
                .when(EntryCondition::IsSystem(true))
                .hidden_from_staff()
                .visible_to_actor(),
        );
    let member = Reader::member("user-1").in_team(HOT_TEAM);
    let config = ActivityConfig::new().with_read_policy(policy);
    let (p_item, p_item_stmt, p_feed, p_hot) = ActivityConfig::scope(config, async {
        let (p_item, p_item_stmt) =
            timed(db, captured, &item.clone().reader(member.clone()), reps).await?;
        let (p_feed, _) =
            timed(db, captured, &typical.clone().reader(member.clone()), reps).await?;
        let (p_hot, _) =
            timed(db, captured, &hot_team.clone().reader(member.clone()), reps).await?;
        Ok::<_, Box<dyn Error>>((p_item, p_item_stmt, p_feed, p_hot))
    })
    .await?;

    println!("\nload_activity, page of {PAGE}, client-side wall time (ms):");
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8}",
        "", "median", "min", "p95", "max"
    );
    for (label, s) in [
        (format!("item history page 1 ({hot} entries)"), &page1),
        (
            format!("item history page {DEEP_PAGE} (same cursor)"),
            &deep,
        ),
        (
            format!("  reference: page {DEEP_PAGE}, row-value keyset"),
            &reference,
        ),
        (
            format!("team feed page 1 ({TYPICAL_TEAM}, {typical_rows} rows)"),
            &feed,
        ),
        (
            format!("team feed page 1 ({HOT_TEAM}, hot team)"),
            &hot_feed,
        ),
        (
            "read policy, 3 rules, member: item page 1".to_owned(),
            &p_item,
        ),
        (
            format!("read policy: team feed page 1 ({TYPICAL_TEAM})"),
            &p_feed,
        ),
        (
            format!("read policy: team feed page 1 ({HOT_TEAM})"),
            &p_hot,
        ),
    ] {
        println!(
            "{label:<44} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            ms(s.median),
            ms(s.min),
            ms(s.p95),
            ms(s.max)
        );
    }
    println!(
        "ratio page {DEEP_PAGE} / page 1 (medians): {:.2}",
        deep.median.as_secs_f64() / page1.median.as_secs_f64()
    );
    println!(
        "  reference (row-value keyset, same page, same decoding) / page 1: {:.2}",
        reference.median.as_secs_f64() / page1.median.as_secs_f64()
    );
    println!(
        "cursor walk pages 1..{}: {:.2} s total; single samples by depth (ms):",
        DEEP_PAGE - 1,
        walk_total.as_secs_f64()
    );
    let marks = [1, 2, 10, 100, 250, 500, 750, 999];
    let line: Vec<String> = walk
        .iter()
        .filter(|(n, _)| marks.contains(n))
        .map(|(n, d)| format!("p{n} {:.2}", ms(*d)))
        .collect();
    println!("  {}", line.join(", "));

    println!("\nEXPLAIN (ANALYZE, BUFFERS) of the SQL load_activity sent:");
    for (label, stmt) in [
        ("item history page 1", &page1_stmt),
        ("item history page 1000", &deep_stmt),
        ("team feed page 1", &feed_stmt),
        ("item history page 1, read policy", &p_item_stmt),
    ] {
        println!("{label}: {}", explain_summary(db, stmt).await?);
    }

    // -- export ---------------------------------------------------------------------------
    export(db, &item, export_rows).await?;
    Ok(())
}

/// The hot item's page after `(at, id)`, newest first, with a row-value keyset bound (and the
/// plain one beside it), decoded
/// like `load_activity` does (one row more than the page, as it asks).
async fn row_value_page(
    db: &DatabaseConnection,
    at: DateTime<Utc>,
    id: sea_orm::prelude::Uuid,
) -> Res<Vec<activity_seaorm::ActivityEntry>> {
    use activity_seaorm::activity_log::{Column, Entity};
    let rows = Entity::find()
        .filter(Column::TeamId.eq(HOT_TEAM))
        .filter(Column::Scope.eq(HOT_SCOPE))
        .filter(Column::ItemId.eq(HOT_ITEM))
        .filter(Expr::cust_with_values(
            r#"("activity_log"."created_at", "activity_log"."id") < ($1, $2)"#,
            [sea_orm::Value::from(at), sea_orm::Value::from(id)],
        ))
        // As `load_activity` sends it: the plain bound beside the row one prunes partitions.
        .filter(Column::CreatedAt.lte(at))
        .order_by_desc(Column::CreatedAt)
        .order_by_desc(Column::Id)
        .limit((PAGE + 1) as u64)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

struct Stats {
    median: Duration,
    min: Duration,
    p95: Duration,
    max: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Stats {
        median: at(0.5),
        min: samples[0],
        p95: at(0.95),
        max: samples[samples.len() - 1],
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Time `reps` calls of `load_activity(query)` after 5 untimed warm-up calls (which also let
/// PostgreSQL settle on its custom/generic plan for sqlx's cached statement). Returns the
/// timings and the statement the last call sent.
async fn timed(
    db: &DatabaseConnection,
    captured: &Mutex<Option<Statement>>,
    query: &ActivityQuery,
    reps: usize,
) -> Res<(Stats, Statement)> {
    let mut last: Option<Page> = None;
    for _ in 0..5 {
        last = Some(load_activity(db, query).await?);
    }
    if last.is_some_and(|p| p.results.len() != PAGE) {
        return Err("expected a full page".into());
    }
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        let page = load_activity(db, query).await?;
        samples.push(t.elapsed());
        std::hint::black_box(page);
    }
    let stmt = captured
        .lock()
        .unwrap()
        .clone()
        .ok_or("no statement captured")?;
    Ok((stats(samples), stmt))
}

/// `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` of a captured statement (values bound), summarised:
/// the scan, its index, index condition, filter, rows removed, buffers and server time.
async fn explain_summary(db: &DatabaseConnection, stmt: &Statement) -> Res<String> {
    let explain = Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {}", stmt.sql),
        stmt.values.clone().map(|v| v.0).unwrap_or_default(),
    );
    let row = db.query_one_raw(explain).await?.ok_or("no plan")?;
    let plan: Json = row.try_get("", "QUERY PLAN")?;
    let mut scan = &plan[0]["Plan"];
    let mut shape = Vec::new();
    loop {
        shape.push(scan["Node Type"].as_str().unwrap_or("?").to_owned());
        match scan.get("Plans").and_then(|p| p.get(0)) {
            Some(child) => scan = child,
            None => break,
        }
    }
    let s = |k: &str| scan.get(k).and_then(Json::as_str).unwrap_or("-").to_owned();
    let n = |k: &str| scan.get(k).and_then(Json::as_i64).unwrap_or(0);
    Ok(format!(
        "{} | index {} | Index Cond: {} | Filter: {} | rows {} removed by filter {} | shared hit {} read {} | execution {:.3} ms",
        shape.join(" -> "),
        s("Index Name"),
        s("Index Cond"),
        s("Filter"),
        n("Actual Rows"),
        n("Rows Removed by Filter"),
        n("Shared Hit Blocks"),
        n("Shared Read Blocks"),
        plan[0]["Execution Time"].as_f64().unwrap_or(f64::NAN),
    ))
}

/// Stream the first `rows` entries of the hot item to `io::sink()` as CSV; report time and RSS.
async fn export(db: &DatabaseConnection, item: &ActivityQuery, rows: usize) -> Res<()> {
    let mut query = item.clone();
    query.limit = None;
    query.to = if rows < env_num("BENCH_HOT_ROWS", 200_000) {
        // Bound the export to `rows` entries by their date: the (rows)th oldest entry.
        let at = scalar_text(
            db,
            &format!(
                "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
                 FROM activity_log WHERE team_id = '{HOT_TEAM}' AND scope = '{HOT_SCOPE}' \
                 AND item_id = '{HOT_ITEM}' ORDER BY created_at, id OFFSET {} LIMIT 1",
                rows - 1
            ),
        )
        .await?;
        Some(at.parse()?)
    } else {
        None
    };
    // Reset the peak (VmHWM) to the current RSS so the figure is the export's own.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = proc_status()?;
    let t = Instant::now();
    let written = export_csv(db, &query, std::io::sink()).await?;
    let elapsed = t.elapsed();
    let after = proc_status()?;
    let peak_growth = after.hwm_kb.saturating_sub(before.rss_kb);
    println!(
        "\nexport_csv of {written} entries to io::sink(): {:.2} s ({:.0} entries/s)",
        elapsed.as_secs_f64(),
        written as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  RSS before {:.1} MB, after {:.1} MB; peak (VmHWM{}) {:.1} MB => peak growth {:.1} MB (target < 50 MB)",
        mb(before.rss_kb),
        mb(after.rss_kb),
        if reset {
            ", reset via /proc/self/clear_refs"
        } else {
            ", NOT reset: process-lifetime peak"
        },
        mb(after.hwm_kb),
        mb(peak_growth)
    );
    Ok(())
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

struct ProcStatus {
    rss_kb: u64,
    hwm_kb: u64,
}

fn proc_status() -> Res<ProcStatus> {
    let text = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> Res<u64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| format!("{name} missing from /proc/self/status"))?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .ok_or("malformed /proc/self/status")?
            .parse()?)
    };
    Ok(ProcStatus {
        rss_kb: field("VmRSS:")?,
        hwm_kb: field("VmHWM:")?,
    })
}

async fn scalar_text(db: &DatabaseConnection, sql: &str) -> Res<String> {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
        .await?
        .ok_or("no row")?;
    Ok(row.try_get_by_index::<String>(0)?)
}

async fn storage(db: &DatabaseConnection) -> Res<String> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*)::float8, pg_total_relation_size('activity_log')::float8, \
             pg_relation_size('activity_log')::float8, pg_indexes_size('activity_log')::float8 \
             FROM activity_log",
        ))
        .await?
        .ok_or("no row")?;
    let count: f64 = row.try_get_by_index(0)?;
    let total: f64 = row.try_get_by_index(1)?;
    let heap: f64 = row.try_get_by_index(2)?;
    let indexes: f64 = row.try_get_by_index(3)?;
    let mut out = format!(
        "storage: pg_total_relation_size {:.1} MB / {count} rows = {:.0} bytes/row (heap {:.0}, indexes {:.0}, toast+fsm+vm {:.0})",
        total / 1048576.0,
        total / count,
        heap / count,
        indexes / count,
        (total - heap - indexes) / count
    );
    let per_index = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid)::float8 \
             FROM pg_index WHERE indrelid = 'activity_log'::regclass ORDER BY 2 DESC",
        ))
        .await?;
    for r in per_index {
        let name: String = r.try_get_by_index(0)?;
        let size: f64 = r.try_get_by_index(1)?;
        out.push_str(&format!("\n  {name:<32} {:>6.0} bytes/row", size / count));
    }
    Ok(out)
}

/// `rows` entries in one statement, inserted in `created_at` order (as a live log grows):
/// ~200 teams (`team-0` … `team-199`) in 40 organizations, 50 scopes, thousands of items per
/// scope, `created_at` spread over 2025 with microsecond resolution, time-ordered (v7-shaped)
/// ids, 5% system entries, a compact `detail` (one change on `updated`), request context
/// columns filled. Deterministic (hashes of the row number). One row in every `rows / hot`
/// belongs to one item: `team-7` / `Scope3` / `hot`.
fn seed_sql(rows: i64, hot: i64) -> String {
    include_str!("sql/seed_activity_log.sql")
        .replace("{rows}", &rows.to_string())
        .replace("{first}", "1")
        .replace("{last}", &rows.to_string())
        .replace("{hot}", &hot.to_string())
}
