//! `#[derive(ModelActivity)]`: generates change detection, exclusion and masking lists for a
//! model. The runtime lives in `activity-core`; generated code names only that crate, through
//! the facade `activity_seaorm` by default (`#[activity(crate = "activity_core")]` otherwise).
#![deny(missing_docs)]

mod attr;
mod column;
mod diag;
mod expand;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derive `ModelActivity`. See the `activity-seaorm` crate docs for the attributes.
///
/// `sea_orm` is declared as a helper too, because the derive reads `#[sea_orm(primary_key,
/// ignore, column_name, enum_name, rename_all)]` and the relation keys: so a model that is not
/// (or not yet) a SeaORM entity can say the same, as the tests in `activity-core` do.
#[proc_macro_derive(ModelActivity, attributes(activity, sea_orm))]
pub fn derive_model_activity(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}
