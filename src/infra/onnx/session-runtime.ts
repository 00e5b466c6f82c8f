/**
 * What every instance process (a child process hosting one InferenceSession) does alike, whatever
 * it serves: create the session with the configured providers and threads, describe its inputs and
 * outputs, convert tensors, and end with the server.
 */
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { Datatype, TensorData } from '../../domain/shared/datatype.js';
import type { Tensor, TensorSpec } from '../../domain/inference/tensor.js';
import { datatypeOfOrtType, ortTypeOf } from './onnx-tensor-types.js';
import { isProviderInstalled } from './execution-providers.js';
import type { SessionSettings } from './worker-protocol.js';

export async function createSession(settings: SessionSettings): Promise<{ session: ort.InferenceSession; provider: string; fallback?: string }> {
  const requested = settings.executionProviders;
  const missing = requested.filter((p) => !isProviderInstalled(p));
  const usable = requested.filter((p) => isProviderInstalled(p));
  const providers = usable.length > 0 ? usable : ['cpu'];
  const options = (executionProviders: string[]): ort.InferenceSession.SessionOptions => ({
    executionProviders,
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

export function describe(metadata: readonly ort.InferenceSession.ValueMetadata[], kind: string): TensorSpec[] {
  return metadata.map((value) => {
    if (!value.isTensor) throw new Error(`${kind} '${value.name}' is not a tensor, which is not served`);
    const datatype = datatypeOfOrtType(value.type);
    if (!datatype) throw new Error(`${kind} '${value.name}' has element type ${value.type}, which is not served`);
    // Symbolic dimensions (strings) and unknown ones are variable: -1 on the wire.
    const shape = value.shape.map((dim) => (typeof dim === 'number' && dim >= 0 ? dim : -1));
    return { name: value.name, datatype, shape };
  });
}

export function toOrtTensor(tensor: Tensor): ort.Tensor {
  return new ort.Tensor(ortTypeOf(tensor.datatype) as ort.Tensor.Type, tensor.data as ort.Tensor.DataType, [...tensor.shape]);
}

export function fromOrtTensor(name: string, value: ort.Tensor): Tensor {
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
export function dieWithParent(): void {
  process.on('disconnect', () => process.exit(0));
  const watch = `const { workerData: parent } = require('node:worker_threads');
    setInterval(() => { if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL'); }, ${PARENT_CHECK_INTERVAL_MS});`;
  new Worker(watch, { eval: true, workerData: process.ppid }).unref();
}

