//! Field values encode losslessly and never panic: integers exact, big integers and
//! decimals as strings, date-times RFC 3339, UUIDs as strings, bytes as base64, NaN/inf as
//! strings, and deeply nested JSON stays readable by serde_json.

use std::str::FromStr;

use activity_core::ActivityValue;
use activity_core::value::{MAX_JSON_DEPTH, equivalent, json_eq};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// The stored text must be valid JSON that reads back to the same value.
fn text_round_trip(v: &Value) -> Value {
    let text = serde_json::to_string(v).unwrap();
    serde_json::from_str(&text).unwrap()
}

// ---------- integers ----------

#[test]
fn integer_extremes_are_exact_json_numbers() {
    assert_eq!(i64::MAX.encode().to_string(), "9223372036854775807");
    assert_eq!(i64::MIN.encode().to_string(), "-9223372036854775808");
    assert_eq!(u64::MAX.encode().to_string(), "18446744073709551615");
    assert_eq!(u64::MAX.encode().as_u64(), Some(u64::MAX));
    assert_eq!(i64::MAX.encode().as_i64(), Some(i64::MAX));
    assert_eq!(text_round_trip(&u64::MAX.encode()).as_u64(), Some(u64::MAX));
    assert_eq!(i8::MIN.encode(), json!(-128));
    assert_eq!(u32::MAX.encode(), json!(4_294_967_295u32));
    assert_eq!(usize::MAX.encode().as_u64(), Some(usize::MAX as u64));
}

#[test]
fn wide_integers_beyond_64_bits_are_strings() {
    assert_eq!(
        i128::MAX.encode(),
        json!("170141183460469231731687303715884105727")
    );
    assert_eq!(
        i128::MIN.encode(),
        json!("-170141183460469231731687303715884105728")
    );
    assert_eq!(
        u128::MAX.encode(),
        json!("340282366920938463463374607431768211455")
    );
    assert_eq!(
        (i128::from(u64::MAX) + 1).encode(),
        json!("18446744073709551616")
    );
    assert_eq!(
        (i128::from(i64::MIN) - 1).encode(),
        json!("-9223372036854775809")
    );
    // Still numbers while they fit.
    assert_eq!(i128::from(u64::MAX).encode().as_u64(), Some(u64::MAX));
    assert_eq!(i128::from(i64::MIN).encode().as_i64(), Some(i64::MIN));
    assert_eq!(u128::from(u64::MAX).encode().as_u64(), Some(u64::MAX));
}

/// Decode what `i128::encode` wrote.
fn decode_i128(v: &Value) -> i128 {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .unwrap(),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("unexpected {other}"),
    }
}

proptest! {
    #[test]
    fn i64_is_an_exact_number(x in any::<i64>()) {
        let v = x.encode();
        prop_assert_eq!(v.as_i64(), Some(x));
        prop_assert_eq!(v.to_string(), x.to_string());
        prop_assert_eq!(text_round_trip(&v).as_i64(), Some(x));
    }

    #[test]
    fn u64_is_an_exact_number(x in any::<u64>()) {
        let v = x.encode();
        prop_assert_eq!(v.as_u64(), Some(x));
        prop_assert_eq!(v.to_string(), x.to_string());
        prop_assert_eq!(text_round_trip(&v).as_u64(), Some(x));
    }

    #[test]
    fn i128_is_a_number_when_it_fits_else_a_string(x in any::<i128>()) {
        let v = x.encode();
        let fits = i64::try_from(x).is_ok() || u64::try_from(x).is_ok();
        prop_assert_eq!(v.is_number(), fits);
        prop_assert_eq!(v.is_string(), !fits);
        prop_assert_eq!(decode_i128(&v), x);
        prop_assert_eq!(decode_i128(&text_round_trip(&v)), x);
    }

    #[test]
    fn i128_near_the_64_bit_edges(offset in -1000i128..1000) {
        for base in [i128::from(i64::MIN), i128::from(i64::MAX), i128::from(u64::MAX)] {
            let x = base + offset;
            prop_assert_eq!(decode_i128(&x.encode()), x);
        }
    }

    #[test]
    fn u128_is_a_number_when_it_fits_else_a_string(x in any::<u128>()) {
        let v = x.encode();
        match u64::try_from(x) {
            Ok(small) => prop_assert_eq!(v.as_u64(), Some(small)),
            Err(_) => prop_assert_eq!(v, Value::String(x.to_string())),
        }
    }
}

// ---------- floats ----------

