//! Diff engine benchmarks: the typed diff against a `serde_json::to_value` baseline, and encoding.
//!
//! Before the criterion groups it prints, per model size, the heap allocations of one
//! `activity_changes` call and the time ratio to the baseline, e.g.
//! `diff unchanged 20 fields: 0 allocations, typed 30 ns vs serde_json 4000 ns, ratio 0.01×`,
//! and fails if diffing an unchanged model allocates.
//!
//! Run with `cargo bench -p activity-core --bench diff -- --warm-up-time 1 --measurement-time 2`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use activity_core::value::ActivityValue;
use activity_core::{Change, ChangeAction, ModelActivity};
use chrono::{DateTime, Utc};
use criterion::{BenchmarkId, Criterion};
use serde::Serialize;
use serde_json::{Value, json};

// ---------- counting allocator ----------

#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

// ---------- models ----------

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()
}

/// Makes a value different from what it was (for "one/all changed").
trait Bump {
    fn bump(&mut self);
}

impl Bump for i32 {
    fn bump(&mut self) {
        *self += 1;
    }
}
impl Bump for i64 {
    fn bump(&mut self) {
        *self += 1;
    }
}
impl Bump for f64 {
    fn bump(&mut self) {
        *self += 1.0;
    }
}
impl Bump for bool {
    fn bump(&mut self) {
        *self = !*self;
    }
}
impl Bump for String {
    fn bump(&mut self) {
        self.push('!');
    }
}
impl Bump for Option<String> {
    fn bump(&mut self) {
        match self {
            Some(s) => s.push('!'),
            None => *self = Some("set".to_owned()),
        }
    }
}
impl Bump for Value {
    fn bump(&mut self) {
        *self = json!({"bumped": self.clone()});
    }
}
impl Bump for DateTime<Utc> {
    fn bump(&mut self) {
        *self += chrono::Duration::seconds(1);
    }
}

/// A model deriving `ModelActivity` and `Serialize`, with a sample value and mutators.
macro_rules! model {
    ($name:ident, $scope:literal { $($field:ident : $ty:ty = $init:expr),* $(,)? }) => {
        #[derive(Clone, Serialize, ModelActivity)]
        #[activity(crate = "activity_core", scope = $scope)]
        struct $name {
            $($field: $ty),*
        }

        impl $name {
            fn sample() -> Self {
                Self { $($field: $init),* }
            }

            fn all_changed(&self) -> Self {
                let mut m = self.clone();
                $(Bump::bump(&mut m.$field);)*
                m
            }

            fn one_changed(&self) -> Self {
                let mut m = self.clone();
                m.name.bump();
                m
            }
        }
    };
}

