//! Typed field values: emptiness, semantic equality and lossless JSON encoding.
//!
//! The diff compares typed values (no JSON round trip), and only a value that changed is encoded.
//! Encoding never panics: integers stay exact (`u64::MAX`, `i128` as a string when it does not fit),
//! decimals are strings, date-times RFC 3339, UUIDs strings, bytes base64, NaN and infinities strings.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use serde_json::{Map, Number, Value};

/// How deep a JSON value may nest before the rest is stored as its JSON text: keeps every
/// `detail` readable back by serde_json's default recursion limit (128).
pub const MAX_JSON_DEPTH: usize = 64;

/// A field type that the activity log can compare and record.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be recorded in the activity log",
    label = "this field's type does not implement `ActivityValue`",
    note = "implement `activity_core::ActivityValue` for it (see `activity_core::impl_activity_value_with_serde!`), or mark the field `#[activity(exclude)]`"
)]
pub trait ActivityValue {
    /// `None`, `""`, empty collections and JSON `null`/`{}`/`[]` are empty, and equal to each other.
    fn is_empty_value(&self) -> bool {
        false
    }

    /// Semantic equality of two non-empty values. Must not allocate.
    fn same_value(&self, other: &Self) -> bool;

    /// The lossless JSON encoding of the value.
    fn encode(&self) -> Value;

    /// The value as key text (`team_id`, `name`): strings as they are, numbers in decimal,
    /// empty values `None`.
    fn key_text(&self) -> Option<String> {
        if self.is_empty_value() {
            return None;
        }
        match self.encode() {
            Value::Null => None,
            Value::String(s) => Some(s),
            other => Some(other.to_string()),
        }
    }
}

/// Equality with the empty-value rule applied: two empty values are the same.
pub fn equivalent<T: ActivityValue + ?Sized>(a: &T, b: &T) -> bool {
    match (a.is_empty_value(), b.is_empty_value()) {
        (true, true) => true,
        (false, false) => a.same_value(b),
        _ => false,
    }
}

/// A JSON-object-like field whose keys can be masked one by one (`#[activity(mask_keys)]`).
#[diagnostic::on_unimplemented(
    message = "`#[activity(mask_keys)]` needs a JSON object field, and `{Self}` is not one",
    label = "not a JSON object type",
    note = "use `mask_keys` on a `serde_json::Value` (SeaORM `Json`) or map field, or use `#[activity(mask)]`"
)]
pub trait KeyedValue: ActivityValue {}

impl KeyedValue for Value {}
impl<T: KeyedValue> KeyedValue for Option<T> {}
impl<T: ActivityValue> KeyedValue for BTreeMap<String, T> {}
impl<T: ActivityValue, S: std::hash::BuildHasher> KeyedValue for HashMap<String, T, S> {}

macro_rules! int_impls {
    ($($t:ty),*) => {$(
        impl ActivityValue for $t {
            fn same_value(&self, other: &Self) -> bool { self == other }
            fn encode(&self) -> Value { Value::from(*self) }
        }
    )*};
}
int_impls!(i8, i16, i32, i64, u8, u16, u32, u64, isize, usize);

impl ActivityValue for i128 {
    fn same_value(&self, other: &Self) -> bool {
        self == other
    }
    fn encode(&self) -> Value {
        i64::try_from(*self)
            .map(Value::from)
            .or_else(|_| u64::try_from(*self).map(Value::from))
            .unwrap_or_else(|_| Value::String(self.to_string()))
    }
}

impl ActivityValue for u128 {
    fn same_value(&self, other: &Self) -> bool {
        self == other
    }
    fn encode(&self) -> Value {
        u64::try_from(*self)
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(self.to_string()))
    }
}

impl ActivityValue for bool {
    fn same_value(&self, other: &Self) -> bool {
        self == other
    }
    fn encode(&self) -> Value {
        Value::Bool(*self)
    }
}

/// A float as JSON: a number when finite, else `"NaN"`, `"inf"` or `"-inf"`.
pub fn encode_f64(v: f64) -> Value {
    match Number::from_f64(v) {
        Some(n) => Value::Number(n),
        None if v.is_nan() => Value::String("NaN".to_owned()),
        None if v > 0.0 => Value::String("inf".to_owned()),
        None => Value::String("-inf".to_owned()),
    }
}

impl ActivityValue for f64 {
    fn same_value(&self, other: &Self) -> bool {
        // NaN == NaN here: an unchanged NaN field is not a change.
        self == other || (self.is_nan() && other.is_nan())
    }
    fn encode(&self) -> Value {
        encode_f64(*self)
    }
}

impl ActivityValue for f32 {
    fn same_value(&self, other: &Self) -> bool {
        self == other || (self.is_nan() && other.is_nan())
    }
    fn encode(&self) -> Value {
        encode_f64(f64::from(*self))
    }
}

impl ActivityValue for char {
    fn same_value(&self, other: &Self) -> bool {
        self == other
    }
    fn encode(&self) -> Value {
        Value::String(self.to_string())
    }
}

