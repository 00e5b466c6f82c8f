/**
 * Entry of a session worker: a child process of the server hosting one InferenceSession (one model
 * instance). `session.run()` in onnxruntime-node blocks the thread it runs on for the whole
 * computation, and nothing can interrupt it there; in a process of its own, a run that does not
 * end is stopped by ending the process (SessionWorkerPool says why this is the only way).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { Datatype, TensorData } from '../../domain/shared/datatype.js';
import type { ModelSignature, Tensor, TensorSpec } from '../../domain/inference/tensor.js';
import { datatypeOfOrtType, ortTypeOf } from './onnx-tensor-types.js';
import { isProviderInstalled } from './execution-providers.js';
import type { WorkerFault } from './fault-injection.js';
import type { FromWorker, SessionSettings, ToWorker } from './worker-protocol.js';

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
    intraOpNumThreads: settings.intraOpThreads,
    interOpNumThreads: settings.interOpThreads,
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
    if (message.type !== 'run') return;
    try {
      // An injected delay is part of the run, as a slow model's would be.
      const started = performance.now();
      if (message.fault) await actOn(message.fault);
      const feeds = Object.fromEntries(message.inputs.map((input) => [input.name, toOrtTensor(input)]));
      const results = await session.run(feeds, [...message.outputNames]);
      const computeMicros = Math.round((performance.now() - started) * 1000);
      const outputs = message.outputNames.map((name) => fromOrtTensor(name, results[name]));
      const startedAtMs = performance.timeOrigin + started;
      send({ type: 'result', id: message.id, outputs, computeMicros, startedAtMs, traceparent: message.traceparent });
    } catch (error) {
      send({ type: 'run-failed', id: message.id, message: (error as Error).message });
    }
  });
}

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
