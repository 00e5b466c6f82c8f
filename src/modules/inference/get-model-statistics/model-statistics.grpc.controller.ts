import { GrpcMethod } from '@nestjs/microservices';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { requestedVersion } from '../../../domain/registry/model-name.js';
import { INFERENCE_SERVICE } from '../../../infra/grpc/grpc-options.js';
import type { ModelVersionRequestMessage } from '../../../infra/grpc/inference-messages.js';
import { GetModelStatisticsHandler } from './get-model-statistics.handler.js';
import { toTritonStatistics } from './triton-statistics.js';
import { GrpcController } from '../../observability/tracing/grpc-controller.decorator.js';

/** Triton's `ModelStatistics`: an empty name means every model, an empty version every ready version. */
@GrpcController()
export class ModelStatisticsGrpcController {
  constructor(private readonly handler: GetModelStatisticsHandler) {}

  @GrpcMethod(INFERENCE_SERVICE, 'ModelStatistics')
  modelStatistics({ name, version }: ModelVersionRequestMessage) {
    if (!name && version) throw new DomainError('INFERENCE.INVALID_REQUEST', `version '${version}' is given without a model name`);
    return toTritonStatistics(name ? this.handler.execute(name, requestedVersion(version)) : this.handler.execute());
  }
}
