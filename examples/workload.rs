//! The workload harness: logged vs unlogged SeaORM writes, and the PostgreSQL trigger peer, timed
//! interleaved (A B A B ...) in one run on the same table and data.
//!
//! ```sh
//! cargo run --release -p activity-examples --example workload                  # SQLite (temp file)
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p activity-examples --example workload                # PostgreSQL + peer
//! ```
//! Options (env): `BENCH_ROUNDS` (default 30), `BENCH_PEER_SQL` (a SQL file that installs the
//! trigger peer, a generic row-level audit trigger; without a readable one the peer is skipped,
//! with a message), `BENCH_ONLY` (shapes whose name contains the text),
//! `BENCH_DROP_INDEXES` (log indexes to drop for an experiment, or `all`), `BENCH_DROP_GIN`,
//! `BENCH_PEER_EXTRA_SQL` (a SQL file run after the peer's, e.g. `sql/peer_five_indexes.sql`),
//! `BENCH_WIRE_BUDGET` (bytes, see `ActivityConfig::with_wire_budget`), `BENCH_FULL_DETAIL=1`
//! (`detail` stored in the full shape, as before the compact form), `BENCH_MODES` (a
//! comma-separated list of modes to run, e.g. `Unlogged,Muted`), `BENCH_CHECKED=1` (checked mode
//! observes every statement; `BENCH_CHECKED=layer` adds `Checker::layer` as the global tracing
//! subscriber; see BENCHMARKS.md).
//! Prints medians and ratios to the unlogged baseline. The `Floor` mode runs the unlogged
//! updates plus the log INSERTs of a `Tracked` batch rendered in advance: the server's and the
//! wire's share of the logged cost, which no client-side change can remove; `FloorRead` adds
//! the hook path's primary-key read before each update. The report ends with the ratios the write
//! targets are stated in (`Tracked / Floor`, `Hook / FloorRead`, `Outbox / Tracked`; BENCHMARKS.md).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use activity_seaorm::prelude::*;
use activity_seaorm::{activity_log, transaction};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    IntoActiveModel, QueryOrder, Schema, Set,
};

/// The logged entity.
mod logged {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "bench_flag")]
    #[activity(scope = "BenchFlag", name = key, team = team_id)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub team_id: i64,
        pub key: String,
        pub active: bool,
        pub rollout: i32,
        pub description: Option<String>,
        pub filters: Json,
        #[activity(mask)]
        pub secret: String,
        pub counter: i64,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        activity_seaorm::activity_hooks!();
    }
}

/// The same table, without hooks: the unlogged baseline.
mod plain {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "bench_flag")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub team_id: i64,
        pub key: String,
        pub active: bool,
        pub rollout: i32,
        pub description: Option<String>,
        pub filters: Json,
        pub secret: String,
        pub counter: i64,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

const ROWS: i32 = 1_000;

/// `BENCH_ONLY=Txn(100)` restricts the run to shapes whose name contains the text.
static ONLY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Unlogged,
    /// Hook path; for `Bulk`, `bulk::update_many` per row.
    Hook,
    /// `Tracked`; for `Bulk`, `bulk::update_many` with one summary entry.
    Tracked,
    /// `Tracked` with the outbox on (`ActivityConfig::with_outbox`): what the outbox row adds.
    Outbox,
    Muted,
    Peer,
    /// The unlogged updates plus one INSERT of the same log rows a `Tracked` batch writes,
    /// rendered before the clock starts: what storing the entries costs the server and the wire
    /// alone, the floor any client-side implementation of the log can reach (`Txn` shapes only).
    Floor,
    /// `Floor` plus, before each update, the primary-key read the hook path makes (locked as
    /// the hook locks it): the floor of a log that must read the before-state ("Floor + one
    /// primary-key read per update", the hook path's target).
    FloorRead,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Shape {
    /// `n` updates in one `transaction`.
    Txn(usize),
    /// One update, autocommit.
    Autocommit,
    /// 10 times: an insert, then the delete of that row, in one transaction (`Tracked` and
    /// `Outbox` delete through `track(model).delete`, which reads nothing).
    InsertDelete,
    /// One `update_many` of 1,000 rows in one transaction (Hook = per-row entries, Tracked =
    /// summary entry).
    Bulk,
    /// `n` tasks at once, each one `transaction` of 10 updates of its own rows: the time until
    /// all have committed. The target: the logged/unlogged ratio at 64 tasks stays within 0.05 of
    /// the single-task `Txn(10)` ratio (no global lock on the hot path).
    Concurrent(usize),
}

