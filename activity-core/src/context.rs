//! Who is acting, for whom, and from where: a tokio task-local set per request or job.
//!
//! The context is per task, never process-wide, so concurrent requests never see each other's
//! actor. Spawned tasks start without one; [`ActivityContext::propagate`] carries it over.

use std::future::Future;

use crate::actor::{Actor, InvalidIdentifier, Trigger, check_identifier};

tokio::task_local! {
    static CURRENT: ActivityContext;
}

/// The actor and request context stamped on every entry written inside [`ActivityContext::scope`].
///
/// Impersonation without a user cannot be built: [`ActivityContext::impersonating`] takes both.
///
/// ```
/// use activity_core::{ActivityContext, Actor};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let ctx = ActivityContext::for_user(Actor::new("42").with_name("alice")).with_team("7");
/// let seen = ActivityContext::scope(ctx, async { ActivityContext::current() }).await;
/// assert_eq!(seen.unwrap().user().unwrap().id, "42");
/// assert!(ActivityContext::current().is_none());
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActivityContext {
    user: Option<Actor>,
    impersonated_by: Option<Actor>,
    organization_id: Option<String>,
    team_id: Option<String>,
    request_id: Option<String>,
    correlation_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    client: Option<String>,
    trigger: Option<Trigger>,
}

macro_rules! text_builders {
    ($($(#[$doc:meta])* $with:ident => $field:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[must_use]
        pub fn $with(mut self, value: impl Into<String>) -> Self {
            self.$field = Some(value.into());
            self
        }
    )*};
}

macro_rules! text_getters {
    ($($(#[$doc:meta])* $field:ident),* $(,)?) => {$(
        $(#[$doc])*
        pub fn $field(&self) -> Option<&str> {
            self.$field.as_deref()
        }
    )*};
}

impl ActivityContext {
    /// A user acting as themself.
    pub fn for_user(actor: Actor) -> Self {
        Self {
            user: Some(actor),
            ..Self::default()
        }
    }

    /// `by` acting as `user` (support staff, admin "log in as").
    pub fn impersonating(user: Actor, by: Actor) -> Self {
        Self {
            user: Some(user),
            impersonated_by: Some(by),
            ..Self::default()
        }
    }

    /// No user: jobs, migrations, webhooks. Entries get `is_system = true`.
    pub fn system() -> Self {
        Self::default()
    }

    text_builders! {
        /// Set the organization id (used when the model does not name one).
        with_organization => organization_id,
        /// Set the team id (used when the model does not name one).
        with_team => team_id,
        /// Set the request id.
        with_request_id => request_id,
        /// Set the correlation id (the transaction helper sets one per outermost transaction
        /// when none is given).
        with_correlation_id => correlation_id,
        /// Set the client IP address.
        with_ip => ip,
        /// Set the client user agent.
        with_user_agent => user_agent,
        /// Set the client application name.
        with_client => client,
    }

    /// Set what started this work.
    #[must_use]
    pub fn with_trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = Some(trigger);
        self
    }

    /// The effective actor; `None` for system activity.
    pub fn user(&self) -> Option<&Actor> {
        self.user.as_ref()
    }

    /// The real actor when impersonating.
    pub fn impersonated_by(&self) -> Option<&Actor> {
        self.impersonated_by.as_ref()
    }

    /// Whether no user acts.
    pub fn is_system(&self) -> bool {
        self.user.is_none()
    }

    text_getters! {
        /// The organization id.
        organization_id,
        /// The team id.
        team_id,
        /// The request id.
        request_id,
        /// The correlation id.
        correlation_id,
        /// The client IP address.
        ip,
        /// The client user agent.
        user_agent,
        /// The client application name.
        client,
    }

    /// What started this work.
    pub fn trigger(&self) -> Option<&Trigger> {
        self.trigger.as_ref()
    }

    /// Run `fut` with `ctx` as the current context (nested scopes shadow outer ones).
    pub fn scope<F: Future>(ctx: ActivityContext, fut: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(ctx, fut)
    }

    /// [`scope`](Self::scope) as a nameable future, for middleware.
    #[cfg(feature = "tower")]
    pub(crate) fn scoped<F: Future>(
        ctx: ActivityContext,
        fut: F,
    ) -> tokio::task::futures::TaskLocalFuture<ActivityContext, F> {
        CURRENT.scope(ctx, fut)
    }

    /// Check the identifiers this context would write (user and impersonator ids, organization,
    /// team, correlation id): none empty, none with a control character, none over 255
    /// characters. The request middleware calls it and answers `400 Bad Request` before the
    /// request does any work; call it wherever else a context is built from outside input.
    ///
    /// ```
    /// use activity_core::{ActivityContext, Actor};
    /// assert!(ActivityContext::for_user(Actor::new("42")).validate().is_ok());
    /// let bad = ActivityContext::for_user(Actor::new("42")).with_team("");
    /// assert_eq!(bad.validate().unwrap_err().to_string(), "invalid team id: it is empty");
    /// ```
    pub fn validate(&self) -> Result<(), InvalidIdentifier> {
        let ids = [
            ("user id", self.user.as_ref().map(|a| a.id.as_str())),
            (
                "impersonator id",
                self.impersonated_by.as_ref().map(|a| a.id.as_str()),
            ),
            ("organization id", self.organization_id.as_deref()),
            ("team id", self.team_id.as_deref()),
            ("correlation id", self.correlation_id.as_deref()),
        ];
        for (what, id) in ids {
            if let Some(id) = id {
                check_identifier(what, id)?;
            }
        }
        Ok(())
    }

    /// Run a synchronous closure with `ctx` as the current context.
    pub fn sync_scope<R>(ctx: ActivityContext, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(ctx, f)
    }

    /// The current task's context, if one is set.
    pub fn current() -> Option<ActivityContext> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Wrap `fut` so it runs with the caller's current context and mute state, e.g. before
    /// `tokio::spawn`: a task spawned by a muted bulk job is muted too, and one spawned by a
    /// request logs as that request's user.
    ///
    /// ```
    /// use activity_core::{ActivityContext, Actor};
    /// # #[tokio::main] async fn main() {
    /// let ctx = ActivityContext::for_user(Actor::new("7"));
    /// let id = ActivityContext::scope(ctx, async {
    ///     tokio::spawn(ActivityContext::propagate(async {
    ///         ActivityContext::current().and_then(|c| c.user().map(|u| u.id.clone()))
    ///     }))
    ///     .await
    ///     .unwrap()
    /// })
    /// .await;
    /// assert_eq!(id.as_deref(), Some("7"));
    /// # }
    /// ```
    pub fn propagate<F: Future>(fut: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(Self::current().unwrap_or_default(), crate::mute::carry(fut))
    }
}
