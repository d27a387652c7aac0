//! Fire-and-forget logging on every backend: entries logged from spawned
//! background work carry the context captured where they were logged, everything queued before
//! `shutdown` is written, a full queue either waits (backpressure) or drops and counts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use activity_seaorm::config::ActivityHooks;
use activity_seaorm::events::ActivityRecorded;
use activity_seaorm::ops::background::{BackgroundConfig, BackgroundLogger, Overflow, Queued};
use activity_seaorm::{ActivityConfig, ActivityContext, ActivityEntry, Actor, FailurePolicy};
use activity_tests::proxy::CommitCutter;
use activity_tests::{TestDb, backend_tests};
use sea_orm::{ConnectionTrait, TransactionTrait};
use tokio::sync::broadcast;

fn email_sent(to: &str) -> ActivityEntry {
    ActivityEntry::new("Email", "sent").with_item_id(to)
}

async fn queued_entries_are_written_on_shutdown_with_their_actor(t: &TestDb) {
    let pool = t.another_pool(2).await;
    let logger = BackgroundLogger::start(pool, BackgroundConfig::default().batch(7)).unwrap();
    let mut jobs = Vec::new();
    for i in 0..40 {
        let ctx =
            ActivityContext::for_user(Actor::new(format!("u{i}")).with_name(format!("User {i}")))
                .with_organization("acme")
                .with_request_id(format!("req-{i}"));
        let logger = logger.clone();
        // The request handler spawns the job and returns; the job logs later, elsewhere.
        jobs.push(ActivityContext::sync_scope(ctx, || {
            tokio::spawn(ActivityContext::propagate(async move {
                tokio::task::yield_now().await;
                logger.log(email_sent(&format!("{i}@example.com"))).await
            }))
        }));
    }
    // One from work with no context at all: a system entry.
    let system = logger.clone();
    jobs.push(tokio::spawn(async move {
        system.log(email_sent("digest@example.com")).await
    }));
    for job in jobs {
        assert_eq!(job.await.unwrap(), Queued::Queued);
    }
    // Muted in the logging task: not queued, not counted as dropped.
    let muted = activity_seaorm::mute_scopes(&["Email"], logger.log(email_sent("muted"))).await;
    assert_eq!(muted, Queued::Muted);

    // No waiting for the worker: shutdown itself must write what is queued.
    let stats = logger.shutdown().await.unwrap();
    assert_eq!(
        (stats.queued, stats.written, stats.dropped, stats.failed),
        (41, 41, 0, 0)
    );
    let entries = t.entries().await;
    assert_eq!(entries.len(), 41);
    for e in &entries {
        let to = e.item_id.as_deref().unwrap();
        if to == "digest@example.com" {
            assert!(e.is_system && e.user_id.is_none() && e.organization_id.is_none());
            continue;
        }
        let i = to.trim_end_matches("@example.com");
        assert_eq!(e.user_id.as_deref(), Some(format!("u{i}").as_str()), "{to}");
        assert_eq!(e.user_name.as_deref(), Some(format!("User {i}").as_str()));
        assert_eq!(e.request_id.as_deref(), Some(format!("req-{i}").as_str()));
        assert_eq!(e.organization_id.as_deref(), Some("acme"));
        assert!(!e.is_system);
        assert_eq!((e.scope.as_str(), e.activity.as_str()), ("Email", "sent"));
    }

    // After shutdown, from any clone: dropped and counted.
    let late = logger.clone();
    assert_eq!(late.log(email_sent("late")).await, Queued::Dropped);
    assert_eq!(logger.stats().dropped, 1);
    assert_eq!(t.entries().await.len(), 41);
}

