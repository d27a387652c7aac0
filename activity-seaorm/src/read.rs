//! Reading the log back: [`ActivityQuery`] → SQL on each backend → [`Page`], with keyset
//! pagination on `(created_at, id)`. Every user-supplied value, detail paths included, is bound
//! as a parameter.

use activity_core::path::DetailPath;
use activity_core::{
    ActivityEntry, ActivityError, ActivityQuery, DetailFilter, FilterOp, Order, Page,
};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Value,
};

use crate::entity::activity_log::{Column, Entity};
use crate::errors::Error;

/// Read one page of entries.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), activity_seaorm::Error> {
/// use activity_seaorm::{ActivityQuery, load_activity};
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// activity_seaorm::schema::create_table(&db).await?;
/// let page = load_activity(&db, &ActivityQuery::for_team("7").item("FeatureFlag", "1")).await?;
/// assert!(page.results.is_empty() && page.next_cursor.is_none());
/// # Ok(()) }
/// ```
pub async fn load_activity<C: ConnectionTrait>(
    db: &C,
    query: &ActivityQuery,
) -> Result<Page, Error> {
    query.check_tenant()?;
    let size = query.page_size()?;
    let backend = db.get_database_backend();
    let mut condition = conditions(query, backend)?;
    if let Some(cursor) = &query.cursor {
        let (at, id) = decode_cursor(cursor, query)?;
        condition = condition.add(keyset(query.order, backend, at, id));
    }
    let (created, id) = match query.order {
        Order::Descending => (sea_orm::Order::Desc, sea_orm::Order::Desc),
        Order::Ascending => (sea_orm::Order::Asc, sea_orm::Order::Asc),
    };
    let rows = Entity::find()
        .filter(condition)
        .order_by(Column::CreatedAt, created)
        .order_by(Column::Id, id)
        .limit((size + 1) as u64)
        .all(db)
        .await?;
    let mut results: Vec<ActivityEntry> = rows.into_iter().map(Into::into).collect();
    let next_cursor = if results.len() > size {
        results.truncate(size);
        results.last().map(|last| encode_cursor(last, query))
    } else {
        None
    };
    Ok(Page {
        results,
        next_cursor,
    })
}

/// The WHERE clause of `query` (without the cursor).
pub(crate) fn conditions(query: &ActivityQuery, backend: DbBackend) -> Result<Condition, Error> {
    let mut c = Condition::all();
    if let Some(org) = &query.organization_id {
        reject_nul(org)?;
        c = c.add(Column::OrganizationId.eq(org.as_str()));
    }
    if let Some(team) = &query.team_id {
        reject_nul(team)?;
        c = c.add(Column::TeamId.eq(team.as_str()));
    }
    for (values, column) in [
        (&query.scopes, Column::Scope),
        (&query.item_ids, Column::ItemId),
        (&query.users, Column::UserId),
        (&query.activities, Column::Activity),
    ] {
        if !values.is_empty() {
            for v in values.iter() {
                reject_nul(v)?;
            }
            c = c.add(column.is_in(values.iter().map(String::as_str)));
        }
    }
    if let Some(from) = query.from {
        c = c.add(Column::CreatedAt.gte(from));
    }
    if let Some(to) = query.to {
        c = c.add(Column::CreatedAt.lte(to));
    }
    if let Some(w) = query.was_impersonated {
        c = c.add(Column::WasImpersonated.eq(w));
    }
    if let Some(s) = query.is_system {
        c = c.add(Column::IsSystem.eq(s));
    }
    if let Some(text) = &query.search {
        reject_nul(text)?;
        reject_long_pattern(text)?;
        let sql = match backend {
            DbBackend::Postgres => {
                "LOWER(CAST(\"activity_log\".\"detail\" AS TEXT)) LIKE $1 ESCAPE '!'"
            }
            DbBackend::MySql => "LOWER(`activity_log`.`detail`) LIKE ? ESCAPE '!'",
            _ => "LOWER(\"activity_log\".\"detail\") LIKE ? ESCAPE '!'",
        };
        c = c.add(Expr::cust_with_values(sql, [like_pattern(text)]));
    }
    for filter in &query.detail_filters {
        c = c.add(detail_filter(filter, backend)?);
    }
    Ok(c)
}

