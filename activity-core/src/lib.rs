//! ORM-free core of the activity log.
//!
//! - [`ActivityEntry`] and its exact JSON shape ([`Detail`], [`Change`], [`ChangeAction`],
//!   [`Trigger`], [`Actor`]);
//! - [`ActivityContext`]: the actor and request context in a tokio task-local;
//! - [`mute_signals`], [`mute_signals_in`], [`mute_scopes`]: per-task muting for bulk jobs;
//! - [`ModelActivity`] (derive it) and [`diff()`]: field-level change detection with exclusions,
//!   empty-value rules, masking and renames;
//! - [`ActivityStore`], [`InMemoryStore`], [`ActivityQuery`], [`Clock`], [`ActivityHooks`].
//!
//! Most applications use it through `activity-seaorm`, which re-exports everything here.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "actix")]
pub mod actix;
pub mod actor;
pub mod audited;
pub mod clock;
pub mod config;
pub mod context;
pub mod describe;
pub mod diff;
pub mod entry;
pub mod error;
pub mod feed;
pub mod hooks;
#[cfg(feature = "tower")]
pub mod layer;
pub mod mute;
pub mod ocsf;
pub mod path;
pub mod policy;
pub mod query;
#[cfg(feature = "seal")]
pub mod seal;
pub mod store;
pub mod trace;
pub mod value;

#[cfg(feature = "actix")]
pub use actix::{ActivityMiddleware, ActivityMiddlewareService};
pub use clock::{Clock, FixedClock, SystemClock};
pub use config::{
    ActivityConfig, AlreadyInitialized, FailurePolicy, MAX_VALUE_BYTES, Tenancy, WIRE_BUDGET, init,
};
pub use context::ActivityContext;
pub use describe::{Describer, describe};
pub use diff::{COMMON_EXCLUSIONS, FieldSpec, Masking, ModelActivity, diff};
pub use entry::{ActivityEntry, Actor, Change, ChangeAction, CompactDetail, Detail, Trigger};
pub use error::ActivityError;
pub use hooks::{ActivityHooks, AppendDecision, NoHooks};
#[cfg(feature = "tower")]
pub use layer::{ActivityLayer, ActivityService};
pub use mute::{MuteGuard, Muted, is_muted, mute_scopes, mute_signals, mute_signals_in};
pub use policy::{ReadPolicy, Reader};
pub use query::{ActivityQuery, DetailFilter, FilterOp, Order, Page};
pub use store::{ActivityStore, InMemoryStore};
pub use value::{ActivityValue, KeyedValue};

/// `#[derive(ModelActivity)]`: see the crate docs of `activity-seaorm` for the attributes.
#[cfg(feature = "derive")]
pub use activity_derive::ModelActivity;

/// Everything a model file needs.
pub mod prelude {
    pub use crate::{
        ActivityContext, ActivityEntry, ActivityQuery, ActivityValue, Actor, Change, ChangeAction,
        ModelActivity, Trigger, describe, diff, mute_scopes, mute_signals, mute_signals_in,
    };
}

/// Items used by generated code. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::diff::{
        FieldSpec, Masking, ModelActivity, compare_field, field_text, snapshot_field,
    };
    pub use crate::entry::{Change, ChangeAction};
    pub use crate::value::{ActivityValue, KeyedValue, encode_serialize};
    pub use core::option::Option;
    pub use core::primitive::{bool, str};
    pub use serde_json;
    pub use std::string::String;
    pub use std::vec::Vec;

    /// The derive's registration of a SeaORM entity for `history`: nothing here (this crate
    /// knows no ORM); `activity_seaorm::__private` has the one that registers.
    pub use crate::__activity_register_history as register_history;
    pub use crate::audited::AuditedTable;
    /// `inventory::submit!` for the derive's table registration.
    pub use inventory;

    /// Fails to compile unless `T` is a JSON object type (for `mask_keys`).
    pub fn assert_keyed<T: KeyedValue + ?Sized>(_: &T) {}
    /// Fails to compile unless `T` can be recorded.
    pub fn assert_value<T: ActivityValue + ?Sized>(_: &T) {}
}

/// See `__private::register_history`: the ORM-free crate registers nothing.
#[doc(hidden)]
#[macro_export]
macro_rules! __activity_register_history {
    ($($tokens:tt)*) => {};
}
