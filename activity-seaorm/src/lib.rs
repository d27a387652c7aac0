//! SeaORM integration.
#![deny(missing_docs)]
pub use activity_core::*;
