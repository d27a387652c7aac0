//! Read policies on every read path: for a log of hidden and visible entries, pages, exports,
//! reports, alerts (database and stream), the notifier and the in-memory store give each reader
//! exactly what the rules leave them, checked against a table written out by hand below (not
//! against the library's own predicate); keyset pages never repeat or skip across hidden rows;
//! a lookback window hides old rows from reads and reports without touching them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use activity_nats::StreamAlerts;
use activity_nats::notify::{
    self, Audience, BoxError, Channel, Depth, ItemAudience, Notification, Router, TenantKey,
    Visibility,
};
use activity_seaorm::clock::FixedClock;
use activity_seaorm::ops::alerts::{AlertEvaluator, AlertHandler, AlertRule, Breach};
use activity_seaorm::ops::export::{export_csv, export_jsonl};
use activity_seaorm::ops::report::{ReportDimension, activity_report};
use activity_seaorm::policy::{EntryCondition, Tenant, VisibilityRule};
use activity_seaorm::store::{ActivityStore, InMemoryStore};
use activity_seaorm::{
    ActivityConfig, ActivityContext, ActivityEntry, ActivityQuery, Actor, ReadPolicy, Reader,
    bulk_log_activity, load_activity,
};
use activity_tests::{TestDb, backend_tests};
use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
}

/// Three rules, as an application would write them: impersonated logins for staff; user
/// accounts for staff and the account's user; billing for auditors and the payer.
fn policy() -> ReadPolicy {
    ReadPolicy::new()
        .hide(
            VisibilityRule::new("impersonated-logins")
                .scopes(["Session"])
                .activities(["logged_in"])
                .when(EntryCondition::WasImpersonated(true)),
        )
        .hide(
            VisibilityRule::new("user-accounts")
                .scopes(["User"])
                .visible_to_subject(),
        )
        .hide(
            VisibilityRule::new("billing")
                .scopes(["Billing"])
                .hidden_from_staff()
                .visible_to_actor(),
        )
}

/// The kinds of entry in the log, one per `i % 6`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    ImpersonatedLogin,
    Login,
    AccountOfU2,
    BillingOfU3,
    Flag,
    SystemJob,
}

const KINDS: [Kind; 6] = [
    Kind::ImpersonatedLogin,
    Kind::Login,
    Kind::AccountOfU2,
    Kind::BillingOfU3,
    Kind::Flag,
    Kind::SystemJob,
];

fn entry(kind: Kind) -> ActivityEntry {
    let (scope, activity, item, ctx) = match kind {
        Kind::ImpersonatedLogin => (
            "Session",
            "logged_in",
            "s",
            ActivityContext::impersonating(Actor::new("u1"), Actor::new("agent-1"))
                .with_ip("203.0.113.9"),
        ),
        Kind::Login => (
            "Session",
            "logged_in",
            "s",
            ActivityContext::for_user(Actor::new("u1")).with_ip("198.51.100.1"),
        ),
        Kind::AccountOfU2 => (
            "User",
            "updated",
            "u2",
            ActivityContext::for_user(Actor::new("admin")),
        ),
        Kind::BillingOfU3 => (
            "Billing",
            "charged",
            "inv-1",
            ActivityContext::for_user(Actor::new("u3")),
        ),
        Kind::Flag => (
            "FeatureFlag",
            "updated",
            "1",
            ActivityContext::for_user(Actor::new("u2")),
        ),
        Kind::SystemJob => ("Job", "ran", "nightly", ActivityContext::system()),
    };
    let mut e = ActivityEntry::new(scope, activity)
        .with_item_id(item)
        .with_context(&ctx);
    e.organization_id = Some("acme".into());
    e.team_id = Some("7".into());
    e.forced()
}

