//! The axum example driven over real HTTP on an ephemeral loopback port.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use activity_examples::service::{self, Role, Settings, TrustedProxies, User, Users};
use activity_examples::{create_tables, feature_flag};
use reqwest::Method;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait};
use serde_json::{Value, json};

/// Team 7: alice and bob (members), an importer, an admin, the support agent staff-9.
/// Team 8: mallory. Tokens are `t-<name>`; user-0..36 (team 7, importers) for the load test.
fn users() -> Users {
    let mut users = Users::new()
        .with("t-alice", User::new("1", "alice", 7))
        .with("t-bob", User::new("2", "bob", 7))
        .with(
            "t-ingest",
            User::new("4", "ingest", 7).with_role(Role::Importer),
        )
        .with("t-root", User::new("5", "root", 7).with_role(Role::Admin))
        .with(
            "t-staff",
            User::new("staff-9", "sam", 0).with_role(Role::Support),
        )
        .with("t-carol", User::new("3", "carol", 7))
        .with("t-mallory", User::new("66", "mallory", 8));
    for i in 0..37 {
        let id = format!("user-{i}");
        users = users.with(
            &format!("t-{id}"),
            User::new(id.clone(), id, 7).with_role(Role::Importer),
        );
    }
    users
}

struct Server {
    base: String,
    client: reqwest::Client,
    db: DatabaseConnection,
}

async fn start() -> Server {
    start_with(TrustedProxies::none()).await
}

