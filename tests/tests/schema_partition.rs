//! PostgreSQL's monthly partitions (`schema::partition`, `ops::retention::archive_then_drop_partitions`):
//! converting a live log loses and blocks nothing, a month created late takes its entries from
//! the default partition, and retention archives, checks and drops whole months, never one
//! that holds an entry its archive does not.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use activity_seaorm::ops::archive::{ArchiveOptions, ArchiveStep, verify_archive};
use activity_seaorm::ops::retention::archive_then_drop_partitions;
use activity_seaorm::schema::partition::{
    self, DEFAULT_PARTITION, LEGACY_PARTITION, month_partition_name, month_start, next_month,
};
use activity_seaorm::schema::{drop_table, guard, upgrade};
use activity_seaorm::{
    ActivityEntry, ActivityQuery, bulk_log_activity, load_activity, log_activity,
};
use activity_tests::{TestDb, old_activity_log_sql, tests_on};
use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

fn entry(item: &str, at: DateTime<Utc>) -> ActivityEntry {
    let mut e = ActivityEntry::new("Setting", "updated")
        .with_item_id(item)
        .forced();
    e.team_id = Some("7".into());
    e.user_id = Some("u1".into());
    e.created_at = at;
    e
}

/// The partition holding entry `id`.
async fn home(t: &TestDb, id: uuid::Uuid) -> String {
    t.db.query_one_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT tableoid::regclass::text AS home FROM activity_log WHERE id = $1",
        [id.into()],
    ))
    .await
    .unwrap()
    .expect("the entry is stored")
    .try_get("", "home")
    .unwrap()
}

