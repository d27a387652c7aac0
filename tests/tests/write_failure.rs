//! Fail-closed by default, fail-open on request. The `failed_writes` counter is process-wide, so
//! this binary runs its backends one at a time.

use activity_seaorm::config::failed_writes;
use activity_seaorm::failure::ChangeState;
use activity_seaorm::{ActivityConfig, FailurePolicy, LogWriteFailure, transaction};
use activity_tests::models::feature_flag;
use activity_tests::{Backend, TestDb};
use scoped_futures::ScopedFutureExt;
use sea_orm::{ActiveModelTrait, DbErr, EntityTrait, NotSet, PaginatorTrait, Set};
use serde_json::json;
use tokio::sync::Mutex;

static POLICY: Mutex<()> = Mutex::const_new(());

fn flag(key: &str) -> feature_flag::ActiveModel {
    feature_flag::ActiveModel {
        id: NotSet,
        team_id: Set(1),
        key: Set(key.to_owned()),
        active: Set(true),
        filters: Set(json!({})),
        webhook_secret: Set(String::new()),
        config: Set(json!({})),
        description: Set(None),
        cached_count: Set(0),
        last_accessed_at: Set(None),
    }
}

async fn insert_in_transaction(t: &TestDb, key: &'static str) -> Result<(), DbErr> {
    transaction(&t.db, |txn| {
        async move {
            flag(key).insert(txn).await?;
            Ok::<_, DbErr>(())
        }
        .scope_boxed()
    })
    .await
}

async fn policies(backend: Backend) {
    let _serial = POLICY.lock().await;
    let t = TestDb::new(backend).await;
    activity_seaorm::schema::drop_table(&t.db).await.unwrap();

    // Fail-closed (default): the change does not commit and the error names the log.
    let err = insert_in_transaction(&t, "closed").await.unwrap_err();
    assert!(
        err.to_string().contains("activity log write failed"),
        "{err}"
    );
    assert_eq!(
        LogWriteFailure::of(&err).map(|f| f.change),
        Some(ChangeState::RolledBack)
    );
    assert_eq!(feature_flag::Entity::find().count(&t.db).await.unwrap(), 0);

    // Fail-open: the change commits, the loss is counted.
    let open = ActivityConfig::new().with_failure_policy(FailurePolicy::FailOpen);
    open.scope(async {
        let before = failed_writes();
        insert_in_transaction(&t, "open").await.unwrap();
        assert_eq!(feature_flag::Entity::find().count(&t.db).await.unwrap(), 1);
        assert_eq!(failed_writes(), before + 1);
        // Outside a transaction too.
        flag("open-autocommit").insert(&t.db).await.unwrap();
        assert_eq!(failed_writes(), before + 2);
    })
    .await;

    // Outside a transaction, fail-closed still reports the failure to the caller, and says the
    // change itself already committed (a caller must not retry it as if it had not).
    let err = flag("closed-autocommit").insert(&t.db).await.unwrap_err();
    assert_eq!(
        LogWriteFailure::of(&err).map(|f| f.change),
        Some(ChangeState::Committed),
        "{err}"
    );
    assert!(err.to_string().contains("already committed"), "{err}");
    assert_eq!(feature_flag::Entity::find().count(&t.db).await.unwrap(), 3);
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    policies(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(activity_postgres),
    ignore = "ACTIVITY_TEST_POSTGRES_URL is not set"
)]
async fn postgres() {
    policies(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(activity_mysql), ignore = "ACTIVITY_TEST_MYSQL_URL is not set")]
async fn mysql() {
    policies(Backend::MySql).await;
}

/// A failure is carried by its error: 300 failed writes (more than the 256 the library used
/// to remember on the side) are each still told from the caller's own errors, with what became
/// of their change, however many failed since; and a database error whose message merely
/// reads like one is not taken for a log failure.
async fn every_failure_is_recognised_however_many_failed(backend: Backend) {
    let t = TestDb::new(backend).await;
    activity_seaorm::schema::drop_table(&t.db).await.unwrap();
    let mut errors = Vec::new();
    for i in 0..300 {
        let err = if i % 2 == 0 {
            flag("autocommit").insert(&t.db).await.unwrap_err()
        } else {
            insert_in_transaction(&t, "in-transaction")
                .await
                .unwrap_err()
        };
        errors.push((i, err));
    }
    for (i, err) in &errors {
        let expected = if i % 2 == 0 {
            ChangeState::Committed
        } else {
            ChangeState::RolledBack
        };
        assert_eq!(
            LogWriteFailure::of(err).map(|f| (f.change, f.entries)),
            Some((expected, 1)),
            "failure {i}: {err}"
        );
    }
    // The caller's own database error, even one worded like the library's, is not one.
    let sql = match backend {
        Backend::Postgres => "DO $$ BEGIN RAISE EXCEPTION 'activity log write failed (1 entries, ref 00000000); \
                              the change was already committed (autocommit) and stands without \
                              its entry'; END $$"
            .to_owned(),
        Backend::MySql => "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'activity log write failed \
                           (1 entries, ref 00000000); the change was already committed (autocommit) and \
                           stands without its entry'"
            .to_owned(),
        Backend::Sqlite => "SELECT * FROM \"activity log write failed (1 entries, ref 00000000); the change \
                            was already committed (autocommit) and stands without its entry\""
            .to_owned(),
    };
    use sea_orm::ConnectionTrait;
    let own = t.db.execute_unprepared(&sql).await.unwrap_err();
    assert_eq!(LogWriteFailure::of(&own), None, "{own}");
    t.cleanup().await;
}

mod many_failures {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        every_failure_is_recognised_however_many_failed(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(activity_postgres),
        ignore = "ACTIVITY_TEST_POSTGRES_URL is not set"
    )]
    async fn postgres() {
        every_failure_is_recognised_however_many_failed(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(activity_mysql), ignore = "ACTIVITY_TEST_MYSQL_URL is not set")]
    async fn mysql() {
        every_failure_is_recognised_however_many_failed(Backend::MySql).await;
    }
}
