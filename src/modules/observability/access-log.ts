import type { IncomingMessage } from 'node:http';

/** What the per-request access log line says beyond method, path and status. */
export interface AccessLogFields {
  model?: string;
  version?: string;
}

const fieldsOf = new WeakMap<IncomingMessage, AccessLogFields>();

/** Adds fields to the access line of the request being served (read by the logger when the response ends). */
export function annotateAccessLog(request: IncomingMessage, fields: AccessLogFields): void {
  fieldsOf.set(request, { ...fieldsOf.get(request), ...fields });
}

export function accessLogFields(request: IncomingMessage): AccessLogFields {
  return fieldsOf.get(request) ?? {};
}
