//! Reliability under faults, on every backend.
//!
//! - `atomicity_under_faults`: a seeded randomized model check. Each iteration runs one
//!   `activity_seaorm::transaction` with a random mix of inserts, updates (hook path, loaded
//!   models, `Tracked`, `update_without_returning`, no-op and signal-excluded updates) and
//!   deletes, nested savepoints that commit or fail, injected errors, database errors, poisoned
//!   log entries that make the flush (or, on PostgreSQL, the COMMIT) fail, cancellation and
//!   panics. After every iteration the log, the tables and the event stream are compared with a
//!   model of what should have committed.
//! - `concurrent_updates_keep_the_chain`: 32 tasks × 200 update transactions over 4 shared rows
//!   (PostgreSQL, MariaDB); each row's `updated` entries must form an unbroken before/after chain
//!   ending at the row's final value.
//! - `connection_loss_rolls_back`: the session is killed from another connection in the middle
//!   of a transaction (PostgreSQL, MariaDB); the caller gets an error and nothing remains.
//!
//! Reproduce: `ACTIVITY_SEED=<seed> ACTIVITY_ITERATIONS=<n> cargo test -p activity-tests --test
//! reliability -- --nocapture` (the seed is printed at the start and on failure).
//! Global settings (failure policy, hooks) are left alone: tests here run in parallel.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use activity_seaorm::events::subscribe;
use activity_seaorm::prelude::*;
use activity_seaorm::{ActivityEntry, activity_log, log_activity, transaction};
use activity_tests::models::{feature_flag, setting};
use activity_tests::{Backend, TestDb, backend_tests};
use scoped_futures::ScopedFutureExt;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, IntoActiveModel, ModelTrait, NotSet, PaginatorTrait, QueryFilter, QueryOrder, Set,
    Statement, Unchanged,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// The seeded PRNG (fastrand's), with the few draws the model check makes.

#[derive(Clone, Debug)]
struct Rng(fastrand::Rng);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(fastrand::Rng::with_seed(seed))
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0.u64(..n)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn fork(&mut self) -> Rng {
        Rng::new(self.0.u64(..))
    }

    fn pick<K: Clone, V>(&mut self, map: &BTreeMap<K, V>) -> Option<K> {
        if map.is_empty() {
            return None;
        }
        let i = self.0.usize(..map.len());
        map.keys().nth(i).cloned()
    }
}

const DEFAULT_SEED: u64 = 0x5EED_AC71_0001;
const DEFAULT_ITERATIONS: u64 = 500;

fn seed_for(backend: Backend) -> u64 {
    let base = std::env::var("ACTIVITY_SEED")
        .ok()
        .and_then(|s| {
            let s = s.trim();
            s.strip_prefix("0x")
                .map_or_else(|| s.parse().ok(), |h| u64::from_str_radix(h, 16).ok())
        })
        .unwrap_or(DEFAULT_SEED);
    base ^ match backend {
        Backend::Sqlite => 0,
        Backend::Postgres => 0x1000,
        Backend::MySql => 0x2000,
    }
}

fn iterations() -> u64 {
    std::env::var("ACTIVITY_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_ITERATIONS)
}

/// Prints the seed if the test panics, so the failing run can be replayed.
struct SeedReport {
    what: &'static str,
    backend: Backend,
    seed: u64,
}

impl Drop for SeedReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\n*** {} failed on {:?}: replay with ACTIVITY_SEED={:#x} (per-backend seed {:#x}) ***\n",
                self.what,
                self.backend,
                self.seed
                    ^ match self.backend {
                        Backend::Sqlite => 0,
                        Backend::Postgres => 0x1000,
                        Backend::MySql => 0x2000,
                    },
                self.seed
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model of what should be committed.

/// One expected entry: what the log must hold for one logged change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Expect {
    scope: String,
    item_id: Option<String>,
    activity: String,
    fields: Vec<String>,
}

impl Expect {
    fn of(e: &ActivityEntry) -> Expect {
        Expect {
            scope: e.scope.clone(),
            item_id: e.item_id.clone(),
            activity: e.activity.clone(),
            fields: e
                .detail
                .changes
                .iter()
                .map(|c| c.field.clone().unwrap_or_default())
                .collect(),
        }
    }
}

/// Rows as they are (in the database, or in the transaction being modelled) plus the entries
/// the current transaction frame owes the log.
#[derive(Clone, Debug, Default)]
struct World {
    flags: BTreeMap<i32, feature_flag::Model>,
    settings: BTreeMap<String, setting::Model>,
    expected: Vec<Expect>,
    /// A poisoned log entry is buffered in this frame (or a released child).
    poisoned: bool,
}

impl World {
    fn expect(&mut self, scope: &str, item: String, activity: &str, fields: &[&str]) {
        self.expected.push(Expect {
            scope: scope.into(),
            item_id: Some(item),
            activity: activity.into(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        });
    }
}

#[derive(Debug, Default)]
struct Stats {
    iterations: u64,
    committed: u64,
    rolled_back: u64,
    operations: u64,
    savepoints: u64,
    savepoint_rollbacks: u64,
    outer_errors: u64,
    savepoint_errors: u64,
    db_errors: u64,
    poisons: u64,
    poisons_discarded: u64,
    cancels: u64,
    panics: u64,
    entries_checked: u64,
    rows_checked: u64,
    events_checked: u64,
}

impl Stats {
    fn faults(&self) -> u64 {
        self.outer_errors
            + self.savepoint_errors
            + self.db_errors
            + self.poisons
            + self.cancels
            + self.panics
    }
}

/// How a poisoned entry fails.
#[derive(Clone, Copy, Debug)]
enum Poison {
    /// Scope `Poison`: rejected by a CHECK constraint (servers) or trigger (SQLite).
    Rejected,
    /// A scope longer than varchar(79) (servers enforce lengths; SQLite does not).
    Overlong,
    /// Scope `DeferredPoison`: a deferred constraint trigger fails the COMMIT (PostgreSQL).
    AtCommit,
}

impl Poison {
    fn scope(self) -> String {
        match self {
            Poison::Rejected => "Poison".into(),
            Poison::Overlong => "Overlong".repeat(12),
            Poison::AtCommit => "DeferredPoison".into(),
        }
    }
}

const INJECTED: &str = "injected fault";
const INJECTED_PANIC: &str = "injected panic inside activity_seaorm::transaction";

/// Keep the expected panics out of the output; every other panic goes to the previous hook
/// unchanged.
fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if text != Some(INJECTED_PANIC) {
                previous(info);
            }
        }));
    });
}

