//! The write path's last database step: entries become one multi-row INSERT per chunk, in a
//! savepoint where a failure must not abort the caller's transaction or leave half a log.

use std::fmt::Write as _;

use activity_core::actor::check_identifier;
use activity_core::hooks::prepare_entries;
use activity_core::{ActivityConfig, ActivityEntry, FailurePolicy};
use sea_orm::sea_query::Value;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, EntityName, IdenStatic, Iterable, Statement};
use tracing::Instrument;

use crate::config;
use crate::outbox;
use crate::schema::table::{
    DETAIL_COLUMN, ROW_COLUMNS, TRACED_ROW_COLUMNS, activity_log, row_values,
};
use crate::write::events;
use crate::write::failure::{
    ChangeState, IdentifierTooLong, Refusal, log_write_error, refused_write_error,
};

/// Rows of `columns` values per INSERT so one statement stays under the backend's
/// bind-parameter limit.
fn rows_per_statement(backend: DbBackend, columns: usize) -> usize {
    let binds = match backend {
        DbBackend::Sqlite => 32_766,
        // Room for the outbox clause's values.
        DbBackend::Postgres => 65_535 - outbox::POSTGRES_BINDS,
        _ => 65_535,
    };
    binds / columns
}

/// What a connection type says about the change a hook just made on it.
pub(crate) fn change_state<C: ?Sized>() -> ChangeState {
    // `C` need not be `'static`, so `TypeId` is out of reach; the type's name is stable for
    // SeaORM's two connection types, and anything else is reported as unknown.
    let name = std::any::type_name::<C>();
    if name.ends_with("DatabaseTransaction") {
        ChangeState::InOpenTransaction
    } else if name.ends_with("DatabaseConnection") {
        ChangeState::Committed
    } else {
        ChangeState::Unknown
    }
}

/// Prepare (hooks, drop rules), insert and publish entries outside a helper transaction, under
/// the failure policy. Inside a transaction the caller opened, the INSERT runs in a savepoint
/// when it must not abort that transaction (fail-open) or could leave part of the log written
/// (several statements).
pub(crate) async fn write_now<C: ConnectionTrait>(
    db: &C,
    mut entries: Vec<ActivityEntry>,
) -> Result<(), DbErr> {
    let policy = ActivityConfig::with_current(|c| {
        prepare_entries(c.hooks(), &mut entries);
        c.failure_policy()
    });
    crate::cap::cap_entries(&mut entries);
    if entries.is_empty() {
        return Ok(());
    }
    let state = change_state::<C>();
    if let Err(refused) = check_all(&entries) {
        return refuse(refused, policy, state, entries.len());
    }
    let in_transaction = state == ChangeState::InOpenTransaction;
    // Autocommit: every statement commits alone, so one statement is what makes the write whole.
    // No wire budget then (SQLite has none anyway): only the bind limit splits the entries.
    let autocommit = state == ChangeState::Committed;
    let chunks = chunk(db.get_database_backend(), &entries, autocommit);
    let savepoint = in_transaction && (policy == FailurePolicy::FailOpen || chunks.len() > 1);
    let span = span(&entries);
    let result = if savepoint {
        in_savepoint(db, chunks).instrument(span).await
    } else {
        send(db, chunks).instrument(span).await
    };
    match result {
        Ok(()) => {
            events::publish(entries);
            Ok(())
        }
        Err(e) => fail(e, policy, state, entries.len()),
    }
}

/// Insert prepared entries inside a helper transaction that is about to commit; a failure
/// rolls it back (fail-closed) or loses only the entries (fail-open, in a savepoint).
pub(crate) async fn flush<C: ConnectionTrait>(
    txn: &C,
    entries: &[ActivityEntry],
) -> Result<bool, DbErr> {
    let policy = ActivityConfig::with_current(|c| c.failure_policy());
    if let Err(refused) = check_all(entries) {
        refuse(refused, policy, ChangeState::RolledBack, entries.len())?;
        return Ok(false);
    }
    let chunks = chunk(txn.get_database_backend(), entries, false);
    let span = span(entries);
    match policy {
        FailurePolicy::FailClosed => match send(txn, chunks).instrument(span).await {
            Ok(()) => Ok(true),
            Err(e) => Err(log_write_error(e, ChangeState::RolledBack, entries.len())),
        },
        FailurePolicy::FailOpen => match in_savepoint(txn, chunks).instrument(span).await {
            Ok(()) => Ok(true),
            Err(e) => {
                fail(e, policy, ChangeState::RolledBack, entries.len())?;
                Ok(false)
            }
        },
    }
}

