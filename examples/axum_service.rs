//! An axum 0.8 service with an activity log: CRUD for feature flags and dashboards, the actor
//! taken from headers per request, `GET /activity` (JSON page) and `GET /activity/feed` (HTML).
//!
//! Run with `cargo run -p activity-examples --example axum_service` (SQLite in a temp dir, or
//! `DATABASE_URL`), then for example:
//!
//! ```sh
//! curl -s -XPOST localhost:3000/flags -H 'x-user-id: 1' -H 'x-user-name: alice' -H 'x-team-id: 7' \
//!      -H 'content-type: application/json' -d '{"key":"beta"}'
//! curl -s -XPATCH localhost:3000/flags/1 -H 'x-user-id: 1' -H 'x-team-id: 7' \
//!      -H 'content-type: application/json' -d '{"active":true}'
//! curl -s 'localhost:3000/activity?scope=FeatureFlag' -H 'x-team-id: 7'
//! ```

use std::net::SocketAddr;

use activity_examples::{create_tables, service};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        let path = std::env::temp_dir().join("activity-axum.db");
        format!("sqlite://{}?mode=rwc", path.display())
    });
    let db = sea_orm::Database::connect(&url).await?;
    create_tables(&db).await?;
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        service::app(db).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