fn injected(why: &str) -> DbErr {
    DbErr::Custom(format!("{INJECTED}: {why}"))
}

/// Mutable state threaded through one iteration.
struct Run {
    rng: Rng,
    seq: u64,
    poisons: Vec<Poison>,
    stats: Stats,
    /// What this iteration did, printed when a check fails.
    trace: Vec<String>,
}

impl Run {
    fn note(&mut self, what: String) {
        self.trace.push(what);
    }

    fn seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

type Step<'a> = Pin<Box<dyn Future<Output = Result<(), DbErr>> + Send + 'a>>;

const MAX_DEPTH: u32 = 2;

/// One transaction frame: random operations, maybe nested savepoints, maybe an injected error.
fn frame<'a>(
    txn: &'a DatabaseTransaction,
    run: &'a mut Run,
    w: &'a mut World,
    depth: u32,
) -> Step<'a> {
    Box::pin(async move {
        let ops = 1 + run.rng.below(if depth == 0 { 6 } else { 4 });
        for _ in 0..ops {
            run.stats.operations += 1;
            let roll = run.rng.below(100);
            run.note(format!("depth {depth}: roll {roll}"));
            match roll {
                0..=21 => insert_flag(txn, run, w).await?,
                22..=39 => update_flag(txn, run, w).await?,
                40..=47 => delete_flag(txn, run, w).await?,
                48..=57 => insert_setting(txn, run, w).await?,
                58..=64 => update_setting(txn, run, w).await?,
                65..=69 => delete_setting(txn, run, w).await?,
                70..=75 => manual(txn, run, w).await?,
                76..=78 => poison(txn, run, w).await?,
                79..=80 => duplicate_key(txn, run, w).await?,
                _ if depth < MAX_DEPTH => savepoint(txn, run, w, depth).await?,
                _ => manual(txn, run, w).await?,
            }
        }
        if depth > 0 && run.rng.chance(25) {
            run.stats.savepoint_errors += 1;
            return Err(injected("savepoint closure returned Err"));
        }
        Ok(())
    })
}

async fn savepoint(
    txn: &DatabaseTransaction,
    run: &mut Run,
    w: &mut World,
    depth: u32,
) -> Result<(), DbErr> {
    run.stats.savepoints += 1;
    let mut child = w.clone();
    let (r, c) = (&mut *run, &mut child);
    let result: Result<(), DbErr> = transaction(txn, move |sp| {
        async move { frame(sp, r, c, depth + 1).await }.scope_boxed()
    })
    .await;
    run.note(format!(
        "savepoint depth {} -> {:?}",
        depth + 1,
        result.as_ref().map_err(ToString::to_string)
    ));
    match result {
        Ok(()) => *w = child,
        Err(e) if e.to_string().contains(INJECTED) => {
            run.stats.savepoint_rollbacks += 1;
            if child.poisoned && !w.poisoned {
                run.stats.poisons_discarded += 1;
            }
        }
        Err(e) => panic!("unexpected error from a savepoint: {e}"),
    }
    Ok(())
}

fn new_flag(key: String, active: bool, description: Option<String>) -> feature_flag::ActiveModel {
    feature_flag::ActiveModel {
        id: NotSet,
        team_id: Set(1),
        key: Set(key),
        active: Set(active),
        filters: Set(json!({"rollout": 10})),
        webhook_secret: Set(String::new()),
        config: Set(json!({})),
        description: Set(description),
        cached_count: Set(0),
        last_accessed_at: Set(None),
    }
}

fn random_description(rng: &mut Rng) -> Option<String> {
    match rng.below(4) {
        0 => None,
        n => Some(["alpha", "beta", "gamma"][n as usize - 1].to_owned()),
    }
}

async fn insert_flag(txn: &DatabaseTransaction, run: &mut Run, w: &mut World) -> Result<(), DbErr> {
    let key = format!("f{}", run.seq());
    let active = run.rng.chance(50);
    let description = random_description(&mut run.rng);
    let model = new_flag(key, active, description).insert(txn).await?;
    w.expect("FeatureFlag", model.id.to_string(), "created", &[]);
    w.flags.insert(model.id, model);
    Ok(())
}

