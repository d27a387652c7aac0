//! The append-only recipe (`schema::guard`, PostgreSQL): tampering fails in and out of a
//! transaction, while the library's own maintenance (retention, erasure) still works and ends
//! with its work.

use activity_seaorm::prelude::*;
use activity_seaorm::{ActivityEntry, log_activity, transaction};
use activity_tests::fingerprint as fnv;
use activity_tests::{Backend, TestDb, backend_tests};
use chrono::{Duration, TimeZone, Utc};
use scoped_futures::ScopedFutureExt;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, TransactionTrait};

// ---------------------------------------------------------------------------------------------
// 5. The append-only recipe (PostgreSQL).

/// A pool of one connection to the test's schema, so "the same session" is certain.
async fn one_session(t: &TestDb) -> sea_orm::DatabaseConnection {
    let url = std::env::var("ACTIVITY_TEST_POSTGRES_URL").unwrap();
    let schema: String =
        t.db.query_one_raw(sea_orm::Statement::from_string(
            t.db_backend(),
            "SELECT current_schema() AS s",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "s")
        .unwrap();
    let mut opts = sea_orm::ConnectOptions::new(url);
    opts.set_schema_search_path(schema)
        .max_connections(1)
        .sqlx_logging(false);
    sea_orm::Database::connect(opts).await.unwrap()
}

/// A configuration with an erasure key, for `anonymize_user`.
fn erasure_config() -> ActivityConfig {
    ActivityConfig::new().with_erasure_key(b"security-suite erasure key, 32 b")
}

async fn append_only_guard(t: &TestDb) {
    use activity_seaorm::schema::guard;

    let old = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
    for i in 0..6 {
        let mut e = ActivityEntry::new("Export", "exported").with_item_id(format!("{i}"));
        e.created_at = old + Duration::minutes(i);
        e.team_id = Some("7".into());
        let user = ActivityContext::for_user(Actor::new("u1").with_name("ursula"));
        ActivityContext::scope(user, log_activity(&t.db, e))
            .await
            .unwrap();
    }
    let recent = ActivityEntry::new("Export", "exported").with_name("recent");
    log_activity(&t.db, recent).await.unwrap();

    if t.backend != Backend::Postgres {
        let err = guard::install_append_only(&t.db).await.unwrap_err();
        assert!(err.to_string().contains("PostgreSQL"), "{err}");
        assert!(guard::remove_append_only(&t.db).await.is_err());
        assert!(!guard::append_only_installed(&t.db).await.unwrap());
        // Maintenance still works (`enter_maintenance` is a no-op here).
        assert_eq!(
            activity_seaorm::ops::retention::prune(&t.db, old + Duration::minutes(3), &[])
                .await
                .unwrap(),
            3
        );
        assert_eq!(
            ActivityConfig::scope(
                erasure_config(),
                activity_seaorm::ops::erasure::anonymize_user(&t.db, "u1")
            )
            .await
            .unwrap(),
            3
        );
        return;
    }

    guard::install_append_only(&t.db).await.unwrap();
    guard::install_append_only(&t.db).await.unwrap(); // idempotent
    assert!(guard::append_only_installed(&t.db).await.unwrap());
    let before = fnv(&t.dump().await);

    // Tampering fails: raw SQL, the ORM, inside a transaction, TRUNCATE.
    let attempts: Vec<(&str, Result<(), DbErr>)> = vec![
        (
            "raw UPDATE",
            t.db.execute_unprepared("UPDATE activity_log SET user_id = 'mallory'")
                .await
                .map(drop),
        ),
        (
            "raw DELETE",
            t.db.execute_unprepared("DELETE FROM activity_log")
                .await
                .map(drop),
        ),
        (
            "TRUNCATE",
            t.db.execute_unprepared("TRUNCATE activity_log")
                .await
                .map(drop),
        ),
        (
            "delete_many",
            activity_seaorm::activity_log::Entity::delete_many()
                .filter(activity_seaorm::activity_log::Column::Scope.eq("Export"))
                .exec(&t.db)
                .await
                .map(drop),
        ),
        (
            "UPDATE in a transaction",
            async {
                let txn = t.db.begin().await?;
                txn.execute_unprepared("UPDATE activity_log SET activity = 'x'")
                    .await?;
                txn.commit().await
            }
            .await,
        ),
    ];
    for (what, result) in attempts {
        let err = result.expect_err(what);
        assert!(
            err.to_string().contains("append-only"),
            "{what}: unexpected error {err}"
        );
    }
    assert_eq!(fnv(&t.dump().await), before, "the log is unchanged");

    // Inserting still works, through hooks and the transaction helper.
    transaction(&t.db, |txn| {
        async move {
            log_activity(
                txn,
                ActivityEntry::new("Export", "exported").with_name("in-txn"),
            )
            .await
        }
        .scope_boxed()
    })
    .await
    .unwrap();

    // Retention and erasure pass the guard, on a shared pool and on a single session, and
    // the permission ends with their transactions.
    let session = one_session(t).await;
    let pruned = activity_seaorm::ops::retention::prune(&session, old + Duration::minutes(3), &[])
        .await
        .unwrap();
    assert_eq!(pruned, 3);
    let err = session
        .execute_unprepared("DELETE FROM activity_log")
        .await
        .expect_err("maintenance must not outlive prune's transactions");
    assert!(err.to_string().contains("append-only"), "{err}");
    let rewritten = ActivityConfig::scope(
        erasure_config(),
        activity_seaorm::ops::erasure::anonymize_user(&session, "u1"),
    )
    .await
    .unwrap();
    assert_eq!(rewritten, 3);
    let err = session
        .execute_unprepared("UPDATE activity_log SET user_id = 'mallory'")
        .await
        .expect_err("maintenance must not outlive anonymize_user's transaction");
    assert!(err.to_string().contains("append-only"), "{err}");
    // A transaction that entered maintenance itself may delete; the next one may not.
    let txn = session.begin().await.unwrap();
    guard::enter_maintenance(&txn).await.unwrap();
    txn.execute_unprepared("DELETE FROM activity_log WHERE detail->>'name' = 'in-txn'")
        .await
        .unwrap();
    txn.commit().await.unwrap();
    assert!(
        session
            .execute_unprepared("DELETE FROM activity_log")
            .await
            .is_err()
    );
    // prune on the pool works too, and inside a caller's transaction (savepoints).
    let txn = t.db.begin().await.unwrap();
    let pruned =
        activity_seaorm::ops::retention::prune(&txn, Utc::now() + Duration::days(1), &["Export"])
            .await
            .unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(
        pruned, 4,
        "the 3 remaining old entries and the recent one (scope Export)"
    );
    session.close().await.unwrap();

    let entries = t.entries().await;
    assert!(entries.iter().all(|e| e.user_id.as_deref() != Some("u1")));
    assert!(
        entries
            .iter()
            .any(|e| e.scope == "User" && e.activity == "anonymized")
    );

    guard::remove_append_only(&t.db).await.unwrap();
    guard::remove_append_only(&t.db).await.unwrap(); // idempotent
    assert!(!guard::append_only_installed(&t.db).await.unwrap());
    t.db.execute_unprepared("DELETE FROM activity_log WHERE scope = 'User'")
        .await
        .unwrap();
}

backend_tests!(append_only_guard);
