import { Injectable } from '@nestjs/common';
import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { FinishReason, GenerationStream, TokenUsage } from '../../../domain/generation/continuous-batch-scheduler.js';
import { generationParametersOf } from '../../../domain/generation/generation-parameters.js';
import { TextTokenizers, type ChatMessage, type TextTokenizer } from '../../../domain/generation/text-tokenizer.port.js';
import type { ModelVersion } from '../../../domain/registry/model-version.js';
import { headerLookup } from '../../../domain/inference/inference-use-case.port.js';
import { TrafficRouter } from '../../../domain/rollout/traffic-router.port.js';
import { DomainError } from '../../../domain/shared/domain-error.js';
import type { StreamOutcome } from '../../../domain/shared/response-stream.js';
import { RequestTracer } from '../../../domain/shared/request-tracer.port.js';
import { GenerationMetrics, type GenerationRefusalReason } from '../../observability/metrics/generation-metrics.js';
import { InferenceMetrics } from '../../observability/metrics/inference-metrics.js';
import { ModelCatalog } from '../../../domain/registry/model-catalog.port.js';
import { CircuitBreakers } from '../circuit-breakers.js';
import { ConcurrencyLimits } from '../concurrency-limits.js';
import { GenerationSchedulers } from '../generation-schedulers.js';

/** A prompt as text (completions, Triton's text_input), or as a chat the model's template turns into text. */
export type GenerationPrompt = { readonly text: string } | { readonly messages: readonly ChatMessage[] };

export interface GenerateTextCommand {
  readonly modelName: string;
  readonly version?: number;
  readonly prompt: GenerationPrompt;
  /** The request's generation parameters, by their snake_case names (max_tokens, temperature, top_p, top_k, seed, stop, priority, timeout). */
  readonly parameters: Readonly<Record<string, unknown>>;
  /** max_tokens when the request names none (each API has its own default). */
  readonly defaultMaxTokens?: number;
  /** A timeout the transport carries (HTTP header, gRPC deadline), in microseconds. */
  readonly timeoutMicros?: number;
  /** The request's headers (HTTP) or text metadata (gRPC), by lower-case name: what rollout rules and sticky keys read. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** A generation under way: its stream of responses (a token each, the last final) and what served it. */
export interface Generation {
  readonly modelName: string;
  readonly modelVersion: number;
  readonly promptTokens: number;
  readonly stream: GenerationStream;
}

/** OpenAI's default max_tokens for completions; Triton's generate has none of its own. */
const DEFAULT_MAX_TOKENS = 16;


/**
 * Generates text with a generative model version, for every API (Triton's generate extension,
 * OpenAI's completions and chat completions, gRPC ModelInfer/ModelStreamInfer): picks the version
 * (the one named, else the rollout's choice, else the default), tokenizes the prompt (a chat
 * through the model's template), checks the parameters, and submits the sequence to the version's
 * continuous-batch scheduler, within the version's in-flight limit and behind its circuit breaker.
 * Each sequence has its span; its outcome counts in the metrics and, when routed, for the rollout.
 */
@Injectable()
export class GenerateTextHandler {
  constructor(
    private readonly registry: ModelCatalog,
    private readonly schedulers: GenerationSchedulers,
    private readonly tokenizers: TextTokenizers,
    private readonly router: TrafficRouter,
    private readonly breakers: CircuitBreakers,
    private readonly limits: ConcurrencyLimits,
    private readonly metrics: InferenceMetrics,
    private readonly generationMetrics: GenerationMetrics,
    private readonly tracing: RequestTracer,
  ) {}

  /** Whether the version a request names (or else the model's default) is generative: which use case a tensor request (gRPC ModelInfer) goes to. */
  serves(modelName: string, version: number | undefined): boolean {
    const model = this.registry.find(modelName);
    if (!model) return false;
    try {
      return model.versionToServe(version).config?.generation !== undefined;
    } catch {
      return false;
    }
  }

