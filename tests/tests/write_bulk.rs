//! Logged bulk writes on every backend.

use activity_seaorm::bulk::{self, BulkMode};
use activity_seaorm::entry::ChangeAction;
use activity_seaorm::prelude::*;
use activity_seaorm::{activity_log, transaction};
use activity_tests::models::feature_flag;
use activity_tests::{Backend, TestDb, backend_tests};
use scoped_futures::ScopedFutureExt;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, NotSet, PaginatorTrait, QueryFilter, Set};
use serde_json::json;

fn flag(i: usize, team: i64) -> feature_flag::ActiveModel {
    feature_flag::ActiveModel {
        id: NotSet,
        team_id: Set(team),
        key: Set(format!("bulk-{i}")),
        active: Set(false),
        filters: Set(json!({})),
        webhook_secret: Set("bulk-secret-value".into()),
        config: Set(json!({})),
        description: Set(None),
        cached_count: Set(0),
        last_accessed_at: Set(None),
    }
}

async fn seed(t: &TestDb, n: usize, team: i64) {
    let models: Vec<_> = (0..n).map(|i| flag(i, team)).collect();
    for chunk in models.chunks(250) {
        // Plain SeaORM: no hooks run, nothing is logged.
        feature_flag::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&t.db)
            .await
            .unwrap();
    }
    assert_eq!(activity_log::Entity::find().count(&t.db).await.unwrap(), 0);
}

fn alice() -> ActivityContext {
    ActivityContext::for_user(Actor::new("u-alice").with_name("alice"))
}

async fn per_row_update_logs_every_row(t: &TestDb) {
    seed(t, 1_000, 7).await;
    seed(t, 10, 8).await;
    let updated = ActivityContext::scope(alice(), async {
        transaction(&t.db, |txn| {
            async move {
                bulk::update_many::<feature_flag::Entity, _>(
                    txn,
                    feature_flag::Column::TeamId.eq(7),
                    feature_flag::ActiveModel {
                        active: Set(true),
                        ..Default::default()
                    },
                    BulkMode::PerRow,
                )
                .await
            }
            .scope_boxed()
        })
        .await
    })
    .await
    .unwrap();
    assert_eq!(updated, 1_000);
    assert_eq!(
        feature_flag::Entity::find()
            .filter(feature_flag::Column::Active.eq(true))
            .count(&t.db)
            .await
            .unwrap(),
        1_000
    );
    let entries = t.entries().await;
    assert_eq!(entries.len(), 1_000);
    let correlation = entries[0].correlation_id.clone();
    assert!(correlation.is_some());
    for e in &entries {
        assert_eq!(
            (e.scope.as_str(), e.activity.as_str()),
            ("FeatureFlag", "updated")
        );
        assert_eq!(e.user_id.as_deref(), Some("u-alice"));
        assert_eq!(e.team_id.as_deref(), Some("7"));
        assert_eq!(e.correlation_id, correlation);
        assert!(
            e.detail
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("bulk-"))
        );
        assert_eq!(
            e.detail.changes,
            vec![Change::new(
                "FeatureFlag",
                ChangeAction::Changed,
                Some("enabled"),
                json!(false),
                json!(true)
            )]
        );
    }
    let mut items: Vec<_> = entries.iter().map(|e| e.item_id.clone().unwrap()).collect();
    items.sort();
    items.dedup();
    assert_eq!(items.len(), 1_000, "one entry per row");
}

