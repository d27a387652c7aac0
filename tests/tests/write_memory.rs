//! A long job in one transaction keeps its memory flat: entries past a bounded number are
//! written inside the transaction before COMMIT, and stay atomic with it.

use std::process::Command;

use activity_seaorm::prelude::*;
use activity_tests::{TestDb, backend_tests};
use sea_orm::DbErr;

/// Rows of the memory run: 100k entries held until COMMIT took 250–280 MB of peak memory before
/// entries were written early.
const ROWS: usize = 100_000;

/// A per-row bulk of [`ROWS`] rows in one transaction, in a child process whose peak memory is
/// measured: every row logged, and the peak grows by far less than the entries would take.
async fn a_per_row_bulk_in_one_transaction_keeps_memory_flat(t: &TestDb) {
    let (url, schema) = t.url();
    let output = Command::new(env!("CARGO_BIN_EXE_bulk_memory"))
        .args([url, schema.unwrap_or("-"), &ROWS.to_string()])
        .output()
        .expect("run bulk_memory");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bulk_memory failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |name: &str| -> u64 {
        stdout
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.split('.').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {stdout}"))
    };
    println!("{:?}: {}", t.backend, stdout.trim());
    assert_eq!(field("entries"), ROWS as u64, "one entry per row");
    let grown_mb = field("peak_hwm_kb").saturating_sub(field("seeded_hwm_kb")) / 1024;
    assert!(
        grown_mb < 48,
        "{ROWS} entries in one transaction grew the peak memory by {grown_mb} MB"
    );
}

/// Entries written early are still the transaction's: an error after them leaves nothing.
async fn entries_written_early_roll_back_with_the_transaction(t: &TestDb) {
    let result: Result<(), DbErr> = activity_seaorm::transaction(&t.db, |txn| {
        async move {
            for i in 0..2_500 {
                let entry = ActivityEntry::new("Job", "ran").with_item_id(i.to_string());
                activity_seaorm::log_activity(txn, entry).await?;
            }
            Err(DbErr::Custom("the job failed at the end".into()))
        }
        .scope_boxed()
    })
    .await;
    assert!(result.is_err());
    assert!(
        t.entries().await.is_empty(),
        "rolled back entries were kept"
    );

    // A savepoint that rolls back takes its early-written entries with it; the outer
    // transaction's stay.
    activity_seaorm::transaction(&t.db, |txn| {
        async move {
            for i in 0..1_200 {
                let entry = ActivityEntry::new("Outer", "ran").with_item_id(i.to_string());
                activity_seaorm::log_activity(txn, entry).await?;
            }
            let inner: Result<(), DbErr> = activity_seaorm::transaction(txn, |sp| {
                async move {
                    for i in 0..1_500 {
                        let entry = ActivityEntry::new("Inner", "ran").with_item_id(i.to_string());
                        activity_seaorm::log_activity(sp, entry).await?;
                    }
                    Err(DbErr::Custom("the inner step failed".into()))
                }
                .scope_boxed()
            })
            .await;
            assert!(inner.is_err());
            Ok::<_, DbErr>(())
        }
        .scope_boxed()
    })
    .await
    .expect("outer transaction");
    let entries = t.entries().await;
    assert_eq!(entries.len(), 1_200);
    assert!(entries.iter().all(|e| e.scope == "Outer"));
}

/// A failed early write fails the transaction, even when the closure goes on and returns `Ok`:
/// the change never commits without its entries.
async fn a_failed_early_write_fails_the_transaction(t: &TestDb) {
    let result: Result<(), DbErr> = activity_seaorm::transaction(&t.db, |txn| {
        async move {
            for i in 0..1_500 {
                let mut entry = ActivityEntry::new("Job", "ran").with_item_id(i.to_string());
                if i == 700 {
                    // Longer than its column: refused at the write.
                    entry.item_id = Some("x".repeat(300));
                }
                // The error is dropped on purpose: a caller that "logs and goes on".
                let _ = activity_seaorm::log_activity(txn, entry).await;
            }
            Ok(())
        }
        .scope_boxed()
    })
    .await;
    let error = result.expect_err("the transaction must fail");
    assert!(
        error.to_string().contains("item_id"),
        "the error names the refused column: {error}"
    );
    assert!(
        t.entries().await.is_empty(),
        "{} entries kept",
        t.entries().await.len()
    );
}

/// Events follow the COMMIT for early-written entries too: every one, in order, and none
/// before the transaction committed.
async fn events_of_early_written_entries_follow_the_commit(t: &TestDb) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    const N: usize = 2_100;
    let mut events = activity_seaorm::events::subscribe();
    let scope = format!("Events{}", uuid::Uuid::now_v7().simple());
    let seen_count = Arc::new(AtomicUsize::new(0));
    // Drained as they come, so that other tests' events never make this receiver lag.
    let collector = tokio::spawn({
        let scope = scope.clone();
        let seen_count = seen_count.clone();
        async move {
            let mut seen = Vec::new();
            while seen.len() < N {
                match events.recv().await {
                    Ok(event) if event.entry.scope == scope => {
                        seen.push(event.entry.item_id.clone().unwrap_or_default());
                        seen_count.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(e) => panic!("events receiver: {e}"),
                }
            }
            seen
        }
    });
    let in_txn = scope.clone();
    let before_commit = seen_count.clone();
    activity_seaorm::transaction(&t.db, |txn| {
        async move {
            for i in 0..N {
                let entry = ActivityEntry::new(in_txn.as_str(), "ran").with_item_id(i.to_string());
                activity_seaorm::log_activity(txn, entry).await?;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            assert_eq!(
                before_commit.load(Ordering::SeqCst),
                0,
                "an event before COMMIT"
            );
            Ok::<_, DbErr>(())
        }
        .scope_boxed()
    })
    .await
    .expect("transaction");
    let seen = tokio::time::timeout(std::time::Duration::from_secs(30), collector)
        .await
        .expect("every event within 30 s")
        .expect("collector");
    let expected: Vec<String> = (0..N).map(|i| i.to_string()).collect();
    assert_eq!(seen, expected);
    assert_eq!(t.entries().await.len(), N);
}

backend_tests!(
    a_per_row_bulk_in_one_transaction_keeps_memory_flat,
    entries_written_early_roll_back_with_the_transaction,
    a_failed_early_write_fails_the_transaction,
    events_of_early_written_entries_follow_the_commit,
);
