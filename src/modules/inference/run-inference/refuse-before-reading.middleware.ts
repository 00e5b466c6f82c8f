import { Injectable, type NestMiddleware } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { writeDomainError } from '../../../infra/transport/error-response.filter.js';
import { annotateAccessLog } from '../../../infra/http/access-log.js';
import { INFER_URL, modelOfInferUrl } from '../../../infra/http/infer-url.js';
import { InferenceMetrics } from '../../observability/metrics/inference-metrics.js';
import { RefusalBeforeReading } from './refusal-before-reading.js';

/** Refuses an inference request before its body is read when its URL decides it (RefusalBeforeReading). */
@Injectable()
export class RefuseBeforeReadingMiddleware implements NestMiddleware {
  constructor(
    private readonly refusals: RefusalBeforeReading,
    private readonly metrics: InferenceMetrics,
  ) {}

  use(req: IncomingMessage, res: ServerResponse, next: () => void): void {
    // Middleware mounted on a path sees `url` with that path stripped (Express's rule).
    const match = INFER_URL.exec((req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '');
    const model = match && modelOfInferUrl(match);
    const refusal = model && this.refusals.of(model, match[2]);
    if (!refusal) {
      next();
      return;
    }
    annotateAccessLog(req, { model, version: match[2] });
    this.metrics.requestFailed(model, refusal.version, refusal.error);
    writeDomainError(res, refusal.error);
  }
}
