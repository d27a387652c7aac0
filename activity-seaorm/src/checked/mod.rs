//! Checked mode: every write to an audited table that did not pass through the log is reported.
//!
//! SeaORM runs `ActiveModelBehavior` hooks only for the `ActiveModel` methods (`insert`,
//! `update`, `save`, `delete`). `Entity::insert(am).exec`, `Entity::update(am).exec`,
//! `Entity::delete_by_id(id).exec`, `insert_many`/`update_many`/`delete_many` and raw SQL write
//! the same tables and leave no entry. A [`Checker`] sees every statement SeaORM runs on a
//! connection (through SeaORM's metric callback), finds the tables it writes, and reports each
//! write to an audited table that no write path of this library announced:
//!
//! - [`Checker::strict`]: panics with the table and verb — for tests, where a silent hole should
//!   fail the build;
//! - [`Checker::warn`]: a `tracing` warning, counted ([`Checker::bypassed`] and the process-wide
//!   [`bypassed_writes`]) — for production;
//! - [`Checker::record`]: only counts and keeps the reports ([`Checker::take_reports`]) — for
//!   tests that assert on them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sea_orm::DbErr> {
//! use activity_seaorm::checked::Checker;
//! let mut db = sea_orm::Database::connect("sqlite::memory:").await?;
//! let checker = Checker::warn();
//! checker.install(&mut db); // transactions begun from `db` are checked too
//! // ... or, with a metric callback of your own:
//! let checker2 = checker.clone();
//! db.set_metric_callback(move |info| {
//!     // your metrics here
//!     checker2.observe(info);
//! });
//! assert_eq!(checker.bypassed(), 0);
//! # Ok(()) }
//! ```
//!
//! **Audited tables.** Every `#[derive(ModelActivity)]` model whose struct carries
//! `#[sea_orm(table_name = "...")]` (both SeaORM entity formats do) registers its table when the
//! program starts ([`audited_tables`](crate::audited::audited_tables)); add others with
//! [`Checker::table`]. Nothing else is checked: `activity_log` itself, and any table without a
//! model, are not audited.
//!
//! **Announcements.** The library's own write paths — the hooks (`before_save`,
//! `before_delete`), [`Tracked`](crate::Tracked) (through the hooks) and [`bulk`](crate::bulk)
//! — announce each write (task, table, verb) right before SeaORM runs it; the checker consumes
//! the announcement when it sees the statement (failed statements consume too). A write with no
//! announcement from its own task (tokio task, or thread outside a task) is a bypass — reported
//! even if the statement failed: the code path is the hole, whatever this run did. Your own
//! write paths that log through [`log_activity`](crate::log_activity) can [`announce`] theirs.
//!
//! **Muting is the explicit skip.** A write to a table whose scope is muted in the writing task
//! ([`mute_signals`](crate::mute_signals), [`mute_scopes`](crate::mute_scopes)) is never
//! reported, whichever path it takes: muting says "no entries for this on purpose".
//!
//! **Stale announcements are bounded.** An announcement whose statement never ran (a hook of
//! yours that failed after ours, an error before SeaORM sent the statement) would let a later
//! bypass of the same table and verb in the same task go unreported. So each task keeps at most
//! one announcement per (table, verb) — a new one replaces the old, whose statement evidently
//! never ran — and announcements older than a minute are dropped. A no-op update (no column
//! set: SeaORM sends nothing) announces nothing. The price: two hooked writes of the same table
//! and verb interleaved *within one task* (`join!` of two `update`s, both hooks before either
//! statement) count as one announcement, and the second is reported.
//!
//! **What it cannot see.** SeaORM 2.0.4 calls the metric callback for every statement it runs
//! through `execute`/`execute_raw`, `query_one`/`query_all` (so `RETURNING` writes) and streams,
//! on SQLite, PostgreSQL and MySQL, in pools and in transactions begun from the connection, but
//! **not for `execute_unprepared`**: raw SQL sent that way is seen only through
//! `Checker::layer` (feature `checked-layer`), a `tracing-subscriber` layer that reads SeaORM's
//! span around that call and sqlx's statement event inside it; its docs say what it needs (a
//! global `Registry` subscriber, SeaORM's default `sqlx_logging` on). The layer sees that call on
//! every connection of the process; other statements on a
//! connection the checker is not installed on are not seen, and an announcement made for a write
//! on such a connection can cover a bypass of the same table and verb in the same task on a
//! checked one. The SQL is classified by a tokenizer, not a parser (see the `sql` module docs):
//! writes hidden in functions, triggers or `EXPLAIN ANALYZE` are not seen. Reports carry only the
//! verb and the table name, never the SQL text or bound values.
//!
//! **Cost.** Off by default: with no [`Checker`] alive, an announcement is one relaxed atomic
//! load and nothing observes statements. With one installed, every statement's text is
//! tokenized once (no allocation) and each hooked write takes a short global lock twice.

