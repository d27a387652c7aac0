//! The history page in a real browser (headless Chromium through chromedriver), the app on
//! SQLite: Alice undoes her own change with the entry's "Undo" button; Bob changes a flag after
//! Alice did, and Alice's "Undo" of her change shows the conflict and changes nothing; "Undo
//! this request" undoes a whole request (a project and its settings). A screenshot of the
//! conflict is written to `target/screenshots/history-conflict.png`.
//!
//! Runs when `ACTIVITY_TEST_BROWSER` is set (chromium and chromedriver installed: `apt-get
//! install chromium chromium-driver`, or `CHROMEDRIVER`); `.ci/run` sets it.

mod common;

use std::time::Duration;

use common::{browser, call, migrated_sqlite, serve, sign_in, start_chromedriver};
use fantoccini::{Client, Locator};
use serde_json::{Value, json};

/// Click the `button` of the newest entry whose text is `text`, and wait for the answer; the
/// result line and its HTTP status.
async fn click(client: &Client, base: &str, text: &str, button: &str) -> (String, String) {
    client
        .goto(&format!("{base}/history"))
        .await
        .expect("open the page");
    let mut target = None;
    let mut seen = Vec::new();
    for li in client
        .find_all(Locator::Css("#entries li"))
        .await
        .expect("entries")
    {
        let span = li.find(Locator::Css("span")).await.expect("text");
        let line = span.text().await.expect("text");
        if line == text {
            target = Some(li);
            break;
        }
        seen.push(line);
    }
    let Some(li) = target else {
        let source = client.source().await.unwrap_or_default();
        panic!("no entry {text:?} on the page: {seen:?}\n{source}");
    };
    li.find(Locator::Css(button))
        .await
        .expect("the button")
        .click()
        .await
        .expect("click");
    let body = client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("body[data-undone]"))
        .await
        .expect("the page got an answer");
    let status = body
        .attr("data-undone")
        .await
        .expect("attr")
        .unwrap_or_default();
    let result = client
        .find(Locator::Css("#result"))
        .await
        .expect("the result")
        .text()
        .await
        .expect("text");
    (status, result)
}

async fn flag(base: &str, project: &Value, id: &Value) -> Value {
    let project = call(
        base,
        "alice",
        reqwest::Method::GET,
        &format!("/projects/{project}"),
        json!({}),
    )
    .await;
    project["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .find(|f| f["id"] == *id)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(activity_browser), ignore = "ACTIVITY_TEST_BROWSER is not set")]
async fn undo_from_the_history_page_with_conflicts_shown() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    activity_seaorm::init(
        activity_seaorm::ActivityConfig::new().with_read_policy(seaorm_app_api::read_policy()),
    )
    .expect("the only configuration of this test binary");
    let (db, path) = migrated_sqlite("history").await;
    let base = serve(seaorm_app_api::app(db.clone())).await;

    let project = call(
        &base,
        "alice",
        reqwest::Method::POST,
        "/projects",
        json!({"name": "Checkout"}),
    )
    .await;
    let created = call(
        &base,
        "alice",
        reqwest::Method::POST,
        &format!("/projects/{}/flags", project["id"]),
        json!({"key": "beta"}),
    )
    .await;
    let id = created["id"].clone();
    let patch = format!("/flags/{id}");
    call(
        &base,
        "alice",
        reqwest::Method::PATCH,
        &patch,
        json!({"enabled": true}),
    )
    .await;

    let (_driver, driver_url) = start_chromedriver();
    let alice = browser(&driver_url).await;
    sign_in(&alice, &base, "alice", "/history").await;

    // Undo: nobody changed the flag since.
    let (status, result) = click(
        &alice,
        &base,
        "alice changed enabled from false to true on Flag beta",
        ".undo",
    )
    .await;
    assert_eq!(status, "200", "{result}");
    assert!(result.starts_with("Undone"), "{result}");
    assert_eq!(
        flag(&base, &project["id"], &id).await["enabled"],
        json!(false)
    );

    // Alice enables it again; then Bob changes it since. Undoing Alice's change is a conflict.
    call(
        &base,
        "alice",
        reqwest::Method::PATCH,
        &patch,
        json!({"enabled": true}),
    )
    .await;
    call(
        &base,
        "bob",
        reqwest::Method::PATCH,
        &patch,
        json!({"enabled": false}),
    )
    .await;
    let (status, result) = click(
        &alice,
        &base,
        "alice changed enabled from false to true on Flag beta",
        ".undo",
    )
    .await;
    assert_eq!(status, "409", "{result}");
    assert!(
        result.contains("enabled") && result.contains("changed since"),
        "{result}"
    );
    assert_eq!(
        flag(&base, &project["id"], &id).await["enabled"],
        json!(false),
        "Bob's change stands"
    );
    let shot = alice.screenshot().await.expect("screenshot");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    std::fs::write(dir.join("history-conflict.png"), shot).expect("write the screenshot");

    // Undo a whole request: a new project and its settings row, created by one request (two
    // entries, one correlation id), undone together.
    let second = call(
        &base,
        "alice",
        reqwest::Method::POST,
        "/projects",
        json!({"name": "Billing"}),
    )
    .await;
    let (status, result) = click(
        &alice,
        &base,
        "alice created Project Billing",
        ".undo-request",
    )
    .await;
    assert_eq!(status, "200", "{result}");
    let gone = reqwest::Client::new()
        .get(format!("{base}/projects/{}", second["id"]))
        .header("x-user", "alice")
        .send()
        .await
        .expect("request")
        .status();
    assert_eq!(gone, 404, "the project and its settings are undone");

    alice.close().await.ok();
    let _ = std::fs::remove_file(path);
}
