//! Erasure requests: pseudonymize a user in the log.

use activity_core::{ActivityEntry, ActivityQuery};
use scoped_futures::ScopedFutureExt;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QuerySelect, Set, TransactionTrait,
};
use serde_json::Value;

use crate::entity::activity_log::{Column, Entity};
use crate::errors::Error;
use crate::read::conditions;

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
