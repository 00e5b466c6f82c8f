import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Link, type Span, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  SimpleSpanProcessor,
  TracerProvider,
  type SpanExporter,
} from '@opentelemetry/sdk-trace';
import { RequestTracer, type OpenSpan, type SpanAttributes, type TraceContext } from '../../domain/shared/request-tracer.port.js';
import { IngressDecidedSampler } from './ingress-sampling.js';
import { samplerFromEnv, type SamplerSettings } from './sampler.js';
import { extractTraceContext, propagator, type HeaderGetter } from './trace-context.js';

export { SpanKind, type Attributes, type Context, type HeaderGetter, type Link, type Span };

let contextManagerInstalled = false;

/**
 * OpenTelemetry tracing, configured by the standard environment variables and off unless they ask
 * for it: OTEL_TRACES_EXPORTER (`otlp` or `console`; `none` is off), or an OTLP endpoint
 * (OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, read by the OTLP exporter with
 * the rest of OTEL_EXPORTER_OTLP_*), OTEL_SDK_DISABLED, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER and
 * OTEL_TRACES_SAMPLER_ARG. Off, every call below is a no-op on the API's no-op tracer: nothing is
 * allocated per request. W3C `traceparent` is read from HTTP headers and gRPC metadata alike.
 *
 * Only these OTel packages: the API, the trace SDK, the OTLP/HTTP exporter, the async-local-storage
 * context manager and the W3C propagator (no auto-instrumentation: the spans are ours).
 */
export class Tracing extends RequestTracer {
  readonly enabled: boolean;
  readonly tracer: Tracer;
  /** The sampler's settings, for ingress threads to decide as this thread will (undefined when off). */
  readonly samplerSettings?: SamplerSettings;
  private readonly provider?: TracerProvider;

