//! History read back and undone: `as_of` against snapshots taken as the writes happened,
//! reverts as compare-and-sets, group reverts of whole transactions.

use std::collections::BTreeMap;
use std::time::Duration;

use activity_seaorm::history::{self, FieldValue, Group, HistoryError, Mode};
use activity_seaorm::prelude::*;
use activity_tests::{TestDb, backend_tests};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, Set,
};
use serde_json::{Value, json};

/// A parent with plain fields of several types, recording every field on create.
pub mod project {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "project")]
    #[activity(scope = "Project", name = name, team = team_id, snapshot)]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub team_id: i64,
        pub name: String,
        pub budget: i64,
        pub archived: bool,
        pub notes: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(has_many = "super::task::Entity")]
        Task,
    }

    impl Related<super::task::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Task.def()
        }
    }

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        activity_seaorm::activity_hooks!();
    }
}

/// A child: its project must exist (a foreign key).
pub mod task {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "task")]
    #[activity(scope = "Task", name = title, team = team_id)]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub team_id: i64,
        pub project_id: i32,
        pub title: String,
        pub done: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::project::Entity",
            from = "Column::ProjectId",
            to = "super::project::Column::Id"
        )]
        Project,
    }

    impl Related<super::project::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Project.def()
        }
    }

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        activity_seaorm::activity_hooks!();
    }
}

async fn setup(t: &TestDb) {
    activity_tests::create_entity_table(&t.db, project::Entity).await;
    activity_tests::create_entity_table(&t.db, task::Entity).await;
}

fn new_project(id: i32, name: &str, budget: i64) -> project::ActiveModel {
    project::ActiveModel {
        id: Set(id),
        team_id: Set(7),
        name: Set(name.to_owned()),
        budget: Set(budget),
        archived: Set(false),
        notes: Set(None),
    }
}

/// Every project as the application sees it.
async fn projects(db: &impl ConnectionTrait) -> BTreeMap<i32, project::Model> {
    project::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.id, p))
        .collect()
}

/// A moment strictly between the writes before it and the ones after (entries are stamped to
/// the microsecond).
async fn moment() -> DateTime<Utc> {
    tokio::time::sleep(Duration::from_millis(2)).await;
    let now = Utc::now();
    tokio::time::sleep(Duration::from_millis(2)).await;
    now
}

/// The fields of a version, as the log encodes them.
fn known(version: &history::Version<project::Model>) -> BTreeMap<String, Value> {
    version
        .fields
        .iter()
        .filter_map(|(spec, v)| Some((spec.name.to_owned(), v.known()?.clone())))
        .collect()
}

fn encoded(p: &project::Model) -> BTreeMap<String, Value> {
    let null_if_empty = |v: Value| match &v {
        Value::String(s) if s.is_empty() => Value::Null,
        _ => v,
    };
    BTreeMap::from([
        ("id".to_owned(), json!(p.id)),
        ("team_id".to_owned(), json!(p.team_id)),
        ("name".to_owned(), null_if_empty(json!(p.name))),
        ("budget".to_owned(), json!(p.budget)),
        ("archived".to_owned(), json!(p.archived)),
        (
            "notes".to_owned(),
            p.notes
                .clone()
                .map_or(Value::Null, |n| null_if_empty(json!(n))),
        ),
    ])
}

/// Compare a version with a snapshot on every field the version knows (ids and the common
/// exclusions are not in the log: `id` is excluded by default, and comes back unknown).
fn assert_same(got: &history::Version<project::Model>, want: &project::Model, what: &str) {
    let got = known(got);
    let want = encoded(want);
    for (field, value) in &got {
        let expected = &want[field];
        let both_empty = value.is_null() && expected.is_null();
        assert!(
            both_empty || value == expected,
            "{what}: field {field}: as_of says {value}, the snapshot {expected}"
        );
    }
    assert!(
        got.contains_key("budget") && got.contains_key("name"),
        "{what}: {got:?}"
    );
}

