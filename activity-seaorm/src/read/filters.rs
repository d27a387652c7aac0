//! Detail filters (`exact`, `in`, `contains` on a JSON path of `detail`), one SQL dialect per
//! backend, type-tolerant (`"42"` matches `42`, `42.0` and `"42"`).

use activity_core::path::DetailPath;
use activity_core::{ActivityError, DetailFilter, FilterOp};
use sea_orm::DbBackend;
use sea_orm::sea_query::{Expr, SimpleExpr};

use super::search::{glob_pattern, like_pattern, reject_long_pattern, reject_nul};
use super::sql::Sql;
use crate::errors::Error;

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

pub(super) fn detail_filter(
    filter: &DetailFilter,
    backend: DbBackend,
) -> Result<SimpleExpr, Error> {
    let path = DetailPath::parse(&filter.path)?;
    let values: Vec<Wanted> = match &filter.op {
        FilterOp::Exact(v) => vec![wanted(v)?],
        FilterOp::In(vs) => vs.iter().map(wanted).collect::<Result<_, _>>()?,
        FilterOp::Contains(s) => {
            reject_nul(s)?;
            reject_long_pattern(s)?;
            // The text of a change object, or of the list of them, is the stored JSON's, which
            // the compact form writes without some of its keys: refused, not compared against
            // text the API shape does not have.
            if path.head == ["changes"] && path.each.as_ref().is_none_or(Vec::is_empty) {
                return Err(ActivityError::InvalidQuery(format!(
                    "detail path {:?}: `contains` compares text, and `changes` holds objects: \
                     filter on a key of them (`changes[].field`, `changes[].after`, ...)",
                    filter.path
                ))
                .into());
            }
            return Ok(contains(&path, s, backend)?.into_expr(backend));
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

fn contains(path: &DetailPath, needle: &str, backend: DbBackend) -> Result<Sql, ActivityError> {
    let pattern = like_pattern(needle);
    Ok(match backend {
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
        // A case-class GLOB, not LOWER .. LIKE: SQLite folds ASCII only (see `search`).
        _ => {
            let glob = glob_pattern(needle)?;
            sqlite_match(path, |x, t| {
                let mut s = Sql::default();
                s.push("CASE ")
                    .append(t)
                    .push(" WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(")
                    .append(x)
                    .push(" AS TEXT) END GLOB ")
                    .bind(glob.clone());
                s
            })
        }
    })
}

/// PostgreSQL: `text[]` literal for `#>`, bound as a parameter.
fn pg_path(keys: &[String]) -> String {
    format!("{{{}}}", keys.join(","))
}

/// Whether PostgreSQL's `#>` could read `key` as an array index (`0`, `007`; the path
/// grammar refuses a leading `-`).
fn looks_like_index(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit())
}

/// What the API shape holds where the stored form may have left a key out
/// ([`Detail::stored`](activity_core::Detail::stored)): a filter reads the stored row, so at
/// these paths it compares this value where the key is missing, and matches what the API
/// gives back, in either stored form.
#[derive(Clone, Copy)]
enum Omitted {
    Null,
    EmptyArray,
    Scope,
}

fn omitted(path: &DetailPath) -> Option<Omitted> {
    fn one(keys: &[String]) -> Option<&str> {
        match keys {
            [key] => Some(key),
            _ => None,
        }
    }
    match (one(&path.head)?, path.each.as_deref()) {
        ("name" | "short_id" | "type" | "trigger" | "context", None) => Some(Omitted::Null),
        ("changes", None) => Some(Omitted::EmptyArray),
        ("changes", Some(each)) => match one(each)? {
            "field" | "before" | "after" => Some(Omitted::Null),
            "type" => Some(Omitted::Scope),
            _ => None,
        },
        _ => None,
    }
}

/// PostgreSQL: the value at object keys `keys` below the jsonb expression `doc`.
///
/// `#>` reads a numeric step as an array index when it meets an array, where SQLite and
/// MySQL member paths (`$."0"`) only ever read object keys. Every path segment is an object
/// key (see [`DetailFilter`]), so a path with such a step is evaluated as a strict SQL/JSON
/// path instead, `strict $."a"."0"`, whose member accessor fails on an array — and
/// `silent => true` turns that failure into SQL NULL, i.e. no match, as elsewhere. Paths
/// without numeric steps keep the plain `#>`.
fn pg_get(doc: &str, keys: &[String]) -> Sql {
    let mut x = Sql::default();
    if keys.iter().any(|k| looks_like_index(k)) {
        let path: String = keys.iter().map(|k| format!(".\"{k}\"")).collect();
        x.push("jsonb_path_query_first(")
            .push(doc)
            .push(", CAST(")
            .bind(format!("strict ${path}"))
            .push(" AS jsonpath), '{}'::jsonb, true)");
    } else {
        x.push("(")
            .push(doc)
            .push(" #> CAST(")
            .bind(pg_path(keys))
            .push(" AS text[]))");
    }
    x
}

/// Build a PostgreSQL predicate over the value(s) at `path`; `m` gets the jsonb expression.
fn pg_match(path: &DetailPath, m: impl Fn(&Sql) -> Sql) -> Sql {
    let restored = |x: Sql| {
        let Some(omitted) = omitted(path) else {
            return x;
        };
        let mut s = Sql::default();
        s.push("COALESCE(").append(&x).push(match omitted {
            Omitted::Null => ", 'null'::jsonb)",
            Omitted::EmptyArray => ", '[]'::jsonb)",
            Omitted::Scope => ", to_jsonb(\"activity_log\".\"scope\"::text))",
        });
        s
    };
    let head = pg_get("\"activity_log\".\"detail\"", &path.head);
    let Some(each) = &path.each else {
        return m(&restored(head));
    };
    let x = if each.is_empty() {
        let mut x = Sql::default();
        x.push("e.v");
        x
    } else {
        restored(pg_get("e.v", each))
    };
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

/// `."a"."b"`: the member steps of a MySQL JSON path.
fn mysql_keys(keys: &[String]) -> String {
    keys.iter().map(|k| format!(".\"{k}\"")).collect()
}

/// Build a MySQL/MariaDB predicate on the value(s) at `path`: `m` gets what writes the value's
/// `JSON_EXTRACT`. With `[]`, each element is tested on its own (`JSON_TABLE`), never the
/// array's JSON text with its quotes and escapes.
fn mysql_match(path: &DetailPath, m: impl FnOnce(&dyn Fn(&mut Sql)) -> Sql) -> Sql {
    let (doc, inner) = match &path.each {
        None => (
            "`activity_log`.`detail`",
            format!("${}", mysql_keys(&path.head)),
        ),
        Some(each) => ("e.v", format!("${}", mysql_keys(each))),
    };
    let omitted = omitted(path);
    let extract = |s: &mut Sql| {
        if omitted.is_some() {
            s.push("COALESCE(");
        }
        s.push("JSON_EXTRACT(")
            .push(doc)
            .push(", ")
            .bind(inner.clone())
            .push(")");
        match omitted {
            Some(Omitted::Null) => s.push(", 'null')"),
            Some(Omitted::EmptyArray) => s.push(", '[]')"),
            Some(Omitted::Scope) => s.push(", JSON_QUOTE(`activity_log`.`scope`))"),
            None => s,
        };
    };
    let m = m(&extract);
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

/// MySQL/MariaDB: text of the value(s) at `path` LIKE `pattern`; a JSON `null` has no text, as
/// on the other backends.
fn mysql_contains(path: &DetailPath, pattern: String) -> Sql {
    mysql_match(path, |extract| {
        let mut m = Sql::default();
        m.push("CASE WHEN JSON_TYPE(");
        extract(&mut m);
        m.push(") <> 'NULL' THEN LOWER(JSON_UNQUOTE(");
        extract(&mut m);
        m.push(")) END LIKE ").bind(pattern).push(" ESCAPE '!'");
        m
    })
}

/// MySQL/MariaDB: `JSON_CONTAINS` compares JSON values (numbers by value). It also takes an
/// array to contain each of its elements, which the other backends do not: a value that is an
/// array never equals a scalar here either (`[]` compares the elements).
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
    mysql_match(path, |extract| {
        let mut m = Sql::default();
        m.push("(FALSE");
        for c in candidates {
            m.push(" OR (JSON_TYPE(");
            extract(&mut m);
            m.push(") <> 'ARRAY' AND JSON_CONTAINS(");
            extract(&mut m);
            m.push(", ").bind(c).push("))");
        }
        m.push(")");
        m
    })
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
    let wrap = |open: &str, inner: &Sql, close: &str| {
        let mut s = Sql::default();
        s.push(open).append(inner).push(close);
        s
    };
    let mut x = Sql::default();
    let mut t = Sql::default();
    if each && inner.is_empty() {
        // The element itself (`tags[]`): json_each has its value and type already. (A scalar
        // element's value is SQL text, not JSON: json_extract on it would fail.)
        x.push("e.value");
        t.push("e.type");
    } else {
        x.push("json_extract(")
            .push(doc)
            .push(", ")
            .bind(sqlite_path(inner))
            .push(")");
        t.push("json_type(")
            .push(doc)
            .push(", ")
            .bind(sqlite_path(inner))
            .push(")");
    }
    match omitted(path) {
        // A JSON `null` and a missing key both extract as SQL NULL; only the type tells them
        // apart.
        Some(Omitted::Null) => t = wrap("COALESCE(", &t, ", 'null')"),
        Some(Omitted::EmptyArray) => {
            x = wrap("COALESCE(", &x, ", '[]')");
            t = wrap("COALESCE(", &t, ", 'array')");
        }
        Some(Omitted::Scope) => {
            let mut s = Sql::default();
            s.push("CASE WHEN ")
                .append(&t)
                .push(" IS NULL THEN \"activity_log\".\"scope\" ELSE ")
                .append(&x)
                .push(" END");
            x = s;
            t = wrap("COALESCE(", &t, ", 'text')");
        }
        None => {}
    }
    if !each {
        return m(&x, &t);
    }
    // `[]` walks an array only: json_each would also walk an object's members.
    let mut s = Sql::default();
    s.push("EXISTS (SELECT 1 FROM json_each(\"activity_log\".\"detail\", ")
        .bind(sqlite_path(&path.head))
        .push(") AS e WHERE json_type(\"activity_log\".\"detail\", ")
        .bind(sqlite_path(&path.head))
        .push(") = 'array' AND ")
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