  async generate(command: GenerateTextCommand): Promise<Generation> {
    const started = performance.now();
    let served: ModelVersion | undefined;
    try {
      const model = this.registry.get(command.modelName);
      const route = command.version === undefined ? this.router.route(command.modelName, headerLookup(command.headers)) : undefined;
      // A routed version that left service a moment ago: the default serves rather than failing.
      served = (route && model.readyVersions.find((v) => v.version === route.version)) ?? model.versionToServe(command.version);
      const version = served;
      const tokenizer = this.generativeVersion(version);
      assertPromptSize(command.prompt, version.config!.generation!.maxModelLen);
      const promptTokens = promptTokensOf(tokenizer, command.prompt);
      // A request that names no max_tokens gets the API's default, within what the KV cache can hold beside its prompt.
      const { kvCacheBytes, model: info } = version.config!.generation!;
      const room = Math.floor(kvCacheBytes / info.kvCacheBytesPerToken) - promptTokens.length;
      const defaultMaxTokens = Math.max(1, Math.min(command.defaultMaxTokens ?? DEFAULT_MAX_TOKENS, room));
      const parameters = generationParametersOf(command.parameters, { maxTokens: defaultMaxTokens, seed: randomInt(2 ** 32 - 1) });
      const timeoutMicros = earliest(parameters.timeoutMicros, command.timeoutMicros);
      const labels = { 'inference.model': version.modelName, 'inference.model_version': String(version.version) };
      const sequenceSpan = this.tracing.startChild('generation.sequence', { ...labels, 'generation.prompt_tokens': promptTokens.length, 'generation.max_tokens': parameters.maxTokens });
      const permit = this.limits.acquire(version);
      let stream: GenerationStream | undefined;
      const outcome = this.breakers.run(version, () => {
        stream = this.schedulers.for(version).submit({ promptTokens, parameters: { ...parameters, timeoutMicros }, decoder: tokenizer, trace: sequenceSpan?.context });
        return completionOf(stream);
      });
      if (!stream) {
        permit.ignored();
        sequenceSpan?.span.end();
        await outcome; // throws the refusal (the breaker open, the scheduler's)
      }
      outcome.catch(() => {}); // followed through the stream's own end below
      const generation = stream!;
      generation.onClose((end) => {
        const latencyMs = performance.now() - started;
        this.finished(version, end, latencyMs, route !== undefined);
        if (end.kind === 'failed' && isOverload(end.error)) permit.dropped();
        else if (end.kind === 'completed') permit.succeeded(latencyMs);
        else permit.ignored();
        if (sequenceSpan) {
          if (end.kind === 'failed') sequenceSpan.span.fail(end.error.message);
          sequenceSpan.span.end();
        }
      });
      return { modelName: version.modelName, modelVersion: version.version, promptTokens: promptTokens.length, stream: generation };
    } catch (error) {
      this.metrics.requestFailed(command.modelName, served?.version ?? command.version, error);
      const reason = served ? refusalReasonOf(error) : undefined;
      if (served && reason) this.generationMetrics.refused(served.modelName, served.version, reason);
      throw error;
    }
  }

  /** The tokenizer of a generative version; a version of another kind is refused, naming the API it takes. */
  private generativeVersion(version: ModelVersion): TextTokenizer {
    if (!version.config?.generation) {
      throw new DomainError('INFERENCE.INVALID_REQUEST', `model '${version.modelName}' version ${version.version} is not a generative model (backend onnx_generative): send it tensors at /v2/models/${version.modelName}/infer`);
    }
    const tokenizer = this.tokenizers.get(version.key.toString());
    if (!tokenizer) throw new DomainError('REGISTRY.VERSION_NOT_READY', `version ${version.version} of model '${version.modelName}' has no tokenizer loaded`);
    return tokenizer;
  }

