//! Creating `activity_log` and its indexes, idempotently, on SQLite, PostgreSQL and MySQL, and
//! widening the text columns of tables created by earlier versions.
//!
//! The widths come from [`COLUMN_CAPS`], the table the writer also checks values against:
//! identifiers (`organization_id`, `team_id`, `user_id`, `impersonated_by`, `item_id`,
//! `correlation_id`) are `varchar(255)`, stored exactly up to 255 characters and refused beyond
//! ([`IdentifierTooLong`](crate::failure::IdentifierTooLong)); descriptive text is cut to its column.
//!
//! **Start-up never alters the log.** [`create_table`] creates what is missing on an empty
//! database and leaves an existing `activity_log` exactly as it is: no `ALTER`, no index build.
//! Both would lock a large log for as long as they take, and a rolling deploy calls
//! `create_table` at every instance while the old ones are still writing. An older table is
//! reported (a `tracing` warning naming what [`upgrade`] would change) and keeps working.
//!
//! **Upgrading is explicit.** Versions before the caps table created the identifier columns
//! narrower (`varchar(64)`, `item_id varchar(72)`), and some lack indexes of this version.
//! [`upgrade`] (or the `migration::WidenIdentifiers` migration, feature `migration`) widens
//! only the columns narrower than their cap (`ALTER COLUMN .. TYPE varchar(n)` on PostgreSQL,
//! which never rewrites the table; `MODIFY COLUMN` keeping the column's character set,
//! collation and nullability on MySQL, which may copy the table once; SQLite does not enforce
//! widths) and builds the missing indexes without blocking writes: `CREATE INDEX CONCURRENTLY`
//! on PostgreSQL (so it must run outside a transaction; the migration says so to
//! `sea-orm-migration`), `ALGORITHM=INPLACE LOCK=NONE` on MySQL. Run it at a quiet moment.
//!
//! **Columns added later are optional until the feature that uses them.** `trace_id` and
//! `span_id` (feature `otel`) are created with every new table; on an older one [`upgrade`]
//! (or `migration::AddTraceColumns`) adds them without a rewrite. Until then every build
//! without `otel` reads and writes the log exactly as before (the library names those columns
//! only in a traced write, and reads them only with the feature); a build with `otel` needs
//! them, so run the upgrade before it starts ([`create_table`] logs an error when they lack).

#[cfg(feature = "ops")]
mod compact;
pub mod guard;
pub mod outbox;
pub mod partition;
pub mod seal;
pub mod table;

#[cfg(feature = "ops")]
pub use compact::compact_details;
pub use table::activity_log;

use sea_orm::sea_query::{
    ColumnDef, ConditionalStatement, Index, IndexCreateStatement, IndexOrder, Table,
    TableCreateStatement,
};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, DbErr, Iden, IdenStatic, Statement};

use crate::schema::table::activity_log::{Column, Entity};
use crate::schema::table::{COLUMN_CAPS, CapKind, column_cap};

/// Create `activity_log` and its indexes if the table does not exist, and the (small, usually
/// empty) `activity_outbox` of the [`outbox`](crate::outbox) if that does not. An existing
/// `activity_log` is never altered (see the [module docs](self)): safe to call at every
/// start-up, however large the log and however many instances start at once.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), sea_orm::DbErr> {
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// activity_seaorm::schema::create_table(&db).await?;
/// activity_seaorm::schema::create_table(&db).await?; // idempotent
/// # Ok(()) }
/// ```
pub async fn create_table<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    if table_exists(db).await? {
        // A rolling deploy starts this at every instance while the old ones write: no ALTER and
        // no index build here, whatever the table's age (either would block every logged write
        // for as long as it takes on a large log). Say what `upgrade` would do instead.
        let plan = plan_upgrade(db).await?;
        if cfg!(feature = "otel") && !plan.added.is_empty() {
            // Every traced write and every read would fail on the missing columns.
            tracing::error!(
                columns = ?plan.added,
                "activity_log has no trace columns, which the `otel` feature writes and reads: \
                 run schema::upgrade (or the AddTraceColumns migration) before this build serves"
            );
        } else if !plan.is_empty() {
            tracing::warn!(
                columns = ?plan.widened,
                added = ?plan.added,
                indexes = ?plan.missing_indexes,
                "activity_log is older than this version; it was left as it is: run \
                 schema::upgrade (or the AddTraceColumns migration) at a quiet moment"
            );
        }
        crate::schema::outbox::create_table(db).await?;
        create_seal_table(db).await?;
        return Ok(());
    }
    let mut table = table_definition(backend, true);
    table.if_not_exists();
    if backend == DbBackend::MySql {
        // Ids and scopes compare byte for byte, as on the other backends: under the server's
        // default `utf8mb4_general_ci`, `team_id = 'acme'` would also match `ACME` and `acme `,
        // a read across tenants. Text search lower-cases both sides itself.
        table
            .character_set("utf8mb4")
            .collate(mysql_exact_collation(db).await?);
        // MySQL has no `CREATE INDEX IF NOT EXISTS`: declare the indexes with the table.
        for mut index in indexes(backend) {
            table.index(&mut index);
        }
    }
    db.execute(&table).await?;
    // A new, empty table: its indexes cost nothing to build.
    match backend {
        DbBackend::MySql => {}
        _ => {
            for mut index in indexes(backend) {
                db.execute(index.if_not_exists()).await?;
            }
        }
    }
    crate::schema::outbox::create_table(db).await?;
    create_seal_table(db).await?;
    Ok(())
}

