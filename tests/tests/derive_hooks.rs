//! `#[activity(hooks)]`: the derive writes `impl ActiveModelBehavior for ActiveModel` with the
//! library's hooks, for a model with no hook bodies of its own; inserts, updates and deletes
//! are logged as with `activity_hooks!()`, on every backend.

use activity_seaorm::prelude::*;
use activity_tests::{TestDb, backend_tests, create_entity_table};
use sea_orm::{ActiveModelTrait, ModelTrait, Set};

mod memo {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "memo")]
    #[activity(scope = "Memo", name = title, hooks)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub title: String,
        #[activity(mask)]
        pub body: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    // No `impl ActiveModelBehavior for ActiveModel`: the derive wrote it.
}

async fn the_derive_writes_the_behavior(t: &TestDb) {
    create_entity_table(&t.db, memo::Entity).await;
    ActivityContext::scope(ActivityContext::for_user(Actor::new("u1")), async {
        let created = memo::ActiveModel {
            title: Set("plan".into()),
            body: Set("secret".into()),
            ..Default::default()
        }
        .insert(&t.db)
        .await
        .unwrap();
        let mut am: memo::ActiveModel = created.clone().into();
        am.body = Set("another secret".into());
        let updated = am.update(&t.db).await.unwrap();
        updated.delete(&t.db).await.unwrap();
    })
    .await;
    let entries = t.entries().await;
    let seen: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.scope.as_str(), e.activity.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("Memo", "created"),
            ("Memo", "updated"),
            ("Memo", "deleted")
        ]
    );
    assert!(entries.iter().all(|e| e.user_id.as_deref() == Some("u1")));
    assert_eq!(entries[1].detail.changes[0].after, "masked");
    assert_eq!(entries[0].detail.name.as_deref(), Some("plan"));
}

backend_tests!(the_derive_writes_the_behavior);
