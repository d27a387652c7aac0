//! The SeaORM write path on every backend: hooks, before-state, commit-time flush.

use activity_seaorm::entry::ChangeAction;
use activity_seaorm::prelude::*;
use activity_seaorm::{ActivityEntry, activity_log, transaction};
use activity_tests::models::{document, feature_flag, membership, setting};
use activity_tests::{TestDb, backend_tests, flag_by_id as by_id};
use scoped_futures::ScopedFutureExt;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    ModelTrait, NotSet, PaginatorTrait, QueryFilter, Set, TransactionTrait,
};
use serde_json::{Value, json};

const SECRET: &str = "s3cr3t-hook-value";

fn new_flag(key: &str) -> feature_flag::ActiveModel {
    feature_flag::ActiveModel {
        id: NotSet,
        team_id: Set(7),
        key: Set(key.to_owned()),
        active: Set(false),
        filters: Set(json!({"groups": [{"rollout": 10}]})),
        webhook_secret: Set(SECRET.to_owned()),
        config: Set(json!({"url": "https://hooks.example", "token": "tok-original"})),
        description: Set(None),
        cached_count: Set(0),
        last_accessed_at: Set(None),
    }
}

/// The changes of each `updated` entry, in order.
fn update_changes(entries: &[ActivityEntry]) -> Vec<Vec<Change>> {
    entries
        .iter()
        .filter(|e| e.activity == "updated")
        .map(|e| e.detail.changes.clone())
        .collect()
}

/// The one `updated` entry of a flag switched on.
fn enabled_turned_on() -> Vec<Vec<Change>> {
    vec![vec![change(
        ChangeAction::Changed,
        "enabled",
        json!(false),
        json!(true),
    )]]
}

fn alice() -> ActivityContext {
    ActivityContext::for_user(Actor::new("u-alice").with_name("alice"))
        .with_request_id("req-1")
        .with_ip("10.1.2.3")
        .with_user_agent("test-agent/1.0")
}

fn change(action: ChangeAction, field: &str, before: Value, after: Value) -> Change {
    Change::new("FeatureFlag", action, Some(field), before, after)
}

/// The parts of an entry every test pins.
fn summary(e: &ActivityEntry) -> (String, String, Option<String>, Option<String>, bool) {
    (
        e.scope.clone(),
        e.activity.clone(),
        e.item_id.clone(),
        e.user_id.clone(),
        e.is_system,
    )
}

async fn create_update_delete_with_actor(t: &TestDb) {
    let id = ActivityContext::scope(alice(), async {
        let flag = new_flag("beta-checkout").insert(&t.db).await.unwrap();
        let mut am = flag.into_active_model();
        am.active = Set(true);
        am.description = Set(Some("checkout v2".into()));
        let flag = am.update(&t.db).await.unwrap();
        let id = flag.id;
        flag.delete(&t.db).await.unwrap();
        id
    })
    .await;

    let entries = t.entries().await;
    let item = Some(id.to_string());
    let user = Some("u-alice".to_owned());
    assert_eq!(
        entries.iter().map(summary).collect::<Vec<_>>(),
        vec![
            (
                "FeatureFlag".into(),
                "created".into(),
                item.clone(),
                user.clone(),
                false
            ),
            (
                "FeatureFlag".into(),
                "updated".into(),
                item.clone(),
                user.clone(),
                false
            ),
            (
                "FeatureFlag".into(),
                "deleted".into(),
                item.clone(),
                user.clone(),
                false
            ),
        ]
    );
    for e in &entries {
        assert_eq!(e.user_name.as_deref(), Some("alice"));
        assert_eq!(e.team_id.as_deref(), Some("7"), "team from the model field");
        assert_eq!(e.request_id.as_deref(), Some("req-1"));
        assert_eq!(e.ip_address.as_deref(), Some("10.1.2.3"));
        assert_eq!(e.user_agent.as_deref(), Some("test-agent/1.0"));
        assert_eq!(e.detail.name.as_deref(), Some("beta-checkout"));
        assert!(!e.was_impersonated);
        assert_eq!(e.impersonated_by, None);
    }
    assert_eq!(entries[0].detail.changes, vec![]);
    assert_eq!(
        entries[1].detail.changes,
        vec![
            change(ChangeAction::Changed, "enabled", json!(false), json!(true)),
            change(
                ChangeAction::Created,
                "description",
                Value::Null,
                json!("checkout v2")
            ),
        ]
    );
    // A deletion records every tracked field that is not empty (masked ones masked), so the
    // item can be read back and restored.
    let recorded: Vec<(&str, &Value)> = entries[2]
        .detail
        .changes
        .iter()
        .map(|c| (c.field.as_deref().unwrap(), &c.before))
        .collect();
    assert_eq!(
        recorded,
        [
            ("team_id", &json!(7)),
            ("key", &json!("beta-checkout")),
            ("enabled", &json!(true)),
            ("filters", &json!({"groups": [{"rollout": 10}]})),
            ("webhook_secret", &json!("masked")),
            ("config", &json!({"token": "masked", "url": "masked"})),
            ("description", &json!("checkout v2")),
        ]
    );
    assert!(
        entries[2]
            .detail
            .changes
            .iter()
            .all(|c| c.action == ChangeAction::Deleted && c.after.is_null())
    );
}

