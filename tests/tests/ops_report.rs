//! `activity_report` on every backend: exact counts grouped by activity, scope,
//! user and UTC day over a window, tenant-scoped like reads, with day boundaries at the last
//! microsecond.

use std::collections::BTreeMap;

use activity_seaorm::ops::report::ReportDimension as D;
use activity_seaorm::ops::report::{ReportRow, activity_report};
use activity_seaorm::{ActivityEntry, ActivityQuery, activity_log};
use activity_tests::{TestDb, backend_tests};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use sea_orm::EntityTrait;

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, d, 0, 0, 0).unwrap()
}

fn entry(
    at: DateTime<Utc>,
    org: &str,
    scope: &str,
    activity: &str,
    user: Option<&str>,
) -> ActivityEntry {
    let mut e = ActivityEntry::new(scope, activity);
    e.created_at = at;
    e.organization_id = Some(org.into());
    e.team_id = Some(format!("{org}-team"));
    e.user_id = user.map(Into::into);
    e.is_system = user.is_none();
    e
}

/// A deterministic spread over 1–4 March, two organizations, plus rows right at day edges.
fn seed() -> Vec<ActivityEntry> {
    let scopes = ["Session", "Doc"];
    let activities = ["login_failed", "login", "updated"];
    let users = [Some("u1"), Some("u2"), None];
    let mut out = Vec::new();
    for i in 0..90u32 {
        let org = if i % 5 == 4 { "other" } else { "acme" };
        let at = day(1 + i % 4) + Duration::minutes(i64::from(i * 37 % 1440));
        out.push(entry(
            at,
            org,
            scopes[(i % 2) as usize],
            activities[(i % 3) as usize],
            users[(i / 3 % 3) as usize],
        ));
    }
    // Day edges: the last microsecond of 1 March and the first of 2 March.
    out.push(entry(
        day(2) - Duration::microseconds(1),
        "acme",
        "Session",
        "login_failed",
        Some("edge"),
    ));
    out.push(entry(
        day(2),
        "acme",
        "Session",
        "login_failed",
        Some("edge"),
    ));
    out
}

async fn insert(t: &TestDb, entries: &[ActivityEntry]) {
    let models: Vec<activity_log::ActiveModel> = entries.iter().cloned().map(Into::into).collect();
    activity_log::Entity::insert_many(models)
        .exec_without_returning(&t.db)
        .await
        .unwrap();
}

/// The expected report, computed in memory.
type Row = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<NaiveDate>,
    u64,
);

fn tuples(rows: &[ReportRow]) -> Vec<Row> {
    rows.iter()
        .map(|r| {
            (
                r.activity.clone(),
                r.scope.clone(),
                r.user_id.clone(),
                r.day,
                r.count,
            )
        })
        .collect()
}

fn expected(
    seeded: &[ActivityEntry],
    keep: impl Fn(&ActivityEntry) -> bool,
    dims: &[D],
) -> Vec<Row> {
    let mut groups: BTreeMap<Vec<String>, (Row, u64)> = BTreeMap::new();
    for e in seeded.iter().filter(|e| keep(e)) {
        let row = (
            dims.contains(&D::Activity).then(|| e.activity.clone()),
            dims.contains(&D::Scope).then(|| e.scope.clone()),
            if dims.contains(&D::User) {
                e.user_id.clone()
            } else {
                None
            },
            dims.contains(&D::Day).then(|| e.created_at.date_naive()),
            0,
        );
        // Sort key in the order of `dims`, as the report sorts.
        let key = dims
            .iter()
            .map(|d| match d {
                D::Activity => e.activity.clone(),
                D::Scope => e.scope.clone(),
                D::User => e.user_id.clone().map_or(String::new(), |u| format!("~{u}")),
                D::Day => e.created_at.date_naive().to_string(),
                _ => unreachable!(),
            })
            .collect();
        groups.entry(key).or_insert((row, 0)).1 += 1;
    }
    groups
        .into_values()
        .map(|(mut row, n)| {
            row.4 = n;
            row
        })
        .collect()
}

