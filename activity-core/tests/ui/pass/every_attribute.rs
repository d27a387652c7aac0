use activity_core::{ChangeAction, ModelActivity};
use serde_json::json;

#[derive(ModelActivity)]
#[activity(
    crate = "activity_core",
    scope = "FeatureFlag",
    name = key,
    short_id = short_id,
    team = team_id,
    organization = organization_id,
    snapshot
)]
struct Flag {
    id: i32,
    team_id: i64,
    organization_id: String,
    short_id: String,
    key: String,
    #[activity(rename = "enabled")]
    active: bool,
    #[activity(mask)]
    webhook_secret: String,
    #[activity(mask_keys)]
    integration: serde_json::Value,
    #[activity(exclude)]
    cached_count: i32,
    #[activity(signal_exclude)]
    last_accessed_at: Option<chrono::DateTime<chrono::Utc>>,
    #[activity(include)]
    created_by: Option<String>,
}

fn main() {
    let flag = Flag {
        id: 1,
        team_id: 2,
        organization_id: "org".into(),
        short_id: "s1".into(),
        key: "beta".into(),
        active: true,
        webhook_secret: "hush".into(),
        integration: json!({"token": "t"}),
        cached_count: 5,
        last_accessed_at: None,
        created_by: Some("ann".into()),
    };
    assert!(Flag::SNAPSHOT);
    assert_eq!(flag.activity_name().as_deref(), Some("beta"));
    assert_eq!(flag.activity_short_id().as_deref(), Some("s1"));
    assert_eq!(flag.activity_team_id().as_deref(), Some("2"));
    assert_eq!(flag.activity_organization_id().as_deref(), Some("org"));
    let mut out = Vec::new();
    flag.activity_snapshot(ChangeAction::Created, &mut out);
    let fields: Vec<_> = out.iter().map(|c| c.field.as_deref().unwrap()).collect();
    assert_eq!(
        fields,
        [
            "team_id",
            "organization_id",
            "short_id",
            "key",
            "enabled",
            "webhook_secret",
            "integration",
            "created_by"
        ]
    );
    let _ = flag.cached_count;
}
