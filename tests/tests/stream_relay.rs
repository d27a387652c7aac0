//! "Every committed entry reaches the stream exactly once, in commit order per item",
//! proven the hard way: a writer and relays run as child processes, relays are killed with
//! SIGKILL at random moments (two at a time for stretches), the private `nats-server` is stopped
//! for a while mid-stream, and afterwards the stream is compared with the committed log.
//!
//! Needs `ACTIVITY_TEST_NATS_URL` (the suite's switch; the kill test starts its own server so it
//! can stop it) and, for PostgreSQL and MariaDB, their URLs.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use activity_seaorm::ActivityEntry;
use activity_tests::nats::PrivateNats;
use activity_tests::{Backend, TestDb};

const WRITER: &str = env!("CARGO_BIN_EXE_outbox_writer");
const RELAY: &str = env!("CARGO_BIN_EXE_outbox_relay");

fn spawn_relay(t: &TestDb, nats: &str) -> Child {
    let (url, schema) = t.url();
    Command::new(RELAY)
        .args([url, schema.unwrap_or("-"), nats])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the relay")
}

fn kill(mut child: Child) {
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
}

/// Every message of the stream, in stream order.
async fn stream_entries(nats_url: &str) -> Vec<ActivityEntry> {
    let client = async_nats::connect(nats_url).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("ACTIVITY").await.expect("stream");
    let info = stream.info().await.expect("info").clone();
    let mut entries = Vec::new();
    for seq in info.state.first_sequence..=info.state.last_sequence {
        let message = stream.get_raw_message(seq).await.expect("message");
        let entry: ActivityEntry = serde_json::from_slice(&message.payload).expect("entry json");
        let msg_id = message
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.to_string());
        assert_eq!(
            msg_id,
            Some(entry.id.to_string()),
            "Nats-Msg-Id is the entry id"
        );
        entries.push(entry);
    }
    entries
}

/// The version an update moved its item to (`description` `v<n>` → `v<n+1>`).
fn version_after(entry: &ActivityEntry) -> Option<u64> {
    let change = entry
        .detail
        .changes
        .iter()
        .find(|c| c.field.as_deref() == Some("description"))?;
    change.after.as_str()?.strip_prefix('v')?.parse().ok()
}

