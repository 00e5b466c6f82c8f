/**
 * `node .build/bench/replicas.js`: what running replicas on Redis (REDIS_URL) costs and how fast a
 * change reaches them (README "Running several replicas").
 *
 *   1. infer req/s with Redis mode on / off: one server on the demo classifier, closed loop
 *      (autocannon, BENCH_CONNECTIONS), without REDIS_URL then with it (a redis-server of the
 *      bench's own), twice each (off, on, on, off); the means compared. Nothing on the inference path
 *      touches Redis: target >= 0.95x.
 *   2. swap propagation: three replicas sharing that Redis and one repository, a model with two
 *      versions kept loaded (version policy `all`); BENCH_SWAPS hot swaps made on replica 0, one
 *      after the other: from the call's answer until every replica serves the new default
 *      (GET /admin/models polled every 5 ms on each). p50 / p99 / max. A swap that must load its
 *      version on each replica adds that load's time (see the e2e figure in the README).
 *
 * Prints one JSON object. Env: BENCH_DURATION_SECONDS (5), BENCH_WARMUP_SECONDS (1),
 * BENCH_CONNECTIONS (64), BENCH_SWAPS (50). Needs `redis-server` on PATH (scripts/ensure-redis-server.sh).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { classifierModel } from '../scripts/build-models.js';
import { runLoad } from './load.js';
import { Children, freePort, waitForReady } from './processes.js';
import { summarize } from './stats.js';

const HOST = '127.0.0.1';
const TOKEN = 'bench-replicas-admin-token-0123';
const BODY = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 3.0, 5.2, 2.3] }] });
const buildRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const number = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const durationSeconds = number('BENCH_DURATION_SECONDS', 5);
const warmupSeconds = number('BENCH_WARMUP_SECONDS', 1);
const connections = number('BENCH_CONNECTIONS', 64);
const swaps = number('BENCH_SWAPS', 50);

const children = new Children();
process.on('exit', () => children.killAllNow());

async function startRedis(dir: string): Promise<{ url: string; process: ChildProcess }> {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', HOST, '--dir', dir, '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: 'ignore' });
  process.on('exit', () => proc.kill('SIGKILL'));
  for (let attempt = 0; attempt < 200; attempt++) {
    const up = await new Promise<boolean>((resolve) => {
      import('node:net').then(({ connect }) => {
        const socket = connect(port, HOST);
        socket.once('connect', () => socket.write('PING\r\n'));
        socket.once('data', (data) => {
          socket.destroy();
          resolve(data.toString().startsWith('+PONG'));
        });
        socket.once('error', () => resolve(false));
      });
    });
    if (up) return { url: `redis://${HOST}:${port}`, process: proc };
    await sleep(25);
  }
  throw new Error('redis-server did not answer PING');
}

async function startServer(name: string, repository: string, env: Record<string, string>): Promise<{ base: string; child: ReturnType<Children['start']> }> {
  const [port, grpcPort] = [await freePort(), await freePort()];
  const child = children.start(name, path.join(buildRoot, 'src', 'main.js'), [], {
    MODEL_REPOSITORY: repository,
    HOST,
    HTTP_PORT: String(port),
    GRPC_PORT: String(grpcPort),
    METRICS_PORT: '0',
    SHUTDOWN_DRAIN_DELAY_MS: '0',
    LOG_LEVEL: 'warn',
    ADMIN_TOKEN: TOKEN,
    STATE_DIR: await mkdtemp(path.join(tmpdir(), 'bench-replicas-state-')),
    ...env,
  });
  const base = `http://${HOST}:${port}`;
  await waitForReady(`${base}/v2/health/ready`, child, 60_000);
  return { base, child };
}

async function inferRate(repository: string, env: Record<string, string>, name: string): Promise<number> {
  const server = await startServer(name, repository, env);
  try {
    const result = await runLoad({ url: `${server.base}/v2/models/classifier/infer`, body: BODY, connections, durationSeconds, warmupSeconds });
    if (result.non2xx > 0 || result.errors > 0) throw new Error(`${name}: ${result.non2xx} non-2xx answers, ${result.errors} errors`);
    return result.requestsPerSecond;
  } finally {
    await children.stop(server.child);
  }
}

async function defaultVersion(base: string): Promise<string | null> {
  const response = await fetch(`${base}/admin/models`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const { models } = (await response.json()) as { models: { name: string; default_version: string | null }[] };
  return models.find((m) => m.name === 'swap')?.default_version ?? null;
}

async function swapPropagation(repository: string, redisUrl: string): Promise<number[]> {
  const replicas = await Promise.all([0, 1, 2].map((i) => startServer(`replica-${i}`, repository, { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: 'bench-swap:' })));
  const delays: number[] = [];
  try {
    for (let i = 0; i < swaps; i++) {
      const version = String(1 + (i % 2));
      const answer = await fetch(`${replicas[0]!.base}/admin/models/swap/default-version`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ version }),
      });
      if (answer.status !== 200) throw new Error(`swap ${i}: ${answer.status} ${await answer.text()}`);
      const made = performance.now();
      await Promise.all(
        replicas.map(async (replica) => {
          for (let attempt = 0; attempt < 2000; attempt++) {
            if ((await defaultVersion(replica.base)) === version) return;
            await sleep(5);
          }
          throw new Error(`swap ${i} did not reach ${replica.base}`);
        }),
      );
      delays.push(performance.now() - made);
    }
  } finally {
    await Promise.all(replicas.map((replica) => children.stop(replica.child)));
  }
  return delays;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'bench-replicas-'));
  try {
    const repository = path.join(dir, 'models');
    const onnx = classifierModel();
    for (const [model, version] of [['classifier', 1], ['swap', 1], ['swap', 2]] as const) {
      await mkdir(path.join(repository, model, String(version)), { recursive: true });
      await writeFile(path.join(repository, model, String(version), 'model.onnx'), onnx);
    }
    await writeFile(path.join(repository, 'swap', 'config.json'), JSON.stringify({ version_policy: { all: {} } }));
    const redis = await startRedis(dir);
    try {
      // Off, on, on, off: a shared machine drifts; the means of the runs, in this order, cancel a steady drift.
      const runs = { off: [] as number[], on: [] as number[] };
      for (const [round, mode] of (['off', 'on', 'on', 'off'] as const).entries()) {
        runs[mode].push(await inferRate(repository, mode === 'on' ? { REDIS_URL: redis.url } : {}, `${mode}-${round}`));
      }
      const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
      const [off, on] = [mean(runs.off), mean(runs.on)];
      const delays = await swapPropagation(repository, redis.url);
      const summary = summarize(delays);
      console.log(
        JSON.stringify(
          {
            infer: { runs_off_rps: runs.off.map(Math.round), runs_on_rps: runs.on.map(Math.round), redis_off_rps: Math.round(off), redis_on_rps: Math.round(on), ratio: Number((on / off).toFixed(3)), target: '>= 0.95x' },
            swap_propagation_ms: { swaps: delays.length, p50: round(summary.p50Ms), p99: round(summary.p99Ms), max: round(Math.max(...delays)) },
          },
          null,
          2,
        ),
      );
    } finally {
      redis.process.kill('SIGKILL');
      await once(redis.process, 'exit');
    }
  } finally {
    await children.stopAll();
    await rm(dir, { recursive: true, force: true });
  }
}

function round(value: number | undefined): number | undefined {
  return value === undefined ? undefined : Math.round(value * 10) / 10;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
