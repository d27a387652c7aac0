//! The OpenTelemetry trace context an entry records (feature `otel`).
//!
//! An entry written inside a traced request carries the trace and span ids of the span that
//! wrote it, so an operator can go from "who changed this" to the request's whole trace, and
//! a consumer of the stream can continue that trace (`traceparent`). Only a *valid* span
//! context is recorded: no tracer, a disabled span or an all-zero id leaves both ids unset.
//! The ids are diagnostics, never evidence: they are not part of the audit key or of the
//! sealed bytes, and a reader sees them only with [`Reveal::request`](crate::feed::Reveal).

use crate::entry::ActivityEntry;

/// Whether `id` is a W3C trace id: 32 lowercase hex digits, not all zero.
pub fn is_trace_id(id: &str) -> bool {
    is_hex_id(id, 32)
}

/// Whether `id` is a W3C span id: 16 lowercase hex digits, not all zero.
pub fn is_span_id(id: &str) -> bool {
    is_hex_id(id, 16)
}

fn is_hex_id(id: &str, len: usize) -> bool {
    id.len() == len
        && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && id.bytes().any(|b| b != b'0')
}

/// The trace and span ids of the current `tracing` span, as OpenTelemetry sees it through
/// `tracing-opentelemetry`, when that context is valid; `None` otherwise (no OpenTelemetry
/// layer installed, no span, or an invalid context).
///
/// ```
/// // No OpenTelemetry layer is installed here: nothing to record.
/// assert_eq!(activity_core::trace::current(), None);
/// ```
#[cfg(feature = "otel")]
pub fn current() -> Option<(String, String)> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = tracing::Span::current();
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let span_ref = context.span();
    let ids = span_ref.span_context();
    ids.is_valid()
        .then(|| (ids.trace_id().to_string(), ids.span_id().to_string()))
}

/// Give `entry` the current span's trace and span ids ([`current`]) unless it has ids of its
/// own: what the write path does when it stamps an entry, and what a queue does in the task
/// that hands an entry over (the worker that writes it runs in another span).
#[cfg(feature = "otel")]
pub fn record_current(entry: &mut ActivityEntry) {
    if entry.trace_id.is_none()
        && entry.span_id.is_none()
        && let Some((trace, span)) = current()
    {
        entry.trace_id = Some(trace);
        entry.span_id = Some(span);
    }
}

/// The W3C `traceparent` of the span that wrote `entry` (`00-<trace>-<span>-01`), for
/// whoever continues its trace: the relay sends it as a message header. `None` unless both
/// ids are set and well formed ([`is_trace_id`], [`is_span_id`]).
///
/// ```
/// use activity_core::trace::traceparent;
/// let mut entry = activity_core::ActivityEntry::new("FeatureFlag", "updated");
/// assert_eq!(traceparent(&entry), None);
/// entry.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
/// entry.span_id = Some("00f067aa0ba902b7".into());
/// assert_eq!(
///     traceparent(&entry).as_deref(),
///     Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
/// );
/// ```
pub fn traceparent(entry: &ActivityEntry) -> Option<String> {
    let (trace, span) = (entry.trace_id.as_deref()?, entry.span_id.as_deref()?);
    (is_trace_id(trace) && is_span_id(span)).then(|| format!("00-{trace}-{span}-01"))
}

/// Make `span` a child of the span that wrote `entry` (its stored trace context), so work done
/// later for the entry elsewhere (routing its notifications, say) appears in the writer's
/// trace. Call it before `span` is first entered; nothing happens for an entry without a
/// trace.
#[cfg(feature = "otel")]
pub fn continue_trace(span: &tracing::Span, entry: &ActivityEntry) {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let (Some(trace), Some(span_id)) = (entry.trace_id.as_deref(), entry.span_id.as_deref()) else {
        return;
    };
    if !(is_trace_id(trace) && is_span_id(span_id)) {
        return;
    }
    let (Ok(trace), Ok(span_id)) = (TraceId::from_hex(trace), SpanId::from_hex(span_id)) else {
        return;
    };
    let writer = SpanContext::new(
        trace,
        span_id,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let parent = opentelemetry::Context::new().with_remote_span_context(writer);
    if let Err(e) = span.set_parent(parent) {
        tracing::debug!(error = %e, "activity: span not continued from its entry's trace");
    }
}

/// Entry ids a span of the library names: enough to find a request's entries, bounded for a
/// bulk write.
pub const SPAN_IDS: usize = 64;

/// The first [`SPAN_IDS`] of `ids`, comma-separated, with `,…` when there are more: the
/// `entry_ids` field of the library's spans (the flush, the relay's batches, notification
/// routing).
///
/// ```
/// let ids = (0..70u128).map(uuid::Uuid::from_u128);
/// let field = activity_core::trace::span_entry_ids(ids);
/// assert_eq!(field.split(',').count(), 65);
/// assert!(field.ends_with(",…"));
/// ```
pub fn span_entry_ids(ids: impl IntoIterator<Item = uuid::Uuid>) -> String {
    let mut out = String::new();
    for (i, id) in ids.into_iter().enumerate() {
        if i == SPAN_IDS {
            out.push_str(",…");
            break;
        }
        if i > 0 {
            out.push(',');
        }
        out.push_str(&id.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_lowercase_hex_of_their_length_and_not_zero() {
        assert!(is_trace_id("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(!is_trace_id("4BF92F3577B34DA6A3CE929D0E0E4736"));
        assert!(!is_trace_id("00000000000000000000000000000000"));
        assert!(!is_trace_id("4bf92f3577b34da6a3ce929d0e0e473"));
        assert!(is_span_id("00f067aa0ba902b7"));
        assert!(!is_span_id("00f067aa0ba902b7-"));
        assert!(!is_span_id("0000000000000000"));
    }
}
