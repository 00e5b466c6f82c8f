import type { BatchMembers, WarmupSample } from '../../domain/inference/inference-engine.port.js';
import type { ModelSignature, Tensor } from '../../domain/inference/tensor.js';
import type { WorkerFault } from './fault-injection.js';

/**
 * Messages between the server and an ONNX session worker, a child process (see SessionWorkerPool
 * for why not a thread). They cross its IPC channel in V8's serialization ('advanced'), which
 * copies typed arrays as raw bytes.
 */
export interface SessionSettings {
  readonly modelPath: string;
  readonly executionProviders: readonly string[];
  readonly intraOpThreads: number;
  readonly interOpThreads: number;
  readonly allowSpinning: boolean;
  /** The least severity onnxruntime writes to the worker's stderr (0 verbose ... 4 fatal): follows LOG_LEVEL. */
  readonly logSeverityLevel: 0 | 1 | 2 | 3 | 4;
}

export type ToWorker =
  /** The first message a worker gets: the session to create. */
  | { readonly type: 'load'; readonly settings: SessionSettings }
  | {
      readonly type: 'run';
      readonly id: number;
      /** Each member request's inputs: the worker gathers them into the batch, and splits the outputs back. */
      readonly members: BatchMembers;
      readonly outputNames: readonly string[];
      /** The W3C traceparent of the batch's span, carried to the process that computes and back with its timing. */
      readonly traceparent?: string;
      /** Tests only: what to do wrong on this run (FaultInjection). */
      readonly fault?: WorkerFault;
      /** The most bytes the run's outputs may hold: past it, they are dropped and the run fails (`tooLargeBytes`). */
      readonly maxOutputBytes?: number;
    }
  /** Runs the samples (values built in the worker), then answers `warmed` or `warmup-failed`. */
  | { readonly type: 'warmup'; readonly id: number; readonly samples: readonly WarmupSample[] };

export type FromWorker =
  | { readonly type: 'loaded'; readonly signature: ModelSignature; readonly executionProvider: string; readonly fallback?: string }
  | { readonly type: 'load-failed'; readonly message: string }
  | {
      readonly type: 'result';
      readonly id: number;
      /** Each member's outputs, in member order. */
      readonly outputs: Tensor[][];
      readonly computeMicros: number;
      /** Gathering the inputs and making the runtime's tensors of them. */
      readonly inputMicros: number;
      /** Reading the runtime's outputs and cutting them into the members' rows. */
      readonly outputMicros: number;
      /** When session.run began, in epoch milliseconds (the worker's clock: the same machine's). */
      readonly startedAtMs: number;
      readonly traceparent?: string;
    }
  | {
      readonly type: 'run-failed';
      readonly id: number;
      readonly message: string;
      /** The bytes of outputs past the run's maxOutputBytes, when that is why it failed. */
      readonly tooLargeBytes?: number;
    }
  | { readonly type: 'warmed'; readonly id: number }
  | { readonly type: 'warmup-failed'; readonly id: number; readonly message: string };
