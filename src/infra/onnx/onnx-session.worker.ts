/**
 * Entry of a session worker: a child process of the server hosting one InferenceSession (one model
 * instance). `session.run()` in onnxruntime-node blocks the thread it runs on for the whole
 * computation, and nothing can interrupt it there; in a process of its own, a run that does not
 * end is stopped by ending the process (SessionWorkerPool says why this is the only way).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type * as ort from 'onnxruntime-node';
import type { TensorData } from '../../domain/shared/datatype.js';
import type { ModelSignature } from '../../domain/inference/tensor.js';
import { createSession, describe, dieWithParent, fromOrtTensor, toOrtTensor } from './session-runtime.js';
import type { WorkerFault } from './fault-injection.js';
import type { FromWorker, SessionSettings, ToWorker } from './worker-protocol.js';
import { outputBytes } from '../../domain/inference/response-limit.js';
import { batchRows, mergeInputs, splitOutputs } from '../../domain/inference/batch.js';
import { keepFloat16AsUint16 } from './float16-compat.js';
import type { WarmupSample } from '../../domain/inference/inference-engine.port.js';
import { warmupTensor } from './warmup-tensors.js';

keepFloat16AsUint16();

function send(message: FromWorker): void {
  process.send!(message);
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
      // The scheduler's batch gathered here, where the model runs (Triton's instance takes the requests).
      const gathering = performance.now();
      const feeds = Object.fromEntries(mergeInputs(message.members).map((input) => [input.name, toOrtTensor(input)]));
      // An injected delay is part of the run, as a slow model's would be.
      const started = performance.now();
      if (message.fault) await actOn(message.fault);
      const results = await session.run(feeds, [...message.outputNames]);
      const computed = performance.now();
      const computeMicros = Math.round((computed - started) * 1000);
      const tooLargeBytes = outputsPastLimit(message.outputNames.map((name) => results[name]), message.maxOutputBytes);
      if (tooLargeBytes !== undefined) {
        send({ type: 'run-failed', id: message.id, message: `the outputs hold ${tooLargeBytes} bytes, more than the run's limit of ${message.maxOutputBytes}`, tooLargeBytes });
        setImmediate(collectGarbage); // once this frame, which holds the outputs, is gone
        return;
      }
      const outputs = splitOutputs(
        message.outputNames.map((name) => fromOrtTensor(name, results[name])),
        message.members.map((inputs) => batchRows(inputs)),
      );
      const inputMicros = Math.round((started - gathering) * 1000);
      const outputMicros = Math.round((performance.now() - computed) * 1000);
      const startedAtMs = performance.timeOrigin + started;
      send({ type: 'result', id: message.id, outputs, computeMicros, inputMicros, outputMicros, startedAtMs, traceparent: message.traceparent });
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
