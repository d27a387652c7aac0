//! Parsing of `#[activity(...)]` on the struct and on fields. Single attributes only; the
//! cross-field rules live in `expand::check`.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Attribute, Ident, LitStr, Path};

use crate::diag::Diagnostics;

const CONTAINER_KEYS: &str =
    "`scope`, `name`, `short_id`, `team`, `organization`, `snapshot`, `crate`";
const FIELD_KEYS: &str = "`exclude`, `include`, `mask`, `mask_keys`, `rename`, `signal_exclude`";

/// A value that may be given once; keeps the key's tokens for spans.
pub(crate) struct Once<T> {
    key: &'static str,
    pub(crate) value: Option<(TokenStream, T)>,
}

impl<T> Once<T> {
    fn new(key: &'static str) -> Self {
        Self { key, value: None }
    }

    fn set(&mut self, diag: &Diagnostics, at: &Path, value: T) {
        if self.value.is_some() {
            diag.spanned(at, format!("duplicate `activity({})`", self.key));
        } else {
            self.value = Some((at.to_token_stream(), value));
        }
    }

    pub(crate) fn get(&self) -> Option<&T> {
        self.value.as_ref().map(|(_, v)| v)
    }

    pub(crate) fn span(&self) -> Option<&TokenStream> {
        self.value.as_ref().map(|(t, _)| t)
    }

    pub(crate) fn is_set(&self) -> bool {
        self.value.is_some()
    }
}

/// `#[activity(...)]` on the struct.
pub(crate) struct Container {
    pub(crate) scope: Once<LitStr>,
    pub(crate) name: Once<Ident>,
    pub(crate) short_id: Once<Ident>,
    pub(crate) team: Once<Ident>,
    pub(crate) organization: Once<Ident>,
    pub(crate) snapshot: Once<()>,
    pub(crate) krate: Once<Path>,
}

impl Container {
    pub(crate) fn parse(diag: &Diagnostics, attrs: &[Attribute]) -> Self {
        let mut c = Container {
            scope: Once::new("scope"),
            name: Once::new("name"),
            short_id: Once::new("short_id"),
            team: Once::new("team"),
            organization: Once::new("organization"),
            snapshot: Once::new("snapshot"),
            krate: Once::new("crate"),
        };
        for attr in attrs.iter().filter(|a| a.path().is_ident("activity")) {
            let parsed = attr.parse_nested_meta(|meta| {
                let p = &meta.path;
                if p.is_ident("scope") {
                    let lit: LitStr = meta.value()?.parse()?;
                    if lit.value().is_empty() || lit.value().len() > 79 {
                        diag.spanned(&lit, "`scope` must be 1 to 79 characters");
                    }
                    c.scope.set(diag, p, lit);
                } else if p.is_ident("name") {
                    c.name.set(diag, p, meta.value()?.parse()?);
                } else if p.is_ident("short_id") {
                    c.short_id.set(diag, p, meta.value()?.parse()?);
                } else if p.is_ident("team") {
                    c.team.set(diag, p, meta.value()?.parse()?);
                } else if p.is_ident("organization") {
                    c.organization.set(diag, p, meta.value()?.parse()?);
                } else if p.is_ident("snapshot") {
                    c.snapshot.set(diag, p, ());
                } else if p.is_ident("crate") {
                    let lit: LitStr = meta.value()?.parse()?;
                    c.krate.set(diag, p, lit.parse()?);
                } else {
                    return Err(meta.error(format!(
                        "unknown `activity` attribute on the struct; expected one of {CONTAINER_KEYS}"
                    )));
                }
                Ok(())
            });
            if let Err(e) = parsed {
                diag.push(e);
            }
        }
        c
    }
}

/// `#[activity(...)]` on a field.
pub(crate) struct FieldAttrs {
    pub(crate) exclude: Once<()>,
    pub(crate) include: Once<()>,
    pub(crate) mask: Once<()>,
    pub(crate) mask_keys: Once<()>,
    pub(crate) rename: Once<LitStr>,
    pub(crate) signal_exclude: Once<()>,
}

impl FieldAttrs {
    pub(crate) fn parse(diag: &Diagnostics, attrs: &[Attribute]) -> Self {
        let mut f = FieldAttrs {
            exclude: Once::new("exclude"),
            include: Once::new("include"),
            mask: Once::new("mask"),
            mask_keys: Once::new("mask_keys"),
            rename: Once::new("rename"),
            signal_exclude: Once::new("signal_exclude"),
        };
        for attr in attrs.iter().filter(|a| a.path().is_ident("activity")) {
            let parsed = attr.parse_nested_meta(|meta| {
                let p = &meta.path;
                if p.is_ident("exclude") {
                    f.exclude.set(diag, p, ());
                } else if p.is_ident("include") {
                    f.include.set(diag, p, ());
                } else if p.is_ident("mask") {
                    f.mask.set(diag, p, ());
                } else if p.is_ident("mask_keys") {
                    f.mask_keys.set(diag, p, ());
                } else if p.is_ident("signal_exclude") {
                    f.signal_exclude.set(diag, p, ());
                } else if p.is_ident("rename") {
                    let lit: LitStr = meta.value()?.parse()?;
                    if lit.value().is_empty() {
                        diag.spanned(&lit, "`rename` must not be empty");
                    }
                    f.rename.set(diag, p, lit);
                } else {
                    return Err(meta.error(format!(
                        "unknown `activity` attribute on a field; expected one of {FIELD_KEYS}"
                    )));
                }
                Ok(())
            });
            if let Err(e) = parsed {
                diag.push(e);
            }
        }
        f
    }
}
