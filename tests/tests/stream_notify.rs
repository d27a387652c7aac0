//! Notifications: the anti-patterns the design ruled out, as tests. The actor is never a
//! recipient; preferences always apply; nobody who may not see the item receives it; targets
//! come only from subscriptions and the application's `Audience`, never from the library.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use activity_nats::notify::TenantKey;
use activity_nats::notify::{
    self, Audience, BoxError, Channel, Depth, ItemAudience, Notification, Preference, Router,
    Visibility,
};
use activity_seaorm::ActivityEntry;
use activity_tests::{TestDb, backend_tests};
use sea_orm::{ActiveModelTrait as _, EntityTrait as _};

/// The application's side: who owns what, who may see what.
#[derive(Default)]
struct App {
    items: HashMap<String, ItemAudience>,
    /// (user, item) pairs allowed to see under `Resource`/`Scope`/`Tenant`.
    grants: HashSet<(String, String)>,
}

#[async_trait::async_trait]
impl Audience for App {
    async fn item(&self, entry: &ActivityEntry) -> Result<ItemAudience, BoxError> {
        let item = entry.item_id.clone().unwrap_or_default();
        Ok(self.items.get(&item).cloned().unwrap_or_default())
    }

    async fn may_see(
        &self,
        user: &str,
        entry: &ActivityEntry,
        _: Visibility,
    ) -> Result<bool, BoxError> {
        let item = entry.item_id.clone().unwrap_or_default();
        Ok(self.grants.contains(&(user.to_owned(), item)))
    }
}

#[derive(Default)]
struct Inbox(Mutex<Vec<(String, String)>>);

#[async_trait::async_trait]
impl Channel for Inbox {
    async fn deliver(&self, n: &Notification) -> Result<(), BoxError> {
        self.0.lock().unwrap().push((
            n.recipient.clone(),
            format!(
                "{} {}",
                n.entry.activity,
                n.entry.item_id.clone().unwrap_or_default()
            ),
        ));
        Ok(())
    }
}

fn entry(actor: &str, activity: &str, item: &str) -> ActivityEntry {
    let mut e = ActivityEntry::new("FeatureFlag", activity).with_item_id(item);
    e.organization_id = Some("acme".into());
    e.user_id = Some(actor.into());
    e
}

fn grant(app: &mut App, users: &[&str], item: &str) {
    for user in users {
        app.grants.insert(((*user).to_owned(), item.to_owned()));
    }
}

async fn recipients(t: &TestDb, app: App, e: &ActivityEntry) -> Vec<String> {
    setup(t).await;
    Router::new(app).recipients(&t.db, e).await.unwrap()
}

async fn setup(t: &TestDb) {
    notify::create_tables(&t.db).await.unwrap();
}

async fn watchers_are_subscribers_owner_and_delegators_never_the_actor(t: &TestDb) {
    setup(t).await;
    for user in ["sub", "alice", "mallory"] {
        notify::subscribe(
            &t.db,
            &TenantKey::organization("acme"),
            user,
            "FeatureFlag",
            "1",
            Depth::Resource,
        )
        .await
        .unwrap();
    }
    let mut app = App::default();
    app.items.insert(
        "1".into(),
        ItemAudience::owned_by("owner")
            .with_delegators(["deleg"])
            .with_visibility(Visibility::Tenant),
    );
    grant(&mut app, &["sub", "alice", "owner", "deleg"], "1");
    // alice acts: she is subscribed, but never hears of her own action; mallory is subscribed
    // but may not see the item.
    let got = recipients(t, app, &entry("alice", "updated", "1")).await;
    assert_eq!(got, ["deleg", "owner", "sub"]);
}

async fn an_impersonator_is_an_actor_too(t: &TestDb) {
    let mut app = App::default();
    app.items.insert(
        "1".into(),
        ItemAudience::owned_by("owner")
            .with_delegators(["support"])
            .with_visibility(Visibility::Tenant),
    );
    grant(&mut app, &["owner", "support"], "1");
    let mut e = entry("owner", "updated", "1");
    e.impersonated_by = Some("support".into());
    e.was_impersonated = true;
    assert!(recipients(t, app, &e).await.is_empty());
}

