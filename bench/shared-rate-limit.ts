/**
 * `npm run bench:shared-rate-limit`: what counting rate limits across replicas (REDIS_URL) costs
 * per request, against the single-node limit, both measured in this run.
 *
 *   A. decision    the admission decision alone, in this process: 64 requests always in flight
 *                  over 64 clients, each awaiting `increment` of the per-client buckets, for
 *                  BENCH_DURATION_SECONDS per setup: the in-memory buckets (no REDIS_URL), then
 *                  the buckets leased from a redis-server of the bench's own with leases of 1, 10
 *                  and 100 tokens, then a client over its limit (refused without a round trip).
 *                  Figures: CPU microseconds of this process per decision (the event loop's cost,
 *                  Redis's own CPU apart), decisions per second, and Redis round trips per decision.
 *   B. end to end  the server on the demo classifier (one process at a time, LOG_LEVEL=info, the
 *                  loop of `npm run bench` 1: autocannon, BENCH_CONNECTIONS connections, every
 *                  request with the same x-api-key), rate limit on and far above the load
 *                  (THROTTLE_RATE=1000000, THROTTLE_BURST=1000: leases of 100 by default): without
 *                  REDIS_URL, with it, and with it and THROTTLE_LEASE_SIZE=1 (every request a round
 *                  trip), in BENCH_ROUNDS rounds of the three in turn, the best run of each kept.
 *                  Figures: req/s of each and the ratio to the first. Any refusal (429) in a
 *                  measured window is not a valid figure.
 *
 * Env: BENCH_DURATION_SECONDS (5), BENCH_WARMUP_SECONDS (1), BENCH_CONNECTIONS (64), BENCH_ROUNDS (2).
 * Prints two tables; a missed figure is a result, the exit code is non-zero only when something broke.
 */
import { cpuUsage } from 'node:process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { LeasedTokenBuckets } from '../src/infra/throttling/leased-token-buckets.js';
import { RedisTokenBudget, type Lease, type TokenBudget } from '../src/infra/throttling/redis-token-budget.js';
import { TokenBucketStorage } from '../src/infra/throttling/token-bucket.storage.js';
import type { ThrottlerStorage } from '@nestjs/throttler';
import { startRedisServer, type RedisServer } from '../test/support/redis-server.js';
import { runLoad } from './load.js';
import { Children, freePort, waitForReady } from './processes.js';
import { CLASSIFIER, checkedClassifierAnswer, classifierBody } from './workloads.js';

const HOST = '127.0.0.1';
const durationSeconds = Number(process.env.BENCH_DURATION_SECONDS ?? 5);
const warmupSeconds = Number(process.env.BENCH_WARMUP_SECONDS ?? 1);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 64);
const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
const IN_FLIGHT = 64;
const buildRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const children = new Children();

/** Counts the leases that reach Redis. */
class CountedBudget implements TokenBudget {
  leases = 0;
  constructor(private readonly inner: TokenBudget) {}
  lease(key: string, ttlMs: number, limit: number, want: number): Promise<Lease> {
    this.leases += 1;
    return this.inner.lease(key, ttlMs, limit, want);
  }
}

interface DecisionRow {
  readonly setup: string;
  readonly decisions: number;
  readonly cpuMicrosPerDecision: number;
  readonly decisionsPerSecond: number;
  readonly roundTripsPerDecision: number;
  readonly refused: number;
}

/** IN_FLIGHT loops, each awaiting one decision after another for `seconds`, over `clients` keys. */
async function decide(setup: string, storage: ThrottlerStorage, budget: CountedBudget | undefined, { limit, ttl, clients, seconds }: { limit: number; ttl: number; clients: number; seconds: number }): Promise<DecisionRow> {
  const stopAt = Date.now() + seconds * 1000;
  let decisions = 0;
  let refused = 0;
  const leasesBefore = budget?.leases ?? 0;
  const cpuBefore = cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async (_, worker) => {
      const key = `client-${worker % clients}`;
      while (Date.now() < stopAt) {
        for (let i = 0; i < 100; i++) {
          const record = await storage.increment(key, ttl, limit, 0, 'default');
          decisions += 1;
          if (record.isBlocked) refused += 1;
        }
      }
    }),
  );
  const elapsedS = (performance.now() - started) / 1000;
  const cpu = cpuUsage(cpuBefore);
  return {
    setup,
    decisions,
    cpuMicrosPerDecision: (cpu.user + cpu.system) / decisions,
    decisionsPerSecond: decisions / elapsedS,
    roundTripsPerDecision: ((budget?.leases ?? 0) - leasesBefore) / decisions,
    refused,
  };
}

