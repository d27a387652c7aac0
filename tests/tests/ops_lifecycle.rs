//! Erasure reaches every copy ("the lifecycle of every copy"), on every backend with
//! a real NATS JetStream: after `Lifecycle::erase_user`, a scan of the table, every archive
//! file, every stream message and the notification tables finds none of the user's id, name,
//! email, IP address or user agent; the other tenant's rows, archive file and stream messages
//! are byte for byte what they were; the rewritten archive still verifies; and consumers get an
//! `erased` event listing the entries.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use activity_nats::erasure::{NotificationCopy, StreamCopy};
use activity_nats::notify::{self, Depth, Preference, TenantKey};
use activity_seaorm::ops::archive::{
    ArchiveCodec, ArchiveOptions, archive_then_prune, verify_archive,
};
use activity_seaorm::ops::lifecycle::Lifecycle;
use activity_seaorm::{
    ActivityConfig, ActivityContext, ActivityEntry, ActivityQuery, Actor, activity_log,
    log_activity,
};
use activity_tests::nats::TestStream;
use activity_tests::{Backend, TestDb};
use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::{ActiveModelTrait, EntityTrait, QueryOrder};

const USER: &str = "mallory-42";
const NAME: &str = "Mallory Doe";
const EMAIL: &str = "mallory@example.com";
const IP: &str = "198.51.100.42";
const AGENT: &str = "MalloryBrowser/1.0";

fn cutoff() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn config() -> ActivityConfig {
    ActivityConfig::new()
        .with_erasure_key([9u8; 32])
        .with_user_scopes(["User"])
        .with_outbox(true)
}

fn mallory() -> ActivityContext {
    ActivityContext::for_user(Actor::new(USER).with_name(NAME).with_email(EMAIL))
        .with_organization("org-a")
        .with_ip(IP)
        .with_user_agent(AGENT)
}

/// An entry of `org` at `at`, item `item`.
fn entry(org: &str, scope: &str, item: &str, at: DateTime<Utc>) -> ActivityEntry {
    let mut e = ActivityEntry::new(scope, "updated")
        .with_item_id(item)
        .with_name(format!("{scope} {item}"))
        .forced();
    e.organization_id = Some(org.into());
    e.created_at = at;
    e
}

/// Org A: Mallory's own entries (old, archived, and new), one where she impersonates Bob,
/// entries about her user record, and Alice's; org B: Carol's, old and new.
async fn seed(t: &TestDb) {
    for (i, at) in [cutoff() - Duration::days(30), cutoff() + Duration::days(1)]
        .into_iter()
        .enumerate()
    {
        ActivityContext::scope(mallory(), async {
            log_activity(&t.db, entry("org-a", "Doc", &format!("d{i}"), at))
                .await
                .unwrap();
        })
        .await;
        let impersonating = ActivityContext::impersonating(
            Actor::new("bob").with_name("Bob"),
            Actor::new(USER).with_name(NAME),
        )
        .with_organization("org-a")
        .with_ip(IP)
        .with_user_agent(AGENT);
        ActivityContext::scope(impersonating, async {
            log_activity(&t.db, entry("org-a", "Doc", &format!("b{i}"), at))
                .await
                .unwrap();
        })
        .await;
        // About her: the user record, named after her, changed by Alice.
        let mut about = entry("org-a", "User", USER, at).with_name(NAME);
        about.detail.changes = vec![activity_seaorm::entry::Change::new(
            "User",
            activity_seaorm::entry::ChangeAction::Changed,
            Some("display_name"),
            serde_json::json!(NAME),
            serde_json::json!("M. Doe"),
        )];
        let alice = ActivityContext::for_user(Actor::new("alice").with_name("Alice"))
            .with_organization("org-a")
            .with_ip("203.0.113.7");
        ActivityContext::scope(alice.clone(), async {
            log_activity(&t.db, about).await.unwrap();
            log_activity(&t.db, entry("org-a", "Doc", &format!("a{i}"), at))
                .await
                .unwrap();
        })
        .await;
        let carol = ActivityContext::for_user(Actor::new("carol").with_name("Carol"))
            .with_organization("org-b")
            .with_ip("192.0.2.9")
            .with_user_agent("CarolBrowser/2.0");
        ActivityContext::scope(carol, async {
            log_activity(&t.db, entry("org-b", "Doc", &format!("c{i}"), at))
                .await
                .unwrap();
        })
        .await;
    }
    notify::create_tables(&t.db).await.unwrap();
    for user in [USER, "alice"] {
        notify::subscribe(
            &t.db,
            &TenantKey::organization("org-a"),
            user,
            "Doc",
            "d0",
            Depth::Resource,
        )
        .await
        .unwrap();
        notify::set_preference(
            &t.db,
            &TenantKey::organization("org-a"),
            user,
            &Preference::All,
        )
        .await
        .unwrap();
    }
    for recipient in [USER, "alice"] {
        activity_nats::notify::activity_notification_delivery::ActiveModel {
            entry_id: sea_orm::Set(uuid::Uuid::now_v7()),
            recipient: sea_orm::Set(recipient.into()),
            delivered_at: sea_orm::Set(Utc::now()),
        }
        .insert(&t.db)
        .await
        .unwrap();
    }
}

