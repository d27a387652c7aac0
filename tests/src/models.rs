//! Models used by the integration tests, each with `ModelActivity` and `activity_hooks!()`.

use sea_orm::DatabaseConnection;

/// The feature-flag model of the README's tour, plus a `mask_keys` JSON field and an optional description.
pub mod feature_flag {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "feature_flag")]
    #[activity(scope = "FeatureFlag", name = key, team = team_id)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub team_id: i64,
        pub key: String,
        #[activity(rename = "enabled")]
        pub active: bool,
        pub filters: Json,
        #[activity(mask)]
        pub webhook_secret: String,
        #[activity(mask_keys)]
        pub config: Json,
        pub description: Option<String>,
        #[activity(exclude)]
        pub cached_count: i32,
        #[activity(signal_exclude)]
        pub last_accessed_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        activity_seaorm::activity_hooks!();
    }
}

/// A composite primary key.
pub mod membership {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "membership")]
    #[activity(scope = "Membership", organization = org_id)]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: i32,
        pub role: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        activity_seaorm::activity_hooks!();
    }
}

/// A UUID primary key, with a snapshot of fields on create and delete.
pub mod document {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "document")]
    #[activity(scope = "Document", name = title, snapshot)]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub title: String,
        pub words: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        activity_seaorm::activity_hooks!();
    }
}

/// A string primary key.
pub mod setting {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "setting")]
    #[activity(scope = "Setting", name = key)]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub value: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        activity_seaorm::activity_hooks!();
    }
}

pub async fn create_tables(db: &DatabaseConnection) {
    crate::create_entity_table(db, feature_flag::Entity).await;
    crate::create_entity_table(db, membership::Entity).await;
    crate::create_entity_table(db, document::Entity).await;
    crate::create_entity_table(db, setting::Entity).await;
}

/// Every tracked field masked, the display name and short id included, with snapshots: the
/// security tests' worst case for leaks. Not created by [`create_tables`]: tests that use it
/// create it with [`crate::create_entity_table`].
pub mod vault {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "vault")]
    #[activity(scope = "Vault", name = label, short_id = token, team = team_id, snapshot)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub team_id: i64,
        #[activity(mask)]
        pub label: String,
        #[activity(mask)]
        pub token: String,
        #[activity(mask_keys)]
        pub creds: Json,
        #[activity(mask)]
        pub note: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        activity_seaorm::activity_hooks!();
    }
}

/// A note whose own `before_save` (after the library's) lets "another writer" change the row's
/// `body` when [`racy::INTERLEAVE`] is set: the moment between the hook's read and SeaORM's
/// UPDATE, made deterministic. Not created by [`create_tables`].
pub mod racy {
    use std::sync::atomic::{AtomicBool, Ordering};

    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    /// Set: the next save of a note first lets another writer set its `body` to `"bob's"`.
    pub static INTERLEAVE: AtomicBool = AtomicBool::new(false);

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "racy_note")]
    #[activity(scope = "Note", name = title, team = team_id)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub team_id: i64,
        pub title: String,
        pub body: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        async fn before_save<C: ConnectionTrait>(
            self,
            db: &C,
            insert: bool,
        ) -> Result<Self, DbErr> {
            let this = activity_seaorm::hooks::before_save(self, db, insert).await?;
            if INTERLEAVE.swap(false, Ordering::SeqCst)
                && let sea_orm::ActiveValue::Unchanged(id) | sea_orm::ActiveValue::Set(id) =
                    this.id.clone()
            {
                // Another writer, its own statement (autocommit on a pool).
                let sql = format!("UPDATE racy_note SET body = 'bob''s' WHERE id = {id}");
                db.execute_unprepared(&sql).await?;
            }
            Ok(this)
        }
        async fn after_save<C: ConnectionTrait>(
            model: Model,
            db: &C,
            insert: bool,
        ) -> Result<Model, DbErr> {
            activity_seaorm::hooks::after_save(model, db, insert).await
        }
        async fn before_delete<C: ConnectionTrait>(self, db: &C) -> Result<Self, DbErr> {
            activity_seaorm::hooks::before_delete(self, db).await
        }
        async fn after_delete<C: ConnectionTrait>(self, db: &C) -> Result<Self, DbErr> {
            activity_seaorm::hooks::after_delete(self, db).await
        }
    }
}
