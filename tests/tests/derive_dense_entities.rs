//! SeaORM 2.0's dense entity format (`#[sea_orm::model]`, what sea-orm-cli 2.0 generates):
//! the attribute copies `#[derive(ModelActivity)]` onto the generated `ModelEx`, whose relation
//! fields (`HasOne`, `HasMany`, `BelongsTo`, self-references included) are not columns. Both
//! derives compile, describe and diff only columns, and pair with SeaORM's `Column`s by name.
//! A regular-format entity with every column-naming rule checks the names the derive computes
//! against the ones SeaORM uses.

use activity_seaorm::ActivityEntry;
use activity_seaorm::diff::FieldSpec;
use activity_seaorm::prelude::*;
use activity_tests::{TestDb, backend_tests, create_entity_table};
use sea_orm::entity::prelude::HasMany;
use sea_orm::{ActiveModelTrait, EntityTrait, IdenStatic, IntoActiveModel, Iterable, NotSet, Set};
use serde_json::json;

mod user {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "dense_user")]
    #[activity(scope = "DenseUser", name = name)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        /// Not a column, between two columns: positions would go wrong from here on.
        #[sea_orm(ignore)]
        pub login_count: i32,
        #[sea_orm(unique)]
        pub email: String,
        #[activity(mask)]
        pub api_key: String,
        pub r#type: String,
        #[sea_orm(has_one)]
        pub profile: HasOne<super::profile::Entity>,
        #[sea_orm(has_many)]
        pub posts: HasMany<super::post::Entity>,
    }

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        activity_seaorm::activity_hooks!();
    }
}

mod profile {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "dense_profile")]
    #[activity(scope = "DenseProfile")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub user_id: i32,
        pub bio: String,
        #[sea_orm(belongs_to, from = "user_id", to = "id")]
        pub user: BelongsTo<super::user::Entity>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

mod post {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "dense_post")]
    #[activity(scope = "DensePost", name = title)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub user_id: i32,
        pub title: String,
        #[sea_orm(belongs_to, from = "user_id", to = "id")]
        pub author: BelongsTo<super::user::Entity>,
        #[sea_orm(has_many, via = "post_tag")]
        pub tags: HasMany<super::tag::Entity>,
    }

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        activity_seaorm::activity_hooks!();
    }
}

mod tag {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "dense_tag")]
    #[activity(scope = "DenseTag", name = label)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub label: String,
        #[sea_orm(has_many, via = "post_tag")]
        pub posts: HasMany<super::post::Entity>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

mod post_tag {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "dense_post_tag")]
    #[activity(scope = "DensePostTag")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub post_id: i32,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tag_id: i32,
        #[sea_orm(belongs_to, from = "post_id", to = "id")]
        pub post: BelongsTo<super::post::Entity>,
        #[sea_orm(belongs_to, from = "tag_id", to = "id")]
        pub tag: BelongsTo<super::tag::Entity>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Self-references both ways: `BelongsTo<Option<Entity>>` and `HasMany<Entity>`.
mod staff {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "dense_staff")]
    #[activity(scope = "DenseStaff", name = name)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        pub reports_to_id: Option<i32>,
        #[sea_orm(
            self_ref,
            relation_enum = "ReportsTo",
            relation_reverse = "Manages",
            from = "reports_to_id",
            to = "id"
        )]
        pub reports_to: BelongsTo<Option<Entity>>,
        #[sea_orm(self_ref, relation_enum = "Manages", relation_reverse = "ReportsTo")]
        pub manages: HasMany<Entity>,
    }

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        activity_seaorm::activity_hooks!();
    }
}

/// The regular format with every column-naming rule of `DeriveEntityModel`.
#[allow(non_snake_case)]
mod naming {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "dense_naming")]
    #[activity(scope = "Naming")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub r#type: String,
        #[sea_orm(column_name = "Price_Cents")]
        pub price: i64,
        #[sea_orm(enum_name = "Colour")]
        pub color: String,
        pub trailing_: i32,
        pub camelCase: i32,
        pub with_2_digits: i32,
        #[sea_orm(ignore)]
        pub scratch: String,
        pub last: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `rename_all` on the struct.