async fn exactly_once_under_kills(backend: Backend, two_relays: bool) {
    let t = TestDb::new(backend).await;
    let mut nats = PrivateNats::start();
    let nats_url = nats.url();
    {
        let client = async_nats::connect(nats_url.as_str())
            .await
            .expect("connect");
        let relay = activity_nats::Relay::new(t.db.clone(), client);
        relay.ensure_stream().await.expect("create the stream");
    }

    let (url, schema) = t.url();
    let mut writer = Command::new(WRITER)
        .args([
            url,
            schema.unwrap_or("-"),
            "600",
            &fastrand::u64(..).to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the writer");

    let mut relays: Vec<Child> = vec![spawn_relay(&t, &nats_url)];
    let mut kills = 0;
    let mut kills_while_writing = 0;
    let started = Instant::now();
    let mut nats_stopped_at: Option<Instant> = None;
    let mut nats_was_stopped = false;
    while writer.try_wait().expect("writer").is_none() || kills < 20 {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(150..600))).await;
        // Kill a relay at a random moment and start another.
        let victim = relays.remove(fastrand::usize(..relays.len()));
        kill(victim);
        kills += 1;
        if writer.try_wait().expect("writer").is_none() {
            kills_while_writing += 1;
        }
        relays.push(spawn_relay(&t, &nats_url));
        if two_relays {
            // Stretches with two relays at once.
            if relays.len() == 1 && fastrand::bool() {
                relays.push(spawn_relay(&t, &nats_url));
            } else if relays.len() == 2 && fastrand::bool() {
                kill(relays.remove(0));
                kills += 1;
            }
        }
        // NATS goes away for two seconds, once, a little into the run.
        if !nats_was_stopped && started.elapsed() > Duration::from_secs(3) {
            nats.stop();
            nats_stopped_at = Some(Instant::now());
            nats_was_stopped = true;
        }
        if nats_stopped_at.is_some_and(|at| at.elapsed() > Duration::from_secs(2)) {
            nats.resume();
            nats_stopped_at = None;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the run took too long"
        );
    }
    if nats_stopped_at.is_some() {
        nats.resume();
    }
    let output = writer.wait_with_output().expect("writer output");
    assert!(output.status.success(), "the writer failed");
    let summary = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let autocommit: u32 = summary
        .split_once("autocommit=")
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0);
    assert!(autocommit > 50, "too few autocommit entries: {summary}");
    assert!(nats_was_stopped, "NATS was never stopped");
    assert!(
        kills_while_writing >= 20,
        "only {kills_while_writing} relay kills fell while the writer wrote"
    );

    // Drain: one relay until the outbox is empty.
    let drain = spawn_relay(&t, &nats_url);
    let deadline = Instant::now() + Duration::from_secs(60);
    while activity_seaorm::outbox::pending(&t.db)
        .await
        .expect("pending")
        > 0
    {
        assert!(Instant::now() < deadline, "the outbox did not drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kill(drain);
    for relay in relays {
        kill(relay);
    }

    let log = t.entries().await;
    let streamed = stream_entries(&nats_url).await;
    eprintln!(
        "{backend:?}: writer {summary}; {} committed entries, {} messages, {kills} relay kills \
         ({kills_while_writing} while writing)",
        log.len(),
        streamed.len()
    );
    assert!(
        log.len() > 200,
        "too few entries to prove anything: {}",
        log.len()
    );

    // Exactly once: the stream holds each committed entry once, and nothing else.
    let mut seen = HashSet::new();
    for entry in &streamed {
        assert!(seen.insert(entry.id), "entry {} published twice", entry.id);
        assert_ne!(
            entry.scope, "Doomed",
            "an entry of a rolled-back transaction was published"
        );
    }
    let committed: HashSet<_> = log.iter().map(|e| e.id).collect();
    let unpublished: Vec<_> = committed.difference(&seen).collect();
    let unlogged: Vec<_> = seen.difference(&committed).collect();
    assert!(
        unpublished.is_empty() && unlogged.is_empty(),
        "stream and committed log differ: {} committed entries never published {unpublished:?}, \
         {} published entries not in the log {unlogged:?}",
        unpublished.len(),
        unlogged.len()
    );
    // The stream's entries are the log's, field for field.
    let by_id: HashMap<_, _> = log.iter().map(|e| (e.id, e)).collect();
    for entry in &streamed {
        assert_eq!(&entry, &by_id[&entry.id]);
    }

    // In commit order per item: each item's versions arrive as v1, v2, v3, ... with no gap.
    let mut versions: HashMap<String, Vec<u64>> = HashMap::new();
    for entry in streamed.iter().filter(|e| e.activity == "updated") {
        let item = entry.item_id.clone().expect("item id");
        versions
            .entry(item)
            .or_default()
            .push(version_after(entry).expect("a version"));
    }
    assert!(!versions.is_empty());
    for (item, seq) in versions {
        let expected: Vec<u64> = (1..=seq.len() as u64).collect();
        assert_eq!(
            seq, expected,
            "item {item}: entries out of order or missing"
        );
    }
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(activity_nats, activity_postgres)),
    ignore = "ACTIVITY_TEST_NATS_URL or ACTIVITY_TEST_POSTGRES_URL is not set"
)]
async fn postgres_exactly_once_with_killed_and_concurrent_relays() {
    exactly_once_under_kills(Backend::Postgres, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(activity_nats, activity_mysql)),
    ignore = "ACTIVITY_TEST_NATS_URL or ACTIVITY_TEST_MYSQL_URL is not set"
)]
async fn mysql_exactly_once_with_killed_and_concurrent_relays() {
    exactly_once_under_kills(Backend::MySql, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(activity_nats), ignore = "ACTIVITY_TEST_NATS_URL is not set")]
async fn sqlite_exactly_once_with_a_killed_relay() {
    exactly_once_under_kills(Backend::Sqlite, false).await;
}

