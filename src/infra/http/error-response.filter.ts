import { Catch, HttpException, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { ServerResponse } from 'node:http';
import { DomainError } from '../../domain/shared/domain-error.js';
import { HTTP_STATUS_OF } from './domain-error-status.js';

/** Fastify's own request errors (body too large, bad JSON, bad content type) carry a status. */
interface FastifyError {
  statusCode: number;
  message: string;
}

export interface HttpErrorLimits {
  readonly maxRequestBytes: number;
}

/**
 * Every error leaves as `{"error": "<message>"}` (the KServe V2 error body) with the status of the
 * table. Nothing else in the server picks a status for an error.
 */
@Catch()
export class ErrorResponseFilter implements ExceptionFilter {
  private readonly logger = new Logger(ErrorResponseFilter.name);

  constructor(private readonly limits: HttpErrorLimits) {}

  catch(error: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    const { status, message } = this.describe(error);
    if (status >= 500 && status !== 503 && status !== 504) this.logger.error(message);
    const retryAfter = error instanceof DomainError ? error.details.retryAfterSeconds : undefined;
    if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
    // RFC 6750: a 401 says which scheme it wants.
    if (error instanceof DomainError && error.code === 'AUTH.UNAUTHENTICATED') void reply.header('www-authenticate', 'Bearer');
    void reply.status(status).header('content-type', 'application/json').send(JSON.stringify({ error: message }));
  }

  describe(error: unknown): { status: number; message: string } {
    if (error instanceof DomainError) return { status: HTTP_STATUS_OF[error.code], message: error.message };
    const status = error instanceof HttpException ? error.getStatus() : isFastifyError(error) ? error.statusCode : 500;
    if (status === 413) {
      return { status, message: `the request body is larger than the limit of ${this.limits.maxRequestBytes} bytes (MAX_REQUEST_BYTES)` };
    }
    if (status !== 500) return { status, message: (error as Error).message };
    return { status, message: `internal error: ${(error as Error)?.message ?? String(error)}` };
  }
}

/** A domain error written on a raw response, for the code that answers before Fastify's reply exists. */
export function writeDomainError(res: ServerResponse, error: DomainError): void {
  res.statusCode = HTTP_STATUS_OF[error.code];
  res.setHeader('content-type', 'application/json');
  if (error.details.retryAfterSeconds !== undefined) res.setHeader('retry-after', String(error.details.retryAfterSeconds));
  res.end(JSON.stringify({ error: error.message }));
}

function isFastifyError(error: unknown): error is FastifyError {
  return typeof error === 'object' && error !== null && typeof (error as FastifyError).statusCode === 'number';
}
