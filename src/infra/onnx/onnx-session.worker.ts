/**
 * Entry of a session worker: a child process of the server hosting one InferenceSession (one model
 * instance). `session.run()` in onnxruntime-node blocks the thread it runs on for the whole
 * computation, and nothing can interrupt it there; in a process of its own, a run that does not
 * end is stopped by ending the process (SessionWorkerPool says why this is the only way).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { Datatype, TensorData } from '../../domain/shared/datatype.js';
import type { ModelSignature, Tensor, TensorSpec } from '../../domain/inference/tensor.js';
import { datatypeOfOrtType, ortTypeOf } from './onnx-tensor-types.js';
import { isProviderInstalled } from './execution-providers.js';
import type { WorkerFault } from './fault-injection.js';
import type { FromWorker, SessionSettings, ToWorker } from './worker-protocol.js';
import { outputBytes } from '../../domain/inference/response-limit.js';
import { keepFloat16AsUint16 } from './float16-compat.js';
import type { WarmupSample } from '../../domain/inference/inference-engine.port.js';
import { warmupTensor } from './warmup-tensors.js';
import { RUNTIME_SEVERITY_NAMES } from './onnxruntime-log.js';

keepFloat16AsUint16();

function send(message: FromWorker): void {
  process.send!(message);
}

async function createSession(settings: SessionSettings): Promise<{ session: ort.InferenceSession; provider: string; fallback?: string }> {
  const requested = settings.executionProviders;
  const missing = requested.filter((p) => !isProviderInstalled(p));
  const usable = requested.filter((p) => isProviderInstalled(p));
  const providers = usable.length > 0 ? usable : ['cpu'];
  const options = (executionProviders: string[]): ort.InferenceSession.SessionOptions => ({
    executionProviders,
    // What onnxruntime writes to stderr (the server reads it into its log): as much as LOG_LEVEL shows.
    logSeverityLevel: settings.logSeverityLevel,
    intraOpNumThreads: settings.intraOpThreads,
    interOpNumThreads: settings.interOpThreads,
    // No CPU memory arena: an arena keeps the peak of every run (a 1 GiB answer: 1 GiB held until
    // unload), and onnxruntime-node ignores the run option that would shrink it
    // (memory.enable_memory_arena_shrinkage). The cost, measured on the bench: see the README.
    enableCpuMemArena: false,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: {
      session: {
        intra_op: { allow_spinning: settings.allowSpinning ? '1' : '0' },
        inter_op: { allow_spinning: settings.allowSpinning ? '1' : '0' },
      },
    },
  });
  const notInstalled = missing.length > 0 ? `${missing.join(', ')} not installed in this onnxruntime build` : undefined;
  try {
    const session = await ort.InferenceSession.create(settings.modelPath, options(providers));
    return { session, provider: providers[0], fallback: notInstalled };
  } catch (error) {
    if (providers.length === 1 && providers[0] === 'cpu') throw error;
    const session = await ort.InferenceSession.create(settings.modelPath, options(['cpu']));
    const reason = `${providers.filter((p) => p !== 'cpu').join(', ')} failed: ${(error as Error).message}`;
    return { session, provider: 'cpu', fallback: notInstalled ? `${notInstalled}; ${reason}` : reason };
  }
}

function describe(metadata: readonly ort.InferenceSession.ValueMetadata[], kind: string): TensorSpec[] {
  return metadata.map((value) => {
    if (!value.isTensor) throw new Error(`${kind} '${value.name}' is not a tensor, which is not served`);
    const datatype = datatypeOfOrtType(value.type);
    if (!datatype) throw new Error(`${kind} '${value.name}' has element type ${value.type}, which is not served`);
    // Symbolic dimensions (strings) and unknown ones are variable: -1 on the wire.
    const shape = value.shape.map((dim) => (typeof dim === 'number' && dim >= 0 ? dim : -1));
    return { name: value.name, datatype, shape };
  });
}

function toOrtTensor(tensor: Tensor): ort.Tensor {
  return new ort.Tensor(ortTypeOf(tensor.datatype) as ort.Tensor.Type, tensor.data as ort.Tensor.DataType, [...tensor.shape]);
}

function fromOrtTensor(name: string, value: ort.Tensor): Tensor {
  return { name, datatype: datatypeOfOrtType(value.type) as Datatype, shape: [...value.dims], data: value.data as TensorData };
}

/** How often a worker checks that the server still runs: the longest an orphaned run computes on. */
const PARENT_CHECK_INTERVAL_MS = 500;

/**
 * Ends this process when the server's process is gone, however it ended (kill -9 included): the
 * IPC channel's 'disconnect' cannot be heard while a run blocks the main thread, so a thread of
 * its own watches the parent process id, which changes when the parent dies (the orphan is
 * adopted). It kills rather than exits: an exit would wait for the run to end.
 */