async fn impersonation_and_system(t: &TestDb) {
    let ctx = ActivityContext::impersonating(
        Actor::new("u-bob").with_name("bob"),
        Actor::new("staff-1").with_name("support"),
    );
    ActivityContext::scope(ctx, async {
        new_flag("imp").insert(&t.db).await.unwrap();
    })
    .await;
    new_flag("sys").insert(&t.db).await.unwrap();

    let entries = t.entries().await;
    assert_eq!(entries.len(), 2);
    let imp = &entries[0];
    assert_eq!(imp.user_id.as_deref(), Some("u-bob"));
    assert_eq!(imp.user_name.as_deref(), Some("bob"));
    assert_eq!(imp.impersonated_by.as_deref(), Some("staff-1"));
    assert!(imp.was_impersonated);
    assert!(!imp.is_system);
    let sys = &entries[1];
    assert_eq!(
        (sys.user_id.as_deref(), sys.is_system, sys.was_impersonated),
        (None, true, false)
    );
    assert_eq!(sys.detail.name.as_deref(), Some("sys"));
}

async fn masks_never_leak(t: &TestDb) {
    let flag = new_flag("masked").insert(&t.db).await.unwrap();
    let mut am = flag.into_active_model();
    am.webhook_secret = Set(format!("{SECRET}-rotated"));
    am.config = Set(json!({"url": "https://hooks.example", "token": "tok-rotated"}));
    am.update(&t.db).await.unwrap();

    let entries = t.entries().await;
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[1].detail.changes,
        vec![
            change(
                ChangeAction::Changed,
                "webhook_secret",
                json!("masked"),
                json!("masked")
            ),
            change(
                ChangeAction::Changed,
                "config",
                json!({"url": "masked", "token": "masked"}),
                json!({"url": "masked", "token": "changed"}),
            ),
        ]
    );
    let dump = t.dump().await;
    for secret in [SECRET, "tok-original", "tok-rotated", "hooks.example"] {
        assert!(
            !dump.contains(secret),
            "{secret} leaked into activity_log: {dump}"
        );
    }
}

async fn exclusions_and_signal_exclusions_write_nothing(t: &TestDb) {
    let flag = new_flag("quiet").insert(&t.db).await.unwrap();
    t.take_statements();

    let mut am = flag.clone().into_active_model();
    am.cached_count = Set(99);
    am.update(&t.db).await.unwrap();
    let mut am = flag.clone().into_active_model();
    am.last_accessed_at = Set(Some(chrono::Utc::now()));
    am.update(&t.db).await.unwrap();

    let statements = t.take_statements();
    let reads = statements
        .iter()
        .filter(|s| s.trim_start().starts_with("SELECT"))
        .count();
    let own_reads = statements.iter().filter(|s| s.contains(" FOR ")).count();
    assert_eq!(
        own_reads, 0,
        "no before-read for excluded/signal-excluded changes: {statements:?}"
    );
    if t.db_backend() != sea_orm::DbBackend::MySql {
        assert_eq!(reads, 0, "{statements:?}");
    }
    assert_eq!(t.entries().await.len(), 1, "only the insert is logged");
}

async fn empty_values_and_no_op_updates(t: &TestDb) {
    let flag = new_flag("empties").insert(&t.db).await.unwrap();
    // None -> "" and {..} -> same value: no change at all.
    let mut am = flag.clone().into_active_model();
    am.description = Set(Some(String::new()));
    am.active = Set(false);
    am.filters = Set(json!({"groups": [{"rollout": 10.0}]}));
    let flag = am.update(&t.db).await.unwrap();
    // "" -> value: created; value -> None: deleted.
    let mut am = flag.into_active_model();
    am.description = Set(Some("text".into()));
    let flag = am.update(&t.db).await.unwrap();
    let mut am = flag.into_active_model();
    am.description = Set(None);
    am.update(&t.db).await.unwrap();

    let entries = t.entries().await;
    let changes: Vec<Vec<Change>> = entries.iter().map(|e| e.detail.changes.clone()).collect();
    assert_eq!(
        changes,
        vec![
            vec![],
            vec![change(
                ChangeAction::Created,
                "description",
                Value::Null,
                json!("text")
            )],
            vec![change(
                ChangeAction::Deleted,
                "description",
                json!("text"),
                Value::Null
            )],
        ]
    );
}

async fn update_of_missing_row_writes_nothing(t: &TestDb) {
    let mut am = new_flag("ghost");
    am.id = Set(424_242);
    let err = am.update(&t.db).await.unwrap_err();
    assert!(matches!(err, DbErr::RecordNotUpdated), "{err:?}");
    assert_eq!(t.entries().await, vec![]);
}

async fn delete_by_primary_key_reads_the_name(t: &TestDb) {
    let flag = new_flag("to-delete").insert(&t.db).await.unwrap();
    feature_flag::ActiveModel {
        id: Set(flag.id),
        ..Default::default()
    }
    .delete(&t.db)
    .await
    .unwrap();
    let entries = t.entries().await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].activity, "deleted");
    assert_eq!(entries[1].detail.name.as_deref(), Some("to-delete"));
    assert_eq!(entries[1].item_id, Some(flag.id.to_string()));
    assert_eq!(feature_flag::Entity::find().count(&t.db).await.unwrap(), 0);
}