/// A worker stuck on the database (its only connection is held by a transaction): with
/// `Overflow::Drop` the producers never wait, and what did not fit is counted.
async fn a_full_queue_drops_and_counts(t: &TestDb) {
    let pool = t.another_pool(1).await;
    let hold = pool.begin().await.unwrap();
    let config = BackgroundConfig::default()
        .capacity(4)
        .batch(3)
        .overflow(Overflow::Drop);
    let logger = BackgroundLogger::start(pool.clone(), config).unwrap();
    let mut results = Vec::new();
    for i in 0..50 {
        results.push(logger.log(email_sent(&format!("{i}"))).await);
        tokio::task::yield_now().await;
    }
    let queued = results.iter().filter(|r| **r == Queued::Queued).count() as u64;
    let dropped = results.iter().filter(|r| **r == Queued::Dropped).count() as u64;
    assert_eq!(queued + dropped, 50);
    // The queue (4) plus at most the one batch (3) the stuck worker took.
    assert!((4..=7).contains(&queued), "queued {queued}");
    assert_eq!(logger.stats().dropped, dropped);
    hold.rollback().await.unwrap();
    let stats = logger.shutdown().await.unwrap();
    assert_eq!(
        (stats.queued, stats.written, stats.dropped),
        (queued, queued, dropped)
    );
    assert_eq!(t.entries().await.len() as u64, queued);
}

/// The same stuck worker with `Overflow::Backpressure`: the producer waits, nothing is lost.
async fn a_full_queue_applies_backpressure(t: &TestDb) {
    let pool = t.another_pool(1).await;
    let hold = pool.begin().await.unwrap();
    let config = BackgroundConfig::default().capacity(2).batch(2);
    let logger = BackgroundLogger::start(pool.clone(), config).unwrap();
    let producer = logger.clone();
    let task = tokio::spawn(async move {
        for i in 0..20 {
            assert_eq!(
                producer.log(email_sent(&format!("{i}"))).await,
                Queued::Queued
            );
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !task.is_finished(),
        "the producer should be waiting for room"
    );
    assert!(logger.stats().queued <= 4, "{:?}", logger.stats());
    hold.rollback().await.unwrap();
    task.await.unwrap();
    let stats = logger.shutdown().await.unwrap();
    assert_eq!((stats.queued, stats.written, stats.dropped), (20, 20, 0));
    assert_eq!(t.entries().await.len(), 20);
}

/// The log table is gone for a while (renamed away, then back): the worker's writes fail, are
/// retried with a backoff, and land once it is back — each entry exactly once, with its actor.
async fn a_failed_write_is_retried_until_the_database_is_back(t: &TestDb) {
    let rename = |from: &str, to: &str| format!("ALTER TABLE {from} RENAME TO {to}");
    t.db.execute_unprepared(&rename("activity_log", "activity_log_away"))
        .await
        .unwrap();
    let logger =
        BackgroundLogger::start(t.another_pool(2).await, BackgroundConfig::default()).unwrap();
    for i in 0..5 {
        let ctx = ActivityContext::for_user(Actor::new(format!("u{i}")));
        let queued = ActivityContext::scope(ctx, logger.log(email_sent(&format!("{i}@x")))).await;
        assert_eq!(queued, Queued::Queued);
    }
    // Until the worker has failed and is waiting to try again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while logger.stats().retried == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no retry: {:?}",
            logger.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    t.db.execute_unprepared(&rename("activity_log_away", "activity_log"))
        .await
        .unwrap();
    let stats = logger.shutdown().await.unwrap();
    assert_eq!((stats.written, stats.failed), (5, 0), "{stats:?}");
    assert!(stats.retried >= 1);
    let entries = t.entries().await;
    // Written as `bulk_log_activity` writes them: no correlation id made up for the batch.
    assert!(entries.iter().all(|e| e.correlation_id.is_none()));
    let mut got: Vec<(String, String)> = entries
        .into_iter()
        .map(|e| (e.item_id.unwrap(), e.user_id.unwrap()))
        .collect();
    got.sort();
    let want: Vec<(String, String)> = (0..5)
        .map(|i| (format!("{i}@x"), format!("u{i}")))
        .collect();
    assert_eq!(got, want);
}

/// A refusal that no retry can mend (an identifier longer than its column) fails at once, and
/// takes nothing else of another context with it.
async fn a_refused_entry_is_not_retried(t: &TestDb) {
    let logger = BackgroundLogger::start(
        t.another_pool(2).await,
        BackgroundConfig::default().retries(3),
    )
    .unwrap();
    let long = ActivityContext::for_user(Actor::new("u".repeat(300)));
    let _ = ActivityContext::scope(long, logger.log(email_sent("long@x"))).await;
    let fine = ActivityContext::for_user(Actor::new("u1"));
    let _ = ActivityContext::scope(fine, logger.log(email_sent("fine@x"))).await;
    let stats = logger.shutdown().await.unwrap();
    assert_eq!(
        (stats.written, stats.failed, stats.retried),
        (1, 1, 0),
        "{stats:?}"
    );
    let entries = t.entries().await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].item_id.as_deref(), Some("fine@x"));
}

