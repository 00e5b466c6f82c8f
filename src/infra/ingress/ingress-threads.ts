import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ManualCancellation, type CancellationSignal } from '../../domain/inference/dynamic-batch-scheduler.js';
import type { InferenceResponse } from '../../domain/inference/inference-request.js';
import type { AppConfig } from '../config/app-config.js';
import type { IngressThreadData } from './ingress-thread.js';
import { RefusalBoard, type QueueRefusals } from './refusal-board.js';
import type { SamplerSettings } from '../tracing/sampler.js';
import {
  deserializeError,
  ownedTensors,
  serializeError,
  type AnsweredRow,
  type DeclaredRequest,
  type ForwardedInfer,
  type FromIngress,
  type RateLimitState,
  type ToIngress,
} from './ingress-messages.js';

/** What the main thread does with what ingress threads send it (the inference context's ingress controller). */
export abstract class IngressRequests {
  /** Runs a forwarded request to its answer (limits, routing, the scheduler), or throws its refusal. */
  abstract infer(request: ForwardedInfer, cancellation: CancellationSignal): Promise<{ response: InferenceResponse; rateLimit?: RateLimitState } | 'hand over'>;
  /** Judges a request as the controllers do before decoding (see JudgeRequest): the refusal to answer, or undefined when nothing is wrong; counted. */
  abstract judge(model: string, declared: DeclaredRequest | undefined, error: Error | undefined, counted: boolean): Error | undefined;
  /** Counts what the threads answered themselves (the metrics are the main thread's). */
  abstract answered(rows: readonly AnsweredRow[]): void;
  /** The refusals a URL decides because a queue is full: what the threads read off the refusal board before reading a body. */
  abstract readonly queueRefusals: QueueRefusals;
  /** Counts `count` failed requests a thread refused off the board. */
  abstract refusedBeforeReading(model: string, version: number | undefined, error: Error, count: number): void;
}

/** The young generation of each ingress thread's heap (V8's default is 16 MB semi-spaces, about 48 MB). */
const INGRESS_YOUNG_GENERATION_MB = 4;

interface RunningThread {
  readonly worker: Worker;
  readonly cancellations: Map<number, ManualCancellation>;
}

/**
 * INGRESS_THREADS worker threads that accept the serving ports' connections (ingress-thread.ts),
 * and the main thread's end of their channels: it runs what they forward on the one owner of each
 * version's scheduler (this thread), and answers with the outputs' buffers transferred. The main
 * thread's own HTTP server then listens on a private Unix socket, for what the threads forward as
 * it came.
 */
export class IngressThreads {
  private readonly threads: RunningThread[] = [];
  private flushes = 0;
  private readonly flushWaiters = new Map<number, { left: number; done: () => void }>();

  private requests?: IngressRequests;
  private board?: RefusalBoard;

  private constructor(private readonly socketDirectory: string) {}

  /** A private directory (mode 0700) for the main thread's socket: only this user's processes may connect. */
  static async prepare(): Promise<IngressThreads> {
    return new IngressThreads(await mkdtemp(join(tmpdir(), 'onnx-serving-ingress-')));
  }

  /** The socket the main thread's HTTP server listens on. */
  get mainHttpSocket(): string {
    return join(this.socketDirectory, 'http.sock');
  }

  /** The socket the main thread's gRPC server listens on. */
  get mainGrpcSocket(): string {
    return join(this.socketDirectory, 'grpc.sock');
  }

