//! `ActivityValue::decode` is the inverse of `encode`: every value of every implemented type
//! reads back from what it wrote (also after the JSON text round trip a store makes), and
//! anything `encode` does not write for the type reads back as `None`, never as another value,
//! and never panics.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::str::FromStr;

use activity_core::ActivityValue;
use activity_core::value::{MAX_JSON_DEPTH, equivalent, json_eq};
use chrono::{
    DateTime, FixedOffset, Local, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc,
};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

/// The stored text of a value, read back (what history reads from the log).
fn through_text(v: &Value) -> Value {
    serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap()
}

/// `decode(encode(x))` is `x` (up to `equivalent`), directly and through the JSON text.
#[track_caller]
fn round_trips<T: ActivityValue + Debug>(x: T) {
    let encoded = x.encode();
    for v in [encoded.clone(), through_text(&encoded)] {
        match T::decode(&v) {
            Some(back) => assert!(
                equivalent(&back, &x),
                "{x:?} encoded as {v} decoded to {back:?}"
            ),
            None => panic!("{x:?} encoded as {v} did not decode"),
        }
    }
}

/// A decoded value encodes back to what was decoded: `decode` accepts only `encode`'s output.
#[track_caller]
fn only_written<T: ActivityValue + Debug>(v: &Value) {
    if let Some(x) = T::decode(v) {
        let again = x.encode();
        assert!(
            json_eq(&again, v),
            "{v} decoded to {x:?}, which encodes as {again}"
        );
    }
}

// ---------- integers ----------

#[test]
fn integers_round_trip_at_their_extremes() {
    macro_rules! extremes {
        ($($t:ty),*) => {$(
            for x in [<$t>::MIN, <$t>::MAX, 0, 1, <$t>::MAX - 1] {
                round_trips(x);
            }
        )*};
    }
    extremes!(
        i8, i16, i32, i64, u8, u16, u32, u64, isize, usize, i128, u128
    );
    for x in [-1i128, i128::from(i64::MIN) - 1, i128::from(u64::MAX) + 1] {
        round_trips(x);
    }
    round_trips(u128::from(u64::MAX) + 1);
    assert_eq!(i64::decode(&json!(i64::MIN)), Some(i64::MIN));
    assert_eq!(u64::decode(&json!(u64::MAX)), Some(u64::MAX));
}

#[test]
fn integers_beyond_64_bits_read_back_from_strings_only() {
    let big = i128::from(u64::MAX) + 1;
    assert_eq!(i128::decode(&json!("18446744073709551616")), Some(big));
    assert_eq!(i128::decode(&json!(u64::MAX)), Some(i128::from(u64::MAX)));
    assert_eq!(
        i128::decode(&json!("-170141183460469231731687303715884105728")),
        Some(i128::MIN)
    );
    assert_eq!(
        u128::decode(&json!("340282366920938463463374607431768211455")),
        Some(u128::MAX)
    );
    // `encode` writes these as numbers, or not at all.
    for v in [
        json!("1"),
        json!("-1"),
        json!("+18446744073709551616"),
        json!("018446744073709551616"),
        json!(" 18446744073709551616"),
        json!("1e20"),
        json!(1e20),
        json!("170141183460469231731687303715884105728"),
        json!(""),
    ] {
        assert_eq!(i128::decode(&v), None, "{v}");
    }
    for v in [json!(-1), json!("-18446744073709551616"), json!("1")] {
        assert_eq!(u128::decode(&v), None, "{v}");
    }
}

#[test]
fn integers_refuse_what_they_do_not_hold() {
    assert_eq!(i8::decode(&json!(128)), None);
    assert_eq!(u8::decode(&json!(-1)), None);
    assert_eq!(u64::decode(&json!(-1)), None);
    assert_eq!(i64::decode(&json!(u64::MAX)), None);
    assert_eq!(i32::decode(&json!(1.5)), None);
    assert_eq!(i32::decode(&json!("5")), None);
    assert_eq!(i32::decode(&json!(true)), None);
    assert_eq!(i32::decode(&json!(null)), None);
    assert_eq!(i32::decode(&json!([1])), None);
    // The same JSON number as `1`, as `json_eq` has it (a store may rewrite one as the other).
    assert_eq!(i32::decode(&json!(1.0)), Some(1));
    assert_eq!(i64::decode(&json!(-0.0)), Some(0));
    assert_eq!(u64::decode(&json!(1e19)), Some(10_000_000_000_000_000_000));
    assert_eq!(u64::decode(&json!(1e20)), None);
}

