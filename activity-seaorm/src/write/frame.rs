//! Where entries wait for COMMIT, and where an update's or delete's before-state waits for its
//! after-hook: per transaction, in the transaction's own [`Frame`].
//!
//! [`transaction`](crate::transaction) opens a frame and makes it reachable through a task-local
//! for the closure's future. A hook finds the frame whose connection it was given (the innermost
//! frame of its task, or an enclosing one); its identity is the frame itself, the connection's
//! address only confirms that the hook writes through that frame's transaction. When the
//! transaction ends in any way — commit, `Err`, panic, the future dropped at any `.await` — the
//! frame is dropped with it, and whatever it still held with it: no later transaction can see it.
//!
//! Hooks outside any frame (autocommit, or a transaction the caller opened with `begin()`) write
//! at once; their before-states wait in a small process-wide table keyed by model, item and task,
//! as SeaORM gives `before_save` and `after_save` no other common place.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use activity_core::{ActivityContext, ActivityEntry};
use chrono::SubsecRound;
use sea_orm::{DbBackend, QueryResult, Statement};

use crate::keys::TaskKey;

/// One open [`transaction`](crate::transaction) (outermost, or a savepoint).
#[derive(Debug)]
pub(crate) struct Frame {
    /// Address of the transaction object the closure borrows (stable while the frame lives).
    conn: usize,
    /// The frame this one is a savepoint of: released entries move there.
    savepoint_of: Option<Arc<Frame>>,
    /// The frame that was current in this task when this one opened (possibly another
    /// connection's), so hooks on an outer transaction's connection still find theirs.
    enclosing: Option<Arc<Frame>>,
    correlation_id: String,
    state: Mutex<State>,
    /// Number of pending before-states, readable without the lock (the muted fast path).
    pending_count: AtomicUsize,
}

#[derive(Default)]
struct State {
    entries: Vec<ActivityEntry>,
    /// Entries already written inside the transaction ([`EARLY_FLUSH_ENTRIES`]), kept for the
    /// events published after COMMIT only while someone listens.
    written: Vec<ActivityEntry>,
    /// An early write failed: the transaction must not commit (fail-closed), even if the
    /// closure went on after the error.
    failed: Option<sea_orm::DbErr>,
    pending: HashMap<PendingKey, Pending, foldhash::fast::RandomState>,
    seq: u64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("entries", &self.entries.len())
            .field("pending", &self.pending.len())
            .finish()
    }
}

/// Entries a transaction buffers before it writes them inside the transaction, ahead of
/// COMMIT: a job of a million logged rows in one transaction holds at most this many entries
/// (about 1 MB) instead of all of them, and stays atomic (the rows are written through the
/// transaction; a rollback takes them back).
pub(crate) const EARLY_FLUSH_ENTRIES: usize = 1_000;

/// A pending state's key within one frame: the model type and the item id.
type PendingKey = (TypeId, String);

tokio::task_local! {
    static CURRENT: Arc<Frame>;
}

impl Frame {
    /// A frame for the transaction at `conn`, opened while `savepoint_of` (if any) is open.
    pub(crate) fn new(
        conn: usize,
        savepoint_of: Option<Arc<Frame>>,
        correlation_id: String,
    ) -> Arc<Frame> {
        Arc::new(Frame {
            conn,
            savepoint_of,
            enclosing: current(),
            correlation_id,
            state: Mutex::default(),
            pending_count: AtomicUsize::new(0),
        })
    }

    /// Run `fut` with this frame reachable by the hooks it runs.
    pub(crate) async fn run<F: Future>(self: &Arc<Self>, fut: F) -> F::Output {
        CURRENT.scope(Arc::clone(self), fut).await
    }

