pub use sea_orm_migration::prelude::*;

mod m20250101_000001_create_tables;
mod m20250301_000001_seed;

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    /// Applied in this order (and rolled back in reverse): `sea-orm-migration` never sorts by
    /// name, so the library's migrations go where their table is first needed, whatever their
    /// dates say.
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20250101_000001_create_tables::Migration),
            // The activity log's table, before any migration that writes logged models: the
            // seed below saves projects and flags, and their hooks write entries.
            Box::new(activity_seaorm::schema::migration::Migration),
            Box::new(activity_seaorm::schema::migration::WidenIdentifiers),
            Box::new(m20250301_000001_seed::Migration),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use activity_seaorm::activity_log;
    use sea_orm::{Database, EntityTrait, PaginatorTrait};

    /// The order the README warns against: the seed before the log's table.
    struct SeedFirst;

    #[async_trait::async_trait]
    impl MigratorTrait for SeedFirst {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![
                Box::new(m20250101_000001_create_tables::Migration),
                Box::new(m20250301_000001_seed::Migration),
                Box::new(activity_seaorm::schema::migration::Migration),
            ]
        }
    }

    #[tokio::test]
    async fn the_seed_fails_without_the_log_table() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        let err = SeedFirst::up(&db, None).await.unwrap_err();
        assert!(err.to_string().contains("activity_log"), "{err}");
    }

    #[tokio::test]
    async fn the_seed_is_logged_and_rolls_back_with_the_log_still_there() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        assert_eq!(activity_log::Entity::find().count(&db).await.unwrap(), 3);
        // Down in reverse: the seed's `down` deletes (and logs deleting) its models while the
        // log's table still exists; then everything is applied again.
        Migrator::down(&db, Some(1)).await.unwrap();
        assert_eq!(activity_log::Entity::find().count(&db).await.unwrap(), 6);
        Migrator::refresh(&db).await.unwrap();
        assert_eq!(activity_log::Entity::find().count(&db).await.unwrap(), 3);
    }

    /// An application that adopts the log later lists its migration in the same place, before
    /// migrations it already applied: `sea-orm-migration` tracks what ran by name, not by
    /// position, so the new ones run on the next `up`.
    #[tokio::test]
    async fn a_migration_listed_before_applied_ones_still_runs() {
        struct Noop;
        impl MigrationName for Noop {
            fn name(&self) -> &str {
                "m20250201_000001_noop"
            }
        }
        #[async_trait::async_trait]
        impl MigrationTrait for Noop {
            async fn up(&self, _: &SchemaManager) -> Result<(), DbErr> {
                Ok(())
            }
        }
        struct Before;
        #[async_trait::async_trait]
        impl MigratorTrait for Before {
            fn migrations() -> Vec<Box<dyn MigrationTrait>> {
                vec![
                    Box::new(m20250101_000001_create_tables::Migration),
                    Box::new(Noop),
                ]
            }
        }
        struct After;
        #[async_trait::async_trait]
        impl MigratorTrait for After {
            fn migrations() -> Vec<Box<dyn MigrationTrait>> {
                vec![
                    Box::new(m20250101_000001_create_tables::Migration),
                    Box::new(activity_seaorm::schema::migration::Migration),
                    Box::new(activity_seaorm::schema::migration::WidenIdentifiers),
                    Box::new(Noop),
                ]
            }
        }
        let db = Database::connect("sqlite::memory:").await.unwrap();
        Before::up(&db, None).await.unwrap();
        assert_eq!(After::get_pending_migrations(&db).await.unwrap().len(), 2);
        After::up(&db, None).await.unwrap();
        assert_eq!(activity_log::Entity::find().count(&db).await.unwrap(), 0);
        assert!(After::get_pending_migrations(&db).await.unwrap().is_empty());
    }
}
