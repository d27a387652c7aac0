use activity_core::ModelActivity;

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Pair")]
struct Pair(i32, String);

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Unit")]
struct Unit;

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Plan")]
enum Plan {
    Free,
}

fn main() {}
