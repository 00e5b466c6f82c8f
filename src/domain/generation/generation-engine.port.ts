import type { RuntimeOptions } from '../inference/inference-engine.port.js';
import type { RuntimeKey } from '../shared/model-version-id.js';

/**
 * How the next token of a sequence is chosen. `temperature` 0 is greedy (argmax); `topK` 0 and
 * `topP` 1 turn those filters off. The same `seed` with the same prompt gives the same tokens.
 */
export interface SamplingParams {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly seed: number;
}

/**
 * Stands, as the one token a sequence feeds, for the token the engine sampled for it at its
 * previous step: the scheduler sends a step before the previous one has answered (overlapped
 * steps, see ContinuousBatchScheduler), so it does not know that token yet. An engine that has no
 * such token (the previous step failed, or sampled none) leaves the sequence out of the step and
 * answers no token for it.
 */
export const SAMPLED_TOKEN = -1;

/**
 * What one decode step asks of one sequence: feed `tokens` (a prompt chunk at prefill, or the
 * token sampled at the previous step, given or as {@link SAMPLED_TOKEN}) after what the sequence
 * has already fed, then, when `sample` is true, choose its next token. A non-final prefill chunk
 * has `sample: false`.
 */
export interface SequenceStepInput {
  readonly sequenceId: string;
  readonly tokens: readonly number[];
  readonly sample: boolean;
  readonly sampling: SamplingParams;
}

/** A sequence's outcome of one step: the token chosen, when the step asked for one. */
export interface SequenceStepOutput {
  readonly sequenceId: string;
  readonly token?: number;
}

export interface GenerationStep {
  readonly outputs: readonly SequenceStepOutput[];
  readonly computeMicros: number;
}

/** What a loaded generative model reports about itself. */
export interface GenerativeModelInfo {
  readonly vocabSize: number;
  /** The most positions (prompt + generated tokens) one sequence may hold: the model's context length. */
  readonly maxPositions: number;
  /** Tokens that end a sequence (end-of-sequence). */
  readonly eosTokenIds: readonly number[];
  /** Bytes of KV cache one token of one sequence holds (all layers, keys and values). */
  readonly kvCacheBytesPerToken: number;
  readonly executionProvider: string;
}

/**
 * Port to whatever runs autoregressive decoder models, one step at a time, over many sequences
 * at once (iteration-level batching). `key` identifies one loaded model version. The KV cache of
 * every sequence lives with the instance that runs the model, never on the caller's side: a
 * sequence is known to the engine from its first step until {@link release}.
 */
export abstract class GenerationEngine {
  /** Loads the model in `versionDir` (its `.onnx` file, with the tokenizer and config beside it). */
  abstract load(key: RuntimeKey, versionDir: string, options: RuntimeOptions): Promise<GenerativeModelInfo>;
  /**
   * One batched forward over every sequence in `inputs`; each sequence appears once. Steps run in
   * the order called, and a step may be called before the previous one has answered.
   */
  abstract step(key: RuntimeKey, inputs: readonly SequenceStepInput[]): Promise<GenerationStep>;
  /** Frees the KV cache of finished or cancelled sequences. Unknown ids are ignored. */
  abstract release(key: RuntimeKey, sequenceIds: readonly string[]): void;
  /** Fails steps not started, lets those started end, then releases the instance and every cache. */
  abstract unload(key: RuntimeKey): Promise<void>;
}
