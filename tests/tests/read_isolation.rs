//! The read path under hostile input, on every backend:
//!
//! - hostile strings in every query input give correct results or `is_invalid_query`, and never
//!   change the database;
//! - a query built for one tenant never returns another tenant's entries (property test over
//!   random filter combinations), and a query without a tenant is refused unless `unscoped()`;
//!   ids compare exactly;
//! - `DetailPath::parse` never panics and accepts exactly its documented grammar (a proptest
//!   fuzz: `PROPTEST_CASES=200000 cargo test -p activity-tests --test read_isolation detail_path`).
//!
//! Global settings (failure policy, hooks) are left alone: tests here run in parallel.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use activity_seaorm::entry::ChangeAction;
use activity_seaorm::ops::export::{export_csv, export_jsonl};
use activity_seaorm::path::DetailPath;
use activity_seaorm::prelude::*;
use activity_seaorm::query::FilterOp;
use activity_seaorm::{ActivityEntry, ActivityQuery, load_activity, log_activity};
use activity_tests::models::feature_flag;
use activity_tests::{Backend, TestDb, backend_tests};
use activity_tests::{fingerprint as fnv, proptest_config as config, proptest_runtime as runtime};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// 2. Hostile query input.

const BIG: usize = 1 << 20;

fn hostile_strings() -> Vec<String> {
    let mut v: Vec<String> = [
        "'",
        "''",
        "\"",
        "`",
        ";",
        "--",
        "/*",
        "*/",
        "%",
        "_",
        "%_%",
        "\\",
        "\\\\",
        "\\%",
        "\\_",
        "!",
        "!%",
        "'; DROP TABLE activity_log; --",
        "\"; DROP TABLE activity_log; --",
        "' OR '1'='1",
        "\" OR 1=1 --",
        "1) OR (1=1",
        "$1",
        "?",
        ":name",
        "{}",
        "[]",
        "{\"a\":1}",
        "$.name",
        "$**",
        "changes[0]",
        "name'); DELETE FROM activity_log; --",
        "日本語",
        "😀",
        "\u{202e}gnp.exe",
        "e\u{301}",
        "\u{feff}bom",
        "tab\there",
        "line\nbreak",
        "\r\n",
        "a\u{0}b",
        "\u{0}",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    v.push("'%_\\".repeat(BIG / 4));
    v.push("x".repeat(BIG));
    v
}

fn fits(s: &str, max_chars: usize) -> bool {
    !s.contains('\0') && s.chars().count() <= max_chars
}

/// Seed team A and a mirror image in team B: for each hostile string `h` (that can be stored),
/// `E_h` (item id, user, name, change field and values = `h`) and `F_h` (scope and activity `h`).
async fn seed_hostile(t: &TestDb, hostile: &[String]) {
    let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    for team in ["A", "B"] {
        for (i, h) in hostile.iter().enumerate() {
            if h.contains('\0') {
                continue; // PostgreSQL text cannot hold NUL; such values are refused on read
            }
            let mut e = ActivityEntry::new("Hostile", "noted");
            e.created_at = base + Duration::seconds(i as i64);
            e.team_id = Some(team.into());
            if fits(h, 72) {
                e.item_id = Some(h.clone());
            }
            e.detail.name = Some(h.clone());
            // The 1 MB strings go in the name only (search/contains refuse them anyway).
            let short = if h.len() > 4096 { "big" } else { h.as_str() };
            e.detail.changes = vec![Change::new(
                "Hostile",
                ChangeAction::Changed,
                Some(short),
                json!(short),
                json!(short),
            )];
            // An actor id must name someone: empty ids and control characters are refused at
            // the write (they are still hostile query inputs below).
            let actor = !h.is_empty() && !h.chars().any(char::is_control);
            let ctx = if fits(h, 64) && actor {
                ActivityContext::for_user(Actor::new(h.clone()).with_name("hostile"))
            } else {
                ActivityContext::system()
            };
            ActivityContext::scope(ctx, log_activity(&t.db, e))
                .await
                .unwrap_or_else(|err| panic!("seeding E {i}: {err}"));
            if fits(h, 79) {
                let mut f = ActivityEntry::new(h.clone(), h.clone()).with_name(format!("F{i}"));
                f.created_at = base + Duration::seconds(i as i64) + Duration::milliseconds(500);
                f.team_id = Some(team.into());
                log_activity(&t.db, f)
                    .await
                    .unwrap_or_else(|err| panic!("seeding F {i}: {err}"));
            }
        }
    }
}

/// What a query over `seeded` must return, in memory.
fn lower(s: &str) -> String {
    // The databases' LOWER() on these inputs: ASCII letters only are affected.
    s.to_ascii_lowercase()
}

/// A seeded entry and its lower-cased texts.
/// Every string value in `v`, at any depth.
fn text_values(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(items) => items.iter().flat_map(text_values).collect(),
        serde_json::Value::Object(map) => map.values().flat_map(text_values).collect(),
        _ => Vec::new(),
    }
}

