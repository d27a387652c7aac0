// The tenant must stay exact: every entry's team/organization would otherwise be "masked".
use activity_core::ModelActivity;

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Project", team = team_id, organization = org)]
struct Project {
    #[activity(mask)]
    team_id: i64,
    #[activity(mask_keys)]
    org: serde_json::Value,
    title: String,
}

fn main() {
    let a = Project { team_id: 1, org: serde_json::json!({}), title: "t".into() };
    let _ = activity_core::diff(&a, &a);
}
