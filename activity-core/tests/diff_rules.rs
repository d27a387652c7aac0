//! One test per change-detection rule of the derive (the book's "The derive"), each with the literal expected changes.
#![allow(dead_code)] // excluded fields are never read, as in a model nothing else uses

use std::collections::BTreeMap;

use activity_core::diff::{any_signalling, push_change};
use activity_core::{
    COMMON_EXCLUSIONS, Change, ChangeAction, FieldSpec, Masking, ModelActivity, diff,
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

fn change(scope: &str, action: ChangeAction, field: &str, before: Value, after: Value) -> Change {
    Change {
        kind: scope.to_owned(),
        action,
        field: Some(field.to_owned()),
        before,
        after,
    }
}

fn changed(scope: &str, field: &str, before: Value, after: Value) -> Change {
    change(scope, ChangeAction::Changed, field, before, after)
}

fn ts(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

// ---------- declaration order ----------

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Ordered")]
struct Ordered {
    zeta: i32,
    alpha: String,
    mid: bool,
}

#[test]
fn changes_follow_declaration_order() {
    let before = Ordered {
        zeta: 1,
        alpha: "a".into(),
        mid: false,
    };
    let after = Ordered {
        zeta: 2,
        alpha: "b".into(),
        mid: true,
    };
    assert_eq!(
        diff(&before, &after),
        vec![
            changed("Ordered", "zeta", json!(1), json!(2)),
            changed("Ordered", "alpha", json!("a"), json!("b")),
            changed("Ordered", "mid", json!(false), json!(true)),
        ]
    );
    let names: Vec<_> = Ordered::FIELDS.iter().map(|f| f.name).collect();
    assert_eq!(names, ["zeta", "alpha", "mid"]);
}

#[test]
fn the_scope_defaults_to_the_struct_name() {
    #[derive(ModelActivity)]
    #[activity(crate = "activity_core")]
    struct Dashboard {
        title: String,
    }
    assert_eq!(Dashboard::SCOPE, "Dashboard");
    assert_eq!(Ordered::SCOPE, "Ordered");
    const { assert!(!Dashboard::SNAPSHOT) };
    let d = Dashboard { title: "t".into() };
    assert_eq!(d.activity_name(), None);
    assert_eq!(d.activity_short_id(), None);
    assert_eq!(d.activity_team_id(), None);
    assert_eq!(d.activity_organization_id(), None);
}

// ---------- exclude ----------

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Counter")]
struct Counter {
    label: String,
    #[activity(exclude)]
    cached_count: i32,
}

#[test]
fn excluded_fields_are_not_compared() {
    let before = Counter {
        label: "x".into(),
        cached_count: 1,
    };
    let after = Counter {
        label: "x".into(),
        cached_count: 99,
    };
    assert_eq!(diff(&before, &after), vec![]);
    let after = Counter {
        label: "y".into(),
        cached_count: 2,
    };
    assert_eq!(
        diff(&before, &after),
        vec![changed("Counter", "label", json!("x"), json!("y"))]
    );
    assert_eq!(
        Counter::FIELDS,
        &[
            FieldSpec {
                name: "label",
                column: "label",
                display: "label",
                excluded: false,
                signal_excluded: false,
                masking: Masking::None,
            },
            FieldSpec {
                name: "cached_count",
                column: "cached_count",
                display: "cached_count",
                excluded: true,
                signal_excluded: false,
                masking: Masking::None,
            },
        ]
    );
}

// ---------- common exclusions ----------

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Common")]
struct Common {
    id: i32,
    uuid: Uuid,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_by: Option<String>,
    updated_by: Option<String>,
    last_modified_at: Option<DateTime<Utc>>,
    last_modified_by: String,
    // Near misses are tracked.
    ids: i32,
    created: bool,
    user_id: i64,
    title: String,
}

fn common(n: i64) -> Common {
    let s = n.to_string();
    Common {
        id: n as i32,
        uuid: Uuid::from_u128(n as u128),
        created_at: ts("2026-01-01T00:00:00Z") + chrono::Duration::seconds(n),
        updated_at: ts("2026-01-01T00:00:00Z") + chrono::Duration::seconds(n),
        created_by: Some(s.clone()),
        updated_by: Some(s.clone()),
        last_modified_at: Some(ts("2026-01-01T00:00:00Z") + chrono::Duration::seconds(n)),
        last_modified_by: s.clone(),
        ids: n as i32,
        created: n % 2 == 0,
        user_id: n,
        title: s,
    }
}

#[test]
fn common_exclusions_are_not_compared() {
    assert_eq!(
        diff(&common(1), &common(2)),
        vec![
            changed("Common", "ids", json!(1), json!(2)),
            changed("Common", "created", json!(false), json!(true)),
            changed("Common", "user_id", json!(1), json!(2)),
            changed("Common", "title", json!("1"), json!("2")),
        ]
    );
}

#[test]
fn common_exclusions_list_is_the_documented_one() {
    assert_eq!(
        COMMON_EXCLUSIONS,
        &[
            "id",
            "uuid",
            "created_at",
            "updated_at",
            "created_by",
            "updated_by",
            "last_modified_at",
            "last_modified_by",
        ]
    );
}

#[test]
fn the_derive_list_of_common_exclusions_matches_the_core() {
    // The derive keeps its own copy of the list: every field it marks excluded by the common rule
    // must be in `COMMON_EXCLUSIONS`, and every name there must be excluded.
    for spec in Common::FIELDS {
        assert_eq!(
            spec.excluded,
            COMMON_EXCLUSIONS.contains(&spec.name),
            "field `{}`",
            spec.name
        );
    }
    for name in COMMON_EXCLUSIONS {
        let spec = Common::FIELDS
            .iter()
            .find(|f| f.name == *name)
            .unwrap_or_else(|| panic!("the test model lacks `{name}`"));
        assert!(spec.excluded, "`{name}`");
        assert!(!spec.signals());
    }
}

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Included")]
struct Included {
    id: i32,
    #[activity(include)]
    created_by: String,
    #[activity(include, rename = "modified")]
    updated_at: DateTime<Utc>,
}

#[test]
fn include_overrides_the_common_exclusions() {
    let before = Included {
        id: 1,
        created_by: "ann".into(),
        updated_at: ts("2026-01-01T00:00:00Z"),
    };
    let after = Included {
        id: 2,
        created_by: "bob".into(),
        updated_at: ts("2026-01-02T00:00:00.5Z"),
    };
    assert_eq!(
        diff(&before, &after),
        vec![
            changed("Included", "created_by", json!("ann"), json!("bob")),
            changed(
                "Included",
                "modified",
                json!("2026-01-01T00:00:00Z"),
                json!("2026-01-02T00:00:00.500Z")
            ),
        ]
    );
    let excluded: Vec<_> = Included::FIELDS.iter().map(|f| f.excluded).collect();
    assert_eq!(excluded, [true, false, false]);
}

// ---------- empty values ----------

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Empties")]
struct Empties {
    opt: Option<String>,
    text: String,
    json: Value,
    opt_json: Option<Value>,
    list: Vec<String>,
    bytes: Vec<u8>,
    map: BTreeMap<String, i32>,
    opt_list: Option<Vec<String>>,
}

impl Empties {
    fn all_empty() -> Self {
        Self {
            opt: None,
            text: String::new(),
            json: Value::Null,
            opt_json: None,
            list: vec![],
            bytes: vec![],
            map: BTreeMap::new(),
            opt_list: None,
        }
    }
}

#[test]
fn empty_values_are_equal_to_each_other() {
    let variants = [
        Empties {
            opt: Some(String::new()),
            json: json!({}),
            opt_json: Some(json!([])),
            opt_list: Some(vec![]),
            ..Empties::all_empty()
        },
        Empties {
            json: json!([]),
            opt_json: Some(Value::Null),
            ..Empties::all_empty()
        },
        Empties {
            json: json!(""),
            opt_json: Some(json!({})),
            ..Empties::all_empty()
        },
        Empties {
            opt_json: Some(json!("")),
            ..Empties::all_empty()
        },
    ];
    for a in variants.iter().chain([&Empties::all_empty()]) {
        for b in variants.iter().chain([&Empties::all_empty()]) {
            assert_eq!(diff(a, b), vec![]);
        }
    }
}

#[test]
fn empty_to_value_is_created_with_a_null_before() {
    let after = Empties {
        opt: Some("x".into()),
        text: "t".into(),
        json: json!({"a": 1}),
        opt_json: Some(json!([1])),
        list: vec!["l".into()],
        bytes: vec![1, 2],
        map: BTreeMap::from([("k".to_owned(), 1)]),
        opt_list: Some(vec!["o".into()]),
    };
    let created =
        |field, after| change("Empties", ChangeAction::Created, field, Value::Null, after);
    // From `Some("")`/`{}`-style empties as well as from `None`/null.
    let before = Empties {
        opt: Some(String::new()),
        json: json!({}),
        opt_list: Some(vec![]),
        ..Empties::all_empty()
    };
    assert_eq!(
        diff(&before, &after),
        vec![
            created("opt", json!("x")),
            created("text", json!("t")),
            created("json", json!({"a": 1})),
            created("opt_json", json!([1])),
            created("list", json!(["l"])),
            created("bytes", json!("AQI=")),
            created("map", json!({"k": 1})),
            created("opt_list", json!(["o"])),
        ]
    );
}

#[test]
fn value_to_empty_is_deleted_with_a_null_after() {
    let before = Empties {
        opt: Some("x".into()),
        text: "t".into(),
        json: json!([0]),
        opt_json: Some(json!("s")),
        list: vec!["l".into()],
        bytes: vec![255],
        map: BTreeMap::from([("k".to_owned(), 1)]),
        opt_list: Some(vec!["o".into()]),
    };
    let after = Empties {
        json: json!([]),
        opt_json: Some(json!({})),
        ..Empties::all_empty()
    };
    let deleted =
        |field, before| change("Empties", ChangeAction::Deleted, field, before, Value::Null);
    assert_eq!(
        diff(&before, &after),
        vec![
            deleted("opt", json!("x")),
            deleted("text", json!("t")),
            deleted("json", json!([0])),
            deleted("opt_json", json!("s")),
            deleted("list", json!(["l"])),
            deleted("bytes", json!("/w==")),
            deleted("map", json!({"k": 1})),
            deleted("opt_list", json!(["o"])),
        ]
    );
}

#[test]
fn value_to_other_value_is_changed() {
    let before = Empties {
        opt: Some("x".into()),
        text: "t".into(),
        json: json!(1),
        list: vec!["a".into(), "b".into()],
        ..Empties::all_empty()
    };
    let after = Empties {
        opt: Some("y".into()),
        text: "u".into(),
        json: json!("1"),
        list: vec!["b".into(), "a".into()],
        ..Empties::all_empty()
    };
    assert_eq!(
        diff(&before, &after),
        vec![
            changed("Empties", "opt", json!("x"), json!("y")),
            changed("Empties", "text", json!("t"), json!("u")),
            changed("Empties", "json", json!(1), json!("1")),
            changed("Empties", "list", json!(["a", "b"]), json!(["b", "a"])),
        ]
    );
}

// ---------- JSON semantics ----------

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Filters")]
struct Filters {
    filters: Value,
}

#[test]
fn json_fields_compare_semantically() {
    let a = Filters {
        filters: serde_json::from_str(r#"{"groups":[{"rollout":100,"props":[]}],"v":1}"#).unwrap(),
    };
    let b = Filters {
        filters: serde_json::from_str(r#"{"v":1.0,"groups":[{"props":[],"rollout":100.0}]}"#)
            .unwrap(),
    };
    assert_eq!(diff(&a, &b), vec![]);
    let c = Filters {
        filters: json!({"v": 2, "groups": [{"props": [], "rollout": 100}]}),
    };
    assert_eq!(
        diff(&a, &c),
        vec![changed(
            "Filters",
            "filters",
            json!({"groups": [{"rollout": 100, "props": []}], "v": 1}),
            json!({"v": 2, "groups": [{"props": [], "rollout": 100}]})
        )]
    );
    // Integers beyond 2^53 are compared exactly.
    let big = |n: u64| Filters {
        filters: json!({ "n": n }),
    };
    assert_eq!(
        diff(&big(9_007_199_254_740_993), &big(9_007_199_254_740_992)),
        vec![changed(
            "Filters",
            "filters",
            json!({"n": 9_007_199_254_740_993u64}),
            json!({"n": 9_007_199_254_740_992u64})
        )]
    );
}

// ---------- mask ----------

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Hook")]
struct Hook {
    url: String,
    #[activity(mask)]
    secret: String,
    #[activity(mask)]
    token: Option<String>,
    #[activity(mask)]
    config: Value,
}

#[test]
fn masked_fields_write_masked_and_keep_null() {
    let before = Hook {
        url: "u".into(),
        secret: "s1".into(),
        token: None,
        config: json!({"a": 1}),
    };
    let after = Hook {
        url: "u".into(),
        secret: "s2".into(),
        token: Some("t".into()),
        config: json!(null),
    };
    assert_eq!(
        diff(&before, &after),
        vec![
            changed("Hook", "secret", json!("masked"), json!("masked")),
            change(
                "Hook",
                ChangeAction::Created,
                "token",
                Value::Null,
                json!("masked")
            ),
            change(
                "Hook",
                ChangeAction::Deleted,
                "config",
                json!("masked"),
                Value::Null
            ),
        ]
    );
    let text = serde_json::to_string(&diff(&before, &after)).unwrap();
    for secret in ["s1", "s2", "\"t\"", "\"a\""] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[test]
fn masked_fields_detect_changes_on_real_values() {
    let hook = |secret: &str| Hook {
        url: "u".into(),
        secret: secret.into(),
        token: Some("same".into()),
        config: json!({"b": 1, "a": 2}),
    };
    // Both sides would render as "masked", yet this is a change...
    assert_eq!(
        diff(&hook("old"), &hook("new")),
        vec![changed("Hook", "secret", json!("masked"), json!("masked"))]
    );
    // ...and equal secrets are not.
    assert_eq!(diff(&hook("same"), &hook("same")), vec![]);
    let mut reordered = hook("same");
    reordered.config = json!({"a": 2.0, "b": 1});
    assert_eq!(diff(&hook("same"), &reordered), vec![]);
}

// ---------- mask_keys ----------

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Integration")]
struct Integration {
    #[activity(mask_keys)]
    config: Value,
    #[activity(mask_keys, rename = "headers")]
    extra: Option<BTreeMap<String, String>>,
}

#[test]
fn mask_keys_masks_each_key_and_marks_changed_ones() {
    let before = Integration {
        config: json!({"url": "a", "token": "x"}),
        extra: None,
    };
    let after = Integration {
        config: json!({"url": "a", "token": "y"}),
        extra: None,
    };
    assert_eq!(
        diff(&before, &after),
        vec![changed(
            "Integration",
            "config",
            json!({"url": "masked", "token": "masked"}),
            json!({"url": "masked", "token": "changed"})
        )]
    );
}

#[test]
fn mask_keys_added_removed_and_semantically_equal_keys() {
    let before = Integration {
        config: json!({"keep": {"n": 1}, "gone": "g", "edit": 1}),
        extra: Some(BTreeMap::from([("A".to_owned(), "1".to_owned())])),
    };
    let after = Integration {
        config: json!({"keep": {"n": 1.0}, "edit": 2, "new": "n"}),
        extra: Some(BTreeMap::from([
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "2".to_owned()),
        ])),
    };
    assert_eq!(
        diff(&before, &after),
        vec![
            changed(
                "Integration",
                "config",
                json!({"keep": "masked", "gone": "masked", "edit": "masked"}),
                json!({"keep": "masked", "edit": "changed", "new": "changed"})
            ),
            changed(
                "Integration",
                "headers",
                json!({"A": "masked"}),
                json!({"A": "masked", "B": "changed"})
            ),
        ]
    );
}

#[test]
fn mask_keys_from_and_to_empty() {
    let empty = Integration {
        config: json!({}),
        extra: None,
    };
    let full = Integration {
        config: json!({"token": "x"}),
        extra: Some(BTreeMap::from([("A".to_owned(), "1".to_owned())])),
    };
    assert_eq!(
        diff(&empty, &full),
        vec![
            change(
                "Integration",
                ChangeAction::Created,
                "config",
                Value::Null,
                json!({"token": "changed"})
            ),
            change(
                "Integration",
                ChangeAction::Created,
                "headers",
                Value::Null,
                json!({"A": "changed"})
            ),
        ]
    );
    assert_eq!(
        diff(&full, &empty),
        vec![
            change(
                "Integration",
                ChangeAction::Deleted,
                "config",
                json!({"token": "masked"}),
                Value::Null
            ),
            change(
                "Integration",
                ChangeAction::Deleted,
                "headers",
                json!({"A": "masked"}),
                Value::Null
            ),
        ]
    );
}

#[test]
fn mask_keys_on_a_non_object_value_masks_it_whole() {
    let before = Integration {
        config: json!("plain secret"),
        extra: None,
    };
    let after = Integration {
        config: json!({"token": "x"}),
        extra: None,
    };
    assert_eq!(
        diff(&before, &after),
        vec![changed(
            "Integration",
            "config",
            json!("masked"),
            json!({"token": "changed"})
        )]
    );
    assert_eq!(
        diff(&after, &before),
        vec![changed(
            "Integration",
            "config",
            json!({"token": "masked"}),
            json!("masked")
        )]
    );
}

// ---------- rename ----------

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "FeatureFlag")]
struct Renamed {
    #[activity(rename = "enabled")]
    active: bool,
}

#[test]
fn rename_sets_the_display_name() {
    assert_eq!(
        diff(&Renamed { active: false }, &Renamed { active: true }),
        vec![changed("FeatureFlag", "enabled", json!(false), json!(true))]
    );
    assert_eq!(Renamed::FIELDS[0].name, "active");
    assert_eq!(Renamed::FIELDS[0].display, "enabled");
}

// ---------- signal_exclude ----------

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Seen")]
struct Seen {
    key: String,
    #[activity(signal_exclude)]
    last_accessed_at: Option<DateTime<Utc>>,
    #[activity(exclude)]
    hits: i64,
}

#[test]
fn signal_excluded_fields_do_not_signal() {
    let specs: Vec<_> = Seen::FIELDS
        .iter()
        .map(|f| (f.name, f.excluded, f.signal_excluded, f.signals()))
        .collect();
    assert_eq!(
        specs,
        [
            ("key", false, false, true),
            ("last_accessed_at", false, true, false),
            ("hits", true, false, false),
        ]
    );
    assert!(!any_signalling::<Seen>([1]));
    assert!(!any_signalling::<Seen>([1, 2]));
    assert!(!any_signalling::<Seen>([]));
    assert!(any_signalling::<Seen>([0, 1]));
    assert!(any_signalling::<Seen>([2, 0]));
}

#[test]
fn signal_excluded_fields_are_still_recorded_when_something_else_changed() {
    let before = Seen {
        key: "a".into(),
        last_accessed_at: None,
        hits: 0,
    };
    let after = Seen {
        key: "b".into(),
        last_accessed_at: Some(ts("2026-05-06T07:08:09Z")),
        hits: 5,
    };
    assert_eq!(
        diff(&before, &after),
        vec![
            changed("Seen", "key", json!("a"), json!("b")),
            change(
                "Seen",
                ChangeAction::Created,
                "last_accessed_at",
                Value::Null,
                json!("2026-05-06T07:08:09Z")
            ),
        ]
    );
}

// ---------- snapshot ----------

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Snap", snapshot)]
struct Snap {
    id: i32,
    key: String,
    #[activity(rename = "enabled")]
    active: bool,
    note: Option<String>,
    #[activity(mask)]
    secret: String,
    #[activity(mask_keys)]
    config: Value,
    #[activity(exclude)]
    cache: i32,
}

#[test]
fn snapshot_records_every_tracked_non_empty_field_masked() {
    const { assert!(Snap::SNAPSHOT) };
    let snap = Snap {
        id: 3,
        key: "k".into(),
        active: false,
        note: None,
        secret: "s".into(),
        config: json!({"token": "x"}),
        cache: 9,
    };
    let mut created = Vec::new();
    snap.activity_snapshot(ChangeAction::Created, &mut created);
    let c = |field, after| change("Snap", ChangeAction::Created, field, Value::Null, after);
    assert_eq!(
        created,
        vec![
            c("key", json!("k")),
            c("enabled", json!(false)),
            c("secret", json!("masked")),
            c("config", json!({"token": "masked"})),
        ]
    );
    let mut deleted = Vec::new();
    snap.activity_snapshot(ChangeAction::Deleted, &mut deleted);
    let d = |field, before| change("Snap", ChangeAction::Deleted, field, before, Value::Null);
    assert_eq!(
        deleted,
        vec![
            d("key", json!("k")),
            d("enabled", json!(false)),
            d("secret", json!("masked")),
            d("config", json!({"token": "masked"})),
        ]
    );
}

// ---------- name, short_id, team, organization ----------

#[derive(ModelActivity)]
#[activity(
    crate = "activity_core",
    scope = "Flag",
    name = key,
    short_id = short,
    team = team_id,
    organization = org
)]
struct Named {
    id: i32,
    key: String,
    short: Uuid,
    team_id: i64,
    org: Option<String>,
}