proptest! {
    #[test]
    fn every_integer_round_trips(
        a in any::<i64>(),
        b in any::<u64>(),
        c in any::<i128>(),
        d in any::<u128>(),
    ) {
        round_trips(a);
        round_trips(b);
        round_trips(c);
        round_trips(d);
        round_trips(a as i32);
        round_trips(b as u16);
    }

    #[test]
    fn i128_near_the_64_bit_edges(offset in -1000i128..1000) {
        for base in [i128::from(i64::MIN), i128::from(i64::MAX), i128::from(u64::MAX)] {
            round_trips(base + offset);
        }
    }
}

// ---------- floats ----------

#[test]
fn floats_round_trip_with_their_special_values() {
    for x in [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        0.1,
        f64::MIN,
        f64::MAX,
        f64::MIN_POSITIVE,
        f64::EPSILON,
        5e-324,
        9_007_199_254_740_993.0,
    ] {
        round_trips(x);
    }
    for x in [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.1,
        -0.0,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        1e-45,
    ] {
        round_trips(x);
    }
    assert!(f64::decode(&json!("NaN")).is_some_and(f64::is_nan));
    assert_eq!(f64::decode(&json!("-inf")), Some(f64::NEG_INFINITY));
    assert_eq!(f32::decode(&json!("inf")), Some(f32::INFINITY));
    assert_eq!(
        (-0.0f64).encode(),
        json!(-0.0),
        "the sign of zero is written"
    );
    assert!(f64::decode(&json!(-0.0)).is_some_and(|z| z.is_sign_negative()));
}

#[test]
fn floats_refuse_what_they_do_not_hold() {
    for v in [
        json!("nan"),
        json!("NAN"),
        json!("Infinity"),
        json!("+inf"),
        json!("1.5"),
        json!(null),
        json!(true),
    ] {
        assert_eq!(f64::decode(&v), None, "{v}");
        assert_eq!(f32::decode(&v), None, "{v}");
    }
    // No f64 is 2^53 + 1 or u64::MAX: reading either as a float would be another number.
    assert_eq!(f64::decode(&json!(9_007_199_254_740_993u64)), None);
    assert_eq!(f64::decode(&json!(u64::MAX)), None);
    assert_eq!(f64::decode(&json!(3)), Some(3.0));
    // `encode` writes an `f32` widened: 0.1 was never written for one, nor is 1e300 an f32.
    assert_eq!(f32::decode(&json!(0.1)), None);
    assert_eq!(f32::decode(&json!(1e300)), None);
    assert_eq!(f32::decode(&0.1f32.encode()), Some(0.1));
}

proptest! {
    #[test]
    fn every_float_round_trips(bits in any::<u64>(), bits32 in any::<u32>()) {
        let x = f64::from_bits(bits);
        round_trips(x);
        let back = f64::decode(&through_text(&x.encode())).unwrap();
        prop_assert!(back.to_bits() == x.to_bits() || (x.is_nan() && back.is_nan()));
        let y = f32::from_bits(bits32);
        round_trips(y);
        let back = f32::decode(&through_text(&y.encode())).unwrap();
        prop_assert!(back.to_bits() == y.to_bits() || (y.is_nan() && back.is_nan()));
    }
}

// ---------- text ----------

#[test]
fn text_round_trips() {
    for s in [
        "",
        "a",
        "héllo wörld",
        "日本語",
        "😀👍🏽",
        "\0\n\t\"\\",
        "NaN",
        "null",
    ] {
        round_trips(s.to_owned());
        round_trips(Box::<str>::from(s));
    }
    for c in ['a', '\0', 'é', '日', '😀', '\u{10FFFF}', '"'] {
        round_trips(c);
    }
    round_trips(true);
    round_trips(false);
    assert_eq!(char::decode(&json!("ab")), None);
    assert_eq!(char::decode(&json!("")), None);
    assert_eq!(char::decode(&json!(97)), None);
    assert_eq!(String::decode(&json!(1)), None);
    assert_eq!(String::decode(&json!(null)), None);
    assert_eq!(bool::decode(&json!("true")), None);
    assert_eq!(bool::decode(&json!(1)), None);
}

