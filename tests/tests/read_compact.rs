//! The compact stored `detail` on every backend: the same entries written in the full form
//! (as earlier versions wrote them) and in the compact one read back, filter and search alike,
//! and `schema::compact_details` converts the first into the second.

use activity_seaorm::entry::ChangeAction;
use activity_seaorm::entry::Trigger;
use activity_seaorm::prelude::*;
use activity_seaorm::query::FilterOp;
use activity_seaorm::{ActivityEntry, ActivityQuery, load_activity, log_activity};
use activity_tests::{Backend, TestDb, backend_tests};
use chrono::{Duration, TimeZone, Utc};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

/// Entries of team `team`: items `1`–`5`, with nulls, a change of another scope, an item-level
/// change, a null `before`, a trigger and a context.
fn entries(team: &str) -> Vec<ActivityEntry> {
    let change = |kind: &str, action, field: Option<&str>, before, after| {
        Change::new(kind, action, field, before, after)
    };
    let mut list = vec![
        ActivityEntry::new("FeatureFlag", "updated")
            .with_item_id("1")
            .with_name("Beta")
            .with_changes(vec![change(
                "FeatureFlag",
                ChangeAction::Changed,
                Some("enabled"),
                json!(false),
                json!(true),
            )]),
        ActivityEntry::new("FeatureFlag", "created")
            .with_item_id("2")
            .with_changes(vec![change(
                "FeatureFlag",
                ChangeAction::Created,
                Some("key"),
                json!(null),
                json!("gamma"),
            )]),
        ActivityEntry::new("FeatureFlag", "merged")
            .with_item_id("3")
            .with_changes(vec![
                change(
                    "Dashboard",
                    ChangeAction::Merged,
                    None,
                    json!("d-1"),
                    json!(null),
                ),
                change(
                    "FeatureFlag",
                    ChangeAction::Changed,
                    Some("note"),
                    json!({"a": null}),
                    json!(null),
                ),
            ]),
        ActivityEntry::new("FeatureFlag", "updated")
            .with_item_id("4")
            .forced(),
        ActivityEntry::new("Dashboard", "updated")
            .with_item_id("5")
            .with_changes(vec![change(
                "Dashboard",
                ChangeAction::Changed,
                Some("title"),
                json!("Q1"),
                json!("Q2"),
            )]),
    ];
    list[1].detail.short_id = Some("k2".into());
    list[2].detail.kind = Some("Sub".into());
    list[3].detail.trigger = Some(Trigger::new("recount", "run-1"));
    list[4].detail.context = Some(json!({"why": null}));
    let t0 = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
    for (i, e) in list.iter_mut().enumerate() {
        e.team_id = Some(team.into());
        e.created_at = t0 + Duration::minutes(i as i64);
    }
    list
}

/// Write `team`'s entries, the detail full or compact.
async fn write(t: &TestDb, team: &str, compact: bool) -> Vec<ActivityEntry> {
    let list = entries(team);
    let config = ActivityConfig::new().with_compact_detail(compact);
    for e in list.clone() {
        config.clone().scope(log_activity(&t.db, e)).await.unwrap();
    }
    list
}

/// Each row's `detail` as the server stores it, by item, for `team`.
async fn stored(t: &TestDb, team: &str) -> Vec<(String, serde_json::Value)> {
    let detail = match t.backend {
        Backend::Postgres => "detail::text",
        Backend::MySql => "CAST(detail AS CHAR)",
        Backend::Sqlite => "detail",
    };
    let sql = format!(
        "SELECT item_id, {detail} AS d FROM activity_log WHERE team_id = '{team}' ORDER BY item_id"
    );
    let rows =
        t.db.query_all_raw(Statement::from_string(t.db.get_database_backend(), sql))
            .await
            .unwrap();
    rows.iter()
        .map(|r| {
            let item: String = r.try_get("", "item_id").unwrap();
            let text: String = r.try_get("", "d").unwrap();
            (item, activity_seaorm::ops::seal::parse_json(&text).unwrap())
        })
        .collect()
}

async fn items(t: &TestDb, q: ActivityQuery) -> Vec<String> {
    let mut v: Vec<String> = load_activity(&t.db, &q.limit(100))
        .await
        .unwrap()
        .results
        .into_iter()
        .map(|e| e.item_id.unwrap_or_default())
        .collect();
    v.sort();
    v
}

