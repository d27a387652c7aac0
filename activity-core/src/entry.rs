//! The activity entry and the exact JSON shape of its `detail` column.
//!
//! The shape is a contract with everything that reads the log back (UIs, exports, other services),
//! so every key is always present, with explicit `null`s, in the order of [`Detail`]'s fields.
//! The log stores a smaller form of it ([`Detail::stored`], [`restore_detail`]); every read
//! restores this one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub use crate::actor::{Actor, Trigger};
use crate::context::ActivityContext;

/// The verb of one field-level change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChangeAction {
    /// The field went from empty to a value.
    Created,
    /// The field went from one value to another.
    Changed,
    /// The field went from a value to empty.
    Deleted,
    /// Two items were merged.
    Merged,
    /// One item was split.
    Split,
    /// The item was exported.
    Exported,
    /// Access was revoked.
    Revoked,
    /// A user logged in.
    LoggedIn,
    /// A user logged out.
    LoggedOut,
    /// The item was copied.
    Copied,
}

impl ChangeAction {
    /// The snake_case name stored in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Changed => "changed",
            Self::Deleted => "deleted",
            Self::Merged => "merged",
            Self::Split => "split",
            Self::Exported => "exported",
            Self::Revoked => "revoked",
            Self::LoggedIn => "logged_in",
            Self::LoggedOut => "logged_out",
            Self::Copied => "copied",
        }
    }
}

/// One field-level change: `{"type","action","field","before","after"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The scope of the changed item (e.g. `FeatureFlag`).
    #[serde(rename = "type")]
    pub kind: String,
    /// What happened to the field.
    pub action: ChangeAction,
    /// Display name of the field; `null` for item-level changes.
    pub field: Option<String>,
    /// Encoded value before (`null` when empty or not applicable).
    pub before: Value,
    /// Encoded value after (`null` when empty or not applicable).
    pub after: Value,
}

impl Change {
    /// A change of `field` in `kind` from `before` to `after`.
    pub fn new(
        kind: impl Into<String>,
        action: ChangeAction,
        field: Option<&str>,
        before: Value,
        after: Value,
    ) -> Self {
        Self {
            kind: kind.into(),
            action,
            field: field.map(str::to_owned),
            before,
            after,
        }
    }
}

/// The key of an entry's tenant: `o:<organization>`, else `t:<team>`, else empty (entries of
/// no tenant). Organization `5` and team `5` are two tenants. Sealed blocks are per tenant
/// key, and the stream's subjects and notification routes are built from it.
pub fn tenant_key(organization_id: Option<&str>, team_id: Option<&str>) -> String {
    match (organization_id, team_id) {
        (Some(org), _) => format!("o:{org}"),
        (None, Some(team)) => format!("t:{team}"),
        (None, None) => String::new(),
    }
}

/// The `detail` of an entry as the API gives it: all six keys, with explicit nulls. (The log
/// stores it without the nulls and repeated values: [`Detail::stored`].)
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Detail {
    /// Human name of the item at the time of the activity.
    pub name: Option<String>,
    /// Short public identifier of the item.
    pub short_id: Option<String>,
    /// Sub-type of the item, if the scope has one.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Field-level changes, in field declaration order.
    pub changes: Vec<Change>,
    /// What started the activity, for jobs.
    pub trigger: Option<Trigger>,
    /// Free-form extra context.
    pub context: Option<Value>,
}

/// `detail` as the log stores it (see [`Detail::stored`]): the API shape less what reading it
/// back restores, so a small entry's row carries its values rather than its keys.
///
/// Left out: `name`, `short_id`, `type`, `trigger` and `context` when null, `changes` when
/// empty; in each change `field`, `before` and `after` when null, and `type` when it is the
/// entry's scope (it is, for every change the derive writes about its own model). Nothing
/// else: `action` stays, a change about another scope keeps its `type`, and values inside
/// `before`, `after`, `trigger` and `context` are written as they are, nulls included.
/// [`restore_detail`] puts back exactly what was left out.
#[derive(Clone, Copy, Debug)]
pub struct CompactDetail<'a> {
    detail: &'a Detail,
    scope: &'a str,
}