/// The oracle: random sequences of creates, updates (hook path, `Tracked`, per-row bulk) and
/// deletes, a snapshot after each step; `as_of` at every step equals the snapshot on every
/// known field, and a raw unlogged UPDATE at a random step makes every earlier read of that
/// item a `Gap`.
async fn as_of_equals_the_snapshot_at_every_step(t: &TestDb) {
    use activity_seaorm::bulk::{BulkMode, ExecLogged};
    setup(t).await;
    let seeds: u64 = std::env::var("HISTORY_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    for seed in 0..seeds {
        let mut rng = fastrand::Rng::with_seed(seed);
        project::Entity::delete_many().exec(&t.db).await.unwrap();
        let base = i32::try_from(seed).unwrap() * 100;
        let mut snapshots: Vec<(DateTime<Utc>, BTreeMap<i32, project::Model>)> =
            vec![(moment().await, projects(&t.db).await)];
        let raw_step = rng.usize(4..14);
        let mut raw: Option<(i32, DateTime<Utc>)> = None;
        for step in 0..16 {
            let live = projects(&t.db).await;
            let ids: Vec<i32> = live.keys().copied().collect();
            let pick = (!ids.is_empty()).then(|| ids[rng.usize(..ids.len())]);
            if step == raw_step
                && let Some(id) = pick
            {
                // A write that bypassed the log.
                t.db.execute_unprepared(&format!(
                    "UPDATE project SET budget = budget + 1000 WHERE id = {id}"
                ))
                .await
                .unwrap();
                raw = Some((id, Utc::now()));
            } else {
                match (rng.u8(..6), pick) {
                    (0, _) | (_, None) => {
                        let id = base + i32::try_from(step).unwrap() + 1;
                        new_project(id, &format!("p{id}"), rng.i64(0..100))
                            .insert(&t.db)
                            .await
                            .unwrap();
                    }
                    (1, Some(id)) => {
                        let mut am = live[&id].clone().into_active_model();
                        am.budget = Set(rng.i64(0..100));
                        if rng.bool() {
                            am.notes = Set(rng.bool().then(|| format!("n{step}")));
                        }
                        am.update(&t.db).await.unwrap();
                    }
                    (2, Some(id)) => {
                        let mut tracked = activity_seaorm::track(live[&id].clone());
                        tracked.name = Set(format!("renamed{step}"));
                        tracked.archived = Set(rng.bool());
                        tracked.update(&t.db).await.unwrap();
                    }
                    (3, Some(_)) => {
                        let budget = rng.i64(0..100);
                        activity_seaorm::transaction(&t.db, |txn| {
                            async move {
                                project::Entity::update_many()
                                    .set(project::ActiveModel {
                                        budget: Set(budget),
                                        ..Default::default()
                                    })
                                    .filter(project::Column::Budget.lt(50))
                                    .exec_logged(txn, BulkMode::PerRow)
                                    .await
                            }
                            .scope_boxed()
                        })
                        .await
                        .unwrap();
                    }
                    (4, Some(id)) => {
                        live[&id]
                            .clone()
                            .into_active_model()
                            .delete(&t.db)
                            .await
                            .unwrap();
                    }
                    (_, Some(id)) => {
                        let mut am = live[&id].clone().into_active_model();
                        am.notes = Set(Some(format!("note {step}")));
                        am.archived = Set(!live[&id].archived);
                        am.update(&t.db).await.unwrap();
                    }
                }
            }
            snapshots.push((moment().await, projects(&t.db).await));
        }
        let all_ids: Vec<i32> = snapshots
            .iter()
            .flat_map(|(_, s)| s.keys().copied())
            .collect();
        let mut checked = 0;
        for (at, snapshot) in &snapshots {
            for id in &all_ids {
                let what = format!("seed {seed}, project {id} at {at}");
                let got = history::as_of::<project::Entity>(&t.db, *id, *at).await;
                // Every read back through the raw write must find it; reads of that item at
                // or after it may too (the log cannot vouch for its value), but none may give
                // a value the item never had.
                let raw_item = raw.is_some_and(|(raw_id, _)| raw_id == *id);
                let gap_expected =
                    raw.is_some_and(|(raw_id, raw_at)| raw_id == *id && *at < raw_at);
                match (got, snapshot.get(id)) {
                    (Err(HistoryError::Gap(_)), _) if raw_item => {}
                    (Ok(Some(version)), Some(want)) if !gap_expected => {
                        assert_same(&version, want, &what);
                    }
                    (Ok(None), None) if !gap_expected => {}
                    (other, want) => panic!(
                        "{what}: as_of gave {other:?}, the snapshot {want:?} (gap expected: {gap_expected})"
                    ),
                }
                checked += 1;
            }
        }
        println!("{:?} seed {seed}: {checked} as_of reads checked", t.backend);
    }
}

