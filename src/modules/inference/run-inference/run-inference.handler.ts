import { Injectable } from '@nestjs/common';
import {
  schedulingParametersOf,
  validateInferenceRequest,
  type InferenceRequest,
  type InferenceResponse,
} from '../../../domain/inference/inference-request.js';
import { InferenceEngine } from '../../../domain/inference/inference-engine.port.js';
import type { CancellationSignal } from '../../../domain/inference/dynamic-batch-scheduler.js';
import { servedSignature } from '../../../domain/registry/model-config.js';
import { ModelRegistry } from '../../registry/model-registry.js';
import { ModelVersionSchedulers } from '../model-version-schedulers.js';

export interface RunInferenceCommand {
  readonly modelName: string;
  readonly version?: number;
  readonly request: InferenceRequest;
  /** A timeout the transport carries (HTTP header, gRPC deadline), in microseconds. */
  readonly timeoutMicros?: number;
  /** Aborted when the client has gone away. */
  readonly signal?: CancellationSignal;
}

/**
 * Runs one inference request: checks it against the serving version's signature, then queues it
 * in that version's scheduler, which batches it with others. The response reports the queue and
 * compute time and the rows of the run that served it, in its `parameters`.
 */
@Injectable()
export class RunInferenceHandler {
  constructor(
    private readonly registry: ModelRegistry,
    private readonly schedulers: ModelVersionSchedulers,
    private readonly engine: InferenceEngine,
  ) {}

  async execute({ modelName, version, request, timeoutMicros, signal }: RunInferenceCommand): Promise<InferenceResponse> {
    const served = this.registry.get(modelName).versionToServe(version);
    const config = served.config!;
    const outputNames = validateInferenceRequest(request, servedSignature(config), config.maxBatchSize);
    this.engine.checkInputs(request.inputs);
    const { priority, timeoutMicros: parameterTimeout } = schedulingParametersOf(request);
    const result = await this.schedulers.for(served).enqueue({
      inputs: request.inputs,
      outputNames,
      priority,
      timeoutMicros: earliest(parameterTimeout, timeoutMicros),
      signal,
    });
    return {
      modelName,
      modelVersion: String(served.version),
      id: request.id,
      parameters: { queue_time_us: result.queueMicros, compute_time_us: result.computeMicros, batch_size: result.batchSize },
      outputs: result.outputs,
    };
  }
}

/** The smaller of two client timeouts; 0 (Triton's "none") and absent do not count. */
function earliest(a: number | undefined, b: number | undefined): number | undefined {
  if (!a) return b || undefined;
  return b ? Math.min(a, b) : a;
}
