import type { SequenceStepInput, SequenceStepOutput } from '../../../domain/generation/generation-engine.port.js';
import type { FromWorker, ToWorker } from '../worker-protocol.js';

/**
 * Messages between the server and a generation worker, the child process that holds a generative
 * model's session and the KV cache of every sequence. It is started and loaded like a session
 * worker (the same 'load' message and answers); the worker handles its messages one at a time, in
 * the order sent, so a release sent after a step applies after it.
 */
export type ToGenerationWorker =
  | Extract<ToWorker, { type: 'load' }>
  /** One batched step; the server has checked it against the model (GenerationEngine.step). */
  | { readonly type: 'step'; readonly id: number; readonly inputs: readonly SequenceStepInput[] }
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
  | {
      readonly type: 'stepped';
      readonly id: number;
      readonly outputs: SequenceStepOutput[];
      readonly computeMicros: number;
      /** Forwards the step took (decode and prefill sequences run apart; see the worker). */
      readonly forwards: number;
    }
  | { readonly type: 'step-failed'; readonly id: number; readonly message: string }
  | ({ readonly type: 'cache-use'; readonly id: number } & CacheUse);
