//! Diffing an unchanged model does not touch the heap (no JSON round trip, only
//! changed fields are encoded). Counted by a per-thread counting global allocator.

use activity_core::{ActivityContext, ModelActivity, is_muted};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

/// Heap allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    counting_alloc::allocations(f).0
}

#[derive(Clone, ModelActivity)]
#[activity(crate = "activity_core", scope = "Wide", name = key, team = team_id)]
#[allow(dead_code)] // excluded fields are never read
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
    payloads: Option<Value>,
    created_at: DateTime<Utc>,
    last_seen: Option<DateTime<Utc>>,
    score: f64,
    ratio: f64,
    tags: Vec<String>,
    external_id: Uuid,
    #[activity(mask)]
    secret: String,
    #[activity(mask_keys)]
    config: Value,
}

fn wide() -> Wide {
    let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
        .unwrap()
        .to_utc();
    Wide {
        id: 1,
        team_id: 2,
        key: "beta-checkout".into(),
        name: "Beta checkout".into(),
        active: true,
        deleted: false,
        rollout: 50,
        version: 3,
        description: Some(String::new()),
        owner: None,
        filters: json!({"groups": [{"properties": [{"key": "email"}], "rollout": 50}]}),
        payloads: Some(json!({})),
        created_at: t,
        last_seen: Some(t),
        score: f64::NAN,
        ratio: 0.5,
        tags: vec!["a".into(), "b".into()],
        external_id: Uuid::from_u128(7),
        secret: "hush".into(),
        config: json!({"token": "x", "n": 1}),
    }
}

#[test]
fn an_unchanged_diff_does_not_allocate() {
    let (before, after) = (wide(), wide());
    let mut out = Vec::new();
    assert_eq!(allocations(|| before.activity_changes(&after, &mut out)), 0);
    assert!(out.is_empty());
    // Semantically equal values too: empty-value equivalence and JSON number/key-order rules.
    let mut equal = wide();
    equal.description = None;
    equal.payloads = Some(Value::Null);
    equal.filters = json!({"groups": [{"rollout": 50.0, "properties": [{"key": "email"}]}]});
    assert_eq!(allocations(|| before.activity_changes(&equal, &mut out)), 0);
    assert!(out.is_empty());
    assert_eq!(
        allocations(|| drop(activity_core::diff(&before, &equal))),
        0
    );
}

#[test]
fn only_changed_fields_allocate() {
    let before = wide();
    let mut after = wide();
    after.active = false;
    let mut out = Vec::with_capacity(4);
    // Scope and field name strings; `bool` values encode without the heap.
    assert_eq!(allocations(|| before.activity_changes(&after, &mut out)), 2);
    assert_eq!(out.len(), 1);
}

#[test]
fn quiet_paths_do_not_allocate() {
    assert_eq!(allocations(|| assert!(!is_muted("Wide"))), 0);
    assert_eq!(
        allocations(|| assert!(ActivityContext::current().is_none())),
        0
    );
    let w = wide();
    assert_eq!(
        allocations(|| {
            std::hint::black_box(<Wide as ModelActivity>::FIELDS);
            std::hint::black_box(<Wide as ModelActivity>::SCOPE);
        }),
        0
    );
    // One String each for the accessors.
    assert_eq!(allocations(|| drop(w.activity_team_id())), 1);
}
