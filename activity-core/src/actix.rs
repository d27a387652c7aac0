//! `ActivityMiddleware`: an actix-web middleware that runs each request inside its own
//! [`ActivityContext`].
//!
//! actix-web runs each worker on its own single-threaded tokio runtime: one thread interleaves
//! the requests of many connections, and a keep-alive connection sends its requests one after
//! another on the same task. A thread-local actor would therefore leak from one request to the
//! next. The context is a tokio *task-local* instead, and this middleware scopes it around each
//! request's future (and around the inner service's `call`, which may do work before its
//! future): it is set only while that request's future is polled, restored when the poll
//! returns, and gone when the request ends. Requests interleaved on a worker, or following
//! each other on one connection, each see their own actor and never another's.
//!
//! The closure decides how to build the context (authenticated user, `x-request-id`, client
//! IP...). The context is [validated](ActivityContext::validate) before the request runs: an
//! identifier the log could not store (empty, control characters, over 255 characters) is
//! answered `400 Bad Request` and the inner service is never called, so no request does its
//! work only to fail at the log write.
//!
//! actix futures are not `Send`, and nothing here requires it. A task the handler spawns
//! (`actix_web::rt::spawn`, `tokio::spawn`) starts without the context: wrap its future in
//! [`ActivityContext::propagate`].
//!
//! ```
//! use activity_core::{ActivityContext, ActivityMiddleware, Actor};
//! use actix_web::dev::ServiceRequest;
//! use actix_web::{App, HttpResponse, test, web};
//!
//! async fn whoami() -> HttpResponse {
//!     let ctx = ActivityContext::current();
//!     let id = ctx.as_ref().and_then(|c| c.user()).map(|u| u.id.clone());
//!     HttpResponse::Ok().body(id.unwrap_or_default())
//! }
//!
//! # actix_web::rt::System::new().block_on(async {
//! let app = test::init_service(
//!     App::new()
//!         .wrap(ActivityMiddleware::new(|req: &ServiceRequest| {
//!             let user = req.headers().get("x-user").and_then(|v| v.to_str().ok());
//!             ActivityContext::for_user(Actor::new(user.unwrap_or("anonymous")))
//!         }))
//!         .route("/whoami", web::get().to(whoami)),
//! )
//! .await;
//!
//! let req = test::TestRequest::get().uri("/whoami").insert_header(("x-user", "42"));
//! assert_eq!(test::call_and_read_body(&app, req.to_request()).await, "42");
//!
//! // An id the log could not store: refused before the handler runs.
//! let req = test::TestRequest::get().uri("/whoami").insert_header(("x-user", ""));
//! assert_eq!(test::call_service(&app, req.to_request()).await.status(), 400);
//!
//! // Outside a request there is no context.
//! assert!(ActivityContext::current().is_none());
//! # });
//! ```

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpResponse};

use crate::context::ActivityContext;

/// The future of [`ActivityMiddlewareService`]: the inner service's, scoped to the request's
/// context, or the `400 Bad Request` of a refused request.
type ResponseFuture<B> = Pin<Box<dyn Future<Output = Result<ServiceResponse<B>, Error>>>>;

/// Runs each request inside the [`ActivityContext`] its closure builds: pass it to
/// [`App::wrap`](actix_web::App::wrap) (see the [module docs](self)).
///
/// `make` is shared by every worker's service through an [`Arc`]: build the middleware inside
/// the `HttpServer::new` factory, or build it once outside (then `make` must be `Send + Sync`)
/// and clone it into the factory.
pub struct ActivityMiddleware<M> {
    make: Arc<M>,
}

impl<M> ActivityMiddleware<M>
where
    M: Fn(&ServiceRequest) -> ActivityContext,
{
    /// A middleware that builds each request's context with `make`.
    pub fn new(make: M) -> Self {
        Self {
            make: Arc::new(make),
        }
    }
}

impl<M> Clone for ActivityMiddleware<M> {
    fn clone(&self) -> Self {
        Self {
            make: Arc::clone(&self.make),
        }
    }
}

impl<M> fmt::Debug for ActivityMiddleware<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivityMiddleware").finish_non_exhaustive()
    }
}

impl<S, B, M> Transform<S, ServiceRequest> for ActivityMiddleware<M>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    S::Future: 'static,
    B: 'static,
    M: Fn(&ServiceRequest) -> ActivityContext,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = ActivityMiddlewareService<S, M>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ActivityMiddlewareService {
            service,
            make: Arc::clone(&self.make),
        }))
    }
}

/// The service [`ActivityMiddleware`] wraps around the inner one: runs the inner service's
/// `call` and future inside the request's [`ActivityContext`], or answers `400 Bad Request`
/// when the context's identifiers are invalid.
pub struct ActivityMiddlewareService<S, M> {
    service: S,
    make: Arc<M>,
}

impl<S, M> fmt::Debug for ActivityMiddlewareService<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivityMiddlewareService")
            .finish_non_exhaustive()
    }
}

impl<S, B, M> Service<ServiceRequest> for ActivityMiddlewareService<S, M>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    S::Future: 'static,
    B: 'static,
    M: Fn(&ServiceRequest) -> ActivityContext,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = ResponseFuture<EitherBody<B>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let ctx = (self.make)(&req);
        match ctx.validate() {
            Ok(()) => {
                // `call` itself runs in the context too: a service may do work before its
                // future.
                let fut = ActivityContext::sync_scope(ctx.clone(), || self.service.call(req));
                Box::pin(ActivityContext::scope(ctx, async move {
                    fut.await.map(ServiceResponse::map_into_left_body)
                }))
            }
            Err(invalid) => {
                tracing::warn!(%invalid, "request refused: its activity context cannot be logged");
                let response = req
                    .into_response(HttpResponse::BadRequest().finish())
                    .map_into_right_body();
                Box::pin(ready(Ok(response)))
            }
        }
    }
}
