//! Alert rules on the stream: the same rules as the scheduled database check,
//! counted as entries arrive (in their own time, a fixed clock here), the handler called once
//! per breach; and end to end through the outbox, the relay and a durable consumer on NATS.

use std::sync::Mutex;

use activity_nats::StreamAlerts;
use activity_seaorm::ops::alerts::{AlertGroup, AlertHandler, AlertRule, Breach};
use activity_seaorm::query::FilterOp;
use activity_seaorm::{ActivityEntry, ActivityQuery};
use chrono::{DateTime, Duration, TimeZone, Utc};

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 4, h, m, 0).unwrap()
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Breach>>);

#[async_trait::async_trait]
impl AlertHandler for Recorder {
    async fn on_breach(&self, breach: &Breach) {
        self.0.lock().unwrap().push(breach.clone());
    }
}

fn failed_login(org: &str, when: DateTime<Utc>) -> ActivityEntry {
    let mut e = ActivityEntry::new("Session", "login_failed");
    e.organization_id = Some(org.into());
    e.created_at = when;
    e
}

fn rule() -> AlertRule {
    AlertRule::new(
        "failed-logins",
        ActivityQuery::unscoped().activities(["login_failed"]),
        5,
        Duration::hours(1),
    )
    .per(AlertGroup::Organization)
}

#[tokio::test]
async fn once_per_breach_per_organization_not_once_per_entry() {
    let mut alerts = StreamAlerts::new(vec![rule()]).unwrap();
    let handler = Recorder::default();
    let mut fired = Vec::new();
    macro_rules! feed {
        ($e:expr) => {
            alerts.observe(&$e, &handler).await
        };
    }
    // acme: 6 failed logins 10:00..10:40, a successful login that does not count; beta 3.
    for m in [0, 10, 20, 30, 35] {
        fired.extend(feed!(failed_login("acme", at(10, m))));
    }
    let mut ok = failed_login("acme", at(10, 36));
    ok.activity = "login".into();
    fired.extend(feed!(ok));
    for m in [15, 16, 17] {
        fired.extend(feed!(failed_login("beta", at(10, m))));
    }
    assert!(fired.is_empty(), "5 is not more than 5");
    fired.extend(feed!(failed_login("acme", at(10, 40))));
    let seen: Vec<_> = fired
        .iter()
        .map(|b| (b.group.clone(), b.count, b.from, b.to))
        .collect();
    assert_eq!(seen, [(Some("acme".into()), 6, at(9, 40), at(10, 40))]);
    // The attack goes on: no second call while the windows overlap the reported one.
    fired.clear();
    for m in [45, 50, 55] {
        fired.extend(feed!(failed_login("acme", at(10, m))));
    }
    for m in [0, 20] {
        fired.extend(feed!(failed_login("acme", at(11, m))));
    }
    assert!(fired.is_empty(), "reported twice: {fired:?}");
    // A window after the reported one, still over the threshold: reported again, once.
    for m in [40, 41] {
        fired.extend(feed!(failed_login("acme", at(11, m))));
    }
    let seen: Vec<_> = fired
        .iter()
        .map(|b| (b.group.clone(), b.count, b.to))
        .collect();
    // (10:40, 11:40]: 10:45, 10:50, 10:55, 11:00, 11:20, 11:40 = 6.
    assert_eq!(seen, [(Some("acme".into()), 6, at(11, 40))]);
    assert_eq!(handler.0.lock().unwrap().len(), 2);
}

