//! Converting the `detail` of rows written before the compact stored form.
//!
//! Every version since reads both forms, so nothing *needs* converting: [`compact_details`]
//! only gives back the space. Each row's JSON is read as text (as the hash reads it, never
//! through `serde_json::Value`'s parser) and rewritten with exactly the keys the compact form
//! leaves out removed ([`compact_detail`]); everything else in it stays as it was. The keys it
//! removes are the ones every read, and the sealer's hash, put back, so entries read back and
//! sealed blocks verify the same after it.

use activity_core::entry::compact_detail;
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, Statement, TransactionSession, TransactionTrait, Value,
};
use uuid::Uuid;

use super::guard;

/// Rows read and locked per transaction.
const BATCH: usize = 500;

/// Rewrite the `detail` of every row still in the full stored form to the compact one (see
/// [`ActivityConfig::with_compact_detail`](crate::config::ActivityConfig::with_compact_detail)),
/// and return how many rows it rewrote. Idempotent: rows already compact are read, not written.
///
/// Run it once every instance runs a version that reads the compact form (one that cannot
/// would read such rows' changes as missing). It walks the log by `id`, 500 rows at a time, each
/// batch in a transaction of its own that locks the rows it reads (`FOR UPDATE` on PostgreSQL
/// and MySQL), so a concurrent erasure of the same rows waits for the batch, or the batch for
/// it, and neither undoes the other. Writers are not blocked: new entries lock nothing it reads.
/// On PostgreSQL the old row versions take space until `VACUUM` reclaims them (autovacuum will),
/// and with the [append-only guard](guard) installed it runs each batch in maintenance.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), sea_orm::DbErr> {
/// use activity_seaorm::{ActivityConfig, ActivityEntry, log_activity};
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// activity_seaorm::schema::create_table(&db).await?;
/// // An entry written in the full form, as a version before the compact form wrote it.
/// let entry = ActivityEntry::new("Flag", "updated").with_item_id("1").with_name("beta");
/// let full = ActivityConfig::new().with_compact_detail(false);
/// full.scope(log_activity(&db, entry)).await?;
/// assert_eq!(activity_seaorm::schema::compact_details(&db).await?, 1);
/// assert_eq!(activity_seaorm::schema::compact_details(&db).await?, 0); // already compact
/// # Ok(()) }
/// ```
pub async fn compact_details<C: ConnectionTrait + TransactionTrait>(db: &C) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let mut after: Option<Uuid> = None;
    let mut rewritten = 0u64;
    loop {
        let txn = db.begin().await?;
        guard::enter_maintenance(&txn).await?;
        let rows = txn.query_all_raw(page(backend, after)).await?;
        let mut changed: Vec<(Uuid, String)> = Vec::new();
        for row in &rows {
            let id: Uuid = row.try_get("", "id")?;
            let scope: String = row.try_get("", "scope")?;
            let text: String = row.try_get("", "detail")?;
            after = Some(id);
            // Not JSON (only a row altered by hand): left for the checks to report.
            let Ok(stored) = activity_core::seal::parse_json(&text) else {
                continue;
            };
            let mut compact = stored.clone();
            compact_detail(&mut compact, &scope);
            if compact != stored {
                let text = serde_json::to_string(&compact)
                    .map_err(|e| DbErr::Custom(format!("detail of {id}: {e}")))?;
                changed.push((id, text));
            }
        }
        if !changed.is_empty() {
            txn.execute_raw(update(backend, &changed)).await?;
            rewritten += changed.len() as u64;
        }
        txn.commit().await?;
        if rows.len() < BATCH {
            break;
        }
    }
    if rewritten > 0 {
        tracing::info!(rows = rewritten, "activity_log: detail rewritten compact");
    }
    Ok(rewritten)
}

/// The next page of rows after `after`, `detail` as the server's text.
fn page(backend: DbBackend, after: Option<Uuid>) -> Statement {
    let (detail, lock, mark) = match backend {
        DbBackend::Postgres => ("detail::text", " FOR UPDATE", "$1"),
        DbBackend::MySql => ("CAST(detail AS CHAR)", " FOR UPDATE", "?"),
        _ => ("detail", "", "?"),
    };
    let (filter, values) = match after {
        Some(id) => (format!(" WHERE id > {mark}"), vec![Value::from(id)]),
        None => (String::new(), Vec::new()),
    };
    Statement::from_sql_and_values(
        backend,
        format!(
            "SELECT id, scope, {detail} AS detail FROM activity_log{filter} \
             ORDER BY id LIMIT {BATCH}{lock}"
        ),
        values,
    )
}

/// One `UPDATE` of the batch's rewritten rows.
fn update(backend: DbBackend, changed: &[(Uuid, String)]) -> Statement {
    let mut n = 0;
    let mut mark = || {
        n += 1;
        match backend {
            DbBackend::Postgres => format!("${n}"),
            _ => "?".to_owned(),
        }
    };
    let cast = |m: String| match backend {
        DbBackend::Postgres => format!("CAST({m} AS jsonb)"),
        _ => m,
    };
    let mut sql = String::from("UPDATE activity_log SET detail = CASE id");
    let mut values = Vec::with_capacity(changed.len() * 3);
    for (id, text) in changed {
        sql.push_str(&format!(" WHEN {} THEN {}", mark(), cast(mark())));
        values.push(Value::from(*id));
        values.push(Value::from(text.clone()));
    }
    sql.push_str(" END WHERE id IN (");
    for (i, (id, _)) in changed.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&mark());
        values.push(Value::from(*id));
    }
    sql.push(')');
    Statement::from_sql_and_values(backend, sql, values)
}
