//! A small builder of parameterized SQL text: every user-supplied value becomes a placeholder.

use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{DbBackend, Value};

/// Marks a placeholder in [`Sql::text`]; rendered as `?` or `$n` per backend.
const PARAM: char = '\u{1}';

/// SQL text plus the values for its placeholders, in order.
#[derive(Default)]
pub(super) struct Sql {
    text: String,
    values: Vec<Value>,
}

impl Sql {
    pub(super) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    pub(super) fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.text.push(PARAM);
        self.values.push(value.into());
        self
    }

    /// Append `other` (its text and values).
    pub(super) fn append(&mut self, other: &Sql) -> &mut Self {
        self.text.push_str(&other.text);
        self.values.extend(other.values.iter().cloned());
        self
    }

    /// PostgreSQL numbers its placeholders; the others use `?`.
    pub(super) fn into_expr(self, backend: DbBackend) -> SimpleExpr {
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
