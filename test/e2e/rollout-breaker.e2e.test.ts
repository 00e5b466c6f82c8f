import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FaultInjection } from '../../src/infra/onnx/fault-injection.js';
import { InferenceClient } from '../support/grpc-client.js';
import { parsePrometheusText, valueOf } from '../support/prometheus-text.js';
import { bearer, classifierAnswering, makeRepository, requestJson, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * A version's circuit breaker opening, seen by its rollout: a canary is rolled back (ROLLED_BACK,
 * its history naming the breaker) before the plan's SLO could judge it, and every request then goes
 * to the stable version; the stable version's own breaker leaves the rollout as it is. The failing
 * version is made to fail with the app's FaultInjection (error_rate 1: every run a runtime error).
 */
const TOKEN = 'rollout-breaker-e2e-token-0123456789';
const admin = bearer(TOKEN);
const ALL_VERSIONS = { version_policy: { all: {} } };
const ROW = [6.7, 3.0, 5.2, 2.3];
/**
 * The breaker opens after 5 failures in a minute; it stays open for the test. The plan's SLO could
 * not catch the canary first: it tolerates every request failing, judges only after 1000 canary
 * requests and an hour, so its error budget (max_error_rate x min_requests) outlasts the test.
 */
const ENV = { ADMIN_TOKEN: TOKEN, ROLLOUT_EVALUATION_INTERVAL_MS: '20', BREAKER_MIN_REQUESTS: '5', BREAKER_ERROR_RATE: '0.5', BREAKER_WINDOW_MS: '60000', BREAKER_OPEN_MS: '600000' };
const PATIENT_PLAN = { steps: [50, 100], min_requests: 1000, min_dwell_seconds: 3600, slo: { max_error_rate: 1 } };

interface Answer {
  readonly status: number;
  readonly version: string | null;
  readonly body: any;
}

async function infer(url: string, model: string): Promise<Answer> {
  const { status, body, headers } = await requestJson('POST', `${url}/v2/models/${model}/infer`, { body: { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: ROW }] } });
  return { status, version: headers.get('x-model-version'), body };
}

async function rolloutOf(url: string, model: string): Promise<any> {
  const { status, body } = await requestJson('GET', `${url}/admin/models/${model}/rollout`, { headers: admin });
  assert.equal(status, 200, JSON.stringify(body));
  return body;
}

async function startRollout(url: string, model: string, document: unknown): Promise<void> {
  const { status, body } = await requestJson('PUT', `${url}/admin/models/${model}/rollout`, { headers: admin, body: document });
  assert.equal(status, 200, JSON.stringify(body));
}

async function breakerOf(server: TestServer, model: string, version: number): Promise<string | undefined> {
  const samples = parsePrometheusText(await (await fetch(server.server.metricsUrl!)).text());
  return ['closed', 'open', 'half_open'].find((state) => valueOf(samples, 'inference_circuit_breaker_state', { model, version: String(version), state }) === 1);
}

/** Sends requests one at a time until `done` holds for the rollout (at most `count`); every answer. */
async function sendUntil(url: string, model: string, done: (rollout: any) => boolean, count = 200): Promise<{ rollout: any; answers: Answer[] }> {
  const answers: Answer[] = [];
  let rollout: any;
  for (let i = 0; i < count; i++) {
    answers.push(await infer(url, model));
    rollout = await rolloutOf(url, model);
    if (done(rollout)) return { rollout, answers };
  }
  assert.fail(`the rollout of '${model}' never got there after ${count} requests; last: ${JSON.stringify(rollout)}`);
}

describe('circuit breakers and rollouts', () => {
  let server: TestServer;
  let url: string;
  let faults: FaultInjection;
  before(async () => {
    const repository = await makeRepository([
      { name: 'canaried', version: 1, onnx: classifierAnswering(0), config: ALL_VERSIONS },
      { name: 'canaried', version: 2, onnx: classifierAnswering(1) },
      { name: 'stablebad', version: 1, onnx: classifierAnswering(0), config: ALL_VERSIONS },
      { name: 'stablebad', version: 2, onnx: classifierAnswering(1) },
    ]);
    server = await startTestServer(repository, ENV);
    url = server.url;
    faults = server.server.app.get(FaultInjection);
  });
  after(async () => {
    await server.close();
  });

  it("rolls a canary back when its breaker opens, before the plan's SLO judges it; every request then goes to the stable version", async () => {
    faults.set('canaried/2', { error_rate: 1 });
    await startRollout(url, 'canaried', { stable: 1, canary: { version: 2 }, plan: PATIENT_PLAN });

    const { rollout, answers } = await sendUntil(url, 'canaried', (r) => r.phase !== 'ACTIVE');
    assert.equal(rollout.phase, 'ROLLED_BACK');
    const canaryFailures = answers.filter((a) => a.status === 500);
    assert.ok(canaryFailures.length >= 5, `the breaker needed its 5 failures: ${canaryFailures.length}`);
    assert.ok(answers.every((a) => (a.status === 200 && a.version === '1') || a.status === 500 || a.status === 503), 'only the canary failed');
    assert.equal(await breakerOf(server, 'canaried', 2), 'open');

    const decision = rollout.history.at(-1);
    assert.deepEqual(rollout.history.map((d: any) => d.action), ['started', 'version_removed'], 'no SLO decision came first');
    assert.match(decision.reason, /version 2 became unavailable \(its circuit breaker opened: too many of its requests failed\) and was taken out of routing/);

    const afterwards: Answer[] = [];
    for (let i = 0; i < 40; i++) afterwards.push(await infer(url, 'canaried'));
    assert.deepEqual(
      afterwards.filter((a) => a.status !== 200 || a.version !== '1').map((a) => [a.status, a.version]),
      [],
      'zero failures, every answer from the stable version',
    );
    assert.equal((await rolloutOf(url, 'canaried')).phase, 'ROLLED_BACK');
    assert.equal(await breakerOf(server, 'canaried', 1), 'closed', "the stable version's breaker never opened");
  });

  it('says so over gRPC too: the rolled-back canary is not routed to', async () => {
    const client = new InferenceClient(server.server.grpcAddress);
    try {
      for (let i = 0; i < 10; i++) {
        const { response, metadata } = await client.inferWithMetadata({ model_name: 'canaried', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: ROW } }] });
        assert.equal(response.model_version, '1');
        assert.deepEqual(metadata['x-model-version'], ['1']);
      }
    } finally {
      client.close();
    }
  });

  it("leaves the rollout alone when the stable version's breaker opens", async () => {
    await startRollout(url, 'stablebad', { stable: 1, canary: { version: 2, weight: 0 } });
    faults.set('stablebad/1', { error_rate: 1 });
    const answers: Answer[] = [];
    for (let i = 0; i < 8; i++) answers.push(await infer(url, 'stablebad'));
    faults.set('stablebad/1');
    assert.deepEqual(answers.map((a) => a.status), [500, 500, 500, 500, 500, 503, 503, 503], 'the stable version failed until its breaker opened');
    assert.equal(await breakerOf(server, 'stablebad', 1), 'open');
    // The breaker's event was handled when it opened (the bus calls its subscribers synchronously).
    const rollout = await rolloutOf(url, 'stablebad');
    assert.equal(rollout.phase, 'ACTIVE');
    assert.deepEqual(rollout.history.map((d: any) => d.action), ['started']);
    assert.equal(rollout.stable, '1');
    assert.equal(rollout.canary.version, '2');
  });
});
