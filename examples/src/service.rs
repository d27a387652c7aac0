//! The axum service of `examples/axum_service.rs`: CRUD for feature flags and dashboards, the
//! activity API and an HTML feed, with the actor set per request by [`ActivityLayer`].
//!
//! Written as a service you could run, because examples get copied:
//!
//! * **Authentication** is a bearer-token table ([`Users`]): `Authorization: Bearer <token>`
//!   names a [`User`] with a team and explicit [`Role`]s. Only SHA-256 digests of the tokens
//!   are kept. A real service would take the user from its session or token middleware and put
//!   the same [`Caller`] in the request extensions. A [`Role::Support`] user may act as another
//!   user (`x-act-as: <user id>`); the log records the impersonation.
//! * **Muting** the log (`x-import: 1` on `POST /flags`) is an authorization decision: only an
//!   [`Role::Importer`] or [`Role::Admin`] may do it, for that one request. Anyone else gets 403,
//!   and the refused attempt is itself logged (`import_refused`).
//! * **Client IP**: `x-forwarded-for` is believed only from a configured [`TrustedProxies`] peer;
//!   otherwise the TCP peer address is recorded. Anyone can send the header.
//! * **Errors**: database errors are logged through `tracing` and the client gets
//!   `{"error":"internal error"}` — SQL text, table names and driver messages tell an attacker
//!   about the schema. Missing rows are 404, invalid activity queries 400.
//! * **Tenancy**: every read, update and delete is filtered by the caller's team, and a row of
//!   another team is 404 (not 403, which would confirm the id exists). The activity feed is the
//!   caller's team's only.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use activity_seaorm::feed::{FeedEntry, Reveal};
use activity_seaorm::policy::VisibilityRule;
use activity_seaorm::prelude::*;
use activity_seaorm::{ActivityLayer, Error as LogError, log_activity, transaction};
use activity_seaorm::{ReadPolicy, Reader};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ipnet::IpNet;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    IntoActiveModel, ModelTrait, QueryFilter, Set,
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{dashboard, feature_flag};

/// What a user may do beyond editing their own team's flags and dashboards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// May run an import without logging it (`x-import: 1`): imports replay data that is
    /// logged where it came from.
    Importer,
    /// May do everything an importer may.
    Admin,
    /// May act as another user (`x-act-as: <user id>`), recorded as impersonation.
    Support,
}

/// An account the service knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Stable id, recorded as the entry's `user_id`.
    pub id: String,
    /// Display name, recorded as `user_name`.
    pub name: String,
    /// The tenant whose data the user may see and change.
    pub team_id: i64,
    /// Extra permissions; none for a plain team member.
    pub roles: Vec<Role>,
}

impl User {
    /// A team member without roles.
    pub fn new(id: impl Into<String>, name: impl Into<String>, team_id: i64) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            team_id,
            roles: Vec::new(),
        }
    }

    /// The same user with `role` granted.
    pub fn with_role(mut self, role: Role) -> Self {
        self.roles.push(role);
        self
    }

    /// Whether the user holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    fn actor(&self) -> Actor {
        Actor::new(self.id.clone()).with_name(self.name.clone())
    }
}

/// The bearer-token table: which token belongs to which [`User`].
///
/// Only the SHA-256 digest of each token is stored, so a dump of this table (or of the
/// process) does not hand out working tokens, and lookups do not compare secrets byte by byte.
/// Tokens must be long random strings (the example binary makes 32 random bytes each); a digest
/// without a salt is only safe for those, never for passwords.
#[derive(Clone, Debug, Default)]
pub struct Users {
    by_token: HashMap<[u8; 32], Arc<User>>,
    by_id: HashMap<String, Arc<User>>,
}

impl Users {
    /// An empty table: every request is 401.
    pub fn new() -> Self {
        Self::default()
    }

    /// The table with `token` authenticating `user` (a user may have several tokens).
    pub fn with(mut self, token: &str, user: User) -> Self {
        let user = match self.by_id.get(&user.id) {
            Some(known) if **known == user => Arc::clone(known),
            _ => Arc::new(user),
        };
        self.by_id.insert(user.id.clone(), Arc::clone(&user));
        self.by_token.insert(digest(token), user);
        self
    }