async fn private_items_reach_only_owner_and_delegators(t: &TestDb) {
    setup(t).await;
    notify::subscribe(
        &t.db,
        &TenantKey::organization("acme"),
        "sub",
        "FeatureFlag",
        "1",
        Depth::Resource,
    )
    .await
    .unwrap();
    let mut app = App::default();
    app.items.insert(
        "1".into(),
        ItemAudience::owned_by("owner").with_delegators(["deleg"]),
    );
    // Even a grant does not open a private item to a subscriber.
    grant(&mut app, &["sub", "owner", "deleg"], "1");
    let got = recipients(t, app, &entry("x", "updated", "1")).await;
    assert_eq!(got, ["deleg", "owner"]);
}

async fn every_visibility_removes_who_may_not_see(t: &TestDb) {
    setup(t).await;
    for visibility in [Visibility::Resource, Visibility::Scope, Visibility::Tenant] {
        notify::subscribe(
            &t.db,
            &TenantKey::organization("acme"),
            "seer",
            "FeatureFlag",
            "1",
            Depth::Resource,
        )
        .await
        .unwrap();
        notify::subscribe(
            &t.db,
            &TenantKey::organization("acme"),
            "blind",
            "FeatureFlag",
            "1",
            Depth::Resource,
        )
        .await
        .unwrap();
        let mut app = App::default();
        app.items.insert(
            "1".into(),
            ItemAudience::owned_by("owner").with_visibility(visibility),
        );
        grant(&mut app, &["seer"], "1");
        // The owner lost access (e.g. left the organization): not notified either.
        let got = recipients(t, app, &entry("x", "updated", "1")).await;
        assert_eq!(got, ["seer"], "{visibility:?}");
    }
}

async fn preferences_always_apply(t: &TestDb) {
    setup(t).await;
    let users = ["default", "all", "flags", "docs"];
    for user in users {
        notify::subscribe(
            &t.db,
            &TenantKey::organization("acme"),
            user,
            "FeatureFlag",
            "1",
            Depth::Resource,
        )
        .await
        .unwrap();
    }
    notify::set_preference(
        &t.db,
        &TenantKey::organization("acme"),
        "all",
        &Preference::All,
    )
    .await
    .unwrap();
    notify::set_preference(
        &t.db,
        &TenantKey::organization("acme"),
        "flags",
        &Preference::Custom(vec!["featureflag.*".into()]),
    )
    .await
    .unwrap();
    notify::set_preference(
        &t.db,
        &TenantKey::organization("acme"),
        "docs",
        &Preference::Custom(vec!["Document.*".into()]),
    )
    .await
    .unwrap();
    // A preference in another tenant does not apply here.
    notify::set_preference(
        &t.db,
        &TenantKey::organization("other"),
        "default",
        &Preference::All,
    )
    .await
    .unwrap();
    let app = || {
        let mut app = App::default();
        app.items.insert(
            "1".into(),
            ItemAudience::default().with_visibility(Visibility::Tenant),
        );
        grant(&mut app, &users, "1");
        app
    };
    let router = Router::new(app()).with_workflow_verbs(["approved"]);
    let got = |activity: &'static str| {
        let e = entry("x", activity, "1");
        let router = &router;
        async move { router.recipients(&t.db, &e).await.unwrap() }
    };
    assert_eq!(got("updated").await, ["all", "default", "flags"]);
    assert_eq!(got("viewed").await, ["all", "flags"]);
    assert_eq!(got("approved").await, ["all", "default", "flags"]);
    assert_eq!(
        notify::preference(&t.db, &TenantKey::organization("acme"), "nobody")
            .await
            .unwrap(),
        Preference::Mutations
    );
}

