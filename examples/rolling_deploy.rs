//! The rolling-deploy harness: does a new instance's start-up make the running instances'
//! logged writes wait, on a large log an earlier version created?
//!
//! ```sh
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p activity-examples --example rolling_deploy
//! BENCH_DATABASE_URL=mysql://root@127.0.0.1:3306/test \
//!   cargo run --release -p activity-examples --example rolling_deploy
//! ```
//!
//! It builds `activity_log` as versions before the caps table made it (identifiers
//! `varchar(64)`, two of the five indexes) in a schema (PostgreSQL) or database (MariaDB/MySQL)
//! of its own, `rolling_deploy`, fills it with `BENCH_ROWS` entries (default 1,000,000), and
//! starts `BENCH_WRITERS` writers (default 4) that each log one entry after another through
//! the library, as the old instances of a deploy would. Then, with the writers running, it calls
//! what a new instance calls at start-up, `schema::create_table`, and afterwards the explicit
//! `schema::upgrade` an operator runs at a quiet moment. For each phase it prints how many writes
//! ran and how long the slowest waited. The schema is dropped at the end unless `BENCH_KEEP=1`.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use activity_examples::bench::env_num;
use activity_seaorm::{ActivityEntry, log_activity};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

const SCHEMA: &str = "rolling_deploy";

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The table and indexes of an earlier version, and the statement that fills it with `rows`
/// entries (ids in UUID v7 layout, a year of timestamps, 200 teams, 2,000 users).
fn old_table(backend: DbBackend, rows: usize) -> Vec<String> {
    let columns = |uuid: &str, ts: &str, json: &str| {
        format!(
            "id {uuid} NOT NULL PRIMARY KEY, created_at {ts} NOT NULL, \
             organization_id varchar(64), team_id varchar(64), user_id varchar(64), \
             user_name varchar(255), impersonated_by varchar(64), \
             was_impersonated boolean NOT NULL DEFAULT false, \
             is_system boolean NOT NULL DEFAULT false, scope varchar(79) NOT NULL, \
             item_id varchar(72), activity varchar(79) NOT NULL, detail {json} NOT NULL, \
             request_id varchar(128), correlation_id varchar(64), ip_address varchar(64), \
             user_agent varchar(512), client varchar(128)"
        )
    };
    match backend {
        DbBackend::Postgres => vec![
            format!(
                "CREATE TABLE activity_log ({})",
                columns("uuid", "timestamp with time zone", "jsonb")
            ),
            "CREATE INDEX activity_log_item ON activity_log \
             (team_id, scope, item_id, created_at DESC, id DESC)"
                .into(),
            "CREATE INDEX activity_log_user ON activity_log (user_id, created_at DESC) \
             WHERE user_id IS NOT NULL"
                .into(),
            format!(
                "INSERT INTO activity_log (id, created_at, organization_id, team_id, user_id, \
                 user_name, scope, item_id, activity, detail, request_id, ip_address) \
                 SELECT (lpad(to_hex(1735689600000 + g * 30), 12, '0') || '7' \
                     || substr(md5(g::text), 1, 19))::uuid, \
                 timestamptz '2025-01-01 00:00:00+00' + g * interval '30 milliseconds', \
                 'org-' || (g % 40), 'team-' || (g % 200), 'user-' || (g % 2000), \
                 'User ' || (g % 2000), 'Setting', (g % 5000)::text, 'updated', \
                 jsonb_build_object('name', 'setting', 'changes', jsonb_build_array( \
                     jsonb_build_object('field', 'enabled', 'before', false, 'after', true))), \
                 'req-' || g, '10.0.0.' || (g % 256) \
                 FROM generate_series(1, {rows}) AS g"
            ),
            "VACUUM ANALYZE activity_log".into(),
        ],
        _ => vec![
            format!(
                "CREATE TABLE activity_log ({}, \
                 KEY activity_log_item (team_id, scope, item_id, created_at DESC, id DESC), \
                 KEY activity_log_user (user_id, created_at DESC)) \
                 CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin",
                columns("binary(16)", "datetime(6)", "json")
            ),
            format!(
                "INSERT INTO activity_log (id, created_at, organization_id, team_id, user_id, \
                 user_name, scope, item_id, activity, detail, request_id, ip_address) \
                 SELECT UNHEX(CONCAT(LPAD(HEX(1735689600000 + seq * 30), 12, '0'), '7', \
                     SUBSTR(MD5(seq), 1, 19))), \
                 TIMESTAMP '2025-01-01 00:00:00' + INTERVAL seq * 30000 MICROSECOND, \
                 CONCAT('org-', seq % 40), CONCAT('team-', seq % 200), \
                 CONCAT('user-', seq % 2000), CONCAT('User ', seq % 2000), 'Setting', \
                 seq % 5000, 'updated', \
                 JSON_OBJECT('name', 'setting', 'changes', JSON_ARRAY(JSON_OBJECT( \
                     'field', 'enabled', 'before', false, 'after', true))), \
                 CONCAT('req-', seq), CONCAT('10.0.0.', seq % 256) \
                 FROM seq_1_to_{rows}"
            ),
            "ANALYZE TABLE activity_log".into(),
        ],
    }
}