/// Every row of the log and the notification tables, as text (each model's every field).
async fn tables_text(t: &TestDb) -> Vec<(&'static str, String)> {
    use activity_nats::notify::{
        activity_notification_delivery, activity_notification_preference, activity_subscription,
    };
    let mut out = Vec::new();
    for m in activity_log::Entity::find().all(&t.db).await.unwrap() {
        out.push(("activity_log", format!("{m:?}")));
    }
    for m in activity_subscription::Entity::find()
        .all(&t.db)
        .await
        .unwrap()
    {
        out.push(("activity_subscription", format!("{m:?}")));
    }
    for m in activity_notification_preference::Entity::find()
        .all(&t.db)
        .await
        .unwrap()
    {
        out.push(("activity_notification_preference", format!("{m:?}")));
    }
    for m in activity_notification_delivery::Entity::find()
        .all(&t.db)
        .await
        .unwrap()
    {
        out.push(("activity_notification_delivery", format!("{m:?}")));
    }
    out
}

fn file_text(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "gz") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap();
        text
    } else if path.extension().is_some_and(|e| e == "zst") {
        String::from_utf8(zstd::decode_all(&bytes[..]).unwrap()).unwrap()
    } else {
        String::from_utf8(bytes).unwrap()
    }
}

/// Every message of the stream: sequence → (subject, headers, payload).
async fn stream_messages(s: &TestStream) -> BTreeMap<u64, (String, String, String)> {
    let js = async_nats::jetstream::new(s.client.clone());
    let mut stream = js.get_stream(s.stream.as_str()).await.unwrap();
    let info = stream.info().await.unwrap().clone();
    let mut out = BTreeMap::new();
    for seq in info.state.first_sequence..=info.state.last_sequence {
        if let Ok(m) = stream.get_raw_message(seq).await {
            out.insert(
                seq,
                (
                    m.subject.to_string(),
                    {
                        // Header order is a hash map's: compare them sorted.
                        let mut headers: Vec<String> = m
                            .headers
                            .iter()
                            .map(|(name, values)| format!("{name}={values:?}"))
                            .collect();
                        headers.sort();
                        headers.join("; ")
                    },
                    String::from_utf8(m.payload.to_vec()).unwrap(),
                ),
            );
        }
    }
    out
}

fn assert_clean(place: &str, text: &str) {
    for secret in [USER, NAME, EMAIL, IP, AGENT, "Mallory"] {
        assert!(
            !text.contains(secret),
            "{place} still holds {secret:?}: {text}"
        );
    }
}

