//! The crate's one error type. Errors of the crates underneath keep their type: a database
//! error as SeaORM's `DbErr`, NATS and JetStream errors (each call has its own type in
//! `async-nats`) boxed as the [`source`](std::error::Error::source), never flattened to text.

/// An error of the application's own code (an `Audience`, a `Channel`), or one of NATS's.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why relaying, notifying or evaluating stream alerts failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database failed (outbox rows, the notification store, a commit).
    #[error("activity stream: database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// The activity log refused an operation (e.g. reading sealed blocks).
    #[error("activity stream: log: {0}")]
    Log(#[from] activity_seaorm::Error),
    /// JetStream did not take or acknowledge a message.
    #[error("activity stream: publish: {0}")]
    Publish(#[source] BoxError),
    /// The stream could not be created, read or updated.
    #[error("activity stream: stream: {0}")]
    Stream(#[source] BoxError),
    /// A JetStream consumer failed.
    #[error("activity stream: consumer: {0}")]
    Consumer(#[source] BoxError),
    /// An entry could not be encoded.
    #[error("activity stream: encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    /// The application's `Audience` failed.
    #[error("notifications: audience: {0}")]
    Audience(#[source] BoxError),
    /// The application's `Channel` failed.
    #[error("notifications: delivery: {0}")]
    Channel(#[source] BoxError),
}

/// A JetStream error, boxed as a source.
pub(crate) fn boxed<E: std::error::Error + Send + Sync + 'static>(error: E) -> BoxError {
    Box::new(error)
}
