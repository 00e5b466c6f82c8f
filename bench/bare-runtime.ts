/**
 * Baseline child process: onnxruntime-node InferenceSession.run of the classifier in a loop on one
 * thread, with the server's session options (sequential, no spinning) but one intra-op thread.
 * Prints one JSON line: { runs, durationSeconds, runsPerSecond, p50Ms, p99Ms, meanMs, ortVersion }.
 *
 * Argv: <model.onnx> <durationSeconds> <warmupSeconds> [batch=1]
 */
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { summarize } from './stats.js';

const [modelPath, durationArg, warmupArg, batchArg] = process.argv.slice(2);
const durationSeconds = Number(durationArg);
const warmupSeconds = Number(warmupArg ?? 1);
const batch = Number(batchArg ?? 1);
if (!modelPath || !(durationSeconds > 0) || !(warmupSeconds >= 0) || !Number.isInteger(batch) || batch < 1) {
  process.stderr.write('usage: bare-runtime <model.onnx> <durationSeconds> <warmupSeconds> [batch]\n');
  process.exit(2);
}

const session = await ort.InferenceSession.create(modelPath, {
  executionProviders: ['cpu'],
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
});

const sample = [5.1, 3.5, 1.4, 0.2];
const values = Array.from({ length: batch }, () => sample).flat();

/** One request's worth of work: a fresh input tensor (as the server builds per request) and a run. */
async function runOnce(): Promise<void> {
  const input = new ort.Tensor('float32', Float32Array.from(values), [batch, 4]);
  const outputs = await session.run({ input });
  if (outputs.probabilities === undefined) throw new Error('classifier returned no probabilities');
}

async function loop(seconds: number, latenciesMs?: number[]): Promise<{ runs: number; elapsedMs: number }> {
  const start = performance.now();
  const end = start + seconds * 1000;
  let runs = 0;
  let now = start;
  while (now < end) {
    const t0 = now;
    await runOnce();
    now = performance.now();
    latenciesMs?.push(now - t0);
    runs++;
  }
  return { runs, elapsedMs: now - start };
}

if (warmupSeconds > 0) await loop(warmupSeconds);
const latenciesMs: number[] = [];
const { runs, elapsedMs } = await loop(durationSeconds, latenciesMs);
await session.release();

const durationMeasured = elapsedMs / 1000;
process.stdout.write(
  `${JSON.stringify({
    runs,
    durationSeconds: durationMeasured,
    runsPerSecond: runs / durationMeasured,
    ...summarize(latenciesMs),
    ortVersion: ort.env.versions.node ?? ort.env.versions.common,
  })}\n`,
);
