//! PostgreSQL: `activity_log` partitioned by month, so retention drops a month instead of
//! deleting it row by row.
//!
//! A large log pruned with `DELETE` writes every deleted row to the WAL, leaves the table and its
//! indexes full of dead tuples for `VACUUM`, and holds row locks for as long as it runs.
//! Partitioned by `created_at`, a month that leaves retention is one table: it is archived and
//! verified, detached and dropped (`ops::retention::archive_then_drop_partitions`), which writes
//! almost nothing to the WAL whatever the month holds. Every read is unchanged: the queries
//! name `activity_log`, and the partition key in their time bounds lets the planner skip months.
//!
//! **Layout.** `activity_log` becomes `PARTITION BY RANGE (created_at)` with the primary key
//! `(id, created_at)` (PostgreSQL requires the partition key in every unique constraint; ids are
//! UUID v7, unique by themselves). One partition per calendar month (UTC), named
//! `activity_log_pYYYY_MM`, and a default partition, `activity_log_default`, that takes any
//! entry no month holds (an import of old entries, a month not created ahead): the log never
//! refuses an entry for its date, which would fail the caller's change.
//!
//! **Converting an existing log** ([`partition_by_month`], or the `PartitionByMonth` migration
//! of feature `migration`) never copies it and never blocks writers for longer than a brief
//! catalogue lock: the existing table becomes the partition `activity_log_legacy` holding
//! everything before the next month. What takes time runs beside the writers (a unique index on
//! `(id, created_at)` built `CONCURRENTLY`, a `CHECK` constraint validated under a lock that
//! lets writes through); what needs an exclusive lock (renames, the attach, which the validated
//! constraint makes a catalogue change) runs in one short transaction under a `lock_timeout`,
//! retried, so a long transaction of a writer makes the conversion wait, never the writers.
//! The legacy partition leaves retention by `DELETE` (`ops::retention::prune`) until all of it is
//! older than the cutoff, then it is dropped like a month.
//!
//! **Maintenance.** [`ensure_partitions`] creates the months ahead; call it from a daily job
//! (and at start-up). A month created late (its entries already in the default partition)
//! takes them over in one transaction. [`pack_closed_months`] rebuilds a closed month's
//! indexes once, packed (about a third smaller).
//!
//! SQLite and MySQL/MariaDB keep the plain table: these functions return an error there.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use sea_orm::sea_query::PostgresQueryBuilder;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionSession,
    TransactionTrait,
};

use crate::schema::{guard, indexes, table_definition, table_exists};

/// The partition that holds every entry no month partition holds.
pub const DEFAULT_PARTITION: &str = "activity_log_default";

/// The partition an existing log becomes when it is converted ([`partition_by_month`]).
pub const LEGACY_PARTITION: &str = "activity_log_legacy";

/// How long a step that needs an exclusive lock waits for it before giving up and retrying
/// (writers queue behind a waiting lock request, so the wait is kept short).
const LOCK_TIMEOUT: &str = "500ms";

/// How often such a step is tried before the call fails.
const LOCK_ATTEMPTS: u32 = 20;

/// One partition of a partitioned `activity_log`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Partition {
    /// Table name.
    pub name: String,
    /// First instant it holds (`None`: from the beginning, the legacy partition).
    pub from: Option<DateTime<Utc>>,
    /// First instant it no longer holds (`None` for the default partition).
    pub to: Option<DateTime<Utc>>,
    /// Whether it is the default partition.
    pub is_default: bool,
}

/// What [`partition_by_month`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Partitioned {
    /// An existing log became [`LEGACY_PARTITION`], holding everything before this instant.
    pub legacy_until: Option<DateTime<Utc>>,
    /// Month partitions created.
    pub created: Vec<String>,
    /// The log was partitioned already (nothing converted).
    pub already: bool,
}

fn postgres_only<C: ConnectionTrait>(db: &C, what: &str) -> Result<(), DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        Ok(())
    } else {
        Err(DbErr::Custom(format!(
            "{what}: partitioning is for PostgreSQL; SQLite and MySQL keep the plain table and \
             retention by DELETE (ops::retention::prune)"
        )))
    }
}

/// Whether `activity_log` is a partitioned table.
pub async fn is_partitioned<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(false);
    }
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT c.relkind::text AS kind FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname = 'activity_log' AND n.nspname = current_schema()",
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get::<String>("", "kind")? == "p",
        None => false,
    })
}

/// The first instant of `at`'s month (UTC).
pub fn month_start(at: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(at)
}

