import { Injectable } from '@nestjs/common';
import type { ModelSignature } from '../../../domain/inference/tensor.js';
import { servedSignature, type ModelConfig } from '../../../domain/registry/model-config.js';
import { ModelRegistry } from '../model-registry.js';

export interface ModelMetadata {
  readonly name: string;
  readonly versions: string[];
  readonly platform: string;
  readonly signature: ModelSignature;
  readonly config: ModelConfig;
}

/** What a client may know of a served model: its versions, platform, signature and configuration. */
@Injectable()
export class GetModelMetadataHandler {
  constructor(private readonly registry: ModelRegistry) {}

  execute(modelName: string, version?: number): ModelMetadata {
    const model = this.registry.get(modelName);
    const served = model.versionToServe(version);
    const config = served.config!;
    return {
      name: model.name,
      versions: version === undefined ? model.readyVersions.map((v) => String(v.version)) : [String(version)],
      platform: config.platform,
      signature: servedSignature(config),
      config,
    };
  }

  /** Whether the model (or that version) is READY; unknown models and versions are errors. */
  isReady(modelName: string, version?: number): boolean {
    const model = this.registry.get(modelName);
    if (version === undefined) return model.isReady;
    const found = model.version(version);
    // A version never loaded is one the server does not have: VERSION_NOT_FOUND, as for any other.
    if (found.neverLoaded) model.versionToServe(version);
    return found.isReady;
  }
}
