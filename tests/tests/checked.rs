//! Checked mode: writes to audited tables that bypass the log are reported, exactly; writes
//! through the log, muted writes and writes to unaudited tables are not.
//!
//! Each test installs its checker on a second pool of the test's database (the `TestDb` pool
//! keeps its own statement-capturing callback).

use activity_seaorm::bulk::{self, BulkMode};
use activity_seaorm::checked::{self, Bypass, Checker, Verb};
use activity_seaorm::prelude::*;
use activity_seaorm::{log_activity, transaction};
use activity_tests::models::{feature_flag, membership};
use activity_tests::{TestDb, backend_tests, flag_by_id, new_flag};
use scoped_futures::ScopedFutureExt;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    ModelTrait, QueryFilter, Set, Statement, TransactionTrait,
};

async fn checked_pool(t: &TestDb, checker: &Checker) -> DatabaseConnection {
    let mut db = t.another_pool(4).await;
    checker.install(&mut db);
    db
}

fn report(verb: Verb, table: &str) -> (Verb, String) {
    (verb, table.to_owned())
}

fn reports(checker: &Checker) -> Vec<(Verb, String)> {
    checker
        .take_reports()
        .into_iter()
        .map(|b: Bypass| (b.verb, b.table))
        .collect()
}

fn raw(db: &DatabaseConnection, sql: &str) -> Statement {
    Statement::from_string(db.get_database_backend(), sql.to_owned())
}

fn activate() -> feature_flag::ActiveModel {
    feature_flag::ActiveModel {
        active: Set(true),
        ..Default::default()
    }
}

async fn registry_has_the_derived_tables(_t: &TestDb) {
    let tables: Vec<&str> = activity_seaorm::audited::audited_tables()
        .map(|t| t.table)
        .collect();
    for table in ["feature_flag", "membership", "document"] {
        assert!(
            tables.contains(&table),
            "{table} not registered: {tables:?}"
        );
    }
    assert!(!tables.contains(&"activity_log"));
}

async fn hooked_writes_are_not_reported(t: &TestDb) {
    let checker = Checker::record();
    let db = checked_pool(t, &checker).await;
    let ctx = ActivityContext::for_user(Actor::new("u-1"));
    ActivityContext::scope(ctx, async {
        // Autocommit: insert, update (read before-state), Tracked update, save, delete.
        let a = new_flag("a").insert(&db).await.unwrap();
        let mut am = flag_by_id(a.id);
        am.active = Set(true);
        let a = am.update(&db).await.unwrap();
        let mut tracked = track(a.clone());
        tracked.description = Set(Some("tracked".into()));
        tracked.update(&db).await.unwrap();
        let mut saved: feature_flag::ActiveModel = a.clone().into();
        saved.key = Set("a2".into());
        saved.save(&db).await.unwrap();
        // A no-op update: SeaORM sends no statement.
        flag_by_id(a.id).update(&db).await.unwrap();
        a.delete(&db).await.unwrap();
        // Composite key model.
        membership::ActiveModel {
            org_id: Set("o".into()),
            user_id: Set(1),
            role: Set("admin".into()),
        }
        .insert(&db)
        .await
        .unwrap();
        // Inside the transaction helper and in a plain `begin()`.
        transaction(&db, |txn| {
            async move {
                let b = new_flag("b").insert(txn).await?;
                let mut am = flag_by_id(b.id);
                am.active = Set(true);
                am.update(txn).await?;
                flag_by_id(b.id).delete(txn).await?;
                Ok::<_, DbErr>(())
            }
            .scope_boxed()
        })
        .await
        .unwrap();
        let txn = db.begin().await.unwrap();
        let c = new_flag("c").insert(&txn).await.unwrap();
        c.delete(&txn).await.unwrap();
        txn.commit().await.unwrap();
        // Bulk, per row and summary.
        bulk::insert_many::<feature_flag::Entity, _>(
            &db,
            vec![new_flag("d"), new_flag("e")],
            BulkMode::PerRow,
        )
        .await
        .unwrap();
        bulk::insert_many::<feature_flag::Entity, _>(&db, vec![new_flag("f")], BulkMode::Summary)
            .await
            .unwrap();
        for mode in [BulkMode::PerRow, BulkMode::Summary] {
            bulk::update_many::<feature_flag::Entity, _>(
                &db,
                feature_flag::Column::TeamId.eq(7),
                activate(),
                mode,
            )
            .await
            .unwrap();
        }
        bulk::delete_many::<feature_flag::Entity, _>(
            &db,
            feature_flag::Column::Key.eq("d"),
            BulkMode::PerRow,
        )
        .await
        .unwrap();
        bulk::delete_many::<feature_flag::Entity, _>(
            &db,
            feature_flag::Column::Key.eq("e"),
            BulkMode::Summary,
        )
        .await
        .unwrap();
    })
    .await;
    assert_eq!(reports(&checker), vec![]);
    assert_eq!(checker.bypassed(), 0);
    // The writes did go through the log.
    assert!(t.entries().await.len() >= 12);
    db.close().await.unwrap();
}