/// The first instant of the month after `at`'s.
pub fn next_month(at: DateTime<Utc>) -> DateTime<Utc> {
    let (year, month) = if at.month() == 12 {
        (at.year() + 1, 1)
    } else {
        (at.year(), at.month() + 1)
    };
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .single()
        .unwrap_or(at)
}

/// The name of the partition of the month starting at `from`.
pub fn month_partition_name(from: DateTime<Utc>) -> String {
    format!("activity_log_p{:04}_{:02}", from.year(), from.month())
}

fn literal(at: DateTime<Utc>) -> String {
    format!("'{}'", at.format("%Y-%m-%d %H:%M:%S%.6f+00"))
}

/// The partitions of `activity_log`, oldest first, the default one last. Empty when the log is
/// not partitioned.
pub async fn partitions<C: ConnectionTrait + TransactionTrait>(
    db: &C,
) -> Result<Vec<Partition>, DbErr> {
    if !is_partitioned(db).await? {
        return Ok(Vec::new());
    }
    // Bounds are printed in the session's time zone: read them in UTC.
    let txn = db.begin().await?;
    // Put back after: given a caller's transaction this is a savepoint, which `SET LOCAL`
    // outlives.
    let zone: String = txn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_setting('TimeZone') AS zone",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("no time zone".into()))?
        .try_get("", "zone")?;
    txn.execute_unprepared("SET LOCAL TimeZone = 'UTC'").await?;
    let rows = txn
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT c.relname::text AS name, pg_get_expr(c.relpartbound, c.oid) AS bound \
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_class p ON p.oid = i.inhparent \
             JOIN pg_namespace n ON n.oid = p.relnamespace \
             WHERE p.relname = 'activity_log' AND n.nspname = current_schema()",
        ))
        .await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT set_config('TimeZone', $1, true)",
        [zone.into()],
    ))
    .await?;
    txn.commit().await?;
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get("", "name")?;
        let bound: String = row.try_get("", "bound")?;
        found.push(parse_bound(name, &bound)?);
    }
    found.sort_by(|a, b| {
        (a.is_default, a.from.is_some(), a.from).cmp(&(b.is_default, b.from.is_some(), b.from))
    });
    Ok(found)
}

/// `FOR VALUES FROM ('…') TO ('…')`, `FOR VALUES FROM (MINVALUE) TO ('…')` or `DEFAULT`.
fn parse_bound(name: String, bound: &str) -> Result<Partition, DbErr> {
    if bound.trim() == "DEFAULT" {
        return Ok(Partition {
            name,
            from: None,
            to: None,
            is_default: true,
        });
    }
    let unreadable = || DbErr::Custom(format!("partition {name}: unreadable bound {bound}"));
    let values: Vec<&str> = bound
        .split(['(', ')'])
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "FOR VALUES FROM" && *s != "TO")
        .collect();
    let [from, to] = values[..] else {
        return Err(unreadable());
    };
    let parse = |v: &str| -> Result<Option<DateTime<Utc>>, DbErr> {
        if v == "MINVALUE" {
            return Ok(None);
        }
        let text = v.trim_matches('\'');
        DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z")
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| unreadable())
    };
    Ok(Partition {
        from: parse(from)?,
        to: parse(to)?.map(Some).ok_or_else(unreadable)?,
        is_default: false,
        name,
    })
}

/// Run `statements` in one transaction under a short `lock_timeout`, retried while the lock is
/// not granted (SQLSTATE `55P03`): the writers never queue behind this call for longer than
/// the timeout.
async fn briefly<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    statements: &[String],
) -> Result<(), DbErr> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let txn = db.begin().await?;
        let mut result = txn
            .execute_unprepared(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            .await
            .map(drop);
        for sql in statements {
            if result.is_err() {
                break;
            }
            result = txn.execute_unprepared(sql).await.map(drop);
        }
        match result {
            Ok(()) => return txn.commit().await,
            Err(e) => {
                txn.rollback().await?;
                let busy =
                    e.to_string().contains("lock timeout") || e.to_string().contains("55P03");
                if !busy || attempt >= LOCK_ATTEMPTS {
                    return Err(e);
                }
                tracing::debug!(attempt, "activity_log: waiting for a brief lock, retrying");
                tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt)))
                    .await;
            }
        }
    }
}