    pub(crate) fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    pub(crate) fn savepoint_of(&self) -> Option<&Arc<Frame>> {
        self.savepoint_of.as_ref()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Per transaction: only hooks of this one transaction ever contend for it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Buffer a stamped entry for this transaction's flush; whether the buffer has grown to
    /// [`EARLY_FLUSH_ENTRIES`] (time to write it: `flush::flush_early`).
    pub(crate) fn push(&self, mut entry: ActivityEntry) -> bool {
        entry.correlation_id = Some(self.correlation_id.clone());
        let mut state = self.state();
        state.entries.push(entry);
        state.entries.len() >= EARLY_FLUSH_ENTRIES
    }

    /// Append entries released by a savepoint of this frame.
    pub(crate) fn extend(&self, entries: Vec<ActivityEntry>) {
        self.state().entries.extend(entries);
    }

    /// The buffered entries, leaving the frame empty.
    pub(crate) fn take_entries(&self) -> Vec<ActivityEntry> {
        std::mem::take(&mut self.state().entries)
    }

    /// Keep entries written early for the events published after COMMIT.
    pub(crate) fn keep_written(&self, entries: Vec<ActivityEntry>) {
        self.state().written.extend(entries);
    }

    /// The entries written early and kept for events, leaving none.
    pub(crate) fn take_written(&self) -> Vec<ActivityEntry> {
        std::mem::take(&mut self.state().written)
    }

    /// Remember that an early write failed: the transaction ends in that error.
    pub(crate) fn fail(&self, error: sea_orm::DbErr) {
        self.state().failed.get_or_insert(error);
    }

    /// The error of a failed early write, if one failed.
    pub(crate) fn failure(&self) -> Option<sea_orm::DbErr> {
        self.state().failed.clone()
    }

    /// Leave a before-state for the after-hook of the statement about to run.
    pub(crate) fn put_pending<M: Any>(&self, item_id: String, pending: PendingState) {
        let mut state = self.state();
        state.seq += 1;
        let seq = state.seq;
        state.pending.insert(
            (TypeId::of::<M>(), item_id),
            Pending {
                seq,
                state: pending,
            },
        );
        self.pending_count
            .store(state.pending.len(), Ordering::Release);
    }

    /// Claim the before-state of `item_id` (model type `M`).
    pub(crate) fn take_pending<M: Any>(&self, item_id: &str) -> Option<PendingState> {
        if self.pending_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut state = self.state();
        let found = state
            .pending
            .remove(&(TypeId::of::<M>(), item_id.to_owned()));
        self.pending_count
            .store(state.pending.len(), Ordering::Release);
        found.map(|p| p.state)
    }

    /// The before-states of updates of model type `M` no after-hook claimed, in the order the
    /// statements ran (a delete's state stays: its after-hook may yet come).
    pub(crate) fn take_unconfirmed_updates_of<M: Any>(&self) -> Vec<PendingState> {
        if !self.has_pending() {
            return Vec::new();
        }
        let mut state = self.state();
        let keys: Vec<PendingKey> = state
            .pending
            .iter()
            .filter(|((model, _), p)| {
                *model == TypeId::of::<M>() && matches!(p.state, PendingState::Update(_))
            })
            .map(|(key, _)| key.clone())
            .collect();
        let mut taken: Vec<Pending> = keys
            .iter()
            .filter_map(|key| state.pending.remove(key))
            .collect();
        self.pending_count
            .store(state.pending.len(), Ordering::Release);
        drop(state);
        taken.sort_by_key(|p| p.seq);
        taken.into_iter().map(|p| p.state).collect()
    }

    /// Every before-state no after-hook claimed, in the order the statements ran.
    pub(crate) fn take_unconfirmed(&self) -> Vec<PendingState> {
        let mut state = self.state();
        let mut all: Vec<Pending> = state.pending.drain().map(|(_, p)| p).collect();
        self.pending_count.store(0, Ordering::Release);
        drop(state);
        all.sort_by_key(|p| p.seq);
        all.into_iter().map(|p| p.state).collect()
    }

    fn has_pending(&self) -> bool {
        self.pending_count.load(Ordering::Acquire) != 0
    }
}

/// The innermost frame of this task, if a [`transaction`](crate::transaction) is open in it.
pub(crate) fn current() -> Option<Arc<Frame>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// The frame of this task that records for the connection at `conn`.
///
/// While a savepoint of that transaction is open in this task (a nested `transaction`), a
/// statement sent through the outer handle runs inside the savepoint (one connection): it is
/// recorded there, so that it is discarded if the savepoint rolls back.
pub(crate) fn frame_for(conn: usize) -> Option<Arc<Frame>> {
    CURRENT
        .try_with(|innermost| {
            let mut frame = Some(innermost);
            while let Some(f) = frame {
                if f.conn == conn {
                    let open = innermost_savepoint_of(innermost, f);
                    return Some(Arc::clone(open.unwrap_or(f)));
                }
                frame = f.enclosing.as_ref();
            }
            None
        })
        .ok()
        .flatten()
}

/// The innermost frame, from `innermost` out to `outer`, that is a savepoint of `outer` at any
/// depth. `None` in the common case: `outer` is the innermost frame.
fn innermost_savepoint_of<'a>(
    innermost: &'a Arc<Frame>,
    outer: &Arc<Frame>,
) -> Option<&'a Arc<Frame>> {
    let mut frame = Some(innermost);
    while let Some(f) = frame {
        if Arc::ptr_eq(f, outer) {
            return None;
        }
        let mut parent = f.savepoint_of.as_ref();
        while let Some(p) = parent {
            if Arc::ptr_eq(p, outer) {
                return Some(f);
            }
            parent = p.savepoint_of.as_ref();
        }
        frame = f.enclosing.as_ref();
    }
    None
}

