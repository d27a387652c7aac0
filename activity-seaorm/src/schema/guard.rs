//! An append-only `activity_log` on PostgreSQL: a recipe, as two functions.
//!
//! [`install_append_only`] adds a trigger function and two triggers to `activity_log`: a
//! `BEFORE UPDATE OR DELETE` row trigger and a `BEFORE TRUNCATE` statement trigger. Both raise
//! an exception (SQLSTATE `42501`, `insufficient_privilege`) unless the *transaction-local*
//! setting `activity_log.maintenance` is `'on'`. `INSERT` is untouched, so the write path
//! works as before.
//!
//! The library's own maintenance turns the setting on for exactly its own transactions:
//! [`prune`](crate::ops::retention::prune) runs every batch in a short transaction and
//! [`anonymize_user`](crate::ops::erasure::anonymize_user) runs in one, and both call
//! [`enter_maintenance`] first, and end maintenance with their own work. `SET LOCAL` ends with
//! its transaction (and is undone if a savepoint around it rolls back), so a pooled connection
//! never carries the permission to the next statement that borrows it. It does *not* end when
//! a savepoint is released, though: given the caller's transaction, `prune` and
//! `anonymize_user` run in a savepoint of it, and a bare `SET LOCAL` there would let the rest
//! of the caller's transaction update and delete the log. So they put the setting back to what
//! it was before them (normally off) before they release their savepoint, and on error they
//! roll the savepoint back, which undoes it too.
//!
//! ```no_run
//! # async fn demo() -> Result<(), activity_seaorm::Error> {
//! use sea_orm::ConnectionTrait;
//! let db = sea_orm::Database::connect("postgres://app@localhost/app").await?;
//! activity_seaorm::schema::create_table(&db).await?;
//! activity_seaorm::schema::guard::install_append_only(&db).await?; // idempotent
//!
//! // Tampering fails, in or out of a transaction:
//! let tamper = db.execute_unprepared("UPDATE activity_log SET user_id = 'nobody'").await;
//! assert!(tamper.is_err());
//!
//! // Retention and erasure still work: they enter maintenance in their own transactions.
//! let cutoff = chrono::Utc::now() - chrono::Duration::days(400);
//! activity_seaorm::ops::retention::prune(&db, cutoff, &[]).await?;
//! // (erasure needs `ActivityConfig::with_erasure_key`, installed with `activity_seaorm::init`)
//! activity_seaorm::ops::erasure::anonymize_user(&db, "42").await?;
//! # Ok(()) }
//! ```
//!
//! **What it is and is not.** The trigger stops accidents and application-level tampering (a
//! stray `UPDATE`, an ORM `delete_many`, a compromised code path that does not know the
//! setting). It is not a security boundary against someone who can run arbitrary SQL as the
//! table owner: they can `SET LOCAL activity_log.maintenance = 'on'` too, or drop the
//! trigger. For that, give the application a role that owns neither the table nor the
//! trigger, `REVOKE UPDATE, DELETE, TRUNCATE ON activity_log` from it, and run retention as a
//! separate role; the trigger then remains a second line of defence.
//!
//! On SQLite and MySQL/MariaDB [`install_append_only`] returns an error (the recipe relies on
//! PostgreSQL's transaction-local custom settings); [`enter_maintenance`] is a no-op there.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// The transaction-local setting that lets maintenance through the guard.
pub const MAINTENANCE_SETTING: &str = "activity_log.maintenance";

/// The trigger function (created in the first schema of the `search_path`, like the table).
const FUNCTION: &str = r#"
CREATE OR REPLACE FUNCTION activity_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $guard$
BEGIN
    IF current_setting('activity_log.maintenance', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'activity_log is append-only: % is not allowed', TG_OP
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'retention and erasure run activity_seaorm::ops::retention::prune and anonymize_user, which SET LOCAL activity_log.maintenance = ''on''';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        RETURN NEW;
    END IF;
    RETURN NULL;
END
$guard$;
DROP TRIGGER IF EXISTS activity_log_append_only ON activity_log;
CREATE TRIGGER activity_log_append_only
    BEFORE UPDATE OR DELETE ON activity_log
    FOR EACH ROW EXECUTE FUNCTION activity_log_append_only();
DROP TRIGGER IF EXISTS activity_log_append_only_truncate ON activity_log;
CREATE TRIGGER activity_log_append_only_truncate
    BEFORE TRUNCATE ON activity_log
    FOR EACH STATEMENT EXECUTE FUNCTION activity_log_append_only();
"#;

const REMOVE: &str = "
DROP TRIGGER IF EXISTS activity_log_append_only ON activity_log;
DROP TRIGGER IF EXISTS activity_log_append_only_truncate ON activity_log;
DROP FUNCTION IF EXISTS activity_log_append_only();
";

fn postgres_only<C: ConnectionTrait>(db: &C, what: &str) -> Result<(), DbErr> {
    match db.get_database_backend() {
        DbBackend::Postgres => Ok(()),
        other => Err(DbErr::Custom(format!(
            "{what}: the append-only guard is a PostgreSQL recipe, not available on {other:?}"
        ))),
    }
}

/// Make `activity_log` append-only on PostgreSQL (see the [module docs](self)). Idempotent;
/// the function and both triggers are replaced in one implicit transaction. Errors on other
/// backends.
pub async fn install_append_only<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    postgres_only(db, "install_append_only")?;
    db.execute_unprepared(FUNCTION).await?;
    Ok(())
}