/// `activity_log`'s columns, quoted, in order: a copy between its partitions names them.
async fn parent_columns<C: ConnectionTrait>(db: &C) -> Result<String, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) AS columns \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname = 'activity_log' AND n.nspname = current_schema() \
             AND a.attnum > 0 AND NOT a.attisdropped",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("activity_log has no columns".into()))?;
    row.try_get::<Option<String>>("", "columns")?
        .ok_or_else(|| DbErr::Custom("activity_log has no columns".into()))
}

/// The statements that create the partitioned parent `activity_log` and its indexes (each
/// index created on the parent is created on, or matched with an equal index of, every
/// partition).
fn parent_statements() -> Vec<String> {
    let mut table = table_definition(DbBackend::Postgres, false);
    table.primary_key(
        sea_orm::sea_query::Index::create()
            .name("activity_log_pkey")
            .col(crate::schema::activity_log::Column::Id)
            .col(crate::schema::activity_log::Column::CreatedAt),
    );
    let mut out = vec![format!(
        "{} PARTITION BY RANGE (created_at)",
        table.to_string(PostgresQueryBuilder)
    )];
    for index in indexes(DbBackend::Postgres) {
        out.push(index.to_string(PostgresQueryBuilder));
    }
    out
}

/// Partition `activity_log` by month (see the [module docs](self)), then create the months
/// up to `through` ([`ensure_partitions`]). No table yet: it is created partitioned. Already
/// partitioned: only the months are ensured. Call it outside a transaction (it builds an index
/// concurrently); safe to run again after an interruption at any step.
pub async fn partition_by_month<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    through: DateTime<Utc>,
) -> Result<Partitioned, DbErr> {
    postgres_only(db, "partition_by_month")?;
    if is_partitioned(db).await? {
        return Ok(Partitioned {
            created: ensure_partitions(db, through).await?,
            already: true,
            ..Partitioned::default()
        });
    }
    if !table_exists(db).await? {
        let mut statements = parent_statements();
        statements.push(format!(
            "CREATE TABLE {DEFAULT_PARTITION} PARTITION OF activity_log DEFAULT"
        ));
        briefly(db, &statements).await?;
        crate::schema::outbox::create_table(db).await?;
        return Ok(Partitioned {
            created: ensure_partitions(db, through).await?,
            ..Partitioned::default()
        });
    }

    // An existing log: bring it to this version's columns and indexes first (each index of the
    // parent must find an equal one on the legacy partition, or the attach would build it
    // under an exclusive lock).
    crate::schema::upgrade(db).await?;
    let until = next_month(Utc::now());
    let key = "activity_log_legacy_key";
    let range = "activity_log_legacy_range";
    // A unique index on the parent's key, built beside the writers. An interrupted build leaves
    // an invalid index: dropped and built again.
    let state = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT (SELECT i.indisvalid FROM pg_index i JOIN pg_class c \
                    ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                    WHERE c.relname = '{key}' AND n.nspname = current_schema()) AS key_valid, \
                 (SELECT MAX(CASE WHEN k.convalidated THEN 2 ELSE 1 END) \
                    FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid \
                    JOIN pg_namespace n ON n.oid = t.relnamespace \
                    WHERE t.relname = 'activity_log' AND n.nspname = current_schema() \
                    AND k.conname IN ('{range}', '{key}')) AS constraints, \
                 (SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k \
                    JOIN pg_class t ON t.oid = k.conrelid \
                    JOIN pg_namespace n ON n.oid = t.relnamespace \
                    WHERE t.relname = 'activity_log' AND n.nspname = current_schema() \
                    AND k.conname = '{range}') AS range_def"
            ),
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("partition_by_month: no catalogue answer".into()))?;
    let key_valid: Option<bool> = state.try_get("", "key_valid")?;
    let range_def: Option<String> = state.try_get("", "range_def")?;
    if key_valid == Some(false) {
        db.execute_unprepared(&format!("DROP INDEX CONCURRENTLY IF EXISTS {key}"))
            .await?;
    }
    db.execute_unprepared(&format!(
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {key} ON activity_log (id, created_at)"
    ))
    .await?;
    // The bound of an interrupted conversion is kept: its constraint may be validated already.
    let until = match range_def.as_deref().and_then(range_until) {
        Some(existing) => existing,
        None => {
            briefly(
                db,
                &[format!(
                    "ALTER TABLE activity_log ADD CONSTRAINT {range} \
                     CHECK (created_at IS NOT NULL AND created_at < {}) NOT VALID",
                    literal(until)
                )],
            )
            .await?;
            until
        }
    };
    // A scan under SHARE UPDATE EXCLUSIVE: writes go on.
    db.execute_unprepared(&format!(
        "ALTER TABLE activity_log VALIDATE CONSTRAINT {range}"
    ))
    .await?;

    let guarded = guard::append_only_installed(db).await?;
    let old_indexes: Vec<String> = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT indexname::text AS name FROM pg_indexes \
                 WHERE schemaname = current_schema() AND tablename = 'activity_log' \
                 AND indexname <> '{key}'"
            ),
        ))
        .await?
        .into_iter()
        .map(|row| row.try_get::<String>("", "name"))
        .collect::<Result<_, _>>()?;
    let mut swap = vec![
        format!("ALTER TABLE activity_log RENAME TO {LEGACY_PARTITION}"),
        format!("ALTER TABLE {LEGACY_PARTITION} ADD CONSTRAINT {key} UNIQUE USING INDEX {key}"),
    ];
    for name in &old_indexes {
        let suffix = name.strip_prefix("activity_log_").unwrap_or(name);
        swap.push(format!(
            "ALTER INDEX \"{name}\" RENAME TO \"{LEGACY_PARTITION}_{suffix}\""
        ));
    }
    if guarded {
        // The parent's triggers are cloned onto every partition, this one included.
        swap.push(format!(
            "DROP TRIGGER IF EXISTS activity_log_append_only ON {LEGACY_PARTITION}"
        ));
        swap.push(format!(
            "DROP TRIGGER IF EXISTS activity_log_append_only_truncate ON {LEGACY_PARTITION}"
        ));
    }
    swap.extend(parent_statements());
    swap.push(format!(
        "ALTER TABLE activity_log ATTACH PARTITION {LEGACY_PARTITION} \
         FOR VALUES FROM (MINVALUE) TO ({})",
        literal(until)
    ));
    swap.push(format!(
        "CREATE TABLE {DEFAULT_PARTITION} PARTITION OF activity_log DEFAULT"
    ));
    briefly(db, &swap).await?;
    if guarded {
        guard::install_append_only(db).await?;
    }
    tracing::info!(until = %until, "activity_log: partitioned by month; the existing log is its legacy partition");
    Ok(Partitioned {
        legacy_until: Some(until),
        created: ensure_partitions(db, through).await?,
        already: false,
    })
}

