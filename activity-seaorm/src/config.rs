//! Every setting in one value: [`ActivityConfig`], installed once with [`init`] and overridable
//! per task with [`ActivityConfig::scope`]. Defined in `activity-core` (it is ORM-free) and
//! re-exported here, with the one figure the write path keeps process-wide: how many entries
//! fail-open lost.

use std::sync::atomic::{AtomicU64, Ordering};

pub use activity_core::config::{
    ActivityConfig, AlreadyInitialized, FailurePolicy, Tenancy, WIRE_BUDGET, init,
};
pub use activity_core::hooks::{ActivityHooks, AppendDecision, NoHooks};

static FAILED_WRITES: AtomicU64 = AtomicU64::new(0);

/// How many entries were lost under [`FailurePolicy::FailOpen`] since start-up (a metric to
/// export and alert on; it decides nothing).
pub fn failed_writes() -> u64 {
    FAILED_WRITES.load(Ordering::Relaxed)
}

pub(crate) fn count_failed(n: usize) {
    FAILED_WRITES.fetch_add(n as u64, Ordering::Relaxed);
}
