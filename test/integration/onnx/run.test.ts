// OnnxRuntimeEngine.run on real .onnx files: computed values, every datatype, output selection, runtime errors.
import { runtimeKey } from '../../support/runtime-keys.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Logger } from '@nestjs/common';
import { OnnxRuntimeEngine } from '../../../src/infra/onnx/onnx-runtime-engine.js';
import { CLASSIFIER_PARAMETERS } from '../../../scripts/build-models.js';
import type { Tensor } from '../../../src/domain/inference/tensor.js';
import { DomainError } from '../../../src/domain/shared/domain-error.js';
import { assertClose, assertRejectsWithCode, copyOf, failIfWorkersOutliveTests, modelDirectory, runtimeOptions, statusOf, tensor, projectModelDirectory, runOne } from './onnx-fixtures.js';

Logger.overrideLogger(false);

/** softmax(row · W + B) in plain JS (double precision). */
function referenceProbabilities(row: readonly number[]): number[] {
  const { weights, bias } = CLASSIFIER_PARAMETERS;
  const logits = bias.map((b, j) => row.reduce((sum, x, i) => sum + x * weights[i]![j]!, b));
  const max = Math.max(...logits);
  const exps = logits.map((l) => Math.exp(l - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}

function byName(outputs: readonly Tensor[], name: string): Tensor {
  const found = outputs.find((o) => o.name === name);
  assert.ok(found, `output '${name}' is missing`);
  return found;
}

/** One input per datatype of identity_all_types, shape [2, 4], with the edge values of each type. */
function allTypesInputs(): Tensor[] {
  const shape = [2, 4];
  const fp32 = Float32Array.of(-1.5, 0, -0, 3.25, 1e30, Number.NaN, Number.POSITIVE_INFINITY, -3.4028234663852886e38);
  return [
    tensor('in_bool', 'BOOL', shape, Uint8Array.of(1, 0, 0, 1, 1, 1, 0, 0)),
    tensor('in_uint8', 'UINT8', shape, Uint8Array.of(0, 1, 127, 128, 200, 254, 255, 7)),
    tensor('in_uint16', 'UINT16', shape, Uint16Array.of(0, 1, 255, 256, 32767, 32768, 65534, 65535)),
    tensor('in_uint32', 'UINT32', shape, Uint32Array.of(0, 1, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 2, 2 ** 32 - 1)),
    tensor('in_uint64', 'UINT64', shape, BigUint64Array.of(0n, 1n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 2n, 2n ** 64n - 1n)),
    tensor('in_int8', 'INT8', shape, Int8Array.of(-128, -127, -1, 0, 1, 64, 126, 127)),
    tensor('in_int16', 'INT16', shape, Int16Array.of(-32768, -32767, -256, -1, 0, 1, 32766, 32767)),
    tensor('in_int32', 'INT32', shape, Int32Array.of(-(2 ** 31), -(2 ** 31) + 1, -65536, -1, 0, 1, 2 ** 31 - 2, 2 ** 31 - 1)),
    // INT64 extremes and values a JS number cannot hold exactly.
    tensor('in_int64', 'INT64', shape, BigInt64Array.of(-(2n ** 63n), -(2n ** 63n) + 1n, -(2n ** 53n) - 1n, -1n, 0n, 2n ** 53n + 1n, 2n ** 63n - 2n, 2n ** 63n - 1n)),
    // FP16 as raw half bits: 1, -2, 0.5, 65504 (max), +inf, -inf, smallest subnormal, -0.
    tensor('in_fp16', 'FP16', shape, Uint16Array.of(0x3c00, 0xc000, 0x3800, 0x7bff, 0x7c00, 0xfc00, 0x0001, 0x8000)),
    tensor('in_fp32', 'FP32', shape, fp32),
    tensor('in_fp64', 'FP64', shape, Float64Array.of(-1.5, 0, -0, Math.PI, 1e300, Number.MIN_VALUE, Number.NaN, Number.NEGATIVE_INFINITY)),
    tensor('in_bytes', 'BYTES', shape, ['', 'a', ' ', 'ünïcødé ✓ 日本 🙂', 'x'.repeat(1000), '{"json":true}', 'tab\tnewline\n', '']),
  ];
}

describe('OnnxRuntimeEngine.run', { timeout: 60_000 }, () => {
  const engine = new OnnxRuntimeEngine();
  let models: Awaited<ReturnType<typeof modelDirectory>>;

  before(async () => {
    models = await projectModelDirectory();
    await engine.load(runtimeKey('classifier'), models.path('classifier'), runtimeOptions());
    await engine.load(runtimeKey('multi_io'), models.path('multi_io'), runtimeOptions());
    await engine.load(runtimeKey('identity'), models.path('identity_all_types'), runtimeOptions());
    await engine.load(runtimeKey('static'), models.path('static_shape'), runtimeOptions());
  });

  after(async () => {
    await engine.onApplicationShutdown();
    await models.remove();
    failIfWorkersOutliveTests();
  });

  describe('computes the model', () => {
    // Picked to land on different classes, so that argmax is really exercised.
    const rows = [
      [5.1, 3.5, 1.4, 0.2],
      [6.3, 3.3, 6.0, 2.5],
      [5.9, 3.0, 4.2, 1.5],
      [-1, 0, 2.5, -3],
    ];

    it('classifier: softmax(x·W+B) matches a JS reference, label is its argmax', async () => {
      const outputs = (await runOne(engine, runtimeKey('classifier'), [tensor('input', 'FP32', [4, 4], Float32Array.from(rows.flat()))], ['probabilities', 'label'])).outputs;

      assert.deepEqual(outputs.map((o) => [o.name, o.datatype, o.shape]), [
        ['probabilities', 'FP32', [4, 3]],
        ['label', 'INT64', [4]],
      ]);
      const probabilities = outputs[0]!.data as Float32Array;
      const labels = outputs[1]!.data as BigInt64Array;
      assert.ok(probabilities instanceof Float32Array);
      assert.ok(labels instanceof BigInt64Array);
      const expected = rows.map(referenceProbabilities);
      assertClose(probabilities, expected.flat());
      assert.deepEqual(
        [...labels],
        expected.map((p) => BigInt(p.indexOf(Math.max(...p)))),
      );
      // The rows above were picked to land on different classes, so argmax is really exercised.
      assert.equal(new Set(labels).size, 3);
    });

    it("gathers a batch's members where the model runs, and gives each member its own rows back, with the run's input and output times", async () => {
      const member = (picked: number[][]) => [tensor('input', 'FP32', [picked.length, 4], Float32Array.from(picked.flat()))];
      const run = await engine.run(runtimeKey('classifier'), [member(rows.slice(0, 1)), member(rows.slice(1, 4))], ['probabilities', 'label']);
      assert.equal(run.outputs.length, 2, 'one set of outputs per member');
      assert.deepEqual(run.outputs.map((outputs) => outputs.map((o) => [o.name, o.shape])), [
        [['probabilities', [1, 3]], ['label', [1]]],
        [['probabilities', [3, 3]], ['label', [3]]],
      ]);
      const expected = rows.map(referenceProbabilities);
      assertClose(run.outputs[0]![0]!.data as Float32Array, expected.slice(0, 1).flat());
      assertClose(run.outputs[1]![0]!.data as Float32Array, expected.slice(1).flat());
      for (const micros of [run.inputMicros, run.computeMicros, run.outputMicros]) assert.ok(Number.isInteger(micros) && micros >= 0, String(micros));
    });

    it('multi_io: FP32, INT64, BOOL and BYTES inputs give their computed outputs', async () => {
      const outputs = (await runOne(engine, 
        runtimeKey('multi_io'),
        [
          tensor('features', 'FP32', [2, 3], Float32Array.of(1.5, -2, 3, 0.25, 4, -0.5)),
          tensor('counts', 'INT64', [2, 2], BigInt64Array.of(1n, 2n, 2n ** 62n, 2n ** 62n - 1n)),
          tensor('mask', 'BOOL', [2, 3], Uint8Array.of(1, 0, 1, 0, 0, 1)),
          tensor('text', 'BYTES', [2, 1], ['', 'héllo']),
        ],
        ['scaled', 'masked', 'total', 'inverted_mask', 'text_echo'],
      )).outputs;
      assertClose(byName(outputs, 'scaled').data as Float32Array, [3, -4, 6, 0.5, 8, -1]);
      assertClose(byName(outputs, 'masked').data as Float32Array, [1.5, 0, 3, 0, 0, -0.5]);
      assert.deepEqual(byName(outputs, 'total'), { name: 'total', datatype: 'INT64', shape: [2, 1], data: BigInt64Array.of(3n, 2n ** 63n - 1n) });
      assert.deepEqual(byName(outputs, 'inverted_mask'), { name: 'inverted_mask', datatype: 'BOOL', shape: [2, 3], data: Uint8Array.of(0, 1, 0, 1, 1, 0) });
      assert.deepEqual(byName(outputs, 'text_echo'), { name: 'text_echo', datatype: 'BYTES', shape: [2, 1], data: ['', 'héllo'] });
    });

    it('identity_all_types: every datatype round-trips bit for bit, in its own typed array', async () => {
      const inputs = allTypesInputs();
      const expected = inputs.map((input) => ({ ...input, name: input.name.replace(/^in_/, 'out_'), data: copyOf(input.data) }));

      const outputs = (await runOne(engine, runtimeKey('identity'), inputs, expected.map((e) => e.name))).outputs;

      assert.equal(outputs.length, expected.length);
      for (const [i, want] of expected.entries()) {
        const got = outputs[i]!;
        assert.equal(got.name, want.name);
        assert.equal(got.datatype, want.datatype, want.name);
        assert.deepEqual(got.shape, want.shape, want.name);
        // deepStrictEqual compares typed arrays by class and element (NaN equals NaN, -0 differs from 0).
        assert.deepEqual(got.data, want.data, want.name);
      }
    });

    it('identity_all_types: a BYTES tensor of empty strings and an empty batch', async () => {
      const inputs = allTypesInputs().map((input) =>
        input.datatype === 'BYTES' ? { ...input, data: ['', '', '', '', '', '', '', ''] } : input,
      );
      const [bytes] = (await runOne(engine, runtimeKey('identity'), inputs, ['out_bytes'])).outputs;
      assert.deepEqual(bytes, { name: 'out_bytes', datatype: 'BYTES', shape: [2, 4], data: ['', '', '', '', '', '', '', ''] });
    });
  });

  describe('output selection', () => {
    it('returns only the requested outputs, in the requested order', async () => {
      const input = () => [tensor('input', 'FP32', [1, 4], Float32Array.of(6.3, 3.3, 6.0, 2.5))];

      const labelOnly = (await runOne(engine, runtimeKey('classifier'), input(), ['label'])).outputs;
      assert.deepEqual(labelOnly, [{ name: 'label', datatype: 'INT64', shape: [1], data: BigInt64Array.of(2n) }]);

      const reversed = (await runOne(engine, runtimeKey('classifier'), input(), ['label', 'probabilities'])).outputs;
      assert.deepEqual(reversed.map((o) => o.name), ['label', 'probabilities']);
      assertClose(reversed[1]!.data as Float32Array, referenceProbabilities([6.3, 3.3, 6.0, 2.5]));
    });

    it('picks a subset of many outputs, out of file order', async () => {
      const requested = ['out_bytes', 'out_int64', 'out_bool', 'out_fp16'];
      const outputs = (await runOne(engine, runtimeKey('identity'), allTypesInputs(), requested)).outputs;
      assert.deepEqual(outputs.map((o) => [o.name, o.datatype]), [
        ['out_bytes', 'BYTES'],
        ['out_int64', 'INT64'],
        ['out_bool', 'BOOL'],
        ['out_fp16', 'FP16'],
      ]);
      const inputs = allTypesInputs();
      for (const output of outputs) {
        assert.deepEqual(output.data, inputs.find((i) => i.name === output.name.replace(/^out_/, 'in_'))!.data, output.name);
      }
    });
  });

  describe('BYTES with a NUL byte', () => {
    // onnxruntime-node builds string tensors from C strings (FillStringTensor), so an element is
    // cut at its first NUL byte. The adapter refuses such inputs in checkInputs, which the
    // inference handler calls on each request before queueing it (so the refusal names the
    // request's own element and never fails a batch it would have joined).
    it('checkInputs refuses "a\\u0000b" as INFERENCE.INVALID_DATA, naming the input and the element', () => {
      const inputs = allTypesInputs().map((input) => (input.datatype === 'BYTES' ? { ...input, data: ['x', '', 'a\u0000b', 'y', 'z', 'w', 'v', 'u'] } : input));
      assert.throws(
        () => engine.checkInputs(inputs),
        (error) => error instanceof DomainError && error.code === 'INFERENCE.INVALID_DATA' && /input 'in_bytes': element 2 holds a NUL byte/.test(error.message),
      );
    });

    it('checkInputs accepts every other string, the empty one included', () => {
      assert.doesNotThrow(() => engine.checkInputs(allTypesInputs()));
    });
  });

  describe('a feed onnxruntime rejects', () => {
    const valid = () => [tensor('x', 'FP32', [2, 3], Float32Array.of(0, 1, 2, -3, 4.5, 5))];

    async function assertStillServes(): Promise<void> {
      const [y] = (await runOne(engine, runtimeKey('static'), valid(), ['y'])).outputs;
      assert.deepEqual(y, { name: 'y', datatype: 'FP32', shape: [2, 3], data: Float32Array.of(1, 2, 3, -2, 5.5, 6) });
      assert.deepEqual(statusOf(engine, runtimeKey('static')), { key: 'static/1', instances: 1, busy: 0, queued: 0, executionProvider: 'cpu', lostInstances: 0, restartedInstances: 0 });
    }

    const badFeeds: [string, () => Tensor[], string[], RegExp][] = [
      ['wrong rank', () => [tensor('x', 'FP32', [6], new Float32Array(6))], ['y'], /rank/i],
      ['wrong fixed dims', () => [tensor('x', 'FP32', [3, 2], new Float32Array(6))], ['y'], /dimension|shape|index/i],
      ['wrong datatype', () => [tensor('x', 'INT32', [2, 3], new Int32Array(6))], ['y'], /type/i],
      ['data shorter than the shape', () => [tensor('x', 'FP32', [2, 3], new Float32Array(5))], ['y'], /size|length|match/i],
      ['a missing input', () => [], ['y'], /x|missing|input/i],
      ['an output the model does not have', valid, ['nope'], /nope|output/i],
    ];
    for (const [what, feed, outputNames, reason] of badFeeds) {
      it(`${what}: rejects with INFERENCE.RUNTIME_ERROR and the next valid run is served`, async () => {
        const error = await assertRejectsWithCode(runOne(engine, runtimeKey('static'), feed(), outputNames), 'INFERENCE.RUNTIME_ERROR', /static/);
        assert.match(error.message, reason);
        await assertStillServes();
      });
    }
  });

  it('run on a key that was never loaded rejects with REGISTRY.VERSION_NOT_READY', async () => {
    await assertRejectsWithCode(runOne(engine, runtimeKey('never-loaded'), [], ['y']), 'REGISTRY.VERSION_NOT_READY', /never-loaded/);
  });
});
