//! An axum 0.8 service with an activity log: CRUD for feature flags and dashboards, bearer-token
//! users with roles, `GET /activity` (JSON page) and `GET /activity/feed` (HTML), each scoped to
//! the caller's team. See `examples/src/service.rs` for what it guards against.
//!
//! Run with `cargo run -p activity-examples --example axum_service` (SQLite in a temp dir, or
//! `DATABASE_URL`; `ADDR` to listen elsewhere; `TRUSTED_PROXIES="10.0.0.0/8, 192.0.2.7"` when it
//! runs behind proxies whose `x-forwarded-for` should be believed). It makes a random token for
//! each demo user at start-up and prints `curl` commands that use them.

use std::fmt::Write as _;
use std::net::SocketAddr;

use activity_examples::create_tables;
use activity_examples::service::{self, Role, Settings, TrustedProxies, User, Users};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Database errors and refused requests are logged here, never sent to clients. (INFO would
    // add every SQL statement sqlx runs.)
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .init();
    activity_seaorm::init(
        activity_seaorm::ActivityConfig::new().with_read_policy(service::read_policy()),
    )?;

    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        let path = std::env::temp_dir().join("activity-axum.db");
        format!("sqlite://{}?mode=rwc", path.display())
    });
    let db = sea_orm::Database::connect(&url).await?;
    create_tables(&db).await?;

    let trusted_proxies = match std::env::var("TRUSTED_PROXIES") {
        Ok(list) => TrustedProxies::parse(&list)?,
        Err(_) => TrustedProxies::none(),
    };
    let (alice, importer, support) = (token()?, token()?, token()?);
    let users = Users::new()
        .with(&alice, User::new("1", "alice", 7))
        .with(
            &importer,
            User::new("2", "nightly-import", 7).with_role(Role::Importer),
        )
        .with(
            &support,
            User::new("staff-9", "sam", 0).with_role(Role::Support),
        );

    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("listening on {base}; try:");
    println!(
        "  curl -s -XPOST {base}/flags -H 'authorization: Bearer {alice}' \
         -H 'content-type: application/json' -d '{{\"key\":\"beta\"}}'"
    );
    println!(
        "  curl -s -XPATCH {base}/flags/1 -H 'authorization: Bearer {support}' -H 'x-act-as: 1' \
         -H 'content-type: application/json' -d '{{\"active\":true}}'"
    );
    println!(
        "  curl -s -XPOST {base}/flags -H 'authorization: Bearer {importer}' -H 'x-import: 1' \
         -H 'content-type: application/json' -d '{{\"key\":\"imported\"}}'   # not logged"
    );
    println!("  curl -s '{base}/activity?scope=FeatureFlag' -H 'authorization: Bearer {alice}'");
    println!("  curl -s '{base}/activity/feed' -H 'authorization: Bearer {alice}'");

    let app = service::app(
        db,
        Settings {
            users,
            trusted_proxies,
        },
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

/// 32 bytes from the operating system's CSPRNG, hex-encoded.
fn token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}