/// The readers, and what each may see — written out by hand.
fn readers() -> Vec<(&'static str, Reader, Vec<Kind>)> {
    use Kind::*;
    vec![
        (
            "member u9",
            Reader::member("u9"),
            vec![Login, Flag, SystemJob],
        ),
        (
            "member u2 (the account's user)",
            Reader::member("u2"),
            vec![Login, AccountOfU2, Flag, SystemJob],
        ),
        (
            "member u3 (the payer)",
            Reader::member("u3"),
            vec![Login, BillingOfU3, Flag, SystemJob],
        ),
        (
            "member u1 (the impersonated user)",
            Reader::member("u1"),
            vec![Login, Flag, SystemJob],
        ),
        (
            "staff",
            Reader::staff("s1"),
            vec![ImpersonatedLogin, Login, AccountOfU2, Flag, SystemJob],
        ),
        ("auditor", Reader::auditor(), KINDS.to_vec()),
    ]
}

/// 60 entries, ten of each kind, two to a timestamp (ties across hidden and visible rows).
async fn seed(t: &TestDb) -> BTreeMap<Uuid, Kind> {
    let mut kinds = BTreeMap::new();
    let mut entries = Vec::new();
    for i in 0..60usize {
        let kind = KINDS[i % 6];
        let mut e = entry(kind);
        e.created_at = t0() + Duration::minutes((i / 2) as i64);
        kinds.insert(e.id, kind);
        entries.push(e);
    }
    bulk_log_activity(&t.db, entries).await.unwrap();
    kinds
}

fn expected(kinds: &BTreeMap<Uuid, Kind>, visible: &[Kind]) -> BTreeSet<Uuid> {
    kinds
        .iter()
        .filter(|(_, k)| visible.contains(k))
        .map(|(id, _)| *id)
        .collect()
}

fn with_policy<F: Future>(policy: ReadPolicy, fut: F) -> impl Future<Output = F::Output> {
    ActivityConfig::scope(ActivityConfig::new().with_read_policy(policy), fut)
}

/// Every page of `query`, checking that no entry repeats and the order holds.
async fn all_pages(t: &TestDb, query: ActivityQuery) -> Vec<ActivityEntry> {
    let mut out: Vec<ActivityEntry> = Vec::new();
    let mut q = query;
    loop {
        let page = load_activity(&t.db, &q).await.unwrap();
        out.extend(page.results);
        match page.next_cursor {
            Some(c) => q = q.after(c),
            None => break,
        }
    }
    let ids: BTreeSet<Uuid> = out.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), out.len(), "an entry repeated across pages");
    out
}

backend_tests!(
    every_read_path_returns_exactly_what_the_reader_may_see,
    reports_alerts_and_notifications_count_only_the_visible,
    a_lookback_window_hides_old_rows_without_touching_them,
    a_read_without_a_reader_is_refused_under_a_policy,
);

