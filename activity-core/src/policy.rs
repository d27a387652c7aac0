//! Who may read which entries, and how far back: [`ReadPolicy`], [`Reader`].
//!
//! An audit log is read by people with different rights. A teammate reading the team's feed
//! must not see that a support agent logged in as their colleague, or the changes made to
//! user accounts; an organization on a small plan may read back only 30 days. The entries
//! themselves stay for auditors: a policy hides, it never deletes.
//!
//! The policy is one value in [`ActivityConfig`](crate::ActivityConfig)
//! ([`with_read_policy`](crate::ActivityConfig::with_read_policy)), applied by every read path
//! for the [`Reader`] the query names ([`ActivityQuery::reader`](crate::ActivityQuery::reader)):
//! in SQL by `activity-seaorm`'s reads, exports, reports and alerts (so keyset pages and counts
//! see exactly the visible rows), and by [`ReadPolicy::allows`] where entries arrive one by one
//! (the notifier, stream alerts, the in-memory store) — the same answer both ways.
//!
//! Once a policy is configured, a query that names no reader is refused: an unrestricted read
//! says so with [`Reader::auditor`], never by default.
//!
//! ```
//! use activity_core::policy::{ReadPolicy, Reader, Tenant, VisibilityRule};
//! use activity_core::{ActivityContext, ActivityEntry, Actor};
//! let policy = ReadPolicy::new()
//!     // Impersonated logins: staff only.
//!     .hide(VisibilityRule::new("impersonated-logins")
//!         .scopes(["Session"]).activities(["logged_in"]).when_impersonated())
//!     // Changes to user accounts: staff, and the user whose account it is.
//!     .hide(VisibilityRule::new("user-accounts").scopes(["User"]).visible_to_subject())
//!     // Free plans read back 30 days.
//!     .with_lookback(|tenant: &Tenant| match tenant {
//!         Tenant::Organization(id) if id == "free-org" => Some(chrono::Duration::days(30)),
//!         _ => None,
//!     });
//! let agent = ActivityContext::impersonating(Actor::new("7"), Actor::new("agent-1"));
//! let mut login = ActivityEntry::new("Session", "logged_in").with_context(&agent);
//! login.organization_id = Some("acme".into());
//! let now = login.created_at;
//! let member = Reader::member("8").in_organization("acme");
//! assert!(!policy.allows(&member, &login, now));
//! assert!(policy.allows(&Reader::staff("s-1").in_organization("acme"), &login, now));
//! assert!(policy.allows(&Reader::auditor(), &login, now));
//! ```

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::entry::ActivityEntry;
use crate::error::ActivityError;
use crate::feed::{FeedEntry, Reveal};

/// A tenant: whose plan sets the lookback window.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Tenant {
    /// An organization id.
    Organization(String),
    /// A team id.
    Team(String),
}

impl Tenant {
    /// The tenant an entry is filed under: its organization, else its team.
    pub fn of(entry: &ActivityEntry) -> Option<Tenant> {
        match (&entry.organization_id, &entry.team_id) {
            (Some(org), _) => Some(Tenant::Organization(org.clone())),
            (None, Some(team)) => Some(Tenant::Team(team.clone())),
            (None, None) => None,
        }
    }
}

/// Who reads: a user of a tenant, staff or not — or an auditor, who reads everything.
///
/// Built by the application from its own session (never from request parameters): the
/// library cannot tell staff from members.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reader {
    /// The reader's user id (for rules that let the actor or the subject see an entry).
    pub user: Option<String>,
    /// The reader's tenant: whose lookback window applies. `None`: the tenant being read.
    pub tenant: Option<Tenant>,
    /// Staff (the application's operators): exempt from the rules that say so.
    pub staff: bool,
    /// What of an entry's origin the reader sees in a [`FeedEntry`].
    pub reveal: Reveal,
    auditor: bool,
}

