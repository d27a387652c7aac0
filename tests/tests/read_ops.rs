//! Trust II, the read and operations side, on every backend: CSV formula neutralization,
//! maintenance mode that ends with `prune`/`anonymize_user` even on the caller's transaction,
//! query caps (invalid-query errors, never backend errors), numeric detail-path segments, and
//! Unicode case-insensitive search. Erasure has its own file, `erasure.rs`.

use activity_seaorm::ops::erasure::anonymize_user;
use activity_seaorm::ops::export::{export_csv, export_jsonl};
use activity_seaorm::query::FilterOp;
use activity_seaorm::{ActivityConfig, ActivityEntry, ActivityQuery, activity_log, load_activity};
use activity_tests::{Backend, TestDb, backend_tests};
use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::{ConnectionTrait, EntityTrait, TransactionTrait};
use serde_json::json;

fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(minute)
}

fn entry(minute: i64, item: &str) -> ActivityEntry {
    let mut e = ActivityEntry::new("Doc", "updated")
        .with_item_id(item)
        .forced();
    e.created_at = at(minute);
    e.team_id = Some("t".into());
    e
}

/// Insert rows as they are (no context stamping, no hooks).
async fn insert(t: &TestDb, entries: &[ActivityEntry]) {
    let models: Vec<activity_log::ActiveModel> = entries.iter().cloned().map(Into::into).collect();
    activity_log::Entity::insert_many(models)
        .exec_without_returning(&t.db)
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// CSV export neutralizes spreadsheet formulas; JSON lines stay exact.

const FORMULA_STARTS: [&str; 6] = ["=", "+", "-", "@", "\t", "\r"];

async fn csv_neutralizes_formulas(t: &TestDb) {
    let mut seeded = Vec::new();
    for (i, start) in FORMULA_STARTS.iter().enumerate() {
        let payload = format!("{start}HYPERLINK(\"http://evil.example\",\"x{i}\")");
        let mut e = entry(i as i64, &format!("{start}{i}")).with_name(payload.clone());
        e.user_id = Some(format!("{start}u{i}"));
        e.user_name = Some(payload.clone());
        e.is_system = false;
        e.user_agent = Some(format!("{start}cmd|' /C calc'!A0"));
        e.client = Some(format!("{start}client"));
        e.request_id = Some(format!("{start}req"));
        seeded.push(e);
    }
    // A harmless row stays as it is.
    let mut plain = entry(10, "plain").with_name("plain name");
    plain.user_agent = Some("Mozilla/5.0".into());
    seeded.push(plain);
    insert(t, &seeded).await;

    let mut out = Vec::new();
    let n = export_csv(&t.db, &ActivityQuery::for_team("t").ascending(), &mut out)
        .await
        .unwrap();
    assert_eq!(n, 7);
    let mut reader = csv::Reader::from_reader(out.as_slice());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 7);
    let col = |name: &str| {
        activity_seaorm::ops::export::CSV_COLUMNS
            .iter()
            .position(|c| *c == name)
            .unwrap()
    };
    for (row, e) in rows.iter().zip(&seeded) {
        let expect = |v: &Option<String>| {
            let v = v.clone().unwrap_or_default();
            if FORMULA_STARTS.iter().any(|s| v.starts_with(s)) {
                format!("'{v}")
            } else {
                v
            }
        };
        for (name, value) in [
            ("user_id", &e.user_id),
            ("user_name", &e.user_name),
            ("user_agent", &e.user_agent),
            ("client", &e.client),
            ("request_id", &e.request_id),
            ("item_id", &e.item_id),
        ] {
            assert_eq!(&row[col(name)], expect(value), "{name} of {:?}", e.item_id);
        }
        for cell in row.iter() {
            assert!(
                !FORMULA_STARTS.iter().any(|s| cell.starts_with(s)),
                "a cell starts like a formula: {cell:?}"
            );
        }
        // `detail` is JSON (starts with `{`) and exact.
        let detail: serde_json::Value = serde_json::from_str(&row[col("detail")]).unwrap();
        assert_eq!(detail["name"], json!(e.detail.name));
    }
    // The first six rows really were dangerous, so the check above is not vacuous.
    assert!(
        rows[..6]
            .iter()
            .all(|r| r[col("user_agent")].starts_with('\''))
    );
    assert_eq!(&rows[6][col("user_agent")], "Mozilla/5.0");

    // JSON lines are exact: every entry reads back equal to what was stored.
    let mut out = Vec::new();
    export_jsonl(&t.db, &ActivityQuery::for_team("t").ascending(), &mut out)
        .await
        .unwrap();
    let back: Vec<ActivityEntry> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(back.len(), 7);
    for (b, e) in back.iter().zip(&seeded) {
        assert_eq!(b.user_agent, e.user_agent);
        assert_eq!(b.user_name, e.user_name);
        assert_eq!(b.user_id, e.user_id);
        assert_eq!(b.item_id, e.item_id);
        assert_eq!(b.detail.name, e.detail.name);
    }
}

