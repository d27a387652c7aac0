//! `activity_outbox`, the table of the [outbox](crate::outbox): one row per batch of entries
//! written, deleted once relayed.

use sea_orm::sea_query::{ColumnDef, Table};
use sea_orm::{ConnectionTrait, DbBackend, DbErr};

/// `activity_outbox`: one row per batch of entries written, deleted once relayed.
pub mod activity_outbox {
    use sea_orm::entity::prelude::*;

    /// One batch of committed entries not yet relayed.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "activity_outbox")]
    pub struct Model {
        /// Drawn at write time: the relay's order.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// When the entries were written (the system clock: the relay's lag is measured
        /// from it).
        pub created_at: DateTimeUtc,
        /// The entries' ids, comma-separated, in the order they were written.
        #[sea_orm(column_type = "Text")]
        pub entry_ids: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Create `activity_outbox` if it does not exist ([`schema::create_table`](crate::schema::create_table)
/// calls it).
pub(crate) async fn create_table<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    use activity_outbox::{Column, Entity};
    let backend = db.get_database_backend();
    let mut created_at = ColumnDef::new(Column::CreatedAt);
    match backend {
        DbBackend::MySql => created_at.custom(sea_orm::sea_query::Alias::new("datetime(6)")),
        _ => created_at.timestamp_with_time_zone(),
    };
    let mut entry_ids = ColumnDef::new(Column::EntryIds);
    match backend {
        DbBackend::MySql => entry_ids.custom(sea_orm::sea_query::Alias::new("mediumtext")),
        _ => entry_ids.text(),
    };
    let mut table = Table::create();
    table
        .table(Entity)
        .if_not_exists()
        .col(
            ColumnDef::new(Column::Id)
                .big_integer()
                .not_null()
                .auto_increment()
                .primary_key(),
        )
        .col(created_at.not_null())
        .col(entry_ids.not_null());
    db.execute(&table).await?;
    Ok(())
}

/// Drop `activity_outbox` (tests and tear-down).
pub(crate) async fn drop_table<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    db.execute(Table::drop().table(activity_outbox::Entity).if_exists())
        .await?;
    Ok(())
}
