//! The lifecycle of every copy: one owner for the log's rows and every copy the library makes
//! of them, so erasure and retention reach all of them, not only the table.
//!
//! | copy | erasure ([`Lifecycle::erase_user`]) | retention |
//! |---|---|---|
//! | `activity_log` rows | rewritten by [`anonymize_user`](super::erasure::anonymize_user)'s rules | [`prune`](super::retention::prune) |
//! | outbox | nothing to do: a row lists entry ids, and the relay reads the entries from the log when it publishes, so an entry not yet relayed goes out erased | rows are deleted once relayed |
//! | archives ([`archive_then_prune`](super::archive::archive_then_prune)) | each archive in the configured directories is re-encoded and re-manifested, the old files replaced atomically | kept by the operator (their purpose) |
//! | background queue ([`BackgroundLogger`](super::background::BackgroundLogger)) | entries still queued are written after the erasure: reported, run again once drained | – |
//! | the stream, notification store (crate `activity-nats`) | [`CopyEraser`]s the application adds | the stream's `max_age` follows [`ActivityConfig::with_retention`](crate::ActivityConfig::with_retention); delivery marks are pruned |
//!
//! Every step reports what it changed and what it could not reach, and why
//! ([`ErasureReport`]): an erasure is never silently partial.

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::errors::Error;
use crate::ops::archive;
use crate::ops::erasure::{self, ErasureRequest, ErasureTenant};

/// What erasing one user did to one copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyReport {
    /// Which copy: `activity_log`, `archive <path>`, `stream <name>`, …
    pub copy: String,
    /// Entries (or rows, or messages) changed or removed.
    pub changed: u64,
    /// What could not be reached, and why; empty when the copy is fully erased.
    pub unreachable: Vec<String>,
}

impl CopyReport {
    /// A report for `copy`.
    pub fn new(copy: impl Into<String>) -> Self {
        CopyReport {
            copy: copy.into(),
            ..Default::default()
        }
    }

    /// A copy that could not be reached at all.
    pub fn failed(copy: impl Into<String>, why: impl ToString) -> Self {
        CopyReport {
            copy: copy.into(),
            changed: 0,
            unreachable: vec![why.to_string()],
        }
    }
}

/// What [`Lifecycle::erase_user`] did, copy by copy.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ErasureReport {
    /// The pseudonym that now stands for the user everywhere.
    pub pseudonym: String,
    /// The log entries rewritten (the `erased` list other consumers need).
    pub entry_ids: Vec<uuid::Uuid>,
    /// One report per copy, the log's rows first.
    pub copies: Vec<CopyReport>,
}

impl ErasureReport {
    /// Whether every copy was reached: nothing is left to do.
    pub fn is_complete(&self) -> bool {
        self.copies.iter().all(|c| c.unreachable.is_empty())
    }

    /// What could not be reached, as `copy: why` lines.
    pub fn unreachable(&self) -> Vec<String> {
        self.copies
            .iter()
            .flat_map(|c| {
                c.unreachable
                    .iter()
                    .map(move |why| format!("{}: {why}", c.copy))
            })
            .collect()
    }
}

/// A copy of the log that lives outside this crate (the stream, the notification store, an
/// application's own search index): it applies an erasure the way the log did.
#[async_trait::async_trait]
pub trait CopyEraser: Send + Sync + Debug {
    /// Rewrite or remove this copy's entries by or about `request.user_id` (the rules:
    /// [`ErasureRequest::erase`]), and anything else of the user it keeps. Never fails: what it
    /// could not reach goes in the report.
    async fn erase(&self, request: &ErasureRequest) -> CopyReport;
}

/// The one owner of every copy: configure it once with the archive directories and the
/// copies outside this crate, then call [`erase_user`](Self::erase_user).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), activity_seaorm::Error> {
/// use activity_seaorm::ActivityConfig;
/// use activity_seaorm::ops::lifecycle::Lifecycle;
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// activity_seaorm::schema::create_table(&db).await?;
/// let dir = std::env::temp_dir().join(format!("lifecycle-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let lifecycle = Lifecycle::new().with_archives(&dir);
/// let config = ActivityConfig::new().with_erasure_key([7u8; 32]);
/// let report = config.scope(lifecycle.erase_user(&db, "42")).await?;
/// assert!(report.is_complete(), "{:?}", report.unreachable());
/// assert!(report.pseudonym.starts_with("anon-"));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Lifecycle {
    archive_dirs: Vec<PathBuf>,
    copies: Vec<Arc<dyn CopyEraser>>,
}

impl Lifecycle {
    /// The log's rows only, until archives and copies are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// A directory where [`archive_then_prune`](super::archive::archive_then_prune) writes
    /// archives: every archive in it (`*.manifest.json`) is erased too. A missing directory
    /// is reported, never skipped silently.
    pub fn with_archives(mut self, dir: impl Into<PathBuf>) -> Self {
        self.archive_dirs.push(dir.into());
        self
    }

    /// A copy outside this crate (the stream, the notification store, …).
    pub fn with_copy(mut self, copy: impl CopyEraser + 'static) -> Self {
        self.copies.push(Arc::new(copy));
        self
    }