fn reject_nul(text: &str) -> Result<(), ActivityError> {
    if text.contains('\0') {
        Err(ActivityError::InvalidQuery(
            "filter values cannot contain NUL bytes".into(),
        ))
    } else {
        Ok(())
    }
}

/// Longest text for `search` and `contains`, in bytes. SQLite refuses LIKE patterns over
/// 50 000 bytes ("pattern too complex"); the escaped, lower-cased pattern stays well below.
const MAX_PATTERN_TEXT: usize = 10_000;

fn reject_long_pattern(text: &str) -> Result<(), ActivityError> {
    if text.len() > MAX_PATTERN_TEXT {
        Err(ActivityError::InvalidQuery(format!(
            "search text is {} bytes, longer than the maximum {MAX_PATTERN_TEXT}",
            text.len()
        )))
    } else {
        Ok(())
    }
}

/// `%text%`, lower-cased, with `!`, `%` and `_` escaped by `!`.
fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for ch in text.to_lowercase().chars() {
        if matches!(ch, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

/// Marks a placeholder in [`Sql::text`]; rendered as `?` or `$n` per backend.
const PARAM: char = '\u{1}';

/// SQL text plus the values for its placeholders, in order.
#[derive(Default)]
struct Sql {
    text: String,
    values: Vec<Value>,
}

impl Sql {
    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.text.push(PARAM);
        self.values.push(value.into());
        self
    }

    /// Append `other` (its text and values).
    fn append(&mut self, other: &Sql) -> &mut Self {
        self.text.push_str(&other.text);
        self.values.extend(other.values.iter().cloned());
        self
    }

    /// PostgreSQL numbers its placeholders; the others use `?`.
    fn into_expr(self, backend: DbBackend) -> SimpleExpr {
        let mut text = String::with_capacity(self.text.len() + 8);
        let mut n = 0;
        for ch in self.text.chars() {
            if ch == PARAM {
                n += 1;
                match backend {
                    DbBackend::Postgres => text.push_str(&format!("${n}")),
                    _ => text.push('?'),
                }
            } else {
                text.push(ch);
            }
        }
        Expr::cust_with_values(text, self.values)
    }
}

/// What a filter value may equal, type-tolerantly.
struct Wanted {
    text: Option<String>,
    number: Option<f64>,
    boolean: Option<bool>,
    null: bool,
}

fn wanted(value: &serde_json::Value) -> Result<Wanted, ActivityError> {
    use serde_json::Value as J;
    let bool_of = |s: &str| match s {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    };
    Ok(match value {
        J::Null => Wanted {
            text: None,
            number: None,
            boolean: None,
            null: true,
        },
        J::Bool(b) => Wanted {
            text: Some(b.to_string()),
            number: None,
            boolean: Some(*b),
            null: false,
        },
        J::Number(n) => {
            let text = n.to_string();
            Wanted {
                boolean: bool_of(&text),
                number: n.as_f64(),
                text: Some(text),
                null: false,
            }
        }
        J::String(s) => {
            reject_nul(s)?;
            Wanted {
                number: s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
                boolean: bool_of(s),
                text: Some(s.clone()),
                null: false,
            }
        }
        J::Array(_) | J::Object(_) => {
            return Err(ActivityError::InvalidQuery(
                "detail filter values must be strings, numbers, booleans or null".into(),
            ));
        }
    })
}

fn detail_filter(filter: &DetailFilter, backend: DbBackend) -> Result<SimpleExpr, Error> {
    let path = DetailPath::parse(&filter.path)?;
    let values: Vec<Wanted> = match &filter.op {
        FilterOp::Exact(v) => vec![wanted(v)?],
        FilterOp::In(vs) => vs.iter().map(wanted).collect::<Result<_, _>>()?,
        FilterOp::Contains(s) => {
            reject_nul(s)?;
            reject_long_pattern(s)?;
            return Ok(contains(&path, s, backend).into_expr(backend));
        }
    };
    if values.is_empty() {
        return Ok(Expr::cust("1 = 0"));
    }
    Ok(match backend {
        DbBackend::Postgres => pg_match(&path, |x| pg_equals(x, &values)),
        DbBackend::MySql => mysql_equals(&path, &values),
        _ => sqlite_match(&path, |x, t| sqlite_equals(x, t, &values)),
    }
    .into_expr(backend))
}

fn contains(path: &DetailPath, needle: &str, backend: DbBackend) -> Sql {
    let pattern = like_pattern(needle);
    match backend {
        DbBackend::Postgres => pg_match(path, |x| {
            let mut s = Sql::default();
            s.push("LOWER(")
                .append(x)
                .push(" #>> '{}') LIKE ")
                .bind(pattern.clone())
                .push(" ESCAPE '!'");
            s
        }),
        DbBackend::MySql => mysql_contains(path, pattern),
        // `json_extract` gives booleans as 1 and 0: spell them as JSON does, like the others.
        _ => sqlite_match(path, |x, t| {
            let mut s = Sql::default();
            s.push("CASE ")
                .append(t)
                .push(" WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE LOWER(CAST(")
                .append(x)
                .push(" AS TEXT)) END LIKE ")
                .bind(pattern.clone())
                .push(" ESCAPE '!'");
            s
        }),
    }
}

/// PostgreSQL: `text[]` literal for `#>`, bound as a parameter.
fn pg_path(keys: &[String]) -> String {
    format!("{{{}}}", keys.join(","))
}

/// Build a PostgreSQL predicate over the value(s) at `path`; `m` gets the jsonb expression.
fn pg_match(path: &DetailPath, m: impl Fn(&Sql) -> Sql) -> Sql {
    let mut head = Sql::default();
    head.push("(\"activity_log\".\"detail\" #> CAST(")
        .bind(pg_path(&path.head))
        .push(" AS text[]))");
    let Some(each) = &path.each else {
        return m(&head);
    };
    let mut x = Sql::default();
    if each.is_empty() {
        x.push("e.v");
    } else {
        x.push("(e.v #> CAST(")
            .bind(pg_path(each))
            .push(" AS text[]))");
    }
    let mut s = Sql::default();
    s.push("EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(")
        .append(&head)
        .push(") = 'array' THEN ")
        .append(&head)
        .push(" ELSE '[]'::jsonb END) AS e(v) WHERE ")
        .append(&m(&x))
        .push(")");
    s
}

fn pg_equals(x: &Sql, values: &[Wanted]) -> Sql {
    let mut s = Sql::default();
    s.push("(");
    for (i, w) in values.iter().enumerate() {
        if i > 0 {
            s.push(" OR ");
        }
        s.push("(FALSE");
        if w.null {
            s.push(" OR jsonb_typeof(").append(x).push(") = 'null'");
        }
        if let Some(text) = &w.text {
            s.push(" OR (jsonb_typeof(")
                .append(x)
                .push(") = 'string' AND (")
                .append(x)
                .push(" #>> '{}') = ")
                .bind(text.clone())
                .push(")");
        }
        if let Some(n) = w.number {
            s.push(" OR (CASE WHEN jsonb_typeof(")
                .append(x)
                .push(") = 'number' THEN (")
                .append(x)
                .push(" #>> '{}')::float8 = ")
                .bind(n)
                .push(" ELSE FALSE END)");
        }
        if let Some(b) = w.boolean {
            s.push(" OR (CASE WHEN jsonb_typeof(")
                .append(x)
                .push(") = 'boolean' THEN (")
                .append(x)
                .push(" #>> '{}')::boolean = ")
                .bind(b)
                .push(" ELSE FALSE END)");
        }
        s.push(")");
    }
    s.push(")");
    s
}

/// MySQL/MariaDB JSON path: `$."a"."b"`, arrays as `[*]`.
fn mysql_path(path: &DetailPath) -> String {
    match &path.each {
        None => format!("${}", mysql_keys(&path.head)),
        Some(each) => format!("${}[*]{}", mysql_keys(&path.head), mysql_keys(each)),
    }
}

/// `."a"."b"`: the member steps of a MySQL JSON path.
fn mysql_keys(keys: &[String]) -> String {
    keys.iter().map(|k| format!(".\"{k}\"")).collect()
}

/// MySQL/MariaDB: text of the value(s) at `path` LIKE `pattern`. With `[]`, each element is
/// tested on its own (`JSON_TABLE`), never the array's JSON text with its quotes and escapes;
/// a JSON `null` has no text, as on the other backends.
fn mysql_contains(path: &DetailPath, pattern: String) -> Sql {
    let (doc, inner) = match &path.each {
        None => (
            "`activity_log`.`detail`",
            format!("${}", mysql_keys(&path.head)),
        ),
        Some(each) => ("e.v", format!("${}", mysql_keys(each))),
    };
    let extract = |s: &mut Sql| {
        s.push("JSON_EXTRACT(")
            .push(doc)
            .push(", ")
            .bind(inner.clone())
            .push(")");
    };
    let mut m = Sql::default();
    m.push("CASE WHEN JSON_TYPE(");
    extract(&mut m);
    m.push(") <> 'NULL' THEN LOWER(JSON_UNQUOTE(");
    extract(&mut m);
    m.push(")) END LIKE ").bind(pattern).push(" ESCAPE '!'");
    if path.each.is_none() {
        return m;
    }
    let mut s = Sql::default();
    s.push("EXISTS (SELECT 1 FROM JSON_TABLE(JSON_EXTRACT(`activity_log`.`detail`, ")
        .bind(format!("${}", mysql_keys(&path.head)))
        .push("), '$[*]' COLUMNS (v JSON PATH '$')) AS e WHERE ")
        .append(&m)
        .push(")");
    s
}

/// MySQL/MariaDB: `JSON_CONTAINS` compares JSON values (numbers by value), and with a wildcard
/// path the extracted array contains any matching element.
fn mysql_equals(path: &DetailPath, values: &[Wanted]) -> Sql {
    let mut candidates: Vec<String> = Vec::new();
    for w in values {
        if w.null {
            candidates.push("null".into());
        }
        if let Some(text) = &w.text {
            candidates.push(serde_json::Value::String(text.clone()).to_string());
        }
        if let Some(n) = w.number {
            candidates.push(activity_core::value::encode_f64(n).to_string());
        }
        if let Some(b) = w.boolean {
            candidates.push(b.to_string());
        }
    }
    let mut s = Sql::default();
    s.push("(FALSE");
    for c in candidates {
        s.push(" OR JSON_CONTAINS(JSON_EXTRACT(`activity_log`.`detail`, ")
            .bind(mysql_path(path))
            .push("), ")
            .bind(c)
            .push(")");
    }
    s.push(")");
    s
}

/// SQLite JSON path: `$."a"."b"`.
fn sqlite_path(keys: &[String]) -> String {
    format!(
        "${}",
        keys.iter().map(|k| format!(".\"{k}\"")).collect::<String>()
    )
}

/// Build a SQLite predicate; `m` gets the value expression and the `json_type` expression.
fn sqlite_match(path: &DetailPath, m: impl Fn(&Sql, &Sql) -> Sql) -> Sql {
    let (doc, inner, each) = match &path.each {
        None => ("\"activity_log\".\"detail\"", &path.head, false),
        Some(inner) => ("e.value", inner, true),
    };
    let mut x = Sql::default();
    x.push("json_extract(")
        .push(doc)
        .push(", ")
        .bind(sqlite_path(inner))
        .push(")");
    let mut t = Sql::default();
    t.push("json_type(")
        .push(doc)
        .push(", ")
        .bind(sqlite_path(inner))
        .push(")");
    if !each {
        return m(&x, &t);
    }
    let mut s = Sql::default();
    s.push("EXISTS (SELECT 1 FROM json_each(\"activity_log\".\"detail\", ")
        .bind(sqlite_path(&path.head))
        .push(") AS e WHERE ")
        .append(&m(&x, &t))
        .push(")");
    s
}

fn sqlite_equals(x: &Sql, t: &Sql, values: &[Wanted]) -> Sql {
    let mut s = Sql::default();
    s.push("(0");
    for w in values {
        if w.null {
            s.push(" OR ").append(t).push(" = 'null'");
        }
        if let Some(text) = &w.text {
            s.push(" OR (")
                .append(t)
                .push(" = 'text' AND ")
                .append(x)
                .push(" = ")
                .bind(text.clone())
                .push(")");
        }
        if let Some(n) = w.number {
            s.push(" OR (")
                .append(t)
                .push(" IN ('integer', 'real') AND ")
                .append(x)
                .push(" = ")
                .bind(n)
                .push(")");
        }
        if let Some(b) = w.boolean {
            s.push(" OR ")
                .append(t)
                .push(" = ")
                .bind(if b { "true" } else { "false" });
        }
    }
    s.push(")");
    s
}

/// Rows strictly after the cursor position in the page order, as an index range.
///
/// PostgreSQL gets the row comparison `(created_at, id) < ($t, $id)`, which it turns into one
/// index range. Elsewhere the `OR` form is kept, with a plain `created_at <= $t` beside it so the
/// index range stays bounded: without it a deep page reads every newer row first (page 1000
/// of a hot item was 90x slower than page 1).
fn keyset(order: Order, backend: DbBackend, at: DateTime<Utc>, id: uuid::Uuid) -> Condition {
    if backend == DbBackend::Postgres {
        let op = match order {
            Order::Descending => "<",
            Order::Ascending => ">",
        };
        let sql =
            format!("(\"activity_log\".\"created_at\", \"activity_log\".\"id\") {op} ($1, $2)");
        return Condition::all().add(Expr::cust_with_values(
            sql,
            [Value::from(at), Value::from(id)],
        ));
    }
    match order {
        Order::Descending => Condition::all().add(Column::CreatedAt.lte(at)).add(
            Condition::any().add(Column::CreatedAt.lt(at)).add(
                Condition::all()
                    .add(Column::CreatedAt.eq(at))
                    .add(Column::Id.lt(id)),
            ),
        ),
        Order::Ascending => Condition::all().add(Column::CreatedAt.gte(at)).add(
            Condition::any().add(Column::CreatedAt.gt(at)).add(
                Condition::all()
                    .add(Column::CreatedAt.eq(at))
                    .add(Column::Id.gt(id)),
            ),
        ),
    }
}

/// A stable fingerprint of everything but the cursor and page size (FNV-1a over the filters).
fn fingerprint(query: &ActivityQuery) -> u64 {
    let mut q = query.clone();
    q.cursor = None;
    q.limit = None;
    let text = format!("{q:?}");
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

const CURSOR_VERSION: &str = "1";

fn encode_cursor(last: &ActivityEntry, query: &ActivityQuery) -> String {
    let raw = format!(
        "{CURSOR_VERSION}:{}:{}:{:016x}",
        last.created_at.timestamp_micros(),
        last.id.simple(),
        fingerprint(query)
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(
    cursor: &str,
    query: &ActivityQuery,
) -> Result<(DateTime<Utc>, uuid::Uuid), ActivityError> {
    let bad = || ActivityError::InvalidQuery("malformed cursor".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let raw = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = raw.split(':');
    let (Some(CURSOR_VERSION), Some(micros), Some(id), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad());
    };
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_micros)
        .ok_or_else(bad)?;
    let id = uuid::Uuid::parse_str(id).map_err(|_| bad())?;
    if hash != format!("{:016x}", fingerprint(query)) {
        return Err(ActivityError::InvalidQuery(
            "cursor belongs to a different query".into(),
        ));
    }
    Ok((at, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_off!"), "%50!%!_off!!%");
        assert_eq!(like_pattern("ABC"), "%abc%");
    }

    #[test]
    fn cursors_are_bound_to_their_query() {
        let entry = ActivityEntry::new("S", "created");
        let q = ActivityQuery::for_team("1").scope("S");
        let cursor = encode_cursor(&entry, &q);
        let (_, id) = decode_cursor(&cursor, &q.clone().limit(5)).unwrap();
        assert_eq!(id, entry.id);
        assert!(decode_cursor(&cursor, &ActivityQuery::for_team("2").scope("S")).is_err());
        assert!(decode_cursor("garbage", &q).is_err());
    }
}
