//! The outbox: with [`ActivityConfig::with_outbox`](crate::ActivityConfig::with_outbox), every batch of entries the
//! library writes also writes an `activity_outbox` row listing their ids, in the same
//! transaction. A relay ([`claim`], publish, [`complete`]) turns those rows into messages and
//! deletes them only once they are delivered, so a committed entry leaves the database exactly
//! once and a rolled-back one never.
//!
//! **Why a row per write and not a cursor over `activity_log`.** Neither entry ids (UUID v7, from
//! the writers' clocks) nor PostgreSQL transaction ids follow commit order: a transaction takes
//! its xid at its first write, so one that started earlier may commit later, and a cursor that
//! moved past it would skip it. Outbox rows are not read by a cursor but deleted once published:
//! a row that commits late is simply picked up late.
//!
//! **Order per item.** An outbox row's id is drawn when the entries are written, right before
//! COMMIT, while the transaction holds the row locks of the items it changed. A later
//! transaction on the same item waits for those locks, so it draws a larger id and becomes
//! visible after it. Relays read rows in id order, one relay at a time (`FOR UPDATE NOWAIT`:
//! a second relay backs off rather than overtaking), so each item's entries are relayed in
//! commit order. SQLite has no row locks: run one relay per SQLite database. Writes outside a transaction hold no lock across their entry: they are ordered
//! as their log writes are.
//!
//! **Atomicity.** Inside a transaction (the [`transaction`](crate::transaction) helper or one
//! the application opened) the outbox row commits or rolls back with the entries. On PostgreSQL
//! it is part of the log INSERT itself (`WITH .. INSERT`), so it costs no extra statement; on
//! SQLite and MySQL it is one more INSERT per flush. Outside any transaction (autocommit) on
//! SQLite and MySQL the outbox row and the entries are two statements, like the change and its
//! entries already are there. The outbox row goes first: a failure or crash between the two
//! leaves a row naming entries that were never written, which [`claim`] waits for
//! ([`WaitingRows`], [`WRITE_GRACE`] by the relay's own clock) and then skips, rather than
//! entries that are stored but never relayed. Only a second statement held back longer than
//! the grace (a lock wait, a paused process) would be stored after its row was relayed.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use activity_core::ActivityEntry;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Value;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityName, EntityTrait, IsolationLevel, QueryFilter, QuerySelect, Statement,
    TransactionSession, TransactionTrait,
};

pub use crate::schema::outbox::{activity_dead_letter, activity_outbox};
use crate::schema::table::activity_log;

/// Most entry ids in one outbox row written by a separate statement (SQLite, MySQL): keeps a
/// row, and the statement, far below MySQL's packet limit however large the flush.
const IDS_PER_ROW: usize = 500;
/// Most outbox rows in one such statement.
const ROWS_PER_STATEMENT: usize = 50;

/// How long a relay waits for entries an outbox row lists but the log does not hold yet
/// ([`WaitingRows`]): far above the moment between an autocommit write's outbox row and its
/// entries, and above MySQL's default row-lock wait (50 s) that could hold the second back.
pub const WRITE_GRACE: Duration = Duration::from_secs(60);

/// A relay's own record of the outbox rows it has seen waiting for their entries, and since
/// when, by its monotonic clock: neither the writers' clocks nor the time a writer took before
/// its outbox row became visible count toward the grace. Keep one per relay, across
/// [`claim`]s; a new one (a restarted relay) only waits longer, never less.
#[derive(Debug)]
pub struct WaitingRows {
    grace: Duration,
    since: HashMap<i64, Instant>,
}

impl WaitingRows {
    /// Wait up to `grace` for the entries of each row.
    pub fn new(grace: Duration) -> Self {
        WaitingRows {
            grace,
            since: HashMap::new(),
        }
    }

    /// Whether `row`, incomplete now, has waited out the grace (its wait starts now if new).
    fn waited_out(&mut self, row: i64, now: Instant) -> bool {
        let since = *self.since.entry(row).or_insert(now);
        now.duration_since(since) >= self.grace
    }

    /// Forget rows this claim took, and rows below the oldest still in the outbox (taken by
    /// another relay): the record stays as small as the rows actually waiting.
    fn forget(&mut self, claimed: &[i64], oldest_row: i64) {
        for row in claimed {
            self.since.remove(row);
        }
        self.since.retain(|row, _| *row >= oldest_row);
    }
}

impl Default for WaitingRows {
    /// [`WRITE_GRACE`].
    fn default() -> Self {
        WaitingRows::new(WRITE_GRACE)
    }
}