// ---------- bytes ----------

#[test]
fn bytes_round_trip() {
    let all: Vec<u8> = (0..=255).collect();
    for b in [vec![], vec![0], vec![0xff, 0xfe], b"hello".to_vec(), all] {
        round_trips(Box::<[u8]>::from(b.as_slice()));
        round_trips(b);
    }
}

#[test]
fn bytes_refuse_non_canonical_base64() {
    assert_eq!(Vec::<u8>::decode(&json!("QQ==")), Some(b"A".to_vec()));
    for v in [
        json!("QQ"),   // padding missing
        json!("QR=="), // trailing bits set
        json!("Q"),
        json!("!!!!"),
        json!("aGVsbG8-"),
        json!([104, 105]),
        json!(null),
    ] {
        assert_eq!(Vec::<u8>::decode(&v), None, "{v}");
    }
}

proptest! {
    #[test]
    fn every_byte_string_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        round_trips(bytes);
    }

    #[test]
    fn every_string_round_trips(s in any::<String>(), c in any::<char>()) {
        round_trips(s);
        round_trips(c);
    }
}

// ---------- options, boxes, collections ----------

#[test]
fn options_round_trip() {
    round_trips(None::<i32>);
    round_trips(Some(0i32));
    round_trips(Some(String::new()));
    round_trips(Some(Some(5i64)));
    round_trips(None::<Option<i64>>);
    round_trips(Some(None::<i64>));
    round_trips(Some(f64::NAN));
    assert_eq!(Option::<i32>::decode(&json!(null)), Some(None));
    assert_eq!(
        Option::<String>::decode(&json!("")),
        Some(Some(String::new()))
    );
    assert_eq!(Option::<i32>::decode(&json!("x")), None);
}

/// `encode` writes `null` for both `None` and `Some(x)` when `x` encodes as `null`: it reads back
/// as `None`, an equivalent (empty) value.
#[test]
fn options_of_null_read_back_as_none() {
    assert_eq!(Some(Value::Null).encode(), Value::Null);
    assert_eq!(Option::<Value>::decode(&Value::Null), Some(None));
    assert!(equivalent(&Some(Value::Null), &None));
    assert_eq!(Option::<Option<i32>>::decode(&Value::Null), Some(None));
    assert!(equivalent(&Some(None::<i32>), &None));
}

#[test]
fn boxes_read_back_as_their_content() {
    round_trips(Box::new(7u8));
    round_trips(Box::new(Some("x".to_owned())));
    assert_eq!(Box::<i32>::decode(&json!("7")), None);
    assert_eq!(Box::<str>::decode(&json!(7)), None);
}

#[test]
fn lists_round_trip_element_by_element() {
    round_trips(Vec::<String>::new());
    round_trips(vec!["a".to_owned(), String::new(), "😀".to_owned()]);
    round_trips(vec![true, false]);
    round_trips(vec![i8::MIN, i8::MAX]);
    round_trips(vec![i16::MIN, i16::MAX]);
    round_trips(vec![i32::MIN, i32::MAX]);
    round_trips(vec![i64::MIN, i64::MAX]);
    round_trips(vec![u16::MAX]);
    round_trips(vec![u32::MAX]);
    round_trips(vec![u64::MAX, 0]);
    round_trips(vec![f32::NAN, 0.1, f32::INFINITY]);
    round_trips(vec![f64::NAN, 0.1, f64::NEG_INFINITY]);
    round_trips(vec!['a', '😀']);
    round_trips(vec![json!({"a": [1, null]}), Value::Null, json!("")]);
    round_trips(vec![Uuid::nil(), Uuid::max()]);
    round_trips(vec![Some("a".to_owned()), None, Some(String::new())]);
    round_trips(vec![Some(1i32), None]);
    round_trips(vec![Some(1i64), None]);
    round_trips(vec![Some(true), None]);
    round_trips(vec![Some(f64::NAN), None, Some(1.5)]);
    round_trips(vec![vec![], vec![0u8, 255], b"abc".to_vec()]);
    // One element that does not decode spoils the list, rather than dropping out of it.
    assert_eq!(Vec::<i32>::decode(&json!([1, "2", 3])), None);
    assert_eq!(Vec::<i32>::decode(&json!({"0": 1})), None);
    assert_eq!(Vec::<String>::decode(&json!("a")), None);
    assert_eq!(
        Vec::<Option<i32>>::decode(&json!([null, 1])),
        Some(vec![None, Some(1)])
    );
}

