/**
 * `npm run bench`: measures the server and, in the same run, the baselines its speed is reported
 * against (speed is a ratio to baselines measured alongside, never a figure asserted in tests):
 *
 *   1. server          — POST /v2/models/classifier/infer, batch 1, autocannon, N connections
 *   2. server batch 8  — the same request with shape [8,4]: requests/s and samples/s
 *   3. bare Fastify    — a bare Fastify server parsing the same body, answering the server's answer
 *   4. bare runtime    — InferenceSession.run of the same input in a loop, one thread
 *
 * Scenarios run one after another (never two loads at once), each in its own child process, on
 * 127.0.0.1 only. Env: BENCH_DURATION_SECONDS (5), BENCH_WARMUP_SECONDS (1), BENCH_CONNECTIONS (32).
 * Prints a table and writes the same figures to bench/results/latest.json.
 */
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { runLoad, type LoadResult } from './load.js';
import { Children, freePort, waitForReady, type Child } from './processes.js';

// ---- settings --------------------------------------------------------------------------------

function positiveNumber(name: string, fallback: number, { integer = false, allowZero = false } = {}): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  const ok = Number.isFinite(value) && (allowZero ? value >= 0 : value > 0) && (!integer || Number.isInteger(value));
  if (!ok) {
    process.stderr.write(`bench: ${name}=${JSON.stringify(raw)} must be a ${integer ? 'positive integer' : 'positive number'}\n`);
    process.exit(2);
  }
  return value;
}

const settings = {
  durationSeconds: positiveNumber('BENCH_DURATION_SECONDS', 5),
  warmupSeconds: positiveNumber('BENCH_WARMUP_SECONDS', 1, { allowZero: true }),
  connections: positiveNumber('BENCH_CONNECTIONS', 32, { integer: true }),
  batch: 8,
};

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 30_000;
const LOAD_COUNT = 3; // server, server batch 8, bare Fastify; the runtime loop is a fourth scenario
/** Hard limit of the whole run: every scenario's time plus generous start-up/shutdown slack. */
const BUDGET_MS = ((LOAD_COUNT + 1) * (settings.durationSeconds + settings.warmupSeconds) + 60) * 1000;

const here = path.dirname(fileURLToPath(import.meta.url)); // <root>/.build/bench
const buildRoot = path.resolve(here, '..'); // <root>/.build
const projectRoot = path.resolve(buildRoot, '..');
const resultsFile = path.join(projectRoot, 'bench', 'results', 'latest.json');
const require = createRequire(import.meta.url);
const versionOf = (pkg: string): string => (require(`${pkg}/package.json`) as { version: string }).version;

// ---- the request -----------------------------------------------------------------------------

const SAMPLE = [5.1, 3.5, 1.4, 0.2];
function inferBody(batch: number): string {
  const data = Array.from({ length: batch }, () => SAMPLE).flat();
  return JSON.stringify({ inputs: [{ name: 'input', shape: [batch, 4], datatype: 'FP32', data }] });
}

interface InferAnswer {
  outputs?: { name: string; shape: number[]; datatype: string; data: unknown[] }[];
}

/** One request outside the load: checks the answer is a correct classifier answer and returns its text. */
async function checkedInfer(url: string, body: string, batch: number): Promise<string> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${url} answered ${response.status}: ${text}`);
  const answer = JSON.parse(text) as InferAnswer;
  const probabilities = answer.outputs?.find((o) => o.name === 'probabilities');
  const label = answer.outputs?.find((o) => o.name === 'label');
  if (probabilities?.shape.join() !== `${batch},3` || label?.shape.join() !== `${batch}` || label.data[0] !== 0) {
    throw new Error(`unexpected answer from ${url} for batch ${batch}: ${text}`);
  }
  return text;
}

// ---- results ---------------------------------------------------------------------------------

interface ScenarioResult {
  readonly scenario: string;
  readonly description: string;
  readonly unit: 'req/s' | 'runs/s';
  readonly rate: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  readonly count: number;
  readonly durationSeconds: number;
  readonly batch: number;
  readonly samplesPerSecond: number;
  readonly non2xx?: number;
  readonly errors?: number;
  readonly timeouts?: number;
}

function fromLoad(scenario: string, description: string, batch: number, load: LoadResult): ScenarioResult {
  return {
    scenario,
    description,
    unit: 'req/s',
    rate: load.requestsPerSecond,
    p50Ms: load.p50Ms,
    p99Ms: load.p99Ms,
    meanMs: load.meanMs,
    count: load.requests,
    durationSeconds: load.durationSeconds,
    batch,
    samplesPerSecond: load.requestsPerSecond * batch,
    non2xx: load.non2xx,
    errors: load.errors,
    timeouts: load.timeouts,
  };
}

const round = (value: number, digits: number): number => Number(value.toFixed(digits));

// ---- run -------------------------------------------------------------------------------------

const children = new Children();
let tmpDir: string | undefined;
const cleanUpNow = (): void => {
  children.killAllNow();
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
};
process.on('exit', cleanUpNow);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench: ${signal}, stopping\n`);
    process.exit(130);
  });
}
const watchdog = setTimeout(() => {
  process.stderr.write(`bench: exceeded its ${BUDGET_MS / 1000} s budget, aborting\n`);
  process.exit(1);
}, BUDGET_MS);

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

