//! Shared pieces of the integration tests: test models, one fresh database per test on each
//! backend, and helpers to read the log back.
//!
//! SQLite always runs. PostgreSQL runs when `ACTIVITY_TEST_POSTGRES_URL` is set and MySQL/MariaDB
//! when `ACTIVITY_TEST_MYSQL_URL` is set (at build time: `build.rs` turns them into cfgs); then an
//! unreachable server fails the test. Without its URL a test shows as ignored, never as passed.

#![allow(missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use activity_seaorm::activity_log;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, EntityTrait,
    QueryOrder, Schema,
};

pub mod models;
pub mod nats;
pub mod proxy;

/// A backend under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

impl Backend {
    fn env(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("ACTIVITY_TEST_POSTGRES_URL"),
            Backend::MySql => Some("ACTIVITY_TEST_MYSQL_URL"),
        }
    }
}

/// A fresh database (SQLite file, PostgreSQL schema or MySQL database) for one test.
pub struct TestDb {
    pub db: DatabaseConnection,
    pub backend: Backend,
    admin: Option<DatabaseConnection>,
    name: String,
    /// How to open another pool on the same database: URL and PostgreSQL schema.
    url: (String, Option<String>),
    statements: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("backend", &self.backend)
            .field("name", &self.name)
            .finish()
    }
}

/// Whether the PostgreSQL suite runs on a partitioned log (`ACTIVITY_TEST_POSTGRES_LAYOUT` is
/// `partitioned` or `converted`). `partitioned`: every test's `activity_log` is created
/// partitioned by `schema::partition::partition_by_month`, with a month of its own for every
/// month from [`PARTITIONED_FROM`] to three months ahead (the tests' fixed dates lie there; the
/// rest goes to the default partition), so a test's entries spread over months as a production
/// log's do. `converted`: the empty log is converted as an existing one is, so everything before
/// next month sits in the legacy partition. CI runs the suite on the plain and partitioned
/// layouts, and the erasure, sealing, archive and read tests on the converted one.
pub fn postgres_partitioned() -> bool {
    std::env::var("ACTIVITY_TEST_POSTGRES_LAYOUT")
        .is_ok_and(|v| v == "partitioned" || v == "converted")
}

/// Whether the partitioned log is a converted one (see [`postgres_partitioned`]).
pub fn postgres_converted() -> bool {
    std::env::var("ACTIVITY_TEST_POSTGRES_LAYOUT").is_ok_and(|v| v == "converted")
}

/// The first month the partitioned layout creates.
pub const PARTITIONED_FROM: &str = "2025-01-01T00:00:00Z";

fn unique_name() -> String {
    format!("act_{}", uuid::Uuid::now_v7().simple())
}

