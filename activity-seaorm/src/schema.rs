//! Creating `activity_log` and its indexes, idempotently, on SQLite, PostgreSQL and MySQL.

use sea_orm::sea_query::{
    ColumnDef, ConditionalStatement, Index, IndexCreateStatement, IndexOrder, Table,
};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, DbErr, Iden, Statement};

use crate::entity::activity_log::{Column, Entity};

/// Create `activity_log` and its indexes if they do not exist. Safe to call at every start-up.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), sea_orm::DbErr> {
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// activity_seaorm::schema::create_table(&db).await?;
/// activity_seaorm::schema::create_table(&db).await?; // idempotent
/// # Ok(()) }
/// ```
pub async fn create_table<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let mut table = Table::create();
    table
        .table(Entity)
        .if_not_exists()
        .col(ColumnDef::new(Column::Id).uuid().not_null().primary_key())
        .col(created_at_column(backend))
        .col(ColumnDef::new(Column::OrganizationId).string_len(64))
        .col(ColumnDef::new(Column::TeamId).string_len(64))
        .col(ColumnDef::new(Column::UserId).string_len(64))
        .col(ColumnDef::new(Column::UserName).string_len(255))
        .col(ColumnDef::new(Column::ImpersonatedBy).string_len(64))
        .col(
            ColumnDef::new(Column::WasImpersonated)
                .boolean()
                .not_null()
                .default(false),
        )
        .col(
            ColumnDef::new(Column::IsSystem)
                .boolean()
                .not_null()
                .default(false),
        )
        .col(ColumnDef::new(Column::Scope).string_len(79).not_null())
        .col(ColumnDef::new(Column::ItemId).string_len(72))
        .col(ColumnDef::new(Column::Activity).string_len(79).not_null())
        .col(ColumnDef::new(Column::Detail).json_binary().not_null())
        .col(ColumnDef::new(Column::RequestId).string_len(128))
        .col(ColumnDef::new(Column::CorrelationId).string_len(64))
        .col(ColumnDef::new(Column::IpAddress).string_len(64))
        .col(ColumnDef::new(Column::UserAgent).string_len(512))
        .col(ColumnDef::new(Column::Client).string_len(128));
    if backend == DbBackend::MySql {
        // Ids and scopes compare byte for byte, as on the other backends: under the server's
        // default `utf8mb4_general_ci`, `team_id = 'acme'` would also match `ACME` and `acme `,
        // a read across tenants. Text search lower-cases both sides itself.
        table
            .character_set("utf8mb4")
            .collate(mysql_exact_collation(db).await?);
        // MySQL has no `CREATE INDEX IF NOT EXISTS`: declare the indexes with the table.
        for mut index in indexes(backend) {
            table.index(&mut index);
        }
    }
    db.execute(&table).await?;
    match backend {
        DbBackend::MySql => {}
        _ => {
            for mut index in indexes(backend) {
                db.execute(index.if_not_exists()).await?;
            }
        }
    }
    if backend == DbBackend::Postgres {
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS activity_log_detail_gin \
             ON activity_log USING GIN (detail jsonb_path_ops)",
        )
        .await?;
    }
    Ok(())
}

/// A binary collation without trailing-space padding: `utf8mb4_bin` pads, so `'acme'` would
/// still equal `'acme '`. MariaDB has `utf8mb4_nopad_bin`, MySQL 8 `utf8mb4_0900_bin`.
async fn mysql_exact_collation<C: ConnectionTrait>(db: &C) -> Result<String, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::MySql,
            "SELECT COLLATION_NAME AS name FROM information_schema.COLLATIONS \
             WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin') \
             ORDER BY COLLATION_NAME DESC LIMIT 1",
        ))
        .await?;
    match row {
        Some(row) => row.try_get("", "name"),
        None => {
            tracing::warn!(
                "no NO PAD binary collation on this server: ids differing only by trailing \
                 spaces compare equal"
            );
            Ok("utf8mb4_bin".to_owned())
        }
    }
}

/// Drop `activity_log` (tests and tear-down).
pub async fn drop_table<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    db.execute(Table::drop().table(Entity).if_exists()).await?;
    Ok(())
}

fn created_at_column(backend: DbBackend) -> ColumnDef {
    let mut col = ColumnDef::new(Column::CreatedAt);
    match backend {
        // Microseconds, no 2038 limit; values are always UTC.
        DbBackend::MySql => col.custom(Alias("datetime(6)")),
        _ => col.timestamp_with_time_zone(),
    };
    col.not_null();
    col
}

struct Alias(&'static str);

impl Iden for Alias {
    fn unquoted(&self) -> &str {
        self.0
    }
}

/// The indexes of DESIGN §3. Where the backend allows, the organization, user and correlation
/// indexes are partial (`IS NOT NULL`): system entries and tenants without an organization cost
/// no index space there.
fn indexes(backend: DbBackend) -> Vec<IndexCreateStatement> {
    let desc = |name: &str| {
        let mut i = Index::create();
        i.name(name).table(Entity);
        i
    };
    let mut item = desc("activity_log_item");
    item.col(Column::TeamId)
        .col(Column::Scope)
        .col(Column::ItemId)
        .col((Column::CreatedAt, IndexOrder::Desc))
        .col((Column::Id, IndexOrder::Desc));
    let mut org = desc("activity_log_org_feed");
    org.col(Column::OrganizationId)
        .col((Column::CreatedAt, IndexOrder::Desc))
        .col((Column::Id, IndexOrder::Desc));
    let mut team = desc("activity_log_team_feed");
    team.col(Column::TeamId)
        .col((Column::CreatedAt, IndexOrder::Desc))
        .col((Column::Id, IndexOrder::Desc));
    let mut user = desc("activity_log_user");
    user.col(Column::UserId)
        .col((Column::CreatedAt, IndexOrder::Desc));
    let mut correlation = desc("activity_log_correlation");
    correlation.col(Column::CorrelationId);
    if backend != DbBackend::MySql {
        org.and_where(Column::OrganizationId.is_not_null());
        user.and_where(Column::UserId.is_not_null());
        correlation.and_where(Column::CorrelationId.is_not_null());
    }
    vec![item, org, team, user, correlation]
}

/// A `sea-orm-migration` migration that creates the table, for applications using migrations.
#[cfg(feature = "migration")]
pub mod migration {
    use sea_orm_migration::prelude::*;

    /// Creates `activity_log` (idempotent) and drops it on `down`.
    #[derive(Debug, Default)]
    pub struct Migration;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m20261101_000001_create_activity_log"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            super::create_table(manager.get_connection()).await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            super::drop_table(manager.get_connection()).await
        }
    }
}