async fn update_flag(txn: &DatabaseTransaction, run: &mut Run, w: &mut World) -> Result<(), DbErr> {
    let Some(id) = run.rng.pick(&w.flags) else {
        return insert_flag(txn, run, w).await;
    };
    let before = w.flags[&id].clone();
    let mode = run.rng.below(6);
    run.note(format!("update_flag id={id} mode={mode}"));
    if mode == 5 {
        // Only excluded / signal-excluded fields: no entry, no before-read.
        let mut am = feature_flag::ActiveModel {
            id: Unchanged(id),
            ..Default::default()
        };
        let mut after = before.clone();
        if run.rng.chance(50) {
            after.cached_count = before.cached_count + 1;
            am.cached_count = Set(after.cached_count);
        } else {
            let at = chrono::DateTime::from_timestamp(1_700_000_000 + run.seq() as i64, 0);
            after.last_accessed_at = at;
            am.last_accessed_at = Set(at);
        }
        let got = am.update(txn).await?;
        assert_eq!(got, after, "quiet update returned the wrong row");
        w.flags.insert(id, after);
        return Ok(());
    }
    let set_active = run.rng.chance(60);
    let set_description = !set_active || run.rng.chance(50);
    let mut after = before.clone();
    if set_active {
        after.active = run.rng.chance(50);
    }
    if set_description {
        after.description = random_description(&mut run.rng);
    }
    let mut fields = Vec::new();
    if after.active != before.active {
        fields.push("enabled");
    }
    if after.description != before.description {
        fields.push("description");
    }
    let apply = |am: &mut feature_flag::ActiveModel| {
        if set_active {
            am.active = Set(after.active);
        }
        if set_description {
            am.description = Set(after.description.clone());
        }
    };
    match mode {
        // Hook path with a primary-key-only active model: the before-state is read.
        0 => {
            let mut am = feature_flag::ActiveModel {
                id: Unchanged(id),
                ..Default::default()
            };
            apply(&mut am);
            assert_eq!(am.update(txn).await?, after);
        }
        // Hook path from the loaded model.
        1 => {
            let mut am = before.clone().into_active_model();
            apply(&mut am);
            assert_eq!(am.update(txn).await?, after);
        }
        // `Tracked`: no before-read.
        2 | 3 => {
            let mut tracked = track(before.clone());
            apply(&mut tracked);
            assert_eq!(tracked.update(txn).await?, after);
        }
        // `update_without_returning`: logged at flush from the predicted entry.
        _ => {
            let mut am = before.clone().into_active_model();
            apply(&mut am);
            am.update_without_returning(txn).await?;
        }
    }
    if !fields.is_empty() {
        w.expect("FeatureFlag", id.to_string(), "updated", &fields);
    }
    w.flags.insert(id, after);
    Ok(())
}

async fn delete_flag(txn: &DatabaseTransaction, run: &mut Run, w: &mut World) -> Result<(), DbErr> {
    let Some(id) = run.rng.pick(&w.flags) else {
        return insert_flag(txn, run, w).await;
    };
    let model = w.flags.remove(&id).expect("picked");
    let recorded = recorded_fields(&model);
    let result = if run.rng.chance(50) {
        model.delete(txn).await?
    } else {
        // Primary key only: the hook reads the row so the entry has a name.
        feature_flag::ActiveModel {
            id: Unchanged(id),
            ..Default::default()
        }
        .delete(txn)
        .await?
    };
    assert_eq!(result.rows_affected, 1);
    let recorded: Vec<&str> = recorded.iter().map(String::as_str).collect();
    w.expect("FeatureFlag", id.to_string(), "deleted", &recorded);
    Ok(())
}

async fn insert_setting(
    txn: &DatabaseTransaction,
    run: &mut Run,
    w: &mut World,
) -> Result<(), DbErr> {
    let key = format!("s{}", run.seq());
    let value = format!("v{}", run.rng.below(3));
    let model = setting::ActiveModel {
        key: Set(key.clone()),
        value: Set(value),
    }
    .insert(txn)
    .await?;
    w.expect("Setting", key.clone(), "created", &[]);
    w.settings.insert(key, model);
    Ok(())
}

async fn update_setting(
    txn: &DatabaseTransaction,
    run: &mut Run,
    w: &mut World,
) -> Result<(), DbErr> {
    let Some(key) = run.rng.pick(&w.settings) else {
        return insert_setting(txn, run, w).await;
    };
    let before = w.settings[&key].clone();
    let value = format!("v{}", run.rng.below(3));
    let after = setting::Model {
        key: key.clone(),
        value: value.clone(),
    };
    let got = match run.rng.below(3) {
        0 => {
            setting::ActiveModel {
                key: Unchanged(key.clone()),
                value: Set(value.clone()),
            }
            .update(txn)
            .await?
        }
        1 => {
            let mut am = before.clone().into_active_model();
            am.value = Set(value.clone());
            am.update(txn).await?
        }
        _ => {
            let mut tracked = track(before.clone());
            tracked.value = Set(value.clone());
            tracked.update(txn).await?
        }
    };
    assert_eq!(got, after);
    if before.value != value {
        w.expect("Setting", key.clone(), "updated", &["value"]);
    }
    w.settings.insert(key, after);
    Ok(())
}

async fn delete_setting(
    txn: &DatabaseTransaction,
    run: &mut Run,
    w: &mut World,
) -> Result<(), DbErr> {
    let Some(key) = run.rng.pick(&w.settings) else {
        return insert_setting(txn, run, w).await;
    };
    let model = w.settings.remove(&key).expect("picked");
    let recorded = recorded_fields(&model);
    let result = model.delete(txn).await?;
    assert_eq!(result.rows_affected, 1);
    let recorded: Vec<&str> = recorded.iter().map(String::as_str).collect();
    w.expect("Setting", key, "deleted", &recorded);
    Ok(())
}

/// The fields a `deleted` entry records: every tracked field that is not empty.
fn recorded_fields<M: activity_seaorm::ModelActivity>(model: &M) -> Vec<String> {
    let mut changes = Vec::new();
    model.activity_snapshot(activity_seaorm::entry::ChangeAction::Deleted, &mut changes);
    changes.into_iter().filter_map(|c| c.field).collect()
}

async fn manual(txn: &DatabaseTransaction, run: &mut Run, w: &mut World) -> Result<(), DbErr> {
    let item = format!("m{}", run.seq());
    log_activity(
        txn,
        ActivityEntry::new("Manual", "noted")
            .with_item_id(item.clone())
            .with_name("manual entry"),
    )
    .await?;
    w.expect("Manual", item, "noted", &[]);
    Ok(())
}

/// Buffer an entry the database will refuse: the outermost flush (or COMMIT) must fail and
/// take every change of the transaction with it, unless a savepoint around it rolls back.
async fn poison(txn: &DatabaseTransaction, run: &mut Run, w: &mut World) -> Result<(), DbErr> {
    let kind = run.poisons[run.rng.below(run.poisons.len() as u64) as usize];
    run.stats.poisons += 1;
    log_activity(
        txn,
        ActivityEntry::new(kind.scope(), "poisoned").with_item_id(format!("p{}", run.seq())),
    )
    .await?;
    w.poisoned = true;
    Ok(())
}

