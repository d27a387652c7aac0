//! The `activity_log` table as a SeaORM entity, and the conversion from [`ActivityEntry`].

use activity_core::{ActivityConfig, ActivityEntry, Detail};
use sea_orm::entity::prelude::*;
use sea_orm::{NotSet, Set};

/// `activity_log`: one row per entry, the columns of [`ActivityEntry`].
pub mod activity_log {
    use sea_orm::entity::prelude::*;

    /// One stored entry.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "activity_log")]
    pub struct Model {
        /// UUID v7.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// When it happened.
        pub created_at: DateTimeUtc,
        /// Tenant: organization.
        pub organization_id: Option<String>,
        /// Tenant: team.
        pub team_id: Option<String>,
        /// Effective actor.
        pub user_id: Option<String>,
        /// Effective actor's name.
        pub user_name: Option<String>,
        /// Real actor when impersonating.
        pub impersonated_by: Option<String>,
        /// Impersonated?
        pub was_impersonated: bool,
        /// No user?
        pub is_system: bool,
        /// Item kind.
        pub scope: String,
        /// Item primary key as text.
        pub item_id: Option<String>,
        /// Verb.
        pub activity: String,
        /// JSON detail.
        #[sea_orm(column_type = "JsonBinary")]
        pub detail: Json,
        /// Request id.
        pub request_id: Option<String>,
        /// Transaction correlation id.
        pub correlation_id: Option<String>,
        /// Client IP.
        pub ip_address: Option<String>,
        /// Client user agent.
        pub user_agent: Option<String>,
        /// Client application.
        pub client: Option<String>,
        /// W3C trace id of the span that wrote the entry (feature `otel`). Read and written
        /// only with that feature, so a table without the column (created before it, not yet
        /// [upgraded](crate::schema::upgrade)) serves every other build unchanged.
        pub trace_id: Option<String>,
        /// W3C span id of that span (feature `otel`).
        pub span_id: Option<String>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// How a text column's cap is applied to a value that does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CapKind {
    /// Stored exactly or refused with [`IdentifierTooLong`](crate::failure::IdentifierTooLong)(crate::failure::IdentifierTooLong): cutting a tenant, user, item or
    /// correlation id would make two different ones equal (one user reading another's feed).
    Identifier,
    /// Cut at a character boundary: a shortened user agent or display name loses description,
    /// never identity.
    Descriptive,
}

/// The capacity of one text column of `activity_log`.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ColumnCap {
    /// The column.
    pub column: activity_log::Column,
    /// Its width in characters (`varchar(n)` counts characters on PostgreSQL and on MySQL's
    /// utf8mb4; SQLite does not enforce it, the writer does).
    pub max_chars: usize,
    /// Whether a longer value is refused or cut.
    pub kind: CapKind,
}

/// Longest identifier stored exactly on every backend, in characters.
pub const IDENTIFIER_MAX: usize = 255;

/// Every text column's cap: the one source of the widths [`crate::schema`] creates (and widens
/// older tables to) and of what the writer refuses or cuts, so the two cannot drift apart.
pub const COLUMN_CAPS: [ColumnCap; 15] = {
    use CapKind::{Descriptive, Identifier};
    use activity_log::Column as C;
    const fn cap(column: C, max_chars: usize, kind: CapKind) -> ColumnCap {
        ColumnCap {
            column,
            max_chars,
            kind,
        }
    }
    [
        cap(C::OrganizationId, IDENTIFIER_MAX, Identifier),
        cap(C::TeamId, IDENTIFIER_MAX, Identifier),
        cap(C::UserId, IDENTIFIER_MAX, Identifier),
        cap(C::UserName, 255, Descriptive),
        cap(C::ImpersonatedBy, IDENTIFIER_MAX, Identifier),
        // Set by code (the model's scope and the verb), never by a request: a longer one is a
        // bug to report, not text to shorten.
        cap(C::Scope, 79, Identifier),
        cap(C::ItemId, IDENTIFIER_MAX, Identifier),
        cap(C::Activity, 79, Identifier),
        cap(C::RequestId, 128, Descriptive),
        cap(C::CorrelationId, IDENTIFIER_MAX, Identifier),
        cap(C::IpAddress, 64, Descriptive),
        cap(C::UserAgent, 512, Descriptive),
        cap(C::Client, 128, Descriptive),
        // Hex of a fixed length: the write path drops a malformed one before it gets here.
        cap(C::TraceId, 32, Identifier),
        cap(C::SpanId, 16, Identifier),
    ]
};

/// The cap of `column` in [`COLUMN_CAPS`] (`None`: not a capped text column). A `const fn`, so
/// the writer's limits are computed from the table at compile time.
pub const fn column_cap(column: activity_log::Column) -> Option<ColumnCap> {
    let mut i = 0;
    while i < COLUMN_CAPS.len() {
        if COLUMN_CAPS[i].column as u8 == column as u8 {
            return Some(COLUMN_CAPS[i]);
        }
        i += 1;
    }
    None
}

