import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Inject, Injectable, Logger, Optional, type OnApplicationShutdown } from '@nestjs/common';
import { GenerationEngine, type GenerationStep, type GenerativeModelInfo, type SequenceStepInput } from '../../../domain/generation/generation-engine.port.js';
import { checkStepInputs } from '../../../domain/generation/step-check.js';
import type { RuntimeOptions } from '../../../domain/inference/inference-engine.port.js';
import { defaultIntraOpThreads } from '../../../domain/registry/model-config-limits.js';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { AppConfig } from '../../config/app-config.js';
import { cpuQuota } from '../../host/cpu-quota.js';
import { runtimeLogSink, runtimeSeverityFor } from '../onnxruntime-log.js';
import { firstAnswer, startWorker, type StderrLineSink } from '../session-worker-pool.js';
import type { SessionSettings } from '../worker-protocol.js';
import { decoderLayout, kvCacheBytesPerToken } from './decoder-layout.js';
import { GENERATIVE_MODEL_FILE, readGenerativeModelFacts } from './generative-model-files.js';
import type { RuntimeKey } from '../../../domain/shared/model-version-id.js';
import { stepMessage, stepOutputsOf, type CacheUse, type FromGenerationWorker, type ToGenerationWorker } from './generation-worker-protocol.js';

const WORKER_PATH = fileURLToPath(new URL('./onnx-generation.worker.js', import.meta.url));

/** A generation worker: its process collects the young generation itself (`gc`, see YoungOutputCollector in the worker). */
const startGenerationWorker = (settings: SessionSettings, stderrLine: StderrLineSink): ChildProcess => startWorker(settings, stderrLine, WORKER_PATH, ['--expose-gc']);

/** What a loaded generative version holds now, as the server counts it (no round trip to its process). */
export interface GenerationInstanceStatus {
  readonly key: string;
  /** Sequences whose KV cache the instance holds. */
  readonly sequences: number;
  /** Positions held, all sequences together, and the bytes of keys and values in them (positions x kvCacheBytesPerToken). */
  readonly cachedTokens: number;
  readonly cacheBytes: number;
  /** Forwards run since the version loaded (a step runs one for its decoding sequences, and one or more for its prompts). */
  readonly forwards: number;
  /** Steps waiting to be sent to the instance process (at most STEPS_IN_FLIGHT are there at once). */
  readonly queuedSteps: number;
  readonly stepRunning: boolean;
  /** Instance processes that ended while serving (their caches lost), and those started in their place. */
  readonly lostInstances: number;
  readonly restartedInstances: number;
  /** The instance process, when one runs (tests look at it). */
  readonly pid?: number;
}

interface PendingStep {
  /** What it feeds; a sequence released while the step waits to be sent is taken out (see release). */
  inputs: readonly SequenceStepInput[];
  readonly resolve: (step: GenerationStep) => void;
  readonly reject: (error: Error) => void;
}

/** A step sent to the instance process, not answered yet. */
interface SentStep extends PendingStep {
  readonly id: number;
}

/**
 * Steps sent to the instance process before it has answered the first: the running one and the
 * next (overlapped steps, ContinuousBatchScheduler), which it starts as soon as the running one
 * ends. More would only queue in its pipe.
 */
const STEPS_IN_FLIGHT = 2;

/** Resolves when the process has exited (at once if it has). */
function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

