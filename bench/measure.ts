/**
 * The loads every row runs, with where the CPU went and what the server's /stats counted over the
 * measured window: closed loops (autocannon), open loops (bench/paced-load.ts), gRPC closed loops
 * (bench/grpc-load.ts in a child process), and the baselines (bare Fastify, bare grpc-js, the bare
 * runtime) in processes of their own.
 */
import path from 'node:path';
import { CpuWindow, type CpuUse } from './cpu.js';
import { answerToJson, checkedClassifierGrpcInfer, waitForGrpcReady, type GrpcLoadResult, type ModelInferResponse } from './grpc.js';
import {
  children,
  classifierUrl,
  GRPC_CHANNELS,
  here,
  HOST,
  log,
  PACED_MAX_CONNECTIONS,
  READY_TIMEOUT_MS,
  REQUEST_TIMEOUT_SECONDS,
  settings,
  waitExit,
  type RunningServer,
} from './harness.js';
import { runLoad, type LoadResult } from './load.js';
import { runPacedLoad, type PacedLoadResult } from './paced-load.js';
import { freePort, waitForReady } from './processes.js';
import { fetchModelStats, runFigures, statsBetween, type ModelStats, type RunFigures } from './server-stats.js';
import { CLASSIFIER, INFERENCE_HEADER, MLP_BATCHING, checkedClassifierBinaryAnswer, checkedClassifierInfer, classifierBinaryBody, classifierBody, mlpBody } from './workloads.js';

export interface Window {
  cpu?: CpuUse;
  stats?: ModelStats;
  figures?: RunFigures;
}

export interface ClosedLoopRun {
  readonly load: LoadResult;
  readonly window: Window;
}

/** Called at a measured run's start and end (after its CPU window has started, before it stops). */
export interface AroundMeasure {
  onMeasureStart(): Promise<void>;
  onMeasureEnd(): Promise<void>;
}

