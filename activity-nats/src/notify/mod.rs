//! Notifications: a durable JetStream consumer of the activity stream that routes
//! each committed entry to the people who should see it and hands it to the application's
//! delivery [`Channel`], at least once and idempotently per (entry, recipient).
//!
//! ```no_run
//! use activity_nats::notify::{Audience, BoxError, Channel, ItemAudience, Notification, Notifier, Router, Visibility};
//! use activity_seaorm::ActivityEntry;
//!
//! struct Flags; // ownership and visibility live in the application
//!
//! #[async_trait::async_trait]
//! impl Audience for Flags {
//!     async fn item(&self, entry: &ActivityEntry) -> Result<ItemAudience, BoxError> {
//!         Ok(ItemAudience::owned_by("alice").with_visibility(Visibility::Tenant))
//!     }
//!     async fn may_see(&self, user: &str, entry: &ActivityEntry, _: Visibility) -> Result<bool, BoxError> {
//!         Ok(true) // e.g. "is `user` a member of the entry's organization?"
//!     }
//! }
//!
//! struct Log;
//!
//! #[async_trait::async_trait]
//! impl Channel for Log {
//!     async fn deliver(&self, n: &Notification) -> Result<(), BoxError> {
//!         println!("to {}: {} {}", n.recipient, n.entry.activity, n.entry.scope);
//!         Ok(())
//!     }
//! }
//!
//! # async fn run(db: sea_orm::DatabaseConnection, nats: async_nats::Client) -> Result<(), Box<dyn std::error::Error>> {
//! activity_nats::notify::create_tables(&db).await?;
//! let notifier = Notifier::new(db, nats, Router::new(Flags), Log);
//! notifier.run().await?;
//! # Ok(()) }
//! ```

mod prefs;
mod route;
mod store;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use activity_seaorm::ActivityEntry;
use activity_seaorm::feed::FeedEntry;
use async_nats::jetstream::{self, consumer::pull};
use async_trait::async_trait;
use futures::StreamExt;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::error::{Error, boxed};
pub use crate::subject::TenantKey;
pub use prefs::{MUTATIONS, Preference};
pub use route::{Audience, BoxError, ItemAudience, Router, Visibility};
#[cfg(feature = "migration")]
pub use store::migration;
pub use store::{
    Depth, activity_notification_delivery, activity_notification_preference, activity_subscription,
    create_tables, migrate_tenant_keys, preference, prune_deliveries, set_preference, subscribe,
    subscriptions, unsubscribe,
};

/// One entry for one recipient.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Notification {
    /// `<entry id>:<recipient>`: the same for every redelivery, so a channel can drop
    /// duplicates of its own (delivery is at least once).
    pub id: String,
    /// Who receives it.
    pub recipient: String,
    /// What happened, as the recipient may read it ([`FeedEntry`], the fields their
    /// [`Audience::reader`] reveals: by default no IP address, user agent or impersonator).
    pub entry: Arc<FeedEntry>,
}

/// Where notifications go: e-mail, push, a server-sent-events hub.
#[async_trait]
pub trait Channel: Send + Sync {
    /// Deliver one notification. An error leaves it undelivered; it is retried.
    async fn deliver(&self, notification: &Notification) -> Result<(), BoxError>;
}

/// Where the notifier reads.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NotifierConfig {
    /// The stream the relay publishes to (default `ACTIVITY`).
    pub stream: String,
    /// The durable consumer's name (default `activity-notifier`): restarts resume where it
    /// stopped.
    pub durable: String,
    /// Subjects to read (default `activity.>`).
    pub filter_subject: String,
    /// How long a message may take before JetStream redelivers it (default 30 s).
    pub ack_wait: Duration,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        Self {
            stream: "ACTIVITY".to_owned(),
            durable: "activity-notifier".to_owned(),
            filter_subject: "activity.>".to_owned(),
            ack_wait: Duration::from_secs(30),
        }
    }
}

impl NotifierConfig {
    /// The stream.
    pub fn with_stream(mut self, stream: impl Into<String>) -> Self {
        self.stream = stream.into();
        self
    }

    /// The durable consumer's name.
    pub fn with_durable(mut self, durable: impl Into<String>) -> Self {
        self.durable = durable.into();
        self
    }

    /// The subjects to read.
    pub fn with_filter_subject(mut self, subject: impl Into<String>) -> Self {
        self.filter_subject = subject.into();
        self
    }
}

/// Routes committed entries from the stream to recipients through a [`Channel`].
#[derive(Debug)]
pub struct Notifier<A, Ch> {
    db: DatabaseConnection,
    js: jetstream::Context,
    router: Router<A>,
    channel: Ch,
    config: NotifierConfig,
}

impl<A: Audience, Ch: Channel> Notifier<A, Ch> {
    /// A notifier on the default stream and durable consumer.
    pub fn new(
        db: DatabaseConnection,
        client: async_nats::Client,
        router: Router<A>,
        channel: Ch,
    ) -> Self {
        Self::with_config(db, client, router, channel, NotifierConfig::default())
    }

    /// A notifier with `config`.
    pub fn with_config(
        db: DatabaseConnection,
        client: async_nats::Client,
        router: Router<A>,
        channel: Ch,
        config: NotifierConfig,
    ) -> Self {
        Self {
            db,
            js: jetstream::new(client),
            router,
            channel,
            config,
        }
    }

