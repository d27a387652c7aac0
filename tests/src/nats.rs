//! A private `nats-server` with JetStream on a free port and a temporary store, that a test can
//! stop and start again (same port, same store) to take NATS away mid-stream.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server binary: `NATS_SERVER` or Debian's.
fn binary() -> String {
    std::env::var("NATS_SERVER").unwrap_or_else(|_| "/usr/sbin/nats-server".to_owned())
}

/// A running (or stopped) private server.
#[derive(Debug)]
pub struct PrivateNats {
    port: u16,
    store: PathBuf,
    config: Option<PathBuf>,
    child: Option<Child>,
}

impl PrivateNats {
    /// Start one; panics (loudly) if the binary is missing or the server does not listen.
    pub fn start() -> PrivateNats {
        Self::start_with_config("")
    }

    /// Start one with these lines of server configuration (e.g. `max_payload: 32768`).
    pub fn start_with_config(config: &str) -> PrivateNats {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let store = std::env::temp_dir().join(format!("activity-nats-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&store).expect("a store directory");
        let config = (!config.is_empty()).then(|| {
            let path = store.join("server.conf");
            std::fs::write(&path, config).expect("the server's configuration");
            path
        });
        let mut nats = PrivateNats {
            port,
            store,
            config,
            child: None,
        };
        nats.resume();
        nats
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stop the server (SIGTERM, then wait); its store stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port and store, and wait until it listens.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut command = Command::new(binary());
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        let child = command
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// A stream of its own on the shared server (`ACTIVITY_TEST_NATS_URL`), so tests running at
/// once never read each other's entries; deleted by [`TestStream::delete`].
#[derive(Debug)]
pub struct TestStream {
    /// A client of the shared server.
    pub client: async_nats::Client,
    /// The stream's name, `<TAG>_<unique>`.
    pub stream: String,
    /// The relay's subject prefix, `<tag>_<unique>`: its subjects are `<prefix>.>`.
    pub prefix: String,
    /// The unique part of both, for consumer names.
    pub unique: String,
}

impl TestStream {
    /// Connect to the shared server (panics, loudly, if the variable is unset or the server is
    /// unreachable) and name a new stream after `tag`.
    pub async fn new(tag: &str) -> TestStream {
        let url = std::env::var("ACTIVITY_TEST_NATS_URL")
            .expect("ACTIVITY_TEST_NATS_URL is not set: this test cannot run without its server");
        let client = async_nats::connect(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("NATS at {url} is unreachable: {e}"));
        let unique = uuid::Uuid::now_v7().simple().to_string();
        TestStream {
            client,
            stream: format!("{}_{unique}", tag.to_uppercase()),
            prefix: format!("{}_{unique}", tag.to_lowercase()),
            unique,
        }
    }

    /// A relay of `db`'s outbox into this stream, the stream created.
    pub async fn relay(&self, db: &sea_orm::DatabaseConnection) -> activity_nats::Relay {
        let relay = activity_nats::Relay::with_config(
            db.clone(),
            self.client.clone(),
            activity_nats::RelayConfig::default()
                .with_stream(self.stream.as_str())
                .with_subject_prefix(self.prefix.as_str()),
        );
        relay.ensure_stream().await.expect("create the stream");
        relay
    }

    /// Relay everything in `db`'s outbox into this stream, until the outbox is empty.
    pub async fn relay_all(&self, db: &sea_orm::DatabaseConnection) {
        let relay = self.relay(db).await;
        while let activity_nats::Step::Published(_) =
            relay.relay_batch().await.expect("relay a batch")
        {}
    }

    /// Delete the stream.
    pub async fn delete(self) {
        async_nats::jetstream::new(self.client)
            .delete_stream(self.stream.as_str())
            .await
            .expect("delete the test stream");
    }
}