export interface ClosedLoopOptions {
  /** The server and model whose /stats are read around the measured run. */
  readonly stats?: { base: string; model: string };
  readonly around?: AroundMeasure;
  /** Sent with every request (content-type: application/json unless these name another). */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * Closed loop (autocannon, `connections` requests always outstanding), with CPU and /stats over the
 * measured run.
 */
export async function closedLoop(label: string, url: string, body: string | Buffer, pid: number | undefined, { stats, around, headers }: ClosedLoopOptions = {}): Promise<ClosedLoopRun> {
  log(`${label}: ${settings.connections} connections, ${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s`);
  const window: Window = {};
  let cpu: CpuWindow | undefined;
  let before: ModelStats | undefined;
  const load = await runLoad({
    url,
    body,
    headers,
    connections: settings.connections,
    durationSeconds: settings.durationSeconds,
    warmupSeconds: settings.warmupSeconds,
    onMeasureStart: async () => {
      if (stats) before = await fetchModelStats(stats.base, stats.model);
      cpu = new CpuWindow(pid);
      await around?.onMeasureStart();
    },
    onMeasureEnd: async () => {
      await around?.onMeasureEnd();
      window.cpu = cpu?.stop();
      if (stats && before) window.stats = statsBetween(before, await fetchModelStats(stats.base, stats.model));
    },
  });
  if (window.stats) window.figures = runFigures(window.stats, load.durationSeconds);
  return { load, window };
}

/** The loop of 1 on the demo classifier of `server`, with its /stats read around the measured run. */
export async function classifierLoop(label: string, server: RunningServer, options: Omit<ClosedLoopOptions, 'stats'> = {}): Promise<ClosedLoopRun> {
  return await closedLoop(label, classifierUrl(server), classifierBody(), server.child.process.pid, { ...options, stats: { base: server.base, model: CLASSIFIER } });
}


export interface OpenLoopRun {
  readonly load: PacedLoadResult;
  readonly window: Window;
  /** The model's counters since the server started, read after the run. */
  readonly cumulative: ModelStats;
}

/** Open loop at a fixed rate on the MLP with batching, with CPU and /stats over the measured window. */
export async function openLoop(label: string, server: RunningServer, rate: number): Promise<OpenLoopRun> {
  log(`${label}: ${Math.round(rate)} req/s open loop, ${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s`);
  const window: Window = {};
  let cpu: CpuWindow | undefined;
  let before: Promise<ModelStats> | undefined;
  const load = await runPacedLoad({
    url: `${server.base}/v2/models/${MLP_BATCHING}/infer`,
    body: mlpBody(),
    ratePerSecond: rate,
    durationSeconds: settings.durationSeconds,
    warmupSeconds: settings.warmupSeconds,
    maxConnections: PACED_MAX_CONNECTIONS,
    initialConnections: PACED_MAX_CONNECTIONS,
    timeoutSeconds: REQUEST_TIMEOUT_SECONDS,
    onMeasureStart: () => {
      before = fetchModelStats(server.base, MLP_BATCHING);
      before.catch(() => undefined); // awaited after the run; this only keeps a failure from being "unhandled" meanwhile
      cpu = new CpuWindow(server.child.process.pid);
    },
    onMeasureEnd: () => {
      window.cpu = cpu?.stop();
    },
  });
  const cumulative = await fetchModelStats(server.base, MLP_BATCHING);
  if (before) {
    window.stats = statsBetween(await before, cumulative);
    window.figures = runFigures(window.stats, load.durationSeconds);
  }
  return { load, window, cumulative };
}

export interface BareRuntimeResult {
  readonly runsPerSecond: number;
  readonly samplesPerSecond: number;
  readonly batch: number;
  readonly threads: number;
  readonly runs: number;
  readonly durationSeconds: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  readonly firstRow: number[];
  readonly ortVersion: string;
}

export async function measureBareRuntime(modelPath: string, batch: number, threads: number): Promise<BareRuntimeResult> {
  log(`bare runtime, batch ${batch}, ${threads} intra-op thread(s): ${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s`);
  const child = children.start('bare runtime', path.join(here, 'bare-runtime.js'), [
    modelPath,
    String(settings.durationSeconds),
    String(settings.warmupSeconds),
    String(batch),
    String(threads),
  ]);
  const code = await waitExit(child, (settings.durationSeconds + settings.warmupSeconds + 60) * 1000);
  if (code !== 0) throw new Error(`bare runtime exited ${code}:\n${child.stderrTail()}`);
  return JSON.parse(child.stdout().trim().split('\n').at(-1) ?? '') as BareRuntimeResult;
}

/**
 * The bare Fastify baseline, on the classifier's route, answering `answer` to the JSON body; with
 * `binaryAnswer` (the server's answer to the binary body), then the same loop with the binary body.
 */
export async function measureBareFastify(answer: string, binaryAnswer?: { body: Buffer; headers: Headers }): Promise<{ json: ClosedLoopRun; binary?: ClosedLoopRun }> {
  const port = await freePort();
  const base = `http://${HOST}:${port}`;
  const binaryEnv: Record<string, string> = binaryAnswer
    ? { RESPONSE_BINARY_BASE64: binaryAnswer.body.toString('base64'), RESPONSE_BINARY_JSON_LENGTH: binaryAnswer.headers.get(INFERENCE_HEADER) ?? '' }
    : {};
  const child = children.start('bare Fastify', path.join(here, 'bare-fastify-server.js'), [], { PORT: String(port), HOST, RESPONSE_JSON: answer, ...binaryEnv });
  try {
    await waitForReady(`${base}/v2/health/ready`, child, READY_TIMEOUT_MS);
    const url = `${base}/v2/models/${CLASSIFIER}/infer`;
    await checkedClassifierInfer(url);
    const json = await closedLoop('bare Fastify', url, classifierBody(), child.process.pid);
    if (!binaryAnswer) return { json };
    await checkedClassifierBinaryAnswer(url);
    const { body, headers } = classifierBinaryBody();
    const binary = await closedLoop('bare Fastify, binary tensor data', url, body, child.process.pid, { headers });
    return { json, binary };
  } finally {
    await children.stop(child);
  }
}

export interface GrpcClosedLoopRun {
  readonly load: GrpcLoadResult;
  readonly window: Window;
}

/**
 * Closed loop of ModelInfer calls (bench/grpc-load.ts in its own process, `connections` calls in
 * flight over GRPC_CHANNELS channels), with CPU (the load generator's being that process's) and
 * /stats over the measured window, which the child announces on its stdout.
 */
export async function grpcClosedLoop(label: string, address: string, pid: number | undefined, stats?: { base: string; model: string }): Promise<GrpcClosedLoopRun> {
  log(`${label}: ${settings.connections} calls in flight over ${GRPC_CHANNELS} channels, ${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s`);
  const child = children.start(`gRPC load (${label})`, path.join(here, 'grpc-load.js'), [
    address,
    String(settings.durationSeconds),
    String(settings.warmupSeconds),
    String(settings.connections),
    String(GRPC_CHANNELS),
    String(REQUEST_TIMEOUT_SECONDS),
  ]);
  const window: Window = {};
  let cpu: CpuWindow | undefined;
  let before: Promise<ModelStats> | undefined;
  let after: Promise<ModelStats> | undefined;
  let pending = '';
  child.process.stdout!.on('data', (chunk: string) => {
    const lines = (pending + chunk).split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      if (line === '{"event":"measuring"}') {
        cpu = new CpuWindow(pid, child.process.pid);
        if (stats) before = fetchModelStats(stats.base, stats.model);
        before?.catch(() => undefined); // awaited after the run; this only keeps a failure from being "unhandled" meanwhile
      } else if (line === '{"event":"measured"}') {
        window.cpu = cpu?.stop();
        if (stats) after = fetchModelStats(stats.base, stats.model);
        after?.catch(() => undefined);
      }
    }
  });
  let code: number | string;
  try {
    code = await waitExit(child, (settings.durationSeconds + settings.warmupSeconds + REQUEST_TIMEOUT_SECONDS + 60) * 1000);
  } finally {
    await children.stop(child);
  }
  if (code !== 0) throw new Error(`${child.name} exited ${code}:\n${child.stderrTail()}`);
  const load = JSON.parse(child.stdout().trim().split('\n').at(-1) ?? '') as GrpcLoadResult;
  if (before && after) {
    window.stats = statsBetween(await before, await after);
    window.figures = runFigures(window.stats, load.durationSeconds);
  }
  return { load, window };
}

