use activity_core::ModelActivity;

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Hook")]
struct Hook {
    url: String,
    #[activity(exclude, mask)]
    secret: String,
    #[activity(mask_keys)]
    #[activity(exclude)]
    config: serde_json::Value,
}

fn main() {}
