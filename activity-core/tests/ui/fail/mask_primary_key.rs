// A masked primary key would still be written raw, as every entry's `item_id`. One mistake is
// one error: `exclude` next to it adds no second one, and the code using the model (`diff`,
// `FIELDS`) does not fail on top.
use activity_core::ModelActivity;

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Setting")]
struct Setting {
    #[sea_orm(primary_key, auto_increment = false)]
    #[activity(mask)]
    key: String,
    value: String,
}

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Token")]
struct Token {
    #[sea_orm(primary_key)]
    #[activity(include, mask_keys)]
    id: serde_json::Value,
    #[sea_orm(primary_key)]
    #[activity(exclude, mask)]
    serial: String,
}

fn main() {
    let a = Setting { key: "k".into(), value: "v".into() };
    let _ = activity_core::diff(&a, &a);
    let _ = <Token as ModelActivity>::FIELDS;
}
