//! `activity_field_json` / `activity_set_field_json` from `#[derive(ModelActivity)]`: one arm per
//! column, at its index in `FIELDS`, reading and writing the raw value (excluded and masked
//! columns too), for history's as-of reads and revert.

use std::marker::PhantomData;

use activity_core::ModelActivity;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

#[derive(Clone, Debug, PartialEq)]
struct Unrecordable(u8);

#[derive(Clone, Debug, PartialEq)]
struct HasMany<E>(PhantomData<E>);

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
enum Plan {
    Free,
    Pro,
}

fn plans(v: &[Plan]) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[derive(Clone, Debug, PartialEq, ModelActivity)]
#[activity(crate = "activity_core", scope = "Widget", name = title)]
#[sea_orm(table_name = "widget")]
struct Widget {
    #[sea_orm(primary_key)]
    id: i32,
    #[activity(rename = "heading")]
    title: String,
    #[sea_orm(ignore)]
    cache: Unrecordable,
    #[activity(mask)]
    secret: Option<String>,
    #[activity(exclude)]
    hits: i64,
    r#type: String,
    #[sea_orm(has_many)]
    children: HasMany<Widget>,
    #[activity(exclude)]
    opaque: Unrecordable,
    #[activity(with = plans)]
    plans: Vec<Plan>,
    #[activity(mask_keys)]
    config: Value,
    created_at: DateTime<Utc>,
    #[sea_orm(column_name = "Ratio")]
    ratio: f64,
}

fn widget() -> Widget {
    Widget {
        id: 7,
        title: "Héllo".into(),
        cache: Unrecordable(1),
        secret: Some("s3cret".into()),
        hits: -3,
        r#type: "kind".into(),
        children: HasMany(PhantomData),
        opaque: Unrecordable(2),
        plans: vec![Plan::Free, Plan::Pro],
        config: json!({"token": "t", "n": 1}),
        created_at: DateTime::parse_from_rfc3339("2026-01-02T03:04:05.5Z")
            .unwrap()
            .to_utc(),
        ratio: f64::NAN,
    }
}

fn index(name: &str) -> usize {
    Widget::FIELDS.iter().position(|f| f.name == name).unwrap()
}

#[test]
fn every_column_has_its_index_in_fields() {
    let names: Vec<_> = Widget::FIELDS.iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        [
            "id",
            "title",
            "secret",
            "hits",
            "type",
            "opaque",
            "plans",
            "config",
            "created_at",
            "ratio"
        ]
    );
    let w = widget();
    let read: Vec<_> = (0..Widget::FIELDS.len())
        .map(|i| w.activity_field_json(i))
        .collect();
    assert_eq!(
        read,
        [
            Some(json!(7)),
            Some(json!("Héllo")),
            // Raw: masking is for the log, history needs the live value.
            Some(json!("s3cret")),
            // Excluded: never logged, still read.
            Some(json!(-3)),
            Some(json!("kind")),
            // Excluded, and no `ActivityValue`: nothing to read, and no new bound required.
            None,
            // `with`: what the function writes, as the log has it.
            Some(json!(["Free", "Pro"])),
            Some(json!({"token": "t", "n": 1})),
            Some(json!("2026-01-02T03:04:05.500Z")),
            Some(json!("NaN")),
        ]
    );
    assert_eq!(w.activity_field_json(Widget::FIELDS.len()), None);
    assert_eq!(w.activity_field_json(usize::MAX), None);
}

#[test]
fn each_readable_column_reads_back_into_the_same_model() {
    let mut w = widget();
    for (i, field) in Widget::FIELDS.iter().enumerate() {
        let Some(json) = w.activity_field_json(i) else {
            continue;
        };
        let readable = field.name != "plans";
        assert_eq!(
            w.activity_set_field_json(i, &json),
            readable,
            "{}",
            field.name
        );
    }
    // NaN != NaN: compare the rest, then the ratio.
    let before = widget();
    assert!(w.ratio.is_nan());
    w.ratio = 0.0;
    assert_eq!(
        w,
        Widget {
            ratio: 0.0,
            ..before
        }
    );
}

#[test]
fn setting_writes_the_raw_field() {
    let mut w = widget();
    assert!(w.activity_set_field_json(index("title"), &json!("Renamed 😀")));
    assert!(w.activity_set_field_json(index("secret"), &json!(null)));
    assert!(w.activity_set_field_json(index("hits"), &json!(9_007_199_254_740_993i64)));
    assert!(w.activity_set_field_json(index("type"), &json!("")));
    assert!(w.activity_set_field_json(index("config"), &json!([1, {"a": null}])));
    assert!(w.activity_set_field_json(index("created_at"), &json!("1999-12-31T23:59:59Z")));
    assert!(w.activity_set_field_json(index("ratio"), &json!("-inf")));
    assert!(w.activity_set_field_json(index("id"), &json!(8)));
    let expected = Widget {
        id: 8,
        title: "Renamed 😀".into(),
        secret: None,
        hits: 9_007_199_254_740_993,
        r#type: String::new(),
        config: json!([1, {"a": null}]),
        created_at: DateTime::parse_from_rfc3339("1999-12-31T23:59:59Z")
            .unwrap()
            .to_utc(),
        ratio: f64::NEG_INFINITY,
        ..widget()
    };
    assert_eq!(w, expected);
    assert_eq!(w.activity_field_json(index("type")), Some(json!("")));
}

