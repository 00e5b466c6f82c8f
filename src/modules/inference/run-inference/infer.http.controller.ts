import { Body, Controller, Header, HttpCode, Param, Post, Req, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { InferenceRequest } from '../../../domain/inference/inference-request.js';
import { decodeInferRequest, encodeInferResponse } from '../../../infra/http/tensor-json.codec.js';
import { clientDisconnect } from '../../../infra/http/client-disconnect.js';
import { parseTimeoutHeader } from '../../../infra/http/route-params.js';
import { Tracing } from '../../../infra/tracing/tracing.js';
import { requestedVersion } from '../../../domain/registry/model-name.js';
import { annotateAccessLog } from '../../observability/access-log.js';
import { ClientThrottlerGuard } from '../../throttling/client-throttler.guard.js';
import { MODEL_VERSION_HEADER, RunInferenceHandler } from './run-inference.handler.js';

/** KServe V2 `POST /v2/models/{m}[/versions/{v}]/infer` with JSON tensors. */
@Controller('v2/models/:model')
@UseGuards(ClientThrottlerGuard)
export class InferHttpController {
  constructor(
    private readonly handler: RunInferenceHandler,
    private readonly tracing: Tracing,
  ) {}

  @Post(['infer', 'versions/:version/infer'])
  @HttpCode(200)
  @Header('content-type', 'application/json')
  async infer(
    @Param('model') model: string,
    @Param('version') version: string | undefined,
    @Body() body: unknown,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<string> {
    annotateAccessLog(req.raw, { model, version });
    let decoded: { version?: number; request: InferenceRequest; timeoutMicros?: number };
    try {
      decoded = { version: requestedVersion(version), request: decodeInferRequest(body), timeoutMicros: parseTimeoutHeader(req.headers) };
    } catch (error) {
      this.handler.refused(model, undefined, error);
      throw error;
    }
    const response = await this.handler.execute({
      modelName: model,
      version: decoded.version,
      request: decoded.request,
      timeoutMicros: decoded.timeoutMicros,
      signal: clientDisconnect(reply.raw),
      header: (name) => headerValue(req.headers[name]),
    });
    void reply.header(MODEL_VERSION_HEADER, response.modelVersion);
    annotateAccessLog(req.raw, {
      version: response.modelVersion,
      queue_time_us: response.parameters.queue_time_us as number,
      compute_time_us: response.parameters.compute_time_us as number,
    });
    return this.tracing.span('response', { 'inference.model': model, 'inference.model_version': response.modelVersion }, () => encodeInferResponse(response));
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