/// One write's start (since the harness began) and how long it took.
type Sample = (Duration, Duration);

async fn writer(
    db: DatabaseConnection,
    n: usize,
    stop: Arc<AtomicBool>,
    t0: Instant,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let mut entry = ActivityEntry::new("Setting", "updated")
            .with_item_id(format!("w{n}-{}", i % 100))
            .forced();
        entry.team_id = Some(format!("team-{}", n % 200));
        entry.organization_id = Some(format!("org-{}", n % 40));
        entry.user_id = Some(format!("user-{n}"));
        let start = Instant::now();
        if let Err(e) = log_activity(&db, entry).await {
            eprintln!("writer {n}: {e}");
        }
        samples.push((start - t0, start.elapsed()));
    }
    samples
}

fn report(name: &str, samples: &[Sample], from: Duration, to: Duration) {
    let mut waits: Vec<Duration> = samples
        .iter()
        .filter(|(at, took)| *at + *took >= from && *at <= to)
        .map(|(_, took)| *took)
        .collect();
    waits.sort();
    if waits.is_empty() {
        println!(
            "| {name} | {:.0} ms | 0 | – | – |",
            (to - from).as_secs_f64() * 1e3
        );
        return;
    }
    let p99 = waits[(waits.len() * 99 / 100).min(waits.len() - 1)];
    let max = waits[waits.len() - 1];
    println!(
        "| {name} | {:.0} ms | {} | {:.1} ms | {:.1} ms |",
        (to - from).as_secs_f64() * 1e3,
        waits.len(),
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() -> Res<()> {
    let url = std::env::var("BENCH_DATABASE_URL")
        .map_err(|_| "set BENCH_DATABASE_URL to a PostgreSQL or MySQL/MariaDB URL")?;
    let rows = env_num("BENCH_ROWS", 1_000_000);
    let writers = env_num("BENCH_WRITERS", 4).max(1);
    let admin = Database::connect(&url).await?;
    let backend = admin.get_database_backend();
    let (drop, create, opts) = match backend {
        DbBackend::Postgres => {
            let mut opts = ConnectOptions::new(url.clone());
            opts.set_schema_search_path(SCHEMA.to_owned());
            (
                format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"),
                format!("CREATE SCHEMA {SCHEMA}"),
                opts,
            )
        }
        DbBackend::MySql => {
            let base = url
                .rsplit_once('/')
                .map(|(b, _)| b)
                .ok_or("a URL with a database")?;
            (
                format!("DROP DATABASE IF EXISTS {SCHEMA}"),
                format!("CREATE DATABASE {SCHEMA}"),
                ConnectOptions::new(format!("{base}/{SCHEMA}")),
            )
        }
        _ => return Err("rolling_deploy needs PostgreSQL or MySQL/MariaDB".into()),
    };
    admin.execute_unprepared(&drop).await?;
    admin.execute_unprepared(&create).await?;
    let connect = |max: u32| {
        let mut o = opts.clone();
        o.max_connections(max)
            .min_connections(max)
            .sqlx_logging(false);
        Database::connect(o)
    };
    let setup = connect(1).await?;
    let t = Instant::now();
    for sql in old_table(backend, rows) {
        setup.execute_unprepared(&sql).await?;
    }
    println!(
        "{backend:?}: an earlier version's activity_log with {rows} entries, built in {:.1} s; \
         {writers} writers",
        t.elapsed().as_secs_f64()
    );

    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for n in 0..writers {
        let db = connect(1).await?;
        tasks.push(tokio::spawn(writer(db, n, stop.clone(), t0)));
    }
    let calm = Duration::from_secs(3);
    tokio::time::sleep(calm).await;
    // What a new instance runs at start-up.
    let start_up = t0.elapsed();
    activity_seaorm::schema::create_table(&setup).await?;
    let start_up_end = t0.elapsed();
    tokio::time::sleep(calm).await;
    // What an operator runs at a quiet moment.
    let upgrade = t0.elapsed();
    let widened = activity_seaorm::schema::upgrade(&setup).await?;
    let upgrade_end = t0.elapsed();
    tokio::time::sleep(calm).await;
    stop.store(true, Ordering::Relaxed);
    let end = t0.elapsed();
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await?);
    }
    println!("upgrade widened {widened:?}\n");
    println!("| phase | lasted | writes | p99 wait | longest wait |");
    println!("|---|---|---|---|---|");
    report("before (writers alone)", &samples, Duration::ZERO, start_up);
    report(
        "start-up (`create_table`)",
        &samples,
        start_up,
        start_up_end,
    );
    report("between", &samples, start_up_end, upgrade);
    report("explicit `upgrade`", &samples, upgrade, upgrade_end);
    report("after", &samples, upgrade_end, end);

    if std::env::var_os("BENCH_KEEP").is_none() {
        admin.execute_unprepared(&drop).await?;
    }
    Ok(())
}