impl Reader {
    /// An unrestricted read: every entry, however old, every field. Meant for audits,
    /// exports to an auditor, archiving and operations — say it where it is meant.
    pub fn auditor() -> Self {
        Reader {
            user: None,
            tenant: None,
            staff: true,
            reveal: Reveal::everything(),
            auditor: true,
        }
    }

    /// A member of a tenant: every rule applies; sees no request origin or impersonator.
    pub fn member(user: impl Into<String>) -> Self {
        Reader {
            user: Some(user.into()),
            tenant: None,
            staff: false,
            reveal: Reveal::nothing(),
            auditor: false,
        }
    }

    /// Staff: exempt from the rules that exempt staff (the default of a [`VisibilityRule`]),
    /// still bound by the lookback window; sees the request origin and the impersonator.
    pub fn staff(user: impl Into<String>) -> Self {
        Reader {
            staff: true,
            reveal: Reveal::everything(),
            ..Reader::member(user)
        }
    }

    /// Reading as a member of this organization (its plan's lookback window applies).
    #[must_use]
    pub fn in_organization(mut self, id: impl Into<String>) -> Self {
        self.tenant = Some(Tenant::Organization(id.into()));
        self
    }

    /// Reading as a member of this team.
    #[must_use]
    pub fn in_team(mut self, id: impl Into<String>) -> Self {
        self.tenant = Some(Tenant::Team(id.into()));
        self
    }

    /// With this view of an entry's origin (e.g. staff who must not see IP addresses).
    #[must_use]
    pub fn with_reveal(mut self, reveal: Reveal) -> Self {
        self.reveal = reveal;
        self
    }

    /// Whether this is [`Reader::auditor`].
    pub fn is_auditor(&self) -> bool {
        self.auditor
    }

    /// `entry` as this reader sees it: the fields their [`reveal`](Self::reveal) allows.
    pub fn view(&self, entry: &ActivityEntry) -> FeedEntry {
        FeedEntry::new(entry, self.reveal)
    }
}

/// A condition on an entry's own fields, for [`VisibilityRule::when`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryCondition {
    /// `was_impersonated` has this value.
    WasImpersonated(bool),
    /// `is_system` has this value.
    IsSystem(bool),
}

impl EntryCondition {
    fn holds(self, entry: &ActivityEntry) -> bool {
        match self {
            EntryCondition::WasImpersonated(v) => entry.was_impersonated == v,
            EntryCondition::IsSystem(v) => entry.is_system == v,
        }
    }
}

/// Entries hidden from readers who are not exempt: those of the rule's scopes and activities
/// (empty: any) for which every condition holds.
///
/// Exempt by default: staff and auditors. [`hidden_from_staff`](Self::hidden_from_staff)
/// leaves auditors only; [`visible_to_actor`](Self::visible_to_actor) and
/// [`visible_to_subject`](Self::visible_to_subject) let the entry's user, or the user the
/// item is, see it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VisibilityRule {
    /// A name for logs and errors.
    pub name: String,
    /// Any of these scopes; empty: every scope.
    pub scopes: Vec<String>,
    /// Any of these activities; empty: every activity.
    pub activities: Vec<String>,
    /// All of these hold; empty: always.
    pub when: Vec<EntryCondition>,
    /// Staff may see what the rule hides (default `true`).
    pub staff_exempt: bool,
    /// The entry's own user may see it.
    pub actor_exempt: bool,
    /// The user whose id is the entry's item id may see it (rules on user-account scopes).
    pub subject_exempt: bool,
}

impl VisibilityRule {
    /// A rule hiding every entry from non-staff readers; narrow it with the builders.
    pub fn new(name: impl Into<String>) -> Self {
        VisibilityRule {
            name: name.into(),
            scopes: Vec::new(),
            activities: Vec::new(),
            when: Vec::new(),
            staff_exempt: true,
            actor_exempt: false,
            subject_exempt: false,
        }
    }