pub(crate) const fn max_of(column: activity_log::Column) -> usize {
    match column_cap(column) {
        Some(cap) => cap.max_chars,
        None => usize::MAX,
    }
}

const USER_NAME_MAX: usize = max_of(activity_log::Column::UserName);
const REQUEST_ID_MAX: usize = max_of(activity_log::Column::RequestId);
const IP_ADDRESS_MAX: usize = max_of(activity_log::Column::IpAddress);
const USER_AGENT_MAX: usize = max_of(activity_log::Column::UserAgent);
const CLIENT_MAX: usize = max_of(activity_log::Column::Client);

/// `value` cut to at most `max` characters, on a character boundary.
fn cut(value: Option<String>, max: usize) -> Option<String> {
    value.map(|mut s| {
        // Bytes bound characters: only a value longer in bytes can be too long in characters.
        if s.len() > max
            && let Some((end, _)) = s.char_indices().nth(max)
        {
            s.truncate(end);
        }
        s
    })
}

impl From<ActivityEntry> for activity_log::ActiveModel {
    fn from(e: ActivityEntry) -> Self {
        let compact = ActivityConfig::with_current(ActivityConfig::compact_detail);
        let detail = detail_json(&e.detail, &e.scope, compact);
        Self {
            id: Set(e.id),
            created_at: Set(e.created_at),
            organization_id: Set(e.organization_id),
            team_id: Set(e.team_id),
            user_id: Set(e.user_id),
            user_name: Set(cut(e.user_name, USER_NAME_MAX)),
            impersonated_by: Set(e.impersonated_by),
            was_impersonated: Set(e.was_impersonated),
            is_system: Set(e.is_system),
            scope: Set(e.scope),
            item_id: Set(e.item_id),
            activity: Set(e.activity),
            detail: Set(detail),
            request_id: Set(cut(e.request_id, REQUEST_ID_MAX)),
            correlation_id: Set(e.correlation_id),
            ip_address: Set(cut(e.ip_address, IP_ADDRESS_MAX)),
            user_agent: Set(cut(e.user_agent, USER_AGENT_MAX)),
            client: Set(cut(e.client, CLIENT_MAX)),
            // Named only when set: an insert without them works on a table without the
            // columns (a log older than the `otel` feature).
            trace_id: e.trace_id.map_or(NotSet, |t| Set(Some(t))),
            span_id: e.span_id.map_or(NotSet, |s| Set(Some(s))),
        }
    }
}

/// The bind values of `e`'s row, in column order (`activity_log::Column::iter()`), borrowing
/// the entry: the flush encodes straight from the buffered entries. `detail` is bound as JSON
/// text, encoded once; [`DETAIL_COLUMN`] says which value it is. `traced`: also the trace
/// columns, which come last ([`TRACED_ROW_COLUMNS`]); a flush names them only when one of its
/// entries has a trace, so a log without those columns takes every untraced write.
/// `compact`: `detail` in its compact stored form (the flush reads the setting once).
pub(crate) fn row_values(e: &ActivityEntry, out: &mut Vec<Value>, traced: bool, compact: bool) {
    let cut_ref = |v: &Option<String>, max: usize| cut(v.clone(), max);
    out.extend([
        Value::from(e.id),
        Value::from(e.created_at),
        Value::from(e.organization_id.clone()),
        Value::from(e.team_id.clone()),
        Value::from(e.user_id.clone()),
        Value::from(cut_ref(&e.user_name, USER_NAME_MAX)),
        Value::from(e.impersonated_by.clone()),
        Value::from(e.was_impersonated),
        Value::from(e.is_system),
        Value::from(e.scope.clone()),
        Value::from(e.item_id.clone()),
        Value::from(e.activity.clone()),
        Value::from(detail_text(&e.detail, &e.scope, compact)),
        Value::from(cut_ref(&e.request_id, REQUEST_ID_MAX)),
        Value::from(e.correlation_id.clone()),
        Value::from(cut_ref(&e.ip_address, IP_ADDRESS_MAX)),
        Value::from(cut_ref(&e.user_agent, USER_AGENT_MAX)),
        Value::from(cut_ref(&e.client, CLIENT_MAX)),
    ]);
    if traced {
        out.extend([
            Value::from(e.trace_id.clone()),
            Value::from(e.span_id.clone()),
        ]);
    }
}

/// Position of `detail` among [`row_values`].
pub(crate) const DETAIL_COLUMN: usize = 12;

/// Columns of [`row_values`] without the trace columns.
pub(crate) const ROW_COLUMNS: usize = 18;

/// Columns of [`row_values`] with them (all of `activity_log`'s).
pub(crate) const TRACED_ROW_COLUMNS: usize = 20;

/// The columns every build reads: all but the trace columns, which only the `otel` feature
/// reads (a table made before them serves every other build as it is).
pub(crate) fn read_columns() -> impl Iterator<Item = activity_log::Column> {
    use sea_orm::Iterable;
    let traced = cfg!(feature = "otel");
    activity_log::Column::iter().filter(move |c| {
        traced
            || !matches!(
                c,
                activity_log::Column::TraceId | activity_log::Column::SpanId
            )
    })
}

