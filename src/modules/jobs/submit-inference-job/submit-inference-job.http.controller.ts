import { Body, Controller, Param, Post, Req, Res, UseGuards } from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { parseIdempotencyKey } from '../../../domain/jobs/inference-job.js';
import { requestedVersion } from '../../../domain/registry/model-name.js';
import { AppConfig } from '../../../infra/config/app-config.js';
import { INFERENCE_HEADER_CONTENT_LENGTH, readHttpInferRequestYielding } from '../../../infra/http/binary-tensor.codec.js';
import { BINARY_TENSOR_BODY } from '../../../infra/http/request-body-parsers.js';
import { annotateAccessLog } from '../../../infra/http/access-log.js';
import { InferenceUseCase } from '../../../domain/inference/inference-use-case.port.js';
import { ClientThrottlerGuard } from '../../throttling/client-throttler.guard.js';
import { jobJson, jobPath } from '../inference-job.mapper.js';
import { SubmitInferenceJobHandler } from './submit-inference-job.handler.js';
import { headerGetter } from '../../../infra/http/route-params.js';

/**
 * `POST /v2/models/{m}[/versions/{v}]/jobs`: the body of an infer request (JSON, or Triton's binary
 * tensor data), judged against the model as infer judges it (a bad request is a 400 now, not a
 * FAILED job later), then kept as a job. Answers `202 Accepted` with `Location: /v2/jobs/{id}` and
 * the job; a resubmission under the same `Idempotency-Key` answers `200` with the job it made.
 * Inputs and outputs in shared memory are refused: a job runs later, when a region may be gone.
 */
@Controller('v2/models/:model')
@UseGuards(ClientThrottlerGuard)
export class SubmitInferenceJobHttpController {
  constructor(
    private readonly handler: SubmitInferenceJobHandler,
    private readonly inference: InferenceUseCase,
    private readonly config: AppConfig,
  ) {}

  @Post(['jobs', 'versions/:version/jobs'])
  @RouteConfig({ [BINARY_TENSOR_BODY]: true })
  async submit(
    @Param('model') model: string,
    @Param('version') version: string | undefined,
    @Body() body: unknown,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<string> {
    annotateAccessLog(req.raw, { model, version });
    const idempotencyKey = parseIdempotencyKey(headerGetter(req.headers)('idempotency-key'));
    const requested = requestedVersion(version);
    this.inference.assertKnownModel(model);
    const envelope = await readHttpInferRequestYielding(body, req.headers[INFERENCE_HEADER_CONTENT_LENGTH], this.config.MAX_JSON_DEPTH);
    this.inference.judge(model, requested, envelope.inputs, envelope.requestedOutputs);
    // No shared memory reader: an input naming a region is refused by the decoder.
    const decoded = envelope.decode();
    if (decoded.sharedMemoryOutputs.size > 0) {
      throw new DomainError('INFERENCE.INVALID_REQUEST', `output '${[...decoded.sharedMemoryOutputs.keys()][0]}' names a shared memory region: a job's outputs are kept with the job, not written to shared memory`);
    }
    const { job, created } = await this.handler.execute({ modelName: model, version: requested, request: decoded.request, idempotencyKey });
    void reply.status(created ? 202 : 200);
    void reply.header('location', jobPath(job.id));
    void reply.header('content-type', 'application/json');
    return jobJson(job, this.config.JOB_RESULT_TTL_MS);
  }
}
