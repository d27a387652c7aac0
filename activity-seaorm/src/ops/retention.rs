//! Retention: delete old entries in short batches, through the append-only guard.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, TransactionSession,
    TransactionTrait,
};

use crate::errors::Error;
use crate::ops::archive::{ArchiveOptions, ArchiveOutcome, Archived, archive};
use crate::schema::partition::{self, Partition};
use crate::schema::table::activity_log::{Column, Entity};

/// Rows deleted per statement by [`prune`]: short statements, short locks.
pub const PRUNE_BATCH: u64 = 5_000;

/// Delete entries older than `older_than` (only of `scopes`; an empty slice means every
/// scope), in batches of
/// [`PRUNE_BATCH`] so no statement holds locks for long. Each batch runs in its own short
/// transaction (a savepoint when `db` is a transaction) that enters
/// [`guard::enter_maintenance`](crate::schema::guard::enter_maintenance), so retention works with the
/// append-only guard installed, and that ends maintenance again before it commits: given the
/// caller's transaction, the rest of that transaction is still refused by the guard (see
/// [`guard`](crate::schema::guard)). Returns how many were deleted.
///
/// Entries the [outbox](crate::outbox) still lists (committed, not yet relayed) or holds as
/// dead letters are kept, and so is everything after the oldest of them: a relay that is behind
/// never finds its entries pruned, and every committed entry reaches the stream. They go in a
/// later run, once relayed.
pub async fn prune<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    older_than: DateTime<Utc>,
    scopes: &[&str],
) -> Result<u64, Error> {
    // Not before the oldest entry the relay has yet to publish: the rows selected are then
    // not the relay's, and the same rows are not selected again batch after batch.
    let unrelayed = crate::outbox::unrelayed(db).await?;
    let older_than = match crate::outbox::oldest_of(db, &unrelayed).await? {
        Some(oldest) if oldest < older_than => {
            tracing::warn!(%oldest, cutoff = %older_than, unrelayed = unrelayed.len(),
                "prune: the relay has not published entries older than the cutoff; they and everything after the oldest are kept");
            oldest
        }
        _ => older_than,
    };
    let mut total = 0;
    loop {
        let txn = db.begin().await?;
        let batch =
            crate::schema::guard::maintenance(&txn, delete_batch(&txn, older_than, scopes)).await;
        let deleted = match batch {
            Ok(Some(deleted)) => deleted,
            Ok(None) => {
                txn.commit().await?;
                return Ok(total);
            }
            Err(e) => {
                // Undo the batch and its maintenance setting before reporting.
                if let Err(rollback) = txn.rollback().await {
                    tracing::warn!(%rollback, "prune: rolling back a failed batch failed");
                }
                return Err(e);
            }
        };
        txn.commit().await?;
        // 0 deleted is not the end: another prune may have taken this batch's rows first (it
        // held their locks); the next select finds what is left.
        total += deleted;
        tracing::debug!(deleted, total, "pruned activity log batch");
    }
}

/// Delete up to [`PRUNE_BATCH`] old entries: how many went, or `None` when none is left.
async fn delete_batch<C: ConnectionTrait>(
    txn: &C,
    older_than: DateTime<Utc>,
    scopes: &[&str],
) -> Result<Option<u64>, Error> {
    let mut select = Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::CreatedAt.lt(older_than))
        // No ORDER BY: any old rows will do, and no index leads with `created_at`.
        .limit(PRUNE_BATCH);
    if !scopes.is_empty() {
        select = select.filter(Column::Scope.is_in(scopes.iter().copied()));
    }
    let mut ids: Vec<uuid::Uuid> = select.into_tuple().all(txn).await?;
    if ids.is_empty() {
        return Ok(None);
    }
    // An entry committed since with a time before the cutoff, not relayed yet: kept. When
    // that is all this batch found, stop: the next prune takes the rest.
    let unrelayed = crate::outbox::unrelayed(txn).await?;
    ids.retain(|id| !unrelayed.contains(id));
    if ids.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        Entity::delete_many()
            .filter(Column::Id.is_in(ids))
            .exec(txn)
            .await?
            .rows_affected,
    ))
}

/// A month partition [`archive_then_drop_partitions`] archived and dropped.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DroppedPartition {
    /// The partition (table) dropped.
    pub partition: Partition,
    /// Its verified archive (the manifest's `count` is the number of entries dropped).
    pub archive: ArchiveOutcome,
}

