//! `ActivityLayer`: a tower layer that runs each request inside its own [`ActivityContext`].
//!
//! The closure decides how to build the context (authenticated user from extensions,
//! `x-request-id`, client IP...). The context is [validated](ActivityContext::validate) before
//! the request runs: an identifier the log could not store (empty, control characters, over 255
//! characters) is answered `400 Bad Request` and the inner service is never called, so no
//! request does its work only to fail at the log write.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Response, StatusCode};
use tokio::task::futures::TaskLocalFuture;
use tower_layer::Layer;
use tower_service::Service;

use crate::context::ActivityContext;

/// Builds an [`ActivityService`] around an inner service.
///
/// ```
/// use activity_core::{ActivityContext, ActivityLayer, Actor};
/// let layer = ActivityLayer::new(|req: &http::Request<()>| {
///     let user = req.headers().get("x-user").and_then(|v| v.to_str().ok()).unwrap_or("anonymous");
///     ActivityContext::for_user(Actor::new(user))
/// });
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct ActivityLayer<M> {
    make: M,
}

impl<M> ActivityLayer<M> {
    /// A layer that builds each request's context with `make`.
    pub fn new(make: M) -> Self {
        Self { make }
    }
}

impl<S, M: Clone> Layer<S> for ActivityLayer<M> {
    type Service = ActivityService<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        ActivityService {
            inner,
            make: self.make.clone(),
        }
    }
}

/// Runs the inner service's future inside the request's [`ActivityContext`], or answers
/// `400 Bad Request` when the context's identifiers are invalid.
#[derive(Debug, Clone)]
pub struct ActivityService<S, M> {
    inner: S,
    make: M,
}

impl<S, M, Req, B> Service<Req> for ActivityService<S, M>
where
    S: Service<Req, Response = Response<B>>,
    M: Fn(&Req) -> ActivityContext,
    B: Default,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let ctx = (self.make)(&req);
        match ctx.validate() {
            Ok(()) => {
                // `call` itself runs in the context too: a service may do work before its
                // future.
                let inner = &mut self.inner;
                let fut = ActivityContext::sync_scope(ctx.clone(), || inner.call(req));
                ResponseFuture {
                    state: State::Scoped {
                        fut: ActivityContext::scoped(ctx, fut),
                    },
                }
            }
            Err(invalid) => {
                tracing::warn!(%invalid, "request refused: its activity context cannot be logged");
                let mut response = Response::new(B::default());
                *response.status_mut() = StatusCode::BAD_REQUEST;
                ResponseFuture {
                    state: State::Refused {
                        response: Some(response),
                    },
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`ActivityService`]: the inner service's, scoped to the request's context.
    #[derive(Debug)]
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    #[derive(Debug)]
    enum State<F, B> {
        // The request runs.
        Scoped {
            #[pin]
            fut: TaskLocalFuture<ActivityContext, F>,
        },
        // Refused before it ran: the `400 Bad Request`, until it is returned.
        Refused {
            response: Option<Response<B>>,
        },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Scoped { fut } => fut.poll(cx),
            StateProj::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after completion: never ready again, as futures may behave.
                None => Poll::Pending,
            },
        }
    }
}
