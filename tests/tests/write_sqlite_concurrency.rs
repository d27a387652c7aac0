//! Concurrent read-modify-write transactions on one SQLite file: with `IMMEDIATE`
//! (`transaction_with_options`) they queue for the write lock instead of failing with
//! `SQLITE_BUSY`, and every update's entry chains from the previous one.

use activity_seaorm::transaction_with_options;
use activity_tests::models::feature_flag;
use activity_tests::{Backend, TestDb, new_flag};
use scoped_futures::ScopedFutureExt;
use sea_orm::{
    ActiveModelTrait, DbErr, EntityTrait, IntoActiveModel, Set, SqliteTransactionMode,
    TransactionOptions,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_transactions_queue_instead_of_failing() {
    let t = TestDb::new(Backend::Sqlite).await;
    let mut flag = new_flag("shared");
    flag.description = Set(Some("0".into()));
    let id = flag.insert(&t.db).await.unwrap().id;
    let immediate = TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    };
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let db = t.db.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    transaction_with_options(&db, immediate, |txn| {
                        async move {
                            let flag = feature_flag::Entity::find_by_id(id)
                                .one(txn)
                                .await?
                                .ok_or(DbErr::RecordNotFound("flag".into()))?;
                            let n: u32 =
                                flag.description.as_deref().unwrap_or("0").parse().unwrap();
                            tokio::task::yield_now().await;
                            let mut flag = flag.into_active_model();
                            flag.description = Set(Some((n + 1).to_string()));
                            flag.update(txn).await?;
                            Ok::<_, DbErr>(())
                        }
                        .scope_boxed()
                    })
                    .await
                    .expect("an IMMEDIATE transaction waits for the lock");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let updates: Vec<(String, String)> = t
        .entries()
        .await
        .into_iter()
        .filter(|e| e.activity == "updated")
        .map(|e| {
            let c = &e.detail.changes[0];
            (c.before.to_string(), c.after.to_string())
        })
        .collect();
    assert_eq!(updates.len(), 40);
    let mut chain: Vec<u32> = updates
        .iter()
        .map(|(_, after)| after.trim_matches('"').parse().unwrap())
        .collect();
    chain.sort_unstable();
    assert_eq!(
        chain,
        (1..=40).collect::<Vec<_>>(),
        "lost updates or entries"
    );
    t.cleanup().await;
}