struct Seeded<'a> {
    entry: &'a ActivityEntry,
    /// The text values of `detail`, lower-cased: what `search` looks in (never keys or JSON
    /// syntax).
    texts: Vec<String>,
    name: Option<String>,
    befores: Vec<String>,
}

async fn table_checksum(t: &TestDb) -> (u64, u64, u64) {
    let count = activity_seaorm::activity_log::Entity::find()
        .count(&t.db)
        .await
        .unwrap();
    let flags = feature_flag::Entity::find().count(&t.db).await.unwrap();
    (count, fnv(&t.dump().await), flags)
}

async fn hostile_inputs_never_inject(t: &TestDb) {
    let hostile = hostile_strings();
    seed_hostile(t, &hostile).await;
    let seeded = t.entries().await;
    let before = table_checksum(t).await;
    // Team A's entries with their lower-cased texts, computed once (some are 1 MB).
    let team_a: Vec<Seeded> = seeded
        .iter()
        .filter(|e| e.team_id.as_deref() == Some("A"))
        .map(|e| Seeded {
            entry: e,
            texts: text_values(&serde_json::to_value(&e.detail).unwrap())
                .into_iter()
                .map(|t| lower(&t))
                .collect(),
            name: e.detail.name.as_deref().map(lower),
            befores: e
                .detail
                .changes
                .iter()
                .filter_map(|c| c.before.as_str().map(lower))
                .collect(),
        })
        .collect();
    let ids = |pred: &dyn Fn(&Seeded) -> bool| -> BTreeSet<uuid::Uuid> {
        team_a
            .iter()
            .filter(|s| pred(s))
            .map(|s| s.entry.id)
            .collect()
    };
    let mut tried = 0u64;
    let mut refused = 0u64;
    let mut failures = Vec::new();

    for (i, h) in hostile.iter().enumerate() {
        let h = h.as_str();
        let label = if h.len() > 40 {
            format!("#{i} ({} bytes)", h.len())
        } else {
            format!("#{i} {h:?}")
        };
        let valid_path = DetailPath::parse(h).is_ok();
        let no_path = BTreeSet::new();
        let lh = lower(h);
        let cases: Vec<(&str, ActivityQuery, Option<BTreeSet<uuid::Uuid>>)> = vec![
            (
                "for_team",
                ActivityQuery::for_team(h),
                Some(BTreeSet::new()),
            ),
            (
                "for_organization",
                ActivityQuery::for_organization(h),
                Some(BTreeSet::new()),
            ),
            (
                "scopes",
                ActivityQuery::for_team("A").scopes([h]),
                Some(ids(&|s| s.entry.scope == h)),
            ),
            (
                "item_ids",
                ActivityQuery::for_team("A").item_ids([h]),
                Some(ids(&|s| s.entry.item_id.as_deref() == Some(h))),
            ),
            (
                "users",
                ActivityQuery::for_team("A").users([h]),
                Some(ids(&|s| s.entry.user_id.as_deref() == Some(h))),
            ),
            (
                "activities",
                ActivityQuery::for_team("A").activities([h]),
                Some(ids(&|s| s.entry.activity == h)),
            ),
            (
                "search",
                ActivityQuery::for_team("A").search(h),
                Some(ids(&|s| s.texts.iter().any(|t| t.contains(&lh)))),
            ),
            (
                "name exact",
                ActivityQuery::for_team("A").detail_filter("name", FilterOp::Exact(json!(h))),
                Some(ids(&|s| s.entry.detail.name.as_deref() == Some(h))),
            ),
            (
                "name in",
                ActivityQuery::for_team("A")
                    .detail_filter("name", FilterOp::In(vec![json!(h), json!("zz-none")])),
                Some(ids(&|s| s.entry.detail.name.as_deref() == Some(h))),
            ),
            (
                "name contains",
                ActivityQuery::for_team("A").detail_filter("name", FilterOp::Contains(h.into())),
                Some(ids(&|s| s.name.as_ref().is_some_and(|n| n.contains(&lh)))),
            ),
            (
                "changes[].field exact",
                ActivityQuery::for_team("A")
                    .detail_filter("changes[].field", FilterOp::Exact(json!(h))),
                Some(ids(&|s| {
                    s.entry
                        .detail
                        .changes
                        .iter()
                        .any(|c| c.field.as_deref() == Some(h))
                })),
            ),
            (
                "changes[].before contains",
                ActivityQuery::for_team("A")
                    .detail_filter("changes[].before", FilterOp::Contains(h.into())),
                Some(ids(&|s| s.befores.iter().any(|b| b.contains(&lh)))),
            ),
            (
                "detail path",
                ActivityQuery::for_team("A").detail_filter(h, FilterOp::Exact(json!("x"))),
                valid_path.then_some(no_path),
            ),
            (
                "cursor",
                ActivityQuery::for_team("A").after(h),
                None, // never a valid cursor
            ),
        ];
        for (what, query, expected) in cases {
            tried += 1;
            let query = query.limit(1000);
            match (load_activity(&t.db, &query).await, &expected) {
                (Ok(page), Some(want)) => {
                    let got: BTreeSet<uuid::Uuid> = page.results.iter().map(|e| e.id).collect();
                    if &got != want || page.next_cursor.is_some() {
                        failures.push(format!(
                            "{label} {what}: {} results, expected {} (extra {:?}, missing {:?})",
                            got.len(),
                            want.len(),
                            got.difference(want).count(),
                            want.difference(&got).count()
                        ));
                    }
                }
                (Ok(page), None) => failures.push(format!(
                    "{label} {what}: accepted with {} results, expected a clear error",
                    page.results.len()
                )),
                (Err(e), _) if e.is_invalid_query() => refused += 1,
                (Err(e), _) => failures.push(format!(
                    "{label} {what}: neither results nor an invalid-query error: {}",
                    truncate(&e.to_string())
                )),
            }
        }
    }
    let after = table_checksum(t).await;
    assert_eq!(
        before, after,
        "{:?}: hostile queries changed the database (count, checksum, flags)",
        t.backend
    );
    println!(
        "[{:?}] hostile_inputs_never_inject: {} hostile strings, {tried} queries, {refused} refused \
         as invalid, {} wrong; table unchanged ({} rows, checksum {:016x})",
        t.backend,
        hostile.len(),
        failures.len(),
        after.0,
        after.1
    );
    assert!(
        failures.is_empty(),
        "{:?}: {} hostile queries misbehaved:\n{}",
        t.backend,
        failures.len(),
        failures.join("\n")
    );
}

