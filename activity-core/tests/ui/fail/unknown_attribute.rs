use activity_core::ModelActivity;

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Flag")]
#[activity(colour = "red")]
struct Flag {
    #[activity(hidden)]
    key: String,
    #[activity(mask, maskk)]
    secret: String,
    #[activity(rename = "on", exclude_signal)]
    active: bool,
}

fn main() {}