async fn erasure_reaches_every_copy(backend: Backend) {
    let t = TestDb::new(backend).await;
    let s = TestStream::new("erase").await;
    let dir = tempfile::tempdir().unwrap();
    config()
        .scope(async {
            seed(&t).await;
            s.relay_all(&t.db).await;
            // Each organization's 2025 goes to its own archive (zstd for org A, gzip for B).
            for (org, codec) in [("org-a", ArchiveCodec::Zstd), ("org-b", ArchiveCodec::Gzip)] {
                let opts = ArchiveOptions::new(dir.path(), format!("{org}-2025")).codec(codec);
                let outcome = archive_then_prune(
                    &t.db,
                    &ActivityQuery::for_organization(org),
                    cutoff(),
                    &opts,
                )
                .await
                .unwrap();
                assert!(outcome.deleted > 0);
            }
        })
        .await;

    // Before: the user is in every copy (so the scans below can find her), and this is what
    // the other tenant has.
    let tables = tables_text(&t).await;
    for table in [
        "activity_log",
        "activity_subscription",
        "activity_notification_preference",
        "activity_notification_delivery",
    ] {
        assert!(
            tables
                .iter()
                .any(|(n, row)| *n == table && row.contains(USER)),
            "{table}"
        );
    }
    assert!(
        tables
            .iter()
            .any(|(_, row)| row.contains(IP) && row.contains(AGENT))
    );
    let a_archive = dir.path().join("org-a-2025.jsonl.zst");
    let b_archive = dir.path().join("org-b-2025.jsonl.gz");
    assert!(file_text(&a_archive).contains(USER));
    let b_bytes = std::fs::read(&b_archive).unwrap();
    let b_manifest = std::fs::read(dir.path().join("org-b-2025.manifest.json")).unwrap();
    let b_rows = activity_log::Entity::find()
        .order_by_asc(activity_log::Column::Id)
        .all(&t.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.organization_id.as_deref() == Some("org-b"))
        .collect::<Vec<_>>();
    let before = stream_messages(&s).await;
    assert!(before.values().any(|(_, _, p)| p.contains(USER)));
    let untouched: BTreeMap<u64, _> = before
        .iter()
        .filter(|(_, (_, _, p))| !p.contains(USER))
        .map(|(seq, m)| (*seq, m.clone()))
        .collect();

    let lifecycle = Lifecycle::new()
        .with_archives(dir.path())
        .with_copy(StreamCopy::new(
            s.client.clone(),
            s.stream.as_str(),
            s.prefix.as_str(),
        ))
        .with_copy(NotificationCopy::new(t.db.clone()));
    let report = config()
        .scope(lifecycle.erase_user(&t.db, USER))
        .await
        .unwrap();
    assert!(report.is_complete(), "{:?}", report.unreachable());
    let changed: BTreeMap<&str, u64> = report
        .copies
        .iter()
        .map(|c| (c.copy.split(' ').next().unwrap_or(""), c.changed))
        .fold(BTreeMap::new(), |mut m, (k, v)| {
            *m.entry(k).or_default() += v;
            m
        });
    // Rows left after the archive: Mallory's new entry, her impersonation, the record about her.
    assert_eq!(changed["activity_log"], 3, "{report:?}");
    assert_eq!(changed["archive"], 3, "{report:?}");
    assert_eq!(changed["stream"], 6, "{report:?}");
    assert_eq!(changed["notification"], 3, "{report:?}");

    // After: nowhere.
    for (table, row) in tables_text(&t).await {
        assert_clean(table, &row);
    }
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let path = file.unwrap().path();
        assert_clean(&path.display().to_string(), &file_text(&path));
    }
    let after = stream_messages(&s).await;
    for (seq, (subject, headers, payload)) in &after {
        assert_clean(
            &format!("stream message {seq}"),
            &format!("{subject} {headers} {payload}"),
        );
    }
    // The erased copies are there, under the pseudonym, and consumers were told.
    let republished = after
        .values()
        .filter(|(subject, h, p)| {
            !subject.ends_with(".~.erased")
                && h.contains("erasure")
                && p.contains(&report.pseudonym)
        })
        .count();
    assert_eq!(republished, 6);
    let event = after
        .values()
        .find(|(subject, _, _)| subject.ends_with(".~.erased"))
        .expect("an erased event");
    // Org A's consumers are told, on org A's subject; no other tenant hears of it.
    assert_eq!(event.0, format!("{}.o:org-a.~.erased", s.prefix));
    assert_eq!(
        after
            .values()
            .filter(|(subject, _, _)| subject.ends_with(".~.erased"))
            .count(),
        1
    );
    for id in &report.entry_ids {
        assert!(event.2.contains(&id.to_string()), "{event:?}");
    }
    // The rewritten archive verifies; the rows match the stream's rewritten copies.
    verify_archive(dir.path().join("org-a-2025.manifest.json")).unwrap();
    for row in activity_log::Entity::find().all(&t.db).await.unwrap() {
        let entry = ActivityEntry::from(row);
        if entry.user_id.as_deref() == Some(report.pseudonym.as_str()) {
            // Each its own pseudonym, as the sealed history hashes it.
            for v in [&entry.ip_address, &entry.user_agent].into_iter().flatten() {
                assert!(activity_seaorm::ops::seal::is_pseudonym(v), "{v}");
            }
        }
    }

    // The other tenant: byte for byte.
    assert_eq!(std::fs::read(&b_archive).unwrap(), b_bytes);
    assert_eq!(
        std::fs::read(dir.path().join("org-b-2025.manifest.json")).unwrap(),
        b_manifest
    );
    let b_after = activity_log::Entity::find()
        .order_by_asc(activity_log::Column::Id)
        .all(&t.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.organization_id.as_deref() == Some("org-b"))
        .collect::<Vec<_>>();
    assert_eq!(b_after, b_rows);
    for (seq, message) in &untouched {
        assert_eq!(after.get(seq), Some(message), "message {seq} changed");
    }
    // Alice keeps her subscription and preference.
    assert_eq!(
        notify::subscriptions(&t.db, &TenantKey::organization("org-a"), "alice")
            .await
            .unwrap()
            .len(),
        1
    );

    // Idempotent: a second run finds nothing left anywhere.
    let again = config()
        .scope(lifecycle.erase_user(&t.db, USER))
        .await
        .unwrap();
    assert!(again.is_complete());
    assert!(again.copies.iter().all(|c| c.changed == 0), "{again:?}");
    s.delete().await;
    t.cleanup().await;
}

