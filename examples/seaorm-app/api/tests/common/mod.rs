//! What the browser tests share: chromedriver on a free port, a headless Chromium session, and
//! a JSON call to the app as a user.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// chromedriver, stopped when dropped.
pub struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Start chromedriver; its URL.
pub fn start_chromedriver() -> (Driver, String) {
    let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let port = free_port();
    let child = Command::new(&binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {binary}: {e} (apt-get install chromium chromium-driver)")
        });
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Driver(child), format!("http://127.0.0.1:{port}"))
}

/// A headless Chromium session.
pub async fn browser(driver: &str) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=900,500"]}),
    );
    ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a browser session")
}

/// `method path` as `user` (`x-user`), the JSON answer; panics unless it succeeded.
pub async fn call(
    base: &str,
    user: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    let response = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .header("x-user", user)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.expect("json")
}

/// Open `page` in `client` signed in as `user`: a session from `POST /session`, set as the
/// cookie the app hands out (WebDriver's default SameSite=None would need Secure, which
/// plain-HTTP localhost is not).
pub async fn sign_in(client: &Client, base: &str, user: &str, page: &str) {
    let session = call(base, user, reqwest::Method::POST, "/session", json!({})).await;
    let token = session["session"]
        .as_str()
        .expect("a session token")
        .to_owned();
    client
        .goto(&format!("{base}{page}"))
        .await
        .expect("open the origin");
    let cookie = fantoccini::cookies::Cookie::parse(format!(
        "session={token}; Path=/; Domain=127.0.0.1; SameSite=Strict; HttpOnly"
    ))
    .expect("a cookie");
    client
        .add_cookie(cookie)
        .await
        .expect("set the session cookie");
    client
        .goto(&format!("{base}{page}"))
        .await
        .expect("open the page");
}

/// A fresh SQLite database with the app's migrations, in the temp directory: its connection and
/// its file (remove it when done).
pub async fn migrated_sqlite(tag: &str) -> (sea_orm::DatabaseConnection, std::path::PathBuf) {
    use migration::{Migrator, MigratorTrait};
    let path = std::env::temp_dir().join(format!("{tag}_{}.db", uuid::Uuid::now_v7().simple()));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let db = sea_orm::Database::connect(seaorm_app_api::connect_options(&url))
        .await
        .expect("sqlite");
    Migrator::up(&db, None).await.expect("migrate");
    (db, path)
}

/// Serve `app` on a free port; its base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}
