import { Injectable } from '@nestjs/common';
import type { DomainError } from '../../../domain/shared/domain-error.js';
import { TrafficRouter } from '../../../domain/rollout/traffic-router.port.js';
import { ModelCatalog } from '../../../domain/registry/model-catalog.port.js';
import type { Model } from '../../../domain/registry/model.js';
import { ModelVersionSchedulers } from '../model-version-schedulers.js';

const NO_HEADERS = (): undefined => undefined;
const VERSION = /^[1-9]\d{0,15}$/;

/** A refusal decided by an infer request's URL, and the version that would have served it (what its failure is counted under). */
export interface UrlRefusal {
  readonly error: DomainError;
  readonly version?: number;
}

/**
 * What an inference request's URL alone decides, before its body is read:
 * - an unknown model is a 404, whatever the body (Triton judges the model first);
 * - a model whose queue is full is a 503: at twice the rate a model can take, reading and decoding
 *   the requests it will refuse anyway would take the CPU from the ones it accepts (measured on
 *   the main thread: 97% busy, refusals answered in seconds). The decision stays the scheduler's;
 *   this only asks it earlier.
 * Anything the URL cannot decide (an unknown version, a rollout's routing, priorities read from the
 * body) is left to the handler. Asked at each request by the main thread's middleware (HTTP, before
 * the body is read) and gRPC controller (before the tensors are read), and
 * published to ingress threads when it changes (the ingress controller's queueRefusals).
 */
@Injectable()
export class RefusalBeforeReading {
  constructor(
    private readonly registry: ModelCatalog,
    private readonly schedulers: ModelVersionSchedulers,
    private readonly router: TrafficRouter,
  ) {}

  /** The refusal of a request to this model (and version, as the URL wrote it), if its URL decides one. */
  of(modelName: string, versionText: string | undefined): UrlRefusal | undefined {
    const model = this.registry.find(modelName);
    if (!model) return { error: this.registry.notFound(modelName) };
    return this.queueFullOf(model, versionText);
  }

  knows(modelName: string): boolean {
    return this.registry.find(modelName) !== undefined;
  }

  queueFull(modelName: string, versionText: string | undefined): UrlRefusal | undefined {
    const model = this.registry.find(modelName);
    return model && this.queueFullOf(model, versionText);
  }

  private queueFullOf(model: Model, versionText: string | undefined): UrlRefusal | undefined {
    const modelName = model.name;
    if (versionText !== undefined && !VERSION.test(versionText)) return undefined; // the handler names what is wrong
    const version = versionText === undefined ? undefined : Number(versionText);
    // Without a version a rollout may route the request anywhere: the handler decides.
    if (version === undefined && this.router.route(modelName, NO_HEADERS)) return undefined;
    const served = version === undefined ? model.servingVersion() : model.readyVersions.find((v) => v.version === version);
    const error = served && this.schedulers.refusalBeforeReading(served);
    return error && { error, version: served.version };
  }

  watch(listener: (modelName: string) => void): void {
    this.schedulers.watchRefusals(listener);
  }
}
