//! Query plans of the read path on PostgreSQL at 100,000 rows: the SQL that `load_activity`
//! really sends (captured through SeaORM's metric callback, values and all) must be served by
//! the log's indexes — an index scan in the index's order, no `Seq Scan`, no `Sort` — for the
//! item history, the team feed and their second pages (keyset cursor). Checked twice: as planned
//! for the bound values (a custom plan) and as a generic prepared-statement plan, which
//! PostgreSQL may switch to after five executions of sqlx's cached statements.
//!
//! On the partitioned layout (`ACTIVITY_TEST_POSTGRES_LAYOUT=partitioned`) the seed's year falls
//! in months of its own. Every month that holds rows is read (on a second page: every one up to
//! the cursor's, and none after it — pruned) by an index scan on its copy of the index, under the
//! `LIMIT`. The months are merged in order (`Merge Append`); only the item history may instead
//! have its few entries (as planned: at most twice the hot item's) gathered from each month's
//! index and sorted, and only the month holding the cursor may be read on the team feed's index
//! bounded by the cursor. A month with no rows (the months created ahead, the default
//! partition) may be planned as a `Seq Scan` and a `Sort` of nothing; that is all the rules let
//! pass.
//!
//! PostgreSQL only: ignored when `ACTIVITY_TEST_POSTGRES_URL` is not set. No
//! timings are asserted; the plan shape is.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use activity_seaorm::query::Page;
use activity_seaorm::schema::partition::Partition;
use activity_seaorm::{ActivityQuery, load_activity};
use activity_tests::{Backend, TestDb};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait, Value};
use serde_json::Value as Json;

/// Rows in the table.
const ROWS: i64 = 100_000;
/// Entries of the one item whose history is paged (one in every `ROWS / HOT_ROWS` rows).
const HOT_ROWS: i64 = 300;
const HOT_TEAM: &str = "team-7";
const HOT_SCOPE: &str = "Scope3";
const HOT_ITEM: &str = "hot";

/// 100,000 entries in one statement: ~200 teams (`team-0` … `team-199`) in 40 organizations,
/// 50 scopes, thousands of items per scope, `created_at` spread over 2025 with microsecond
/// resolution, time-ordered (v7-shaped) ids, 5% system entries, and a compact `detail`.
/// Deterministic (hashes of the row number, no `random()`). One row in every `rows / hot` is the
/// hot item's.
fn seed_sql(rows: i64, hot: i64) -> String {
    include_str!("../../examples/sql/seed_activity_log.sql")
        .replace("{rows}", &rows.to_string())
        .replace("{first}", "1")
        .replace("{last}", &rows.to_string())
        .replace("{hot}", &hot.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(activity_postgres),
    ignore = "ACTIVITY_TEST_POSTGRES_URL is not set"
)]
async fn postgres_read_queries_are_index_scans_in_index_order() {
    with_seeded_db(Keyset::Anywhere).await;
}

/// The read target wants page 1000 as fast as page 1: that needs the cursor bound inside the index
/// scan (`Index Cond`), not a `Filter` run over every newer row of the item or team.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(activity_postgres),
    ignore = "ACTIVITY_TEST_POSTGRES_URL is not set"
)]
async fn postgres_cursor_bound_is_an_index_condition() {
    with_seeded_db(Keyset::InIndexCond).await;
}

/// Where the keyset bound of a second page must be evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keyset {
    /// Index condition or filter: only the scan shape is checked.
    Anywhere,
    /// The bound on `created_at` must be an index condition.
    InIndexCond,
}