mod sql;
#[cfg(feature = "checked-layer")]
mod unprepared;

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use sea_orm::metric::Info;
use sea_orm::{ActiveModelTrait, EntityName};

use crate::keys::TaskKey;
pub use sql::Verb;

/// One write to an audited table that did not pass through the log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Bypass {
    /// What the statement did.
    pub verb: Verb,
    /// The table, as the statement names it.
    pub table: String,
    /// The schema, if the statement names one.
    pub schema: Option<String>,
}

impl fmt::Display for Bypass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on audited table `", self.verb)?;
        if let Some(schema) = &self.schema {
            write!(f, "{schema}.")?;
        }
        write!(f, "{}` did not pass through the activity log", self.table)
    }
}

/// What a [`Checker`] does with a bypass, besides counting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Panic,
    Warn,
    Record,
}

/// Reports kept by a checker for [`Checker::take_reports`]; older ones are dropped (the count
/// stays exact).
const KEPT_REPORTS: usize = 256;

/// Watches the statements of the connections it is installed on; see the [module docs](self).
/// Clones share counts and reports.
#[derive(Clone)]
pub struct Checker {
    inner: Arc<Inner>,
}

struct Inner {
    mode: Mode,
    /// Tables added with [`Checker::table`]: (table, schema).
    extra: Vec<(&'static str, Option<String>)>,
    bypassed: AtomicU64,
    reports: Mutex<VecDeque<Bypass>>,
    /// `execute_unprepared` calls whose SQL the layer never saw.
    #[cfg_attr(not(feature = "checked-layer"), allow(dead_code))]
    unverified: AtomicU64,
    /// [`backend_bit`]s of the connections installed on or observed.
    backends: AtomicU8,
}

impl Drop for Inner {
    fn drop(&mut self) {
        LIVE_CHECKERS.fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for Checker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checker")
            .field("mode", &self.inner.mode)
            .field("bypassed", &self.bypassed())
            .finish()
    }
}

/// Checkers alive: while zero, announcements cost one atomic load.
static LIVE_CHECKERS: AtomicUsize = AtomicUsize::new(0);
/// Bypasses reported by every checker of the process.
static BYPASSED: AtomicU64 = AtomicU64::new(0);

/// Writes to audited tables reported by every [`Checker`] of the process since it started: a
/// number to export as a metric (it should stay 0).
pub fn bypassed_writes() -> u64 {
    BYPASSED.load(Ordering::Relaxed)
}

impl Checker {
    fn new(mode: Mode, extra: Vec<(&'static str, Option<String>)>) -> Checker {
        LIVE_CHECKERS.fetch_add(1, Ordering::Relaxed);
        Checker {
            inner: Arc::new(Inner {
                mode,
                extra,
                bypassed: AtomicU64::new(0),
                reports: Mutex::new(VecDeque::new()),
                unverified: AtomicU64::new(0),
                backends: AtomicU8::new(0),
            }),
        }
    }

    /// Panics on a bypass, naming the table and verb: for tests.
    pub fn strict() -> Checker {
        Checker::new(Mode::Panic, Vec::new())
    }

    /// A counted `tracing` warning per bypass (target `activity_seaorm::checked`): for
    /// production.
    pub fn warn() -> Checker {
        Checker::new(Mode::Warn, Vec::new())
    }

    /// Counts and keeps bypasses, silently: for tests that assert on [`Checker::take_reports`].
    pub fn record() -> Checker {
        Checker::new(Mode::Record, Vec::new())
    }

    /// Also audit `E`'s table (an entity whose model has no `#[derive(ModelActivity)]` with
    /// `#[sea_orm(table_name)]`, e.g. a hand-written `EntityName`). A new checker: call it
    /// before installing.
    pub fn table<E: EntityName>(self) -> Checker {
        let entity = E::default();
        let mut extra = self.inner.extra.clone();
        extra.push((entity.table_name(), entity.schema_name().map(str::to_owned)));
        Checker::new(self.inner.mode, extra)
    }

    /// Observe every statement `db` runs, and every transaction begun from it. Replaces a
    /// metric callback set before; to keep yours, call [`Checker::observe`] from it instead.
    pub fn install(&self, db: &mut sea_orm::DatabaseConnection) {
        self.saw_backend(sea_orm::ConnectionTrait::get_database_backend(db));
        let checker = self.clone();
        db.set_metric_callback(move |info| checker.observe(info));
    }

    /// Check one statement: call it from your own metric callback.
    pub fn observe(&self, info: &Info<'_>) {
        let statement = info.statement;
        self.saw_backend(statement.db_backend);
        sql::writes(&statement.sql, statement.db_backend, |write| {
            self.check(write);
        });
    }

    fn saw_backend(&self, backend: sea_orm::DbBackend) {
        let bit = backend_bit(backend);
        if self.inner.backends.load(Ordering::Relaxed) & bit == 0 {
            self.inner.backends.fetch_or(bit, Ordering::Relaxed);
        }
    }

    /// Bypasses this checker (or a clone) reported.
    pub fn bypassed(&self) -> u64 {
        self.inner.bypassed.load(Ordering::Relaxed)
    }

    /// The bypasses reported since the last call, oldest first (at most the last 256).
    pub fn take_reports(&self) -> Vec<Bypass> {
        std::mem::take(&mut *lock(&self.inner.reports)).into()
    }

    fn check(&self, write: sql::Write<'_>) {
        self.check_for(write, None);
    }

    /// Check a write of `task` (`None`: the current task). Another task's mutes are not
    /// knowable from here (and are likely gone with it): its write is judged on its
    /// announcements alone, and never panics here, in a thread that is not the writer's.
    fn check_for(&self, write: sql::Write<'_>, task: Option<TaskKey>) {
        let Some(scope) = self.audited(&write) else {
            return;
        };
        let key = task.unwrap_or_else(TaskKey::current);
        let muted = task.is_none() && scope.is_some_and(activity_core::is_muted);
        if consume(key, write.table.text, write.verb) || muted {
            return;
        }
        let off_task = task.is_some();
        let bypass = Bypass {
            verb: write.verb,
            table: write.table.text.to_owned(),
            schema: write.schema.map(|s| s.text.to_owned()),
        };
        self.inner.bypassed.fetch_add(1, Ordering::Relaxed);
        let total = BYPASSED.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut reports = lock(&self.inner.reports);
            if reports.len() == KEPT_REPORTS {
                reports.pop_front();
            }
            reports.push_back(bypass.clone());
        }
        match self.inner.mode {
            Mode::Record => {}
            Mode::Warn => tracing::warn!(
                target: "activity_seaorm::checked",
                verb = bypass.verb.as_str(),
                table = bypass.table,
                schema = bypass.schema,
                bypassed_writes = total,
                "write to an audited table bypassed the activity log"
            ),
            // Unwinding already (the layer checks while a span guard drops): a second panic
            // would abort; off the writer's task it would hit the wrong code. Say it instead;
            // the count and the report stand.
            Mode::Panic if off_task || std::thread::panicking() => tracing::error!(
                target: "activity_seaorm::checked",
                verb = bypass.verb.as_str(),
                table = bypass.table,
                "write to an audited table bypassed the activity log"
            ),
            #[allow(clippy::panic)] // Strict mode exists to fail the test that wrote it.
            Mode::Panic => panic!(
                "activity_seaorm checked mode: {bypass}: it ran no ActiveModelBehavior hook \
                 (`Entity::insert/update/delete_by_id(..).exec`, `*_many` or raw SQL). Use the \
                 ActiveModel methods or `activity_seaorm::bulk`, log it yourself and \
                 `checked::announce` it, or mute it on purpose"
            ),
        }
    }

