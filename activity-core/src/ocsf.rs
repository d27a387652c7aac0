//! Entries as OCSF events, for security tools that read the Open Cybersecurity Schema
//! Framework (SIEMs, data lakes): each entry is one *API Activity* event (class 6003, category
//! 6 "Application Activity"), a create, update or delete of an application's item by an actor.
//!
//! The mapping (OCSF [`VERSION`]):
//!
//! | entry | OCSF |
//! |---|---|
//! | `activity` `created` / `updated` / `deleted`, any other verb | `activity_id` 1 Create / 3 Update / 4 Delete, 99 Other (`activity_name` the verb); `type_uid` = 600300 + `activity_id` |
//! | `id` | `metadata.uid` |
//! | `correlation_id` | `metadata.correlation_uid` |
//! | `created_at` | `time` (ms since the epoch), `metadata.original_time` (RFC 3339) |
//! | `trace_id` | `trace.uid`, and `"trace"` in `metadata.profiles` |
//! | `user_id`, `user_name` | `actor.user.uid`, `actor.user.name` (`type_id` 1 User) |
//! | system entry | `actor.user` with `type_id` 3 System |
//! | `client` | `actor.app_name` |
//! | `activity`, `request_id` | `api.operation`, `api.request.uid` |
//! | `ip_address` | `src_endpoint.ip` |
//! | `user_agent` | `http_request.user_agent` |
//! | `scope`, `item_id`, `detail.name`, `detail` | `resources[0].type`, `.uid`, `.name`, `.data` |
//! | `span_id`, tenant, impersonation, `short_id` | `unmapped` (OCSF's span object requires start and end times, which an entry does not have) |
//!
//! It maps a [`FeedEntry`], so what the reader may not see (request origin, impersonation;
//! [`Reveal`](crate::feed::Reveal)) is absent from the event as from any other view.

use serde_json::{Map, Value, json};

use crate::feed::FeedEntry;

/// The OCSF schema version the events follow.
pub const VERSION: &str = "1.7.0";

/// OCSF class *API Activity*.
pub const API_ACTIVITY_CLASS: u32 = 6003;