async fn with_seeded_db(keyset: Keyset) {
    let mut t = TestDb::new(Backend::Postgres).await;
    let captured: Arc<Mutex<Vec<Statement>>> = Arc::default();
    let sink = captured.clone();
    t.db.set_metric_callback(move |info| {
        sink.lock().unwrap().push(info.statement.clone());
    });
    // Run the checks in their own task so a failed assertion still drops the 100k-row schema.
    let t = Arc::new(t);
    let outcome = tokio::spawn(check_plans(t.clone(), captured, keyset)).await;
    if let Ok(t) = Arc::try_unwrap(t) {
        t.cleanup().await;
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn check_plans(t: Arc<TestDb>, captured: Arc<Mutex<Vec<Statement>>>, keyset: Keyset) {
    let db = &t.db;
    assert_eq!(db.get_database_backend(), DbBackend::Postgres);
    db.execute_unprepared(&seed_sql(ROWS, HOT_ROWS))
        .await
        .expect("seed 100,000 entries");
    db.execute_unprepared("ANALYZE activity_log")
        .await
        .expect("analyze");

    let item_index = index_named(db, "(team_id, scope, item_id, created_at DESC, id DESC)").await;
    let feed_index = index_named(db, "(team_id, created_at DESC, id DESC)").await;
    let layout = Layout::read(db).await;

    let history = ActivityQuery::for_team(HOT_TEAM).item(HOT_SCOPE, HOT_ITEM);
    let feed = ActivityQuery::for_team(HOT_TEAM);
    let cases = [
        ("item history, page 1", history.clone(), &item_index, false),
        ("item history, page 2", history, &item_index, true),
        ("team feed, page 1", feed.clone(), &feed_index, false),
        ("team feed, page 2", feed, &feed_index, true),
    ];
    for (what, query, index, second_page) in cases {
        let (stmt, page, cursor) = captured_load(db, &captured, &query, second_page).await;
        assert_eq!(page.results.len(), 100, "{what}: a full page");
        assert!(page.next_cursor.is_some(), "{what}: more pages follow");
        assert!(
            stmt.sql.contains("LIMIT"),
            "{what}: expected a LIMITed SELECT, got {}",
            stmt.sql
        );
        // Partitioned, the month a second page's cursor falls in may be read on the team
        // feed's index instead, bounded by the cursor (the team's rows of that month before
        // it: the planner's pick where the item has few there).
        let bounded = if layout.partitioned && what.starts_with("item") && second_page {
            layout.copies(db, &feed_index).await
        } else {
            Vec::new()
        };
        let case = Case {
            what,
            ordered: layout.copies(db, index).await,
            bounded,
            cursor,
            keyset,
        };
        check_plan(&case, "custom plan", &explain(db, &stmt).await, &layout);
        check_plan(
            &case,
            "generic plan",
            &explain_generic(db, &stmt).await,
            &layout,
        );
    }
    if keyset == Keyset::Anywhere {
        erasure_reads_through_indexes(db, &captured, &layout).await;
    }
}

/// `anonymize_user` finds a user's entries without reading the log: every statement it reads
/// the log with (as actor, as impersonator, the walk from team to team, the item of a user
/// scope in the teams found and without a team) is planned on an index, custom and generic,
/// never a `Seq Scan`. The hot item is
/// erased as a user (its scope a user scope): every one of its entries is rewritten.
async fn erasure_reads_through_indexes(
    db: &DatabaseConnection,
    captured: &Mutex<Vec<Statement>>,
    layout: &Layout,
) {
    let about: i64 = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT count(*) AS n FROM activity_log \
                 WHERE scope = '{HOT_SCOPE}' AND item_id = '{HOT_ITEM}'"
            ),
        ))
        .await
        .expect("count the hot item")
        .expect("a count")
        .try_get("", "n")
        .expect("n");
    assert!(about > 250, "the hot item has its entries: {about}");
    captured.lock().unwrap().clear();
    let rewritten = activity_seaorm::ActivityConfig::new()
        .with_erasure_key([9u8; 32])
        .with_user_scopes([HOT_SCOPE])
        .scope(activity_seaorm::ops::erasure::anonymize_user(db, HOT_ITEM))
        .await
        .expect("anonymize_user");
    assert_eq!(rewritten as i64, about, "every entry about the erased user");
    let all = std::mem::take(&mut *captured.lock().unwrap());
    let reads: Vec<&Statement> = all
        .iter()
        .filter(|s| {
            (s.sql.starts_with("SELECT") || s.sql.starts_with("WITH"))
                && (s.sql.contains("FROM \"activity_log\"") || s.sql.contains("FROM activity_log"))
        })
        .collect();
    // The ~200 teams are one step of the walk, read once (the rewrite reads only the ranges
    // that held entries).
    let walks = reads
        .iter()
        .filter(|s| s.sql.starts_with("WITH RECURSIVE"))
        .count();
    assert_eq!(walks, 1, "one step finds the ~200 teams");
    for (what, needle) in [
        ("as actor", "\"user_id\" ="),
        ("as impersonator", "\"impersonated_by\" ="),
        ("the walk from team to team", "WITH RECURSIVE"),
        ("about, in the teams found", "\"team_id\" IN ("),
        ("about, without a team", "\"team_id\" IS NULL ORDER"),
    ] {
        assert!(
            reads.iter().any(|s| s.sql.contains(needle)),
            "no erasure statement {what} among {}",
            reads.len()
        );
    }
    // Every statement the erasure read the log with, each distinct text once.
    let mut seen = std::collections::BTreeSet::new();
    for stmt in reads {
        if !seen.insert(stmt.sql.clone()) {
            continue;
        }
        let mut plans = vec![("custom", explain(db, stmt).await)];
        if stmt.values.as_ref().is_some_and(|v| !v.0.is_empty()) {
            plans.push(("generic", explain_generic(db, stmt).await));
        }
        for (kind, plan) in plans {
            // A month that holds nothing may be read by a Seq Scan of nothing.
            let scans: Vec<&str> = nodes(&plan)
                .into_iter()
                .filter(|n| !layout.is_empty_part(field(n, "Relation Name")))
                .map(|n| field(n, "Node Type"))
                .filter(|t| t.contains("Scan"))
                .collect();
            assert!(
                !scans.is_empty() && !scans.contains(&"Seq Scan"),
                "erasure statement ({kind} plan) reads the log: {scans:?}\n{}\n{}",
                stmt.sql,
                serde_json::to_string_pretty(&plan).unwrap()
            );
        }
    }
}

