//! Creating `activity_log` and its indexes, idempotently, on SQLite, PostgreSQL and MySQL, and
//! widening the text columns of tables created by earlier versions.
//!
//! The widths come from [`COLUMN_CAPS`], the table the writer also checks values against:
//! identifiers (`organization_id`, `team_id`, `user_id`, `impersonated_by`, `item_id`,
//! `correlation_id`) are `varchar(255)`, stored exactly up to 255 characters and refused beyond
//! ([`IdentifierTooLong`](crate::failure::IdentifierTooLong)); descriptive text is cut to its column.
//!
//! **Upgrading.** Versions before the caps table created the identifier columns narrower
//! (`varchar(64)`, `item_id varchar(72)`), so a longer OIDC subject or string key failed every
//! logged write on PostgreSQL and MySQL. [`create_table`] runs [`upgrade`] after its
//! `CREATE TABLE IF NOT EXISTS`, and `migration::WidenIdentifiers` (feature `migration`) does the same for
//! applications whose `create_activity_log` migration already ran: each widens only the columns
//! narrower than their cap (`ALTER COLUMN .. TYPE varchar(n)` on PostgreSQL, `MODIFY COLUMN`
//! keeping the column's character set, collation and nullability on MySQL; SQLite does not
//! enforce widths and needs nothing). Widening never rewrites a PostgreSQL table; on MySQL it
//! may copy the table, once.

pub mod guard;
pub mod outbox;
pub mod table;

pub use table::activity_log;

use sea_orm::sea_query::{
    ColumnDef, ConditionalStatement, Index, IndexCreateStatement, IndexOrder, Table,
};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, DbErr, Iden, IdenStatic, Statement};

use crate::schema::table::activity_log::{Column, Entity};
use crate::schema::table::{COLUMN_CAPS, CapKind, column_cap};

/// Create `activity_log` and its indexes if they do not exist, and [`upgrade`] a table an
/// earlier version created; also the (small, usually empty) `activity_outbox` of the
/// [`outbox`](crate::outbox). Safe to call at every start-up.
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
        .col(text(Column::OrganizationId))
        .col(text(Column::TeamId))
        .col(text(Column::UserId))
        .col(text(Column::UserName))
        .col(text(Column::ImpersonatedBy))
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
        .col(text(Column::Scope).not_null())
        .col(text(Column::ItemId))
        .col(text(Column::Activity).not_null())
        .col(ColumnDef::new(Column::Detail).json_binary().not_null())
        .col(text(Column::RequestId))
        .col(text(Column::CorrelationId))
        .col(text(Column::IpAddress))
        .col(text(Column::UserAgent))
        .col(text(Column::Client));
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
    upgrade(db).await?;
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
    crate::schema::outbox::create_table(db).await?;
    Ok(())
}

/// A text column at its width in [`COLUMN_CAPS`].
fn text(column: Column) -> ColumnDef {
    let mut def = ColumnDef::new(column);
    match column_cap(column) {
        Some(cap) => def.string_len(u32::try_from(cap.max_chars).unwrap_or(u32::MAX)),
        None => def.string(),
    };
    def
}

