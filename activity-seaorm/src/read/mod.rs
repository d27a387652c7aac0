//! Reading the log back: [`ActivityQuery`] → SQL on each backend → [`Page`], with keyset
//! pagination on `(created_at, id)`. Every user-supplied value, detail paths included, is bound
//! as a parameter.
//!
//! One step per module: `query` builds the WHERE clause from the column filters and the
//! free-text search and the read policy (`policy`), `filters` the detail-path filters (one dialect per backend), `search`
//! the case-insensitive text patterns both use, `cursor` the keyset bound and the opaque
//! cursor, and `sql` the small parameterized-SQL builder they share.

mod cursor;
mod filters;
mod policy;
mod query;
mod search;
mod sql;

use activity_core::{ActivityEntry, ActivityQuery, Order, Page};
use sea_orm::{ConnectionTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::errors::Error;
use crate::schema::table::activity_log::Column;

pub(crate) use query::conditions;

/// The primary-key parts of an item id of an entity whose key has `parts` columns.
///
/// Composite keys are stored joined with `,`, each part's `\` and `,` escaped by a `\`, so two
/// different keys never share an item id. Ids written before that escaping existed read the same
/// unless a part itself held a `,` or `\` (such ids were ambiguous, and stay as they were
/// stored).
///
/// ```
/// use activity_seaorm::read::item_id_parts;
/// assert_eq!(item_id_parts("7,beta", 2), ["7", "beta"]);
/// assert_eq!(item_id_parts("a\\,b,c", 2), ["a,b", "c"]);
/// assert_eq!(item_id_parts("a,b", 1), ["a,b"]);
/// ```
pub fn item_id_parts(item_id: &str, parts: usize) -> Vec<String> {
    crate::keys::split_item_id(item_id, parts)
}

/// Read one page of entries.
///
/// The query is checked before any SQL is built: a tenant (unless unscoped or
/// single-tenant), the page size, and the caps on lists and filters
/// ([`MAX_LIST_LEN`](activity_core::query::MAX_LIST_LEN),
/// [`MAX_DETAIL_FILTERS`](activity_core::query::MAX_DETAIL_FILTERS),
/// [`MAX_FILTER_VALUES`](activity_core::query::MAX_FILTER_VALUES)), so a query the backend
/// could not run (too many bound parameters) is [`Error::is_invalid_query`], not a database
/// error. Text search and `contains` fold case with Unicode rules on every backend; detail
/// paths are object keys on every backend (see [`DetailFilter`](activity_core::DetailFilter)).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), activity_seaorm::Error> {
/// use activity_seaorm::{ActivityQuery, load_activity};
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// activity_seaorm::schema::create_table(&db).await?;
/// let page = load_activity(&db, &ActivityQuery::for_team("7").item("FeatureFlag", "1")).await?;
/// assert!(page.results.is_empty() && page.next_cursor.is_none());
/// # Ok(()) }
/// ```
pub async fn load_activity<C: ConnectionTrait>(
    db: &C,
    query: &ActivityQuery,
) -> Result<Page, Error> {
    query.check_tenant()?;
    query.check_bounds()?;
    let size = query.page_size()?;
    let backend = db.get_database_backend();
    let mut condition = conditions(query, backend)?;
    if let Some(cursor) = &query.cursor {
        let (at, id) = cursor::decode_cursor(cursor, query)?;
        condition = condition.add(cursor::keyset(query.order, backend, at, id));
    }
    let (created, id) = match query.order {
        Order::Descending => (sea_orm::Order::Desc, sea_orm::Order::Desc),
        Order::Ascending => (sea_orm::Order::Asc, sea_orm::Order::Asc),
    };
    let rows = crate::schema::table::find_entries()
        .filter(condition)
        .order_by(Column::CreatedAt, created)
        .order_by(Column::Id, id)
        .limit((size + 1) as u64)
        .all(db)
        .await?;
    let mut results: Vec<ActivityEntry> = rows.into_iter().map(Into::into).collect();
    let next_cursor = if results.len() > size {
        results.truncate(size);
        results
            .last()
            .map(|last| cursor::encode_cursor(last, query))
    } else {
        None
    };
    Ok(Page::new(results, next_cursor))
}