#[test]
fn non_finite_floats_are_strings() {
    assert_eq!(f64::NAN.encode(), json!("NaN"));
    assert_eq!(f64::INFINITY.encode(), json!("inf"));
    assert_eq!(f64::NEG_INFINITY.encode(), json!("-inf"));
    assert_eq!(f32::NAN.encode(), json!("NaN"));
    assert_eq!(f32::INFINITY.encode(), json!("inf"));
    assert_eq!(f32::NEG_INFINITY.encode(), json!("-inf"));
    assert_eq!(1.5f64.encode(), json!(1.5));
    assert_eq!(f64::MAX.encode().as_f64(), Some(f64::MAX));
    // An unchanged NaN field is not a change.
    assert!(equivalent(&f64::NAN, &f64::NAN));
    assert!(!equivalent(&f64::NAN, &1.0));
}

proptest! {
    #[test]
    fn f64_never_panics_and_is_lossless(x in any::<f64>()) {
        let v = x.encode();
        if x.is_nan() {
            prop_assert_eq!(v, json!("NaN"));
        } else if x == f64::INFINITY {
            prop_assert_eq!(v, json!("inf"));
        } else if x == f64::NEG_INFINITY {
            prop_assert_eq!(v, json!("-inf"));
        } else {
            prop_assert_eq!(v.as_f64().map(f64::to_bits), Some(x.to_bits()));
            // The written text parses back to the same bits.
            let text = serde_json::to_string(&v).unwrap();
            prop_assert_eq!(text.parse::<f64>().unwrap().to_bits(), x.to_bits());
        }
    }

    #[test]
    fn f64_special_values_among_normal_ones(
        x in prop_oneof![
            Just(f64::NAN), Just(-f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY),
            Just(0.0), Just(-0.0), Just(f64::MIN_POSITIVE), Just(f64::EPSILON), any::<f64>(),
        ]
    ) {
        let v = x.encode();
        let text = serde_json::to_string(&v).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back.is_string(), !x.is_finite());
    }
}

// ---------- bytes ----------

#[test]
fn bytes_are_padded_standard_base64() {
    assert_eq!(b"hi?".to_vec().encode(), json!("aGk/"));
    assert_eq!(vec![0xffu8, 0xfe, 0x00].encode(), json!("//4A"));
    assert_eq!(b"a".to_vec().encode(), json!("YQ=="));
    assert!(Vec::<u8>::new().is_empty_value());
}

proptest! {
    #[test]
    fn bytes_round_trip_through_base64(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let v = bytes.encode();
        let Value::String(text) = &v else { panic!("bytes must encode as a string: {v}") };
        let back = base64::engine::general_purpose::STANDARD.decode(text).unwrap();
        prop_assert_eq!(&back, &bytes);
        prop_assert_eq!(bytes.as_slice().encode(), v);
    }

    #[test]
    fn non_utf8_bytes_round_trip(tail in proptest::collection::vec(0x80u8..=0xff, 1..64)) {
        let bytes = [&[0xc3, 0x28][..], &tail].concat();
        prop_assert!(std::str::from_utf8(&bytes).is_err());
        let v = bytes.encode();
        let back = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        prop_assert_eq!(back, bytes);
    }
}

// ---------- decimals ----------

#[test]
fn decimals_beyond_f64_precision_are_exact_strings() {
    let d = Decimal::from_str("1234567890123456789.123456789").unwrap();
    assert_eq!(d.encode(), json!("1234567890123456789.123456789"));
    assert_ne!(
        (1_234_567_890_123_456_789.123_456_789_f64).to_string(),
        "1234567890123456789.123456789"
    );
    assert_eq!(
        Decimal::MAX.encode(),
        json!("79228162514264337593543950335")
    );
    assert_eq!(Decimal::from_str("0.10").unwrap().encode(), json!("0.10"));
    // Compared by value: 1.0 == 1.00.
    assert!(equivalent(
        &Decimal::from_str("1.0").unwrap(),
        &Decimal::from_str("1.00").unwrap()
    ));
}

proptest! {
    #[test]
    fn decimal_round_trips_exactly(
        mantissa in -(1i128 << 96) + 1..(1i128 << 96),
        scale in 0u32..=28,
    ) {
        let d = Decimal::from_i128_with_scale(mantissa, scale);
        let v = d.encode();
        let text = v.as_str().unwrap();
        let back = Decimal::from_str(text).unwrap();
        prop_assert_eq!(back, d);
        prop_assert_eq!(back.scale(), d.scale());
        prop_assert_eq!(back.mantissa(), d.mantissa());
    }
}

// ---------- date-times, UUIDs ----------

#[test]
fn date_times_are_rfc3339() {
    let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.120+02:00").unwrap();
    assert_eq!(t.encode(), json!("2026-01-02T03:04:05.120+02:00"));
    assert_eq!(t.to_utc().encode(), json!("2026-01-02T01:04:05.120Z"));
    let whole = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
        .unwrap()
        .to_utc();
    assert_eq!(whole.encode(), json!("2026-01-02T03:04:05Z"));
    // The same instant in two offsets is not a change.
    assert!(equivalent(&t, &t.to_utc().fixed_offset()));
}