mod erasure {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(activity_nats), ignore = "ACTIVITY_TEST_NATS_URL is not set")]
    async fn sqlite() {
        super::erasure_reaches_every_copy(super::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        any(not(activity_nats), not(activity_postgres)),
        ignore = "ACTIVITY_TEST_NATS_URL or ACTIVITY_TEST_POSTGRES_URL is not set"
    )]
    async fn postgres() {
        super::erasure_reaches_every_copy(super::Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        any(not(activity_nats), not(activity_mysql)),
        ignore = "ACTIVITY_TEST_NATS_URL or ACTIVITY_TEST_MYSQL_URL is not set"
    )]
    async fn mysql() {
        super::erasure_reaches_every_copy(super::Backend::MySql).await;
    }
}

/// An entry erased twice — with the user who made it, then with the user it is about — stays
/// in the stream exactly once, rewritten both times: the second rewrite is a new message, not
/// taken for a duplicate of the first (whose original it then deletes).
async fn an_entry_erased_twice_stays_in_the_stream_once(backend: Backend) {
    let t = TestDb::new(backend).await;
    let s = TestStream::new("twice").await;
    config()
        .scope(async {
            // Alice renames Mallory's user record.
            let about = entry("org-a", "User", USER, cutoff()).with_name(NAME);
            let alice = ActivityContext::for_user(Actor::new("alice").with_name("Alice"))
                .with_organization("org-a")
                .with_ip("203.0.113.7");
            ActivityContext::scope(alice, async {
                log_activity(&t.db, about).await.unwrap();
            })
            .await;
            s.relay_all(&t.db).await;
        })
        .await;
    let id = activity_log::Entity::find()
        .one(&t.db)
        .await
        .unwrap()
        .unwrap()
        .id;
    let lifecycle = Lifecycle::new().with_copy(StreamCopy::new(
        s.client.clone(),
        s.stream.as_str(),
        s.prefix.as_str(),
    ));
    // Both within the stream's duplicate window.
    for user in ["alice", USER] {
        let report = config()
            .scope(lifecycle.erase_user(&t.db, user))
            .await
            .unwrap();
        assert!(report.is_complete(), "{:?}", report.unreachable());
        let stream = report
            .copies
            .iter()
            .find(|c| c.copy.starts_with("stream"))
            .unwrap();
        assert_eq!(stream.changed, 1, "{user}: {report:?}");
    }
    let entries: Vec<String> = stream_messages(&s)
        .await
        .into_values()
        .filter(|(subject, _, _)| !subject.ends_with(".~.erased"))
        .map(|(_, _, payload)| payload)
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].contains(&id.to_string()), "{entries:?}");
    assert_clean("the entry's message", &entries[0]);
    for alice in ["alice", "Alice", "203.0.113.7"] {
        assert!(!entries[0].contains(alice), "{alice}: {}", entries[0]);
    }
    s.delete().await;
    t.cleanup().await;
}