/// `activity_log`'s columns. `id_is_key`: `id` is the primary key (a partitioned table's key
/// must hold the partition column too, so [`partition`] declares `(id, created_at)` itself).
pub(crate) fn table_definition(backend: DbBackend, id_is_key: bool) -> TableCreateStatement {
    let mut id = ColumnDef::new(Column::Id);
    id.uuid().not_null();
    if id_is_key {
        id.primary_key();
    }
    let mut table = Table::create();
    table
        .table(Entity)
        .col(id)
        .col(created_at_column(backend))
        .col(text(Column::OrganizationId))
        .col(text(Column::TeamId))
        .col(text(Column::UserId))
        .col(text(Column::UserName))
        .col(text(Column::ImpersonatedBy))
        .col(
            ColumnDef::new(Column::WasImpersonated)
                .boolean()
                .not_null()
                .default(false),
        )
        .col(
            ColumnDef::new(Column::IsSystem)
                .boolean()
                .not_null()
                .default(false),
        )
        .col(text(Column::Scope).not_null())
        .col(text(Column::ItemId))
        .col(text(Column::Activity).not_null())
        .col(ColumnDef::new(Column::Detail).json_binary().not_null())
        .col(text(Column::RequestId))
        .col(text(Column::CorrelationId))
        .col(text(Column::IpAddress))
        .col(text(Column::UserAgent))
        .col(text(Column::Client))
        .col(text(Column::TraceId))
        .col(text(Column::SpanId));
    table
}

/// Columns added after the first version, in the order [`upgrade`] adds them (appended, as
/// a table created now has them).
const ADDED_COLUMNS: [Column; 2] = [Column::TraceId, Column::SpanId];

/// The opt-in PostgreSQL index on `detail`.
const GIN_NAME: &str = "activity_log_detail_gin";

/// PostgreSQL, opt-in: a GIN index over `detail` (`jsonb_path_ops`), for queries of your own
/// that use the containment and path operators (`detail @> '{"trigger": {"job_type": "sync"}}'`).
/// The library's reads do not use it: its detail filters and text search are tenant- or
/// item-bounded and call `jsonb_path_query*`, which no index serves. So it is not created by
/// default (it cost ~37 bytes and a GIN update per entry); tables from earlier versions keep
/// theirs (drop it with `DROP INDEX CONCURRENTLY activity_log_detail_gin` to reclaim the space).
///
/// Built without blocking writes: `CREATE INDEX CONCURRENTLY` (outside a transaction); on a
/// partitioned log, on each partition concurrently, then attached to an index of the parent
/// (partitions created later get it from the parent). Idempotent. On SQLite and MySQL it does
/// nothing.
pub async fn create_detail_index<C: ConnectionTrait + sea_orm::TransactionTrait>(
    db: &C,
) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    create_index_concurrently(
        db,
        GIN_NAME,
        "detail_gin",
        "USING GIN (detail jsonb_path_ops)",
    )
    .await
}

/// The index the [sealer](crate::ops::seal) follows new entries by.
const SEAL_INDEX: &str = "activity_log_created";