  constructor(env: NodeJS.ProcessEnv, serviceVersion: string, exporter?: SpanExporter) {
    super();
    const chosen = exporter ?? exporterFromEnv(env);
    this.enabled = chosen !== undefined;
    if (!chosen) {
      this.tracer = trace.getTracer('onnx-serving'); // the API's no-op tracer while no provider is registered
      return;
    }
    installContextManager();
    this.samplerSettings = { OTEL_TRACES_SAMPLER: env.OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG: env.OTEL_TRACES_SAMPLER_ARG };
    this.provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME || 'onnx-serving', 'service.version': serviceVersion }),
      sampler: new IngressDecidedSampler(samplerFromEnv(env)),
      // A given exporter (tests: in memory) sees each span as it ends; a real one gets batches.
      spanProcessors: [exporter ? new SimpleSpanProcessor({ exporter: chosen }) : new BatchSpanProcessor({ exporter: chosen })],
    });
    this.tracer = this.provider.getTracer('onnx-serving', serviceVersion);
  }

  /** Tracing that records nothing (whatever the environment says). */
  static off(): Tracing {
    return new Tracing({}, '');
  }

  /** The context of a request that carries a W3C `traceparent` (else the root: a new trace). */
  extract(header: HeaderGetter): Context {
    return this.enabled ? extractTraceContext(header) : ROOT_CONTEXT;
  }

  /** The `traceparent` of a span's context, to carry it where the API's context does not go (a worker process). */
  traceparentOf(ctx: Context): string | undefined {
    if (!this.enabled) return undefined;
    const carrier: Record<string, string> = {};
    propagator.inject(ctx, carrier, { set: (c, key, value) => (c[key] = value) });
    return carrier.traceparent;
  }

  /** The context a `traceparent` names (for spans made from a worker's report). */
  contextOf(traceparent: string): Context {
    return propagator.extract(ROOT_CONTEXT, traceparent, { get: (value, key) => (key === 'traceparent' ? value : undefined), keys: () => ['traceparent'] });
  }

  /** A span that already happened (its times measured elsewhere: a queue wait, a worker's compute). */
  recordSpan(name: string, parent: Context | TraceContext, startMs: number, endMs: number, attributes: Attributes | SpanAttributes, links?: Link[]): void {
    if (!this.enabled) return;
    this.tracer.startSpan(name, { kind: SpanKind.INTERNAL, startTime: startMs, attributes, links }, parent as unknown as Context).end(endMs);
  }

  annotateRequest(attributes: SpanAttributes): void {
    trace.getActiveSpan()?.setAttributes(attributes);
  }

  /** Runs `fn` in a child span of the active one when that one records (ended when `fn` returns or throws). */
  span<T>(name: string, attributes: Attributes, fn: () => T): T {
    const parent = this.recordingContext();
    if (!parent) return fn();
    const span = this.tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes }, parent);
    try {
      return context.with(trace.setSpan(parent, span), fn);
    } finally {
      span.end();
    }
  }

  /**
   * A span that starts a trace of its own, linked to the spans whose work it does (one batch serves
   * many requests, each of its own trace). Returns it with its `traceparent`, or undefined when off.
   */
  startLinkedRoot(name: string, members: readonly (TraceContext | undefined)[], attributes: SpanAttributes): OpenSpan | undefined {
    if (!this.enabled) return undefined;
    const links: Link[] = [];
    for (const member of members) {
      const spanContext = member === undefined ? undefined : trace.getSpanContext(member as unknown as Context);
      if (spanContext) links.push({ context: spanContext });
    }
    // A batch none of whose requests is traced (all unsampled) makes no span either.
    if (links.length === 0) return undefined;
    const span = this.tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes, links, root: true });
    return {
      traceparent: this.traceparentOf(trace.setSpan(ROOT_CONTEXT, span))!,
      fail: (reason) => span.setStatus({ code: SpanStatusCode.ERROR, message: reason }),
      end: () => span.end(),
    };
  }

  /**
   * A child span of the active recording one, started now and ended by the caller (a generation's
   * span, which lasts as long as its stream), with the context that makes it a parent or a link.
   */
  startChild(name: string, attributes: SpanAttributes): { span: OpenSpan; context: TraceContext } | undefined {
    const parent = this.recordingContext();
    if (!parent) return undefined;
    const span = this.tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes }, parent);
    const spanContext = trace.setSpan(parent, span);
    return {
      span: {
        traceparent: this.traceparentOf(spanContext)!,
        fail: (reason) => span.setStatus({ code: SpanStatusCode.ERROR, message: reason }),
        end: () => span.end(),
      },
      context: spanContext as unknown as TraceContext,
    };
  }

  /** A span of its own trace, already over, linked to the spans it worked for (one decode step for many sequences). */
  recordLinkedRoot(name: string, members: readonly (TraceContext | undefined)[], attributes: SpanAttributes, startMs: number, endMs: number): void {
    if (!this.enabled) return;
    const links: Link[] = [];
    for (const member of members) {
      const spanContext = member === undefined ? undefined : trace.getSpanContext(member as unknown as Context);
      if (spanContext) links.push({ context: spanContext });
    }
    if (links.length === 0) return;
    this.tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes, links, root: true, startTime: startMs }).end(endMs);
  }

  /** The active context when its span records (a sampled request), else undefined: unsampled requests make no child spans. */
  recordingContext(): (Context & TraceContext) | undefined {
    if (!this.enabled) return undefined;
    const active = context.active();
    return trace.getSpan(active)?.isRecording() ? (active as Context & TraceContext) : undefined;
  }

  /** Runs `fn` with `span` as the active span, so that spans and log lines made inside belong to it. */
  within<T>(ctx: Context, span: Span, fn: () => T): T {
    return context.with(trace.setSpan(ctx, span), fn);
  }

  /** The ids of the active span, for log lines (undefined outside a traced request). */
  activeIds(): { trace_id: string; span_id: string } | undefined {
    const span = trace.getSpan(context.active());
    if (!span) return undefined;
    const { traceId, spanId } = span.spanContext();
    return { trace_id: traceId, span_id: spanId };
  }

  async shutdown(): Promise<void> {
    await this.provider?.shutdown();
  }
}

function exporterFromEnv(env: NodeJS.ProcessEnv): SpanExporter | undefined {
  if ((env.OTEL_SDK_DISABLED ?? '').toLowerCase() === 'true') return undefined;
  const named = (env.OTEL_TRACES_EXPORTER ?? '').split(',')[0]!.trim().toLowerCase();
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (named === 'none') return undefined;
  if (named === 'console') return new ConsoleSpanExporter();
  if (named === 'otlp' || (named === '' && endpoint)) return new OTLPTraceExporter();
  return undefined;
}

/** The API's context follows async calls only with a context manager: one per process. */
function installContextManager(): void {
  if (contextManagerInstalled) return;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  contextManagerInstalled = true;
}