#[test]
fn accessors_read_the_named_fields() {
    let n = Named {
        id: 1,
        key: "beta-checkout".into(),
        short: Uuid::from_u128(1),
        team_id: 42,
        org: Some("acme".into()),
    };
    assert_eq!(n.activity_name().as_deref(), Some("beta-checkout"));
    assert_eq!(
        n.activity_short_id().as_deref(),
        Some("00000000-0000-0000-0000-000000000001")
    );
    assert_eq!(n.activity_team_id().as_deref(), Some("42"));
    assert_eq!(n.activity_organization_id().as_deref(), Some("acme"));
    let empty = Named {
        key: String::new(),
        org: None,
        ..n
    };
    assert_eq!(empty.activity_name(), None);
    assert_eq!(empty.activity_organization_id(), None);
}

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Secret", name = label, team = id)]
struct MaskedName {
    id: u64,
    #[activity(mask)]
    label: String,
}

#[test]
fn a_masked_name_field_gives_masked() {
    let m = MaskedName {
        id: u64::MAX,
        label: "top secret".into(),
    };
    assert_eq!(m.activity_name().as_deref(), Some("masked"));
    // The team may come from an excluded field (`id`), exactly.
    assert_eq!(
        m.activity_team_id().as_deref(),
        Some("18446744073709551615")
    );
    let empty = MaskedName {
        id: 0,
        label: String::new(),
    };
    assert_eq!(empty.activity_name(), None);
}