async fn every_read_path_returns_exactly_what_the_reader_may_see(t: &TestDb) {
    let kinds = seed(t).await;
    with_policy(policy(), async {
        let store = InMemoryStore::default();
        store.append(all_entries(t).await).await.unwrap();
        for (who, reader, visible) in readers() {
            let want = expected(&kinds, &visible);
            for ascending in [false, true] {
                let mut q = ActivityQuery::for_team("7").reader(reader.clone()).limit(7);
                if ascending {
                    q = q.ascending();
                }
                let got = all_pages(t, q).await;
                let ids: BTreeSet<Uuid> = got.iter().map(|e| e.id).collect();
                assert_eq!(
                    ids, want,
                    "{who} (ascending: {ascending}) on {:?}",
                    t.backend
                );
                let keys: Vec<(DateTime<Utc>, Uuid)> =
                    got.iter().map(|e| (e.created_at, e.id)).collect();
                let mut sorted = keys.clone();
                sorted.sort();
                if !ascending {
                    sorted.reverse();
                }
                assert_eq!(keys, sorted, "{who}: keyset order");
            }
            // The one-entry form agrees with SQL on every entry.
            let now = t0() + Duration::days(1);
            for e in all_entries(t).await {
                assert_eq!(
                    policy().allows(&reader, &e, now),
                    want.contains(&e.id),
                    "{who}: allows() and SQL disagree on {:?}",
                    kinds[&e.id]
                );
            }
            // The in-memory store.
            let mut seen = BTreeSet::new();
            let mut q = ActivityQuery::for_team("7").reader(reader.clone()).limit(9);
            loop {
                let page = store.query(&q).await.unwrap();
                seen.extend(page.results.iter().map(|e| e.id));
                match page.next_cursor {
                    Some(c) => q = q.after(c),
                    None => break,
                }
            }
            assert_eq!(seen, want, "{who}: in-memory store");
            // Exports: the same rows; the request origin only where the reader sees it.
            let q = ActivityQuery::for_team("7").reader(reader.clone());
            let mut jsonl = Vec::new();
            let n = export_jsonl(&t.db, &q, &mut jsonl).await.unwrap();
            let lines: Vec<serde_json::Value> = String::from_utf8(jsonl)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(n as usize, want.len(), "{who}: jsonl count");
            let ids: BTreeSet<Uuid> = lines
                .iter()
                .map(|l| l["id"].as_str().unwrap().parse().unwrap())
                .collect();
            assert_eq!(ids, want, "{who}: jsonl");
            let shows_ip = lines
                .iter()
                .any(|l| l.get("ip_address").is_some_and(|v| !v.is_null()));
            assert_eq!(
                shows_ip, reader.staff,
                "{who}: ip address in the jsonl export"
            );
            let mut csv = Vec::new();
            let n = export_csv(&t.db, &q, &mut csv).await.unwrap();
            assert_eq!(n as usize, want.len(), "{who}: csv count");
            let text = String::from_utf8(csv).unwrap();
            assert_eq!(text.lines().count(), want.len() + 1);
            assert_eq!(text.contains("198.51.100.1"), reader.staff, "{who}: csv ip");
            assert_eq!(
                text.contains("agent-1"),
                reader.staff,
                "{who}: csv impersonator"
            );
        }
    })
    .await;
}

async fn all_entries(t: &TestDb) -> Vec<ActivityEntry> {
    t.entries().await
}

/// The application's alert handler: keeps the breaches.
#[derive(Default)]
struct Breaches(Mutex<Vec<Breach>>);

#[async_trait::async_trait]
impl AlertHandler for Breaches {
    async fn on_breach(&self, b: &Breach) {
        self.0.lock().unwrap().push(b.clone());
    }
}

/// Watchers "u9" (a member) and "s1" (staff) on every item of the log.
struct Everyone;

#[async_trait::async_trait]
impl Audience for Everyone {
    async fn item(&self, _: &ActivityEntry) -> Result<ItemAudience, BoxError> {
        Ok(ItemAudience::default()
            .with_delegators(["u9", "s1"])
            .with_visibility(Visibility::Tenant))
    }
    async fn may_see(&self, _: &str, _: &ActivityEntry, _: Visibility) -> Result<bool, BoxError> {
        Ok(true)
    }
    async fn reader(&self, user: &str, _: &ActivityEntry) -> Result<Reader, BoxError> {
        Ok(if user == "s1" {
            Reader::staff(user)
        } else {
            Reader::member(user)
        })
    }
}

#[derive(Default)]
struct Inbox(Mutex<Vec<(String, serde_json::Value)>>);

#[async_trait::async_trait]
impl Channel for Inbox {
    async fn deliver(&self, n: &Notification) -> Result<(), BoxError> {
        self.0
            .lock()
            .unwrap()
            .push((n.recipient.clone(), serde_json::to_value(&*n.entry)?));
        Ok(())
    }
}

