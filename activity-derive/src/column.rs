//! Which fields are database columns, and the column name SeaORM gives each one.
//!
//! The hooks pair SeaORM's `Column` values with `FieldSpec`s by this name, so it must be exactly
//! what `#[derive(DeriveEntityModel)]` produces. This mirrors sea-orm-macros 2.0.4
//! (`derives/entity_model.rs`, `derives/column.rs`, `derives/util.rs`) with the same `heck`
//! major version; a test in `activity-tests` compares the result with `Column::as_str()`.

use heck::{
    ToKebabCase, ToLowerCamelCase, ToShoutySnakeCase, ToSnakeCase, ToTitleCase, ToUpperCamelCase,
};
use syn::ext::IdentExt;
use syn::{Ident, Type};

use crate::attr::{SeaOrmContainer, SeaOrmField};

/// Why a field is not a column, for error messages; `None` for a column.
pub(crate) fn not_a_column(ty: &Type, sea: &SeaOrmField) -> Option<String> {
    if sea.ignore {
        return Some("it is `#[sea_orm(ignore)]`".to_owned());
    }
    if let Some(key) = sea.relation {
        return Some(format!("it is a `#[sea_orm({key})]` relation"));
    }
    relation_type(ty).map(|wrapper| format!("it is a `{wrapper}<...>` relation"))
}

/// `HasMany`, `HasOne` or `BelongsTo` when the type's last path segment is one of them: how
/// SeaORM's `CompoundType::matches_type` tells a relation field from a column.
fn relation_type(ty: &Type) -> Option<&'static str> {
    let Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    ["HasMany", "HasOne", "BelongsTo"]
        .into_iter()
        .find(|w| last.ident == w)
}

/// The column name SeaORM derives for a field: `column_name = "..."` if given; else, under
/// `#[sea_orm(rename_all = "...")]`, the field's UpperCamelCase in that style; else the
/// snake case of the field (without `r#`) when that differs from it; else the snake case of
/// the `Column` variant (`enum_name`, or the field's UpperCamelCase, which gives the field back).
pub(crate) fn column_name(ident: &Ident, sea: &SeaOrmField, container: &SeaOrmContainer) -> String {
    if let Some(name) = &sea.column_name {
        return name.clone();
    }
    let original = ident.unraw().to_string();
    let variant = original.to_upper_camel_case();
    if let Some(style) = container.rename_all.as_deref()
        && let Some(renamed) = convert_case(&variant, style)
    {
        return renamed;
    }
    if original != variant.to_snake_case() {
        return original.to_snake_case();
    }
    match &sea.enum_name {
        Some(enum_name) => enum_name.to_snake_case(),
        None => variant.to_snake_case(),
    }
}

/// sea-orm-macros' `CaseStyle::from_str` and `convert_case`; `None` for an unknown style
/// (SeaORM reports it).
fn convert_case(s: &str, style: &str) -> Option<String> {
    Some(match style {
        "camel_case" | "PascalCase" => s.to_upper_camel_case(),
        "camelCase" => {
            let upper = s.to_upper_camel_case();
            let mut chars = upper.chars();
            chars
                .next()
                .map(|c| c.to_lowercase().chain(chars).collect())
                .unwrap_or_default()
        }
        "snake_case" | "snek_case" => s.to_snake_case(),
        "kebab_case" | "kebab-case" => s.to_kebab_case(),
        "SCREAMING-KEBAB-CASE" => s.to_kebab_case().to_uppercase(),
        "shouty_snake_case" | "shouty_snek_case" | "SCREAMING_SNAKE_CASE" => {
            s.to_shouty_snake_case()
        }
        "title_case" => s.to_title_case(),
        "mixed_case" => s.to_lower_camel_case(),
        "lowercase" => s.to_lowercase(),
        "UPPERCASE" => s.to_uppercase(),
        _ => return None,
    })
}
