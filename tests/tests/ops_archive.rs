//! Archive, then prune, on every backend: the archive holds exactly the old
//! entries of the query, byte-exact; a failure at each step (hook, damaged or missing file, a
//! database error while deleting) loses nothing and deletes nothing unarchived, and a re-run
//! finishes the job.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use activity_seaorm::ops::archive::{
    ArchiveCodec, ArchiveOptions, ArchiveStep, MANIFEST_VERSION, MANIFEST_VERSION_ZSTD,
    archive_then_prune, verify_archive,
};
use activity_seaorm::{ActivityEntry, ActivityQuery, Error, activity_log};
use activity_tests::{TestDb, backend_tests};
use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};

fn cutoff() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// `old` entries of `team` in 2025 (the last one a microsecond before the cutoff) and `new`
/// ones from the cutoff on (the first exactly at it: not archived).
fn seed_entries(team: &str, old: usize, new: usize) -> Vec<ActivityEntry> {
    let mut out = Vec::new();
    for i in 0..old + new {
        let created_at = if i < old {
            cutoff() - Duration::days((old - i) as i64) + Duration::days(1)
                - Duration::microseconds(1)
        } else {
            cutoff() + Duration::hours((i - old) as i64)
        };
        let mut e = ActivityEntry::new("Doc", "updated")
            .with_item_id(format!("{i}"))
            .with_name(format!("doc \"{i}\" ✓"));
        e.created_at = created_at;
        e.team_id = Some(team.into());
        e.user_id = Some(format!("u{}", i % 3));
        out.push(e);
    }
    out
}

async fn insert(t: &TestDb, entries: &[ActivityEntry]) {
    let models: Vec<activity_log::ActiveModel> = entries.iter().cloned().map(Into::into).collect();
    activity_log::Entity::insert_many(models)
        .exec_without_returning(&t.db)
        .await
        .unwrap();
}

async fn team_count(t: &TestDb, team: &str) -> u64 {
    activity_log::Entity::find()
        .filter(activity_log::Column::TeamId.eq(team))
        .count(&t.db)
        .await
        .unwrap()
}

async fn ids_in_db(t: &TestDb, team: &str) -> BTreeSet<uuid::Uuid> {
    activity_log::Entity::find()
        .filter(activity_log::Column::TeamId.eq(team))
        .all(&t.db)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect()
}