// ---------- an unchanged 20-field model ----------

#[derive(Clone, ModelActivity)]
#[activity(crate = "activity_core", scope = "Wide")]
struct Wide {
    id: i32,
    team_id: i64,
    key: String,
    name: String,
    active: bool,
    deleted: bool,
    rollout: i32,
    version: i64,
    description: Option<String>,
    owner: Option<String>,
    filters: Value,
    payloads: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_seen: Option<DateTime<Utc>>,
    score: f64,
    ratio: f64,
    tags: Vec<String>,
    external_id: Uuid,
    #[activity(mask)]
    secret: String,
}

#[test]
fn an_unchanged_twenty_field_model_gives_an_empty_diff() {
    let wide = Wide {
        id: 1,
        team_id: 2,
        key: "k".into(),
        name: "n".into(),
        active: true,
        deleted: false,
        rollout: 50,
        version: 3,
        description: Some("d".into()),
        owner: None,
        filters: json!({"groups": [{"rollout": 50}]}),
        payloads: json!({}),
        created_at: ts("2026-01-01T00:00:00Z"),
        updated_at: ts("2026-01-01T00:00:00Z"),
        last_seen: Some(ts("2026-01-01T00:00:00Z")),
        score: f64::NAN,
        ratio: 0.5,
        tags: vec!["a".into()],
        external_id: Uuid::from_u128(7),
        secret: "s".into(),
    };
    assert_eq!(Wide::FIELDS.len(), 20);
    assert_eq!(diff(&wide, &wide.clone()), vec![]);
    let mut out = Vec::new();
    wide.activity_changes(&wide.clone(), &mut out);
    assert_eq!(out, vec![]);
    assert_eq!(out.capacity(), 0, "an unchanged diff does not allocate");
}

