//! Erasure (`anonymize_user`) on every backend, with deliberately colliding ids and names:
//! user `1` named `Al` is erased; users `11` (Albert), `21` (Alice) and `Alice` (also named
//! `Al`), an item named `release-2026-01-11` in another tenant and names containing `Al` must
//! stay byte for byte as they were. Also: the keyed pseudonym, no key → typed error and no
//! change, bounded batches, idempotence, one `anonymized` record.

use std::collections::BTreeMap;

use activity_seaorm::entry::ChangeAction;
use activity_seaorm::ops::erasure::{ERASURE_BATCH, ErasureTenant, anonymize_user, pseudonym};
use activity_seaorm::ops::lifecycle::Lifecycle;
use activity_seaorm::prelude::*;
use activity_seaorm::{ActivityEntry, ActivityQuery, Error, activity_log, load_activity};
use activity_tests::{Backend, TestDb, backend_tests};
use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::{ConnectionTrait, EntityTrait, Statement};
use serde_json::json;

const KEY: &[u8; 32] = b"erasure test key: 32 bytes long!";

fn keyed() -> ActivityConfig {
    ActivityConfig::new()
        .with_erasure_key(KEY)
        .with_user_scopes(["User"])
}

fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 11, 0, 0, 0).unwrap() + Duration::minutes(minute)
}

fn by(
    minute: i64,
    team: &str,
    user: Option<(&str, &str)>,
    scope: &str,
    item: &str,
    name: &str,
) -> ActivityEntry {
    let mut e = ActivityEntry::new(scope, "updated")
        .with_item_id(item)
        .with_name(name)
        .forced();
    e.created_at = at(minute);
    e.team_id = Some(team.into());
    // Every request's own address and browser: the actor's (or impersonator's) personal data.
    e.ip_address = Some(format!("10.0.0.{minute}"));
    e.user_agent = Some(format!("Browser/{minute}"));
    e.client = Some("web".into());
    if let Some((id, name)) = user {
        e.user_id = Some(id.into());
        e.user_name = Some(name.into());
        e.is_system = false;
    }
    e
}

fn change(field: &str, before: serde_json::Value, after: serde_json::Value) -> Change {
    Change::new("X", ChangeAction::Changed, Some(field), before, after)
}

/// The colliding log. Returns the entries keyed by a label.
fn colliding() -> BTreeMap<&'static str, ActivityEntry> {
    let al = Some(("1", "Al"));
    let mut m = BTreeMap::new();
    // By user 1, about another item: only the actor columns may change, not the detail that
    // happens to hold "1" and "Al" exactly.
    m.insert(
        "by_1",
        by(0, "t1", al, "FeatureFlag", "11", "release-2026-01-11").with_changes(vec![change(
            "owner",
            json!("1"),
            json!("Al"),
        )]),
    );
    // By user 11 (Albert), about item 1 of a non-user scope, name containing "Al".
    m.insert(
        "by_11",
        by(
            1,
            "t1",
            Some(("11", "Albert")),
            "FeatureFlag",
            "1",
            "Al's flag",
        )
        .with_changes(vec![change("owner", json!("1"), json!("11"))]),
    );
    // By user 21 (Alice), impersonated by 1.
    let mut imp = by(2, "t1", Some(("21", "Alice")), "Doc", "21", "Alpha");
    imp.impersonated_by = Some("1".into());
    imp.was_impersonated = true;
    m.insert("21_as_1", imp);
    // By user 1, impersonated by 11.
    let mut imp = by(3, "t1", al, "Doc", "5", "Al");
    imp.impersonated_by = Some("11".into());
    imp.was_impersonated = true;
    m.insert("1_by_11", imp);
    // About user 1 (scope User, item 1), by admin 11.
    m.insert(
        "about_1",
        by(4, "t1", Some(("11", "Albert")), "User", "1", "Al").with_changes(vec![
            change("name", json!(null), json!("Al")),
            change("display", json!("Al"), json!("Al (ops)")),
            change("manager", json!("11"), json!("21")),
            change("level", json!(1), json!("1")),
        ]),
    );
    // About user 11, whose record mentions 1 and Al: not about user 1.
    m.insert(
        "about_11",
        by(5, "t1", al, "User", "11", "Albert").with_changes(vec![change(
            "manager",
            json!("1"),
            json!("Al"),
        )]),
    );
    // User "Alice" is also named "Al"; another tenant; an item named release-2026-01-11.
    m.insert(
        "by_Alice",
        by(
            6,
            "t2",
            Some(("Alice", "Al")),
            "Release",
            "2026-01-11",
            "release-2026-01-11",
        )
        .with_changes(vec![change("tag", json!("1"), json!("Al"))]),
    );
    // A system entry in another tenant named exactly "Al", item 1 of a non-user scope.
    m.insert("system_Al", by(7, "t2", None, "Note", "1", "Al"));
    // User 1 acts in the other tenant too.
    m.insert("by_1_t2", by(8, "t2", al, "Release", "7", "Al"));
    // Same instant as the previous one: ties on created_at.
    m.insert(
        "by_21_t2",
        by(8, "t2", Some(("21", "Alice")), "Release", "8", "1"),
    );
    m
}