async fn reports_alerts_and_notifications_count_only_the_visible(t: &TestDb) {
    let kinds = seed(t).await;
    with_policy(policy(), async {
        // Reports: per scope, the visible rows only.
        for (who, reader, visible) in readers() {
            let rows = activity_report(
                &t.db,
                &ActivityQuery::for_team("7").reader(reader.clone()),
                &[ReportDimension::Scope, ReportDimension::Activity],
            )
            .await
            .unwrap();
            let mut want: BTreeMap<(String, String), u64> = BTreeMap::new();
            for k in kinds.values().filter(|k| visible.contains(k)) {
                let e = entry(*k);
                *want.entry((e.scope, e.activity)).or_default() += 1;
            }
            let got: BTreeMap<(String, String), u64> = rows
                .into_iter()
                .map(|r| ((r.scope.unwrap(), r.activity.unwrap()), r.count))
                .collect();
            assert_eq!(got, want, "{who}: report");
        }

        // Alerts: more than 10 logins in a day. A member sees 10 (no breach), staff 20.
        let logins = |reader: Reader| {
            AlertRule::new(
                "logins",
                ActivityQuery::for_team("7")
                    .scopes(["Session"])
                    .reader(reader),
                10,
                Duration::days(1),
            )
        };
        let mut db_alerts = AlertEvaluator::new(vec![logins(Reader::member("u9"))]);
        let handler = Breaches::default();
        let now = t0() + Duration::hours(2);
        assert!(
            db_alerts
                .evaluate(&t.db, now, &handler)
                .await
                .unwrap()
                .is_empty()
        );
        let mut db_alerts = AlertEvaluator::new(vec![logins(Reader::staff("s1"))]);
        let fired = db_alerts.evaluate(&t.db, now, &handler).await.unwrap();
        assert_eq!(fired.iter().map(|b| b.count).collect::<Vec<_>>(), [20]);
        // On the stream, the same rules and the same answer.
        let mut entries = all_entries(t).await;
        entries.sort_by_key(|e| (e.created_at, e.id));
        for (reader, want) in [
            (Reader::member("u9"), vec![]),
            (Reader::staff("s1"), vec![11]),
        ] {
            let mut stream = StreamAlerts::new(vec![logins(reader)]).unwrap();
            let handler = Breaches::default();
            let mut counts = Vec::new();
            for e in &entries {
                counts.extend(stream.observe(e, &handler).await.iter().map(|b| b.count));
            }
            assert_eq!(counts, want);
        }
        assert!(
            StreamAlerts::new(vec![AlertRule::new(
                "no reader",
                ActivityQuery::for_team("7"),
                1,
                Duration::hours(1)
            )])
            .is_err(),
            "a stream rule without a reader under a policy"
        );

        // The notifier: the member watcher never receives what the rules hide from them; the
        // staff watcher does, with the impersonator and the address their role reveals.
        notify::create_tables(&t.db).await.unwrap();
        notify::subscribe(
            &t.db,
            &TenantKey::organization("acme"),
            "u9",
            "Session",
            "s",
            Depth::Resource,
        )
        .await
        .unwrap();
        let router = Router::new(Everyone).with_workflow_verbs(["logged_in", "charged", "ran"]);
        let inbox = Inbox::default();
        for kind in KINDS {
            notify::handle(&t.db, &router, &inbox, entry(kind))
                .await
                .unwrap();
        }
        let got = inbox.0.lock().unwrap().clone();
        let of = |user: &str| -> Vec<String> {
            got.iter()
                .filter(|(r, _)| r == user)
                .map(|(_, e)| {
                    format!(
                        "{}.{}",
                        e["scope"].as_str().unwrap(),
                        e["activity"].as_str().unwrap()
                    )
                })
                .collect()
        };
        assert_eq!(
            of("u9"),
            ["Session.logged_in", "FeatureFlag.updated", "Job.ran"],
            "the member: the plain login, the flag and the job only"
        );
        assert_eq!(
            of("s1"),
            [
                "Session.logged_in",
                "Session.logged_in",
                "User.updated",
                "FeatureFlag.updated",
                "Job.ran"
            ]
        );
        let staff_copy = &got
            .iter()
            .find(|(r, e)| r == "s1" && e["was_impersonated"] == true)
            .unwrap()
            .1;
        assert_eq!(staff_copy["impersonated_by"], "agent-1");
        assert!(
            got.iter()
                .filter(|(r, _)| r == "u9")
                .all(|(_, e)| e.get("ip_address").is_none()),
            "a member's notification carries no address"
        );
    })
    .await;
}

