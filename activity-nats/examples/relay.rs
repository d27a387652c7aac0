//! The relay as its own process: publishes committed entries from the outbox of `DATABASE_URL`
//! to JetStream at `NATS_URL` until Ctrl-C. Run as many as you like; they take turns.
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test NATS_URL=nats://127.0.0.1:4222 \
//!   cargo run -p activity-nats --example relay
//! ```

use std::time::Duration;

use activity_nats::{Relay, RelayConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_target(false).init();
    let database_url = std::env::var("DATABASE_URL")?;
    let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let db = sea_orm::Database::connect(database_url.as_str()).await?;
    // The outbox table comes with the library's table (migration or `create_table`).
    activity_seaorm::schema::create_table(&db).await?;
    // NATS may be down at start: the client connects in the background and the relay catches
    // up once it is there.
    let nats = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(nats_url.as_str())
        .await?;
    let relay = Relay::with_config(db, nats, RelayConfig::default());
    while let Err(e) = relay.ensure_stream().await {
        tracing::warn!(error = %e, "waiting for JetStream");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let stats = relay.stats();
    let report = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            tracing::info!(
                published = stats.published(),
                duplicates = stats.duplicates(),
                retries = stats.retries(),
                lag_ms = stats.lag_ms(),
                "activity relay"
            );
        }
    });
    tracing::info!("relaying; Ctrl-C stops");
    relay
        .run_until(async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await;
    report.abort();
    Ok(())
}