async fn descendants_subscriptions_and_tenant_scoping(t: &TestDb) {
    setup(t).await;
    notify::subscribe(
        &t.db,
        &TenantKey::organization("acme"),
        "deep",
        "Project",
        "p1",
        Depth::Descendants,
    )
    .await
    .unwrap();
    notify::subscribe(
        &t.db,
        &TenantKey::organization("acme"),
        "shallow",
        "Project",
        "p1",
        Depth::Resource,
    )
    .await
    .unwrap();
    // Same scope and item id in another tenant: a different item.
    notify::subscribe(
        &t.db,
        &TenantKey::organization("globex"),
        "stranger",
        "FeatureFlag",
        "1",
        Depth::Resource,
    )
    .await
    .unwrap();
    let mut app = App::default();
    app.items.insert(
        "1".into(),
        ItemAudience::default()
            .with_ancestor("Project", "p1")
            .with_visibility(Visibility::Tenant),
    );
    grant(&mut app, &["deep", "shallow", "stranger"], "1");
    let got = recipients(t, app, &entry("x", "updated", "1")).await;
    assert_eq!(got, ["deep"]);
}

async fn nobody_is_notified_without_a_reason(t: &TestDb) {
    // No subscription, no owner, no delegator: the library invents no targets, whatever the
    // visibility and grants.
    let mut app = App::default();
    app.items.insert(
        "1".into(),
        ItemAudience::default().with_visibility(Visibility::Tenant),
    );
    grant(&mut app, &["admin", "everyone"], "1");
    assert!(
        recipients(t, app, &entry("x", "deleted", "1"))
            .await
            .is_empty()
    );
}

/// `watcher` subscribed to acme's flag 1, which `owner` owns and both may see.
async fn watched_flag(t: &TestDb, watcher: &str, owner: &str) -> App {
    setup(t).await;
    notify::subscribe(
        &t.db,
        &TenantKey::organization("acme"),
        watcher,
        "FeatureFlag",
        "1",
        Depth::Resource,
    )
    .await
    .unwrap();
    let mut app = App::default();
    app.items.insert(
        "1".into(),
        ItemAudience::owned_by(owner).with_visibility(Visibility::Tenant),
    );
    grant(&mut app, &[watcher, owner], "1");
    app
}

async fn delivery_is_idempotent_per_entry_and_recipient(t: &TestDb) {
    let app = watched_flag(t, "sub", "owner").await;
    let router = Router::new(app);
    let inbox = Inbox::default();
    let e = entry("x", "updated", "1");
    assert_eq!(
        notify::handle(&t.db, &router, &inbox, e.clone())
            .await
            .unwrap(),
        2
    );
    // Redelivered by JetStream: nobody is notified twice.
    assert_eq!(notify::handle(&t.db, &router, &inbox, e).await.unwrap(), 0);
    assert_eq!(inbox.0.lock().unwrap().len(), 2);
}

async fn subscriptions_are_created_listed_and_revoked(t: &TestDb) {
    setup(t).await;
    notify::subscribe(
        &t.db,
        &TenantKey::organization("acme"),
        "u",
        "FeatureFlag",
        "1",
        Depth::Resource,
    )
    .await
    .unwrap();
    notify::subscribe(
        &t.db,
        &TenantKey::organization("acme"),
        "u",
        "Project",
        "p",
        Depth::Resource,
    )
    .await
    .unwrap();
    // Subscribing again changes the depth, adds no row.
    notify::subscribe(
        &t.db,
        &TenantKey::organization("acme"),
        "u",
        "Project",
        "p",
        Depth::Descendants,
    )
    .await
    .unwrap();
    notify::subscribe(
        &t.db,
        &TenantKey::organization("globex"),
        "u",
        "FeatureFlag",
        "1",
        Depth::Resource,
    )
    .await
    .unwrap();
    let mine: Vec<(String, String, String)> =
        notify::subscriptions(&t.db, &TenantKey::organization("acme"), "u")
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.scope, s.item_id, s.depth))
            .collect();
    assert_eq!(
        mine,
        [
            ("FeatureFlag".into(), "1".into(), "resource".into()),
            ("Project".into(), "p".into(), "descendants".into())
        ]
    );
    assert!(
        notify::unsubscribe(
            &t.db,
            &TenantKey::organization("acme"),
            "u",
            "FeatureFlag",
            "1"
        )
        .await
        .unwrap()
    );
    assert!(
        !notify::unsubscribe(
            &t.db,
            &TenantKey::organization("acme"),
            "u",
            "FeatureFlag",
            "1"
        )
        .await
        .unwrap()
    );
    assert_eq!(
        notify::subscriptions(&t.db, &TenantKey::organization("acme"), "u")
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        notify::subscriptions(&t.db, &TenantKey::organization("globex"), "u")
            .await
            .unwrap()
            .len(),
        1
    );
    // Ids compare exactly on every backend (MySQL's default collation would fold case and
    // trailing spaces): another user's or tenant's spelling finds nothing, revokes nothing.
    for (tenant, user) in [("acme", "U"), ("ACME", "u"), ("acme ", "u"), ("acme", "u ")] {
        assert!(
            notify::subscriptions(&t.db, &TenantKey::organization(tenant), user)
                .await
                .unwrap()
                .is_empty(),
            "{tenant:?} {user:?}"
        );
        assert!(
            !notify::unsubscribe(
                &t.db,
                &TenantKey::organization(tenant),
                user,
                "Project",
                "p"
            )
            .await
            .unwrap()
        );
    }
    // Idempotent table creation.
    notify::create_tables(&t.db).await.unwrap();
}

