import { Injectable, type NestMiddleware } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { writeDomainError } from '../../../infra/transport/error-response.filter.js';
import { annotateAccessLog } from '../../../infra/http/access-log.js';
import { TrafficRouter } from '../../../domain/rollout/traffic-router.port.js';
import { InferenceMetrics } from '../../observability/metrics/inference-metrics.js';
import { ModelCatalog } from '../../../domain/registry/model-catalog.port.js';
import { ModelVersionSchedulers } from '../model-version-schedulers.js';

const NO_HEADERS = (): undefined => undefined;
const INFER_PATH = /^\/v2\/models\/([^/?]+)(?:\/versions\/([^/?]+))?\/infer(?:\?|$)/;
const VERSION = /^[1-9]\d{0,15}$/;

/**
 * Refuses an inference request before its body is read when its URL decides it:
 * - an unknown model is a 404, whatever the body (Triton judges the model first);
 * - a model whose queue is full is a 503: at twice the rate a model can take, reading and decoding
 *   the requests it will refuse anyway would take the main thread from the ones it accepts
 *   (measured: 97% busy, refusals answered in seconds). The decision stays the scheduler's; this
 *   only asks it earlier.
 * Anything it cannot decide from the URL (an unknown version, priorities read from the body) goes
 * on to the handler.
 */
@Injectable()
export class RefuseBeforeReadingMiddleware implements NestMiddleware {
  constructor(
    private readonly registry: ModelCatalog,
    private readonly schedulers: ModelVersionSchedulers,
    private readonly router: TrafficRouter,
    private readonly metrics: InferenceMetrics,
  ) {}

  use(req: IncomingMessage, res: ServerResponse, next: () => void): void {
    // Middleware mounted on a path sees `url` with that path stripped (Express's rule).
    const match = INFER_PATH.exec((req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '');
    const model = match && safeDecode(match[1]);
    const refusal = model && this.refusal(model, match[2]);
    if (!refusal) {
      next();
      return;
    }
    annotateAccessLog(req, { model, version: match[2] });
    this.metrics.requestFailed(model, refusal.version, refusal.error);
    writeDomainError(res, refusal.error);
  }

  private refusal(modelName: string, versionText: string | undefined): { error: DomainError; version?: number } | undefined {
    const model = this.registry.find(modelName);
    if (!model) return { error: this.registry.notFound(modelName) };
    if (versionText !== undefined && !VERSION.test(versionText)) return undefined; // the handler names what is wrong
    const version = versionText === undefined ? undefined : Number(versionText);
    // Without a version a rollout may route the request anywhere: the handler decides.
    if (version === undefined && this.router.route(modelName, NO_HEADERS)) return undefined;
    const served = version === undefined ? model.servingVersion() : model.readyVersions.find((v) => v.version === version);
    const error = served && this.schedulers.refusalBeforeReading(served);
    return error && { error, version: served.version };
  }
}

function safeDecode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined; // malformed escapes: the router answers it
  }
}