/// Run `load_activity` (after following one cursor when `second_page`) and return the SELECT it
/// sent for the last page, as SeaORM's metric callback saw it, the page, and the time of the
/// cursor followed.
async fn captured_load(
    db: &DatabaseConnection,
    captured: &Mutex<Vec<Statement>>,
    query: &ActivityQuery,
    second_page: bool,
) -> (Statement, Page, Option<DateTime<Utc>>) {
    let mut query = query.clone();
    let mut cursor = None;
    if second_page {
        let first = load_activity(db, &query).await.expect("page 1");
        cursor = first.results.last().map(|e| e.created_at);
        query = query.after(first.next_cursor.expect("a cursor after page 1"));
    }
    captured.lock().unwrap().clear();
    let page = load_activity(db, &query).await.expect("load_activity");
    let all = std::mem::take(&mut *captured.lock().unwrap());
    let mut selects: Vec<Statement> = all
        .iter()
        .filter(|s| s.sql.starts_with("SELECT") && s.sql.contains("\"activity_log\""))
        .cloned()
        .collect();
    assert_eq!(
        selects.len(),
        1,
        "expected one SELECT on activity_log per page, got {all:?}"
    );
    (selects.remove(0), page, cursor)
}

/// The name of the index on `activity_log` (in the test's schema) whose column list is `columns`.
async fn index_named(db: &DatabaseConnection, columns: &str) -> String {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT indexname, indexdef FROM pg_indexes \
             WHERE schemaname = current_schema() AND tablename = 'activity_log'",
            [],
        ))
        .await
        .expect("list indexes");
    let mut defs = Vec::new();
    for row in rows {
        let name: String = row.try_get("", "indexname").unwrap();
        let def: String = row.try_get("", "indexdef").unwrap();
        if def.contains(&format!("USING btree {columns}")) {
            return name;
        }
        defs.push(def);
    }
    panic!("no btree index on activity_log{columns}; indexes: {defs:#?}");
}

/// `EXPLAIN (FORMAT JSON)` of the statement with its values bound, as the driver sends it.
async fn explain(db: &DatabaseConnection, stmt: &Statement) -> Json {
    let explain = Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("EXPLAIN (FORMAT JSON) {}", stmt.sql),
        stmt.values.clone().map(|v| v.0).unwrap_or_default(),
    );
    plan_json(db, explain).await
}