async fn report_counts_exactly(t: &TestDb) {
    let seeded = seed();
    insert(t, &seeded).await;
    // The window: 1 March 00:00 to 3 March 23:59:59.999999 (4 March is outside).
    let (from, to) = (day(1), day(4) - Duration::microseconds(1));
    let in_window = |e: &ActivityEntry| e.created_at >= from && e.created_at <= to;
    let acme = ActivityQuery::for_organization("acme").between(Some(from), Some(to));

    let all_dims: [&[D]; 8] = [
        &[],
        &[D::Activity],
        &[D::Scope],
        &[D::User],
        &[D::Day],
        &[D::Activity, D::Day],
        &[D::User, D::Scope, D::Activity],
        &[D::Day, D::Activity, D::Scope, D::User],
    ];
    for dims in all_dims {
        let got = activity_report(&t.db, &acme, dims).await.unwrap();
        let want = expected(
            &seeded,
            |e| in_window(e) && e.organization_id.as_deref() == Some("acme"),
            dims,
        );
        assert_eq!(tuples(&got), want, "{dims:?}");
    }

    // A few exact figures, independent of the in-memory model.
    let total = activity_report(&t.db, &acme, &[]).await.unwrap();
    let acme_in_window = seeded
        .iter()
        .filter(|e| in_window(e) && e.organization_id.as_deref() == Some("acme"))
        .count() as u64;
    assert_eq!(total.len(), 1);
    assert_eq!(total[0].count, acme_in_window);
    assert_eq!(acme_in_window, 56);
    let by_day = activity_report(&t.db, &acme, &[D::Day]).await.unwrap();
    let days: Vec<(NaiveDate, u64)> = by_day.iter().map(|r| (r.day.unwrap(), r.count)).collect();
    let d = |n| NaiveDate::from_ymd_opt(2026, 3, n).unwrap();
    // The edge rows land on 1 and 2 March, not on one day.
    assert_eq!(days, vec![(d(1), 19), (d(2), 19), (d(3), 18)]);

    // Failed logins per organization per hour: the alert's question as a report.
    let failed = ActivityQuery::for_organization("acme")
        .between(Some(day(2)), Some(day(2) + Duration::hours(1)))
        .activities(["login_failed"]);
    let rows = activity_report(&t.db, &failed, &[D::User]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].user_id.as_deref(), rows[0].count),
        (Some("edge"), 1)
    );

    // Tenant scoping: another organization, a team, and unscoped see their own counts.
    let other = activity_report(
        &t.db,
        &ActivityQuery::for_organization("other").between(Some(from), Some(to)),
        &[],
    )
    .await
    .unwrap();
    let want_other = seeded
        .iter()
        .filter(|e| in_window(e) && e.organization_id.as_deref() == Some("other"))
        .count() as u64;
    assert_eq!(other[0].count, want_other);
    assert_eq!(want_other, 14);
    let team = activity_report(&t.db, &ActivityQuery::for_team("acme-team"), &[])
        .await
        .unwrap();
    assert_eq!(
        team[0].count,
        seeded
            .iter()
            .filter(|e| e.organization_id.as_deref() == Some("acme"))
            .count() as u64
    );
    let everyone = activity_report(&t.db, &ActivityQuery::unscoped(), &[D::Day])
        .await
        .unwrap();
    assert_eq!(everyone.iter().map(|r| r.count).sum::<u64>(), 92);
    assert_eq!(everyone.len(), 4);

    // No tenant, or a dimension twice: invalid queries, never backend errors.
    let err = activity_report(&t.db, &ActivityQuery::default(), &[])
        .await
        .unwrap_err();
    assert!(err.is_invalid_query(), "{err}");
    let err = activity_report(&t.db, &acme, &[D::Day, D::Day])
        .await
        .unwrap_err();
    assert!(err.is_invalid_query(), "{err}");

    // An empty window has no groups (and a total of zero).
    let empty = ActivityQuery::for_organization("acme").between(Some(day(20)), Some(day(21)));
    assert!(
        activity_report(&t.db, &empty, &[D::Activity])
            .await
            .unwrap()
            .is_empty()
    );
    let zero = activity_report(&t.db, &empty, &[]).await.unwrap();
    assert_eq!(zero.len(), 1);
    assert_eq!(zero[0].count, 0);
}

backend_tests!(report_counts_exactly);
