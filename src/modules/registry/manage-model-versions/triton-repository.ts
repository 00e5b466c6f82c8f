import { Injectable } from '@nestjs/common';
import { ModelRepository } from '../../../domain/registry/model-repository.port.js';
import { checkedModelName } from '../../../domain/registry/model-name.js';
import type { ModelVersionState } from '../../../domain/registry/model-version.js';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { ModelRegistry } from '../model-registry.js';
import { ModelLifecycle } from './model-lifecycle.js';

export interface RepositoryIndexEntry {
  readonly name: string;
  readonly version?: string;
  readonly state?: ModelVersionState;
  readonly reason?: string;
}

/** Triton's model-repository extension (index, load, unload), for the HTTP and gRPC controllers alike. */
@Injectable()
export class TritonRepository {
  constructor(
    private readonly repository: ModelRepository,
    private readonly registry: ModelRegistry,
    private readonly lifecycle: ModelLifecycle,
  ) {}

  /** Every model directory with its versions' states; with `readyOnly`, only the READY versions. */
  async index(readyOnly: boolean): Promise<RepositoryIndexEntry[]> {
    const entries: RepositoryIndexEntry[] = [];
    for (const directory of await this.repository.scan()) {
      const versions = this.registry.find(directory.name)?.versions ?? [];
      if (versions.length === 0 && !readyOnly) entries.push({ name: directory.name });
      for (const v of versions) {
        if (readyOnly && !v.isReady) continue;
        entries.push({ name: directory.name, version: String(v.version), state: v.state, reason: v.reason });
      }
    }
    return entries;
  }

  /**
   * Loads (or reloads) a model; the only parameter is `config`, a configuration override in JSON.
   * A refusal says `failed to load '<m>', <why>` (Triton's words, which its clients' examples test
   * for), with the status of its cause.
   */
  async load(modelName: string, parameters: Readonly<Record<string, unknown>>): Promise<void> {
    try {
      const config = parameters.config;
      if (config !== undefined && typeof config !== 'string') {
        throw new DomainError('ADMIN.INVALID_REQUEST', 'parameters.config must be a string holding the model configuration in JSON');
      }
      const unknown = Object.keys(parameters).find((key) => key !== 'config');
      if (unknown) {
        throw new DomainError('ADMIN.INVALID_REQUEST', `parameters.${unknown} is not supported (only "config"; model files are uploaded with PUT /admin/models/{m}/versions/{v})`);
      }
      await this.lifecycle.loadModel(checkedModelName(modelName), config);
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      throw new DomainError(error.code, `failed to load '${modelName}', ${error.message}`, error.details);
    }
  }

  /** Unloads every version of a model (Triton's `unload_dependents` has nothing to act on: there are no ensembles). */
  async unload(modelName: string): Promise<void> {
    await this.lifecycle.unloadModel(checkedModelName(modelName));
  }
}