/// Binds the PostgreSQL outbox clause adds to a log INSERT.
pub(crate) const POSTGRES_BINDS: usize = 2;

fn ids_text(entries: &[ActivityEntry]) -> String {
    let mut text = String::with_capacity(entries.len() * 37);
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        write!(text, "{}", entry.id).ok();
    }
    text
}

fn quoted(backend: DbBackend, name: &str) -> String {
    match backend {
        DbBackend::MySql => format!("`{name}`"),
        _ => format!("\"{name}\""),
    }
}

/// PostgreSQL: make the log INSERT `statement` (of `entries`) also write their outbox row, in one
/// statement (`WITH activity_entries AS (INSERT ..) INSERT INTO activity_outbox ..`).
pub(crate) fn postgres_statement(statement: Statement, entries: &[ActivityEntry]) -> Statement {
    let Statement {
        sql,
        values,
        db_backend,
        ..
    } = statement;
    let mut values = values.map(|v| v.0).unwrap_or_default();
    let n = values.len();
    values.push(Value::ChronoDateTimeUtc(Some(Utc::now())));
    values.push(Value::String(Some(ids_text(entries))));
    let sql = format!(
        "WITH activity_entries AS ({sql}) INSERT INTO \"{}\" (\"created_at\", \"entry_ids\") \
         VALUES (${}, ${})",
        activity_outbox::Entity.table_name(),
        n + 1,
        n + 2
    );
    Statement::from_sql_and_values(db_backend, sql, values)
}

/// SQLite and MySQL: the INSERTs of the outbox rows of `entries`, sent before their log INSERTs.
pub(crate) fn separate_statements(backend: DbBackend, entries: &[ActivityEntry]) -> Vec<Statement> {
    let table = quoted(backend, activity_outbox::Entity.table_name());
    let now = Utc::now();
    let rows: Vec<&[ActivityEntry]> = entries.chunks(IDS_PER_ROW).collect();
    rows.chunks(ROWS_PER_STATEMENT)
        .map(|rows| {
            let mut sql = format!(
                "INSERT INTO {table} ({}, {}) VALUES ",
                quoted(backend, "created_at"),
                quoted(backend, "entry_ids")
            );
            let mut values = Vec::with_capacity(rows.len() * 2);
            for (i, row) in rows.iter().enumerate() {
                sql.push_str(if i == 0 { "(?, ?)" } else { ", (?, ?)" });
                values.push(Value::ChronoDateTimeUtc(Some(now)));
                values.push(Value::String(Some(ids_text(row))));
            }
            Statement::from_sql_and_values(backend, sql, values)
        })
        .collect()
}

/// Entries claimed from the outbox by a relay, oldest first.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Claimed {
    /// The outbox rows claimed: pass them to [`complete`] once the entries are delivered.
    pub rows: Vec<i64>,
    /// The entries, in outbox order and, within a row, in the order they were written.
    pub entries: Vec<ActivityEntry>,
    /// When the oldest claimed row was written: the relay's lag is `now - oldest`.
    pub oldest: DateTime<Utc>,
    /// Ids listed in the outbox but not in `activity_log` after the grace of [`WaitingRows`]
    /// (pruned before they were relayed, or never written): skipped.
    pub missing: usize,
}

/// What [`claim`] found.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Claim {
    /// Rows to relay, locked by this relay's transaction until it ends.
    Batch(Claimed),
    /// Nothing to relay.
    Empty,
    /// Another relay holds the oldest rows: back off and try again, never overtake it.
    Busy,
    /// The oldest row lists entries not in the log yet, and has not waited out the grace of
    /// its [`WaitingRows`]: try again shortly.
    Pending {
        /// When that row was written (the writer's clock): the relay's lag.
        oldest: DateTime<Utc>,
    },
}

/// Begin a relay's transaction: `READ COMMITTED`, so on MySQL the claim locks only the rows it
/// reads (no gap locks that would hold up writers inserting new outbox rows).
pub async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match db.get_database_backend() {
        DbBackend::Sqlite => db.begin().await,
        _ => {
            db.begin_with_config(Some(IsolationLevel::ReadCommitted), None)
                .await
        }
    }
}

/// How much one [`claim`] may take: outbox rows, entries, and bytes of entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchLimit {
    /// Outbox rows (each lists one flush's entries).
    pub rows: u32,
    /// Entries, counted from the rows' lists before any is loaded.
    pub entries: usize,
    /// Bytes of the entries' `detail` (their changes and context), counted as they are loaded,
    /// in reads of up to 500 entries: a claim stops after the read that passes it.
    pub bytes: usize,
}