async fn insert(t: &TestDb, entries: impl IntoIterator<Item = ActivityEntry>) {
    let models: Vec<activity_log::ActiveModel> = entries.into_iter().map(Into::into).collect();
    for chunk in models.chunks(500) {
        activity_log::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&t.db)
            .await
            .unwrap();
    }
}

/// Every row, by id: the model and the stored `detail` text exactly as the database gives it.
async fn rows(t: &TestDb) -> BTreeMap<uuid::Uuid, (activity_log::Model, String)> {
    let detail = match t.backend {
        Backend::Postgres => "CAST(detail AS TEXT)",
        Backend::MySql => "CAST(detail AS CHAR)",
        Backend::Sqlite => "detail",
    };
    let raw =
        t.db.query_all_raw(Statement::from_string(
            t.db_backend(),
            format!("SELECT id, {detail} AS d FROM activity_log"),
        ))
        .await
        .unwrap();
    let mut text: BTreeMap<uuid::Uuid, String> = BTreeMap::new();
    for r in raw {
        text.insert(r.try_get("", "id").unwrap(), r.try_get("", "d").unwrap());
    }
    activity_log::Entity::find()
        .all(&t.db)
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            let d = text.remove(&m.id).unwrap();
            (m.id, (m, d))
        })
        .collect()
}

async fn anonymized_records(t: &TestDb) -> Vec<ActivityEntry> {
    load_activity(
        &t.db,
        &ActivityQuery::unscoped()
            .scope("User")
            .activities(["anonymized"]),
    )
    .await
    .unwrap()
    .results
}

