import { Body, Controller, Get, HttpCode, Post, Req, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { GenerationEvent } from '../../../domain/generation/continuous-batch-scheduler.js';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { clientDisconnect } from '../../../infra/http/client-disconnect.js';
import { parseBody } from '../../../infra/http/request-body.js';
import { headerRecord, parseTimeoutHeader } from '../../../infra/http/route-params.js';
import { writeEventStream } from '../../../infra/http/server-sent-events.js';
import { httpStatusOf } from '../../../infra/http/http-error-status.js';
import { openAiErrorOf } from '../../../infra/transport/openai-error.js';
import { annotateAccessLog } from '../../../infra/http/access-log.js';
import { ModelCatalog } from '../../../domain/registry/model-catalog.port.js';
import { ClientThrottlerGuard } from '../../throttling/client-throttler.guard.js';
import { MODEL_VERSION_HEADER } from '../../../infra/transport/model-version-header.js';
import { GenerateTextHandler, wholeText, type Generation, type GenerationPrompt } from './generate-text.handler.js';

/** A chat answers until the end of its turn or max_model_len when it names no max_tokens (OpenAI's chat API has no default). */
const CHAT_DEFAULT_MAX_TOKENS = Number.MAX_SAFE_INTEGER;
const COMPLETION_DEFAULT_MAX_TOKENS = 16;

const nullable = <T extends z.ZodType>(schema: T) => schema.nullish();

/** What both OpenAI endpoints take besides the prompt; the sampling values are checked by the domain (generationParametersOf). */
const common = {
  model: z.string({ error: 'model is required' }).min(1, 'model is required'),
  max_tokens: z.unknown().optional(),
  max_completion_tokens: z.unknown().optional(),
  temperature: z.unknown().optional(),
  top_p: z.unknown().optional(),
  top_k: z.unknown().optional(),
  seed: z.unknown().optional(),
  stop: z.unknown().optional(),
  ignore_eos: z.unknown().optional(),
  n: nullable(z.literal(1, { error: 'only n=1 is supported: one choice per request' })),
  stream: nullable(z.boolean()),
  stream_options: nullable(z.looseObject({ include_usage: nullable(z.boolean()) })),
  logprobs: nullable(z.union([z.literal(false), z.literal(0)], { error: 'logprobs are not supported' })),
  presence_penalty: nullable(z.literal(0, { error: 'presence_penalty is not supported (only 0)' })),
  frequency_penalty: nullable(z.literal(0, { error: 'frequency_penalty is not supported (only 0)' })),
};

const completionRequest = z.looseObject({
  ...common,
  prompt: z.union([z.string(), z.array(z.string()).length(1, 'prompt: one prompt per request (n=1)')], { error: 'prompt is required: a string' }),
  echo: nullable(z.literal(false, { error: 'echo is not supported' })),
  best_of: nullable(z.literal(1, { error: 'only best_of=1 is supported' })),
  suffix: nullable(z.string().max(0, 'suffix is not supported')),
});

const messageContent = z.union([z.string(), z.array(z.object({ type: z.literal('text', { error: 'only text content parts are supported' }), text: z.string() }))]);
const chatRequest = z.looseObject({
  ...common,
  messages: z.array(z.looseObject({ role: z.string().min(1), content: messageContent.nullish() }), { error: 'messages is required: a list of {role, content}' }).min(1, 'messages must hold at least one message').max(1024, 'at most 1024 messages'),
  top_logprobs: nullable(z.literal(0, { error: 'logprobs are not supported' })),
});

type CommonRequest = z.infer<z.ZodObject<typeof common>>;

/**
 * The OpenAI-compatible API (what vLLM, TGI, Triton's OpenAI frontend and KServe serve):
 * `GET /v1/models`, `POST /v1/completions`, `POST /v1/chat/completions` (the model's chat
 * template), answered whole or, with `stream: true`, as Server-Sent Events ending with
 * `data: [DONE]`. `model` names a generative model of the repository; its version is the rollout's
 * or the default's. Errors are OpenAI's `{"error": {message, type, param, code}}`.
 */
@Controller('v1')
@UseGuards(ClientThrottlerGuard)
export class OpenAiHttpController {
  constructor(
    private readonly handler: GenerateTextHandler,
    private readonly registry: ModelCatalog,
  ) {}

  @Get('models')
  models(): object {
    const data = this.registry
      .all()
      .filter((model) => model.readyVersions.some((v) => v.config?.generation))
      .map((model) => ({
        id: model.name,
        object: 'model',
        created: Math.floor((model.readyVersions.find((v) => v.config?.generation)?.loadedAt?.getTime() ?? 0) / 1000),
        owned_by: 'onnx-serving',
      }));
    return { object: 'list', data };
  }

  @Post('completions')
  @HttpCode(200)
  async completions(@Body() body: unknown, @Req() req: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply): Promise<object | void> {
    const request = parseBody(completionRequest, body, 'INFERENCE.INVALID_REQUEST');
    const prompt = typeof request.prompt === 'string' ? request.prompt : request.prompt[0];
    const generation = await this.generate(request, { text: prompt }, COMPLETION_DEFAULT_MAX_TOKENS, req);
    const id = `cmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const head = { id, object: 'text_completion', created, model: generation.modelName };
    if (request.stream) {
      return this.stream(reply, generation, request, (event) => ({ ...head, choices: [{ index: 0, text: event.text, logprobs: null, finish_reason: event.finishReason ?? null }] }), head);
    }
    clientDisconnect(reply.raw).onAbort(() => generation.stream.cancel('the client closed the connection'));
    const answer = await wholeText(generation);
    void reply.header(MODEL_VERSION_HEADER, String(generation.modelVersion));
    return { ...head, choices: [{ index: 0, text: answer.text, logprobs: null, finish_reason: answer.finishReason }], usage: usageOf(answer.usage) };
  }

  @Post('chat/completions')
  @HttpCode(200)
  async chatCompletions(@Body() body: unknown, @Req() req: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply): Promise<object | void> {
    const request = parseBody(chatRequest, body, 'INFERENCE.INVALID_REQUEST');
    const messages = request.messages.map((m) => ({ role: m.role, content: typeof m.content === 'string' ? m.content : (m.content ?? []).map((part) => part.text).join('') }));
    const generation = await this.generate(request, { messages }, CHAT_DEFAULT_MAX_TOKENS, req);
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const head = { id, object: 'chat.completion.chunk', created, model: generation.modelName };
    if (request.stream) {
      let first = true;
      return this.stream(
        reply,
        generation,
        request,
        (event) => {
          const delta = first ? { role: 'assistant', content: event.text } : event.finishReason && event.text === '' ? {} : { content: event.text };
          first = false;
          return { ...head, choices: [{ index: 0, delta, logprobs: null, finish_reason: event.finishReason ?? null }] };
        },
        head,
      );
    }
    clientDisconnect(reply.raw).onAbort(() => generation.stream.cancel('the client closed the connection'));
    const answer = await wholeText(generation);
    void reply.header(MODEL_VERSION_HEADER, String(generation.modelVersion));
    return {
      ...head,
      object: 'chat.completion',
      choices: [{ index: 0, message: { role: 'assistant', content: answer.text }, logprobs: null, finish_reason: answer.finishReason }],
      usage: usageOf(answer.usage),
    };
  }

  private generate(request: CommonRequest, prompt: GenerationPrompt, defaultMaxTokens: number, req: FastifyRequest): Promise<Generation> {
    annotateAccessLog(req.raw, { model: request.model });
    if (request.max_tokens !== undefined && request.max_tokens !== null && request.max_completion_tokens !== undefined && request.max_completion_tokens !== null) {
      throw new DomainError('INFERENCE.INVALID_REQUEST', 'max_tokens and max_completion_tokens: name one of them');
    }
    return this.handler.generate({
      modelName: request.model,
      prompt,
      parameters: {
        max_tokens: request.max_tokens ?? request.max_completion_tokens,
        temperature: request.temperature,
        top_p: request.top_p,
        top_k: request.top_k,
        seed: request.seed,
        stop: request.stop,
        ignore_eos: request.ignore_eos,
      },
      defaultMaxTokens,
      timeoutMicros: parseTimeoutHeader(req.headers),
      headers: headerRecord(req.headers),
    });
  }

  /** Streams the chunks as SSE, then the usage chunk when asked (`stream_options.include_usage`), then `[DONE]`. */
  private async stream(reply: FastifyReply, generation: Generation, request: CommonRequest, chunk: (event: GenerationEvent) => object, head: object): Promise<void> {
    reply.hijack();
    reply.raw.setHeader(MODEL_VERSION_HEADER, String(generation.modelVersion));
    const includeUsage = request.stream_options?.include_usage === true;
    await writeEventStream(reply.raw, generation.stream, {
      event: (value, final) => {
        const data = JSON.stringify(chunk(value));
        return final && includeUsage ? `${data}\n\ndata: ${JSON.stringify({ ...head, choices: [], usage: usageOf(value.usage!) })}` : data;
      },
      error: (error) => {
        const status = error instanceof DomainError ? httpStatusOf(error.code) : 500;
        return JSON.stringify(openAiErrorOf(status, error.message, error));
      },
      done: '[DONE]',
    });
  }
}

function usageOf(usage: { readonly promptTokens: number; readonly completionTokens: number }): object {
  return { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens, total_tokens: usage.promptTokens + usage.completionTokens };
}
