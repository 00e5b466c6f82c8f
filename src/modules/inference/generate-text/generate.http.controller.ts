import { Body, Controller, HttpCode, Param, Post, Req, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { GENERATION_PARAMETER_NAMES } from '../../../domain/generation/generation-parameters.js';
import { requestedVersion } from '../../../domain/registry/model-name.js';
import { clientDisconnect } from '../../../infra/http/client-disconnect.js';
import { parseBody } from '../../../infra/http/request-body.js';
import { headerRecord, parseTimeoutHeader } from '../../../infra/http/route-params.js';
import { writeEventStream } from '../../../infra/http/server-sent-events.js';
import { annotateAccessLog } from '../../../infra/http/access-log.js';
import { ClientThrottlerGuard } from '../../throttling/client-throttler.guard.js';
import { MODEL_VERSION_HEADER } from '../../../infra/transport/model-version-header.js';
import { GenerateTextHandler, wholeText, type GenerateTextCommand } from './generate-text.handler.js';

const parameterValue = z.union([z.string(), z.number(), z.boolean(), z.array(z.string())]);

/** The parameters Triton's generate request may carry for this server's generative models. */
const GENERATE_PARAMETERS = [...GENERATION_PARAMETER_NAMES, 'priority', 'timeout', 'stream'] as const;

/**
 * Triton's `$generate_request`: `text_input` and optional `parameters`. Triton passes any other
 * property on as a parameter; so does this server, for the parameters it knows.
 */
const generateRequest = z
  .looseObject({
    text_input: z.string({ error: 'text_input is required: the text to generate from' }),
    parameters: z.record(z.string(), parameterValue).optional(),
  })
  .superRefine((body, ctx) => {
    const names = [...Object.keys(body).filter((name) => name !== 'text_input' && name !== 'parameters'), ...Object.keys(body.parameters ?? {})];
    const unknown = names.filter((name) => !(GENERATE_PARAMETERS as readonly string[]).includes(name));
    if (unknown.length > 0) ctx.addIssue({ code: 'custom', message: `unknown parameter(s) ${unknown.map((n) => `'${n}'`).join(', ')}; this model takes ${GENERATE_PARAMETERS.join(', ')}` });
  });

/**
 * Triton's generate extension: `POST /v2/models/{m}[/versions/{v}]/generate` answers one JSON
 * object with the whole `text_output`; `.../generate_stream` answers Server-Sent Events, one per
 * token, each `{model_name, model_version, text_output}` with the text that token completed, the
 * last with `finish_reason`. A request refused before generation starts gets the usual JSON error
 * and status; an error after the events began is an event `{"error": "<message>"}`.
 */
@Controller('v2/models/:model')
@UseGuards(ClientThrottlerGuard)
export class GenerateHttpController {
  constructor(private readonly handler: GenerateTextHandler) {}

  @Post(['generate', 'versions/:version/generate'])
  @HttpCode(200)
  async generate(@Param('model') model: string, @Param('version') version: string | undefined, @Body() body: unknown, @Req() req: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply): Promise<object> {
    annotateAccessLog(req.raw, { model, version });
    const generation = await this.handler.generate(commandOf(model, version, body, req));
    clientDisconnect(reply.raw).onAbort(() => generation.stream.cancel('the client closed the connection'));
    const answer = await wholeText(generation);
    void reply.header(MODEL_VERSION_HEADER, String(generation.modelVersion));
    return { model_name: generation.modelName, model_version: String(generation.modelVersion), text_output: answer.text, finish_reason: answer.finishReason };
  }

  @Post(['generate_stream', 'versions/:version/generate_stream'])
  async generateStream(@Param('model') model: string, @Param('version') version: string | undefined, @Body() body: unknown, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    annotateAccessLog(req.raw, { model, version });
    const generation = await this.handler.generate(commandOf(model, version, body, req));
    reply.hijack();
    reply.raw.setHeader(MODEL_VERSION_HEADER, String(generation.modelVersion));
    const names = { model_name: generation.modelName, model_version: String(generation.modelVersion) };
    await writeEventStream(reply.raw, generation.stream, {
      event: (value, final) => JSON.stringify({ ...names, text_output: value.text, ...(final ? { finish_reason: value.finishReason } : {}) }),
      error: (error) => JSON.stringify({ error: error.message }),
    });
  }
}

function commandOf(model: string, version: string | undefined, body: unknown, req: FastifyRequest): GenerateTextCommand {
  const request = parseBody(generateRequest, body, 'INFERENCE.INVALID_REQUEST');
  const { text_input, parameters, ...others } = request;
  return {
    modelName: model,
    version: requestedVersion(version),
    prompt: { text: text_input },
    parameters: { ...others, ...parameters },
    timeoutMicros: parseTimeoutHeader(req.headers),
    headers: headerRecord(req.headers),
  };
}
