//! The copies this crate makes, erased with the log: the JetStream stream ([`StreamCopy`]) and
//! the notification store ([`NotificationCopy`]). Add them to the application's
//! `activity_seaorm::ops::lifecycle::Lifecycle`:
//!
//! ```no_run
//! # async fn demo(db: sea_orm::DatabaseConnection, client: async_nats::Client) -> Result<(), activity_seaorm::Error> {
//! use activity_nats::erasure::{NotificationCopy, StreamCopy};
//! use activity_seaorm::ops::lifecycle::Lifecycle;
//! let lifecycle = Lifecycle::new()
//!     .with_archives("/var/lib/app/activity-archive")
//!     .with_copy(StreamCopy::new(client, "ACTIVITY", "activity"))
//!     .with_copy(NotificationCopy::new(db.clone()));
//! let report = lifecycle.erase_user(&db, "42").await?;
//! assert!(report.is_complete(), "run again: {:?}", report.unreachable());
//! # Ok(()) }
//! ```

use activity_seaorm::ActivityEntry;
use activity_seaorm::ops::erasure::{ErasureRequest, ErasureTenant};
use activity_seaorm::ops::lifecycle::{CopyEraser, CopyReport};
use async_nats::jetstream::{self, stream::RawMessageErrorKind};
use bytes::Bytes;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};

use crate::error::{Error, boxed};
use crate::notify::{
    activity_notification_dead_letter, activity_notification_delivery,
    activity_notification_preference, activity_subscription,
};
use crate::subject::{REPUBLISHED, TenantKey, erased_subject, subject};

/// Entry ids per `erased` event message: far below the server's payload limit.
const IDS_PER_EVENT: usize = 1_000;

/// The stream as a copy of the log. Erasing a user scans the stream's messages (it keeps no
/// more than the retention: see `RelayConfig::max_age`); each message by or about the user is
/// republished rewritten (same subject, `Nats-Msg-Id` `<entry id>:erased:<digest of the
/// rewritten message>`: a re-run within the stream's duplicate window publishes nothing twice,
/// and a later erasure of the same entry, e.g. of the user it is about after the user who made
/// it, is a new message) and the original is deleted, securely erased on the server. The
/// rewritten copy is published before the original goes, and the original goes only once a
/// rewritten copy is stored, so no entry is lost; run again to finish (after the duplicate
/// window, a crash between the two steps can leave two rewritten copies of an entry, never an
/// unerased one). Consumers learn of it from `erased` events on
/// `<prefix>.<tenant>.~.erased`, each tenant's entries on its own tenant's subject
/// ([`erased_subject`]; `{"pseudonym": .., "entry_ids": [..]}`, at most 1,000 ids
/// each) and must erase their own copies of those entries.
#[derive(Debug, Clone)]
pub struct StreamCopy {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: String,
    subject_prefix: String,
}

impl StreamCopy {
    /// The stream `stream` the relay publishes to under `subject_prefix` (the relay's
    /// `RelayConfig::stream` and `subject_prefix`).
    pub fn new(
        client: async_nats::Client,
        stream: impl Into<String>,
        subject_prefix: impl Into<String>,
    ) -> Self {
        StreamCopy {
            js: jetstream::new(client.clone()),
            client,
            stream: stream.into(),
            subject_prefix: subject_prefix.into(),
        }
    }

    async fn publish(
        &self,
        subject: String,
        id: String,
        payload: Bytes,
    ) -> Result<jetstream::publish::PublishAck, Error> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        headers.insert(REPUBLISHED, "erasure");
        self.js
            .publish_with_headers(subject, headers, payload)
            .await
            .map_err(|e| Error::Publish(boxed(e)))?
            .await
            .map_err(|e| Error::Publish(boxed(e)))
    }
}

