//! The JSON shape of `detail` is a contract with every reader of the log: these tests
//! pin it literally (key order, explicit nulls, snake_case verbs) and check the entry rules.

use activity_core::entry::activity;
use activity_core::{ActivityContext, ActivityEntry, Actor, Change, ChangeAction, Detail, Trigger};
use serde_json::json;

fn round_trip<T>(value: &T, expected: &str)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let text = serde_json::to_string(value).unwrap();
    assert_eq!(text, expected);
    let back: T = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, value);
}

#[test]
fn empty_detail_has_every_key_with_explicit_nulls() {
    round_trip(
        &Detail::default(),
        r#"{"name":null,"short_id":null,"type":null,"changes":[],"trigger":null,"context":null}"#,
    );
}

#[test]
fn detail_of_the_design_example() {
    let detail = Detail {
        name: Some("beta-checkout".to_owned()),
        changes: vec![Change::new(
            "FeatureFlag",
            ChangeAction::Changed,
            Some("enabled"),
            json!(false),
            json!(true),
        )],
        ..Detail::default()
    };
    round_trip(
        &detail,
        concat!(
            r#"{"name":"beta-checkout","short_id":null,"type":null,"#,
            r#""changes":[{"type":"FeatureFlag","action":"changed","field":"enabled","before":false,"after":true}],"#,
            r#""trigger":null,"context":null}"#
        ),
    );
}

#[test]
fn detail_with_every_key_set() {
    let detail = Detail {
        name: Some("Q3 revenue".to_owned()),
        short_id: Some("aB3x".to_owned()),
        kind: Some("Insight".to_owned()),
        changes: vec![
            Change::new(
                "Dashboard",
                ChangeAction::Created,
                Some("tags"),
                json!(null),
                json!(["a"]),
            ),
            Change::new(
                "Dashboard",
                ChangeAction::Exported,
                None,
                json!(null),
                json!(null),
            ),
        ],
        trigger: Some(Trigger::new("export", "run-9").with_payload(json!({"rows": 3}))),
        context: Some(json!({"via": "api"})),
    };
    round_trip(
        &detail,
        concat!(
            r#"{"name":"Q3 revenue","short_id":"aB3x","type":"Insight","changes":["#,
            r#"{"type":"Dashboard","action":"created","field":"tags","before":null,"after":["a"]},"#,
            r#"{"type":"Dashboard","action":"exported","field":null,"before":null,"after":null}],"#,
            r#""trigger":{"job_type":"export","job_id":"run-9","payload":{"rows":3}},"#,
            r#""context":{"via":"api"}}"#
        ),
    );
}

#[test]
fn change_keys_in_order_with_explicit_nulls() {
    round_trip(
        &Change::new(
            "FeatureFlag",
            ChangeAction::Deleted,
            Some("key"),
            json!("old"),
            json!(null),
        ),
        r#"{"type":"FeatureFlag","action":"deleted","field":"key","before":"old","after":null}"#,
    );
    round_trip(
        &Change::new("Team", ChangeAction::Merged, None, json!(null), json!(null)),
        r#"{"type":"Team","action":"merged","field":null,"before":null,"after":null}"#,
    );
}

#[test]
fn every_change_action_is_snake_case() {
    let all = [
        (ChangeAction::Created, "created"),
        (ChangeAction::Changed, "changed"),
        (ChangeAction::Deleted, "deleted"),
        (ChangeAction::Merged, "merged"),
        (ChangeAction::Split, "split"),
        (ChangeAction::Exported, "exported"),
        (ChangeAction::Revoked, "revoked"),
        (ChangeAction::LoggedIn, "logged_in"),
        (ChangeAction::LoggedOut, "logged_out"),
        (ChangeAction::Copied, "copied"),
    ];
    for (action, name) in all {
        round_trip(&action, &format!("\"{name}\""));
        assert_eq!(action.as_str(), name);
    }
    assert!(serde_json::from_str::<ChangeAction>("\"LoggedIn\"").is_err());
    assert!(serde_json::from_str::<ChangeAction>("\"loggedIn\"").is_err());
}

#[test]
fn trigger_shape() {
    round_trip(
        &Trigger::new("nightly_recount", "42"),
        r#"{"job_type":"nightly_recount","job_id":"42","payload":null}"#,
    );
    round_trip(
        &Trigger::new("import", "7").with_payload(json!({"file": "a.csv", "n": [1, 2]})),
        r#"{"job_type":"import","job_id":"7","payload":{"file":"a.csv","n":[1,2]}}"#,
    );
}

