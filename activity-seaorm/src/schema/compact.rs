//! Converting the `detail` of rows written before the compact stored form.
//!
//! Every version since reads both forms, so nothing *needs* converting: [`compact_details`]
//! only gives back the space. Each row's JSON is read as text (as the hash reads it, never
//! through `serde_json::Value`'s parser) and rewritten with the keys the compact form leaves
//! out removed ([`compact_detail`]). Every other member keeps its value; where the backend
//! stores JSON as text (MySQL, SQLite) the text itself is written anew (keys in order, no
//! spaces). A row is left as it is when that could change more: a detail that is not JSON, or
//! one holding a number whose text serde_json would not write back the same (`1.00`, digits
//! beyond `f64`). The keys it removes are the ones every read, and the sealer's hash, put
//! back, so entries read back and sealed blocks verify the same after it.

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
/// and return how many rows it rewrote. Idempotent: rows already compact are read, not written
/// (nor locked). It converts the rows there are when it starts.
///
/// Run it once every instance runs a version that reads the compact form (an earlier one reads
/// a compact row's detail as empty). It walks the log by `id`, 500 rows at a time, each batch
/// in a transaction of its own (a savepoint in a caller's) that locks the rows it rewrites, by
/// id (`FOR UPDATE` on PostgreSQL and MySQL: record locks only, so writers never wait for it),
/// so a concurrent erasure of the same rows waits for the batch, or the batch for it, and
/// neither undoes the other; if the database breaks a deadlock between them by aborting the
/// batch, the error is returned and a second call finishes the work. With the
/// [append-only guard](guard) installed each batch runs in maintenance, ended with the batch.
/// On PostgreSQL the old row versions take space until `VACUUM` reclaims them (autovacuum
/// will). A build with serde_json's `arbitrary_precision` is refused, as the sealer refuses it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), sea_orm::DbErr> {
/// use activity_seaorm::{ActivityConfig, ActivityEntry, log_activity};
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// activity_seaorm::schema::create_table(&db).await?;
/// // An entry written in the full form, as a version before the compact form wrote it.
/// let entry = ActivityEntry::new("Flag", "exported").with_item_id("1").with_name("beta");
/// let full = ActivityConfig::new().with_compact_detail(false);
/// full.scope(log_activity(&db, entry)).await?;
/// assert_eq!(activity_seaorm::schema::compact_details(&db).await?, 1);
/// assert_eq!(activity_seaorm::schema::compact_details(&db).await?, 0); // already compact
/// # Ok(()) }
/// ```
pub async fn compact_details<C: ConnectionTrait + TransactionTrait>(db: &C) -> Result<u64, DbErr> {
    // Numbers are rewritten as this build's serde_json writes them: refuse a build that would
    // write them otherwise (as the sealer does).
    activity_core::seal::canonical_numbers().map_err(|e| DbErr::Custom(e.to_string()))?;
    let backend = db.get_database_backend();
    // The rows there are now: entries written meanwhile are this version's, compact already
    // (or, with the setting off, meant to stay full), and a busy log never outruns the walk.
    let Some(last) = newest_id(db).await? else {
        return Ok(0);
    };
    let mut after: Option<Uuid> = None;
    let (mut rewritten, mut kept) = (0u64, 0u64);
    loop {
        // A page read without locks; only the rows to rewrite are then locked, read again and
        // rewritten (a row already compact is never written, nor its page dirtied by a lock).
        let page_rows = db.query_all_raw(page(backend, after, last)).await?;
        let mut candidates: Vec<Key> = Vec::new();
        for row in &page_rows {
            let key = Key::of(row)?;
            let scope: String = row.try_get("", "scope")?;
            let text: String = row.try_get("", "detail")?;
            match compacted(&text, &scope) {
                Some(Some(_)) => candidates.push(key),
                Some(None) => {}
                None => kept += 1,
            }
        }
        if !candidates.is_empty() {
            rewritten += rewrite(db, backend, &candidates).await?;
        }
        let Some(row) = page_rows.last() else { break };
        after = Some(row.try_get("", "id")?);
        if page_rows.len() < BATCH {
            break;
        }
    }
    if kept > 0 {
        tracing::warn!(
            rows = kept,
            "activity_log: rows left in the full form: their detail is not JSON, or holds a \
             number this build would write differently"
        );
    }
    if rewritten > 0 {
        tracing::info!(rows = rewritten, "activity_log: detail rewritten compact");
    }
    Ok(rewritten)
}