/// Masked and excluded fields come back unknown, never guessed.
async fn masked_and_excluded_fields_are_unknown(t: &TestDb) {
    let flag = activity_tests::new_flag("beta")
        .insert(&t.db)
        .await
        .unwrap();
    let before = moment().await;
    let mut am = flag.clone().into_active_model();
    am.webhook_secret = Set("rotated".into());
    am.cached_count = Set(5);
    am.active = Set(true);
    am.update(&t.db).await.unwrap();
    let version =
        history::as_of::<activity_tests::models::feature_flag::Entity>(&t.db, flag.id, before)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(version.field("webhook_secret"), Some(&FieldValue::Masked));
    assert_eq!(version.field("cached_count"), Some(&FieldValue::Excluded));
    assert_eq!(
        version.field("enabled"),
        Some(&FieldValue::Known(json!(false)))
    );
    assert!(version.model().is_none(), "no model with guessed fields");
}

/// One update reverted: the fields go back, a `reverted` entry links it; a later change to one
/// of its fields is a conflict in `Strict` (nothing written), skipped in `SkipConflicting`,
/// overwritten in `Force`; reverting the revert is a redo.
async fn revert_is_a_compare_and_set(t: &TestDb) {
    setup(t).await;
    new_project(1, "alpha", 10).insert(&t.db).await.unwrap();
    let p = project::Entity::find_by_id(1)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    let mut am = p.into_active_model();
    am.budget = Set(20);
    am.notes = Set(Some("first".into()));
    am.update(&t.db).await.unwrap();
    let update = t.entries().await.last().unwrap().id;

    // Nothing changed since: reverted, and logged.
    let done = history::revert(&t.db, update, Mode::Strict).await.unwrap();
    let now = project::Entity::find_by_id(1)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((now.budget, now.notes.clone()), (10, None));
    let entries = t.entries().await;
    let reverted = entries.last().unwrap();
    assert_eq!(done.entries, [reverted.id]);
    assert_eq!(reverted.activity, "reverted");
    assert_eq!(reverted.team_id.as_deref(), Some("7"));
    assert_eq!(
        reverted.detail.context.as_ref().unwrap()["reverts"],
        json!([update.to_string()])
    );
    let changed: Vec<(&str, &Value, &Value)> = reverted
        .detail
        .changes
        .iter()
        .map(|c| (c.field.as_deref().unwrap(), &c.before, &c.after))
        .collect();
    assert_eq!(
        changed,
        [
            ("budget", &json!(20), &json!(10)),
            ("notes", &json!("first"), &Value::Null)
        ]
    );

    // A revert of the revert is a redo.
    history::revert(&t.db, reverted.id, Mode::Strict)
        .await
        .unwrap();
    let now = project::Entity::find_by_id(1)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((now.budget, now.notes.as_deref()), (20, Some("first")));

    // Someone changes the budget since: Strict refuses and writes nothing.
    let mut am = now.into_active_model();
    am.budget = Set(30);
    am.update(&t.db).await.unwrap();
    let later = t.entries().await.last().unwrap().id;
    let count = t.entries().await.len();
    let err = history::revert(&t.db, update, Mode::Strict)
        .await
        .unwrap_err();
    let conflicts = err.conflicts().expect("a conflict");
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].field.as_deref(), Some("budget"));
    assert_eq!(
        (&conflicts[0].expected, &conflicts[0].actual),
        (&json!(20), &json!(30))
    );
    assert!(conflicts[0].later_entries.contains(&later));
    assert_eq!(t.entries().await.len(), count, "nothing logged");
    let now = project::Entity::find_by_id(1)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((now.budget, now.notes.as_deref()), (30, Some("first")));

    // SkipConflicting reverts the notes and leaves the budget.
    let done = history::revert(&t.db, update, Mode::SkipConflicting)
        .await
        .unwrap();
    assert_eq!(done.skipped.len(), 1);
    let now = project::Entity::find_by_id(1)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((now.budget, now.notes.clone()), (30, None));

    // Force overwrites the later budget, and says so.
    let done = history::revert(&t.db, update, Mode::Force).await.unwrap();
    assert_eq!(done.forced.len(), 1);
    let now = project::Entity::find_by_id(1)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.budget, 10);
    let forced = t.entries().await.last().unwrap().clone();
    assert_eq!(
        forced.detail.context.as_ref().unwrap()["forced"],
        json!(["budget"])
    );
}

