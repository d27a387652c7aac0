//! An entity crate in the shape sea-orm-cli 2.0 generates (dense `#[sea_orm::model]` entities
//! with relations), with `#[derive(ModelActivity)]` and `activity_hooks!()`. It depends on
//! `activity-seaorm` with `default-features = false` and on `sea-orm` without a runtime or
//! driver: the application crate that uses these entities picks both.

/// Authors: one has many posts.
pub mod author {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "author")]
    #[activity(scope = "Author", name = name)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        #[activity(mask)]
        pub email: String,
        #[sea_orm(has_many)]
        pub posts: HasMany<super::post::Entity>,
    }

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        activity_seaorm::activity_hooks!();
    }
}

/// Posts: each belongs to an author.
pub mod post {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "post")]
    #[activity(scope = "Post", name = title)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub author_id: i32,
        pub title: String,
        #[sea_orm(belongs_to, from = "author_id", to = "id")]
        pub author: BelongsTo<super::author::Entity>,
    }

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        activity_seaorm::activity_hooks!();
    }
}
