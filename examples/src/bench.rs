//! What the benchmark programs share: their settings from the environment and a PostgreSQL
//! schema of their own.

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr};

/// The number in the environment variable `name` (`_` separators allowed), or `default`.
pub fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A benchmark's own PostgreSQL schema: `schema` on the server of `BENCH_DATABASE_URL`, dropped
/// first if it exists. Returns a connection to the server and a pool of `connections` whose
/// search path is the schema; [`drop_schema`] removes it again.
pub async fn postgres_schema(
    program: &str,
    schema: &str,
    connections: u32,
) -> Result<(DatabaseConnection, DatabaseConnection), Box<dyn std::error::Error + Send + Sync>> {
    let url = std::env::var("BENCH_DATABASE_URL")
        .map_err(|_| "set BENCH_DATABASE_URL to a PostgreSQL URL (postgres://…)")?;
    let admin = Database::connect(&url).await?;
    if admin.get_database_backend() != DbBackend::Postgres {
        return Err(format!("{program} needs PostgreSQL").into());
    }
    admin
        .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await?;
    admin
        .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
        .await?;
    Ok((admin, schema_pool(url, schema, connections).await?))
}

/// A pool of `connections` on the schema a `BENCH_KEEP=1` run of [`postgres_schema`] left,
/// as it is (nothing dropped or created).
pub async fn kept_schema(
    schema: &str,
    connections: u32,
) -> Result<DatabaseConnection, Box<dyn std::error::Error + Send + Sync>> {
    let url = std::env::var("BENCH_DATABASE_URL")
        .map_err(|_| "set BENCH_DATABASE_URL to a PostgreSQL URL (postgres://…)")?;
    Ok(schema_pool(url, schema, connections).await?)
}

async fn schema_pool(
    url: String,
    schema: &str,
    connections: u32,
) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(connections)
        .min_connections(1)
        .sqlx_logging(false)
        .set_schema_search_path(schema.to_owned());
    Database::connect(opts).await
}

/// Drop the schema of [`postgres_schema`], unless `BENCH_KEEP` is set.
pub async fn drop_schema(admin: &DatabaseConnection, schema: &str) -> Result<(), DbErr> {
    if std::env::var_os("BENCH_KEEP").is_none() {
        admin
            .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await?;
    }
    Ok(())
}

/// SQL that inserts `rows` generated entries (40 organizations, 200 teams, 2,000 users, one
/// change each, the API shape) spread over the month starting at `month` (a `timestamptz` literal).
pub fn generated_entries(rows: usize, month: &str, offset: usize) -> String {
    format!(
        "INSERT INTO activity_log (id, created_at, organization_id, team_id, user_id, \
         user_name, scope, item_id, activity, detail, request_id, ip_address) \
         SELECT (lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0') || '7' \
             || substr(md5((g + {offset})::text), 1, 19))::uuid, at, \
         'org-' || (g % 40), 'team-' || (g % 200), 'user-' || (g % 2000), \
         'User ' || (g % 2000), 'Setting', (g % 5000)::text, 'updated', \
         jsonb_build_object('name', 'setting ' || (g % 5000), 'short_id', NULL, 'type', NULL, \
             'changes', jsonb_build_array(jsonb_build_object('type', 'Setting', \
                 'action', 'changed', 'field', 'enabled', 'before', false, 'after', true)), \
             'trigger', NULL, 'context', NULL), \
         'req-' || g, '10.0.0.' || (g % 256) \
         FROM (SELECT g, timestamptz '{month}' + (g::float8 / {rows} * 27 * 86400) \
             * interval '1 second' AS at FROM generate_series(1, {rows}) AS g) AS s"
    )
}