async function measureDecisions(redis: RedisServer): Promise<DecisionRow[]> {
  const client = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 1000, enableAutoPipelining: true, lazyConnect: true });
  await client.connect();
  try {
    const shared = (leaseSize: number) => {
      const budget = new CountedBudget(new RedisTokenBudget(client));
      const storage = new LeasedTokenBuckets(budget, new TokenBucketStorage(), { namespace: `bench-${leaseSize}:`, leaseSize: () => leaseSize, leaseMs: 1000, retryMs: 1000 });
      return { budget, storage };
    };
    // Far above what the loop can ask: nothing is refused, every decision admits.
    const open = { limit: 1_000_000_000, ttl: 1000, clients: IN_FLIGHT, seconds: durationSeconds };
    const rows = [await decide('in memory (no REDIS_URL)', new TokenBucketStorage(), undefined, open)];
    for (const leaseSize of [1, 10, 100]) {
      const { budget, storage } = shared(leaseSize);
      rows.push(await decide(`Redis, leases of ${leaseSize}`, storage, budget, open));
    }
    // One client, over its limit (a burst of 10 filling in an hour): every decision but the first ten refuses.
    const { budget, storage } = shared(10);
    rows.push(await decide('Redis, client over its limit', storage, budget, { limit: 10, ttl: 3_600_000, clients: 1, seconds: durationSeconds }));
    return rows;
  } finally {
    client.disconnect();
  }
}

interface ServerRow {
  readonly setup: string;
  readonly requestsPerSecond: number;
  readonly p99Ms: number;
  readonly refused: number;
}

async function measureServer(setup: string, repository: string, tmp: string, env: Record<string, string>): Promise<ServerRow> {
  const [port, grpcPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const base = `http://${HOST}:${port}`;
  const child = children.start(
    setup,
    path.join(buildRoot, 'src', 'main.js'),
    [],
    { MODEL_REPOSITORY: repository, HOST, HTTP_PORT: String(port), GRPC_PORT: String(grpcPort), METRICS_PORT: String(metricsPort), LOG_LEVEL: 'info', SHUTDOWN_DRAIN_DELAY_MS: '0', ...env },
    { stdoutFile: path.join(tmp, `${setup.replace(/\W+/g, '-')}.log`) },
  );
  try {
    await waitForReady(`${base}/v2/health/ready`, child, 60_000);
    const url = `${base}/v2/models/${CLASSIFIER}/infer`;
    const headers = { 'x-api-key': 'bench' };
    const checked = await checkedClassifierAnswer(url, headers);
    if (checked.headers.get('x-ratelimit-limit') === null) throw new Error(`${setup}: the rate limit is not on`);
    const load = await runLoad({ url, body: classifierBody(), headers, connections, durationSeconds, warmupSeconds });
    if (load.errors > 0) throw new Error(`${setup}: ${load.errors} request errors`);
    return { setup, requestsPerSecond: load.requestsPerSecond, p99Ms: load.p99Ms, refused: load.non2xxByStatus['429'] ?? 0 };
  } finally {
    await children.stop(child);
  }
}

async function main(): Promise<void> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'bench-shared-rate-limit-'));
  const redis = await startRedisServer();
  try {
    const decisions = await measureDecisions(redis);
    const base = decisions[0]!.cpuMicrosPerDecision;
    console.log('\nA. the admission decision (in this process, 64 in flight)');
    console.table(
      decisions.map((row) => ({
        setup: row.setup,
        'CPU µs/decision': row.cpuMicrosPerDecision.toFixed(2),
        'vs in memory': `+${(row.cpuMicrosPerDecision - base).toFixed(2)} µs`,
        'decisions/s': Math.round(row.decisionsPerSecond),
        'round trips/decision': row.roundTripsPerDecision.toFixed(4),
        refused: row.refused,
      })),
    );

    const repository = path.join(tmp, 'models');
    const build = children.start('build-models', path.join(buildRoot, 'scripts', 'build-models.js'), [repository]);
    if ((await build.exited) !== 0) throw new Error(`build-models failed:\n${build.stderrTail()}`);
    const limits = { THROTTLE_RATE: '1000000', THROTTLE_BURST: '1000', THROTTLE_CLIENT_HEADER: 'x-api-key' };
    // Replicas on Redis share one admin token, which must be given (none is generated per replica).
    const replica = { ...limits, REDIS_URL: redis.url, ADMIN_TOKEN: 'shared-rate-limit-bench-admin-token' };
    const setups: [string, Record<string, string>][] = [
      ['no REDIS_URL', limits],
      ['REDIS_URL (leases of 100)', replica],
      ['REDIS_URL, THROTTLE_LEASE_SIZE=1', { ...replica, THROTTLE_LEASE_SIZE: '1' }],
    ];
    // Rounds of the three in turn, the best run of each kept: what other load on the machine took
    // from one run is not charged to its setup.
    const best = new Map<string, ServerRow>();
    for (let round = 0; round < rounds; round++) {
      for (const [setup, env] of setups) {
        const row = await measureServer(setup, repository, tmp, env);
        const kept = best.get(setup);
        if (!kept || row.refused > 0 || (kept.refused === 0 && row.requestsPerSecond > kept.requestsPerSecond)) best.set(setup, row);
      }
    }
    const servers = setups.map(([setup]) => best.get(setup)!);
    console.log(`\nB. the server end to end (demo classifier, ${connections} connections, ${durationSeconds} s, best of ${rounds})`);
    console.table(
      servers.map((row) => ({
        setup: row.setup,
        'req/s': Math.round(row.requestsPerSecond),
        'vs no REDIS_URL': `${(row.requestsPerSecond / servers[0]!.requestsPerSecond).toFixed(3)}x`,
        'p99 ms': row.p99Ms.toFixed(2),
        valid: row.refused === 0 ? 'yes' : `no: ${row.refused} refused`,
      })),
    );
  } finally {
    await children.stopAll();
    await redis.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