async fn erasure_touches_only_the_user(t: &TestDb) {
    let seeded = colliding();
    // Many more entries by user 1, to run several batches (with ties at batch boundaries).
    let extra = 2 * ERASURE_BATCH as usize + 3;
    let bulk: Vec<ActivityEntry> = (0..extra)
        .map(|i| {
            by(
                100 + (i / 3) as i64,
                "t1",
                Some(("1", "Al")),
                "Doc",
                "9",
                "Al",
            )
        })
        .collect();
    insert(t, seeded.values().cloned()).await;
    insert(t, bulk.iter().cloned()).await;
    let before = rows(t).await;
    assert_eq!(before.len(), seeded.len() + extra);

    // No key: a typed error, nothing changed, nothing recorded.
    let err = ActivityConfig::scope(
        ActivityConfig::new().with_user_scopes(["User"]),
        anonymize_user(&t.db, "1"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::ErasureKey { .. }), "{err:?}");
    let short = ActivityConfig::new()
        .with_erasure_key(b"short")
        .with_user_scopes(["User"]);
    let err = ActivityConfig::scope(short, anonymize_user(&t.db, "1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ErasureKey { .. }), "{err:?}");
    assert_eq!(rows(t).await, before, "no key: nothing changed");

    t.take_statements();
    let n = ActivityConfig::scope(keyed(), anonymize_user(&t.db, "1"))
        .await
        .unwrap();
    let statements = t.take_statements();
    // by_1, 1_by_11, 21_as_1, about_1, about_11 (as actor), by_1_t2, and the bulk.
    assert_eq!(n as usize, 6 + extra);
    // Bounded: the rows were read in keyset batches, not at once.
    let batches = statements
        .iter()
        .filter(|s| s.starts_with("SELECT") && s.contains("ORDER BY") && s.contains("LIMIT"))
        .count();
    assert!(batches >= 3, "expected keyset batches, saw {batches}");

    let alias = ActivityConfig::scope(keyed(), async { pseudonym("1") })
        .await
        .unwrap();
    let after = rows(t).await;
    assert_eq!(after.len(), before.len() + 1, "one record added");
    let changed_labels = [
        "by_1", "1_by_11", "21_as_1", "about_1", "about_11", "by_1_t2",
    ];
    for (label, e) in &seeded {
        let (old, old_text) = &before[&e.id];
        let (new, new_text) = &after[&e.id];
        if !changed_labels.contains(label) {
            assert_eq!(new, old, "{label} changed");
            assert_eq!(new_text, old_text, "{label}: detail text changed");
        }
    }
    let get = |label: &str| after[&seeded[label].id].0.clone();
    let old = |label: &str| before[&seeded[label].id].0.clone();
    let a = Some(alias.clone());

    // Every value the erasure may turn into its own pseudonym (names, addresses, browsers).
    let values: Vec<String> = before
        .values()
        .flat_map(|(m, _)| [&m.user_name, &m.ip_address, &m.user_agent])
        .flatten()
        .cloned()
        .chain(["Al".to_owned()])
        .collect();
    let aliases: BTreeMap<String, String> = ActivityConfig::scope(keyed(), async {
        values
            .iter()
            .map(|v| (v.clone(), pseudonym(v).unwrap()))
            .collect()
    })
    .await;
    let own = |v: &Option<String>| v.as_ref().map(|v| aliases[v].clone());
    // Entries by user 1: actor columns only; the detail is another item's and stays exact.
    // Their request's address and browser become their own pseudonyms (what the sealed
    // history hashes); its id and client stay.
    let unlinked = |mut m: activity_log::Model| {
        m.ip_address = own(&m.ip_address);
        m.user_agent = own(&m.user_agent);
        m
    };
    for label in ["by_1", "by_1_t2", "about_11"] {
        let mut expect = unlinked(old(label));
        expect.user_id = a.clone();
        expect.user_name = own(&expect.user_name);
        assert_eq!(get(label), expect, "{label}");
        assert_eq!(after[&seeded[label].id].1, before[&seeded[label].id].1);
    }
    // Impersonated by 11: the request was 11's, its address and browser are 11's evidence.
    let mut expect = old("1_by_11");
    expect.user_id = a.clone();
    expect.user_name = own(&expect.user_name);
    assert_eq!(
        get("1_by_11"),
        expect,
        "impersonator 11 stays, with the address and browser 11 acted from"
    );
    let mut expect = unlinked(old("21_as_1"));
    expect.impersonated_by = a.clone();
    assert_eq!(get("21_as_1"), expect, "user 21 stays, impersonator 1 goes");

    // About user 1: item id, name and the exact known values in changes; nothing else.
    let about = get("about_1");
    let mut expect = old("about_1");
    expect.item_id = a.clone();
    expect.detail = about.detail.clone();
    assert_eq!(
        about, expect,
        "only item_id and detail change, actor 11 stays"
    );
    let al = &aliases["Al"];
    assert_eq!(
        about.detail["name"],
        json!(al),
        "a known name: its own pseudonym"
    );
    let changes = about.detail["changes"].as_array().unwrap();
    assert_eq!(changes[0]["after"], json!(al), "name Al");
    assert_eq!(changes[1]["before"], json!(al), "display Al");
    assert_eq!(changes[1]["after"], json!("Al (ops)"), "no substrings");
    assert_eq!(changes[2]["before"], json!("11"), "manager 11 is not 1");
    assert_eq!(changes[2]["after"], json!("21"));
    assert_eq!(
        changes[3]["before"],
        json!(1),
        "a number is not the id text"
    );
    assert_eq!(changes[3]["after"], json!(alias), "the id itself, exactly");

    for e in &bulk {
        let (m, text) = &after[&e.id];
        let (o, o_text) = &before[&e.id];
        let mut expect = unlinked(o.clone());
        expect.user_id = a.clone();
        expect.user_name = own(&expect.user_name);
        assert_eq!(m, &expect);
        assert_eq!(text, o_text);
    }

    // Nowhere is user 1 left as an actor or as the item of a user-scope entry.
    assert!(after.values().all(|(m, _)| {
        m.user_id.as_deref() != Some("1")
            && m.impersonated_by.as_deref() != Some("1")
            && !(m.scope == "User" && m.item_id.as_deref() == Some("1"))
    }));

    // One record, carrying the count and the pseudonym, not the id, and the pseudonyms of
    // the values the run knew the user by (for a later run to reach copies with).
    let records = anonymized_records(t).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].item_id.as_deref(), Some(alias.as_str()));
    assert_eq!(
        records[0].detail.context,
        Some(json!({ "rows_rewritten": 6 + extra, "known": [alias, aliases["Al"]] }))
    );

    // Idempotent: a second run changes nothing and records nothing.
    let again = ActivityConfig::scope(keyed(), anonymize_user(&t.db, "1"))
        .await
        .unwrap();
    assert_eq!(again, 0);
    assert_eq!(rows(t).await, after, "second run: byte for byte the same");

    // Erasing user 11 now: only 11's rows change (1's alias and the rest stay).
    let n11 = ActivityConfig::scope(keyed(), anonymize_user(&t.db, "11"))
        .await
        .unwrap();
    assert_eq!(
        n11, 4,
        "by_11, 1_by_11 (impersonator), about_1 (actor), about_11"
    );
    let after11 = rows(t).await;
    for (label, e) in &seeded {
        if !["by_11", "1_by_11", "about_1", "about_11"].contains(label) {
            assert_eq!(
                after11[&e.id], after[&e.id],
                "{label} changed by erasing 11"
            );
        }
    }
    assert_eq!(anonymized_records(t).await.len(), 2);
}

