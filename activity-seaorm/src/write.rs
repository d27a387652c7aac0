//! The write path's last steps: stamp an entry with its context, buffer it or write it now,
//! and the multi-row INSERT both end in.

use activity_core::{ActivityContext, ActivityEntry, ModelActivity, hooks::prepare_entries};
use chrono::SubsecRound;
use std::fmt::Write as _;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, EntityName, IdenStatic, Iterable, Statement};

use crate::buffer;
use crate::config::{self, ActivityConfig, FailurePolicy};
use crate::entity::{DETAIL_COLUMN, ROW_COLUMNS, activity_log, row_values};
use crate::events;
use crate::keys::conn_key;

/// Columns per row of the INSERT.
const COLUMNS: usize = ROW_COLUMNS;

/// Rows per INSERT so one statement stays under the backend's bind-parameter limit.
pub(crate) fn rows_per_statement(backend: DbBackend) -> usize {
    let binds = match backend {
        DbBackend::Sqlite => 32_766,
        _ => 65_535,
    };
    binds / COLUMNS
}

/// Bytes one entry adds to the INSERT message: fixed-width columns, length prefixes and text.
fn approx_wire_size(e: &ActivityEntry) -> usize {
    fn json(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::String(s) => s.len() + 3,
            serde_json::Value::Array(a) => 2 + a.iter().map(|v| json(v) + 1).sum::<usize>(),
            serde_json::Value::Object(o) => {
                2 + o.iter().map(|(k, v)| k.len() + 4 + json(v)).sum::<usize>()
            }
            _ => 8,
        }
    }
    let text = |v: &Option<String>| v.as_ref().map_or(0, String::len);
    let detail = e.detail.changes.iter().map(|c| {
        48 + c.kind.len()
            + c.field.as_ref().map_or(0, String::len)
            + json(&c.before)
            + json(&c.after)
    });
    COLUMNS * 4
        + 16
        + 8
        + 2
        + [
            &e.organization_id,
            &e.team_id,
            &e.user_id,
            &e.user_name,
            &e.impersonated_by,
        ]
        .into_iter()
        .map(text)
        .sum::<usize>()
        + e.scope.len()
        + text(&e.item_id)
        + e.activity.len()
        + [
            &e.request_id,
            &e.correlation_id,
            &e.ip_address,
            &e.user_agent,
            &e.client,
        ]
        .into_iter()
        .map(text)
        .sum::<usize>()
        + 80
        + text(&e.detail.name)
        + text(&e.detail.short_id)
        + detail.sum::<usize>()
        + e.detail.context.as_ref().map_or(0, json)
        + e.detail.trigger.as_ref().map_or(0, |t| {
            40 + t.job_type.len() + t.job_id.len() + json(&t.payload)
        })
}

/// A new entry for `model`: scope, item id, name, short id and tenant from the derive.
pub(crate) fn model_entry<M: ModelActivity>(
    model: &M,
    item_id: Option<String>,
    activity: &str,
) -> ActivityEntry {
    let mut entry = ActivityEntry::new(M::SCOPE, activity);
    entry.created_at = ActivityConfig::with_current(|c| c.clock().now());
    entry.item_id = item_id;
    entry.detail.name = model.activity_name();
    entry.detail.short_id = model.activity_short_id();
    entry.team_id = model.activity_team_id();
    entry.organization_id = model.activity_organization_id();
    entry
}

/// Stamp `entry` with the current context. Timestamps keep microseconds, what every backend
/// stores, so a cursor built from a read entry matches the stored row exactly.
pub(crate) fn stamp(entry: &mut ActivityEntry) {
    entry.created_at = entry.created_at.trunc_subsecs(6);
    match ActivityContext::current() {
        Some(ctx) => entry.apply_context(&ctx),
        None => entry.apply_context(&ActivityContext::system()),
    }
}

/// Buffer `entry` in the transaction of `db`, or write it now through `db`.
pub(crate) async fn emit<C: ConnectionTrait>(
    db: &C,
    mut entry: ActivityEntry,
) -> Result<(), DbErr> {
    stamp(&mut entry);
    match buffer::push(conn_key(db), entry) {
        None => Ok(()),
        Some(entry) => write_now(db, vec![entry]).await,
    }
}

/// Buffer `entry` in the helper transaction whose connection key is `conn`; hands it back if
/// that transaction is not open.
pub(crate) fn buffer_into(conn: usize, mut entry: ActivityEntry) -> Option<ActivityEntry> {
    stamp(&mut entry);
    buffer::push(conn, entry)
}

/// Prepare (hooks, drop rules), insert and publish entries outside a helper transaction.
pub(crate) async fn write_now<C: ConnectionTrait>(
    db: &C,
    mut entries: Vec<ActivityEntry>,
) -> Result<(), DbErr> {
    ActivityConfig::with_current(|c| prepare_entries(c.hooks(), &mut entries));
    if entries.is_empty() {
        return Ok(());
    }
    match insert_entries(db, &entries).await {
        Ok(()) => {
            events::publish(entries);
            Ok(())
        }
        Err(e) => fail(e, entries.len()),
    }
}