function dieWithParent(): void {
  process.on('disconnect', () => process.exit(0));
  const watch = `const { workerData: parent } = require('node:worker_threads');
    setInterval(() => { if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL'); }, ${PARENT_CHECK_INTERVAL_MS});`;
  new Worker(watch, { eval: true, workerData: process.ppid }).unref();
}

async function main(settings: SessionSettings): Promise<void> {
  dieWithParent();
  // The environment's own logger (lines not tied to a session), read once, when the first session is made.
  ort.env.logLevel = RUNTIME_SEVERITY_NAMES[settings.logSeverityLevel];
  let loaded: Awaited<ReturnType<typeof createSession>>;
  let signature: ModelSignature;
  try {
    loaded = await createSession(settings);
    signature = { inputs: describe(loaded.session.inputMetadata, 'input'), outputs: describe(loaded.session.outputMetadata, 'output') };
  } catch (error) {
    send({ type: 'load-failed', message: (error as Error).message });
    return;
  }
  const { session } = loaded;
  send({ type: 'loaded', signature, executionProvider: loaded.provider, fallback: loaded.fallback });

  process.on('message', async (message: ToWorker) => {
    if (message.type === 'warmup') {
      try {
        await warmUp(session, message.samples);
        send({ type: 'warmed', id: message.id });
      } catch (error) {
        send({ type: 'warmup-failed', id: message.id, message: (error as Error).message });
      }
      return;
    }
    if (message.type !== 'run') return;
    try {
      // An injected delay is part of the run, as a slow model's would be.
      const started = performance.now();
      if (message.fault) await actOn(message.fault);
      const feeds = Object.fromEntries(message.inputs.map((input) => [input.name, toOrtTensor(input)]));
      const results = await session.run(feeds, [...message.outputNames]);
      const computeMicros = Math.round((performance.now() - started) * 1000);
      const tooLargeBytes = outputsPastLimit(message.outputNames.map((name) => results[name]), message.maxOutputBytes);
      if (tooLargeBytes !== undefined) {
        send({ type: 'run-failed', id: message.id, message: `the outputs hold ${tooLargeBytes} bytes, more than the run's limit of ${message.maxOutputBytes}`, tooLargeBytes });
        setImmediate(collectGarbage); // once this frame, which holds the outputs, is gone
        return;
      }
      const outputs = message.outputNames.map((name) => fromOrtTensor(name, results[name]));
      const startedAtMs = performance.timeOrigin + started;
      send({ type: 'result', id: message.id, outputs, computeMicros, startedAtMs, traceparent: message.traceparent });
    } catch (error) {
      send({ type: 'run-failed', id: message.id, message: (error as Error).message });
    }
  });
}

/** Runs each sample `runs` times, every output computed; the values are built here, once per sample. */
async function warmUp(session: ort.InferenceSession, samples: readonly WarmupSample[]): Promise<void> {
  for (const sample of samples) {
    const label = sample.name ? `warm-up sample '${sample.name}'` : 'a warm-up sample';
    try {
      const inputs = await Promise.all(sample.inputs.map((input) => warmupTensor(input)));
      const feeds = Object.fromEntries(inputs.map((input) => [input.name, toOrtTensor(input)]));
      for (let run = 0; run < sample.runs; run++) await session.run(feeds);
    } catch (error) {
      throw new Error(`${label} failed: ${(error as Error).message}`);
    }
  }
}

/** The bytes the outputs hold when they exceed `maxBytes` (none shipped back then), else undefined. */
function outputsPastLimit(outputs: readonly ort.Tensor[], maxBytes: number | undefined): number | undefined {
  if (maxBytes === undefined) return undefined;
  const bytes = outputBytes(outputs.map((output) => ({ data: output.data as TensorData })));
  return bytes > maxBytes ? bytes : undefined;
}

/**
 * Collects this thread's heap now. The runtime copies a run's outputs into the worker's heap; when
 * they are refused as too large, that copy (up to gigabytes) is garbage that V8 would keep until
 * its heap next fills, which the small runs after it may never do. `gc` is exposed to a new context
 * only, through the flag (the process is started without --expose-gc).
 */
function collectGarbage(): void {
  gcFunction ??= (() => {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  })();
  gcFunction();
}
let gcFunction: (() => void) | undefined;

/** An injected fault: the wait happens on this thread (it holds the instance like a slow model would). */
async function actOn(fault: WorkerFault): Promise<void> {
  if (fault.delayMs) await sleep(fault.delayMs);
  // A real death of the worker, as a native crash or an out-of-memory abort would end it.
  if (fault.crash) process.exit(70);
  if (fault.fail) throw new Error('injected fault: this run fails (FAULT_INJECTION)');
}

process.once('message', (message: ToWorker) => {
  if (message.type === 'load') void main(message.settings);
});