    /// Erase `user_id` from the log and every copy: the rows first (one transaction, as
    /// [`anonymize_user`](super::erasure::anonymize_user)), then each archive, then each copy
    /// given, all with the same pseudonym and known values (a copy that knows the user by a
    /// name the log no longer holds erases it too).
    ///
    /// Fails only when the rows cannot be erased (no erasure key, the database refuses):
    /// then no copy is touched. A copy that cannot be reached is reported in the
    /// [`ErasureReport`], and the others are still erased; run it again once the cause is gone
    /// (it is idempotent: the same pseudonym, and nothing left to rewrite).
    ///
    /// A connection, not a transaction: the copies follow the log once its rewrite is
    /// committed (a relay, the stream and the archives must see it), so each step runs its own
    /// transaction.
    pub async fn erase_user(
        &self,
        db: &DatabaseConnection,
        user_id: &str,
    ) -> Result<ErasureReport, Error> {
        self.erase(db, user_id, None).await
    }

    /// [`erase_user`](Self::erase_user) inside one tenant: the user's entries of `tenant`,
    /// in the log and in every copy, and their subscriptions and preferences there; what they
    /// did in other tenants stays as it is. (The pseudonym is the same in every tenant: it is
    /// derived from the user id under the erasure key.)
    pub async fn erase_user_in(
        &self,
        db: &DatabaseConnection,
        user_id: &str,
        tenant: ErasureTenant,
    ) -> Result<ErasureReport, Error> {
        self.erase(db, user_id, Some(tenant)).await
    }

    async fn erase(
        &self,
        db: &DatabaseConnection,
        user_id: &str,
        tenant: Option<ErasureTenant>,
    ) -> Result<ErasureReport, Error> {
        let mut request = erasure::anonymize(db, user_id, tenant.as_ref()).await?;
        let mut copies = vec![CopyReport {
            copy: "activity_log".into(),
            changed: request.entry_ids.len() as u64,
            unreachable: Vec::new(),
        }];
        // A relay batch that loaded the user's entries before the log was rewritten publishes
        // them as they were: wait for it, so the stream read below holds them.
        if let Err(e) = crate::outbox::wait_for_claimed(db).await {
            copies.push(CopyReport {
                copy: "outbox".into(),
                changed: 0,
                unreachable: vec![format!(
                    "a relay batch in flight did not finish ({e}): messages it publishes may \
                     hold the user as they were; run the erasure again once the relay is idle"
                )],
            });
        }
        let queued = super::background::queued_now();
        if queued > 0 {
            copies.push(CopyReport {
                copy: "background queue".into(),
                changed: 0,
                unreachable: vec![format!(
                    "{queued} entries were queued in a BackgroundLogger and are written after \
                     this erasure; run it again once the queue is drained"
                )],
            });
        }
        let known = request.known_values.clone();
        for dir in &self.archive_dirs {
            let (reports, learned) = erase_archives(dir.clone(), request.clone()).await;
            request = learned;
            copies.extend(reports);
        }
        // Names only the archives still held (the user's, before a rename): the log's entries
        // about the user may hold them too.
        if request.known_values.len() > known.len() {
            let relearned = erasure::rewrite_learned(db, &mut request, &known).await?;
            if let Some(log) = copies.first_mut() {
                log.changed += relearned;
            }
        }
        for copy in &self.copies {
            copies.push(copy.erase(&request).await);
        }
        let report = ErasureReport {
            pseudonym: request.pseudonym,
            entry_ids: request.entry_ids,
            copies,
        };
        if report.is_complete() {
            tracing::info!(
                entries = report.entry_ids.len(),
                "erased a user from every copy"
            );
        } else {
            tracing::warn!(unreachable = ?report.unreachable(), "erasure incomplete: run it again");
        }
        Ok(report)
    }
}

/// Every archive in `dir`, erased on a blocking thread (file I/O and SHA-256 stay off the async
/// runtime). Returns the reports and the request with what the archives taught it.
async fn erase_archives(
    dir: PathBuf,
    request: ErasureRequest,
) -> (Vec<CopyReport>, ErasureRequest) {
    let fallback = request.clone();
    let shown = dir.display().to_string();
    let work = tokio::task::spawn_blocking(move || {
        let mut request = request;
        let manifests = match archive::manifests_in(&dir) {
            Ok(found) => found,
            Err(e) => {
                let report = CopyReport::failed(format!("archives in {}", dir.display()), e);
                return (vec![report], request);
            }
        };
        let mut reports = Vec::new();
        for manifest in manifests {
            let mut report = CopyReport::new(format!("archive {}", manifest.display()));
            match archive::erase_archive(&manifest, &mut request) {
                Ok(changed) => report.changed = changed,
                Err(e) => report.unreachable.push(e.to_string()),
            }
            reports.push(report);
        }
        (reports, request)
    });
    match work.await {
        Ok(done) => done,
        Err(e) => (
            vec![CopyReport::failed(format!("archives in {shown}"), e)],
            fallback,
        ),
    }
}