#[test]
fn maps_round_trip() {
    let tree: BTreeMap<String, i64> = [("a".to_owned(), 1), ("ü".to_owned(), i64::MIN)].into();
    round_trips(tree);
    round_trips(BTreeMap::<String, String>::new());
    round_trips(BTreeMap::from([("k".to_owned(), Some(Uuid::nil()))]));
    let hash: HashMap<String, Vec<u8>> =
        [("x".to_owned(), vec![1, 2]), (String::new(), vec![])].into();
    round_trips(hash);
    let fast: HashMap<String, bool, foldhash::fast::RandomState> =
        [("on".to_owned(), true)].into_iter().collect();
    round_trips(fast);
    assert_eq!(BTreeMap::<String, i32>::decode(&json!({"a": "1"})), None);
    assert_eq!(HashMap::<String, i32>::decode(&json!([["a", 1]])), None);
}

// ---------- JSON ----------

#[test]
fn json_round_trips() {
    for v in [
        Value::Null,
        json!(""),
        json!({}),
        json!([]),
        json!({"a": {"b": [1, 2.5, "x", null, true]}, "ü": u64::MAX, "n": i64::MIN}),
        json!("😀"),
    ] {
        round_trips(v);
    }
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |v, _| json!([v]))
}

/// What lies deeper than `MAX_JSON_DEPTH` was written as JSON text, and reads back as that text:
/// the one lossy decoding (documented on `Value::decode`). A deeper value was never written.
#[test]
fn json_past_the_depth_limit_reads_back_as_text() {
    round_trips(nested(MAX_JSON_DEPTH));
    let deep = nested(MAX_JSON_DEPTH + 3);
    let back = Value::decode(&deep.encode()).unwrap();
    assert!(!json_eq(&back, &deep));
    assert_eq!(back, deep.encode());
    assert_eq!(Value::decode(&deep), None);
    assert_eq!(Value::decode(&nested(MAX_JSON_DEPTH + 1)), None);
    assert_eq!(
        Vec::<Value>::decode(&json!([nested(MAX_JSON_DEPTH + 1)])),
        None
    );
    assert!(Vec::<Value>::decode(&json!([nested(MAX_JSON_DEPTH)])).is_some());
}

// ---------- UUIDs, date-times, decimals ----------

#[test]
fn uuids_round_trip_in_their_written_form_only() {
    let v7 = Uuid::from_str("01890a5d-ac96-774b-bcce-b302099a8057").unwrap();
    for u in [Uuid::nil(), Uuid::max(), v7] {
        round_trips(u);
    }
    for v in [
        json!("01890A5D-AC96-774B-BCCE-B302099A8057"),
        json!("01890a5dac96774bbcceb302099a8057"),
        json!("{01890a5d-ac96-774b-bcce-b302099a8057}"),
        json!("urn:uuid:01890a5d-ac96-774b-bcce-b302099a8057"),
        json!("not a uuid"),
        json!(1),
    ] {
        assert_eq!(Uuid::decode(&v), None, "{v}");
    }
}