async fn a_lookback_window_hides_old_rows_without_touching_them(t: &TestDb) {
    let now = t0() + Duration::days(100);
    let mut entries = Vec::new();
    for (days, kind) in [
        (40, Kind::Flag),
        (31, Kind::Login),
        (29, Kind::Flag),
        (1, Kind::Login),
    ] {
        let mut e = entry(kind);
        e.created_at = now - Duration::days(days);
        entries.push(e);
    }
    bulk_log_activity(&t.db, entries).await.unwrap();
    // Team 7 is on a 30-day plan; team 8 on an unlimited one.
    let policy = ReadPolicy::new().with_lookback(|tenant: &Tenant| match tenant {
        Tenant::Team(id) if id == "7" => Some(Duration::days(30)),
        _ => None,
    });
    let config = ActivityConfig::new()
        .with_read_policy(policy)
        .with_clock(Arc::new(FixedClock(now)));
    ActivityConfig::scope(config, async {
        for (who, reader, want) in [
            ("member", Reader::member("u9"), 2),
            (
                "member naming the team",
                Reader::member("u9").in_team("7"),
                2,
            ),
            ("staff", Reader::staff("s1"), 2),
            (
                "a reader of an unlimited team",
                Reader::member("u9").in_team("8"),
                4,
            ),
            ("auditor", Reader::auditor(), 4),
        ] {
            let q = ActivityQuery::for_team("7").reader(reader.clone()).limit(1);
            assert_eq!(all_pages(t, q.clone()).await.len(), want, "{who}");
            let rows = activity_report(&t.db, &q, &[]).await.unwrap();
            assert_eq!(
                rows.iter().map(|r| r.count).sum::<u64>(),
                want as u64,
                "{who}: report"
            );
        }
        // An unscoped read by a reader naming no tenant: whose plan? Refused.
        let err = load_activity(
            &t.db,
            &ActivityQuery::unscoped().reader(Reader::member("u9")),
        )
        .await
        .unwrap_err();
        assert!(err.is_invalid_query(), "{err}");
    })
    .await;
    // Nothing was deleted.
    assert_eq!(t.entries().await.len(), 4);
}

async fn a_read_without_a_reader_is_refused_under_a_policy(t: &TestDb) {
    seed(t).await;
    with_policy(policy(), async {
        let q = ActivityQuery::for_team("7");
        let err = load_activity(&t.db, &q).await.unwrap_err();
        assert!(err.is_invalid_query(), "{err}");
        assert!(err.to_string().contains("Reader::auditor()"), "{err}");
        assert!(
            activity_report(&t.db, &q, &[])
                .await
                .unwrap_err()
                .is_invalid_query()
        );
        assert!(
            export_jsonl(&t.db, &q, Vec::new())
                .await
                .unwrap_err()
                .is_invalid_query()
        );
        let mut alerts =
            AlertEvaluator::new(vec![AlertRule::new("r", q.clone(), 1, Duration::hours(1))]);
        assert!(
            alerts
                .evaluate(&t.db, t0(), &Breaches::default())
                .await
                .unwrap_err()
                .is_invalid_query()
        );
    })
    .await;
    // Without a policy, a query needs no reader: nothing to restrict.
    assert_eq!(
        all_pages(t, ActivityQuery::for_team("7").limit(50))
            .await
            .len(),
        60
    );
}
