import { Injectable } from '@nestjs/common';
import { ModelCatalog } from '../../domain/registry/model-catalog.port.js';
import { Model } from '../../domain/registry/model.js';
import { DomainError } from '../../domain/shared/domain-error.js';

/** The models this server knows and the state of their versions, held in memory. */
@Injectable()
export class ModelRegistry extends ModelCatalog {
  private readonly models = new Map<string, Model>();
  private loading = true;
  private markLoaded!: () => void;
  /** Settles when the repository's first load has finished. */
  readonly loaded = new Promise<void>((resolve) => (this.markLoaded = resolve));

  /** True until the repository's first load has finished. */
  get isLoading(): boolean {
    return this.loading;
  }

  all(): Model[] {
    return [...this.models.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  find(name: string): Model | undefined {
    return this.models.get(name);
  }

  get(name: string): Model {
    const model = this.models.get(name);
    if (!model) throw this.notFound(name);
    return model;
  }

  /** The error for a model this server does not know, in Triton's words (its clients' examples test for them). */
  notFound(name: string): DomainError {
    return new DomainError('REGISTRY.MODEL_NOT_FOUND', `Request for unknown model: '${name}' is not found`);
  }

  add(model: Model): void {
    this.models.set(model.name, model);
  }

  finishLoading(): void {
    this.loading = false;
    this.markLoaded();
  }

  /** Why the server is not ready to serve, or undefined when it is. */
  notReadyReason(strict: boolean): string | undefined {
    if (this.loading) return 'the model repository is still loading';
    if (!strict) return undefined;
    // What an operator unloaded on purpose (a retired version, a model with nothing loaded) is not a
    // failure; a model that should serve and cannot (its problem says why) is.
    const notReady = this.all().flatMap((model) => [
      ...(model.problem && !model.isReady ? [`'${model.name}': ${model.problem}`] : []),
      ...model.versions
        // UNKNOWN: registered and about to load.
        .filter((v) => !v.isReady && !v.isUnloaded && v.state !== 'UNKNOWN')
        .map((v) => `'${model.name}' version ${v.version} is ${v.state}${v.reason ? ` (${v.reason})` : ''}`),
    ]);
    return notReady.length > 0 ? `not every model is READY: ${notReady.join('; ')}` : undefined;
  }
}
