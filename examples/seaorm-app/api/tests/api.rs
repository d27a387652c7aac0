//! The example app over real HTTP: a fresh database migrated by the app's own `Migrator` (the
//! seed included), the server on an ephemeral loopback port, `reqwest` as the client, and the
//! exact entries each request writes.
//!
//! SQLite always; PostgreSQL when `ACTIVITY_TEST_POSTGRES_URL` is set at build time (`build.rs`
//! turns it into `cfg(activity_postgres)`; without it these tests show as ignored, and with it
//! an unreachable server fails them). Each PostgreSQL test runs in a schema of its own, dropped
//! afterwards, so it never meets the other suites sharing the database.

use std::sync::LazyLock;
use std::time::Duration;

use activity_seaorm::checked::Checker;
use tracing_subscriber::prelude::*;

use entity::{organization, user};
use migration::{Migrator, MigratorTrait};
use reqwest::Method;
use sea_orm::{
    ColumnTrait, ConnectionTrait, Database, DatabaseConnection, EntityTrait, QueryFilter,
};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The server under test and its database.
struct App {
    base: String,
    client: reqwest::Client,
    db: DatabaseConnection,
    /// Dropped at the end: the PostgreSQL schema (with the admin connection) or the SQLite file.
    cleanup: Cleanup,
}

enum Cleanup {
    File(std::path::PathBuf),
    Schema(DatabaseConnection, String),
}

fn unique_name() -> String {
    format!("seaorm_app_{}", uuid::Uuid::now_v7().simple())
}

/// Checked mode over every test: a write of the app's to an audited table that bypasses the
/// log (raw SQL through `execute_unprepared` included, through the layer) is reported, and
/// [`App::finish`] fails the test on it. One checker, as the app has: the layer needs the
/// global subscriber.
static CHECKER: LazyLock<Checker> = LazyLock::new(|| {
    let checker = Checker::record();
    tracing_subscriber::registry()
        .with(checker.layer())
        .try_init()
        .expect("the only global subscriber of this test binary");
    checker
});

async fn connect(url: &str, schema: Option<&str>) -> DatabaseConnection {
    // The app's own pool settings (sqlx's statement events on, for the checker's layer), plus
    // the test's schema.
    let mut opts = seaorm_app_api::connect_options(url);
    opts.connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30));
    if let Some(schema) = schema {
        opts.set_schema_search_path(schema.to_owned());
    }
    Database::connect(opts)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e} (is the server running?)"))
}

impl App {
    async fn start(backend: Backend) -> App {
        LazyLock::force(&CHECKER); // before the migrations: their raw SQL is checked too
        let name = unique_name();
        let (db, cleanup) = match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                let db = connect(&format!("sqlite://{}?mode=rwc", path.display()), None).await;
                (db, Cleanup::File(path))
            }
            Backend::Postgres => {
                let url = std::env::var("ACTIVITY_TEST_POSTGRES_URL").unwrap_or_else(|_| {
                    panic!("ACTIVITY_TEST_POSTGRES_URL is not set: this test needs PostgreSQL")
                });
                let admin = connect(&url, None).await;
                admin
                    .execute_unprepared(&format!("CREATE SCHEMA {name}"))
                    .await
                    .unwrap_or_else(|e| panic!("creating schema {name} on {url}: {e}"));
                let db = connect(&url, Some(&name)).await;
                (db, Cleanup::Schema(admin, name))
            }
        };
        // What `cargo run -p seaorm-app-api` does: the app's tables, the log's, then the seed.
        Migrator::up(&db, None).await.expect("migrate");
        let mut db = db;
        CHECKER.install(&mut db);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = seaorm_app_api::app(db.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        App {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            db,
            cleanup,
        }
    }

    async fn finish(self) {
        let bypasses = CHECKER.take_reports();
        assert!(
            bypasses.is_empty(),
            "the app bypassed the log: {bypasses:?}"
        );
        assert_eq!(CHECKER.unverified(), 0, "raw SQL the checker could not see");
        let _ = self.db.close().await;
        match self.cleanup {
            Cleanup::File(path) => {
                let _ = std::fs::remove_file(path);
            }
            Cleanup::Schema(admin, name) => {
                let _ = admin
                    .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await;
            }
        }
    }

    /// A request as `user` (`None`: no `x-user`).
    fn req(&self, method: Method, path: &str, user: Option<&str>) -> reqwest::RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.base));
        match user {
            Some(u) => r.header("x-user", u),
            None => r,
        }
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `method path` as `user` with a JSON body; asserts the status.
    async fn call(&self, user: &str, method: Method, path: &str, body: Value, want: u16) -> Value {
        let (status, out) = self
            .send(self.req(method.clone(), path, Some(user)).json(&body))
            .await;
        assert_eq!(status, want, "{method} {path} as {user}: {out}");
        out
    }

    /// `GET /activity?{query}` as `user`: the page's entries.
    async fn activity(&self, user: &str, query: &str) -> Vec<Value> {
        let page = self
            .call(
                user,
                Method::GET,
                &format!("/activity?{query}"),
                json!(null),
                200,
            )
            .await;
        page["results"].as_array().expect("results").clone()
    }

    /// The id (as recorded in `user_id`) of a seeded user.
    /// The stored entry behind a feed entry, as an auditor reads it: the request fields a
    /// member's feed leaves out (client, request id, IP address, user agent) are here.
    async fn stored(&self, feed_entry: &Value) -> activity_seaorm::ActivityEntry {
        let id: uuid::Uuid = feed_entry["id"].as_str().unwrap().parse().unwrap();
        let row = activity_seaorm::activity_log::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .unwrap()
            .unwrap();
        activity_seaorm::ActivityEntry::from(row)
    }

    async fn user_id(&self, username: &str) -> String {
        user::Entity::find()
            .filter(user::Column::Username.eq(username))
            .one(&self.db)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no user {username}"))
            .id
            .to_string()
    }

    /// The id (as recorded in `organization_id`) of a seeded organization.
    async fn org_id(&self, name: &str) -> String {
        organization::Entity::find()
            .filter(organization::Column::Name.eq(name))
            .one(&self.db)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no organization {name}"))
            .id
            .to_string()
    }
}

