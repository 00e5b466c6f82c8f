import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { keepFloat16AsUint16 } from '../../../src/infra/onnx/float16-compat.js';
import {
  CLASSIFIER_PARAMETERS,
  DENSENET_CLASSES,
  heavyModel,
  TRITON_EXAMPLE_CONFIGS,
  TRITON_EXAMPLE_MODEL_NAMES,
  writeTritonExamplesRepository,
  writeDemoRepository,
  writeTestModels,
} from '../../../scripts/build-models.js';

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = 1e-5): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tolerance, `element ${i}: ${actual[i]} != ${expected[i]}`);
  }
}

/** [name, type, shape] of each input or output, as onnxruntime reads it from the model. */
function signature(metadata: readonly ort.InferenceSession.ValueMetadata[]): unknown[] {
  return metadata.map((m) => (m.isTensor ? [m.name, m.type, m.shape] : [m.name, 'non-tensor']));
}

/** softmax(row · W + B) computed in plain JS, as the reference for the classifier. */
function referenceProbabilities(row: number[]): number[] {
  const { weights, bias } = CLASSIFIER_PARAMETERS;
  const logits = bias.map((b, j) => row.reduce((sum, x, i) => sum + x * weights[i]![j]!, b));
  const exps = logits.map((l) => Math.exp(l - Math.max(...logits)));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}

keepFloat16AsUint16(); // this test feeds float16 as Uint16Array, as the session workers do