  /**
   * Starts the threads, the first alone (with HTTP_PORT 0 it is given a port, which the others
   * then share); resolves with the port once every thread listens. A thread that cannot start
   * (the port taken) fails the start.
   */
  async start(config: AppConfig, requests: IngressRequests, options: { maxConnections: number; maxGrpcConnections: number; sampling?: SamplerSettings }): Promise<{ httpPort: number; grpcPort: number }> {
    this.requests = requests;
    const board = new RefusalBoard(requests.queueRefusals, (message) => {
      for (const { worker } of this.threads) worker.postMessage(message satisfies ToIngress);
    });
    this.board = board;
    const count = config.INGRESS_THREADS;
    // The caps hold for every thread together: one count of open connections, shared.
    const connectionCounts = new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT);
    let ports = { httpPort: config.HTTP_PORT, grpcPort: config.GRPC_PORT };
    for (let index = 0; index < count; index++) {
      ports = await this.startThread({
        config: { ...config },
        mainHttpSocket: this.mainHttpSocket,
        mainGrpcSocket: this.mainGrpcSocket,
        ...ports,
        maxConnections: options.maxConnections,
        maxGrpcConnections: options.maxGrpcConnections,
        connectionCounts,
        refusalBoard: board.buffer,
        sampling: options.sampling,
      });
    }
    return ports;
  }

  /** Asks every thread for what it counted; resolves once each has reported (before /metrics is rendered). */
  flush(): Promise<void> {
    if (this.threads.length === 0) return Promise.resolve();
    const id = ++this.flushes;
    return new Promise((resolve) => {
      this.flushWaiters.set(id, { left: this.threads.length, done: resolve });
      for (const { worker } of this.threads) worker.postMessage({ kind: 'flush', id } satisfies ToIngress);
    });
  }

  /** Nest's first shutdown hook: the threads close before the schedulers drain. */
  onModuleDestroy(): Promise<void> {
    return this.close();
  }

  /** Each thread stops accepting and finishes its requests in progress (this thread still answers them), then ends. */
  async close(): Promise<void> {
    await Promise.all(
      this.threads.map(async ({ worker }) => {
        const closed = new Promise<void>((resolve) => {
          worker.on('message', (message: FromIngress) => message.kind === 'closed' && resolve());
          worker.once('exit', () => resolve());
        });
        worker.postMessage({ kind: 'close' } satisfies ToIngress);
        await closed;
        await worker.terminate();
      }),
    );
    this.threads.length = 0;
    this.board?.close();
    await rm(this.socketDirectory, { recursive: true, force: true });
  }

  private startThread(data: IngressThreadData): Promise<{ httpPort: number; grpcPort: number }> {
    // Each thread is a V8 heap of its own: its young generation is kept small (requests are short-lived
    // objects), so that N threads under a burst of large bodies do not hold N default-sized ones.
    const worker = new Worker(new URL('./ingress-thread.js', import.meta.url), { workerData: data, resourceLimits: { maxYoungGenerationSizeMb: INGRESS_YOUNG_GENERATION_MB } });
    const thread: RunningThread = { worker, cancellations: new Map() };
    this.threads.push(thread);
    return new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`an ingress thread exited with code ${code} before it listened`)));
      worker.on('message', (message: FromIngress) => {
        if (message.kind === 'listening') {
          worker.removeListener('error', reject);
          resolve({ httpPort: message.httpPort, grpcPort: message.grpcPort });
          return;
        }
        this.onMessage(thread, message);
      });
    });
  }

  private onMessage(thread: RunningThread, message: FromIngress): void {
    switch (message.kind) {
      case 'infer': {
        const cancellation = new ManualCancellation();
        thread.cancellations.set(message.id, cancellation);
        this.requests!.infer(message, cancellation).then(
          (answer) => {
            thread.cancellations.delete(message.id);
            if (answer === 'hand over') {
              thread.worker.postMessage({ kind: 'hand-over', id: message.id } satisfies ToIngress);
              return;
            }
            const { response, rateLimit } = answer;
            const { tensors, transfer } = ownedTensors(response.outputs);
            thread.worker.postMessage({ kind: 'answer', id: message.id, response: { ...response, outputs: tensors }, rateLimit } satisfies ToIngress, transfer);
          },
          (error: unknown) => {
            thread.cancellations.delete(message.id);
            thread.worker.postMessage({ kind: 'failure', id: message.id, error: serializeError(error) } satisfies ToIngress);
          },
        );
        return;
      }
      case 'judge': {
        const error = message.error && deserializeError(message.error);
        const refusal = this.requests!.judge(message.model, message.declared, error, message.counted);
        thread.worker.postMessage((refusal === error ? { kind: 'kept', id: message.id } : { kind: 'failure', id: message.id, error: serializeError(refusal) }) satisfies ToIngress);
        return;
      }
      case 'cancel':
        thread.cancellations.get(message.id)?.abort(message.deadlinePassed);
        return;
      case 'watch':
        this.board!.watch(message.url);
        return;
      case 'report': {
        this.requests!.answered(message.answered);
        for (const [slot, count] of message.refused) {
          const refusal = this.board!.refusalAt(slot);
          if (refusal) this.requests!.refusedBeforeReading(refusal.model, refusal.version, refusal.error, count);
        }
        const waiter = message.flush === undefined ? undefined : this.flushWaiters.get(message.flush);
        if (waiter && --waiter.left === 0) {
          this.flushWaiters.delete(message.flush!);
          waiter.done();
        }
        return;
      }
    }
  }
}