/** One loaded generative version: its instance process and what the server knows of the caches in it. */
class GenerationInstance {
  /** Positions each live sequence holds in the instance's cache, the steps sent counted: what bounds its next step. */
  readonly held = new Map<string, number>();
  /** Sequences whose cache died with an instance process; their steps fail until they are released. */
  readonly lost = new Set<string>();
  readonly queue: PendingStep[] = [];
  /** Sent and not answered, oldest first (the process answers in order). */
  readonly sent: SentStep[] = [];
  child?: ChildProcess;
  unloading = false;
  /** Why no process can run this version any more (its replacement failed to load): steps are refused with it. */
  failure?: string;
  lostInstances = 0;
  restartedInstances = 0;
  forwards = 0;
  private nextId = 1;
  private readonly cacheQueries = new Map<number, { resolve: (use: CacheUse) => void; reject: (error: Error) => void }>();
  private stepId = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    readonly key: string,
    readonly info: GenerativeModelInfo,
    private readonly settings: SessionSettings,
    private readonly logger: Logger,
    /** Where the process's stderr (onnxruntime's log) goes. */
    private readonly stderrLine: StderrLineSink,
  ) {}

  attach(child: ChildProcess): void {
    this.child = child;
    child.on('message', (message: FromGenerationWorker) => this.received(message));
    child.once('exit', (code, signal) => {
      if (this.child === child) this.ended(code !== null ? `exited with code ${code}` : `was ended by ${signal}`);
    });
    this.dispatch();
  }

  enqueue(inputs: readonly SequenceStepInput[]): Promise<GenerationStep> {
    return new Promise((resolve, reject) => {
      this.queue.push({ inputs, resolve, reject });
      this.dispatch();
    });
  }

  release(sequenceIds: readonly string[]): void {
    for (const id of sequenceIds) {
      this.held.delete(id);
      this.lost.delete(id);
    }
    // A step still waiting to be sent (while a process is replaced) no longer feeds them: sent
    // later, it would start them again in the process, where nothing would release them. It answers
    // no output for them.
    const released = new Set(sequenceIds);
    for (const step of this.queue) step.inputs = step.inputs.filter((input) => !released.has(input.sequenceId));
    if (this.child?.connected) this.send({ type: 'release', sequenceIds });
  }

  cacheUse(): Promise<CacheUse> {
    return new Promise((resolve, reject) => {
      if (!this.child?.connected) {
        reject(new Error(`'${this.key}' has no instance process running`));
        return;
      }
      const id = this.nextId++;
      this.cacheQueries.set(id, { resolve, reject });
      this.send({ type: 'cache-use', id });
    });
  }

  /** Fails the steps not sent, lets those sent end, then ends the process. */
  async unload(): Promise<void> {
    this.unloading = true;
    for (const step of this.queue.splice(0)) step.reject(new DomainError('REGISTRY.VERSION_NOT_READY', `'${this.key}' was unloaded before this step ran`));
    if (this.sent.length > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    const child = this.child;
    this.child = undefined;
    if (child) {
      const exited = exitOf(child);
      child.kill('SIGKILL');
      await exited;
    }
    for (const query of this.cacheQueries.values()) query.reject(new Error(`'${this.key}' was unloaded`));
    this.cacheQueries.clear();
  }

  status(): GenerationInstanceStatus {
    let cachedTokens = 0;
    for (const positions of this.held.values()) cachedTokens += positions;
    return {
      key: this.key,
      sequences: this.held.size,
      cachedTokens,
      cacheBytes: cachedTokens * this.info.kvCacheBytesPerToken,
      forwards: this.forwards,
      queuedSteps: this.queue.length,
      stepRunning: this.sent.length > 0,
      lostInstances: this.lostInstances,
      restartedInstances: this.restartedInstances,
      pid: this.child?.pid,
    };
  }

  private send(message: ToGenerationWorker): void {
    this.child!.send(message);
  }

  /** Sends the next steps while fewer than STEPS_IN_FLIGHT are sent; steps that cannot run are refused here, in their turn. */
  private dispatch(): void {
    while (this.sent.length < STEPS_IN_FLIGHT && this.child?.connected && this.queue.length > 0) {
      const step = this.queue.shift()!;
      try {
        const lost = step.inputs.find((input) => this.lost.has(input.sequenceId));
        if (lost) {
          throw new DomainError('INFERENCE.RUNTIME_ERROR', `sequence '${lost.sequenceId}' of '${this.key}' lost its KV cache when the instance process ended; release it and start it again`);
        }
        checkStepInputs(step.inputs, this.info, (id) => this.held.get(id) ?? 0);
      } catch (error) {
        step.reject(error as Error);
        continue;
      }
      if (step.inputs.length === 0) {
        step.resolve({ outputs: [], computeMicros: 0 });
        continue;
      }
      // Counted when sent, so that the next step, sent before this one answers, is bounded with them.
      this.countPositions(step.inputs, +1);
      const id = ++this.stepId;
      this.sent.push({ ...step, id });
      this.send(stepMessage(id, step.inputs));
    }
  }

  /** Adds (or, for a failed step, takes back) each input's positions to its sequence's count; a released sequence stays released. */
  private countPositions(inputs: readonly SequenceStepInput[], sign: 1 | -1): void {
    for (const { sequenceId, tokens } of inputs) {
      const positions = this.held.get(sequenceId);
      if (positions !== undefined) this.held.set(sequenceId, positions + sign * tokens.length);
      else if (sign > 0) this.held.set(sequenceId, tokens.length);
    }
  }

  private received(message: FromGenerationWorker): void {
    if (message.type === 'cache-use') {
      const { id, sequences, tokens, bytes } = message;
      this.cacheQueries.get(id)?.resolve({ sequences, tokens, bytes });
      this.cacheQueries.delete(id);
      return;
    }
    if (message.type !== 'stepped' && message.type !== 'step-failed') return;
    if (message.id !== this.sent[0]?.id) return;
    const step = this.sent.shift()!;
    if (message.type === 'stepped') {
      this.forwards += message.forwards;
      step.resolve({ outputs: stepOutputsOf(step.inputs, message.tokens), computeMicros: message.computeMicros });
    } else {
      this.countPositions(step.inputs, -1);
      step.reject(new DomainError('INFERENCE.RUNTIME_ERROR', `model '${this.key}' failed to run a step: ${message.message}`));
    }
    this.stepEnded();
  }

  private stepEnded(): void {
    if (this.sent.length === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    if (!this.unloading) this.dispatch();
  }

  /** The instance process died: every cache it held is gone. A new process takes over for what comes next. */
  private ended(why: string): void {
    this.child = undefined;
    if (this.unloading) {
      for (const step of this.sent.splice(0)) step.reject(new DomainError('REGISTRY.VERSION_NOT_READY', `'${this.key}' was unloaded while this step ran`));
      this.stepEnded();
      return;
    }
    this.lostInstances++;
    this.logger.warn(`${this.key}: the instance process ${why}; the KV caches of ${this.held.size} sequence(s) are lost`);
    const error = () => new DomainError('INFERENCE.RUNTIME_ERROR', `the instance process of '${this.key}' ${why} during this step: the KV caches it held are lost`);
    for (const step of this.sent.splice(0)) step.reject(error());
    for (const id of this.held.keys()) this.lost.add(id);
    this.held.clear();
    for (const query of this.cacheQueries.values()) query.reject(error());
    this.cacheQueries.clear();
    this.stepEnded();
    void this.replace();
  }

  private async replace(): Promise<void> {
    const child = startGenerationWorker(this.settings, this.stderrLine);
    const exited = exitOf(child);
    try {
      await firstAnswer(child);
    } catch (error) {
      child.kill('SIGKILL');
      this.logger.error(`${this.key}: the instance process could not be started again: ${(error as Error).message}`);
      this.failure = `'${this.key}' has no instance process: it ended and a new one failed to load (${(error as Error).message})`;
      for (const step of this.queue.splice(0)) step.reject(new DomainError('INFERENCE.RUNTIME_ERROR', this.failure));
      return;
    }
    if (this.unloading) {
      child.kill('SIGKILL');
      await exited;
      return;
    }
    this.restartedInstances++;
    this.attach(child);
  }
}

/**
 * The onnxruntime-node adapter of the GenerationEngine port. Each loaded generative version runs
 * in one instance process (a generation worker), which holds the session and the KV cache of every
 * sequence; the server keeps only each sequence's position count, to bound its steps. One process
 * per version, not several: each step is one batched forward over every active sequence, which is
 * what makes continuous batching pay, and a sequence's cache never moves between processes.
 */
@Injectable()
export class OnnxGenerationEngine extends GenerationEngine implements OnApplicationShutdown {
  private readonly logger = new Logger(OnnxGenerationEngine.name);
  /** onnxruntime's own lines, from the instance processes' stderr. */
  private readonly runtimeLogger = new Logger('onnxruntime');
  private readonly logSeverityLevel: 0 | 1 | 2 | 3 | 4;
  private readonly instances = new Map<string, GenerationInstance>();
  private readonly loading = new Set<string>();
  private readonly cpus = cpuQuota();

  constructor(@Optional() @Inject(AppConfig) config?: AppConfig) {
    super();
    this.logSeverityLevel = runtimeSeverityFor(config?.LOG_LEVEL ?? 'info');
  }

  async load(runtimeKey: RuntimeKey, versionDir: string, options: RuntimeOptions): Promise<GenerativeModelInfo> {
    const key = runtimeKey.toString();
    if (this.instances.has(key) || this.loading.has(key)) throw new Error(`'${key}' is already loaded`);
    if (options.instanceCount !== 1) {
      throw new Error(`a generative model runs in one instance (its KV caches live there; each step batches every sequence), not ${options.instanceCount}`);
    }
    this.loading.add(key);
    try {
      return await this.start(key, versionDir, options);
    } finally {
      this.loading.delete(key);
    }
  }

  private async start(key: string, versionDir: string, options: RuntimeOptions): Promise<GenerativeModelInfo> {
    const facts = await readGenerativeModelFacts(versionDir);
    const settings: SessionSettings = {
      modelPath: join(versionDir, GENERATIVE_MODEL_FILE),
      executionProviders: options.executionProviders,
      intraOpThreads: options.intraOpThreads ?? defaultIntraOpThreads(this.cpus, 1),
      interOpThreads: options.interOpThreads ?? 1,
      allowSpinning: options.allowSpinning,
      logSeverityLevel: this.logSeverityLevel,
    };
    const stderrLine = runtimeLogSink(this.runtimeLogger, { model: key });
    const child = startGenerationWorker(settings, stderrLine);
    let info: GenerativeModelInfo;
    try {
      const loaded = await firstAnswer(child);
      const layout = decoderLayout(loaded.signature);
      if (layout.vocabSize !== undefined && facts.vocabSize !== undefined && layout.vocabSize !== facts.vocabSize) {
        throw new Error(`the model's logits have ${layout.vocabSize} entries but config.json says vocab_size ${facts.vocabSize}`);
      }
      const vocabSize = layout.vocabSize ?? facts.vocabSize;
      if (vocabSize === undefined) throw new Error(`the model's logits have no fixed vocabulary size and config.json names none (vocab_size)`);
      info = {
        vocabSize,
        maxPositions: facts.maxPositions,
        eosTokenIds: facts.eosTokenIds,
        kvCacheBytesPerToken: kvCacheBytesPerToken(layout),
        executionProvider: loaded.executionProvider,
      };
      const provider = loaded.fallback ? `${loaded.executionProvider} (${loaded.fallback})` : loaded.executionProvider;
      this.logger.log(
        `${key}: generative model in one instance process on ${provider}, ${layout.layers} layers x ${layout.kvHeads} KV heads x ${layout.headDim}, ` +
          `${info.kvCacheBytesPerToken} bytes of KV cache per token, context ${info.maxPositions}`,
      );
    } catch (error) {
      const exited = exitOf(child);
      child.kill('SIGKILL');
      await exited;
      throw error;
    }
    const instance = new GenerationInstance(key, info, settings, this.logger, stderrLine);
    instance.attach(child);
    this.instances.set(key, instance);
    return info;
  }

  step(key: RuntimeKey, inputs: readonly SequenceStepInput[]): Promise<GenerationStep> {
    const instance = this.instances.get(key.toString());
    if (!instance || instance.unloading) return Promise.reject(new DomainError('REGISTRY.VERSION_NOT_READY', `'${key}' is not loaded`));
    if (instance.failure) return Promise.reject(new DomainError('INFERENCE.RUNTIME_ERROR', instance.failure));
    return instance.enqueue(inputs);
  }

  release(key: RuntimeKey, sequenceIds: readonly string[]): void {
    this.instances.get(key.toString())?.release(sequenceIds);
  }

  unload(key: RuntimeKey): Promise<void> {
    return this.unloadInstance(key.toString());
  }

  private async unloadInstance(key: string): Promise<void> {
    const instance = this.instances.get(key);
    if (!instance) return;
    this.instances.delete(key);
    await instance.unload();
  }

  /**
   * What the instance process of `key` holds, counted there (after every step and release sent
   * before): the truth the server's own counts in {@link status} follow.
   */
  cacheUse(key: RuntimeKey): Promise<CacheUse> {
    const instance = this.instances.get(key.toString());
    if (!instance) return Promise.reject(new DomainError('REGISTRY.VERSION_NOT_READY', `'${key}' is not loaded`));
    return instance.cacheUse();
  }

  status(): GenerationInstanceStatus[] {
    return [...this.instances.values()].map((instance) => instance.status());
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([...this.instances.keys()].map((key) => this.unloadInstance(key)));
  }
}