#[test]
fn date_times_round_trip() {
    let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456789+05:30").unwrap();
    round_trips(t);
    round_trips(t.to_utc());
    round_trips(t.with_timezone(&Local));
    round_trips(t.naive_utc());
    round_trips(t.date_naive());
    round_trips(t.time());
    for nanos in [0, 1_000_000, 1_000, 1] {
        let u = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap()
            + chrono::Duration::nanoseconds(nanos);
        round_trips(u);
        round_trips(u.naive_utc());
        round_trips(u.time());
    }
    round_trips(NaiveDate::from_ymd_opt(0, 1, 1).unwrap());
    round_trips(NaiveDate::from_ymd_opt(9999, 12, 31).unwrap());
    round_trips(NaiveDateTime::from_str("9999-12-31T23:59:59.999999999").unwrap());
    round_trips(NaiveTime::from_hms_opt(0, 0, 0).unwrap());
    round_trips(NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999).unwrap());
    // A leap second.
    let leap = NaiveTime::from_hms_milli_opt(23, 59, 59, 1_500).unwrap();
    round_trips(leap);
    round_trips(
        NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_time(leap),
    );
    // A `Local` date-time logged under another offset is the same instant.
    let elsewhere = json!("2026-01-02T03:04:05-11:00");
    let local = DateTime::<Local>::decode(&elsewhere).unwrap();
    assert_eq!(
        local,
        DateTime::parse_from_rfc3339("2026-01-02T14:04:05Z").unwrap()
    );
    assert_eq!(DateTime::<Utc>::decode(&elsewhere).unwrap(), local);
    let fixed = DateTime::<FixedOffset>::decode(&elsewhere).unwrap();
    assert_eq!(fixed.offset().local_minus_utc(), -11 * 3600);
}