mod erased_twice {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(activity_nats), ignore = "ACTIVITY_TEST_NATS_URL is not set")]
    async fn sqlite() {
        super::an_entry_erased_twice_stays_in_the_stream_once(super::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        any(not(activity_nats), not(activity_postgres)),
        ignore = "ACTIVITY_TEST_NATS_URL or ACTIVITY_TEST_POSTGRES_URL is not set"
    )]
    async fn postgres() {
        super::an_entry_erased_twice_stays_in_the_stream_once(super::Backend::Postgres).await;
    }
}

/// The first run reached the log alone (NATS was down, or the process died after the log's
/// commit): the next run still rewrites every stream message with what the first one knew —
/// names the log no longer holds — and tells the consumers of every entry, those the first run
/// rewrote included.
async fn a_run_after_the_log_alone_was_erased_finishes_the_stream(backend: Backend) {
    let t = TestDb::new(backend).await;
    let s = TestStream::new("rerun").await;
    config()
        .scope(async {
            seed(&t).await;
            s.relay_all(&t.db).await;
        })
        .await;
    let first = config()
        .scope(activity_seaorm::ops::erasure::anonymize_user(&t.db, USER))
        .await
        .unwrap();
    assert_eq!(first, 6);
    let lifecycle = Lifecycle::new().with_copy(StreamCopy::new(
        s.client.clone(),
        s.stream.as_str(),
        s.prefix.as_str(),
    ));
    let report = config()
        .scope(lifecycle.erase_user(&t.db, USER))
        .await
        .unwrap();
    assert!(report.is_complete(), "{:?}", report.unreachable());
    let after = stream_messages(&s).await;
    for (seq, (subject, headers, payload)) in &after {
        assert_clean(
            &format!("stream message {seq}"),
            &format!("{subject} {headers} {payload}"),
        );
    }
    let news: String = after
        .values()
        .filter(|(subject, _, _)| subject.ends_with(".~.erased"))
        .map(|(_, _, payload)| payload.as_str())
        .collect();
    let erased: Vec<activity_log::Model> = activity_log::Entity::find()
        .all(&t.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| {
            let alias = Some(report.pseudonym.as_str());
            m.user_id.as_deref() == alias
                || m.impersonated_by.as_deref() == alias
                || (m.scope == "User"
                    && m.item_id.as_deref() == alias
                    && m.activity != "anonymized")
        })
        .collect();
    assert_eq!(erased.len(), 6);
    for row in &erased {
        assert!(news.contains(&row.id.to_string()), "{}: {news}", row.id);
    }
    s.delete().await;
    t.cleanup().await;
}

/// The news of an erasure lost (the `erased` events gone before a consumer read them): the next
/// run tells of every entry again, those the first run rewrote included, although it rewrites
/// nothing.
async fn lost_news_is_told_again(backend: Backend) {
    let t = TestDb::new(backend).await;
    let s = TestStream::new("news").await;
    // A stream whose duplicate window ends quickly, so a repeat of the same news is stored.
    let window = std::time::Duration::from_millis(500);
    let relay = activity_nats::Relay::with_config(
        t.db.clone(),
        s.client.clone(),
        activity_nats::RelayConfig::default()
            .with_stream(s.stream.as_str())
            .with_subject_prefix(s.prefix.as_str())
            .with_duplicate_window(window),
    );
    relay.ensure_stream().await.unwrap();
    config()
        .scope(async {
            seed(&t).await;
            while let activity_nats::Step::Published(_) = relay.relay_batch().await.unwrap() {}
        })
        .await;
    let lifecycle = Lifecycle::new().with_copy(StreamCopy::new(
        s.client.clone(),
        s.stream.as_str(),
        s.prefix.as_str(),
    ));
    let first = config()
        .scope(lifecycle.erase_user(&t.db, USER))
        .await
        .unwrap();
    assert!(first.is_complete(), "{:?}", first.unreachable());
    assert_eq!(first.entry_ids.len(), 6);
    // The news is lost.
    let js = async_nats::jetstream::new(s.client.clone());
    let stream = js.get_stream(s.stream.as_str()).await.unwrap();
    for (seq, (subject, _, _)) in stream_messages(&s).await {
        if subject.ends_with(".~.erased") {
            stream.delete_message(seq).await.unwrap();
        }
    }
    tokio::time::sleep(window * 3).await;
    let second = config()
        .scope(lifecycle.erase_user(&t.db, USER))
        .await
        .unwrap();
    assert!(second.is_complete(), "{:?}", second.unreachable());
    assert!(second.entry_ids.is_empty(), "nothing left to rewrite");
    let news: String = stream_messages(&s)
        .await
        .into_values()
        .filter(|(subject, _, _)| subject.ends_with(".~.erased"))
        .map(|(_, _, payload)| payload)
        .collect();
    for id in &first.entry_ids {
        assert!(news.contains(&id.to_string()), "{id}: {news}");
    }
    s.delete().await;
    t.cleanup().await;
}