fn truncate(s: &str) -> String {
    if s.len() > 300 {
        format!("{}… ({} bytes)", &s[..s.floor_char_boundary(300)], s.len())
    } else {
        s.to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Tenant isolation.

const SCOPES: [&str; 3] = ["FeatureFlag", "Dashboard", "Insight"];
const ACTIVITIES: [&str; 4] = ["created", "updated", "deleted", "exported"];
const NAMES: [&str; 5] = ["alpha", "beta", "gamma", "A", "B"];
const USERS: [&str; 3] = ["u1", "u2", "u3"];

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap()
}

/// 48 entries for team A (organization X) and their mirror images for team B (organization Y):
/// same timestamps, scopes, items, users, names and changes.
async fn seed_tenants(t: &TestDb) {
    for (team, org) in [("A", "X"), ("B", "Y")] {
        for i in 0..48usize {
            let mut e = ActivityEntry::new(SCOPES[i % 3], ACTIVITIES[i % 4])
                .with_item_id(format!("{}", i % 5))
                .with_name(NAMES[i % 5]);
            e.created_at = t0() + Duration::minutes(i as i64);
            e.team_id = Some(team.into());
            e.organization_id = Some(org.into());
            e.detail.changes = vec![Change::new(
                SCOPES[i % 3],
                ChangeAction::Changed,
                Some(if i % 2 == 0 { "enabled" } else { "rollout" }),
                if i % 2 == 0 {
                    json!(false)
                } else {
                    json!(i % 7)
                },
                if i % 2 == 0 {
                    json!(true)
                } else {
                    json!((i % 7) + 1)
                },
            )];
            e = e.forced();
            let ctx = match i % 4 {
                0 => ActivityContext::system(),
                1 => ActivityContext::impersonating(
                    Actor::new(USERS[i % 3]),
                    Actor::new("staff").with_name("support"),
                ),
                _ => ActivityContext::for_user(Actor::new(USERS[i % 3])),
            };
            ActivityContext::scope(ctx, log_activity(&t.db, e))
                .await
                .unwrap();
        }
    }
}

#[derive(Clone, Debug)]
enum Tenant {
    Team,
    Org,
    Both,
    TeamMarkedUnscoped,
}

fn filter_op() -> impl Strategy<Value = (String, FilterOp)> {
    prop_oneof![
        prop::sample::select(NAMES.to_vec())
            .prop_map(|n| ("name".to_owned(), FilterOp::Exact(json!(n)))),
        Just((
            "changes[].field".to_owned(),
            FilterOp::In(vec![json!("enabled"), json!("x")])
        )),
        prop::sample::select(vec![
            json!(true),
            json!("true"),
            json!(1),
            json!("3"),
            json!(4.0)
        ])
        .prop_map(|v| ("changes[].after".to_owned(), FilterOp::Exact(v))),
        prop::sample::select(vec!["a", "A", "%", "_", "'", "ph"])
            .prop_map(|s| ("name".to_owned(), FilterOp::Contains(s.to_owned()))),
    ]
}

/// Usually no filter, sometimes a random subset.
fn subset(items: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        2 => Just(Vec::new()),
        1 => prop::sample::subsequence(items.to_vec(), 1..=items.len())
            .prop_map(|v| v.into_iter().map(str::to_owned).collect()),
    ]
}