/// Years outside 0000..=9999 are written with a sign, and read back too: chrono's whole range.
#[test]
fn date_times_at_the_extremes_of_chrono() {
    round_trips(NaiveDateTime::MIN);
    round_trips(NaiveDateTime::MAX);
    round_trips(NaiveDate::MIN);
    round_trips(NaiveDate::MAX);
    round_trips(DateTime::<Utc>::MIN_UTC);
    round_trips(DateTime::<Utc>::MAX_UTC);
    let far = NaiveDate::from_ymd_opt(10_000, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    assert_eq!(far.and_utc().encode(), json!("+10000-01-01T00:00:00Z"));
    round_trips(far.and_utc());
    round_trips(NaiveDate::from_ymd_opt(-1, 1, 1).unwrap());
}

#[test]
fn date_times_refuse_other_spellings() {
    for v in [
        json!("2026-01-02 03:04:05Z"),
        json!("2026-01-02T03:04:05+00:00"),
        json!("2026-01-02T03:04:05.000Z"),
        json!("2026-01-02T03:04:05.1Z"),
        json!("2026-01-02t03:04:05z"),
        json!("2026-01-02T03:04:05"),
        json!("2026-01-02"),
        json!(1_767_323_045),
    ] {
        assert_eq!(DateTime::<Utc>::decode(&v), None, "{v}");
        assert_eq!(DateTime::<FixedOffset>::decode(&v), None, "{v}");
    }
    assert_eq!(
        DateTime::<Utc>::decode(&json!("2026-01-02T03:04:05.100Z")),
        Some(
            Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
                .unwrap()
                .with_nanosecond(100_000_000)
                .unwrap()
        )
    );
    for v in [
        json!("2026-01-02 03:04:05"),
        json!("2026-01-02T03:04:05.000"),
        json!("2026-01-02T03:04:05Z"),
    ] {
        assert_eq!(NaiveDateTime::decode(&v), None, "{v}");
    }
    for v in [
        json!("2026-1-2"),
        json!("2026-01-02T00:00:00"),
        json!("20260102"),
    ] {
        assert_eq!(NaiveDate::decode(&v), None, "{v}");
    }
    for v in [
        json!("3:04:05"),
        json!("03:04"),
        json!("03:04:05.1"),
        json!("03:04:05.0001"),
    ] {
        assert_eq!(NaiveTime::decode(&v), None, "{v}");
    }
}

proptest! {
    #[test]
    fn every_date_time_round_trips(
        secs in -8_000_000_000_000i64..8_000_000_000_000,
        nanos in 0u32..2_000_000_000,
        offset in -86_399i32..86_400,
    ) {
        if let Some(t) = DateTime::<Utc>::from_timestamp(secs, nanos) {
            round_trips(t);
            round_trips(t.naive_utc());
            round_trips(t.date_naive());
            round_trips(t.time());
            // Whole minutes: RFC 3339 has no offset seconds (see the test below).
            if let Some(tz) = FixedOffset::east_opt(offset / 60 * 60) {
                round_trips(t.with_timezone(&tz));
            }
        }
    }
}

/// An offset with seconds (local mean time, before standard time zones) is written rounded to
/// the minute, as RFC 3339 allows no more, next to the unrounded local time: `encode` itself
/// shifts the instant by up to 30 seconds. `decode` reads the instant written; a `-00:00` written
/// for a zero-minute offset is not how `encode` writes zero (`Z`), and is refused.
#[test]
fn date_times_with_offset_seconds_are_written_without_them() {
    let epoch = DateTime::<Utc>::from_timestamp(0, 0).unwrap();
    let lmt = FixedOffset::east_opt(19 * 60 + 32).unwrap(); // Amsterdam, 1835-1937
    let t = epoch.with_timezone(&lmt);
    assert_eq!(t.encode(), json!("1970-01-01T00:19:32+00:20"));
    let back = DateTime::<FixedOffset>::decode(&t.encode()).unwrap();
    assert_eq!(back - t, chrono::Duration::seconds(-28));
    let tiny = epoch.with_timezone(&FixedOffset::west_opt(1).unwrap());
    assert_eq!(tiny.encode(), json!("1969-12-31T23:59:59-00:00"));
    assert_eq!(DateTime::<FixedOffset>::decode(&tiny.encode()), None);
}

#[test]
fn decimals_round_trip_with_their_scale() {
    for text in [
        "0",
        "1",
        "1.00",
        "-1.50",
        "0.0000000000000000000000000001",
        "79228162514264337593543950335",
        "-79228162514264337593543950335",
        "7.9228162514264337593543950335",
    ] {
        let d = Decimal::from_str(text).unwrap();
        round_trips(d);
        let back = Decimal::decode(&json!(text)).unwrap();
        assert_eq!(back.to_string(), text);
    }
    round_trips(Decimal::MAX);
    round_trips(Decimal::MIN);
    let mut negative_zero = Decimal::ZERO;
    negative_zero.set_sign_negative(true);
    round_trips(negative_zero);
    for v in [
        json!("1e5"),
        json!("+1"),
        json!("01"),
        json!("1."),
        json!(1),
        json!(" 1"),
        json!("1_000"),
    ] {
        assert_eq!(Decimal::decode(&v), None, "{v}");
    }
}

proptest! {
    #[test]
    fn every_decimal_round_trips(
        lo in any::<u32>(),
        mid in any::<u32>(),
        hi in any::<u32>(),
        negative in any::<bool>(),
        scale in 0u32..=28,
    ) {
        round_trips(Decimal::from_parts(lo, mid, hi, negative, scale));
    }
}

// ---------- types through serde ----------

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Plan {
    Free,
    Team {
        seats: u32,
    },
    #[serde(alias = "enterprise")]
    Business,
}

#[derive(Debug, PartialEq, serde::Serialize)]
enum WriteOnly {
    Free,
}

activity_core::impl_activity_value_with_serde!(Plan, WriteOnly);

#[test]
fn serde_types_read_back_through_deserialize() {
    round_trips(Plan::Free);
    round_trips(Plan::Team { seats: 5 });
    round_trips(Some(Plan::Business));
    assert_eq!(
        Plan::decode(&json!({"team": {"seats": 5}})),
        Some(Plan::Team { seats: 5 })
    );
    // The type's `Deserialize` decides, aliases included (an old name in an old entry).
    assert_eq!(Plan::decode(&json!("enterprise")), Some(Plan::Business));
    assert_eq!(Plan::decode(&json!("Free")), None);
    assert_eq!(Plan::decode(&json!({"team": {"seats": -1}})), None);
    // Without `Deserialize` the macro still compiles; nothing reads back.
    assert_eq!(WriteOnly::Free.encode(), json!("Free"));
    assert_eq!(WriteOnly::decode(&json!("Free")), None);
}

/// A hand-written impl without `decode` keeps the default: nothing reads back.
#[derive(Debug, PartialEq)]
struct Opaque(i32);

impl ActivityValue for Opaque {
    fn same_value(&self, other: &Self) -> bool {
        self == other
    }
    fn encode(&self) -> Value {
        json!(self.0)
    }
}

#[test]
fn the_default_reads_nothing_back() {
    assert_eq!(Opaque::decode(&Opaque(1).encode()), None);
    assert_eq!(Option::<Opaque>::decode(&json!(1)), None);
    assert_eq!(Option::<Opaque>::decode(&json!(null)), Some(None));
    assert_eq!(<&str as ActivityValue>::decode(&json!("x")), None);
}

// ---------- anything else ----------

fn garbage() -> Vec<Value> {
    let mut deep = json!("bottom");
    for i in 0..200 {
        deep = if i % 2 == 0 {
            json!([deep])
        } else {
            json!({ "k": deep })
        };
    }
    vec![
        Value::Null,
        json!(true),
        json!(false),
        json!(0),
        json!(-0.0),
        json!(1.5),
        json!(-1),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(f64::MAX),
        json!(f64::MIN_POSITIVE),
        json!(1e300),
        json!(""),
        json!(" "),
        json!("0"),
        json!("-0"),
        json!("NaN"),
        json!("inf"),
        json!("-inf"),
        json!("😀"),
        json!("a"),
        json!("QQ=="),
        json!("2026-01-02T03:04:05Z"),
        json!("2026-01-02T03:04:05"),
        json!("2026-01-02"),
        json!("03:04:05"),
        json!("00000000-0000-0000-0000-000000000000"),
        json!("340282366920938463463374607431768211456"),
        json!("-170141183460469231731687303715884105729"),
        json!("99999999999999999999999999999999999999999999999"),
        json!("79228162514264337593543950336"),
        json!("1.00000000000000000000000000001"),
        json!("+99999-01-01T00:00:00Z"),
        json!("2026-02-30"),
        json!("24:00:00"),
        json!("23:59:60.5"),
        json!("\u{0}"),
        json!([]),
        json!([null]),
        json!([1, "a", null, [], {}]),
        json!({}),
        json!({"": null}),
        json!({"a": 1, "b": "2"}),
        deep,
    ]
}

/// Every type's `decode` on every garbage value: no panic, and whatever decodes re-encodes to
/// the value it came from.
#[test]
fn garbage_never_panics_nor_misreads() {
    macro_rules! each {
        ($v:expr; $($t:ty),* $(,)?) => {$( only_written::<$t>($v); )*};
    }
    for v in &garbage() {
        each!(v;
            i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, i128, u128, f32, f64, bool, char,
            String, Box<str>, Box<[u8]>, Box<i32>, Option<String>, Option<Option<i64>>, Vec<u8>,
            Vec<String>, Vec<bool>, Vec<i8>, Vec<i16>, Vec<i32>, Vec<i64>, Vec<u16>, Vec<u32>,
            Vec<u64>, Vec<f32>, Vec<f64>, Vec<char>, Vec<Value>, Vec<Uuid>, Vec<Option<String>>,
            Vec<Option<i32>>, Vec<Option<i64>>, Vec<Option<bool>>, Vec<Option<f64>>,
            Vec<Vec<u8>>, BTreeMap<String, i32>, HashMap<String, Option<String>>, Value, Uuid,
            DateTime<Utc>, DateTime<FixedOffset>, DateTime<Local>, NaiveDateTime, NaiveDate,
            NaiveTime, Decimal, Plan, WriteOnly, Opaque,
        );
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "[0-9a-zA-Z+/=:. -]{0,40}".prop_map(Value::from),
        any::<i128>().prop_map(|i| Value::from(i.to_string())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{0,3}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_json_never_panics_nor_misreads(v in any_json()) {
        macro_rules! each {
            ($($t:ty),* $(,)?) => {$( only_written::<$t>(&v); )*};
        }
        each!(
            i32, i64, u64, i128, u128, f32, f64, char, Box<[u8]>, Option<Option<i64>>,
            Vec<Option<f64>>, BTreeMap<String, Vec<u8>>, HashMap<String, i128>, Value, Uuid,
            DateTime<Utc>, DateTime<FixedOffset>, NaiveDateTime, NaiveDate, NaiveTime, Decimal,
        );
    }
}
