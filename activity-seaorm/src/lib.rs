#![cfg_attr(all(any(doc, doctest), not(docsrs)), doc = include_str!("../../README.md"))]
// docs.rs builds the packaged crate, where the README sits at the package's root (`readme`).
#![cfg_attr(docsrs, doc = include_str!("../README.md"))]
//!
//! # Layout
//!
//! One module per side of the library, each importing only those below it:
//!
//! | module | holds |
//! |---|---|
//! | [`hooks`], [`bulk`], [`events`], [`failure`] | the write path (`write/`): hooks → before-state → per-transaction frame → flush at COMMIT → INSERT → events |
//! | [`read`] | queries, filters, the keyset cursor, text search (feature `read`, default) |
//! | [`ops`] | operations on the stored log: export, retention, archive, erasure and the lifecycle of every copy, report, alerts, background logging (feature `ops`, default) |
//! | [`schema`] | the `activity_log` table, its indexes, migrations, the append-only guard, the outbox table |
//! | [`outbox`] | the relay's side of the outbox (claim, complete) |
//! | [`checked`] | checked mode: writes that bypassed the log |
//! | [`config`] | [`ActivityConfig`] and what it holds (hooks, clock, failure policy) |
//! | [`context`], [`entry`], [`feed`], [`query`], [`policy`], [`diff`](mod@diff), [`mute`], [`value`], … | the ORM-free core (`activity-core`); `feed::FeedEntry` is what people read |
//!
//! The root holds the names a tour of the library uses; [`prelude`] the ones an application
//! file needs.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cap;
pub mod checked;
pub mod config;
mod errors;
#[cfg(feature = "read")]
pub mod history;
mod keys;
#[cfg(feature = "ops")]
pub mod ops;
pub mod outbox;
#[cfg(feature = "read")]
pub mod read;
pub mod schema;
mod write;

pub use write::{bulk, events, failure, hooks};

// The ORM-free core, module by module (no glob: every name below is deliberate).
#[cfg(feature = "actix")]
pub use activity_core::actix;
#[cfg(feature = "tower")]
pub use activity_core::layer;
pub use activity_core::{
    actor, audited, clock, context, describe, diff, entry, error, feed, mute, ocsf, path, policy,
    query, store, trace, value,
};

#[cfg(feature = "tower")]
pub use activity_core::ActivityLayer;
#[cfg(feature = "actix")]
pub use activity_core::ActivityMiddleware;
pub use activity_core::{
    ActivityContext, ActivityEntry, ActivityQuery, Actor, ModelActivity, ReadPolicy, Reader,
    mute_scopes, mute_signals, mute_signals_in,
};
pub use config::{ActivityConfig, FailurePolicy, Tenancy, init};
pub use errors::Error;
#[cfg(feature = "read")]
pub use read::load_activity;
pub use schema::activity_log;
pub use write::failure::LogWriteFailure;
pub use write::flush::{LoggedTransaction, transaction, transaction_with_options};
pub use write::manual::{bulk_log_activity, log_activity};
pub use write::track::{Tracked, track};

/// Everything an application file needs: `use activity_seaorm::prelude::*;`.
pub mod prelude {
    pub use crate::bulk::ExecLogged;
    #[cfg(feature = "read")]
    pub use crate::load_activity;
    pub use crate::{
        ActivityConfig, FailurePolicy, LoggedTransaction, Tracked, activity_hooks, track,
        transaction,
    };
    pub use activity_core::prelude::*;
    /// `.scope_boxed()`, for the closure of [`transaction`]: no separate
    /// `scoped-futures` dependency needed.
    pub use scoped_futures::ScopedFutureExt;
}

/// The user guide: the chapters of the book in `docs/` (`mdbook build docs`), one module each,
/// so that `cargo test -p activity-seaorm --doc` compiles and runs every Rust snippet in them.
/// Links between chapters point at the Markdown files; read the book for those.
///
/// Only in documentation and doctests (`cfg(doc)`, `cfg(doctest)`), like the README as the crate
/// documentation: the chapters are outside the package, so a build of the packaged crate must
/// not read them (docs.rs, `cfg(docsrs)`, builds without the guide).
#[cfg(all(any(doc, doctest), not(docsrs)))]
pub mod guide {
    #[doc = include_str!("../../docs/src/introduction.md")]
    pub mod introduction {}
    #[doc = include_str!("../../docs/src/installation.md")]
    pub mod installation {}
    #[doc = include_str!("../../docs/src/derive.md")]
    pub mod derive {}
    #[doc = include_str!("../../docs/src/context.md")]
    pub mod context {}
    #[doc = include_str!("../../docs/src/writing.md")]
    pub mod writing {}
    #[doc = include_str!("../../docs/src/configuration.md")]
    pub mod configuration {}
    #[doc = include_str!("../../docs/src/failures.md")]
    pub mod failures {}
    #[doc = include_str!("../../docs/src/reading.md")]
    pub mod reading {}
    #[doc = include_str!("../../docs/src/history.md")]
    pub mod history {}
    #[doc = include_str!("../../docs/src/operations.md")]
    pub mod operations {}
    #[doc = include_str!("../../docs/src/stream.md")]
    pub mod stream {}
    #[doc = include_str!("../../docs/src/integrity.md")]
    pub mod integrity {}
    #[doc = include_str!("../../docs/src/tracing.md")]
    pub mod traces {}
    #[doc = include_str!("../../docs/src/schema.md")]
    pub mod schema {}
    #[doc = include_str!("../../docs/src/example-app.md")]
    pub mod example_app {}
    #[doc = include_str!("../../docs/src/performance.md")]
    pub mod performance {}
}

