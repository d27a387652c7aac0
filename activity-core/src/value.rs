//! Typed field values: emptiness, semantic equality and lossless JSON encoding.
//!
//! The diff compares typed values (no JSON round trip), and only a value that changed is encoded.
//! Encoding never panics: integers stay exact (`u64::MAX`, `i128` as a string when it does not fit),
//! decimals are strings, date-times RFC 3339, UUIDs strings, bytes base64, NaN and infinities strings.
//!
//! [`ActivityValue::decode`] reads an encoding back, so that history can rebuild a model from its
//! log. It accepts exactly what `encode` writes, up to [`json_eq`] (`1` and `1.0` are the same
//! JSON number): a logged value always decodes to the value that was logged, and anything else
//! (another spelling, another type, garbage) to `None`, never to a different value.

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

    /// The value `encode` wrote, read back: `None` when `value` is not one `encode` writes for
    /// this type, or the type cannot be read back (the default).
    ///
    /// History (as-of reads, revert) needs the inverse of `encode` to put a logged value back into
    /// a model, and must never put back a value other than the one logged: so an impl accepts
    /// only `encode`'s own output (up to [`json_eq`]), and refuses rather than guesses.
    /// References and unsized types (`&T`, `str`, `[u8]`) cannot be produced from JSON and keep
    /// the default; `Box<str>` and `Box<[u8]>` can.
    ///
    /// ```
    /// use activity_core::ActivityValue;
    /// use serde_json::json;
    ///
    /// let big = i128::from(u64::MAX) + 1;
    /// assert_eq!(i128::decode(&big.encode()), Some(big));
    /// assert_eq!(i128::decode(&json!("1")), None); // `encode` writes 1 as a number
    /// assert_eq!(Option::<String>::decode(&json!(null)), Some(None));
    /// ```
    fn decode(value: &Value) -> Option<Self>
    where
        Self: Sized,
    {
        let _ = value;
        None
    }

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
impl<T: ActivityValue, S: std::hash::BuildHasher + Default> KeyedValue for HashMap<String, T, S> {}