/// The index the [sealer](crate::ops::seal::Sealer) follows committed entries by: without it,
/// each sealing round reads the whole table to find the new entries. On PostgreSQL a BRIN
/// index on `created_at` (a few pages per million entries, next to nothing per insert; built
/// `CONCURRENTLY`, per partition on a partitioned log) that summarizes itself as pages fill
/// (`autosummarize`; the sealer also summarizes it at the start of each round); on
/// MySQL and SQLite a btree on `(created_at, id)` (MySQL builds it online, `LOCK=NONE`).
/// Idempotent, and turns `autosummarize` on for an index an earlier version built; applications
/// that do not seal need not create it.
pub async fn create_seal_index<C: ConnectionTrait + sea_orm::TransactionTrait>(
    db: &C,
) -> Result<(), DbErr> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            create_index_concurrently(
                db,
                SEAL_INDEX,
                "created",
                "USING BRIN (created_at) WITH (autosummarize = on)",
            )
            .await?;
            // Only where it is off: the `ALTER` locks the index against every insert while
            // it waits for a transaction that uses it.
            for index in seal_brin_indexes(db, Some(false)).await? {
                db.execute_unprepared(&format!("ALTER INDEX {index} SET (autosummarize = on)"))
                    .await?;
            }
            Ok(())
        }
        DbBackend::MySql => {
            let exists = db
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::MySql,
                    "SELECT 1 AS one FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = \
                     DATABASE() AND TABLE_NAME = 'activity_log' AND INDEX_NAME = ?",
                    [SEAL_INDEX.into()],
                ))
                .await?
                .is_some();
            if !exists {
                db.execute_unprepared(&format!(
                    "CREATE INDEX {SEAL_INDEX} ON activity_log (created_at, id) \
                     ALGORITHM=INPLACE LOCK=NONE"
                ))
                .await?;
            }
            Ok(())
        }
        _ => db
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {SEAL_INDEX} ON activity_log (created_at, id)"
            ))
            .await
            .map(drop),
    }
}

/// PostgreSQL: the [seal index](create_seal_index) where it holds rows — itself on a plain
/// log, each partition's on a partitioned one (the parent's holds none) — each named as SQL may
/// quote it; `autosummarizing`: only those with `autosummarize` on (`Some(true)`) or off.
async fn seal_brin_indexes<C: ConnectionTrait>(
    db: &C,
    autosummarizing: Option<bool>,
) -> Result<Vec<String>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "SELECT c.oid::regclass::text AS name FROM pg_class c \
                 WHERE c.relkind = 'i' AND (c.oid = to_regclass('{SEAL_INDEX}') OR c.oid IN \
                 (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass('{SEAL_INDEX}'))) \
                 AND ($1::boolean IS NULL \
                 OR coalesce('autosummarize=on' = ANY(c.reloptions), false) = $1)"
            ),
            [autosummarizing.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get::<String>("", "name"))
        .collect()
}

/// PostgreSQL: summarize the page ranges of the [seal index](create_seal_index) that entries
/// filled since it was last summarized. A BRIN index cannot rule out a range it has not
/// summarized, so a query by time reads every such page: with the ranges a busy log fills
/// between two autovacuum visits left open, each sealing round (and each slice `verify_all`
/// reads) rechecked every entry written since — at 5,500 entries/s, 50–60 ms a query over a
/// 300,000-entry tail instead of under 1 ms. Needs the role that owns the table (PostgreSQL 17:
/// or `MAINTAIN` on it). In a transaction of its own (a savepoint inside the caller's) that
/// waits at most 100 ms for its lock: a `VACUUM` or an index build on the log holds the lock it
/// needs, and waiting longer would stall the round (and, past `deadlock_timeout`, cancel an
/// autovacuum of the log). Other backends: nothing to do.
#[cfg(feature = "ops")]
pub(crate) async fn summarize_seal_index<C: ConnectionTrait + sea_orm::TransactionTrait>(
    db: &C,
) -> Result<u64, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(0);
    }
    use sea_orm::TransactionSession;
    let txn = db.begin().await?;
    txn.execute_unprepared("SET LOCAL lock_timeout = '100ms'")
        .await?;
    let mut ranges = 0;
    for index in seal_brin_indexes(&txn, None).await? {
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT brin_summarize_new_values($1::regclass)::bigint AS n",
                [index.into()],
            ))
            .await?;
        if let Some(row) = row {
            ranges += row.try_get::<i64>("", "n").unwrap_or(0).max(0) as u64;
        }
    }
    txn.commit().await?;
    Ok(ranges)
}

