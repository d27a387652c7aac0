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
