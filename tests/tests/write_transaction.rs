//! `LoggedTransaction`: SeaORM's own transaction shape (`db.transaction(|txn| Box::pin(..))`),
//! logged by renaming it to `logged_transaction`, on every backend: entries at commit with one
//! correlation id, nothing on rollback, and a failed log write as `TransactionError::Connection`.

use activity_seaorm::prelude::*;
use activity_seaorm::{LogWriteFailure, failure::ChangeState};
use activity_tests::models::feature_flag;
use activity_tests::{TestDb, backend_tests, new_flag};
use sea_orm::{ActiveModelTrait, DbErr, EntityTrait, PaginatorTrait, Set, TransactionError};

async fn seaorm_shaped_transactions_are_logged(t: &TestDb) {
    let alice = ActivityContext::for_user(Actor::new("alice"));
    let flag = ActivityContext::scope(alice.clone(), async {
        t.db.logged_transaction::<_, _, DbErr>(|txn| {
            Box::pin(async move {
                let flag = new_flag("shaped").insert(txn).await?;
                let mut am: feature_flag::ActiveModel = flag.clone().into();
                am.active = Set(true);
                am.update(txn).await?;
                Ok(flag)
            })
        })
        .await
        .unwrap()
    })
    .await;
    let entries = t.entries().await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(
        entries
            .iter()
            .all(|e| e.user_id.as_deref() == Some("alice"))
    );
    assert!(entries[0].correlation_id.is_some());
    assert_eq!(entries[0].correlation_id, entries[1].correlation_id);
    assert_eq!(entries[1].item_id, Some(flag.id.to_string()));

    // The closure's error rolls everything back, entries included, and comes back as SeaORM's
    // `TransactionError::Transaction`.
    let failed = ActivityContext::scope(alice, async {
        t.db.logged_transaction::<_, (), String>(|txn| {
            Box::pin(async move {
                new_flag("rolled-back")
                    .insert(txn)
                    .await
                    .map_err(|e| e.to_string())?;
                Err("changed my mind".to_owned())
            })
        })
        .await
    })
    .await;
    assert!(matches!(failed, Err(TransactionError::Transaction(ref e)) if e == "changed my mind"));
    assert_eq!(t.entries().await.len(), 2);
    assert_eq!(feature_flag::Entity::find().count(&t.db).await.unwrap(), 1);

    // A log write that fails at commit fails the transaction, as a failed COMMIT would.
    activity_seaorm::schema::drop_table(&t.db).await.unwrap();
    let refused =
        t.db.logged_transaction::<_, (), DbErr>(|txn| {
            Box::pin(async move {
                new_flag("unlogged").insert(txn).await?;
                Ok(())
            })
        })
        .await;
    let Err(TransactionError::Connection(err)) = refused else {
        panic!("expected a connection error, got {refused:?}");
    };
    assert_eq!(
        LogWriteFailure::of(&err).map(|f| f.change),
        Some(ChangeState::RolledBack)
    );
    assert_eq!(feature_flag::Entity::find().count(&t.db).await.unwrap(), 1);
}

backend_tests!(seaorm_shaped_transactions_are_logged);
