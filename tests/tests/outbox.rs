//! The outbox's write side: with the outbox on, the entries of every write have an
//! outbox row, in the same transaction; rolled-back entries never; a relay claims rows in order,
//! one relay at a time.

use activity_seaorm::outbox::{self, Claim, WaitingRows, activity_outbox};
use activity_seaorm::prelude::*;
use activity_seaorm::{ActivityConfig, log_activity, transaction};
use std::time::Duration;

use activity_tests::{Backend, TestDb, backend_tests, new_flag};
use scoped_futures::ScopedFutureExt;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, IntoActiveModel,
    QueryOrder, Set,
};

fn with_outbox() -> ActivityConfig {
    ActivityConfig::new().with_outbox(true)
}

async fn rows(t: &TestDb) -> Vec<activity_outbox::Model> {
    activity_outbox::Entity::find()
        .order_by_asc(activity_outbox::Column::Id)
        .all(&t.db)
        .await
        .unwrap()
}

/// Claim everything in the outbox (in a transaction left to roll back) and name the entries.
async fn claimed_names(t: &TestDb) -> Vec<String> {
    let txn = outbox::begin(&t.db).await.unwrap();
    let names = match outbox::claim(
        &txn,
        outbox::BatchLimit::new(1000, usize::MAX),
        &mut WaitingRows::default(),
    )
    .await
    .unwrap()
    {
        Claim::Batch(c) => {
            assert_eq!(c.missing, 0);
            c.entries
                .iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e.detail.name.clone().unwrap_or_default(),
                        e.activity
                    )
                })
                .collect()
        }
        Claim::Empty => Vec::new(),
        other => panic!("unexpected claim {other:?}"),
    };
    txn.rollback().await.unwrap();
    names
}

/// Claim up to ten rows in `txn`.
async fn claim_ten(txn: &DatabaseTransaction, waiting: &mut WaitingRows) -> Claim {
    outbox::claim(txn, outbox::BatchLimit::new(10, usize::MAX), waiting)
        .await
        .unwrap()
}

async fn transaction_writes_its_entries_and_their_outbox_row(t: &TestDb) {
    with_outbox()
        .scope(async {
            transaction(&t.db, |txn| {
                async move {
                    let a = new_flag("a").insert(txn).await?;
                    new_flag("b").insert(txn).await?;
                    let mut a = a.into_active_model();
                    a.active = Set(true);
                    a.update(txn).await?;
                    Ok::<_, DbErr>(())
                }
                .scope_boxed()
            })
            .await
            .unwrap();
        })
        .await;
    let rows = rows(t).await;
    assert_eq!(rows.len(), 1, "one outbox row per transaction");
    let entries = t.entries().await;
    let mut listed: Vec<&str> = rows[0].entry_ids.split(',').collect();
    assert_eq!(listed.len(), 3);
    let mut stored: Vec<String> = entries.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(
        claimed_names(t).await,
        ["a created", "b created", "a updated"]
    );
    listed.sort();
    stored.sort();
    assert_eq!(listed, stored);
}