/// A row's key: on a partitioned log the primary key is `(id, created_at)`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    id: Uuid,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl Key {
    fn of(row: &sea_orm::QueryResult) -> Result<Key, DbErr> {
        Ok(Key {
            id: row.try_get("", "id")?,
            created_at: row.try_get("", "created_at")?,
        })
    }
}

/// Lock `candidates`, read them again, rewrite those still in the full form: one transaction
/// (a savepoint in a caller's), in maintenance. Returns the rows rewritten.
async fn rewrite<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    backend: DbBackend,
    candidates: &[Key],
) -> Result<u64, DbErr> {
    let txn = db.begin().await?;
    let done = guard::maintenance(&txn, async {
        if backend == DbBackend::Sqlite {
            // Take the write lock first: a read then a write in a deferred transaction fails
            // (busy) when another write lands between them.
            txn.execute_unprepared("UPDATE activity_log SET detail = detail WHERE 0 = 1")
                .await?;
        }
        let ids: Vec<Uuid> = candidates.iter().map(|k| k.id).collect();
        let mut changed: Vec<(Key, String)> = Vec::new();
        for row in txn.query_all_raw(locked(backend, &ids)).await? {
            let key = Key::of(&row)?;
            if !candidates.contains(&key) {
                continue;
            }
            let scope: String = row.try_get("", "scope")?;
            let text: String = row.try_get("", "detail")?;
            if let Some(Some(compact)) = compacted(&text, &scope) {
                changed.push((key, compact));
            }
        }
        if !changed.is_empty() {
            txn.execute_raw(update(backend, &changed)).await?;
        }
        Ok::<_, DbErr>(changed.len() as u64)
    })
    .await;
    match done {
        Ok(n) => {
            txn.commit().await?;
            Ok(n)
        }
        Err(e) => {
            let _ = txn.rollback().await;
            Err(e)
        }
    }
}

/// The greatest id in the log, if any.
async fn newest_id<C: ConnectionTrait>(db: &C) -> Result<Option<Uuid>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT id FROM activity_log ORDER BY id DESC LIMIT 1",
        ))
        .await?;
    row.map(|r| r.try_get("", "id")).transpose()
}

/// The compact text of a stored `detail`: `Some(None)` when it is compact already, `None` when
/// it is left as it is — not JSON (only a row altered by hand holds that; the checks report
/// it), or holding a number whose text serde_json would not write back the same (a value
/// beyond `f64`'s precision, `1.00`): rewriting must not change a value, nor a number's text.
fn compacted(text: &str, scope: &str) -> Option<Option<String>> {
    let stored = activity_core::seal::parse_json(text).ok()?;
    let mut compact = stored.clone();
    compact_detail(&mut compact, scope);
    if compact == stored {
        return Some(None);
    }
    if !numbers_round_trip(text) {
        return None;
    }
    serde_json::to_string(&compact).ok().map(Some)
}

/// Whether every number in the JSON `text` is written back by serde_json as the same text.
fn numbers_round_trip(text: &str) -> bool {
    let bytes = text.as_bytes();
    let (mut i, mut in_string) = (0, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < bytes.len()
                && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
            {
                i += 1;
            }
            let token = &text[start..i];
            let written = serde_json::from_str::<serde_json::Number>(token).map(|n| n.to_string());
            if written.ok().as_deref() != Some(token) {
                return false;
            }
            continue;
        }
        i += 1;
    }
    true
}

