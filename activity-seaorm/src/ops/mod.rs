//! Operations on the stored log, one module each: [`export`] streams entries out as CSV or
//! JSON lines, [`retention`] prunes old entries, [`erasure`] answers erasure requests,
//! [`archive`] archives old entries to verified files before deleting them, [`report`] counts
//! entries by group, [`background`] logs from background work through a bounded queue,
//! [`alerts`] evaluates alert rules.

pub mod alerts;
pub mod archive;
pub mod background;
pub mod erasure;
pub mod export;
pub mod report;
pub mod retention;
