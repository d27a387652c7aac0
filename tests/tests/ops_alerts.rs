//! Alert rules on every backend, with a fixed clock: failed logins over a
//! threshold per organization per hour call the handler once per breach (not per entry), with
//! the count and the window, and the same breach is not reported again for overlapping windows.

use std::sync::Mutex;

use activity_seaorm::clock::FixedClock;
use activity_seaorm::ops::alerts::{AlertEvaluator, AlertGroup, AlertHandler, AlertRule, Breach};
use activity_seaorm::{ActivityConfig, ActivityEntry, ActivityQuery, log_activity};
use activity_tests::{TestDb, backend_tests};
use chrono::{DateTime, Duration, TimeZone, Utc};

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 4, h, m, 0).unwrap()
}

/// A breach as the tests compare it: rule, group, count, window.
type Seen = (String, Option<String>, u64, DateTime<Utc>, DateTime<Utc>);

#[derive(Default)]
struct Recorder(Mutex<Vec<Breach>>);

#[async_trait::async_trait]
impl AlertHandler for Recorder {
    async fn on_breach(&self, breach: &Breach) {
        self.0.lock().unwrap().push(breach.clone());
    }
}

impl Recorder {
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.0.lock().unwrap())
            .into_iter()
            .map(|b| (b.rule, b.group, b.count, b.from, b.to))
            .collect()
    }
}

/// Log `n` entries of `org` at `when`, through the write path with a fixed clock.
async fn log(t: &TestDb, when: DateTime<Utc>, org: &str, activity: &str, n: usize) {
    let config = ActivityConfig::new().with_clock(std::sync::Arc::new(FixedClock(when)));
    config
        .scope(async {
            for i in 0..n {
                let mut e = ActivityEntry::new("Session", activity).with_item_id(format!("{i}"));
                e.organization_id = Some(org.into());
                assert_eq!(e.created_at, when, "the fixed clock stamps the entry");
                log_activity(&t.db, e).await.unwrap();
            }
        })
        .await;
}

async fn failed_logins_per_organization_per_hour(t: &TestDb) {
    let rule = AlertRule::new(
        "failed-logins",
        ActivityQuery::unscoped().activities(["login_failed"]),
        5,
        Duration::hours(1),
    )
    .per(AlertGroup::Organization);
    let mut alerts = AlertEvaluator::new(vec![rule]);
    let handler = Recorder::default();

    // 10:00-10:40: acme 6 failed logins (and successful ones, which do not count), beta 3.
    for m in [0, 10, 20, 30, 35, 40] {
        log(t, at(10, m), "acme", "login_failed", 1).await;
    }
    log(t, at(10, 5), "acme", "login", 20).await;
    log(t, at(10, 15), "beta", "login_failed", 3).await;

    // 10:30: acme has 4 so far, under the threshold.
    assert!(
        alerts
            .evaluate(&t.db, at(10, 30), &handler)
            .await
            .unwrap()
            .is_empty()
    );
    // 10:45: acme's 6 in (09:45, 10:45] breach: one call, not six.
    let fired = alerts.evaluate(&t.db, at(10, 45), &handler).await.unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(
        handler.take(),
        vec![(
            "failed-logins".into(),
            Some("acme".into()),
            6,
            at(9, 45),
            at(10, 45)
        )]
    );
    assert_eq!(fired[0].threshold, 5);

    // More failures in the same breach: no second call while the windows overlap.
    log(t, at(10, 50), "acme", "login_failed", 2).await;
    log(t, at(10, 55), "beta", "login_failed", 3).await;
    let fired = alerts.evaluate(&t.db, at(11, 0), &handler).await.unwrap();
    // beta is a new breach of its own (6 in (10:00, 11:00]); acme is quiet until 11:45.
    assert_eq!(
        handler.take(),
        vec![(
            "failed-logins".into(),
            Some("beta".into()),
            6,
            at(10, 0),
            at(11, 0)
        )]
    );
    assert_eq!(fired.len(), 1);
    assert!(
        alerts
            .evaluate(&t.db, at(11, 30), &handler)
            .await
            .unwrap()
            .is_empty()
    );

    // The attack goes on: at 11:45 acme's window (10:45, 11:45] no longer overlaps the one
    // reported, and holds 2 + 4 = 6: reported again, once.
    log(t, at(11, 10), "acme", "login_failed", 4).await;
    alerts.evaluate(&t.db, at(11, 45), &handler).await.unwrap();
    assert_eq!(
        handler.take(),
        vec![(
            "failed-logins".into(),
            Some("acme".into()),
            6,
            at(10, 45),
            at(11, 45)
        )]
    );
    // Later, the window empties: nothing more.
    assert!(
        alerts
            .evaluate(&t.db, at(13, 0), &handler)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(handler.take().is_empty());
}

async fn a_rule_for_one_tenant_and_invalid_rules(t: &TestDb) {
    log(t, at(8, 0), "acme", "login_failed", 3).await;
    log(t, at(8, 0), "beta", "login_failed", 9).await;
    let handler = Recorder::default();
    // One organization's rule sees only its own entries; exactly at the threshold is no breach.
    let acme = ActivityQuery::for_organization("acme").activities(["login_failed"]);
    let mut at_threshold = AlertEvaluator::new(vec![AlertRule::new(
        "acme",
        acme.clone(),
        3,
        Duration::minutes(30),
    )]);
    assert!(
        at_threshold
            .evaluate(&t.db, at(8, 10), &handler)
            .await
            .unwrap()
            .is_empty()
    );
    let mut over =
        AlertEvaluator::new(vec![AlertRule::new("acme", acme, 2, Duration::minutes(30))]);
    over.evaluate(&t.db, at(8, 10), &handler).await.unwrap();
    assert_eq!(
        handler.take(),
        vec![("acme".into(), None, 3, at(7, 40), at(8, 10))]
    );
    // The window's start is exclusive: at 08:30 the 08:00 entries are out.
    let mut edge = AlertEvaluator::new(vec![AlertRule::new(
        "beta",
        ActivityQuery::for_organization("beta"),
        1,
        Duration::minutes(30),
    )]);
    assert!(
        edge.evaluate(&t.db, at(8, 30), &handler)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        edge.evaluate(&t.db, at(8, 29), &handler)
            .await
            .unwrap()
            .len(),
        1
    );
    handler.take();

    // No tenant, or no window: invalid queries.
    let mut bad = AlertEvaluator::new(vec![AlertRule::new(
        "x",
        ActivityQuery::default(),
        1,
        Duration::hours(1),
    )]);
    let err = bad.evaluate(&t.db, at(9, 0), &handler).await.unwrap_err();
    assert!(err.is_invalid_query(), "{err}");
    let mut bad = AlertEvaluator::new(vec![AlertRule::new(
        "x",
        ActivityQuery::unscoped(),
        1,
        Duration::zero(),
    )]);
    let err = bad.evaluate(&t.db, at(9, 0), &handler).await.unwrap_err();
    assert!(err.is_invalid_query(), "{err}");
}

backend_tests!(
    failed_logins_per_organization_per_hour,
    a_rule_for_one_tenant_and_invalid_rules,
);