impl TestDb {
    /// Panics when the backend's URL is not set: such tests carry
    /// `#[cfg_attr(not(activity_postgres), ignore = "...")]` (see `build.rs`), so they only run
    /// without their server when asked to with `--ignored`, and then fail loudly.
    pub async fn new(backend: Backend) -> TestDb {
        let name = unique_name();
        let (db, admin, url) = match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                let url = format!("sqlite://{}?mode=rwc", path.display());
                (connect(&url, None).await, None, (url, None))
            }
            Backend::Postgres | Backend::MySql => {
                let var = backend.env().unwrap_or_default();
                let url = std::env::var(var).unwrap_or_else(|_| {
                    panic!("{var} is not set: this {backend:?} test cannot run without its server")
                });
                let admin = connect(&url, None).await;
                if backend == Backend::Postgres {
                    admin
                        .execute_unprepared(&format!("CREATE SCHEMA {name}"))
                        .await
                        .unwrap_or_else(|e| panic!("creating schema on {url}: {e}"));
                    let again = (url.clone(), Some(name.clone()));
                    (connect(&url, Some(&name)).await, Some(admin), again)
                } else {
                    admin
                        .execute_unprepared(&format!("CREATE DATABASE {name}"))
                        .await
                        .unwrap_or_else(|e| panic!("creating database on {url}: {e}"));
                    let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
                    let url = format!("{base}/{name}");
                    (connect(&url, None).await, Some(admin), (url, None))
                }
            }
        };
        let statements = Arc::new(Mutex::new(Vec::new()));
        let sink = statements.clone();
        let mut db = db;
        db.set_metric_callback(move |info| {
            sink.lock().unwrap().push(info.statement.sql.clone());
        });
        activity_seaorm::schema::create_table(&db)
            .await
            .expect("create activity_log");
        if backend == Backend::Postgres && postgres_converted() {
            let through = chrono::Utc::now() + chrono::Duration::days(92);
            activity_seaorm::schema::partition::partition_by_month(&db, through)
                .await
                .expect("convert activity_log");
        } else if backend == Backend::Postgres && postgres_partitioned() {
            use activity_seaorm::schema::partition;
            db.execute_unprepared("DROP TABLE activity_log")
                .await
                .expect("drop the plain log");
            let now = chrono::Utc::now();
            partition::partition_by_month(&db, now + chrono::Duration::days(92))
                .await
                .expect("partition activity_log");
            let from = PARTITIONED_FROM.parse().expect("a time");
            partition::create_partitions(&db, from, now)
                .await
                .expect("the months before this one");
        }
        models::create_tables(&db).await;
        TestDb {
            db,
            backend,
            admin,
            name,
            url,
            statements,
        }
    }

    /// Another pool on the test's database (no metric callback): for work that may leave a
    /// pool unable to close, such as futures cancelled mid-query.
    pub async fn another_pool(&self, max_connections: u32) -> DatabaseConnection {
        connect_sized(&self.url.0, self.url.1.as_deref(), max_connections).await
    }

    /// The database's URL and, on PostgreSQL, the test's schema: for child processes.
    pub fn url(&self) -> (&str, Option<&str>) {
        (&self.url.0, self.url.1.as_deref())
    }

    /// Statements run since the last call (SQL text, as SeaORM's metric callback saw them).
    pub fn take_statements(&self) -> Vec<String> {
        std::mem::take(&mut *self.statements.lock().unwrap())
    }

    /// Every entry, oldest first.
    pub async fn entries(&self) -> Vec<activity_seaorm::ActivityEntry> {
        activity_log::Entity::find()
            .order_by_asc(activity_log::Column::CreatedAt)
            .order_by_asc(activity_log::Column::Id)
            .all(&self.db)
            .await
            .expect("read activity_log")
            .into_iter()
            .map(Into::into)
            .collect()
    }

    /// The whole `activity_log` table as text (every column), for leak checks.
    pub async fn dump(&self) -> String {
        let rows = activity_log::Entity::find()
            .all(&self.db)
            .await
            .expect("dump");
        format!("{rows:?}")
    }

    /// Drop the test's schema or database.
    pub async fn cleanup(self) {
        let TestDb {
            db,
            backend,
            admin,
            name,
            ..
        } = self;
        let _ = db.close().await;
        if let Some(admin) = admin {
            let sql = match backend {
                Backend::Postgres => format!("DROP SCHEMA IF EXISTS {name} CASCADE"),
                _ => format!("DROP DATABASE IF EXISTS {name}"),
            };
            let _ = admin.execute_unprepared(&sql).await;
        } else {
            let _ = std::fs::remove_file(std::env::temp_dir().join(format!("{name}.db")));
        }
    }

    pub fn db_backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }
}

async fn connect(url: &str, schema: Option<&str>) -> DatabaseConnection {
    connect_sized(url, schema, 8).await
}

pub async fn connect_sized(url: &str, schema: Option<&str>, max: u32) -> DatabaseConnection {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(max)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    if let Some(schema) = schema {
        opts.set_schema_search_path(schema.to_owned());
    }
    Database::connect(opts)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e} (is the server running?)"))
}

/// Create one model's table from its entity.
pub async fn create_entity_table<E: EntityTrait>(db: &DatabaseConnection, entity: E) {
    let schema = Schema::new(db.get_database_backend());
    let mut stmt = schema.create_table_from_entity(entity);
    db.execute(stmt.if_not_exists())
        .await
        .expect("create model table");
}

