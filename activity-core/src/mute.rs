//! Skipping activity logging for bulk jobs, per task.
//!
//! Muting is keyed by the current tokio task (or, outside a task, the current thread), so it
//! works without an [`ActivityContext`](crate::ActivityContext) scope, follows a task across
//! worker threads, and never leaks into other tasks. Nested mutes restore the outer state.
//! When nothing is muted anywhere, checking costs one atomic load.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum TaskKey {
    Task(tokio::task::Id),
    Thread(std::thread::ThreadId),
}

impl TaskKey {
    fn current() -> Self {
        tokio::task::try_id().map_or_else(|| Self::Thread(std::thread::current().id()), Self::Task)
    }
}

/// What is muted for one task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct MuteState {
    all: bool,
    scopes: Vec<String>,
}

impl MuteState {
    fn merged(&self, other: &MuteState) -> MuteState {
        let mut scopes = self.scopes.clone();
        scopes.extend(
            other
                .scopes
                .iter()
                .filter(|s| !self.scopes.contains(s))
                .cloned(),
        );
        MuteState {
            all: self.all || other.all,
            scopes,
        }
    }

    fn mutes(&self, scope: &str) -> bool {
        self.all || self.scopes.iter().any(|s| s == scope)
    }
}

static MUTED_TASKS: AtomicUsize = AtomicUsize::new(0);

fn table() -> MutexGuard<'static, HashMap<TaskKey, MuteState>> {
    static TABLE: OnceLock<Mutex<HashMap<TaskKey, MuteState>>> = OnceLock::new();
    TABLE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Put `state` for `key` (or remove it), returning the previous state.
fn replace(key: TaskKey, state: Option<MuteState>) -> Option<MuteState> {
    let mut table = table();
    let previous = match state {
        Some(s) => table.insert(key, s),
        None => table.remove(&key),
    };
    MUTED_TASKS.store(table.len(), Ordering::Release);
    previous
}

fn push(key: TaskKey, add: &MuteState) -> Option<MuteState> {
    let mut table = table();
    let previous = table.get(&key).cloned();
    let next = previous
        .as_ref()
        .map_or_else(|| add.clone(), |p| p.merged(add));
    table.insert(key, next);
    MUTED_TASKS.store(table.len(), Ordering::Release);
    previous
}

/// Whether activity for `scope` is muted in the current task.
pub fn is_muted(scope: &str) -> bool {
    if MUTED_TASKS.load(Ordering::Acquire) == 0 {
        return false;
    }
    table()
        .get(&TaskKey::current())
        .is_some_and(|s| s.mutes(scope))
}

/// Restores the outer mute state when dropped. `Send`: hold it across `.await`.
#[must_use = "logging is unmuted as soon as the guard is dropped"]
#[derive(Debug)]
pub struct MuteGuard {
    key: TaskKey,
    previous: Option<MuteState>,
}

impl Drop for MuteGuard {
    fn drop(&mut self) {
        replace(self.key, self.previous.take());
    }
}

/// Mute every scope in the current task until the guard is dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use activity_core::{is_muted, mute_signals};
/// {
///     let _muted = mute_signals();
///     tokio::task::yield_now().await;
///     assert!(is_muted("FeatureFlag"));
/// }
/// assert!(!is_muted("FeatureFlag"));
/// # }
/// ```
pub fn mute_signals() -> MuteGuard {
    let key = TaskKey::current();
    let previous = push(
        key,
        &MuteState {
            all: true,
            scopes: Vec::new(),
        },
    );
    MuteGuard { key, previous }
}

pin_project_lite::pin_project! {
    /// A future that runs with some scopes muted (see [`mute_signals_in`], [`mute_scopes`]).
    /// Muting applies only while this future is being polled, so a sibling future joined in
    /// the same task is not muted.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless awaited"]
    pub struct Muted<F> {
        #[pin]
        inner: F,
        state: MuteState,
    }
}

impl<F: Future> Future for Muted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let key = TaskKey::current();
        let _restore = MuteGuard {
            key,
            previous: push(key, this.state),
        };
        this.inner.poll(cx)
    }
}

/// Run `fut` with every scope muted.
pub fn mute_signals_in<F: Future>(fut: F) -> Muted<F> {
    Muted {
        inner: fut,
        state: MuteState {
            all: true,
            scopes: Vec::new(),
        },
    }
}

/// Run `fut` with only the given scopes muted.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use activity_core::{is_muted, mute_scopes};
/// let (flag, dash) = mute_scopes(&["FeatureFlag"], async {
///     (is_muted("FeatureFlag"), is_muted("Dashboard"))
/// })
/// .await;
/// assert!(flag && !dash);
/// # }
/// ```
pub fn mute_scopes<F: Future>(scopes: &[&str], fut: F) -> Muted<F> {
    Muted {
        inner: fut,
        state: MuteState {
            all: false,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        },
    }
}