async fn pseudonyms_are_keyed_and_records_never_name_the_user(t: &TestDb) {
    let other = ActivityConfig::new()
        .with_erasure_key([9u8; 32])
        .with_user_scopes(["User"]);
    let p1 = ActivityConfig::scope(keyed(), async { pseudonym("1") })
        .await
        .unwrap();
    let p1_again = ActivityConfig::scope(keyed(), async { pseudonym("1") })
        .await
        .unwrap();
    let p1_other_key = ActivityConfig::scope(other, async { pseudonym("1") })
        .await
        .unwrap();
    let p11 = ActivityConfig::scope(keyed(), async { pseudonym("11") })
        .await
        .unwrap();
    assert_eq!(p1, p1_again, "stable under one key");
    assert_ne!(
        p1, p1_other_key,
        "a different key gives a different pseudonym"
    );
    assert_ne!(p1, p11);
    assert!(p1.starts_with("anon-") && p1.len() == 37, "{p1}");
    assert!(matches!(pseudonym("1"), Err(Error::ErasureKey { .. })));

    // A user erasing themselves (self-service): the record is a system entry.
    insert(t, [by(0, "t1", Some(("1", "Al")), "Doc", "1", "x")]).await;
    let me = ActivityContext::for_user(Actor::new("1").with_name("Al")).with_ip("10.0.0.1");
    let n = ActivityConfig::scope(
        keyed(),
        ActivityContext::scope(me, anonymize_user(&t.db, "1")),
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    let records = anonymized_records(t).await;
    assert_eq!(records.len(), 1);
    assert!(records[0].is_system && records[0].user_id.is_none());
    assert!(records[0].ip_address.is_none());
    let dump = t.dump().await;
    assert!(
        !dump.contains("\"Al\"") && !dump.contains("10.0.0.1"),
        "{dump}"
    );

    // A user never in the log: one record the first time, none the second.
    for expected in [2, 2] {
        let n = ActivityConfig::scope(keyed(), anonymize_user(&t.db, "404"))
            .await
            .unwrap();
        assert_eq!(n, 0);
        assert_eq!(anonymized_records(t).await.len(), expected);
    }
    // Hostile ids are refused as invalid, not sent.
    for bad in ["", "a\0b"] {
        let err = ActivityConfig::scope(keyed(), anonymize_user(&t.db, bad))
            .await
            .unwrap_err();
        assert!(err.is_invalid_query(), "{err:?}");
    }
}

/// Entries about the user are found in every team they are in, without a team, and in a team
/// whose id is empty, and each range's names are known everywhere (the team-less entry's name
/// is in a change of another team's); the teams around them (before, between and after in
/// sort order, other users' items of the same scope) stay byte for byte. An organization's
/// erasure rewrites its own entries about the user and no other organization's. A second run
/// finds nothing.
async fn entries_about_the_user_are_found_in_every_team(t: &TestDb) {
    let admin = Some(("admin", "Admin"));
    let mut about = Vec::new();
    for (minute, team, name) in [
        (0, Some("a"), "Gus"),
        (1, Some("m"), "Gus"),
        (2, None, "Gussie"),
        (3, Some(""), "G."),
    ] {
        let mut e = by(minute, team.unwrap_or("-"), admin, "User", "7", name);
        e.team_id = team.map(str::to_owned);
        about.push(e);
    }
    about.push(
        by(4, "zz", admin, "User", "7", "Gus").with_changes(vec![change(
            "nickname",
            json!("Gussie"),
            json!("G."),
        )]),
    );
    // Teams past the first step of the walk (500 teams a step), some with the user's item.
    let mut crowd = Vec::new();
    for i in 0..520 {
        let team = format!("t{i:04}");
        crowd.push(by(40, &team, admin, "Doc", "1", "x"));
        if [0, 496, 497, 498, 499, 500, 519].contains(&i) {
            about.push(by(41, &team, admin, "User", "7", "Gus"));
        }
    }
    // More than one batch inside one team.
    let many = ERASURE_BATCH as usize + 2;
    for i in 0..many {
        about.push(by(10 + i as i64, "m", admin, "User", "7", "Gus"));
    }
    let mut others = Vec::new();
    for (minute, team) in [
        (20, "0"),
        (21, "a"),
        (22, "b"),
        (23, "m"),
        (24, "z"),
        (25, "zzz"),
    ] {
        others.push(by(minute, team, admin, "User", "70", "Gustav"));
        others.push(by(minute, team, admin, "Doc", "7", "Gus"));
    }
    let mut nobody = by(26, "-", admin, "User", "8", "Ida");
    nobody.team_id = None;
    others.push(nobody);
    // User 9, about whom two organizations wrote (teams of each, and no team).
    let mut org = Vec::new();
    for (minute, organization, team) in [
        (30, "o1", Some("a")),
        (31, "o2", Some("a")),
        (32, "o1", None),
        (33, "o2", Some("b")),
    ] {
        let mut e = by(minute, "-", admin, "User", "9", "Nine");
        e.team_id = team.map(str::to_owned);
        e.organization_id = Some(organization.into());
        org.push(e);
    }
    insert(
        t,
        about
            .iter()
            .chain(&others)
            .chain(&org)
            .chain(&crowd)
            .cloned(),
    )
    .await;
    if t.backend == Backend::Sqlite {
        // A time another writer stored in another text form: still found and rewritten.
        let moved =
            t.db.execute_raw(Statement::from_sql_and_values(
                t.db_backend(),
                "UPDATE activity_log SET created_at = ? WHERE id = ?",
                ["2026-01-11T00:02:00Z".into(), about[2].id.into()],
            ))
            .await
            .unwrap();
        assert_eq!(moved.rows_affected(), 1);
    }
    let before = rows(t).await;

    let n = ActivityConfig::scope(keyed(), anonymize_user(&t.db, "7"))
        .await
        .unwrap();
    assert_eq!(n as usize, about.len(), "every entry about user 7");
    let alias = |v: &str| {
        let v = v.to_owned();
        ActivityConfig::scope(keyed(), async move { pseudonym(&v).unwrap() })
    };
    let user = alias("7").await;
    let after = rows(t).await;
    for e in &about {
        let (m, _) = &after[&e.id];
        let mut expect = before[&e.id].0.clone();
        expect.item_id = Some(user.clone());
        let mut detail = json!({ "name": alias(e.detail.name.as_deref().unwrap()).await });
        if !e.detail.changes.is_empty() {
            detail["changes"] = json!([{
                "type": "X", "action": "changed", "field": "nickname",
                "before": alias("Gussie").await, "after": alias("G.").await,
            }]);
        }
        expect.detail = detail;
        assert_eq!(m, &expect, "about user 7 in team {:?}", e.team_id);
    }
    for e in others.iter().chain(&org).chain(&crowd) {
        assert_eq!(after[&e.id], before[&e.id], "{e:?} changed");
    }
    let again = ActivityConfig::scope(keyed(), anonymize_user(&t.db, "7"))
        .await
        .unwrap();
    assert_eq!(again, 0);

    let n = ActivityConfig::scope(
        keyed(),
        Lifecycle::new().erase_user_in(&t.db, "9", ErasureTenant::Organization("o1".into())),
    )
    .await
    .unwrap()
    .entry_ids
    .len();
    assert_eq!(n, 2, "o1's entries about user 9, in a team and without one");
    let nine = alias("9").await;
    let after9 = rows(t).await;
    for e in &org {
        let rewritten = after9[&e.id].0.item_id.as_deref() == Some(nine.as_str());
        assert_eq!(
            rewritten,
            e.organization_id.as_deref() == Some("o1"),
            "{:?} / {:?}",
            e.organization_id,
            e.team_id
        );
    }
}

backend_tests!(
    erasure_touches_only_the_user,
    entries_about_the_user_are_found_in_every_team,
    pseudonyms_are_keyed_and_records_never_name_the_user,
);
