//! The axum service of `examples/axum_service.rs`: CRUD for feature flags and dashboards, the
//! activity API and an HTML feed, with the actor set per request by [`ActivityLayer`].
//!
//! Authentication is a stand-in: `x-user-id` / `x-user-name` name the user, `x-impersonator`
//! the support agent acting as them, `x-team-id` the tenant. A real service would take these
//! from its session or token middleware and put them in the same places.

use std::net::SocketAddr;

use activity_seaorm::prelude::*;
use activity_seaorm::{ActivityLayer, Error as LogError, transaction};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use scoped_futures::ScopedFutureExt;
use sea_orm::{
    ActiveModelTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel, ModelTrait, Set,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{dashboard, feature_flag};

/// The router, ready for `axum::serve(.., app.into_make_service_with_connect_info::<SocketAddr>())`.
pub fn app(db: DatabaseConnection) -> Router {
    Router::new()
        .route("/flags", axum::routing::post(create_flag))
        .route(
            "/flags/{id}",
            get(get_flag).patch(update_flag).delete(delete_flag),
        )
        .route("/dashboards", axum::routing::post(create_dashboard))
        .route(
            "/dashboards/{id}",
            axum::routing::patch(update_dashboard).delete(delete_dashboard),
        )
        .route("/activity", get(activity))
        .route("/activity/feed", get(feed))
        .layer(ActivityLayer::new(
            request_context as fn(&Request) -> ActivityContext,
        ))
        .with_state(db)
}

/// Build the request's activity context from headers and the peer address.
pub fn request_context(req: &Request) -> ActivityContext {
    let headers = req.headers();
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .filter(|v| !v.is_empty())
    };
    let user = text("x-user-id").map(|id| {
        let actor = Actor::new(id);
        match text("x-user-name") {
            Some(name) => actor.with_name(name),
            None => actor,
        }
    });
    let mut ctx = match (user, text("x-impersonator")) {
        (Some(user), Some(by)) => ActivityContext::impersonating(user, Actor::new(by)),
        (Some(user), None) => ActivityContext::for_user(user),
        (None, _) => ActivityContext::system(),
    };
    if let Some(team) = text("x-team-id") {
        ctx = ctx.with_team(team);
    }
    if let Some(id) = text("x-request-id") {
        ctx = ctx.with_request_id(id);
    }
    if let Some(agent) = text("user-agent") {
        ctx = ctx.with_user_agent(agent);
    }
    let forwarded =
        text("x-forwarded-for").and_then(|f| f.split(',').next().map(|s| s.trim().to_owned()));
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    if let Some(ip) = forwarded.or(peer) {
        ctx = ctx.with_ip(ip);
    }
    ctx.with_client("axum-example")
}

/// An error as a JSON body with the right status.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<DbErr> for ApiError {
    fn from(e: DbErr) -> Self {
        match e {
            DbErr::RecordNotFound(_) | DbErr::RecordNotUpdated => {
                ApiError(StatusCode::NOT_FOUND, "not found".into())
            }
            other => ApiError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        let status = if e.is_invalid_query() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        ApiError(status, e.to_string())
    }
}

fn team(headers: &HeaderMap) -> Result<i64, ApiError> {
    headers
        .get("x-team-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                "x-team-id header (an integer) is required".into(),
            )
        })
}

/// Body of `POST /flags`.
#[derive(Debug, Deserialize)]
pub struct NewFlag {
    key: String,
    #[serde(default)]
    active: bool,
    #[serde(default)]
    webhook_secret: String,
}

/// Body of `PATCH /flags/{id}`.
#[derive(Debug, Deserialize)]
pub struct FlagPatch {
    key: Option<String>,
    active: Option<bool>,
    filters: Option<Value>,
}

async fn create_flag(
    State(db): State<DatabaseConnection>,
    headers: HeaderMap,
    Json(body): Json<NewFlag>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let team_id = team(&headers)?;
    let insert = feature_flag::ActiveModel {
        team_id: Set(team_id),
        key: Set(body.key),
        active: Set(body.active),
        filters: Set(json!({})),
        webhook_secret: Set(body.webhook_secret),
        cached_count: Set(0),
        last_accessed_at: Set(None),
        ..Default::default()
    }
    .insert(&db);
    // Imports replay data that is logged elsewhere: they ask not to be logged again.
    let flag = if headers.contains_key("x-import") {
        mute_signals_in(insert).await?
    } else {
        insert.await?
    };
    Ok((StatusCode::CREATED, Json(flag_json(&flag))))
}

fn flag_json(f: &feature_flag::Model) -> Value {
    json!({"id": f.id, "team_id": f.team_id, "key": f.key, "active": f.active, "filters": f.filters})
}