/// On the machine's NATS server (`ACTIVITY_TEST_NATS_URL`), in-process: subjects (escaped
/// tokens), headers and payloads as a consumer sees them; a republished batch is dropped by
/// JetStream as duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(activity_nats), ignore = "ACTIVITY_TEST_NATS_URL is not set")]
async fn relay_publishes_subjects_headers_and_payloads() {
    use activity_nats::Step;
    use activity_seaorm::outbox::activity_outbox;
    use activity_seaorm::{ActivityConfig, log_activity};
    use activity_tests::nats::TestStream;
    use async_nats::jetstream::consumer::pull;
    use futures::StreamExt;
    use sea_orm::{ActiveModelTrait, EntityTrait};

    let nats = TestStream::new("act").await;
    let t = TestDb::new(Backend::Sqlite).await;
    ActivityConfig::new()
        .with_outbox(true)
        .scope(async {
            activity_tests::new_flag("beta")
                .insert(&t.db)
                .await
                .unwrap();
            let mut job = ActivityEntry::new("Job", "ran now").with_name("nightly");
            job.organization_id = Some("acme.eu".into());
            job.correlation_id = Some("corr-1".into());
            log_activity(&t.db, job).await.unwrap();
        })
        .await;
    let log = t.entries().await;

    let relay = nats.relay(&t.db).await;
    assert_eq!(relay.relay_batch().await.unwrap(), Step::Published(2));
    assert_eq!(relay.relay_batch().await.unwrap(), Step::Idle);

    // A relay that died after publishing and before deleting its rows republishes them.
    let ids: Vec<String> = log.iter().map(|e| e.id.to_string()).collect();
    activity_tests::outbox_row(&t.db, &ids.join(",")).await;
    assert_eq!(relay.relay_batch().await.unwrap(), Step::Published(2));
    let stats = relay.stats();
    assert_eq!((stats.published(), stats.duplicates()), (4, 2));

    // What a consumer sees (the README's consumer, as written there).
    let js = async_nats::jetstream::new(nats.client.clone());
    let stream = js.get_stream(nats.stream.as_str()).await.unwrap();
    let consumer = stream
        .create_consumer(pull::Config::default())
        .await
        .unwrap();
    let mut messages = consumer.fetch().max_messages(10).messages().await.unwrap();
    let mut seen = Vec::new();
    while let Some(message) = messages.next().await {
        let message = message.unwrap();
        let entry: ActivityEntry = serde_json::from_slice(&message.payload).unwrap();
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.to_string())
        };
        seen.push((
            message.subject.to_string(),
            header("Nats-Msg-Id"),
            header("Activity-Tenant"),
            header("Activity-Correlation-Id"),
            entry,
        ));
        message.ack().await.unwrap();
    }
    assert_eq!(seen.len(), 2, "duplicates were stored");
    let (flag, job) = (&log[0], &log[1]);
    let prefix = &nats.prefix;
    // Typed tenants: team 7 is `t:7`, organization `acme.eu` is `o:acme%2Eeu` (never the same
    // subject as a team of that id).
    assert_eq!(seen[0].0, format!("{prefix}.t:7.FeatureFlag.created"));
    assert_eq!(seen[0].1, Some(flag.id.to_string()));
    assert_eq!(seen[0].2.as_deref(), Some("t:7"));
    assert_eq!(&seen[0].4, flag);
    assert_eq!(seen[1].0, format!("{prefix}.o:acme%2Eeu.Job.ran%20now"));
    assert_eq!(seen[1].2.as_deref(), Some("o:acme.eu"));
    assert_eq!(seen[1].3.as_deref(), Some("corr-1"));
    assert_eq!(&seen[1].4, job);
    nats.delete().await;
    let _ = activity_outbox::Entity::delete_many().exec(&t.db).await;
    t.cleanup().await;
}