impl ActivityValue for String {
    fn is_empty_value(&self) -> bool {
        self.is_empty()
    }
    fn same_value(&self, other: &Self) -> bool {
        self == other
    }
    fn encode(&self) -> Value {
        Value::String(self.clone())
    }
    fn key_text(&self) -> Option<String> {
        (!self.is_empty()).then(|| self.clone())
    }
}

impl ActivityValue for str {
    fn is_empty_value(&self) -> bool {
        self.is_empty()
    }
    fn same_value(&self, other: &Self) -> bool {
        self == other
    }
    fn encode(&self) -> Value {
        Value::String(self.to_owned())
    }
}

impl<T: ActivityValue + ?Sized> ActivityValue for &T {
    fn is_empty_value(&self) -> bool {
        (**self).is_empty_value()
    }
    fn same_value(&self, other: &Self) -> bool {
        (**self).same_value(other)
    }
    fn encode(&self) -> Value {
        (**self).encode()
    }
    fn key_text(&self) -> Option<String> {
        (**self).key_text()
    }
}

impl<T: ActivityValue + ?Sized> ActivityValue for Box<T> {
    fn is_empty_value(&self) -> bool {
        (**self).is_empty_value()
    }
    fn same_value(&self, other: &Self) -> bool {
        (**self).same_value(other)
    }
    fn encode(&self) -> Value {
        (**self).encode()
    }
    fn key_text(&self) -> Option<String> {
        (**self).key_text()
    }
}

impl<T: ActivityValue> ActivityValue for Option<T> {
    fn is_empty_value(&self) -> bool {
        self.as_ref().is_none_or(ActivityValue::is_empty_value)
    }
    fn same_value(&self, other: &Self) -> bool {
        match (self, other) {
            (Some(a), Some(b)) => equivalent(a, b),
            (None, None) => true,
            (Some(a), None) | (None, Some(a)) => a.is_empty_value(),
        }
    }
    fn encode(&self) -> Value {
        self.as_ref().map_or(Value::Null, ActivityValue::encode)
    }
    fn key_text(&self) -> Option<String> {
        self.as_ref().and_then(ActivityValue::key_text)
    }
}

/// Bytes as base64 (standard alphabet, padded): arbitrary, non-UTF-8 content stays lossless.
pub fn encode_bytes(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

impl ActivityValue for [u8] {
    fn is_empty_value(&self) -> bool {
        self.is_empty()
    }
    fn same_value(&self, other: &Self) -> bool {
        self == other
    }
    fn encode(&self) -> Value {
        encode_bytes(self)
    }
}

impl ActivityValue for Vec<u8> {
    fn is_empty_value(&self) -> bool {
        self.is_empty()
    }
    fn same_value(&self, other: &Self) -> bool {
        self == other
    }
    fn encode(&self) -> Value {
        encode_bytes(self)
    }
}

/// `Vec<T>` for element types other than `u8` (which is bytes): lists compare in order.
macro_rules! vec_impls {
    ($($t:ty),*) => {$(
        impl ActivityValue for Vec<$t> {
            fn is_empty_value(&self) -> bool { self.is_empty() }
            fn same_value(&self, other: &Self) -> bool {
                self.len() == other.len() && self.iter().zip(other).all(|(a, b)| equivalent(a, b))
            }
            fn encode(&self) -> Value { Value::Array(self.iter().map(ActivityValue::encode).collect()) }
        }
    )*};
}
vec_impls!(
    String,
    bool,
    i8,
    i16,
    i32,
    i64,
    u16,
    u32,
    u64,
    f32,
    f64,
    char,
    Value,
    uuid::Uuid,
    Option<String>,
    Option<i32>,
    Option<i64>,
    Option<bool>,
    Option<f64>,
    Vec<u8>
);

impl<T: ActivityValue> ActivityValue for BTreeMap<String, T> {
    fn is_empty_value(&self) -> bool {
        self.is_empty()
    }
    fn same_value(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(k, v)| other.get(k).is_some_and(|o| equivalent(v, o)))
    }
    fn encode(&self) -> Value {
        Value::Object(self.iter().map(|(k, v)| (k.clone(), v.encode())).collect())
    }
}

impl<T: ActivityValue, S: std::hash::BuildHasher> ActivityValue for HashMap<String, T, S> {
    fn is_empty_value(&self) -> bool {
        self.is_empty()
    }
    fn same_value(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(k, v)| other.get(k).is_some_and(|o| equivalent(v, o)))
    }
    fn encode(&self) -> Value {
        // Sorted keys: the same map always encodes to the same text.
        let sorted: BTreeMap<&String, &T> = self.iter().collect();
        Value::Object(
            sorted
                .into_iter()
                .map(|(k, v)| (k.clone(), v.encode()))
                .collect(),
        )
    }
}