async fn summary_mode_and_masks(t: &TestDb) {
    seed(t, 20, 7).await;
    seed(t, 5, 8).await;
    // The filter names a masked column's value: it must never reach the log.
    let n = bulk::update_many::<feature_flag::Entity, _>(
        &t.db,
        feature_flag::Column::WebhookSecret.eq("bulk-secret-value"),
        feature_flag::ActiveModel {
            webhook_secret: Set("rotated-secret-value".into()),
            active: Set(true),
            cached_count: Set(99),
            ..Default::default()
        },
        BulkMode::Summary,
    )
    .await
    .unwrap();
    assert_eq!(n, 25);
    let entries = t.entries().await;
    // One entry per tenant, each in its tenant's feed, with that tenant's count.
    let mut tenants: Vec<(Option<String>, serde_json::Value)> = entries
        .iter()
        .map(|e| {
            (
                e.team_id.clone(),
                e.detail.context.clone().unwrap()["count"].clone(),
            )
        })
        .collect();
    tenants.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        tenants,
        [(Some("7".into()), json!(20)), (Some("8".into()), json!(5))]
    );
    let e = entries
        .iter()
        .find(|e| e.team_id.as_deref() == Some("7"))
        .unwrap();
    assert_eq!(
        (e.scope.as_str(), e.activity.as_str(), e.is_system),
        ("FeatureFlag", "bulk_updated", true)
    );
    let ctx = e.detail.context.clone().unwrap();
    // Column names and counts only: no filter text, no bound values; the excluded
    // `cached_count` is not even named.
    assert_eq!(
        ctx,
        json!({"count": 20, "columns": ["enabled", "webhook_secret"]})
    );
    let feed =
        activity_seaorm::load_activity(&t.db, &activity_seaorm::ActivityQuery::for_team("8"))
            .await
            .unwrap();
    assert_eq!(
        feed.results.len(),
        1,
        "the summary shows in the tenant's feed"
    );
    assert!(
        !t.dump().await.contains("bulk-secret-value"),
        "the filter's value leaked"
    );
    assert_eq!(
        e.detail.changes,
        vec![
            Change::new(
                "FeatureFlag",
                ChangeAction::Changed,
                Some("enabled"),
                json!(null),
                json!(true)
            ),
            Change::new(
                "FeatureFlag",
                ChangeAction::Changed,
                Some("webhook_secret"),
                json!(null),
                json!("masked")
            ),
        ]
    );
    // Per-row mode masks too.
    bulk::update_many::<feature_flag::Entity, _>(
        &t.db,
        feature_flag::Column::TeamId.eq(7),
        feature_flag::ActiveModel {
            webhook_secret: Set("third-secret-value".into()),
            ..Default::default()
        },
        BulkMode::PerRow,
    )
    .await
    .unwrap();
    let dump = t.dump().await;
    for secret in [
        "bulk-secret-value",
        "rotated-secret-value",
        "third-secret-value",
    ] {
        assert!(!dump.contains(secret), "{secret} leaked");
    }
    assert_eq!(t.entries().await.len(), 22);
}

async fn muted_bulk_logs_nothing(t: &TestDb) {
    seed(t, 50, 7).await;
    let _muted = mute_signals();
    let n = bulk::update_many::<feature_flag::Entity, _>(
        &t.db,
        feature_flag::Column::TeamId.eq(7),
        feature_flag::ActiveModel {
            active: Set(true),
            ..Default::default()
        },
        BulkMode::PerRow,
    )
    .await
    .unwrap();
    assert_eq!(n, 50);
    assert_eq!(
        bulk::delete_many::<feature_flag::Entity, _>(
            &t.db,
            feature_flag::Column::TeamId.eq(7),
            BulkMode::Summary
        )
        .await
        .unwrap(),
        50
    );
    assert_eq!(activity_log::Entity::find().count(&t.db).await.unwrap(), 0);
}

