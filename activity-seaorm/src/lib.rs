#![doc = include_str!("../../README.md")]
//!
//! # Semantics in detail
//!
//! **Write path.** `hooks` → `recorder` (the transaction's frame) → `sink` (the INSERT) →
//! `events`. Inserts are logged in `after_save` (generated keys are known). Updates need the
//! before-state: the hook reads the row by primary key on the hook's own connection (in the same
//! transaction, locked as the UPDATE will lock it: `SELECT .. FOR NO KEY UPDATE` on PostgreSQL,
//! `FOR UPDATE` on MySQL), unless [`Tracked`] carries it (then only the columns set are
//! compared) or only `signal_exclude`d/excluded fields are set (then there is neither a read nor
//! an entry). The entry is written when SeaORM confirms the update (`after_save`); an update it
//! never confirmed (`update_without_returning`, or a statement that failed and was handled) is
//! settled at COMMIT from the row as it is then — nothing is ever predicted. An update whose
//! changes are all equal under the diff rules writes nothing. Deletes read the row first.
//!
//! **Transactions.** [`transaction`] buffers entries per transaction frame. A nested
//! `transaction` is a savepoint whose entries are dropped if it rolls back and merged into its
//! parent if it is released; the outermost one writes them all in one multi-row INSERT (chunked
//! to the backend's bind limit) right before COMMIT, then runs `after_append` and broadcasts
//! [`ActivityRecorded`] to [`subscribe`]rs. One `correlation_id` groups every entry of an
//! outermost transaction. Outside the helper, entries are written at once on the hook's
//! connection (so inside your own `begin()`/`commit()` they share its fate).
//!
//! **Failure policy.** With [`FailurePolicy::FailClosed`] (the default) a failed log write fails
//! the operation: inside [`transaction`] the whole transaction rolls back; the caller gets the
//! database's error (so `DbErr::sql_err()` works) with a message saying "activity log write
//! failed" and what became of the change, and [`LogWriteFailure::of`] tells it from the caller's
//! own errors. On an autocommit connection the change has already committed; the error says so.
//! With [`FailurePolicy::FailOpen`] the change commits, [`failed_writes`] counts the lost entries
//! and a `tracing` warning says why; the INSERT runs in a savepoint wherever a transaction is
//! open. Settings: [`ActivityConfig`].
//!
//! **Muting.** [`mute_signals`] returns a `Send` guard scoped to the current task; it can be held
//! across `.await`. [`mute_signals_in`] and [`mute_scopes`] wrap a future. Muting never leaks into
//! other tasks, and nested mutes restore the outer state.
//!
//! **Not captured by hooks.** `Entity::insert(am).exec`, `Entity::update(am).exec`,
//! `Entity::delete_by_id(id).exec`, `update_many`, `delete_many`, `insert_many` and raw SQL do
//! not run `ActiveModelBehavior`. Use the `ActiveModel` methods, [`bulk`], or log them with
//! [`log_activity`] / [`bulk_log_activity`] — or mute them on purpose. [`checked`] mode reports
//! every such write to an audited table (`execute_unprepared` through
//! `checked::Checker::layer`, feature `checked-layer`: SeaORM gives that call
//! no metric callback).
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod bulk;
pub mod checked;
pub mod config;
pub mod entity;
mod errors;
pub mod events;
mod failure;
pub mod guard;
pub mod hooks;
mod keys;
mod manual;
mod ops;
pub mod outbox;
mod pending;
mod read;
mod recorder;
pub mod schema;
mod sink;
mod track;
mod transaction;

pub use activity_core::*;
pub use config::{ActivityConfig, FailurePolicy, Tenancy, WIRE_BUDGET, failed_writes, init};
pub use entity::{IdentifierTooLong, activity_log};
pub use errors::Error;
pub use events::{ActivityRecorded, subscribe};
pub use failure::{ChangeState, LogWriteFailure};
pub use manual::{bulk_log_activity, log_activity};
pub use ops::{
    ARCHIVE_DELETE_BATCH, ArchiveManifest, ArchiveOptions, ArchiveOutcome, ArchiveStep,
    MANIFEST_VERSION, StepHook, archive_then_prune, verify_archive,
};
pub use ops::{AlertEvaluator, AlertGroup, AlertHandler, AlertRule, Breach};
pub use ops::{
    BACKGROUND_BATCH, BACKGROUND_CAPACITY, BACKGROUND_RETRIES, BackgroundConfig, BackgroundError,
    BackgroundLogger, BackgroundStats, Overflow, Queued,
};
pub use ops::{
    CSV_COLUMNS, ERASURE_ACTIVITY, ERASURE_BATCH, ERASURE_SCOPE, MIN_ERASURE_KEY, PRUNE_BATCH,
    anonymize_user, export_csv, export_jsonl, prune, pseudonym,
};
pub use ops::{MAX_REPORT_ROWS, ReportDimension, ReportRow, activity_report};
pub use read::load_activity;
pub use track::{Tracked, track};
pub use transaction::{transaction, transaction_with_options};

/// Everything an application file needs: `use activity_seaorm::prelude::*;`.
pub mod prelude {
    pub use crate::{ActivityConfig, FailurePolicy, Tracked, activity_hooks, load_activity, track};
    pub use activity_core::prelude::*;
    /// `.scope_boxed()`, for the closure of [`transaction`](crate::transaction): no separate
    /// `scoped-futures` dependency needed.
    pub use scoped_futures::ScopedFutureExt;
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
