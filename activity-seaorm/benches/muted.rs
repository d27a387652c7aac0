//! Criterion: what the hooks cost a muted job (DESIGN §8: ≤ 1.02× unlogged). Ten updates in one
//! `transaction` on SQLite in memory, where the database is cheap and steady, so the hooks'
//! own CPU shows: the same table through an entity without hooks (`unlogged`), through the
//! logged entity under `mute_signals` (`muted`), and, for scale, logged with `Tracked`.
//!
//! `cargo bench -p activity-seaorm --bench muted`
//!
//! Wall time on this path is noisy (SQLite runs on sqlx's worker thread); instructions are not.
//! With `MUTED_CALLGRIND=unlogged|muted|tracked` the binary skips criterion and runs 300 batches
//! of that mode, to compare under `valgrind --tool=callgrind` (see `BENCHMARKS.md`).

use activity_seaorm::prelude::*;
use activity_seaorm::transaction;
use criterion::{BatchSize, Criterion, criterion_group};
use scoped_futures::ScopedFutureExt;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, Database, DatabaseConnection, DbErr, EntityTrait,
    IntoActiveModel, QueryOrder, Schema, Set,
};

mod logged {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "flag")]
    #[activity(scope = "Flag", name = key)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub key: String,
        pub active: bool,
        pub rollout: i32,
        pub description: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        activity_seaorm::activity_hooks!();
    }
}

mod plain {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "flag")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub key: String,
        pub active: bool,
        pub rollout: i32,
        pub description: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[derive(Clone, Copy)]
enum Mode {
    Unlogged,
    Muted,
    Tracked,
}

async fn setup() -> Result<DatabaseConnection, DbErr> {
    let db = Database::connect("sqlite::memory:").await?;
    activity_seaorm::schema::create_table(&db).await?;
    db.execute(&Schema::new(db.get_database_backend()).create_table_from_entity(plain::Entity))
        .await?;
    let rows = (0..10).map(|i| plain::ActiveModel {
        key: Set(format!("flag-{i}")),
        active: Set(false),
        rollout: Set(0),
        description: Set(Some("bench".into())),
        ..Default::default()
    });
    plain::Entity::insert_many(rows)
        .exec_without_returning(&db)
        .await?;
    Ok(db)
}

type Rows = (Vec<plain::Model>, Vec<logged::Model>);

/// The rows as the application loaded them (outside the timing).
async fn load(db: &DatabaseConnection) -> Result<Rows, DbErr> {
    let plain_rows = plain::Entity::find()
        .order_by_asc(plain::Column::Id)
        .all(db)
        .await?;
    let logged_rows = logged::Entity::find()
        .order_by_asc(logged::Column::Id)
        .all(db)
        .await?;
    Ok((plain_rows, logged_rows))
}

/// Ten updates, each flipping `active` and moving `rollout`, in one transaction.
async fn batch(
    db: &DatabaseConnection,
    mode: Mode,
    tick: i32,
    (plain_rows, logged_rows): Rows,
) -> Result<(), DbErr> {
    transaction(db, |txn| {
        async move {
            for (p, l) in plain_rows.into_iter().zip(logged_rows) {
                match mode {
                    Mode::Unlogged => {
                        let mut am = p.into_active_model();
                        am.active = Set(tick % 2 == 0);
                        am.rollout = Set(tick);
                        am.update(txn).await?;
                    }
                    Mode::Muted => {
                        let _muted = mute_signals();
                        let mut am = l.into_active_model();
                        am.active = Set(tick % 2 == 0);
                        am.rollout = Set(tick);
                        am.update(txn).await?;
                    }
                    Mode::Tracked => {
                        let mut am = track(l);
                        am.active = Set(tick % 2 == 0);
                        am.rollout = Set(tick);
                        am.update(txn).await?;
                    }
                }
            }
            Ok(())
        }
        .scope_boxed()
    })
    .await
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let db = rt.block_on(setup()).expect("SQLite in memory");
    let mut group = c.benchmark_group("ten_updates");
    let mut tick = 0;
    for (name, mode) in [
        ("unlogged", Mode::Unlogged),
        ("muted", Mode::Muted),
        ("tracked", Mode::Tracked),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || rt.block_on(load(&db)).expect("load"),
                |rows| {
                    tick += 1;
                    rt.block_on(batch(&db, mode, tick, rows)).expect("batch");
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    let Ok(mode) = std::env::var("MUTED_CALLGRIND") else {
        benches();
        Criterion::default().configure_from_args().final_summary();
        return;
    };
    let mode = match mode.as_str() {
        "muted" => Mode::Muted,
        "tracked" => Mode::Tracked,
        _ => Mode::Unlogged,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let db = setup().await.expect("SQLite in memory");
        for tick in 0..300 {
            let rows = load(&db).await.expect("load");
            batch(&db, mode, tick, rows).await.expect("batch");
        }
    });
}
