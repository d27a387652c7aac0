use activity_core::ModelActivity;

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Flag", scope = "Other")]
struct Flag {
    #[activity(rename = "a", rename = "b")]
    key: String,
    #[activity(mask)]
    #[activity(mask)]
    secret: String,
}

fn main() {}
