import { Body, Controller, HttpCode, Param, Post, Req, Res, UseGuards } from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppConfig } from '../../../infra/config/app-config.js';
import { encodeHttpInferResponse, INFERENCE_HEADER_CONTENT_LENGTH, readHttpInferRequestYielding, type DecodedHttpInferRequest, type HttpInferEnvelope } from '../../../infra/http/binary-tensor.codec.js';
import { clientDisconnect } from '../../../infra/http/client-disconnect.js';
import { BINARY_TENSOR_BODY } from '../../../infra/http/request-body-parsers.js';
import { headerRecord, parseTimeoutHeader } from '../../../infra/http/route-params.js';
import { Tracing } from '../../../infra/tracing/tracing.js';
import { requestedVersion } from '../../../domain/registry/model-name.js';
import { SystemSharedMemory } from '../../../domain/shared-memory/system-shared-memory.js';
import { annotateAccessLog } from '../../../infra/http/access-log.js';
import { ClientThrottlerGuard } from '../../throttling/client-throttler.guard.js';
import { RunInferenceHandler } from './run-inference.handler.js';
import { replyInferResponse } from '../../../infra/http/infer-reply.js';
import { sharedMemoryInputs } from '../../../infra/transport/shared-memory-tensors.js';
import { RequestCancellations } from '../../../domain/inference/request-cancellations.port.js';

/**
 * KServe V2 `POST /v2/models/{m}[/versions/{v}]/infer`: JSON tensors, or Triton's binary tensor
 * data; tensors may also be read from and written to registered shared memory regions. The body
 * arrives as bytes whatever its content type, and is judged against the model before any of its
 * elements is parsed.
 */
@Controller('v2/models/:model')
@UseGuards(ClientThrottlerGuard)
export class InferHttpController {
  constructor(
    private readonly handler: RunInferenceHandler,
    private readonly tracing: Tracing,
    private readonly config: AppConfig,
    private readonly sharedMemory: SystemSharedMemory,
    private readonly cancellations: RequestCancellations,
  ) {}

  @Post(['infer', 'versions/:version/infer'])
  @HttpCode(200)
  @RouteConfig({ [BINARY_TENSOR_BODY]: true })
  async infer(
    @Param('model') model: string,
    @Param('version') version: string | undefined,
    @Body() body: unknown,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<string | Buffer> {
    annotateAccessLog(req.raw, { model, version });
    let decoded: { version?: number; request: DecodedHttpInferRequest; timeoutMicros?: number };
    let requested: number | undefined;
    let envelope: HttpInferEnvelope;
    try {
      requested = requestedVersion(version);
      envelope = await readHttpInferRequestYielding(body, req.headers[INFERENCE_HEADER_CONTENT_LENGTH], this.config.MAX_JSON_DEPTH);
    } catch (error) {
      this.handler.refused(model, undefined, error);
      throw error;
    }
    // Judged on what it declares before a single element is parsed (a wrong body costs a scan, not a decode); counts its refusal.
    this.handler.judge(model, requested, envelope.inputs, envelope.requestedOutputs);
    try {
      decoded = {
        version: requested,
        request: envelope.decode(sharedMemoryInputs(this.sharedMemory, this.config.MAX_REQUEST_BYTES)),
        timeoutMicros: parseTimeoutHeader(req.headers),
      };
    } catch (error) {
      this.handler.refused(model, undefined, error);
      throw error;
    }
    const outputSlices = decoded.request.sharedMemoryOutputs;
    const cancellation = this.cancellations.register(clientDisconnect(reply.raw));
    let response;
    try {
      response = await this.handler.execute({
        modelName: model,
        version: decoded.version,
        request: decoded.request.request,
        timeoutMicros: decoded.timeoutMicros,
        cancellation,
        headers: headerRecord(req.headers),
        sharedMemoryOutputs: outputSlices,
      });
    } finally {
      this.cancellations.release(cancellation);
    }
    return replyInferResponse(reply, response, () =>
      this.tracing.span('response', { 'inference.model': model, 'inference.model_version': response.modelVersion }, () =>
        encodeHttpInferResponse(response, decoded.request.binaryOutput, (name) => outputSlices.has(name)),
      ),
    );
  }
}