/// PostgreSQL: index `name` of `activity_log` built without blocking writes —
/// `CREATE INDEX CONCURRENTLY` (outside a transaction); on a partitioned log, on each partition
/// concurrently (named `<partition>_<suffix>`), then attached to an index of the parent
/// (partitions created later get it from the parent). Idempotent.
async fn create_index_concurrently<C: ConnectionTrait + sea_orm::TransactionTrait>(
    db: &C,
    name: &str,
    suffix: &str,
    using: &str,
) -> Result<(), DbErr> {
    if !partition::is_partitioned(db).await? {
        return db
            .execute_unprepared(&format!(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON activity_log {using}"
            ))
            .await
            .map(drop);
    }
    db.execute_unprepared(&format!(
        "CREATE INDEX IF NOT EXISTS {name} ON ONLY activity_log {using}"
    ))
    .await?;
    for p in partition::partitions(db).await? {
        let child = format!("{}_{suffix}", p.name);
        db.execute_unprepared(&format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"{child}\" ON \"{}\" {using}",
            p.name
        ))
        .await?;
        let attached = db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!(
                    "SELECT 1 AS one FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relname = '{child}' AND n.nspname = current_schema()"
                ),
            ))
            .await?
            .is_some();
        if !attached {
            db.execute_unprepared(&format!("ALTER INDEX {name} ATTACH PARTITION \"{child}\""))
                .await?;
        }
    }
    Ok(())
}

/// `activity_block`, with `activity_log`'s exact collation on MySQL.
async fn create_seal_table<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let collation = match db.get_database_backend() {
        DbBackend::MySql => Some(mysql_exact_collation(db).await?),
        _ => None,
    };
    seal::create_table(db, collation.as_deref()).await
}

/// Whether `activity_log` exists (in the current schema or database).
pub(crate) async fn table_exists<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    named_table_exists(db, "activity_log").await
}

/// Whether the table `name` (one of the library's, a plain identifier) exists.
pub(crate) async fn named_table_exists<C: ConnectionTrait>(
    db: &C,
    name: &str,
) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Sqlite => {
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = $1"
        }
        DbBackend::Postgres => {
            "SELECT COUNT(*) AS n FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = $1"
        }
        _ => {
            "SELECT COUNT(*) AS n FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?"
        }
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [name.into()]))
        .await?;
    Ok(row
        .and_then(|r| r.try_get::<i64>("", "n").ok())
        .unwrap_or(0)
        > 0)
}

/// What [`upgrade`] would change on an existing table.
#[derive(Debug, Default)]
struct UpgradePlan {
    /// `ALTER TABLE` clauses.
    changes: Vec<String>,
    /// The columns they change.
    widened: Vec<&'static str>,
    /// Columns of this version the table lacks ([`ADDED_COLUMNS`]), added by their own
    /// statement (instant on every backend: nullable, no default).
    added: Vec<&'static str>,
    /// Indexes of this version the table lacks (or has invalid, on PostgreSQL).
    missing_indexes: Vec<String>,
    /// PostgreSQL: indexes left invalid by an interrupted concurrent build, dropped first.
    invalid_indexes: Vec<String>,
}

impl UpgradePlan {
    fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.added.is_empty() && self.missing_indexes.is_empty()
    }
}

/// The names of this version's indexes (the opt-in GIN one is not required).
fn index_names(backend: DbBackend) -> Vec<String> {
    indexes(backend)
        .iter()
        .filter_map(|i| i.get_index_spec().get_name().map(str::to_owned))
        .collect()
}

/// The indexes `activity_log` has now: valid ones, and (PostgreSQL) invalid ones. A partitioned
/// log's own index is counted valid: it is invalid only until every partition has its part
/// (`create_detail_index` interrupted), cannot be dropped concurrently, and is completed by
/// running that again.
async fn existing_indexes<C: ConnectionTrait>(db: &C) -> Result<(Vec<String>, Vec<String>), DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Sqlite => {
            "SELECT name, 1 AS valid FROM sqlite_master \
             WHERE type = 'index' AND tbl_name = 'activity_log' AND name IS NOT NULL"
        }
        DbBackend::Postgres => {
            "SELECT c.relname::text AS name, \
             CASE WHEN i.indisvalid OR c.relkind = 'I' THEN 1 ELSE 0 END AS valid \
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             JOIN pg_class t ON t.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = t.relnamespace \
             WHERE t.relname = 'activity_log' AND n.nspname = current_schema()"
        }
        _ => {
            "SELECT DISTINCT INDEX_NAME AS name, 1 AS valid FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'activity_log'"
        }
    };
    let rows = db
        .query_all_raw(Statement::from_string(backend, sql))
        .await?;
    let (mut valid, mut invalid) = (Vec::new(), Vec::new());
    for row in rows {
        let name: String = row.try_get("", "name")?;
        let ok: i64 = row
            .try_get::<i32>("", "valid")
            .map(i64::from)
            .or_else(|_| row.try_get::<i64>("", "valid"))?;
        if ok == 1 {
            valid.push(name);
        } else {
            invalid.push(name);
        }
    }
    Ok((valid, invalid))
}