/// The span of one flush (`activity.flush`), a child of the writer's: how many entries and
/// their ids ([`span_entry_ids`](activity_core::trace::span_entry_ids)), so a trace leads to
/// its entries. The ids are formatted only when a subscriber records the span.
fn span(entries: &[ActivityEntry]) -> tracing::Span {
    let span = tracing::info_span!(
        "activity.flush",
        entries = entries.len(),
        entry_ids = tracing::field::Empty
    );
    if !span.is_disabled() {
        span.record(
            "entry_ids",
            activity_core::trace::span_entry_ids(entries.iter().map(|e| e.id)),
        );
    }
    span
}

/// Apply the failure policy to a failed write of `count` entries.
fn fail(
    error: DbErr,
    policy: FailurePolicy,
    state: ChangeState,
    count: usize,
) -> Result<(), DbErr> {
    match policy {
        FailurePolicy::FailClosed => Err(log_write_error(error, state, count)),
        FailurePolicy::FailOpen => {
            lose(&error, count);
            Ok(())
        }
    }
}

/// Fail-open: the change stands without its `count` entries; counted and traced.
fn lose(error: &dyn std::fmt::Display, count: usize) {
    config::count_failed(count);
    tracing::warn!(error = %error, lost = count, "activity log write failed; change kept (fail-open)");
}

/// Every entry's identifiers fit their columns. Checked here, after the `before_append` hooks
/// (which may shorten or hash an id) and before any statement, so a refusal leaves nothing
/// half-written and fails the write as a whole, as a failed INSERT would.
///
/// Actor ids must also name someone: an empty id or one with a control character would be
/// stored as a real user (the request middleware refuses both before any work; this is the
/// last line).
fn check_all(entries: &[ActivityEntry]) -> Result<(), Refusal> {
    for entry in entries {
        check_identifiers(entry).map_err(Refusal::TooLong)?;
        for (what, id) in [
            ("user id", entry.user_id.as_deref()),
            ("impersonator id", entry.impersonated_by.as_deref()),
        ] {
            if let Some(id) = id
                && (id.is_empty() || id.chars().any(char::is_control))
            {
                check_identifier(what, id).map_err(Refusal::Invalid)?;
            }
        }
    }
    Ok(())
}

/// Apply the failure policy to a write of `count` entries refused for `refused`.
fn refuse(
    refused: Refusal,
    policy: FailurePolicy,
    state: ChangeState,
    count: usize,
) -> Result<(), DbErr> {
    match policy {
        FailurePolicy::FailClosed => Err(refused_write_error(refused, state, count)),
        FailurePolicy::FailOpen => {
            lose(&refused, count);
            Ok(())
        }
    }
}

const SAVEPOINT: &str = "activity_log_write";

