//! Reading back on every backend: filters, detail filters, keyset pagination, export,
//! retention and erasure.

use activity_seaorm::entry::ChangeAction;
use activity_seaorm::ops::erasure::{anonymize_user, pseudonym};
use activity_seaorm::ops::export::{export_csv, export_jsonl};
use activity_seaorm::ops::retention::prune;
use activity_seaorm::prelude::*;
use activity_seaorm::query::FilterOp;
use activity_seaorm::{
    ActivityEntry, ActivityQuery, activity_log, bulk_log_activity, load_activity,
};
use activity_tests::{TestDb, backend_tests};
use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;

fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(minute)
}

fn entry(minute: i64, scope: &str, item: &str, activity: &str) -> ActivityEntry {
    let mut e = ActivityEntry::new(scope, activity)
        .with_item_id(item)
        .forced();
    e.created_at = at(minute);
    e.team_id = Some("team-a".into());
    e
}

/// A small, varied log; returns it in insertion order.
async fn seed(t: &TestDb) -> Vec<ActivityEntry> {
    let mut entries = vec![
        entry(0, "FeatureFlag", "1", "created").with_name("Beta Checkout"),
        entry(1, "FeatureFlag", "1", "updated")
            .with_name("Beta Checkout")
            .with_changes(vec![Change::new(
                "FeatureFlag",
                ChangeAction::Changed,
                Some("enabled"),
                json!(false),
                json!(true),
            )]),
        entry(2, "Dashboard", "9", "created").with_name("Sales 50%_off"),
        entry(3, "Dashboard", "9", "deleted").with_name("Sales 50%_off"),
        entry(4, "FeatureFlag", "2", "created")
            .with_name("it's \"quoted\" \\ back")
            .with_changes(vec![Change::new(
                "FeatureFlag",
                ChangeAction::Created,
                Some("description"),
                json!(null),
                json!("say \"Hi\" \\ there"),
            )]),
    ];
    entries[0].user_id = Some("u1".into());
    entries[0].user_name = Some("alice".into());
    entries[0].is_system = false;
    entries[1].user_id = Some("u1".into());
    entries[1].user_name = Some("alice".into());
    entries[1].is_system = false;
    entries[1].impersonated_by = Some("staff".into());
    entries[1].was_impersonated = true;
    entries[2].team_id = Some("team-b".into());
    entries[2].organization_id = Some("org-1".into());
    for (i, n) in [json!(42), json!("42"), json!(42.0), json!(43), json!(true)]
        .into_iter()
        .enumerate()
    {
        entries[i].detail.context = Some(json!({"n": n, "deep": {"k": format!("v{i}")}}));
    }
    // bulk_log_activity stamps the (system) context: set actors after, through a raw insert.
    let models: Vec<activity_log::ActiveModel> = entries.iter().cloned().map(Into::into).collect();
    activity_log::Entity::insert_many(models)
        .exec_without_returning(&t.db)
        .await
        .unwrap();
    entries
}

