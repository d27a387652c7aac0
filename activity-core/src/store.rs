//! Where entries go: an append-only store. The [`InMemoryStore`] serves ORM-free use and tests:
//! installed as the append hooks of a scoped [`ActivityConfig`](crate::ActivityConfig), it
//! captures every entry the code under test commits, for exact assertions.

use std::sync::{Mutex, PoisonError};

use crate::entry::ActivityEntry;
use crate::error::ActivityError;
use crate::query::{ActivityQuery, Order, Page};

/// An append-only activity store.
#[async_trait::async_trait]
pub trait ActivityStore: Send + Sync {
    /// Append entries (already prepared by hooks).
    async fn append(&self, entries: Vec<ActivityEntry>) -> Result<(), ActivityError>;
    /// Read one page.
    async fn query(&self, query: &ActivityQuery) -> Result<Page, ActivityError>;
}

/// A store in memory. Its [`query`](ActivityStore::query) filters on columns only: text
/// search and detail filters are refused.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use activity_core::{ActivityEntry, ActivityQuery, ActivityStore, InMemoryStore};
/// let store = InMemoryStore::default();
/// store.append(vec![ActivityEntry::new("Flag", "created").with_item_id("1")]).await.unwrap();
/// let page = store.query(&ActivityQuery::unscoped().item("Flag", "1")).await.unwrap();
/// assert_eq!(page.results.len(), 1);
/// // Text search needs a database: refused, never ignored.
/// let search = ActivityQuery::unscoped().item("Flag", "1").search("nothing like it");
/// assert!(store.query(&search).await.is_err());
/// # }
/// ```
///
/// Capturing what a test commits:
///
/// ```
/// use std::sync::Arc;
/// use activity_core::{ActivityConfig, ActivityEntry, ActivityHooks, InMemoryStore};
/// let store = Arc::new(InMemoryStore::default());
/// let config = ActivityConfig::new().with_hooks(store.clone());
/// // `config.scope(test_body).await`: every committed entry reaches `after_append`.
/// config.hooks().after_append(&ActivityEntry::new("Flag", "created"));
/// assert_eq!(store.entries().len(), 1);
/// ```
#[derive(Debug, Default)]
pub struct InMemoryStore {
    entries: Mutex<Vec<ActivityEntry>>,
}

impl InMemoryStore {
    /// Every entry, in append order.
    pub fn entries(&self) -> Vec<ActivityEntry> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait::async_trait]
impl ActivityStore for InMemoryStore {
    async fn append(&self, entries: Vec<ActivityEntry>) -> Result<(), ActivityError> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(entries);
        Ok(())
    }

    /// Filters on the entries' columns. Text search and detail filters need a database's
    /// JSON and collation rules: a query with either is refused, never answered as if they
    /// were not there (which would widen it).
    async fn query(&self, query: &ActivityQuery) -> Result<Page, ActivityError> {
        query.check_tenant()?;
        query.check_bounds()?;
        query.check_reader()?;
        if query.search.is_some() || !query.detail_filters.is_empty() {
            return Err(ActivityError::InvalidQuery(
                "the in-memory store has no text search or detail filters".into(),
            ));
        }
        let size = query.page_size()?;
        let now = crate::clock::now();
        let mut rows: Vec<ActivityEntry> = self
            .entries()
            .into_iter()
            .filter(|e| query.matches_columns(e))
            .filter(|e| query.allows(e, now))
            .collect();
        rows.sort_by_key(|e| (e.created_at, e.id));
        if query.order == Order::Descending {
            rows.reverse();
        }
        let start = match &query.cursor {
            Some(c) => {
                let id = uuid::Uuid::parse_str(c)
                    .map_err(|_| ActivityError::InvalidQuery("malformed cursor".into()))?;
                rows.iter()
                    .position(|e| e.id == id)
                    .map_or(rows.len(), |p| p + 1)
            }
            None => 0,
        };
        let results: Vec<ActivityEntry> = rows.into_iter().skip(start).take(size + 1).collect();
        let mut results = results;
        let next_cursor = if results.len() > size {
            results.truncate(size);
            results.last().map(|e| e.id.to_string())
        } else {
            None
        };
        Ok(Page {
            results,
            next_cursor,
        })
    }
}

/// As append hooks: keeps a copy of every committed entry.
impl crate::hooks::ActivityHooks for InMemoryStore {
    fn after_append(&self, entry: &ActivityEntry) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(entry.clone());
    }
}
