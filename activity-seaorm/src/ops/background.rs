//! Fire-and-forget logging from background work: entries go through a bounded queue to a worker
//! task that writes them in batches on its own connection, each with the context captured when
//! it was queued.
//!
//! Why a queue and not `tokio::spawn(log_activity(..))` per entry: memory stays bounded (the
//! queue's capacity), entries are written in multi-row INSERTs, and
//! [`BackgroundLogger::shutdown`] can wait until everything queued is written. Why capture the
//! context at [`BackgroundLogger::log`]: the worker runs in its own task, where the caller's
//! task-local [`ActivityContext`] does not exist.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use activity_core::hooks::prepare_entries;
use activity_core::{ActivityConfig, ActivityContext, ActivityEntry};
use sea_orm::{ConnectionTrait, DbErr, SqlErr, TransactionSession, TransactionTrait};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::write::failure::IdentifierTooLong;
use crate::write::frame::stamp;
use crate::write::{events, sink};

/// Default queue capacity of a [`BackgroundLogger`], in entries.
pub const BACKGROUND_CAPACITY: usize = 1_024;

/// Default largest batch the worker takes from the queue at a time (written in one
/// transaction per run of entries with the same context).
pub const BACKGROUND_BATCH: usize = 100;

/// Default attempts per batch after the first fails ([`BackgroundConfig::retries`]): with the
/// backoff doubling from 100 ms, about 3 s of database trouble is ridden out.
pub const BACKGROUND_RETRIES: u32 = 5;

/// First wait before a retry; it doubles each time, up to 5 s.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What [`BackgroundLogger::log`] does when the queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Wait for room (`send().await`): nothing is lost, and a slow database slows the
    /// producers down. The default.
    #[default]
    Backpressure,
    /// Drop the entry at once, count it ([`BackgroundStats::dropped`]) and warn through
    /// `tracing` (on the first drop and every 1,000th): producers never wait.
    Drop,
}

/// Settings of a [`BackgroundLogger`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackgroundConfig {
    /// Queue capacity in entries (at least 1): the bound on memory.
    pub capacity: usize,
    /// Largest batch per write (at least 1).
    pub batch: usize,
    /// What to do when the queue is full.
    pub overflow: Overflow,
    /// Attempts per batch after a failed write, with a backoff (100 ms, doubling, at most 5 s).
    pub retries: u32,
}

impl Default for BackgroundConfig {
    fn default() -> Self {
        BackgroundConfig {
            capacity: BACKGROUND_CAPACITY,
            batch: BACKGROUND_BATCH,
            overflow: Overflow::Backpressure,
            retries: BACKGROUND_RETRIES,
        }
    }
}

impl BackgroundConfig {
    /// Set the queue capacity.
    pub fn capacity(mut self, entries: usize) -> Self {
        self.capacity = entries.max(1);
        self
    }

    /// Set the largest batch per write.
    pub fn batch(mut self, entries: usize) -> Self {
        self.batch = entries.max(1);
        self
    }

    /// Set the overflow policy.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// Set the attempts per batch after a failed write (0: never retry).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }
}

/// Whether [`BackgroundLogger::log`] queued the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a dropped entry is only counted; check it where losing one matters"]
pub enum Queued {
    /// Queued; the worker will write it.
    Queued,
    /// Not queued: the queue was full under [`Overflow::Drop`], or the logger is shut down.
    /// Counted in [`BackgroundStats::dropped`].
    Dropped,
    /// Not queued because its scope is muted in the calling task (not counted as dropped).
    Muted,
}

/// Counters of a [`BackgroundLogger`], since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackgroundStats {
    /// Entries accepted into the queue.
    pub queued: u64,
    /// Entries handed to the database and written (or dropped by `before_append` or the
    /// write rules, as [`log_activity`](crate::log_activity) would).
    pub written: u64,
    /// Entries not queued: queue full under [`Overflow::Drop`], or logged after shutdown.
    pub dropped: u64,
    /// Entries whose write still failed after every retry, or was refused for good (an
    /// identifier too long); each failure is logged through `tracing`.
    pub failed: u64,
    /// Runs (entries of one context) written again after a failure.
    pub retried: u64,
}

/// Why a [`BackgroundLogger`] could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackgroundError {
    /// [`BackgroundLogger::start`] was called outside a tokio runtime.
    #[error("the background activity logger needs a tokio runtime to spawn its worker")]
    NoRuntime,
    /// The worker task panicked or was cancelled; entries still queued are lost.
    #[error("the background activity logger's worker ended abnormally: {0}")]
    Worker(String),
}

/// Entries queued in any logger of this process and not yet written or failed: an erasure
/// reports them, since any of the erased user's among them are written after it.
static IN_QUEUES: AtomicU64 = AtomicU64::new(0);