async fn save_both_branches(t: &TestDb) {
    let saved = new_flag("saved").save(&t.db).await.unwrap();
    let mut am = saved;
    am.active = Set(true);
    am.save(&t.db).await.unwrap();
    let activities: Vec<String> = t.entries().await.into_iter().map(|e| e.activity).collect();
    assert_eq!(activities, vec!["created", "updated"]);
}

async fn transaction_commits_entries_with_one_correlation_id(t: &TestDb) {
    ActivityContext::scope(alice(), async {
        transaction(&t.db, |txn| {
            async move {
                let a = new_flag("tx-a").insert(txn).await?;
                let mut am = a.into_active_model();
                am.active = Set(true);
                am.update(txn).await?;
                new_flag("tx-b").insert(txn).await?;
                // Nothing is written before COMMIT.
                assert_eq!(activity_log::Entity::find().count(txn).await?, 0);
                Ok::<_, DbErr>(())
            }
            .scope_boxed()
        })
        .await
        .unwrap();
    })
    .await;
    new_flag("after").insert(&t.db).await.unwrap();

    let entries = t.entries().await;
    assert_eq!(entries.len(), 4);
    let tx_ids: Vec<_> = entries[..3]
        .iter()
        .map(|e| e.correlation_id.clone())
        .collect();
    assert!(tx_ids[0].is_some());
    assert!(tx_ids.iter().all(|c| *c == tx_ids[0]), "{tx_ids:?}");
    assert_ne!(entries[3].correlation_id, tx_ids[0]);
    assert!(
        entries[..3]
            .iter()
            .all(|e| e.user_id.as_deref() == Some("u-alice"))
    );
}

async fn rollback_leaves_nothing(t: &TestDb) {
    let result: Result<(), DbErr> = transaction(&t.db, |txn| {
        async move {
            new_flag("rolled-back").insert(txn).await?;
            Err(DbErr::Custom("boom".into()))
        }
        .scope_boxed()
    })
    .await;
    assert!(result.is_err());
    assert_eq!(feature_flag::Entity::find().count(&t.db).await.unwrap(), 0);
    assert_eq!(t.entries().await, vec![]);

    // The caller's own transaction: entries are written in it and roll back with it.
    let txn = sea_orm::TransactionTrait::begin(&t.db).await.unwrap();
    new_flag("raw-txn").insert(&txn).await.unwrap();
    sea_orm::TransactionSession::rollback(txn).await.unwrap();
    assert_eq!(t.entries().await, vec![]);
}

async fn savepoints_keep_or_drop_their_entries(t: &TestDb) {
    transaction(&t.db, |txn| {
        async move {
            new_flag("outer").insert(txn).await?;
            let inner: Result<(), DbErr> = transaction(txn, |sp| {
                async move {
                    new_flag("inner-rolled-back").insert(sp).await?;
                    Err(DbErr::Custom("inner fails".into()))
                }
                .scope_boxed()
            })
            .await;
            assert!(inner.is_err());
            transaction(txn, |sp| {
                async move {
                    new_flag("inner-kept").insert(sp).await?;
                    Ok::<_, DbErr>(())
                }
                .scope_boxed()
            })
            .await?;
            Ok::<_, DbErr>(())
        }
        .scope_boxed()
    })
    .await
    .unwrap();

    let names: Vec<Option<String>> = t
        .entries()
        .await
        .into_iter()
        .map(|e| e.detail.name)
        .collect();
    assert_eq!(
        names,
        vec![Some("outer".to_owned()), Some("inner-kept".to_owned())]
    );
    let correlation: Vec<_> = t
        .entries()
        .await
        .into_iter()
        .map(|e| e.correlation_id)
        .collect();
    assert_eq!(correlation[0], correlation[1]);

    // An outer rollback drops a released savepoint's entries too.
    let _: Result<(), DbErr> = transaction(&t.db, |txn| {
        async move {
            transaction(txn, |sp| {
                async move {
                    new_flag("released-then-rolled-back").insert(sp).await?;
                    Ok::<_, DbErr>(())
                }
                .scope_boxed()
            })
            .await?;
            Err(DbErr::Custom("outer fails".into()))
        }
        .scope_boxed()
    })
    .await;
    assert_eq!(t.entries().await.len(), 2);
}

async fn mute_guard_and_scopes(t: &TestDb) {
    {
        let _muted = mute_signals();
        tokio::task::yield_now().await;
        new_flag("muted").insert(&t.db).await.unwrap();
    }
    mute_scopes(&["Setting"], async {
        new_flag("scope-not-muted").insert(&t.db).await.unwrap();
        setting::ActiveModel {
            key: Set("theme".into()),
            value: Set("dark".into()),
        }
        .insert(&t.db)
        .await
        .unwrap();
    })
    .await;
    let names: Vec<_> = t
        .entries()
        .await
        .into_iter()
        .map(|e| e.detail.name)
        .collect();
    assert_eq!(names, vec![Some("scope-not-muted".to_owned())]);
}