#[derive(Clone, Debug)]
struct Filters {
    tenant: Tenant,
    scopes: Vec<String>,
    items: Vec<String>,
    users: Vec<String>,
    activities: Vec<String>,
    from: Option<i64>,
    to: Option<i64>,
    impersonated: Option<bool>,
    system: Option<bool>,
    search: Option<String>,
    detail: Vec<(String, FilterOp)>,
    ascending: bool,
    limit: usize,
}

fn filters() -> impl Strategy<Value = Filters> {
    let columns = (
        prop_oneof![
            Just(Tenant::Team),
            Just(Tenant::Org),
            Just(Tenant::Both),
            Just(Tenant::TeamMarkedUnscoped)
        ],
        subset(&SCOPES),
        subset(&["0", "1", "2", "3", "4", "9"]),
        subset(&USERS),
        subset(&ACTIVITIES),
        prop::option::of(0i64..50),
        prop::option::of(0i64..50),
    );
    let rest = (
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(vec![
            "alpha", "A", "b", "enabled", "%", "_", "'", "\"",
        ])),
        prop::collection::vec(filter_op(), 0..=2),
        any::<bool>(),
        1usize..=40,
    );
    (columns, rest).prop_map(
        |(
            (tenant, scopes, items, users, activities, from, to),
            (impersonated, system, search, detail, ascending, limit),
        )| Filters {
            tenant,
            scopes,
            items,
            users,
            activities,
            from,
            to,
            impersonated,
            system,
            search: search.map(str::to_owned),
            detail,
            ascending,
            limit,
        },
    )
}

