//! The WHERE clause of a query: tenant, column lists, date range, flags, free-text search, and
//! the detail filters of [`filters`](super::filters).

use activity_core::ActivityQuery;
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ColumnTrait, DbBackend};

use super::filters::detail_filter;
use super::search::{glob_pattern, like_pattern, reject_long_pattern, reject_nul};
use crate::errors::Error;
use crate::schema::table::activity_log::Column;

/// The WHERE clause of `query` (without the cursor).
///
/// The configured [`ReadPolicy`](activity_core::ReadPolicy) is part of it, for the query's
/// reader: every SQL read path goes through here, so none can forget it.
pub(crate) fn conditions(query: &ActivityQuery, backend: DbBackend) -> Result<Condition, Error> {
    let mut c = Condition::all();
    let now = activity_core::clock::now();
    if let Some(visible) = activity_core::ActivityConfig::with_current(|config| {
        super::policy::visible(config.read_policy(), query, now)
    })? {
        c = c.add(visible);
    }
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
        // The text values of `detail` only (names, ids, field names, changed values): never its
        // keys or JSON syntax, so `name`, `null` or `"a":"b"` match what they say on every
        // backend. Unicode case folding everywhere (see `search`): LOWER .. LIKE where LOWER is
        // Unicode-aware, a case-class GLOB on SQLite.
        // A change whose `type` the stored form left out has the entry's scope there (see
        // `Detail::stored`): the scope matches for it, as the API shape's text would.
        c = c.add(match backend {
            DbBackend::Postgres => Expr::cust_with_values(
                "(EXISTS (SELECT 1 FROM jsonb_path_query(\"activity_log\".\"detail\", 'lax $.**') \
                 AS v(value) WHERE jsonb_typeof(v.value) = 'string' \
                 AND LOWER(v.value #>> '{}') LIKE $1 ESCAPE '!') \
                 OR (LOWER(\"activity_log\".\"scope\") LIKE $1 ESCAPE '!' \
                 AND jsonb_typeof(\"activity_log\".\"detail\" -> 'changes') = 'array' \
                 AND jsonb_path_exists(\"activity_log\".\"detail\", \
                 'lax $.changes[*] ? (@.type() == \"object\" && !(exists(@.\"type\")))')))",
                [like_pattern(text)],
            ),
            // MariaDB's JSON_SEARCH also matches `null`, booleans and numbers as text: keep
            // the hits whose value is a string. (One path comes back as a string, several as
            // an array.)
            DbBackend::MySql => {
                let pattern = like_pattern(text);
                Expr::cust_with_values(
                    "(EXISTS (SELECT 1 FROM JSON_TABLE(IF(JSON_TYPE(JSON_SEARCH(\
                     LOWER(`activity_log`.`detail`), 'all', ?, '!')) = 'ARRAY', \
                     JSON_SEARCH(LOWER(`activity_log`.`detail`), 'all', ?, '!'), \
                     JSON_ARRAY(JSON_UNQUOTE(JSON_SEARCH(LOWER(`activity_log`.`detail`), 'all', \
                     ?, '!')))), '$[*]' COLUMNS (p VARCHAR(2048) PATH '$')) AS hit \
                     WHERE JSON_TYPE(JSON_EXTRACT(LOWER(`activity_log`.`detail`), hit.p)) \
                     = 'STRING') \
                     OR (LOWER(`activity_log`.`scope`) LIKE ? ESCAPE '!' \
                     AND JSON_TYPE(JSON_EXTRACT(`activity_log`.`detail`, '$.changes')) = 'ARRAY' \
                     AND EXISTS (SELECT 1 FROM JSON_TABLE(`activity_log`.`detail`, \
                     '$.changes[*]' COLUMNS (e JSON PATH '$', t INT EXISTS PATH '$.type')) AS c \
                     WHERE c.t = 0 AND JSON_TYPE(c.e) = 'OBJECT')))",
                    [pattern.clone(), pattern.clone(), pattern.clone(), pattern],
                )
            }
            _ => {
                let glob = glob_pattern(text)?;
                Expr::cust_with_values(
                    "(EXISTS (SELECT 1 FROM json_tree(\"activity_log\".\"detail\") AS v \
                     WHERE v.type = 'text' AND v.value GLOB ?) \
                     OR (\"activity_log\".\"scope\" GLOB ? \
                     AND json_type(\"activity_log\".\"detail\", '$.changes') = 'array' \
                     AND EXISTS (SELECT 1 FROM json_each(\"activity_log\".\"detail\", '$.changes') \
                     AS c WHERE c.type = 'object' AND json_type(c.value, '$.type') IS NULL)))",
                    [glob.clone(), glob],
                )
            }
        });
    }
    for filter in &query.detail_filters {
        c = c.add(detail_filter(filter, backend)?);
    }
    Ok(c)
}
