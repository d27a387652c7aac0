//! A rolling deploy over an existing log: `schema::create_table` at start-up never
//! alters an existing `activity_log` (no `ALTER`, no index build, so no lock a writer waits on),
//! while the explicit `schema::upgrade` brings it up to date without blocking writes
//! (`CREATE INDEX CONCURRENTLY` on PostgreSQL, `LOCK=NONE` on MariaDB).

use std::time::Duration;

use activity_seaorm::schema::{create_table, drop_table, upgrade};
use activity_seaorm::{ActivityEntry, bulk_log_activity};
use activity_tests::{Backend, TestDb, backend_tests, old_activity_log_sql, tests_on};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};

/// The widths of the identifier columns and the names of the indexes on `activity_log` now.
async fn shape(t: &TestDb) -> (Vec<(String, i64)>, Vec<String>) {
    let (columns, indexes) = match t.db_backend() {
        DbBackend::Sqlite => (
            None,
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'activity_log' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        ),
        DbBackend::Postgres => (
            Some(
                "SELECT column_name::text AS name, character_maximum_length::int8 AS width \
                 FROM information_schema.columns WHERE table_schema = current_schema() \
                 AND table_name = 'activity_log' AND column_name IN ('user_id', 'team_id') \
                 ORDER BY column_name",
            ),
            "SELECT indexname::text AS name FROM pg_indexes WHERE schemaname = current_schema() \
             AND tablename = 'activity_log' AND indexname <> 'activity_log_pkey' ORDER BY 1",
        ),
        _ => (
            Some(
                "SELECT COLUMN_NAME AS name, CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED) AS width \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
                 AND TABLE_NAME = 'activity_log' AND COLUMN_NAME IN ('user_id', 'team_id') \
                 ORDER BY COLUMN_NAME",
            ),
            "SELECT DISTINCT INDEX_NAME AS name FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'activity_log' \
             AND INDEX_NAME <> 'PRIMARY' ORDER BY 1",
        ),
    };
    let backend = t.db_backend();
    let mut widths = Vec::new();
    if let Some(sql) = columns {
        for row in
            t.db.query_all_raw(Statement::from_string(backend, sql))
                .await
                .unwrap()
        {
            widths.push((
                row.try_get::<String>("", "name").unwrap(),
                row.try_get::<i64>("", "width").unwrap(),
            ));
        }
    }
    let names =
        t.db.query_all_raw(Statement::from_string(backend, indexes))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<String>("", "name").unwrap())
            .collect();
    (widths, names)
}

/// The table an earlier version created, holding `n` entries.
async fn old_log(t: &TestDb, n: usize) {
    drop_table(&t.db).await.unwrap();
    for sql in old_activity_log_sql(t.backend) {
        t.db.execute_unprepared(&sql).await.unwrap();
    }
    let entries: Vec<ActivityEntry> = (0..n)
        .map(|i| {
            let mut e = ActivityEntry::new("Setting", "updated")
                .with_item_id(format!("k{i}"))
                .forced();
            e.team_id = Some("7".into());
            e.user_id = Some(format!("u{}", i % 10));
            e
        })
        .collect();
    bulk_log_activity(&t.db, entries).await.unwrap();
}

const ALL_INDEXES: [&str; 6] = [
    "activity_log_correlation",
    "activity_log_impersonator",
    "activity_log_item",
    "activity_log_org_feed",
    "activity_log_team_feed",
    "activity_log_user",
];

/// The names of `activity_log`'s columns, in the catalogue's order.
async fn columns(t: &TestDb) -> Vec<String> {
    let sql = match t.db_backend() {
        DbBackend::Sqlite => "SELECT name FROM pragma_table_info('activity_log') ORDER BY cid",
        DbBackend::Postgres => {
            "SELECT column_name::text AS name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = 'activity_log' \
             ORDER BY ordinal_position"
        }
        _ => {
            "SELECT COLUMN_NAME AS name FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'activity_log' \
             ORDER BY ORDINAL_POSITION"
        }
    };
    t.db.query_all_raw(Statement::from_string(t.db_backend(), sql))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "name").unwrap())
        .collect()
}

async fn start_up_leaves_an_old_log_as_it_is_and_upgrade_completes_it(t: &TestDb) {
    old_log(t, 2_000).await;
    let before = (shape(t).await, columns(t).await);
    assert!(!before.1.iter().any(|c| c == "trace_id"), "{:?}", before.1);
    create_table(&t.db).await.unwrap();
    assert_eq!(
        (shape(t).await, columns(t).await),
        before,
        "create_table changed an existing table"
    );
    // Untraced writes never name the trace columns: the old table takes them as it is.
    bulk_log_activity(
        &t.db,
        vec![ActivityEntry::new("Setting", "updated").forced()],
    )
    .await
    .unwrap();

    let changed = upgrade(&t.db).await.unwrap();
    let (widths, indexes) = shape(t).await;
    // MySQL has no partial index: there erasure's impersonator pass scans instead.
    let expected: Vec<String> = ALL_INDEXES
        .iter()
        .filter(|s| t.backend != Backend::MySql || **s != "activity_log_impersonator")
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(changed[..2], ["trace_id", "span_id"], "{changed:?}");
    let mut with_trace = before.1.clone();
    with_trace.extend(["trace_id".to_owned(), "span_id".to_owned()]);
    assert_eq!(columns(t).await, with_trace, "added, last, nothing else");
    match t.backend {
        Backend::Sqlite => assert_eq!(changed.len(), 2),
        _ => {
            assert_eq!(changed.len(), 2 + 6, "{changed:?}");
            assert!(widths.iter().all(|(_, w)| *w == 255), "{widths:?}");
        }
    }
    assert_eq!(indexes, expected, "the GIN index over detail is opt-in");
    // Up to date: nothing more to do, and the writes go on.
    assert!(upgrade(&t.db).await.unwrap().is_empty());
    create_table(&t.db).await.unwrap();
    bulk_log_activity(&t.db, vec![ActivityEntry::new("Setting", "created")])
        .await
        .unwrap();
    assert_eq!(t.entries().await.len(), 2_002);
}

/// A writer holds a transaction on the log while another instance starts: `create_table`
/// returns at once (an `ALTER` or an index build would wait for that transaction, and every
/// later write would queue behind it), and the writer commits.
async fn start_up_does_not_wait_for_writers(t: &TestDb) {
    old_log(t, 100).await;
    let writer = t.another_pool(2).await;
    let txn = writer.begin().await.unwrap();
    bulk_log_activity(&txn, vec![ActivityEntry::new("Setting", "in-flight")])
        .await
        .unwrap();
    let started = tokio::time::timeout(Duration::from_secs(30), create_table(&t.db)).await;
    // Not a performance bound: an old start-up waited here until the writer finished.
    assert!(
        matches!(started, Ok(Ok(()))),
        "create_table waited on a writer's transaction: {started:?}"
    );
    txn.commit().await.unwrap();
    // Counted by id: the table is still the old one, without the trace columns the suite's
    // `otel` build reads in whole entries.
    use sea_orm::{EntityTrait, PaginatorTrait, QuerySelect};
    let stored = activity_seaorm::activity_log::Entity::find()
        .select_only()
        .column(activity_seaorm::activity_log::Column::Id)
        .count(&t.db)
        .await
        .unwrap();
    assert_eq!(stored, 101);
}

backend_tests!(start_up_leaves_an_old_log_as_it_is_and_upgrade_completes_it);
tests_on!(writers: start_up_does_not_wait_for_writers on postgres, mysql);