async fn start_with(trusted_proxies: TrustedProxies) -> Server {
    // As `axum_service` starts: with the service's read policy (the server's tasks take the
    // process-wide configuration).
    let _ = activity_seaorm::init(
        activity_seaorm::ActivityConfig::new().with_read_policy(service::read_policy()),
    );
    let path = std::env::temp_dir().join(format!("activity-axum-test-{}.db", uuid_like()));
    let db = sea_orm::Database::connect(format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    create_tables(&db).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = service::app(
        db.clone(),
        Settings {
            users: users(),
            trusted_proxies,
        },
    );
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Server {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        db,
    }
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

impl Server {
    /// A request as the holder of `token` (`None`: unauthenticated).
    fn req(&self, method: Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.base));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `GET /activity?{query}` as `token`'s user.
    async fn activity_as(&self, token: &str, query: &str) -> (u16, Value) {
        self.send(self.req(Method::GET, &format!("/activity?{query}"), Some(token)))
            .await
    }

    /// `GET /activity?{query}` as alice (team 7).
    async fn activity(&self, query: &str) -> (u16, Value) {
        self.activity_as("t-alice", query).await
    }

    async fn create_flag(&self, token: &str, key: &str) -> Value {
        let (status, body) = self
            .send(
                self.req(Method::POST, "/flags", Some(token))
                    .json(&json!({ "key": key })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }
}

fn results(page: &Value) -> &Vec<Value> {
    page["results"].as_array().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_users_are_attributed_and_request_ids_recorded() {
    let s = start().await;
    let mut tasks = Vec::new();
    for (token, name) in [("t-alice", "alice"), ("t-bob", "bob")] {
        for i in 0..20 {
            let req = s
                .req(Method::POST, "/flags", Some(token))
                .header("user-agent", format!("agent-{name}"))
                .json(&json!({"key": format!("{name}-flag-{i}")}));
            tasks.push(tokio::spawn(async move {
                req.send().await.unwrap().status().as_u16()
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    // An admin reads the entries as an auditor: with each request's origin.
    let (status, page) = s.activity_as("t-root", "scope=FeatureFlag&limit=100").await;
    assert_eq!(status, 200);
    let results = results(&page);
    assert_eq!(results.len(), 40);
    // A member reads them as a feed: no colleague's address or browser.
    let (_, member) = s.activity("scope=FeatureFlag&limit=100").await;
    for e in member["results"].as_array().unwrap() {
        for hidden in ["ip_address", "user_agent", "request_id", "impersonated_by"] {
            assert!(e.get(hidden).is_none(), "a member sees {hidden}: {e}");
        }
    }
    for e in results {
        let name = e["detail"]["name"].as_str().unwrap();
        let (user, agent) = if name.starts_with("alice") {
            ("1", "agent-alice")
        } else {
            ("2", "agent-bob")
        };
        assert_eq!(e["user_id"], json!(user), "{name} misattributed");
        assert_eq!(e["user_agent"], json!(agent));
        assert_eq!(e["ip_address"], json!("127.0.0.1"));
        assert_eq!(e["activity"], json!("created"));
        assert_eq!(e["team_id"], json!("7"));
    }

    // x-request-id lands on the entry; a support agent acting as alice is recorded as such.
    let id = results[0]["item_id"].as_str().unwrap().to_owned();
    let (status, _) = s
        .send(
            s.req(Method::PATCH, &format!("/flags/{id}"), Some("t-staff"))
                .header("x-act-as", "1")
                .header("x-request-id", "req-xyz")
                .json(&json!({"active": true})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, member) = s.activity(&format!("scope=FeatureFlag&item_id={id}")).await;
    assert_eq!(member["results"][0]["user_id"], json!("1"));
    assert!(member["results"][0].get("impersonated_by").is_none());
    let (_, page) = s
        .activity_as("t-root", &format!("scope=FeatureFlag&item_id={id}"))
        .await;
    let latest = &page["results"][0];
    assert_eq!(latest["activity"], json!("updated"));
    assert_eq!(latest["user_id"], json!("1"));
    assert_eq!(latest["request_id"], json!("req-xyz"));
    assert_eq!(latest["impersonated_by"], json!("staff-9"));
    assert_eq!(latest["was_impersonated"], json!(true));
    assert_eq!(latest["detail"]["changes"][0]["field"], json!("enabled"));

    // Only support staff may act as someone else.
    let (status, body) = s
        .send(
            s.req(Method::PATCH, &format!("/flags/{id}"), Some("t-bob"))
                .header("x-act-as", "1")
                .json(&json!({"active": false})),
        )
        .await;
    assert_eq!(status, 403, "{body}");

    // The HTML feed reads as sentences.
    let html = s
        .req(
            Method::GET,
            "/activity/feed?scope=FeatureFlag&limit=5",
            Some("t-alice"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(html.status().as_u16(), 200);
    let text = html.text().await.unwrap();
    assert!(
        text.contains(
            "alice (impersonated by staff-9) changed enabled from false to true on FeatureFlag"
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_and_bad_parameters() {
    let s = start().await;
    for i in 0..7 {
        let (status, _) = s
            .send(
                s.req(Method::POST, "/dashboards", Some("t-carol"))
                    .json(&json!({"name": format!("Sales {i}")})),
            )
            .await;
        assert_eq!(status, 201);
    }
    let mut cursor: Option<String> = None;
    let mut seen = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("scope=Dashboard&limit=3&cursor={c}"),
            None => "scope=Dashboard&limit=3".to_owned(),
        };
        let (status, page) = s.activity(&q).await;
        assert_eq!(status, 200, "{page}");
        seen += results(&page).len();
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, 7);

    let (status, body) = s.activity("limit=5000").await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("maximum 1000"),
        "{body}"
    );
    let (status, body) = s.activity("cursor=not-a-cursor").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("cursor"), "{body}");
    let resp = s
        .req(Method::GET, "/activity?limit=abc", Some("t-alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().await.unwrap().contains("limit"));

    // No token or an unknown one: 401 with a challenge, whatever else the request claims.
    for token in [None, Some("t-nobody")] {
        let resp = s
            .req(Method::GET, "/activity", token)
            .header("x-user-id", "1")
            .header("x-team-id", "7")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    }

    // The delete entry still has the dashboard's name.
    let (status, _) = s
        .send(s.req(Method::DELETE, "/dashboards/1", Some("t-carol")))
        .await;
    assert_eq!(status, 204);
    let (_, page) = s.activity("scope=Dashboard&item_id=1").await;
    assert_eq!(page["results"][0]["activity"], json!("deleted"));
    assert_eq!(page["results"][0]["detail"]["name"], json!("Sales 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_requests_keep_their_own_actor_and_mute() {
    let s = start().await;
    let mut tasks = Vec::new();
    let mut expected_logged = std::collections::BTreeMap::new();
    for i in 0..1_000u32 {
        // Deterministic pseudo-random mutes: about a third of the requests are imports.
        let muted = (i.wrapping_mul(2_654_435_761) >> 7) % 3 == 0;
        let user = format!("user-{}", i % 37);
        let key = format!("k{i}-{user}");
        if !muted {
            expected_logged.insert(key.clone(), user.clone());
        }
        let mut req = s
            .req(Method::POST, "/flags", Some(&format!("t-{user}")))
            .json(&json!({ "key": key }));
        if muted {
            req = req.header("x-import", "1");
        }
        tasks.push(tokio::spawn(async move {
            req.send().await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let mut logged = std::collections::BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("scope=FeatureFlag&limit=1000&cursor={c}"),
            None => "scope=FeatureFlag&limit=1000".to_owned(),
        };
        let (status, page) = s.activity(&q).await;
        assert_eq!(status, 200);
        for e in results(&page) {
            let key = e["detail"]["name"].as_str().unwrap().to_owned();
            let user = e["user_id"].as_str().unwrap().to_owned();
            assert!(logged.insert(key, user).is_none(), "one entry per request");
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        logged, expected_logged,
        "no misattributed, missing or wrongly muted entry"
    );
}

/// Entries of `FeatureFlag` in team 7, as `(activity, name, user_id)`, oldest first.
async fn flag_log(s: &Server) -> Vec<(String, String, String)> {
    let (status, page) = s
        .activity("scope=FeatureFlag&limit=1000&ascending=true")
        .await;
    assert_eq!(status, 200, "{page}");
    results(&page)
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (
                text("activity"),
                e["detail"]["name"].as_str().unwrap_or_default().to_owned(),
                text("user_id"),
            )
        })
        .collect()
}

fn owned(rows: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_importers_and_admins_may_mute_and_only_for_that_request() {
    let s = start().await;
    // A member (and a support agent acting as an importer) asking for an unlogged import: 403,
    // no row, and the refused attempt is on the record.
    for (token, act_as) in [("t-alice", None), ("t-staff", Some("4"))] {
        let mut r = s
            .req(Method::POST, "/flags", Some(token))
            .header("x-import", "1")
            .json(&json!({"key": "sneaky"}));
        if let Some(id) = act_as {
            r = r.header("x-act-as", id);
        }
        let (status, body) = s.send(r).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(
            body,
            json!({"error": "x-import needs the importer or admin role"})
        );
    }
    let rows = feature_flag::Entity::find().all(&s.db).await.unwrap();
    assert!(rows.is_empty(), "a refused import wrote {rows:?}");

    // An importer's and an admin's imports are not logged; their next requests on the same
    // client (a kept-alive connection, possibly the same server task) are.
    for (token, user) in [("t-ingest", "4"), ("t-root", "5")] {
        let (status, body) = s
            .send(
                s.req(Method::POST, "/flags", Some(token))
                    .header("x-import", "1")
                    .json(&json!({"key": format!("imported-by-{user}")})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        s.create_flag(token, &format!("logged-by-{user}")).await;
    }
    assert_eq!(
        feature_flag::Entity::find().all(&s.db).await.unwrap().len(),
        4
    );
    assert_eq!(
        flag_log(&s).await,
        owned(&[
            ("import_refused", "sneaky", "1"),
            ("import_refused", "sneaky", "4"),
            ("created", "logged-by-4", "4"),
            ("created", "logged-by-5", "5"),
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    // Nobody trusted (the default): a client's own header is a lie we do not record.
    let s = start().await;
    let (status, _) = s
        .send(
            s.req(Method::POST, "/flags", Some("t-alice"))
                .header("x-forwarded-for", "203.0.113.9")
                .json(&json!({"key": "direct"})),
        )
        .await;
    assert_eq!(status, 201);
    let (_, page) = s.activity_as("t-root", "scope=FeatureFlag").await;
    assert_eq!(page["results"][0]["ip_address"], json!("127.0.0.1"));

    // The test client is the trusted proxy: the right-most address it did not add itself is
    // the client; what the client prepended (6.6.6.6) is ignored.
    let s = start_with(TrustedProxies::parse("127.0.0.1/32, 10.0.0.0/8").unwrap()).await;
    let (status, _) = s
        .send(
            s.req(Method::POST, "/flags", Some("t-alice"))
                .header("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.5")
                .json(&json!({"key": "proxied"})),
        )
        .await;
    assert_eq!(status, 201);
    let (_, page) = s.activity_as("t-root", "scope=FeatureFlag").await;
    assert_eq!(page["results"][0]["ip_address"], json!("203.0.113.9"));
}

/// Everything `tracing` prints in this test binary, so a test can see what the service logged.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    Arc::clone(LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        // WARN and above: sqlx's per-statement INFO lines would slow the other tests.
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || Capture(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    }))
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_errors_reach_clients_as_a_generic_body_and_tracing_as_detail() {
    let logs = captured_logs();
    let s = start().await;
    let flag = s.create_flag("t-alice", "beta").await;
    let id = flag["id"].as_i64().unwrap();

    // Drop the table under the running service.
    s.db.execute_unprepared("DROP TABLE feature_flag")
        .await
        .unwrap();
    let generic = json!({"error": "internal error"});
    for r in [
        s.req(Method::GET, &format!("/flags/{id}"), Some("t-alice")),
        s.req(Method::PATCH, &format!("/flags/{id}"), Some("t-alice"))
            .json(&json!({"active": true})),
        s.req(Method::POST, "/flags", Some("t-alice"))
            .json(&json!({"key": "gamma"})),
    ] {
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 500);
        let text = resp.text().await.unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), generic);
        for leak in ["feature_flag", "table", "SELECT", "INSERT", "sqlite", "SQL"] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
    }
    // The read path's errors too.
    s.db.execute_unprepared("DROP TABLE activity_log")
        .await
        .unwrap();
    let (status, body) = s.activity("scope=FeatureFlag").await;
    assert_eq!((status, body), (500, generic));

    // The operator gets the detail.
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(logged.contains("no such table: feature_flag"), "{logged}");
    assert!(logged.contains("no such table: activity_log"), "{logged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_teams_rows_and_log_are_invisible() {
    let s = start().await;
    let flag = s.create_flag("t-alice", "team-7-flag").await;
    let id = flag["id"].as_i64().unwrap();
    let (status, body) = s
        .send(
            s.req(Method::POST, "/dashboards", Some("t-alice"))
                .json(&json!({"name": "Team 7 board"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let board = body["id"].as_i64().unwrap();
    s.create_flag("t-mallory", "team-8-flag").await;

    // Team 8 gets exactly what a missing id gets: 404, the same body.
    let not_found = json!({"error": "not found"});
    for path in [format!("/flags/{id}"), "/flags/999".to_owned()] {
        for r in [
            s.req(Method::GET, &path, Some("t-mallory")),
            s.req(Method::PATCH, &path, Some("t-mallory"))
                .json(&json!({"active": true, "key": "pwned"})),
            s.req(Method::DELETE, &path, Some("t-mallory")),
        ] {
            assert_eq!(s.send(r).await, (404, not_found.clone()), "{path}");
        }
    }
    for r in [
        s.req(
            Method::PATCH,
            &format!("/dashboards/{board}"),
            Some("t-mallory"),
        )
        .json(&json!({"pinned": true})),
        s.req(
            Method::DELETE,
            &format!("/dashboards/{board}"),
            Some("t-mallory"),
        ),
    ] {
        assert_eq!(s.send(r).await, (404, not_found.clone()));
    }

    // Untouched, and alice still sees it.
    let (status, body) = s
        .send(s.req(Method::GET, &format!("/flags/{id}"), Some("t-alice")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (&body["key"], &body["active"]),
        (&json!("team-7-flag"), &json!(false))
    );

    // Team 7's log has its own two creations and nothing of the attempts or of team 8.
    let (_, page) = s.activity("limit=1000").await;
    let seen: Vec<(String, String, String)> = results(&page)
        .iter()
        .map(|e| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                text(&e["activity"]),
                text(&e["user_id"]),
                text(&e["team_id"]),
            )
        })
        .collect();
    assert_eq!(
        seen,
        owned(&[("created", "1", "7"), ("created", "1", "7")]),
        "{page}"
    );
    // Team 8 sees its own entry only, in JSON and in the feed, whatever it filters on.
    let (_, page) = s.activity_as("t-mallory", "limit=1000").await;
    let entries = results(&page);
    assert_eq!(entries.len(), 1, "{page}");
    assert_eq!(entries[0]["team_id"], json!("8"));
    assert_eq!(entries[0]["detail"]["name"], json!("team-8-flag"));
    let (_, page) = s.activity_as("t-mallory", "user=1&limit=1000").await;
    assert!(results(&page).is_empty(), "{page}");
    let feed = |token: &'static str| {
        let r = s.req(Method::GET, "/activity/feed?limit=1000", Some(token));
        async move { r.send().await.unwrap().text().await.unwrap() }
    };
    let (feed7, feed8) = (feed("t-alice").await, feed("t-mallory").await);
    assert!(
        feed8.contains("team-8-flag") && !feed8.contains("team-7"),
        "{feed8}"
    );
    assert!(
        feed7.contains("team-7-flag") && !feed7.contains("team-8"),
        "{feed7}"
    );
}

/// The service's read policy over HTTP: an impersonated login and a change to bob's account are
/// in team 7's log, and the feed shows each member exactly what the policy lets them see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_follows_the_read_policy() {
    use activity_seaorm::{ActivityContext, ActivityEntry, Actor, log_activity};
    let s = start().await;
    s.create_flag("t-alice", "visible").await;
    let team7 = |mut e: ActivityEntry| {
        e.team_id = Some("7".into());
        e
    };
    let agent = ActivityContext::impersonating(Actor::new("1"), Actor::new("staff-9"))
        .with_ip("203.0.113.9");
    let login = team7(ActivityEntry::new("Session", "logged_in").with_context(&agent));
    let own_login = team7(
        ActivityEntry::new("Session", "logged_in")
            .with_context(&ActivityContext::for_user(Actor::new("1")).with_ip("198.51.100.4")),
    );
    let account = team7(
        ActivityEntry::new("User", "updated")
            .with_item_id("2")
            .with_context(&ActivityContext::for_user(Actor::new("5")))
            .forced(),
    );
    for e in [login, own_login, account] {
        log_activity(&s.db, e).await.unwrap();
    }
    let seen = |page: &Value| -> Vec<String> {
        let mut v: Vec<String> = results(page)
            .iter()
            .map(|e| {
                format!(
                    "{}.{}",
                    e["scope"].as_str().unwrap(),
                    e["activity"].as_str().unwrap()
                )
            })
            .collect();
        v.sort();
        v
    };
    // alice: her own plain login and the flag; not the impersonated login, not bob's account.
    let (status, page) = s.activity_as("t-alice", "limit=1000").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(seen(&page), ["FeatureFlag.created", "Session.logged_in"]);
    // bob: his own account's change too.
    let (_, page) = s.activity_as("t-bob", "limit=1000").await;
    assert_eq!(
        seen(&page),
        ["FeatureFlag.created", "Session.logged_in", "User.updated"]
    );
    // Pages of one never skip or repeat across the hidden rows.
    let mut ids = Vec::new();
    let mut query = "limit=1".to_owned();
    loop {
        let (_, page) = s.activity_as("t-bob", &query).await;
        ids.extend(results(&page).iter().map(|e| e["id"].clone()));
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(ids.len(), 3, "{ids:?}");
    // root, a team admin, reads as a member (the rules apply) but sees request origins.
    let (_, page) = s.activity_as("t-root", "limit=1000&scope=Session").await;
    assert_eq!(seen(&page), ["Session.logged_in"]);
    assert_eq!(results(&page)[0]["ip_address"], json!("198.51.100.4"));
    // The rows are all there for auditors.
    let all = activity_seaorm::load_activity(
        &s.db,
        &activity_seaorm::ActivityQuery::for_team("7").reader(activity_seaorm::Reader::auditor()),
    )
    .await
    .unwrap();
    assert_eq!(all.results.len(), 4);
}