/// Generate one `#[tokio::test]` per backend for an `async fn name(t: &TestDb)`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { $crate::run($crate::Backend::Sqlite, super::$name).await }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(activity_postgres), ignore = "ACTIVITY_TEST_POSTGRES_URL is not set")]
                async fn $name() { $crate::run($crate::Backend::Postgres, super::$name).await }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(activity_mysql), ignore = "ACTIVITY_TEST_MYSQL_URL is not set")]
                async fn $name() { $crate::run($crate::Backend::MySql, super::$name).await }
            )*
        }
    };
}

/// One `#[tokio::test]` per backend for each test that also needs NATS, in modules `on_sqlite`,
/// `on_postgres` and `on_mysql`: ignored (not passed) unless `ACTIVITY_TEST_NATS_URL` and the
/// backend's URL are set. `nats_backend_tests!(a, b)` for `async fn a(backend: Backend)`;
/// `nats_backend_tests!(db: a, b)` for `async fn a(t: &TestDb)` on a fresh database.
#[macro_export]
macro_rules! nats_backend_tests {
    (db: $($name:ident),* $(,)?) => {
        $crate::nats_backend_tests!(@with run_db; $($name),*);
    };
    ($($name:ident),* $(,)?) => {
        $crate::nats_backend_tests!(@with run_backend; $($name),*);
    };
    (@with $how:ident; $($name:ident),*) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(activity_nats), ignore = "ACTIVITY_TEST_NATS_URL is not set")]
                async fn $name() { $crate::nats_backend_tests!(@$how Sqlite, $name) }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    not(all(activity_nats, activity_postgres)),
                    ignore = "ACTIVITY_TEST_NATS_URL or ACTIVITY_TEST_POSTGRES_URL is not set"
                )]
                async fn $name() { $crate::nats_backend_tests!(@$how Postgres, $name) }
            )*
        }
        mod on_mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    not(all(activity_nats, activity_mysql)),
                    ignore = "ACTIVITY_TEST_NATS_URL or ACTIVITY_TEST_MYSQL_URL is not set"
                )]
                async fn $name() { $crate::nats_backend_tests!(@$how MySql, $name) }
            )*
        }
    };
    (@run_db $backend:ident, $name:ident) => {
        $crate::run($crate::Backend::$backend, super::$name).await
    };
    (@run_backend $backend:ident, $name:ident) => {
        super::$name($crate::Backend::$backend).await
    };
}

/// A module of `#[tokio::test]`s running one `async fn name(t: &TestDb)` on some backends only:
/// `tests_on!(lost_answer: a_lost_answer_is_retried on postgres, mysql);`
#[macro_export]
macro_rules! tests_on {
    ($module:ident: $name:ident on $($backend:ident),+ $(,)?) => {
        mod $module {
            $( $crate::tests_on!(@one $backend, $name); )+
        }
    };
    (@one sqlite, $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn sqlite() { $crate::run($crate::Backend::Sqlite, super::$name).await }
    };
    (@one postgres, $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr(not(activity_postgres), ignore = "ACTIVITY_TEST_POSTGRES_URL is not set")]
        async fn postgres() { $crate::run($crate::Backend::Postgres, super::$name).await }
    };
    (@one mysql, $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr(not(activity_mysql), ignore = "ACTIVITY_TEST_MYSQL_URL is not set")]
        async fn mysql() { $crate::run($crate::Backend::MySql, super::$name).await }
    };
}

/// Run `test` on a fresh database of `backend` (if configured), then clean up.
pub async fn run<F>(backend: Backend, test: F)
where
    F: for<'a> AsyncFn(&'a TestDb),
{
    let t = TestDb::new(backend).await;
    test(&t).await;
    t.cleanup().await;
}

