import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { classifierModel, identityAllTypesModel } from '../../scripts/build-models.js';
import { getJson, makeRepository, modelStatistics, postJson, postJsonWith, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Dynamic batching seen from a client: which requests share a run (each response's
 * `parameters.batch_size`, the /stats counters) and what each gets back. A forming batch waits up
 * to 10 s here, so a batch leaves only when it reaches its preferred size: what merges does not
 * depend on how fast the requests arrive.
 */
const TEN_SECONDS_MICROS = 10_000_000;
const batchesOf = (preferred: number) => ({
  max_batch_size: 8,
  dynamic_batching: { preferred_batch_size: [preferred], max_queue_delay_microseconds: TEN_SECONDS_MICROS },
});

function classifierRequest(rows: readonly number[][], outputs?: readonly string[]) {
  return {
    inputs: [{ name: 'input', shape: [rows.length, 4], datatype: 'FP32', data: rows.flat() }],
    ...(outputs && { outputs: outputs.map((name) => ({ name })) }),
  };
}

/** identity_all_types takes one [rows, n] input per datatype; every element here is distinct from the others'. */
const ALL_TYPES_VALUES: Record<string, (k: number) => unknown> = {
  BOOL: (k) => k % 3 === 0,
  UINT8: (k) => k % 256,
  UINT16: (k) => 65535 - k,
  UINT32: (k) => 4294967295 - k,
  UINT64: (k) => (18446744073709551615n - BigInt(k)).toString(),
  INT8: (k) => (k % 256) - 128,
  INT16: (k) => k - 32768,
  INT32: (k) => k - 2147483648,
  INT64: (k) => (BigInt(k) - 9223372036854775808n).toString(),
  FP16: (k) => k + 0.5,
  FP32: (k) => k / 8,
  FP64: (k) => k / 3,
  BYTES: (k) => `row ${k} ${'é'.repeat(k % 5)}`,
};

function allTypesRequest(rows: number, n: number, seed: number) {
  const elements = Array.from({ length: rows * n }, (_, i) => seed * 100 + i);
  return {
    inputs: Object.entries(ALL_TYPES_VALUES).map(([datatype, value]) => ({
      name: `in_${datatype.toLowerCase()}`,
      shape: [rows, n],
      datatype,
      data: elements.map(value),
    })),
  };
}

interface Answer {
  readonly status: number;
  readonly body: any;
  /** The response's `outputs` as the server wrote them: exact for 64-bit integers, which JSON.parse rounds. */
  readonly outputsText: string;
}

async function infer(url: string, model: string, request: unknown): Promise<Answer> {
  const response = await fetch(`${url}/v2/models/${model}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
  const text = await response.text();
  const body = JSON.parse(text);
  assert.equal(response.status, 200, `${model}: ${text}`);
  return { status: response.status, body, outputsText: text.slice(text.indexOf('"outputs":')) };
}

/** The requests one at a time, each alone in its run. */
async function oneAtATime(url: string, model: string, requests: readonly unknown[]): Promise<Answer[]> {
  const answers: Answer[] = [];
  for (const request of requests) answers.push(await infer(url, model, request));
  return answers;
}

describe('dynamic batching over HTTP', () => {
  let server: TestServer;
  let url: string;
  before(async () => {
    const repository = await makeRepository([
      { name: 'batch_of_4', onnx: classifierModel(), config: batchesOf(4) },
      { name: 'batch_of_7', onnx: classifierModel(), config: batchesOf(7) },
      { name: 'classifier', onnx: classifierModel() },
      { name: 'all_types_batch_of_4', onnx: identityAllTypesModel(), config: batchesOf(4) },
      { name: 'all_types', onnx: identityAllTypesModel() },
      { name: 'all_types_batch_of_2', onnx: identityAllTypesModel(), config: batchesOf(2) },
      { name: 'classifier_batch_of_2', onnx: classifierModel(), config: batchesOf(2) },
      { name: 'two_levels', onnx: classifierModel(), config: { max_batch_size: 8, dynamic_batching: { priority_levels: 2 } } },
      { name: 'bad_delay', onnx: classifierModel(), config: { dynamic_batching: { max_queue_delay_microseconds: -1 } } },
      { name: 'bad_key', onnx: classifierModel(), config: { dynamic_batching: { max_queue_delay_us: 100 } } },
      { name: 'bad_action', onnx: classifierModel(), config: { dynamic_batching: { default_queue_policy: { timeout_action: 'DROP' } } } },
      { name: 'bad_queue_size', onnx: classifierModel(), config: { dynamic_batching: { default_queue_policy: { max_queue_size: 'ten' } } } },
      { name: 'bad_preferred', onnx: classifierModel(), config: { max_batch_size: 4, dynamic_batching: { preferred_batch_size: [8] } } },
      { name: 'bad_default_level', onnx: classifierModel(), config: { dynamic_batching: { priority_levels: 2, default_priority_level: 3 } } },
      { name: 'bad_level_policy', onnx: classifierModel(), config: { dynamic_batching: { priority_levels: 2, priority_queue_policy: { '3': { max_queue_size: 1 } } } } },
      { name: 'bad_adaptive', onnx: classifierModel(), config: { parameters: { adaptive_queue_delay: { string_value: 'yes' } } } },
    ]);
    server = await startTestServer(repository);
    url = server.url;
  });
  after(() => server.close());

  it('merges concurrent requests into one run of the preferred batch size', async () => {
    const rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.0, 2.0, 3.0, 1.0], [4.9, 3.1, 1.5, 0.1]];
    const answers = await Promise.all(rows.map((row) => infer(url, 'batch_of_4', classifierRequest([row]))));
    assert.deepEqual(answers.map((a) => a.body.parameters.batch_size), [4, 4, 4, 4]);
    assert.deepEqual(answers.map((a) => a.body.outputs[1].data), [[0], [2], [1], [0]], 'each its own row\'s label');

    const stats = await modelStatistics(url, 'batch_of_4');
    assert.equal(stats.execution_count, 1);
    assert.equal(stats.inference_count, 4);
    assert.equal(stats.inference_stats.success.count, 4);
    assert.deepEqual(stats.batch_stats.map((b: { batch_size: number }) => b.batch_size), [4]);
    assert.equal(stats.batch_stats[0].compute_infer.count, 1);
  });

  it('batches by default without a config.json: max_batch_size 8, no wait for company', async () => {
    const { status, body } = await getJson(`${url}/v2/models/classifier/config`);
    assert.equal(status, 200);
    assert.equal(body.max_batch_size, 8);
    assert.equal(body.dynamic_batching.max_queue_delay_microseconds, 0);
  });

  it('gives each request of a merged run exactly the rows it gets alone, for every output', async () => {
    // 1 + 3 + 2 + 1 rows: in any arrival order the batch reaches 7 only with all four.
    const requests = [
      classifierRequest([[5.1, 3.5, 1.4, 0.2]]),
      classifierRequest([[6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [-1, 0, 1e3, 7]]),
      classifierRequest([[4.9, 3.1, 1.5, 0.1], [0, 0, 0, 0]]),
      classifierRequest([[6.3, 2.5, 5.0, 1.9]]),
    ];
    const alone = await oneAtATime(url, 'classifier', requests);
    assert.deepEqual(alone.map((a) => a.body.parameters.batch_size), [1, 3, 2, 1]);

    const merged = await Promise.all(requests.map((request) => infer(url, 'batch_of_7', request)));
    assert.deepEqual(merged.map((a) => a.body.parameters.batch_size), [7, 7, 7, 7]);
    merged.forEach((answer, i) => {
      assert.deepEqual(answer.body.outputs.map((o: { name: string; shape: number[] }) => [o.name, o.shape]), [['probabilities', [[1, 3, 2, 1][i], 3]], ['label', [[1, 3, 2, 1][i]]]]);
      assert.equal(answer.outputsText, alone[i].outputsText, `request ${i}`);
    });
    assert.equal((await modelStatistics(url, 'batch_of_7')).execution_count, 1);
  });

  it('splits every datatype row-exact, BYTES of different lengths and 64-bit integers included', async () => {
    const requests = [allTypesRequest(1, 2, 1), allTypesRequest(2, 2, 2), allTypesRequest(1, 2, 3)];
    const alone = await oneAtATime(url, 'all_types', requests);
    const merged = await Promise.all(requests.map((request) => infer(url, 'all_types_batch_of_4', request)));
    assert.deepEqual(merged.map((a) => a.body.parameters.batch_size), [4, 4, 4]);
    merged.forEach((answer, i) => {
      assert.equal(answer.outputsText, alone[i].outputsText, `request ${i}`);
      const bytes = answer.body.outputs.find((o: { name: string }) => o.name === 'out_bytes');
      assert.deepEqual(bytes, { name: 'out_bytes', datatype: 'BYTES', shape: requests[i].inputs[12].shape, data: requests[i].inputs[12].data });
    });
    const int64 = merged[1].outputsText.match(/"name":"out_int64","datatype":"INT64","shape":\[2,2\],"data":\[([^\]]*)\]/);
    assert.equal(int64?.[1], requests[1].inputs[8].data.join(','));
    const uint64 = merged[2].outputsText.match(/"name":"out_uint64","datatype":"UINT64","shape":\[1,2\],"data":\[([^\]]*)\]/);
    assert.equal(uint64?.[1], '18446744073709551315,18446744073709551314');
  });

  it('does not merge requests whose shapes past the batch dimension differ', async () => {
    // Two requests of [1,2] and two of [1,3]: only same-shape pairs may reach the preferred 2.
    const requests = [allTypesRequest(1, 2, 1), allTypesRequest(1, 3, 2), allTypesRequest(1, 2, 3), allTypesRequest(1, 3, 4)];
    const answers = await Promise.all(requests.map((request) => infer(url, 'all_types_batch_of_2', request)));
    assert.deepEqual(answers.map((a) => a.body.parameters.batch_size), [2, 2, 2, 2]);
    answers.forEach((answer, i) => {
      const bytes = answer.body.outputs.find((o: { name: string }) => o.name === 'out_bytes');
      assert.deepEqual([bytes.shape, bytes.data], [requests[i].inputs[12].shape, requests[i].inputs[12].data]);
    });
    const stats = await modelStatistics(url, 'all_types_batch_of_2');
    assert.equal(stats.execution_count, 2);
    assert.deepEqual(stats.batch_stats.map((b: { batch_size: number }) => b.batch_size), [2]);
  });

  it('does not merge requests asking for different outputs', async () => {
    const row = [6.7, 3.0, 5.2, 2.3];
    const asked = [['probabilities'], ['label'], ['label'], ['probabilities']];
    const answers = await Promise.all(asked.map((outputs) => infer(url, 'classifier_batch_of_2', classifierRequest([row], outputs))));
    assert.deepEqual(answers.map((a) => a.body.parameters.batch_size), [2, 2, 2, 2]);
    assert.deepEqual(answers.map((a) => a.body.outputs.map((o: { name: string }) => o.name)), asked);
    assert.deepEqual(answers[1].body.outputs[0].data, [2]);
    assert.equal((await modelStatistics(url, 'classifier_batch_of_2')).execution_count, 2);
  });

  describe('bad scheduling parameters get a 400 naming them, and never reach the model', () => {
    const request = (parameters: object) => ({ ...classifierRequest([[6.7, 3.0, 5.2, 2.3]]), parameters });
    const cases: Array<[string, object, Record<string, string>, RegExp]> = [
      ['priority above the levels', { priority: 3 }, {}, /priority 3 is not a level of this model: use 1 \(first served\) to 2/],
      ['negative priority', { priority: -1 }, {}, /parameter 'priority' is -1, expected a non-negative integer/],
      ['priority that is not a number', { priority: 'high' }, {}, /parameter 'priority' is "high"/],
      ['fractional timeout parameter', { timeout: 1.5 }, {}, /parameter 'timeout' is 1\.5, expected a non-negative integer/],
      ['negative timeout parameter', { timeout: -5 }, {}, /parameter 'timeout' is -5/],
      ['timeout header that is not a number', {}, { 'x-timeout-ms': 'abc' }, /header x-timeout-ms is "abc", expected a whole number of milliseconds/],
      ['negative timeout header', {}, { 'x-timeout-ms': '-1' }, /header x-timeout-ms is "-1"/],
    ];
    for (const [what, parameters, headers, message] of cases) {
      it(what, async () => {
        const response = await postJsonWith(`${url}/v2/models/two_levels/infer`, request(parameters), { headers });
        assert.equal(response.status, 400);
        assert.match(response.body.error, message);
      });
    }

    it('while valid ones are served, and a model without levels ignores priorities (as Triton does)', async () => {
      for (const [parameters, headers] of [[{ priority: 1 }, {}], [{ priority: 0, timeout: 5_000_000 }, { 'x-timeout-ms': '5000' }]] as const) {
        const response = await postJsonWith(`${url}/v2/models/two_levels/infer`, request(parameters), { headers });
        assert.equal(response.status, 200, JSON.stringify(response.body));
      }
      assert.equal((await postJson(`${url}/v2/models/classifier/infer`, request({ priority: 7 }))).status, 200);
      const stats = await modelStatistics(url, 'two_levels');
      assert.equal(stats.inference_count, 2);
      assert.equal(stats.inference_stats.fail.count, 0);
    });
  });

  it('reports a model whose dynamic_batching config is invalid UNAVAILABLE naming the field, and serves the others', async () => {
    const { body } = await getJson(`${url}/health`);
    const models = body.details.models.models;
    const reasonOf = (name: string) => {
      assert.equal(models[name][0].state, 'UNAVAILABLE', name);
      return models[name][0].reason as string;
    };
    assert.match(reasonOf('bad_delay'), /config\.json: dynamic_batching\.max_queue_delay_microseconds: /);
    assert.match(reasonOf('bad_key'), /config\.json: dynamic_batching: .*max_queue_delay_us/);
    assert.match(reasonOf('bad_action'), /config\.json: dynamic_batching\.default_queue_policy\.timeout_action: /);
    assert.match(reasonOf('bad_queue_size'), /config\.json: dynamic_batching\.default_queue_policy\.max_queue_size: /);
    assert.match(reasonOf('bad_preferred'), /dynamic_batching\.preferred_batch_size 8 is not between 1 and max_batch_size 4/);
    assert.match(reasonOf('bad_default_level'), /dynamic_batching\.default_priority_level 3 is not between 1 and priority_levels 2/);
    assert.match(reasonOf('bad_level_policy'), /dynamic_batching\.priority_queue_policy names level 3, but priority_levels is 2/);
    assert.match(reasonOf('bad_adaptive'), /config\.json: parameters\.adaptive_queue_delay: 'yes' is not one of 0, 1, true, false/);
    assert.equal(models.classifier[0].state, 'READY');

    const refused = await postJson(`${url}/v2/models/bad_preferred/infer`, classifierRequest([[6.7, 3.0, 5.2, 2.3]]));
    assert.equal(refused.status, 503);
    assert.match(refused.body.error, /model 'bad_preferred' has no READY version: .*preferred_batch_size 8/);
    const served = await postJson(`${url}/v2/models/classifier/infer`, classifierRequest([[6.7, 3.0, 5.2, 2.3]]));
    assert.equal(served.status, 200);
  });
});
