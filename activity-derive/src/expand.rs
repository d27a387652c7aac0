//! Validate the parsed attributes, then generate `impl ModelActivity`.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, LitStr};

use crate::attr::{Container, FieldAttrs, Once};
use crate::diag::Diagnostics;

/// Must match `activity_core::COMMON_EXCLUSIONS` (a test in activity-core checks it).
const COMMON_EXCLUSIONS: &[&str] = &[
    "id",
    "uuid",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "last_modified_at",
    "last_modified_by",
];

struct Field<'a> {
    ident: &'a Ident,
    ty: &'a syn::Type,
    attrs: FieldAttrs,
    excluded: bool,
}

pub(crate) fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let diag = Diagnostics::default();
    let container = Container::parse(&diag, &input.attrs);

    // Not a struct with named fields: point at what makes it so.
    let named = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => Ok(&named.named),
            Fields::Unnamed(unnamed) => Err(unnamed.to_token_stream()),
            Fields::Unit => Err(input.ident.to_token_stream()),
        },
        Data::Enum(e) => Err(e.enum_token.to_token_stream()),
        Data::Union(u) => Err(u.union_token.to_token_stream()),
    };
    let named = match named {
        Ok(named) => named,
        Err(culprit) => {
            diag.spanned(
                culprit,
                "`ModelActivity` can only be derived for a struct with named fields",
            );
            return diag.finish().map(|()| TokenStream::new());
        }
    };

    let fields: Vec<Field<'_>> = named
        .iter()
        .filter_map(|f| {
            let ident = f.ident.as_ref()?;
            let attrs = FieldAttrs::parse(&diag, &f.attrs);
            let common = COMMON_EXCLUSIONS.contains(&ident.to_string().as_str());
            let excluded = attrs.exclude.is_set() || (common && !attrs.include.is_set());
            Some(Field {
                ident,
                ty: &f.ty,
                attrs,
                excluded,
            })
        })
        .collect();

    check(&diag, input, &container, &fields);
    diag.finish()?;
    Ok(generate(input, &container, &fields))
}

/// Cross-field rules; each error is spanned on the token to fix.
fn check(diag: &Diagnostics, input: &DeriveInput, c: &Container, fields: &[Field<'_>]) {
    if !c.scope.is_set() && input.ident == "Model" {
        diag.spanned(
            &input.ident,
            "a SeaORM `Model` needs an explicit scope: add `#[activity(scope = \"YourScope\")]`",
        );
    }
    for (slot, what) in [
        (&c.name, "name"),
        (&c.short_id, "short_id"),
        (&c.team, "team"),
        (&c.organization, "organization"),
    ] {
        if let Some(target) = slot.get()
            && !fields.iter().any(|f| f.ident == target)
        {
            diag.spanned(
                target,
                format!("`activity({what} = {target})`: this struct has no field `{target}`"),
            );
        }
    }
    for f in fields {
        let a = &f.attrs;
        for (slot, what) in [(&a.mask, "mask"), (&a.mask_keys, "mask_keys")] {
            if let Some(at) = slot.span() {
                if a.exclude.is_set() {
                    diag.spanned(at, format!("`{what}` on an excluded field has no effect: remove `exclude` or `{what}`"));
                } else if f.excluded {
                    diag.spanned(at, format!("`{}` is excluded by the common exclusions, so `{what}` has no effect; add `include` to track it", f.ident));
                }
            }
        }
        if let (Some(_), Some(at)) = (a.mask.get(), a.mask_keys.span()) {
            diag.spanned(at, "use either `mask` or `mask_keys`, not both");
        }
        if let (Some(_), Some(at)) = (a.exclude.get(), a.include.span()) {
            diag.spanned(at, "a field cannot be both `exclude` and `include`");
        }
        if let (Some(_), Some(at)) = (a.exclude.get(), a.signal_exclude.span()) {
            diag.spanned(at, "`signal_exclude` on an excluded field has no effect");
        }
        if let (Some(_), Some(at)) = (a.exclude.get(), a.rename.span()) {
            diag.spanned(at, "`rename` on an excluded field has no effect");
        }
    }
}

fn generate(input: &DeriveInput, c: &Container, fields: &[Field<'_>]) -> TokenStream {
    let ident = &input.ident;
    let generics = with_inferred_bounds(input, c, fields);
    let (ig, tg, wc) = generics.split_for_impl();
    let import = match c.krate.get() {
        Some(path) => quote!(use #path as _activity;),
        None => quote!(
            extern crate activity_seaorm as _activity;
        ),
    };
    let p = quote!(_activity::__private);
    let scope = c
        .scope
        .get()
        .cloned()
        .unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));
    let snapshot = c.snapshot.is_set();

    let specs = fields.iter().map(|f| {
        let name = f.ident.to_string();
        let display = f
            .attrs
            .rename
            .get()
            .map_or_else(|| name.clone(), LitStr::value);
        let excluded = f.excluded;
        let signal_excluded = f.attrs.signal_exclude.is_set();
        let masking = if f.attrs.mask.is_set() {
            quote!(#p::Masking::Full)
        } else if f.attrs.mask_keys.is_set() {
            quote!(#p::Masking::Keys)
        } else {
            quote!(#p::Masking::None)
        };
        quote! {
            #p::FieldSpec {
                name: #name,
                display: #display,
                excluded: #excluded,
                signal_excluded: #signal_excluded,
                masking: #masking,
            }
        }
    });

    let tracked: Vec<(usize, &Field<'_>)> = fields
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.excluded)
        .collect();
    // Code that needs a trait of the field's type is spanned on the type, path included, so a
    // missing impl is reported on the field rather than on the derive.
    let compares = tracked.iter().map(|(i, f)| {
        let member = at_type(f);
        let p = private_at(f.ty.span());
        quote_spanned! {f.ty.span()=>
            #p::compare_field(out, Self::SCOPE, &Self::FIELDS[#i], &self.#member, &after.#member);
        }
    });
    let snapshots = tracked.iter().map(|(i, f)| {
        let member = at_type(f);
        let p = private_at(f.ty.span());
        quote_spanned! {f.ty.span()=>
            #p::snapshot_field(out, Self::SCOPE, &Self::FIELDS[#i], &self.#member, action);
        }
    });
    let keyed_checks = tracked
        .iter()
        .filter(|(_, f)| f.attrs.mask_keys.is_set())
        .map(|(_, f)| {
            let member = at_type(f);
            let p = private_at(f.ty.span());
            quote_spanned! {f.ty.span()=> #p::assert_keyed(&self.#member); }
        });

    let text_fn = |slot: &Once<Ident>, method: &str| {
        let method = Ident::new(method, Span::call_site());
        let target = slot.get()?;
        let (i, f) = fields.iter().enumerate().find(|(_, f)| f.ident == target)?;
        let member = at_type(f);
        let at = private_at(f.ty.span());
        Some(quote_spanned! {f.ty.span()=>
            fn #method(&self) -> #p::Option<#p::String> {
                #at::field_text(&Self::FIELDS[#i], &self.#member)
            }
        })
    };
    let name_fn = text_fn(&c.name, "activity_name");
    let short_id_fn = text_fn(&c.short_id, "activity_short_id");
    let team_fn = text_fn(&c.team, "activity_team_id");
    let org_fn = text_fn(&c.organization, "activity_organization_id");

    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_qualifications, unused_extern_crates, clippy::all)]
        const _: () = {
            #import
            #[automatically_derived]
            impl #ig #p::ModelActivity for #ident #tg #wc {
                const SCOPE: &'static #p::str = #scope;
                const FIELDS: &'static [#p::FieldSpec] = &[#(#specs),*];
                const SNAPSHOT: #p::bool = #snapshot;

                #[inline]
                fn activity_changes(&self, after: &Self, out: &mut #p::Vec<#p::Change>) {
                    #(#keyed_checks)*
                    #(#compares)*
                }

                fn activity_snapshot(&self, action: #p::ChangeAction, out: &mut #p::Vec<#p::Change>) {
                    #(#snapshots)*
                }

                #name_fn
                #short_id_fn
                #team_fn
                #org_fn
            }
        };
    }
}