async function waitExit(child: Child, timeoutMs: number): Promise<number | string> {
  const code = await Promise.race([child.exited, sleep(timeoutMs).then(() => 'timeout' as const)]);
  if (code === 'timeout') {
    await children.stop(child, 0);
    throw new Error(`${child.name} did not finish within ${timeoutMs} ms`);
  }
  return code;
}

async function buildModels(dir: string): Promise<void> {
  const child = children.start('build-models', path.join(buildRoot, 'scripts', 'build-models.js'), [dir]);
  const code = await waitExit(child, 30_000);
  if (code !== 0) throw new Error(`build-models exited ${code}:\n${child.stderrTail()}`);
}

async function measureServer(modelRepository: string): Promise<{
  batch1: ScenarioResult;
  batchN: ScenarioResult;
  answer: string;
  modelConfig: unknown;
}> {
  const [port, grpcPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const base = `http://${HOST}:${port}`;
  const server = children.start('server', path.join(buildRoot, 'src', 'main.js'), [], {
    MODEL_REPOSITORY: modelRepository,
    HOST,
    HTTP_PORT: String(port),
    GRPC_PORT: String(grpcPort),
    METRICS_PORT: String(metricsPort),
    LOG_LEVEL: 'silent',
  });
  try {
    await waitForReady(`${base}/v2/health/ready`, server, READY_TIMEOUT_MS);
    const url = `${base}/v2/models/classifier/infer`;
    const answer = await checkedInfer(url, inferBody(1), 1);
    await checkedInfer(url, inferBody(settings.batch), settings.batch);
    const modelConfig = await fetch(`${base}/v2/models/classifier/config`)
      .then((r) => (r.ok ? r.json() : undefined))
      .catch(() => undefined);

    const common = { url, connections: settings.connections, durationSeconds: settings.durationSeconds, warmupSeconds: settings.warmupSeconds };
    log(`server, batch 1: ${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s`);
    const batch1 = await runLoad({ ...common, body: inferBody(1) });
    log(`server, batch ${settings.batch}: ${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s`);
    const batchN = await runLoad({ ...common, body: inferBody(settings.batch) });
    return {
      batch1: fromLoad('server', `our server, POST /v2/models/classifier/infer [1,4], ${settings.connections} connections`, 1, batch1),
      batchN: fromLoad(
        `server batch ${settings.batch}`,
        `our server, the same request with shape [${settings.batch},4]`,
        settings.batch,
        batchN,
      ),
      answer,
      modelConfig,
    };
  } finally {
    await children.stop(server);
  }
}

async function measureBareFastify(answer: string): Promise<ScenarioResult> {
  const port = await freePort();
  const base = `http://${HOST}:${port}`;
  const server = children.start('bare Fastify', path.join(here, 'bare-fastify-server.js'), [], {
    PORT: String(port),
    HOST,
    RESPONSE_JSON: answer,
  });
  try {
    await waitForReady(`${base}/v2/health/ready`, server, READY_TIMEOUT_MS);
    const url = `${base}/v2/models/classifier/infer`;
    await checkedInfer(url, inferBody(1), 1);
    log(`bare Fastify: ${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s`);
    const load = await runLoad({
      url,
      body: inferBody(1),
      connections: settings.connections,
      durationSeconds: settings.durationSeconds,
      warmupSeconds: settings.warmupSeconds,
    });
    return fromLoad('bare Fastify', 'bare fastify in a child process: parses the same body, answers the server\'s answer (no model)', 1, load);
  } finally {
    await children.stop(server);
  }
}

async function measureBareRuntime(modelPath: string): Promise<ScenarioResult & { ortVersion: string }> {
  log(`bare runtime: ${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s`);
  const child = children.start('bare runtime', path.join(here, 'bare-runtime.js'), [
    modelPath,
    String(settings.durationSeconds),
    String(settings.warmupSeconds),
  ]);
  const code = await waitExit(child, (settings.durationSeconds + settings.warmupSeconds + 30) * 1000);
  if (code !== 0) throw new Error(`bare runtime exited ${code}:\n${child.stderrTail()}`);
  const lastLine = child.stdout().trim().split('\n').at(-1) ?? '';
  const r = JSON.parse(lastLine) as {
    runs: number;
    durationSeconds: number;
    runsPerSecond: number;
    p50Ms: number;
    p99Ms: number;
    meanMs: number;
    ortVersion: string;
  };
  return {
    scenario: 'bare runtime',
    description: 'onnxruntime-node InferenceSession.run, same input, awaited in a loop, 1 intra-op thread, child process',
    unit: 'runs/s',
    rate: r.runsPerSecond,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    meanMs: r.meanMs,
    count: r.runs,
    durationSeconds: r.durationSeconds,
    batch: 1,
    samplesPerSecond: r.runsPerSecond,
    ortVersion: r.ortVersion,
  };
}

function printTable(rows: { scenario: string; rate: string; samples: string; p50: string; p99: string; ratio: string }[]): void {
  const header = { scenario: 'scenario', rate: 'rate', samples: 'samples/s', p50: 'p50 ms', p99: 'p99 ms', ratio: 'ratio vs baseline' };
  const all = [header, ...rows];
  const keys = Object.keys(header) as (keyof typeof header)[];
  const width = Object.fromEntries(keys.map((k) => [k, Math.max(...all.map((r) => r[k].length))])) as Record<keyof typeof header, number>;
  const line = (r: typeof header): string =>
    keys
      .map((k) => (k === 'scenario' || k === 'ratio' ? r[k].padEnd(width[k]) : r[k].padStart(width[k])))
      .join(' | ')
      .trimEnd();
  console.log(line(header));
  console.log(keys.map((k) => '-'.repeat(width[k])).join('-|-'));
  for (const row of rows) console.log(line(row));
}

async function main(): Promise<number> {
  const machine = {
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    platform: `${os.platform()} ${os.arch()}`,
    totalMemoryGiB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    onnxruntime: versionOf('onnxruntime-node'),
    fastify: versionOf('fastify'),
    autocannon: versionOf('autocannon'),
  };
  log(
    `${machine.cpus} cpus (${machine.cpuModel}), node ${machine.node}, onnxruntime-node ${machine.onnxruntime}; ` +
      `${settings.connections} connections, ${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s per scenario`,
  );

  tmpDir = await mkdtemp(path.join(os.tmpdir(), 'onnx-serving-bench-'));
  const modelRepository = path.join(tmpDir, 'models');
  await buildModels(modelRepository);

  const server = await measureServer(modelRepository);
  const bareFastify = await measureBareFastify(server.answer);
  const bareRuntime = await measureBareRuntime(path.join(modelRepository, 'classifier', '1', 'model.onnx'));

  const ratios = {
    serverVsBareFastify: server.batch1.rate / bareFastify.rate,
    serverVsBareRuntime: server.batch1.rate / bareRuntime.rate,
    serverBatchSamplesVsServerBatch1: server.batchN.samplesPerSecond / server.batch1.rate,
    serverBatchSamplesVsBareRuntime: server.batchN.samplesPerSecond / bareRuntime.rate,
  };

  const scenarios = [server.batch1, server.batchN, bareFastify, bareRuntime];
  const problems = scenarios
    .filter((s) => (s.non2xx ?? 0) + (s.errors ?? 0) + (s.timeouts ?? 0) > 0 || s.count === 0)
    .map((s) => `${s.scenario}: ${s.count} completed, ${s.non2xx ?? 0} non-2xx, ${s.errors ?? 0} errors, ${s.timeouts ?? 0} timeouts`);

  const fmtRate = (s: ScenarioResult): string => `${Math.round(s.rate).toLocaleString('en-US')} ${s.unit}`;
  const fmtMs = (ms: number): string => (Number.isNaN(ms) ? '-' : ms < 1 ? ms.toFixed(3) : ms.toFixed(2));
  const x = (ratio: number): string => `${ratio.toFixed(2)}x`;
  console.log('');
  console.log(
    `machine: ${machine.cpus} cpus (${machine.cpuModel}), ${machine.platform}, node ${machine.node}, ` +
      `onnxruntime-node ${machine.onnxruntime}, fastify ${machine.fastify}, autocannon ${machine.autocannon}`,
  );
  console.log(
    `load: autocannon in the bench process, ${settings.connections} connections, ` +
      `${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s per scenario, one scenario at a time, 127.0.0.1`,
  );
  console.log('');
  printTable([
    {
      scenario: 'server (batch 1)',
      rate: fmtRate(server.batch1),
      samples: Math.round(server.batch1.samplesPerSecond).toLocaleString('en-US'),
      p50: fmtMs(server.batch1.p50Ms),
      p99: fmtMs(server.batch1.p99Ms),
      ratio: `${x(ratios.serverVsBareFastify)} bare Fastify, ${x(ratios.serverVsBareRuntime)} bare runtime`,
    },
    {
      scenario: `server (batch ${settings.batch})`,
      rate: fmtRate(server.batchN),
      samples: Math.round(server.batchN.samplesPerSecond).toLocaleString('en-US'),
      p50: fmtMs(server.batchN.p50Ms),
      p99: fmtMs(server.batchN.p99Ms),
      ratio: `samples/s: ${x(ratios.serverBatchSamplesVsServerBatch1)} server batch 1, ${x(ratios.serverBatchSamplesVsBareRuntime)} bare runtime`,
    },
    {
      scenario: 'bare Fastify (baseline)',
      rate: fmtRate(bareFastify),
      samples: Math.round(bareFastify.samplesPerSecond).toLocaleString('en-US'),
      p50: fmtMs(bareFastify.p50Ms),
      p99: fmtMs(bareFastify.p99Ms),
      ratio: '1.00x (HTTP + JSON, no model)',
    },
    {
      scenario: 'bare runtime (baseline)',
      rate: fmtRate(bareRuntime),
      samples: Math.round(bareRuntime.samplesPerSecond).toLocaleString('en-US'),
      p50: fmtMs(bareRuntime.p50Ms),
      p99: fmtMs(bareRuntime.p99Ms),
      ratio: '1.00x (session.run loop, 1 thread)',
    },
  ]);
  console.log('');

  const results = {
    generatedAt: new Date().toISOString(),
    command: 'npm run bench',
    machine,
    settings: { ...settings, host: HOST, requestBytes: { batch1: inferBody(1).length, [`batch${settings.batch}`]: inferBody(settings.batch).length }, answerBytes: server.answer.length },
    serverModelConfig: server.modelConfig,
    scenarios: scenarios.map((s) => ({
      ...s,
      rate: round(s.rate, 1),
      samplesPerSecond: round(s.samplesPerSecond, 1),
      p50Ms: round(s.p50Ms, 4),
      p99Ms: round(s.p99Ms, 4),
      meanMs: round(s.meanMs, 4),
      durationSeconds: round(s.durationSeconds, 3),
    })),
    ratios: Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, round(v, 4)])),
    problems,
  };
  await mkdir(path.dirname(resultsFile), { recursive: true });
  await writeFile(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`wrote ${path.relative(process.cwd(), resultsFile) || resultsFile}`);

  if (problems.length > 0) {
    process.stderr.write(`bench: some requests failed, the figures are not valid:\n  ${problems.join('\n  ')}\n`);
    return 1;
  }
  return 0;
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (error) {
  process.stderr.write(`bench: failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
} finally {
  clearTimeout(watchdog);
  await children.stopAll();
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
  tmpDir = undefined;
}
process.exit(exitCode);