async fn in_savepoint<C: ConnectionTrait>(db: &C, chunks: Vec<Statement>) -> Result<(), DbErr> {
    db.execute_unprepared(&format!("SAVEPOINT {SAVEPOINT}"))
        .await?;
    match send(db, chunks).await {
        Ok(()) => {
            db.execute_unprepared(&format!("RELEASE SAVEPOINT {SAVEPOINT}"))
                .await?;
            Ok(())
        }
        Err(e) => {
            if let Err(undo) = db
                .execute_unprepared(&format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"))
                .await
            {
                tracing::warn!(error = %undo, "rolling back the activity log savepoint failed");
            }
            Err(e)
        }
    }
}

async fn send<C: ConnectionTrait>(db: &C, chunks: Vec<Statement>) -> Result<(), DbErr> {
    for statement in chunks {
        db.execute_raw(statement).await?;
    }
    Ok(())
}

/// What an autocommit write may put in one statement on MySQL (values; the text adds ~60 bytes a
/// row): under every server's default `max_allowed_packet` (1 MiB in MySQL 5.6, 4 MiB in 5.7,
/// 16 MiB in MariaDB, 64 MiB in MySQL 8). A larger configured wire budget is used as is.
const MYSQL_AUTOCOMMIT_BYTES: usize = 512 << 10;

/// The statements that write `entries`: their INSERTs and, with the outbox on, their outbox
/// rows (inside each INSERT on PostgreSQL, before them elsewhere).
/// `autocommit`: no wire budget (only MySQL's packet limit), because there only a single
/// statement is atomic.
fn chunk(backend: DbBackend, entries: &[ActivityEntry], autocommit: bool) -> Vec<Statement> {
    let (budget, outbox, compact) =
        ActivityConfig::with_current(|c| (c.wire_budget(), c.outbox(), c.compact_detail()));
    let budget = match (autocommit, backend) {
        (false, _) => budget,
        (true, DbBackend::MySql) => budget.max(MYSQL_AUTOCOMMIT_BYTES),
        (true, _) => usize::MAX,
    };
    let inserts = inserts(backend, entries, budget, compact);
    if !outbox {
        return inserts
            .into_iter()
            .map(|(statement, _)| statement)
            .collect();
    }
    match backend {
        DbBackend::Postgres => inserts
            .into_iter()
            .map(|(statement, rows)| outbox::postgres_statement(statement, &entries[rows]))
            .collect(),
        // The outbox row goes first. Outside a transaction (or on a connection type whose
        // state is unknown) each statement may commit alone: a failure between the two then
        // leaves a row naming entries that never came, which the relay skips after its grace,
        // never entries no relay will publish. Inside a transaction the order is immaterial.
        _ => {
            let mut statements = outbox::separate_statements(backend, entries);
            statements.extend(inserts.into_iter().map(|(s, _)| s));
            statements
        }
    }
}

/// The INSERTs for `entries`, each with the range of entries it holds: at most
/// [`rows_per_statement`] rows each and, on a network server, at most `budget` bytes of bound
/// values (at least one row each). `compact`: `detail` in its compact stored form.
fn inserts(
    backend: DbBackend,
    entries: &[ActivityEntry],
    budget: usize,
    compact: bool,
) -> Vec<(Statement, std::ops::Range<usize>)> {
    let budget = match backend {
        DbBackend::Sqlite => usize::MAX,
        _ => budget,
    };
    // The trace columns are named only when an entry has a trace: every other write works on
    // a log created before those columns existed (see `schema::upgrade`).
    let traced = entries.iter().any(|e| e.trace_id.is_some());
    let columns = if traced {
        TRACED_ROW_COLUMNS
    } else {
        ROW_COLUMNS
    };
    let max_rows = rows_per_statement(backend, columns);
    let mut statements = Vec::new();
    let mut values = Vec::with_capacity(entries.len().min(max_rows) * columns);
    let mut rows = 0;
    let mut size = 0;
    for (i, entry) in entries.iter().enumerate() {
        let start = values.len();
        row_values(entry, &mut values, traced, compact);
        let row_size: usize = values[start..].iter().map(wire_size).sum();
        if rows > 0 && (rows == max_rows || size + row_size > budget) {
            let row: Vec<Value> = values.drain(start..).collect();
            let statement = insert_statement(backend, rows, columns, std::mem::take(&mut values));
            statements.push((statement, i - rows..i));
            values = row;
            rows = 0;
            size = 0;
        }
        rows += 1;
        size += row_size;
    }
    if rows > 0 {
        let statement = insert_statement(backend, rows, columns, values);
        statements.push((statement, entries.len() - rows..entries.len()));
    }
    statements
}

/// Bytes a bound value takes in the statement's message: a length prefix and its encoding.
/// The one size model of the flush (the values are what is sent).
fn wire_size(value: &Value) -> usize {
    4 + match value {
        Value::String(Some(s)) => s.len(),
        Value::Uuid(Some(_)) => 16,
        Value::Bool(Some(_)) => 1,
        Value::String(None) | Value::Uuid(None) | Value::Bool(None) => 0,
        _ => 8,
    }
}

/// One multi-row INSERT of `rows` rows, written directly rather than through `insert_many`: no
/// active models, no entry clones, no expression tree (a third of the flush's CPU went to
/// allocations there). The values are the same types `insert_many` binds.
fn insert_statement(
    backend: DbBackend,
    rows: usize,
    row_columns: usize,
    values: Vec<Value>,
) -> Statement {
    let quote = |name: &str| match backend {
        DbBackend::MySql => format!("`{name}`"),
        _ => format!("\"{name}\""),
    };
    let columns: Vec<String> = activity_log::Column::iter()
        .take(row_columns)
        .map(|c| quote(c.as_str()))
        .collect();
    let mut sql = String::with_capacity(64 + rows * row_columns * 5);
    sql.push_str("INSERT INTO ");
    sql.push_str(&quote(activity_log::Entity.table_name()));
    sql.push_str(" (");
    sql.push_str(&columns.join(", "));
    sql.push_str(") VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..row_columns {
            if col > 0 {
                sql.push_str(", ");
            }
            let n = row * row_columns + col + 1;
            match (backend, col == DETAIL_COLUMN) {
                (DbBackend::Postgres, true) => write!(sql, "CAST(${n} AS jsonb)"),
                (DbBackend::Postgres, false) => write!(sql, "${n}"),
                _ => write!(sql, "?"),
            }
            .ok();
        }
        sql.push(')');
    }
    Statement::from_sql_and_values(backend, sql, values)
}