mod renamed {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "dense_renamed", rename_all = "camelCase")]
    #[activity(scope = "Renamed")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub first_name: String,
        #[sea_orm(column_name = "LAST")]
        pub last_name: String,
        pub r#type: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn columns<E: EntityTrait>() -> Vec<&'static str> {
    E::Column::iter().map(|c| c.as_str()).collect()
}

fn field_columns(fields: &[FieldSpec]) -> Vec<&'static str> {
    fields.iter().map(|f| f.column).collect()
}

/// `FIELDS` lists exactly SeaORM's columns, in the same order, with the same names; every
/// column finds its field by name; `ModelEx` describes the same columns as `Model`.
fn assert_pairs<E>()
where
    E: EntityTrait,
    E::Model: ModelActivity,
{
    let fields = <E::Model as ModelActivity>::FIELDS;
    assert_eq!(field_columns(fields), columns::<E>());
    for (i, col) in E::Column::iter().enumerate() {
        let spec = <E::Model as ModelActivity>::field_for_column_at(i, col.as_str());
        assert_eq!(spec.map(|f| f.column), Some(col.as_str()));
        assert_eq!(
            <E::Model as ModelActivity>::field_for_column(col.as_str()),
            spec
        );
    }
}

#[test]
fn fields_pair_with_seaorm_columns_by_name() {
    assert_pairs::<user::Entity>();
    assert_pairs::<profile::Entity>();
    assert_pairs::<post::Entity>();
    assert_pairs::<tag::Entity>();
    assert_pairs::<post_tag::Entity>();
    assert_pairs::<staff::Entity>();
    assert_pairs::<naming::Entity>();
    assert_pairs::<renamed::Entity>();

    assert_eq!(
        columns::<user::Entity>(),
        ["id", "name", "email", "api_key", "type"]
    );
    assert_eq!(
        columns::<naming::Entity>(),
        [
            "id",
            "type",
            "Price_Cents",
            "colour",
            "trailing",
            "camel_case",
            "with_2_digits",
            "last"
        ]
    );
    assert_eq!(
        columns::<renamed::Entity>(),
        ["id", "firstName", "LAST", "type"]
    );
    assert_eq!(
        <user::Model as ModelActivity>::FIELDS,
        <user::ModelEx as ModelActivity>::FIELDS
    );
    assert_eq!(
        <staff::Model as ModelActivity>::FIELDS,
        <staff::ModelEx as ModelActivity>::FIELDS
    );
    assert_eq!(<user::ModelEx as ModelActivity>::SCOPE, "DenseUser");
}

fn alice(id: i32) -> user::Model {
    user::Model {
        id,
        name: "alice".into(),
        login_count: 0,
        email: "alice@example.invalid".into(),
        api_key: "key-1".into(),
        r#type: "admin".into(),
    }
}

fn fields_of(changes: &[Change]) -> Vec<&str> {
    changes.iter().filter_map(|c| c.field.as_deref()).collect()
}

#[test]
fn model_ex_diffs_only_columns() {
    let before = alice(1).into_ex();
    let mut after = before.clone();
    after.name = "alicia".into();
    after.login_count = 42;
    after.api_key = "key-2".into();
    after.posts = HasMany::Loaded(vec![
        post::Model {
            id: 9,
            user_id: 1,
            title: "hello".into(),
        }
        .into_ex(),
    ]);
    let changes = diff(&before, &after);
    assert_eq!(fields_of(&changes), ["name", "api_key"]);
    assert_eq!(changes[1].after, json!("masked"));
    // The same through `Model`.
    let changes = diff(&user::Model::from(before), &user::Model::from(after));
    assert_eq!(fields_of(&changes), ["name", "api_key"]);

    let boss = staff::Model {
        id: 1,
        name: "boss".into(),
        reports_to_id: None,
    }
    .into_ex();
    let mut moved = boss.clone();
    moved.reports_to_id = Some(2);
    moved.manages = HasMany::Loaded(vec![boss.clone()]);
    assert_eq!(fields_of(&diff(&boss, &moved)), ["reports_to_id"]);
}

