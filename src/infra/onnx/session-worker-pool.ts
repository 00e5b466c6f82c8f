import { fork, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { BatchMembers, EngineRun, LoadedModel, WarmupSample } from '../../domain/inference/inference-engine.port.js';
import type { WorkerFault } from './fault-injection.js';
import type { FromWorker, SessionSettings, ToWorker } from './worker-protocol.js';

const WORKER_PATH = fileURLToPath(new URL('./onnx-session.worker.js', import.meta.url));

/** Where the lines a worker writes to its stderr go (as written: colour codes and all). */
export type StderrLineSink = (line: string) => void;

/** A run as the worker reports it: the engine's answer, and when and under which trace it computed. */
export interface WorkerRun extends EngineRun {
  readonly startedAtMs: number;
  readonly traceparent?: string;
}

interface Task {
  readonly members: BatchMembers;
  readonly outputNames: readonly string[];
  readonly traceparent?: string;
  readonly fault?: WorkerFault;
  readonly maxOutputBytes?: number;
  readonly resolve: (run: WorkerRun) => void;
  readonly reject: (error: Error) => void;
  /** Fires when the call's time limit passes (absent: no limit). */
  limitTimer?: ReturnType<typeof setTimeout>;
}

/**
 * Calls handed to one worker at a time. A second one waits in the worker's own message queue, so
 * the worker starts it the moment the first ends instead of idling for a round trip to the server
 * (measured with worker threads: +45% requests/s on the demo classifier with one instance, before
 * batching). The server's scheduler hands each instance one batch at a time
 * (InferenceEngine.concurrency), so that waiting requests stay where priorities and timeouts
 * apply; this serves direct callers.
 */
const CALLS_PER_WORKER = 2;

/** A call refused or dropped because the pool is being released: the model version is no longer ready. */
export class PoolReleasedError extends Error {
  override readonly name = 'PoolReleasedError';
}

/** A run whose outputs held more than its maxOutputBytes: they were dropped in the worker. */
export class OutputsTooLargeError extends Error {
  override readonly name = 'OutputsTooLargeError';

  constructor(readonly bytes: number, readonly maxBytes: number) {
    super(`the outputs hold ${bytes} bytes, more than ${maxBytes}`);
  }
}

/** A call that did not end within its time limit: the worker running it was killed (and is being replaced). */
export class RunTimeLimitError extends Error {
  override readonly name = 'RunTimeLimitError';
}

/**
 * Every session worker process of this server, ended with it: a worker outliving the server would
 * compute on for nobody. Killing is synchronous (a signal), so it works in the 'exit' event, which
 * `process.exit` emits whatever the shutdown was waiting for. (A worker also ends itself when it
 * finds its parent gone, for a server killed with SIGKILL; see the worker.)
 */
const liveWorkers = new Set<ChildProcess>();
let killedAtExit = false;
function track(child: ChildProcess): void {
  if (!killedAtExit) {
    killedAtExit = true;
    process.once('exit', () => {
      for (const worker of liveWorkers) worker.kill('SIGKILL');
    });
  }
  liveWorkers.add(child);
  child.once('exit', () => liveWorkers.delete(child));
}

/** One worker process holding one session of a model version. */
class SessionWorker {
  readonly running = new Map<number, Task>();
  /** Lost or being stopped: takes no more calls. */
  dead = false;
  readonly exited: Promise<void>;
  private idleWaiters: (() => void)[] = [];

  constructor(readonly child: ChildProcess) {
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
  }

  /** Resolves once no call runs on this worker (at once when none does). */
  idle(): Promise<void> {
    if (this.running.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  finish(id: number): Task | undefined {
    const task = this.running.get(id);
    if (!task) return undefined;
    this.running.delete(id);
    clearTimeout(task.limitTimer);
    if (this.running.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    return task;
  }

  /** Kills the process (SIGKILL: nothing it runs can delay it) and resolves when it has exited. */
  kill(): Promise<void> {
    this.dead = true;
    this.child.kill('SIGKILL');
    return this.exited;
  }
}

export interface LoadedPool extends LoadedModel {
  readonly pool: SessionWorkerPool;
  /** Why a requested execution provider was not used, when one was not. */
  readonly fallback?: string;
}

/**
 * The `instanceCount` workers that serve one model version, each a child process with its own
 * session; a call runs on a free worker or waits its turn in FIFO order. A small purpose-built pool
 * rather than a general one (piscina): every worker must load its session and report the model's
 * signature before it takes work, and the caller needs to know which instances are busy.
 *
 * Why processes and not worker threads: a run that does not end (a Loop whose trip count is an
 * input, a generative model's max_length) must be stoppable, and only a process can be stopped in
 * the middle of a native run. onnxruntime's RunOptions.terminate flag is read when a run starts
 * (onnxruntime-node builds the native RunOptions inside the synchronous `run` call), so nothing
 * can set it on a run under way; `Worker.terminate()` only interrupts JavaScript and waits for the
 * native call to return, which a runaway run never does (measured: still pending after 3 s of a
 * 10^12-turn Loop), and `process.exit` then waits for that thread too, so the server could not
 * even exit. SIGKILL ends a worker process at once, whatever it runs.
 *
 * The price, measured here (Node 24, a busy 2-core machine, echo of one FP32 tensor there and
 * back, median of 5 rounds): 16 B to 4 KB, 18-27 us a round trip against 13-19 us for a worker
 * thread, and the same main-thread CPU; 64 KB, 140 us against 24 us; 588 KB (one 224x224x3 image),
 * 1.4 ms against 0.14 ms, of which 0.7 ms on the main thread; 4 MB, 9.6 ms against 0.6 ms. Tensors
 * are copied over the IPC pipe, where a thread took them without a copy (transferred buffers). A
 * framed binary protocol of our own over a pipe measured 15-25% faster on large tensors than
 * Node's IPC channel with V8 serialization, and no faster on small ones: not worth its code.
 */
export class SessionWorkerPool {
  private readonly waiting: Task[] = [];
  private nextId = 1;
  private releasing = false;
  /** Replacements of dead workers being started now (killed if the pool is released meanwhile). */
  private readonly starting = new Set<ChildProcess>();
  /** The warm-up samples every worker runs before it serves, a replacement too, and their time limit. */
  private warmup: { readonly samples: readonly WarmupSample[]; readonly timeLimitMs?: number } = { samples: [] };

  private constructor(
    private readonly workers: SessionWorker[],
    readonly executionProvider: string,
    private readonly settings: SessionSettings,
    private readonly stderrLine: StderrLineSink,
  ) {
    for (const worker of workers) this.watch(worker);
  }

  /**
   * Starts `instanceCount` workers, each loading a session. Every line a worker (onnxruntime in it)
   * writes to its stderr goes to `stderrLine`, the replacements' too.
   */
  static async start(settings: SessionSettings, instanceCount: number, stderrLine: StderrLineSink): Promise<LoadedPool> {
    const children = Array.from({ length: instanceCount }, () => startWorker(settings, stderrLine));
    const answers = await Promise.allSettled(children.map((child) => firstAnswer(child)));
    const failure = answers.find((a) => a.status === 'rejected');
    if (failure) {
      await Promise.all(children.map((child) => new SessionWorker(child).kill()));
      throw (failure as PromiseRejectedResult).reason as Error;
    }
    const loaded = (answers[0] as PromiseFulfilledResult<Extract<FromWorker, { type: 'loaded' }>>).value;
    const pool = new SessionWorkerPool(children.map((child) => new SessionWorker(child)), loaded.executionProvider, settings, stderrLine);
    return { pool, signature: loaded.signature, executionProvider: loaded.executionProvider, fallback: loaded.fallback };
  }

  /** Workers that died while the pool was serving (crashed, exited, or killed for a run past its limit), since it started. */
  lostWorkers = 0;
  /** Dead workers replaced by a new one with its own session, since the pool started. */
  restartedWorkers = 0;

  get instances(): number {
    return this.workers.filter((w) => !w.dead).length;
  }
  get busy(): number {
    return this.workers.filter((w) => w.running.size > 0).length;
  }
  /** Calls not started yet: waiting in the pool, or handed to a worker behind the call it runs. */
  get queued(): number {
    return this.waiting.length + this.workers.reduce((sum, w) => sum + Math.max(0, w.running.size - 1), 0);
  }
  /** Process ids of the live workers (tests look at them: a killed run's process must be gone). */
  get pids(): number[] {
    return this.workers.filter((w) => !w.dead).map((w) => w.child.pid!);
  }

  /**
   * Runs a batch on a free worker, which gathers the members' inputs and splits the outputs back
   * (InferenceEngine.run). `timeLimitMs` counts from now: past it the call fails with a
   * RunTimeLimitError, and if it is running by then, its worker is killed and replaced.
   */
  run(members: BatchMembers, outputNames: readonly string[], traceparent?: string, fault?: WorkerFault, timeLimitMs?: number, maxOutputBytes?: number): Promise<WorkerRun> {
    return new Promise((resolve, reject) => {
      if (this.releasing) {
        reject(new PoolReleasedError('the model version was unloaded'));
        return;
      }
      if (this.instances === 0 && this.starting.size === 0) {
        reject(new Error('the model instance is not running'));
        return;
      }
      const task: Task = { members, outputNames, traceparent, fault, maxOutputBytes, resolve, reject };
      if (timeLimitMs !== undefined) task.limitTimer = setTimeout(() => this.timeLimitPassed(task, timeLimitMs), timeLimitMs);
      this.waiting.push(task);
      this.dispatch();
    });
  }

  /**
   * Lets running calls finish, fails the waiting ones, then ends the workers. Bounded by the
   * running calls' time limits: a call without one is waited for as long as it runs.
   */
  async release(): Promise<void> {
    this.releasing = true;
    const unloaded = () => new PoolReleasedError('the model version was unloaded');
    for (const task of this.waiting.splice(0)) {
      clearTimeout(task.limitTimer);
      task.reject(unloaded());
    }
    // A worker runs its calls in order: the first is running, those behind it have not started.
    // They fail now; the worker is killed once its running call has ended, before it gets far in them.
    for (const worker of this.workers) {
      for (const id of [...worker.running.keys()].slice(1)) worker.finish(id)!.reject(unloaded());
    }
    for (const child of this.starting) child.kill('SIGKILL');
    // A session needs no goodbye: the process's end frees all it held.
    await Promise.all(this.workers.map(async (worker) => {
      await worker.idle();
      await worker.kill();
    }));
  }

  /**
   * Runs the warm-up samples on every worker (in parallel, each its own session) and keeps them
   * for the workers that replace lost ones. Rejects with the first failure; a worker still warming
   * up after `timeLimitMs` is killed, and that is a failure too.
   */
  async warmUp(samples: readonly WarmupSample[], timeLimitMs?: number): Promise<void> {
    this.warmup = { samples, timeLimitMs };
    if (samples.length === 0) return;
    await Promise.all(this.workers.filter((w) => !w.dead).map((worker) => warmUpChild(worker.child, this.warmup)));
  }

  private timeLimitPassed(task: Task, timeLimitMs: number): void {
    const error = new RunTimeLimitError(`the run did not end within its time limit of ${timeLimitMs} ms`);
    const waitingAt = this.waiting.indexOf(task);
    if (waitingAt >= 0) {
      this.waiting.splice(waitingAt, 1);
      task.reject(error);
      return;
    }
    const worker = this.workers.find((w) => w.running.values().next().value === task);
    if (!worker) {
      // Handed to a worker behind the call it runs: not started, so it just leaves (if the worker
      // still gets to it, the answer finds no call and is dropped).
      for (const w of this.workers) {
        for (const [id, queued] of w.running) if (queued === task) w.finish(id);
      }
      task.reject(error);
      return;
    }
    this.lostWorkers++;
    const [, ...behind] = [...worker.running.keys()];
    worker.finish(worker.running.keys().next().value!);
    // Calls behind it had not started: they wait for another worker, in their order.
    this.waiting.unshift(...behind.map((id) => worker.finish(id)!));
    // The call fails once its computation has really stopped (the process is gone).
    void worker.kill().then(() => task.reject(new RunTimeLimitError(`${error.message}: its instance was stopped and is being replaced`)));
    if (!this.releasing) void this.replace(worker);
  }

  /**
   * Starts a worker with a session of its own in place of a dead one. Calls wait for it meanwhile
   * when no other worker is left (bounded by their deadlines in the scheduler); if it cannot load,
   * the pool serves on with fewer instances, or fails what waits when none is left.
   */
  private async replace(dead: SessionWorker): Promise<void> {
    const child = startWorker(this.settings, this.stderrLine);
    this.starting.add(child);
    let replacement: SessionWorker | undefined;
    try {
      await firstAnswer(child);
      if (this.warmup.samples.length > 0) await warmUpChild(child, this.warmup);
      replacement = new SessionWorker(child);
    } catch {
      child.kill('SIGKILL');
      replacement = undefined;
    } finally {
      this.starting.delete(child);
    }
    if (replacement && this.releasing) {
      await replacement.kill();
      return;
    }
    if (replacement) {
      this.workers[this.workers.indexOf(dead)] = replacement;
      this.restartedWorkers++;
      this.watch(replacement);
      this.dispatch();
    } else if (this.instances === 0 && this.starting.size === 0) {
      for (const task of this.waiting.splice(0)) {
        clearTimeout(task.limitTimer);
        task.reject(new Error('no worker is left to run this model: its replacement failed to load'));
      }
    }
  }

  private dispatch(): void {
    while (this.waiting.length > 0) {
      const worker = this.leastLoadedWorker();
      if (!worker) return;
      const task = this.waiting.shift()!;
      const id = this.nextId++;
      worker.running.set(id, task);
      const message: ToWorker = { type: 'run', id, members: task.members, outputNames: task.outputNames, traceparent: task.traceparent, fault: task.fault, maxOutputBytes: task.maxOutputBytes };
      worker.child.send(message);
    }
  }

  private leastLoadedWorker(): SessionWorker | undefined {
    let best: SessionWorker | undefined;
    for (const worker of this.workers) {
      if (worker.dead || worker.running.size >= CALLS_PER_WORKER) continue;
      if (!best || worker.running.size < best.running.size) best = worker;
    }
    return best;
  }

  private watch(worker: SessionWorker): void {
    worker.child.on('message', (message: FromWorker) => {
      if (message.type !== 'result' && message.type !== 'run-failed') return;
      const task = worker.finish(message.id);
      if (!task) return;
      if (message.type === 'result') {
        const { outputs, computeMicros, inputMicros, outputMicros, startedAtMs, traceparent } = message;
        task.resolve({ outputs, computeMicros, inputMicros, outputMicros, startedAtMs, traceparent });
      }
      else if (message.tooLargeBytes !== undefined) task.reject(new OutputsTooLargeError(message.tooLargeBytes, task.maxOutputBytes!));
      else task.reject(new Error(message.message));
      this.dispatch();
    });
    const lost = (why: string) => {
      if (worker.dead) return;
      worker.dead = true;
      if (this.releasing) return;
      this.lostWorkers++;
      // Its calls fail now, with what happened (never a wait until their deadline); the others go on.
      for (const id of [...worker.running.keys()]) worker.finish(id)!.reject(new Error(`the worker running this model ${why}`));
      void this.replace(worker);
    };
    worker.child.on('error', (error) => {
      worker.child.kill('SIGKILL');
      lost(`failed: ${error.message}`);
    });
    worker.child.on('exit', (code, signal) => lost(code !== null ? `exited with code ${code}` : `was ended by ${signal}`));
  }
}

/**
 * A worker process, told which session to create: by default a session worker; `entry` names
 * another worker script that takes the same 'load' message and answers it the same way (the
 * generation worker). Its own Node.js flags are none of the server's (a test runner's or an
 * inspector's would misbehave there). Its stderr, where onnxruntime writes its log, is read line by
 * line into `stderrLine` (the server's logger), never straight onto the server's: an unstructured,
 * coloured line would break a JSON log. It is killed when the server exits.
 */
export function startWorker(settings: SessionSettings, stderrLine: StderrLineSink, entry = WORKER_PATH, nodeFlags: readonly string[] = []): ChildProcess {
  const child = fork(entry, [], { serialization: 'advanced', execArgv: [...nodeFlags], stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
  createInterface({ input: child.stderr!, crlfDelay: Infinity }).on('line', (line) => {
    if (line.trim() !== '') stderrLine(line);
  });
  // A failed send or spawn is seen by whoever watches the worker (firstAnswer, the pool); an
  // 'error' event without any listener would end the server.
  child.on('error', () => undefined);
  track(child);
  child.send({ type: 'load', settings } satisfies ToWorker);
  return child;
}

/** The worker's answer to its 'load' message: rejects with why it could not load (or why it ended). */
export function firstAnswer(child: ChildProcess): Promise<Extract<FromWorker, { type: 'loaded' }>> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null, signal: string | null) =>
      reject(new Error(`the session worker ${code !== null ? `exited with code ${code}` : `was ended by ${signal}`} while loading`));
    child.once('error', reject);
    child.once('exit', onExit);
    child.once('message', (message: FromWorker) => {
      child.off('error', reject);
      child.off('exit', onExit);
      if (message.type === 'loaded') resolve(message);
      else if (message.type === 'load-failed') reject(new Error(message.message));
      else reject(new Error(`unexpected message '${message.type}' from a loading session worker`));
    });
  });
}

let nextWarmupId = 1;

/**
 * Has a worker run the warm-up samples; rejects with why it could not: a failed run, the worker's
 * death, or the time limit (the worker is then killed: a warm-up that never ends must not hang a
 * load, a reload or an upload).
 */
function warmUpChild(child: ChildProcess, { samples, timeLimitMs }: { readonly samples: readonly WarmupSample[]; readonly timeLimitMs?: number }): Promise<void> {
  const id = nextWarmupId++;
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(limit);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (message: FromWorker) => {
      if ((message.type !== 'warmed' && message.type !== 'warmup-failed') || message.id !== id) return;
      done();
      if (message.type === 'warmed') resolve();
      else reject(new Error(message.message));
    };
    const onExit = (code: number | null, signal: string | null) => {
      done();
      reject(new Error(`the session worker ${code !== null ? `exited with code ${code}` : `was ended by ${signal}`} while warming up`));
    };
    const limit =
      timeLimitMs === undefined
        ? undefined
        : setTimeout(() => {
            done();
            child.kill('SIGKILL');
            reject(new Error(`the warm-up did not end within MODEL_WARMUP_TIMEOUT_MS (${timeLimitMs} ms): its instance was stopped`));
          }, timeLimitMs);
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.send({ type: 'warmup', id, samples } satisfies ToWorker);
  });
}
