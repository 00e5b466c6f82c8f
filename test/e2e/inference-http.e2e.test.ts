import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CLASSIFIER_PARAMETERS, classifierModel, identityAllTypesModel, multiIoModel, staticShapeModel } from '../../scripts/build-models.js';
import { getJson, makeRepository, postJson, startTestServer, type TestServer } from '../support/test-server.js';

const MAX_REQUEST_BYTES = 256 * 1024;

function softmaxClassifier(row: number[]): number[] {
  const { weights, bias } = CLASSIFIER_PARAMETERS;
  const logits = bias.map((b, j) => b + row.reduce((sum, x, i) => sum + x * weights[i][j], 0));
  const max = Math.max(...logits);
  const exps = logits.map((l) => Math.exp(l - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}

describe('KServe V2 HTTP inference', () => {
  let server: TestServer;
  let url: string;
  before(async () => {
    const repository = await makeRepository([
      { name: 'classifier', onnx: classifierModel() },
      { name: 'multi_io', onnx: multiIoModel(), config: { max_batch_size: 4, instance_group: [{ count: 2, kind: 'KIND_CPU' }] } },
      { name: 'all_types', onnx: identityAllTypesModel() },
      { name: 'static', onnx: staticShapeModel() },
    ]);
    server = await startTestServer(repository, { MAX_REQUEST_BYTES: String(MAX_REQUEST_BYTES) });
    url = server.url;
  });
  after(() => server.close());

  describe('infer', () => {
    it('answers the README example with the classifier\'s probabilities and labels', async () => {
      const rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]];
      const { status, body } = await postJson(`${url}/v2/models/classifier/infer`, {
        id: '42',
        inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', data: rows }],
      });
      assert.equal(status, 200);
      assert.equal(body.model_name, 'classifier');
      assert.equal(body.model_version, '1');
      assert.equal(body.id, '42');
      const [probabilities, label] = body.outputs;
      assert.deepEqual({ name: probabilities.name, datatype: probabilities.datatype, shape: probabilities.shape }, { name: 'probabilities', datatype: 'FP32', shape: [2, 3] });
      const expected = rows.flatMap(softmaxClassifier);
      probabilities.data.forEach((p: number, i: number) => assert.ok(Math.abs(p - expected[i]) < 1e-5, `probability ${i}: ${p} vs ${expected[i]}`));
      assert.deepEqual(label, { name: 'label', datatype: 'INT64', shape: [2], data: [0, 2] });
    });

    it('serves the version named in the path', async () => {
      const { status, body } = await postJson(`${url}/v2/models/classifier/versions/1/infer`, {
        inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 3.0, 5.2, 2.3] }],
      });
      assert.equal(status, 200);
      assert.equal(body.model_version, '1');
      assert.deepEqual(body.outputs[1].data, [2]);
    });

    it('computes every output of a model with several datatypes, and only the requested ones when asked', async () => {
      const inputs = [
        { name: 'features', shape: [2, 3], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6] },
        { name: 'counts', shape: [2, 2], datatype: 'INT64', data: [1, 2, '-40', 0] },
        { name: 'mask', shape: [2, 3], datatype: 'BOOL', data: [true, false, true, false, false, true] },
        { name: 'text', shape: [2, 1], datatype: 'BYTES', data: ['héllo', ''] },
      ];
      const all = await postJson(`${url}/v2/models/multi_io/infer`, { inputs });
      assert.equal(all.status, 200);
      const byName = Object.fromEntries(all.body.outputs.map((o: { name: string }) => [o.name, o]));
      assert.deepEqual(Object.keys(byName), ['scaled', 'masked', 'total', 'inverted_mask', 'text_echo']);
      assert.deepEqual(byName.scaled.data, [2, 4, 6, 8, 10, 12]);
      assert.deepEqual(byName.masked.data, [1, 0, 3, 0, 0, 6]);
      assert.deepEqual(byName.inverted_mask.data, [false, true, false, true, true, false]);
      assert.deepEqual(byName.text_echo, { name: 'text_echo', datatype: 'BYTES', shape: [2, 1], data: ['héllo', ''] });
      assert.deepEqual(byName.total.shape, [2, 1]);

      const some = await fetch(`${url}/v2/models/multi_io/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ inputs, outputs: [{ name: 'total' }, { name: 'scaled' }] }),
      });
      const body = (await some.json()) as { outputs: Array<{ name: string; data: unknown[] }> };
      assert.deepEqual(body.outputs.map((o: { name: string }) => o.name), ['total', 'scaled']);
      assert.deepEqual(body.outputs[0].data, [3, -40]);
    });

    it('round-trips every datatype through JSON, nested or flat, with exact 64-bit integers and non-finite floats', async () => {
      const values: Record<string, unknown[]> = {
        BOOL: [true, false],
        UINT8: [0, 255],
        UINT16: [0, 65535],
        UINT32: [0, 4294967295],
        UINT64: ['0', '18446744073709551615'],
        INT8: [-128, 127],
        INT16: [-32768, 32767],
        INT32: [-2147483648, 2147483647],
        INT64: ['-9223372036854775808', '9223372036854775807'],
        FP16: [1.5, -65504],
        FP32: ['NaN', '-Infinity'],
        FP64: [0.1, 'Infinity'],
        BYTES: ['ünï', ''],
      };
      const inputs = Object.entries(values).map(([datatype, data]) => ({ name: `in_${datatype.toLowerCase()}`, shape: [1, 2], datatype, data: [data] }));
      const response = await fetch(`${url}/v2/models/all_types/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs }) });
      assert.equal(response.status, 200);
      const text = await response.text();
      const outputs = Object.fromEntries(JSON.parse(text).outputs.map((o: { name: string; data: unknown[] }) => [o.name, o]));
      for (const [datatype, data] of Object.entries(values)) {
        const output = outputs[`out_${datatype.toLowerCase()}`];
        assert.equal(output.datatype, datatype);
        assert.deepEqual(output.shape, [1, 2]);
        if (datatype === 'UINT64' || datatype === 'INT64') continue;
        assert.deepEqual(output.data, data, datatype);
      }
      assert.match(text, /"data":\[0,18446744073709551615\]/);
      assert.match(text, /"data":\[-9223372036854775808,9223372036854775807\]/);
    });

    it('serves a model with fixed shapes and no batch dimension', async () => {
      const { status, body } = await postJson(`${url}/v2/models/static/infer`, { inputs: [{ name: 'x', shape: [2, 3], datatype: 'FP32', data: [[0, 1, 2], [3, 4, 5]] }] });
      assert.equal(status, 200);
      assert.deepEqual(body.outputs[0].data, [1, 2, 3, 4, 5, 6]);
    });
  });

  describe('bad requests get a 4xx naming the problem, and the server keeps serving', () => {
    const input = (overrides: object) => ({ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4], ...overrides });
    const cases: Array<[string, string, unknown, number, RegExp]> = [
      ['unknown model', 'nope', { inputs: [input({})] }, 404, /^Request for unknown model: 'nope' is not found$/],
      ['missing input', 'multi_io', { inputs: [{ name: 'features', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] }, 400, /missing input 'counts', 'mask', 'text'/],
      ['unknown input', 'classifier', { inputs: [input({}), input({ name: 'extra' })] }, 400, /unknown input 'extra'/],
      ['duplicate input', 'classifier', { inputs: [input({}), input({})] }, 400, /input 'input' is given more than once/],
      ['wrong datatype', 'classifier', { inputs: [input({ datatype: 'FP64' })] }, 400, /input 'input' has datatype FP64, expected FP32/],
      ['unknown datatype', 'classifier', { inputs: [input({ datatype: 'FLOAT' })] }, 400, /input 'input' has datatype 'FLOAT', which is not one of/],
      ['wrong rank', 'classifier', { inputs: [input({ shape: [4] })] }, 400, /input 'input' has shape \[4\] \(rank 1\), expected \[-1,4\] \(rank 2\)/],
      ['wrong dimension', 'classifier', { inputs: [input({ shape: [2, 2] })] }, 400, /axis 1 must be 4/],
      ['batch over max_batch_size', 'classifier', { inputs: [input({ shape: [9, 4], data: new Array(36).fill(0) })] }, 400, /batch size 9, expected 1 to 8/],
      ['element count not matching the shape', 'classifier', { inputs: [input({ shape: [2, 4] })] }, 400, /input 'input' has 4 elements, but its shape \[2,4\] holds 8/],
      ['dims whose product overflows', 'static', { inputs: [{ name: 'x', shape: [2, 3], datatype: 'FP32', data: [1] }] }, 400, /input 'x' has 1 elements/],
      ['element of the wrong type', 'classifier', { inputs: [input({ data: [1, 2, 'x', 4] })] }, 400, /input 'input': element 2 is "x", expected a number/],
      ['unknown output', 'classifier', { inputs: [input({})], outputs: [{ name: 'logits' }] }, 400, /unknown output 'logits'/],
      ['no inputs array', 'classifier', { input: [] }, 400, /inputs: /],
      ['a shape that is not integers', 'classifier', { inputs: [input({ shape: [1, 'four'] })] }, 400, /input 'input' \(inputs\[0\]\.shape\[1\]\)/],
      ['body not JSON', 'classifier', '{"inputs": [', 400, /JSON/],
    ];
    for (const [what, model, body, status, message] of cases) {
      it(what, async () => {
        const response = await postJson(`${url}/v2/models/${model}/infer`, body);
        assert.equal(response.status, status);
        assert.match(response.body.error, message);
      });
    }

    it('refuses a BYTES element with a NUL byte, which onnxruntime-node string tensors would truncate', async () => {
      const response = await postJson(`${url}/v2/models/multi_io/infer`, {
        inputs: [
          { name: 'features', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] },
          { name: 'counts', shape: [1, 2], datatype: 'INT64', data: [1, 2] },
          { name: 'mask', shape: [1, 3], datatype: 'BOOL', data: [true, false, true] },
          { name: 'text', shape: [1, 1], datatype: 'BYTES', data: ['a\u0000b'] },
        ],
      });
      assert.equal(response.status, 400);
      assert.match(response.body.error, /input 'text': element 0 holds a NUL byte/);
    });

    it('refuses huge dims whose element count overflows', async () => {
      const response = await postJson(`${url}/v2/models/all_types/infer`, {
        inputs: [{ name: 'in_fp32', shape: [1, 2 ** 53], datatype: 'FP32', data: [1] }],
      });
      assert.equal(response.status, 400);
      assert.match(response.body.error, /in_fp32/);
    });

    it('answers 413 for a body over MAX_REQUEST_BYTES', async () => {
      const data = new Array(MAX_REQUEST_BYTES / 2).fill(1);
      const response = await postJson(`${url}/v2/models/classifier/infer`, { inputs: [input({ shape: [data.length / 4, 4], data })] });
      assert.equal(response.status, 413);
      assert.match(response.body.error, new RegExp(`larger than the limit of ${MAX_REQUEST_BYTES} bytes \\(MAX_REQUEST_BYTES\\)`));
    });

    it('names a version that is not a positive integer, and an unknown one', async () => {
      const bad = await postJson(`${url}/v2/models/classifier/versions/one/infer`, { inputs: [input({})] });
      assert.equal(bad.status, 400);
      assert.match(bad.body.error, /model version 'one' is not a positive integer/);
      const unknown = await postJson(`${url}/v2/models/classifier/versions/7/infer`, { inputs: [input({})] });
      assert.equal(unknown.status, 404);
      assert.match(unknown.body.error, /model 'classifier' has no version 7/);
    });

    it('still serves after all of the above', async () => {
      const { status } = await postJson(`${url}/v2/models/classifier/infer`, { inputs: [input({})] });
      assert.equal(status, 200);
    });
  });

  describe('metadata', () => {
    it('describes the server', async () => {
      const { status, body } = await getJson(`${url}/v2`);
      assert.equal(status, 200);
      assert.equal(body.name, 'onnx-serving');
      assert.match(body.version, /^\d+\.\d+\.\d+/);
      assert.ok(Array.isArray(body.extensions));
    });

    it('describes a model derived from its ONNX file alone, with -1 for the batch dimension', async () => {
      const { status, body } = await getJson(`${url}/v2/models/classifier`);
      assert.equal(status, 200);
      assert.deepEqual(body, {
        name: 'classifier',
        versions: ['1'],
        platform: 'onnxruntime_onnx',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
        outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, 3] }, { name: 'label', datatype: 'INT64', shape: [-1] }],
      });
      const versioned = await getJson(`${url}/v2/models/classifier/versions/1`);
      assert.deepEqual(versioned.body, body);
    });

    it('gives a model with fixed shapes no batch dimension', async () => {
      const { body } = await getJson(`${url}/v2/models/static`);
      assert.deepEqual(body.inputs, [{ name: 'x', datatype: 'FP32', shape: [2, 3] }]);
      const config = await getJson(`${url}/v2/models/static/config`);
      assert.equal(config.body.max_batch_size, 0);
    });

    it('answers the completed configuration, with declared fields kept', async () => {
      const { status, body } = await getJson(`${url}/v2/models/multi_io/config`);
      assert.equal(status, 200);
      assert.equal(body.max_batch_size, 4);
      assert.deepEqual(body.instance_group, [{ count: 2, kind: 'KIND_CPU' }]);
      assert.deepEqual(body.input.map((t: { name: string; data_type: string }) => [t.name, t.data_type]), [
        ['features', 'TYPE_FP32'], ['counts', 'TYPE_INT64'], ['mask', 'TYPE_BOOL'], ['text', 'TYPE_STRING'],
      ]);
      const derived = await getJson(`${url}/v2/models/classifier/config`);
      assert.equal(derived.body.max_batch_size, 8);
    });

    it('answers model readiness', async () => {
      assert.equal((await fetch(`${url}/v2/models/classifier/ready`)).status, 200);
      assert.equal((await fetch(`${url}/v2/models/classifier/versions/1/ready`)).status, 200);
      assert.equal((await fetch(`${url}/v2/models/classifier/versions/2/ready`)).status, 404);
      assert.equal((await fetch(`${url}/v2/models/nope/ready`)).status, 404);
    });

    it('answers 404 with a JSON error for an unknown route', async () => {
      const { status, body } = await getJson(`${url}/v3/nothing`);
      assert.equal(status, 404);
      assert.match(body.error, /Cannot GET \/v3\/nothing/);
    });
  });
});
