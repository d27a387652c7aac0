//! Operations on the stored log: streaming export, retention and erasure.

use std::io::Write;

use activity_core::query::MAX_PAGE_SIZE;
use activity_core::{ActivityEntry, ActivityQuery};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QuerySelect, Set, TransactionSession, TransactionTrait,
};
use serde_json::Value;

use crate::entity::activity_log::{Column, Entity};
use crate::errors::Error;
use crate::read::{conditions, load_activity};

/// The CSV columns, in order: `id, created_at, organization_id, team_id, user_id, user_name,
/// impersonated_by, was_impersonated, is_system, scope, item_id, activity, detail, request_id,
/// correlation_id, ip_address, user_agent, client`. `created_at` is RFC 3339 (UTC), `detail`
/// is its JSON text, booleans are `true`/`false`, NULL is empty.
pub const CSV_COLUMNS: [&str; 18] = [
    "id",
    "created_at",
    "organization_id",
    "team_id",
    "user_id",
    "user_name",
    "impersonated_by",
    "was_impersonated",
    "is_system",
    "scope",
    "item_id",
    "activity",
    "detail",
    "request_id",
    "correlation_id",
    "ip_address",
    "user_agent",
    "client",
];

/// Stream every entry matching `query` (all pages, in its order) to `out` as CSV with a header
/// row (see [`CSV_COLUMNS`]). Memory stays constant: one page at a time. Returns the row count.
pub async fn export_csv<C: ConnectionTrait, W: Write>(
    db: &C,
    query: &ActivityQuery,
    out: W,
) -> Result<u64, Error> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(CSV_COLUMNS)?;
    let count = for_each_page(db, query, |entries| {
        for e in entries {
            let detail = serde_json::to_string(&e.detail)?;
            let opt = |v: &Option<String>| v.clone().unwrap_or_default();
            csv.write_record([
                e.id.to_string(),
                e.created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                opt(&e.organization_id),
                opt(&e.team_id),
                opt(&e.user_id),
                opt(&e.user_name),
                opt(&e.impersonated_by),
                e.was_impersonated.to_string(),
                e.is_system.to_string(),
                e.scope.clone(),
                opt(&e.item_id),
                e.activity.clone(),
                detail,
                opt(&e.request_id),
                opt(&e.correlation_id),
                opt(&e.ip_address),
                opt(&e.user_agent),
                opt(&e.client),
            ])?;
        }
        Ok(())
    })
    .await?;
    csv.flush()?;
    Ok(count)
}

/// Stream every entry matching `query` to `out` as JSON lines: one [`ActivityEntry`] per line,
/// in its serde shape. Returns the row count.
pub async fn export_jsonl<C: ConnectionTrait, W: Write>(
    db: &C,
    query: &ActivityQuery,
    mut out: W,
) -> Result<u64, Error> {
    let count = for_each_page(db, query, |entries| {
        for e in entries {
            serde_json::to_writer(&mut out, e)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    })
    .await?;
    out.flush()?;
    Ok(count)
}

async fn for_each_page<C: ConnectionTrait>(
    db: &C,
    query: &ActivityQuery,
    mut each: impl FnMut(&[ActivityEntry]) -> Result<(), Error>,
) -> Result<u64, Error> {
    let mut q = query.clone().limit(MAX_PAGE_SIZE);
    q.cursor = None;
    let mut count = 0u64;
    loop {
        let page = load_activity(db, &q).await?;
        each(&page.results)?;
        count += page.results.len() as u64;
        match page.next_cursor {
            Some(cursor) => q.cursor = Some(cursor),
            None => return Ok(count),
        }
    }
}

/// Rows deleted per statement by [`prune`]: short statements, short locks.
pub const PRUNE_BATCH: u64 = 5_000;

/// Delete entries older than `older_than` (optionally only of `scopes`), in batches of
/// [`PRUNE_BATCH`] so no statement holds locks for long. Each batch runs in its own short
/// transaction (a savepoint when `db` is a transaction) that enters
/// [`guard::enter_maintenance`](crate::guard::enter_maintenance), so retention works with the
/// append-only guard installed. Returns how many were deleted.
pub async fn prune<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    older_than: DateTime<Utc>,
    scopes: &[&str],
) -> Result<u64, Error> {
    let mut total = 0;
    loop {
        let txn = db.begin().await?;
        crate::guard::enter_maintenance(&txn).await?;
        let mut select = Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::CreatedAt.lt(older_than))
            // No ORDER BY: any old rows will do, and no index leads with `created_at`.
            .limit(PRUNE_BATCH);
        if !scopes.is_empty() {
            select = select.filter(Column::Scope.is_in(scopes.iter().copied()));
        }
        let ids: Vec<uuid::Uuid> = select.into_tuple().all(&txn).await?;
        if ids.is_empty() {
            txn.commit().await?;
            return Ok(total);
        }
        let deleted = Entity::delete_many()
            .filter(Column::Id.is_in(ids))
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        total += deleted;
        tracing::debug!(deleted, total, "pruned activity log batch");
    }
}

