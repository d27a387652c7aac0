//! Checked mode sees `execute_unprepared` through its `tracing` layer (feature `checked-layer`):
//! raw writes to audited tables are reported once each, on a connection and in a transaction,
//! with announcements and mutes honoured in the calling task (SQLite runs the statement on
//! sqlx's worker thread); without `sqlx_logging` the call is counted as unverified.
//!
//! Its own binary: the layer needs the *global* subscriber, and the tests share its checker, so
//! they run one at a time.

use std::sync::LazyLock;
use std::time::Duration;

use activity_seaorm::checked::{self, Checker, Verb};
use activity_seaorm::prelude::*;
use activity_tests::models::{feature_flag, membership};
use activity_tests::{Backend, TestDb, flag_by_id, new_flag};
use sea_orm::{
    ActiveModelTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, EntityTrait,
    Set, TransactionTrait,
};
use tracing_subscriber::prelude::*;

/// The checker behind the global subscriber's layer.
static CHECKER: LazyLock<Checker> = LazyLock::new(|| {
    let checker = Checker::record();
    tracing_subscriber::registry()
        .with(checker.layer())
        // Another layer that takes every INFO span, as an OpenTelemetry exporter would: with
        // SeaORM's `tracing-spans` on, sqlx's SQLite worker then enters SeaORM's own INFO span.
        .with(
            tracing_subscriber::layer::Identity::new()
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .try_init()
        .expect("no other global subscriber in this binary");
    checker
});

/// One test at a time: they share [`CHECKER`] and its counts.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn one_at_a_time(backend: Backend, test: impl for<'a> AsyncFn(&'a TestDb)) {
    let _serial = SERIAL.lock().await;
    LazyLock::force(&CHECKER);
    activity_tests::run(backend, test).await;
}

/// A pool of the test's database with the shared checker installed and sqlx's statement logging
/// on (SeaORM's default) or off.
async fn pool(t: &TestDb, sqlx_logging: bool) -> DatabaseConnection {
    let db = pool_of(t, sqlx_logging, &CHECKER).await;
    CHECKER.take_reports();
    db
}

async fn pool_of(t: &TestDb, sqlx_logging: bool, checker: &Checker) -> DatabaseConnection {
    let (url, schema) = t.url();
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(sqlx_logging);
    if let Some(schema) = schema {
        opts.set_schema_search_path(schema.to_owned());
    }
    let mut db = Database::connect(opts).await.expect("connect");
    checker.install(&mut db);
    db
}

fn reports() -> Vec<(Verb, String)> {
    CHECKER
        .take_reports()
        .into_iter()
        .map(|b| (b.verb, b.table))
        .collect()
}

fn report(verb: Verb, table: &str) -> (Verb, String) {
    (verb, table.to_owned())
}

async fn raw_writes_are_reported_once(t: &TestDb) {
    let db = pool(t, true).await;
    let a = new_flag("a").insert(&db).await.unwrap();
    let logged = t.entries().await.len();
    let unverified = CHECKER.unverified();
    let insert = "INSERT INTO membership (org_id, user_id, role) VALUES ('o-1', 1, 'raw')";
    let update = format!(
        "UPDATE feature_flag SET cached_count = 4 WHERE id = {}",
        a.id
    );
    db.execute_unprepared(insert).await.unwrap();
    db.execute_unprepared(&update).await.unwrap();
    db.execute_unprepared("DELETE FROM membership")
        .await
        .unwrap();
    assert_eq!(
        reports(),
        vec![
            report(Verb::Insert, "membership"),
            report(Verb::Update, "feature_flag"),
            report(Verb::Delete, "membership"),
        ]
    );
    // In a transaction, and a failed statement (the code path is the hole all the same).
    let txn = db.begin().await.unwrap();
    txn.execute_unprepared(&update).await.unwrap();
    assert!(
        txn.execute_unprepared("UPDATE feature_flag SET no_such_column = 1")
            .await
            .is_err()
    );
    txn.rollback().await.unwrap();
    assert_eq!(
        reports(),
        vec![
            report(Verb::Update, "feature_flag"),
            report(Verb::Update, "feature_flag")
        ]
    );
    // What the metric callback sees is not counted a second time.
    let mut am = flag_by_id(a.id);
    am.cached_count = Set(5);
    feature_flag::Entity::update(am).exec(&db).await.unwrap();
    feature_flag::Entity::update_many()
        .col_expr(
            feature_flag::Column::CachedCount,
            sea_orm::sea_query::Expr::value(6),
        )
        .exec(&db)
        .await
        .unwrap();
    assert_eq!(
        reports(),
        vec![
            report(Verb::Update, "feature_flag"),
            report(Verb::Update, "feature_flag")
        ]
    );
    // Unaudited tables, reads and schema changes are not writes to audited tables.
    db.execute_unprepared("CREATE TABLE plain_note (id INTEGER PRIMARY KEY, body TEXT)")
        .await
        .unwrap();
    db.execute_unprepared("INSERT INTO plain_note (id, body) VALUES (1, 'x')")
        .await
        .unwrap();
    db.execute_unprepared("SELECT * FROM feature_flag")
        .await
        .unwrap();
    db.execute_unprepared("DROP TABLE plain_note")
        .await
        .unwrap();
    assert_eq!(reports(), vec![]);
    assert_eq!(CHECKER.unverified(), unverified);
    assert_eq!(
        t.entries().await.len(),
        logged,
        "no raw write logged anything"
    );
    db.close().await.unwrap();
}