/// Updates per transaction in [`Shape::Concurrent`].
const CONCURRENT_UPDATES: usize = 10;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), DbErr> {
    let url = std::env::var("BENCH_DATABASE_URL").unwrap_or_else(|_| {
        let path = std::env::temp_dir().join("activity-workload.db");
        let _ = std::fs::remove_file(&path);
        format!("sqlite://{}?mode=rwc", path.display())
    });
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(30);
    let mut db = Database::connect(&url).await?;
    let statements = Arc::new(AtomicUsize::new(0));
    let log_inserts = Arc::new(AtomicUsize::new(0));
    let (counter, insert_counter) = (statements.clone(), log_inserts.clone());
    // `BENCH_CHECKED=1`: checked mode observes every statement (composed with the harness's own
    // callback, as an application with metrics would). Unlogged writes are bypasses: counted
    // silently (`Checker::record`), so the Unlogged baseline pays the report path too.
    let checked = std::env::var("BENCH_CHECKED").unwrap_or_default();
    let checker =
        (!checked.is_empty() && checked != "0").then(activity_seaorm::checked::Checker::record);
    let layer = checked == "layer";
    if let (Some(checker), true) = (&checker, layer) {
        use tracing_subscriber::prelude::*;
        tracing_subscriber::registry().with(checker.layer()).init();
    }
    let observer = checker.clone();
    db.set_metric_callback(move |info| {
        if let Some(checker) = &observer {
            checker.observe(info);
        }
        counter.fetch_add(1, Ordering::Relaxed);
        let sql = &info.statement.sql;
        if sql.starts_with("INSERT INTO") && sql.contains("activity_log") {
            insert_counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let backend = db.get_database_backend();
    setup(&db).await?;
    let peer = backend == DbBackend::Postgres && install_peer_functions(&db).await?;

    let mut shapes = vec![
        Shape::Txn(1),
        Shape::Txn(10),
        Shape::Txn(100),
        Shape::Autocommit,
        Shape::InsertDelete,
        Shape::Bulk,
        Shape::Concurrent(64),
    ];
    if let Some(only) = ONLY.get() {
        shapes.retain(|s| format!("{s:?}").contains(only.as_str()));
    }
    shapes.sort();
    let mut modes = vec![
        Mode::Unlogged,
        Mode::Hook,
        Mode::Tracked,
        Mode::Outbox,
        Mode::Muted,
    ];
    if peer {
        modes.push(Mode::Peer);
    }
    modes.push(Mode::Floor);
    modes.push(Mode::FloorRead);
    if let Ok(only) = std::env::var("BENCH_MODES") {
        // For instruction counts (callgrind) of one mode at a time; the ratios need `Unlogged`,
        // and `Floor` copies what `Tracked` wrote.
        modes.retain(|m| only.split(',').any(|name| name.trim() == format!("{m:?}")));
    }
    let mut samples: BTreeMap<(Shape, Mode), Vec<Duration>> = BTreeMap::new();
    let mut per_txn: BTreeMap<(Shape, Mode), usize> = BTreeMap::new();
    // The log rows of the latest `Tracked` batch per `Txn(n)` and the number of INSERTs its
    // flush sent: what `Floor` inserts, chunked the same way.
    let mut templates: BTreeMap<usize, (Vec<activity_log::Model>, usize)> = BTreeMap::new();
    let mut tick = 0i64;
    for round in 0..=rounds {
        for &shape in &shapes {
            // A new order every round (seeded, so runs repeat): no mode always follows the
            // same one, such as the peer's DDL or a batch that has just written log rows.
            let mut order = modes.clone();
            fastrand::Rng::with_seed(round as u64).shuffle(&mut order);
            for &mode in &order {
                if mode == Mode::Peer {
                    db.execute_unprepared("SELECT peer_audit_install('bench_flag')")
                        .await?;
                    // DDL invalidates cached plans: re-plan outside the timing.
                    run(&db, Shape::Txn(1), Mode::Peer, tick, None).await?;
                }
                if matches!(shape, Shape::Concurrent(_))
                    && matches!(mode, Mode::Peer | Mode::Floor | Mode::FloorRead)
                {
                    continue;
                }
                let floor = match (mode, shape) {
                    (Mode::Floor | Mode::FloorRead, Shape::Txn(n)) => match templates.get(&n) {
                        Some((rows, inserts)) => Some(floor_inserts(backend, rows, *inserts)),
                        None => continue,
                    },
                    (Mode::Floor | Mode::FloorRead, _) => continue,
                    _ => None,
                };
                tick += 1;
                statements.store(0, Ordering::Relaxed);
                log_inserts.store(0, Ordering::Relaxed);
                let elapsed = if mode == Mode::Outbox {
                    let config = (*ActivityConfig::current()).clone().with_outbox(true);
                    let elapsed = config.scope(run(&db, shape, mode, tick, floor)).await?;
                    // A relay would delete what it published: keep the table as small.
                    db.execute_unprepared("DELETE FROM activity_outbox").await?;
                    elapsed
                } else {
                    run(&db, shape, mode, tick, floor).await?
                };
                let stmts = statements.load(Ordering::Relaxed);
                if let (Mode::Tracked, Shape::Txn(n)) = (mode, shape) {
                    let inserts = log_inserts.load(Ordering::Relaxed).max(1);
                    templates.insert(n, (newest_batch(&db).await?, inserts));
                }
                if mode == Mode::Peer {
                    db.execute_unprepared("SELECT peer_audit_uninstall('bench_flag')")
                        .await?;
                    for warm in [Mode::Unlogged, Mode::Hook, Mode::Tracked] {
                        run(&db, Shape::Txn(1), warm, tick, None).await?;
                    }
                }
                if round > 0 {
                    // round 0 warms caches and connections
                    samples.entry((shape, mode)).or_default().push(elapsed);
                    per_txn.insert((shape, mode), stmts);
                }
            }
        }
    }
    report(backend, rounds, &samples, &per_txn);
    let log_bytes = storage_per_entry(&db).await?;
    if let Some(bytes) = log_bytes {
        println!("\nstorage per small `updated` entry incl. indexes: {bytes:.0} bytes");
    }
    if let Some(checker) = checker {
        println!(
            "\nchecked mode: {} bypassed writes reported (the Unlogged and Floor batches)",
            checker.bypassed()
        );
        observe_cost(backend);
        layer_cost(&db, &checker, layer).await?;
    }
    Ok(())
}

/// What `Checker::layer` adds: to every statement, sqlx's `enabled!` check (our filter asks
/// whether an `execute_unprepared` span is current); to `execute_unprepared`, SeaORM's span,
/// sqlx's event and the check. Compare a `BENCH_CHECKED=1` run (no layer) with a
/// `BENCH_CHECKED=layer` one; `execute_raw` of the same UPDATE runs in alternating blocks as a
/// reference for the run's drift.
async fn layer_cost(
    db: &DatabaseConnection,
    checker: &activity_seaorm::checked::Checker,
    layer: bool,
) -> Result<(), DbErr> {
    let n = 200_000u32;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(tracing::enabled!(target: "sqlx::query", tracing::Level::INFO));
    }
    println!(
        "\nChecker::layer {}: sqlx's per-statement `enabled!` check {:.1?}",
        if layer { "on" } else { "off" },
        start.elapsed() / n
    );
    let sql = "UPDATE bench_flag SET counter = counter + 1 WHERE id = 1";
    let statement = sea_orm::Statement::from_string(db.get_database_backend(), sql);
    let before = checker.bypassed();
    let (mut raw, mut unprepared) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let start = Instant::now();
        for _ in 0..100 {
            db.execute_raw(statement.clone()).await?;
        }
        raw.push(start.elapsed() / 100);
        let start = Instant::now();
        for _ in 0..100 {
            db.execute_unprepared(sql).await?;
        }
        unprepared.push(start.elapsed() / 100);
    }
    raw.sort();
    unprepared.sort();
    println!(
        "  UPDATE: execute_raw (metric callback) {:.1?}, execute_unprepared {:.1?} \
         (medians of 20 blocks of 100); {} reported",
        raw[10],
        unprepared[10],
        checker.bypassed() - before
    );
    Ok(())
}

/// `Checker::observe` alone, per statement, on the statements the write path sends: what checked
/// mode adds to each (the announcement included for the hooked UPDATE).
fn observe_cost(backend: DbBackend) {
    use activity_seaorm::checked::{Checker, Verb, announce};
    let checker = Checker::record();
    let q = |s: &str| match backend {
        DbBackend::MySql => s.replace('"', "`"),
        _ => s.to_owned(),
    };
    let update =
        q(r#"UPDATE "bench_flag" SET "rollout" = $1, "counter" = $2 WHERE "bench_flag"."id" = $3"#);
    let select = q(
        r#"SELECT "bench_flag"."id", "bench_flag"."team_id", "bench_flag"."key", "bench_flag"."active", "bench_flag"."rollout", "bench_flag"."description", "bench_flag"."filters", "bench_flag"."secret", "bench_flag"."counter", "bench_flag"."updated_at" FROM "bench_flag" WHERE "bench_flag"."id" = $1 LIMIT $2 FOR NO KEY UPDATE"#,
    );
    let row = format!(
        "({})",
        (0..21)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let flush = q(&format!(
        r#"INSERT INTO "activity_log" ("id", "a", "b") VALUES {}"#,
        vec![row; 100].join(", ")
    ));
    let cases: [(&str, &str, bool); 3] = [
        ("hooked UPDATE (announce + observe)", &update, true),
        ("SELECT .. FOR NO KEY UPDATE", &select, false),
        ("flush INSERT, 100 rows", &flush, false),
    ];
    println!("\nChecker::observe per statement (release build, one thread):");
    for (name, sql, announced) in cases {
        let statement = sea_orm::Statement::from_string(backend, sql.to_owned());
        let info = sea_orm::metric::Info {
            elapsed: Duration::ZERO,
            statement: &statement,
            failed: false,
        };
        let n = 200_000u32;
        let start = Instant::now();
        for _ in 0..n {
            if announced {
                announce::<logged::Entity>(Verb::Update);
            }
            checker.observe(std::hint::black_box(&info));
        }
        let per = start.elapsed() / n;
        println!("  {name:<40} {per:>10.1?} ({} bytes of SQL)", sql.len());
    }
    assert_eq!(checker.bypassed(), 0, "the hooked shape was announced");
}

async fn setup(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.execute_unprepared("DROP TABLE IF EXISTS bench_flag")
        .await?;
    activity_seaorm::schema::drop_table(db).await?;
    activity_seaorm::schema::create_table(db).await?;
    for index in dropped_indexes()? {
        let sql = match db.get_database_backend() {
            // No GIN or partial index there, and no `IF EXISTS` for indexes.
            DbBackend::MySql if index.ends_with("_gin") || index.ends_with("_impersonator") => {
                continue;
            }
            DbBackend::MySql => format!("DROP INDEX {index} ON activity_log"),
            _ => format!("DROP INDEX IF EXISTS {index}"),
        };
        db.execute_unprepared(&sql).await?;
    }
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        ONLY.set(only).ok();
    }
    let mut config = activity_seaorm::ActivityConfig::new();
    if let Some(bytes) = std::env::var("BENCH_WIRE_BUDGET")
        .ok()
        .and_then(|b| b.parse().ok())
    {
        config = config.with_wire_budget(bytes);
    }
    if std::env::var("BENCH_FULL_DETAIL").is_ok_and(|v| v == "1") {
        config = config.with_compact_detail(false);
    }
    activity_seaorm::init(config).map_err(|e| DbErr::Custom(e.to_string()))?;
    let schema = Schema::new(db.get_database_backend());
    db.execute(&schema.create_table_from_entity(plain::Entity))
        .await?;
    let _muted = mute_signals();
    let rows: Vec<plain::ActiveModel> = (0..ROWS)
        .map(|i| plain::ActiveModel {
            team_id: Set(7),
            key: Set(format!("flag-{i}")),
            active: Set(false),
            rollout: Set(0),
            description: Set(Some("bench".into())),
            filters: Set(serde_json::json!({"groups": [{"rollout": 10}]})),
            secret: Set("whsec".into()),
            counter: Set(0),
            updated_at: Set(chrono::Utc::now()),
            ..Default::default()
        })
        .collect();
    for chunk in rows.chunks(200) {
        plain::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// The log's secondary indexes an experiment drops before the run: `BENCH_DROP_INDEXES` (a
/// comma-separated list of names, or `all`), and `BENCH_DROP_GIN=1` for the GIN index alone.
fn dropped_indexes() -> Result<Vec<String>, DbErr> {
    const SECONDARY: [&str; 7] = [
        "activity_log_item",
        "activity_log_org_feed",
        "activity_log_team_feed",
        "activity_log_user",
        "activity_log_correlation",
        "activity_log_impersonator",
        "activity_log_detail_gin",
    ];
    let mut names: Vec<String> = match std::env::var("BENCH_DROP_INDEXES").as_deref() {
        Ok("all") => SECONDARY.iter().map(|s| s.to_string()).collect(),
        Ok(list) => list.split(',').map(|s| s.trim().to_owned()).collect(),
        Err(_) => Vec::new(),
    };
    if std::env::var_os("BENCH_DROP_GIN").is_some() {
        names.push("activity_log_detail_gin".to_owned());
    }
    match names.iter().find(|n| !SECONDARY.contains(&n.as_str())) {
        Some(unknown) => Err(DbErr::Custom(format!(
            "BENCH_DROP_INDEXES: {unknown} is not one of {SECONDARY:?}"
        ))),
        None => Ok(names),
    }
}

async fn install_peer_functions(db: &DatabaseConnection) -> Result<bool, DbErr> {
    let path = std::env::var("BENCH_PEER_SQL").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/peers/pg_audit_trigger.sql"
        )
        .to_owned()
    });
    // The peer's table starts empty with the indexes its file (and the extra file) make, as the
    // log does in every run: a table left by an earlier run would be larger and could keep an
    // experiment's indexes.
    db.execute_unprepared("DROP TABLE IF EXISTS peer_audit_log")
        .await?;
    // `BENCH_PEER_EXTRA_SQL`: run after the peer's file (an experiment: more indexes on its table).
    let extra = std::env::var("BENCH_PEER_EXTRA_SQL").ok();
    for path in std::iter::once(path).chain(extra) {
        match std::fs::read_to_string(&path) {
            Ok(sql) => {
                db.execute_unprepared(&sql).await?;
            }
            Err(e) => {
                eprintln!("trigger peer not measured: cannot read {path}: {e}");
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Ids for this tick: a window of rows that moves every batch.
fn ids(tick: i64, n: usize) -> Vec<i32> {
    let start = (tick * 7).rem_euclid(i64::from(ROWS)) as i32;
    (0..n as i32).map(|i| (start + i) % ROWS + 1).collect()
}

/// Times one batch. `floor` holds the pre-rendered log INSERTs of [`Mode::Floor`].
async fn run(
    db: &DatabaseConnection,
    shape: Shape,
    mode: Mode,
    tick: i64,
    floor: Option<Vec<sea_orm::Statement>>,
) -> Result<Duration, DbErr> {
    let alice = ActivityContext::for_user(Actor::new("1").with_name("alice"));
    match shape {
        Shape::Txn(n) => {
            let ids = ids(tick, n);
            // Loading is the application's business, not the log's: outside the timing.
            let loaded = load(db, &ids).await?;
            let start = Instant::now();
            ActivityContext::scope(alice, async {
                transaction(db, |txn| {
                    async move {
                        for (p, l) in loaded {
                            update_one(txn, mode, p, l, tick).await?;
                        }
                        for insert in floor.into_iter().flatten() {
                            txn.execute_raw(insert).await?;
                        }
                        Ok::<_, DbErr>(())
                    }
                    .scope_boxed()
                })
                .await
            })
            .await?;
            Ok(start.elapsed())
        }
        Shape::Autocommit => {
            let loaded = load(db, &ids(tick, 1)).await?;
            let start = Instant::now();
            ActivityContext::scope(alice, async {
                for (p, l) in loaded {
                    update_one(db, mode, p, l, tick).await?;
                }
                Ok::<_, DbErr>(())
            })
            .await?;
            Ok(start.elapsed())
        }
        Shape::Bulk => {
            let start = Instant::now();
            ActivityContext::scope(alice, async {
                transaction(db, |txn| {
                    async move { bulk_update(txn, mode, tick).await }.scope_boxed()
                })
                .await
            })
            .await?;
            Ok(start.elapsed())
        }
        Shape::Concurrent(tasks) => {
            let start_id = (tick * 7).rem_euclid(i64::from(ROWS)) as i32;
            let mut batches = Vec::with_capacity(tasks);
            for k in 0..tasks {
                let ids: Vec<i32> = (0..CONCURRENT_UPDATES as i32)
                    .map(|j| (start_id + k as i32 * CONCURRENT_UPDATES as i32 + j) % ROWS + 1)
                    .collect();
                batches.push(load(db, &ids).await?);
            }
            let start = Instant::now();
            let handles: Vec<_> = batches
                .into_iter()
                .enumerate()
                .map(|(k, loaded)| {
                    let db = db.clone();
                    let actor = ActivityContext::for_user(Actor::new(k.to_string()));
                    tokio::spawn(ActivityContext::scope(actor, async move {
                        transaction(&db, |txn| {
                            async move {
                                for (p, l) in loaded {
                                    update_one(txn, mode, p, l, tick).await?;
                                }
                                Ok::<_, DbErr>(())
                            }
                            .scope_boxed()
                        })
                        .await
                    }))
                })
                .collect();
            for handle in handles {
                handle
                    .await
                    .map_err(|e| DbErr::Custom(format!("task: {e}")))??;
            }
            Ok(start.elapsed())
        }
        Shape::InsertDelete => {
            let start = Instant::now();
            ActivityContext::scope(alice, async {
                transaction(db, |txn| {
                    async move { insert_delete(txn, mode, tick).await }.scope_boxed()
                })
                .await
            })
            .await?;
            Ok(start.elapsed())
        }
    }
}

/// The log rows of the newest committed batch (all entries sharing its correlation id).
async fn newest_batch(db: &DatabaseConnection) -> Result<Vec<activity_log::Model>, DbErr> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let newest = activity_log::Entity::find()
        .filter(activity_log::Column::TeamId.eq("7"))
        .order_by_desc(activity_log::Column::CreatedAt)
        .order_by_desc(activity_log::Column::Id)
        .one(db)
        .await?;
    let Some(correlation) = newest.and_then(|e| e.correlation_id) else {
        return Ok(Vec::new());
    };
    activity_log::Entity::find()
        .filter(activity_log::Column::CorrelationId.eq(correlation))
        .all(db)
        .await
}

/// `template`'s rows under fresh ids, time and correlation id, as `inserts` INSERTs (the flush's
/// chunking), rendered before the clock starts; SeaORM's `insert_many` binds the same column
/// types as the flush.
fn floor_inserts(
    backend: DbBackend,
    template: &[activity_log::Model],
    inserts: usize,
) -> Vec<sea_orm::Statement> {
    use sea_orm::QueryTrait;
    let correlation = sea_orm::prelude::Uuid::now_v7().to_string();
    template
        .chunks(template.len().div_ceil(inserts).max(1))
        .map(|chunk| {
            let rows = chunk.iter().cloned().map(|mut e| {
                e.id = sea_orm::prelude::Uuid::now_v7();
                e.created_at = chrono::Utc::now();
                e.correlation_id = Some(correlation.clone());
                activity_log::ActiveModel::from(e)
            });
            activity_log::Entity::insert_many(rows).build(backend)
        })
        .collect()
}

async fn load(
    db: &DatabaseConnection,
    ids: &[i32],
) -> Result<Vec<(plain::Model, logged::Model)>, DbErr> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let p = plain::Entity::find()
        .filter(plain::Column::Id.is_in(ids.to_vec()))
        .order_by_asc(plain::Column::Id)
        .all(db)
        .await?;
    let l = logged::Entity::find()
        .filter(logged::Column::Id.is_in(ids.to_vec()))
        .order_by_asc(logged::Column::Id)
        .all(db)
        .await?;
    Ok(p.into_iter().zip(l).collect())
}

async fn update_one<C: ConnectionTrait>(
    db: &C,
    mode: Mode,
    p: plain::Model,
    l: logged::Model,
    tick: i64,
) -> Result<(), DbErr> {
    let rollout = (tick % 100) as i32 + 1;
    match mode {
        Mode::FloorRead => {
            use sea_orm::QuerySelect;
            use sea_orm::sea_query::LockType;
            // The hook's read (`hooks::read_row`): by primary key, locked where the backend can.
            let query = plain::Entity::find_by_id(p.id);
            let query = match db.get_database_backend() {
                DbBackend::Sqlite => query,
                DbBackend::Postgres => query.lock(LockType::NoKeyUpdate),
                _ => query.lock_exclusive(),
            };
            std::hint::black_box(query.one(db).await?);
            let mut am = p.into_active_model();
            am.rollout = Set(rollout);
            am.active = Set(tick % 2 == 0);
            am.update(db).await?;
        }
        Mode::Unlogged | Mode::Peer | Mode::Floor => {
            let mut am = p.into_active_model();
            am.rollout = Set(rollout);
            am.active = Set(tick % 2 == 0);
            am.update(db).await?;
        }
        Mode::Hook => {
            let mut am = l.into_active_model();
            am.rollout = Set(rollout);
            am.active = Set(tick % 2 == 0);
            am.update(db).await?;
        }
        Mode::Tracked | Mode::Outbox => {
            let mut am = track(l);
            am.rollout = Set(rollout);
            am.active = Set(tick % 2 == 0);
            am.update(db).await?;
        }
        Mode::Muted => {
            let _muted = mute_signals();
            let mut am = l.into_active_model();
            am.rollout = Set(rollout);
            am.active = Set(tick % 2 == 0);
            am.update(db).await?;
        }
    }
    Ok(())
}

async fn bulk_update<C: ConnectionTrait>(db: &C, mode: Mode, tick: i64) -> Result<(), DbErr> {
    use activity_seaorm::bulk::{self, BulkMode};
    use sea_orm::{ColumnTrait, QueryFilter};
    let filter = plain::Column::TeamId.eq(7);
    let rollout = (tick % 100) as i32 + 1;
    match mode {
        Mode::Unlogged | Mode::Peer | Mode::Floor | Mode::FloorRead => {
            plain::Entity::update_many()
                .set(plain::ActiveModel {
                    rollout: Set(rollout),
                    ..Default::default()
                })
                .filter(filter)
                .exec(db)
                .await?;
        }
        Mode::Hook | Mode::Tracked | Mode::Outbox | Mode::Muted => {
            let how = if matches!(mode, Mode::Tracked | Mode::Outbox) {
                BulkMode::Summary
            } else {
                BulkMode::PerRow
            };
            let values = logged::ActiveModel {
                rollout: Set(rollout),
                ..Default::default()
            };
            let run = bulk::update_many::<logged::Entity, _>(
                db,
                logged::Column::TeamId.eq(7),
                values,
                how,
            );
            if mode == Mode::Muted {
                mute_signals_in(run).await?;
            } else {
                run.await?;
            }
        }
    }
    Ok(())
}

async fn insert_delete<C: ConnectionTrait>(db: &C, mode: Mode, tick: i64) -> Result<(), DbErr> {
    let _muted = (mode == Mode::Muted).then(mute_signals);
    for i in 0..10 {
        let key = format!("tmp-{tick}-{i}");
        if matches!(
            mode,
            Mode::Unlogged | Mode::Peer | Mode::Floor | Mode::FloorRead
        ) {
            let m = plain::ActiveModel {
                team_id: Set(7),
                key: Set(key),
                active: Set(true),
                rollout: Set(1),
                description: Set(None),
                filters: Set(serde_json::json!({})),
                secret: Set("s".into()),
                counter: Set(0),
                updated_at: Set(chrono::Utc::now()),
                ..Default::default()
            }
            .insert(db)
            .await?;
            sea_orm::ModelTrait::delete(m, db).await?;
        } else {
            let m = logged::ActiveModel {
                team_id: Set(7),
                key: Set(key),
                active: Set(true),
                rollout: Set(1),
                description: Set(None),
                filters: Set(serde_json::json!({})),
                secret: Set("s".into()),
                counter: Set(0),
                updated_at: Set(chrono::Utc::now()),
                ..Default::default()
            }
            .insert(db)
            .await?;
            if matches!(mode, Mode::Tracked | Mode::Outbox) {
                // The row as inserted, still unchanged: its DELETE needs no read.
                activity_seaorm::track(m).delete(db).await?;
            } else {
                sea_orm::ModelTrait::delete(m, db).await?;
            }
        }
    }
    Ok(())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn report(
    backend: DbBackend,
    rounds: usize,
    samples: &BTreeMap<(Shape, Mode), Vec<Duration>>,
    per_txn: &BTreeMap<(Shape, Mode), usize>,
) {
    println!(
        "backend: {backend:?}; {rounds} interleaved rounds; times per batch (median, min, max)"
    );
    println!(
        "{:<24} {:<9} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "shape", "mode", "median", "min", "max", "ratio", "r.med", "r.min", "r.max", "stmts/txn"
    );
    let shapes: Vec<Shape> = samples
        .keys()
        .map(|(s, _)| *s)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for shape in shapes {
        let Some(base) = samples.get(&(shape, Mode::Unlogged)) else {
            continue;
        };
        let mut base = base.clone();
        let base_median = median(&mut base);
        for ((s, mode), times) in samples.iter().filter(|((s, _), _)| *s == shape) {
            let mut times = times.clone();
            let m = median(&mut times);
            let min = times[0];
            let max = times[times.len() - 1];
            // Ratio per round pair (same round index), to show the spread.
            let mut pair: Vec<f64> = samples[&(*s, Mode::Unlogged)]
                .iter()
                .zip(samples[&(*s, *mode)].iter())
                .map(|(b, x)| x.as_secs_f64() / b.as_secs_f64())
                .collect();
            pair.sort_by(f64::total_cmp);
            println!(
                "{:<24} {:<9} {:>10} {:>10} {:>10} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>10}",
                format!("{shape:?}"),
                format!("{mode:?}"),
                format!("{:.1?}", m),
                format!("{:.1?}", min),
                format!("{:.1?}", max),
                m.as_secs_f64() / base_median.as_secs_f64(),
                pair[pair.len() / 2],
                pair[0],
                pair[pair.len() - 1],
                per_txn.get(&(*s, *mode)).copied().unwrap_or(0),
            );
        }
    }
    against_floor(samples);
}

/// The write targets, stated against the floor: `Tracked` over `Floor`, `Hook` over
/// `FloorRead` (both ≤ 1.05), and `Outbox` over `Tracked` (≤ 1.05): the ratio of medians and the
/// median of per-round ratios.
fn against_floor(samples: &BTreeMap<(Shape, Mode), Vec<Duration>>) {
    let pairs = [
        (Mode::Tracked, Mode::Floor),
        (Mode::Hook, Mode::FloorRead),
        (Mode::Outbox, Mode::Tracked),
    ];
    let mut header = false;
    for (&(shape, mode), times) in samples {
        for (num, den) in pairs.iter().filter(|(num, _)| *num == mode) {
            let Some(base) = samples.get(&(shape, *den)) else {
                continue;
            };
            if !header {
                println!("\nagainst the floor (the write targets: each ≤ 1.05)");
                println!(
                    "{:<24} {:<22} {:>8} {:>8}",
                    "shape", "ratio", "of med.", "r.med"
                );
                header = true;
            }
            let (mut a, mut b) = (times.clone(), base.clone());
            let of_medians = median(&mut a).as_secs_f64() / median(&mut b).as_secs_f64();
            let mut per_round: Vec<f64> = times
                .iter()
                .zip(base)
                .map(|(x, y)| x.as_secs_f64() / y.as_secs_f64())
                .collect();
            per_round.sort_by(f64::total_cmp);
            println!(
                "{:<24} {:<22} {:>8.3} {:>8.3}",
                format!("{shape:?}"),
                format!("{num:?} / {den:?}"),
                of_medians,
                per_round[per_round.len() / 2]
            );
        }
    }
}

/// PostgreSQL: total relation size of `activity_log` (heap + indexes + toast) per row.
async fn storage_per_entry(db: &DatabaseConnection) -> Result<Option<f64>, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(None);
    }
    db.execute_unprepared("VACUUM ANALYZE activity_log").await?;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_total_relation_size('activity_log')::float8 / GREATEST(count(*), 1) FROM activity_log",
        ))
        .await?;
    Ok(row.and_then(|r| r.try_get_by_index::<f64>(0).ok()))
}
