/** Attributes of a span: what the trace says of the work (model, version, batch size). */
export type SpanAttributes = Readonly<Record<string, string | number | boolean>>;

/**
 * A request's trace context, opaque to the application: it only carries it (to the scheduler, back
 * to the tracer). Undefined when the request is not traced (tracing off, or not sampled).
 */
export type TraceContext = { readonly __traceContext: unique symbol };

/** A span started and not yet ended (a batch's), with the `traceparent` that carries it across a process. */
export interface OpenSpan {
  readonly traceparent: string;
  /** Marks the span as failed, saying why. */
  fail(reason: string): void;
  end(): void;
}

/**
 * Port to distributed tracing, as the application uses it (the adapter: OpenTelemetry). With tracing
 * off every call is a no-op.
 */
export abstract class RequestTracer {
  /** Adds attributes to the span of the request being handled, if it has one. */
  abstract annotateRequest(attributes: SpanAttributes): void;
  /** The context of the request being handled when its span records (a sampled request), else undefined. */
  abstract recordingContext(): TraceContext | undefined;
  /** A span that already happened (a queue wait), its times measured elsewhere, in epoch milliseconds. */
  abstract recordSpan(name: string, parent: TraceContext, startMs: number, endMs: number, attributes: SpanAttributes): void;
  /**
   * A span that starts a trace of its own, linked to the requests whose work it does (a batch
   * serves many requests, each of its own trace); undefined when none of them is traced.
   */
  abstract startLinkedRoot(name: string, members: readonly (TraceContext | undefined)[], attributes: SpanAttributes): OpenSpan | undefined;
  /**
   * A child span of the request being handled, started now and ended by the caller (a generation's
   * span, which lasts as long as its stream), with its context (a parent or a link for later
   * spans); undefined when the request's span does not record.
   */
  abstract startChild(name: string, attributes: SpanAttributes): { readonly span: OpenSpan; readonly context: TraceContext } | undefined;
  /** A span of its own trace, already over, linked to the spans it worked for (one decode step for many sequences). */
  abstract recordLinkedRoot(name: string, members: readonly (TraceContext | undefined)[], attributes: SpanAttributes, startMs: number, endMs: number): void;
}
