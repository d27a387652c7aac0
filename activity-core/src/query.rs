//! What to read back: filters, order and keyset pagination.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::entry::ActivityEntry;
use crate::error::ActivityError;
use crate::policy::Reader;

/// Default page size.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest page size; larger is an error, not a silent clamp.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Most values in each column list of a query (`scopes`, `item_ids`, `users`, `activities`).
///
/// Every value is a bound parameter, and backends cap those per statement (SQLite 32,766,
/// PostgreSQL and MySQL 65,535); past them a query failed as a database error. The caps keep
/// the largest query that passes [`ActivityQuery::check_bounds`] — every cap reached at once —
/// at about 14,000 parameters, well inside every backend, so a query over a cap is refused as
/// [`ActivityError::InvalidQuery`] (a 400) and a query under them never hits the backend's
/// limit. A caller with more ids should page through them in several queries.
pub const MAX_LIST_LEN: usize = 1000;

/// Most [`DetailFilter`]s in one query. Each costs a JSON-path evaluation per row scanned, so
/// this is also a bound on the work one request can ask for.
pub const MAX_DETAIL_FILTERS: usize = 20;

/// Most values in all [`FilterOp::In`] lists of one query together. A value binds up to nine
/// parameters (it is matched as text, number and boolean), hence a total rather than a
/// per-filter cap.
pub const MAX_FILTER_VALUES: usize = 1000;

/// Page order on `(created_at, id)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Newest first (the default).
    #[default]
    Descending,
    /// Oldest first.
    Ascending,
}

/// How a detail filter matches the value at its path.
#[derive(Clone, Debug, PartialEq)]
pub enum FilterOp {
    /// Equal, type-tolerant: `"42"` matches `42`, `"42"` and `42.0`.
    Exact(Value),
    /// Equal to any of the values (at most [`MAX_FILTER_VALUES`] over the whole query).
    In(Vec<Value>),
    /// The text contains the given string (case-insensitive).
    Contains(String),
}

/// A filter on a JSON path of `detail` (`name`, `trigger.job_type`, `changes[].field`).
///
/// Every segment of the path is an object key, on every backend: `context.tags.0` means the
/// member `"0"` of the object `context.tags`, never the first element of an array (an array
/// there matches nothing). Arrays are walked with `[]` only: `changes[].field`. PostgreSQL's
/// `#>` would read `0` as an array index where SQLite's and MySQL's member paths read a key;
/// the read path makes PostgreSQL follow the key reading too.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct DetailFilter {
    /// Dotted path of object keys; `[]` walks every element of an array.
    pub path: String,
    /// The match.
    pub op: FilterOp,
}

/// A read of the activity log. Build one per tenant with [`ActivityQuery::for_team`] or
/// [`ActivityQuery::for_organization`]; reading across tenants needs [`ActivityQuery::unscoped`].
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ActivityQuery {
    /// Organization filter.
    pub organization_id: Option<String>,
    /// Team filter.
    pub team_id: Option<String>,
    /// Explicitly reads across tenants.
    pub unscoped: bool,
    /// Any of these scopes (at most [`MAX_LIST_LEN`]); empty: no restriction.
    pub scopes: Vec<String>,
    /// Any of these item ids (at most [`MAX_LIST_LEN`]); empty: no restriction.
    pub item_ids: Vec<String>,
    /// Any of these user ids (at most [`MAX_LIST_LEN`]); empty: no restriction.
    pub users: Vec<String>,
    /// Any of these activities (at most [`MAX_LIST_LEN`]); empty: no restriction.
    pub activities: Vec<String>,
    /// Inclusive lower bound of `created_at`.
    pub from: Option<DateTime<Utc>>,
    /// Inclusive upper bound of `created_at`.
    pub to: Option<DateTime<Utc>>,
    /// Only (not) impersonated entries.
    pub was_impersonated: Option<bool>,
    /// Only (not) system entries.
    pub is_system: Option<bool>,
    /// Case-insensitive text search over the text values of `detail` (the name, short id,
    /// field names, changed values, trigger and context strings), never its keys or JSON
    /// syntax: `name` or `null` find only entries holding those words. Numbers, booleans and
    /// nulls are not text: filter them with [`DetailFilter`]s. Case folding is Unicode's, on
    /// every backend: `ÉTÉ` finds `été` on SQLite as on PostgreSQL and MariaDB.
    pub search: Option<String>,
    /// Filters on `detail` paths (at most [`MAX_DETAIL_FILTERS`]).
    pub detail_filters: Vec<DetailFilter>,
    /// Page order.
    pub order: Order,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
    /// Opaque cursor from a previous [`Page`].
    pub cursor: Option<String>,
    /// Who reads: the [`ReadPolicy`](crate::ReadPolicy) of the configuration applies for them.
    /// Required once a policy is configured ([`Reader::auditor`] for an unrestricted read).
    /// Set it from the server's session, never from request parameters.
    pub reader: Option<Reader>,
}

