// Column names as SeaORM's `DeriveEntityModel` derives them, and fields that are not columns
// (`#[sea_orm(ignore)]`, relations) left out of `FIELDS` and of the diff.
#![allow(dead_code)]
use activity_core::{ChangeAction, ModelActivity};
use std::marker::PhantomData;

#[derive(Default, Clone, PartialEq)]
struct HasMany<E>(PhantomData<E>);
#[derive(Default, Clone, PartialEq)]
struct BelongsTo<E>(PhantomData<E>);
#[derive(Clone, PartialEq)]
struct Unrecordable;

#[derive(Clone, ModelActivity)]
#[activity(crate = "activity_core", scope = "Item", name = title)]
struct Item {
    #[sea_orm(primary_key)]
    id: i32,
    title: String,
    #[sea_orm(ignore)]
    cached: Unrecordable,
    r#type: String,
    #[sea_orm(column_name = "Price_Cents")]
    price: i64,
    #[sea_orm(enum_name = "Colour")]
    color: String,
    trailing_: i32,
    camelCase: i32,
    #[sea_orm(has_many)]
    children: HasMany<Item>,
    owner: BelongsTo<Item>,
    #[sea_orm(ignore)]
    #[activity(exclude)]
    scratch: Unrecordable,
    #[activity(mask)]
    secret: String,
}

#[derive(ModelActivity)]
#[sea_orm(table_name = "renamed", rename_all = "camelCase")]
#[activity(crate = "activity_core", scope = "Renamed")]
struct Renamed {
    #[sea_orm(primary_key)]
    id: i32,
    first_name: String,
    #[sea_orm(column_name = "LAST")]
    last_name: String,
}

fn main() {
    let columns: Vec<_> = Item::FIELDS.iter().map(|f| (f.name, f.column)).collect();
    assert_eq!(
        columns,
        [
            ("id", "id"),
            ("title", "title"),
            ("type", "type"),
            ("price", "Price_Cents"),
            ("color", "colour"),
            ("trailing_", "trailing"),
            ("camelCase", "camel_case"),
            ("secret", "secret"),
        ]
    );
    let renamed: Vec<_> = Renamed::FIELDS.iter().map(|f| f.column).collect();
    assert_eq!(renamed, ["id", "firstName", "LAST"]);

    assert_eq!(Item::field_for_column("Price_Cents").map(|f| f.name), Some("price"));
    assert_eq!(Item::field_for_column_at(2, "type").map(|f| f.name), Some("type"));
    // A wrong position hint still finds the field by name.
    assert_eq!(Item::field_for_column_at(0, "secret").map(|f| f.name), Some("secret"));
    assert_eq!(Item::field_for_column_at(99, "title").map(|f| f.name), Some("title"));
    assert!(Item::field_for_column("cached").is_none());
    assert!(Item::field_for_column("children").is_none());

    let before = Item {
        id: 1,
        title: "a".into(),
        cached: Unrecordable,
        r#type: "t".into(),
        price: 1,
        color: "red".into(),
        trailing_: 0,
        camelCase: 0,
        children: HasMany(PhantomData),
        owner: BelongsTo(PhantomData),
        scratch: Unrecordable,
        secret: "s".into(),
    };
    let after = Item {
        title: "b".into(),
        r#type: "u".into(),
        secret: "s2".into(),
        ..before.clone()
    };
    let fields: Vec<_> = activity_core::diff(&before, &after)
        .into_iter()
        .map(|c| (c.field.unwrap_or_default(), c.after))
        .collect();
    assert_eq!(
        fields,
        [
            ("title".to_owned(), serde_json::json!("b")),
            ("type".to_owned(), serde_json::json!("u")),
            ("secret".to_owned(), serde_json::json!("masked")),
        ]
    );
    let mut snapshot = Vec::new();
    after.activity_snapshot(ChangeAction::Created, &mut snapshot);
    assert_eq!(snapshot.len(), 7);
    assert_eq!(after.activity_name().as_deref(), Some("b"));
}