mod lost_news {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(activity_nats), ignore = "ACTIVITY_TEST_NATS_URL is not set")]
    async fn sqlite() {
        super::lost_news_is_told_again(super::Backend::Sqlite).await;
    }
}

mod rerun {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(activity_nats), ignore = "ACTIVITY_TEST_NATS_URL is not set")]
    async fn sqlite() {
        super::a_run_after_the_log_alone_was_erased_finishes_the_stream(super::Backend::Sqlite)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        any(not(activity_nats), not(activity_postgres)),
        ignore = "ACTIVITY_TEST_NATS_URL or ACTIVITY_TEST_POSTGRES_URL is not set"
    )]
    async fn postgres() {
        super::a_run_after_the_log_alone_was_erased_finishes_the_stream(super::Backend::Postgres)
            .await;
    }
}

/// A relay batch claimed before the erasure — its entries loaded as they were — publishes
/// them after the log is rewritten: the erasure waits for it, and the stream it then reads holds
/// them, so they are rewritten too.
async fn a_relay_batch_in_flight_is_waited_for(backend: Backend) {
    use activity_seaorm::outbox::{self, Claim, WaitingRows};
    let t = TestDb::new(backend).await;
    let s = TestStream::new("inflight").await;
    config()
        .scope(async {
            ActivityContext::scope(mallory(), async {
                log_activity(&t.db, entry("org-a", "Doc", "d", cutoff()))
                    .await
                    .unwrap();
            })
            .await;
        })
        .await;
    s.relay(&t.db).await; // the stream, created
    // The relay claims Mallory's entry, as it is.
    let relay = outbox::begin(&t.db).await.unwrap();
    let Claim::Batch(claimed) = outbox::claim(
        &relay,
        outbox::BatchLimit::new(100, usize::MAX),
        &mut WaitingRows::default(),
    )
    .await
    .unwrap() else {
        panic!("expected a batch");
    };
    assert!(
        serde_json::to_string(&claimed.entries)
            .unwrap()
            .contains(USER)
    );
    let erasure = {
        let (db, client, stream, prefix) = (
            t.db.clone(),
            s.client.clone(),
            s.stream.clone(),
            s.prefix.clone(),
        );
        tokio::spawn(async move {
            let lifecycle = Lifecycle::new().with_copy(StreamCopy::new(
                client,
                stream.as_str(),
                prefix.as_str(),
            ));
            config().scope(lifecycle.erase_user(&db, USER)).await
        })
    };
    // The log is rewritten meanwhile; the relay publishes what it loaded, then completes.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert!(!erasure.is_finished(), "the erasure waits for the relay");
    let js = async_nats::jetstream::new(s.client.clone());
    for e in &claimed.entries {
        js.publish(
            activity_nats::subject::subject(&s.prefix, e),
            serde_json::to_vec(e).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    outbox::complete(&relay, &claimed.rows).await.unwrap();
    relay.commit().await.unwrap();
    let report = erasure.await.unwrap().unwrap();
    assert!(report.is_complete(), "{:?}", report.unreachable());
    let after = stream_messages(&s).await;
    assert!(
        after
            .values()
            .any(|(_, _, p)| p.contains(&report.pseudonym))
    );
    for (seq, (subject, headers, payload)) in &after {
        assert_clean(
            &format!("stream message {seq}"),
            &format!("{subject} {headers} {payload}"),
        );
    }
    s.delete().await;
    t.cleanup().await;
}

mod in_flight {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        any(not(activity_nats), not(activity_postgres)),
        ignore = "ACTIVITY_TEST_NATS_URL or ACTIVITY_TEST_POSTGRES_URL is not set"
    )]
    async fn postgres() {
        super::a_relay_batch_in_flight_is_waited_for(super::Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        any(not(activity_nats), not(activity_mysql)),
        ignore = "ACTIVITY_TEST_NATS_URL or ACTIVITY_TEST_MYSQL_URL is not set"
    )]
    async fn mysql() {
        super::a_relay_batch_in_flight_is_waited_for(super::Backend::MySql).await;
    }
}

