import { Module, RequestMethod } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import type { IncomingMessage, ServerResponse } from 'node:http';
import pino from 'pino';
import { AppConfig } from '../../infra/config/app-config.js';
import { Tracing } from '../../infra/tracing/tracing.js';
import { accessLogFields } from './access-log.js';
import { ServerLogger } from './server-logger.js';

/**
 * Structured JSON logs (pino): one access line per request with model, version, status,
 * duration, and the time it queued and computed. Bodies and headers are never logged, so
 * tensors and tokens cannot leak into logs.
 */
@Module({
  imports: [
    LoggerModule.forRootAsync({
      inject: [AppConfig, Tracing],
      useFactory: (config: AppConfig, tracing: Tracing) => ({
        // nestjs-pino's default route pattern `{/*splat}` matches nothing on Nest 12's Fastify adapter.
        forRoutes: [{ path: '{*splat}', method: RequestMethod.ALL }],
        pinoHttp: [
          {
            level: config.LOG_LEVEL,
            // Lines made inside a traced request carry its trace_id and span_id (none when tracing is off).
            // A fresh object per line: pino merges the line's fields into what the mixin returns.
            ...(tracing.enabled && { mixin: () => tracing.activeIds() ?? {} }),
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
          },
          // Asynchronous writes: lines made while a write is in flight leave in one write, instead of
          // one blocking write(2) per line; pino flushes what is buffered when the process exits.
          pino.destination({ sync: false }),
        ],
      }),
    }),
  ],
  providers: [ServerLogger],
  exports: [ServerLogger],
})
export class ObservabilityModule {}

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