/// A text column at its width in [`COLUMN_CAPS`].
fn text(column: Column) -> ColumnDef {
    let mut def = ColumnDef::new(column);
    match column_cap(column) {
        Some(cap) => def.string_len(u32::try_from(cap.max_chars).unwrap_or(u32::MAX)),
        None => def.string(),
    };
    def
}

/// Bring an existing `activity_log` up to this version: add the columns it lacks (`trace_id`,
/// `span_id`: nullable, no default, so no rewrite), widen the text columns narrower than
/// [`COLUMN_CAPS`], on MySQL give identifier columns without the exact collation
/// ([`mysql_exact_collation`]) that collation, and build the indexes it lacks without blocking
/// writes (`CONCURRENTLY` on PostgreSQL, first dropping any index an interrupted concurrent
/// build left invalid; `ALGORITHM=INPLACE LOCK=NONE` on MySQL). Returns the columns it added
/// or changed. Idempotent: it reads the catalogue first and changes only what is missing, so an
/// up-to-date table costs three catalogue queries and no lock. No table yet: nothing to do.
///
/// On PostgreSQL call it outside a transaction (a concurrent index build cannot run in one).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), sea_orm::DbErr> {
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// activity_seaorm::schema::create_table(&db).await?;
/// assert!(activity_seaorm::schema::upgrade(&db).await?.is_empty());
/// # Ok(()) }
/// ```
pub async fn upgrade<C: ConnectionTrait>(db: &C) -> Result<Vec<&'static str>, DbErr> {
    let backend = db.get_database_backend();
    if !table_exists(db).await? {
        return Ok(Vec::new());
    }
    let plan = plan_upgrade(db).await?;
    if !plan.added.is_empty() {
        add_columns(db, &plan.added).await?;
        tracing::info!(columns = ?plan.added, "activity_log: added columns");
    }
    if !plan.changes.is_empty() {
        let table = match backend {
            DbBackend::Postgres => "\"activity_log\"",
            _ => "`activity_log`",
        };
        db.execute_unprepared(&format!("ALTER TABLE {table} {}", plan.changes.join(", ")))
            .await?;
        tracing::info!(columns = ?plan.widened, "activity_log: upgraded columns (widths, MySQL collation)");
    }
    for name in &plan.invalid_indexes {
        // Left by an interrupted concurrent build: it slows writes and serves no read.
        db.execute_unprepared(&format!("DROP INDEX CONCURRENTLY IF EXISTS \"{name}\""))
            .await?;
    }
    for mut index in indexes(backend) {
        let Some(name) = index.get_index_spec().get_name().map(str::to_owned) else {
            continue;
        };
        if !plan.missing_indexes.contains(&name) {
            continue;
        }
        let sql = match backend {
            DbBackend::Sqlite => index
                .if_not_exists()
                .to_string(sea_orm::sea_query::SqliteQueryBuilder),
            DbBackend::Postgres => index
                .to_string(sea_orm::sea_query::PostgresQueryBuilder)
                .replacen(
                    "CREATE INDEX ",
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS ",
                    1,
                ),
            _ => format!(
                "{} ALGORITHM=INPLACE LOCK=NONE",
                index.to_string(sea_orm::sea_query::MysqlQueryBuilder)
            ),
        };
        db.execute_unprepared(&sql).await?;
        tracing::info!(index = name, "activity_log: built a missing index");
    }
    let mut changed = plan.added;
    changed.extend(plan.widened);
    Ok(changed)
}

