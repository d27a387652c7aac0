//! The example app's HTTP API: projects (each with one `settings` row) and their feature flags,
//! every change logged with the user who made it, and the organization's activity feed.
//!
//! * **Who acts.** `x-user: <username>` names the signed-in user (a stand-in for your session or
//!   token middleware): [`authenticate`] looks the user up and puts a [`CurrentUser`] in the
//!   request's extensions, and [`ActivityLayer`] turns it into the request's
//!   [`ActivityContext`] ([`request_context`]), so every entry the request writes carries that
//!   user and organization. Unknown or missing user: 401.
//! * **Writes** go through [`activity_seaorm::transaction_with_options`] (SQLite `IMMEDIATE`, so
//!   concurrent requests queue for SQLite's write lock): a request's entries are written in one
//!   INSERT right before COMMIT, or not at all.
//! * **Tenancy.** Every read and write is filtered by the user's organization; another
//!   organization's row is 404, and the feed is the user's organization's only.
//!
//! | route | |
//! |---|---|
//! | `POST /projects` | create a project and its settings (two entries, one `correlation_id`) |
//! | `GET /projects/{id}` | the project with its settings and flags (the dense entities' relations) |
//! | `PATCH /projects/{id}` | rename, describe, rotate the (masked) webhook secret |
//! | `PATCH /projects/{id}/settings` | the has-one settings row |
//! | `POST /projects/{id}/flags` | create a flag |
//! | `PATCH /flags/{id}` | update a flag (`Tracked`: no second read) |
//! | `POST /flags/{id}/evaluate` | count an evaluation: an excluded field, so no entry |
//! | `DELETE /flags/{id}` | delete a flag |
//! | `GET /activity` | the feed as JSON: `results` ([`FeedEntry`]: no colleague's IP address, browser or impersonator) and `next_cursor`, filters in the query |
//! | `GET /activity/feed` | the feed as sentences ([`describe()`]) |
//! | `GET /history`, `POST /history/…/revert` | the [`history`] page: undo an entry or a request, conflicts shown |
//!
//! With NATS (`NATS_URL`), [`notifications`] adds a live notification page, its
//! server-sent-events stream and a subscription API.

use activity_seaorm::feed::FeedEntry;
use activity_seaorm::policy::VisibilityRule;
use activity_seaorm::prelude::*;
use activity_seaorm::{
    ActivityLayer, Error as LogError, ReadPolicy, Reader, transaction_with_options,
};
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use entity::{flag, project, settings, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectOptions, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, IntoActiveModel, ModelTrait, QueryFilter, Set, SqliteTransactionMode,
    TransactionOptions,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// How the app connects to `url`: SeaORM's default pool, without per-statement logging.
pub fn connect_options(url: &str) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_owned());
    // sqlx reports each statement at DEBUG, below what the log prints, but seen by checked
    // mode's layer, which needs that event to check `execute_unprepared` (see `main.rs`).
    // Slow statements too: left alone, sqlx would print them at WARN with their full SQL, the
    // literals of raw SQL included.
    opts.sqlx_logging(true)
        .sqlx_logging_level(log::LevelFilter::Debug)
        .sqlx_slow_statements_logging_settings(
            log::LevelFilter::Debug,
            std::time::Duration::from_secs(1),
        );
    opts
}

/// How every write transaction begins. SQLite allows one writer at a time, and a deferred
/// transaction that reads and then writes (every update here: load, change, save) fails with
/// `SQLITE_BUSY` at once when another connection wrote in between; `IMMEDIATE` takes the write
/// lock up front, so concurrent requests queue for it instead. Other backends ignore it.
const WRITE: TransactionOptions = TransactionOptions {
    isolation_level: None,
    access_mode: None,
    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
};

pub mod history;
pub mod notifications;

/// The router. Serve it with `axum::serve(listener, app(db))`.
pub fn app(db: DatabaseConnection) -> Router {
    app_with_notifications(db, None)
}

