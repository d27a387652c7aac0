// Bounds are inferred for fields whose type mentions a type parameter.
use activity_core::ModelActivity;
use std::marker::PhantomData;

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Setting", name = label)]
struct Setting<'a, T, K, M: Send = ()>
where
    T: Clone,
{
    label: &'a str,
    value: T,
    previous: Option<T>,
    #[activity(mask_keys)]
    extra: K,
    #[activity(exclude)]
    marker: PhantomData<M>,
}

fn main() {
    let before = Setting::<i32, serde_json::Value> {
        label: "limit",
        value: 1,
        previous: None,
        extra: serde_json::json!({"k": 1}),
        marker: PhantomData,
    };
    let after = Setting {
        value: 2,
        extra: before.extra.clone(),
        ..before
    };
    let changes = activity_core::diff(&before, &after);
    assert_eq!(changes.len(), 1);
    assert_eq!(after.activity_name().as_deref(), Some("limit"));
}
