import { UseGuards } from '@nestjs/common';
import { GrpcMethod } from '@nestjs/microservices';
import type { Metadata } from '@grpc/grpc-js';
import { parseIdempotencyKey } from '../../../domain/jobs/inference-job.js';
import { requestedVersion } from '../../../domain/registry/model-name.js';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { AppConfig } from '../../../infra/config/app-config.js';
import { metadataValue } from '../../../infra/grpc/call-context.js';
import { JOBS_SERVICE } from '../../../infra/grpc/grpc-options.js';
import { readModelInferRequest } from '../../../infra/grpc/infer-message.codec.js';
import type { ModelInferRequestMessage } from '../../../infra/grpc/inference-messages.js';
import { namedModel } from '../../../infra/grpc/malformed-request.js';
import { InferenceUseCase } from '../../../domain/inference/inference-use-case.port.js';
import { ClientThrottlerGuard } from '../../throttling/client-throttler.guard.js';
import { jobMessage, type InferenceJobMessage } from '../inference-job.grpc-mapper.js';
import { SubmitInferenceJobHandler } from './submit-inference-job.handler.js';
import { GrpcController } from '../../observability/tracing/grpc-controller.decorator.js';

/**
 * `onnx_serving.InferenceJobService/SubmitJob`: a ModelInferRequest, judged against the model as
 * ModelInfer judges it, kept as a job; metadata `idempotency-key` as the HTTP header.
 */
@GrpcController()
export class SubmitInferenceJobGrpcController {
  constructor(
    private readonly handler: SubmitInferenceJobHandler,
    private readonly inference: InferenceUseCase,
    private readonly config: AppConfig,
  ) {}

  @GrpcMethod(JOBS_SERVICE, 'SubmitJob')
  @UseGuards(ClientThrottlerGuard)
  async submitJob(message: ModelInferRequestMessage, metadata: Metadata): Promise<InferenceJobMessage> {
    const idempotencyKey = parseIdempotencyKey(metadataValue(metadata, 'idempotency-key'));
    const model = namedModel(message);
    if (model !== undefined) this.inference.assertKnownModel(model);
    const envelope = readModelInferRequest(message);
    const version = requestedVersion(envelope.modelVersion);
    this.inference.judge(envelope.modelName, version, envelope.inputs, envelope.requestedOutputs);
    // No shared memory reader: an input naming a region is refused by the decoder.
    const decoded = envelope.decode();
    if (decoded.sharedMemoryOutputs.size > 0) {
      throw new DomainError('INFERENCE.INVALID_REQUEST', `output '${[...decoded.sharedMemoryOutputs.keys()][0]}' names a shared memory region: a job's outputs are kept with the job, not written to shared memory`);
    }
    const { job, created } = await this.handler.execute({ modelName: decoded.modelName, version, request: decoded.request, idempotencyKey });
    return jobMessage(job, this.config.JOB_RESULT_TTL_MS, undefined, created);
  }
}