proptest! {
    #[test]
    fn utc_date_times_parse_back_equal(
        // Years 0001..=9999: the range RFC 3339 can write.
        secs in -62_135_596_800i64..253_402_300_800,
        nanos in 0u32..1_000_000_000,
    ) {
        let t: DateTime<Utc> = DateTime::from_timestamp(secs, nanos).unwrap();
        let v = t.encode();
        let back = DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
        prop_assert_eq!(back.to_utc(), t);
    }

    #[test]
    fn uuids_are_hyphenated_strings(bits in any::<u128>()) {
        let id = uuid::Uuid::from_u128(bits);
        let v = id.encode();
        let text = v.as_str().unwrap();
        prop_assert_eq!(text.len(), 36);
        prop_assert_eq!(uuid::Uuid::parse_str(text).unwrap(), id);
    }
}

#[test]
fn uuid_literal() {
    let id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    assert_eq!(id.encode(), json!("01234567-89ab-cdef-0123-456789abcdef"));
}

// ---------- JSON values ----------

/// `depth` levels of alternating arrays and objects around `42`.
fn nested(depth: usize) -> Value {
    let mut v = json!(42);
    for level in 0..depth {
        v = if level % 2 == 0 {
            Value::Array(vec![v])
        } else {
            let mut map = serde_json::Map::new();
            map.insert("k".to_owned(), v);
            Value::Object(map)
        };
    }
    v
}

fn depth_of(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth_of).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth_of).max().unwrap_or(0),
        _ => 0,
    }
}

#[test]
fn deep_json_is_cut_into_text_and_stays_readable() {
    let deep = nested(200);
    assert_eq!(depth_of(&deep), 200);
    // serde_json itself refuses to read this much nesting back.
    assert!(serde_json::from_str::<Value>(&serde_json::to_string(&deep).unwrap()).is_err());

    let encoded = deep.encode();
    assert_eq!(depth_of(&encoded), MAX_JSON_DEPTH);
    let text = serde_json::to_string(&encoded).unwrap();
    let back: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back, encoded);

    // Walk down to the cut: the remaining subtree is stored as its own JSON text, losslessly.
    let mut original = &deep;
    let mut cut = &encoded;
    for _ in 0..MAX_JSON_DEPTH {
        (original, cut) = match (original, cut) {
            (Value::Array(a), Value::Array(b)) => (&a[0], &b[0]),
            (Value::Object(a), Value::Object(b)) => (&a["k"], &b["k"]),
            other => panic!("shape differs above the cut: {other:?}"),
        };
    }
    assert_eq!(
        cut.as_str().unwrap(),
        serde_json::to_string(original).unwrap()
    );
    assert_eq!(depth_of(original), 200 - MAX_JSON_DEPTH);
}

#[test]
fn json_at_the_depth_limit_is_kept_as_is() {
    let v = nested(MAX_JSON_DEPTH);
    assert_eq!(v.encode(), v);
    let over = nested(MAX_JSON_DEPTH + 1);
    assert_ne!(over.encode(), over);
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".*".prop_map(Value::from),
    ];
    leaf.prop_recursive(8, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn shallow_json_encodes_to_itself(v in arb_json()) {
        let encoded = v.encode();
        prop_assert_eq!(&encoded, &v);
        prop_assert!(json_eq(&encoded, &v));
        prop_assert_eq!(text_round_trip(&encoded), encoded);
    }

    #[test]
    fn any_depth_encodes_and_reads_back(depth in 0usize..300) {
        let v = nested(depth);
        let encoded = v.encode();
        prop_assert!(depth_of(&encoded) <= MAX_JSON_DEPTH);
        prop_assert_eq!(text_round_trip(&encoded), encoded);
    }
}

// ---------- json_eq ----------