async fn both_forms_read_filter_and_search_alike(t: &TestDb) {
    let full = write(t, "full", false).await;
    let compact = write(t, "compact", true).await;

    // Stored: the full form has every key, the compact one none of the nulls and no change
    // `type` that is the scope.
    let stored_full = stored(t, "full").await;
    assert_eq!(
        stored_full[3].1,
        json!({"name": null, "short_id": null, "type": null, "changes": [],
            "trigger": {"job_type": "recount", "job_id": "run-1", "payload": null}, "context": null})
    );
    let stored_compact = stored(t, "compact").await;
    let expected = [
        json!({"name": "Beta", "changes": [{"action": "changed", "field": "enabled", "before": false, "after": true}]}),
        json!({"short_id": "k2", "changes": [{"action": "created", "field": "key", "after": "gamma"}]}),
        json!({"type": "Sub", "changes": [
            {"type": "Dashboard", "action": "merged", "before": "d-1"},
            {"action": "changed", "field": "note", "before": {"a": null}}]}),
        json!({"trigger": {"job_type": "recount", "job_id": "run-1", "payload": null}}),
        json!({"changes": [{"action": "changed", "field": "title", "before": "Q1", "after": "Q2"}],
            "context": {"why": null}}),
    ];
    let got: Vec<&serde_json::Value> = stored_compact.iter().map(|(_, d)| d).collect();
    assert_eq!(got, expected.iter().collect::<Vec<_>>());

    // Read back: both forms give the entries written, details exactly.
    for (team, written) in [("full", &full), ("compact", &compact)] {
        let mut read = load_activity(&t.db, &ActivityQuery::for_team(team).ascending())
            .await
            .unwrap()
            .results;
        read.sort_by(|a, b| a.item_id.cmp(&b.item_id));
        let details: Vec<_> = read.iter().map(|e| &e.detail).collect();
        assert_eq!(
            details,
            written.iter().map(|e| &e.detail).collect::<Vec<_>>(),
            "{team}"
        );
    }

    // Filters and search match the API shape in either form.
    let exact = |path: &str, v: serde_json::Value| (path.to_owned(), FilterOp::Exact(v));
    let cases: Vec<((String, FilterOp), &[&str])> = vec![
        (exact("name", json!(null)), &["2", "3", "4", "5"]),
        (exact("short_id", json!(null)), &["1", "3", "4", "5"]),
        (exact("type", json!(null)), &["1", "2", "4", "5"]),
        (exact("trigger", json!(null)), &["1", "2", "3", "5"]),
        (exact("context", json!(null)), &["1", "2", "3", "4"]),
        (
            exact("changes[].type", json!("FeatureFlag")),
            &["1", "2", "3"],
        ),
        (exact("changes[].type", json!("Dashboard")), &["3", "5"]),
        (exact("changes[].field", json!(null)), &["3"]),
        (exact("changes[].before", json!(null)), &["2"]),
        (exact("changes[].after", json!(null)), &["3"]),
        (
            (
                "changes[].after".into(),
                FilterOp::In(vec![json!(null), json!(true)]),
            ),
            &["1", "3"],
        ),
        (
            ("changes[].type".into(), FilterOp::Contains("flag".into())),
            &["1", "2", "3"],
        ),
        (
            exact("changes[].action", json!("changed")),
            &["1", "3", "5"],
        ),
    ];
    for ((path, op), want) in cases {
        for team in ["full", "compact"] {
            let q = ActivityQuery::for_team(team).detail_filter(&path, op.clone());
            assert_eq!(items(t, q).await, *want, "{team}: {path} {op:?}");
        }
    }
    // `contains` on the changes themselves (objects, whose stored text lacks keys) is refused.
    for path in ["changes", "changes[]"] {
        let q =
            ActivityQuery::for_team("compact").detail_filter(path, FilterOp::Contains("a".into()));
        let err = load_activity(&t.db, &q).await.unwrap_err();
        assert!(
            err.is_invalid_query() && err.to_string().contains("holds objects"),
            "{err}"
        );
    }
    // Search: a change's type is text of the API shape (the scope, where left out); an
    // entry of that scope without changes does not match.
    for (text, want) in [
        ("featureflag", &["1", "2", "3"][..]),
        ("dashb", &["3", "5"][..]),
    ] {
        for team in ["full", "compact"] {
            let q = ActivityQuery::for_team(team).search(text);
            assert_eq!(items(t, q).await, want, "{team}: search {text}");
        }
    }
}

async fn old_rows_are_converted_in_place(t: &TestDb) {
    let full = write(t, "full", false).await;
    let compact = write(t, "compact", true).await;
    assert_eq!(
        activity_seaorm::schema::compact_details(&t.db)
            .await
            .unwrap(),
        full.len() as u64
    );
    assert_eq!(
        activity_seaorm::schema::compact_details(&t.db)
            .await
            .unwrap(),
        0
    );
    let after: Vec<_> = stored(t, "full")
        .await
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    let written: Vec<_> = stored(t, "compact")
        .await
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    assert_eq!(after, written);
    let mut read = load_activity(&t.db, &ActivityQuery::for_team("full"))
        .await
        .unwrap()
        .results;
    read.sort_by(|a, b| a.item_id.cmp(&b.item_id));
    let details: Vec<_> = read.iter().map(|e| &e.detail).collect();
    assert_eq!(details, full.iter().map(|e| &e.detail).collect::<Vec<_>>());
    assert_eq!(compact.len(), full.len());
}

backend_tests!(
    both_forms_read_filter_and_search_alike,
    old_rows_are_converted_in_place,
);
