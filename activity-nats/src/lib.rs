//! Committed activity entries, relayed from `activity-seaorm`'s outbox to NATS JetStream
//! exactly once and in commit order per item.
//!
//! Turn the outbox on in the writers (`ActivityConfig::with_outbox(true)`), then run a
//! [`Relay`] — as a task in the application or as its own process, one or several:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let db = sea_orm::Database::connect("postgres://localhost/app").await?;
//! let nats = async_nats::connect("nats://127.0.0.1:4222").await?;
//! let relay = activity_nats::Relay::new(db, nats);
//! relay.ensure_stream().await?;
//! relay.run_until(async { tokio::signal::ctrl_c().await.ok(); }).await;
//! # Ok(()) }
//! ```
//!
//! Each entry is published to `activity.<tenant>.<scope>.<activity>` ([`subject::subject`]) with
//! its JSON as payload and headers `Nats-Msg-Id` (the entry id: JetStream drops a republished
//! entry as a duplicate), `Activity-Correlation-Id` and `Activity-Tenant`.
#![deny(missing_docs)]

mod alerts;
pub mod erasure;
mod error;
pub mod notify;
mod relay;
pub mod seal;
pub mod subject;

pub use alerts::{StreamAlerts, UnsupportedRule};
pub use error::{BoxError, Error};
pub use relay::{Relay, RelayConfig, RelayStats, Step};