/// An entry larger than the server's `max_payload` (many fields, each under the value cap) is
/// sent shrunk, and the entries behind it flow, in order, exactly once: before, it was refused
/// and retried forever while everything behind it waited.
async fn oversized_entries_are_shrunk_and_the_rest_flow(backend: Backend) {
    use activity_nats::{Relay, RelayConfig, Step};
    use activity_seaorm::entry::{Change, ChangeAction};
    use activity_seaorm::{ActivityConfig, log_activity};
    use serde_json::json;

    let nats = PrivateNats::start_with_config("max_payload: 32768\n");
    let t = TestDb::new(backend).await;
    ActivityConfig::new()
        .with_outbox(true)
        .scope(async {
            for i in 0..21 {
                let mut e = ActivityEntry::new("Job", "ran").with_item_id("nightly");
                e.organization_id = Some("acme".into());
                if i == 10 {
                    // Eight fields of 20 KB: each under the 64 KiB cap, 160 KB together.
                    e.detail.changes = (0..8)
                        .map(|f| {
                            Change::new(
                                "Job",
                                ChangeAction::Changed,
                                Some(&format!("field{f}")),
                                json!(""),
                                json!(format!("{f}").repeat(20_000)),
                            )
                        })
                        .collect();
                }
                if i == 15 {
                    // One 2 MiB value: capped when written (64 KiB), so it never reaches NATS.
                    e.detail.changes = vec![Change::new(
                        "Job",
                        ChangeAction::Changed,
                        Some("log"),
                        json!(""),
                        json!("x".repeat(2 * 1024 * 1024)),
                    )];
                }
                e.detail.context = Some(json!({ "run": i }));
                log_activity(&t.db, e).await.unwrap();
            }
        })
        .await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let relay = Relay::with_config(t.db.clone(), client, RelayConfig::default());
    relay.ensure_stream().await.unwrap();
    let started = Instant::now();
    let mut published = 0;
    while let Step::Published(n) = relay.relay_batch().await.unwrap() {
        published += n;
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the relay stalled"
        );
    }
    assert_eq!(published, 21);
    assert_eq!(relay.stats().shrunk(), 1);
    let entries = stream_entries(&nats.url()).await;
    let runs: Vec<i64> = entries
        .iter()
        .map(|e| e.detail.context.as_ref().unwrap()["run"].as_i64().unwrap())
        .collect();
    assert_eq!(
        runs,
        (0..21).collect::<Vec<_>>(),
        "every entry once, in order"
    );
    let huge = &entries[15].detail.changes[0].after;
    assert_eq!(huge["truncated"], true, "{huge}");
    assert_eq!(huge["bytes"], 2 * 1024 * 1024 + 2);
    let big = &entries[10];
    assert_eq!(big.detail.changes.len(), 8);
    for (f, change) in big.detail.changes.iter().enumerate() {
        assert_eq!(change.after["truncated"], true, "{change:?}");
        assert_eq!(change.after["bytes"], 20_002, "field{f}");
    }
    // The log row keeps what was stored.
    let stored = t.entries().await;
    assert_eq!(
        stored[10].detail.changes[0].after,
        json!("0".repeat(20_000))
    );
    t.cleanup().await;
}

/// `RelayStats` says why a relay published nothing: another relay holds the oldest rows
/// (`busy`), or the oldest row waits for entries not written yet (`pending`).
async fn busy_and_pending_polls_are_counted(backend: Backend) {
    use activity_nats::Step;
    use activity_seaorm::outbox::{self, WaitingRows};
    use activity_seaorm::{ActivityConfig, log_activity};
    use activity_tests::nats::TestStream;

    let nats = TestStream::new("stats").await;
    let t = TestDb::new(backend).await;
    ActivityConfig::new()
        .with_outbox(true)
        .scope(log_activity(&t.db, ActivityEntry::new("Job", "ran")))
        .await
        .unwrap();
    let relay = nats.relay(&t.db).await;
    // Another relay's claim holds the oldest row.
    let other = outbox::begin(&t.db).await.unwrap();
    assert!(matches!(
        outbox::claim(
            &other,
            outbox::BatchLimit::new(10, usize::MAX),
            &mut WaitingRows::default()
        )
        .await
        .unwrap(),
        outbox::Claim::Batch(_)
    ));
    assert_eq!(relay.relay_batch().await.unwrap(), Step::Busy);
    other.rollback().await.unwrap();
    assert_eq!(relay.relay_batch().await.unwrap(), Step::Published(1));
    // A row naming an entry that is not in the log (yet): the relay waits out the grace.
    activity_tests::outbox_row(&t.db, &uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(relay.relay_batch().await.unwrap(), Step::Idle);
    let stats = relay.stats();
    assert_eq!(
        (stats.busy(), stats.pending(), stats.published()),
        (1, 1, 1)
    );
    nats.delete().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(activity_nats, activity_postgres)),
    ignore = "ACTIVITY_TEST_NATS_URL or ACTIVITY_TEST_POSTGRES_URL is not set"
)]
async fn postgres_busy_and_pending_polls_are_counted() {
    busy_and_pending_polls_are_counted(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(activity_nats, activity_mysql)),
    ignore = "ACTIVITY_TEST_NATS_URL or ACTIVITY_TEST_MYSQL_URL is not set"
)]
async fn mysql_busy_and_pending_polls_are_counted() {
    busy_and_pending_polls_are_counted(Backend::MySql).await;
}