/// Widen the text columns of an existing `activity_log` that are narrower than
/// [`COLUMN_CAPS`] (tables created by earlier versions), on MySQL give identifier columns
/// without the exact collation ([`mysql_exact_collation`]) that collation (tables created
/// before it: their ids compared case-insensitively), and return the columns' names. Idempotent:
/// it reads the current widths first and alters only what is narrower, so an up-to-date table
/// costs one catalogue query and no lock. No table yet: nothing to do.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), sea_orm::DbErr> {
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// activity_seaorm::schema::create_table(&db).await?;
/// assert!(activity_seaorm::schema::upgrade(&db).await?.is_empty());
/// # Ok(()) }
/// ```
pub async fn upgrade<C: ConnectionTrait>(db: &C) -> Result<Vec<&'static str>, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        // `varchar(n)` is not enforced: every value is stored exactly already.
        DbBackend::Sqlite => return Ok(Vec::new()),
        DbBackend::Postgres => {
            "SELECT column_name::text AS name, character_maximum_length::int8 AS width, \
             '' AS charset, '' AS collation, is_nullable::text AS nullable \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = 'activity_log' \
             AND character_maximum_length IS NOT NULL"
        }
        _ => {
            "SELECT COLUMN_NAME AS name, CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED) AS width, \
             CHARACTER_SET_NAME AS charset, COLLATION_NAME AS collation, \
             IS_NULLABLE AS nullable \
             FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'activity_log' \
             AND CHARACTER_MAXIMUM_LENGTH IS NOT NULL"
        }
    };
    let rows = db
        .query_all_raw(Statement::from_string(backend, sql))
        .await?;
    // MySQL: identifiers compare byte for byte only under the exact collation, which tables
    // created before it was introduced lack (`team_id = 'ACME'` then finds `acme`).
    let exact = match backend {
        DbBackend::MySql if !rows.is_empty() => Some(mysql_exact_collation(db).await?),
        _ => None,
    };
    let mut changes = Vec::new();
    let mut widened = Vec::new();
    for row in rows {
        let name: String = row.try_get("", "name")?;
        let width: i64 = row.try_get("", "width")?;
        let Some(cap) = COLUMN_CAPS.iter().find(|c| c.column.as_str() == name) else {
            continue;
        };
        let current = usize::try_from(width).unwrap_or(0);
        let narrow = current < cap.max_chars;
        let mut charset: Option<String> = row.try_get("", "charset")?;
        let mut collation: Option<String> = row.try_get("", "collation")?;
        let loose = cap.kind == CapKind::Identifier
            && exact.is_some()
            && collation.as_deref() != exact.as_deref();
        if !narrow && !loose {
            continue;
        }
        if loose {
            charset = Some("utf8mb4".to_owned());
            collation = exact.clone();
        }
        let column = cap.column.as_str();
        let max = cap.max_chars.max(current);
        changes.push(match backend {
            DbBackend::Postgres => format!("ALTER COLUMN \"{column}\" TYPE varchar({max})"),
            _ => {
                let nullable: String = row.try_get("", "nullable")?;
                let mut change = format!("MODIFY COLUMN `{column}` varchar({max})");
                if let Some(charset) = charset {
                    change.push_str(&format!(" CHARACTER SET {charset}"));
                }
                if let Some(collation) = collation {
                    change.push_str(&format!(" COLLATE {collation}"));
                }
                change.push_str(if nullable == "NO" {
                    " NOT NULL"
                } else {
                    " NULL"
                });
                change
            }
        });
        widened.push(column);
    }
    if changes.is_empty() {
        return Ok(widened);
    }
    let table = match backend {
        DbBackend::Postgres => "\"activity_log\"",
        _ => "`activity_log`",
    };
    db.execute_unprepared(&format!("ALTER TABLE {table} {}", changes.join(", ")))
        .await?;
    tracing::info!(columns = ?widened, "activity_log: upgraded columns (widths, MySQL collation)");
    Ok(widened)
}

/// MySQL/MariaDB: the collation under which text compares byte for byte, as on the other
/// backends — for any table holding tenant, user or item ids (the library's own use it). Under
/// the server's default (`utf8mb4_general_ci`) `'acme'` equals `'ACME'` and `'acme '`: a read
/// across tenants. A binary collation without trailing-space padding: `utf8mb4_bin` pads, so
/// `'acme'` would still equal `'acme '`. MariaDB has `utf8mb4_nopad_bin`, MySQL 8
/// `utf8mb4_0900_bin`; a server with neither gets `utf8mb4_bin` and a warning.
pub async fn mysql_exact_collation<C: ConnectionTrait>(db: &C) -> Result<String, DbErr> {
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
    crate::schema::outbox::drop_table(db).await?;
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

    /// Creates `activity_log` (idempotent, widening an older table's columns) and drops it on
    /// `down`.
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

    /// Creates `activity_outbox` (see [`outbox`](crate::outbox)) for applications whose
    /// [`Migration`] ran before the outbox existed; on a database [`Migration`] just set up it
    /// changes nothing. List it after [`Migration`].
    #[derive(Debug, Default)]
    pub struct CreateOutbox;

    impl MigrationName for CreateOutbox {
        fn name(&self) -> &str {
            "m20261202_000001_create_activity_outbox"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for CreateOutbox {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            crate::schema::outbox::create_table(manager.get_connection()).await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            crate::schema::outbox::drop_table(manager.get_connection()).await
        }
    }

    /// Widens the identifier columns of a table an earlier version created (see
    /// [`upgrade`](super::upgrade)), for applications whose [`Migration`] already ran. List it
    /// after [`Migration`]; on a table [`Migration`] just created it changes nothing. `down`
    /// keeps the wide columns: narrowing would fail on, or cut, the longer ids stored since.
    #[derive(Debug, Default)]
    pub struct WidenIdentifiers;

    impl MigrationName for WidenIdentifiers {
        fn name(&self) -> &str {
            "m20261201_000001_widen_activity_log_identifiers"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for WidenIdentifiers {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            super::upgrade(manager.get_connection()).await.map(drop)
        }

        async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
            Ok(())
        }
    }
}