/// An entry whose id is already in the log fails at once and is counted failed — not retried,
/// and never taken for "an earlier attempt committed" (which only a retry may conclude).
async fn an_id_already_taken_fails_without_retry(t: &TestDb) {
    let taken = email_sent("taken@x");
    activity_seaorm::log_activity(&t.db, taken.clone())
        .await
        .unwrap();
    let logger =
        BackgroundLogger::start(t.another_pool(2).await, BackgroundConfig::default()).unwrap();
    let _ = logger.log(taken).await;
    let stats = logger.shutdown().await.unwrap();
    assert_eq!(
        (stats.written, stats.failed, stats.retried),
        (0, 1, 0),
        "{stats:?}"
    );
    assert_eq!(t.entries().await.len(), 1);
}

/// Ids of the entries published so far whose item id ends with `tag`, in order.
fn published(events: &mut broadcast::Receiver<ActivityRecorded>, tag: &str) -> Vec<uuid::Uuid> {
    let mut ids = Vec::new();
    loop {
        match events.try_recv() {
            Ok(e) if e.entry.item_id.as_deref().is_some_and(|i| i.ends_with(tag)) => {
                ids.push(e.entry.id)
            }
            Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => return ids,
        }
    }
}

/// The COMMIT reaches the server, which commits, but its answer is lost with the connection:
/// the worker finds its own ids stored and counts the entries written once (not failed, not
/// twice) and publishes them once, with their context current for `after_append`. Under either
/// failure policy (fail-open would take a second INSERT's unique violation for a lost write),
/// and when the lost answer was the last attempt's.
async fn a_lost_commit_answer_is_neither_failed_nor_doubled(t: &TestDb) {
    let cases = [
        (FailurePolicy::FailClosed, BackgroundConfig::default()),
        (FailurePolicy::FailOpen, BackgroundConfig::default()),
        (
            FailurePolicy::FailClosed,
            BackgroundConfig::default().retries(0),
        ),
    ];
    for (policy, config) in cases {
        let case = format!("{policy:?}, {} retries", config.retries);
        let (url, schema) = t.url();
        let proxy = CommitCutter::start(url).await;
        let pool = activity_tests::connect_sized(&proxy.url(url), schema, 2).await;
        let mut events = activity_seaorm::events::subscribe();
        let seen_by_hook = Arc::new(Mutex::new(Vec::new()));
        let settings = ActivityConfig::new()
            .with_failure_policy(policy)
            .with_hooks(Arc::new(ActorsAppended(seen_by_hook.clone())));
        let logger = settings
            .scope(async { BackgroundLogger::start(pool, config) })
            .await
            .unwrap();
        let tag = format!("@{}", uuid::Uuid::now_v7().simple());
        proxy.arm();
        for i in 0..3 {
            let ctx = ActivityContext::for_user(Actor::new(format!("u{i}")));
            let entry = email_sent(&format!("{i}{tag}"));
            assert_eq!(
                ActivityContext::scope(ctx, logger.log(entry)).await,
                Queued::Queued
            );
        }
        let stats = logger.shutdown().await.unwrap();
        assert_eq!(proxy.cut(), 1, "{case}: no COMMIT lost its answer");
        assert_eq!((stats.written, stats.failed), (3, 0), "{case}: {stats:?}");
        let entries: Vec<_> = t
            .entries()
            .await
            .into_iter()
            .filter(|e| e.item_id.as_deref().is_some_and(|i| i.ends_with(&tag)))
            .collect();
        let mut got: Vec<(String, String)> = entries
            .iter()
            .map(|e| (e.item_id.clone().unwrap(), e.user_id.clone().unwrap()))
            .collect();
        got.sort();
        let want: Vec<(String, String)> = (0..3)
            .map(|i| (format!("{i}{tag}"), format!("u{i}")))
            .collect();
        assert_eq!(got, want, "{case}");
        let mut ids = published(&mut events, &tag);
        ids.sort();
        let mut stored: Vec<_> = entries.iter().map(|e| e.id).collect();
        stored.sort();
        assert_eq!(
            ids, stored,
            "{case}: each stored entry published exactly once"
        );
        // `after_append` ran once per entry, in the context it was logged in.
        let mut hooked = seen_by_hook.lock().unwrap().clone();
        hooked.sort();
        let actors: Vec<String> = (0..3).map(|i| format!("u{i}")).collect();
        assert_eq!(hooked, actors, "{case}");
    }
}

