//! Skipping activity logging for bulk jobs, per task.
//!
//! Muting is keyed by the current tokio task (or, outside a task, the current thread), so it
//! works without an [`ActivityContext`](crate::ActivityContext) scope, follows a task across
//! worker threads, and never leaks into other tasks. Nested mutes restore the outer state.
//! When nothing is muted anywhere, checking costs one atomic load.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
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

/// What one mute (a guard, or a [`Muted`] future while it is polled) mutes.
#[derive(Debug, PartialEq, Eq)]
struct MuteState {
    all: bool,
    scopes: Vec<String>,
}

impl MuteState {
    fn mutes(&self, scope: &str) -> bool {
        self.all || self.scopes.iter().any(|s| s == scope)
    }
}

/// One active mute of one task. Each layer is removed by its own id, so a layer ending never
/// disturbs the others: nested mutes restore the outer state, guards held across `.await` inside
/// a [`Muted`] future survive its polls, and out-of-order drops are harmless.
#[derive(Debug)]
struct Layer {
    id: u64,
    state: Arc<MuteState>,
}

static MUTED_TASKS: AtomicUsize = AtomicUsize::new(0);
static NEXT_LAYER: AtomicU64 = AtomicU64::new(0);

/// Keys are task and thread ids, which callers do not choose: a fast hash is safe here, and is
/// most of what a check costs while a mute is on.
type Table = foldhash::HashMap<TaskKey, Vec<Layer>>;

fn table() -> MutexGuard<'static, Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Add a layer to `key`'s mutes; returns its id.
fn push(key: TaskKey, state: Arc<MuteState>) -> u64 {
    let id = NEXT_LAYER.fetch_add(1, Ordering::Relaxed);
    let mut table = table();
    table.entry(key).or_default().push(Layer { id, state });
    MUTED_TASKS.store(table.len(), Ordering::Release);
    id
}

/// Remove layer `id` from `key`'s mutes.
fn remove(key: TaskKey, id: u64) {
    let mut table = table();
    if let Some(layers) = table.get_mut(&key) {
        layers.retain(|l| l.id != id);
        if layers.is_empty() {
            table.remove(&key);
        }
    }
    MUTED_TASKS.store(table.len(), Ordering::Release);
}

/// Whether activity for `scope` is muted in the current task.
pub fn is_muted(scope: &str) -> bool {
    if MUTED_TASKS.load(Ordering::Acquire) == 0 {
        return false;
    }
    table()
        .get(&TaskKey::current())
        .is_some_and(|layers| layers.iter().any(|l| l.state.mutes(scope)))
}

/// Ends its mute when dropped, restoring the outer state. `Send`: hold it across `.await`.
#[must_use = "logging is unmuted as soon as the guard is dropped"]
#[derive(Debug)]
pub struct MuteGuard {
    key: TaskKey,
    layer: u64,
}

impl Drop for MuteGuard {
    fn drop(&mut self) {
        remove(self.key, self.layer);
    }
}

fn mute_all() -> Arc<MuteState> {
    Arc::new(MuteState {
        all: true,
        scopes: Vec::new(),
    })
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
    let layer = push(key, mute_all());
    MuteGuard { key, layer }
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
        // `None`: nothing to mute (a carried state of an unmuted task); polls cost nothing.
        state: Option<Arc<MuteState>>,
    }
}

impl<F: Future> Future for Muted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(state) = this.state else {
            return this.inner.poll(cx);
        };
        let key = TaskKey::current();
        let _restore = MuteGuard {
            key,
            layer: push(key, Arc::clone(state)),
        };
        this.inner.poll(cx)
    }
}

/// Run `fut` with every scope muted.
pub fn mute_signals_in<F: Future>(fut: F) -> Muted<F> {
    Muted {
        inner: fut,
        state: Some(mute_all()),
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
        state: Some(Arc::new(MuteState {
            all: false,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        })),
    }
}

/// Run `fut` muted as the current task is now (every guard and muted future around this call),
/// wherever `fut` is polled: how [`ActivityContext::propagate`](crate::ActivityContext::propagate)
/// carries a bulk job's mute into the tasks it spawns.
pub(crate) fn carry<F: Future>(fut: F) -> Muted<F> {
    let state = if MUTED_TASKS.load(Ordering::Acquire) == 0 {
        None
    } else {
        table().get(&TaskKey::current()).and_then(|layers| {
            let all = layers.iter().any(|l| l.state.all);
            let mut scopes: Vec<String> = Vec::new();
            for layer in layers {
                for scope in &layer.state.scopes {
                    if !scopes.contains(scope) {
                        scopes.push(scope.clone());
                    }
                }
            }
            (all || !scopes.is_empty()).then(|| Arc::new(MuteState { all, scopes }))
        })
    };
    Muted { inner: fut, state }
}