async fn bypasses_are_reported(t: &TestDb) {
    let checker = Checker::record();
    let db = checked_pool(t, &checker).await;
    let before = checked::bypassed_writes();
    let a = feature_flag::Entity::insert(new_flag("a"))
        .exec(&db)
        .await
        .unwrap();
    let id = a.last_insert_id;
    let mut am = flag_by_id(id);
    am.active = Set(true);
    feature_flag::Entity::update(am).exec(&db).await.unwrap();
    feature_flag::Entity::insert_many([new_flag("b"), new_flag("c")])
        .exec(&db)
        .await
        .unwrap();
    feature_flag::Entity::update_many()
        .set(activate())
        .filter(feature_flag::Column::Key.eq("b"))
        .exec(&db)
        .await
        .unwrap();
    feature_flag::Entity::delete_many()
        .filter(feature_flag::Column::Key.eq("b"))
        .exec(&db)
        .await
        .unwrap();
    feature_flag::Entity::delete_by_id(id)
        .exec(&db)
        .await
        .unwrap();
    db.execute_raw(raw(
        &db,
        "UPDATE feature_flag SET cached_count = 3 WHERE team_id = 7",
    ))
    .await
    .unwrap();
    // In a transaction begun from the checked connection, and in the helper.
    let txn = db.begin().await.unwrap();
    feature_flag::Entity::delete_many()
        .filter(feature_flag::Column::Key.eq("c"))
        .exec(&txn)
        .await
        .unwrap();
    txn.commit().await.unwrap();
    transaction(&db, |txn| {
        async move {
            feature_flag::Entity::insert(new_flag("d"))
                .exec(txn)
                .await?;
            Ok::<_, DbErr>(())
        }
        .scope_boxed()
    })
    .await
    .unwrap();
    assert_eq!(
        reports(&checker),
        vec![
            report(Verb::Insert, "feature_flag"),
            report(Verb::Update, "feature_flag"),
            report(Verb::Insert, "feature_flag"),
            report(Verb::Update, "feature_flag"),
            report(Verb::Delete, "feature_flag"),
            report(Verb::Delete, "feature_flag"),
            report(Verb::Update, "feature_flag"),
            report(Verb::Delete, "feature_flag"),
            report(Verb::Insert, "feature_flag"),
        ]
    );
    assert_eq!(checker.bypassed(), 9);
    assert!(checked::bypassed_writes() >= before + 9);
    // SeaORM 2.0.4 calls no metric callback for `execute_unprepared`: invisible to the metric
    // callback alone (`checked_unprepared.rs` covers it through `Checker::layer`).
    db.execute_unprepared("UPDATE feature_flag SET cached_count = 4")
        .await
        .unwrap();
    assert_eq!(checker.bypassed(), 9);
    assert!(t.entries().await.is_empty(), "no bypass wrote an entry");
    db.close().await.unwrap();
}

async fn muted_writes_are_not_reported(t: &TestDb) {
    let checker = Checker::record();
    let db = checked_pool(t, &checker).await;
    let a = new_flag("a").insert(&db).await.unwrap();
    {
        let _muted = mute_signals();
        let mut am = flag_by_id(a.id);
        am.active = Set(true);
        am.update(&db).await.unwrap();
        feature_flag::Entity::update_many()
            .set(activate())
            .exec(&db)
            .await
            .unwrap();
        feature_flag::Entity::insert(new_flag("m"))
            .exec(&db)
            .await
            .unwrap();
        bulk::delete_many::<feature_flag::Entity, _>(
            &db,
            feature_flag::Column::Key.eq("m"),
            BulkMode::PerRow,
        )
        .await
        .unwrap();
    }
    mute_scopes(&["FeatureFlag"], async {
        feature_flag::Entity::delete_by_id(a.id)
            .exec(&db)
            .await
            .unwrap();
    })
    .await;
    assert_eq!(reports(&checker), vec![]);
    // Muting another scope does not hide this one's bypass.
    mute_scopes(&["Membership"], async {
        feature_flag::Entity::insert(new_flag("n"))
            .exec(&db)
            .await
            .unwrap();
    })
    .await;
    assert_eq!(
        reports(&checker),
        vec![report(Verb::Insert, "feature_flag")]
    );
    db.close().await.unwrap();
}

