//! Alert rules: "more than N entries matching a query within a window", evaluated against the
//! database on a schedule, calling the application's handler once per breach.
//!
//! The window and de-duplication rule is documented on [`AlertEvaluator`].

use std::collections::HashMap;

use activity_core::{ActivityError, ActivityQuery};
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, QueryTrait};

use crate::errors::Error;
use crate::read::conditions;
use crate::schema::table::activity_log::{Column, Entity};

/// What a rule counts separately: one breach per organization, team or user, or one for the
/// whole query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AlertGroup {
    /// One count for everything the query matches.
    #[default]
    All,
    /// One count per `organization_id`.
    Organization,
    /// One count per `team_id`.
    Team,
    /// One count per `user_id`.
    User,
}

/// "More than `threshold` entries matching `query` within `window`", counted per `group`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct AlertRule {
    /// The rule's name, passed to the handler.
    pub name: String,
    /// Which entries count (tenant, scopes, activities, ... ; its `from`/`to`, order, page size
    /// and cursor are ignored: the window sets the time range).
    pub query: ActivityQuery,
    /// The count must be greater than this to breach.
    pub threshold: u64,
    /// The window's length.
    pub window: Duration,
    /// What is counted separately.
    pub group: AlertGroup,
}

impl AlertRule {
    /// A rule over the whole query (see [`per`](Self::per) to count per tenant or user).
    pub fn new(
        name: impl Into<String>,
        query: ActivityQuery,
        threshold: u64,
        window: Duration,
    ) -> Self {
        AlertRule {
            name: name.into(),
            query,
            threshold,
            window,
            group: AlertGroup::All,
        }
    }

    /// Count per organization, team or user.
    pub fn per(mut self, group: AlertGroup) -> Self {
        self.group = group;
        self
    }
}

/// One breach, as the handler receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Breach {
    /// The rule's name.
    pub rule: String,
    /// The group's value (organization, team or user id); `None` for [`AlertGroup::All`] and
    /// for entries without one.
    pub group: Option<String>,
    /// Entries in the window.
    pub count: u64,
    /// The rule's threshold.
    pub threshold: u64,
    /// The window's start (exclusive).
    pub from: DateTime<Utc>,
    /// The window's end (inclusive): the `now` of the evaluation.
    pub to: DateTime<Utc>,
}

impl Breach {
    /// A breach of `rule`, for evaluators of the same rules elsewhere (e.g. on the stream,
    /// `activity_nats::StreamAlerts`).
    pub fn new(
        rule: impl Into<String>,
        group: Option<String>,
        count: u64,
        threshold: u64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Self {
        Breach {
            rule: rule.into(),
            group,
            count,
            threshold,
            from,
            to,
        }
    }
}

/// The application's side of alerting: called once per breach.
#[async_trait::async_trait]
pub trait AlertHandler: Send + Sync {
    /// Handle one breach (send a page, lock an account ...). Called from
    /// [`AlertEvaluator::evaluate`], in order; keep it short or hand it off.
    async fn on_breach(&self, breach: &Breach);
}

/// Rules plus the memory of which breaches already fired. Call [`evaluate`](Self::evaluate) on
/// a schedule (e.g. every minute).
///
/// **Windows and de-duplication.** A rule is evaluated over the sliding window
/// `(now - window, now]`. When the count there exceeds the threshold, the handler is called once
/// with the count and the window, and that (rule, group) is then quiet until `now` has moved a
/// whole window past the breach that fired (`now >= fired_at + window`): a breach is never
/// reported twice for overlapping windows, and an attack that goes on is reported again at most
/// once per window length, each time over a window that does not overlap the one reported
/// before. The memory of what fired lives in the [`AlertEvaluator`] (a process restart may report a
/// breach in progress once more).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), activity_seaorm::Error> {
/// use activity_seaorm::ActivityQuery;
/// use activity_seaorm::ops::alerts::{AlertEvaluator, AlertGroup, AlertHandler, AlertRule, Breach};
/// struct Page;
/// #[async_trait::async_trait]
/// impl AlertHandler for Page {
///     async fn on_breach(&self, b: &Breach) {
///         eprintln!("{}: {} in {:?} since {}", b.rule, b.count, b.group, b.from);
///     }
/// }
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// activity_seaorm::schema::create_table(&db).await?;
/// let failed_logins = ActivityQuery::unscoped().activities(["login_failed"]);
/// let rule = AlertRule::new("failed-logins", failed_logins, 20, chrono::Duration::hours(1))
///     .per(AlertGroup::Organization);
/// let mut alerts = AlertEvaluator::new(vec![rule]);
/// let fired = alerts.evaluate(&db, chrono::Utc::now(), &Page).await?;
/// assert!(fired.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AlertEvaluator {
    rules: Vec<AlertRule>,
    fired: HashMap<(usize, Option<String>), DateTime<Utc>>,
}

