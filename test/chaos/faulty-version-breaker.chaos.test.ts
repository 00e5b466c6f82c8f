import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { FaultInjection } from '../../src/infra/onnx/fault-injection.js';
import { InferenceClient } from '../support/grpc-client.js';
import { closedLoop, eventually, grpcInfer, httpPost, latencyOf, loadFigures, report, scrape, succeeded, type Answer, type ClosedLoop } from '../support/load.js';
import { samplesOf } from '../support/prometheus-text.js';
import { getJson, makeRepository, modelStatistics, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Fault suite 6: a model version starts failing every run (injected) under HTTP and gRPC load. Its
 * circuit breaker opens; while open, requests are refused at once (503 / UNAVAILABLE naming the
 * breaker) and nothing reaches the model; after BREAKER_OPEN_MS it lets a trial through, which
 * (the fault cleared) succeeds and closes it, and traffic is served again.
 */
const BREAKER = { BREAKER_MIN_REQUESTS: 10, BREAKER_ERROR_RATE: 0.5, BREAKER_WINDOW_MS: 1000, BREAKER_OPEN_MS: 3000 };
const ROW = [6.7, 3.0, 5.2, 2.3];
const HTTP_BODY = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: ROW }] });
const GRPC_REQUEST = { model_name: 'flaky', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: ROW } }] };
const CLIENTS = 6; // even: HTTP, odd: gRPC
/** Answers watched while open: refused fast, they take far less than BREAKER_OPEN_MS even on a busy machine. */
const OPEN_WINDOW_ANSWERS = 120;
const BREAKER_MESSAGE = /the circuit breaker of version 1 of model 'flaky' is open/;

type Phase = 'healthy' | 'faulty' | 'open' | 'closed';

let server: TestServer;
let grpc: InferenceClient;

before(async () => {
  const repository = await makeRepository([{ name: 'flaky', onnx: classifierModel() }]);
  server = await startTestServer(repository, Object.fromEntries(Object.entries(BREAKER).map(([name, value]) => [name, String(value)])));
  grpc = new InferenceClient(server.server.grpcAddress);
});

after(async () => {
  grpc?.close();
  await server?.close();
});

/** The breaker's state as exported: the state whose series is 1. */
async function breakerState(): Promise<string | undefined> {
  const samples = samplesOf(await scrape(server.server.metricsUrl!), 'inference_circuit_breaker_state', { model: 'flaky', version: '1' });
  return samples.find((s) => s.value === 1)?.labels.state;
}

/** Requests that entered the version's scheduler (answered or failed there), and the runs that succeeded. */
async function computed(): Promise<{ requests: number; executions: number }> {
  const stats = await modelStatistics(server.url, 'flaky');
  return { requests: Number(stats.inference_stats.success.count) + Number(stats.inference_stats.fail.count), executions: Number(stats.execution_count) };
}