/// The generic plan of the statement: PREPAREd with the parameter types the driver binds,
/// planned with `plan_cache_mode = force_generic_plan`, EXPLAINed through EXECUTE.
async fn explain_generic(db: &DatabaseConnection, stmt: &Statement) -> Json {
    let values = stmt.values.clone().map(|v| v.0).unwrap_or_default();
    let types: Vec<&str> = values.iter().map(pg_type).collect();
    let placeholders: Vec<String> = (1..=values.len()).map(|n| format!("${n}")).collect();
    let txn = db.begin().await.expect("begin");
    txn.execute_unprepared(&format!(
        "PREPARE read_plan ({}) AS {}",
        types.join(", "),
        stmt.sql
    ))
    .await
    .expect("prepare");
    txn.execute_unprepared("SET LOCAL plan_cache_mode = force_generic_plan")
        .await
        .expect("force generic plans");
    // `Statement`'s Display inlines the values as PostgreSQL literals.
    let execute = Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "EXPLAIN (FORMAT JSON) EXECUTE read_plan ({})",
            placeholders.join(", ")
        ),
        values,
    )
    .to_string();
    let plan = txn
        .query_one_raw(Statement::from_string(DbBackend::Postgres, execute))
        .await
        .expect("explain execute")
        .expect("a plan row");
    let plan: Json = plan.try_get("", "QUERY PLAN").expect("plan json");
    txn.execute_unprepared("DEALLOCATE read_plan")
        .await
        .expect("deallocate");
    txn.rollback().await.expect("rollback");
    plan
}

/// The PostgreSQL type sqlx binds a SeaORM value as.
fn pg_type(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "text",
        Value::ChronoDateTimeUtc(_) => "timestamptz",
        Value::Uuid(_) => "uuid",
        Value::Bool(_) => "boolean",
        Value::BigInt(_) | Value::BigUnsigned(_) | Value::Unsigned(_) => "bigint",
        Value::Int(_) => "integer",
        other => panic!("unexpected bound value in a read query: {other:?}"),
    }
}

async fn plan_json(db: &DatabaseConnection, stmt: Statement) -> Json {
    let row = db
        .query_one_raw(stmt)
        .await
        .expect("explain")
        .expect("a plan row");
    row.try_get("", "QUERY PLAN").expect("plan json")
}

/// Every plan node, depth first.
fn nodes(plan: &Json) -> Vec<&Json> {
    let root = &plan[0]["Plan"];
    assert!(
        root.is_object(),
        "not an EXPLAIN (FORMAT JSON) result: {plan}"
    );
    nodes_under(root)
}

/// `node` and every node below it, depth first.
fn nodes_under(node: &Json) -> Vec<&Json> {
    fn walk<'a>(node: &'a Json, out: &mut Vec<&'a Json>) {
        out.push(node);
        if let Some(children) = node.get("Plans").and_then(Json::as_array) {
            for child in children {
                walk(child, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(node, &mut out);
    out
}

fn field<'a>(node: &'a Json, key: &str) -> &'a str {
    node.get(key).and_then(Json::as_str).unwrap_or("")
}

/// One read whose plans are checked.
struct Case<'a> {
    what: &'a str,
    /// The index that serves the read, and its copies on the months.
    ordered: Vec<String>,
    /// Indexes the month holding the cursor may be read on instead, bounded by the cursor.
    bounded: Vec<String>,
    /// The time of the cursor followed, for a second page.
    cursor: Option<DateTime<Utc>>,
    keyset: Keyset,
}