async fn per_row_insert_and_delete(t: &TestDb) {
    let models: Vec<_> = (0..30).map(|i| flag(i, 9)).collect();
    let inserted = ActivityContext::scope(
        alice(),
        bulk::insert_many::<feature_flag::Entity, _>(&t.db, models, BulkMode::PerRow),
    )
    .await
    .unwrap();
    assert_eq!(inserted, 30);
    let deleted = ActivityContext::scope(
        alice(),
        bulk::delete_many::<feature_flag::Entity, _>(
            &t.db,
            feature_flag::Column::Key.like("bulk-1%"),
            BulkMode::PerRow,
        ),
    )
    .await
    .unwrap();
    assert_eq!(deleted, 11, "bulk-1 and bulk-10..19");
    let entries = t.entries().await;
    let created = entries.iter().filter(|e| e.activity == "created").count();
    let deleted: Vec<_> = entries.iter().filter(|e| e.activity == "deleted").collect();
    assert_eq!(created, 30);
    assert_eq!(deleted.len(), 11);
    assert!(
        deleted
            .iter()
            .all(|e| e.detail.name.as_deref().unwrap().starts_with("bulk-1"))
    );
    assert!(
        entries
            .iter()
            .all(|e| e.item_id.is_some() && e.user_id.as_deref() == Some("u-alice"))
    );

    let n = bulk::insert_many::<feature_flag::Entity, _>(
        &t.db,
        (100..105).map(|i| flag(i, 9)).collect(),
        BulkMode::Summary,
    )
    .await
    .unwrap();
    assert_eq!(n, 5);
    let last = t.entries().await.pop().unwrap();
    assert_eq!(
        (
            last.activity.as_str(),
            last.detail.context.unwrap()["count"].clone()
        ),
        ("bulk_created", json!(5))
    );
}

async fn rolled_back_bulk_leaves_nothing(t: &TestDb) {
    seed(t, 100, 7).await;
    let result: Result<u64, DbErr> = transaction(&t.db, |txn| {
        async move {
            bulk::delete_many::<feature_flag::Entity, _>(
                txn,
                feature_flag::Column::TeamId.eq(7),
                BulkMode::PerRow,
            )
            .await?;
            Err(DbErr::Custom("abort".into()))
        }
        .scope_boxed()
    })
    .await;
    assert!(result.is_err());
    assert_eq!(
        feature_flag::Entity::find().count(&t.db).await.unwrap(),
        100
    );
    assert_eq!(activity_log::Entity::find().count(&t.db).await.unwrap(), 0);
}

/// Two per-row jobs over overlapping rows, each in its own transaction, at once: both lock in
/// primary-key order, batch by batch, so neither deadlocks the other; every row of the overlap
/// gets both entries, and the second's `before` is the first's `after`.
async fn overlapping_per_row_jobs(t: &TestDb) {
    seed(t, 1_200, 7).await;
    let job = |filter: sea_orm::sea_query::SimpleExpr, values: feature_flag::ActiveModel| {
        let db = t.db.clone();
        tokio::spawn(async move {
            transaction(&db, |txn| {
                async move {
                    bulk::update_many::<feature_flag::Entity, _>(
                        txn,
                        filter,
                        values,
                        BulkMode::PerRow,
                    )
                    .await
                }
                .scope_boxed()
            })
            .await
        })
    };
    // SQLite has one writer at a time (a second would fail with "database is locked"): there
    // the jobs run one after the other.
    let sequential = t.backend == Backend::Sqlite;
    let low = job(
        feature_flag::Column::Id.lte(800),
        feature_flag::ActiveModel {
            description: Set(Some("low".into())),
            ..Default::default()
        },
    );
    let mut low = Some(low);
    if sequential && let Some(low) = low.take() {
        assert_eq!(low.await.unwrap().unwrap(), 800);
    }
    let high = job(
        feature_flag::Column::Id.gt(300),
        feature_flag::ActiveModel {
            description: Set(Some("high".into())),
            ..Default::default()
        },
    );
    if let Some(low) = low {
        assert_eq!(low.await.unwrap().unwrap(), 800);
    }
    assert_eq!(high.await.unwrap().unwrap(), 900);
    let entries = t.entries().await;
    assert_eq!(entries.len(), 1_700);
    let mut by_item: std::collections::BTreeMap<i32, Vec<(serde_json::Value, serde_json::Value)>> =
        Default::default();
    for e in &entries {
        let id: i32 = e.item_id.as_deref().unwrap().parse().unwrap();
        let c = &e.detail.changes[0];
        by_item
            .entry(id)
            .or_default()
            .push((c.before.clone(), c.after.clone()));
    }
    for (id, changes) in by_item {
        if (301..=800).contains(&id) {
            assert_eq!(changes.len(), 2, "row {id}");
            assert_eq!(changes[0].1, changes[1].0, "row {id}: the chain holds");
        } else {
            assert_eq!(changes.len(), 1, "row {id}");
        }
    }
}