/// The stream is not in time order, and it redelivers: an entry stamped ahead (a fast clock)
/// does not push the others out of the window, a redelivered entry counts once, and an entry
/// that arrives late still counts in its own window.
#[tokio::test]
async fn windows_follow_entry_time_not_arrival() {
    let mut alerts = StreamAlerts::new(vec![rule()]).unwrap();
    let handler = Recorder::default();
    let mut fired = Vec::new();
    for m in [0, 10, 20] {
        fired.extend(
            alerts
                .observe(&failed_login("acme", at(10, m)), &handler)
                .await,
        );
    }
    // A fast clock: stamped tomorrow, arrives now.
    let ahead = failed_login("acme", chrono::Utc::now() + Duration::days(1));
    fired.extend(alerts.observe(&ahead, &handler).await);
    // Redelivered twice: one entry.
    let again = failed_login("acme", at(10, 30));
    for _ in 0..3 {
        fired.extend(alerts.observe(&again, &handler).await);
    }
    // Late: 10:25 arrives after 10:30.
    fired.extend(
        alerts
            .observe(&failed_login("acme", at(10, 25)), &handler)
            .await,
    );
    assert!(
        fired.is_empty(),
        "5 distinct entries in the window: {fired:?}"
    );
    fired.extend(
        alerts
            .observe(&failed_login("acme", at(10, 35)), &handler)
            .await,
    );
    let seen: Vec<_> = fired.iter().map(|b| (b.count, b.to)).collect();
    assert_eq!(seen, [(6, at(10, 35))]);
}

/// A group per user, 5,000 users once each over two days: the groups whose window is over are
/// forgotten, so memory follows what is recent, not everyone ever seen.
#[tokio::test]
async fn idle_groups_are_forgotten() {
    let per_user = rule().per(AlertGroup::User);
    let mut alerts = StreamAlerts::new(vec![per_user]).unwrap();
    let handler = Recorder::default();
    for i in 0..5_000i64 {
        let mut e = failed_login("acme", at(0, 0) + Duration::seconds(i * 35));
        e.user_id = Some(format!("u{i}"));
        alerts.observe(&e, &handler).await;
    }
    // One hour holds about 103 entries at one every 35 s; a sweep runs every 1,024 entries.
    assert!(
        alerts.tracked_groups() <= 103 + 1_024,
        "{} groups tracked",
        alerts.tracked_groups()
    );
}

#[test]
fn rules_that_need_the_database_are_refused() {
    let search = AlertRule::new(
        "search",
        ActivityQuery::unscoped().search("password"),
        1,
        Duration::hours(1),
    );
    assert!(StreamAlerts::new(vec![search]).is_err());
    let detail = AlertRule::new(
        "detail",
        ActivityQuery::unscoped().detail_filter("role", FilterOp::Exact("admin".into())),
        1,
        Duration::hours(1),
    );
    assert!(StreamAlerts::new(vec![detail]).is_err());
    // No tenant and not `unscoped()`: refused, as by the database evaluator.
    let anyone = AlertRule::new(
        "anyone",
        ActivityQuery::default().activities(["login_failed"]),
        1,
        Duration::hours(1),
    );
    assert!(StreamAlerts::new(vec![anyone]).is_err());
    assert!(StreamAlerts::new(vec![rule()]).is_ok());
}

/// Through the outbox, the relay and a durable consumer on the machine's NATS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(activity_nats), ignore = "ACTIVITY_TEST_NATS_URL is not set")]
async fn on_the_live_stream() {
    use activity_seaorm::{ActivityConfig, bulk_log_activity};
    use activity_tests::nats::TestStream;
    use activity_tests::{Backend, TestDb};

    let nats = TestStream::new("alerts").await;
    let t = TestDb::new(Backend::Sqlite).await;
    let entries: Vec<ActivityEntry> = (0..7)
        .map(|m| failed_login("acme", Utc::now() - Duration::minutes(10 - m)))
        .collect();
    ActivityConfig::new()
        .with_outbox(true)
        .scope(bulk_log_activity(&t.db, entries))
        .await
        .unwrap();
    nats.relay_all(&t.db).await;
    let mut alerts = StreamAlerts::new(vec![rule()]).unwrap();
    let handler = Recorder::default();
    let durable = format!("alerts_{}", nats.unique);
    // Until the breach is reported (or 20 s, on a slow machine), then a moment for any second
    // (wrong) call.
    let reported = async {
        while handler.0.lock().unwrap().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    tokio::select! {
        _ = alerts.run(nats.client.clone(), &nats.stream, &durable, &handler) => {}
        () = reported => {}
        () = tokio::time::sleep(std::time::Duration::from_secs(20)) => {}
    }
    let seen: Vec<_> = handler
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|b| (b.group.clone(), b.count))
        .collect();
    assert_eq!(
        seen,
        [(Some("acme".into()), 6)],
        "one call, at the sixth failed login"
    );
    nats.delete().await;
    t.cleanup().await;
}