/// A channel that keeps each notification's entry as JSON.
#[derive(Default)]
struct Recorder(Mutex<Vec<serde_json::Value>>);

#[async_trait::async_trait]
impl Channel for Recorder {
    async fn deliver(&self, n: &Notification) -> Result<(), BoxError> {
        self.0
            .lock()
            .unwrap()
            .push(serde_json::to_value(&*n.entry)?);
        Ok(())
    }
}

/// Notifications go to people: the entry they carry has no IP address, user agent, request id
/// or impersonator (a watcher must not learn a colleague's address, browser, or which agent
/// acted as them).
async fn notifications_carry_the_redacted_entry(t: &TestDb) {
    let app = watched_flag(t, "watcher", "nobody").await;
    let mut e = entry("alice", "updated", "1");
    e.impersonated_by = Some("agent-9".into());
    e.was_impersonated = true;
    e.ip_address = Some("198.51.100.7".into());
    e.user_agent = Some("AliceBrowser".into());
    e.request_id = Some("req-1".into());
    let recorder = Recorder::default();
    assert_eq!(
        notify::handle(&t.db, &Router::new(app), &recorder, e)
            .await
            .unwrap(),
        2,
        "the watcher and the owner"
    );
    for sent in recorder.0.lock().unwrap().iter() {
        assert_eq!(sent["user_id"], "alice");
        assert_eq!(sent["activity"], "updated");
        let text = sent.to_string();
        for hidden in [
            "198.51.100.7",
            "AliceBrowser",
            "agent-9",
            "req-1",
            "impersonat",
        ] {
            assert!(
                !text.contains(hidden),
                "a notification carries {hidden}: {text}"
            );
        }
    }
}

/// Organization "5" and team "5" are two tenants: a watcher of organization 5's flag 1 is not
/// told about team 5's flag 1 (before typed keys, both were the tenant key "5").
async fn an_organization_and_a_team_of_one_id_are_two_tenants(t: &TestDb) {
    setup(t).await;
    notify::subscribe(
        &t.db,
        &TenantKey::organization("5"),
        "org-watcher",
        "FeatureFlag",
        "1",
        Depth::Resource,
    )
    .await
    .unwrap();
    notify::subscribe(
        &t.db,
        &TenantKey::team("5"),
        "team-watcher",
        "FeatureFlag",
        "1",
        Depth::Resource,
    )
    .await
    .unwrap();
    let mut app = App::default();
    app.items.insert(
        "1".into(),
        ItemAudience::owned_by("nobody").with_visibility(Visibility::Tenant),
    );
    grant(&mut app, &["org-watcher", "team-watcher"], "1");
    let mut of_team = ActivityEntry::new("FeatureFlag", "updated").with_item_id("1");
    of_team.team_id = Some("5".into());
    of_team.user_id = Some("x".into());
    let router = Router::new(app);
    let to = router.recipients(&t.db, &of_team).await.unwrap();
    assert!(to.contains(&"team-watcher".to_owned()), "{to:?}");
    assert!(!to.contains(&"org-watcher".to_owned()), "{to:?}");
    let mut of_org = of_team.clone();
    of_org.team_id = None;
    of_org.organization_id = Some("5".into());
    let to = router.recipients(&t.db, &of_org).await.unwrap();
    assert!(to.contains(&"org-watcher".to_owned()), "{to:?}");
    assert!(!to.contains(&"team-watcher".to_owned()), "{to:?}");
}