/// A statement that fails in the database (a duplicate primary key). On PostgreSQL this aborts
/// the transaction until its savepoint rolls back, so the error is always propagated.
async fn duplicate_key(
    txn: &DatabaseTransaction,
    run: &mut Run,
    w: &mut World,
) -> Result<(), DbErr> {
    let Some(key) = run.rng.pick(&w.settings) else {
        return manual(txn, run, w).await;
    };
    run.stats.db_errors += 1;
    let result = setting::ActiveModel {
        key: Set(key.clone()),
        value: Set("dup".into()),
    }
    .insert(txn)
    .await;
    match result {
        Ok(_) => panic!("inserting the existing setting {key:?} succeeded"),
        Err(e) => Err(injected(&format!("duplicate key: {e}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Fault installation per backend.

async fn install_poison(t: &TestDb) -> Vec<Poison> {
    let db = &t.db;
    match t.backend {
        Backend::Sqlite => {
            db.execute_unprepared(
                "CREATE TRIGGER activity_poison BEFORE INSERT ON activity_log \
                 WHEN NEW.scope = 'Poison' BEGIN SELECT RAISE(ABORT, 'poison'); END;",
            )
            .await
            .unwrap();
            vec![Poison::Rejected]
        }
        Backend::Postgres => {
            db.execute_unprepared(
                "ALTER TABLE activity_log ADD CONSTRAINT activity_poison CHECK (scope <> 'Poison');
                 CREATE FUNCTION activity_deferred_poison() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN RAISE EXCEPTION 'deferred poison at commit'; END $$;
                 CREATE CONSTRAINT TRIGGER activity_deferred_poison AFTER INSERT ON activity_log
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
                 WHEN (NEW.scope = 'DeferredPoison') EXECUTE FUNCTION activity_deferred_poison();",
            )
            .await
            .unwrap();
            vec![Poison::Rejected, Poison::Overlong, Poison::AtCommit]
        }
        Backend::MySql => {
            db.execute_unprepared(
                "ALTER TABLE activity_log ADD CONSTRAINT activity_poison CHECK (scope <> 'Poison')",
            )
            .await
            .unwrap();
            vec![Poison::Rejected, Poison::Overlong]
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The randomized model check.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outer {
    Normal,
    Error,
    Cancel,
    Panic,
}

async fn atomicity_under_faults(t: &TestDb) {
    let seed = seed_for(t.backend);
    let _report = SeedReport {
        what: "atomicity_under_faults",
        backend: t.backend,
        seed,
    };
    let n = iterations();
    println!(
        "[{:?}] atomicity_under_faults: seed {seed:#x}, {n} iterations",
        t.backend
    );
    quiet_injected_panics();
    let poisons = install_poison(t).await;
    let tag = format!("rel-{:?}-{seed:x}-", t.backend).to_lowercase();

    // Every committed entry is published once; nothing else is.
    let events = Arc::new(Mutex::new(BTreeSet::new()));
    let lagged = Arc::new(AtomicU64::new(0));
    let drain = {
        let mut rx = subscribe();
        let (events, lagged, tag) = (events.clone(), lagged.clone(), tag.clone());
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => {
                        if ev
                            .entry
                            .correlation_id
                            .as_deref()
                            .is_some_and(|c| c.starts_with(&tag))
                        {
                            events.lock().unwrap().insert(ev.entry.id);
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        lagged.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    };

    let started = Instant::now();
    let mut run = Run {
        rng: Rng::new(seed),
        seq: 0,
        poisons,
        stats: Stats::default(),
        trace: Vec::new(),
    };
    let mut truth = World::default();
    let mut total_entries = 0u64;
    let mut ledger: BTreeMap<String, Vec<Expect>> = BTreeMap::new();
    let mut history: Vec<String> = Vec::new();

    for i in 0..n {
        run.stats.iterations += 1;
        let cid = format!("{tag}{i}");
        let user = format!("u{}", i % 3);
        let ctx = ActivityContext::for_user(Actor::new(user.clone())).with_correlation_id(&cid);
        let outer = match run.rng.below(100) {
            0..=7 => Outer::Error,
            8..=10 => Outer::Cancel,
            11 => Outer::Panic,
            _ => Outer::Normal,
        };
        run.trace.clear();
        run.note(format!(
            "iteration {i}: {outer:?}; previous: {:?}",
            &history[history.len().saturating_sub(4)..]
        ));
        history.push(format!("{i}:{outer:?}"));
        let mut working = truth.clone();
        working.expected.clear();
        working.poisoned = false;

        let committed = match outer {
            Outer::Normal | Outer::Error => {
                let (r, w) = (&mut run, &mut working);
                let result: Result<(), DbErr> = ActivityContext::scope(
                    ctx,
                    transaction(&t.db, move |txn| {
                        async move {
                            frame(txn, r, w, 0).await?;
                            if outer == Outer::Error {
                                return Err(injected("outer closure returned Err"));
                            }
                            Ok(())
                        }
                        .scope_boxed()
                    }),
                )
                .await;
                if outer == Outer::Error {
                    run.stats.outer_errors += 1;
                }
                match result {
                    Ok(()) => {
                        assert_ne!(outer, Outer::Error, "iteration {i}: injected Err committed");
                        assert!(
                            !working.poisoned,
                            "iteration {i}: a poisoned entry was buffered, yet the transaction committed"
                        );
                        true
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        let explained = msg.contains(INJECTED)
                            || (working.poisoned
                                && (msg.contains("activity log write failed")
                                    || msg.to_lowercase().contains("poison")));
                        assert!(explained, "iteration {i}: unexpected error: {msg}");
                        if working.poisoned && !msg.contains(INJECTED) {
                            assert!(
                                msg.contains("activity log write failed")
                                    || msg.contains("deferred poison"),
                                "iteration {i}: a failed log write must name the activity log: {msg}"
                            );
                        }
                        false
                    }
                }
            }
            Outer::Cancel => {
                run.stats.cancels += 1;
                let mut side = Run {
                    rng: run.rng.fork(),
                    seq: run.seq + 10_000,
                    poisons: run.poisons.clone(),
                    stats: Stats::default(),
                    trace: Vec::new(),
                };
                // Dropped once the closure has done its work and is parked: the transaction
                // is open, with buffered entries and released savepoints. (Dropping it while
                // sqlx is mid-`BEGIN` hits an upstream bug instead; see
                // `cancelled_begin_leaves_no_open_transaction`.)
                let (parked_tx, parked_rx) = tokio::sync::oneshot::channel::<bool>();
                {
                    let (r, w) = (&mut side, &mut working);
                    let fut = ActivityContext::scope(
                        ctx,
                        transaction(&t.db, move |txn| {
                            async move {
                                let done = frame(txn, r, w, 0).await;
                                let _ = parked_tx.send(done.is_ok());
                                done?;
                                std::future::pending::<()>().await;
                                Ok::<(), DbErr>(())
                            }
                            .scope_boxed()
                        }),
                    );
                    let mut fut = std::pin::pin!(fut);
                    let finished = tokio::select! {
                        biased;
                        parked = parked_rx => match parked {
                            Ok(true) => None,
                            _ => Some(None),
                        },
                        result = fut.as_mut() => Some(Some(result)),
                    };
                    let result = match finished {
                        None => None, // parked: `fut` is dropped at the end of this block
                        Some(None) => Some(fut.as_mut().await),
                        Some(Some(result)) => Some(result),
                    };
                    if let Some(result) = result {
                        match result {
                            Err(e) => assert!(
                                e.to_string().contains(INJECTED),
                                "iteration {i}: unexpected error before cancellation: {e}"
                            ),
                            Ok(()) => unreachable!("the closure never returns Ok"),
                        }
                    }
                }
                run.seq = side.seq;
                false
            }
            Outer::Panic => {
                run.stats.panics += 1;
                let mut side = Run {
                    rng: run.rng.fork(),
                    seq: run.seq + 10_000,
                    poisons: run.poisons.clone(),
                    stats: Stats::default(),
                    trace: Vec::new(),
                };
                run.seq += 20_000;
                let db = t.db.clone();
                let mut w = working.clone();
                let handle = tokio::spawn(ActivityContext::scope(ctx, async move {
                    let (r, w) = (&mut side, &mut w);
                    let result: Result<(), DbErr> = transaction(&db, move |txn| {
                        async move {
                            frame(txn, r, w, 0).await?;
                            panic!("{}", INJECTED_PANIC);
                        }
                        .scope_boxed()
                    })
                    .await;
                    result
                }));
                match handle.await {
                    Err(e) => assert!(e.is_panic(), "iteration {i}: {e}"),
                    Ok(Err(e)) => assert!(
                        e.to_string().contains(INJECTED),
                        "iteration {i}: unexpected error before the panic: {e}"
                    ),
                    Ok(Ok(())) => unreachable!("the closure never returns Ok"),
                }
                false
            }
        };

        let want: Vec<Expect> = if committed {
            run.stats.committed += 1;
            truth.flags = std::mem::take(&mut working.flags);
            truth.settings = std::mem::take(&mut working.settings);
            let mut want = working.expected.clone();
            want.sort();
            want
        } else {
            run.stats.rolled_back += 1;
            Vec::new()
        };

        // The log holds exactly the committed transaction's entries, stamped with its actor.
        let rows: Vec<ActivityEntry> = activity_log::Entity::find()
            .filter(activity_log::Column::CorrelationId.eq(cid.as_str()))
            .all(&t.db)
            .await
            .unwrap()
            .into_iter()
            .map(Into::into)
            .collect();
        let mut got: Vec<Expect> = rows.iter().map(Expect::of).collect();
        got.sort();
        assert_eq!(
            got,
            want,
            "iteration {i} ({outer:?}, committed: {committed}): entries differ from the model\ntrace:\n{}",
            run.trace.join("\n")
        );
        for row in &rows {
            assert_eq!(row.user_id.as_deref(), Some(user.as_str()), "{row:?}");
            assert!(!row.is_system);
        }
        run.stats.entries_checked += rows.len() as u64;
        total_entries += want.len() as u64;
        ledger.insert(cid, want);

        // Nothing else was written (or lost) anywhere in the table.
        let count = activity_log::Entity::find().count(&t.db).await.unwrap();
        if count != total_entries {
            let mut stray = Vec::new();
            let mut by_cid: BTreeMap<String, Vec<Expect>> = BTreeMap::new();
            for e in t.entries().await {
                let cid = e.correlation_id.clone().unwrap_or_default();
                by_cid.entry(cid).or_default().push(Expect::of(&e));
                if !ledger.contains_key(e.correlation_id.as_deref().unwrap_or_default()) {
                    stray.push(format!("{e:?}"));
                }
            }
            let differ: Vec<String> = ledger
                .iter()
                .filter_map(|(cid, want)| {
                    let mut got = by_cid.remove(cid).unwrap_or_default();
                    got.sort();
                    (&got != want).then(|| format!("{cid}: got {got:?}, want {want:?}"))
                })
                .collect();
            panic!(
                "iteration {i}: {count} entries in the table, {total_entries} expected\n\
                 stray: {stray:#?}\ndiffering: {differ:#?}\ntrace:\n{}",
                run.trace.join("\n")
            );
        }

        // The data matches the model.
        let flags: BTreeMap<i32, feature_flag::Model> = feature_flag::Entity::find()
            .all(&t.db)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.id, m))
            .collect();
        assert_eq!(flags, truth.flags, "iteration {i}: feature_flag rows");
        let settings: BTreeMap<String, setting::Model> = setting::Entity::find()
            .all(&t.db)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.key.clone(), m))
            .collect();
        assert_eq!(settings, truth.settings, "iteration {i}: setting rows");
        run.stats.rows_checked += (flags.len() + settings.len()) as u64;
    }

    // Final audit: every entry belongs to an iteration and matches its ledger.
    let all = t.entries().await;
    let mut by_cid: BTreeMap<String, Vec<Expect>> = BTreeMap::new();
    for e in &all {
        let cid = e.correlation_id.clone().unwrap_or_default();
        assert!(ledger.contains_key(&cid), "entry of no iteration: {e:?}");
        by_cid.entry(cid).or_default().push(Expect::of(e));
    }
    for (cid, want) in &ledger {
        let mut got = by_cid.remove(cid).unwrap_or_default();
        got.sort();
        assert_eq!(&got, want, "final audit of {cid}");
    }

    // Events: exactly the committed entries (a sentinel marks the end of the stream).
    let sentinel = ActivityEntry::new("Sentinel", "done");
    let sentinel_id = sentinel.id;
    ActivityContext::scope(
        ActivityContext::system().with_correlation_id(format!("{tag}end")),
        log_activity(&t.db, sentinel),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !events.lock().unwrap().contains(&sentinel_id) {
        assert!(
            Instant::now() < deadline,
            "the sentinel event never arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drain.abort();
    let mut published = std::mem::take(&mut *events.lock().unwrap());
    published.remove(&sentinel_id);
    let stored: BTreeSet<uuid::Uuid> = all.iter().map(|e| e.id).collect();
    if lagged.load(Ordering::Relaxed) == 0 {
        assert_eq!(
            published, stored,
            "published events differ from committed entries"
        );
        run.stats.events_checked = published.len() as u64;
    } else {
        assert!(
            published.is_subset(&stored),
            "an uncommitted entry was published"
        );
        println!(
            "[{:?}] event receiver lagged by {}: checked published ⊆ committed only",
            t.backend,
            lagged.load(Ordering::Relaxed)
        );
    }

    let s = &run.stats;
    println!(
        "[{:?}] atomicity_under_faults: seed {seed:#x}: {} iterations ({} committed, {} rolled back), \
         {} operations, {} savepoints ({} rolled back), faults injected {} \
         [outer Err {}, savepoint Err {}, database errors {}, poisoned entries {} ({} discarded with their savepoint), \
         cancellations {}, panics {}], entries checked {} (+{} in the final audit), events checked {}, \
         model rows checked {}, entries lost 0, entries leaked 0, {:.1}s",
        t.backend,
        s.iterations,
        s.committed,
        s.rolled_back,
        s.operations,
        s.savepoints,
        s.savepoint_rollbacks,
        s.faults(),
        s.outer_errors,
        s.savepoint_errors,
        s.db_errors,
        s.poisons,
        s.poisons_discarded,
        s.cancels,
        s.panics,
        s.entries_checked,
        all.len(),
        s.events_checked,
        s.rows_checked,
        started.elapsed().as_secs_f64(),
    );
    assert_eq!(s.iterations, n);
    assert!(s.committed > 0 && s.rolled_back > 0);
}

// ---------------------------------------------------------------------------------------------
// Concurrency: the before/after chain of hot rows.

const TASKS: u64 = 32;
const UPDATES_PER_TASK: u64 = 200;
const HOT_ROWS: usize = 4;
const MAX_ATTEMPTS: u32 = 50;

fn retryable(e: &DbErr) -> bool {
    let msg = e.to_string().to_lowercase();
    msg.contains("deadlock")
        || msg.contains("could not serialize")
        || msg.contains("serialization failure")
        || msg.contains("lock wait timeout")
        || msg.contains("40001")
        || msg.contains("40p01")
        || msg.contains("1213")
}

async fn concurrent_updates_keep_the_chain(t: &TestDb) {
    if t.backend == Backend::Sqlite {
        return; // one writer at a time by construction
    }
    let seed = seed_for(t.backend) ^ 0xC0C0;
    let _report = SeedReport {
        what: "concurrent_updates_keep_the_chain",
        backend: t.backend,
        seed,
    };
    let started = Instant::now();
    let mut ids = Vec::new();
    for r in 0..HOT_ROWS {
        let flag = new_flag(format!("hot-{r}"), false, Some(format!("init-{r}")))
            .insert(&t.db)
            .await
            .unwrap();
        ids.push(flag.id);
    }
    let ids = Arc::new(ids);
    let successes: Arc<Vec<AtomicU64>> =
        Arc::new((0..HOT_ROWS).map(|_| AtomicU64::new(0)).collect());
    let written: Arc<Mutex<Vec<BTreeSet<String>>>> =
        Arc::new(Mutex::new(vec![BTreeSet::new(); HOT_ROWS]));
    let retries = Arc::new(AtomicU64::new(0));
    let is_pg = t.backend == Backend::Postgres;

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let db = t.db.clone();
        let (ids, successes, written, retries) = (
            ids.clone(),
            successes.clone(),
            written.clone(),
            retries.clone(),
        );
        let mut rng = Rng::new(seed ^ (task << 32));
        // Retry back-off draws from its own stream, so the plan is the same however many
        // retries a run needs.
        let mut jitter = Rng::new(!seed ^ task);
        tasks.push(tokio::spawn(async move {
            for n in 0..UPDATES_PER_TASK {
                // One row, or two in random order (so deadlocks happen and are retried).
                let first = rng.below(HOT_ROWS as u64) as usize;
                let mut plan = vec![first];
                if rng.chance(10) {
                    let second = (first + 1 + rng.below(HOT_ROWS as u64 - 1) as usize) % HOT_ROWS;
                    plan.push(second);
                }
                let plan: Vec<(usize, i32, String)> = plan
                    .into_iter()
                    .map(|r| (r, ids[r], format!("t{task}-n{n}-r{r}")))
                    .collect();
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let plan_ref = &plan;
                    let result: Result<(), DbErr> = transaction(&db, move |txn| {
                        async move {
                            if is_pg {
                                // Detect deadlocks fast (default 1 s); test-only, this transaction only.
                                txn.execute_unprepared("SET LOCAL deadlock_timeout = '20ms'")
                                    .await?;
                            }
                            for (_, id, value) in plan_ref {
                                feature_flag::ActiveModel {
                                    id: Unchanged(*id),
                                    description: Set(Some(value.clone())),
                                    ..Default::default()
                                }
                                .update(txn)
                                .await?;
                            }
                            Ok(())
                        }
                        .scope_boxed()
                    })
                    .await;
                    match result {
                        Ok(()) => {
                            let mut written = written.lock().unwrap();
                            for (r, _, value) in &plan {
                                successes[*r].fetch_add(1, Ordering::Relaxed);
                                written[*r].insert(value.clone());
                            }
                            break;
                        }
                        Err(e) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                            retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(jitter.below(5))).await;
                        }
                        Err(e) => panic!("task {task} update {n} attempt {attempt}: {e}"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let mut checked = 0u64;
    let written = written.lock().unwrap().clone();
    for (r, id) in ids.iter().enumerate() {
        let entries: Vec<ActivityEntry> = activity_log::Entity::find()
            .filter(activity_log::Column::Scope.eq("FeatureFlag"))
            .filter(activity_log::Column::ItemId.eq(id.to_string()))
            .filter(activity_log::Column::Activity.eq("updated"))
            .order_by_asc(activity_log::Column::CreatedAt)
            .order_by_asc(activity_log::Column::Id)
            .all(&t.db)
            .await
            .unwrap()
            .into_iter()
            .map(Into::into)
            .collect();
        let commits = successes[r].load(Ordering::Relaxed);
        assert_eq!(
            entries.len() as u64,
            commits,
            "row {r}: one entry per committed update"
        );
        let mut previous = Value::String(format!("init-{r}"));
        let mut afters = BTreeSet::new();
        for (k, e) in entries.iter().enumerate() {
            assert_eq!(e.detail.changes.len(), 1, "{e:?}");
            let c = &e.detail.changes[0];
            assert_eq!(c.field.as_deref(), Some("description"));
            if c.before != previous {
                let around: Vec<String> = entries[k.saturating_sub(2)..(k + 2).min(entries.len())]
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {} {} -> {}",
                            e.created_at.to_rfc3339(),
                            e.id,
                            e.detail.changes[0].before,
                            e.detail.changes[0].after
                        )
                    })
                    .collect();
                panic!(
                    "BROKEN CHAIN on {:?} row {r} (id {id}) at entry {k} of {}: before {} but the \
                     previous entry's after is {previous}\n{}",
                    t.backend,
                    entries.len(),
                    c.before,
                    around.join("\n")
                );
            }
            let Value::String(after) = &c.after else {
                panic!("after is not a string: {e:?}")
            };
            assert!(afters.insert(after.clone()), "value {after} logged twice");
            previous = c.after.clone();
            checked += 1;
        }
        assert_eq!(
            afters, written[r],
            "row {r}: logged values = committed values"
        );
        let row = feature_flag::Entity::find_by_id(*id)
            .one(&t.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row.description.map(Value::String),
            Some(previous),
            "row {r}: final value = last entry's after"
        );
    }
    let total: u64 = successes.iter().map(|s| s.load(Ordering::Relaxed)).sum();
    println!(
        "[{:?}] concurrent_updates_keep_the_chain: {TASKS} tasks x {UPDATES_PER_TASK} transactions, \
         {total} row updates committed, {} retries (deadlock/serialization), {checked} chained entries \
         checked, 0 broken links, {:.1}s",
        t.backend,
        retries.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        total as usize,
        written.iter().map(BTreeSet::len).sum::<usize>()
    );
}

// ---------------------------------------------------------------------------------------------
// Connection loss.

#[derive(Clone, Copy, Debug)]
enum Loss {
    /// Killed, then the closure returns Ok: the log flush is the first statement to fail.
    ThenCommit,
    /// Killed, then the closure runs another statement.
    ThenStatement,
    /// Killed while a savepoint is open.
    InSavepoint,
}

async fn backend_pid(txn: &DatabaseTransaction) -> Result<i64, DbErr> {
    let sql = match txn.get_database_backend() {
        DbBackend::Postgres => "SELECT CAST(pg_backend_pid() AS BIGINT) AS pid",
        _ => "SELECT CAST(CONNECTION_ID() AS SIGNED) AS pid",
    };
    let row = txn
        .query_one_raw(Statement::from_string(txn.get_database_backend(), sql))
        .await?
        .expect("one row");
    row.try_get::<i64>("", "pid")
}

async fn kill(t: &TestDb, pid: i64) {
    let (kill, alive) = match t.backend {
        Backend::Postgres => (
            format!("SELECT pg_terminate_backend({pid})"),
            format!("SELECT COUNT(*) AS n FROM pg_stat_activity WHERE pid = {pid}"),
        ),
        _ => (
            format!("KILL CONNECTION {pid}"),
            format!("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = {pid}"),
        ),
    };
    t.db.execute_unprepared(&kill).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row =
            t.db.query_one_raw(Statement::from_string(t.db_backend(), alive.clone()))
                .await
                .unwrap()
                .unwrap();
        if row.try_get::<i64>("", "n").unwrap() == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "session {pid} did not die");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn connection_loss_rolls_back(t: &TestDb) {
    if t.backend == Backend::Sqlite {
        return; // an embedded database has no session to lose
    }
    for (n, loss) in [Loss::ThenCommit, Loss::ThenStatement, Loss::InSavepoint]
        .into_iter()
        .enumerate()
    {
        let key = format!("doomed-{n}");
        let cid = format!("loss-{n}");
        let k = key.clone();
        let result: Result<(), DbErr> = ActivityContext::scope(
            ActivityContext::system().with_correlation_id(&cid),
            transaction(&t.db, move |txn| {
                async move {
                    new_flag(k.clone(), true, None).insert(txn).await?;
                    log_activity(txn, ActivityEntry::new("Manual", "noted").with_item_id(&k))
                        .await?;
                    match loss {
                        Loss::ThenCommit => {
                            kill(t, backend_pid(txn).await?).await;
                            Ok(())
                        }
                        Loss::ThenStatement => {
                            kill(t, backend_pid(txn).await?).await;
                            new_flag(format!("{k}-b"), true, None).insert(txn).await?;
                            Ok(())
                        }
                        Loss::InSavepoint => {
                            transaction(txn, |sp| {
                                async move {
                                    new_flag(format!("{k}-sp"), true, None).insert(sp).await?;
                                    kill(t, backend_pid(sp).await?).await;
                                    Ok::<(), DbErr>(())
                                }
                                .scope_boxed()
                            })
                            .await
                        }
                    }
                }
                .scope_boxed()
            }),
        )
        .await;
        let err = result.expect_err("a transaction whose session died must fail");
        if matches!(loss, Loss::ThenCommit) {
            assert!(
                err.to_string().contains("activity log write failed"),
                "the flush is the first statement after the kill: {err}"
            );
        }
        // The pool recovers (a dead connection is not handed out again), and nothing remains.
        let flags = feature_flag::Entity::find()
            .filter(feature_flag::Column::Key.starts_with(key.as_str()))
            .count(&t.db)
            .await
            .unwrap();
        assert_eq!(flags, 0, "{loss:?}: the rows rolled back");
        let entries = activity_log::Entity::find()
            .filter(activity_log::Column::CorrelationId.eq(cid.as_str()))
            .count(&t.db)
            .await
            .unwrap();
        assert_eq!(entries, 0, "{loss:?}: no entry survived");
        println!(
            "[{:?}] connection loss {loss:?}: caller got `{err}`",
            t.backend
        );
    }
    // The next transaction works normally.
    transaction(&t.db, |txn| {
        async move {
            new_flag("after-loss".into(), true, None)
                .insert(txn)
                .await?;
            Ok::<(), DbErr>(())
        }
        .scope_boxed()
    })
    .await
    .unwrap();
    assert_eq!(t.entries().await.len(), 1);
}

/// A pool of one connection to the test's own schema/database, so a poisoned connection is
/// certainly the one handed out next.
async fn single_connection(t: &TestDb) -> sea_orm::DatabaseConnection {
    let backend = t.db_backend();
    let (var, sql) = match t.backend {
        Backend::Postgres => ("ACTIVITY_TEST_POSTGRES_URL", "SELECT current_schema() AS n"),
        _ => ("ACTIVITY_TEST_MYSQL_URL", "SELECT DATABASE() AS n"),
    };
    let url = std::env::var(var).unwrap();
    let name: String =
        t.db.query_one_raw(Statement::from_string(backend, sql))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "n")
            .unwrap();
    let mut opts = match t.backend {
        Backend::Postgres => {
            let mut o = sea_orm::ConnectOptions::new(url);
            o.set_schema_search_path(name);
            o
        }
        _ => {
            let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
            sea_orm::ConnectOptions::new(format!("{base}/{name}"))
        }
    };
    opts.max_connections(1)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    sea_orm::Database::connect(opts).await.unwrap()
}

async fn in_transaction(db: &sea_orm::DatabaseConnection) -> Result<bool, DbErr> {
    let sql = match db.get_database_backend() {
        // Inside a transaction `now()` is its start, earlier than this statement's.
        DbBackend::Postgres => "SELECT now() < statement_timestamp() AS open",
        _ => "SELECT @@in_transaction = 1 AS open",
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .expect("one row")
        .try_get::<bool>("", "open")
}

/// Known upstream bug (sqlx 0.9.0 and 0.9.1, transact-rs/sqlx#4385 / #4393, fixed for PostgreSQL by
/// #4394, same code on MySQL): a `transaction` future dropped while its `BEGIN` is in flight
/// leaves the pooled connection inside a transaction that sqlx does not track. The next
/// borrower's autocommit statements run in it (stale snapshot on MySQL, held locks) and are
/// lost if the connection closes. `atomicity_under_faults` therefore cancels only at quiescent
/// points.
async fn cancelled_begin_leaves_no_open_transaction(t: &TestDb) {
    if t.backend == Backend::Sqlite {
        return; // fixed for SQLite upstream (sqlx#2057)
    }
    let db = single_connection(t).await;
    let mut broken = Vec::new();
    for attempt in 0..50u64 {
        let cancelled = tokio::time::timeout(
            Duration::ZERO,
            transaction(&db, |txn| {
                async move {
                    new_flag(format!("cancel-{attempt}"), true, None)
                        .insert(txn)
                        .await?;
                    Ok::<(), DbErr>(())
                }
                .scope_boxed()
            }),
        )
        .await
        .is_err();
        if cancelled {
            match in_transaction(&db).await {
                Ok(false) => {}
                Ok(true) => broken.push(format!(
                    "attempt {attempt}: the connection is still inside a transaction"
                )),
                Err(e) => broken.push(format!("attempt {attempt}: the pool is unusable: {e}")),
            }
        }
        if !broken.is_empty() {
            break;
        }
    }
    let _ = db.close().await;
    assert!(
        broken.is_empty(),
        "{:?}: a cancelled `transaction` broke its pooled connection: {broken:?}",
        t.backend
    );
}

mod upstream {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "upstream sqlx bug (0.9.0, still in 0.9.1): a BEGIN cancelled in flight leaves the connection in a transaction"]
    async fn postgres_cancelled_begin() {
        activity_tests::run(
            activity_tests::Backend::Postgres,
            super::cancelled_begin_leaves_no_open_transaction,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "upstream sqlx bug (0.9.0, still in 0.9.1): a BEGIN cancelled in flight leaves the connection in a transaction"]
    async fn mysql_cancelled_begin() {
        activity_tests::run(
            activity_tests::Backend::MySql,
            super::cancelled_begin_leaves_no_open_transaction,
        )
        .await;
    }
}

backend_tests!(
    atomicity_under_faults,
    concurrent_updates_keep_the_chain,
    connection_loss_rolls_back,
);