    /// Only entries of these scopes.
    #[must_use]
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Only entries with these activities.
    #[must_use]
    pub fn activities<I: IntoIterator<Item = S>, S: Into<String>>(mut self, activities: I) -> Self {
        self.activities
            .extend(activities.into_iter().map(Into::into));
        self
    }

    /// Only entries for which `condition` holds (with several, all of them).
    #[must_use]
    pub fn when(mut self, condition: EntryCondition) -> Self {
        self.when.push(condition);
        self
    }

    /// Only impersonated entries.
    #[must_use]
    pub fn when_impersonated(self) -> Self {
        self.when(EntryCondition::WasImpersonated(true))
    }

    /// Staff do not see them either: auditors only.
    #[must_use]
    pub fn hidden_from_staff(mut self) -> Self {
        self.staff_exempt = false;
        self
    }

    /// The entry's user sees it (their own logins, say).
    #[must_use]
    pub fn visible_to_actor(mut self) -> Self {
        self.actor_exempt = true;
        self
    }

    /// The user the item is (`item_id` = the reader's user id) sees it: changes to their own
    /// account.
    #[must_use]
    pub fn visible_to_subject(mut self) -> Self {
        self.subject_exempt = true;
        self
    }

    /// Whether the rule applies to `reader` at all (auditors, and staff where exempt, are
    /// never hidden anything). Per-entry exemptions (actor, subject) are for [`hides`](Self::hides).
    pub fn binds(&self, reader: &Reader) -> bool {
        !(reader.auditor || (reader.staff && self.staff_exempt))
    }

    /// Whether the rule hides `entry` from `reader`.
    pub fn hides(&self, reader: &Reader, entry: &ActivityEntry) -> bool {
        let listed =
            |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
        let me = |value: Option<&str>| reader.user.is_some() && reader.user.as_deref() == value;
        self.binds(reader)
            && listed(&self.scopes, &entry.scope)
            && listed(&self.activities, &entry.activity)
            && self.when.iter().all(|c| c.holds(entry))
            && !(self.actor_exempt && me(entry.user_id.as_deref()))
            && !(self.subject_exempt && me(entry.item_id.as_deref()))
    }
}

/// The application's plans: how far back a tenant may read (`None`: no limit).
pub type LookbackFn = dyn Fn(&Tenant) -> Option<Duration> + Send + Sync;

/// Visibility rules plus a per-tenant lookback window. The default hides nothing.
#[derive(Clone, Default)]
pub struct ReadPolicy {
    rules: Vec<VisibilityRule>,
    lookback: Option<Arc<LookbackFn>>,
}

impl fmt::Debug for ReadPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadPolicy")
            .field("rules", &self.rules)
            .field("lookback", &self.lookback.as_ref().map(|_| "<callback>"))
            .finish()
    }
}

impl ReadPolicy {
    /// A policy that hides nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a visibility rule (an entry is hidden if any rule hides it).
    #[must_use]
    pub fn hide(mut self, rule: VisibilityRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// How far back each tenant may read, from the application's plans. Called once per read
    /// (and once per entry where entries arrive one by one): keep it cheap, e.g. a cached
    /// plan. Applies to every reader but auditors, staff included.
    #[must_use]
    pub fn with_lookback(
        mut self,
        window: impl Fn(&Tenant) -> Option<Duration> + Send + Sync + 'static,
    ) -> Self {
        self.lookback = Some(Arc::new(window));
        self
    }

    /// The rules.
    pub fn rules(&self) -> &[VisibilityRule] {
        &self.rules
    }

    /// Whether it restricts anything (with no rule and no lookback, every reader reads all).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.lookback.is_none()
    }