impl Detail {
    /// This detail as the log stores it for an entry of `scope`: serialize it (to text or a
    /// value) where a row is written.
    ///
    /// ```
    /// use activity_core::{Change, ChangeAction, Detail};
    /// use serde_json::json;
    /// let detail = Detail {
    ///     name: Some("beta".into()),
    ///     changes: vec![Change::new("Flag", ChangeAction::Changed, Some("on"), json!(false), json!(true))],
    ///     ..Detail::default()
    /// };
    /// let stored = serde_json::to_string(&detail.stored("Flag")).unwrap();
    /// assert_eq!(stored, r#"{"name":"beta","changes":[{"action":"changed","field":"on","before":false,"after":true}]}"#);
    /// let back = Detail::from_stored(serde_json::from_str(&stored).unwrap(), "Flag").unwrap();
    /// assert_eq!(back, detail);
    /// ```
    pub fn stored<'a>(&'a self, scope: &'a str) -> CompactDetail<'a> {
        CompactDetail {
            detail: self,
            scope,
        }
    }

    /// The detail of an entry of `scope` from its stored JSON, in either form: what
    /// [`Detail::stored`] wrote, or the full API shape that every version writes readably.
    pub fn from_stored(mut stored: Value, scope: &str) -> Result<Detail, serde_json::Error> {
        restore_detail(&mut stored, scope);
        serde_json::from_value(stored)
    }
}

/// The keys of `detail` the stored form leaves out when null (`changes` aside: when empty).
pub(crate) const NULLABLE_KEYS: [&str; 5] = ["name", "short_id", "type", "trigger", "context"];

/// The keys of a change the stored form leaves out when null (`type` aside: when the scope).
pub(crate) const NULLABLE_CHANGE_KEYS: [&str; 3] = ["field", "before", "after"];

/// Put back into a stored `detail` (of an entry of `scope`) every key [`Detail::stored`]
/// leaves out, with the value it stands for: the API shape. A key that is present stays as it
/// is (so the full shape, and anything that is not an object, comes back unchanged).
pub fn restore_detail(stored: &mut Value, scope: &str) {
    let Value::Object(map) = stored else {
        return;
    };
    for key in NULLABLE_KEYS {
        if !map.contains_key(key) {
            map.insert(key.to_owned(), Value::Null);
        }
    }
    let changes = map
        .entry("changes")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(changes) = changes {
        for change in changes.iter_mut().filter_map(Value::as_object_mut) {
            if !change.contains_key("type") {
                change.insert("type".to_owned(), Value::String(scope.to_owned()));
            }
            for key in NULLABLE_CHANGE_KEYS {
                if !change.contains_key(key) {
                    change.insert(key.to_owned(), Value::Null);
                }
            }
        }
    }
}

/// Take out of a stored `detail` (of an entry of `scope`) what the compact form leaves out:
/// the null keys and a change's `type` where it is `scope`. Nothing else changes, so
/// [`restore_detail`] gives back the same detail as before, and the full form the library
/// wrote becomes what [`Detail::stored`] writes for it (how `schema::compact_details` converts
/// old rows).
pub fn compact_detail(stored: &mut Value, scope: &str) {
    let Value::Object(map) = stored else {
        return;
    };
    for key in NULLABLE_KEYS {
        if map.get(key).is_some_and(Value::is_null) {
            map.remove(key);
        }
    }
    match map.get_mut("changes") {
        Some(Value::Array(changes)) if changes.is_empty() => {
            map.remove("changes");
        }
        Some(Value::Array(changes)) => {
            for change in changes.iter_mut().filter_map(Value::as_object_mut) {
                if change.get("type").and_then(Value::as_str) == Some(scope) {
                    change.remove("type");
                }
                for key in NULLABLE_CHANGE_KEYS {
                    if change.get(key).is_some_and(Value::is_null) {
                        change.remove(key);
                    }
                }
            }
        }
        _ => {}
    }
}

