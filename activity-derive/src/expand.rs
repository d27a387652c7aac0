//! Validate the parsed attributes, then generate `impl ModelActivity`.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, LitStr};

use crate::attr::{Container, FieldAttrs, Once, SeaOrmContainer, SeaOrmField};
use crate::column;
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
    sea: SeaOrmField,
    /// The SeaORM column name; `None` for a field that is not a column (`#[sea_orm(ignore)]`, a
    /// relation of the dense format), which is never diffed and has no `FieldSpec`.
    column: Option<String>,
    /// Why the field is not a column, for errors.
    not_column: Option<String>,
    excluded: bool,
}

/// The derive's output: the impl, or the errors plus a stub impl (see [`fallback`]).
pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let diag = Diagnostics::default();
    let container = Container::parse(&diag, &input.attrs);
    let tokens = expand(&diag, input, &container);
    match diag.finish() {
        Ok(()) => tokens,
        Err(errors) => {
            let mut tokens = errors.into_compile_error();
            tokens.extend(fallback(input, &container));
            tokens
        }
    }
}

/// The impl; meaningful only if `diag` ends up without errors.
fn expand(diag: &Diagnostics, input: &DeriveInput, container: &Container) -> TokenStream {
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
            return TokenStream::new();
        }
    };

    let sea_container = SeaOrmContainer::parse(&input.attrs);
    let fields: Vec<Field<'_>> = named
        .iter()
        .filter_map(|f| {
            let ident = f.ident.as_ref()?;
            let attrs = FieldAttrs::parse(diag, &f.attrs);
            let sea = SeaOrmField::parse(&f.attrs);
            let not_column = column::not_a_column(&f.ty, &sea);
            let column = not_column
                .is_none()
                .then(|| column::column_name(ident, &sea, &sea_container));
            let common = COMMON_EXCLUSIONS.contains(&ident.unraw().to_string().as_str());
            let excluded = attrs.exclude.is_set() || (common && !attrs.include.is_set());
            Some(Field {
                ident,
                ty: &f.ty,
                attrs,
                sea,
                column,
                not_column,
                excluded,
            })
        })
        .collect();

    check(diag, input, container, &fields);
    let mut tokens = generate(input, container, &fields);
    tokens.extend(register_table(input, container, &sea_container));
    tokens.extend(behavior(container));
    tokens
}

/// With `#[activity(hooks)]`: `impl ActiveModelBehavior for ActiveModel` whose four hooks are
/// the library's (`activity_hooks!()`), for a model with no hook bodies of its own. The
/// `ActiveModel` is the one SeaORM's `DeriveEntityModel` generates beside the model.
fn behavior(c: &Container) -> TokenStream {
    let Some(at) = c.hooks.span() else {
        return TokenStream::new();
    };
    let span = at
        .clone()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span());
    let import = import(c);
    quote_spanned! {span=>
        const _: () = {
            #import
            #[automatically_derived]
            impl _activity::__private::ActiveModelBehavior for ActiveModel {
                _activity::activity_hooks!();
            }
        };
    }
}

/// Registers the model's table for checked mode (`activity_seaorm::checked`): an
/// `inventory::submit!` of the name in `#[sea_orm(table_name = "...")]`, read from the attribute
/// so the generated code stays ORM-free; and its `Entity` for `history`, through the crate
/// path's `register_history!` (a no-op in activity-core, which knows no ORM). Nothing for a model without the attribute, or a
/// generic one (a static cannot name its parameters; SeaORM models are never generic).
fn register_table(input: &DeriveInput, c: &Container, sea: &SeaOrmContainer) -> TokenStream {
    let Some(table) = &sea.table_name else {
        return TokenStream::new();
    };
    if !input.generics.params.is_empty() {
        return TokenStream::new();
    }
    let ident = &input.ident;
    let scope = c
        .scope
        .get()
        .cloned()
        .unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));
    let p = quote!(_activity::__private);
    let schema = match &sea.schema_name {
        Some(schema) => quote!(#p::Option::Some(#schema)),
        None => quote!(#p::Option::None),
    };
    let import = import(c);
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_qualifications, unused_extern_crates, clippy::all)]
        const _: () = {
            #import
            #p::inventory::submit! {
                #p::AuditedTable { table: #table, schema: #schema, scope: #scope }
            }
            // `DeriveEntityModel` (either format) defines `Entity` next to the model.
            #p::register_history! { Entity, #scope }
        };
    }
}