    /// The user `token` belongs to, if any.
    pub fn authenticate(&self, token: &str) -> Option<&User> {
        self.by_token.get(&digest(token)).map(|u| &**u)
    }

    /// The caller of a request: the bearer token's user, or the user named by `x-act-as` when
    /// the token's user has [`Role::Support`].
    fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(ApiError::Unauthorized)?;
        let user = self
            .by_token
            .get(&digest(token))
            .cloned()
            .ok_or(ApiError::Unauthorized)?;
        let Some(target) = headers.get("x-act-as") else {
            return Ok(Caller {
                user,
                impersonator: None,
            });
        };
        if !user.has_role(Role::Support) {
            tracing::warn!(user = %user.id, "refused x-act-as: the caller has no support role");
            return Err(ApiError::Forbidden("x-act-as needs the support role"));
        }
        let target = target
            .to_str()
            .ok()
            .and_then(|id| self.by_id.get(id))
            .cloned()
            .ok_or(ApiError::BadRequest("x-act-as names no known user".into()))?;
        Ok(Caller {
            user: target,
            impersonator: Some(user),
        })
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The proxies whose `x-forwarded-for` the service believes. Default: none, so the client IP
/// is always the TCP peer's.
///
/// `x-forwarded-for` is written by the client first and appended to by each proxy, so only
/// the entries added by proxies you run can be believed: when the peer is trusted, the list is
/// read from the right, skipping trusted proxies, and the first address that is not one is the
/// client. Anything left of it was sent by the client and may be made up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Believe no proxy (the default).
    pub fn none() -> Self {
        Self::default()
    }

    /// Believe the proxies in `nets`.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        Self(nets.into_iter().collect())
    }

    /// Parse a comma-separated list of addresses and CIDRs, e.g. `"10.0.0.0/8, 192.0.2.7"`.
    pub fn parse(list: &str) -> Result<Self, ipnet::AddrParseError> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match IpAddr::from_str(s) {
                Ok(ip) => Ok(IpNet::from(ip.to_canonical())),
                Err(_) => IpNet::from_str(s),
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request that came from `peer` with `headers`: `peer` unless it
    /// is trusted, else the right-most `x-forwarded-for` entry that is not a trusted proxy.
    /// An entry that is not an address stops the walk at the last trusted hop, since nothing
    /// left of it can be attributed; if every entry is trusted, the left-most one is the client.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        // Several header lines are one list, in order (RFC 9110 §5.3).
        let lines: Vec<&HeaderValue> = headers.get_all("x-forwarded-for").iter().collect();
        for line in lines.into_iter().rev() {
            let Ok(line) = line.to_str() else {
                return client;
            };
            for hop in line.rsplit(',').map(str::trim).filter(|h| !h.is_empty()) {
                let Some(ip) = parse_hop(hop) else {
                    return client;
                };
                client = ip;
                if !self.contains(ip) {
                    return ip;
                }
            }
        }
        client
    }
}

/// An `x-forwarded-for` entry: an address, possibly with a port (`192.0.2.1:4711`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    IpAddr::from_str(hop)
        .or_else(|_| SocketAddr::from_str(hop).map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// Everything the service is configured with.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Who may call it.
    pub users: Users,
    /// Whose `x-forwarded-for` it believes.
    pub trusted_proxies: TrustedProxies,
}

/// The authenticated caller of a request, put in its extensions by the authentication
/// middleware; handlers take it as an extractor.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Who the request acts as (the impersonated user when `impersonator` is set).
    pub user: Arc<User>,
    /// The support user acting as `user`, if any.
    pub impersonator: Option<Arc<User>>,
}

impl Caller {
    /// The tenant the request may see and change.
    pub fn team_id(&self) -> i64 {
        self.user.team_id
    }

    /// Who reads the log: support staff see what the read policy keeps for staff; a team admin
    /// also sees the request origin (IP address, browser) and impersonators of the team's
    /// entries; everyone else reads as a member. While impersonating, a support agent reads as
    /// the user they act as.
    pub fn reader(&self) -> Reader {
        let user = &self.user;
        let reader = if self.impersonator.is_none() && user.has_role(Role::Support) {
            Reader::staff(user.id.as_str())
        } else if user.has_role(Role::Admin) {
            Reader::member(user.id.as_str()).with_reveal(Reveal::everything())
        } else {
            Reader::member(user.id.as_str())
        };
        reader.in_team(self.team_id().to_string())
    }