model!(Model5, "Model5" {
        id: i32 = 1,
        name: String = "beta-checkout".into(),
        active: bool = true,
        rollout: i32 = 50,
        filters: Value = json!({"groups": [{"properties": [{"key": "email", "value": "@example.com", "operator": "icontains"}], "rollout_percentage": 50}]}),
});
model!(Model20, "Model20" {
        id: i32 = 1,
        team_id: i64 = 2,
        name: String = "beta-checkout".into(),
        key: String = "beta_checkout".into(),
        active: bool = true,
        deleted: bool = false,
        rollout: i32 = 50,
        version: i64 = 7,
        description: Option<String> = Some("A flag".into()),
        owner: Option<String> = None,
        filters: Value = json!({"groups": [{"properties": [{"key": "email", "value": "@example.com", "operator": "icontains"}], "rollout_percentage": 50}]}),
        payloads: Value = json!({"true": {"color": "blue"}}),
        created_at: DateTime<Utc> = t0(),
        updated_at: DateTime<Utc> = t0(),
        score: f64 = 0.75,
        ratio: f64 = 1.5,
        tag: String = "growth".into(),
        ensure_continuity: bool = false,
        usage_count: i64 = 123_456,
        label: Option<String> = Some("Beta".into()),
});
model!(Model60, "Model60" {
        id: i32 = 1,
        team_id: i64 = 2,
        name: String = "beta-checkout".into(),
        key: String = "beta_checkout".into(),
        active: bool = true,
        deleted: bool = false,
        rollout: i32 = 50,
        version: i64 = 7,
        description: Option<String> = Some("A flag".into()),
        owner: Option<String> = None,
        filters: Value = json!({"groups": [{"properties": [{"key": "email", "value": "@example.com", "operator": "icontains"}], "rollout_percentage": 50}]}),
        payloads: Value = json!({"true": {"color": "blue"}}),
        created_at: DateTime<Utc> = t0(),
        updated_at: DateTime<Utc> = t0(),
        score: f64 = 0.75,
        ratio: f64 = 1.5,
        tag: String = "growth".into(),
        ensure_continuity: bool = false,
        usage_count: i64 = 123_456,
        label: Option<String> = Some("Beta".into()),
        id_1: i32 = 1,
        team_id_1: i64 = 2,
        name_1: String = "beta-checkout".into(),
        key_1: String = "beta_checkout".into(),
        active_1: bool = true,
        deleted_1: bool = false,
        rollout_1: i32 = 50,
        version_1: i64 = 7,
        description_1: Option<String> = Some("A flag".into()),
        owner_1: Option<String> = None,
        filters_1: Value = json!({"groups": [{"properties": [{"key": "email", "value": "@example.com", "operator": "icontains"}], "rollout_percentage": 50}]}),
        payloads_1: Value = json!({"true": {"color": "blue"}}),
        created_at_1: DateTime<Utc> = t0(),
        updated_at_1: DateTime<Utc> = t0(),
        score_1: f64 = 0.75,
        ratio_1: f64 = 1.5,
        tag_1: String = "growth".into(),
        ensure_continuity_1: bool = false,
        usage_count_1: i64 = 123_456,
        label_1: Option<String> = Some("Beta".into()),
        id_2: i32 = 1,
        team_id_2: i64 = 2,
        name_2: String = "beta-checkout".into(),
        key_2: String = "beta_checkout".into(),
        active_2: bool = true,
        deleted_2: bool = false,
        rollout_2: i32 = 50,
        version_2: i64 = 7,
        description_2: Option<String> = Some("A flag".into()),
        owner_2: Option<String> = None,
        filters_2: Value = json!({"groups": [{"properties": [{"key": "email", "value": "@example.com", "operator": "icontains"}], "rollout_percentage": 50}]}),
        payloads_2: Value = json!({"true": {"color": "blue"}}),
        created_at_2: DateTime<Utc> = t0(),
        updated_at_2: DateTime<Utc> = t0(),
        score_2: f64 = 0.75,
        ratio_2: f64 = 1.5,
        tag_2: String = "growth".into(),
        ensure_continuity_2: bool = false,
        usage_count_2: i64 = 123_456,
        label_2: Option<String> = Some("Beta".into()),
});

// ---------- the serde_json baseline ----------

/// What a diff through JSON does: serialize both models, compare the maps field by field.
fn serde_json_diff<M: Serialize + ModelActivity>(before: &M, after: &M) -> Vec<Change> {
    let (Ok(Value::Object(b)), Ok(Value::Object(a))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for spec in M::FIELDS.iter().filter(|f| !f.excluded) {
        let (x, y) = (&b[spec.name], &a[spec.name]);
        if x != y {
            out.push(Change::new(
                M::SCOPE,
                ChangeAction::Changed,
                Some(spec.display),
                x.clone(),
                y.clone(),
            ));
        }
    }
    out
}

fn typed_diff<M: ModelActivity>(before: &M, after: &M) -> Vec<Change> {
    activity_core::diff(before, after)
}

// ---------- the printed summary ----------

/// Nanoseconds per call of `f`: the best of 5 rounds of at least 50 ms each.
fn ns_per_call(mut f: impl FnMut()) -> f64 {
    let mut iters: u32 = 64;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        if start.elapsed() >= Duration::from_millis(50) {
            break;
        }
        iters *= 2;
    }
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .fold(f64::INFINITY, f64::min)
}