/// `(scope, activity, detail.name)` of each entry.
fn summary(entries: &[Value]) -> Vec<(String, String, Value)> {
    entries
        .iter()
        .map(|e| {
            (
                e["scope"].as_str().unwrap().to_owned(),
                e["activity"].as_str().unwrap().to_owned(),
                e["detail"]["name"].clone(),
            )
        })
        .collect()
}

fn change(field: &str, action: &str, before: Value, after: Value) -> Value {
    json!({"type": null, "action": action, "field": field, "before": before, "after": after})
}

/// The entry's changes, with `type` blanked (it repeats the scope).
fn changes(entry: &Value) -> Vec<Value> {
    entry["detail"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let mut c = c.clone();
            assert_eq!(c["type"], entry["scope"], "a change's type is its scope");
            c["type"] = Value::Null;
            c
        })
        .collect()
}

/// The seed migration ran after the log's table existed, and its entries are system entries
/// naming the migration as their trigger.
async fn migrations_put_the_log_table_before_the_seed(app: &App) {
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "m20250101_000001_create_tables",
            "m20261101_000001_create_activity_log",
            "m20261201_000001_widen_activity_log_identifiers",
            "m20250301_000001_seed",
        ]
    );
    assert!(
        Migrator::get_pending_migrations(&app.db)
            .await
            .unwrap()
            .is_empty()
    );

    let seeded = app.activity("alice", "ascending=true").await;
    assert_eq!(
        summary(&seeded),
        [
            ("Project".into(), "created".into(), json!("Website")),
            ("ProjectSettings".into(), "created".into(), json!(null)),
            ("Flag".into(), "created".into(), json!("dark-mode")),
        ]
    );
    let acme = app.org_id("acme").await;
    for e in &seeded {
        assert_eq!(e["is_system"], json!(true));
        assert_eq!(e["user_id"], json!(null));
        assert_eq!(e["organization_id"], json!(acme));
        assert_eq!(
            e["detail"]["trigger"],
            json!({"job_type": "migration", "job_id": "m20250301_000001_seed", "payload": null})
        );
    }
    // Another organization sees none of it.
    assert!(app.activity("carol", "").await.is_empty());
}