macro_rules! int_impls {
    ($($t:ty),*) => {$(
        impl ActivityValue for $t {
            fn same_value(&self, other: &Self) -> bool { self == other }
            fn encode(&self) -> Value { Value::from(*self) }
            fn decode(value: &Value) -> Option<Self> {
                integral(value).and_then(|i| <$t>::try_from(i).ok())
            }
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
    fn decode(value: &Value) -> Option<Self> {
        let decoded = match value {
            Value::String(s) => s.parse().ok(),
            other => integral(other),
        };
        decoded.and_then(|i| written(value, i))
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
    fn decode(value: &Value) -> Option<Self> {
        let decoded = match value {
            Value::String(s) => s.parse().ok(),
            other => integral(other).and_then(|i| u128::try_from(i).ok()),
        };
        decoded.and_then(|i| written(value, i))
    }
}

/// The integer a JSON number holds, integral floats included (`1.0` is the JSON number `1`, as
/// [`json_eq`] has it: a store or client may rewrite one as the other).
fn integral(value: &Value) -> Option<i128> {
    let Value::Number(n) = value else {
        return None;
    };
    integer(n).or_else(|| {
        let f = n.as_f64()?;
        // i128::MIN as f64 is exactly -2^127; every integral f64 in [-2^127, 2^127) fits an i128.
        const LIMIT: f64 = -(i128::MIN as f64);
        #[allow(clippy::cast_possible_truncation)]
        (f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f)).then_some(f as i128)
    })
}

/// `decoded` if it encodes back to `value` (up to [`json_eq`]): parsers accept more spellings
/// than `encode` writes (`+1`, `"1"` for a number, upper-case UUIDs, a space in a date-time),
/// and a value read from any other spelling might not be the one that was logged.
fn written<T: ActivityValue>(value: &Value, decoded: T) -> Option<T> {
    json_eq(&decoded.encode(), value).then_some(decoded)
}

impl ActivityValue for bool {
    fn same_value(&self, other: &Self) -> bool {
        self == other
    }
    fn encode(&self) -> Value {
        Value::Bool(*self)
    }
    fn decode(value: &Value) -> Option<Self> {
        value.as_bool()
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

/// [`encode_f64`] read back, without the exactness check of [`written`].
fn decode_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "inf" => Some(f64::INFINITY),
            "-inf" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
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
    /// An integer beyond 2^53 that no `f64` holds exactly is refused: read as a float, it would
    /// be another number.
    fn decode(value: &Value) -> Option<Self> {
        decode_f64(value).and_then(|f| written(value, f))
    }
}

impl ActivityValue for f32 {
    fn same_value(&self, other: &Self) -> bool {
        self == other || (self.is_nan() && other.is_nan())
    }
    fn encode(&self) -> Value {
        encode_f64(f64::from(*self))
    }
    /// Only numbers an `f32` holds exactly: `encode` writes the `f32` widened, so `0.1` (an
    /// `f64`) was never written for an `f32`, whose nearest is `0.10000000149011612`.
    fn decode(value: &Value) -> Option<Self> {
        #[allow(clippy::cast_possible_truncation)]
        decode_f64(value).and_then(|f| written(value, f as f32))
    }
}

impl ActivityValue for char {
    fn same_value(&self, other: &Self) -> bool {
        self == other
    }
    fn encode(&self) -> Value {
        Value::String(self.to_string())
    }
    fn decode(value: &Value) -> Option<Self> {
        let mut chars = value.as_str()?.chars();
        let first = chars.next()?;
        chars.next().is_none().then_some(first)
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
    fn decode(value: &Value) -> Option<Self> {
        value.as_str().map(str::to_owned)
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

/// `Box<T>` for sized `T`, `Box<str>` and `Box<[u8]>`: a box is recorded as its content. Three
/// impls rather than one for `T: ?Sized`, because reading a box back builds its content, which
/// takes a different constructor for each unsized type.
macro_rules! box_impl {
    ([$($param:ident)?] $t:ty, |$value:ident| $decode:expr) => {
        impl$(<$param: ActivityValue>)? ActivityValue for Box<$t> {
            fn is_empty_value(&self) -> bool {
                (**self).is_empty_value()
            }
            fn same_value(&self, other: &Self) -> bool {
                (**self).same_value(other)
            }
            fn encode(&self) -> Value {
                (**self).encode()
            }
            fn decode($value: &Value) -> Option<Self> {
                $decode
            }
            fn key_text(&self) -> Option<String> {
                (**self).key_text()
            }
        }
    };
}
box_impl! { [T] T, |value| T::decode(value).map(Box::new) }
box_impl! { [] str, |value| String::decode(value).map(String::into_boxed_str) }
box_impl! { [] [u8], |value| decode_bytes(value).map(Vec::into_boxed_slice) }

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
    /// `null` is `None`, even for a `T` that encodes a value as `null` (`Some(Value::Null)`
    /// comes back `None`, an equivalent empty value: `encode` wrote the same JSON for both).
    fn decode(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            other => T::decode(other).map(Some),
        }
    }
    fn key_text(&self) -> Option<String> {
        self.as_ref().and_then(ActivityValue::key_text)
    }
}

/// Bytes as base64 (standard alphabet, padded): arbitrary, non-UTF-8 content stays lossless.
pub fn encode_bytes(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// [`encode_bytes`] read back. The engine refuses non-canonical base64 (missing padding, stray
/// trailing bits), so only what `encode_bytes` writes decodes.
fn decode_bytes(value: &Value) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str()?)
        .ok()
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
    fn decode(value: &Value) -> Option<Self> {
        decode_bytes(value)
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
            fn decode(value: &Value) -> Option<Self> {
                value.as_array()?.iter().map(<$t as ActivityValue>::decode).collect()
            }
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
    fn decode(value: &Value) -> Option<Self> {
        decode_entries(value)
    }
}

/// The entries of a JSON object, each value decoded; `None` if any one cannot be.
fn decode_entries<T: ActivityValue, C: FromIterator<(String, T)>>(value: &Value) -> Option<C> {
    value
        .as_object()?
        .iter()
        .map(|(k, v)| Some((k.clone(), T::decode(v)?)))
        .collect()
}

/// `S: Default`: a map read back needs a hasher.
impl<T: ActivityValue, S: std::hash::BuildHasher + Default> ActivityValue
    for HashMap<String, T, S>
{
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
    fn decode(value: &Value) -> Option<Self> {
        decode_entries(value)
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
    /// Every JSON value `encode` writes, as it is: arrays and objects nest less than
    /// [`MAX_JSON_DEPTH`] deep. Lossy past that depth: `encode` wrote what lay deeper as JSON
    /// text, which comes back as that string, not as the nested value.
    fn decode(value: &Value) -> Option<Self> {
        within_depth(value, 0).then(|| value.clone())
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

/// Whether `v` nests no array nor object at [`MAX_JSON_DEPTH`] or deeper (what [`limit_depth`]
/// leaves as it is). Recurses at most that deep, whatever `v` holds.
fn within_depth(v: &Value, depth: usize) -> bool {
    match v {
        Value::Array(_) | Value::Object(_) if depth >= MAX_JSON_DEPTH => false,
        Value::Array(items) => items.iter().all(|i| within_depth(i, depth + 1)),
        Value::Object(map) => map.values().all(|v| within_depth(v, depth + 1)),
        _ => true,
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
    fn decode(value: &Value) -> Option<Self> {
        written(value, value.as_str()?.parse().ok()?)
    }
}

mod chrono_impls {
    use super::{ActivityValue, Value, written};
    use chrono::{
        DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeZone,
    };

    const DATE_TIME: &str = "%Y-%m-%dT%H:%M:%S%.f";
    const DATE: &str = "%Y-%m-%d";
    const TIME: &str = "%H:%M:%S%.f";

    /// `DateTime<Tz>: FromStr` (`Utc`, `Local`, `FixedOffset`): reading a date-time back needs a
    /// way to build one in `Tz`, which `TimeZone` alone does not give.
    impl<Tz: TimeZone> ActivityValue for DateTime<Tz>
    where
        Tz::Offset: std::fmt::Display,
        DateTime<Tz>: std::str::FromStr,
    {
        /// Aware date-times compare by instant.
        fn same_value(&self, other: &Self) -> bool {
            self == other
        }
        fn encode(&self) -> Value {
            Value::String(rfc3339(self))
        }
        /// The instant, in `Tz`: a `Local` date-time logged under another offset (another
        /// machine, a time-zone change) reads back as the same instant, as `same_value` compares.
        /// Lossy for an offset with seconds (local mean time): RFC 3339 has none, so `encode`
        /// wrote it rounded to the minute beside the unrounded local time, an instant up to 30
        /// seconds off, which is what reads back.
        fn decode(value: &Value) -> Option<Self> {
            let text = value.as_str()?;
            // The exactness check on the offset written, which `Tz` may not keep.
            let logged: DateTime<FixedOffset> = text.parse().ok()?;
            if rfc3339(&logged) != text {
                return None;
            }
            let decoded: DateTime<Tz> = text.parse().ok()?;
            (decoded == logged).then_some(decoded)
        }
    }

    fn rfc3339<Tz: TimeZone>(t: &DateTime<Tz>) -> String
    where
        Tz::Offset: std::fmt::Display,
    {
        t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    impl ActivityValue for NaiveDateTime {
        fn same_value(&self, other: &Self) -> bool {
            self == other
        }
        fn encode(&self) -> Value {
            Value::String(self.format(DATE_TIME).to_string())
        }
        fn decode(value: &Value) -> Option<Self> {
            written(
                value,
                Self::parse_from_str(value.as_str()?, DATE_TIME).ok()?,
            )
        }
    }

    impl ActivityValue for NaiveDate {
        fn same_value(&self, other: &Self) -> bool {
            self == other
        }
        fn encode(&self) -> Value {
            Value::String(self.format(DATE).to_string())
        }
        fn decode(value: &Value) -> Option<Self> {
            written(value, Self::parse_from_str(value.as_str()?, DATE).ok()?)
        }
    }

    impl ActivityValue for NaiveTime {
        fn same_value(&self, other: &Self) -> bool {
            self == other
        }
        fn encode(&self) -> Value {
            Value::String(self.format(TIME).to_string())
        }
        fn decode(value: &Value) -> Option<Self> {
            written(value, Self::parse_from_str(value.as_str()?, TIME).ok()?)
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
    /// The scale too: `"1.00"` reads back as `1.00`, not `1`; and the sign of a zero.
    fn decode(value: &Value) -> Option<Self> {
        let text = value.as_str()?;
        let mut decimal: Self = text.parse().ok()?;
        // `encode` writes a negative zero as `-0`, which parses as `0`.
        if decimal.is_zero() && text.starts_with('-') {
            decimal.set_sign_negative(true);
        }
        written(value, decimal)
    }
}

/// Implement [`ActivityValue`] for a type through its `PartialEq` and `serde::Serialize`
/// (for example a SeaORM `DeriveActiveEnum` enum). Serialization errors are recorded as a
/// marker string, never a panic.
///
/// `decode` deserializes (`serde_json::from_value`) when the type is also
/// `serde::de::DeserializeOwned`, and is `None` otherwise: one macro for both, so a type that
/// gains `Deserialize` becomes readable by history without a change here, and one without it
/// still compiles. The type's `Deserialize` decides what reads back (its aliases included);
/// past [`MAX_JSON_DEPTH`](crate::value::MAX_JSON_DEPTH) the encoding is JSON text, which does
/// not deserialize.
///
/// ```
/// #[derive(PartialEq, Debug, serde::Serialize, serde::Deserialize)]
/// enum Plan { Free, Pro }
/// #[derive(PartialEq, serde::Serialize)]
/// enum WriteOnly { Free }
/// activity_core::impl_activity_value_with_serde!(Plan, WriteOnly);
/// use activity_core::ActivityValue;
/// assert_eq!(Plan::Pro.encode(), serde_json::json!("Pro"));
/// assert_eq!(Plan::decode(&serde_json::json!("Pro")), Some(Plan::Pro));
/// assert!(WriteOnly::decode(&serde_json::json!("Free")).is_none());
/// ```
#[macro_export]
macro_rules! impl_activity_value_with_serde {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::ActivityValue for $t {
            fn same_value(&self, other: &Self) -> bool { self == other }
            fn encode(&self) -> $crate::__private::serde_json::Value {
                $crate::__private::encode_serialize(self)
            }
            fn decode(
                value: &$crate::__private::serde_json::Value,
            ) -> $crate::__private::Option<Self> {
                #[allow(unused_imports)]
                use $crate::value::serde_decode::{Deserializable as _, NotDeserializable as _};
                (&$crate::value::serde_decode::Probe::<Self>::new()).decode_value(value)
            }
        }
    )+};
}

/// How `impl_activity_value_with_serde!` decodes through `Deserialize` when the type has it, and
/// not otherwise, without a bound its users' types might not meet. Not public API.
///
/// The macro calls `(&Probe::<T>::new()).decode_value(v)` with both traits in scope. Method
/// lookup tries the receiver `&Probe<T>` first, where only `Deserializable` applies (if
/// `T: DeserializeOwned`), then `&&Probe<T>`, where `NotDeserializable` always does. This
/// works because the macro names a concrete type; in generic code it would always pick the
/// fallback.
#[doc(hidden)]
pub mod serde_decode {
    use std::marker::PhantomData;

    use serde::de::DeserializeOwned;
    use serde_json::Value;

    /// Selects a `decode_value` by what `T` implements.
    #[derive(Debug)]
    pub struct Probe<T>(PhantomData<fn() -> T>);

    impl<T> Probe<T> {
        /// The probe for `T`.
        pub const fn new() -> Self {
            Self(PhantomData)
        }
    }

    impl<T> Default for Probe<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    /// Chosen when `T: DeserializeOwned`.
    pub trait Deserializable<T> {
        /// `T` deserialized from `value`.
        fn decode_value(&self, value: &Value) -> Option<T>;
    }

    impl<T: DeserializeOwned> Deserializable<T> for Probe<T> {
        fn decode_value(&self, value: &Value) -> Option<T> {
            T::deserialize(value).ok()
        }
    }

    /// Chosen otherwise.
    pub trait NotDeserializable<T> {
        /// Always `None`.
        fn decode_value(&self, value: &Value) -> Option<T>;
    }

    impl<T> NotDeserializable<T> for &Probe<T> {
        fn decode_value(&self, _: &Value) -> Option<T> {
            None
        }
    }
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