// ---------------------------------------------------------------------------------------------
// Maintenance mode ends with prune/anonymize_user, even on the caller's transaction.

fn refused(result: Result<sea_orm::ExecResult, sea_orm::DbErr>, what: &str) {
    let err = result.expect_err(what);
    assert!(err.to_string().contains("append-only"), "{what}: {err}");
}

async fn maintenance_ends_with_its_work(t: &TestDb) {
    use activity_seaorm::schema::guard;

    let mut old: Vec<ActivityEntry> = (0..4)
        .map(|i| {
            let mut e = entry(i, &format!("{i}"));
            e.user_id = Some("u9".into());
            e.is_system = false;
            e
        })
        .collect();
    old[0].created_at = at(-10_000);
    insert(t, &old).await;
    let keyed = || ActivityConfig::new().with_erasure_key([3u8; 32]);

    if t.backend != Backend::Postgres {
        // The guard is a PostgreSQL recipe: elsewhere it cannot be installed, maintenance is a
        // no-op, and there is nothing to leak. prune/anonymize on a caller's transaction still
        // work and leave it usable.
        assert!(guard::install_append_only(&t.db).await.is_err());
        let txn = t.db.begin().await.unwrap();
        assert_eq!(
            activity_seaorm::ops::retention::prune(&txn, at(-1), &[])
                .await
                .unwrap(),
            1
        );
        let n = ActivityConfig::scope(keyed(), anonymize_user(&txn, "u9"))
            .await
            .unwrap();
        assert_eq!(n, 3);
        txn.execute_unprepared("UPDATE activity_log SET activity = 'x' WHERE 1 = 0")
            .await
            .unwrap();
        txn.commit().await.unwrap();
        return;
    }

    guard::install_append_only(&t.db).await.unwrap();

    // prune on the caller's transaction: its batches pass the guard, the rest of the caller's
    // transaction does not.
    let txn = t.db.begin().await.unwrap();
    assert_eq!(
        activity_seaorm::ops::retention::prune(&txn, at(-1), &[])
            .await
            .unwrap(),
        1
    );
    refused(
        txn.execute_unprepared("UPDATE activity_log SET activity = 'tampered'")
            .await,
        "UPDATE after prune in the same transaction",
    );
    txn.rollback().await.unwrap();
    let txn = t.db.begin().await.unwrap();
    assert_eq!(
        activity_seaorm::ops::retention::prune(&txn, at(-1), &[])
            .await
            .unwrap(),
        1
    );
    refused(
        txn.execute_unprepared("DELETE FROM activity_log").await,
        "DELETE after prune in the same transaction",
    );
    txn.rollback().await.unwrap();

    // The same for anonymize_user.
    for (sql, what) in [
        (
            "UPDATE activity_log SET user_id = 'mallory'",
            "UPDATE after anonymize_user in the same transaction",
        ),
        (
            "DELETE FROM activity_log",
            "DELETE after anonymize_user in the same transaction",
        ),
    ] {
        let txn = t.db.begin().await.unwrap();
        let n = ActivityConfig::scope(keyed(), anonymize_user(&txn, "u9"))
            .await
            .unwrap();
        assert_eq!(n, 4);
        refused(txn.execute_unprepared(sql).await, what);
        txn.rollback().await.unwrap();
    }

    // Failing work ends maintenance too: anonymize without a key fails before it starts;
    // the caller's transaction stays guarded.
    let txn = t.db.begin().await.unwrap();
    assert!(
        ActivityConfig::scope(ActivityConfig::new(), anonymize_user(&txn, "u9"))
            .await
            .is_err()
    );
    refused(
        txn.execute_unprepared("DELETE FROM activity_log").await,
        "DELETE after a failed anonymize_user",
    );
    txn.rollback().await.unwrap();

    // A caller who entered maintenance on purpose keeps it after prune (the setting is
    // restored, not switched off).
    let txn = t.db.begin().await.unwrap();
    guard::enter_maintenance(&txn).await.unwrap();
    assert_eq!(
        activity_seaorm::ops::retention::prune(&txn, at(-1), &[])
            .await
            .unwrap(),
        1
    );
    txn.execute_unprepared("DELETE FROM activity_log WHERE item_id = '3'")
        .await
        .unwrap();
    txn.rollback().await.unwrap();

    // After everything rolled back, the log is as seeded.
    assert_eq!(t.entries().await.len(), 4);
    guard::remove_append_only(&t.db).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Query caps: over a cap is an invalid-query error; at every cap at once the query runs.

async fn query_caps_are_invalid_query_errors(t: &TestDb) {
    use activity_seaorm::query::{MAX_DETAIL_FILTERS, MAX_FILTER_VALUES, MAX_LIST_LEN};

    let mut target = entry(0, "i-7");
    target.scope = "S-7".into();
    target.activity = "a-7".into();
    target.user_id = Some("u-7".into());
    target.is_system = false;
    let mut context = serde_json::Map::new();
    for j in 0..MAX_DETAIL_FILTERS {
        context.insert(format!("k{j}"), json!("7"));
    }
    target.detail.context = Some(serde_json::Value::Object(context));
    insert(t, &[target.clone(), entry(1, "other")]).await;

    let many = |prefix: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{prefix}-{i}")).collect()
    };
    let base = || ActivityQuery::for_team("t");
    // Every cap reached at once: the values are bound parameters (about 14,000 here), and the
    // query must run on every backend and find the one entry.
    let per_filter = MAX_FILTER_VALUES / MAX_DETAIL_FILTERS;
    let mut at_caps = base()
        .scopes(many("S", MAX_LIST_LEN))
        .item_ids(many("i", MAX_LIST_LEN))
        .users(many("u", MAX_LIST_LEN))
        .activities(many("a", MAX_LIST_LEN));
    for j in 0..MAX_DETAIL_FILTERS {
        // Digit strings bind three ways each (text, number, and boolean for 0/1).
        let values = (0..per_filter).map(|i| json!(i.to_string())).collect();
        at_caps = at_caps.detail_filter(format!("context.k{j}"), FilterOp::In(values));
    }
    let page = load_activity(&t.db, &at_caps).await.unwrap();
    assert_eq!(page.results.len(), 1);
    assert_eq!(page.results[0].id, target.id);

    // One over each cap, and far over (70,000 values: past every backend's parameter limit,
    // which used to surface as a database error).
    let over: Vec<(&str, ActivityQuery)> = vec![
        ("scopes", base().scopes(many("S", MAX_LIST_LEN + 1))),
        ("item_ids", base().item_ids(many("i", MAX_LIST_LEN + 1))),
        ("users", base().users(many("u", MAX_LIST_LEN + 1))),
        ("activities", base().activities(many("a", MAX_LIST_LEN + 1))),
        ("item_ids x70", base().item_ids(many("i", 70_000))),
        ("detail filters", {
            let mut q = base();
            for j in 0..=MAX_DETAIL_FILTERS {
                q = q.detail_filter(format!("context.k{j}"), FilterOp::Exact(json!("7")));
            }
            q
        }),
        ("in values", {
            let half = MAX_FILTER_VALUES / 2 + 1;
            let values = || (0..half).map(|i| json!(i)).collect();
            base()
                .detail_filter("context.k0", FilterOp::In(values()))
                .detail_filter("context.k1", FilterOp::In(values()))
        }),
        (
            "in values x70",
            base().detail_filter(
                "context.k0",
                FilterOp::In((0..70_000).map(|i| json!(i)).collect()),
            ),
        ),
    ];
    for (what, query) in over {
        let err = load_activity(&t.db, &query).await.unwrap_err();
        assert!(err.is_invalid_query(), "{what}: {err}");
        assert!(err.to_string().contains("maximum"), "{what}: {err}");
        let mut out = Vec::new();
        let err = export_csv(&t.db, &query, &mut out).await.unwrap_err();
        assert!(err.is_invalid_query(), "export, {what}: {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// A numeric path segment is an object key on every backend, never an array index.

async fn numeric_path_segments_are_object_keys(t: &TestDb) {
    let mut array = entry(0, "array").with_changes(vec![activity_seaorm::entry::Change::new(
        "Doc",
        activity_seaorm::entry::ChangeAction::Changed,
        Some("enabled"),
        json!(false),
        json!(true),
    )]);
    array.detail.context = Some(json!({"v": ["zero", "one"], "list": [{"0": "zero"}]}));
    let mut object = entry(1, "object");
    object.detail.context = Some(json!({"v": {"0": "zero", "-1": "one", "007": 7}}));
    insert(t, &[array, object]).await;

    let found = async |path: &str, op: FilterOp| -> Vec<String> {
        let q = ActivityQuery::for_team("t")
            .ascending()
            .detail_filter(path, op);
        load_activity(&t.db, &q)
            .await
            .unwrap()
            .results
            .into_iter()
            .map(|e| e.item_id.unwrap_or_default())
            .collect()
    };
    let object_only = vec!["object".to_owned()];
    let none: Vec<String> = Vec::new();
    assert_eq!(
        found("context.v.0", FilterOp::Exact(json!("zero"))).await,
        object_only
    );
    // `-1` is no key on MariaDB and "the last element" to PostgreSQL's `#>`: refused everywhere.
    let q =
        ActivityQuery::for_team("t").detail_filter("context.v.-1", FilterOp::Exact(json!("one")));
    assert!(
        load_activity(&t.db, &q)
            .await
            .unwrap_err()
            .is_invalid_query()
    );
    assert_eq!(
        found("context.v.007", FilterOp::Exact(json!(7))).await,
        object_only
    );
    assert_eq!(
        found("context.v.0", FilterOp::In(vec![json!("zero"), json!("x")])).await,
        object_only
    );
    assert_eq!(
        found("context.v.0", FilterOp::Contains("ZER".into())).await,
        object_only
    );
    assert_eq!(
        found("context.v.1", FilterOp::Exact(json!("one"))).await,
        none
    );
    assert_eq!(
        found("changes.0.field", FilterOp::Exact(json!("enabled"))).await,
        none,
        "changes is an array: 0 is not an index"
    );
    // Arrays are walked with `[]`; a numeric key inside each element is a key again.
    assert_eq!(
        found("changes[].field", FilterOp::Exact(json!("enabled"))).await,
        vec!["array".to_owned()]
    );
    assert_eq!(
        found("context.list[].0", FilterOp::Exact(json!("zero"))).await,
        vec!["array".to_owned()]
    );
    // A value that is an array equals no scalar (MySQL's JSON_CONTAINS alone would say it
    // does); its elements are compared with `[]`.
    assert_eq!(
        found("context.v", FilterOp::Exact(json!("zero"))).await,
        none
    );
    assert_eq!(
        found("context.v", FilterOp::In(vec![json!("one"), json!(7)])).await,
        none
    );
    assert_eq!(
        found("context.v[]", FilterOp::Exact(json!("zero"))).await,
        vec!["array".to_owned()],
        "`[]` walks an array's elements, never an object's members"
    );
    assert_eq!(
        found("context.v[]", FilterOp::Contains("zer".into())).await,
        vec!["array".to_owned()]
    );
}

// ---------------------------------------------------------------------------------------------
// Case-insensitive search folds non-ASCII letters on SQLite as on PostgreSQL and MariaDB.

async fn search_folds_unicode_case(t: &TestDb) {
    let names = [
        ("e1", "été"),
        ("e2", "ÉTÉ en Grèce"),
        ("e3", "summer"),
        ("e4", "Ünïcödé ΣΊΣΥΦΟΣ"),
        ("e5", "a*b?[c]"),
        ("e6", "50%_off"),
    ];
    let seeded: Vec<ActivityEntry> = names
        .iter()
        .enumerate()
        .map(|(i, (item, name))| entry(i as i64, item).with_name(*name))
        .collect();
    insert(t, &seeded).await;
    let items = async |q: ActivityQuery| -> Vec<String> {
        load_activity(&t.db, &q.ascending())
            .await
            .unwrap()
            .results
            .into_iter()
            .map(|e| e.item_id.unwrap_or_default())
            .collect()
    };
    let search = |text: &str| ActivityQuery::for_team("t").search(text);
    let contains = |text: &str| {
        ActivityQuery::for_team("t").detail_filter("name", FilterOp::Contains(text.into()))
    };
    let v = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    for (text, expect) in [
        ("ÉTÉ", v(&["e1", "e2"])),
        ("été", v(&["e1", "e2"])),
        ("éTé", v(&["e1", "e2"])),
        ("grÈce", v(&["e2"])),
        ("SUMMER", v(&["e3"])),
        ("üNÏCÖDÉ", v(&["e4"])),
        ("σίσυφοσ", v(&["e4"])),
        ("σίσυφος", v(&[])), // ς (final sigma) is its own letter to LOWER
        ("ΣΊΣΥΦΟΣ", v(&["e4"])),
        ("*B?[", v(&["e5"])),
        ("%_", v(&["e6"])),
        ("*", v(&["e5"])),
    ] {
        assert_eq!(items(search(text)).await, expect, "search {text:?}");
        assert_eq!(items(contains(text)).await, expect, "contains {text:?}");
    }
}

backend_tests!(
    csv_neutralizes_formulas,
    maintenance_ends_with_its_work,
    query_caps_are_invalid_query_errors,
    numeric_path_segments_are_object_keys,
    search_folds_unicode_case,
);