/// Whether a before-state may be waiting for this task: in one of its frames, or in the table
/// of writes outside frames. A muted job with nothing waiting skips its hooks entirely.
pub(crate) fn may_have_pending() -> bool {
    if LOOSE_COUNT.load(Ordering::Acquire) != 0 {
        return true;
    }
    CURRENT
        .try_with(|innermost| {
            let mut frame = Some(innermost);
            while let Some(f) = frame {
                if f.has_pending() {
                    return true;
                }
                frame = f.enclosing.as_ref();
            }
            false
        })
        .unwrap_or(false)
}

/// What a statement's before-hook leaves for its after-hook.
pub(crate) enum PendingState {
    /// An update: its before-state, and how to settle it if `after_save` never comes.
    Update(Box<dyn UnconfirmedUpdate>),
    /// A delete: the row as `before_delete` read it (absent: nothing to delete, nothing logged).
    Delete(Box<dyn Any + Send>),
}

struct Pending {
    seq: u64,
    state: PendingState,
}

/// An update's before-state, typed by the hooks (`crate::write::before::UpdateBefore`) and stored
/// here without its type.
pub(crate) trait UnconfirmedUpdate: Send {
    /// The typed state, for the hook that claims it.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
    /// The statement that reads the row as it is now, to settle an update SeaORM never
    /// confirmed (`update_without_returning`, or a statement that failed and was handled);
    /// `None` when an unconfirmed update is known to have changed nothing.
    fn settle_read(&self, backend: DbBackend) -> Option<Statement>;
    /// The entry of an unconfirmed update, from the row as it is now: only the columns the
    /// update set and the database shows changed. `None` when nothing provably changed.
    fn settle(self: Box<Self>, now: Option<QueryResult>) -> Option<ActivityEntry>;
}

// ---------------------------------------------------------------------------------------------
// Outside any frame.

/// Unclaimed states older than this are dropped (a statement that failed, outside a frame).
const LOOSE_TTL: Duration = Duration::from_secs(300);

type LooseKey = (TypeId, String, TaskKey);

static LOOSE_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Map size at which stale states are swept; doubles when a sweep frees little, so sweeping
/// stays amortized O(1) per insert.
static SWEEP_AT: AtomicUsize = AtomicUsize::new(1024);

fn loose() -> MutexGuard<'static, HashMap<LooseKey, (PendingState, Instant)>> {
    static LOOSE: OnceLock<Mutex<HashMap<LooseKey, (PendingState, Instant)>>> = OnceLock::new();
    LOOSE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Leave a before-state of a write outside any frame, for this task's after-hook.
