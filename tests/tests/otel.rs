//! OpenTelemetry (feature `otel`) through a real pipeline: `tracing` spans bridged by
//! `tracing-opentelemetry` to the OpenTelemetry SDK, exported to its in-memory exporter.
//!
//! - an entry records the trace and span ids of the span that wrote it, on every write path
//!   (hooks, manual entries, the background logger), and only for a valid span context;
//! - the flush is a child span naming its entries;
//! - reads, the JSON-lines and OCSF exports return the ids (to readers who may see the
//!   request's origin);
//! - the relay sends `traceparent` and names its batch's entries; notification routing is a
//!   child of the span that wrote the entry.

use activity_nats::notify::{self, Audience, BoxError, Channel, ItemAudience, Notification};
use activity_seaorm::feed::Reveal;
use activity_seaorm::ops::background::{BackgroundConfig, BackgroundLogger};
use activity_seaorm::ops::export::{export_jsonl, export_ocsf};
use activity_seaorm::prelude::*;
use activity_seaorm::{ActivityConfig, ActivityQuery, Reader, log_activity, read::load_activity};
use activity_tests::{TestDb, backend_tests, new_flag};
use opentelemetry::trace::{SpanId, TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use sea_orm::ActiveModelTrait;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// The binary's tracing pipeline: spans go to `exporter` when they end. One global subscriber
/// for every test of this binary (each finds its own spans by trace or entry id): `tracing`
/// caches whether a callsite is enabled across dispatchers, and scoped subscribers set and
/// dropped by tests running at once can leave a callsite disabled for another test.
struct Pipeline {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
}

static PIPELINE: std::sync::OnceLock<Pipeline> = std::sync::OnceLock::new();

impl Pipeline {
    fn get() -> &'static Pipeline {
        PIPELINE.get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(exporter.clone())
                .build();
            let tracer = provider.tracer("activity-tests");
            let subscriber = tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(tracer));
            tracing::subscriber::set_global_default(subscriber)
                .expect("the only subscriber of this test binary");
            Pipeline { exporter, provider }
        })
    }

    fn spans(&self) -> Vec<SpanData> {
        self.provider.force_flush().expect("flush the spans");
        self.exporter.get_finished_spans().expect("exported spans")
    }

    fn named(&self, name: &str) -> Vec<SpanData> {
        self.spans()
            .into_iter()
            .filter(|s| s.name == name)
            .collect()
    }
}