/// Emitted next to the errors of a failed derive: an impl that records nothing, so the code
/// that uses the model (`activity_hooks!()`, `diff`) does not add a cascade of "`Model` does not
/// implement `ModelActivity`" errors to the one mistake (thiserror's `fallback.rs` does the
/// same). It never runs: the crate does not compile. Not emitted when the `crate` path itself
/// is unreadable, since it could only name the wrong crate.
fn fallback(input: &DeriveInput, c: &Container) -> TokenStream {
    if c.krate_given && !c.krate.is_set() {
        return TokenStream::new();
    }
    let p = quote!(_activity::__private);
    model_activity_impl(
        &input.ident,
        &input.generics,
        c,
        quote! {
            const SCOPE: &'static #p::str = "";
            const FIELDS: &'static [#p::FieldSpec] = &[];
            fn activity_changes(&self, _: &Self, _: &mut #p::Vec<#p::Change>) {}
            fn activity_snapshot(&self, _: #p::ChangeAction, _: &mut #p::Vec<#p::Change>) {}
        },
    )
}

/// `impl ModelActivity` with `items`, inside `const _` with the runtime crate imported under a
/// private alias, so nothing leaks into the user's namespace.
fn model_activity_impl(
    ident: &Ident,
    generics: &syn::Generics,
    c: &Container,
    items: TokenStream,
) -> TokenStream {
    let (ig, tg, wc) = generics.split_for_impl();
    let import = import(c);
    let p = quote!(_activity::__private);
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_qualifications, unused_extern_crates, clippy::all)]
        const _: () = {
            #import
            #[automatically_derived]
            impl #ig #p::ModelActivity for #ident #tg #wc {
                #items
            }
        };
    }
}