    /// `Some(scope)` if the write's table is audited (`None` inside: a table added with
    /// [`Checker::table`], which has no scope to be muted by).
    fn audited(&self, write: &sql::Write<'_>) -> Option<Option<&'static str>> {
        let schema_matches = |registered: Option<&str>| match (registered, write.schema) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b.text),
            _ => true,
        };
        if let Some(t) = registry()
            .iter()
            .find(|t| t.table.eq_ignore_ascii_case(write.table.text) && schema_matches(t.schema))
        {
            return Some(Some(t.scope));
        }
        self.inner
            .extra
            .iter()
            .any(|(table, schema)| {
                table.eq_ignore_ascii_case(write.table.text) && schema_matches(schema.as_deref())
            })
            .then_some(None)
    }
}

fn backend_bit(backend: sea_orm::DbBackend) -> u8 {
    match backend {
        sea_orm::DbBackend::Postgres => 1,
        sea_orm::DbBackend::MySql => 2,
        sea_orm::DbBackend::Sqlite => 4,
        _ => 8,
    }
}

/// The derive's registrations, deduplicated.
fn registry() -> &'static [activity_core::audited::AuditedTable] {
    static REGISTRY: OnceLock<Vec<activity_core::audited::AuditedTable>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut all: Vec<_> = activity_core::audited::audited_tables().copied().collect();
        all.sort_by_key(|t| (t.table, t.schema, t.scope));
        all.dedup();
        all
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// Announcements.