impl ActivityValue for Value {
    fn is_empty_value(&self) -> bool {
        match self {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        }
    }
    fn same_value(&self, other: &Self) -> bool {
        json_eq(self, other)
    }
    fn encode(&self) -> Value {
        limit_depth(self, 0)
    }
}

/// Semantic JSON equality: object key order is ignored and numbers compare by value
/// (`1 == 1.0`); integers beyond 2^53 still compare exactly. Does not allocate.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_eq(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn number_eq(x: &Number, y: &Number) -> bool {
    match (integer(x), integer(y)) {
        (Some(a), Some(b)) => a == b,
        (Some(i), None) => float_is_integer(y.as_f64(), i),
        (None, Some(i)) => float_is_integer(x.as_f64(), i),
        (None, None) => matches!((x.as_f64(), y.as_f64()), (Some(a), Some(b)) if a == b),
    }
}

/// An integer `Number` (i64 or u64) widened without loss.
fn integer(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// Whether the float `f` is exactly the integer `i` (`1.0 == 1`, but `2^53 as f64 != 2^53 + 1`,
/// which a comparison through `f64` would call equal).
fn float_is_integer(f: Option<f64>, i: i128) -> bool {
    // i128::MIN as f64 is exactly -2^127; every integral f64 in [-2^127, 2^127) fits an i128.
    const LIMIT: f64 = -(i128::MIN as f64);
    #[allow(clippy::cast_possible_truncation)]
    f.is_some_and(|f| f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f) && f as i128 == i)
}

fn limit_depth(v: &Value, depth: usize) -> Value {
    match v {
        Value::Array(items) if depth >= MAX_JSON_DEPTH => Value::String(deep_text(items)),
        Value::Object(map) if depth >= MAX_JSON_DEPTH => Value::String(deep_text(map)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| limit_depth(i, depth + 1)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), limit_depth(v, depth + 1)))
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}

fn deep_text<T: serde::Serialize>(v: &T) -> String {
    // Serializing a `Value` cannot fail (string keys only); keep a marker rather than panic.
    serde_json::to_string(v).unwrap_or_else(|_| "<unencodable>".to_owned())
}

impl ActivityValue for uuid::Uuid {
    fn is_empty_value(&self) -> bool {
        false
    }
    fn same_value(&self, other: &Self) -> bool {
        self == other
    }
    fn encode(&self) -> Value {
        Value::String(self.hyphenated().to_string())
    }
}

mod chrono_impls {
    use super::{ActivityValue, Value};
    use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeZone};

    impl<Tz: TimeZone> ActivityValue for DateTime<Tz>
    where
        Tz::Offset: std::fmt::Display,
    {
        /// Aware date-times compare by instant.
        fn same_value(&self, other: &Self) -> bool {
            self == other
        }
        fn encode(&self) -> Value {
            Value::String(self.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        }
    }

    impl ActivityValue for NaiveDateTime {
        fn same_value(&self, other: &Self) -> bool {
            self == other
        }
        fn encode(&self) -> Value {
            Value::String(self.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
        }
    }

    impl ActivityValue for NaiveDate {
        fn same_value(&self, other: &Self) -> bool {
            self == other
        }
        fn encode(&self) -> Value {
            Value::String(self.format("%Y-%m-%d").to_string())
        }
    }

    impl ActivityValue for NaiveTime {
        fn same_value(&self, other: &Self) -> bool {
            self == other
        }
        fn encode(&self) -> Value {
            Value::String(self.format("%H:%M:%S%.f").to_string())
        }
    }
}

#[cfg(feature = "decimal")]
impl ActivityValue for rust_decimal::Decimal {
    /// `1.0 == 1.00`: decimals compare by value.
    fn same_value(&self, other: &Self) -> bool {
        self == other
    }
    fn encode(&self) -> Value {
        Value::String(self.to_string())
    }
}

/// Implement [`ActivityValue`] for a type through its `PartialEq` and `serde::Serialize`
/// (for example a SeaORM `DeriveActiveEnum` enum). Serialization errors are recorded as a
/// marker string, never a panic.
///
/// ```
/// #[derive(PartialEq, serde::Serialize)]
/// enum Plan { Free, Pro }
/// activity_core::impl_activity_value_with_serde!(Plan);
/// use activity_core::ActivityValue;
/// assert_eq!(Plan::Pro.encode(), serde_json::json!("Pro"));
/// ```
#[macro_export]
macro_rules! impl_activity_value_with_serde {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::ActivityValue for $t {
            fn same_value(&self, other: &Self) -> bool { self == other }
            fn encode(&self) -> $crate::__private::serde_json::Value {
                $crate::__private::encode_serialize(self)
            }
        }
    )+};
}

/// Encode any `Serialize` value, safely.
pub fn encode_serialize<T: serde::Serialize + ?Sized>(v: &T) -> Value {
    match serde_json::to_value(v) {
        Ok(value) => limit_depth(&value, 0),
        Err(e) => {
            tracing::warn!(error = %e, "activity value could not be encoded");
            Value::String("<unencodable>".to_owned())
        }
    }
}
