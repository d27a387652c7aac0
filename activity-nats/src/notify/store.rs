//! Subscriptions, preferences and delivery marks, stored with SeaORM next to `activity_log`,
//! tenant-scoped like it. A tenant is a [`TenantKey`]: the entry's organization (`o:<id>`),
//! else its team (`t:<id>`); `""` is no tenant.

use sea_orm::sea_query::{Index, Value};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder, Schema,
    Statement,
};

use super::prefs::Preference;
use crate::subject::TenantKey;

/// `activity_subscription`: a user watching an item (and, with depth `descendants`, everything
/// under it).
pub mod activity_subscription {
    use sea_orm::entity::prelude::*;

    /// One subscription.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "activity_subscription")]
    pub struct Model {
        /// UUID v7.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// Tenant, a [`TenantKey`](crate::subject::TenantKey) (`""`: none).
        pub tenant: String,
        /// The subscriber.
        pub user_id: String,
        /// The watched item's scope.
        pub scope: String,
        /// The watched item's id.
        pub item_id: String,
        /// `resource` or `descendants`.
        pub depth: String,
        /// When it was created.
        pub created_at: DateTimeUtc,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `activity_notification_preference`: one row per user and tenant that chose something other
/// than the default.
pub mod activity_notification_preference {
    use sea_orm::entity::prelude::*;

    /// One user's preference in one tenant.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "activity_notification_preference")]
    pub struct Model {
        /// Tenant, a [`TenantKey`](crate::subject::TenantKey) (`""`: none).
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        /// The user.
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        /// `all`, `mutations` or `custom`.
        pub kind: String,
        /// The `custom` globs, newline-separated.
        #[sea_orm(column_type = "Text")]
        pub patterns: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `activity_notification_delivery`: which (entry, recipient) pairs were delivered, so a
/// redelivered message notifies nobody twice.
pub mod activity_notification_delivery {
    use sea_orm::entity::prelude::*;

    /// One delivered notification.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "activity_notification_delivery")]
    pub struct Model {
        /// The entry.
        #[sea_orm(primary_key, auto_increment = false)]
        pub entry_id: Uuid,
        /// The recipient.
        #[sea_orm(primary_key, auto_increment = false)]
        pub recipient: String,
        /// When.
        pub delivered_at: DateTimeUtc,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `activity_notification_dead_letter`: recipients the notifier gave up on for an entry, after
/// their channel failed on every one of its bounded attempts (a bounced address), with the last
/// error. The others were notified; an operator can see who was not, and why.
pub mod activity_notification_dead_letter {
    use sea_orm::entity::prelude::*;

