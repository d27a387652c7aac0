//! Parsing of `#[activity(...)]` on the struct and on fields, and of the few `#[sea_orm(...)]`
//! keys that decide what a column is. Single attributes only; the cross-field rules live in
//! `expand::check`.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Ident, LitStr, Path, Token};

use crate::diag::Diagnostics;

const CONTAINER_KEYS: &str =
    "`scope`, `name`, `short_id`, `team`, `organization`, `snapshot`, `hooks`, `bound`, `crate`";
const FIELD_KEYS: &str =
    "`exclude`, `include`, `mask`, `mask_keys`, `rename`, `signal_exclude`, `with`";

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
    /// Generate `impl ActiveModelBehavior for ActiveModel` with the activity hooks, for models
    /// without hook bodies of their own.
    pub(crate) hooks: Once<()>,
    /// `bound = "T: Trait, .."`: the where-clause of the generated impl, in place of the
    /// inferred `FieldType: ActivityValue` bounds (as serde's `bound`).
    pub(crate) bound: Once<Vec<syn::WherePredicate>>,
    pub(crate) krate: Once<Path>,
    /// Whether a `crate` key was written, even one whose path failed to parse: then the
    /// fallback impl cannot know which crate to name and is not emitted.
    pub(crate) krate_given: bool,
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
            hooks: Once::new("hooks"),
            bound: Once::new("bound"),
            krate: Once::new("crate"),
            krate_given: false,
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
                } else if p.is_ident("hooks") {
                    c.hooks.set(diag, p, ());
                } else if p.is_ident("bound") {
                    let lit: LitStr = meta.value()?.parse()?;
                    let parser = syn::punctuated::Punctuated::<
                        syn::WherePredicate,
                        Token![,],
                    >::parse_terminated;
                    match syn::parse::Parser::parse_str(parser, &lit.value()) {
                        Ok(list) => c.bound.set(diag, p, list.into_iter().collect()),
                        Err(e) => diag.spanned(&lit, format!("`bound`: {e}")),
                    }
                } else if p.is_ident("crate") {
                    c.krate_given = true;
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
    /// `with = path`: a function `fn(&FieldType) -> serde_json::Value` that encodes the field,
    /// for types without an `ActivityValue` impl; values are compared by their encoding.
    pub(crate) with: Once<Path>,
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
            with: Once::new("with"),
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
                } else if p.is_ident("with") {
                    let path: Path = meta.value()?.parse()?;
                    f.with.set(diag, p, path);
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

/// What `#[sea_orm(...)]` on the struct says about column names. Read leniently: SeaORM's own
/// derives report mistakes in `#[sea_orm]`, so a key we do not know, or cannot read, is skipped.
#[derive(Default)]
pub(crate) struct SeaOrmContainer {
    /// `rename_all = "..."`: the case style of every column name.
    pub(crate) rename_all: Option<String>,
    /// `table_name = "..."`: the model's table, registered for checked mode.
    pub(crate) table_name: Option<String>,
    /// `schema_name = "..."`.
    pub(crate) schema_name: Option<String>,
}

impl SeaOrmContainer {
    pub(crate) fn parse(attrs: &[Attribute]) -> Self {
        let mut c = SeaOrmContainer::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("sea_orm")) {
            let _ = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename_all") {
                    c.rename_all = Some(meta.value()?.parse::<LitStr>()?.value());
                    Ok(())
                } else if meta.path.is_ident("table_name") {
                    c.table_name = Some(meta.value()?.parse::<LitStr>()?.value());
                    Ok(())
                } else if meta.path.is_ident("schema_name") {
                    c.schema_name = Some(meta.value()?.parse::<LitStr>()?.value());
                    Ok(())
                } else {
                    skip_value(&meta)
                }
            });
        }
        c
    }
}

/// What `#[sea_orm(...)]` on a field says: whether it is a column, a key, and its name.
#[derive(Default)]
pub(crate) struct SeaOrmField {
    /// `primary_key`: the value becomes the entry's `item_id`.
    pub(crate) primary_key: bool,
    /// `ignore`: not a column (SeaORM fills it with `Default` on load).
    pub(crate) ignore: bool,
    /// The relation key that marks a relation field of the dense format (`has_many`, ...).
    pub(crate) relation: Option<&'static str>,
    /// `column_name = "..."`.
    pub(crate) column_name: Option<String>,
    /// `enum_name = "..."`: the `Column` variant, whose snake case is the default column name.
    pub(crate) enum_name: Option<String>,
}

/// `#[sea_orm(...)]` keys that only relation fields carry (`#[sea_orm::model]` entities).
const RELATION_KEYS: &[&str] = &["has_many", "has_one", "belongs_to", "self_ref"];

impl SeaOrmField {
    pub(crate) fn parse(attrs: &[Attribute]) -> Self {
        let mut f = SeaOrmField::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("sea_orm")) {
            let _ = attr.parse_nested_meta(|meta| {
                let p = &meta.path;
                if p.is_ident("primary_key") {
                    f.primary_key = true;
                } else if p.is_ident("ignore") {
                    f.ignore = true;
                } else if p.is_ident("column_name") {
                    f.column_name = Some(meta.value()?.parse::<LitStr>()?.value());
                    return Ok(());
                } else if p.is_ident("enum_name") {
                    f.enum_name = Some(meta.value()?.parse::<LitStr>()?.value());
                    return Ok(());
                } else if let Some(key) = RELATION_KEYS.iter().find(|k| p.is_ident(k)) {
                    f.relation = Some(key);
                }
                skip_value(&meta)
            });
        }
        f
    }
}

/// Skip whatever follows a key: `= value` up to the next comma, or one `(...)` group.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    let input = meta.input;
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        while !input.is_empty() && !input.peek(Token![,]) {
            input.parse::<TokenTree>()?;
        }
    } else if !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<TokenTree>()?;
    }
    Ok(())
}