/// The upper bound of `CHECK (created_at IS NOT NULL AND created_at < '…'::timestamp with time
/// zone)` as PostgreSQL prints it back.
fn range_until(def: &str) -> Option<DateTime<Utc>> {
    let start = def.find("< '")? + 3;
    let end = start + def[start..].find('\'')?;
    DateTime::parse_from_str(&def[start..end], "%Y-%m-%d %H:%M:%S%.f%#z")
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Create the month partitions from the end of the newest one (or, when there is none, from
/// the current month) through the month of `through`; returns the names created. Entries a
/// new month must hold that already sit in the default partition are moved into it in the
/// same transaction. Idempotent; call it daily with `through` a few months ahead
/// (`Utc::now() + chrono::Duration::days(92)`) and at start-up.
///
/// That move is the recovery for a job that lapsed, not a routine: it locks the default
/// partition against inserts for as long as it copies the month (under the brief-lock timeout,
/// retried), and an entry of that month written meanwhile fails (after the attach, PostgreSQL
/// re-checks the default partition's bounds for a row routed to it before), failing its
/// transaction as any failed log write does; nothing is half-written. Months created ahead
/// never move anything.
pub async fn ensure_partitions<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    through: DateTime<Utc>,
) -> Result<Vec<String>, DbErr> {
    postgres_only(db, "ensure_partitions")?;
    let existing = partitions(db).await?;
    let newest = existing.iter().filter_map(|p| p.to).max();
    let from = newest.unwrap_or_else(|| month_start(Utc::now()));
    create_months(db, &existing, from, through).await
}

/// The comment [`pack_closed_months`] leaves on a month whose indexes it rebuilt.
pub const PACKED_COMMENT: &str = "activity-seaorm: indexes packed";

/// Rebuild the indexes of every closed month (one whose range ended before `now`'s month began)
/// not rebuilt yet, packed: `REINDEX INDEX CONCURRENTLY`, one index at a time, writers never
/// blocked. Returns the months packed.
///
/// Why: the log's indexes lead with the tenant, so inserts land inside the index rather than at
/// its right edge and pages split half full; once a month is closed it takes almost no inserts,
/// and packed its indexes hold the same keys in about two thirds of the space (385 → 252 bytes
/// of index an entry on the partition benchmark's 1M-entry month). Each month is packed once,
/// marked with [`PACKED_COMMENT`] as its table comment (replacing any other): an entry written
/// late into a packed month is indexed as any other, and rows rewritten later (erasure,
/// `schema::compact_details`: run that first) loosen its pages again. A month dropped by
/// retention while it is packed is skipped; any other error ends the call (the months before
/// it are packed and marked, the rest wait for the next call).
///
/// The rebuild reads the month and writes its indexes anew (WAL as large as them); run it from
/// the daily job, after [`ensure_partitions`], on a connection, not in a transaction
/// (PostgreSQL rebuilds concurrently only outside one). The legacy and default partitions are
/// left as they are. A rebuild interrupted (a cancelled call, a lost connection) leaves the
/// month unmarked and an invalid copy of one index (`…_ccnew` or `…_ccold`); the next call
/// drops it and packs the month again.
pub async fn pack_closed_months(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> Result<Vec<String>, DbErr> {
    postgres_only(db, "pack_closed_months")?;
    let open = month_start(now);
    let mut packed = Vec::new();
    for month in partitions(db).await? {
        let (Some(_), Some(to)) = (month.from, month.to) else {
            continue;
        };
        if to > open || month.name == LEGACY_PARTITION {
            continue;
        }
        let comment = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT obj_description(c.oid, 'pg_class') AS comment \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relname = $1 AND n.nspname = current_schema()",
                [month.name.clone().into()],
            ))
            .await?;
        let Some(comment) = comment else { continue };
        if comment.try_get::<Option<String>>("", "comment")?.as_deref() == Some(PACKED_COMMENT) {
            continue;
        }
        let indexes = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT i.relname::text AS name, x.indisvalid AS valid \
                 FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
                 JOIN pg_class c ON c.oid = x.indrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relname = $1 AND n.nspname = current_schema() \
                 AND NOT x.indisexclusion ORDER BY 1",
                [month.name.clone().into()],
            ))
            .await?;
        let mut valid = Vec::new();
        for index in indexes {
            let name: String = index.try_get("", "name")?;
            if index.try_get::<bool>("", "valid")? {
                valid.push(name);
            } else if is_rebuild_leftover(&name) {
                // What an interrupted rebuild left: its half-built copy, invalid (and still
                // updated by inserts). Dropped before the month is rebuilt again.
                db.execute_unprepared(&format!("DROP INDEX CONCURRENTLY IF EXISTS \"{name}\""))
                    .await?;
            }
        }
        let rebuilt = async {
            for index in valid {
                db.execute_unprepared(&format!("REINDEX INDEX CONCURRENTLY \"{index}\""))
                    .await?;
            }
            Ok::<_, DbErr>(())
        };
        if let Err(e) = rebuilt.await {
            // Retention dropped the month meanwhile: nothing left to pack.
            if e.to_string().contains("does not exist") {
                tracing::debug!(
                    partition = month.name,
                    "activity_log: month gone while packed"
                );
                continue;
            }
            return Err(e);
        }
        db.execute_unprepared(&format!(
            "COMMENT ON TABLE \"{}\" IS '{PACKED_COMMENT}'",
            month.name
        ))
        .await?;
        tracing::info!(
            partition = month.name,
            "activity_log: a closed month's indexes packed"
        );
        packed.push(month.name);
    }
    Ok(packed)
}