/// An archive a run of `archive_then_prune` holds (its lock is taken) is not skipped silently:
/// the report names it, and the next run, once the lock is released, erases it.
async fn a_busy_archive_is_reported_and_erased_on_the_next_run(t: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let opts = ArchiveOptions::new(dir.path(), "org-a-2025");
    // No relay here: the outbox stays off, so archives can be pruned.
    config()
        .with_outbox(false)
        .scope(async {
            seed(t).await;
            archive_then_prune(
                &t.db,
                &ActivityQuery::for_organization("org-a"),
                cutoff(),
                &opts,
            )
            .await
            .unwrap();
        })
        .await;
    // Another run holds the archive's lock (an OS lock: another open file holding it).
    let held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(opts.lock_path())
        .unwrap();
    held.lock().unwrap();
    let lifecycle = Lifecycle::new().with_archives(dir.path());
    let report = config()
        .scope(lifecycle.erase_user(&t.db, USER))
        .await
        .unwrap();
    assert!(!report.is_complete());
    let unreachable = report.unreachable().join("\n");
    assert!(
        unreachable.contains("org-a-2025") && unreachable.contains("lock"),
        "{unreachable}"
    );
    assert!(file_text(&opts.data_path()).contains(USER));

    drop(held);
    let again = config()
        .scope(lifecycle.erase_user(&t.db, USER))
        .await
        .unwrap();
    assert!(again.is_complete(), "{:?}", again.unreachable());
    assert_clean("archive", &file_text(&opts.data_path()));
    verify_archive(opts.manifest_path()).unwrap();
}

