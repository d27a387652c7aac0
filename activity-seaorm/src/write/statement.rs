//! SeaORM's own bulk statements (`Entity::update_many()`, `delete_many()`, `insert_many(..)`)
//! read back into what the logged bulk writes take: a filter, the values set, the rows.
//!
//! sea-query keeps a statement's WHERE clause and rows private, so they are recovered from the
//! SQL the statement renders for the connection's backend: the text after the statement's
//! head (`UPDATE t SET ..`, `DELETE FROM t`) is the filter, with the parameters that follow
//! the head's. Every recovery is checked the same way: the statement rebuilt from what was
//! recovered must render to exactly the original SQL and parameters; anything else (an ORDER
//! BY, a LIMIT, RETURNING, ON CONFLICT, a SET to an expression) is refused with an error that
//! says why, before anything is written.

use sea_orm::StatementBuilder;
use sea_orm::sea_query::{Condition, ConditionalStatement, Expr};
use sea_orm::{DbBackend, DbErr, Statement, Value};

/// The refusal of a statement the log cannot follow.
pub(crate) fn unsupported(what: &str, why: impl std::fmt::Display) -> DbErr {
    DbErr::Custom(format!(
        "exec_logged cannot log this {what}: {why}; use activity_seaorm::bulk's functions, or \
         SeaORM's exec and log_activity"
    ))
}

/// The statement's parameters.
pub(crate) fn values(statement: &Statement) -> Vec<Value> {
    statement
        .values
        .as_ref()
        .map(|v| v.0.clone())
        .unwrap_or_default()
}

/// The filter of `full` (an UPDATE or DELETE rendered for `backend`) as a condition, `head`
/// being the same statement without it: checked by rebuilding `head` with the filter and
/// comparing the rendered SQL and parameters with `full`'s.
pub(crate) fn filter_of<S>(
    full: &Statement,
    head: &S,
    backend: DbBackend,
    what: &str,
) -> Result<Condition, DbErr>
where
    S: StatementBuilder + ConditionalStatement + Clone,
{
    let filter = filter_after(full, &backend.build(head), backend, what)?;
    let mut rebuilt = head.clone();
    if let Some(f) = &filter {
        rebuilt.and_where(f.clone());
    }
    if !same(full, &backend.build(&rebuilt)) {
        return Err(unsupported(what, "it has clauses beyond a filter"));
    }
    Ok(match filter {
        Some(f) => Condition::all().add(f),
        None => Condition::all(),
    })
}

/// The filter of `full`, whose SQL is `head`'s followed by ` WHERE <filter>` (or nothing: every
/// row), as an expression of its own placeholders and values.
fn filter_after(
    full: &Statement,
    head: &Statement,
    backend: DbBackend,
    what: &str,
) -> Result<Option<Expr>, DbErr> {
    let rest = full
        .sql
        .strip_prefix(head.sql.as_str())
        .ok_or_else(|| unsupported(what, "its SQL does not start as expected"))?;
    if rest.is_empty() {
        return Ok(None);
    }
    let filter = rest
        .strip_prefix(" WHERE ")
        .ok_or_else(|| unsupported(what, format!("it has more than a filter ({rest:?})")))?;
    let all = values(full);
    let skip = values(head).len();
    let params = all.get(skip..).unwrap_or_default().to_vec();
    let text = match backend {
        DbBackend::Postgres => renumber(filter, skip),
        _ => filter.to_owned(),
    };
    Ok(Some(Expr::cust_with_values(text, params)))
}

/// PostgreSQL placeholders `$n` in `sql` renumbered to `$(n - offset)`, outside quoted text and
/// identifiers.
fn renumber(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                match digits.parse::<usize>() {
                    Ok(n) if n > offset => out.push_str(&format!("${}", n - offset)),
                    _ => {
                        out.push('$');
                        out.push_str(&digits);
                    }
                }
            }
            None => out.push(c),
        }
    }
    out
}

/// The constant a SET or VALUES expression writes (SeaORM's `Set(v)`, possibly cast for an
/// enum column), or `None` for a computed one.
pub(crate) fn constant(expr: &Expr) -> Option<Value> {
    match expr {
        Expr::Value(v) => Some(v.clone()),
        Expr::AsEnum(_, inner) => constant(inner),
        _ => None,
    }
}

/// Whether `rebuilt` renders exactly as `original` (SQL and parameters).
pub(crate) fn same(original: &Statement, rebuilt: &Statement) -> bool {
    original.sql == rebuilt.sql && values(original) == values(rebuilt)
}

/// The column names of an `INSERT INTO <table> (<columns>) VALUES ..` head, unquoted.
pub(crate) fn insert_columns(sql: &str, backend: DbBackend) -> Option<Vec<String>> {
    let open = sql.find(" (")? + 2;
    let close = open + sql.get(open..)?.find(") VALUES ")?;
    let quote = match backend {
        DbBackend::MySql => '`',
        _ => '"',
    };
    sql.get(open..close)?
        .split(", ")
        .map(|c| {
            let inner = c.strip_prefix(quote)?.strip_suffix(quote)?;
            Some(inner.replace(&format!("{quote}{quote}"), &quote.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_outside_quotes() {
        assert_eq!(
            renumber("\"a\" = $3 AND \"b$4\" = '$5' AND \"c\" IN ($4, $12)", 2),
            "\"a\" = $1 AND \"b$4\" = '$5' AND \"c\" IN ($2, $10)"
        );
    }

    #[test]
    fn insert_columns_are_read_from_the_head() {
        assert_eq!(
            insert_columns(
                "INSERT INTO \"t\" (\"a\", \"b\"\"c\") VALUES ($1, $2)",
                DbBackend::Postgres
            ),
            Some(vec!["a".to_owned(), "b\"c".to_owned()])
        );
        assert_eq!(
            insert_columns("INSERT INTO `t` (`a`) VALUES (?)", DbBackend::MySql),
            Some(vec!["a".to_owned()])
        );
    }
}
