//! Models shared by the example programs.

/// The feature flag of the README: every attribute of the derive in one model.
pub mod feature_flag {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    /// A feature flag of a team.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "feature_flag")]
    #[activity(scope = "FeatureFlag", name = key, team = team_id)]
    pub struct Model {
        /// Primary key.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// Owning team.
        pub team_id: i64,
        /// Flag key.
        pub key: String,
        /// Whether the flag is on (shown as `enabled`).
        #[activity(rename = "enabled")]
        pub active: bool,
        /// Rollout filters.
        pub filters: Json,
        /// Secret for the change webhook: never logged.
        #[activity(mask)]
        pub webhook_secret: String,
        /// Derived counter: not worth logging.
        #[activity(exclude)]
        pub cached_count: i32,
        /// Touched on every read: a change of only this writes nothing.
        #[activity(signal_exclude)]
        pub last_accessed_at: Option<DateTimeUtc>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        activity_seaorm::activity_hooks!();
    }
}

/// A dashboard: the second model of the axum service.
pub mod dashboard {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    /// A dashboard of a team.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "dashboard")]
    #[activity(scope = "Dashboard", name = name, team = team_id)]
    pub struct Model {
        /// Primary key.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// Owning team.
        pub team_id: i64,
        /// Title.
        pub name: String,
        /// Whether it is pinned to the team's home.
        pub pinned: bool,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        activity_seaorm::activity_hooks!();
    }
}

pub mod bench;
pub mod service;

/// Create the example tables (and `activity_log`) if they do not exist.
pub async fn create_tables(db: &sea_orm::DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    use sea_orm::{ConnectionTrait, Schema};
    activity_seaorm::schema::create_table(db).await?;
    let schema = Schema::new(db.get_database_backend());
    db.execute(
        schema
            .create_table_from_entity(feature_flag::Entity)
            .if_not_exists(),
    )
    .await?;
    db.execute(
        schema
            .create_table_from_entity(dashboard::Entity)
            .if_not_exists(),
    )
    .await?;
    Ok(())
}