/// `entry` as one OCSF API Activity event.
///
/// ```
/// use activity_core::feed::{FeedEntry, Reveal};
/// use activity_core::{ActivityContext, ActivityEntry, Actor};
/// let ctx = ActivityContext::for_user(Actor::new("7").with_name("alice"))
///     .with_correlation_id("txn-1");
/// let mut entry = ActivityEntry::new("FeatureFlag", "updated")
///     .with_item_id("42")
///     .with_context(&ctx);
/// entry.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
/// let event = activity_core::ocsf::api_activity(&FeedEntry::new(&entry, Reveal::everything()));
/// assert_eq!(event["class_uid"], 6003);
/// assert_eq!(event["type_uid"], 600303);
/// assert_eq!(event["actor"]["user"]["uid"], "7");
/// assert_eq!(event["metadata"]["correlation_uid"], "txn-1");
/// assert_eq!(event["trace"]["uid"], "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(event["resources"][0]["uid"], "42");
/// ```
pub fn api_activity(entry: &FeedEntry) -> Value {
    let (activity_id, activity_name) = match entry.activity.as_str() {
        "created" => (1, "Create"),
        "updated" => (3, "Update"),
        "deleted" => (4, "Delete"),
        _ => (99, entry.activity.as_str()),
    };
    let mut metadata = Map::new();
    metadata.insert("version".into(), json!(VERSION));
    metadata.insert("uid".into(), json!(entry.id.to_string()));
    metadata.insert(
        "product".into(),
        json!({"name": "activity-seaorm", "vendor_name": "activity-seaorm",
               "version": env!("CARGO_PKG_VERSION")}),
    );
    metadata.insert("log_name".into(), json!("activity_log"));
    metadata.insert(
        "original_time".into(),
        json!(
            entry
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        ),
    );
    insert(&mut metadata, "correlation_uid", &entry.correlation_id);

    let mut actor = Map::new();
    let mut user = Map::new();
    if entry.is_system {
        user.insert("type_id".into(), json!(3));
        user.insert("type".into(), json!("System"));
    } else {
        insert(&mut user, "uid", &entry.user_id);
        insert(&mut user, "name", &entry.user_name);
        user.insert("type_id".into(), json!(1));
        user.insert("type".into(), json!("User"));
    }
    actor.insert("user".into(), Value::Object(user));
    insert(&mut actor, "app_name", &entry.client);

    let mut api = Map::new();
    api.insert("operation".into(), json!(entry.activity));
    if let Some(request) = &entry.request_id {
        api.insert("request".into(), json!({ "uid": request }));
    }

    let mut resource = Map::new();
    resource.insert("type".into(), json!(entry.scope));
    insert(&mut resource, "uid", &entry.item_id);
    insert(&mut resource, "name", &entry.detail.name);
    resource.insert(
        "data".into(),
        serde_json::to_value(&entry.detail).unwrap_or(Value::Null),
    );

    let mut unmapped = Map::new();
    insert(&mut unmapped, "organization_id", &entry.organization_id);
    insert(&mut unmapped, "team_id", &entry.team_id);
    insert(&mut unmapped, "short_id", &entry.detail.short_id);
    insert(&mut unmapped, "impersonated_by", &entry.impersonated_by);
    if let Some(was) = entry.was_impersonated {
        unmapped.insert("was_impersonated".into(), json!(was));
    }
    insert(&mut unmapped, "span_id", &entry.span_id);

    let mut event = Map::new();
    event.insert("class_uid".into(), json!(API_ACTIVITY_CLASS));
    event.insert("class_name".into(), json!("API Activity"));
    event.insert("category_uid".into(), json!(6));
    event.insert("category_name".into(), json!("Application Activity"));
    event.insert("activity_id".into(), json!(activity_id));
    event.insert("activity_name".into(), json!(activity_name));
    event.insert(
        "type_uid".into(),
        json!(API_ACTIVITY_CLASS * 100 + activity_id),
    );
    event.insert(
        "type_name".into(),
        json!(format!("API Activity: {activity_name}")),
    );
    event.insert("severity_id".into(), json!(1));
    event.insert("severity".into(), json!("Informational"));
    event.insert("status_id".into(), json!(1));
    event.insert("status".into(), json!("Success"));
    event.insert("time".into(), json!(entry.created_at.timestamp_millis()));
    if let Some(trace) = &entry.trace_id {
        metadata.insert("profiles".into(), json!(["trace"]));
        event.insert("trace".into(), json!({ "uid": trace }));
    }
    event.insert("metadata".into(), Value::Object(metadata));
    event.insert("actor".into(), Value::Object(actor));
    event.insert("api".into(), Value::Object(api));
    let mut src = Map::new();
    insert(&mut src, "ip", &entry.ip_address);
    event.insert("src_endpoint".into(), Value::Object(src));
    if let Some(agent) = &entry.user_agent {
        event.insert("http_request".into(), json!({ "user_agent": agent }));
    }
    event.insert("resources".into(), json!([Value::Object(resource)]));
    if !unmapped.is_empty() {
        event.insert("unmapped".into(), Value::Object(unmapped));
    }
    Value::Object(event)
}

fn insert(map: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        map.insert(key.into(), json!(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::Reveal;
    use crate::{ActivityContext, ActivityEntry, Actor};

    #[test]
    fn a_member_sees_no_origin_and_verbs_map_to_activity_ids() {
        let ctx = ActivityContext::impersonating(Actor::new("7"), Actor::new("agent-1"))
            .with_ip("203.0.113.9")
            .with_user_agent("Firefox");
        let mut entry = ActivityEntry::new("FeatureFlag", "deleted").with_context(&ctx);
        entry.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        entry.span_id = Some("00f067aa0ba902b7".into());
        let member = api_activity(&FeedEntry::new(&entry, Reveal::nothing()));
        assert_eq!(member["activity_id"], 4);
        assert_eq!(member["type_uid"], 600304);
        let text = member.to_string();
        for hidden in ["203.0.113.9", "Firefox", "agent-1", "4bf92f35", "00f067aa"] {
            assert!(!text.contains(hidden), "{hidden} in {text}");
        }
        let auditor = api_activity(&FeedEntry::new(&entry, Reveal::everything()));
        assert_eq!(auditor["src_endpoint"]["ip"], "203.0.113.9");
        assert_eq!(auditor["http_request"]["user_agent"], "Firefox");
        assert_eq!(auditor["unmapped"]["impersonated_by"], "agent-1");
        assert_eq!(auditor["unmapped"]["span_id"], "00f067aa0ba902b7");
        assert_eq!(auditor["metadata"]["profiles"], json!(["trace"]));
        let custom = ActivityEntry::new("Session", "logged_in");
        let system = api_activity(&FeedEntry::new(&custom, Reveal::everything()));
        assert_eq!(system["activity_id"], 99);
        assert_eq!(system["activity_name"], "logged_in");
        assert_eq!(system["actor"]["user"]["type_id"], 3);
        assert!(system.get("trace").is_none());
    }
}