/// Reverting `created` deletes the row (refused while a child refers to it); reverting
/// `deleted` inserts it again with its key and fields (undelete); a row that took the key since
/// is a conflict.
async fn revert_created_and_deleted(t: &TestDb) {
    setup(t).await;
    new_project(1, "alpha", 10).insert(&t.db).await.unwrap();
    let created = t.entries().await.last().unwrap().id;
    task::ActiveModel {
        id: Set(1),
        team_id: Set(7),
        project_id: Set(1),
        title: Set("child".into()),
        done: Set(false),
    }
    .insert(&t.db)
    .await
    .unwrap();
    match history::revert(&t.db, created, Mode::Strict).await {
        Err(HistoryError::NotRevertible { reason, .. }) => {
            assert!(reason.contains("refer"), "{reason}");
        }
        other => panic!("deleting a referenced row: {other:?}"),
    }
    task::Entity::delete_by_id(1).exec(&t.db).await.unwrap();
    history::revert(&t.db, created, Mode::Strict).await.unwrap();
    assert!(
        project::Entity::find_by_id(1)
            .one(&t.db)
            .await
            .unwrap()
            .is_none()
    );

    // Undelete.
    let mut p = new_project(2, "beta", 42);
    p.notes = Set(Some("keep me".into()));
    let p = p.insert(&t.db).await.unwrap();
    p.clone().into_active_model().delete(&t.db).await.unwrap();
    let deleted = t.entries().await.last().unwrap().clone();
    assert_eq!(deleted.activity, "deleted");
    history::revert(&t.db, deleted.id, Mode::Strict)
        .await
        .unwrap();
    let back = project::Entity::find_by_id(2)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, p);
    // Reverting the same deletion again: the key is taken.
    let err = history::revert(&t.db, deleted.id, Mode::Strict)
        .await
        .unwrap_err();
    assert!(err.conflicts().is_some(), "{err:?}");
}

/// A request that created a parent and children, updated another item and deleted one:
/// reverted as a group, everything is as before the request, in one transaction; with a
/// conflict anywhere, nothing changes.
async fn group_revert_restores_the_state_before_the_request(t: &TestDb) {
    setup(t).await;
    new_project(1, "kept", 10).insert(&t.db).await.unwrap();
    task::ActiveModel {
        id: Set(9),
        team_id: Set(7),
        project_id: Set(1),
        title: Set("old task".into()),
        done: Set(false),
    }
    .insert(&t.db)
    .await
    .unwrap();
    let before_projects = projects(&t.db).await;
    let before_tasks = task::Entity::find().all(&t.db).await.unwrap();

    let written: Result<(), DbErr> = activity_seaorm::transaction(&t.db, |txn| {
        async move {
            new_project(2, "new", 5).insert(txn).await?;
            for id in [20, 21] {
                task::ActiveModel {
                    id: Set(id),
                    team_id: Set(7),
                    project_id: Set(2),
                    title: Set(format!("t{id}")),
                    done: Set(false),
                }
                .insert(txn)
                .await?;
            }
            let kept = project::Entity::find_by_id(1).one(txn).await?.unwrap();
            let mut am = kept.into_active_model();
            am.budget = Set(99);
            am.update(txn).await?;
            task::Entity::find_by_id(9)
                .one(txn)
                .await?
                .unwrap()
                .into_active_model()
                .delete(txn)
                .await?;
            Ok::<_, DbErr>(())
        }
        .scope_boxed()
    })
    .await;
    written.unwrap();
    let group = Group::Correlation(
        t.entries()
            .await
            .last()
            .unwrap()
            .correlation_id
            .clone()
            .unwrap(),
    );

    // The plan: five items, clean.
    let plan = history::plan(&t.db, group.clone()).await.unwrap();
    assert_eq!(plan.items.len(), 5, "{plan:?}");
    assert!(plan.is_clean(), "{plan:?}");

    // A change after the request to a field it changed: the group revert refuses, whole.
    let kept = project::Entity::find_by_id(1)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    let mut am = kept.clone().into_active_model();
    am.budget = Set(100);
    am.update(&t.db).await.unwrap();
    let err = history::revert_group(&t.db, group.clone(), Mode::Strict)
        .await
        .unwrap_err();
    assert!(err.conflicts().is_some(), "{err:?}");
    assert_eq!(
        task::Entity::find().all(&t.db).await.unwrap().len(),
        2,
        "nothing changed"
    );
    let mut am = project::Entity::find_by_id(1)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    am.budget = Set(99);
    am.update(&t.db).await.unwrap();

    // Reverted: exactly the state before the request.
    let done = history::revert_group(&t.db, group, Mode::Strict)
        .await
        .unwrap();
    assert_eq!(done.entries.len(), 5);
    assert_eq!(projects(&t.db).await, before_projects);
    assert_eq!(task::Entity::find().all(&t.db).await.unwrap(), before_tasks);
}