fn build(f: &Filters, base: ActivityQuery) -> ActivityQuery {
    let mut q = base
        .scopes(f.scopes.clone())
        .item_ids(f.items.clone())
        .users(f.users.clone())
        .activities(f.activities.clone())
        .between(
            f.from.map(|m| t0() + Duration::minutes(m)),
            f.to.map(|m| t0() + Duration::minutes(m)),
        )
        .limit(f.limit);
    if let Some(w) = f.impersonated {
        q = q.was_impersonated(w);
    }
    if let Some(s) = f.system {
        q = q.is_system(s);
    }
    if let Some(s) = &f.search {
        q = q.search(s.clone());
    }
    for (path, op) in &f.detail {
        q = q.detail_filter(path.clone(), op.clone());
    }
    if f.ascending {
        q = q.ascending();
    }
    q
}

/// Every page of `query`, checking pages never repeat an entry.
async fn all_pages(t: &TestDb, query: &ActivityQuery) -> Result<Vec<ActivityEntry>, String> {
    let mut q = query.clone();
    let mut out: Vec<ActivityEntry> = Vec::new();
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        let page = load_activity(&t.db, &q)
            .await
            .map_err(|e| format!("query failed: {e}"))?;
        for e in page.results {
            if !seen.insert(e.id) {
                return Err(format!("entry {} returned twice", e.id));
            }
            out.push(e);
        }
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return Ok(out),
        }
    }
    Err("more than 200 pages".into())
}

async fn tenant_case(t: &TestDb, f: &Filters) -> Result<usize, String> {
    let base = match f.tenant {
        Tenant::Team => ActivityQuery::for_team("A"),
        Tenant::Org => ActivityQuery::for_organization("X"),
        Tenant::Both => {
            let mut q = ActivityQuery::for_team("A");
            q.organization_id = Some("X".into());
            q
        }
        Tenant::TeamMarkedUnscoped => {
            let mut q = ActivityQuery::for_team("A");
            q.unscoped = true;
            q
        }
    };
    let scoped = build(f, base);
    let got = all_pages(t, &scoped).await?;
    for e in &got {
        let ok = match f.tenant {
            Tenant::Org => e.organization_id.as_deref() == Some("X"),
            _ => e.team_id.as_deref() == Some("A"),
        };
        if !ok || e.team_id.as_deref() == Some("B") {
            return Err(format!("CROSS-TENANT ENTRY for {f:?}: {e:?}"));
        }
    }
    // The tenant filter is a pure AND: the same filters unscoped, restricted to A, agree.
    let everything = all_pages(t, &build(f, ActivityQuery::unscoped())).await?;
    let want: Vec<uuid::Uuid> = everything
        .iter()
        .filter(|e| e.team_id.as_deref() == Some("A"))
        .map(|e| e.id)
        .collect();
    let got_ids: Vec<uuid::Uuid> = got.iter().map(|e| e.id).collect();
    if got_ids != want {
        return Err(format!(
            "scoped results ({}) differ from unscoped ∩ A ({}) for {f:?}",
            got_ids.len(),
            want.len()
        ));
    }
    // Without a tenant the same query is refused.
    let untenanted = build(f, ActivityQuery::default());
    match load_activity(&t.db, &untenanted).await {
        Err(e) if e.is_invalid_query() => {}
        other => return Err(format!("a query without tenant was not refused: {other:?}")),
    }
    Ok(got.len())
}

