//! The relay: outbox rows in, JetStream messages out, rows deleted only after JetStream
//! acknowledged every message they stand for.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use activity_seaorm::outbox::{self, BatchLimit, Claim, DeadLetter, WaitingRows};
use activity_seaorm::{ActivityConfig, ActivityEntry};
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use sea_orm::{
    DatabaseConnection, DbBackend, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use tracing::Instrument;

use crate::error::{Error, boxed};
use crate::subject::{TenantKey, header_value, subject};

/// SQLite's delete of relayed rows takes the write lock up front (and waits for it).
const IMMEDIATE: TransactionOptions = TransactionOptions {
    isolation_level: None,
    access_mode: None,
    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
};

/// Where and how a [`Relay`] publishes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RelayConfig {
    /// The JetStream stream (default `ACTIVITY`), created by [`Relay::ensure_stream`] if
    /// missing.
    pub stream: String,
    /// The first subject token (default `activity`).
    pub subject_prefix: String,
    /// Outbox rows claimed per batch (default 200; a row holds one transaction's entries).
    pub batch_rows: u32,
    /// Entries per batch (default 2,000): rows are claimed while their entries fit, the first
    /// row always, so a batch of bulk transactions stays bounded in memory.
    pub batch_entries: usize,
    /// Bytes of entry details per batch (default 16 MiB), counted as entries are loaded in
    /// reads of up to 500 (see `activity_seaorm::outbox::BatchLimit`): a batch of large
    /// entries stays bounded in memory too.
    pub batch_bytes: usize,
    /// First wait between polls of an empty outbox (default 20 ms); it doubles while the
    /// outbox stays empty, up to [`idle_poll_max`](Self::idle_poll_max), and drops back at the
    /// first entry.
    pub idle_poll: Duration,
    /// Longest wait between polls of an empty outbox (default 1 s): an idle relay costs about
    /// one short transaction a second, and the first entry after a quiet spell waits at most
    /// this long.
    pub idle_poll_max: Duration,
    /// First and longest wait after a failed batch (default 100 ms, 5 s; doubling).
    pub backoff: (Duration, Duration),
    /// How many times JetStream may refuse one entry, sent again at once each time, before
    /// the relay gives up on it and records it in `activity_dead_letter` (default 5). Only
    /// refusals of that message count (too large for the stream, a header the
    /// server rejects): an outage, a timeout or a full stream is retried for as long as it
    /// lasts, and dead-letters nothing.
    pub max_attempts: u32,
    /// How long to wait for JetStream's acknowledgement (default 5 s).
    pub ack_timeout: Duration,
    /// The stream's duplicate window when [`Relay::ensure_stream`] creates it (default 1 h,
    /// never longer than the stream's `max_age`). A relay that dies after publishing and
    /// before deleting its rows republishes them; they are dropped as duplicates as long as a
    /// relay runs again within this window. This is the bound of "exactly once": an outage of
    /// the relay or of NATS longer than the window may deliver a batch twice.
    pub duplicate_window: Duration,
    /// How long an outbox row waits for entries it lists that are not in the log yet, by this
    /// relay's clock (default [`outbox::WRITE_GRACE`], 60 s; see [`outbox::claim`]).
    pub write_grace: Duration,
    /// The stream's `max_age`, set by [`Relay::ensure_stream`] on a new stream and on an
    /// existing one (default: the configured retention, `ActivityConfig::with_retention`; none
    /// keeps messages until deleted). The stream is a copy of the log: it keeps no longer
    /// than the log does.
    pub max_age: Option<Duration>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            stream: "ACTIVITY".to_owned(),
            subject_prefix: "activity".to_owned(),
            batch_rows: 200,
            batch_entries: 2_000,
            batch_bytes: 16 * 1024 * 1024,
            idle_poll: Duration::from_millis(20),
            idle_poll_max: Duration::from_secs(1),
            backoff: (Duration::from_millis(100), Duration::from_secs(5)),
            max_attempts: 5,
            ack_timeout: Duration::from_secs(5),
            duplicate_window: Duration::from_secs(3600),
            write_grace: outbox::WRITE_GRACE,
            max_age: None,
        }
    }
}

impl RelayConfig {
    /// The stream name.
    pub fn with_stream(mut self, stream: impl Into<String>) -> Self {
        self.stream = stream.into();
        self
    }

