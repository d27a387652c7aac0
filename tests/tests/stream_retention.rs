//! Copies keep no longer than the log ("the lifecycle of every copy"): the stream's
//! `max_age` follows the configured retention, on a new stream and on one made before the
//! retention changed, and notification delivery marks are pruned at the log's cutoff.

use std::time::Duration;

use activity_nats::notify::{self, activity_notification_delivery};
use activity_nats::{Relay, RelayConfig};
use activity_seaorm::ActivityConfig;
use activity_tests::nats::TestStream;
use activity_tests::{TestDb, backend_tests};
use sea_orm::{ActiveModelTrait, EntityTrait, QueryOrder, Set};

const DAY: Duration = Duration::from_secs(86_400);

async fn max_age(s: &TestStream) -> Duration {
    let js = async_nats::jetstream::new(s.client.clone());
    let mut stream = js.get_stream(s.stream.as_str()).await.expect("stream");
    stream.info().await.expect("info").config.max_age
}

fn relay(t: &TestDb, s: &TestStream, config: RelayConfig) -> Relay {
    Relay::with_config(
        t.db.clone(),
        s.client.clone(),
        config
            .with_stream(s.stream.as_str())
            .with_subject_prefix(s.prefix.as_str()),
    )
}

#[tokio::test]
#[cfg_attr(not(activity_nats), ignore = "ACTIVITY_TEST_NATS_URL is not set")]
async fn the_stream_keeps_no_longer_than_the_log() {
    let t = TestDb::new(activity_tests::Backend::Sqlite).await;
    let s = TestStream::new("retention").await;
    // A stream made before any retention was configured keeps messages forever...
    relay(&t, &s, RelayConfig::default())
        .ensure_stream()
        .await
        .unwrap();
    assert_eq!(max_age(&s).await, Duration::ZERO);
    // ...until the next start with a retention: the existing stream follows it, and a
    // shortened retention shortens the stream's.
    for keep in [30 * DAY, 7 * DAY] {
        ActivityConfig::new()
            .with_retention(keep)
            .scope(async {
                relay(&t, &s, RelayConfig::default())
                    .ensure_stream()
                    .await
                    .unwrap();
            })
            .await;
        assert_eq!(max_age(&s).await, keep);
    }
    // The relay's own setting wins over the configuration.
    relay(&t, &s, RelayConfig::default().with_max_age(DAY))
        .ensure_stream()
        .await
        .unwrap();
    assert_eq!(max_age(&s).await, DAY);
    s.delete().await;
    t.cleanup().await;
}

async fn delivery_marks_are_pruned_at_the_logs_cutoff(t: &TestDb) {
    notify::create_tables(&t.db).await.unwrap();
    let now = chrono::Utc::now();
    let marks = [("old", 400), ("older", 800), ("recent", 10)];
    for (recipient, days_ago) in marks {
        activity_notification_delivery::ActiveModel {
            entry_id: Set(uuid::Uuid::now_v7()),
            recipient: Set(recipient.to_owned()),
            delivered_at: Set(now - chrono::Duration::days(days_ago)),
        }
        .insert(&t.db)
        .await
        .unwrap();
    }
    let cutoff = now - chrono::Duration::days(365);
    assert_eq!(notify::prune_deliveries(&t.db, cutoff).await.unwrap(), 2);
    let left: Vec<String> = activity_notification_delivery::Entity::find()
        .order_by_asc(activity_notification_delivery::Column::Recipient)
        .all(&t.db)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.recipient)
        .collect();
    assert_eq!(left, ["recent"]);
}

backend_tests!(delivery_marks_are_pruned_at_the_logs_cutoff);
