//! Identities the write path keys on: item ids as text, connections, tasks.

use sea_orm::sea_query::Value;
use sea_orm::{
    ActiveModelTrait, ActiveValue, EntityTrait, Iterable, ModelTrait, PrimaryKeyToColumn,
};

/// A connection's identity: the address of the `&C` the hooks receive. The transaction helper
/// keeps its `DatabaseTransaction` in place while the closure borrows it, so the address is
/// stable for exactly as long as its buffer frame exists.
pub(crate) fn conn_key<C: ?Sized>(db: &C) -> usize {
    std::ptr::from_ref(db).cast::<()>() as usize
}

/// The current tokio task, or the thread outside a task (e.g. `block_on`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TaskKey {
    Task(tokio::task::Id),
    Thread(std::thread::ThreadId),
}

impl TaskKey {
    pub(crate) fn current() -> Self {
        tokio::task::try_id().map_or_else(|| Self::Thread(std::thread::current().id()), Self::Task)
    }
}

/// A SeaORM value as JSON, safely: bytes as base64 (sea-query's own conversion panics on
/// non-UTF-8 bytes).
pub(crate) fn value_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Bytes(Some(b)) => activity_core::value::encode_bytes(b),
        other => sea_orm::sea_query::value::sea_value_to_json_value(other),
    }
}

/// A primary-key value as text: `NULL` gives `None`, never the text `"None"`.
pub(crate) fn value_text(value: &Value) -> Option<String> {
    let json = match value {
        Value::String(s) => return s.clone(),
        Value::Char(c) => return c.map(|c| c.to_string()),
        Value::Uuid(u) => return u.map(|u| u.hyphenated().to_string()),
        other => value_json(other),
    };
    match json {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

fn join(parts: Vec<Option<String>>) -> Option<String> {
    let parts: Option<Vec<String>> = parts.into_iter().collect();
    parts.map(|p| p.join(","))
}

/// The item id of a model: its primary key as text, composite keys joined with `,`.
pub(crate) fn model_item_id<M: ModelTrait>(model: &M) -> Option<String> {
    join(
        <<M::Entity as EntityTrait>::PrimaryKey as Iterable>::iter()
            .map(|pk| value_text(&model.get(pk.into_column())))
            .collect(),
    )
}

/// The item id of an active model, if its whole primary key is set.
pub(crate) fn active_item_id<A: ActiveModelTrait>(am: &A) -> Option<String> {
    join(
        <<A::Entity as EntityTrait>::PrimaryKey as Iterable>::iter()
            .map(|pk| match am.get(pk.into_column()) {
                ActiveValue::Set(v) | ActiveValue::Unchanged(v) => value_text(&v),
                ActiveValue::NotSet => None,
            })
            .collect(),
    )
}
