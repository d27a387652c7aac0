//! Real-time notifications for the example app: committed entries go through the outbox and the
//! relay to NATS JetStream, the notifier routes each to the users watching it, and a
//! server-sent-events hub pushes it to their open pages.
//!
//! | route | |
//! |---|---|
//! | `GET /notifications` | a page that shows the user's notifications as they arrive |
//! | `GET /notifications/stream` | the user's notifications as server-sent events |
//! | `POST /subscriptions` | watch an item: `{"scope": "Flag", "item_id": "3", "depth": "resource"}` (or `descendants`: a project and its flags) |
//! | `GET /subscriptions` | the user's subscriptions |
//! | `DELETE /subscriptions/{scope}/{item_id}` | stop watching |
//!
//! Who may see what is the app's business ([`OrgMembers`]): a user sees the items of their own
//! organization; a flag lives under its project, so a project's `descendants` subscribers hear of
//! its flags.

use std::convert::Infallible;

use activity_nats::notify::{
    self, Audience, BoxError, Channel, Depth, ItemAudience, Notification, Notifier, NotifierConfig,
    Router, Visibility,
};
use activity_nats::{Relay, RelayConfig};
use activity_seaorm::{ActivityEntry, Reader};
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use axum::routing::{delete, get};
use axum::{Json, Router as AxumRouter};
use entity::{flag, user};
use futures::{Stream, StreamExt};
use sea_orm::{DatabaseConnection, EntityTrait};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::{ApiError, CurrentUser};

/// Where the stream lives on NATS (one set per deployment; tests use unique ones).
#[derive(Clone, Debug)]
pub struct StreamNames {
    /// The JetStream stream.
    pub stream: String,
    /// The subject prefix.
    pub prefix: String,
    /// The notifier's durable consumer.
    pub durable: String,
}

impl Default for StreamNames {
    fn default() -> Self {
        Self {
            stream: "ACTIVITY".into(),
            prefix: "activity".into(),
            durable: "seaorm-app-notifier".into(),
        }
    }
}

/// The server-sent-events hub: one broadcast of (recipient user id, notification JSON).
#[derive(Clone, Debug)]
pub struct Hub(broadcast::Sender<(String, String)>);

impl Default for Hub {
    fn default() -> Self {
        Self(broadcast::channel(1024).0)
    }
}

#[async_trait::async_trait]
impl Channel for Hub {
    async fn deliver(&self, n: &Notification) -> Result<(), BoxError> {
        let e = &n.entry;
        let text = format!(
            "{} {} {} {}",
            e.user_name.as_deref().unwrap_or("system"),
            e.activity,
            e.scope.to_lowercase(),
            e.detail.name.as_deref().unwrap_or_default()
        );
        let payload = json!({"id": n.id, "text": text, "entry": e.as_ref()}).to_string();
        // Nobody listening is not an error: the page shows what arrives while it is open.
        let _ = self.0.send((n.recipient.clone(), payload));
        Ok(())
    }
}

/// The app's audience rules: members of the item's organization may see it; a flag is under
/// its project.
#[derive(Clone, Debug)]
pub struct OrgMembers(pub DatabaseConnection);

#[async_trait::async_trait]
impl Audience for OrgMembers {
    async fn item(&self, entry: &ActivityEntry) -> Result<ItemAudience, BoxError> {
        let mut audience = ItemAudience::default().with_visibility(Visibility::Tenant);
        if entry.scope == "Flag" {
            let id: Option<i32> = entry.item_id.as_deref().and_then(|i| i.parse().ok());
            if let Some(id) = id
                && let Some(f) = flag::Entity::find_by_id(id).one(&self.0).await?
            {
                audience = audience.with_ancestor("Project", f.project_id.to_string());
            }
        }
        Ok(audience)
    }

    async fn may_see(
        &self,
        user_id: &str,
        entry: &ActivityEntry,
        _: Visibility,
    ) -> Result<bool, BoxError> {
        let Ok(id) = user_id.parse::<i32>() else {
            return Ok(false);
        };
        let member = user::Entity::find_by_id(id).one(&self.0).await?;
        Ok(member.is_some_and(|u| Some(u.organization_id.to_string()) == entry.organization_id))
    }

    /// Watchers read as members of the entry's organization: the read policy hides from the
    /// notification what it hides from the feed.
    async fn reader(&self, user_id: &str, entry: &ActivityEntry) -> Result<Reader, BoxError> {
        let reader = Reader::member(user_id);
        Ok(match &entry.organization_id {
            Some(org) => reader.in_organization(org.as_str()),
            None => reader,
        })
    }
}

