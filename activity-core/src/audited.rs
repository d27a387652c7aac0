//! The tables of audited models, registered by `#[derive(ModelActivity)]`.
//!
//! A model whose struct carries `#[sea_orm(table_name = "...")]` (both SeaORM entity formats
//! do) registers its table at link time through [`inventory`], so a checker (activity-seaorm's
//! `checked` mode) knows every audited table without a list kept by hand. The derive reads the
//! name from the attribute and stays ORM-free. Models without that attribute (a hand-written
//! `EntityName`, a plain struct) register nothing; checked mode takes such tables explicitly.

/// One audited table: its name as SeaORM spells it, its schema if the entity names one, and
/// the model's scope (so a muted scope's writes are not reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditedTable {
    /// `#[sea_orm(table_name = "...")]`.
    pub table: &'static str,
    /// `#[sea_orm(schema_name = "...")]`, if any.
    pub schema: Option<&'static str>,
    /// The model's `ModelActivity::SCOPE`.
    pub scope: &'static str,
}

inventory::collect!(AuditedTable);

/// Every table registered by the derive in the program (one per model; a table derived twice,
/// e.g. the dense format's `Model` and `ModelEx`, shows twice).
pub fn audited_tables() -> impl Iterator<Item = &'static AuditedTable> {
    inventory::iter::<AuditedTable>.into_iter()
}