/// An `update_without_returning` is settled at flush from the row as it then is; a bulk
/// update (logged or muted) of the same row in between would be taken for its change. The bulk
/// settles it first: each statement keeps its own entry.
async fn a_bulk_settles_earlier_unconfirmed_updates_first(t: &TestDb) {
    use sea_orm::ActiveModelTrait;
    let row = flag(1, 7).insert(&t.db).await.unwrap();
    let id = row.id;
    let key = |k: &str| feature_flag::ActiveModel {
        key: Set(k.into()),
        ..Default::default()
    };
    for muted in [false, true] {
        transaction(&t.db, |txn| {
            let row = row.clone();
            async move {
                let mut am: feature_flag::ActiveModel = row.into();
                am.key = Set(format!("uwr-{muted}"));
                am.update_without_returning(txn).await?;
                let bulk = bulk::update_many::<feature_flag::Entity, _>(
                    txn,
                    feature_flag::Column::Id.eq(id),
                    key(&format!("bulk-{muted}")),
                    BulkMode::PerRow,
                );
                if muted {
                    activity_seaorm::mute_scopes(&["FeatureFlag"], bulk).await?;
                } else {
                    bulk.await?;
                }
                Ok::<_, DbErr>(())
            }
            .scope_boxed()
        })
        .await
        .unwrap();
    }
    let keys: Vec<(serde_json::Value, serde_json::Value)> = t
        .entries()
        .await
        .into_iter()
        .filter(|e| e.activity == "updated")
        .map(|e| {
            let c = &e.detail.changes[0];
            (c.before.clone(), c.after.clone())
        })
        .collect();
    let first = flag(1, 7).key.unwrap();
    assert_eq!(
        keys,
        [
            (json!(first), json!("uwr-false")),
            (json!("uwr-false"), json!("bulk-false")),
            // The muted bulk logs nothing, and its change is not the earlier update's.
            (json!("bulk-false"), json!("uwr-true")),
        ]
    );
}

/// A summary of a statement that matched nothing is no entry, for a model with tenant fields
/// (no tenant had a row) as for one without.
async fn a_summary_of_nothing_is_no_entry(t: &TestDb) {
    use activity_tests::models::setting;
    let nothing = bulk::update_many::<setting::Entity, _>(
        &t.db,
        setting::Column::Key.eq("no-such-key"),
        setting::ActiveModel {
            value: Set("x".into()),
            ..Default::default()
        },
        BulkMode::Summary,
    )
    .await
    .unwrap();
    let none_deleted = bulk::delete_many::<feature_flag::Entity, _>(
        &t.db,
        feature_flag::Column::TeamId.eq(-1),
        BulkMode::Summary,
    )
    .await
    .unwrap();
    assert_eq!((nothing, none_deleted), (0, 0));
    assert!(t.entries().await.is_empty());
}

