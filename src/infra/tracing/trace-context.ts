import { ROOT_CONTEXT, type Context } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';

/** A header getter: HTTP headers or gRPC metadata, by lower-case name. */
export type HeaderGetter = (name: string) => string | undefined;

/** W3C trace context (`traceparent`, `tracestate`): what this server reads and writes. */
export const propagator = new W3CTraceContextPropagator();

/** The context a request's W3C `traceparent` names (the root when it carries none: a new trace). */
export function extractTraceContext(header: HeaderGetter): Context {
  return propagator.extract(ROOT_CONTEXT, header, { get: (get, key) => get(key), keys: () => [] });
}
