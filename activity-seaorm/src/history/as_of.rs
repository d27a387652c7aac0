//! The item as it was at a moment: from the live row (or a deletion's snapshot), the later
//! entries undone newest first, each checked against what the row holds.

use activity_core::{FieldSpec, Masking, ModelActivity};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, EntityTrait, Iterable, PrimaryKeyTrait};
use serde_json::Value;

use crate::history::apply::{
    Effect, effect, entries_of, field_index, is_plain, key_fields, row_of, same, set_field,
};
use crate::history::{Gap, HistoryError};

/// One field of a [`Version`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum FieldValue {
    /// Its value then, encoded as the log encodes values (empty values as `null`).
    Known(Value),
    /// A masked field: the log never held its value, so its value then is unknown.
    Masked,
    /// An excluded field: the log holds none of its changes, so its value then is unknown.
    Excluded,
}

impl FieldValue {
    /// The value, when known.
    pub fn known(&self) -> Option<&Value> {
        match self {
            FieldValue::Known(v) => Some(v),
            _ => None,
        }
    }
}

/// An item as it was at a moment (see [`as_of`]).
#[derive(Clone, Debug)]
pub struct Version<M> {
    /// Every column field of the model, in declaration order, with its value then.
    pub fields: Vec<(&'static FieldSpec, FieldValue)>,
    model: Option<M>,
}

impl<M> Version<M> {
    /// The field named `name` (its Rust name or its name in the log).
    pub fn field(&self, name: &str) -> Option<&FieldValue> {
        self.fields
            .iter()
            .find(|(spec, _)| spec.name == name || spec.display == name)
            .map(|(_, value)| value)
    }

    /// The model as it was, when every field is known: none masked or excluded, and every
    /// value readable back into its type. `None` otherwise: a model with a guessed field would
    /// be a plausible wrong answer.
    pub fn model(&self) -> Option<&M> {
        self.model.as_ref()
    }
}

/// The state being undone: a field per `FIELDS` entry, and the model while it can be kept.
pub(crate) struct State<M> {
    pub(crate) values: Vec<FieldValue>,
    pub(crate) model: Option<M>,
}

impl<M: ModelActivity> State<M> {
    /// The live row; `keys` are the primary key's fields (known, whatever the log excludes).
    pub(crate) fn live(model: M, keys: &[usize]) -> Self {
        let values = M::FIELDS
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let hidden = if keys.contains(&i) {
                    None
                } else {
                    unknown(spec)
                };
                hidden.unwrap_or_else(|| {
                    FieldValue::Known(model.activity_field_json(i).unwrap_or(Value::Null))
                })
            })
            .collect();
        let complete = M::FIELDS
            .iter()
            .enumerate()
            .all(|(i, spec)| keys.contains(&i) || is_plain(spec));
        State {
            values,
            model: complete.then_some(model),
        }
    }
}

/// How the log leaves a field it never holds the value of.
pub(crate) fn unknown(spec: &FieldSpec) -> Option<FieldValue> {
    if spec.excluded {
        Some(FieldValue::Excluded)
    } else if spec.masking != Masking::None {
        Some(FieldValue::Masked)
    } else {
        None
    }
}

/// Item `id` of entity `E` as it was at `at`: `None` if it did not exist then.
///
/// Starts from the live row (or, if the item is deleted now, from its `deleted` entry's record
/// of every field) and undoes the item's entries after `at`, newest first. Each entry is undone
/// only if the row holds what the entry left: a field that does not, or a row that exists where
/// the log says it was deleted (or the reverse), is a write that bypassed the log, and the
/// answer is [`HistoryError::Gap`]. Masked and excluded fields are [`FieldValue::Masked`] and
/// [`FieldValue::Excluded`].
///
/// ```ignore
/// let then = history::as_of::<feature_flag::Entity>(&db, 7, last_tuesday).await?;
/// if let Some(version) = then {
///     println!("enabled then: {:?}", version.field("enabled"));
/// }
/// ```
pub async fn as_of<E>(
    db: &impl ConnectionTrait,
    id: impl Into<<E::PrimaryKey as PrimaryKeyTrait>::ValueType>,
    at: DateTime<Utc>,
) -> Result<Option<Version<E::Model>>, HistoryError>
where
    E: EntityTrait,
    E::Model: ModelActivity,
{
    let item_id = item_id_of::<E>(id)?;
    let live = row_of::<E, _>(db, &item_id, false).await?;
    let entries = entries_of(db, <E::Model as ModelActivity>::SCOPE, &item_id, None).await?;
    let split = entries.partition_point(|e| e.created_at <= at);
    let (earlier, later) = entries.split_at(split);
    let keys = key_fields::<E>(&item_id);
    let key_indexes: Vec<usize> = keys.iter().map(|(i, _)| *i).collect();
    let mut state = live.map(|m| State::live(m, &key_indexes));
    for entry in later.iter().rev() {
        state = undo::<E::Model>(state, entry)?;
        // A state read from a deletion knows its key from the item id.
        if let Some(st) = state.as_mut() {
            for (index, value) in &keys {
                st.values[*index] = FieldValue::Known(value.clone());
            }
        }
    }
    verify::<E::Model>(state.as_ref(), earlier)?;
    Ok(state.map(|st| Version {
        fields: <E::Model as ModelActivity>::FIELDS
            .iter()
            .zip(st.values)
            .collect(),
        model: st.model,
    }))
}