    /// Whether the caller may switch the activity log off for a request. Never while
    /// impersonating: acting as someone must not grant their unlogged imports to support staff,
    /// nor let a support session leave no trace.
    pub fn may_mute(&self) -> bool {
        self.impersonator.is_none()
            && (self.user.has_role(Role::Importer) || self.user.has_role(Role::Admin))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Unauthorized)
    }
}

/// The router, ready for `axum::serve(.., app.into_make_service_with_connect_info::<SocketAddr>())`
/// (without the peer address no client IP is recorded).
pub fn app(db: DatabaseConnection, settings: Settings) -> Router {
    let proxies = Arc::new(settings.trusted_proxies);
    let users = Arc::new(settings.users);
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
        // The last layer added runs first: authenticate, then build the context from the caller.
        .layer(ActivityLayer::new(move |req: &Request| {
            request_context(req, &proxies)
        }))
        .layer(middleware::from_fn_with_state(users, authenticate))
        .with_state(db)
}

async fn authenticate(State(users): State<Arc<Users>>, mut req: Request, next: Next) -> Response {
    match users.caller(req.headers()) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Build the request's activity context from the authenticated [`Caller`], the peer address
/// (through `proxies`) and the request id and user agent headers.
pub fn request_context(req: &Request, proxies: &TrustedProxies) -> ActivityContext {
    let headers = req.headers();
    let mut ctx = match req.extensions().get::<Caller>() {
        Some(caller) => {
            let ctx = match &caller.impersonator {
                Some(by) => ActivityContext::impersonating(caller.user.actor(), by.actor()),
                None => ActivityContext::for_user(caller.user.actor()),
            };
            ctx.with_team(caller.team_id().to_string())
        }
        None => ActivityContext::system(),
    };
    // Both are client-chosen text that ends up in the audit trail: bound them.
    if let Some(id) = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
    {
        ctx = ctx.with_request_id(id);
    }
    if let Some(agent) = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .filter(|a| !a.is_empty())
    {
        ctx = ctx.with_user_agent(agent.chars().take(256).collect::<String>());
    }
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        ctx = ctx.with_ip(proxies.client_ip(peer.ip(), headers).to_string());
    }
    ctx.with_client("axum-example")
}

/// An error response. Its body is `{"error": ...}` with a message meant for the client: the
/// cause of a 500 goes to `tracing`, never into the response.
#[derive(Debug)]
pub enum ApiError {
    /// 400 with a message about the client's input.
    BadRequest(String),
    /// 401: no or an unknown bearer token.
    Unauthorized,
    /// 403 with what permission is missing.
    Forbidden(&'static str),
    /// 404: no such row, or one of another team.
    NotFound,
    /// 500; the detail was logged where the error was converted.
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Unauthorized => {
                let body = Json(json!({ "error": "unauthorized" }));
                let challenge = [(header::WWW_AUTHENTICATE, "Bearer")];
                return (StatusCode::UNAUTHORIZED, challenge, body).into_response();
            }
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m.to_owned()),
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
            // The message is about the query the client sent (page size, cursor...).
            ApiError::BadRequest(e.to_string())
        } else {
            tracing::error!(error = %e, "activity log read failed");
            ApiError::Internal
        }
    }
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
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<NewFlag>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // Imports replay data that is logged elsewhere: they ask not to be logged again. Switching
    // the audit trail off is a permission, and asking without it is worth a trace of its own.
    let import = headers.contains_key("x-import");
    if import && !caller.may_mute() {
        tracing::warn!(user = %caller.user.id, key = %body.key, "refused an unlogged import");
        log_activity(
            &db,
            ActivityEntry::new("FeatureFlag", "import_refused").with_name(body.key),
        )
        .await?;
        return Err(ApiError::Forbidden(
            "x-import needs the importer or admin role",
        ));
    }
    let insert = feature_flag::ActiveModel {
        team_id: Set(caller.team_id()),
        key: Set(body.key),
        active: Set(body.active),
        filters: Set(json!({})),
        webhook_secret: Set(body.webhook_secret),
        cached_count: Set(0),
        last_accessed_at: Set(None),
        ..Default::default()
    }
    .insert(&db);
    // The mute wraps this one future: the next request, even on the same connection, is logged.
    let flag = if import {
        mute_signals_in(insert).await?
    } else {
        insert.await?
    };
    Ok((StatusCode::CREATED, Json(flag_json(&flag))))
}