async fn muted_tracked_update_leaves_no_stale_before_state(t: &TestDb) {
    let flag = new_flag("stale").insert(&t.db).await.unwrap();
    let flag = mute_signals_in(async {
        let mut tracked = track(flag);
        tracked.active = Set(true);
        tracked.update(&t.db).await.unwrap()
    })
    .await;
    // Same task, same item, unmuted hook path: the diff must start from the real row.
    let mut am = flag.into_active_model();
    am.description = Set(Some("fresh".into()));
    am.update(&t.db).await.unwrap();
    let entries = t.entries().await;
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[1].detail.changes,
        vec![change(
            ChangeAction::Created,
            "description",
            Value::Null,
            json!("fresh")
        )]
    );
}

/// A muted update between an `update_without_returning` and a later update of the same row must
/// still settle the earlier one first: else the later update would diff the earlier before-state
/// against a row that already holds the muted change, and log that change after all.
async fn muted_update_settles_an_earlier_update_first(t: &TestDb) {
    let flag = new_flag("uwr-muted").insert(&t.db).await.unwrap();
    let id = flag.id;
    transaction(&t.db, |txn| {
        async move {
            let mut am = flag.into_active_model();
            am.active = Set(true);
            am.update_without_returning(txn).await?;
            mute_signals_in(async {
                let mut am = by_id(id);
                am.description = Set(Some("muted".into()));
                am.update(txn).await
            })
            .await?;
            let mut am = by_id(id);
            am.key = Set("uwr-muted-renamed".into());
            am.update(txn).await?;
            Ok::<_, DbErr>(())
        }
        .scope_boxed()
    })
    .await
    .unwrap();
    let mut expected = enabled_turned_on();
    expected.push(vec![change(
        ChangeAction::Changed,
        "key",
        json!("uwr-muted"),
        json!("uwr-muted-renamed"),
    )]);
    assert_eq!(update_changes(&t.entries().await), expected);
}

async fn concurrent_tasks_never_see_each_others_actor(t: &TestDb) {
    let db = t.db.clone();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(ActivityContext::scope(
                ActivityContext::for_user(Actor::new(format!("user-{i}"))),
                async move {
                    let flag = new_flag(&format!("flag-{i}")).insert(&db).await.unwrap();
                    tokio::task::yield_now().await;
                    let mut am = flag.into_active_model();
                    am.active = Set(true);
                    am.update(&db).await.unwrap();
                },
            ))
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let entries = t.entries().await;
    assert_eq!(entries.len(), 400);
    for e in entries {
        let name = e.detail.name.unwrap();
        let i = name.trim_start_matches("flag-");
        assert_eq!(
            e.user_id,
            Some(format!("user-{i}")),
            "{} misattributed",
            e.activity
        );
    }
}

async fn composite_uuid_and_string_keys(t: &TestDb) {
    let m = membership::ActiveModel {
        org_id: Set("org-1".into()),
        user_id: Set(5),
        role: Set("member".into()),
    }
    .insert(&t.db)
    .await
    .unwrap();
    let mut am = m.into_active_model();
    am.role = Set("admin".into());
    am.update(&t.db).await.unwrap();

    let id = uuid::Uuid::now_v7();
    let doc = document::ActiveModel {
        id: Set(id),
        title: Set("Plan".into()),
        words: Set(12),
    }
    .insert(&t.db)
    .await
    .unwrap();
    doc.delete(&t.db).await.unwrap();

    setting::ActiveModel {
        key: Set("locale".into()),
        value: Set("fr".into()),
    }
    .insert(&t.db)
    .await
    .unwrap();

    let entries = t.entries().await;
    let rows: Vec<_> = entries
        .iter()
        .map(|e| (e.scope.as_str(), e.activity.as_str(), e.item_id.clone()))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("Membership", "created", Some("org-1,5".to_owned())),
            ("Membership", "updated", Some("org-1,5".to_owned())),
            ("Document", "created", Some(id.hyphenated().to_string())),
            ("Document", "deleted", Some(id.hyphenated().to_string())),
            ("Setting", "created", Some("locale".to_owned())),
        ]
    );
    assert_eq!(entries[0].organization_id.as_deref(), Some("org-1"));
    assert_eq!(
        entries[1].detail.changes,
        vec![Change::new(
            "Membership",
            ChangeAction::Changed,
            Some("role"),
            json!("member"),
            json!("admin")
        )]
    );
    // `snapshot` records every tracked field on create and delete.
    assert_eq!(
        entries[2].detail.changes,
        vec![
            Change::new(
                "Document",
                ChangeAction::Created,
                Some("title"),
                Value::Null,
                json!("Plan")
            ),
            Change::new(
                "Document",
                ChangeAction::Created,
                Some("words"),
                Value::Null,
                json!(12)
            ),
        ]
    );
    assert_eq!(
        entries[3].detail.changes,
        vec![
            Change::new(
                "Document",
                ChangeAction::Deleted,
                Some("title"),
                json!("Plan"),
                Value::Null
            ),
            Change::new(
                "Document",
                ChangeAction::Deleted,
                Some("words"),
                json!(12),
                Value::Null
            ),
        ]
    );
}

