"""W3C trace context, from a resident's request through every event it causes.

A web request continues the trace of its ``traceparent``/``tracestate`` headers
(or starts one) in a server span; every event recorded while handling it
carries that context in its envelope (the CloudEvents distributed-tracing
extension: ``traceparent``/``tracestate`` attributes); a consumer handles each
event in a consumer span that continues the event's trace, so its log lines and
the events it records in turn carry it. Log lines name ``trace_id`` and
``span_id`` (:mod:`gridkit.logs`), which is how one petition is followed across
services with nothing but the logs.

No exporter and no collector are needed: then a span is only context, the API's
:class:`NonRecordingSpan` with fresh ids that keeps the caller's sampled flag (about
4 µs to start, where the SDK's recording span cost ~33 µs with nothing to read it,
measured on these 2-core machines under load). Set
``OTEL_EXPORTER_OTLP_ENDPOINT`` and install ``opentelemetry-exporter-otlp-proto-http``
and the SDK's :class:`TracerProvider` records and exports every span as well.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)

log = logging.getLogger(__name__)

# W3C Trace Context §3.2: version 00 has exactly these four fields; a later version
# may add fields after them, which a 00 parser ignores. All-zero ids are invalid.
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
MAX_TRACESTATE = 512  # W3C §3.3.1.1: longer ones may be dropped; we keep envelopes small

_tracer: trace.Tracer | None = None
exporting = False  # spans' attributes are only worth setting when someone receives them


def configure(service: str, process: str) -> None:
    """This process's tracer provider (once per process; later calls keep the first)."""
    global _tracer, exporting
    if _tracer is not None:
        return
    provider = TracerProvider(resource=Resource.create({
        "service.name": service, "service.namespace": "gridgov", "gridgov.process": process}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        exporting = _add_otlp_exporter(provider)
    trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer("gridkit")


def _add_otlp_exporter(provider: TracerProvider) -> bool:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-exporter-otlp-proto-http is "
                    "not installed: spans stay in the logs' trace ids only")
        return False
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # reads the OTEL_* variables
    return True


def tracer() -> trace.Tracer:
    if _tracer is None:
        configure("gridgov", "cli")
    assert _tracer is not None
    return _tracer


def _start(name: str, parent: SpanContext | None, kind: SpanKind) -> Span:
    """A span continuing ``parent``'s trace (or a new trace): recorded by the SDK when
    spans are exported, else only its context, with the ids the SDK would give it."""
    if exporting:
        context = trace.set_span_in_context(NonRecordingSpan(parent)) if parent is not None else None
        return tracer().start_span(name, context=context, kind=kind)
    span_id = _random_id(64)
    if parent is not None and parent.is_valid:
        return NonRecordingSpan(SpanContext(parent.trace_id, span_id, is_remote=False,
                                            trace_flags=parent.trace_flags, trace_state=parent.trace_state))
    return NonRecordingSpan(SpanContext(_random_id(128), span_id, is_remote=False,
                                        trace_flags=TraceFlags(TraceFlags.SAMPLED)))


def _random_id(bits: int) -> int:
    while True:  # all zeros is the invalid id
        if value := random.getrandbits(bits):
            return value


# -- the wire form -------------------------------------------------------


def valid_traceparent(value: object) -> bool:
    """Whether ``value`` is a traceparent W3C says to accept (else it is ignored, not an error)."""
    if not isinstance(value, str):
        return False
    match = _TRACEPARENT.match(value)
    if not match:
        return False
    version, trace_id, span_id, _, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return False
    return trace_id != "0" * 32 and span_id != "0" * 16


def outgoing() -> tuple[str, str | None] | None:
    """The current span's ``(traceparent, tracestate)`` to send on, or None outside any trace."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    traceparent = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    return traceparent, (ctx.trace_state.to_header() or None) if ctx.trace_state else None


def _remote(traceparent: str | None, tracestate: str | None) -> SpanContext | None:
    """The span context an event carried (already checked by :func:`valid_traceparent`)."""
    if not traceparent:
        return None
    state = TraceState.from_header([tracestate]) if tracestate else None
    return SpanContext(trace_id=int(traceparent[3:35], 16), span_id=int(traceparent[36:52], 16),
                       is_remote=True, trace_flags=TraceFlags(int(traceparent[53:55], 16)), trace_state=state)


# -- spans ---------------------------------------------------------------


def start_server_span(name: str, environ: dict) -> tuple[Span, object]:
    """A web request's span, continuing the caller's trace if it sent one; the caller
    ends it with :func:`end`. Returns the span and the token to detach its context."""
    parent = None
    if traceparent := environ.get("HTTP_TRACEPARENT"):
        # W3C's rules, as the SDK's propagator applies them at a fifth of its cost: an
        # invalid traceparent is ignored (a new trace), and so is its tracestate.
        traceparent = traceparent.strip()
        if valid_traceparent(traceparent):
            tracestate = environ.get("HTTP_TRACESTATE")
            parent = _remote(traceparent[:55], tracestate if tracestate and len(tracestate) <= MAX_TRACESTATE
                             else None)
    span = _start(name, parent, SpanKind.SERVER)
    return span, otel_context.attach(trace.set_span_in_context(span))


def end(span: Span, token: object) -> None:
    otel_context.detach(token)  # type: ignore[arg-type]
    span.end()


@contextmanager
def consuming(queue: str, event_id: str, traceparent: str | None, tracestate: str | None) -> Iterator[Span]:
    """Handle one event in a consumer span continuing the trace it carried (or a new one)."""
    span = _start(f"{queue} process", _remote(traceparent, tracestate), SpanKind.CONSUMER)
    if exporting:
        span.set_attributes({"messaging.system": "rabbitmq", "messaging.destination.name": queue,
                             "messaging.message.id": event_id, "messaging.operation.type": "process"})
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield span
    finally:
        end(span, token)


@contextmanager
def background(name: str) -> Iterator[Span]:
    """One pass of a background loop (a deadline sweep, a delivery batch) in a trace of its
    own: the events it records carry it, so an escalation can be followed into the consumers'
    logs as a petition can."""
    span = _start(name, None, SpanKind.INTERNAL)
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield span
    finally:
        end(span, token)


@contextmanager
def within(span: Span | None) -> Iterator[None]:
    """Log (or record) in ``span``'s context again, e.g. after it ended."""
    if span is None:
        yield
        return
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        otel_context.detach(token)


def ids(traceparent: str | None) -> dict[str, str]:
    """``trace_id``/``span_id`` of a stored traceparent, for a log line outside its span."""
    if not valid_traceparent(traceparent):
        return {}
    assert traceparent is not None
    return {"trace_id": traceparent[3:35], "span_id": traceparent[36:52]}
