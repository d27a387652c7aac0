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
//! notifier.run().await; // runs until the process ends, through outages
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
    Depth, activity_notification_dead_letter, activity_notification_delivery,
    activity_notification_preference, activity_subscription, create_tables, dead_letters,
    migrate_tenant_keys, preference, prune_deliveries, set_preference, subscribe, subscriptions,
    unsubscribe,
};

/// How long one pull request waits for a message when the stream is idle.
const PULL_WAIT: Duration = Duration::from_secs(5);

/// Deliveries recorded per statement during a fan-out: a crash re-notifies at most this many
/// recipients (delivery is at least once), and 1,000 watchers cost ten statements, not 1,000.
const MARKS_PER_WRITE: usize = 100;

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
    /// How long a message may take before JetStream redelivers it (default 30 s). A longer
    /// fan-out keeps its message with progress acks every third of it, so a second notifier
    /// instance never gets it while the first is still notifying.
    pub ack_wait: Duration,
    /// Attempts per entry (default 5): recipients whose channel still fails at the last one
    /// are recorded in `activity_notification_dead_letter` ([`dead_letters`]) and the entry is
    /// done. The others were notified at the first attempt; each retry tries only the ones
    /// not served yet.
    pub max_attempts: u32,
    /// First and longest wait before an entry is tried again for the recipients not served
    /// (default 1 s, 30 s; doubling per attempt).
    pub retry_backoff: (Duration, Duration),
    /// First and longest wait before the consumer is set up again after it failed (NATS
    /// unreachable, the stream not created yet; default 100 ms, 5 s; doubling).
    pub backoff: (Duration, Duration),
}