/// The runtime crate under the private alias `_activity`.
fn import(c: &Container) -> TokenStream {
    match c.krate.get() {
        Some(path) => quote!(use #path as _activity;),
        None => quote!(
            extern crate activity_seaorm as _activity;
        ),
    }
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
        let Some(target) = slot.get() else {
            continue;
        };
        match fields.iter().find(|f| f.ident == target) {
            None => diag.spanned(
                target,
                format!("`activity({what} = {target})`: this struct has no field `{target}`"),
            ),
            Some(Field {
                not_column: Some(why),
                ..
            }) => diag.spanned(
                target,
                format!(
                    "`activity({what} = {target})`: `{target}` is not a database column ({why}), so it has no stored value"
                ),
            ),
            Some(_) => {}
        }
    }
    let tenant = |f: &Field<'_>| {
        [(&c.team, "team"), (&c.organization, "organization")]
            .into_iter()
            .find_map(|(slot, what)| (slot.get() == Some(f.ident)).then_some(what))
    };
    for f in fields {
        let a = &f.attrs;
        if let Some(why) = &f.not_column {
            // `exclude` is fine (and was once needed to compile): the field is skipped anyway.
            for (at, what) in [
                (a.mask.span(), "mask"),
                (a.mask_keys.span(), "mask_keys"),
                (a.include.span(), "include"),
                (a.rename.span(), "rename"),
                (a.signal_exclude.span(), "signal_exclude"),
            ] {
                if let Some(at) = at {
                    diag.spanned(at, format!("`{what}` has no effect: `{}` is not a database column ({why}) and is never recorded", f.ident.unraw()));
                }
            }
            continue;
        }
        // A mask that would not mask. One mistake, one error: the first reason that applies,
        // the leak before the no-op.
        for (slot, what) in [(&a.mask, "mask"), (&a.mask_keys, "mask_keys")] {
            if let Some(at) = slot.span() {
                if f.sea.primary_key {
                    diag.spanned(at, format!("`{what}` cannot hide a primary key: `{}` is stored unmasked as every entry's `item_id`; remove `{what}`", f.ident.unraw()));
                } else if let Some(role) = tenant(f) {
                    diag.spanned(at, format!("`{what}` cannot apply to the `{role}` field: `{}` is every entry's tenant and must stay exact; remove `{what}`", f.ident.unraw()));
                } else if a.exclude.is_set() {
                    diag.spanned(at, format!("`{what}` on an excluded field has no effect: remove `exclude` or `{what}`"));
                } else if f.excluded {
                    diag.spanned(at, format!("`{}` is excluded by the common exclusions, so `{what}` has no effect; add `include` to track it", f.ident));
                }
            }
        }
        if let (Some(_), Some(at)) = (a.with.get(), a.mask_keys.span()) {
            diag.spanned(
                at,
                "`mask_keys` masks the keys of a JSON object type; a field encoded `with` a \
                 function can be masked whole with `mask`",
            );
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
    let p = quote!(_activity::__private);
    let scope = c
        .scope
        .get()
        .cloned()
        .unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));
    let snapshot = c.snapshot.is_set();

    // Only columns are described and diffed; `Self::FIELDS[i]` below indexes this list.
    let fields: Vec<&Field<'_>> = fields.iter().filter(|f| f.column.is_some()).collect();
    let specs = fields.iter().map(|f| {
        let name = f.ident.unraw().to_string();
        let column = f.column.as_deref().unwrap_or_default();
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
                column: #column,
                display: #display,
                excluded: #excluded,
                signal_excluded: #signal_excluded,
                masking: #masking,
            }
        }
    });

    let tracked: Vec<(usize, &Field<'_>)> = fields
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, f)| !f.excluded)
        .collect();
    // Code that needs a trait of the field's type is spanned on the type, path included, so a
    // missing impl is reported on the field rather than on the derive.
    let compares = tracked.iter().map(|(i, f)| {
        let p = private_at(f.ty.span());
        let (before, after) = (value_of(f, false), value_of(f, true));
        quote_spanned! {f.ty.span()=>
            #p::compare_field(out, Self::SCOPE, &Self::FIELDS[#i], #before, #after);
        }
    });
    let snapshots = tracked.iter().map(|(i, f)| {
        let p = private_at(f.ty.span());
        let value = value_of(f, false);
        quote_spanned! {f.ty.span()=>
            #p::snapshot_field(out, Self::SCOPE, &Self::FIELDS[#i], #value, action);
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
        let at = private_at(f.ty.span());
        let value = value_of(f, false);
        Some(quote_spanned! {f.ty.span()=>
            fn #method(&self) -> #p::Option<#p::String> {
                #at::field_text(&Self::FIELDS[#i], #value)
            }
        })
    };
    let name_fn = text_fn(&c.name, "activity_name");
    let short_id_fn = text_fn(&c.short_id, "activity_short_id");
    let index_of = |slot: &Once<Ident>| {
        let target = slot.get();
        match fields
            .iter()
            .position(|f| target.is_some_and(|t| f.ident == t))
        {
            Some(i) => quote!(#p::Option::Some(#i)),
            None => quote!(#p::Option::None),
        }
    };
    let team_index = index_of(&c.team);
    let org_index = index_of(&c.organization);
    let team_fn = text_fn(&c.team, "activity_team_id");
    let org_fn = text_fn(&c.organization, "activity_organization_id");
    let field_json_fns = field_json(c, &fields);

    model_activity_impl(
        ident,
        &generics,
        c,
        quote! {
            const SCOPE: &'static #p::str = #scope;
            const FIELDS: &'static [#p::FieldSpec] = &[#(#specs),*];
            const SNAPSHOT: #p::bool = #snapshot;
            const TEAM_FIELD: #p::Option<::core::primitive::usize> = #team_index;
            const ORGANIZATION_FIELD: #p::Option<::core::primitive::usize> = #org_index;

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
            #field_json_fns
        },
    )
}

/// `activity_field_json` and `activity_set_field_json`, one arm per column (`fields` is the
/// column list, so arm `i` is `FIELDS[i]`); nothing when no arm is needed (the defaults apply).
///
/// Every column of a model is read, excluded ones too, yet the derive must not require
/// `ActivityValue` of a type it did not require it of before (an excluded field's, one of a type
/// parameter without the bound). So each arm picks its implementation by autoref
/// specialization: method lookup on `Field(&x)` first tries the by-value receiver, where only
/// the trait implemented for `T: ActivityValue` applies, then `&Field(&x)`, where the fallback
/// (`None`, `false`) always does. The helpers are items of the method bodies, out of the user's
/// namespace, and named `__Activity*` to stay out of the way of the only user tokens there (field
/// names, `with` paths). A field encoded `with` a function reads as that function's output when
/// the generated code already calls it (a recorded or named field: no new requirement on the
/// path), and is never set (the function has no inverse).
fn field_json(c: &Container, fields: &[&Field<'_>]) -> TokenStream {
    let p = quote!(_activity::__private);
    let named = [&c.name, &c.short_id, &c.team, &c.organization].map(|slot| slot.get());
    let mut get_arms = Vec::new();
    let mut set_arms = Vec::new();
    let (mut probe_get, mut probe_set) = (false, false);
    for (i, f) in fields.iter().enumerate() {
        let member = f.ident;
        match f.attrs.with.get() {
            Some(path) => {
                let used = !f.excluded || named.iter().flatten().any(|n| *n == f.ident);
                if used {
                    get_arms.push(quote! {
                        #i => #p::Option::Some(#path(&self.#member)),
                    });
                }
            }
            None => {
                probe_get = true;
                probe_set = true;
                get_arms.push(quote! {
                    #i => __ActivityField(&self.#member).__activity_json(),
                });
                set_arms.push(quote! {
                    #i => __ActivityFieldMut(&mut self.#member).__activity_set(value),
                });
            }
        }
    }
    let json = quote!(#p::serde_json::Value);
    let sized = quote!(::core::marker::Sized);
    let get_support = probe_get.then(|| {
        quote! {
            struct __ActivityField<'a, T: ?#sized>(&'a T);
            trait __ActivityEncoded {
                fn __activity_json(self) -> #p::Option<#json>;
            }
            impl<T: #p::ActivityValue + ?#sized> __ActivityEncoded for __ActivityField<'_, T> {
                fn __activity_json(self) -> #p::Option<#json> {
                    #p::Option::Some(#p::ActivityValue::encode(self.0))
                }
            }
            trait __ActivityNotEncoded {
                fn __activity_json(self) -> #p::Option<#json>;
            }
            impl<T: ?#sized> __ActivityNotEncoded for &__ActivityField<'_, T> {
                fn __activity_json(self) -> #p::Option<#json> {
                    #p::Option::None
                }
            }
        }
    });
    let set_support = probe_set.then(|| {
        quote! {
            struct __ActivityFieldMut<'a, T: ?#sized>(&'a mut T);
            trait __ActivityDecoded {
                fn __activity_set(self, value: &#json) -> #p::bool;
            }
            impl<T: #p::ActivityValue> __ActivityDecoded for __ActivityFieldMut<'_, T> {
                fn __activity_set(self, value: &#json) -> #p::bool {
                    match <T as #p::ActivityValue>::decode(value) {
                        #p::Option::Some(decoded) => {
                            *self.0 = decoded;
                            true
                        }
                        #p::Option::None => false,
                    }
                }
            }
            trait __ActivityNotDecoded {
                fn __activity_set(self, value: &#json) -> #p::bool;
            }
            impl<T: ?#sized> __ActivityNotDecoded for &__ActivityFieldMut<'_, T> {
                fn __activity_set(self, _: &#json) -> #p::bool {
                    false
                }
            }
        }
    });
    let get_fn = (!get_arms.is_empty()).then(|| {
        quote! {
            fn activity_field_json(
                &self,
                index: ::core::primitive::usize,
            ) -> #p::Option<#json> {
                #get_support
                match index {
                    #(#get_arms)*
                    _ => #p::Option::None,
                }
            }
        }
    });
    let set_fn = (!set_arms.is_empty()).then(|| {
        quote! {
            fn activity_set_field_json(
                &mut self,
                index: ::core::primitive::usize,
                value: &#json,
            ) -> #p::bool {
                #set_support
                match index {
                    #(#set_arms)*
                    _ => false,
                }
            }
        }
    });
    quote!(#get_fn #set_fn)
}