/// The router, with the [`notifications`] routes when `hub` is given (see
/// [`notifications::start`]).
pub fn app_with_notifications(db: DatabaseConnection, hub: Option<notifications::Hub>) -> Router {
    let mut routes = Router::new();
    if let Some(hub) = hub {
        routes = routes.merge(notifications::routes(hub));
    }
    routes
        .merge(history::routes())
        .route("/projects", post(create_project))
        .route("/projects/{id}", get(get_project).patch(update_project))
        .route("/projects/{id}/settings", patch(update_settings))
        .route("/projects/{id}/flags", post(create_flag))
        .route("/flags/{id}", patch(update_flag).delete(delete_flag))
        .route("/flags/{id}/evaluate", post(evaluate_flag))
        .route("/session", post(create_session))
        .route("/activity", get(activity))
        .route("/activity/feed", get(feed))
        // The last layer added runs first: authenticate, then build the context from the user.
        .layer(ActivityLayer::new(request_context))
        .layer(middleware::from_fn_with_state(db.clone(), authenticate))
        .with_state(db)
}

/// Sessions: token → username. In memory, for the example; an application keeps them in its
/// session store.
static SESSIONS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
    std::sync::LazyLock::new(Default::default);

/// The user of the request's `session` cookie, if it names a live session.
fn session_user(headers: &axum::http::HeaderMap) -> Option<String> {
    let token = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix("session="))?;
    SESSIONS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(token)
        .cloned()
}

/// `POST /session`: a session for the authenticated user, as an `HttpOnly`, `SameSite=Strict`
/// cookie (256 random bits) that the notification page and its stream, and the history page and
/// its undo buttons, accept; the token is in the body too, for clients that set cookies themselves.
async fn create_session(me: CurrentUser) -> Result<Response, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "no randomness for a session token");
        ApiError::Internal
    })?;
    let token = hex::encode(bytes);
    SESSIONS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(token.clone(), me.username);
    let cookie = format!("session={token}; HttpOnly; SameSite=Strict; Path=/");
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::SET_COOKIE, cookie)],
        Json(json!({ "session": token })),
    )
        .into_response())
}

/// The signed-in user of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentUser {
    /// `user.id`, recorded as the entries' `user_id`.
    pub id: i32,
    /// Recorded as `user_name`.
    pub username: String,
    /// The tenant: recorded as `organization_id`, and every query is filtered by it.
    pub organization_id: i32,
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<CurrentUser>()
            .cloned()
            .ok_or(ApiError::Unauthorized)
    }
}

