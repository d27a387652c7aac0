//! The notification page in a real browser: headless Chromium through
//! chromedriver, the app on SQLite with the outbox on, the relay and the notifier on the
//! machine's NATS. Alice changes a flag over HTTP; Bob, who watches it, sees the notification
//! arrive on his open page; Alice, who watches it too, does not (never notify yourself).
//!
//! Runs when `ACTIVITY_TEST_NATS_URL` is set (and then needs `chromedriver` and `chromium`:
//! `apt-get install chromium chromium-driver`, or `CHROMEDRIVER`). A screenshot of Bob's page
//! is written to `target/screenshots/notifications-bob.png` for a person to look at.

mod common;

use std::time::{Duration, Instant};

use common::{browser, call, migrated_sqlite, serve, sign_in, start_chromedriver};
use fantoccini::{Client, Locator};
use seaorm_app_api::notifications::{self, StreamNames};
use serde_json::json;

async fn texts(client: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for li in client
        .find_all(Locator::Css("#notifications li"))
        .await
        .expect("find")
    {
        out.push(li.text().await.expect("text"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(activity_nats), ignore = "ACTIVITY_TEST_NATS_URL is not set")]
async fn the_watcher_sees_the_change_live_and_the_actor_does_not() {
    let nats_url = std::env::var("ACTIVITY_TEST_NATS_URL")
        .expect("ACTIVITY_TEST_NATS_URL is not set: this test needs NATS");
    let _ = rustls::crypto::ring::default_provider().install_default();
    activity_seaorm::init(
        activity_seaorm::ActivityConfig::new()
            .with_outbox(true)
            .with_read_policy(seaorm_app_api::read_policy()),
    )
    .expect("the only configuration of this test binary");
    let (db, path) = migrated_sqlite("browser").await;
    let nats = async_nats::connect(nats_url.as_str())
        .await
        .unwrap_or_else(|e| panic!("NATS at {nats_url} is unreachable: {e}"));
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let names = StreamNames {
        stream: format!("BROWSER_{unique}"),
        prefix: format!("browser_{unique}"),
        durable: format!("browser_{unique}"),
    };
    let hub = notifications::start(db.clone(), nats.clone(), names.clone())
        .await
        .expect("relay and notifier");
    let base = serve(seaorm_app_api::app_with_notifications(
        db.clone(),
        Some(hub),
    ))
    .await;

    // Alice creates a flag; Bob and Alice both watch it.
    let project = call(
        &base,
        "alice",
        reqwest::Method::POST,
        "/projects",
        json!({"name": "Checkout"}),
    )
    .await;
    let flags = format!("/projects/{}/flags", project["id"]);
    let flag = call(
        &base,
        "alice",
        reqwest::Method::POST,
        &flags,
        json!({"key": "beta"}),
    )
    .await;
    let item = flag["id"].to_string();
    for user in ["bob", "alice"] {
        let sub = json!({"scope": "Flag", "item_id": item});
        call(&base, user, reqwest::Method::POST, "/subscriptions", sub).await;
    }

    // The stream takes no user from its URL: only a session.
    let status = reqwest::get(format!("{base}/notifications/stream?user=bob"))
        .await
        .expect("request")
        .status();
    assert_eq!(status, 401, "a user named in the URL is not a session");

    let (_driver, driver_url) = start_chromedriver();
    let bob = browser(&driver_url).await;
    let alice = browser(&driver_url).await;
    for (client, user) in [(&bob, "bob"), (&alice, "alice")] {
        // Sign in (the application's login stands in as `POST /session`), give the browser its
        // session cookie, open the page: the page and its stream authenticate by the cookie.
        sign_in(client, &base, user, "/notifications").await;
        client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("body[data-ready=true]"))
            .await
            .expect("the page connected to its stream");
    }

    // Alice changes the flag over HTTP.
    let patch = format!("/flags/{item}");
    call(
        &base,
        "alice",
        reqwest::Method::PATCH,
        &patch,
        json!({"enabled": true}),
    )
    .await;

    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let seen = texts(&bob).await;
        if seen.iter().any(|t| t == "alice updated flag beta") {
            break seen;
        }
        assert!(
            Instant::now() < deadline,
            "Bob's page never showed the change: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Bob may also have heard of the creation (routed after he subscribed); nothing else.
    assert!(
        seen.iter()
            .all(|t| t == "alice updated flag beta" || t == "alice created flag beta"),
        "{seen:?}"
    );
    let shot = bob.screenshot().await.expect("screenshot");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    std::fs::write(dir.join("notifications-bob.png"), shot).expect("write the screenshot");

    // Alice's page, open the whole time, shows nothing: she acted.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(texts(&alice).await, Vec::<String>::new());

    bob.close().await.ok();
    alice.close().await.ok();
    async_nats::jetstream::new(nats)
        .delete_stream(names.stream.as_str())
        .await
        .ok();
    let _ = std::fs::remove_file(path);
}