/// Remove what [`install_append_only`] added. Idempotent. Errors on other backends.
pub async fn remove_append_only<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    postgres_only(db, "remove_append_only")?;
    db.execute_unprepared(REMOVE).await?;
    Ok(())
}

/// Whether the guard's row trigger is installed on the `activity_log` the connection sees.
/// Always `false` on other backends.
pub async fn append_only_installed<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(false);
    }
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT EXISTS (SELECT 1 FROM pg_trigger \
             WHERE tgname = 'activity_log_append_only' \
             AND tgrelid = to_regclass('activity_log')) AS installed",
        ))
        .await?;
    match row {
        Some(row) => row.try_get::<bool>("", "installed"),
        None => Ok(false),
    }
}

/// Let the rest of the current transaction update and delete `activity_log` rows through the
/// guard (`SET LOCAL activity_log.maintenance = 'on'`). Call it on a transaction: outside one,
/// PostgreSQL ignores `SET LOCAL` with a warning. A no-op on other backends, and harmless when
/// the guard is not installed.
///
/// On a savepoint the setting outlives `RELEASE SAVEPOINT` and holds for the rest of the
/// enclosing transaction; the library's own maintenance therefore restores it before it
/// releases (see the [module docs](self)).
pub async fn enter_maintenance<C: ConnectionTrait>(txn: &C) -> Result<(), DbErr> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared(ENTER_MAINTENANCE).await?;
    }
    Ok(())
}

/// What [`enter_maintenance`] sends (PostgreSQL), for a statement list of the library's own.
pub(crate) const ENTER_MAINTENANCE: &str = "SET LOCAL activity_log.maintenance = 'on'";

#[cfg(feature = "ops")]
/// The maintenance setting as the current transaction sees it (`None` if never set).
async fn current_maintenance<C: ConnectionTrait>(txn: &C) -> Result<Option<String>, DbErr> {
    let row = txn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_setting('activity_log.maintenance', true) AS m",
        ))
        .await?;
    match row {
        Some(row) => row.try_get::<Option<String>>("", "m"),
        None => Ok(None),
    }
}

#[cfg(feature = "ops")]
/// Put the maintenance setting back to `previous` for the rest of the transaction.
async fn restore_maintenance<C: ConnectionTrait>(
    txn: &C,
    previous: Option<String>,
) -> Result<(), DbErr> {
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT set_config('activity_log.maintenance', $1, true)",
        [sea_orm::Value::from(previous.unwrap_or_default())],
    ))
    .await?;
    Ok(())
}

#[cfg(feature = "ops")]
/// Run `work` on `txn` in maintenance, and end maintenance with it: the setting is restored to
/// what it was before (so a caller who entered maintenance on purpose keeps it) once `work`
/// is done, whether it succeeded or not.
///
/// When `work` fails, the restore is attempted but its own failure is ignored: a failed
/// statement has aborted the (sub)transaction on PostgreSQL, and the caller then rolls the
/// savepoint or transaction back, which undoes the `SET LOCAL` as well. The caller must do so;
/// `prune` and `anonymize_user` do.
pub(crate) async fn maintenance<C, T, E, F>(txn: &C, work: F) -> Result<T, E>
where
    C: ConnectionTrait,
    F: std::future::Future<Output = Result<T, E>>,
    E: From<DbErr>,
{
    if txn.get_database_backend() != DbBackend::Postgres {
        return work.await;
    }
    let previous = current_maintenance(txn).await?;
    enter_maintenance(txn).await?;
    let result = work.await;
    let restored = restore_maintenance(txn, previous).await;
    match result {
        Ok(value) => {
            restored?;
            Ok(value)
        }
        Err(e) => Err(e),
    }
}
