//! The axum example driven over real HTTP on an ephemeral loopback port.

use std::net::SocketAddr;

use activity_examples::{create_tables, service};
use serde_json::{Value, json};

struct Server {
    base: String,
    client: reqwest::Client,
}

async fn start() -> Server {
    let path = std::env::temp_dir().join(format!("activity-axum-test-{}.db", uuid_like()));
    let db = sea_orm::Database::connect(format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    create_tables(&db).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            service::app(db).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Server {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
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
    fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        user: Option<(&str, &str)>,
    ) -> reqwest::RequestBuilder {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("x-team-id", "7");
        if let Some((id, name)) = user {
            r = r.header("x-user-id", id).header("x-user-name", name);
        }
        r
    }

    async fn activity(&self, query: &str) -> (u16, Value) {
        let resp = self
            .req(reqwest::Method::GET, &format!("/activity?{query}"), None)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_users_are_attributed_and_request_ids_recorded() {
    let s = start().await;
    let mut tasks = Vec::new();
    for (id, name) in [("1", "alice"), ("2", "bob")] {
        for i in 0..20 {
            let req = s
                .req(reqwest::Method::POST, "/flags", Some((id, name)))
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
    let (status, page) = s.activity("scope=FeatureFlag&limit=100").await;
    assert_eq!(status, 200);
    let results = page["results"].as_array().unwrap();
    assert_eq!(results.len(), 40);
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
    }

    // x-request-id lands on the entry; impersonation is recorded.
    let id = results[0]["item_id"].as_str().unwrap().to_owned();
    let resp = s
        .req(
            reqwest::Method::PATCH,
            &format!("/flags/{id}"),
            Some(("1", "alice")),
        )
        .header("x-request-id", "req-xyz")
        .header("x-impersonator", "staff-9")
        .json(&json!({"active": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (_, page) = s.activity(&format!("scope=FeatureFlag&item_id={id}")).await;
    let latest = &page["results"][0];
    assert_eq!(latest["activity"], json!("updated"));
    assert_eq!(latest["request_id"], json!("req-xyz"));
    assert_eq!(latest["impersonated_by"], json!("staff-9"));
    assert_eq!(latest["was_impersonated"], json!(true));
    assert_eq!(latest["detail"]["changes"][0]["field"], json!("enabled"));

    // The HTML feed reads as sentences.
    let html = s
        .req(
            reqwest::Method::GET,
            "/activity/feed?scope=FeatureFlag&limit=5",
            None,
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
        let r = s
            .req(reqwest::Method::POST, "/dashboards", Some(("3", "carol")))
            .json(&json!({"name": format!("Sales {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
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
        seen += page["results"].as_array().unwrap().len();
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
        .req(reqwest::Method::GET, "/activity?limit=abc", None)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().await.unwrap().contains("limit"));
    let resp = s
        .client
        .get(format!("{}/activity", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400, "no tenant header");

    // Delete by id only: the entry still has the dashboard's name.
    let resp = s
        .req(
            reqwest::Method::DELETE,
            "/dashboards/1",
            Some(("3", "carol")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
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
            .req(reqwest::Method::POST, "/flags", Some((&user, &user)))
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
        for e in page["results"].as_array().unwrap() {
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