impl BatchLimit {
    /// At most `rows` rows and `entries` entries; bytes unbounded.
    pub fn new(rows: u32, entries: usize) -> Self {
        Self {
            rows: rows.max(1),
            entries,
            bytes: usize::MAX,
        }
    }

    /// At most `bytes` bytes of entry details (the first read always).
    pub fn with_bytes(mut self, bytes: usize) -> Self {
        self.bytes = bytes;
        self
    }
}

/// Lock up to `limit.rows` of the oldest outbox rows in `txn` (see [`begin`]) and load their
/// entries: rows in order while their entries together stay within `limit.entries` and
/// `limit.bytes` (the first row always, whatever it lists), so one claim never loads 200 bulk
/// transactions, or a few thousand large entries, at once. Another relay holding them gives
/// [`Claim::Busy`] at once (`NOWAIT`) rather than waiting or skipping ahead, which would
/// publish out of order.
///
/// A row may list entries the log does not hold yet: outside a transaction on SQLite and MySQL
/// the outbox row is written first and its entries right after, and a relay can look in
/// between. The claim then ends before that row ([`Claim::Pending`] if it is the oldest), so
/// no later row overtakes it, and `waiting` starts that row's clock — and the clock of every
/// incomplete row behind it, so several wait one grace together rather than one after another. Once the row has waited
/// out the grace, its entries were never written (the write failed or the process died between
/// the two statements) or have since been pruned: the row is relayed without them, counted in
/// [`Claimed::missing`]. Either way the stream holds what the log holds. An id listed twice is
/// relayed once.
pub async fn claim<C: ConnectionTrait>(
    txn: &C,
    limit: BatchLimit,
    waiting: &mut WaitingRows,
) -> Result<Claim, DbErr> {
    let (max_rows, max_entries) = (limit.rows, limit.entries);
    let backend = txn.get_database_backend();
    let lock = match backend {
        // One writer at a time: the relay's DELETE serializes with other relays.
        DbBackend::Sqlite => "",
        _ => " FOR UPDATE NOWAIT",
    };
    let sql = format!(
        "SELECT {id}, {created_at}, {entry_ids} FROM {table} ORDER BY {id} LIMIT {max_rows}{lock}",
        id = quoted(backend, "id"),
        created_at = quoted(backend, "created_at"),
        entry_ids = quoted(backend, "entry_ids"),
        table = quoted(backend, activity_outbox::Entity.table_name()),
    );
    let rows = match txn
        .query_all_raw(Statement::from_string(backend, sql))
        .await
    {
        Ok(rows) => rows,
        Err(e) if is_lock_not_available(&e) => return Ok(Claim::Busy),
        Err(e) => return Err(e),
    };
    if rows.is_empty() {
        return Ok(Claim::Empty);
    }
    // Each row's id, time and entry ids, in outbox order.
    let mut listed = Vec::with_capacity(rows.len());
    let mut listed_entries = 0usize;
    for row in rows {
        let id: i64 = row.try_get("", "id")?;
        let created_at: DateTime<Utc> = row.try_get("", "created_at")?;
        let entry_ids: String = row.try_get("", "entry_ids")?;
        let mut ids = Vec::new();
        for text in entry_ids.split(',').filter(|t| !t.is_empty()) {
            match uuid::Uuid::parse_str(text) {
                Ok(entry) => ids.push(entry),
                Err(e) => {
                    tracing::error!(outbox_row = id, error = %e, "unreadable id in activity_outbox; skipped");
                }
            }
        }
        // Within the entry budget, in order; the rest stay for the next claim.
        if !listed.is_empty() && listed_entries + ids.len() > max_entries {
            break;
        }
        listed_entries += ids.len();
        listed.push((id, created_at, ids));
    }
    // Load the rows' entries in reads of whole rows, up to 500 ids (10 KB of binds) unless one
    // row lists more, while the bytes budget lasts; after the first read, each read takes about
    // as many entries as the rest of the budget holds at the size seen so far. The rows not read stay for the next claim.
    let mut found: HashMap<uuid::Uuid, ActivityEntry> = HashMap::new();
    let mut bytes = 0usize;
    let mut loaded_rows = 0usize;
    let mut read_size = 500usize;
    while loaded_rows < listed.len() && (loaded_rows == 0 || bytes < limit.bytes) {
        let mut group = Vec::new();
        while loaded_rows < listed.len()
            && (group.is_empty() || group.len() + listed[loaded_rows].2.len() <= read_size)
        {
            group.extend(listed[loaded_rows].2.iter().copied());
            loaded_rows += 1;
        }
        for chunk in group.chunks(500) {
            let models = crate::schema::table::find_entries()
                .filter(activity_log::Column::Id.is_in(chunk.iter().copied()))
                .all(txn)
                .await?;
            for model in models {
                bytes += json_len(&model.detail);
                found.insert(model.id, ActivityEntry::from(model));
            }
        }
        let average = (bytes / found.len().max(1)).max(1);
        read_size = (limit.bytes.saturating_sub(bytes) / average).clamp(1, 500);
    }
    listed.truncate(loaded_rows);
    let present: HashSet<uuid::Uuid> = found.keys().copied().collect();
    let first_row = listed.first().map_or(0, |(row, _, _)| *row);
    let now = Instant::now();
    let mut rows = Vec::with_capacity(listed.len());
    let mut entries = Vec::with_capacity(found.len());
    let mut missing = 0;
    let mut oldest: Option<DateTime<Utc>> = None;
    let mut pending = None;
    for (row, created_at, ids) in listed {
        let absent = ids.iter().filter(|id| !present.contains(id)).count();
        if pending.is_some() {
            // Behind a waiting row nothing is claimed (order), but every incomplete row's
            // clock starts now: ten of them wait one grace together, not ten in a row.
            if absent > 0 {
                waiting.waited_out(row, now);
            }
            continue;
        }
        if absent > 0 && !waiting.waited_out(row, now) {
            // Its entries may still be on their way: stop here, in order, and look again later.
            tracing::debug!(
                outbox_row = row,
                absent,
                "outbox row's entries not written yet; waiting"
            );
            pending = Some(created_at);
            continue;
        }
        missing += absent;
        // `remove`: an id listed again (in this row or an earlier one) is relayed once.
        entries.extend(ids.iter().filter_map(|id| found.remove(id)));
        oldest = Some(oldest.map_or(created_at, |o| o.min(created_at)));
        rows.push(row);
    }
    waiting.forget(&rows, first_row);
    let Some(oldest) = oldest else {
        return Ok(Claim::Pending {
            oldest: pending.unwrap_or_else(Utc::now),
        });
    };
    if missing > 0 {
        tracing::warn!(
            missing,
            "outbox entries not in activity_log (pruned, or never written); skipped"
        );
    }
    Ok(Claim::Batch(Claimed {
        rows,
        entries,
        oldest,
        missing,
    }))
}