async fn tracked_updates_need_no_read(t: &TestDb) {
    let flags: Vec<_> = {
        let mut v = Vec::new();
        for i in 0..10 {
            v.push(
                new_flag(&format!("tracked-{i}"))
                    .insert(&t.db)
                    .await
                    .unwrap(),
            );
        }
        v
    };
    t.take_statements();
    transaction(&t.db, |txn| {
        async move {
            for flag in flags {
                let mut tracked = track(flag);
                tracked.active = Set(true);
                tracked.update(txn).await?;
            }
            Ok::<_, DbErr>(())
        }
        .scope_boxed()
    })
    .await
    .unwrap();
    let statements = t.take_statements();
    let count = |prefix: &str| {
        statements
            .iter()
            .filter(|s| s.trim_start().starts_with(prefix))
            .count()
    };
    let log_inserts = statements
        .iter()
        .filter(|s| s.contains("activity_log"))
        .count();
    assert_eq!(count("UPDATE"), 10, "{statements:#?}");
    assert_eq!(
        log_inserts, 1,
        "exactly one extra statement per transaction: {statements:#?}"
    );
    assert!(
        statements.iter().all(|s| !s.contains(" FOR ")),
        "{statements:#?}"
    );
    if t.db_backend() != sea_orm::DbBackend::MySql {
        // MySQL has no UPDATE .. RETURNING, so SeaORM itself re-reads updated rows there.
        assert_eq!(count("SELECT"), 0, "{statements:#?}");
    }
    let updated = t
        .entries()
        .await
        .into_iter()
        .filter(|e| e.activity == "updated")
        .count();
    assert_eq!(updated, 10);
}

/// The `deleted` entries of the log: (name, `enabled` before).
async fn deletions(t: &TestDb) -> Vec<(Option<String>, Value)> {
    t.entries()
        .await
        .into_iter()
        .filter(|e| e.activity == "deleted")
        .map(|e| {
            let enabled = e
                .detail
                .changes
                .iter()
                .find(|c| c.field.as_deref() == Some("enabled"))
                .map(|c| c.before.clone())
                .unwrap_or(Value::Null);
            (e.detail.name.clone(), enabled)
        })
        .collect()
}

/// `Tracked::delete` of an unchanged row sends the DELETE and the log INSERT only (PostgreSQL,
/// SQLite; MySQL reads as the hook path does), and the entry records the row; of a row changed
/// since it was loaded, the entry records the row as deleted, never the stale model; of a row
/// already gone, nothing is deleted and nothing logged.
async fn tracked_deletes_record_the_row_deleted(t: &TestDb) {
    let flag = new_flag("loaded").insert(&t.db).await.unwrap();
    t.take_statements();
    let done = transaction(&t.db, |txn| {
        async move { track(flag).delete(txn).await }.scope_boxed()
    })
    .await
    .unwrap();
    assert_eq!(done.rows_affected, 1);
    let statements = t.take_statements();
    let reads = statements
        .iter()
        .filter(|s| s.trim_start().starts_with("SELECT"))
        .count();
    let expected_reads = usize::from(t.db_backend() == sea_orm::DbBackend::MySql);
    assert_eq!(reads, expected_reads, "{statements:#?}");
    assert_eq!(deletions(t).await, [(Some("loaded".into()), json!(false))]);

    // Changed behind the model's back (another writer, unlogged): the row as deleted is logged.
    let stale = new_flag("stale").insert(&t.db).await.unwrap();
    let table = if t.db_backend() == sea_orm::DbBackend::MySql {
        "`feature_flag`"
    } else {
        "\"feature_flag\""
    };
    t.db.execute_unprepared(&format!(
        "UPDATE {table} SET active = true, {} = 'renamed' WHERE id = {}",
        if t.db_backend() == sea_orm::DbBackend::MySql {
            "`key`"
        } else {
            "\"key\""
        },
        stale.id
    ))
    .await
    .unwrap();
    let done = track(stale).delete(&t.db).await.unwrap();
    assert_eq!(done.rows_affected, 1);
    assert_eq!(
        deletions(t).await[1..],
        [(Some("renamed".into()), json!(true))],
        "the stale model was logged instead of the row deleted"
    );

    // Gone already: nothing deleted, nothing logged.
    let gone = new_flag("gone").insert(&t.db).await.unwrap();
    t.db.execute_unprepared(&format!("DELETE FROM {table} WHERE id = {}", gone.id))
        .await
        .unwrap();
    let done = track(gone).delete(&t.db).await.unwrap();
    assert_eq!(done.rows_affected, 0);
    assert_eq!(deletions(t).await.len(), 2);

    // Rolled back: the row and no entry.
    let kept = new_flag("kept").insert(&t.db).await.unwrap();
    let kept_id = kept.id;
    let failed = transaction(&t.db, |txn| {
        async move {
            track(kept).delete(txn).await?;
            Err::<(), DbErr>(DbErr::Custom("changed my mind".into()))
        }
        .scope_boxed()
    })
    .await;
    assert!(failed.is_err());
    assert!(
        feature_flag::Entity::find_by_id(kept_id)
            .one(&t.db)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(deletions(t).await.len(), 2);
}

async fn hook_path_reads_once_per_update(t: &TestDb) {
    let flag = new_flag("hook-path").insert(&t.db).await.unwrap();
    t.take_statements();
    transaction(&t.db, |txn| {
        async move {
            let mut am = flag.into_active_model();
            am.active = Set(true);
            am.update(txn).await?;
            Ok::<_, DbErr>(())
        }
        .scope_boxed()
    })
    .await
    .unwrap();
    let statements = t.take_statements();
    let selects = statements
        .iter()
        .filter(|s| s.trim_start().starts_with("SELECT"))
        .count();
    let expected = match t.db_backend() {
        sea_orm::DbBackend::MySql => 2, // our SELECT .. FOR UPDATE + SeaORM's re-read
        _ => 1,
    };
    assert_eq!(selects, expected, "{statements:#?}");
    // Locked as the UPDATE will lock it: on PostgreSQL not `FOR UPDATE`, which would also
    // block inserts of rows referencing this one.
    let lock = match t.db_backend() {
        sea_orm::DbBackend::Postgres => Some("FOR NO KEY UPDATE"),
        sea_orm::DbBackend::MySql => Some("FOR UPDATE"),
        _ => None,
    };
    if let Some(lock) = lock {
        assert!(
            statements.iter().any(|s| s.contains(lock)),
            "{statements:#?}"
        );
    }
}

async fn update_without_returning_is_logged_in_transaction(t: &TestDb) {
    let flag = new_flag("no-returning").insert(&t.db).await.unwrap();
    let id = flag.id;
    transaction(&t.db, |txn| {
        async move {
            let mut am = flag.into_active_model();
            am.active = Set(true);
            am.update_without_returning(txn).await?;
            Ok::<_, DbErr>(())
        }
        .scope_boxed()
    })
    .await
    .unwrap();
    let entries = t.entries().await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].activity, "updated");
    assert_eq!(entries[1].item_id, Some(id.to_string()));
    assert_eq!(
        entries[1].detail.changes,
        vec![change(
            ChangeAction::Changed,
            "enabled",
            json!(false),
            json!(true)
        )]
    );
}

