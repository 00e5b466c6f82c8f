import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { InferenceEngine, type EngineRun, type EngineRunOptions, type InstanceStatus, type LoadedModel, type RuntimeOptions, type WarmupSample } from '../../domain/inference/inference-engine.port.js';
import { responseTooLarge } from '../../domain/inference/response-limit.js';
import type { Tensor } from '../../domain/inference/tensor.js';
import { defaultIntraOpThreads } from '../../domain/registry/model-config-limits.js';
import { DomainError } from '../../domain/shared/domain-error.js';
import { Tracing } from '../tracing/tracing.js';
import { cpuQuota } from './cpu-quota.js';
import { FaultInjection } from './fault-injection.js';
import { OutputsTooLargeError, PoolReleasedError, RunTimeLimitError, SessionWorkerPool } from './session-worker-pool.js';

/** The onnxruntime-node adapter: each loaded model version is a pool of session worker processes. */
@Injectable()
export class OnnxRuntimeEngine extends InferenceEngine implements OnApplicationShutdown {
  private readonly logger = new Logger(OnnxRuntimeEngine.name);
  private readonly pools = new Map<string, SessionWorkerPool>();
  /** Keys whose pool is starting: a second load of one of them must not start (and leak) another. */
  private readonly loading = new Set<string>();
  private readonly cpus = cpuQuota();

  constructor(
    private readonly tracing: Tracing = Tracing.off(),
    private readonly faults: FaultInjection = new FaultInjection(),
  ) {
    super();
  }

  async load(key: string, modelPath: string, options: RuntimeOptions): Promise<LoadedModel> {
    if (this.pools.has(key) || this.loading.has(key)) throw new Error(`'${key}' is already loaded`);
    this.loading.add(key);
    try {
      return await this.startPool(key, modelPath, options);
    } finally {
      this.loading.delete(key);
    }
  }

  private async startPool(key: string, modelPath: string, options: RuntimeOptions): Promise<LoadedModel> {
    const intraOpThreads = options.intraOpThreads ?? defaultIntraOpThreads(this.cpus, options.instanceCount);
    const loaded = await SessionWorkerPool.start(
      {
        modelPath,
        executionProviders: options.executionProviders,
        intraOpThreads,
        interOpThreads: options.interOpThreads ?? 1,
        allowSpinning: options.allowSpinning,
      },
      options.instanceCount,
    );
    this.pools.set(key, loaded.pool);
    const requested = options.executionProviders.join(', ');
    if (loaded.fallback) {
      this.logger.log(`${key}: execution provider ${loaded.executionProvider} in use (requested ${requested}; ${loaded.fallback})`);
    } else {
      this.logger.log(`${key}: execution provider ${loaded.executionProvider} in use, ${options.instanceCount} instance(s), ${intraOpThreads} intra-op thread(s) each`);
    }
    return { signature: loaded.signature, executionProvider: loaded.executionProvider };
  }

  concurrency(key: string): number {
    return this.pools.get(key)?.instances ?? 0;
  }

  /** onnxruntime-node copies string tensors as C strings: an element would silently end at its first NUL byte. */
  checkInputs(inputs: readonly Tensor[]): void {
    for (const input of inputs) {
      if (!Array.isArray(input.data)) continue;
      const index = input.data.findIndex((element) => element.includes('\0'));
      if (index >= 0) {
        throw new DomainError('INFERENCE.INVALID_DATA', `input '${input.name}': element ${index} holds a NUL byte, which the ONNX runtime's string tensors cannot carry`);
      }
    }
  }

  async run(key: string, inputs: readonly Tensor[], outputNames: readonly string[], options: EngineRunOptions = {}): Promise<EngineRun> {
    const pool = this.pools.get(key);
    if (!pool) throw new DomainError('REGISTRY.VERSION_NOT_READY', `'${key}' is not loaded`);
    try {
      const run = await pool.run(inputs, outputNames, options.traceContext, this.faults.next(key), options.timeLimitMs, options.maxOutputBytes);
      // The worker took the trace context with the call and brought it back with its timing.
      if (run.traceparent) {
        this.tracing.recordSpan('compute', this.tracing.contextOf(run.traceparent), run.startedAtMs, run.startedAtMs + run.computeMicros / 1000, {
          'inference.runtime': 'onnxruntime',
          'inference.execution_provider': pool.executionProvider,
        });
      }
      return { outputs: run.outputs, computeMicros: run.computeMicros };
    } catch (error) {
      if (error instanceof OutputsTooLargeError) throw responseTooLarge(error.bytes, error.maxBytes, 'the outputs of its run hold');
      if (error instanceof PoolReleasedError) throw new DomainError('REGISTRY.VERSION_NOT_READY', `'${key}' was unloaded before this call ran`);
      if (error instanceof RunTimeLimitError) {
        this.logger.warn(`${key}: ${error.message}`);
        throw new DomainError('INFERENCE.DEADLINE_EXCEEDED', `model '${key}': ${error.message}`);
      }
      throw new DomainError('INFERENCE.RUNTIME_ERROR', `model '${key}' failed to run: ${(error as Error).message}`);
    }
  }

  async warmUp(key: string, samples: readonly WarmupSample[], timeLimitMs?: number): Promise<void> {
    const pool = this.pools.get(key);
    if (!pool) throw new DomainError('REGISTRY.VERSION_NOT_READY', `'${key}' is not loaded`);
    await pool.warmUp(samples, timeLimitMs);
  }

  async unload(key: string): Promise<void> {
    const pool = this.pools.get(key);
    if (!pool) return;
    this.pools.delete(key);
    await pool.release();
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([...this.pools.keys()].map((key) => this.unload(key)));
  }

  status(): InstanceStatus[] {
    return [...this.pools].map(([key, pool]) => ({
      key,
      instances: pool.instances,
      busy: pool.busy,
      queued: pool.queued,
      executionProvider: pool.executionProvider,
      lostInstances: pool.lostWorkers,
      restartedInstances: pool.restartedWorkers,
    }));
  }
}
