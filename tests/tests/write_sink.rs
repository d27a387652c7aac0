//! `ActivityConfig::with_wire_budget`: how many INSERTs one flush sends, and that an autocommit
//! write ignores it (one statement is what makes it whole).

use activity_seaorm::config::WIRE_BUDGET;
use activity_seaorm::{ActivityConfig, ActivityEntry, bulk_log_activity, transaction};
use activity_tests::{Backend, TestDb, backend_tests};
use scoped_futures::ScopedFutureExt;

/// `n` small entries (a custom verb, so none is dropped for having no changes).
fn entries(n: usize) -> Vec<ActivityEntry> {
    (0..n)
        .map(|i| ActivityEntry::new("Report", "exported").with_item_id(i.to_string()))
        .collect()
}

/// Flush `n` entries in one `transaction` under `budget`; returns the log INSERTs it sent.
async fn flush(t: &TestDb, n: usize, budget: usize) -> usize {
    t.take_statements();
    let config = ActivityConfig::new().with_wire_budget(budget);
    config
        .scope(transaction(&t.db, |txn| {
            async move { bulk_log_activity(txn, entries(n)).await }.scope_boxed()
        }))
        .await
        .expect("flush");
    t.take_statements()
        .iter()
        .filter(|sql| sql.starts_with("INSERT INTO") && sql.contains("activity_log"))
        .count()
}

async fn the_budget_sets_how_many_inserts_a_flush_sends(t: &TestDb) {
    let backend = t.backend;
    let networked = backend != Backend::Sqlite;

    // Far below one entry: still one entry per statement, never zero.
    assert_eq!(
        flush(t, 5, 1).await,
        if networked { 5 } else { 1 },
        "{backend:?}"
    );

    // The default: five small entries fit in one message.
    assert_eq!(flush(t, 5, WIRE_BUDGET).await, 1, "{backend:?}");

    // 1,000 small entries exceed the default budget but fit a raised one.
    let at_default = flush(t, 1000, WIRE_BUDGET).await;
    let raised = flush(t, 1000, 1 << 20).await;
    if networked {
        assert!(at_default > 1, "{backend:?}: {at_default} INSERTs");
    }
    assert_eq!(raised, 1, "{backend:?}");

    // Every entry was written, whatever the chunking.
    assert_eq!(t.entries().await.len(), 5 + 5 + 1000 + 1000, "{backend:?}");
}

/// Outside any transaction each statement commits alone: a write of many entries is one INSERT
/// whatever the budget, so a failure stores none of them, never the first chunks only.
async fn autocommit_writes_are_whole_whatever_the_budget(t: &TestDb) {
    let config = ActivityConfig::new().with_wire_budget(1);
    t.take_statements();
    config
        .clone()
        .scope(bulk_log_activity(&t.db, entries(40)))
        .await
        .expect("autocommit write");
    let inserts = t
        .take_statements()
        .iter()
        .filter(|sql| sql.starts_with("INSERT INTO") && sql.contains("activity_log"))
        .count();
    assert_eq!(inserts, 1);
    assert_eq!(t.entries().await.len(), 40);

    // The last of 40 entries repeats the first one's key (its id, and its time: a partitioned
    // log's key holds both): the primary key refuses the statement, and none of the other 39
    // is stored.
    let mut failing = entries(40);
    failing[39].id = failing[0].id;
    failing[39].created_at = failing[0].created_at;
    let failed = config.scope(bulk_log_activity(&t.db, failing)).await;
    assert!(failed.is_err(), "a duplicate id must fail the write");
    assert_eq!(t.entries().await.len(), 40, "half a log was written");
}

/// A value over the cap is stored as its size and SHA-256 (after masking), inside a
/// transaction and in autocommit, for hook entries and manual ones alike: an ordinary edit of a
/// large field can no longer make an entry the stream refuses.
async fn values_over_the_cap_are_stored_as_size_and_digest(t: &TestDb) {
    use activity_seaorm::prelude::*;
    use sea_orm::{ActiveModelTrait, Set};
    use serde_json::{Value, json};
    use sha2::{Digest, Sha256};
    let big = |c: &str| json!({ "rules": c.repeat(2 * 1024 * 1024) });
    let digest = |v: &Value| {
        let text = serde_json::to_vec(v).unwrap();
        json!({"truncated": true, "bytes": text.len(), "sha256": hex::encode(Sha256::digest(&text))})
    };
    let alice = || ActivityContext::for_user(Actor::new("u1"));
    let flag = ActivityContext::scope(alice(), activity_tests::new_flag("big").insert(&t.db))
        .await
        .unwrap();
    // In a transaction, the default cap (64 KiB).
    ActivityContext::scope(
        alice(),
        transaction(&t.db, |txn| {
            async move {
                let mut am = activity_tests::flag_by_id(flag.id);
                am.filters = Set(big("a"));
                am.update(txn).await
            }
            .scope_boxed()
        }),
    )
    .await
    .unwrap();
    // Autocommit (the hook writes at once), under a cap of 100 bytes: the secret of 200
    // characters is masked first, so it is "masked", not a digest.
    let mut am = activity_tests::flag_by_id(flag.id);
    am.filters = Set(big("b"));
    am.webhook_secret = Set("t".repeat(200));
    ActivityConfig::new()
        .with_value_cap(100)
        .scope(ActivityContext::scope(alice(), am.update(&t.db)))
        .await
        .unwrap();
    // A manual entry's context, under a cap of 4 KiB.
    let context = json!({ "note": "n".repeat(5000) });
    let mut job = ActivityEntry::new("Job", "ran");
    job.detail.context = Some(context.clone());
    ActivityConfig::new()
        .with_value_cap(4096)
        .scope(bulk_log_activity(&t.db, vec![job]))
        .await
        .unwrap();
    let entries = t.entries().await;
    assert_eq!(entries.len(), 4);
    let change = |e: &ActivityEntry, field: &str| {
        e.detail
            .changes
            .iter()
            .find(|c| c.field.as_deref() == Some(field))
            .cloned()
            .unwrap_or_else(|| panic!("no change of {field}: {:?}", e.detail.changes))
    };
    let first = change(&entries[1], "filters");
    assert_eq!(
        (first.before, first.after),
        (json!(null), digest(&big("a")))
    );
    let second = change(&entries[2], "filters");
    assert_eq!(
        (second.before, second.after),
        (digest(&big("a")), digest(&big("b")))
    );
    assert_eq!(change(&entries[2], "webhook_secret").after, json!("masked"));
    assert_eq!(entries[3].detail.context, Some(digest(&context)));
    // Nothing large reached the table.
    assert!(t.dump().await.len() < 20_000, "the log holds a large value");
}

backend_tests!(
    values_over_the_cap_are_stored_as_size_and_digest,
    the_budget_sets_how_many_inserts_a_flush_sends,
    autocommit_writes_are_whole_whatever_the_budget,
);
