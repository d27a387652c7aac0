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

    // 300 small entries exceed the default budget but fit a raised one.
    let at_default = flush(t, 300, WIRE_BUDGET).await;
    let raised = flush(t, 300, 1 << 20).await;
    if networked {
        assert!(at_default > 1, "{backend:?}: {at_default} INSERTs");
    }
    assert_eq!(raised, 1, "{backend:?}");

    // Every entry was written, whatever the chunking.
    assert_eq!(t.entries().await.len(), 5 + 5 + 300 + 300, "{backend:?}");
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

    // The last of 40 entries repeats the first one's id: the primary key refuses the statement,
    // and none of the other 39 is stored.
    let mut failing = entries(40);
    failing[39].id = failing[0].id;
    let failed = config.scope(bulk_log_activity(&t.db, failing)).await;
    assert!(failed.is_err(), "a duplicate id must fail the write");
    assert_eq!(t.entries().await.len(), 40, "half a log was written");
}

backend_tests!(
    the_budget_sets_how_many_inserts_a_flush_sends,
    autocommit_writes_are_whole_whatever_the_budget,
);