/// SeaORM's own statements, `exec_logged` instead of `exec`: the filter, values and rows the
/// statement holds are what the logged bulk writes receive, and what they cannot log is refused
/// before anything is written.
async fn seaorm_shaped_bulk_writes_log_like_the_bulk_functions(t: &TestDb) {
    use activity_seaorm::bulk::ExecLogged;
    use sea_orm::sea_query::{Expr, ExprTrait};
    seed(t, 20, 7).await;
    seed(t, 5, 8).await;
    let counts = ActivityContext::scope(alice(), async {
        transaction(&t.db, |txn| {
            async move {
                let updated = feature_flag::Entity::update_many()
                    .set(feature_flag::ActiveModel {
                        active: Set(true),
                        description: Set(Some("it's $1 \"quoted\"".into())),
                        ..Default::default()
                    })
                    .filter(feature_flag::Column::TeamId.eq(7))
                    .filter(feature_flag::Column::Key.is_in(["bulk-1", "bulk-2", "bulk-3"]))
                    .exec_logged(txn, BulkMode::PerRow)
                    .await?;
                let deleted = feature_flag::Entity::delete_many()
                    .filter(feature_flag::Column::TeamId.eq(8))
                    .filter(feature_flag::Column::Key.ne("bulk-0"))
                    .exec_logged(txn, BulkMode::PerRow)
                    .await?;
                let inserted = feature_flag::Entity::insert_many([flag(100, 7), flag(101, 7)])
                    .exec_logged(txn, BulkMode::PerRow)
                    .await?;
                Ok::<_, DbErr>((updated, deleted, inserted))
            }
            .scope_boxed()
        })
        .await
    })
    .await
    .unwrap();
    assert_eq!(counts, (3, 4, 2));
    let entries = t.entries().await;
    let mut seen: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            assert_eq!(e.user_id.as_deref(), Some("u-alice"));
            (
                e.activity.clone(),
                e.detail.name.clone().unwrap_or_default(),
                e.team_id.clone().unwrap_or_default(),
            )
        })
        .collect();
    seen.sort();
    let want: Vec<(String, String, String)> = [
        ("created", "bulk-100", "7"),
        ("created", "bulk-101", "7"),
        ("deleted", "bulk-1", "8"),
        ("deleted", "bulk-2", "8"),
        ("deleted", "bulk-3", "8"),
        ("deleted", "bulk-4", "8"),
        ("updated", "bulk-1", "7"),
        ("updated", "bulk-2", "7"),
        ("updated", "bulk-3", "7"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(seen, want);
    let update = entries.iter().find(|e| e.activity == "updated").unwrap();
    assert_eq!(
        update
            .detail
            .changes
            .iter()
            .map(|c| (c.field.as_deref(), c.after.clone()))
            .collect::<Vec<_>>(),
        [
            (Some("enabled"), json!(true)),
            (Some("description"), json!("it's $1 \"quoted\""))
        ]
    );
    // The rows are what the statements said: team 8's bulk-1 untouched by team 7's update.
    let active: Vec<(i64, String)> = feature_flag::Entity::find()
        .filter(feature_flag::Column::Active.eq(true))
        .all(&t.db)
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.team_id, f.key))
        .collect();
    assert_eq!(active.len(), 3);
    assert!(active.iter().all(|(team, _)| *team == 7));

    // A SET to an expression has no value to log: refused, nothing written.
    let err = ActivityContext::scope(
        alice(),
        feature_flag::Entity::update_many()
            .col_expr(
                feature_flag::Column::CachedCount,
                Expr::col(feature_flag::Column::CachedCount).add(1),
            )
            .filter(feature_flag::Column::TeamId.eq(7))
            .exec_logged(&t.db, BulkMode::PerRow),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("expression"), "{err}");
    assert_eq!(
        feature_flag::Entity::find()
            .filter(feature_flag::Column::CachedCount.ne(0))
            .count(&t.db)
            .await
            .unwrap(),
        0
    );
    assert_eq!(t.entries().await.len(), 9);
}

backend_tests!(
    seaorm_shaped_bulk_writes_log_like_the_bulk_functions,
    a_summary_of_nothing_is_no_entry,
    a_bulk_settles_earlier_unconfirmed_updates_first,
    overlapping_per_row_jobs,
    per_row_update_logs_every_row,
    summary_mode_and_masks,
    muted_bulk_logs_nothing,
    per_row_insert_and_delete,
    rolled_back_bulk_leaves_nothing,
);
