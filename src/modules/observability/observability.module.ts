import { Module, RequestMethod } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AppConfig } from '../../infra/config/app-config.js';
import { accessLogFields } from './access-log.js';

/**
 * Structured JSON logs (pino): one access line per request with model, version, status and
 * duration. Bodies and headers are never logged, so tensors and tokens cannot leak into logs.
 */
@Module({
  imports: [
    LoggerModule.forRootAsync({
      inject: [AppConfig],
      useFactory: (config: AppConfig) => ({
        // nestjs-pino's default route pattern `{/*splat}` matches nothing on Nest 12's Fastify adapter.
        forRoutes: [{ path: '{*splat}', method: RequestMethod.ALL }],
        pinoHttp: {
          level: config.LOG_LEVEL,
          customAttributeKeys: { responseTime: 'duration_ms' },
          serializers: {
            req: (req: IncomingMessage & { id?: unknown }) => ({ id: req.id, method: req.method, url: req.url }),
            res: (res: ServerResponse) => ({ statusCode: res.statusCode }),
          },
          customProps: (req: IncomingMessage) => accessLogFields(req),
          customLogLevel: (_req: IncomingMessage, res: ServerResponse, error?: Error) =>
            error || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info',
          customSuccessMessage: () => 'request completed',
          customErrorMessage: () => 'request failed',
          redact: ['req.headers.authorization'],
        },
      }),
    }),
  ],
})
export class ObservabilityModule {}
