//! The one error type of the core.

/// Errors raised by the activity log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActivityError {
    /// The store could not write entries.
    #[error("activity log write failed: {0}")]
    Write(String),
    /// The store could not read entries.
    #[error("activity log read failed: {0}")]
    Read(String),
    /// A query was malformed (page size, cursor, path syntax...).
    #[error("invalid activity query: {0}")]
    InvalidQuery(String),
    /// A sealed history, checkpoint or proof is malformed or does not check out.
    #[error("activity log integrity: {0}")]
    Integrity(String),
}