async fn get_flag(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
) -> Result<Json<Value>, ApiError> {
    let flag = feature_flag::Entity::find_by_id(id)
        .one(&db)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no flag {id}")))?;
    Ok(Json(flag_json(&flag)))
}

async fn update_flag(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
    Json(patch): Json<FlagPatch>,
) -> Result<Json<Value>, ApiError> {
    // Load, change and log in one transaction: `track` makes the update need no second read.
    let flag = transaction(&db, |txn| {
        async move {
            let flag = feature_flag::Entity::find_by_id(id)
                .one(txn)
                .await?
                .ok_or_else(|| DbErr::RecordNotFound(format!("flag {id}")))?;
            let mut flag = track(flag);
            if let Some(key) = patch.key {
                flag.key = Set(key);
            }
            if let Some(active) = patch.active {
                flag.active = Set(active);
            }
            if let Some(filters) = patch.filters {
                flag.filters = Set(filters);
            }
            flag.update(txn).await
        }
        .scope_boxed()
    })
    .await?;
    Ok(Json(flag_json(&flag)))
}

async fn delete_flag(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
) -> Result<StatusCode, ApiError> {
    let flag = feature_flag::Entity::find_by_id(id)
        .one(&db)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no flag {id}")))?;
    flag.delete(&db).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /dashboards` and `PATCH /dashboards/{id}`.
#[derive(Debug, Deserialize)]
pub struct DashboardBody {
    name: Option<String>,
    pinned: Option<bool>,
}

async fn create_dashboard(
    State(db): State<DatabaseConnection>,
    headers: HeaderMap,
    Json(body): Json<DashboardBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let team_id = team(&headers)?;
    let name = body
        .name
        .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "name is required".into()))?;
    let d = dashboard::ActiveModel {
        team_id: Set(team_id),
        name: Set(name),
        pinned: Set(body.pinned.unwrap_or(false)),
        ..Default::default()
    }
    .insert(&db)
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": d.id, "name": d.name, "pinned": d.pinned})),
    ))
}

async fn update_dashboard(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
    Json(body): Json<DashboardBody>,
) -> Result<Json<Value>, ApiError> {
    // The hook path: the before-state is read by the hook, in the same transaction.
    let d = dashboard::Entity::find_by_id(id)
        .one(&db)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no dashboard {id}")))?;
    let mut am = d.into_active_model();
    if let Some(name) = body.name {
        am.name = Set(name);
    }
    if let Some(pinned) = body.pinned {
        am.pinned = Set(pinned);
    }
    let d = am.update(&db).await?;
    Ok(Json(
        json!({"id": d.id, "name": d.name, "pinned": d.pinned}),
    ))
}

async fn delete_dashboard(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
) -> Result<StatusCode, ApiError> {
    let result = dashboard::ActiveModel {
        id: Set(id),
        ..Default::default()
    }
    .delete(&db)
    .await?;
    if result.rows_affected == 0 {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no dashboard {id}"),
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Query string of `GET /activity`.
#[derive(Debug, Deserialize)]
pub struct ActivityParams {
    scope: Option<String>,
    item_id: Option<String>,
    user: Option<String>,
    search: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    ascending: bool,
}

fn query_for(headers: &HeaderMap, params: ActivityParams) -> Result<ActivityQuery, ApiError> {
    let mut q = ActivityQuery::for_team(team(headers)?.to_string());
    if let Some(scope) = params.scope {
        q = q.scope(scope);
    }
    if let Some(item) = params.item_id {
        q = q.item_ids([item]);
    }
    if let Some(user) = params.user {
        q = q.users([user]);
    }
    if let Some(search) = params.search {
        q = q.search(search);
    }
    if let Some(limit) = params.limit {
        q = q.limit(limit);
    }
    if params.ascending {
        q = q.ascending();
    }
    if let Some(cursor) = params.cursor {
        q = q.after(cursor);
    }
    Ok(q)
}

async fn activity(
    State(db): State<DatabaseConnection>,
    headers: HeaderMap,
    Query(params): Query<ActivityParams>,
) -> Result<Json<Value>, ApiError> {
    let page = load_activity(&db, &query_for(&headers, params)?).await?;
    Ok(Json(
        json!({ "results": page.results, "next_cursor": page.next_cursor }),
    ))
}

async fn feed(
    State(db): State<DatabaseConnection>,
    headers: HeaderMap,
    Query(params): Query<ActivityParams>,
) -> Result<Html<String>, ApiError> {
    let page = load_activity(&db, &query_for(&headers, params)?).await?;
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Activity</title></head><body><h1>Activity</h1><ul>",
    );
    for entry in &page.results {
        html.push_str(&format!(
            "<li><time>{}</time> {}</li>",
            entry.created_at.format("%Y-%m-%d %H:%M:%S"),
            escape(&describe(entry))
        ));
    }
    html.push_str("</ul></body></html>");
    Ok(Html(html))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