    /// Notify the recipients of `entry` who have not been notified of it yet; how many were.
    /// Delivery marks are written once the entry's recipients are served (also when a delivery
    /// fails part-way), so a crash in between redelivers (at least once) with the same
    /// [`Notification::id`].
    pub async fn handle(&self, entry: ActivityEntry) -> Result<usize, Error> {
        handle(&self.db, &self.router, &self.channel, entry).await
    }

    /// Consume the stream until an unrecoverable consumer error: each message is acknowledged
    /// once its recipients are notified; on a failure it is negatively acknowledged and
    /// JetStream redelivers it after a pause.
    pub async fn run(&self) -> Result<(), Error> {
        let stream = self
            .js
            .get_stream(self.config.stream.as_str())
            .await
            .map_err(|e| Error::Consumer(boxed(e)))?;
        let consumer = stream
            .get_or_create_consumer(
                self.config.durable.as_str(),
                pull::Config {
                    durable_name: Some(self.config.durable.clone()),
                    filter_subject: self.config.filter_subject.clone(),
                    ack_wait: self.config.ack_wait,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| Error::Consumer(boxed(e)))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| Error::Consumer(boxed(e)))?;
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(message) => message,
                Err(e) => {
                    tracing::warn!(error = %e, "notifications: consumer hiccup");
                    continue;
                }
            };
            if crate::subject::is_erasure_traffic(&message) {
                // Already notified as it happened; an erasure only rewrote it.
                message.ack().await.map_err(Error::Consumer)?;
                continue;
            }
            let entry: ActivityEntry = match serde_json::from_slice(&message.payload) {
                Ok(entry) => entry,
                Err(e) => {
                    // Not an entry: nothing to route, and redelivery would not change that.
                    tracing::error!(error = %e, subject = %message.subject, "notifications: not an activity entry; skipped");
                    message.ack().await.map_err(Error::Consumer)?;
                    continue;
                }
            };
            match self.handle(entry).await {
                Ok(_) => message.ack().await.map_err(Error::Consumer)?,
                Err(e) => {
                    tracing::warn!(error = %e, "notifications: will be redelivered");
                    let nak = jetstream::AckKind::Nak(Some(Duration::from_secs(1)));
                    message.ack_with(nak).await.map_err(Error::Consumer)?;
                }
            }
        }
        Ok(())
    }
}

/// Record deliveries in one statement (a crash before it redelivers them, with the same
/// [`Notification::id`]: at least once).
async fn write_marks<C: ConnectionTrait>(
    db: &C,
    marks: Vec<Vec<sea_orm::sea_query::Value>>,
) -> Result<(), Error> {
    for chunk in marks.chunks(1000) {
        let statement = store::upsert(
            db.get_database_backend(),
            "activity_notification_delivery",
            &["entry_id", "recipient", "delivered_at"],
            chunk.to_vec(),
            &["entry_id", "recipient"],
            store::Conflict::Ignore,
        );
        db.execute_raw(statement).await?;
    }
    Ok(())
}

/// Route and deliver one entry (see [`Notifier::handle`]); usable without NATS, e.g. to test
/// routing or to feed entries from another transport.
pub async fn handle<C: ConnectionTrait, A: Audience, Ch: Channel>(
    db: &C,
    router: &Router<A>,
    channel: &Ch,
    entry: ActivityEntry,
) -> Result<usize, Error> {
    use activity_notification_delivery::{Column, Entity};
    let recipients = router.readers(db, &entry).await?;
    if recipients.is_empty() {
        return Ok(0);
    }
    let done: HashSet<String> = Entity::find()
        .filter(Column::EntryId.eq(entry.id))
        .all(db)
        .await?
        .into_iter()
        .map(|row| row.recipient)
        .collect();
    let now = chrono::Utc::now();
    let mut marks = Vec::new();
    // A recipient whose channel fails (a bounced address) never holds up the others: every
    // recipient is tried, the delivered ones are marked, and the entry fails only for the
    // ones not served, which its redelivery retries alone.
    let mut failed: Option<BoxError> = None;
    let mut not_served = 0usize;
    for reader in recipients {
        let Some(recipient) = reader.user.clone() else {
            continue;
        };
        if done.contains(&recipient) {
            continue;
        }
        let notification = Notification {
            id: format!("{}:{recipient}", entry.id),
            recipient,
            entry: Arc::new(reader.view(&entry)),
        };
        match channel.deliver(&notification).await {
            Ok(()) => marks.push(vec![
                entry.id.into(),
                notification.recipient.into(),
                now.into(),
            ]),
            Err(e) => {
                tracing::warn!(entry_id = %entry.id, recipient = %notification.recipient,
                    error = %e, "notification not delivered; retried with the message");
                not_served += 1;
                failed.get_or_insert(e);
            }
        }
    }
    let delivered = marks.len();
    write_marks(db, marks).await?;
    if let Some(e) = failed {
        tracing::warn!(entry_id = %entry.id, delivered, not_served,
            "notification fan-out incomplete");
        return Err(Error::Channel(e));
    }
    Ok(delivered)
}
