use activity_core::ModelActivity;

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Flag", name = title, team = team)]
struct Flag {
    key: String,
    team_id: i64,
}

fn main() {}
