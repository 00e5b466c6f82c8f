import { grpcAccessLine, type InferAnswer } from '../../../infra/grpc/grpc-access-line.js';
import { Injectable, Logger, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { trace } from '@opentelemetry/api';
import { Observable, tap } from 'rxjs';
import { grpcStatusOfError } from '../../../infra/grpc/grpc-error-status.js';


/**
 * One access line per gRPC call, as pino-http writes one per HTTP request: the method, its status
 * code, duration, and for inference the model, version, queue and compute time (and trace ids when
 * tracing is on). A stream is one line, when it ends. Levels as for HTTP: failures of the server
 * at error, refusals and client errors at warn.
 */
@Injectable()
export class GrpcAccessLogInterceptor implements NestInterceptor {
  private readonly logger = new Logger('gRPC');

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'rpc') return next.handle();
    const call = context.getArgs().find((arg): arg is { getPath(): string } => typeof arg?.getPath === 'function');
    const started = performance.now();
    const ids = () => {
      const span = trace.getActiveSpan();
      return span ? { trace_id: span.spanContext().traceId, span_id: span.spanContext().spanId } : {};
    };
    let traced = {};
    return next.handle().pipe(
      tap({
        subscribe: () => (traced = ids()),
        next: (answer) => this.write(call?.getPath(), 0, started, answer as InferAnswer, traced),
        error: (error: unknown) => this.write(call?.getPath(), grpcStatusOfError(error), started, undefined, traced, error),
      }),
    );
  }

  private write(method: string | undefined, code: number, started: number, answer: InferAnswer | undefined, traced: object, error?: unknown): void {
    const { level, line } = grpcAccessLine(method, code, started, answer, traced, error);
    if (level === 'error') this.logger.error(line);
    else if (level === 'warn') this.logger.warn(line);
    else this.logger.log(line);
  }

}
