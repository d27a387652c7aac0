//! `cargo run -p seaorm-app-api`: migrate (the seed included), then serve on `ADDR`
//! (default `127.0.0.1:3000`). `DATABASE_URL` defaults to an in-memory SQLite database. With
//! `NATS_URL` (e.g. `nats://127.0.0.1:4222`), entries also flow through the outbox and the relay
//! to JetStream, and `/notifications` shows a user's notifications as they arrive (signed in by
//! the `session` cookie of `POST /session`, which takes `x-user` like every other call).
//!
//! ```sh
//! curl -s -X POST localhost:3000/projects -H 'x-user: alice' -H 'content-type: application/json' \
//!      -d '{"name":"Checkout"}'
//! curl -s localhost:3000/activity/feed -H 'x-user: alice'
//! ```

use activity_seaorm::checked::Checker;
use migration::{Migrator, MigratorTrait};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Checked mode, production style: a write to an audited table that bypasses the log is a
    // counted warning (`checked::bypassed_writes()`); its layer also sees `execute_unprepared`.
    // The checker's layer filters for itself; the printed log keeps its own INFO filter.
    let checker = Checker::warn();
    tracing_subscriber::registry()
        .with(checker.layer())
        .with(tracing_subscriber::fmt::layer().with_filter(LevelFilter::INFO))
        .init();
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".to_owned());
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    // With NATS, committed entries also go to the outbox, for the relay and the notifier.
    let nats_url = std::env::var("NATS_URL").ok();
    activity_seaorm::init(
        activity_seaorm::ActivityConfig::new()
            .with_outbox(nats_url.is_some())
            .with_read_policy(seaorm_app_api::read_policy()),
    )?;
    let mut db = sea_orm::Database::connect(seaorm_app_api::connect_options(&url)).await?;
    Migrator::up(&db, None).await?;
    checker.install(&mut db);
    let hub = match nats_url {
        Some(nats_url) => {
            let nats = async_nats::connect(nats_url.as_str()).await?;
            let names = seaorm_app_api::notifications::StreamNames::default();
            let hub = seaorm_app_api::notifications::start(db.clone(), nats, names)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(
                "notifications: POST http://{addr}/session with x-user, then open \
                 http://{addr}/notifications with its cookie"
            );
            Some(hub)
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!("listening on http://{addr} (users: alice and bob of acme, carol of globex)");
    axum::serve(listener, seaorm_app_api::app_with_notifications(db, hub))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
