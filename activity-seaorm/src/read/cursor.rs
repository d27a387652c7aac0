//! Keyset pagination: the bound after a cursor, and the opaque cursor itself, bound to its
//! query and position by an HMAC over the query's canonical form: a cursor of one query cannot
//! page another, and an altered one is refused.

use activity_core::query::FilterOp;
use activity_core::{ActivityConfig, ActivityEntry, ActivityError, ActivityQuery, Order};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ColumnTrait, DbBackend, Value};
use sha2::Sha256;

use crate::schema::table::activity_log::Column;

/// Rows strictly after the cursor position in the page order, as an index range.
///
/// PostgreSQL gets the row comparison `(created_at, id) < ($t, $id)`, which it turns into one
/// index range. Elsewhere the `OR` form is kept. Both have a plain `created_at <= $t` beside
/// them: elsewhere it keeps the index range bounded (without it a deep page read every newer row
/// first: page 1000 of a hot item was 90x slower than page 1); on PostgreSQL it is what prunes
/// a partitioned log's newer months (a row comparison prunes none), so a second page reads
/// only the months at or before its cursor.
pub(super) fn keyset(
    order: Order,
    backend: DbBackend,
    at: DateTime<Utc>,
    id: uuid::Uuid,
) -> Condition {
    let (within, op, after_at, after_id) = match order {
        Order::Descending => (
            Column::CreatedAt.lte(at),
            "<",
            Column::CreatedAt.lt(at),
            Column::Id.lt(id),
        ),
        Order::Ascending => (
            Column::CreatedAt.gte(at),
            ">",
            Column::CreatedAt.gt(at),
            Column::Id.gt(id),
        ),
    };
    let after = if backend == DbBackend::Postgres {
        let sql =
            format!("(\"activity_log\".\"created_at\", \"activity_log\".\"id\") {op} ($1, $2)");
        Condition::all().add(Expr::cust_with_values(
            sql,
            [Value::from(at), Value::from(id)],
        ))
    } else {
        Condition::any()
            .add(after_at)
            .add(Condition::all().add(Column::CreatedAt.eq(at)).add(after_id))
    };
    Condition::all().add(within).add(after)
}

/// The query as canonical bytes: every filter but the cursor and the page size, as a JSON
/// object (keys sorted, values typed), so the same query always gives the same bytes and two
/// different queries never do.
fn canonical(query: &ActivityQuery) -> Vec<u8> {
    let filters: Vec<serde_json::Value> = query
        .detail_filters
        .iter()
        .map(|f| {
            let (op, value) = match &f.op {
                FilterOp::Exact(v) => ("exact", v.clone()),
                FilterOp::In(vs) => ("in", serde_json::Value::Array(vs.clone())),
                FilterOp::Contains(text) => ("contains", serde_json::Value::from(text.as_str())),
            };
            serde_json::json!({ "path": f.path, "op": op, "value": value })
        })
        .collect();
    let canonical = serde_json::json!({
        "organization_id": query.organization_id,
        "team_id": query.team_id,
        "unscoped": query.unscoped,
        "scopes": query.scopes,
        "item_ids": query.item_ids,
        "users": query.users,
        "activities": query.activities,
        "from": query.from.map(|t| t.timestamp_micros()),
        "to": query.to.map(|t| t.timestamp_micros()),
        "was_impersonated": query.was_impersonated,
        "is_system": query.is_system,
        "search": query.search,
        "detail_filters": filters,
        "ascending": query.order == Order::Ascending,
    });
    serde_json::to_vec(&canonical).unwrap_or_default()
}

const CURSOR_VERSION: &str = "2";

/// HMAC-SHA256 (under the configured cursor key; an empty key without one) of the query and
/// the position, first 16 bytes in hex.
fn tag(query: &ActivityQuery, micros: i64, id: &uuid::Uuid) -> String {
    let mac = ActivityConfig::with_current(|c| {
        <Hmac<Sha256> as KeyInit>::new_from_slice(c.cursor_key().unwrap_or_default())
    });
    let Ok(mut mac) = mac else {
        // HMAC takes keys of any length; this is never reached.
        return String::new();
    };
    mac.update(&canonical(query));
    mac.update(format!("\n{micros}:{}", id.simple()).as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

pub(super) fn encode_cursor(last: &ActivityEntry, query: &ActivityQuery) -> String {
    let micros = last.created_at.timestamp_micros();
    let raw = format!(
        "{CURSOR_VERSION}:{micros}:{}:{}",
        last.id.simple(),
        tag(query, micros, &last.id)
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

pub(super) fn decode_cursor(
    cursor: &str,
    query: &ActivityQuery,
) -> Result<(DateTime<Utc>, uuid::Uuid), ActivityError> {
    let bad = || ActivityError::InvalidQuery("malformed cursor".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let raw = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = raw.split(':');
    let (Some(CURSOR_VERSION), Some(micros), Some(id), Some(given), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad());
    };
    let micros = micros.parse::<i64>().map_err(|_| bad())?;
    let at = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(bad)?;
    let id = uuid::Uuid::parse_str(id).map_err(|_| bad())?;
    if given != tag(query, micros, &id) {
        return Err(ActivityError::InvalidQuery(
            "cursor belongs to a different query, or was altered".into(),
        ));
    }
    Ok((at, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_bound_to_their_query() {
        let entry = ActivityEntry::new("S", "created");
        let q = ActivityQuery::for_team("1").scope("S");
        let cursor = encode_cursor(&entry, &q);
        let (_, id) = decode_cursor(&cursor, &q.clone().limit(5)).unwrap();
        assert_eq!(id, entry.id);
        assert!(decode_cursor(&cursor, &ActivityQuery::for_team("2").scope("S")).is_err());
        assert!(decode_cursor("garbage", &q).is_err());
        // The position is signed too: moved by a microsecond, the cursor is refused.
        let raw = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&cursor)
                .unwrap(),
        )
        .unwrap();
        let micros = entry.created_at.timestamp_micros();
        let moved = raw.replacen(&micros.to_string(), &(micros + 1).to_string(), 1);
        let moved = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(moved);
        assert!(decode_cursor(&moved, &q).is_err());
        // Detail filters are part of the query: another value, another query.
        let a = q
            .clone()
            .detail_filter("name", FilterOp::Exact(serde_json::json!("a")));
        let b = q
            .clone()
            .detail_filter("name", FilterOp::Exact(serde_json::json!(1)));
        assert!(decode_cursor(&encode_cursor(&entry, &a), &b).is_err());
        assert!(decode_cursor(&encode_cursor(&entry, &a), &a).is_ok());
    }
}