fn items(page: &activity_seaorm::query::Page) -> Vec<(String, String)> {
    page.results
        .iter()
        .map(|e| (e.item_id.clone().unwrap_or_default(), e.activity.clone()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

async fn column_filters(t: &TestDb) {
    seed(t).await;
    let load = |q: ActivityQuery| async move { items(&load_activity(&t.db, &q).await.unwrap()) };
    let team = || ActivityQuery::for_team("team-a");

    assert_eq!(
        load(team()).await,
        pairs(&[
            ("2", "created"),
            ("9", "deleted"),
            ("1", "updated"),
            ("1", "created")
        ])
    );
    assert_eq!(
        load(team().item("FeatureFlag", "1").ascending()).await,
        pairs(&[("1", "created"), ("1", "updated")])
    );
    assert_eq!(
        load(ActivityQuery::for_team("team-b")).await,
        pairs(&[("9", "created")])
    );
    assert_eq!(
        load(ActivityQuery::for_organization("org-1")).await,
        pairs(&[("9", "created")])
    );
    assert_eq!(
        load(team().users(["u1"]).activities(["updated"])).await,
        pairs(&[("1", "updated")])
    );
    assert_eq!(
        load(team().was_impersonated(true)).await,
        pairs(&[("1", "updated")])
    );
    assert_eq!(load(team().is_system(false)).await.len(), 2);
    assert_eq!(load(team().is_system(true)).await.len(), 2);
    assert_eq!(
        load(team().between(Some(at(1)), Some(at(3)))).await,
        pairs(&[("9", "deleted"), ("1", "updated")])
    );
    assert_eq!(
        load(ActivityQuery::unscoped().scopes(["Dashboard"]))
            .await
            .len(),
        2
    );

    // Tenant, page size and cursor mistakes are clear errors.
    let err = load_activity(&t.db, &ActivityQuery::default())
        .await
        .unwrap_err();
    assert!(
        err.is_invalid_query() && err.to_string().contains("unscoped"),
        "{err}"
    );
    let err = load_activity(&t.db, &team().limit(1001)).await.unwrap_err();
    assert!(err.to_string().contains("maximum 1000"), "{err}");
    assert!(load_activity(&t.db, &team().limit(0)).await.is_err());
}

async fn search_and_detail_filters(t: &TestDb) {
    seed(t).await;
    let load = |q: ActivityQuery| async move {
        let mut v: Vec<String> = load_activity(&t.db, &q)
            .await
            .unwrap()
            .results
            .into_iter()
            .map(|e| {
                format!(
                    "{}@{}",
                    e.item_id.unwrap_or_default(),
                    e.created_at.format("%M")
                )
            })
            .collect();
        v.sort();
        v
    };
    let all = || ActivityQuery::unscoped();

    // Case-insensitive search; LIKE wildcards in the input are literal.
    assert_eq!(
        load(all().search("beta checkout")).await,
        vec!["1@00", "1@01"]
    );
    assert_eq!(load(all().search("50%_OFF")).await, vec!["9@02", "9@03"]);
    assert_eq!(load(all().search("%")).await, vec!["9@02", "9@03"]);
    assert_eq!(load(all().search("%_o")).await, vec!["9@02", "9@03"]);
    assert_eq!(
        load(all().search("0_")).await,
        Vec::<String>::new(),
        "`_` is not a wildcard"
    );
    // Values, not JSON text: the quotes as written, never their escapes.
    assert_eq!(load(all().search("it's \"quoted\"")).await, vec!["2@04"]);
    assert_eq!(
        load(all().search("it's \\\"quoted\\\"")).await,
        Vec::<String>::new()
    );
    // Never keys or JSON syntax: every entry has a `name` key and `null`s, none of these
    // values.
    for syntax in ["name", "null", "changes", "\":\"", "{"] {
        assert_eq!(
            load(all().search(syntax)).await,
            Vec::<String>::new(),
            "{syntax}"
        );
    }
    assert_eq!(
        load(all().search("'; DROP TABLE activity_log; --")).await,
        Vec::<String>::new()
    );
    assert!(
        load_activity(&t.db, &all().search("nul\0byte"))
            .await
            .unwrap_err()
            .is_invalid_query()
    );

    // Type-tolerant exact matches: "42" matches 42, "42" and 42.0.
    let exact = |path: &str, v: serde_json::Value| all().detail_filter(path, FilterOp::Exact(v));
    assert_eq!(
        load(exact("context.n", json!("42"))).await,
        vec!["1@00", "1@01", "9@02"]
    );
    assert_eq!(
        load(exact("context.n", json!(42))).await,
        vec!["1@00", "1@01", "9@02"]
    );
    assert_eq!(load(exact("context.n", json!("true"))).await, vec!["2@04"]);
    assert_eq!(load(exact("context.n", json!("1"))).await, vec!["2@04"]);
    assert_eq!(
        load(exact("context.deep.k", json!("v3"))).await,
        vec!["9@03"]
    );
    assert_eq!(
        load(exact("name", json!("Beta Checkout"))).await,
        vec!["1@00", "1@01"]
    );
    assert_eq!(
        load(exact("changes[].field", json!("enabled"))).await,
        vec!["1@01"]
    );
    assert_eq!(
        load(exact("changes[].after", json!("true"))).await,
        vec!["1@01"]
    );
    assert_eq!(
        load(all().detail_filter("context.n", FilterOp::In(vec![json!(43), json!(true)]))).await,
        vec!["2@04", "9@03"]
    );
    assert_eq!(
        load(all().detail_filter("name", FilterOp::Contains("SALES".into()))).await,
        vec!["9@02", "9@03"]
    );
    // `contains` over each element of a `[]` path tests the element's text, not JSON text
    // (no quotes or escapes to match), and a JSON null has no text.
    let contains = |path: &str, s: &str| all().detail_filter(path, FilterOp::Contains(s.into()));
    assert_eq!(
        load(contains("changes[].after", "\"hi\" \\ t")).await,
        vec!["2@04"]
    );
    assert_eq!(
        load(contains("changes[].after", "\\\"")).await,
        Vec::<String>::new(),
        "no JSON escapes"
    );
    assert_eq!(
        load(contains("changes[].field", "ENAB")).await,
        vec!["1@01"]
    );
    assert_eq!(
        load(contains("changes[].before", "null")).await,
        Vec::<String>::new()
    );
    assert_eq!(load(contains("changes[].after", "tru")).await, vec!["1@01"]);
    assert_eq!(
        load(contains("context.n", "4")).await,
        vec!["1@00", "1@01", "9@02", "9@03"]
    );
    assert_eq!(
        load(exact("context.missing", json!("x"))).await,
        Vec::<String>::new()
    );

    // Path syntax errors are clear errors, never SQL.
    for bad in [
        "",
        "a..b",
        "a'b",
        "changes[].x[].y",
        "name; DROP TABLE activity_log",
    ] {
        let err = load_activity(&t.db, &exact(bad, json!(1)))
            .await
            .unwrap_err();
        assert!(
            err.is_invalid_query() && err.to_string().contains("detail path"),
            "{bad}: {err}"
        );
    }
    assert_eq!(
        activity_log::Entity::find().count(&t.db).await.unwrap(),
        5,
        "nothing changed"
    );
}

async fn keyset_pagination_with_ties(t: &TestDb) {
    let same = at(10);
    let entries: Vec<ActivityEntry> = (0..25)
        .map(|i| {
            let mut e = entry(0, "Tie", &i.to_string(), "created");
            e.created_at = same;
            e
        })
        .collect();
    bulk_log_activity(&t.db, entries.clone()).await.unwrap();
    for ascending in [false, true] {
        let mut query = ActivityQuery::for_team("team-a").scope("Tie").limit(10);
        if ascending {
            query = query.ascending();
        }
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = load_activity(&t.db, &query).await.unwrap();
            pages += 1;
            seen.extend(page.results.iter().map(|e| e.id));
            match page.next_cursor {
                Some(c) => query = query.after(c),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        let mut expected: Vec<_> = entries.iter().map(|e| e.id).collect();
        expected.sort();
        if !ascending {
            expected.reverse();
        }
        assert_eq!(
            seen, expected,
            "every entry exactly once, in (created_at, id) order"
        );
    }
    // A cursor from one query is rejected by another.
    let page = load_activity(
        &t.db,
        &ActivityQuery::for_team("team-a").scope("Tie").limit(10),
    )
    .await
    .unwrap();
    let cursor = page.next_cursor.unwrap();
    let err = load_activity(
        &t.db,
        &ActivityQuery::for_team("team-b").scope("Tie").after(cursor),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("different query"), "{err}");
    let err = load_activity(
        &t.db,
        &ActivityQuery::for_team("team-a").after("not-a-cursor"),
    )
    .await
    .unwrap_err();
    assert!(err.is_invalid_query());
}

async fn export_prune_and_erase(t: &TestDb) {
    let seeded = seed(t).await;
    let mut csv = Vec::new();
    let n = export_csv(&t.db, &ActivityQuery::unscoped().ascending(), &mut csv)
        .await
        .unwrap();
    assert_eq!(n, 5);
    let mut reader = csv::Reader::from_reader(csv.as_slice());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        activity_seaorm::ops::export::CSV_COLUMNS
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 5);
    assert_eq!(&rows[0][0], seeded[0].id.to_string());
    assert_eq!(&rows[0][4], "u1");
    let detail: serde_json::Value = serde_json::from_str(&rows[0][12]).unwrap();
    assert_eq!(detail["name"], json!("Beta Checkout"));

    let mut jsonl = Vec::new();
    assert_eq!(
        export_jsonl(&t.db, &ActivityQuery::for_team("team-a"), &mut jsonl)
            .await
            .unwrap(),
        4
    );
    let first: ActivityEntry =
        serde_json::from_str(String::from_utf8(jsonl).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first.id, seeded[4].id);

    // Erasure: u1's id and name disappear everywhere; one entry records it.
    let keyed = || {
        ActivityConfig::new()
            .with_erasure_key([7u8; 32])
            .with_user_scopes(["User"])
    };
    let rewritten = ActivityConfig::scope(keyed(), anonymize_user(&t.db, "u1"))
        .await
        .unwrap();
    assert_eq!(rewritten, 2);
    let alias = ActivityConfig::scope(keyed(), async { pseudonym("u1") })
        .await
        .unwrap();
    let again = ActivityConfig::scope(keyed(), async { pseudonym("u1") }).await;
    assert_eq!(alias, again.unwrap(), "stable");
    let dump = t.dump().await;
    assert!(
        !dump.contains("\"u1\"") && !dump.contains("alice"),
        "{dump}"
    );
    let page = load_activity(&t.db, &ActivityQuery::unscoped().users([alias.clone()]))
        .await
        .unwrap();
    assert_eq!(page.results.len(), 2);
    // The name becomes its own pseudonym (what the sealed history hashes).
    let name_alias = ActivityConfig::scope(keyed(), async { pseudonym("alice") })
        .await
        .unwrap();
    assert!(
        page.results
            .iter()
            .all(|e| e.user_name.as_deref() == Some(name_alias.as_str()))
    );
    let record = load_activity(&t.db, &ActivityQuery::unscoped().activities(["anonymized"]))
        .await
        .unwrap();
    assert_eq!(record.results.len(), 1);
    assert_eq!(record.results[0].item_id.as_deref(), Some(alias.as_str()));

    // Retention: everything seeded is from 2026-01-01.
    let deleted = prune(&t.db, at(3), &[]).await.unwrap();
    assert_eq!(deleted, 3);
    let deleted = prune(&t.db, at(100), &["Dashboard"]).await.unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(
        activity_log::Entity::find().count(&t.db).await.unwrap(),
        2,
        "one seeded + the erasure record"
    );
}

async fn describe_reads_well(t: &TestDb) {
    seed(t).await;
    let page = load_activity(&t.db, &ActivityQuery::for_team("team-a").ascending())
        .await
        .unwrap();
    let lines: Vec<String> = page.results.iter().map(describe).collect();
    assert_eq!(lines[0], "alice created FeatureFlag Beta Checkout");
    assert_eq!(
        lines[1],
        "alice (impersonated by staff) changed enabled from false to true on FeatureFlag Beta Checkout"
    );
    assert_eq!(lines[2], "system deleted Dashboard Sales 50%_off");
}

backend_tests!(
    column_filters,
    search_and_detail_filters,
    keyset_pagination_with_ties,
    export_prune_and_erase,
    describe_reads_well,
);
