//! `cargo run -p seaorm-app-api`: migrate (the seed included), then serve on `ADDR`
//! (default `127.0.0.1:3000`). `DATABASE_URL` defaults to an in-memory SQLite database.
//!
//! ```sh
//! curl -s -X POST localhost:3000/projects -H 'x-user: alice' -H 'content-type: application/json' \
//!      -d '{"name":"Checkout"}'
//! curl -s localhost:3000/activity/feed -H 'x-user: alice'
//! ```

use migration::{Migrator, MigratorTrait};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".to_owned());
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let db = sea_orm::Database::connect(seaorm_app_api::connect_options(&url)).await?;
    Migrator::up(&db, None).await?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!("listening on http://{addr} (users: alice and bob of acme, carol of globex)");
    axum::serve(listener, seaorm_app_api::app(db))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
