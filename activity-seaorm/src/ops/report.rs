//! Reports: how many entries, grouped by activity, scope, user and/or day, over a window.
//!
//! One `SELECT .. COUNT(*) .. GROUP BY` with the read path's WHERE clause, so a report is
//! tenant-scoped exactly like [`load_activity`](crate::load_activity) and a tenant's window is
//! served by the feed indexes on `(organization_id | team_id, created_at)`.

use activity_core::{ActivityError, ActivityQuery};
use chrono::NaiveDate;
use sea_orm::sea_query::Expr;
use sea_orm::{DbBackend, EntityTrait, QueryFilter, QuerySelect, QueryTrait};
use serde::{Deserialize, Serialize};

use crate::errors::Error;
use crate::read::conditions;
use crate::schema::table::activity_log::{Column, Entity};

/// The most groups one report returns; a report with more is an invalid query (narrow the
/// window, or group by fewer dimensions), so a report can never exhaust memory.
pub const MAX_REPORT_ROWS: usize = 100_000;

/// What a report groups by. Group by none for a single total.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReportDimension {
    /// The verb (`created`, `updated`, `login_failed` ...).
    Activity,
    /// The scope (model or area).
    Scope,
    /// The acting user (`user_id`; system entries have none).
    User,
    /// The UTC calendar day of `created_at`.
    Day,
}

/// One group of a report: the values of the dimensions grouped by (`None` for a dimension not
/// grouped by, and for entries without a user when grouped by [`ReportDimension::User`]) and
/// how many entries it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReportRow {
    /// The activity, when grouped by it.
    pub activity: Option<String>,
    /// The scope, when grouped by it.
    pub scope: Option<String>,
    /// The user id, when grouped by user (`None` there too for system entries).
    pub user_id: Option<String>,
    /// The UTC day, when grouped by day.
    pub day: Option<NaiveDate>,
    /// Entries in the group.
    pub count: u64,
}

/// Count the entries matching `query`, grouped by `group_by` (any of activity, scope, user and
/// day, each at most once; empty for one total row).
///
/// The window is the query's [`between`](ActivityQuery::between) (`from` and `to` inclusive,
/// like reads); its tenant is required like a read's ([`Tenancy`](crate::Tenancy): a team or
/// organization, or `unscoped()`), and every other filter of the query applies too. Its order,
/// page size and cursor are ignored. Rows come sorted by the grouped values, in the
/// order of `group_by` (byte order of the text, days ascending, no user first); empty groups are not returned. Days are UTC days on every
/// backend (`to_char(created_at AT TIME ZONE 'UTC', ..)` on PostgreSQL, `DATE_FORMAT` on
/// MySQL/MariaDB, `strftime` on SQLite). More than [`MAX_REPORT_ROWS`] groups is an
/// [invalid query](Error::is_invalid_query).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), activity_seaorm::Error> {
/// use activity_seaorm::{ActivityEntry, ActivityQuery};
/// use activity_seaorm::ops::report::{ReportDimension, activity_report};
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// activity_seaorm::schema::create_table(&db).await?;
/// let mut entry = ActivityEntry::new("Session", "login_failed");
/// entry.organization_id = Some("acme".into());
/// activity_seaorm::log_activity(&db, entry).await?;
/// let rows = activity_report(&db, &ActivityQuery::for_organization("acme"),
///     &[ReportDimension::Activity]).await?;
/// assert_eq!((rows[0].activity.as_deref(), rows[0].count), (Some("login_failed"), 1));
/// # Ok(()) }
/// ```
pub async fn activity_report<C: sea_orm::ConnectionTrait>(
    db: &C,
    query: &ActivityQuery,
    group_by: &[ReportDimension],
) -> Result<Vec<ReportRow>, Error> {
    query.check_tenant()?;
    query.check_bounds()?;
    for (i, d) in group_by.iter().enumerate() {
        if group_by[..i].contains(d) {
            return Err(ActivityError::InvalidQuery(format!(
                "report dimension {d:?} is given twice"
            ))
            .into());
        }
    }
    let backend = db.get_database_backend();
    let mut select = Entity::find()
        .select_only()
        .filter(conditions(query, backend)?);
    for d in group_by {
        let (column, expr) = match d {
            ReportDimension::Activity => ("activity", Expr::col(Column::Activity)),
            ReportDimension::Scope => ("scope", Expr::col(Column::Scope)),
            ReportDimension::User => ("user_id", Expr::col(Column::UserId)),
            ReportDimension::Day => ("day", Expr::cust(day_sql(backend))),
        };
        select = select.expr_as(expr.clone(), column).group_by(expr);
    }
    let select = select
        .expr_as(Expr::cust("COUNT(*)"), "count")
        .limit(MAX_REPORT_ROWS as u64 + 1);
    let rows = db.query_all_raw(select.build(backend)).await?;
    if rows.len() > MAX_REPORT_ROWS {
        return Err(ActivityError::InvalidQuery(format!(
            "the report has more than {MAX_REPORT_ROWS} groups: narrow the window or group by \
             fewer dimensions"
        ))
        .into());
    }
    let text = |row: &sea_orm::QueryResult, d: ReportDimension, col: &str| {
        if group_by.contains(&d) {
            row.try_get::<Option<String>>("", col)
        } else {
            Ok(None)
        }
    };
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let day = match text(row, ReportDimension::Day, "day")? {
            Some(day) => Some(NaiveDate::parse_from_str(&day, "%Y-%m-%d").map_err(|e| {
                sea_orm::DbErr::Type(format!("report day {day:?} is not a date: {e}"))
            })?),
            None => None,
        };
        let count: i64 = row.try_get("", "count")?;
        out.push(ReportRow {
            activity: text(row, ReportDimension::Activity, "activity")?,
            scope: text(row, ReportDimension::Scope, "scope")?,
            user_id: text(row, ReportDimension::User, "user_id")?,
            day,
            count: count.max(0) as u64,
        });
    }
    // Sorted here, not in SQL: NULL placement and collations differ between backends.
    out.sort_by(|a, b| {
        group_by
            .iter()
            .map(|d| match d {
                ReportDimension::Activity => a.activity.cmp(&b.activity),
                ReportDimension::Scope => a.scope.cmp(&b.scope),
                ReportDimension::User => a.user_id.cmp(&b.user_id),
                ReportDimension::Day => a.day.cmp(&b.day),
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    tracing::debug!(groups = out.len(), ?group_by, "activity report");
    Ok(out)
}

/// The UTC day of `created_at` as `YYYY-MM-DD` text, per backend.
fn day_sql(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => {
            "to_char(\"activity_log\".\"created_at\" AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        }
        // `datetime(6)` values are stored in UTC (the library writes UTC, no conversion).
        DbBackend::MySql => "DATE_FORMAT(`activity_log`.`created_at`, '%Y-%m-%d')",
        _ => "strftime('%Y-%m-%d', \"activity_log\".\"created_at\")",
    }
}