// ---------- push_change, directly ----------

#[test]
fn push_change_skips_two_empty_values() {
    let spec = FieldSpec {
        name: "f",
        column: "f",
        display: "F",
        excluded: false,
        signal_excluded: false,
        masking: Masking::Full,
    };
    let mut out = Vec::new();
    push_change(&mut out, "S", &spec, &String::new(), &String::new());
    assert_eq!(out, vec![]);
    push_change(&mut out, "S", &spec, &String::new(), &"x".to_owned());
    assert_eq!(
        out,
        vec![change(
            "S",
            ChangeAction::Created,
            "F",
            Value::Null,
            json!("masked")
        )]
    );
}

/// A type the library has no `ActivityValue` for: a list of the application's own enum.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
enum Plan {
    Free,
    Pro,
}

fn plans(v: &[Plan]) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Account")]
struct Account {
    #[activity(with = plans)]
    plans: Vec<Plan>,
    #[activity(with = plans, mask)]
    secret_plans: Vec<Plan>,
}

/// `with = path` encodes a field the library cannot, and compares by that encoding; masks
/// still apply.
#[test]
fn fields_encoded_with_a_function_are_compared_and_masked() {
    let before = Account {
        plans: vec![Plan::Free],
        secret_plans: vec![Plan::Free],
    };
    let after = Account {
        plans: vec![Plan::Free, Plan::Pro],
        secret_plans: vec![Plan::Pro],
    };
    assert_eq!(
        diff(&before, &after),
        vec![
            changed("Account", "plans", json!(["Free"]), json!(["Free", "Pro"])),
            changed("Account", "secret_plans", json!("masked"), json!("masked")),
        ]
    );
    assert!(diff(&before, &before).is_empty());
}

fn encode<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// `bound = ".."` replaces the inferred bounds of a generic model (whose field type has no
/// `ActivityValue`, only `Serialize`).
#[derive(ModelActivity)]
#[activity(
    crate = "activity_core",
    scope = "Boxed",
    bound = "T: serde::Serialize"
)]
struct Boxed<T> {
    #[activity(with = encode)]
    value: T,
}

#[test]
fn bound_replaces_the_inferred_bounds() {
    let before = Boxed { value: Plan::Free };
    let after = Boxed { value: Plan::Pro };
    assert_eq!(
        diff(&before, &after),
        vec![changed("Boxed", "value", json!("Free"), json!("Pro"))]
    );
}