#[test]
fn a_value_that_does_not_decode_changes_nothing() {
    let mut w = widget();
    let cases = [
        ("id", json!("8")),
        ("id", json!(1.5)),
        ("id", json!(i64::MAX)),
        ("title", json!(1)),
        ("title", json!(null)),
        ("secret", json!(["s"])),
        ("hits", json!("1")),
        ("type", json!({"a": 1})),
        ("created_at", json!("1999-12-31 23:59:59Z")),
        ("ratio", json!("nan")),
        // No inverse of the `with` function, no `ActivityValue` for `opaque`.
        ("plans", json!(["Free"])),
        ("opaque", json!(2)),
    ];
    for (name, value) in cases {
        assert!(
            !w.activity_set_field_json(index(name), &value),
            "{name} = {value}"
        );
    }
    assert!(!w.activity_set_field_json(Widget::FIELDS.len(), &json!(1)));
    assert!(!w.activity_set_field_json(usize::MAX, &json!(1)));
    let before = widget();
    assert!(w.ratio.is_nan());
    w.ratio = 0.0;
    assert_eq!(
        w,
        Widget {
            ratio: 0.0,
            ..before
        }
    );
}

/// Non-columns have no index: `FIELDS` skips them, and so do these methods.
#[test]
fn fields_that_are_not_columns_are_not_reachable() {
    let w = widget();
    let all: Vec<_> = (0..Widget::FIELDS.len())
        .filter_map(|i| w.activity_field_json(i))
        .collect();
    assert!(!all.contains(&json!(1)), "the ignored `cache` is not read");
    assert!(Widget::field_for_column("cache").is_none());
    assert!(Widget::field_for_column("children").is_none());
    assert_eq!(
        Widget::field_for_column("Ratio").map(|f| f.name),
        Some("ratio")
    );
}

/// Bounds are inferred only for recorded fields of a type parameter: an excluded one has no
/// `ActivityValue` bound, so it reads `None` and is never set, even when the type argument
/// has an impl. A reference field reads, but cannot be built from JSON.
#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Setting")]
struct Setting<'a, T, U> {
    label: &'a str,
    value: T,
    previous: Option<T>,
    #[activity(exclude)]
    other: U,
}

#[test]
fn generic_models() {
    let mut s = Setting {
        label: "limit",
        value: 1u8,
        previous: None,
        other: 5i32,
    };
    assert_eq!(s.activity_field_json(0), Some(json!("limit")));
    assert!(!s.activity_set_field_json(0, &json!("other")));
    assert_eq!(s.activity_field_json(1), Some(json!(1)));
    assert!(s.activity_set_field_json(1, &json!(255)));
    assert!(!s.activity_set_field_json(1, &json!(256)));
    assert!(s.activity_set_field_json(2, &json!(3)));
    assert_eq!(s.activity_field_json(3), None);
    assert!(!s.activity_set_field_json(3, &json!(6)));
    assert_eq!(
        (s.label, s.value, s.previous, s.other),
        ("limit", 255, Some(3), 5)
    );
}

/// `bound = ".."`: fields of a type parameter read and set by what the bound gives.
#[derive(ModelActivity)]
#[activity(
    crate = "activity_core",
    scope = "Bounded",
    bound = "T: activity_core::ActivityValue"
)]
struct Bounded<T> {
    #[activity(exclude)]
    value: T,
}

#[test]
fn an_explicit_bound_applies() {
    let mut b = Bounded { value: 1i64 };
    assert_eq!(b.activity_field_json(0), Some(json!(1)));
    assert!(b.activity_set_field_json(0, &json!(-1)));
    assert_eq!(b.value, -1);
}

/// Models with no column, or only columns encoded `with` a function, keep the defaults where
/// no arm applies.
#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Nothing")]
struct Nothing {
    #[sea_orm(ignore)]
    _cache: Unrecordable,
}

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "OnlyWith")]
struct OnlyWith {
    #[activity(with = plans)]
    plans: Vec<Plan>,
    #[activity(exclude, with = plans)]
    hidden: Vec<Plan>,
}

#[test]
fn models_without_readable_columns() {
    let mut n = Nothing {
        _cache: Unrecordable(0),
    };
    assert_eq!(n.activity_field_json(0), None);
    assert!(!n.activity_set_field_json(0, &json!(null)));
    let mut o = OnlyWith {
        plans: vec![Plan::Pro],
        hidden: vec![],
    };
    assert_eq!(o.activity_field_json(0), Some(json!(["Pro"])));
    // Excluded: the function is not called on it, as the diff does not.
    assert_eq!(o.activity_field_json(1), None);
    assert!(!o.activity_set_field_json(0, &json!(["Pro"])));
    assert!(o.hidden.is_empty());
}

/// As history will call them: from code generic over the model, pairing columns by name.
fn revert_field<M: ModelActivity>(model: &mut M, column: &str, logged: &Value) -> bool {
    M::FIELDS
        .iter()
        .position(|f| f.column == column)
        .is_some_and(|i| model.activity_set_field_json(i, logged))
}

#[test]
fn generic_callers_pair_columns_by_name() {
    let mut w = widget();
    assert!(revert_field(&mut w, "Ratio", &json!(0.25)));
    assert!(revert_field(&mut w, "type", &json!("t2")));
    assert!(!revert_field(&mut w, "cache", &json!(1)));
    assert_eq!((w.ratio, w.r#type.as_str()), (0.25, "t2"));
}