describe('build-models', () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'build-models-'));
    await writeDemoRepository(dir);
    await writeTestModels(dir);
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('classifier returns softmax probabilities and their argmax as label', async () => {
    const session = await ort.InferenceSession.create(path.join(dir, 'classifier', '1', 'model.onnx'));
    assert.deepEqual(signature(session.inputMetadata), [['input', 'float32', ['batch', 4]]]);
    assert.deepEqual(signature(session.outputMetadata), [
      ['probabilities', 'float32', ['batch', 3]],
      ['label', 'int64', ['batch']],
    ]);

    const rows = [
      [5.1, 3.5, 1.4, 0.2], // setosa-like
      [6.3, 3.3, 6.0, 2.5], // virginica-like
    ];
    const { probabilities, label } = await session.run({
      input: new ort.Tensor('float32', Float32Array.from(rows.flat()), [2, 4]),
    });

    assert.deepEqual(probabilities!.dims, [2, 3]);
    assert.equal(label!.type, 'int64');
    assert.deepEqual(label!.dims, [2]);
    const probs = probabilities!.data as Float32Array;
    const labels = label!.data as BigInt64Array;
    for (let r = 0; r < rows.length; r++) {
      const row = Array.from(probs.subarray(r * 3, r * 3 + 3));
      assertClose(row, referenceProbabilities(rows[r]!));
      assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-6);
      assert.equal(labels[r], BigInt(row.indexOf(Math.max(...row))));
    }
    assert.deepEqual(Array.from(labels), [0n, 2n]);
    await session.release();
  });

  it('multi_io computes every output', async () => {
    const session = await ort.InferenceSession.create(path.join(dir, 'multi_io', '1', 'model.onnx'));
    assert.deepEqual(signature(session.inputMetadata), [
      ['features', 'float32', ['batch', 3]],
      ['counts', 'int64', ['batch', 2]],
      ['mask', 'bool', ['batch', 3]],
      ['text', 'string', ['batch', 1]],
    ]);
    assert.deepEqual(signature(session.outputMetadata), [
      ['scaled', 'float32', ['batch', 3]],
      ['masked', 'float32', ['batch', 3]],
      ['total', 'int64', ['batch', 1]],
      ['inverted_mask', 'bool', ['batch', 3]],
      ['text_echo', 'string', ['batch', 1]],
    ]);
    const features = [1.5, -2, 3, 0.25, 4, -0.5];
    const outputs = await session.run({
      features: new ort.Tensor('float32', Float32Array.from(features), [2, 3]),
      counts: new ort.Tensor('int64', BigInt64Array.of(1n, 2n, 10n, -3n), [2, 2]),
      mask: new ort.Tensor('bool', Uint8Array.of(1, 0, 1, 0, 0, 1), [2, 3]),
      text: new ort.Tensor('string', ['', 'héllo wörld ✓ 日本'], [2, 1]),
    });

    assertClose(outputs.scaled!.data as Float32Array, [3, -4, 6, 0.5, 8, -1]);
    assertClose(outputs.masked!.data as Float32Array, [1.5, 0, 3, 0, 0, -0.5]);
    assert.equal(outputs.total!.type, 'int64');
    assert.deepEqual(outputs.total!.dims, [2, 1]);
    assert.deepEqual(Array.from(outputs.total!.data as BigInt64Array), [3n, 7n]);
    assert.equal(outputs.inverted_mask!.type, 'bool');
    assert.deepEqual(Array.from(outputs.inverted_mask!.data as Uint8Array), [0, 1, 0, 1, 1, 0]);
    assert.equal(outputs.text_echo!.type, 'string');
    assert.deepEqual(outputs.text_echo!.dims, [2, 1]);
    assert.deepEqual(outputs.text_echo!.data, ['', 'héllo wörld ✓ 日本']);
    await session.release();
  });

  it('identity_all_types round-trips every datatype', async () => {
    const session = await ort.InferenceSession.create(path.join(dir, 'identity_all_types.onnx'));
    const dims = [2, 2];
    // FP16 travels as raw half-float bits: 1.0, -2.0, 0.5, 65504 (max half).
    const inputs: Record<string, ort.Tensor> = {
      in_bool: new ort.Tensor('bool', Uint8Array.of(1, 0, 0, 1), dims),
      in_uint8: new ort.Tensor('uint8', Uint8Array.of(0, 1, 128, 255), dims),
      in_uint16: new ort.Tensor('uint16', Uint16Array.of(0, 1, 32768, 65535), dims),
      in_uint32: new ort.Tensor('uint32', Uint32Array.of(0, 1, 2 ** 31, 2 ** 32 - 1), dims),
      in_uint64: new ort.Tensor('uint64', BigUint64Array.of(0n, 1n, 2n ** 63n, 2n ** 64n - 1n), dims),
      in_int8: new ort.Tensor('int8', Int8Array.of(-128, -1, 0, 127), dims),
      in_int16: new ort.Tensor('int16', Int16Array.of(-32768, -1, 0, 32767), dims),
      in_int32: new ort.Tensor('int32', Int32Array.of(-(2 ** 31), -1, 0, 2 ** 31 - 1), dims),
      in_int64: new ort.Tensor('int64', BigInt64Array.of(-(2n ** 63n), -1n, 0n, 2n ** 63n - 1n), dims),
      in_fp16: new ort.Tensor('float16', Uint16Array.of(0x3c00, 0xc000, 0x3800, 0x7bff), dims),
      in_fp32: new ort.Tensor('float32', Float32Array.of(-1.5, 0, 3.25, 1e30), dims),
      in_fp64: new ort.Tensor('float64', Float64Array.of(-1.5, 0, Math.PI, 1e300), dims),
      in_bytes: new ort.Tensor('string', ['', 'a', 'ünïcødé', 'x'.repeat(1000)], dims),
    };

    assert.deepEqual(
      signature(session.inputMetadata),
      Object.entries(inputs).map(([name, tensor]) => [name, tensor.type, ['batch', 'n']]),
    );
    assert.deepEqual(
      signature(session.outputMetadata),
      Object.entries(inputs).map(([name, tensor]) => [name.replace(/^in_/, 'out_'), tensor.type, ['batch', 'n']]),
    );

    const outputs = await session.run(inputs);

    assert.equal(Object.keys(outputs).length, Object.keys(inputs).length);
    for (const [inputName, input] of Object.entries(inputs)) {
      const output = outputs[inputName.replace(/^in_/, 'out_')]!;
      assert.equal(output.type, input.type, inputName);
      assert.deepEqual(output.dims, dims, inputName);
      assert.deepEqual(Array.from(output.data as ArrayLike<unknown>), Array.from(input.data as ArrayLike<unknown>), inputName);
      assert.equal((output.data as object).constructor, (input.data as object).constructor, inputName);
    }
    await session.release();
  });

  it('static_shape adds one and has no symbolic dims', async () => {
    const session = await ort.InferenceSession.create(path.join(dir, 'static_shape.onnx'));
    assert.deepEqual(signature(session.inputMetadata), [['x', 'float32', [2, 3]]]);
    assert.deepEqual(signature(session.outputMetadata), [['y', 'float32', [2, 3]]]);
    const { y } = await session.run({ x: new ort.Tensor('float32', Float32Array.of(0, 1, 2, -3, 4.5, 5), [2, 3]) });
    assert.deepEqual(y!.dims, [2, 3]);
    assertClose(y!.data as Float32Array, [1, 2, 3, -2, 5.5, 6]);
    await assert.rejects(session.run({ x: new ort.Tensor('float32', new Float32Array(3), [1, 3]) }));
    await session.release();
  });

  it('heavy model (small variant) computes a finite [1,256] output', async () => {
    const session = await ort.InferenceSession.create(heavyModel(4, 2), { intraOpNumThreads: 1 });
    const x = Float32Array.from({ length: 256 }, (_, i) => Math.sin(i));
    const { y } = await session.run({ x: new ort.Tensor('float32', x, [1, 256]) });
    assert.deepEqual(y!.dims, [1, 256]);
    const values = Array.from(y!.data as Float32Array);
    assert.ok(values.every(Number.isFinite));
    assert.ok(values.some((v) => v !== 0));
    assert.ok(values.every((v) => Math.abs(v) < 1), 'tanh output is bounded');
    await session.release();
  });

  it('writes the full-size heavy model too', async () => {
    const session = await ort.InferenceSession.create(path.join(dir, 'heavy.onnx'));
    assert.deepEqual(signature(session.inputMetadata), [['x', 'float32', [1, 256]]]);
    assert.deepEqual(signature(session.outputMetadata), [['y', 'float32', [1, 256]]]);
    await session.release();
  });
});

