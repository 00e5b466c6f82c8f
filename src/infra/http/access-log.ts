import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Options } from 'pino-http';
import type { AppConfig } from '../config/app-config.js';

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

function accessLogFields(request: IncomingMessage): AccessLogFields | undefined {
  return (request as Annotated)[FIELDS];
}

/**
 * pino-http's options for the access log, the same on the main thread and on every ingress thread:
 * one line per request with model, version, status, duration, and the time it queued and computed.
 * Bodies and headers are never logged, so tensors and tokens cannot leak into logs. `mixin`: what
 * every line made inside a traced request carries (its trace_id and span_id).
 */
export function accessLogOptions(config: AppConfig, mixin?: () => object): Options {
  return {
    level: config.LOG_LEVEL,
    // A fresh object per line: pino merges the line's fields into what the mixin returns.
    ...(mixin && { mixin }),
    customAttributeKeys: { responseTime: 'duration_ms' },
    // Our serializers take the raw objects: pino's standard ones, which they would otherwise
    // wrap, copy every field (and format an error's stack) before ours pick three.
    wrapSerializers: false,
    serializers: {
      req: (req: IncomingMessage & { id?: unknown; originalUrl?: string }) => ({ id: req.id, method: req.method, url: req.originalUrl ?? req.url }),
      res: (res: ServerResponse) => ({ statusCode: res.statusCode }),
      // No stack: for a 5xx answer pino-http makes an Error whose stack is its own code, and
      // formatting it cost more than the refusal it logs (measured under overload). The
      // error filter logs what failed.
      err: (err: Error) => ({ type: err.name, message: err.message }),
    },
    // The access fields join the final line's object rather than a child logger's bindings:
    // pino-http's `customProps` builds child loggers per request (measured: 8% of the main thread).
    customSuccessObject: (req: IncomingMessage, _res: ServerResponse, line: object) => withAccessFields(req, line),
    // A probe's 503 is an answer ("not ready yet"), not a failure: its line carries no error.
    customErrorObject: (req: IncomingMessage, _res: ServerResponse, _error: Error, line: object) => withAccessFields(req, isProbe(req) ? withoutError(line) : line),
    // Probes (every few seconds, from every load balancer) are at debug: ServerReadiness logs
    // each change of the answer once. 503 and 504 are the server protecting itself (queue full,
    // timeouts), not failures of it.
    customLogLevel: (req: IncomingMessage, res: ServerResponse, error?: Error) =>
      isProbe(req) ? 'debug' : error || (res.statusCode >= 500 && res.statusCode !== 503 && res.statusCode !== 504) ? 'error' : res.statusCode >= 400 ? 'warn' : 'info',
    customSuccessMessage: () => 'request completed',
    customErrorMessage: (req: IncomingMessage) => (isProbe(req) ? 'request completed' : 'request failed'),
    // Headers are not logged; should a line carry them, the credentials are censored.
    redact: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'authorization', 'token', 'admin_token'],
  };
}

/** KServe's liveness and readiness probes. */
const PROBE_PATHS = new Set(['/v2/health/live', '/v2/health/ready']);

function isProbe(req: IncomingMessage & { originalUrl?: string }): boolean {
  const url = req.originalUrl ?? req.url ?? '';
  const query = url.indexOf('?');
  return req.method === 'GET' && PROBE_PATHS.has(query < 0 ? url : url.slice(0, query));
}

function withoutError(line: object): object {
  const { err: _err, ...rest } = line as { err?: unknown };
  return rest;
}

function withAccessFields(req: IncomingMessage, line: object): object {
  const fields = accessLogFields(req);
  return fields ? Object.assign(line, fields) : line;
}
