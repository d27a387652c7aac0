//! Operations on the stored log, one module each: [`export`] streams entries out as CSV or
//! JSON lines, [`retention`] prunes old entries, [`erasure`] answers erasure requests.

mod erasure;
mod export;
mod retention;

pub use erasure::{
    ERASURE_ACTIVITY, ERASURE_BATCH, ERASURE_SCOPE, MIN_ERASURE_KEY, anonymize_user, pseudonym,
};
pub use export::{CSV_COLUMNS, export_csv, export_jsonl};
pub use retention::{PRUNE_BATCH, prune};
