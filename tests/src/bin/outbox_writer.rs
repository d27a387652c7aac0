//! Child process of the relay test (`tests/relay.rs`): logged transactions with the outbox on,
//! one in five rolled back. Each update moves a flag's `description` from `v<n>` to `v<n+1>`,
//! so the test can check every item's entries arrive complete and in order. One in four is
//! followed by an entry written outside any transaction (on SQLite and MySQL its outbox row and
//! the entry are two statements, which a relay may see between).
//!
//! `outbox_writer <database-url> <schema or -> <transactions> <seed>`

use activity_seaorm::{
    ActivityConfig, ActivityEntry, log_activity, transaction, transaction_with_options,
};
use activity_tests::models::feature_flag;
use scoped_futures::ScopedFutureExt;
use sea_orm::{
    ActiveModelTrait, DbErr, EntityTrait, IntoActiveModel, QuerySelect, Set, SqliteTransactionMode,
    TransactionOptions,
};

const ITEMS: usize = 12;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, schema, transactions, seed] = &args[..] else {
        panic!("usage: outbox_writer <database-url> <schema or -> <transactions> <seed>");
    };
    let schema = (schema != "-").then_some(schema.as_str());
    let transactions: usize = transactions.parse().expect("transactions");
    fastrand::seed(seed.parse().expect("seed"));
    activity_seaorm::init(ActivityConfig::new().with_outbox(true)).expect("init");
    let db = activity_tests::connect_sized(url, schema, 4).await;

    let ids = transaction(&db, |txn| {
        async move {
            let mut ids = Vec::new();
            for i in 0..ITEMS {
                let mut flag = activity_tests::new_flag(&format!("item-{i}"));
                flag.description = Set(Some("v0".into()));
                ids.push(flag.insert(txn).await?.id);
            }
            Ok::<_, DbErr>(ids)
        }
        .scope_boxed()
    })
    .await
    .expect("create the items");

    let (mut committed, mut rolled_back, mut failed, mut autocommit) = (0, 0, 0, 0);
    for n in 0..transactions {
        let mut picks: Vec<i32> = (0..fastrand::usize(1..=3))
            .map(|_| ids[fastrand::usize(..ids.len())])
            .collect();
        // One lock order for every writer: no deadlocks between transactions.
        picks.sort_unstable();
        picks.dedup();
        let doomed = fastrand::u8(..5) == 0;
        // SQLite: take the write lock up front (the relay process writes too); ignored elsewhere.
        let immediate = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        let result = transaction_with_options(&db, immediate, |txn| {
            async move {
                for id in picks {
                    let flag = feature_flag::Entity::find_by_id(id)
                        .lock_exclusive()
                        .one(txn)
                        .await?
                        .ok_or(DbErr::RecordNotFound("item".into()))?;
                    let version: u64 = flag
                        .description
                        .as_deref()
                        .and_then(|d| d.strip_prefix('v'))
                        .and_then(|n| n.parse().ok())
                        .ok_or(DbErr::Custom("no version".into()))?;
                    let mut flag = flag.into_active_model();
                    flag.description = Set(Some(format!("v{}", version + 1)));
                    flag.update(txn).await?;
                }
                if doomed {
                    log_activity(txn, ActivityEntry::new("Doomed", "never")).await?;
                    return Err(DbErr::Custom("rolled back on purpose".into()));
                }
                Ok(())
            }
            .scope_boxed()
        })
        .await;
        match result {
            Ok(()) => committed += 1,
            Err(DbErr::Custom(m)) if m == "rolled back on purpose" => rolled_back += 1,
            // Busy SQLite or a lost connection: rolled back, logged nothing; go on.
            Err(e) => {
                failed += 1;
                eprintln!("writer: transaction failed: {e}");
            }
        }
        if fastrand::u8(..4) == 0 {
            let entry = ActivityEntry::new("Job", "ran").with_item_id(format!("job-{n}"));
            match log_activity(&db, entry).await {
                Ok(()) => autocommit += 1,
                Err(e) => eprintln!("writer: autocommit entry failed: {e}"),
            }
        }
        // Slow enough that the relay kills (every 150-600 ms) fall while entries are still written.
        tokio::time::sleep(std::time::Duration::from_millis(fastrand::u64(10..35))).await;
    }
    println!(
        "committed={committed} rolled_back={rolled_back} failed={failed} autocommit={autocommit}"
    );
}
