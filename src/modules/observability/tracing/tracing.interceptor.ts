import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { SpanStatusCode } from '@opentelemetry/api';
import type { Metadata } from '@grpc/grpc-js';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Observable } from 'rxjs';
import { SpanKind, Tracing, type Attributes, type Context, type HeaderGetter, type Span } from '../../../infra/tracing/tracing.js';
import { metadataValue } from '../../../infra/grpc/call-context.js';
import { grpcStatusOfError } from '../../../infra/grpc/grpc-error-status.js';
import { httpStatusOfError } from '../../../infra/http/http-error-status.js';
import { annotateAccessLog } from '../../../infra/http/access-log.js';
import { headerGetter } from '../../../infra/http/route-params.js';
import { INGRESS_SAMPLED_ATTRIBUTE, INGRESS_SAMPLED_HEADER } from '../../../infra/tracing/ingress-sampling.js';

const INGRESS_SAMPLED: Attributes = { [INGRESS_SAMPLED_ATTRIBUTE]: true };

interface TracedCall {
  readonly name: string;
  readonly parent: Context;
  /** A new trace an ingress thread drew sampled, forwarded over the main thread's private socket (INGRESS_SAMPLED_HEADER). */
  readonly ingressSampled: boolean;
  /** Built only for a span that records (an unsampled request makes none of them). */
  attributes(): Attributes;
  /** Sets the span's status attributes from the outcome, and says whether it failed. */
  finish(span: Span, error?: unknown): void;
}

/**
 * The request span, for both transports: it continues the trace of a W3C `traceparent` (HTTP
 * header, gRPC metadata) or starts one, is named after the route template or the RPC, and is the
 * active span while the handler runs, so the spans of the queue, the batch (linked) and the
 * response, and the request's log lines, belong to it. Off, it costs one boolean test.
 */
@Injectable()
export class TracingInterceptor implements NestInterceptor {
  constructor(private readonly tracing: Tracing) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (!this.tracing.enabled) return next.handle();
    const call = context.getType() === 'rpc' ? this.rpc(context) : this.http(context);
    if (!call) return next.handle();
    // The samplers this server offers (OTEL_TRACES_SAMPLER) decide on the trace id and the parent
    // alone, so the attributes are set after the decision: an unsampled request builds none.
    const span = this.tracing.tracer.startSpan(call.name, { kind: SpanKind.SERVER, ...(call.ingressSampled && { attributes: INGRESS_SAMPLED }) }, call.parent);
    // Not sampled: nothing to record, so no context to carry either.
    if (!span.isRecording()) return next.handle();
    span.setAttributes(call.attributes());
    return new Observable((subscriber) => {
      const subscription = this.tracing.within(call.parent, span, () =>
        next.handle().subscribe({
          next: (value) => subscriber.next(value),
          error: (error: unknown) => {
            call.finish(span, error);
            span.end();
            subscriber.error(error);
          },
          complete: () => {
            call.finish(span);
            span.end();
            subscriber.complete();
          },
        }),
      );
      return () => subscription.unsubscribe();
    });
  }

  private http(context: ExecutionContext): TracedCall {
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const reply = context.switchToHttp().getResponse<FastifyReply>();
    const route = request.routeOptions.url ?? request.url;
    const header: HeaderGetter = headerGetter(request.headers);
    return {
      name: `${request.method} ${route}`,
      parent: this.tracing.extract(header),
      // Only an ingress thread reaches this server over a Unix socket (no remote address).
      ingressSampled: request.raw.socket.remoteAddress === undefined && header(INGRESS_SAMPLED_HEADER) === '1',
      attributes: () => ({ 'http.request.method': request.method, 'http.route': route, 'url.path': request.url.split('?')[0], 'url.scheme': 'http' }),
      finish: (span, error) => {
        const status = error === undefined ? reply.statusCode : httpStatusOfError(error);
        span.setAttribute('http.response.status_code', status);
        if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error | undefined)?.message });
        const { traceId, spanId } = span.spanContext();
        annotateAccessLog(request.raw, { trace_id: traceId, span_id: spanId });
      },
    };
  }

  private rpc(context: ExecutionContext): TracedCall | undefined {
    // Unary handlers get (request, metadata, call); stream handlers get (call).
    const call = context.getArgs().find((arg): arg is { getPath(): string; getPeer(): string; metadata: Metadata } => typeof arg?.getPath === 'function');
    if (!call) return undefined;
    const path = call.getPath().replace(/^\//, '');
    const [service, method] = path.split('/');
    const header: HeaderGetter = (name) => metadataValue(call.metadata, name);
    return {
      name: path,
      parent: this.tracing.extract(header),
      // Only an ingress thread reaches this server over its Unix socket (a peer grpc-js calls 'unknown').
      ingressSampled: call.getPeer() === 'unknown' && header(INGRESS_SAMPLED_HEADER) === '1',
      attributes: () => ({ 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': method }),
      finish: (span, error) => {
        const code = error === undefined ? 0 : grpcStatusOfError(error);
        span.setAttribute('rpc.grpc.status_code', code);
        if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
      },
    };
  }
}