/// How many entries are queued in this process's background loggers right now.
pub(crate) fn queued_now() -> u64 {
    IN_QUEUES.load(Ordering::Acquire)
}

fn leave_queue(n: u64) {
    let _ = IN_QUEUES.fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
        Some(q.saturating_sub(n))
    });
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
}

/// What goes through the queue.
enum Msg {
    /// Boxed: an entry with its context is ~1 KB, a shutdown nothing.
    Job(Box<Job>),
    /// Sent by [`BackgroundLogger::shutdown`]: close the queue, write what is in it, stop.
    Shutdown,
}

/// One queued entry and the context of the task that queued it.
struct Job {
    entry: ActivityEntry,
    context: Option<ActivityContext>,
}

#[derive(Debug)]
struct Shared {
    counters: Arc<Counters>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

/// Logs entries from background work without waiting for the database: a bounded queue and one
/// worker task that writes them in batches on the connection given to [`start`](Self::start)
/// (use a pool of its own, not a transaction), under the same rules as
/// [`bulk_log_activity`](crate::bulk_log_activity).
///
/// Clone it freely (clones share the queue). Call [`shutdown`](Self::shutdown) before the
/// process exits: it writes everything queued. Entries are written in queue order, each with
/// the [`ActivityContext`] current where [`log`](Self::log) was called (none: a system entry),
/// under the [`ActivityConfig`] current where `start` was called.
///
/// Each run of queued entries with the same context is written in a transaction of its own, so
/// it is stored whole or not at all, and a failed one is tried again
/// ([`BackgroundConfig::retries`], one backoff from 100 ms shared by the batch's runs): a
/// restarting database, a dropped connection or a busy SQLite file lose nothing. Before a retry,
/// and before giving up, the worker looks for the run's ids: if a COMMIT went through but its
/// answer was lost, the entries count as written, never twice. Stored entries reach
/// `after_append` and [`subscribe`](crate::events::subscribe)rs after their COMMIT (or once found
/// stored), once each, with their context current. What still fails, or is refused for good
/// (an identifier too long, an id already taken), is counted in [`BackgroundStats::failed`] and
/// logged with `tracing`. Under [`FailurePolicy::FailOpen`](crate::FailurePolicy) a failed
/// write is the policy's to drop and count (it does not reach the worker as an error), so it is
/// not retried, and not published.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use activity_seaorm::{ActivityContext, ActivityEntry, Actor};
/// use activity_seaorm::ops::background::{BackgroundConfig, BackgroundLogger};
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// activity_seaorm::schema::create_table(&db).await?;
/// let logger = BackgroundLogger::start(db.clone(), BackgroundConfig::default())?;
/// let ctx = ActivityContext::for_user(Actor::new("42"));
/// let _ = ActivityContext::scope(ctx, logger.log(ActivityEntry::new("Email", "sent"))).await;
/// let stats = logger.shutdown().await?;
/// assert_eq!(stats.written, 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct BackgroundLogger {
    tx: mpsc::Sender<Msg>,
    overflow: Overflow,
    shared: Arc<Shared>,
}