impl Serialize for CompactDetail<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let d = self.detail;
        let mut map = s.serialize_map(None)?;
        if let Some(name) = &d.name {
            map.serialize_entry("name", name)?;
        }
        if let Some(short_id) = &d.short_id {
            map.serialize_entry("short_id", short_id)?;
        }
        if let Some(kind) = &d.kind {
            map.serialize_entry("type", kind)?;
        }
        if !d.changes.is_empty() {
            map.serialize_entry(
                "changes",
                &StoredChanges {
                    changes: &d.changes,
                    scope: self.scope,
                },
            )?;
        }
        if let Some(trigger) = &d.trigger {
            map.serialize_entry("trigger", trigger)?;
        }
        // `Some(Value::Null)` reads back as `None` in either form.
        if let Some(context) = d.context.as_ref().filter(|c| !c.is_null()) {
            map.serialize_entry("context", context)?;
        }
        map.end()
    }
}

struct StoredChanges<'a> {
    changes: &'a [Change],
    scope: &'a str,
}

impl Serialize for StoredChanges<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.changes.iter().map(|change| StoredChange {
            change,
            scope: self.scope,
        }))
    }
}

struct StoredChange<'a> {
    change: &'a Change,
    scope: &'a str,
}

impl Serialize for StoredChange<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let c = self.change;
        let mut map = s.serialize_map(None)?;
        if c.kind != self.scope {
            map.serialize_entry("type", &c.kind)?;
        }
        map.serialize_entry("action", &c.action)?;
        if let Some(field) = &c.field {
            map.serialize_entry("field", field)?;
        }
        if !c.before.is_null() {
            map.serialize_entry("before", &c.before)?;
        }
        if !c.after.is_null() {
            map.serialize_entry("after", &c.after)?;
        }
        map.end()
    }
}

/// One row of `activity_log`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ActivityEntry {
    /// Time-sortable UUID v7.
    pub id: Uuid,
    /// When the activity happened (from the configured clock).
    pub created_at: DateTime<Utc>,
    /// Tenant: organization.
    pub organization_id: Option<String>,
    /// Tenant: team or project.
    pub team_id: Option<String>,
    /// The effective actor's id; `None` for system activity.
    pub user_id: Option<String>,
    /// The effective actor's display name.
    pub user_name: Option<String>,
    /// The real actor's id when impersonating.
    pub impersonated_by: Option<String>,
    /// Whether the effective actor was impersonated.
    pub was_impersonated: bool,
    /// Whether no user acted (jobs, migrations...).
    pub is_system: bool,
    /// Kind of item, e.g. `FeatureFlag`.
    pub scope: String,
    /// Primary key as text; composite keys joined with `,`.
    pub item_id: Option<String>,
    /// `created`, `updated`, `deleted` or a custom verb.
    pub activity: String,
    /// The JSON detail.
    pub detail: Detail,
    /// Request identifier (e.g. from `x-request-id`).
    pub request_id: Option<String>,
    /// Groups every entry written by one transaction.
    pub correlation_id: Option<String>,
    /// Client IP address.
    pub ip_address: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Client application name.
    pub client: Option<String>,
    /// W3C trace id (32 lowercase hex digits) of the span that wrote the entry: filled by the
    /// write path under the `otel` feature when the current span has a valid OpenTelemetry
    /// context. Diagnostics, not evidence: never part of the audit key or the sealed bytes, and
    /// absent from the JSON when unset (so entries without one serialize as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// W3C span id (16 lowercase hex digits) of that span; set together with
    /// [`trace_id`](Self::trace_id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// Write an `updated` entry even when it has no changes (manual entries).
    #[serde(skip)]
    pub force: bool,
    /// The tenant columns are the item's own: the context fills neither, even where one is
    /// empty. Set by the write path for models whose derive names `team` or `organization`
    /// (a support agent of one organization editing another's item never files the entry
    /// under their own); an entry whose tenant columns are already set is treated alike.
    #[serde(skip)]
    pub own_tenant: bool,
}

/// The verbs the hooks write.
pub mod activity {
    /// An item was inserted.
    pub const CREATED: &str = "created";
    /// An item was updated.
    pub const UPDATED: &str = "updated";
    /// An item was deleted.
    pub const DELETED: &str = "deleted";
}