fn fresh_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("archive-test-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The entries in a data file, decompressed by its extension.
fn read_archive(path: &Path) -> Vec<ActivityEntry> {
    let file = std::fs::File::open(path).unwrap();
    let name = path.to_string_lossy();
    let reader: Box<dyn BufRead> = if name.ends_with(".gz") {
        Box::new(BufReader::new(flate2::read::GzDecoder::new(file)))
    } else if name.ends_with(".zst") {
        Box::new(BufReader::new(
            zstd::stream::read::Decoder::new(file).unwrap(),
        ))
    } else {
        Box::new(BufReader::new(file))
    };
    reader
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------

/// A zstd archive: `.jsonl.zst`, a version-2 manifest naming the codec (an older library
/// refuses it by version instead of reading it as gzip), byte-exact entries, and a re-run
/// that finds and verifies it.
async fn zstd_archives_hold_the_same_entries(t: &TestDb) {
    let seeded = seed_entries("z", 25, 6);
    insert(t, &seeded).await;
    let dir = fresh_dir();
    let opts = ArchiveOptions::new(&dir, "zstd-2025").codec(ArchiveCodec::Zstd);
    let query = ActivityQuery::for_team("z");
    let done = archive_then_prune(&t.db, &query, cutoff(), &opts)
        .await
        .unwrap();
    assert_eq!((done.manifest.count, done.deleted), (25, 25));
    assert!(done.data_path.ends_with("zstd-2025.jsonl.zst"));
    assert_eq!(done.manifest.version, MANIFEST_VERSION_ZSTD);
    assert_eq!(done.manifest.data_codec(), ArchiveCodec::Zstd);
    let text = std::fs::read_to_string(opts.manifest_path()).unwrap();
    assert!(text.contains("\"codec\": \"zstd\""), "{text}");
    assert_eq!(read_archive(&done.data_path), seeded[..25].to_vec());
    assert_eq!(verify_archive(&done.manifest_path).unwrap(), done.manifest);
    let again = archive_then_prune(&t.db, &query, cutoff(), &opts)
        .await
        .unwrap();
    assert!(again.resumed);
    assert_eq!((again.manifest.count, again.deleted), (25, 0));
    assert_eq!(team_count(t, "z").await, 6);
    // Plain and gzip manifests keep version 1 (what older libraries read).
    let plain = ArchiveOptions::new(&dir, "plain-2025").compressed(true);
    let done = archive_then_prune(&t.db, &query, cutoff(), &plain)
        .await
        .unwrap();
    assert_eq!(done.manifest.version, MANIFEST_VERSION);
    assert_eq!(done.manifest.data_codec(), ArchiveCodec::Gzip);
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn archives_exactly_the_old_entries(t: &TestDb) {
    let seeded = seed_entries("t", 25, 6);
    insert(t, &seeded).await;
    insert(t, &seed_entries("other", 4, 0)).await;
    for compressed in [true, false] {
        let dir = fresh_dir();
        let opts = ArchiveOptions::new(&dir, "activity-2025")
            .compressed(compressed)
            .delete_batch(7);
        let query = ActivityQuery::for_team("t");
        let done = archive_then_prune(&t.db, &query, cutoff(), &opts)
            .await
            .unwrap();
        let expect = if compressed { 25 } else { 0 };
        assert_eq!(done.manifest.count, expect, "compressed={compressed}");
        assert_eq!(done.deleted, expect);
        assert!(!done.resumed);
        assert_eq!(done.manifest.compressed, compressed);
        assert!(done.data_path.ends_with(if compressed {
            "activity-2025.jsonl.gz"
        } else {
            "activity-2025.jsonl"
        }));
        // Only the query's tenant, only before the cutoff.
        assert_eq!(team_count(t, "t").await, 6);
        assert_eq!(team_count(t, "other").await, 4);
        assert_eq!(verify_archive(&done.manifest_path).unwrap(), done.manifest);
        let archived = read_archive(&done.data_path);
        if compressed {
            // Byte-exact: every archived entry equals what was stored, oldest first.
            assert_eq!(archived, seeded[..25].to_vec());
            assert_eq!(done.manifest.first_created_at, Some(seeded[0].created_at));
            assert_eq!(done.manifest.last_created_at, Some(seeded[24].created_at));
            assert_eq!(
                done.manifest.last_created_at,
                Some(cutoff() - Duration::microseconds(1))
            );
            assert_eq!(done.manifest.sha256.len(), 64);
            assert_eq!(done.manifest.query["team_id"], "t");
        } else {
            assert!(archived.is_empty());
        }
        // A re-run finds the complete archive, verifies it and deletes nothing more.
        let again = archive_then_prune(&t.db, &query, cutoff(), &opts)
            .await
            .unwrap();
        assert!(again.resumed);
        assert_eq!((again.manifest.count, again.deleted), (expect, 0));
        // Another cutoff under the same name is refused, before any delete.
        let other = archive_then_prune(&t.db, &query, cutoff() + Duration::days(1), &opts).await;
        assert!(matches!(other, Err(Error::Archive { .. })), "{other:?}");
        assert_eq!(team_count(t, "t").await, 6);
        std::fs::remove_dir_all(&dir).unwrap();
    }
    // Without a tenant, the query is refused like a read.
    let dir = fresh_dir();
    let err = archive_then_prune(
        &t.db,
        &ActivityQuery::default(),
        cutoff(),
        &ArchiveOptions::new(&dir, "x"),
    )
    .await
    .unwrap_err();
    assert!(err.is_invalid_query(), "{err}");
    assert_eq!(team_count(t, "other").await, 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Stop the run right after each step (as a crash there would), check that every seeded entry
/// is still in the database or in a verified archive, then re-run to completion.
async fn a_failure_at_each_step_loses_nothing(t: &TestDb) {
    let steps = [
        ArchiveStep::Written,
        ArchiveStep::Published,
        ArchiveStep::Verified,
        ArchiveStep::ManifestWritten,
        ArchiveStep::BatchDeleted { deleted: 5 },
        ArchiveStep::BatchDeleted { deleted: 10 },
    ];
    for (i, fail_at) in steps.into_iter().enumerate() {
        let team = format!("t{i}");
        let seeded = seed_entries(&team, 12, 3);
        insert(t, &seeded).await;
        let all: BTreeSet<_> = seeded.iter().map(|e| e.id).collect();
        let old: BTreeSet<_> = seeded[..12].iter().map(|e| e.id).collect();
        let dir = fresh_dir();
        let query = ActivityQuery::for_team(&team);
        let codec = [ArchiveCodec::Gzip, ArchiveCodec::Plain, ArchiveCodec::Zstd][i % 3];
        let opts = ArchiveOptions::new(&dir, "yearly")
            .codec(codec)
            .delete_batch(5);
        let failing = opts.clone().on_step(move |step| {
            if step == fail_at {
                Err(std::io::Error::other(format!("crash after {step:?}")))
            } else {
                Ok(())
            }
        });
        let err = archive_then_prune(&t.db, &query, cutoff(), &failing)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Io(_)), "{fail_at:?}: {err}");

        // Nothing lost: what left the database is in a verified archive.
        let in_db = ids_in_db(t, &team).await;
        let deleted: BTreeSet<_> = all.difference(&in_db).copied().collect();
        let expect_deleted = match fail_at {
            ArchiveStep::BatchDeleted { deleted } => deleted as usize,
            _ => 0,
        };
        assert_eq!(deleted.len(), expect_deleted, "{fail_at:?}");
        if !deleted.is_empty() {
            verify_archive(opts.manifest_path()).unwrap();
            let archived: BTreeSet<_> = read_archive(&opts.data_path())
                .iter()
                .map(|e| e.id)
                .collect();
            assert!(deleted.is_subset(&archived), "{fail_at:?}");
        }
        // No manifest unless the archive was complete and verified.
        let complete = matches!(
            fail_at,
            ArchiveStep::ManifestWritten | ArchiveStep::BatchDeleted { .. }
        );
        assert_eq!(opts.manifest_path().exists(), complete, "{fail_at:?}");

        // The re-run finishes: exactly the old entries archived and gone, the rest kept.
        let done = archive_then_prune(&t.db, &query, cutoff(), &opts)
            .await
            .unwrap();
        assert_eq!(done.resumed, complete, "{fail_at:?}");
        assert_eq!(done.manifest.count, 12);
        assert_eq!(done.deleted as usize, 12 - expect_deleted, "{fail_at:?}");
        let archived = read_archive(&done.data_path);
        assert_eq!(archived, seeded[..12].to_vec(), "{fail_at:?}");
        let in_db = ids_in_db(t, &team).await;
        assert_eq!(
            in_db,
            all.difference(&old).copied().collect(),
            "{fail_at:?}"
        );
        // No temp file is left behind as the archive.
        verify_archive(opts.manifest_path()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// A complete archive whose file is later damaged or removed: the re-run deletes nothing.
async fn a_damaged_or_missing_archive_deletes_nothing(t: &TestDb) {
    for damage in ["flip", "truncate", "remove"] {
        let team = format!("d-{damage}");
        insert(t, &seed_entries(&team, 8, 2)).await;
        let dir = fresh_dir();
        let query = ActivityQuery::for_team(&team);
        let opts = ArchiveOptions::new(&dir, "yearly");
        let stop = opts.clone().on_step(|step| match step {
            ArchiveStep::ManifestWritten => Err(std::io::Error::other("stop before delete")),
            _ => Ok(()),
        });
        archive_then_prune(&t.db, &query, cutoff(), &stop)
            .await
            .unwrap_err();
        assert_eq!(team_count(t, &team).await, 10);
        let path = opts.data_path();
        match damage {
            "flip" => {
                let mut bytes = std::fs::read(&path).unwrap();
                let at = bytes.len() / 2;
                bytes[at] ^= 0x01;
                std::fs::write(&path, bytes).unwrap();
            }
            "truncate" => {
                let text = std::fs::read_to_string(&path).unwrap();
                let keep: Vec<&str> = text.lines().take(3).collect();
                std::fs::write(&path, keep.join("\n") + "\n").unwrap();
            }
            _ => std::fs::remove_file(&path).unwrap(),
        }
        let err = archive_then_prune(&t.db, &query, cutoff(), &opts)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Archive { .. }), "{damage}: {err}");
        assert!(verify_archive(opts.manifest_path()).is_err(), "{damage}");
        assert_eq!(team_count(t, &team).await, 10, "{damage}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// A real database error in the middle of deleting (the table is renamed away after the first
/// batch): the error is returned, committed batches stay deleted and archived, the re-run
/// deletes the rest.
async fn a_database_error_while_deleting_is_resumed(t: &TestDb) {
    let seeded = seed_entries("db", 9, 1);
    insert(t, &seeded).await;
    let dir = fresh_dir();
    let query = ActivityQuery::for_team("db");
    let opts = ArchiveOptions::new(&dir, "yearly")
        .compressed(true)
        .delete_batch(4);
    let side = t.another_pool(1).await;
    let renamed = Arc::new(AtomicBool::new(false));
    let flag = renamed.clone();
    let failing = opts.clone().on_step(move |step| {
        if step == (ArchiveStep::BatchDeleted { deleted: 4 }) {
            let side = side.clone();
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    side.execute_unprepared("ALTER TABLE activity_log RENAME TO activity_log_away")
                        .await
                })
            })
            .map_err(std::io::Error::other)?;
            flag.store(true, Ordering::SeqCst);
        }
        Ok(())
    });
    let err = archive_then_prune(&t.db, &query, cutoff(), &failing)
        .await
        .unwrap_err();
    assert!(renamed.load(Ordering::SeqCst));
    assert!(matches!(err, Error::Db(_)), "{err}");
    t.db.execute_unprepared("ALTER TABLE activity_log_away RENAME TO activity_log")
        .await
        .unwrap();
    assert_eq!(team_count(t, "db").await, 6);

    let done = archive_then_prune(&t.db, &query, cutoff(), &opts)
        .await
        .unwrap();
    assert!(done.resumed);
    assert_eq!((done.manifest.count, done.deleted), (9, 5));
    assert_eq!(team_count(t, "db").await, 1);
    assert_eq!(read_archive(&done.data_path), seeded[..9].to_vec());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One run per archive name at a time: while another run holds the name's lock, a run refuses
/// to start (nothing written, nothing deleted). A run removes its lock however it ends.
/// One run per archive name, held by an OS lock: while a run in another process holds it, a
/// second run is refused and deletes nothing; once that process is killed outright (SIGKILL,
/// mid-run, its temp file left behind), the next run proceeds — before, a killed run's lock file
/// blocked every later run. Files are private to their owner, and no temp file is left.
async fn one_run_per_archive_name(t: &TestDb) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let seeded = seed_entries("locked", 4, 1);
    insert(t, &seeded).await;
    let dir = fresh_dir();
    let query = ActivityQuery::for_team("locked");
    let opts = ArchiveOptions::new(&dir, "yearly");
    let (url, schema) = t.url();
    let mut child = Command::new(env!("CARGO_BIN_EXE_archive_run"))
        .args([url, schema.unwrap_or("-")])
        .arg(&dir)
        .args(["yearly", "locked"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the archive run");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "written", "the child stopped after writing");
    let err = archive_then_prune(&t.db, &query, cutoff(), &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Archive { .. }), "{err}");
    assert!(err.to_string().contains("another run"), "{err}");
    assert_eq!(team_count(t, "locked").await, 5, "nothing deleted");
    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    let done = archive_then_prune(&t.db, &query, cutoff(), &opts)
        .await
        .unwrap();
    assert_eq!((done.manifest.count, done.deleted), (4, 4));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["yearly.jsonl", "yearly.lock", "yearly.manifest.json"],
        "no temp file left, the killed run's included"
    );
    #[cfg(unix)]
    for name in &names {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} is {mode:o}");
    }
    // A failing run releases the lock too.
    let other = ActivityQuery::for_team("nobody");
    let failing =
        ArchiveOptions::new(&dir, "other").on_step(|_| Err(std::io::Error::other("crash")));
    assert!(
        archive_then_prune(&t.db, &other, cutoff(), &failing)
            .await
            .is_err()
    );
    assert!(
        archive_then_prune(&t.db, &other, cutoff(), &ArchiveOptions::new(&dir, "other"))
            .await
            .is_ok(),
        "released after a failure"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

backend_tests!(
    one_run_per_archive_name,
    archives_exactly_the_old_entries,
    a_failure_at_each_step_loses_nothing,
    a_damaged_or_missing_archive_deletes_nothing,
    a_database_error_while_deleting_is_resumed,
    zstd_archives_hold_the_same_entries,
);
