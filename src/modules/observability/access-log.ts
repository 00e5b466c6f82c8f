import type { IncomingMessage } from 'node:http';

/** What the per-request access log line says beyond method, path and status. */
export interface AccessLogFields {
  model?: string;
  version?: string;
  /** Microseconds the request waited in its model's queue, and its batch computed. */
  queue_time_us?: number;
  compute_time_us?: number;
  /** The request's span, when tracing is on. */
  trace_id?: string;
  span_id?: string;
}

const FIELDS = Symbol('accessLogFields');
type Annotated = IncomingMessage & { [FIELDS]?: AccessLogFields };

/** Adds fields to the access line of the request being served (read by the logger when the response ends). */
export function annotateAccessLog(request: IncomingMessage, fields: AccessLogFields): void {
  const annotated = request as Annotated;
  const current = annotated[FIELDS];
  if (current) Object.assign(current, fields);
  else annotated[FIELDS] = fields;
}

export function accessLogFields(request: IncomingMessage): AccessLogFields | undefined {
  return (request as Annotated)[FIELDS];
}
