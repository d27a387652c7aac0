//! Logged bulk writes on every backend.

use activity_seaorm::bulk::{self, BulkMode};
use activity_seaorm::prelude::*;
use activity_seaorm::{ChangeAction, activity_log, transaction};
use activity_tests::models::feature_flag;
use activity_tests::{TestDb, backend_tests};
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
    let n = bulk::update_many::<feature_flag::Entity, _>(
        &t.db,
        feature_flag::Column::TeamId.eq(7),
        feature_flag::ActiveModel {
            webhook_secret: Set("rotated-secret-value".into()),
            active: Set(true),
            ..Default::default()
        },
        BulkMode::Summary,
    )
    .await
    .unwrap();
    assert_eq!(n, 20);
    let entries = t.entries().await;
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(
        (e.scope.as_str(), e.activity.as_str(), e.is_system),
        ("FeatureFlag", "bulk_updated", true)
    );
    let ctx = e.detail.context.clone().unwrap();
    assert_eq!(ctx["count"], json!(20));
    assert_eq!(ctx["columns"], json!(["enabled", "webhook_secret"]));
    assert!(ctx["filter"].as_str().unwrap().contains("team_id"), "{ctx}");
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
    assert_eq!(t.entries().await.len(), 21);
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

backend_tests!(
    per_row_update_logs_every_row,
    summary_mode_and_masks,
    muted_bulk_logs_nothing,
    per_row_insert_and_delete,
    rolled_back_bulk_leaves_nothing,
);
