//! Checkpoints of the sealed history on JetStream (see `activity_seaorm::ops::seal`): a copy
//! outside the database, so deleting the newest entries together with their blocks is still
//! seen ([`Checkpoints::latest`] is what `verify_trusting` checks against).
//!
//! Checkpoints go to a stream of their own ([`CHECKPOINT_STREAM`], subjects
//! `activity-checkpoints.<tenant token>`) with no `max_age`: a checkpoint holds tenant keys,
//! counts and hashes, nothing personal, and is what keeps an archived or pruned stretch
//! verifiable. `Nats-Msg-Id` is `<tenant>#<seq>`, so a republish is a no-op.

use std::time::Duration;

use activity_seaorm::ops::seal::{self, Checkpoint, Sealer};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use sea_orm::{ConnectionTrait, TransactionTrait};

use crate::error::{Error, boxed};
use crate::subject::token;

/// The checkpoint stream's default name.
pub const CHECKPOINT_STREAM: &str = "ACTIVITY_CHECKPOINTS";
/// The checkpoint subjects' default prefix.
pub const CHECKPOINT_PREFIX: &str = "activity-checkpoints";

/// Publishes and reads back the sealer's checkpoints.
#[derive(Clone, Debug)]
pub struct Checkpoints {
    js: jetstream::Context,
    stream: String,
    prefix: String,
}

impl Checkpoints {
    /// On `client`'s JetStream, [`CHECKPOINT_STREAM`] under [`CHECKPOINT_PREFIX`].
    pub fn new(client: async_nats::Client) -> Self {
        Checkpoints {
            js: jetstream::new(client),
            stream: CHECKPOINT_STREAM.to_owned(),
            prefix: CHECKPOINT_PREFIX.to_owned(),
        }
    }

    /// Another stream name and subject prefix (tests, several applications on one server).
    pub fn with_stream(mut self, stream: impl Into<String>, prefix: impl Into<String>) -> Self {
        self.stream = stream.into();
        self.prefix = prefix.into();
        self
    }

    fn subject(&self, tenant: &str) -> String {
        format!("{}.{}", self.prefix, token(tenant))
    }

    /// Create the stream unless it exists (file storage, no `max_age`, one hour duplicate
    /// window).
    pub async fn ensure_stream(&self) -> Result<(), Error> {
        let config = stream::Config {
            name: self.stream.clone(),
            subjects: vec![format!("{}.>", self.prefix)],
            duplicate_window: Duration::from_secs(3600),
            storage: stream::StorageType::File,
            ..Default::default()
        };
        self.js
            .get_or_create_stream(config)
            .await
            .map(drop)
            .map_err(|e| Error::Stream(boxed(e)))
    }

    /// Publish `checkpoints` in order and wait for each acknowledgement.
    pub async fn publish(&self, checkpoints: &[Checkpoint]) -> Result<(), Error> {
        for cp in checkpoints {
            let mut headers = async_nats::HeaderMap::new();
            let id = format!("{}#{}", cp.header.tenant, cp.header.seq);
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
            let ack = self
                .js
                .publish_with_headers(
                    self.subject(&cp.header.tenant),
                    headers,
                    Bytes::from(serde_json::to_vec(cp)?),
                )
                .await
                .map_err(|e| Error::Publish(boxed(e)))?;
            ack.await.map_err(|e| Error::Publish(boxed(e)))?;
        }
        Ok(())
    }

    /// The newest checkpoint of `tenant` on the stream.
    pub async fn latest(&self, tenant: &str) -> Result<Option<Checkpoint>, Error> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        let stream = self
            .js
            .get_stream(self.stream.as_str())
            .await
            .map_err(|e| Error::Stream(boxed(e)))?;
        match stream
            .get_last_raw_message_by_subject(&self.subject(tenant))
            .await
        {
            Ok(message) => Ok(Some(serde_json::from_slice(&message.payload)?)),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(Error::Stream(boxed(e))),
        }
    }

    /// Publish every stored checkpoint the stream does not have yet (after a round whose
    /// publication failed, or a sealer that ran without the stream); how many were sent.
    pub async fn catch_up<C: ConnectionTrait>(&self, db: &C) -> Result<u64, Error> {
        let mut sent = 0;
        for tenant in seal::tenants(db).await? {
            let on_stream = self.latest(&tenant).await?.map_or(0, |c| c.header.seq);
            let missing = seal::checkpoints_after(db, &tenant, on_stream).await?;
            self.publish(&missing).await?;
            sent += missing.len() as u64;
        }
        Ok(sent)
    }

    /// Seal a round every `every` and publish its checkpoints, until `stop` resolves. It
    /// [catches up](Self::catch_up) first, and again after a publication failed (the blocks
    /// stay stored meanwhile); a failed round is logged and retried at the next tick.
    pub async fn run<C, F>(&self, db: &C, sealer: &Sealer, every: Duration, stop: F)
    where
        C: ConnectionTrait + TransactionTrait,
        F: std::future::Future<Output = ()>,
    {
        let mut stop = std::pin::pin!(stop);
        let mut behind = true;
        loop {
            match sealer.seal(db).await {
                Ok(round) if !behind => {
                    if let Err(error) = self.publish(&round.checkpoints).await {
                        tracing::warn!(%error, "checkpoints not published; catching up next");
                        behind = true;
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "sealing round failed; retrying"),
            }
            if behind {
                match self.catch_up(db).await {
                    Ok(_) => behind = false,
                    Err(error) => tracing::warn!(%error, "checkpoints not published; retrying"),
                }
            }
            if tokio::time::timeout(every, &mut stop).await.is_ok() {
                return;
            }
        }
    }
}