describe('build-models --triton-examples', () => {
  let dir: string;
  const input0 = Array.from({ length: 16 }, (_, i) => i);
  const input1 = new Array<number>(16).fill(-3);

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'build-models-triton-'));
    await writeTritonExamplesRepository(dir);
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const open = (name: string) => ort.InferenceSession.create(path.join(dir, name, '1', 'model.onnx'));

  it('writes every stand-in with its config.json, named as its directory', async () => {
    assert.deepEqual((await readdir(dir)).sort(), [...TRITON_EXAMPLE_MODEL_NAMES].sort());
    for (const name of TRITON_EXAMPLE_MODEL_NAMES) {
      const config = JSON.parse(await readFile(path.join(dir, name, 'config.json'), 'utf8'));
      assert.equal(config.name, name);
      assert.deepEqual(config, TRITON_EXAMPLE_CONFIGS[name]);
    }
  });

  for (const [name, type, ArrayType] of [
    ['simple', 'int32', Int32Array],
    ['simple_int8', 'int8', Int8Array],
  ] as const) {
    it(`${name}: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 over [batch, 16]`, async () => {
      const session = await open(name);
      assert.deepEqual(signature(session.inputMetadata), [['INPUT0', type, ['batch', 16]], ['INPUT1', type, ['batch', 16]]]);
      const rows = [...input0, ...input0.map((x) => -x)];
      const { OUTPUT0, OUTPUT1 } = await session.run({
        INPUT0: new ort.Tensor(type, ArrayType.from(rows), [2, 16]),
        INPUT1: new ort.Tensor(type, ArrayType.from([...input1, ...input1]), [2, 16]),
      });
      assert.deepEqual(Array.from(OUTPUT0!.data as ArrayLike<number>), rows.map((x) => x - 3));
      assert.deepEqual(Array.from(OUTPUT1!.data as ArrayLike<number>), rows.map((x) => x + 3));
      await session.release();
    });
  }

  it('simple_string: decimal strings in, their sum and difference as decimal strings out', async () => {
    const session = await open('simple_string');
    assert.deepEqual(signature(session.inputMetadata), [['INPUT0', 'string', ['batch', 16]], ['INPUT1', 'string', ['batch', 16]]]);
    const { OUTPUT0, OUTPUT1 } = await session.run({
      INPUT0: new ort.Tensor('string', input0.map(String), [1, 16]),
      INPUT1: new ort.Tensor('string', input1.map(String), [1, 16]),
    });
    assert.deepEqual(OUTPUT0!.data, input0.map((x) => String(x - 3)));
    assert.deepEqual(OUTPUT1!.data, input0.map((x) => String(x + 3)));
    await session.release();
  });

  it('simple_identity and custom_identity_int32 return their input', async () => {
    const strings = await open('simple_identity');
    const text = ['a', 'bc', '', 'd e'];
    assert.deepEqual((await strings.run({ INPUT0: new ort.Tensor('string', text, [2, 2]) })).OUTPUT0!.data, text);
    await strings.release();
    const ints = await open('custom_identity_int32');
    const { OUTPUT0 } = await ints.run({ INPUT0: new ort.Tensor('int32', Int32Array.from(input0), [1, 16]) });
    assert.deepEqual(Array.from(OUTPUT0!.data as Int32Array), input0);
    await ints.release();
  });

  it('densenet_onnx: data_0 [3, 224, 224] to 1000 finite scores, each a fixed mix of the channel means', async () => {
    const session = await open('densenet_onnx');
    assert.deepEqual(signature(session.inputMetadata), [['data_0', 'float32', [3, 224, 224]]]);
    assert.deepEqual(signature(session.outputMetadata), [['fc6_1', 'float32', [DENSENET_CLASSES]]]);
    const plane = 224 * 224;
    const image = new Float32Array(3 * plane);
    image.fill(1, 0, plane); // red channel mean 1, the others 0
    const red = (await session.run({ data_0: new ort.Tensor('float32', image, [3, 224, 224]) })).fc6_1!;
    image.fill(2, 0, plane);
    const twiceRed = (await session.run({ data_0: new ort.Tensor('float32', image, [3, 224, 224]) })).fc6_1!;
    const a = Array.from(red.data as Float32Array);
    assert.equal(a.length, DENSENET_CLASSES);
    assert.ok(a.every(Number.isFinite) && a.some((v) => v !== 0));
    assertClose(Array.from(twiceRed.data as Float32Array), a.map((v) => 2 * v));
    await session.release();
  });
});