/// PostgreSQL, partitioned log ([`schema::partition`](crate::schema::partition)): retention a
/// month at a time. Every partition that ends at or before `before` (oldest first; the legacy
/// partition of a converted log once all of it is that old) is
///
/// 1. **archived** with `archive_to`'s directory, compression and step hook, under the
///    partition's name (`<dir>/<partition>.jsonl[.gz]`, the name given is not used) with its manifest and verified, exactly as
///    [`archive_then_prune`](crate::ops::archive::archive_then_prune) does (resumed from a
///    complete archive of an earlier, interrupted run);
/// 2. **checked, detached and dropped in one transaction**: the partition is locked against
///    writes (`SHARE`: only writes into that month wait; the current month's go on), it must
///    hold exactly the archived ids, then it is detached (a brief exclusive lock on the log,
///    under a lock timeout, retried) and dropped. No row-by-row `DELETE`, no dead tuples for
///    `VACUUM`, a few kilobytes of WAL. A crash anywhere leaves the partition attached, and the
///    next run resumes from the verified archive. A partition holding anything else (an entry
///    written into the month after the archive was made) is left as it was, its archive is
///    removed (every entry is still in the log) and the call fails with [`Error::Archive`]:
///    the next run archives the month again. Nothing unarchived is ever dropped, and nothing
///    the relay has yet to publish: while the [outbox](crate::outbox) lists an entry before
///    a month's end, that month is neither archived nor dropped (the call fails; run again
///    once the relay has caught up).
///
/// Entries of the default partition (dates no month held) are left to [`prune`]. On a log that
/// is not partitioned, or on SQLite and MySQL, it drops nothing and returns an empty list (use
/// [`archive_then_prune`](crate::ops::archive::archive_then_prune) there).
///
/// ```no_run
/// # async fn demo() -> Result<(), activity_seaorm::Error> {
/// use activity_seaorm::ops::{archive::ArchiveOptions, retention::archive_then_drop_partitions};
/// let db = sea_orm::Database::connect("postgres://app@localhost/app").await?;
/// let cutoff = chrono::Utc::now() - chrono::Duration::days(365);
/// let to = ArchiveOptions::new("/var/archive/activity", "unused").compressed(true);
/// for dropped in archive_then_drop_partitions(&db, cutoff, &to).await? {
///     println!("{}: {} entries archived and dropped", dropped.partition.name,
///         dropped.archive.manifest.count);
/// }
/// # Ok(()) }
/// ```
pub async fn archive_then_drop_partitions<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    before: DateTime<Utc>,
    archive_to: &ArchiveOptions,
) -> Result<Vec<DroppedPartition>, Error> {
    let dir = archive_to.dir().to_path_buf();
    let mut dropped = Vec::new();
    for partition in partition::partitions(db).await? {
        let Some(to) = partition.to else { continue };
        if to > before {
            continue;
        }
        let opts = archive_to.clone().named(partition.name.clone());
        let query = activity_core::ActivityQuery::unscoped().between(partition.from, None);
        let Archived {
            manifest,
            ids,
            resumed,
            manifest_path,
            lock: _lock,
        } = archive(db, &query, Some(&partition.name), to, &opts).await?;
        if let Err(e) = drop_partition(db, &partition.name, &ids).await {
            if matches!(e, Error::Archive { .. }) {
                let (data, manifest_file) = (dir.join(&manifest.file), manifest_path.clone());
                for file in [manifest_file, data] {
                    if let Err(remove) = std::fs::remove_file(&file) {
                        tracing::warn!(path = %file.display(), %remove, "could not remove a stale archive");
                    }
                }
            }
            return Err(e);
        }
        tracing::info!(
            partition = partition.name,
            entries = manifest.count,
            "activity_log: archived and dropped a partition"
        );
        let data_path = dir.join(&manifest.file);
        dropped.push(DroppedPartition {
            partition,
            archive: ArchiveOutcome {
                deleted: manifest.count,
                manifest,
                data_path,
                manifest_path,
                resumed,
            },
        });
    }
    Ok(dropped)
}