/// Create, update, a no-op update, an update of an excluded field, masking, delete: exactly the
/// entries each should write, with the user who made them.
async fn create_update_noop_delete(app: &App) {
    let alice = app.user_id("alice").await;
    let acme = app.org_id("acme").await;

    // Create: a project and its settings in one transaction.
    let p = app
        .call(
            "alice",
            Method::POST,
            "/projects",
            json!({"name": "Checkout", "webhook_secret": "whsec-first"}),
            201,
        )
        .await;
    let pid = p["id"].as_i64().unwrap();
    let created = app.activity("alice", "ascending=true&limit=10").await;
    let created = &created[3..]; // after the seed's three
    assert_eq!(
        summary(created),
        [
            ("Project".into(), "created".into(), json!("Checkout")),
            ("ProjectSettings".into(), "created".into(), json!(null)),
        ]
    );
    for e in created {
        assert_eq!(e["user_id"], json!(alice));
        assert_eq!(e["user_name"], json!("alice"));
        assert_eq!(e["organization_id"], json!(acme));
        assert_eq!(e["is_system"], json!(false));
        // A member's feed leaves the request out; the log has it.
        assert!(
            e.get("client").is_none() && e.get("ip_address").is_none(),
            "{e}"
        );
        assert_eq!(
            app.stored(e).await.client.as_deref(),
            Some("seaorm-app-api")
        );
        assert_eq!(e["detail"]["changes"], json!([]));
    }
    assert_eq!(created[0]["item_id"], json!(pid.to_string()));
    assert_eq!(
        created[0]["correlation_id"], created[1]["correlation_id"],
        "one transaction, one correlation id"
    );

    // The relations: the project with its has-one settings and has-many flags.
    let f = app
        .call(
            "alice",
            Method::POST,
            &format!("/projects/{pid}/flags"),
            json!({"key": "new-checkout"}),
            201,
        )
        .await;
    let fid = f["id"].as_i64().unwrap();
    let got = app
        .call(
            "alice",
            Method::GET,
            &format!("/projects/{pid}"),
            json!(null),
            200,
        )
        .await;
    assert_eq!(got["settings"]["default_environment"], json!("production"));
    assert_eq!(got["flags"][0]["key"], json!("new-checkout"));

    let history = format!("scope=Flag&item_id={fid}&ascending=true");
    let flag_entries = app.activity("alice", &history).await;
    assert_eq!(
        summary(&flag_entries),
        [("Flag".into(), "created".into(), json!("new-checkout"))]
    );
    assert_eq!(flag_entries[0]["user_name"], json!("alice"));

    // Update: exactly the fields that changed.
    let (status, _) = app
        .send(
            app.req(Method::PATCH, &format!("/flags/{fid}"), Some("bob"))
                .header("x-request-id", "req-42")
                .json(&json!({"enabled": true, "rollout_percentage": 25, "key": "new-checkout"})),
        )
        .await;
    assert_eq!(status, 200);
    let flag_entries = app.activity("alice", &history).await;
    assert_eq!(flag_entries.len(), 2);
    let updated = &flag_entries[1];
    assert_eq!(updated["activity"], json!("updated"));
    assert_eq!(updated["user_id"], json!(app.user_id("bob").await));
    assert_eq!(updated["user_name"], json!("bob"));
    assert!(updated.get("request_id").is_none(), "{updated}");
    assert_eq!(
        app.stored(updated).await.request_id.as_deref(),
        Some("req-42")
    );
    assert_eq!(
        changes(updated),
        [
            change("enabled", "changed", json!(false), json!(true)),
            change("rollout_percentage", "changed", json!(0), json!(25)),
        ]
    );

    // A no-op update answers 200 and writes nothing; so does a change of an excluded field.
    app.call(
        "alice",
        Method::PATCH,
        &format!("/flags/{fid}"),
        json!({"enabled": true, "rollout_percentage": 25}),
        200,
    )
    .await;
    let evaluated = app
        .call(
            "alice",
            Method::POST,
            &format!("/flags/{fid}/evaluate"),
            json!(null),
            200,
        )
        .await;
    assert_eq!(evaluated["evaluation_count"], json!(1));
    assert_eq!(app.activity("alice", &history).await.len(), 2);

    // Masked: the change is logged, the values never are.
    app.call(
        "alice",
        Method::PATCH,
        &format!("/projects/{pid}"),
        json!({"webhook_secret": "whsec-second", "description": "Pay"}),
        200,
    )
    .await;
    app.call(
        "alice",
        Method::PATCH,
        &format!("/projects/{pid}/settings"),
        json!({"slack_webhook_url": "https://hooks.slack.test/T0/B0/tok3n"}),
        200,
    )
    .await;
    let latest = app.activity("alice", "limit=2").await;
    assert_eq!(
        summary(&latest),
        [
            ("ProjectSettings".into(), "updated".into(), json!(null)),
            ("Project".into(), "updated".into(), json!("Checkout")),
        ]
    );
    assert_eq!(
        changes(&latest[0]),
        [change(
            "slack_webhook_url",
            "created",
            json!(null),
            json!("masked")
        )]
    );
    assert_eq!(
        changes(&latest[1]),
        [
            change("description", "created", json!(null), json!("Pay")),
            change(
                "webhook_secret",
                "changed",
                json!("masked"),
                json!("masked")
            ),
        ]
    );
    let raw = app
        .req(Method::GET, "/activity?limit=100", Some("alice"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for secret in ["whsec-first", "whsec-second", "tok3n"] {
        assert!(!raw.contains(secret), "{secret} leaked into the log");
    }

    // Another organization can neither change the flag nor see its history.
    app.call(
        "carol",
        Method::PATCH,
        &format!("/flags/{fid}"),
        json!({"enabled": false}),
        404,
    )
    .await;
    app.call(
        "carol",
        Method::DELETE,
        &format!("/flags/{fid}"),
        json!(null),
        404,
    )
    .await;
    assert!(app.activity("carol", &history).await.is_empty());

    // Delete.
    let (status, _) = app
        .send(app.req(Method::DELETE, &format!("/flags/{fid}"), Some("alice")))
        .await;
    assert_eq!(status, 204);
    let flag_entries = app.activity("alice", &history).await;
    assert_eq!(
        summary(&flag_entries),
        [
            ("Flag".into(), "created".into(), json!("new-checkout")),
            ("Flag".into(), "updated".into(), json!("new-checkout")),
            ("Flag".into(), "deleted".into(), json!("new-checkout")),
        ]
    );
    assert_eq!(flag_entries[2]["user_id"], json!(alice));
    assert_eq!(flag_entries[2]["item_id"], json!(fid.to_string()));
    // The deletion records the flag's fields, so it can be read back and restored.
    let recorded: Vec<&str> = flag_entries[2]["detail"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        recorded,
        [
            "organization_id",
            "project_id",
            "key",
            "enabled",
            "rollout_percentage"
        ]
    );

    // Who is not signed in writes nothing and reads nothing.
    let (status, _) = app.send(app.req(Method::GET, "/activity", None)).await;
    assert_eq!(status, 401);
    let (status, _) = app
        .send(
            app.req(Method::POST, "/projects", Some("mallory"))
                .json(&json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, 401);
}

/// Several users at once on a multi-thread runtime: every entry carries the user of its own
/// request, and each organization sees only its own.
async fn concurrent_actors_each_get_their_own_entries(app: &App) {
    let globex = app
        .call(
            "carol",
            Method::POST,
            "/projects",
            json!({"name": "Globex site"}),
            201,
        )
        .await;
    let acme_project = app
        .call(
            "alice",
            Method::POST,
            "/projects",
            json!({"name": "Acme shop"}),
            201,
        )
        .await;
    const PER_USER: usize = 12;
    let mut tasks = Vec::new();
    for (user, project) in [
        ("alice", &acme_project),
        ("bob", &acme_project),
        ("carol", &globex),
    ] {
        let pid = project["id"].as_i64().unwrap();
        for i in 0..PER_USER {
            let req = app
                .req(Method::POST, &format!("/projects/{pid}/flags"), Some(user))
                .header("x-request-id", format!("{user}-{i}"))
                .json(&json!({"key": format!("{user}-flag-{i}")}));
            tasks.push(tokio::spawn(async move {
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap();
                assert_eq!(status, 201, "{body}");
                (user, body["id"].as_i64().unwrap())
            }));
        }
    }
    let mut created = Vec::new();
    for t in tasks {
        created.push(t.await.unwrap());
    }
    // Then each user switches their own flags on, all at once.
    let mut tasks = Vec::new();
    for (user, id) in created {
        let req = app
            .req(Method::PATCH, &format!("/flags/{id}"), Some(user))
            .json(&json!({"enabled": true}));
        tasks.push(tokio::spawn(async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200, "{:?}", resp.text().await);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    let mut ids = std::collections::HashMap::new();
    for user in ["alice", "bob", "carol"] {
        ids.insert(user, app.user_id(user).await);
    }
    for (reader, org, users) in [
        ("alice", "acme", &["alice", "bob"][..]),
        ("carol", "globex", &["carol"][..]),
    ] {
        let org_id = app.org_id(org).await;
        let entries = app.activity(reader, "scope=Flag&limit=1000").await;
        let ours: Vec<&Value> = entries
            .iter()
            .filter(|e| e["is_system"] == json!(false))
            .collect();
        assert_eq!(ours.len(), users.len() * PER_USER * 2, "{org}");
        for e in ours {
            let name = e["detail"]["name"].as_str().unwrap();
            let user = name.split('-').next().unwrap();
            assert!(users.contains(&user), "{name} in {org}'s feed");
            assert_eq!(e["user_id"], json!(ids[user]), "{name} misattributed");
            assert_eq!(e["user_name"], json!(user), "{name} misattributed");
            assert_eq!(e["organization_id"], json!(org_id));
            match e["activity"].as_str().unwrap() {
                "created" => {
                    let request = app.stored(e).await.request_id.unwrap();
                    assert_eq!(
                        name.replace("-flag-", "-"),
                        request,
                        "the entry carries its own request"
                    );
                }
                "updated" => assert_eq!(
                    changes(e),
                    [change("enabled", "changed", json!(false), json!(true))]
                ),
                other => panic!("unexpected {other}"),
            }
        }
    }
}

/// The feed endpoints: sentences, filters, and keyset pages that neither lose nor repeat rows.
async fn the_feed_reads_as_sentences_and_pages(app: &App) {
    let p = app
        .call(
            "alice",
            Method::POST,
            "/projects",
            json!({"name": "Billing"}),
            201,
        )
        .await;
    let f = app
        .call(
            "alice",
            Method::POST,
            &format!("/projects/{}/flags", p["id"]),
            json!({"key": "invoices-v2"}),
            201,
        )
        .await;
    let fid = f["id"].as_i64().unwrap();
    app.call(
        "bob",
        Method::PATCH,
        &format!("/flags/{fid}"),
        json!({"enabled": true}),
        200,
    )
    .await;
    app.call(
        "alice",
        Method::DELETE,
        &format!("/flags/{fid}"),
        json!(null),
        204,
    )
    .await;

    let feed = app
        .call(
            "alice",
            Method::GET,
            "/activity/feed?scope=Flag&ascending=true",
            json!(null),
            200,
        )
        .await;
    assert_eq!(
        feed,
        json!({
            "feed": [
                "system created Flag dark-mode",
                "alice created Flag invoices-v2",
                "bob changed enabled from false to true on Flag invoices-v2",
                "alice deleted Flag invoices-v2",
            ],
            "next_cursor": null,
        })
    );
    let bob = app.user_id("bob").await;
    let by_bob = app
        .call(
            "alice",
            Method::GET,
            &format!("/activity/feed?user_id={bob}"),
            json!(null),
            200,
        )
        .await;
    assert_eq!(
        by_bob["feed"],
        json!(["bob changed enabled from false to true on Flag invoices-v2"])
    );

    // Pages of two, newest first, following `next_cursor`: every entry once.
    let all = app.activity("alice", "limit=100").await;
    assert_eq!(all.len(), 3 + 2 + 3); // the seed, the project and its settings, the flag's three
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("/activity?limit=2&cursor={c}"),
            None => "/activity?limit=2".to_owned(),
        };
        let page = app
            .call("alice", Method::GET, &query, json!(null), 200)
            .await;
        let results = page["results"].as_array().unwrap();
        assert!(results.len() <= 2);
        seen.extend(results.iter().map(|e| e["id"].clone()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let ids: Vec<Value> = all.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(seen, ids);

    // An invalid query is the client's mistake: 400, with why.
    let (status, body) = app
        .send(app.req(Method::GET, "/activity?limit=100000", Some("alice")))
        .await;
    assert_eq!(status, 400, "{body}");
}

async fn run<F>(backend: Backend, test: F)
where
    F: for<'a> AsyncFn(&'a App),
{
    let app = App::start(backend).await;
    test(&app).await;
    app.finish().await;
}

/// One `#[tokio::test]` per backend for each `async fn name(app: &App)`.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() { super::run(super::Backend::Sqlite, super::$name).await }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[cfg_attr(not(activity_postgres), ignore = "ACTIVITY_TEST_POSTGRES_URL is not set")]
                async fn $name() { super::run(super::Backend::Postgres, super::$name).await }
            )*
        }
    };
}

backend_tests!(
    migrations_put_the_log_table_before_the_seed,
    create_update_noop_delete,
    concurrent_actors_each_get_their_own_entries,
    the_feed_reads_as_sentences_and_pages,
);
