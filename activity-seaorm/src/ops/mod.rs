//! Operations on the stored log, one module each: [`export`] streams entries out as CSV or
//! JSON lines, [`retention`] prunes old entries, [`erasure`] answers erasure requests,
//! [`archive`] archives old entries to verified files before deleting them, [`report`] counts
//! entries by group, [`background`] logs from background work through a bounded queue,
//! [`alerts`] evaluates alert rules.

mod alerts;
mod archive;
mod background;
mod erasure;
mod export;
mod report;
mod retention;

pub use alerts::{AlertEvaluator, AlertGroup, AlertHandler, AlertRule, Breach};
pub use archive::{
    ARCHIVE_DELETE_BATCH, ArchiveManifest, ArchiveOptions, ArchiveOutcome, ArchiveStep,
    MANIFEST_VERSION, StepHook, archive_then_prune, verify_archive,
};
pub use background::{
    BACKGROUND_BATCH, BACKGROUND_CAPACITY, BACKGROUND_RETRIES, BackgroundConfig, BackgroundError,
    BackgroundLogger, BackgroundStats, Overflow, Queued,
};
pub use erasure::{
    ERASURE_ACTIVITY, ERASURE_BATCH, ERASURE_SCOPE, MIN_ERASURE_KEY, anonymize_user, pseudonym,
};
pub use export::{CSV_COLUMNS, export_csv, export_jsonl};
pub use report::{MAX_REPORT_ROWS, ReportDimension, ReportRow, activity_report};
pub use retention::{PRUNE_BATCH, prune};