/// Rows stored before keys were typed get their kind from the log: an organization the log
/// knows, else a team the log knows without an organization, else an organization; once.
async fn untyped_tenant_keys_are_migrated_from_the_log(t: &TestDb) {
    use activity_nats::notify::activity_subscription;
    setup(t).await;
    let mut org = ActivityEntry::new("FeatureFlag", "updated").forced();
    org.organization_id = Some("acme".into());
    let mut team = ActivityEntry::new("FeatureFlag", "updated").forced();
    team.team_id = Some("7".into());
    activity_seaorm::bulk_log_activity(&t.db, vec![org, team])
        .await
        .unwrap();
    for (tenant, user) in [("acme", "a"), ("7", "b"), ("ghost", "c"), ("", "d")] {
        activity_subscription::ActiveModel {
            id: sea_orm::Set(uuid::Uuid::now_v7()),
            tenant: sea_orm::Set(tenant.into()),
            user_id: sea_orm::Set(user.into()),
            scope: sea_orm::Set("FeatureFlag".into()),
            item_id: sea_orm::Set("1".into()),
            depth: sea_orm::Set("resource".into()),
            created_at: sea_orm::Set(chrono::Utc::now()),
        }
        .insert(&t.db)
        .await
        .unwrap();
    }
    assert_eq!(notify::migrate_tenant_keys(&t.db).await.unwrap(), 3);
    let mut keys: Vec<(String, String)> = activity_subscription::Entity::find()
        .all(&t.db)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.user_id, s.tenant))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            ("a".to_owned(), "o:acme".to_owned()),
            ("b".to_owned(), "t:7".to_owned()),
            ("c".to_owned(), "o:ghost".to_owned()),
            ("d".to_owned(), String::new()),
        ]
    );
    assert_eq!(notify::migrate_tenant_keys(&t.db).await.unwrap(), 0);
}

backend_tests!(
    notifications_carry_the_redacted_entry,
    an_organization_and_a_team_of_one_id_are_two_tenants,
    untyped_tenant_keys_are_migrated_from_the_log,
    watchers_are_subscribers_owner_and_delegators_never_the_actor,
    an_impersonator_is_an_actor_too,
    private_items_reach_only_owner_and_delegators,
    every_visibility_removes_who_may_not_see,
    preferences_always_apply,
    descendants_subscriptions_and_tenant_scoping,
    nobody_is_notified_without_a_reason,
    delivery_is_idempotent_per_entry_and_recipient,
    subscriptions_are_created_listed_and_revoked,
    a_failed_delivery_is_retried_for_those_not_served,
    a_recipient_who_always_fails_never_holds_up_the_others,
);

/// A channel that fails once for one recipient.
struct Flaky {
    inbox: Inbox,
    fail_for: Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl Channel for Flaky {
    async fn deliver(&self, n: &Notification) -> Result<(), BoxError> {
        let failing = {
            let mut fail = self.fail_for.lock().unwrap();
            let failing = fail.as_deref() == Some(n.recipient.as_str());
            if failing {
                *fail = None;
            }
            failing
        };
        if failing {
            return Err("mail server down".into());
        }
        self.inbox.deliver(n).await
    }
}

/// Flag 1 of organization acme, visible to the tenant, with `users` subscribed and granted.
async fn subscribed(t: &TestDb, users: &[&str]) -> App {
    setup(t).await;
    for user in users {
        notify::subscribe(
            &t.db,
            &TenantKey::organization("acme"),
            user,
            "FeatureFlag",
            "1",
            Depth::Resource,
        )
        .await
        .unwrap();
    }
    let mut app = App::default();
    app.items.insert(
        "1".into(),
        ItemAudience::default().with_visibility(Visibility::Tenant),
    );
    grant(&mut app, users, "1");
    app
}

async fn a_failed_delivery_is_retried_for_those_not_served(t: &TestDb) {
    let router = Router::new(subscribed(t, &["a", "b", "c"]).await);
    let channel = Flaky {
        inbox: Inbox::default(),
        fail_for: Mutex::new(Some("b".into())),
    };
    let e = entry("x", "updated", "1");
    assert!(
        notify::handle(&t.db, &router, &channel, e.clone())
            .await
            .is_err()
    );
    // b failed, but c, sorted after b, was served at once; the redelivery serves b alone.
    assert_eq!(
        notify::handle(&t.db, &router, &channel, e).await.unwrap(),
        1
    );
    let got: Vec<String> = channel
        .inbox
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(r, _)| r.clone())
        .collect();
    assert_eq!(got, ["a", "c", "b"]);
}