pub(crate) fn put_loose<M: Any>(item_id: String, state: PendingState) {
    let mut map = loose();
    if map.len() >= SWEEP_AT.load(Ordering::Relaxed) {
        map.retain(|_, (_, at)| at.elapsed() < LOOSE_TTL);
        SWEEP_AT.store((map.len() * 2).max(1024), Ordering::Relaxed);
    }
    map.insert(
        (TypeId::of::<M>(), item_id, TaskKey::current()),
        (state, Instant::now()),
    );
    LOOSE_COUNT.store(map.len(), Ordering::Release);
}

/// Claim this task's before-state of a write outside any frame.
pub(crate) fn take_loose<M: Any>(item_id: &str) -> Option<PendingState> {
    if LOOSE_COUNT.load(Ordering::Acquire) == 0 {
        return None;
    }
    let mut map = loose();
    let found = map.remove(&(TypeId::of::<M>(), item_id.to_owned(), TaskKey::current()));
    LOOSE_COUNT.store(map.len(), Ordering::Release);
    found.map(|(state, _)| state)
}

// ---------------------------------------------------------------------------------------------
// `Tracked`'s before-state, handed to the `before_save` of the update it wraps.

struct Supplied {
    type_id: TypeId,
    item_id: String,
    before: Box<dyn Any + Send>,
}

tokio::task_local! {
    static SUPPLIED: RefCell<Option<Supplied>>;
}

/// Run `fut` (one `update`) with `before` as the before-state of model `M`'s `item_id`.
pub(crate) async fn with_supplied<M: Any + Send, F: Future>(
    item_id: String,
    before: M,
    fut: F,
) -> F::Output {
    let supplied = Supplied {
        type_id: TypeId::of::<M>(),
        item_id,
        before: Box::new(before),
    };
    SUPPLIED.scope(RefCell::new(Some(supplied)), fut).await
}

/// The before-state `Tracked` supplied for this update of `M`'s `item_id`, if any.
pub(crate) fn take_supplied<M: Any>(item_id: &str) -> Option<M> {
    SUPPLIED
        .try_with(|cell| {
            let mut slot = cell.borrow_mut();
            let matches = slot
                .as_ref()
                .is_some_and(|s| s.type_id == TypeId::of::<M>() && s.item_id == item_id);
            if matches { slot.take() } else { None }
        })
        .ok()
        .flatten()
        .and_then(|s| s.before.downcast::<M>().ok())
        .map(|m| *m)
}

// ---------------------------------------------------------------------------------------------
// Stamping and recording.

/// Stamp `entry` with `context` (the current one if `None`; no context is a system entry).
/// Timestamps keep microseconds, what every backend stores, so a cursor built from a read entry
/// matches the stored row exactly.
///
/// The trace: ids the caller set are kept when well formed and dropped (with a warning)
/// otherwise, never stored half-valid; with the `otel` feature an entry without them takes the
/// current span's, when that span has a valid OpenTelemetry context.
pub(crate) fn stamp(entry: &mut ActivityEntry, context: Option<&ActivityContext>) {
    entry.created_at = entry.created_at.trunc_subsecs(6);
    match context {
        Some(ctx) => entry.apply_context(ctx),
        None => match ActivityContext::current() {
            Some(ctx) => entry.apply_context(&ctx),
            None => entry.apply_context(&ActivityContext::system()),
        },
    }
    stamp_trace(entry);
}

fn stamp_trace(entry: &mut ActivityEntry) {
    use activity_core::trace::{is_span_id, is_trace_id};
    match (entry.trace_id.as_deref(), entry.span_id.as_deref()) {
        (None, None) => {
            #[cfg(feature = "otel")]
            activity_core::trace::record_current(entry);
        }
        (Some(trace), Some(span)) if is_trace_id(trace) && is_span_id(span) => {}
        _ => {
            tracing::warn!(
                entry_id = %entry.id,
                "activity entry: trace_id/span_id set by the caller are not a W3C trace and span id; dropped"
            );
            entry.trace_id = None;
            entry.span_id = None;
        }
    }
}