/// `span`'s trace and span ids as OpenTelemetry assigned them (hex).
fn ids_of(span: &tracing::Span) -> (String, String) {
    let cx = span.context();
    let ids = cx.span().span_context().clone();
    assert!(ids.is_valid(), "the pipeline gave the span a valid context");
    (ids.trace_id().to_string(), ids.span_id().to_string())
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

fn alice() -> ActivityContext {
    ActivityContext::for_user(Actor::new("alice"))
        .with_organization("acme")
        .with_ip("203.0.113.9")
}

async fn entries_record_the_span_that_wrote_them(t: &TestDb) {
    let pipeline = Pipeline::get();
    let background = BackgroundLogger::start(t.db.clone(), BackgroundConfig::default()).unwrap();
    let (request, background_ids) = async {
        let request = tracing::info_span!("request");
        let ids = ids_of(&request);
        ActivityContext::scope(alice(), async {
            new_flag("traced").insert(&t.db).await.unwrap();
            log_activity(&t.db, ActivityEntry::new("Export", "downloaded"))
                .await
                .unwrap();
            // Ids the caller set are kept when well formed, dropped when not.
            let mut own = ActivityEntry::new("Job", "handed_over");
            own.trace_id = Some("0af7651916cd43dd8448eb211c80319c".into());
            own.span_id = Some("b7ad6b7169203331".into());
            log_activity(&t.db, own).await.unwrap();
            let mut bad = ActivityEntry::new("Job", "malformed");
            bad.trace_id = Some("not-a-trace".into());
            bad.span_id = Some("b7ad6b7169203331".into());
            log_activity(&t.db, bad).await.unwrap();
        })
        .instrument(request.clone())
        .await;
        // The background logger writes in its own task: the span is the one that logged.
        let job = tracing::info_span!("job");
        let job_ids = ids_of(&job);
        async {
            let _ = background.log(ActivityEntry::new("Job", "queued")).await;
        }
        .instrument(job)
        .await;
        (ids, job_ids)
    }
    .await;
    background.shutdown().await.unwrap();
    // No span: nothing to record.
    log_activity(&t.db, ActivityEntry::new("Job", "untraced"))
        .await
        .unwrap();

    let entries = t.entries().await;
    let by = |activity: &str| {
        entries
            .iter()
            .find(|e| e.activity == activity)
            .unwrap_or_else(|| panic!("{activity} in {entries:#?}"))
    };
    let ids = |e: &ActivityEntry| (e.trace_id.clone(), e.span_id.clone());
    let traced = (Some(request.0.clone()), Some(request.1.clone()));
    assert_eq!(ids(by("created")), traced, "hook path");
    assert_eq!(ids(by("downloaded")), traced, "manual entry");
    assert_eq!(
        ids(by("handed_over")),
        (
            Some("0af7651916cd43dd8448eb211c80319c".into()),
            Some("b7ad6b7169203331".into())
        )
    );
    assert_eq!(ids(by("malformed")), (None, None));
    assert_eq!(
        ids(by("queued")),
        (Some(background_ids.0), Some(background_ids.1)),
        "background logger"
    );
    assert_eq!(ids(by("untraced")), (None, None));

    // Each flush is a child span of the request naming its entries.
    let flushes = pipeline.named("activity.flush");
    let created = by("created");
    let flush = flushes
        .iter()
        .find(|s| {
            attribute(s, "entry_ids").is_some_and(|ids| ids.contains(&created.id.to_string()))
        })
        .unwrap_or_else(|| panic!("a flush names {}: {flushes:#?}", created.id));
    assert_eq!(flush.span_context.trace_id().to_string(), request.0);
    assert_eq!(flush.parent_span_id.to_string(), request.1);
    assert_eq!(attribute(flush, "entries").as_deref(), Some("1"));

    // Reads and exports carry the ids to whoever may see the request's origin.
    let page = load_activity(&t.db, &ActivityQuery::for_team("7").scope("FeatureFlag"))
        .await
        .unwrap();
    assert_eq!(
        page.results[0].trace_id.as_deref(),
        Some(request.0.as_str())
    );
    let mut ocsf = Vec::new();
    export_ocsf(
        &t.db,
        &ActivityQuery::for_team("7").scope("FeatureFlag"),
        &mut ocsf,
    )
    .await
    .unwrap();
    let event: serde_json::Value = serde_json::from_slice(&ocsf).unwrap();
    assert_eq!(event["class_uid"], 6003);
    assert_eq!(event["activity_id"], 1);
    assert_eq!(event["trace"]["uid"], request.0.as_str());
    assert_eq!(event["unmapped"]["span_id"], request.1.as_str());
    assert_eq!(event["metadata"]["uid"], created.id.to_string());
    assert_eq!(
        event["metadata"]["correlation_uid"].as_str(),
        created.correlation_id.as_deref()
    );
    assert_eq!(event["actor"]["user"]["uid"], "alice");
    assert_eq!(event["src_endpoint"]["ip"], "203.0.113.9");
    let member = ActivityQuery::for_team("7")
        .scope("FeatureFlag")
        .reader(Reader::member("bob").with_reveal(Reveal::nothing()));
    let (mut ocsf, mut jsonl) = (Vec::new(), Vec::new());
    export_ocsf(&t.db, &member, &mut ocsf).await.unwrap();
    export_jsonl(&t.db, &member, &mut jsonl).await.unwrap();
    for (what, text) in [("ocsf", ocsf), ("jsonl", jsonl)] {
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains(&created.id.to_string()), "{what}: {text}");
        for hidden in [request.0.as_str(), request.1.as_str(), "203.0.113.9"] {
            assert!(!text.contains(hidden), "{what} shows {hidden}: {text}");
        }
    }
}