/// A reference to the field's value as the diff reads it: `&owner.field`, or, for a field
/// encoded `with` a function, `&path(&owner.field)` (a JSON value).
fn value_of(f: &Field<'_>, of_after: bool) -> TokenStream {
    let member = at_type(f);
    // The owner's tokens are spanned on the type too, so a missing impl names the field.
    let owner = if of_after {
        quote_spanned!(f.ty.span()=> after)
    } else {
        quote_spanned!(f.ty.span()=> self)
    };
    match f.attrs.with.get() {
        Some(path) => quote_spanned!(f.ty.span()=> &#path(&#owner.#member)),
        None => quote_spanned!(f.ty.span()=> &#owner.#member),
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
    if let Some(bound) = c.bound.get() {
        let where_clause = generics.make_where_clause();
        where_clause.predicates.extend(bound.iter().cloned());
        return generics;
    }
    let params: Vec<&Ident> = input.generics.type_params().map(|t| &t.ident).collect();
    if params.is_empty() {
        return generics;
    }
    let named = [&c.name, &c.short_id, &c.team, &c.organization].map(|slot| slot.get());
    let mut predicates = Vec::new();
    for f in fields.iter().filter(|f| f.column.is_some()) {
        let used = !f.excluded || named.iter().flatten().any(|n| *n == f.ident);
        if !used || f.attrs.with.is_set() || !mentions(f.ty.to_token_stream(), &params) {
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