    /// The first subject token.
    pub fn with_subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.subject_prefix = prefix.into();
        self
    }

    /// Entries and bytes of entry details per batch.
    pub fn with_batch_size(mut self, entries: usize, bytes: usize) -> Self {
        self.batch_entries = entries.max(1);
        self.batch_bytes = bytes;
        self
    }

    /// Outbox rows per batch.
    pub fn with_batch_rows(mut self, rows: u32) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// First and longest wait between polls of an empty outbox.
    pub fn with_idle_poll(mut self, first: Duration, longest: Duration) -> Self {
        self.idle_poll = first;
        self.idle_poll_max = longest.max(first);
        self
    }

    /// First and longest wait after a failed batch.
    pub fn with_backoff(mut self, first: Duration, longest: Duration) -> Self {
        self.backoff = (first, longest.max(first));
        self
    }

    /// Refusals of one entry before it is dead-lettered (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// How long to wait for JetStream's acknowledgement.
    pub fn with_ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// The duplicate window of a stream [`Relay::ensure_stream`] creates.
    pub fn with_duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// How long an outbox row waits for entries it lists that are not in the log yet.
    pub fn with_write_grace(mut self, grace: Duration) -> Self {
        self.write_grace = grace;
        self
    }

    /// The stream's `max_age`, instead of the configured retention.
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }
}

/// Counters of one relay, for metrics endpoints and tests.
#[derive(Debug, Default)]
pub struct RelayStats {
    published: AtomicU64,
    duplicates: AtomicU64,
    batches: AtomicU64,
    retries: AtomicU64,
    skipped: AtomicU64,
    shrunk: AtomicU64,
    busy: AtomicU64,
    pending: AtomicU64,
    refused: AtomicU64,
    dead_letters: AtomicU64,
    lag_ms: AtomicU64,
}

impl RelayStats {
    /// Entries JetStream acknowledged (including republished duplicates it dropped).
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Acknowledgements that said "duplicate": republished after a crash or a lost ack, dropped
    /// by JetStream.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// Batches completed.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Failed batches retried (database or NATS unavailable).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Outbox ids whose entry was not in `activity_log` after the write grace: pruned before
    /// relayed, or never written (an autocommit write that failed after its outbox row).
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Entries sent shrunk to fit the server's `max_payload` (values as their size and
    /// SHA-256; see `activity_seaorm::outbox::message_within`).
    pub fn shrunk(&self) -> u64 {
        self.shrunk.load(Ordering::Relaxed)
    }

    /// Polls that found the oldest rows held by another relay ([`Step::Busy`]): the relay
    /// waited its turn.
    pub fn busy(&self) -> u64 {
        self.busy.load(Ordering::Relaxed)
    }

    /// Polls that found the oldest row waiting for entries not written yet (the write grace;
    /// see `activity_seaorm::outbox::claim`): nothing published meanwhile.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Times JetStream refused an entry (each attempt counts).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Entries given up on after [`RelayConfig::max_attempts`] refusals, recorded in
    /// `activity_dead_letter` (see `activity_seaorm::outbox::dead_letters`).
    pub fn dead_letters(&self) -> u64 {
        self.dead_letters.load(Ordering::Relaxed)
    }

    /// Age of the oldest outbox row of the last batch when it was claimed (or of the row the
    /// relay is waiting on), in milliseconds.
    pub fn lag_ms(&self) -> u64 {
        self.lag_ms.load(Ordering::Relaxed)
    }
}

/// What one [`Relay::relay_batch`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Published this many entries (JetStream acknowledged all) and deleted their rows.
    Published(usize),
    /// Nothing to publish yet: the outbox was empty, or its oldest row waits for its entries
    /// ([`Claim::Pending`]).
    Idle,
    /// Another relay holds the oldest rows; this one waits its turn.
    Busy,
}

/// Publishes committed entries from the outbox to JetStream. Run one per process or several:
/// they take turns, never overtake each other, and a crash at any point republishes only what
/// JetStream then drops as duplicates (`Nats-Msg-Id` = entry id).
#[derive(Clone, Debug)]
pub struct Relay {
    db: DatabaseConnection,
    client: async_nats::Client,
    js: jetstream::Context,
    config: Arc<RelayConfig>,
    stats: Arc<RelayStats>,
    /// Rows seen waiting for their entries, and since when; shared by clones.
    waiting: Arc<tokio::sync::Mutex<WaitingRows>>,
}

impl Relay {
    /// A relay from `db`'s outbox to JetStream on `client`, with the default [`RelayConfig`].
    pub fn new(db: DatabaseConnection, client: async_nats::Client) -> Self {
        Self::with_config(db, client, RelayConfig::default())
    }