/// `_activity::__private` with every token at `span`.
fn private_at(span: Span) -> TokenStream {
    quote_spanned!(span=> _activity::__private)
}

/// The field's name re-spanned on its type, for `self.<field>` in code spanned on the type.
fn at_type(f: &Field<'_>) -> Ident {
    let mut member = f.ident.clone();
    member.set_span(f.ty.span());
    member
}

/// The input's generics plus `FieldType: ActivityValue` (and `KeyedValue` for `mask_keys`) for
/// every used field whose type mentions a type parameter, like serde's inferred bounds.
fn with_inferred_bounds(input: &DeriveInput, c: &Container, fields: &[Field<'_>]) -> syn::Generics {
    let mut generics = input.generics.clone();
    let params: Vec<&Ident> = input.generics.type_params().map(|t| &t.ident).collect();
    if params.is_empty() {
        return generics;
    }
    let named = [&c.name, &c.short_id, &c.team, &c.organization].map(|slot| slot.get());
    let mut predicates = Vec::new();
    for f in fields {
        let used = !f.excluded || named.iter().flatten().any(|n| *n == f.ident);
        if !used || !mentions(f.ty.to_token_stream(), &params) {
            continue;
        }
        let ty = f.ty;
        let p = private_at(f.ty.span());
        predicates.push(quote_spanned!(f.ty.span()=> #ty: #p::ActivityValue));
        if f.attrs.mask_keys.is_set() && !f.excluded {
            predicates.push(quote_spanned!(f.ty.span()=> #ty: #p::KeyedValue));
        }
    }
    let where_clause = generics.make_where_clause();
    for predicate in predicates {
        if let Ok(predicate) = syn::parse2(predicate) {
            where_clause.predicates.push(predicate);
        }
    }
    generics
}

/// Whether `tokens` name one of `params` anywhere (nested groups included).
fn mentions(tokens: TokenStream, params: &[&Ident]) -> bool {
    tokens.into_iter().any(|t| match t {
        proc_macro2::TokenTree::Ident(i) => params.iter().any(|p| **p == i),
        proc_macro2::TokenTree::Group(g) => mentions(g.stream(), params),
        _ => false,
    })
}
