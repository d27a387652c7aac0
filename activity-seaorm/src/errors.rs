//! The error of the read path and operations (queries, export, retention, erasure).

use activity_core::ActivityError;
use sea_orm::DbErr;

/// Why a read, export, prune or erasure failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The query was invalid (page size, cursor, detail path...).
    #[error(transparent)]
    Activity(#[from] ActivityError),
    /// The database failed.
    #[error("activity log database error: {0}")]
    Db(#[from] DbErr),
    /// Writing an export failed.
    #[error("activity log export failed: {0}")]
    Io(#[from] std::io::Error),
    /// Encoding CSV failed.
    #[cfg(feature = "ops")]
    #[error("activity log CSV export failed: {0}")]
    Csv(#[from] csv::Error),
    /// Encoding JSON failed.
    #[error("activity log JSON export failed: {0}")]
    Json(#[from] serde_json::Error),
    /// Erasure needs a secret to derive pseudonyms from, and none (or one too short to be a
    /// secret) is configured; nothing was changed.
    #[error(
        "activity log erasure needs an erasure key of at least {min} bytes \
         (ActivityConfig::with_erasure_key): {why}; nothing was changed"
    )]
    ErasureKey {
        /// What is wrong with the configured key.
        why: &'static str,
        /// The shortest key accepted, in bytes.
        min: usize,
    },
    /// An archive on disk is missing, damaged, or not the one asked for: the run stopped before
    /// deleting anything not listed in a verified archive.
    #[error("activity log archive {path} cannot be used: {why}; nothing unarchived was deleted")]
    Archive {
        /// The file at fault (data file or manifest).
        path: std::path::PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

impl Error {
    /// Whether the caller's query was at fault (a 400, not a 500).
    pub fn is_invalid_query(&self) -> bool {
        matches!(self, Error::Activity(ActivityError::InvalidQuery(_)))
    }
}