/// A request is every transaction it ran: `Group::Request` undoes them all, and nothing of
/// another request.
async fn a_request_of_two_transactions_is_undone_whole(t: &TestDb) {
    setup(t).await;
    new_project(1, "alpha", 10).insert(&t.db).await.unwrap();
    let before = projects(&t.db).await;
    let request = activity_seaorm::ActivityContext::for_user(activity_seaorm::Actor::new("alice"))
        .with_request_id("req-42");
    activity_seaorm::ActivityContext::scope(request, async {
        for budget in [20, 30] {
            // Two transactions of one request: two correlation ids, one request id.
            let written: Result<(), DbErr> = activity_seaorm::transaction(&t.db, |txn| {
                async move {
                    let p = project::Entity::find_by_id(1).one(txn).await?.unwrap();
                    let mut am = p.into_active_model();
                    am.budget = Set(budget);
                    am.update(txn).await?;
                    Ok(())
                }
                .scope_boxed()
            })
            .await;
            written.unwrap();
        }
        new_project(2, "beta", 5).insert(&t.db).await.unwrap();
    })
    .await;
    // Another request, on another item: left alone.
    new_project(3, "gamma", 1).insert(&t.db).await.unwrap();
    let done = history::revert_group(&t.db, Group::Request("req-42".into()), Mode::Strict)
        .await
        .unwrap();
    assert_eq!(done.entries.len(), 2, "one reverted entry per item");
    let now = projects(&t.db).await;
    assert_eq!(now.get(&1), before.get(&1), "both budget changes undone");
    assert!(!now.contains_key(&2), "the request's creation undone");
    assert!(now.contains_key(&3), "another request's row stays");
}

/// A group with an entry that names no item (a manual entry): `Strict` refuses the whole group
/// and changes nothing; `SkipConflicting` undoes the rest and says what it left.
async fn a_manual_entry_in_a_group_is_reported(t: &TestDb) {
    setup(t).await;
    new_project(1, "alpha", 10).insert(&t.db).await.unwrap();
    let written: Result<(), DbErr> = activity_seaorm::transaction(&t.db, |txn| {
        async move {
            let p = project::Entity::find_by_id(1).one(txn).await?.unwrap();
            let mut am = p.into_active_model();
            am.budget = Set(20);
            am.update(txn).await?;
            let mut note = ActivityEntry::new("Report", "exported");
            note.team_id = Some("7".into());
            activity_seaorm::log_activity(txn, note).await
        }
        .scope_boxed()
    })
    .await;
    written.unwrap();
    let entries = t.entries().await;
    let manual = entries.iter().find(|e| e.scope == "Report").unwrap().id;
    let group = Group::Correlation(entries.last().unwrap().correlation_id.clone().unwrap());
    match history::revert_group(&t.db, group.clone(), Mode::Strict).await {
        Err(HistoryError::NotRevertible { entry, .. }) => assert_eq!(entry, manual),
        other => panic!("a manual entry in a Strict group: {other:?}"),
    }
    assert_eq!(projects(&t.db).await[&1].budget, 20, "nothing changed");
    let done = history::revert_group(&t.db, group, Mode::SkipConflicting)
        .await
        .unwrap();
    assert_eq!(projects(&t.db).await[&1].budget, 10);
    assert_eq!(done.not_revertible.len(), 1);
    assert_eq!(done.not_revertible[0].0, manual);
}

backend_tests!(
    a_manual_entry_in_a_group_is_reported,
    a_request_of_two_transactions_is_undone_whole,
    as_of_equals_the_snapshot_at_every_step,
    masked_and_excluded_fields_are_unknown,
    revert_is_a_compare_and_set,
    revert_created_and_deleted,
    group_revert_restores_the_state_before_the_request,
);