fn summary_line<M: ModelActivity + Serialize>(case: &str, before: &M, after: &M) -> usize {
    let mut out = Vec::with_capacity(M::FIELDS.len());
    let (allocs, ()) = allocations(|| before.activity_changes(after, &mut out));
    let typed = ns_per_call(|| {
        black_box(typed_diff(black_box(before), black_box(after)));
    });
    let baseline = ns_per_call(|| {
        black_box(serde_json_diff(black_box(before), black_box(after)));
    });
    assert_eq!(
        typed_diff(before, after).len(),
        serde_json_diff(before, after).len(),
        "both diffs see the same changed fields"
    );
    println!(
        "diff {case} {} fields: {allocs} allocations, typed {typed:.0} ns vs serde_json {baseline:.0} ns, ratio {:.3}×",
        M::FIELDS.len(),
        typed / baseline,
    );
    allocs
}

fn summary_for<M: ModelActivity + Serialize + Clone>(m: &M, one: &M, all: &M) {
    let unchanged = summary_line("unchanged", m, &m.clone());
    assert_eq!(unchanged, 0, "diffing an unchanged model must not allocate");
    summary_line("one field changed", m, one);
    summary_line("all changed", m, all);
}

fn summary() {
    println!("--- typed diff vs serde_json::to_value baseline (best of 5 rounds) ---");
    let m5 = Model5::sample();
    summary_for(&m5, &m5.one_changed(), &m5.all_changed());
    let m20 = Model20::sample();
    summary_for(&m20, &m20.one_changed(), &m20.all_changed());
    let m60 = Model60::sample();
    summary_for(&m60, &m60.one_changed(), &m60.all_changed());
    println!(
        "(process-wide allocations so far: {})",
        counting_alloc::total()
    );
    println!("---");
}

// ---------- criterion groups ----------

fn bench_model<M: ModelActivity + Serialize + Clone>(c: &mut Criterion, m: &M, one: &M, all: &M) {
    let fields = M::FIELDS.len();
    let same = m.clone();
    for (case, after) in [
        ("unchanged", &same),
        ("one changed", one),
        ("all changed", all),
    ] {
        let mut group = c.benchmark_group(format!("diff {case}"));
        group.bench_with_input(BenchmarkId::new("typed", fields), after, |b, after| {
            b.iter(|| typed_diff(black_box(m), black_box(after)));
        });
        group.bench_with_input(BenchmarkId::new("serde_json", fields), after, |b, after| {
            b.iter(|| serde_json_diff(black_box(m), black_box(after)));
        });
        group.finish();
    }
}

fn diff_benches(c: &mut Criterion) {
    let m5 = Model5::sample();
    bench_model(c, &m5, &m5.one_changed(), &m5.all_changed());
    let m20 = Model20::sample();
    bench_model(c, &m20, &m20.one_changed(), &m20.all_changed());
    let m60 = Model60::sample();
    bench_model(c, &m60, &m60.one_changed(), &m60.all_changed());
}

fn encoding_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("encoding");
    let filters = Model20::sample().filters;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(1024).collect();
    let decimal: rust_decimal::Decimal =
        "1234567890123456789.123456789".parse().unwrap_or_default();
    group.bench_function("i64", |b| b.iter(|| black_box(&i64::MAX).encode()));
    group.bench_function("u128", |b| b.iter(|| black_box(&u128::MAX).encode()));
    group.bench_function("f64", |b| b.iter(|| black_box(&0.1f64).encode()));
    group.bench_function("f64 NaN", |b| b.iter(|| black_box(&f64::NAN).encode()));
    group.bench_function("String", |b| {
        let s = "beta-checkout".to_owned();
        b.iter(|| black_box(&s).encode());
    });
    group.bench_function("DateTime<Utc>", |b| b.iter(|| black_box(&t0()).encode()));
    group.bench_function("Uuid", |b| {
        let id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        b.iter(|| black_box(&id).encode());
    });
    group.bench_function("Decimal", |b| b.iter(|| black_box(&decimal).encode()));
    group.bench_function("bytes 1 KiB", |b| b.iter(|| black_box(&bytes).encode()));
    group.bench_function("json filters", |b| b.iter(|| black_box(&filters).encode()));
    group.bench_function("snapshot 20 fields", |b| {
        let m = Model20::sample();
        b.iter(|| {
            let mut out = Vec::new();
            black_box(&m).activity_snapshot(ChangeAction::Created, &mut out);
            out
        });
    });
    group.finish();
}

fn main() {
    summary();
    let mut c = Criterion::default().configure_from_args();
    diff_benches(&mut c);
    encoding_benches(&mut c);
    c.final_summary();
}
