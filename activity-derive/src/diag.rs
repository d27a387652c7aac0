//! Error accumulation: report every mistake in one build, each spanned on its culprit.

use std::cell::RefCell;
use std::fmt::Display;

use quote::ToTokens;

/// Collects errors; [`Diagnostics::finish`] combines them.
#[derive(Default)]
pub(crate) struct Diagnostics {
    errors: RefCell<Vec<syn::Error>>,
}

impl Diagnostics {
    pub(crate) fn spanned(&self, at: impl ToTokens, msg: impl Display) {
        self.push(syn::Error::new_spanned(at.into_token_stream(), msg));
    }

    pub(crate) fn push(&self, e: syn::Error) {
        self.errors.borrow_mut().push(e);
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.errors
            .into_inner()
            .into_iter()
            .reduce(|mut a, e| {
                a.combine(e);
                a
            })
            .map_or(Ok(()), Err)
    }
}