async fn announced_and_muted_raw_writes_are_not_reported(t: &TestDb) {
    let db = pool(t, true).await;
    let a = new_flag("a").insert(&db).await.unwrap();
    let update = format!(
        "UPDATE feature_flag SET cached_count = 4 WHERE id = {}",
        a.id
    );
    // Announced by the task that writes: consumed, not reported.
    checked::announce::<feature_flag::Entity>(Verb::Update);
    db.execute_unprepared(&update).await.unwrap();
    assert_eq!(reports(), vec![]);
    // Muted in the writing task: on SQLite the statement runs on sqlx's worker thread, so this
    // holds only if the layer checks in the calling task.
    {
        let _muted = mute_signals();
        db.execute_unprepared(&update).await.unwrap();
        let txn = db.begin().await.unwrap();
        txn.execute_unprepared(&update).await.unwrap();
        txn.commit().await.unwrap();
    }
    mute_scopes(&["Membership"], async {
        db.execute_unprepared("DELETE FROM membership")
            .await
            .unwrap();
        db.execute_unprepared(&update).await.unwrap(); // FeatureFlag is not muted
    })
    .await;
    assert_eq!(reports(), vec![report(Verb::Update, "feature_flag")]);
    // Another task's announcement or mute covers nothing here.
    let other = {
        let db = db.clone();
        let update = update.clone();
        tokio::spawn(async move {
            let _muted = mute_signals();
            checked::announce::<feature_flag::Entity>(Verb::Update);
            tokio::time::sleep(Duration::from_millis(200)).await;
            db.execute_unprepared(&update).await.unwrap();
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    db.execute_unprepared(&update).await.unwrap();
    other.await.unwrap();
    assert_eq!(reports(), vec![report(Verb::Update, "feature_flag")]);
    db.close().await.unwrap();
}

async fn concurrent_raw_writes_are_attributed_to_their_tasks(t: &TestDb) {
    const ROUNDS: usize = 12;
    let db = pool(t, true).await;
    let a = new_flag("a").insert(&db).await.unwrap();
    let mut tasks = Vec::new();
    for worker in 0..3 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..ROUNDS {
                let sql = format!(
                    "UPDATE feature_flag SET cached_count = {i} WHERE id = {}",
                    a.id
                );
                if worker == 0 {
                    db.execute_unprepared(&sql).await.unwrap();
                } else if worker == 1 {
                    checked::announce::<feature_flag::Entity>(Verb::Update);
                    db.execute_unprepared(&sql).await.unwrap();
                } else {
                    let _muted = mute_signals();
                    db.execute_unprepared(&sql).await.unwrap();
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        reports(),
        vec![report(Verb::Update, "feature_flag"); ROUNDS]
    );
    db.close().await.unwrap();
}

async fn without_sqlx_logging_calls_are_unverified(t: &TestDb) {
    let db = pool(t, false).await;
    let before = CHECKER.unverified();
    db.execute_unprepared("DELETE FROM membership")
        .await
        .unwrap();
    let txn = db.begin().await.unwrap();
    txn.execute_unprepared("DELETE FROM membership")
        .await
        .unwrap();
    txn.commit().await.unwrap();
    assert_eq!(reports(), vec![]);
    assert_eq!(CHECKER.unverified(), before + 2);
    let _ = membership::Entity::find().all(&db).await.unwrap();
    assert_eq!(CHECKER.unverified(), before + 2, "only execute_unprepared");
    db.close().await.unwrap();
}

/// The caller is dropped while SQLite's worker runs the statement (a timeout): the statement
/// still commits, sqlx's event comes after the caller is gone, and the span closes on the worker
/// thread. It is checked there for the calling task — its announcement counts — and reported
/// otherwise, once, without disturbing the worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_dropped_caller_is_checked_for_its_task() {
    one_at_a_time(Backend::Sqlite, async |t: &TestDb| {
        let db = pool(t, true).await;
        let a = new_flag("a").insert(&db).await.unwrap();
        // About a second of work on the worker thread, then the write of `n`.
        let slow = |n: u32| {
            format!(
                "UPDATE feature_flag SET cached_count = (WITH RECURSIVE c(x) AS (SELECT 1 UNION \
                 ALL SELECT x + 1 FROM c WHERE x < {n}) SELECT count(*) FROM c) WHERE id = {}",
                a.id
            )
        };
        let dropped = async |announce: bool, n: u32| {
            let (db2, sql) = (db.clone(), slow(n));
            tokio::spawn(async move {
                if announce {
                    checked::announce::<feature_flag::Entity>(Verb::Update);
                }
                let call = db2.execute_unprepared(&sql);
                let timed_out = tokio::time::timeout(Duration::from_millis(50), call).await;
                assert!(
                    timed_out.is_err(),
                    "the statement was meant to outlast the caller"
                );
            })
            .await
            .unwrap();
            // Until the statement has run on the worker, and its span has closed there.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let now = feature_flag::Entity::find_by_id(a.id)
                    .one(&db)
                    .await
                    .unwrap();
                if now.is_some_and(|f| f.cached_count == n as i32) {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the slow update never ran"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        dropped(true, 2_000_000).await;
        assert_eq!(
            reports(),
            vec![],
            "the announcement of the dropped caller counts"
        );
        dropped(false, 2_000_001).await;
        assert_eq!(reports(), vec![report(Verb::Update, "feature_flag")]);
        db.execute_unprepared("SELECT 1").await.unwrap();
        db.close().await.unwrap();
    })
    .await;
}

/// Strict mode panics in the task that sent the raw write, naming table and verb, and leaves the
/// pool usable. A thread-local subscriber on a current-thread runtime carries a strict checker
/// here (the global one records); so only PostgreSQL and MySQL, whose statements run on the
/// calling thread (SQLite's worker thread sees only the global subscriber).
fn strict_mode_panics_in_the_calling_task(backend: Backend) {
    let _serial = SERIAL.blocking_lock();
    let strict = Checker::strict();
    let subscriber = tracing_subscriber::registry().with(strict.layer());
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(activity_tests::run(backend, async |t: &TestDb| {
            let db = pool_of(t, true, &strict).await;
            let a = new_flag("a").insert(&db).await.unwrap();
            let task = {
                let db = db.clone();
                tokio::spawn(async move {
                    let sql = "UPDATE feature_flag SET webhook_secret = 'top-secret-literal'";
                    let _ = db.execute_unprepared(sql).await;
                })
            };
            activity_tests::assert_strict_mode_panicked(task).await;
            assert_eq!(strict.bypassed(), 1);
            // The pool, the layer and the hooks go on working.
            db.execute_unprepared("SELECT 1").await.unwrap();
            let mut am = flag_by_id(a.id);
            am.active = Set(true);
            am.update(&db).await.unwrap();
            assert_eq!(strict.bypassed(), 1);
            db.close().await.unwrap();
        }));
    });
}

#[test]
#[cfg_attr(
    not(activity_postgres),
    ignore = "ACTIVITY_TEST_POSTGRES_URL is not set"
)]
fn postgres_strict_mode_panics_in_the_calling_task() {
    strict_mode_panics_in_the_calling_task(Backend::Postgres);
}

#[test]
#[cfg_attr(not(activity_mysql), ignore = "ACTIVITY_TEST_MYSQL_URL is not set")]
fn mysql_strict_mode_panics_in_the_calling_task() {
    strict_mode_panics_in_the_calling_task(Backend::MySql);
}

macro_rules! serial_backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::one_at_a_time(activity_tests::Backend::Sqlite, super::$name).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(activity_postgres), ignore = "ACTIVITY_TEST_POSTGRES_URL is not set")]
                async fn $name() {
                    super::one_at_a_time(activity_tests::Backend::Postgres, super::$name).await
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(activity_mysql), ignore = "ACTIVITY_TEST_MYSQL_URL is not set")]
                async fn $name() {
                    super::one_at_a_time(activity_tests::Backend::MySql, super::$name).await
                }
            )*
        }
    };
}

serial_backend_tests!(
    raw_writes_are_reported_once,
    announced_and_muted_raw_writes_are_not_reported,
    concurrent_raw_writes_are_attributed_to_their_tasks,
    without_sqlx_logging_calls_are_unverified,
);