async fn rolled_back_entries_never_reach_the_outbox(t: &TestDb) {
    with_outbox()
        .scope(async {
            let failed = transaction(&t.db, |txn| {
                async move {
                    new_flag("doomed").insert(txn).await?;
                    Err::<(), _>(DbErr::Custom("no".into()))
                }
                .scope_boxed()
            })
            .await;
            assert!(failed.is_err());
            // A savepoint that rolls back takes its entries out of the outer row.
            transaction(&t.db, |txn| {
                async move {
                    new_flag("kept").insert(txn).await?;
                    let inner = transaction(txn, |sp| {
                        async move {
                            new_flag("inner").insert(sp).await?;
                            Err::<(), _>(DbErr::Custom("undo".into()))
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
            .unwrap();
        })
        .await;
    assert_eq!(rows(t).await.len(), 1);
    assert_eq!(claimed_names(t).await, ["kept created"]);
}

async fn autocommit_and_manual_writes_have_outbox_rows(t: &TestDb) {
    with_outbox()
        .scope(async {
            new_flag("solo").insert(&t.db).await.unwrap();
            activity_seaorm::log_activity(
                &t.db,
                ActivityEntry::new("Job", "ran").with_name("nightly"),
            )
            .await
            .unwrap();
        })
        .await;
    assert_eq!(rows(t).await.len(), 2);
    assert_eq!(claimed_names(t).await, ["solo created", "nightly ran"]);
}

async fn outbox_off_writes_no_row(t: &TestDb) {
    new_flag("quiet").insert(&t.db).await.unwrap();
    assert_eq!(t.entries().await.len(), 1);
    assert!(rows(t).await.is_empty());
}

async fn a_flush_of_many_statements_lists_every_entry_once(t: &TestDb) {
    // A tiny wire budget: one INSERT per entry on the servers.
    with_outbox()
        .with_wire_budget(1)
        .scope(async {
            transaction(&t.db, |txn| {
                async move {
                    for i in 0..30 {
                        new_flag(&format!("f{i:02}")).insert(txn).await?;
                    }
                    Ok::<_, DbErr>(())
                }
                .scope_boxed()
            })
            .await
            .unwrap();
        })
        .await;
    let names = claimed_names(t).await;
    let expected: Vec<String> = (0..30).map(|i| format!("f{i:02} created")).collect();
    assert_eq!(names, expected);
}

async fn claim_complete_and_one_relay_at_a_time(t: &TestDb) {
    with_outbox()
        .scope(async {
            for key in ["x", "y"] {
                new_flag(key).insert(&t.db).await.unwrap();
            }
        })
        .await;
    let first = outbox::begin(&t.db).await.unwrap();
    let Claim::Batch(claimed) = outbox::claim(
        &first,
        outbox::BatchLimit::new(1, usize::MAX),
        &mut WaitingRows::default(),
    )
    .await
    .unwrap() else {
        panic!("expected a batch");
    };
    assert_eq!(claimed.entries.len(), 1);
    assert_eq!(claimed.entries[0].detail.name.as_deref(), Some("x"));
    if t.backend != Backend::Sqlite {
        // A second relay must not overtake the first (it would publish `y` before `x`).
        let other = t.another_pool(2).await;
        let second = outbox::begin(&other).await.unwrap();
        assert!(matches!(
            outbox::claim(
                &second,
                outbox::BatchLimit::new(10, usize::MAX),
                &mut WaitingRows::default()
            )
            .await
            .unwrap(),
            Claim::Busy
        ));
        second.rollback().await.unwrap();
        other.close().await.ok();
    }
    outbox::complete(&first, &claimed.rows).await.unwrap();
    first.commit().await.unwrap();
    assert_eq!(claimed_names(t).await, ["y created"]);
    assert_eq!(outbox::pending(&t.db).await.unwrap(), 1);
    // An entry pruned before it was relayed: its row waits out the grace (the entry might
    // still be on its way), then is relayed without it, counted.
    activity_seaorm::activity_log::Entity::delete_many()
        .exec(&t.db)
        .await
        .unwrap();
    let txn = outbox::begin(&t.db).await.unwrap();
    assert!(matches!(
        claim_ten(&txn, &mut WaitingRows::default()).await,
        Claim::Pending { .. }
    ));
    let Claim::Batch(claimed) = claim_ten(&txn, &mut WaitingRows::new(Duration::ZERO)).await else {
        panic!("expected a batch");
    };
    assert_eq!((claimed.entries.len(), claimed.missing), (0, 1));
}

async fn rename(t: &TestDb, from: &str, to: &str) {
    t.db.execute_unprepared(&format!("ALTER TABLE {from} RENAME TO {to}"))
        .await
        .unwrap();
}

/// Outside a transaction on SQLite and MySQL the outbox row and the entries are two statements:
/// whichever fails, the log never holds an entry that no relay will publish.
async fn an_autocommit_write_failing_midway_leaves_no_unrelayed_entry(t: &TestDb) {
    let log = || {
        with_outbox().scope(activity_seaorm::log_activity(
            &t.db,
            ActivityEntry::new("Job", "ran").with_name("nightly"),
        ))
    };
    // The outbox row cannot be written: nothing is.
    rename(t, "activity_outbox", "outbox_away").await;
    assert!(log().await.is_err());
    rename(t, "outbox_away", "activity_outbox").await;
    assert!(t.entries().await.is_empty(), "an entry no relay will see");
    // The entries cannot be written: on SQLite and MySQL the row is (it went first) and names
    // an entry that never came; the relay waits the grace out, then skips it.
    rename(t, "activity_log", "log_away").await;
    assert!(log().await.is_err());
    rename(t, "log_away", "activity_log").await;
    assert!(t.entries().await.is_empty());
    let txn = outbox::begin(&t.db).await.unwrap();
    if t.backend == Backend::Postgres {
        // One statement: nothing at all.
        assert!(rows(t).await.is_empty());
        return;
    }
    assert_eq!(rows(t).await.len(), 1);
    // The grace runs on the relay's own clock, from when it first saw the row incomplete.
    let grace = Duration::from_millis(200);
    let mut waiting = WaitingRows::new(grace);
    assert!(matches!(
        claim_ten(&txn, &mut waiting).await,
        Claim::Pending { .. }
    ));
    tokio::time::sleep(grace + Duration::from_millis(50)).await;
    // A relay that only now sees the row still waits: the row's age does not count.
    assert!(matches!(
        claim_ten(&txn, &mut WaitingRows::new(grace)).await,
        Claim::Pending { .. }
    ));
    let Claim::Batch(claimed) = claim_ten(&txn, &mut waiting).await else {
        panic!("expected a batch");
    };
    assert_eq!((claimed.entries.len(), claimed.missing), (0, 1));
    outbox::complete(&txn, &claimed.rows).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(outbox::pending(&t.db).await.unwrap(), 0);
}

/// A relay that sees an outbox row before its entries (the moment between an autocommit
/// write's two statements) waits for them, and does not overtake the row meanwhile.
async fn an_outbox_row_waits_for_its_entries_in_order(t: &TestDb) {
    let late = ActivityEntry::new("Job", "ran").with_name("late");
    activity_tests::outbox_row(&t.db, &late.id.to_string()).await;
    with_outbox()
        .scope(activity_seaorm::log_activity(
            &t.db,
            ActivityEntry::new("Job", "ran").with_name("next"),
        ))
        .await
        .unwrap();
    let txn = outbox::begin(&t.db).await.unwrap();
    assert!(matches!(
        claim_ten(&txn, &mut WaitingRows::default()).await,
        Claim::Pending { .. }
    ));
    txn.rollback().await.unwrap();
    // The entry arrives (its row is already there: written without a second one).
    activity_seaorm::log_activity(&t.db, late).await.unwrap();
    assert_eq!(claimed_names(t).await, ["late ran", "next ran"]);
}

/// Ten incomplete rows (their entries never written) wait one grace together, not one grace
/// each in turn: before, the relay started a row's clock only once it was the oldest, so ten
/// of them held everything behind them for ten graces.
async fn incomplete_rows_wait_one_grace_together(t: &TestDb) {
    for _ in 0..10 {
        activity_tests::outbox_row(&t.db, &uuid::Uuid::now_v7().to_string()).await;
    }
    let mut waiting = WaitingRows::new(Duration::from_millis(300));
    let txn = outbox::begin(&t.db).await.unwrap();
    assert!(matches!(
        claim_ten(&txn, &mut waiting).await,
        Claim::Pending { .. }
    ));
    txn.rollback().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let txn = outbox::begin(&t.db).await.unwrap();
    match claim_ten(&txn, &mut waiting).await {
        Claim::Batch(c) => assert_eq!((c.rows.len(), c.missing), (10, 10)),
        other => panic!("unexpected claim {other:?}"),
    }
}

/// An entry listed by two outbox rows (an application that wrote the same entry again after
/// a failed autocommit write) is relayed once, and the second row does not wait for it.
async fn an_id_listed_twice_is_relayed_once(t: &TestDb) {
    let entry = ActivityEntry::new("Job", "ran").with_name("twice");
    let id = entry.id.to_string();
    activity_seaorm::log_activity(&t.db, entry).await.unwrap();
    for _ in 0..2 {
        activity_tests::outbox_row(&t.db, &id).await;
    }
    let txn = outbox::begin(&t.db).await.unwrap();
    let Claim::Batch(claimed) = claim_ten(&txn, &mut WaitingRows::default()).await else {
        panic!("expected a batch");
    };
    assert_eq!(
        (claimed.rows.len(), claimed.entries.len(), claimed.missing),
        (2, 1, 0)
    );
}

/// A claim is bounded by entries as well as rows: rows are taken in order while their entries
/// fit, the first one always.
async fn a_claim_is_bounded_by_entries(t: &TestDb) {
    with_outbox()
        .scope(async {
            for batch in [300usize, 300, 300, 800] {
                let entries = (0..batch)
                    .map(|i| ActivityEntry::new("Job", "ran").with_item_id(format!("{batch}-{i}")))
                    .collect();
                // Inside a transaction: one outbox row per batch.
                transaction(&t.db, |txn| {
                    async move { activity_seaorm::bulk_log_activity(txn, entries).await }
                        .scope_boxed()
                })
                .await
                .unwrap();
            }
        })
        .await;
    let sizes = |claim: Claim| match claim {
        Claim::Batch(c) => (c.rows.len(), c.entries.len()),
        other => panic!("unexpected claim {other:?}"),
    };
    // How many entries each outbox row lists (a transaction's flush writes one row per INSERT,
    // so PostgreSQL, whose outbox row rides on each INSERT, has more and smaller rows).
    let listed = |rows: &[activity_outbox::Model]| -> Vec<usize> {
        rows.iter()
            .map(|r| r.entry_ids.split(',').filter(|i| !i.is_empty()).count())
            .collect()
    };
    // The rows a claim with `budget` must take: in order while they fit, the first always.
    let expected = |counts: &[usize], budget: usize| {
        let (mut n, mut total) = (0, 0);
        for c in counts {
            if n > 0 && total + c > budget {
                break;
            }
            n += 1;
            total += c;
        }
        (n, total)
    };
    let all = listed(&rows(t).await);
    assert_eq!(all.iter().sum::<usize>(), 1_700);
    let txn = outbox::begin(&t.db).await.unwrap();
    let claim = outbox::claim(
        &txn,
        outbox::BatchLimit::new(1000, 650),
        &mut WaitingRows::default(),
    )
    .await
    .unwrap();
    let (n, total) = expected(&all, 650);
    assert_eq!(sizes(claim), (n, total));
    assert!((300..=650).contains(&total), "{total}");
    let done: Vec<i64> = rows(t).await[..n].iter().map(|r| r.id).collect();
    outbox::complete(&txn, &done).await.unwrap();
    txn.commit().await.unwrap();
    // The next claim starts where that one stopped, under the same budget.
    let rest = listed(&rows(t).await);
    let txn = outbox::begin(&t.db).await.unwrap();
    let claim = outbox::claim(
        &txn,
        outbox::BatchLimit::new(1000, 650),
        &mut WaitingRows::default(),
    )
    .await
    .unwrap();
    assert_eq!(sizes(claim), expected(&rest, 650));
    // Rolled back before the next claim: a dropped transaction rolls back in the background,
    // and its row locks could still be held when the next claim asks (`Busy`).
    txn.rollback().await.unwrap();
    // A first row larger than the budget is still claimed, alone.
    let txn = outbox::begin(&t.db).await.unwrap();
    let claim = outbox::claim(
        &txn,
        outbox::BatchLimit::new(1000, 1),
        &mut WaitingRows::default(),
    )
    .await
    .unwrap();
    assert_eq!(sizes(claim), (1, rest[0]));
}

/// Large entries: a claim stops once their bytes pass the budget, whatever the entry budget.
async fn a_claim_is_bounded_by_bytes(t: &TestDb) {
    use activity_seaorm::{ActivityConfig, bulk_log_activity};
    let entries: Vec<ActivityEntry> = (0..800)
        .map(|i| {
            let mut e = ActivityEntry::new("Job", "ran").with_item_id(i.to_string());
            e.detail.context = Some(serde_json::json!({ "notes": "n".repeat(4_000) }));
            e
        })
        .collect();
    ActivityConfig::new()
        .with_outbox(true)
        .scope(async {
            for chunk in entries.chunks(10) {
                bulk_log_activity(&t.db, chunk.to_vec()).await.unwrap();
            }
        })
        .await;
    let sizes = |claim: Claim| match claim {
        Claim::Batch(c) => (c.rows.len(), c.entries.len()),
        other => panic!("{other:?}"),
    };
    let claim_with = |bytes: usize| {
        let db = t.db.clone();
        async move {
            let txn = outbox::begin(&db).await.unwrap();
            let limit = outbox::BatchLimit::new(1000, usize::MAX).with_bytes(bytes);
            let claim = outbox::claim(&txn, limit, &mut WaitingRows::default())
                .await
                .unwrap();
            txn.rollback().await.unwrap();
            claim
        }
    };
    // Unbounded: all of them.
    assert_eq!(sizes(claim_with(usize::MAX).await).1, 800);
    // 1 MB of 4 KB entries: the first read (500 entries) passes it; nothing more is read.
    let (_, claimed) = sizes(claim_with(1_000_000).await);
    assert!((250..=500).contains(&claimed), "{claimed} entries");
    // 3 MB: reads sized to the rest of the budget, stopping within a row of it.
    let (_, claimed) = sizes(claim_with(3_000_000).await);
    assert!((700..=800).contains(&claimed), "{claimed} entries");
}

/// Relay everything the outbox lists (claimed and completed, nothing published).
async fn relay_everything(t: &TestDb) {
    let txn = outbox::begin(&t.db).await.unwrap();
    if let Claim::Batch(claimed) = outbox::claim(
        &txn,
        outbox::BatchLimit::new(1000, usize::MAX),
        &mut WaitingRows::default(),
    )
    .await
    .unwrap()
    {
        outbox::complete(&txn, &claimed.rows).await.unwrap();
    }
    txn.commit().await.unwrap();
}

/// The names of the entries in the log, oldest first.
async fn logged(t: &TestDb) -> Vec<String> {
    activity_seaorm::activity_log::Entity::find()
        .order_by_asc(activity_seaorm::activity_log::Column::CreatedAt)
        .all(&t.db)
        .await
        .unwrap()
        .into_iter()
        .map(|m| ActivityEntry::from(m).detail.name.unwrap_or_default())
        .collect()
}

/// Retention never takes an entry the relay has yet to publish (it would never reach the
/// stream): `prune` keeps it and everything after it, `archive_then_prune` refuses before it
/// writes anything; once the relay has caught up, both go on.
async fn retention_keeps_what_the_relay_has_not_published(t: &TestDb) {
    use activity_seaorm::ops::archive::{ArchiveOptions, archive_then_prune};
    use activity_seaorm::ops::retention::prune;
    let days_ago = |name: &str, days: i64| {
        let mut e = ActivityEntry::new("Job", "ran").with_name(name).forced();
        e.created_at = chrono::Utc::now() - chrono::Duration::days(days);
        e
    };
    with_outbox()
        .scope(async {
            log_activity(&t.db, days_ago("relayed, oldest", 30))
                .await
                .unwrap();
            log_activity(&t.db, days_ago("relayed, newest", 10))
                .await
                .unwrap();
        })
        .await;
    relay_everything(t).await;
    with_outbox()
        .scope(async {
            log_activity(&t.db, days_ago("waiting", 20)).await.unwrap();
        })
        .await;
    let cutoff = chrono::Utc::now() - chrono::Duration::days(1);
    assert_eq!(prune(&t.db, cutoff, &[]).await.unwrap(), 1);
    assert_eq!(logged(t).await, ["waiting", "relayed, newest"]);

    let dir = tempfile::tempdir().unwrap();
    let opts = ArchiveOptions::new(dir.path(), "old");
    let refused = archive_then_prune(&t.db, &ActivityQuery::unscoped(), cutoff, &opts).await;
    match refused {
        Err(activity_seaorm::Error::Archive { why, .. }) => {
            assert!(why.contains("relay"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert_eq!(logged(t).await, ["waiting", "relayed, newest"]);

    relay_everything(t).await;
    let done = archive_then_prune(&t.db, &ActivityQuery::unscoped(), cutoff, &opts)
        .await
        .unwrap();
    assert_eq!((done.manifest.count, done.deleted), (2, 2));
    assert!(logged(t).await.is_empty());
}

backend_tests!(
    retention_keeps_what_the_relay_has_not_published,
    a_claim_is_bounded_by_bytes,
    a_claim_is_bounded_by_entries,
    incomplete_rows_wait_one_grace_together,
    an_id_listed_twice_is_relayed_once,
    transaction_writes_its_entries_and_their_outbox_row,
    rolled_back_entries_never_reach_the_outbox,
    autocommit_and_manual_writes_have_outbox_rows,
    outbox_off_writes_no_row,
    a_flush_of_many_statements_lists_every_entry_once,
    claim_complete_and_one_relay_at_a_time,
    an_autocommit_write_failing_midway_leaves_no_unrelayed_entry,
    an_outbox_row_waits_for_its_entries_in_order,
);
