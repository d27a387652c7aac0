use activity_core::ModelActivity;
use serde_json::json;

#[derive(PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Plan {
    Free,
    Team { seats: u32 },
}

activity_core::impl_activity_value_with_serde!(Plan);

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Billing", name = plan)]
struct Billing {
    plan: Plan,
    next_plan: Option<Plan>,
}

fn main() {
    let before = Billing {
        plan: Plan::Free,
        next_plan: None,
    };
    let after = Billing {
        plan: Plan::Team { seats: 5 },
        next_plan: Some(Plan::Free),
    };
    let changes = activity_core::diff(&before, &after);
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0].before, json!("free"));
    assert_eq!(changes[0].after, json!({"team": {"seats": 5}}));
    assert_eq!(changes[1].after, json!("free"));
    assert_eq!(before.activity_name().as_deref(), Some("free"));
}