/// `SELECT` of whole entries, naming [`read_columns`]: what every read of entries starts from
/// (`Entity::find()` would name the trace columns in every build).
pub(crate) fn find_entries() -> sea_orm::Select<activity_log::Entity> {
    use sea_orm::QuerySelect;
    activity_log::Entity::find()
        .select_only()
        .columns(read_columns())
}

/// `detail` as stored: compact (see [`Detail::stored`]) or, with `compact` off, the full
/// shape. Written straight to text (the flush's path): a tree only for the fallback.
fn detail_text(detail: &Detail, scope: &str, compact: bool) -> String {
    let text = if compact {
        serde_json::to_string(&detail.stored(scope))
    } else {
        serde_json::to_string(detail)
    };
    text.unwrap_or_else(|_| detail_json(detail, scope, compact).to_string())
}

/// `detail` as stored, as a value. Serializing a `Detail` cannot fail (string keys, finite
/// numbers); guard anyway, with a detail in the same form.
fn detail_json(detail: &Detail, scope: &str, compact: bool) -> Json {
    let encode = |d: &Detail| {
        if compact {
            serde_json::to_value(d.stored(scope))
        } else {
            serde_json::to_value(d)
        }
    };
    encode(detail).unwrap_or_else(|e| {
        tracing::error!(error = %e, "activity detail could not be encoded");
        let unencodable = Detail {
            context: Some(serde_json::json!({"error": "unencodable detail"})),
            ..Detail::default()
        };
        encode(&unencodable).unwrap_or_default()
    })
}

impl From<activity_log::Model> for ActivityEntry {
    fn from(m: activity_log::Model) -> Self {
        let detail = Detail::from_stored(m.detail, &m.scope).unwrap_or_else(|e| {
            tracing::warn!(error = %e, id = %m.id, "activity detail could not be decoded");
            Detail::default()
        });
        let mut e = ActivityEntry::new(m.scope, m.activity);
        e.id = m.id;
        e.created_at = m.created_at;
        e.organization_id = m.organization_id;
        e.team_id = m.team_id;
        e.user_id = m.user_id;
        e.user_name = m.user_name;
        e.impersonated_by = m.impersonated_by;
        e.was_impersonated = m.was_impersonated;
        e.is_system = m.is_system;
        e.item_id = m.item_id;
        e.detail = detail;
        e.request_id = m.request_id;
        e.correlation_id = m.correlation_id;
        e.ip_address = m.ip_address;
        e.user_agent = m.user_agent;
        e.client = m.client;
        e.trace_id = m.trace_id;
        e.span_id = m.span_id;
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ActiveModelTrait, Iterable};

    /// `row_values` binds, column by column, what the active model would: only `detail` is
    /// JSON text instead of a JSON value.
    #[test]
    fn row_values_follow_the_column_order() {
        let mut entry = ActivityEntry::new("FeatureFlag", "updated")
            .with_item_id("7")
            .with_name("beta");
        entry.team_id = Some("t".into());
        entry.user_agent = Some("é".repeat(400));
        entry.request_id = Some("r".into());
        let mut values = Vec::new();
        entry.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        entry.span_id = Some("00f067aa0ba902b7".into());
        row_values(&entry, &mut values, true, true);
        let model = activity_log::ActiveModel::from(entry);
        let columns: Vec<_> = activity_log::Column::iter().collect();
        assert_eq!(columns.len(), TRACED_ROW_COLUMNS);
        for (i, column) in columns.into_iter().enumerate() {
            let expected = model.get(column).into_value().unwrap();
            if i == DETAIL_COLUMN {
                let Value::Json(Some(json)) = expected else {
                    panic!("detail is JSON: {expected:?}")
                };
                let Value::String(Some(text)) = &values[i] else {
                    panic!("detail is bound as text: {:?}", values[i])
                };
                let parsed: serde_json::Value = serde_json::from_str(text).unwrap();
                assert_eq!(&parsed, json.as_ref());
            } else {
                assert_eq!(values[i], expected, "column {i}");
            }
        }
    }

    /// Every capped column is a text column of the entity, listed once.
    #[test]
    fn caps_table_covers_the_text_columns_once() {
        for (i, cap) in COLUMN_CAPS.iter().enumerate() {
            assert!(cap.max_chars > 0);
            assert!(
                COLUMN_CAPS[i + 1..]
                    .iter()
                    .all(|c| c.column as u8 != cap.column as u8),
                "{:?} listed twice",
                cap.column
            );
        }
        let text = activity_log::Column::iter()
            .filter(|c| {
                matches!(
                    c.def().get_column_type(),
                    sea_orm::ColumnType::String(_) | sea_orm::ColumnType::Text
                )
            })
            .count();
        assert_eq!(text, COLUMN_CAPS.len());
    }
}