describe('the demo repository (what `npm start` writes to ./models)', () => {
  const script = fileURLToPath(new URL('../../../scripts/build-models.js', import.meta.url));
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'demo-repository-'));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Every file under `root` with its bytes, for comparing a tree before and after. */
  async function tree(root: string): Promise<Record<string, string>> {
    const files: Record<string, string> = {};
    for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
      if (entry.isFile()) {
        const file = path.join(entry.parentPath, entry.name);
        files[path.relative(root, file)] = (await readFile(file)).toString('base64');
      }
    }
    return files;
  }

  it('writes an absent model, never touches a model directory that exists, and leaves nothing else', async () => {
    const repository = path.join(dir, 'models');
    // The user's own classifier: another file, a config, a second version.
    await mkdir(path.join(repository, 'classifier', '3'), { recursive: true });
    await writeFile(path.join(repository, 'classifier', '3', 'model.onnx'), 'the user model');
    await writeFile(path.join(repository, 'classifier', 'config.json'), '{"max_batch_size": 0}');
    const before = await tree(repository);

    const first = await writeDemoRepository(repository);
    assert.deepEqual(first, { written: ['multi_io'], kept: ['classifier'] });
    const after = await tree(repository);
    for (const [file, bytes] of Object.entries(before)) assert.equal(after[file], bytes, `${file} is unchanged`);
    assert.deepEqual(Object.keys(after).sort(), [...Object.keys(before), 'multi_io/1/model.onnx', 'multi_io/config.json'].sort());
    assert.deepEqual((await readdir(repository)).sort(), ['classifier', 'multi_io'], 'no staging directory left');
    assert.equal((await stat(path.join(repository, 'multi_io'))).mode & 0o777, 0o755, 'readable by a server of another user');

    // multi_io changed by its user since: a second run (the next `npm start`) keeps it too.
    await writeFile(path.join(repository, 'multi_io', 'config.json'), '{"max_batch_size": 2}');
    const changed = await tree(repository);
    assert.deepEqual(await writeDemoRepository(repository), { written: [], kept: ['classifier', 'multi_io'] });
    assert.deepEqual(await tree(repository), changed);
  });

  it('as a script (npm run models), says what it wrote and what it kept', async () => {
    const repository = path.join(dir, 'script-models');
    await mkdir(path.join(repository, 'multi_io'), { recursive: true });
    const { stdout } = await promisify(execFile)(process.execPath, [script, repository]);
    assert.match(stdout, new RegExp(`Wrote the demo models classifier to ${repository}`));
    assert.match(stdout, /Kept .*multi_io as they are/);
    assert.deepEqual(await readdir(path.join(repository, 'multi_io')), [], 'the existing directory, empty as it was');
    assert.ok((await stat(path.join(repository, 'classifier', '1', 'model.onnx'))).size > 0);
  });
});
