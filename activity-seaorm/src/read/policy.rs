//! The read policy as SQL: the one condition every read path adds for its reader (pages,
//! exports, reports, alerts), the SQL twin of [`ReadPolicy::allows`].

use activity_core::policy::{EntryCondition, Tenant, VisibilityRule};
use activity_core::{ActivityQuery, ReadPolicy, Reader};
use chrono::{DateTime, Utc};
use sea_orm::ColumnTrait;
use sea_orm::sea_query::{Condition, Expr};

use crate::errors::Error;
use crate::schema::table::activity_log::Column;

/// What `query`'s reader may see under `policy` at `now`, as a WHERE condition (`None`:
/// everything). Refuses a query without a reader once the policy restricts anything.
pub(crate) fn visible(
    policy: &ReadPolicy,
    query: &ActivityQuery,
    now: DateTime<Utc>,
) -> Result<Option<Condition>, Error> {
    policy.check_reader(query.reader.as_ref())?;
    let Some(reader) = &query.reader else {
        return Ok(None);
    };
    if reader.is_auditor() {
        return Ok(None);
    }
    let mut c = Condition::all();
    let read_tenant = match (&query.organization_id, &query.team_id) {
        (Some(org), _) => Some(Tenant::Organization(org.clone())),
        (None, Some(team)) => Some(Tenant::Team(team.clone())),
        (None, None) => None,
    };
    if let Some(oldest) = policy.oldest_visible(reader, read_tenant.as_ref(), now)? {
        c = c.add(Column::CreatedAt.gte(oldest));
    }
    for rule in policy.rules().iter().filter(|r| r.binds(reader)) {
        c = c.add(hidden_by(rule, reader).not());
    }
    Ok(Some(c))
}

/// The entries `rule` hides from `reader` (who is bound by it).
fn hidden_by(rule: &VisibilityRule, reader: &Reader) -> Condition {
    let mut hides = Condition::all().add(Expr::cust("1 = 1"));
    if !rule.scopes.is_empty() {
        hides = hides.add(Column::Scope.is_in(rule.scopes.iter().map(String::as_str)));
    }
    if !rule.activities.is_empty() {
        hides = hides.add(Column::Activity.is_in(rule.activities.iter().map(String::as_str)));
    }
    for condition in &rule.when {
        hides = hides.add(match *condition {
            EntryCondition::WasImpersonated(v) => Column::WasImpersonated.eq(v),
            EntryCondition::IsSystem(v) => Column::IsSystem.eq(v),
            // A condition this crate does not know yet holds: hiding more, never less.
            _ => Expr::cust("1 = 1"),
        });
    }
    // A NULL user or item id is nobody's: `IS NULL OR <>` keeps the NOT below two-valued
    // (a bare `<>` would be NULL there, and NOT NULL hides the row too).
    if let Some(me) = &reader.user {
        for (exempt, column) in [
            (rule.actor_exempt, Column::UserId),
            (rule.subject_exempt, Column::ItemId),
        ] {
            if exempt {
                hides = hides.add(
                    Condition::any()
                        .add(column.is_null())
                        .add(column.ne(me.as_str())),
                );
            }
        }
    }
    hides
}