/// A recipient whose channel always fails (a bounced address): everyone else is notified once,
/// on the first delivery, however often the message comes back for the one who is not.
async fn a_recipient_who_always_fails_never_holds_up_the_others(t: &TestDb) {
    let app = subscribed(t, &["a", "b", "c", "d"]).await;
    struct Bounces(Inbox);
    #[async_trait::async_trait]
    impl Channel for Bounces {
        async fn deliver(&self, n: &Notification) -> Result<(), BoxError> {
            if n.recipient == "a" {
                return Err("550 mailbox unavailable".into());
            }
            self.0.deliver(n).await
        }
    }
    let router = Router::new(app);
    let channel = Bounces(Inbox::default());
    let e = entry("x", "updated", "1");
    for _ in 0..3 {
        assert!(
            notify::handle(&t.db, &router, &channel, e.clone())
                .await
                .is_err()
        );
    }
    let got: Vec<String> = channel
        .0
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(r, _)| r.clone())
        .collect();
    assert_eq!(
        got,
        ["b", "c", "d"],
        "each of the others once, on the first delivery"
    );
}

/// End to end on the machine's NATS: writes with the outbox on, the relay, and a durable
/// notifier consumer; a restarted notifier resumes without notifying anyone twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(activity_nats), ignore = "ACTIVITY_TEST_NATS_URL is not set")]
async fn notifier_consumes_the_stream_once() {
    use activity_nats::notify::{Notifier, NotifierConfig};
    use activity_seaorm::ActivityConfig;
    use activity_tests::nats::TestStream;
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
    use std::sync::Arc;
    use std::time::Duration;

    #[derive(Clone, Default)]
    struct Shared(Arc<Inbox>);

    #[async_trait::async_trait]
    impl Channel for Shared {
        async fn deliver(&self, n: &Notification) -> Result<(), BoxError> {
            self.0.deliver(n).await
        }
    }

    let nats = TestStream::new("notify").await;
    let t = TestDb::new(activity_tests::Backend::Sqlite).await;
    setup(&t).await;
    // Flags of team 7 (the tenant); "watcher" subscribes to the flag.
    let flag = ActivityConfig::new()
        .with_outbox(true)
        .scope(async {
            let flag = activity_tests::new_flag("beta")
                .insert(&t.db)
                .await
                .unwrap();
            notify::subscribe(
                &t.db,
                &TenantKey::team("7"),
                "watcher",
                "FeatureFlag",
                &flag.id.to_string(),
                Depth::Resource,
            )
            .await
            .unwrap();
            let actor =
                activity_seaorm::ActivityContext::for_user(activity_seaorm::Actor::new("actor"));
            activity_seaorm::ActivityContext::scope(actor, async {
                for round in 0..3 {
                    let mut am = flag.clone().into_active_model();
                    am.active = Set(round % 2 == 0);
                    am.update(&t.db).await.unwrap();
                }
            })
            .await;
            flag
        })
        .await;
    nats.relay_all(&t.db).await;

    let item = flag.id.to_string();
    let make = |inbox: Shared| {
        let mut app = App::default();
        app.items.insert(
            item.clone(),
            ItemAudience::owned_by("actor").with_visibility(Visibility::Tenant),
        );
        grant(&mut app, &["watcher", "actor"], &item);
        Notifier::with_config(
            t.db.clone(),
            nats.client.clone(),
            Router::new(app),
            inbox,
            NotifierConfig::default()
                .with_stream(nats.stream.as_str())
                .with_durable(format!("n_{}", nats.unique))
                .with_filter_subject(format!("{}.>", nats.prefix)),
        )
    };
    let inbox = Shared::default();
    let first = make(inbox.clone());
    // Until the five notifications are in (or 20 s, on a slow machine).
    let arrived = async {
        while inbox.0.0.lock().unwrap().len() < 5 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        _ = first.run() => {}
        () = arrived => {}
        () = tokio::time::sleep(Duration::from_secs(20)) => {}
    }
    // Let the last acknowledgement reach the server before the restart.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // created (by nobody: no context) + 3 updates by the actor: the watcher hears all four;
    // the actor (also the owner) hears of the creation only — not of their own updates.
    let mut got: Vec<(String, String)> = inbox.0.0.lock().unwrap().clone();
    got.sort();
    assert_eq!(
        got,
        [
            ("actor".to_owned(), format!("created {item}")),
            ("watcher".to_owned(), format!("created {item}")),
            ("watcher".to_owned(), format!("updated {item}")),
            ("watcher".to_owned(), format!("updated {item}")),
            ("watcher".to_owned(), format!("updated {item}")),
        ]
    );
    // Restarted: the durable consumer resumes after what was acknowledged.
    let again = Shared::default();
    let second = make(again.clone());
    let _ = tokio::time::timeout(Duration::from_secs(2), second.run()).await;
    assert!(
        again.0.0.lock().unwrap().is_empty(),
        "notified twice after a restart"
    );
    nats.delete().await;
    t.cleanup().await;
}

