import { Injectable } from '@nestjs/common';
import { InferenceEngine } from '../../../domain/inference/inference-engine.port.js';
import { validateInferenceRequest, type InferenceRequest, type InferenceResponse } from '../../../domain/inference/inference-request.js';
import { servedSignature } from '../../../domain/registry/model-config.js';
import { ModelRegistry } from '../../registry/model-registry.js';

export interface RunInferenceCommand {
  readonly modelName: string;
  readonly version?: number;
  readonly request: InferenceRequest;
}

/** Runs one inference request on the version that serves it, after checking it against that version's signature. */
@Injectable()
export class RunInferenceHandler {
  constructor(
    private readonly registry: ModelRegistry,
    private readonly engine: InferenceEngine,
  ) {}

  async execute({ modelName, version, request }: RunInferenceCommand): Promise<InferenceResponse> {
    const served = this.registry.get(modelName).versionToServe(version);
    const config = served.config!;
    const outputNames = validateInferenceRequest(request, servedSignature(config), config.maxBatchSize);
    const outputs = await this.engine.run(served.key, request.inputs, outputNames);
    return { modelName, modelVersion: String(served.version), id: request.id, parameters: {}, outputs };
  }
}
