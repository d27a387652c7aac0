//! `activity_block`, the sealed blocks of the [sealer](crate::ops::seal): one row per block,
//! the signed checkpoint itself plus the columns its reads look up by.

use sea_orm::sea_query::{ColumnDef, Index, Table};
use sea_orm::{ConnectionTrait, DbBackend, DbErr};

/// `activity_block`: one row per sealed block.
pub mod activity_block {
    use sea_orm::entity::prelude::*;

    /// One sealed block of one tenant's entries.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "activity_block")]
    pub struct Model {
        /// The tenant key (`o:<organization>`, `t:<team>`, or empty).
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        /// The block's number in its tenant's chain, from 1.
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        /// The time of the block's last entry.
        pub last_at: DateTimeUtc,
        /// The sealer's horizon when it made the block.
        pub sealed_through: DateTimeUtc,
        /// The signed checkpoint (JSON): header and signature.
        #[sea_orm(column_type = "Text")]
        pub checkpoint: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Create `activity_block` if it does not exist ([`schema::create_table`](crate::schema::create_table)
/// calls it). On MySQL the table takes `mysql_collation`, the exact one `activity_log` uses.
pub(crate) async fn create_table<C: ConnectionTrait>(
    db: &C,
    mysql_collation: Option<&str>,
) -> Result<(), DbErr> {
    use activity_block::{Column, Entity};
    let backend = db.get_database_backend();
    let time = |c: Column| {
        let mut def = ColumnDef::new(c);
        match backend {
            DbBackend::MySql => def.custom(sea_orm::sea_query::Alias::new("datetime(6)")),
            _ => def.timestamp_with_time_zone(),
        };
        def.not_null().take()
    };
    let mut table = Table::create();
    table
        .table(Entity)
        .if_not_exists()
        .col(ColumnDef::new(Column::Tenant).string_len(257).not_null())
        .col(ColumnDef::new(Column::Seq).big_integer().not_null())
        .col(time(Column::LastAt))
        .col(time(Column::SealedThrough))
        .col(ColumnDef::new(Column::Checkpoint).text().not_null())
        .primary_key(Index::create().col(Column::Tenant).col(Column::Seq));
    if let (DbBackend::MySql, Some(collation)) = (backend, mysql_collation) {
        // Tenant keys compare byte for byte, as in `activity_log`.
        table.character_set("utf8mb4").collate(collation);
    }
    db.execute(&table).await?;
    create_sealed_through_index(db).await
}

/// Every sealing round and every `verify` asks for the newest `sealed_through`; a table that
/// grows by a block per active tenant per round must answer from an index, not a scan.
/// Looked up before it is created, so a restart never waits for a lock on an existing table.
async fn create_sealed_through_index<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    const NAME: &str = "activity_block_sealed";
    let backend = db.get_database_backend();
    let exists = match backend {
        DbBackend::Postgres => {
            "SELECT 1 AS one FROM pg_indexes \
             WHERE schemaname = current_schema() AND indexname = $1"
        }
        DbBackend::MySql => {
            "SELECT 1 AS one FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'activity_block' AND INDEX_NAME = ?"
        }
        _ => "SELECT 1 AS one FROM sqlite_master WHERE type = 'index' AND name = ?",
    };
    let found = || async {
        db.query_one_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            exists,
            [NAME.into()],
        ))
        .await
        .map(|row| row.is_some())
    };
    if found().await? {
        return Ok(());
    }
    let create = match backend {
        DbBackend::MySql => format!("CREATE INDEX {NAME} ON activity_block (sealed_through)"),
        _ => format!("CREATE INDEX IF NOT EXISTS {NAME} ON activity_block (sealed_through)"),
    };
    match db.execute_unprepared(&create).await {
        Ok(_) => Ok(()),
        // Another instance starting at the same moment made it first.
        Err(_) if found().await? => Ok(()),
        Err(e) => Err(e),
    }
}

/// Drop `activity_block` (tests and tear-down).
pub(crate) async fn drop_table<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    db.execute(Table::drop().table(activity_block::Entity).if_exists())
        .await?;
    Ok(())
}
