import { GrpcMethod } from '@nestjs/microservices';
import { AppConfig } from '../../../infra/config/app-config.js';
import { JOBS_SERVICE } from '../../../infra/grpc/grpc-options.js';
import { CancelInferenceJobHandler } from '../cancel-inference-job/cancel-inference-job.handler.js';
import { jobMessage, type InferenceJobMessage } from '../inference-job.grpc-mapper.js';
import { GetInferenceJobHandler } from './get-inference-job.handler.js';
import { GrpcController } from '../../observability/tracing/grpc-controller.decorator.js';

/** `onnx_serving.InferenceJobService/GetJob` and `/CancelJob`: the HTTP `GET` and `DELETE /v2/jobs/{id}`. */
@GrpcController()
export class InferenceJobGrpcController {
  constructor(
    private readonly getJob: GetInferenceJobHandler,
    private readonly cancelJob: CancelInferenceJobHandler,
    private readonly config: AppConfig,
  ) {}

  @GrpcMethod(JOBS_SERVICE, 'GetJob')
  async get(request: { id?: string }): Promise<InferenceJobMessage> {
    const { job, response } = await this.getJob.execute(request.id ?? '');
    return jobMessage(job, this.config.JOB_RESULT_TTL_MS, response);
  }

  @GrpcMethod(JOBS_SERVICE, 'CancelJob')
  async cancel(request: { id?: string }): Promise<InferenceJobMessage> {
    return jobMessage(await this.cancelJob.execute(request.id ?? ''), this.config.JOB_RESULT_TTL_MS);
  }
}