fn check_plan(case: &Case, kind: &str, plan: &Json, layout: &Layout) {
    let what = case.what;
    let pretty = serde_json::to_string_pretty(plan).unwrap();
    // What reads a month with no rows is left out: it may be a Sort of a Seq Scan of nothing.
    let all: Vec<&Json> = nodes(plan)
        .into_iter()
        .filter(|n| !layout.reads_only_empty(n))
        .collect();
    let types: Vec<&str> = all.iter().map(|n| field(n, "Node Type")).collect();
    assert!(
        !types.contains(&"Seq Scan"),
        "{what} ({kind}): Seq Scan in the plan\n{pretty}"
    );
    // Partitioned, the planner may gather the item's entries from each month's index and sort
    // them where it expects few (a Sort over an Append of index scans), instead of merging the
    // months in order. Only for the item, and only a few: a feed must never be sorted.
    let sorts: Vec<&&Json> = all
        .iter()
        .filter(|n| matches!(field(n, "Node Type"), "Sort" | "Incremental Sort"))
        .filter(|n| {
            !(layout.partitioned && what.starts_with("item") && sorts_few_index_rows(n, layout))
        })
        .collect();
    assert!(
        sorts.is_empty(),
        "{what} ({kind}): the rows are sorted instead of read in index order\n{pretty}"
    );
    assert_eq!(
        types.first().copied(),
        Some("Limit"),
        "{what} ({kind}): the LIMIT is not applied on top of the scan\n{pretty}"
    );
    let scans: Vec<&&Json> = all
        .iter()
        .filter(|n| layout.is_log(field(n, "Relation Name")))
        .collect();
    if layout.partitioned {
        // Every month holding rows is read — on a second page, every such month up to the
        // cursor's and none after it (pruned when planned, or at executor start for a generic
        // plan).
        let read: HashSet<String> = scans
            .iter()
            .map(|n| field(n, "Relation Name").to_owned())
            .collect();
        assert_eq!(
            read,
            layout.holding_through(case.cursor),
            "{what} ({kind}): the months read\n{pretty}"
        );
    } else {
        assert_eq!(
            scans.len(),
            1,
            "{what} ({kind}): expected one scan of activity_log\n{pretty}"
        );
    }
    for scan in scans {
        check_scan(case, kind, scan, layout, &pretty);
    }
}

/// A Sort of at most `2 × HOT_ROWS` rows (as planned) whose input is an Append of index scans
/// alone (besides what reads empty months).
fn sorts_few_index_rows(sort: &Json, layout: &Layout) -> bool {
    let Some([input]) = sort
        .get("Plans")
        .and_then(Json::as_array)
        .map(Vec::as_slice)
    else {
        return false;
    };
    let leaves: Vec<&Json> = nodes_under(input)
        .into_iter()
        .filter(|n| n.get("Plans").is_none() && !layout.reads_only_empty(n))
        .collect();
    field(input, "Node Type") == "Append"
        && input
            .get("Plan Rows")
            .and_then(Json::as_f64)
            .is_some_and(|rows| rows <= 2.0 * HOT_ROWS as f64)
        && !leaves.is_empty()
        && leaves
            .iter()
            .all(|n| matches!(field(n, "Node Type"), "Index Scan" | "Index Only Scan"))
}

/// One scan of the log (or of one month of it) in `check_plan`.
fn check_scan(case: &Case, kind: &str, scan: &Json, layout: &Layout, pretty: &str) {
    let what = case.what;
    assert!(
        matches!(field(scan, "Node Type"), "Index Scan" | "Index Only Scan"),
        "{what} ({kind}): activity_log is read by a {} (expected an index scan)\n{pretty}",
        field(scan, "Node Type")
    );
    let name = field(scan, "Index Name");
    let ordered = case.ordered.iter().any(|i| i == name);
    let bounded = case.bounded.iter().any(|i| i == name);
    assert!(
        ordered || bounded,
        "{what} ({kind}): wrong index {name} (expected one of {:?} or {:?})\n{pretty}",
        case.ordered,
        case.bounded
    );
    if bounded {
        let month = field(scan, "Relation Name");
        assert_eq!(
            Some(month),
            case.cursor.and_then(|c| layout.month_of(c)),
            "{what} ({kind}): {name} reads a month other than the cursor's\n{pretty}"
        );
    }
    assert_eq!(
        field(scan, "Scan Direction"),
        "Forward",
        "{what} ({kind}): the DESC index should be read forward for newest-first\n{pretty}"
    );
    let cond = field(scan, "Index Cond");
    assert!(
        cond.contains("team_id"),
        "{what} ({kind}): the team is not an index condition: {cond}\n{pretty}"
    );
    if bounded {
        assert!(
            cond.contains("created_at"),
            "{what} ({kind}): {name} is read without the cursor's bound: {cond}\n{pretty}"
        );
    } else if what.starts_with("item") {
        assert!(
            cond.contains("scope") && cond.contains("item_id"),
            "{what} ({kind}): scope and item are not index conditions: {cond}\n{pretty}"
        );
    }
    if case.cursor.is_some() {
        // Where the keyset bound is evaluated: inside the index (the page depth does not matter)
        // or as a filter over every newer row (the cost grows with the depth).
        let filter = field(scan, "Filter");
        eprintln!("{what} ({kind}): Index Cond: {cond}; Filter: {filter}");
        if case.keyset == Keyset::InIndexCond {
            // The exact row bound, not only the plain `created_at <=` beside it.
            assert!(
                cond.contains("ROW(created_at, id) <"),
                "{what} ({kind}): the cursor bound is a Filter, not an index condition: \
                 Index Cond: {cond}; Filter: {filter}\n{pretty}"
            );
        }
    }
}