    /// A relay with `config`.
    pub fn with_config(
        db: DatabaseConnection,
        client: async_nats::Client,
        config: RelayConfig,
    ) -> Self {
        let mut js = jetstream::new(client.clone());
        js.set_timeout(config.ack_timeout);
        Self {
            db,
            client,
            js,
            waiting: Arc::new(tokio::sync::Mutex::new(WaitingRows::new(
                config.write_grace,
            ))),
            config: Arc::new(config),
            stats: Arc::default(),
        }
    }

    /// This relay's counters.
    pub fn stats(&self) -> Arc<RelayStats> {
        Arc::clone(&self.stats)
    }

    /// Create the stream (subjects `<prefix>.>`, file storage, the configured duplicate
    /// window, `max_age` the retention: [`RelayConfig::max_age`]) unless it exists; on an
    /// existing stream, set its `max_age` to the retention if it differs, so a shortened
    /// retention reaches the stream at the next start.
    pub async fn ensure_stream(&self) -> Result<(), Error> {
        let max_age = self
            .config
            .max_age
            .or_else(|| ActivityConfig::with_current(ActivityConfig::retention))
            .unwrap_or(Duration::ZERO);
        match self.js.get_stream(self.config.stream.as_str()).await {
            Ok(mut stream) => {
                let info = stream.info().await.map_err(|e| Error::Stream(boxed(e)))?;
                if info.config.max_age != max_age {
                    // Retention changed since the stream was made: the copy follows the log.
                    let mut config = info.config.clone();
                    config.max_age = max_age;
                    self.js
                        .update_stream(config)
                        .await
                        .map_err(|e| Error::Stream(boxed(e)))?;
                    tracing::info!(stream = %self.config.stream, ?max_age, "stream max_age set to the retention");
                }
                Ok(())
            }
            Err(_) => {
                // NATS refuses a duplicate window longer than the stream's `max_age`.
                let duplicate_window = if max_age.is_zero() {
                    self.config.duplicate_window
                } else {
                    self.config.duplicate_window.min(max_age)
                };
                let config = stream::Config {
                    name: self.config.stream.clone(),
                    subjects: vec![format!("{}.>", self.config.subject_prefix)],
                    duplicate_window,
                    storage: stream::StorageType::File,
                    max_age,
                    ..Default::default()
                };
                self.js
                    .get_or_create_stream(config)
                    .await
                    .map(drop)
                    .map_err(|e| Error::Stream(boxed(e)))
            }
        }
    }

    /// Relay until `shutdown` completes, retrying every failure with backoff: while the
    /// database or NATS is unreachable the relay waits and then catches up; the application's
    /// writes are never held up by it. A batch in flight when `shutdown` completes is
    /// abandoned, and republished (as duplicates JetStream drops) by the next run.
    pub async fn run_until<F: std::future::Future<Output = ()>>(&self, shutdown: F) {
        tokio::select! {
            () = self.run() => {}
            () = shutdown => {}
        }
    }

    /// Relay forever (see [`run_until`](Self::run_until)).
    pub async fn run(&self) {
        let (first, longest) = self.config.backoff;
        let mut backoff = first;
        let mut idle = self.config.idle_poll;
        loop {
            match self.relay_batch().await {
                Ok(Step::Published(_)) => {
                    backoff = first;
                    idle = self.config.idle_poll;
                }
                Ok(Step::Idle | Step::Busy) => {
                    backoff = first;
                    tokio::time::sleep(idle).await;
                    // Nothing came: ask less often, up to the longest wait.
                    idle = (idle * 2).min(self.config.idle_poll_max);
                }
                Err(e) => {
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, wait_ms = backoff.as_millis() as u64, "activity relay: batch failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(longest);
                }
            }
        }
    }

