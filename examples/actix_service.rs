//! An actix-web 4 service with an activity log: `PATCH /flags/{id}` changes a feature flag
//! through the SeaORM hooks, as the user named by the `x-user` header, and `GET /activity`
//! returns the feed.
//!
//! actix runs each worker on its own single-threaded runtime; `ActivityMiddleware` scopes the
//! context (a tokio task-local) around each request's future, so every request, on any worker
//! and on any keep-alive connection, logs as its own user.
//!
//! Run with `cargo run -p activity-examples --example actix_service` (SQLite in a temp dir;
//! `ADDR` to listen elsewhere than `127.0.0.1:8080`). A real service takes the user from its
//! authentication, not from a header the client picks.

use activity_examples::{create_tables, feature_flag};
use activity_seaorm::prelude::*;
use activity_seaorm::{ActivityMiddleware, transaction_with_options};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, HttpServer, ResponseError, web};
use sea_orm::{
    ActiveModelTrait, DatabaseConnection, DbErr, EntityTrait, NotSet, Set, SqliteTransactionMode,
    TransactionOptions,
};
use serde::Deserialize;
use serde_json::{Value, json};

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .init();
    let path = std::env::temp_dir().join("activity-actix.db");
    let _ = std::fs::remove_file(&path);
    let db = sea_orm::Database::connect(format!("sqlite://{}?mode=rwc", path.display())).await?;
    create_tables(&db).await?;
    let id = seed_flag(&db).await?;

    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    // Two workers, each a thread with its own single-threaded runtime and its own `App`.
    let server = HttpServer::new(move || app(db.clone()))
        .workers(2)
        .bind(&addr)?;
    let base = server
        .addrs()
        .first()
        .map_or(addr.clone(), |a| a.to_string());
    println!("listening on http://{base}; try:");
    println!(
        "  curl -s -XPATCH http://{base}/flags/{id} -H 'x-user: alice' \
         -H 'content-type: application/json' -d '{{\"active\":true}}'"
    );
    println!("  curl -s 'http://{base}/activity?limit=10'");
    server.run().await?;
    Ok(())
}

/// The application: two routes behind the activity middleware. `HttpServer` builds one per
/// worker.
pub fn app(
    db: DatabaseConnection,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(db))
        .wrap(ActivityMiddleware::new(context))
        .route("/flags/{id}", web::patch().to(update_flag))
        .route("/activity", web::get().to(feed))
}

/// Each request's context: the user of `x-user` (`anonymous` without one; an empty or invalid
/// id is answered 400 by the middleware), its `x-request-id` and the client's IP address.
pub fn context(req: &ServiceRequest) -> ActivityContext {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let user = header("x-user").unwrap_or("anonymous");
    let mut ctx = ActivityContext::for_user(Actor::new(user));
    if let Some(id) = header("x-request-id") {
        ctx = ctx.with_request_id(id);
    }
    if let Some(peer) = req.peer_addr() {
        ctx = ctx.with_ip(peer.ip().to_string());
    }
    ctx
}

/// Create the demo flag as the system (a start-up job), and return its id.
pub async fn seed_flag(db: &DatabaseConnection) -> Result<i32, DbErr> {
    let job = ActivityContext::system().with_trigger(Trigger::new("seed", "startup"));
    let flag = ActivityContext::scope(job, async {
        feature_flag::ActiveModel {
            id: NotSet,
            team_id: Set(TEAM),
            key: Set("beta-checkout".into()),
            active: Set(false),
            filters: Set(json!({})),
            webhook_secret: Set("whsec_123".into()),
            cached_count: Set(0),
            last_accessed_at: Set(None),
        }
        .insert(db)
        .await
    })
    .await?;
    Ok(flag.id)
}

/// The one team of the demo.
const TEAM: i64 = 7;

/// SQLite allows one writer at a time: `IMMEDIATE` takes the write lock before the read, so
/// concurrent read-modify-write requests queue for it instead of failing with `SQLITE_BUSY`.
const WRITE: TransactionOptions = TransactionOptions {
    isolation_level: None,
    access_mode: None,
    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
};

/// Body of `PATCH /flags/{id}`.
#[derive(Debug, Deserialize)]
struct FlagPatch {
    active: Option<bool>,
    filters: Option<Value>,
}

/// `PATCH /flags/{id}`: the hooks log the change as the request's user.
async fn update_flag(
    db: web::Data<DatabaseConnection>,
    id: web::Path<i32>,
    patch: web::Json<FlagPatch>,
) -> Result<HttpResponse, ApiError> {
    let (id, patch) = (id.into_inner(), patch.into_inner());
    let flag = transaction_with_options(db.get_ref(), WRITE, |txn| {
        async move {
            let flag = feature_flag::Entity::find_by_id(id).one(txn).await?;
            let mut flag = track(flag.ok_or(ApiError::NotFound)?);
            if let Some(active) = patch.active {
                flag.active = Set(active);
            }
            if let Some(filters) = patch.filters {
                flag.filters = Set(filters);
            }
            Ok::<_, ApiError>(flag.update(txn).await?)
        }
        .scope_boxed()
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "id": flag.id, "key": flag.key, "active": flag.active, "filters": flag.filters,
    })))
}

/// Query of `GET /activity`.
#[derive(Debug, Deserialize)]
struct FeedParams {
    limit: Option<usize>,
}

/// `GET /activity?limit=N`: the team's feature-flag activity, newest first.
async fn feed(
    db: web::Data<DatabaseConnection>,
    params: web::Query<FeedParams>,
) -> Result<HttpResponse, ApiError> {
    let query = ActivityQuery::for_team(TEAM.to_string())
        .scope("FeatureFlag")
        .limit(params.limit.unwrap_or(50));
    let page = load_activity(db.get_ref(), &query).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// An error answer; the cause of a 500 is logged, never sent.
#[derive(Debug)]
enum ApiError {
    NotFound,
    BadQuery(String),
    Internal,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::NotFound => f.write_str("not found"),
            ApiError::BadQuery(why) => f.write_str(why),
            ApiError::Internal => f.write_str("internal error"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<DbErr> for ApiError {
    fn from(e: DbErr) -> Self {
        tracing::error!(error = %e, "database error");
        ApiError::Internal
    }
}

impl From<activity_seaorm::Error> for ApiError {
    fn from(e: activity_seaorm::Error) -> Self {
        if e.is_invalid_query() {
            ApiError::BadQuery(e.to_string())
        } else {
            tracing::error!(error = %e, "activity log read failed");
            ApiError::Internal
        }
    }
}