/// The stable pseudonym that replaces `user_id` in erased entries.
pub fn pseudonym(user_id: &str) -> String {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6163_7469_7669_7479_2d65_7261_7375_7265);
    format!(
        "anon-{}",
        &uuid::Uuid::new_v5(&NAMESPACE, user_id.as_bytes())
            .simple()
            .to_string()[..16]
    )
}

/// Erase a user from the log (a GDPR erasure request): `user_id`, `impersonated_by` and every
/// `detail` string that holds the user's recorded id or name are rewritten to a stable
/// [`pseudonym`], `user_name` is cleared, and one `anonymized` entry (scope `User`, item the
/// pseudonym) records that it happened. Runs in one transaction, which enters
/// [`guard::enter_maintenance`](crate::guard::enter_maintenance) so erasure works with the
/// append-only guard installed. Returns the rows rewritten.
pub async fn anonymize_user<C>(db: &C, user_id: &str) -> Result<u64, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    if user_id.is_empty() {
        return Err(activity_core::ActivityError::InvalidQuery("empty user id".into()).into());
    }
    let user_id = user_id.to_owned();
    crate::transaction(db, |txn| {
        async move { anonymize_in(txn, &user_id).await }.scope_boxed()
    })
    .await
}

async fn anonymize_in<C: ConnectionTrait>(txn: &C, user_id: &str) -> Result<u64, Error> {
    crate::guard::enter_maintenance(txn).await?;
    let alias = pseudonym(user_id);
    let backend = txn.get_database_backend();
    let names: Vec<Option<String>> = Entity::find()
        .select_only()
        .column(Column::UserName)
        .distinct()
        .filter(Column::UserId.eq(user_id))
        .into_tuple()
        .all(txn)
        .await?;
    let mut needles: Vec<String> = vec![user_id.to_owned()];
    needles.extend(names.into_iter().flatten().filter(|n| !n.is_empty()));

    let mut touched = 0u64;
    let mut cond = sea_orm::sea_query::Condition::any()
        .add(Column::UserId.eq(user_id))
        .add(Column::ImpersonatedBy.eq(user_id));
    for needle in &needles {
        let q = ActivityQuery::unscoped().search(needle.clone());
        cond = cond.add(conditions(&q, backend)?);
    }
    let rows = Entity::find().filter(cond).all(txn).await?;
    for row in rows {
        let mut am = row.clone().into_active_model();
        if row.user_id.as_deref() == Some(user_id) {
            am.user_id = Set(Some(alias.clone()));
            am.user_name = Set(None);
        }
        if row.impersonated_by.as_deref() == Some(user_id) {
            am.impersonated_by = Set(Some(alias.clone()));
        }
        let mut detail = row.detail.clone();
        replace_strings(&mut detail, &needles, &alias);
        if detail != row.detail {
            am.detail = Set(detail);
        }
        if am.is_changed() {
            am.update(txn).await?;
            touched += 1;
        }
    }
    let mut record = ActivityEntry::new("User", "anonymized").with_item_id(alias);
    record.detail.context = Some(serde_json::json!({ "rows_rewritten": touched }));
    crate::log_activity(txn, record.forced()).await?;
    Ok(touched)
}

fn replace_strings(value: &mut Value, needles: &[String], alias: &str) {
    match value {
        Value::String(s) => {
            for needle in needles {
                if s.contains(needle.as_str()) {
                    *s = s.replace(needle.as_str(), alias);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| replace_strings(v, needles, alias)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|v| replace_strings(v, needles, alias)),
        _ => {}
    }
}