test('a version failing every run under load: its breaker opens, refuses fast with 503 naming it without computing, half-opens after BREAKER_OPEN_MS, closes on a good trial, traffic succeeds again', { timeout: 90_000 }, async (t) => {
  const faults = server.server.app.get(FaultInjection);
  let phase: Phase = 'healthy';
  const loadOf = () =>
    closedLoop<Answer & { phase: Phase; answeredIn: Phase }>({
      clients: CLIENTS,
      send: async (client) => {
        const sentIn = phase;
        const answer = client % 2 === 0 ? await httpPost(`${server.url}/v2/models/flaky/infer`, HTTP_BODY) : await grpcInfer(grpc, GRPC_REQUEST);
        return { ...answer, phase: sentIn, answeredIn: phase };
      },
    });

  let load: ClosedLoop<Answer & { phase: Phase; answeredIn: Phase }> = loadOf();
  const outcomes = load.outcomes;
  let openAt: number;
  let halfOpenAfterMs: number;
  let before: { requests: number; executions: number };
  let during: { requests: number; executions: number };
  let stateAfterWindow: string | undefined;
  let trial: Answer;
  try {
    await load.further(100);
    assert.equal(await breakerState(), 'closed');
    phase = 'faulty';
    faults.set('flaky', { error_rate: 1 });
    await eventually('the breaker opening', async () => ((await breakerState()) === 'open' ? true : undefined), 20_000, 10);
    openAt = performance.now();
    // What was admitted before it opened is answered; from then on nothing enters the scheduler.
    await eventually('the scheduler idle', async () => {
      const { body } = await getJson(`${server.url}/health`);
      const scheduler = body.details.queues.schedulers.find((s: { key: string }) => s.key === 'flaky/1');
      return scheduler.queued === 0 && scheduler.runningBatches === 0 ? true : undefined;
    });
    phase = 'open';
    before = await computed();
    await load.further(OPEN_WINDOW_ANSWERS);
    during = await computed();
    stateAfterWindow = await breakerState();
    await load.stop();
    // No traffic now: the breaker goes half-open on its own after BREAKER_OPEN_MS and waits for a trial.
    faults.set('flaky');
    await eventually('the breaker half-opening', async () => ((await breakerState()) === 'half_open' ? true : undefined), BREAKER.BREAKER_OPEN_MS + 20_000, 10);
    halfOpenAfterMs = performance.now() - openAt;
    trial = await httpPost(`${server.url}/v2/models/flaky/infer`, HTTP_BODY);
    assert.equal(await breakerState(), 'closed', 'the trial closed it');
    phase = 'closed';
    load = loadOf();
    await load.further(200);
  } finally {
    faults.set('flaky');
    await load.stop();
  }
  const all = [...outcomes, ...load.outcomes];
  const of = (p: Phase) => all.filter((o) => o.phase === p);
  const refusedWhileOpen = of('open').filter((o) => !succeeded(o));
  const runtimeFailures = of('faulty').filter((o) => o.status === '500' || o.status === 'INTERNAL');
  report(t, {
    ...loadFigures('healthy', of('healthy')),
    ...loadFigures('faulty until open', of('faulty')),
    ...loadFigures('open', of('open')),
    ...loadFigures('closed again', of('closed')),
    'computed while open': `requests ${before!.requests} -> ${during!.requests}, executions ${before!.executions} -> ${during!.executions} (state after the window: ${stateAfterWindow})`,
    'half-open': `${halfOpenAfterMs!.toFixed(0)} ms after it was seen open (BREAKER_OPEN_MS ${BREAKER.BREAKER_OPEN_MS})`,
    trial: `${trial!.status} from version ${trial!.modelVersion}`,
  });

  // Sent while healthy: served, unless its run came after the fault was set.
  assert.ok(of('healthy').filter((o) => o.answeredIn === 'healthy').every(succeeded), 'served while healthy');
  for (const o of all.filter((o) => (o.phase === 'faulty' || o.answeredIn === 'faulty') && !succeeded(o))) {
    const breaker = BREAKER_MESSAGE.test(o.message ?? '');
    assert.ok(breaker ? o.status === '503' || o.status === 'UNAVAILABLE' : o.status === '500' || o.status === 'INTERNAL', `${o.transport} ${o.status} ${o.message}`);
    if (!breaker) assert.match(o.message!, /injected fault: this run fails/);
  }
  assert.ok(runtimeFailures.length >= BREAKER.BREAKER_MIN_REQUESTS * BREAKER.BREAKER_ERROR_RATE, `${runtimeFailures.length} runtime failures before it opened`);
  assert.ok(of('open').length >= OPEN_WINDOW_ANSWERS);
  for (const o of of('open')) {
    assert.equal(o.status, o.transport === 'http' ? '503' : 'UNAVAILABLE', `${o.transport} ${o.status} ${o.message}`);
    assert.match(o.message!, BREAKER_MESSAGE);
    assert.ok(Number(o.retryAfter) >= 1, `${o.transport}: Retry-After ${o.retryAfter}`);
  }
  assert.ok(latencyOf(refusedWhileOpen).maxMs < BREAKER.BREAKER_OPEN_MS, 'refused at once, not held until the breaker half-opens');
  assert.equal(stateAfterWindow, 'open', 'still open after the window observed');
  assert.deepEqual(during!, before!, 'nothing entered the scheduler nor ran while open');
  // Seen open a little after it opened: 500 ms of slack for the polling on a busy machine.
  assert.ok(halfOpenAfterMs! >= BREAKER.BREAKER_OPEN_MS - 500, `half-open ${halfOpenAfterMs!.toFixed(0)} ms after it was seen open`);
  assert.equal(trial!.status, '200', `the trial: ${trial!.message}`);
  assert.ok(of('closed').length >= 200 && of('closed').every(succeeded), 'served again once closed');
});
