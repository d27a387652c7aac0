//! The history page: the organization's latest entries, each with an "Undo" button, and an
//! "Undo this request" button for the transaction it belongs to. Undo is
//! `activity_seaorm::history`'s compare-and-set: when someone changed a field since, the page
//! shows the conflict (which field, what it holds now, what the entry left) and nothing changes.
//!
//! | route | |
//! |---|---|
//! | `GET /history` | the page (the session cookie of `POST /session`, or `x-user`) |
//! | `POST /history/entries/{id}/revert` | undo one entry: 200, 409 with the conflicts, 422 if it cannot be undone |
//! | `POST /history/requests/{correlation_id}/revert` | undo every entry of one transaction, all or nothing |
//!
//! Only entries of the user's organization can be undone (another organization's is 404), and
//! the undo is logged as a `reverted` entry by the user who clicked.

use activity_seaorm::history::{self, Group, HistoryError, Mode};
use activity_seaorm::prelude::*;
use activity_seaorm::schema::activity_log;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::json;

use crate::{ApiError, CurrentUser};

/// The history routes (behind the app's authentication).
pub fn routes() -> Router<DatabaseConnection> {
    Router::new()
        .route("/history", get(page))
        .route("/history/entries/{id}/revert", post(revert_entry))
        .route(
            "/history/requests/{correlation_id}/revert",
            post(revert_request),
        )
}

/// What an undo answers.
fn outcome(result: Result<history::Reverted, HistoryError>) -> Response {
    match result {
        Ok(done) => Json(json!({ "reverted": done.entries.len() })).into_response(),
        Err(HistoryError::Conflicts(conflicts)) => {
            let conflicts: Vec<_> = conflicts
                .iter()
                .map(|c| {
                    json!({
                        "scope": c.scope, "item_id": c.item_id, "field": c.field,
                        "expected": c.expected, "actual": c.actual,
                    })
                })
                .collect();
            (
                StatusCode::CONFLICT,
                Json(json!({ "conflicts": conflicts })),
            )
                .into_response()
        }
        Err(
            e @ (HistoryError::NotRevertible { .. }
            | HistoryError::NotRecorded(_)
            | HistoryError::UnknownScope(_)),
        ) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "undo failed");
            ApiError::Internal.into_response()
        }
    }
}

async fn revert_entry(
    State(db): State<DatabaseConnection>,
    me: CurrentUser,
    Path(id): Path<sea_orm::prelude::Uuid>,
) -> Result<Response, ApiError> {
    // The user's organization's entries only.
    let entry = activity_log::Entity::find_by_id(id)
        .filter(activity_log::Column::OrganizationId.eq(me.organization_id.to_string()))
        .one(&db)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(outcome(history::revert(&db, entry.id, Mode::Strict).await))
}

async fn revert_request(
    State(db): State<DatabaseConnection>,
    me: CurrentUser,
    Path(correlation_id): Path<String>,
) -> Result<Response, ApiError> {
    let entries = activity_log::Entity::find()
        .filter(activity_log::Column::CorrelationId.eq(correlation_id.as_str()))
        .all(&db)
        .await?;
    let org = me.organization_id.to_string();
    // Every entry of the request must be the user's organization's: a request that touched
    // another tenant is not this user's to undo.
    if entries.is_empty()
        || entries
            .iter()
            .any(|e| e.organization_id.as_deref() != Some(org.as_str()))
    {
        return Err(ApiError::NotFound);
    }
    Ok(outcome(
        history::revert_group(&db, Group::Correlation(correlation_id), Mode::Strict).await,
    ))
}

async fn page(State(db): State<DatabaseConnection>, me: CurrentUser) -> Result<Response, ApiError> {
    let query = ActivityQuery::for_organization(me.organization_id.to_string())
        .reader(me.reader())
        .limit(50);
    let page = activity_seaorm::load_activity(&db, &query).await?;
    let mut rows = String::new();
    for entry in &page.results {
        let undoable = entry.item_id.is_some()
            && matches!(
                entry.activity.as_str(),
                "created" | "updated" | "deleted" | "reverted"
            );
        let correlation = entry.correlation_id.clone().unwrap_or_default();
        rows.push_str(&format!(
            r#"<li data-entry="{id}" data-activity="{activity}" data-request="{correlation}"><span>{text}</span>{undo}{undo_request}</li>"#,
            id = entry.id,
            activity = escape(&entry.activity),
            correlation = escape(&correlation),
            text = escape(&describe(entry)),
            undo = if undoable { r#" <button class="undo">Undo</button>"# } else { "" },
            undo_request = if correlation.is_empty() {
                ""
            } else {
                r#" <button class="undo-request">Undo this request</button>"#
            },
        ));
    }
    Ok(Html(
        PAGE.replace("{{user}}", &escape(&me.username))
            .replace("{{rows}}", &rows),
    )
    .into_response())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>History</title>
<style>
  body { font: 16px system-ui, sans-serif; margin: 2rem; color: #222; }
  h1 { font-size: 1.3rem; }
  li { padding: .4rem .6rem; margin: .3rem 0; background: #f4f4f4; border-radius: 4px; list-style: none; }
  button { margin-left: .5rem; }
  #result { padding: .5rem; } #result.conflict { background: #fff0e0; } #result.done { background: #e8f8e8; }
</style></head>
<body>
<h1>History of {{user}}'s organization</h1>
<p id="result"></p>
<ul id="entries">{{rows}}</ul>
<script>
  const result = document.getElementById("result");
  async function undo(path) {
    // Same origin: the browser sends the session cookie (SameSite=Strict).
    const response = await fetch(path, { method: "POST" });
    const body = await response.json();
    if (response.ok) {
      result.className = "done";
      result.textContent = "Undone (" + body.reverted + " item(s)).";
    } else if (response.status === 409) {
      result.className = "conflict";
      result.textContent = "Not undone: changed since. " + body.conflicts.map((c) =>
        (c.field ? c.field : "the row") + " of " + c.scope + " " + c.item_id +
        " is now " + JSON.stringify(c.actual) + " (the change to undo left " + JSON.stringify(c.expected) + ")").join("; ");
    } else {
      result.className = "conflict";
      result.textContent = "Not undone: " + (body.error || response.status);
    }
    document.body.dataset.undone = String(response.status);
  }
  for (const li of document.querySelectorAll("#entries li")) {
    const one = li.querySelector(".undo");
    if (one) one.addEventListener("click", () => undo("/history/entries/" + li.dataset.entry + "/revert"));
    const all = li.querySelector(".undo-request");
    if (all) all.addEventListener("click", () => undo("/history/requests/" + encodeURIComponent(li.dataset.request) + "/revert"));
  }
</script>
</body></html>
"##;