  private finished(version: ModelVersion, end: StreamOutcome, latencyMs: number, routed: boolean): void {
    if (end.kind === 'completed') this.metrics.generationSucceeded(version.modelName, version.version, latencyMs);
    else {
      const error = end.kind === 'failed' ? end.error : new DomainError('INFERENCE.CANCELLED', `the client cancelled the generation: ${end.reason}`);
      this.metrics.requestFailed(version.modelName, version.version, error);
      const reason = refusalReasonOf(error);
      if (reason) this.generationMetrics.refused(version.modelName, version.version, reason);
    }
    if (!routed) return;
    const failedForVersion = end.kind === 'failed' && (!(end.error instanceof DomainError) || end.error.code === 'INFERENCE.RUNTIME_ERROR' || end.error.code === 'INFERENCE.DEADLINE_EXCEEDED');
    if (end.kind === 'completed' || failedForVersion) this.router.recordOutcome(version.modelName, version.version, { ok: end.kind === 'completed', latencyMs });
  }
}

/**
 * More characters per token than any tokenizer makes: a prompt longer than max_model_len times this
 * is refused before it is tokenized, so that a request of MAX_REQUEST_BYTES never has the main
 * thread tokenize megabytes that could never fit.
 */
const MAX_CHARACTERS_PER_TOKEN = 128;

function assertPromptSize(prompt: GenerationPrompt, maxModelLen: number): void {
  const characters = 'text' in prompt ? prompt.text.length : prompt.messages.reduce((sum, message) => sum + message.content.length + message.role.length, 0);
  if (characters > maxModelLen * MAX_CHARACTERS_PER_TOKEN) {
    throw new DomainError('GENERATION.TOO_LONG', `the prompt is ${characters} characters: more than this model's max_model_len of ${maxModelLen} tokens can hold (shorten the prompt)`);
  }
}

function promptTokensOf(tokenizer: TextTokenizer, prompt: GenerationPrompt): number[] {
  if ('text' in prompt) return tokenizer.encode(prompt.text, true);
  if (!tokenizer.hasChatTemplate) throw new DomainError('INFERENCE.INVALID_REQUEST', 'this model has no chat template (tokenizer_config.json chat_template): send a prompt to /v1/completions instead');
  let text: string;
  try {
    text = tokenizer.applyChatTemplate(prompt.messages);
  } catch (error) {
    throw new DomainError('INFERENCE.INVALID_REQUEST', `the model's chat template refused these messages: ${(error as Error).message}`);
  }
  // The template writes the special tokens it wants (a BOS among them): none are added.
  return tokenizer.encode(text, false);
}

/** Resolves when the stream has sent its final response or was cancelled; rejects with its failure. */
function completionOf(stream: GenerationStream): Promise<void> {
  return new Promise((resolve, reject) => stream.onClose((end) => (end.kind === 'failed' ? reject(end.error) : resolve())));
}

function isOverload(error: unknown): boolean {
  return error instanceof DomainError && (error.code === 'INFERENCE.DEADLINE_EXCEEDED' || error.code === 'INFERENCE.QUEUE_FULL');
}

function refusalReasonOf(error: unknown): GenerationRefusalReason | undefined {
  if (!(error instanceof DomainError)) return undefined;
  switch (error.code) {
    case 'INFERENCE.QUEUE_FULL':
      return 'queue_full';
    case 'INFERENCE.DEADLINE_EXCEEDED':
      return 'deadline';
    case 'REGISTRY.VERSION_NOT_READY':
      return 'drained';
    case 'GENERATION.TOO_LONG':
      return 'too_long';
    case 'INFERENCE.INVALID_REQUEST':
      return 'invalid';
    default:
      return undefined;
  }
}

/** The smaller of two client timeouts; 0 (Triton's "none") and absent do not count. */
function earliest(a: number | undefined, b: number | undefined): number | undefined {
  if (!a) return b || undefined;
  return b ? Math.min(a, b) : a;
}

/** A generation's whole answer, for the APIs that answer once (generate, non-streaming completions, ModelInfer). */
export interface GeneratedText {
  readonly text: string;
  readonly finishReason: FinishReason;
  readonly usage: TokenUsage;
}

/** Reads a generation to its end; throws its failure. */
export async function wholeText(generation: Generation): Promise<GeneratedText> {
  let text = '';
  for await (const { value, final } of generation.stream) {
    text += value.text;
    if (final) return { text, finishReason: value.finishReason!, usage: value.usage! };
  }
  throw new DomainError('INFERENCE.CANCELLED', 'the generation was cancelled before it finished');
}