/// Add `columns` (of [`ADDED_COLUMNS`]: nullable text, no default), without rewriting the
/// table: a catalogue change on PostgreSQL (a partitioned log's partitions follow their
/// parent) and SQLite, `ALGORITHM=INSTANT` on MariaDB ≥ 10.3 and MySQL ≥ 8.0.12 (an older
/// server falls back to an in-place change that lets writes through).
async fn add_columns<C: ConnectionTrait>(db: &C, columns: &[&'static str]) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let defs: Vec<(&str, usize)> = ADDED_COLUMNS
        .iter()
        .filter(|c| columns.contains(&c.as_str()))
        .map(|c| (c.as_str(), column_cap(*c).map_or(255, |cap| cap.max_chars)))
        .collect();
    match backend {
        DbBackend::MySql => {
            let collation = mysql_exact_collation(db).await?;
            let adds: Vec<String> = defs
                .iter()
                .map(|(name, width)| {
                    format!(
                        "ADD COLUMN `{name}` varchar({width}) CHARACTER SET utf8mb4 \
                         COLLATE {collation} NULL"
                    )
                })
                .collect();
            let adds = adds.join(", ");
            let instant = format!("ALTER TABLE `activity_log` {adds}, ALGORITHM=INSTANT");
            if let Err(e) = db.execute_unprepared(&instant).await {
                tracing::info!(error = %e, "activity_log: no instant ADD COLUMN here; in place");
                db.execute_unprepared(&format!(
                    "ALTER TABLE `activity_log` {adds}, ALGORITHM=INPLACE, LOCK=NONE"
                ))
                .await?;
            }
        }
        DbBackend::Postgres => {
            let adds: Vec<String> = defs
                .iter()
                .map(|(name, width)| {
                    format!("ADD COLUMN IF NOT EXISTS \"{name}\" varchar({width})")
                })
                .collect();
            db.execute_unprepared(&format!("ALTER TABLE \"activity_log\" {}", adds.join(", ")))
                .await?;
        }
        _ => {
            // SQLite: one column per statement.
            for (name, width) in defs {
                db.execute_unprepared(&format!(
                    "ALTER TABLE \"activity_log\" ADD COLUMN \"{name}\" varchar({width})"
                ))
                .await?;
            }
        }
    }
    Ok(())
}

/// The names of `activity_log`'s columns, as the catalogue has them.
async fn column_names<C: ConnectionTrait>(db: &C) -> Result<Vec<String>, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Sqlite => "SELECT name FROM pragma_table_info('activity_log')",
        DbBackend::Postgres => {
            "SELECT column_name::text AS name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = 'activity_log'"
        }
        _ => {
            "SELECT COLUMN_NAME AS name FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'activity_log'"
        }
    };
    db.query_all_raw(Statement::from_string(backend, sql))
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "name"))
        .collect()
}

async fn plan_upgrade<C: ConnectionTrait>(db: &C) -> Result<UpgradePlan, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        // `varchar(n)` is not enforced: every value is stored exactly already.
        DbBackend::Sqlite => "",
        DbBackend::Postgres => {
            "SELECT column_name::text AS name, character_maximum_length::int8 AS width, \
             '' AS charset, '' AS collation, is_nullable::text AS nullable \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = 'activity_log' \
             AND character_maximum_length IS NOT NULL"
        }
        _ => {
            "SELECT COLUMN_NAME AS name, CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED) AS width, \
             CHARACTER_SET_NAME AS charset, COLLATION_NAME AS collation, \
             IS_NULLABLE AS nullable \
             FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'activity_log' \
             AND CHARACTER_MAXIMUM_LENGTH IS NOT NULL"
        }
    };
    let rows = if sql.is_empty() {
        Vec::new()
    } else {
        db.query_all_raw(Statement::from_string(backend, sql))
            .await?
    };
    // MySQL: identifiers compare byte for byte only under the exact collation, which tables
    // created before it was introduced lack (`team_id = 'ACME'` then finds `acme`).
    let exact = match backend {
        DbBackend::MySql if !rows.is_empty() => Some(mysql_exact_collation(db).await?),
        _ => None,
    };
    let mut changes = Vec::new();
    let mut widened = Vec::new();
    for row in rows {
        let name: String = row.try_get("", "name")?;
        let width: i64 = row.try_get("", "width")?;
        let Some(cap) = COLUMN_CAPS.iter().find(|c| c.column.as_str() == name) else {
            continue;
        };
        let current = usize::try_from(width).unwrap_or(0);
        let narrow = current < cap.max_chars;
        let mut charset: Option<String> = row.try_get("", "charset")?;
        let mut collation: Option<String> = row.try_get("", "collation")?;
        let loose = cap.kind == CapKind::Identifier
            && exact.is_some()
            && collation.as_deref() != exact.as_deref();
        if !narrow && !loose {
            continue;
        }
        if loose {
            charset = Some("utf8mb4".to_owned());
            collation = exact.clone();
        }
        let column = cap.column.as_str();
        let max = cap.max_chars.max(current);
        changes.push(match backend {
            DbBackend::Postgres => format!("ALTER COLUMN \"{column}\" TYPE varchar({max})"),
            _ => {
                let nullable: String = row.try_get("", "nullable")?;
                let mut change = format!("MODIFY COLUMN `{column}` varchar({max})");
                if let Some(charset) = charset {
                    change.push_str(&format!(" CHARACTER SET {charset}"));
                }
                if let Some(collation) = collation {
                    change.push_str(&format!(" COLLATE {collation}"));
                }
                change.push_str(if nullable == "NO" {
                    " NOT NULL"
                } else {
                    " NULL"
                });
                change
            }
        });
        widened.push(column);
    }
    let names = column_names(db).await?;
    let added = ADDED_COLUMNS
        .iter()
        .map(|c| c.as_str())
        .filter(|name| !names.iter().any(|n| n == name))
        .collect();
    let (existing, invalid) = existing_indexes(db).await?;
    let missing_indexes = index_names(backend)
        .into_iter()
        .filter(|name| !existing.contains(name))
        .collect();
    Ok(UpgradePlan {
        changes,
        widened,
        added,
        missing_indexes,
        invalid_indexes: invalid,
    })
}

