//! `activity_outbox`, the table of the [outbox](crate::outbox): one row per batch of entries
//! written, deleted once relayed; and `activity_dead_letter`, the entries a relay gave up on.

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

/// `activity_dead_letter`: entries a relay could not publish after its bounded attempts (the
/// broker refused them), kept by id with the reason, so the relay goes on with the rest and
/// an operator can [`requeue`](crate::outbox::requeue_dead_letters) them once the cause is fixed.
/// Ids and the broker's reason only: the entry itself stays in `activity_log`, under its rules.
pub mod activity_dead_letter {
    use sea_orm::entity::prelude::*;

    /// One entry the relay gave up on.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "activity_dead_letter")]
    pub struct Model {
        /// The entry's id in `activity_log`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub entry_id: Uuid,
        /// When the relay gave up (the relay's clock).
        pub created_at: DateTimeUtc,
        /// Attempts the broker refused.
        pub attempts: i32,
        /// The broker's last answer.
        #[sea_orm(column_type = "Text")]
        pub reason: String,
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
    create_dead_letter_table(db).await
}

/// Create `activity_dead_letter` if it does not exist.
async fn create_dead_letter_table<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    use activity_dead_letter::{Column, Entity};
    let backend = db.get_database_backend();
    let mut created_at = ColumnDef::new(Column::CreatedAt);
    match backend {
        DbBackend::MySql => created_at.custom(sea_orm::sea_query::Alias::new("datetime(6)")),
        _ => created_at.timestamp_with_time_zone(),
    };
    let mut table = Table::create();
    table
        .table(Entity)
        .if_not_exists()
        .col(
            ColumnDef::new(Column::EntryId)
                .uuid()
                .not_null()
                .primary_key(),
        )
        .col(created_at.not_null())
        .col(ColumnDef::new(Column::Attempts).integer().not_null())
        .col(ColumnDef::new(Column::Reason).text().not_null());
    db.execute(&table).await?;
    Ok(())
}

/// Drop `activity_outbox` (tests and tear-down).
pub(crate) async fn drop_table<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    db.execute(Table::drop().table(activity_outbox::Entity).if_exists())
        .await?;
    db.execute(
        Table::drop()
            .table(activity_dead_letter::Entity)
            .if_exists(),
    )
    .await?;
    Ok(())
}