    /// One recipient not notified of one entry.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "activity_notification_dead_letter")]
    pub struct Model {
        /// The entry.
        #[sea_orm(primary_key, auto_increment = false)]
        pub entry_id: Uuid,
        /// The recipient.
        #[sea_orm(primary_key, auto_increment = false)]
        pub recipient: String,
        /// Attempts that failed.
        pub attempts: i32,
        /// The channel's last error.
        #[sea_orm(column_type = "Text")]
        pub reason: String,
        /// When the notifier gave up.
        pub created_at: DateTimeUtc,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// How far a subscription reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Depth {
    /// The item itself.
    Resource,
    /// The item and everything the application names it an ancestor of.
    Descendants,
}

impl Depth {
    fn as_str(self) -> &'static str {
        match self {
            Depth::Resource => "resource",
            Depth::Descendants => "descendants",
        }
    }
}

/// Create the notification tables (idempotent; safe at every start-up): subscriptions,
/// preferences, delivery marks and dead letters.
pub async fn create_tables<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let schema = Schema::new(backend);
    // Tenants, users and items compare byte for byte on MySQL too, as in `activity_log`: under
    // the server's default collation `bob` would list and revoke `Bob`'s subscriptions.
    let collation = match backend {
        DbBackend::MySql => Some(activity_seaorm::schema::mysql_exact_collation(db).await?),
        _ => None,
    };
    for mut table in [
        schema.create_table_from_entity(activity_subscription::Entity),
        schema.create_table_from_entity(activity_notification_preference::Entity),
        schema.create_table_from_entity(activity_notification_delivery::Entity),
        schema.create_table_from_entity(activity_notification_dead_letter::Entity),
    ] {
        if let Some(collation) = &collation {
            table.character_set("utf8mb4").collate(collation.as_str());
        }
        db.execute(table.if_not_exists()).await?;
    }
    // Routing looks subscriptions up by item within a tenant; one subscription per user and item.
    use activity_subscription::Column as S;
    let mut index = Index::create();
    index
        .name("activity_subscription_item")
        .table(activity_subscription::Entity)
        .col(S::Tenant)
        .col(S::Scope)
        .col(S::ItemId)
        .col(S::UserId)
        .unique();
    if db.get_database_backend() != sea_orm::DbBackend::MySql {
        index.if_not_exists();
        db.execute(&index).await?;
    } else if let Err(e) = db.execute(&index).await {
        // MySQL has no `CREATE INDEX IF NOT EXISTS`: a second start-up finds it there.
        if !e.to_string().contains("Duplicate key name") {
            return Err(e);
        }
    }
    migrate_tenant_keys(db).await?;
    Ok(())
}

/// Give tenant keys stored before they were typed their kind (`7` → `o:7` or `t:7`), once;
/// [`create_tables`] runs it, so the tables a new version starts on route as before. A key is an
/// organization if the log holds an entry of that organization, else a team if it holds an
/// entry of that team with no organization (the old key was the organization, else the team),
/// else an organization. Keys already typed and the empty key (no tenant) are left alone.
/// Returns how many rows it changed.
pub async fn migrate_tenant_keys<C: ConnectionTrait>(db: &C) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let q = |name: &str| match backend {
        DbBackend::MySql => format!("`{name}`"),
        _ => format!("\"{name}\""),
    };
    let typed = |kind: &str| match backend {
        DbBackend::MySql => format!("CONCAT('{kind}:', {})", q("tenant")),
        _ => format!("'{kind}:' || {}", q("tenant")),
    };
    // Nothing untyped (every start-up after the first): no statement touches the log, which
    // need not even be in this database then.
    let mut untyped = 0;
    for table in ["activity_subscription", "activity_notification_preference"] {
        let t = q(table);
        let tenant = format!("{t}.{}", q("tenant"));
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {t} WHERE {tenant} <> '' \
             AND {tenant} NOT LIKE 'o:%' AND {tenant} NOT LIKE 't:%'"
        );
        if let Some(row) = db
            .query_one_raw(Statement::from_string(backend, sql))
            .await?
        {
            untyped += row.try_get::<i64>("", "n")?;
        }
    }
    if untyped == 0 {
        return Ok(0);
    }
    let mut changed = 0;
    for table in ["activity_subscription", "activity_notification_preference"] {
        let t = q(table);
        let tenant = format!("{t}.{}", q("tenant"));
        let untyped =
            format!("{tenant} <> '' AND {tenant} NOT LIKE 'o:%' AND {tenant} NOT LIKE 't:%'");
        let log = q("activity_log");
        for (kind, which) in [
            (
                "o",
                format!("AND EXISTS (SELECT 1 FROM {log} l WHERE l.organization_id = {tenant})"),
            ),
            (
                "t",
                format!(
                    "AND EXISTS (SELECT 1 FROM {log} l WHERE l.organization_id IS NULL \
                     AND l.team_id = {tenant})"
                ),
            ),
            ("o", String::new()),
        ] {
            let sql = format!(
                "UPDATE {t} SET {} = {} WHERE {untyped} {which}",
                q("tenant"),
                typed(kind)
            );
            changed += db
                .execute_raw(Statement::from_string(backend, sql))
                .await?
                .rows_affected();
        }
    }
    if changed > 0 {
        tracing::info!(
            rows = changed,
            "notification store: tenant keys typed (o:/t:)"
        );
    }
    Ok(changed)
}

/// Subscribe `user_id` to an item (idempotent: subscribing again changes the depth).
pub async fn subscribe<C: ConnectionTrait>(
    db: &C,
    tenant: &TenantKey,
    user_id: &str,
    scope: &str,
    item_id: &str,
    depth: Depth,
) -> Result<(), DbErr> {
    let statement = upsert(
        db.get_database_backend(),
        "activity_subscription",
        &[
            "id",
            "tenant",
            "user_id",
            "scope",
            "item_id",
            "depth",
            "created_at",
        ],
        vec![vec![
            uuid::Uuid::now_v7().into(),
            tenant.as_str().into(),
            user_id.into(),
            scope.into(),
            item_id.into(),
            depth.as_str().into(),
            chrono::Utc::now().into(),
        ]],
        &["tenant", "scope", "item_id", "user_id"],
        Conflict::Update(&["depth"]),
    );
    db.execute_raw(statement).await?;
    Ok(())
}

/// A user's subscriptions in a tenant, oldest first.
pub async fn subscriptions<C: ConnectionTrait>(
    db: &C,
    tenant: &TenantKey,
    user_id: &str,
) -> Result<Vec<activity_subscription::Model>, DbErr> {
    use activity_subscription::{Column, Entity};
    Entity::find()
        .filter(Column::Tenant.eq(tenant.as_str()))
        .filter(Column::UserId.eq(user_id))
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .all(db)
        .await
}

/// Revoke a user's subscription to an item; whether there was one.
pub async fn unsubscribe<C: ConnectionTrait>(
    db: &C,
    tenant: &TenantKey,
    user_id: &str,
    scope: &str,
    item_id: &str,
) -> Result<bool, DbErr> {
    use activity_subscription::{Column, Entity};
    let result = Entity::delete_many()
        .filter(Column::Tenant.eq(tenant.as_str()))
        .filter(Column::UserId.eq(user_id))
        .filter(Column::Scope.eq(scope))
        .filter(Column::ItemId.eq(item_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Set a user's preference in a tenant.
pub async fn set_preference<C: ConnectionTrait>(
    db: &C,
    tenant: &TenantKey,
    user_id: &str,
    preference: &Preference,
) -> Result<(), DbErr> {
    let patterns = match preference {
        Preference::Custom(p) => p.join("\n"),
        _ => String::new(),
    };
    let statement = upsert(
        db.get_database_backend(),
        "activity_notification_preference",
        &["tenant", "user_id", "kind", "patterns"],
        vec![vec![
            tenant.as_str().into(),
            user_id.into(),
            preference.kind().into(),
            patterns.into(),
        ]],
        &["tenant", "user_id"],
        Conflict::Update(&["kind", "patterns"]),
    );
    db.execute_raw(statement).await?;
    Ok(())
}

/// A user's preference in a tenant ([`Preference::Mutations`] unless they chose another).
pub async fn preference<C: ConnectionTrait>(
    db: &C,
    tenant: &TenantKey,
    user_id: &str,
) -> Result<Preference, DbErr> {
    let row = activity_notification_preference::Entity::find_by_id((
        tenant.as_str().to_owned(),
        user_id.to_owned(),
    ))
    .one(db)
    .await?;
    Ok(row.map_or(Preference::Mutations, |r| stored(&r)))
}

/// Delete the delivery marks of entries delivered before `older_than`, and the dead letters
/// given up on before it, and return how many. Both are a copy of which entries existed: call
/// it with the cutoff you prune the log at (`ops::retention::prune`), so none outlives its
/// entry's retention.
pub async fn prune_deliveries<C: ConnectionTrait>(
    db: &C,
    older_than: chrono::DateTime<chrono::Utc>,
) -> Result<u64, DbErr> {
    let marks = activity_notification_delivery::Entity::delete_many()
        .filter(activity_notification_delivery::Column::DeliveredAt.lt(older_than))
        .exec(db)
        .await?;
    let letters = activity_notification_dead_letter::Entity::delete_many()
        .filter(activity_notification_dead_letter::Column::CreatedAt.lt(older_than))
        .exec(db)
        .await?;
    Ok(marks.rows_affected + letters.rows_affected)
}

/// The recipients the notifier gave up on, oldest first.
pub async fn dead_letters<C: ConnectionTrait>(
    db: &C,
) -> Result<Vec<activity_notification_dead_letter::Model>, DbErr> {
    use sea_orm::QueryOrder;
    activity_notification_dead_letter::Entity::find()
        .order_by_asc(activity_notification_dead_letter::Column::CreatedAt)
        .order_by_asc(activity_notification_dead_letter::Column::EntryId)
        .all(db)
        .await
}

pub(crate) fn stored(row: &activity_notification_preference::Model) -> Preference {
    let patterns: Vec<String> = row
        .patterns
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    Preference::from_stored(&row.kind, &patterns)
}

/// What an upsert does with an existing row.
pub(crate) enum Conflict<'a> {
    /// Keep it.
    Ignore,
    /// Overwrite these columns.
    Update(&'a [&'a str]),
}

/// `INSERT .. ON CONFLICT` per backend. On SQLite the conflict target is left out: a pooled
/// SQLite connection compiles statements against the schema it last loaded, so one opened
/// before `create_tables` would reject `ON CONFLICT (cols)` ("does not match any PRIMARY KEY
/// or UNIQUE constraint") instead of noticing the new index; without a target the statement
/// compiles, and SQLite reloads the schema when it runs.
pub(crate) fn upsert(
    backend: DbBackend,
    table: &str,
    columns: &[&str],
    rows: Vec<Vec<Value>>,
    target: &[&str],
    conflict: Conflict<'_>,
) -> Statement {
    let q = |name: &str| match backend {
        DbBackend::MySql => format!("`{name}`"),
        _ => format!("\"{name}\""),
    };
    let list = |names: &[&str]| names.iter().map(|n| q(n)).collect::<Vec<_>>().join(", ");
    let mut n = 0;
    let tuples: Vec<String> = rows
        .iter()
        .map(|row| {
            let marks: Vec<String> = row
                .iter()
                .map(|_| {
                    n += 1;
                    match backend {
                        DbBackend::Postgres => format!("${n}"),
                        _ => "?".to_owned(),
                    }
                })
                .collect();
            format!("({})", marks.join(", "))
        })
        .collect();
    let insert = match (backend, &conflict) {
        (DbBackend::MySql, Conflict::Ignore) => "INSERT IGNORE",
        _ => "INSERT",
    };
    let mut sql = format!(
        "{insert} INTO {} ({}) VALUES {}",
        q(table),
        list(columns),
        tuples.join(", ")
    );
    match (backend, conflict) {
        (DbBackend::MySql, Conflict::Ignore) => {}
        (DbBackend::MySql, Conflict::Update(set)) => {
            let set: Vec<String> = set
                .iter()
                .map(|c| format!("{0} = VALUES({0})", q(c)))
                .collect();
            sql.push_str(&format!(" ON DUPLICATE KEY UPDATE {}", set.join(", ")));
        }
        (backend, conflict) => {
            let target = match backend {
                DbBackend::Sqlite => String::new(),
                _ => format!(" ({})", list(target)),
            };
            match conflict {
                Conflict::Ignore => sql.push_str(&format!(" ON CONFLICT{target} DO NOTHING")),
                Conflict::Update(set) => {
                    let set: Vec<String> = set
                        .iter()
                        .map(|c| format!("{0} = excluded.{0}", q(c)))
                        .collect();
                    sql.push_str(&format!(
                        " ON CONFLICT{target} DO UPDATE SET {}",
                        set.join(", ")
                    ));
                }
            }
        }
    }
    Statement::from_sql_and_values(backend, sql, rows.into_iter().flatten())
}

/// A `sea-orm-migration` migration that creates the notification tables (feature `migration`).
/// List it after the application's own tables, anywhere after the activity log's migration.
#[cfg(feature = "migration")]
pub mod migration {
    use sea_orm_migration::prelude::*;

    /// Creates `activity_subscription`, `activity_notification_preference`,
    /// `activity_notification_delivery` and `activity_notification_dead_letter` (idempotent);
    /// drops them on `down`.
    #[derive(Debug, Default)]
    pub struct Migration;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m20261203_000001_create_activity_notifications"
        }
    }

    /// Types the tenant keys of notification rows stored before keys had a kind (see
    /// [`migrate_tenant_keys`](super::migrate_tenant_keys)), for applications whose
    /// [`Migration`] already ran. List it after [`Migration`]; `down` keeps the typed keys.
    #[derive(Debug, Default)]
    pub struct TypedTenantKeys;

    impl MigrationName for TypedTenantKeys {
        fn name(&self) -> &str {
            "m20261206_000001_type_activity_notification_tenants"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for TypedTenantKeys {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            super::migrate_tenant_keys(manager.get_connection())
                .await
                .map(drop)
        }

        async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            super::create_tables(manager.get_connection()).await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            for table in [
                "activity_notification_dead_letter",
                "activity_notification_delivery",
                "activity_notification_preference",
                "activity_subscription",
            ] {
                manager
                    .drop_table(
                        Table::drop()
                            .table(Alias::new(table))
                            .if_exists()
                            .to_owned(),
                    )
                    .await?;
            }
            Ok(())
        }
    }
}