fn tenants_stay_isolated(backend: Backend) {
    let rt = runtime();
    let t = rt.block_on(TestDb::new(backend));
    rt.block_on(seed_tenants(&t));
    let returned = AtomicU64::new(0);
    let mut runner = TestRunner::new(config(64));
    let result = runner.run(&filters(), |f| {
        let n = rt
            .block_on(tenant_case(&t, &f))
            .map_err(TestCaseError::fail)?;
        returned.fetch_add(n as u64, Ordering::Relaxed);
        Ok(())
    });
    rt.block_on(async {
        // Refusals and cursors.
        let everything = ActivityQuery::unscoped().limit(1000);
        let page = load_activity(&t.db, &everything).await.unwrap();
        assert_eq!(page.results.len(), 96, "unscoped reads both tenants");
        for q in [
            ActivityQuery::default(),
            ActivityQuery::default().scope("FeatureFlag"),
            ActivityQuery::default().search("alpha"),
        ] {
            let err = load_activity(&t.db, &q).await.unwrap_err();
            assert!(err.is_invalid_query(), "{err}");
            let err = export_csv(&t.db, &q, Vec::new()).await.unwrap_err();
            assert!(err.is_invalid_query(), "{err}");
            let err = export_jsonl(&t.db, &q, Vec::new()).await.unwrap_err();
            assert!(err.is_invalid_query(), "{err}");
        }
        // A cursor from team A's feed does not open team B's.
        let page = load_activity(&t.db, &ActivityQuery::for_team("A").limit(5))
            .await
            .unwrap();
        let cursor = page.next_cursor.expect("more pages");
        let err = load_activity(
            &t.db,
            &ActivityQuery::for_team("B").limit(5).after(cursor.clone()),
        )
        .await
        .unwrap_err();
        assert!(err.is_invalid_query(), "{err}");
        // Exports are tenant-scoped too.
        let mut out = Vec::new();
        let n = export_jsonl(&t.db, &ActivityQuery::for_team("A"), &mut out)
            .await
            .unwrap();
        assert_eq!(n, 48);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("\"team_id\":\"B\""));
    });
    println!(
        "[{backend:?}] tenants_stay_isolated: 64 random filter combinations, {} team-A entries \
         returned, 0 from team B",
        returned.load(Ordering::Relaxed)
    );
    rt.block_on(t.cleanup());
    if let Err(e) = result {
        panic!("{backend:?}: {e}");
    }
}

mod tenants {
    use activity_tests::Backend;

    #[test]
    fn sqlite() {
        super::tenants_stay_isolated(Backend::Sqlite);
    }

    #[test]
    #[cfg_attr(
        not(activity_postgres),
        ignore = "ACTIVITY_TEST_POSTGRES_URL is not set"
    )]
    fn postgres() {
        super::tenants_stay_isolated(Backend::Postgres);
    }

    #[test]
    #[cfg_attr(not(activity_mysql), ignore = "ACTIVITY_TEST_MYSQL_URL is not set")]
    fn mysql() {
        super::tenants_stay_isolated(Backend::MySql);
    }
}

/// Tenant, user and item ids are compared exactly: `acme` is not `ACME`, `acme ` or `ａｃｍｅ`, and
/// one emoji is not another.
async fn tenant_ids_compare_exactly(t: &TestDb) {
    let teams = ["acme", "ACME", "acme ", "ａｃｍｅ"];
    let users = ["😀", "🎉"];
    for (i, team) in teams.iter().enumerate() {
        let mut e = ActivityEntry::new("FeatureFlag", "created")
            .with_item_id(format!("item-{}", ["x", "X", "x ", "ｘ"][i]));
        e.team_id = Some((*team).into());
        let ctx = ActivityContext::for_user(Actor::new(users[i % 2]));
        ActivityContext::scope(ctx, log_activity(&t.db, e))
            .await
            .unwrap();
    }
    for (i, team) in teams.iter().enumerate() {
        let page = load_activity(&t.db, &ActivityQuery::for_team(*team))
            .await
            .unwrap();
        let got: Vec<&str> = page
            .results
            .iter()
            .map(|e| e.team_id.as_deref().unwrap_or_default())
            .collect();
        assert_eq!(got, vec![*team], "{:?}: for_team({team:?})", t.backend);
        let item = format!("item-{}", ["x", "X", "x ", "ｘ"][i]);
        let page = load_activity(&t.db, &ActivityQuery::unscoped().item_ids([item.clone()]))
            .await
            .unwrap();
        assert_eq!(page.results.len(), 1, "{:?}: item {item:?}", t.backend);
    }
    let page = load_activity(&t.db, &ActivityQuery::unscoped().users(["😀"]))
        .await
        .unwrap();
    assert!(
        page.results
            .iter()
            .all(|e| e.user_id.as_deref() == Some("😀")),
        "{:?}: users([😀]) returned {:?}",
        t.backend,
        page.results
            .iter()
            .map(|e| e.user_id.clone())
            .collect::<Vec<_>>()
    );
}