/// Whether `name` is one of the copies `REINDEX .. CONCURRENTLY` makes: the new index while it
/// is built (`<index>_ccnew`, `_ccnew1`, ..) or the old one once swapped out (`_ccold`, ..).
fn is_rebuild_leftover(name: &str) -> bool {
    ["_ccnew", "_ccold"].iter().any(|suffix| {
        name.rsplit_once(suffix)
            .is_some_and(|(_, n)| n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Create the month partitions from the month of `from` through the month of `through` that
/// no partition holds yet (a backfill of older months, before importing old entries); returns
/// the names created. Entries already in the default partition move as in
/// [`ensure_partitions`].
pub async fn create_partitions<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    from: DateTime<Utc>,
    through: DateTime<Utc>,
) -> Result<Vec<String>, DbErr> {
    postgres_only(db, "create_partitions")?;
    let existing = partitions(db).await?;
    create_months(db, &existing, month_start(from), through).await
}

async fn create_months<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    existing: &[Partition],
    from: DateTime<Utc>,
    through: DateTime<Utc>,
) -> Result<Vec<String>, DbErr> {
    if existing.is_empty() {
        return Err(DbErr::Custom(
            "activity_log is not partitioned (schema::partition::partition_by_month)".into(),
        ));
    }
    let mut from = from;
    let has_default = existing.iter().any(|p| p.is_default);
    let mut created = Vec::new();
    while from <= through {
        let to = next_month(from);
        let name = month_partition_name(from);
        let taken = existing
            .iter()
            .any(|p| p.to.is_some_and(|end| end > from) && p.from.is_none_or(|start| start < to));
        if taken {
            from = to;
            continue;
        }
        let bounds = format!("FROM ({}) TO ({})", literal(from), literal(to));
        let waiting = has_default
            && db
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    format!(
                        "SELECT 1 AS one FROM {DEFAULT_PARTITION} WHERE created_at >= {} \
                         AND created_at < {} LIMIT 1",
                        literal(from),
                        literal(to)
                    ),
                ))
                .await?
                .is_some();
        if waiting {
            // Its entries are in the default partition: take them over in one transaction
            // (the attach checks the default partition holds none of the month any more),
            // under the brief-lock timeout and its retries. The default partition is locked
            // first against inserts (of this month's entries, which would fail that check),
            // so none arrives between the move and the attach; an insert waiting for the lock
            // fails after the commit (see `ensure_partitions`). The move deletes from the
            // default partition: through the append-only guard's maintenance, ended with the
            // statements.
            let columns = parent_columns(db).await?;
            briefly(
                db,
                &[
                    guard::ENTER_MAINTENANCE.to_owned(),
                    format!("LOCK TABLE {DEFAULT_PARTITION} IN SHARE ROW EXCLUSIVE MODE"),
                    format!(
                        "CREATE TABLE {name} (LIKE activity_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
                    ),
                    // One statement: the rows deleted are exactly the rows copied, each in
                    // its latest version (the DELETE locks it and rereads it). A copy and then
                    // a delete would lose an entry committed between the two, and keep the
                    // pre-erasure copy of a row an erasure rewrote between them. Columns by
                    // name, never by position.
                    format!(
                        "WITH moved AS (DELETE FROM {DEFAULT_PARTITION} \
                         WHERE created_at >= {} AND created_at < {} RETURNING *) \
                         INSERT INTO {name} ({columns}) SELECT {columns} FROM moved",
                        literal(from),
                        literal(to)
                    ),
                    format!("ALTER TABLE activity_log ATTACH PARTITION {name} FOR VALUES {bounds}"),
                    // Given a caller's transaction this ran in a savepoint, which a `SET LOCAL`
                    // outlives: maintenance ends here, not with the caller's transaction.
                    "SET LOCAL activity_log.maintenance TO DEFAULT".to_owned(),
                ],
            )
            .await?;
            tracing::info!(
                partition = name,
                "activity_log: created a month late; its entries moved from the default partition"
            );
        } else {
            briefly(
                db,
                &[format!(
                    "CREATE TABLE IF NOT EXISTS {name} PARTITION OF activity_log FOR VALUES {bounds}"
                )],
            )
            .await?;
        }
        created.push(name);
        from = to;
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_read_back() {
        let p = parse_bound(
            "activity_log_p2026_01".into(),
            "FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-02-01 00:00:00+00')",
        )
        .unwrap();
        assert_eq!(
            p.from,
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())
        );
        assert_eq!(
            p.to,
            Some(Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap())
        );
        let legacy = parse_bound(
            "activity_log_legacy".into(),
            "FOR VALUES FROM (MINVALUE) TO ('2027-01-01 00:00:00.5+00')",
        )
        .unwrap();
        assert_eq!(legacy.from, None);
        assert!(legacy.to.is_some());
        assert!(parse_bound("d".into(), "DEFAULT").unwrap().is_default);
        assert!(parse_bound("x".into(), "FOR VALUES IN (1)").is_err());
        assert_eq!(
            range_until(
                "CHECK (((created_at IS NOT NULL) AND (created_at < '2027-01-01 00:00:00+00'::timestamp with time zone)))"
            ),
            Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap())
        );
    }

    #[test]
    fn months_roll_over() {
        let dec = Utc.with_ymd_and_hms(2026, 12, 6, 18, 0, 0).unwrap();
        assert_eq!(
            month_start(dec),
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            next_month(dec),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            month_partition_name(month_start(dec)),
            "activity_log_p2026_12"
        );
    }
}