/// Items used by generated code and macros. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use activity_core::__private::*;
    pub use sea_orm::{ActiveModelBehavior, ConnectionTrait, DbErr, EntityTrait};

    /// The derive's registration of a model's `Entity` for its scope, so `history::revert`
    /// finds the entity an entry names (replaces activity-core's, which registers nothing).
    pub use crate::__activity_seaorm_register_history as register_history;
}

/// See `__private::register_history`.
#[cfg(feature = "read")]
#[doc(hidden)]
#[macro_export]
macro_rules! __activity_seaorm_register_history {
    ($entity:ty, $scope:expr) => {
        $crate::__private::inventory::submit! {
            $crate::history::Registration::new::<$entity>($scope)
        }
    };
}

/// See `__private::register_history`: without the `read` feature there is no history.
#[cfg(not(feature = "read"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __activity_seaorm_register_history {
    ($($tokens:tt)*) => {};
}

/// Expands to the four `ActiveModelBehavior` hook methods that write activity entries.
///
/// `#[async_trait]` does not look inside macro invocations, so this emits the desugared
/// signatures itself; put it inside an `#[async_trait::async_trait] impl ActiveModelBehavior`.
///
/// ```ignore
/// #[async_trait::async_trait]
/// impl ActiveModelBehavior for ActiveModel {
///     activity_seaorm::activity_hooks!();
/// }
/// ```
#[macro_export]
macro_rules! activity_hooks {
    () => {
        fn before_save<'life0, 'async_trait, C>(
            self,
            db: &'life0 C,
            insert: bool,
        ) -> ::core::pin::Pin<
            ::std::boxed::Box<
                dyn ::core::future::Future<
                        Output = ::core::result::Result<Self, $crate::__private::DbErr>,
                    > + ::core::marker::Send
                    + 'async_trait,
            >,
        >
        where
            C: 'async_trait + $crate::__private::ConnectionTrait,
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            ::std::boxed::Box::pin($crate::hooks::before_save(self, db, insert))
        }

        fn after_save<'life0, 'async_trait, C>(
            model: <Self::Entity as $crate::__private::EntityTrait>::Model,
            db: &'life0 C,
            insert: bool,
        ) -> ::core::pin::Pin<
            ::std::boxed::Box<
                dyn ::core::future::Future<
                        Output = ::core::result::Result<
                            <Self::Entity as $crate::__private::EntityTrait>::Model,
                            $crate::__private::DbErr,
                        >,
                    > + ::core::marker::Send
                    + 'async_trait,
            >,
        >
        where
            C: 'async_trait + $crate::__private::ConnectionTrait,
            'life0: 'async_trait,
        {
            ::std::boxed::Box::pin($crate::hooks::after_save(model, db, insert))
        }

        fn before_delete<'life0, 'async_trait, C>(
            self,
            db: &'life0 C,
        ) -> ::core::pin::Pin<
            ::std::boxed::Box<
                dyn ::core::future::Future<
                        Output = ::core::result::Result<Self, $crate::__private::DbErr>,
                    > + ::core::marker::Send
                    + 'async_trait,
            >,
        >
        where
            C: 'async_trait + $crate::__private::ConnectionTrait,
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            ::std::boxed::Box::pin($crate::hooks::before_delete(self, db))
        }

        fn after_delete<'life0, 'async_trait, C>(
            self,
            db: &'life0 C,
        ) -> ::core::pin::Pin<
            ::std::boxed::Box<
                dyn ::core::future::Future<
                        Output = ::core::result::Result<Self, $crate::__private::DbErr>,
                    > + ::core::marker::Send
                    + 'async_trait,
            >,
        >
        where
            C: 'async_trait + $crate::__private::ConnectionTrait,
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            ::std::boxed::Box::pin($crate::hooks::after_delete(self, db))
        }
    };
}