/// The next page of rows after `after`, through `last`, `detail` as the server's text.
fn page(backend: DbBackend, after: Option<Uuid>, last: Uuid) -> Statement {
    let (detail, marks) = match backend {
        DbBackend::Postgres => ("detail::text", ["$1", "$2"]),
        DbBackend::MySql => ("CAST(detail AS CHAR)", ["?", "?"]),
        _ => ("detail", ["?", "?"]),
    };
    let mut values = vec![Value::from(last)];
    let mut filter = format!("id <= {}", marks[0]);
    if let Some(id) = after {
        filter.push_str(&format!(" AND id > {}", marks[1]));
        values.push(Value::from(id));
    }
    Statement::from_sql_and_values(
        backend,
        format!(
            "SELECT id, created_at, scope, {detail} AS detail FROM activity_log \
             WHERE {filter} ORDER BY id LIMIT {BATCH}"
        ),
        values,
    )
}

/// The rows `ids`, locked, `detail` as the server's text.
fn locked(backend: DbBackend, ids: &[Uuid]) -> Statement {
    let (detail, lock) = match backend {
        DbBackend::Postgres => ("detail::text", " FOR UPDATE"),
        DbBackend::MySql => ("CAST(detail AS CHAR)", " FOR UPDATE"),
        _ => ("detail", ""),
    };
    let marks: Vec<String> = (1..=ids.len())
        .map(|n| match backend {
            DbBackend::Postgres => format!("${n}"),
            _ => "?".to_owned(),
        })
        .collect();
    Statement::from_sql_and_values(
        backend,
        format!(
            "SELECT id, created_at, scope, {detail} AS detail FROM activity_log \
             WHERE id IN ({}){lock}",
            marks.join(", ")
        ),
        ids.iter().map(|id| Value::from(*id)),
    )
}

/// One `UPDATE` of the batch's rewritten rows, each named by its whole key.
fn update(backend: DbBackend, changed: &[(Key, String)]) -> Statement {
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
    let mut sql = String::from("UPDATE activity_log SET detail = CASE");
    let mut values = Vec::with_capacity(changed.len() * 4);
    for (key, text) in changed {
        let (id, at, detail) = (mark(), mark(), cast(mark()));
        sql.push_str(&format!(
            " WHEN id = {id} AND created_at = {at} THEN {detail}"
        ));
        values.push(Value::from(key.id));
        values.push(Value::from(key.created_at));
        values.push(Value::from(text.clone()));
    }
    sql.push_str(" ELSE detail END WHERE id IN (");
    for (i, (key, _)) in changed.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&mark());
        values.push(Value::from(key.id));
    }
    sql.push(')');
    Statement::from_sql_and_values(backend, sql, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A number whose text would change is never rewritten; numbers in strings do not count.
    #[test]
    fn only_rows_whose_numbers_keep_their_text_are_rewritten() {
        let full = |value: &str| {
            format!(
                r#"{{"name":null,"changes":[{{"type":"Flag","action":"changed","field":"n","before":{value},"after":"x\"1.00"}}]}}"#
            )
        };
        for kept in ["1.00", "12345678901234567890123", "1E2", "-0.10", "1e22"] {
            assert_eq!(compacted(&full(kept), "Flag"), None, "{kept}");
        }
        for value in [
            "1.0",
            "0.1",
            "-7",
            "18446744073709551615",
            "1e+22",
            "2.5e-8",
        ] {
            let compact = compacted(&full(value), "Flag").flatten();
            assert_eq!(
                compact,
                Some(format!(
                    r#"{{"changes":[{{"action":"changed","after":"x\"1.00","before":{value},"field":"n"}}]}}"#
                )),
                "{value}"
            );
        }
        assert_eq!(
            compacted(r#"{"changes":[{"action":"changed"}]}"#, "Flag"),
            Some(None)
        );
        assert_eq!(compacted("{not json", "Flag"), None);
    }
}
