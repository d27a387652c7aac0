//! Entries written by hand, under the same rules as the hooks'.

use activity_core::ActivityEntry;
use sea_orm::{ConnectionTrait, DbErr};

use crate::keys::conn_key;
use crate::write::frame::{self, stamp};
use crate::write::sink;

/// Write one entry by hand, with the same rules as the hooks: the current context is applied,
/// `before_append` may patch or veto it, an `updated` entry without changes is dropped unless
/// [`ActivityEntry::forced`], and inside [`transaction`](crate::transaction) it is written at
/// commit. Its `created_at` comes from the configured clock when the entry is built.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), sea_orm::DbErr> {
/// use activity_seaorm::prelude::*;
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// activity_seaorm::schema::create_table(&db).await?;
/// let entry = ActivityEntry::new("Export", "exported").with_item_id("42");
/// activity_seaorm::log_activity(&db, entry).await?;
/// # Ok(()) }
/// ```
pub async fn log_activity<C: ConnectionTrait>(db: &C, entry: ActivityEntry) -> Result<(), DbErr> {
    bulk_log_activity(db, vec![entry]).await
}

/// Write many entries by hand, in one INSERT per chunk (see [`log_activity`]).
pub async fn bulk_log_activity<C: ConnectionTrait>(
    db: &C,
    entries: Vec<ActivityEntry>,
) -> Result<(), DbErr> {
    let frame = frame::frame_for(conn_key(db));
    let mut now = Vec::new();
    for mut entry in entries {
        if activity_core::is_muted(&entry.scope) {
            continue;
        }
        stamp(&mut entry, None);
        match &frame {
            Some(frame) => {
                if frame.push(entry) {
                    crate::write::flush::flush_early(db, frame).await?;
                }
            }
            None => now.push(entry),
        }
    }
    if now.is_empty() {
        return Ok(());
    }
    sink::write_now(db, now).await
}