/// The notification tables by migration, after the log's, up and down.
#[tokio::test]
async fn the_migration_creates_and_drops_the_tables() {
    use sea_orm_migration::prelude::*;

    struct Migrator;

    #[async_trait::async_trait]
    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![
                Box::new(activity_seaorm::schema::migration::Migration),
                Box::new(notify::migration::Migration),
            ]
        }
    }

    let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    notify::subscribe(
        &db,
        &TenantKey::organization("acme"),
        "u",
        "FeatureFlag",
        "1",
        Depth::Resource,
    )
    .await
    .unwrap();
    assert_eq!(
        notify::subscriptions(&db, &TenantKey::organization("acme"), "u")
            .await
            .unwrap()
            .len(),
        1
    );
    Migrator::down(&db, Some(1)).await.unwrap();
    assert!(
        notify::subscriptions(&db, &TenantKey::organization("acme"), "u")
            .await
            .is_err(),
        "the tables are gone"
    );
}

/// A channel shared with a running notifier: who got which entry, and when.
#[derive(Clone, Default)]
struct SharedInbox {
    got: std::sync::Arc<Mutex<Vec<(String, String)>>>,
    /// Recipients whose channel always fails.
    bounces: std::sync::Arc<HashSet<String>>,
    /// Time each delivery takes.
    slow: std::time::Duration,
}

#[async_trait::async_trait]
impl Channel for SharedInbox {
    async fn deliver(&self, n: &Notification) -> Result<(), BoxError> {
        tokio::time::sleep(self.slow).await;
        if self.bounces.contains(&n.recipient) {
            return Err("550 mailbox unavailable".into());
        }
        self.got
            .lock()
            .unwrap()
            .push((n.recipient.clone(), n.entry.id.to_string()));
        Ok(())
    }
}