/// The first identifier of `e` longer than its column, if any. Counts characters, as the
/// backends' `varchar(n)` do; the byte length bounds the count, so short values cost no scan.
pub(crate) fn check_identifiers(e: &ActivityEntry) -> Result<(), IdentifierTooLong> {
    use activity_log::Column as C;
    let values: [(C, Option<&str>); 8] = [
        (C::OrganizationId, e.organization_id.as_deref()),
        (C::TeamId, e.team_id.as_deref()),
        (C::UserId, e.user_id.as_deref()),
        (C::ImpersonatedBy, e.impersonated_by.as_deref()),
        (C::Scope, Some(e.scope.as_str())),
        (C::ItemId, e.item_id.as_deref()),
        (C::Activity, Some(e.activity.as_str())),
        (C::CorrelationId, e.correlation_id.as_deref()),
    ];
    for (column, value) in values {
        let Some(value) = value else { continue };
        let max = crate::schema::table::max_of(column);
        if value.len() <= max {
            continue;
        }
        let chars = value.chars().count();
        if chars > max {
            return Err(IdentifierTooLong {
                column: column.as_str(),
                chars,
                max,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::table::IDENTIFIER_MAX;

    /// Descriptive text is cut to its width in characters, on a boundary; identifiers up to
    /// their width pass, one character more is refused naming the column.
    #[test]
    fn caps_cut_descriptive_text_and_refuse_long_identifiers() {
        let mut entry = ActivityEntry::new("Setting", "updated");
        entry.user_agent = Some("é".repeat(600));
        entry.user_name = Some(format!("a{}", "é".repeat(300)));
        entry.user_id = Some("é".repeat(IDENTIFIER_MAX));
        entry.item_id = Some("x".repeat(IDENTIFIER_MAX));
        let mut values = Vec::new();
        row_values(&entry, &mut values, false, true);
        let Value::String(Some(ua)) = &values[16] else {
            panic!("user_agent: {:?}", values[16])
        };
        assert_eq!(ua.chars().count(), 512);
        assert!(ua.chars().all(|c| c == 'é'));
        let Value::String(Some(name)) = &values[5] else {
            panic!("user_name: {:?}", values[5])
        };
        assert_eq!(name.chars().count(), 255);
        assert_eq!(check_identifiers(&entry), Ok(()));

        entry.user_id = Some("é".repeat(IDENTIFIER_MAX + 1));
        let refused = check_identifiers(&entry).unwrap_err();
        assert_eq!(
            refused,
            IdentifierTooLong {
                column: "user_id",
                chars: 256,
                max: 255
            }
        );
        assert_eq!(
            refused.to_string(),
            "activity log: user_id is 256 characters, longer than the 255 the column stores \
             exactly; refused"
        );
        entry.user_id = None;
        entry.activity = "v".repeat(80);
        assert_eq!(check_identifiers(&entry).unwrap_err().column, "activity");
    }
}