/// The log's layout as the plans name it: `activity_log` itself, or its partitions.
struct Layout {
    partitioned: bool,
    /// Every partition, with its range.
    months: Vec<Partition>,
    /// Every partition of `activity_log`.
    parts: HashSet<String>,
    /// The partitions that hold no row.
    empty: HashSet<String>,
}

impl Layout {
    async fn read(db: &DatabaseConnection) -> Self {
        let names = |sql: &'static str| async move {
            db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
                .await
                .expect(sql)
                .into_iter()
                .map(|row| row.try_get::<String>("", "name").unwrap())
                .collect::<HashSet<String>>()
        };
        let parts = names(
            "SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'activity_log'::regclass",
        )
        .await;
        let holding =
            names("SELECT DISTINCT tableoid::regclass::text AS name FROM activity_log").await;
        assert_eq!(
            activity_tests::postgres_partitioned(),
            !parts.is_empty(),
            "the layout asked for is the layout planned: {parts:?}"
        );
        if !parts.is_empty() {
            assert!(
                holding.len() >= 12 && holding.iter().all(|p| p.starts_with("activity_log_p2025_")),
                "the seed is spread over its months: {holding:?}"
            );
        }
        let months = if parts.is_empty() {
            Vec::new()
        } else {
            activity_seaorm::schema::partition::partitions(db)
                .await
                .expect("partitions")
        };
        Layout {
            partitioned: !parts.is_empty(),
            months,
            empty: parts.difference(&holding).cloned().collect(),
            parts,
        }
    }

    /// The partitions holding rows that start at or before `cursor` (all of them without one).
    fn holding_through(&self, cursor: Option<DateTime<Utc>>) -> HashSet<String> {
        self.months
            .iter()
            .filter(|p| {
                !self.is_empty_part(&p.name) && cursor.is_none_or(|c| p.from.is_none_or(|f| f <= c))
            })
            .map(|p| p.name.clone())
            .collect()
    }

    /// The month partition holding `at`.
    fn month_of(&self, at: DateTime<Utc>) -> Option<&str> {
        self.months
            .iter()
            .find(|p| p.from.is_some_and(|f| f <= at) && p.to.is_some_and(|t| at < t))
            .map(|p| p.name.as_str())
    }

    /// A relation the plan reads the log's rows from.
    fn is_log(&self, relation: &str) -> bool {
        relation == "activity_log" || self.parts.contains(relation)
    }

    /// A partition with no rows.
    fn is_empty_part(&self, relation: &str) -> bool {
        self.empty.contains(relation)
    }

    /// Whether every relation `node` reads (at least one) is a partition with no rows.
    fn reads_only_empty(&self, node: &Json) -> bool {
        let read: Vec<&str> = nodes_under(node)
            .into_iter()
            .map(|n| field(n, "Relation Name"))
            .filter(|r| !r.is_empty())
            .collect();
        !read.is_empty() && read.iter().all(|r| self.is_empty_part(r))
    }

    /// `index` and, on the partitioned layout, its copy on every partition.
    async fn copies(&self, db: &DatabaseConnection, index: &str) -> Vec<String> {
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT c.relname::text AS name FROM pg_inherits i \
                 JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass",
                [index.into()],
            ))
            .await
            .expect("the index's partitions");
        let mut out: Vec<String> = rows
            .into_iter()
            .map(|row| row.try_get("", "name").unwrap())
            .collect();
        assert_eq!(self.partitioned, !out.is_empty(), "{index}: {out:?}");
        out.push(index.to_owned());
        out
    }
}