/** The bare grpc-js baseline, serving ModelInfer with `answer` (the server's answer to the same request). */
export async function measureBareGrpc(answer: ModelInferResponse): Promise<GrpcClosedLoopRun> {
  const port = await freePort();
  const address = `${HOST}:${port}`;
  const child = children.start('bare grpc-js', path.join(here, 'bare-grpc-server.js'), [], { PORT: String(port), HOST, RESPONSE_JSON: answerToJson(answer) });
  try {
    await waitForGrpcReady(address, child, READY_TIMEOUT_MS);
    await checkedClassifierGrpcInfer(address);
    return await grpcClosedLoop('6. bare grpc-js', address, child.process.pid);
  } finally {
    await children.stop(child);
  }
}

/** 6 on a running server: its gRPC endpoint ready, one checked ModelInfer (its answer is the bare server's), then the load. */
export async function measureServerGrpc(server: RunningServer): Promise<{ run: GrpcClosedLoopRun; answer: ModelInferResponse }> {
  await waitForGrpcReady(server.grpcAddress, server.child, READY_TIMEOUT_MS);
  const answer = await checkedClassifierGrpcInfer(server.grpcAddress);
  const run = await grpcClosedLoop('6. server, classifier, gRPC', server.grpcAddress, server.child.process.pid, { base: server.base, model: CLASSIFIER });
  return { run, answer };
}

