//! A complete, trustworthy activity log for SeaORM applications.
//!
//! See the crate README for the guide. In short: derive [`ModelActivity`] on a model, put
//! [`activity_hooks!`] in its `ActiveModelBehavior`, set the actor with
//! [`ActivityContext::scope`] (or the `tower` [`ActivityLayer`]), create the table with
//! [`schema::create_table`], and run writes in [`transaction`] so entries commit atomically
//! with the change in one extra statement.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod buffer;
pub mod entity;
mod errors;
pub mod hooks;
mod keys;
mod ops;
mod read;
pub mod schema;
mod settings;
mod track;
mod transaction;
mod write;

pub use activity_core::*;
pub use entity::activity_log;
pub use errors::Error;
pub use ops::{
    CSV_COLUMNS, PRUNE_BATCH, anonymize_user, export_csv, export_jsonl, prune, pseudonym,
};
pub use read::load_activity;
pub use settings::{
    ActivityRecorded, FailurePolicy, failed_writes, failure_policy, set_clock, set_failure_policy,
    set_hooks, subscribe,
};
pub use track::{Tracked, track};
pub use transaction::transaction;
pub use write::{bulk_log_activity, log_activity};

/// Everything an application file needs: `use activity_seaorm::prelude::*;`.
pub mod prelude {
    pub use crate::{FailurePolicy, Tracked, activity_hooks, load_activity, track};
    pub use activity_core::prelude::*;
}

/// Items used by generated code and macros. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use activity_core::__private::*;
    pub use sea_orm::{ConnectionTrait, DbErr, EntityTrait};
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
