import { GrpcMethod } from '@nestjs/microservices';
import { requestedVersion } from '../../../domain/registry/model-name.js';
import { INFERENCE_SERVICE } from '../../../infra/grpc/grpc-options.js';
import type { ModelVersionRequestMessage } from '../../../infra/grpc/inference-messages.js';
import { toConfigFile } from '../../../infra/model-repository/model-config.schema.js';
import { GetModelMetadataHandler } from './get-model-metadata.handler.js';
import { GrpcController } from '../../observability/tracing/grpc-controller.decorator.js';

/** KServe V2 `ModelMetadata` and `ModelReady`, and Triton's `ModelConfig`; unknown models are NOT_FOUND. */
@GrpcController()
export class ModelMetadataGrpcController {
  constructor(private readonly handler: GetModelMetadataHandler) {}

  @GrpcMethod(INFERENCE_SERVICE, 'ModelMetadata')
  modelMetadata({ name, version }: ModelVersionRequestMessage) {
    const metadata = this.handler.execute(name ?? '', requestedVersion(version));
    return {
      name: metadata.name,
      versions: metadata.versions,
      platform: metadata.platform,
      inputs: metadata.signature.inputs,
      outputs: metadata.signature.outputs,
    };
  }

  @GrpcMethod(INFERENCE_SERVICE, 'ModelReady')
  modelReady({ name, version }: ModelVersionRequestMessage) {
    return { ready: this.handler.isReady(name ?? '', requestedVersion(version)) };
  }

  /** The configuration in Triton's ModelConfig message: the same fields as `GET .../config`'s JSON. */
  @GrpcMethod(INFERENCE_SERVICE, 'ModelConfig')
  modelConfig({ name, version }: ModelVersionRequestMessage) {
    return { config: toConfigFile(this.handler.execute(name ?? '', requestedVersion(version)).config) };
  }
}
