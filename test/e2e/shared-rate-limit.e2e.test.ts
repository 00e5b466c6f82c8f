import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { classifierModel } from '../../scripts/build-models.js';
import { freePort } from '../support/free-port.js';
import { InferenceClient, Status, type ServiceError } from '../support/grpc-client.js';
import { parsePrometheusText, valueOf } from '../support/prometheus-text.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { spawnServer, type ServerProcess } from '../support/server-process.js';
import { makeRepository, requestJson } from '../support/test-server.js';

/** Replicas on one Redis share one admin token (the server refuses to start without it). */
const SHARED_ADMIN_TOKEN = 'replicas-share-this-admin-token';

/**
 * Two replicas (server processes) sharing one Redis (REDIS_URL): a client's rate limit counts
 * across both, whichever one it calls and over either transport; with Redis killed both go on
 * serving on their own buckets, and count it; with Redis back they share again. The rate (one token
 * per 100 s) is slow enough that no token drips back while the test runs; leases of one token make
 * the count exact (THROTTLE_LEASE_SIZE=1: the precision the README's trade-off table names).
 */
const BURST = 6;
const ROW = [6.7, 3.0, 5.2, 2.3];

function infer(server: ServerProcess, key: string) {
  return requestJson('POST', `${server.url}/v2/models/shared/infer`, {
    headers: { 'x-api-key': key },
    body: { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: ROW }] },
  });
}

async function metric(metricsPort: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text());
  return valueOf(parsePrometheusText(text), name, labels);
}

describe('rate limits shared by replicas through Redis', () => {
  let redis: RedisServer;
  const replicas: { server: ServerProcess; metricsPort: number }[] = [];

  before(async () => {
    redis = await startRedisServer();
    const repository = await makeRepository([{ name: 'shared', onnx: classifierModel() }]);
    for (let i = 0; i < 2; i++) {
      const metricsPort = await freePort();
      const server = await spawnServer({
        MODEL_REPOSITORY: repository,
        ADMIN_TOKEN: SHARED_ADMIN_TOKEN, REDIS_URL: redis.url,
        THROTTLE_RATE: '0.01',
        THROTTLE_BURST: String(BURST),
        THROTTLE_CLIENT_HEADER: 'x-api-key',
        THROTTLE_LEASE_SIZE: '1',
        METRICS_PORT: String(metricsPort),
        LOG_LEVEL: 'info',
      });
      replicas.push({ server, metricsPort });
    }
    for (const { server } of replicas) assert.ok(await server.untilReady(), server.stderr());
  });
  after(async () => {
    for (const { server } of replicas) await server.stop();
    await redis.stop();
  });

  it('refuses a client over its quota across both replicas, on either, over HTTP and gRPC', async () => {
    const [a, b] = replicas.map((r) => r.server) as [ServerProcess, ServerProcess];
    const statuses: number[] = [];
    for (let i = 0; i < BURST; i++) statuses.push((await infer(i % 2 === 0 ? a : b, 'alice')).status);
    assert.deepEqual(statuses, Array(BURST).fill(200), 'the burst, spread over both replicas');
    for (const server of [a, b]) {
      const refused = await infer(server, 'alice');
      assert.equal(refused.status, 429, JSON.stringify(refused.body));
      assert.match(refused.body.error, /over its rate limit of 0\.01 requests per second \(burst 6\)/);
      assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    }
    const client = new InferenceClient(b.grpcAddress);
    try {
      await assert.rejects(
        client.infer({ model_name: 'shared', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: ROW } }] }, { metadata: { 'x-api-key': 'alice' } }),
        (error: ServiceError) => error.code === Status.RESOURCE_EXHAUSTED,
      );
    } finally {
      client.close();
    }
    assert.equal((await infer(a, 'bob')).status, 200, 'another client has its own quota');
    for (const { metricsPort } of replicas) {
      assert.ok((await metric(metricsPort, 'throttle_shared_budget_leases_total', { outcome: 'granted' })) >= BURST / 2);
      assert.ok((await metric(metricsPort, 'throttle_shared_budget_leases_total', { outcome: 'empty' })) >= 1);
    }
  });

  it('keeps serving on both replicas while Redis is killed, counting each request judged alone, and shares again once it is back', async () => {
    await redis.kill();
    for (const { server, metricsPort } of replicas) {
      const answer = await infer(server, 'carol');
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.ok((await metric(metricsPort, 'throttle_shared_budget_fallbacks_total')) >= 1);
      assert.match(server.stdout(), /shared rate-limit budget on Redis cannot be reached/);
    }

    await redis.restart();
    // Each replica asks Redis again a second after its last failure: wait (bounded) until both lease again.
    for (const { server, metricsPort } of replicas) {
      const before = await metric(metricsPort, 'throttle_shared_budget_leases_total', { outcome: 'granted' });
      let after = before;
      for (let attempt = 0; attempt < 100 && after === before; attempt++) {
        assert.equal((await infer(server, `dave-${attempt}`)).status, 200);
        after = await metric(metricsPort, 'throttle_shared_budget_leases_total', { outcome: 'granted' });
        if (after === before) await sleep(100);
      }
      assert.ok(after > before, 'the replica leases from Redis again');
      assert.match(server.stdout(), /shared rate-limit budget on Redis answers again/);
    }
    const [a, b] = replicas.map((r) => r.server) as [ServerProcess, ServerProcess];
    const statuses: number[] = [];
    for (let i = 0; i < BURST + 2; i++) statuses.push((await infer(i % 2 === 0 ? a : b, 'erin')).status);
    assert.deepEqual(statuses, [...Array(BURST).fill(200), 429, 429], 'counted across replicas again');
  });
});
