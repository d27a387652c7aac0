//! The last step of the write path: committed entries go to `after_append` and to
//! [`subscribe`]rs. In-process and best effort; the outbox is the durable signal.

use std::sync::{Arc, OnceLock};

use activity_core::{ActivityConfig, ActivityEntry};
use tokio::sync::broadcast;

/// A committed entry, broadcast to [`subscribe`]rs.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ActivityRecorded {
    /// The entry as written.
    pub entry: Arc<ActivityEntry>,
}

fn events() -> &'static broadcast::Sender<ActivityRecorded> {
    static EVENTS: OnceLock<broadcast::Sender<ActivityRecorded>> = OnceLock::new();
    EVENTS.get_or_init(|| broadcast::channel(4096).0)
}

/// Receive every committed entry (`ActivityRecorded`). Entries of rolled-back transactions are
/// never published. A slow receiver may lag (see `tokio::sync::broadcast`).
///
/// Entries written inside [`transaction`](crate::transaction) or by a
/// [`BackgroundLogger`](crate::ops::background::BackgroundLogger) are published after their COMMIT, and entries
/// written on an autocommit connection right after their INSERT. Entries written
/// through a transaction you opened yourself (`db.begin()`) are published when written, since
/// the library cannot see that transaction's end: use `transaction` where events must follow
/// the commit exactly.
pub fn subscribe() -> broadcast::Receiver<ActivityRecorded> {
    events().subscribe()
}

/// Whether committed entries have anyone to go to: `after_append` hooks or a subscriber.
pub(crate) fn listening() -> bool {
    events().receiver_count() > 0 || ActivityConfig::with_current(ActivityConfig::has_hooks)
}

/// Run `after_append` and broadcast, for committed entries only.
pub(crate) fn publish(entries: Vec<ActivityEntry>) {
    if entries.is_empty() {
        return;
    }
    let sender = events();
    ActivityConfig::with_current(|config| {
        for entry in entries {
            config.hooks().after_append(&entry);
            if sender.receiver_count() > 0 {
                // No receiver is not an error: events are best-effort notifications.
                let _ = sender.send(ActivityRecorded {
                    entry: Arc::new(entry),
                });
            }
        }
    });
}