impl BackgroundLogger {
    /// Start the worker task on the current tokio runtime, writing through `db`.
    pub fn start<C>(db: C, config: BackgroundConfig) -> Result<Self, BackgroundError>
    where
        C: ConnectionTrait + TransactionTrait + Send + Sync + 'static,
    {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| BackgroundError::NoRuntime)?;
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let counters = Arc::new(Counters::default());
        let settings = ActivityConfig::with_current(Clone::clone);
        let writer = Writer {
            db,
            retries: config.retries,
            counters: counters.clone(),
        };
        let worker = runtime.spawn(settings.scope(work(writer, rx, config.batch.max(1))));
        Ok(BackgroundLogger {
            tx,
            overflow: config.overflow,
            shared: Arc::new(Shared {
                counters,
                worker: Mutex::new(Some(worker)),
            }),
        })
    }

    /// Queue `entry` with the current task's context. Under [`Overflow::Backpressure`] this
    /// waits while the queue is full; under [`Overflow::Drop`] it never waits. An entry whose
    /// scope is muted in this task is not queued ([`Queued::Muted`]).
    pub async fn log(&self, entry: ActivityEntry) -> Queued {
        if activity_core::is_muted(&entry.scope) {
            return Queued::Muted;
        }
        // The worker stamps the entry in its own task: the span that logged it is this one.
        #[cfg(feature = "otel")]
        let entry = {
            let mut entry = entry;
            activity_core::trace::record_current(&mut entry);
            entry
        };
        let job = Msg::Job(Box::new(Job {
            entry,
            context: ActivityContext::current(),
        }));
        let sent = match self.overflow {
            Overflow::Backpressure => self.tx.send(job).await.is_ok(),
            Overflow::Drop => match self.tx.try_send(job) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.dropped("queue full");
                    return Queued::Dropped;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
        };
        if sent {
            IN_QUEUES.fetch_add(1, Ordering::AcqRel);
            self.shared.counters.queued.fetch_add(1, Ordering::Relaxed);
            Queued::Queued
        } else {
            self.dropped("logger shut down");
            Queued::Dropped
        }
    }

    fn dropped(&self, why: &'static str) {
        let total = self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if total == 1 || total.is_multiple_of(1_000) {
            tracing::warn!(
                dropped_total = total,
                why,
                "background activity entry dropped"
            );
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> BackgroundStats {
        let c = &self.shared.counters;
        BackgroundStats {
            queued: c.queued.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
        }
    }

    /// Stop accepting entries, write everything already queued, and wait for the worker to
    /// finish. Entries logged afterwards (from any clone) are dropped and counted. Calling it
    /// again (or on another clone) does not wait again: it returns the counters as they are.
    pub async fn shutdown(&self) -> Result<BackgroundStats, BackgroundError> {
        // Behind everything already queued (waits for room if the queue is full); fails only
        // if the worker is already gone.
        let _ = self.tx.send(Msg::Shutdown).await;
        let worker = match self.shared.worker.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(worker) = worker {
            worker
                .await
                .map_err(|e| BackgroundError::Worker(e.to_string()))?;
        }
        Ok(self.stats())
    }
}

/// The worker: take up to `batch` messages at a time and write their jobs, until a shutdown
/// message (then close the queue and drain what is in it) or until every logger is dropped.
async fn work<C>(writer: Writer<C>, mut rx: mpsc::Receiver<Msg>, batch: usize)
where
    C: ConnectionTrait + TransactionTrait,
{
    let mut msgs = Vec::with_capacity(batch);
    let mut jobs = Vec::with_capacity(batch);
    let mut closing = false;
    while rx.recv_many(&mut msgs, batch).await > 0 {
        for msg in msgs.drain(..) {
            match msg {
                Msg::Job(job) => jobs.push(*job),
                Msg::Shutdown => closing = true,
            }
        }
        if closing {
            // Refuse new entries; what is already queued is still received below.
            rx.close();
        }
        writer.write(&mut jobs).await;
    }
    tracing::debug!("background activity logger stopped");
}

/// The worker's connection, retry budget and counters.
struct Writer<C> {
    db: C,
    retries: u32,
    counters: Arc<Counters>,
}

/// Entries queued with the same context, written together in one transaction: stamped with
/// that context and passed through `before_append` and the write rules once, before the first
/// attempt, so a retry writes (and a hook sees) exactly the same entries.
struct Run {
    /// Entries handed in, for the counters.
    queued: u64,
    /// Current again when the entries are published: `after_append` sees what the caller's
    /// task would have.
    context: Option<ActivityContext>,
    entries: Vec<ActivityEntry>,
}

impl Run {
    fn prepare(context: Option<ActivityContext>, mut entries: Vec<ActivityEntry>) -> Run {
        let queued = entries.len() as u64;
        let prepare = |entries: &mut Vec<ActivityEntry>| {
            for entry in entries.iter_mut() {
                stamp(entry, context.as_ref());
            }
            ActivityConfig::with_current(|c| prepare_entries(c.hooks(), entries));
            crate::cap::cap_entries(entries);
        };
        // `before_append` hooks may read the current context, as they do in the caller's task.
        Run::in_context(&context, || prepare(&mut entries));
        Run {
            queued,
            context,
            entries,
        }
    }

    fn in_context<R>(context: &Option<ActivityContext>, f: impl FnOnce() -> R) -> R {
        match context.clone() {
            Some(ctx) => ActivityContext::sync_scope(ctx, f),
            None => f(),
        }
    }
}

impl<C> Writer<C>
where
    C: ConnectionTrait + TransactionTrait,
{
    /// Write `jobs` (and empty it): one transaction per run of jobs with the same context. Runs
    /// that fail for a reason that may pass are tried again together, after one shared backoff,
    /// so a batch waits at most ~3 s (the default retries) however many runs it holds.
    async fn write(&self, jobs: &mut Vec<Job>) {
        let mut runs = Vec::new();
        let mut jobs = jobs.drain(..).peekable();
        while let Some(first) = jobs.next() {
            let context = first.context;
            let mut entries = vec![first.entry];
            while let Some(next) = jobs.next_if(|j| j.context == context) {
                entries.push(next.entry);
            }
            runs.push(Run::prepare(context, entries));
        }
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        while !runs.is_empty() {
            let mut again = Vec::new();
            for run in runs {
                let n = run.queued;
                let error = match self.write_run(&run, attempt).await {
                    Ok(written) => {
                        self.done(run, written);
                        continue;
                    }
                    Err(error) => error,
                };
                let permanent = is_permanent(&error, attempt);
                if attempt >= self.retries || permanent {
                    // The last COMMIT's answer may have been lost with its connection: look
                    // before calling entries failed that are in fact stored. (Not after a
                    // permanent failure: an id already taken is stored, by someone else.)
                    if !permanent && self.stored_after_all(&run.entries).await {
                        self.done(run, true);
                        continue;
                    }
                    self.counters.failed.fetch_add(n, Ordering::Relaxed);
                    leave_queue(n);
                    tracing::error!(%error, entries = n, attempt, "background activity write failed");
                } else {
                    tracing::warn!(%error, entries = n, attempt, "background activity write failed; will retry");
                    again.push(run);
                }
            }
            if again.is_empty() {
                break;
            }
            attempt += 1;
            self.counters
                .retried
                .fetch_add(again.len() as u64, Ordering::Relaxed);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            runs = again;
        }
    }

    /// A run is written: count it, and publish its entries if they are stored.
    fn done(&self, run: Run, stored: bool) {
        self.counters
            .written
            .fetch_add(run.queued, Ordering::Relaxed);
        leave_queue(run.queued);
        if stored {
            let Run {
                context, entries, ..
            } = run;
            Run::in_context(&context, || events::publish(entries));
        }
    }

    /// One run in a transaction of its own: stored whole or not at all. `Ok(true)`: its entries
    /// are committed (now or by an earlier attempt whose answer was lost), to be published;
    /// `Ok(false)`: nothing to write, or lost under the fail-open policy (counted there).
    ///
    /// Begun here rather than with [`transaction`](crate::transaction), which would give the
    /// entries a correlation id of its own: these keep theirs (or none). And written with the
    /// helper's flush rather than `bulk_log_activity`, which on a transaction it did not open
    /// publishes at the INSERT: these are published only once the COMMIT has succeeded.
    async fn write_run(&self, run: &Run, attempt: u32) -> Result<bool, DbErr> {
        if run.entries.is_empty() {
            return Ok(false);
        }
        // A retry: an earlier attempt's COMMIT may have gone through with its answer lost. Then
        // all its entries are there (one transaction) and must not be written again: under
        // fail-open the second INSERT's unique violation would be taken for a lost write.
        if attempt > 0 && self.all_stored(&run.entries).await? {
            return Ok(true);
        }
        let write = async {
            let txn = self.db.begin().await?;
            // Dropping `txn` on an error rolls it back.
            let written = sink::flush(&txn, &run.entries).await?;
            txn.commit().await?;
            Ok(written)
        };
        match write.await {
            // A retry meets ids already stored that were not there a moment ago: the earlier
            // attempt's COMMIT was still being applied (then its entries are there: the
            // transaction wrote all or none), or something else collides. Only the first
            // counts as written.
            Err(e) if attempt > 0 && is_unique_violation(&e) => {
                if self.all_stored(&run.entries).await? {
                    Ok(true)
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }

    /// Before a run is counted failed: whether it was stored after all. A COMMIT whose answer
    /// was lost may still be finishing on the server when the error reaches the worker, so the
    /// log is looked at a few times over about a second before the run is given up.
    async fn stored_after_all(&self, entries: &[ActivityEntry]) -> bool {
        let mut wait = std::time::Duration::from_millis(50);
        for _ in 0..5 {
            if self.all_stored(entries).await.unwrap_or(false) {
                return true;
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
        self.all_stored(entries).await.unwrap_or(false)
    }

    /// Whether every one of `entries` is in the log (by id): a run's transaction stored all or
    /// none, so anything less is not this run's write (an id taken by another entry).
    async fn all_stored(&self, entries: &[ActivityEntry]) -> Result<bool, DbErr> {
        use crate::activity_log;
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};
        let ids: std::collections::BTreeSet<uuid::Uuid> = entries.iter().map(|e| e.id).collect();
        let ids: Vec<uuid::Uuid> = ids.into_iter().collect();
        let mut found = 0;
        for chunk in ids.chunks(500) {
            found += activity_log::Entity::find()
                .select_only()
                .column(activity_log::Column::Id)
                .filter(activity_log::Column::Id.is_in(chunk.iter().copied()))
                .count(&self.db)
                .await?;
        }
        Ok(found == ids.len() as u64)
    }
}

/// A failure no retry mends: an identifier longer than its column, or (on a first attempt) an
/// id or unique key already taken.
fn is_permanent(error: &DbErr, attempt: u32) -> bool {
    IdentifierTooLong::of(error).is_some() || (attempt == 0 && is_unique_violation(error))
}

fn is_unique_violation(error: &DbErr) -> bool {
    matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}
