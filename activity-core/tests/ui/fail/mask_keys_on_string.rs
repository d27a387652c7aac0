use activity_core::ModelActivity;

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Hook")]
struct Hook {
    url: String,
    #[activity(mask_keys)]
    secret: String,
}

fn main() {}