/// An erasure inside one tenant: Mallory leaves organization A but stays in B. Her entries
/// of A, in the log and in A's archive, and her subscriptions there are erased; what she did in
/// B, B's archive and her subscriptions there stay as they were.
async fn an_erasure_inside_one_tenant_leaves_the_others(t: &TestDb) {
    use activity_seaorm::ops::erasure::ErasureTenant;
    let dir = tempfile::tempdir().unwrap();
    // No relay here: the outbox stays off, so archives can be pruned.
    config()
        .with_outbox(false)
        .scope(async {
            let at = cutoff() - Duration::days(3);
            for org in ["org-a", "org-b"] {
                for at in [at, cutoff() + Duration::days(1)] {
                    ActivityContext::scope(mallory().with_organization(org), async {
                        log_activity(&t.db, entry(org, "Doc", org, at))
                            .await
                            .unwrap();
                    })
                    .await;
                }
                let opts = ArchiveOptions::new(dir.path(), format!("{org}-2025"));
                archive_then_prune(
                    &t.db,
                    &ActivityQuery::for_organization(org),
                    cutoff(),
                    &opts,
                )
                .await
                .unwrap();
            }
            notify::create_tables(&t.db).await.unwrap();
            for org in ["org-a", "org-b"] {
                notify::subscribe(
                    &t.db,
                    &TenantKey::organization(org),
                    USER,
                    "Doc",
                    org,
                    Depth::Resource,
                )
                .await
                .unwrap();
            }
        })
        .await;
    let b_archive = std::fs::read(dir.path().join("org-b-2025.jsonl")).unwrap();
    let lifecycle = Lifecycle::new()
        .with_archives(dir.path())
        .with_copy(NotificationCopy::new(t.db.clone()));
    let report = config()
        .scope(lifecycle.erase_user_in(&t.db, USER, ErasureTenant::Organization("org-a".into())))
        .await
        .unwrap();
    assert!(report.is_complete(), "{:?}", report.unreachable());
    for row in activity_log::Entity::find().all(&t.db).await.unwrap() {
        let text = format!("{row:?}");
        match row.organization_id.as_deref() {
            Some("org-a") => assert_clean("org A's row", &text),
            Some("org-b") => assert!(text.contains(USER) && text.contains(IP), "{text}"),
            other => panic!("an entry of {other:?}: {text}"),
        }
    }
    assert_clean(
        "org A's archive",
        &file_text(&dir.path().join("org-a-2025.jsonl")),
    );
    assert_eq!(
        std::fs::read(dir.path().join("org-b-2025.jsonl")).unwrap(),
        b_archive
    );
    assert!(
        notify::subscriptions(&t.db, &TenantKey::organization("org-a"), USER)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        notify::subscriptions(&t.db, &TenantKey::organization("org-b"), USER)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A name only the archives still hold (the user's before a rename, their old entries archived
/// and pruned) is learned from the archives and then replaced in the log too, where a later
/// entry records the rename.
async fn a_name_only_the_archives_knew_is_erased_from_the_log(t: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let alice = ActivityContext::for_user(Actor::new("alice").with_name("Alice"))
        .with_organization("org-a");
    config()
        .with_outbox(false)
        .scope(async {
            let old = entry("org-a", "User", USER, cutoff() - Duration::days(30)).with_name(NAME);
            let mut renamed = entry("org-a", "User", USER, cutoff() + Duration::days(1))
                .with_name("Mallory Smith");
            renamed.detail.changes = vec![activity_seaorm::entry::Change::new(
                "User",
                activity_seaorm::entry::ChangeAction::Changed,
                Some("display_name"),
                serde_json::json!(NAME),
                serde_json::json!("Mallory Smith"),
            )];
            ActivityContext::scope(alice, async {
                log_activity(&t.db, old).await.unwrap();
                log_activity(&t.db, renamed).await.unwrap();
            })
            .await;
            archive_then_prune(
                &t.db,
                &ActivityQuery::for_organization("org-a"),
                cutoff(),
                &ArchiveOptions::new(dir.path(), "org-a-2025"),
            )
            .await
            .unwrap();
            notify::create_tables(&t.db).await.unwrap();
        })
        .await;
    let lifecycle = Lifecycle::new().with_archives(dir.path());
    let report = config()
        .scope(lifecycle.erase_user(&t.db, USER))
        .await
        .unwrap();
    assert!(report.is_complete(), "{:?}", report.unreachable());
    for (table, row) in tables_text(t).await {
        assert_clean(table, &row);
    }
    assert_clean("archive", &file_text(&dir.path().join("org-a-2025.jsonl")));
    verify_archive(dir.path().join("org-a-2025.manifest.json")).unwrap();
    // The learned name is recorded (as its pseudonym), for a later run to reach copies with
    // after the archives no longer say it.
    let name = config()
        .scope(async { activity_seaorm::ops::erasure::pseudonym(NAME).unwrap() })
        .await;
    let recorded: Vec<String> = activity_log::Entity::find()
        .all(&t.db)
        .await
        .unwrap()
        .into_iter()
        .map(ActivityEntry::from)
        .filter(|e| e.activity == "anonymized")
        .filter_map(|e| e.detail.context)
        .map(|c| c["known"].to_string())
        .collect();
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert!(
        recorded[1].contains(&name) || recorded[0].contains(&name),
        "{recorded:?}"
    );
    // Idempotent.
    let again = config()
        .scope(lifecycle.erase_user(&t.db, USER))
        .await
        .unwrap();
    assert!(again.copies.iter().all(|c| c.changed == 0), "{again:?}");
}

activity_tests::backend_tests!(
    a_name_only_the_archives_knew_is_erased_from_the_log,
    a_busy_archive_is_reported_and_erased_on_the_next_run,
    an_erasure_inside_one_tenant_leaves_the_others,
);
