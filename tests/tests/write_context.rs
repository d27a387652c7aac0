//! What the context may and may not decide about an entry, on every backend:
//!
//! - a manual entry keeps the actor, address and request fields its caller set; the context
//!   fills only what is unset;
//! - an item's tenant is the entry's whole tenant: a model that names its team is never filed
//!   under the acting user's organization;
//! - a scoped configuration changes only what it sets (the outbox stays on);
//! - `ActivityContext::propagate` carries the mute into spawned tasks;
//! - composite keys are unambiguous item ids.

use std::sync::Arc;

use activity_seaorm::clock::FixedClock;
use activity_seaorm::prelude::*;
use activity_seaorm::read::item_id_parts;
use activity_seaorm::{ActivityConfig, log_activity, outbox};
use activity_tests::models::{membership, setting};
use activity_tests::{TestDb, backend_tests, new_flag};
use sea_orm::{ActiveModelTrait, Set};

fn support_agent() -> ActivityContext {
    ActivityContext::impersonating(
        Actor::new("alice").with_name("Alice"),
        Actor::new("agent-9").with_name("Agent"),
    )
    .with_organization("org-support")
    .with_request_id("req-1")
    .with_ip("10.0.0.1")
    .with_user_agent("agent-browser")
}

async fn manual_entries_keep_what_the_caller_set(t: &TestDb) {
    // An auth service logs a failed login for bob, from the attacker's address, outside any
    // context: bob and that address are stored, not a system entry without an address.
    let mut failed = ActivityEntry::new("Auth", "login_failed");
    failed.user_id = Some("bob".into());
    failed.ip_address = Some("203.0.113.9".into());
    failed.organization_id = Some("org-bob".into());
    log_activity(&t.db, failed).await.unwrap();

    // The same inside another user's (impersonated) request: the caller's actor stays whole
    // (no impersonator borrowed from the context), what it left unset comes from the context.
    ActivityContext::scope(support_agent(), async {
        let mut e = ActivityEntry::new("Auth", "password_reset");
        e.user_id = Some("bob".into());
        e.user_agent = Some("mail-link".into());
        log_activity(&t.db, e).await.unwrap();
        // Nothing set: the context's actor, impersonation and request fields.
        log_activity(&t.db, ActivityEntry::new("Auth", "viewed"))
            .await
            .unwrap();
    })
    .await;

    let entries = t.entries().await;
    let by = |activity: &str| entries.iter().find(|e| e.activity == activity).unwrap();
    let failed = by("login_failed");
    assert_eq!(failed.user_id.as_deref(), Some("bob"));
    assert!(!failed.is_system, "{failed:?}");
    assert_eq!(failed.ip_address.as_deref(), Some("203.0.113.9"));
    assert_eq!(failed.organization_id.as_deref(), Some("org-bob"));

    let reset = by("password_reset");
    assert_eq!(reset.user_id.as_deref(), Some("bob"));
    assert_eq!(reset.user_name, None);
    assert_eq!(reset.impersonated_by, None);
    assert!(!reset.was_impersonated && !reset.is_system);
    assert_eq!(reset.user_agent.as_deref(), Some("mail-link"));
    assert_eq!(reset.ip_address.as_deref(), Some("10.0.0.1"));
    assert_eq!(reset.request_id.as_deref(), Some("req-1"));
    assert_eq!(reset.organization_id.as_deref(), Some("org-support"));

    let viewed = by("viewed");
    assert_eq!(viewed.user_id.as_deref(), Some("alice"));
    assert_eq!(viewed.impersonated_by.as_deref(), Some("agent-9"));
    assert!(viewed.was_impersonated);
    assert_eq!(viewed.user_agent.as_deref(), Some("agent-browser"));
}

async fn an_items_tenant_is_the_whole_tenant_of_its_entry(t: &TestDb) {
    ActivityContext::scope(support_agent().with_team("team-support"), async {
        // `feature_flag` names `team = team_id`: team 7's item, whoever edits it.
        new_flag("beta").insert(&t.db).await.unwrap();
        // `setting` names no tenant: the request's tenant is all there is.
        setting::ActiveModel {
            key: Set("theme".into()),
            value: Set("dark".into()),
        }
        .insert(&t.db)
        .await
        .unwrap();
    })
    .await;
    let entries = t.entries().await;
    let flag = entries.iter().find(|e| e.scope == "FeatureFlag").unwrap();
    assert_eq!(flag.team_id.as_deref(), Some("7"));
    assert_eq!(
        flag.organization_id, None,
        "team 7's flag filed under the agent's organization"
    );
    let setting = entries.iter().find(|e| e.scope == "Setting").unwrap();
    assert_eq!(setting.organization_id.as_deref(), Some("org-support"));
    assert_eq!(setting.team_id.as_deref(), Some("team-support"));
    // A team-only read of team 7 finds the flag; the agent's organization feed does not.
    let org_feed = load_activity(&t.db, &ActivityQuery::for_organization("org-support"))
        .await
        .unwrap();
    assert!(org_feed.results.iter().all(|e| e.scope != "FeatureFlag"));
}