impl Default for NotifierConfig {
    fn default() -> Self {
        Self {
            stream: "ACTIVITY".to_owned(),
            durable: "activity-notifier".to_owned(),
            filter_subject: "activity.>".to_owned(),
            ack_wait: Duration::from_secs(30),
            max_attempts: 5,
            retry_backoff: (Duration::from_secs(1), Duration::from_secs(30)),
            backoff: (Duration::from_millis(100), Duration::from_secs(5)),
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

    /// How long a message may take before JetStream redelivers it (at least 1 s).
    pub fn with_ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait.max(Duration::from_secs(1));
        self
    }

    /// Attempts per entry before failing recipients are dead-lettered (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// First and longest wait before an entry is retried for its recipients not served.
    pub fn with_retry_backoff(mut self, first: Duration, longest: Duration) -> Self {
        self.retry_backoff = (first, longest.max(first));
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
    /// Deliveries are recorded as they happen (every 100 recipients and at the
    /// end, also when some fail), so a crash re-notifies only the last few, with the same
    /// [`Notification::id`]. An error means some recipients were not served; trying again
    /// tries only them.
    pub async fn handle(&self, entry: ActivityEntry) -> Result<usize, Error> {
        handle(&self.db, &self.router, &self.channel, entry).await
    }

    /// Consume the stream until the process ends, recovering as [`Relay::run`](crate::Relay::run)
    /// does: while NATS or the stream is unavailable it waits (with backoff) and sets the
    /// consumer up again, resuming where the durable consumer stopped. Each message is
    /// acknowledged once its recipients are served, kept alive with progress acks while a long
    /// fan-out runs, and retried for the recipients not served after
    /// [`retry_backoff`](NotifierConfig::retry_backoff), up to
    /// [`max_attempts`](NotifierConfig::max_attempts).
    pub async fn run(&self) {
        let (first, longest) = self.config.backoff;
        let mut backoff = first;
        loop {
            match self.consume(&mut backoff).await {
                Ok(()) => tracing::warn!("notifications: consumer ended; setting it up again"),
                Err(e) => tracing::warn!(error = %e, wait_ms = backoff.as_millis() as u64,
                    "notifications: consumer unavailable; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(longest);
        }
    }

    /// Run until `shutdown` completes (see [`run`](Self::run)). A message in flight is left
    /// unacknowledged and redelivered to the next run, which notifies only the recipients not
    /// recorded as served.
    pub async fn run_until<F: std::future::Future<Output = ()>>(&self, shutdown: F) {
        tokio::select! {
            () = self.run() => {}
            () = shutdown => {}
        }
    }

    /// Set the consumer up and process its messages until it fails; `backoff` is reset once
    /// messages flow.
    async fn consume(&self, backoff: &mut Duration) -> Result<(), Error> {
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
        *backoff = self.config.backoff.0;
        // One message per pull request: a message prefetched into this client's buffer would
        // sit there with its `ack_wait` running while the one before it fans out, and go to a
        // second instance meanwhile, which would notify everyone again. (The continuous pull
        // stream with a batch of one can also stall until its request expires, 30 s, when a
        // message arrives before the request's own answer.)
        loop {
            let mut batch = consumer
                .batch()
                .max_messages(1)
                .expires(PULL_WAIT)
                .messages()
                .await
                .map_err(|e| Error::Consumer(boxed(e)))?;
            while let Some(message) = batch.next().await {
                let message = match message {
                    Ok(message) => message,
                    Err(e) => {
                        tracing::warn!(error = %e, "notifications: consumer hiccup");
                        continue;
                    }
                };
                self.process(&message).await?;
            }
        }
    }

    /// Route, deliver and acknowledge one message.
    async fn process(&self, message: &jetstream::Message) -> Result<(), Error> {
        if crate::subject::is_erasure_traffic(message) {
            // Already notified as it happened; an erasure only rewrote it.
            return message.ack().await.map_err(Error::Consumer);
        }
        let entry: ActivityEntry = match serde_json::from_slice(&message.payload) {
            Ok(entry) => entry,
            Err(e) => {
                // Not an entry: nothing to route, and redelivery would not change that.
                tracing::error!(error = %e, subject = %message.subject, "notifications: not an activity entry; skipped");
                return message.ack().await.map_err(Error::Consumer);
            }
        };
        let attempt = message
            .info()
            .map_or(1, |info| u32::try_from(info.delivered).unwrap_or(u32::MAX));
        let last = attempt >= self.config.max_attempts;
        let entry_id = entry.id;
        let work = fan_out(
            &self.db,
            &self.router,
            &self.channel,
            entry,
            last.then_some(attempt),
        );
        let outcome = with_progress(message, self.config.ack_wait, work).await;
        match outcome {
            Ok(_) => message.ack().await.map_err(Error::Consumer),
            Err(e) => {
                let (first, longest) = self.config.retry_backoff;
                let wait = first
                    .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
                    .min(longest);
                tracing::warn!(%entry_id, attempt, error = %e, wait_ms = wait.as_millis() as u64,
                    "notifications: recipients not served; retried for them alone");
                message
                    .ack_with(jetstream::AckKind::Nak(Some(wait)))
                    .await
                    .map_err(Error::Consumer)
            }
        }
    }
}

/// Run `work`, telling JetStream every third of `ack_wait` that `message` is still being
/// worked on, so a fan-out longer than `ack_wait` is never redelivered to another instance
/// meanwhile.
async fn with_progress<T>(
    message: &jetstream::Message,
    ack_wait: Duration,
    work: impl std::future::Future<Output = T>,
) -> T {
    let mut beat = tokio::time::interval(ack_wait / 3);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: the message was just received.
    beat.tick().await;
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = beat.tick() => {
                if let Err(e) = message.ack_with(jetstream::AckKind::Progress).await {
                    tracing::warn!(error = %e, "notifications: progress ack failed");
                }
            }
        }
    }
}

/// Record deliveries in one statement per [`MARKS_PER_WRITE`] (a crash before it redelivers
/// them, with the same [`Notification::id`]: at least once).
async fn write_marks<C: ConnectionTrait>(
    db: &C,
    marks: Vec<Vec<sea_orm::sea_query::Value>>,
) -> Result<(), Error> {
    for chunk in marks.chunks(MARKS_PER_WRITE) {
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

/// Record the recipients given up on, with their last error.
async fn write_dead_letters<C: ConnectionTrait>(
    db: &C,
    entry: uuid::Uuid,
    attempts: u32,
    failed: &[(String, String)],
) -> Result<(), Error> {
    let now = chrono::Utc::now();
    let rows: Vec<Vec<sea_orm::sea_query::Value>> = failed
        .iter()
        .map(|(recipient, reason)| {
            vec![
                entry.into(),
                recipient.clone().into(),
                i32::try_from(attempts).unwrap_or(i32::MAX).into(),
                reason.clone().into(),
                now.into(),
            ]
        })
        .collect();
    for chunk in rows.chunks(MARKS_PER_WRITE) {
        let statement = store::upsert(
            db.get_database_backend(),
            "activity_notification_dead_letter",
            &["entry_id", "recipient", "attempts", "reason", "created_at"],
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
    fan_out(db, router, channel, entry, None).await
}

/// Deliver `entry` to its recipients not served yet, in the span `activity_notify.route`
/// (naming the entry; with the `otel` feature a child of the span that wrote it).
async fn fan_out<C: ConnectionTrait, A: Audience, Ch: Channel>(
    db: &C,
    router: &Router<A>,
    channel: &Ch,
    entry: ActivityEntry,
    give_up: Option<u32>,
) -> Result<usize, Error> {
    use tracing::Instrument;
    let span = tracing::info_span!(
        "activity_notify.route",
        entry_id = %entry.id,
        scope = %entry.scope,
        activity = %entry.activity,
        notified = tracing::field::Empty
    );
    #[cfg(feature = "otel")]
    activity_seaorm::trace::continue_trace(&span, &entry);
    let notified = route_and_deliver(db, router, channel, entry, give_up)
        .instrument(span.clone())
        .await;
    if let Ok(n) = &notified {
        span.record("notified", n);
    }
    notified
}

/// Deliver `entry` to its recipients not served yet (neither delivered nor given up on). With
/// `give_up` (the attempt number of the last attempt), recipients whose channel fails are
/// dead-lettered and the entry is done; otherwise they fail it, for a retry of them alone.
async fn route_and_deliver<C: ConnectionTrait, A: Audience, Ch: Channel>(
    db: &C,
    router: &Router<A>,
    channel: &Ch,
    entry: ActivityEntry,
    give_up: Option<u32>,
) -> Result<usize, Error> {
    use activity_notification_dead_letter as dead;
    use activity_notification_delivery::{Column, Entity};
    let recipients = router.readers(db, &entry).await?;
    if recipients.is_empty() {
        return Ok(0);
    }
    let mut done: HashSet<String> = Entity::find()
        .filter(Column::EntryId.eq(entry.id))
        .all(db)
        .await?
        .into_iter()
        .map(|row| row.recipient)
        .collect();
    done.extend(
        dead::Entity::find()
            .filter(dead::Column::EntryId.eq(entry.id))
            .all(db)
            .await?
            .into_iter()
            .map(|row| row.recipient),
    );
    let mut marks = Vec::new();
    let mut delivered = 0usize;
    // A recipient whose channel fails (a bounced address) never holds up the others: every
    // recipient is tried, the delivered ones are marked, and the entry fails only for the
    // ones not served, which its retry tries alone.
    let mut failed: Vec<(String, String)> = Vec::new();
    let mut first_error: Option<BoxError> = None;
    for reader in recipients {
        let Some(recipient) = reader.user.clone() else {
            continue;
        };
        if !done.insert(recipient.clone()) {
            continue;
        }
        let notification = Notification {
            id: format!("{}:{recipient}", entry.id),
            recipient,
            entry: Arc::new(reader.view(&entry)),
        };
        match channel.deliver(&notification).await {
            Ok(()) => {
                marks.push(vec![
                    entry.id.into(),
                    notification.recipient.into(),
                    chrono::Utc::now().into(),
                ]);
                delivered += 1;
                if marks.len() >= MARKS_PER_WRITE {
                    write_marks(db, std::mem::take(&mut marks)).await?;
                }
            }
            Err(e) => {
                tracing::warn!(entry_id = %entry.id, recipient = %notification.recipient,
                    error = %e, "notification not delivered");
                failed.push((notification.recipient, e.to_string()));
                first_error.get_or_insert(e);
            }
        }
    }
    write_marks(db, marks).await?;
    let Some(e) = first_error else {
        return Ok(delivered);
    };
    if let Some(attempts) = give_up {
        tracing::error!(entry_id = %entry.id, attempts, recipients = failed.len(),
            "notifications: recipients given up on (dead letters); the others were notified");
        write_dead_letters(db, entry.id, attempts, &failed).await?;
        return Ok(delivered);
    }
    tracing::warn!(entry_id = %entry.id, delivered, not_served = failed.len(),
        "notification fan-out incomplete");
    Err(Error::Channel(e))
}