/// Inside a nested `transaction`, a write through the *outer* handle runs in the open
/// savepoint (one connection): when the savepoint rolls back, the change is undone, and its
/// entry must go with it.
async fn a_write_through_the_outer_handle_goes_with_the_open_savepoint(t: &TestDb) {
    let flag = new_flag("outer-handle").insert(&t.db).await.unwrap();
    let id = flag.id;
    transaction(&t.db, |txn| {
        async move {
            let inner = transaction(txn, |_savepoint| {
                async move {
                    let mut am = by_id(id);
                    am.description = Set(Some("undone".into()));
                    am.update(txn).await?;
                    Err::<(), _>(DbErr::Custom("roll the savepoint back".into()))
                }
                .scope_boxed()
            })
            .await;
            assert!(inner.is_err());
            let mut am = by_id(id);
            am.active = Set(true);
            am.update(txn).await?;
            Ok::<_, DbErr>(())
        }
        .scope_boxed()
    })
    .await
    .unwrap();
    let row = feature_flag::Entity::find_by_id(id)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.description, None, "the savepoint's change was undone");
    assert!(row.active);
    let entries = t.entries().await;
    let changed: Vec<Vec<String>> = entries
        .iter()
        .filter(|e| e.activity == "updated")
        .map(|e| {
            e.detail
                .changes
                .iter()
                .filter_map(|c| c.field.clone())
                .collect()
        })
        .collect();
    assert_eq!(changed, [vec!["enabled".to_owned()]]);
}

/// A delete after an `update_without_returning` of the same row (in one transaction) settles
/// the update's entry first: both are logged, in order.
async fn update_without_returning_then_delete_keeps_both_entries(t: &TestDb) {
    let flag = new_flag("uwr-then-delete").insert(&t.db).await.unwrap();
    let id = flag.id;
    transaction(&t.db, |txn| {
        async move {
            let mut am = flag.into_active_model();
            am.active = Set(true);
            am.update_without_returning(txn).await?;
            by_id(id).delete(txn).await?;
            Ok::<_, DbErr>(())
        }
        .scope_boxed()
    })
    .await
    .unwrap();
    let entries = t.entries().await;
    let activities: Vec<&str> = entries.iter().map(|e| e.activity.as_str()).collect();
    assert_eq!(activities, ["created", "updated", "deleted"]);
    assert_eq!(
        entries[1].detail.changes,
        vec![change(
            ChangeAction::Changed,
            "enabled",
            json!(false),
            json!(true)
        )]
    );
}