    /// The oldest `created_at` `reader` may read at `now`, reading `tenant`'s log when the
    /// reader names no tenant of their own; `None`: no limit. A non-auditor reading across
    /// tenants with no tenant of their own, under a lookback, is refused (whose plan would
    /// apply?).
    pub fn oldest_visible(
        &self,
        reader: &Reader,
        tenant: Option<&Tenant>,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, ActivityError> {
        let Some(lookback) = &self.lookback else {
            return Ok(None);
        };
        if reader.auditor {
            return Ok(None);
        }
        let Some(tenant) = reader.tenant.as_ref().or(tenant) else {
            return Err(ActivityError::InvalidQuery(
                "the read policy has a lookback window: the reader must name its tenant \
                 (Reader::in_organization / in_team) or the query one"
                    .into(),
            ));
        };
        Ok(lookback(tenant).map(|window| now - window))
    }

    /// Whether `reader` may see `entry` at `now`: the one-entry form of the condition every
    /// SQL read applies (the notifier, stream alerts and the in-memory store use it). An entry
    /// filed under no tenant, read by a reader naming none, under a lookback, is not visible.
    pub fn allows(&self, reader: &Reader, entry: &ActivityEntry, now: DateTime<Utc>) -> bool {
        if reader.auditor {
            return true;
        }
        if self.rules.iter().any(|rule| rule.hides(reader, entry)) {
            return false;
        }
        match self.oldest_visible(reader, Tenant::of(entry).as_ref(), now) {
            Ok(Some(oldest)) => entry.created_at >= oldest,
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Refuse a read without a reader once a policy restricts anything.
    pub fn check_reader(&self, reader: Option<&Reader>) -> Result<(), ActivityError> {
        if reader.is_none() && !self.is_empty() {
            return Err(ActivityError::InvalidQuery(
                "a read policy is configured: name the reader (ActivityQuery::reader), or \
                 Reader::auditor() for an unrestricted read"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ActivityContext, Actor};

    fn entry(scope: &str, activity: &str, user: &str, item: &str) -> ActivityEntry {
        let mut e = ActivityEntry::new(scope, activity)
            .with_context(&ActivityContext::for_user(Actor::new(user)))
            .with_item_id(item);
        e.team_id = Some("7".into());
        e
    }

    #[test]
    fn exemptions_follow_the_rule() {
        let accounts = VisibilityRule::new("accounts")
            .scopes(["User"])
            .visible_to_subject();
        let own = VisibilityRule::new("own")
            .visible_to_actor()
            .hidden_from_staff();
        let change = entry("User", "updated", "admin", "8");
        let member = Reader::member("9");
        assert!(accounts.hides(&member, &change));
        assert!(
            !accounts.hides(&Reader::member("8"), &change),
            "the subject"
        );
        assert!(!accounts.hides(&Reader::staff("s"), &change));
        assert!(!accounts.hides(&member, &entry("Flag", "updated", "a", "8")));
        assert!(own.hides(&Reader::staff("s"), &change), "hidden from staff");
        assert!(!own.hides(&Reader::member("admin"), &change), "the actor");
        assert!(!own.hides(&Reader::auditor(), &change));
        // A reader without a user id is nobody's subject or actor.
        let mut anonymous = Reader::member("x");
        anonymous.user = None;
        let mut system = change.clone();
        system.user_id = None;
        assert!(own.hides(&anonymous, &system));
    }

    #[test]
    fn lookback_is_the_readers_tenant_then_the_entrys() {
        let policy = ReadPolicy::new().with_lookback(|t| match t {
            Tenant::Team(id) if id == "7" => Some(Duration::days(30)),
            _ => None,
        });
        let mut old = entry("Flag", "updated", "a", "1");
        let now = old.created_at;
        old.created_at = now - Duration::days(31);
        assert!(!policy.allows(&Reader::member("b"), &old, now));
        assert!(!policy.allows(&Reader::staff("b"), &old, now), "staff too");
        assert!(policy.allows(&Reader::member("b").in_team("8"), &old, now));
        assert!(policy.allows(&Reader::auditor(), &old, now));
        old.created_at = now - Duration::days(29);
        assert!(policy.allows(&Reader::member("b"), &old, now));
        assert!(policy.check_reader(None).is_err());
        assert!(ReadPolicy::new().check_reader(None).is_ok());
    }
}