mod exact_ids {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        activity_tests::run(
            activity_tests::Backend::Sqlite,
            super::tenant_ids_compare_exactly,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(activity_postgres),
        ignore = "ACTIVITY_TEST_POSTGRES_URL is not set"
    )]
    async fn postgres() {
        activity_tests::run(
            activity_tests::Backend::Postgres,
            super::tenant_ids_compare_exactly,
        )
        .await;
    }

    /// Under the server's default collation (`utf8mb4_general_ci`) `team_id = 'acme'` would
    /// also match `ACME` and `acme `, and any two emoji compare equal; the table is `utf8mb4_bin`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(activity_mysql), ignore = "ACTIVITY_TEST_MYSQL_URL is not set")]
    async fn mysql() {
        activity_tests::run(
            activity_tests::Backend::MySql,
            super::tenant_ids_compare_exactly,
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// 4. The detail-path parser, fuzzed.

/// The documented grammar, checked independently of the parser: `SEG ('.' SEG)*` where `SEG` is
/// `[A-Za-z0-9_][A-Za-z0-9_-]*` optionally followed by `[]`, at most one `[]` in all, at most
/// 256 bytes.
fn matches_grammar(s: &str) -> bool {
    if s.is_empty() || s.len() > 256 {
        return false;
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut arrays = 0;
    loop {
        let start = i;
        while i < bytes.len()
            && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-'))
        {
            i += 1;
        }
        if i == start || bytes[start] == b'-' {
            return false;
        }
        if bytes[i..].starts_with(b"[]") {
            arrays += 1;
            i += 2;
        }
        if i == bytes.len() {
            return arrays <= 1;
        }
        if bytes[i] != b'.' {
            return false;
        }
        i += 1;
    }
}

fn path_input() -> impl Strategy<Value = String> {
    let segment = "[A-Za-z0-9_-]{0,12}(\\[\\])?";
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9_.\\[\\] '\";%-]{0,40}",
        prop::collection::vec(segment, 1..6).prop_map(|s| s.join(".")),
        prop::collection::vec("[a-z]{1,8}", 1..4).prop_map(|s| s.join(".")),
        "[a-z]{250,260}",
    ]
}

#[test]
fn detail_path_parse_fuzz() {
    // `PROPTEST_CASES` sets the case count (default 256).
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    let cases = runner.config().cases;
    let accepted = AtomicU64::new(0);
    runner
        .run(&path_input(), |input| {
            let parsed = DetailPath::parse(&input);
            let expected = matches_grammar(&input);
            prop_assert_eq!(parsed.is_ok(), expected, "input {:?}: {:?}", input, parsed);
            match parsed {
                Ok(p) => {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let mut text = p.head.join(".");
                    if let Some(each) = &p.each {
                        text.push_str("[]");
                        for key in each {
                            text.push('.');
                            text.push_str(key);
                        }
                    }
                    prop_assert_eq!(text, input);
                }
                Err(e) => {
                    let err = activity_seaorm::Error::from(e);
                    prop_assert!(err.is_invalid_query());
                }
            }
            Ok(())
        })
        .unwrap();
    println!(
        "detail_path_parse_fuzz: {cases} inputs, {} accepted, 0 panics, 0 grammar mismatches",
        accepted.load(Ordering::Relaxed)
    );
}

backend_tests!(hostile_inputs_never_inject);
