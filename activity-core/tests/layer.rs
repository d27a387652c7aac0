//! `ActivityLayer`: each request runs in its own context, and a context whose identifiers the
//! log could not store is answered `400 Bad Request` before the inner service runs.
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use activity_core::{ActivityContext, ActivityLayer, Actor};
use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

/// Answers with the current context's user id; counts its calls.
#[derive(Clone)]
struct WhoAmI(Arc<AtomicUsize>);

impl Service<Request<(String, String)>> for WhoAmI {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<(String, String)>) -> Self::Future {
        self.0.fetch_add(1, Ordering::SeqCst);
        let who = ActivityContext::current()
            .and_then(|c| c.user().map(|u| u.id.clone()))
            .unwrap_or_default();
        ready(Ok(Response::new(who)))
    }
}

/// A request from `user` of `team` (as an authenticator would have put them on it).
fn request(user: &str, team: &str) -> Request<(String, String)> {
    Request::new((user.to_owned(), team.to_owned()))
}

fn layer() -> ActivityLayer<impl Fn(&Request<(String, String)>) -> ActivityContext + Clone> {
    ActivityLayer::new(|req: &Request<(String, String)>| {
        let (user, team) = req.body();
        ActivityContext::for_user(Actor::new(user.clone())).with_team(team.clone())
    })
}

#[tokio::test]
async fn requests_run_in_their_own_context_and_bad_identifiers_get_400() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut service = layer().layer(WhoAmI(calls.clone()));

    let ok = service.call(request("alice", "7")).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.body(), "alice");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let long = "é".repeat(256);
    for (user, team) in [
        ("", "7"),
        ("alice", ""),
        ("bob\u{7}", "7"),
        (long.as_str(), "7"),
    ] {
        let refused = service.call(request(user, team)).await.unwrap();
        assert_eq!(
            refused.status(),
            StatusCode::BAD_REQUEST,
            "{user:?} {team:?}"
        );
        assert_eq!(refused.body(), "");
    }
    // The inner service never ran for a refused request.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // 255 characters are fine.
    let edge = "é".repeat(255);
    let ok = service.call(request(&edge, "7")).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}