/// Apply the failure policy to a failed write of `count` entries.
pub(crate) fn fail(error: DbErr, count: usize) -> Result<(), DbErr> {
    match ActivityConfig::with_current(|c| c.failure_policy()) {
        FailurePolicy::FailClosed => Err(write_error(&error)),
        FailurePolicy::FailOpen => {
            config::count_failed(count);
            tracing::warn!(error = %error, lost = count, "activity log write failed; change kept (fail-open)");
            Ok(())
        }
    }
}

/// The error a caller sees when the log cannot be written (fail-closed).
pub(crate) fn write_error(error: &DbErr) -> DbErr {
    DbErr::Custom(format!(
        "activity log write failed, change not committed: {error}"
    ))
}

/// One multi-row INSERT per chunk of [`rows_per_statement`] entries.
pub(crate) async fn insert_entries<C: ConnectionTrait>(
    db: &C,
    entries: &[ActivityEntry],
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let rows = rows_per_statement(backend);
    let budget = match backend {
        DbBackend::Sqlite => usize::MAX,
        _ => ActivityConfig::with_current(|c| c.wire_budget()),
    };
    let mut rest = entries;
    while !rest.is_empty() {
        let mut size = 0;
        let take = rest
            .iter()
            .take(rows)
            .take_while(|e| {
                size += approx_wire_size(e);
                size <= budget
            })
            .count()
            .max(1);
        let (chunk, tail) = rest.split_at(take);
        db.execute_raw(insert_statement(backend, chunk)).await?;
        rest = tail;
    }
    Ok(())
}

/// One multi-row INSERT of `chunk`, written directly rather than through `insert_many`: no
/// active models, no entry clones, no expression tree (a third of the flush's CPU went to
/// allocations there). The values are the same types `insert_many` binds.
fn insert_statement(backend: DbBackend, chunk: &[ActivityEntry]) -> Statement {
    let quote = |name: &str| match backend {
        DbBackend::MySql => format!("`{name}`"),
        _ => format!("\"{name}\""),
    };
    let columns: Vec<String> = activity_log::Column::iter()
        .map(|c| quote(c.as_str()))
        .collect();
    let mut sql = String::with_capacity(64 + chunk.len() * ROW_COLUMNS * 5);
    sql.push_str("INSERT INTO ");
    sql.push_str(&quote(activity_log::Entity.table_name()));
    sql.push_str(" (");
    sql.push_str(&columns.join(", "));
    sql.push_str(") VALUES ");
    let mut values = Vec::with_capacity(chunk.len() * ROW_COLUMNS);
    for (row, entry) in chunk.iter().enumerate() {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..ROW_COLUMNS {
            if col > 0 {
                sql.push_str(", ");
            }
            let n = row * ROW_COLUMNS + col + 1;
            match (backend, col == DETAIL_COLUMN) {
                (DbBackend::Postgres, true) => write!(sql, "CAST(${n} AS jsonb)"),
                (DbBackend::Postgres, false) => write!(sql, "${n}"),
                _ => write!(sql, "?"),
            }
            .ok();
        }
        sql.push(')');
        row_values(entry, &mut values);
    }
    Statement::from_sql_and_values(backend, sql, values)
}

/// Write one entry by hand, with the same rules as the hooks: the current context is applied,
/// `before_append` may patch or veto it, an `updated` entry without changes is dropped unless
/// [`ActivityEntry::forced`], and inside [`transaction`](crate::transaction) it is written at
/// commit.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), sea_orm::DbErr> {
/// use activity_seaorm::prelude::*;
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// activity_seaorm::schema::create_table(&db).await?;
/// let entry = ActivityEntry::new("Export", "exported").with_item_id("42");
/// activity_seaorm::log_activity(&db, entry).await?;
/// # Ok(()) }
/// ```
pub async fn log_activity<C: ConnectionTrait>(db: &C, entry: ActivityEntry) -> Result<(), DbErr> {
    bulk_log_activity(db, vec![entry]).await
}

/// Write many entries by hand, in one INSERT per chunk (see [`log_activity`]).
pub async fn bulk_log_activity<C: ConnectionTrait>(
    db: &C,
    entries: Vec<ActivityEntry>,
) -> Result<(), DbErr> {
    let key = conn_key(db);
    let mut now = Vec::new();
    for mut entry in entries {
        if activity_core::is_muted(&entry.scope) {
            continue;
        }
        stamp(&mut entry);
        if let Some(entry) = buffer::push(key, entry) {
            now.push(entry);
        }
    }
    if now.is_empty() {
        return Ok(());
    }
    write_now(db, now).await
}
