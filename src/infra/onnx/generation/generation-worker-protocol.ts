import type { SamplingParams, SequenceStepInput, SequenceStepOutput } from '../../../domain/generation/generation-engine.port.js';
import type { FromWorker, ToWorker } from '../worker-protocol.js';

/**
 * One batched step as it crosses to the generation worker: the server has checked it against the
 * model (GenerationEngine.step). Column-wise, in typed arrays, rather than one object per
 * sequence: a step of 32 sequences is then a few small arrays to serialize and parse at each end
 * of the channel instead of 160 objects (stepMessage, stepInputsOf).
 */
export interface StepMessage {
  readonly type: 'step';
  readonly id: number;
  readonly sequenceIds: readonly string[];
  /** Every sequence's tokens, one after the other; `counts[i]` of them are sequence i's. */
  readonly tokens: Int32Array;
  readonly counts: Uint32Array;
  /** 1 where the sequence samples its next token. */
  readonly sample: Uint8Array;
  /** Four per sequence: temperature, top-k, top-p, seed (all exact in float64). */
  readonly sampling: Float64Array;
}

/** A step's outcome: the token each sequence sampled, in the step's order, -1 where it sampled none. */
interface SteppedMessage {
  readonly type: 'stepped';
  readonly id: number;
  readonly tokens: Int32Array;
  readonly computeMicros: number;
  /** Forwards the step took (decode and prefill sequences run apart; see the worker). */
  readonly forwards: number;
}

/**
 * Messages between the server and a generation worker, the child process that holds a generative
 * model's session and the KV cache of every sequence. It is started and loaded like a session
 * worker (the same 'load' message and answers); the worker handles its messages one at a time, in
 * the order sent, so a release sent after a step applies after it.
 */
export type ToGenerationWorker =
  | Extract<ToWorker, { type: 'load' }>
  | StepMessage
  /** Drops the caches of these sequences; unknown ids are ignored. No answer. */
  | { readonly type: 'release'; readonly sequenceIds: readonly string[] }
  /** Asks what the caches hold now (after every message sent before). */
  | { readonly type: 'cache-use'; readonly id: number };

/** What the caches of a generation worker hold. */
export interface CacheUse {
  readonly sequences: number;
  /** Positions held, all sequences together. */
  readonly tokens: number;
  /**
   * Bytes allocated for keys and values: a prompt's own cache, up to a block more than its positions
   * (kv-cache-batch.ts), and the decode batch's arrays, rows x its longest past, padding and free rows
   * included (decode-batch.ts).
   */
  readonly bytes: number;
}

export type FromGenerationWorker =
  | Extract<FromWorker, { type: 'loaded' | 'load-failed' }>
  | SteppedMessage
  | { readonly type: 'step-failed'; readonly id: number; readonly message: string }
  | ({ readonly type: 'cache-use'; readonly id: number } & CacheUse);

const SAMPLING_FIELDS = 4;

/** The step message of `inputs`. */
export function stepMessage(id: number, inputs: readonly SequenceStepInput[]): StepMessage {
  const rows = inputs.length;
  let total = 0;
  for (const input of inputs) total += input.tokens.length;
  const tokens = new Int32Array(total);
  const counts = new Uint32Array(rows);
  const sample = new Uint8Array(rows);
  const sampling = new Float64Array(rows * SAMPLING_FIELDS);
  const sequenceIds: string[] = new Array(rows);
  let at = 0;
  inputs.forEach((input, i) => {
    sequenceIds[i] = input.sequenceId;
    tokens.set(input.tokens, at);
    at += input.tokens.length;
    counts[i] = input.tokens.length;
    sample[i] = input.sample ? 1 : 0;
    const { temperature, topK, topP, seed } = input.sampling;
    sampling.set([temperature, topK, topP, seed], i * SAMPLING_FIELDS);
  });
  return { type: 'step', id, sequenceIds, tokens, counts, sample, sampling };
}

/** The inputs a step message carries, as they were given to {@link stepMessage}. */
export function stepInputsOf(message: StepMessage): SequenceStepInput[] {
  let at = 0;
  return message.sequenceIds.map((sequenceId, i) => {
    const count = message.counts[i]!;
    const tokens = Array.from(message.tokens.subarray(at, at + count));
    at += count;
    const s = message.sampling.subarray(i * SAMPLING_FIELDS, (i + 1) * SAMPLING_FIELDS);
    const sampling: SamplingParams = { temperature: s[0]!, topK: s[1]!, topP: s[2]!, seed: s[3]! };
    return { sequenceId, tokens, sample: message.sample[i] === 1, sampling };
  });
}

/** The outputs of a step from its inputs and the stepped message's tokens. */
export function stepOutputsOf(inputs: readonly SequenceStepInput[], tokens: Int32Array): SequenceStepOutput[] {
  return inputs.map(({ sequenceId }, i) => (tokens[i]! >= 0 ? { sequenceId, token: tokens[i]! } : { sequenceId }));
}