macro_rules! list_builder {
    ($($(#[$doc:meta])* $name:ident => $field:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[must_use]
        pub fn $name<I, S>(mut self, values: I) -> Self
        where I: IntoIterator<Item = S>, S: Into<String> {
            self.$field.extend(values.into_iter().map(Into::into));
            self
        }
    )*};
}

impl ActivityQuery {
    /// Entries of one team.
    pub fn for_team(team_id: impl Into<String>) -> Self {
        Self {
            team_id: Some(team_id.into()),
            ..Self::default()
        }
    }

    /// Entries of one organization.
    pub fn for_organization(organization_id: impl Into<String>) -> Self {
        Self {
            organization_id: Some(organization_id.into()),
            ..Self::default()
        }
    }

    /// Entries of every tenant (admin tools, exports, retention).
    pub fn unscoped() -> Self {
        Self {
            unscoped: true,
            ..Self::default()
        }
    }

    // An empty list restricts nothing, like an absent one: a caller narrowing a read to "the
    // items this user may see" must check for none itself, or it reads the whole tenant.
    list_builder! {
        /// Restrict to scopes (an empty list: no restriction).
        scopes => scopes,
        /// Restrict to item ids. An empty list is no restriction: narrowing a read to the items
        /// a user may see, check for none first, or the whole tenant is read.
        item_ids => item_ids,
        /// Restrict to user ids (an empty list: no restriction).
        users => users,
        /// Restrict to activities (an empty list: no restriction).
        activities => activities,
    }

    /// Restrict to one scope.
    #[must_use]
    pub fn scope(self, scope: impl Into<String>) -> Self {
        self.scopes([scope])
    }

    /// Restrict to one item.
    #[must_use]
    pub fn item(self, scope: impl Into<String>, item_id: impl Into<String>) -> Self {
        self.scopes([scope]).item_ids([item_id])
    }

    /// Inclusive date range.
    #[must_use]
    pub fn between(mut self, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Self {
        self.from = from;
        self.to = to;
        self
    }

    /// Only (not) impersonated entries.
    #[must_use]
    pub fn was_impersonated(mut self, value: bool) -> Self {
        self.was_impersonated = Some(value);
        self
    }

    /// Only (not) system entries.
    #[must_use]
    pub fn is_system(mut self, value: bool) -> Self {
        self.is_system = Some(value);
        self
    }

    /// Free-text search over the text values of `detail` (see [`search`](Self::search)).
    #[must_use]
    pub fn search(mut self, text: impl Into<String>) -> Self {
        self.search = Some(text.into());
        self
    }

    /// Add a detail filter.
    #[must_use]
    pub fn detail_filter(mut self, path: impl Into<String>, op: FilterOp) -> Self {
        self.detail_filters.push(DetailFilter {
            path: path.into(),
            op,
        });
        self
    }

    /// Oldest first.
    #[must_use]
    pub fn ascending(mut self) -> Self {
        self.order = Order::Ascending;
        self
    }

    /// Page size.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Continue after a previous page.
    #[must_use]
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// Read as `reader`: the configured [`ReadPolicy`](crate::ReadPolicy) hides what it
    /// hides from them, in SQL, so pages and counts hold exactly what they may see.
    #[must_use]
    pub fn reader(mut self, reader: Reader) -> Self {
        self.reader = Some(reader);
        self
    }

    /// The checked page size.
    pub fn page_size(&self) -> Result<usize, ActivityError> {
        match self.limit.unwrap_or(DEFAULT_PAGE_SIZE) {
            0 => Err(ActivityError::InvalidQuery(
                "page size must be at least 1".into(),
            )),
            n if n > MAX_PAGE_SIZE => Err(ActivityError::InvalidQuery(format!(
                "page size {n} is larger than the maximum {MAX_PAGE_SIZE}"
            ))),
            n => Ok(n),
        }
    }

    /// Refuse a query over one of the documented caps ([`MAX_LIST_LEN`] per column list,
    /// [`MAX_DETAIL_FILTERS`], [`MAX_FILTER_VALUES`]) with [`ActivityError::InvalidQuery`],
    /// before any SQL is built: over them a backend would refuse the statement for its number
    /// of parameters, which would surface as a database error (a 500) instead of the caller's
    /// mistake (a 400).
    pub fn check_bounds(&self) -> Result<(), ActivityError> {
        for (name, list) in [
            ("scopes", &self.scopes),
            ("item_ids", &self.item_ids),
            ("users", &self.users),
            ("activities", &self.activities),
        ] {
            if list.len() > MAX_LIST_LEN {
                return Err(ActivityError::InvalidQuery(format!(
                    "{name} has {} values, more than the maximum {MAX_LIST_LEN}",
                    list.len()
                )));
            }
        }
        if self.detail_filters.len() > MAX_DETAIL_FILTERS {
            return Err(ActivityError::InvalidQuery(format!(
                "{} detail filters, more than the maximum {MAX_DETAIL_FILTERS}",
                self.detail_filters.len()
            )));
        }
        let values: usize = self
            .detail_filters
            .iter()
            .map(|f| match &f.op {
                FilterOp::In(values) => values.len(),
                FilterOp::Exact(_) | FilterOp::Contains(_) => 0,
            })
            .sum();
        if values > MAX_FILTER_VALUES {
            return Err(ActivityError::InvalidQuery(format!(
                "the `in` detail filters have {values} values together, more than the maximum \
                 {MAX_FILTER_VALUES}"
            )));
        }
        Ok(())
    }

    /// Refuse a query that names no tenant and is not explicitly unscoped.
    pub fn check_tenant(&self) -> Result<(), ActivityError> {
        if self.unscoped
            || self.team_id.is_some()
            || self.organization_id.is_some()
            || crate::ActivityConfig::with_current(|c| c.tenancy()) == crate::Tenancy::Single
        {
            Ok(())
        } else {
            Err(ActivityError::InvalidQuery(
                "a query must name a team or organization, or be explicitly `unscoped()`".into(),
            ))
        }
    }

    /// Refuse a query that names no [`Reader`] when the configured
    /// [`ReadPolicy`](crate::ReadPolicy) restricts anything.
    pub fn check_reader(&self) -> Result<(), ActivityError> {
        crate::ActivityConfig::with_current(|c| c.read_policy().check_reader(self.reader.as_ref()))
    }

    /// Whether the query's reader may see `entry` at `now` under the configured
    /// [`ReadPolicy`](crate::ReadPolicy) (a query without a reader: only while no policy
    /// restricts anything).
    pub fn allows(&self, entry: &ActivityEntry, now: DateTime<Utc>) -> bool {
        crate::ActivityConfig::with_current(|c| {
            let policy = c.read_policy();
            match &self.reader {
                Some(reader) => policy.allows(reader, entry, now),
                None => policy.is_empty(),
            }
        })
    }

    /// Whether `entry` passes the column filters (not search, detail filters or cursor):
    /// the in-memory store's matcher.
    pub fn matches_columns(&self, entry: &ActivityEntry) -> bool {
        fn any(list: &[String], value: Option<&str>) -> bool {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|l| l == v))
        }
        self.organization_id
            .as_deref()
            .is_none_or(|o| entry.organization_id.as_deref() == Some(o))
            && self
                .team_id
                .as_deref()
                .is_none_or(|t| entry.team_id.as_deref() == Some(t))
            && any(&self.scopes, Some(&entry.scope))
            && any(&self.item_ids, entry.item_id.as_deref())
            && any(&self.users, entry.user_id.as_deref())
            && any(&self.activities, Some(&entry.activity))
            && self.from.is_none_or(|f| entry.created_at >= f)
            && self.to.is_none_or(|t| entry.created_at <= t)
            && self
                .was_impersonated
                .is_none_or(|w| entry.was_impersonated == w)
            && self.is_system.is_none_or(|s| entry.is_system == s)
    }
}

/// One page of results.
///
/// Serializes (serde) as `{"results": [..], "next_cursor": ..}`, each entry in its JSON shape,
/// so a handler can return it as is:
///
/// ```
/// use activity_core::{ActivityEntry, Page};
/// let page = Page::new(vec![ActivityEntry::new("Job", "ran")], Some("next".into()));
/// let json = serde_json::to_value(&page).unwrap();
/// assert_eq!(json["next_cursor"], "next");
/// assert_eq!(json["results"][0]["scope"], "Job");
/// assert_eq!(serde_json::from_value::<Page>(json).unwrap(), page);
/// ```
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Page {
    /// Entries in the requested order.
    pub results: Vec<ActivityEntry>,
    /// Pass to [`ActivityQuery::after`] for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl Page {
    /// A page of `results`, with the cursor of the next one if there is more.
    pub fn new(results: Vec<ActivityEntry>, next_cursor: Option<String>) -> Self {
        Self {
            results,
            next_cursor,
        }
    }
}