async fn a_scope_changes_only_what_it_sets(t: &TestDb) {
    let at = chrono::DateTime::parse_from_rfc3339("2026-03-04T05:06:07Z")
        .unwrap()
        .to_utc();
    let outer = ActivityConfig::new()
        .with_outbox(true)
        .with_erasure_key([3u8; 32]);
    outer
        .scope(async {
            // A test's or job's scope that only wants a clock: the outbox and key stay.
            let inner = ActivityConfig::new().with_clock(Arc::new(FixedClock(at)));
            inner
                .scope(async {
                    let config = ActivityConfig::current();
                    assert!(config.outbox());
                    assert!(config.erasure_key().is_some());
                    new_flag("clocked").insert(&t.db).await.unwrap();
                })
                .await;
            // Turning the outbox off is said, not implied.
            ActivityConfig::new()
                .with_outbox(false)
                .scope(async {
                    new_flag("no-outbox").insert(&t.db).await.unwrap();
                })
                .await;
        })
        .await;
    let entries = t.entries().await;
    let clocked = entries
        .iter()
        .find(|e| e.detail.name.as_deref() == Some("clocked"))
        .unwrap();
    assert_eq!(clocked.created_at, at);
    assert_eq!(outbox::pending(&t.db).await.unwrap(), 1, "{entries:?}");
}

async fn propagate_carries_the_mute(t: &TestDb) {
    let db = t.db.clone();
    mute_signals_in(async {
        let db2 = db.clone();
        tokio::spawn(ActivityContext::propagate(async move {
            new_flag("muted-child").insert(&db2).await.unwrap();
        }))
        .await
        .unwrap();
    })
    .await;
    let db3 = db.clone();
    mute_scopes(&["FeatureFlag"], async {
        let db4 = db3.clone();
        tokio::spawn(ActivityContext::propagate(async move {
            new_flag("muted-scope").insert(&db4).await.unwrap();
            setting::ActiveModel {
                key: Set("logged".into()),
                value: Set("yes".into()),
            }
            .insert(&db4)
            .await
            .unwrap();
        }))
        .await
        .unwrap();
    })
    .await;
    // A guard held across the spawn is carried too.
    {
        let _muted = mute_signals();
        let db5 = db.clone();
        tokio::spawn(ActivityContext::propagate(async move {
            new_flag("guarded-child").insert(&db5).await.unwrap();
        }))
        .await
        .unwrap();
    }
    // Without propagate a spawned task is its own: logged.
    let db6 = db.clone();
    mute_signals_in(async {
        tokio::spawn(async move { new_flag("plain-spawn").insert(&db6).await.unwrap() })
            .await
            .unwrap();
    })
    .await;
    let mut names: Vec<String> = t
        .entries()
        .await
        .into_iter()
        .filter_map(|e| e.detail.name)
        .collect();
    names.sort();
    assert_eq!(names, ["logged", "plain-spawn"]);
}

async fn composite_keys_are_unambiguous(t: &TestDb) {
    for (org, user) in [("a,1", 2), ("a", 1), ("a\\", 3)] {
        membership::ActiveModel {
            org_id: Set(org.into()),
            user_id: Set(user),
            role: Set("admin".into()),
        }
        .insert(&t.db)
        .await
        .unwrap();
    }
    let mut ids: Vec<String> = t
        .entries()
        .await
        .into_iter()
        .filter_map(|e| e.item_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["a,1", "a\\,1,2", "a\\\\,3"]);
    assert_eq!(item_id_parts("a\\,1,2", 2), ["a,1", "2"]);
    assert_eq!(item_id_parts("a\\\\,3", 2), ["a\\", "3"]);
    let one = load_activity(
        &t.db,
        &ActivityQuery::for_organization("a,1").item_ids(["a\\,1,2"]),
    )
    .await
    .unwrap();
    assert_eq!(one.results.len(), 1);
}

backend_tests!(
    manual_entries_keep_what_the_caller_set,
    an_items_tenant_is_the_whole_tenant_of_its_entry,
    a_scope_changes_only_what_it_sets,
    propagate_carries_the_mute,
    composite_keys_are_unambiguous,
);