    /// Claim the oldest outbox rows, publish their entries, and delete the rows once JetStream
    /// acknowledged every entry. On any error nothing is deleted (the claim's transaction rolls
    /// back) and the batch is claimed again later.
    pub async fn relay_batch(&self) -> Result<Step, Error> {
        let txn = outbox::begin(&self.db).await?;
        let claim = {
            let mut waiting = self.waiting.lock().await;
            let limit = BatchLimit::new(self.config.batch_rows, self.config.batch_entries)
                .with_bytes(self.config.batch_bytes);
            outbox::claim(&txn, limit, &mut waiting).await?
        };
        let claimed = match claim {
            Claim::Batch(claimed) => claimed,
            Claim::Empty => {
                txn.commit().await?;
                return Ok(Step::Idle);
            }
            Claim::Pending { oldest } => {
                txn.commit().await?;
                self.stats.pending.fetch_add(1, Ordering::Relaxed);
                self.record_lag(oldest);
                return Ok(Step::Idle);
            }
            Claim::Busy => {
                txn.rollback().await?;
                self.stats.busy.fetch_add(1, Ordering::Relaxed);
                return Ok(Step::Busy);
            }
            _ => {
                txn.rollback().await?;
                return Ok(Step::Idle);
            }
        };
        // SQLite has one writer: a relay that kept its transaction open while publishing would
        // either hold the write lock (and stall the application's writes while NATS is slow or
        // down) or fail to upgrade its stale read snapshot when deleting. It reads, lets go,
        // publishes, then deletes in a short write transaction of its own (one relay per SQLite
        // database).
        let sqlite = self.db.get_database_backend() == DbBackend::Sqlite;
        let held = if sqlite {
            txn.commit().await?;
            None
        } else {
            Some(txn)
        };
        let lag = self.record_lag(claimed.oldest);
        self.stats
            .skipped
            .fetch_add(claimed.missing as u64, Ordering::Relaxed);
        let span = tracing::info_span!(
            "activity_relay.batch",
            rows = claimed.rows.len(),
            entries = claimed.entries.len(),
            lag_ms = lag.num_milliseconds(),
            entry_ids = tracing::field::Empty
        );
        if !span.is_disabled() {
            span.record(
                "entry_ids",
                activity_seaorm::trace::span_entry_ids(claimed.entries.iter().map(|e| e.id)),
            );
        }
        async {
            let dead = self.publish(&claimed.entries).await?;
            let txn = match held {
                Some(txn) => txn,
                None => self.db.begin_with_options(IMMEDIATE).await?,
            };
            if !dead.is_empty() {
                outbox::dead_letter(&txn, &dead).await?;
            }
            outbox::complete(&txn, &claimed.rows).await?;
            txn.commit().await?;
            if !dead.is_empty() {
                for letter in &dead {
                    tracing::error!(entry_id = %letter.entry_id, attempts = letter.attempts,
                        reason = %letter.reason, "activity relay: entry dead-lettered; the others go on");
                }
                self.stats
                    .dead_letters
                    .fetch_add(dead.len() as u64, Ordering::Relaxed);
            }
            let published = claimed.entries.len() - dead.len();
            self.stats
                .published
                .fetch_add(published as u64, Ordering::Relaxed);
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
            Ok(Step::Published(published))
        }
        .instrument(span)
        .await
    }

    /// The age of the oldest row waiting, in the stats.
    fn record_lag(&self, oldest: chrono::DateTime<chrono::Utc>) -> chrono::TimeDelta {
        let lag = chrono::Utc::now() - oldest;
        self.stats.lag_ms.store(
            u64::try_from(lag.num_milliseconds()).unwrap_or(0),
            Ordering::Relaxed,
        );
        lag
    }

    /// Publish `entries` so that each item's entries are stored in order: in waves holding at
    /// most one entry per item, each wave acknowledged in full before the next is sent. Most
    /// batches touch each item once and go out as one pipelined wave.
    ///
    /// An entry JetStream refuses is sent again at once, alone, up to
    /// [`RelayConfig::max_attempts`] times in all; then it is returned as a dead letter and the
    /// batch goes on. A refusal is about the message (its size, a header), so retrying later
    /// would change nothing: one poisoned entry costs a few round trips, holds back only its
    /// wave, and its item's later entries still follow it.
    async fn publish(&self, entries: &[ActivityEntry]) -> Result<Vec<DeadLetter>, Error> {
        let mut dead = Vec::new();
        let mut remaining: Vec<&ActivityEntry> = entries.iter().collect();
        while !remaining.is_empty() {
            let mut items = HashSet::with_capacity(remaining.len());
            let (wave, rest): (Vec<&ActivityEntry>, Vec<&ActivityEntry>) =
                remaining.into_iter().partition(|e| match &e.item_id {
                    Some(item) => items.insert((e.scope.as_str(), item.as_str())),
                    // No item, no order to keep.
                    None => true,
                });
            let mut acks = Vec::with_capacity(wave.len());
            for entry in &wave {
                acks.push((*entry, self.send(entry).await?));
            }
            let mut refused = Vec::new();
            for (entry, ack) in acks {
                if let Err(e) = self.acknowledged(ack).await? {
                    refused.push((entry, e));
                }
            }
            for (entry, mut error) in refused {
                let mut attempts = 1;
                loop {
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(entry_id = %entry.id, attempts, error = %error, "activity relay: JetStream refused an entry");
                    if attempts >= self.config.max_attempts {
                        dead.push(DeadLetter::new(entry.id, attempts, error.to_string()));
                        break;
                    }
                    attempts += 1;
                    match self.acknowledged(self.send(entry).await?).await? {
                        Ok(()) => break,
                        Err(e) => error = e,
                    }
                }
            }
            remaining = rest;
        }
        Ok(dead)
    }