#[test]
fn actor_shape() {
    round_trip(&Actor::new("u1"), r#"{"id":"u1","name":null,"email":null}"#);
    round_trip(
        &Actor::new("u2")
            .with_name("Ada")
            .with_email("ada@example.com"),
        r#"{"id":"u2","name":"Ada","email":"ada@example.com"}"#,
    );
}

fn entry() -> ActivityEntry {
    ActivityEntry::new("FeatureFlag", activity::UPDATED).with_item_id("5")
}

#[test]
fn new_entry_is_a_system_entry() {
    let e = entry();
    assert_eq!(e.scope, "FeatureFlag");
    assert_eq!(e.activity, "updated");
    assert_eq!(e.item_id.as_deref(), Some("5"));
    assert!(e.is_system);
    assert!(!e.was_impersonated);
    assert_eq!(e.user_id, None);
    assert_eq!(e.impersonated_by, None);
    assert_eq!(e.id.get_version_num(), 7);
}

#[test]
fn apply_context_for_a_user() {
    let ctx = ActivityContext::for_user(Actor::new("42").with_name("alice").with_email("a@x.io"))
        .with_organization("org-1")
        .with_team("7")
        .with_request_id("req-1")
        .with_correlation_id("corr-1")
        .with_ip("10.0.0.1")
        .with_user_agent("curl/8")
        .with_client("web")
        .with_trigger(Trigger::new("job", "1"));
    let mut e = entry();
    e.apply_context(&ctx);
    assert_eq!(e.user_id.as_deref(), Some("42"));
    assert_eq!(e.user_name.as_deref(), Some("alice"));
    assert!(!e.is_system);
    assert!(!e.was_impersonated);
    assert_eq!(e.impersonated_by, None);
    assert_eq!(e.organization_id.as_deref(), Some("org-1"));
    assert_eq!(e.team_id.as_deref(), Some("7"));
    assert_eq!(e.request_id.as_deref(), Some("req-1"));
    assert_eq!(e.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(e.ip_address.as_deref(), Some("10.0.0.1"));
    assert_eq!(e.user_agent.as_deref(), Some("curl/8"));
    assert_eq!(e.client.as_deref(), Some("web"));
    assert_eq!(e.detail.trigger, Some(Trigger::new("job", "1")));
    // The e-mail address is never written to a column.
    let text = serde_json::to_string(&e).unwrap();
    assert!(!text.contains("a@x.io"), "{text}");
}

/// An entry that names a tenant column keeps its tenant whole: the context completes neither
/// column (the item's team is not the actor's organization's).
#[test]
fn apply_context_keeps_tenant_from_the_model() {
    let ctx = ActivityContext::for_user(Actor::new("1"))
        .with_organization("ctx-org")
        .with_team("ctx-team");
    let mut e = entry();
    e.team_id = Some("model-team".to_owned());
    e.apply_context(&ctx);
    assert_eq!(e.team_id.as_deref(), Some("model-team"));
    assert_eq!(e.organization_id, None);
    // A model that names its tenant but holds none (a nullable team column) is not filed
    // under the context's either.
    let mut own = entry();
    own.own_tenant = true;
    own.apply_context(&ctx);
    assert_eq!((own.organization_id, own.team_id), (None, None));
    // An entry with no tenant takes the context's.
    let mut plain = entry();
    plain.apply_context(&ctx);
    assert_eq!(plain.organization_id.as_deref(), Some("ctx-org"));
    assert_eq!(plain.team_id.as_deref(), Some("ctx-team"));
}

#[test]
fn apply_context_impersonation() {
    let ctx = ActivityContext::impersonating(
        Actor::new("customer").with_name("Cara"),
        Actor::new("staff").with_name("Sam"),
    );
    let e = entry().with_context(&ctx);
    assert_eq!(e.user_id.as_deref(), Some("customer"));
    assert_eq!(e.user_name.as_deref(), Some("Cara"));
    assert_eq!(e.impersonated_by.as_deref(), Some("staff"));
    assert!(e.was_impersonated);
    assert!(!e.is_system);
}

/// A system context makes an entry without an actor a system entry; an entry that names its
/// actor keeps it (the context fills only what is unset).
#[test]
fn apply_context_system_fills_only_an_unset_actor() {
    let system = ActivityContext::system();
    let e = entry().with_context(&system);
    assert_eq!(e.user_id, None);
    assert_eq!(e.user_name, None);
    assert_eq!(e.impersonated_by, None);
    assert!(e.is_system);
    assert!(!e.was_impersonated);
    assert!(system.is_system());

    let user = ActivityContext::for_user(Actor::new("42").with_name("alice"));
    let mut named = entry().with_context(&user);
    named.apply_context(&system);
    assert_eq!(named.user_id.as_deref(), Some("42"));
    assert_eq!(named.user_name.as_deref(), Some("alice"));
    assert!(!named.is_system);
}

#[test]
fn should_write_drops_updates_without_changes_unless_forced() {
    let change = Change::new(
        "FeatureFlag",
        ChangeAction::Changed,
        Some("enabled"),
        json!(false),
        json!(true),
    );
    assert!(!entry().should_write());
    assert!(entry().forced().should_write());
    assert!(entry().with_changes(vec![change]).should_write());
    // created/deleted and custom verbs are written with `changes: []`.
    for verb in [activity::CREATED, activity::DELETED, "exported"] {
        assert!(
            ActivityEntry::new("FeatureFlag", verb).should_write(),
            "{verb}"
        );
    }
}

#[test]
fn should_write_drops_impersonation_without_user() {
    let mut e = ActivityEntry::new("FeatureFlag", activity::CREATED);
    e.was_impersonated = true;
    e.impersonated_by = Some("staff".to_owned());
    assert!(!e.should_write());
    assert!(!e.clone().forced().should_write());
    e.user_id = Some("customer".to_owned());
    assert!(e.should_write());
}

#[test]
fn force_is_not_serialized() {
    let e = entry().forced();
    let value = serde_json::to_value(&e).unwrap();
    assert!(value.get("force").is_none());
    let back: ActivityEntry = serde_json::from_value(value).unwrap();
    assert!(!back.force);
}
