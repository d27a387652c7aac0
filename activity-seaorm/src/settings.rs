//! Process-wide settings: failure policy, clock, append hooks, the event channel and the INSERT
//! size budget.
//!
//! Settings are global because hooks run inside SeaORM's `ActiveModelBehavior`, which has no
//! place to carry configuration; set them once at start-up.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use activity_core::{ActivityEntry, ActivityHooks, Clock, NoHooks, SystemClock};
use tokio::sync::broadcast;

use crate::write::WIRE_BUDGET;

/// What happens when an entry cannot be written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// The change does not commit and the caller gets an error naming the activity log.
    #[default]
    FailClosed,
    /// The change commits without its entries; a `tracing` warning is emitted and
    /// [`failed_writes`] is incremented. Inside [`transaction`](crate::transaction) the log
    /// insert runs in a savepoint so a failure cannot abort the transaction.
    FailOpen,
}

/// A committed entry, broadcast to [`subscribe`]rs.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityRecorded {
    /// The entry as written.
    pub entry: Arc<ActivityEntry>,
}

#[derive(Debug)]
struct Settings {
    policy: FailurePolicy,
    clock: Arc<dyn Clock>,
    hooks: Arc<dyn ActivityHooks>,
}

fn settings() -> &'static RwLock<Settings> {
    static SETTINGS: OnceLock<RwLock<Settings>> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        RwLock::new(Settings {
            policy: FailurePolicy::default(),
            clock: Arc::new(SystemClock),
            hooks: Arc::new(NoHooks),
        })
    })
}

fn events() -> &'static broadcast::Sender<ActivityRecorded> {
    static EVENTS: OnceLock<broadcast::Sender<ActivityRecorded>> = OnceLock::new();
    EVENTS.get_or_init(|| broadcast::channel(4096).0)
}

static FAILED_WRITES: AtomicU64 = AtomicU64::new(0);

/// Set the failure policy (default: fail-closed).
pub fn set_failure_policy(policy: FailurePolicy) {
    settings()
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .policy = policy;
}

/// The current failure policy.
pub fn failure_policy() -> FailurePolicy {
    settings()
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .policy
}

/// Set the clock that stamps `created_at`.
pub fn set_clock(clock: Arc<dyn Clock>) {
    settings()
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .clock = clock;
}

/// Set the `before_append` / `after_append` hooks.
pub fn set_hooks(hooks: Arc<dyn ActivityHooks>) {
    settings()
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .hooks = hooks;
}

pub(crate) fn clock() -> Arc<dyn Clock> {
    settings()
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clock
        .clone()
}

pub(crate) fn hooks() -> Arc<dyn ActivityHooks> {
    settings()
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .hooks
        .clone()
}

/// Receive every committed entry (`ActivityRecorded`). Entries of rolled-back transactions are
/// never published. A slow receiver may lag (see `tokio::sync::broadcast`).
///
/// Entries written inside [`transaction`](crate::transaction) are published after its COMMIT,
/// and entries written on an autocommit connection right after their INSERT. Entries written
/// through a transaction you opened yourself (`db.begin()`) are published when written, since
/// the library cannot see that transaction's end: use `transaction` where events must follow
/// the commit exactly.
pub fn subscribe() -> broadcast::Receiver<ActivityRecorded> {
    events().subscribe()
}

/// How many entries were lost under [`FailurePolicy::FailOpen`] since start-up.
pub fn failed_writes() -> u64 {
    FAILED_WRITES.load(Ordering::Relaxed)
}

static WIRE_BUDGET_BYTES: AtomicUsize = AtomicUsize::new(WIRE_BUDGET);

/// Set the largest log INSERT sent to PostgreSQL or MySQL, in bytes on the wire (estimated);
/// a flush with more entries sends several INSERTs. Default [`WIRE_BUDGET`], which keeps each
/// message in one write on a TCP connection without `TCP_NODELAY` (sqlx 0.9.0).
///
/// Raise it where Nagle's algorithm does not apply: over a Unix socket, or once sqlx sets
/// `TCP_NODELAY` again. Measured over PostgreSQL's Unix socket, 1,000 per-row bulk entries:
/// 12 KiB, 30 INSERTs, 32.9 ms; 64 KiB, 8 INSERTs, 30.4 ms. Above that, the larger statements
/// got slower again here. On MySQL keep it well under the server's `max_allowed_packet`.
/// SQLite has no wire and ignores it. At least one entry goes in every statement, whatever the
/// budget.
///
/// ```
/// activity_seaorm::set_wire_budget(24_000);
/// assert_eq!(activity_seaorm::wire_budget(), 24_000);
/// # activity_seaorm::set_wire_budget(activity_seaorm::WIRE_BUDGET);
/// ```
pub fn set_wire_budget(bytes: usize) {
    WIRE_BUDGET_BYTES.store(bytes, Ordering::Relaxed);
}

/// The current INSERT size budget (see [`set_wire_budget`]).
pub fn wire_budget() -> usize {
    WIRE_BUDGET_BYTES.load(Ordering::Relaxed)
}

pub(crate) fn count_failed(n: usize) {
    FAILED_WRITES.fetch_add(n as u64, Ordering::Relaxed);
}

/// Run `after_append` and broadcast, for committed entries only.
pub(crate) fn publish(entries: Vec<ActivityEntry>) {
    if entries.is_empty() {
        return;
    }
    let hooks = hooks();
    let sender = events();
    for entry in entries {
        hooks.after_append(&entry);
        if sender.receiver_count() > 0 {
            // No receiver is not an error: events are best-effort notifications.
            let _ = sender.send(ActivityRecorded {
                entry: Arc::new(entry),
            });
        }
    }
}
