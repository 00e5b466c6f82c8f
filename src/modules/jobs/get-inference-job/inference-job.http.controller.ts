import { Controller, Delete, Get, Param, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { AppConfig } from '../../../infra/config/app-config.js';
import { CancelInferenceJobHandler } from '../cancel-inference-job/cancel-inference-job.handler.js';
import { jobJson } from '../inference-job.mapper.js';
import { GetInferenceJobHandler } from './get-inference-job.handler.js';

/**
 * `GET /v2/jobs/{id}`: the job's state, with the infer response once it SUCCEEDED, its error once it
 * FAILED; `DELETE /v2/jobs/{id}`: cancels it (PENDING or RUNNING), answering the CANCELLED job.
 */
@Controller('v2/jobs')
export class InferenceJobHttpController {
  constructor(
    private readonly getJob: GetInferenceJobHandler,
    private readonly cancelJob: CancelInferenceJobHandler,
    private readonly config: AppConfig,
  ) {}

  @Get(':id')
  async get(@Param('id') id: string, @Res({ passthrough: true }) reply: FastifyReply): Promise<string> {
    const { job, response } = await this.getJob.execute(id);
    void reply.header('content-type', 'application/json');
    // A job not finished yet: when to poll again.
    if (!job.isFinished) void reply.header('retry-after', '1');
    return jobJson(job, this.config.JOB_RESULT_TTL_MS, response);
  }

  @Delete(':id')
  async cancel(@Param('id') id: string, @Res({ passthrough: true }) reply: FastifyReply): Promise<string> {
    const job = await this.cancelJob.execute(id);
    void reply.header('content-type', 'application/json');
    return jobJson(job, this.config.JOB_RESULT_TTL_MS);
  }
}