/// MySQL/MariaDB: the collation under which text compares byte for byte, as on the other
/// backends — for any table holding tenant, user or item ids (the library's own use it). Under
/// the server's default (`utf8mb4_general_ci`) `'acme'` equals `'ACME'` and `'acme '`: a read
/// across tenants. A binary collation without trailing-space padding: `utf8mb4_bin` pads, so
/// `'acme'` would still equal `'acme '`. MariaDB has `utf8mb4_nopad_bin`, MySQL 8
/// `utf8mb4_0900_bin`; a server with neither gets `utf8mb4_bin` and a warning.
pub async fn mysql_exact_collation<C: ConnectionTrait>(db: &C) -> Result<String, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::MySql,
            "SELECT COLLATION_NAME AS name FROM information_schema.COLLATIONS \
             WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin') \
             ORDER BY COLLATION_NAME DESC LIMIT 1",
        ))
        .await?;
    match row {
        Some(row) => row.try_get("", "name"),
        None => {
            tracing::warn!(
                "no NO PAD binary collation on this server: ids differing only by trailing \
                 spaces compare equal"
            );
            Ok("utf8mb4_bin".to_owned())
        }
    }
}

/// Drop `activity_log` (tests and tear-down).
pub async fn drop_table<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    db.execute(Table::drop().table(Entity).if_exists()).await?;
    crate::schema::outbox::drop_table(db).await?;
    crate::schema::seal::drop_table(db).await?;
    Ok(())
}

fn created_at_column(backend: DbBackend) -> ColumnDef {
    let mut col = ColumnDef::new(Column::CreatedAt);
    match backend {
        // Microseconds, no 2038 limit; values are always UTC.
        DbBackend::MySql => col.custom(Alias("datetime(6)")),
        _ => col.timestamp_with_time_zone(),
    };
    col.not_null();
    col
}