/// An `update_without_returning` never reaches `after_save`; a later update of the same row in
/// the same transaction (hook path, `Tracked`, or inside a savepoint) settles its entry first,
/// so every update keeps its own entry, in order.
async fn update_without_returning_then_update_keeps_both_entries(t: &TestDb) {
    let flag = new_flag("uwr-twice").insert(&t.db).await.unwrap();
    let id = flag.id;
    transaction(&t.db, |txn| {
        async move {
            let mut am = flag.into_active_model();
            am.active = Set(true);
            am.update_without_returning(txn).await?;
            // Hook path: reads the row, which already holds `enabled = true`.
            let mut am = by_id(id);
            am.description = Set(Some("second".into()));
            am.update(txn).await?;
            // `Tracked` whose original predates an `update_without_returning`: the pending
            // state wins over it.
            let loaded = feature_flag::Entity::find_by_id(id)
                .one(txn)
                .await?
                .ok_or_else(|| DbErr::RecordNotFound("flag".into()))?;
            let mut am = loaded.clone().into_active_model();
            am.description = Set(Some("uwr".into()));
            am.update_without_returning(txn).await?;
            let mut tracked = activity_seaorm::track(loaded);
            tracked.key = Set("uwr-renamed".into());
            tracked.update(txn).await?;
            // In a savepoint: the parent's pending update is settled into the parent.
            let mut am = feature_flag::Entity::find_by_id(id)
                .one(txn)
                .await?
                .ok_or_else(|| DbErr::RecordNotFound("flag".into()))?
                .into_active_model();
            am.active = Set(false);
            am.update_without_returning(txn).await?;
            transaction(txn, |sp| {
                async move {
                    let mut am = by_id(id);
                    am.description = Set(Some("third".into()));
                    am.update(sp).await?;
                    Ok::<_, DbErr>(())
                }
                .scope_boxed()
            })
            .await?;
            Ok::<_, DbErr>(())
        }
        .scope_boxed()
    })
    .await
    .unwrap();
    let entries = t.entries().await;
    assert_eq!(
        update_changes(&entries),
        vec![
            vec![change(
                ChangeAction::Changed,
                "enabled",
                json!(false),
                json!(true)
            )],
            vec![change(
                ChangeAction::Created,
                "description",
                json!(null),
                json!("second")
            )],
            vec![change(
                ChangeAction::Changed,
                "description",
                json!("second"),
                json!("uwr")
            )],
            vec![change(
                ChangeAction::Changed,
                "key",
                json!("uwr-twice"),
                json!("uwr-renamed")
            )],
            vec![change(
                ChangeAction::Changed,
                "enabled",
                json!(true),
                json!(false)
            )],
            vec![change(
                ChangeAction::Changed,
                "description",
                json!("uwr"),
                json!("third")
            )],
        ]
    );
    let correlation: std::collections::BTreeSet<_> = entries[1..]
        .iter()
        .map(|e| e.correlation_id.clone())
        .collect();
    assert_eq!(correlation.len(), 1, "one transaction, one correlation id");
    assert!(entries.iter().all(|e| e.item_id == Some(id.to_string())));
}

/// An update that fails leaves its before-state behind; the next update of the row in the same
/// transaction finds nothing changed and logs only itself.
async fn failed_update_then_update_logs_only_the_second(t: &TestDb) {
    let quoted = match t.db_backend() {
        sea_orm::DbBackend::MySql => "`key`",
        _ => "\"key\"",
    };
    t.db.execute_unprepared(&format!(
        "CREATE UNIQUE INDEX feature_flag_key_unique ON feature_flag ({quoted})"
    ))
    .await
    .unwrap();
    let flag = new_flag("fails-once").insert(&t.db).await.unwrap();
    new_flag("taken-key").insert(&t.db).await.unwrap();
    let id = flag.id;
    transaction(&t.db, |txn| {
        async move {
            let taken = || {
                let mut am = by_id(id);
                am.key = Set("taken-key".into());
                am
            };
            // Straight in the transaction where a failed statement does not abort it ...
            if txn.get_database_backend() != sea_orm::DbBackend::Postgres {
                assert!(taken().update(txn).await.is_err(), "unique key violated");
            }
            // ... and in a plain savepoint everywhere.
            let sp = txn.begin().await?;
            assert!(taken().update(&sp).await.is_err(), "unique key violated");
            sp.rollback().await?;
            let mut am = by_id(id);
            am.active = Set(true);
            am.update(txn).await?;
            Ok::<_, DbErr>(())
        }
        .scope_boxed()
    })
    .await
    .unwrap();
    assert_eq!(update_changes(&t.entries().await), enabled_turned_on());
}

async fn manual_logging_follows_the_same_rules(t: &TestDb) {
    ActivityContext::scope(alice(), async {
        activity_seaorm::log_activity(
            &t.db,
            ActivityEntry::new("Export", "exported")
                .with_item_id("e-1")
                .with_name("report"),
        )
        .await
        .unwrap();
        // `updated` without changes is dropped unless forced.
        activity_seaorm::log_activity(&t.db, ActivityEntry::new("Export", "updated"))
            .await
            .unwrap();
        activity_seaorm::log_activity(&t.db, ActivityEntry::new("Export", "updated").forced())
            .await
            .unwrap();
        let many: Vec<_> = (0..5)
            .map(|i| ActivityEntry::new("Bulk", "created").with_item_id(i.to_string()))
            .collect();
        activity_seaorm::bulk_log_activity(&t.db, many)
            .await
            .unwrap();
    })
    .await;
    let entries = t.entries().await;
    assert_eq!(entries.len(), 7);
    assert_eq!(entries[0].user_id.as_deref(), Some("u-alice"));
    assert_eq!(entries[0].detail.name.as_deref(), Some("report"));
    assert_eq!(entries[1].activity, "updated");
    assert_eq!(
        activity_log::Entity::find()
            .filter(activity_log::Column::Scope.eq("Bulk"))
            .count(&t.db)
            .await
            .unwrap(),
        5
    );
}