    /// Wait for a message's acknowledgement: `Ok(Ok(()))` stored (or dropped as a duplicate),
    /// `Ok(Err(refusal))` refused for what it is, `Err` anything else (the batch fails).
    async fn acknowledged(
        &self,
        sent: Result<jetstream::context::PublishAckFuture, PublishError>,
    ) -> Result<Result<(), PublishError>, Error> {
        let outcome = match sent {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(ack) => {
                if ack.duplicate {
                    self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Ok(()))
            }
            Err(e) if is_refusal(&e) => Ok(Err(e)),
            Err(e) => Err(Error::Publish(boxed(e))),
        }
    }

    /// Send `entry`; the outer error is the relay's (the entry could not be encoded), the
    /// inner one the client's or the server's answer to this message.
    async fn send(
        &self,
        entry: &ActivityEntry,
    ) -> Result<Result<jetstream::context::PublishAckFuture, PublishError>, Error> {
        let limit = payload_limit(&self.client);
        let (payload, shrunk) = outbox::message_within(entry, limit)?;
        if shrunk {
            self.stats.shrunk.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(entry_id = %entry.id, limit, "activity relay: entry larger than the server's max_payload sent with its values shrunk");
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            entry.id.to_string().as_str(),
        );
        if let Some(correlation) = &entry.correlation_id {
            headers.insert(
                "Activity-Correlation-Id",
                header_value(correlation).as_str(),
            );
        }
        let tenant = TenantKey::of(entry);
        if !tenant.is_none() {
            headers.insert("Activity-Tenant", header_value(tenant.as_str()).as_str());
        }
        // The writer's trace continues in whoever consumes the entry (W3C trace context).
        if let Some(traceparent) = activity_seaorm::trace::traceparent(entry) {
            headers.insert("traceparent", traceparent.as_str());
        }
        Ok(self
            .js
            .publish_with_headers(
                subject(&self.config.subject_prefix, entry),
                headers,
                Bytes::from(payload),
            )
            .await)
    }
}

/// Whether JetStream refused this message, as opposed to being unreachable, slow or full:
/// only a refusal counts toward [`RelayConfig::max_attempts`]. A stream out of storage or
/// resources, or JetStream unavailable, refuses every message alike; that is an outage, retried
/// without end, never a reason to give up on an entry.
fn is_refusal(error: &PublishError) -> bool {
    use async_nats::jetstream::ErrorCode;
    match error.kind() {
        PublishErrorKind::MaxPayloadExceeded
        | PublishErrorKind::WrongLastMessageId
        | PublishErrorKind::WrongLastSequence => true,
        PublishErrorKind::Other => {
            let code = std::error::Error::source(error)
                .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>())
                .map(async_nats::jetstream::Error::error_code);
            match code {
                // Not an answer from JetStream (a malformed reply): not about this message.
                None => false,
                Some(code) => ![
                    ErrorCode::ACCOUNT_RESOURCES_EXCEEDED,
                    ErrorCode::CLUSTER_NOT_AVAILABLE,
                    ErrorCode::INSUFFICIENT_RESOURCES,
                    ErrorCode::STORAGE_RESOURCES_EXCEEDED,
                    ErrorCode::STREAM_STORE_FAILED,
                    ErrorCode::JETSTREAM_NOT_ENABLED,
                    ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT,
                ]
                .contains(&code),
            }
        }
        _ => false,
    }
}

/// The largest entry JSON `client`'s server takes in one message. Headers and subject count
/// against the server's limit too: they are left 4 KiB. Before the server's INFO arrives (or
/// between reconnects) the client reports 0: the server's default, 1 MiB, is assumed.
pub(crate) fn payload_limit(client: &async_nats::Client) -> usize {
    let max_payload = match client.server_info().max_payload {
        0 => 1024 * 1024,
        n => n,
    };
    max_payload.saturating_sub(4096)
}
