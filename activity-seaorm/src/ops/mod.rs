//! Operations on the stored log, one module each: [`export`] streams entries out as CSV, JSON
//! lines or OCSF events, [`retention`] prunes old entries, [`erasure`] answers erasure requests,
//! [`archive`] archives old entries to verified files before deleting them, [`report`] counts
//! entries by group, [`background`] logs from background work through a bounded queue,
//! [`alerts`] evaluates alert rules, [`lifecycle`] owns every copy of the log, so erasure
//! and retention reach the archives and the stream too, and [`seal`] makes the history
//! tamper-evident (signed Merkle blocks, proofs, verification).

pub mod alerts;
pub mod archive;
pub mod background;
pub mod erasure;
pub mod export;
pub mod lifecycle;
pub mod report;
pub mod retention;
pub mod seal;
