import { Module, RequestMethod } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import pino from 'pino';
import { AppConfig } from '../../infra/config/app-config.js';
import { Tracing } from '../../infra/tracing/tracing.js';
import type { IncomingMessage } from 'node:http';
import { accessLogOptions } from '../../infra/http/access-log.js';
import { HANDED_OVER_HEADER } from '../../infra/ingress/forward-to-main.js';
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
            ...accessLogOptions(config, tracing.enabled ? () => tracing.activeIds() ?? {} : undefined),
            // What an ingress thread began to serve and handed over, it logged itself.
            ...(config.INGRESS_THREADS > 0 && { autoLogging: { ignore: (req: IncomingMessage) => req.headers[HANDED_OVER_HEADER] !== undefined } }),
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