/// In one transaction: lock `table` against writes, check it holds exactly `ids`, detach it and
/// drop it. The exclusive lock on the log (detach) is requested last, under a lock timeout, and
/// the whole is retried while it is not granted.
async fn drop_partition<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    table: &str,
    ids: &[uuid::Uuid],
) -> Result<(), Error> {
    let archived = IdDigest::of(ids);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let txn = db.begin().await?;
        let step = async {
            let started = std::time::Instant::now();
            txn.execute_unprepared(&format!("LOCK TABLE \"{table}\" IN SHARE MODE"))
                .await?;
            let stored = IdDigest::stored(&txn, table).await?;
            let checked = started.elapsed();
            if stored != archived {
                return Err(Error::Archive {
                    path: table.into(),
                    why: format!(
                        "the partition holds {} entries, its archive {} (or other ids): entries \
                         were written into the month after it was archived; it was left in the \
                         log, run again to archive it anew",
                        stored.count, archived.count
                    ),
                });
            }
            // The archive was refused while the outbox listed entries of the month; one
            // listed since (committed with an old time, not relayed yet) keeps it too.
            let unrelayed = crate::outbox::unrelayed(&txn).await?;
            let waiting = ids.iter().filter(|id| unrelayed.contains(id)).count();
            if waiting > 0 {
                return Err(Error::Archive {
                    path: table.into(),
                    why: format!(
                        "{waiting} of the partition's entries are not relayed yet: it was left \
                         in the log, run again once the relay has caught up"
                    ),
                });
            }
            txn.execute_unprepared("SET LOCAL lock_timeout = '500ms'")
                .await?;
            txn.execute_unprepared(&format!(
                "ALTER TABLE activity_log DETACH PARTITION \"{table}\""
            ))
            .await?;
            txn.execute_unprepared(&format!("DROP TABLE \"{table}\""))
                .await?;
            tracing::debug!(
                partition = table,
                check_ms = checked.as_millis() as u64,
                detach_and_drop_ms = (started.elapsed() - checked).as_millis() as u64,
                "activity_log: partition checked, detached and dropped (commit follows)"
            );
            Ok(())
        }
        .await;
        match step {
            Ok(()) => {
                txn.commit().await?;
                return Ok(());
            }
            Err(e) => {
                txn.rollback().await?;
                let busy = matches!(&e, Error::Db(db) if db.to_string().contains("lock timeout"));
                if !busy || attempt >= 20 {
                    return Err(e);
                }
                tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt)))
                    .await;
            }
        }
    }
}

/// How many ids, and the sums of their two 64-bit halves: computed by the database over a
/// partition (no million ids sent to the client) and here over an archive's ids. Entries leave
/// a month only through the library's maintenance, so an entry written after the archive
/// changes the count; the sums tell other ids apart.
#[derive(Debug, PartialEq, Eq)]
struct IdDigest {
    count: i64,
    high: i128,
    low: i128,
}

impl IdDigest {
    fn of(ids: &[uuid::Uuid]) -> Self {
        let mut digest = IdDigest {
            count: i64::try_from(ids.len()).unwrap_or(i64::MAX),
            high: 0,
            low: 0,
        };
        for id in ids {
            let (high, low) = id.as_u64_pair();
            // PostgreSQL reads each half as a signed bigint.
            digest.high += i128::from(high.cast_signed());
            digest.low += i128::from(low.cast_signed());
        }
        digest
    }

    async fn stored<C: ConnectionTrait>(db: &C, table: &str) -> Result<Self, Error> {
        let half = |from: u8| {
            format!(
                "COALESCE(SUM(('x' || encode(substring(uuid_send(id) FROM {from} FOR 8), 'hex'))\
                 ::bit(64)::bigint), 0)::text"
            )
        };
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!(
                    "SELECT COUNT(*) AS n, {} AS high, {} AS low FROM \"{table}\"",
                    half(1),
                    half(9)
                ),
            ))
            .await?
            .ok_or_else(|| Error::Db(sea_orm::DbErr::RecordNotFound(table.into())))?;
        let parse = |column: &str| -> Result<i128, Error> {
            let text: String = row.try_get("", column)?;
            text.parse().map_err(|_| Error::Archive {
                path: table.into(),
                why: format!("unreadable id sum {text}"),
            })
        };
        Ok(IdDigest {
            count: row.try_get("", "n")?,
            high: parse("high")?,
            low: parse("low")?,
        })
    }
}
