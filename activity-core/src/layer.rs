//! `ActivityLayer`: a tower layer that runs each request inside its own [`ActivityContext`].
//!
//! It is generic over the request type, so it does not depend on `http`; the closure decides how
//! to build the context (authenticated user from extensions, `x-request-id`, client IP...).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::context::ActivityContext;

/// Builds an [`ActivityService`] around an inner service.
///
/// ```
/// use activity_core::{ActivityContext, ActivityLayer, Actor};
/// let layer = ActivityLayer::new(|req: &String| ActivityContext::for_user(Actor::new(req.clone())));
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

/// Runs the inner service's future inside the request's [`ActivityContext`].
#[derive(Debug, Clone)]
pub struct ActivityService<S, M> {
    inner: S,
    make: M,
}

impl<S, M, Req> Service<Req> for ActivityService<S, M>
where
    S: Service<Req>,
    S::Future: Send + 'static,
    M: Fn(&Req) -> ActivityContext,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let ctx = (self.make)(&req);
        Box::pin(ActivityContext::scope(ctx, self.inner.call(req)))
    }
}