async fn seventy_thousand_entries_in_one_transaction(t: &TestDb) {
    if t.db_backend() == sea_orm::DbBackend::Sqlite {
        return; // the bind-limit chunking is exercised on the servers
    }
    transaction(&t.db, |txn| {
        async move {
            let entries: Vec<_> = (0..70_000)
                .map(|i| ActivityEntry::new("Import", "created").with_item_id(i.to_string()))
                .collect();
            activity_seaorm::bulk_log_activity(txn, entries).await?;
            Ok::<_, DbErr>(())
        }
        .scope_boxed()
    })
    .await
    .unwrap();
    assert_eq!(
        activity_log::Entity::find().count(&t.db).await.unwrap(),
        70_000
    );
}

async fn schema_is_idempotent(t: &TestDb) {
    activity_seaorm::schema::create_table(&t.db).await.unwrap();
    activity_seaorm::schema::create_table(&t.db).await.unwrap();
    new_flag("after-recreate").insert(&t.db).await.unwrap();
    assert_eq!(t.entries().await.len(), 1);
}

backend_tests!(
    tracked_deletes_record_the_row_deleted,
    create_update_delete_with_actor,
    impersonation_and_system,
    masks_never_leak,
    exclusions_and_signal_exclusions_write_nothing,
    empty_values_and_no_op_updates,
    update_of_missing_row_writes_nothing,
    delete_by_primary_key_reads_the_name,
    save_both_branches,
    transaction_commits_entries_with_one_correlation_id,
    rollback_leaves_nothing,
    savepoints_keep_or_drop_their_entries,
    mute_guard_and_scopes,
    muted_tracked_update_leaves_no_stale_before_state,
    muted_update_settles_an_earlier_update_first,
    concurrent_tasks_never_see_each_others_actor,
    composite_uuid_and_string_keys,
    tracked_updates_need_no_read,
    hook_path_reads_once_per_update,
    update_without_returning_is_logged_in_transaction,
    update_without_returning_then_delete_keeps_both_entries,
    a_write_through_the_outer_handle_goes_with_the_open_savepoint,
    update_without_returning_then_update_keeps_both_entries,
    failed_update_then_update_logs_only_the_second,
    manual_logging_follows_the_same_rules,
    seventy_thousand_entries_in_one_transaction,
    schema_is_idempotent,
);

/// The `sea-orm-migration` `Migration` creates (idempotently) and drops the table.
#[tokio::test]
async fn migration_up_and_down() {
    use activity_seaorm::schema::migration::Migration;
    use sea_orm_migration::{MigrationTrait, SchemaManager};
    let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
    let manager = SchemaManager::new(&db);
    Migration.up(&manager).await.unwrap();
    Migration.up(&manager).await.unwrap();
    activity_seaorm::log_activity(&db, ActivityEntry::new("Migration", "ran"))
        .await
        .unwrap();
    Migration.down(&manager).await.unwrap();
    let err = activity_seaorm::log_activity(&db, ActivityEntry::new("Migration", "ran"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("activity log write failed"),
        "{err}"
    );
}

/// PostgreSQL: the before-read locks the row `FOR NO KEY UPDATE`, as the UPDATE does, so while
/// a logged update holds the row, another session can still insert rows that reference it (its
/// foreign-key check takes `KEY SHARE`, which `FOR UPDATE` would block until commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(activity_postgres),
    ignore = "ACTIVITY_TEST_POSTGRES_URL is not set"
)]
async fn postgres_before_read_does_not_block_referencing_inserts() {
    activity_tests::run(activity_tests::Backend::Postgres, async |t: &TestDb| {
        t.db.execute_unprepared(
            "CREATE TABLE flag_note (id serial PRIMARY KEY, \
             flag_id integer NOT NULL REFERENCES feature_flag (id))",
        )
        .await
        .unwrap();
        let id = new_flag("referenced").insert(&t.db).await.unwrap().id;
        let db = &t.db;
        transaction(db, |txn| {
            async move {
                let mut am = by_id(id);
                am.active = Set(true);
                am.update(txn).await?;
                // The row is locked by this open transaction; another session inserts a note.
                let sql = format!("INSERT INTO flag_note (flag_id) VALUES ({id})");
                let insert = db.execute_unprepared(&sql);
                tokio::time::timeout(std::time::Duration::from_secs(5), insert)
                    .await
                    .map_err(|_| DbErr::Custom("the referencing insert blocked".into()))??;
                Ok::<_, DbErr>(())
            }
            .scope_boxed()
        })
        .await
        .unwrap();
        assert_eq!(update_changes(&t.entries().await), enabled_turned_on());
    })
    .await;
}