#[test]
fn json_eq_ignores_key_order() {
    let a: Value = serde_json::from_str(r#"{"a":1,"b":{"x":[1,2],"y":null}}"#).unwrap();
    let b: Value = serde_json::from_str(r#"{"b":{"y":null,"x":[1,2]},"a":1}"#).unwrap();
    assert!(json_eq(&a, &b));
    // ...but not array order, nor missing keys.
    assert!(!json_eq(&json!([1, 2]), &json!([2, 1])));
    assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": null})));
}

#[test]
fn json_eq_compares_numbers_by_value() {
    assert!(json_eq(&json!(1), &json!(1.0)));
    assert!(json_eq(&json!({"n": [1.0, -2]}), &json!({"n": [1, -2.0]})));
    assert!(json_eq(&json!(0), &json!(-0.0)));
    assert!(!json_eq(&json!(1), &json!(1.5)));
    assert!(!json_eq(&json!(1), &json!("1")));
    assert!(!json_eq(&json!(-1), &json!(u64::MAX)));
    assert!(json_eq(&json!(u64::MAX), &json!(u64::MAX)));
    assert!(json_eq(&json!(i64::MIN), &json!(i64::MIN)));
}

#[test]
fn json_eq_is_exact_beyond_2_pow_53() {
    let two53 = 1u64 << 53;
    assert!(!json_eq(&json!(two53 + 1), &json!(two53)));
    assert!(!json_eq(&json!(u64::MAX), &json!(u64::MAX - 1)));
    assert!(!json_eq(&json!(i64::MAX), &json!(i64::MAX - 1)));
    // A float equals an integer only when it is exactly that integer.
    assert!(json_eq(&json!(two53), &json!(9_007_199_254_740_992.0)));
    assert!(!json_eq(&json!(two53 + 1), &json!(9_007_199_254_740_992.0)));
    assert!(!json_eq(&json!(9_007_199_254_740_992.0), &json!(two53 + 1)));
    assert!(!json_eq(
        &json!(u64::MAX),
        &json!(18_446_744_073_709_551_615.0)
    ));
    assert!(json_eq(
        &json!(1u64 << 63),
        &json!(9_223_372_036_854_775_808.0)
    ));
    assert!(!json_eq(
        &json!(i64::MAX),
        &json!(9_223_372_036_854_775_808.0)
    ));
}

proptest! {
    #[test]
    fn json_eq_on_integers_is_integer_equality(a in any::<u64>(), b in any::<u64>()) {
        prop_assert_eq!(json_eq(&json!(a), &json!(b)), a == b);
        prop_assert!(json_eq(&json!(a), &json!(a)));
    }

    #[test]
    fn json_eq_is_reflexive_and_symmetric(a in arb_json(), b in arb_json()) {
        prop_assert!(json_eq(&a, &a));
        prop_assert_eq!(json_eq(&a, &b), json_eq(&b, &a));
    }
}

// ---------- other types ----------

#[test]
fn strings_chars_bools_and_options() {
    assert_eq!("héllo \"x\"".to_owned().encode(), json!("héllo \"x\""));
    assert_eq!('é'.encode(), json!("é"));
    assert_eq!(true.encode(), json!(true));
    assert_eq!(Some(5i32).encode(), json!(5));
    assert_eq!(None::<i32>.encode(), Value::Null);
    assert_eq!(
        vec!["a".to_owned(), "b".to_owned()].encode(),
        json!(["a", "b"])
    );
    assert_eq!(vec![Some(1i64), None].encode(), json!([1, null]));
    let map: std::collections::HashMap<String, i32> =
        [("b".to_owned(), 2), ("a".to_owned(), 1)].into();
    assert_eq!(
        serde_json::to_string(&map.encode()).unwrap(),
        r#"{"a":1,"b":2}"#
    );
}

#[test]
fn key_text() {
    assert_eq!(42i64.key_text().as_deref(), Some("42"));
    assert_eq!(u64::MAX.key_text().as_deref(), Some("18446744073709551615"));
    assert_eq!("abc".to_owned().key_text().as_deref(), Some("abc"));
    assert_eq!(String::new().key_text(), None);
    assert_eq!(Some(String::new()).key_text(), None);
    assert_eq!(None::<i32>.key_text(), None);
    assert_eq!(Some(7i32).key_text().as_deref(), Some("7"));
    assert_eq!(json!({"a": 1}).key_text().as_deref(), Some(r#"{"a":1}"#));
    assert_eq!(json!({}).key_text(), None);
}

#[derive(PartialEq, serde::Serialize)]
enum Plan {
    Free,
    Pro { seats: u32 },
}
activity_core::impl_activity_value_with_serde!(Plan);

#[test]
fn serde_backed_values() {
    assert_eq!(Plan::Free.encode(), json!("Free"));
    assert_eq!(
        Plan::Pro { seats: 3 }.encode(),
        json!({"Pro": {"seats": 3}})
    );
    assert!(equivalent(&Plan::Free, &Plan::Free));
    assert!(!equivalent(&Plan::Free, &Plan::Pro { seats: 1 }));
}

/// A type whose serialization fails: recorded as a marker string, never a panic.
struct Broken;
impl serde::Serialize for Broken {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("nope"))
    }
}
impl PartialEq for Broken {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
activity_core::impl_activity_value_with_serde!(Broken);

#[test]
fn failing_serialize_is_a_marker() {
    assert_eq!(Broken.encode(), json!("<unencodable>"));
}