fn flag_json(f: &feature_flag::Model) -> Value {
    json!({"id": f.id, "team_id": f.team_id, "key": f.key, "active": f.active, "filters": f.filters})
}

/// The flag `id` if it belongs to `team`: another team's flag is "not found", like a missing one.
async fn team_flag<C: ConnectionTrait>(
    db: &C,
    team: i64,
    id: i32,
) -> Result<feature_flag::Model, ApiError> {
    feature_flag::Entity::find_by_id(id)
        .filter(feature_flag::Column::TeamId.eq(team))
        .one(db)
        .await?
        .ok_or(ApiError::NotFound)
}

async fn get_flag(
    State(db): State<DatabaseConnection>,
    caller: Caller,
    Path(id): Path<i32>,
) -> Result<Json<Value>, ApiError> {
    let flag = team_flag(&db, caller.team_id(), id).await?;
    Ok(Json(flag_json(&flag)))
}

async fn update_flag(
    State(db): State<DatabaseConnection>,
    caller: Caller,
    Path(id): Path<i32>,
    Json(patch): Json<FlagPatch>,
) -> Result<Json<Value>, ApiError> {
    // Load, change and log in one transaction: `track` makes the update need no second read.
    let team = caller.team_id();
    let flag = transaction(&db, |txn| {
        async move {
            let mut flag = track(team_flag(txn, team, id).await?);
            if let Some(key) = patch.key {
                flag.key = Set(key);
            }
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
    Ok(Json(flag_json(&flag)))
}

async fn delete_flag(
    State(db): State<DatabaseConnection>,
    caller: Caller,
    Path(id): Path<i32>,
) -> Result<StatusCode, ApiError> {
    let team = caller.team_id();
    transaction(&db, |txn| {
        async move {
            team_flag(txn, team, id).await?.delete(txn).await?;
            Ok::<_, ApiError>(())
        }
        .scope_boxed()
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /dashboards` and `PATCH /dashboards/{id}`.
#[derive(Debug, Deserialize)]
pub struct DashboardBody {
    name: Option<String>,
    pinned: Option<bool>,
}

fn dashboard_json(d: &dashboard::Model) -> Value {
    json!({"id": d.id, "name": d.name, "pinned": d.pinned})
}

/// The dashboard `id` if it belongs to `team` (see [`team_flag`]).
async fn team_dashboard<C: ConnectionTrait>(
    db: &C,
    team: i64,
    id: i32,
) -> Result<dashboard::Model, ApiError> {
    dashboard::Entity::find_by_id(id)
        .filter(dashboard::Column::TeamId.eq(team))
        .one(db)
        .await?
        .ok_or(ApiError::NotFound)
}

async fn create_dashboard(
    State(db): State<DatabaseConnection>,
    caller: Caller,
    Json(body): Json<DashboardBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = body
        .name
        .ok_or_else(|| ApiError::BadRequest("name is required".into()))?;
    let d = dashboard::ActiveModel {
        team_id: Set(caller.team_id()),
        name: Set(name),
        pinned: Set(body.pinned.unwrap_or(false)),
        ..Default::default()
    }
    .insert(&db)
    .await?;
    Ok((StatusCode::CREATED, Json(dashboard_json(&d))))
}

async fn update_dashboard(
    State(db): State<DatabaseConnection>,
    caller: Caller,
    Path(id): Path<i32>,
    Json(body): Json<DashboardBody>,
) -> Result<Json<Value>, ApiError> {
    // The hook path: the before-state is read again by the hook, in the same transaction.
    let team = caller.team_id();
    let d = transaction(&db, |txn| {
        async move {
            let mut am = team_dashboard(txn, team, id).await?.into_active_model();
            if let Some(name) = body.name {
                am.name = Set(name);
            }
            if let Some(pinned) = body.pinned {
                am.pinned = Set(pinned);
            }
            Ok::<_, ApiError>(am.update(txn).await?)
        }
        .scope_boxed()
    })
    .await?;
    Ok(Json(dashboard_json(&d)))
}

async fn delete_dashboard(
    State(db): State<DatabaseConnection>,
    caller: Caller,
    Path(id): Path<i32>,
) -> Result<StatusCode, ApiError> {
    let team = caller.team_id();
    transaction(&db, |txn| {
        async move {
            team_dashboard(txn, team, id).await?.delete(txn).await?;
            Ok::<_, ApiError>(())
        }
        .scope_boxed()
    })
    .await?;
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

/// The service's read policy: the reference rules. Impersonated logins and changes to user
/// accounts are for staff (and the account's own user); the entries stay for auditors.
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

/// The caller's team's log, filtered by `params`, as the caller may read it: the tenant and
/// the reader come from the caller, never from the request.
fn query_for(caller: &Caller, params: ActivityParams) -> ActivityQuery {
    let mut q = ActivityQuery::for_team(caller.team_id().to_string()).reader(caller.reader());
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
    q
}

async fn activity(
    State(db): State<DatabaseConnection>,
    caller: Caller,
    Query(params): Query<ActivityParams>,
) -> Result<Json<Value>, ApiError> {
    let page = load_activity(&db, &query_for(&caller, params)).await?;
    // People read the feed: a colleague's IP address, browser and impersonator only where
    // the caller's role reveals them.
    let reader = caller.reader();
    let results: Vec<FeedEntry> = page.results.iter().map(|e| reader.view(e)).collect();
    Ok(Json(
        json!({ "results": results, "next_cursor": page.next_cursor }),
    ))
}

async fn feed(
    State(db): State<DatabaseConnection>,
    caller: Caller,
    Query(params): Query<ActivityParams>,
) -> Result<Html<String>, ApiError> {
    let page = load_activity(&db, &query_for(&caller, params)).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for line in lines {
            h.append("x-forwarded-for", HeaderValue::from_str(line).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn no_trusted_proxy_means_the_peer() {
        let none = TrustedProxies::none();
        assert_eq!(
            none.client_ip(ip("127.0.0.1"), &headers(&["203.0.113.9"])),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let p = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        // The client made up 6.6.6.6; 203.0.113.9 is what the first trusted proxy saw.
        let h = headers(&["6.6.6.6, 203.0.113.9", "10.1.2.3"]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("203.0.113.9"));
        // An untrusted peer's header is ignored entirely.
        assert_eq!(p.client_ip(ip("192.0.2.1"), &h), ip("192.0.2.1"));
        // Ports and IPv4-mapped IPv6 peers.
        let h = headers(&["[2001:db8::1]:4711, 10.0.0.9:80"]);
        assert_eq!(p.client_ip(ip("::ffff:127.0.0.1"), &h), ip("2001:db8::1"));
    }

    #[test]
    fn garbage_or_all_trusted_hops_stop_at_the_last_trusted_one() {
        let p = TrustedProxies::parse("127.0.0.1/32,10.0.0.0/8").unwrap();
        let h = headers(&["203.0.113.9, unknown, 10.0.0.7"]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("10.0.0.7"));
        let h = headers(&["10.0.0.1, 10.0.0.2"]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("10.0.0.1"));
        assert_eq!(
            p.client_ip(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("").unwrap() == TrustedProxies::none());
    }

    #[test]
    fn tokens_are_looked_up_by_digest_and_roles_are_explicit() {
        let users = Users::new()
            .with("t-1", User::new("1", "alice", 7))
            .with("t-2", User::new("2", "ingest", 7).with_role(Role::Importer));
        assert_eq!(
            users.authenticate("t-1").map(|u| u.name.as_str()),
            Some("alice")
        );
        assert!(users.authenticate("t-3").is_none());
        assert!(!format!("{users:?}").contains("t-1"));
        let caller = |token: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
            );
            users.caller(&h)
        };
        assert!(!caller("t-1").unwrap().may_mute());
        assert!(caller("t-2").unwrap().may_mute());
        assert!(matches!(caller("nope"), Err(ApiError::Unauthorized)));
    }
}