/// An entry the stream refuses for a reason of its own (here its `max_message_size`, below the
/// server's `max_payload`) is retried a bounded number of times, then recorded in
/// `activity_dead_letter` with the reason; every other entry flows, exactly once and in order.
/// Once the cause is fixed, `requeue_dead_letters` publishes it. Before, it was retried every
/// 5 s forever and everything behind it waited.
async fn refused_entries_are_dead_lettered_and_the_rest_flow(backend: Backend) {
    use activity_nats::{Relay, RelayConfig};
    use activity_seaorm::outbox::{self, activity_outbox};
    use activity_seaorm::{ActivityConfig, log_activity};
    use sea_orm::{EntityTrait, PaginatorTrait};
    use serde_json::json;

    let nats = PrivateNats::start();
    let t = TestDb::new(backend).await;
    ActivityConfig::new()
        .with_outbox(true)
        .scope(async {
            for i in 0..21 {
                let mut e = ActivityEntry::new("Job", "ran").with_item_id("nightly");
                e.organization_id = Some("acme".into());
                let mut context = json!({ "run": i });
                if i == 10 {
                    // 10 KB: under the value cap and the server's limit, over the stream's.
                    context["notes"] = json!("n".repeat(10_000));
                }
                e.detail.context = Some(context);
                log_activity(&t.db, e).await.unwrap();
            }
        })
        .await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let mut stream_config = async_nats::jetstream::stream::Config {
        name: "ACTIVITY".into(),
        subjects: vec!["activity.>".into()],
        max_message_size: 4096,
        duplicate_window: Duration::from_secs(3600),
        ..Default::default()
    };
    js.create_stream(stream_config.clone()).await.unwrap();
    let relay = Relay::with_config(
        t.db.clone(),
        client,
        RelayConfig::default().with_backoff(Duration::from_millis(20), Duration::from_millis(200)),
    );
    let running = tokio::spawn({
        let relay = relay.clone();
        async move { relay.run().await }
    });
    let stats = relay.stats();
    let started = Instant::now();
    while stats.published() < 20 || stats.dead_letters() < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the relay stalled: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let runs = |entries: &[ActivityEntry]| -> Vec<i64> {
        entries
            .iter()
            .map(|e| e.detail.context.as_ref().unwrap()["run"].as_i64().unwrap())
            .collect()
    };
    let entries = stream_entries(&nats.url()).await;
    let mut expected: Vec<i64> = (0..21).filter(|i| *i != 10).collect();
    assert_eq!(runs(&entries), expected, "every other entry once, in order");
    assert_eq!(stats.dead_letters(), 1);
    assert_eq!(stats.refused(), 5, "refused max_attempts times");
    let stored = t.entries().await;
    let letters = outbox::dead_letters(&t.db).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].entry_id, stored[10].id);
    assert_eq!(letters[0].attempts, 5);
    assert!(
        letters[0].reason.contains("maximum"),
        "the broker's reason: {}",
        letters[0].reason
    );
    assert_eq!(
        activity_outbox::Entity::find().count(&t.db).await.unwrap(),
        0,
        "the outbox is drained"
    );

    // The stream's limit raised, the letter requeued: it arrives, once.
    stream_config.max_message_size = 64 * 1024;
    js.update_stream(stream_config).await.unwrap();
    assert_eq!(outbox::requeue_dead_letters(&t.db).await.unwrap(), 1);
    let started = Instant::now();
    while stats.published() < 21 {
        assert!(started.elapsed() < Duration::from_secs(30), "not requeued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.abort();
    expected.push(10);
    assert_eq!(runs(&stream_entries(&nats.url()).await), expected);
    assert!(outbox::dead_letters(&t.db).await.unwrap().is_empty());
    t.cleanup().await;
}

/// Ten writers each leave an outbox row whose entries never come (a process killed between its
/// two autocommit statements), among their ordinary writes: the relay waits out one grace for
/// all ten together, then publishes everything else. Before, it waited one grace per row, in
/// turn, publishing nothing meanwhile.
async fn incomplete_rows_from_ten_writers_stall_for_one_grace(backend: Backend) {
    use activity_nats::{Relay, RelayConfig};
    use activity_seaorm::{ActivityConfig, log_activity};

    const GRACE: Duration = Duration::from_secs(2);
    let nats = PrivateNats::start();
    let t = TestDb::new(backend).await;
    let writers: Vec<_> = (0..10)
        .map(|w| {
            let db = t.db.clone();
            tokio::spawn(ActivityConfig::new().with_outbox(true).scope(async move {
                for i in 0..5 {
                    if i == 2 {
                        activity_tests::outbox_row(&db, &uuid::Uuid::now_v7().to_string()).await;
                    }
                    let e = ActivityEntry::new("Job", "ran").with_item_id(format!("w{w}-{i}"));
                    log_activity(&db, e).await.unwrap();
                }
            }))
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let client = async_nats::connect(nats.url()).await.unwrap();
    let relay = Relay::with_config(
        t.db.clone(),
        client,
        RelayConfig::default().with_write_grace(GRACE),
    );
    relay.ensure_stream().await.unwrap();
    let stats = relay.stats();
    let started = Instant::now();
    let running = tokio::spawn({
        let relay = relay.clone();
        async move { relay.run().await }
    });
    while stats.published() < 50 {
        assert!(
            started.elapsed() < GRACE * 3,
            "publication stalled past one grace: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.abort();
    assert_eq!(stats.skipped(), 10, "the ten missing entries skipped");
    let entries = stream_entries(&nats.url()).await;
    let ids: HashSet<_> = entries.iter().map(|e| e.id).collect();
    assert_eq!((entries.len(), ids.len()), (50, 50), "each entry once");
    t.cleanup().await;
}

/// A relay that published a batch and died before deleting its rows, then NATS down for
/// longer than the old two-minute duplicate window: when both are back, the batch is
/// republished and JetStream drops every message as a duplicate (the window is an hour now).
/// Before, the stream stored the batch twice.
async fn an_outage_longer_than_two_minutes_stores_nothing_twice(backend: Backend) {
    use activity_nats::Relay;
    use activity_seaorm::{ActivityConfig, log_activity};
    use sea_orm::EntityTrait;

    let mut nats = PrivateNats::start();
    let t = TestDb::new(backend).await;
    ActivityConfig::new()
        .with_outbox(true)
        .scope(async {
            for i in 0..20 {
                let e = ActivityEntry::new("Job", "ran").with_item_id(format!("item-{}", i % 4));
                log_activity(&t.db, e).await.unwrap();
            }
        })
        .await;
    let rows = activity_seaorm::outbox::activity_outbox::Entity::find()
        .all(&t.db)
        .await
        .unwrap();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let relay = Relay::new(t.db.clone(), client);
    relay.ensure_stream().await.unwrap();
    while let activity_nats::Step::Published(_) = relay.relay_batch().await.unwrap() {}
    // The crash: published, rows not deleted.
    for row in &rows {
        activity_tests::outbox_row(&t.db, &row.entry_ids).await;
    }
    nats.stop();
    tokio::time::sleep(Duration::from_secs(125)).await;
    nats.resume();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let relay = Relay::new(t.db.clone(), client);
    let started = Instant::now();
    loop {
        match relay.relay_batch().await {
            Ok(activity_nats::Step::Published(_)) => continue,
            Ok(_) => break,
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "relay after the outage: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert_eq!(
        relay.stats().duplicates(),
        20,
        "every republished message dropped"
    );
    let entries = stream_entries(&nats.url()).await;
    let ids: HashSet<_> = entries.iter().map(|e| e.id).collect();
    assert_eq!((entries.len(), ids.len()), (20, 20), "each entry once");
    t.cleanup().await;
}

/// One test for every configured backend, run at once: the outage is the same two minutes for
/// all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(activity_nats), ignore = "ACTIVITY_TEST_NATS_URL is not set")]
async fn an_outage_longer_than_two_minutes_stores_nothing_twice_on_every_backend() {
    let mut backends = vec![Backend::Sqlite];
    if cfg!(activity_postgres) {
        backends.push(Backend::Postgres);
    }
    if cfg!(activity_mysql) {
        backends.push(Backend::MySql);
    }
    futures::future::join_all(
        backends
            .into_iter()
            .map(an_outage_longer_than_two_minutes_stores_nothing_twice),
    )
    .await;
}

activity_tests::nats_backend_tests!(
    oversized_entries_are_shrunk_and_the_rest_flow,
    refused_entries_are_dead_lettered_and_the_rest_flow,
    incomplete_rows_from_ten_writers_stall_for_one_grace,
);
