//! The write path, one module per step, in the order an entry travels:
//!
//! 1. [`hooks`]: SeaORM's `ActiveModelBehavior` calls land here; they decide whether a write is
//!    logged and prepare what its entry needs.
//! 2. `before`: an update's typed before-state, and how an update SeaORM never confirmed is
//!    settled from the database.
//! 3. `frame`: the per-transaction buffer of entries and pending before-states, found through a
//!    task-local, savepoint-aware.
//! 4. `flush`: the transaction boundary ([`transaction`](crate::transaction)): settle, write,
//!    COMMIT, or drop everything on rollback.
//! 5. `sink`: the multi-row INSERT (and the outbox row), chunked to the backend's limits, and
//!    the failure policy.
//! 6. [`events`]: after COMMIT, `after_append` and the [`ActivityRecorded`](events::ActivityRecorded)
//!    broadcast.
//!
//! Beside the main line: `track` ([`Tracked`](crate::Tracked), a before-state the caller
//! already has), [`bulk`] (logged `*_many`), `manual` ([`log_activity`](crate::log_activity)) and
//! [`failure`] (what a caller is told when an entry cannot be written). Each module imports only
//! modules after it in this list, or outside the write path.

pub(crate) mod before;
pub mod bulk;
pub mod events;
pub mod failure;
pub(crate) mod flush;
pub(crate) mod frame;
pub mod hooks;
pub(crate) mod manual;
pub(crate) mod sink;
pub(crate) mod statement;
pub(crate) mod track;
