//! Streaming export: CSV (for spreadsheets), JSON lines (exact) and OCSF events (for security
//! tools), one page at a time.

use std::io::Write;

use activity_core::feed::{FeedEntry, Reveal};
use activity_core::query::MAX_PAGE_SIZE;
use activity_core::{ActivityEntry, ActivityQuery};
use sea_orm::ConnectionTrait;

use crate::errors::Error;
use crate::read::load_activity;

/// The CSV columns, in order: `id, created_at, organization_id, team_id, user_id, user_name,
/// impersonated_by, was_impersonated, is_system, scope, item_id, activity, detail, request_id,
/// correlation_id, ip_address, user_agent, client`. `created_at` is RFC 3339 (UTC), `detail`
/// is its JSON text, booleans are `true`/`false`, NULL is empty. Fields the query's
/// [`Reader`](activity_core::Reader) may not see (request origin, impersonation; see
/// [`Reveal`]) are empty too.
///
/// Cells are neutralized against spreadsheet formula injection (see [`export_csv`]): a cell
/// that starts with `=`, `+`, `-`, `@`, tab or carriage return gets a `'` in front.
pub const CSV_COLUMNS: [&str; 18] = [
    "id",
    "created_at",
    "organization_id",
    "team_id",
    "user_id",
    "user_name",
    "impersonated_by",
    "was_impersonated",
    "is_system",
    "scope",
    "item_id",
    "activity",
    "detail",
    "request_id",
    "correlation_id",
    "ip_address",
    "user_agent",
    "client",
];

/// Stream every entry matching `query` (all pages, in its order) to `out` as CSV with a header
/// row (see [`CSV_COLUMNS`]). Memory stays constant: one page at a time. Returns the row count.
///
/// CSV exports are opened in spreadsheets, and the log holds text that users and clients chose
/// (names, user agents, item ids): a cell such as `=HYPERLINK(..)` would run as a formula on
/// the auditor's machine. So every cell that starts with `=`, `+`, `-`, `@`, tab or carriage
/// return is written with a leading `'` (the OWASP "CSV injection" advice), which spreadsheets
/// show as text. That changes such cells (a user id `-5` is written `'-5`); use
/// [`export_jsonl`] when the exact values matter. `detail` is JSON text, which starts with
/// `{`, so it is never changed.
pub async fn export_csv<C: ConnectionTrait, W: Write>(
    db: &C,
    query: &ActivityQuery,
    out: W,
) -> Result<u64, Error> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(CSV_COLUMNS)?;
    let reveal = reveal(query);
    let count = for_each_page(db, query, |entries| {
        for e in entries {
            let e = &FeedEntry::new(e, reveal);
            let detail = serde_json::to_string(&e.detail)?;
            let opt = |v: &Option<String>| v.clone().unwrap_or_default();
            csv.write_record(
                [
                    e.id.to_string(),
                    e.created_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    opt(&e.organization_id),
                    opt(&e.team_id),
                    opt(&e.user_id),
                    opt(&e.user_name),
                    opt(&e.impersonated_by),
                    e.was_impersonated
                        .map(|w| w.to_string())
                        .unwrap_or_default(),
                    e.is_system.to_string(),
                    e.scope.clone(),
                    opt(&e.item_id),
                    e.activity.clone(),
                    detail,
                    opt(&e.request_id),
                    opt(&e.correlation_id),
                    opt(&e.ip_address),
                    opt(&e.user_agent),
                    opt(&e.client),
                ]
                .into_iter()
                .map(neutralize),
            )?;
        }
        Ok(())
    })
    .await?;
    csv.flush()?;
    Ok(count)
}

/// The characters that make a spreadsheet read a cell as a formula (or, for tab and carriage
/// return, that some spreadsheets strip before doing so).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `cell`, with a `'` in front if it starts like a formula.
fn neutralize(cell: String) -> String {
    if cell.starts_with(FORMULA_STARTS) {
        let mut out = String::with_capacity(cell.len() + 1);
        out.push('\'');
        out.push_str(&cell);
        out
    } else {
        cell
    }
}

/// Stream every entry matching `query` to `out` as JSON lines: one [`ActivityEntry`] per line,
/// in its serde shape, exactly as stored (no formula neutralization). Returns the row count.
///
/// For a [`Reader`](activity_core::Reader) who may not see every field, each line is the
/// entry as they may read it ([`FeedEntry`]: the same keys, the hidden ones left out rather
/// than written as `null` or `false`).
pub async fn export_jsonl<C: ConnectionTrait, W: Write>(
    db: &C,
    query: &ActivityQuery,
    out: W,
) -> Result<u64, Error> {
    json_lines(db, query, out, |out, e, reveal| {
        if reveal == Reveal::everything() {
            serde_json::to_writer(out, e)
        } else {
            serde_json::to_writer(out, &FeedEntry::new(e, reveal))
        }
    })
    .await
}

/// Stream every entry matching `query` to `out` as OCSF events in JSON lines: one *API
/// Activity* event per entry (the mapping: [`activity_core::ocsf`]), carrying its correlation
/// id (`metadata.correlation_uid`) and, with the `otel` feature, its trace id (`trace.uid`), so
/// a SIEM joins the log to the rest of a request. Fields the query's
/// [`Reader`](activity_core::Reader) may not see are absent, as in [`export_jsonl`]. Returns
/// the event count.
pub async fn export_ocsf<C: ConnectionTrait, W: Write>(
    db: &C,
    query: &ActivityQuery,
    out: W,
) -> Result<u64, Error> {
    json_lines(db, query, out, |out, e, reveal| {
        serde_json::to_writer(
            out,
            &activity_core::ocsf::api_activity(&FeedEntry::new(e, reveal)),
        )
    })
    .await
}

/// Every entry matching `query`, one JSON line each as `line` writes it for the query's
/// reader, then the writer flushed. Returns the line count.
async fn json_lines<C: ConnectionTrait, W: Write>(
    db: &C,
    query: &ActivityQuery,
    mut out: W,
    line: impl Fn(&mut W, &ActivityEntry, Reveal) -> serde_json::Result<()>,
) -> Result<u64, Error> {
    let reveal = reveal(query);
    let count = for_each_page(db, query, |entries| {
        for e in entries {
            line(&mut out, e, reveal)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    })
    .await?;
    out.flush()?;
    Ok(count)
}

/// What the query's reader may see of an entry's origin (everything without a reader, which
/// only a configuration without a read policy allows).
fn reveal(query: &ActivityQuery) -> Reveal {
    query
        .reader
        .as_ref()
        .map_or(Reveal::everything(), |r| r.reveal)
}

async fn for_each_page<C: ConnectionTrait>(
    db: &C,
    query: &ActivityQuery,
    mut each: impl FnMut(&[ActivityEntry]) -> Result<(), Error>,
) -> Result<u64, Error> {
    let mut q = query.clone().limit(MAX_PAGE_SIZE);
    q.cursor = None;
    let mut count = 0u64;
    loop {
        let page = load_activity(db, &q).await?;
        each(&page.results)?;
        count += page.results.len() as u64;
        match page.next_cursor {
            Some(cursor) => q.cursor = Some(cursor),
            None => return Ok(count),
        }
    }
}