async fn unaudited_tables_are_not_reported(t: &TestDb) {
    let checker = Checker::record();
    let db = checked_pool(t, &checker).await;
    db.execute_unprepared("CREATE TABLE plain_note (id INTEGER PRIMARY KEY, body TEXT)")
        .await
        .unwrap();
    for sql in [
        "INSERT INTO plain_note (id, body) VALUES (1, 'x')",
        "UPDATE plain_note SET body = 'y' WHERE id = 1",
        "DELETE FROM plain_note WHERE id = 1",
        // Reads, whatever they contain.
        "SELECT id FROM feature_flag WHERE 'UPDATE feature_flag SET x = 1' = ''",
    ] {
        db.execute_raw(raw(&db, sql)).await.unwrap();
    }
    // The log's own writes.
    log_activity(&db, ActivityEntry::new("Manual", "noted"))
        .await
        .unwrap();
    activity_seaorm::ops::retention::prune(
        &db,
        chrono::Utc::now() + chrono::Duration::days(1),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(reports(&checker), vec![]);
    // A table added explicitly is audited.
    let explicit = Checker::record().table::<activity_seaorm::activity_log::Entity>();
    explicit.observe(&sea_orm::metric::Info {
        elapsed: std::time::Duration::ZERO,
        statement: &raw(&db, "DELETE FROM activity_log"),
        failed: false,
    });
    assert_eq!(
        reports(&explicit),
        vec![report(Verb::Delete, "activity_log")]
    );
    db.close().await.unwrap();
}

async fn concurrent_tasks_report_exactly_the_bypasses(t: &TestDb) {
    const ROUNDS: usize = 15;
    let checker = Checker::record();
    let db = checked_pool(t, &checker).await;
    let hooked = new_flag("hooked").insert(&db).await.unwrap();
    let bypassed = new_flag("bypassed").insert(&db).await.unwrap();
    let mut tasks = Vec::new();
    for worker in 0..3 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..ROUNDS {
                if worker == 0 {
                    let mut am = flag_by_id(bypassed.id);
                    am.cached_count = Set(i as i32);
                    feature_flag::Entity::update(am).exec(&db).await.unwrap();
                } else {
                    let mut am = flag_by_id(hooked.id);
                    am.description = Set(Some(format!("{worker}-{i}")));
                    am.update(&db).await.unwrap();
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let got = reports(&checker);
    assert_eq!(got, vec![report(Verb::Update, "feature_flag"); ROUNDS]);
    db.close().await.unwrap();
}

async fn strict_mode_panics_naming_table_and_verb(t: &TestDb) {
    let checker = Checker::strict();
    let db = checked_pool(t, &checker).await;
    let a = new_flag("a").insert(&db).await.unwrap();
    let handle = {
        let db = db.clone();
        tokio::spawn(async move {
            let sql = format!(
                "UPDATE feature_flag SET webhook_secret = 'top-secret-literal' WHERE id = {}",
                a.id
            );
            let _ = db.execute_raw(raw(&db, &sql)).await;
        })
    };
    activity_tests::assert_strict_mode_panicked(handle).await;
    assert_eq!(checker.bypassed(), 1);
    // Hooked writes still work under strict mode.
    let mut am = flag_by_id(a.id);
    am.active = Set(true);
    am.update(&db).await.unwrap();
    db.close().await.unwrap();
}

async fn stale_announcements_are_bounded(t: &TestDb) {
    let checker = Checker::record();
    let db = checked_pool(t, &checker).await;
    let a = new_flag("a").insert(&db).await.unwrap();
    let bypass = async || {
        let mut am = flag_by_id(a.id);
        am.cached_count = Set(1);
        feature_flag::Entity::update(am).exec(&db).await.unwrap();
    };
    // Announced three times, never followed by the statement: one announcement is left, so of
    // two bypasses one is reported.
    for _ in 0..3 {
        checked::announce::<feature_flag::Entity>(Verb::Update);
    }
    bypass().await;
    bypass().await;
    assert_eq!(
        reports(&checker),
        vec![report(Verb::Update, "feature_flag")]
    );
    // A no-op update announces nothing: the next bypass is reported.
    flag_by_id(a.id).update(&db).await.unwrap();
    bypass().await;
    assert_eq!(
        reports(&checker),
        vec![report(Verb::Update, "feature_flag")]
    );
    // An announcement of another task covers nothing here.
    tokio::spawn(async { checked::announce::<feature_flag::Entity>(Verb::Update) })
        .await
        .unwrap();
    bypass().await;
    assert_eq!(
        reports(&checker),
        vec![report(Verb::Update, "feature_flag")]
    );
    db.close().await.unwrap();
}

backend_tests!(
    registry_has_the_derived_tables,
    hooked_writes_are_not_reported,
    bypasses_are_reported,
    muted_writes_are_not_reported,
    unaudited_tables_are_not_reported,
    concurrent_tasks_report_exactly_the_bypasses,
    strict_mode_panics_naming_table_and_verb,
    stale_announcements_are_bounded,
);