/// The length of `value` as JSON, about (strings without escapes), without writing it.
fn json_len(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    match value {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => 2 + items.iter().map(|v| json_len(v) + 1).sum::<usize>(),
        Value::Object(map) => {
            2 + map
                .iter()
                .map(|(k, v)| k.len() + 4 + json_len(v))
                .sum::<usize>()
        }
    }
}

/// Delete relayed outbox rows, in the claiming transaction; commit it afterwards.
pub async fn complete<C: ConnectionTrait>(txn: &C, rows: &[i64]) -> Result<(), DbErr> {
    for chunk in rows.chunks(500) {
        activity_outbox::Entity::delete_many()
            .filter(activity_outbox::Column::Id.is_in(chunk.iter().copied()))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// An entry a relay gives up on: the broker refused it `attempts` times, last with `reason`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The entry's id.
    pub entry_id: uuid::Uuid,
    /// Attempts refused.
    pub attempts: u32,
    /// The broker's last answer.
    pub reason: String,
}

impl DeadLetter {
    /// Entry `entry_id`, refused `attempts` times, last with `reason`.
    pub fn new(entry_id: uuid::Uuid, attempts: u32, reason: impl Into<String>) -> Self {
        Self {
            entry_id,
            attempts,
            reason: reason.into(),
        }
    }
}

/// Record `letters` in `activity_dead_letter`, in the claiming transaction (with [`complete`]):
/// the rows that listed them are deleted in the same commit, so an entry is either still in
/// the outbox or in the dead letters, never lost between them. An entry dead-lettered again
/// (after a [`requeue_dead_letters`]) replaces its earlier letter.
pub async fn dead_letter<C: ConnectionTrait>(txn: &C, letters: &[DeadLetter]) -> Result<(), DbErr> {
    use activity_dead_letter::{ActiveModel, Column, Entity};
    use sea_orm::ActiveValue::Set;
    let now = Utc::now();
    for chunk in letters.chunks(200) {
        Entity::delete_many()
            .filter(Column::EntryId.is_in(chunk.iter().map(|l| l.entry_id)))
            .exec(txn)
            .await?;
        Entity::insert_many(chunk.iter().map(|l| ActiveModel {
            entry_id: Set(l.entry_id),
            created_at: Set(now),
            attempts: Set(i32::try_from(l.attempts).unwrap_or(i32::MAX)),
            reason: Set(l.reason.clone()),
        }))
        .exec_without_returning(txn)
        .await?;
    }
    Ok(())
}

/// The dead letters, oldest first.
pub async fn dead_letters<C: ConnectionTrait>(
    db: &C,
) -> Result<Vec<activity_dead_letter::Model>, DbErr> {
    use sea_orm::QueryOrder;
    activity_dead_letter::Entity::find()
        .order_by_asc(activity_dead_letter::Column::CreatedAt)
        .order_by_asc(activity_dead_letter::Column::EntryId)
        .all(db)
        .await
}

/// Put every dead letter back in the outbox (one new row listing them, oldest first) and
/// delete the letters, in one transaction: once the cause is fixed (a stream's message size
/// limit raised, a subject allowed), the relay publishes them after what is already queued.
/// Returns how many were requeued.
pub async fn requeue_dead_letters(db: &DatabaseConnection) -> Result<u64, DbErr> {
    use sea_orm::ActiveValue::{NotSet, Set};
    let txn = db.begin().await?;
    let letters = dead_letters(&txn).await?;
    if letters.is_empty() {
        txn.commit().await?;
        return Ok(0);
    }
    for chunk in letters.chunks(IDS_PER_ROW) {
        let ids: Vec<String> = chunk.iter().map(|l| l.entry_id.to_string()).collect();
        activity_outbox::Entity::insert(activity_outbox::ActiveModel {
            id: NotSet,
            created_at: Set(Utc::now()),
            entry_ids: Set(ids.join(",")),
        })
        .exec_without_returning(&txn)
        .await?;
    }
    for chunk in letters.chunks(200) {
        activity_dead_letter::Entity::delete_many()
            .filter(activity_dead_letter::Column::EntryId.is_in(chunk.iter().map(|l| l.entry_id)))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(letters.len() as u64)
}

/// Rows waiting in the outbox (a relay's backlog, in batches of entries).
pub async fn pending<C: ConnectionTrait>(db: &C) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    activity_outbox::Entity::find().count(db).await
}

/// The most outbox rows a relay claims at once from the head of the outbox that
/// [`wait_for_claimed`] waits for.
const CLAIMED_AT_MOST: u64 = 10_000;

/// Wait until no relay batch claimed before now is still in flight: a relay holds its rows'
/// locks from [`claim`] until it has published the entries and [`complete`]d the rows, and the
/// entries it loaded are as they were when it claimed them. An erasure calls this after the
/// log's commit and before it reads the stream, so the copies it scans include everything a
/// relay loaded before the log was rewritten. PostgreSQL and MySQL (SQLite relays hold no
/// row locks: run one relay per database, and not during an erasure); waits at most 30 s on
/// PostgreSQL, the server's lock wait timeout on MySQL.
pub(crate) async fn wait_for_claimed<C: ConnectionTrait + TransactionTrait>(
    db: &C,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    if backend == DbBackend::Sqlite
        || !crate::schema::named_table_exists(db, activity_outbox::Entity.table_name()).await?
    {
        return Ok(());
    }
    let txn = db.begin().await?;
    if backend == DbBackend::Postgres {
        txn.execute_unprepared("SET LOCAL lock_timeout = '30s'")
            .await?;
    }
    // Relays claim from the head, in id order: lock the rows they may hold.
    let sql = format!(
        "SELECT {id} FROM {table} ORDER BY {id} LIMIT {CLAIMED_AT_MOST} FOR UPDATE",
        id = quoted(backend, "id"),
        table = quoted(backend, activity_outbox::Entity.table_name()),
    );
    let locked = txn
        .query_all_raw(Statement::from_string(backend, sql))
        .await;
    txn.rollback().await?;
    locked.map(drop)
}

/// The entries not relayed yet: those the outbox still lists (committed, not published) and
/// those the relay gave up on ([`dead_letter`]: waiting for [`requeue_dead_letters`]); none
/// without those tables. Retention keeps them, so that every committed entry leaves the
/// database once.
pub(crate) async fn unrelayed<C: ConnectionTrait>(db: &C) -> Result<HashSet<uuid::Uuid>, DbErr> {
    let mut ids = HashSet::new();
    if crate::schema::named_table_exists(db, activity_outbox::Entity.table_name()).await? {
        let lists: Vec<String> = activity_outbox::Entity::find()
            .select_only()
            .column(activity_outbox::Column::EntryIds)
            .into_tuple()
            .all(db)
            .await?;
        ids.extend(
            lists
                .iter()
                .flat_map(|list| list.split(','))
                .filter_map(|text| uuid::Uuid::parse_str(text).ok()),
        );
    }
    if crate::schema::named_table_exists(db, activity_dead_letter::Entity.table_name()).await? {
        let letters: Vec<uuid::Uuid> = activity_dead_letter::Entity::find()
            .select_only()
            .column(activity_dead_letter::Column::EntryId)
            .into_tuple()
            .all(db)
            .await?;
        ids.extend(letters);
    }
    Ok(ids)
}

/// The oldest time among `ids`' entries (the log's own times, which a writer may have set in
/// the past), if any of them is stored.
pub(crate) async fn oldest_of<C: ConnectionTrait>(
    db: &C,
    ids: &HashSet<uuid::Uuid>,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let ids: Vec<uuid::Uuid> = ids.iter().copied().collect();
    let mut oldest: Option<DateTime<Utc>> = None;
    for chunk in ids.chunks(500) {
        let first: Option<DateTime<Utc>> = activity_log::Entity::find()
            .select_only()
            .column_as(activity_log::Column::CreatedAt.min(), "oldest")
            .filter(activity_log::Column::Id.is_in(chunk.iter().copied()))
            .into_tuple::<Option<DateTime<Utc>>>()
            .one(db)
            .await?
            .flatten();
        oldest = match (oldest, first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(oldest)
}

/// PostgreSQL `lock_not_available` (SQLSTATE 55P03); MySQL/MariaDB `ER_LOCK_WAIT_TIMEOUT`
/// (1205) and `ER_LOCK_NOWAIT` (3572), which `NOWAIT` raises (both SQLSTATE HY000, so the
/// driver's error number decides). Read from the driver's error when a backend feature gives
/// this crate its type, from the message otherwise.
fn is_lock_not_available(e: &DbErr) -> bool {
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    if let DbErr::Exec(sea_orm::RuntimeErr::SqlxError(err))
    | DbErr::Query(sea_orm::RuntimeErr::SqlxError(err)) = e
    {
        let Some(db) = err.as_database_error() else {
            return false;
        };
        #[cfg(feature = "mysql")]
        if let Some(mysql) = db.try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>() {
            return matches!(mysql.number(), 1205 | 3572);
        }
        return db.code().as_deref() == Some("55P03");
    }
    // Built without a backend feature (the application enabled SeaORM's driver directly): the
    // driver's error type is out of reach, its message is not.
    #[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
    {
        let text = e.to_string();
        if text.contains("55P03") || text.contains("1205") || text.contains("3572") {
            return true;
        }
    }
    let _ = e;
    false
}

/// `entry` as a message of at most `limit` bytes of JSON, for a relay whose broker refuses
/// larger ones (NATS: `max_payload`, 1 MiB by default). The value cap keeps every value small,
/// but an entry of many large fields can still outgrow it: such an entry is sent with its
/// values capped ever lower (16 KiB down to 64 bytes), each as its size and SHA-256; if even
/// that is too large, with its changes and context replaced by the digest of the whole
/// `detail`. The log row keeps what was stored; the message says what it left out, never
/// blocks the entries behind it, and is never refused for its size. Returns the JSON and
/// whether it had to be shrunk.
pub fn message_within(
    entry: &ActivityEntry,
    limit: usize,
) -> Result<(Vec<u8>, bool), serde_json::Error> {
    let json = serde_json::to_vec(entry)?;
    if json.len() <= limit {
        return Ok((json, false));
    }
    let mut smaller = entry.clone();
    for cap in [16 * 1024, 4 * 1024, 1024, 256, 64] {
        crate::cap::cap_entry(&mut smaller, cap);
        let json = serde_json::to_vec(&smaller)?;
        if json.len() <= limit {
            return Ok((json, true));
        }
    }
    let mut detail = serde_json::to_value(&entry.detail)?;
    crate::cap::cap_value(&mut detail, 0);
    smaller.detail.changes.clear();
    smaller.detail.trigger = None;
    smaller.detail.context = Some(detail);
    Ok((serde_json::to_vec(&smaller)?, true))
}
