/**
 * What every bench row shares: the settings read from the environment, the constants of the loads,
 * where the build is, the child processes of the run (servers, baselines, load generators) and the
 * server under test. Rows (bench/rows/*.ts) and the shared runs build on it; bench/run.ts orchestrates.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Children, waitForReady, freePort, type Child } from './processes.js';
import { CLASSIFIER, checkedClassifierAnswer } from './workloads.js';

// ---- settings --------------------------------------------------------------------------------

export function positiveNumber(name: string, fallback: number, { integer = false, allowZero = false, max = Infinity } = {}): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  const ok = Number.isFinite(value) && (allowZero ? value >= 0 : value > 0) && (!integer || Number.isInteger(value)) && value <= max;
  if (!ok) {
    const kind = `${allowZero ? 'non-negative' : 'positive'} ${integer ? 'integer' : 'number'}`;
    process.stderr.write(`bench: ${name}=${JSON.stringify(raw)} must be a ${kind}${max < Infinity ? ` of at most ${max}` : ''}\n`);
    process.exit(2);
  }
  return value;
}


export const settings = {
  durationSeconds: positiveNumber('BENCH_DURATION_SECONDS', 5, { max: 600 }),
  warmupSeconds: positiveNumber('BENCH_WARMUP_SECONDS', 1, { allowZero: true, max: 600 }),
  connections: positiveNumber('BENCH_CONNECTIONS', 64, { integer: true, max: 10_000 }),
  mlpThreads: positiveNumber('BENCH_MLP_THREADS', 2, { integer: true, max: 256 }),
};

export const HOST = '127.0.0.1';
export const READY_TIMEOUT_MS = 60_000;
export const REQUEST_TIMEOUT_SECONDS = 10;
/**
 * Connections of the open-loop client, all opened before the run: enough for 2x overload with a
 * full queue, and opening none under load (a connect burst to a busy server overflows its accept
 * queue and stalls those connections for seconds, which is not what 4 and 5 measure).
 */
export const PACED_MAX_CONNECTIONS = 1024;
/** A send lag past this means the load generator, not the server, set part of the latency. */
export const SEND_LAG_WARN_MS = 2;
/**
 * Channels of the gRPC load generator, each its own HTTP/2 connection, over which the calls in
 * flight are spread: a few, as gRPC clients multiplex their calls rather than open a connection
 * per call; more than one, so neither side is bound to a single connection's stream handling.
 */
export const GRPC_CHANNELS = 4;

// Everything the bench starts is found from where this file was compiled to (tsc's outDir, `.build`
// for `npm run bench`, or any other): <outDir>/bench/run.js starts <outDir>/src/main.js.
export const here = path.dirname(fileURLToPath(import.meta.url)); // <root>/<outDir>/bench
export const buildRoot = path.resolve(here, '..'); // <root>/<outDir>
export const projectRoot = path.resolve(buildRoot, '..');
const require = createRequire(import.meta.url);
export const versionOf = (pkg: string): string => (require(`${pkg}/package.json`) as { version: string }).version;

// ---- processes -------------------------------------------------------------------------------

/** Every child process of the run: bench/run.ts ends them all at the end, on error and on signals. */
export const children = new Children();

let workDir: string | undefined;
/** The run's temporary directory (models, server logs), set by bench/run.ts before any row runs. */
export function setWorkDir(dir: string | undefined): void {
  workDir = dir;
}
export function tmpDir(): string {
  if (workDir === undefined) throw new Error('the bench work directory is not set');
  return workDir;
}

export function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

export async function waitExit(child: Child, timeoutMs: number): Promise<number | string> {
  const code = await Promise.race([child.exited, sleep(timeoutMs).then(() => 'timeout' as const)]);
  if (code === 'timeout') {
    await children.stop(child, 0);
    throw new Error(`${child.name} did not finish within ${timeoutMs} ms`);
  }
  return code;
}

function fileTail(file: string, bytes = 4000): string {
  try {
    return readFileSync(file, 'utf8').slice(-bytes);
  } catch {
    return '';
  }
}

export async function buildDemoModels(dir: string): Promise<void> {
  const child = children.start('build-models', path.join(buildRoot, 'scripts', 'build-models.js'), [dir]);
  const code = await waitExit(child, 60_000);
  if (code !== 0) throw new Error(`build-models exited ${code}:\n${child.stderrTail()}`);
}

export interface RunningServer {
  readonly base: string;
  /** host:port of its gRPC endpoint (plaintext). */
  readonly grpcAddress: string;
  /** Its Prometheus endpoint, GET /metrics on METRICS_PORT (served unless ALLOW_METRICS=false). */
  readonly metricsUrl: string;
  readonly child: Child;
  readonly logFile: string;
}

/**
 * The server under test, as `node <outDir>/src/main.js` (the build this file is part of) with the
 * default log level and `env` on top of the bench's own environment; stdout (its log) goes to a file.
 */
export async function startServer(name: string, modelRepository: string, env: Record<string, string> = {}): Promise<RunningServer> {
  const [port, grpcPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const base = `http://${HOST}:${port}`;
  const logFile = path.join(tmpDir(), `${name}.log`);
  const child = children.start(
    name,
    path.join(buildRoot, 'src', 'main.js'),
    [],
    {
      MODEL_REPOSITORY: modelRepository,
      HOST,
      HTTP_PORT: String(port),
      GRPC_PORT: String(grpcPort),
      METRICS_PORT: String(metricsPort),
      SHUTDOWN_DRAIN_DELAY_MS: '0',
      LOG_LEVEL: 'info',
      ...env,
    },
    { stdoutFile: logFile },
  );
  try {
    await waitForReady(`${base}/v2/health/ready`, child, READY_TIMEOUT_MS);
  } catch (error) {
    await children.stop(child);
    throw new Error(`${(error as Error).message}\n${name} log:\n${fileTail(logFile)}`);
  }
  return { base, grpcAddress: `${HOST}:${grpcPort}`, metricsUrl: `http://${HOST}:${metricsPort}/metrics`, child, logFile };
}

export const classifierUrl = (server: RunningServer): string => `${server.base}/v2/models/${CLASSIFIER}/infer`;

/**
 * Environment variables of the bench's own environment that start with one of `prefixes`,
 * emptied (the server reads an empty variable as unset): a server is configured exactly as the
 * bench says, whatever the shell exported.
 */
export function envCleared(...prefixes: string[]): Record<string, string> {
  return Object.fromEntries(Object.keys(process.env).filter((name) => prefixes.some((prefix) => name.startsWith(prefix))).map((name) => [name, '']));
}

/**
 * A server process of its own on the demo models (7 and 8): started with `env` on top of the
 * bench's environment, its OTEL_* cleared (tracing off unless `env` turns it on); one checked
 * classifier request (with `headers`), then `use`; the server is stopped after, whatever happened.
 */
export async function onClassifierServer<T>(
  name: string,
  demoRepository: string,
  env: Record<string, string>,
  use: (server: RunningServer, checked: { text: string; headers: Headers }) => Promise<T>,
  { headers }: { headers?: Readonly<Record<string, string>> } = {},
): Promise<T> {
  const server = await startServer(name, demoRepository, { ...envCleared('OTEL_'), ...env });
  try {
    const checked = await checkedClassifierAnswer(classifierUrl(server), headers);
    return await use(server, checked);
  } finally {
    await children.stop(server.child);
  }
}