fn entries_of<'a>(entries: &'a [ActivityEntry], scope: &str) -> Vec<&'a ActivityEntry> {
    entries.iter().filter(|e| e.scope == scope).collect()
}

async fn dense_entities_log_through_hooks(t: &TestDb) {
    let db = &t.db;
    create_entity_table(db, user::Entity).await;
    create_entity_table(db, profile::Entity).await;
    create_entity_table(db, post::Entity).await;
    create_entity_table(db, tag::Entity).await;
    create_entity_table(db, post_tag::Entity).await;
    create_entity_table(db, staff::Entity).await;

    let ctx = ActivityContext::for_user(Actor::new("u-1"));
    ActivityContext::scope(ctx, async {
        let user = user::ActiveModel {
            id: NotSet,
            name: Set("alice".into()),
            email: Set("alice@example.invalid".into()),
            api_key: Set("key-1".into()),
            r#type: Set("admin".into()),
        }
        .insert(db)
        .await
        .expect("insert user");
        let mut am = user.clone().into_active_model();
        am.name = Set("alicia".into());
        am.api_key = Set("key-2".into());
        am.update(db).await.expect("update user");

        let post = post::ActiveModel {
            id: NotSet,
            user_id: Set(user.id),
            title: Set("hello".into()),
        }
        .insert(db)
        .await
        .expect("insert post");
        let mut am = post.into_active_model();
        am.title = Set("hello, world".into());
        am.update(db).await.expect("update post");

        let boss = staff::ActiveModel {
            id: NotSet,
            name: Set("boss".into()),
            reports_to_id: Set(None),
        }
        .insert(db)
        .await
        .expect("insert boss");
        let report = staff::ActiveModel {
            id: NotSet,
            name: Set("report".into()),
            reports_to_id: Set(None),
        }
        .insert(db)
        .await
        .expect("insert report");
        let mut am = report.into_active_model();
        am.reports_to_id = Set(Some(boss.id));
        am.update(db).await.expect("update report");
    })
    .await;

    let entries = t.entries().await;
    let users = entries_of(&entries, "DenseUser");
    let verbs: Vec<_> = users.iter().map(|e| e.activity.as_str()).collect();
    assert_eq!(verbs, ["created", "updated"]);
    let updated = &users[1];
    assert_eq!(updated.detail.name.as_deref(), Some("alicia"));
    assert_eq!(fields_of(&updated.detail.changes), ["name", "api_key"]);
    assert_eq!(updated.detail.changes[1].before, json!("masked"));
    assert_eq!(updated.detail.changes[1].after, json!("masked"));
    assert!(!t.dump().await.contains("key-2"), "a masked value leaked");

    let posts = entries_of(&entries, "DensePost");
    let verbs: Vec<_> = posts.iter().map(|e| e.activity.as_str()).collect();
    assert_eq!(verbs, ["created", "updated"]);
    assert_eq!(fields_of(&posts[1].detail.changes), ["title"]);

    let staff = entries_of(&entries, "DenseStaff");
    let updated: Vec<_> = staff.iter().filter(|e| e.activity == "updated").collect();
    assert_eq!(updated.len(), 1);
    assert_eq!(fields_of(&updated[0].detail.changes), ["reports_to_id"]);
    assert_eq!(updated[0].detail.changes[0].after, json!(boss_id(&entries)));
}

/// The boss's id, from its `created` entry.
fn boss_id(entries: &[ActivityEntry]) -> i64 {
    entries
        .iter()
        .find(|e| e.scope == "DenseStaff" && e.detail.name.as_deref() == Some("boss"))
        .and_then(|e| e.item_id.as_deref())
        .and_then(|id| id.parse().ok())
        .expect("the boss's created entry")
}

backend_tests!(dense_entities_log_through_hooks);