#[async_trait::async_trait]
impl CopyEraser for StreamCopy {
    async fn erase(&self, request: &ErasureRequest) -> CopyReport {
        let mut report = CopyReport::new(format!("stream {}", self.stream));
        let mut stream = match self.js.get_stream(self.stream.as_str()).await {
            Ok(stream) => stream,
            Err(e) => return CopyReport::failed(report.copy, e),
        };
        let (first, last) = match stream.info().await {
            Ok(info) => (info.state.first_sequence, info.state.last_sequence),
            Err(e) => return CopyReport::failed(report.copy, e),
        };
        let mut erased_ids = Vec::new();
        for seq in first..=last {
            let message = match stream.get_raw_message(seq).await {
                Ok(message) => message,
                // Deleted, or aged out since the scan began.
                Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => continue,
                Err(e) => {
                    report
                        .unreachable
                        .push(format!("message {seq} could not be read: {e}"));
                    continue;
                }
            };
            let Ok(mut entry) = serde_json::from_slice::<serde_json::Value>(&message.payload)
            else {
                continue; // not an entry (an `erased` event)
            };
            if !request.touches(&entry) || !request.erase(&mut entry) {
                // Unchanged: rewritten whole by an earlier run, which may not have told the
                // consumers, or neither by nor about the user.
                if request.erased_before(&entry)
                    && let Ok(typed) = serde_json::from_value::<ActivityEntry>(entry)
                {
                    erased_ids.push((TenantKey::of(&typed).as_str().to_owned(), typed.id));
                }
                continue;
            }
            let typed: ActivityEntry = match serde_json::from_value(entry) {
                Ok(typed) => typed,
                Err(e) => {
                    report
                        .unreachable
                        .push(format!("message {seq} is not an entry: {e}"));
                    continue;
                }
            };
            // The relay's size guard: pseudonyms may make the entry longer than it was.
            let limit = crate::relay::payload_limit(&self.client);
            let payload = match activity_seaorm::outbox::message_within(&typed, limit) {
                Ok((payload, _)) => payload,
                Err(e) => {
                    report.unreachable.push(format!("message {seq}: {e}"));
                    continue;
                }
            };
            // The id names the rewritten content: a re-run of this erasure publishes nothing
            // twice, while a later erasure of the same entry (by its actor, then about its
            // item) is a new message, never taken for a duplicate of the copy it replaces.
            let payload = Bytes::from(payload);
            let id = format!(
                "{}:erased:{}",
                typed.id,
                hex::encode(&Sha256::digest(&payload)[..8])
            );
            let ack = match self
                .publish(subject(&self.subject_prefix, &typed), id, payload.clone())
                .await
            {
                Ok(ack) => ack,
                Err(e) => {
                    report
                        .unreachable
                        .push(format!("message {seq} could not be republished: {e}"));
                    continue;
                }
            };
            // Taken for a duplicate: an earlier run published this very copy. The original
            // goes only if that copy is still stored, so the entry is never left with none.
            if ack.duplicate {
                match stream.get_raw_message(ack.sequence).await {
                    Ok(kept) if kept.payload == payload => {}
                    _ => {
                        report.unreachable.push(format!(
                            "message {seq}: its erased copy was published before and is gone; \
                             run again after the stream's duplicate window"
                        ));
                        continue;
                    }
                }
            }
            match stream.delete_message(seq).await {
                Ok(_) => {
                    report.changed += 1;
                    erased_ids.push((TenantKey::of(&typed).as_str().to_owned(), typed.id));
                }
                Err(e) => report
                    .unreachable
                    .push(format!("message {seq} could not be deleted: {e}")),
            }
        }
        // One event stream per tenant, on its own subject: each tenant's consumers learn of
        // their own entries, and of no other tenant's.
        let mut by_tenant = request.entry_ids_by_tenant.clone();
        for (tenant, id) in erased_ids {
            by_tenant.entry(tenant).or_default().push(id);
        }
        for (tenant, mut ids) in by_tenant {
            ids.sort();
            ids.dedup();
            let subject = erased_subject(&self.subject_prefix, &TenantKey::from_key(&tenant));
            for chunk in ids.chunks(IDS_PER_EVENT) {
                let event = serde_json::json!({
                    "pseudonym": request.pseudonym,
                    "entry_ids": chunk,
                });
                // Named by its content: a re-run repeating the same news publishes it once,
                // news of other entries is never taken for a duplicate.
                let event = Bytes::from(event.to_string());
                let digest = Sha256::new()
                    .chain_update(subject.as_bytes())
                    .chain_update(&event)
                    .finalize();
                let id = format!("erased:{}:{}", request.pseudonym, hex::encode(&digest[..8]));
                if let Err(e) = self.publish(subject.clone(), id, event).await {
                    report
                        .unreachable
                        .push(format!("the erased event could not be published: {e}"));
                }
            }
        }
        report
    }
}

/// The notification store as a copy: the user's subscriptions, preferences, delivery marks
/// and dead letters are deleted.
#[derive(Debug, Clone)]
pub struct NotificationCopy {
    db: DatabaseConnection,
}

impl NotificationCopy {
    /// The notification tables on `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        NotificationCopy { db }
    }

    /// Delete `user`'s rows (of `tenant` only, if given). Delivery marks carry no tenant: an
    /// erasure inside one tenant keeps them (they name entries, not their content).
    async fn delete_all(
        &self,
        user: &str,
        tenant: Option<TenantKey>,
    ) -> Result<u64, sea_orm::DbErr> {
        let mut subscriptions = activity_subscription::Entity::delete_many()
            .filter(activity_subscription::Column::UserId.eq(user));
        let mut preferences = activity_notification_preference::Entity::delete_many()
            .filter(activity_notification_preference::Column::UserId.eq(user));
        if let Some(tenant) = &tenant {
            subscriptions =
                subscriptions.filter(activity_subscription::Column::Tenant.eq(tenant.as_str()));
            preferences = preferences
                .filter(activity_notification_preference::Column::Tenant.eq(tenant.as_str()));
        }
        let mut changed = subscriptions.exec(&self.db).await?.rows_affected
            + preferences.exec(&self.db).await?.rows_affected;
        if tenant.is_none() {
            changed += activity_notification_delivery::Entity::delete_many()
                .filter(activity_notification_delivery::Column::Recipient.eq(user))
                .exec(&self.db)
                .await?
                .rows_affected;
            changed += activity_notification_dead_letter::Entity::delete_many()
                .filter(activity_notification_dead_letter::Column::Recipient.eq(user))
                .exec(&self.db)
                .await?
                .rows_affected;
        }
        Ok(changed)
    }
}

#[async_trait::async_trait]
impl CopyEraser for NotificationCopy {
    async fn erase(&self, request: &ErasureRequest) -> CopyReport {
        let tenant = request.tenant.as_ref().map(|t| match t {
            ErasureTenant::Organization(id) => TenantKey::organization(id),
            ErasureTenant::Team(id) => TenantKey::team(id),
            // A kind of tenant this version does not know: touch no tenant's rows.
            _ => TenantKey::none(),
        });
        match self.delete_all(&request.user_id, tenant).await {
            Ok(changed) => {
                let mut report = CopyReport::new("notification store");
                report.changed = changed;
                report
            }
            Err(e) => CopyReport::failed("notification store", e),
        }
    }
}
