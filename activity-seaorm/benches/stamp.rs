//! Criterion: what feature `otel` adds to stamping one entry — the current span's trace
//! context looked up and its ids written as text (`trace::record_current`) — with no
//! subscriber, and inside a span of a real `tracing-opentelemetry` pipeline (SDK tracer,
//! in-memory exporter).
//!
//! `cargo bench -p activity-seaorm --features otel --bench stamp`

use activity_seaorm::{ActivityEntry, trace};
use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;

fn stamp() -> ActivityEntry {
    let mut entry = ActivityEntry::new("FeatureFlag", "updated");
    trace::record_current(&mut entry);
    entry
}

fn bench(c: &mut Criterion) {
    c.bench_function("record_current/no subscriber", |b| b.iter(stamp));

    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(InMemorySpanExporter::default())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
    tracing::subscriber::with_default(subscriber, || {
        c.bench_function("record_current/outside a span", |b| b.iter(stamp));
        let span = tracing::info_span!("request");
        let _entered = span.enter();
        let traced = stamp();
        assert!(traced.trace_id.is_some(), "the pipeline records the span");
        c.bench_function("record_current/in an OpenTelemetry span", |b| b.iter(stamp));
        c.bench_function("ActivityEntry::new alone", |b| {
            b.iter(|| ActivityEntry::new("FeatureFlag", "updated"))
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