impl ActivityEntry {
    /// A system entry for `scope`/`activity` stamped now; apply a context with
    /// [`ActivityEntry::with_context`].
    pub fn new(scope: impl Into<String>, activity: impl Into<String>) -> Self {
        Self {
            id: Uuid::now_v7(),
            created_at: crate::clock::now(),
            organization_id: None,
            team_id: None,
            user_id: None,
            user_name: None,
            impersonated_by: None,
            was_impersonated: false,
            is_system: true,
            scope: scope.into(),
            item_id: None,
            activity: activity.into(),
            detail: Detail::default(),
            request_id: None,
            correlation_id: None,
            ip_address: None,
            user_agent: None,
            client: None,
            trace_id: None,
            span_id: None,
            force: false,
            own_tenant: false,
        }
    }

    /// Set the item id.
    pub fn with_item_id(mut self, item_id: impl Into<String>) -> Self {
        self.item_id = Some(item_id.into());
        self
    }

    /// Set the item's display name (`detail.name`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.detail.name = Some(name.into());
        self
    }

    /// Replace the changes.
    pub fn with_changes(mut self, changes: Vec<Change>) -> Self {
        self.detail.changes = changes;
        self
    }

    /// Replace the whole detail.
    pub fn with_detail(mut self, detail: Detail) -> Self {
        self.detail = detail;
        self
    }

    /// Keep an `updated` entry even if it has no changes.
    pub fn forced(mut self) -> Self {
        self.force = true;
        self
    }

    /// Fill actor, tenant and request fields from `ctx`. Tenant ids already set (from the model)
    /// win over the context's.
    pub fn with_context(mut self, ctx: &ActivityContext) -> Self {
        self.apply_context(ctx);
        self
    }

    /// In-place form of [`ActivityEntry::with_context`].
    ///
    /// The context fills only what the entry does not already say: a caller that names the
    /// actor (`user_id`) keeps that actor whole — name, impersonator and all — and any request
    /// field it set (IP address, user agent, request id, client, correlation id, trigger) is
    /// kept. So an auth service logging a failed login for "bob" from the attacker's address
    /// records bob and that address, whatever context it runs in. The tenant comes from the
    /// context only when the entry names neither tenant column (and is not
    /// [`own_tenant`](Self::own_tenant)).
    pub fn apply_context(&mut self, ctx: &ActivityContext) {
        if self.user_id.is_none() && self.impersonated_by.is_none() {
            match ctx.user() {
                Some(user) => {
                    self.user_id = Some(user.id.clone());
                    self.user_name = user.name.clone();
                    self.is_system = false;
                }
                None => {
                    self.user_name = None;
                    self.is_system = true;
                }
            }
            self.impersonated_by = ctx.impersonated_by().map(|a| a.id.clone());
        } else {
            // The caller named the actor: it is a user's entry, never a system one.
            self.is_system = self.user_id.is_none();
        }
        self.was_impersonated = self.impersonated_by.is_some();
        // The item's tenant, when it has one, is the entry's whole tenant: a context never
        // completes it with the actor's organization or team.
        if !self.own_tenant && self.organization_id.is_none() && self.team_id.is_none() {
            fill(&mut self.organization_id, ctx.organization_id());
            fill(&mut self.team_id, ctx.team_id());
        }
        fill(&mut self.request_id, ctx.request_id());
        fill(&mut self.correlation_id, ctx.correlation_id());
        fill(&mut self.ip_address, ctx.ip());
        fill(&mut self.user_agent, ctx.user_agent());
        fill(&mut self.client, ctx.client());
        if self.detail.trigger.is_none() {
            self.detail.trigger = ctx.trigger().cloned();
        }
    }

    /// Whether the write path keeps this entry: an `updated` entry without changes is dropped
    /// unless forced, and so is an impersonated entry without a user.
    pub fn should_write(&self) -> bool {
        if self.was_impersonated && self.user_id.is_none() {
            return false;
        }
        self.force || self.activity != activity::UPDATED || !self.detail.changes.is_empty()
    }
}

/// `slot`, or `value` if the slot is empty.
fn fill(slot: &mut Option<String>, value: Option<&str>) {
    if slot.is_none() {
        *slot = value.map(str::to_owned);
    }
}