/// An announcement older than this is dropped: its statement never ran.
const ANNOUNCEMENT_TTL: Duration = Duration::from_secs(60);
/// At most this many announcements wait per task (the oldest goes first).
const PER_TASK: usize = 16;

struct Announced {
    table: &'static str,
    verb: Verb,
    at: Instant,
}

type Announcements = foldhash::HashMap<TaskKey, Vec<Announced>>;

/// Tasks with announcements waiting, readable without the lock.
static WAITING: AtomicUsize = AtomicUsize::new(0);
/// Map size at which stale announcements are swept; doubles when a sweep frees little.
static SWEEP_AT: AtomicUsize = AtomicUsize::new(1024);

fn announcements() -> MutexGuard<'static, Announcements> {
    static MAP: OnceLock<Mutex<Announcements>> = OnceLock::new();
    lock(MAP.get_or_init(Mutex::default))
}

/// Announce that the current task is about to write `entity`'s table through a path that logs
/// it (e.g. a statement followed by [`log_activity`](crate::log_activity)), so a [`Checker`]
/// does not report it. Announce right before the statement: the next statement of the task that
/// writes the table with this verb consumes it. Costs one atomic load while no checker is alive.
pub fn announce<E: EntityName>(verb: Verb) {
    if LIVE_CHECKERS.load(Ordering::Relaxed) == 0 {
        return;
    }
    announce_table(E::default().table_name(), verb);
}

/// [`announce`] for the write a hook's active model is about to make: nothing for an update
/// that sets no column (SeaORM sends no statement then).
pub(crate) fn announce_save<A: ActiveModelTrait>(am: &A, insert: bool) {
    if LIVE_CHECKERS.load(Ordering::Relaxed) == 0 || !(insert || am.is_changed()) {
        return;
    }
    let verb = if insert { Verb::Insert } else { Verb::Update };
    announce_table(A::Entity::default().table_name(), verb);
}

fn announce_table(table: &'static str, verb: Verb) {
    let now = Instant::now();
    let mut map = announcements();
    if map.len() >= SWEEP_AT.load(Ordering::Relaxed) {
        map.retain(|_, list| {
            list.retain(|a| now.duration_since(a.at) < ANNOUNCEMENT_TTL);
            !list.is_empty()
        });
        SWEEP_AT.store((map.len() * 2).max(1024), Ordering::Relaxed);
    }
    let list = map.entry(TaskKey::current()).or_default();
    list.retain(|a| {
        !(a.table == table && a.verb == verb) && now.duration_since(a.at) < ANNOUNCEMENT_TTL
    });
    if list.len() >= PER_TASK {
        list.remove(0);
    }
    list.push(Announced {
        table,
        verb,
        at: now,
    });
    WAITING.store(map.len(), Ordering::Release);
}

/// Consume `key`'s announcement of a `verb` write to `table`, if there is one.
fn consume(key: TaskKey, table: &str, verb: Verb) -> bool {
    if WAITING.load(Ordering::Acquire) == 0 {
        return false;
    }
    let mut map = announcements();
    let Some(list) = map.get_mut(&key) else {
        return false;
    };
    let Some(i) = list
        .iter()
        .position(|a| a.verb == verb && a.table.eq_ignore_ascii_case(table))
    else {
        return false;
    };
    let fresh = Instant::now().duration_since(list.remove(i).at) < ANNOUNCEMENT_TTL;
    if list.is_empty() {
        map.remove(&key);
    }
    WAITING.store(map.len(), Ordering::Release);
    fresh
}
