import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { InferenceClient, outputOf, type ModelInferResponse } from '../support/grpc-client.js';
import { closedLoop, grpcInfer, httpPost, loadFigures, report, succeeded, type Answer } from '../support/load.js';
import { bearer, classifierAnswering, makeRepository, requestJson, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Fault suite 1: the admin API swaps a model's default version 5 times while HTTP and gRPC clients
 * keep it busy. Version v of the model answers label v - 1, so every answer tells which version
 * computed it; each must be one that was the default at some point while the request was out.
 */
const TOKEN = 'chaos-hot-swap-token-0123456789';
const ROW = [6.7, 3.0, 5.2, 2.3];
const HTTP_BODY = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: ROW }] });
const GRPC_REQUEST = { model_name: 'swapped', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: ROW } }] };
const CLIENTS = 8; // even: HTTP, odd: gRPC
const PLAN = [2, 1, 3, 2, 1];
/** Answers between two swaps: each version serves a stretch of the load. */
const BETWEEN_SWAPS = 15 * CLIENTS;

/** An answer with the label it carried and where it fell among the swaps. */
interface Observed extends Answer {
  readonly label?: number;
  /** Swaps answered when the request was sent: the default then was defaults[this]. */
  readonly swapsAnsweredBeforeSend: number;
  /** Swaps sent when the answer arrived: the latest default it may come from is defaults[this]. */
  readonly swapsSentBeforeAnswer: number;
}

function labelOf(answer: Answer): number | undefined {
  if (!succeeded(answer)) return undefined;
  if (answer.transport === 'http') return answer.body.outputs.find((o: { name: string }) => o.name === 'label').data[0];
  return Number(outputOf(answer.body as ModelInferResponse, 'label').values[0]);
}

let server: TestServer;
let grpc: InferenceClient;

before(async () => {
  const repository = await makeRepository([1, 2, 3].map((version) => ({ name: 'swapped', version, onnx: classifierAnswering((version - 1) as 0 | 1 | 2) })));
  server = await startTestServer(repository, { ADMIN_TOKEN: TOKEN });
  grpc = new InferenceClient(server.server.grpcAddress);
});

after(async () => {
  grpc?.close();
  await server?.close();
});

test('5 hot swaps under HTTP+gRPC load: zero failed requests, each answer computed by a version that was the default while it was out', { timeout: 90_000 }, async (t) => {
  const defaults = ['3']; // defaults[k]: the default once k swaps have answered (latest 1 serves 3 at start)
  let swapsSent = 0;
  let swapsAnswered = 0;
  const load = closedLoop<Observed>({
    clients: CLIENTS,
    send: async (client) => {
      const swapsAnsweredBeforeSend = swapsAnswered;
      const answer = client % 2 === 0 ? await httpPost(`${server.url}/v2/models/swapped/infer`, HTTP_BODY) : await grpcInfer(grpc, GRPC_REQUEST);
      return { ...answer, label: labelOf(answer), swapsAnsweredBeforeSend, swapsSentBeforeAnswer: swapsSent };
    },
  });

  const swapMs: number[] = [];
  try {
    await load.further(BETWEEN_SWAPS);
    for (const target of PLAN) {
      swapsSent += 1;
      const started = performance.now();
      const swap = await requestJson('PUT', `${server.url}/admin/models/swapped/default-version`, { headers: bearer(TOKEN), body: { version: String(target) } });
      swapMs.push(performance.now() - started);
      assert.equal(swap.status, 200, JSON.stringify(swap.body));
      assert.deepEqual(swap.body, { name: 'swapped', previous_version: defaults.at(-1), version: String(target) });
      swapsAnswered += 1;
      defaults.push(String(target));
      await load.further(BETWEEN_SWAPS);
    }
  } finally {
    await load.stop();
  }
  const outcomes = load.outcomes;

  const perVersion = (transport: string) =>
    ['1', '2', '3'].map((v) => `v${v}=${outcomes.filter((o) => o.transport === transport && o.modelVersion === v).length}`).join(' ');
  report(t, {
    ...loadFigures('load', outcomes),
    swaps: `${PLAN.length} (${defaults.join(' -> ')}), each answered in ${swapMs.map((v) => v.toFixed(0)).join('/')} ms`,
    'answers by version http': perVersion('http'),
    'answers by version grpc': perVersion('grpc'),
  });

  const failed = outcomes.filter((o) => !succeeded(o));
  assert.deepEqual(failed.slice(0, 5).map((o) => `${o.transport} ${o.status} ${o.message}`), [], `${failed.length} of ${outcomes.length} requests failed`);
  for (const o of outcomes) {
    const version = o.modelVersion!;
    assert.equal(o.label, Number(version) - 1, `the ${o.transport} answer naming version ${version} was computed by it`);
    const allowed = defaults.slice(o.swapsAnsweredBeforeSend, o.swapsSentBeforeAnswer + 1);
    assert.ok(allowed.includes(version), `${o.transport}: sent after ${o.swapsAnsweredBeforeSend} swaps, answered within ${o.swapsSentBeforeAnswer}: version ${version} is not one of ${allowed.join(', ')}`);
  }
  for (const transport of ['http', 'grpc']) {
    const seen = new Set(outcomes.filter((o) => o.transport === transport).map((o) => o.modelVersion));
    assert.deepEqual([...seen].sort(), ['1', '2', '3'], `${transport} clients were answered by every version`);
  }

  const { body } = await requestJson('GET', `${server.url}/admin/models`, { headers: bearer(TOKEN) });
  const swapped = body.models.find((m: { name: string }) => m.name === 'swapped');
  assert.equal(swapped.default_version, '1');
  assert.equal(swapped.serving_version, '1');
});
