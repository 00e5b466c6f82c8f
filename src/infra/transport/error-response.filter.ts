import { Catch, HttpException, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { Metadata, status as GrpcStatus } from '@grpc/grpc-js';
import type { FastifyReply } from 'fastify';
import type { ServerResponse } from 'node:http';
import { throwError, type Observable } from 'rxjs';
import { DomainError } from '../../domain/shared/domain-error.js';
import { grpcStatusOf } from '../grpc/grpc-error-status.js';
import { httpStatusOf } from '../http/http-error-status.js';
import { isOpenAiRoute, openAiErrorOf } from './openai-error.js';

const logger = new Logger('ErrorResponseFilter');

/** Fastify's own request errors (body too large, bad JSON, bad content type) carry a status. */
interface FastifyError {
  statusCode: number;
  message: string;
}

export interface ErrorLimits {
  readonly maxRequestBytes: number;
}

/** What grpc-js sends for a handler's error: `code`, `details` and trailing metadata. */
export interface GrpcError {
  readonly code: GrpcStatus;
  readonly details: string;
  readonly metadata: Metadata;
}

/**
 * The one place an error becomes a status, for both transports. HTTP: `{"error": "<message>"}`
 * (the KServe V2 error body) with the status of the error's category (http-error-status.ts). gRPC:
 * the status of its category (grpc-error-status.ts) with the message as its details. A retry hint travels as `Retry-After` (HTTP header, gRPC trailer).
 */
@Catch()
export class ErrorResponseFilter implements ExceptionFilter {
  constructor(private readonly limits: ErrorLimits) {}

  catch(error: unknown, host: ArgumentsHost): void | Observable<never> {
    if (host.getType() === 'rpc') {
      const grpcError = grpcErrorOf(error);
      return throwError(() => grpcError);
    }
    sendHttpError(host.switchToHttp().getResponse<FastifyReply>(), host.switchToHttp().getRequest<{ url?: string }>().url, error, this.limits);
  }

}

/**
 * An error as an HTTP answer on a Fastify reply (the filter's, and an ingress thread's): the
 * status of its category, `{"error": "<message>"}` (OpenAI's shape on its routes), Retry-After
 * when it has a retry hint. Internal errors are logged.
 */
export function sendHttpError(reply: FastifyReply, url: string | undefined, error: unknown, limits: ErrorLimits): void {
  const { status, message } = describeHttp(error, limits);
  if (status >= 500 && status !== 503 && status !== 504) logger.error(message);
  const retryAfter = error instanceof DomainError ? error.details.retryAfterSeconds : undefined;
  if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
  // RFC 6750: a 401 says which scheme it wants.
  if (error instanceof DomainError && error.code === 'AUTH.UNAUTHENTICATED') void reply.header('www-authenticate', 'Bearer');
  // OpenAI's API answers its own error shape (what its clients parse); the V2 API `{"error": "<message>"}`.
  const body = isOpenAiRoute(url) ? openAiErrorOf(status, message, error) : { error: message };
  void reply.status(status).header('content-type', 'application/json').send(JSON.stringify(body));
}

function describeHttp(error: unknown, limits: ErrorLimits): { status: number; message: string } {
  if (error instanceof DomainError) return { status: httpStatusOf(error.code), message: error.message };
  const status = error instanceof HttpException ? error.getStatus() : isFastifyError(error) ? error.statusCode : 500;
  if (status === 413) return { status, message: requestTooLarge(limits.maxRequestBytes).message };
  if (status !== 500) return { status, message: (error as Error).message };
  return { status, message: internalMessage(error) };
}

/** A domain error written on a raw response, for the code that answers before Fastify's reply exists. */
export function writeDomainError(res: ServerResponse, error: DomainError): void {
  res.statusCode = httpStatusOf(error.code);
  res.setHeader('content-type', 'application/json');
  if (error.details.retryAfterSeconds !== undefined) res.setHeader('retry-after', String(error.details.retryAfterSeconds));
  res.end(JSON.stringify({ error: error.message }));
}

/** A request body over MAX_REQUEST_BYTES (Fastify's refusal, or one announced with `Expect: 100-continue`). */
export function requestTooLarge(maxRequestBytes: number): DomainError {
  return new DomainError('CLIENT.REQUEST_TOO_LARGE', `the request body is larger than the limit of ${maxRequestBytes} bytes (MAX_REQUEST_BYTES)`);
}

/** An error as a gRPC status; internal errors are logged (the client only sees their message). */
export function grpcErrorOf(error: unknown): GrpcError {
  const metadata = new Metadata();
  if (!(error instanceof DomainError)) {
    const details = internalMessage(error);
    logger.error(details);
    return { code: GrpcStatus.INTERNAL, details, metadata };
  }
  const code = grpcStatusOf(error.code);
  if (code === GrpcStatus.INTERNAL) logger.error(error.message);
  if (error.details.retryAfterSeconds !== undefined) metadata.set('retry-after', String(error.details.retryAfterSeconds));
  return { code, details: error.message, metadata };
}

function internalMessage(error: unknown): string {
  return `internal error: ${(error as Error)?.message ?? String(error)}`;
}

function isFastifyError(error: unknown): error is FastifyError {
  return typeof error === 'object' && error !== null && typeof (error as FastifyError).statusCode === 'number';
}