/// Entries of flag 1 of acme by "x", published straight onto a test stream.
async fn published(nats: &activity_tests::nats::TestStream, t: &TestDb, n: usize) -> Vec<String> {
    // The relay creates the stream; the entries go on it as the relay would send them.
    let _ = nats.relay(&t.db).await;
    let js = async_nats::jetstream::new(nats.client.clone());
    let mut ids = Vec::new();
    for _ in 0..n {
        let e = entry("x", "updated", "1");
        ids.push(e.id.to_string());
        js.publish(
            format!("{}.o.acme.FeatureFlag", nats.prefix),
            serde_json::to_vec(&e).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    ids
}

fn notifier_on(
    nats: &activity_tests::nats::TestStream,
    t: &TestDb,
    app: App,
    channel: SharedInbox,
) -> activity_nats::notify::Notifier<App, SharedInbox> {
    use activity_nats::notify::{Notifier, NotifierConfig};
    use std::time::Duration;
    Notifier::with_config(
        t.db.clone(),
        nats.client.clone(),
        Router::new(app),
        channel,
        NotifierConfig::default()
            .with_stream(nats.stream.as_str())
            .with_durable(format!("n_{}", nats.unique))
            .with_filter_subject(format!("{}.>", nats.prefix))
            .with_ack_wait(Duration::from_secs(1))
            .with_max_attempts(3)
            .with_retry_backoff(Duration::from_millis(50), Duration::from_millis(200)),
    )
}

/// Every (recipient, entry) delivered, counted.
fn deliveries(got: &Mutex<Vec<(String, String)>>) -> HashMap<(String, String), usize> {
    let mut counts = HashMap::new();
    for pair in got.lock().unwrap().iter() {
        *counts.entry(pair.clone()).or_insert(0) += 1;
    }
    counts
}

/// On real NATS: a recipient whose channel always fails (a bounced address) is retried on its
/// own a bounded number of times and then dead-lettered; everyone else gets every entry once,
/// within seconds. Before, the message came back every second forever.
async fn a_failing_recipient_is_dead_lettered_and_the_others_notified_once(t: &TestDb) {
    use std::time::{Duration, Instant};
    let nats = activity_tests::nats::TestStream::new("bounce").await;
    let app = subscribed(t, &["a", "bounce", "c"]).await;
    let ids = published(&nats, t, 3).await;
    let channel = SharedInbox {
        bounces: std::sync::Arc::new(HashSet::from(["bounce".to_owned()])),
        ..SharedInbox::default()
    };
    let notifier = notifier_on(&nats, t, app, channel.clone());
    let running = tokio::spawn(async move { notifier.run().await });
    let started = Instant::now();
    loop {
        let letters = notify::dead_letters(&t.db).await.unwrap();
        if letters.len() == 3 {
            for letter in &letters {
                assert_eq!(letter.recipient, "bounce");
                assert_eq!(letter.attempts, 3);
                assert!(letter.reason.contains("550"), "{}", letter.reason);
            }
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never dead-lettered: {letters:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing comes back once given up on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.abort();
    let counts = deliveries(&channel.got);
    let mut expected = HashMap::new();
    for id in &ids {
        for user in ["a", "c"] {
            expected.insert((user.to_owned(), id.clone()), 1);
        }
    }
    assert_eq!(counts, expected, "each of the others once");
    nats.delete().await;
}

/// On real NATS: two notifier instances on one durable consumer, with a fan-out slower than
/// `ack_wait` (12 recipients × 150 ms against 1 s): progress acks keep each message with the
/// instance working on it, and nobody is notified twice. Before, the other instance got it
/// again after `ack_wait` and notified everyone a second time.
async fn two_notifiers_with_a_slow_fan_out_notify_nobody_twice(t: &TestDb) {
    use std::time::{Duration, Instant};
    let nats = activity_tests::nats::TestStream::new("slowfan").await;
    let users: Vec<String> = (0..12).map(|i| format!("u{i:02}")).collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let ids = published(&nats, t, 3).await;
    let channel = SharedInbox {
        slow: Duration::from_millis(150),
        ..SharedInbox::default()
    };
    let first = notifier_on(&nats, t, subscribed(t, &names).await, channel.clone());
    let second = notifier_on(&nats, t, subscribed(t, &names).await, channel.clone());
    let a = tokio::spawn(async move { first.run().await });
    let b = tokio::spawn(async move { second.run().await });
    let started = Instant::now();
    while channel.got.lock().unwrap().len() < ids.len() * users.len() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "fan-out stalled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Longer than ack_wait again: a redelivery would show now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.abort();
    b.abort();
    let counts = deliveries(&channel.got);
    assert_eq!(counts.len(), ids.len() * users.len());
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "notified twice: {twice:?}");
    nats.delete().await;
}

activity_tests::nats_backend_tests!(
    db: a_failing_recipient_is_dead_lettered_and_the_others_notified_once,
    two_notifiers_with_a_slow_fan_out_notify_nobody_twice,
);
