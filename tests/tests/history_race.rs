//! Reverts racing later writers: a revert never overwrites a later change in `Strict` or
//! `SkipConflicting` mode (0 silent overwrites), and `SkipConflicting` reverts exactly the
//! fields nobody changed since.
//!
//! Each case: an update `E` of a random set of fields of one item, then at the same moment a
//! revert of `E` and another writer updating a random set of fields to values neither `E`'s
//! before nor its after. Whatever order they take, every field the writer wrote keeps its
//! value; the fields only `E` touched are back to `E`'s before (or, when a `Strict` revert
//! refused, still `E`'s after). `HISTORY_RACE_CASES` cases per backend (default 3,400: 10,200
//! on the three backends).

use std::collections::BTreeMap;

use activity_seaorm::history::{self, HistoryError, Mode};
use activity_tests::{TestDb, backend_tests};
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};

/// The item: four plain fields.
pub mod item {
    use activity_seaorm::prelude::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, ModelActivity)]
    #[sea_orm(table_name = "race_item")]
    #[activity(scope = "RaceItem", team = team_id)]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub team_id: i64,
        pub a: i64,
        pub b: i64,
        pub c: i64,
        pub d: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        activity_seaorm::activity_hooks!();
    }
}

const FIELDS: [&str; 4] = ["a", "b", "c", "d"];

fn get(m: &item::Model, f: &str) -> i64 {
    match f {
        "a" => m.a,
        "b" => m.b,
        "c" => m.c,
        _ => m.d,
    }
}

fn set(am: &mut item::ActiveModel, f: &str, v: i64) {
    match f {
        "a" => am.a = Set(v),
        "b" => am.b = Set(v),
        "c" => am.c = Set(v),
        _ => am.d = Set(v),
    }
}

/// A non-empty random subset of the fields (or, with `may_be_empty`, possibly none).
fn subset(rng: &mut fastrand::Rng, may_be_empty: bool) -> Vec<&'static str> {
    loop {
        let picked: Vec<&str> = FIELDS.iter().copied().filter(|_| rng.bool()).collect();
        if may_be_empty || !picked.is_empty() {
            return picked;
        }
    }
}

#[derive(Default, Debug)]
struct Tally {
    cases: u64,
    reverted: u64,
    refused: u64,
    skipped_fields: u64,
    overwrites: u64,
}

async fn lane(t: &TestDb, lane: i32, cases: u64) -> Tally {
    let mut rng = fastrand::Rng::with_seed(u64::try_from(lane).unwrap() + 1);
    let mut tally = Tally::default();
    let mut next = 1_000_000 * i64::from(lane);
    let mut fresh = || {
        next += 1;
        next
    };
    item::ActiveModel {
        id: Set(lane),
        team_id: Set(7),
        a: Set(0),
        b: Set(0),
        c: Set(0),
        d: Set(0),
    }
    .insert(&t.db)
    .await
    .unwrap();
    for _ in 0..cases {
        // E: an update of some fields.
        let before = item::Entity::find_by_id(lane)
            .one(&t.db)
            .await
            .unwrap()
            .unwrap();
        let touched = subset(&mut rng, false);
        let mut am = before.clone().into_active_model();
        for f in &touched {
            set(&mut am, f, fresh());
        }
        let after = am.update(&t.db).await.unwrap();
        let entry = last_entry(t, lane).await;
        // The race: a revert of E, and a writer of other values.
        let mode = if rng.bool() {
            Mode::Strict
        } else {
            Mode::SkipConflicting
        };
        let written: BTreeMap<&str, i64> = subset(&mut rng, true)
            .into_iter()
            .map(|f| (f, fresh()))
            .collect();
        let writer = async {
            if written.is_empty() {
                return;
            }
            let now = item::Entity::find_by_id(lane)
                .one(&t.db)
                .await
                .unwrap()
                .unwrap();
            let mut am = now.into_active_model();
            for (f, v) in &written {
                set(&mut am, f, *v);
            }
            am.update(&t.db).await.unwrap();
        };
        let (outcome, ()) = tokio::join!(history::revert(&t.db, entry, mode), writer);
        let now = item::Entity::find_by_id(lane)
            .one(&t.db)
            .await
            .unwrap()
            .unwrap();
        tally.cases += 1;
        // No later write is ever lost.
        for (f, v) in &written {
            if get(&now, f) != *v {
                tally.overwrites += 1;
                eprintln!(
                    "lane {lane}: {mode:?} overwrote {f}: {} instead of {v} ({outcome:?})",
                    get(&now, f)
                );
            }
        }
        // The fields only E touched: back to before, or (a refused Strict revert) as E left them.
        let only_e: Vec<&str> = touched
            .iter()
            .copied()
            .filter(|f| !written.contains_key(f))
            .collect();
        match (&outcome, mode) {
            (Ok(done), _) => {
                tally.reverted += 1;
                tally.skipped_fields += done.skipped.len() as u64;
                for f in &only_e {
                    assert_eq!(
                        get(&now, f),
                        get(&before, f),
                        "lane {lane}: {mode:?} left {f} unreverted"
                    );
                }
                if mode == Mode::SkipConflicting {
                    for c in &done.skipped {
                        let f = c.field.as_deref().unwrap();
                        assert!(written.contains_key(f), "skipped {f}, which nobody wrote");
                    }
                }
            }
            (Err(HistoryError::Conflicts(conflicts)), _) => {
                tally.refused += 1;
                for c in conflicts {
                    let f = c.field.as_deref().unwrap();
                    assert!(
                        written.contains_key(f),
                        "a conflict on {f}, which nobody wrote"
                    );
                }
                if mode == Mode::Strict {
                    for f in &only_e {
                        assert_eq!(get(&now, f), get(&after, f), "a refused revert changed {f}");
                    }
                } else {
                    // Skipping leaves nothing to revert only when every field conflicts.
                    assert!(
                        only_e.is_empty(),
                        "SkipConflicting refused with {only_e:?} free"
                    );
                }
            }
            (Err(e), _) => panic!("lane {lane}: {e}"),
        }
    }
    tally
}

async fn last_entry(t: &TestDb, lane: i32) -> uuid::Uuid {
    use activity_seaorm::schema::activity_log::{Column, Entity};
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
    Entity::find()
        .filter(Column::Scope.eq("RaceItem"))
        .filter(Column::ItemId.eq(lane.to_string()))
        .filter(Column::Activity.eq("updated"))
        .order_by_desc(Column::CreatedAt)
        .order_by_desc(Column::Id)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn reverts_racing_writers_never_overwrite_them(t: &TestDb) {
    activity_tests::create_entity_table(&t.db, item::Entity).await;
    let total: u64 = std::env::var("HISTORY_RACE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_400);
    const LANES: i32 = 4;
    let per_lane = total.div_ceil(u64::try_from(LANES).unwrap());
    let tallies = futures::future::join_all((1..=LANES).map(|l| lane(t, l, per_lane))).await;
    let mut sum = Tally::default();
    for x in tallies {
        sum.cases += x.cases;
        sum.reverted += x.reverted;
        sum.refused += x.refused;
        sum.skipped_fields += x.skipped_fields;
        sum.overwrites += x.overwrites;
    }
    println!("{:?}: {sum:?}", t.backend);
    assert_eq!(sum.overwrites, 0, "later writes overwritten: {sum:?}");
    assert!(
        sum.refused > 0 && sum.skipped_fields > 0,
        "the race never happened: {sum:?}"
    );
}

backend_tests!(reverts_racing_writers_never_overwrite_them);