backend_tests!(entries_record_the_span_that_wrote_them);

/// Nobody to notify; the routing span is what this test looks at.
struct NoOne;

#[async_trait::async_trait]
impl Audience for NoOne {
    async fn item(&self, _: &ActivityEntry) -> Result<ItemAudience, BoxError> {
        Ok(ItemAudience::default())
    }

    async fn may_see(
        &self,
        _: &str,
        _: &ActivityEntry,
        _: notify::Visibility,
    ) -> Result<bool, BoxError> {
        Ok(false)
    }
}

struct Nowhere;

#[async_trait::async_trait]
impl Channel for Nowhere {
    async fn deliver(&self, _: &Notification) -> Result<(), BoxError> {
        Ok(())
    }
}

async fn the_trace_goes_on_through_the_stream_and_notifications(t: &TestDb) {
    let s = activity_tests::nats::TestStream::new("otel").await;
    notify::create_tables(&t.db).await.unwrap();
    let pipeline = Pipeline::get();
    let (request, entry) = async {
        let request = tracing::info_span!("request");
        let ids = ids_of(&request);
        ActivityConfig::new()
            .with_outbox(true)
            .scope(ActivityContext::scope(alice(), async {
                new_flag("streamed").insert(&t.db).await.unwrap();
            }))
            .instrument(request)
            .await;
        s.relay_all(&t.db).await;
        // The consumer's side: the message as JetStream stores it.
        let js = async_nats::jetstream::new(s.client.clone());
        let stream = js.get_stream(s.stream.as_str()).await.unwrap();
        let message = stream.get_raw_message(1).await.unwrap();
        let traceparent = message.headers.get("traceparent").map(|v| v.to_string());
        assert_eq!(
            traceparent,
            Some(format!("00-{}-{}-01", ids.0, ids.1)),
            "the message continues the writer's trace"
        );
        let entry: ActivityEntry = serde_json::from_slice(&message.payload).unwrap();
        notify::handle(&t.db, &notify::Router::new(NoOne), &Nowhere, entry.clone())
            .await
            .unwrap();
        (ids, entry)
    }
    .await;
    assert_eq!(entry.trace_id.as_deref(), Some(request.0.as_str()));

    let batch = pipeline
        .named("activity_relay.batch")
        .into_iter()
        .find(|s| attribute(s, "entry_ids").is_some_and(|ids| ids.contains(&entry.id.to_string())))
        .expect("a relay batch names the entry");
    assert_eq!(attribute(&batch, "entries").as_deref(), Some("1"));

    // A span closes when its last handle drops, which may come a moment after the call that
    // made it returned (on SQLite, likely the driver's worker thread, which runs each statement
    // in the caller's span): the route span is waited for (a second at most), not expected at
    // once.
    let route_of_entry = || -> Vec<SpanData> {
        pipeline
            .named("activity_notify.route")
            .into_iter()
            .filter(|s| attribute(s, "entry_id") == Some(entry.id.to_string()))
            .collect()
    };
    let mut routes = route_of_entry();
    for _ in 0..50 {
        if !routes.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        routes = route_of_entry();
    }
    assert_eq!(routes.len(), 1, "{routes:#?}");
    let route = &routes[0];
    assert_eq!(attribute(route, "entry_id"), Some(entry.id.to_string()));
    assert_eq!(route.span_context.trace_id().to_string(), request.0);
    assert_eq!(route.parent_span_id.to_string(), request.1);
    assert_ne!(route.parent_span_id, SpanId::INVALID);
    s.delete().await;
}

activity_tests::nats_backend_tests!(db: the_trace_goes_on_through_the_stream_and_notifications);
