/**
 * Baseline child process: onnxruntime-node InferenceSession.run of a model in a loop, with the
 * server's session options (sequential, no spinning, one inter-op thread) and a given number of
 * intra-op threads. The model has one input [batch, features] (FP32); every run feeds `batch`
 * copies of the bench's sample row in a tensor built for that run, as the server builds one per
 * batch. Prints one JSON line:
 * { runs, durationSeconds, runsPerSecond, samplesPerSecond, batch, threads, p50Ms, p99Ms, meanMs,
 *   firstRow (the first output's first row), ortVersion }.
 *
 * Argv: <model.onnx> <durationSeconds> <warmupSeconds> [batch=1] [intraOpThreads=1]
 */
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { summarize } from './stats.js';
import { sampleRow } from './workloads.js';

const [modelPath, durationArg, warmupArg, batchArg, threadsArg] = process.argv.slice(2);
const durationSeconds = Number(durationArg);
const warmupSeconds = Number(warmupArg ?? 1);
const batch = Number(batchArg ?? 1);
const threads = Number(threadsArg ?? 1);
const positiveInteger = (n: number): boolean => Number.isInteger(n) && n >= 1;
if (!modelPath || !(durationSeconds > 0) || !(warmupSeconds >= 0) || !positiveInteger(batch) || !positiveInteger(threads)) {
  process.stderr.write('usage: bare-runtime <model.onnx> <durationSeconds> <warmupSeconds> [batch] [intraOpThreads]\n');
  process.exit(2);
}

const session = await ort.InferenceSession.create(modelPath, {
  executionProviders: ['cpu'],
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
});

const input = session.inputMetadata[0]!;
const outputName = session.outputNames[0]!;
const width = input.isTensor ? input.shape[1] : undefined;
if (session.inputNames.length !== 1 || typeof width !== 'number' || width < 1) {
  process.stderr.write(`bare-runtime: the model must have one input [batch, features], not ${JSON.stringify(session.inputMetadata)}\n`);
  process.exit(2);
}
const features: number = width;
const values = Array.from({ length: batch }, () => sampleRow(features)).flat();

/** One batch's worth of work: a fresh input tensor and a run. */
async function runOnce(): Promise<ort.Tensor> {
  const tensor = new ort.Tensor('float32', Float32Array.from(values), [batch, features]);
  const outputs = await session.run({ [input.name]: tensor });
  const output = outputs[outputName];
  if (output === undefined) throw new Error(`the model returned no '${outputName}'`);
  return output;
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

const first = await runOnce();
const rowLength = first.dims.slice(1).reduce((a, b) => a * b, 1);
const firstRow = Array.from(first.data as Float32Array).slice(0, rowLength);

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
    samplesPerSecond: (runs * batch) / durationMeasured,
    batch,
    threads,
    ...summarize(latenciesMs),
    firstRow,
    ortVersion: ort.env.versions.node ?? ort.env.versions.common,
  })}\n`,
);