async fn count(t: &TestDb, table: &str) -> i64 {
    t.db.query_one_raw(Statement::from_string(
        DbBackend::Postgres,
        format!("SELECT COUNT(*) AS n FROM {table}"),
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get("", "n")
    .unwrap()
}

/// An earlier version's unpartitioned log of 2,000 entries, guarded, converted while a writer
/// logs one entry after another: every write succeeds, every entry is readable afterwards, the
/// guard covers old and new partitions, and a second conversion and `upgrade` change nothing.
async fn converting_a_live_log_loses_nothing(t: &TestDb) {
    drop_table(&t.db).await.unwrap();
    for sql in old_activity_log_sql(activity_tests::Backend::Postgres) {
        t.db.execute_unprepared(&sql).await.unwrap();
    }
    upgrade(&t.db).await.unwrap();
    let now = Utc::now();
    let old: Vec<ActivityEntry> = (0..2_000)
        .map(|i| {
            entry(
                &format!("k{}", i % 50),
                now - Duration::days(400) + Duration::minutes(i),
            )
        })
        .collect();
    bulk_log_activity(&t.db, old).await.unwrap();
    guard::install_append_only(&t.db).await.unwrap();

    let writer_db = t.another_pool(2).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (written, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let writer = {
        let (stop, written, failed) = (stop.clone(), written.clone(), failed.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                match log_activity(&writer_db, entry(&format!("w{}", i % 5), Utc::now())).await {
                    Ok(()) => written.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("write failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let through = now + Duration::days(62);
    let done = partition::partition_by_month(&t.db, through).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "a write failed during the conversion"
    );
    let written = written.load(Ordering::Relaxed);
    assert!(written > 0);

    let until = next_month(now);
    assert_eq!(done.legacy_until, Some(until));
    assert!(!done.already);
    let parts = partition::partitions(&t.db).await.unwrap();
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    let mut expected = vec![LEGACY_PARTITION.to_owned()];
    let mut month = until;
    while month <= through {
        expected.push(month_partition_name(month));
        month = next_month(month);
    }
    expected.push(DEFAULT_PARTITION.to_owned());
    assert_eq!(names, expected);
    assert_eq!(done.created, expected[1..expected.len() - 1]);
    assert_eq!((parts[0].from, parts[0].to), (None, Some(until)));

    // Nothing lost: the old entries and every write made during the conversion.
    assert_eq!(count(t, "activity_log").await, 2_000 + written as i64);
    assert_eq!(count(t, LEGACY_PARTITION).await, 2_000 + written as i64);
    let page = load_activity(
        &t.db,
        &ActivityQuery::for_team("7")
            .item("Setting", "k3")
            .limit(100),
    )
    .await
    .unwrap();
    assert_eq!(page.results.len(), 40);

    // A new entry of next month lands in its month; the guard covers both.
    let next = entry("next", until + Duration::hours(1));
    let next_id = next.id;
    log_activity(&t.db, next).await.unwrap();
    assert_eq!(home(t, next_id).await, month_partition_name(until));
    for filter in ["item_id = 'next'", "item_id = 'k3'"] {
        let tamper =
            t.db.execute_unprepared(&format!(
                "UPDATE activity_log SET user_id = 'x' WHERE {filter}"
            ))
            .await;
        assert!(
            tamper.is_err(),
            "the guard let an UPDATE through ({filter})"
        );
    }

    let again = partition::partition_by_month(&t.db, through).await.unwrap();
    assert!(again.already && again.created.is_empty());
    assert!(upgrade(&t.db).await.unwrap().is_empty());
}

/// A month not created in time: its entries went to the default partition, and creating it
/// moves them there in one transaction (the log holds each once, the default none).
async fn a_late_month_takes_its_entries_from_the_default_partition(t: &TestDb) {
    drop_table(&t.db).await.unwrap();
    let now = Utc::now();
    let fresh = partition::partition_by_month(&t.db, now).await.unwrap();
    assert_eq!(fresh.created, vec![month_partition_name(month_start(now))]);
    assert_eq!(fresh.legacy_until, None);
    let later = month_start(now) + Duration::days(75);
    let e = entry("late", later);
    let id = e.id;
    log_activity(&t.db, e).await.unwrap();
    assert_eq!(home(t, id).await, DEFAULT_PARTITION);

    let created = partition::ensure_partitions(&t.db, later).await.unwrap();
    assert_eq!(created.len(), 2, "{created:?}");
    assert_eq!(home(t, id).await, month_partition_name(month_start(later)));
    assert_eq!(count(t, DEFAULT_PARTITION).await, 0);
    assert_eq!(count(t, "activity_log").await, 1);
    assert!(
        partition::ensure_partitions(&t.db, later)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The move of a late month while a writer keeps logging entries of that month: the move
/// succeeds, and every write either fails (PostgreSQL refuses a row routed to the default
/// partition before the attach) or is stored exactly once, in the new month.
async fn a_late_month_moves_while_its_entries_are_written(t: &TestDb) {
    drop_table(&t.db).await.unwrap();
    let now = Utc::now();
    partition::partition_by_month(&t.db, now).await.unwrap();
    let later = month_start(now) + Duration::days(75);
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (db, stop, written) = (t.db.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            let (mut stored, mut failed) = (Vec::new(), 0usize);
            let mut i = 0i64;
            while !stop.load(Ordering::SeqCst) {
                let e = entry(&format!("w{i}"), later + Duration::seconds(i));
                let id = e.id;
                match log_activity(&db, e).await {
                    Ok(()) => {
                        stored.push(id);
                        written.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => failed += 1,
                }
                i += 1;
            }
            (stored, failed)
        })
    };
    let until = |n: usize| {
        let written = written.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while written.load(Ordering::SeqCst) < n {
                assert!(std::time::Instant::now() < deadline, "the writer stalled");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    };
    until(200).await;
    let created = partition::ensure_partitions(&t.db, later).await.unwrap();
    assert_eq!(created.len(), 2, "{created:?}");
    let moved_at = written.load(Ordering::SeqCst);
    until(moved_at + 100).await;
    stop.store(true, Ordering::SeqCst);
    let (stored, failed) = writer.await.unwrap();
    eprintln!(
        "{} entries stored, {failed} writes failed during the move",
        stored.len()
    );
    let month = month_partition_name(month_start(later));
    assert_eq!(count(t, DEFAULT_PARTITION).await, 0);
    assert_eq!(count(t, &month).await, stored.len() as i64);
    assert_eq!(count(t, "activity_log").await, stored.len() as i64);
    for id in [
        stored[0],
        stored[stored.len() / 2],
        stored[stored.len() - 1],
    ] {
        assert_eq!(home(t, id).await, month);
    }
}

/// Bytes of the indexes of `table`.
async fn index_bytes(t: &TestDb, table: &str) -> i64 {
    t.db.query_one_raw(Statement::from_string(
        DbBackend::Postgres,
        format!("SELECT pg_indexes_size('{table}')::bigint AS n"),
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get("", "n")
    .unwrap()
}

/// How many indexes of `table` are partitions of the log's indexes.
async fn attached_indexes(t: &TestDb, table: &str) -> i64 {
    t.db.query_one_raw(Statement::from_string(
        DbBackend::Postgres,
        format!(
            "SELECT COUNT(*) AS n FROM pg_index x JOIN pg_inherits i ON i.inhrelid = x.indexrelid \
             WHERE x.indrelid = '{table}'::regclass"
        ),
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get("", "n")
    .unwrap()
}

/// A closed month's indexes are rebuilt once, smaller, with every entry still read through
/// them and still the partitions of the log's indexes; the open month is left until it closes,
/// and an interrupted rebuild's leftover copy is dropped by the next call.
async fn closed_months_are_packed_once(t: &TestDb) {
    drop_table(&t.db).await.unwrap();
    let now = Utc::now();
    let closed = month_start(month_start(now) - Duration::days(1));
    partition::partition_by_month(&t.db, now).await.unwrap();
    partition::create_partitions(&t.db, closed, now)
        .await
        .unwrap();
    let closed_name = month_partition_name(closed);
    let open_name = month_partition_name(month_start(now));
    // 6,000 entries of 200 teams over the closed month, in time order: inserted into the
    // middle of the tenant-led indexes, whose pages split half full.
    let mut entries = Vec::new();
    for i in 0..6000i64 {
        let mut e = entry(
            &format!("item-{}", i % 300),
            closed + Duration::seconds(i * 60),
        );
        e.team_id = Some(format!("team-{}", i % 200));
        entries.push(e);
    }
    for chunk in entries.chunks(500) {
        bulk_log_activity(&t.db, chunk.to_vec()).await.unwrap();
    }
    log_activity(&t.db, entry("now", now)).await.unwrap();
    let before = index_bytes(t, &closed_name).await;
    let attached_before = attached_indexes(t, &closed_name).await;
    assert!(attached_before >= 6, "{attached_before}");

    // A leftover of an interrupted rebuild: an invalid copy named as REINDEX names it.
    t.db.execute_unprepared(&format!(
        "CREATE INDEX activity_log_leftover_ccnew ON {closed_name} (user_id); \
         UPDATE pg_index SET indisvalid = false \
         WHERE indexrelid = 'activity_log_leftover_ccnew'::regclass"
    ))
    .await
    .unwrap();

    let packed = partition::pack_closed_months(&t.db, now).await.unwrap();
    assert_eq!(packed, vec![closed_name.clone()]);
    let after = index_bytes(t, &closed_name).await;
    assert!(after * 10 < before * 9, "{before} -> {after} bytes");
    // Still the partitions of the log's indexes (primary key included).
    assert_eq!(attached_indexes(t, &closed_name).await, attached_before);
    let open_marked = partition::pack_closed_months(&t.db, next_month(now))
        .await
        .unwrap();
    assert_eq!(
        open_marked,
        vec![open_name],
        "the month closes with the next one"
    );
    let leftover =
        t.db.query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT to_regclass('activity_log_leftover_ccnew')::text AS r",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<Option<String>>("", "r")
        .unwrap();
    assert_eq!(leftover, None);
    // Once: the month is marked.
    assert!(
        partition::pack_closed_months(&t.db, now)
            .await
            .unwrap()
            .is_empty()
    );
    // Read back through the rebuilt indexes.
    let page = load_activity(&t.db, &ActivityQuery::for_team("team-7").limit(100))
        .await
        .unwrap();
    assert_eq!(page.results.len(), 30);
    let item = load_activity(
        &t.db,
        &ActivityQuery::for_team("team-7").item("Setting", "item-7"),
    )
    .await
    .unwrap();
    assert_eq!(item.results.len(), 10);
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Retention drops the current month after archiving it: the archive verifies and holds
/// exactly its entries; the next month and the default partition's entries stay; a second run
/// drops nothing.
async fn retention_archives_and_drops_whole_months(t: &TestDb) {
    drop_table(&t.db).await.unwrap();
    let now = Utc::now();
    let this = month_start(now);
    partition::partition_by_month(&t.db, next_month(this))
        .await
        .unwrap();
    let mut entries = Vec::new();
    for i in 0..5 {
        entries.push(entry(&format!("a{i}"), this + Duration::minutes(i)));
    }
    for i in 0..3 {
        entries.push(entry(
            &format!("b{i}"),
            next_month(this) + Duration::minutes(i),
        ));
    }
    let ancient = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
    entries.push(entry("old", ancient));
    let this_month: Vec<uuid::Uuid> = entries[..5].iter().map(|e| e.id).collect();
    bulk_log_activity(&t.db, entries).await.unwrap();

    let dir = temp_dir();
    let to = ArchiveOptions::new(dir.path(), "unused").compressed(true);
    let dropped = archive_then_drop_partitions(&t.db, next_month(this), &to)
        .await
        .unwrap();
    assert_eq!(dropped.len(), 1);
    let d = &dropped[0];
    assert_eq!(d.partition.name, month_partition_name(this));
    assert_eq!(d.archive.manifest.count, 5);
    let manifest = verify_archive(&d.archive.manifest_path).unwrap();
    assert_eq!(manifest.count, 5);
    let text = {
        use std::io::Read;
        let mut s = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&d.archive.data_path).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    for id in &this_month {
        assert!(text.contains(&id.to_string()), "{id} is not in the archive");
    }
    let left: Vec<String> = t
        .entries()
        .await
        .into_iter()
        .filter_map(|e| e.item_id)
        .collect();
    assert_eq!(left, ["old", "b0", "b1", "b2"]);
    let names: Vec<String> = partition::partitions(&t.db)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(
        names,
        [
            month_partition_name(next_month(this)),
            DEFAULT_PARTITION.to_owned()
        ]
    );
    assert!(
        archive_then_drop_partitions(&t.db, next_month(this), &to)
            .await
            .unwrap()
            .is_empty()
    );
}

/// An entry written into the month after its archive was made: the partition is kept (with
/// that entry), its archive removed, the call fails; the next run archives all six and drops.
async fn a_month_written_after_its_archive_is_kept(t: &TestDb) {
    drop_table(&t.db).await.unwrap();
    let this = month_start(Utc::now());
    partition::partition_by_month(&t.db, this).await.unwrap();
    let entries: Vec<ActivityEntry> = (0..5)
        .map(|i| entry(&format!("a{i}"), this + Duration::minutes(i)))
        .collect();
    bulk_log_activity(&t.db, entries).await.unwrap();

    let dir = temp_dir();
    let writer = t.another_pool(1).await;
    let handle = tokio::runtime::Handle::current();
    let late = entry("late", this + Duration::minutes(30));
    let hook = move |step: ArchiveStep| {
        if step == ArchiveStep::ManifestWritten {
            let e = late.clone();
            tokio::task::block_in_place(|| handle.block_on(log_activity(&writer, e)))
                .map_err(std::io::Error::other)?;
        }
        Ok(())
    };
    let to = ArchiveOptions::new(dir.path(), "unused").on_step(hook);
    let failed = archive_then_drop_partitions(&t.db, next_month(this), &to).await;
    assert!(
        matches!(&failed, Err(activity_seaorm::Error::Archive { .. })),
        "{failed:?}"
    );
    assert_eq!(count(t, &month_partition_name(this)).await, 6);
    assert_eq!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|f| {
                f.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("manifest")
            })
            .count(),
        0,
        "the stale archive was kept"
    );

    let to = ArchiveOptions::new(dir.path(), "unused");
    let dropped = archive_then_drop_partitions(&t.db, next_month(this), &to)
        .await
        .unwrap();
    assert_eq!(dropped[0].archive.manifest.count, 6);
    assert_eq!(count(t, "activity_log").await, 0);
}

/// The opt-in GIN index over `detail`: built concurrently on a plain log, per partition on a
/// partitioned one (and a month created afterwards gets it from the parent); idempotent.
async fn the_detail_index_is_opt_in(t: &TestDb) {
    let gin = |t: &TestDb| {
        let db = t.db.clone();
        async move {
            db.query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT c.relname::text AS name FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE a.amname = 'gin' AND i.indisvalid AND n.nspname = current_schema() \
                 ORDER BY 1",
            ))
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.try_get::<String>("", "name").unwrap())
            .collect::<Vec<_>>()
        }
    };
    drop_table(&t.db).await.unwrap();
    activity_seaorm::schema::create_table(&t.db).await.unwrap();
    assert!(gin(t).await.is_empty(), "created without being asked for");
    activity_seaorm::schema::create_detail_index(&t.db)
        .await
        .unwrap();
    activity_seaorm::schema::create_detail_index(&t.db)
        .await
        .unwrap();
    assert_eq!(gin(t).await, ["activity_log_detail_gin"]);

    drop_table(&t.db).await.unwrap();
    let this = month_start(Utc::now());
    partition::partition_by_month(&t.db, this).await.unwrap();
    activity_seaorm::schema::create_detail_index(&t.db)
        .await
        .unwrap();
    activity_seaorm::schema::create_detail_index(&t.db)
        .await
        .unwrap();
    let later = partition::ensure_partitions(&t.db, next_month(this))
        .await
        .unwrap();
    assert_eq!(later.len(), 1);
    let names = gin(t).await;
    assert!(
        names.contains(&"activity_log_detail_gin".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&format!("{}_detail_gin", month_partition_name(this))),
        "{names:?}"
    );
    assert!(
        names.contains(&format!("{DEFAULT_PARTITION}_detail_gin")),
        "{names:?}"
    );
    // The month created afterwards got one from the parent (named by PostgreSQL).
    assert_eq!(names.len(), 4, "{names:?}");
}

/// SQLite and MariaDB keep the plain table: partitioning is refused with a reason, and the
/// partition retention drops nothing.
async fn other_backends_keep_the_plain_table(t: &TestDb) {
    let refused = partition::partition_by_month(&t.db, Utc::now()).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("PostgreSQL")),
        "{refused:?}"
    );
    assert!(!partition::is_partitioned(&t.db).await.unwrap());
    let dir = temp_dir();
    let to = ArchiveOptions::new(dir.path(), "unused");
    assert!(
        archive_then_drop_partitions(&t.db, Utc::now(), &to)
            .await
            .unwrap()
            .is_empty()
    );
}

tests_on!(convert: converting_a_live_log_loses_nothing on postgres);
tests_on!(late_month: a_late_month_takes_its_entries_from_the_default_partition on postgres);
tests_on!(retention: retention_archives_and_drops_whole_months on postgres);
tests_on!(written_after_archive: a_month_written_after_its_archive_is_kept on postgres);
tests_on!(detail_index: the_detail_index_is_opt_in on postgres);
tests_on!(packed: closed_months_are_packed_once on postgres);
tests_on!(late_month_written: a_late_month_moves_while_its_entries_are_written on postgres);
tests_on!(plain: other_backends_keep_the_plain_table on sqlite, mysql);
