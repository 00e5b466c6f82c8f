import type { GenerativeModelInfo } from '../generation/generation-engine.port.js';
import type { InputHeader } from '../inference/inference-request.js';
import { formatShape, type ModelSignature } from '../inference/tensor.js';
import { DomainError } from '../shared/domain-error.js';

/**
 * The `backend` of a model configuration that names a generative (autoregressive decoder) model,
 * served token by token by the generation engine rather than run once per request.
 */
export const GENERATIVE_BACKEND = 'onnx_generative';

/** Whether a model configuration names a generative model: the one place the server recognises one. */
export function isGenerativeBackend(backend: string | undefined): boolean {
  return backend === GENERATIVE_BACKEND;
}

/** The input and output a generative model shows as tensors (Triton's generate extension and TensorRT-LLM's names). */
const TEXT_INPUT = 'text_input';
export const TEXT_OUTPUT = 'text_output';

/** What a generative model serves as tensors: one BYTES prompt in, one BYTES text out (ModelInfer, metadata). */
export const GENERATIVE_SIGNATURE: ModelSignature = {
  inputs: [{ name: TEXT_INPUT, datatype: 'BYTES', shape: [1] }],
  outputs: [{ name: TEXT_OUTPUT, datatype: 'BYTES', shape: [1] }],
};

/**
 * The inputs of a request to a generative model, its prompt `text_input` as shape [1] for the
 * checks of any request: one element, sent as [1] (Triton's vLLM backend: max_batch_size 0, dims
 * [1]) or as [1, 1], a batch of one (Triton's TensorRT-LLM ensemble: max_batch_size > 0, dims [1],
 * so its clients send a batch dimension). Any other shape of it is refused here, naming both.
 */
export function generativeInputHeaders(inputs: readonly InputHeader[]): InputHeader[] {
  return inputs.map((input) => {
    if (input.name !== TEXT_INPUT) return input;
    const [first, second] = input.shape;
    if (input.shape.length === 1 && first === 1) return input;
    if (input.shape.length === 2 && first === 1 && second === 1) return { ...input, shape: [1] };
    throw new DomainError(
      'INFERENCE.INVALID_SHAPE',
      `input '${TEXT_INPUT}' has shape ${formatShape(input.shape)}: a generative model takes one prompt, of shape [1], or [1, 1] with a batch dimension of 1`,
    );
  });
}

/** A generative model's scheduling limits as its configuration declares them (Triton `parameters`); what it leaves out takes the server's defaults. */
export interface DeclaredGenerationLimits {
  readonly maxNumSeqs?: number;
  readonly maxModelLen?: number;
  readonly kvCacheBytes?: number;
  readonly maxPrefillTokensPerStep?: number;
  readonly streamBufferTokens?: number;
  readonly overlapSteps?: boolean;
}

/** The complete limits a generative version is scheduled with, and what the model said of itself. */
export interface GenerationConfig {
  readonly maxNumSeqs: number;
  /** The declared max_model_len, never past the model's own context length. */
  readonly maxModelLen: number;
  readonly kvCacheBytes: number;
  readonly maxPrefillTokensPerStep: number;
  readonly streamBufferTokens: number;
  /** Whether the next step is sent before the running one answers (the scheduler's overlapped steps). */
  readonly overlapSteps: boolean;
  readonly model: GenerativeModelInfo;
}

/** Completes a generative version's limits from its declaration, the server's defaults and the loaded model. */
export function completeGenerationConfig(declared: DeclaredGenerationLimits | undefined, defaults: Omit<GenerationConfig, 'model' | 'maxModelLen'>, model: GenerativeModelInfo): GenerationConfig {
  const maxModelLen = declared?.maxModelLen ?? model.maxPositions;
  if (maxModelLen > model.maxPositions) {
    throw new DomainError('REGISTRY.INVALID_CONFIG', `max_model_len ${maxModelLen} is past the model's context length of ${model.maxPositions} positions`);
  }
  return {
    maxNumSeqs: declared?.maxNumSeqs ?? defaults.maxNumSeqs,
    maxModelLen,
    kvCacheBytes: declared?.kvCacheBytes ?? defaults.kvCacheBytes,
    maxPrefillTokensPerStep: declared?.maxPrefillTokensPerStep ?? defaults.maxPrefillTokensPerStep,
    streamBufferTokens: declared?.streamBufferTokens ?? defaults.streamBufferTokens,
    overlapSteps: declared?.overlapSteps ?? defaults.overlapSteps,
    model,
  };
}
