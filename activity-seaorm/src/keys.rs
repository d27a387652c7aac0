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

/// A primary key's parts as one item id. A single part is its text as is. Composite keys join
/// their parts with `,`, each part with `\` and `,` escaped by a `\`, so ("a,b", "c") and
/// ("a", "b,c") are two items (`a\,b,c` and `a,b\,c`). Parts without either character read
/// exactly as before this escaping existed, so stored ids of such keys are unchanged.
fn join(parts: Vec<Option<String>>) -> Option<String> {
    let parts: Option<Vec<String>> = parts.into_iter().collect();
    let mut parts = parts?;
    if parts.len() == 1 {
        return parts.pop();
    }
    let mut id = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            id.push(',');
        }
        for ch in part.chars() {
            if ch == ',' || ch == '\\' {
                id.push('\\');
            }
            id.push(ch);
        }
    }
    Some(id)
}

/// The parts of a composite item id written by [`join`] (a single-part key is the whole id).
#[cfg(feature = "read")]
pub(crate) fn split_item_id(id: &str, parts: usize) -> Vec<String> {
    if parts <= 1 {
        return vec![id.to_owned()];
    }
    let mut out = vec![String::new()];
    let mut chars = id.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => {
                if let (Some(next), Some(last)) = (chars.next(), out.last_mut()) {
                    last.push(next);
                }
            }
            ',' => out.push(String::new()),
            other => {
                if let Some(last) = out.last_mut() {
                    last.push(other);
                }
            }
        }
    }
    out
}

/// The item id of a model: its primary key as text, composite keys joined with `,` (see
/// [`join`] for the escaping).
pub(crate) fn model_item_id<M: ModelTrait>(model: &M) -> Option<String> {
    join(
        <<M::Entity as EntityTrait>::PrimaryKey as Iterable>::iter()
            .map(|pk| value_text(&model.get(pk.into_column())))
            .collect(),
    )
}

/// The item id of a primary key's values (`None` if one is `NULL`).
#[cfg(feature = "read")]
pub(crate) fn item_id_of_values(values: &[Value]) -> Option<String> {
    join(values.iter().map(value_text).collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn id(parts: &[&str]) -> String {
        join(parts.iter().map(|p| Some((*p).to_owned())).collect()).unwrap()
    }

    #[test]
    fn composite_ids_are_unambiguous_and_split_back() {
        assert_ne!(id(&["a,b", "c"]), id(&["a", "b,c"]));
        assert_eq!(id(&["a,b", "c"]), "a\\,b,c");
        assert_eq!(id(&["a\\", ",c"]), "a\\\\,\\,c");
        // Keys without `,` or `\` read as they always did; a single key is never escaped.
        assert_eq!(id(&["7", "beta"]), "7,beta");
        assert_eq!(id(&["a,b"]), "a,b");
        for parts in [
            &["a,b", "c"][..],
            &["a", "b,c"],
            &["\\", ""],
            &["x\\,", ",\\y"],
            &["", ""],
        ] {
            let joined = id(parts);
            assert_eq!(split_item_id(&joined, parts.len()), parts, "{joined}");
        }
        assert_eq!(join(vec![Some("1".into()), None]), None);
    }
}