struct Alias(&'static str);

impl Iden for Alias {
    fn unquoted(&self) -> &str {
        self.0
    }
}

/// The indexes the reads use (one item's history, the organization and team feeds, a user's
/// entries, a transaction's entries) and erasure's pass over a user's impersonations. Where the
/// backend allows, the organization, user, correlation and impersonator indexes are partial
/// (`IS NOT NULL`): system entries, tenants without an organization and entries of nobody
/// impersonating cost no index space there.
pub(crate) fn indexes(backend: DbBackend) -> Vec<IndexCreateStatement> {
    let desc = |name: &str| {
        let mut i = Index::create();
        i.name(name).table(Entity);
        i
    };
    let mut item = desc("activity_log_item");
    item.col(Column::TeamId)
        .col(Column::Scope)
        .col(Column::ItemId)
        .col((Column::CreatedAt, IndexOrder::Desc))
        .col((Column::Id, IndexOrder::Desc));
    let mut org = desc("activity_log_org_feed");
    org.col(Column::OrganizationId)
        .col((Column::CreatedAt, IndexOrder::Desc))
        .col((Column::Id, IndexOrder::Desc));
    let mut team = desc("activity_log_team_feed");
    team.col(Column::TeamId)
        .col((Column::CreatedAt, IndexOrder::Desc))
        .col((Column::Id, IndexOrder::Desc));
    let mut user = desc("activity_log_user");
    user.col(Column::UserId)
        .col((Column::CreatedAt, IndexOrder::Desc));
    let mut correlation = desc("activity_log_correlation");
    correlation.col(Column::CorrelationId);
    if backend == DbBackend::MySql {
        return vec![item, org, team, user, correlation];
    }
    org.and_where(Column::OrganizationId.is_not_null());
    user.and_where(Column::UserId.is_not_null());
    correlation.and_where(Column::CorrelationId.is_not_null());
    // Erasure's pass over the entries a user made while impersonating someone: without it,
    // that pass reads the whole log. Partial, so the entries of nobody impersonating (nearly
    // all) cost it nothing; MySQL has no partial index and would pay for every entry, so there
    // the pass scans (erasure is rare).
    let mut impersonator = desc("activity_log_impersonator");
    impersonator
        .col(Column::ImpersonatedBy)
        .and_where(Column::ImpersonatedBy.is_not_null());
    vec![item, org, team, user, correlation, impersonator]
}

/// A `sea-orm-migration` migration that creates the table, for applications using migrations.
#[cfg(feature = "migration")]
pub mod migration {
    use sea_orm_migration::prelude::*;

    /// Creates `activity_log` if it does not exist (an existing one is left as it is: see
    /// [`WidenIdentifiers`]) and drops it on `down`.
    #[derive(Debug, Default)]
    pub struct Migration;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m20261101_000001_create_activity_log"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            super::create_table(manager.get_connection()).await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            super::drop_table(manager.get_connection()).await
        }
    }

    /// Creates `activity_outbox` (see [`outbox`](crate::outbox)) for applications whose
    /// [`Migration`] ran before the outbox existed; on a database [`Migration`] just set up it
    /// changes nothing. List it after [`Migration`].
    #[derive(Debug, Default)]
    pub struct CreateOutbox;

    impl MigrationName for CreateOutbox {
        fn name(&self) -> &str {
            "m20261202_000001_create_activity_outbox"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for CreateOutbox {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            crate::schema::outbox::create_table(manager.get_connection()).await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            crate::schema::outbox::drop_table(manager.get_connection()).await
        }
    }

    /// Creates `activity_block` (the [sealer](crate::ops::seal)'s blocks) for applications
    /// whose [`Migration`] ran before sealing existed; on a database [`Migration`] just set up
    /// it changes nothing. List it after [`Migration`].
    #[derive(Debug, Default)]
    pub struct CreateBlocks;

    impl MigrationName for CreateBlocks {
        fn name(&self) -> &str {
            "m20261207_000001_create_activity_block"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for CreateBlocks {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            super::create_seal_table(manager.get_connection()).await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            crate::schema::seal::drop_table(manager.get_connection()).await
        }
    }

    /// PostgreSQL: partitions `activity_log` by month (see [`partition`](super::partition)): a
    /// new log is created partitioned, an existing one becomes its legacy partition without
    /// being copied, and the months through three months ahead are created. On SQLite and
    /// MySQL it changes nothing (they keep the plain table). It runs outside a transaction (an
    /// index is built concurrently). `down` keeps the partitions: un-partitioning a large log
    /// is a copy, for an operator to plan.
    #[derive(Debug, Default)]
    pub struct PartitionByMonth;

    impl MigrationName for PartitionByMonth {
        fn name(&self) -> &str {
            "m20261206_000001_partition_activity_log_by_month"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for PartitionByMonth {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            let db = manager.get_connection();
            if db.get_database_backend() != sea_orm::DbBackend::Postgres {
                return Ok(());
            }
            let through = chrono::Utc::now() + chrono::Duration::days(92);
            super::partition::partition_by_month(db, through)
                .await
                .map(drop)
        }

        fn use_transaction(&self) -> Option<bool> {
            Some(false)
        }

        async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
            Ok(())
        }
    }

    /// Adds the `trace_id` and `span_id` columns (feature `otel`) to a log created before
    /// them, without rewriting it (see [`upgrade`](super::upgrade), which it runs: on a table
    /// [`Migration`] just created it changes nothing). List it after [`Migration`]; run it
    /// before the first build with `otel` starts. `down` keeps the columns.
    #[derive(Debug, Default)]
    pub struct AddTraceColumns;

    impl MigrationName for AddTraceColumns {
        fn name(&self) -> &str {
            "m20261207_000002_add_activity_log_trace_columns"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for AddTraceColumns {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            super::upgrade(manager.get_connection()).await.map(drop)
        }

        fn use_transaction(&self) -> Option<bool> {
            Some(false)
        }

        async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
            Ok(())
        }
    }

    /// Brings a table an earlier version created up to this version (see
    /// [`upgrade`](super::upgrade): widths, MySQL collation, missing indexes built without
    /// blocking writes), for applications whose [`Migration`] already ran. List it after
    /// [`Migration`]; on a table [`Migration`] just created it changes nothing. It runs outside
    /// a transaction (PostgreSQL cannot build an index concurrently inside one). `down` keeps
    /// the wide columns: narrowing would fail on, or cut, the longer ids stored since.
    #[derive(Debug, Default)]
    pub struct WidenIdentifiers;

    impl MigrationName for WidenIdentifiers {
        fn name(&self) -> &str {
            "m20261201_000001_widen_activity_log_identifiers"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for WidenIdentifiers {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            super::upgrade(manager.get_connection()).await.map(drop)
        }

        fn use_transaction(&self) -> Option<bool> {
            Some(false)
        }

        async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
            Ok(())
        }
    }
}