/// Start the relay and the notifier on `nats` (they run until the process ends), and return the
/// hub the routes read from. Entries must be written with the outbox on
/// (`ActivityConfig::with_outbox(true)`).
pub async fn start(
    db: DatabaseConnection,
    nats: async_nats::Client,
    names: StreamNames,
) -> Result<Hub, BoxError> {
    notify::create_tables(&db).await?;
    let relay = Relay::with_config(
        db.clone(),
        nats.clone(),
        RelayConfig::default()
            .with_stream(names.stream.as_str())
            .with_subject_prefix(names.prefix.as_str()),
    );
    relay.ensure_stream().await?;
    tokio::spawn(async move { relay.run().await });
    let hub = Hub::default();
    let notifier = Notifier::with_config(
        db.clone(),
        nats,
        Router::new(OrgMembers(db)),
        hub.clone(),
        NotifierConfig::default()
            .with_stream(names.stream)
            .with_durable(names.durable)
            .with_filter_subject(format!("{}.>", names.prefix)),
    );
    // It resumes where the durable consumer stopped, through NATS outages, by itself.
    tokio::spawn(async move { notifier.run().await });
    Ok(hub)
}

/// The notification routes (behind the app's authentication).
pub fn routes(hub: Hub) -> AxumRouter<DatabaseConnection> {
    AxumRouter::new()
        .route("/notifications", get(page))
        .route("/notifications/stream", get(stream).with_state(hub))
        .route("/subscriptions", get(list).post(create))
        .route("/subscriptions/{scope}/{item_id}", delete(revoke))
}

/// The user's tenant as the notification store keys it: entries of this application carry
/// their organization.
fn tenant(me: &CurrentUser) -> notify::TenantKey {
    notify::TenantKey::organization(&me.organization_id.to_string())
}

async fn stream(
    State(hub): State<Hub>,
    me: CurrentUser,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mine = me.id.to_string();
    let events =
        tokio_stream::wrappers::BroadcastStream::new(hub.0.subscribe()).filter_map(move |m| {
            let mine = mine.clone();
            async move {
                match m {
                    Ok((to, payload)) if to == mine => {
                        Some(Ok(Event::default().event("notification").data(payload)))
                    }
                    _ => None,
                }
            }
        });
    // A first event, so a page knows it is connected before anything happens (with data:
    // browsers drop events without any).
    let hello =
        futures::stream::once(async { Ok(Event::default().event("ready").data("connected")) });
    Sse::new(hello.chain(events)).keep_alive(KeepAlive::default())
}

async fn page(me: CurrentUser) -> impl IntoResponse {
    Html(PAGE.replace("{{user}}", &html_escape(&me.username)))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Notifications</title>
<style>
  body { font: 16px system-ui, sans-serif; margin: 2rem; color: #222; }
  h1 { font-size: 1.3rem; } #status { color: #888; font-size: .9rem; }
  li { padding: .4rem .6rem; margin: .3rem 0; background: #eef5ff; border-radius: 4px; list-style: none; }
</style></head>
<body>
<h1>Notifications for {{user}}</h1>
<p id="status">connecting…</p>
<ul id="notifications"></ul>
<script>
  // Same origin: the browser sends the session cookie with the stream's request.
  const events = new EventSource("/notifications/stream");
  events.addEventListener("ready", () => {
    document.getElementById("status").textContent = "live";
    document.body.dataset.ready = "true";
  });
  events.addEventListener("notification", (e) => {
    const n = JSON.parse(e.data);
    const li = document.createElement("li");
    li.textContent = n.text;
    li.dataset.id = n.id;
    document.getElementById("notifications").appendChild(li);
  });
</script>
</body></html>
"#;

#[derive(Deserialize)]
struct NewSubscription {
    scope: String,
    item_id: String,
    #[serde(default)]
    depth: Option<String>,
}

async fn create(
    State(db): State<DatabaseConnection>,
    me: CurrentUser,
    Json(body): Json<NewSubscription>,
) -> Result<Json<Value>, ApiError> {
    let depth = match body.depth.as_deref() {
        None | Some("resource") => Depth::Resource,
        Some("descendants") => Depth::Descendants,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "depth is `resource` or `descendants`".into(),
            ));
        }
    };
    notify::subscribe(
        &db,
        &tenant(&me),
        &me.id.to_string(),
        &body.scope,
        &body.item_id,
        depth,
    )
    .await?;
    Ok(Json(json!({"scope": body.scope, "item_id": body.item_id})))
}

async fn list(
    State(db): State<DatabaseConnection>,
    me: CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let subs = notify::subscriptions(&db, &tenant(&me), &me.id.to_string()).await?;
    let subs: Vec<Value> = subs
        .into_iter()
        .map(|s| json!({"scope": s.scope, "item_id": s.item_id, "depth": s.depth}))
        .collect();
    Ok(Json(Value::Array(subs)))
}

async fn revoke(
    State(db): State<DatabaseConnection>,
    me: CurrentUser,
    Path((scope, item_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let revoked =
        notify::unsubscribe(&db, &tenant(&me), &me.id.to_string(), &scope, &item_id).await?;
    Ok(Json(json!({"revoked": revoked})))
}
