use activity_core::ModelActivity;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Everything", short_id = external)]
struct Everything {
    filters: Value,
    maybe_filters: Option<Value>,
    title: Option<String>,
    count: Option<i64>,
    at: DateTime<Utc>,
    maybe_at: Option<DateTime<Utc>>,
    day: NaiveDate,
    local: NaiveDateTime,
    external: Uuid,
    maybe_external: Option<Uuid>,
    tags: Vec<String>,
    blob: Vec<u8>,
    ratio: f32,
    small: u8,
    big: u128,
    letter: char,
    boxed: Box<str>,
    labels: std::collections::BTreeMap<String, i32>,
    headers: std::collections::HashMap<String, String>,
}

fn main() {
    let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().to_utc();
    let e = Everything {
        filters: json!({"a": 1}),
        maybe_filters: None,
        title: Some("t".into()),
        count: None,
        at: t,
        maybe_at: Some(t),
        day: t.date_naive(),
        local: t.naive_utc(),
        external: Uuid::nil(),
        maybe_external: None,
        tags: vec![],
        blob: vec![1],
        ratio: 0.5,
        small: 1,
        big: u128::MAX,
        letter: 'x',
        boxed: "b".into(),
        labels: Default::default(),
        headers: Default::default(),
    };
    assert!(activity_core::diff(&e, &e).is_empty());
    assert_eq!(
        e.activity_short_id().as_deref(),
        Some("00000000-0000-0000-0000-000000000000")
    );
}