/// Records the current context's actor for every appended entry.
#[derive(Debug)]
struct ActorsAppended(Arc<Mutex<Vec<String>>>);

impl ActivityHooks for ActorsAppended {
    fn after_append(&self, _entry: &ActivityEntry) {
        let actor = ActivityContext::current()
            .and_then(|c| c.user().map(|a| a.id.clone()))
            .unwrap_or_default();
        self.0.lock().unwrap().push(actor);
    }
}

/// PostgreSQL refuses the first COMMIT (a deferred constraint trigger): the transaction rolls
/// back, the retry commits. Entries are published after a COMMIT succeeded, so once each, and
/// never for the attempt that rolled back.
async fn a_refused_commit_publishes_nothing_until_the_retry_commits(t: &TestDb) {
    t.db.execute_unprepared(
        "CREATE SEQUENCE commits_seen;
         CREATE FUNCTION refuse_first_commit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF nextval('commits_seen') = 1 THEN RAISE EXCEPTION 'first commit refused'; END IF;
           RETURN NULL;
         END $$;
         CREATE CONSTRAINT TRIGGER refuse_first_commit AFTER INSERT ON activity_log
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_first_commit();",
    )
    .await
    .unwrap();
    let (url, schema) = t.url();
    let pool = activity_tests::connect_sized(url, schema, 2).await;
    let mut events = activity_seaorm::events::subscribe();
    let logger = BackgroundLogger::start(pool, BackgroundConfig::default()).unwrap();
    let tag = format!("@{}", uuid::Uuid::now_v7().simple());
    let ctx = ActivityContext::for_user(Actor::new("u1"));
    for i in 0..3 {
        let entry = email_sent(&format!("{i}{tag}"));
        let _ = ActivityContext::scope(ctx.clone(), logger.log(entry)).await;
    }
    let stats = logger.shutdown().await.unwrap();
    assert_eq!(
        (stats.written, stats.failed, stats.retried),
        (3, 0, 1),
        "{stats:?}"
    );
    let mut stored: Vec<_> = t.entries().await.iter().map(|e| e.id).collect();
    stored.sort();
    assert_eq!(stored.len(), 3);
    let mut ids = published(&mut events, &tag);
    ids.sort();
    assert_eq!(
        ids, stored,
        "published once each, and only what was committed"
    );
}

activity_tests::tests_on!(lost_commit_answer: a_lost_commit_answer_is_neither_failed_nor_doubled on postgres, mysql);
activity_tests::tests_on!(refused_commit: a_refused_commit_publishes_nothing_until_the_retry_commits on postgres);

backend_tests!(
    queued_entries_are_written_on_shutdown_with_their_actor,
    an_id_already_taken_fails_without_retry,
    a_full_queue_drops_and_counts,
    a_full_queue_applies_backpressure,
    a_failed_write_is_retried_until_the_database_is_back,
    a_refused_entry_is_not_retried,
);