/// Resolve `x-user` to a [`CurrentUser`] in the request's extensions, or answer 401. A browser's
/// `EventSource` cannot set headers, so the notification page and its stream (`GET
/// /notifications…` only) also take the `session` cookie that `POST /session` hands out (a
/// stand-in for the application's login, as `x-user` is for a token); so do the history page
/// and its undo buttons (`/history…`; the cookie is `SameSite=Strict`, so another site's form
/// cannot post with it).
pub async fn authenticate(
    State(db): State<DatabaseConnection>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    let from_cookie = ((req.method() == axum::http::Method::GET
        && path.starts_with("/notifications"))
        || path == "/history"
        || path.starts_with("/history/"))
    .then(|| session_user(req.headers()))
    .flatten();
    let from_header = req
        .headers()
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(username) = from_header.or(from_cookie) else {
        return ApiError::Unauthorized.into_response();
    };
    let username = username.as_str();
    let found = user::Entity::find()
        .filter(user::Column::Username.eq(username))
        .one(&db)
        .await;
    match found {
        Ok(Some(u)) => {
            req.extensions_mut().insert(CurrentUser {
                id: u.id,
                username: u.username,
                organization_id: u.organization_id,
            });
            next.run(req).await
        }
        Ok(None) => ApiError::Unauthorized.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The request's activity context: the [`CurrentUser`] as actor and their organization, and the
/// client's `x-request-id` if it is a sane one.
pub fn request_context(req: &Request) -> ActivityContext {
    let mut ctx = match req.extensions().get::<CurrentUser>() {
        Some(u) => {
            ActivityContext::for_user(Actor::new(u.id.to_string()).with_name(u.username.clone()))
                .with_organization(u.organization_id.to_string())
        }
        None => ActivityContext::system(),
    };
    if let Some(id) = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
    {
        ctx = ctx.with_request_id(id);
    }
    ctx.with_client("seaorm-app-api")
}

/// An error response, `{"error": ...}`. Database errors go to `tracing`, not to the client.
#[derive(Debug)]
pub enum ApiError {
    /// 400, about the client's input.
    BadRequest(String),
    /// 401: no or an unknown `x-user`.
    Unauthorized,
    /// 404: no such row, or one of another organization.
    NotFound,
    /// 500; the cause was logged.
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized".to_owned()),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not found".to_owned()),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error".to_owned(),
            ),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

impl From<DbErr> for ApiError {
    fn from(e: DbErr) -> Self {
        match e {
            DbErr::RecordNotFound(_) | DbErr::RecordNotUpdated => ApiError::NotFound,
            other => {
                tracing::error!(error = %other, "database error");
                ApiError::Internal
            }
        }
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        if e.is_invalid_query() {
            ApiError::BadRequest(e.to_string())
        } else {
            tracing::error!(error = %e, "activity log read failed");
            ApiError::Internal
        }
    }
}

/// Body of `POST /projects`.
#[derive(Debug, Deserialize)]
pub struct NewProject {
    name: String,
    description: Option<String>,
    #[serde(default)]
    webhook_secret: String,
    default_environment: Option<String>,
}

/// Body of `PATCH /projects/{id}`.
#[derive(Debug, Deserialize)]
pub struct ProjectPatch {
    name: Option<String>,
    description: Option<Option<String>>,
    webhook_secret: Option<String>,
}

/// Body of `PATCH /projects/{id}/settings`.
#[derive(Debug, Deserialize)]
pub struct SettingsPatch {
    default_environment: Option<String>,
    slack_webhook_url: Option<Option<String>>,
}

/// Body of `POST /projects/{id}/flags`.
#[derive(Debug, Deserialize)]
pub struct NewFlag {
    key: String,
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    rollout_percentage: i16,
}

/// Body of `PATCH /flags/{id}`.
#[derive(Debug, Deserialize)]
pub struct FlagPatch {
    key: Option<String>,
    enabled: Option<bool>,
    rollout_percentage: Option<i16>,
}

fn project_json(p: &project::Model) -> Value {
    // The webhook secret is write-only.
    json!({"id": p.id, "organization_id": p.organization_id, "name": p.name, "description": p.description})
}

fn settings_json(s: &settings::Model) -> Value {
    json!({"project_id": s.project_id, "default_environment": s.default_environment,
           "has_slack_webhook": s.slack_webhook_url.is_some()})
}

fn flag_json(f: &flag::Model) -> Value {
    json!({"id": f.id, "project_id": f.project_id, "key": f.key, "enabled": f.enabled,
           "rollout_percentage": f.rollout_percentage, "evaluation_count": f.evaluation_count})
}

fn check_percentage(p: i16) -> Result<i16, ApiError> {
    if (0..=100).contains(&p) {
        Ok(p)
    } else {
        Err(ApiError::BadRequest(
            "rollout_percentage must be 0..=100".into(),
        ))
    }
}

/// The project `id` if it belongs to `org`: another organization's is "not found".
async fn org_project<C: ConnectionTrait>(
    db: &C,
    org: i32,
    id: i32,
) -> Result<project::Model, ApiError> {
    project::Entity::find_by_id(id)
        .filter(project::Column::OrganizationId.eq(org))
        .one(db)
        .await?
        .ok_or(ApiError::NotFound)
}

/// The flag `id` if it belongs to `org`.
async fn org_flag<C: ConnectionTrait>(db: &C, org: i32, id: i32) -> Result<flag::Model, ApiError> {
    flag::Entity::find_by_id(id)
        .filter(flag::Column::OrganizationId.eq(org))
        .one(db)
        .await?
        .ok_or(ApiError::NotFound)
}

async fn create_project(
    State(db): State<DatabaseConnection>,
    me: CurrentUser,
    Json(body): Json<NewProject>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let org = me.organization_id;
    // Two logged models, one transaction: both entries share its correlation id.
    let (p, s) = transaction_with_options(&db, WRITE, |txn| {
        async move {
            let p = project::ActiveModel {
                organization_id: Set(org),
                name: Set(body.name),
                description: Set(body.description),
                webhook_secret: Set(body.webhook_secret),
                ..Default::default()
            }
            .insert(txn)
            .await?;
            let s = settings::ActiveModel {
                organization_id: Set(org),
                project_id: Set(p.id),
                default_environment: Set(body
                    .default_environment
                    .unwrap_or_else(|| "production".to_owned())),
                slack_webhook_url: Set(None),
                ..Default::default()
            }
            .insert(txn)
            .await?;
            Ok::<_, ApiError>((p, s))
        }
        .scope_boxed()
    })
    .await?;
    let mut body = project_json(&p);
    body["settings"] = settings_json(&s);
    Ok((StatusCode::CREATED, Json(body)))
}

async fn get_project(
    State(db): State<DatabaseConnection>,
    me: CurrentUser,
    Path(id): Path<i32>,
) -> Result<Json<Value>, ApiError> {
    let p = org_project(&db, me.organization_id, id).await?;
    // The relations sea-orm-cli generated: `has_one` settings, `has_many` flags.
    let s = p.find_related(settings::Entity).one(&db).await?;
    let flags = p.find_related(flag::Entity).all(&db).await?;
    let mut body = project_json(&p);
    body["settings"] = s.as_ref().map_or(Value::Null, settings_json);
    body["flags"] = flags.iter().map(flag_json).collect();
    Ok(Json(body))
}

async fn update_project(
    State(db): State<DatabaseConnection>,
    me: CurrentUser,
    Path(id): Path<i32>,
    Json(patch): Json<ProjectPatch>,
) -> Result<Json<Value>, ApiError> {
    let org = me.organization_id;
    let p = transaction_with_options(&db, WRITE, |txn| {
        async move {
            let mut p = track(org_project(txn, org, id).await?);
            if let Some(name) = patch.name {
                p.name = Set(name);
            }
            if let Some(description) = patch.description {
                p.description = Set(description);
            }
            if let Some(secret) = patch.webhook_secret {
                p.webhook_secret = Set(secret);
            }
            Ok::<_, ApiError>(p.update(txn).await?)
        }
        .scope_boxed()
    })
    .await?;
    Ok(Json(project_json(&p)))
}

async fn update_settings(
    State(db): State<DatabaseConnection>,
    me: CurrentUser,
    Path(project_id): Path<i32>,
    Json(patch): Json<SettingsPatch>,
) -> Result<Json<Value>, ApiError> {
    let org = me.organization_id;
    let s = transaction_with_options(&db, WRITE, |txn| {
        async move {
            let p = org_project(txn, org, project_id).await?;
            let s = p
                .find_related(settings::Entity)
                .one(txn)
                .await?
                .ok_or(ApiError::NotFound)?;
            // The hook path: the hook reads the before-state again, in this transaction.
            let mut s = s.into_active_model();
            if let Some(env) = patch.default_environment {
                s.default_environment = Set(env);
            }
            if let Some(url) = patch.slack_webhook_url {
                s.slack_webhook_url = Set(url);
            }
            Ok::<_, ApiError>(s.update(txn).await?)
        }
        .scope_boxed()
    })
    .await?;
    Ok(Json(settings_json(&s)))
}

async fn create_flag(
    State(db): State<DatabaseConnection>,
    me: CurrentUser,
    Path(project_id): Path<i32>,
    Json(body): Json<NewFlag>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let org = me.organization_id;
    let rollout = check_percentage(body.rollout_percentage)?;
    // The tenancy check reads before the transaction, so the transaction's first statement is
    // the INSERT: on SQLite a transaction that reads first and then writes can fail with
    // SQLITE_BUSY under concurrent writers, instead of waiting. The foreign key still refuses
    // a project deleted in between.
    let p = org_project(&db, org, project_id).await?;
    let f = transaction_with_options(&db, WRITE, |txn| {
        async move {
            let f = flag::ActiveModel {
                organization_id: Set(org),
                project_id: Set(p.id),
                key: Set(body.key),
                enabled: Set(body.enabled),
                rollout_percentage: Set(rollout),
                evaluation_count: Set(0),
                ..Default::default()
            }
            .insert(txn)
            .await?;
            Ok::<_, ApiError>(f)
        }
        .scope_boxed()
    })
    .await?;
    Ok((StatusCode::CREATED, Json(flag_json(&f))))
}

async fn update_flag(
    State(db): State<DatabaseConnection>,
    me: CurrentUser,
    Path(id): Path<i32>,
    Json(patch): Json<FlagPatch>,
) -> Result<Json<Value>, ApiError> {
    let org = me.organization_id;
    let rollout = patch.rollout_percentage.map(check_percentage).transpose()?;
    // Load, change and log in one transaction: `track` keeps the loaded row, so the update
    // needs no second read, and an update that changes nothing writes no entry.
    let f = transaction_with_options(&db, WRITE, |txn| {
        async move {
            let mut f = track(org_flag(txn, org, id).await?);
            if let Some(key) = patch.key {
                f.key = Set(key);
            }
            if let Some(enabled) = patch.enabled {
                f.enabled = Set(enabled);
            }
            if let Some(rollout) = rollout {
                f.rollout_percentage = Set(rollout);
            }
            Ok::<_, ApiError>(f.update(txn).await?)
        }
        .scope_boxed()
    })
    .await?;
    Ok(Json(flag_json(&f)))
}

async fn evaluate_flag(
    State(db): State<DatabaseConnection>,
    me: CurrentUser,
    Path(id): Path<i32>,
) -> Result<Json<Value>, ApiError> {
    let org = me.organization_id;
    let f = transaction_with_options(&db, WRITE, |txn| {
        async move {
            let f = org_flag(txn, org, id).await?;
            let count = f.evaluation_count + 1;
            let mut f = track(f);
            // `evaluation_count` is `#[activity(exclude)]`: no entry, and no before-read.
            f.evaluation_count = Set(count);
            Ok::<_, ApiError>(f.update(txn).await?)
        }
        .scope_boxed()
    })
    .await?;
    Ok(Json(flag_json(&f)))
}

async fn delete_flag(
    State(db): State<DatabaseConnection>,
    me: CurrentUser,
    Path(id): Path<i32>,
) -> Result<StatusCode, ApiError> {
    let org = me.organization_id;
    transaction_with_options(&db, WRITE, |txn| {
        async move {
            org_flag(txn, org, id).await?.delete(txn).await?;
            Ok::<_, ApiError>(())
        }
        .scope_boxed()
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query string of `GET /activity` and `GET /activity/feed`.
#[derive(Debug, Default, Deserialize)]
pub struct ActivityParams {
    scope: Option<String>,
    item_id: Option<String>,
    user_id: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    ascending: bool,
}

/// The application's read policy (installed by `main` with `ActivityConfig::with_read_policy`):
/// impersonated logins and changes to user accounts are staff-only (an account's own user
/// sees its changes).
pub fn read_policy() -> ReadPolicy {
    ReadPolicy::new()
        .hide(
            VisibilityRule::new("impersonated-logins")
                .scopes(["Session"])
                .activities(["logged_in"])
                .when_impersonated(),
        )
        .hide(
            VisibilityRule::new("user-accounts")
                .scopes(["User"])
                .visible_to_subject(),
        )
}

impl CurrentUser {
    /// The user as a reader of the log: a member of their organization (this application has
    /// no staff role).
    pub fn reader(&self) -> Reader {
        Reader::member(self.id.to_string()).in_organization(self.organization_id.to_string())
    }
}

/// The user's organization's log, filtered by `params`, as the user may read it: the tenant
/// and the reader come from the user, never from the request.
fn query_for(me: &CurrentUser, params: ActivityParams) -> ActivityQuery {
    let mut q = ActivityQuery::for_organization(me.organization_id.to_string()).reader(me.reader());
    if let Some(scope) = params.scope {
        q = q.scope(scope);
    }
    if let Some(item) = params.item_id {
        q = q.item_ids([item]);
    }
    if let Some(user) = params.user_id {
        q = q.users([user]);
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
    q
}

/// The feed as JSON: each entry as a member of the organization may read it ([`FeedEntry`]: no
/// IP address, user agent or impersonator of a colleague's request).
async fn activity(
    State(db): State<DatabaseConnection>,
    me: CurrentUser,
    Query(params): Query<ActivityParams>,
) -> Result<Json<Value>, ApiError> {
    let page = load_activity(&db, &query_for(&me, params)).await?;
    let reader = me.reader();
    let results: Vec<FeedEntry> = page.results.iter().map(|e| reader.view(e)).collect();
    Ok(Json(
        json!({ "results": results, "next_cursor": page.next_cursor }),
    ))
}

async fn feed(
    State(db): State<DatabaseConnection>,
    me: CurrentUser,
    Query(params): Query<ActivityParams>,
) -> Result<Json<Value>, ApiError> {
    let page = load_activity(&db, &query_for(&me, params)).await?;
    let lines: Vec<String> = page.results.iter().map(describe).collect();
    Ok(Json(
        json!({ "feed": lines, "next_cursor": page.next_cursor }),
    ))
}