/// A new feature flag of team 7 with plain values: the tests' everyday row.
pub fn new_flag(key: &str) -> models::feature_flag::ActiveModel {
    use sea_orm::{NotSet, Set};
    models::feature_flag::ActiveModel {
        id: NotSet,
        team_id: Set(7),
        key: Set(key.to_owned()),
        active: Set(false),
        filters: Set(serde_json::json!({})),
        webhook_secret: Set("s".into()),
        config: Set(serde_json::json!({})),
        description: Set(None),
        cached_count: Set(0),
        last_accessed_at: Set(None),
    }
}

/// A primary-key-only active model of a flag: the hook path must read the row.
pub fn flag_by_id(id: i32) -> models::feature_flag::ActiveModel {
    models::feature_flag::ActiveModel {
        id: sea_orm::Unchanged(id),
        ..Default::default()
    }
}

/// `task` wrote `'top-secret-literal'` into `feature_flag` behind the log under a strict
/// checker: it panicked, naming the verb and the table, and not the value.
pub async fn assert_strict_mode_panicked(task: tokio::task::JoinHandle<()>) {
    let payload = task.await.expect_err("strict mode must panic").into_panic();
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains(
            "UPDATE on audited table `feature_flag` did not pass through the activity log"
        ),
        "{message}"
    );
    assert!(!message.contains("top-secret-literal"), "{message}");
}

/// The `activity_log` of earlier versions, as they created it (identifier columns 64
/// characters, `item_id` 72, with the indexes on them).
pub fn old_activity_log_sql(backend: Backend) -> Vec<String> {
    let columns = |uuid: &str, ts: &str, boolean: &str, json: &str| {
        format!(
            "id {uuid} NOT NULL PRIMARY KEY, created_at {ts} NOT NULL, \
             organization_id varchar(64), team_id varchar(64), user_id varchar(64), \
             user_name varchar(255), impersonated_by varchar(64), \
             was_impersonated {boolean} NOT NULL DEFAULT false, \
             is_system {boolean} NOT NULL DEFAULT false, scope varchar(79) NOT NULL, \
             item_id varchar(72), activity varchar(79) NOT NULL, detail {json} NOT NULL, \
             request_id varchar(128), correlation_id varchar(64), ip_address varchar(64), \
             user_agent varchar(512), client varchar(128)"
        )
    };
    match backend {
        Backend::Postgres => vec![
            format!(
                "CREATE TABLE activity_log ({})",
                columns("uuid", "timestamp with time zone", "boolean", "jsonb")
            ),
            "CREATE INDEX activity_log_item ON activity_log \
             (team_id, scope, item_id, created_at DESC, id DESC)"
                .into(),
            "CREATE INDEX activity_log_user ON activity_log (user_id, created_at DESC) \
             WHERE user_id IS NOT NULL"
                .into(),
        ],
        Backend::MySql => vec![format!(
            "CREATE TABLE activity_log ({}, \
             KEY activity_log_item (team_id, scope, item_id, created_at DESC, id DESC), \
             KEY activity_log_user (user_id, created_at DESC)) \
             CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin",
            columns("binary(16)", "datetime(6)", "bool", "json")
        )],
        Backend::Sqlite => vec![format!(
            "CREATE TABLE activity_log ({})",
            columns(
                "uuid_text",
                "timestamp_with_timezone_text",
                "boolean",
                "json_text"
            )
        )],
    }
}

/// A runtime for property tests, which drive async cases from a synchronous runner.
pub fn proptest_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A property test's configuration: `cases` cases, no failure files.
pub fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// A fingerprint of `text`, to tell whether a table changed.
pub fn fingerprint(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// An outbox row listing `entry_ids` (comma-separated), as a writer or a crashed relay leaves
/// one: for the relay's tests.
pub async fn outbox_row(db: &DatabaseConnection, entry_ids: &str) {
    use activity_seaorm::outbox::activity_outbox;
    use sea_orm::{ActiveModelTrait, Set};
    activity_outbox::ActiveModel {
        created_at: Set(chrono::Utc::now()),
        entry_ids: Set(entry_ids.to_owned()),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert an outbox row");
}