/// The state at `at` against the entries up to `at`: the row exists as the last lifecycle
/// entry says, and every field holds what the last entry to record it left. A write that
/// bypassed the log after the last entry of a field, with no entry after `at` to undo, shows
/// only here.
fn verify<M: ModelActivity>(
    state: Option<&State<M>>,
    earlier: &[activity_core::ActivityEntry],
) -> Result<(), HistoryError> {
    let last_lifecycle = earlier
        .iter()
        .rev()
        .find(|e| matches!(effect(e), Effect::Created | Effect::Deleted));
    match (state, last_lifecycle) {
        // Created, and (it is the last lifecycle entry) not deleted since: the row should be there.
        (None, Some(e)) if effect(e) == Effect::Created => {
            Err(HistoryError::Gap(Gap::in_row(e.id, false)))
        }
        (Some(_), Some(e)) if effect(e) == Effect::Deleted => {
            Err(HistoryError::Gap(Gap::in_row(e.id, true)))
        }
        (None, _) => Ok(()),
        (Some(st), _) => {
            for (index, value) in st.values.iter().enumerate() {
                let FieldValue::Known(now) = value else {
                    continue;
                };
                let display = M::FIELDS[index].display;
                // The newest entry up to `at` that says what this field held after it.
                let recorded = earlier.iter().rev().find_map(|e| {
                    if !matches!(effect(e), Effect::Created | Effect::Updated) {
                        return None;
                    }
                    e.detail
                        .changes
                        .iter()
                        .find(|c| c.field.as_deref() == Some(display))
                        .map(|c| (e, c))
                });
                if let Some((entry, change)) = recorded
                    && !same(now, &change.after)
                {
                    return Err(HistoryError::Gap(Gap::in_field(entry.id, change, now)));
                }
            }
            Ok(())
        }
    }
}

/// The item id the log writes for a key of `E`.
pub(crate) fn item_id_of<E: EntityTrait>(
    id: impl Into<<E::PrimaryKey as PrimaryKeyTrait>::ValueType>,
) -> Result<String, HistoryError> {
    use sea_orm::sea_query::IntoValueTuple;
    let values: Vec<sea_orm::Value> = id.into().into_value_tuple().into_iter().collect();
    if values.len() != <E::PrimaryKey as Iterable>::iter().count() {
        return Err(HistoryError::Db(sea_orm::DbErr::Custom(
            "the key does not match the entity's primary key".into(),
        )));
    }
    crate::keys::item_id_of_values(&values).ok_or_else(|| {
        HistoryError::Db(sea_orm::DbErr::Custom("a primary key part is NULL".into()))
    })
}

/// The state before `entry`, from the state after it.
fn undo<M: ModelActivity>(
    state: Option<State<M>>,
    entry: &activity_core::ActivityEntry,
) -> Result<Option<State<M>>, HistoryError> {
    let exists = |found: bool| Gap::in_row(entry.id, found);
    match effect(entry) {
        Effect::Other => Ok(state),
        Effect::Updated => {
            let Some(mut st) = state else {
                return Err(HistoryError::Gap(exists(false)));
            };
            for change in &entry.detail.changes {
                let Some(index) = change.field.as_deref().and_then(field_index::<M>) else {
                    continue;
                };
                let FieldValue::Known(now) = &st.values[index] else {
                    continue;
                };
                if !same(now, &change.after) {
                    return Err(HistoryError::Gap(Gap::in_field(entry.id, change, now)));
                }
                st.values[index] = FieldValue::Known(change.before.clone());
                if let Some(model) = st.model.as_mut()
                    && !set_field(model, index, &change.before)
                {
                    st.model = None;
                }
            }
            Ok(Some(st))
        }
        Effect::Created => {
            let Some(st) = state else {
                return Err(HistoryError::Gap(exists(false)));
            };
            // A snapshot says what the row held right after; check it, as for an update.
            for change in &entry.detail.changes {
                let Some(index) = change.field.as_deref().and_then(field_index::<M>) else {
                    continue;
                };
                if let FieldValue::Known(now) = &st.values[index]
                    && !same(now, &change.after)
                {
                    return Err(HistoryError::Gap(Gap::in_field(entry.id, change, now)));
                }
            }
            Ok(None)
        }
        Effect::Deleted => {
            if state.is_some() {
                return Err(HistoryError::Gap(exists(true)));
            }
            Ok(Some(deleted_state::<M>(entry)?))
        }
    }
}

/// The item as a `deleted` entry recorded it (every tracked field; empty ones left out).
pub(crate) fn deleted_state<M: ModelActivity>(
    entry: &activity_core::ActivityEntry,
) -> Result<State<M>, HistoryError> {
    let recorded = entry.detail.changes.iter().any(|c| c.field.is_some());
    if !recorded && M::FIELDS.iter().any(is_plain) {
        return Err(HistoryError::NotRecorded(entry.id));
    }
    let values = M::FIELDS
        .iter()
        .map(|spec| {
            unknown(spec).unwrap_or_else(|| {
                let before = entry
                    .detail
                    .changes
                    .iter()
                    .find(|c| c.field.as_deref() == Some(spec.display))
                    .map_or(Value::Null, |c| c.before.clone());
                FieldValue::Known(before)
            })
        })
        .collect();
    Ok(State {
        values,
        model: None,
    })
}
