use activity_core::ModelActivity;

fn encode(v: &Vec<u32>) -> serde_json::Value {
    serde_json::json!(v)
}

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Flag", bound = "T: not a bound")]
struct Flag<T> {
    #[activity(with = encode, mask_keys)]
    ids: Vec<u32>,
    other: T,
}

fn main() {}
