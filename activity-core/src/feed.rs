//! What people read: [`FeedEntry`], an entry without the fields only auditors may see.
//!
//! An entry records where a request came from (IP address, user agent, client, request id)
//! and who really acted when a support agent impersonated a user. That is what an audit needs
//! and what a teammate reading the team's feed, or a watcher receiving a notification, must not
//! get: their colleagues' addresses and browsers, or which agent acted as whom. Feeds and
//! notifications hand people a `FeedEntry`; the full [`ActivityEntry`] stays for auditors.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::entry::{ActivityEntry, Detail};

/// What a reader may see beyond the activity itself. The default reveals nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reveal {
    /// The request's origin: IP address, user agent, client, request id, and the trace and
    /// span ids of the request's trace.
    pub request: bool,
    /// Impersonation: whether the user was impersonated, and by whom.
    pub impersonation: bool,
}

impl Reveal {
    /// Nothing beyond the activity: what a team member sees.
    pub fn nothing() -> Self {
        Reveal::default()
    }

    /// Everything: what an auditor sees.
    pub fn everything() -> Self {
        Reveal {
            request: true,
            impersonation: true,
        }
    }
}

/// An entry as a person reads it: who (the effective user), what, to which item, when, and the
/// field-level changes (masked as stored). The request's origin and the impersonator appear
/// only when the [`Reveal`] allows; absent fields are left out of the JSON, not `null`.
///
/// ```
/// use activity_core::feed::{FeedEntry, Reveal};
/// use activity_core::{ActivityContext, ActivityEntry, Actor};
/// let ctx = ActivityContext::impersonating(Actor::new("7"), Actor::new("agent-1"))
///     .with_ip("203.0.113.9")
///     .with_user_agent("Firefox");
/// let entry = ActivityEntry::new("FeatureFlag", "updated").with_context(&ctx);
/// let member = serde_json::to_value(FeedEntry::new(&entry, Reveal::nothing())).unwrap();
/// assert_eq!(member["user_id"], "7");
/// for hidden in ["ip_address", "user_agent", "impersonated_by", "was_impersonated"] {
///     assert!(member.get(hidden).is_none(), "{hidden}");
/// }
/// let auditor = FeedEntry::new(&entry, Reveal::everything());
/// assert_eq!(auditor.impersonated_by.as_deref(), Some("agent-1"));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FeedEntry {
    /// The entry's id.
    pub id: Uuid,
    /// When it happened.
    pub created_at: DateTime<Utc>,
    /// Tenant: organization.
    pub organization_id: Option<String>,
    /// Tenant: team.
    pub team_id: Option<String>,
    /// The effective user (`None`: system).
    pub user_id: Option<String>,
    /// Their display name.
    pub user_name: Option<String>,
    /// Whether no user acted.
    pub is_system: bool,
    /// Kind of item.
    pub scope: String,
    /// The item.
    pub item_id: Option<String>,
    /// What happened.
    pub activity: String,
    /// Name, changes, trigger, context (as stored: masked fields stay masked).
    pub detail: Detail,
    /// Groups the entries of one transaction.
    pub correlation_id: Option<String>,
    /// With [`Reveal::impersonation`]: whether the user was impersonated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub was_impersonated: Option<bool>,
    /// With [`Reveal::impersonation`]: who impersonated the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonated_by: Option<String>,
    /// With [`Reveal::request`]: the request id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// With [`Reveal::request`]: the client IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// With [`Reveal::request`]: the user agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// With [`Reveal::request`]: the client application.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// With [`Reveal::request`]: the trace id of the span that wrote the entry (`otel`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// With [`Reveal::request`]: that span's id (`otel`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
}

impl FeedEntry {
    /// `entry` as a reader allowed `reveal` sees it.
    pub fn new(entry: &ActivityEntry, reveal: Reveal) -> Self {
        let request = |v: &Option<String>| if reveal.request { v.clone() } else { None };
        FeedEntry {
            id: entry.id,
            created_at: entry.created_at,
            organization_id: entry.organization_id.clone(),
            team_id: entry.team_id.clone(),
            user_id: entry.user_id.clone(),
            user_name: entry.user_name.clone(),
            is_system: entry.is_system,
            scope: entry.scope.clone(),
            item_id: entry.item_id.clone(),
            activity: entry.activity.clone(),
            detail: entry.detail.clone(),
            correlation_id: entry.correlation_id.clone(),
            was_impersonated: reveal.impersonation.then_some(entry.was_impersonated),
            impersonated_by: if reveal.impersonation {
                entry.impersonated_by.clone()
            } else {
                None
            },
            request_id: request(&entry.request_id),
            ip_address: request(&entry.ip_address),
            user_agent: request(&entry.user_agent),
            client: request(&entry.client),
            trace_id: request(&entry.trace_id),
            span_id: request(&entry.span_id),
        }
    }
}

impl From<&ActivityEntry> for FeedEntry {
    /// Nothing revealed: the safe default for anything people read.
    fn from(entry: &ActivityEntry) -> Self {
        FeedEntry::new(entry, Reveal::nothing())
    }
}