impl AlertEvaluator {
    /// An evaluator for `rules`.
    pub fn new(rules: Vec<AlertRule>) -> Self {
        AlertEvaluator {
            rules,
            fired: HashMap::new(),
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[AlertRule] {
        &self.rules
    }

    /// Count each rule's window ending at `now` (one `GROUP BY .. HAVING` statement per rule)
    /// and call `handler` once for each new breach; returns the breaches reported. `now` comes
    /// from the caller (its clock), so tests can use a fixed one. Invalid rules (no tenant and
    /// not `unscoped()`, a window not longer than zero) are invalid-query errors; a rule that
    /// fails stops the evaluation there (breaches already reported stay reported).
    pub async fn evaluate<C: ConnectionTrait>(
        &mut self,
        db: &C,
        now: DateTime<Utc>,
        handler: &dyn AlertHandler,
    ) -> Result<Vec<Breach>, Error> {
        let mut reported = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let from = now - rule.window;
            for (group, count) in breaching_groups(db, rule, from, now).await? {
                let key = (index, group.clone());
                if let Some(fired_at) = self.fired.get(&key)
                    && now < *fired_at + rule.window
                {
                    continue;
                }
                let breach = Breach {
                    rule: rule.name.clone(),
                    group,
                    count,
                    threshold: rule.threshold,
                    from,
                    to: now,
                };
                tracing::warn!(rule = %breach.rule, group = ?breach.group, count,
                    threshold = rule.threshold, "activity alert rule breached");
                handler.on_breach(&breach).await;
                self.fired.insert(key, now);
                reported.push(breach);
            }
        }
        // Forget breaches whose quiet period is over.
        let rules = &self.rules;
        self.fired.retain(|(index, _), fired_at| {
            rules
                .get(*index)
                .is_some_and(|r| now < *fired_at + r.window)
        });
        Ok(reported)
    }
}

/// The groups over the threshold in `(from, to]`, with their counts.
async fn breaching_groups<C: ConnectionTrait>(
    db: &C,
    rule: &AlertRule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(Option<String>, u64)>, Error> {
    if rule.window <= Duration::zero() {
        return Err(ActivityError::InvalidQuery(format!(
            "alert rule {:?} needs a window longer than zero",
            rule.name
        ))
        .into());
    }
    let mut query = rule.query.clone();
    query.check_tenant()?;
    query.check_bounds()?;
    query.cursor = None;
    // `(from, to]`: stored timestamps have microsecond precision.
    query.from = Some(from + Duration::microseconds(1));
    query.to = Some(to);
    let backend = db.get_database_backend();
    let mut select = Entity::find()
        .select_only()
        .filter(conditions(&query, backend)?);
    let column = match rule.group {
        AlertGroup::All => None,
        AlertGroup::Organization => Some(Column::OrganizationId),
        AlertGroup::Team => Some(Column::TeamId),
        AlertGroup::User => Some(Column::UserId),
    };
    if let Some(column) = column {
        select = select.column_as(column, "grp").group_by(column);
    }
    let threshold = i64::try_from(rule.threshold).unwrap_or(i64::MAX);
    let select = select
        .expr_as(Expr::cust("COUNT(*)"), "count")
        .having(Expr::cust("COUNT(*)").gt(threshold));
    let rows = db.query_all_raw(select.build(backend)).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let group = match column {
            Some(_) => row.try_get::<Option<String>>("", "grp")?,
            None => None,
        };
        let count: i64 = row.try_get("", "count")?;
        out.push((group, u64::try_from(count).unwrap_or(0)));
    }
    out.sort();
    Ok(out)
}
