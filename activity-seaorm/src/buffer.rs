//! Where entries wait for COMMIT, and where before-states wait for `after_save`.
//!
//! Frames: one per open [`transaction`](crate::transaction) (outermost or savepoint), keyed by
//! the transaction's address. A hook whose connection is a frame's transaction buffers into it;
//! any other connection writes at once. A savepoint's frame merges into its parent on release
//! and is dropped on rollback.
//!
//! Pending updates: `before_save` leaves the before-state (read, or given by `Tracked`) for
//! `after_save`, keyed by model type, item id and task.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use activity_core::ActivityEntry;

use crate::keys::TaskKey;

#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) correlation_id: String,
    pub(crate) entries: Vec<ActivityEntry>,
}

static OPEN_FRAMES: AtomicUsize = AtomicUsize::new(0);

/// Keyed by transaction address (not caller-chosen, so a fast hash is safe).
type Frames = foldhash::HashMap<usize, Frame>;

fn frames() -> MutexGuard<'static, Frames> {
    static FRAMES: OnceLock<Mutex<Frames>> = OnceLock::new();
    FRAMES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Open a frame for the transaction at `key`; the guard closes it however the closure ends
/// (return, error, panic or cancellation).
pub(crate) fn open(key: usize, correlation_id: String) -> FrameGuard {
    let mut frames = frames();
    frames.insert(
        key,
        Frame {
            correlation_id,
            entries: Vec::new(),
        },
    );
    OPEN_FRAMES.store(frames.len(), Ordering::Release);
    FrameGuard { key }
}

/// Closes its frame on drop, discarding what it still holds.
#[derive(Debug)]
pub(crate) struct FrameGuard {
    key: usize,
}

impl FrameGuard {
    /// Close the frame and take its entries.
    pub(crate) fn take(self) -> Vec<ActivityEntry> {
        let mut frames = frames();
        let frame = frames.remove(&self.key);
        OPEN_FRAMES.store(frames.len(), Ordering::Release);
        drop(frames);
        std::mem::forget(self);
        frame.map(|f| f.entries).unwrap_or_default()
    }
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        let mut frames = frames();
        frames.remove(&self.key);
        OPEN_FRAMES.store(frames.len(), Ordering::Release);
    }
}

/// The correlation id of the frame at `key`, if one is open.
pub(crate) fn correlation_id(key: usize) -> Option<String> {
    if OPEN_FRAMES.load(Ordering::Acquire) == 0 {
        return None;
    }
    frames().get(&key).map(|f| f.correlation_id.clone())
}

/// Whether a helper transaction's frame is open at `key`.
pub(crate) fn is_open(key: usize) -> bool {
    OPEN_FRAMES.load(Ordering::Acquire) != 0 && frames().contains_key(&key)
}

/// Buffer `entry` into the frame at `key`; hands it back if there is no such frame.
pub(crate) fn push(key: usize, mut entry: ActivityEntry) -> Option<ActivityEntry> {
    if OPEN_FRAMES.load(Ordering::Acquire) == 0 {
        return Some(entry);
    }
    match frames().get_mut(&key) {
        Some(frame) => {
            entry.correlation_id = Some(frame.correlation_id.clone());
            frame.entries.push(entry);
            None
        }
        None => Some(entry),
    }
}

/// Append a released savepoint's entries to its parent frame. Returns them if the parent is gone.
pub(crate) fn merge_into(
    parent: usize,
    entries: Vec<ActivityEntry>,
) -> Result<(), Vec<ActivityEntry>> {
    match frames().get_mut(&parent) {
        Some(frame) => {
            frame.entries.extend(entries);
            Ok(())
        }
        None => Err(entries),
    }
}

type PendingKey = (TypeId, String, TaskKey);

/// [`Pending::conn`] of a before-state supplied by `Tracked`, not yet claimed by `before_save`.
pub(crate) const SUPPLIED: usize = 0;

/// A before-state waiting for its `after_save`.
pub(crate) struct Pending {
    /// The connection the update runs on ([`SUPPLIED`] until `before_save` claims it).
    pub(crate) conn: usize,
    pub(crate) before: Box<dyn Any + Send>,
    /// Builds the entry from the before-state and the values written, for
    /// `update_without_returning`, which never reaches `after_save`: run when its transaction
    /// flushes with the state still unclaimed.
    pub(crate) predict: Predict,
    pub(crate) at: Instant,
}

/// See [`Pending::predict`].
pub(crate) type Predict = Box<dyn FnOnce(Box<dyn Any + Send>) -> Option<ActivityEntry> + Send>;

/// Unclaimed pending states older than this are dropped (an update that failed).
const PENDING_TTL: Duration = Duration::from_secs(300);

static PENDING_COUNT: AtomicUsize = AtomicUsize::new(0);

fn pending() -> MutexGuard<'static, HashMap<PendingKey, Pending>> {
    static PENDING: OnceLock<Mutex<HashMap<PendingKey, Pending>>> = OnceLock::new();
    PENDING
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Map size at which stale states are swept; doubles when a sweep frees little, so sweeping
/// stays amortized O(1) per insert.
static SWEEP_AT: AtomicUsize = AtomicUsize::new(1024);

pub(crate) fn put_pending<M: Any>(item_id: String, value: Pending) {
    let mut map = pending();
    if map.len() >= SWEEP_AT.load(Ordering::Relaxed) {
        map.retain(|_, p| p.at.elapsed() < PENDING_TTL);
        SWEEP_AT.store((map.len() * 2).max(1024), Ordering::Relaxed);
    }
    map.insert((TypeId::of::<M>(), item_id, TaskKey::current()), value);
    PENDING_COUNT.store(map.len(), Ordering::Release);
}

/// Whether any before-state waits anywhere (one atomic load).
pub(crate) fn any_pending() -> bool {
    PENDING_COUNT.load(Ordering::Acquire) != 0
}

/// Leave a `Tracked` before-state, unless an earlier update of the row in this task still waits
/// to be settled: then `before_save` must read the row anyway, and the tracked original may be
/// older than that update.
pub(crate) fn supply_pending<M: Any>(item_id: String, value: Pending) {
    let key = (TypeId::of::<M>(), item_id, TaskKey::current());
    let unsettled = pending().get(&key).is_some_and(|p| p.conn != SUPPLIED);
    if !unsettled {
        put_pending::<M>(key.1, value);
    }
}

pub(crate) fn take_pending<M: Any>(item_id: &str) -> Option<Pending> {
    if PENDING_COUNT.load(Ordering::Acquire) == 0 {
        return None;
    }
    let mut map = pending();
    let found = map.remove(&(TypeId::of::<M>(), item_id.to_owned(), TaskKey::current()));
    PENDING_COUNT.store(map.len(), Ordering::Release);
    found
}

/// Take the pending states of updates on `conn` that never reached `after_save`.
pub(crate) fn take_unclaimed(conn: usize) -> Vec<Pending> {
    if PENDING_COUNT.load(Ordering::Acquire) == 0 {
        return Vec::new();
    }
    let mut map = pending();
    let keys: Vec<PendingKey> = map
        .iter()
        .filter(|(_, p)| p.conn == conn)
        .map(|(k, _)| k.clone())
        .collect();
    let out = keys
        .into_iter()
        .filter_map(|k| map.remove(&k))
        .collect::<Vec<Pending>>();
    PENDING_COUNT.store(map.len(), Ordering::Release);
    out
}

/// Forget pending states of `conn` (its transaction rolled back).
pub(crate) fn discard_unclaimed(conn: usize) {
    drop(take_unclaimed(conn));
}
