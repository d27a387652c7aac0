//! Human sentences for entries: "alice changed enabled from false to true on FeatureFlag
//! beta-checkout". Masked values are never shown, only that they changed.

use std::fmt::Write as _;

use serde_json::Value;

use crate::diff::{CHANGED, MASKED};
use crate::entry::{ActivityEntry, Change, ChangeAction, activity};

pub use crate::config::Describer;

/// A readable sentence for `entry`.
///
/// ```
/// use activity_core::{describe, ActivityContext, ActivityEntry, Actor, Change, ChangeAction};
/// use serde_json::json;
/// let entry = ActivityEntry::new("FeatureFlag", "updated")
///     .with_name("beta-checkout")
///     .with_changes(vec![Change::new("FeatureFlag", ChangeAction::Changed, Some("enabled"), json!(false), json!(true))])
///     .with_context(&ActivityContext::for_user(Actor::new("1").with_name("alice")));
/// assert_eq!(describe(&entry), "alice changed enabled from false to true on FeatureFlag beta-checkout");
/// let gone = ActivityEntry::new("Dashboard", "deleted").with_name("Sales");
/// assert_eq!(describe(&gone), "system deleted Dashboard Sales");
/// ```
pub fn describe(entry: &ActivityEntry) -> String {
    let custom = crate::ActivityConfig::with_current(|c| c.describer(&entry.scope));
    if let Some(text) = custom.and_then(|d| d(entry)) {
        return text;
    }
    let actor = actor(entry);
    let target = target(entry);
    let changes = &entry.detail.changes;
    if entry.activity == activity::UPDATED && !changes.is_empty() {
        let parts: Vec<String> = changes.iter().map(change_phrase).collect();
        return format!("{actor} {} on {target}", join_and(&parts));
    }
    format!("{actor} {} {target}", entry.activity)
}

fn actor(entry: &ActivityEntry) -> String {
    let user = entry.user_name.as_deref().or(entry.user_id.as_deref());
    match (user, entry.impersonated_by.as_deref()) {
        (Some(user), Some(by)) => format!("{user} (impersonated by {by})"),
        (Some(user), None) => user.to_owned(),
        (None, _) => "system".to_owned(),
    }
}

fn target(entry: &ActivityEntry) -> String {
    let mut out = entry.scope.clone();
    if let Some(name) = entry.detail.name.as_deref().or(entry.item_id.as_deref()) {
        let _ = write!(out, " {name}");
    }
    out
}

fn change_phrase(change: &Change) -> String {
    let field = change.field.as_deref().unwrap_or("it");
    if is_masked(&change.before) || is_masked(&change.after) {
        return format!("changed {field}");
    }
    match change.action {
        ChangeAction::Created => format!("set {field} to {}", value(&change.after)),
        ChangeAction::Deleted => format!("cleared {field} (was {})", value(&change.before)),
        ChangeAction::Changed => format!(
            "changed {field} from {} to {}",
            value(&change.before),
            value(&change.after)
        ),
        other => format!("{} {field}", other.as_str().replace('_', " ")),
    }
}

fn is_masked(v: &Value) -> bool {
    match v {
        Value::String(s) => s == MASKED,
        Value::Object(map) => map
            .values()
            .any(|v| matches!(v, Value::String(s) if s == MASKED || s == CHANGED)),
        _ => false,
    }
}

fn value(v: &Value) -> String {
    const MAX: usize = 80;
    let text = match v {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    };
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        text
    }
}

fn join_and(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
